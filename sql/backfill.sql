-- CALL dbops.backfill(): batched, resumable UPDATE by key, with the
-- caller's rights; its checks, its runs and its progress view.
SET client_min_messages = notice;
SET dbops.backfill_yield = 0;
-- run ids of this file do not depend on the tests before it
SELECT setval(pg_get_serial_sequence('dbops.backfill_runs', 'run_id'), 1, false) > 0 AS run_ids_set;
-- batches never shrink: their sizes (and counts) are the same on any machine
SET dbops.purge_batch_target = '60s';
SET dbops.purge_batch_max = 1000;
CREATE TABLE bf (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, new_field text);
INSERT INTO bf (id) SELECT i FROM generate_series(1, 2500) i;

-- every row once, in batches of 1000 (the batch size grows or shrinks by
-- at most a factor 2 per batch)
CALL dbops.backfill('bf', 'v = v + 1, new_field = ''default''', batch_size => 1000);
SELECT count(*) FILTER (WHERE v = 1) AS once, count(*) FILTER (WHERE v <> 1) AS other,
       count(*) FILTER (WHERE new_field = 'default') AS filled FROM bf;
SELECT status, key_column, key_type, first_key, last_key, end_key, rows_updated, rows_covered,
       batches >= 2 AS batched, finished IS NOT NULL AS finished, run_by = current_user AS by_me
  FROM dbops.backfill_runs;
SELECT status, percent_done, rows_pending, active FROM dbops.backfill_progress;

-- a finished run is not repeated; rerun => true repeats it
CALL dbops.backfill('bf', 'v = v + 1, new_field = ''default''');
SELECT max(v) FROM bf;
CALL dbops.backfill('bf', 'v = v + 1, new_field = ''default''', rerun => true);
SELECT min(v), max(v) FROM bf;

-- where restricts the rows; rows_covered counts the rows walked
UPDATE bf SET new_field = NULL WHERE id % 10 = 0;
CALL dbops.backfill('bf', 'new_field = ''again''', 'new_field IS NULL');
SELECT count(*) FROM bf WHERE new_field = 'again';
SELECT rows_updated, rows_covered FROM dbops.backfill_runs ORDER BY run_id DESC LIMIT 1;

-- a run stopped half way (its row says where) resumes after its last key
UPDATE bf SET v = 0;
CALL dbops.backfill('bf', 'v = v + 1', batch_size => 500, max_run_time => '1 microsecond');
SELECT status, last_key, rows_updated FROM dbops.backfill_runs ORDER BY run_id DESC LIMIT 1;
UPDATE dbops.backfill_runs SET status = 'cancelled', last_key = '1200', rows_updated = 1200
 WHERE run_id = (SELECT max(run_id) FROM dbops.backfill_runs);
UPDATE bf SET v = 1 WHERE id <= 1200;
CALL dbops.backfill('bf', 'v = v + 1', batch_size => 500);
SELECT count(*) FILTER (WHERE v = 1) AS once, count(*) FILTER (WHERE v <> 1) AS other FROM bf;
SELECT status, last_key, rows_updated FROM dbops.backfill_runs ORDER BY run_id DESC LIMIT 1;

-- other key types, and key_column naming a unique NOT NULL column
CREATE TABLE bf_text (k text PRIMARY KEY, n int NOT NULL, done boolean NOT NULL DEFAULT false);
CREATE UNIQUE INDEX ON bf_text (n);
INSERT INTO bf_text SELECT 'key ' || i, i FROM generate_series(1, 300) i;
CALL dbops.backfill('bf_text', 'done = true', batch_size => 7);
SELECT count(*) FROM bf_text WHERE done;
CALL dbops.backfill('bf_text', 'done = false', key_column => 'n', batch_size => 50);
SELECT count(*) FROM bf_text WHERE done;
SELECT key_column, key_type, end_key FROM dbops.backfill_runs WHERE relation = 'bf_text'::regclass ORDER BY run_id;

-- an empty table: done at once
CREATE TABLE bf_empty (id bigint PRIMARY KEY, x int);
CALL dbops.backfill('bf_empty', 'x = 1');
SELECT status, rows_updated, last_key FROM dbops.backfill_runs WHERE relation = 'bf_empty'::regclass;

