-- +goose Up
-- Bookkeeping of the read models. The event store may share the database,
-- so every table of the read side is named read_*; everything in them can be
-- rebuilt from the event log.

-- One row per projection. last_gen only grows, so a generation number is
-- never handed out twice even after its tables are dropped; active is 0
-- while no generation serves reads. switches counts activations: processes
-- that cache the active generation keep the value with the highest count,
-- whatever order they learn them in.
CREATE TABLE read_projections (
    name     text   PRIMARY KEY,
    active   bigint NOT NULL DEFAULT 0,
    last_gen bigint NOT NULL DEFAULT 0,
    switches bigint NOT NULL DEFAULT 0
);

-- One row per generation whose tables exist. The checkpoint is written in
-- the same transaction as the generation's rows, so the rows are exactly
-- those of the events up to it. writes counts those transactions: a writer
-- compares checkpoint and count with what it last saw before it writes, so a
-- writer that lost its lease cannot interleave with the one that took over.
-- A retired generation was replaced or abandoned and waits for its tables
-- to be dropped; nothing reads or writes it any more.
CREATE TABLE read_generations (
    name               text        NOT NULL REFERENCES read_projections (name),
    gen                bigint      NOT NULL,
    version            integer     NOT NULL,
    checkpoint_commit  bigint      NOT NULL DEFAULT 0,
    checkpoint_prepare bigint      NOT NULL DEFAULT 0,
    writes             bigint      NOT NULL DEFAULT 0,
    retired            boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, gen)
);

-- +goose Down
DROP TABLE read_generations;
DROP TABLE read_projections;
