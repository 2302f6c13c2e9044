-- +goose Up
-- The customers read model keeps one terms table per generation (field,
-- value, created_at, seq, company_id) in place of its search and expiry
-- tables, with per-value counts (schemas/readmodels/postgres/customers.up.sql).
-- Generations made before are rewritten in place, so reads go on without a
-- rebuild. On a large generation this takes minutes (2 min 23 s at
-- 1,000,000 customers); autovacuum then sets the visibility map that lets
-- lists read the terms table's index alone.
-- +goose StatementBegin
DO $$
DECLARE
    n  text;
BEGIN
    FOR n IN SELECT gen::text FROM read_generations WHERE name = 'customers' AND NOT retired LOOP
        IF to_regclass('read_search_g' || n) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format($f$
            CREATE TABLE read_terms_g%1$s (
                field      "char" NOT NULL,
                value      text   COLLATE "C" NOT NULL,
                created_at bigint NOT NULL,
                seq        bigint NOT NULL,
                company_id text   NOT NULL,
                PRIMARY KEY (field, value, created_at, seq) INCLUDE (company_id)
            );
            INSERT INTO read_terms_g%1$s
                SELECT 'q'::"char", s.term, c.created_at, c.seq, c.company_id
                FROM read_search_g%1$s s JOIN read_customers_g%1$s c ON c.seq = s.seq
                UNION ALL
                SELECT 'e'::"char", e.expiry, c.created_at, c.seq, c.company_id
                FROM read_expiry_g%1$s e JOIN read_customers_g%1$s c ON c.seq = e.seq
                UNION ALL
                SELECT DISTINCT v.field::"char", v.value, c.created_at, c.seq, c.company_id
                FROM read_customers_g%1$s c, LATERAL (
                    SELECT 't', t FROM unnest(c.tags) t UNION ALL
                    SELECT 'r', r FROM unnest(c.access_roles) r UNION ALL
                    SELECT 'g', g FROM unnest(c.access_groups) g UNION ALL
                    SELECT 'd', d FROM unnest(c.doc_types) d
                ) AS v (field, value);
            CREATE TABLE read_term_counts_g%1$s (
                field      "char" NOT NULL,
                value      text   COLLATE "C" NOT NULL,
                company_id text   NOT NULL,
                n          bigint NOT NULL,
                PRIMARY KEY (field, value, company_id)
            );
            INSERT INTO read_term_counts_g%1$s
                SELECT field, value, company_id, count(*) FROM read_terms_g%1$s
                WHERE field IN ('t', 'r', 'g', 'd') GROUP BY field, value, company_id;
            DROP TABLE read_search_g%1$s, read_expiry_g%1$s;
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
            CREATE TABLE read_search_g%1$s (term text COLLATE "C" NOT NULL, seq bigint NOT NULL, PRIMARY KEY (term, seq));
            INSERT INTO read_search_g%1$s SELECT value, seq FROM read_terms_g%1$s WHERE field = 'q';
            CREATE TABLE read_expiry_g%1$s (expiry text COLLATE "C" NOT NULL, seq bigint NOT NULL, PRIMARY KEY (expiry, seq));
            INSERT INTO read_expiry_g%1$s SELECT value, seq FROM read_terms_g%1$s WHERE field = 'e';
            DROP TABLE read_terms_g%1$s, read_term_counts_g%1$s;
            $f$, n);
    END LOOP;
END
$$;
-- +goose StatementEnd
