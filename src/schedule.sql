
-- ---------------------------------------------------------------------------
-- scheduling: pg_cron jobs for the recurring pieces and their state (the
-- history the snapshot jobs fill is in the health and bloat fragments)
-- ---------------------------------------------------------------------------
--
-- Nothing here refers to pg_cron's objects at install time: pg_cron may be
-- created after dbops, live in another database, or not be there at all.
-- The job commands call purge, bloat and reap_idle by name, resolved when
-- the job runs.
--
-- pg_cron runs a job in a fresh session of its owner, with the search_path
-- of the job's database and role (which a database owner may set): the
-- commands schedule() writes name every function, operator and type by
-- schema.  Every SQL and PL/pgSQL function here pins search_path =
-- pg_catalog, pg_temp and names everything by schema as well.  Job messages
-- are shown only to the job's owner and to superusers (schedule.c).

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('cron_failures', 1, NULL);

CREATE FUNCTION dbops.cron_next_run(
    schedule text, after timestamptz DEFAULT now(), timezone text DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'dbops_cron_next_run'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION dbops.cron_next_run(text, timestamptz, text) IS
    'First time after "after" that a pg_cron schedule fires (in cron.timezone, or GMT)';

CREATE FUNCTION dbops.cron_prev_run(
    schedule text, before timestamptz DEFAULT now(), timezone text DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'dbops_cron_prev_run'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION dbops.cron_prev_run(text, timestamptz, text) IS
    'Last time at or before "before" that a pg_cron schedule fired (in cron.timezone, or GMT)';

CREATE FUNCTION dbops.cron_status(
    OUT loaded boolean, OUT cron_database text, OUT installed boolean,
    OUT version text, OUT log_run boolean, OUT timezone text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_cron_status'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.cron_status() IS
    'Whether pg_cron is loaded, the database it keeps jobs in, whether it is installed here';

-- For the readers of pg_cron's jobs (dbops._cron_jobs()): the next run after
-- "at" (next) or the last at or before it, in pg_cron's time zone; NULL,
-- never an error, for a schedule dbops does not read (pg_cron accepts a few
-- forms dbops refuses), so that no job breaks dbops.jobs for everyone.
CREATE FUNCTION dbops._cron_run(schedule text, at timestamptz, next boolean)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'dbops_cron_run'
LANGUAGE C STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._cron_run(text, timestamptz, boolean) FROM PUBLIC;

-- Raises the error that says what is missing unless pg_cron is usable from
-- this database; returns its installed version.
CREATE FUNCTION dbops.require_pg_cron()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_st record;
BEGIN
    v_st := dbops.cron_status();
    IF v_st.installed THEN
        IF pg_catalog.string_to_array(pg_catalog.split_part(v_st.version, '-', 1), '.')::pg_catalog.int4[]
           OPERATOR(pg_catalog.<) '{1,3}'::pg_catalog.int4[] THEN
            RAISE EXCEPTION 'pg_cron % is too old for dbops', v_st.version
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Run ALTER EXTENSION pg_cron UPDATE (dbops needs pg_cron 1.4 or later).';
        END IF;
        RETURN v_st.version;
    END IF;
    IF NOT v_st.loaded THEN
        RAISE EXCEPTION 'pg_cron is not available on this server'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron is not loaded: it is not in shared_preload_libraries.',
                  HINT = 'Add pg_cron to shared_preload_libraries, restart the server, and run '
                         'CREATE EXTENSION pg_cron in the database named by cron.database_name.';
    END IF;
    IF v_st.cron_database IS NULL
       OR v_st.cron_database OPERATOR(pg_catalog.<>) pg_catalog.current_database()::pg_catalog.text THEN
        RAISE EXCEPTION 'pg_cron keeps its jobs in database "%", not in "%"',
                v_st.cron_database, pg_catalog.current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron schedules and records jobs only in the database named by cron.database_name.',
                  HINT = pg_catalog.format('Connect to database %I, CREATE EXTENSION dbops there, and use '
                                           'dbops.schedule(database => %L) and dbops.jobs from there.',
                                           v_st.cron_database, pg_catalog.current_database());
    END IF;
    RAISE EXCEPTION 'pg_cron is not installed in this database'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'pg_cron is in shared_preload_libraries and cron.database_name names this database.',
              HINT = 'Run CREATE EXTENSION pg_cron in this database.';
END;
$$;
COMMENT ON FUNCTION dbops.require_pg_cron() IS
    'Error saying what is missing unless pg_cron is usable here; else its version';

-- When each dbops job was last created or changed by dbops.schedule(): runs
-- due before that are not expected (dbops.jobs.missed_run).
CREATE TABLE dbops.scheduled_jobs (
    job_name     text NOT NULL,
    username     text NOT NULL,
    database     text NOT NULL,
    schedule     text NOT NULL,
    command      text NOT NULL,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_name, username)
);
COMMENT ON TABLE dbops.scheduled_jobs IS
    'dbops jobs as dbops.schedule() last set them, and when';
SELECT pg_catalog.pg_extension_config_dump('dbops.scheduled_jobs', '');
GRANT SELECT ON dbops.scheduled_jobs TO pg_monitor;

-- Every pg_cron job with its last run; dbops jobs also with their command and
-- whether a run they were due for did not happen.  SECURITY DEFINER because
-- pg_cron's row-level security shows a role only its own jobs: monitoring
-- needs all of them.  Commands of other jobs are not shown, and a job's
-- message only when viewer may see the job in pg_cron: viewer owns it, or
-- is a superuser (NULL: no message at all).  Called by dbops.cron_jobs()
-- with its caller (schedule.c).
CREATE FUNCTION dbops._cron_jobs(
    viewer oid,
    OUT job_name text, OUT jobid bigint, OUT database text, OUT username text,
    OUT schedule text, OUT active boolean, OUT is_dbops boolean,
    OUT last_start timestamptz, OUT last_duration interval, OUT last_status text,
    OUT last_message text, OUT failures_24h bigint,
    OUT next_run timestamptz, OUT missed_run timestamptz, OUT command text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_log_run boolean;
    v_name  text;
    v_all   boolean;
BEGIN
    PERFORM dbops.require_pg_cron();
    v_log_run := coalesce((dbops.cron_status()).log_run, true);
    SELECT r.rolname::pg_catalog.text, r.rolsuper INTO v_name, v_all
    FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) viewer;
    v_all := coalesce(v_all, false);
    RETURN QUERY
    WITH last AS (
        SELECT DISTINCT ON (d.jobid) d.jobid, d.status, d.return_message,
               d.start_time, d.end_time
        FROM cron.job_run_details d
        ORDER BY d.jobid, d.runid DESC
    ), agg AS (
        SELECT d.jobid, pg_catalog.max(d.start_time) AS latest_start,
               pg_catalog.count(*) FILTER (
                   WHERE d.status OPERATOR(pg_catalog.=) 'failed'
                     AND d.start_time OPERATOR(pg_catalog.>)
                         (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval)) AS failures
        FROM cron.job_run_details d
        GROUP BY d.jobid
    ), jobs AS (
        SELECT j.*, j.jobname::pg_catalog.text AS name,
               j.jobname OPERATOR(pg_catalog.~)
                   '^dbops-(purge|health-snapshot|bloat-snapshot|reap|cron-history)(@.+)?$'::pg_catalog.text
                   AS dbops_job,
               j.schedule OPERATOR(pg_catalog.~*) '^\s*[0-9]+\s*seconds?\s*$'::pg_catalog.text
                   AS every_seconds,
               v_all OR j.username OPERATOR(pg_catalog.=) v_name AS visible
        FROM cron.job j
    )
    SELECT j.name, j.jobid, j.database, j.username, j.schedule, j.active, j.dbops_job,
           l.start_time, l.end_time OPERATOR(pg_catalog.-) l.start_time, l.status,
           CASE WHEN j.visible THEN
               CASE WHEN pg_catalog.btrim(l.return_message, E' \n\r\t') OPERATOR(pg_catalog.<>) ''
                    THEN pg_catalog.btrim(l.return_message, E' \n\r\t') END
           END,
           coalesce(a.failures, 0::pg_catalog.int8),
           CASE WHEN j.active AND NOT j.every_seconds
                THEN dbops._cron_run(j.schedule, pg_catalog.now(), true) END,
           CASE WHEN due.due_at OPERATOR(pg_catalog.>) r.scheduled_at
                 AND (a.latest_start IS NULL OR a.latest_start OPERATOR(pg_catalog.<) due.due_at)
                 AND NOT coalesce(l.status, '') OPERATOR(pg_catalog.=)
                         ANY ('{starting,running,sending,connecting}'::pg_catalog.text[])
                THEN due.due_at END,
           CASE WHEN j.dbops_job THEN j.command END
    FROM jobs j
    LEFT JOIN last l ON l.jobid OPERATOR(pg_catalog.=) j.jobid
    LEFT JOIN agg a ON a.jobid OPERATOR(pg_catalog.=) j.jobid
    LEFT JOIN dbops.scheduled_jobs r
           ON r.job_name OPERATOR(pg_catalog.=) j.name
          AND r.username OPERATOR(pg_catalog.=) j.username
    LEFT JOIN LATERAL (
        SELECT dbops._cron_run(j.schedule,
                   pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::pg_catalog.interval, false) AS due_at
        WHERE j.dbops_job AND j.active AND v_log_run AND NOT j.every_seconds
          AND r.scheduled_at IS NOT NULL
    ) due ON true
    ORDER BY j.name, j.jobid;
END;
$$;
REVOKE ALL ON FUNCTION dbops._cron_jobs(oid) FROM PUBLIC;

-- The caller is known here, in C, not inside the SECURITY DEFINER function.
CREATE FUNCTION dbops.cron_jobs(
    OUT job_name text, OUT jobid bigint, OUT database text, OUT username text,
    OUT schedule text, OUT active boolean, OUT is_dbops boolean,
    OUT last_start timestamptz, OUT last_duration interval, OUT last_status text,
    OUT last_message text, OUT failures_24h bigint,
    OUT next_run timestamptz, OUT missed_run timestamptz, OUT command text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_cron_jobs'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.cron_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.cron_jobs() TO pg_monitor;
COMMENT ON FUNCTION dbops.cron_jobs() IS
    'Every pg_cron job with its last run, next run and (dbops jobs) any missed run';

CREATE VIEW dbops.jobs AS
    SELECT job_name, jobid, database, username, schedule, active,
           last_start, last_duration, last_status, last_message,
           next_run, missed_run, failures_24h, command
    FROM dbops.cron_jobs()
    WHERE is_dbops;
COMMENT ON VIEW dbops.jobs IS
    'The pg_cron jobs dbops.schedule() manages: schedule, last run, next run';
GRANT SELECT ON dbops.jobs TO pg_monitor;

CREATE FUNCTION dbops.schedule(
    purge text DEFAULT '*/15 * * * *',
    health_snapshot text DEFAULT '*/5 * * * *',
    bloat_snapshot text DEFAULT '30 3 * * *',
    reap text DEFAULT NULL,
    cron_history_keep interval DEFAULT '7 days',
    database text DEFAULT NULL,
    health_history_keep interval DEFAULT '14 days',
    bloat_history_keep interval DEFAULT '90 days',
    reap_idle_for interval DEFAULT '1 hour',
    OUT job_name text, OUT action text, OUT jobid bigint, OUT dbname text,
    OUT schedule text, OUT active boolean, OUT command text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET IntervalStyle = 'postgres'
AS $$
#variable_conflict use_variable
DECLARE
    v_target text := coalesce($6, pg_catalog.current_database()::pg_catalog.text);
    -- messages quote at most 64 characters of an argument
    v_shown text := CASE WHEN pg_catalog.length(v_target) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_target, 64) OPERATOR(pg_catalog.||) '...' ELSE v_target END;
    v_suffix text;
    v_crondb text;
    v_text text;
    v_spec record;
    v_cur record;
    v_id bigint;
    v_db record;
    v_me record;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot schedule jobs on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Run dbops.schedule() on the primary: pg_cron runs jobs only there.';
    END IF;
    v_text := dbops.require_pg_cron();
    IF pg_catalog.string_to_array(pg_catalog.split_part(v_text, '-', 1), '.')::pg_catalog.int4[]
       OPERATOR(pg_catalog.<) '{1,4}'::pg_catalog.int4[] THEN
        RAISE EXCEPTION 'dbops.schedule() needs pg_cron 1.4 or later, not %', v_text
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run ALTER EXTENSION pg_cron UPDATE.';
    END IF;
    v_crondb := (dbops.cron_status()).cron_database;
    -- the grants the README lists, checked before anything changes
    IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for schema cron'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.schedule() reads and writes the jobs of pg_cron.',
                  HINT = 'GRANT USAGE ON SCHEMA cron to the scheduling role, with the other grants the README lists.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest('{SELECT,INSERT,UPDATE,DELETE}'::pg_catalog.text[]) AS p
               WHERE NOT pg_catalog.has_table_privilege('dbops.scheduled_jobs', p)) THEN
        RAISE EXCEPTION 'permission denied for table dbops.scheduled_jobs'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.schedule() records when it set each job there.',
                  HINT = 'GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.scheduled_jobs to the scheduling role, with the other grants the README lists.';
    END IF;

    -- pg_cron runs every job in a session of the role that schedules it,
    -- in the job's database: both must let it in
    SELECT d.datname, d.datallowconn INTO v_db
    FROM pg_catalog.pg_database d
    WHERE pg_catalog.octet_length(v_target) OPERATOR(pg_catalog.<=) 63
      AND d.datname OPERATOR(pg_catalog.=) v_target::pg_catalog.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'database "%" does not exist', v_shown
            USING ERRCODE = 'invalid_catalog_name',
                  HINT = 'database names the database the jobs run in; dbops must be installed there.';
    END IF;
    IF NOT v_db.datallowconn THEN
        RAISE EXCEPTION 'database "%" does not allow connections', v_shown
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'pg_cron could never run the jobs there: schedule them for a database that allows connections.';
    END IF;
    SELECT r.rolname, r.rolsuper, r.rolcanlogin INTO v_me
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER;
    IF NOT v_me.rolcanlogin THEN
        RAISE EXCEPTION 'role "%" cannot log in, so pg_cron cannot run its jobs', v_me.rolname
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('pg_cron runs a job as the role that schedules it: ALTER ROLE %I LOGIN, '
                                           'or schedule the jobs as a role that can log in.', v_me.rolname);
    END IF;
    IF NOT pg_catalog.has_database_privilege(v_target, 'CONNECT') THEN
        RAISE EXCEPTION 'role "%" may not connect to database "%"', v_me.rolname, v_shown
            USING ERRCODE = 'insufficient_privilege',
                  HINT = pg_catalog.format('pg_cron runs a job as the role that schedules it: GRANT CONNECT ON DATABASE %I TO %I.',
                                           v_target, v_me.rolname);
    END IF;
    IF v_me.rolsuper
       AND NOT coalesce(pg_catalog.current_setting('cron.enable_superuser_jobs', true), 'on')::pg_catalog.bool THEN
        RAISE EXCEPTION 'pg_cron does not run jobs of superusers here'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'cron.enable_superuser_jobs is off.',
                  HINT = 'Schedule the jobs as a role that is not a superuser, with the grants the README lists.';
    END IF;
    v_suffix := CASE WHEN v_target OPERATOR(pg_catalog.=) pg_catalog.current_database()::pg_catalog.text
                   THEN '' ELSE '@' OPERATOR(pg_catalog.||) v_target END;
    IF pg_catalog.octet_length('dbops-health-snapshot' OPERATOR(pg_catalog.||) v_suffix)
       OPERATOR(pg_catalog.>) 63 THEN
        RAISE EXCEPTION 'database name "%" is too long for a pg_cron job name', v_shown
            USING ERRCODE = 'name_too_long',
                  HINT = 'Job names are "dbops-<job>@<database>" and pg_cron keeps 63 bytes of them.';
    END IF;

    -- check every argument before changing anything
    FOR v_spec IN
        SELECT * FROM (VALUES ('purge', purge), ('health_snapshot', health_snapshot),
                              ('bloat_snapshot', bloat_snapshot), ('reap', reap)) AS a(arg, sched)
        WHERE a.sched IS NOT NULL
    LOOP
        -- as the pg_cron loaded here reads it
        BEGIN
            PERFORM dbops.cron_next_run(v_spec.sched, pg_catalog.now(), 'GMT');
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS v_text = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION 'invalid schedule for %: "%"', v_spec.arg, CASE WHEN pg_catalog.length(v_spec.sched) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_spec.sched, 64) OPERATOR(pg_catalog.||) '...' ELSE v_spec.sched END
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = v_text,
                      HINT = 'Write five fields "minute hour day-of-month month day-of-week" '
                             '(for example ''30 3 * * *''), or @hourly, @daily, ...; NULL removes the job.';
        END;
    END LOOP;
    FOR v_spec IN
        SELECT * FROM (VALUES ('cron_history_keep', cron_history_keep, true),
                              ('health_history_keep', health_history_keep, health_snapshot IS NOT NULL),
                              ('bloat_history_keep', bloat_history_keep, bloat_snapshot IS NOT NULL),
                              ('reap_idle_for', reap_idle_for, reap IS NOT NULL)) AS a(arg, val, used)
        WHERE a.used
    LOOP
        -- the jobs subtract these from now(): positive, no part negative
        -- (''1 month -29 days'' would reach past now() in February), and at
        -- most 1000 years
        IF v_spec.val IS NULL THEN
            RAISE EXCEPTION '% must not be NULL', v_spec.arg
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = CASE v_spec.arg
                                 WHEN 'cron_history_keep' THEN
                                     'Pass how long cron.job_run_details keeps runs, e.g. ''7 days''; '
                                     'dbops.unschedule() removes the jobs, dbops-cron-history included.'
                                 WHEN 'reap_idle_for' THEN 'Pass how long a session may stay idle, e.g. ''1 hour''.'
                                 ELSE 'Pass how long the history is kept, e.g. ''14 days''; a NULL schedule removes the job.'
                             END;
        END IF;
        IF v_spec.val OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval
           OR EXISTS (SELECT 1 FROM pg_catalog.unnest('{year,month,day,hour,minute,second}'::pg_catalog.text[]) AS f
                      WHERE pg_catalog.date_part(f, v_spec.val) OPERATOR(pg_catalog.<) 0::pg_catalog.float8) THEN
            RAISE EXCEPTION '% must be a positive interval, not %', v_spec.arg, v_spec.val
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'For example ''7 days''; every part of it must be zero or more (not ''1 month -29 days'').';
        END IF;
        IF v_spec.val OPERATOR(pg_catalog.>) '1000 years'::pg_catalog.interval THEN
            RAISE EXCEPTION '% must be at most 1000 years, not %', v_spec.arg, v_spec.val
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'The job subtracts it from the current time; keep it within 1000 years.';
        END IF;
    END LOOP;

    -- The commands run in a session of their own, with the search_path of
    -- the database and of the role: they name everything by schema.
    FOR v_spec IN
        SELECT * FROM (VALUES
            (1, 'dbops-purge' OPERATOR(pg_catalog.||) v_suffix, purge, 'CALL dbops.purge()', v_target),
            (2, 'dbops-health-snapshot' OPERATOR(pg_catalog.||) v_suffix, health_snapshot,
                pg_catalog.format('SELECT * FROM dbops.health_snapshot(keep => %L::pg_catalog.interval)',
                                  health_history_keep), v_target),
            (3, 'dbops-bloat-snapshot' OPERATOR(pg_catalog.||) v_suffix, bloat_snapshot,
                pg_catalog.format('SELECT * FROM dbops.bloat_snapshot(keep => %L::pg_catalog.interval)',
                                  bloat_history_keep), v_target),
            (4, 'dbops-reap' OPERATOR(pg_catalog.||) v_suffix, reap,
                pg_catalog.format('SELECT pg_catalog.count(*) FROM dbops.reap_idle('
                                  'idle_for => %L::pg_catalog.interval, dry_run => false)',
                                  reap_idle_for), v_target),
            (5, 'dbops-cron-history',
                CASE WHEN cron_history_keep IS NOT NULL THEN '7 * * * *' END,
                pg_catalog.format('DELETE FROM cron.job_run_details WHERE end_time '
                                  'OPERATOR(pg_catalog.<) (pg_catalog.now() '
                                  'OPERATOR(pg_catalog.-) %L::pg_catalog.interval)',
                                  cron_history_keep),
                pg_catalog.current_database()::pg_catalog.text)
        ) AS s(ord, name, sched, cmd, db)
        ORDER BY s.ord
    LOOP
        SELECT j.jobid, j.schedule, j.command, j.database, j.active INTO v_cur
        FROM cron.job j
        WHERE j.jobname OPERATOR(pg_catalog.=) v_spec.name
          AND j.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text;

        IF v_spec.sched IS NULL THEN
            IF v_cur.jobid IS NULL THEN
                CONTINUE;
            END IF;
            PERFORM cron.unschedule(v_spec.name);
            DELETE FROM dbops.scheduled_jobs r
            WHERE r.job_name OPERATOR(pg_catalog.=) v_spec.name
              AND r.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text;
            job_name := v_spec.name; action := 'removed'; jobid := v_cur.jobid;
            dbname := v_cur.database; schedule := v_cur.schedule; active := v_cur.active;
            command := v_cur.command;
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF v_cur.jobid IS NOT NULL AND v_cur.schedule OPERATOR(pg_catalog.=) v_spec.sched
           AND v_cur.command OPERATOR(pg_catalog.=) v_spec.cmd
           AND v_cur.database OPERATOR(pg_catalog.=) v_spec.db THEN
            action := 'unchanged';
            v_id := v_cur.jobid;
            INSERT INTO dbops.scheduled_jobs AS r (job_name, username, database, schedule, command)
            VALUES (v_spec.name, CURRENT_USER, v_spec.db, v_spec.sched, v_spec.cmd)
            ON CONFLICT ON CONSTRAINT scheduled_jobs_pkey DO NOTHING;
        ELSE
            IF v_cur.jobid IS NOT NULL AND v_cur.database OPERATOR(pg_catalog.<>) v_spec.db THEN
                -- pg_cron 1.4 keeps the database of an existing job: start over
                PERFORM cron.unschedule(v_spec.name);
            END IF;
            BEGIN
                IF v_spec.db OPERATOR(pg_catalog.=) v_crondb THEN
                    v_id := cron.schedule(v_spec.name, v_spec.sched, v_spec.cmd);
                ELSE
                    v_id := cron.schedule_in_database(v_spec.name, v_spec.sched, v_spec.cmd, v_spec.db);
                END IF;
            EXCEPTION WHEN insufficient_privilege OR invalid_parameter_value THEN
                GET STACKED DIAGNOSTICS v_text = MESSAGE_TEXT;
                RAISE EXCEPTION 'pg_cron refused job %: %', v_spec.name, CASE WHEN pg_catalog.length(v_text) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_text, 64) OPERATOR(pg_catalog.||) '...' ELSE v_text END
                    USING ERRCODE = SQLSTATE,
                          HINT = CASE WHEN v_spec.db OPERATOR(pg_catalog.=) v_crondb
                                      THEN 'See the README''s Scheduling section for what pg_cron needs.'
                                      ELSE 'Jobs in another database are created with cron.schedule_in_database(), '
                                           'which needs a superuser or EXECUTE on it.' END;
            END;
            action := CASE WHEN v_cur.jobid IS NULL THEN 'created' ELSE 'updated' END;
            INSERT INTO dbops.scheduled_jobs AS r (job_name, username, database, schedule, command)
            VALUES (v_spec.name, CURRENT_USER, v_spec.db, v_spec.sched, v_spec.cmd)
            ON CONFLICT ON CONSTRAINT scheduled_jobs_pkey DO UPDATE
                SET database = excluded.database, schedule = excluded.schedule,
                    command = excluded.command, scheduled_at = excluded.scheduled_at;
        END IF;

        SELECT j.jobid, j.database, j.schedule, j.active, j.command
        INTO jobid, dbname, schedule, active, command
        FROM cron.job j WHERE j.jobid OPERATOR(pg_catalog.=) v_id;
        job_name := v_spec.name;
        RETURN NEXT;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION dbops.schedule(text, text, text, text, interval, text, interval, interval, interval)
    FROM PUBLIC;
