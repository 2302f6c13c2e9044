-- +goose Up
-- Webhooks: the endpoints registered over the API, their signing secrets,
-- and every delivery with its attempts. Deliveries are the durable queue:
-- a pending row is sent when next_attempt_at has passed, by whichever
-- process claims it (in_flight_until is the claim), so pending deliveries
-- survive restarts. Times are Unix milliseconds (UTC), which compare as
-- numbers, unlike text timestamps of varying precision.
CREATE TABLE webhook_endpoints (
    id          TEXT    PRIMARY KEY,
    -- The company whose customers' events the endpoint receives; '*' means
    -- every company (superusers only).
    company     TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    -- JSON array of domain event types; [] means every type.
    types       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_company ON webhook_endpoints (company);

-- Signing secrets. Stored as they are: the engine has no key management
-- service to wrap them with, and it needs the raw key to sign.
CREATE TABLE webhook_secrets (
    endpoint_id TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    id          TEXT    NOT NULL,
    secret      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- NULL: active until the next rotation sets it.
    expires_at  INTEGER,
    PRIMARY KEY (endpoint_id, id)
) STRICT;

-- Which company a customer belongs to, learned from CustomerRegistered (the
-- only event that says) so later events of the customer find their
-- company's endpoints.
CREATE TABLE webhook_customers (
    customer_id TEXT PRIMARY KEY,
    company     TEXT NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    -- Derived from endpoint_id and event_id, so a bus message delivered
    -- twice cannot make two deliveries.
    id              TEXT    PRIMARY KEY,
    endpoint_id     TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    customer_id     TEXT    NOT NULL,
    company         TEXT    NOT NULL,
    -- The exact bytes POSTed (and signed): a structured-mode CloudEvent.
    payload         BLOB    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    rounds          INTEGER NOT NULL DEFAULT 0,
    replays         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    in_flight_until INTEGER,
    claimed_by      TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    last_status     INTEGER,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    dead_at         INTEGER,
    replayed_at     INTEGER,
    UNIQUE (endpoint_id, event_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    -- NULL: no HTTP response (connection refused, timeout).
    http_status INTEGER,
    error       TEXT    NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_customers;
DROP TABLE webhook_secrets;
DROP TABLE webhook_endpoints;
