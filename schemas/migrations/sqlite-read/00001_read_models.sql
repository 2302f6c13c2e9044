-- +goose Up
-- The read models' own file: everything in it can be rebuilt from the event
-- log, so nothing here is precious except as a cache of work done.

-- One row per projection. last_gen only grows, so a generation number is
-- never handed out twice even after its tables are dropped; active is 0
-- while no generation serves reads.
CREATE TABLE projections (
    name     TEXT    PRIMARY KEY,
    active   INTEGER NOT NULL DEFAULT 0,
    last_gen INTEGER NOT NULL DEFAULT 0
) STRICT;

-- One row per generation whose tables exist. The checkpoint lives here and
-- is written in the same transaction as the generation's rows, so after a
-- crash the rows are exactly those of the events up to the checkpoint.
CREATE TABLE generations (
    name               TEXT    NOT NULL,
    gen                INTEGER NOT NULL,
    version            INTEGER NOT NULL,
    checkpoint_commit  INTEGER NOT NULL DEFAULT 0,
    checkpoint_prepare INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL, -- unix nanoseconds
    created_at         INTEGER NOT NULL, -- unix nanoseconds
    PRIMARY KEY (name, gen)
) STRICT;

-- +goose Down
DROP TABLE generations;
DROP TABLE projections;
