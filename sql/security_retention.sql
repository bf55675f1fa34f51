-- security_retention: ordinary roles attacking retention purges, the
-- superuser's CALL dbops.purge(), purge_preview(), the policy functions and
-- the retention health check (also inside the SECURITY DEFINER
-- dbops.health_snapshot()).  After each attack: did a role become
-- superuser, did a trap run as superuser, were rows outside the attacker's
-- rights deleted, did the call get a clear error?
\set SHOW_CONTEXT never
SET client_min_messages = notice;
SET TimeZone = 'UTC';

-- Every trap writes who ran it here and tries to make a role superuser.
CREATE TABLE public.sec_ret_log (seq serial, what text, cur name, sess name, super_after boolean);
GRANT SELECT, INSERT ON public.sec_ret_log TO PUBLIC;
GRANT USAGE ON SEQUENCE public.sec_ret_log_seq_seq TO PUBLIC;
CREATE FUNCTION public.sec_ret_trap(what text, who name) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    BEGIN
        EXECUTE format('ALTER ROLE %I SUPERUSER', who);
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    INSERT INTO public.sec_ret_log (what, cur, sess, super_after)
    VALUES (what, current_user, session_user,
            (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = who));
    RETURN true;
END
$$;
-- what a user checks after each attack
CREATE FUNCTION pg_temp.supers() RETURNS TABLE (rolname name, rolsuper boolean)
LANGUAGE sql AS $$
    SELECT r.rolname, r.rolsuper FROM pg_catalog.pg_roles r
     WHERE r.rolname LIKE 'sec\_ret\_%' ORDER BY 1
$$;
CREATE FUNCTION pg_temp.trapped() RETURNS TABLE (what text, cur name, super_after boolean)
LANGUAGE sql AS $$
    SELECT l.what, l.cur, l.super_after FROM public.sec_ret_log l
     GROUP BY 1, 2, 3 ORDER BY min(l.seq)
$$;

-- run and policy ids of this file do not depend on the tests before it
SELECT setval(pg_get_serial_sequence('dbops.purge_runs', 'run_id'), 100000) > 0 AS run_ids_set,
       setval(pg_get_serial_sequence('dbops.retention_policies', 'policy_id'), 100000) > 0 AS policy_ids_set;

CREATE ROLE sec_ret_owner;
CREATE ROLE sec_ret_attacker;
CREATE ROLE sec_ret_member;
CREATE ROLE sec_ret_writer;
CREATE ROLE sec_ret_shadow;
CREATE SCHEMA sec_ret_own AUTHORIZATION sec_ret_owner;
-- the grants doc/retention.md gives a role that manages policies
GRANT EXECUTE ON FUNCTION
    dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean),
    dbops.remove_retention_policy(regclass),
    dbops._retention_validate(regclass, name, interval, integer)
    TO sec_ret_owner, sec_ret_attacker, sec_ret_member;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.retention_policies
    TO sec_ret_owner, sec_ret_attacker, sec_ret_member, sec_ret_writer;

-- ---------------------------------------------------------------------------
-- (a) a role with the policy functions but no rights on a table adds a
-- policy for it; the superuser's purge would delete its rows
-- ---------------------------------------------------------------------------
CREATE TABLE public.sec_ret_victim (id int, at timestamptz NOT NULL);
CREATE INDEX ON public.sec_ret_victim (at);
INSERT INTO public.sec_ret_victim SELECT i, now() - i * interval '1 day' FROM generate_series(1, 20) i;
ALTER TABLE public.sec_ret_victim OWNER TO sec_ret_owner;
-- a policy of the superuser's own on a table of its own
CREATE TABLE public.sec_ret_mine (id int, at timestamptz NOT NULL);
CREATE INDEX ON public.sec_ret_mine (at);
SELECT dbops.add_retention_policy('sec_ret_mine', 'at', '30 days') > 0 AS added;