-- errors, each with its SQLSTATE and a hint
\set SHOW_CONTEXT never
CALL dbops.backfill(NULL, 'x = 1');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', NULL);
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', batch_size => 0);
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', max_run_time => '-1 s');
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW bf_view AS SELECT * FROM bf;
CALL dbops.backfill('bf_view', 'v = 1');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE bf_nokey (a int, b int);
CALL dbops.backfill('bf_nokey', 'b = 1');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf_nokey', 'b = 1', key_column => 'a');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', key_column => 'nope');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'id = id + 1');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', '(v, id) = (1, 2)');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1; DROP TABLE bf');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', 'true; DROP TABLE bf');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', 'true) OR (true');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', '(true');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', 'true --');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', '');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1 FROM bf_text');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1 WHERE true');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1 RETURNING v');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', 'true RETURNING v');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = ''x');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1 /* open');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'nope = 1');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('bf', 'v = 1', 'nope');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
CALL dbops.backfill('bf', 'v = 1');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a comment at the end of where ends with its line
CALL dbops.backfill('bf', 'v = 5', 'id = 1 -- only the first');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM bf WHERE v = 5;

-- a failing set records the run as failed, its committed batches stay
CREATE FUNCTION bf_fail(i int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN IF i > 1500 THEN RAISE EXCEPTION 'no %', i; END IF; RETURN 7; END $$;
CALL dbops.backfill('bf', 'v = public.bf_fail(id)', batch_size => 100);
SELECT status, sqlstate, message, last_key, rows_updated FROM dbops.backfill_runs ORDER BY run_id DESC LIMIT 1;
SELECT count(*) FROM bf WHERE v = 7;
-- fixed, the same CALL resumes after key 1500
UPDATE bf SET v = 0 WHERE id > 1500;
CREATE OR REPLACE FUNCTION bf_fail(i int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN RETURN 7; END $$;
CALL dbops.backfill('bf', 'v = public.bf_fail(id)', batch_size => 100);
SELECT count(*) FILTER (WHERE v = 7) AS seven, count(*) FILTER (WHERE v <> 7) AS other FROM bf;
SELECT status, sqlstate, last_key, rows_updated FROM dbops.backfill_runs ORDER BY run_id DESC LIMIT 1;

-- the caller's rights: a role with SELECT only cannot update by backfill
CREATE ROLE bf_reader;
GRANT USAGE ON SCHEMA dbops TO bf_reader;
GRANT EXECUTE ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) TO bf_reader;
GRANT EXECUTE ON FUNCTION dbops._backfill_begin(), dbops._backfill_check(text, text, name),
    dbops._backfill_start(regclass, text, text, name, integer, boolean, interval),
    dbops._backfill_range(dbops._backfill_state, boolean) TO bf_reader;
GRANT SELECT ON bf TO bf_reader;
SET ROLE bf_reader;
CALL dbops.backfill('bf', 'v = 9');
\echo :LAST_ERROR_SQLSTATE
-- column privileges: the set may not write a column it lacks UPDATE on
RESET ROLE;
GRANT UPDATE (new_field) ON bf TO bf_reader;
SET ROLE bf_reader;
CALL dbops.backfill('bf', 'v = 9');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM bf WHERE v = 9;
REVOKE ALL ON bf FROM bf_reader;
REVOKE ALL ON FUNCTION dbops._backfill_begin(), dbops._backfill_check(text, text, name),
    dbops._backfill_start(regclass, text, text, name, integer, boolean, interval),
    dbops._backfill_range(dbops._backfill_state, boolean) FROM bf_reader;
REVOKE ALL ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) FROM bf_reader;
REVOKE USAGE ON SCHEMA dbops FROM bf_reader;
DROP ROLE bf_reader;

-- the phase functions refuse a state they did not make
SELECT dbops._backfill_batch(NULL::dbops._backfill_state);

DROP TABLE bf, bf_text, bf_empty, bf_nokey CASCADE;
DROP FUNCTION bf_fail(int);
TRUNCATE dbops.backfill_runs, dbops.backfill_pending;
