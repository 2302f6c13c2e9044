-- +goose Up
-- Delivery state: where each consumer of the log that delivers outside the
-- engine (the bus relay) has got to. Unlike the read models this is not
-- rebuildable: losing a row means delivering the whole log again.
CREATE TABLE kyc_delivery_checkpoints (
    name       text        PRIMARY KEY,
    commit_pos bigint      NOT NULL,
    prepare    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE kyc_delivery_checkpoints;
