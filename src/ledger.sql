
-- ---------------------------------------------------------------------------
-- migration ledger
--
-- Errors raised here use their own SQLSTATE class "DB" (see doc/ledger.md, "Errors"):
--   DB001 checksum drift             DB005 version not in the ledger / not applied
--   DB002 required version missing   DB006 rollback blocked by applied dependents
--   DB003 out-of-order application   DB007 import source is not a known ledger
--   DB004 version already applied    DB008 dbops.migration_events is append-only
-- The ledger lock is the transaction-scoped advisory lock (1684172656, 1)
-- ('dbop' in ASCII, 1).
--
-- What runs where (see doc/ledger.md, "Privileges"):
--   - The entry points that write the ledger or run a migration script are
--     C functions (ledger.c).  They check their arguments, take the ledger
--     lock, record failed attempts, open the DDL capture, and call the
--     implementations below (dbops._migrate() and friends) directly: a role
--     needs EXECUTE on the entry point only, and every internal function is
--     revoked from PUBLIC.
--   - Every SQL and PL/pgSQL function pins search_path = pg_catalog, pg_temp
--     and names functions, operators, types and tables by schema.
--   - migrate() and migration_rollback() have no SET clause: they read the
--     caller's search_path, and the implementation applies it only around
--     the EXECUTE of the caller's script, which runs with the caller's
--     rights and search_path as it always did; the statements after the
--     script name everything by schema (the script may have changed
--     search_path) and restore the pinned one first.
--   - The DDL capture records only while the ledger has a migration open in
--     this transaction, as ledger.c keeps it; dbops.current_migration only
--     shows it.
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
                                      'repair', 'import', 'failed', 'retry')),
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
    'Append-only history of the migration ledger: apply, skip, rollback, baseline, repair, import, failed, retry';

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
-- deliberately to the roles that deploy (see doc/ledger.md, "Privileges").
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
REVOKE ALL ON FUNCTION dbops._migration_events_append_only() FROM PUBLIC;
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

-- The version whose DDL the event triggers record now, or NULL: set only by
-- the ledger's entry points, for their transaction (ledger.c).
CREATE FUNCTION dbops._migration_capture_version()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_capture_version'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION dbops._migration_capture_version() FROM PUBLIC;

-- Order of versions: the leading run of digits separated by '.' or '_'
-- ('1.10' > '1.9', '0015_add_users' = 15); NULL for versions that do not
-- start with a digit (such versions are never out of order), and for a run
-- longer than 1000 characters, so that any version a row holds gets a key
-- (the ledger refuses versions longer than 256 bytes, but rows written by
-- dbops 1.0 or inserted directly may be longer).
CREATE FUNCTION dbops.migration_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.length(k.run) OPERATOR(pg_catalog.<=) 1000
                THEN pg_catalog.string_to_array(pg_catalog.translate(k.run, '_', '.'),
                                                '.')::pg_catalog.numeric[]
           END
    FROM (SELECT substring(version FROM '^[0-9]+(?:[._][0-9]+)*') AS run) AS k
$$;
COMMENT ON FUNCTION dbops.migration_version_key(text) IS
    'Ordering key of a migration version: its leading numbers, NULL when it does not start with a digit';

-- versions in order, so that the out-of-order check is one index probe
CREATE INDEX migrations_order_idx
    ON dbops.migrations (dbops.migration_version_key(version), version COLLATE "C");

