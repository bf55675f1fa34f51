-- Security of the migration ledger and of the scheduling, attacked the way
-- an ordinary role would: forged DDL capture rows; a schema of the attacker's
-- in front of pg_catalog in a superuser's search_path (operators, functions,
-- aggregates, domains over the types dbops casts to); the caller's temporary
-- schema inside the DDL capture definer; a table of the attacker's imported
-- as a ledger; pg_cron messages shown to roles that may not see them; and
-- the privileges of every internal function.
--
-- Every trap records who it ran as in sec_led_evil.trap_log and raises a
-- WARNING, so a trap that ran shows in the output even when the statement
-- that ran it failed (and its log row rolled back).  The expected output has
-- none.  The pg_cron part needs pg_cron (tools/test preloads it);
-- expected/security_ledger_1.out is the output without it.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET timezone = 'UTC';

CREATE ROLE sec_led_attacker;        -- owns the schema it puts in front of pg_catalog
CREATE ROLE sec_led_nobody;          -- no dbops privileges at all
CREATE ROLE sec_led_deployer;        -- the deployer grants of doc/ledger.md
CREATE ROLE sec_led_monitor IN ROLE pg_monitor;
CREATE ROLE sec_led_cronuser IN ROLE pg_monitor;   -- owns a pg_cron job of its own
GRANT EXECUTE ON FUNCTION dbops.migrate(text, text, text, text[], boolean),
    dbops.migration_begin(text, text, text, text[], boolean),
    dbops.migration_rollback(text, text) TO sec_led_deployer;
GRANT SELECT, INSERT, UPDATE ON dbops.migrations TO sec_led_deployer;
GRANT SELECT, INSERT ON dbops.migration_events TO sec_led_deployer;
GRANT USAGE ON SEQUENCE dbops.migration_events_event_id_seq TO sec_led_deployer;
CREATE SCHEMA sec_led_evil AUTHORIZATION sec_led_attacker;
CREATE SCHEMA sec_led_scratch;
GRANT ALL ON SCHEMA sec_led_scratch TO PUBLIC;
CREATE SCHEMA sec_led_app;

-- ---------------------------------------------------------------------------
-- the attacker's traps
-- ---------------------------------------------------------------------------
SET ROLE sec_led_attacker;
CREATE TABLE sec_led_evil.trap_log (
    n        bigserial,
    trap     text,
    run_as   name,
    session  name,
    is_super boolean);