SET ROLE sec_ret_attacker;
SELECT dbops.add_retention_policy('sec_ret_victim', 'at', '1 day');
\echo :LAST_ERROR_SQLSTATE
-- nor through the table: as the superuser, or by repointing or changing a
-- policy the superuser made
INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size, created_by)
SELECT 'sec_ret_victim', 'at', '1 day', 100, r.rolname FROM pg_roles r WHERE r.oid = 10;
\echo :LAST_ERROR_SQLSTATE
UPDATE dbops.retention_policies SET relation = 'sec_ret_victim' WHERE relation = 'sec_ret_mine'::regclass;
\echo :LAST_ERROR_SQLSTATE
UPDATE dbops.retention_policies SET keep = '1 second' WHERE relation = 'sec_ret_mine'::regclass;
\echo :LAST_ERROR_SQLSTATE
-- in its own name the row goes in (the role may write the table) ...
INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size)
VALUES ('sec_ret_victim', 'at', '1 day', 100);
SELECT relation, created_by FROM dbops.retention_policies WHERE relation = 'sec_ret_victim'::regclass;
RESET ROLE;

-- ... but the superuser's purge skips it, says why, deletes nothing
CALL dbops.purge('sec_ret_victim');
\echo :LAST_ERROR_SQLSTATE
SELECT status, sqlstate, message, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_victim' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS victim_rows FROM public.sec_ret_victim;
SELECT substring(detail FROM 'sec_ret_victim: [^;]*') AS retention_check
  FROM dbops.health() WHERE check_name = 'retention';
SELECT count(*) AS previewed FROM dbops.purge_preview('sec_ret_victim');
-- alter and remove want the owner's rights too
SET ROLE sec_ret_attacker;
SELECT dbops.alter_retention_policy('sec_ret_victim', keep => '2 days');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.remove_retention_policy('sec_ret_victim');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- the owner adopts the policy: altering it records the owner, and the purge
-- then runs it
SET ROLE sec_ret_owner;
SELECT dbops.alter_retention_policy('sec_ret_victim', keep => '10 days');
SELECT created_by FROM dbops.retention_policies WHERE relation = 'sec_ret_victim'::regclass;
RESET ROLE;
SET client_min_messages = warning;
CALL dbops.purge('sec_ret_victim');
RESET client_min_messages;
SELECT status, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_victim' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS victim_rows FROM public.sec_ret_victim;

-- a creator who loses the owner's rights, or no longer exists: skipped
CREATE TABLE public.sec_ret_lost (id int, at timestamptz NOT NULL);
CREATE INDEX ON public.sec_ret_lost (at);
INSERT INTO public.sec_ret_lost SELECT i, now() - i * interval '1 day' FROM generate_series(1, 20) i;
ALTER TABLE public.sec_ret_lost OWNER TO sec_ret_owner;
GRANT sec_ret_owner TO sec_ret_member;
SET ROLE sec_ret_member;
SELECT dbops.add_retention_policy('sec_ret_lost', 'at', '10 days') > 0 AS added;
RESET ROLE;
REVOKE sec_ret_owner FROM sec_ret_member;
CALL dbops.purge('sec_ret_lost');
SELECT status, sqlstate, message, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_lost' ORDER BY run_id DESC LIMIT 1;
REVOKE ALL ON ALL TABLES IN SCHEMA dbops FROM sec_ret_member;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbops FROM sec_ret_member;
DROP ROLE sec_ret_member;
CALL dbops.purge('sec_ret_lost');
SELECT status, sqlstate, message, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_lost' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS lost_rows FROM public.sec_ret_lost;
SELECT * FROM pg_temp.supers();

-- ---------------------------------------------------------------------------
-- (b) the table owner's BEFORE DELETE trigger during the superuser's purge
-- ---------------------------------------------------------------------------
CREATE TABLE public.sec_ret_trig (id int, at timestamptz NOT NULL);
CREATE INDEX ON public.sec_ret_trig (at);
INSERT INTO public.sec_ret_trig SELECT i, now() - i * interval '10 days' FROM generate_series(1, 5) i;
ALTER TABLE public.sec_ret_trig OWNER TO sec_ret_owner;
SET ROLE sec_ret_owner;
CREATE FUNCTION sec_ret_own.sec_ret_trig_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.sec_ret_trap('before delete trigger', 'sec_ret_owner');
    RETURN OLD;
END
$$;
CREATE TRIGGER sec_ret_trig BEFORE DELETE ON public.sec_ret_trig
    FOR EACH ROW EXECUTE FUNCTION sec_ret_own.sec_ret_trig_fn();
SELECT dbops.add_retention_policy('sec_ret_trig', 'at', '15 days') > 0 AS added;
RESET ROLE;
SET client_min_messages = warning;
CALL dbops.purge('sec_ret_trig');
RESET client_min_messages;
SELECT status, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_trig' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM pg_temp.trapped();
SELECT * FROM pg_temp.supers();
TRUNCATE public.sec_ret_log;

