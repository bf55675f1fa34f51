
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
SELECT pg_catalog.pg_extension_config_dump('dbops.retention_policies_policy_id_seq', '');

-- created_by is the role a policy acts for: CALL dbops.purge() touches the
-- table only while that role has the privileges of the table's owner.  A
-- role that writes this table directly (it needs INSERT or UPDATE on it) may
-- only record a role whose privileges it has, normally itself: it cannot
-- write a policy in a superuser's name, nor repoint or change one.
-- Superusers (and so pg_dump's restore) may record any role.
CREATE FUNCTION dbops._retention_policies_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        RETURN NEW;
    END IF;
    IF NEW.created_by IS NOT NULL
       AND NOT (EXISTS (SELECT FROM pg_roles r WHERE r.rolname = NEW.created_by)
                AND pg_has_role(NEW.created_by, 'USAGE')) THEN
        RAISE EXCEPTION 'cannot record role "%" as created_by of the retention policy on %',
                NEW.created_by, NEW.relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'CALL dbops.purge() acts on a policy only while its created_by role has the privileges of the table''s owner; a policy is written in the name of a role whose privileges the writer has.',
                  HINT = 'Leave created_by to its default (current_user), or use dbops.add_retention_policy() and dbops.alter_retention_policy().';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION dbops._retention_policies_guard() FROM PUBLIC;
CREATE TRIGGER retention_policies_guard
    BEFORE INSERT OR UPDATE ON dbops.retention_policies
    FOR EACH ROW EXECUTE FUNCTION dbops._retention_policies_guard();

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
        CHECK (status IN ('running', 'done', 'partial', 'failed', 'interrupted', 'skipped')),
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
SELECT pg_catalog.pg_extension_config_dump('dbops.purge_runs', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.purge_runs_run_id_seq', '');

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
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION dbops._purge_busy_sessions() RETURNS integer
AS 'MODULE_PATHNAME', 'dbops_purge_busy_sessions'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION dbops._purge_lock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_lock'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION dbops._purge_unlock(policy_id integer) RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_purge_unlock'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._purge_begin(boolean), dbops._purge_lock(integer),
    dbops._purge_unlock(integer), dbops._purge_busy_sessions() FROM PUBLIC;

-- Why a policy on relation made by created_by would be skipped or fail now
-- (NULLs when it would not): its keep or max_run_time (when given) is not
-- a positive interval of at most 1000 years (skipped: a row written before
-- 1.1 or into the table directly), the relation is gone (failed), is not a
-- plain or partitioned table or is temporary (skipped), created_by no
-- longer exists or lacks the privileges of the table's owner (skipped), the
-- time column is gone or not of a date/time type (failed); with a hint.
-- Catalogs only.
CREATE FUNCTION dbops._retention_problem(relation regclass, created_by name,
    time_column name DEFAULT NULL, keep interval DEFAULT NULL,
    max_run_time interval DEFAULT NULL,
    OUT status text, OUT sqlstate text, OUT message text, OUT hint text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_retention_problem'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

-- One step of a purge (see retention_exec.c): built from the policy row,
-- run as the table's owner in a security-restricted operation after the
-- relation is locked and checked again.  The caller picks the step and
-- narrows it; it never supplies SQL, and its cutoff may not be later than
-- now() - keep.  It needs SELECT and DELETE on the table (the owner's
-- privileges to detach or drop partitions; SELECT for a preview).
CREATE FUNCTION dbops._purge_exec(policy_id integer, target regclass, action text,
    cutoff timestamptz, lower_value text DEFAULT NULL, upper_value text DEFAULT NULL,
    n_rows bigint DEFAULT NULL,
    OUT n bigint, OUT value text, OUT value2 text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_purge_exec'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- relation named as regclass prints it under search_path (the caller's: the
-- purge names tables in its messages and in purge_runs as the caller sees
-- them).  Printing a name looks schemas up and runs nothing.
CREATE FUNCTION dbops._purge_relname(relation regclass, search_path text)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_purge_relname'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._retention_problem(regclass, name, name, interval, interval),
    dbops._purge_exec(integer, regclass, text, timestamptz, text, text, bigint),
    dbops._purge_relname(regclass, text) FROM PUBLIC;

-- What CALL dbops.purge() carries from one phase to the next, one
-- transaction each: every phase function (dbops._purge_<phase>()) takes it
-- and returns it with phase set to the phase to run next (see
-- dbops.purge()).  The settings are read once, at the start; the fields
-- from policy_id on describe the policy being purged and its run.
CREATE TYPE dbops._purge_state AS (
    phase               text,
    resume              text,
    relation            regclass,
    caller_path         text,
    batch_target_ms     integer,
    batch_max           integer,
    lock_timeout_ms     integer,
    lock_retries        integer,
    max_replica_lag_ms  integer,
    runs_keep_s         integer,
    yield_factor        double precision,
    sleep_s             double precision,
    yield_ms            numeric,
    run_start           timestamptz,
    ids                 integer[],
    idx                 integer,
    failures            text[],
    first_state         text,
    nskipped            integer,
    policy_id           integer,
    policy_rel          regclass,
    relname             text,
    time_column         name,
    batch_size          integer,
    max_rows_per_run    bigint,
    max_run_time        interval,
    kind                "char",
    run                 bigint,
    cutoff              timestamptz,
    deadline            timestamptz,
    total               bigint,
    retries             integer,
    status              text,
    sqlstate            text,
    message             text,
    parts               regclass[],
    part_idx            integer,
    targets             regclass[],
    target_idx          integer,
    is_date             boolean,
    lower_value         text,
    size                integer,
    skipped_any         boolean,
    lag                 double precision,
    pause_start         timestamptz
);
COMMENT ON TYPE dbops._purge_state IS
    'Internal: the state CALL dbops.purge() passes from one phase (dbops._purge_<phase>()) to the next';

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
--            date columns, whose ties could make a range batch too large;
--   'exists' $1 cutoff: whether rows older than the cutoff remain;
--   'preview' $1 cutoff: how many rows are older than the cutoff, the oldest
--            and the newest of them (timestamptz as text).
-- from_value / to_value say whether the lower / upper bound is given.
-- Every function, operator, type and cast is schema-qualified: the
-- statements run as the table's owner (dbops._purge_exec()).
CREATE FUNCTION dbops._purge_batch_sql(target regclass, time_column name, mode text,
    from_value boolean DEFAULT false, to_value boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_typid oid;
    v_typ text;
    v_lower_cond text;
BEGIN
    SELECT a.atttypid INTO v_typid
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_typid IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, target
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column of the policy''s table.';
    END IF;
    v_typ := CASE v_typid WHEN 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 'pg_catalog.timestamptz'
                      WHEN 'pg_catalog.timestamp'::pg_catalog.regtype THEN 'pg_catalog.timestamp'
                      WHEN 'pg_catalog.date'::pg_catalog.regtype THEN 'pg_catalog.date' END;
    IF v_typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not timestamptz, timestamp or date',
                time_column, target, format_type(v_typid, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;
    v_lower_cond := CASE WHEN from_value THEN format(' AND %I OPERATOR(pg_catalog.>=) $1::%s', time_column, v_typ) ELSE '' END;
    CASE mode
    WHEN 'bound' THEN
        RETURN format('SELECT b.bound::pg_catalog.text, (SELECT pg_catalog.count(*) FROM (SELECT FROM %1$s WHERE %2$I OPERATOR(pg_catalog.=) b.bound LIMIT $3) t) '
                      'FROM (SELECT %2$I AS bound FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $2%3$s ORDER BY %2$I OFFSET $3 LIMIT 1) b',
                      target, time_column, v_lower_cond);
    WHEN 'range' THEN
        RETURN format('DELETE FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $3%3$s%4$s',
                      target, time_column, v_lower_cond,
                      CASE WHEN to_value THEN format(' AND %I OPERATOR(pg_catalog.<=) $2::%s', time_column, v_typ) ELSE '' END);
    WHEN 'skip_locked' THEN
        RETURN format(
            'WITH d AS (DELETE FROM %1$s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY('
            'SELECT ctid FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $2%3$s '
            'ORDER BY %2$I LIMIT $3 FOR UPDATE SKIP LOCKED)) AND %2$I OPERATOR(pg_catalog.<) $2 RETURNING %2$I) '
            'SELECT pg_catalog.count(*), pg_catalog.max(%2$I)::pg_catalog.text FROM d',
            target, time_column, v_lower_cond);
    WHEN 'exists' THEN
        RETURN format('SELECT EXISTS (SELECT FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $1)',
                      target, time_column);
    WHEN 'preview' THEN
        RETURN format('SELECT pg_catalog.count(*), pg_catalog.min(%2$I)::pg_catalog.timestamptz::pg_catalog.text, '
                      'pg_catalog.max(%2$I)::pg_catalog.timestamptz::pg_catalog.text '
                      'FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $1',
                      target, time_column);
    ELSE
        RAISE EXCEPTION 'unknown batch mode "%"',
                CASE WHEN length(mode) > 64 THEN left(mode, 64) || '...' ELSE mode END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The modes are bound, range, skip_locked, exists and preview.';
    END CASE;
END
$$;
REVOKE ALL ON FUNCTION dbops._purge_batch_sql(regclass, name, text, boolean, boolean) FROM PUBLIC;

-- Checks shared by add and alter; raises on what cannot work, NOTICEs on
-- what will work badly.  The relation: a plain or partitioned table, not
-- temporary (it would vanish with its session, and another session's cannot
-- be read), not a system catalog, not a partition or inheritance child of a
-- table with a policy nor the parent of one (their purges would overlap).
-- keep: positive, at most 1000 years (as extract(epoch) counts them), and
-- neither its years-and-months nor its days more than that on their own, so
-- that now() - keep (and the health check's slack on top) stays a valid
-- timestamp (retention_exec.c has the same rule for rows already stored).
-- batch_size: 1 to 10000000 (the largest dbops.purge_batch_max).
CREATE FUNCTION dbops._retention_validate(relation regclass, time_column name,
    keep interval, batch_size integer)
RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_kind "char";
    v_persistence "char";
    v_nsp name;
    v_typ oid;
    v_attnum smallint;
    v_fk record;
    v_other record;
BEGIN
    IF relation IS NULL OR time_column IS NULL OR keep IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, time_column, keep and batch_size must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Give the table, its date/time column and how long rows are kept, e.g. (''events'', ''created_at'', interval ''90 days''); batch_size defaults to 5000.';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname INTO v_kind, v_persistence, v_nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = relation;
    IF v_kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table',
                  HINT = 'It was dropped; name an existing table.';
    END IF;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to tables and partitioned tables (not views, materialized views, foreign tables or indexes).';
    END IF;
    IF v_persistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table', relation
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = CASE WHEN (SELECT c.relnamespace FROM pg_class c WHERE c.oid = relation) = pg_my_temp_schema()
                                THEN 'It disappears at the end of this session; its policy would outlive it.'
                                ELSE 'It belongs to another session: only that session can read it, and it disappears with it.' END,
                  HINT = 'Retention policies apply to regular and unlogged tables; delete old rows of a temporary table directly.';
    END IF;
    IF v_nsp IN ('pg_catalog', 'information_schema') THEN
        RAISE EXCEPTION '% is a system catalog', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to user tables; PostgreSQL maintains its catalogs itself.';
    END IF;
    IF keep <= interval '0' THEN
        RAISE EXCEPTION 'keep must be a positive interval, not %', keep
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'keep is how long rows are kept, e.g. interval ''90 days''.';
    END IF;
    IF NOT coalesce(extract(epoch FROM keep) <= 31557600000
                    AND abs(extract(year FROM keep) * 12 + extract(month FROM keep)) <= 12000
                    AND abs(extract(day FROM keep)) <= 365250, false) THEN
        RAISE EXCEPTION 'keep (%) is longer than 1000 years', keep
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'keep may be at most 1000 years (of 365.25 days), and neither its years and months nor its days more than that on their own, so that now() - keep is always a valid timestamp.',
                  HINT = 'Give a keep of at most 1000 years, e.g. interval ''10 years''; without a policy rows are kept for ever.';
    END IF;
    IF batch_size <= 0 OR batch_size > 10000000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 10000000, not %', batch_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'batch_size is the number of rows of the first batch (later ones adapt to dbops.purge_batch_target, at most dbops.purge_batch_max rows); the default is 5000.';
    END IF;
    SELECT a.atttypid, a.attnum INTO v_typ, v_attnum
      FROM pg_attribute a
     WHERE a.attrelid = relation AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, relation
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column rows are aged by.';
    END IF;
    IF v_typ NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not a date/time type',
                time_column, relation, format_type(v_typ, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;

    -- one policy per set of rows: the purge of a partitioned table (or of an
    -- inheritance parent) deletes from its partitions (children) too.  The
    -- tables above relation (up) and below it, each direction walked from
    -- relation on; a policy above is reported first
    WITH RECURSIVE related(relid, up) AS (
        SELECT i.inhparent, true FROM pg_inherits i WHERE i.inhrelid = relation
        UNION ALL
        SELECT i.inhrelid, false FROM pg_inherits i WHERE i.inhparent = relation
        UNION
        SELECT CASE WHEN r.up THEN i.inhparent ELSE i.inhrelid END, r.up
          FROM related r
          JOIN pg_inherits i ON r.relid = CASE WHEN r.up THEN i.inhrelid ELSE i.inhparent END)
    SELECT p.relation AS rel, r.up INTO v_other
      FROM dbops.retention_policies p JOIN related r ON p.relation = r.relid
     ORDER BY r.up DESC, p.policy_id LIMIT 1;
    IF FOUND AND v_other.up THEN
        RAISE EXCEPTION '% is % %, which has a retention policy', relation,
                CASE WHEN (SELECT c.relispartition FROM pg_class c WHERE c.oid = relation)
                     THEN 'a partition of' ELSE 'an inheritance child of' END, v_other.rel
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('The purge of %s already deletes the old rows of %s.', v_other.rel, relation),
                  HINT = format('Change that policy with dbops.alter_retention_policy(%L), or remove it with dbops.remove_retention_policy(%L) first.',
                                v_other.rel::text, v_other.rel::text);
    END IF;
    IF FOUND THEN
        RAISE EXCEPTION '% has % %, with a retention policy of its own', relation,
                CASE WHEN (SELECT c.relispartition FROM pg_class c WHERE c.oid = v_other.rel)
                     THEN 'a partition' ELSE 'an inheritance child' END, v_other.rel
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('The purge of %s would delete the old rows of %s too.', relation, v_other.rel),
                  HINT = format('Remove that policy with dbops.remove_retention_policy(%L) first; the policy on %s then covers it.',
                                v_other.rel::text, relation);
    END IF;

    -- a usable index: a valid btree index whose first column is time_column
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
                   WHERE i.indrelid = relation AND i.indkey[0] = v_attnum
                     AND am.amname = 'btree' AND i.indpred IS NULL
                     AND (i.indisvalid OR ic.relkind = 'I')) THEN
        RAISE NOTICE 'no index on %(%): every purge batch would scan the whole table', relation, time_column
            USING HINT = format('CREATE INDEX CONCURRENTLY ON %s (%I); dbops.purge() refuses to purge without it.',
                                relation, time_column);
    END IF;

    -- foreign keys that point at the table
    FOR v_fk IN
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
        IF NOT v_fk.indexed THEN
            RAISE NOTICE 'foreign key % on % references % and has no index on (%)',
                    v_fk.conname, v_fk.referencing, relation, v_fk.cols
                USING HINT = format('Each purged row makes PostgreSQL look for referencing rows: CREATE INDEX CONCURRENTLY ON %s (%s);',
                                    v_fk.referencing, v_fk.cols);
        END IF;
        IF v_fk.confdeltype IN ('c', 'n', 'd') THEN
            RAISE NOTICE 'foreign key % on % references % with ON DELETE %: purging % also changes %',
                    v_fk.conname, v_fk.referencing, relation,
                    CASE v_fk.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END,
                    relation, v_fk.referencing
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
    v_id integer;
    v_owner oid;
BEGIN
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may add its policy
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = add_retention_policy.relation;
    IF v_owner IS NOT NULL AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to add its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', v_owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', v_owner::regrole, v_owner::regrole);
    END IF;
    PERFORM dbops._retention_validate(relation, time_column, keep, batch_size);
    IF max_rows_per_run IS NOT NULL AND max_rows_per_run <= 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_rows_per_run caps the rows one CALL dbops.purge() deletes from the table, e.g. 1000000; leave it NULL for no cap.';
    END IF;
    IF max_run_time IS NOT NULL AND max_run_time <= interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (NULL for no cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_run_time caps how long one CALL dbops.purge() works on the table, e.g. interval ''1 hour''; NULL for no cap.';
    END IF;
    IF max_run_time IS NOT NULL AND NOT coalesce(extract(epoch FROM max_run_time) <= 31557600000
                           AND abs(extract(year FROM max_run_time) * 12 + extract(month FROM max_run_time)) <= 12000
                           AND abs(extract(day FROM max_run_time)) <= 365250, false) THEN
        RAISE EXCEPTION 'max_run_time (%) is longer than 1000 years', max_run_time
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_run_time may be at most 1000 years (of 365.25 days), and neither its years and months nor its days more than that on their own.',
                  HINT = 'Give a max_run_time such as interval ''1 hour'', or NULL for no cap.';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.retention_policies p WHERE p.relation = add_retention_policy.relation) THEN
        RAISE EXCEPTION 'relation % already has a retention policy', relation
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change it with dbops.alter_retention_policy() or drop it with dbops.remove_retention_policy().';
    END IF;
    INSERT INTO dbops.retention_policies (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, drop_partitions, enabled, created_by)
    VALUES (relation, time_column, keep, batch_size,
            max_rows_per_run, max_run_time, coalesce(drop_partitions, true), coalesce(enabled, true),
            current_user)
    RETURNING policy_id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean) IS
    'Add a retention policy (needs the privileges of the table''s owner): rows of relation older than now() - keep by time_column are purged by CALL dbops.purge()';

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
    v_p dbops.retention_policies;
    v_owner oid;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name the table whose policy to change; the policies are in dbops.retention_policies.';
    END IF;
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may alter its policy (the creator's,
    -- once the table is gone)
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = alter_retention_policy.relation;
    IF v_owner IS NOT NULL AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to alter its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', v_owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', v_owner::regrole, v_owner::regrole);
    END IF;
    IF v_owner IS NULL AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT FROM dbops.retention_policies r
                    WHERE r.relation = alter_retention_policy.relation
                      AND NOT (EXISTS (SELECT FROM pg_roles a WHERE a.rolname = r.created_by)
                               AND pg_has_role(r.created_by, 'USAGE'))) THEN
        RAISE EXCEPTION 'must have the privileges of the creator of the retention policy on relation % to alter it', relation::oid
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The table is gone: the role in created_by or a superuser may alter its policy.';
    END IF;
    SELECT * INTO v_p FROM dbops.retention_policies r WHERE r.relation = alter_retention_policy.relation FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    IF time_column IS NOT NULL OR keep IS NOT NULL OR batch_size IS NOT NULL THEN
        PERFORM dbops._retention_validate(relation, coalesce(time_column, v_p.time_column),
                                          coalesce(keep, v_p.keep), coalesce(batch_size, v_p.batch_size));
    END IF;
    IF max_rows_per_run < 0 THEN
        RAISE EXCEPTION 'max_rows_per_run must be positive (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_rows_per_run caps the rows one CALL dbops.purge() deletes from the table; 0 removes the cap, NULL leaves it as it is.';
    END IF;
    IF max_run_time < interval '0' THEN
        RAISE EXCEPTION 'max_run_time must be a positive interval (0 removes the cap)'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'max_run_time caps how long one CALL dbops.purge() works on the table; interval ''0'' removes the cap, NULL leaves it as it is.';
    END IF;
    IF max_run_time IS NOT NULL AND NOT coalesce(extract(epoch FROM max_run_time) <= 31557600000
                           AND abs(extract(year FROM max_run_time) * 12 + extract(month FROM max_run_time)) <= 12000
                           AND abs(extract(day FROM max_run_time)) <= 365250, false) THEN
        RAISE EXCEPTION 'max_run_time (%) is longer than 1000 years', max_run_time
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'max_run_time may be at most 1000 years (of 365.25 days), and neither its years and months nor its days more than that on their own.',
                  HINT = 'Give a max_run_time such as interval ''1 hour''; interval ''0'' removes the cap.';
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
           enabled = coalesce(alter_retention_policy.enabled, r.enabled),
           created_by = current_user
     WHERE r.policy_id = v_p.policy_id;
END
$$;
COMMENT ON FUNCTION dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean) IS
    'Change a retention policy (needs the privileges of the table''s owner; records the caller as created_by): NULL arguments leave a setting as it is; 0 removes a cap';

CREATE FUNCTION dbops.remove_retention_policy(relation regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_owner oid;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name the table whose policy to remove; the policies are in dbops.retention_policies.';
    END IF;
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may remove its policy (the creator's,
    -- once the table is gone)
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = remove_retention_policy.relation;
    IF v_owner IS NOT NULL AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to remove its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', v_owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', v_owner::regrole, v_owner::regrole);
    END IF;
    IF v_owner IS NULL AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT FROM dbops.retention_policies r
                    WHERE r.relation = remove_retention_policy.relation
                      AND NOT (EXISTS (SELECT FROM pg_roles a WHERE a.rolname = r.created_by)
                               AND pg_has_role(r.created_by, 'USAGE'))) THEN
        RAISE EXCEPTION 'must have the privileges of the creator of the retention policy on relation % to remove it', relation::oid
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The table is gone: the role in created_by or a superuser may remove its policy.';
    END IF;
    DELETE FROM dbops.retention_policies r WHERE r.relation = remove_retention_policy.relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % has no retention policy', relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT relation FROM dbops.retention_policies lists the tables that have one.';
    END IF;
