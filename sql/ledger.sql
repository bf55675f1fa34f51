-- Migration ledger: dbops.migrate() and friends
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = notice;

-- checksum normalisation: CRLF, CR, trailing blanks, trailing empty lines
SELECT dbops.migration_checksum(E'CREATE TABLE a ();\nSELECT 1;')
     = dbops.migration_checksum(E'CREATE TABLE a ();  \r\nSELECT 1;\t\r\n\r\n') AS same_after_normalising,
       dbops.migration_checksum(E'CREATE TABLE a ();\nSELECT 1;')
     = dbops.migration_checksum(E'CREATE TABLE a ();\rSELECT 1;') AS cr_is_newline,
       dbops.migration_checksum(E'CREATE TABLE a ();\nSELECT 1;')
     = dbops.migration_checksum(E'CREATE TABLE a ();\n SELECT 1;') AS leading_blanks_count,
       dbops.migration_checksum('') = encode(sha256(''), 'hex') AS empty_is_sha256_of_nothing,
       dbops.migration_checksum(E'x  \n') = encode(sha256('x'), 'hex') AS is_sha256_of_normalised;

-- version ordering key
SELECT v, dbops.migration_version_key(v)
FROM unnest(ARRAY['0015', '1.10', '2_1', '0015_add_users', 'ae10c2', '']) AS v;

-- first application
SELECT dbops.migrate('0001', 'create items',
    $$CREATE TABLE ledger_items (id int PRIMARY KEY, name text);
      CREATE INDEX ledger_items_name ON ledger_items (name);
      INSERT INTO ledger_items VALUES (1, 'one');$$);
SELECT * FROM ledger_items;
SELECT version, description, status, checksum = dbops.migration_checksum(
    $$CREATE TABLE ledger_items (id int PRIMARY KEY, name text);
      CREATE INDEX ledger_items_name ON ledger_items (name);
      INSERT INTO ledger_items VALUES (1, 'one');$$) AS checksum_ok,
       applied_by = current_user AS by_me, "session_user" = session_user AS session_ok,
       finished_at >= started_at AS timed, duration_ms >= 0 AS has_duration, requires
FROM dbops.migrations;
-- the DDL it ran
SELECT version, command_tag, object_type, object_identity
FROM dbops.migration_objects ORDER BY object_id;

-- the same script again (with Windows line endings and trailing blanks): skipped
SELECT dbops.migrate('0001', 'create items',
    E'CREATE TABLE ledger_items (id int PRIMARY KEY, name text);  \r\n      CREATE INDEX ledger_items_name ON ledger_items (name);\r\n      INSERT INTO ledger_items VALUES (1, ''one'');\r\n');
SELECT count(*) AS rows_once FROM ledger_items;

-- an edited script: checksum drift
SELECT dbops.migrate('0001', 'create items', 'CREATE TABLE ledger_items (id bigint)');

-- requires a version that is not applied
SELECT dbops.migrate('0003', 'needs 0002', 'CREATE TABLE ledger_three ()', requires => '{0002,0001}');
SELECT dbops.migrate('0002', 'second', 'ALTER TABLE ledger_items ADD COLUMN price numeric', requires => '{0001}');
SELECT dbops.migrate('0003', 'needs 0002', 'CREATE TABLE ledger_three ()', requires => '{0002}');

-- out of order
SELECT dbops.migrate('0001.5', 'late', 'CREATE TABLE ledger_late ()');
SET dbops.migration_allow_out_of_order = on;
SELECT dbops.migrate('0001.5', 'late', 'CREATE TABLE ledger_late ()');
RESET dbops.migration_allow_out_of_order;
SELECT dbops.migrate('0001.6', 'later', 'CREATE TABLE ledger_later ()', allow_out_of_order => true);

-- a failing body: nothing of it stays, the failure is an event
SELECT dbops.migrate('0004', 'fails', $$CREATE TABLE ledger_four (); SELECT 1/0$$);
SELECT to_regclass('ledger_four') IS NULL AS no_table,
       NOT EXISTS (SELECT 1 FROM dbops.migrations WHERE version = '0004') AS no_row;
-- a failed attempt inside a transaction that rolls back is still recorded
BEGIN;
SELECT dbops.migrate('0004', 'fails', $$CREATE TABLE ledger_four (); SELECT 1/0$$);
ROLLBACK;
SELECT version, event, operation, sqlstate, message
FROM dbops.migration_events WHERE event = 'failed' ORDER BY event_id;

