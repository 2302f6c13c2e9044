-- Tables of one generation of the customers projection. {gen} is replaced
-- by the generation number. The store runs everything but the one-line
-- CREATE INDEX statements when it creates the generation, and those when it
-- activates it: a rebuild fills bare tables and sorts each index once at the
-- end, which is several times faster than keeping them up to date row by row.
--
-- Text that is compared or sorted (names, dates, search terms) uses the "C"
-- collation: byte order, which is what Go's string comparison does and what
-- the prefix ranges of the search rely on, whatever the database's locale.

-- One row per customer, with the columns filters and sorts use. seq is
-- assigned on first insert and kept on replace; it breaks sort ties so pages
-- are stable. Times are unix nanoseconds (timestamptz would round them to
-- microseconds); last_status_update is NULL when the status never changed
-- and sorts before every time. birth_date is an ISO date or ''. The
-- multi-valued filters whose test is "any of" are arrays with GIN indexes
-- (overlap, &&).
CREATE TABLE read_customers_g{gen} (
    seq                 bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  text    NOT NULL UNIQUE,
    company_id          text    NOT NULL,
    status              text    NOT NULL,
    nationality         text    NOT NULL,
    risk                text    NOT NULL,
    video_call_status   text    NOT NULL,
    verification_level  integer NOT NULL,
    verification_status text    NOT NULL,
    state               text    NOT NULL,
    aggregated_status   text    NOT NULL,
    country             text    NOT NULL,
    created_by_agent    text    NOT NULL,
    referral_code       text    NOT NULL,
    birth_date          text    COLLATE "C" NOT NULL,
    created_at          bigint  NOT NULL,
    last_status_update  bigint,
    name_sort           text    COLLATE "C" NOT NULL,
    tags                text[]  NOT NULL,
    access_roles        text[]  NOT NULL,
    access_groups       text[]  NOT NULL,
    doc_types           text[]  NOT NULL
);

-- The customer as JSON (domain.Customer, kept byte for byte), and its rows
-- of the terms table for search and expiry as JSON ({"q": [...], "e":
-- [...]}), so a replace rewrites only the terms that changed (the other
-- fields' terms are the arrays of the customers row). Kept out of the
-- customers table so that its rows stay narrow: counts and filters visit
-- many of them. Only seq is indexed, so replacing a document is a HOT update
-- when the page has room.
CREATE TABLE read_customer_docs_g{gen} (
    seq   bigint PRIMARY KEY,
    terms jsonb  NOT NULL,
    doc   bytea  NOT NULL
) WITH (fillfactor = 85);

-- One row per value of a customer's multi-valued fields: field 'q' a search
-- term (projections.SearchTerms), 'e' a document expiry date, 't' a tag,
-- 'r' an access role, 'g' an access group, 'd' a document type; and one for
-- each of four filters on a single value that seldom changes, when the
-- customer has one: 'n' nationality, 'c' country, 'a' agent, 'f' referral
-- code (the columns below serve those in combinations). The row
-- carries the customer's created date and company, which a customer keeps
-- for life, so that a lone filter of that kind pages in the default order
-- and checks a company scope on the index alone, without visiting the
-- customers: for one value the key is already in page order, and a range
-- (a search prefix, [w, w with its last character incremented), or an
-- expiry range) sorts narrow index entries only.
CREATE TABLE read_terms_g{gen} (
    field      "char" NOT NULL,
    value      text   COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    seq        bigint NOT NULL,
    company_id text   NOT NULL,
    PRIMARY KEY (field, value, created_at, seq) INCLUDE (company_id)
);

-- Customers per value of the fields counted on the terms table that hold
-- exact values (all but search terms and expiry dates), and of the
-- single-valued columns that change too often for terms rows ('s' status,
-- 'k' risk, 'v' video call status, 'l' verification level, 'w'
-- verification status, 'z' state), per company, so that a list filtered by
-- such values alone has its total without counting its matches.
CREATE TABLE read_term_counts_g{gen} (
    field      "char" NOT NULL,
    value      text   COLLATE "C" NOT NULL,
    company_id text   NOT NULL,
    n          bigint NOT NULL,
    PRIMARY KEY (field, value, company_id)
);

-- Customers per company, so a list filtered by company alone (or not at
-- all) does not count a million rows for its total.
CREATE TABLE read_customer_counts_g{gen} (
    company_id text   PRIMARY KEY,
    n          bigint NOT NULL
);

-- Sorts: each key alone and after company_id, since every caller but a
-- superuser is scoped to one company. Read backwards they serve the
-- descending orders (last_status_update DESC NULLS LAST included).
CREATE INDEX read_customers_g{gen}_created ON read_customers_g{gen} (created_at, seq);
CREATE INDEX read_customers_g{gen}_company_created ON read_customers_g{gen} (company_id, created_at, seq);
CREATE INDEX read_customers_g{gen}_updated ON read_customers_g{gen} (last_status_update NULLS FIRST, seq);
CREATE INDEX read_customers_g{gen}_company_updated ON read_customers_g{gen} (company_id, last_status_update NULLS FIRST, seq);
CREATE INDEX read_customers_g{gen}_name ON read_customers_g{gen} (name_sort, seq);
CREATE INDEX read_customers_g{gen}_company_name ON read_customers_g{gen} (company_id, name_sort, seq);
-- Filters on one value per customer; bitmap scans combine them. Alone,
-- nationality, country, agent and referral code page off the terms table;
-- the others page off their own index, which the created date and seq
-- follow so that a deep page skips index entries instead of sorting every
-- match (at 1,000,000 customers 35 to 100 ms -> 1 to 8 ms). Such an index
-- loses btree deduplication, so counting through it is slower: the totals
-- of one filter come from the term counts instead.
CREATE INDEX read_customers_g{gen}_status ON read_customers_g{gen} (status, created_at, seq);
CREATE INDEX read_customers_g{gen}_nationality ON read_customers_g{gen} (nationality);
CREATE INDEX read_customers_g{gen}_risk ON read_customers_g{gen} (risk, created_at, seq);
CREATE INDEX read_customers_g{gen}_video ON read_customers_g{gen} (video_call_status, created_at, seq);
CREATE INDEX read_customers_g{gen}_level ON read_customers_g{gen} (verification_level, created_at, seq);
CREATE INDEX read_customers_g{gen}_vstatus ON read_customers_g{gen} (verification_status, created_at, seq);
CREATE INDEX read_customers_g{gen}_state ON read_customers_g{gen} (state, created_at, seq);
CREATE INDEX read_customers_g{gen}_country ON read_customers_g{gen} (country);
CREATE INDEX read_customers_g{gen}_agent ON read_customers_g{gen} (created_by_agent);
CREATE INDEX read_customers_g{gen}_referral ON read_customers_g{gen} (referral_code);
CREATE INDEX read_customers_g{gen}_birth ON read_customers_g{gen} (birth_date);
-- Filters on several values per customer.
CREATE INDEX read_customers_g{gen}_tags ON read_customers_g{gen} USING gin (tags);
CREATE INDEX read_customers_g{gen}_roles ON read_customers_g{gen} USING gin (access_roles);
CREATE INDEX read_customers_g{gen}_groups ON read_customers_g{gen} USING gin (access_groups);
CREATE INDEX read_customers_g{gen}_doc_types ON read_customers_g{gen} USING gin (doc_types);