END
$$;
COMMENT ON FUNCTION dbops.remove_retention_policy(regclass) IS
    'Remove the retention policy of relation (needs the privileges of the table''s owner; its purge_runs rows stay)';

-- Partitions of a partitioned policy table that lie wholly before cutoff:
-- direct range partitions on the time column whose upper bound is at or
-- below the cutoff, oldest first, never the last (non-default) partition.
CREATE FUNCTION dbops._purge_old_partitions(parent regclass, time_column name, cutoff timestamptz)
RETURNS TABLE (partition regclass, upper_bound timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_typ text;
    v_r record;
    v_upper text;
    v_old boolean;
BEGIN
    SELECT CASE a.atttypid WHEN 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 'pg_catalog.timestamptz'
                           WHEN 'pg_catalog.timestamp'::pg_catalog.regtype THEN 'pg_catalog.timestamp'
                           WHEN 'pg_catalog.date'::pg_catalog.regtype THEN 'pg_catalog.date' END
      INTO v_typ
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = parent AND pt.partstrat = 'r' AND pt.partnatts = 1
       AND a.attname = time_column;
    IF v_typ IS NULL THEN
        RETURN;             -- not range-partitioned on the time column (of a date/time type)
    END IF;
    FOR v_r IN
        SELECT c.oid::regclass AS part,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(.*\) TO \((.*)\)$'))[1] AS ub
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent
    LOOP
        CONTINUE WHEN v_r.ub IS NULL OR v_r.ub = 'MAXVALUE' OR v_r.ub = 'MINVALUE';
        v_upper := v_r.ub;
        IF left(v_upper, 1) = '''' THEN
            v_upper := replace(substr(v_upper, 2, length(v_upper) - 2), '''''', '''');
        END IF;
        -- compared in the column's type first: a bound beyond the range
        -- of timestamptz (a date far in the future) is never old
        EXECUTE format('SELECT %L::%s OPERATOR(pg_catalog.<=) $1', v_upper, v_typ)
           INTO v_old USING cutoff;
        IF v_old THEN
            EXECUTE format('SELECT %L::%s::pg_catalog.timestamptz', v_upper, v_typ) INTO upper_bound;
            partition := v_r.part;
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
    v_p record;
    v_chk record;
    v_x record;
    v_nparts integer;
    v_state text;
    v_msg text;
    v_relname text;
BEGIN
    IF purge_preview.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge_preview.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge_preview.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    FOR v_p IN SELECT r.* FROM dbops.retention_policies r
              WHERE (purge_preview.relation IS NULL AND r.enabled) OR r.relation = purge_preview.relation
              ORDER BY r.policy_id
    LOOP
        -- what the purge would refuse (limits out of range, a relation that
        -- is gone or no longer a table...) is not read
        v_chk := dbops._retention_problem(v_p.relation, v_p.created_by, v_p.time_column, v_p.keep, v_p.max_run_time);
        IF v_chk.status IS NOT NULL THEN
            RAISE NOTICE 'retention policy on % not previewed: %', v_p.relation, v_chk.message
                USING DETAIL = CASE v_chk.status WHEN 'skipped' THEN 'CALL dbops.purge() skips it too.'
                                               ELSE 'CALL dbops.purge() fails on it too.' END,
                      HINT = v_chk.hint;
            CONTINUE;
        END IF;
        v_relname := v_p.relation::text;     -- named before it may go
        target := v_p.relation;
        time_column := v_p.time_column;
        cutoff := now() - v_p.keep;
        -- read as the table's owner, after its lock; what changed while
        -- waiting for the lock (dropped, no longer a table...) is said so
        BEGIN
            v_x := dbops._purge_exec(v_p.policy_id, v_p.relation, 'preview', cutoff);
        EXCEPTION WHEN undefined_table OR wrong_object_type OR undefined_column
                       OR datatype_mismatch OR object_not_in_prerequisite_state THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            RAISE NOTICE 'retention policy on % not previewed: %', v_relname, v_msg
                USING DETAIL = format('SQLSTATE %s', v_state),
                      HINT = 'CALL dbops.purge() skips or fails on it too; see dbops.purge_runs after it.';
            CONTINUE;
        END;
        rows_to_delete := v_x.n;
        oldest := v_x.value::timestamptz;
        newest := v_x.value2::timestamptz;
        SELECT count(*) INTO v_nparts FROM dbops._purge_old_partitions(v_p.relation, v_p.time_column, cutoff);
        partitions_to_drop := CASE WHEN v_nparts > 0 AND v_nparts = (SELECT count(*) FROM pg_inherits i
                                       JOIN pg_class c ON c.oid = i.inhrelid
                                      WHERE i.inhparent = v_p.relation
                                        AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT')
                                   THEN v_nparts - 1 ELSE v_nparts END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION dbops.purge_preview(regclass) IS
    'What CALL dbops.purge() would delete now: rows older than the cutoff, the oldest and newest of them, partitions it would drop';

-- ---------------------------------------------------------------------------
-- CALL dbops.purge(), phase by phase.  Each phase function does one step
-- of the purge in the transaction dbops.purge() commits after it, and says
-- which phase comes next (st.phase).  All reading and deleting of a
-- policy's table is done by dbops._purge_exec(), as the table's owner.
-- ---------------------------------------------------------------------------

-- Refuses a state that is not at phase: every phase function starts with
-- it, so that a call from anywhere but dbops.purge() gets a clear error.
CREATE FUNCTION dbops._purge_require_phase(st dbops._purge_state, phase text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF st.phase IS DISTINCT FROM phase THEN
        RAISE EXCEPTION 'not a state of CALL dbops.purge()'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('dbops._purge_%s() is called by CALL dbops.purge() only; use that.', phase);
    END IF;
END
$$;

-- The end of the policy's run, with this outcome (status, SQLSTATE code,
-- message), which phase record writes next.
CREATE FUNCTION dbops._purge_stop(st dbops._purge_state, status text, code text, message text)
RETURNS dbops._purge_state
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

-- A pause of sleep_s seconds after the COMMIT (and the yield a batch asked
-- for in st.yield_ms), taken by phase pause; then the phase st is at again.
CREATE FUNCTION dbops._purge_wait(st dbops._purge_state, sleep_s double precision)
RETURNS dbops._purge_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.sleep_s := sleep_s;
    st.resume := st.phase;
    st.phase := 'pause';
    RETURN st;
END
$$;

-- Another attempt at a step that found its table or rows locked: after a
-- backoff of 0.1 s, 0.2 s, ... up to 5 s; after dbops.purge_lock_retries
-- attempts, the end of the run as partial (55P03), the message saying
-- reason and how many attempts were made.
CREATE FUNCTION dbops._purge_backoff(st dbops._purge_state, reason text)
RETURNS dbops._purge_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    st.retries := st.retries + 1;
    IF st.retries > st.lock_retries THEN
        RETURN dbops._purge_stop(st, 'partial', '55P03', format('%s after %s attempts', reason, st.retries));
    END IF;
    RETURN dbops._purge_wait(st, least(0.05 * 2 ^ st.retries, 5));
END
$$;

-- Whether a step on target failed (SQLSTATE code) because target, a
-- partition of the policy's table policy_rel, was dropped or detached by
-- someone else meanwhile, while policy_rel is still there.
CREATE FUNCTION dbops._purge_target_gone(policy_rel regclass, target regclass, code text)
RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT target OPERATOR(pg_catalog.<>) policy_rel
       AND code OPERATOR(pg_catalog.=) ANY ('{42P01,55000}'::pg_catalog.text[])
       AND EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) policy_rel)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(policy_rel) t
                        WHERE t.relid OPERATOR(pg_catalog.=) target)