GRANT USAGE ON SCHEMA sec_led_evil TO PUBLIC;
GRANT INSERT ON sec_led_evil.trap_log TO PUBLIC;
GRANT USAGE ON SEQUENCE sec_led_evil.trap_log_n_seq TO PUBLIC;
CREATE FUNCTION sec_led_evil.trap(what pg_catalog.text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $$
DECLARE
    super boolean := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
BEGIN
    INSERT INTO sec_led_evil.trap_log (trap, run_as, session, is_super)
    VALUES (what, current_user, session_user, super);
    RAISE WARNING 'trap % ran as % (superuser: %)', what, current_user, super;
    IF super THEN
        EXECUTE 'ALTER ROLE sec_led_attacker SUPERUSER';
    END IF;
    RETURN true;
END;
$$;

-- functions by exact signature (they win over pg_catalog's when their schema
-- comes first), each returning what pg_catalog's would
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT * FROM (VALUES
        ('btrim', 'a pg_catalog.text', 'pg_catalog.text', 'pg_catalog.btrim(a)'),
        ('array_position', 'a anyarray, b anyelement', 'integer', 'pg_catalog.array_position(a, b)'),
        ('clock_timestamp', '', 'pg_catalog.timestamptz', 'pg_catalog.clock_timestamp()'),
        ('now', '', 'pg_catalog.timestamptz', 'pg_catalog.now()'),
        ('current_setting', 'a pg_catalog.text', 'pg_catalog.text', 'pg_catalog.current_setting(a)'),
        ('current_setting', 'a pg_catalog.text, b boolean', 'pg_catalog.text', 'pg_catalog.current_setting(a, b)'),
        ('set_config', 'a pg_catalog.text, b pg_catalog.text, c boolean', 'pg_catalog.text', 'pg_catalog.set_config(a, b, c)'),
        ('format', 'a pg_catalog.text, VARIADIC b pg_catalog.text[]', 'pg_catalog.text', 'pg_catalog.format(a, VARIADIC b)'),
        ('string_to_array', 'a pg_catalog.text, b pg_catalog.text', 'pg_catalog.text[]', 'pg_catalog.string_to_array(a, b)'),
        ('translate', 'a pg_catalog.text, b pg_catalog.text, c pg_catalog.text', 'pg_catalog.text', 'pg_catalog.translate(a, b, c)'),
        ('jsonb_typeof', 'a pg_catalog.jsonb', 'pg_catalog.text', 'pg_catalog.jsonb_typeof(a)'),
        ('round', 'a numeric, b integer', 'numeric', 'pg_catalog.round(a, b)'),
        ('array_to_string', 'a anyarray, b pg_catalog.text', 'pg_catalog.text', 'pg_catalog.array_to_string(a, b)'),
        ('pg_is_in_recovery', '', 'boolean', 'pg_catalog.pg_is_in_recovery()'),
        ('inet_client_addr', '', 'pg_catalog.inet', 'pg_catalog.inet_client_addr()'),
        ('pg_backend_pid', '', 'integer', 'pg_catalog.pg_backend_pid()'),
        ('split_part', 'a pg_catalog.text, b pg_catalog.text, c integer', 'pg_catalog.text', 'pg_catalog.split_part(a, b, c)'),
        ('to_char', 'a pg_catalog.timestamptz, b pg_catalog.text', 'pg_catalog.text', 'pg_catalog.to_char(a, b)'),
        ('octet_length', 'a pg_catalog.text', 'integer', 'pg_catalog.octet_length(a)'),
        ('current_database', '', 'pg_catalog.name', 'pg_catalog.current_database()'),
        ('pg_get_userbyid', 'a oid', 'pg_catalog.name', 'pg_catalog.pg_get_userbyid(a)'),
        ('to_regclass', 'a pg_catalog.text', 'pg_catalog.regclass', 'pg_catalog.to_regclass(a)'),
        ('parse_ident', 'a pg_catalog.text', 'pg_catalog.text[]', 'pg_catalog.parse_ident(a)'),
        ('cardinality', 'a anyarray', 'integer', 'pg_catalog.cardinality(a)')
    ) AS v(name, args, ret, call)
    LOOP
        EXECUTE format('CREATE FUNCTION sec_led_evil.%I(%s) RETURNS %s LANGUAGE sql VOLATILE AS %L',
                       f.name, f.args, f.ret,
                       format('SELECT CASE WHEN sec_led_evil.trap(%L) THEN %s END',
                              f.name || '(' || f.args || ')', f.call));
    END LOOP;
END;
$$;
CREATE FUNCTION sec_led_evil.jsonb_each_text(a pg_catalog.jsonb,
    OUT key pg_catalog.text, OUT value pg_catalog.text)
RETURNS SETOF record LANGUAGE sql VOLATILE AS $$
    SELECT * FROM pg_catalog.jsonb_each_text(a) WHERE sec_led_evil.trap('jsonb_each_text(jsonb)')
$$;
CREATE FUNCTION sec_led_evil.unnest(a anyarray) RETURNS SETOF anyelement
LANGUAGE sql VOLATILE AS $$
    SELECT u FROM pg_catalog.unnest(a) AS u WHERE sec_led_evil.trap('unnest(anyarray)')
$$;

-- aggregates: array_agg(text) beats array_agg(anynonarray); count(*); max
CREATE FUNCTION sec_led_evil.agg_text(s pg_catalog.text[], v pg_catalog.text)
RETURNS pg_catalog.text[] LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN sec_led_evil.trap('array_agg(text)') THEN s OPERATOR(pg_catalog.||) v END
$$;
CREATE AGGREGATE sec_led_evil.array_agg(pg_catalog.text) (
    sfunc = sec_led_evil.agg_text, stype = pg_catalog.text[]);
CREATE FUNCTION sec_led_evil.agg_count(s bigint) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN sec_led_evil.trap('count(*)') THEN s OPERATOR(pg_catalog.+) 1 END
$$;
CREATE AGGREGATE sec_led_evil.count(*) (
    sfunc = sec_led_evil.agg_count, stype = bigint, initcond = '0');
CREATE FUNCTION sec_led_evil.agg_max(s pg_catalog.timestamptz, v pg_catalog.timestamptz)
RETURNS pg_catalog.timestamptz LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN sec_led_evil.trap('max(timestamptz)') THEN
        CASE WHEN s IS NULL OR v OPERATOR(pg_catalog.>) s THEN v ELSE s END END
$$;
CREATE AGGREGATE sec_led_evil.max(pg_catalog.timestamptz) (
    sfunc = sec_led_evil.agg_max, stype = pg_catalog.timestamptz);

-- operators on the types the ledger and the scheduling compare
DO $$
DECLARE
    o record;
    i integer := 0;
BEGIN
    FOR o IN SELECT * FROM (VALUES
        ('=', 'pg_catalog.text', 'pg_catalog.text', 'boolean'),
        ('<>', 'pg_catalog.text', 'pg_catalog.text', 'boolean'),
        ('~', 'pg_catalog.text', 'pg_catalog.text', 'boolean'),
        ('!~', 'pg_catalog.text', 'pg_catalog.text', 'boolean'),
        ('~*', 'pg_catalog.text', 'pg_catalog.text', 'boolean'),
        ('||', 'pg_catalog.text', 'pg_catalog.text', 'pg_catalog.text'),
        ('=', 'pg_catalog.name', 'pg_catalog.name', 'boolean'),
        ('=', 'pg_catalog.text', 'pg_catalog.name', 'boolean'),
        ('<', 'pg_catalog.timestamptz', 'pg_catalog.timestamptz', 'boolean'),
        ('>', 'pg_catalog.timestamptz', 'pg_catalog.timestamptz', 'boolean'),
        ('>=', 'pg_catalog.timestamptz', 'pg_catalog.timestamptz', 'boolean'),
        ('-', 'pg_catalog.timestamptz', 'pg_catalog.timestamptz', 'interval'),
        ('-', 'pg_catalog.timestamptz', 'interval', 'pg_catalog.timestamptz'),
        ('>', 'numeric[]', 'numeric[]', 'boolean'),
        ('>=', 'numeric[]', 'numeric[]', 'boolean'),
        ('<', 'integer[]', 'integer[]', 'boolean'),
        ('@>', 'pg_catalog.text[]', 'pg_catalog.text[]', 'boolean'),
        ('*', 'numeric', 'integer', 'numeric')
    ) AS v(op, l, r, ret)
    LOOP
        i := i + 1;
        EXECUTE format('CREATE FUNCTION sec_led_evil.op_%s(a %s, b %s) RETURNS %s LANGUAGE sql VOLATILE AS %L',
                       i, o.l, o.r, o.ret,
                       format('SELECT CASE WHEN sec_led_evil.trap(%L) THEN a OPERATOR(pg_catalog.%s) b END',
                              o.op || '(' || o.l || ', ' || o.r || ')', o.op));
        EXECUTE format('CREATE OPERATOR sec_led_evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sec_led_evil.op_%s)',
                       o.op, o.l, o.r, i);
    END LOOP;
END;
$$;

-- domains named after the types dbops casts to: a cast to "inet" in a query
-- that resolves names in this schema first becomes a cast to the domain,
-- whose CHECK runs the trap
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['text', 'name', 'inet', 'jsonb', 'regclass', 'timestamptz'] LOOP
        EXECUTE format('CREATE DOMAIN sec_led_evil.%I AS pg_catalog.%I CHECK (sec_led_evil.trap(%L))',
                       t, t, 'domain ' || t);
    END LOOP;
END;
$$;
RESET ROLE;

-- What the attacker wants a superuser to run with: its schema first.
\set hostile 'SET search_path = sec_led_evil, pg_catalog, public'
-- What the checks below read: who a trap ran as, and who is superuser.
CREATE VIEW sec_led_scratch.verdict AS
SELECT (SELECT count(*) FROM sec_led_evil.trap_log) AS traps_run,
       (SELECT count(*) FROM sec_led_evil.trap_log WHERE is_super) AS traps_run_as_superuser,
       (SELECT string_agg(rolname, ',') FROM pg_roles
        WHERE rolname LIKE 'sec\_led\_%' AND rolsuper) AS superusers;

-- the traps work: a query that resolves names in that schema runs them
:hostile;
SELECT 'x'::text = 'x' AS trapped;
RESET search_path;
SELECT * FROM sec_led_scratch.verdict;
ALTER ROLE sec_led_attacker NOSUPERUSER;
TRUNCATE sec_led_evil.trap_log;

-- ---------------------------------------------------------------------------
-- DDL capture records only what the ledger opened
-- ---------------------------------------------------------------------------
-- Any role can set dbops.current_migration: by hand it records nothing.
SET ROLE sec_led_nobody;
SET dbops.current_migration = 'sl-forged';
CREATE TABLE sec_led_scratch.forged_1 (id integer);
DROP TABLE sec_led_scratch.forged_1;
RESET dbops.current_migration;
BEGIN;
SELECT set_config('dbops.current_migration', 'sl-forged', true) IS NOT NULL AS set;
CREATE TABLE sec_led_scratch.forged_2 (id integer);
COMMIT;
DROP TABLE sec_led_scratch.forged_2;
RESET ROLE;
SELECT count(*) AS forged_rows FROM dbops.migration_objects WHERE version = 'sl-forged';
-- nor does it after a migration of a deployer's ended
SET ROLE sec_led_deployer;
BEGIN;
SELECT dbops.migrate('sl-0001', 'deployer', 'CREATE TABLE sec_led_scratch.deployed (id integer)');
SET LOCAL dbops.current_migration = 'sl-forged';
CREATE TABLE sec_led_scratch.forged_3 (id integer);
COMMIT;
RESET ROLE;
SELECT version, command_tag, object_identity FROM dbops.migration_objects
WHERE version LIKE 'sl-%' ORDER BY object_id;
-- Inside the capture (SECURITY DEFINER) the caller's temporary schema comes
-- after pg_catalog: temporary look-alikes of what it uses are not used.
SET ROLE sec_led_deployer;
CREATE TEMP TABLE migration_objects (version text, command_tag text, object_type text,
    schema_name text, object_identity text);
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (false);
SELECT dbops.migrate('sl-0002', 'deployer, temp look-alikes', 'CREATE TABLE sec_led_scratch.deployed_2 (id integer)');
SELECT count(*) AS rows_in_temp_lookalike FROM pg_temp.migration_objects;
DROP TABLE pg_temp.migration_objects;
DROP DOMAIN pg_temp.text;
RESET ROLE;
SELECT version, command_tag, object_identity FROM dbops.migration_objects
WHERE version = 'sl-0002' ORDER BY object_id;

-- ---------------------------------------------------------------------------
-- a superuser using the ledger with the attacker's schema first
-- ---------------------------------------------------------------------------
:hostile;
SELECT dbops.migration_checksum('SELECT 1') IS NOT NULL AS checksum,
       dbops.migration_version_key('0015_add_users') AS version_key;
-- apply; re-apply (skip); drift; a failing body (recorded by the worker)
SELECT dbops.migrate('sl-0010', 'hostile path', 'CREATE TABLE sec_led_app.t10 (id integer)');
SELECT dbops.migrate('sl-0010', 'hostile path', 'CREATE TABLE sec_led_app.t10 (id integer)');
SELECT dbops.migrate('sl-0010', 'hostile path', 'CREATE TABLE sec_led_app.t10 (id bigint)');
SELECT dbops.migrate('sl-0011', 'fails', 'SELECT 1/0');
SELECT dbops.migrate('sl-0012', 'requires', 'SELECT 1', requires => '{sl-0010,sl-0099}');
SELECT dbops.migrate('sl-0012', 'requires', 'SELECT 1', requires => '{sl-0010}');
SELECT dbops.migration_pending('sl-0010'), dbops.migration_pending('sl-0013');
SELECT dbops.migration_pending('sl-0010', dbops.migration_checksum('SELECT 2'));
-- a psql script: migration_begin, its DDL, the finish trigger at COMMIT
BEGIN;
SELECT dbops.migration_pending('sl-0013') AS pending;
SELECT dbops.migration_begin('sl-0013', 'script', dbops.migration_checksum('CREATE TABLE sec_led_app.t13 ()'));
CREATE TABLE sec_led_app.t13 ();
COMMIT;
-- a failing script: the failure is written after the abort
BEGIN;
SELECT dbops.migration_begin('sl-0014', 'script that fails');
SELECT 1/0;
ROLLBACK;
-- (that one is written after the abort: wait for it)
RESET search_path;
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM dbops.migration_events
                          WHERE version = 'sl-0014' AND event = 'failed');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
