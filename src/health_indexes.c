/*-------------------------------------------------------------------------
 *
 * health_indexes.c
 *	  Index advice: dbops.index_advice(), one row per finding, and the
 *	  health checks over the same findings, unused_indexes,
 *	  duplicate_indexes, fk_without_index and seq_scan_tables.  Each kind
 *	  of finding is one catalog query, kept for the backend's life and
 *	  shared by the report function and its check; all run as the caller.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "fmgr.h"
#include "funcapi.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "dbops.h"
#include "healthkit.h"

/*
 * The columns of every kind's query and of dbops.index_advice(): kind,
 * relation, index, detail, size_bytes, suggestion.
 */
#define INDEX_ADVICE_COLS 6

/*
 * The schemas no advice is about; temporary relations are left out too, and
 * (NOT_EXTENSION_MEMBER) the tables of extensions, dbops' own included.
 */
#define NOT_SYSTEM_SCHEMA(n) \
	" NOT " n ".nspname OPERATOR(pg_catalog.=) ANY " \
	"(ARRAY['pg_catalog', 'information_schema', 'pg_toast']::pg_catalog.name[]) "
#define SKIP_SYSTEM(n, c) \
	" AND" NOT_SYSTEM_SCHEMA(n) \
	" AND " c ".relpersistence OPERATOR(pg_catalog.<>) 't' "

/* a table of an extension's: not the user's to change */
#define NOT_EXTENSION_MEMBER(relid) \
	" AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend dep" \
	" WHERE dep.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass" \
	" AND dep.objid OPERATOR(pg_catalog.=) " relid \
	" AND dep.deptype OPERATOR(pg_catalog.=) 'e') "

/* an index that backs a primary key, unique or exclusion constraint */
#define BACKS_CONSTRAINT(x) \
	"(" x ".indisprimary OR " x ".indisexclusion OR EXISTS (SELECT FROM pg_catalog.pg_constraint pc" \
	" WHERE pc.conindid OPERATOR(pg_catalog.=) " x ".indexrelid" \
	" AND pc.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u', 'x']::pg_catalog.\"char\"[])))"

/* the defaults of seq_scan_tables (doc/indexes.md) */
#define SEQ_MIN_PAGES "1000"	/* 8 MB at 8 kB pages */
#define SEQ_MIN_PAGES_N 1000
#define SEQ_MIN_SCANS "50"
#define SEQ_RATIO "10"			/* sequential scans per index scan */
#define SEQ_MIN_ROWS "10000"	/* rows read per sequential scan, on average */

typedef enum IndexAdviceKind
{
	ADVICE_UNUSED,
	ADVICE_DUPLICATE,
	ADVICE_FK,
	ADVICE_SEQ_SCAN,
	NUM_ADVICE_KINDS
} IndexAdviceKind;

