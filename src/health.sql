-- ---------------------------------------------------------------------------
-- health
-- ---------------------------------------------------------------------------

-- The registry of checks compiled into the module (one row per check).
CREATE FUNCTION dbops.health_checks(
    OUT check_name text, OUT direction text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health_checks'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.health_checks() IS
    'Health checks known to dbops: name and whether higher or lower values are worse';

CREATE TABLE dbops.health_thresholds (
    check_name  text PRIMARY KEY,
    warning     numeric,
    critical    numeric,
    enabled     boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE dbops.health_thresholds IS
    'Thresholds of dbops.health() checks: one row per check';
GRANT SELECT ON dbops.health_thresholds TO PUBLIC;

-- Validates a thresholds row against the registry: the check must exist,
-- thresholds must be finite numbers that dbops.health() can grade with (of
-- magnitude 1e-300 to 1e300, or 0), and warning must not lie beyond critical
-- in the check's direction.  NULL means "no threshold at this level".  An INSERT of
-- a check that already has a row updates that row (so that pg_dump's copy of
-- user-changed thresholds restores over the defaults CREATE EXTENSION puts).
CREATE FUNCTION dbops._health_thresholds_validate() RETURNS trigger
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

REVOKE ALL ON FUNCTION dbops._health_thresholds_validate() FROM PUBLIC;

CREATE TRIGGER health_thresholds_validate
    BEFORE INSERT OR UPDATE ON dbops.health_thresholds
    FOR EACH ROW EXECUTE FUNCTION dbops._health_thresholds_validate();

-- pg_dump keeps the thresholds (the trigger turns their restore into
-- updates of the defaults).
SELECT pg_catalog.pg_extension_config_dump('dbops.health_thresholds', '');

-- Defaults, mostly after check_postgres.  Units: see dbops.health().
INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('connections',         80,         95),          -- % of usable slots
    ('long_query',          120,        300),         -- seconds
    ('idle_in_transaction', 60,         300),         -- seconds
    ('long_transaction',    600,        3600),        -- seconds (1.1)
    ('xid_wraparound',      1300000000, 1400000000),  -- age(datfrozenxid)
    ('mxid_wraparound',     1300000000, 1400000000),  -- mxid_age(datminmxid)
    ('prepared_xacts',      60,         300),         -- seconds
    ('xmin_horizon',        10000000,   100000000),   -- transactions (1.1)
    ('replication_lag',     60,         300),         -- seconds
    ('replication_slots',   1024,       10240),       -- MB of WAL retained
    ('archiver',            10,         15),          -- segments waiting
    ('invalid_indexes',     1,          NULL),        -- indexes
    ('unused_indexes',      1024,       NULL),        -- MB of unused indexes (1.1)
    ('duplicate_indexes',   1,          NULL),        -- indexes (1.1)
    ('fk_without_index',    1,          NULL),        -- foreign keys (1.1)
    ('seq_scan_tables',     5,          NULL),        -- tables (1.1)
    ('sequences',           85,         95),          -- % of range used
    ('dead_tuples',         20,         50),          -- % dead in a table
    ('vacuum_age',          24,         72),          -- hours overdue
    ('stale_statistics',    24,         168),         -- hours without ANALYZE (1.1)
    ('table_freeze_age',    125,        250),         -- % of the freeze limit (1.1)
    ('cache_hit_ratio',     90,         80),          -- % (lower is worse)
    ('deadlocks',           10,         100),         -- since stats reset
    ('temp_files',          1024,       10240),       -- MB since stats reset
    ('checkpoints',         30,         60),          -- % requested
    ('database_size',       NULL,       NULL),        -- MB, informational
    ('disk_space',          20,         10),          -- % free (lower is worse)
    ('slow_queries',        500,        5000);        -- ms, mean of a statement (1.1)

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

CREATE FUNCTION dbops.health(
    OUT check_name text, OUT status text, OUT value numeric,
    OUT warning numeric, OUT critical numeric, OUT unit text,
    OUT detail text, OUT hint text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.health() IS
    'Health report: one row per enabled check, worst first';

-- The overall status of a set of check statuses: critical, then warning;
-- then unknown if any check was unknown or skipped (a check that could not
-- look is not a clean bill of health); ok otherwise.  A NULL element is a
-- status nobody knows: it counts as unknown.  Anything that is not one of
-- the statuses dbops.health() reports (ok, skipped, unknown, warning,
-- critical, in lower case) is refused, never read as ok.
CREATE FUNCTION dbops.health_overall(statuses text[]) RETURNS text
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
COMMENT ON FUNCTION dbops.health_overall(text[]) IS
    'Overall status of a list of check statuses (skipped counts as unknown)';

CREATE FUNCTION dbops.health_status() RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT dbops.health_overall(coalesce(array_agg(h.status), '{}'))
      FROM dbops.health() h
$$;
COMMENT ON FUNCTION dbops.health_status() IS
    'Overall health status for scripts: ok, warning, critical or unknown';

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

CREATE FUNCTION dbops.health_json() RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH h AS MATERIALIZED (
        SELECT row_number() OVER () AS n, h.* FROM dbops.health() h
    )
    SELECT jsonb_build_object(
        'status', dbops.health_overall(coalesce((SELECT array_agg(status) FROM h), '{}')),
        'server', jsonb_build_object(
            'version', pg_catalog.current_setting('server_version'),
            'version_num', pg_catalog.current_setting('server_version_num')::int,
            'started_at', pg_catalog.pg_postmaster_start_time(),
            'uptime_seconds', round(extract(epoch FROM pg_catalog.now() - pg_catalog.pg_postmaster_start_time())),
            'in_recovery', pg_catalog.pg_is_in_recovery(),
            'database', pg_catalog.current_database(),
            'checked_at', pg_catalog.now()),
        'counts', (SELECT jsonb_object_agg(s.status, s.n)
                     FROM (SELECT status, count(*) AS n FROM h GROUP BY status) s),
        'checks', coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'check_name', check_name, 'status', status, 'value', value,
                        'warning', warning, 'critical', critical, 'unit', unit,
                        'detail', detail, 'hint', hint) ORDER BY n)
                     FROM h), '[]'))
