-- Checks written in SQL: dbops.add_check(), dbops.remove_check() and the
-- engine running them like its own: shape, grading, thresholds, history,
-- errors at add time and at run time, and the rights they run with.
SET client_min_messages = warning;

-- try(sql): the SQLSTATE, message and hint of the error sql raises, or "ok"
CREATE FUNCTION public.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; hnt text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END;
END
$$;
GRANT EXECUTE ON FUNCTION public.try(text) TO PUBLIC;

CREATE TABLE public.cc_orders (id int PRIMARY KEY, state text NOT NULL);
INSERT INTO public.cc_orders SELECT g, CASE WHEN g % 10 = 0 THEN 'stuck' ELSE 'done' END
FROM generate_series(1, 300) g;

-- a check with a value, a detail, thresholds, a unit and a hint
SELECT dbops.add_check('stuck_orders',
    $$SELECT count(*), 'oldest stuck order: ' || min(id) FROM public.cc_orders WHERE state = 'stuck'$$,
    warning => 10, critical => 50, unit => 'orders', hint => 'Run the order fixer.');
SELECT check_name, query, direction, unit, hint, owner, added_at <= now() AS added
FROM dbops.custom_checks;
SELECT * FROM dbops.health_thresholds WHERE check_name = 'stuck_orders';
SELECT * FROM dbops.health_checks() WHERE check_name = 'stuck_orders';
-- after the built-in checks, graded as they are
SELECT * FROM dbops.health() WHERE check_name = 'stuck_orders';
SELECT (SELECT max(o) FROM dbops.health_checks() WITH ORDINALITY AS c(n, d, o)
        WHERE n = 'stuck_orders') = (SELECT count(*) FROM dbops.health_checks()) AS last;
UPDATE public.cc_orders SET state = 'done' WHERE id > 200;
SELECT status, value, detail, hint FROM dbops.health() WHERE check_name = 'stuck_orders';
UPDATE public.cc_orders SET state = 'done';
SELECT status, value, detail, hint FROM dbops.health() WHERE check_name = 'stuck_orders';
-- its thresholds row is validated as any other, in the check's direction
SELECT try($$UPDATE dbops.health_thresholds SET warning = 60 WHERE check_name = 'stuck_orders'$$);
UPDATE dbops.health_thresholds SET warning = 0 WHERE check_name = 'stuck_orders';
SELECT status, value FROM dbops.health() WHERE check_name = 'stuck_orders';
-- disabled, it is not run
UPDATE dbops.health_thresholds SET enabled = false WHERE check_name = 'stuck_orders';
SELECT count(*) FROM dbops.health() WHERE check_name = 'stuck_orders';
UPDATE dbops.health_thresholds SET enabled = true WHERE check_name = 'stuck_orders';
-- in the JSON, the Prometheus text and the terminal report
SELECT c->>'status' AS status, c->>'value' AS value
FROM jsonb_array_elements(dbops.health_json()->'checks') c WHERE c->>'check_name' = 'stuck_orders';
SELECT line FROM regexp_split_to_table(dbops.health_metrics(), E'\n') line
WHERE line LIKE '%stuck_orders%' ORDER BY line;
SELECT dbops.health_report() LIKE E'%WARNING   stuck_orders: 0 orders (warning 0, critical 50)\n%' AS in_report;

-- lower is worse; no thresholds; no row; a NULL value; NaN
SELECT dbops.add_check('done_share',
    $$SELECT round(100.0 * count(*) FILTER (WHERE state = 'done') / count(*), 1) FROM public.cc_orders$$,
    warning => 99.5, critical => 90, direction => 'lower_is_worse', unit => '%');
SELECT dbops.add_check('ungraded', $$SELECT 42::bigint$$);
SELECT dbops.add_check('no_row', $$SELECT 1::int FROM public.cc_orders WHERE false$$, 1, 2);
SELECT dbops.add_check('null_value', $$SELECT NULL::numeric, 'nothing to measure'$$, 1, 2);
SELECT dbops.add_check('not_a_number', $$SELECT 'NaN'::float8$$, 1, 2);
UPDATE public.cc_orders SET state = 'stuck' WHERE id <= 3;
SELECT check_name, status, value, warning, critical, unit, detail, hint
FROM dbops.health()
WHERE check_name IN ('done_share', 'ungraded', 'no_row', 'null_value', 'not_a_number')
ORDER BY check_name;
SELECT * FROM dbops.health_checks() WHERE check_name = 'done_share';