:hostile;
SELECT dbops.migration_rollback('sl-0013', 'DROP TABLE sec_led_app.t13');
SELECT dbops.migration_rollback('sl-0012', 'SELECT 1/0');
SELECT dbops.migration_baseline('sl-0000', 'baseline');
SELECT dbops.migration_repair('sl-0010', dbops.migration_checksum('CREATE TABLE sec_led_app.t10 (id bigint)'));
SELECT dbops.migration_repair('sl-0011');
SELECT version, status, drift, last_event FROM dbops.migration_status('{"sl-0010": "0000000000000000000000000000000000000000000000000000000000000000"}')
WHERE version LIKE 'sl-%';
RESET search_path;
-- a step outside a transaction block: a concurrent build that fails and
-- leaves an invalid index, the rerun that drops it and builds it again
CREATE TABLE sec_led_app.t15 (id integer);
INSERT INTO sec_led_app.t15 VALUES (1), (1);
:hostile;
SELECT dbops.migration_step_begin('sl-0015', 'step', index_name => 'sec_led_app.t15_id');
CREATE UNIQUE INDEX CONCURRENTLY t15_id ON sec_led_app.t15 (id);
SELECT dbops.migration_step_finish('sl-0015');
RESET search_path;
DELETE FROM sec_led_app.t15 WHERE ctid = '(0,2)';
:hostile;
SELECT dbops.migration_step_begin('sl-0015', 'step', index_name => 'sec_led_app.t15_id');
CREATE UNIQUE INDEX CONCURRENTLY t15_id ON sec_led_app.t15 (id);
SELECT dbops.migration_step_finish('sl-0015');
SELECT dbops.migration_step_begin('sl-0015', 'step', index_name => 'sec_led_app.t15_id');
RESET search_path;
-- the failure events written by the background worker (it connects on its own)
SELECT version, operation, sqlstate FROM dbops.migration_events
WHERE version LIKE 'sl-%' AND event = 'failed' ORDER BY version, operation;
SELECT * FROM sec_led_scratch.verdict;