static const char *const advice_queries[NUM_ADVICE_KINDS] = {
	/*
	 * unused_index: no scan since the statistics were reset.  A primary
	 * key's or unique constraint's index is unique, an exclusion
	 * constraint's has indisexclusion: the flags leave them out without a
	 * look at pg_constraint.
	 */
	"SELECT 'unused_index'::pg_catalog.text, i.indrelid::pg_catalog.regclass, "
	"i.indexrelid::pg_catalog.regclass, "
	"pg_catalog.format('no index scan since %s; scans on standbys are not counted here', "
	"COALESCE('the statistics were reset at ' OPERATOR(pg_catalog.||) r.reset::pg_catalog.text, "
	"'the statistics began (never reset)')), "
	"pg_catalog.pg_relation_size(i.indexrelid), "
	"pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, ci.relname) "
	"FROM pg_catalog.pg_index i "
	"JOIN pg_catalog.pg_class ci ON ci.oid OPERATOR(pg_catalog.=) i.indexrelid "
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) ci.relnamespace "
	"CROSS JOIN (SELECT pg_catalog.pg_stat_get_db_stat_reset_time(d.oid) AS reset "
	"FROM pg_catalog.pg_database d "
	"WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) r "
	"WHERE ci.relkind OPERATOR(pg_catalog.=) 'i' AND i.indisvalid "
	"AND NOT i.indisunique AND NOT i.indisexclusion AND NOT i.indisreplident "
	SKIP_SYSTEM("n", "ci") NOT_EXTENSION_MEMBER("i.indrelid")
	"AND pg_catalog.pg_stat_get_numscans(i.indexrelid) OPERATOR(pg_catalog.=) 0 "
	"ORDER BY 5 DESC, n.nspname, ci.relname",

	/*
	 * duplicate_index and redundant_index: a valid btree index r whose
	 * columns (INCLUDE ones too) are those of another valid btree index k of
	 * the table, or a leading prefix of them, with the same operator
	 * classes, collations and ordering options on its key columns and the
	 * same expressions and predicate.  r is the one to drop: never one that
	 * backs a constraint, a unique one only for an identical unique k; of
	 * two identical ones, the one backing a constraint, else the unique
	 * one, else the older one is kept.
	 */
	"SELECT d.kind, d.relation, d.index, d.detail, d.size_bytes, d.suggestion FROM ("
	"SELECT DISTINCT ON (r.indexrelid) "
	"CASE WHEN s.same THEN 'duplicate_index' ELSE 'redundant_index' END::pg_catalog.text AS kind, "
	"r.indrelid::pg_catalog.regclass AS relation, r.indexrelid::pg_catalog.regclass AS index, "
	"pg_catalog.format(CASE WHEN s.same THEN 'same columns as %s' "
	"ELSE 'its columns lead %s' END, k.indexrelid::pg_catalog.regclass) AS detail, "
	"pg_catalog.pg_relation_size(r.indexrelid) AS size_bytes, "
	"pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, cr.relname) AS suggestion "
	/* the pairs whose columns match, from pg_index alone (fenced) */
	"FROM (SELECT r.indexrelid AS rid, k.indexrelid AS kid, "
	"r.indnatts OPERATOR(pg_catalog.=) k.indnatts "
	"AND r.indnkeyatts OPERATOR(pg_catalog.=) k.indnkeyatts AS same "
	"FROM pg_catalog.pg_index r "
	"JOIN pg_catalog.pg_index k ON k.indrelid OPERATOR(pg_catalog.=) r.indrelid "
	"AND k.indexrelid OPERATOR(pg_catalog.<>) r.indexrelid "
	"WHERE r.indisvalid AND k.indisvalid "
	"AND r.indnkeyatts OPERATOR(pg_catalog.<=) k.indnkeyatts "
	"AND r.indnatts OPERATOR(pg_catalog.<=) k.indnatts "
	"AND (r.indkey::pg_catalog.int2[])[0:r.indnatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) "
	"(k.indkey::pg_catalog.int2[])[0:r.indnatts OPERATOR(pg_catalog.-) 1] "
	"AND (r.indclass::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) "
	"(k.indclass::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] "
	"AND (r.indcollation::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) "
	"(k.indcollation::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] "
	"AND (r.indoption::pg_catalog.int2[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) "
	"(k.indoption::pg_catalog.int2[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] "
	"OFFSET 0) s "
	"JOIN pg_catalog.pg_index r ON r.indexrelid OPERATOR(pg_catalog.=) s.rid "
	"JOIN pg_catalog.pg_index k ON k.indexrelid OPERATOR(pg_catalog.=) s.kid "
	"JOIN pg_catalog.pg_class cr ON cr.oid OPERATOR(pg_catalog.=) r.indexrelid "
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) cr.relnamespace "
	"JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) cr.relam "
	"JOIN pg_catalog.pg_class ck ON ck.oid OPERATOR(pg_catalog.=) k.indexrelid "
	"WHERE a.amname OPERATOR(pg_catalog.=) 'btree' AND ck.relam OPERATOR(pg_catalog.=) cr.relam "
	"AND cr.relkind OPERATOR(pg_catalog.=) 'i' AND ck.relkind OPERATOR(pg_catalog.=) 'i'"
	SKIP_SYSTEM("n", "cr") NOT_EXTENSION_MEMBER("r.indrelid")
	"AND pg_catalog.pg_get_expr(r.indexprs, r.indrelid) IS NOT DISTINCT FROM "
	"pg_catalog.pg_get_expr(k.indexprs, k.indrelid) "
	"AND pg_catalog.pg_get_expr(r.indpred, r.indrelid) IS NOT DISTINCT FROM "
	"pg_catalog.pg_get_expr(k.indpred, k.indrelid) "
	"AND NOT r.indisreplident AND NOT " BACKS_CONSTRAINT("r") " "
	"AND (NOT r.indisunique OR (s.same AND k.indisunique "
	"AND k.indnullsnotdistinct OPERATOR(pg_catalog.=) r.indnullsnotdistinct)) "
	"AND (NOT s.same OR " BACKS_CONSTRAINT("k") " "
	"OR (k.indisunique AND NOT r.indisunique) "
	"OR (k.indisunique OPERATOR(pg_catalog.=) r.indisunique "
	"AND k.indexrelid OPERATOR(pg_catalog.<) r.indexrelid)) "
	"ORDER BY r.indexrelid, s.same DESC, k.indexrelid) d "
	"ORDER BY d.relation::pg_catalog.text, d.index::pg_catalog.text",

	/*
	 * fk_without_index: a foreign key whose columns no valid, non-partial
	 * index leads with, in any order.  A partition's copy of its parent's
	 * key is left out: the parent's is the finding.
	 */
	"SELECT 'fk_without_index'::pg_catalog.text, c.conrelid::pg_catalog.regclass, "
	"NULL::pg_catalog.regclass, "
	"pg_catalog.format('foreign key %I (%s) references %s, no index leads with its columns', "
	"c.conname, l.cols, c.confrelid::pg_catalog.regclass), "
	"pg_catalog.pg_relation_size(c.conrelid), "
	"pg_catalog.format('CREATE INDEX CONCURRENTLY ON %I.%I (%s);', n.nspname, t.relname, l.cols) "
	"FROM pg_catalog.pg_constraint c "
	"JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) c.conrelid "
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.relnamespace "
	"CROSS JOIN LATERAL (SELECT pg_catalog.string_agg(pg_catalog.format('%I', at.attname), ', ' "
	"ORDER BY u.ord) AS cols "
	"FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS u (attnum, ord) "
	"JOIN pg_catalog.pg_attribute at ON at.attrelid OPERATOR(pg_catalog.=) c.conrelid "
	"AND at.attnum OPERATOR(pg_catalog.=) u.attnum) l "
	"WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid"
	SKIP_SYSTEM("n", "t") NOT_EXTENSION_MEMBER("c.conrelid")
	"AND NOT EXISTS (SELECT FROM pg_catalog.pg_index x "
	"WHERE x.indrelid OPERATOR(pg_catalog.=) c.conrelid AND x.indisvalid AND x.indpred IS NULL "
	"AND x.indnkeyatts OPERATOR(pg_catalog.>=) pg_catalog.cardinality(c.conkey) "
	"AND (x.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(c.conkey) OPERATOR(pg_catalog.-) 1] "
	"OPERATOR(pg_catalog.@>) c.conkey "
	"AND c.conkey OPERATOR(pg_catalog.@>) "
	"(x.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(c.conkey) OPERATOR(pg_catalog.-) 1]) "
	"ORDER BY n.nspname, t.relname, c.conname",

	/*
	 * seq_scan_table: a table or materialized view of at least
	 * SEQ_MIN_PAGES pages with at least SEQ_MIN_SCANS sequential scans,
	 * SEQ_RATIO times as many as index scans, reading SEQ_MIN_ROWS rows or
	 * more a scan on average.
	 */
	"SELECT 'seq_scan_table'::pg_catalog.text, c.oid::pg_catalog.regclass, NULL::pg_catalog.regclass, "
	"pg_catalog.format('%s sequential scans read %s rows (%s a scan), %s index scans', "
	"s.seq, s.tup, s.tup OPERATOR(pg_catalog./) s.seq, s.idx), "
	"pg_catalog.pg_relation_size(c.oid), NULL::pg_catalog.text "
	/*
	 * the large tables first, from one sequential pass over pg_class (a
	 * plan that reaches pg_class per namespace through its name index
	 * reads every page of it once per schema)
	 */
	"FROM (SELECT c.oid, c.relname, c.relnamespace FROM pg_catalog.pg_class c "
	"WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'm']::pg_catalog.\"char\"[]) "
	"AND c.relpages OPERATOR(pg_catalog.>=) " SEQ_MIN_PAGES " "
	"AND c.relpersistence OPERATOR(pg_catalog.<>) 't' OFFSET 0) c "
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
	"CROSS JOIN LATERAL (SELECT pg_catalog.pg_stat_get_numscans(c.oid) AS seq, "
	"pg_catalog.pg_stat_get_tuples_returned(c.oid) AS tup, "
	"(SELECT COALESCE(pg_catalog.sum(pg_catalog.pg_stat_get_numscans(i.indexrelid)), 0)::pg_catalog.int8 "
	"FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid) AS idx) s "
	"WHERE" NOT_SYSTEM_SCHEMA("n")
	NOT_EXTENSION_MEMBER("c.oid")
	"AND s.seq OPERATOR(pg_catalog.>=) " SEQ_MIN_SCANS " "
	"AND s.seq OPERATOR(pg_catalog.>) (" SEQ_RATIO " OPERATOR(pg_catalog.*) s.idx) "
	"AND (s.tup OPERATOR(pg_catalog./) s.seq) OPERATOR(pg_catalog.>=) " SEQ_MIN_ROWS " "
	"ORDER BY s.tup DESC, n.nspname, c.relname",
};

