
-- ---------------------------------------------------------------------------
-- bloat
-- ---------------------------------------------------------------------------

-- The catalog-statistics estimate (method "stats"), one row per relation:
-- the pages a rewrite would need by the classic reckoning (tuple header,
-- null bitmap, average column widths from pg_stats, fillfactor), and why it
-- may be wrong.  Runs with the caller's rights: pg_stats shows only the
-- columns the caller may SELECT.
CREATE FUNCTION dbops._bloat_stats(relids oid[])
RETURNS TABLE (relid oid, est_pages float8, live_bytes float8, note text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relam, c.reltuples, c.reltoastrelid,
           n.nspname, am.amname,
           coalesce((SELECT substring(o FROM 'fillfactor=([0-9]+)')::int
                     FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'),
                    CASE WHEN c.relkind = 'i' THEN 90 ELSE 100 END) AS ff,
           i.indrelid, i.indkey, i.indisunique,
           i.indpred IS NOT NULL AS partial, i.indexprs IS NOT NULL AS expr,
           coalesce((SELECT lower(o) NOT IN ('deduplicate_items=off', 'deduplicate_items=false', 'deduplicate_items=0')
                     FROM unnest(c.reloptions) o WHERE o LIKE 'deduplicate_items=%'), true) AS dedup,
           tc.relname AS tabname, tn.nspname AS tabnsp,
           coalesce(i.indrelid, c.oid) AS tableoid
    FROM unnest(relids) AS u(oid)
    JOIN pg_class c ON c.oid = u.oid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_am am ON am.oid = c.relam
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class tc ON tc.oid = i.indrelid
    LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
),
keys AS (
    SELECT r.oid, a.attnum, a.atttypid, ty.typlen,
           CASE WHEN r.relkind = 'i' AND r.indkey[a.attnum - 1] <> 0 THEN r.tabnsp ELSE r.nspname END AS snsp,
           CASE WHEN r.relkind = 'i' AND r.indkey[a.attnum - 1] <> 0 THEN r.tabname ELSE r.relname END AS stab,
           CASE WHEN r.relkind = 'i' AND r.indkey[a.attnum - 1] <> 0
                THEN (SELECT ta.attname FROM pg_attribute ta
                      WHERE ta.attrelid = r.indrelid AND ta.attnum = r.indkey[a.attnum - 1])
                ELSE a.attname END AS scol
    FROM rel r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type ty ON ty.oid = a.atttypid
    WHERE r.relkind IN ('r', 'm', 'i')
),
cols AS (
    SELECT DISTINCT ON (k.oid, k.attnum) k.oid, k.attnum, k.atttypid, k.typlen, s.null_frac, s.avg_width
    FROM keys k
    LEFT JOIN pg_stats s ON s.schemaname = k.snsp AND s.tablename = k.stab AND s.attname = k.scol
    ORDER BY k.oid, k.attnum, s.inherited
),
agg AS (
    SELECT oid, count(*) AS ncols, count(avg_width) AS nstats,
           count(*) FILTER (WHERE avg_width IS NULL AND typlen < 0) AS nunknown,
           sum(CASE WHEN avg_width IS NOT NULL THEN (1 - null_frac) * avg_width
                    WHEN typlen > 0 THEN typlen ELSE 0 END) AS width,
           coalesce(bool_or(null_frac > 0), false) AS hasnulls,
           bool_or(atttypid = 'name'::regtype) AS hasname
    FROM cols GROUP BY oid
),
est AS (
    SELECT r.*, coalesce(g.ncols, 0) AS ncols, coalesce(g.nstats, 0) AS nstats,
           coalesce(g.nunknown, 0) AS nunknown, g.hasname,
           pg_stat_get_mod_since_analyze(r.tableoid) AS nmod,
           CASE WHEN r.relkind = 'i'
                THEN 8 * ceil((8 + CASE WHEN g.hasnulls THEN 8 ELSE 0 END + g.width) / 8.0)
                ELSE 8 * ceil((23 + CASE WHEN g.hasnulls THEN (g.ncols + 7) / 8 ELSE 0 END) / 8.0)
                     + 8 * ceil(g.width / 8.0)
           END AS tpl
    FROM rel r LEFT JOIN agg g ON g.oid = r.oid
),
pages AS (
    SELECT e.*,
           CASE WHEN e.relkind = 'i'
                THEN greatest(1, floor((8152 - 8192 * (100 - e.ff) / 100) / (e.tpl + 4)))
                ELSE least(291, greatest(1, floor((8168 - 8192 * (100 - e.ff) / 100) / (e.tpl + 4))))
           END AS perpage
    FROM est e
)
SELECT p.oid,
       CASE
           WHEN p.relkind = 't' OR p.reltuples < 0 OR p.nunknown > 0 OR p.tpl IS NULL
                OR (p.relkind = 'i' AND p.amname <> 'btree') THEN NULL
           WHEN p.relkind = 'i'
           THEN ceil(p.reltuples / p.perpage)
                + ceil(ceil(p.reltuples / p.perpage) / floor((8152 - 2457) / (p.tpl + 4))) + 1
           ELSE ceil(p.reltuples / p.perpage)
       END::float8,
       CASE WHEN p.reltuples >= 0 AND p.tpl IS NOT NULL
            THEN p.reltuples * (p.tpl + 4) END::float8,
       nullif(concat_ws('; ',
           CASE WHEN p.relkind = 't' THEN 'TOAST table: no catalog statistics to estimate from, read its pages' END,
           CASE WHEN p.relkind = 'i' AND p.amname <> 'btree'
                THEN p.amname || ' index: no catalog model for this index type' END,
           CASE WHEN p.relkind <> 't' AND p.reltuples < 0
                THEN 'no statistics: never analyzed or vacuumed' END,
           CASE WHEN p.relkind <> 't' AND p.nstats < p.ncols
                     AND NOT has_table_privilege(p.tableoid, 'SELECT')
                     AND NOT has_any_column_privilege(p.tableoid, 'SELECT')
                THEN 'the role cannot read pg_stats for this table (needs SELECT on it)'
                WHEN p.relkind <> 't' AND p.nstats < p.ncols
                THEN format('no column statistics for %s of %s columns%s', p.ncols - p.nstats, p.ncols,
                            CASE WHEN p.nunknown > 0 THEN ', no estimate' ELSE ', fixed widths assumed' END) END,
           CASE WHEN p.relkind <> 't' AND p.reltuples >= 0 AND p.nmod > 0.1 * p.reltuples + 50
                THEN format('statistics stale: %s rows changed since the last ANALYZE (reltuples %s)',
                            p.nmod, p.reltuples::bigint) END,
           CASE WHEN p.relkind IN ('r', 'm') AND p.reltoastrelid <> 0
                     AND pg_relation_size(p.reltoastrelid) > pg_relation_size(p.oid)
                THEN 'TOAST-heavy: most of the data is in the TOAST table, which this estimate does not cover' END,
           CASE WHEN p.hasname
                THEN 'name columns: the classic estimate misjudges their width and alignment' END,
           CASE WHEN p.relkind = 'i' AND p.amname = 'btree' AND p.dedup AND NOT p.indisunique
                THEN 'deduplicated btree: the estimate ignores posting lists and overstates the rewritten size' END,
           CASE WHEN p.partial THEN 'partial index: widths come from the whole table' END,
           CASE WHEN p.expr THEN 'expression index: widths come from the expression statistics, if any' END
       ), '')
FROM pages p
$$;
COMMENT ON FUNCTION dbops._bloat_stats(oid[]) IS
    'Internal to dbops.bloat(): the catalog-statistics estimate';
-- dbops.bloat() calls it through the function manager (EXECUTE on bloat()
-- is the privilege that counts), with the caller's rights.
REVOKE ALL ON FUNCTION dbops._bloat_stats(oid[]) FROM PUBLIC;

-- max_pages: the default is evaluated before the module is loaded (the SET
-- clause defers loading to the first call), when dbops is not preloaded and
-- dbops.bloat_max_pages was never set: then it is the GUC's default, 20000.
CREATE FUNCTION dbops.bloat(
    relation regclass DEFAULT NULL,
    method text DEFAULT 'auto',
    max_pages bigint DEFAULT coalesce(current_setting('dbops.bloat_max_pages', true), '20000')::bigint,
    ci_width float8 DEFAULT 2,
    seed integer DEFAULT NULL,
    OUT relation regclass, OUT kind text, OUT method text,
    OUT size_bytes bigint, OUT bloat_bytes bigint, OUT bloat_pct numeric,
    OUT ci_low_pct numeric, OUT ci_high_pct numeric,
    OUT live_bytes bigint, OUT dead_bytes bigint, OUT free_bytes bigint,
    OUT pages_read bigint, OUT note text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dbops_bloat'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dbops.bloat(regclass, text, bigint, float8, integer) IS
    'Bloat of a relation (with its TOAST table and indexes) or of every user relation: bytes a rewrite would give back';

INSERT INTO dbops.health_thresholds (check_name, warning, critical) VALUES
    ('bloat', 30, 60);

-- ---------------------------------------------------------------------------
-- bloat history: snapshots of dbops.bloat() (a job of dbops.schedule())
-- ---------------------------------------------------------------------------
-- bloat_snapshot() is SECURITY DEFINER (it reads every relation as the
-- extension's owner).

CREATE TABLE dbops.bloat_history (
    taken_at     timestamptz NOT NULL,
    relid        oid NOT NULL,
    relation     text NOT NULL,
    kind         text NOT NULL,
    method       text,
    size_bytes   bigint,
    bloat_bytes  bigint,
    bloat_pct    numeric,
    PRIMARY KEY (relid, kind, taken_at)
);
CREATE INDEX bloat_history_taken_at_idx ON dbops.bloat_history (taken_at);
COMMENT ON TABLE dbops.bloat_history IS
    'dbops.bloat() snapshots taken by dbops.bloat_snapshot(); kept for its "keep" interval';
SELECT pg_catalog.pg_extension_config_dump('dbops.bloat_history', '');
GRANT SELECT ON dbops.bloat_history TO pg_monitor;

CREATE FUNCTION dbops.bloat_snapshot(
    keep interval DEFAULT '90 days',
    method text DEFAULT 'auto',
    min_size bigint DEFAULT 1048576,
    OUT inserted bigint, OUT deleted bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM dbops._require_history_keep(keep, '90 days');
    IF method IS NULL THEN
        RAISE EXCEPTION 'method must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use one of the methods of dbops.bloat(), e.g. ''auto''.';
    END IF;
    IF min_size IS NULL OR min_size OPERATOR(pg_catalog.<) 0::pg_catalog.int8 THEN
        RAISE EXCEPTION 'min_size must be zero or more bytes, not %', coalesce(min_size::pg_catalog.text, 'NULL')
            USING ERRCODE = CASE WHEN min_size IS NULL THEN 'null_value_not_allowed' ELSE 'invalid_parameter_value' END,
                  HINT = 'Relations smaller than min_size bytes are left out, e.g. min_size => 1048576 (the default); 0 keeps every relation.';
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
REVOKE ALL ON FUNCTION dbops.bloat_snapshot(interval, text, bigint) FROM PUBLIC;
COMMENT ON FUNCTION dbops.bloat_snapshot(interval, text, bigint) IS
    'Append dbops.bloat() for relations of at least min_size bytes to dbops.bloat_history; delete history older than keep';

-- ---------------------------------------------------------------------------
-- relation_sizes(): table, TOAST and index sizes per table
-- ---------------------------------------------------------------------------

-- One row per table and materialized view of the database, largest first, from one pass over pg_class and pg_index: sizes
-- are relpages (as VACUUM, ANALYZE and CREATE INDEX left them) times the
-- block size, which takes no lock and opens no file; a relation PostgreSQL
-- has not measured yet (reltuples < 0) is measured with pg_relation_size().
-- exact => true measures every relation (as the runbook's
-- pg_total_relation_size() query does, with its cost and its locks).  The
-- share is of all tables of the database, system catalogs included, which
-- are listed with include_system => true.
CREATE FUNCTION dbops.relation_sizes(
    limit_rows integer DEFAULT 50,
    exact boolean DEFAULT false,
    include_system boolean DEFAULT false,
    OUT relation regclass, OUT kind text,
    OUT table_bytes bigint, OUT toast_bytes bigint, OUT index_bytes bigint,
    OUT total_bytes bigint, OUT rows_estimate bigint, OUT share_pct numeric,
    OUT estimated boolean)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- the catalog join is costed high enough for JIT, whose compilation takes
-- longer than the query (10x at 3,000 tables)
SET jit = off
AS $$
BEGIN
    IF limit_rows IS NULL OR exact IS NULL OR include_system IS NULL THEN
        RAISE EXCEPTION '% must not be NULL',
                        CASE WHEN limit_rows IS NULL THEN 'limit_rows'
                             WHEN exact IS NULL THEN 'exact' ELSE 'include_system' END
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass how many tables to list (e.g. 50, 0 for all), whether to measure every relation (false: use the catalog''s page counts) and whether to list system catalogs.';
    END IF;
    IF limit_rows < 0 THEN
        RAISE EXCEPTION 'limit_rows must be zero or more, not %', limit_rows
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass how many tables to list, largest first; 0 lists them all.';
    END IF;
    RETURN QUERY
    WITH bs AS (
        SELECT current_setting('block_size')::bigint AS b
    ), rel AS (
        -- each relation with storage: its size, measured or from relpages
        SELECT c.oid, c.relkind, c.relnamespace, c.reltoastrelid, c.reltuples,
               CASE WHEN exact OR c.reltuples < 0
                    -- all forks; 0 for a relation dropped meanwhile
                    THEN coalesce(pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
                                  + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init'), 0)
                    -- a vacuumed heap also has a free space map (three pages,
                    -- and a leaf per ~4000 heap pages) and a visibility map
                    -- (a page per ~32000), as the health report counts them
                    ELSE (c.relpages::bigint
                          + CASE WHEN c.relpages > 0 AND c.relkind IN ('r', 'm', 't')
                                 THEN 2 + (c.relpages + 4068) / 4069 + (c.relpages + 32639) / 32640
                                 ELSE 0 END) * (SELECT b FROM bs) END AS bytes,
               exact OR c.reltuples < 0 AS measured
          FROM pg_class c
         WHERE c.relkind IN ('r', 'm', 't', 'i')
           AND c.relpersistence <> 't'
    ), idx AS (
        SELECT i.indrelid, sum(r.bytes) AS bytes, bool_and(r.measured) AS measured
          FROM pg_index i JOIN rel r ON r.oid = i.indexrelid
         GROUP BY i.indrelid
    ), tbl AS (
        SELECT t.oid, t.relkind, t.relnamespace, t.reltuples, t.bytes AS table_bytes,
               coalesce(tt.bytes, 0) + coalesce(ti.bytes, 0) AS toast_bytes,
               coalesce(ix.bytes, 0) AS index_bytes,
               t.measured AND coalesce(tt.measured, true) AND coalesce(ti.measured, true)
                   AND coalesce(ix.measured, true) AS measured
          FROM rel t
          LEFT JOIN rel tt ON tt.oid = t.reltoastrelid
          LEFT JOIN idx ti ON ti.indrelid = t.reltoastrelid
          LEFT JOIN idx ix ON ix.indrelid = t.oid
         WHERE t.relkind IN ('r', 'm')
    ), total AS (
        SELECT sum(tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes) AS bytes FROM tbl
    )
    SELECT tbl.oid::regclass,
           CASE tbl.relkind WHEN 'r' THEN 'table' ELSE 'materialized view' END,
           tbl.table_bytes::bigint, tbl.toast_bytes::bigint, tbl.index_bytes::bigint,
           (tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes)::bigint,
           CASE WHEN tbl.reltuples >= 0 THEN tbl.reltuples::bigint END,
           round(100.0 * (tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes)
                 / NULLIF((SELECT t.bytes FROM total t), 0), 2),
           NOT tbl.measured
      FROM tbl
     WHERE include_system
        OR tbl.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
     ORDER BY tbl.table_bytes + tbl.toast_bytes + tbl.index_bytes DESC, tbl.oid
     LIMIT NULLIF(limit_rows, 0);
END
$$;
COMMENT ON FUNCTION dbops.relation_sizes(integer, boolean, boolean) IS
    'Table, TOAST and index sizes per table, largest first, from the catalog''s page counts (exact => true measures them)';