$$;

-- Phase start, the first thing CALL dbops.purge() does: refuses dry_run
-- NULL, a standby and a transaction block (dbops._purge_begin(), which
-- also loads the settings; both allowed for a dry run) and a relation
-- without a policy.  caller_path is the caller's search_path, used only to
-- name tables the way the caller sees them.  Next: dry_run or policies,
-- still before the first COMMIT.
CREATE FUNCTION dbops._purge_start(relation regclass, dry_run boolean, caller_path text)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_st dbops._purge_state;
    v_set record;
BEGIN
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'CALL dbops.purge(dry_run => true) only reports what would be deleted; false (the default) purges.';
    END IF;
    v_st.caller_path := coalesce(caller_path, 'pg_catalog');
    -- refuses on a standby and in a transaction block; loads the settings
    v_set := dbops._purge_begin(dry_run);

    IF _purge_start.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = _purge_start.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', dbops._purge_relname(_purge_start.relation, v_st.caller_path)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;

    v_st.relation := _purge_start.relation;
    v_st.batch_target_ms := v_set.batch_target_ms;
    v_st.batch_max := v_set.batch_max;
    v_st.lock_timeout_ms := v_set.lock_timeout_ms;
    v_st.lock_retries := v_set.lock_retries;
    v_st.max_replica_lag_ms := v_set.max_replica_lag_ms;
    v_st.runs_keep_s := v_set.runs_keep_s;
    v_st.yield_factor := v_set.yield;
    v_st.sleep_s := 0;
    v_st.yield_ms := 0;
    v_st.phase := CASE WHEN dry_run THEN 'dry_run' ELSE 'policies' END;
    RETURN v_st;
