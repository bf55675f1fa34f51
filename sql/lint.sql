-- Migration lint: dbops.migration_lint() and the lint in dbops.migrate()
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = notice;

CREATE TABLE lint_t (id int PRIMARY KEY, a text, b int, v varchar(10),
                     n numeric(10,2), w varchar(10), ts timestamptz);
CREATE TABLE lint_p (id int PRIMARY KEY);
CREATE FUNCTION lint_vol() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
CREATE FUNCTION lint_imm() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';

-- one row per hazard: each statement alone, as its own migration
CREATE FUNCTION lint_one(body text)
RETURNS TABLE (hazard text, relation text, lock text, blocks text)
LANGUAGE sql AS $$
    SELECT hazard, relation, lock, blocks FROM dbops.migration_lint(body)
$$;

-- each rule: the hazard, then its safe form (no row)
SELECT 'create_index' AS rule, * FROM lint_one('CREATE INDEX ON lint_t (a)')
UNION ALL SELECT 'create unique index', * FROM lint_one('CREATE UNIQUE INDEX ON lint_t (a)')
UNION ALL SELECT 'volatile default', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN u uuid DEFAULT gen_random_uuid()')
UNION ALL SELECT 'volatile user function', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN u int DEFAULT lint_vol() + 1')
UNION ALL SELECT 'unknown function', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN u int DEFAULT no_such_fn()')
UNION ALL SELECT 'serial', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN s bigserial')
UNION ALL SELECT 'identity', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN i int GENERATED ALWAYS AS IDENTITY')
UNION ALL SELECT 'stored generated', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN g int GENERATED ALWAYS AS (b * 2) STORED')
UNION ALL SELECT 'int to bigint', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN b TYPE bigint')
UNION ALL SELECT 'type with USING', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN a TYPE text USING lower(a)')
UNION ALL SELECT 'varchar shorter', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN v TYPE varchar(5)')
UNION ALL SELECT 'text to varchar(n)', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN a TYPE varchar(20)')
UNION ALL SELECT 'numeric scale', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN n TYPE numeric(12,3)')
UNION ALL SELECT 'column not in catalog', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN nope TYPE int')
UNION ALL SELECT 'foreign key', * FROM lint_one('ALTER TABLE lint_t ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES lint_p (id)')
UNION ALL SELECT 'inline references', * FROM lint_one('ALTER TABLE lint_t ADD COLUMN r int REFERENCES lint_p (id)')
UNION ALL SELECT 'check', * FROM lint_one('ALTER TABLE lint_t ADD CONSTRAINT c CHECK (b > 0)')
UNION ALL SELECT 'set not null', * FROM lint_one('ALTER TABLE lint_t ALTER COLUMN a SET NOT NULL')
UNION ALL SELECT 'primary key', * FROM lint_one('ALTER TABLE lint_p ADD PRIMARY KEY (id)')
UNION ALL SELECT 'unique', * FROM lint_one('ALTER TABLE lint_t ADD CONSTRAINT u UNIQUE (a)')
UNION ALL SELECT 'exclude', * FROM lint_one('ALTER TABLE lint_t ADD EXCLUDE USING btree (b WITH =)')
UNION ALL SELECT 'set logged', * FROM lint_one('ALTER TABLE lint_t SET UNLOGGED')
UNION ALL SELECT 'vacuum full', * FROM lint_one('VACUUM (FULL) lint_t')
UNION ALL SELECT 'cluster', * FROM lint_one('CLUSTER lint_t USING lint_t_pkey')
UNION ALL SELECT 'lock table', * FROM lint_one('LOCK TABLE lint_t')
UNION ALL SELECT 'lock table share', * FROM lint_one('LOCK TABLE lint_t IN SHARE MODE')
UNION ALL SELECT 'rename table', * FROM lint_one('ALTER TABLE lint_t RENAME TO lint_t2')
UNION ALL SELECT 'rename column', * FROM lint_one('ALTER TABLE lint_t RENAME COLUMN a TO aa')
UNION ALL SELECT 'drop column', * FROM lint_one('ALTER TABLE lint_t DROP COLUMN a')
UNION ALL SELECT 'drop table', * FROM lint_one('DROP TABLE lint_t, lint_p')
UNION ALL SELECT 'drop index', * FROM lint_one('DROP INDEX lint_t_pkey')
UNION ALL SELECT 'reindex', * FROM lint_one('REINDEX TABLE lint_t')
UNION ALL SELECT 'concurrently in a transaction', * FROM lint_one('CREATE INDEX CONCURRENTLY ON lint_t (a)')
UNION ALL SELECT 'drop concurrently in a transaction', * FROM lint_one('DROP INDEX CONCURRENTLY lint_t_pkey')
UNION ALL SELECT 'reindex concurrently in a transaction', * FROM lint_one('REINDEX TABLE CONCURRENTLY lint_t')
UNION ALL SELECT 'vacuum in a transaction', * FROM lint_one('VACUUM lint_t');

