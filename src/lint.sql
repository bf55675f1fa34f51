
-- ---------------------------------------------------------------------------
-- dbops.migration_lint(): what a migration's statements would block
-- ---------------------------------------------------------------------------
-- No SET clause: it runs no query, and resolves the body's names (tables,
-- columns, types, functions of a default) with the caller's search_path,
-- as the migration will (lint.c).
CREATE FUNCTION dbops.migration_lint(
    body text,
    allow text[] DEFAULT '{}',
    single_transaction boolean DEFAULT true,
    OUT statement integer,
    OUT hazard text,
    OUT relation text,
    OUT lock text,
    OUT blocks text,
    OUT why text,
    OUT safe_form text,
    OUT allowed boolean,
    OUT statement_text text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_migration_lint'
LANGUAGE C STABLE;
COMMENT ON FUNCTION dbops.migration_lint(text, text[], boolean) IS
    'The hazards of a migration body for a busy database, one row each: the statement, the lock it takes, what that blocks, why, and the safe form';
