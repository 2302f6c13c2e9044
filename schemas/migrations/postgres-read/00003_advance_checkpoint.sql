-- +goose Up
-- A projection's batch goes to the server as one pipeline: the checkpoint
-- move first, then the rows, all in the implicit transaction of the
-- pipeline. The move must therefore fail (and so undo the whole batch) when
-- the generation is not where the writer last saw it, rather than update no
-- row: that is this function's SQLSTATE KYF01. One round trip per batch
-- instead of five keeps a projection's commit off the scheduler's queue
-- between round trips while writers keep the cores busy.
-- +goose StatementBegin
CREATE FUNCTION read_advance_checkpoint(
    p_name text, p_gen bigint, p_commit bigint, p_prepare bigint,
    p_seen_commit bigint, p_seen_prepare bigint, p_seen_writes bigint
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    UPDATE read_generations
        SET checkpoint_commit = p_commit, checkpoint_prepare = p_prepare, writes = writes + 1, updated_at = now()
        WHERE name = p_name AND gen = p_gen AND NOT retired
            AND checkpoint_commit = p_seen_commit AND checkpoint_prepare = p_seen_prepare AND writes = p_seen_writes
        RETURNING writes INTO n;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'read model % generation % is not at the checkpoint this writer saw', p_name, p_gen
            USING ERRCODE = 'KYF01';
    END IF;
    RETURN n;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION read_advance_checkpoint(text, bigint, bigint, bigint, bigint, bigint, bigint);
