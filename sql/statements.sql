-- dbops.top_queries() and the slow_queries check without pg_stat_statements:
-- shape, the errors, bad input and privileges (the statements themselves
-- are read in test/t/013_health_statements.pl, on a server preloading it)
\pset null '(null)'

-- one error as "SQLSTATE: message (HINT: hint)"
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text; msg text; hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN ' (HINT: ' || hint || ')' ELSE '' END;
END
$$;

-- the arguments and the columns, in order
SELECT pg_get_function_arguments('dbops.top_queries(text, integer, boolean)'::regprocedure);
SELECT pg_get_function_result('dbops.top_queries(text, integer, boolean)'::regprocedure);
SELECT proconfig, provolatile, prosecdef
FROM pg_proc WHERE oid = 'dbops.top_queries(text, integer, boolean)'::regprocedure;

-- pg_stat_statements is not installed in this database
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'pg_stat_statements';
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries()$$);
SELECT check_name, status, value, unit, detail, hint, warning, critical
FROM dbops.health() WHERE check_name = 'slow_queries';

-- bad input is refused before pg_stat_statements is looked for
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries('max_time')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries('TOTAL_TIME')$$);
-- a long order_by is cut in the message
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries(repeat('x', 100))$$);
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries('calls', 0)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries('calls', -5)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries('calls', NULL)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries(all_databases => NULL)$$);
-- every documented order is accepted (and gets as far as the missing extension)
SELECT o, left(pg_temp.err(format('SELECT * FROM dbops.top_queries(%L, 1)', o)), 5) AS sqlstate
FROM unnest('{total_time,mean_time,calls,rows,shared_blks_read,temp_blks_written,io_time,wal_bytes,plan_time}'::text[]) o;

-- the slow_queries threshold row is checked like the others
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 6000 WHERE check_name = 'slow_queries'$$);

-- privileges: PUBLIC may not run it, pg_monitor may
SELECT has_function_privilege('public', 'dbops.top_queries(text, integer, boolean)', 'EXECUTE') AS public,
       has_function_privilege('pg_monitor', 'dbops.top_queries(text, integer, boolean)', 'EXECUTE') AS pg_monitor;
CREATE ROLE regress_topq_plain;
CREATE ROLE regress_topq_monitor IN ROLE pg_monitor;
SET ROLE regress_topq_plain;
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries()$$);
RESET ROLE;
SET ROLE regress_topq_monitor;
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries()$$);
SELECT status, detail FROM dbops.health() WHERE check_name = 'slow_queries';
RESET ROLE;
DROP ROLE regress_topq_plain, regress_topq_monitor;

-- installed but not loaded (this cluster does not preload it): an error
-- that says so, with the fix; the check is unknown with the same hint
CREATE EXTENSION pg_stat_statements;
SELECT pg_temp.err($$SELECT * FROM dbops.top_queries()$$);
SELECT status, detail, hint FROM dbops.health() WHERE check_name = 'slow_queries';
DROP EXTENSION pg_stat_statements;