-- The checks shared by migrate() and migration_begin(), under the ledger
-- lock.  Returns 'apply', or the reason to skip.  Raises DB001..DB004.
-- "Covered by a baseline": a baseline version at or above it.
CREATE FUNCTION dbops._migration_decide(
    version text, checksum text, requires text[],
    allow_out_of_order boolean, caller text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row     dbops.migrations;
    v_base    text;
    v_missing text[];
    v_later   text;
    -- messages quote at most 64 characters of a version
    v_shown   text := CASE WHEN pg_catalog.length(_migration_decide.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_decide.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_decide.version END;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_decide.version;
    IF FOUND AND v_row.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        IF v_row.checksum IS NOT NULL AND _migration_decide.checksum IS NOT NULL
           AND v_row.checksum OPERATOR(pg_catalog.<>) _migration_decide.checksum THEN
            RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', v_shown
                USING ERRCODE = 'DB001',
                      DETAIL = pg_catalog.format('Recorded checksum %s (%s by %s); this script has %s.',
                                                 v_row.checksum, v_row.status, v_row.applied_by, _migration_decide.checksum),
                      HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
        END IF;
        IF caller OPERATOR(pg_catalog.=) 'migration_begin' THEN
            RAISE EXCEPTION 'migration % is already %', v_shown, v_row.status
                USING ERRCODE = 'DB004',
                      HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
        END IF;
        RETURN pg_catalog.format('already %s', v_row.status);
    END IF;

    IF NOT FOUND THEN
        SELECT b.version INTO v_base
        FROM dbops.migrations b
        WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
          AND dbops.migration_version_key(b.version) IS NOT NULL
          AND dbops.migration_version_key(_migration_decide.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(_migration_decide.version), _migration_decide.version COLLATE pg_catalog."C")
        ORDER BY dbops.migration_version_key(b.version) DESC, b.version COLLATE pg_catalog."C" DESC
        LIMIT 1;
        IF v_base IS NOT NULL THEN
            v_base := CASE WHEN pg_catalog.length(v_base) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_base, 64) OPERATOR(pg_catalog.||) '...' ELSE v_base END;
            IF caller OPERATOR(pg_catalog.=) 'migration_begin' THEN
                RAISE EXCEPTION 'migration % is covered by baseline %', v_shown, v_base
                    USING ERRCODE = 'DB004',
                          HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
            END IF;
            RETURN pg_catalog.format('covered by baseline %s', v_base);
        END IF;
    END IF;

    SELECT pg_catalog.array_agg(u.req ORDER BY u.ord) INTO v_missing
    FROM pg_catalog.unnest(_migration_decide.requires) WITH ORDINALITY AS u(req, ord)
    WHERE NOT EXISTS (SELECT 1 FROM dbops.migrations m
                      WHERE m.version OPERATOR(pg_catalog.=) u.req
                        AND m.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]))
      AND NOT EXISTS (SELECT 1 FROM dbops.migrations b
                      WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
                        AND dbops.migration_version_key(b.version) IS NOT NULL
                        AND dbops.migration_version_key(u.req) IS NOT NULL
                        AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
                            OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(u.req), u.req COLLATE pg_catalog."C"));
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'migration % requires versions that are not applied: %',
            v_shown,
            (SELECT pg_catalog.string_agg(CASE WHEN pg_catalog.length(t.x) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(t.x, 64) OPERATOR(pg_catalog.||) '...' ELSE t.x END, ', ' ORDER BY t.o)
                   FROM pg_catalog.unnest(v_missing[1:10]) WITH ORDINALITY AS t (x, o))
               OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.cardinality(v_missing) OPERATOR(pg_catalog.>) 10
                    THEN pg_catalog.format(' and %s more',
                                           pg_catalog.cardinality(v_missing) OPERATOR(pg_catalog.-) 10)
                    ELSE '' END
            USING ERRCODE = 'DB002',
                  HINT = 'Apply the required versions first; dbops.migration_status() shows what is applied.';
    END IF;

    IF NOT coalesce(allow_out_of_order,
                    pg_catalog.current_setting('dbops.migration_allow_out_of_order')::boolean)
       AND dbops.migration_version_key(_migration_decide.version) IS NOT NULL THEN
        SELECT m.version INTO v_later
        FROM dbops.migrations m
        WHERE m.status OPERATOR(pg_catalog.=) 'applied'
          AND m.version OPERATOR(pg_catalog.<>) _migration_decide.version
          AND dbops.migration_version_key(m.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(m.version), m.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>) ROW(dbops.migration_version_key(_migration_decide.version), _migration_decide.version COLLATE pg_catalog."C")
        ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE pg_catalog."C" DESC
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'migration % is older than the applied migration %', v_shown,
                CASE WHEN pg_catalog.length(v_later) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_later, 64) OPERATOR(pg_catalog.||) '...' ELSE v_later END
                USING ERRCODE = 'DB003',
                      HINT = 'Apply versions in order, or allow this one with allow_out_of_order => true (or SET dbops.migration_allow_out_of_order = on).';
        END IF;
    END IF;

    RETURN 'apply';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_decide(text, text, text[], boolean, text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- dbops.migrate(): run a migration body and record it, atomically
-- ---------------------------------------------------------------------------
-- The part after the checks.  search_path is the caller's: the body runs
-- with it (and with the caller's rights), nothing else does.
CREATE FUNCTION dbops._migrate(
    version text, description text, body text, requires text[],
    checksum text, decision text, search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_started  timestamptz;
    v_finished timestamptz;
BEGIN
    IF decision OPERATOR(pg_catalog.<>) 'apply' THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migrate.version, 'skip', 'migrate', _migrate.checksum, decision);
        RETURN 'skipped';
    END IF;

    v_started := pg_catalog.clock_timestamp();
    PERFORM pg_catalog.set_config('search_path', search_path, true);
    EXECUTE body;
    -- under whatever search_path the body left: qualified, and first
    PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                  'pg_catalog, pg_temp'::pg_catalog.text, true);
    v_finished := pg_catalog.clock_timestamp();

    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, started_at, finished_at,
         duration_ms, requires)
    VALUES (_migrate.version, _migrate.description, _migrate.checksum, 'applied', v_started,
            v_finished,
            pg_catalog.round(extract(epoch FROM v_finished OPERATOR(pg_catalog.-) v_started)
                             OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3),
            _migrate.requires)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum)
    VALUES (_migrate.version, 'apply', 'migrate', _migrate.checksum);
    RETURN 'applied';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migrate(text, text, text, text[], text, text, text) FROM PUBLIC;