-- statements that cannot run in a transaction fail and are recorded
SELECT dbops.migrate('0005', 'concurrent', 'CREATE INDEX CONCURRENTLY ledger_c ON ledger_items (id)');

-- bad arguments
SELECT dbops.migrate(NULL, 'x', 'SELECT 1');
SELECT dbops.migrate(' 0005', 'x', 'SELECT 1');
SELECT dbops.migrate('', 'x', 'SELECT 1');
SELECT dbops.migrate('0005', 'x', NULL);
SELECT dbops.migrate('0005', 'x', 'SELECT 1', requires => NULL);
SELECT dbops.migrate('0005', 'x', 'SELECT 1', requires => '{NULL}');

-- the fix lands: the failed version applies
SELECT dbops.migrate('0004', 'fixed', 'CREATE TABLE ledger_four ()');

-- health: 0005 failed last
SELECT check_name, status, value, detail FROM dbops.health() WHERE check_name = 'migrations';

-- status with checksums to compare
SELECT version, status, drift, last_event, last_sqlstate
FROM dbops.migration_status(jsonb_build_object(
    '0001', dbops.migration_checksum($$CREATE TABLE ledger_items (id int PRIMARY KEY, name text);
      CREATE INDEX ledger_items_name ON ledger_items (name);
      INSERT INTO ledger_items VALUES (1, 'one');$$),
    '0002', dbops.migration_checksum('ALTER TABLE ledger_items ADD COLUMN price numeric -- edited'),
    '0009', dbops.migration_checksum('SELECT 1')));
SELECT count(*) FROM dbops.migration_status();
SELECT * FROM dbops.migration_status('[1, 2]');

-- repair: accept an edited script deliberately
SELECT dbops.migration_repair('0002', dbops.migration_checksum('ALTER TABLE ledger_items ADD COLUMN price numeric -- edited'));
SELECT dbops.migrate('0002', 'second', 'ALTER TABLE ledger_items ADD COLUMN price numeric -- edited', requires => '{0001}');
SELECT dbops.migration_repair('0002', 'not-a-checksum');
SELECT dbops.migration_repair('0099', NULL);
-- acknowledge the failed attempts of a version never applied
SELECT dbops.migration_repair('0005');
SELECT check_name, status, value FROM dbops.health() WHERE check_name = 'migrations';

-- rollback
SELECT dbops.migration_rollback('0001', 'DROP TABLE ledger_items');
SELECT dbops.migration_rollback('0003', 'DROP TABLE ledger_three');
SELECT to_regclass('ledger_three') IS NULL AS dropped;
SELECT dbops.migration_rollback('0003');
SELECT dbops.migration_rollback('0042');
SELECT dbops.migration_rollback('0004', 'DROP TABLE no_such_table');
SELECT to_regclass('ledger_four') IS NOT NULL AS still_there;
SELECT dbops.migration_rollback('0004', 'DROP TABLE ledger_four');
SELECT version, status FROM dbops.migrations ORDER BY version;
SELECT version, command_tag, object_type, object_identity
FROM dbops.migration_objects WHERE command_tag LIKE 'DROP%' ORDER BY object_id;
SELECT check_name, status, value, detail FROM dbops.health() WHERE check_name = 'migrations';
-- a rolled back version can be applied again
SELECT dbops.migrate('0004', 'again', 'CREATE TABLE ledger_four ()');
SELECT version, event, operation FROM dbops.migration_events
WHERE version = '0004' ORDER BY event_id;

-- baseline: every version up to it is taken as applied
SELECT dbops.migration_baseline('0100', 'schema as of release 7');
SELECT dbops.migration_baseline('0100');
SELECT dbops.migrate('0050', 'older than the baseline', 'CREATE TABLE ledger_never ()');
SELECT to_regclass('ledger_never') IS NULL AS not_run;
SELECT dbops.migration_pending('0050'), dbops.migration_pending('0100'), dbops.migration_pending('0101');
SELECT dbops.migrate('0101', 'after baseline', 'CREATE TABLE ledger_101 ()', requires => '{0099}');