END
$$;

-- Phase dry_run: a NOTICE per policy with what the purge would delete now
-- (dbops.purge_preview()); nothing is written.  Next: done.
CREATE FUNCTION dbops._purge_dry_run(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pv record;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'dry_run');
    FOR v_pv IN SELECT * FROM dbops.purge_preview(st.relation) LOOP
        RAISE NOTICE '%: % rows older than % would be deleted (oldest %, newest %)%',
            dbops._purge_relname(v_pv.target, st.caller_path), v_pv.rows_to_delete, v_pv.cutoff, v_pv.oldest, v_pv.newest,
            CASE WHEN v_pv.partitions_to_drop > 0
                 THEN format(', %s of them by dropping %s partitions', v_pv.rows_to_delete, v_pv.partitions_to_drop)
                 ELSE '' END;
    END LOOP;
    st.phase := 'done';
    RETURN st;
END
$$;

-- Phase policies, the rest of the first transaction: runs whose backend is
-- gone did not finish (marked interrupted), purge_runs' own retention
-- (dbops.purge_runs_keep), and the policies to purge, in order: the one on
-- st.relation, or every enabled one.  Next: policy.
CREATE FUNCTION dbops._purge_policies(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'policies');
    st.run_start := clock_timestamp();

    -- runs whose backend is gone did not finish: say so
    UPDATE dbops.purge_runs r
       SET status = 'interrupted', finished = coalesce(r.finished, st.run_start),
           message = CASE WHEN r.pid = pg_backend_pid()
                          THEN 'an earlier purge in this session stopped during the run (error or cancel)'
                          ELSE format('backend %s ended during the run (crash, kill or disconnect)', r.pid) END
     WHERE r.status = 'running'
       AND (r.pid = pg_backend_pid()
            OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                            WHERE a.pid = r.pid
                              AND (a.backend_start IS NULL OR r.backend_start IS NULL
                                   OR a.backend_start = r.backend_start)));
    -- purge_runs' own retention
    DELETE FROM dbops.purge_runs r
     WHERE r.finished < st.run_start - make_interval(secs => st.runs_keep_s);

    SELECT array_agg(r.policy_id ORDER BY r.policy_id) INTO st.ids
      FROM dbops.retention_policies r
     WHERE (st.relation IS NULL AND r.enabled) OR r.relation = st.relation;
    st.idx := 0;
    st.failures := '{}';
    st.nskipped := 0;
    st.phase := 'policy';
    RETURN st;
