DROP TABLE IF EXISTS read_customers_g{gen};
DROP TABLE IF EXISTS read_customer_docs_g{gen};
DROP TABLE IF EXISTS read_terms_g{gen};
DROP TABLE IF EXISTS read_term_counts_g{gen};
DROP TABLE IF EXISTS read_customer_counts_g{gen};
-- Tables of generations made before the terms table.
DROP TABLE IF EXISTS read_search_g{gen};
DROP TABLE IF EXISTS read_expiry_g{gen};
