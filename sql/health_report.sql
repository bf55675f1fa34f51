-- dbops.health_report(): the health report as text for a terminal.  What
-- the checks find depends on the cluster, so the report is compared with
-- dbops.health() rather than with fixed text.
\set VERBOSITY terse
CREATE TEMP TABLE rep AS
SELECT dbops.health_report() AS r100, dbops.health_report(40) AS r40;
CREATE TEMP TABLE h AS SELECT * FROM dbops.health();

-- the summary line: the overall status and the count of each status
SELECT split_part(r100, E'\n', 1) ~
       '^dbops health: (OK|WARNING|CRITICAL|UNKNOWN) \(.*\) in database \S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d'
       AS summary_shape,
       split_part(r100, E'\n', 1) LIKE 'dbops health: ' || upper(dbops.health_status()) || ' %'
       AS summary_status,
       split_part(r100, E'\n', 1) LIKE
       '%(' || (SELECT string_agg(n || ' ' || status, ', ' ORDER BY
                   array_position(ARRAY['critical', 'warning', 'unknown', 'skipped', 'ok'], status))
                  FROM (SELECT status, count(*) AS n FROM h GROUP BY status) c) || ')%'
       AS summary_counts
FROM rep;

-- every line after the summary fits the width
SELECT max(length(l)) <= 100 AS fits_100
FROM rep, regexp_split_to_table(r100, E'\n') WITH ORDINALITY AS t (l, i) WHERE i > 1;
SELECT max(length(l)) <= 40 AS fits_40
FROM rep, regexp_split_to_table(r40, E'\n') WITH ORDINALITY AS t (l, i) WHERE i > 1;

-- every check that is not ok has its header line, and every ok one is named
-- in the closing line
SELECT count(*) AS not_ok_missing FROM h, rep
WHERE h.status <> 'ok'
  AND r100 !~ ('(^|\n)' || upper(h.status) || ' +' || h.check_name || ': ');
SELECT count(*) AS ok_missing FROM h, rep
WHERE h.status = 'ok'
  AND substring(r100 FROM '\nok \(\d+\):.*$') !~ ('[ :]' || h.check_name || '(,|$|\n)');
SELECT count(*) AS ok_listed_as_not_ok FROM h, rep
WHERE h.status = 'ok' AND r100 ~ ('(^|\n)OK +' || h.check_name || ': ');

-- bad input
SELECT dbops.health_report(NULL);
SELECT dbops.health_report(39);
SELECT dbops.health_report(1001);

-- any role may read the report; it shows what dbops.health() shows it
CREATE ROLE regress_report_nobody;
SET ROLE regress_report_nobody;
SELECT split_part(dbops.health_report(), E'\n', 1) LIKE 'dbops health: %' AS nobody_reads;
RESET ROLE;
DROP ROLE regress_report_nobody;
SELECT p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p WHERE p.oid = 'dbops.health_report(integer)'::regprocedure;
