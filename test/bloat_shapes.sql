-- Tables and btree indexes of many shapes for calibrating dbops.bloat():
-- bench/bloat_calibration runs this at scale 1 (about 4,000 pages a table),
-- test/t/031_bloat_calibration.pl at a small scale.  psql variable :scale
-- multiplies every row count.  random() is seeded, so that a run builds the
-- same pages every time; run with autovacuum off.
--
-- Tuple widths go from 16 bytes of data to near the TOAST threshold; there
-- are nullable and variable-width columns, fillfactors from 50 to 100,
-- TOASTed values (external and compressed), random and clustered deletes
-- and updates, HOT and non-HOT updates, tables vacuumed and not, unique,
-- deduplicated and non-deduplicated btrees.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT setseed(0.4242);

-- 16 bytes of data, 30% deleted at random, vacuumed; unique btree
CREATE TABLE s_narrow_rand (id bigint, v bigint);
INSERT INTO s_narrow_rand SELECT g, g FROM generate_series(1, (700000 * :scale)::int) g;
CREATE UNIQUE INDEX s_narrow_rand_id ON s_narrow_rand (id);
DELETE FROM s_narrow_rand WHERE random() < 0.3;
VACUUM s_narrow_rand;

-- 16 bytes, deleted in clustered runs of 5,000 rows (40%), vacuumed
CREATE TABLE s_narrow_clust (id bigint, v bigint);
INSERT INTO s_narrow_clust SELECT g, g FROM generate_series(1, (700000 * :scale)::int) g;
CREATE INDEX s_narrow_clust_id ON s_narrow_clust (id);
DELETE FROM s_narrow_clust WHERE (id / 5000) % 5 IN (1, 3);
VACUUM s_narrow_clust;

-- 16 bytes, 30% deleted, not vacuumed (dead rows still on the pages and in
-- the index)
CREATE TABLE s_narrow_dead (id bigint, v bigint);
INSERT INTO s_narrow_dead SELECT g, g FROM generate_series(1, (700000 * :scale)::int) g;
CREATE INDEX s_narrow_dead_id ON s_narrow_dead (id);
DELETE FROM s_narrow_dead WHERE random() < 0.3;

-- append only: no bloat
CREATE TABLE s_append (id int, v int, t text);
INSERT INTO s_append SELECT g, g % 97, md5(g::text) FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX s_append_id ON s_append (id);

-- medium rows, variable width (10-300 bytes), 25% random deletes, vacuumed
CREATE TABLE s_var (id int, t text);
INSERT INTO s_var SELECT g, repeat(chr(65 + g % 26), 10 + (random() * 290)::int)
  FROM generate_series(1, (200000 * :scale)::int) g;
DELETE FROM s_var WHERE random() < 0.25;
VACUUM s_var;

-- variable width, a third updated to a longer value (non-HOT: no room), vacuumed
CREATE TABLE s_var_grow (id int, t text);
INSERT INTO s_var_grow SELECT g, repeat('g', 20 + (random() * 80)::int)
  FROM generate_series(1, (300000 * :scale)::int) g;
UPDATE s_var_grow SET t = t || repeat('h', 60) WHERE random() < 0.33;
VACUUM s_var_grow;

-- nullable columns, half of them NULL at random, 20% deleted, vacuumed
CREATE TABLE s_nulls (id int, a int, b bigint, c text, d timestamptz, e numeric);
INSERT INTO s_nulls SELECT g,
    CASE WHEN random() < 0.5 THEN g END, CASE WHEN random() < 0.5 THEN g END,
    CASE WHEN random() < 0.5 THEN md5(g::text) END,
    CASE WHEN random() < 0.5 THEN now() END, CASE WHEN random() < 0.5 THEN g * 1.5 END
  FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX s_nulls_c ON s_nulls (c);
DELETE FROM s_nulls WHERE random() < 0.2;
VACUUM s_nulls;

