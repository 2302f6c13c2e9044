-- +goose Up
-- From this version on, readers of the log stop below the oldest append
-- still running rather than below the oldest transaction of the server, and
-- appends announce themselves by taking a shared advisory lock before they
-- write. A binary from before would append without the lock, and readers
-- could pass its events before they commit; moving the schema version makes
-- such a binary refuse this database instead.
COMMENT ON TABLE kyc_events IS
    'Appends take pg_advisory_xact_lock_shared(1803116385, 1) before their first write; readers read below the oldest holder (see the postgres event store).';

-- +goose Down
COMMENT ON TABLE kyc_events IS NULL;
