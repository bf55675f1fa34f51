-- dbops 1.0 -> 1.1 upgrade script
--
-- Written by hand, one section per capability in the order of the install
-- script's fragments.  test/t/080_upgrade.pl checks that a 1.0 install
-- updated with this script and a fresh 1.1 install have the same objects,
-- definitions, privileges and settings.

\echo Use "ALTER EXTENSION dbops UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------- dbops.sql

-- --------------------------------------------------------------- health.sql

-- ------------------------------------------------------------- locktree.sql

-- ---------------------------------------------------------------- bloat.sql

-- --------------------------------------------------------------- reaper.sql

-- --------------------------------------------------------------- ledger.sql

-- Every function pins search_path = pg_catalog, pg_temp and names everything
-- by schema; the entry points that write the ledger or run a script are C
-- (ledger.c) and call pinned implementations directly; the helpers 1.0
-- called from SQL are gone; every internal function is revoked from
-- PUBLIC; the DDL capture records only what the ledger opened.
REVOKE ALL ON FUNCTION dbops._migration_events_append_only() FROM PUBLIC;

CREATE FUNCTION dbops._migration_capture_version()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_capture_version'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION dbops._migration_capture_version() FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.string_to_array(
               pg_catalog.translate(substring(version FROM '^[0-9]+(?:[._][0-9]+)*'), '_', '.'),
               '.')::pg_catalog.numeric[]
$$;

CREATE OR REPLACE FUNCTION dbops._migration_decide(
    p_version text, p_checksum text, p_requires text[],
    p_allow_out_of_order boolean, p_caller text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r         dbops.migrations;
    v_base    text;
    v_missing text[];
    v_later   text;
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) p_version;
    IF FOUND AND r.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        IF r.checksum IS NOT NULL AND p_checksum IS NOT NULL
           AND r.checksum OPERATOR(pg_catalog.<>) p_checksum THEN
            RAISE EXCEPTION 'checksum drift: migration % was applied from a different script', p_version
                USING ERRCODE = 'DB001',
                      DETAIL = pg_catalog.format('Recorded checksum %s (%s by %s); this script has %s.',
                                                 r.checksum, r.status, r.applied_by, p_checksum),
                      HINT = 'Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).';
        END IF;
        IF p_caller OPERATOR(pg_catalog.=) 'migration_begin' THEN
            RAISE EXCEPTION 'migration % is already %', p_version, r.status
                USING ERRCODE = 'DB004',
                      HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
        END IF;
        RETURN pg_catalog.format('already %s', r.status);
    END IF;

    IF NOT FOUND THEN
        SELECT b.version INTO v_base
        FROM dbops.migrations b
        WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
          AND dbops.migration_version_key(b.version) IS NOT NULL
          AND dbops.migration_version_key(p_version) IS NOT NULL
          AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(p_version), p_version COLLATE pg_catalog."C")
        ORDER BY dbops.migration_version_key(b.version) DESC, b.version COLLATE pg_catalog."C" DESC
        LIMIT 1;
        IF v_base IS NOT NULL THEN
            IF p_caller OPERATOR(pg_catalog.=) 'migration_begin' THEN
                RAISE EXCEPTION 'migration % is covered by baseline %', p_version, v_base
                    USING ERRCODE = 'DB004',
                          HINT = 'Guard the script with \if on dbops.migration_pending(version) inside its transaction, as the README shows.';
            END IF;
            RETURN pg_catalog.format('covered by baseline %s', v_base);
        END IF;
    END IF;

    SELECT pg_catalog.array_agg(u.req ORDER BY u.ord) INTO v_missing
    FROM pg_catalog.unnest(p_requires) WITH ORDINALITY AS u(req, ord)
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
                        p_version, pg_catalog.array_to_string(v_missing, ', ')
            USING ERRCODE = 'DB002',
                  HINT = 'Apply the required versions first; dbops.migration_status() shows what is applied.';
    END IF;

    IF NOT coalesce(p_allow_out_of_order,
                    pg_catalog.current_setting('dbops.migration_allow_out_of_order')::boolean)
       AND dbops.migration_version_key(p_version) IS NOT NULL THEN
        SELECT m.version INTO v_later
        FROM dbops.migrations m
        WHERE m.status OPERATOR(pg_catalog.=) 'applied'
          AND m.version OPERATOR(pg_catalog.<>) p_version
          AND dbops.migration_version_key(m.version) IS NOT NULL
          AND ROW(dbops.migration_version_key(m.version), m.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>) ROW(dbops.migration_version_key(p_version), p_version COLLATE pg_catalog."C")
        ORDER BY dbops.migration_version_key(m.version) DESC, m.version COLLATE pg_catalog."C" DESC
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
REVOKE ALL ON FUNCTION dbops._migration_decide(text, text, text[], boolean, text) FROM PUBLIC;

