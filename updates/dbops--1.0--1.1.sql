-- dbops 1.0 -> 1.1 upgrade script
--
-- Written by hand, one section per capability in the order of the install
-- script's fragments.  test/t/080_upgrade.pl checks that a 1.0 install
-- updated with this script and a fresh 1.1 install have the same objects,
-- definitions, privileges and settings.

\echo Use "ALTER EXTENSION dbops UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------- dbops.sql

-- Pinned search_path; internal: revoked from PUBLIC, granted to pg_monitor
-- (dbops.health_trend() runs with its caller's rights and uses it).
ALTER FUNCTION dbops._require_positive_interval(text, interval, text)
    SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._require_positive_interval(text, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops._require_positive_interval(text, interval, text) TO pg_monitor;

-- --------------------------------------------------------------- health.sql

-- Every function pins search_path (the C ones run queries); the trigger
-- function is internal.
ALTER FUNCTION dbops.health_checks() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health_overall(text[]) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health_status() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.health_json() SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.health_thresholds_validate() FROM PUBLIC;

-- ------------------------------------------------------------- locktree.sql

ALTER FUNCTION dbops.lock_tree() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.cancel_blockers(interval, boolean, boolean) SET search_path = pg_catalog, pg_temp;

-- ---------------------------------------------------------------- bloat.sql

-- Pinned search_path; a function with a SET clause loads the module only
-- when it is first called, after its defaults are evaluated: max_pages falls
-- back to the GUC's default when dbops.bloat_max_pages is not defined yet.
CREATE OR REPLACE FUNCTION dbops.bloat(
    relation regclass DEFAULT NULL,
    method text DEFAULT 'auto',
    max_pages bigint DEFAULT coalesce(current_setting('dbops.bloat_max_pages', true), '20000')::bigint,
    ci_width float8 DEFAULT 2,
    seed integer DEFAULT NULL,
    OUT relation regclass, OUT kind text, OUT method text,
    OUT size_bytes bigint, OUT bloat_bytes bigint, OUT bloat_pct numeric,
    OUT ci_low_pct numeric, OUT ci_high_pct numeric,
    OUT live_bytes bigint, OUT dead_bytes bigint, OUT free_bytes bigint,
    OUT pages_read bigint, OUT note text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_bloat'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._bloat_stats(oid[]) FROM PUBLIC;

-- --------------------------------------------------------------- reaper.sql

ALTER FUNCTION dbops.reap_idle(interval, text[], boolean, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.reaper_status() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dbops.reaper_events() SET search_path = pg_catalog, pg_temp;

-- --------------------------------------------------------------- ledger.sql

-- ------------------------------------------------------------ retention.sql

-- ------------------------------------------------------------- schedule.sql
