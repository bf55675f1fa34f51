
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
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;
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
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.cancel_blockers(interval, boolean, boolean) IS
    'Cancel (or terminate) the roots of lock trees whose waiters waited at least min_wait; a dry run by default';

-- Signalling sessions is deliberate: members of pg_signal_backend may use
-- it (it still never signals what the caller could not signal with
-- pg_cancel_backend/pg_terminate_backend); grant it to others explicitly.
REVOKE ALL ON FUNCTION dbops.cancel_blockers(interval, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.cancel_blockers(interval, boolean, boolean) TO pg_signal_backend;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('lock_waits', 30, 300);