-- No SET clause: the body runs with the caller's search_path (ledger.c).
CREATE FUNCTION dbops.migrate(
    version text,
    description text,
    body text,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migrate'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.migrate(text, text, text, text[], boolean) IS
    'Run a migration body under the ledger lock and record it in the same transaction; returns applied or skipped';

-- ---------------------------------------------------------------------------
-- psql scripts: dbops.migration_pending() for \if, dbops.migration_begin()
-- ---------------------------------------------------------------------------
-- NULL: pending; '': not pending; else the detail of a checksum drift.
-- VOLATILE: after waiting for the ledger lock it must see the commit of the
-- runner it waited for (a statement snapshot of its own, READ COMMITTED).
CREATE FUNCTION dbops._migration_pending(version text, checksum text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row dbops.migrations;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_pending.version;
    IF FOUND AND v_row.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        IF v_row.checksum IS NOT NULL AND _migration_pending.checksum IS NOT NULL
           AND v_row.checksum OPERATOR(pg_catalog.<>) _migration_pending.checksum THEN
            RETURN pg_catalog.format('Recorded checksum %s (%s by %s); this script has %s.',
                                     v_row.checksum, v_row.status, v_row.applied_by, _migration_pending.checksum);
        END IF;
        RETURN '';
    END IF;
    IF NOT FOUND AND EXISTS (
        SELECT 1 FROM dbops.migrations b
        WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
          AND dbops.migration_version_key(b.version) IS NOT NULL
          AND dbops.migration_version_key(_migration_pending.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(_migration_pending.version), _migration_pending.version COLLATE pg_catalog."C")) THEN
        RETURN '';
    END IF;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_pending(text, text) FROM PUBLIC;

CREATE FUNCTION dbops.migration_pending(
    version text,
    checksum text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_pending'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.migration_pending(text, text) IS
    'True when the version still has to be applied (for psql \if); takes the ledger lock inside a transaction block; raises DB001 on checksum drift';

CREATE FUNCTION dbops._migration_ledger_finish()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE dbops.migrations m
    SET finished_at = pg_catalog.clock_timestamp(),
        duration_ms = pg_catalog.round(
            extract(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) m.started_at)
            OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3)
    WHERE m.version OPERATOR(pg_catalog.=) NEW.version AND m.finished_at IS NULL;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_ledger_finish() FROM PUBLIC;
-- Rows opened by migration_begin() get their finish time at COMMIT.
CREATE CONSTRAINT TRIGGER migrations_finish_at_commit
    AFTER INSERT OR UPDATE ON dbops.migrations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW.finished_at IS NULL AND NEW.status = 'applied')
    EXECUTE FUNCTION dbops._migration_ledger_finish();

-- The rows of migration_begin(), after its checks.
CREATE FUNCTION dbops._migration_begin(
    version text, description text, checksum text, requires text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, requires)
    VALUES (_migration_begin.version, _migration_begin.description, _migration_begin.checksum, 'applied', _migration_begin.requires)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = NULL,
            duration_ms = NULL, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (_migration_begin.version, 'apply', 'migration_begin', _migration_begin.checksum,
            'recorded when the transaction commits');
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_begin(text, text, text, text[]) FROM PUBLIC;

CREATE FUNCTION dbops.migration_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_begin'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) IS
    'Open a migration in the current transaction of a psql script: ledger lock, checks, row recorded at COMMIT';

-- ---------------------------------------------------------------------------
-- steps outside a transaction block: dbops.migration_step_begin(), _finish()
-- ---------------------------------------------------------------------------
-- A statement that cannot run in a transaction block (CREATE INDEX
-- CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, ...) is a step: begun in a
-- transaction of its own (a row here), run by the client, finished in
-- another (the row moves to dbops.migrations).  A row whose session has
-- ended is a step that did not finish: the migrations health check reports
-- it, and the next migration_step_begin() of the version takes it over.
CREATE TABLE dbops.migration_steps (
    version          text PRIMARY KEY CHECK (btrim(version) <> ''),
    description      text,
    checksum         text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    requires         text[] NOT NULL DEFAULT '{}',
    index_name       text CHECK (pg_catalog.cardinality(pg_catalog.parse_ident(index_name))
                                 BETWEEN 1 AND 3),
    started_by       name NOT NULL DEFAULT current_user,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    backend_pid      integer NOT NULL DEFAULT pg_backend_pid(),
    backend_start    timestamptz
);
COMMENT ON TABLE dbops.migration_steps IS
    'Migration steps begun outside a transaction block (dbops.migration_step_begin) and not finished yet';
SELECT pg_catalog.pg_extension_config_dump('dbops.migration_steps', '');
GRANT SELECT ON dbops.migration_steps TO pg_monitor;

-- Both ends of a step, under the ledger lock (action 'begin' or 'finish';
-- one function, as internal functions are not granted to each other's
-- callers).  index_name resolves with the caller's search_path, as the
-- client's CREATE INDEX resolves it; nothing else does.
--   begin:  'skipped' (decision is not 'apply'), 'open' (run the statement,
--           then finish), or 'applied' (the index is there and valid:
--           nothing to run).  An invalid index of the step's name, left by
--           a build that failed, is dropped (under the migration's
--           lock_timeout) so that the statement can build it again.
--   finish: the step's index must be there and valid; 'applied'.
-- A step open in another session that is still there is refused (DB004):
-- a pid can be reused, so its start time must match too, and a role that
-- may not see the other session's start time counts it as still there.
CREATE FUNCTION dbops._migration_step(
    action text, version text, description text, checksum text,
    requires text[], index_name text, decision text, search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step     dbops.migration_steps;
    v_name     text;
    v_index    pg_catalog.regclass;
    v_valid    boolean;
    v_message  text;
    v_finished timestamptz;
    -- messages quote at most 64 characters of a version or a name
    v_shown    text := CASE WHEN pg_catalog.length(_migration_step.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_step.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_step.version END;
    v_name_shown text;
BEGIN
    SELECT * INTO v_step FROM dbops.migration_steps s
    WHERE s.version OPERATOR(pg_catalog.=) _migration_step.version;
    IF NOT FOUND AND action OPERATOR(pg_catalog.=) 'finish' THEN
        RAISE EXCEPTION 'migration % has no step open', v_shown
            USING ERRCODE = 'DB005',
                  HINT = 'Begin the step with dbops.migration_step_begin(version, description), run its statement, then finish it.';
    END IF;
    IF FOUND AND v_step.backend_pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                   WHERE a.pid OPERATOR(pg_catalog.=) v_step.backend_pid
                     AND (a.backend_start IS NULL OR v_step.backend_start IS NULL
                          OR a.backend_start OPERATOR(pg_catalog.=) v_step.backend_start)) THEN
        RAISE EXCEPTION 'migration % has a step open in another session (pid %)',
            v_shown, v_step.backend_pid
            USING ERRCODE = 'DB004',
                  DETAIL = pg_catalog.format('%s began it at %s.', v_step.started_by, v_step.started_at),
                  HINT = 'The session that began the step finishes it; if that session is stuck, end it (pg_terminate_backend) and run the step again.';
    END IF;

    -- already applied (by this step's earlier run, or by migrate() or a
    -- baseline): nothing to run, and a step row left by an ended session
    -- goes
    IF action OPERATOR(pg_catalog.=) 'begin' AND decision OPERATOR(pg_catalog.<>) 'apply' THEN
        DELETE FROM dbops.migration_steps s WHERE s.version OPERATOR(pg_catalog.=) _migration_step.version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migration_step.version, 'skip', 'migration_step', _migration_step.checksum, decision);
        RETURN 'skipped';
    END IF;

    v_name := CASE WHEN action OPERATOR(pg_catalog.=) 'begin' THEN index_name ELSE v_step.index_name END;
    IF v_name IS NOT NULL THEN
        v_name_shown := CASE WHEN pg_catalog.length(v_name) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(v_name, 64) OPERATOR(pg_catalog.||) '...' ELSE v_name END;
        BEGIN
            IF pg_catalog.cardinality(pg_catalog.parse_ident(v_name)) OPERATOR(pg_catalog.>) 3 THEN
                RAISE EXCEPTION USING ERRCODE = '22023';
            END IF;
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION 'index_name "%" is not a name', v_name_shown
                USING ERRCODE = '22023',
                      HINT = 'Give the index''s name, or schema.name, quoted as in SQL where it needs quotes.';
        END;
        PERFORM pg_catalog.set_config('search_path', _migration_step.search_path, true);
        v_index := pg_catalog.to_regclass(v_name);
        PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                      'pg_catalog, pg_temp'::pg_catalog.text, true);
        IF v_index IS NOT NULL THEN
            SELECT i.indisvalid INTO v_valid FROM pg_catalog.pg_index i
            WHERE i.indexrelid OPERATOR(pg_catalog.=) v_index;
            IF NOT FOUND THEN
                RAISE EXCEPTION '"%" is not an index', v_name_shown
                    USING ERRCODE = '42809',
                          HINT = 'index_name names the index the step''s statement builds.';
            END IF;
        END IF;
    END IF;

    IF action OPERATOR(pg_catalog.=) 'begin' THEN
        INSERT INTO dbops.migration_steps AS s
            (version, description, checksum, requires, index_name, backend_start)
        VALUES (_migration_step.version, _migration_step.description,
                _migration_step.checksum, _migration_step.requires, _migration_step.index_name,
                (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                 WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()))
        ON CONFLICT ON CONSTRAINT migration_steps_pkey DO UPDATE
            SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
                requires = EXCLUDED.requires, index_name = EXCLUDED.index_name,
                started_by = EXCLUDED.started_by, started_at = EXCLUDED.started_at,
                backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start;
        IF v_valid IS NULL THEN
            RETURN 'open';
        ELSIF NOT v_valid THEN
            RAISE NOTICE 'dropping the invalid index %, left by a build that did not finish', v_index
                USING HINT = 'The step''s statement builds it again.';
            EXECUTE pg_catalog.format('DROP INDEX %s', v_index);
            RETURN 'open';
        END IF;
        v_message := pg_catalog.format('index %s was already there and valid', v_index);
    ELSIF v_name IS NOT NULL AND v_index IS NULL THEN
        RAISE EXCEPTION 'index "%" of migration % does not exist', v_name_shown, v_shown
            USING ERRCODE = '42704',
                  HINT = 'The step''s statement did not build it: run the step again from dbops.migration_step_begin().';
    ELSIF v_name IS NOT NULL AND NOT v_valid THEN
        RAISE EXCEPTION 'index % of migration % is invalid', v_index, v_shown
            USING ERRCODE = '55000',
                  DETAIL = 'Its concurrent build failed or did not finish.',
                  HINT = 'Run the step again: dbops.migration_step_begin() drops the invalid index, and the statement builds it anew.';
    END IF;

    -- applied: the step's row moves to the ledger
    v_finished := pg_catalog.clock_timestamp();
    DELETE FROM dbops.migration_steps s
    WHERE s.version OPERATOR(pg_catalog.=) _migration_step.version
    RETURNING * INTO v_step;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, started_at, finished_at,
         duration_ms, requires)
    VALUES (v_step.version, v_step.description, v_step.checksum, 'applied',
            v_step.started_at, v_finished,
            pg_catalog.round(extract(epoch FROM v_finished OPERATOR(pg_catalog.-) v_step.started_at)
                             OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3),
            v_step.requires)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (v_step.version, 'apply', 'migration_step', v_step.checksum, v_message);
    RETURN 'applied';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_step(text, text, text, text, text[], text, text, text) FROM PUBLIC;

