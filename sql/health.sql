-- dbops.health(): shape, grading, thresholds, errors and privileges
\pset null '(null)'

-- the checks of the health capability (others register their own)
CREATE TEMP TABLE mine (check_name text PRIMARY KEY);
GRANT SELECT ON mine TO PUBLIC;
INSERT INTO mine VALUES ('connections'), ('long_query'), ('idle_in_transaction'),
    ('long_transaction'), ('xid_wraparound'), ('mxid_wraparound'), ('prepared_xacts'),
    ('xmin_horizon'), ('replication_lag'),
    ('replication_slots'), ('archiver'), ('invalid_indexes'), ('unused_indexes'),
    ('duplicate_indexes'), ('fk_without_index'), ('seq_scan_tables'), ('sequences'),
    ('dead_tuples'), ('vacuum_age'), ('cache_hit_ratio'), ('deadlocks'),
    ('temp_files'), ('checkpoints'), ('database_size'), ('disk_space'),
    ('slow_queries');

-- one error as "SQLSTATE: message (HINT: hint)"
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text; msg text; hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN ' (HINT: ' || hint || ')' ELSE '' END;
END
$$;

-- registry, directions and default thresholds
SELECT c.check_name, c.direction, t.warning, t.critical, t.enabled
FROM dbops.health_checks() c JOIN mine USING (check_name)
LEFT JOIN dbops.health_thresholds t USING (check_name)
ORDER BY c.check_name;

-- every check reports, with a detail; units of the checks that always have a value
SELECT h.check_name, h.status IN ('ok', 'warning', 'critical', 'unknown', 'skipped') AS valid_status,
       h.detail IS NOT NULL AS has_detail,
       CASE WHEN h.check_name NOT IN ('checkpoints', 'cache_hit_ratio') THEN h.unit END AS unit
FROM dbops.health() h JOIN mine USING (check_name)
ORDER BY h.check_name;

-- worst first
WITH h AS (
    SELECT status, ord,
           array_position('{critical,warning,unknown,skipped,ok}'::text[], status) AS rank
    FROM dbops.health() WITH ORDINALITY AS x(check_name, status, value, warning, critical, unit, detail, hint, ord)
)
SELECT bool_and(rank <= coalesce(next_rank, rank)) AS worst_first
FROM (SELECT rank, lead(rank) OVER (ORDER BY ord) AS next_rank FROM h) s;

-- states of a fresh database, as superuser
-- (the server's max_prepared_transactions is printed as N: the test does
-- not set it)
SELECT check_name, status, value,
       regexp_replace(detail, 'max_prepared_transactions = \d+', 'max_prepared_transactions = N') AS detail
FROM dbops.health()
WHERE check_name IN ('invalid_indexes', 'prepared_xacts', 'replication_lag', 'replication_slots',
                     'archiver', 'long_query', 'idle_in_transaction')
ORDER BY check_name;

-- the connections check's thresholds grade it
UPDATE dbops.health_thresholds SET warning = 0, critical = 1000 WHERE check_name = 'connections';
SELECT status, hint IS NOT NULL AS has_hint FROM dbops.health() WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = 0, critical = 0 WHERE check_name = 'connections';
SELECT status FROM dbops.health() WHERE check_name = 'connections';
SELECT dbops.health_status();
-- NULL thresholds: not graded at that level
UPDATE dbops.health_thresholds SET warning = 0, critical = NULL WHERE check_name = 'connections';
SELECT status, warning, critical FROM dbops.health() WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = NULL, critical = NULL WHERE check_name = 'connections';
SELECT status, warning, critical FROM dbops.health() WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = 80, critical = 95 WHERE check_name = 'connections';

-- disabled checks are not run
UPDATE dbops.health_thresholds SET enabled = false WHERE check_name = 'connections';
SELECT count(*) FROM dbops.health() WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET enabled = true WHERE check_name = 'connections';

