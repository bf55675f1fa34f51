-- robust_retention: limits checked when a policy is given, rows already
-- stored that break them, relations a policy may not name, every error with
-- a SQLSTATE, a bounded message and a hint, and a purge cancelled by
-- statement_timeout.  (Locks, drops while waiting and cancels from another
-- session: test/specs/retention-cancel.spec, retention-race.spec.)
\set SHOW_CONTEXT never
SET client_min_messages = notice;
SET TimeZone = 'UTC';

-- the policies of earlier tests stay out of the way (re-enabled at the end)
CREATE TEMP TABLE saved_enabled AS SELECT policy_id, enabled FROM dbops.retention_policies;
UPDATE dbops.retention_policies SET enabled = false;
-- run and policy ids of this file do not depend on the tests before it
SELECT setval(pg_get_serial_sequence('dbops.purge_runs', 'run_id'), 200000) > 0 AS run_ids_set,
       setval(pg_get_serial_sequence('dbops.retention_policies', 'policy_id'), 200000) > 0 AS policy_ids_set;

-- SQLSTATE, message length and hint of a statement's error
CREATE FUNCTION pg_temp.err(q text) RETURNS TABLE (state text, msg_len int, msg text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    state := 'ok';
    RETURN NEXT;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    msg_len := length(msg);
    msg := left(msg, 120);
    RETURN NEXT;
END
$$;

CREATE TABLE rr_ev (id int PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON rr_ev (at);
INSERT INTO rr_ev SELECT i, now() - i * interval '1 day' FROM generate_series(1, 40) i;

-- ---------------------------------------------------------------------------
-- 1. limits are checked when a policy is added or altered
-- ---------------------------------------------------------------------------
-- keep: positive, at most 1000 years, no part longer than that on its own
SELECT dbops.add_retention_policy('rr_ev', 'at', '10000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '1000 years 1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '365251 days');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '2000 years -365000 days');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '178000000 years');
\echo :LAST_ERROR_SQLSTATE
-- 46 years in all, but a days part of more than 1000 years
SELECT dbops.add_retention_policy('rr_ev', 'at', '1 year -400000 days 10000000 hours');
\echo :LAST_ERROR_SQLSTATE
-- batch_size: 1 .. 10000000
SELECT dbops.add_retention_policy('rr_ev', 'at', '30 days', batch_size => 10000001);
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '30 days', batch_size => -1);
\echo :LAST_ERROR_SQLSTATE
-- max_rows_per_run: positive (NULL: no cap); max_run_time: positive, at most 1000 years
SELECT dbops.add_retention_policy('rr_ev', 'at', '30 days', max_rows_per_run => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '30 days', max_run_time => '-1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_ev', 'at', '30 days', max_run_time => '300000 years');
\echo :LAST_ERROR_SQLSTATE
-- the bounds themselves are accepted
SELECT dbops.add_retention_policy('rr_ev', 'at', '1000 years', batch_size => 10000000,
    max_rows_per_run => 9223372036854775807, max_run_time => '1000 years') > 0 AS added;
SELECT keep, batch_size, max_rows_per_run, max_run_time FROM dbops.retention_policies WHERE relation = 'rr_ev'::regclass;
-- and so in alter; 0 still removes a cap
SELECT dbops.alter_retention_policy('rr_ev', keep => '1001 years');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.alter_retention_policy('rr_ev', batch_size => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.alter_retention_policy('rr_ev', max_run_time => '5000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.alter_retention_policy('rr_ev', max_rows_per_run => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.alter_retention_policy('rr_ev', max_run_time => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.alter_retention_policy('rr_ev', keep => '30 days', batch_size => 10,
    max_rows_per_run => 0, max_run_time => '0');
SELECT keep, batch_size, max_rows_per_run, max_run_time FROM dbops.retention_policies WHERE relation = 'rr_ev'::regclass;

-- ---------------------------------------------------------------------------
-- 2. rows already in the table that break the limits (1.0 stored them; a
-- superuser may still write them directly): skipped with a note, every
-- other policy purged, the health check still reads the others
-- ---------------------------------------------------------------------------
CREATE TABLE rr_huge (id int, at timestamptz NOT NULL);
CREATE INDEX ON rr_huge (at);
INSERT INTO rr_huge SELECT i, now() - i * interval '1 day' FROM generate_series(1, 10) i;
CREATE TABLE rr_long_run (id int, at timestamptz NOT NULL);
CREATE INDEX ON rr_long_run (at);
INSERT INTO rr_long_run SELECT i, now() - i * interval '1 day' FROM generate_series(1, 10) i;
INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size)
VALUES ('rr_huge', 'at', '10000 years', 100);
INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size, max_run_time)
VALUES ('rr_long_run', 'at', '5 days', 100, '300000 years');
SET client_min_messages = warning;
CALL dbops.purge();
RESET client_min_messages;
SELECT relation, status, sqlstate, message, cutoff IS NULL AS no_cutoff, rows_deleted
  FROM dbops.purge_runs WHERE run_id > 200000 ORDER BY run_id;