-- No SET clause on either: index_name resolves with the caller's
-- search_path, as the client's statement does (ledger.c).
CREATE FUNCTION dbops.migration_step_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL,
    index_name text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_step_begin'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.migration_step_begin(text, text, text, text[], boolean, text) IS
    'Begin a migration step that runs outside a transaction block (CREATE INDEX CONCURRENTLY, ...): returns open, skipped or applied';

CREATE FUNCTION dbops.migration_step_finish(version text)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_step_finish'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.migration_step_finish(text) IS
    'Finish a migration step begun with dbops.migration_step_begin(): checks its index is valid and records it applied';
-- writing functions: granted to the deploying role (doc/ledger.md, "Privileges")
REVOKE ALL ON FUNCTION dbops.migration_step_begin(text, text, text, text[], boolean, text),
    dbops.migration_step_finish(text) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- DDL capture
-- ---------------------------------------------------------------------------
-- SECURITY DEFINER so that migration_objects needs no grant.  It records
-- only while the ledger has a migration open (dbops._migration_capture_version()),
-- whatever the session set; the caller's temporary schema comes last in its
-- search_path, and every name here is schema-qualified.
CREATE FUNCTION dbops._migration_capture_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_version text := dbops._migration_capture_version();
BEGIN
    IF v_version IS NULL THEN
        RETURN;
    END IF;
    IF TG_EVENT OPERATOR(pg_catalog.=) 'sql_drop' THEN
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, TG_TAG, d.object_type, d.schema_name, d.object_identity
        FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
        WHERE d.original OR d.normal;
    ELSE
        INSERT INTO dbops.migration_objects
            (version, command_tag, object_type, schema_name, object_identity)
        SELECT v_version, c.command_tag, c.object_type, c.schema_name, c.object_identity
        FROM pg_catalog.pg_event_trigger_ddl_commands() AS c;
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
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_catalog.has_table_privilege('dbops.migrations', 'SELECT')
       OR NOT pg_catalog.has_table_privilege('dbops.migration_events', 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for the migration ledger'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'dbops.migration_status() reads dbops.migrations and dbops.migration_events.',
                  HINT = 'Grant the role pg_monitor, or SELECT on dbops.migrations and dbops.migration_events.';
    END IF;
    IF checksums IS NOT NULL
       AND pg_catalog.jsonb_typeof(checksums) OPERATOR(pg_catalog.<>) 'object' THEN
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
        FROM pg_catalog.jsonb_each_text(coalesce(checksums, '{}'::pg_catalog.jsonb)) AS j
    ), versions AS (
        SELECT m.version FROM dbops.migrations m
        UNION SELECT x.version FROM expected x
        UNION SELECT l.version FROM last l
    )
    SELECT v.version, m.description,
           CASE WHEN m.version IS NOT NULL THEN m.status
                WHEN EXISTS (
                    SELECT 1 FROM dbops.migrations b
                    WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
                      AND dbops.migration_version_key(b.version) IS NOT NULL
                      AND dbops.migration_version_key(v.version) IS NOT NULL
                      AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
                          OPERATOR(pg_catalog.>=)
                          ROW(dbops.migration_version_key(v.version), v.version COLLATE pg_catalog."C"))
                     THEN 'baseline'::pg_catalog.text
                WHEN l.event OPERATOR(pg_catalog.=) 'failed' THEN 'failed'::pg_catalog.text
                ELSE 'pending'::pg_catalog.text END,
           m.checksum, x.checksum,
           CASE WHEN x.checksum IS NULL OR m.checksum IS NULL
                     OR NOT m.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[])
                     THEN NULL
                ELSE m.checksum OPERATOR(pg_catalog.<>) x.checksum END,
           m.applied_by, m.started_at, m.finished_at, m.duration_ms, m.requires,
           l.event, l.event_time, l.sqlstate, l.message
    FROM versions v
    LEFT JOIN dbops.migrations m ON m.version OPERATOR(pg_catalog.=) v.version
    LEFT JOIN expected x ON x.version OPERATOR(pg_catalog.=) v.version
    LEFT JOIN last l ON l.version OPERATOR(pg_catalog.=) v.version
    ORDER BY dbops.migration_version_key(v.version) NULLS LAST, v.version COLLATE pg_catalog."C";