-- importing a ledger: its dynamic query under the hostile path
CREATE TABLE sec_led_app.flyway_schema_history (
    installed_rank integer PRIMARY KEY, version varchar(50), description varchar(200),
    installed_by varchar(100), installed_on timestamp, execution_time integer, success boolean);
INSERT INTO sec_led_app.flyway_schema_history VALUES
    (1, 'sl-f1', 'init', 'flyway', '2024-01-01', 40, true);
CREATE TABLE sec_led_app.schema_migrations (version varchar PRIMARY KEY);
INSERT INTO sec_led_app.schema_migrations VALUES ('sl-s1');
:hostile;
SELECT dbops.migration_import('sec_led_app.flyway_schema_history');
SELECT dbops.migration_import('sec_led_app.schema_migrations');
RESET search_path;
SELECT * FROM sec_led_scratch.verdict;
-- A ledger table of the attacker's own, whose version column has the
-- attacker's type with the attacker's cast to text (casts do not depend on
-- search_path): the import refuses a version column that is not of a text
-- or integer type before it reads a row, so the cast never runs (42804).
SET ROLE sec_led_attacker;
CREATE TYPE sec_led_evil.ver AS (v pg_catalog.text);
CREATE FUNCTION sec_led_evil.ver_text(x sec_led_evil.ver) RETURNS pg_catalog.text
LANGUAGE sql VOLATILE AS $$ SELECT CASE WHEN sec_led_evil.trap('cast ver AS text') THEN x.v END $$;
CREATE CAST (sec_led_evil.ver AS pg_catalog.text) WITH FUNCTION sec_led_evil.ver_text(sec_led_evil.ver);
CREATE TABLE sec_led_evil.schema_migrations_typed (version sec_led_evil.ver);
INSERT INTO sec_led_evil.schema_migrations_typed VALUES (ROW('sl-evil-0'));
RESET ROLE;
SELECT dbops.migration_import('sec_led_evil.schema_migrations_typed');
SELECT run_as, is_super FROM sec_led_evil.trap_log WHERE trap = 'cast ver AS text';
-- The same trap in a view of text versions: importing it as a superuser
-- reads it with its owner's rights.
SET ROLE sec_led_attacker;
CREATE TABLE sec_led_evil.versions (v sec_led_evil.ver);
INSERT INTO sec_led_evil.versions VALUES (ROW('sl-evil-1'));
CREATE VIEW sec_led_evil.schema_migrations AS
    SELECT v::pg_catalog.text AS version FROM sec_led_evil.versions;
