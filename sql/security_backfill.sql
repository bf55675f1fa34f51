-- security_backfill: CALL dbops.backfill() runs the caller's set and where
-- with the caller's rights and nothing else: a hostile search_path (look-
-- alike functions and operators first) does not make it run an attacker's
-- function, a role cannot update through it what it could not update by
-- hand, and the caller's text cannot smuggle in another statement.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SET dbops.backfill_yield = 0;
-- run ids of this file do not depend on the tests before it
SELECT setval(pg_get_serial_sequence('dbops.backfill_runs', 'run_id'), 100000, true) > 0 AS run_ids_set;

CREATE TABLE public.sec_bf_log (what text, cur name);
GRANT SELECT, INSERT ON public.sec_bf_log TO PUBLIC;
CREATE FUNCTION public.sec_bf_trap(what text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO public.sec_bf_log VALUES (what, current_user);
    RETURN true;
END
$$;

CREATE ROLE sec_bf_attacker;
CREATE ROLE sec_bf_victim;
-- the grants doc/backfill.md gives a role that runs backfills
GRANT EXECUTE ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) TO sec_bf_attacker;
GRANT EXECUTE ON FUNCTION dbops._backfill_begin(), dbops._backfill_check(text, text, name),
    dbops._backfill_start(regclass, text, text, name, integer, boolean, interval),
    dbops._backfill_range(dbops._backfill_state, boolean),
    dbops._backfill_require_phase(dbops._backfill_state, text),
    dbops._backfill_wait(dbops._backfill_state, double precision),
    dbops._backfill_stop(dbops._backfill_state, text, text, text),
    dbops._backfill_batch(dbops._backfill_state), dbops._backfill_pending(dbops._backfill_state),
    dbops._backfill_lag(dbops._backfill_state), dbops._backfill_pause(dbops._backfill_state),
    dbops._backfill_record(dbops._backfill_state), dbops._backfill_finish(dbops._backfill_state),
    dbops._backfill_abort(dbops._backfill_state, text, text, text),
    dbops._purge_busy_sessions() TO sec_bf_attacker;
GRANT SELECT, INSERT, UPDATE ON dbops.backfill_runs TO sec_bf_attacker;
GRANT SELECT, INSERT, DELETE ON dbops.backfill_pending TO sec_bf_attacker;
GRANT SELECT ON dbops.backfill_progress TO sec_bf_attacker;

-- the attacker's look-alikes: operators and functions the backfill's own
-- statements and the caller's text might resolve to
CREATE SCHEMA sec_bf_evil AUTHORIZATION sec_bf_attacker;
SET ROLE sec_bf_attacker;
CREATE FUNCTION sec_bf_evil.gt(integer, integer) RETURNS boolean LANGUAGE sql
    AS $$ SELECT public.sec_bf_trap('operator >') $$;
CREATE OPERATOR sec_bf_evil.> (LEFTARG = integer, RIGHTARG = integer, FUNCTION = sec_bf_evil.gt);
CREATE FUNCTION sec_bf_evil.le(integer, integer) RETURNS boolean LANGUAGE sql
    AS $$ SELECT public.sec_bf_trap('operator <=') $$;
CREATE OPERATOR sec_bf_evil.<= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = sec_bf_evil.le);
CREATE FUNCTION sec_bf_evil.eq(text, text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT public.sec_bf_trap('operator =') $$;
CREATE OPERATOR sec_bf_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = sec_bf_evil.eq);
CREATE FUNCTION sec_bf_evil.lower(text) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN public.sec_bf_trap('lower') THEN 'trapped' END $$;
CREATE FUNCTION sec_bf_evil.max(integer) RETURNS integer LANGUAGE sql
    AS $$ SELECT CASE WHEN public.sec_bf_trap('max') THEN 0 END $$;
CREATE FUNCTION sec_bf_evil.count() RETURNS bigint LANGUAGE sql
    AS $$ SELECT CASE WHEN public.sec_bf_trap('count') THEN 0::bigint END $$;
CREATE FUNCTION sec_bf_evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT CASE WHEN public.sec_bf_trap('clock_timestamp') THEN now() END $$;
CREATE FUNCTION sec_bf_evil.set_config(text, text, boolean) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN public.sec_bf_trap('set_config') THEN '' END $$;
-- and its own table, which it may update
CREATE TABLE sec_bf_evil.mine (id int PRIMARY KEY, note text);
INSERT INTO sec_bf_evil.mine SELECT i, 'N' || i FROM generate_series(1, 50) i;
RESET ROLE;

