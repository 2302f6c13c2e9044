DROP TABLE IF EXISTS audit_g{gen};
DROP TABLE IF EXISTS audit_companies_g{gen};
DROP TABLE IF EXISTS audit_counts_g{gen};