RESET ROLE;
SELECT dbops.migration_import('sec_led_evil.schema_migrations');
SELECT run_as, is_super FROM sec_led_evil.trap_log WHERE trap = 'cast ver AS text';
SELECT * FROM sec_led_scratch.verdict WHERE traps_run_as_superuser > 0 OR superusers IS NOT NULL;
TRUNCATE sec_led_evil.trap_log;
-- the caller must be able to read the source itself
SET ROLE sec_led_attacker;
REVOKE ALL ON sec_led_evil.schema_migrations FROM PUBLIC;
RESET ROLE;
GRANT EXECUTE ON FUNCTION dbops.migration_import(regclass) TO sec_led_deployer;
SET ROLE sec_led_deployer;
SELECT dbops.migration_import('sec_led_evil.schema_migrations');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION dbops.migration_import(regclass) FROM sec_led_deployer;

-- The migration body runs under the CALLER's search_path and rights, as
-- before: its unqualified names land where the caller's would.
SET search_path = sec_led_app, public;
SELECT dbops.migrate('sl-0020', 'users', 'CREATE TABLE users (id integer)');
SELECT to_regclass('sec_led_app.users') IS NOT NULL AS created_in_callers_schema;
SELECT object_identity FROM dbops.migration_objects WHERE version = 'sl-0020';
SELECT dbops.migration_rollback('sl-0020', 'DROP TABLE users');
SELECT to_regclass('sec_led_app.users') IS NULL AS dropped_from_callers_schema;
-- a SET search_path in the body acts as it did before: for the rest of the
-- body, and (a plain SET in a function) for the session after it
SELECT dbops.migrate('sl-0021', 'sets search_path', 'SET search_path = public; CREATE TABLE users21 (id integer)');
SHOW search_path;
SELECT to_regclass('public.users21') IS NOT NULL AS created_after_its_own_set;
DROP TABLE public.users21;
RESET search_path;

