-- dbops.index_advice() and the checks unused_indexes, duplicate_indexes,
-- fk_without_index and seq_scan_tables: every kind is found, what differs
-- is not, privileges, grading and culprits.
\pset null '(null)'
SET client_min_messages = warning;
CREATE SCHEMA idx;
SET search_path = idx, public;

-- unused: a plain index never scanned; a primary key never scanned
CREATE TABLE idx.unused (id int PRIMARY KEY, v int, w int);
CREATE INDEX unused_v ON idx.unused (v);
CREATE UNIQUE INDEX unused_w_uniq ON idx.unused (w);

-- a duplicate pair and a prefix-redundant pair
CREATE TABLE idx.dup (a int, b int, c text, d int);
CREATE INDEX dup_a_1 ON idx.dup (a);
CREATE INDEX dup_a_2 ON idx.dup (a);
CREATE INDEX dup_bc ON idx.dup (b, c);
CREATE INDEX dup_bcd ON idx.dup (b, c, d);
-- a unique constraint and a plain index on the same column: the plain one goes
CREATE TABLE idx.dupcon (a int CONSTRAINT dupcon_a_key UNIQUE);
CREATE INDEX dupcon_a ON idx.dupcon (a);

-- pairs that differ by operator class, collation, predicate, expression,
-- order, or access method: none is reported
CREATE TABLE idx.differ (t text, n int);
CREATE INDEX differ_t ON idx.differ (t);
CREATE INDEX differ_t_pattern ON idx.differ (t text_pattern_ops);
CREATE INDEX differ_t_c ON idx.differ (t COLLATE "C");
CREATE INDEX differ_n ON idx.differ (n) WHERE n > 0;
CREATE INDEX differ_n_all ON idx.differ (n) WHERE n > 1;
CREATE INDEX differ_lower ON idx.differ (lower(t));
CREATE INDEX differ_n_desc ON idx.differ (n DESC);
CREATE INDEX differ_n_hash ON idx.differ USING hash (n);
-- a unique index is not made redundant by a wider one
CREATE TABLE idx.uniqwide (a int, b int);
CREATE UNIQUE INDEX uniqwide_a ON idx.uniqwide (a);
CREATE INDEX uniqwide_ab ON idx.uniqwide (a, b);

-- foreign keys: one without an index, one with (columns in another order),
-- one whose only index is partial
CREATE TABLE idx.parent (id int PRIMARY KEY, k int, UNIQUE (id, k));
CREATE TABLE idx.child_bare (id int, parent_id int REFERENCES idx.parent);
CREATE TABLE idx.child_indexed (id int, pk int, pid int,
    FOREIGN KEY (pid, pk) REFERENCES idx.parent (id, k));
CREATE INDEX child_indexed_k ON idx.child_indexed (pk, pid, id);
CREATE TABLE idx.child_partial ("Parent Id" int REFERENCES idx.parent);
CREATE INDEX child_partial_p ON idx.child_partial ("Parent Id") WHERE "Parent Id" > 0;

-- a table of more than 1000 pages read by 60 sequential scans
CREATE TABLE idx.scanned (id int, pad text) WITH (autovacuum_enabled = off);
INSERT INTO idx.scanned SELECT g, repeat('x', 500) FROM generate_series(1, 16000) g;
ANALYZE idx.scanned;
SELECT relpages >= 1000 AS large_enough FROM pg_class WHERE oid = 'idx.scanned'::regclass;
DO $$
BEGIN
    FOR i IN 1..60 LOOP
        PERFORM count(*) FROM idx.scanned WHERE pad = 'y';
    END LOOP;
END
$$;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();

-- the findings in this schema (names shown with their schema)
RESET search_path;
SELECT kind, relation, index,
       regexp_replace(detail, 'since the statistics [^;]*;', 'since <reset>;') AS detail, suggestion
FROM dbops.index_advice()
WHERE relation::text LIKE 'idx.%' AND kind <> 'seq_scan_table'
ORDER BY kind, relation::text, index::text;
SELECT kind, relation, index IS NULL AS no_index,
       detail ~ '^60 sequential scans read 960000 rows \(16000 a scan\), 0 index scans$' AS detail_ok,
       size_bytes = pg_relation_size('idx.scanned') AS size_ok, suggestion
FROM dbops.index_advice() WHERE kind = 'seq_scan_table' AND relation::text LIKE 'idx.%';

-- the unused index: its size, the reset time and the standby note
SELECT size_bytes = pg_relation_size('idx.unused_v') AS size_ok,
       detail ~ '^no index scan since the statistics (were reset at |began)' AS since,
       detail LIKE '%scans on standbys are not counted here' AS standby_note
