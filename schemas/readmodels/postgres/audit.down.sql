DROP TABLE IF EXISTS read_audit_g{gen};
DROP TABLE IF EXISTS read_audit_companies_g{gen};
DROP TABLE IF EXISTS read_audit_counts_g{gen};
