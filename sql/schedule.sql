-- dbops scheduling on pg_cron: the cron evaluator, schedule/unschedule
-- idempotence and errors, dbops.jobs, cron_failures, history and metrics.
--
-- tools/test preloads pg_cron with cron.database_name = 'contrib_regression';
-- expected/schedule_1.out is the output on a server without pg_cron.
-- Everything that creates jobs runs in a transaction that is rolled back, so
-- the pg_cron launcher never sees (or runs) a job of this test.
SET timezone = 'UTC';
\set SHOW_CONTEXT never

-- errors as data: SQLSTATE, message, detail, hint
CREATE FUNCTION pg_temp.err(q text,
    OUT state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END;
$$;

-- the cron evaluator: next and previous run of pg_cron schedules
SELECT s AS schedule,
       dbops.cron_next_run(s, '2026-01-01 10:07:30+00', 'UTC') AS next_run,
       dbops.cron_prev_run(s, '2026-01-01 10:07:30+00', 'UTC') AS prev_run
FROM (VALUES ('*/15 * * * *'), ('30 3 * * *'), ('7 10 * * *'), ('0 12 13 * fri'),
             ('0 12 13 * *'), ('0 12 * * 5'), ('0 0 29 2 *'), ('0 0 30 2 *'),
             ('5-10/2 1 * jan-mar mon-fri'), ('0 0 * * 7'),
             ('@hourly'), ('@daily'), ('@weekly'), ('@monthly'), ('@yearly'),
             ('@reboot')) AS v(s);
-- "$" (the last day of the month, pg_cron 1.6) and "N seconds" (pg_cron 1.5)
-- are accepted as the pg_cron loaded here reads them: its library defines
-- cron.launch_active_jobs from 1.6 on and cron.timezone from 1.5 on (all
-- of them without pg_cron loaded); no pg_cron takes 60 seconds, nor blanks
-- after a singular "second"
SELECT s AS schedule,
       (e.state = 'ok') = (need IS NOT NULL
                           AND (current_setting('cron.database_name', true) IS NULL
                                OR current_setting(need, true) IS NOT NULL)) AS as_pg_cron_reads_it,
       e.state IN ('ok', '22023') AS state_ok, e.hint IS NOT NULL OR e.state = 'ok' AS hint
FROM (VALUES ('0 0 $ * *', 'cron.launch_active_jobs'), ('30 seconds', 'cron.timezone'),
             ('1 second', 'cron.timezone'), ('59 SECONDS ', 'cron.timezone'),
             ('60 seconds', NULL), ('0 seconds', NULL), ('5 second ', NULL),
             ('5 seconds x', NULL)) AS v(s, need),
     pg_temp.err(format('SELECT dbops.cron_next_run(%L)', s)) AS e;
-- what those evaluate to (as the readers of pg_cron's jobs do, which accept
-- every form pg_cron has)
SELECT s AS schedule,
       dbops._cron_run(s, '2026-01-01 10:07:30+00', true) AS next_run,
       dbops._cron_run(s, '2026-01-01 10:07:30+00', false) AS prev_run
FROM (VALUES ('0 0 $ * *'), ('30 seconds'), ('* * * * * trailing text')) AS v(s);
-- a run exactly at "after" is not next; one exactly at "before" is prev
SELECT dbops.cron_next_run('0 * * * *', '2026-01-01 10:00:00+00', 'UTC'),
       dbops.cron_prev_run('0 * * * *', '2026-01-01 10:00:00+00', 'UTC');
-- time zones: 09:00 in Berlin, across the switch to summer time; a local
-- time the switch skips does not happen that day
SELECT dbops.cron_next_run('0 9 * * *', '2026-03-28 12:00+00', 'Europe/Berlin'),
       dbops.cron_next_run('0 9 * * *', '2026-03-29 12:00+00', 'Europe/Berlin'),
       dbops.cron_next_run('30 2 * * *', '2026-03-28 12:00+00', 'Europe/Berlin');
-- without a time zone, pg_cron's: cron.timezone (pg_cron 1.5+) or GMT
SELECT dbops.cron_next_run('30 3 * * *', '2026-01-01 10:07:30+00')
     = dbops.cron_next_run('30 3 * * *', '2026-01-01 10:07:30+00',
                           coalesce((dbops.cron_status()).timezone, 'GMT')) AS same;

-- bad schedules and arguments
SELECT s AS schedule, e.*
FROM (VALUES ('61 * * * *'), ('* 24 * * *'), ('* * 0 * *'), ('* * * 13 *'), ('* * * * 8'),
             ('* * * *'), ('* * * * * *'), ('*/0 * * * *'), ('1/5 * * * *'),
             ('5-1 * * * *'), ('* * * foo *'), ('x * * * *'), ('@often'), (''), ('   '),
             ('*/60 * * * *')) AS v(s),
     pg_temp.err(format('SELECT dbops.cron_next_run(%L)', s)) AS e;
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run(NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('* * * * *', NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_prev_run('* * * * *', 'infinity')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.cron_next_run('* * * * *', now(), 'Mars/Olympus')$$);

-- history: a snapshot of dbops.health(), its retention, the trend of a check
BEGIN;
SELECT inserted = (SELECT count(*) FROM dbops.health()) AS one_row_per_check, deleted
FROM dbops.health_snapshot();
-- the same instant twice (one transaction) updates rather than duplicates
SELECT inserted > 0 AS inserted, deleted FROM dbops.health_snapshot();
SELECT count(DISTINCT taken_at) AS snapshots, count(*) = count(DISTINCT check_name) AS one_per_check
FROM dbops.health_history;
INSERT INTO dbops.health_history (taken_at, check_name, status, value, unit)
VALUES (now() - interval '20 days', 'connections', 'ok', 1, '%'),
       (now() - interval '10 hours', 'connections', 'warning', 85, '%'),
       (now() - interval '2 hours', 'connections', 'ok', 40, '%');
SELECT taken_at = now() AS now, status, value, change, unit
FROM dbops.health_trend('connections', since => '2 days')
ORDER BY taken_at LIMIT 2;
SELECT count(*) FROM dbops.health_trend('connections', '30 days');
SELECT count(*) FROM dbops.health_trend('connections');
-- keep => '14 days' deletes the 20-day-old row
SELECT deleted FROM dbops.health_snapshot(keep => '14 days');
SELECT count(*) FROM dbops.health_history WHERE taken_at < now() - interval '14 days';
ROLLBACK;
-- bloat history: relations of at least min_size, as dbops.bloat() sees them
BEGIN;
CREATE TABLE schedule_bloat (id int PRIMARY KEY, pad text);
INSERT INTO schedule_bloat SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;
DELETE FROM schedule_bloat WHERE id % 2 = 0;
ANALYZE schedule_bloat;
SELECT inserted = (SELECT count(*) FROM dbops.bloat(NULL, 'stats') WHERE size_bytes >= 1048576)
       AS one_row_per_relation, deleted
FROM dbops.bloat_snapshot(method => 'stats');
SELECT relation, kind, method, size_bytes > 0 AS sized, bloat_pct IS NOT NULL AS has_pct
FROM dbops.bloat_history WHERE relation LIKE '%schedule_bloat%' ORDER BY relation, kind;
ROLLBACK;
SELECT * FROM pg_temp.err($$SELECT dbops.health_snapshot(keep => '-1 day')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.health_snapshot(keep => NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.bloat_snapshot(keep => '0')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.bloat_snapshot(method => NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.bloat_snapshot(min_size => -1)$$);
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.health_trend(NULL)$$);
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.health_trend('no_such_check')$$);
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.health_trend('connections', '-1 hour')$$);
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.health_trend('connections', NULL)$$);

