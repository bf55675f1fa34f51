-- dbops 1.0 -> 1.1 upgrade script
--
-- Written by hand, one section per capability in the order of the install
-- script's fragments.  test/t/080_upgrade.pl checks that a 1.0 install
-- updated with this script and a fresh 1.1 install have the same objects,
-- definitions, privileges and settings.

\echo Use "ALTER EXTENSION dbops UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------- dbops.sql

-- Pinned search_path; internal: revoked from PUBLIC (only the SECURITY
-- DEFINER snapshot functions reach it, through _require_history_keep()).
ALTER FUNCTION dbops._require_positive_interval(text, interval, text)
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._require_positive_interval(text, interval, text) FROM PUBLIC;

-- Every error it raises has a hint (a general one when the caller gives none).
CREATE OR REPLACE FUNCTION dbops._require_positive_interval(arg text, val interval, hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF val IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', arg
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = coalesce(hint, 'Give a positive interval, e.g. interval ''1 day''.');
    END IF;
    IF val <= interval '0' THEN
        RAISE EXCEPTION '% must be a positive interval, not %', arg, val
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = coalesce(hint, 'Give a positive interval, e.g. interval ''1 day''.');
    END IF;
END;
$$;

-- The keep of a history snapshot (health_snapshot(), bloat_snapshot()): a
-- positive interval of at most 1000 years, no part of it negative, as it
-- is subtracted from now().  example is the keep the hints suggest.
CREATE FUNCTION dbops._require_history_keep(keep interval, example text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_positive_interval('keep', keep,
                format('History older than keep is deleted, e.g. keep => %L.', example));
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest('{year,month,day,hour,minute,second}'::pg_catalog.text[]) AS f
               WHERE pg_catalog.date_part(f, keep) OPERATOR(pg_catalog.<) 0::pg_catalog.float8)
       OR keep OPERATOR(pg_catalog.>) '1000 years'::pg_catalog.interval THEN
        RAISE EXCEPTION 'keep must be a positive interval of at most 1000 years, not %', keep
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('History older than keep is deleted, e.g. keep => %L; every part of it must be zero or more.', example);
    END IF;
END;
$$;
-- Used by the SECURITY DEFINER snapshot functions, which run as its owner.
REVOKE ALL ON FUNCTION dbops._require_history_keep(interval, text) FROM PUBLIC;

-- --------------------------------------------------------------- health.sql

-- Every function pins search_path (the C ones run queries); the trigger
-- function is internal, and named so (the trigger follows the rename).
ALTER FUNCTION dbops.health_checks() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health_status() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health_json() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health_thresholds_validate() RENAME TO _health_thresholds_validate;
REVOKE ALL ON FUNCTION dbops._health_thresholds_validate() FROM PUBLIC;

-- Thresholds must be finite and within what dbops.health() grades with
-- (double precision); the messages quote at most 64 characters of the row.
-- Rows already stored are kept as they are.
CREATE OR REPLACE FUNCTION dbops._health_thresholds_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dir text;
    -- what the messages quote of the row: at most 64 characters of each
    v_name_q text := CASE WHEN length(NEW.check_name) > 64
                          THEN left(NEW.check_name, 64) || '...' ELSE NEW.check_name END;
    v_warning_q text := CASE WHEN length(NEW.warning::text) > 64
                             THEN left(NEW.warning::text, 64) || '...' ELSE NEW.warning::text END;
    v_critical_q text := CASE WHEN length(NEW.critical::text) > 64
                              THEN left(NEW.critical::text, 64) || '...' ELSE NEW.critical::text END;
BEGIN
    IF NEW.check_name IS NULL THEN
        RAISE EXCEPTION 'check_name of a health threshold must not be NULL'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Name one of the checks listed by dbops.health_checks().';
    END IF;
    SELECT c.direction INTO v_dir FROM dbops.health_checks() c
     WHERE c.check_name = NEW.check_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown health check "%"', v_name_q
            USING ERRCODE = 'undefined_object',
                  HINT = 'Known checks: ' ||
                         (SELECT string_agg(c.check_name, ', ' ORDER BY c.check_name)
                            FROM dbops.health_checks() c) || '.';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.check_name <> OLD.check_name
       AND EXISTS (SELECT FROM dbops.health_thresholds t WHERE t.check_name = NEW.check_name) THEN
        RAISE EXCEPTION 'health check "%" already has a thresholds row', v_name_q
            USING ERRCODE = 'unique_violation',
                  HINT = 'Update that row instead of renaming this one.';
    END IF;
    IF NEW.enabled IS NULL THEN
        RAISE EXCEPTION 'enabled of health check "%" must not be NULL', v_name_q
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Set enabled to true or false.';
    END IF;
    IF NEW.warning = 'NaN' OR NEW.critical = 'NaN' THEN
        RAISE EXCEPTION 'thresholds of health check "%" must be numbers, not NaN', v_name_q
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL for "no threshold".';
    END IF;
    IF NEW.warning IN ('Infinity', '-Infinity') OR NEW.critical IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'thresholds of health check "%" must be finite, not %', v_name_q,
                        CASE WHEN NEW.warning IN ('Infinity', '-Infinity')
                             THEN NEW.warning ELSE NEW.critical END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL for "no threshold" at that level.';
    END IF;
    -- dbops.health() grades in double precision: a threshold it cannot
    -- convert would make every report fail
    IF (NEW.warning <> 0 AND (abs(NEW.warning) > 1e300 OR abs(NEW.warning) < 1e-300))
       OR (NEW.critical <> 0 AND (abs(NEW.critical) > 1e300 OR abs(NEW.critical) < 1e-300)) THEN
        RAISE EXCEPTION 'threshold % of health check "%" is out of range',
                        CASE WHEN NEW.warning <> 0 AND (abs(NEW.warning) > 1e300 OR abs(NEW.warning) < 1e-300)
                             THEN v_warning_q ELSE v_critical_q END, v_name_q
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'Give a threshold of magnitude between 1e-300 and 1e300, or 0; NULL for "no threshold".';
    END IF;
    IF v_dir = 'higher_is_worse' AND NEW.warning > NEW.critical THEN
        RAISE EXCEPTION 'warning threshold % of health check "%" is above its critical threshold %',
                        v_warning_q, v_name_q, v_critical_q
            USING ERRCODE = 'check_violation',
                  DETAIL = 'Higher values are worse for this check, so warning must be at most critical.',
                  HINT = 'Lower the warning threshold or raise the critical one; NULL disables a level.';
    END IF;
    IF v_dir = 'lower_is_worse' AND NEW.warning < NEW.critical THEN
        RAISE EXCEPTION 'warning threshold % of health check "%" is below its critical threshold %',
                        v_warning_q, v_name_q, v_critical_q
            USING ERRCODE = 'check_violation',
                  DETAIL = 'Lower values are worse for this check, so warning must be at least critical.',
                  HINT = 'Raise the warning threshold or lower the critical one; NULL disables a level.';
    END IF;
    IF TG_OP = 'INSERT' AND EXISTS (SELECT FROM dbops.health_thresholds t
                                     WHERE t.check_name = NEW.check_name) THEN
        UPDATE dbops.health_thresholds t
           SET warning = NEW.warning, critical = NEW.critical, enabled = NEW.enabled
         WHERE t.check_name = NEW.check_name;
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

-- health_overall() refuses what is not a status (it read every unknown word
-- as ok) and counts a NULL element as unknown.
CREATE OR REPLACE FUNCTION dbops.health_overall(statuses text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bad text;
BEGIN
    SELECT s INTO v_bad FROM unnest(statuses) AS u(s)
     WHERE s IS NOT NULL AND s NOT IN ('ok', 'skipped', 'unknown', 'warning', 'critical')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown health status "%"',
                        CASE WHEN length(v_bad) > 64 THEN left(v_bad, 64) || '...' ELSE v_bad END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Statuses are ok, skipped, unknown, warning and critical (lower case), as dbops.health() reports them; NULL counts as unknown.';
    END IF;
    RETURN CASE
        WHEN 'critical' = ANY (statuses) THEN 'critical'
        WHEN 'warning' = ANY (statuses) THEN 'warning'
        WHEN 'unknown' = ANY (statuses) OR 'skipped' = ANY (statuses)
             OR array_position(statuses, NULL) IS NOT NULL THEN 'unknown'
        ELSE 'ok'
    END;
END
$$;

-- The history: health_snapshot() keeps no pg_cron job message;
-- health_metrics() is for pg_monitor, not PUBLIC.

CREATE FUNCTION dbops._health_snapshot_rows(
    OUT check_name text, OUT status text, OUT value numeric, OUT unit text,
    OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health_snapshot_rows'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._health_snapshot_rows() FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.health_snapshot(
    keep interval DEFAULT '14 days',
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_history_keep(keep, '14 days');
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot take a health snapshot on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Schedule dbops.health_snapshot() on the primary.';
    END IF;
    INSERT INTO dbops.health_history AS h (taken_at, check_name, status, value, unit, detail)
    SELECT pg_catalog.now(), r.check_name, r.status, r.value, r.unit, r.detail
    FROM dbops._health_snapshot_rows() r
    ON CONFLICT (check_name, taken_at) DO UPDATE
        SET status = excluded.status, value = excluded.value,
            unit = excluded.unit, detail = excluded.detail;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    DELETE FROM dbops.health_history h
    WHERE h.taken_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep);
    GET DIAGNOSTICS deleted = ROW_COUNT;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.health_trend(
    check_name text, since interval DEFAULT '1 day')
RETURNS TABLE (taken_at timestamptz, status text, value numeric, change numeric,
               unit text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF health_trend.check_name IS NULL THEN
        RAISE EXCEPTION 'check_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name a check of dbops.health(), e.g. ''connections''.';
    END IF;
    IF since IS NULL THEN
        RAISE EXCEPTION 'since must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example since => ''1 day''.';
    END IF;
    IF since OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION 'since must be a positive interval, not %', since
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example since => ''1 day''.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dbops.health_thresholds t
                   WHERE t.check_name OPERATOR(pg_catalog.=) health_trend.check_name)
       AND NOT EXISTS (SELECT 1 FROM dbops.health_history h
                       WHERE h.check_name OPERATOR(pg_catalog.=) health_trend.check_name) THEN
        RAISE EXCEPTION 'unknown health check "%"',
                        CASE WHEN pg_catalog.length(health_trend.check_name) OPERATOR(pg_catalog.>) 64
                             THEN pg_catalog."left"(health_trend.check_name, 64) OPERATOR(pg_catalog.||) '...'
                             ELSE health_trend.check_name END
            USING ERRCODE = 'undefined_object',
                  HINT = 'The checks are listed in dbops.health_thresholds.';
    END IF;
    -- more than 1000 years back is all of the history (now() - since could
    -- leave the range of timestamps)
    IF since OPERATOR(pg_catalog.>) '1000 years'::pg_catalog.interval THEN
        since := '1000 years';
    END IF;
    RETURN QUERY
        SELECT h.taken_at, h.status, h.value,
               h.value OPERATOR(pg_catalog.-) pg_catalog.lag(h.value) OVER (ORDER BY h.taken_at),
               h.unit, h.detail
        FROM dbops.health_history h
        WHERE h.check_name OPERATOR(pg_catalog.=) health_trend.check_name
          AND h.taken_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) since)
        ORDER BY h.taken_at;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.health_metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_health_metrics'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.health_metrics() FROM PUBLIC;

-- ------------------------------------------------------------- locktree.sql

ALTER FUNCTION dbops.lock_tree() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.cancel_blockers(interval, boolean, boolean) SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------- bloat.sql

-- Pinned search_path; a function with a SET clause loads the module only
-- when it is first called, after its defaults are evaluated: max_pages falls
-- back to the GUC's default when dbops.bloat_max_pages is not defined yet.
CREATE OR REPLACE FUNCTION dbops.bloat(
    relation regclass DEFAULT NULL,
    method text DEFAULT 'auto',
    max_pages bigint DEFAULT coalesce(current_setting('dbops.bloat_max_pages', true), '20000')::bigint,
    ci_width float8 DEFAULT 2,
    seed integer DEFAULT NULL,
    OUT relation regclass, OUT kind text, OUT method text,
    OUT size_bytes bigint, OUT bloat_bytes bigint, OUT bloat_pct numeric,
    OUT ci_low_pct numeric, OUT ci_high_pct numeric,
    OUT live_bytes bigint, OUT dead_bytes bigint, OUT free_bytes bigint,
    OUT pages_read bigint, OUT note text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_bloat'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._bloat_stats(oid[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.bloat_snapshot(
    keep interval DEFAULT '90 days',
    method text DEFAULT 'auto',
    min_size bigint DEFAULT 1048576,
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_history_keep(keep, '90 days');
    IF method IS NULL THEN
        RAISE EXCEPTION 'method must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use one of the methods of dbops.bloat(), e.g. ''auto''.';
    END IF;
    IF min_size IS NULL OR min_size OPERATOR(pg_catalog.<) 0::pg_catalog.int8 THEN
        RAISE EXCEPTION 'min_size must be zero or more bytes, not %', coalesce(min_size::pg_catalog.text, 'NULL')
            USING ERRCODE = CASE WHEN min_size IS NULL THEN 'null_value_not_allowed' ELSE 'invalid_parameter_value' END,
                  HINT = 'Relations smaller than min_size bytes are left out, e.g. min_size => 1048576 (the default); 0 keeps every relation.';
    END IF;
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot take a bloat snapshot on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Schedule dbops.bloat_snapshot() on the primary.';
    END IF;
    INSERT INTO dbops.bloat_history AS h
        (taken_at, relid, relation, kind, method, size_bytes, bloat_bytes, bloat_pct)
    SELECT pg_catalog.now(), b.relation::pg_catalog.oid, b.relation::pg_catalog.text, b.kind, b.method,
           b.size_bytes, b.bloat_bytes, b.bloat_pct
    FROM dbops.bloat(NULL::pg_catalog.regclass, bloat_snapshot.method) b
    WHERE b.size_bytes OPERATOR(pg_catalog.>=) min_size
    ON CONFLICT (relid, kind, taken_at) DO UPDATE
        SET relation = excluded.relation, method = excluded.method,
            size_bytes = excluded.size_bytes, bloat_bytes = excluded.bloat_bytes,
            bloat_pct = excluded.bloat_pct;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    DELETE FROM dbops.bloat_history h
    WHERE h.taken_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep);
    GET DIAGNOSTICS deleted = ROW_COUNT;
END;
$$;

-- --------------------------------------------------------------- reaper.sql

ALTER FUNCTION dbops.reap_idle(interval, text[], boolean, text) SET search_path = pg_catalog, pg_temp;

-- Runaway sessions: policies also end statements that run too long
-- (query_timeout) and transactions open too long (transaction_timeout),
-- optionally only those whose query text matches query_pattern; a policy
-- has exactly one timeout, and state takes the states of running sessions.
ALTER TABLE dbops.reaper_policies
    DROP CONSTRAINT reaper_policies_state_check,
    DROP CONSTRAINT reaper_policies_timeout_check,
    ADD COLUMN query_timeout interval CHECK (query_timeout > interval '0'),
    ADD COLUMN transaction_timeout interval CHECK (transaction_timeout > interval '0'),
    ADD COLUMN query_pattern text,
    ADD CONSTRAINT reaper_policies_state_check
        CHECK (state IN ('idle', 'idle in transaction', 'idle in transaction (aborted)',
                         'active', 'fastpath function call')),
    ADD CONSTRAINT reaper_policies_timeout_check
        CHECK ((action = 'exempt') =
               (num_nonnulls(idle_timeout, query_timeout, transaction_timeout) = 0)),
    ADD CONSTRAINT reaper_policies_one_timeout_check
        CHECK (num_nonnulls(idle_timeout, query_timeout, transaction_timeout) <= 1);
COMMENT ON COLUMN dbops.reaper_policies.keep_min IS
    'Leave at least this many sessions matched by this policy (the oldest are reaped first)';
COMMENT ON COLUMN dbops.reaper_policies.idle_timeout IS
    'Idle policy: how long a session may stay in an idle state';
COMMENT ON COLUMN dbops.reaper_policies.query_timeout IS
    'Query policy: how long a statement may run';
COMMENT ON COLUMN dbops.reaper_policies.transaction_timeout IS
    'Transaction policy: how long a transaction may stay open, whatever the session''s state';
COMMENT ON COLUMN dbops.reaper_policies.query_pattern IS
    'Regular expression (as for ~) the session''s query text must match';

-- Events say what kind of session they were about, how long its statement
-- or transaction had run, and its query; events logged under 1.0 were all
-- about idle sessions.
ALTER TABLE dbops.reaper_log
    ADD COLUMN kind text NOT NULL DEFAULT 'idle',
    ADD COLUMN running_for interval,
    ADD COLUMN query text;

-- reaper_status() and reaper_events() gain the new kinds' columns.
DROP FUNCTION dbops.reaper_status();
DROP FUNCTION dbops.reaper_events();

