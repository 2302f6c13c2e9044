-- +goose Up
-- The horizon readers of the log stop at (see the postgres event store),
-- computed by a function instead of one statement. The statement cost about
-- 200 µs of server time on every read, subscriptions read about once per
-- append batch, and most of that went to setting up its plan, which reads
-- the lock table, whether or not it was needed. The function returns the
-- snapshot's xmax at once when no transaction is in progress below it, and
-- otherwise applies the same rules as the statement did: a transaction in
-- progress counts unless its id is held by a backend that does not hold the
-- append lock (pg_advisory_xact_lock_shared(1803116385, 1)) or by a prepared
-- transaction.
-- The horizon is passed on in the transaction-local setting kyc.horizon, so
-- the function is called first in the implicit transaction of the read that
-- uses it; the read's snapshot is then taken after this one.
-- Lock ids are 32-bit; they are matched to the snapshot's by their low 32
-- bits (ids in progress are never 2^31 apart).
-- +goose StatementBegin
CREATE FUNCTION kyc_events_horizon() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    snap pg_snapshot := pg_current_snapshot();
    oldest bigint;
BEGIN
    IF pg_snapshot_xmin(snap) = pg_snapshot_xmax(snap) THEN
        RETURN set_config('kyc.horizon', pg_snapshot_xmax(snap)::text, true);
    END IF;
    SELECT min(x::text::bigint) INTO oldest
      FROM pg_snapshot_xip(snap) AS x
     WHERE (x::text::bigint & 4294967295) NOT IN (
        SELECT o.transactionid::text::bigint FROM pg_locks o
         WHERE o.locktype = 'transactionid' AND o.mode = 'ExclusiveLock' AND o.granted
           AND (o.pid IS NULL OR o.pid NOT IN (
            SELECT a.pid FROM pg_locks a
             WHERE a.locktype = 'advisory' AND a.classid = 1803116385 AND a.objid = 1 AND a.objsubid = 2
               AND a.granted AND a.pid IS NOT NULL)));
    RETURN set_config('kyc.horizon', coalesce(oldest, pg_snapshot_xmax(snap)::text::bigint)::text, true);
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION kyc_events_horizon();
