
-- ---------------------------------------------------------------------------
-- backfill
-- ---------------------------------------------------------------------------

-- One row per backfill run: an UPDATE of relation with set_clause, in
-- batches of rows by key_column (a single-column unique key), restricted to
-- where_clause.  last_key is the highest key whose batch is committed: it is
-- written in the same transaction as that batch's UPDATE, so it is true
-- after a crash or a cancel, and a later CALL with the same relation, set
-- and where goes on after it.  end_key is the highest key when the run
-- started: the run covers the rows up to it.
CREATE TABLE dbops.backfill_runs (
    run_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation            regclass NOT NULL,
    set_clause          text NOT NULL,
    where_clause        text NOT NULL,
    key_column          name NOT NULL,
    key_type            text NOT NULL,
    first_key           text,
    last_key            text,
    end_key             text,
    rows_updated        bigint NOT NULL DEFAULT 0,
    rows_covered        bigint NOT NULL DEFAULT 0,
    rows_skipped_locked bigint NOT NULL DEFAULT 0,
    batches             integer NOT NULL DEFAULT 0,
    longest_batch_ms    numeric(12,3) NOT NULL DEFAULT 0,
    lock_retries        integer NOT NULL DEFAULT 0,
    paused_ms           bigint NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'partial', 'failed', 'cancelled')),
    sqlstate            text,
    message             text,
    started             timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_progress       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished            timestamptz,
    run_by              name NOT NULL DEFAULT current_user,
    pid                 integer NOT NULL DEFAULT pg_backend_pid(),
    backend_start       timestamptz
);
CREATE INDEX ON dbops.backfill_runs (relation, status);
COMMENT ON TABLE dbops.backfill_runs IS
    'One row per CALL dbops.backfill() run: progress committed with each batch, so a later CALL resumes where it stopped';
GRANT SELECT ON dbops.backfill_runs TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.backfill_runs', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.backfill_runs_run_id_seq', '');

-- Keys of rows inside a committed batch's range that the batch could not
-- update because other transactions held them locked (the SKIP LOCKED
-- fallback): the run is not done until each is updated (or found gone).
CREATE TABLE dbops.backfill_pending (
    run_id              bigint NOT NULL,
    key                 text NOT NULL,
    PRIMARY KEY (run_id, key)
);
COMMENT ON TABLE dbops.backfill_pending IS
    'Keys of rows a backfill run skipped because they were locked; updated before the run is done';
GRANT SELECT ON dbops.backfill_pending TO pg_monitor;
SELECT pg_catalog.pg_extension_config_dump('dbops.backfill_pending', '');

-- Internal helpers (C, backfill.c): guards and settings; the check of the
-- caller's set and where text.
CREATE FUNCTION dbops._backfill_begin(
    OUT batch_target_ms integer, OUT batch_max integer,
    OUT lock_timeout_ms integer, OUT lock_retries integer,
    OUT max_replica_lag_ms integer, OUT yield double precision, OUT pid integer)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_backfill_begin'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION dbops._backfill_check("set" text, "where" text, key_column name)
RETURNS void
AS 'MODULE_PATHNAME', 'dbops_backfill_check'
LANGUAGE C IMMUTABLE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._backfill_begin(), dbops._backfill_check(text, text, name) FROM PUBLIC;

-- What CALL dbops.backfill() carries from one phase to the next.
CREATE TYPE dbops._backfill_state AS (
    phase               text,
    resume              text,
    run                 bigint,
    relation            regclass,
    relname             text,
    set_clause          text,
    where_clause        text,
    key_column          name,
    key_type            text,
    op_lt               text,
    op_le               text,
    op_gt               text,
    op_eq               text,
    end_key             text,
    size                integer,
    batch_target_ms     integer,
    batch_max           integer,
    lock_timeout_ms     integer,
    lock_retries        integer,
    max_replica_lag_ms  integer,
    yield_factor        double precision,
    sleep_s             double precision,
    yield_ms            numeric,
    retries             integer,
    skip_locked         boolean,
    deadline            timestamptz,
    max_run_time        interval,
    last_notice         timestamptz,
    pause_start         timestamptz,
    status              text,
    sqlstate            text,
    message             text
);
COMMENT ON TYPE dbops._backfill_state IS
    'Internal: the state CALL dbops.backfill() passes from one phase (dbops._backfill_<phase>()) to the next';