-- ---------------------------------------------------------------------------
-- (d) a role that may write dbops.retention_policies points policies at a
-- temporary view and a temporary table of its own
-- ---------------------------------------------------------------------------
SET ROLE sec_ret_writer;
CREATE TEMP VIEW sec_ret_tv AS
    SELECT now() - interval '1 year' AS at WHERE public.sec_ret_trap('temporary view', 'sec_ret_writer');
CREATE TEMP TABLE sec_ret_tt (at timestamptz NOT NULL);
CREATE INDEX ON sec_ret_tt (at);
INSERT INTO sec_ret_tt VALUES (now() - interval '1 year');
CREATE FUNCTION pg_temp.sec_ret_tt_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.sec_ret_trap('temporary table trigger', 'sec_ret_writer');
    RETURN OLD;
END
$$;
CREATE TRIGGER sec_ret_tt BEFORE DELETE ON sec_ret_tt FOR EACH ROW EXECUTE FUNCTION pg_temp.sec_ret_tt_fn();
INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size)
VALUES ('sec_ret_tv', 'at', '1 day', 10), ('sec_ret_tt', 'at', '1 day', 10);
RESET ROLE;
CALL dbops.purge('sec_ret_tv');
CALL dbops.purge('sec_ret_tt');
SELECT relation, status, sqlstate, message
  FROM dbops.purge_runs WHERE relation ~ 'sec_ret_t[vt]' ORDER BY run_id;
SELECT substring(detail FROM 'pg_temp\.sec_ret_tv: [^;]*') AS view_check,
       substring(detail FROM 'pg_temp\.sec_ret_tt: [^;]*') AS table_check
  FROM dbops.health() WHERE check_name = 'retention';
SELECT inserted > 0 AS snapshot_taken FROM dbops.health_snapshot();
SELECT count(*) AS temp_rows_left FROM sec_ret_tt;
SELECT * FROM pg_temp.trapped();
SELECT * FROM pg_temp.supers();
DELETE FROM dbops.retention_policies WHERE relation IN ('sec_ret_tv'::regclass, 'sec_ret_tt'::regclass);
DROP VIEW sec_ret_tv;
DROP TABLE sec_ret_tt;
DROP FUNCTION pg_temp.sec_ret_tt_fn();

-- ---------------------------------------------------------------------------
-- (e) a role owning a schema in the superuser's search_path shadows
-- functions, operators and types that retention's queries use
-- ---------------------------------------------------------------------------
CREATE SCHEMA sec_ret_evil AUTHORIZATION sec_ret_shadow;
SET ROLE sec_ret_shadow;
-- functions resolved by argument type: beat pg_catalog's even behind it
CREATE FUNCTION sec_ret_evil.make_interval(secs integer) RETURNS interval
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.make_interval(secs => secs::float8) FROM pg_catalog.generate_series(1, 1)
       WHERE public.sec_ret_trap('make_interval(integer)', 'sec_ret_shadow') $$;
CREATE FUNCTION sec_ret_evil.num_mul(numeric, integer) RETURNS numeric
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.*) $2 WHERE public.sec_ret_trap('*(numeric, integer)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = sec_ret_evil.num_mul);
CREATE FUNCTION sec_ret_evil.bigint_ge(bigint, integer) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.>=) $2 WHERE public.sec_ret_trap('>=(bigint, integer)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.>= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = sec_ret_evil.bigint_ge);
-- exact matches: win when the schema comes before pg_catalog
CREATE FUNCTION sec_ret_evil.now() RETURNS timestamptz
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.now() WHERE public.sec_ret_trap('now()', 'sec_ret_shadow') $$;
CREATE FUNCTION sec_ret_evil.clock_timestamp() RETURNS timestamptz
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.clock_timestamp() WHERE public.sec_ret_trap('clock_timestamp()', 'sec_ret_shadow') $$;
CREATE FUNCTION sec_ret_evil.has_table_privilege(oid, text) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT pg_catalog.has_table_privilege($1, $2) WHERE public.sec_ret_trap('has_table_privilege(oid, text)', 'sec_ret_shadow') $$;
CREATE FUNCTION sec_ret_evil.ts_lt(timestamptz, timestamptz) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.<) $2 WHERE public.sec_ret_trap('<(timestamptz, timestamptz)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = sec_ret_evil.ts_lt);
CREATE FUNCTION sec_ret_evil.ts_mi(timestamptz, interval) RETURNS timestamptz
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.-) $2 WHERE public.sec_ret_trap('-(timestamptz, interval)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = sec_ret_evil.ts_mi);
CREATE FUNCTION sec_ret_evil.oid_eq(oid, oid) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.=) $2 WHERE public.sec_ret_trap('=(oid, oid)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = sec_ret_evil.oid_eq);
CREATE FUNCTION sec_ret_evil.int_eq(integer, integer) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.=) $2 WHERE public.sec_ret_trap('=(integer, integer)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = sec_ret_evil.int_eq);
CREATE FUNCTION sec_ret_evil.text_cat(text, text) RETURNS text
LANGUAGE sql SET search_path = pg_catalog
AS $$ SELECT $1 OPERATOR(pg_catalog.||) $2 WHERE public.sec_ret_trap('||(text, text)', 'sec_ret_shadow') $$;
CREATE OPERATOR sec_ret_evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = sec_ret_evil.text_cat);
-- types: domains whose CHECK calls the trap, named like the types retention
-- casts to
CREATE DOMAIN sec_ret_evil.timestamptz AS pg_catalog.timestamptz
    CHECK (public.sec_ret_trap('domain timestamptz', 'sec_ret_shadow'));