-- bad definitions are refused, with nothing written
SELECT try($$SELECT dbops.add_check(NULL, 'SELECT 1')$$);
SELECT try($$SELECT dbops.add_check('x', NULL)$$);
SELECT try($$SELECT dbops.add_check('Bad-Name', 'SELECT 1')$$);
SELECT try($$SELECT dbops.add_check(repeat('a', 64), 'SELECT 1')$$);
SELECT try($$SELECT dbops.add_check('connections', 'SELECT 1')$$);
SELECT try($$SELECT dbops.add_check('stuck_orders', 'SELECT 1')$$);
SELECT try($$SELECT dbops.add_check('x', '  ')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1; SELECT 2')$$);
SELECT try($$SELECT dbops.add_check('x', 'DELETE FROM public.cc_orders RETURNING id')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1 INTO cc_new')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1 FROM public.cc_orders LIMIT 1 FOR UPDATE')$$);
SELECT try($$SELECT dbops.add_check('x', 'WITH d AS (DELETE FROM public.cc_orders RETURNING 1) SELECT count(*) FROM d')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1, 2, 3')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT ''many''::text')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1::money')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT count(*) FROM cc_orders')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELEC 1')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT id FROM public.cc_orders')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1/0')$$);
SELECT try($$SELECT dbops.add_check('x', repeat(' ', 65536) || 'SELECT 1')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1', direction => 'up')$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1', direction => NULL)$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1', unit => repeat('u', 33))$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1', hint => repeat('h', 1001))$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1', warning => 10, critical => 5)$$);
SELECT try($$SELECT dbops.add_check('x', 'SELECT 1', warning => 'NaN')$$);
CREATE TEMP TABLE cc_temp (n int);
SELECT try($$SELECT dbops.add_check('x', 'SELECT count(*) FROM pg_temp.cc_temp')$$);
DROP TABLE cc_temp;
-- (a new session: this one has a schema for temporary objects now)
\c -
SET client_min_messages = warning;
SELECT count(*) FROM dbops.custom_checks WHERE check_name = 'x';
SELECT count(*) FROM dbops.health_thresholds WHERE check_name = 'x';

-- a query that fails at run time reports unknown, with its error
CREATE TABLE public.cc_gone (n int);
SELECT dbops.add_check('gone', 'SELECT count(*) FROM public.cc_gone');
SELECT dbops.add_check('ratio', $$SELECT 100 / count(*) FILTER (WHERE state = 'done') FROM public.cc_orders$$);
SELECT dbops.add_check('many_rows', $$SELECT id FROM public.cc_orders WHERE id > 500$$);
DROP TABLE public.cc_gone;
UPDATE public.cc_orders SET state = 'stuck';
INSERT INTO public.cc_orders VALUES (1000, 'stuck'), (1001, 'stuck');
SELECT check_name, status, value, detail FROM dbops.health()
WHERE check_name IN ('gone', 'ratio', 'many_rows') ORDER BY check_name;
-- a check that overruns dbops.health_check_timeout reports unknown
CREATE TABLE public.cc_flag (slow boolean NOT NULL);
INSERT INTO public.cc_flag VALUES (false);
SELECT dbops.add_check('slow',
    $$SELECT count(*) FROM public.cc_flag f, pg_sleep(CASE WHEN f.slow THEN 5 ELSE 0 END)$$);
UPDATE public.cc_flag SET slow = true;
SET dbops.health_check_timeout = '200ms';
SELECT check_name, status, detail FROM dbops.health() WHERE check_name = 'slow';
RESET dbops.health_check_timeout;
SELECT dbops.remove_check('slow');
-- and the other checks are unharmed
SELECT count(*) = (SELECT count(*) FROM dbops.health_checks()) AS all_ran FROM dbops.health();

-- remove_check
SELECT dbops.remove_check('gone');
SELECT count(*) FROM dbops.health() WHERE check_name = 'gone';
SELECT count(*) FROM dbops.health_thresholds WHERE check_name = 'gone';
SELECT try($$SELECT dbops.remove_check('gone')$$);
SELECT try($$SELECT dbops.remove_check('connections')$$);
SELECT try($$SELECT dbops.remove_check(NULL)$$);

-- ---------------------------------------------------------------------------
-- rights: a check runs as the role that added it, whoever runs the report
-- ---------------------------------------------------------------------------
CREATE ROLE regress_cc_owner;
CREATE ROLE regress_cc_other;
CREATE ROLE regress_cc_monitor IN ROLE pg_monitor;
CREATE SCHEMA cc_owned AUTHORIZATION regress_cc_owner;
GRANT SELECT ON public.cc_orders TO regress_cc_owner;

