-- +goose Up
-- Each delivery keeps its event's place in the log, so that deliveries made
-- in the same millisecond are listed in event order; before, they came in
-- the order of their ids, which are hashes. Deliveries made before this
-- version, and events published without a position, have 0/0.
ALTER TABLE kyc_webhook_deliveries
    ADD COLUMN position_commit bigint NOT NULL DEFAULT 0,
    ADD COLUMN position_prepare bigint NOT NULL DEFAULT 0;
DROP INDEX kyc_webhook_deliveries_endpoint;
CREATE INDEX kyc_webhook_deliveries_endpoint ON kyc_webhook_deliveries (endpoint_id, created_at, position_commit, position_prepare);

-- +goose Down
DROP INDEX kyc_webhook_deliveries_endpoint;
CREATE INDEX kyc_webhook_deliveries_endpoint ON kyc_webhook_deliveries (endpoint_id, created_at);
ALTER TABLE kyc_webhook_deliveries DROP COLUMN position_prepare, DROP COLUMN position_commit;
