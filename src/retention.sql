
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

-- What CALL dbops.purge() carries from one step to the next (see
-- dbops._purge_step()).
CREATE TYPE dbops._purge_state AS (
    done                boolean,
    phase               text,
    sleep_s             double precision,
    yield_ms            numeric,
    caller_path         text,
    batch_target_ms     integer,
    batch_max           integer,
    lock_timeout_ms     integer,
    lock_retries        integer,
    max_replica_lag_ms  integer,
    yield_factor        double precision,
    run_start           timestamptz,
    ids                 integer[],
    idx                 integer,
    failures            text[],
    first_state         text,
    policy_id           integer,
    policy_rel          regclass,
    relname             text,
    time_column         name,
    batch_size          integer,
    max_rows_per_run    bigint,
    max_run_time        interval,
    drop_partitions     boolean,
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
    pause_start         timestamptz,
    nskipped            integer
);
COMMENT ON TYPE dbops._purge_state IS
    'Internal: the state CALL dbops.purge() passes from one dbops._purge_step() to the next';

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
    typid oid;
    typ text;
    lower_cond text;
BEGIN
    SELECT a.atttypid INTO typid
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = time_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF typid IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', time_column, target
            USING ERRCODE = 'undefined_column',
                  HINT = 'time_column names the date/time column of the policy''s table.';
    END IF;
    typ := CASE typid WHEN 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 'pg_catalog.timestamptz'
                      WHEN 'pg_catalog.timestamp'::pg_catalog.regtype THEN 'pg_catalog.timestamp'
                      WHEN 'pg_catalog.date'::pg_catalog.regtype THEN 'pg_catalog.date' END;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % is of type %, not timestamptz, timestamp or date',
                time_column, target, format_type(typid, NULL)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'time_column must be of type timestamptz, timestamp or date.';
    END IF;
    lower_cond := CASE WHEN from_value THEN format(' AND %I OPERATOR(pg_catalog.>=) $1::%s', time_column, typ) ELSE '' END;
    CASE mode
    WHEN 'bound' THEN
        RETURN format('SELECT b.bound::pg_catalog.text, (SELECT pg_catalog.count(*) FROM (SELECT FROM %1$s WHERE %2$I OPERATOR(pg_catalog.=) b.bound LIMIT $3) t) '
                      'FROM (SELECT %2$I AS bound FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $2%3$s ORDER BY %2$I OFFSET $3 LIMIT 1) b',
                      target, time_column, lower_cond);
    WHEN 'range' THEN
        RETURN format('DELETE FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $3%3$s%4$s',
                      target, time_column, lower_cond,
                      CASE WHEN to_value THEN format(' AND %I OPERATOR(pg_catalog.<=) $2::%s', time_column, typ) ELSE '' END);
    WHEN 'skip_locked' THEN
        RETURN format(
            'WITH d AS (DELETE FROM %1$s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY('
            'SELECT ctid FROM %1$s WHERE %2$I OPERATOR(pg_catalog.<) $2%3$s '
            'ORDER BY %2$I LIMIT $3 FOR UPDATE SKIP LOCKED)) AND %2$I OPERATOR(pg_catalog.<) $2 RETURNING %2$I) '
            'SELECT pg_catalog.count(*), pg_catalog.max(%2$I)::pg_catalog.text FROM d',
            target, time_column, lower_cond);
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
    kind "char";
    persistence "char";
    nsp name;
    typ oid;
    attnum smallint;
    fk record;
    other record;
