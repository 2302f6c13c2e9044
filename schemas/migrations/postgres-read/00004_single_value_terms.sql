-- +goose Up
-- The terms table also holds four filters on one value per customer that
-- seldom changes (nationality, country, agent, referral code), with their
-- per-value counts, so that a list filtered by one of them alone pages off
-- the terms table's key instead of sorting every match (deep pages took 80
-- to 260 ms at 1,000,000 customers). Generations made before get those rows here, from their
-- customers' columns, as the store writes them: no row for an empty value.
-- The field codes are those of singleFields in the store
-- (adapters/readmodel/postgres/customers.go).
-- +goose StatementBegin
DO $$
DECLARE
    n  text;
BEGIN
    FOR n IN SELECT gen::text FROM read_generations WHERE name = 'customers' AND NOT retired LOOP
        IF to_regclass('read_terms_g' || n) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format($f$
            INSERT INTO read_terms_g%1$s (field, value, created_at, seq, company_id)
                SELECT v.field::"char", v.value, c.created_at, c.seq, c.company_id
                FROM read_customers_g%1$s c, LATERAL (VALUES
                    ('n', c.nationality), ('c', c.country), ('a', c.created_by_agent), ('f', c.referral_code)
                ) AS v (field, value)
                WHERE v.value <> '';
            INSERT INTO read_term_counts_g%1$s (field, value, company_id, n)
                SELECT field, value, company_id, count(*) FROM read_terms_g%1$s
                WHERE field IN ('n', 'c', 'a', 'f') GROUP BY field, value, company_id;
            $f$, n);
        EXECUTE format('ANALYZE read_terms_g%1$s', n);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    n  text;
BEGIN
    FOR n IN SELECT gen::text FROM read_generations WHERE name = 'customers' AND NOT retired LOOP
        IF to_regclass('read_terms_g' || n) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format($f$
            DELETE FROM read_terms_g%1$s WHERE field IN ('n', 'c', 'a', 'f');
            DELETE FROM read_term_counts_g%1$s WHERE field IN ('n', 'c', 'a', 'f');
            $f$, n);
    END LOOP;
END
$$;
-- +goose StatementEnd
