-- Health, lock tree, bloat and reaper functions run by a superuser (or a
-- pg_monitor member) resolve names only to pg_catalog and dbops, whatever
-- the caller's search_path says.
--
-- An unprivileged role owns a schema with operators, functions, aggregates
-- and domains that shadow what dbops' queries use.  Every one of them calls
-- a trap that records who ran it, raises a WARNING (which would show in
-- this file's expected output) and, when it runs as a superuser, makes its
-- owner superuser.  The schema is then put in front of pg_catalog, and
-- after it (the shape of a `public` schema an ordinary role owns), and every
-- function of these capabilities is called.
\set VERBOSITY terse
SET client_min_messages = error;

CREATE ROLE sec_hea_evil;
CREATE ROLE sec_hea_mon IN ROLE pg_monitor;
CREATE SCHEMA sec_hea_evil AUTHORIZATION sec_hea_evil;

SET ROLE sec_hea_evil;
SET search_path = pg_catalog;

CREATE TABLE sec_hea_evil.trap_log (
    tag text, run_as name, session_as name, was_super boolean);
GRANT INSERT ON sec_hea_evil.trap_log TO PUBLIC;
GRANT USAGE ON SCHEMA sec_hea_evil TO PUBLIC;

CREATE FUNCTION sec_hea_evil.trap(tag pg_catalog.text) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    su boolean;
BEGIN
    SELECT rolsuper INTO su FROM pg_catalog.pg_roles WHERE rolname = current_user;
    INSERT INTO sec_hea_evil.trap_log VALUES (tag, current_user, session_user, su);
    RAISE WARNING 'trap % ran as %', tag, current_user;
    IF su THEN
        ALTER ROLE sec_hea_evil SUPERUSER;
    END IF;
    RETURN true;
END
$$;

-- Operators: every operator dbops' queries apply, over the types they apply
-- them to, and then some.  Each returns what pg_catalog's would.
DO $do$
DECLARE
    ops text[] := ARRAY['=', '<>', '<', '>', '<=', '>=', '+', '-', '*', '/', '||', '~~'];
    types text[] := ARRAY['oid', 'integer', 'bigint', 'numeric', 'double precision',
                          'text', 'name', '"char"', 'interval', 'timestamp with time zone',
                          'regnamespace', 'xid'];
    op text; l text; r text; res text; n int := 0;
BEGIN
    FOREACH op IN ARRAY ops LOOP
        FOREACH l IN ARRAY types LOOP
            FOREACH r IN ARRAY types LOOP
                BEGIN
                    EXECUTE format('SELECT pg_catalog.pg_typeof(NULL::%s OPERATOR(pg_catalog.%s) NULL::%s)',
                                   l, op, r) INTO res;
                EXCEPTION WHEN undefined_function OR ambiguous_function OR datatype_mismatch THEN
                    CONTINUE;
                END;
                n := n + 1;
                EXECUTE format($f$
                    CREATE FUNCTION sec_hea_evil.op_%s(%s, %s) RETURNS %s
                    LANGUAGE plpgsql SET search_path = pg_catalog AS $b$
                    BEGIN
                        PERFORM sec_hea_evil.trap(%L);
                        RETURN $1 OPERATOR(pg_catalog.%s) $2;
                    END $b$$f$, n, l, r, res, format('%s %s %s', l, op, r), op);
                EXECUTE format('CREATE OPERATOR sec_hea_evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sec_hea_evil.op_%s)',
                               op, l, r, n);
            END LOOP;
        END LOOP;
    END LOOP;
END
$do$;
SELECT count(*) > 300 AS many_operators
FROM pg_catalog.pg_operator WHERE oprnamespace = 'sec_hea_evil'::regnamespace;

-- Functions, with the argument types dbops passes (an exact match beats
-- pg_catalog's polymorphic or implicitly cast candidates).
CREATE FUNCTION sec_hea_evil.now() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION sec_hea_evil.age(xid) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('age(xid)'); RETURN pg_catalog.age($1); END $$;
CREATE FUNCTION sec_hea_evil.mxid_age(xid) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('mxid_age(xid)'); RETURN pg_catalog.mxid_age($1); END $$;
CREATE FUNCTION sec_hea_evil.extract(text, interval) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('extract(text, interval)'); RETURN pg_catalog.extract($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.extract(text, timestamptz) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('extract(text, timestamptz)'); RETURN pg_catalog.extract($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.date_part(text, interval) RETURNS double precision
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('date_part(text, interval)'); RETURN pg_catalog.date_part($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.pg_relation_size(oid) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('pg_relation_size(oid)'); RETURN pg_catalog.pg_relation_size($1); END $$;
CREATE FUNCTION sec_hea_evil.has_table_privilege(oid, text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('has_table_privilege(oid, text)'); RETURN pg_catalog.has_table_privilege($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.has_any_column_privilege(oid, text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('has_any_column_privilege(oid, text)'); RETURN pg_catalog.has_any_column_privilege($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.pg_stat_get_mod_since_analyze(oid) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('pg_stat_get_mod_since_analyze(oid)'); RETURN pg_catalog.pg_stat_get_mod_since_analyze($1); END $$;
CREATE FUNCTION sec_hea_evil.unnest(oid[]) RETURNS SETOF oid
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('unnest(oid[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION sec_hea_evil.unnest(text[]) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('unnest(text[])'); RETURN QUERY SELECT pg_catalog.unnest($1); END $$;
CREATE FUNCTION sec_hea_evil.substring(text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('substring(text, text)'); RETURN pg_catalog.substring($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.lower(text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('lower(text)'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION sec_hea_evil.format(text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('format(text, text)'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.concat_ws(text, text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('concat_ws(text, text, text)'); RETURN pg_catalog.concat_ws($1, $2, $3); END $$;
CREATE FUNCTION sec_hea_evil.round(numeric) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('round(numeric)'); RETURN pg_catalog.round($1); END $$;
CREATE FUNCTION sec_hea_evil.ceil(numeric) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('ceil(numeric)'); RETURN pg_catalog.ceil($1); END $$;
CREATE FUNCTION sec_hea_evil.floor(numeric) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('floor(numeric)'); RETURN pg_catalog.floor($1); END $$;
CREATE FUNCTION sec_hea_evil.repeat(text, integer) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('repeat(text, integer)'); RETURN pg_catalog.repeat($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.left(text, integer) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('left(text, integer)'); RETURN pg_catalog.left($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.to_char(interval, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('to_char(interval, text)'); RETURN pg_catalog.to_char($1, $2); END $$;
CREATE FUNCTION sec_hea_evil.regexp_replace(text, text, text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('regexp_replace(text, text, text, text)'); RETURN pg_catalog.regexp_replace($1, $2, $3, $4); END $$;
CREATE FUNCTION sec_hea_evil.cardinality(integer[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('cardinality(integer[])'); RETURN pg_catalog.cardinality($1); END $$;
CREATE FUNCTION sec_hea_evil.current_setting(text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('current_setting(text)'); RETURN pg_catalog.current_setting($1); END $$;
CREATE FUNCTION sec_hea_evil.pg_is_in_recovery() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('pg_is_in_recovery()'); RETURN pg_catalog.pg_is_in_recovery(); END $$;
CREATE FUNCTION sec_hea_evil.jsonb_build_object(text, text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('jsonb_build_object(text, text)'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;

-- Aggregates (array_agg, count... are aggregates, not functions).
CREATE FUNCTION sec_hea_evil.sf_array(text[], text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('array_agg(text)'); RETURN pg_catalog.array_append($1, $2); END $$;
CREATE AGGREGATE sec_hea_evil.array_agg(text) (SFUNC = sec_hea_evil.sf_array, STYPE = text[], INITCOND = '{}');
CREATE FUNCTION sec_hea_evil.sf_count(bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('count(*)'); RETURN $1 OPERATOR(pg_catalog.+) 1; END $$;
CREATE AGGREGATE sec_hea_evil.count(*) (SFUNC = sec_hea_evil.sf_count, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION sec_hea_evil.sf_count_text(bigint, text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('count(text)'); RETURN $1 OPERATOR(pg_catalog.+) 1; END $$;
CREATE AGGREGATE sec_hea_evil.count(text) (SFUNC = sec_hea_evil.sf_count_text, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION sec_hea_evil.sf_sum(numeric, numeric) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('sum(numeric)'); RETURN coalesce($1, 0) OPERATOR(pg_catalog.+) $2; END $$;
CREATE AGGREGATE sec_hea_evil.sum(numeric) (SFUNC = sec_hea_evil.sf_sum, STYPE = numeric);
CREATE FUNCTION sec_hea_evil.sf_bool_or(boolean, boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('bool_or(boolean)'); RETURN $1 OR $2; END $$;
CREATE AGGREGATE sec_hea_evil.bool_or(boolean) (SFUNC = sec_hea_evil.sf_bool_or, STYPE = boolean);
CREATE FUNCTION sec_hea_evil.sf_string_agg(text, text, text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('string_agg(text, text)'); RETURN pg_catalog.concat_ws($3, $1, $2); END $$;
CREATE AGGREGATE sec_hea_evil.string_agg(text, text) (SFUNC = sec_hea_evil.sf_string_agg, STYPE = text);
CREATE FUNCTION sec_hea_evil.sf_jsonb_agg(jsonb, jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('jsonb_agg(jsonb)'); RETURN $1 OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array($2); END $$;
CREATE AGGREGATE sec_hea_evil.jsonb_agg(jsonb) (SFUNC = sec_hea_evil.sf_jsonb_agg, STYPE = jsonb, INITCOND = '[]');
CREATE FUNCTION sec_hea_evil.sf_jsonb_object_agg(jsonb, text, bigint) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('jsonb_object_agg(text, bigint)'); RETURN $1 OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object($2, $3); END $$;
CREATE AGGREGATE sec_hea_evil.jsonb_object_agg(text, bigint) (SFUNC = sec_hea_evil.sf_jsonb_object_agg, STYPE = jsonb, INITCOND = '{}');

-- Domains named like the types dbops casts to: their CHECK runs on every
-- value cast to them.
DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['int8', 'int4', 'float8', 'text', 'name', 'oid', 'inet', 'cidr',
                             'interval', 'timestamptz', 'regclass', 'regnamespace', 'numeric',
                             'bool', 'jsonb'] LOOP
        EXECUTE format('CREATE DOMAIN sec_hea_evil.%I AS pg_catalog.%I CHECK (sec_hea_evil.trap(%L))',
                       t, t, '::' || t);
    END LOOP;
END
$do$;

-- A table of the attacker's with an expression index: bloat reads its pages
-- and the index's, and nothing of the attacker's may run meanwhile.
CREATE FUNCTION sec_hea_evil.idx_expr(integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('index expression'); RETURN $1; END $$;
CREATE TABLE sec_hea_evil.t (id integer, pad text);
INSERT INTO sec_hea_evil.t SELECT g, pg_catalog.repeat('x', 100) FROM pg_catalog.generate_series(1, 2000) g;
CREATE INDEX t_expr ON sec_hea_evil.t (sec_hea_evil.idx_expr(id));
DELETE FROM sec_hea_evil.t WHERE id OPERATOR(pg_catalog.<) 500;
ANALYZE sec_hea_evil.t;
TRUNCATE sec_hea_evil.trap_log;

-- the traps work: as their owner, with the schema first
SET client_min_messages = warning;
SET search_path = sec_hea_evil, pg_catalog;
SELECT 1::oid >= 1 AS op, count(*) AS agg FROM (VALUES (1)) v;
SELECT now() IS NOT NULL AS func, '1'::int8 AS domain;
SET search_path = pg_catalog;
SELECT tag, run_as, was_super FROM sec_hea_evil.trap_log ORDER BY tag;
TRUNCATE sec_hea_evil.trap_log;
RESET search_path;
RESET ROLE;

-- What the superuser has: a reaper policy (its policy query computes
-- microseconds from idle_timeout), a prepared transaction holding a lock
-- (lock tree, prepared_xacts check), an invalid index (invalid_indexes).
INSERT INTO dbops.reaper_policies (idle_timeout, note) VALUES ('1 year', 'sec_hea');
CREATE TABLE sec_hea_dup (k integer);
INSERT INTO sec_hea_dup VALUES (1), (1);
CREATE UNIQUE INDEX CONCURRENTLY sec_hea_dup_k ON sec_hea_dup (k);
-- (The prepared transaction needs max_prepared_transactions > 0: make test
-- runs this file on a cluster with it and on one with the default 0.)
SELECT current_setting('max_prepared_transactions')::int > 0 AS can_prepare \gset
\if :can_prepare
BEGIN;
LOCK TABLE sec_hea_dup IN SHARE MODE;
PREPARE TRANSACTION 'sec_hea_px';
\endif
-- a check written in SQL whose query names nothing with its schema: it is
-- parsed, tried and run under search_path pg_catalog, pg_temp, whatever the
-- caller's (it is added here with the hostile schema first)
SET search_path = sec_hea_evil, pg_catalog, public;
SELECT dbops.add_check('sec_hea_custom',
    $$SELECT count(*) + '0'::int8, string_agg(relname::text, ',') FROM pg_class
      WHERE relname = 'pg_class' AND now() IS NOT NULL AND 1::oid >= 1$$);
RESET search_path;

-- Every function of health, lock tree, bloat and reaper, called through
-- EXECUTE so that the calls run under the session's search_path as they are
-- (this helper's own statements use no operator, function or type name).
CREATE FUNCTION pg_temp.call_all() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    stmt pg_catalog.text;
    state pg_catalog.text;
BEGIN
    FOREACH stmt IN ARRAY ARRAY[
        'SELECT dbops.health_status()',
        'SELECT dbops.health_json()',
        'SELECT * FROM dbops.health()',
        'SELECT * FROM dbops.health_checks()',
        'SELECT * FROM dbops.index_advice()',
        $q$SELECT dbops.health_overall('{ok,warning,skipped}')$q$,
        $q$UPDATE dbops.health_thresholds SET enabled = true WHERE check_name OPERATOR(pg_catalog.=) 'bloat'$q$,
        $q$INSERT INTO dbops.health_thresholds VALUES ('lock_waits', 30, 300, true)$q$,
        $q$SELECT dbops._require_positive_interval('x', '1 hour')$q$,
        'SELECT * FROM dbops.lock_tree()',
        'SELECT * FROM dbops.lock_tree_text()',
        'SELECT * FROM dbops.cancel_blockers()',
        $q$SELECT * FROM dbops.cancel_blockers('1 microsecond', dry_run => true)$q$,
        $q$SELECT * FROM dbops.bloat(NULL, 'stats')$q$,
        'SELECT * FROM dbops.bloat()',
        $q$SELECT * FROM dbops.bloat('sec_hea_evil.t', 'exact')$q$,
        $q$SELECT * FROM dbops.bloat('sec_hea_evil.t', 'sample', seed => 1)$q$,
        $q$SELECT * FROM dbops.bloat('sec_hea_evil.t', 'stats')$q$,
        $q$SELECT * FROM dbops.bloat('sec_hea_evil.t_expr', 'exact')$q$,
        $q$SELECT * FROM dbops.reap_idle('1 day')$q$,
        $q$SELECT * FROM dbops.reap_idle('1 day', '{idle,"idle in transaction"}', false, 'cancel')$q$,
        'SELECT * FROM dbops.reaper_status()',
        'SELECT * FROM dbops.reaper_events()']
    LOOP
        BEGIN
            EXECUTE stmt;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
            RAISE NOTICE '%: %: %', stmt, state, SQLERRM;
        END;
    END LOOP;
END
$$;
SET client_min_messages = notice;

-- a superuser with the hostile schema first
SET search_path = sec_hea_evil, pg_catalog, public;
SELECT pg_temp.call_all();
RESET search_path;

-- a superuser with the hostile schema after pg_catalog (a public schema an
-- ordinary role owns: better-matching overloads, such as >=(oid, integer),
-- *(numeric, integer), array_agg(text) or pg_relation_size(oid))
SET search_path = sec_hea_evil;
SELECT pg_temp.call_all();
RESET search_path;

-- a pg_monitor member, schema first (what it may not call says so)
SET ROLE sec_hea_mon;
SET search_path = sec_hea_evil, pg_catalog, public;
SELECT pg_temp.call_all();
RESET search_path;
RESET ROLE;

-- nothing of the attacker's ran, and the attacker is not superuser
SELECT tag, run_as, session_as, was_super FROM sec_hea_evil.trap_log ORDER BY tag;
-- (the check written in SQL ran and counted with pg_catalog's count)
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'sec_hea_custom';
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_hea_evil';

-- the reaper's policy query with exactly the reported operator, in public
-- as its owner would create it, and the default search_path
SET client_min_messages = warning;
SET ROLE sec_hea_evil;
CREATE FUNCTION sec_hea_evil.mul(numeric, integer) RETURNS numeric
LANGUAGE plpgsql SET search_path = pg_catalog AS
$$ BEGIN PERFORM sec_hea_evil.trap('public.*(numeric, integer)'); RETURN $1 OPERATOR(pg_catalog.*) $2; END $$;
RESET ROLE;
CREATE SCHEMA sec_hea_public AUTHORIZATION sec_hea_evil;
SET ROLE sec_hea_evil;
CREATE OPERATOR sec_hea_public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = sec_hea_evil.mul);
RESET ROLE;
SET client_min_messages = notice;
SET search_path = "$user", sec_hea_public;
SELECT count(*) >= 0 AS reaped FROM dbops.reap_idle('1 day');
SELECT count(*) >= 0 AS listed FROM dbops.reap_idle('1 day', dry_run => false, action => 'cancel');
RESET search_path;
SELECT tag, run_as FROM sec_hea_evil.trap_log ORDER BY tag;
SELECT rolsuper FROM pg_roles WHERE rolname = 'sec_hea_evil';

-- every function of these capabilities pins search_path, and who may call it
SELECT p.oid::regprocedure AS function, l.lanname AS lang,
       coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false) AS pinned,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('pg_monitor', p.oid, 'EXECUTE') AS pg_monitor,
       has_function_privilege('pg_signal_backend', p.oid, 'EXECUTE') AS pg_signal_backend
FROM pg_proc p
JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'dbops'::regnamespace
  AND p.proname IN ('_require_positive_interval', 'health_checks', '_health_thresholds_validate',
                    'health', 'health_overall', 'health_status', 'health_json',
                    'lock_tree', 'lock_tree_text', 'cancel_blockers',
                    '_bloat_stats', 'bloat',
                    'reap_idle', 'reaper_status', 'reaper_events', '_reaper_policies_validate',
                    'add_check', 'remove_check')
ORDER BY p.oid::regprocedure::text;

-- clean up
SET client_min_messages = warning;
\if :can_prepare
ROLLBACK PREPARED 'sec_hea_px';
\endif
DELETE FROM dbops.reaper_policies WHERE note = 'sec_hea';
SELECT dbops.remove_check('sec_hea_custom');
DROP TABLE sec_hea_dup;
DROP SCHEMA sec_hea_public CASCADE;
DROP SCHEMA sec_hea_evil CASCADE;
DROP ROLE sec_hea_evil;
DROP ROLE sec_hea_mon;
