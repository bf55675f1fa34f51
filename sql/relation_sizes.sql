-- dbops.relation_sizes(): table, TOAST and index sizes per table
\set VERBOSITY terse
CREATE TABLE rs_big AS SELECT i, repeat('x', 3000) AS t FROM generate_series(1, 3000) i;
CREATE INDEX rs_big_i ON rs_big (i);
CREATE TABLE rs_wide (id int PRIMARY KEY, doc text);
INSERT INTO rs_wide SELECT i, (SELECT string_agg(md5(i::text || j::text), '') FROM generate_series(1, 200) j)
  FROM generate_series(1, 200) i;
VACUUM ANALYZE rs_big, rs_wide;
-- never vacuumed nor analyzed: measured, not estimated
CREATE TABLE rs_new (a int);
INSERT INTO rs_new SELECT generate_series(1, 1000);
CREATE MATERIALIZED VIEW rs_mv AS SELECT * FROM rs_new;

-- after VACUUM the catalog's page counts are the sizes, give or take the
-- free space map a TOAST table may not have
SELECT e.relation, e.kind, e.table_bytes = x.table_bytes AS table_same,
       abs(e.toast_bytes - x.toast_bytes) <= 4 * 8192 AS toast_close,
       e.index_bytes = x.index_bytes AS index_same,
       e.toast_bytes > 0 AS has_toast, e.index_bytes > 0 AS has_index,
       e.rows_estimate, e.estimated
FROM dbops.relation_sizes(0) e JOIN dbops.relation_sizes(0, exact => true) x USING (relation)
WHERE e.relation::text LIKE 'rs\_%' ORDER BY e.relation::text;

-- measured: the same bytes as pg_total_relation_size(), parts add up
SELECT count(*) FILTER (WHERE total_bytes <> pg_total_relation_size(relation)) AS not_total,
       count(*) FILTER (WHERE total_bytes <> table_bytes + toast_bytes + index_bytes) AS parts_off,
       count(*) FILTER (WHERE estimated) AS estimated,
       count(*) > 0 AS some
FROM dbops.relation_sizes(0, exact => true, include_system => true);
-- largest first, limited; system catalogs only when asked
SELECT relation, rank() OVER (ORDER BY total_bytes DESC) = row_number() OVER () AS in_order
FROM dbops.relation_sizes(2);
SELECT count(*) FILTER (WHERE relation::text LIKE 'pg\_%') > 0 AS catalogs_listed
FROM dbops.relation_sizes(0, include_system => true);
SELECT count(*) FILTER (WHERE relation::text LIKE 'pg\_%') AS catalogs_listed
FROM dbops.relation_sizes(0);
SELECT round(sum(share_pct)) <= 100 AS shares FROM dbops.relation_sizes(0, include_system => true);

-- bad input
SELECT * FROM dbops.relation_sizes(-1);
SELECT * FROM dbops.relation_sizes(NULL);
SELECT * FROM dbops.relation_sizes(10, NULL);
SELECT * FROM dbops.relation_sizes(10, false, NULL);

-- any role may list sizes (as pg_total_relation_size() is open to it)
CREATE ROLE regress_sizes_nobody;
SET ROLE regress_sizes_nobody;
SELECT count(*) > 0 AS nobody_lists FROM dbops.relation_sizes();
RESET ROLE;
DROP ROLE regress_sizes_nobody;
SELECT p.proconfig FROM pg_proc p WHERE p.oid = 'dbops.relation_sizes(integer, boolean, boolean)'::regprocedure;
DROP MATERIALIZED VIEW rs_mv;
DROP TABLE rs_big, rs_wide, rs_new;
