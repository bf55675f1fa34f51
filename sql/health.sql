-- dbops.health(): shape and grading
SELECT check_name, status, unit, warning, critical
FROM dbops.health() WHERE check_name = 'connections';

-- a threshold the current value exceeds grades the check
UPDATE dbops.health_thresholds SET warning = 0, critical = 1000 WHERE check_name = 'connections';
SELECT status, hint IS NOT NULL AS has_hint FROM dbops.health() WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = 0, critical = 0 WHERE check_name = 'connections';
SELECT status FROM dbops.health() WHERE check_name = 'connections';

-- disabled checks are not run
UPDATE dbops.health_thresholds SET enabled = false WHERE check_name = 'connections';
SELECT count(*) FROM dbops.health() WHERE check_name = 'connections';
UPDATE dbops.health_thresholds SET warning = 80, critical = 95, enabled = true WHERE check_name = 'connections';
