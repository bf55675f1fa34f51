-- dbops.lock_tree(), lock_tree_text(), cancel_blockers(): shape, errors,
-- privileges and the lock_waits health check (trees themselves are in the
-- isolation tests)

-- the columns, in order
SELECT pg_get_function_arguments('dbops.lock_tree()'::regprocedure);
SELECT pg_get_function_arguments('dbops.cancel_blockers(interval, boolean, boolean)'::regprocedure);
SELECT pg_get_function_arguments('dbops.lock_tree_text(int)'::regprocedure);

-- nothing blocks in a single session: no rows, no text
SELECT count(*) FROM dbops.lock_tree();
SELECT count(*) FROM dbops.lock_tree_text();

-- holding locks alone makes nobody a root
BEGIN;
CREATE TABLE lt_r (id int);
LOCK TABLE lt_r IN ACCESS EXCLUSIVE MODE;
SELECT pg_advisory_xact_lock(1);
SELECT count(*) FROM dbops.lock_tree();
ROLLBACK;

-- bad input
SELECT * FROM dbops.lock_tree_text(query_width => -1);
SELECT * FROM dbops.lock_tree_text(query_width => NULL);
SELECT * FROM dbops.cancel_blockers(min_wait => NULL);
SELECT * FROM dbops.cancel_blockers(terminate => NULL);
SELECT * FROM dbops.cancel_blockers(dry_run => NULL);
SELECT * FROM dbops.cancel_blockers(min_wait => '-1 minute');
SELECT * FROM dbops.cancel_blockers(min_wait => '0');
SELECT * FROM dbops.cancel_blockers(min_wait => '1 day -24 hours');

-- with no blocked session there is nothing to cancel
SELECT count(*) FROM dbops.cancel_blockers();
SELECT count(*) FROM dbops.cancel_blockers(min_wait => '1 microsecond', terminate => true, dry_run => false);

-- privileges: lock_tree for everyone, cancel_blockers only where granted
CREATE ROLE lt_monitor_r;
GRANT pg_monitor TO lt_monitor_r;
CREATE ROLE lt_plain_r;
SET ROLE lt_monitor_r;
SELECT count(*) FROM dbops.lock_tree();
SELECT count(*) FROM dbops.lock_tree_text();
SELECT status FROM dbops.health() WHERE check_name = 'lock_waits';
SELECT count(*) FROM dbops.cancel_blockers();
RESET ROLE;
SET ROLE lt_plain_r;
SELECT count(*) FROM dbops.lock_tree();
SELECT count(*) FROM dbops.cancel_blockers();
RESET ROLE;
SELECT grantee::regrole, privilege_type
FROM pg_proc p, aclexplode(p.proacl) a(grantor, grantee, privilege_type, grantable)
WHERE p.oid = 'dbops.cancel_blockers(interval, boolean, boolean)'::regprocedure
  AND grantee <> p.proowner
ORDER BY 1;
GRANT pg_signal_backend TO lt_plain_r;
SET ROLE lt_plain_r;
SELECT count(*) FROM dbops.cancel_blockers();
RESET ROLE;
DROP ROLE lt_monitor_r;
DROP ROLE lt_plain_r;

-- the lock_waits health check: registered with its thresholds, ok when
-- nobody waits
SELECT check_name, warning, critical, enabled
FROM dbops.health_thresholds WHERE check_name = 'lock_waits';
SELECT check_name, status, value, unit, detail
FROM dbops.health() WHERE check_name = 'lock_waits';
