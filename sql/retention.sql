-- retention: policies, validation, purge, purge_runs, health check
\set SHOW_CONTEXT never
SET client_min_messages = notice;
SET TimeZone = 'UTC';

CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

CREATE TABLE ev (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, note text);
CREATE INDEX ev_created_at ON ev (created_at);
-- 2000 rows, one per hour back from now: 24 * 30 = 720 of them are younger than 30 days
INSERT INTO ev SELECT i, now() - (i - 0.5) * interval '1 hour', 'n' || i FROM generate_series(1, 2000) i;

-- validation: each bad input has its SQLSTATE and a hint
SELECT dbops.add_retention_policy(NULL, 'created_at', '30 days');
SELECT dbops.add_retention_policy('ev', 'nope', '30 days');
SELECT dbops.add_retention_policy('ev', 'note', '30 days');
SELECT dbops.add_retention_policy('ev', 'created_at', '0 days');
SELECT dbops.add_retention_policy('ev', 'created_at', '-1 day');
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days', batch_size => 0);
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days', max_rows_per_run => -5);
CREATE VIEW ev_view AS SELECT * FROM ev;
SELECT dbops.add_retention_policy('ev_view', 'created_at', '30 days');
SELECT dbops.add_retention_policy('ev_created_at', 'created_at', '30 days');
SELECT q, pg_temp.sqlstate(q) FROM (VALUES
    ($$SELECT dbops.add_retention_policy(NULL, 'created_at', '30 days')$$),
    ($$SELECT dbops.add_retention_policy('ev', 'nope', '30 days')$$),
    ($$SELECT dbops.add_retention_policy('ev', 'note', '30 days')$$),
    ($$SELECT dbops.add_retention_policy('ev', 'created_at', '0 days')$$),
    ($$SELECT dbops.add_retention_policy('ev_view', 'created_at', '30 days')$$),
    ($$SELECT dbops.alter_retention_policy('ev', keep => '1 day')$$),
    ($$SELECT dbops.remove_retention_policy('ev')$$),
    ($$CALL dbops.purge('ev')$$)) v(q);

-- a good policy
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days', batch_size => 100);
SELECT relation, time_column, keep, batch_size, max_rows_per_run, max_run_time, drop_partitions, enabled
FROM dbops.retention_policies;
SELECT dbops.add_retention_policy('ev', 'created_at', '30 days');

-- NOTICEs: no usable index on the time column; foreign keys without index or cascading
CREATE TABLE noidx (id int, at timestamp);
SELECT dbops.add_retention_policy('noidx', 'at', '1 year') > 0 AS added;
CREATE TABLE parent (id int PRIMARY KEY, at date NOT NULL);
CREATE INDEX ON parent (at);
CREATE TABLE child_noindex (id int, parent_id int REFERENCES parent);
CREATE TABLE child_cascade (parent_id int REFERENCES parent ON DELETE CASCADE);
CREATE INDEX ON child_cascade (parent_id);
SELECT dbops.add_retention_policy('parent', 'at', '10 days') > 0 AS added;

-- alter and remove
SELECT dbops.alter_retention_policy('noidx', keep => '2 years', max_rows_per_run => 1000, enabled => false);
SELECT relation, keep, max_rows_per_run, enabled FROM dbops.retention_policies WHERE relation = 'noidx'::regclass;
SELECT dbops.alter_retention_policy('noidx', max_rows_per_run => 0, max_run_time => '0');
SELECT max_rows_per_run, max_run_time FROM dbops.retention_policies WHERE relation = 'noidx'::regclass;
SELECT dbops.alter_retention_policy('noidx', time_column => 'id');
SELECT dbops.alter_retention_policy('ev_view', keep => '1 day');
SELECT dbops.remove_retention_policy('noidx');
SELECT dbops.remove_retention_policy('noidx');
SELECT count(*) FROM dbops.retention_policies;

