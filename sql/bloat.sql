-- dbops.bloat(): exact against a real rewrite, sample, stats notes, errors,
-- privileges.  Tables are small and deterministic; sampling uses a seed.
CREATE EXTENSION IF NOT EXISTS pgstattuple;
SET client_min_messages = warning;

CREATE TABLE bl_t (id int PRIMARY KEY, a int, pad text) WITH (autovacuum_enabled = off);
INSERT INTO bl_t SELECT g, g % 100, repeat('x', 40 + g % 60) FROM generate_series(1, 20000) g;
CREATE INDEX bl_t_a ON bl_t (a);
DELETE FROM bl_t WHERE id % 3 = 0;
VACUUM bl_t;
ANALYZE bl_t;

-- exact: the predicted size after a rewrite is the size VACUUM FULL / REINDEX gives
CREATE TEMP TABLE bl_pred AS
SELECT relation::text AS rel, size_bytes, size_bytes - bloat_bytes AS after, bloat_pct, method
FROM dbops.bloat('bl_t', 'exact')
WHERE kind IN ('table', 'index');
SELECT rel, method, bloat_pct > 20 AS bloated FROM bl_pred ORDER BY rel;

-- pgstattuple agrees: live bytes are its tuple bytes, MAXALIGNed, plus line pointers
SELECT b.live_bytes BETWEEN p.tuple_len + 4 * p.tuple_count AND p.tuple_len + 11 * p.tuple_count AS live_matches,
       abs(b.free_bytes - p.free_space) < 0.02 * b.size_bytes AS free_matches
FROM dbops.bloat('bl_t', 'exact') b, pgstattuple('bl_t') p
WHERE b.relation = 'bl_t'::regclass;

-- pgstatindex leaf density agrees with the index's live bytes
SELECT abs(100 * b.live_bytes::numeric / (s.leaf_pages * 8152) - s.avg_leaf_density) < 3 AS density_matches
FROM dbops.bloat('bl_t_pkey', 'exact') b, pgstatindex('bl_t_pkey') s;

VACUUM FULL bl_t;
SELECT p.rel, p.after = pg_relation_size(p.rel::regclass) AS exact_after_matches_rewrite,
       pg_relation_size(p.rel::regclass) - p.after AS diff_bytes
FROM bl_pred p ORDER BY p.rel;

-- after the rewrite there is nothing left to give back
SELECT relation, bloat_bytes FROM dbops.bloat('bl_t', 'exact') WHERE kind IN ('table', 'index') ORDER BY 1;

-- fillfactor: a rewrite at fillfactor 70 leaves 30% free, which is not bloat
CREATE TABLE bl_ff (id int, pad text) WITH (fillfactor = 70, autovacuum_enabled = off);
INSERT INTO bl_ff SELECT g, repeat('y', 50) FROM generate_series(1, 10000) g;
DELETE FROM bl_ff WHERE id % 4 = 0;
CREATE TEMP TABLE bl_pred2 AS SELECT size_bytes - bloat_bytes AS after FROM dbops.bloat('bl_ff', 'exact') WHERE kind = 'table';
VACUUM FULL bl_ff;
SELECT after = pg_relation_size('bl_ff') AS ff70_matches_rewrite FROM bl_pred2;

-- TOAST: the TOAST table is reported with its table, and predicted exactly
CREATE TABLE bl_toast (id int, doc text) WITH (autovacuum_enabled = off);
ALTER TABLE bl_toast ALTER doc SET STORAGE EXTERNAL;
INSERT INTO bl_toast SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 300) g;
DELETE FROM bl_toast WHERE id % 2 = 0;
SELECT kind, method, bloat_pct BETWEEN 40 AND 60 AS about_half FROM dbops.bloat('bl_toast', 'exact') WHERE kind <> 'toast index' ORDER BY kind;
CREATE TEMP TABLE bl_pred3 AS SELECT size_bytes - bloat_bytes AS after FROM dbops.bloat('bl_toast', 'exact') WHERE kind = 'toast';
VACUUM FULL bl_toast;
SELECT p.after = pg_relation_size(c.reltoastrelid) AS toast_matches_rewrite
FROM bl_pred3 p, pg_class c WHERE c.oid = 'bl_toast'::regclass;

