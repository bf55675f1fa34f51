-- The anchor of bench/health: the checks of dbops.health() as runbook
-- queries, one SQL statement per check, run in one session.
-- connections
SELECT count(*) AS used, current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int AS usable FROM pg_stat_activity WHERE backend_type = 'client backend';
-- long_query
SELECT pid, usename, datname, now() - query_start AS duration, left(query, 60) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() ORDER BY duration DESC LIMIT 5;
-- idle_in_transaction
SELECT pid, usename, datname, now() - state_change AS idle, left(query, 60) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' ORDER BY idle DESC LIMIT 5;
-- xid_wraparound
SELECT datname, age(datfrozenxid) FROM pg_database ORDER BY 2 DESC LIMIT 3;
-- mxid_wraparound
SELECT datname, mxid_age(datminmxid) FROM pg_database ORDER BY 2 DESC LIMIT 3;
-- prepared_xacts
SELECT gid, owner, database, now() - prepared AS age FROM pg_prepared_xacts ORDER BY prepared LIMIT 5;
-- replication_lag
SELECT application_name, client_addr, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes, replay_lag FROM pg_stat_replication ORDER BY lag_bytes DESC NULLS FIRST;
-- replication_slots
SELECT slot_name, slot_type, active, wal_status, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS retained FROM pg_replication_slots ORDER BY retained DESC NULLS LAST;
-- archiver
SELECT a.*, (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS ready FROM pg_stat_archiver a;
-- invalid_indexes
SELECT indexrelid::regclass, indrelid::regclass FROM pg_index WHERE NOT indisvalid;
-- sequences (the column type bounds of owned sequences included)
SELECT s.schemaname, s.sequencename, s.last_value, round(100.0 * (s.last_value - s.min_value) / (least(s.max_value, CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647 ELSE 9223372036854775807 END) - s.min_value), 2) AS pct_used FROM pg_sequences s LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid WHERE NOT s.cycle AND s.last_value IS NOT NULL ORDER BY pct_used DESC LIMIT 5;
-- dead_tuples
SELECT schemaname, relname, n_dead_tup, n_live_tup, round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 1) AS dead_pct, last_vacuum, last_autovacuum FROM pg_stat_all_tables ORDER BY n_dead_tup DESC LIMIT 5;
-- vacuum_age
SELECT t.schemaname, t.relname, t.n_dead_tup, greatest(t.last_vacuum, t.last_autovacuum) AS last_vac FROM pg_stat_all_tables t JOIN pg_class c ON c.oid = t.relid WHERE t.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::int + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0) ORDER BY last_vac NULLS FIRST LIMIT 5;
-- cache_hit_ratio
SELECT round(100.0 * sum(blks_hit) / nullif(sum(blks_hit + blks_read), 0), 2) AS hit_pct FROM pg_stat_database;
-- deadlocks
SELECT datname, deadlocks, stats_reset FROM pg_stat_database WHERE deadlocks > 0 ORDER BY deadlocks DESC;
-- temp_files
SELECT datname, temp_files, pg_size_pretty(temp_bytes) FROM pg_stat_database WHERE temp_bytes > 0 ORDER BY temp_bytes DESC;
-- checkpoints
SELECT checkpoints_timed, checkpoints_req, round(100.0 * checkpoints_req / nullif(checkpoints_timed + checkpoints_req, 0), 1) AS req_pct FROM pg_stat_bgwriter;
-- database_size
SELECT datname, pg_size_pretty(pg_database_size(datname)) FROM pg_database ORDER BY pg_database_size(datname) DESC;
