-- Tables of one generation of the audit projection. {gen} is replaced by
-- the generation number; the one-line CREATE INDEX statements run when the
-- generation is activated (see customers.up.sql). Times are unix
-- nanoseconds.

-- One row per event, in log order; the entry as JSON (projections.AuditEntry,
-- kept byte for byte) in doc. Entries are never updated, so the document
-- stays in the row.
CREATE TABLE read_audit_g{gen} (
    position_commit  bigint NOT NULL,
    position_prepare bigint NOT NULL,
    event_id         text   NOT NULL,
    customer_id      text   NOT NULL,
    company_id       text   NOT NULL,
    type             text   NOT NULL,
    actor_id         text   NOT NULL,
    occurred_at      bigint NOT NULL,
    doc              bytea  NOT NULL
);

-- The company each customer registered in, for events that do not carry it.
CREATE TABLE read_audit_companies_g{gen} (
    customer_id text PRIMARY KEY,
    company_id  text NOT NULL
);

-- Entries per company, so an unfiltered audit page does not count the log.
CREATE TABLE read_audit_counts_g{gen} (
    company_id text   PRIMARY KEY,
    n          bigint NOT NULL
);

-- Newest first, alone and after each equality filter.
CREATE INDEX read_audit_g{gen}_position ON read_audit_g{gen} (position_commit, position_prepare);
CREATE INDEX read_audit_g{gen}_company ON read_audit_g{gen} (company_id, position_commit, position_prepare);
CREATE INDEX read_audit_g{gen}_customer ON read_audit_g{gen} (customer_id, position_commit, position_prepare);
CREATE INDEX read_audit_g{gen}_actor ON read_audit_g{gen} (actor_id, position_commit, position_prepare);
CREATE INDEX read_audit_g{gen}_type ON read_audit_g{gen} (type, position_commit, position_prepare);
CREATE INDEX read_audit_g{gen}_occurred ON read_audit_g{gen} (occurred_at);
