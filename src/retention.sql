
-- ---------------------------------------------------------------------------
-- retention
-- ---------------------------------------------------------------------------

CREATE TABLE dbops.retention_policies (
    policy_id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation            regclass NOT NULL UNIQUE,
    time_column         name NOT NULL,
    keep                interval NOT NULL CHECK (keep > interval '0'),
    batch_size          integer NOT NULL CHECK (batch_size > 0),
    max_rows_per_run    bigint CHECK (max_rows_per_run > 0),
    max_run_time        interval CHECK (max_run_time > interval '0'),
    drop_partitions     boolean NOT NULL DEFAULT true,
    enabled             boolean NOT NULL DEFAULT true,
    created             timestamptz NOT NULL DEFAULT now(),
    created_by          name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE dbops.retention_policies IS
    'Retention policies: rows of relation older than now() - keep (by time_column) are purged by CALL dbops.purge()';
GRANT SELECT ON dbops.retention_policies TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.retention_policies', '');

CREATE TABLE dbops.purge_runs (
    run_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_id           integer,
    relation            text NOT NULL,
    cutoff              timestamptz,
    started             timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished            timestamptz,
    rows_deleted        bigint NOT NULL DEFAULT 0,
    partitions_dropped  integer NOT NULL DEFAULT 0,
    partitions_detached integer NOT NULL DEFAULT 0,
    batches             integer NOT NULL DEFAULT 0,
    longest_batch_ms    numeric(12,3) NOT NULL DEFAULT 0,
    lock_retries        integer NOT NULL DEFAULT 0,
    paused_ms           bigint NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'partial', 'failed', 'interrupted')),
    sqlstate            text,
    message             text,
    pid                 integer NOT NULL DEFAULT pg_backend_pid(),
    backend_start       timestamptz
);
CREATE INDEX ON dbops.purge_runs (policy_id, started);
CREATE INDEX ON dbops.purge_runs (finished);
COMMENT ON TABLE dbops.purge_runs IS
    'One row per policy per CALL dbops.purge(); kept for dbops.purge_runs_keep';
GRANT SELECT ON dbops.purge_runs TO pg_monitor;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('retention', 1, NULL);