END;
$$;
COMMENT ON FUNCTION dbops.migration_status(jsonb) IS
    'Every version with status, timing, last event, and drift against the checksums supplied as {"version": "checksum"}';

-- The part after the argument checks.  search_path is the caller's: the
-- rollback body runs with it (and with the caller's rights), nothing else
-- does.  The refusals DB005 and DB006 are not failed attempts (ledger.c).
CREATE FUNCTION dbops._migration_rollback(
    version text, body text, checksum text, search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row  dbops.migrations;
    v_deps text[];
    -- messages quote at most 64 characters of a version
    v_shown text := CASE WHEN pg_catalog.length(_migration_rollback.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_rollback.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_rollback.version END;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_rollback.version;
    IF NOT FOUND OR v_row.status OPERATOR(pg_catalog.<>) 'applied' THEN
        RAISE EXCEPTION 'migration % is not applied', v_shown
            USING ERRCODE = 'DB005',
                  DETAIL = CASE WHEN FOUND THEN pg_catalog.format('Its status is %s.', v_row.status)
                                ELSE 'It is not in dbops.migrations.' END,
                  HINT = 'Only applied versions can be rolled back; see dbops.migration_status().';
    END IF;
    SELECT pg_catalog.array_agg(m.version ORDER BY m.version) INTO v_deps
    FROM dbops.migrations m
    WHERE m.status OPERATOR(pg_catalog.=) 'applied'
      AND _migration_rollback.version OPERATOR(pg_catalog.=) ANY (m.requires);
    IF v_deps IS NOT NULL THEN
        RAISE EXCEPTION 'migration % is required by applied migrations: %',
            v_shown,
            (SELECT pg_catalog.string_agg(CASE WHEN pg_catalog.length(t.x) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(t.x, 64) OPERATOR(pg_catalog.||) '...' ELSE t.x END, ', ' ORDER BY t.o)
                   FROM pg_catalog.unnest(v_deps[1:10]) WITH ORDINALITY AS t (x, o))
               OPERATOR(pg_catalog.||)
               CASE WHEN pg_catalog.cardinality(v_deps) OPERATOR(pg_catalog.>) 10
                    THEN pg_catalog.format(' and %s more',
                                           pg_catalog.cardinality(v_deps) OPERATOR(pg_catalog.-) 10)
                    ELSE '' END
            USING ERRCODE = 'DB006',
                  HINT = 'Roll back the dependent versions first.';
    END IF;
    IF body IS NOT NULL THEN
        PERFORM pg_catalog.set_config('search_path', search_path, true);
        EXECUTE body;
        -- under whatever search_path the body left: qualified, and first
        PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                      'pg_catalog, pg_temp'::pg_catalog.text, true);
    END IF;
    UPDATE dbops.migrations m SET status = 'rolled_back'
    WHERE m.version OPERATOR(pg_catalog.=) _migration_rollback.version;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (_migration_rollback.version, 'rollback', 'migration_rollback', _migration_rollback.checksum,
            CASE WHEN body IS NULL THEN 'recorded without a rollback body' END);
    RETURN 'rolled_back';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_rollback(text, text, text, text) FROM PUBLIC;

-- No SET clause: the body runs with the caller's search_path (ledger.c).
CREATE FUNCTION dbops.migration_rollback(
    version text,
    body text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_rollback'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION dbops.migration_rollback(text, text) IS
    'Run the rollback body of an applied version (if given) and mark it rolled_back';

CREATE FUNCTION dbops._migration_baseline(version text, description text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row dbops.migrations;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_baseline.version;
    IF FOUND AND v_row.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'migration % is already %', CASE WHEN pg_catalog.length(_migration_baseline.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_baseline.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_baseline.version END, v_row.status
            USING ERRCODE = 'DB004',
                  HINT = 'A baseline is recorded for a version not applied yet, normally newer than every applied one; see dbops.migration_status().';
    END IF;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, finished_at, duration_ms)
    VALUES (_migration_baseline.version, _migration_baseline.description, NULL, 'baseline', pg_catalog.clock_timestamp(), 0)
    ON CONFLICT ON CONSTRAINT migrations_pkey DO UPDATE
        SET description = EXCLUDED.description, checksum = NULL, status = 'baseline',
            applied_by = EXCLUDED.applied_by, "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name, client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = 0, requires = '{}';
    INSERT INTO dbops.migration_events (version, event, operation, message)
    VALUES (_migration_baseline.version, 'baseline', 'migration_baseline',
            'versions up to this one are taken as applied');
    RETURN 'baseline';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_baseline(text, text) FROM PUBLIC;

CREATE FUNCTION dbops.migration_baseline(
    version text,
    description text DEFAULT 'baseline')
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_baseline'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.migration_baseline(text, text) IS
    'Record that the schema already contains every version up to this one';

CREATE FUNCTION dbops._migration_repair(version text, checksum text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_row dbops.migrations;
BEGIN
    SELECT * INTO v_row FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) _migration_repair.version;
    IF FOUND THEN
        UPDATE dbops.migrations m SET checksum = _migration_repair.checksum
        WHERE m.version OPERATOR(pg_catalog.=) _migration_repair.version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migration_repair.version, 'repair', 'migration_repair', _migration_repair.checksum,
                pg_catalog.format('checksum %s -> %s', coalesce(v_row.checksum, 'NULL'),
                                  coalesce(_migration_repair.checksum, 'NULL')));
        RETURN 'repaired';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.migration_events e
               WHERE e.version OPERATOR(pg_catalog.=) _migration_repair.version) THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (_migration_repair.version, 'repair', 'migration_repair', _migration_repair.checksum,
                'failed attempts acknowledged');
        RETURN 'acknowledged';
    END IF;
    RAISE EXCEPTION 'migration % is not in the ledger', CASE WHEN pg_catalog.length(_migration_repair.version) OPERATOR(pg_catalog.>) 64 THEN pg_catalog."left"(_migration_repair.version, 64) OPERATOR(pg_catalog.||) '...' ELSE _migration_repair.version END
        USING ERRCODE = 'DB005',
              HINT = 'See dbops.migration_status() for the recorded versions.';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_repair(text, text) FROM PUBLIC;

CREATE FUNCTION dbops.migration_repair(
    version text,
    checksum text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_repair'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.migration_repair(text, text) IS
    'Record a deliberate new checksum for a version (NULL: stop checking), or acknowledge its failed attempts';

-- Reads the source's versions; run by ledger.c as the source's owner in a
-- security-restricted operation.  Returns {"shape": ..., "rows": [...]}.
-- The version column must be of a text or integer type (or a domain over
-- one), whose text form does not depend on settings.
CREATE FUNCTION dbops._migration_import_read(source regclass)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cols  text[];
    v_shape text;
    v_sql   text;
    v_rows  jsonb;
    v_col   text;
    v_type  pg_catalog.regtype;
    v_base  pg_catalog.regtype;
BEGIN
    SELECT pg_catalog.array_agg(a.attname::pg_catalog.text) INTO v_cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) source
      AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;

    IF v_cols OPERATOR(pg_catalog.@>)
       '{installed_rank,version,description,installed_by,installed_on,execution_time,success}'::pg_catalog.text[] THEN
        v_shape := 'flyway';
        v_sql := pg_catalog.format($q$
            SELECT s.version::pg_catalog.text, s.description::pg_catalog.text,
                   s.installed_by::pg_catalog.text, s.installed_on::pg_catalog.timestamptz,
                   s.execution_time::pg_catalog.numeric, s.installed_rank
            FROM %s s
            WHERE s.version IS NOT NULL AND s.success$q$, source);
    ELSIF v_cols OPERATOR(pg_catalog.@>) '{version_num}'::pg_catalog.text[] THEN
        v_shape := 'alembic';
        v_sql := pg_catalog.format($q$
            SELECT s.version_num::pg_catalog.text, 'alembic revision'::pg_catalog.text,
                   NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric,
                   NULL::pg_catalog.int4
            FROM %s s WHERE s.version_num IS NOT NULL$q$, source);
    ELSIF v_cols OPERATOR(pg_catalog.@>) '{version}'::pg_catalog.text[] THEN
        v_shape := 'schema_migrations';
        v_sql := pg_catalog.format($q$
            SELECT s.version::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text,
                   NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric, NULL::pg_catalog.int4
            FROM %s s WHERE s.version IS NOT NULL$q$, source);
    ELSE
        RAISE EXCEPTION '"%" is not a migration ledger dbops can import', source
            USING ERRCODE = 'DB007',
                  HINT = 'dbops.migration_import() reads a table with a "version" column (schema_migrations), alembic_version (version_num), or flyway_schema_history.';
    END IF;

    v_col := CASE v_shape WHEN 'alembic' THEN 'version_num' ELSE 'version' END;
    SELECT a.atttypid INTO v_type
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) source
      AND a.attname OPERATOR(pg_catalog.=) v_col::pg_catalog.name AND NOT a.attisdropped;
    v_base := v_type;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid OPERATOR(pg_catalog.=) v_base)
          OPERATOR(pg_catalog.=) 'd' LOOP
        SELECT t.typbasetype INTO v_base FROM pg_catalog.pg_type t
        WHERE t.oid OPERATOR(pg_catalog.=) v_base;
    END LOOP;
    IF NOT v_base OPERATOR(pg_catalog.=)
           ANY ('{text,varchar,bpchar,name,int2,int4,int8}'::pg_catalog.regtype[]) THEN
        RAISE EXCEPTION 'column "%" of % is of type %, not of a text or integer type', v_col, source, v_type
            USING ERRCODE = 'datatype_mismatch',
                  HINT = pg_catalog.format('Import from a view that casts it, such as CREATE VIEW v AS SELECT %I::text AS %I FROM %s.',
                                           v_col, v_col, source);
    END IF;

    -- the rows in order, as JSON, so that nothing of the source's types
    -- leaves this function
    EXECUTE pg_catalog.format($q$
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   s.version, s.description, s.installed_by, s.installed_on, s.execution_time)
                   ORDER BY s.ord NULLS LAST, s.n), '[]'::pg_catalog.jsonb)
        FROM (SELECT q.*, pg_catalog.row_number() OVER () AS n
              FROM (%s) AS q (version, description, installed_by, installed_on, execution_time, ord)) s$q$,
        v_sql) INTO v_rows;
    RETURN pg_catalog.jsonb_build_object('shape', v_shape, 'rows', v_rows);
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_import_read(regclass) FROM PUBLIC;