CREATE FUNCTION dbops._backfill_require_phase(st dbops._backfill_state, phase text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF st.phase IS DISTINCT FROM phase THEN
        RAISE EXCEPTION 'not a state of CALL dbops.backfill()'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('dbops._backfill_%s() is called by CALL dbops.backfill() only; use that.', phase);
    END IF;
END
$$;

-- A pause of sleep_s seconds after the COMMIT (and the yield a batch asked
-- for in st.yield_ms), taken by phase pause; then the phase st is at again.
CREATE FUNCTION dbops._backfill_wait(st dbops._backfill_state, sleep_s double precision)
RETURNS dbops._backfill_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.sleep_s := sleep_s;
    st.resume := st.phase;
    st.phase := 'pause';
    RETURN st;
END
$$;

-- The end of the run with this outcome; phase record writes it.
CREATE FUNCTION dbops._backfill_stop(st dbops._backfill_state, status text, code text, message text)
RETURNS dbops._backfill_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.status := status;
    st.sqlstate := code;
    st.message := message;
    st.phase := 'record';
    RETURN st;
END
$$;

-- The pieces of the batch statements: the range condition on the key
-- (lower bound given or not), with the operators of the key's btree
-- operator family, schema-qualified, and the key's type for the casts of
-- the parameters (printed under the pinned search_path, so qualified
-- unless it is pg_catalog's).
CREATE FUNCTION dbops._backfill_range(st dbops._backfill_state, from_value boolean)
RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN from_value
                THEN format('%1$I %2$s $1::%4$s AND %1$I %3$s $2::%4$s', st.key_column, st.op_gt, st.op_le, st.key_type)
                ELSE format('%1$I %2$s $2::%3$s', st.key_column, st.op_le, st.key_type) END
$$;

-- Phase start, in the CALL's first transaction: refuses a standby and a
-- transaction block (dbops._backfill_begin(), which also loads the
-- settings), checks the arguments, the key and the caller's privileges,
-- checks that set and where make one UPDATE (dbops._backfill_check()) and
-- that it plans (EXPLAIN, with the caller's rights), then finds the
-- unfinished run of the same relation, set, where and key to resume, or
-- starts one.  A finished run is not repeated unless rerun.  Next: batch,
-- or done.
CREATE FUNCTION dbops._backfill_start(relation regclass, "set" text, "where" text,
    key_column name, batch_size integer, rerun boolean, max_run_time interval)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_st dbops._backfill_state;
    v_set record;
    v_kind "char";
    v_persistence "char";
    v_nsp name;
    v_key name := key_column;
    v_attnum smallint;
    v_typid oid;
    v_typmod integer;
    v_opf oid;
    v_run dbops.backfill_runs;
    v_first text;
    v_end text;
    v_sql text;
BEGIN
    -- refuses on a standby and in a transaction block; loads the settings
    v_set := dbops._backfill_begin();
    IF relation IS NULL OR "set" IS NULL OR "where" IS NULL OR rerun IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, set, where, batch_size and rerun must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'E.g. CALL dbops.backfill(''users'', ''new_field = ''''default'''''', ''new_field IS NULL''); where defaults to ''true''.';
    END IF;
    IF batch_size < 1 OR batch_size > v_set.batch_max THEN
        RAISE EXCEPTION 'batch_size must be between 1 and dbops.purge_batch_max (%), not %', v_set.batch_max, batch_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'batch_size is the number of rows of the first batch; later ones adapt to dbops.purge_batch_target.';
    END IF;
    IF max_run_time IS NOT NULL AND (max_run_time <= interval '0' OR max_run_time > interval '1000 years') THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval of at most 1000 years, not %', max_run_time
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_run_time caps how long this CALL works, e.g. interval ''1 hour''; a later CALL resumes. NULL for no cap.';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname INTO v_kind, v_persistence, v_nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = relation;
    IF v_kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table',
                  HINT = 'Name an existing table.';
    END IF;
    IF v_kind NOT IN ('r', 'p') OR v_nsp IN ('pg_catalog', 'information_schema') THEN
        RAISE EXCEPTION '% is not a user table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'dbops.backfill() updates plain and partitioned tables (not views, foreign tables, system catalogs).';
    END IF;
    IF v_persistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A run is recorded to be resumed by a later session; update a temporary table directly.';
    END IF;

    -- the key: the single-column primary key, or the column named, which
    -- must be NOT NULL with a valid, non-partial, unique btree index of its
    -- own.  There is no ctid mode: an updated row moves to a new ctid, so
    -- batches by ctid range could meet a row twice.
    IF v_key IS NULL THEN
        SELECT a.attname INTO v_key
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = relation AND i.indisprimary AND i.indnatts = 1;
        IF v_key IS NULL THEN
            RAISE EXCEPTION '% has no single-column primary key', relation
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'dbops.backfill() walks the table in the order of a unique key, so that each row is updated exactly once even across a resume; it does not walk ctid ranges, because an updated row moves to a new ctid.',
                      HINT = 'Name a NOT NULL column with a unique index with key_column => ..., or add one: ALTER TABLE ... ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY, then CREATE UNIQUE INDEX CONCURRENTLY.';
        END IF;
    END IF;
    SELECT a.attnum, a.atttypid, a.atttypmod INTO v_attnum, v_typid, v_typmod
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = v_key AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_attnum IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', v_key, relation
            USING ERRCODE = 'undefined_column',
                  HINT = 'key_column names a NOT NULL column with a unique index; leave it NULL for the primary key.';
    END IF;
    SELECT i.indclass[0] INTO v_opf
      FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = v_attnum
     WHERE i.indrelid = relation AND i.indkey[0] = v_attnum AND i.indnatts = 1 AND i.indisunique
       AND (i.indisvalid OR ic.relkind = 'I') AND i.indpred IS NULL AND i.indexprs IS NULL
       AND am.amname = 'btree' AND a.attnotnull
     ORDER BY i.indisprimary DESC LIMIT 1;
    IF v_opf IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % is not a NOT NULL column with a unique btree index of its own', v_key, relation
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('CREATE UNIQUE INDEX CONCURRENTLY ON %s (%I); and make the column NOT NULL, or name another key_column.', relation, v_key);
    END IF;
    SELECT o.opcfamily INTO v_opf FROM pg_opclass o WHERE o.oid = v_opf;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_lt
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 1;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_le
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 2;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_eq
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 3;
    SELECT format('OPERATOR(%I.%s)', n.nspname, op.oprname) INTO v_st.op_gt
      FROM pg_amop ao JOIN pg_operator op ON op.oid = ao.amopopr JOIN pg_namespace n ON n.oid = op.oprnamespace
     WHERE ao.amopfamily = v_opf AND ao.amoplefttype = v_typid AND ao.amoprighttype = v_typid AND ao.amopstrategy = 5;
    IF v_st.op_lt IS NULL OR v_st.op_le IS NULL OR v_st.op_eq IS NULL OR v_st.op_gt IS NULL THEN
        RAISE EXCEPTION 'the unique index on column "%" of relation % has no btree operators for type %', v_key, relation, format_type(v_typid, NULL)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Name another key_column, whose unique index uses the default btree operator class of its type.';
    END IF;

    -- the caller's text: one SET list and one expression, never the key
    PERFORM dbops._backfill_check("set", "where", v_key);

    -- the caller's rights: what they could do by hand
    IF NOT has_column_privilege(relation, v_key, 'SELECT') OR NOT has_any_column_privilege(relation, 'UPDATE') THEN
        RAISE EXCEPTION 'permission denied for table %', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.backfill() runs the UPDATE with the rights of the role that calls it.',
                  HINT = format('The role needs UPDATE on the columns set assigns and SELECT on %I and the columns it reads: GRANT SELECT, UPDATE ON %s TO %I;', v_key, relation, current_user);
    END IF;

    v_st.relation := relation;
    v_st.relname := relation::text;
    v_st.set_clause := "set";
    v_st.where_clause := "where";
    v_st.key_column := v_key;
    v_st.key_type := format_type(v_typid, v_typmod);
    v_st.batch_target_ms := v_set.batch_target_ms;
    v_st.batch_max := v_set.batch_max;
    v_st.lock_timeout_ms := v_set.lock_timeout_ms;
    v_st.lock_retries := v_set.lock_retries;
    v_st.max_replica_lag_ms := v_set.max_replica_lag_ms;
    v_st.yield_factor := v_set.yield;
    v_st.size := batch_size;
    v_st.sleep_s := 0;
    v_st.yield_ms := 0;
    v_st.retries := 0;
    v_st.skip_locked := false;
    v_st.max_run_time := max_run_time;
    v_st.deadline := clock_timestamp() + max_run_time;
    v_st.last_notice := clock_timestamp();

    -- the statement plans, with the caller's rights (columns, types,
    -- privileges on what set and where read and write)
    v_sql := format('EXPLAIN (COSTS OFF) UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %s AND (' || E'\n' || '%s' || E'\n' || ')',
                    relation, "set", dbops._backfill_range(v_st, true), "where");
    BEGIN
        EXECUTE v_sql USING NULL::text, NULL::text;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = SQLERRM,
              DETAIL = 'dbops.backfill() runs the UPDATE with the rights of the role that calls it.',
              HINT = 'The role needs UPDATE on the columns set assigns and SELECT on the key and the columns set and where read, as for the same UPDATE by hand.';
    END;

    -- the run to resume, or a new one
    SELECT * INTO v_run FROM dbops.backfill_runs r
     WHERE r.relation = _backfill_start.relation AND r.set_clause = "set"
       AND r.where_clause = "where" AND r.key_column = v_key
     ORDER BY r.run_id DESC LIMIT 1
       FOR UPDATE;
    IF FOUND AND v_run.status = 'running' AND v_run.pid <> pg_backend_pid()
       AND EXISTS (SELECT FROM pg_stat_get_activity(v_run.pid) a
                    WHERE a.backend_start IS NOT DISTINCT FROM v_run.backend_start) THEN
        RAISE EXCEPTION 'backfill run % of % is running in backend %', v_run.run_id, relation, v_run.pid
            USING ERRCODE = 'object_in_use',
                  HINT = format('Wait for it (dbops.backfill_progress), or stop it with SELECT pg_cancel_backend(%s); a later CALL resumes it.', v_run.pid);
    END IF;
    IF FOUND AND v_run.status = 'done' AND NOT rerun THEN
        RAISE NOTICE 'backfill of % with this set and where is already done (run %, % rows updated)',
                v_st.relname, v_run.run_id, v_run.rows_updated
            USING HINT = 'CALL dbops.backfill(..., rerun => true) runs it again over every row.';
        v_st.phase := 'done';
        RETURN v_st;
    END IF;
    IF FOUND AND v_run.status <> 'done' THEN
        IF v_run.key_type <> v_st.key_type THEN
            RAISE EXCEPTION 'the key column "%" of % changed type since run % began (% then, % now)',
                    v_key, relation, v_run.run_id, v_run.key_type, v_st.key_type
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Start again over every row with rerun => true, with a where that skips the rows already done.';
        END IF;
        UPDATE dbops.backfill_runs r
           SET status = 'running', pid = pg_backend_pid(), sqlstate = NULL, message = NULL, finished = NULL,
               backend_start = (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a),
               last_progress = clock_timestamp()
         WHERE r.run_id = v_run.run_id;
        v_st.run := v_run.run_id;
        v_st.end_key := v_run.end_key;
        RAISE NOTICE 'resuming backfill run % of % after key % (% rows updated so far)',
                v_run.run_id, v_st.relname, coalesce(v_run.last_key, '(none)'), v_run.rows_updated;
    ELSE
        EXECUTE format('SELECT (SELECT t.%1$I::pg_catalog.text FROM %2$s t ORDER BY t.%1$I USING %3$s LIMIT 1), '
                       '(SELECT t.%1$I::pg_catalog.text FROM %2$s t ORDER BY t.%1$I USING %4$s LIMIT 1)',
                       v_key, relation, v_st.op_lt, v_st.op_gt)
           INTO v_first, v_end;
        INSERT INTO dbops.backfill_runs (relation, set_clause, where_clause, key_column, key_type,
                first_key, end_key, backend_start)
        VALUES (relation, "set", "where", v_key, v_st.key_type, v_first, v_end,
                (SELECT a.backend_start FROM pg_stat_get_activity(pg_backend_pid()) a))
        RETURNING run_id INTO v_st.run;
        v_st.end_key := v_end;
    END IF;
    v_st.phase := CASE WHEN v_st.end_key IS NULL THEN 'record' ELSE 'batch' END;
    RETURN v_st;
END
$$;

-- Phase batch, one transaction: the rows after the run's last key (read
-- from its row, locked) up to the key st.size rows further (an index
-- scan), or to end_key, are updated with the caller's set where the
-- caller's where holds, and the run's row records the new last key in the
-- same transaction.  The UPDATE waits at most dbops.purge_lock_timeout for
-- its locks; after dbops.purge_lock_retries timeouts in a row (backing off
-- 0.1 s, 0.2 s, ... up to 5 s), the range is done with SKIP LOCKED: the
-- rows it could lock are updated and the keys of the others go to
-- dbops.backfill_pending.  The size adapts toward
-- dbops.purge_batch_target.  Next: batch again (through pause or lag),
-- pending at the end of the range, or record.
CREATE FUNCTION dbops._backfill_batch(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run dbops.backfill_runs;
    v_lower text;
    v_upper text;
    v_count bigint;
    v_n bigint := 0;
    v_locked text[];
    v_skipped bigint := 0;
    v_t0 timestamptz;
    v_ms numeric;
    v_old_lt text;
    v_pct text;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'batch');
    IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
        RETURN dbops._backfill_stop(st, 'partial', NULL, format('stopped at max_run_time (%s); CALL again to resume', st.max_run_time));
    END IF;
    IF st.max_replica_lag_ms > 0 AND dbops.replica_replay_lag_ms() > st.max_replica_lag_ms THEN
        st.pause_start := clock_timestamp();
        st.phase := 'lag';
        RETURN dbops._backfill_wait(st, 0.5);
    END IF;

    -- the run's row, locked: its last key is the truth
    SELECT * INTO v_run FROM dbops.backfill_runs r WHERE r.run_id = st.run FOR UPDATE;
    IF v_run.status IS DISTINCT FROM 'running' OR v_run.pid <> pg_backend_pid() THEN
        RAISE EXCEPTION 'backfill run % was taken over or ended by another session', st.run
            USING ERRCODE = 'object_in_use',
                  HINT = 'dbops.backfill_progress shows who runs it now.';
    END IF;
    v_lower := v_run.last_key;
    PERFORM set_config('datestyle', 'ISO, YMD', true);

    -- the range: up to st.size rows after the last key (index-only scan)
    v_t0 := clock_timestamp();
    EXECUTE format('SELECT pg_catalog.max(s.k)::pg_catalog.text, pg_catalog.count(*) FROM '
                   '(SELECT %1$I AS k FROM %2$s WHERE %3$s ORDER BY %1$I USING %4$s LIMIT $3) s',
                   st.key_column, st.relation, dbops._backfill_range(st, v_lower IS NOT NULL), st.op_lt)
       INTO v_upper, v_count USING v_lower, st.end_key, st.size;
    IF v_count < st.size OR v_upper IS NULL THEN
        v_upper := st.end_key;      -- the last range: up to end_key
    END IF;

    v_old_lt := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', st.lock_timeout_ms || 'ms', true);
    IF NOT st.skip_locked THEN
        BEGIN
            EXECUTE format('UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %s AND (' || E'\n' || '%s' || E'\n' || ')',
                           st.relation, st.set_clause, dbops._backfill_range(st, v_lower IS NOT NULL), st.where_clause)
               USING v_lower, v_upper;
            GET DIAGNOSTICS v_n = ROW_COUNT;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM set_config('lock_timeout', v_old_lt, true);
            st.retries := st.retries + 1;
            UPDATE dbops.backfill_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
            IF st.retries > st.lock_retries THEN
                st.skip_locked := true;     -- this range again, skipping locked rows
                RETURN st;
            END IF;
            st.size := greatest(1, st.size / 2);
            RETURN dbops._backfill_wait(st, least(0.05 * 2 ^ st.retries, 5));
        END;
    ELSE
        -- SKIP LOCKED: lock what can be locked of the range, update those
        -- rows, and keep the keys of the others for phase pending
        EXECUTE format('SELECT pg_catalog.array_agg(s.k) FROM (SELECT %1$I::pg_catalog.text AS k FROM %2$s WHERE %3$s FOR UPDATE SKIP LOCKED) s',
                       st.key_column, st.relation, dbops._backfill_range(st, v_lower IS NOT NULL))
           INTO v_locked USING v_lower, v_upper;
        v_locked := coalesce(v_locked, '{}');
        EXECUTE format('UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %I %s ANY ($3::%s[]) AND (' || E'\n' || '%s' || E'\n' || ')',
                       st.relation, st.set_clause, st.key_column, st.op_eq, st.key_type, st.where_clause)
           USING v_lower, v_upper, v_locked;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        EXECUTE format('INSERT INTO dbops.backfill_pending (run_id, key) '
                       'SELECT $4, %1$I::pg_catalog.text FROM %2$s WHERE %3$s '
                       'AND NOT (%1$I::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[])) '
                       'ON CONFLICT DO NOTHING',
                       st.key_column, st.relation, dbops._backfill_range(st, v_lower IS NOT NULL))
           USING v_lower, v_upper, v_locked, st.run;
        GET DIAGNOSTICS v_skipped = ROW_COUNT;
        st.skip_locked := false;
    END IF;
    PERFORM set_config('lock_timeout', v_old_lt, true);
    v_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;

    -- the progress, in the batch's transaction
    UPDATE dbops.backfill_runs r
       SET last_key = v_upper, rows_updated = r.rows_updated + v_n,
           rows_covered = r.rows_covered + v_count,
           rows_skipped_locked = r.rows_skipped_locked + v_skipped,
           batches = r.batches + 1, longest_batch_ms = greatest(r.longest_batch_ms, v_ms),
           last_progress = clock_timestamp()
     WHERE r.run_id = st.run
    RETURNING * INTO v_run;

    IF v_skipped = 0 AND v_count >= st.size THEN
        st.size := least(st.batch_max, greatest(10,
                       round(st.size * least(2.0, greatest(0.5, st.batch_target_ms / greatest(v_ms, 1))))::integer));
    END IF;
    st.retries := 0;
    IF clock_timestamp() - st.last_notice >= interval '10 seconds' THEN
        st.last_notice := clock_timestamp();
        SELECT p.percent_done::text INTO v_pct FROM dbops.backfill_progress p WHERE p.run_id = st.run;
        RAISE NOTICE 'backfill of %: % rows updated in % batches, at key % (% %% done)',
            st.relname, v_run.rows_updated, v_run.batches, v_upper, coalesce(v_pct, '?');
    END IF;
    IF v_upper OPERATOR(pg_catalog.=) st.end_key THEN
        st.phase := 'pending';
    END IF;
    IF st.yield_factor > 0 THEN
        st.yield_ms := v_ms;
        RETURN dbops._backfill_wait(st, 0);
    END IF;
    RETURN st;
END
$$;

-- Phase pending, after the last range: the rows batches skipped because
-- they were locked (dbops.backfill_pending), up to st.size at a time:
-- those that can be locked now (SKIP LOCKED) are updated where the
-- caller's where holds, and their keys (and those of rows gone since)
-- leave the list in the same transaction.  While none can be locked it
-- backs off; after dbops.purge_lock_retries attempts the run ends as
-- failed (55P03), to be resumed by a later CALL.  Next: pending again, or
-- record.
CREATE FUNCTION dbops._backfill_pending(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_keys text[];
    v_locked text[];
    v_n bigint;
    v_gone bigint;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'pending');
    PERFORM set_config('datestyle', 'ISO, YMD', true);
    PERFORM 1 FROM dbops.backfill_runs r WHERE r.run_id = st.run FOR UPDATE;
    SELECT array_agg(p.key) INTO v_keys
      FROM (SELECT p.key FROM dbops.backfill_pending p WHERE p.run_id = st.run LIMIT st.size) p;
    IF v_keys IS NULL THEN
        st.phase := 'record';
        RETURN st;
    END IF;
    EXECUTE format('SELECT pg_catalog.array_agg(s.k) FROM (SELECT %1$I::pg_catalog.text AS k FROM %2$s '
                   'WHERE %1$I %3$s ANY ($1::%4$s[]) FOR UPDATE SKIP LOCKED) s',
                   st.key_column, st.relation, st.op_eq, st.key_type)
       INTO v_locked USING v_keys;
    v_locked := coalesce(v_locked, '{}');
    EXECUTE format('UPDATE %s SET' || E'\n' || '%s' || E'\n' || 'WHERE %I %s ANY ($1::%s[]) AND (' || E'\n' || '%s' || E'\n' || ')',
                   st.relation, st.set_clause, st.key_column, st.op_eq, st.key_type, st.where_clause)
       USING v_locked;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    -- keys done: locked (and so updated if where held), or no row any more
    EXECUTE format('SELECT pg_catalog.count(*) FROM pg_catalog.unnest($1::pg_catalog.text[]) k(key) '
                   'WHERE NOT EXISTS (SELECT FROM %1$s t WHERE t.%2$I %3$s k.key::%4$s)',
                   st.relation, st.key_column, st.op_eq, st.key_type)
       INTO v_gone USING v_keys;
    EXECUTE format('DELETE FROM dbops.backfill_pending p WHERE p.run_id OPERATOR(pg_catalog.=) $2 '
                   'AND p.key OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]) '
                   'AND (p.key OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[]) '
                   'OR NOT EXISTS (SELECT FROM %1$s t WHERE t.%2$I %3$s p.key::%4$s))',
                   st.relation, st.key_column, st.op_eq, st.key_type)
       USING v_keys, st.run, v_locked;
    UPDATE dbops.backfill_runs r
       SET rows_updated = r.rows_updated + v_n, batches = r.batches + 1, last_progress = clock_timestamp()
     WHERE r.run_id = st.run;
    IF cardinality(v_locked) = 0 AND v_gone = 0 THEN
        st.retries := st.retries + 1;
        UPDATE dbops.backfill_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
        IF st.retries > st.lock_retries THEN
            RETURN dbops._backfill_stop(st, 'failed', '55P03',
                format('%s rows of %s stayed locked by other transactions after %s attempts; CALL again to finish them',
                       (SELECT count(*) FROM dbops.backfill_pending p WHERE p.run_id = st.run), st.relname, st.retries));
        END IF;
        RETURN dbops._backfill_wait(st, least(0.05 * 2 ^ st.retries, 5));
    END IF;
    st.retries := 0;
    RETURN st;
END
$$;

-- Phase lag: while a standby's replay lag is above
-- dbops.purge_max_replica_lag, a short look after each pause of 0.5 s
-- (counted in paused_ms).  Next: batch, or record at max_run_time.
CREATE FUNCTION dbops._backfill_lag(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_lag double precision;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'lag');
    v_lag := dbops.replica_replay_lag_ms();
    IF v_lag > st.max_replica_lag_ms AND (st.deadline IS NULL OR clock_timestamp() < st.deadline) THEN
        RETURN dbops._backfill_wait(st, 0.5);
    END IF;
    UPDATE dbops.backfill_runs r
       SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - st.pause_start) * 1000)::bigint
     WHERE r.run_id = st.run;
    IF v_lag > st.max_replica_lag_ms THEN
        RETURN dbops._backfill_stop(st, 'partial', NULL,
            format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag; CALL again to resume',
                   st.max_run_time, round(v_lag::numeric)));
    END IF;
    st.phase := 'batch';
    RETURN st;
END
$$;

-- Phase pause, after a COMMIT: a backoff or the lag guard's wait
-- (st.sleep_s), and after a batch, while other client sessions are running
-- a query or are in a transaction, yielding to them for the batch's time
-- times dbops.backfill_yield (counted in paused_ms).  Next: st.resume.
CREATE FUNCTION dbops._backfill_pause(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'pause');
    IF st.sleep_s > 0 THEN
        PERFORM pg_sleep(st.sleep_s);
        st.sleep_s := 0;
    END IF;
    IF st.yield_ms > 0 THEN
        IF dbops._purge_busy_sessions() > 0 THEN
            PERFORM pg_sleep(st.yield_ms * st.yield_factor / 1000.0);
            UPDATE dbops.backfill_runs r
               SET paused_ms = r.paused_ms + round(st.yield_ms * st.yield_factor)::bigint
             WHERE r.run_id = st.run;
        END IF;
        st.yield_ms := 0;
    END IF;
    st.phase := st.resume;
    RETURN st;
END
$$;

-- Phase record: the run's outcome (done, unless a phase stopped it) and
-- its NOTICE.  Next: done, or finish when it failed.
CREATE FUNCTION dbops._backfill_record(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_run dbops.backfill_runs;
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'record');
    UPDATE dbops.backfill_runs r
       SET status = coalesce(st.status, 'done'), finished = clock_timestamp(), last_progress = clock_timestamp(),
           sqlstate = st.sqlstate, message = st.message
     WHERE r.run_id = st.run
    RETURNING * INTO v_run;
    IF v_run.status = 'failed' THEN
        st.phase := 'finish';
        RETURN st;
    ELSE
        RAISE NOTICE 'backfill of %: % rows updated in % batches; %',
            st.relname, v_run.rows_updated, v_run.batches,
            v_run.status || coalesce(': ' || v_run.message, '');
    END IF;
    st.phase := 'done';
    RETURN st;
END
$$;

-- Phase finish, after a run that ended as failed was recorded (and
-- committed): the CALL fails with its error, so that a script or a
-- scheduled job notices.  Next: done (never reached).
CREATE FUNCTION dbops._backfill_finish(st dbops._backfill_state)
RETURNS dbops._backfill_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._backfill_require_phase(st, 'finish');
    RAISE EXCEPTION 'backfill of % failed: %', st.relname, st.message
        USING ERRCODE = coalesce(st.sqlstate, 'P0001'),
              DETAIL = format('See dbops.backfill_runs run_id %s.', st.run),
              HINT = 'Committed batches stay updated; CALL dbops.backfill() again with the same arguments to finish.';
END
$$;

-- When a phase failed or was cancelled: the run, if still running in this
-- backend, is recorded as failed or, for a cancel or statement_timeout
-- (57014), cancelled, to be committed before the error is raised again.
-- The batch the error interrupted was rolled back with its progress.
-- Returns the hint the error then carries.
CREATE FUNCTION dbops._backfill_abort(st dbops._backfill_state, code text, message text, hint text)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_last text;
BEGIN
    UPDATE dbops.backfill_runs r
       SET status = CASE WHEN code = '57014' THEN 'cancelled' ELSE 'failed' END,
           finished = clock_timestamp(), last_progress = clock_timestamp(), sqlstate = code,
           message = CASE WHEN length(_backfill_abort.message) > 500 THEN left(_backfill_abort.message, 500) || '...'
                          ELSE _backfill_abort.message END
     WHERE r.run_id = st.run AND r.status = 'running' AND r.pid = pg_backend_pid()
    RETURNING r.last_key INTO v_last;
    IF st.run IS NULL THEN
        RETURN nullif(hint, '');
    END IF;
    RETURN CASE WHEN hint <> '' THEN hint || ' ' ELSE '' END
        || format('Backfill run %s is recorded as %s in dbops.backfill_runs; %s. CALL dbops.backfill() again with the same arguments to resume.',
                  st.run, CASE WHEN code = '57014' THEN 'cancelled' ELSE 'failed' END,
                  CASE WHEN v_last IS NULL THEN 'no batch of it was committed'
                       ELSE format('its committed batches stay updated (up to key %s)', v_last) END);
END
$$;

-- Progress of the runs: percent done from the key's position between the
-- run's first and end key for integer and numeric keys, else from the rows
-- covered against the table's row estimate (reltuples).
CREATE VIEW dbops.backfill_progress AS
SELECT r.run_id, r.relation, r.status, r.key_column, r.last_key, r.end_key,
       r.rows_updated, r.rows_covered, r.batches,
       (SELECT pg_catalog.count(*) FROM dbops.backfill_pending p WHERE p.run_id OPERATOR(pg_catalog.=) r.run_id) AS rows_pending,
       CASE WHEN r.status OPERATOR(pg_catalog.=) 'done' THEN 100.0
            WHEN r.last_key IS NULL THEN 0.0
            WHEN r.key_type OPERATOR(pg_catalog.=) ANY ('{smallint,integer,bigint,numeric}'::pg_catalog.text[])
             AND r.end_key::pg_catalog.numeric OPERATOR(pg_catalog.>) r.first_key::pg_catalog.numeric
            THEN pg_catalog.round(100.0 OPERATOR(pg_catalog.*) (r.last_key::pg_catalog.numeric OPERATOR(pg_catalog.-) r.first_key::pg_catalog.numeric)
                                  OPERATOR(pg_catalog./) (r.end_key::pg_catalog.numeric OPERATOR(pg_catalog.-) r.first_key::pg_catalog.numeric), 1)
            WHEN c.reltuples OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100.0, 100.0 OPERATOR(pg_catalog.*) r.rows_covered::pg_catalog.numeric
                                  OPERATOR(pg_catalog./) c.reltuples::pg_catalog.numeric), 1)
       END AS percent_done,
       r.started, r.last_progress, r.finished,
       COALESCE(r.finished, pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.-) r.started AS elapsed,
       r.longest_batch_ms, r.lock_retries, r.paused_ms,
       (r.status OPERATOR(pg_catalog.=) 'running' AND EXISTS (
            SELECT FROM pg_catalog.pg_stat_get_activity(r.pid) a
             WHERE a.backend_start IS NOT DISTINCT FROM r.backend_start)) AS active,
       r.run_by, r.pid, r.sqlstate, r.message
  FROM dbops.backfill_runs r
  LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.relation;
COMMENT ON VIEW dbops.backfill_progress IS
    'Progress of CALL dbops.backfill() runs: rows updated, last key committed, percent done, whether its backend still runs it';
GRANT SELECT ON dbops.backfill_progress TO pg_monitor;

-- A procedure, because it commits after each batch; for the same reason it
-- cannot carry a SET search_path clause, so its own statements depend on
-- no search_path (schema-qualified calls with arguments of their exact
-- types, schema-qualified operators).  The phases, each in a transaction
-- of its own: start (checks, the run), batch, pending, lag, pause, record,
-- finish.
-- A phase that fails or is cancelled is caught, its run recorded as failed
-- or cancelled (dbops._backfill_abort()) and committed, and the error
-- raised again.  The caller's set and where run with the caller's rights,
-- under the search_path pg_catalog, pg_temp.
CREATE PROCEDURE dbops.backfill(relation regclass, "set" text, "where" text DEFAULT 'true',
    key_column name DEFAULT NULL, batch_size integer DEFAULT 1000,
    rerun boolean DEFAULT false, max_run_time interval DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_st dbops._backfill_state;
    v_caught pg_catalog.bool := false;
    v_state pg_catalog.text;
    v_msg pg_catalog.text;
    v_detail pg_catalog.text;
    v_hint pg_catalog.text;
BEGIN
    v_st := dbops._backfill_start(backfill.relation, backfill."set", backfill."where",
                                  backfill.key_column, backfill.batch_size, backfill.rerun,
                                  backfill.max_run_time);
    WHILE v_st.phase OPERATOR(pg_catalog.<>) 'done' LOOP
        COMMIT;
        BEGIN
            CASE
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'batch' THEN v_st := dbops._backfill_batch(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'pending' THEN v_st := dbops._backfill_pending(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'lag' THEN v_st := dbops._backfill_lag(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'pause' THEN v_st := dbops._backfill_pause(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'record' THEN v_st := dbops._backfill_record(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'finish' THEN v_st := dbops._backfill_finish(v_st);
            END CASE;
        EXCEPTION WHEN query_canceled OR OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            v_caught := true;
        END;
        IF v_caught THEN
            v_hint := dbops._backfill_abort(v_st, v_state, v_msg, v_hint);
            COMMIT;
            IF v_detail IS NULL OR v_detail OPERATOR(pg_catalog.=) '' THEN
                RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, HINT = v_hint;
            END IF;
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, DETAIL = v_detail, HINT = v_hint;
        END IF;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) IS
    'UPDATE relation SET set WHERE where in small committed batches by key, with the caller''s rights; resumable after a crash or cancel';

REVOKE ALL ON FUNCTION dbops._backfill_require_phase(dbops._backfill_state, text),
    dbops._backfill_wait(dbops._backfill_state, double precision),
    dbops._backfill_stop(dbops._backfill_state, text, text, text),
    dbops._backfill_range(dbops._backfill_state, boolean),
    dbops._backfill_start(regclass, text, text, name, integer, boolean, interval),
    dbops._backfill_batch(dbops._backfill_state),
    dbops._backfill_pending(dbops._backfill_state),
    dbops._backfill_lag(dbops._backfill_state),
    dbops._backfill_pause(dbops._backfill_state),
    dbops._backfill_record(dbops._backfill_state),
    dbops._backfill_finish(dbops._backfill_state),
    dbops._backfill_abort(dbops._backfill_state, text, text, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE dbops.backfill(regclass, text, text, name, integer, boolean, interval) FROM PUBLIC;