-- Internal helpers (C): guards and the per-policy session lock.
CREATE FUNCTION dbops._purge_begin(dry_run boolean DEFAULT false,
    OUT batch_target_ms integer, OUT batch_max integer,
    OUT lock_timeout_ms integer, OUT lock_retries integer,
    OUT max_replica_lag_ms integer, OUT runs_keep_s integer, OUT pid integer,
    OUT yield double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_purge_begin'
LANGUAGE C VOLATILE;
CREATE FUNCTION dbops._purge_busy_sessions() RETURNS integer
AS 'MODULE_PATHNAME', 'dbops_purge_busy_sessions'
LANGUAGE C VOLATILE;
CREATE FUNCTION dbops._purge_lock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_lock'
LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION dbops._purge_unlock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_unlock'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION dbops._purge_begin(boolean), dbops._purge_lock(integer),
    dbops._purge_unlock(integer), dbops._purge_busy_sessions() FROM PUBLIC;

-- Worst replay lag of the streaming standbys, in ms (0 without standbys).
-- SECURITY DEFINER so that the lag guard works for a role without pg_monitor.
CREATE FUNCTION dbops.replica_replay_lag_ms() RETURNS double precision
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(max(extract(epoch FROM replay_lag) * 1000), 0)::double precision
      FROM pg_stat_replication
$$;
COMMENT ON FUNCTION dbops.replica_replay_lag_ms() IS
    'Worst replay_lag of the streaming standbys in ms; dbops.purge() pauses while it exceeds dbops.purge_max_replica_lag';

-- The SQL of the steps of one purge batch on table target (a table, or a
-- leaf partition), by mode:
--   'bound'  $1 lower (text or NULL), $2 cutoff, $3 offset: the value of the
--            time column $3 rows into the rows older than the cutoff, from
--            lower on (NULL when fewer remain), and how many rows (up to $3)
--            share that value; index(-only) scans;
--   'range'  $1 lower, $2 upper (text or NULL), $3 cutoff: deletes the rows
--            between them that are older than the cutoff, by index range;
--   'skip_locked'  $1 lower, $2 cutoff, $3 limit: deletes up to $3 rows,
--            lowest time first, skipping rows other transactions hold locked;
--            returns the count and the highest value deleted (text).  Used
--            when a range batch could not get its row locks in time, and for
--            date columns, whose ties could make a range batch too large.
-- from_value / to_value say whether the lower / upper bound is given.
CREATE FUNCTION dbops._purge_batch_sql(target regclass, time_column name, mode text,
    from_value boolean DEFAULT false, to_value boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ text;
    lower_cond text;
BEGIN
    SELECT format_type(a.atttypid, NULL) INTO typ
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, target
            USING ERRCODE = 'undefined_column';
    END IF;
    lower_cond := CASE WHEN from_value THEN format(' AND %I >= $1::%s', time_column, typ) ELSE '' END;
    CASE mode
    WHEN 'bound' THEN
        RETURN format('SELECT b.bound::text, (SELECT count(*) FROM (SELECT FROM %1$s WHERE %2$I = b.bound LIMIT $3) t) '
                      'FROM (SELECT %2$I AS bound FROM %1$s WHERE %2$I < $2%3$s ORDER BY %2$I OFFSET $3 LIMIT 1) b',
                      target, time_column, lower_cond);
    WHEN 'range' THEN
        RETURN format('DELETE FROM %1$s WHERE %2$I < $3%3$s%4$s',
                      target, time_column, lower_cond,
                      CASE WHEN to_value THEN format(' AND %I <= $2::%s', time_column, typ) ELSE '' END);
    WHEN 'skip_locked' THEN
        RETURN format(
            'WITH d AS (DELETE FROM %1$s WHERE ctid = ANY (ARRAY('
            'SELECT ctid FROM %1$s WHERE %2$I < $2%3$s '
            'ORDER BY %2$I LIMIT $3 FOR UPDATE SKIP LOCKED)) AND %2$I < $2 RETURNING %2$I) '
            'SELECT count(*), max(%2$I)::text FROM d',
            target, time_column, lower_cond);
    ELSE
        RAISE EXCEPTION 'unknown batch mode "%"', mode USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END
$$;
REVOKE ALL ON FUNCTION dbops._purge_batch_sql(regclass, name, text, boolean, boolean) FROM PUBLIC;

-- Checks shared by add and alter; raises on what cannot work, NOTICEs on
-- what will work badly.
CREATE FUNCTION dbops._retention_validate(relation regclass, time_column name,
    keep interval, batch_size integer)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind "char";
    typ oid;
    attnum smallint;
    fk record;
BEGIN
    IF relation IS NULL OR time_column IS NULL OR keep IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, time_column, keep and batch_size must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = relation;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to tables and partitioned tables (not views, materialized views, foreign tables or indexes).';
    END IF;
    IF keep <= interval '0' THEN
        RAISE EXCEPTION 'keep must be a positive interval, not %', keep
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'keep is how long rows are kept, e.g. interval ''90 days''.';
    END IF;
    IF batch_size <= 0 THEN
        RAISE EXCEPTION 'batch_size must be positive, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.atttypid, a.attnum INTO typ, attnum
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, relation
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column rows are aged by.';
    END IF;
    IF typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not a date/time type',
                time_column, relation, format_type(typ, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;

    -- a usable index: a valid btree index whose first column is time_column
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
                   WHERE i.indrelid = relation AND i.indkey[0] = attnum
                     AND am.amname = 'btree' AND i.indpred IS NULL
                     AND (i.indisvalid OR ic.relkind = 'I')) THEN
        RAISE NOTICE 'no index on %(%): every purge batch would scan the whole table', relation, time_column
            USING HINT = format('CREATE INDEX CONCURRENTLY ON %s (%I); dbops.purge() refuses to purge without it.',
                                relation, time_column);
    END IF;

    -- foreign keys that point at the table
    FOR fk IN
        SELECT con.conname, con.conrelid::regclass AS referencing, con.confdeltype,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                  FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS cols,
               EXISTS (SELECT 1 FROM pg_index i
                        WHERE i.indrelid = con.conrelid AND i.indpred IS NULL
                          AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey
                          AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey) AS indexed
          FROM pg_constraint con
         WHERE con.contype = 'f'
           AND (con.confrelid = relation
                OR con.confrelid IN (SELECT t.relid FROM pg_partition_tree(relation) t))
    LOOP
        IF NOT fk.indexed THEN
            RAISE NOTICE 'foreign key % on % references % and has no index on (%)',
                    fk.conname, fk.referencing, relation, fk.cols
                USING HINT = format('Each purged row makes PostgreSQL look for referencing rows: CREATE INDEX CONCURRENTLY ON %s (%s);',
                                    fk.referencing, fk.cols);
        END IF;
        IF fk.confdeltype IN ('c', 'n', 'd') THEN
            RAISE NOTICE 'foreign key % on % references % with ON DELETE %: purging % also changes %',
                    fk.conname, fk.referencing, relation,
                    CASE fk.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END,
                    relation, fk.referencing
                USING HINT = 'Those changes run inside each purge batch and are not counted in rows_deleted; give the referencing table its own policy or lower batch_size.';
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION dbops._retention_validate(regclass, name, interval, integer) FROM PUBLIC;

CREATE FUNCTION dbops.add_retention_policy(
    relation regclass,
    time_column name,
    keep interval,
    batch_size integer DEFAULT 5000,
    max_rows_per_run bigint DEFAULT NULL,
    max_run_time interval DEFAULT interval '1 hour',
    drop_partitions boolean DEFAULT true,
    enabled boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id integer;
BEGIN
    PERFORM dbops._retention_validate(relation, time_column, keep, batch_size);
    IF max_rows_per_run IS NOT NULL AND max_rows_per_run <= 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_run_time IS NOT NULL AND max_run_time <= interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.retention_policies p WHERE p.relation = add_retention_policy.relation) THEN
        RAISE EXCEPTION 'relation % already has a retention policy', relation
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change it with dbops.alter_retention_policy() or drop it with dbops.remove_retention_policy().';
    END IF;
    INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, drop_partitions, enabled)
    VALUES (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, coalesce(drop_partitions, true), coalesce(enabled, true))
    RETURNING policy_id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean) IS
    'Add a retention policy: rows of relation older than now() - keep by time_column are purged by CALL dbops.purge()';

