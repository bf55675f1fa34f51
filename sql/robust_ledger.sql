-- Robustness of the migration ledger and of the scheduling: no input can be
-- recorded in a form that later breaks a reader, rows already there (written
-- by dbops 1.0, or inserted directly) break no reader, every limit is
-- checked when it is given, and every error has a SQLSTATE, a bounded
-- message and a hint.
--
-- The dbops.schedule() part needs pg_cron (tools/test preloads it);
-- expected/robust_ledger_1.out is the output without it.  It runs in a
-- transaction that is rolled back, so the pg_cron launcher never sees a job.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET timezone = 'UTC';

-- errors as data: SQLSTATE, message, detail and hint, each cut here to 150
-- characters (msglen and detlen say whether dbops bounded them itself)
CREATE FUNCTION pg_temp.err(q text,
    OUT state text, OUT message text, OUT msglen int, OUT detail text, OUT detlen int,
    OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    msglen := length(message);
    detlen := length(detail);
    message := left(message, 150);
    detail := left(detail, 150);
    hint := left(hint, 150);
END;
$$;
\pset format unaligned
\pset tuples_only off
\pset fieldsep ' | '

-- ---------------------------------------------------------------------------
-- 1. A version that breaks readers is refused before anything is recorded
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.err($$SELECT dbops.migrate(repeat('9', 140000), 'x', 'SELECT 1')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate(E'2\n', 'x', 'SELECT 1')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate(E'2\t3', 'x', 'SELECT 1')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate(E'2\x01', 'x', 'SELECT 1')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate(repeat('7', 257), 'x', 'SELECT 1')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', repeat('d', 1001), 'SELECT 1')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_begin(repeat('9', 140000), 'x')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_pending(E'2\n')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_baseline(E'\n', 'x')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_baseline('0001', repeat('d', 1001))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_rollback(repeat('9', 140000))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_repair(repeat('9', 140000))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_repair('0001', repeat('z', 100000))$$);
-- nothing of them reached the ledger (a failed attempt is recorded before
-- its error is raised)
SELECT count(*) AS recorded FROM dbops.migration_events;
SELECT count(*) AS recorded FROM dbops.migrations;
-- the longest version the ledger takes
BEGIN;
SELECT dbops.migrate(repeat('7', 256), 'longest', 'SELECT 1');
SELECT length(version), dbops.migration_version_key(version) IS NOT NULL AS has_key
FROM dbops.migrations;
ROLLBACK;

-- requires: a one-dimensional array of versions, refused at the call
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1', requires => '{""}')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1', requires => '{{a},{b}}')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1', requires => '{a,NULL}')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1', requires => ARRAY[E'a\n'])$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1', requires => ARRAY[repeat('r', 300)])$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1', requires => array_fill('a'::text, ARRAY[1001]))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_begin('0001', 'x', requires => '{{a},{b}}')$$);
-- a missing requirement lists at most 10 versions, each cut to 64 characters
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001', 'x', 'SELECT 1',
    requires => (SELECT array_agg(repeat('r', 200) || g) FROM generate_series(1, 20) g))$$);
-- the refusals at the call recorded nothing; the DB002 is a failed attempt
SELECT version, event, sqlstate, length(message) < 1100 AS bounded FROM dbops.migration_events;

-- ---------------------------------------------------------------------------
-- 2. Rows a reader may find (written by dbops 1.0, or inserted directly)
-- ---------------------------------------------------------------------------
INSERT INTO dbops.migration_events (version, event, sqlstate, message)
VALUES (repeat('9', 140000), 'failed', '22003', repeat('m', 100000)),
       (E'two\nlines', 'failed', 'XX000', NULL),
       (repeat('1.', 5000) || '1', 'failed', '42P01', 'relation does not exist');
-- the ordering key of any text: NULL for a leading number of more than 1000
-- characters, never an error
SELECT left(v, 20) AS version, length(v), cardinality(dbops.migration_version_key(v)) AS parts
FROM (VALUES (repeat('9', 140000)), (repeat('9', 1000)), (repeat('9', 1001)),
             (repeat('1.', 5000) || '1'), ('1.10_2'), ('abc'), ('')) AS t(v);
-- every reader works for every role that may read, and prints a bounded part
SELECT count(*) AS versions, max(length(version)) AS longest FROM dbops.migration_status();
SELECT status, value, length(detail) < 1000 AS bounded,
       regexp_replace(detail, '(9{10})9+', '\1') AS detail