CREATE DOMAIN sec_ret_evil."interval" AS pg_catalog.interval
    CHECK (public.sec_ret_trap('domain interval', 'sec_ret_shadow'));
CREATE DOMAIN sec_ret_evil.int8 AS pg_catalog.int8
    CHECK (public.sec_ret_trap('domain int8', 'sec_ret_shadow'));
CREATE DOMAIN sec_ret_evil.text AS pg_catalog.text
    CHECK (public.sec_ret_trap('domain text', 'sec_ret_shadow'));
CREATE DOMAIN sec_ret_evil.regclass AS pg_catalog.regclass
    CHECK (public.sec_ret_trap('domain regclass', 'sec_ret_shadow'));
CREATE DOMAIN sec_ret_evil.date AS pg_catalog.date
    CHECK (public.sec_ret_trap('domain date', 'sec_ret_shadow'));
RESET ROLE;

-- a table of an ordinary owner under a policy, a partitioned one too
CREATE TABLE public.sec_ret_shadowed (id int, at timestamptz NOT NULL);
CREATE INDEX ON public.sec_ret_shadowed (at);
INSERT INTO public.sec_ret_shadowed SELECT i, now() - i * interval '1 day' FROM generate_series(1, 40) i;
ALTER TABLE public.sec_ret_shadowed OWNER TO sec_ret_owner;
CREATE TABLE public.sec_ret_parts (at date NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE public.sec_ret_parts_old PARTITION OF public.sec_ret_parts FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE public.sec_ret_parts_new PARTITION OF public.sec_ret_parts FOR VALUES FROM ('2001-01-01') TO (MAXVALUE);
CREATE INDEX ON public.sec_ret_parts (at);
INSERT INTO public.sec_ret_parts VALUES ('2000-06-01', 1), ('2001-06-01', 2), (current_date, 3);
ALTER TABLE public.sec_ret_parts OWNER TO sec_ret_owner;
ALTER TABLE public.sec_ret_parts_old OWNER TO sec_ret_owner;
ALTER TABLE public.sec_ret_parts_new OWNER TO sec_ret_owner;
-- only the retention check runs in dbops.health() here
CREATE TEMP TABLE sec_ret_enabled AS SELECT check_name, enabled FROM dbops.health_thresholds;
UPDATE dbops.health_thresholds SET enabled = (check_name = 'retention');

-- 1: the attacker's schema first, pg_catalog implicitly before it
SET search_path = sec_ret_evil, public;
SELECT dbops.add_retention_policy('sec_ret_shadowed', 'at', '30 days', batch_size => 3) > 0 AS added;
SELECT dbops.add_retention_policy('sec_ret_parts', 'at', '1 year', batch_size => 3) > 0 AS added;
SELECT dbops.alter_retention_policy('sec_ret_shadowed', batch_size => 4);
SELECT rows_to_delete, partitions_to_drop FROM dbops.purge_preview('sec_ret_shadowed');
SET client_min_messages = warning;
CALL dbops.purge('sec_ret_shadowed', dry_run => true);
CALL dbops.purge('sec_ret_shadowed');
CALL dbops.purge('sec_ret_parts');
RESET client_min_messages;
CREATE TEMP TABLE sec_ret_h1 AS SELECT check_name, status FROM dbops.health();
SELECT inserted FROM dbops.health_snapshot();
RESET search_path;
SELECT * FROM pg_temp.trapped();
SELECT relation, status, rows_deleted, partitions_dropped FROM dbops.purge_runs
 WHERE relation IN ('sec_ret_shadowed', 'sec_ret_parts') ORDER BY run_id;
SELECT count(*) FROM public.sec_ret_shadowed;
SELECT v FROM public.sec_ret_parts ORDER BY v;

-- 2: the attacker's schema before pg_catalog (as ALTER DATABASE ... SET
-- search_path by a database owner would put it)
INSERT INTO public.sec_ret_shadowed SELECT i, now() - i * interval '1 day' FROM generate_series(100, 110) i;
SET search_path = sec_ret_evil, pg_catalog, public;
SELECT dbops.alter_retention_policy('sec_ret_shadowed', batch_size => 5);
SELECT rows_to_delete FROM dbops.purge_preview('sec_ret_shadowed');
SET client_min_messages = warning;
CALL dbops.purge('sec_ret_shadowed', dry_run => true);
CALL dbops.purge('sec_ret_shadowed');
RESET client_min_messages;
CREATE TEMP TABLE sec_ret_h2 AS SELECT check_name, status FROM dbops.health();
SELECT inserted FROM dbops.health_snapshot();
SELECT dbops.remove_retention_policy('sec_ret_parts');
RESET search_path;
SELECT * FROM pg_temp.trapped();

