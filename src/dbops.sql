-- dbops install script, assembled from one fragment per capability (src/*.sql)
--
-- Names in SQL and PL/pgSQL functions, in every fragment (and in the upgrade
-- scripts, which repeat their bodies):
--   - Parameters, IN and OUT, have bare names (relation, keep, st), in
--     internal functions as in public ones: a public function's parameter
--     names are its API, named in calls, and an internal function's stay
--     what its callers pass (a parameter cannot be renamed in place).
--   - Where a column of the same name is in scope of a statement, the
--     parameter is written qualified with the function's name
--     (add_retention_policy.relation; the ledger's internal functions
--     qualify version, checksum, description and requires throughout).
--     PL/pgSQL refuses the unqualified name there rather than guess.  An
--     ON CONFLICT target, which cannot be qualified, names the constraint
--     (ON CONSTRAINT migrations_pkey).  A function returning a table whose
--     columns it also reads says #variable_conflict use_column (or
--     use_variable) instead.
--   - Local variables (DECLARE, FOR loop records and rows) are v_<name>:
--     never a column's name, so never qualified and never ambiguous.

\echo Use "CREATE EXTENSION dbops" to load this file. \quit

-- Read-only functions are open to pg_monitor; functions that write or signal
-- are revoked from PUBLIC in their own fragment and granted where they say.
-- Internal functions (dbops._*) are revoked from PUBLIC.  Every SQL and
-- PL/pgSQL function pins search_path to pg_catalog, pg_temp, and so does
-- every C function that runs a query, so that nothing resolves to a schema
-- the caller's search_path puts first.
GRANT USAGE ON SCHEMA dbops TO PUBLIC;

-- The errors every dbops function raises for an interval argument that must
-- be given and positive (hint NULL: a general one).
CREATE FUNCTION dbops._require_positive_interval(arg text, val interval, hint text DEFAULT NULL)
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
-- Used by dbops._require_history_keep() below.
REVOKE ALL ON FUNCTION dbops._require_positive_interval(text, interval, text) FROM PUBLIC;

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