-- the safe forms, each alone: no rows
SELECT s AS safe_statement, h.*
FROM unnest(ARRAY[
    'ALTER TABLE lint_t ADD COLUMN d1 int',
    'ALTER TABLE lint_t ADD COLUMN d2 int DEFAULT 0 NOT NULL',
    'ALTER TABLE lint_t ADD COLUMN d3 timestamptz DEFAULT now()',
    'ALTER TABLE lint_t ADD COLUMN d4 int DEFAULT lint_imm()',
    $$ALTER TABLE lint_t ADD COLUMN d5 jsonb DEFAULT '{}'::jsonb$$,
    'ALTER TABLE lint_t ALTER COLUMN v TYPE varchar(20)',
    'ALTER TABLE lint_t ALTER COLUMN w TYPE text',
    'ALTER TABLE lint_t ALTER COLUMN n TYPE numeric(14,2)',
    'ALTER TABLE lint_t ALTER COLUMN b TYPE int',
    'ALTER TABLE lint_t ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES lint_p (id) NOT VALID',
    'ALTER TABLE lint_t ADD CONSTRAINT c CHECK (b > 0) NOT VALID',
    'ALTER TABLE lint_t ALTER COLUMN id SET NOT NULL',
    'ALTER TABLE lint_t ADD CONSTRAINT u UNIQUE USING INDEX lint_t_a',
    $$ALTER TABLE lint_t ALTER COLUMN a SET DEFAULT 'x'$$,
    'ALTER TABLE lint_t ALTER COLUMN a SET STATISTICS 500',
    'ALTER TABLE lint_t VALIDATE CONSTRAINT f',
    'LOCK TABLE lint_t IN SHARE UPDATE EXCLUSIVE MODE',
    'ANALYZE lint_t',
    'UPDATE lint_t SET b = 1 WHERE id = 1']) AS s,
     LATERAL lint_one(s) AS h;
SELECT 'safe, outside a transaction' AS rule, * FROM dbops.migration_lint($$
    CREATE INDEX CONCURRENTLY lint_t_a ON lint_t (a);
    DROP INDEX CONCURRENTLY lint_t_a;
    REINDEX INDEX CONCURRENTLY lint_t_pkey;
    VACUUM lint_t;
    ALTER TABLE lint_t VALIDATE CONSTRAINT f;
$$, single_transaction => false);

-- SET NOT NULL after a validated CHECK (col IS NOT NULL): in the body, or in the catalog
SELECT statement, hazard FROM dbops.migration_lint($$
    ALTER TABLE lint_t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;
    ALTER TABLE lint_t ALTER COLUMN a SET NOT NULL;
    ALTER TABLE lint_t VALIDATE CONSTRAINT a_nn;
    ALTER TABLE lint_t ALTER COLUMN a SET NOT NULL;
$$);
UPDATE lint_t SET a = 'x' WHERE a IS NULL;
ALTER TABLE lint_t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL);
SELECT count(*) AS set_not_null_hazards
FROM dbops.migration_lint('ALTER TABLE lint_t ALTER COLUMN a SET NOT NULL');
ALTER TABLE lint_t DROP CONSTRAINT a_nn;

-- a table created in the body is nobody else's yet
SELECT count(*) AS hazards_on_new_table FROM dbops.migration_lint($$
    CREATE TABLE lint_new (id int, x text);
    CREATE INDEX ON lint_new (x);
    ALTER TABLE lint_new ADD COLUMN u uuid DEFAULT gen_random_uuid();
    ALTER TABLE lint_new ALTER COLUMN id TYPE bigint;
    ALTER TABLE lint_new ADD PRIMARY KEY (id);
    ALTER TABLE lint_new DROP COLUMN x;
    INSERT INTO lint_new (id) SELECT g FROM generate_series(1, 10) g;
    CREATE TABLE public.lint_new2 AS SELECT 1 AS x;
    CREATE INDEX ON lint_new2 (x);
$$);