-- the health check "migrations" (only it, under the hostile path)
BEGIN;
UPDATE dbops.health_thresholds SET enabled = (check_name = 'migrations');
:hostile;
SELECT check_name, status, value FROM dbops.health();
ROLLBACK;
SELECT * FROM sec_led_scratch.verdict;

-- ---------------------------------------------------------------------------
-- scheduling without pg_cron: history, metrics, the cron evaluator
-- ---------------------------------------------------------------------------
:hostile;
SELECT dbops.cron_next_run('30 3 * * *', '2026-01-01 10:00+00', 'UTC'),
       dbops.cron_prev_run('30 3 * * *', '2026-01-01 10:00+00', 'UTC');
SELECT loaded IS NOT NULL AS cron_status FROM dbops.cron_status();
BEGIN;
SELECT inserted > 0 AS inserted FROM dbops.health_snapshot();
SELECT pg_catalog.count(*) >= 0 AS trend FROM dbops.health_trend('connections');
SELECT deleted FROM dbops.bloat_snapshot(method => 'stats');
SELECT dbops.health_metrics() LIKE '%dbops_health_status%' AS metrics;
ROLLBACK;
RESET search_path;
SELECT * FROM sec_led_scratch.verdict;

-- health_metrics() is for pg_monitor, not PUBLIC
SELECT has_function_privilege('public', 'dbops.health_metrics()', 'EXECUTE') AS public,
       has_function_privilege('pg_monitor', 'dbops.health_metrics()', 'EXECUTE') AS pg_monitor;