-- near the TOAST threshold: rows of about 1,900 bytes (4 a page), 25% deleted
CREATE TABLE s_wide (id int, t text);
ALTER TABLE s_wide ALTER t SET STORAGE EXTERNAL;
INSERT INTO s_wide SELECT g, (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 59) i)
  FROM generate_series(1, (16000 * :scale)::int) g;
DELETE FROM s_wide WHERE random() < 0.25;
VACUUM s_wide;

-- rows of about 1,000 bytes, a third updated (non-HOT), vacuumed
CREATE TABLE s_kilo (id int, n int, t text);
INSERT INTO s_kilo SELECT g, 0, (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 31) i)
  FROM generate_series(1, (28000 * :scale)::int) g;
CREATE INDEX s_kilo_id ON s_kilo (id);
UPDATE s_kilo SET id = -id WHERE random() < 0.33;
VACUUM s_kilo;

-- the held-out shape: a tenth of the rows with a TOASTed text value, a
-- third of the rows updated, vacuumed
CREATE TABLE s_toast_mix (id int, v int, t text);
INSERT INTO s_toast_mix SELECT g, 0, CASE WHEN g % 10 = 0
    THEN (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 100) i)
    ELSE md5(g::text) END
  FROM generate_series(1, (330000 * :scale)::int) g;
UPDATE s_toast_mix SET v = 1 WHERE id % 3 = 0;
VACUUM s_toast_mix;

-- every row TOASTed (incompressible, 4 kB), 40% deleted, vacuumed: the
-- TOAST table is measured too
CREATE TABLE s_toast (id int, doc text);
ALTER TABLE s_toast ALTER doc SET STORAGE EXTERNAL;
INSERT INTO s_toast SELECT g, (SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 125) i)
  FROM generate_series(1, (8000 * :scale)::int) g;
DELETE FROM s_toast WHERE random() < 0.4;
VACUUM s_toast;

-- compressible values, some compressed inline and some moved out, 30% updated
CREATE TABLE s_toast_comp (id int, n int, doc text);
INSERT INTO s_toast_comp SELECT g, 0, repeat(md5(g::text), 20 + (random() * 400)::int)
  FROM generate_series(1, (60000 * :scale)::int) g;
UPDATE s_toast_comp SET n = 1 WHERE random() < 0.3;
VACUUM s_toast_comp;

-- fillfactor 50, HOT updates of half the rows, vacuumed
CREATE TABLE s_ff50 (id int, n int, t text) WITH (fillfactor = 50);
INSERT INTO s_ff50 SELECT g, 0, md5(g::text) FROM generate_series(1, (150000 * :scale)::int) g;
CREATE INDEX s_ff50_id ON s_ff50 (id);
UPDATE s_ff50 SET n = 1 WHERE random() < 0.5;
VACUUM s_ff50;

-- fillfactor 70, 20% deleted at random, vacuumed
CREATE TABLE s_ff70 (id int, a int, t text) WITH (fillfactor = 70);
INSERT INTO s_ff70 SELECT g, g % 1000, md5(g::text) || repeat('w', g % 40)
  FROM generate_series(1, (200000 * :scale)::int) g;
DELETE FROM s_ff70 WHERE random() < 0.2;
VACUUM s_ff70;

-- fillfactor 90, 30% HOT updates, not vacuumed
CREATE TABLE s_ff90_hot (id int, n int, t text) WITH (fillfactor = 90);
INSERT INTO s_ff90_hot SELECT g, 0, md5(g::text) FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX s_ff90_hot_id ON s_ff90_hot (id);
UPDATE s_ff90_hot SET n = 1 WHERE random() < 0.3;

-- fillfactor 100, 30% non-HOT updates (the indexed column), vacuumed
CREATE TABLE s_ff100 (id int, k int, t text) WITH (fillfactor = 100);
INSERT INTO s_ff100 SELECT g, g, md5(g::text) FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX s_ff100_k ON s_ff100 (k);
UPDATE s_ff100 SET k = k + 1 WHERE random() < 0.3;
VACUUM s_ff100;