BEGIN
    IF relation IS NULL OR time_column IS NULL OR keep IS NULL OR batch_size IS NULL THEN
        RAISE EXCEPTION 'relation, time_column, keep and batch_size must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Give the table, its date/time column and how long rows are kept, e.g. (''events'', ''created_at'', interval ''90 days''); batch_size defaults to 5000.';
    END IF;
    SELECT c.relkind, c.relpersistence, n.nspname INTO kind, persistence, nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = relation;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', relation::oid
            USING ERRCODE = 'undefined_table',
                  HINT = 'It was dropped; name an existing table.';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', relation
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Retention policies apply to tables and partitioned tables (not views, materialized views, foreign tables or indexes).';
    END IF;
    IF persistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table', relation
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = CASE WHEN (SELECT c.relnamespace FROM pg_class c WHERE c.oid = relation) = pg_my_temp_schema()
                                THEN 'It disappears at the end of this session; its policy would outlive it.'
                                ELSE 'It belongs to another session: only that session can read it, and it disappears with it.' END,
                  HINT = 'Retention policies apply to regular and unlogged tables; delete old rows of a temporary table directly.';
    END IF;
    IF nsp IN ('pg_catalog', 'information_schema') THEN
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

    -- one policy per set of rows: the purge of a partitioned table (or of an
    -- inheritance parent) deletes from its partitions (children) too
    WITH RECURSIVE up(relid) AS (
        SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = relation
        UNION
        SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.relid)
    SELECT p.relation AS rel INTO other
      FROM dbops.retention_policies p JOIN up ON p.relation = up.relid
     ORDER BY p.policy_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is % %, which has a retention policy', relation,
                CASE WHEN (SELECT c.relispartition FROM pg_class c WHERE c.oid = relation)
                     THEN 'a partition of' ELSE 'an inheritance child of' END, other.rel
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('The purge of %s already deletes the old rows of %s.', other.rel, relation),
                  HINT = format('Change that policy with dbops.alter_retention_policy(%L), or remove it with dbops.remove_retention_policy(%L) first.',
                                other.rel::text, other.rel::text);
    END IF;
    WITH RECURSIVE down(relid) AS (
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = relation
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN down ON i.inhparent = down.relid)
    SELECT p.relation AS rel INTO other
      FROM dbops.retention_policies p JOIN down ON p.relation = down.relid
     ORDER BY p.policy_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% has % %, with a retention policy of its own', relation,
                CASE WHEN (SELECT c.relispartition FROM pg_class c WHERE c.oid = other.rel)
                     THEN 'a partition' ELSE 'an inheritance child' END, other.rel
            USING ERRCODE = 'duplicate_object',
                  DETAIL = format('The purge of %s would delete the old rows of %s too.', relation, other.rel),
                  HINT = format('Remove that policy with dbops.remove_retention_policy(%L) first; the policy on %s then covers it.',
                                other.rel::text, relation);
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
    owner oid;
BEGIN
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may add its policy
    SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = add_retention_policy.relation;
    IF owner IS NOT NULL AND NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to add its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', owner::regrole, owner::regrole);
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
    RETURNING policy_id INTO id;
    RETURN id;
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
    p dbops.retention_policies;
    owner oid;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name the table whose policy to change; the policies are in dbops.retention_policies.';
    END IF;
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may alter its policy (the creator's,
    -- once the table is gone)
    SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = alter_retention_policy.relation;
    IF owner IS NOT NULL AND NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to alter its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', owner::regrole, owner::regrole);
    END IF;
    IF owner IS NULL AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT FROM dbops.retention_policies r
                    WHERE r.relation = alter_retention_policy.relation
                      AND NOT (EXISTS (SELECT FROM pg_roles a WHERE a.rolname = r.created_by)
                               AND pg_has_role(r.created_by, 'USAGE'))) THEN
        RAISE EXCEPTION 'must have the privileges of the creator of the retention policy on relation % to alter it', relation::oid
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The table is gone: the role in created_by or a superuser may alter its policy.';
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
     WHERE r.policy_id = p.policy_id;
END
$$;
COMMENT ON FUNCTION dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean) IS
    'Change a retention policy (needs the privileges of the table''s owner; records the caller as created_by): NULL arguments leave a setting as it is; 0 removes a cap';

CREATE FUNCTION dbops.remove_retention_policy(relation regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner oid;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION 'relation must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name the table whose policy to remove; the policies are in dbops.retention_policies.';
    END IF;
    -- the purge deletes the table's rows with its owner's rights: only a
    -- role with the owner's privileges may remove its policy (the creator's,
    -- once the table is gone)
    SELECT c.relowner INTO owner FROM pg_class c WHERE c.oid = remove_retention_policy.relation;
    IF owner IS NOT NULL AND NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to remove its retention policy', relation
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('A retention policy deletes rows with the rights of the table''s owner, %s.', owner::regrole),
                  HINT = format('Ask %s or a superuser to do it, or to grant you membership in %s.', owner::regrole, owner::regrole);
    END IF;
    IF owner IS NULL AND NOT coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
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
    typ text;
    nparts integer;
    r record;
    upper text;
    old boolean;
    n integer := 0;
BEGIN
    SELECT CASE a.atttypid WHEN 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 'pg_catalog.timestamptz'
                           WHEN 'pg_catalog.timestamp'::pg_catalog.regtype THEN 'pg_catalog.timestamp'
                           WHEN 'pg_catalog.date'::pg_catalog.regtype THEN 'pg_catalog.date' END
      INTO typ
      FROM pg_partitioned_table pt
      JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
     WHERE pt.partrelid = parent AND pt.partstrat = 'r' AND pt.partnatts = 1
       AND a.attname = time_column;
    IF typ IS NULL THEN
        RETURN;             -- not range-partitioned on the time column (of a date/time type)
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
        -- compared in the column's type first: a bound beyond the range
        -- of timestamptz (a date far in the future) is never old
        EXECUTE format('SELECT %L::%s OPERATOR(pg_catalog.<=) $1', upper, typ)
           INTO old USING cutoff;
        IF old THEN
            EXECUTE format('SELECT %L::%s::pg_catalog.timestamptz', upper, typ) INTO upper_bound;
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
    chk record;
    x record;
    nparts integer;
    e_state text;
    e_msg text;
    relname text;