-- the good policy went through: 30 days kept
SELECT count(*) FROM rr_ev;
SELECT status, value, detail FROM dbops.health() WHERE check_name = 'retention';
SELECT target FROM dbops.purge_preview();
-- such a policy can still be disabled (nothing to check), and is mended by
-- giving it limits in range
SELECT dbops.alter_retention_policy('rr_huge', enabled => false);
SELECT dbops.alter_retention_policy('rr_huge', batch_size => 50);
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.alter_retention_policy('rr_huge', keep => '5 days', enabled => true);
SELECT dbops.alter_retention_policy('rr_long_run', max_run_time => '1 hour');
SET client_min_messages = warning;
CALL dbops.purge();
RESET client_min_messages;
SELECT relation, status, rows_deleted FROM dbops.purge_runs WHERE run_id > 200003 ORDER BY run_id;
SELECT status, value FROM dbops.health() WHERE check_name = 'retention';

-- ---------------------------------------------------------------------------
-- 3. what a policy may name: each refusal with its SQLSTATE and hint
-- ---------------------------------------------------------------------------
-- a temporary table of this session (another session's: retention-race.spec)
CREATE TEMP TABLE rr_tmp (at timestamptz);
CREATE INDEX ON rr_tmp (at);
SELECT dbops.add_retention_policy('rr_tmp', 'at', '1 day');
\echo :LAST_ERROR_SQLSTATE
-- as 1.0 stored it: skipped, not read
INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size)
VALUES ('rr_tmp', 'at', '1 day', 10);
INSERT INTO rr_tmp VALUES (now() - interval '1 year');
CALL dbops.purge('rr_tmp');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM rr_tmp;
SELECT dbops.remove_retention_policy('rr_tmp');
-- a system catalog
SELECT dbops.add_retention_policy('pg_catalog.pg_authid', 'rolvaliduntil', '1 day');
\echo :LAST_ERROR_SQLSTATE
-- a view, a materialized view, a foreign table, a sequence, an index
CREATE VIEW rr_view AS SELECT * FROM rr_ev;
CREATE MATERIALIZED VIEW rr_mat AS SELECT * FROM rr_ev;
CREATE FOREIGN DATA WRAPPER rr_fdw;
CREATE SERVER rr_server FOREIGN DATA WRAPPER rr_fdw;
CREATE FOREIGN TABLE rr_foreign (at timestamptz) SERVER rr_server;
CREATE SEQUENCE rr_seq;
SELECT r AS relation, e.state, e.msg, e.hint
  FROM unnest(ARRAY['rr_view', 'rr_mat', 'rr_foreign', 'rr_seq', 'rr_ev_pkey']) r,
       pg_temp.err(format($$SELECT dbops.add_retention_policy(%L, 'at', '1 day')$$, r)) e;