CREATE FUNCTION dbops._migrate(
    p_version text, p_description text, p_body text, p_requires text[],
    p_checksum text, p_decision text, p_search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_started  timestamptz;
    v_finished timestamptz;
BEGIN
    IF p_decision OPERATOR(pg_catalog.<>) 'apply' THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (p_version, 'skip', 'migrate', p_checksum, p_decision);
        RETURN 'skipped';
    END IF;

    v_started := pg_catalog.clock_timestamp();
    PERFORM pg_catalog.set_config('search_path', p_search_path, true);
    EXECUTE p_body;
    -- under whatever search_path the body left: qualified, and first
    PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                  'pg_catalog, pg_temp'::pg_catalog.text, true);
    v_finished := pg_catalog.clock_timestamp();

    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, started_at, finished_at,
         duration_ms, requires)
    VALUES (p_version, p_description, p_checksum, 'applied', v_started,
            v_finished,
            pg_catalog.round(extract(epoch FROM v_finished OPERATOR(pg_catalog.-) v_started)
                             OPERATOR(pg_catalog.*) 1000::pg_catalog.numeric, 3),
            p_requires)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = EXCLUDED.duration_ms, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum)
    VALUES (p_version, 'apply', 'migrate', p_checksum);
    RETURN 'applied';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migrate(text, text, text, text[], text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migrate(
    version text,
    description text,
    body text,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migrate'
LANGUAGE C VOLATILE;

CREATE FUNCTION dbops._migration_pending(p_version text, p_checksum text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r dbops.migrations;
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) p_version;
    IF FOUND AND r.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        IF r.checksum IS NOT NULL AND p_checksum IS NOT NULL
           AND r.checksum OPERATOR(pg_catalog.<>) p_checksum THEN
            RETURN pg_catalog.format('Recorded checksum %s (%s by %s); this script has %s.',
                                     r.checksum, r.status, r.applied_by, p_checksum);
        END IF;
        RETURN '';
    END IF;
    IF NOT FOUND AND EXISTS (
        SELECT 1 FROM dbops.migrations b
        WHERE b.status OPERATOR(pg_catalog.=) 'baseline'
          AND dbops.migration_version_key(b.version) IS NOT NULL
          AND dbops.migration_version_key(p_version) IS NOT NULL
          AND ROW(dbops.migration_version_key(b.version), b.version COLLATE pg_catalog."C")
              OPERATOR(pg_catalog.>=) ROW(dbops.migration_version_key(p_version), p_version COLLATE pg_catalog."C")) THEN
        RETURN '';
    END IF;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_pending(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_pending(
    version text,
    checksum text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dbops_migration_pending'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._migration_ledger_finish()
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

CREATE FUNCTION dbops._migration_begin(
    p_version text, p_description text, p_checksum text, p_requires text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, requires)
    VALUES (p_version, p_description, p_checksum, 'applied', p_requires)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = EXCLUDED.checksum,
            status = 'applied', applied_by = EXCLUDED.applied_by,
            "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name,
            client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = NULL,
            duration_ms = NULL, requires = EXCLUDED.requires;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (p_version, 'apply', 'migration_begin', p_checksum,
            'recorded when the transaction commits');
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_begin(text, text, text, text[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_begin(
    version text,
    description text,
    checksum text DEFAULT NULL,
    requires text[] DEFAULT '{}',
    allow_out_of_order boolean DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_begin'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops._migration_capture_ddl()
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

CREATE OR REPLACE FUNCTION dbops.migration_status(
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

CREATE FUNCTION dbops._migration_rollback(
    p_version text, p_body text, p_checksum text, p_search_path text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r      dbops.migrations;
    v_deps text[];
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) p_version;
    IF NOT FOUND OR r.status OPERATOR(pg_catalog.<>) 'applied' THEN
        RAISE EXCEPTION 'migration % is not applied', p_version
            USING ERRCODE = 'DB005',
                  DETAIL = CASE WHEN FOUND THEN pg_catalog.format('Its status is %s.', r.status)
                                ELSE 'It is not in dbops.migrations.' END,
                  HINT = 'Only applied versions can be rolled back; see dbops.migration_status().';
    END IF;
    SELECT pg_catalog.array_agg(m.version ORDER BY m.version) INTO v_deps
    FROM dbops.migrations m
    WHERE m.status OPERATOR(pg_catalog.=) 'applied'
      AND p_version OPERATOR(pg_catalog.=) ANY (m.requires);
    IF v_deps IS NOT NULL THEN
        RAISE EXCEPTION 'migration % is required by applied migrations: %',
                        p_version, pg_catalog.array_to_string(v_deps, ', ')
            USING ERRCODE = 'DB006',
                  HINT = 'Roll back the dependent versions first.';
    END IF;
    IF p_body IS NOT NULL THEN
        PERFORM pg_catalog.set_config('search_path', p_search_path, true);
        EXECUTE p_body;
        -- under whatever search_path the body left: qualified, and first
        PERFORM pg_catalog.set_config('search_path'::pg_catalog.text,
                                      'pg_catalog, pg_temp'::pg_catalog.text, true);
    END IF;
    UPDATE dbops.migrations m SET status = 'rolled_back'
    WHERE m.version OPERATOR(pg_catalog.=) p_version;
    INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
    VALUES (p_version, 'rollback', 'migration_rollback', p_checksum,
            CASE WHEN p_body IS NULL THEN 'recorded without a rollback body' END);
    RETURN 'rolled_back';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_rollback(text, text, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_rollback(
    version text,
    body text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_rollback'
LANGUAGE C VOLATILE;

CREATE FUNCTION dbops._migration_baseline(p_version text, p_description text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r dbops.migrations;
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) p_version;
    IF FOUND AND r.status OPERATOR(pg_catalog.=) ANY ('{applied,baseline}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'migration % is already %', p_version, r.status
            USING ERRCODE = 'DB004';
    END IF;
    INSERT INTO dbops.migrations AS m
        (version, description, checksum, status, finished_at, duration_ms)
    VALUES (p_version, p_description, NULL, 'baseline', pg_catalog.clock_timestamp(), 0)
    ON CONFLICT (version) DO UPDATE
        SET description = EXCLUDED.description, checksum = NULL, status = 'baseline',
            applied_by = EXCLUDED.applied_by, "session_user" = EXCLUDED."session_user",
            application_name = EXCLUDED.application_name, client_addr = EXCLUDED.client_addr,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
            duration_ms = 0, requires = '{}';
    INSERT INTO dbops.migration_events (version, event, operation, message)
    VALUES (p_version, 'baseline', 'migration_baseline',
            'versions up to this one are taken as applied');
    RETURN 'baseline';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_baseline(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_baseline(
    version text,
    description text DEFAULT 'baseline')
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_baseline'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION dbops._migration_repair(p_version text, p_checksum text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r dbops.migrations;
BEGIN
    SELECT * INTO r FROM dbops.migrations m WHERE m.version OPERATOR(pg_catalog.=) p_version;
    IF FOUND THEN
        UPDATE dbops.migrations m SET checksum = p_checksum
        WHERE m.version OPERATOR(pg_catalog.=) p_version;
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (p_version, 'repair', 'migration_repair', p_checksum,
                pg_catalog.format('checksum %s -> %s', coalesce(r.checksum, 'NULL'),
                                  coalesce(p_checksum, 'NULL')));
        RETURN 'repaired';
    END IF;
    IF EXISTS (SELECT 1 FROM dbops.migration_events e
               WHERE e.version OPERATOR(pg_catalog.=) p_version) THEN
        INSERT INTO dbops.migration_events (version, event, operation, checksum, message)
        VALUES (p_version, 'repair', 'migration_repair', p_checksum,
                'failed attempts acknowledged');
        RETURN 'acknowledged';
    END IF;
    RAISE EXCEPTION 'migration % is not in the ledger', p_version
        USING ERRCODE = 'DB005',
              HINT = 'See dbops.migration_status() for the recorded versions.';
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_repair(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_repair(
    version text,
    checksum text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_migration_repair'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION dbops._migration_import_read(p_source regclass)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cols  text[];
    v_shape text;
    v_sql   text;
    v_rows  jsonb;
BEGIN
    SELECT pg_catalog.array_agg(a.attname::pg_catalog.text) INTO v_cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) p_source
      AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;

    IF v_cols OPERATOR(pg_catalog.@>)
       '{installed_rank,version,description,installed_by,installed_on,execution_time,success}'::pg_catalog.text[] THEN
        v_shape := 'flyway';
        v_sql := pg_catalog.format($q$
            SELECT s.version::pg_catalog.text, s.description::pg_catalog.text,
                   s.installed_by::pg_catalog.text, s.installed_on::pg_catalog.timestamptz,
                   s.execution_time::pg_catalog.numeric, s.installed_rank
            FROM %s s
            WHERE s.version IS NOT NULL AND s.success$q$, p_source);
    ELSIF v_cols OPERATOR(pg_catalog.@>) '{version_num}'::pg_catalog.text[] THEN
        v_shape := 'alembic';
        v_sql := pg_catalog.format($q$
            SELECT s.version_num::pg_catalog.text, 'alembic revision'::pg_catalog.text,
                   NULL::pg_catalog.text, NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric,
                   NULL::pg_catalog.int4
            FROM %s s WHERE s.version_num IS NOT NULL$q$, p_source);
    ELSIF v_cols OPERATOR(pg_catalog.@>) '{version}'::pg_catalog.text[] THEN
        v_shape := 'schema_migrations';
        v_sql := pg_catalog.format($q$
            SELECT s.version::pg_catalog.text, NULL::pg_catalog.text, NULL::pg_catalog.text,
                   NULL::pg_catalog.timestamptz, NULL::pg_catalog.numeric, NULL::pg_catalog.int4
            FROM %s s WHERE s.version IS NOT NULL$q$, p_source);
    ELSE
        RAISE EXCEPTION '"%" is not a migration ledger dbops can import', p_source
            USING ERRCODE = 'DB007',
                  HINT = 'dbops.migration_import() reads a table with a "version" column (schema_migrations), alembic_version (version_num), or flyway_schema_history.';
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

CREATE FUNCTION dbops._migration_import(p_source text, p_read jsonb)
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
        FROM pg_catalog.jsonb_array_elements(p_read OPERATOR(pg_catalog.->) 'rows')
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
           pg_catalog.format('imported from %s (%s)', p_source,
                             p_read OPERATOR(pg_catalog.->>) 'shape')
    FROM ins i;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
REVOKE ALL ON FUNCTION dbops._migration_import(text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.migration_import(source regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'dbops_migration_import'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- replaced by the C entry points (their C symbols stay for 1.0)
DROP FUNCTION dbops._migration_failed(text, text, text, text, text);
DROP FUNCTION dbops._migration_record_failure(text, text, text, text, text, text, text, text, text, integer);
DROP FUNCTION dbops._migration_arm(text, text, text, text, text, text, text, text, text, integer);
DROP FUNCTION dbops._ledger_in_transaction_block();
DROP FUNCTION dbops._ledger_writable(text);
DROP FUNCTION dbops._ledger_check_version(text);
DROP FUNCTION dbops._ledger_check_checksum(text);
DROP FUNCTION dbops._ledger_lock();
DROP FUNCTION dbops._ledger_covering_baseline(text);

-- ------------------------------------------------------------ retention.sql

-- ------------------------------------------------------------- schedule.sql

-- Every function pins search_path = pg_catalog, pg_temp and names everything
-- by schema, and so do the job commands schedule() writes; cron_jobs() shows
-- a job's messages only to its owner and superusers; health_snapshot()
-- keeps none; health_metrics() is for pg_monitor, not PUBLIC.

CREATE OR REPLACE FUNCTION dbops.cron_status(
    OUT loaded boolean, OUT cron_database text, OUT installed boolean,
    OUT version text, OUT log_run boolean, OUT timezone text)
RETURNS record
AS 'MODULE_PATHNAME', 'dbops_cron_status'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops.require_pg_cron()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
BEGIN
    st := dbops.cron_status();
    IF st.installed THEN
        IF pg_catalog.string_to_array(pg_catalog.split_part(st.version, '-', 1), '.')::pg_catalog.int4[]
           OPERATOR(pg_catalog.<) '{1,3}'::pg_catalog.int4[] THEN
            RAISE EXCEPTION 'pg_cron % is too old for dbops', st.version
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Run ALTER EXTENSION pg_cron UPDATE (dbops needs pg_cron 1.4 or later).';
        END IF;
        RETURN st.version;
    END IF;
    IF NOT st.loaded THEN
        RAISE EXCEPTION 'pg_cron is not available on this server'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron is not loaded: it is not in shared_preload_libraries.',
                  HINT = 'Add pg_cron to shared_preload_libraries, restart the server, and run '
                         'CREATE EXTENSION pg_cron in the database named by cron.database_name.';
    END IF;
    IF st.cron_database IS NULL
       OR st.cron_database OPERATOR(pg_catalog.<>) pg_catalog.current_database()::pg_catalog.text THEN
        RAISE EXCEPTION 'pg_cron keeps its jobs in database "%", not in "%"',
                st.cron_database, pg_catalog.current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'pg_cron schedules and records jobs only in the database named by cron.database_name.',
                  HINT = pg_catalog.format('Connect to database %I, CREATE EXTENSION dbops there, and use '
                                           'dbops.schedule(database => %L) and dbops.jobs from there.',
                                           st.cron_database, pg_catalog.current_database());
    END IF;
    RAISE EXCEPTION 'pg_cron is not installed in this database'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'pg_cron is in shared_preload_libraries and cron.database_name names this database.',
              HINT = 'Run CREATE EXTENSION pg_cron in this database.';
END;
$$;

CREATE FUNCTION dbops._health_snapshot_rows(
    OUT check_name text, OUT status text, OUT value numeric, OUT unit text,
    OUT detail text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_health_snapshot_rows'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops._health_snapshot_rows() FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.health_snapshot(
    keep interval DEFAULT '14 days',
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_positive_interval('keep', keep, 'History older than keep is deleted, e.g. keep => ''14 days''.');
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot take a health snapshot on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Schedule dbops.health_snapshot() on the primary.';
    END IF;
    INSERT INTO dbops.health_history AS h (taken_at, check_name, status, value, unit, detail)
    SELECT pg_catalog.now(), r.check_name, r.status, r.value, r.unit, r.detail
    FROM dbops._health_snapshot_rows() r
    ON CONFLICT (check_name, taken_at) DO UPDATE
        SET status = excluded.status, value = excluded.value,
            unit = excluded.unit, detail = excluded.detail;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    DELETE FROM dbops.health_history h
    WHERE h.taken_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep);
    GET DIAGNOSTICS deleted = ROW_COUNT;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.bloat_snapshot(
    keep interval DEFAULT '90 days',
    method text DEFAULT 'auto',
    min_size bigint DEFAULT 1048576,
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_positive_interval('keep', keep, 'History older than keep is deleted, e.g. keep => ''90 days''.');
    IF method IS NULL THEN
        RAISE EXCEPTION 'method must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use one of the methods of dbops.bloat(), e.g. ''auto''.';
    END IF;
    IF min_size IS NULL OR min_size OPERATOR(pg_catalog.<) 0::pg_catalog.int8 THEN
        RAISE EXCEPTION 'min_size must be zero or more bytes, not %', coalesce(min_size::pg_catalog.text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot take a bloat snapshot on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Schedule dbops.bloat_snapshot() on the primary.';
    END IF;
    INSERT INTO dbops.bloat_history AS h
        (taken_at, relid, relation, kind, method, size_bytes, bloat_bytes, bloat_pct)
    SELECT pg_catalog.now(), b.relation::pg_catalog.oid, b.relation::pg_catalog.text, b.kind, b.method,
           b.size_bytes, b.bloat_bytes, b.bloat_pct
    FROM dbops.bloat(NULL::pg_catalog.regclass, bloat_snapshot.method) b
    WHERE b.size_bytes OPERATOR(pg_catalog.>=) min_size
    ON CONFLICT (relid, kind, taken_at) DO UPDATE
        SET relation = excluded.relation, method = excluded.method,
            size_bytes = excluded.size_bytes, bloat_bytes = excluded.bloat_bytes,
            bloat_pct = excluded.bloat_pct;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    DELETE FROM dbops.bloat_history h
    WHERE h.taken_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) keep);
    GET DIAGNOSTICS deleted = ROW_COUNT;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.health_trend(
    check_name text, since interval DEFAULT '1 day')
RETURNS TABLE (taken_at timestamptz, status text, value numeric, change numeric,
               unit text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF health_trend.check_name IS NULL THEN
        RAISE EXCEPTION 'check_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Name a check of dbops.health(), e.g. ''connections''.';
    END IF;
    IF since IS NULL THEN
        RAISE EXCEPTION 'since must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'For example since => ''1 day''.';
    END IF;
    IF since OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
        RAISE EXCEPTION 'since must be a positive interval, not %', since
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example since => ''1 day''.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dbops.health_thresholds t
                   WHERE t.check_name OPERATOR(pg_catalog.=) health_trend.check_name)
       AND NOT EXISTS (SELECT 1 FROM dbops.health_history h
                       WHERE h.check_name OPERATOR(pg_catalog.=) health_trend.check_name) THEN
        RAISE EXCEPTION 'unknown health check "%"', health_trend.check_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'The checks are listed in dbops.health_thresholds.';
    END IF;
    RETURN QUERY
        SELECT h.taken_at, h.status, h.value,
               h.value OPERATOR(pg_catalog.-) pg_catalog.lag(h.value) OVER (ORDER BY h.taken_at),
               h.unit, h.detail
        FROM dbops.health_history h
        WHERE h.check_name OPERATOR(pg_catalog.=) health_trend.check_name
          AND h.taken_at OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) since)
        ORDER BY h.taken_at;
END;
$$;

CREATE FUNCTION dbops._cron_jobs(
    viewer oid,
    OUT job_name text, OUT jobid bigint, OUT database text, OUT username text,
    OUT schedule text, OUT active boolean, OUT is_dbops boolean,
    OUT last_start timestamptz, OUT last_duration interval, OUT last_status text,
    OUT last_message text, OUT failures_24h bigint,
    OUT next_run timestamptz, OUT missed_run timestamptz, OUT command text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    log_run boolean;
    v_name  text;
    v_all   boolean;
BEGIN
    PERFORM dbops.require_pg_cron();
    log_run := coalesce((dbops.cron_status()).log_run, true);
    SELECT r.rolname::pg_catalog.text, r.rolsuper INTO v_name, v_all
    FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) viewer;
    v_all := coalesce(v_all, false);
    RETURN QUERY
    WITH last AS (
        SELECT DISTINCT ON (d.jobid) d.jobid, d.status, d.return_message,
               d.start_time, d.end_time
        FROM cron.job_run_details d
        ORDER BY d.jobid, d.runid DESC
    ), agg AS (
        SELECT d.jobid, pg_catalog.max(d.start_time) AS latest_start,
               pg_catalog.count(*) FILTER (
                   WHERE d.status OPERATOR(pg_catalog.=) 'failed'
                     AND d.start_time OPERATOR(pg_catalog.>)
                         (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval)) AS failures
        FROM cron.job_run_details d
        GROUP BY d.jobid
    ), jobs AS (
        SELECT j.*, j.jobname::pg_catalog.text AS name,
               j.jobname OPERATOR(pg_catalog.~)
                   '^dbops-(purge|health-snapshot|bloat-snapshot|reap|cron-history)(@.+)?$'::pg_catalog.text
                   AS dbops_job,
               j.schedule OPERATOR(pg_catalog.~*) '^\s*[0-9]+\s*seconds?\s*$'::pg_catalog.text
                   AS every_seconds,
               v_all OR j.username OPERATOR(pg_catalog.=) v_name AS visible
        FROM cron.job j
    )
    SELECT j.name, j.jobid, j.database, j.username, j.schedule, j.active, j.dbops_job,
           l.start_time, l.end_time OPERATOR(pg_catalog.-) l.start_time, l.status,
           CASE WHEN j.visible THEN
               CASE WHEN pg_catalog.btrim(l.return_message, E' \n\r\t') OPERATOR(pg_catalog.<>) ''
                    THEN pg_catalog.btrim(l.return_message, E' \n\r\t') END
           END,
           coalesce(a.failures, 0::pg_catalog.int8),
           CASE WHEN j.active AND NOT j.every_seconds
                THEN dbops.cron_next_run(j.schedule, pg_catalog.now()) END,
           CASE WHEN due.due_at OPERATOR(pg_catalog.>) r.scheduled_at
                 AND (a.latest_start IS NULL OR a.latest_start OPERATOR(pg_catalog.<) due.due_at)
                 AND NOT coalesce(l.status, '') OPERATOR(pg_catalog.=)
                         ANY ('{starting,running,sending,connecting}'::pg_catalog.text[])
                THEN due.due_at END,
           CASE WHEN j.dbops_job THEN j.command END
    FROM jobs j
    LEFT JOIN last l ON l.jobid OPERATOR(pg_catalog.=) j.jobid
    LEFT JOIN agg a ON a.jobid OPERATOR(pg_catalog.=) j.jobid
    LEFT JOIN dbops.scheduled_jobs r
           ON r.job_name OPERATOR(pg_catalog.=) j.name
          AND r.username OPERATOR(pg_catalog.=) j.username
    LEFT JOIN LATERAL (
        SELECT dbops.cron_prev_run(j.schedule,
                   pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::pg_catalog.interval) AS due_at
        WHERE j.dbops_job AND j.active AND log_run AND NOT j.every_seconds
          AND r.scheduled_at IS NOT NULL
    ) due ON true
    ORDER BY j.name, j.jobid;
END;
$$;
REVOKE ALL ON FUNCTION dbops._cron_jobs(oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION dbops.cron_jobs(
    OUT job_name text, OUT jobid bigint, OUT database text, OUT username text,
    OUT schedule text, OUT active boolean, OUT is_dbops boolean,
    OUT last_start timestamptz, OUT last_duration interval, OUT last_status text,
    OUT last_message text, OUT failures_24h bigint,
    OUT next_run timestamptz, OUT missed_run timestamptz, OUT command text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_cron_jobs'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION dbops.schedule(
    purge text DEFAULT '*/15 * * * *',
    health_snapshot text DEFAULT '*/5 * * * *',
    bloat_snapshot text DEFAULT '30 3 * * *',
    reap text DEFAULT NULL,
    cron_history_keep interval DEFAULT '7 days',
    database text DEFAULT NULL,
    health_history_keep interval DEFAULT '14 days',
    bloat_history_keep interval DEFAULT '90 days',
    reap_idle_for interval DEFAULT '1 hour',
    OUT job_name text, OUT action text, OUT jobid bigint, OUT dbname text,
    OUT schedule text, OUT active boolean, OUT command text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET IntervalStyle = 'postgres'
AS $$
#variable_conflict use_variable
DECLARE
    target text := coalesce($6, pg_catalog.current_database()::pg_catalog.text);
    suffix text;
    crondb text;
    v text;
    spec record;
    cur record;
    id bigint;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot schedule jobs on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Run dbops.schedule() on the primary: pg_cron runs jobs only there.';
    END IF;
    v := dbops.require_pg_cron();
    IF pg_catalog.string_to_array(pg_catalog.split_part(v, '-', 1), '.')::pg_catalog.int4[]
       OPERATOR(pg_catalog.<) '{1,4}'::pg_catalog.int4[] THEN
        RAISE EXCEPTION 'dbops.schedule() needs pg_cron 1.4 or later, not %', v
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Run ALTER EXTENSION pg_cron UPDATE.';
    END IF;
    crondb := (dbops.cron_status()).cron_database;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database d
                   WHERE d.datname OPERATOR(pg_catalog.=) target::pg_catalog.name) THEN
        RAISE EXCEPTION 'database "%" does not exist', target
            USING ERRCODE = 'invalid_catalog_name',
                  HINT = 'database names the database the jobs run in; dbops must be installed there.';
    END IF;
    suffix := CASE WHEN target OPERATOR(pg_catalog.=) pg_catalog.current_database()::pg_catalog.text
                   THEN '' ELSE '@' OPERATOR(pg_catalog.||) target END;
    IF pg_catalog.octet_length('dbops-health-snapshot' OPERATOR(pg_catalog.||) suffix)
       OPERATOR(pg_catalog.>) 63 THEN
        RAISE EXCEPTION 'database name "%" is too long for a pg_cron job name', target
            USING ERRCODE = 'name_too_long',
                  HINT = 'Job names are "dbops-<job>@<database>" and pg_cron keeps 63 bytes of them.';
    END IF;

    -- check every argument before changing anything
    FOR spec IN
        SELECT * FROM (VALUES ('purge', purge), ('health_snapshot', health_snapshot),
                              ('bloat_snapshot', bloat_snapshot), ('reap', reap)) AS a(arg, sched)
        WHERE a.sched IS NOT NULL
    LOOP
        BEGIN
            PERFORM dbops.cron_next_run(spec.sched, pg_catalog.now(), 'GMT');
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS v = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION 'invalid schedule for %: "%"', spec.arg, spec.sched
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = v,
                      HINT = 'Write five fields "minute hour day-of-month month day-of-week" '
                             '(for example ''30 3 * * *''), or @hourly, @daily, ...; NULL removes the job.';
        END;
    END LOOP;
    FOR spec IN
        SELECT * FROM (VALUES ('cron_history_keep', cron_history_keep, true),
                              ('health_history_keep', health_history_keep, health_snapshot IS NOT NULL),
                              ('bloat_history_keep', bloat_history_keep, bloat_snapshot IS NOT NULL),
                              ('reap_idle_for', reap_idle_for, reap IS NOT NULL)) AS a(arg, val, used)
        WHERE a.used
    LOOP
        IF spec.val IS NULL AND spec.arg OPERATOR(pg_catalog.<>) 'cron_history_keep' THEN
            RAISE EXCEPTION '% must not be NULL', spec.arg USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF spec.val OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
            RAISE EXCEPTION '% must be a positive interval, not %', spec.arg, spec.val
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- The commands run in a session of their own, with the search_path of
    -- the database and of the role: they name everything by schema.
    FOR spec IN
        SELECT * FROM (VALUES
            (1, 'dbops-purge' OPERATOR(pg_catalog.||) suffix, purge, 'CALL dbops.purge()', target),
            (2, 'dbops-health-snapshot' OPERATOR(pg_catalog.||) suffix, health_snapshot,
                pg_catalog.format('SELECT * FROM dbops.health_snapshot(keep => %L::pg_catalog.interval)',
                                  health_history_keep), target),
            (3, 'dbops-bloat-snapshot' OPERATOR(pg_catalog.||) suffix, bloat_snapshot,
                pg_catalog.format('SELECT * FROM dbops.bloat_snapshot(keep => %L::pg_catalog.interval)',
                                  bloat_history_keep), target),
            (4, 'dbops-reap' OPERATOR(pg_catalog.||) suffix, reap,
                pg_catalog.format('SELECT pg_catalog.count(*) FROM dbops.reap_idle('
                                  'idle_for => %L::pg_catalog.interval, dry_run => false)',
                                  reap_idle_for), target),
            (5, 'dbops-cron-history',
                CASE WHEN cron_history_keep IS NOT NULL THEN '7 * * * *' END,
                pg_catalog.format('DELETE FROM cron.job_run_details WHERE end_time '
                                  'OPERATOR(pg_catalog.<) (pg_catalog.now() '
                                  'OPERATOR(pg_catalog.-) %L::pg_catalog.interval)',
                                  cron_history_keep),
                pg_catalog.current_database()::pg_catalog.text)
        ) AS s(ord, name, sched, cmd, db)
        ORDER BY s.ord
    LOOP
        SELECT j.jobid, j.schedule, j.command, j.database, j.active INTO cur
        FROM cron.job j
        WHERE j.jobname OPERATOR(pg_catalog.=) spec.name
          AND j.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text;

        IF spec.sched IS NULL THEN
            IF cur.jobid IS NULL THEN
                CONTINUE;
            END IF;
            PERFORM cron.unschedule(spec.name);
            DELETE FROM dbops.scheduled_jobs r
            WHERE r.job_name OPERATOR(pg_catalog.=) spec.name
              AND r.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text;
            job_name := spec.name; action := 'removed'; jobid := cur.jobid;
            dbname := cur.database; schedule := cur.schedule; active := cur.active;
            command := cur.command;
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF cur.jobid IS NOT NULL AND cur.schedule OPERATOR(pg_catalog.=) spec.sched
           AND cur.command OPERATOR(pg_catalog.=) spec.cmd
           AND cur.database OPERATOR(pg_catalog.=) spec.db THEN
            action := 'unchanged';
            id := cur.jobid;
            INSERT INTO dbops.scheduled_jobs AS r (job_name, username, database, schedule, command)
            VALUES (spec.name, CURRENT_USER, spec.db, spec.sched, spec.cmd)
            ON CONFLICT ON CONSTRAINT scheduled_jobs_pkey DO NOTHING;
        ELSE
            IF cur.jobid IS NOT NULL AND cur.database OPERATOR(pg_catalog.<>) spec.db THEN
                -- pg_cron 1.4 keeps the database of an existing job: start over
                PERFORM cron.unschedule(spec.name);
            END IF;
            IF spec.db OPERATOR(pg_catalog.=) crondb THEN
                id := cron.schedule(spec.name, spec.sched, spec.cmd);
            ELSE
                id := cron.schedule_in_database(spec.name, spec.sched, spec.cmd, spec.db);
            END IF;
            action := CASE WHEN cur.jobid IS NULL THEN 'created' ELSE 'updated' END;
            INSERT INTO dbops.scheduled_jobs AS r (job_name, username, database, schedule, command)
            VALUES (spec.name, CURRENT_USER, spec.db, spec.sched, spec.cmd)
            ON CONFLICT ON CONSTRAINT scheduled_jobs_pkey DO UPDATE
                SET database = excluded.database, schedule = excluded.schedule,
                    command = excluded.command, scheduled_at = excluded.scheduled_at;
        END IF;

        SELECT j.jobid, j.database, j.schedule, j.active, j.command
        INTO jobid, dbname, schedule, active, command
        FROM cron.job j WHERE j.jobid OPERATOR(pg_catalog.=) id;
        job_name := spec.name;
        RETURN NEXT;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.unschedule(
    database text DEFAULT NULL,
    OUT job_name text, OUT action text, OUT jobid bigint, OUT dbname text,
    OUT schedule text, OUT active boolean, OUT command text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    names text[];
    j record;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE EXCEPTION 'cannot unschedule jobs on a standby'
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'Run dbops.unschedule() on the primary.';
    END IF;
    PERFORM dbops.require_pg_cron();
    IF unschedule.database IS NOT NULL THEN
        names := ARRAY(SELECT 'dbops-' OPERATOR(pg_catalog.||) n OPERATOR(pg_catalog.||)
                              CASE WHEN unschedule.database OPERATOR(pg_catalog.=)
                                        pg_catalog.current_database()::pg_catalog.text
                                   THEN '' ELSE '@' OPERATOR(pg_catalog.||) unschedule.database END
                       FROM pg_catalog.unnest('{purge,health-snapshot,bloat-snapshot,reap}'::pg_catalog.text[]) AS n);
    END IF;
    FOR j IN
        SELECT c.jobid, c.jobname::pg_catalog.text AS name, c.database, c.schedule, c.active, c.command
        FROM cron.job c
        WHERE c.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text
          AND CASE WHEN names IS NULL
                   THEN c.jobname OPERATOR(pg_catalog.~)
                        '^dbops-(purge|health-snapshot|bloat-snapshot|reap|cron-history)(@.+)?$'::pg_catalog.text
                   ELSE c.jobname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (names) END
        ORDER BY c.jobid
    LOOP
        PERFORM cron.unschedule(j.name);
        DELETE FROM dbops.scheduled_jobs r
        WHERE r.job_name OPERATOR(pg_catalog.=) j.name
          AND r.username OPERATOR(pg_catalog.=) CURRENT_USER::pg_catalog.text;
        job_name := j.name; action := 'removed'; jobid := j.jobid; dbname := j.database;
        schedule := j.schedule; active := j.active; command := j.command;
        RETURN NEXT;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION dbops.health_metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'dbops_health_metrics'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dbops.health_metrics() FROM PUBLIC;