-- 3: pg_temp first, where relations are looked up before pg_catalog: views
-- named like the catalogs retention reads
SET ROLE sec_ret_shadow;
CREATE TEMP VIEW pg_class AS SELECT * FROM pg_catalog.pg_class WHERE public.sec_ret_trap('pg_temp.pg_class', 'sec_ret_shadow');
CREATE TEMP VIEW pg_index AS SELECT * FROM pg_catalog.pg_index WHERE public.sec_ret_trap('pg_temp.pg_index', 'sec_ret_shadow');
CREATE TEMP VIEW pg_attribute AS SELECT attrelid, attname, atttypid, attnum, atttypmod, attnotnull, attisdropped
    FROM pg_catalog.pg_attribute WHERE public.sec_ret_trap('pg_temp.pg_attribute', 'sec_ret_shadow');
CREATE TEMP VIEW pg_inherits AS SELECT * FROM pg_catalog.pg_inherits WHERE public.sec_ret_trap('pg_temp.pg_inherits', 'sec_ret_shadow');
CREATE TEMP VIEW pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE public.sec_ret_trap('pg_temp.pg_roles', 'sec_ret_shadow');
CREATE TEMP VIEW pg_stat_activity AS SELECT * FROM pg_catalog.pg_stat_activity WHERE public.sec_ret_trap('pg_temp.pg_stat_activity', 'sec_ret_shadow');
RESET ROLE;
INSERT INTO public.sec_ret_shadowed SELECT i, now() - i * interval '1 day' FROM generate_series(200, 205) i;
SET search_path = pg_temp, sec_ret_evil, pg_catalog, public;
SELECT dbops.alter_retention_policy('sec_ret_shadowed', batch_size => 6);
SELECT rows_to_delete FROM dbops.purge_preview('sec_ret_shadowed');
SET client_min_messages = warning;
CALL dbops.purge('sec_ret_shadowed');
RESET client_min_messages;
CREATE TEMP TABLE sec_ret_h3 AS SELECT check_name, status FROM dbops.health();
SELECT inserted FROM dbops.health_snapshot();
RESET search_path;
DROP VIEW pg_temp.pg_class, pg_temp.pg_index, pg_temp.pg_attribute, pg_temp.pg_inherits,
    pg_temp.pg_roles, pg_temp.pg_stat_activity;
SELECT * FROM pg_temp.trapped();
-- the check ran (it was graded, not unknown) every time
SELECT check_name, status IN ('ok', 'warning', 'critical') AS graded FROM sec_ret_h1
UNION ALL SELECT check_name, status IN ('ok', 'warning', 'critical') FROM sec_ret_h2
UNION ALL SELECT check_name, status IN ('ok', 'warning', 'critical') FROM sec_ret_h3;
SELECT relation, status, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_shadowed' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) FROM public.sec_ret_shadowed;
SELECT * FROM pg_temp.supers();
UPDATE dbops.health_thresholds t SET enabled = e.enabled FROM sec_ret_enabled e
 WHERE e.check_name = t.check_name;