FROM dbops.health() WHERE check_name = 'migrations';
CREATE ROLE rob_led_reader IN ROLE pg_monitor;
SET ROLE rob_led_reader;
SELECT count(*) AS versions FROM dbops.migration_status();
SELECT status, value FROM dbops.health() WHERE check_name = 'migrations';
RESET ROLE;
-- a role without the grants gets one clear error, and nothing is attempted
CREATE ROLE rob_led_nobody;
GRANT EXECUTE ON FUNCTION dbops.migrate(text, text, text, text[], boolean) TO rob_led_nobody;
SET ROLE rob_led_nobody;
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.migration_status()$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_pending('0001')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0009', 'x', 'SELECT 1')$$);
RESET ROLE;
SELECT count(*) AS recorded FROM dbops.migration_events WHERE version = '0009';
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean) FROM rob_led_nobody;
DROP ROLE rob_led_nobody;
-- importing the events as a ledger refuses the row that migrate() would refuse
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('dbops.migration_events')$$);
-- such a version can still be acknowledged, which clears the health check
SELECT dbops.migration_repair(repeat('9', 140000));
SELECT dbops.migration_repair(E'two\nlines');
SELECT dbops.migration_repair(repeat('1.', 5000) || '1');
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'migrations';
-- and the next migrations apply and order as before
SELECT dbops.migrate('0001', 'first', 'SELECT 1');
SELECT dbops.migrate('0002', 'second', 'SELECT 1', requires => '{0001}');
SELECT * FROM pg_temp.err($$SELECT dbops.migrate('0001.5', 'late', 'SELECT 1')$$);
SELECT version, status FROM dbops.migration_status() WHERE length(version) < 10 ORDER BY version;

-- a version 1.0 applied that 1.1 would refuse is still skipped, rolled back
-- and required by its exact text
SET session_replication_role = replica;
INSERT INTO dbops.migrations (version, description, status, checksum)
VALUES (E'0003\told', 'from 1.0', 'applied', dbops.migration_checksum('SELECT 3'));
RESET session_replication_role;
SELECT dbops.migrate(E'0003\told', 'from 1.0', 'SELECT 3');
SELECT dbops.migrate('0004', 'needs it', 'SELECT 1', requires => ARRAY[E'0003\told']);
SELECT dbops.migration_rollback('0004');
SELECT dbops.migration_rollback(E'0003\told');

-- ---------------------------------------------------------------------------
-- 3. migration_import(): the checks of migrate(), row by row, and only text
--    or integer version columns
-- ---------------------------------------------------------------------------
CREATE TABLE rob_led_sm (version text);
INSERT INTO rob_led_sm VALUES ('0100'), (E'0101\n'), ('0102');
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_sm')$$);
TRUNCATE rob_led_sm;
INSERT INTO rob_led_sm VALUES ('0100'), ('   '), ('0102');
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_sm')$$);
TRUNCATE rob_led_sm;
INSERT INTO rob_led_sm VALUES ('0100'), (repeat('8', 300));
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_sm')$$);
SELECT count(*) AS imported FROM dbops.migrations WHERE version LIKE '010%';
CREATE TABLE rob_led_ts (version timestamptz);
INSERT INTO rob_led_ts VALUES (now());
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_ts')$$);
CREATE TABLE rob_led_js (version jsonb);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_js')$$);
CREATE TABLE rob_led_arr (version_num text[]);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_arr')$$);
-- golang-migrate's bigint versions, a domain over text, char(n)
CREATE TABLE rob_led_go (version bigint PRIMARY KEY, dirty boolean);
INSERT INTO rob_led_go VALUES (20240101120000, false);
SELECT dbops.migration_import('rob_led_go');
CREATE DOMAIN rob_led_ver AS text CHECK (VALUE ~ '^[0-9]+$');
CREATE TABLE rob_led_dom (version rob_led_ver);
INSERT INTO rob_led_dom VALUES ('0200');
SELECT dbops.migration_import('rob_led_dom');
CREATE TABLE rob_led_chr (version char(8));
INSERT INTO rob_led_chr VALUES ('0300');
SELECT dbops.migration_import('rob_led_chr');
SELECT version, status FROM dbops.migrations
WHERE version IN ('20240101120000', '0200', '0300') ORDER BY version;
-- flyway: a description longer than migrate() takes
CREATE TABLE rob_led_fw (
    installed_rank int PRIMARY KEY, version varchar(50), description text,
    installed_by varchar(100), installed_on timestamp, execution_time int, success boolean);
INSERT INTO rob_led_fw VALUES (1, '9.0', repeat('d', 2000), 'fw', '2024-01-01', 1, true);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import('rob_led_fw')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import(0)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.migration_import(NULL)$$);

-- ---------------------------------------------------------------------------
-- 4. The cron evaluator: every error with a SQLSTATE, a bounded message and
--    a hint; the ends of the range of timestamps are no error
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run(repeat('*', 100000))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('x' || repeat('y', 500) || ' * * * *')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('* * * * * ' || repeat('y', 500))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('@' || repeat('y', 500))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('1/' || repeat('5', 500) || ' * * * *')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('*/60 * * * *')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('* * * * */8')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('* * * * *', now(), repeat('Z', 100000))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('* * * * *', '-infinity')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_prev_run(NULL)$$);
SELECT dbops.cron_next_run('* * * * *', '294276-12-31 23:59:00+00', 'UTC') AS after_the_last_minute,
       dbops.cron_next_run('* * * * *', '294276-12-31 23:00:00+00', 'Pacific/Kiritimati') AS near_the_end,
       dbops.cron_prev_run('* * * * *', '4714-11-24 00:00:00+00 BC', 'UTC') AS the_first_minute,
       dbops.cron_prev_run('0 0 1 1 *', '4714-11-24 00:00:00+00 BC', 'America/New_York') AS before_the_first;