-- bad thresholds
-- (the hint lists every check compiled in; other capabilities add theirs)
SELECT split_part(e, ' (HINT: ', 1) AS error, e ~ '\(HINT: Known checks: .*connections, .*long_query, .*\.\)$' AS hint_lists_checks
FROM pg_temp.err($$INSERT INTO dbops.health_thresholds VALUES ('no_such_check', 1, 2)$$) e;
SELECT split_part(e, ' (HINT: ', 1) AS error, e ~ '\(HINT: Known checks: .*connections, .*long_query, .*\.\)$' AS hint_lists_checks
FROM pg_temp.err($$UPDATE dbops.health_thresholds SET check_name = 'conections' WHERE check_name = 'connections'$$) e;
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 99, critical = 90 WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 70, critical = 90 WHERE check_name = 'cache_hit_ratio'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 'NaN' WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$INSERT INTO dbops.health_thresholds VALUES (NULL, 1, 2)$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET enabled = NULL WHERE check_name = 'connections'$$);
-- equal thresholds, or one of them NULL, are fine
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 90, critical = 90 WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 99, critical = NULL WHERE check_name = 'connections'$$);
-- an INSERT of a known check updates its row (this is how a dump restores)
INSERT INTO dbops.health_thresholds VALUES ('connections', 70, 90, true);
SELECT * FROM dbops.health_thresholds WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = 80, critical = 95 WHERE check_name = 'connections';
SELECT 'dbops.health_thresholds'::regclass = ANY (extconfig) AS dumped
FROM pg_extension WHERE extname = 'dbops';

-- the check's lock_timeout does not leak into the caller's transaction
BEGIN;
SELECT count(*) > 0 AS ran FROM dbops.health();
SHOW lock_timeout;
COMMIT;

-- invalid index: a failed CREATE UNIQUE INDEX CONCURRENTLY
CREATE TABLE dbops_dup (k int);
INSERT INTO dbops_dup VALUES (1), (1);
CREATE UNIQUE INDEX CONCURRENTLY dbops_dup_k ON dbops_dup (k);
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'invalid_indexes';
DROP TABLE dbops_dup;

-- sequences: own limit, an int4 column's limit, an int2 column's limit, cycling
-- (the sequences of this test as the detail names them; other capabilities
-- have sequences of their own in schema dbops)
CREATE FUNCTION pg_temp.seqs() RETURNS TABLE (status text, value numeric, culprit text)
LANGUAGE sql AS $$
    SELECT h.status, h.value, m[1]
    FROM dbops.health() h,
         regexp_matches(h.detail, '(public\.dbops_\w+ -?[0-9.]+% \([^)]*\)|\(and \d+ cycling, not counted\))', 'g') m
    WHERE h.check_name = 'sequences'
$$;
CREATE SEQUENCE dbops_seq_small MAXVALUE 100;
SELECT setval('dbops_seq_small', 90);
SELECT * FROM pg_temp.seqs();
CREATE TABLE dbops_legacy (id int);
CREATE SEQUENCE dbops_legacy_id_seq AS bigint OWNED BY dbops_legacy.id;
SELECT setval('dbops_legacy_id_seq', 2000000000);
SELECT * FROM pg_temp.seqs();
CREATE TABLE dbops_narrow (id serial);
ALTER TABLE dbops_narrow ALTER id TYPE smallint;
SELECT setval('dbops_narrow_id_seq', 32000);
CREATE SEQUENCE dbops_seq_cycle MAXVALUE 10 CYCLE;
SELECT setval('dbops_seq_cycle', 10);
CREATE SEQUENCE dbops_seq_down INCREMENT -1;
SELECT setval('dbops_seq_down', -4611686018427387904);
SELECT * FROM pg_temp.seqs();
-- an identity column at its int4 limit
CREATE TABLE dbops_ident (id int GENERATED ALWAYS AS IDENTITY);
SELECT setval(pg_get_serial_sequence('dbops_ident', 'id'), 2147000000);
SELECT status, value FROM dbops.health() WHERE check_name = 'sequences';

-- the overall status: skipped is not a clean bill of health
SELECT dbops.health_overall('{ok,ok}'), dbops.health_overall('{ok,skipped}'),
       dbops.health_overall('{unknown,ok}'), dbops.health_overall('{skipped,warning}'),
       dbops.health_overall('{warning,critical}'), dbops.health_overall('{}');

-- health_json(): overall status, server facts, every check
SELECT j->>'status' = dbops.health_status() AS same_status,
       jsonb_array_length(j->'checks') = (SELECT count(*) FROM dbops.health()) AS all_checks,
       j->'server'->>'database' = current_database() AS database,
       (j->'server'->>'in_recovery')::boolean AS in_recovery,
       j->'server'->>'version_num' = current_setting('server_version_num') AS version,
       (j->'server'->>'uptime_seconds')::numeric >= 0 AS uptime,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(j->'checks'->0) k) AS check_keys
FROM dbops.health_json() j;

