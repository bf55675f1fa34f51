-- security_retention_rule: the owner of a table with a retention policy
-- turns it into a view whose _RETURN rule calls the owner's function.
-- Neither the superuser's purge nor the retention health check (nor the
-- SECURITY DEFINER health_snapshot()) may read it.  PostgreSQL 16 and later
-- refuse the conversion itself (expected/security_retention_rule_1.out);
-- 15 allows it (security_retention_rule.out).
\set SHOW_CONTEXT never
SET client_min_messages = notice;
SET TimeZone = 'UTC';
-- run ids of this file do not depend on the tests before it
SELECT setval(pg_get_serial_sequence('dbops.purge_runs', 'run_id'), 300000) > 0 AS run_ids_set;

CREATE TABLE public.sec_rr_log (seq serial, cur name, super_after boolean);
GRANT INSERT ON public.sec_rr_log TO PUBLIC;
GRANT USAGE ON SEQUENCE public.sec_rr_log_seq_seq TO PUBLIC;
CREATE ROLE sec_rr_owner;
-- run by whoever reads the view: tries to make its owner superuser, and
-- writes down who ran it
CREATE FUNCTION public.sec_rr_trap() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    BEGIN
        ALTER ROLE sec_rr_owner SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    INSERT INTO public.sec_rr_log (cur, super_after)
    SELECT current_user, r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = 'sec_rr_owner';
    RETURN true;
END
$$;
GRANT EXECUTE ON FUNCTION
    dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops.remove_retention_policy(regclass),
    dbops._retention_validate(regclass, name, interval, integer)
    TO sec_rr_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.retention_policies TO sec_rr_owner;

CREATE TABLE public.sec_rr_view (id int, at timestamptz NOT NULL);
CREATE INDEX sec_rr_view_at ON public.sec_rr_view (at);
ALTER TABLE public.sec_rr_view OWNER TO sec_rr_owner;
SET ROLE sec_rr_owner;
SELECT dbops.add_retention_policy('sec_rr_view', 'at', '1 day') > 0 AS added;
DROP INDEX public.sec_rr_view_at;
VACUUM public.sec_rr_view;
CREATE RULE "_RETURN" AS ON SELECT TO public.sec_rr_view DO INSTEAD
    SELECT 1 AS id, now() - interval '1 year' AS at WHERE public.sec_rr_trap();
RESET ROLE;
SELECT relkind FROM pg_class WHERE oid = 'public.sec_rr_view'::regclass;
CALL dbops.purge('sec_rr_view');
SELECT status, sqlstate, message FROM dbops.purge_runs
 WHERE relation = 'sec_rr_view' ORDER BY run_id DESC LIMIT 1;
SELECT substring(detail FROM 'sec_rr_view: [^;]*') AS retention_check
  FROM dbops.health() WHERE check_name = 'retention';
SELECT count(*) AS previewed FROM dbops.purge_preview('sec_rr_view');
SELECT inserted > 0 AS snapshot_taken FROM dbops.health_snapshot();
SELECT substring(detail FROM 'sec_rr_view: [^;]*') AS snapshot_retention
  FROM dbops.health_history WHERE check_name = 'retention' ORDER BY taken_at DESC LIMIT 1;
-- the trap ran as nobody but its owner (or not at all), and no one became superuser
SELECT cur, super_after, count(*) > 0 AS ran FROM public.sec_rr_log GROUP BY 1, 2 ORDER BY 1;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname = 'sec_rr_owner';

-- clean up
SELECT dbops.remove_retention_policy('sec_rr_view');
DELETE FROM dbops.purge_runs WHERE relation = 'sec_rr_view';
DO $$ BEGIN
    EXECUTE CASE (SELECT relkind FROM pg_class WHERE oid = 'public.sec_rr_view'::regclass)
            WHEN 'v' THEN 'DROP VIEW public.sec_rr_view' ELSE 'DROP TABLE public.sec_rr_view' END;
END $$;
DROP TABLE public.sec_rr_log;
DROP FUNCTION public.sec_rr_trap();
REVOKE ALL ON ALL TABLES IN SCHEMA dbops FROM sec_rr_owner;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbops FROM sec_rr_owner;
DROP ROLE sec_rr_owner;
