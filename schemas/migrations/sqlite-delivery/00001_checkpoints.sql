-- +goose Up
-- Delivery state: where each consumer of the log that delivers outside the
-- engine (the bus relay) has got to. Unlike the read models this is not
-- rebuildable: losing a row means delivering the whole log again.
CREATE TABLE delivery_checkpoints (
    name       TEXT    PRIMARY KEY,
    commit_pos INTEGER NOT NULL,
    prepare    INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

-- +goose Down
DROP TABLE delivery_checkpoints;