COMMENT ON FUNCTION dbops.schedule(text, text, text, text, interval, text, interval, interval, interval) IS
    'Create, update or (NULL schedule) remove the dbops pg_cron jobs; idempotent';

CREATE FUNCTION dbops.unschedule(
    database text DEFAULT NULL,
    OUT job_name text, OUT action text, OUT jobid bigint, OUT dbname text,
    OUT schedule text, OUT active boolean, OUT command text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    v_names text[];
    v_job record;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot unschedule jobs on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Run dbops.unschedule() on the primary.';
    END IF;
    PERFORM dbops.require_pg_cron();
    IF NOT pg_catalog.has_schema_privilege('cron', 'USAGE')
       OR NOT pg_catalog.has_table_privilege('dbops.scheduled_jobs', 'DELETE') THEN
        RAISE EXCEPTION 'permission denied for the dbops jobs'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.unschedule() needs USAGE on schema cron and DELETE on dbops.scheduled_jobs.',
                  HINT = 'Grant the scheduling role what the README lists for dbops.schedule().';
    END IF;
    IF unschedule.database OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'database must not be empty'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the database whose dbops jobs to remove, or pass NULL to remove all of this role''s dbops jobs.';
    END IF;
    IF unschedule.database IS NOT NULL THEN
        v_names := ARRAY(SELECT 'dbops-' OPERATOR(pg_catalog.||) n OPERATOR(pg_catalog.||)
                              CASE WHEN unschedule.database OPERATOR(pg_catalog.=)
                                        pg_catalog.current_database()::pg_catalog.text
                                   THEN '' ELSE '@' OPERATOR(pg_catalog.||) unschedule.database END
                       FROM pg_catalog.unnest('{purge,health-snapshot,bloat-snapshot,reap}'::pg_catalog.text[]) AS n);
    END IF;
    FOR v_job IN
        SELECT c.jobid, c.jobname::pg_catalog.text AS name, c.database, c.schedule, c.active, c.command
        FROM cron.job c
        WHERE c.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text
          AND CASE WHEN v_names IS NULL
                   THEN c.jobname OPERATOR(pg_catalog.~)
                        '^dbops-(purge|health-snapshot|bloat-snapshot|reap|cron-history)(@.+)?$'::pg_catalog.text
                   ELSE c.jobname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (v_names) END
        ORDER BY c.jobid
    LOOP
        PERFORM cron.unschedule(v_job.name);
        DELETE FROM dbops.scheduled_jobs r
        WHERE r.job_name OPERATOR(pg_catalog.=) v_job.name
          AND r.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text;
        job_name := v_job.name; action := 'removed'; jobid := v_job.jobid; dbname := v_job.database;
        schedule := v_job.schedule; active := v_job.active; command := v_job.command;
        RETURN NEXT;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION dbops.unschedule(text) FROM PUBLIC;
COMMENT ON FUNCTION dbops.unschedule(text) IS
    'Remove the dbops pg_cron jobs of this role (all of them, or those running in one database)';
