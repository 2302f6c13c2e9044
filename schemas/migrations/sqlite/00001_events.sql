-- +goose Up
-- Every stream's name once, so that stream_index can key on a small integer.
-- A row is added with a stream's first event.
CREATE TABLE streams (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

-- The global log: one row per event. position is the global order; a single
-- writer assigns it, so readers never see a gap that later fills. Events are
-- never deleted, so no position is ever handed out twice (AUTOINCREMENT would
-- guarantee that at a cost on every insert). id is best a UUIDv7: the unique
-- index on it then grows at its end like the log, where random ids would
-- make every append write a page of its own.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    stream          TEXT    NOT NULL,
    revision        INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    occurred_at     INTEGER NOT NULL, -- unix nanoseconds
    recorded_at     INTEGER NOT NULL, -- unix nanoseconds
    actor_kind      TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL,
    actor_company   TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL DEFAULT '',
    causation_id    TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT,
    data            TEXT    NOT NULL,
    personal        TEXT,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL
);
CREATE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Where each stream's events are. An index on events (stream, revision)
-- would cost every append a write to its stream's own page of that index,
-- one page per stream per commit; instead the writer indexes the log's tail
-- in bulk, every few hundred events and whenever it goes idle, so a commit
-- writes mostly the pages at the end of the log. Events after
-- indexed_through are not here yet: the writing process's readers find them
-- in the writer's memory, other processes by scanning that short tail of
-- events in the same statement, so that every read sees one snapshot.
-- The primary key still refuses a second event at a stream's revision.
CREATE TABLE stream_index (
    stream_id INTEGER NOT NULL,
    revision  INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, revision)
) WITHOUT ROWID;

CREATE TABLE stream_index_state (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    indexed_through INTEGER NOT NULL -- every event at or before this position is in stream_index
);
INSERT INTO stream_index_state (singleton, indexed_through) VALUES (1, 0);

-- +goose Down
DROP TABLE stream_index_state;
DROP TABLE stream_index;
DROP TABLE events;
DROP TABLE streams;