-- migration_pending / migration_begin, as a psql script uses them
SELECT dbops.migration_begin('0102', 'outside a transaction');
BEGIN;
SELECT dbops.migration_pending('0102') AS pending \gset
\if :pending
SELECT dbops.migration_begin('0102', 'psql style', dbops.migration_checksum('CREATE TABLE ledger_102 ()'));
SELECT current_setting('dbops.current_migration');
CREATE TABLE ledger_102 ();
SELECT finished_at IS NULL AS open_until_commit FROM dbops.migrations WHERE version = '0102';
\endif
COMMIT;
SELECT current_setting('dbops.current_migration') = '' AS closed;
SELECT status, finished_at >= started_at AS finished_at_commit FROM dbops.migrations WHERE version = '0102';
SELECT object_identity FROM dbops.migration_objects WHERE version = '0102';
-- again: not pending, nothing happens
BEGIN;
SELECT dbops.migration_pending('0102', dbops.migration_checksum('CREATE TABLE ledger_102 ()')) AS pending \gset
\if :pending
SELECT dbops.migration_begin('0102', 'psql style');
CREATE TABLE ledger_102 ();
\endif
COMMIT;
SELECT :'pending' AS pending;
-- drifted script detected by migration_pending
SELECT dbops.migration_pending('0102', dbops.migration_checksum('CREATE TABLE ledger_102 (id int)'));
-- migration_begin without the \if guard, and its errors
BEGIN;
SELECT dbops.migration_begin('0102', 'psql style');
ROLLBACK;
BEGIN;
SELECT dbops.migration_begin('0103', 'x', 'abc');
ROLLBACK;
BEGIN;
SELECT dbops.migration_begin('0103', 'x', requires => '{0200}');
ROLLBACK;
BEGIN;
SELECT dbops.migration_begin('0103', 'first');
SELECT dbops.migration_begin('0104', 'second');
ROLLBACK;
-- an error that aborts the transaction of an open migration is recorded
-- after the abort, by a background worker: wait for it
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (SELECT count(*) FROM dbops.migration_events
                   WHERE version = '0103' AND event = 'failed') = 2;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT dbops.migration_pending(NULL);
-- a failed psql-style transaction leaves nothing
BEGIN;
SELECT dbops.migration_begin('0103', 'will fail');
CREATE TABLE ledger_103 ();
SELECT 1/0;
ROLLBACK;
SELECT count(*) FROM dbops.migrations WHERE version = '0103';
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN (SELECT count(*) FROM dbops.migration_events
                   WHERE version = '0103' AND event = 'failed') = 3;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT event, operation, sqlstate, message FROM dbops.migration_events
WHERE version = '0103' ORDER BY event_id;
-- an error taken back with its savepoint, then a deliberate ROLLBACK: not a failure
BEGIN;
SELECT dbops.migration_begin('0103', 'savepoint');
SAVEPOINT s;
SELECT 1/0;
ROLLBACK TO SAVEPOINT s;
ROLLBACK;
SELECT pg_sleep(1);
SELECT count(*) AS failed_events FROM dbops.migration_events
WHERE version = '0103' AND event = 'failed';
BEGIN;
SELECT dbops.migration_begin('0103', 'at last');
CREATE TABLE ledger_103 ();
COMMIT;
SELECT status FROM dbops.migrations WHERE version = '0103';

-- import an existing ledger: schema_migrations, alembic_version, flyway_schema_history
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('0200'), ('0201'), ('0100');
SELECT dbops.migration_import('schema_migrations');
SELECT dbops.migration_import('schema_migrations');
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('ae1027a6acf');
SELECT dbops.migration_import('alembic_version');
CREATE TABLE flyway_schema_history (
    installed_rank int PRIMARY KEY, version varchar(50), description varchar(200),
    type varchar(20), script varchar(1000), checksum int, installed_by varchar(100),
    installed_on timestamp DEFAULT now(), execution_time int, success boolean);
INSERT INTO flyway_schema_history VALUES
    (1, '3.0', 'init', 'SQL', 'V3_0__init.sql', 123, 'flyway', '2024-01-01', 40, true),
    (2, '3.1', 'broken', 'SQL', 'V3_1__broken.sql', 456, 'flyway', '2024-01-02', 5, false),
    (3, NULL, 'views', 'SQL', 'R__views.sql', 789, 'flyway', '2024-01-03', 7, true);
SELECT dbops.migration_import('flyway_schema_history');
SELECT version, description, status, applied_by, duration_ms
FROM dbops.migrations WHERE version IN ('0200', '0201', 'ae1027a6acf', '3.0', '3.1') ORDER BY version;
SELECT dbops.migration_import('ledger_items_name');
SELECT dbops.migration_import('pg_class');
SELECT dbops.migration_import(NULL);