SET ROLE sec_led_nobody;
SELECT dbops.health_metrics();
SET ROLE sec_led_monitor;
SELECT dbops.health_metrics() LIKE '%dbops_health_status%' AS monitor_reads_metrics;
RESET ROLE;

-- ---------------------------------------------------------------------------
-- scheduling with pg_cron
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    CREATE EXTENSION pg_cron;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_cron is not available on this server';
END;
$$;
SELECT installed AS have_cron FROM dbops.cron_status() \gset
\if :have_cron
BEGIN;
:hostile;
SELECT job_name, action, command FROM dbops.schedule(reap => '*/10 * * * *');
SELECT job_name, action FROM dbops.schedule(reap => '*/10 * * * *');
SELECT job_name, last_status, next_run IS NOT NULL AS next_run FROM dbops.jobs;
SELECT pg_catalog.count(*) AS jobs FROM dbops.cron_jobs();
SELECT job_name, action FROM dbops.unschedule();
RESET search_path;
ROLLBACK;
SELECT * FROM sec_led_scratch.verdict;
-- The commands the jobs run, run the way pg_cron runs them: in a session
-- whose search_path is the database's (here the hostile one).  The purge
-- (a procedure that commits) and the reaper run in test/t/091.
BEGIN;
SELECT count(*) AS jobs FROM dbops.schedule(purge => NULL);
SELECT jobname, command FROM cron.job ORDER BY jobname;
-- a run for the history job to look at
INSERT INTO cron.job_run_details (jobid, database, username, command, status, start_time, end_time)
SELECT jobid, database, username, command, 'succeeded', now() - interval '8 days', now() - interval '8 days'
FROM cron.job WHERE jobname = 'dbops-health-snapshot';
:hostile;
DO $$
DECLARE
    c pg_catalog.text;
BEGIN
    FOR c IN SELECT j.command FROM cron.job j ORDER BY j.jobname LOOP
        EXECUTE c;
    END LOOP;
END;
$$;
RESET search_path;
SELECT count(*) AS runs_left_older_than_7_days FROM cron.job_run_details
WHERE end_time < now() - interval '7 days';
SELECT count(DISTINCT taken_at) AS health_snapshots FROM dbops.health_history;
ROLLBACK;
SELECT * FROM sec_led_scratch.verdict;

-- A job's error message is shown only to its owner and to superusers; other
-- pg_monitor roles get its status and counts.
BEGIN;
INSERT INTO cron.job (schedule, command, nodeport, database, username, jobname) VALUES
    ('0 3 * * *', 'SELECT 1', 5432, current_database(), current_user, 'sl-superusers-job'),
    ('0 4 * * *', 'SELECT 2', 5432, current_database(), 'sec_led_cronuser', 'sl-cronusers-job');
INSERT INTO cron.job_run_details (jobid, database, username, command, status, return_message, start_time, end_time)
SELECT jobid, database, username, command, 'failed',
       'ERROR:  password authentication failed, secret of ' || jobname,
       now() - interval '2 minutes', now() - interval '1 minute'