FROM dbops.index_advice() WHERE index = 'idx.unused_v'::regclass;

-- an index that is scanned is no longer unused
SET enable_seqscan = off;
SELECT count(*) FROM idx.unused WHERE v = 1;
RESET enable_seqscan;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT count(*) AS unused_v_reported FROM dbops.index_advice() WHERE index = 'idx.unused_v'::regclass;

-- an invalid index is left to invalid_indexes
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx.dup_a_2'::regclass;
SELECT kind, index FROM dbops.index_advice()
WHERE relation = 'idx.dup'::regclass ORDER BY kind, index::text;
UPDATE pg_index SET indisvalid = true WHERE indexrelid = 'idx.dup_a_2'::regclass;

-- names that need quoting are quoted
CREATE TABLE idx."Odd Table" ("Col" int REFERENCES idx.parent);
SELECT suggestion FROM dbops.index_advice() WHERE relation = 'idx."Odd Table"'::regclass;
DROP TABLE idx."Odd Table";

-- the checks grade and name their culprits
UPDATE dbops.health_thresholds SET warning = 1, critical = 3 WHERE check_name = 'duplicate_indexes';
UPDATE dbops.health_thresholds SET warning = 1, critical = 2 WHERE check_name = 'fk_without_index';
UPDATE dbops.health_thresholds SET warning = 0.001, critical = NULL WHERE check_name = 'unused_indexes';
UPDATE dbops.health_thresholds SET warning = 1, critical = NULL WHERE check_name = 'seq_scan_tables';
SELECT check_name, status, value > 0 AS counted, unit,
       detail LIKE '%idx.dup_a_2 on idx.dup (same columns as idx.dup_a_1)%' AS names_duplicate,
       detail LIKE '%idx.dup_bc on idx.dup (its columns lead idx.dup_bcd)%' AS names_redundant,
       detail LIKE '%idx.child_bare (foreign key child_bare_parent_id_fkey (parent_id) references idx.parent%' AS names_fk,
       detail LIKE '%idx.scanned (60 sequential scans%' AS names_scanned,
       detail ~ '^\d+ unused index\(es\), \d+ (bytes|kB|MB|GB): [^ ]+ on [^ ]+ \(\d+ (bytes|kB|MB|GB)\).*; no index scan since the statistics .*; scans on standbys are not counted here$' AS names_unused,
       hint LIKE '%dbops.index_advice()%' OR check_name = 'seq_scan_tables' AS hint_ok
FROM dbops.health()
WHERE check_name IN ('unused_indexes', 'duplicate_indexes', 'fk_without_index', 'seq_scan_tables')
ORDER BY check_name;
-- "first N and N more": six foreign keys without an index name five
CREATE TABLE idx.many (a int REFERENCES idx.parent, b int REFERENCES idx.parent,
    c int REFERENCES idx.parent, d int REFERENCES idx.parent, e int REFERENCES idx.parent);
SELECT detail ~ '; and \d+ more$' AS and_more, value >= 7 AS counted
FROM dbops.health() WHERE check_name = 'fk_without_index';
DROP TABLE idx.many;

-- with the findings gone the checks are ok
DROP SCHEMA idx CASCADE;
SELECT check_name, status, detail
FROM dbops.health()
WHERE check_name IN ('duplicate_indexes', 'fk_without_index')
ORDER BY check_name;
UPDATE dbops.health_thresholds SET warning = 1, critical = NULL
WHERE check_name IN ('duplicate_indexes', 'fk_without_index');
UPDATE dbops.health_thresholds SET warning = 1024, critical = NULL WHERE check_name = 'unused_indexes';
UPDATE dbops.health_thresholds SET warning = 5, critical = NULL WHERE check_name = 'seq_scan_tables';

-- privileges: PUBLIC may not run it, pg_monitor may
CREATE ROLE idx_nobody;
CREATE ROLE idx_monitor IN ROLE pg_monitor;
SET ROLE idx_nobody;
SELECT count(*) FROM dbops.index_advice();
RESET ROLE;
SET ROLE idx_monitor;
SELECT count(*) >= 0 AS ran FROM dbops.index_advice();
SELECT count(*) AS checks FROM dbops.health()
WHERE check_name IN ('unused_indexes', 'duplicate_indexes', 'fk_without_index', 'seq_scan_tables')
  AND status NOT IN ('skipped', 'unknown');
RESET ROLE;
DROP ROLE idx_nobody;
DROP ROLE idx_monitor;