$$;
COMMENT ON FUNCTION dbops.health_json() IS
    'Health report as one jsonb document: overall status, server facts and every check';

-- ---------------------------------------------------------------------------
-- health history: snapshots of dbops.health() (a job of dbops.schedule()),
-- the trend of one check, and the report in Prometheus format
-- ---------------------------------------------------------------------------
-- health_snapshot() is SECURITY DEFINER (it runs the checks as the
-- extension's owner); its rows hold no pg_cron job message.

CREATE TABLE dbops.health_history (
    taken_at    timestamptz NOT NULL,
    check_name  text NOT NULL,
    status      text NOT NULL,
    value       numeric,
    unit        text,
    detail      text,
    PRIMARY KEY (check_name, taken_at)
);
CREATE INDEX health_history_taken_at_idx ON dbops.health_history (taken_at);
COMMENT ON TABLE dbops.health_history IS
    'dbops.health() snapshots taken by dbops.health_snapshot(); kept for its "keep" interval';
SELECT pg_catalog.pg_extension_config_dump('dbops.health_history', '');
GRANT SELECT ON dbops.health_history TO pg_monitor;

-- The rows of dbops.health() the history keeps: the checks see no pg_cron
-- job message (dbops.health_history is read by pg_monitor).
CREATE FUNCTION dbops._health_snapshot_rows(
    OUT check_name text, OUT status text, OUT value numeric, OUT unit text,
    OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health_snapshot_rows'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._health_snapshot_rows() FROM PUBLIC;

CREATE FUNCTION dbops.health_snapshot(
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
REVOKE ALL ON FUNCTION dbops.health_snapshot(interval) FROM PUBLIC;
COMMENT ON FUNCTION dbops.health_snapshot(interval) IS
    'Append dbops.health() to dbops.health_history and delete history older than keep';

CREATE FUNCTION dbops.health_trend(
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
REVOKE ALL ON FUNCTION dbops.health_trend(text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.health_trend(text, interval) TO pg_monitor;
COMMENT ON FUNCTION dbops.health_trend(text, interval) IS
    'How one check moved: its snapshots in dbops.health_history since "since" ago, with the change from the previous one';

-- The health report in the Prometheus text exposition format (0.0.4).
CREATE FUNCTION dbops.health_metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_health_metrics'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.health_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.health_metrics() TO pg_monitor;
COMMENT ON FUNCTION dbops.health_metrics() IS
    'The dbops.health() report in the Prometheus text exposition format';

-- Index advice: unused, duplicate and redundant indexes, foreign keys
-- without an index, tables read mostly by large sequential scans; the same
-- queries as the checks unused_indexes, duplicate_indexes, fk_without_index
-- and seq_scan_tables (src/health_indexes.c), run as the caller.
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