BEGIN
    IF purge_preview.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = purge_preview.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', purge_preview.relation
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;
    FOR p IN SELECT r.* FROM dbops.retention_policies r
              WHERE (purge_preview.relation IS NULL AND r.enabled) OR r.relation = purge_preview.relation
              ORDER BY r.policy_id
    LOOP
        -- what the purge would refuse (limits out of range, a relation that
        -- is gone or no longer a table...) is not read
        chk := dbops._retention_problem(p.relation, p.created_by, p.time_column, p.keep, p.max_run_time);
        IF chk.status IS NOT NULL THEN
            RAISE NOTICE 'retention policy on % not previewed: %', p.relation, chk.message
                USING DETAIL = CASE chk.status WHEN 'skipped' THEN 'CALL dbops.purge() skips it too.'
                                               ELSE 'CALL dbops.purge() fails on it too.' END,
                      HINT = chk.hint;
            CONTINUE;
        END IF;
        relname := p.relation::text;     -- named before it may go
        target := p.relation;
        time_column := p.time_column;
        cutoff := now() - p.keep;
        -- read as the table's owner, after its lock; what changed while
        -- waiting for the lock (dropped, no longer a table...) is said so
        BEGIN
            x := dbops._purge_exec(p.policy_id, p.relation, 'preview', cutoff);
        EXCEPTION WHEN undefined_table OR wrong_object_type OR undefined_column
                       OR datatype_mismatch OR object_not_in_prerequisite_state THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
            RAISE NOTICE 'retention policy on % not previewed: %', relname, e_msg
                USING DETAIL = format('SQLSTATE %s', e_state),
                      HINT = 'CALL dbops.purge() skips or fails on it too; see dbops.purge_runs after it.';
            CONTINUE;
        END;
        rows_to_delete := x.n;
        oldest := x.value::timestamptz;
        newest := x.value2::timestamptz;
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

-- The first part of CALL dbops.purge(), up to its first COMMIT: the guards
-- and settings, the dry run, marking dead runs, purge_runs' own retention,
-- the policies to purge.  caller_path is the caller's search_path, used
-- only to name tables the way the caller sees them.
CREATE FUNCTION dbops._purge_start(relation regclass, dry_run boolean, caller_path text)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st dbops._purge_state;
    s record;
    pv record;
BEGIN
    IF dry_run IS NULL THEN
        RAISE EXCEPTION 'dry_run must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'CALL dbops.purge(dry_run => true) only reports what would be deleted; false (the default) purges.';
    END IF;
    caller_path := coalesce(caller_path, 'pg_catalog');
    -- refuses on a standby and in a transaction block; loads the settings
    s := dbops._purge_begin(dry_run);

    IF _purge_start.relation IS NOT NULL AND NOT EXISTS
        (SELECT 1 FROM dbops.retention_policies r WHERE r.relation = _purge_start.relation) THEN
        RAISE EXCEPTION 'relation % has no retention policy', dbops._purge_relname(_purge_start.relation, caller_path)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Add one with dbops.add_retention_policy().';
    END IF;

    st.done := false;
    st.sleep_s := 0;
    st.yield_ms := 0;
    st.caller_path := caller_path;
    IF dry_run THEN
        FOR pv IN SELECT * FROM dbops.purge_preview(_purge_start.relation) LOOP
            RAISE NOTICE '%: % rows older than % would be deleted (oldest %, newest %)%',
                dbops._purge_relname(pv.target, caller_path), pv.rows_to_delete, pv.cutoff, pv.oldest, pv.newest,
                CASE WHEN pv.partitions_to_drop > 0
                     THEN format(', %s of them by dropping %s partitions', pv.rows_to_delete, pv.partitions_to_drop)
                     ELSE '' END;
        END LOOP;
        st.done := true;
        RETURN st;
    END IF;

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
     WHERE r.finished < st.run_start - make_interval(secs => s.runs_keep_s);

    SELECT array_agg(r.policy_id ORDER BY r.policy_id) INTO st.ids
      FROM dbops.retention_policies r
     WHERE (_purge_start.relation IS NULL AND r.enabled) OR r.relation = _purge_start.relation;

    st.batch_target_ms := s.batch_target_ms;
    st.batch_max := s.batch_max;
    st.lock_timeout_ms := s.lock_timeout_ms;
    st.lock_retries := s.lock_retries;
    st.max_replica_lag_ms := s.max_replica_lag_ms;
    st.yield_factor := s.yield;
    st.idx := 0;
    st.failures := '{}';
    st.nskipped := 0;
    st.phase := 'next_policy';
    RETURN st;
END
$$;