END
$$;

-- Phase policy: the next policy whose lock this session gets (one that
-- another session is purging is skipped with a NOTICE, one removed
-- meanwhile passed over), its runs still marked running marked
-- interrupted, and its run row, committed before any work.  Next: record
-- for a policy that must be skipped or cannot work (dbops._retention_problem(),
-- or no usable index), partition for a partitioned table, else target; no
-- policy left: finish.
CREATE FUNCTION dbops._purge_policy(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p dbops.retention_policies;
    v_chk record;
    v_start timestamptz;
    v_nparts integer;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'policy');
    LOOP
        st.idx := st.idx + 1;
        IF st.idx > coalesce(cardinality(st.ids), 0) THEN
            st.phase := 'finish';
            RETURN st;
        END IF;
        SELECT * INTO v_p FROM dbops.retention_policies r WHERE r.policy_id = st.ids[st.idx];
        CONTINUE WHEN NOT FOUND;    -- removed meanwhile
        st.relname := dbops._purge_relname(v_p.relation, st.caller_path);
        EXIT WHEN dbops._purge_lock(v_p.policy_id);
        RAISE NOTICE 'another session is already purging %; skipped', st.relname
            USING HINT = 'Its progress is in dbops.purge_runs (status running).';
    END LOOP;

    -- we hold the policy's lock: a run still marked running is not
    UPDATE dbops.purge_runs r
       SET status = 'interrupted', finished = coalesce(r.finished, clock_timestamp()),
           message = coalesce(r.message, format('backend %s stopped during the run (error, cancel or crash)', r.pid))
     WHERE r.policy_id = v_p.policy_id AND r.status = 'running';

    -- why the purge must not or cannot act on it: limits out of
    -- range (checked first, status skipped, 22023: then no cutoff
    -- is computed), the table is gone, no longer a table,
    -- temporary, its policy's creator lost the owner's rights
    v_chk := dbops._retention_problem(v_p.relation, v_p.created_by, v_p.time_column, v_p.keep, v_p.max_run_time);

    v_start := clock_timestamp();
    st.policy_id := v_p.policy_id;
    st.policy_rel := v_p.relation;
    st.time_column := v_p.time_column;
    st.batch_size := v_p.batch_size;
    st.max_rows_per_run := v_p.max_rows_per_run;
    st.max_run_time := v_p.max_run_time;
    st.cutoff := NULL;
    st.deadline := NULL;
    IF v_chk.sqlstate IS DISTINCT FROM '22023' THEN
        st.cutoff := st.run_start - v_p.keep;
        st.deadline := CASE WHEN v_p.max_run_time IS NOT NULL THEN v_start + v_p.max_run_time END;
    END IF;
    st.total := 0;
    st.retries := 0;
    st.status := NULL;
    st.sqlstate := NULL;
    st.message := NULL;
    st.parts := NULL;
    st.part_idx := 1;
    st.targets := NULL;
    st.target_idx := 0;
    INSERT INTO dbops.purge_runs (policy_id, relation, cutoff, started, backend_start)
    VALUES (v_p.policy_id, st.relname, st.cutoff, v_start,
            (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()))
    RETURNING run_id INTO st.run;

    -- what must not be done is skipped, what cannot work fails, with
    -- the reason (v_chk above), or: it has no index
    SELECT c.relkind INTO st.kind FROM pg_class c WHERE c.oid = v_p.relation;
    IF v_chk.status IS NOT NULL THEN
        RETURN dbops._purge_stop(st, v_chk.status, v_chk.sqlstate, v_chk.message);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    JOIN pg_am am ON am.oid = ic.relam
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                   WHERE i.indrelid = v_p.relation AND a.attname = v_p.time_column
                     AND am.amname = 'btree' AND i.indpred IS NULL
                     AND (i.indisvalid OR ic.relkind = 'I')) THEN
        RETURN dbops._purge_stop(st, 'failed', '55000',
                                 format('no index on %s (%I): batches would scan the whole table', st.relname, v_p.time_column));
    END IF;
    IF st.kind IS DISTINCT FROM 'p' THEN
        st.phase := 'target';
        RETURN st;
    END IF;

    -- partitions wholly older than the cutoff, never the last one
    SELECT array_agg(o.partition ORDER BY o.upper_bound) INTO st.parts
      FROM dbops._purge_old_partitions(v_p.relation, v_p.time_column, st.cutoff) o;
    SELECT count(*) INTO v_nparts
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = v_p.relation AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
    IF cardinality(st.parts) >= v_nparts THEN
        st.parts := st.parts[1:v_nparts - 1];
    END IF;
    st.phase := 'partition';
    RETURN st;