CREATE FUNCTION dbops.reap_runaway(
    query_for interval DEFAULT NULL,
    transaction_for interval DEFAULT NULL,
    dry_run boolean DEFAULT true,
    action text DEFAULT 'cancel',
    query_pattern text DEFAULT NULL,
    OUT pid integer, OUT usename name, OUT datname name,
    OUT application_name text, OUT client_addr inet, OUT state text,
    OUT kind text, OUT running_for interval, OUT query text, OUT action text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_reap_runaway'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.reap_runaway(interval, interval, boolean, text, text) IS
    'Cancel (or terminate) statements running longer than query_for and transactions open longer than transaction_for; a dry run by default';
REVOKE ALL ON FUNCTION dbops.reap_runaway(interval, interval, boolean, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.reap_runaway(interval, interval, boolean, text, text) TO pg_signal_backend;

CREATE FUNCTION dbops.reaper_status(
    OUT worker_pid integer, OUT worker_started timestamptz,
    OUT last_sweep timestamptz, OUT sweeps bigint,
    OUT sessions_seen integer, OUT sessions_idle integer,
    OUT sessions_exempt integer, OUT reaped bigint, OUT spared bigint,
    OUT dry_run_matches bigint, OUT last_sweep_cpu_ms float8,
    OUT avg_sweep_cpu_ms float8, OUT extension_installed boolean,
    OUT sessions_active integer, OUT sessions_in_transaction integer,
    OUT reaped_queries bigint, OUT reaped_transactions bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_reaper_status_1_1'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.reaper_status() IS
    'The reaper worker: pid, last sweep, sessions seen, reaped and spared';
REVOKE ALL ON FUNCTION dbops.reaper_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.reaper_status() TO pg_monitor;

CREATE FUNCTION dbops.reaper_events(
    OUT seq bigint, OUT event_time timestamptz, OUT source text,
    OUT pid integer, OUT usename text, OUT datname text,
    OUT application_name text, OUT client_addr inet, OUT state text,
    OUT idle_for interval, OUT policy_id integer, OUT action text,
    OUT outcome text, OUT kind text, OUT running_for interval,
    OUT query text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_reaper_events_1_1'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.reaper_events() IS
    'Reaper events kept in shared memory (the last 1024), oldest first';
REVOKE ALL ON FUNCTION dbops.reaper_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.reaper_events() TO pg_monitor;


-- Validates a policy when it is written, with an error that says what to
-- fix (the CHECK constraints above stay as the last line): a policy the
-- reaper could not apply (a timeout too long to count, a pattern that LIKE
-- or the regular expression engine refuses, a state its kind never has) is
-- refused here rather than failing every sweep or matching nothing.
CREATE FUNCTION dbops._reaper_policies_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- what the messages quote of the row: at most 64 characters of each
    v_state_q text := CASE WHEN length(NEW.state) > 64
                           THEN left(NEW.state, 64) || '...' ELSE NEW.state END;
    v_action_q text := CASE WHEN length(NEW.action) > 64
                            THEN left(NEW.action, 64) || '...' ELSE NEW.action END;
    v_app_q text := CASE WHEN length(NEW.application_name) > 64
                         THEN left(NEW.application_name, 64) || '...' ELSE NEW.application_name END;
    v_pattern_q text := CASE WHEN length(NEW.query_pattern) > 64
                             THEN left(NEW.query_pattern, 64) || '...' ELSE NEW.query_pattern END;
    v_timeouts integer := num_nonnulls(NEW.idle_timeout, NEW.query_timeout, NEW.transaction_timeout);
    v_column text;
    v_timeout interval;
    v_message text;
BEGIN
    IF NEW.id IS NULL THEN
        RAISE EXCEPTION 'id of a reaper policy must not be NULL'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Leave id out: it is assigned.';
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.id <> OLD.id)
       AND EXISTS (SELECT FROM dbops.reaper_policies p WHERE p.id = NEW.id) THEN
        RAISE EXCEPTION 'a reaper policy with id % already exists', NEW.id
            USING ERRCODE = 'unique_violation',
                  HINT = 'Leave id out (it is assigned), or update that policy.';
    END IF;
    IF NEW.action IS NULL THEN
        RAISE EXCEPTION 'action of a reaper policy must not be NULL'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Use terminate, cancel or exempt.';
    END IF;
    IF NEW.action NOT IN ('terminate', 'cancel', 'exempt') THEN
        RAISE EXCEPTION 'unknown reaper policy action "%"', v_action_q
            USING ERRCODE = 'check_violation',
                  HINT = 'Use terminate, cancel or exempt.';
    END IF;
    IF NEW.state IS NOT NULL
       AND NEW.state NOT IN ('idle', 'idle in transaction', 'idle in transaction (aborted)',
                             'active', 'fastpath function call') THEN
        RAISE EXCEPTION 'unknown session state "%" in a reaper policy', v_state_q
            USING ERRCODE = 'check_violation',
                  HINT = 'Use idle, idle in transaction, idle in transaction (aborted), active or fastpath function call, as pg_stat_activity.state shows them; NULL matches every state.';
    END IF;
    IF v_timeouts > 1 THEN
        RAISE EXCEPTION 'a reaper policy has one timeout, not %', v_timeouts
            USING ERRCODE = 'check_violation',
                  HINT = 'Set one of idle_timeout (idle sessions), query_timeout (running statements) and transaction_timeout (open transactions); write one policy per timeout.';
    END IF;
    IF NEW.action = 'exempt' AND v_timeouts > 0 THEN
        RAISE EXCEPTION 'an exempt reaper policy has no timeout'
            USING ERRCODE = 'check_violation',
                  HINT = 'Set idle_timeout, query_timeout and transaction_timeout to NULL for an exempt policy, or use action terminate or cancel.';
    END IF;
    IF NEW.action <> 'exempt' AND v_timeouts = 0 THEN
        RAISE EXCEPTION 'a reaper policy that acts needs a timeout'
            USING ERRCODE = 'check_violation',
                  HINT = 'Give idle_timeout (how long a session may stay idle), query_timeout (how long a statement may run) or transaction_timeout (how long a transaction may stay open), e.g. interval ''10 minutes'', or use action exempt.';
    END IF;
    FOR v_column, v_timeout IN
        VALUES ('idle_timeout', NEW.idle_timeout), ('query_timeout', NEW.query_timeout),
               ('transaction_timeout', NEW.transaction_timeout)
    LOOP
        IF v_timeout <= interval '0' THEN
            RAISE EXCEPTION '% of a reaper policy must be positive, not %', v_column, v_timeout
                USING ERRCODE = 'check_violation',
                      HINT = 'Give a positive interval, e.g. interval ''10 minutes''.';
        END IF;
        IF v_timeout >= interval '290000 years' THEN
            RAISE EXCEPTION '% of a reaper policy is out of range', v_column
                USING ERRCODE = 'datetime_field_overflow',
                      HINT = 'Give an interval of less than 290000 years; to never reap these sessions, use action exempt.';
        END IF;
    END LOOP;
    IF NEW.idle_timeout IS NOT NULL AND NEW.state IN ('active', 'fastpath function call') THEN
        RAISE EXCEPTION 'an idle_timeout policy cannot match state "%"', NEW.state
            USING ERRCODE = 'check_violation',
                  HINT = 'idle_timeout applies to idle, idle in transaction and idle in transaction (aborted); use query_timeout for running statements.';
    END IF;
    IF NEW.query_timeout IS NOT NULL AND NEW.state NOT IN ('active', 'fastpath function call') THEN
        RAISE EXCEPTION 'a query_timeout policy cannot match state "%"', NEW.state
            USING ERRCODE = 'check_violation',
                  HINT = 'query_timeout applies to running statements (active, fastpath function call); use idle_timeout for idle sessions.';
    END IF;
    IF NEW.transaction_timeout IS NOT NULL AND NEW.state = 'idle' THEN
        RAISE EXCEPTION 'a transaction_timeout policy cannot match state "idle"'
            USING ERRCODE = 'check_violation',
                  HINT = 'A session in state idle has no open transaction; use idle_timeout for idle sessions.';
    END IF;
    IF NEW.keep_min IS NULL THEN
        RAISE EXCEPTION 'keep_min of a reaper policy must not be NULL'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Use 0 to reap every matching session.';
    END IF;
    IF NEW.keep_min < 0 THEN
        RAISE EXCEPTION 'keep_min of a reaper policy must be zero or more, not %', NEW.keep_min
            USING ERRCODE = 'check_violation',
                  HINT = 'Give how many matching sessions to leave alone; 0 reaps them all.';
    END IF;
    IF NEW.enabled IS NULL THEN
        RAISE EXCEPTION 'enabled of a reaper policy must not be NULL'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Set enabled to true or false.';
    END IF;
    -- LIKE refuses a pattern whose last backslash escapes nothing (the
    -- run of backslashes it ends with is of odd length)
    IF length(substring(NEW.application_name FROM '\\*$')) % 2 = 1 THEN
        RAISE EXCEPTION 'application_name pattern "%" of a reaper policy ends with an escape character', v_app_q
            USING ERRCODE = 'invalid_escape_sequence',
                  HINT = 'application_name is a LIKE pattern: write \\ for a backslash, \% and \_ for a literal % or _.';
    END IF;
    IF NEW.query_pattern IS NOT NULL THEN
        BEGIN
            PERFORM ''::text ~ NEW.query_pattern;
        EXCEPTION WHEN invalid_regular_expression OR program_limit_exceeded THEN
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
            RAISE EXCEPTION 'query_pattern "%" of a reaper policy is not a valid regular expression: %',
                            v_pattern_q, v_message
                USING ERRCODE = 'invalid_regular_expression',
                      HINT = 'query_pattern is a regular expression as for the ~ operator: write \( \[ \. \* \+ \? for those characters themselves, (?i) in front to ignore case.';
        END;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION dbops._reaper_policies_validate() FROM PUBLIC;

CREATE TRIGGER reaper_policies_validate
    BEFORE INSERT OR UPDATE ON dbops.reaper_policies
    FOR EACH ROW EXECUTE FUNCTION dbops._reaper_policies_validate();
-- Policies written under 1.0 are kept as they are; one the trigger would
-- refuse cannot stop the reaper: an idle_timeout too long to count never
-- fires, an application_name pattern LIKE refuses matches no session.

-- pg_dump keeps the policy and log sequences with their tables (1.0 dumped
-- the rows only: a restored database handed out ids already taken).
SELECT pg_catalog.pg_extension_config_dump('dbops.reaper_policies_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.reaper_log_log_id_seq', '');

-- --------------------------------------------------------------- ledger.sql

-- Every function pins search_path = pg_catalog, pg_temp and names everything
-- by schema; the entry points that write the ledger or run a script are C
-- (ledger.c) and call pinned implementations directly; the helpers 1.0
-- called from SQL are gone; every internal function is revoked from
-- PUBLIC; the DDL capture records only what the ledger opened.
REVOKE ALL ON FUNCTION dbops._migration_events_append_only() FROM PUBLIC;

CREATE FUNCTION dbops._migration_capture_version()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_capture_version'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION dbops._migration_capture_version() FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.length(k.run) OPERATOR(pg_catalog.<=) 1000
                THEN pg_catalog.string_to_array(pg_catalog.translate(k.run, '_', '.'),
                                                '.')::pg_catalog.numeric[]
           END
    FROM (SELECT substring(version FROM '^[0-9]+(?:[._][0-9]+)*') AS run) AS k
$$;
-- the key of a version with a run of more than 1000 characters is NULL now
-- (it was a number, or an error): rebuild the index on it
REINDEX INDEX dbops.migrations_order_idx;

-- 1.0's parameters were named p_*: an input parameter cannot be renamed in
-- place.  The C entry points call it directly, so no grant on it matters.
DROP FUNCTION dbops._migration_decide(text, text, text[], boolean, text);
CREATE FUNCTION dbops._migration_decide(
    version text, checksum text, requires text[],
    allow_out_of_order boolean, caller text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row     dbops.migrations;
    v_base    text;
    v_missing text[];
    v_later   text;
    -- messages quote at most 64 characters of a version
    v_shown   text := CASE WHEN pg_catalog.length(_migration_decide.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_decide.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_decide.version END;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_decide.version;
    IF FOUND AND v_row.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        IF v_row.checksum IS NOT NULL AND _migration_decide.checksum IS NOT NULL
           AND v_row.checksum OPERATOR(pg_catalog.<>) _migration_decide.checksum THEN
            RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', v_shown
                USING ERRCODE = 'DB001',
                      DETAIL = pg_catalog.format('Recorded checksum %s (%s by %s); this script has %s.',
                                                 v_row.checksum, v_row.status, v_row.applied_by, _migration_decide.checksum),
                      HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
        END IF;
        IF caller OPERATOR(pg_catalog.=) 'migration_begin' THEN
            RAISE EXCEPTION 'migration % is already %', v_shown, v_row.status
                USING ERRCODE = 'DB004',
                      HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
        END IF;
        RETURN pg_catalog.format('already %s', v_row.status);
    END IF;

    IF NOT FOUND THEN
        SELECT b.version INTO v_base
        FROM dbops.migrations b
        WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
          AND dbops.migration_version_key(b.version) IS NOT NULL
          AND dbops.migration_version_key(_migration_decide.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(_migration_decide.version), _migration_decide.version COLLATE pg_catalog."C")
        ORDER BY dbops.migration_version_key(b.version) DESC, b.version COLLATE pg_catalog."C" DESC
        LIMIT 1;
        IF v_base IS NOT NULL THEN
            v_base := CASE WHEN pg_catalog.length(v_base) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_base, 64) OPERATOR(pg_catalog.||) '...' ELSE v_base END;
            IF caller OPERATOR(pg_catalog.=) 'migration_begin' THEN
                RAISE EXCEPTION 'migration % is covered by baseline %', v_shown, v_base
                    USING ERRCODE = 'DB004',
                          HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
            END IF;
            RETURN pg_catalog.format('covered by baseline %s', v_base);
        END IF;
    END IF;

    SELECT pg_catalog.array_agg(u.req ORDER BY u.ord) INTO v_missing
    FROM pg_catalog.unnest(_migration_decide.requires) WITH ORDINALITY AS u(req, ord)
    WHERE NOT EXISTS (SELECT 1 FROM dbops.migrations m
                      WHERE m.version OPERATOR(pg_catalog.=) u.req
                        AND m.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]))
      AND NOT EXISTS (SELECT 1 FROM dbops.migrations b
                      WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
                        AND dbops.migration_version_key(b.version) IS NOT NULL
                        AND dbops.migration_version_key(u.req) IS NOT NULL
                        AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
                            OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(u.req), u.req COLLATE pg_catalog."C"));
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'migration % requires versions that are not applied: %',
            v_shown,
            (SELECT pg_catalog.string_agg(CASE WHEN pg_catalog.length(t.x) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(t.x, 64) OPERATOR(pg_catalog.||) '...' ELSE t.x END, ', ' ORDER BY t.o)
                   FROM pg_catalog.unnest(v_missing[1:10]) WITH ORDINALITY AS t (x, o))
               OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.cardinality(v_missing) OPERATOR(pg_catalog.>) 10
                    THEN pg_catalog.format(' and %s more',
                                           pg_catalog.cardinality(v_missing) OPERATOR(pg_catalog.-) 10)
                    ELSE '' END
            USING ERRCODE = 'DB002',
                  HINT = 'Apply the required versions first; dbops.migration_status() shows what is applied.';
    END IF;

    IF NOT coalesce(allow_out_of_order,
                    pg_catalog.current_setting('dbops.migration_allow_out_of_order')::boolean)
       AND dbops.migration_version_key(_migration_decide.version) IS NOT NULL THEN
        SELECT m.version INTO v_later
        FROM dbops.migrations m
        WHERE m.status OPERATOR(pg_catalog.=) 'applied'
          AND m.version OPERATOR(pg_catalog.<>) _migration_decide.version
          AND dbops.migration_version_key(m.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(m.version), m.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>) ROW(dbops.migration_version_key(_migration_decide.version), _migration_decide.version COLLATE pg_catalog."C")
        ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE pg_catalog."C" DESC
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'migration % is older than the applied migration %', v_shown,
                CASE WHEN pg_catalog.length(v_later) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_later, 64) OPERATOR(pg_catalog.||) '...' ELSE v_later END
                USING ERRCODE = 'DB003',
                      HINT = 'Apply versions in order, or allow this one with allow_out_of_order => true (or SET dbops.migration_allow_out_of_order = on).';
        END IF;
    END IF;

    RETURN 'apply';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_decide(text, text, text[], boolean, text) FROM PUBLIC;

