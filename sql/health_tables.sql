-- The health checks stale_statistics and table_freeze_age: what they
-- count, how they name the tables, and grading with their thresholds.
\set VERBOSITY terse
SET client_min_messages = warning;

-- a database whose every table has fresh statistics
ANALYZE;
SELECT pg_stat_force_next_flush();
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'stale_statistics';

-- a table past its autoanalyze threshold (50 + 10% of 1000 rows) and one
-- never analyzed that holds rows
CREATE TABLE public.ht_stale (id int) WITH (autovacuum_enabled = false);
INSERT INTO public.ht_stale SELECT generate_series(1, 1000);
-- (the inserts must be counted before ANALYZE resets the count)
SELECT pg_stat_force_next_flush();
ANALYZE public.ht_stale;
INSERT INTO public.ht_stale SELECT generate_series(1, 120);
CREATE TABLE public.ht_never (id int) WITH (autovacuum_enabled = false);
INSERT INTO public.ht_never SELECT generate_series(1, 40);
SELECT pg_stat_force_next_flush();
-- not yet: 120 changes of a 1000-row table, 40 rows of a new one
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'stale_statistics';
INSERT INTO public.ht_stale SELECT generate_series(1, 100);
INSERT INTO public.ht_never SELECT generate_series(1, 20);
SELECT pg_stat_force_next_flush();
UPDATE dbops.health_thresholds SET warning = 0.0001, critical = 1000
WHERE check_name = 'stale_statistics';
-- the value is the longest wait since the last ANALYZE, in hours (four
-- decimals): let it pass 0.0001 h
SELECT pg_sleep(1);
SELECT status, value >= 0.0001 AS waiting, unit,
       regexp_replace(detail, 'analyzed [0-9.]+ ?[a-z]+ ago', 'analyzed N ago') AS detail, hint
FROM dbops.health() WHERE check_name = 'stale_statistics';
-- ANALYZE ends it
ANALYZE public.ht_stale, public.ht_never;
SELECT pg_stat_force_next_flush();
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'stale_statistics';
-- a table's own autoanalyze settings count
ALTER TABLE public.ht_stale SET (autovacuum_analyze_threshold = 5, autovacuum_analyze_scale_factor = 0);
UPDATE public.ht_stale SET id = id WHERE id <= 10;
SELECT pg_stat_force_next_flush();
SELECT regexp_replace(detail, 'analyzed [0-9.]+ ?[a-z]+ ago', 'analyzed N ago') AS detail
FROM dbops.health() WHERE check_name = 'stale_statistics';
UPDATE dbops.health_thresholds SET warning = 24, critical = 168 WHERE check_name = 'stale_statistics';
SELECT status FROM dbops.health() WHERE check_name = 'stale_statistics';
DROP TABLE public.ht_stale, public.ht_never;

-- table_freeze_age: a table with a low freeze limit of its own is named
-- first, its age counted against that limit
CREATE TABLE public.ht_freeze (id int) WITH (autovacuum_freeze_max_age = 100000, autovacuum_enabled = false);
INSERT INTO public.ht_freeze VALUES (1);
SET synchronous_commit = off;
DO $$
BEGIN
    FOR i IN 1..3000 LOOP
        PERFORM pg_current_xact_id();
        COMMIT;
    END LOOP;
END
$$;
RESET synchronous_commit;
SELECT status, value >= 3 AS past_3_percent, unit,
       split_part(detail, ' ', 2) AS first_named,
       detail ~ '^oldest: public\.ht_freeze [0-9.]+% \(xid age [0-9]+, mxid age 0\)' AS detail_shape,
       detail ~ '\(autovacuum_freeze_max_age = 200000000, multixact limit now [0-9]+; wraparound at 2\^31\)$' AS limits_named
FROM dbops.health() WHERE check_name = 'table_freeze_age';
UPDATE dbops.health_thresholds SET warning = 2, critical = 90 WHERE check_name = 'table_freeze_age';
SELECT status, hint FROM dbops.health() WHERE check_name = 'table_freeze_age';
-- bad thresholds are refused as for every check
UPDATE dbops.health_thresholds SET warning = 300 WHERE check_name = 'table_freeze_age';
-- VACUUM (FREEZE) ends it
VACUUM (FREEZE) public.ht_freeze;
SELECT status, value < 1 AS below_1_percent FROM dbops.health() WHERE check_name = 'table_freeze_age';
UPDATE dbops.health_thresholds SET warning = 125, critical = 250 WHERE check_name = 'table_freeze_age';
DROP TABLE public.ht_freeze;

-- a pg_monitor member reads both
CREATE ROLE regress_ht_monitor IN ROLE pg_monitor;
SET ROLE regress_ht_monitor;
SELECT check_name, status FROM dbops.health()
WHERE check_name IN ('stale_statistics', 'table_freeze_age') ORDER BY 1;
RESET ROLE;
DROP ROLE regress_ht_monitor;