-- the readers of pg_cron's jobs get NULL, never an error
SELECT dbops._cron_run(s, now(), true) AS next_run
FROM (VALUES (repeat('*', 5000)), ('* * * * * extra'), ('@nope'), ('')) AS v(s);

-- the snapshots and the trend: limits checked before the arithmetic
SELECT * FROM pg_temp.err($$SELECT dbops.health_snapshot(keep => '100000 years')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.health_snapshot(keep => '1 mon -29 days')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.bloat_snapshot(keep => '178000000 years')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.bloat_snapshot(min_size => NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.bloat_snapshot(min_size => -9223372036854775808)$$);
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.health_trend(repeat('c', 100000))$$);
SELECT count(*) FROM dbops.health_trend('connections', '178000000 years');

-- ---------------------------------------------------------------------------
-- 5. dbops.schedule(): every argument checked at the call, against what the
--    jobs and pg_cron will do with it
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    CREATE EXTENSION pg_cron;
EXCEPTION WHEN OTHERS THEN
    NULL;
END;
$$;
SELECT installed AS have_cron FROM dbops.cron_status() \gset
\if :have_cron
BEGIN;
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(health_history_keep => '178000000 years')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(bloat_history_keep => '1001 years')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(cron_history_keep => '1 mon -29 days')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(reap => '@hourly', reap_idle_for => '100000 years')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(cron_history_keep => NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(database => 'template0')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(database => 'rob_led_no_such_db')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(database => repeat('d', 100000))$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(purge => '*/60 * * * *')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(purge => repeat('*', 100000))$$);
-- "N seconds" and "$" as the pg_cron loaded here takes them (see schedule.sql)
SELECT s AS schedule,
       (e.state = 'ok') = (current_setting(need, true) IS NOT NULL) AS as_pg_cron_reads_it,
       e.state IN ('ok', '22023') AS state_ok
FROM (VALUES ('1 seconds', 'cron.timezone'), ('0 0 $ * *', 'cron.launch_active_jobs')) AS v(s, need),
     pg_temp.err(format('SELECT dbops.schedule(purge => %L)', s)) AS e;
SELECT NULL AS cleaned FROM (SELECT count(*) FROM dbops.unschedule()) AS u;
-- roles pg_cron could not run the jobs as
CREATE ROLE rob_led_nologin;
CREATE ROLE rob_led_noconnect LOGIN;
GRANT EXECUTE ON FUNCTION dbops.schedule(text, text, text, text, interval, text, interval, interval, interval)
    TO rob_led_nologin, rob_led_noconnect;
GRANT USAGE ON SCHEMA cron TO rob_led_nologin, rob_led_noconnect;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.scheduled_jobs TO rob_led_nologin, rob_led_noconnect;
SET ROLE rob_led_nologin;
SELECT * FROM pg_temp.err($$SELECT dbops.schedule()$$);
RESET ROLE;
-- and one without the grants doc/schedule.md lists
CREATE ROLE rob_led_nogrant LOGIN;
GRANT EXECUTE ON FUNCTION dbops.schedule(text, text, text, text, interval, text, interval, interval, interval),
    dbops.unschedule(text) TO rob_led_nogrant;
SET ROLE rob_led_nogrant;
SELECT * FROM pg_temp.err($$SELECT dbops.schedule()$$);
SELECT * FROM pg_temp.err($$SELECT dbops.unschedule()$$);
RESET ROLE;
GRANT USAGE ON SCHEMA cron TO rob_led_nogrant;
SET ROLE rob_led_nogrant;
SELECT * FROM pg_temp.err($$SELECT dbops.schedule()$$);
RESET ROLE;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
SET ROLE rob_led_noconnect;
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(database => 'template1')$$);
RESET ROLE;
-- none of it created a job
SELECT count(*) AS jobs FROM cron.job;
-- a job dbops does not read (pg_cron takes text after the fifth field)
-- breaks neither dbops.jobs nor the cron_failures check
SELECT cron.schedule('rob-led-odd', '* * * * * trailing', 'SELECT 1') > 0 AS scheduled;
SELECT job_name, schedule, next_run FROM dbops.cron_jobs();
SELECT status FROM dbops.health() WHERE check_name = 'cron_failures';
SELECT * FROM pg_temp.err($$SELECT dbops.unschedule(database => '')$$);
ROLLBACK;
\endif
DROP EXTENSION IF EXISTS pg_cron;

-- clean up
DROP TABLE rob_led_sm, rob_led_ts, rob_led_js, rob_led_arr, rob_led_go, rob_led_dom,
    rob_led_chr, rob_led_fw;
DROP DOMAIN rob_led_ver;
DROP ROLE rob_led_reader;
DROP ROLE IF EXISTS rob_led_nologin;
DROP ROLE IF EXISTS rob_led_noconnect;
DROP ROLE IF EXISTS rob_led_nogrant;
SET session_replication_role = replica;
DELETE FROM dbops.migration_events;
RESET session_replication_role;
DELETE FROM dbops.migration_objects;
DELETE FROM dbops.migrations;