-- ---------------------------------------------------------------------------
-- (g) partitions of another owner: the rows of a partition are deleted as
-- that partition's owner; a partition is dropped only with its owner's
-- privileges
-- ---------------------------------------------------------------------------
CREATE SCHEMA sec_ret_att AUTHORIZATION sec_ret_attacker;
CREATE TABLE public.sec_ret_mixed (at timestamptz NOT NULL, v int) PARTITION BY RANGE (at);
CREATE TABLE public.sec_ret_mixed_1999 PARTITION OF public.sec_ret_mixed FOR VALUES FROM ('1999-01-01') TO ('2000-01-01');
CREATE TABLE public.sec_ret_mixed_2000 PARTITION OF public.sec_ret_mixed FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE public.sec_ret_mixed_rest PARTITION OF public.sec_ret_mixed FOR VALUES FROM ('2001-01-01') TO (MAXVALUE);
CREATE INDEX ON public.sec_ret_mixed (at);
INSERT INTO public.sec_ret_mixed VALUES ('1999-06-01', 1), ('2000-06-01', 2), ('2001-06-01', 3), (now(), 4);
ALTER TABLE public.sec_ret_mixed OWNER TO sec_ret_owner;
ALTER TABLE public.sec_ret_mixed_2000 OWNER TO sec_ret_owner;
ALTER TABLE public.sec_ret_mixed_1999 OWNER TO sec_ret_attacker;
ALTER TABLE public.sec_ret_mixed_rest OWNER TO sec_ret_attacker;
SET ROLE sec_ret_attacker;
CREATE FUNCTION sec_ret_att.trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.sec_ret_trap('partition trigger', 'sec_ret_attacker');
    RETURN OLD;
END
$$;
CREATE TRIGGER sec_ret_att BEFORE DELETE ON public.sec_ret_mixed_rest
    FOR EACH ROW EXECUTE FUNCTION sec_ret_att.trig();
RESET ROLE;
SET ROLE sec_ret_owner;
SELECT dbops.add_retention_policy('sec_ret_mixed', 'at', '1 year') > 0 AS added;
RESET ROLE;
-- the oldest partition belongs to another role: not dropped, the run fails
CALL dbops.purge('sec_ret_mixed');
SELECT status, sqlstate, message, partitions_dropped FROM dbops.purge_runs
 WHERE relation = 'sec_ret_mixed' ORDER BY run_id DESC LIMIT 1;
-- detaching needs the partitioned table's owner only; the boundary
-- partition's rows go as its owner, whose trigger runs with its rights
SET ROLE sec_ret_owner;
SELECT dbops.alter_retention_policy('sec_ret_mixed', drop_partitions => false);
RESET ROLE;
SET client_min_messages = warning;
CALL dbops.purge('sec_ret_mixed');
RESET client_min_messages;
SELECT status, partitions_dropped, partitions_detached, rows_deleted FROM dbops.purge_runs
 WHERE relation = 'sec_ret_mixed' ORDER BY run_id DESC LIMIT 1;
SELECT v FROM public.sec_ret_mixed ORDER BY v;
SELECT c.relname, c.relispartition FROM pg_class c
 WHERE c.relname LIKE 'sec\_ret\_mixed\_%' AND c.relkind = 'r' ORDER BY 1;
SELECT * FROM pg_temp.trapped();
SELECT * FROM pg_temp.supers();
TRUNCATE public.sec_ret_log;

-- ---------------------------------------------------------------------------
-- (f) the internal executor runs only what the policy row says: not rows
-- younger than keep, not another table, not another table's partitions
-- ---------------------------------------------------------------------------
SELECT policy_id AS shadowed_id FROM dbops.retention_policies
 WHERE relation = 'sec_ret_shadowed'::regclass \gset