-- One transaction's work of CALL dbops.purge(), which commits after each
-- step: st.phase says where the purge is.  A step begins with the pause the
-- previous one asked for (a lock backoff, the lag guard's look, yielding
-- to busy sessions), so that every sleep follows a COMMIT as before.  All
-- reading and deleting of a policy's table is done by dbops._purge_exec(),
-- as the table's owner.
--   next_policy   lock the next policy, record its run (or skip/fail it)
--   partitions    detach (and drop) one old partition
--   rows, next_target   the leaf tables to purge in batches, the next one
--   batch         one batch (or the lag guard, a cap, the end of a table)
--   lag_wait, lag_look  waiting while a standby lags
--   end_policy, after_policy  the run's outcome, then the lock and NOTICE
--   finish        the CALL's error if a policy failed or was skipped
--   abort         the step before failed or was cancelled (dbops.purge()
--                 caught it): the run it was in is recorded as failed or,
--                 for a cancel or statement_timeout, interrupted
CREATE FUNCTION dbops._purge_step(st dbops._purge_state)
RETURNS dbops._purge_state
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p dbops.retention_policies;
    chk record;
    x record;
    pv record;
    target regclass;
    policy_start timestamptz;
    nparts_all integer;
    n bigint;
    maxval text;
    upper_ text;
    ties bigint;
    lim integer;
    use_skip boolean;
    locked boolean;
    failed boolean;
    t0 timestamptz;
    ms numeric;
    e_state text;
    e_msg text;