CREATE FUNCTION dbops.alter_retention_policy(
    relation regclass,
    keep interval DEFAULT NULL,
    batch_size integer DEFAULT NULL,
    time_column name DEFAULT NULL,
    max_rows_per_run bigint DEFAULT NULL,
    max_run_time interval DEFAULT NULL,
    drop_partitions boolean DEFAULT NULL,
    enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p dbops.retention_policies;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO p FROM dbops.retention_policies r WHERE r.relation = alter_retention_policy.relation FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    IF time_column IS NOT NULL OR keep IS NOT NULL OR batch_size IS NOT NULL THEN
        PERFORM dbops._retention_validate(relation, coalesce(time_column, p.time_column),
                                          coalesce(keep, p.keep), coalesce(batch_size, p.batch_size));
    END IF;
    IF max_rows_per_run < 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_run_time < interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE dbops.retention_policies r
       SET time_column = coalesce(alter_retention_policy.time_column, r.time_column),
           keep = coalesce(alter_retention_policy.keep, r.keep),
           batch_size = coalesce(alter_retention_policy.batch_size, r.batch_size),
           max_rows_per_run = CASE WHEN alter_retention_policy.max_rows_per_run IS NULL THEN r.max_rows_per_run
                                   ELSE nullif(alter_retention_policy.max_rows_per_run, 0) END,
           max_run_time = CASE WHEN alter_retention_policy.max_run_time IS NULL THEN r.max_run_time
                               ELSE nullif(alter_retention_policy.max_run_time, interval '0') END,
           drop_partitions = coalesce(alter_retention_policy.drop_partitions, r.drop_partitions),
           enabled = coalesce(alter_retention_policy.enabled, r.enabled)
     WHERE r.policy_id = p.policy_id;
END
$$;
COMMENT ON FUNCTION dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean) IS
    'Change a retention policy: NULL arguments leave a setting as it is; 0 removes a cap';