-- partitions of a table that has a policy, and a partitioned table one of
-- whose partitions has a policy: their purges would overlap
CREATE TABLE rr_parts (at timestamptz NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE rr_parts_old PARTITION OF rr_parts FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE rr_parts_new PARTITION OF rr_parts FOR VALUES FROM ('2001-01-01') TO (MAXVALUE)
    PARTITION BY RANGE (at);
CREATE TABLE rr_parts_new_a PARTITION OF rr_parts_new FOR VALUES FROM ('2001-01-01') TO (MAXVALUE);
CREATE INDEX ON rr_parts (at);
SELECT dbops.add_retention_policy('rr_parts_new_a', 'at', '1 day') > 0 AS added;
SELECT dbops.add_retention_policy('rr_parts', 'at', '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.remove_retention_policy('rr_parts_new_a');
SELECT dbops.add_retention_policy('rr_parts', 'at', '1 day') > 0 AS added;
SELECT dbops.add_retention_policy('rr_parts_new_a', 'at', '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.add_retention_policy('rr_parts_old', 'at', '1 day');
\echo :LAST_ERROR_SQLSTATE
-- inheritance: DELETE FROM the parent deletes from its children too
CREATE TABLE rr_inh_parent (at timestamptz NOT NULL);
CREATE INDEX ON rr_inh_parent (at);
CREATE TABLE rr_inh_child () INHERITS (rr_inh_parent);
CREATE INDEX ON rr_inh_child (at);
SELECT dbops.add_retention_policy('rr_inh_parent', 'at', '1 day') > 0 AS added;
SELECT dbops.add_retention_policy('rr_inh_child', 'at', '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT dbops.remove_retention_policy('rr_inh_parent');
SELECT dbops.remove_retention_policy('rr_parts');

-- ---------------------------------------------------------------------------
-- 4. every error a caller can cause: SQLSTATE, a bounded message, a hint
-- ---------------------------------------------------------------------------
SELECT q, e.state, e.msg_len <= 200 AS bounded, e.hint IS NOT NULL AND e.hint <> '' AS has_hint
  FROM (VALUES
    ($$SELECT dbops.add_retention_policy(NULL, 'at', '1 day')$$),
    ($$SELECT dbops.add_retention_policy('rr_ev', NULL, '1 day')$$),
    ($$SELECT dbops.add_retention_policy('rr_ev', 'at', '1 day', batch_size => NULL)$$),
    ($$SELECT dbops.add_retention_policy('rr_ev', 'at', '1 day')$$),
    ($$SELECT dbops.add_retention_policy('rr_ev', 'nope', '1 day')$$),
    ($$SELECT dbops.add_retention_policy('rr_ev', 'id', '1 day')$$),
    ($$SELECT dbops.alter_retention_policy(NULL)$$),
    ($$SELECT dbops.alter_retention_policy('rr_view', keep => '1 day')$$),
    ($$SELECT dbops.remove_retention_policy(NULL)$$),
    ($$SELECT dbops.remove_retention_policy('rr_view')$$),
    ($$SELECT dbops.remove_retention_policy(0::regclass)$$),
    ($$SELECT * FROM dbops.purge_preview('rr_view')$$),
    ($$SELECT * FROM dbops._purge_policy(NULL)$$),
    ($$SELECT * FROM dbops._purge_batch(NULL)$$),
    ($$SELECT * FROM dbops._purge_record(NULL)$$),
    ($$SELECT * FROM dbops._retention_problem(NULL, NULL)$$),
    ($$SELECT * FROM dbops._purge_exec(NULL, NULL, NULL, NULL)$$),
    ($$SELECT * FROM dbops._purge_exec(-1, 'rr_ev', 'preview', now())$$),
    ($$SELECT * FROM dbops._purge_exec(200001, 'rr_ev', 'bound', now() - interval '1 year')$$),
    ($$SELECT * FROM dbops._purge_exec(200001, 'rr_ev', 'preview', now())$$),
    ($$SELECT * FROM dbops._purge_exec(200001, 'rr_huge', 'preview', now() - interval '1 year')$$),
    ($$SELECT * FROM dbops._purge_exec(200001, 'rr_ev', repeat('x', 200000), now() - interval '1 year')$$),
    ($$SELECT * FROM dbops._purge_exec(200001, 'rr_ev', 'range', now() - interval '1 year', repeat('9', 200000))$$),
    ($$SELECT dbops._purge_batch_sql('rr_ev', 'at', repeat('m', 200000))$$),
    ($$SELECT dbops._purge_batch_sql('rr_ev', 'nope', 'bound')$$),
    ($$SELECT dbops._purge_batch_sql('rr_ev', 'id', 'bound')$$)) v(q),
  LATERAL pg_temp.err(q) e;
CALL dbops.purge('rr_view');
\echo :LAST_ERROR_SQLSTATE
CALL dbops.purge(dry_run => NULL);
\echo :LAST_ERROR_SQLSTATE
-- the long ones quote the start of what they were given
SELECT e.msg FROM pg_temp.err($$SELECT * FROM dbops._purge_exec(200001, 'rr_ev', repeat('x', 200000), now() - interval '1 year')$$) e;
SELECT e.msg FROM pg_temp.err($$SELECT * FROM dbops._purge_exec(200001, 'rr_ev', 'range', now() - interval '1 year', repeat('9', 200000))$$) e;
-- a second purge lock in one session (the error's abort releases the first)
SELECT dbops._purge_lock(200001);
SELECT dbops._purge_lock(200002);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS purge_locks_left FROM pg_locks
 WHERE locktype = 'advisory' AND classid = 1684172914 AND pid = pg_backend_pid();

-- a message quoted from an error of the table's owner (a trigger's) is kept
-- short in purge_runs and in the health check
CREATE TABLE rr_loud (id int, at timestamptz NOT NULL);
CREATE INDEX ON rr_loud (at);
INSERT INTO rr_loud VALUES (1, now() - interval '10 days');
CREATE FUNCTION rr_loud_trigger() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'loud: %', repeat('x', 200000); END $$;
CREATE TRIGGER rr_loud BEFORE DELETE ON rr_loud FOR EACH ROW EXECUTE FUNCTION rr_loud_trigger();
SELECT dbops.add_retention_policy('rr_loud', 'at', '1 day') > 0 AS added;
\set VERBOSITY sqlstate
CALL dbops.purge('rr_loud');
\set VERBOSITY default
SELECT status, sqlstate, length(message) AS message_length FROM dbops.purge_runs
 WHERE relation = 'rr_loud' ORDER BY run_id DESC LIMIT 1;
SELECT status, length(detail) < 400 AS detail_bounded FROM dbops.health() WHERE check_name = 'retention';
SELECT dbops.remove_retention_policy('rr_loud');

-- ---------------------------------------------------------------------------
-- 5. a partition bound beyond timestamptz's range does not break the purge
-- ---------------------------------------------------------------------------
CREATE TABLE rr_days (d date NOT NULL) PARTITION BY RANGE (d);
CREATE TABLE rr_days_old PARTITION OF rr_days FOR VALUES FROM ('2000-01-01') TO ('2001-01-01');
CREATE TABLE rr_days_far PARTITION OF rr_days FOR VALUES FROM ('2001-01-01') TO ('300000-01-01');
CREATE INDEX ON rr_days (d);
INSERT INTO rr_days VALUES ('2000-06-01'), (current_date);
SELECT dbops.add_retention_policy('rr_days', 'd', '30 days') > 0 AS added;
SELECT target, rows_to_delete, partitions_to_drop FROM dbops.purge_preview('rr_days');
SET client_min_messages = warning;
CALL dbops.purge('rr_days');
RESET client_min_messages;
SELECT status, partitions_dropped FROM dbops.purge_runs WHERE relation = 'rr_days';
SELECT count(*) FROM rr_days;
SELECT dbops.remove_retention_policy('rr_days');

-- ---------------------------------------------------------------------------
-- 6. cancel-safety: a purge stopped by statement_timeout records its run as
-- interrupted, and the session goes on; a run left 'running' by a session
-- that no longer purges is reported by the health check
-- ---------------------------------------------------------------------------
CREATE TABLE rr_slow (id int, at timestamptz NOT NULL);
CREATE INDEX ON rr_slow (at);
INSERT INTO rr_slow SELECT i, now() - interval '10 days' FROM generate_series(1, 50) i;
CREATE FUNCTION rr_slow_trigger() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
CREATE TRIGGER rr_slow AFTER DELETE ON rr_slow FOR EACH STATEMENT EXECUTE FUNCTION rr_slow_trigger();
SELECT dbops.add_retention_policy('rr_slow', 'at', '1 day', batch_size => 10) > 0 AS added;
SET statement_timeout = '300ms';
CALL dbops.purge('rr_slow');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT 'usable' AS session;
SELECT status, sqlstate, message, finished IS NOT NULL AS finished, rows_deleted
  FROM dbops.purge_runs WHERE relation = 'rr_slow' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS purge_locks_left FROM pg_locks
 WHERE locktype = 'advisory' AND classid = 1684172914 AND pid = pg_backend_pid();
SELECT status, detail FROM dbops.health() WHERE check_name = 'retention';
DROP TRIGGER rr_slow ON rr_slow;
SET client_min_messages = warning;
CALL dbops.purge('rr_slow');
RESET client_min_messages;
SELECT status, rows_deleted FROM dbops.purge_runs WHERE relation = 'rr_slow' ORDER BY run_id DESC LIMIT 1;
-- inside a transaction block: the block is aborted, ROLLBACK ends it
BEGIN;
SET LOCAL statement_timeout = '300ms';
SELECT count(*) FROM dbops.purge_preview('rr_slow') WHERE pg_sleep(1) IS NOT NULL;
ROLLBACK;
SELECT 'usable' AS session;
-- a run still 'running' without its session's purge lock
INSERT INTO dbops.purge_runs (policy_id, relation, started, status, pid)
SELECT policy_id, 'rr_slow', now(), 'running', pg_backend_pid()
  FROM dbops.retention_policies WHERE relation = 'rr_slow'::regclass;
SELECT status, regexp_replace(detail, 'backend [0-9]+', 'backend N') AS detail
  FROM dbops.health() WHERE check_name = 'retention';
SET client_min_messages = warning;
CALL dbops.purge('rr_slow');
RESET client_min_messages;
SELECT status, regexp_replace(message, 'backend [0-9]+', 'backend N') AS message FROM dbops.purge_runs WHERE relation = 'rr_slow' AND started >= now() - interval '1 minute'
 ORDER BY run_id DESC LIMIT 2;

-- clean up
DELETE FROM dbops.retention_policies WHERE policy_id > 200000;
UPDATE dbops.retention_policies p SET enabled = s.enabled FROM saved_enabled s WHERE s.policy_id = p.policy_id;
DROP TABLE rr_ev, rr_huge, rr_long_run, rr_parts, rr_inh_child, rr_inh_parent, rr_loud, rr_days, rr_slow CASCADE;
DROP FUNCTION rr_loud_trigger(), rr_slow_trigger();
DROP FOREIGN TABLE rr_foreign;
DROP SERVER rr_server;
DROP FOREIGN DATA WRAPPER rr_fdw;
DROP SEQUENCE rr_seq;
