DROP TABLE IF EXISTS customers_g{gen};
DROP TABLE IF EXISTS customer_docs_g{gen};
DROP TABLE IF EXISTS customer_terms_g{gen};
DROP TABLE IF EXISTS customer_counts_g{gen};
DROP TABLE IF EXISTS customer_values_g{gen};
