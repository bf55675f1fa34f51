-- Robustness of health, bloat, the reaper and the lock tree: bad input is
-- refused when it is given, with a SQLSTATE, a bounded message and a hint;
-- nothing stored can make a report fail later; a cancelled report leaves the
-- session usable.

-- one error as "SQLSTATE: message (HINT: hint)"
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text; msg text; hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN ' (HINT: ' || hint || ')' ELSE ' (no hint)' END;
END
$$;

-- ---------------------------------------------------------------------------
-- health_overall(): only statuses, NULL counts as unknown
-- ---------------------------------------------------------------------------
SELECT pg_temp.err($$SELECT dbops.health_overall('{bogus}')$$);
SELECT pg_temp.err($$SELECT dbops.health_overall('{Critical}')$$);
SELECT pg_temp.err($$SELECT dbops.health_overall('{ok,OK}')$$);
SELECT pg_temp.err($$SELECT dbops.health_overall('{ok," ok"}')$$);
-- the message quotes at most 64 characters of the word
SELECT pg_temp.err(format('SELECT dbops.health_overall(ARRAY[%L])', repeat('x', 200000)));
SELECT dbops.health_overall('{NULL}') AS only_null,
       dbops.health_overall('{ok,NULL}') AS ok_and_null,
       dbops.health_overall('{warning,NULL}') AS warning_and_null,
       dbops.health_overall('{critical,NULL}') AS critical_and_null,
       dbops.health_overall('{{ok,ok},{ok,warning}}') AS two_dimensions,
       dbops.health_overall('{}') AS empty,
       dbops.health_overall(NULL) AS null_array;

-- ---------------------------------------------------------------------------
-- health_thresholds: finite, within what the report grades with
-- ---------------------------------------------------------------------------
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 'Infinity', critical = NULL WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = NULL, critical = '-Infinity' WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = NULL, critical = 'Infinity' WHERE check_name = 'cache_hit_ratio'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = '-Infinity', critical = NULL WHERE check_name = 'cache_hit_ratio'$$);
SELECT pg_temp.err($$INSERT INTO dbops.health_thresholds VALUES ('connections', 'Infinity', 'Infinity')$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 1e400, critical = NULL WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = NULL, critical = -1e301 WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 1e-400, critical = NULL WHERE check_name = 'connections'$$);
-- zero and ordinary values are fine
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 0, critical = 1e300 WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET warning = 80, critical = 95 WHERE check_name = 'connections'$$);
-- NULL enabled, a rename onto another check's row, a long unknown name
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET enabled = NULL WHERE check_name = 'connections'$$);
SELECT pg_temp.err($$UPDATE dbops.health_thresholds SET check_name = 'long_query' WHERE check_name = 'connections'$$);
SELECT pg_temp.err(format('INSERT INTO dbops.health_thresholds VALUES (%L, 1, 2)', repeat('y', 200000))) ~
       '^42704: unknown health check "y{64}\.\.\." \(HINT: Known checks: .*\.\)$' AS bounded_unknown_check;
SELECT check_name, warning, critical, enabled FROM dbops.health_thresholds
 WHERE check_name IN ('connections', 'cache_hit_ratio', 'long_query') ORDER BY check_name;

-- a threshold stored before thresholds were range-checked (as 1.0 allowed)
-- cannot make the report fail
ALTER TABLE dbops.health_thresholds DISABLE TRIGGER health_thresholds_validate;
UPDATE dbops.health_thresholds SET warning = 1e400, critical = NULL WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = NULL, critical = '-Infinity' WHERE check_name = 'long_query';
ALTER TABLE dbops.health_thresholds ENABLE TRIGGER health_thresholds_validate;
SELECT check_name, status, warning IS NULL AS no_warning, critical
  FROM dbops.health() WHERE check_name IN ('connections', 'long_query') ORDER BY check_name;
SELECT dbops.health_status() IS NOT NULL AS status_works;
UPDATE dbops.health_thresholds SET warning = 80, critical = 95 WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = 120, critical = 300 WHERE check_name = 'long_query';

