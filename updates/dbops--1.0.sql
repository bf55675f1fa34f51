-- dbops install script, assembled from one fragment per capability (src/*.sql)

\echo Use "CREATE EXTENSION dbops" to load this file. \quit

-- Read-only functions are open to pg_monitor; functions that write or signal
-- are revoked from PUBLIC in their own fragment and granted where they say.
GRANT USAGE ON SCHEMA dbops TO PUBLIC;

-- The errors every dbops function raises for an interval argument that must
-- be given and positive (hint may be NULL).
CREATE FUNCTION dbops._require_positive_interval(arg text, val interval, hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF val IS NULL THEN
        IF hint IS NULL THEN
            RAISE EXCEPTION '% must not be NULL', arg USING ERRCODE = 'null_value_not_allowed';
        END IF;
        RAISE EXCEPTION '% must not be NULL', arg
            USING ERRCODE = 'null_value_not_allowed', HINT = hint;
    END IF;
    IF val <= interval '0' THEN
        IF hint IS NULL THEN
            RAISE EXCEPTION '% must be a positive interval, not %', arg, val
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION '% must be a positive interval, not %', arg, val
            USING ERRCODE = 'invalid_parameter_value', HINT = hint;
    END IF;
END;
$$;
-- ---------------------------------------------------------------------------
-- health
-- ---------------------------------------------------------------------------

-- The registry of checks compiled into the module (one row per check).
CREATE FUNCTION dbops.health_checks(
    OUT check_name text, OUT direction text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health_checks'
LANGUAGE C STABLE STRICT;
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
-- thresholds must be finite, and warning must not lie beyond critical in the
-- check's direction.  NULL means "no threshold at this level".  An INSERT of
-- a check that already has a row updates that row (so that pg_dump's copy of
-- user-changed thresholds restores over the defaults CREATE EXTENSION puts).
CREATE FUNCTION dbops.health_thresholds_validate() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dir text;
BEGIN
    IF NEW.check_name IS NULL THEN
        RAISE EXCEPTION 'check_name of a health threshold must not be NULL'
            USING ERRCODE = 'not_null_violation',
                  HINT = 'Name one of the checks listed by dbops.health_checks().';
    END IF;
    SELECT c.direction INTO dir FROM dbops.health_checks() c
     WHERE c.check_name = NEW.check_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown health check "%"', NEW.check_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'Known checks: ' ||
                         (SELECT string_agg(c.check_name, ', ' ORDER BY c.check_name)
                            FROM dbops.health_checks() c) || '.';
    END IF;
    IF NEW.warning = 'NaN' OR NEW.critical = 'NaN' THEN
        RAISE EXCEPTION 'thresholds of health check "%" must be numbers, not NaN', NEW.check_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NULL for "no threshold".';
    END IF;
    IF dir = 'higher_is_worse' AND NEW.warning > NEW.critical THEN
        RAISE EXCEPTION 'warning threshold % of health check "%" is above its critical threshold %',
                        NEW.warning, NEW.check_name, NEW.critical
            USING ERRCODE = 'check_violation',
                  DETAIL = 'Higher values are worse for this check, so warning must be at most critical.',
                  HINT = 'Lower the warning threshold or raise the critical one; NULL disables a level.';
    END IF;
    IF dir = 'lower_is_worse' AND NEW.warning < NEW.critical THEN
        RAISE EXCEPTION 'warning threshold % of health check "%" is below its critical threshold %',
                        NEW.warning, NEW.check_name, NEW.critical
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

CREATE TRIGGER health_thresholds_validate
    BEFORE INSERT OR UPDATE ON dbops.health_thresholds
    FOR EACH ROW EXECUTE FUNCTION dbops.health_thresholds_validate();

-- pg_dump keeps the thresholds (the trigger turns their restore into
-- updates of the defaults).
SELECT pg_catalog.pg_extension_config_dump('dbops.health_thresholds', '');

-- Defaults, mostly after check_postgres.  Units: see dbops.health().
INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('connections',         80,         95),          -- % of usable slots
    ('long_query',          120,        300),         -- seconds
    ('idle_in_transaction', 60,         300),         -- seconds
    ('xid_wraparound',      1300000000, 1400000000),  -- age(datfrozenxid)
    ('mxid_wraparound',     1300000000, 1400000000),  -- mxid_age(datminmxid)
    ('prepared_xacts',      60,         300),         -- seconds
    ('replication_lag',     60,         300),         -- seconds
    ('replication_slots',   1024,       10240),       -- MB of WAL retained
    ('archiver',            10,         15),          -- segments waiting
    ('invalid_indexes',     1,          NULL),        -- indexes
    ('sequences',           85,         95),          -- % of range used
    ('dead_tuples',         20,         50),          -- % dead in a table
    ('vacuum_age',          24,         72),          -- hours overdue
    ('cache_hit_ratio',     90,         80),          -- % (lower is worse)
    ('deadlocks',           10,         100),         -- since stats reset
    ('temp_files',          1024,       10240),       -- MB since stats reset
    ('checkpoints',         30,         60),          -- % requested
    ('database_size',       NULL,       NULL);        -- MB, informational

CREATE FUNCTION dbops.health(
    OUT check_name text, OUT status text, OUT value numeric,
    OUT warning numeric, OUT critical numeric, OUT unit text,
    OUT detail text, OUT hint text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION dbops.health() IS
    'Health report: one row per enabled check, worst first';

-- The overall status of a set of check statuses: critical, then warning;
-- then unknown if any check was unknown or skipped (a check that could not
-- look is not a clean bill of health); ok otherwise.
CREATE FUNCTION dbops.health_overall(statuses text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT CASE
        WHEN 'critical' = ANY (statuses) THEN 'critical'
        WHEN 'warning' = ANY (statuses) THEN 'warning'
        WHEN 'unknown' = ANY (statuses) OR 'skipped' = ANY (statuses) THEN 'unknown'
        ELSE 'ok'
    END
$$;
COMMENT ON FUNCTION dbops.health_overall(text[]) IS
    'Overall status of a list of check statuses (skipped counts as unknown)';

CREATE FUNCTION dbops.health_status() RETURNS text
LANGUAGE sql VOLATILE
AS $$
    SELECT dbops.health_overall(coalesce(array_agg(h.status), '{}'))
      FROM dbops.health() h
$$;
COMMENT ON FUNCTION dbops.health_status() IS
    'Overall health status for scripts: ok, warning, critical or unknown';

CREATE FUNCTION dbops.health_json() RETURNS jsonb
LANGUAGE sql VOLATILE
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
-- lock tree
-- ---------------------------------------------------------------------------

CREATE FUNCTION dbops.lock_tree(
    OUT pid int, OUT root_pid int, OUT depth int, OUT path int[],
    OUT blocked_by int[], OUT block_kind text, OUT locktype text,
    OUT mode text, OUT relation regclass, OUT waiting interval,
    OUT xact_age interval, OUT state text, OUT wait_event text,
    OUT usename name, OUT datname name, OUT application_name text,
    OUT client_addr inet, OUT blocked_count int, OUT query text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_lock_tree'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dbops.lock_tree() IS
    'Who blocks whom, from one snapshot of the lock manager: one row per blocking or waiting session, depth-first';

CREATE FUNCTION dbops.lock_tree_text(query_width int DEFAULT 60)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF query_width IS NULL OR query_width < 0 THEN
        RAISE EXCEPTION 'query_width must be zero or more, not %', coalesce(query_width::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give the number of characters of each query to show (0 hides them).';
    END IF;
    RETURN QUERY
    SELECT repeat('  ', t.depth)
        || CASE WHEN t.pid = 0 THEN 'prepared' ELSE t.pid::text END
        || ' [' || coalesce(t.state, '?') || ']'
        || CASE WHEN t.depth = 0 AND cardinality(t.blocked_by) > 0 THEN ' (wait cycle)' ELSE '' END
        || CASE WHEN t.waiting IS NOT NULL
                THEN ' ' || coalesce(t.block_kind || ' ', '') || 'waits '
                     || to_char(t.waiting, 'HH24:MI:SS') || ' for'
                WHEN t.blocked_count > 0 THEN ' holds'
                ELSE '' END
        || coalesce(' ' || t.mode, '')
        || coalesce(' on ' || coalesce(t.relation::text, t.locktype), '')
        || CASE WHEN t.blocked_count > 0 THEN ', blocks ' || t.blocked_count ELSE '' END
        || CASE WHEN t.waiting IS NULL AND t.xact_age IS NOT NULL
                THEN ', xact ' || to_char(t.xact_age, 'HH24:MI:SS') ELSE '' END
        || CASE WHEN query_width > 0 AND t.query IS NOT NULL
                THEN ': ' || left(regexp_replace(t.query, '\s+', ' ', 'g'), query_width)
                ELSE '' END
    FROM dbops.lock_tree() WITH ORDINALITY AS t
    ORDER BY t.ordinality;
END
$$;
COMMENT ON FUNCTION dbops.lock_tree_text(int) IS
    'dbops.lock_tree() as indented lines for a terminal (psql -At)';

CREATE FUNCTION dbops.cancel_blockers(
    min_wait interval DEFAULT '1 min',
    terminate boolean DEFAULT false,
    dry_run boolean DEFAULT true,
    OUT pid int, OUT action text, OUT signalled boolean,
    OUT blocked_count int, OUT longest_wait interval, OUT usename name,
    OUT state text, OUT query text, OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_cancel_blockers'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dbops.cancel_blockers(interval, boolean, boolean) IS
    'Cancel (or terminate) the roots of lock trees whose waiters waited at least min_wait; a dry run by default';

-- Signalling sessions is deliberate: members of pg_signal_backend may use
-- it (it still never signals what the caller could not signal with
-- pg_cancel_backend/pg_terminate_backend); grant it to others explicitly.
REVOKE ALL ON FUNCTION dbops.cancel_blockers(interval, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.cancel_blockers(interval, boolean, boolean) TO pg_signal_backend;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('lock_waits', 30, 300);

-- ---------------------------------------------------------------------------
-- bloat
-- ---------------------------------------------------------------------------

-- The catalog-statistics estimate (method "stats"), one row per relation:
-- the pages a rewrite would need by the classic reckoning (tuple header,
-- null bitmap, average column widths from pg_stats, fillfactor), and why it
-- may be wrong.  Runs with the caller's rights: pg_stats shows only the
-- columns the caller may SELECT.
CREATE FUNCTION dbops._bloat_stats(relids oid[])
RETURNS TABLE (relid oid, est_pages float8, live_bytes float8, note text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relam, c.reltuples, c.reltoastrelid,
           n.nspname, am.amname,
           coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int
                     FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'),
                    CASE WHEN c.relkind = 'i' THEN 90 ELSE 100 END) AS ff,
           i.indrelid, i.indkey, i.indisunique,
           i.indpred IS NOT NULL AS partial, i.indexprs IS NOT NULL AS expr,
           coalesce((SELECT lower(o) NOT IN ('deduplicate_items=off', 'deduplicate_items=false', 'deduplicate_items=0')
                     FROM unnest(c.reloptions) o WHERE o LIKE 'deduplicate_items=%'), true) AS dedup,
           tc.relname AS tabname, tn.nspname AS tabnsp,
           coalesce(i.indrelid, c.oid) AS tableoid
    FROM unnest(relids) AS u(oid)
    JOIN pg_class c ON c.oid = u.oid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_am am ON am.oid = c.relam
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class tc ON tc.oid = i.indrelid
    LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
),
keys AS (
    SELECT r.oid, a.attnum, a.atttypid, ty.typlen,
           CASE WHEN r.relkind = 'i' AND r.indkey[a.attnum - 1] <> 0 THEN r.tabnsp ELSE r.nspname END AS snsp,
           CASE WHEN r.relkind = 'i' AND r.indkey[a.attnum - 1] <> 0 THEN r.tabname ELSE r.relname END AS stab,
           CASE WHEN r.relkind = 'i' AND r.indkey[a.attnum - 1] <> 0
                THEN (SELECT ta.attname FROM pg_attribute ta
                      WHERE ta.attrelid = r.indrelid AND ta.attnum = r.indkey[a.attnum - 1])
                ELSE a.attname END AS scol
    FROM rel r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type ty ON ty.oid = a.atttypid
    WHERE r.relkind IN ('r', 'm', 'i')
),
cols AS (
    SELECT DISTINCT ON (k.oid, k.attnum) k.oid, k.attnum, k.atttypid, k.typlen, s.null_frac, s.avg_width
    FROM keys k
    LEFT JOIN pg_stats s ON s.schemaname = k.snsp AND s.tablename = k.stab AND s.attname = k.scol
    ORDER BY k.oid, k.attnum, s.inherited
),
agg AS (
    SELECT oid, count(*) AS ncols, count(avg_width) AS nstats,
           count(*) FILTER (WHERE avg_width IS NULL AND typlen < 0) AS nunknown,
           sum(CASE WHEN avg_width IS NOT NULL THEN (1 - null_frac) * avg_width
                    WHEN typlen > 0 THEN typlen ELSE 0 END) AS width,
           coalesce(bool_or(null_frac > 0), false) AS hasnulls,
           bool_or(atttypid = 'name'::regtype) AS hasname
    FROM cols GROUP BY oid
),
est AS (
    SELECT r.*, coalesce(g.ncols, 0) AS ncols, coalesce(g.nstats, 0) AS nstats,
           coalesce(g.nunknown, 0) AS nunknown, g.hasname,
           pg_stat_get_mod_since_analyze(r.tableoid) AS nmod,
           CASE WHEN r.relkind = 'i'
                THEN 8 * ceil((8 + CASE WHEN g.hasnulls THEN 8 ELSE 0 END + g.width) / 8.0)
                ELSE 8 * ceil((23 + CASE WHEN g.hasnulls THEN (g.ncols + 7) / 8 ELSE 0 END) / 8.0)
                     + 8 * ceil(g.width / 8.0)
           END AS tpl
    FROM rel r LEFT JOIN agg g ON g.oid = r.oid
),
pages AS (
    SELECT e.*,
           CASE WHEN e.relkind = 'i'
                THEN greatest(1, floor((8152 - 8192 * (100 - e.ff) / 100) / (e.tpl + 4)))
                ELSE least(291, greatest(1, floor((8168 - 8192 * (100 - e.ff) / 100) / (e.tpl + 4))))
           END AS perpage
    FROM est e
)
SELECT p.oid,
       CASE
           WHEN p.relkind = 't' OR p.reltuples < 0 OR p.nunknown > 0 OR p.tpl IS NULL
                OR (p.relkind = 'i' AND p.amname <> 'btree') THEN NULL
           WHEN p.relkind = 'i'
           THEN ceil(p.reltuples / p.perpage)
                + ceil(ceil(p.reltuples / p.perpage) / floor((8152 - 2457) / (p.tpl + 4))) + 1
           ELSE ceil(p.reltuples / p.perpage)
       END::float8,
       CASE WHEN p.reltuples >= 0 AND p.tpl IS NOT NULL
            THEN p.reltuples * (p.tpl + 4) END::float8,
       nullif(concat_ws('; ',
           CASE WHEN p.relkind = 't' THEN 'TOAST table: no catalog statistics to estimate from, read its pages' END,
           CASE WHEN p.relkind = 'i' AND p.amname <> 'btree'
                THEN p.amname || ' index: no catalog model for this index type' END,
           CASE WHEN p.relkind <> 't' AND p.reltuples < 0
                THEN 'no statistics: never analyzed or vacuumed' END,
           CASE WHEN p.relkind <> 't' AND p.nstats < p.ncols
                     AND NOT has_table_privilege(p.tableoid, 'SELECT')
                     AND NOT has_any_column_privilege(p.tableoid, 'SELECT')
                THEN 'the role cannot read pg_stats for this table (needs SELECT on it)'
                WHEN p.relkind <> 't' AND p.nstats < p.ncols
                THEN format('no column statistics for %s of %s columns%s', p.ncols - p.nstats, p.ncols,
                            CASE WHEN p.nunknown > 0 THEN ', no estimate' ELSE ', fixed widths assumed' END) END,
           CASE WHEN p.relkind <> 't' AND p.reltuples >= 0 AND p.nmod > 0.1 * p.reltuples + 50
                THEN format('statistics stale: %s rows changed since the last ANALYZE (reltuples %s)',
                            p.nmod, p.reltuples::bigint) END,
           CASE WHEN p.relkind IN ('r', 'm') AND p.reltoastrelid <> 0
                     AND pg_relation_size(p.reltoastrelid) > pg_relation_size(p.oid)
                THEN 'TOAST-heavy: most of the data is in the TOAST table, which this estimate does not cover' END,
           CASE WHEN p.hasname
                THEN 'name columns: the classic estimate misjudges their width and alignment' END,
           CASE WHEN p.relkind = 'i' AND p.amname = 'btree' AND p.dedup AND NOT p.indisunique
                THEN 'deduplicated btree: the estimate ignores posting lists and overstates the rewritten size' END,
           CASE WHEN p.partial THEN 'partial index: widths come from the whole table' END,
           CASE WHEN p.expr THEN 'expression index: widths come from the expression statistics, if any' END
       ), '')
FROM pages p
$$;
COMMENT ON FUNCTION dbops._bloat_stats(oid[]) IS
    'Internal to dbops.bloat(): the catalog-statistics estimate';

CREATE FUNCTION dbops.bloat(
    relation regclass DEFAULT NULL,
    method text DEFAULT 'auto',
    max_pages bigint DEFAULT current_setting('dbops.bloat_max_pages')::bigint,
    ci_width float8 DEFAULT 2,
    seed integer DEFAULT NULL,
    OUT relation regclass, OUT kind text, OUT method text,
    OUT size_bytes bigint, OUT bloat_bytes bigint, OUT bloat_pct numeric,
    OUT ci_low_pct numeric, OUT ci_high_pct numeric,
    OUT live_bytes bigint, OUT dead_bytes bigint, OUT free_bytes bigint,
    OUT pages_read bigint, OUT note text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_bloat'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.bloat(regclass, text, bigint, float8, integer) IS
    'Bloat of a relation (with its TOAST table and indexes) or of every user relation: bytes a rewrite would give back';

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('bloat', 30, 60);

-- ---------------------------------------------------------------------------
-- reaper: idle-connection reaper (background worker and dbops.reap_idle())
-- ---------------------------------------------------------------------------

CREATE TABLE dbops.reaper_policies (
    id               integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    role_name        name,
    database_name    name,
    application_name text,
    client_addr      cidr,
    state            text CHECK (state IN ('idle', 'idle in transaction',
                                           'idle in transaction (aborted)')),
    idle_timeout     interval CHECK (idle_timeout > interval '0'),
    action           text NOT NULL DEFAULT 'terminate'
                     CHECK (action IN ('terminate', 'cancel', 'exempt')),
    keep_min         integer NOT NULL DEFAULT 0 CHECK (keep_min >= 0),
    enabled          boolean NOT NULL DEFAULT true,
    note             text,
    CONSTRAINT reaper_policies_timeout_check
        CHECK ((action = 'exempt') = (idle_timeout IS NULL))
);
COMMENT ON TABLE dbops.reaper_policies IS
    'Reaper policies: NULL match columns match anything; the most specific matching policy wins';
COMMENT ON COLUMN dbops.reaper_policies.application_name IS
    'LIKE pattern on the session''s application_name';
COMMENT ON COLUMN dbops.reaper_policies.keep_min IS
    'Leave at least this many idle sessions matched by this policy (oldest idle reaped first)';
GRANT SELECT ON dbops.reaper_policies TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('dbops.reaper_policies', '');

CREATE TABLE dbops.reaper_log (
    log_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq              bigint NOT NULL,
    event_time       timestamptz NOT NULL,
    source           text NOT NULL,
    pid              integer NOT NULL,
    usename          text,
    datname          text,
    application_name text,
    client_addr      inet,
    state            text,
    idle_for         interval,
    policy_id        integer,
    action           text NOT NULL,
    outcome          text NOT NULL
);
COMMENT ON TABLE dbops.reaper_log IS
    'Reaper events, copied from the shared-memory ring by the reaper worker';
CREATE INDEX reaper_log_event_time_idx ON dbops.reaper_log (event_time);
REVOKE ALL ON dbops.reaper_log FROM PUBLIC;
GRANT SELECT ON dbops.reaper_log TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.reaper_log', '');

CREATE FUNCTION dbops.reap_idle(
    idle_for interval,
    states text[] DEFAULT '{idle}',
    dry_run boolean DEFAULT true,
    action text DEFAULT 'terminate',
    OUT pid integer, OUT usename name, OUT datname name,
    OUT application_name text, OUT client_addr inet, OUT state text,
    OUT idle_for interval, OUT action text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_reap_idle'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.reap_idle(interval, text[], boolean, text) IS
    'Terminate (or cancel) sessions idle for longer than idle_for; a dry run by default';
REVOKE ALL ON FUNCTION dbops.reap_idle(interval, text[], boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.reap_idle(interval, text[], boolean, text) TO pg_signal_backend;

CREATE FUNCTION dbops.reaper_status(
    OUT worker_pid integer, OUT worker_started timestamptz,
    OUT last_sweep timestamptz, OUT sweeps bigint,
    OUT sessions_seen integer, OUT sessions_idle integer,
    OUT sessions_exempt integer, OUT reaped bigint, OUT spared bigint,
    OUT dry_run_matches bigint, OUT last_sweep_cpu_ms float8,
    OUT avg_sweep_cpu_ms float8, OUT extension_installed boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_reaper_status'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.reaper_status() IS
    'The reaper worker: pid, last sweep, sessions seen, reaped and spared';
REVOKE ALL ON FUNCTION dbops.reaper_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.reaper_status() TO pg_monitor;

CREATE FUNCTION dbops.reaper_events(
    OUT seq bigint, OUT event_time timestamptz, OUT source text,
    OUT pid integer, OUT usename text, OUT datname text,
    OUT application_name text, OUT client_addr inet, OUT state text,
    OUT idle_for interval, OUT policy_id integer, OUT action text,
    OUT outcome text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_reaper_events'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.reaper_events() IS
    'Reaper events kept in shared memory (the last 1024), oldest first';
REVOKE ALL ON FUNCTION dbops.reaper_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.reaper_events() TO pg_monitor;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('reaper', 100, 1000);

-- ---------------------------------------------------------------------------
-- migration ledger
--
-- Errors raised here use their own SQLSTATE class "DB" (see README):
--   DB001 checksum drift             DB005 version not in the ledger / not applied
--   DB002 required version missing   DB006 rollback blocked by applied dependents
--   DB003 out-of-order application   DB007 import source is not a known ledger
--   DB004 version already applied    DB008 dbops.migration_events is append-only
-- The ledger lock is the transaction-scoped advisory lock (1684172656, 1)
-- ('dbop' in ASCII, 1).
-- ---------------------------------------------------------------------------

CREATE TABLE dbops.migrations (
    version          text PRIMARY KEY CHECK (btrim(version) <> ''),
    description      text,
    checksum         text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    status           text NOT NULL
                     CHECK (status IN ('applied', 'rolled_back', 'baseline')),
    applied_by       name NOT NULL DEFAULT current_user,
    "session_user"   name NOT NULL DEFAULT session_user,
    application_name text DEFAULT current_setting('application_name'),
    client_addr      inet DEFAULT inet_client_addr(),
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    duration_ms      numeric,
    requires         text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE dbops.migrations IS
    'Migration ledger: one row per version (dbops.migrate, dbops.migration_begin)';

CREATE TABLE dbops.migration_events (
    event_id         bigserial PRIMARY KEY,
    event_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    version          text NOT NULL,
    event            text NOT NULL
                     CHECK (event IN ('apply', 'skip', 'rollback', 'baseline',
                                      'repair', 'import', 'failed')),
    operation        text,
    checksum         text,
    sqlstate         text,
    message          text,
    username         name NOT NULL DEFAULT current_user,
    "session_user"   name NOT NULL DEFAULT session_user,
    application_name text DEFAULT current_setting('application_name'),
    client_addr      inet DEFAULT inet_client_addr(),
    backend_pid      integer NOT NULL DEFAULT pg_backend_pid()
);
CREATE INDEX migration_events_version_idx
    ON dbops.migration_events (version, event_id DESC);
COMMENT ON TABLE dbops.migration_events IS
    'Append-only history of the migration ledger: apply, skip, rollback, baseline, repair, import, failed';

CREATE TABLE dbops.migration_objects (
    object_id        bigserial PRIMARY KEY,
    version          text NOT NULL,
    captured_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    command_tag      text NOT NULL,
    object_type      text,
    schema_name      text,
    object_identity  text
);
CREATE INDEX migration_objects_version_idx
    ON dbops.migration_objects (version, object_id);
COMMENT ON TABLE dbops.migration_objects IS
    'DDL commands run while a migration was open, captured by an event trigger';

SELECT pg_catalog.pg_extension_config_dump('dbops.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_events', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_events_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_objects', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_objects_object_id_seq', '');

-- Reading the ledger is open to monitoring roles; writing is granted
-- deliberately to the roles that deploy (see README).
GRANT SELECT ON dbops.migrations, dbops.migration_events, dbops.migration_objects
    TO pg_monitor;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('migrations', 1, NULL);

-- migration_events is append-only
CREATE FUNCTION dbops._migration_events_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'dbops.migration_events is append-only'
        USING ERRCODE = 'DB008',
              HINT = 'Events are never updated or deleted; record a correction with dbops.migration_repair().';
END;
$$;
CREATE TRIGGER migration_events_append_only
    BEFORE UPDATE OR DELETE ON dbops.migration_events
    FOR EACH ROW EXECUTE FUNCTION dbops._migration_events_append_only();
CREATE TRIGGER migration_events_no_truncate
    BEFORE TRUNCATE ON dbops.migration_events
    FOR EACH STATEMENT EXECUTE FUNCTION dbops._migration_events_append_only();

-- C helpers
CREATE FUNCTION dbops.migration_checksum(script text)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_checksum'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dbops.migration_checksum(text) IS
    'sha256 (hex) of a migration script with CR/CRLF turned into LF and trailing white space of every line and of the script removed';

CREATE FUNCTION dbops._ledger_in_transaction_block()
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_ledger_in_transaction_block'
LANGUAGE C VOLATILE;

-- Writes one 'failed' event from a background worker in its own transaction,
-- so that it survives the rollback of the caller's transaction.  Returns
-- false (with a WARNING) when it could not.  Only records for callers that
-- may INSERT into dbops.migration_events.
CREATE FUNCTION dbops._migration_record_failure(
    version text, operation text, checksum text, sqlstate text, message text,
    username text, session_username text, application_name text,
    client_addr text, backend_pid integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_record_failure'
LANGUAGE C VOLATILE;

-- Arms the current transaction of migration_begin(): an error that aborts
-- it while the migration is open becomes a 'failed' event, written by a
-- background worker after the abort.
CREATE FUNCTION dbops._migration_arm(
    version text, operation text, checksum text, sqlstate text, message text,
    username text, session_username text, application_name text,
    client_addr text, backend_pid integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_arm'
LANGUAGE C VOLATILE;

CREATE FUNCTION dbops._migration_failed(
    p_version text, p_operation text, p_checksum text, p_sqlstate text, p_message text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN dbops._migration_record_failure(p_version, p_operation, p_checksum,
        p_sqlstate, p_message, current_user::text, session_user::text,
        current_setting('application_name'), inet_client_addr()::text,
        pg_backend_pid());
EXCEPTION WHEN OTHERS THEN
    -- never let recording hide the error being reported
    RAISE WARNING 'failed attempt of migration % not recorded in dbops.migration_events: %',
        p_version, SQLERRM;
    RETURN false;
END;
$$;

-- Order of versions: the leading run of digits separated by '.' or '_'
-- ('1.10' > '1.9', '0015_add_users' = 15); NULL for versions that do not
-- start with a digit (such versions are never out of order).
CREATE FUNCTION dbops.migration_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT string_to_array(
               translate(substring(version FROM '^[0-9]+(?:[._][0-9]+)*'), '_', '.'),
               '.')::numeric[]
$$;
COMMENT ON FUNCTION dbops.migration_version_key(text) IS
    'Ordering key of a migration version: its leading numbers, NULL when it does not start with a digit';

-- versions in order, so that the out-of-order check is one index probe
CREATE INDEX migrations_order_idx
    ON dbops.migrations (dbops.migration_version_key(version), version COLLATE "C");

CREATE FUNCTION dbops._ledger_writable(p_what text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot % on a standby', p_what
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'The migration ledger is written on the primary; dbops.migration_status() and dbops.migration_pending() work here.';
    END IF;
END;
$$;

CREATE FUNCTION dbops._ledger_check_version(p_version text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_version IS NULL THEN
        RAISE EXCEPTION 'migration version must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(p_version) = '' OR p_version <> btrim(p_version) THEN
        RAISE EXCEPTION 'invalid migration version "%"', p_version
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A version is a non-empty string without leading or trailing white space, such as ''0015'' or ''2.1''.';
    END IF;
END;
$$;

CREATE FUNCTION dbops._ledger_check_checksum(p_checksum text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_checksum IS NOT NULL AND p_checksum <> '' AND p_checksum !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'invalid migration checksum "%"', p_checksum
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the value of dbops.migration_checksum(script): 64 lower-case hexadecimal digits.';
    END IF;
END;
$$;

CREATE FUNCTION dbops._ledger_lock()
RETURNS void
LANGUAGE sql
AS $$ SELECT pg_catalog.pg_advisory_xact_lock(1684172656, 1) $$;

-- Greatest baseline version at or above p_version, if any.
CREATE FUNCTION dbops._ledger_covering_baseline(p_version text)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT m.version
    FROM dbops.migrations m
    WHERE m.status = 'baseline'
      AND dbops.migration_version_key(m.version) IS NOT NULL
      AND dbops.migration_version_key(p_version) IS NOT NULL
      AND (dbops.migration_version_key(m.version), m.version COLLATE "C")
          >= (dbops.migration_version_key(p_version), p_version COLLATE "C")
    ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE "C" DESC
    LIMIT 1
$$;

-- The checks shared by migrate() and migration_begin(), under the ledger
-- lock.  Returns 'apply', or the reason to skip.  Raises DB001..DB004.
CREATE FUNCTION dbops._migration_decide(
    p_version text, p_checksum text, p_requires text[],
    p_allow_out_of_order boolean, p_caller text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    r         dbops.migrations;
    v_base    text;
    v_missing text[];
    v_later   text;
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = p_version;
    IF FOUND AND r.status IN ('applied', 'baseline') THEN
        IF r.checksum IS NOT NULL AND p_checksum IS NOT NULL
           AND r.checksum <> p_checksum THEN
            RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', p_version
                USING ERRCODE = 'DB001',
                      DETAIL = format('Recorded checksum %s (%s by %s); this script has %s.',
                                      r.checksum, r.status, r.applied_by, p_checksum),
                      HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
        END IF;
        IF p_caller = 'migration_begin' THEN
            RAISE EXCEPTION 'migration % is already %', p_version, r.status
                USING ERRCODE = 'DB004',
                      HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
        END IF;
        RETURN format('already %s', r.status);
    END IF;

    IF NOT FOUND THEN
        v_base := dbops._ledger_covering_baseline(p_version);
        IF v_base IS NOT NULL THEN
            IF p_caller = 'migration_begin' THEN
                RAISE EXCEPTION 'migration % is covered by baseline %', p_version, v_base
                    USING ERRCODE = 'DB004',
                          HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
            END IF;
            RETURN format('covered by baseline %s', v_base);
        END IF;
    END IF;

    SELECT array_agg(u.req ORDER BY u.ord) INTO v_missing
    FROM unnest(p_requires) WITH ORDINALITY AS u(req, ord)
    WHERE NOT EXISTS (SELECT 1 FROM dbops.migrations m
                      WHERE m.version = u.req
                        AND m.status IN ('applied', 'baseline'))
      AND dbops._ledger_covering_baseline(u.req) IS NULL;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'migration % requires versions that are not applied: %',
                        p_version, array_to_string(v_missing, ', ')
            USING ERRCODE = 'DB002',
                  HINT = 'Apply the required versions first; dbops.migration_status() shows what is applied.';
    END IF;

    IF NOT coalesce(p_allow_out_of_order,
                    current_setting('dbops.migration_allow_out_of_order')::boolean)
       AND dbops.migration_version_key(p_version) IS NOT NULL THEN
        SELECT m.version INTO v_later
        FROM dbops.migrations m
        WHERE m.status = 'applied'
          AND m.version <> p_version
          AND dbops.migration_version_key(m.version) IS NOT NULL
          AND (dbops.migration_version_key(m.version), m.version COLLATE "C")
              > (dbops.migration_version_key(p_version), p_version COLLATE "C")
        ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE "C" DESC
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'migration % is older than the applied migration %', p_version, v_later
                USING ERRCODE = 'DB003',
                      HINT = 'Apply versions in order, or allow this one with allow_out_of_order => true (or SET dbops.migration_allow_out_of_order = on).';
        END IF;
    END IF;

    RETURN 'apply';
END;
$$;

-- ---------------------------------------------------------------------------
-- dbops.migrate(): run a migration body and record it, atomically
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops.migrate(
    version text,
    description text,
    body text,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version  text := migrate.version;
    v_checksum text;
    v_decision text;
    v_started  timestamptz;
    v_finished timestamptz;
    v_prev     text;
    v_state    text;
    v_msg      text;
BEGIN
    PERFORM dbops._ledger_writable('apply a migration');
    PERFORM dbops._ledger_check_version(v_version);
    IF migrate.body IS NULL THEN
        RAISE EXCEPTION 'migration body must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF migrate.requires IS NULL OR array_position(migrate.requires, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'requires must be an array of versions without NULLs'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_checksum := dbops.migration_checksum(migrate.body);
    PERFORM dbops._ledger_lock();

    BEGIN
        v_decision := dbops._migration_decide(v_version, v_checksum, migrate.requires,
                                              migrate.allow_out_of_order, 'migrate');
        IF v_decision <> 'apply' THEN
            INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
            VALUES (v_version, 'skip', 'migrate', v_checksum, v_decision);
            RETURN 'skipped';
        END IF;

        v_started := clock_timestamp();
        v_prev := current_setting('dbops.current_migration');
        PERFORM set_config('dbops.current_migration', v_version, true);
        EXECUTE migrate.body;
        PERFORM set_config('dbops.current_migration', v_prev, true);
        v_finished := clock_timestamp();

        INSERT INTO dbops.migrations AS m
            (version, description, checksum, status, started_at, finished_at,
             duration_ms, requires)
        VALUES (v_version, migrate.description, v_checksum, 'applied', v_started,
                v_finished,
                round(extract(epoch FROM v_finished - v_started) * 1000, 3),
                migrate.requires)
        ON CONFLICT (version) DO UPDATE
            SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
                status = 'applied', applied_by = EXCLUDED.applied_by,
                "session_user" = EXCLUDED."session_user",
                application_name = EXCLUDED.application_name,
                client_addr = EXCLUDED.client_addr,
                started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
                duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
        INSERT INTO dbops.migration_events (version, event, operation, checksum)
        VALUES (v_version, 'apply', 'migrate', v_checksum);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM dbops._migration_failed(v_version, 'migrate', v_checksum, v_state, v_msg);
        RAISE;
    END;
    RETURN 'applied';
END;
$$;
COMMENT ON FUNCTION dbops.migrate(text, text, text, text[], boolean) IS
    'Run a migration body under the ledger lock and record it in the same transaction; returns applied or skipped';

-- ---------------------------------------------------------------------------
-- psql scripts: dbops.migration_pending() for \if, dbops.migration_begin()
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops.migration_pending(
    version text,
    checksum text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_pending.version;
    v_checksum text := nullif(migration_pending.checksum, '');
    r         dbops.migrations;
    v_state   text;
    v_msg     text;
BEGIN
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_check_checksum(migration_pending.checksum);
    -- Inside a transaction block, hold the ledger lock until its end so that
    -- the answer stays true for the rest of the script's transaction.
    IF dbops._ledger_in_transaction_block() THEN
        PERFORM dbops._ledger_lock();
    END IF;

    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF FOUND AND r.status IN ('applied', 'baseline') THEN
        IF r.checksum IS NOT NULL AND v_checksum IS NOT NULL
           AND r.checksum <> v_checksum THEN
            BEGIN
                RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', v_version
                    USING ERRCODE = 'DB001',
                          DETAIL = format('Recorded checksum %s (%s by %s); this script has %s.',
                                          r.checksum, r.status, r.applied_by, v_checksum),
                          HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                IF NOT pg_catalog.pg_is_in_recovery() THEN
                    PERFORM dbops._migration_failed(v_version, 'migration_pending',
                                                    v_checksum, v_state, v_msg);
                END IF;
                RAISE;
            END;
        END IF;
        RETURN false;
    END IF;
    IF NOT FOUND AND dbops._ledger_covering_baseline(v_version) IS NOT NULL THEN
        RETURN false;
    END IF;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION dbops.migration_pending(text, text) IS
    'True when the version still has to be applied (for psql \if); takes the ledger lock inside a transaction block; raises DB001 on checksum drift';

CREATE FUNCTION dbops._migration_ledger_finish()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE dbops.migrations m
    SET finished_at = clock_timestamp(),
        duration_ms = round(extract(epoch FROM clock_timestamp() - m.started_at) * 1000, 3)
    WHERE m.version = NEW.version AND m.finished_at IS NULL;
    RETURN NULL;
END;
$$;
-- Rows opened by migration_begin() get their finish time at COMMIT.
CREATE CONSTRAINT TRIGGER migrations_finish_at_commit
    AFTER INSERT OR UPDATE ON dbops.migrations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.finished_at IS NULL AND NEW.status = 'applied')
    EXECUTE FUNCTION dbops._migration_ledger_finish();

CREATE FUNCTION dbops.migration_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_begin.version;
    v_checksum text := nullif(migration_begin.checksum, '');
    v_decision text;
    v_state   text;
    v_msg     text;
BEGIN
    PERFORM dbops._ledger_writable('open a migration');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_check_checksum(v_checksum);
    IF migration_begin.requires IS NULL OR array_position(migration_begin.requires, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'requires must be an array of versions without NULLs'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT dbops._ledger_in_transaction_block() THEN
        RAISE EXCEPTION 'dbops.migration_begin() must be called inside the transaction of the migration'
            USING ERRCODE = 'no_active_sql_transaction',
                  HINT = 'Start the script with BEGIN (or run psql with --single-transaction); the version is recorded when that transaction commits.';
    END IF;
    IF current_setting('dbops.current_migration') <> '' THEN
        RAISE EXCEPTION 'migration % is already open in this transaction',
                        current_setting('dbops.current_migration')
            USING ERRCODE = 'DB004',
                  HINT = 'Run one migration per transaction.';
    END IF;
    PERFORM dbops._ledger_lock();

    BEGIN
        v_decision := dbops._migration_decide(v_version, v_checksum,
                                              migration_begin.requires,
                                              migration_begin.allow_out_of_order,
                                              'migration_begin');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM dbops._migration_failed(v_version, 'migration_begin',
                                        v_checksum, v_state, v_msg);
        RAISE;
    END;

    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, requires)
    VALUES (v_version, migration_begin.description, v_checksum, 'applied',
            migration_begin.requires)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = NULL,
            duration_ms = NULL, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (v_version, 'apply', 'migration_begin', v_checksum,
            'recorded when the transaction commits');
    PERFORM set_config('dbops.current_migration', v_version, true);
    BEGIN
        PERFORM dbops._migration_arm(v_version, 'migration_begin', v_checksum, NULL, NULL,
            current_user::text, session_user::text, current_setting('application_name'),
            inet_client_addr()::text, pg_backend_pid());
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'a failure of migration % will not be recorded in dbops.migration_events: %',
            v_version, SQLERRM;
    END;
    RETURN 'open';
END;
$$;
COMMENT ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) IS
    'Open a migration in the current transaction of a psql script: ledger lock, checks, row recorded at COMMIT';

-- ---------------------------------------------------------------------------
-- DDL capture
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops._migration_capture_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version text := current_setting('dbops.current_migration', true);
BEGIN
    IF v_version IS NULL OR v_version = '' THEN
        RETURN;
    END IF;
    IF TG_EVENT = 'sql_drop' THEN
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, TG_TAG, d.object_type, d.schema_name, d.object_identity
        FROM pg_event_trigger_dropped_objects() AS d
        WHERE d.original OR d.normal;
    ELSE
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, c.command_tag, c.object_type, c.schema_name, c.object_identity
        FROM pg_event_trigger_ddl_commands() AS c;
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_capture_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER dbops_migration_ddl
    ON ddl_command_end EXECUTE FUNCTION dbops._migration_capture_ddl();
CREATE EVENT TRIGGER dbops_migration_drop
    ON sql_drop EXECUTE FUNCTION dbops._migration_capture_ddl();

-- ---------------------------------------------------------------------------
-- status, rollback, baseline, repair, import
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops.migration_status(
    checksums jsonb DEFAULT NULL,
    OUT version text, OUT description text, OUT status text,
    OUT checksum text, OUT expected_checksum text, OUT drift boolean,
    OUT applied_by name, OUT started_at timestamptz, OUT finished_at timestamptz,
    OUT duration_ms numeric, OUT requires text[],
    OUT last_event text, OUT last_event_at timestamptz,
    OUT last_sqlstate text, OUT last_message text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF checksums IS NOT NULL AND jsonb_typeof(checksums) <> 'object' THEN
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
        FROM jsonb_each_text(coalesce(checksums, '{}')) AS j
    ), versions AS (
        SELECT m.version FROM dbops.migrations m
        UNION SELECT x.version FROM expected x
        UNION SELECT l.version FROM last l
    )
    SELECT v.version, m.description,
           CASE WHEN m.version IS NOT NULL THEN m.status
                WHEN dbops._ledger_covering_baseline(v.version) IS NOT NULL THEN 'baseline'
                WHEN l.event = 'failed' THEN 'failed'
                ELSE 'pending' END,
           m.checksum, x.checksum,
           CASE WHEN x.checksum IS NULL OR m.checksum IS NULL
                     OR m.status NOT IN ('applied', 'baseline') THEN NULL
                ELSE m.checksum <> x.checksum END,
           m.applied_by, m.started_at, m.finished_at, m.duration_ms, m.requires,
           l.event, l.event_time, l.sqlstate, l.message
    FROM versions v
    LEFT JOIN dbops.migrations m ON m.version = v.version
    LEFT JOIN expected x ON x.version = v.version
    LEFT JOIN last l ON l.version = v.version
    ORDER BY dbops.migration_version_key(v.version) NULLS LAST, v.version COLLATE "C";
END;
$$;
COMMENT ON FUNCTION dbops.migration_status(jsonb) IS
    'Every version with status, timing, last event, and drift against the checksums supplied as {"version": "checksum"}';

CREATE FUNCTION dbops.migration_rollback(
    version text,
    body text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version  text := migration_rollback.version;
    v_checksum text := dbops.migration_checksum(migration_rollback.body);
    r          dbops.migrations;
    v_deps     text[];
    v_prev     text;
    v_state    text;
    v_msg      text;
BEGIN
    PERFORM dbops._ledger_writable('roll back a migration');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_lock();
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF NOT FOUND OR r.status <> 'applied' THEN
        RAISE EXCEPTION 'migration % is not applied', v_version
            USING ERRCODE = 'DB005',
                  DETAIL = CASE WHEN FOUND THEN format('Its status is %s.', r.status)
                                ELSE 'It is not in dbops.migrations.' END,
                  HINT = 'Only applied versions can be rolled back; see dbops.migration_status().';
    END IF;
    SELECT array_agg(m.version ORDER BY m.version) INTO v_deps
    FROM dbops.migrations m
    WHERE m.status = 'applied' AND v_version = ANY (m.requires);
    IF v_deps IS NOT NULL THEN
        RAISE EXCEPTION 'migration % is required by applied migrations: %',
                        v_version, array_to_string(v_deps, ', ')
            USING ERRCODE = 'DB006',
                  HINT = 'Roll back the dependent versions first.';
    END IF;
    -- only a failing rollback body is a failed attempt worth an event
    BEGIN
        IF migration_rollback.body IS NOT NULL THEN
            v_prev := current_setting('dbops.current_migration');
            PERFORM set_config('dbops.current_migration', v_version, true);
            EXECUTE migration_rollback.body;
            PERFORM set_config('dbops.current_migration', v_prev, true);
        END IF;
        UPDATE dbops.migrations m SET status = 'rolled_back' WHERE m.version = v_version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (v_version, 'rollback', 'migration_rollback', v_checksum,
                CASE WHEN migration_rollback.body IS NULL THEN 'recorded without a rollback body' END);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM dbops._migration_failed(v_version, 'migration_rollback', v_checksum, v_state, v_msg);
        RAISE;
    END;
    RETURN 'rolled_back';
END;
$$;
COMMENT ON FUNCTION dbops.migration_rollback(text, text) IS
    'Run the rollback body of an applied version (if given) and mark it rolled_back';

CREATE FUNCTION dbops.migration_baseline(
    version text,
    description text DEFAULT 'baseline')
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_baseline.version;
    r         dbops.migrations;
BEGIN
    PERFORM dbops._ledger_writable('record a baseline');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_lock();
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF FOUND AND r.status IN ('applied', 'baseline') THEN
        RAISE EXCEPTION 'migration % is already %', v_version, r.status
            USING ERRCODE = 'DB004';
    END IF;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, finished_at, duration_ms)
    VALUES (v_version, migration_baseline.description, NULL, 'baseline', clock_timestamp(), 0)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = NULL, status = 'baseline',
            applied_by = EXCLUDED.applied_by, "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name, client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = 0, requires = '{}';
    INSERT INTO dbops.migration_events (version, event, operation, message)
    VALUES (v_version, 'baseline', 'migration_baseline',
            'versions up to this one are taken as applied');
    RETURN 'baseline';
END;
$$;
COMMENT ON FUNCTION dbops.migration_baseline(text, text) IS
    'Record that the schema already contains every version up to this one';

CREATE FUNCTION dbops.migration_repair(
    version text,
    checksum text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_repair.version;
    v_checksum text := nullif(migration_repair.checksum, '');
    r         dbops.migrations;
BEGIN
    PERFORM dbops._ledger_writable('repair the migration ledger');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_check_checksum(v_checksum);
    PERFORM dbops._ledger_lock();
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF FOUND THEN
        UPDATE dbops.migrations m SET checksum = v_checksum
        WHERE m.version = v_version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (v_version, 'repair', 'migration_repair', v_checksum,
                format('checksum %s -> %s', coalesce(r.checksum, 'NULL'),
                       coalesce(v_checksum, 'NULL')));
        RETURN 'repaired';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.migration_events e WHERE e.version = v_version) THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (v_version, 'repair', 'migration_repair', v_checksum,
                'failed attempts acknowledged');
        RETURN 'acknowledged';
    END IF;
    RAISE EXCEPTION 'migration % is not in the ledger', v_version
        USING ERRCODE = 'DB005',
              HINT = 'See dbops.migration_status() for the recorded versions.';
END;
$$;
COMMENT ON FUNCTION dbops.migration_repair(text, text) IS
    'Record a deliberate new checksum for a version (NULL: stop checking), or acknowledge its failed attempts';

CREATE FUNCTION dbops.migration_import(source regclass)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_kind  char;
    v_cols  text[];
    v_shape text;
    v_sql   text;
    v_count bigint;
BEGIN
    PERFORM dbops._ledger_writable('import a migration ledger');
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO v_kind FROM pg_catalog.pg_class c WHERE c.oid = source;
    IF v_kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
        RAISE EXCEPTION '"%" is not a table or view', source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT array_agg(a.attname::text) INTO v_cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped;

    IF v_cols @> ARRAY['installed_rank', 'version', 'description', 'installed_by',
                       'installed_on', 'execution_time', 'success'] THEN
        v_shape := 'flyway';
        v_sql := format($q$
            SELECT s.version::text, s.description::text, s.installed_by::text,
                   s.installed_on::timestamptz, s.execution_time::numeric
            FROM %s s
            WHERE s.version IS NOT NULL AND s.success
            ORDER BY s.installed_rank$q$, source);
    ELSIF v_cols @> ARRAY['version_num'] THEN
        v_shape := 'alembic';
        v_sql := format($q$
            SELECT s.version_num::text, 'alembic revision'::text, NULL::text,
                   NULL::timestamptz, NULL::numeric
            FROM %s s WHERE s.version_num IS NOT NULL$q$, source);
    ELSIF v_cols @> ARRAY['version'] THEN
        v_shape := 'schema_migrations';
        v_sql := format($q$
            SELECT s.version::text, NULL::text, NULL::text, NULL::timestamptz, NULL::numeric
            FROM %s s WHERE s.version IS NOT NULL$q$, source);
    ELSE
        RAISE EXCEPTION '"%" is not a migration ledger dbops can import', source
            USING ERRCODE = 'DB007',
                  HINT = 'dbops.migration_import() reads a table with a "version" column (schema_migrations), alembic_version (version_num), or flyway_schema_history.';
    END IF;

    PERFORM dbops._ledger_lock();
    EXECUTE format($q$
        WITH src (version, description, installed_by, installed_on, execution_time) AS (%s),
        ins AS (
            INSERT INTO dbops.migrations AS m
                (version, description, checksum, status, applied_by, started_at,
                 finished_at, duration_ms)
            SELECT DISTINCT ON (s.version) btrim(s.version), coalesce(s.description, 'imported'),
                   NULL, 'applied',
                   coalesce(s.installed_by, current_user::text)::name,
                   coalesce(s.installed_on, clock_timestamp()),
                   coalesce(s.installed_on, clock_timestamp()), s.execution_time
            FROM src s
            WHERE btrim(s.version) <> ''
            ON CONFLICT (version) DO NOTHING
            RETURNING m.version)
        INSERT INTO dbops.migration_events (version, event, operation, message)
        SELECT i.version, 'import', 'migration_import', %L FROM ins i$q$,
        v_sql, format('imported from %s (%s)', source, v_shape));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION dbops.migration_import(regclass) IS
    'Adopt an existing ledger table (schema_migrations, alembic_version, flyway_schema_history); returns the number of versions imported';

-- Writing functions are granted deliberately (see README).
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_rollback(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_baseline(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_repair(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_import(regclass) FROM PUBLIC;
-- dbops._migration_record_failure() stays executable: it records only for
-- roles that may INSERT into dbops.migration_events themselves.

-- ---------------------------------------------------------------------------
-- retention
-- ---------------------------------------------------------------------------

CREATE TABLE dbops.retention_policies (
    policy_id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation            regclass NOT NULL UNIQUE,
    time_column         name NOT NULL,
    keep                interval NOT NULL CHECK (keep > interval '0'),
    batch_size          integer NOT NULL CHECK (batch_size > 0),
    max_rows_per_run    bigint CHECK (max_rows_per_run > 0),
    max_run_time        interval CHECK (max_run_time > interval '0'),
    drop_partitions     boolean NOT NULL DEFAULT true,
    enabled             boolean NOT NULL DEFAULT true,
    created             timestamptz NOT NULL DEFAULT now(),
    created_by          name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE dbops.retention_policies IS
    'Retention policies: rows of relation older than now() - keep (by time_column) are purged by CALL dbops.purge()';
GRANT SELECT ON dbops.retention_policies TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.retention_policies', '');

CREATE TABLE dbops.purge_runs (
    run_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id           integer,
    relation            text NOT NULL,
    cutoff              timestamptz,
    started             timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished            timestamptz,
    rows_deleted        bigint NOT NULL DEFAULT 0,
    partitions_dropped  integer NOT NULL DEFAULT 0,
    partitions_detached integer NOT NULL DEFAULT 0,
    batches             integer NOT NULL DEFAULT 0,
    longest_batch_ms    numeric(12,3) NOT NULL DEFAULT 0,
    lock_retries        integer NOT NULL DEFAULT 0,
    paused_ms           bigint NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'partial', 'failed', 'interrupted')),
    sqlstate            text,
    message             text,
    pid                 integer NOT NULL DEFAULT pg_backend_pid(),
    backend_start       timestamptz
);
CREATE INDEX ON dbops.purge_runs (policy_id, started);
CREATE INDEX ON dbops.purge_runs (finished);
COMMENT ON TABLE dbops.purge_runs IS
    'One row per policy per CALL dbops.purge(); kept for dbops.purge_runs_keep';
GRANT SELECT ON dbops.purge_runs TO pg_monitor;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('retention', 1, NULL);

-- Internal helpers (C): guards and the per-policy session lock.
CREATE FUNCTION dbops._purge_begin(dry_run boolean DEFAULT false,
    OUT batch_target_ms integer, OUT batch_max integer,
    OUT lock_timeout_ms integer, OUT lock_retries integer,
    OUT max_replica_lag_ms integer, OUT runs_keep_s integer, OUT pid integer,
    OUT yield double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_purge_begin'
LANGUAGE C VOLATILE;
CREATE FUNCTION dbops._purge_busy_sessions() RETURNS integer
AS 'MODULE_PATHNAME', 'dbops_purge_busy_sessions'
LANGUAGE C VOLATILE;
CREATE FUNCTION dbops._purge_lock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_lock'
LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION dbops._purge_unlock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_unlock'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION dbops._purge_begin(boolean), dbops._purge_lock(integer),
    dbops._purge_unlock(integer), dbops._purge_busy_sessions() FROM PUBLIC;

-- Worst replay lag of the streaming standbys, in ms (0 without standbys).
-- SECURITY DEFINER so that the lag guard works for a role without pg_monitor.
CREATE FUNCTION dbops.replica_replay_lag_ms() RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(max(extract(epoch FROM replay_lag) * 1000), 0)::double precision
      FROM pg_stat_replication
$$;
COMMENT ON FUNCTION dbops.replica_replay_lag_ms() IS
    'Worst replay_lag of the streaming standbys in ms; dbops.purge() pauses while it exceeds dbops.purge_max_replica_lag';

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
--            date columns, whose ties could make a range batch too large.
-- from_value / to_value say whether the lower / upper bound is given.
CREATE FUNCTION dbops._purge_batch_sql(target regclass, time_column name, mode text,
    from_value boolean DEFAULT false, to_value boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ text;
    lower_cond text;
BEGIN
    SELECT format_type(a.atttypid, NULL) INTO typ
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, target
            USING ERRCODE = 'undefined_column';
    END IF;
    lower_cond := CASE WHEN from_value THEN format(' AND %I >= $1::%s', time_column, typ) ELSE '' END;
    CASE mode
    WHEN 'bound' THEN
        RETURN format('SELECT b.bound::text, (SELECT count(*) FROM (SELECT FROM %1$s WHERE %2$I = b.bound LIMIT $3) t) '
                      'FROM (SELECT %2$I AS bound FROM %1$s WHERE %2$I < $2%3$s ORDER BY %2$I OFFSET $3 LIMIT 1) b',
                      target, time_column, lower_cond);
    WHEN 'range' THEN
        RETURN format('DELETE FROM %1$s WHERE %2$I < $3%3$s%4$s',
                      target, time_column, lower_cond,
                      CASE WHEN to_value THEN format(' AND %I <= $2::%s', time_column, typ) ELSE '' END);
    WHEN 'skip_locked' THEN
        RETURN format(
            'WITH d AS (DELETE FROM %1$s WHERE ctid = ANY (ARRAY('
            'SELECT ctid FROM %1$s WHERE %2$I < $2%3$s '
            'ORDER BY %2$I LIMIT $3 FOR UPDATE SKIP LOCKED)) AND %2$I < $2 RETURNING %2$I) '
            'SELECT count(*), max(%2$I)::text FROM d',
            target, time_column, lower_cond);
    ELSE
        RAISE EXCEPTION 'unknown batch mode "%"', mode USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END
$$;
REVOKE ALL ON FUNCTION dbops._purge_batch_sql(regclass, name, text, boolean, boolean) FROM PUBLIC;

-- Checks shared by add and alter; raises on what cannot work, NOTICEs on
-- what will work badly.
CREATE FUNCTION dbops._retention_validate(relation regclass, time_column name,
    keep interval, batch_size integer)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind "char";
    typ oid;
    attnum smallint;
    fk record;
BEGIN
    IF relation IS NULL OR time_column IS NULL OR keep IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, time_column, keep and batch_size must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = relation;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to tables and partitioned tables (not views, materialized views, foreign tables or indexes).';
    END IF;
    IF keep <= interval '0' THEN
        RAISE EXCEPTION 'keep must be a positive interval, not %', keep
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'keep is how long rows are kept, e.g. interval ''90 days''.';
    END IF;
    IF batch_size <= 0 THEN
        RAISE EXCEPTION 'batch_size must be positive, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.atttypid, a.attnum INTO typ, attnum
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, relation
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column rows are aged by.';
    END IF;
    IF typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not a date/time type',
                time_column, relation, format_type(typ, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;

    -- a usable index: a valid btree index whose first column is time_column
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
                   WHERE i.indrelid = relation AND i.indkey[0] = attnum
                     AND am.amname = 'btree' AND i.indpred IS NULL
                     AND (i.indisvalid OR ic.relkind = 'I')) THEN
        RAISE NOTICE 'no index on %(%): every purge batch would scan the whole table', relation, time_column
            USING HINT = format('CREATE INDEX CONCURRENTLY ON %s (%I); dbops.purge() refuses to purge without it.',
                                relation, time_column);
    END IF;

    -- foreign keys that point at the table
    FOR fk IN
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
        IF NOT fk.indexed THEN
            RAISE NOTICE 'foreign key % on % references % and has no index on (%)',
                    fk.conname, fk.referencing, relation, fk.cols
                USING HINT = format('Each purged row makes PostgreSQL look for referencing rows: CREATE INDEX CONCURRENTLY ON %s (%s);',
                                    fk.referencing, fk.cols);
        END IF;
        IF fk.confdeltype IN ('c', 'n', 'd') THEN
            RAISE NOTICE 'foreign key % on % references % with ON DELETE %: purging % also changes %',
                    fk.conname, fk.referencing, relation,
                    CASE fk.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END,
                    relation, fk.referencing
                USING HINT = 'Those changes run inside each purge batch and are not counted in rows_deleted; give the referencing table its own policy or lower batch_size.';
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION dbops._retention_validate(regclass, name, interval, integer) FROM PUBLIC;

CREATE FUNCTION dbops.add_retention_policy(
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
    id integer;
BEGIN
    PERFORM dbops._retention_validate(relation, time_column, keep, batch_size);
    IF max_rows_per_run IS NOT NULL AND max_rows_per_run <= 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_run_time IS NOT NULL AND max_run_time <= interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.retention_policies p WHERE p.relation = add_retention_policy.relation) THEN
        RAISE EXCEPTION 'relation % already has a retention policy', relation
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change it with dbops.alter_retention_policy() or drop it with dbops.remove_retention_policy().';
    END IF;
    INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, drop_partitions, enabled)
    VALUES (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, coalesce(drop_partitions, true), coalesce(enabled, true))
    RETURNING policy_id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean) IS
    'Add a retention policy: rows of relation older than now() - keep by time_column are purged by CALL dbops.purge()';

CREATE FUNCTION dbops.alter_retention_policy(
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
    p dbops.retention_policies;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO p FROM dbops.retention_policies r WHERE r.relation = alter_retention_policy.relation FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    IF time_column IS NOT NULL OR keep IS NOT NULL OR batch_size IS NOT NULL THEN
        PERFORM dbops._retention_validate(relation, coalesce(time_column, p.time_column),
                                          coalesce(keep, p.keep), coalesce(batch_size, p.batch_size));
    END IF;
    IF max_rows_per_run < 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_run_time < interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value';
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
           enabled = coalesce(alter_retention_policy.enabled, r.enabled)
     WHERE r.policy_id = p.policy_id;
END
$$;
COMMENT ON FUNCTION dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean) IS
    'Change a retention policy: NULL arguments leave a setting as it is; 0 removes a cap';

CREATE FUNCTION dbops.remove_retention_policy(relation regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM dbops.retention_policies r WHERE r.relation = remove_retention_policy.relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION dbops.remove_retention_policy(regclass) IS
    'Remove the retention policy of relation (its purge_runs rows stay)';

-- Partitions of a partitioned policy table that lie wholly before cutoff:
-- direct range partitions on the time column whose upper bound is at or
-- below the cutoff, oldest first, never the last (non-default) partition.
CREATE FUNCTION dbops._purge_old_partitions(parent regclass, time_column name, cutoff timestamptz)
RETURNS TABLE (partition regclass, upper_bound timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ text;
    nparts integer;
    r record;
    upper text;
    old boolean;
    n integer := 0;
BEGIN
    SELECT format_type(a.atttypid, NULL) INTO typ
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = parent AND pt.partstrat = 'r' AND pt.partnatts = 1
       AND a.attname = time_column;
    IF typ IS NULL THEN
        RETURN;             -- not range-partitioned on the time column
    END IF;
    SELECT count(*) INTO nparts
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
    FOR r IN
        SELECT c.oid::regclass AS part,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(.*\) TO \((.*)\)$'))[1] AS ub
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
    LOOP
        CONTINUE WHEN r.ub IS NULL OR r.ub = 'MAXVALUE' OR r.ub = 'MINVALUE';
        upper := r.ub;
        IF left(upper, 1) = '''' THEN
            upper := replace(substr(upper, 2, length(upper) - 2), '''''', '''');
        END IF;
        EXECUTE format('SELECT %L::%s <= $1, %L::%s::timestamptz', upper, typ, upper, typ)
           INTO old, upper_bound USING cutoff;
        IF old THEN
            partition := r.part;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION dbops._purge_old_partitions(regclass, name, timestamptz) FROM PUBLIC;

CREATE FUNCTION dbops.purge_preview(relation regclass DEFAULT NULL)
RETURNS TABLE (target regclass, time_column name, cutoff timestamptz,
               rows_to_delete bigint, oldest timestamptz, newest timestamptz,
               partitions_to_drop integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    nparts integer;
BEGIN
    IF purge_preview.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge_preview.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge_preview.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    FOR p IN SELECT r.* FROM dbops.retention_policies r
              WHERE ((purge_preview.relation IS NULL AND r.enabled) OR r.relation = purge_preview.relation)
                AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relation)
              ORDER BY r.policy_id
    LOOP
        target := p.relation;
        time_column := p.time_column;
        cutoff := now() - p.keep;
        EXECUTE format('SELECT count(*), min(%2$I)::timestamptz, max(%2$I)::timestamptz FROM %1$s WHERE %2$I < $1',
                       p.relation, p.time_column)
           INTO rows_to_delete, oldest, newest USING cutoff;
        SELECT count(*) INTO nparts FROM dbops._purge_old_partitions(p.relation, p.time_column, cutoff);
        partitions_to_drop := CASE WHEN nparts > 0 AND nparts = (SELECT count(*) FROM pg_inherits i
                                       JOIN pg_class c ON c.oid = i.inhrelid
                                      WHERE i.inhparent = p.relation
                                        AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT')
                                   THEN nparts - 1 ELSE nparts END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION dbops.purge_preview(regclass) IS
    'What CALL dbops.purge() would delete now: rows older than the cutoff, the oldest and newest of them, partitions it would drop';

CREATE PROCEDURE dbops.purge(relation regclass DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    s record;
    pv record;
    p dbops.retention_policies;
    ids integer[];
    pid_ integer;
    run bigint;
    run_start timestamptz;
    policy_start timestamptz;
    v_cutoff timestamptz;
    deadline timestamptz;
    kind "char";
    part record;
    parts regclass[];
    nparts_all integer;
    targets regclass[];
    target regclass;
    sql_bound text;
    sql_bound_from text;
    sql_range text;
    sql_range_from text;
    sql_range_to text;
    sql_range_from_to text;
    sql_skip text;
    sql_skip_from text;
    is_date boolean;
    use_skip boolean;
    skipped_any boolean;
    ties bigint;
    upper_ text;
    size integer;
    failures text[] := '{}';
    first_state text;
    lim integer;
    lower_ text;
    n bigint;
    maxval text;
    t0 timestamptz;
    ms numeric;
    total bigint;
    retries integer;
    lag double precision;
    pause_start timestamptz;
    v_status text;
    v_state text;
    v_msg text;
    v_hint text;
    locked boolean;
    more boolean;
BEGIN
    -- refuses on a standby and in a transaction block; loads the settings
    s := dbops._purge_begin(dry_run);

    IF purge.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;

    IF dry_run THEN
        FOR pv IN SELECT * FROM dbops.purge_preview(purge.relation) LOOP
            RAISE NOTICE '%: % rows older than % would be deleted (oldest %, newest %)%',
                pv.target, pv.rows_to_delete, pv.cutoff, pv.oldest, pv.newest,
                CASE WHEN pv.partitions_to_drop > 0
                     THEN format(', %s of them by dropping %s partitions', pv.rows_to_delete, pv.partitions_to_drop)
                     ELSE '' END;
        END LOOP;
        RETURN;
    END IF;

    run_start := clock_timestamp();

    -- runs whose backend is gone did not finish: say so
    UPDATE dbops.purge_runs r
       SET status = 'interrupted', finished = coalesce(r.finished, run_start),
           message = format('backend %s ended during the run (crash, kill or disconnect)', r.pid)
     WHERE r.status = 'running'
       AND (r.pid = pg_backend_pid()
            OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                            WHERE a.pid = r.pid
                              AND (a.backend_start IS NULL OR r.backend_start IS NULL
                                   OR a.backend_start = r.backend_start)));
    -- purge_runs' own retention
    DELETE FROM dbops.purge_runs r
     WHERE r.finished < run_start - make_interval(secs => s.runs_keep_s);
    COMMIT;

    SELECT array_agg(r.policy_id ORDER BY r.policy_id) INTO ids
      FROM dbops.retention_policies r
     WHERE (purge.relation IS NULL AND r.enabled) OR r.relation = purge.relation;

    FOREACH pid_ IN ARRAY coalesce(ids, '{}') LOOP
        SELECT * INTO p FROM dbops.retention_policies r WHERE r.policy_id = pid_;
        CONTINUE WHEN NOT FOUND;    -- removed meanwhile

        IF NOT dbops._purge_lock(pid_) THEN
            RAISE NOTICE 'another session is already purging %; skipped', p.relation
                USING HINT = 'Its progress is in dbops.purge_runs (status running).';
            CONTINUE;
        END IF;

        -- we hold the policy's lock: a run still marked running is not
        UPDATE dbops.purge_runs r
           SET status = 'interrupted', finished = coalesce(r.finished, clock_timestamp()),
               message = coalesce(r.message, format('backend %s stopped during the run (error, cancel or crash)', r.pid))
         WHERE r.policy_id = pid_ AND r.status = 'running';

        policy_start := clock_timestamp();
        v_cutoff := run_start - p.keep;
        deadline := CASE WHEN p.max_run_time IS NOT NULL THEN policy_start + p.max_run_time END;
        INSERT INTO dbops.purge_runs (policy_id, relation, cutoff, started, backend_start)
        VALUES (pid_, p.relation::text, v_cutoff, policy_start,
                (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()))
        RETURNING run_id INTO run;
        COMMIT;

        v_status := NULL;
        v_state := NULL;
        v_msg := NULL;
        total := 0;
        retries := 0;

        -- what cannot work fails the run, with the reason
        SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = p.relation;
        IF kind IS NULL THEN
            v_status := 'failed';
            v_state := '42P01';
            v_msg := format('relation with OID %s no longer exists', p.relation::oid);
        ELSIF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                           JOIN pg_am am ON am.oid = ic.relam
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = p.relation AND a.attname = p.time_column
                            AND am.amname = 'btree' AND i.indpred IS NULL
                            AND (i.indisvalid OR ic.relkind = 'I')) THEN
            v_status := 'failed';
            v_state := '55000';
            v_msg := format('no index on %s (%I): batches would scan the whole table', p.relation, p.time_column);
        END IF;

        -- partitions wholly older than the cutoff: detach (and drop)
        IF v_status IS NULL AND kind = 'p' THEN
            SELECT array_agg(o.partition ORDER BY o.upper_bound) INTO parts
              FROM dbops._purge_old_partitions(p.relation, p.time_column, v_cutoff) o;
            SELECT count(*) INTO nparts_all
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = p.relation AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
            IF cardinality(parts) >= nparts_all THEN
                parts := parts[1:nparts_all - 1];       -- never the last one
            END IF;
            FOREACH target IN ARRAY coalesce(parts, '{}') LOOP
                LOOP
                    IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
                        v_status := 'partial';
                        v_msg := 'stopped at max_run_time';
                        EXIT;
                    END IF;
                    locked := false;
                    PERFORM set_config('lock_timeout', s.lock_timeout_ms || 'ms', true);
                    t0 := clock_timestamp();
                    BEGIN
                        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p.relation, target);
                        IF p.drop_partitions THEN
                            EXECUTE format('DROP TABLE %s', target);
                        END IF;
                    EXCEPTION
                        WHEN lock_not_available THEN
                            locked := true;
                        WHEN OTHERS THEN
                            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                            v_status := 'failed';
                            v_msg := format('detaching partition %s: %s', target, v_msg);
                    END;
                    EXIT WHEN v_status IS NOT NULL;
                    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
                    IF locked THEN
                        retries := retries + 1;
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = run;
                        COMMIT;
                        IF retries > s.lock_retries THEN
                            v_status := 'partial';
                            v_state := '55P03';
                            v_msg := format('could not lock %s to detach %s within lock_timeout after %s attempts',
                                            p.relation, target, retries);
                            EXIT;
                        END IF;
                        PERFORM pg_sleep(least(0.05 * 2 ^ retries, 5));
                        CONTINUE;
                    END IF;
                    retries := 0;
                    UPDATE dbops.purge_runs r
                       SET partitions_dropped = r.partitions_dropped + CASE WHEN p.drop_partitions THEN 1 ELSE 0 END,
                           partitions_detached = r.partitions_detached + CASE WHEN p.drop_partitions THEN 0 ELSE 1 END,
                           longest_batch_ms = greatest(r.longest_batch_ms, ms)
                     WHERE r.run_id = run;
                    COMMIT;
                    EXIT;
                END LOOP;
                EXIT WHEN v_status IS NOT NULL;
            END LOOP;
        END IF;

        -- rows: in batches, per leaf table
        IF v_status IS NULL THEN
            IF kind = 'p' THEN
                SELECT array_agg(t.relid ORDER BY t.relid) INTO targets
                  FROM pg_partition_tree(p.relation) t
                  JOIN pg_class c ON c.oid = t.relid
                 WHERE t.isleaf AND c.relkind = 'r';
            ELSE
                targets := ARRAY[p.relation];
            END IF;
            size := least(p.batch_size, s.batch_max);
            <<targets_loop>>
            FOREACH target IN ARRAY coalesce(targets, '{}') LOOP
                sql_bound := dbops._purge_batch_sql(target, p.time_column, 'bound', false);
                sql_bound_from := dbops._purge_batch_sql(target, p.time_column, 'bound', true);
                sql_range := dbops._purge_batch_sql(target, p.time_column, 'range', false, false);
                sql_range_from := dbops._purge_batch_sql(target, p.time_column, 'range', true, false);
                sql_range_to := dbops._purge_batch_sql(target, p.time_column, 'range', false, true);
                sql_range_from_to := dbops._purge_batch_sql(target, p.time_column, 'range', true, true);
                sql_skip := dbops._purge_batch_sql(target, p.time_column, 'skip_locked', false);
                sql_skip_from := dbops._purge_batch_sql(target, p.time_column, 'skip_locked', true);
                SELECT a.atttypid = 'date'::regtype INTO is_date
                  FROM pg_attribute a WHERE a.attrelid = target AND a.attname = p.time_column;
                lower_ := NULL;
                retries := 0;
                skipped_any := false;
                LOOP
                    IF p.max_rows_per_run IS NOT NULL AND total >= p.max_rows_per_run THEN
                        v_status := 'partial';
                        v_msg := format('stopped at max_rows_per_run (%s)', p.max_rows_per_run);
                        EXIT targets_loop;
                    END IF;
                    IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
                        v_status := 'partial';
                        v_msg := format('stopped at max_run_time (%s)', p.max_run_time);
                        EXIT targets_loop;
                    END IF;

                    -- replica lag guard: wait, one short transaction per look
                    IF s.max_replica_lag_ms > 0 THEN
                        lag := dbops.replica_replay_lag_ms();
                        IF lag > s.max_replica_lag_ms THEN
                            pause_start := clock_timestamp();
                            WHILE lag > s.max_replica_lag_ms LOOP
                                IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
                                    EXIT;
                                END IF;
                                COMMIT;
                                PERFORM pg_sleep(0.5);
                                lag := dbops.replica_replay_lag_ms();
                            END LOOP;
                            UPDATE dbops.purge_runs r
                               SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - pause_start) * 1000)::bigint
                             WHERE r.run_id = run;
                            COMMIT;
                            IF lag > s.max_replica_lag_ms THEN
                                v_status := 'partial';
                                v_msg := format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag',
                                                p.max_run_time, round(lag::numeric));
                                EXIT targets_loop;
                            END IF;
                        END IF;
                    END IF;

                    lim := size;
                    IF p.max_rows_per_run IS NOT NULL THEN
                        lim := least(lim, p.max_rows_per_run - total);
                    END IF;

                    -- one batch: find the value lim rows on, delete the range
                    -- up to it (both through the index); if a row lock is
                    -- not granted in time, the same batch again skipping
                    -- locked rows
                    locked := false;
                    use_skip := is_date;
                    upper_ := NULL;
                    PERFORM set_config('lock_timeout', s.lock_timeout_ms || 'ms', true);
                    -- through the index, in its order; bounds as ISO text
                    PERFORM set_config('enable_seqscan', 'off', true);
                    PERFORM set_config('enable_bitmapscan', 'off', true);
                    PERFORM set_config('enable_sort', 'off', true);
                    PERFORM set_config('datestyle', 'ISO, YMD', true);
                    t0 := clock_timestamp();
                    IF NOT use_skip THEN
                        BEGIN
                            IF lower_ IS NULL THEN
                                EXECUTE sql_bound INTO upper_, ties USING lower_, v_cutoff, lim - 1;
                            ELSE
                                EXECUTE sql_bound_from INTO upper_, ties USING lower_, v_cutoff, lim - 1;
                            END IF;
                            IF upper_ IS NOT NULL AND ties > lim / 4 THEN
                                -- many rows share the bound: a range would
                                -- take them all, so count rows instead
                                use_skip := true;
                            ELSE
                                EXECUTE CASE WHEN lower_ IS NULL AND upper_ IS NULL THEN sql_range
                                             WHEN lower_ IS NULL THEN sql_range_to
                                             WHEN upper_ IS NULL THEN sql_range_from
                                             ELSE sql_range_from_to END
                                  USING lower_, upper_, v_cutoff;
                                GET DIAGNOSTICS n = ROW_COUNT;
                                maxval := upper_;
                            END IF;
                        EXCEPTION
                            WHEN lock_not_available THEN
                                use_skip := true;
                            WHEN OTHERS THEN
                                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                                v_status := 'failed';
                                EXIT targets_loop;
                        END;
                    END IF;
                    IF use_skip THEN
                        BEGIN
                            IF lower_ IS NULL THEN
                                EXECUTE sql_skip INTO n, maxval USING lower_, v_cutoff, lim;
                            ELSE
                                EXECUTE sql_skip_from INTO n, maxval USING lower_, v_cutoff, lim;
                            END IF;
                        EXCEPTION
                            WHEN lock_not_available THEN
                                locked := true;
                            WHEN OTHERS THEN
                                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                                v_status := 'failed';
                                EXIT targets_loop;
                        END;
                    END IF;
                    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;

                    IF locked THEN
                        retries := retries + 1;
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = run;
                        COMMIT;
                        IF retries > s.lock_retries THEN
                            v_status := 'partial';
                            v_state := '55P03';
                            v_msg := format('could not lock %s within lock_timeout (%s ms) after %s attempts',
                                            target, s.lock_timeout_ms, retries);
                            EXIT targets_loop;
                        END IF;
                        PERFORM pg_sleep(least(0.05 * 2 ^ retries, 5));
                        CONTINUE;
                    END IF;

                    IF use_skip AND n < lim THEN
                        skipped_any := true;
                    END IF;
                    IF n > 0 THEN
                        total := total + n;
                        UPDATE dbops.purge_runs r
                           SET rows_deleted = r.rows_deleted + n, batches = r.batches + 1,
                               longest_batch_ms = greatest(r.longest_batch_ms, ms)
                         WHERE r.run_id = run;
                    END IF;
                    COMMIT;

                    -- production first: while other sessions are busy,
                    -- leave them the time of the batch (times dbops.purge_yield)
                    IF n > 0 AND s.yield > 0 AND dbops._purge_busy_sessions() > 0 THEN
                        PERFORM pg_sleep(ms * s.yield / 1000.0);
                        UPDATE dbops.purge_runs r
                           SET paused_ms = r.paused_ms + round(ms * s.yield)::bigint
                         WHERE r.run_id = run;
                        COMMIT;
                    END IF;

                    IF (use_skip AND n >= lim) OR (NOT use_skip AND upper_ IS NOT NULL) THEN
                        -- a full batch: continue from its highest value,
                        -- sized toward the target batch time
                        retries := 0;
                        lower_ := maxval;
                        IF lim = size THEN
                            size := least(s.batch_max, greatest(10,
                                        round(size * least(2.0, greatest(0.5, s.batch_target_ms / greatest(ms, 1))))::integer));
                        END IF;
                    ELSIF lower_ IS NOT NULL THEN
                        -- end of the range: done, unless batches skipped
                        -- locked rows; then sweep once more from the start
                        EXIT WHEN NOT skipped_any;
                        lower_ := NULL;
                        skipped_any := false;
                    ELSIF n > 0 THEN
                        CONTINUE;
                    ELSE
                        -- nothing deleted from the start: done, unless rows
                        -- remain that other transactions hold locked
                        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I < $1)', target, p.time_column)
                           INTO more USING v_cutoff;
                        COMMIT;
                        EXIT WHEN NOT more;
                        retries := retries + 1;
                        IF retries > s.lock_retries THEN
                            v_status := 'partial';
                            v_state := '55P03';
                            v_msg := format('rows of %s older than the cutoff are locked by other transactions; gave up after %s attempts',
                                            target, retries);
                            EXIT targets_loop;
                        END IF;
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = run;
                        COMMIT;
                        PERFORM pg_sleep(least(0.05 * 2 ^ retries, 5));
                    END IF;
                END LOOP;
            END LOOP;
        END IF;

        UPDATE dbops.purge_runs r
           SET status = coalesce(v_status, 'done'), finished = clock_timestamp(),
               sqlstate = v_state, message = v_msg
         WHERE r.run_id = run;
        COMMIT;
        PERFORM dbops._purge_unlock(pid_);

        SELECT * INTO pv FROM dbops.purge_runs r WHERE r.run_id = run;
        IF pv.status = 'failed' THEN
            failures := failures || format('%s: %s', p.relation, pv.message);
            first_state := coalesce(first_state, pv.sqlstate);
            RAISE WARNING 'purge of % failed: %', p.relation, pv.message
                USING DETAIL = format('SQLSTATE %s; see dbops.purge_runs run_id %s', pv.sqlstate, run),
                      HINT = CASE pv.sqlstate WHEN '55000' THEN format('CREATE INDEX CONCURRENTLY ON %s (%I);', p.relation, p.time_column)
                                              WHEN '42P01' THEN 'Remove the policy with dbops.remove_retention_policy().'
                                              ELSE 'Fix the cause and CALL dbops.purge() again; committed batches stay deleted.' END;
        ELSE
            RAISE NOTICE '%: % rows deleted in % batches (longest % ms)%; %',
                p.relation, pv.rows_deleted, pv.batches, round(pv.longest_batch_ms),
                CASE WHEN pv.partitions_dropped + pv.partitions_detached > 0
                     THEN format(', %s partitions dropped, %s detached', pv.partitions_dropped, pv.partitions_detached)
                     ELSE '' END,
                pv.status || coalesce(': ' || pv.message, '');
        END IF;
    END LOOP;

    -- committed work stays; a failed policy still fails the CALL (and a
    -- scheduled job) so that it is noticed
    IF cardinality(failures) > 0 THEN
        RAISE EXCEPTION 'purge failed for % polic%: %', cardinality(failures),
                CASE WHEN cardinality(failures) = 1 THEN 'y' ELSE 'ies' END,
                array_to_string(failures, '; ')
            USING ERRCODE = coalesce(first_state, 'XX000'),
                  HINT = 'dbops.purge_runs has the details; batches committed before the failure stay deleted.';
    END IF;
END
$$;
COMMENT ON PROCEDURE dbops.purge(regclass, boolean) IS
    'Purge rows older than their policy''s keep, in small committed batches; dry_run only reports';

REVOKE ALL ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean),
    dbops.remove_retention_policy(regclass),
    dbops.purge_preview(regclass)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE dbops.purge(regclass, boolean) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- scheduling: pg_cron jobs for the recurring pieces, their state, health and
-- bloat history, and the health report in Prometheus format
-- ---------------------------------------------------------------------------
--
-- Nothing here refers to pg_cron's objects at install time: pg_cron may be
-- created after dbops, live in another database, or not be there at all.
-- The job commands call purge, bloat and reap_idle by name, resolved when
-- the job runs.

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
LANGUAGE C STABLE;
COMMENT ON FUNCTION dbops.cron_status() IS
    'Whether pg_cron is loaded, the database it keeps jobs in, whether it is installed here';

-- Raises the error that says what is missing unless pg_cron is usable from
-- this database; returns its installed version.
CREATE FUNCTION dbops.require_pg_cron()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
BEGIN
    st := dbops.cron_status();
    IF st.installed THEN
        IF string_to_array(split_part(st.version, '-', 1), '.')::int[] < '{1,3}' THEN
            RAISE EXCEPTION 'pg_cron % is too old for dbops', st.version
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Run ALTER EXTENSION pg_cron UPDATE (dbops needs pg_cron 1.4 or later).';
        END IF;
        RETURN st.version;
    END IF;
    IF NOT st.loaded THEN
        RAISE EXCEPTION 'pg_cron is not available on this server'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron is not loaded: it is not in shared_preload_libraries.',
                  HINT = 'Add pg_cron to shared_preload_libraries, restart the server, and run '
                         'CREATE EXTENSION pg_cron in the database named by cron.database_name.';
    END IF;
    IF st.cron_database IS DISTINCT FROM current_database() THEN
        RAISE EXCEPTION 'pg_cron keeps its jobs in database "%", not in "%"',
                st.cron_database, current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron schedules and records jobs only in the database named by cron.database_name.',
                  HINT = format('Connect to database %I, CREATE EXTENSION dbops there, and use '
                                'dbops.schedule(database => %L) and dbops.jobs from there.',
                                st.cron_database, current_database());
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

CREATE TABLE dbops.bloat_history (
    taken_at     timestamptz NOT NULL,
    relid        oid NOT NULL,
    relation     text NOT NULL,
    kind         text NOT NULL,
    method       text,
    size_bytes   bigint,
    bloat_bytes  bigint,
    bloat_pct    numeric,
    PRIMARY KEY (relid, kind, taken_at)
);
CREATE INDEX bloat_history_taken_at_idx ON dbops.bloat_history (taken_at);
COMMENT ON TABLE dbops.bloat_history IS
    'dbops.bloat() snapshots taken by dbops.bloat_snapshot(); kept for its "keep" interval';
SELECT pg_catalog.pg_extension_config_dump('dbops.bloat_history', '');
GRANT SELECT ON dbops.bloat_history TO pg_monitor;

CREATE FUNCTION dbops.health_snapshot(
    keep interval DEFAULT '14 days',
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_positive_interval('keep', keep, 'History older than keep is deleted, e.g. keep => ''14 days''.');
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot take a health snapshot on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Schedule dbops.health_snapshot() on the primary.';
    END IF;
    INSERT INTO dbops.health_history AS h (taken_at, check_name, status, value, unit, detail)
    SELECT now(), r.check_name, r.status, r.value, r.unit, r.detail
    FROM dbops.health() r
    ON CONFLICT (check_name, taken_at) DO UPDATE
        SET status = excluded.status, value = excluded.value,
            unit = excluded.unit, detail = excluded.detail;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    DELETE FROM dbops.health_history h WHERE h.taken_at < now() - keep;
    GET DIAGNOSTICS deleted = ROW_COUNT;
END;
$$;
REVOKE ALL ON FUNCTION dbops.health_snapshot(interval) FROM PUBLIC;
COMMENT ON FUNCTION dbops.health_snapshot(interval) IS
    'Append dbops.health() to dbops.health_history and delete history older than keep';

CREATE FUNCTION dbops.bloat_snapshot(
    keep interval DEFAULT '90 days',
    method text DEFAULT 'auto',
    min_size bigint DEFAULT 1048576,
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_positive_interval('keep', keep, 'History older than keep is deleted, e.g. keep => ''90 days''.');
    IF method IS NULL THEN
        RAISE EXCEPTION 'method must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use one of the methods of dbops.bloat(), e.g. ''auto''.';
    END IF;
    IF min_size IS NULL OR min_size < 0 THEN
        RAISE EXCEPTION 'min_size must be zero or more bytes, not %', coalesce(min_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot take a bloat snapshot on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Schedule dbops.bloat_snapshot() on the primary.';
    END IF;
    INSERT INTO dbops.bloat_history AS h
        (taken_at, relid, relation, kind, method, size_bytes, bloat_bytes, bloat_pct)
    SELECT now(), b.relation::oid, b.relation::text, b.kind, b.method,
           b.size_bytes, b.bloat_bytes, b.bloat_pct
    FROM dbops.bloat(NULL, bloat_snapshot.method) b
    WHERE b.size_bytes >= min_size
    ON CONFLICT (relid, kind, taken_at) DO UPDATE
        SET relation = excluded.relation, method = excluded.method,
            size_bytes = excluded.size_bytes, bloat_bytes = excluded.bloat_bytes,
            bloat_pct = excluded.bloat_pct;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    DELETE FROM dbops.bloat_history h WHERE h.taken_at < now() - keep;
    GET DIAGNOSTICS deleted = ROW_COUNT;
END;
$$;
REVOKE ALL ON FUNCTION dbops.bloat_snapshot(interval, text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION dbops.bloat_snapshot(interval, text, bigint) IS
    'Append dbops.bloat() for relations of at least min_size bytes to dbops.bloat_history; delete history older than keep';

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
    PERFORM dbops._require_positive_interval('since', since, 'For example since => ''1 day''.');
    IF NOT EXISTS (SELECT 1 FROM dbops.health_thresholds t
                   WHERE t.check_name = health_trend.check_name)
       AND NOT EXISTS (SELECT 1 FROM dbops.health_history h
                       WHERE h.check_name = health_trend.check_name) THEN
        RAISE EXCEPTION 'unknown health check "%"', health_trend.check_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'The checks are listed in dbops.health_thresholds.';
    END IF;
    RETURN QUERY
        SELECT h.taken_at, h.status, h.value,
               h.value - lag(h.value) OVER (ORDER BY h.taken_at),
               h.unit, h.detail
        FROM dbops.health_history h
        WHERE h.check_name = health_trend.check_name
          AND h.taken_at >= now() - since
        ORDER BY h.taken_at;
END;
$$;
REVOKE ALL ON FUNCTION dbops.health_trend(text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.health_trend(text, interval) TO pg_monitor;
COMMENT ON FUNCTION dbops.health_trend(text, interval) IS
    'How one check moved: its snapshots in dbops.health_history since "since" ago, with the change from the previous one';

-- Every pg_cron job with its last run; dbops jobs also with their command and
-- whether a run they were due for did not happen.  SECURITY DEFINER because
-- pg_cron's row-level security shows a role only its own jobs: monitoring
-- needs all of them.  Commands of other jobs are not shown.
CREATE FUNCTION dbops.cron_jobs(
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
    log_run boolean;
BEGIN
    PERFORM dbops.require_pg_cron();
    log_run := coalesce((dbops.cron_status()).log_run, true);
    RETURN QUERY
    WITH last AS (
        SELECT DISTINCT ON (d.jobid) d.jobid, d.status, d.return_message,
               d.start_time, d.end_time
        FROM cron.job_run_details d
        ORDER BY d.jobid, d.runid DESC
    ), agg AS (
        SELECT d.jobid, max(d.start_time) AS latest_start,
               count(*) FILTER (WHERE d.status = 'failed'
                                  AND d.start_time > now() - interval '1 day') AS failures
        FROM cron.job_run_details d
        GROUP BY d.jobid
    ), jobs AS (
        SELECT j.*, j.jobname::text AS name,
               j.jobname ~ '^dbops-(purge|health-snapshot|bloat-snapshot|reap|cron-history)(@.+)?$'
                   AS dbops_job,
               j.schedule ~* '^\s*[0-9]+\s*seconds?\s*$' AS every_seconds
        FROM cron.job j
    )
    SELECT j.name, j.jobid, j.database, j.username, j.schedule, j.active, j.dbops_job,
           l.start_time, l.end_time - l.start_time, l.status,
           nullif(btrim(l.return_message, E' \n\r\t'), ''),
           coalesce(a.failures, 0),
           CASE WHEN j.active AND NOT j.every_seconds
                THEN dbops.cron_next_run(j.schedule, now()) END,
           CASE WHEN due.due_at > r.scheduled_at
                 AND (a.latest_start IS NULL OR a.latest_start < due.due_at)
                 AND coalesce(l.status, '') NOT IN ('starting', 'running', 'sending', 'connecting')
                THEN due.due_at END,
           CASE WHEN j.dbops_job THEN j.command END
    FROM jobs j
    LEFT JOIN last l ON l.jobid = j.jobid
    LEFT JOIN agg a ON a.jobid = j.jobid
    LEFT JOIN dbops.scheduled_jobs r
           ON r.job_name = j.name AND r.username = j.username
    LEFT JOIN LATERAL (
        SELECT dbops.cron_prev_run(j.schedule, now() - interval '5 minutes') AS due_at
        WHERE j.dbops_job AND j.active AND log_run AND NOT j.every_seconds
          AND r.scheduled_at IS NOT NULL
    ) due ON true
    ORDER BY j.name, j.jobid;
END;
$$;
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
    target text := coalesce($6, current_database());
    suffix text;
    crondb text;
    v text;
    spec record;
    cur record;
    id bigint;
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot schedule jobs on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Run dbops.schedule() on the primary: pg_cron runs jobs only there.';
    END IF;
    v := dbops.require_pg_cron();
    IF string_to_array(split_part(v, '-', 1), '.')::int[] < '{1,4}' THEN
        RAISE EXCEPTION 'dbops.schedule() needs pg_cron 1.4 or later, not %', v
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run ALTER EXTENSION pg_cron UPDATE.';
    END IF;
    crondb := (dbops.cron_status()).cron_database;

    IF NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = target) THEN
        RAISE EXCEPTION 'database "%" does not exist', target
            USING ERRCODE = 'invalid_catalog_name',
                  HINT = 'database names the database the jobs run in; dbops must be installed there.';
    END IF;
    suffix := CASE WHEN target = current_database() THEN '' ELSE '@' || target END;
    IF octet_length('dbops-health-snapshot' || suffix) > 63 THEN
        RAISE EXCEPTION 'database name "%" is too long for a pg_cron job name', target
            USING ERRCODE = 'name_too_long',
                  HINT = 'Job names are "dbops-<job>@<database>" and pg_cron keeps 63 bytes of them.';
    END IF;

    -- check every argument before changing anything
    FOR spec IN
        SELECT * FROM (VALUES ('purge', purge), ('health_snapshot', health_snapshot),
                              ('bloat_snapshot', bloat_snapshot), ('reap', reap)) AS a(arg, sched)
        WHERE a.sched IS NOT NULL
    LOOP
        BEGIN
            PERFORM dbops.cron_next_run(spec.sched, now(), 'GMT');
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS v = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION 'invalid schedule for %: "%"', spec.arg, spec.sched
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = v,
                      HINT = 'Write five fields "minute hour day-of-month month day-of-week" '
                             '(for example ''30 3 * * *''), or @hourly, @daily, ...; NULL removes the job.';
        END;
    END LOOP;
    FOR spec IN
        SELECT * FROM (VALUES ('cron_history_keep', cron_history_keep, true),
                              ('health_history_keep', health_history_keep, health_snapshot IS NOT NULL),
                              ('bloat_history_keep', bloat_history_keep, bloat_snapshot IS NOT NULL),
                              ('reap_idle_for', reap_idle_for, reap IS NOT NULL)) AS a(arg, val, used)
        WHERE a.used
    LOOP
        IF spec.val IS NOT NULL OR spec.arg <> 'cron_history_keep' THEN
            PERFORM dbops._require_positive_interval(spec.arg, spec.val);
        END IF;
    END LOOP;

    FOR spec IN
        SELECT * FROM (VALUES
            (1, 'dbops-purge' || suffix, purge, 'CALL dbops.purge()', target),
            (2, 'dbops-health-snapshot' || suffix, health_snapshot,
                format('SELECT * FROM dbops.health_snapshot(keep => %L)', health_history_keep), target),
            (3, 'dbops-bloat-snapshot' || suffix, bloat_snapshot,
                format('SELECT * FROM dbops.bloat_snapshot(keep => %L)', bloat_history_keep), target),
            (4, 'dbops-reap' || suffix, reap,
                format('SELECT count(*) FROM dbops.reap_idle(idle_for => %L, dry_run => false)',
                       reap_idle_for), target),
            (5, 'dbops-cron-history', CASE WHEN cron_history_keep IS NOT NULL THEN '7 * * * *' END,
                format('DELETE FROM cron.job_run_details WHERE end_time < now() - %L::interval',
                       cron_history_keep), current_database())
        ) AS s(ord, name, sched, cmd, db)
        ORDER BY s.ord
    LOOP
        SELECT j.jobid, j.schedule, j.command, j.database, j.active INTO cur
        FROM cron.job j
        WHERE j.jobname = spec.name AND j.username = current_user;

        IF spec.sched IS NULL THEN
            IF cur.jobid IS NULL THEN
                CONTINUE;
            END IF;
            PERFORM cron.unschedule(spec.name);
            DELETE FROM dbops.scheduled_jobs r
            WHERE r.job_name = spec.name AND r.username = current_user;
            job_name := spec.name; action := 'removed'; jobid := cur.jobid;
            dbname := cur.database; schedule := cur.schedule; active := cur.active;
            command := cur.command;
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF cur.jobid IS NOT NULL AND cur.schedule = spec.sched AND cur.command = spec.cmd
           AND cur.database = spec.db THEN
            action := 'unchanged';
            id := cur.jobid;
            INSERT INTO dbops.scheduled_jobs AS r (job_name, username, database, schedule, command)
            VALUES (spec.name, current_user, spec.db, spec.sched, spec.cmd)
            ON CONFLICT ON CONSTRAINT scheduled_jobs_pkey DO NOTHING;
        ELSE
            IF cur.jobid IS NOT NULL AND cur.database <> spec.db THEN
                -- pg_cron 1.4 keeps the database of an existing job: start over
                PERFORM cron.unschedule(spec.name);
            END IF;
            IF spec.db = crondb THEN
                id := cron.schedule(spec.name, spec.sched, spec.cmd);
            ELSE
                id := cron.schedule_in_database(spec.name, spec.sched, spec.cmd, spec.db);
            END IF;
            action := CASE WHEN cur.jobid IS NULL THEN 'created' ELSE 'updated' END;
            INSERT INTO dbops.scheduled_jobs AS r (job_name, username, database, schedule, command)
            VALUES (spec.name, current_user, spec.db, spec.sched, spec.cmd)
            ON CONFLICT ON CONSTRAINT scheduled_jobs_pkey DO UPDATE
                SET database = excluded.database, schedule = excluded.schedule,
                    command = excluded.command, scheduled_at = excluded.scheduled_at;
        END IF;

        SELECT j.jobid, j.database, j.schedule, j.active, j.command
        INTO jobid, dbname, schedule, active, command
        FROM cron.job j WHERE j.jobid = id;
        job_name := spec.name;
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
    names text[];
    j record;
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot unschedule jobs on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Run dbops.unschedule() on the primary.';
    END IF;
    PERFORM dbops.require_pg_cron();
    IF unschedule.database IS NOT NULL THEN
        names := ARRAY(SELECT 'dbops-' || n
                              || CASE WHEN unschedule.database = current_database() THEN ''
                                      ELSE '@' || unschedule.database END
                       FROM unnest('{purge,health-snapshot,bloat-snapshot,reap}'::text[]) AS n);
    END IF;
    FOR j IN
        SELECT c.jobid, c.jobname::text AS name, c.database, c.schedule, c.active, c.command
        FROM cron.job c
        WHERE c.username = current_user
          AND CASE WHEN names IS NULL
                   THEN c.jobname ~ '^dbops-(purge|health-snapshot|bloat-snapshot|reap|cron-history)(@.+)?$'
                   ELSE c.jobname::text = ANY (names) END
        ORDER BY c.jobid
    LOOP
        PERFORM cron.unschedule(j.name);
        DELETE FROM dbops.scheduled_jobs r
        WHERE r.job_name = j.name AND r.username = current_user;
        job_name := j.name; action := 'removed'; jobid := j.jobid; dbname := j.database;
        schedule := j.schedule; active := j.active; command := j.command;
        RETURN NEXT;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION dbops.unschedule(text) FROM PUBLIC;
COMMENT ON FUNCTION dbops.unschedule(text) IS
    'Remove the dbops pg_cron jobs of this role (all of them, or those running in one database)';

-- The health report in the Prometheus text exposition format (0.0.4).
CREATE FUNCTION dbops.health_metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_health_metrics'
LANGUAGE C VOLATILE;
GRANT EXECUTE ON FUNCTION dbops.health_metrics() TO pg_monitor;
COMMENT ON FUNCTION dbops.health_metrics() IS
    'The dbops.health() report in the Prometheus text exposition format';