-- Prometheus text format: HELP and TYPE once per family, before its
-- samples; every sample line well-formed; one status series per status
CREATE TEMP TABLE metrics AS
SELECT n, line FROM regexp_split_to_table(dbops.health_metrics(), E'\n') WITH ORDINALITY AS t(line, n);
SELECT line FROM metrics WHERE line LIKE '# TYPE%' ORDER BY n;
SELECT count(*) AS malformed FROM metrics
WHERE line <> '' AND line !~ '^# (HELP|TYPE) dbops_[a-z_]+ '
  AND line !~ '^dbops_[a-z_]+\{([a-z_]+="([^"\\]|\\[\\"n])*",)*[a-z_]+="([^"\\]|\\[\\"n])*"\} (-?[0-9.]+(e[-+][0-9]+)?|NaN|\+Inf|-Inf)$';
SELECT count(*) AS samples_before_their_type FROM metrics s
WHERE s.line LIKE 'dbops_%'
  AND NOT EXISTS (SELECT 1 FROM metrics t
                  WHERE t.n < s.n AND t.line = '# TYPE ' || substring(s.line FROM '^[a-z_]+') || ' gauge');
SELECT regexp_replace(line, 'database="[^"]*"', 'database="..."') AS line
FROM metrics WHERE line ~ 'check="connections"' AND line ~ '^dbops_check_(status|threshold)' ORDER BY n;
SELECT count(*) = (SELECT count(*) FROM dbops.health() WHERE value IS NOT NULL) AS one_value_per_check
FROM metrics WHERE line LIKE 'dbops_check_value{%';
SELECT right(dbops.health_metrics(), 1) = E'\n' AS ends_with_newline;

