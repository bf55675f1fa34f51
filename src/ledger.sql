
-- ---------------------------------------------------------------------------
-- migration ledger
--
-- Errors raised here use their own SQLSTATE class "DB" (see README):
--   DB001 checksum drift             DB005 version not in the ledger / not applied
--   DB002 required version missing   DB006 rollback blocked by applied dependents
--   DB003 out-of-order application   DB007 import source is not a known ledger
--   DB004 version already applied    DB008 dbops.migration_events is append-only
-- The ledger lock is the transaction-scoped advisory lock (1684172656, 1)
-- ('dbop' in ASCII, 1).
-- ---------------------------------------------------------------------------

CREATE TABLE dbops.migrations (
    version          text PRIMARY KEY CHECK (btrim(version) <> ''),
    description      text,
    checksum         text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    status           text NOT NULL
                     CHECK (status IN ('applied', 'rolled_back', 'baseline')),
    applied_by       name NOT NULL DEFAULT current_user,
    "session_user"   name NOT NULL DEFAULT session_user,
    application_name text DEFAULT current_setting('application_name'),
    client_addr      inet DEFAULT inet_client_addr(),
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    duration_ms      numeric,
    requires         text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE dbops.migrations IS
    'Migration ledger: one row per version (dbops.migrate, dbops.migration_begin)';

CREATE TABLE dbops.migration_events (
    event_id         bigserial PRIMARY KEY,
    event_time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    version          text NOT NULL,
    event            text NOT NULL
                     CHECK (event IN ('apply', 'skip', 'rollback', 'baseline',
                                      'repair', 'import', 'failed')),
    operation        text,
    checksum         text,
    sqlstate         text,
    message          text,
    username         name NOT NULL DEFAULT current_user,
    "session_user"   name NOT NULL DEFAULT session_user,
    application_name text DEFAULT current_setting('application_name'),
    client_addr      inet DEFAULT inet_client_addr(),
    backend_pid      integer NOT NULL DEFAULT pg_backend_pid()
);
CREATE INDEX migration_events_version_idx
    ON dbops.migration_events (version, event_id DESC);
COMMENT ON TABLE dbops.migration_events IS
    'Append-only history of the migration ledger: apply, skip, rollback, baseline, repair, import, failed';

CREATE TABLE dbops.migration_objects (
    object_id        bigserial PRIMARY KEY,
    version          text NOT NULL,
    captured_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    command_tag      text NOT NULL,
    object_type      text,
    schema_name      text,
    object_identity  text
);
CREATE INDEX migration_objects_version_idx
    ON dbops.migration_objects (version, object_id);
COMMENT ON TABLE dbops.migration_objects IS
    'DDL commands run while a migration was open, captured by an event trigger';

SELECT pg_catalog.pg_extension_config_dump('dbops.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_events', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_events_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_objects', '');
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_objects_object_id_seq', '');

-- Reading the ledger is open to monitoring roles; writing is granted
-- deliberately to the roles that deploy (see README).
GRANT SELECT ON dbops.migrations, dbops.migration_events, dbops.migration_objects
    TO pg_monitor;

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('migrations', 1, NULL);

-- migration_events is append-only
CREATE FUNCTION dbops._migration_events_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'dbops.migration_events is append-only'
        USING ERRCODE = 'DB008',
              HINT = 'Events are never updated or deleted; record a correction with dbops.migration_repair().';
END;
$$;
CREATE TRIGGER migration_events_append_only
    BEFORE UPDATE OR DELETE ON dbops.migration_events
    FOR EACH ROW EXECUTE FUNCTION dbops._migration_events_append_only();
CREATE TRIGGER migration_events_no_truncate
    BEFORE TRUNCATE ON dbops.migration_events
    FOR EACH STATEMENT EXECUTE FUNCTION dbops._migration_events_append_only();

-- C helpers
CREATE FUNCTION dbops.migration_checksum(script text)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_checksum'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dbops.migration_checksum(text) IS
    'sha256 (hex) of a migration script with CR/CRLF turned into LF and trailing white space of every line and of the script removed';

CREATE FUNCTION dbops._ledger_in_transaction_block()
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_ledger_in_transaction_block'
LANGUAGE C VOLATILE;

-- Writes one 'failed' event from a background worker in its own transaction,
-- so that it survives the rollback of the caller's transaction.  Returns
-- false (with a WARNING) when it could not.  Only records for callers that
-- may INSERT into dbops.migration_events.
CREATE FUNCTION dbops._migration_record_failure(
    version text, operation text, checksum text, sqlstate text, message text,
    username text, session_username text, application_name text,
    client_addr text, backend_pid integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_record_failure'
LANGUAGE C VOLATILE;

-- Arms the current transaction of migration_begin(): an error that aborts
-- it while the migration is open becomes a 'failed' event, written by a
-- background worker after the abort.
CREATE FUNCTION dbops._migration_arm(
    version text, operation text, checksum text, sqlstate text, message text,
    username text, session_username text, application_name text,
    client_addr text, backend_pid integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_arm'
LANGUAGE C VOLATILE;

CREATE FUNCTION dbops._migration_failed(
    p_version text, p_operation text, p_checksum text, p_sqlstate text, p_message text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    RETURN dbops._migration_record_failure(p_version, p_operation, p_checksum,
        p_sqlstate, p_message, current_user::text, session_user::text,
        current_setting('application_name'), inet_client_addr()::text,
        pg_backend_pid());
EXCEPTION WHEN OTHERS THEN
    -- never let recording hide the error being reported
    RAISE WARNING 'failed attempt of migration % not recorded in dbops.migration_events: %',
        p_version, SQLERRM;
    RETURN false;
END;
$$;

-- Order of versions: the leading run of digits separated by '.' or '_'
-- ('1.10' > '1.9', '0015_add_users' = 15); NULL for versions that do not
-- start with a digit (such versions are never out of order).
CREATE FUNCTION dbops.migration_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT string_to_array(
               translate(substring(version FROM '^[0-9]+(?:[._][0-9]+)*'), '_', '.'),
               '.')::numeric[]
$$;
COMMENT ON FUNCTION dbops.migration_version_key(text) IS
    'Ordering key of a migration version: its leading numbers, NULL when it does not start with a digit';

-- versions in order, so that the out-of-order check is one index probe
CREATE INDEX migrations_order_idx
    ON dbops.migrations (dbops.migration_version_key(version), version COLLATE "C");

CREATE FUNCTION dbops._ledger_writable(p_what text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot % on a standby', p_what
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'The migration ledger is written on the primary; dbops.migration_status() and dbops.migration_pending() work here.';
    END IF;
END;
$$;

CREATE FUNCTION dbops._ledger_check_version(p_version text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_version IS NULL THEN
        RAISE EXCEPTION 'migration version must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(p_version) = '' OR p_version <> btrim(p_version) THEN
        RAISE EXCEPTION 'invalid migration version "%"', p_version
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A version is a non-empty string without leading or trailing white space, such as ''0015'' or ''2.1''.';
    END IF;
END;
$$;

CREATE FUNCTION dbops._ledger_check_checksum(p_checksum text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_checksum IS NOT NULL AND p_checksum <> '' AND p_checksum !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'invalid migration checksum "%"', p_checksum
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the value of dbops.migration_checksum(script): 64 lower-case hexadecimal digits.';
    END IF;
END;
$$;

CREATE FUNCTION dbops._ledger_lock()
RETURNS void
LANGUAGE sql
AS $$ SELECT pg_catalog.pg_advisory_xact_lock(1684172656, 1) $$;

-- Greatest baseline version at or above p_version, if any.
CREATE FUNCTION dbops._ledger_covering_baseline(p_version text)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT m.version
    FROM dbops.migrations m
    WHERE m.status = 'baseline'
      AND dbops.migration_version_key(m.version) IS NOT NULL
      AND dbops.migration_version_key(p_version) IS NOT NULL
      AND (dbops.migration_version_key(m.version), m.version COLLATE "C")
          >= (dbops.migration_version_key(p_version), p_version COLLATE "C")
    ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE "C" DESC
    LIMIT 1
$$;

-- The checks shared by migrate() and migration_begin(), under the ledger
-- lock.  Returns 'apply', or the reason to skip.  Raises DB001..DB004.
CREATE FUNCTION dbops._migration_decide(
    p_version text, p_checksum text, p_requires text[],
    p_allow_out_of_order boolean, p_caller text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    r         dbops.migrations;
    v_base    text;
    v_missing text[];
    v_later   text;
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = p_version;
    IF FOUND AND r.status IN ('applied', 'baseline') THEN
        IF r.checksum IS NOT NULL AND p_checksum IS NOT NULL
           AND r.checksum <> p_checksum THEN
            RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', p_version
                USING ERRCODE = 'DB001',
                      DETAIL = format('Recorded checksum %s (%s by %s); this script has %s.',
                                      r.checksum, r.status, r.applied_by, p_checksum),
                      HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
        END IF;
        IF p_caller = 'migration_begin' THEN
            RAISE EXCEPTION 'migration % is already %', p_version, r.status
                USING ERRCODE = 'DB004',
                      HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
        END IF;
        RETURN format('already %s', r.status);
    END IF;

    IF NOT FOUND THEN
        v_base := dbops._ledger_covering_baseline(p_version);
        IF v_base IS NOT NULL THEN
            IF p_caller = 'migration_begin' THEN
                RAISE EXCEPTION 'migration % is covered by baseline %', p_version, v_base
                    USING ERRCODE = 'DB004',
                          HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
            END IF;
            RETURN format('covered by baseline %s', v_base);
        END IF;
    END IF;

    SELECT array_agg(u.req ORDER BY u.ord) INTO v_missing
    FROM unnest(p_requires) WITH ORDINALITY AS u(req, ord)
    WHERE NOT EXISTS (SELECT 1 FROM dbops.migrations m
                      WHERE m.version = u.req
                        AND m.status IN ('applied', 'baseline'))
      AND dbops._ledger_covering_baseline(u.req) IS NULL;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'migration % requires versions that are not applied: %',
                        p_version, array_to_string(v_missing, ', ')
            USING ERRCODE = 'DB002',
                  HINT = 'Apply the required versions first; dbops.migration_status() shows what is applied.';
    END IF;

    IF NOT coalesce(p_allow_out_of_order,
                    current_setting('dbops.migration_allow_out_of_order')::boolean)
       AND dbops.migration_version_key(p_version) IS NOT NULL THEN
        SELECT m.version INTO v_later
        FROM dbops.migrations m
        WHERE m.status = 'applied'
          AND m.version <> p_version
          AND dbops.migration_version_key(m.version) IS NOT NULL
          AND (dbops.migration_version_key(m.version), m.version COLLATE "C")
              > (dbops.migration_version_key(p_version), p_version COLLATE "C")
        ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE "C" DESC
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'migration % is older than the applied migration %', p_version, v_later
                USING ERRCODE = 'DB003',
                      HINT = 'Apply versions in order, or allow this one with allow_out_of_order => true (or SET dbops.migration_allow_out_of_order = on).';
        END IF;
    END IF;

    RETURN 'apply';
END;
$$;

-- ---------------------------------------------------------------------------
-- dbops.migrate(): run a migration body and record it, atomically
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops.migrate(
    version text,
    description text,
    body text,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version  text := migrate.version;
    v_checksum text;
    v_decision text;
    v_started  timestamptz;
    v_finished timestamptz;
    v_prev     text;
    v_state    text;
    v_msg      text;
BEGIN
    PERFORM dbops._ledger_writable('apply a migration');
    PERFORM dbops._ledger_check_version(v_version);
    IF migrate.body IS NULL THEN
        RAISE EXCEPTION 'migration body must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF migrate.requires IS NULL OR array_position(migrate.requires, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'requires must be an array of versions without NULLs'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_checksum := dbops.migration_checksum(migrate.body);
    PERFORM dbops._ledger_lock();

    BEGIN
        v_decision := dbops._migration_decide(v_version, v_checksum, migrate.requires,
                                              migrate.allow_out_of_order, 'migrate');
        IF v_decision <> 'apply' THEN
            INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
            VALUES (v_version, 'skip', 'migrate', v_checksum, v_decision);
            RETURN 'skipped';
        END IF;

        v_started := clock_timestamp();
        v_prev := current_setting('dbops.current_migration');
        PERFORM set_config('dbops.current_migration', v_version, true);
        EXECUTE migrate.body;
        PERFORM set_config('dbops.current_migration', v_prev, true);
        v_finished := clock_timestamp();

        INSERT INTO dbops.migrations AS m
            (version, description, checksum, status, started_at, finished_at,
             duration_ms, requires)
        VALUES (v_version, migrate.description, v_checksum, 'applied', v_started,
                v_finished,
                round(extract(epoch FROM v_finished - v_started) * 1000, 3),
                migrate.requires)
        ON CONFLICT (version) DO UPDATE
            SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
                status = 'applied', applied_by = EXCLUDED.applied_by,
                "session_user" = EXCLUDED."session_user",
                application_name = EXCLUDED.application_name,
                client_addr = EXCLUDED.client_addr,
                started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
                duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
        INSERT INTO dbops.migration_events (version, event, operation, checksum)
        VALUES (v_version, 'apply', 'migrate', v_checksum);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM dbops._migration_failed(v_version, 'migrate', v_checksum, v_state, v_msg);
        RAISE;
    END;
    RETURN 'applied';
END;
$$;
COMMENT ON FUNCTION dbops.migrate(text, text, text, text[], boolean) IS
    'Run a migration body under the ledger lock and record it in the same transaction; returns applied or skipped';

-- ---------------------------------------------------------------------------
-- psql scripts: dbops.migration_pending() for \if, dbops.migration_begin()
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops.migration_pending(
    version text,
    checksum text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_pending.version;
    v_checksum text := nullif(migration_pending.checksum, '');
    r         dbops.migrations;
    v_state   text;
    v_msg     text;
BEGIN
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_check_checksum(migration_pending.checksum);
    -- Inside a transaction block, hold the ledger lock until its end so that
    -- the answer stays true for the rest of the script's transaction.
    IF dbops._ledger_in_transaction_block() THEN
        PERFORM dbops._ledger_lock();
    END IF;

    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF FOUND AND r.status IN ('applied', 'baseline') THEN
        IF r.checksum IS NOT NULL AND v_checksum IS NOT NULL
           AND r.checksum <> v_checksum THEN
            BEGIN
                RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', v_version
                    USING ERRCODE = 'DB001',
                          DETAIL = format('Recorded checksum %s (%s by %s); this script has %s.',
                                          r.checksum, r.status, r.applied_by, v_checksum),
                          HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                IF NOT pg_catalog.pg_is_in_recovery() THEN
                    PERFORM dbops._migration_failed(v_version, 'migration_pending',
                                                    v_checksum, v_state, v_msg);
                END IF;
                RAISE;
            END;
        END IF;
        RETURN false;
    END IF;
    IF NOT FOUND AND dbops._ledger_covering_baseline(v_version) IS NOT NULL THEN
        RETURN false;
    END IF;
    RETURN true;
END;
$$;
COMMENT ON FUNCTION dbops.migration_pending(text, text) IS
    'True when the version still has to be applied (for psql \if); takes the ledger lock inside a transaction block; raises DB001 on checksum drift';

CREATE FUNCTION dbops._migration_ledger_finish()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE dbops.migrations m
    SET finished_at = clock_timestamp(),
        duration_ms = round(extract(epoch FROM clock_timestamp() - m.started_at) * 1000, 3)
    WHERE m.version = NEW.version AND m.finished_at IS NULL;
    RETURN NULL;
END;
$$;
-- Rows opened by migration_begin() get their finish time at COMMIT.
CREATE CONSTRAINT TRIGGER migrations_finish_at_commit
    AFTER INSERT OR UPDATE ON dbops.migrations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.finished_at IS NULL AND NEW.status = 'applied')
    EXECUTE FUNCTION dbops._migration_ledger_finish();

CREATE FUNCTION dbops.migration_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_begin.version;
    v_checksum text := nullif(migration_begin.checksum, '');
    v_decision text;
    v_state   text;
    v_msg     text;
BEGIN
    PERFORM dbops._ledger_writable('open a migration');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_check_checksum(v_checksum);
    IF migration_begin.requires IS NULL OR array_position(migration_begin.requires, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'requires must be an array of versions without NULLs'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT dbops._ledger_in_transaction_block() THEN
        RAISE EXCEPTION 'dbops.migration_begin() must be called inside the transaction of the migration'
            USING ERRCODE = 'no_active_sql_transaction',
                  HINT = 'Start the script with BEGIN (or run psql with --single-transaction); the version is recorded when that transaction commits.';
    END IF;
    IF current_setting('dbops.current_migration') <> '' THEN
        RAISE EXCEPTION 'migration % is already open in this transaction',
                        current_setting('dbops.current_migration')
            USING ERRCODE = 'DB004',
                  HINT = 'Run one migration per transaction.';
    END IF;
    PERFORM dbops._ledger_lock();

    BEGIN
        v_decision := dbops._migration_decide(v_version, v_checksum,
                                              migration_begin.requires,
                                              migration_begin.allow_out_of_order,
                                              'migration_begin');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM dbops._migration_failed(v_version, 'migration_begin',
                                        v_checksum, v_state, v_msg);
        RAISE;
    END;

    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, requires)
    VALUES (v_version, migration_begin.description, v_checksum, 'applied',
            migration_begin.requires)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = NULL,
            duration_ms = NULL, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (v_version, 'apply', 'migration_begin', v_checksum,
            'recorded when the transaction commits');
    PERFORM set_config('dbops.current_migration', v_version, true);
    BEGIN
        PERFORM dbops._migration_arm(v_version, 'migration_begin', v_checksum, NULL, NULL,
            current_user::text, session_user::text, current_setting('application_name'),
            inet_client_addr()::text, pg_backend_pid());
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'a failure of migration % will not be recorded in dbops.migration_events: %',
            v_version, SQLERRM;
    END;
    RETURN 'open';
END;
$$;
COMMENT ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) IS
    'Open a migration in the current transaction of a psql script: ledger lock, checks, row recorded at COMMIT';

-- ---------------------------------------------------------------------------
-- DDL capture
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops._migration_capture_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version text := current_setting('dbops.current_migration', true);
BEGIN
    IF v_version IS NULL OR v_version = '' THEN
        RETURN;
    END IF;
    IF TG_EVENT = 'sql_drop' THEN
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, TG_TAG, d.object_type, d.schema_name, d.object_identity
        FROM pg_event_trigger_dropped_objects() AS d
        WHERE d.original OR d.normal;
    ELSE
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, c.command_tag, c.object_type, c.schema_name, c.object_identity
        FROM pg_event_trigger_ddl_commands() AS c;
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_capture_ddl() FROM PUBLIC;

CREATE EVENT TRIGGER dbops_migration_ddl
    ON ddl_command_end EXECUTE FUNCTION dbops._migration_capture_ddl();
CREATE EVENT TRIGGER dbops_migration_drop
    ON sql_drop EXECUTE FUNCTION dbops._migration_capture_ddl();

-- ---------------------------------------------------------------------------
-- status, rollback, baseline, repair, import
-- ---------------------------------------------------------------------------
CREATE FUNCTION dbops.migration_status(
    checksums jsonb DEFAULT NULL,
    OUT version text, OUT description text, OUT status text,
    OUT checksum text, OUT expected_checksum text, OUT drift boolean,
    OUT applied_by name, OUT started_at timestamptz, OUT finished_at timestamptz,
    OUT duration_ms numeric, OUT requires text[],
    OUT last_event text, OUT last_event_at timestamptz,
    OUT last_sqlstate text, OUT last_message text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF checksums IS NOT NULL AND jsonb_typeof(checksums) <> 'object' THEN
        RAISE EXCEPTION 'checksums must be a JSON object mapping versions to checksums'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example: ''{"0001": "9f86d0...", "0002": "..."}''::jsonb';
    END IF;
    RETURN QUERY
    WITH last AS (
        SELECT DISTINCT ON (e.version) e.version, e.event, e.event_time, e.sqlstate, e.message
        FROM dbops.migration_events e
        ORDER BY e.version, e.event_id DESC
    ), expected AS (
        SELECT j.key AS version, j.value AS checksum
        FROM jsonb_each_text(coalesce(checksums, '{}')) AS j
    ), versions AS (
        SELECT m.version FROM dbops.migrations m
        UNION SELECT x.version FROM expected x
        UNION SELECT l.version FROM last l
    )
    SELECT v.version, m.description,
           CASE WHEN m.version IS NOT NULL THEN m.status
                WHEN dbops._ledger_covering_baseline(v.version) IS NOT NULL THEN 'baseline'
                WHEN l.event = 'failed' THEN 'failed'
                ELSE 'pending' END,
           m.checksum, x.checksum,
           CASE WHEN x.checksum IS NULL OR m.checksum IS NULL
                     OR m.status NOT IN ('applied', 'baseline') THEN NULL
                ELSE m.checksum <> x.checksum END,
           m.applied_by, m.started_at, m.finished_at, m.duration_ms, m.requires,
           l.event, l.event_time, l.sqlstate, l.message
    FROM versions v
    LEFT JOIN dbops.migrations m ON m.version = v.version
    LEFT JOIN expected x ON x.version = v.version
    LEFT JOIN last l ON l.version = v.version
    ORDER BY dbops.migration_version_key(v.version) NULLS LAST, v.version COLLATE "C";
END;
$$;
COMMENT ON FUNCTION dbops.migration_status(jsonb) IS
    'Every version with status, timing, last event, and drift against the checksums supplied as {"version": "checksum"}';

CREATE FUNCTION dbops.migration_rollback(
    version text,
    body text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version  text := migration_rollback.version;
    v_checksum text := dbops.migration_checksum(migration_rollback.body);
    r          dbops.migrations;
    v_deps     text[];
    v_prev     text;
    v_state    text;
    v_msg      text;
BEGIN
    PERFORM dbops._ledger_writable('roll back a migration');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_lock();
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF NOT FOUND OR r.status <> 'applied' THEN
        RAISE EXCEPTION 'migration % is not applied', v_version
            USING ERRCODE = 'DB005',
                  DETAIL = CASE WHEN FOUND THEN format('Its status is %s.', r.status)
                                ELSE 'It is not in dbops.migrations.' END,
                  HINT = 'Only applied versions can be rolled back; see dbops.migration_status().';
    END IF;
    SELECT array_agg(m.version ORDER BY m.version) INTO v_deps
    FROM dbops.migrations m
    WHERE m.status = 'applied' AND v_version = ANY (m.requires);
    IF v_deps IS NOT NULL THEN
        RAISE EXCEPTION 'migration % is required by applied migrations: %',
                        v_version, array_to_string(v_deps, ', ')
            USING ERRCODE = 'DB006',
                  HINT = 'Roll back the dependent versions first.';
    END IF;
    -- only a failing rollback body is a failed attempt worth an event
    BEGIN
        IF migration_rollback.body IS NOT NULL THEN
            v_prev := current_setting('dbops.current_migration');
            PERFORM set_config('dbops.current_migration', v_version, true);
            EXECUTE migration_rollback.body;
            PERFORM set_config('dbops.current_migration', v_prev, true);
        END IF;
        UPDATE dbops.migrations m SET status = 'rolled_back' WHERE m.version = v_version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (v_version, 'rollback', 'migration_rollback', v_checksum,
                CASE WHEN migration_rollback.body IS NULL THEN 'recorded without a rollback body' END);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM dbops._migration_failed(v_version, 'migration_rollback', v_checksum, v_state, v_msg);
        RAISE;
    END;
    RETURN 'rolled_back';
END;
$$;
COMMENT ON FUNCTION dbops.migration_rollback(text, text) IS
    'Run the rollback body of an applied version (if given) and mark it rolled_back';

CREATE FUNCTION dbops.migration_baseline(
    version text,
    description text DEFAULT 'baseline')
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_baseline.version;
    r         dbops.migrations;
BEGIN
    PERFORM dbops._ledger_writable('record a baseline');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_lock();
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF FOUND AND r.status IN ('applied', 'baseline') THEN
        RAISE EXCEPTION 'migration % is already %', v_version, r.status
            USING ERRCODE = 'DB004';
    END IF;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, finished_at, duration_ms)
    VALUES (v_version, migration_baseline.description, NULL, 'baseline', clock_timestamp(), 0)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = NULL, status = 'baseline',
            applied_by = EXCLUDED.applied_by, "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name, client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = 0, requires = '{}';
    INSERT INTO dbops.migration_events (version, event, operation, message)
    VALUES (v_version, 'baseline', 'migration_baseline',
            'versions up to this one are taken as applied');
    RETURN 'baseline';
END;
$$;
COMMENT ON FUNCTION dbops.migration_baseline(text, text) IS
    'Record that the schema already contains every version up to this one';

CREATE FUNCTION dbops.migration_repair(
    version text,
    checksum text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_version text := migration_repair.version;
    v_checksum text := nullif(migration_repair.checksum, '');
    r         dbops.migrations;
BEGIN
    PERFORM dbops._ledger_writable('repair the migration ledger');
    PERFORM dbops._ledger_check_version(v_version);
    PERFORM dbops._ledger_check_checksum(v_checksum);
    PERFORM dbops._ledger_lock();
    SELECT * INTO r FROM dbops.migrations m WHERE m.version = v_version;
    IF FOUND THEN
        UPDATE dbops.migrations m SET checksum = v_checksum
        WHERE m.version = v_version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (v_version, 'repair', 'migration_repair', v_checksum,
                format('checksum %s -> %s', coalesce(r.checksum, 'NULL'),
                       coalesce(v_checksum, 'NULL')));
        RETURN 'repaired';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.migration_events e WHERE e.version = v_version) THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (v_version, 'repair', 'migration_repair', v_checksum,
                'failed attempts acknowledged');
        RETURN 'acknowledged';
    END IF;
    RAISE EXCEPTION 'migration % is not in the ledger', v_version
        USING ERRCODE = 'DB005',
              HINT = 'See dbops.migration_status() for the recorded versions.';
END;
$$;
COMMENT ON FUNCTION dbops.migration_repair(text, text) IS
    'Record a deliberate new checksum for a version (NULL: stop checking), or acknowledge its failed attempts';

CREATE FUNCTION dbops.migration_import(source regclass)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_kind  char;
    v_cols  text[];
    v_shape text;
    v_sql   text;
    v_count bigint;
BEGIN
    PERFORM dbops._ledger_writable('import a migration ledger');
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO v_kind FROM pg_catalog.pg_class c WHERE c.oid = source;
    IF v_kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
        RAISE EXCEPTION '"%" is not a table or view', source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT array_agg(a.attname::text) INTO v_cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped;

    IF v_cols @> ARRAY['installed_rank', 'version', 'description', 'installed_by',
                       'installed_on', 'execution_time', 'success'] THEN
        v_shape := 'flyway';
        v_sql := format($q$
            SELECT s.version::text, s.description::text, s.installed_by::text,
                   s.installed_on::timestamptz, s.execution_time::numeric
            FROM %s s
            WHERE s.version IS NOT NULL AND s.success
            ORDER BY s.installed_rank$q$, source);
    ELSIF v_cols @> ARRAY['version_num'] THEN
        v_shape := 'alembic';
        v_sql := format($q$
            SELECT s.version_num::text, 'alembic revision'::text, NULL::text,
                   NULL::timestamptz, NULL::numeric
            FROM %s s WHERE s.version_num IS NOT NULL$q$, source);
    ELSIF v_cols @> ARRAY['version'] THEN
        v_shape := 'schema_migrations';
        v_sql := format($q$
            SELECT s.version::text, NULL::text, NULL::text, NULL::timestamptz, NULL::numeric
            FROM %s s WHERE s.version IS NOT NULL$q$, source);
    ELSE
        RAISE EXCEPTION '"%" is not a migration ledger dbops can import', source
            USING ERRCODE = 'DB007',
                  HINT = 'dbops.migration_import() reads a table with a "version" column (schema_migrations), alembic_version (version_num), or flyway_schema_history.';
    END IF;

    PERFORM dbops._ledger_lock();
    EXECUTE format($q$
        WITH src (version, description, installed_by, installed_on, execution_time) AS (%s),
        ins AS (
            INSERT INTO dbops.migrations AS m
                (version, description, checksum, status, applied_by, started_at,
                 finished_at, duration_ms)
            SELECT DISTINCT ON (s.version) btrim(s.version), coalesce(s.description, 'imported'),
                   NULL, 'applied',
                   coalesce(s.installed_by, current_user::text)::name,
                   coalesce(s.installed_on, clock_timestamp()),
                   coalesce(s.installed_on, clock_timestamp()), s.execution_time
            FROM src s
            WHERE btrim(s.version) <> ''
            ON CONFLICT (version) DO NOTHING
            RETURNING m.version)
        INSERT INTO dbops.migration_events (version, event, operation, message)
        SELECT i.version, 'import', 'migration_import', %L FROM ins i$q$,
        v_sql, format('imported from %s (%s)', source, v_shape));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION dbops.migration_import(regclass) IS
    'Adopt an existing ledger table (schema_migrations, alembic_version, flyway_schema_history); returns the number of versions imported';

-- Writing functions are granted deliberately (see README).
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_rollback(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_baseline(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_repair(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_import(regclass) FROM PUBLIC;
-- dbops._migration_record_failure() stays executable: it records only for
-- roles that may INSERT into dbops.migration_events themselves.