static SPIPlanPtr advice_plans[NUM_ADVICE_KINDS];

static SPITupleTable *
advice_query(IndexAdviceKind kind)
{
	return dbops_kept_query(&advice_plans[kind], advice_queries[kind]);
}

PG_FUNCTION_INFO_V1(dbops_index_advice);

/*
 * dbops.index_advice(): every kind's findings, in the order of the kinds.
 */
Datum
dbops_index_advice(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, rsinfo->setDesc, INDEX_ADVICE_COLS);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (int kind = 0; kind < NUM_ADVICE_KINDS; kind++)
	{
		SPITupleTable *tt = advice_query(kind);
		uint64		n = SPI_processed;

		for (uint64 r = 0; r < n; r++)
		{
			Datum		values[INDEX_ADVICE_COLS];
			bool		nulls[INDEX_ADVICE_COLS];

			CHECK_FOR_INTERRUPTS();
			for (int c = 0; c < INDEX_ADVICE_COLS; c++)
				values[c] = dbops_col_datum(tt, r, c + 1, &nulls[c]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	return (Datum) 0;
}

/* how each kind of finding reads as a check */
typedef struct AdviceCheck
{
	bool		needs_counts;	/* reads the cumulative statistics */
	const char *unit;			/* "MB": the findings' size is the value */
	bool		sized;			/* the detail gives the findings' size */
	bool		detail_once;	/* every finding has the same detail: each
								 * culprit gets its size, the detail comes
								 * once, at the end */
	const char *what;
	const char *none;
	const char *hint;
} AdviceCheck;

static const AdviceCheck advice_checks[NUM_ADVICE_KINDS] = {
	[ADVICE_UNUSED] = {true, "MB", true, true, "unused index(es)",
		"no unused index in this database (scans on standbys are not counted here)",
		"Check that the standbys do not scan them either, then DROP INDEX CONCURRENTLY: "
	"dbops.index_advice() gives the statements."},
	[ADVICE_DUPLICATE] = {false, "indexes", true, false, "duplicate or redundant index(es)",
		"no duplicate or redundant btree index in this database",
		"Each costs writes and space and serves no read the other cannot: "
	"DROP INDEX CONCURRENTLY; dbops.index_advice() gives the statements."},
	[ADVICE_FK] = {false, "foreign keys", false, false, "foreign key(s) without an index",
		"every foreign key has an index that leads with its columns",
		"A DELETE or key UPDATE on the referenced table scans the referencing one "
		"for each row (slow cascades and purges, long lock waits): "
	"CREATE INDEX CONCURRENTLY; dbops.index_advice() gives the statements."},
	[ADVICE_SEQ_SCAN] = {true, "tables", false, false, "table(s) read mostly by sequential scans",
		"no large table is read mostly by large sequential scans",
		"Find their queries (pg_stat_statements) and index what they filter on, "
	"or accept the scans for reports."},
};

/*
 * One kind's findings as a check: their count (or, for unit "MB", their
 * size) is the value; the detail names the first culprits, "<index> on
 * <relation> (<the finding's detail>)", or "<relation> (...)" where the
 * finding has no index; with detail_once "<index> on <relation> (<size>)"
 * and the first finding's detail after the list.  none_possible: the
 * caller knows there can be no finding, and the query is not run.
 */
static void
check_advice(DbopsCheckResult *res, IndexAdviceKind kind, bool none_possible)
{
	const AdviceCheck *ac = &advice_checks[kind];
	SPITupleTable *tt = NULL;
	uint64		n = 0;
	double		bytes = 0;
	DbopsCulprits shown;

	if (ac->needs_counts && !dbops_counts_tracked(res))
		return;
	if (!none_possible)
	{
		tt = advice_query(kind);
		n = SPI_processed;
	}
	for (uint64 r = 0; r < n; r++)
	{
		bool		isnull;
		double		b = dbops_col_float(tt, r, 5, &isnull);

		if (!isnull)
			bytes += b;
	}
	if (strcmp(ac->unit, "MB") == 0)
		dbops_check_value(res, dbops_rounded(bytes / (1024.0 * 1024.0), 1), ac->unit);
	else
		dbops_check_value(res, n, ac->unit);
	if (n == 0)
	{
		appendStringInfoString(&res->detail, ac->none);
		return;
	}
	appendStringInfo(&res->detail, "%d %s", (int) n, ac->what);
	if (ac->sized)
	{
		appendStringInfoString(&res->detail, ", ");
		dbops_append_bytes(&res->detail, bytes);
	}
	appendStringInfoString(&res->detail, ": ");
	dbops_culprits_init(&shown, &res->detail, DBOPS_MAX_CULPRITS, "", "; ");
	for (uint64 r = 0; r < n; r++)
	{
		char	   *index = dbops_col_cstring(tt, r, 3);

		if (!dbops_culprit(&shown))
			continue;
		if (index)
			appendStringInfo(&res->detail, "%s on %s", index, dbops_col_text(tt, r, 2));
		else
			appendStringInfoString(&res->detail, dbops_col_text(tt, r, 2));
		if (ac->detail_once)
		{
			bool		isnull;

			appendStringInfoString(&res->detail, " (");
			dbops_append_bytes(&res->detail, dbops_col_float(tt, r, 5, &isnull));
			appendStringInfoChar(&res->detail, ')');
		}
		else
			appendStringInfo(&res->detail, " (%s)", dbops_col_text(tt, r, 4));
	}
	dbops_culprits_end(&shown);
	if (ac->detail_once)
		appendStringInfo(&res->detail, "; %s", dbops_col_text(tt, 0, 4));
	appendStringInfoString(&res->hint, ac->hint);
}

/* unused_indexes: the size of the indexes no scan used since the stats reset */
void
dbops_check_unused_indexes(DbopsReport *report, DbopsCheckResult *res)
{
	check_advice(res, ADVICE_UNUSED, false);
}

/* duplicate_indexes: btree indexes that another index makes needless */
void
dbops_check_duplicate_indexes(DbopsReport *report, DbopsCheckResult *res)
{
	check_advice(res, ADVICE_DUPLICATE, false);
}

/* fk_without_index: foreign keys no index leads with */
void
dbops_check_fk_without_index(DbopsReport *report, DbopsCheckResult *res)
{
	check_advice(res, ADVICE_FK, false);
}

/*
 * seq_scan_tables: large tables read mostly by large sequential scans.  The
 * report's pg_class scan tells whether there is any table large enough
 * outside pg_catalog (the query leaves the system schemas out);
 * most databases of many tables have few, and the query then need not run.
 */
void
dbops_check_seq_scan_tables(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan = dbops_report_relscan(report);
	bool		large = false;

	for (int i = 0; i < scan->nrels && !large; i++)
	{
		const DbopsRelInfo *ri = &scan->rels[i];

		large = (ri->relkind == RELKIND_RELATION || ri->relkind == RELKIND_MATVIEW) &&
			ri->relpages >= SEQ_MIN_PAGES_N &&
			ri->relnamespace != PG_CATALOG_NAMESPACE;
	}
	check_advice(res, ADVICE_SEQ_SCAN, !large);
}
