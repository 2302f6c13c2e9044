-- +goose Up
-- The head of every stream: its last revision and that event's chain hash.
-- An append moves its stream's head with an UPDATE that holds the row until
-- it commits, so appends to one stream from any number of processes take
-- turns, and the head is known without looking at the events. Rows are
-- updated on every append: the free space left on each page lets PostgreSQL
-- update them in place (HOT) without touching the index.
CREATE TABLE kyc_streams (
    name          text   PRIMARY KEY,
    last_revision bigint NOT NULL,
    last_hash     text   NOT NULL
) WITH (fillfactor = 70);

-- The global log. Its order is (tx_id, position): tx_id is the id of the
-- transaction that wrote the event, position a sequence number. Readers of
-- the log read only events whose transaction id is below the oldest
-- transaction still running, so an event that commits late can never land
-- behind a position a reader has passed (see the adapter's package doc).
-- The primary key is the index those reads walk.
--
-- occurred_at and recorded_at are Unix nanoseconds: the chain hash covers
-- OccurredAt to the nanosecond, and timestamptz keeps microseconds. data and
-- personal are the exact bytes the caller gave, which the hash also covers;
-- json or jsonb would check or normalise them.
CREATE TABLE kyc_events (
    tx_id           xid8   NOT NULL DEFAULT pg_current_xact_id(),
    -- Each connection takes numbers 64 at a time, sparing a sequence
    -- update per event. That is safe: position only orders the events of
    -- one transaction, and numbers from one connection's cache grow.
    position        bigint GENERATED ALWAYS AS IDENTITY (CACHE 64),
    id              uuid   NOT NULL,
    stream          text   NOT NULL,
    revision        bigint NOT NULL,
    type            text   NOT NULL,
    schema_version  bigint NOT NULL,
    occurred_at     bigint NOT NULL,
    recorded_at     bigint NOT NULL,
    actor_kind      text   NOT NULL,
    actor_id        text   NOT NULL,
    actor_company   text   NOT NULL,
    correlation_id  text   NOT NULL DEFAULT '',
    causation_id    text   NOT NULL DEFAULT '',
    idempotency_key text,
    data            bytea  NOT NULL,
    personal        bytea,
    prev_hash       text   NOT NULL,
    hash            text   NOT NULL,
    CONSTRAINT kyc_events_pkey PRIMARY KEY (tx_id, position),
    CONSTRAINT kyc_events_id_key UNIQUE (id),
    -- The stream row lock already keeps revisions apart; the constraint is
    -- the last line of defence, and the index that stream reads walk.
    CONSTRAINT kyc_events_stream_revision_key UNIQUE (stream, revision)
);
CREATE INDEX kyc_events_idempotency_key ON kyc_events (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP TABLE kyc_events;
DROP TABLE kyc_streams;
