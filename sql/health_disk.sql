-- health check disk_space: the free share of the file systems under the
-- data directory, pg_wal and the tablespaces (statvfs), for pg_monitor
\set VERBOSITY terse
SELECT c.check_name, c.direction, t.warning, t.critical FROM dbops.health_checks() c JOIN dbops.health_thresholds t USING (check_name)
WHERE check_name = 'disk_space';
SELECT status IN ('ok', 'warning', 'critical') AS graded, value BETWEEN 0 AND 100 AS percent,
       unit, detail ~ '^data directory, pg_wal(, [^:]*)?: [0-9.]+% free \(' AS names_places
FROM dbops.health() WHERE check_name = 'disk_space';
-- the report's history gives the pace at which the fullest fills up
INSERT INTO dbops.health_history (taken_at, check_name, status, value, unit, detail)
SELECT now() - interval '2 days', 'disk_space', 'ok', value + 10, unit, ''
FROM dbops.health() WHERE check_name = 'disk_space' AND value <= 90;
SELECT detail ~ 'fills up in [0-9.]+ days' OR value > 90 AS pace
FROM dbops.health() WHERE check_name = 'disk_space';
DELETE FROM dbops.health_history WHERE check_name = 'disk_space';
-- thresholds: lower is worse (no file system is more than 100% free)
UPDATE dbops.health_thresholds SET warning = 100.5, critical = 100.1 WHERE check_name = 'disk_space';
SELECT status, hint <> '' AS hint FROM dbops.health() WHERE check_name = 'disk_space';
UPDATE dbops.health_thresholds SET warning = 20, critical = 10 WHERE check_name = 'disk_space';
-- roles without pg_monitor: skipped, with the grant to ask for
CREATE ROLE regress_disk_nobody;
CREATE ROLE regress_disk_monitor IN ROLE pg_monitor;
SET ROLE regress_disk_nobody;
SELECT status, detail, hint FROM dbops.health() WHERE check_name = 'disk_space';
SET ROLE regress_disk_monitor;
SELECT status <> 'skipped' AS monitor_reads FROM dbops.health() WHERE check_name = 'disk_space';
RESET ROLE;
DROP ROLE regress_disk_nobody, regress_disk_monitor;