-- the batch statements go through the time column's index, in its order (the
-- purge runs them with seq scans, bitmap scans and sorts off, so that a small
-- table is no exception; without a usable index these plans would show it)
-- The plans are printed as their tree of node types, relations and indexes,
-- which every supported version shows alike (EXPLAIN's text form of
-- InitPlans and SubPlans changed in 17).
CREATE FUNCTION pg_temp.plan_shape(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    p jsonb;
BEGIN
    EXECUTE 'EXPLAIN (COSTS OFF, FORMAT JSON) ' || q INTO p;
    RETURN QUERY
    WITH RECURSIVE n(node, path) AS (
        SELECT p -> 0 -> 'Plan', ARRAY[1]
        UNION ALL
        SELECT c.value, n.path || c.ord::int
        FROM n, jsonb_array_elements(n.node -> 'Plans') WITH ORDINALITY AS c(value, ord)
    )
    SELECT repeat('  ', cardinality(path) - 1) || (node ->> 'Node Type')
           || coalesce(' using ' || (node ->> 'Index Name'), '')
           || coalesce(' on ' || (node ->> 'Relation Name'), '')
    FROM n ORDER BY path;
END
$$;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET enable_sort = off;
SELECT dbops._purge_batch_sql('ev', 'created_at', 'bound', true) AS q \gset
PREPARE bound(text, timestamptz, int) AS :q;
SELECT * FROM pg_temp.plan_shape($$EXECUTE bound('2020-01-01', '2021-01-01', 99)$$);
SELECT dbops._purge_batch_sql('ev', 'created_at', 'range', true, true) AS q \gset
PREPARE rng(text, text, timestamptz) AS :q;
SELECT * FROM pg_temp.plan_shape($$EXECUTE rng('2020-01-01', '2020-02-01', '2021-01-01')$$);
SELECT dbops._purge_batch_sql('ev', 'created_at', 'skip_locked', true) AS q \gset
PREPARE skip(text, timestamptz, int) AS :q;
SELECT * FROM pg_temp.plan_shape($$EXECUTE skip('2020-01-01', '2021-01-01', 100)$$);
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_sort;

-- dry run: counts, nothing deleted
SELECT target, rows_to_delete, oldest = (SELECT min(created_at) FROM ev) AS oldest_ok,
       newest = (SELECT max(created_at) FROM ev WHERE created_at < now() - interval '30 days') AS newest_ok,
       partitions_to_drop
FROM dbops.purge_preview('ev');
SET client_min_messages = warning;
CALL dbops.purge('ev', dry_run => true);
SET client_min_messages = notice;
SELECT count(*) FROM ev;
SELECT count(*) FROM dbops.purge_runs;

-- not inside a transaction block
BEGIN;
CALL dbops.purge('ev');
ROLLBACK;

-- the health check: the policy has never run (but is young) and is behind
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'retention';

-- purge: a row cap first, then the rest
SELECT dbops.alter_retention_policy('ev', max_rows_per_run => 250);
SET client_min_messages = warning;
CALL dbops.purge('ev');
SELECT rows_deleted, status, message, sqlstate FROM dbops.purge_runs ORDER BY run_id;
SELECT count(*) FROM ev;
SELECT dbops.alter_retention_policy('ev', max_rows_per_run => 0);
CALL dbops.purge();
RESET client_min_messages;
SELECT rows_deleted, batches > 1 AS several_batches, status, finished IS NOT NULL AS finished,
       partitions_dropped, message
FROM dbops.purge_runs ORDER BY run_id;
-- exactly the rows older than the cutoff went
SELECT count(*), min(id), max(id) FROM ev;
SELECT count(*) FROM ev WHERE created_at < (SELECT max(cutoff) FROM dbops.purge_runs WHERE relation = 'ev');
SELECT status, value FROM dbops.health() WHERE check_name = 'retention';

-- a date column (batches by ctid, skipping locked rows); ON DELETE CASCADE follows
INSERT INTO parent SELECT i, current_date - i FROM generate_series(0, 39) i;
INSERT INTO child_cascade SELECT i FROM generate_series(0, 39) i;
SET client_min_messages = warning;
CALL dbops.purge('parent');
RESET client_min_messages;
SELECT count(*), min(at) = current_date - 9 AS kept_ten_days FROM parent;
SELECT count(*) FROM child_cascade;

-- a run whose backend is gone is marked interrupted by the next purge;
-- purge_runs older than dbops.purge_runs_keep are deleted
INSERT INTO dbops.purge_runs (policy_id, relation, started, status, pid)
VALUES (1, 'ev', now() - interval '1 hour', 'running', 999999),
       (1, 'ev', now() - interval '200 days', 'done', 999998);
UPDATE dbops.purge_runs SET finished = started + interval '1 minute' WHERE pid = 999998;
CALL dbops.purge('ev');
SELECT pid, status, message FROM dbops.purge_runs WHERE pid IN (999999, 999998);

-- a failing policy: no index any more; the run says why, the CALL errors,
-- the health check reports it
DROP INDEX ev_created_at;
INSERT INTO ev VALUES (0, '2000-01-01', 'old');
CALL dbops.purge('ev');
SELECT status, sqlstate, message FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1;
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'retention';
CREATE INDEX ev_created_at ON ev (created_at);

-- partitioned by range on the time column: old partitions dropped (never
-- the last one), the boundary partition purged in batches
CREATE TABLE logs (at timestamptz NOT NULL, msg text) PARTITION BY RANGE (at);
CREATE TABLE logs_2020_01 PARTITION OF logs FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
CREATE TABLE logs_2020_02 PARTITION OF logs FOR VALUES FROM ('2020-02-01') TO ('2020-03-01');
CREATE TABLE logs_2020_03 PARTITION OF logs FOR VALUES FROM ('2020-03-01') TO ('2020-04-01');
CREATE INDEX ON logs (at);
INSERT INTO logs SELECT timestamptz '2020-01-01' + i * interval '1 hour', 'm' FROM generate_series(0, 24 * 90 - 1) i;
SELECT dbops.add_retention_policy('logs', 'at', now() - timestamptz '2020-03-15', batch_size => 50) > 0 AS added;
SELECT target, partitions_to_drop FROM dbops.purge_preview('logs');
SET client_min_messages = warning;
CALL dbops.purge('logs');
RESET client_min_messages;
SELECT partitions_dropped, partitions_detached, rows_deleted, status FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1;
SELECT relid FROM pg_partition_tree('logs') ORDER BY 1;
SELECT min(at) >= timestamptz '2020-03-15' - interval '1 hour' AS boundary_purged, count(*) FROM logs;
-- all of them old: the last one stays, detach-only keeps the tables
SELECT dbops.alter_retention_policy('logs', keep => '1 day', drop_partitions => false);
CREATE TABLE logs_2019_12 PARTITION OF logs FOR VALUES FROM ('2019-12-01') TO ('2020-01-01');
INSERT INTO logs VALUES ('2019-12-15', 'x');
SET client_min_messages = warning;
CALL dbops.purge('logs');
RESET client_min_messages;
SELECT partitions_dropped, partitions_detached, status FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 1;
SELECT relid FROM pg_partition_tree('logs') ORDER BY 1;
SELECT count(*) FROM logs;
SELECT to_regclass('logs_2019_12') IS NOT NULL AS detached_table_kept;

-- privileges: nothing for PUBLIC
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p WHERE p.pronamespace = 'dbops'::regnamespace
  AND p.proname IN ('purge', 'add_retention_policy', 'alter_retention_policy',
                    'remove_retention_policy', 'purge_preview', '_purge_lock')
ORDER BY 1;
CREATE ROLE retention_nobody;
SET ROLE retention_nobody;
CALL dbops.purge();
SELECT dbops.add_retention_policy('ev', 'created_at', '1 day');
SELECT * FROM dbops.health() WHERE check_name = 'retention';
RESET ROLE;
DROP ROLE retention_nobody;

-- the grants doc/retention.md gives a purging role are enough, and needed
CREATE ROLE retention_ops;
CREATE TABLE ops_ev (id int, at timestamptz NOT NULL);
CREATE INDEX ON ops_ev (at);
INSERT INTO ops_ev SELECT i, now() - i * interval '1 day' FROM generate_series(1, 20) i;
SELECT dbops.add_retention_policy('ops_ev', 'at', '10 days') > 0 AS added;
GRANT EXECUTE ON PROCEDURE dbops.purge(regclass, boolean) TO retention_ops;
GRANT EXECUTE ON FUNCTION dbops._purge_begin(boolean), dbops._purge_lock(integer),
    dbops._purge_unlock(integer), dbops._purge_busy_sessions(), dbops._purge_batch_sql(regclass, name, text, boolean, boolean),
    dbops._purge_old_partitions(regclass, name, timestamptz), dbops.purge_preview(regclass),
    dbops._purge_start(regclass, boolean, text), dbops._purge_dry_run(dbops._purge_state),
    dbops._purge_policies(dbops._purge_state), dbops._purge_policy(dbops._purge_state),
    dbops._purge_partition(dbops._purge_state), dbops._purge_target(dbops._purge_state),
    dbops._purge_batch(dbops._purge_state), dbops._purge_lag(dbops._purge_state),
    dbops._purge_pause(dbops._purge_state), dbops._purge_record(dbops._purge_state),
    dbops._purge_release(dbops._purge_state), dbops._purge_finish(dbops._purge_state),
    dbops._purge_abort(dbops._purge_state, text, text, text),
    dbops._purge_require_phase(dbops._purge_state, text), dbops._purge_stop(dbops._purge_state, text, text, text),
    dbops._purge_wait(dbops._purge_state, double precision), dbops._purge_backoff(dbops._purge_state, text),
    dbops._purge_target_gone(regclass, regclass, text),
    dbops._purge_exec(integer, regclass, text, timestamptz, text, text, bigint),
    dbops._purge_relname(regclass, text), dbops._retention_problem(regclass, name, name, interval, interval) TO retention_ops;
GRANT SELECT ON dbops.retention_policies TO retention_ops;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbops.purge_runs TO retention_ops;
SET ROLE retention_ops;
CALL dbops.purge('ops_ev');
RESET ROLE;
GRANT SELECT, DELETE ON ops_ev TO retention_ops;
SET ROLE retention_ops;
SET client_min_messages = warning;
CALL dbops.purge('ops_ev');
RESET client_min_messages;
RESET ROLE;
SELECT count(*) FROM ops_ev;
SELECT status, rows_deleted FROM dbops.purge_runs ORDER BY run_id DESC LIMIT 2;
DROP TABLE ops_ev;
DELETE FROM dbops.retention_policies WHERE relation::oid NOT IN (SELECT oid FROM pg_class);
REVOKE ALL ON ALL TABLES IN SCHEMA dbops FROM retention_ops;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbops FROM retention_ops;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA dbops FROM retention_ops;
DROP ROLE retention_ops;

-- GUCs
SHOW dbops.purge_batch_target;
SHOW dbops.purge_max_replica_lag;
-- (the range error's wording differs between versions: its SQLSTATE only)
\set VERBOSITY sqlstate
SET dbops.purge_batch_target = 0;
\set VERBOSITY default