-- Writes the versions read by _migration_import_read() with the caller's
-- rights.  source names the source in the events.
CREATE FUNCTION dbops._migration_import(source text, rows_read jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count bigint;
BEGIN
    WITH src AS (
        SELECT r.value OPERATOR(pg_catalog.->>) 0 AS version,
               r.value OPERATOR(pg_catalog.->>) 1 AS description,
               r.value OPERATOR(pg_catalog.->>) 2 AS installed_by,
               (r.value OPERATOR(pg_catalog.->>) 3)::pg_catalog.timestamptz AS installed_on,
               (r.value OPERATOR(pg_catalog.->>) 4)::pg_catalog.numeric AS execution_time,
               r.ord
        FROM pg_catalog.jsonb_array_elements(rows_read OPERATOR(pg_catalog.->) 'rows')
             WITH ORDINALITY AS r(value, ord)
    ), ins AS (
        INSERT INTO dbops.migrations AS m
            (version, description, checksum, status, applied_by, started_at,
             finished_at, duration_ms)
        SELECT DISTINCT ON (s.version) pg_catalog.btrim(s.version),
               coalesce(s.description, 'imported'), NULL, 'applied',
               coalesce(s.installed_by, CURRENT_USER::pg_catalog.text)::pg_catalog.name,
               coalesce(s.installed_on, pg_catalog.clock_timestamp()),
               coalesce(s.installed_on, pg_catalog.clock_timestamp()), s.execution_time
        FROM (SELECT * FROM src ORDER BY src.ord) s
        WHERE pg_catalog.btrim(s.version) OPERATOR(pg_catalog.<>) ''
        ON CONFLICT (version) DO NOTHING
        RETURNING m.version)
    INSERT INTO dbops.migration_events (version, event, operation, message)
    SELECT i.version, 'import', 'migration_import',
           pg_catalog.format('imported from %s (%s)', source,
                             rows_read OPERATOR(pg_catalog.->>) 'shape')
    FROM ins i;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_import(text, jsonb) FROM PUBLIC;

CREATE FUNCTION dbops.migration_import(source regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dbops_migration_import'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.migration_import(regclass) IS
    'Adopt an existing ledger table (schema_migrations, alembic_version, flyway_schema_history); returns the number of versions imported';

-- Writing functions are granted deliberately (see doc/ledger.md, "Privileges").
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_begin(text, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_rollback(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_baseline(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_repair(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dbops.migration_import(regclass) FROM PUBLIC;