END
$$;

-- Phase partition: one old partition (phase policy listed them, oldest
-- first) detached, and dropped unless the policy says drop_partitions =>
-- false; one gone meanwhile is passed over, a lock not granted in time
-- tried again after a backoff.  Next: partition again; target when none
-- is left; record at max_run_time or on an error.
CREATE FUNCTION dbops._purge_partition(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target regclass := st.parts[st.part_idx];
    v_x record;
    v_locked boolean := false;
    v_failed boolean := false;
    v_t0 timestamptz;
    v_ms numeric;
    v_state text;
    v_msg text;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'partition');
    IF st.part_idx > coalesce(cardinality(st.parts), 0) THEN
        st.phase := 'target';
        RETURN st;
    END IF;
    IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
        RETURN dbops._purge_stop(st, 'partial', NULL, 'stopped at max_run_time');
    END IF;
    v_t0 := clock_timestamp();
    BEGIN
        v_x := dbops._purge_exec(st.policy_id, v_target, 'detach', st.cutoff);
    EXCEPTION
        WHEN lock_not_available THEN
            v_locked := true;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            v_failed := true;
    END;
    IF v_failed AND dbops._purge_target_gone(st.policy_rel, v_target, v_state) THEN
        -- dropped or detached by someone else meanwhile: gone anyway
        RAISE NOTICE '%: %; going on without it', st.relname, v_msg;
        st.part_idx := st.part_idx + 1;
        RETURN st;
    END IF;
    IF v_failed THEN
        RETURN dbops._purge_stop(st, 'failed', v_state,
                                 format('detaching partition %s: %s', dbops._purge_relname(v_target, st.caller_path), v_msg));
    END IF;
    v_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;
    IF v_locked THEN
        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
        RETURN dbops._purge_backoff(st, format('could not lock %s to detach %s within lock_timeout',
                                               st.relname, dbops._purge_relname(v_target, st.caller_path)));
    END IF;
    st.retries := 0;
    UPDATE dbops.purge_runs r
       SET partitions_dropped = r.partitions_dropped + v_x.n,
           partitions_detached = r.partitions_detached + 1 - v_x.n,
           longest_batch_ms = greatest(r.longest_batch_ms, v_ms)
     WHERE r.run_id = st.run;
    st.part_idx := st.part_idx + 1;
    RETURN st;
END
$$;

-- Phase target: the next table whose old rows go in batches: the policy's
-- table, or each leaf partition of it in turn (listed on the first call,
-- once the old partitions are gone), with the first batch's size.  Next:
-- batch; record after the last table.
CREATE FUNCTION dbops._purge_target(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'target');
    IF st.targets IS NULL THEN
        IF st.kind = 'p' THEN
            SELECT coalesce(array_agg(t.relid ORDER BY t.relid), '{}') INTO st.targets
              FROM pg_partition_tree(st.policy_rel) t
              JOIN pg_class c ON c.oid = t.relid
             WHERE t.isleaf AND c.relkind = 'r';
        ELSE
            st.targets := ARRAY[st.policy_rel];
        END IF;
        st.size := least(st.batch_size, st.batch_max);
        st.target_idx := 0;
    END IF;
    st.target_idx := st.target_idx + 1;
    IF st.target_idx > cardinality(st.targets) THEN
        st.phase := 'record';
        RETURN st;
    END IF;
    SELECT a.atttypid = 'pg_catalog.date'::pg_catalog.regtype INTO st.is_date
      FROM pg_attribute a
     WHERE a.attrelid = st.targets[st.target_idx] AND a.attname = st.time_column;
    st.lower_value := NULL;
    st.retries := 0;
    st.skipped_any := false;
    st.phase := 'batch';
    RETURN st;
END
$$;

-- Phase batch: one batch of the current table.  It stops first at a cap
-- (max_rows_per_run, max_run_time) or for the replica lag guard; else it
-- finds the time value lim rows on and deletes the range up to it (both
-- through the index); when many rows share that value, for a date column,
-- or when a row lock is not granted in time, it deletes lim rows skipping
-- locked ones.  Each statement runs as the table's owner, under
-- dbops.purge_lock_timeout.  The batch's rows and time go into the run row
-- in the same transaction, and the next batch is sized toward
-- dbops.purge_batch_target.  Next: batch again (after yielding to busy
-- sessions, or a backoff); target at the end of the table; lag; record at
-- a cap or on an error.
CREATE FUNCTION dbops._purge_batch(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_target regclass := st.targets[st.target_idx];
    v_x record;
    v_n bigint := 0;
    v_maxval text;
    v_upper text;
    v_lim integer;
    v_use_skip boolean := st.is_date;
    v_locked boolean := false;
    v_failed boolean := false;
    v_t0 timestamptz;
    v_ms numeric;
    v_state text;
    v_msg text;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'batch');
    IF st.max_rows_per_run IS NOT NULL AND st.total >= st.max_rows_per_run THEN
        RETURN dbops._purge_stop(st, 'partial', NULL, format('stopped at max_rows_per_run (%s)', st.max_rows_per_run));
    END IF;
    IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
        RETURN dbops._purge_stop(st, 'partial', NULL, format('stopped at max_run_time (%s)', st.max_run_time));
    END IF;
    IF st.max_replica_lag_ms > 0 THEN
        st.lag := dbops.replica_replay_lag_ms();
        IF st.lag > st.max_replica_lag_ms THEN
            st.pause_start := clock_timestamp();
            st.phase := 'lag';
            RETURN dbops._purge_wait(st, 0.5);
        END IF;
    END IF;

    v_lim := st.size;
    IF st.max_rows_per_run IS NOT NULL THEN
        v_lim := least(v_lim, st.max_rows_per_run - st.total);
    END IF;
    v_t0 := clock_timestamp();
    IF NOT v_use_skip THEN
        BEGIN
            v_x := dbops._purge_exec(st.policy_id, v_target, 'bound', st.cutoff, st.lower_value, NULL, v_lim - 1);
            v_upper := v_x.value;
            IF v_upper IS NOT NULL AND v_x.n > v_lim / 4 THEN
                -- many rows share the bound: a range would take
                -- them all, so count rows instead
                v_use_skip := true;
            ELSE
                v_x := dbops._purge_exec(st.policy_id, v_target, 'range', st.cutoff, st.lower_value, v_upper);
                v_n := v_x.n;
                v_maxval := v_upper;
            END IF;
        EXCEPTION
            WHEN lock_not_available THEN
                v_use_skip := true;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                v_failed := true;
        END;
    END IF;
    IF v_use_skip AND NOT v_failed THEN
        BEGIN
            v_x := dbops._purge_exec(st.policy_id, v_target, 'skip_locked', st.cutoff, st.lower_value, NULL, v_lim);
            v_n := v_x.n;
            v_maxval := v_x.value;
        EXCEPTION
            WHEN lock_not_available THEN
                v_locked := true;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                v_failed := true;
        END;
    END IF;
    IF v_failed AND dbops._purge_target_gone(st.policy_rel, v_target, v_state) THEN
        -- a partition dropped or detached meanwhile: the next one
        RAISE NOTICE '%: %; going on without it', st.relname, v_msg;
        st.phase := 'target';
        RETURN st;
    END IF;
    IF v_failed THEN
        RETURN dbops._purge_stop(st, 'failed', v_state, v_msg);
    END IF;
    v_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;

    IF v_locked THEN
        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
        RETURN dbops._purge_backoff(st, format('could not lock %s within lock_timeout (%s ms)',
                                               dbops._purge_relname(v_target, st.caller_path), st.lock_timeout_ms));
    END IF;

    IF v_use_skip AND v_n < v_lim THEN
        st.skipped_any := true;
    END IF;
    IF v_n > 0 THEN
        st.total := st.total + v_n;
        UPDATE dbops.purge_runs r
           SET rows_deleted = r.rows_deleted + v_n, batches = r.batches + 1,
               longest_batch_ms = greatest(r.longest_batch_ms, v_ms)
         WHERE r.run_id = st.run;
        IF st.yield_factor > 0 THEN
            st.yield_ms := v_ms;    -- phase pause yields, after the COMMIT
        END IF;
    END IF;

    IF (v_use_skip AND v_n >= v_lim) OR (NOT v_use_skip AND v_upper IS NOT NULL) THEN
        -- a full batch: continue from its highest value, sized
        -- toward the target batch time
        st.retries := 0;
        st.lower_value := v_maxval;
        IF v_lim = st.size THEN
            st.size := least(st.batch_max, greatest(10,
                           round(st.size * least(2.0, greatest(0.5, st.batch_target_ms / greatest(v_ms, 1))))::integer));
        END IF;
    ELSIF st.lower_value IS NOT NULL THEN
        -- end of the range: done, unless batches skipped locked
        -- rows; then sweep once more from the start
        IF st.skipped_any THEN
            st.lower_value := NULL;
            st.skipped_any := false;
        ELSE
            st.phase := 'target';
        END IF;
    ELSIF v_n = 0 THEN
        -- nothing deleted from the start: done, unless rows remain
        -- that other transactions hold locked
        v_x := dbops._purge_exec(st.policy_id, v_target, 'exists', st.cutoff);
        IF v_x.n = 0 THEN
            st.phase := 'target';
        ELSE
            st := dbops._purge_backoff(st, format('rows of %s older than the cutoff are locked by other transactions; gave up',
                                                  dbops._purge_relname(v_target, st.caller_path)));
            IF st.phase = 'pause' THEN
                UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
            END IF;
            RETURN st;
        END IF;
    END IF;
    -- (rows deleted from the start: again from the start)
    IF st.yield_ms > 0 THEN
        RETURN dbops._purge_wait(st, 0);
    END IF;
    RETURN st;