BEGIN
    IF st.phase IS NULL OR st.phase NOT IN ('next_policy', 'partitions', 'rows', 'next_target',
            'lag_look', 'lag_wait', 'batch', 'end_policy', 'after_policy', 'finish', 'abort') THEN
        RAISE EXCEPTION 'not a state of CALL dbops.purge()'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'dbops._purge_step() is called by CALL dbops.purge() only; use that.';
    END IF;
    IF st.phase = 'abort' THEN
        UPDATE dbops.purge_runs r
           SET status = CASE WHEN st.sqlstate = '57014' THEN 'interrupted' ELSE 'failed' END,
               finished = clock_timestamp(), sqlstate = st.sqlstate,
               message = CASE WHEN length(st.message) > 500 THEN left(st.message, 500) || '...'
                              ELSE st.message END
         WHERE r.run_id = st.run AND r.status = 'running';
        st.done := true;
        RETURN st;
    END IF;

    -- what the previous step asked for after its COMMIT
    IF st.sleep_s > 0 THEN
        PERFORM pg_sleep(st.sleep_s);
        st.sleep_s := 0;
    END IF;
    IF st.yield_ms > 0 THEN
        -- production first: while other sessions are busy, leave them the
        -- time of the batch (times dbops.purge_yield)
        ms := st.yield_ms;
        st.yield_ms := 0;
        IF dbops._purge_busy_sessions() > 0 THEN
            PERFORM pg_sleep(ms * st.yield_factor / 1000.0);
            UPDATE dbops.purge_runs r
               SET paused_ms = r.paused_ms + round(ms * st.yield_factor)::bigint
             WHERE r.run_id = st.run;
            RETURN st;
        END IF;
    END IF;

    LOOP
        CASE st.phase
        WHEN 'next_policy' THEN
            st.idx := st.idx + 1;
            IF st.idx > coalesce(cardinality(st.ids), 0) THEN
                st.phase := 'finish';
                CONTINUE;
            END IF;
            SELECT * INTO p FROM dbops.retention_policies r WHERE r.policy_id = st.ids[st.idx];
            CONTINUE WHEN NOT FOUND;    -- removed meanwhile
            st.relname := dbops._purge_relname(p.relation, st.caller_path);

            IF NOT dbops._purge_lock(p.policy_id) THEN
                RAISE NOTICE 'another session is already purging %; skipped', st.relname
                    USING HINT = 'Its progress is in dbops.purge_runs (status running).';
                CONTINUE;
            END IF;

            -- we hold the policy's lock: a run still marked running is not
            UPDATE dbops.purge_runs r
               SET status = 'interrupted', finished = coalesce(r.finished, clock_timestamp()),
                   message = coalesce(r.message, format('backend %s stopped during the run (error, cancel or crash)', r.pid))
             WHERE r.policy_id = p.policy_id AND r.status = 'running';

            -- why the purge must not or cannot act on it: limits out of
            -- range (checked first, status skipped, 22023: then no cutoff
            -- is computed), the table is gone, no longer a table,
            -- temporary, its policy's creator lost the owner's rights
            chk := dbops._retention_problem(p.relation, p.created_by, p.time_column, p.keep, p.max_run_time);

            policy_start := clock_timestamp();
            st.policy_id := p.policy_id;
            st.policy_rel := p.relation;
            st.time_column := p.time_column;
            st.batch_size := p.batch_size;
            st.max_rows_per_run := p.max_rows_per_run;
            st.max_run_time := p.max_run_time;
            st.drop_partitions := p.drop_partitions;
            st.cutoff := NULL;
            st.deadline := NULL;
            IF chk.sqlstate IS DISTINCT FROM '22023' THEN
                st.cutoff := st.run_start - p.keep;
                st.deadline := CASE WHEN p.max_run_time IS NOT NULL THEN policy_start + p.max_run_time END;
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
            VALUES (p.policy_id, st.relname, st.cutoff, policy_start,
                    (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()))
            RETURNING run_id INTO st.run;

            -- what must not be done is skipped, what cannot work fails, with
            -- the reason (chk above), or: it has no index
            SELECT c.relkind INTO st.kind FROM pg_class c WHERE c.oid = p.relation;
            IF chk.status IS NOT NULL THEN
                st.status := chk.status;
                st.sqlstate := chk.sqlstate;
                st.message := chk.message;
            ELSIF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                               JOIN pg_am am ON am.oid = ic.relam
                               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                              WHERE i.indrelid = p.relation AND a.attname = p.time_column
                                AND am.amname = 'btree' AND i.indpred IS NULL
                                AND (i.indisvalid OR ic.relkind = 'I')) THEN
                st.status := 'failed';
                st.sqlstate := '55000';
                st.message := format('no index on %s (%I): batches would scan the whole table', st.relname, p.time_column);
            END IF;

            -- partitions wholly older than the cutoff, never the last one
            IF st.status IS NULL AND st.kind = 'p' THEN
                SELECT array_agg(o.partition ORDER BY o.upper_bound) INTO st.parts
                  FROM dbops._purge_old_partitions(p.relation, p.time_column, st.cutoff) o;
                SELECT count(*) INTO nparts_all
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = p.relation AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT';
                IF cardinality(st.parts) >= nparts_all THEN
                    st.parts := st.parts[1:nparts_all - 1];
                END IF;
            END IF;
            st.phase := CASE WHEN st.status IS NOT NULL THEN 'end_policy'
                             WHEN st.kind = 'p' THEN 'partitions'
                             ELSE 'rows' END;
            RETURN st;          -- the run row is committed before any work

        WHEN 'partitions' THEN
            IF st.part_idx > coalesce(cardinality(st.parts), 0) THEN
                st.phase := 'rows';
                CONTINUE;
            END IF;
            IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
                st.status := 'partial';
                st.message := 'stopped at max_run_time';
                st.phase := 'end_policy';
                CONTINUE;
            END IF;
            target := st.parts[st.part_idx];
            locked := false;
            failed := false;
            t0 := clock_timestamp();
            BEGIN
                x := dbops._purge_exec(st.policy_id, target, 'detach', st.cutoff);
            EXCEPTION
                WHEN lock_not_available THEN
                    locked := true;
                WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
                    failed := true;
            END;
            IF failed AND e_state IN ('42P01', '55000')
               AND EXISTS (SELECT FROM pg_class c WHERE c.oid = st.policy_rel)
               AND NOT EXISTS (SELECT FROM pg_partition_tree(st.policy_rel) t WHERE t.relid = target) THEN
                -- dropped or detached by someone else meanwhile: gone anyway
                RAISE NOTICE '%: %; going on without it', st.relname, e_msg;
                st.part_idx := st.part_idx + 1;
                CONTINUE;
            END IF;
            IF failed THEN
                st.status := 'failed';
                st.sqlstate := e_state;
                st.message := format('detaching partition %s: %s', dbops._purge_relname(target, st.caller_path), e_msg);
                st.phase := 'end_policy';
                CONTINUE;
            END IF;
            ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
            IF locked THEN
                st.retries := st.retries + 1;
                UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
                IF st.retries > st.lock_retries THEN
                    st.status := 'partial';
                    st.sqlstate := '55P03';
                    st.message := format('could not lock %s to detach %s within lock_timeout after %s attempts',
                                         st.relname, dbops._purge_relname(target, st.caller_path), st.retries);
                    st.phase := 'end_policy';
                ELSE
                    st.sleep_s := least(0.05 * 2 ^ st.retries, 5);
                END IF;
                RETURN st;
            END IF;
            st.retries := 0;
            UPDATE dbops.purge_runs r
               SET partitions_dropped = r.partitions_dropped + x.n,
                   partitions_detached = r.partitions_detached + 1 - x.n,
                   longest_batch_ms = greatest(r.longest_batch_ms, ms)
             WHERE r.run_id = st.run;
            st.part_idx := st.part_idx + 1;
            RETURN st;

        WHEN 'rows' THEN
            -- rows: in batches, per leaf table
            IF st.kind = 'p' THEN
                SELECT array_agg(t.relid ORDER BY t.relid) INTO st.targets
                  FROM pg_partition_tree(st.policy_rel) t
                  JOIN pg_class c ON c.oid = t.relid
                 WHERE t.isleaf AND c.relkind = 'r';
            ELSE
                st.targets := ARRAY[st.policy_rel];
            END IF;
            st.size := least(st.batch_size, st.batch_max);
            st.target_idx := 0;
            st.phase := 'next_target';
            CONTINUE;

        WHEN 'next_target' THEN
            st.target_idx := st.target_idx + 1;
            IF st.target_idx > coalesce(cardinality(st.targets), 0) THEN
                st.phase := 'end_policy';
                CONTINUE;
            END IF;
            SELECT a.atttypid = 'pg_catalog.date'::pg_catalog.regtype INTO st.is_date
              FROM pg_attribute a
             WHERE a.attrelid = st.targets[st.target_idx] AND a.attname = st.time_column;
            st.lower_value := NULL;
            st.retries := 0;
            st.skipped_any := false;
            st.phase := 'batch';
            CONTINUE;

        WHEN 'lag_look' THEN
            st.lag := dbops.replica_replay_lag_ms();
            st.phase := 'lag_wait';
            CONTINUE;

        WHEN 'lag_wait' THEN
            -- replica lag guard: wait, one short transaction per look
            IF st.lag > st.max_replica_lag_ms
               AND (st.deadline IS NULL OR clock_timestamp() < st.deadline) THEN
                st.sleep_s := 0.5;
                st.phase := 'lag_look';
                RETURN st;
            END IF;
            UPDATE dbops.purge_runs r
               SET paused_ms = r.paused_ms + (extract(epoch FROM clock_timestamp() - st.pause_start) * 1000)::bigint
             WHERE r.run_id = st.run;
            IF st.lag > st.max_replica_lag_ms THEN
                st.status := 'partial';
                st.message := format('stopped at max_run_time (%s) while standby replay lag (%s ms) exceeded dbops.purge_max_replica_lag',
                                     st.max_run_time, round(st.lag::numeric));
                st.phase := 'end_policy';
            ELSE
                st.phase := 'batch';
            END IF;
            RETURN st;

        WHEN 'batch' THEN
            target := st.targets[st.target_idx];
            IF st.max_rows_per_run IS NOT NULL AND st.total >= st.max_rows_per_run THEN
                st.status := 'partial';
                st.message := format('stopped at max_rows_per_run (%s)', st.max_rows_per_run);
                st.phase := 'end_policy';
                CONTINUE;
            END IF;
            IF st.deadline IS NOT NULL AND clock_timestamp() >= st.deadline THEN
                st.status := 'partial';
                st.message := format('stopped at max_run_time (%s)', st.max_run_time);
                st.phase := 'end_policy';
                CONTINUE;
            END IF;
            IF st.max_replica_lag_ms > 0 THEN
                st.lag := dbops.replica_replay_lag_ms();
                IF st.lag > st.max_replica_lag_ms THEN
                    st.pause_start := clock_timestamp();
                    st.phase := 'lag_wait';
                    CONTINUE;
                END IF;
            END IF;

            lim := st.size;
            IF st.max_rows_per_run IS NOT NULL THEN
                lim := least(lim, st.max_rows_per_run - st.total);
            END IF;

            -- one batch: find the value lim rows on, delete the range up to
            -- it (both through the index); if a row lock is not granted in
            -- time, the same batch again skipping locked rows.  Each step
            -- runs as the table's owner, under dbops.purge_lock_timeout.
            locked := false;
            failed := false;
            use_skip := st.is_date;
            upper_ := NULL;
            n := 0;
            maxval := NULL;
            t0 := clock_timestamp();
            IF NOT use_skip THEN
                BEGIN
                    x := dbops._purge_exec(st.policy_id, target, 'bound', st.cutoff, st.lower_value, NULL, lim - 1);
                    upper_ := x.value;
                    ties := x.n;
                    IF upper_ IS NOT NULL AND ties > lim / 4 THEN
                        -- many rows share the bound: a range would take
                        -- them all, so count rows instead
                        use_skip := true;
                    ELSE
                        x := dbops._purge_exec(st.policy_id, target, 'range', st.cutoff, st.lower_value, upper_);
                        n := x.n;
                        maxval := upper_;
                    END IF;
                EXCEPTION
                    WHEN lock_not_available THEN
                        use_skip := true;
                    WHEN OTHERS THEN
                        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
                        failed := true;
                END;
            END IF;
            IF use_skip AND NOT failed THEN
                BEGIN
                    x := dbops._purge_exec(st.policy_id, target, 'skip_locked', st.cutoff, st.lower_value, NULL, lim);
                    n := x.n;
                    maxval := x.value;
                EXCEPTION
                    WHEN lock_not_available THEN
                        locked := true;
                    WHEN OTHERS THEN
                        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
                        failed := true;
                END;
            END IF;
            IF failed AND target <> st.policy_rel AND e_state IN ('42P01', '55000')
               AND EXISTS (SELECT FROM pg_class c WHERE c.oid = st.policy_rel)
               AND NOT EXISTS (SELECT FROM pg_partition_tree(st.policy_rel) t WHERE t.relid = target) THEN
                -- a partition dropped or detached meanwhile: the next one
                RAISE NOTICE '%: %; going on without it', st.relname, e_msg;
                st.phase := 'next_target';
                CONTINUE;
            END IF;
            IF failed THEN
                st.status := 'failed';
                st.sqlstate := e_state;
                st.message := e_msg;
                st.phase := 'end_policy';
                CONTINUE;
            END IF;
            ms := extract(epoch FROM clock_timestamp() - t0) * 1000;

            IF locked THEN
                st.retries := st.retries + 1;
                UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
                IF st.retries > st.lock_retries THEN
                    st.status := 'partial';
                    st.sqlstate := '55P03';
                    st.message := format('could not lock %s within lock_timeout (%s ms) after %s attempts',
                                         dbops._purge_relname(target, st.caller_path), st.lock_timeout_ms, st.retries);
                    st.phase := 'end_policy';
                ELSE
                    st.sleep_s := least(0.05 * 2 ^ st.retries, 5);
                END IF;
                RETURN st;
            END IF;

            IF use_skip AND n < lim THEN
                st.skipped_any := true;
            END IF;
            IF n > 0 THEN
                st.total := st.total + n;
                UPDATE dbops.purge_runs r
                   SET rows_deleted = r.rows_deleted + n, batches = r.batches + 1,
                       longest_batch_ms = greatest(r.longest_batch_ms, ms)
                 WHERE r.run_id = st.run;
                IF st.yield_factor > 0 THEN
                    st.yield_ms := ms;      -- the next step yields, after the COMMIT
                END IF;
            END IF;

            IF (use_skip AND n >= lim) OR (NOT use_skip AND upper_ IS NOT NULL) THEN
                -- a full batch: continue from its highest value, sized
                -- toward the target batch time
                st.retries := 0;
                st.lower_value := maxval;
                IF lim = st.size THEN
                    st.size := least(st.batch_max, greatest(10,
                                   round(st.size * least(2.0, greatest(0.5, st.batch_target_ms / greatest(ms, 1))))::integer));
                END IF;
            ELSIF st.lower_value IS NOT NULL THEN
                -- end of the range: done, unless batches skipped locked
                -- rows; then sweep once more from the start
                IF st.skipped_any THEN
                    st.lower_value := NULL;
                    st.skipped_any := false;
                ELSE
                    st.phase := 'next_target';
                END IF;
            ELSIF n > 0 THEN
                NULL;               -- again from the start
            ELSE
                -- nothing deleted from the start: done, unless rows remain
                -- that other transactions hold locked
                x := dbops._purge_exec(st.policy_id, target, 'exists', st.cutoff);
                IF x.n = 0 THEN
                    st.phase := 'next_target';
                ELSE
                    st.retries := st.retries + 1;
                    IF st.retries > st.lock_retries THEN
                        st.status := 'partial';
                        st.sqlstate := '55P03';
                        st.message := format('rows of %s older than the cutoff are locked by other transactions; gave up after %s attempts',
                                             dbops._purge_relname(target, st.caller_path), st.retries);
                        st.phase := 'end_policy';
                    ELSE
                        UPDATE dbops.purge_runs r SET lock_retries = r.lock_retries + 1 WHERE r.run_id = st.run;
                        st.sleep_s := least(0.05 * 2 ^ st.retries, 5);
                    END IF;
                END IF;
            END IF;
            RETURN st;

        WHEN 'end_policy' THEN
            -- a message quoted from an error (the table owner's trigger's,
            -- say) is kept to 500 characters
            UPDATE dbops.purge_runs r
               SET status = coalesce(st.status, 'done'), finished = clock_timestamp(),
                   sqlstate = st.sqlstate,
                   message = CASE WHEN length(st.message) > 500 THEN left(st.message, 500) || '...'
                                  ELSE st.message END
             WHERE r.run_id = st.run;
            st.phase := 'after_policy';
            RETURN st;          -- committed before the lock goes

        WHEN 'after_policy' THEN
            PERFORM dbops._purge_unlock(st.policy_id);
            SELECT * INTO pv FROM dbops.purge_runs r WHERE r.run_id = st.run;
            IF pv.status IN ('failed', 'skipped') THEN
                st.failures := st.failures || format('%s: %s', st.relname, pv.message);
                st.first_state := coalesce(st.first_state, pv.sqlstate);
                IF pv.status = 'skipped' THEN
                    st.nskipped := st.nskipped + 1;
                END IF;
                RAISE WARNING 'purge of % %: %', st.relname, pv.status, pv.message
                    USING DETAIL = format('SQLSTATE %s; see dbops.purge_runs run_id %s', pv.sqlstate, st.run),
                          HINT = CASE WHEN pv.status = 'skipped' AND pv.sqlstate = '42501'
                                      THEN 'The table''s owner (or a member of the owning role) adopts the policy with dbops.alter_retention_policy(), or removes it with dbops.remove_retention_policy().'
                                      WHEN pv.status = 'skipped' AND pv.sqlstate = '22023'
                                      THEN 'Give the policy limits in range with dbops.alter_retention_policy(): keep and max_run_time at most 1000 years.'
                                      WHEN pv.status = 'skipped'
                                      THEN 'The policy no longer names a table the purge may touch: remove it with dbops.remove_retention_policy().'
                                      WHEN pv.sqlstate = '55000' THEN format('CREATE INDEX CONCURRENTLY ON %s (%I);', st.relname, st.time_column)
                                      WHEN pv.sqlstate IN ('42703', '42804')
                                      THEN 'Point the policy at a timestamptz, timestamp or date column with dbops.alter_retention_policy(relation, time_column => ...), or remove it.'

                                      WHEN pv.sqlstate = '42P01' THEN 'Remove the policy with dbops.remove_retention_policy().'
                                      ELSE 'Fix the cause and CALL dbops.purge() again; committed batches stay deleted.' END;
            ELSE
                RAISE NOTICE '%: % rows deleted in % batches (longest % ms)%; %',
                    st.relname, pv.rows_deleted, pv.batches, round(pv.longest_batch_ms),
                    CASE WHEN pv.partitions_dropped + pv.partitions_detached > 0
                         THEN format(', %s partitions dropped, %s detached', pv.partitions_dropped, pv.partitions_detached)
                         ELSE '' END,
                    pv.status || coalesce(': ' || pv.message, '');
            END IF;
            st.phase := 'next_policy';
            CONTINUE;

        WHEN 'finish' THEN
            -- committed work stays; a failed or skipped policy still fails
            -- the CALL (and a scheduled job) so that it is noticed
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
            st.done := true;
            RETURN st;
        END CASE;
    END LOOP;
