-- Tables of one generation of the audit projection. {gen} is replaced by
-- the generation number; indexes are made when the generation is activated
-- (see customers.up.sql). Times are unix nanoseconds.

-- One row per event, in log order. The log position is unique, so it is
-- the key the newest-first order walks.
CREATE TABLE audit_g{gen} (
    position_commit  INTEGER NOT NULL,
    position_prepare INTEGER NOT NULL,
    event_id         TEXT    NOT NULL,
    customer_id      TEXT    NOT NULL,
    company_id       TEXT    NOT NULL,
    revision         INTEGER NOT NULL,
    type             TEXT    NOT NULL,
    actor_id         TEXT    NOT NULL,
    occurred_at      INTEGER NOT NULL,
    doc              BLOB    NOT NULL
) STRICT;

CREATE INDEX audit_g{gen}_position ON audit_g{gen} (position_commit, position_prepare);
CREATE INDEX audit_g{gen}_company ON audit_g{gen} (company_id, position_commit, position_prepare);
CREATE INDEX audit_g{gen}_customer ON audit_g{gen} (customer_id, position_commit, position_prepare);
CREATE INDEX audit_g{gen}_actor ON audit_g{gen} (actor_id, position_commit, position_prepare);
CREATE INDEX audit_g{gen}_type ON audit_g{gen} (type, position_commit, position_prepare);

-- The company each customer registered in, for events that do not carry it.
CREATE TABLE audit_companies_g{gen} (
    customer_id TEXT PRIMARY KEY,
    company_id  TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Entries per company, so an unfiltered audit page does not count the log.
CREATE TABLE audit_counts_g{gen} (
    company_id TEXT    PRIMARY KEY,
    n          INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