END
$$;

-- Phase lag, the replica lag guard's wait (phase batch saw the standbys'
-- replay lag above dbops.purge_max_replica_lag): one short look after each
-- pause of 0.5 s, until the lag is back under the limit or max_run_time is
-- reached; the wait is added to the run's paused_ms.  Next: batch, or
-- record at max_run_time.
CREATE FUNCTION dbops._purge_lag(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'lag');
    st.lag := dbops.replica_replay_lag_ms();
    IF st.lag > st.max_replica_lag_ms
       AND (st.deadline IS NULL OR clock_timestamp() < st.deadline) THEN
        RETURN dbops._purge_wait(st, 0.5);
    END IF;
    UPDATE dbops.purge_runs r
       SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - st.pause_start) * 1000)::bigint
     WHERE r.run_id = st.run;
    IF st.lag > st.max_replica_lag_ms THEN
        RETURN dbops._purge_stop(st, 'partial', NULL,
                                 format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag',
                                        st.max_run_time, round(st.lag::numeric)));
    END IF;
    st.phase := 'batch';
    RETURN st;
END
$$;

-- Phase pause, what the phase before asked for (dbops._purge_wait()), so
-- that every sleep follows a COMMIT: a backoff or the lag guard's wait
-- (st.sleep_s), and after a batch, while other client sessions are running
-- a query or are in a transaction, yielding to them for the batch's time
-- times dbops.purge_yield (st.yield_ms; added to the run's paused_ms).
-- Next: the phase that asked (st.resume).
CREATE FUNCTION dbops._purge_pause(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'pause');
    IF st.sleep_s > 0 THEN
        PERFORM pg_sleep(st.sleep_s);
        st.sleep_s := 0;
    END IF;
    IF st.yield_ms > 0 THEN
        -- production first
        IF dbops._purge_busy_sessions() > 0 THEN
            PERFORM pg_sleep(st.yield_ms * st.yield_factor / 1000.0);
            UPDATE dbops.purge_runs r
               SET paused_ms = r.paused_ms + round(st.yield_ms * st.yield_factor)::bigint
             WHERE r.run_id = st.run;
        END IF;
        st.yield_ms := 0;
    END IF;
    st.phase := st.resume;
    RETURN st;
END
$$;

-- Phase record: the run's outcome in its purge_runs row (done, unless a
-- phase stopped it otherwise); a message quoted from an error (the table
-- owner's trigger's, say) is kept to 500 characters.  Committed before the
-- policy's lock goes.  Next: release.
CREATE FUNCTION dbops._purge_record(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'record');
    UPDATE dbops.purge_runs r
       SET status = coalesce(st.status, 'done'), finished = clock_timestamp(),
           sqlstate = st.sqlstate,
           message = CASE WHEN length(st.message) > 500 THEN left(st.message, 500) || '...'
                          ELSE st.message END
     WHERE r.run_id = st.run;
    st.phase := 'release';
    RETURN st;
END
$$;