-- ---------------------------------------------------------------------------
-- a cancelled report leaves the session usable: statement_timeout fires
-- inside dbops.health() (or just after it, in the pg_sleep() each row waits
-- for: the statement always times out), then the session goes on, outside
-- and inside a transaction block
-- ---------------------------------------------------------------------------
\set VERBOSITY terse
SET statement_timeout = '1ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 1 AS alive;
SET statement_timeout = '2ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 2 AS alive;
SET statement_timeout = '3ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 3 AS alive;
SET statement_timeout = '5ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 5 AS alive;
SET statement_timeout = '8ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 8 AS alive;
SET statement_timeout = '13ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 13 AS alive;
SET statement_timeout = '2ms';
SELECT dbops.health_status() WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 'status' AS alive;
SELECT dbops.health_json() IS NOT NULL WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 'json' AS alive;
SET statement_timeout = '5ms';
SELECT dbops.health_status() WHERE pg_sleep(0.05) IS NOT NULL;
SELECT dbops.health_json() IS NOT NULL WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 'status and json' AS alive;
ROLLBACK;
-- in a transaction block: aborted as after any error, ROLLBACK ends it
RESET statement_timeout;
BEGIN;
SET LOCAL statement_timeout = '3ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
SELECT 'aborted block' AS alive;
ROLLBACK;
SELECT 'after rollback' AS alive;
BEGIN;
SAVEPOINT s;
SET LOCAL statement_timeout = '5ms';
SELECT count(*) FROM dbops.health() h WHERE pg_sleep(0.05) IS NOT NULL;
ROLLBACK TO SAVEPOINT s;
SELECT 'after rollback to savepoint' AS alive;
COMMIT;
RESET statement_timeout;
\set VERBOSITY default
-- and the next report is whole
SELECT count(*) = (SELECT count(*) FROM dbops.health_thresholds WHERE enabled) AS whole_report
  FROM dbops.health();
SHOW lock_timeout;

-- ---------------------------------------------------------------------------
-- bloat(): what is not a relation is refused
-- ---------------------------------------------------------------------------
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(0::regclass)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(4294967295::oid::regclass)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(method => NULL)$$);
SELECT pg_temp.err(format('SELECT * FROM dbops.bloat(method => %L)', repeat('m', 200000)));
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(max_pages => -1)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(max_pages => NULL)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(ci_width => 'NaN')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(ci_width => 'Infinity')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat(ci_width => NULL)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.bloat('pg_class'::regclass::oid::regclass, 'stats', seed => -2147483648)$$);
CREATE VIEW rob_hea_view AS SELECT 1 AS one;
SELECT pg_temp.err($$SELECT * FROM dbops.bloat('rob_hea_view')$$);
DROP VIEW rob_hea_view;

-- ---------------------------------------------------------------------------
-- reaper: reap_idle() arguments, and policies refused when they are written
-- ---------------------------------------------------------------------------
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('7116800 months')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('178000000 years')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('-178000000 years')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('0')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('1 h', '{}')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('1 h', '{idle,NULL}')$$);
SELECT pg_temp.err(format('SELECT * FROM dbops.reap_idle(%L, ARRAY[%L])', '1 h', repeat('s', 200000)));
SELECT pg_temp.err(format('SELECT * FROM dbops.reap_idle(%L, action => %L)', '1 h', repeat('a', 200000)));
SELECT pg_temp.err($$SELECT * FROM dbops.reap_idle('1 h', dry_run => NULL)$$);
-- the longest interval that counts is accepted (and matches nothing)
SELECT count(*) AS matched FROM dbops.reap_idle('289999 years');
SELECT pg_temp.err($$SELECT * FROM dbops.reap_runaway('178000000 years')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_runaway(NULL, '-178000000 years')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.reap_runaway(NULL, NULL)$$);
SELECT pg_temp.err(format('SELECT * FROM dbops.reap_runaway(%L, action => %L)', '1 h', repeat('a', 200000)));
SELECT pg_temp.err(format('SELECT * FROM dbops.reap_runaway(%L, query_pattern => %L)', '1 h', repeat('(', 2000)));
SELECT pg_temp.err($$SELECT * FROM dbops.reap_runaway('1 h', query_pattern => E'a\\')$$);
SELECT count(*) AS matched FROM dbops.reap_runaway('289999 years', '289999 years', query_pattern => '');

