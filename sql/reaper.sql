-- dbops reaper: argument checking, policy constraints and privileges
-- (the worker itself is tested in test/t/040_reaper_worker.pl)

-- bad input gets a clear error with a SQLSTATE
\set VERBOSITY default
SELECT * FROM dbops.reap_idle(NULL);
SELECT * FROM dbops.reap_idle(interval '-5 minutes');
SELECT * FROM dbops.reap_idle(interval '0');
SELECT * FROM dbops.reap_idle('1 hour', states => NULL);
SELECT * FROM dbops.reap_idle('1 hour', states => '{}');
SELECT * FROM dbops.reap_idle('1 hour', states => '{idle,sleeping}');
SELECT * FROM dbops.reap_idle('1 hour', states => '{idle,NULL}');
SELECT * FROM dbops.reap_idle('1 hour', dry_run => NULL);
SELECT * FROM dbops.reap_idle('1 hour', action => 'kill');
SELECT * FROM dbops.reap_idle('1 hour', action => NULL);
SELECT * FROM dbops.reap_runaway();
SELECT * FROM dbops.reap_runaway(query_for => interval '-1 minute');
SELECT * FROM dbops.reap_runaway(transaction_for => interval '0');
SELECT * FROM dbops.reap_runaway('1 hour', dry_run => NULL);
SELECT * FROM dbops.reap_runaway('1 hour', action => 'exempt');
SELECT * FROM dbops.reap_runaway('1 hour', query_pattern => '(unclosed');
\set VERBOSITY terse

-- and their SQLSTATEs
DO $$
DECLARE
    call text;
BEGIN
    FOREACH call IN ARRAY ARRAY[
        $c$dbops.reap_idle(NULL)$c$,
        $c$dbops.reap_idle('-5 minutes')$c$,
        $c$dbops.reap_idle('0')$c$,
        $c$dbops.reap_idle('1 hour', states => NULL)$c$,
        $c$dbops.reap_idle('1 hour', states => '{sleeping}')$c$,
        $c$dbops.reap_idle('1 hour', dry_run => NULL)$c$,
        $c$dbops.reap_idle('1 hour', action => 'kill')$c$,
        $c$dbops.reap_runaway()$c$,
        $c$dbops.reap_runaway('-1 minute')$c$,
        $c$dbops.reap_runaway(NULL, '300000 years')$c$,
        $c$dbops.reap_runaway('1 hour', action => NULL)$c$,
        $c$dbops.reap_runaway('1 hour', query_pattern => '*')$c$]
    LOOP
        BEGIN
            EXECUTE 'SELECT * FROM ' || call;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE '% -> %', call, SQLSTATE;
        END;
    END LOOP;
END
$$;

-- nothing has been idle for a day in a fresh test cluster; the shape
SELECT * FROM dbops.reap_idle('1 day',
    states => '{idle,"idle in transaction","idle in transaction (aborted)"}');
SELECT count(*) FROM dbops.reap_idle('1 day', dry_run => false, action => 'cancel');
SELECT * FROM dbops.reap_runaway('1 day', '1 day', query_pattern => '(?i)select');
SELECT count(*) FROM dbops.reap_runaway('1 day', dry_run => false, action => 'terminate');

-- policies: an exempt policy has no timeout, any other needs one
INSERT INTO dbops.reaper_policies (application_name, action) VALUES ('pg_dump%', 'exempt');
INSERT INTO dbops.reaper_policies (role_name, idle_timeout, keep_min)
    VALUES ('regress_pool', '5 minutes', 2);
INSERT INTO dbops.reaper_policies (role_name, action) VALUES ('x', 'terminate');
INSERT INTO dbops.reaper_policies (role_name, idle_timeout, action) VALUES ('x', '1 min', 'exempt');
INSERT INTO dbops.reaper_policies (state, idle_timeout) VALUES ('sleeping', '1 min');
INSERT INTO dbops.reaper_policies (idle_timeout) VALUES ('-1 min');
INSERT INTO dbops.reaper_policies (idle_timeout, keep_min) VALUES ('1 min', -1);
INSERT INTO dbops.reaper_policies (idle_timeout, action) VALUES ('1 min', 'kill');
INSERT INTO dbops.reaper_policies (client_addr, idle_timeout) VALUES ('10.0.0.0/8', '1 min');
-- running statements and open transactions: one timeout per policy, a state
-- the kind can have, a regular expression the engine accepts
INSERT INTO dbops.reaper_policies (role_name, query_timeout, action, query_pattern)
    VALUES ('regress_report', '1 hour', 'cancel', '(?i)^\s*select');
INSERT INTO dbops.reaper_policies (transaction_timeout, state)
    VALUES ('2 hours', 'idle in transaction');
INSERT INTO dbops.reaper_policies (idle_timeout, query_timeout) VALUES ('1 min', '1 min');
INSERT INTO dbops.reaper_policies (query_timeout, state) VALUES ('1 min', 'idle');
INSERT INTO dbops.reaper_policies (transaction_timeout, state) VALUES ('1 min', 'idle');
INSERT INTO dbops.reaper_policies (idle_timeout, state) VALUES ('1 min', 'active');
INSERT INTO dbops.reaper_policies (action, query_timeout) VALUES ('exempt', '1 min');
INSERT INTO dbops.reaper_policies (query_timeout, query_pattern) VALUES ('1 min', '[a-');
SELECT role_name, database_name, application_name, client_addr, state, idle_timeout,
       query_timeout, transaction_timeout, query_pattern, action, keep_min, enabled
FROM dbops.reaper_policies ORDER BY id;
DELETE FROM dbops.reaper_policies;

-- the health check is registered with its thresholds
SELECT check_name, warning, critical, enabled
FROM dbops.health_thresholds WHERE check_name = 'reaper';
SELECT count(*) FROM dbops.health() WHERE check_name = 'reaper';

-- privileges: signalling is not for PUBLIC; reading is for pg_monitor
SELECT p.proname,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS pg_monitor,
       has_function_privilege('pg_signal_backend', p.oid, 'EXECUTE') AS pg_signal_backend
FROM pg_proc p WHERE p.pronamespace = 'dbops'::regnamespace AND p.proname ~ '^_?reap'
ORDER BY p.proname;
-- the new columns of the events and of the status
SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a
WHERE a.attrelid = 'dbops.reaper_log'::regclass AND a.attnum > 0;
SELECT pg_get_function_arguments('dbops.reaper_status()'::regprocedure);
SELECT has_table_privilege('public', 'dbops.reaper_log', 'SELECT') AS log_public,
       has_table_privilege('pg_monitor', 'dbops.reaper_log', 'SELECT') AS log_monitor,
       has_table_privilege('public', 'dbops.reaper_policies', 'SELECT') AS policies_read,
       has_table_privilege('public', 'dbops.reaper_policies', 'INSERT') AS policies_write;

CREATE ROLE regress_reaper_nobody;
SET ROLE regress_reaper_nobody;
SELECT * FROM dbops.reap_idle('1 hour');
SELECT * FROM dbops.reap_runaway('1 hour');
SELECT * FROM dbops.reaper_events();
INSERT INTO dbops.reaper_policies (action) VALUES ('exempt');
RESET ROLE;
DROP ROLE regress_reaper_nobody;
