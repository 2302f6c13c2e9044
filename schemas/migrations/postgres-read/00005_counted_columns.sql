-- +goose Up
-- Status, risk, video call status, verification level and status, and state
-- are counted per value in the term counts (codes 's', 'k', 'v', 'l', 'w',
-- 'z', as singleFields in adapters/readmodel/postgres/customers.go), and
-- their indexes are followed by the created date and seq, so that a list
-- filtered by one of them alone pages off its index and totals off the
-- counts. Generations made before get the counts here, from their
-- customers' columns, as the store writes them: none for an empty value.
-- Their indexes are rebuilt where they exist: a generation still being
-- filled has none yet and gets this release's at activation.
-- +goose StatementBegin
DO $$
DECLARE
    n  text;
    ix record;
BEGIN
    FOR n IN SELECT gen::text FROM read_generations WHERE name = 'customers' AND NOT retired LOOP
        IF to_regclass('read_term_counts_g' || n) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format($f$
            INSERT INTO read_term_counts_g%1$s (field, value, company_id, n)
                SELECT v.field::"char", v.value, c.company_id, count(*)
                FROM read_customers_g%1$s c, LATERAL (VALUES
                    ('s', c.status), ('k', c.risk), ('v', c.video_call_status),
                    ('l', c.verification_level::text), ('w', c.verification_status), ('z', c.state)
                ) AS v (field, value)
                WHERE v.value <> ''
                GROUP BY v.field, v.value, c.company_id;
            $f$, n);
        FOR ix IN SELECT * FROM (VALUES ('status', 'status'), ('risk', 'risk'), ('video', 'video_call_status'),
                ('level', 'verification_level'), ('vstatus', 'verification_status'), ('state', 'state')) AS i (name, col) LOOP
            IF to_regclass(format('read_customers_g%s_%s', n, ix.name)) IS NOT NULL THEN
                EXECUTE format('DROP INDEX read_customers_g%1$s_%2$s', n, ix.name);
                EXECUTE format('CREATE INDEX read_customers_g%1$s_%2$s ON read_customers_g%1$s (%3$I, created_at, seq)', n, ix.name, ix.col);
            END IF;
        END LOOP;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    n  text;
    ix record;
BEGIN
    FOR n IN SELECT gen::text FROM read_generations WHERE name = 'customers' AND NOT retired LOOP
        IF to_regclass('read_term_counts_g' || n) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format($f$DELETE FROM read_term_counts_g%1$s WHERE field IN ('s', 'k', 'v', 'l', 'w', 'z')$f$, n);
        FOR ix IN SELECT * FROM (VALUES ('status', 'status'), ('risk', 'risk'), ('video', 'video_call_status'),
                ('level', 'verification_level'), ('vstatus', 'verification_status'), ('state', 'state')) AS i (name, col) LOOP
            IF to_regclass(format('read_customers_g%s_%s', n, ix.name)) IS NOT NULL THEN
                EXECUTE format('DROP INDEX read_customers_g%1$s_%2$s', n, ix.name);
                EXECUTE format('CREATE INDEX read_customers_g%1$s_%2$s ON read_customers_g%1$s (%3$I)', n, ix.name, ix.col);
            END IF;
        END LOOP;
    END LOOP;
END
$$;
-- +goose StatementEnd
