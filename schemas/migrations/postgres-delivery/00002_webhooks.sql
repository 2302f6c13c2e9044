-- +goose Up
-- Webhooks: the endpoints registered over the API, their signing secrets,
-- and every delivery with its attempts. Deliveries are the durable queue:
-- a pending row is sent when next_attempt_at has passed, by whichever
-- process claims it (in_flight_until is the claim, taken with FOR UPDATE
-- SKIP LOCKED), so pending deliveries survive restarts and processes that
-- share the database never send one delivery at the same time.
CREATE TABLE kyc_webhook_endpoints (
    id          uuid        PRIMARY KEY,
    -- The company whose customers' events the endpoint receives; '*' means
    -- every company (superusers only).
    company     text        NOT NULL,
    url         text        NOT NULL,
    -- Domain event types; [] means every type.
    types       jsonb       NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL
);
CREATE INDEX kyc_webhook_endpoints_company ON kyc_webhook_endpoints (company);

-- Signing secrets. Stored as they are: the engine has no key management
-- service to wrap them with, and it needs the raw key to sign.
CREATE TABLE kyc_webhook_secrets (
    endpoint_id uuid        NOT NULL REFERENCES kyc_webhook_endpoints (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    secret      bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    -- NULL: active until the next rotation sets it.
    expires_at  timestamptz,
    PRIMARY KEY (endpoint_id, id)
);

-- Which company a customer belongs to, learned from CustomerRegistered (the
-- only event that says) so later events of the customer find their
-- company's endpoints.
CREATE TABLE kyc_webhook_customers (
    customer_id text PRIMARY KEY,
    company     text NOT NULL
);

CREATE TABLE kyc_webhook_deliveries (
    -- Derived from endpoint_id and event_id, so a bus message delivered
    -- twice cannot make two deliveries.
    id              uuid        PRIMARY KEY,
    endpoint_id     uuid        NOT NULL REFERENCES kyc_webhook_endpoints (id) ON DELETE CASCADE,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    customer_id     text        NOT NULL,
    company         text        NOT NULL,
    -- The exact bytes POSTed (and signed): a structured-mode CloudEvent.
    -- bytea, not jsonb, which would reformat them.
    payload         bytea       NOT NULL,
    status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    rounds          integer     NOT NULL DEFAULT 0,
    replays         integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    in_flight_until timestamptz,
    claimed_by      text,
    last_error      text        NOT NULL DEFAULT '',
    last_status     integer,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    dead_at         timestamptz,
    replayed_at     timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX kyc_webhook_deliveries_due ON kyc_webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX kyc_webhook_deliveries_endpoint ON kyc_webhook_deliveries (endpoint_id, created_at);

CREATE TABLE kyc_webhook_attempts (
    delivery_id uuid        NOT NULL REFERENCES kyc_webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL,
    -- NULL: no HTTP response (connection refused, timeout).
    http_status integer,
    error       text        NOT NULL DEFAULT '',
    duration_ms bigint      NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- +goose Down
DROP TABLE kyc_webhook_attempts;
DROP TABLE kyc_webhook_deliveries;
DROP TABLE kyc_webhook_customers;
DROP TABLE kyc_webhook_secrets;
DROP TABLE kyc_webhook_endpoints;