-- the victim's table: the attacker may read it, not update it
CREATE TABLE public.sec_bf_t (id int PRIMARY KEY, note text, secret text);
INSERT INTO public.sec_bf_t SELECT i, 'N' || i, 's' FROM generate_series(1, 300) i;
ALTER TABLE public.sec_bf_t OWNER TO sec_bf_victim;
GRANT SELECT ON public.sec_bf_t TO sec_bf_attacker;
CREATE TABLE public.sec_bf_hidden (x int);
INSERT INTO public.sec_bf_hidden VALUES (42);

-- 1. a superuser backfills with the hostile schema first on its
-- search_path: its own text's names and dbops's statements resolve to
-- pg_catalog, no trap runs
SET search_path = sec_bf_evil, public;
CALL dbops.backfill('public.sec_bf_t', 'note = lower(note)', 'note = note AND id > 0', batch_size => 40);
SELECT count(*) FILTER (WHERE note = lower('N' || id)) AS lowered, count(*) AS total FROM public.sec_bf_t;
SELECT * FROM public.sec_bf_log;
SELECT status, rows_updated FROM dbops.backfill_progress WHERE relation = 'public.sec_bf_t'::regclass;
RESET search_path;

-- 2. the attacker cannot update the victim's table through the backfill
SET ROLE sec_bf_attacker;
\set VERBOSITY default
CALL dbops.backfill('public.sec_bf_t', 'secret = ''owned''');
\echo :LAST_ERROR_SQLSTATE
-- 3. nor read through its where what it may not read
CALL dbops.backfill('sec_bf_evil.mine', 'note = ''x''', 'id = (SELECT x FROM public.sec_bf_hidden)');
\echo :LAST_ERROR_SQLSTATE
-- 4. nor append a statement of its own, nor escape the where's parentheses
CALL dbops.backfill('sec_bf_evil.mine', 'note = ''x''', 'true); UPDATE public.sec_bf_t SET secret = ''owned''; SELECT (1');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('sec_bf_evil.mine', 'note = ''x''', 'false) OR (true');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.backfill('sec_bf_evil.mine', 'note = ''x'' FROM public.sec_bf_t');
\echo :LAST_ERROR_SQLSTATE
-- 5. its own table it may backfill, with its own search_path: no trap
SET search_path = sec_bf_evil, public;
CALL dbops.backfill('sec_bf_evil.mine', 'note = lower(note)', 'id <= 20');
RESET search_path;
RESET ROLE;
SELECT count(*) FILTER (WHERE note = lower(note)) AS lowered FROM sec_bf_evil.mine;
SELECT count(*) FROM public.sec_bf_t WHERE secret <> 's';
SELECT * FROM public.sec_bf_log;
SELECT relation, status, run_by FROM dbops.backfill_runs WHERE run_by = 'sec_bf_attacker' ORDER BY run_id;

-- 6. every function of the backfill pins search_path, the internal ones
-- are not executable by PUBLIC
SELECT p.oid::regprocedure AS unpinned FROM pg_proc p
 WHERE p.pronamespace = 'dbops'::regnamespace AND p.proname LIKE '%backfill%' AND p.prokind <> 'p'
   AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false);
SELECT p.oid::regprocedure AS public_internal FROM pg_proc p
 WHERE p.pronamespace = 'dbops'::regnamespace AND p.proname LIKE '%backfill%'
   AND has_function_privilege('public', p.oid, 'EXECUTE');

DROP SCHEMA sec_bf_evil CASCADE;
DROP TABLE public.sec_bf_t, public.sec_bf_hidden, public.sec_bf_log;
DROP FUNCTION public.sec_bf_trap(text);
REVOKE ALL ON dbops.backfill_runs, dbops.backfill_pending, dbops.backfill_progress FROM sec_bf_attacker;
REVOKE ALL ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) FROM sec_bf_attacker;
REVOKE ALL ON FUNCTION dbops._backfill_begin(), dbops._backfill_check(text, text, name),
    dbops._backfill_start(regclass, text, text, name, integer, boolean, interval),
    dbops._backfill_range(dbops._backfill_state, boolean),
    dbops._backfill_require_phase(dbops._backfill_state, text),
    dbops._backfill_wait(dbops._backfill_state, double precision),
    dbops._backfill_stop(dbops._backfill_state, text, text, text),
    dbops._backfill_batch(dbops._backfill_state), dbops._backfill_pending(dbops._backfill_state),
    dbops._backfill_lag(dbops._backfill_state), dbops._backfill_pause(dbops._backfill_state),
    dbops._backfill_record(dbops._backfill_state), dbops._backfill_finish(dbops._backfill_state),
    dbops._backfill_abort(dbops._backfill_state, text, text, text),
    dbops._purge_busy_sessions() FROM sec_bf_attacker;
DROP ROLE sec_bf_attacker, sec_bf_victim;
TRUNCATE dbops.backfill_runs, dbops.backfill_pending;