INSERT INTO dbops.reaper_policies (role_name, idle_timeout) VALUES ('rob_hea_nobody', '1 h')
RETURNING id AS policy_id \gset
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (idle_timeout) VALUES ('-1 s')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (idle_timeout) VALUES ('0')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (idle_timeout) VALUES ('178000000 years')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (idle_timeout) VALUES (NULL)$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (action, idle_timeout) VALUES ('exempt', '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (action, idle_timeout) VALUES (NULL, '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (action, idle_timeout) VALUES ('Terminate', '1 h')$$);
SELECT pg_temp.err(format('INSERT INTO dbops.reaper_policies (action, idle_timeout) VALUES (%L, %L)', repeat('k', 200000), '1 h'));
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (state, idle_timeout) VALUES ('active', '1 h')$$);
SELECT pg_temp.err(format('INSERT INTO dbops.reaper_policies (state, idle_timeout) VALUES (%L, %L)', repeat('i', 200000), '1 h'));
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (keep_min, idle_timeout) VALUES (-1, '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (keep_min, idle_timeout) VALUES (NULL, '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (enabled, idle_timeout) VALUES (NULL, '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (application_name, idle_timeout) VALUES (E'app\\', '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (application_name, idle_timeout) VALUES (E'app\\\\\\', '1 h')$$);
SELECT regexp_replace(pg_temp.err(format('INSERT INTO dbops.reaper_policies (id, idle_timeout) VALUES (%s, %L)', :policy_id, '1 h')),
                      'id [0-9]+', 'id N') AS err;
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (id, idle_timeout) VALUES (NULL, '1 h')$$);
SELECT pg_temp.err(format('UPDATE dbops.reaper_policies SET idle_timeout = %L WHERE id = %s', '-1 h', :policy_id));
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (query_timeout) VALUES ('178000000 years')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (transaction_timeout) VALUES ('-1 s')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (query_timeout, transaction_timeout) VALUES ('1 h', '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (action, transaction_timeout) VALUES ('exempt', '1 h')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (query_timeout, state) VALUES ('1 h', 'idle in transaction')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (transaction_timeout, state) VALUES ('1 h', 'idle')$$);
SELECT pg_temp.err(format('INSERT INTO dbops.reaper_policies (query_timeout, query_pattern) VALUES (%L, %L)', '1 h', repeat('(', 200000)));
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (query_timeout, query_pattern) VALUES ('1 h', E'x{2,1}')$$);
-- accepted: an escaped backslash and a literal % in the pattern, an exempt policy
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (application_name, idle_timeout, role_name) VALUES (E'app\\\\', '1 h', 'rob_hea_nobody')$$);
SELECT pg_temp.err($$INSERT INTO dbops.reaper_policies (application_name, action, role_name) VALUES (E'50\\%', 'exempt', 'rob_hea_nobody')$$);
SELECT count(*) AS policies FROM dbops.reaper_policies WHERE role_name = 'rob_hea_nobody';

-- a policy written before the trigger existed (as 1.0 allowed), or while
-- it was disabled, cannot stop reap_idle() or reap_runaway(): an
-- idle_timeout too long to count, a pattern LIKE or the regular expression
-- engine refuses
ALTER TABLE dbops.reaper_policies DISABLE TRIGGER reaper_policies_validate;
INSERT INTO dbops.reaper_policies (role_name, idle_timeout, application_name)
VALUES ('rob_hea_nobody', '178000000 years', E'app\\');
INSERT INTO dbops.reaper_policies (role_name, query_timeout, query_pattern)
VALUES ('rob_hea_nobody', '1 s', '(unclosed');
ALTER TABLE dbops.reaper_policies ENABLE TRIGGER reaper_policies_validate;
SELECT count(*) >= 0 AS reap_idle_works FROM dbops.reap_idle('1 h');
SELECT count(*) >= 0 AS reap_runaway_works FROM dbops.reap_runaway('1 h', '1 h');
DELETE FROM dbops.reaper_policies WHERE role_name = 'rob_hea_nobody';

-- ---------------------------------------------------------------------------
-- lock tree: cancel_blockers() and lock_tree_text() arguments
-- ---------------------------------------------------------------------------
SELECT pg_temp.err($$SELECT * FROM dbops.cancel_blockers('7116800 months')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.cancel_blockers('178000000 years', dry_run => true)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.cancel_blockers('-178000000 years')$$);
SELECT pg_temp.err($$SELECT * FROM dbops.cancel_blockers(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.cancel_blockers(terminate => NULL)$$);
SELECT count(*) AS roots FROM dbops.cancel_blockers('289999 years');
SELECT pg_temp.err($$SELECT * FROM dbops.lock_tree_text(-1)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.lock_tree_text(-2147483648)$$);
SELECT pg_temp.err($$SELECT * FROM dbops.lock_tree_text(NULL)$$);
SELECT count(*) >= 0 AS widest FROM dbops.lock_tree_text(2147483647);

-- ---------------------------------------------------------------------------
-- the shared interval check always gives a hint
-- ---------------------------------------------------------------------------
SELECT pg_temp.err($$SELECT dbops._require_positive_interval('keep', NULL)$$);
SELECT pg_temp.err($$SELECT dbops._require_positive_interval('keep', '-1 day')$$);
SELECT pg_temp.err($$SELECT dbops._require_positive_interval('keep', '0', 'A hint of the caller''s.')$$);