-- privileges: writers are not for PUBLIC, readers are for pg_monitor
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS pg_monitor
FROM pg_proc p
WHERE p.pronamespace = 'dbops'::regnamespace
  AND p.proname IN ('schedule', 'unschedule', 'health_snapshot', 'bloat_snapshot',
                    'cron_jobs', 'health_trend', 'health_metrics', 'cron_next_run')
ORDER BY p.proname;
SELECT c.relname, has_table_privilege('pg_monitor', c.oid, 'SELECT') AS pg_monitor
FROM pg_class c
WHERE c.relnamespace = 'dbops'::regnamespace
  AND c.relname IN ('jobs', 'health_history', 'bloat_history', 'scheduled_jobs')
ORDER BY c.relname;

-- pg_cron from here on
DO $$
BEGIN
    CREATE EXTENSION pg_cron;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_cron is not available on this server';
END;
$$;
SELECT loaded, installed, cron_database = current_database() AS here, log_run
FROM dbops.cron_status();

SELECT installed AS have_cron FROM dbops.cron_status() \gset
\if :have_cron
BEGIN;
-- the defaults: four jobs (no reap), each created once
SELECT job_name, action, dbname = current_database() AS here, schedule, active, command
FROM dbops.schedule();
SELECT jobname, schedule, command, database = current_database() AS here, active, username = current_user AS mine
FROM cron.job ORDER BY jobid;
-- the same call again changes nothing
SELECT job_name, action FROM dbops.schedule();
-- change one, remove one, add the reaper
SELECT job_name, action, schedule, command
FROM dbops.schedule(purge => '0 * * * *', bloat_snapshot => NULL,
                    reap => '*/10 * * * *', reap_idle_for => '30 minutes');
SELECT job_name, action
FROM dbops.schedule(purge => '0 * * * *', bloat_snapshot => NULL,
                    reap => '*/10 * * * *', reap_idle_for => '30 minutes');
SELECT jobname, schedule, command FROM cron.job ORDER BY jobname;
-- each job's command runs here as it is (a savepoint each; CALL dbops.purge()
-- commits its batches, so it refuses a transaction block: pg_cron runs it
-- outside one, see the TAP test)
SELECT j.jobname, e.state, e.message
FROM cron.job j, pg_temp.err(j.command) AS e
WHERE j.jobname IN ('dbops-purge', 'dbops-health-snapshot', 'dbops-reap', 'dbops-cron-history')
ORDER BY j.jobname;

-- dbops.jobs: schedule, no run yet, next run from the schedule
SELECT job_name, schedule, active, last_start, last_status, failures_24h,
       next_run = dbops.cron_next_run(schedule) AS next_ok, next_run > now() AS ahead,
       missed_run
FROM dbops.jobs;
SELECT status, value, regexp_replace(detail, '[0-9]+ pg_cron jobs', 'N pg_cron jobs') AS detail
FROM dbops.health() WHERE check_name = 'cron_failures';

-- a job due since it was scheduled that has not run is reported as missed
UPDATE dbops.scheduled_jobs SET scheduled_at = now() - interval '2 days'
WHERE job_name = 'dbops-reap';
SELECT job_name, missed_run = dbops.cron_prev_run(schedule, now() - interval '5 minutes') AS missed
FROM dbops.jobs;
SELECT status, value, hint IS NOT NULL AS hint,
       regexp_replace(detail, 'job [0-9]+|did not run at [^;]*$', '...', 'g') AS detail