-- deduplicated btree: the rebuild's posting lists are modelled
CREATE TABLE bl_dup (k int) WITH (autovacuum_enabled = off);
INSERT INTO bl_dup SELECT g % 50 FROM generate_series(1, 30000) g;
CREATE INDEX bl_dup_k ON bl_dup (k);
DELETE FROM bl_dup WHERE ctid IN (SELECT ctid FROM bl_dup TABLESAMPLE BERNOULLI (40) REPEATABLE (7));
VACUUM bl_dup;
CREATE TEMP TABLE bl_pred4 AS SELECT size_bytes - bloat_bytes AS after FROM dbops.bloat('bl_dup_k', 'exact');
REINDEX INDEX bl_dup_k;
SELECT after = pg_relation_size('bl_dup_k') AS dedup_matches_reindex FROM bl_pred4;

-- an index whose table has dead rows VACUUM has not removed: exact checks every
-- entry against the table, as a REINDEX would drop those of dead rows
CREATE TABLE bl_upd (id int, k int, pad text) WITH (autovacuum_enabled = off);
INSERT INTO bl_upd SELECT g, g, md5(g::text) FROM generate_series(1, 20000) g;
CREATE INDEX bl_upd_k ON bl_upd (k);
UPDATE bl_upd SET k = k + 1 WHERE id % 4 = 0;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE bl_pred5 AS SELECT size_bytes - bloat_bytes AS after, note FROM dbops.bloat('bl_upd_k', 'exact');
SELECT note LIKE 'checked % index entries against the table%' AS checked_noted FROM bl_pred5;
REINDEX INDEX bl_upd_k;
SELECT after = pg_relation_size('bl_upd_k') AS unvacuumed_matches_reindex FROM bl_pred5;

-- sample: deterministic with a seed, reads at most max_pages, interval around exact
CREATE TABLE bl_big (id int, pad text) WITH (autovacuum_enabled = off);
INSERT INTO bl_big SELECT g, repeat('z', 60 + g % 40) FROM generate_series(1, 60000) g;
DELETE FROM bl_big WHERE id % 5 < 2;
SELECT e.bloat_pct AS exact_pct,
       s.method, s.pages_read <= 150 AS within_budget, s.pages_read >= 30 AS read_some,
       abs(s.bloat_pct - e.bloat_pct) < 2 AS close_to_exact,
       e.bloat_pct BETWEEN s.ci_low_pct - 1 AND s.ci_high_pct + 1 AS ci_near_exact,
       s.ci_low_pct <= s.bloat_pct AND s.bloat_pct <= s.ci_high_pct AS ci_ordered
FROM dbops.bloat('bl_big', 'exact') e, dbops.bloat('bl_big', 'sample', max_pages => 150, seed => 42) s
WHERE e.kind = 'table' AND s.kind = 'table';
SELECT (SELECT bloat_pct FROM dbops.bloat('bl_big', 'sample', max_pages => 150, seed => 42) WHERE kind = 'table') =
       (SELECT bloat_pct FROM dbops.bloat('bl_big', 'sample', max_pages => 150, seed => 42) WHERE kind = 'table')
       AS seed_is_deterministic;

-- auto: small relations are read in full; a spent budget falls back with a note
SELECT relation, method, pages_read FROM dbops.bloat('bl_ff', 'auto') WHERE kind = 'table';
SELECT method, pages_read, note FROM dbops.bloat('bl_big', 'auto', max_pages => 10) WHERE kind = 'table';
-- the whole database, within a budget: pages_read never exceeds it
SELECT sum(pages_read) <= 500 AS within_budget, count(*) FILTER (WHERE note LIKE 'page budget of the call spent%') > 0 AS leftovers_noted
FROM dbops.bloat(max_pages => 500);