-- privileges: a plain role is told what it cannot read; pg_monitor reads everything
CREATE ROLE regress_dbops_plain;
CREATE ROLE regress_dbops_monitor IN ROLE pg_monitor;
SET ROLE regress_dbops_plain;
SELECT check_name, status, regexp_replace(detail, '^\d+ of \d+ ', 'N of N ') AS detail, hint
FROM dbops.health() JOIN mine USING (check_name)
WHERE status = 'skipped' ORDER BY check_name;
SELECT count(*) AS not_skipped FROM dbops.health() JOIN mine USING (check_name) WHERE status <> 'skipped';
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 1 WHERE check_name = 'connections'$$);
RESET ROLE;
SET ROLE regress_dbops_monitor;
SELECT count(*) AS skipped FROM dbops.health() JOIN mine USING (check_name) WHERE status = 'skipped';
SELECT count(*) AS checks FROM dbops.health() JOIN mine USING (check_name);
SELECT status, value FROM dbops.health() WHERE check_name = 'sequences';
RESET ROLE;
-- a plain role whose only enabled check is skipped gets "unknown" overall
UPDATE dbops.health_thresholds SET enabled = (check_name = 'long_query');
SET ROLE regress_dbops_plain;
SELECT dbops.health_status();
RESET ROLE;
SELECT dbops.health_status();
UPDATE dbops.health_thresholds SET enabled = true;

DROP TABLE dbops_legacy, dbops_narrow, dbops_ident;
DROP SEQUENCE dbops_seq_small, dbops_seq_cycle, dbops_seq_down;
DROP ROLE regress_dbops_plain, regress_dbops_monitor;

-- dead tuples and vacuum age describe the whole database: test them in a
-- database of their own, so that what other tests leave behind cannot
-- change the worst table
SELECT current_database() AS regress_db \gset
CREATE DATABASE dbops_health_dead TEMPLATE template0;
\c dbops_health_dead
SET client_min_messages = warning;
CREATE EXTENSION dbops;
RESET client_min_messages;

-- dead tuples: a table with two thirds of its rows deleted
CREATE TABLE dbops_dead (id int) WITH (autovacuum_enabled = false);
INSERT INTO dbops_dead SELECT generate_series(1, 3000);
DELETE FROM dbops_dead WHERE id > 1000;
SELECT pg_stat_force_next_flush();
SELECT status, value, detail LIKE 'worst: public.dbops_dead 66.7% dead; %' AS names_table
FROM dbops.health() WHERE check_name = 'dead_tuples';
-- (graded from 0 hours on, so that the hint shows)
UPDATE dbops.health_thresholds SET warning = 0, critical = NULL WHERE check_name = 'vacuum_age';
SELECT status, detail LIKE '1 table(s) past their autovacuum threshold, longest without vacuum: public.dbops_dead (2000 dead, never vacuumed, autovacuum off)%' AS names_table,
       hint LIKE '%Tables with autovacuum off are vacuumed only by hand%' AS hint_says_off
FROM dbops.health() WHERE check_name = 'vacuum_age';
UPDATE dbops.health_thresholds SET warning = 24, critical = 72 WHERE check_name = 'vacuum_age';
VACUUM dbops_dead;
SELECT pg_stat_force_next_flush();
SELECT status, value FROM dbops.health() WHERE check_name = 'dead_tuples';
SELECT value, detail FROM dbops.health() WHERE check_name = 'vacuum_age';

-- a table's own autovacuum settings decide when it is due, as for autovacuum:
-- 500 dead of 3000 is under the default 50 + 20% of 2500 but over 100 + 0%
CREATE TABLE dbops_own (id int) WITH (autovacuum_vacuum_threshold = 100,
    autovacuum_vacuum_scale_factor = 0, autovacuum_enabled = false);
INSERT INTO dbops_own SELECT generate_series(1, 3000);
DELETE FROM dbops_own WHERE id > 2500;
ANALYZE dbops_own;
SELECT pg_stat_force_next_flush();
SELECT regexp_replace(detail, 'never vacuumed|vacuumed .* ago', 'V') AS detail
FROM dbops.health() WHERE check_name = 'vacuum_age';
ALTER TABLE dbops_own RESET (autovacuum_vacuum_threshold, autovacuum_vacuum_scale_factor);
SELECT detail FROM dbops.health() WHERE check_name = 'vacuum_age';

-- without track_counts the statistics checks cannot know: unknown, not ok
SET track_counts = off;
SELECT check_name, status, detail FROM dbops.health()
WHERE check_name IN ('dead_tuples', 'vacuum_age', 'cache_hit_ratio', 'deadlocks', 'temp_files')
ORDER BY check_name;
RESET track_counts;
\c :regress_db
DROP DATABASE dbops_health_dead;