-- events are append-only
UPDATE dbops.migration_events SET message = 'x';
DELETE FROM dbops.migration_events;
TRUNCATE dbops.migration_events;
SELECT event, count(*) FROM dbops.migration_events GROUP BY event ORDER BY event;

-- privileges: writing is granted deliberately, reading is open to pg_monitor
CREATE ROLE regress_ledger_reader IN ROLE pg_monitor;
CREATE ROLE regress_ledger_nobody;
SET ROLE regress_ledger_reader;
SELECT count(*) > 0 AS can_read FROM dbops.migration_status();
SELECT dbops.migration_pending('0001');
SELECT status FROM dbops.health() WHERE check_name = 'migrations';
SELECT dbops.migrate('0300', 'x', 'SELECT 1');
SELECT dbops.migration_rollback('0004');
RESET ROLE;
SET ROLE regress_ledger_nobody;
SELECT status, detail FROM dbops.health() WHERE check_name = 'migrations';
RESET ROLE;
-- a deployer with the documented grants
CREATE ROLE regress_ledger_deployer;
GRANT CREATE ON SCHEMA public TO regress_ledger_deployer;
GRANT EXECUTE ON FUNCTION dbops.migrate(text, text, text, text[], boolean),
    dbops.migration_begin(text, text, text, text[], boolean),
    dbops.migration_rollback(text, text) TO regress_ledger_deployer;
GRANT SELECT, INSERT, UPDATE ON dbops.migrations TO regress_ledger_deployer;
GRANT SELECT, INSERT ON dbops.migration_events TO regress_ledger_deployer;
GRANT USAGE ON SEQUENCE dbops.migration_events_event_id_seq TO regress_ledger_deployer;
SET ROLE regress_ledger_deployer;
SELECT dbops.migrate('0300', 'by the deployer', 'CREATE TABLE ledger_300 ()');
SELECT dbops.migrate('0301', 'fails', 'CREATE TABLE ledger_301 (x no_such_type)');
RESET ROLE;
-- may run migrate() but not write the ledger: refused before anything is
-- attempted, with the grants it lacks
CREATE ROLE regress_ledger_half;
GRANT CREATE ON SCHEMA public TO regress_ledger_half;
GRANT EXECUTE ON FUNCTION dbops.migrate(text, text, text, text[], boolean) TO regress_ledger_half;
SET ROLE regress_ledger_half;
SELECT dbops.migrate('0302', 'half', 'CREATE TABLE ledger_302 ()');
RESET ROLE;
SELECT to_regclass('ledger_302') IS NULL AS rolled_back;
SELECT version, event, username, sqlstate FROM dbops.migration_events
WHERE version IN ('0300', '0301', '0302') ORDER BY event_id;
SELECT object_identity FROM dbops.migration_objects WHERE version = '0300';
SELECT tableowner FROM pg_tables WHERE tablename = 'ledger_300';

-- tables are dumped with the data (extension configuration tables)
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS t(oid)
JOIN pg_class c ON c.oid = t.oid WHERE e.extname = 'dbops' AND c.relname LIKE 'migration%'
ORDER BY 1;

-- clean up: drop what the migrations created and empty the ledger
DROP TABLE ledger_items, ledger_late, ledger_later, ledger_four, ledger_101,
    ledger_102, ledger_103, ledger_300, schema_migrations, alembic_version, flyway_schema_history;
REVOKE ALL ON SCHEMA public FROM regress_ledger_deployer;
REVOKE ALL ON dbops.migrations, dbops.migration_events FROM regress_ledger_deployer;
REVOKE ALL ON SEQUENCE dbops.migration_events_event_id_seq FROM regress_ledger_deployer;
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean),
    dbops.migration_begin(text, text, text, text[], boolean),
    dbops.migration_rollback(text, text) FROM regress_ledger_deployer;
REVOKE ALL ON SCHEMA public FROM regress_ledger_half;
REVOKE ALL ON FUNCTION dbops.migrate(text, text, text, text[], boolean) FROM regress_ledger_half;
DROP ROLE regress_ledger_reader, regress_ledger_nobody, regress_ledger_deployer, regress_ledger_half;
SET session_replication_role = replica;   -- bypasses the append-only trigger
DELETE FROM dbops.migration_events;
RESET session_replication_role;
DELETE FROM dbops.migration_objects;
DELETE FROM dbops.migrations;
SELECT status FROM dbops.health() WHERE check_name = 'migrations';