FROM dbops.health() WHERE check_name = 'cron_failures';
-- ... until it runs
INSERT INTO cron.job_run_details (jobid, database, username, command, status, return_message, start_time, end_time)
SELECT jobid, database, username, command, 'succeeded', 'SELECT 1', now(), now()
FROM cron.job WHERE jobname = 'dbops-reap';
SELECT job_name, last_status, last_duration, missed_run FROM dbops.jobs WHERE job_name = 'dbops-reap';

-- a failed run: in dbops.jobs, in health, in the metrics (label escaped)
INSERT INTO cron.job_run_details (jobid, database, username, command, status, return_message, start_time, end_time)
SELECT jobid, database, username, command, 'failed',
       E'ERROR:  procedure "dbops.purge\\x" does not exist\n', now() - interval '61 seconds', now() - interval '1 minute'
FROM cron.job WHERE jobname = 'dbops-purge';
SELECT job_name, last_status, last_duration, last_message, failures_24h FROM dbops.jobs
WHERE job_name = 'dbops-purge';
SELECT status, value, regexp_replace(detail, 'job [0-9]+|at [-0-9]+ [0-9:+]+', '...', 'g') AS detail
FROM dbops.health() WHERE check_name = 'cron_failures';
SELECT regexp_replace(line, 'job [0-9]+|at [-0-9]+ [0-9:+]+|database="[^"]*"', '...', 'g') AS line
FROM regexp_split_to_table(dbops.health_metrics(), E'\n') AS line
WHERE line ~ 'check="cron_failures"' AND line !~ '} 0$';

-- pg_monitor reads jobs and the check sees every role's jobs; it may not schedule
CREATE ROLE dbops_schedule_monitor IN ROLE pg_monitor;
CREATE ROLE dbops_schedule_nobody;
SET ROLE dbops_schedule_monitor;
SELECT count(*) AS jobs FROM dbops.jobs;
SELECT status, value FROM dbops.health() WHERE check_name = 'cron_failures';
SELECT * FROM pg_temp.err($$SELECT dbops.schedule()$$);
SELECT * FROM pg_temp.err($$SELECT dbops.unschedule()$$);
SELECT * FROM pg_temp.err($$SELECT dbops.health_snapshot()$$);
SET ROLE dbops_schedule_nobody;
SELECT status, detail, hint FROM dbops.health() WHERE check_name = 'cron_failures';
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.jobs$$);
RESET ROLE;

-- jobs for another database are named after it and run there
SELECT job_name, action, dbname, command
FROM dbops.schedule(database => 'template1', purge => NULL, bloat_snapshot => NULL);
SELECT jobname, database FROM cron.job WHERE jobname LIKE '%@%';
SELECT job_name, action FROM dbops.unschedule(database => 'template1');
SELECT job_name, action FROM dbops.unschedule(database => 'template1');

-- bad arguments change nothing
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(purge => 'every 5 minutes')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(reap => '61 * * * *')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(cron_history_keep => '-7 days')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(health_history_keep => NULL)$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(reap => '@hourly', reap_idle_for => '0')$$);
SELECT * FROM pg_temp.err($$SELECT dbops.schedule(database => 'no_such_database')$$);
SELECT jobname, schedule FROM cron.job ORDER BY jobname;

-- a NULL schedule removes that job; unschedule() removes the rest, once
SELECT job_name, action FROM dbops.schedule(health_snapshot => NULL);
SELECT job_name, action FROM dbops.unschedule();
SELECT job_name, action FROM dbops.unschedule();
SELECT count(*) AS jobs, (SELECT count(*) FROM dbops.scheduled_jobs) AS registered FROM cron.job;
ROLLBACK;
\endif

DROP EXTENSION IF EXISTS pg_cron;
-- without pg_cron in this database: a clear error
SELECT * FROM pg_temp.err($$SELECT dbops.schedule()$$);
SELECT * FROM pg_temp.err($$SELECT * FROM dbops.jobs$$);
SELECT status, detail FROM dbops.health() WHERE check_name = 'cron_failures';