-- a strong lock held across later statements
SELECT statement, hazard, relation, lock, why FROM dbops.migration_lint($$
    ALTER TABLE lint_t ADD COLUMN z int;
    ALTER TABLE lint_t ALTER COLUMN z SET DEFAULT 0;
    UPDATE lint_t SET z = 0;
    ALTER TABLE lint_p ADD COLUMN y int;
$$);
SELECT statement, hazard, relation FROM dbops.migration_lint($$
    ALTER TABLE lint_t ADD COLUMN z int;
    ALTER TABLE lint_p ADD COLUMN y int;
$$);
-- the same as a psql script: each statement commits on its own, unless in BEGIN ... COMMIT
SELECT statement, hazard, relation FROM dbops.migration_lint($$
    ALTER TABLE lint_t ADD COLUMN z int;
    UPDATE lint_t SET z = 0;
    BEGIN;
    ALTER TABLE lint_t ADD COLUMN z2 int;
    UPDATE lint_t SET z2 = 0;
    COMMIT;
    CREATE INDEX CONCURRENTLY ON lint_t (z);
    BEGIN;
    CREATE INDEX CONCURRENTLY ON lint_t (z2);
    ROLLBACK;
$$, single_transaction => false);

-- the columns of one finding
SELECT * FROM dbops.migration_lint(E'SELECT 1;\n  CREATE INDEX lint_t_b ON public.lint_t (b)');

-- allowed hazards: by argument, and by SET in the body for what follows it
SELECT statement, hazard, allowed FROM dbops.migration_lint($$
    ALTER TABLE lint_t DROP COLUMN b;
    CREATE INDEX ON lint_t (a);
    SET LOCAL dbops.migration_lint_allow = 'create_index, drop_column';
    CREATE INDEX ON lint_t (a);
    ALTER TABLE lint_t DROP COLUMN n;
    SET LOCAL dbops.migration_lint_allow = drop_column;
    CREATE INDEX ON lint_t (a);
    RESET dbops.migration_lint_allow;
    ALTER TABLE lint_t DROP COLUMN v;
$$, allow => '{drop_column}');

-- bad input
SELECT * FROM dbops.migration_lint(NULL);
SELECT * FROM dbops.migration_lint('SELECT 1', allow => '{create_index, nope}');
SELECT * FROM dbops.migration_lint('SELECT 1', allow => ARRAY[NULL]::text[]);
SELECT * FROM dbops.migration_lint(E'SELECT 1;\nALTER TABLE lint_t ADD COLUMN');
SELECT * FROM dbops.migration_lint($$SET LOCAL dbops.migration_lint_allow = 'creat_index'$$);
SET dbops.migration_lint_allow = 'creat_index';
SET dbops.migration_lint = 'loud';
SELECT count(*) AS empty_body FROM dbops.migration_lint('');

-- dbops.migrate(): warn (default), error, off; the body's allowance ends with it
SELECT dbops.migrate('lint-1', 'an index the slow way', 'CREATE INDEX lint_t_b ON lint_t (b)');
SELECT dbops.migrate('lint-2', 'an allowed index',
    $$SET LOCAL dbops.migration_lint_allow = create_index;
      CREATE INDEX lint_t_a ON lint_t (a)$$);
SHOW dbops.migration_lint_allow;
SET dbops.migration_lint = error;
SELECT dbops.migrate('lint-3', 'two hazards', 'ALTER TABLE lint_t DROP COLUMN ts; DROP INDEX lint_t_a');
SELECT version, event, sqlstate, message FROM dbops.migration_events
WHERE version LIKE 'lint-%' ORDER BY event_id;
SELECT column_name FROM information_schema.columns
WHERE table_name = 'lint_t' AND column_name = 'ts';
SET dbops.migration_lint_allow = 'drop_column, drop_index';
SELECT dbops.migrate('lint-3', 'two hazards, allowed', 'ALTER TABLE lint_t DROP COLUMN ts; DROP INDEX lint_t_a');
RESET dbops.migration_lint_allow;
SET dbops.migration_lint = off;
SELECT dbops.migrate('lint-4', 'lint off', 'DROP INDEX lint_t_b');
-- a skipped migration is not linted
SET dbops.migration_lint = error;
SELECT dbops.migrate('lint-4', 'lint off', 'DROP INDEX lint_t_b');
RESET dbops.migration_lint;

SET session_replication_role = replica;   -- bypasses the append-only trigger
DELETE FROM dbops.migration_events WHERE version LIKE 'lint-%';
RESET session_replication_role;
DELETE FROM dbops.migration_objects WHERE version LIKE 'lint-%';
DELETE FROM dbops.migrations WHERE version LIKE 'lint-%';
DROP FUNCTION lint_one(text);
DROP TABLE lint_t, lint_p;
DROP FUNCTION lint_vol(), lint_imm();