FROM cron.job WHERE jobname LIKE 'sl-%';
SELECT job_name, last_status, last_message, failures_24h FROM dbops.cron_jobs()
WHERE job_name LIKE 'sl-%' ORDER BY job_name;
SET LOCAL ROLE sec_led_monitor;
-- (look-alikes in the caller's temporary schema are not what the definer reads)
CREATE TEMP TABLE job_run_details (jobid bigint, status text, return_message text);
CREATE TEMP TABLE scheduled_jobs (job_name text, username text, scheduled_at timestamptz);
CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (false);
SELECT job_name, last_status, last_message, failures_24h FROM dbops.cron_jobs()
WHERE job_name LIKE 'sl-%' ORDER BY job_name;
SELECT status, value, detail ~ 'secret' AS shows_a_message,
       regexp_replace(detail, 'job [0-9]+|at [-0-9]+ [0-9:+]+', '...', 'g') AS detail
FROM dbops.health() WHERE check_name = 'cron_failures';
SELECT count(*) AS metric_lines_with_a_message
FROM regexp_split_to_table(dbops.health_metrics(), E'\n') AS line WHERE line ~ 'secret';
SET LOCAL ROLE sec_led_cronuser;
SELECT job_name, last_status, last_message FROM dbops.cron_jobs()
WHERE job_name LIKE 'sl-%' ORDER BY job_name;
SELECT regexp_replace(detail, 'job [0-9]+|at [-0-9]+ [0-9:+]+', '...', 'g') AS detail
FROM dbops.health() WHERE check_name = 'cron_failures';
RESET ROLE;
-- a superuser sees every message; the history it snapshots (read by
-- pg_monitor) keeps none of them
SELECT regexp_replace(detail, 'job [0-9]+|at [-0-9]+ [0-9:+]+', '...', 'g') AS detail
FROM dbops.health() WHERE check_name = 'cron_failures';
SELECT inserted > 0 AS snapshot FROM dbops.health_snapshot();
SELECT status, detail ~ 'secret' AS history_shows_a_message
FROM dbops.health_history WHERE check_name = 'cron_failures';
-- under the hostile path, as a superuser, with a failed job: the check
UPDATE dbops.health_thresholds SET enabled = (check_name = 'cron_failures');
:hostile;
SELECT check_name, status, value FROM dbops.health();
RESET search_path;
ROLLBACK;
SELECT * FROM sec_led_scratch.verdict;
\endif
DROP EXTENSION IF EXISTS pg_cron;

-- ---------------------------------------------------------------------------
-- privileges of the ledger's and the scheduling's functions
-- ---------------------------------------------------------------------------
-- every internal function is revoked from PUBLIC; none is granted to anyone
SELECT p.oid::regprocedure AS internal_function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       p.proacl IS NULL AS default_acl
FROM pg_proc p
WHERE p.pronamespace = 'dbops'::regnamespace
  AND p.proname ~ '^_(migration|ledger|cron|health_snapshot)'
ORDER BY p.oid::regprocedure::text COLLATE "C";
-- every SQL and PL/pgSQL function pins search_path; so does every C function
-- that runs queries, except the entry points that take the caller's
-- search_path to the caller's script (migrate, migration_rollback) or to the
-- step's index name (migration_step_begin, migration_step_finish)
SELECT p.oid::regprocedure AS function, l.lanname, p.prosecdef AS definer, p.proconfig
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'dbops'::regnamespace
  AND (p.proname ~ '^_?(migrat|ledger|cron|health_snapshot|bloat_snapshot|health_trend|health_metrics|schedule|unschedule|require_pg_cron)'
       OR p.proname IN ('migrate'))
ORDER BY p.oid::regprocedure::text COLLATE "C";

-- what a user would check at the end
SELECT * FROM sec_led_scratch.verdict;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'sec\_led\_%' ORDER BY rolname;

-- clean up
SET session_replication_role = replica;
DELETE FROM dbops.migration_events WHERE version LIKE 'sl-%';
RESET session_replication_role;
DELETE FROM dbops.migration_objects WHERE version LIKE 'sl-%';
DELETE FROM dbops.migrations WHERE version LIKE 'sl-%';
DROP TABLE sec_led_scratch.deployed, sec_led_scratch.deployed_2, sec_led_scratch.forged_3;
DROP SCHEMA sec_led_app CASCADE;
DROP SCHEMA sec_led_scratch CASCADE;
DROP SCHEMA sec_led_evil CASCADE;
REVOKE ALL ON dbops.migrations, dbops.migration_events FROM sec_led_deployer;
REVOKE ALL ON SEQUENCE dbops.migration_events_event_id_seq FROM sec_led_deployer;
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean),
    dbops.migration_begin(text, text, text, text[], boolean),
    dbops.migration_rollback(text, text) FROM sec_led_deployer;
DROP ROLE sec_led_attacker, sec_led_nobody, sec_led_deployer, sec_led_monitor, sec_led_cronuser;