-- clustered updates: every row of a range updated twice, non-HOT, vacuumed
CREATE TABLE s_upd_clust (id int, k int, t text);
INSERT INTO s_upd_clust SELECT g, g, md5(g::text) FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX s_upd_clust_k ON s_upd_clust (k);
UPDATE s_upd_clust SET k = -k WHERE (id / 10000) % 3 = 0;
UPDATE s_upd_clust SET k = k - 1 WHERE (id / 10000) % 3 = 0;
VACUUM s_upd_clust;

-- random updates of a third of the rows, not vacuumed
CREATE TABLE s_upd_dead (id int, k int, t text);
INSERT INTO s_upd_dead SELECT g, g, md5(g::text) FROM generate_series(1, (300000 * :scale)::int) g;
CREATE INDEX s_upd_dead_k ON s_upd_dead (k);
UPDATE s_upd_dead SET k = -k WHERE random() < 0.33;

-- random UUIDs: inserted in random order, a fifth updated, vacuumed
CREATE TABLE s_uuid (id uuid PRIMARY KEY, n int);
INSERT INTO s_uuid SELECT md5(g::text || 'u')::uuid, 0 FROM generate_series(1, (400000 * :scale)::int) g;
UPDATE s_uuid SET n = 1 WHERE random() < 0.2;
VACUUM s_uuid;

-- a dropped column and a column added later (tuples of two shapes)
CREATE TABLE s_altered (id int, gone text, v int);
INSERT INTO s_altered SELECT g, md5(g::text), g FROM generate_series(1, (200000 * :scale)::int) g;
ALTER TABLE s_altered DROP COLUMN gone;
ALTER TABLE s_altered ADD COLUMN w int;
INSERT INTO s_altered SELECT g, g, g FROM generate_series(1, (100000 * :scale)::int) g;
DELETE FROM s_altered WHERE random() < 0.2;
VACUUM s_altered;

-- indexes of one table: deduplicated low-cardinality keys, the same with
-- deduplication off, text keys, two columns, fillfactors 70 and 100; 40%
-- of the rows deleted at random, vacuumed
CREATE TABLE s_idx (id int, a int, b int, t text);
INSERT INTO s_idx SELECT g, g % 100, (random() * 1e6)::int, md5(g::text)
  FROM generate_series(1, (500000 * :scale)::int) g;
CREATE INDEX s_idx_dedup ON s_idx (a);
CREATE INDEX s_idx_nodedup ON s_idx (a) WITH (deduplicate_items = off);
CREATE INDEX s_idx_text ON s_idx (t);
CREATE INDEX s_idx_two ON s_idx (a, b);
CREATE INDEX s_idx_ff70 ON s_idx (b) WITH (fillfactor = 70);
CREATE UNIQUE INDEX s_idx_ff100 ON s_idx (id) WITH (fillfactor = 100);
DELETE FROM s_idx WHERE random() < 0.4;
VACUUM s_idx;

-- indexes built before random inserts (page splits): the deduplicated key
-- grows, the unique key arrives out of order
CREATE TABLE s_split (id int, a int);
CREATE INDEX s_split_a ON s_split (a);
CREATE UNIQUE INDEX s_split_id ON s_split (id);
INSERT INTO s_split SELECT g, (random() * 2000)::int FROM generate_series(1, (400000 * :scale)::int) g
  ORDER BY random();
VACUUM s_split;

-- deduplicated index, clustered deletes, not vacuumed
CREATE TABLE s_dedup_dead (id int, a int);
INSERT INTO s_dedup_dead SELECT g, g % 500 FROM generate_series(1, (500000 * :scale)::int) g;
CREATE INDEX s_dedup_dead_a ON s_dedup_dead (a);
DELETE FROM s_dedup_dead WHERE (id / 20000) % 4 = 0;

ANALYZE;
SELECT pg_stat_force_next_flush();