-- stats: notes say when the catalog estimate cannot be trusted
CREATE TABLE bl_nostats (id int, t text) WITH (autovacuum_enabled = off);
INSERT INTO bl_nostats SELECT g, 'v' FROM generate_series(1, 1000) g;
SELECT method, bloat_bytes, note FROM dbops.bloat('bl_nostats', 'stats') WHERE kind = 'table';
CREATE TABLE bl_stale (id int, t text) WITH (autovacuum_enabled = off);
INSERT INTO bl_stale SELECT g, 'v' FROM generate_series(1, 5000) g;
ANALYZE bl_stale;
DELETE FROM bl_stale WHERE id % 2 = 0;
SELECT pg_stat_force_next_flush();
SELECT note LIKE '%statistics stale:%rows changed since the last ANALYZE%' AS stale_noted FROM dbops.bloat('bl_stale', 'stats') WHERE kind = 'table';
SELECT note FROM dbops.bloat('bl_toast', 'stats') WHERE kind = 'toast';
ANALYZE bl_toast;
SELECT note LIKE '%TOAST-heavy%' AS toast_heavy_noted FROM dbops.bloat('bl_toast', 'stats') WHERE kind = 'table';
CREATE TABLE bl_name (n name, id int) WITH (autovacuum_enabled = off);
INSERT INTO bl_name SELECT 'n' || g, g FROM generate_series(1, 500) g;
ANALYZE bl_name;
SELECT note LIKE '%name columns%' AS name_noted FROM dbops.bloat('bl_name', 'stats') WHERE kind = 'table';
CREATE INDEX bl_t_partial ON bl_t (id) WHERE a < 10;
CREATE INDEX bl_t_expr ON bl_t (lower(pad));
ANALYZE bl_t;
SELECT relation, note FROM dbops.bloat('bl_t', 'stats') WHERE kind = 'index' ORDER BY 1;
-- a non-btree index: no page model, catalog fallback with a note
CREATE INDEX bl_t_hash ON bl_t USING hash (a);
SELECT method, note FROM dbops.bloat('bl_t_hash', 'exact');

-- errors
SELECT * FROM dbops.bloat('bl_t', 'guess');
SELECT * FROM dbops.bloat('bl_t', NULL);
SELECT * FROM dbops.bloat('bl_t', 'sample', max_pages => -1);
SELECT * FROM dbops.bloat('bl_t', 'sample', max_pages => NULL);
SELECT * FROM dbops.bloat('bl_t', 'sample', ci_width => 0);
SELECT * FROM dbops.bloat('bl_t', 'sample', ci_width => NULL);
CREATE VIEW bl_v AS SELECT 1 AS x;
SELECT * FROM dbops.bloat('bl_v');
CREATE TABLE bl_part (id int) PARTITION BY RANGE (id);
SELECT * FROM dbops.bloat('bl_part');
CREATE SEQUENCE bl_seq;
SELECT * FROM dbops.bloat('bl_seq');

-- pg_monitor member: reads pages (pg_stat_scan_tables), no SELECT on the table
CREATE ROLE bl_monitor LOGIN IN ROLE pg_monitor;
CREATE ROLE bl_nobody LOGIN;
SET ROLE bl_monitor;
SELECT kind, method, bloat_pct > 20 AS bloated FROM dbops.bloat('bl_big', 'exact') ORDER BY kind;
SELECT note LIKE '%cannot read pg_stats%' AS stats_privilege_noted FROM dbops.bloat('bl_name', 'stats');
RESET ROLE;
-- a role with neither: exact errors, auto falls back to the catalog estimate
SET ROLE bl_nobody;
SELECT * FROM dbops.bloat('bl_big', 'exact');
SELECT method, pages_read, note FROM dbops.bloat('bl_big', 'auto');
RESET ROLE;

-- the health check: a bloated relation above the size floor (10 MB) is found
CREATE TABLE bl_health (id int, pad text) WITH (autovacuum_enabled = off);
INSERT INTO bl_health SELECT g, repeat('h', 100) FROM generate_series(1, 120000) g;
DELETE FROM bl_health WHERE id % 10 < 7;
VACUUM bl_health;
SELECT check_name, status, value > 55 AS value_high, detail LIKE '%bl_health%' AS names_it,
       detail LIKE '%pages read%' AS says_coverage
FROM dbops.health() WHERE check_name = 'bloat';
SET ROLE bl_nobody;
SELECT check_name, status FROM dbops.health() WHERE check_name = 'bloat';
RESET ROLE;

DROP TABLE bl_upd, bl_t, bl_ff, bl_toast, bl_dup, bl_big, bl_nostats, bl_stale, bl_name, bl_part, bl_health;
DROP VIEW bl_v;
DROP SEQUENCE bl_seq;
DROP ROLE bl_monitor, bl_nobody;