\set VERBOSITY terse
SELECT * FROM dbops._purge_exec(:shadowed_id, 'sec_ret_shadowed', 'range', now());
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dbops._purge_exec(:shadowed_id, 'sec_ret_victim', 'range', now() - interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dbops._purge_exec(:shadowed_id, 'sec_ret_shadowed', 'detach', now() - interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dbops._purge_exec(:shadowed_id, 'sec_ret_shadowed', 'DROP TABLE x', now() - interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dbops._purge_exec(:shadowed_id, 'sec_ret_shadowed', 'range', now() - interval '1 year',
                                'x; DROP TABLE public.sec_ret_victim');
\echo :LAST_ERROR_SQLSTATE
-- a role allowed to call it, without rights on the table
SELECT policy_id AS victim_id FROM dbops.retention_policies
 WHERE relation = 'sec_ret_victim'::regclass \gset
GRANT EXECUTE ON FUNCTION dbops._purge_exec(integer, regclass, text, timestamptz, text, text, bigint)
    TO sec_ret_attacker;
SET ROLE sec_ret_attacker;
SELECT * FROM dbops._purge_exec(:victim_id, 'sec_ret_victim', 'range', now() - interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dbops._purge_exec(:victim_id, 'sec_ret_victim', 'preview', now() - interval '1 year');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
\set VERBOSITY default
SELECT count(*) FROM public.sec_ret_shadowed;
SELECT count(*) FROM public.sec_ret_victim;
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p WHERE p.pronamespace = 'dbops'::regnamespace
   AND (p.proname LIKE '\_purge%' OR p.proname LIKE '\_retention%')
 ORDER BY 1;
-- every retention function has its search_path pinned, but the procedure
SELECT p.oid::regprocedure AS unpinned FROM pg_proc p
 WHERE p.pronamespace = 'dbops'::regnamespace
   AND (p.proname ~ 'purge|retention|replica_replay')
   AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)
 ORDER BY 1;

-- ---------------------------------------------------------------------------
-- (g) a purge that fails, in a session whose first purge runs with the
-- attacker's schema before pg_catalog: CALL dbops.purge() catches the
-- error, records the run and raises it again; its variables' types are
-- resolved when the procedure is compiled, under that search_path (a
-- domain "text" of the attacker's must not be used for them)
-- ---------------------------------------------------------------------------
TRUNCATE public.sec_ret_log;
CREATE TABLE public.sec_ret_noidx (id int, at timestamptz NOT NULL);
INSERT INTO public.sec_ret_noidx VALUES (1, now() - interval '1 year');
ALTER TABLE public.sec_ret_noidx OWNER TO sec_ret_owner;
SET client_min_messages = warning;
SELECT dbops.add_retention_policy('sec_ret_noidx', 'at', '30 days') > 0 AS added;
RESET client_min_messages;
-- a new session: nothing of dbops compiled yet
\c -
\set SHOW_CONTEXT never
SET search_path = sec_ret_evil, pg_catalog, public;
SET client_min_messages = error;
CALL dbops.purge('sec_ret_noidx');
RESET client_min_messages;
RESET search_path;
\echo :LAST_ERROR_SQLSTATE
SELECT what, cur, super_after FROM public.sec_ret_log ORDER BY seq;
SELECT r.rolname, r.rolsuper FROM pg_roles r WHERE r.rolname = 'sec_ret_shadow';
SELECT status, sqlstate FROM dbops.purge_runs WHERE relation = 'sec_ret_noidx';
SELECT dbops.remove_retention_policy('sec_ret_noidx');
DROP TABLE public.sec_ret_noidx;

-- clean up
DELETE FROM dbops.retention_policies WHERE relation::text LIKE 'sec_ret%';
DROP TABLE public.sec_ret_victim, public.sec_ret_mine, public.sec_ret_lost, public.sec_ret_trig,
    public.sec_ret_shadowed, public.sec_ret_parts, public.sec_ret_mixed,
    public.sec_ret_mixed_1999, public.sec_ret_mixed_2000;
DROP FUNCTION sec_ret_att.trig();
DROP SCHEMA sec_ret_att;
DROP FUNCTION sec_ret_own.sec_ret_trig_fn();
SET client_min_messages = warning;
DROP SCHEMA sec_ret_evil CASCADE;
RESET client_min_messages;
DROP SCHEMA sec_ret_own;
DROP TABLE public.sec_ret_log;
DROP FUNCTION public.sec_ret_trap(text, name);
REVOKE ALL ON ALL TABLES IN SCHEMA dbops FROM sec_ret_owner, sec_ret_attacker, sec_ret_writer;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbops FROM sec_ret_owner, sec_ret_attacker, sec_ret_writer;
DROP ROLE sec_ret_owner, sec_ret_attacker, sec_ret_writer, sec_ret_shadow;
