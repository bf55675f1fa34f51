-- Catalog-wide rules for every function of schema dbops, whichever
-- capability it belongs to (a new function that breaks one shows up here):
--
--   1. every SQL and PL/pgSQL function pins search_path = pg_catalog, pg_temp
--      (the exceptions are listed below, each with its reason);
--   2. no internal function (dbops._*) is executable by PUBLIC;
--   3. every SECURITY DEFINER function pins search_path.

-- the exceptions to rule 1, and why each is safe
CREATE TEMP TABLE unpinned_by_design (fn text PRIMARY KEY, reason text NOT NULL);
INSERT INTO unpinned_by_design VALUES
    ('dbops.backfill(regclass,text,text,name,integer,boolean,interval)',
     'a procedure that COMMITs cannot carry a SET clause: its own statements are '
     'schema-qualified and its work is done in pinned dbops._* functions'),
    ('dbops.purge(regclass,boolean)',
     'a procedure that COMMITs cannot carry a SET clause: its own statements are '
     'schema-qualified and its work is done in pinned dbops._* functions');

-- each exception is still a function of dbops, and still unpinned (else it
-- would not need to be an exception)
SELECT u.fn, p.prokind, p.proconfig
FROM unpinned_by_design u
LEFT JOIN pg_proc p ON p.oid = to_regprocedure(u.fn)
ORDER BY u.fn;

-- 1. SQL and PL/pgSQL functions without the pinned search_path
SELECT p.oid::regprocedure AS function, l.lanname, p.proconfig
FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'dbops'::regnamespace
  AND l.lanname IN ('sql', 'plpgsql')
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
  AND p.oid NOT IN (SELECT to_regprocedure(fn) FROM unpinned_by_design
                    WHERE to_regprocedure(fn) IS NOT NULL)
ORDER BY p.oid::regprocedure::text;

-- 2. internal functions PUBLIC may execute
SELECT p.oid::regprocedure AS function
FROM pg_proc p
WHERE p.pronamespace = 'dbops'::regnamespace
  AND p.proname LIKE '\_%'
  AND EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
ORDER BY p.oid::regprocedure::text;

-- 3. SECURITY DEFINER functions without the pinned search_path
SELECT p.oid::regprocedure AS function, p.proconfig
FROM pg_proc p
WHERE p.pronamespace = 'dbops'::regnamespace
  AND p.prosecdef
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
ORDER BY p.oid::regprocedure::text;

-- the rules look at something: dbops has internal, SQL/PL/pgSQL and
-- SECURITY DEFINER functions
SELECT count(*) FILTER (WHERE p.proname LIKE '\_%') > 0 AS has_internal,
       count(*) FILTER (WHERE l.lanname IN ('sql', 'plpgsql')) > 0 AS has_sql,
       count(*) FILTER (WHERE p.prosecdef) > 0 AS has_definer
FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'dbops'::regnamespace;

-- 4. C functions without the pinned search_path: only those that run no
-- query, and the two ledger entry points that must hand the caller's
-- search_path to the migration's own script (they call pinned
-- implementations for everything else).  A new C function that runs
-- queries and lacks the SET clause shows up here.
CREATE TEMP TABLE c_unpinned_by_design (fn text PRIMARY KEY, reason text NOT NULL);
INSERT INTO c_unpinned_by_design VALUES
    ('dbops.migration_checksum(text)', 'runs no query'),
    ('dbops._migration_capture_version()', 'runs no query'),
    ('dbops.cron_next_run(text,timestamp with time zone,text)', 'runs no query'),
    ('dbops.cron_prev_run(text,timestamp with time zone,text)', 'runs no query'),
    ('dbops.migration_lint(text,text[],boolean)',
     'runs no query; resolves the body''s names with the caller''s search_path, as the migration will'),
    ('dbops.migrate(text,text,text,text[],boolean)',
     'reads the caller''s search_path for the migration body; the ledger work is pinned'),
    ('dbops.migration_rollback(text,text)',
     'reads the caller''s search_path for the rollback body; the ledger work is pinned'),
    ('dbops.migration_step_begin(text,text,text,text[],boolean,text)',
     'reads the caller''s search_path for the step''s index name; the ledger work is pinned'),
    ('dbops.migration_step_finish(text)',
     'reads the caller''s search_path for the step''s index name; the ledger work is pinned');
SELECT p.oid::regprocedure AS function, d.reason
FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang
LEFT JOIN c_unpinned_by_design d ON to_regprocedure(d.fn) = p.oid
WHERE p.pronamespace = 'dbops'::regnamespace
  AND l.lanname = 'c'
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
ORDER BY p.oid::regprocedure::text;
