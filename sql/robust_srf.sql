--
-- Every C function that returns rows or a record checks the column count of
-- its SQL declaration before it builds a row: a declaration of another shape
-- (a catalog of another dbops version, a function declared by hand over the
-- library) gets 42804 with a hint, never rows built against the wrong
-- tuple descriptor.  (reaper_events() and reaper_status() check the same
-- way once the reaper's shared memory exists; they are left out here, as
-- make installcheck may run on a server without dbops preloaded.)
--
CREATE SCHEMA srf_probe;
CREATE FUNCTION srf_probe.run(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

CREATE FUNCTION srf_probe.health() RETURNS TABLE (a text, b text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_health';
CREATE FUNCTION srf_probe.health_checks() RETURNS TABLE (a text, b text, c text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_health_checks';
CREATE FUNCTION srf_probe.snapshot_rows() RETURNS TABLE (a text, b text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_health_snapshot_rows';
CREATE FUNCTION srf_probe.bloat(regclass, text, bigint, float8, integer) RETURNS TABLE (a text, b text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_bloat';
CREATE FUNCTION srf_probe.lock_tree() RETURNS TABLE (a int, b int)
    LANGUAGE c AS '$libdir/dbops', 'dbops_lock_tree';
CREATE FUNCTION srf_probe.cancel_blockers(interval, boolean, boolean) RETURNS TABLE (a int, b int)
    LANGUAGE c AS '$libdir/dbops', 'dbops_cancel_blockers';
CREATE FUNCTION srf_probe.reap_idle(interval, text[], boolean, text) RETURNS TABLE (a int, b int)
    LANGUAGE c AS '$libdir/dbops', 'dbops_reap_idle';
CREATE FUNCTION srf_probe.purge_begin(boolean, OUT a int, OUT b int)
    LANGUAGE c AS '$libdir/dbops', 'dbops_purge_begin';
CREATE FUNCTION srf_probe.purge_exec(integer, regclass, text, timestamptz, text, text, bigint,
                                     OUT a bigint, OUT b text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_purge_exec';
CREATE FUNCTION srf_probe.retention_problem(regclass, name, name, interval, interval,
                                            OUT a text, OUT b text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_retention_problem';
CREATE FUNCTION srf_probe.cron_status(OUT a text, OUT b text)
    LANGUAGE c AS '$libdir/dbops', 'dbops_cron_status';

SELECT call, srf_probe.run('SELECT * FROM srf_probe.' || call) AS result
FROM (VALUES ('health()'),
             ('health_checks()'),
             ('snapshot_rows()'),
             ('bloat(''pg_class'', ''stats'', 100, 2, NULL)'),
             ('lock_tree()'),
             ('cancel_blockers(''1 min'', false, true)'),
             ('reap_idle(''1 hour'', ''{idle}'', true, ''terminate'')'),
             ('purge_begin(true)'),
             ('purge_exec(NULL, NULL, NULL, NULL, NULL, NULL, NULL)'),
             ('retention_problem(NULL, NULL, NULL, NULL, NULL)'),
             ('cron_status()')) AS c(call);

-- the error with its hint
SELECT * FROM srf_probe.health();

-- the functions as the extension declares them still work
SELECT count(*) > 0 AS has_checks FROM dbops.health_checks();
SELECT count(*) >= 0 AS ok FROM dbops.lock_tree();

DROP SCHEMA srf_probe CASCADE;