-- not for PUBLIC
SET ROLE regress_cc_other;
SELECT try($$SELECT dbops.add_check('mine', 'SELECT 1')$$);
SELECT try($$SELECT dbops.remove_check('ratio')$$);
SELECT try($$INSERT INTO dbops.custom_checks (check_name, query, owner) VALUES ('mine', 'SELECT 1', 'postgres')$$);
SELECT try($$UPDATE dbops.custom_checks SET query = 'SELECT 1'$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION dbops.add_check(text, text, numeric, numeric, text, text, text),
                          dbops.remove_check(text) TO regress_cc_owner, regress_cc_other;

SET ROLE regress_cc_owner;
-- what its role cannot read is refused when added
SELECT try($$SELECT dbops.add_check('authid', 'SELECT count(*) FROM pg_catalog.pg_authid')$$);
-- a check cannot write, even through a function of its owner's
CREATE TABLE cc_owned.log (at timestamptz);
CREATE FUNCTION cc_owned.write() RETURNS int LANGUAGE sql
AS $$ INSERT INTO cc_owned.log VALUES (now()); SELECT 1 $$;
SELECT try($$SELECT dbops.add_check('writes', 'SELECT cc_owned.write()')$$);
-- a check whose function changes settings cannot change the caller's
CREATE FUNCTION cc_owned.path() RETURNS int LANGUAGE sql
AS $$ SELECT pg_catalog.set_config('search_path', 'cc_owned', false); SELECT 1 $$;
SELECT dbops.add_check('path', 'SELECT cc_owned.path()');
SELECT dbops.add_check('who', $$SELECT 1, 'current_user ' || current_user || ', session_user ' || session_user$$);
SELECT dbops.add_check('orders_seen', $$SELECT count(*) FROM public.cc_orders$$);
RESET ROLE;
SELECT check_name, owner FROM dbops.custom_checks WHERE owner = 'regress_cc_owner'::regrole ORDER BY 1;

-- a superuser's report runs them as regress_cc_owner
SET search_path = public, pg_catalog;
SELECT check_name, status, value, detail FROM dbops.health()
WHERE check_name IN ('path', 'who', 'orders_seen') ORDER BY 1;
SHOW search_path;
-- rights the owner loses are lost to its check: unknown, not a superuser's read
REVOKE SELECT ON public.cc_orders FROM regress_cc_owner;
SELECT check_name, status, value, detail, hint FROM dbops.health() WHERE check_name = 'orders_seen';
GRANT SELECT ON public.cc_orders TO regress_cc_owner;

-- pg_monitor members and other roles see the same report
SET ROLE regress_cc_monitor;
SELECT check_name, status, value, detail FROM dbops.health()
WHERE check_name IN ('who', 'orders_seen') ORDER BY 1;
RESET ROLE;

-- other roles cannot remove them
SET ROLE regress_cc_other;
SELECT try($$SELECT dbops.remove_check('who')$$);
RESET ROLE;

-- in a session with temporary objects, only a caller with the owner's
-- rights runs them: the session's temporary tables and types would be
-- found by the names a query leaves unqualified
SET ROLE regress_cc_other;
CREATE TEMP TABLE cc_mine (n int);
SELECT check_name, status, detail, hint FROM dbops.health() WHERE check_name = 'who';
RESET ROLE;
SELECT check_name, status, detail FROM dbops.health() WHERE check_name = 'who';
SET ROLE regress_cc_owner;
SELECT check_name, status, detail FROM dbops.health() WHERE check_name = 'who';
RESET ROLE;

-- a role that is gone leaves its checks unknown, removable by a superuser
SET ROLE regress_cc_owner;
SELECT dbops.remove_check('path');
RESET ROLE;
DROP OWNED BY regress_cc_owner;
DROP ROLE regress_cc_owner;
SELECT check_name, status, regexp_replace(detail, '\d+', 'N') AS detail, hint
FROM dbops.health() WHERE check_name IN ('who', 'orders_seen') ORDER BY 1;
SELECT dbops.remove_check('who');
SELECT dbops.remove_check('orders_seen');

-- on a 1.0 catalog (the library of 1.1) there are none: test/t/081

SELECT check_name, dbops.remove_check(check_name) FROM dbops.custom_checks ORDER BY 1;
SELECT count(*) FROM dbops.custom_checks;
SELECT count(*) FROM dbops.health_thresholds t
WHERE NOT EXISTS (SELECT FROM dbops.health_checks() c WHERE c.check_name = t.check_name);
DROP TABLE public.cc_orders, public.cc_flag;
DROP FUNCTION public.try(text);
\c -
DROP OWNED BY regress_cc_other;
DROP ROLE regress_cc_other, regress_cc_monitor;
