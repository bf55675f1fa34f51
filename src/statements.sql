-- ---------------------------------------------------------------------------
-- statements: the top statements of pg_stat_statements (doc/statements.md)
-- ---------------------------------------------------------------------------

-- pg_stat_statements is optional and may be installed in any schema: it is
-- found through pg_extension and read with dynamic SQL, as the caller, so
-- its own rules decide whose query texts the caller sees.  Its columns
-- differ between versions (blk_read_time in 15, shared_ and local_
-- blk_read_time from 17 on): the view's own columns decide what is read.
CREATE FUNCTION dbops.top_queries(
    order_by text DEFAULT 'total_time',
    limit_rows integer DEFAULT 20,
    all_databases boolean DEFAULT false)
RETURNS TABLE (
    queryid bigint,
    userid oid,
    username name,
    dbid oid,
    datname name,
    calls bigint,
    total_exec_time_ms double precision,
    mean_exec_time_ms double precision,
    rows bigint,
    shared_blks_hit bigint,
    shared_blks_read bigint,
    local_blks_hit bigint,
    local_blks_read bigint,
    temp_blks_written bigint,
    blk_read_time_ms double precision,
    blk_write_time_ms double precision,
    wal_bytes numeric,
    total_plan_time_ms double precision,
    share_pct double precision,
    query text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_orders constant text[] := '{total_time,mean_time,calls,rows,shared_blks_read,temp_blks_written,io_time,wal_bytes,plan_time}';
    v_sorts constant text[] := '{total_exec_time_ms,mean_exec_time_ms,calls,rows,shared_blks_read,temp_blks_written,io_time_ms,wal_bytes,total_plan_time_ms}';
    v_schema name;
    v_cols text[];
    v_io boolean;
    v_plan boolean;
    v_read text;
    v_write text;
BEGIN
    IF top_queries.order_by IS NULL THEN
        RAISE EXCEPTION 'order_by must not be NULL'
            USING ERRCODE = '22004',
                  HINT = 'Pass one of ' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(v_orders, ', ')
                         OPERATOR(pg_catalog.||) ', or leave it out for total_time.';
    END IF;
    IF NOT top_queries.order_by OPERATOR(pg_catalog.=) ANY (v_orders) THEN
        RAISE EXCEPTION 'unknown order_by "%"',
            CASE WHEN pg_catalog.length(top_queries.order_by) OPERATOR(pg_catalog.>) 64
                 THEN pg_catalog.left(top_queries.order_by, 64) OPERATOR(pg_catalog.||) '...'
                 ELSE top_queries.order_by END
            USING ERRCODE = '22023',
                  HINT = 'Pass one of ' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(v_orders, ', ')
                         OPERATOR(pg_catalog.||) ' (in lower case).';
    END IF;
    IF top_queries.limit_rows IS NULL OR top_queries.limit_rows OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'limit_rows must be a positive number of rows'
            USING ERRCODE = CASE WHEN top_queries.limit_rows IS NULL THEN '22004' ELSE '22023' END,
                  HINT = 'For example dbops.top_queries(''total_time'', 20).';
    END IF;
    IF top_queries.all_databases IS NULL THEN
        RAISE EXCEPTION 'all_databases must not be NULL'
            USING ERRCODE = '22004',
                  HINT = 'Pass true for the statements of every database, false for this one''s.';
    END IF;

    SELECT n.nspname INTO v_schema
    FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
    WHERE e.extname OPERATOR(pg_catalog.=) 'pg_stat_statements';
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'pg_stat_statements is not installed in database "%"', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'Add pg_stat_statements to shared_preload_libraries (this needs a restart), then run CREATE EXTENSION pg_stat_statements in this database.';
    END IF;
    IF NOT pg_catalog.has_schema_privilege(v_schema::pg_catalog.text, 'USAGE') THEN
        RAISE EXCEPTION 'permission denied for schema %', v_schema
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('pg_stat_statements is installed in schema %I: GRANT USAGE ON SCHEMA %I to the role.',
                                           v_schema, v_schema);
    END IF;
    -- installed but not preloaded: its variables are not defined (at most
    -- placeholders, of type string)
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_settings s
                   WHERE s.name OPERATOR(pg_catalog.=) 'pg_stat_statements.max'
                     AND s.vartype OPERATOR(pg_catalog.=) 'integer') THEN
        RAISE EXCEPTION 'pg_stat_statements is installed in database "%" but not loaded', pg_catalog.current_database()
            USING ERRCODE = '55000',
                  HINT = 'Add pg_stat_statements to shared_preload_libraries and restart the server.';
    END IF;

    v_cols := ARRAY(SELECT a.attname::pg_catalog.text
                    FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid OPERATOR(pg_catalog.=)
                          pg_catalog.format('%I.pg_stat_statements', v_schema)::pg_catalog.regclass
                      AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped);
    IF NOT 'total_exec_time' OPERATOR(pg_catalog.=) ANY (v_cols) THEN
        RAISE EXCEPTION 'pg_stat_statements in this database is older than version 1.8'
            USING ERRCODE = '55000',
                  HINT = 'Run ALTER EXTENSION pg_stat_statements UPDATE.';
    END IF;

    -- I/O timing only where track_io_timing is on, planning time only where
    -- pg_stat_statements.track_planning is: NULL, not 0, where not tracked
    v_io := pg_catalog.current_setting('track_io_timing') OPERATOR(pg_catalog.=) 'on';
    v_plan := COALESCE(pg_catalog.current_setting('pg_stat_statements.track_planning', true), 'off')
              OPERATOR(pg_catalog.=) 'on'
              AND 'total_plan_time' OPERATOR(pg_catalog.=) ANY (v_cols);
    IF NOT v_io THEN
        v_read := 'NULL::pg_catalog.float8';
        v_write := v_read;
    ELSIF 'shared_blk_read_time' OPERATOR(pg_catalog.=) ANY (v_cols) THEN
        v_read := 's.shared_blk_read_time OPERATOR(pg_catalog.+) s.local_blk_read_time';
        v_write := 's.shared_blk_write_time OPERATOR(pg_catalog.+) s.local_blk_write_time';
    ELSE
        v_read := 's.blk_read_time';
        v_write := 's.blk_write_time';
    END IF;

    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT q.queryid, q.userid, q.username, q.dbid, q.datname, q.calls,'
        '       q.total_exec_time_ms, q.mean_exec_time_ms, q.rows, q.shared_blks_hit,'
        '       q.shared_blks_read, q.local_blks_hit, q.local_blks_read, q.temp_blks_written,'
        '       q.blk_read_time_ms, q.blk_write_time_ms, q.wal_bytes, q.total_plan_time_ms,'
        '       q.share_pct, q.query'
        ' FROM (SELECT s.queryid, s.userid, r.rolname AS username, s.dbid, d.datname, s.calls,'
        '              s.total_exec_time AS total_exec_time_ms, s.mean_exec_time AS mean_exec_time_ms,'
        '              s.rows, s.shared_blks_hit, s.shared_blks_read, s.local_blks_hit,'
        '              s.local_blks_read, s.temp_blks_written,'
        '              %1$s AS blk_read_time_ms, %2$s AS blk_write_time_ms,'
        '              (%1$s) OPERATOR(pg_catalog.+) (%2$s) AS io_time_ms,'
        '              %3$s AS wal_bytes, %4$s AS total_plan_time_ms,'
        '              100::pg_catalog.float8 OPERATOR(pg_catalog.*) s.total_exec_time'
        '                OPERATOR(pg_catalog./) NULLIF(pg_catalog.sum(s.total_exec_time) OVER (), 0::pg_catalog.float8)'
        '                AS share_pct,'
        '              s.query'
        '       FROM %5$I.pg_stat_statements AS s'
        '       LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) s.userid'
        '       LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) s.dbid'
        '       WHERE $1 OR s.dbid OPERATOR(pg_catalog.=)'
        '             (SELECT d2.oid FROM pg_catalog.pg_database d2'
        '              WHERE d2.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())) AS q'
        ' ORDER BY q.%6$I DESC NULLS LAST, q.total_exec_time_ms DESC, q.queryid'
        ' LIMIT $2',
        v_read, v_write,
        CASE WHEN 'wal_bytes' OPERATOR(pg_catalog.=) ANY (v_cols) THEN 's.wal_bytes' ELSE 'NULL::pg_catalog.numeric' END,
        CASE WHEN v_plan THEN 's.total_plan_time' ELSE 'NULL::pg_catalog.float8' END,
        v_schema,
        v_sorts[pg_catalog.array_position(v_orders, top_queries.order_by)])
    USING top_queries.all_databases, top_queries.limit_rows;
END
$$;

REVOKE ALL ON FUNCTION dbops.top_queries(text, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbops.top_queries(text, integer, boolean) TO pg_monitor;