CREATE FUNCTION dbops._migrate(
    version text, description text, body text, requires text[],
    checksum text, decision text, search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_started  timestamptz;
    v_finished timestamptz;
BEGIN
    IF decision OPERATOR(pg_catalog.<>) 'apply' THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migrate.version, 'skip', 'migrate', _migrate.checksum, decision);
        RETURN 'skipped';
    END IF;

    v_started := pg_catalog.clock_timestamp();
    PERFORM pg_catalog.set_config('search_path', search_path, true);
    EXECUTE body;
    -- under whatever search_path the body left: qualified, and first
    PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                  'pg_catalog, pg_temp'::pg_catalog.text, true);
    v_finished := pg_catalog.clock_timestamp();

    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, started_at, finished_at,
         duration_ms, requires)
    VALUES (_migrate.version, _migrate.description, _migrate.checksum, 'applied', v_started,
            v_finished,
            pg_catalog.round(extract(epoch FROM v_finished OPERATOR(pg_catalog.-) v_started)
                             OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3),
            _migrate.requires)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum)
    VALUES (_migrate.version, 'apply', 'migrate', _migrate.checksum);
    RETURN 'applied';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migrate(text, text, text, text[], text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migrate(
    version text,
    description text,
    body text,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migrate'
LANGUAGE C VOLATILE;

CREATE FUNCTION dbops._migration_pending(version text, checksum text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row dbops.migrations;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_pending.version;
    IF FOUND AND v_row.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        IF v_row.checksum IS NOT NULL AND _migration_pending.checksum IS NOT NULL
           AND v_row.checksum OPERATOR(pg_catalog.<>) _migration_pending.checksum THEN
            RETURN pg_catalog.format('Recorded checksum %s (%s by %s); this script has %s.',
                                     v_row.checksum, v_row.status, v_row.applied_by, _migration_pending.checksum);
        END IF;
        RETURN '';
    END IF;
    IF NOT FOUND AND EXISTS (
        SELECT 1 FROM dbops.migrations b
        WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
          AND dbops.migration_version_key(b.version) IS NOT NULL
          AND dbops.migration_version_key(_migration_pending.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(_migration_pending.version), _migration_pending.version COLLATE pg_catalog."C")) THEN
        RETURN '';
    END IF;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_pending(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_pending(
    version text,
    checksum text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_pending'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._migration_ledger_finish()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE dbops.migrations m
    SET finished_at = pg_catalog.clock_timestamp(),
        duration_ms = pg_catalog.round(
            extract(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) m.started_at)
            OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3)
    WHERE m.version OPERATOR(pg_catalog.=) NEW.version AND m.finished_at IS NULL;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_ledger_finish() FROM PUBLIC;

CREATE FUNCTION dbops._migration_begin(
    version text, description text, checksum text, requires text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, requires)
    VALUES (_migration_begin.version, _migration_begin.description, _migration_begin.checksum, 'applied', _migration_begin.requires)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = NULL,
            duration_ms = NULL, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (_migration_begin.version, 'apply', 'migration_begin', _migration_begin.checksum,
            'recorded when the transaction commits');
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_begin(text, text, text, text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_begin'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._migration_capture_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version text := dbops._migration_capture_version();
BEGIN
    IF v_version IS NULL THEN
        RETURN;
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'sql_drop' THEN
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, TG_TAG, d.object_type, d.schema_name, d.object_identity
        FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
        WHERE d.original OR d.normal;
    ELSE
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, c.command_tag, c.object_type, c.schema_name, c.object_identity
        FROM pg_catalog.pg_event_trigger_ddl_commands() AS c;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.migration_status(
    checksums jsonb DEFAULT NULL,
    OUT version text, OUT description text, OUT status text,
    OUT checksum text, OUT expected_checksum text, OUT drift boolean,
    OUT applied_by name, OUT started_at timestamptz, OUT finished_at timestamptz,
    OUT duration_ms numeric, OUT requires text[],
    OUT last_event text, OUT last_event_at timestamptz,
    OUT last_sqlstate text, OUT last_message text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.has_table_privilege('dbops.migrations', 'SELECT')
       OR NOT pg_catalog.has_table_privilege('dbops.migration_events', 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for the migration ledger'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.migration_status() reads dbops.migrations and dbops.migration_events.',
                  HINT = 'Grant the role pg_monitor, or SELECT on dbops.migrations and dbops.migration_events.';
    END IF;
    IF checksums IS NOT NULL
       AND pg_catalog.jsonb_typeof(checksums) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'checksums must be a JSON object mapping versions to checksums'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"0001": "9f86d0...", "0002": "..."}''::jsonb';
    END IF;
    RETURN QUERY
    WITH last AS (
        SELECT DISTINCT ON (e.version) e.version, e.event, e.event_time, e.sqlstate, e.message
        FROM dbops.migration_events e
        ORDER BY e.version, e.event_id DESC
    ), expected AS (
        SELECT j.key AS version, j.value AS checksum
        FROM pg_catalog.jsonb_each_text(coalesce(checksums, '{}'::pg_catalog.jsonb)) AS j
    ), versions AS (
        SELECT m.version FROM dbops.migrations m
        UNION SELECT x.version FROM expected x
        UNION SELECT l.version FROM last l
    )
    SELECT v.version, m.description,
           CASE WHEN m.version IS NOT NULL THEN m.status
                WHEN EXISTS (
                    SELECT 1 FROM dbops.migrations b
                    WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
                      AND dbops.migration_version_key(b.version) IS NOT NULL
                      AND dbops.migration_version_key(v.version) IS NOT NULL
                      AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
                          OPERATOR(pg_catalog.>=)
                          ROW(dbops.migration_version_key(v.version), v.version COLLATE pg_catalog."C"))
                     THEN 'baseline'::pg_catalog.text
                WHEN l.event OPERATOR(pg_catalog.=) 'failed' THEN 'failed'::pg_catalog.text
                ELSE 'pending'::pg_catalog.text END,
           m.checksum, x.checksum,
           CASE WHEN x.checksum IS NULL OR m.checksum IS NULL
                     OR NOT m.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[])
                     THEN NULL
                ELSE m.checksum OPERATOR(pg_catalog.<>) x.checksum END,
           m.applied_by, m.started_at, m.finished_at, m.duration_ms, m.requires,
           l.event, l.event_time, l.sqlstate, l.message
    FROM versions v
    LEFT JOIN dbops.migrations m ON m.version OPERATOR(pg_catalog.=) v.version
    LEFT JOIN expected x ON x.version OPERATOR(pg_catalog.=) v.version
    LEFT JOIN last l ON l.version OPERATOR(pg_catalog.=) v.version
    ORDER BY dbops.migration_version_key(v.version) NULLS LAST, v.version COLLATE pg_catalog."C";
END;
$$;

CREATE FUNCTION dbops._migration_rollback(
    version text, body text, checksum text, search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row  dbops.migrations;
    v_deps text[];
    -- messages quote at most 64 characters of a version
    v_shown text := CASE WHEN pg_catalog.length(_migration_rollback.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_rollback.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_rollback.version END;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_rollback.version;
    IF NOT FOUND OR v_row.status OPERATOR(pg_catalog.<>) 'applied' THEN
        RAISE EXCEPTION 'migration % is not applied', v_shown
            USING ERRCODE = 'DB005',
                  DETAIL = CASE WHEN FOUND THEN pg_catalog.format('Its status is %s.', v_row.status)
                                ELSE 'It is not in dbops.migrations.' END,
                  HINT = 'Only applied versions can be rolled back; see dbops.migration_status().';
    END IF;
    SELECT pg_catalog.array_agg(m.version ORDER BY m.version) INTO v_deps
    FROM dbops.migrations m
    WHERE m.status OPERATOR(pg_catalog.=) 'applied'
      AND _migration_rollback.version OPERATOR(pg_catalog.=) ANY (m.requires);
    IF v_deps IS NOT NULL THEN
        RAISE EXCEPTION 'migration % is required by applied migrations: %',
            v_shown,
            (SELECT pg_catalog.string_agg(CASE WHEN pg_catalog.length(t.x) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(t.x, 64) OPERATOR(pg_catalog.||) '...' ELSE t.x END, ', ' ORDER BY t.o)
                   FROM pg_catalog.unnest(v_deps[1:10]) WITH ORDINALITY AS t (x, o))
               OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.cardinality(v_deps) OPERATOR(pg_catalog.>) 10
                    THEN pg_catalog.format(' and %s more',
                                           pg_catalog.cardinality(v_deps) OPERATOR(pg_catalog.-) 10)
                    ELSE '' END
            USING ERRCODE = 'DB006',
                  HINT = 'Roll back the dependent versions first.';
    END IF;
    IF body IS NOT NULL THEN
        PERFORM pg_catalog.set_config('search_path', search_path, true);
        EXECUTE body;
        -- under whatever search_path the body left: qualified, and first
        PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                      'pg_catalog, pg_temp'::pg_catalog.text, true);
    END IF;
    UPDATE dbops.migrations m SET status = 'rolled_back'
    WHERE m.version OPERATOR(pg_catalog.=) _migration_rollback.version;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (_migration_rollback.version, 'rollback', 'migration_rollback', _migration_rollback.checksum,
            CASE WHEN body IS NULL THEN 'recorded without a rollback body' END);
    RETURN 'rolled_back';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_rollback(text, text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_rollback(
    version text,
    body text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_rollback'
LANGUAGE C VOLATILE;

CREATE FUNCTION dbops._migration_baseline(version text, description text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row dbops.migrations;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_baseline.version;
    IF FOUND AND v_row.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'migration % is already %', CASE WHEN pg_catalog.length(_migration_baseline.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_baseline.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_baseline.version END, v_row.status
            USING ERRCODE = 'DB004',
                  HINT = 'A baseline is recorded for a version not applied yet, normally newer than every applied one; see dbops.migration_status().';
    END IF;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, finished_at, duration_ms)
    VALUES (_migration_baseline.version, _migration_baseline.description, NULL, 'baseline', pg_catalog.clock_timestamp(), 0)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = NULL, status = 'baseline',
            applied_by = EXCLUDED.applied_by, "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name, client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = 0, requires = '{}';
    INSERT INTO dbops.migration_events (version, event, operation, message)
    VALUES (_migration_baseline.version, 'baseline', 'migration_baseline',
            'versions up to this one are taken as applied');
    RETURN 'baseline';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_baseline(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_baseline(
    version text,
    description text DEFAULT 'baseline')
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_baseline'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION dbops._migration_repair(version text, checksum text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row dbops.migrations;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_repair.version;
    IF FOUND THEN
        UPDATE dbops.migrations m SET checksum = _migration_repair.checksum
        WHERE m.version OPERATOR(pg_catalog.=) _migration_repair.version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migration_repair.version, 'repair', 'migration_repair', _migration_repair.checksum,
                pg_catalog.format('checksum %s -> %s', coalesce(v_row.checksum, 'NULL'),
                                  coalesce(_migration_repair.checksum, 'NULL')));
        RETURN 'repaired';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.migration_events e
               WHERE e.version OPERATOR(pg_catalog.=) _migration_repair.version) THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migration_repair.version, 'repair', 'migration_repair', _migration_repair.checksum,
                'failed attempts acknowledged');
        RETURN 'acknowledged';
    END IF;
    RAISE EXCEPTION 'migration % is not in the ledger', CASE WHEN pg_catalog.length(_migration_repair.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_repair.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_repair.version END
        USING ERRCODE = 'DB005',
              HINT = 'See dbops.migration_status() for the recorded versions.';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_repair(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_repair(
    version text,
    checksum text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_repair'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION dbops._migration_import_read(source regclass)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cols  text[];
    v_shape text;
    v_sql   text;
    v_rows  jsonb;
    v_col   text;
    v_type  pg_catalog.regtype;
    v_base  pg_catalog.regtype;
BEGIN
    SELECT pg_catalog.array_agg(a.attname::pg_catalog.text) INTO v_cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) source
      AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;

    IF v_cols OPERATOR(pg_catalog.@>)
       '{installed_rank,version,description,installed_by,installed_on,execution_time,success}'::pg_catalog.text[] THEN
        v_shape := 'flyway';
        v_sql := pg_catalog.format($q$
            SELECT s.version::pg_catalog.text, s.description::pg_catalog.text,
                   s.installed_by::pg_catalog.text, s.installed_on::pg_catalog.timestamptz,
                   s.execution_time::pg_catalog.numeric, s.installed_rank
            FROM %s s
            WHERE s.version IS NOT NULL AND s.success$q$, source);
    ELSIF v_cols OPERATOR(pg_catalog.@>) '{version_num}'::pg_catalog.text[] THEN
        v_shape := 'alembic';
        v_sql := pg_catalog.format($q$
            SELECT s.version_num::pg_catalog.text, 'alembic revision'::pg_catalog.text,
                   NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric,
                   NULL::pg_catalog.int4
            FROM %s s WHERE s.version_num IS NOT NULL$q$, source);
    ELSIF v_cols OPERATOR(pg_catalog.@>) '{version}'::pg_catalog.text[] THEN
        v_shape := 'schema_migrations';
        v_sql := pg_catalog.format($q$
            SELECT s.version::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text,
                   NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric, NULL::pg_catalog.int4
            FROM %s s WHERE s.version IS NOT NULL$q$, source);
    ELSE
        RAISE EXCEPTION '"%" is not a migration ledger dbops can import', source
            USING ERRCODE = 'DB007',
                  HINT = 'dbops.migration_import() reads a table with a "version" column (schema_migrations), alembic_version (version_num), or flyway_schema_history.';
    END IF;

    v_col := CASE v_shape WHEN 'alembic' THEN 'version_num' ELSE 'version' END;
    SELECT a.atttypid INTO v_type
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) source
      AND a.attname OPERATOR(pg_catalog.=) v_col::pg_catalog.name AND NOT a.attisdropped;
    v_base := v_type;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid OPERATOR(pg_catalog.=) v_base)
          OPERATOR(pg_catalog.=) 'd' LOOP
        SELECT t.typbasetype INTO v_base FROM pg_catalog.pg_type t
        WHERE t.oid OPERATOR(pg_catalog.=) v_base;
    END LOOP;
    IF NOT v_base OPERATOR(pg_catalog.=)
           ANY ('{text,varchar,bpchar,name,int2,int4,int8}'::pg_catalog.regtype[]) THEN
        RAISE EXCEPTION 'column "%" of % is of type %, not of a text or integer type', v_col, source, v_type
            USING ERRCODE = 'datatype_mismatch',
                  HINT = pg_catalog.format('Import from a view that casts it, such as CREATE VIEW v AS SELECT %I::text AS %I FROM %s.',
                                           v_col, v_col, source);
    END IF;

    -- the rows in order, as JSON, so that nothing of the source's types
    -- leaves this function
    EXECUTE pg_catalog.format($q$
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   s.version, s.description, s.installed_by, s.installed_on, s.execution_time)
                   ORDER BY s.ord NULLS LAST, s.n), '[]'::pg_catalog.jsonb)
        FROM (SELECT q.*, pg_catalog.row_number() OVER () AS n
              FROM (%s) AS q (version, description, installed_by, installed_on, execution_time, ord)) s$q$,
        v_sql) INTO v_rows;
    RETURN pg_catalog.jsonb_build_object('shape', v_shape, 'rows', v_rows);
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_import_read(regclass) FROM PUBLIC;

CREATE FUNCTION dbops._migration_import(source text, rows_read jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    WITH src AS (
        SELECT r.value OPERATOR(pg_catalog.->>) 0 AS version,
               r.value OPERATOR(pg_catalog.->>) 1 AS description,
               r.value OPERATOR(pg_catalog.->>) 2 AS installed_by,
               (r.value OPERATOR(pg_catalog.->>) 3)::pg_catalog.timestamptz AS installed_on,
               (r.value OPERATOR(pg_catalog.->>) 4)::pg_catalog.numeric AS execution_time,
               r.ord
        FROM pg_catalog.jsonb_array_elements(rows_read OPERATOR(pg_catalog.->) 'rows')
             WITH ORDINALITY AS r(value, ord)
    ), ins AS (
        INSERT INTO dbops.migrations AS m
            (version, description, checksum, status, applied_by, started_at,
             finished_at, duration_ms)
        SELECT DISTINCT ON (s.version) pg_catalog.btrim(s.version),
               coalesce(s.description, 'imported'), NULL, 'applied',
               coalesce(s.installed_by, CURRENT_USER::pg_catalog.text)::pg_catalog.name,
               coalesce(s.installed_on, pg_catalog.clock_timestamp()),
               coalesce(s.installed_on, pg_catalog.clock_timestamp()), s.execution_time
        FROM (SELECT * FROM src ORDER BY src.ord) s
        WHERE pg_catalog.btrim(s.version) OPERATOR(pg_catalog.<>) ''
        ON CONFLICT (version) DO NOTHING
        RETURNING m.version)
    INSERT INTO dbops.migration_events (version, event, operation, message)
    SELECT i.version, 'import', 'migration_import',
           pg_catalog.format('imported from %s (%s)', source,
                             rows_read OPERATOR(pg_catalog.->>) 'shape')
    FROM ins i;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_import(text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_import(source regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dbops_migration_import'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- replaced by the C entry points (their C symbols stay for 1.0)
DROP FUNCTION dbops._migration_failed(text, text, text, text, text);
DROP FUNCTION dbops._migration_record_failure(text, text, text, text, text, text, text, text, text, integer);
DROP FUNCTION dbops._migration_arm(text, text, text, text, text, text, text, text, text, integer);
DROP FUNCTION dbops._ledger_in_transaction_block();
DROP FUNCTION dbops._ledger_writable(text);
DROP FUNCTION dbops._ledger_check_version(text);
DROP FUNCTION dbops._ledger_check_checksum(text);
DROP FUNCTION dbops._ledger_lock();
DROP FUNCTION dbops._ledger_covering_baseline(text);

-- ------------------------------------------------------------ retention.sql

-- Policies act with their table owner's rights.  Existing rows keep their
-- created_by: it has been the role that inserted the row (current_user)
-- since 1.0, so a policy that a role without the owner's privileges made
-- is now skipped by the purge (status 'skipped' in purge_runs) until the
-- table's owner adopts it with dbops.alter_retention_policy(), which
-- records the caller.  Nothing else about existing policies changes.
--
-- The purge becomes a thin driver over pinned phase functions, and every
-- read or change of a policy's table goes through dbops._purge_exec(), which
-- runs it as the table's owner.

-- created_by is the role a policy acts for: CALL dbops.purge() touches the
-- table only while that role has the privileges of the table's owner.  A
-- role that writes this table directly (it needs INSERT or UPDATE on it) may
-- only record a role whose privileges it has, normally itself: it cannot
-- write a policy in a superuser's name, nor repoint or change one.
-- Superusers (and so pg_dump's restore) may record any role.
CREATE FUNCTION dbops._retention_policies_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        RETURN NEW;
    END IF;
    IF NEW.created_by IS NOT NULL
       AND NOT (EXISTS (SELECT FROM pg_roles r WHERE r.rolname = NEW.created_by)
                AND pg_has_role(NEW.created_by, 'USAGE')) THEN
        RAISE EXCEPTION 'cannot record role "%" as created_by of the retention policy on %',
                NEW.created_by, NEW.relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'CALL dbops.purge() acts on a policy only while its created_by role has the privileges of the table''s owner; a policy is written in the name of a role whose privileges the writer has.',
                  HINT = 'Leave created_by to its default (current_user), or use dbops.add_retention_policy() and dbops.alter_retention_policy().';
    END IF;
    RETURN NEW;
END
$$;

REVOKE ALL ON FUNCTION dbops._retention_policies_guard() FROM PUBLIC;

CREATE TRIGGER retention_policies_guard
    BEFORE INSERT OR UPDATE ON dbops.retention_policies
    FOR EACH ROW EXECUTE FUNCTION dbops._retention_policies_guard();

-- purge_runs.status: 'skipped' for a policy the purge refused to act on
ALTER TABLE dbops.purge_runs DROP CONSTRAINT purge_runs_status_check,
    ADD CONSTRAINT purge_runs_status_check
        CHECK (status IN ('running', 'done', 'partial', 'failed', 'interrupted', 'skipped'));

-- Internal helpers (C): guards and the per-policy session lock.
CREATE OR REPLACE FUNCTION dbops._purge_begin(dry_run boolean DEFAULT false,
    OUT batch_target_ms integer, OUT batch_max integer,
    OUT lock_timeout_ms integer, OUT lock_retries integer,
    OUT max_replica_lag_ms integer, OUT runs_keep_s integer, OUT pid integer,
    OUT yield double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_purge_begin'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._purge_busy_sessions() RETURNS integer
AS 'MODULE_PATHNAME', 'dbops_purge_busy_sessions'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._purge_lock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_lock'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._purge_unlock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_unlock'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

-- Why a policy on relation made by created_by would be skipped or fail now
-- (NULLs when it would not): its keep or max_run_time (when given) is not
-- a positive interval of at most 1000 years (skipped: a row written before
-- 1.1 or into the table directly), the relation is gone (failed), is not a
-- plain or partitioned table or is temporary (skipped), created_by no
-- longer exists or lacks the privileges of the table's owner (skipped), the
-- time column is gone or not of a date/time type (failed); with a hint.
-- Catalogs only.
CREATE FUNCTION dbops._retention_problem(relation regclass, created_by name,
    time_column name DEFAULT NULL, keep interval DEFAULT NULL,
    max_run_time interval DEFAULT NULL,
    OUT status text, OUT sqlstate text, OUT message text, OUT hint text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_retention_problem'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

-- One step of a purge (see retention_exec.c): built from the policy row,
-- run as the table's owner in a security-restricted operation after the
-- relation is locked and checked again.  The caller picks the step and
-- narrows it; it never supplies SQL, and its cutoff may not be later than
-- now() - keep.  It needs SELECT and DELETE on the table (the owner's
-- privileges to detach or drop partitions; SELECT for a preview).
CREATE FUNCTION dbops._purge_exec(policy_id integer, target regclass, action text,
    cutoff timestamptz, lower_value text DEFAULT NULL, upper_value text DEFAULT NULL,
    n_rows bigint DEFAULT NULL,
    OUT n bigint, OUT value text, OUT value2 text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_purge_exec'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- relation named as regclass prints it under search_path (the caller's: the
-- purge names tables in its messages and in purge_runs as the caller sees
-- them).  Printing a name looks schemas up and runs nothing.
CREATE FUNCTION dbops._purge_relname(relation regclass, search_path text)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_purge_relname'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION dbops._retention_problem(regclass, name, name, interval, interval),
    dbops._purge_exec(integer, regclass, text, timestamptz, text, text, bigint),
    dbops._purge_relname(regclass, text) FROM PUBLIC;

-- What CALL dbops.purge() carries from one phase to the next, one
-- transaction each: every phase function (dbops._purge_<phase>()) takes it
-- and returns it with phase set to the phase to run next (see
-- dbops.purge()).  The settings are read once, at the start; the fields
-- from policy_id on describe the policy being purged and its run.
CREATE TYPE dbops._purge_state AS (
    phase               text,
    resume              text,
    relation            regclass,
    caller_path         text,
    batch_target_ms     integer,
    batch_max           integer,
    lock_timeout_ms     integer,
    lock_retries        integer,
    max_replica_lag_ms  integer,
    runs_keep_s         integer,
    yield_factor        double precision,
    sleep_s             double precision,
    yield_ms            numeric,
    run_start           timestamptz,
    ids                 integer[],
    idx                 integer,
    failures            text[],
    first_state         text,
    nskipped            integer,
    policy_id           integer,
    policy_rel          regclass,
    relname             text,
    time_column         name,
    batch_size          integer,
    max_rows_per_run    bigint,
    max_run_time        interval,
    kind                "char",
    run                 bigint,
    cutoff              timestamptz,
    deadline            timestamptz,
    total               bigint,
    retries             integer,
    status              text,
    sqlstate            text,
    message             text,
    parts               regclass[],
    part_idx            integer,
    targets             regclass[],
    target_idx          integer,
    is_date             boolean,
    lower_value         text,
    size                integer,
    skipped_any         boolean,
    lag                 double precision,
    pause_start         timestamptz
);
COMMENT ON TYPE dbops._purge_state IS
    'Internal: the state CALL dbops.purge() passes from one phase (dbops._purge_<phase>()) to the next';

-- The SQL of the steps of one purge batch on table target (a table, or a
-- leaf partition), by mode:
--   'bound'  $1 lower (text or NULL), $2 cutoff, $3 offset: the value of the
--            time column $3 rows into the rows older than the cutoff, from
--            lower on (NULL when fewer remain), and how many rows (up to $3)
--            share that value; index(-only) scans;
--   'range'  $1 lower, $2 upper (text or NULL), $3 cutoff: deletes the rows
--            between them that are older than the cutoff, by index range;
--   'skip_locked'  $1 lower, $2 cutoff, $3 limit: deletes up to $3 rows,
--            lowest time first, skipping rows other transactions hold locked;
--            returns the count and the highest value deleted (text).  Used
--            when a range batch could not get its row locks in time, and for
--            date columns, whose ties could make a range batch too large;
--   'exists' $1 cutoff: whether rows older than the cutoff remain;
--   'preview' $1 cutoff: how many rows are older than the cutoff, the oldest
--            and the newest of them (timestamptz as text).
-- from_value / to_value say whether the lower / upper bound is given.
-- Every function, operator, type and cast is schema-qualified: the
-- statements run as the table's owner (dbops._purge_exec()).
CREATE OR REPLACE FUNCTION dbops._purge_batch_sql(target regclass, time_column name, mode text,
    from_value boolean DEFAULT false, to_value boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_typid oid;
    v_typ text;
    v_lower_cond text;
BEGIN
    SELECT a.atttypid INTO v_typid
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_typid IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, target
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column of the policy''s table.';
    END IF;
    v_typ := CASE v_typid WHEN 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 'pg_catalog.timestamptz'
                      WHEN 'pg_catalog.timestamp'::pg_catalog.regtype THEN 'pg_catalog.timestamp'
                      WHEN 'pg_catalog.date'::pg_catalog.regtype THEN 'pg_catalog.date' END;
    IF v_typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not timestamptz, timestamp or date',
                time_column, target, format_type(v_typid, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;
    v_lower_cond := CASE WHEN from_value THEN format(' AND %I OPERATOR(pg_catalog.>=) $1::%s', time_column, v_typ) ELSE '' END;
    CASE mode
    WHEN 'bound' THEN
        RETURN format('SELECT b.bound::pg_catalog.text, (SELECT pg_catalog.count(*) FROM (SELECT FROM %1$s WHERE %2$I OPERATOR(pg_catalog.=) b.bound LIMIT $3) t) '
                      'FROM (SELECT %2$I AS bound FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $2%3$s ORDER BY %2$I OFFSET $3 LIMIT 1) b',
                      target, time_column, v_lower_cond);
    WHEN 'range' THEN
        RETURN format('DELETE FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $3%3$s%4$s',
                      target, time_column, v_lower_cond,
                      CASE WHEN to_value THEN format(' AND %I OPERATOR(pg_catalog.<=) $2::%s', time_column, v_typ) ELSE '' END);
    WHEN 'skip_locked' THEN
        RETURN format(
            'WITH d AS (DELETE FROM %1$s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY('
            'SELECT ctid FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $2%3$s '
            'ORDER BY %2$I LIMIT $3 FOR UPDATE SKIP LOCKED)) AND %2$I OPERATOR(pg_catalog.<) $2 RETURNING %2$I) '
            'SELECT pg_catalog.count(*), pg_catalog.max(%2$I)::pg_catalog.text FROM d',
            target, time_column, v_lower_cond);
    WHEN 'exists' THEN
        RETURN format('SELECT EXISTS (SELECT FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $1)',
                      target, time_column);
    WHEN 'preview' THEN
        RETURN format('SELECT pg_catalog.count(*), pg_catalog.min(%2$I)::pg_catalog.timestamptz::pg_catalog.text, '
                      'pg_catalog.max(%2$I)::pg_catalog.timestamptz::pg_catalog.text '
                      'FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $1',
                      target, time_column);
    ELSE
        RAISE EXCEPTION 'unknown batch mode "%"',
                CASE WHEN length(mode) > 64 THEN left(mode, 64) || '...' ELSE mode END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The modes are bound, range, skip_locked, exists and preview.';
    END CASE;
END
$$;

-- 1.1: refuses temporary tables, system catalogs, overlapping policies
-- (partitions and inheritance children), keep over 1000 years and
-- batch_size over 10000000, with hints.
-- Checks shared by add and alter; raises on what cannot work, NOTICEs on
-- what will work badly.  The relation: a plain or partitioned table, not
-- temporary (it would vanish with its session, and another session's cannot
-- be read), not a system catalog, not a partition or inheritance child of a
-- table with a policy nor the parent of one (their purges would overlap).
-- keep: positive, at most 1000 years (as extract(epoch) counts them), and
-- neither its years-and-months nor its days more than that on their own, so
-- that now() - keep (and the health check's slack on top) stays a valid
-- timestamp (retention_exec.c has the same rule for rows already stored).
-- batch_size: 1 to 10000000 (the largest dbops.purge_batch_max).
CREATE OR REPLACE FUNCTION dbops._retention_validate(relation regclass, time_column name,
    keep interval, batch_size integer)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind "char";
    v_persistence "char";
    v_nsp name;
    v_typ oid;
    v_attnum smallint;
    v_fk record;
    v_other record;
BEGIN
    IF relation IS NULL OR time_column IS NULL OR keep IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, time_column, keep and batch_size must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Give the table, its date/time column and how long rows are kept, e.g. (''events'', ''created_at'', interval ''90 days''); batch_size defaults to 5000.';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname INTO v_kind, v_persistence, v_nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = relation;
    IF v_kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table',
                  HINT = 'It was dropped; name an existing table.';
    END IF;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to tables and partitioned tables (not views, materialized views, foreign tables or indexes).';
    END IF;
    IF v_persistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table', relation
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = CASE WHEN (SELECT c.relnamespace FROM pg_class c WHERE c.oid = relation) = pg_my_temp_schema()
                                THEN 'It disappears at the end of this session; its policy would outlive it.'
                                ELSE 'It belongs to another session: only that session can read it, and it disappears with it.' END,
                  HINT = 'Retention policies apply to regular and unlogged tables; delete old rows of a temporary table directly.';
    END IF;
    IF v_nsp IN ('pg_catalog', 'information_schema') THEN
        RAISE EXCEPTION '% is a system catalog', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to user tables; PostgreSQL maintains its catalogs itself.';
    END IF;
    IF keep <= interval '0' THEN
        RAISE EXCEPTION 'keep must be a positive interval, not %', keep
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'keep is how long rows are kept, e.g. interval ''90 days''.';
    END IF;
    IF NOT coalesce(extract(epoch FROM keep) <= 31557600000
                    AND abs(extract(year FROM keep) * 12 + extract(month FROM keep)) <= 12000
                    AND abs(extract(day FROM keep)) <= 365250, false) THEN
        RAISE EXCEPTION 'keep (%) is longer than 1000 years', keep
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'keep may be at most 1000 years (of 365.25 days), and neither its years and months nor its days more than that on their own, so that now() - keep is always a valid timestamp.',
                  HINT = 'Give a keep of at most 1000 years, e.g. interval ''10 years''; without a policy rows are kept for ever.';
    END IF;
    IF batch_size <= 0 OR batch_size > 10000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 10000000, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'batch_size is the number of rows of the first batch (later ones adapt to dbops.purge_batch_target, at most dbops.purge_batch_max rows); the default is 5000.';
    END IF;
    SELECT a.atttypid, a.attnum INTO v_typ, v_attnum
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, relation
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column rows are aged by.';
    END IF;
    IF v_typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not a date/time type',
                time_column, relation, format_type(v_typ, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;

    -- one policy per set of rows: the purge of a partitioned table (or of an
    -- inheritance parent) deletes from its partitions (children) too.  The
    -- tables above relation (up) and below it, each direction walked from
    -- relation on; a policy above is reported first
    WITH RECURSIVE related(relid, up) AS (
        SELECT i.inhparent, true FROM pg_inherits i WHERE i.inhrelid = relation
        UNION ALL
        SELECT i.inhrelid, false FROM pg_inherits i WHERE i.inhparent = relation
        UNION
        SELECT CASE WHEN r.up THEN i.inhparent ELSE i.inhrelid END, r.up
          FROM related r
          JOIN pg_inherits i ON r.relid = CASE WHEN r.up THEN i.inhrelid ELSE i.inhparent END)
    SELECT p.relation AS rel, r.up INTO v_other
      FROM dbops.retention_policies p JOIN related r ON p.relation = r.relid
     ORDER BY r.up DESC, p.policy_id LIMIT 1;
    IF FOUND AND v_other.up THEN
        RAISE EXCEPTION '% is % %, which has a retention policy', relation,
                CASE WHEN (SELECT c.relispartition FROM pg_class c WHERE c.oid = relation)
                     THEN 'a partition of' ELSE 'an inheritance child of' END, v_other.rel
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('The purge of %s already deletes the old rows of %s.', v_other.rel, relation),
                  HINT = format('Change that policy with dbops.alter_retention_policy(%L), or remove it with dbops.remove_retention_policy(%L) first.',
                                v_other.rel::text, v_other.rel::text);
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION '% has % %, with a retention policy of its own', relation,
                CASE WHEN (SELECT c.relispartition FROM pg_class c WHERE c.oid = v_other.rel)
                     THEN 'a partition' ELSE 'an inheritance child' END, v_other.rel
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('The purge of %s would delete the old rows of %s too.', relation, v_other.rel),
                  HINT = format('Remove that policy with dbops.remove_retention_policy(%L) first; the policy on %s then covers it.',
                                v_other.rel::text, relation);
    END IF;

    -- a usable index: a valid btree index whose first column is time_column
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
                   WHERE i.indrelid = relation AND i.indkey[0] = v_attnum
                     AND am.amname = 'btree' AND i.indpred IS NULL
                     AND (i.indisvalid OR ic.relkind = 'I')) THEN
        RAISE NOTICE 'no index on %(%): every purge batch would scan the whole table', relation, time_column
            USING HINT = format('CREATE INDEX CONCURRENTLY ON %s (%I); dbops.purge() refuses to purge without it.',
                                relation, time_column);
    END IF;

    -- foreign keys that point at the table
    FOR v_fk IN
        SELECT con.conname, con.conrelid::regclass AS referencing, con.confdeltype,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                  FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS cols,
               EXISTS (SELECT 1 FROM pg_index i
                        WHERE i.indrelid = con.conrelid AND i.indpred IS NULL
                          AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey
                          AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey) AS indexed
          FROM pg_constraint con
         WHERE con.contype = 'f'
           AND (con.confrelid = relation
                OR con.confrelid IN (SELECT t.relid FROM pg_partition_tree(relation) t))
    LOOP
        IF NOT v_fk.indexed THEN
            RAISE NOTICE 'foreign key % on % references % and has no index on (%)',
                    v_fk.conname, v_fk.referencing, relation, v_fk.cols
                USING HINT = format('Each purged row makes PostgreSQL look for referencing rows: CREATE INDEX CONCURRENTLY ON %s (%s);',
                                    v_fk.referencing, v_fk.cols);
        END IF;
        IF v_fk.confdeltype IN ('c', 'n', 'd') THEN
            RAISE NOTICE 'foreign key % on % references % with ON DELETE %: purging % also changes %',
                    v_fk.conname, v_fk.referencing, relation,
                    CASE v_fk.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END,
                    relation, v_fk.referencing
                USING HINT = 'Those changes run inside each purge batch and are not counted in rows_deleted; give the referencing table its own policy or lower batch_size.';
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION dbops.add_retention_policy(
    relation regclass,
    time_column name,
    keep interval,
    batch_size integer DEFAULT 5000,
    max_rows_per_run bigint DEFAULT NULL,
    max_run_time interval DEFAULT interval '1 hour',
    drop_partitions boolean DEFAULT true,
    enabled boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer;
    v_owner oid;
BEGIN
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may add its policy
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = add_retention_policy.relation;
    IF v_owner IS NOT NULL AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to add its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', v_owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', v_owner::regrole, v_owner::regrole);
    END IF;
    PERFORM dbops._retention_validate(relation, time_column, keep, batch_size);
    IF max_rows_per_run IS NOT NULL AND max_rows_per_run <= 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_rows_per_run caps the rows one CALL dbops.purge() deletes from the table, e.g. 1000000; leave it NULL for no cap.';
    END IF;
    IF max_run_time IS NOT NULL AND max_run_time <= interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_run_time caps how long one CALL dbops.purge() works on the table, e.g. interval ''1 hour''; NULL for no cap.';
    END IF;
    IF max_run_time IS NOT NULL AND NOT coalesce(extract(epoch FROM max_run_time) <= 31557600000
                           AND abs(extract(year FROM max_run_time) * 12 + extract(month FROM max_run_time)) <= 12000
                           AND abs(extract(day FROM max_run_time)) <= 365250, false) THEN
        RAISE EXCEPTION 'max_run_time (%) is longer than 1000 years', max_run_time
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_run_time may be at most 1000 years (of 365.25 days), and neither its years and months nor its days more than that on their own.',
                  HINT = 'Give a max_run_time such as interval ''1 hour'', or NULL for no cap.';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.retention_policies p WHERE p.relation = add_retention_policy.relation) THEN
        RAISE EXCEPTION 'relation % already has a retention policy', relation
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change it with dbops.alter_retention_policy() or drop it with dbops.remove_retention_policy().';
    END IF;
    INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, drop_partitions, enabled, created_by)
    VALUES (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, coalesce(drop_partitions, true), coalesce(enabled, true),
            current_user)
    RETURNING policy_id INTO v_id;
    RETURN v_id;
END
$$;

COMMENT ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean) IS
    'Add a retention policy (needs the privileges of the table''s owner): rows of relation older than now() - keep by time_column are purged by CALL dbops.purge()';

CREATE OR REPLACE FUNCTION dbops.alter_retention_policy(
    relation regclass,
    keep interval DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    time_column name DEFAULT NULL,
    max_rows_per_run bigint DEFAULT NULL,
    max_run_time interval DEFAULT NULL,
    drop_partitions boolean DEFAULT NULL,
    enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p dbops.retention_policies;
    v_owner oid;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name the table whose policy to change; the policies are in dbops.retention_policies.';
    END IF;
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may alter its policy (the creator's,
    -- once the table is gone)
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = alter_retention_policy.relation;
    IF v_owner IS NOT NULL AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to alter its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', v_owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', v_owner::regrole, v_owner::regrole);
    END IF;
    IF v_owner IS NULL AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT FROM dbops.retention_policies r
                    WHERE r.relation = alter_retention_policy.relation
                      AND NOT (EXISTS (SELECT FROM pg_roles a WHERE a.rolname = r.created_by)
                               AND pg_has_role(r.created_by, 'USAGE'))) THEN
        RAISE EXCEPTION 'must have the privileges of the creator of the retention policy on relation % to alter it', relation::oid
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The table is gone: the role in created_by or a superuser may alter its policy.';
    END IF;
    SELECT * INTO v_p FROM dbops.retention_policies r WHERE r.relation = alter_retention_policy.relation FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    IF time_column IS NOT NULL OR keep IS NOT NULL OR batch_size IS NOT NULL THEN
        PERFORM dbops._retention_validate(relation, coalesce(time_column, v_p.time_column),
                                          coalesce(keep, v_p.keep), coalesce(batch_size, v_p.batch_size));
    END IF;
    IF max_rows_per_run < 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_rows_per_run caps the rows one CALL dbops.purge() deletes from the table; 0 removes the cap, NULL leaves it as it is.';
    END IF;
    IF max_run_time < interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_run_time caps how long one CALL dbops.purge() works on the table; interval ''0'' removes the cap, NULL leaves it as it is.';
    END IF;
    IF max_run_time IS NOT NULL AND NOT coalesce(extract(epoch FROM max_run_time) <= 31557600000
                           AND abs(extract(year FROM max_run_time) * 12 + extract(month FROM max_run_time)) <= 12000
                           AND abs(extract(day FROM max_run_time)) <= 365250, false) THEN
        RAISE EXCEPTION 'max_run_time (%) is longer than 1000 years', max_run_time
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_run_time may be at most 1000 years (of 365.25 days), and neither its years and months nor its days more than that on their own.',
                  HINT = 'Give a max_run_time such as interval ''1 hour''; interval ''0'' removes the cap.';
    END IF;
    UPDATE dbops.retention_policies r
       SET time_column = coalesce(alter_retention_policy.time_column, r.time_column),
           keep = coalesce(alter_retention_policy.keep, r.keep),
           batch_size = coalesce(alter_retention_policy.batch_size, r.batch_size),
           max_rows_per_run = CASE WHEN alter_retention_policy.max_rows_per_run IS NULL THEN r.max_rows_per_run
                                   ELSE nullif(alter_retention_policy.max_rows_per_run, 0) END,
           max_run_time = CASE WHEN alter_retention_policy.max_run_time IS NULL THEN r.max_run_time
                               ELSE nullif(alter_retention_policy.max_run_time, interval '0') END,
           drop_partitions = coalesce(alter_retention_policy.drop_partitions, r.drop_partitions),
           enabled = coalesce(alter_retention_policy.enabled, r.enabled),
           created_by = current_user
     WHERE r.policy_id = v_p.policy_id;
END
$$;

COMMENT ON FUNCTION dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean) IS
    'Change a retention policy (needs the privileges of the table''s owner; records the caller as created_by): NULL arguments leave a setting as it is; 0 removes a cap';

CREATE OR REPLACE FUNCTION dbops.remove_retention_policy(relation regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner oid;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name the table whose policy to remove; the policies are in dbops.retention_policies.';
    END IF;
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may remove its policy (the creator's,
    -- once the table is gone)
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = remove_retention_policy.relation;
    IF v_owner IS NOT NULL AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to remove its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', v_owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', v_owner::regrole, v_owner::regrole);
    END IF;
    IF v_owner IS NULL AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT FROM dbops.retention_policies r
                    WHERE r.relation = remove_retention_policy.relation
                      AND NOT (EXISTS (SELECT FROM pg_roles a WHERE a.rolname = r.created_by)
                               AND pg_has_role(r.created_by, 'USAGE'))) THEN
        RAISE EXCEPTION 'must have the privileges of the creator of the retention policy on relation % to remove it', relation::oid
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The table is gone: the role in created_by or a superuser may remove its policy.';
    END IF;
    DELETE FROM dbops.retention_policies r WHERE r.relation = remove_retention_policy.relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT relation FROM dbops.retention_policies lists the tables that have one.';
    END IF;
END
$$;

COMMENT ON FUNCTION dbops.remove_retention_policy(regclass) IS
    'Remove the retention policy of relation (needs the privileges of the table''s owner; its purge_runs rows stay)';

-- Partitions of a partitioned policy table that lie wholly before cutoff:
-- direct range partitions on the time column whose upper bound is at or
-- below the cutoff, oldest first, never the last (non-default) partition.
CREATE OR REPLACE FUNCTION dbops._purge_old_partitions(parent regclass, time_column name, cutoff timestamptz)
RETURNS TABLE (partition regclass, upper_bound timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_typ text;
    v_r record;
    v_upper text;
    v_old boolean;
BEGIN
    SELECT CASE a.atttypid WHEN 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 'pg_catalog.timestamptz'
                           WHEN 'pg_catalog.timestamp'::pg_catalog.regtype THEN 'pg_catalog.timestamp'
                           WHEN 'pg_catalog.date'::pg_catalog.regtype THEN 'pg_catalog.date' END
      INTO v_typ
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = parent AND pt.partstrat = 'r' AND pt.partnatts = 1
       AND a.attname = time_column;
    IF v_typ IS NULL THEN
        RETURN;             -- not range-partitioned on the time column (of a date/time type)
    END IF;
    FOR v_r IN
        SELECT c.oid::regclass AS part,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(.*\) TO \((.*)\)$'))[1] AS ub
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
    LOOP
        CONTINUE WHEN v_r.ub IS NULL OR v_r.ub = 'MAXVALUE' OR v_r.ub = 'MINVALUE';
        v_upper := v_r.ub;
        IF left(v_upper, 1) = '''' THEN
            v_upper := replace(substr(v_upper, 2, length(v_upper) - 2), '''''', '''');
        END IF;
        -- compared in the column's type first: a bound beyond the range
        -- of timestamptz (a date far in the future) is never old
        EXECUTE format('SELECT %L::%s OPERATOR(pg_catalog.<=) $1', v_upper, v_typ)
           INTO v_old USING cutoff;
        IF v_old THEN
            EXECUTE format('SELECT %L::%s::pg_catalog.timestamptz', v_upper, v_typ) INTO upper_bound;
            partition := v_r.part;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION dbops.purge_preview(relation regclass DEFAULT NULL)
RETURNS TABLE (target regclass, time_column name, cutoff timestamptz,
               rows_to_delete bigint, oldest timestamptz, newest timestamptz,
               partitions_to_drop integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p record;
    v_chk record;
    v_x record;
    v_nparts integer;
    v_state text;
    v_msg text;
    v_relname text;
BEGIN
    IF purge_preview.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge_preview.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge_preview.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    FOR v_p IN SELECT r.* FROM dbops.retention_policies r
              WHERE (purge_preview.relation IS NULL AND r.enabled) OR r.relation = purge_preview.relation
              ORDER BY r.policy_id
    LOOP
        -- what the purge would refuse (limits out of range, a relation that
        -- is gone or no longer a table...) is not read
        v_chk := dbops._retention_problem(v_p.relation, v_p.created_by, v_p.time_column, v_p.keep, v_p.max_run_time);
        IF v_chk.status IS NOT NULL THEN
            RAISE NOTICE 'retention policy on % not previewed: %', v_p.relation, v_chk.message
                USING DETAIL = CASE v_chk.status WHEN 'skipped' THEN 'CALL dbops.purge() skips it too.'
                                               ELSE 'CALL dbops.purge() fails on it too.' END,
                      HINT = v_chk.hint;
            CONTINUE;
        END IF;
        v_relname := v_p.relation::text;     -- named before it may go
        target := v_p.relation;
        time_column := v_p.time_column;
        cutoff := now() - v_p.keep;
        -- read as the table's owner, after its lock; what changed while
        -- waiting for the lock (dropped, no longer a table...) is said so
        BEGIN
            v_x := dbops._purge_exec(v_p.policy_id, v_p.relation, 'preview', cutoff);
        EXCEPTION WHEN undefined_table OR wrong_object_type OR undefined_column
                       OR datatype_mismatch OR object_not_in_prerequisite_state THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            RAISE NOTICE 'retention policy on % not previewed: %', v_relname, v_msg
                USING DETAIL = format('SQLSTATE %s', v_state),
                      HINT = 'CALL dbops.purge() skips or fails on it too; see dbops.purge_runs after it.';
            CONTINUE;
        END;
        rows_to_delete := v_x.n;
        oldest := v_x.value::timestamptz;
        newest := v_x.value2::timestamptz;
        SELECT count(*) INTO v_nparts FROM dbops._purge_old_partitions(v_p.relation, v_p.time_column, cutoff);
        partitions_to_drop := CASE WHEN v_nparts > 0 AND v_nparts = (SELECT count(*) FROM pg_inherits i
                                       JOIN pg_class c ON c.oid = i.inhrelid
                                      WHERE i.inhparent = v_p.relation
                                        AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT')
                                   THEN v_nparts - 1 ELSE v_nparts END;
        RETURN NEXT;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- CALL dbops.purge(), phase by phase.  Each phase function does one step
-- of the purge in the transaction dbops.purge() commits after it, and says
-- which phase comes next (st.phase).  All reading and deleting of a
-- policy's table is done by dbops._purge_exec(), as the table's owner.
-- ---------------------------------------------------------------------------

-- Refuses a state that is not at phase: every phase function starts with
-- it, so that a call from anywhere but dbops.purge() gets a clear error.
CREATE FUNCTION dbops._purge_require_phase(st dbops._purge_state, phase text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF st.phase IS DISTINCT FROM phase THEN
        RAISE EXCEPTION 'not a state of CALL dbops.purge()'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('dbops._purge_%s() is called by CALL dbops.purge() only; use that.', phase);
    END IF;
END
$$;

-- The end of the policy's run, with this outcome (status, SQLSTATE code,
-- message), which phase record writes next.
CREATE FUNCTION dbops._purge_stop(st dbops._purge_state, status text, code text, message text)
RETURNS dbops._purge_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.status := status;
    st.sqlstate := code;
    st.message := message;
    st.phase := 'record';
    RETURN st;
END
$$;

-- A pause of sleep_s seconds after the COMMIT (and the yield a batch asked
-- for in st.yield_ms), taken by phase pause; then the phase st is at again.
CREATE FUNCTION dbops._purge_wait(st dbops._purge_state, sleep_s double precision)
RETURNS dbops._purge_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.sleep_s := sleep_s;
    st.resume := st.phase;
    st.phase := 'pause';
    RETURN st;
END
$$;

-- Another attempt at a step that found its table or rows locked: after a
-- backoff of 0.1 s, 0.2 s, ... up to 5 s; after dbops.purge_lock_retries
-- attempts, the end of the run as partial (55P03), the message saying
-- reason and how many attempts were made.
CREATE FUNCTION dbops._purge_backoff(st dbops._purge_state, reason text)
RETURNS dbops._purge_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.retries := st.retries + 1;
    IF st.retries > st.lock_retries THEN
        RETURN dbops._purge_stop(st, 'partial', '55P03', format('%s after %s attempts', reason, st.retries));
    END IF;
    RETURN dbops._purge_wait(st, least(0.05 * 2 ^ st.retries, 5));
END
$$;

-- Whether a step on target failed (SQLSTATE code) because target, a
-- partition of the policy's table policy_rel, was dropped or detached by
-- someone else meanwhile, while policy_rel is still there.
CREATE FUNCTION dbops._purge_target_gone(policy_rel regclass, target regclass, code text)
RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT target OPERATOR(pg_catalog.<>) policy_rel
       AND code OPERATOR(pg_catalog.=) ANY ('{42P01,55000}'::pg_catalog.text[])
       AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) policy_rel)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(policy_rel) t
                        WHERE t.relid OPERATOR(pg_catalog.=) target)
$$;

-- Phase start, the first thing CALL dbops.purge() does: refuses dry_run
-- NULL, a standby and a transaction block (dbops._purge_begin(), which
-- also loads the settings; both allowed for a dry run) and a relation
-- without a policy.  caller_path is the caller's search_path, used only to
-- name tables the way the caller sees them.  Next: dry_run or policies,
-- still before the first COMMIT.
CREATE FUNCTION dbops._purge_start(relation regclass, dry_run boolean, caller_path text)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_st dbops._purge_state;
    v_set record;
BEGIN
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'CALL dbops.purge(dry_run => true) only reports what would be deleted; false (the default) purges.';
    END IF;
    v_st.caller_path := coalesce(caller_path, 'pg_catalog');
    -- refuses on a standby and in a transaction block; loads the settings
    v_set := dbops._purge_begin(dry_run);

    IF _purge_start.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = _purge_start.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', dbops._purge_relname(_purge_start.relation, v_st.caller_path)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;

    v_st.relation := _purge_start.relation;
    v_st.batch_target_ms := v_set.batch_target_ms;
    v_st.batch_max := v_set.batch_max;
    v_st.lock_timeout_ms := v_set.lock_timeout_ms;
    v_st.lock_retries := v_set.lock_retries;
    v_st.max_replica_lag_ms := v_set.max_replica_lag_ms;
    v_st.runs_keep_s := v_set.runs_keep_s;
    v_st.yield_factor := v_set.yield;
    v_st.sleep_s := 0;
    v_st.yield_ms := 0;
    v_st.phase := CASE WHEN dry_run THEN 'dry_run' ELSE 'policies' END;
    RETURN v_st;
END
$$;

-- Phase dry_run: a NOTICE per policy with what the purge would delete now
-- (dbops.purge_preview()); nothing is written.  Next: done.
CREATE FUNCTION dbops._purge_dry_run(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pv record;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'dry_run');
    FOR v_pv IN SELECT * FROM dbops.purge_preview(st.relation) LOOP
        RAISE NOTICE '%: % rows older than % would be deleted (oldest %, newest %)%',
            dbops._purge_relname(v_pv.target, st.caller_path), v_pv.rows_to_delete, v_pv.cutoff, v_pv.oldest, v_pv.newest,
            CASE WHEN v_pv.partitions_to_drop > 0
                 THEN format(', %s of them by dropping %s partitions', v_pv.rows_to_delete, v_pv.partitions_to_drop)
                 ELSE '' END;
    END LOOP;
    st.phase := 'done';
    RETURN st;
END
$$;

-- Phase policies, the rest of the first transaction: runs whose backend is
-- gone did not finish (marked interrupted), purge_runs' own retention
-- (dbops.purge_runs_keep), and the policies to purge, in order: the one on
-- st.relation, or every enabled one.  Next: policy.
CREATE FUNCTION dbops._purge_policies(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'policies');
    st.run_start := clock_timestamp();

    -- runs whose backend is gone did not finish: say so
    UPDATE dbops.purge_runs r
       SET status = 'interrupted', finished = coalesce(r.finished, st.run_start),
           message = CASE WHEN r.pid = pg_backend_pid()
                          THEN 'an earlier purge in this session stopped during the run (error or cancel)'
                          ELSE format('backend %s ended during the run (crash, kill or disconnect)', r.pid) END
     WHERE r.status = 'running'
       AND (r.pid = pg_backend_pid()
            OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                            WHERE a.pid = r.pid
                              AND (a.backend_start IS NULL OR r.backend_start IS NULL
                                   OR a.backend_start = r.backend_start)));
    -- purge_runs' own retention
    DELETE FROM dbops.purge_runs r
     WHERE r.finished < st.run_start - make_interval(secs => st.runs_keep_s);

    SELECT array_agg(r.policy_id ORDER BY r.policy_id) INTO st.ids
      FROM dbops.retention_policies r
     WHERE (st.relation IS NULL AND r.enabled) OR r.relation = st.relation;
    st.idx := 0;
    st.failures := '{}';
    st.nskipped := 0;
    st.phase := 'policy';
    RETURN st;
END
$$;

-- Phase policy: the next policy whose lock this session gets (one that
-- another session is purging is skipped with a NOTICE, one removed
-- meanwhile passed over), its runs still marked running marked
-- interrupted, and its run row, committed before any work.  Next: record
-- for a policy that must be skipped or cannot work (dbops._retention_problem(),
-- or no usable index), partition for a partitioned table, else target; no
-- policy left: finish.
CREATE FUNCTION dbops._purge_policy(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p dbops.retention_policies;
    v_chk record;
    v_start timestamptz;
    v_nparts integer;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'policy');
    LOOP
        st.idx := st.idx + 1;
        IF st.idx > coalesce(cardinality(st.ids), 0) THEN
            st.phase := 'finish';
            RETURN st;
        END IF;
        SELECT * INTO v_p FROM dbops.retention_policies r WHERE r.policy_id = st.ids[st.idx];
        CONTINUE WHEN NOT FOUND;    -- removed meanwhile
        st.relname := dbops._purge_relname(v_p.relation, st.caller_path);
        EXIT WHEN dbops._purge_lock(v_p.policy_id);
        RAISE NOTICE 'another session is already purging %; skipped', st.relname
            USING HINT = 'Its progress is in dbops.purge_runs (status running).';
    END LOOP;

    -- we hold the policy's lock: a run still marked running is not
    UPDATE dbops.purge_runs r
       SET status = 'interrupted', finished = coalesce(r.finished, clock_timestamp()),
           message = coalesce(r.message, format('backend %s stopped during the run (error, cancel or crash)', r.pid))
     WHERE r.policy_id = v_p.policy_id AND r.status = 'running';

    -- why the purge must not or cannot act on it: limits out of
    -- range (checked first, status skipped, 22023: then no cutoff
    -- is computed), the table is gone, no longer a table,
    -- temporary, its policy's creator lost the owner's rights
    v_chk := dbops._retention_problem(v_p.relation, v_p.created_by, v_p.time_column, v_p.keep, v_p.max_run_time);

    v_start := clock_timestamp();
    st.policy_id := v_p.policy_id;
    st.policy_rel := v_p.relation;
    st.time_column := v_p.time_column;
    st.batch_size := v_p.batch_size;
    st.max_rows_per_run := v_p.max_rows_per_run;
    st.max_run_time := v_p.max_run_time;
    st.cutoff := NULL;
    st.deadline := NULL;
    IF v_chk.sqlstate IS DISTINCT FROM '22023' THEN
        st.cutoff := st.run_start - v_p.keep;
        st.deadline := CASE WHEN v_p.max_run_time IS NOT NULL THEN v_start + v_p.max_run_time END;
    END IF;
    st.total := 0;
    st.retries := 0;
    st.status := NULL;
    st.sqlstate := NULL;
    st.message := NULL;
    st.parts := NULL;
    st.part_idx := 1;
    st.targets := NULL;
    st.target_idx := 0;
    INSERT INTO dbops.purge_runs (policy_id, relation, cutoff, started, backend_start)
    VALUES (v_p.policy_id, st.relname, st.cutoff, v_start,
            (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()))
    RETURNING run_id INTO st.run;

    -- what must not be done is skipped, what cannot work fails, with
    -- the reason (v_chk above), or: it has no index
    SELECT c.relkind INTO st.kind FROM pg_class c WHERE c.oid = v_p.relation;
    IF v_chk.status IS NOT NULL THEN
        RETURN dbops._purge_stop(st, v_chk.status, v_chk.sqlstate, v_chk.message);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                   WHERE i.indrelid = v_p.relation AND a.attname = v_p.time_column
                     AND am.amname = 'btree' AND i.indpred IS NULL
                     AND (i.indisvalid OR ic.relkind = 'I')) THEN
        RETURN dbops._purge_stop(st, 'failed', '55000',
                                 format('no index on %s (%I): batches would scan the whole table', st.relname, v_p.time_column));
    END IF;
    IF st.kind IS DISTINCT FROM 'p' THEN
        st.phase := 'target';
        RETURN st;
    END IF;

    -- partitions wholly older than the cutoff, never the last one
    SELECT array_agg(o.partition ORDER BY o.upper_bound) INTO st.parts
      FROM dbops._purge_old_partitions(v_p.relation, v_p.time_column, st.cutoff) o;
    SELECT count(*) INTO v_nparts
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = v_p.relation AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
    IF cardinality(st.parts) >= v_nparts THEN
        st.parts := st.parts[1:v_nparts - 1];
    END IF;
    st.phase := 'partition';
    RETURN st;
END
$$;

-- Phase partition: one old partition (phase policy listed them, oldest
-- first) detached, and dropped unless the policy says drop_partitions =>
-- false; one gone meanwhile is passed over, a lock not granted in time
-- tried again after a backoff.  Next: partition again; target when none
-- is left; record at max_run_time or on an error.
CREATE FUNCTION dbops._purge_partition(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target regclass := st.parts[st.part_idx];
    v_x record;
    v_locked boolean := false;
    v_failed boolean := false;
    v_t0 timestamptz;
    v_ms numeric;
    v_state text;
    v_msg text;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'partition');
    IF st.part_idx > coalesce(cardinality(st.parts), 0) THEN
        st.phase := 'target';
        RETURN st;
    END IF;
    IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
        RETURN dbops._purge_stop(st, 'partial', NULL, 'stopped at max_run_time');
    END IF;
    v_t0 := clock_timestamp();
    BEGIN
        v_x := dbops._purge_exec(st.policy_id, v_target, 'detach', st.cutoff);
    EXCEPTION
        WHEN lock_not_available THEN
            v_locked := true;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            v_failed := true;
    END;
    IF v_failed AND dbops._purge_target_gone(st.policy_rel, v_target, v_state) THEN
        -- dropped or detached by someone else meanwhile: gone anyway
        RAISE NOTICE '%: %; going on without it', st.relname, v_msg;
        st.part_idx := st.part_idx + 1;
        RETURN st;
    END IF;
    IF v_failed THEN
        RETURN dbops._purge_stop(st, 'failed', v_state,
                                 format('detaching partition %s: %s', dbops._purge_relname(v_target, st.caller_path), v_msg));
    END IF;
    v_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;
    IF v_locked THEN
        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
        RETURN dbops._purge_backoff(st, format('could not lock %s to detach %s within lock_timeout',
                                               st.relname, dbops._purge_relname(v_target, st.caller_path)));
    END IF;
    st.retries := 0;
    UPDATE dbops.purge_runs r
       SET partitions_dropped = r.partitions_dropped + v_x.n,
           partitions_detached = r.partitions_detached + 1 - v_x.n,
           longest_batch_ms = greatest(r.longest_batch_ms, v_ms)
     WHERE r.run_id = st.run;
    st.part_idx := st.part_idx + 1;
    RETURN st;
END
$$;

-- Phase target: the next table whose old rows go in batches: the policy's
-- table, or each leaf partition of it in turn (listed on the first call,
-- once the old partitions are gone), with the first batch's size.  Next:
-- batch; record after the last table.
CREATE FUNCTION dbops._purge_target(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'target');
    IF st.targets IS NULL THEN
        IF st.kind = 'p' THEN
            SELECT coalesce(array_agg(t.relid ORDER BY t.relid), '{}') INTO st.targets
              FROM pg_partition_tree(st.policy_rel) t
              JOIN pg_class c ON c.oid = t.relid
             WHERE t.isleaf AND c.relkind = 'r';
        ELSE
            st.targets := ARRAY[st.policy_rel];
        END IF;
        st.size := least(st.batch_size, st.batch_max);
        st.target_idx := 0;
    END IF;
    st.target_idx := st.target_idx + 1;
    IF st.target_idx > cardinality(st.targets) THEN
        st.phase := 'record';
        RETURN st;
    END IF;
    SELECT a.atttypid = 'pg_catalog.date'::pg_catalog.regtype INTO st.is_date
      FROM pg_attribute a
     WHERE a.attrelid = st.targets[st.target_idx] AND a.attname = st.time_column;
    st.lower_value := NULL;
    st.retries := 0;
    st.skipped_any := false;
    st.phase := 'batch';
    RETURN st;
END
$$;

-- Phase batch: one batch of the current table.  It stops first at a cap
-- (max_rows_per_run, max_run_time) or for the replica lag guard; else it
-- finds the time value lim rows on and deletes the range up to it (both
-- through the index); when many rows share that value, for a date column,
-- or when a row lock is not granted in time, it deletes lim rows skipping
-- locked ones.  Each statement runs as the table's owner, under
-- dbops.purge_lock_timeout.  The batch's rows and time go into the run row
-- in the same transaction, and the next batch is sized toward
-- dbops.purge_batch_target.  Next: batch again (after yielding to busy
-- sessions, or a backoff); target at the end of the table; lag; record at
-- a cap or on an error.
CREATE FUNCTION dbops._purge_batch(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target regclass := st.targets[st.target_idx];
    v_x record;
    v_n bigint := 0;
    v_maxval text;
    v_upper text;
    v_lim integer;
    v_use_skip boolean := st.is_date;
    v_locked boolean := false;
    v_failed boolean := false;
    v_t0 timestamptz;
    v_ms numeric;
    v_state text;
    v_msg text;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'batch');
    IF st.max_rows_per_run IS NOT NULL AND st.total >= st.max_rows_per_run THEN
        RETURN dbops._purge_stop(st, 'partial', NULL, format('stopped at max_rows_per_run (%s)', st.max_rows_per_run));
    END IF;
    IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
        RETURN dbops._purge_stop(st, 'partial', NULL, format('stopped at max_run_time (%s)', st.max_run_time));
    END IF;
    IF st.max_replica_lag_ms > 0 THEN
        st.lag := dbops.replica_replay_lag_ms();
        IF st.lag > st.max_replica_lag_ms THEN
            st.pause_start := clock_timestamp();
            st.phase := 'lag';
            RETURN dbops._purge_wait(st, 0.5);
        END IF;
    END IF;

    v_lim := st.size;
    IF st.max_rows_per_run IS NOT NULL THEN
        v_lim := least(v_lim, st.max_rows_per_run - st.total);
    END IF;
    v_t0 := clock_timestamp();
    IF NOT v_use_skip THEN
        BEGIN
            v_x := dbops._purge_exec(st.policy_id, v_target, 'bound', st.cutoff, st.lower_value, NULL, v_lim - 1);
            v_upper := v_x.value;
            IF v_upper IS NOT NULL AND v_x.n > v_lim / 4 THEN
                -- many rows share the bound: a range would take
                -- them all, so count rows instead
                v_use_skip := true;
            ELSE
                v_x := dbops._purge_exec(st.policy_id, v_target, 'range', st.cutoff, st.lower_value, v_upper);
                v_n := v_x.n;
                v_maxval := v_upper;
            END IF;
        EXCEPTION
            WHEN lock_not_available THEN
                v_use_skip := true;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                v_failed := true;
        END;
    END IF;
    IF v_use_skip AND NOT v_failed THEN
        BEGIN
            v_x := dbops._purge_exec(st.policy_id, v_target, 'skip_locked', st.cutoff, st.lower_value, NULL, v_lim);
            v_n := v_x.n;
            v_maxval := v_x.value;
        EXCEPTION
            WHEN lock_not_available THEN
                v_locked := true;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                v_failed := true;
        END;
    END IF;
    IF v_failed AND dbops._purge_target_gone(st.policy_rel, v_target, v_state) THEN
        -- a partition dropped or detached meanwhile: the next one
        RAISE NOTICE '%: %; going on without it', st.relname, v_msg;
        st.phase := 'target';
        RETURN st;
    END IF;
    IF v_failed THEN
        RETURN dbops._purge_stop(st, 'failed', v_state, v_msg);
    END IF;
    v_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;

    IF v_locked THEN
        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
        RETURN dbops._purge_backoff(st, format('could not lock %s within lock_timeout (%s ms)',
                                               dbops._purge_relname(v_target, st.caller_path), st.lock_timeout_ms));
    END IF;

    IF v_use_skip AND v_n < v_lim THEN
        st.skipped_any := true;
    END IF;
    IF v_n > 0 THEN
        st.total := st.total + v_n;
        UPDATE dbops.purge_runs r
           SET rows_deleted = r.rows_deleted + v_n, batches = r.batches + 1,
               longest_batch_ms = greatest(r.longest_batch_ms, v_ms)
         WHERE r.run_id = st.run;
        IF st.yield_factor > 0 THEN
            st.yield_ms := v_ms;    -- phase pause yields, after the COMMIT
        END IF;
    END IF;

    IF (v_use_skip AND v_n >= v_lim) OR (NOT v_use_skip AND v_upper IS NOT NULL) THEN
        -- a full batch: continue from its highest value, sized
        -- toward the target batch time
        st.retries := 0;
        st.lower_value := v_maxval;
        IF v_lim = st.size THEN
            st.size := least(st.batch_max, greatest(10,
                           round(st.size * least(2.0, greatest(0.5, st.batch_target_ms / greatest(v_ms, 1))))::integer));
        END IF;
    ELSIF st.lower_value IS NOT NULL THEN
        -- end of the range: done, unless batches skipped locked
        -- rows; then sweep once more from the start
        IF st.skipped_any THEN
            st.lower_value := NULL;
            st.skipped_any := false;
        ELSE
            st.phase := 'target';
        END IF;
    ELSIF v_n = 0 THEN
        -- nothing deleted from the start: done, unless rows remain
        -- that other transactions hold locked
        v_x := dbops._purge_exec(st.policy_id, v_target, 'exists', st.cutoff);
        IF v_x.n = 0 THEN
            st.phase := 'target';
        ELSE
            st := dbops._purge_backoff(st, format('rows of %s older than the cutoff are locked by other transactions; gave up',
                                                  dbops._purge_relname(v_target, st.caller_path)));
            IF st.phase = 'pause' THEN
                UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
            END IF;
            RETURN st;
        END IF;
    END IF;
    -- (rows deleted from the start: again from the start)
    IF st.yield_ms > 0 THEN
        RETURN dbops._purge_wait(st, 0);
    END IF;
    RETURN st;
END
$$;

-- Phase lag, the replica lag guard's wait (phase batch saw the standbys'
-- replay lag above dbops.purge_max_replica_lag): one short look after each
-- pause of 0.5 s, until the lag is back under the limit or max_run_time is
-- reached; the wait is added to the run's paused_ms.  Next: batch, or
-- record at max_run_time.
CREATE FUNCTION dbops._purge_lag(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'lag');
    st.lag := dbops.replica_replay_lag_ms();
    IF st.lag > st.max_replica_lag_ms
       AND (st.deadline IS NULL OR clock_timestamp() < st.deadline) THEN
        RETURN dbops._purge_wait(st, 0.5);
    END IF;
    UPDATE dbops.purge_runs r
       SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - st.pause_start) * 1000)::bigint
     WHERE r.run_id = st.run;
    IF st.lag > st.max_replica_lag_ms THEN
        RETURN dbops._purge_stop(st, 'partial', NULL,
                                 format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag',
                                        st.max_run_time, round(st.lag::numeric)));
    END IF;
    st.phase := 'batch';
    RETURN st;
END
$$;

-- Phase pause, what the phase before asked for (dbops._purge_wait()), so
-- that every sleep follows a COMMIT: a backoff or the lag guard's wait
-- (st.sleep_s), and after a batch, while other client sessions are running
-- a query or are in a transaction, yielding to them for the batch's time
-- times dbops.purge_yield (st.yield_ms; added to the run's paused_ms).
-- Next: the phase that asked (st.resume).
CREATE FUNCTION dbops._purge_pause(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'pause');
    IF st.sleep_s > 0 THEN
        PERFORM pg_sleep(st.sleep_s);
        st.sleep_s := 0;
    END IF;
    IF st.yield_ms > 0 THEN
        -- production first
        IF dbops._purge_busy_sessions() > 0 THEN
            PERFORM pg_sleep(st.yield_ms * st.yield_factor / 1000.0);
            UPDATE dbops.purge_runs r
               SET paused_ms = r.paused_ms + round(st.yield_ms * st.yield_factor)::bigint
             WHERE r.run_id = st.run;
        END IF;
        st.yield_ms := 0;
    END IF;
    st.phase := st.resume;
    RETURN st;
END
$$;

-- Phase record: the run's outcome in its purge_runs row (done, unless a
-- phase stopped it otherwise); a message quoted from an error (the table
-- owner's trigger's, say) is kept to 500 characters.  Committed before the
-- policy's lock goes.  Next: release.
CREATE FUNCTION dbops._purge_record(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'record');
    UPDATE dbops.purge_runs r
       SET status = coalesce(st.status, 'done'), finished = clock_timestamp(),
           sqlstate = st.sqlstate,
           message = CASE WHEN length(st.message) > 500 THEN left(st.message, 500) || '...'
                          ELSE st.message END
     WHERE r.run_id = st.run;
    st.phase := 'release';
    RETURN st;
END
$$;

-- Phase release: the policy's lock goes, and a NOTICE (done, partial) or
-- a WARNING with a hint (failed, skipped) says how its run went; a failed
-- or skipped policy is kept for the CALL's error.  Next: policy.
CREATE FUNCTION dbops._purge_release(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pv record;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'release');
    PERFORM dbops._purge_unlock(st.policy_id);
    SELECT * INTO v_pv FROM dbops.purge_runs r WHERE r.run_id = st.run;
    IF v_pv.status IN ('failed', 'skipped') THEN
        st.failures := st.failures || format('%s: %s', st.relname, v_pv.message);
        st.first_state := coalesce(st.first_state, v_pv.sqlstate);
        IF v_pv.status = 'skipped' THEN
            st.nskipped := st.nskipped + 1;
        END IF;
        RAISE WARNING 'purge of % %: %', st.relname, v_pv.status, v_pv.message
            USING DETAIL = format('SQLSTATE %s; see dbops.purge_runs run_id %s', v_pv.sqlstate, st.run),
                  HINT = CASE WHEN v_pv.status = 'skipped' AND v_pv.sqlstate = '42501'
                              THEN 'The table''s owner (or a member of the owning role) adopts the policy with dbops.alter_retention_policy(), or removes it with dbops.remove_retention_policy().'
                              WHEN v_pv.status = 'skipped' AND v_pv.sqlstate = '22023'
                              THEN 'Give the policy limits in range with dbops.alter_retention_policy(): keep and max_run_time at most 1000 years.'
                              WHEN v_pv.status = 'skipped'
                              THEN 'The policy no longer names a table the purge may touch: remove it with dbops.remove_retention_policy().'
                              WHEN v_pv.sqlstate = '55000' THEN format('CREATE INDEX CONCURRENTLY ON %s (%I);', st.relname, st.time_column)
                              WHEN v_pv.sqlstate IN ('42703', '42804')
                              THEN 'Point the policy at a timestamptz, timestamp or date column with dbops.alter_retention_policy(relation, time_column => ...), or remove it.'

                              WHEN v_pv.sqlstate = '42P01' THEN 'Remove the policy with dbops.remove_retention_policy().'
                              ELSE 'Fix the cause and CALL dbops.purge() again; committed batches stay deleted.' END;
    ELSE
        RAISE NOTICE '%: % rows deleted in % batches (longest % ms)%; %',
            st.relname, v_pv.rows_deleted, v_pv.batches, round(v_pv.longest_batch_ms),
            CASE WHEN v_pv.partitions_dropped + v_pv.partitions_detached > 0
                 THEN format(', %s partitions dropped, %s detached', v_pv.partitions_dropped, v_pv.partitions_detached)
                 ELSE '' END,
            v_pv.status || coalesce(': ' || v_pv.message, '');
    END IF;
    st.phase := 'policy';
    RETURN st;
END
$$;

-- Phase finish, after the last policy: committed work stays; a failed or
-- skipped policy still fails the CALL (and a scheduled job) so that it is
-- noticed.  Next: done.
CREATE FUNCTION dbops._purge_finish(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'finish');
    IF cardinality(st.failures) > 0 THEN
        RAISE EXCEPTION 'purge % for % polic%: %',
                CASE WHEN st.nskipped = 0 THEN 'failed'
                     WHEN st.nskipped = cardinality(st.failures) THEN 'skipped'
                     ELSE 'failed or skipped' END,
                cardinality(st.failures),
                CASE WHEN cardinality(st.failures) = 1 THEN 'y' ELSE 'ies' END,
                array_to_string(st.failures, '; ')
            USING ERRCODE = coalesce(st.first_state, 'P0001'),
                  HINT = 'dbops.purge_runs has the details; batches committed before the failure stay deleted.';
    END IF;
    st.phase := 'done';
    RETURN st;
END
$$;

-- When a phase failed or was cancelled (dbops.purge() caught its error,
-- SQLSTATE code): the run st was in, if still running, is recorded as
-- failed or, for a cancel or statement_timeout (57014), interrupted, to be
-- committed before the error is raised again.  Returns the hint that error
-- then carries: its own (hint), or what purge_runs now says.
CREATE FUNCTION dbops._purge_abort(st dbops._purge_state, code text, message text, hint text)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE dbops.purge_runs r
       SET status = CASE WHEN code = '57014' THEN 'interrupted' ELSE 'failed' END,
           finished = clock_timestamp(), sqlstate = code,
           message = CASE WHEN length(_purge_abort.message) > 500 THEN left(_purge_abort.message, 500) || '...'
                          ELSE _purge_abort.message END
     WHERE r.run_id = st.run AND r.status = 'running';
    RETURN CASE WHEN code = '57014'
                THEN 'The run is recorded as interrupted in dbops.purge_runs; its committed batches stay deleted. CALL dbops.purge() again to go on.'
                WHEN hint <> '' THEN hint
                ELSE 'The run is recorded as failed in dbops.purge_runs; its committed batches stay deleted.' END;
END
$$;

-- A procedure, because it commits between phases; for the same reason it
-- cannot carry a SET search_path clause.  So its own statements depend on
-- no search_path: schema-qualified calls of dbops functions (whose
-- search_path is pinned) with arguments of their exact types, variables of
-- schema-qualified types, schema-qualified operators, and COMMIT.  It runs
-- the phases, each in a transaction of its own (the first three in the
-- first one):
--   start        guards and settings
--   dry_run      dry_run => true: NOTICEs of what would be deleted; or
--   policies     the policies to purge
--   policy       the next policy: its lock and its run row
--   partition    one old partition detached (and dropped)
--   target       the next table to delete rows from
--   batch        one batch of rows
--   lag          waiting while a standby lags
--   pause        a backoff, or yielding to busy sessions
--   record       the run's outcome
--   release      the policy's lock, its NOTICE or WARNING
--   finish       the CALL's error if a policy failed or was skipped
-- A phase that fails or is cancelled (the user's cancel, statement_timeout)
-- is caught, its run recorded as failed or interrupted (dbops._purge_abort())
-- and committed, and the error raised again: the CALL ends with it,
-- purge_runs tells the truth, and the session lock on the policy goes with
-- the transaction the error ends.
CREATE OR REPLACE PROCEDURE dbops.purge(relation regclass DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    v_st dbops._purge_state;
    v_caught pg_catalog.bool := false;
    v_state pg_catalog.text;
    v_msg pg_catalog.text;
    v_detail pg_catalog.text;
    v_hint pg_catalog.text;
BEGIN
    v_st := dbops._purge_start(purge.relation, purge.dry_run, pg_catalog.current_setting('search_path'));
    IF purge.dry_run THEN
        v_st := dbops._purge_dry_run(v_st);
    ELSE
        v_st := dbops._purge_policies(v_st);
    END IF;
    WHILE v_st.phase OPERATOR(pg_catalog.<>) 'done' LOOP
        COMMIT;
        BEGIN
            CASE
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'policy' THEN v_st := dbops._purge_policy(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'partition' THEN v_st := dbops._purge_partition(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'target' THEN v_st := dbops._purge_target(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'batch' THEN v_st := dbops._purge_batch(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'lag' THEN v_st := dbops._purge_lag(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'pause' THEN v_st := dbops._purge_pause(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'record' THEN v_st := dbops._purge_record(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'release' THEN v_st := dbops._purge_release(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'finish' THEN v_st := dbops._purge_finish(v_st);
            END CASE;
        EXCEPTION WHEN query_canceled OR OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            v_caught := true;
        END;
        IF v_caught THEN
            v_hint := dbops._purge_abort(v_st, v_state, v_msg, v_hint);
            COMMIT;
            IF v_detail IS NULL OR v_detail OPERATOR(pg_catalog.=) '' THEN
                RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, HINT = v_hint;
            END IF;
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, DETAIL = v_detail, HINT = v_hint;
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION dbops._purge_require_phase(dbops._purge_state, text),
    dbops._purge_stop(dbops._purge_state, text, text, text),
    dbops._purge_wait(dbops._purge_state, double precision),
    dbops._purge_backoff(dbops._purge_state, text),
    dbops._purge_target_gone(regclass, regclass, text),
    dbops._purge_start(regclass, boolean, text),
    dbops._purge_dry_run(dbops._purge_state),
    dbops._purge_policies(dbops._purge_state),
    dbops._purge_policy(dbops._purge_state),
    dbops._purge_partition(dbops._purge_state),
    dbops._purge_target(dbops._purge_state),
    dbops._purge_batch(dbops._purge_state),
    dbops._purge_lag(dbops._purge_state),
    dbops._purge_pause(dbops._purge_state),
    dbops._purge_record(dbops._purge_state),
    dbops._purge_release(dbops._purge_state),
    dbops._purge_finish(dbops._purge_state),
    dbops._purge_abort(dbops._purge_state, text, text, text) FROM PUBLIC;

-- pg_dump keeps the purge history and the policy and run sequences (1.0
-- dumped the policy rows only: a restored database handed out ids already
-- taken, and lost its purge history).
SELECT pg_catalog.pg_extension_config_dump('dbops.retention_policies_policy_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.purge_runs', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.purge_runs_run_id_seq', '');

-- ------------------------------------------------------------- schedule.sql

-- Every function pins search_path = pg_catalog, pg_temp and names everything
-- by schema, and so do the job commands schedule() writes; cron_jobs() shows
-- a job's messages only to its owner and superusers.

CREATE OR REPLACE FUNCTION dbops.cron_status(
    OUT loaded boolean, OUT cron_database text, OUT installed boolean,
    OUT version text, OUT log_run boolean, OUT timezone text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_cron_status'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops.require_pg_cron()
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

CREATE OR REPLACE FUNCTION dbops.cron_jobs(
    OUT job_name text, OUT jobid bigint, OUT database text, OUT username text,
    OUT schedule text, OUT active boolean, OUT is_dbops boolean,
    OUT last_start timestamptz, OUT last_duration interval, OUT last_status text,
    OUT last_message text, OUT failures_24h bigint,
    OUT next_run timestamptz, OUT missed_run timestamptz, OUT command text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_cron_jobs'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops.schedule(
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

CREATE OR REPLACE FUNCTION dbops.unschedule(
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

-- ---------------------------------------------------------------------------
-- health checks long_transaction and xmin_horizon: their default thresholds
-- (src/health.sql seeds the same rows in a fresh install).  A row set under
-- 1.0 with the 1.1 library (whose registry already knows both checks) is
-- kept: an INSERT of an existing check would update it to the defaults.
-- ---------------------------------------------------------------------------
INSERT INTO dbops.health_thresholds (check_name, warning, critical)
SELECT v.check_name, v.warning, v.critical
FROM (VALUES ('long_transaction', 600, 3600),            -- seconds
             ('xmin_horizon', 10000000, 100000000))      -- transactions
     AS v (check_name, warning, critical)
WHERE NOT EXISTS (SELECT FROM dbops.health_thresholds t
                  WHERE t.check_name OPERATOR(pg_catalog.=) v.check_name);

-- ---------------------------------------------------------------------------
-- dbops.health_report(): the report as text for a terminal
-- ---------------------------------------------------------------------------
-- The report as text for a terminal: a summary line, then every check that
-- is not ok with its value, thresholds, detail and hint, wrapped at width
-- columns, then a line naming the checks that are ok.  It runs as its
-- caller and shows what dbops.health() shows them.
CREATE FUNCTION dbops.health_report(width integer DEFAULT 100) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the paragraphs to wrap: the first line's prefix, the next lines'
    -- prefix, the text (NULL: an empty line)
    v_first text[] := '{}';
    v_next text[] := '{}';
    v_body text[] := '{}';
    v_out text[] := '{}';
    v_statuses text[] := '{}';
    v_ok text[] := '{}';
    v_counts text;
    v_row record;
    v_line text;
    v_word text;
    v_chunk text;
    v_empty boolean;
BEGIN
    IF width IS NULL THEN
        RAISE EXCEPTION 'width must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the width of the terminal in columns, e.g. 100.';
    END IF;
    IF width < 40 OR width > 1000 THEN
        RAISE EXCEPTION 'width must be between 40 and 1000 columns, not %', width
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the width of the terminal in columns, e.g. 100.';
    END IF;

    -- one call of dbops.health(), worst first; no table (a standby has none)
    FOR v_row IN SELECT * FROM dbops.health() h
    LOOP
        v_statuses := v_statuses || v_row.status;
        IF v_row.status = 'ok' THEN
            v_ok := v_ok || v_row.check_name;
            CONTINUE;
        END IF;
        v_first := v_first || ''::text || rpad(upper(v_row.status), 10);
        v_next := v_next || ''::text || repeat(' ', 10);
        v_body := v_body || NULL::text
               || format('%s: %s%s', v_row.check_name,
                         coalesce(trim_scale(v_row.value)::text || coalesce(' ' || v_row.unit, ''),
                                  'no value'),
                         coalesce(' (' || concat_ws(', ', 'warning ' || trim_scale(v_row.warning),
                                                    'critical ' || trim_scale(v_row.critical)) || ')', ''));
        IF coalesce(v_row.detail, '') <> '' THEN
            v_first := v_first || '    '::text;
            v_next := v_next || '    '::text;
            v_body := v_body || v_row.detail;
        END IF;
        IF coalesce(v_row.hint, '') <> '' THEN
            v_first := v_first || '    hint: '::text;
            v_next := v_next || repeat(' ', 10);
            v_body := v_body || v_row.hint;
        END IF;
    END LOOP;
    IF cardinality(v_ok) > 0 THEN
        v_first := v_first || ''::text || format('ok (%s): ', cardinality(v_ok));
        v_next := v_next || ''::text || '    '::text;
        v_body := v_body || NULL::text || array_to_string(v_ok, ', ');
    END IF;

    -- wrap each paragraph at width: words move to the next line, a word
    -- longer than a line is cut
    FOR i IN 1 .. cardinality(v_body)
    LOOP
        IF v_body[i] IS NULL THEN
            v_out := v_out || ''::text;
            CONTINUE;
        END IF;
        v_line := v_first[i];
        v_empty := true;
        FOREACH v_word IN ARRAY regexp_split_to_array(btrim(v_body[i]), '\s+')
        LOOP
            IF NOT v_empty AND length(v_line) + 1 + length(v_word) > width THEN
                v_out := v_out || v_line;
                v_line := v_next[i];
                v_empty := true;
            END IF;
            WHILE length(v_line) + length(v_word) + CASE WHEN v_empty THEN 0 ELSE 1 END > width
            LOOP
                IF NOT v_empty THEN
                    v_out := v_out || v_line;
                    v_line := v_next[i];
                    v_empty := true;
                END IF;
                v_chunk := left(v_word, width - length(v_line));
                v_out := v_out || (v_line || v_chunk);
                v_line := v_next[i];
                v_word := substr(v_word, length(v_chunk) + 1);
            END LOOP;
            IF v_word <> '' THEN
                v_line := v_line || CASE WHEN v_empty THEN '' ELSE ' ' END || v_word;
                v_empty := false;
            END IF;
        END LOOP;
        v_out := v_out || v_line;
    END LOOP;

    SELECT string_agg(c.n || ' ' || c.status, ', '
                      ORDER BY array_position(ARRAY['critical', 'warning', 'unknown', 'skipped', 'ok'], c.status))
      INTO v_counts
      FROM (SELECT u.status, count(*) AS n FROM unnest(v_statuses) AS u (status)
             GROUP BY u.status) c;
    RETURN format('dbops health: %s (%s) in database %s at %s',
                  upper(dbops.health_overall(v_statuses)), coalesce(v_counts, 'no checks'),
                  quote_ident(current_database()),
                  to_char(now(), 'YYYY-MM-DD HH24:MI:SS TZ'))
           || CASE WHEN cardinality(v_out) > 0 THEN E'\n' || array_to_string(v_out, E'\n') ELSE '' END;
END
$$;
COMMENT ON FUNCTION dbops.health_report(integer) IS
    'The health report as text for a terminal: a summary line, every check that is not ok, then the ok ones';

-- ---------------------------------------------------------------------------
-- relation_sizes(): table, TOAST and index sizes per table
-- ---------------------------------------------------------------------------

-- One row per table and materialized view of the database, largest first, from one pass over pg_class and pg_index: sizes
-- are relpages (as VACUUM, ANALYZE and CREATE INDEX left them) times the
-- block size, which takes no lock and opens no file; a relation PostgreSQL
-- has not measured yet (reltuples < 0) is measured with pg_relation_size().
-- exact => true measures every relation (as the runbook's
-- pg_total_relation_size() query does, with its cost and its locks).  The
-- share is of all tables of the database, system catalogs included, which
-- are listed with include_system => true.
CREATE FUNCTION dbops.relation_sizes(
    limit_rows integer DEFAULT 50,
    exact boolean DEFAULT false,
    include_system boolean DEFAULT false,
    OUT relation regclass, OUT kind text,
    OUT table_bytes bigint, OUT toast_bytes bigint, OUT index_bytes bigint,
    OUT total_bytes bigint, OUT rows_estimate bigint, OUT share_pct numeric,
    OUT estimated boolean)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- the catalog join is costed high enough for JIT, whose compilation takes
-- longer than the query (10x at 3,000 tables)
SET jit = off
AS $$
BEGIN
    IF limit_rows IS NULL OR exact IS NULL OR include_system IS NULL THEN
        RAISE EXCEPTION '% must not be NULL',
                        CASE WHEN limit_rows IS NULL THEN 'limit_rows'
                             WHEN exact IS NULL THEN 'exact' ELSE 'include_system' END
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass how many tables to list (e.g. 50, 0 for all), whether to measure every relation (false: use the catalog''s page counts) and whether to list system catalogs.';
    END IF;
    IF limit_rows < 0 THEN
        RAISE EXCEPTION 'limit_rows must be zero or more, not %', limit_rows
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how many tables to list, largest first; 0 lists them all.';
    END IF;
    RETURN QUERY
    WITH bs AS (
        SELECT current_setting('block_size')::bigint AS b
    ), rel AS (
        -- each relation with storage: its size, measured or from relpages
        SELECT c.oid, c.relkind, c.relnamespace, c.reltoastrelid, c.reltuples,
               CASE WHEN exact OR c.reltuples < 0
                    -- all forks; 0 for a relation dropped meanwhile
                    THEN coalesce(pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
                                  + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init'), 0)
                    -- a vacuumed heap also has a free space map (three pages,
                    -- and a leaf per ~4000 heap pages) and a visibility map
                    -- (a page per ~32000), as the health report counts them
                    ELSE (c.relpages::bigint
                          + CASE WHEN c.relpages > 0 AND c.relkind IN ('r', 'm', 't')
                                 THEN 2 + (c.relpages + 4068) / 4069 + (c.relpages + 32639) / 32640
                                 ELSE 0 END) * (SELECT b FROM bs) END AS bytes,
               exact OR c.reltuples < 0 AS measured
          FROM pg_class c
         WHERE c.relkind IN ('r', 'm', 't', 'i')
           AND c.relpersistence <> 't'
    ), idx AS (
        SELECT i.indrelid, sum(r.bytes) AS bytes, bool_and(r.measured) AS measured
          FROM pg_index i JOIN rel r ON r.oid = i.indexrelid
         GROUP BY i.indrelid
    ), tbl AS (
        SELECT t.oid, t.relkind, t.relnamespace, t.reltuples, t.bytes AS table_bytes,
               coalesce(tt.bytes, 0) + coalesce(ti.bytes, 0) AS toast_bytes,
               coalesce(ix.bytes, 0) AS index_bytes,
               t.measured AND coalesce(tt.measured, true) AND coalesce(ti.measured, true)
                   AND coalesce(ix.measured, true) AS measured
          FROM rel t
          LEFT JOIN rel tt ON tt.oid = t.reltoastrelid
          LEFT JOIN idx ti ON ti.indrelid = t.reltoastrelid
          LEFT JOIN idx ix ON ix.indrelid = t.oid
         WHERE t.relkind IN ('r', 'm')
    ), total AS (
        SELECT sum(tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes) AS bytes FROM tbl
    )
    SELECT tbl.oid::regclass,
           CASE tbl.relkind WHEN 'r' THEN 'table' ELSE 'materialized view' END,
           tbl.table_bytes::bigint, tbl.toast_bytes::bigint, tbl.index_bytes::bigint,
           (tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes)::bigint,
           CASE WHEN tbl.reltuples >= 0 THEN tbl.reltuples::bigint END,
           round(100.0 * (tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes)
                 / NULLIF((SELECT t.bytes FROM total t), 0), 2),
           NOT tbl.measured
      FROM tbl
     WHERE include_system
        OR tbl.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
     ORDER BY tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes DESC, tbl.oid
     LIMIT NULLIF(limit_rows, 0);
END
$$;
COMMENT ON FUNCTION dbops.relation_sizes(integer, boolean, boolean) IS
    'Table, TOAST and index sizes per table, largest first, from the catalog''s page counts (exact => true measures them)';

-- ---------------------------------------------------------------------------
-- health check disk_space: its default thresholds (% free, lower is worse;
-- src/health.sql seeds the same row), kept if a row already exists
-- ---------------------------------------------------------------------------
INSERT INTO dbops.health_thresholds (check_name, warning, critical)
SELECT 'disk_space', 20, 10
WHERE NOT EXISTS (SELECT FROM dbops.health_thresholds t
                  WHERE t.check_name OPERATOR(pg_catalog.=) 'disk_space');
-- health check slow_queries: its default thresholds (src/health.sql seeds
-- the same row in a fresh install), in ms of a statement's mean execution
-- time.  A row set under 1.0 with the 1.1 library is kept, as above.
-- ---------------------------------------------------------------------------
INSERT INTO dbops.health_thresholds (check_name, warning, critical)
SELECT v.check_name, v.warning, v.critical
FROM (VALUES ('slow_queries', 500, 5000))                -- ms
     AS v (check_name, warning, critical)
WHERE NOT EXISTS (SELECT FROM dbops.health_thresholds t
                  WHERE t.check_name OPERATOR(pg_catalog.=) v.check_name);


-- ---------------------------------------------------------------------------
-- statements: dbops.top_queries() (src/statements.sql)
-- ---------------------------------------------------------------------------

-- pg_stat_statements is optional and may be installed in any schema: it is
-- found through pg_extension and read with dynamic SQL, as the caller, so
-- its own rules decide whose query texts the caller sees.  Its columns
-- differ between versions (blk_read_time in 15, shared_ and local_
-- blk_read_time from 17 on): the view's own columns decide what is read.
CREATE FUNCTION dbops.top_queries(
    order_by text DEFAULT 'total_time',
    limit_rows integer DEFAULT 20,
    all_databases boolean DEFAULT false)
RETURNS TABLE (
    queryid bigint,
    userid oid,
    username name,
    dbid oid,
    datname name,
    calls bigint,
    total_exec_time_ms double precision,
    mean_exec_time_ms double precision,
    rows bigint,
    shared_blks_hit bigint,
    shared_blks_read bigint,
    local_blks_hit bigint,
    local_blks_read bigint,
    temp_blks_written bigint,
    blk_read_time_ms double precision,
    blk_write_time_ms double precision,
    wal_bytes numeric,
    total_plan_time_ms double precision,
    share_pct double precision,
    query text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_orders constant text[] := '{total_time,mean_time,calls,rows,shared_blks_read,temp_blks_written,io_time,wal_bytes,plan_time}';
    v_sorts constant text[] := '{total_exec_time_ms,mean_exec_time_ms,calls,rows,shared_blks_read,temp_blks_written,io_time_ms,wal_bytes,total_plan_time_ms}';
    v_schema name;
    v_cols text[];
    v_io boolean;
    v_plan boolean;
    v_read text;
    v_write text;
BEGIN
    IF top_queries.order_by IS NULL THEN
        RAISE EXCEPTION 'order_by must not be NULL'
            USING ERRCODE = '22004',
                  HINT = 'Pass one of ' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(v_orders, ', ')
                         OPERATOR(pg_catalog.||) ', or leave it out for total_time.';
    END IF;
    IF NOT top_queries.order_by OPERATOR(pg_catalog.=) ANY (v_orders) THEN
        RAISE EXCEPTION 'unknown order_by "%"',
            CASE WHEN pg_catalog.length(top_queries.order_by) OPERATOR(pg_catalog.>) 64
                 THEN pg_catalog.left(top_queries.order_by, 64) OPERATOR(pg_catalog.||) '...'
                 ELSE top_queries.order_by END
            USING ERRCODE = '22023',
                  HINT = 'Pass one of ' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(v_orders, ', ')
                         OPERATOR(pg_catalog.||) ' (in lower case).';
    END IF;
    IF top_queries.limit_rows IS NULL OR top_queries.limit_rows OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'limit_rows must be a positive number of rows'
            USING ERRCODE = CASE WHEN top_queries.limit_rows IS NULL THEN '22004' ELSE '22023' END,
                  HINT = 'For example dbops.top_queries(''total_time'', 20).';
    END IF;
    IF top_queries.all_databases IS NULL THEN
        RAISE EXCEPTION 'all_databases must not be NULL'
            USING ERRCODE = '22004',
                  HINT = 'Pass true for the statements of every database, false for this one''s.';
    END IF;

    SELECT n.nspname INTO v_schema
    FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
    WHERE e.extname OPERATOR(pg_catalog.=) 'pg_stat_statements';
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'pg_stat_statements is not installed in database "%"', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'Add pg_stat_statements to shared_preload_libraries (this needs a restart), then run CREATE EXTENSION pg_stat_statements in this database.';
    END IF;
    IF NOT pg_catalog.has_schema_privilege(v_schema::pg_catalog.text, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for schema %', v_schema
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('pg_stat_statements is installed in schema %I: GRANT USAGE ON SCHEMA %I to the role.',
                                           v_schema, v_schema);
    END IF;
    -- installed but not preloaded: its variables are not defined (at most
    -- placeholders, of type string)
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_settings s
                   WHERE s.name OPERATOR(pg_catalog.=) 'pg_stat_statements.max'
                     AND s.vartype OPERATOR(pg_catalog.=) 'integer') THEN
        RAISE EXCEPTION 'pg_stat_statements is installed in database "%" but not loaded', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'Add pg_stat_statements to shared_preload_libraries and restart the server.';
    END IF;

    v_cols := ARRAY(SELECT a.attname::pg_catalog.text
                    FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid OPERATOR(pg_catalog.=)
                          pg_catalog.format('%I.pg_stat_statements', v_schema)::pg_catalog.regclass
                      AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped);
    IF NOT 'total_exec_time' OPERATOR(pg_catalog.=) ANY (v_cols) THEN
        RAISE EXCEPTION 'pg_stat_statements in this database is older than version 1.8'
            USING ERRCODE = '55000',
                  HINT = 'Run ALTER EXTENSION pg_stat_statements UPDATE.';
    END IF;

    -- I/O timing only where track_io_timing is on, planning time only where
    -- pg_stat_statements.track_planning is: NULL, not 0, where not tracked
    v_io := pg_catalog.current_setting('track_io_timing') OPERATOR(pg_catalog.=) 'on';
    v_plan := COALESCE(pg_catalog.current_setting('pg_stat_statements.track_planning', true), 'off')
              OPERATOR(pg_catalog.=) 'on'
              AND 'total_plan_time' OPERATOR(pg_catalog.=) ANY (v_cols);
    IF NOT v_io THEN
        v_read := 'NULL::pg_catalog.float8';
        v_write := v_read;
    ELSIF 'shared_blk_read_time' OPERATOR(pg_catalog.=) ANY (v_cols) THEN
        v_read := 's.shared_blk_read_time OPERATOR(pg_catalog.+) s.local_blk_read_time';
        v_write := 's.shared_blk_write_time OPERATOR(pg_catalog.+) s.local_blk_write_time';
    ELSE
        v_read := 's.blk_read_time';
        v_write := 's.blk_write_time';
    END IF;

    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT q.queryid, q.userid, q.username, q.dbid, q.datname, q.calls,'
        '       q.total_exec_time_ms, q.mean_exec_time_ms, q.rows, q.shared_blks_hit,'
        '       q.shared_blks_read, q.local_blks_hit, q.local_blks_read, q.temp_blks_written,'
        '       q.blk_read_time_ms, q.blk_write_time_ms, q.wal_bytes, q.total_plan_time_ms,'
        '       q.share_pct, q.query'
        ' FROM (SELECT s.queryid, s.userid, r.rolname AS username, s.dbid, d.datname, s.calls,'
        '              s.total_exec_time AS total_exec_time_ms, s.mean_exec_time AS mean_exec_time_ms,'
        '              s.rows, s.shared_blks_hit, s.shared_blks_read, s.local_blks_hit,'
        '              s.local_blks_read, s.temp_blks_written,'
        '              %1$s AS blk_read_time_ms, %2$s AS blk_write_time_ms,'
        '              (%1$s) OPERATOR(pg_catalog.+) (%2$s) AS io_time_ms,'
        '              %3$s AS wal_bytes, %4$s AS total_plan_time_ms,'
        '              100::pg_catalog.float8 OPERATOR(pg_catalog.*) s.total_exec_time'
        '                OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(s.total_exec_time) OVER (), 0::pg_catalog.float8)'
        '                AS share_pct,'
        '              s.query'
        '       FROM %5$I.pg_stat_statements AS s'
        '       LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) s.userid'
        '       LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid'
        '       WHERE $1 OR s.dbid OPERATOR(pg_catalog.=)'
        '             (SELECT d2.oid FROM pg_catalog.pg_database d2'
        '              WHERE d2.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())) AS q'
        ' ORDER BY q.%6$I DESC NULLS LAST, q.total_exec_time_ms DESC, q.queryid'
        ' LIMIT $2',
        v_read, v_write,
        CASE WHEN 'wal_bytes' OPERATOR(pg_catalog.=) ANY (v_cols) THEN 's.wal_bytes' ELSE 'NULL::pg_catalog.numeric' END,
        CASE WHEN v_plan THEN 's.total_plan_time' ELSE 'NULL::pg_catalog.float8' END,
        v_schema,
        v_sorts[pg_catalog.array_position(v_orders, top_queries.order_by)])
    USING top_queries.all_databases, top_queries.limit_rows;
END
$$;

REVOKE ALL ON FUNCTION dbops.top_queries(text, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.top_queries(text, integer, boolean) TO pg_monitor;

-- ---------------------------------------------------------------------------
-- index advice: dbops.index_advice() and the health checks unused_indexes,
-- duplicate_indexes, fk_without_index and seq_scan_tables with their default
-- thresholds (src/health.sql has the same in a fresh install).  A row set
-- under 1.0 with the 1.1 library is kept, as for long_transaction above.
-- ---------------------------------------------------------------------------
INSERT INTO dbops.health_thresholds (check_name, warning, critical)
SELECT v.check_name, v.warning, v.critical
FROM (VALUES ('unused_indexes', 1024, NULL::pg_catalog.numeric),    -- MB of unused indexes
             ('duplicate_indexes', 1, NULL),             -- indexes
             ('fk_without_index', 1, NULL),              -- foreign keys
             ('seq_scan_tables', 5, NULL))               -- tables
     AS v (check_name, warning, critical)
WHERE NOT EXISTS (SELECT FROM dbops.health_thresholds t
                  WHERE t.check_name OPERATOR(pg_catalog.=) v.check_name);

CREATE FUNCTION dbops.index_advice(
    OUT kind text, OUT relation regclass, OUT index regclass,
    OUT detail text, OUT size_bytes bigint, OUT suggestion text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_index_advice'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.index_advice() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.index_advice() TO pg_monitor;
COMMENT ON FUNCTION dbops.index_advice() IS
    'Index advice: one row per unused, duplicate or redundant index, foreign key without an index, or table read mostly by large sequential scans';

-- ---------------------------------------------------------------------------
-- the health checks stale_statistics and table_freeze_age with their default
-- thresholds (src/health.sql has the same in a fresh install).
-- ---------------------------------------------------------------------------
INSERT INTO dbops.health_thresholds (check_name, warning, critical)
SELECT v.check_name, v.warning, v.critical
FROM (VALUES ('stale_statistics', 24, 168::pg_catalog.numeric),     -- hours without ANALYZE
             ('table_freeze_age', 125, 250))             -- % of the freeze limit
     AS v (check_name, warning, critical)
WHERE NOT EXISTS (SELECT FROM dbops.health_thresholds t
                  WHERE t.check_name OPERATOR(pg_catalog.=) v.check_name);

-- ---------------------------------------------------------------------------
-- checks written in SQL: dbops.custom_checks, dbops.add_check() and
-- dbops.remove_check() (src/health.sql has the same in a fresh install).
-- ---------------------------------------------------------------------------
-- Checks written in SQL (1.1): dbops.add_check() registers a query as a
-- check that dbops.health() runs after its own, as the role that added it
-- (read-only, in a security-restricted operation, search_path pinned to
-- pg_catalog, pg_temp); its thresholds are a row of dbops.health_thresholds.
-- The definitions are public, as views' are: every reader of the report
-- sees what the checks find.
CREATE TABLE dbops.custom_checks (
    check_name  text PRIMARY KEY,
    query       text NOT NULL,
    direction   text NOT NULL DEFAULT 'higher_is_worse'
                CHECK (direction IN ('higher_is_worse', 'lower_is_worse')),
    unit        text,
    hint        text,
    owner       regrole NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE dbops.custom_checks IS
    'Health checks added with dbops.add_check(): one row per check, run as its owner';
GRANT SELECT ON dbops.custom_checks TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dbops.custom_checks', '');

CREATE FUNCTION dbops.add_check(
    check_name text, query text,
    warning numeric DEFAULT NULL, critical numeric DEFAULT NULL,
    direction text DEFAULT 'higher_is_worse',
    unit text DEFAULT NULL, hint text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'dbops_add_check'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.add_check(text, text, numeric, numeric, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION dbops.add_check(text, text, numeric, numeric, text, text, text) IS
    'Registers a SELECT returning one number (and optionally a detail) as a health check run with the caller''s rights';

CREATE FUNCTION dbops.remove_check(check_name text)
RETURNS void
AS 'MODULE_PATHNAME', 'dbops_remove_check'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.remove_check(text) FROM PUBLIC;
COMMENT ON FUNCTION dbops.remove_check(text) IS
    'Removes a health check added with dbops.add_check(), with its thresholds';

-- ---------------------------------------------------------------------------
-- migration_events: the retries of dbops.migrate() after its lock_timeout
-- ---------------------------------------------------------------------------
ALTER TABLE dbops.migration_events
    DROP CONSTRAINT migration_events_event_check,
    ADD CONSTRAINT migration_events_event_check
        CHECK (event IN ('apply', 'skip', 'rollback', 'baseline',
                         'repair', 'import', 'failed', 'retry'));
COMMENT ON TABLE dbops.migration_events IS
    'Append-only history of the migration ledger: apply, skip, rollback, baseline, repair, import, failed, retry';

-- ---------------------------------------------------------------------------
-- dbops.migration_lint(): what a migration's statements would block
-- ---------------------------------------------------------------------------
-- No SET clause: it runs no query, and resolves the body's names (tables,
-- columns, types, functions of a default) with the caller's search_path,
-- as the migration will (lint.c).
CREATE FUNCTION dbops.migration_lint(
    body text,
    allow text[] DEFAULT '{}',
    single_transaction boolean DEFAULT true,
    OUT statement integer,
    OUT hazard text,
    OUT relation text,
    OUT lock text,
    OUT blocks text,
    OUT why text,
    OUT safe_form text,
    OUT allowed boolean,
    OUT statement_text text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_migration_lint'
LANGUAGE C STABLE;
COMMENT ON FUNCTION dbops.migration_lint(text, text[], boolean) IS
    'The hazards of a migration body for a busy database, one row each: the statement, the lock it takes, what that blocks, why, and the safe form';

-- ---------------------------------------------------------------------------
-- steps outside a transaction block: dbops.migration_step_begin(), _finish()
-- ---------------------------------------------------------------------------
-- A statement that cannot run in a transaction block (CREATE INDEX
-- CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, ...) is a step: begun in a
-- transaction of its own (a row here), run by the client, finished in
-- another (the row moves to dbops.migrations).  A row whose session has
-- ended is a step that did not finish: the migrations health check reports
-- it, and the next migration_step_begin() of the version takes it over.
CREATE TABLE dbops.migration_steps (
    version          text PRIMARY KEY CHECK (btrim(version) <> ''),
    description      text,
    checksum         text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    requires         text[] NOT NULL DEFAULT '{}',
    index_name       text CHECK (pg_catalog.cardinality(pg_catalog.parse_ident(index_name))
                                 BETWEEN 1 AND 3),
    started_by       name NOT NULL DEFAULT current_user,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    backend_pid      integer NOT NULL DEFAULT pg_backend_pid(),
    backend_start    timestamptz
);
COMMENT ON TABLE dbops.migration_steps IS
    'Migration steps begun outside a transaction block (dbops.migration_step_begin) and not finished yet';
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_steps', '');
GRANT SELECT ON dbops.migration_steps TO pg_monitor;

-- Both ends of a step, under the ledger lock (action 'begin' or 'finish';
-- one function, as internal functions are not granted to each other's
-- callers).  index_name resolves with the caller's search_path, as the
-- client's CREATE INDEX resolves it; nothing else does.
--   begin:  'skipped' (decision is not 'apply'), 'open' (run the statement,
--           then finish), or 'applied' (the index is there and valid:
--           nothing to run).  An invalid index of the step's name, left by
--           a build that failed, is dropped (under the migration's
--           lock_timeout) so that the statement can build it again.
--   finish: the step's index must be there and valid; 'applied'.
-- A step open in another session that is still there is refused (DB004):
-- a pid can be reused, so its start time must match too, and a role that
-- may not see the other session's start time counts it as still there.
CREATE FUNCTION dbops._migration_step(
    action text, version text, description text, checksum text,
    requires text[], index_name text, decision text, search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step     dbops.migration_steps;
    v_name     text;
    v_index    pg_catalog.regclass;
    v_valid    boolean;
    v_message  text;
    v_finished timestamptz;
    -- messages quote at most 64 characters of a version or a name
    v_shown    text := CASE WHEN pg_catalog.length(_migration_step.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_step.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_step.version END;
    v_name_shown text;
BEGIN
    SELECT * INTO v_step FROM dbops.migration_steps s
    WHERE s.version OPERATOR(pg_catalog.=) _migration_step.version;
    IF NOT FOUND AND action OPERATOR(pg_catalog.=) 'finish' THEN
        RAISE EXCEPTION 'migration % has no step open', v_shown
            USING ERRCODE = 'DB005',
                  HINT = 'Begin the step with dbops.migration_step_begin(version, description), run its statement, then finish it.';
    END IF;
    IF FOUND AND v_step.backend_pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                   WHERE a.pid OPERATOR(pg_catalog.=) v_step.backend_pid
                     AND (a.backend_start IS NULL OR v_step.backend_start IS NULL
                          OR a.backend_start OPERATOR(pg_catalog.=) v_step.backend_start)) THEN
        RAISE EXCEPTION 'migration % has a step open in another session (pid %)',
            v_shown, v_step.backend_pid
            USING ERRCODE = 'DB004',
                  DETAIL = pg_catalog.format('%s began it at %s.', v_step.started_by, v_step.started_at),
                  HINT = 'The session that began the step finishes it; if that session is stuck, end it (pg_terminate_backend) and run the step again.';
    END IF;

    -- already applied (by this step's earlier run, or by migrate() or a
    -- baseline): nothing to run, and a step row left by an ended session
    -- goes
    IF action OPERATOR(pg_catalog.=) 'begin' AND decision OPERATOR(pg_catalog.<>) 'apply' THEN
        DELETE FROM dbops.migration_steps s WHERE s.version OPERATOR(pg_catalog.=) _migration_step.version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migration_step.version, 'skip', 'migration_step', _migration_step.checksum, decision);
        RETURN 'skipped';
    END IF;

    v_name := CASE WHEN action OPERATOR(pg_catalog.=) 'begin' THEN index_name ELSE v_step.index_name END;
    IF v_name IS NOT NULL THEN
        v_name_shown := CASE WHEN pg_catalog.length(v_name) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_name, 64) OPERATOR(pg_catalog.||) '...' ELSE v_name END;
        BEGIN
            IF pg_catalog.cardinality(pg_catalog.parse_ident(v_name)) OPERATOR(pg_catalog.>) 3 THEN
                RAISE EXCEPTION USING ERRCODE = '22023';
            END IF;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'index_name "%" is not a name', v_name_shown
                USING ERRCODE = '22023',
                      HINT = 'Give the index''s name, or schema.name, quoted as in SQL where it needs quotes.';
        END;
        PERFORM pg_catalog.set_config('search_path', _migration_step.search_path, true);
        v_index := pg_catalog.to_regclass(v_name);
        PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                      'pg_catalog, pg_temp'::pg_catalog.text, true);
        IF v_index IS NOT NULL THEN
            SELECT i.indisvalid INTO v_valid FROM pg_catalog.pg_index i
            WHERE i.indexrelid OPERATOR(pg_catalog.=) v_index;
            IF NOT FOUND THEN
                RAISE EXCEPTION '"%" is not an index', v_name_shown
                    USING ERRCODE = '42809',
                          HINT = 'index_name names the index the step''s statement builds.';
            END IF;
        END IF;
    END IF;

    IF action OPERATOR(pg_catalog.=) 'begin' THEN
        INSERT INTO dbops.migration_steps AS s
            (version, description, checksum, requires, index_name, backend_start)
        VALUES (_migration_step.version, _migration_step.description,
                _migration_step.checksum, _migration_step.requires, _migration_step.index_name,
                (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                 WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()))
        ON CONFLICT ON CONSTRAINT migration_steps_pkey DO UPDATE
            SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
                requires = EXCLUDED.requires, index_name = EXCLUDED.index_name,
                started_by = EXCLUDED.started_by, started_at = EXCLUDED.started_at,
                backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start;
        IF v_valid IS NULL THEN
            RETURN 'open';
        ELSIF NOT v_valid THEN
            RAISE NOTICE 'dropping the invalid index %, left by a build that did not finish', v_index
                USING HINT = 'The step''s statement builds it again.';
            EXECUTE pg_catalog.format('DROP INDEX %s', v_index);
            RETURN 'open';
        END IF;
        v_message := pg_catalog.format('index %s was already there and valid', v_index);
    ELSIF v_name IS NOT NULL AND v_index IS NULL THEN
        RAISE EXCEPTION 'index "%" of migration % does not exist', v_name_shown, v_shown
            USING ERRCODE = '42704',
                  HINT = 'The step''s statement did not build it: run the step again from dbops.migration_step_begin().';
    ELSIF v_name IS NOT NULL AND NOT v_valid THEN
        RAISE EXCEPTION 'index % of migration % is invalid', v_index, v_shown
            USING ERRCODE = '55000',
                  DETAIL = 'Its concurrent build failed or did not finish.',
                  HINT = 'Run the step again: dbops.migration_step_begin() drops the invalid index, and the statement builds it anew.';
    END IF;

    -- applied: the step's row moves to the ledger
    v_finished := pg_catalog.clock_timestamp();
    DELETE FROM dbops.migration_steps s
    WHERE s.version OPERATOR(pg_catalog.=) _migration_step.version
    RETURNING * INTO v_step;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, started_at, finished_at,
         duration_ms, requires)
    VALUES (v_step.version, v_step.description, v_step.checksum, 'applied',
            v_step.started_at, v_finished,
            pg_catalog.round(extract(epoch FROM v_finished OPERATOR(pg_catalog.-) v_step.started_at)
                             OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3),
            v_step.requires)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (v_step.version, 'apply', 'migration_step', v_step.checksum, v_message);
    RETURN 'applied';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_step(text, text, text, text, text[], text, text, text) FROM PUBLIC;

-- No SET clause on either: index_name resolves with the caller's
-- search_path, as the client's statement does (ledger.c).
CREATE FUNCTION dbops.migration_step_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL,
    index_name text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_step_begin'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.migration_step_begin(text, text, text, text[], boolean, text) IS
    'Begin a migration step that runs outside a transaction block (CREATE INDEX CONCURRENTLY, ...): returns open, skipped or applied';

CREATE FUNCTION dbops.migration_step_finish(version text)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_step_finish'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.migration_step_finish(text) IS
    'Finish a migration step begun with dbops.migration_step_begin(): checks its index is valid and records it applied';
-- writing functions: granted to the deploying role (doc/ledger.md, "Privileges")
REVOKE ALL ON FUNCTION dbops.migration_step_begin(text, text, text, text[], boolean, text),
    dbops.migration_step_finish(text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- backfill
-- ---------------------------------------------------------------------------

-- One row per backfill run: an UPDATE of relation with set_clause, in
-- batches of rows by key_column (a single-column unique key), restricted to
-- where_clause.  last_key is the highest key whose batch is committed: it is
-- written in the same transaction as that batch's UPDATE, so it is true
-- after a crash or a cancel, and a later CALL with the same relation, set
-- and where goes on after it.  end_key is the highest key when the run
-- started: the run covers the rows up to it.
CREATE TABLE dbops.backfill_runs (
    run_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation            regclass NOT NULL,
    set_clause          text NOT NULL,
    where_clause        text NOT NULL,
    key_column          name NOT NULL,
    key_type            text NOT NULL,
    first_key           text,
    last_key            text,
    end_key             text,
    rows_updated        bigint NOT NULL DEFAULT 0,
    rows_covered        bigint NOT NULL DEFAULT 0,
    rows_skipped_locked bigint NOT NULL DEFAULT 0,
    batches             integer NOT NULL DEFAULT 0,
    longest_batch_ms    numeric(12,3) NOT NULL DEFAULT 0,
    lock_retries        integer NOT NULL DEFAULT 0,
    paused_ms           bigint NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'partial', 'failed', 'cancelled')),
    sqlstate            text,
    message             text,
    started             timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_progress       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished            timestamptz,
    run_by              name NOT NULL DEFAULT current_user,
    pid                 integer NOT NULL DEFAULT pg_backend_pid(),
    backend_start       timestamptz
);
CREATE INDEX ON dbops.backfill_runs (relation, status);
COMMENT ON TABLE dbops.backfill_runs IS
    'One row per CALL dbops.backfill() run: progress committed with each batch, so a later CALL resumes where it stopped';
GRANT SELECT ON dbops.backfill_runs TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.backfill_runs', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.backfill_runs_run_id_seq', '');

-- Keys of rows inside a committed batch's range that the batch could not
-- update because other transactions held them locked (the SKIP LOCKED
-- fallback): the run is not done until each is updated (or found gone).
CREATE TABLE dbops.backfill_pending (
    run_id              bigint NOT NULL,
    key                 text NOT NULL,
    PRIMARY KEY (run_id, key)
);
COMMENT ON TABLE dbops.backfill_pending IS
    'Keys of rows a backfill run skipped because they were locked; updated before the run is done';
GRANT SELECT ON dbops.backfill_pending TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.backfill_pending', '');

-- Internal helpers (C, backfill.c): guards and settings; the check of the
-- caller's set and where text.
CREATE FUNCTION dbops._backfill_begin(
    OUT batch_target_ms integer, OUT batch_max integer,
    OUT lock_timeout_ms integer, OUT lock_retries integer,
    OUT max_replica_lag_ms integer, OUT yield double precision, OUT pid integer)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_backfill_begin'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION dbops._backfill_check("set" text, "where" text, key_column name)
RETURNS void
AS 'MODULE_PATHNAME', 'dbops_backfill_check'
LANGUAGE C IMMUTABLE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._backfill_begin(), dbops._backfill_check(text, text, name) FROM PUBLIC;

-- What CALL dbops.backfill() carries from one phase to the next.
CREATE TYPE dbops._backfill_state AS (
    phase               text,
    resume              text,
    run                 bigint,
    relation            regclass,
    relname             text,
    set_clause          text,
    where_clause        text,
    key_column          name,
    key_type            text,
    op_lt               text,
    op_le               text,
    op_gt               text,
    op_eq               text,
    end_key             text,
    size                integer,
    batch_target_ms     integer,
    batch_max           integer,
    lock_timeout_ms     integer,
    lock_retries        integer,
    max_replica_lag_ms  integer,
    yield_factor        double precision,
    sleep_s             double precision,
    yield_ms            numeric,
    retries             integer,
    skip_locked         boolean,
    deadline            timestamptz,
    max_run_time        interval,
    last_notice         timestamptz,
    pause_start         timestamptz,
    status              text,
    sqlstate            text,
    message             text
);
COMMENT ON TYPE dbops._backfill_state IS
    'Internal: the state CALL dbops.backfill() passes from one phase (dbops._backfill_<phase>()) to the next';

CREATE FUNCTION dbops._backfill_require_phase(st dbops._backfill_state, phase text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF st.phase IS DISTINCT FROM phase THEN
        RAISE EXCEPTION 'not a state of CALL dbops.backfill()'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('dbops._backfill_%s() is called by CALL dbops.backfill() only; use that.', phase);
    END IF;
END
$$;

-- A pause of sleep_s seconds after the COMMIT (and the yield a batch asked
-- for in st.yield_ms), taken by phase pause; then the phase st is at again.
CREATE FUNCTION dbops._backfill_wait(st dbops._backfill_state, sleep_s double precision)
RETURNS dbops._backfill_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.sleep_s := sleep_s;
    st.resume := st.phase;
    st.phase := 'pause';
    RETURN st;
END
$$;

-- The end of the run with this outcome; phase record writes it.
CREATE FUNCTION dbops._backfill_stop(st dbops._backfill_state, status text, code text, message text)
RETURNS dbops._backfill_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.status := status;
    st.sqlstate := code;
    st.message := message;
    st.phase := 'record';
    RETURN st;
END
$$;

-- The pieces of the batch statements: the range condition on the key
-- (lower bound given or not), with the operators of the key's btree
-- operator family, schema-qualified, and the key's type for the casts of
-- the parameters (printed under the pinned search_path, so qualified
-- unless it is pg_catalog's).
CREATE FUNCTION dbops._backfill_range(st dbops._backfill_state, from_value boolean)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN from_value
                THEN format('%1$I %2$s $1::%4$s AND %1$I %3$s $2::%4$s', st.key_column, st.op_gt, st.op_le, st.key_type)
                ELSE format('%1$I %2$s $2::%3$s', st.key_column, st.op_le, st.key_type) END
$$;

-- Phase start, in the CALL's first transaction: refuses a standby and a
-- transaction block (dbops._backfill_begin(), which also loads the
-- settings), checks the arguments, the key and the caller's privileges,
-- checks that set and where make one UPDATE (dbops._backfill_check()) and
-- that it plans (EXPLAIN, with the caller's rights), then finds the
-- unfinished run of the same relation, set, where and key to resume, or
-- starts one.  A finished run is not repeated unless rerun.  Next: batch,
-- or done.
CREATE FUNCTION dbops._backfill_start(relation regclass, "set" text, "where" text,
    key_column name, batch_size integer, rerun boolean, max_run_time interval)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_st dbops._backfill_state;
    v_set record;
    v_kind "char";
    v_persistence "char";
    v_nsp name;
    v_key name := key_column;
    v_attnum smallint;
    v_typid oid;
    v_typmod integer;
    v_opf oid;
    v_run dbops.backfill_runs;
    v_first text;
    v_end text;
    v_sql text;
BEGIN
    -- refuses on a standby and in a transaction block; loads the settings
    v_set := dbops._backfill_begin();
    IF relation IS NULL OR "set" IS NULL OR "where" IS NULL OR rerun IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, set, where, batch_size and rerun must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'E.g. CALL dbops.backfill(''users'', ''new_field = ''''default'''''', ''new_field IS NULL''); where defaults to ''true''.';
    END IF;
    IF batch_size < 1 OR batch_size > v_set.batch_max THEN
        RAISE EXCEPTION 'batch_size must be between 1 and dbops.purge_batch_max (%), not %', v_set.batch_max, batch_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'batch_size is the number of rows of the first batch; later ones adapt to dbops.purge_batch_target.';
    END IF;
    IF max_run_time IS NOT NULL AND (max_run_time <= interval '0' OR max_run_time > interval '1000 years') THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval of at most 1000 years, not %', max_run_time
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_run_time caps how long this CALL works, e.g. interval ''1 hour''; a later CALL resumes. NULL for no cap.';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname INTO v_kind, v_persistence, v_nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = relation;
    IF v_kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table',
                  HINT = 'Name an existing table.';
    END IF;
    IF v_kind NOT IN ('r', 'p') OR v_nsp IN ('pg_catalog', 'information_schema') THEN
        RAISE EXCEPTION '% is not a user table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'dbops.backfill() updates plain and partitioned tables (not views, foreign tables, system catalogs).';
    END IF;
    IF v_persistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A run is recorded to be resumed by a later session; update a temporary table directly.';
    END IF;

    -- the key: the single-column primary key, or the column named, which
    -- must be NOT NULL with a valid, non-partial, unique btree index of its
    -- own.  There is no ctid mode: an updated row moves to a new ctid, so
    -- batches by ctid range could meet a row twice.
    IF v_key IS NULL THEN
        SELECT a.attname INTO v_key
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = relation AND i.indisprimary AND i.indnatts = 1;
        IF v_key IS NULL THEN
            RAISE EXCEPTION '% has no single-column primary key', relation
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'dbops.backfill() walks the table in the order of a unique key, so that each row is updated exactly once even across a resume; it does not walk ctid ranges, because an updated row moves to a new ctid.',
                      HINT = 'Name a NOT NULL column with a unique index with key_column => ..., or add one: ALTER TABLE ... ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY, then CREATE UNIQUE INDEX CONCURRENTLY.';
        END IF;
    END IF;
    SELECT a.attnum, a.atttypid, a.atttypmod INTO v_attnum, v_typid, v_typmod
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = v_key AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_attnum IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', v_key, relation
            USING ERRCODE = 'undefined_column',
                  HINT = 'key_column names a NOT NULL column with a unique index; leave it NULL for the primary key.';
    END IF;
    SELECT i.indclass[0] INTO v_opf
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = v_attnum
     WHERE i.indrelid = relation AND i.indkey[0] = v_attnum AND i.indnatts = 1 AND i.indisunique
       AND (i.indisvalid OR ic.relkind = 'I') AND i.indpred IS NULL AND i.indexprs IS NULL
       AND am.amname = 'btree' AND a.attnotnull
     ORDER BY i.indisprimary DESC LIMIT 1;
    IF v_opf IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % is not a NOT NULL column with a unique btree index of its own', v_key, relation
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('CREATE UNIQUE INDEX CONCURRENTLY ON %s (%I); and make the column NOT NULL, or name another key_column.', relation, v_key);
    END IF;
    SELECT o.opcfamily INTO v_opf FROM pg_opclass o WHERE o.oid = v_opf;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_lt
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 1;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_le
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 2;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_eq
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 3;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_gt
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 5;
    IF v_st.op_lt IS NULL OR v_st.op_le IS NULL OR v_st.op_eq IS NULL OR v_st.op_gt IS NULL THEN
        RAISE EXCEPTION 'the unique index on column "%" of relation % has no btree operators for type %', v_key, relation, format_type(v_typid, NULL)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Name another key_column, whose unique index uses the default btree operator class of its type.';
    END IF;

    -- the caller's text: one SET list and one expression, never the key
    PERFORM dbops._backfill_check("set", "where", v_key);

    -- the caller's rights: what they could do by hand
    IF NOT has_column_privilege(relation, v_key, 'SELECT') OR NOT has_any_column_privilege(relation, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.backfill() runs the UPDATE with the rights of the role that calls it.',
                  HINT = format('The role needs UPDATE on the columns set assigns and SELECT on %I and the columns it reads: GRANT SELECT, UPDATE ON %s TO %I;', v_key, relation, current_user);
    END IF;

    v_st.relation := relation;
    v_st.relname := relation::text;
    v_st.set_clause := "set";
    v_st.where_clause := "where";
    v_st.key_column := v_key;
    v_st.key_type := format_type(v_typid, v_typmod);
    v_st.batch_target_ms := v_set.batch_target_ms;
    v_st.batch_max := v_set.batch_max;
    v_st.lock_timeout_ms := v_set.lock_timeout_ms;
    v_st.lock_retries := v_set.lock_retries;
    v_st.max_replica_lag_ms := v_set.max_replica_lag_ms;
    v_st.yield_factor := v_set.yield;
    v_st.size := batch_size;
    v_st.sleep_s := 0;
    v_st.yield_ms := 0;
    v_st.retries := 0;
    v_st.skip_locked := false;
    v_st.max_run_time := max_run_time;
    v_st.deadline := clock_timestamp() + max_run_time;
    v_st.last_notice := clock_timestamp();

    -- the statement plans, with the caller's rights (columns, types,
    -- privileges on what set and where read and write)
    v_sql := format('EXPLAIN (COSTS OFF) UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %s AND (' || E'\n' || '%s' || E'\n' || ')',
                    relation, "set", dbops._backfill_range(v_st, true), "where");
    BEGIN
        EXECUTE v_sql USING NULL::text, NULL::text;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = SQLERRM,
              DETAIL = 'dbops.backfill() runs the UPDATE with the rights of the role that calls it.',
              HINT = 'The role needs UPDATE on the columns set assigns and SELECT on the key and the columns set and where read, as for the same UPDATE by hand.';
    END;

    -- the run to resume, or a new one
    SELECT * INTO v_run FROM dbops.backfill_runs r
     WHERE r.relation = _backfill_start.relation AND r.set_clause = "set"
       AND r.where_clause = "where" AND r.key_column = v_key
     ORDER BY r.run_id DESC LIMIT 1
       FOR UPDATE;
    IF FOUND AND v_run.status = 'running' AND v_run.pid <> pg_backend_pid()
       AND EXISTS (SELECT FROM pg_stat_get_activity(v_run.pid) a
                    WHERE a.backend_start IS NOT DISTINCT FROM v_run.backend_start) THEN
        RAISE EXCEPTION 'backfill run % of % is running in backend %', v_run.run_id, relation, v_run.pid
            USING ERRCODE = 'object_in_use',
                  HINT = format('Wait for it (dbops.backfill_progress), or stop it with SELECT pg_cancel_backend(%s); a later CALL resumes it.', v_run.pid);
    END IF;
    IF FOUND AND v_run.status = 'done' AND NOT rerun THEN
        RAISE NOTICE 'backfill of % with this set and where is already done (run %, % rows updated)',
                v_st.relname, v_run.run_id, v_run.rows_updated
            USING HINT = 'CALL dbops.backfill(..., rerun => true) runs it again over every row.';
        v_st.phase := 'done';
        RETURN v_st;
    END IF;
    IF FOUND AND v_run.status <> 'done' THEN
        IF v_run.key_type <> v_st.key_type THEN
            RAISE EXCEPTION 'the key column "%" of % changed type since run % began (% then, % now)',
                    v_key, relation, v_run.run_id, v_run.key_type, v_st.key_type
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Start again over every row with rerun => true, with a where that skips the rows already done.';
        END IF;
        UPDATE dbops.backfill_runs r
           SET status = 'running', pid = pg_backend_pid(), sqlstate = NULL, message = NULL, finished = NULL,
               backend_start = (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a),
               last_progress = clock_timestamp()
         WHERE r.run_id = v_run.run_id;
        v_st.run := v_run.run_id;
        v_st.end_key := v_run.end_key;
        RAISE NOTICE 'resuming backfill run % of % after key % (% rows updated so far)',
                v_run.run_id, v_st.relname, coalesce(v_run.last_key, '(none)'), v_run.rows_updated;
    ELSE
        EXECUTE format('SELECT (SELECT t.%1$I::pg_catalog.text FROM %2$s t ORDER BY t.%1$I USING %3$s LIMIT 1), '
                       '(SELECT t.%1$I::pg_catalog.text FROM %2$s t ORDER BY t.%1$I USING %4$s LIMIT 1)',
                       v_key, relation, v_st.op_lt, v_st.op_gt)
           INTO v_first, v_end;
        INSERT INTO dbops.backfill_runs (relation, set_clause, where_clause, key_column, key_type,
                first_key, end_key, backend_start)
        VALUES (relation, "set", "where", v_key, v_st.key_type, v_first, v_end,
                (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a))
        RETURNING run_id INTO v_st.run;
        v_st.end_key := v_end;
    END IF;
    v_st.phase := CASE WHEN v_st.end_key IS NULL THEN 'record' ELSE 'batch' END;
    RETURN v_st;
END
$$;

-- Phase batch, one transaction: the rows after the run's last key (read
-- from its row, locked) up to the key st.size rows further (an index
-- scan), or to end_key, are updated with the caller's set where the
-- caller's where holds, and the run's row records the new last key in the
-- same transaction.  The UPDATE waits at most dbops.purge_lock_timeout for
-- its locks; after dbops.purge_lock_retries timeouts in a row (backing off
-- 0.1 s, 0.2 s, ... up to 5 s), the range is done with SKIP LOCKED: the
-- rows it could lock are updated and the keys of the others go to
-- dbops.backfill_pending.  The size adapts toward
-- dbops.purge_batch_target.  Next: batch again (through pause or lag),
-- pending at the end of the range, or record.
CREATE FUNCTION dbops._backfill_batch(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run dbops.backfill_runs;
    v_lower text;
    v_upper text;
    v_count bigint;
    v_n bigint := 0;
    v_locked text[];
    v_skipped bigint := 0;
    v_t0 timestamptz;
    v_ms numeric;
    v_old_lt text;
    v_pct text;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'batch');
    IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
        RETURN dbops._backfill_stop(st, 'partial', NULL, format('stopped at max_run_time (%s); CALL again to resume', st.max_run_time));
    END IF;
    IF st.max_replica_lag_ms > 0 AND dbops.replica_replay_lag_ms() > st.max_replica_lag_ms THEN
        st.pause_start := clock_timestamp();
        st.phase := 'lag';
        RETURN dbops._backfill_wait(st, 0.5);
    END IF;

    -- the run's row, locked: its last key is the truth
    SELECT * INTO v_run FROM dbops.backfill_runs r WHERE r.run_id = st.run FOR UPDATE;
    IF v_run.status IS DISTINCT FROM 'running' OR v_run.pid <> pg_backend_pid() THEN
        RAISE EXCEPTION 'backfill run % was taken over or ended by another session', st.run
            USING ERRCODE = 'object_in_use',
                  HINT = 'dbops.backfill_progress shows who runs it now.';
    END IF;
    v_lower := v_run.last_key;
    PERFORM set_config('datestyle', 'ISO, YMD', true);

    -- the range: up to st.size rows after the last key (index-only scan)
    v_t0 := clock_timestamp();
    EXECUTE format('SELECT pg_catalog.max(s.k)::pg_catalog.text, pg_catalog.count(*) FROM '
                   '(SELECT %1$I AS k FROM %2$s WHERE %3$s ORDER BY %1$I USING %4$s LIMIT $3) s',
                   st.key_column, st.relation, dbops._backfill_range(st, v_lower IS NOT NULL), st.op_lt)
       INTO v_upper, v_count USING v_lower, st.end_key, st.size;
    IF v_count < st.size OR v_upper IS NULL THEN
        v_upper := st.end_key;      -- the last range: up to end_key
    END IF;

    v_old_lt := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', st.lock_timeout_ms || 'ms', true);
    IF NOT st.skip_locked THEN
        BEGIN
            EXECUTE format('UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %s AND (' || E'\n' || '%s' || E'\n' || ')',
                           st.relation, st.set_clause, dbops._backfill_range(st, v_lower IS NOT NULL), st.where_clause)
               USING v_lower, v_upper;
            GET DIAGNOSTICS v_n = ROW_COUNT;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM set_config('lock_timeout', v_old_lt, true);
            st.retries := st.retries + 1;
            UPDATE dbops.backfill_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
            IF st.retries > st.lock_retries THEN
                st.skip_locked := true;     -- this range again, skipping locked rows
                RETURN st;
            END IF;
            st.size := greatest(1, st.size / 2);
            RETURN dbops._backfill_wait(st, least(0.05 * 2 ^ st.retries, 5));
        END;
    ELSE
        -- SKIP LOCKED: lock what can be locked of the range, update those
        -- rows, and keep the keys of the others for phase pending
        EXECUTE format('SELECT pg_catalog.array_agg(s.k) FROM (SELECT %1$I::pg_catalog.text AS k FROM %2$s WHERE %3$s FOR UPDATE SKIP LOCKED) s',
                       st.key_column, st.relation, dbops._backfill_range(st, v_lower IS NOT NULL))
           INTO v_locked USING v_lower, v_upper;
        v_locked := coalesce(v_locked, '{}');
        EXECUTE format('UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %I %s ANY ($3::%s[]) AND (' || E'\n' || '%s' || E'\n' || ')',
                       st.relation, st.set_clause, st.key_column, st.op_eq, st.key_type, st.where_clause)
           USING v_lower, v_upper, v_locked;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        EXECUTE format('INSERT INTO dbops.backfill_pending (run_id, key) '
                       'SELECT $4, %1$I::pg_catalog.text FROM %2$s WHERE %3$s '
                       'AND NOT (%1$I::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[])) '
                       'ON CONFLICT DO NOTHING',
                       st.key_column, st.relation, dbops._backfill_range(st, v_lower IS NOT NULL))
           USING v_lower, v_upper, v_locked, st.run;
        GET DIAGNOSTICS v_skipped = ROW_COUNT;
        st.skip_locked := false;
    END IF;
    PERFORM set_config('lock_timeout', v_old_lt, true);
    v_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;

    -- the progress, in the batch's transaction
    UPDATE dbops.backfill_runs r
       SET last_key = v_upper, rows_updated = r.rows_updated + v_n,
           rows_covered = r.rows_covered + v_count,
           rows_skipped_locked = r.rows_skipped_locked + v_skipped,
           batches = r.batches + 1, longest_batch_ms = greatest(r.longest_batch_ms, v_ms),
           last_progress = clock_timestamp()
     WHERE r.run_id = st.run
    RETURNING * INTO v_run;

    IF v_skipped = 0 AND v_count >= st.size THEN
        st.size := least(st.batch_max, greatest(10,
                       round(st.size * least(2.0, greatest(0.5, st.batch_target_ms / greatest(v_ms, 1))))::integer));
    END IF;
    st.retries := 0;
    IF clock_timestamp() - st.last_notice >= interval '10 seconds' THEN
        st.last_notice := clock_timestamp();
        SELECT p.percent_done::text INTO v_pct FROM dbops.backfill_progress p WHERE p.run_id = st.run;
        RAISE NOTICE 'backfill of %: % rows updated in % batches, at key % (% %% done)',
            st.relname, v_run.rows_updated, v_run.batches, v_upper, coalesce(v_pct, '?');
    END IF;
    IF v_upper OPERATOR(pg_catalog.=) st.end_key THEN
        st.phase := 'pending';
    END IF;
    IF st.yield_factor > 0 THEN
        st.yield_ms := v_ms;
        RETURN dbops._backfill_wait(st, 0);
    END IF;
    RETURN st;
END
$$;

-- Phase pending, after the last range: the rows batches skipped because
-- they were locked (dbops.backfill_pending), up to st.size at a time:
-- those that can be locked now (SKIP LOCKED) are updated where the
-- caller's where holds, and their keys (and those of rows gone since)
-- leave the list in the same transaction.  While none can be locked it
-- backs off; after dbops.purge_lock_retries attempts the run ends as
-- failed (55P03), to be resumed by a later CALL.  Next: pending again, or
-- record.
CREATE FUNCTION dbops._backfill_pending(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_keys text[];
    v_locked text[];
    v_n bigint;
    v_gone bigint;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'pending');
    PERFORM set_config('datestyle', 'ISO, YMD', true);
    PERFORM 1 FROM dbops.backfill_runs r WHERE r.run_id = st.run FOR UPDATE;
    SELECT array_agg(p.key) INTO v_keys
      FROM (SELECT p.key FROM dbops.backfill_pending p WHERE p.run_id = st.run LIMIT st.size) p;
    IF v_keys IS NULL THEN
        st.phase := 'record';
        RETURN st;
    END IF;
    EXECUTE format('SELECT pg_catalog.array_agg(s.k) FROM (SELECT %1$I::pg_catalog.text AS k FROM %2$s '
                   'WHERE %1$I %3$s ANY ($1::%4$s[]) FOR UPDATE SKIP LOCKED) s',
                   st.key_column, st.relation, st.op_eq, st.key_type)
       INTO v_locked USING v_keys;
    v_locked := coalesce(v_locked, '{}');
    EXECUTE format('UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %I %s ANY ($1::%s[]) AND (' || E'\n' || '%s' || E'\n' || ')',
                   st.relation, st.set_clause, st.key_column, st.op_eq, st.key_type, st.where_clause)
       USING v_locked;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    -- keys done: locked (and so updated if where held), or no row any more
    EXECUTE format('SELECT pg_catalog.count(*) FROM pg_catalog.unnest($1::pg_catalog.text[]) k(key) '
                   'WHERE NOT EXISTS (SELECT FROM %1$s t WHERE t.%2$I %3$s k.key::%4$s)',
                   st.relation, st.key_column, st.op_eq, st.key_type)
       INTO v_gone USING v_keys;
    EXECUTE format('DELETE FROM dbops.backfill_pending p WHERE p.run_id OPERATOR(pg_catalog.=) $2 '
                   'AND p.key OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]) '
                   'AND (p.key OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[]) '
                   'OR NOT EXISTS (SELECT FROM %1$s t WHERE t.%2$I %3$s p.key::%4$s))',
                   st.relation, st.key_column, st.op_eq, st.key_type)
       USING v_keys, st.run, v_locked;
    UPDATE dbops.backfill_runs r
       SET rows_updated = r.rows_updated + v_n, batches = r.batches + 1, last_progress = clock_timestamp()
     WHERE r.run_id = st.run;
    IF cardinality(v_locked) = 0 AND v_gone = 0 THEN
        st.retries := st.retries + 1;
        UPDATE dbops.backfill_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
        IF st.retries > st.lock_retries THEN
            RETURN dbops._backfill_stop(st, 'failed', '55P03',
                format('%s rows of %s stayed locked by other transactions after %s attempts; CALL again to finish them',
                       (SELECT count(*) FROM dbops.backfill_pending p WHERE p.run_id = st.run), st.relname, st.retries));
        END IF;
        RETURN dbops._backfill_wait(st, least(0.05 * 2 ^ st.retries, 5));
    END IF;
    st.retries := 0;
    RETURN st;
END
$$;

-- Phase lag: while a standby's replay lag is above
-- dbops.purge_max_replica_lag, a short look after each pause of 0.5 s
-- (counted in paused_ms).  Next: batch, or record at max_run_time.
CREATE FUNCTION dbops._backfill_lag(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lag double precision;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'lag');
    v_lag := dbops.replica_replay_lag_ms();
    IF v_lag > st.max_replica_lag_ms AND (st.deadline IS NULL OR clock_timestamp() < st.deadline) THEN
        RETURN dbops._backfill_wait(st, 0.5);
    END IF;
    UPDATE dbops.backfill_runs r
       SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - st.pause_start) * 1000)::bigint
     WHERE r.run_id = st.run;
    IF v_lag > st.max_replica_lag_ms THEN
        RETURN dbops._backfill_stop(st, 'partial', NULL,
            format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag; CALL again to resume',
                   st.max_run_time, round(v_lag::numeric)));
    END IF;
    st.phase := 'batch';
    RETURN st;
END
$$;

-- Phase pause, after a COMMIT: a backoff or the lag guard's wait
-- (st.sleep_s), and after a batch, while other client sessions are running
-- a query or are in a transaction, yielding to them for the batch's time
-- times dbops.backfill_yield (counted in paused_ms).  Next: st.resume.
CREATE FUNCTION dbops._backfill_pause(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'pause');
    IF st.sleep_s > 0 THEN
        PERFORM pg_sleep(st.sleep_s);
        st.sleep_s := 0;
    END IF;
    IF st.yield_ms > 0 THEN
        IF dbops._purge_busy_sessions() > 0 THEN
            PERFORM pg_sleep(st.yield_ms * st.yield_factor / 1000.0);
            UPDATE dbops.backfill_runs r
               SET paused_ms = r.paused_ms + round(st.yield_ms * st.yield_factor)::bigint
             WHERE r.run_id = st.run;
        END IF;
        st.yield_ms := 0;
    END IF;
    st.phase := st.resume;
    RETURN st;
END
$$;

-- Phase record: the run's outcome (done, unless a phase stopped it) and
-- its NOTICE.  Next: done, or finish when it failed.
CREATE FUNCTION dbops._backfill_record(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run dbops.backfill_runs;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'record');
    UPDATE dbops.backfill_runs r
       SET status = coalesce(st.status, 'done'), finished = clock_timestamp(), last_progress = clock_timestamp(),
           sqlstate = st.sqlstate, message = st.message
     WHERE r.run_id = st.run
    RETURNING * INTO v_run;
    IF v_run.status = 'failed' THEN
        st.phase := 'finish';
        RETURN st;
    ELSE
        RAISE NOTICE 'backfill of %: % rows updated in % batches; %',
            st.relname, v_run.rows_updated, v_run.batches,
            v_run.status || coalesce(': ' || v_run.message, '');
    END IF;
    st.phase := 'done';
    RETURN st;
END
$$;

-- Phase finish, after a run that ended as failed was recorded (and
-- committed): the CALL fails with its error, so that a script or a
-- scheduled job notices.  Next: done (never reached).
CREATE FUNCTION dbops._backfill_finish(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'finish');
    RAISE EXCEPTION 'backfill of % failed: %', st.relname, st.message
        USING ERRCODE = coalesce(st.sqlstate, 'P0001'),
              DETAIL = format('See dbops.backfill_runs run_id %s.', st.run),
              HINT = 'Committed batches stay updated; CALL dbops.backfill() again with the same arguments to finish.';
END
$$;

-- When a phase failed or was cancelled: the run, if still running in this
-- backend, is recorded as failed or, for a cancel or statement_timeout
-- (57014), cancelled, to be committed before the error is raised again.
-- The batch the error interrupted was rolled back with its progress.
-- Returns the hint the error then carries.
CREATE FUNCTION dbops._backfill_abort(st dbops._backfill_state, code text, message text, hint text)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last text;
BEGIN
    UPDATE dbops.backfill_runs r
       SET status = CASE WHEN code = '57014' THEN 'cancelled' ELSE 'failed' END,
           finished = clock_timestamp(), last_progress = clock_timestamp(), sqlstate = code,
           message = CASE WHEN length(_backfill_abort.message) > 500 THEN left(_backfill_abort.message, 500) || '...'
                          ELSE _backfill_abort.message END
     WHERE r.run_id = st.run AND r.status = 'running' AND r.pid = pg_backend_pid()
    RETURNING r.last_key INTO v_last;
    IF st.run IS NULL THEN
        RETURN nullif(hint, '');
    END IF;
    RETURN CASE WHEN hint <> '' THEN hint || ' ' ELSE '' END
        || format('Backfill run %s is recorded as %s in dbops.backfill_runs; %s. CALL dbops.backfill() again with the same arguments to resume.',
                  st.run, CASE WHEN code = '57014' THEN 'cancelled' ELSE 'failed' END,
                  CASE WHEN v_last IS NULL THEN 'no batch of it was committed'
                       ELSE format('its committed batches stay updated (up to key %s)', v_last) END);
END
$$;

-- Progress of the runs: percent done from the key's position between the
-- run's first and end key for integer and numeric keys, else from the rows
-- covered against the table's row estimate (reltuples).
CREATE VIEW dbops.backfill_progress AS
SELECT r.run_id, r.relation, r.status, r.key_column, r.last_key, r.end_key,
       r.rows_updated, r.rows_covered, r.batches,
       (SELECT pg_catalog.count(*) FROM dbops.backfill_pending p WHERE p.run_id OPERATOR(pg_catalog.=) r.run_id) AS rows_pending,
       CASE WHEN r.status OPERATOR(pg_catalog.=) 'done' THEN 100.0
            WHEN r.last_key IS NULL THEN 0.0
            WHEN r.key_type OPERATOR(pg_catalog.=) ANY ('{smallint,integer,bigint,numeric}'::pg_catalog.text[])
             AND r.end_key::pg_catalog.numeric OPERATOR(pg_catalog.>) r.first_key::pg_catalog.numeric
            THEN pg_catalog.round(100.0 OPERATOR(pg_catalog.*) (r.last_key::pg_catalog.numeric OPERATOR(pg_catalog.-) r.first_key::pg_catalog.numeric)
                                  OPERATOR(pg_catalog./) (r.end_key::pg_catalog.numeric OPERATOR(pg_catalog.-) r.first_key::pg_catalog.numeric), 1)
            WHEN c.reltuples OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100.0, 100.0 OPERATOR(pg_catalog.*) r.rows_covered::pg_catalog.numeric
                                  OPERATOR(pg_catalog./) c.reltuples::pg_catalog.numeric), 1)
       END AS percent_done,
       r.started, r.last_progress, r.finished,
       COALESCE(r.finished, pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.-) r.started AS elapsed,
       r.longest_batch_ms, r.lock_retries, r.paused_ms,
       (r.status OPERATOR(pg_catalog.=) 'running' AND EXISTS (
            SELECT FROM pg_catalog.pg_stat_get_activity(r.pid) a
             WHERE a.backend_start IS NOT DISTINCT FROM r.backend_start)) AS active,
       r.run_by, r.pid, r.sqlstate, r.message
  FROM dbops.backfill_runs r
  LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.relation;
COMMENT ON VIEW dbops.backfill_progress IS
    'Progress of CALL dbops.backfill() runs: rows updated, last key committed, percent done, whether its backend still runs it';
GRANT SELECT ON dbops.backfill_progress TO pg_monitor;

-- A procedure, because it commits after each batch; for the same reason it
-- cannot carry a SET search_path clause, so its own statements depend on
-- no search_path (schema-qualified calls with arguments of their exact
-- types, schema-qualified operators).  The phases, each in a transaction
-- of its own: start (checks, the run), batch, pending, lag, pause, record,
-- finish.
-- A phase that fails or is cancelled is caught, its run recorded as failed
-- or cancelled (dbops._backfill_abort()) and committed, and the error
-- raised again.  The caller's set and where run with the caller's rights,
-- under the search_path pg_catalog, pg_temp.
CREATE PROCEDURE dbops.backfill(relation regclass, "set" text, "where" text DEFAULT 'true',
    key_column name DEFAULT NULL, batch_size integer DEFAULT 1000,
    rerun boolean DEFAULT false, max_run_time interval DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_st dbops._backfill_state;
    v_caught pg_catalog.bool := false;
    v_state pg_catalog.text;
    v_msg pg_catalog.text;
    v_detail pg_catalog.text;
    v_hint pg_catalog.text;
BEGIN
    v_st := dbops._backfill_start(backfill.relation, backfill."set", backfill."where",
                                  backfill.key_column, backfill.batch_size, backfill.rerun,
                                  backfill.max_run_time);
    WHILE v_st.phase OPERATOR(pg_catalog.<>) 'done' LOOP
        COMMIT;
        BEGIN
            CASE
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'batch' THEN v_st := dbops._backfill_batch(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'pending' THEN v_st := dbops._backfill_pending(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'lag' THEN v_st := dbops._backfill_lag(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'pause' THEN v_st := dbops._backfill_pause(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'record' THEN v_st := dbops._backfill_record(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'finish' THEN v_st := dbops._backfill_finish(v_st);
            END CASE;
        EXCEPTION WHEN query_canceled OR OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            v_caught := true;
        END;
        IF v_caught THEN
            v_hint := dbops._backfill_abort(v_st, v_state, v_msg, v_hint);
            COMMIT;
            IF v_detail IS NULL OR v_detail OPERATOR(pg_catalog.=) '' THEN
                RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, HINT = v_hint;
            END IF;
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, DETAIL = v_detail, HINT = v_hint;
        END IF;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) IS
    'UPDATE relation SET set WHERE where in small committed batches by key, with the caller''s rights; resumable after a crash or cancel';

REVOKE ALL ON FUNCTION dbops._backfill_require_phase(dbops._backfill_state, text),
    dbops._backfill_wait(dbops._backfill_state, double precision),
    dbops._backfill_stop(dbops._backfill_state, text, text, text),
    dbops._backfill_range(dbops._backfill_state, boolean),
    dbops._backfill_start(regclass, text, text, name, integer, boolean, interval),
    dbops._backfill_batch(dbops._backfill_state),
    dbops._backfill_pending(dbops._backfill_state),
    dbops._backfill_lag(dbops._backfill_state),
    dbops._backfill_pause(dbops._backfill_state),
    dbops._backfill_record(dbops._backfill_state),
    dbops._backfill_finish(dbops._backfill_state),
    dbops._backfill_abort(dbops._backfill_state, text, text, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) FROM PUBLIC;