-- Phase release: the policy's lock goes, and a NOTICE (done, partial) or
-- a WARNING with a hint (failed, skipped) says how its run went; a failed
-- or skipped policy is kept for the CALL's error.  Next: policy.
CREATE FUNCTION dbops._purge_release(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pv record;
BEGIN
    PERFORM dbops._purge_require_phase(st, 'release');
    PERFORM dbops._purge_unlock(st.policy_id);
    SELECT * INTO v_pv FROM dbops.purge_runs r WHERE r.run_id = st.run;
    IF v_pv.status IN ('failed', 'skipped') THEN
        st.failures := st.failures || format('%s: %s', st.relname, v_pv.message);
        st.first_state := coalesce(st.first_state, v_pv.sqlstate);
        IF v_pv.status = 'skipped' THEN
            st.nskipped := st.nskipped + 1;
        END IF;
        RAISE WARNING 'purge of % %: %', st.relname, v_pv.status, v_pv.message
            USING DETAIL = format('SQLSTATE %s; see dbops.purge_runs run_id %s', v_pv.sqlstate, st.run),
                  HINT = CASE WHEN v_pv.status = 'skipped' AND v_pv.sqlstate = '42501'
                              THEN 'The table''s owner (or a member of the owning role) adopts the policy with dbops.alter_retention_policy(), or removes it with dbops.remove_retention_policy().'
                              WHEN v_pv.status = 'skipped' AND v_pv.sqlstate = '22023'
                              THEN 'Give the policy limits in range with dbops.alter_retention_policy(): keep and max_run_time at most 1000 years.'
                              WHEN v_pv.status = 'skipped'
                              THEN 'The policy no longer names a table the purge may touch: remove it with dbops.remove_retention_policy().'
                              WHEN v_pv.sqlstate = '55000' THEN format('CREATE INDEX CONCURRENTLY ON %s (%I);', st.relname, st.time_column)
                              WHEN v_pv.sqlstate IN ('42703', '42804')
                              THEN 'Point the policy at a timestamptz, timestamp or date column with dbops.alter_retention_policy(relation, time_column => ...), or remove it.'

                              WHEN v_pv.sqlstate = '42P01' THEN 'Remove the policy with dbops.remove_retention_policy().'
                              ELSE 'Fix the cause and CALL dbops.purge() again; committed batches stay deleted.' END;
    ELSE
        RAISE NOTICE '%: % rows deleted in % batches (longest % ms)%; %',
            st.relname, v_pv.rows_deleted, v_pv.batches, round(v_pv.longest_batch_ms),
            CASE WHEN v_pv.partitions_dropped + v_pv.partitions_detached > 0
                 THEN format(', %s partitions dropped, %s detached', v_pv.partitions_dropped, v_pv.partitions_detached)
                 ELSE '' END,
            v_pv.status || coalesce(': ' || v_pv.message, '');
    END IF;
    st.phase := 'policy';
    RETURN st;
END
$$;

-- Phase finish, after the last policy: committed work stays; a failed or
-- skipped policy still fails the CALL (and a scheduled job) so that it is
-- noticed.  Next: done.
CREATE FUNCTION dbops._purge_finish(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._purge_require_phase(st, 'finish');
    IF cardinality(st.failures) > 0 THEN
        RAISE EXCEPTION 'purge % for % polic%: %',
                CASE WHEN st.nskipped = 0 THEN 'failed'
                     WHEN st.nskipped = cardinality(st.failures) THEN 'skipped'
                     ELSE 'failed or skipped' END,
                cardinality(st.failures),
                CASE WHEN cardinality(st.failures) = 1 THEN 'y' ELSE 'ies' END,
                array_to_string(st.failures, '; ')
            USING ERRCODE = coalesce(st.first_state, 'P0001'),
                  HINT = 'dbops.purge_runs has the details; batches committed before the failure stay deleted.';
    END IF;
    st.phase := 'done';
    RETURN st;
END
$$;

-- When a phase failed or was cancelled (dbops.purge() caught its error,
-- SQLSTATE code): the run st was in, if still running, is recorded as
-- failed or, for a cancel or statement_timeout (57014), interrupted, to be
-- committed before the error is raised again.  Returns the hint that error
-- then carries: its own (hint), or what purge_runs now says.
CREATE FUNCTION dbops._purge_abort(st dbops._purge_state, code text, message text, hint text)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE dbops.purge_runs r
       SET status = CASE WHEN code = '57014' THEN 'interrupted' ELSE 'failed' END,
           finished = clock_timestamp(), sqlstate = code,
           message = CASE WHEN length(_purge_abort.message) > 500 THEN left(_purge_abort.message, 500) || '...'
                          ELSE _purge_abort.message END
     WHERE r.run_id = st.run AND r.status = 'running';
    RETURN CASE WHEN code = '57014'
                THEN 'The run is recorded as interrupted in dbops.purge_runs; its committed batches stay deleted. CALL dbops.purge() again to go on.'
                WHEN hint <> '' THEN hint
                ELSE 'The run is recorded as failed in dbops.purge_runs; its committed batches stay deleted.' END;
END
$$;

-- A procedure, because it commits between phases; for the same reason it
-- cannot carry a SET search_path clause.  So its own statements depend on
-- no search_path: schema-qualified calls of dbops functions (whose
-- search_path is pinned) with arguments of their exact types, variables of
-- schema-qualified types, schema-qualified operators, and COMMIT.  It runs
-- the phases, each in a transaction of its own (the first three in the
-- first one):
--   start        guards and settings
--   dry_run      dry_run => true: NOTICEs of what would be deleted; or
--   policies     the policies to purge
--   policy       the next policy: its lock and its run row
--   partition    one old partition detached (and dropped)
--   target       the next table to delete rows from
--   batch        one batch of rows
--   lag          waiting while a standby lags
--   pause        a backoff, or yielding to busy sessions
--   record       the run's outcome
--   release      the policy's lock, its NOTICE or WARNING
--   finish       the CALL's error if a policy failed or was skipped
-- A phase that fails or is cancelled (the user's cancel, statement_timeout)
-- is caught, its run recorded as failed or interrupted (dbops._purge_abort())
-- and committed, and the error raised again: the CALL ends with it,
-- purge_runs tells the truth, and the session lock on the policy goes with
-- the transaction the error ends.
CREATE PROCEDURE dbops.purge(relation regclass DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    v_st dbops._purge_state;
    v_caught pg_catalog.bool := false;
    v_state pg_catalog.text;
    v_msg pg_catalog.text;
    v_detail pg_catalog.text;
    v_hint pg_catalog.text;
BEGIN
    v_st := dbops._purge_start(purge.relation, purge.dry_run, pg_catalog.current_setting('search_path'));
    IF purge.dry_run THEN
        v_st := dbops._purge_dry_run(v_st);
    ELSE
        v_st := dbops._purge_policies(v_st);
    END IF;
    WHILE v_st.phase OPERATOR(pg_catalog.<>) 'done' LOOP
        COMMIT;
        BEGIN
            CASE
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'policy' THEN v_st := dbops._purge_policy(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'partition' THEN v_st := dbops._purge_partition(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'target' THEN v_st := dbops._purge_target(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'batch' THEN v_st := dbops._purge_batch(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'lag' THEN v_st := dbops._purge_lag(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'pause' THEN v_st := dbops._purge_pause(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'record' THEN v_st := dbops._purge_record(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'release' THEN v_st := dbops._purge_release(v_st);
            WHEN v_st.phase OPERATOR(pg_catalog.=) 'finish' THEN v_st := dbops._purge_finish(v_st);
            END CASE;
        EXCEPTION WHEN query_canceled OR OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
            v_caught := true;
        END;
        IF v_caught THEN
            v_hint := dbops._purge_abort(v_st, v_state, v_msg, v_hint);
            COMMIT;
            IF v_detail IS NULL OR v_detail OPERATOR(pg_catalog.=) '' THEN
                RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, HINT = v_hint;
            END IF;
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg, DETAIL = v_detail, HINT = v_hint;
        END IF;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE dbops.purge(regclass, boolean) IS
    'Purge rows older than their policy''s keep, in small committed batches; dry_run only reports';

REVOKE ALL ON FUNCTION dbops._purge_require_phase(dbops._purge_state, text),
    dbops._purge_stop(dbops._purge_state, text, text, text),
    dbops._purge_wait(dbops._purge_state, double precision),
    dbops._purge_backoff(dbops._purge_state, text),
    dbops._purge_target_gone(regclass, regclass, text),
    dbops._purge_start(regclass, boolean, text),
    dbops._purge_dry_run(dbops._purge_state),
    dbops._purge_policies(dbops._purge_state),
    dbops._purge_policy(dbops._purge_state),
    dbops._purge_partition(dbops._purge_state),
    dbops._purge_target(dbops._purge_state),
    dbops._purge_batch(dbops._purge_state),
    dbops._purge_lag(dbops._purge_state),
    dbops._purge_pause(dbops._purge_state),
    dbops._purge_record(dbops._purge_state),
    dbops._purge_release(dbops._purge_state),
    dbops._purge_finish(dbops._purge_state),
    dbops._purge_abort(dbops._purge_state, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean),
    dbops.remove_retention_policy(regclass),
    dbops.purge_preview(regclass)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE dbops.purge(regclass, boolean) FROM PUBLIC;