CREATE FUNCTION dbops.remove_retention_policy(relation regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    DELETE FROM dbops.retention_policies r WHERE r.relation = remove_retention_policy.relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object';
    END IF;
END
$$;
COMMENT ON FUNCTION dbops.remove_retention_policy(regclass) IS
    'Remove the retention policy of relation (its purge_runs rows stay)';

-- Partitions of a partitioned policy table that lie wholly before cutoff:
-- direct range partitions on the time column whose upper bound is at or
-- below the cutoff, oldest first, never the last (non-default) partition.
CREATE FUNCTION dbops._purge_old_partitions(parent regclass, time_column name, cutoff timestamptz)
RETURNS TABLE (partition regclass, upper_bound timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ text;
    nparts integer;
    r record;
    upper text;
    old boolean;
    n integer := 0;
BEGIN
    SELECT format_type(a.atttypid, NULL) INTO typ
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = parent AND pt.partstrat = 'r' AND pt.partnatts = 1
       AND a.attname = time_column;
    IF typ IS NULL THEN
        RETURN;             -- not range-partitioned on the time column
    END IF;
    SELECT count(*) INTO nparts
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
    FOR r IN
        SELECT c.oid::regclass AS part,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(.*\) TO \((.*)\)$'))[1] AS ub
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
    LOOP
        CONTINUE WHEN r.ub IS NULL OR r.ub = 'MAXVALUE' OR r.ub = 'MINVALUE';
        upper := r.ub;
        IF left(upper, 1) = '''' THEN
            upper := replace(substr(upper, 2, length(upper) - 2), '''''', '''');
        END IF;
        EXECUTE format('SELECT %L::%s <= $1, %L::%s::timestamptz', upper, typ, upper, typ)
           INTO old, upper_bound USING cutoff;
        IF old THEN
            partition := r.part;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION dbops._purge_old_partitions(regclass, name, timestamptz) FROM PUBLIC;

CREATE FUNCTION dbops.purge_preview(relation regclass DEFAULT NULL)
RETURNS TABLE (target regclass, time_column name, cutoff timestamptz,
               rows_to_delete bigint, oldest timestamptz, newest timestamptz,
               partitions_to_drop integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    nparts integer;
BEGIN
    IF purge_preview.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge_preview.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge_preview.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    FOR p IN SELECT r.* FROM dbops.retention_policies r
              WHERE ((purge_preview.relation IS NULL AND r.enabled) OR r.relation = purge_preview.relation)
                AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relation)
              ORDER BY r.policy_id
    LOOP
        target := p.relation;
        time_column := p.time_column;
        cutoff := now() - p.keep;
        EXECUTE format('SELECT count(*), min(%2$I)::timestamptz, max(%2$I)::timestamptz FROM %1$s WHERE %2$I < $1',
                       p.relation, p.time_column)
           INTO rows_to_delete, oldest, newest USING cutoff;
        SELECT count(*) INTO nparts FROM dbops._purge_old_partitions(p.relation, p.time_column, cutoff);
        partitions_to_drop := CASE WHEN nparts > 0 AND nparts = (SELECT count(*) FROM pg_inherits i
                                       JOIN pg_class c ON c.oid = i.inhrelid
                                      WHERE i.inhparent = p.relation
                                        AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT')
                                   THEN nparts - 1 ELSE nparts END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION dbops.purge_preview(regclass) IS
    'What CALL dbops.purge() would delete now: rows older than the cutoff, the oldest and newest of them, partitions it would drop';

CREATE PROCEDURE dbops.purge(relation regclass DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    s record;
    pv record;
    p dbops.retention_policies;
    ids integer[];
    pid_ integer;
    run bigint;
    run_start timestamptz;
    policy_start timestamptz;
    v_cutoff timestamptz;
    deadline timestamptz;
    kind "char";
    part record;
    parts regclass[];
    nparts_all integer;
    targets regclass[];
    target regclass;
    sql_bound text;
    sql_bound_from text;
    sql_range text;
    sql_range_from text;
    sql_range_to text;
    sql_range_from_to text;
    sql_skip text;
    sql_skip_from text;
    is_date boolean;
    use_skip boolean;
    skipped_any boolean;
    ties bigint;
    upper_ text;
    size integer;
    failures text[] := '{}';
    first_state text;
    lim integer;
    lower_ text;
    n bigint;
    maxval text;
    t0 timestamptz;
    ms numeric;
    total bigint;
    retries integer;
    lag double precision;
    pause_start timestamptz;
    v_status text;
    v_state text;
    v_msg text;
    v_hint text;
    locked boolean;
    more boolean;
BEGIN
    -- refuses on a standby and in a transaction block; loads the settings
    s := dbops._purge_begin(dry_run);

    IF purge.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;

    IF dry_run THEN
        FOR pv IN SELECT * FROM dbops.purge_preview(purge.relation) LOOP
            RAISE NOTICE '%: % rows older than % would be deleted (oldest %, newest %)%',
                pv.target, pv.rows_to_delete, pv.cutoff, pv.oldest, pv.newest,
                CASE WHEN pv.partitions_to_drop > 0
                     THEN format(', %s of them by dropping %s partitions', pv.rows_to_delete, pv.partitions_to_drop)
                     ELSE '' END;
        END LOOP;
        RETURN;
    END IF;

    run_start := clock_timestamp();

    -- runs whose backend is gone did not finish: say so
    UPDATE dbops.purge_runs r
       SET status = 'interrupted', finished = coalesce(r.finished, run_start),
           message = format('backend %s ended during the run (crash, kill or disconnect)', r.pid)
     WHERE r.status = 'running'
       AND (r.pid = pg_backend_pid()
            OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                            WHERE a.pid = r.pid
                              AND (a.backend_start IS NULL OR r.backend_start IS NULL
                                   OR a.backend_start = r.backend_start)));
    -- purge_runs' own retention
    DELETE FROM dbops.purge_runs r
     WHERE r.finished < run_start - make_interval(secs => s.runs_keep_s);
    COMMIT;

    SELECT array_agg(r.policy_id ORDER BY r.policy_id) INTO ids
      FROM dbops.retention_policies r
     WHERE (purge.relation IS NULL AND r.enabled) OR r.relation = purge.relation;

    FOREACH pid_ IN ARRAY coalesce(ids, '{}') LOOP
        SELECT * INTO p FROM dbops.retention_policies r WHERE r.policy_id = pid_;
        CONTINUE WHEN NOT FOUND;    -- removed meanwhile

        IF NOT dbops._purge_lock(pid_) THEN
            RAISE NOTICE 'another session is already purging %; skipped', p.relation
                USING HINT = 'Its progress is in dbops.purge_runs (status running).';
            CONTINUE;
        END IF;

        -- we hold the policy's lock: a run still marked running is not
        UPDATE dbops.purge_runs r
           SET status = 'interrupted', finished = coalesce(r.finished, clock_timestamp()),
               message = coalesce(r.message, format('backend %s stopped during the run (error, cancel or crash)', r.pid))
         WHERE r.policy_id = pid_ AND r.status = 'running';

        policy_start := clock_timestamp();
        v_cutoff := run_start - p.keep;
        deadline := CASE WHEN p.max_run_time IS NOT NULL THEN policy_start + p.max_run_time END;
        INSERT INTO dbops.purge_runs (policy_id, relation, cutoff, started, backend_start)
        VALUES (pid_, p.relation::text, v_cutoff, policy_start,
                (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()))
        RETURNING run_id INTO run;
        COMMIT;

        v_status := NULL;
        v_state := NULL;
        v_msg := NULL;
        total := 0;
        retries := 0;

        -- what cannot work fails the run, with the reason
        SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = p.relation;
        IF kind IS NULL THEN
            v_status := 'failed';
            v_state := '42P01';
            v_msg := format('relation with OID %s no longer exists', p.relation::oid);
        ELSIF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                           JOIN pg_am am ON am.oid = ic.relam
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = p.relation AND a.attname = p.time_column
                            AND am.amname = 'btree' AND i.indpred IS NULL
                            AND (i.indisvalid OR ic.relkind = 'I')) THEN
            v_status := 'failed';
            v_state := '55000';
            v_msg := format('no index on %s (%I): batches would scan the whole table', p.relation, p.time_column);
        END IF;

        -- partitions wholly older than the cutoff: detach (and drop)
        IF v_status IS NULL AND kind = 'p' THEN
            SELECT array_agg(o.partition ORDER BY o.upper_bound) INTO parts
              FROM dbops._purge_old_partitions(p.relation, p.time_column, v_cutoff) o;
            SELECT count(*) INTO nparts_all
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = p.relation AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
            IF cardinality(parts) >= nparts_all THEN
                parts := parts[1:nparts_all - 1];       -- never the last one
            END IF;
            FOREACH target IN ARRAY coalesce(parts, '{}') LOOP
                LOOP
                    IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
                        v_status := 'partial';
                        v_msg := 'stopped at max_run_time';
                        EXIT;
                    END IF;
                    locked := false;
                    PERFORM set_config('lock_timeout', s.lock_timeout_ms || 'ms', true);
                    t0 := clock_timestamp();
                    BEGIN
                        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p.relation, target);
                        IF p.drop_partitions THEN
                            EXECUTE format('DROP TABLE %s', target);
                        END IF;
                    EXCEPTION
                        WHEN lock_not_available THEN
                            locked := true;
                        WHEN OTHERS THEN
                            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                            v_status := 'failed';
                            v_msg := format('detaching partition %s: %s', target, v_msg);
                    END;
                    EXIT WHEN v_status IS NOT NULL;
                    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
                    IF locked THEN
                        retries := retries + 1;
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = run;
                        COMMIT;
                        IF retries > s.lock_retries THEN
                            v_status := 'partial';
                            v_state := '55P03';
                            v_msg := format('could not lock %s to detach %s within lock_timeout after %s attempts',
                                            p.relation, target, retries);
                            EXIT;
                        END IF;
                        PERFORM pg_sleep(least(0.05 * 2 ^ retries, 5));
                        CONTINUE;
                    END IF;
                    retries := 0;
                    UPDATE dbops.purge_runs r
                       SET partitions_dropped = r.partitions_dropped + CASE WHEN p.drop_partitions THEN 1 ELSE 0 END,
                           partitions_detached = r.partitions_detached + CASE WHEN p.drop_partitions THEN 0 ELSE 1 END,
                           longest_batch_ms = greatest(r.longest_batch_ms, ms)
                     WHERE r.run_id = run;
                    COMMIT;
                    EXIT;
                END LOOP;
                EXIT WHEN v_status IS NOT NULL;
            END LOOP;
        END IF;

        -- rows: in batches, per leaf table
        IF v_status IS NULL THEN
            IF kind = 'p' THEN
                SELECT array_agg(t.relid ORDER BY t.relid) INTO targets
                  FROM pg_partition_tree(p.relation) t
                  JOIN pg_class c ON c.oid = t.relid
                 WHERE t.isleaf AND c.relkind = 'r';
            ELSE
                targets := ARRAY[p.relation];
            END IF;
            size := least(p.batch_size, s.batch_max);
            <<targets_loop>>
            FOREACH target IN ARRAY coalesce(targets, '{}') LOOP
                sql_bound := dbops._purge_batch_sql(target, p.time_column, 'bound', false);
                sql_bound_from := dbops._purge_batch_sql(target, p.time_column, 'bound', true);
                sql_range := dbops._purge_batch_sql(target, p.time_column, 'range', false, false);
                sql_range_from := dbops._purge_batch_sql(target, p.time_column, 'range', true, false);
                sql_range_to := dbops._purge_batch_sql(target, p.time_column, 'range', false, true);
                sql_range_from_to := dbops._purge_batch_sql(target, p.time_column, 'range', true, true);
                sql_skip := dbops._purge_batch_sql(target, p.time_column, 'skip_locked', false);
                sql_skip_from := dbops._purge_batch_sql(target, p.time_column, 'skip_locked', true);
                SELECT a.atttypid = 'date'::regtype INTO is_date
                  FROM pg_attribute a WHERE a.attrelid = target AND a.attname = p.time_column;
                lower_ := NULL;
                retries := 0;
                skipped_any := false;
                LOOP
                    IF p.max_rows_per_run IS NOT NULL AND total >= p.max_rows_per_run THEN
                        v_status := 'partial';
                        v_msg := format('stopped at max_rows_per_run (%s)', p.max_rows_per_run);
                        EXIT targets_loop;
                    END IF;
                    IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
                        v_status := 'partial';
                        v_msg := format('stopped at max_run_time (%s)', p.max_run_time);
                        EXIT targets_loop;
                    END IF;

                    -- replica lag guard: wait, one short transaction per look
                    IF s.max_replica_lag_ms > 0 THEN
                        lag := dbops.replica_replay_lag_ms();
                        IF lag > s.max_replica_lag_ms THEN
                            pause_start := clock_timestamp();
                            WHILE lag > s.max_replica_lag_ms LOOP
                                IF deadline IS NOT NULL AND clock_timestamp() >= deadline THEN
                                    EXIT;
                                END IF;
                                COMMIT;
                                PERFORM pg_sleep(0.5);
                                lag := dbops.replica_replay_lag_ms();
                            END LOOP;
                            UPDATE dbops.purge_runs r
                               SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - pause_start) * 1000)::bigint
                             WHERE r.run_id = run;
                            COMMIT;
                            IF lag > s.max_replica_lag_ms THEN
                                v_status := 'partial';
                                v_msg := format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag',
                                                p.max_run_time, round(lag::numeric));
                                EXIT targets_loop;
                            END IF;
                        END IF;
                    END IF;

                    lim := size;
                    IF p.max_rows_per_run IS NOT NULL THEN
                        lim := least(lim, p.max_rows_per_run - total);
                    END IF;

                    -- one batch: find the value lim rows on, delete the range
                    -- up to it (both through the index); if a row lock is
                    -- not granted in time, the same batch again skipping
                    -- locked rows
                    locked := false;
                    use_skip := is_date;
                    upper_ := NULL;
                    PERFORM set_config('lock_timeout', s.lock_timeout_ms || 'ms', true);
                    -- through the index, in its order; bounds as ISO text
                    PERFORM set_config('enable_seqscan', 'off', true);
                    PERFORM set_config('enable_bitmapscan', 'off', true);
                    PERFORM set_config('enable_sort', 'off', true);
                    PERFORM set_config('datestyle', 'ISO, YMD', true);
                    t0 := clock_timestamp();
                    IF NOT use_skip THEN
                        BEGIN
                            IF lower_ IS NULL THEN
                                EXECUTE sql_bound INTO upper_, ties USING lower_, v_cutoff, lim - 1;
                            ELSE
                                EXECUTE sql_bound_from INTO upper_, ties USING lower_, v_cutoff, lim - 1;
                            END IF;
                            IF upper_ IS NOT NULL AND ties > lim / 4 THEN
                                -- many rows share the bound: a range would
                                -- take them all, so count rows instead
                                use_skip := true;
                            ELSE
                                EXECUTE CASE WHEN lower_ IS NULL AND upper_ IS NULL THEN sql_range
                                             WHEN lower_ IS NULL THEN sql_range_to
                                             WHEN upper_ IS NULL THEN sql_range_from
                                             ELSE sql_range_from_to END
                                  USING lower_, upper_, v_cutoff;
                                GET DIAGNOSTICS n = ROW_COUNT;
                                maxval := upper_;
                            END IF;
                        EXCEPTION
                            WHEN lock_not_available THEN
                                use_skip := true;
                            WHEN OTHERS THEN
                                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                                v_status := 'failed';
                                EXIT targets_loop;
                        END;
                    END IF;
                    IF use_skip THEN
                        BEGIN
                            IF lower_ IS NULL THEN
                                EXECUTE sql_skip INTO n, maxval USING lower_, v_cutoff, lim;
                            ELSE
                                EXECUTE sql_skip_from INTO n, maxval USING lower_, v_cutoff, lim;
                            END IF;
                        EXCEPTION
                            WHEN lock_not_available THEN
                                locked := true;
                            WHEN OTHERS THEN
                                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                                v_status := 'failed';
                                EXIT targets_loop;
                        END;
                    END IF;
                    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;

                    IF locked THEN
                        retries := retries + 1;
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = run;
                        COMMIT;
                        IF retries > s.lock_retries THEN
                            v_status := 'partial';
                            v_state := '55P03';
                            v_msg := format('could not lock %s within lock_timeout (%s ms) after %s attempts',
                                            target, s.lock_timeout_ms, retries);
                            EXIT targets_loop;
                        END IF;
                        PERFORM pg_sleep(least(0.05 * 2 ^ retries, 5));
                        CONTINUE;
                    END IF;

                    IF use_skip AND n < lim THEN
                        skipped_any := true;
                    END IF;
                    IF n > 0 THEN
                        total := total + n;
                        UPDATE dbops.purge_runs r
                           SET rows_deleted = r.rows_deleted + n, batches = r.batches + 1,
                               longest_batch_ms = greatest(r.longest_batch_ms, ms)
                         WHERE r.run_id = run;
                    END IF;
                    COMMIT;

                    -- production first: while other sessions are busy,
                    -- leave them the time of the batch (times dbops.purge_yield)
                    IF n > 0 AND s.yield > 0 AND dbops._purge_busy_sessions() > 0 THEN
                        PERFORM pg_sleep(ms * s.yield / 1000.0);
                        UPDATE dbops.purge_runs r
                           SET paused_ms = r.paused_ms + round(ms * s.yield)::bigint
                         WHERE r.run_id = run;
                        COMMIT;
                    END IF;

                    IF (use_skip AND n >= lim) OR (NOT use_skip AND upper_ IS NOT NULL) THEN
                        -- a full batch: continue from its highest value,
                        -- sized toward the target batch time
                        retries := 0;
                        lower_ := maxval;
                        IF lim = size THEN
                            size := least(s.batch_max, greatest(10,
                                        round(size * least(2.0, greatest(0.5, s.batch_target_ms / greatest(ms, 1))))::integer));
                        END IF;
                    ELSIF lower_ IS NOT NULL THEN
                        -- end of the range: done, unless batches skipped
                        -- locked rows; then sweep once more from the start
                        EXIT WHEN NOT skipped_any;
                        lower_ := NULL;
                        skipped_any := false;
                    ELSIF n > 0 THEN
                        CONTINUE;
                    ELSE
                        -- nothing deleted from the start: done, unless rows
                        -- remain that other transactions hold locked
                        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I < $1)', target, p.time_column)
                           INTO more USING v_cutoff;
                        COMMIT;
                        EXIT WHEN NOT more;
                        retries := retries + 1;
                        IF retries > s.lock_retries THEN
                            v_status := 'partial';
                            v_state := '55P03';
                            v_msg := format('rows of %s older than the cutoff are locked by other transactions; gave up after %s attempts',
                                            target, retries);
                            EXIT targets_loop;
                        END IF;
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = run;
                        COMMIT;
                        PERFORM pg_sleep(least(0.05 * 2 ^ retries, 5));
                    END IF;
                END LOOP;
            END LOOP;
        END IF;

        UPDATE dbops.purge_runs r
           SET status = coalesce(v_status, 'done'), finished = clock_timestamp(),
               sqlstate = v_state, message = v_msg
         WHERE r.run_id = run;
        COMMIT;
        PERFORM dbops._purge_unlock(pid_);

        SELECT * INTO pv FROM dbops.purge_runs r WHERE r.run_id = run;
        IF pv.status = 'failed' THEN
            failures := failures || format('%s: %s', p.relation, pv.message);
            first_state := coalesce(first_state, pv.sqlstate);
            RAISE WARNING 'purge of % failed: %', p.relation, pv.message
                USING DETAIL = format('SQLSTATE %s; see dbops.purge_runs run_id %s', pv.sqlstate, run),
                      HINT = CASE pv.sqlstate WHEN '55000' THEN format('CREATE INDEX CONCURRENTLY ON %s (%I);', p.relation, p.time_column)
                                              WHEN '42P01' THEN 'Remove the policy with dbops.remove_retention_policy().'
                                              ELSE 'Fix the cause and CALL dbops.purge() again; committed batches stay deleted.' END;
        ELSE
            RAISE NOTICE '%: % rows deleted in % batches (longest % ms)%; %',
                p.relation, pv.rows_deleted, pv.batches, round(pv.longest_batch_ms),
                CASE WHEN pv.partitions_dropped + pv.partitions_detached > 0
                     THEN format(', %s partitions dropped, %s detached', pv.partitions_dropped, pv.partitions_detached)
                     ELSE '' END,
                pv.status || coalesce(': ' || pv.message, '');
        END IF;
    END LOOP;

    -- committed work stays; a failed policy still fails the CALL (and a
    -- scheduled job) so that it is noticed
    IF cardinality(failures) > 0 THEN
        RAISE EXCEPTION 'purge failed for % polic%: %', cardinality(failures),
                CASE WHEN cardinality(failures) = 1 THEN 'y' ELSE 'ies' END,
                array_to_string(failures, '; ')
            USING ERRCODE = coalesce(first_state, 'XX000'),
                  HINT = 'dbops.purge_runs has the details; batches committed before the failure stay deleted.';
    END IF;
END
$$;
COMMENT ON PROCEDURE dbops.purge(regclass, boolean) IS
    'Purge rows older than their policy''s keep, in small committed batches; dry_run only reports';

REVOKE ALL ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean),
    dbops.remove_retention_policy(regclass),
    dbops.purge_preview(regclass)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE dbops.purge(regclass, boolean) FROM PUBLIC;