END
$$;

-- A procedure, because it commits between steps; for the same reason it
-- cannot carry a SET search_path clause.  So its own statements depend on
-- no search_path: schema-qualified calls of dbops functions (whose
-- search_path is pinned) with arguments of their exact types, variables of
-- schema-qualified types, schema-qualified operators, and COMMIT.  dbops._purge_start() does what comes
-- before the first commit, each dbops._purge_step() one transaction's work.
-- A step that fails or is cancelled (the user's cancel, statement_timeout)
-- is caught, its run recorded as failed or interrupted and committed
-- (dbops._purge_step() in phase 'abort'), and the error raised again: the
-- CALL ends with it, purge_runs tells the truth, and the session lock on
-- the policy goes with the transaction the error ends.
CREATE PROCEDURE dbops.purge(relation regclass DEFAULT NULL, dry_run boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    st dbops._purge_state;
    caught pg_catalog.bool := false;
    e_state pg_catalog.text;
    e_msg pg_catalog.text;
    e_detail pg_catalog.text;
    e_hint pg_catalog.text;
BEGIN
    st := dbops._purge_start(purge.relation, purge.dry_run, pg_catalog.current_setting('search_path'));
    WHILE NOT st.done LOOP
        COMMIT;
        BEGIN
            st := dbops._purge_step(st);
        EXCEPTION WHEN query_canceled OR OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT;
            caught := true;
        END;
        IF caught THEN
            st.phase := 'abort';
            st.sqlstate := e_state;
            st.message := e_msg;
            st := dbops._purge_step(st);
            COMMIT;
            e_hint := CASE WHEN e_state OPERATOR(pg_catalog.=) '57014'
                           THEN 'The run is recorded as interrupted in dbops.purge_runs; its committed batches stay deleted. CALL dbops.purge() again to go on.'
                           WHEN e_hint OPERATOR(pg_catalog.<>) '' THEN e_hint
                           ELSE 'The run is recorded as failed in dbops.purge_runs; its committed batches stay deleted.' END;
            IF e_detail IS NULL OR e_detail OPERATOR(pg_catalog.=) '' THEN
                RAISE EXCEPTION USING ERRCODE = e_state, MESSAGE = e_msg, HINT = e_hint;
            END IF;
            RAISE EXCEPTION USING ERRCODE = e_state, MESSAGE = e_msg, DETAIL = e_detail, HINT = e_hint;
        END IF;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE dbops.purge(regclass, boolean) IS
    'Purge rows older than their policy''s keep, in small committed batches; dry_run only reports';

REVOKE ALL ON FUNCTION dbops._purge_start(regclass, boolean, text),
    dbops._purge_step(dbops._purge_state) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.add_retention_policy(regclass, name, interval, integer, bigint, interval, boolean, boolean),
    dbops.alter_retention_policy(regclass, interval, integer, name, bigint, interval, boolean, boolean),
    dbops.remove_retention_policy(regclass),
    dbops.purge_preview(regclass)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE dbops.purge(regclass, boolean) FROM PUBLIC;
