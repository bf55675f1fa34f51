/*-------------------------------------------------------------------------
 *
 * health_indexes.c
 *	  Index advice: dbops.index_advice(), one row per finding, and the
 *	  health checks over the same findings, unused_indexes,
 *	  duplicate_indexes, fk_without_index and seq_scan_tables, with
 *	  invalid_indexes.  Each kind of finding is one catalog query, kept for
 *	  the backend's life and shared by the report function and its check;
 *	  all run as the caller.  Within a report, the checks run their query
 *	  only for the candidates one scan of pg_index finds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
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

/*
 * unused_index: no scan since the statistics were reset.  A primary
 * key's or unique constraint's index is unique, an exclusion
 * constraint's has indisexclusion: the flags leave them out without a
 * look at pg_constraint.
 */
#define UNUSED_QUERY(filter) \
	"SELECT 'unused_index'::pg_catalog.text, i.indrelid::pg_catalog.regclass, " \
	"i.indexrelid::pg_catalog.regclass, " \
	"pg_catalog.format('no index scan since %s; scans on standbys are not counted here', " \
	"COALESCE('the statistics were reset at ' OPERATOR(pg_catalog.||) r.reset::pg_catalog.text, " \
	"'the statistics began (never reset)')), " \
	"pg_catalog.pg_relation_size(i.indexrelid), " \
	"pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, ci.relname) " \
	"FROM pg_catalog.pg_index i " \
	"JOIN pg_catalog.pg_class ci ON ci.oid OPERATOR(pg_catalog.=) i.indexrelid " \
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) ci.relnamespace " \
	"CROSS JOIN (SELECT pg_catalog.pg_stat_get_db_stat_reset_time(d.oid) AS reset " \
	"FROM pg_catalog.pg_database d " \
	"WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()) r " \
	"WHERE ci.relkind OPERATOR(pg_catalog.=) 'i' AND i.indisvalid " \
	"AND NOT i.indisunique AND NOT i.indisexclusion AND NOT i.indisreplident " \
	SKIP_SYSTEM("n", "ci") NOT_EXTENSION_MEMBER("i.indrelid") \
	"AND pg_catalog.pg_stat_get_numscans(i.indexrelid) OPERATOR(pg_catalog.=) 0 " filter \
	"ORDER BY 5 DESC, n.nspname, ci.relname"

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
#define DUPLICATE_QUERY(filter) \
	"SELECT d.kind, d.relation, d.index, d.detail, d.size_bytes, d.suggestion FROM (" \
	"SELECT DISTINCT ON (r.indexrelid) " \
	"CASE WHEN s.same THEN 'duplicate_index' ELSE 'redundant_index' END::pg_catalog.text AS kind, " \
	"r.indrelid::pg_catalog.regclass AS relation, r.indexrelid::pg_catalog.regclass AS index, " \
	"pg_catalog.format(CASE WHEN s.same THEN 'same columns as %s' " \
	"ELSE 'its columns lead %s' END, k.indexrelid::pg_catalog.regclass) AS detail, " \
	"pg_catalog.pg_relation_size(r.indexrelid) AS size_bytes, " \
	"pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, cr.relname) AS suggestion " \
	/* the pairs whose columns match, from pg_index alone (fenced) */ \
	"FROM (SELECT r.indexrelid AS rid, k.indexrelid AS kid, " \
	"r.indnatts OPERATOR(pg_catalog.=) k.indnatts " \
	"AND r.indnkeyatts OPERATOR(pg_catalog.=) k.indnkeyatts AS same " \
	"FROM pg_catalog.pg_index r " \
	"JOIN pg_catalog.pg_index k ON k.indrelid OPERATOR(pg_catalog.=) r.indrelid " \
	"AND k.indexrelid OPERATOR(pg_catalog.<>) r.indexrelid " \
	"WHERE r.indisvalid AND k.indisvalid " \
	"AND r.indnkeyatts OPERATOR(pg_catalog.<=) k.indnkeyatts " \
	"AND r.indnatts OPERATOR(pg_catalog.<=) k.indnatts " filter \
	"AND (r.indkey::pg_catalog.int2[])[0:r.indnatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) " \
	"(k.indkey::pg_catalog.int2[])[0:r.indnatts OPERATOR(pg_catalog.-) 1] " \
	"AND (r.indclass::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) " \
	"(k.indclass::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] " \
	"AND (r.indcollation::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) " \
	"(k.indcollation::pg_catalog.oid[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] " \
	"AND (r.indoption::pg_catalog.int2[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) " \
	"(k.indoption::pg_catalog.int2[])[0:r.indnkeyatts OPERATOR(pg_catalog.-) 1] " \
	"OFFSET 0) s " \
	"JOIN pg_catalog.pg_index r ON r.indexrelid OPERATOR(pg_catalog.=) s.rid " \
	"JOIN pg_catalog.pg_index k ON k.indexrelid OPERATOR(pg_catalog.=) s.kid " \
	"JOIN pg_catalog.pg_class cr ON cr.oid OPERATOR(pg_catalog.=) r.indexrelid " \
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) cr.relnamespace " \
	"JOIN pg_catalog.pg_am a ON a.oid OPERATOR(pg_catalog.=) cr.relam " \
	"JOIN pg_catalog.pg_class ck ON ck.oid OPERATOR(pg_catalog.=) k.indexrelid " \
	"WHERE a.amname OPERATOR(pg_catalog.=) 'btree' AND ck.relam OPERATOR(pg_catalog.=) cr.relam " \
	"AND cr.relkind OPERATOR(pg_catalog.=) 'i' AND ck.relkind OPERATOR(pg_catalog.=) 'i'" \
	SKIP_SYSTEM("n", "cr") NOT_EXTENSION_MEMBER("r.indrelid") \
	"AND pg_catalog.pg_get_expr(r.indexprs, r.indrelid) IS NOT DISTINCT FROM " \
	"pg_catalog.pg_get_expr(k.indexprs, k.indrelid) " \
	"AND pg_catalog.pg_get_expr(r.indpred, r.indrelid) IS NOT DISTINCT FROM " \
	"pg_catalog.pg_get_expr(k.indpred, k.indrelid) " \
	"AND NOT r.indisreplident AND NOT " BACKS_CONSTRAINT("r") " " \
	"AND (NOT r.indisunique OR (s.same AND k.indisunique " \
	"AND k.indnullsnotdistinct OPERATOR(pg_catalog.=) r.indnullsnotdistinct)) " \
	"AND (NOT s.same OR " BACKS_CONSTRAINT("k") " " \
	"OR (k.indisunique AND NOT r.indisunique) " \
	"OR (k.indisunique OPERATOR(pg_catalog.=) r.indisunique " \
	"AND k.indexrelid OPERATOR(pg_catalog.<) r.indexrelid)) " \
	"ORDER BY r.indexrelid, s.same DESC, k.indexrelid) d " \
	"ORDER BY d.relation::pg_catalog.text, d.index::pg_catalog.text"

/*
 * fk_without_index: a foreign key whose columns no valid, non-partial
 * index leads with, in any order.  A partition's copy of its parent's
 * key is left out: the parent's is the finding.
 */
#define FK_QUERY(filter) \
	"SELECT 'fk_without_index'::pg_catalog.text, c.conrelid::pg_catalog.regclass, " \
	"NULL::pg_catalog.regclass, " \
	"pg_catalog.format('foreign key %I (%s) references %s, no index leads with its columns', " \
	"c.conname, l.cols, c.confrelid::pg_catalog.regclass), " \
	"pg_catalog.pg_relation_size(c.conrelid), " \
	"pg_catalog.format('CREATE INDEX CONCURRENTLY ON %I.%I (%s);', n.nspname, t.relname, l.cols) " \
	"FROM pg_catalog.pg_constraint c " \
	"JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) c.conrelid " \
	"JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.relnamespace " \
	"CROSS JOIN LATERAL (SELECT pg_catalog.string_agg(pg_catalog.format('%I', at.attname), ', ' " \
	"ORDER BY u.ord) AS cols " \
	"FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS u (attnum, ord) " \
	"JOIN pg_catalog.pg_attribute at ON at.attrelid OPERATOR(pg_catalog.=) c.conrelid " \
	"AND at.attnum OPERATOR(pg_catalog.=) u.attnum) l " \
	"WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid" filter \
	SKIP_SYSTEM("n", "t") NOT_EXTENSION_MEMBER("c.conrelid") \
	"AND NOT EXISTS (SELECT FROM pg_catalog.pg_index x " \
	"WHERE x.indrelid OPERATOR(pg_catalog.=) c.conrelid AND x.indisvalid AND x.indpred IS NULL " \
	"AND x.indnkeyatts OPERATOR(pg_catalog.>=) pg_catalog.cardinality(c.conkey) " \
	"AND (x.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(c.conkey) OPERATOR(pg_catalog.-) 1] " \
	"OPERATOR(pg_catalog.@>) c.conkey " \
	"AND c.conkey OPERATOR(pg_catalog.@>) " \
	"(x.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(c.conkey) OPERATOR(pg_catalog.-) 1]) " \
	"ORDER BY n.nspname, t.relname, c.conname"

/*
 * The filters that restrict a query to the candidates a report found in
 * its pg_index and pg_constraint scans ($1: their OIDs).
 */
#define RESTRICT_INDEX(x) " AND " x " OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[]) "

static const char *const advice_queries[NUM_ADVICE_KINDS] = {
	UNUSED_QUERY(""),
	DUPLICATE_QUERY(""),
	FK_QUERY(""),
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

/* the same queries for the candidates only (none for seq_scan_table) */
static const char *const candidate_queries[NUM_ADVICE_KINDS] = {
	UNUSED_QUERY(RESTRICT_INDEX("i.indexrelid")),
	DUPLICATE_QUERY(RESTRICT_INDEX("r.indexrelid")),
	FK_QUERY(RESTRICT_INDEX("c.oid")),
	NULL,
};

static SPIPlanPtr advice_plans[NUM_ADVICE_KINDS];
static SPIPlanPtr candidate_plans[NUM_ADVICE_KINDS];

static SPITupleTable *
advice_query(IndexAdviceKind kind)
{
	return dbops_kept_query(&advice_plans[kind], advice_queries[kind]);
}

/* kind's query for the candidates (their OIDs) only */
static SPITupleTable *
candidate_query(IndexAdviceKind kind, const Oid *cands, int ncands)
{
	Oid			argtype = OIDARRAYOID;
	Datum		arg;
	Datum	   *elems = palloc(sizeof(Datum) * Max(ncands, 1));

	for (int i = 0; i < ncands; i++)
		elems[i] = ObjectIdGetDatum(cands[i]);
	arg = PointerGetDatum(construct_array(elems, ncands, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	return dbops_kept_query_args(&candidate_plans[kind], candidate_queries[kind],
								 1, &argtype, &arg, true);
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

/*
 * One heap scan of pg_index for the index checks: each index's flags and
 * column numbers, sorted by table.  invalid_indexes needs nothing more;
 * unused_indexes, duplicate_indexes and fk_without_index take from it the
 * indexes (or foreign keys) that can be findings, and run their query for
 * those only.  Each filter below is a condition the query also requires,
 * so a finding is never left out: the query decides, on fewer rows.
 *
 * The scan, and the foreign keys no index covers, are kept for the
 * backend's life and rebuilt after any change to pg_index (or, for the
 * foreign keys, pg_constraint): every change to a row of a catalog, by this
 * backend or another, invalidates that catalog's syscache entries, and
 * index_inval() hears of it before the next report (invalidations are read
 * at every transaction's start; an overflow of the queue calls it too).
 */
typedef struct IndexEntry
{
	Oid			indexrelid;
	Oid			indrelid;
	int16		natts;
	int16		nkeyatts;
	bool		valid;
	bool		unique;
	bool		exclusion;
	bool		replident;
	bool		partial;
	int			keys;			/* offset of its natts column numbers in keypool */
} IndexEntry;

typedef struct IndexCatalog
{
	int			n;
	IndexEntry *ix;				/* sorted by indrelid */
	int16	   *keypool;
} IndexCatalog;

static MemoryContext index_cxt = NULL;	/* holds the two below */
static IndexCatalog *index_catalog = NULL;	/* NULL: to be built */
static Oid *fk_cands = NULL;
static int	fk_ncands = -1;		/* -1: to be built */

/* Above this many candidates, the whole query costs less than the lookups. */
#define CANDIDATES_MAX 1000

#define ST_SORT sort_index_entries
#define ST_ELEMENT_TYPE IndexEntry
#define ST_COMPARE(a, b) (((a)->indrelid > (b)->indrelid) - ((a)->indrelid < (b)->indrelid))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

static void
index_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	if (cacheid == INDEXRELID)
		index_catalog = NULL;
	fk_ncands = -1;
}

static IndexCatalog *
scan_indexes(void)
{
	static bool registered = false;
	IndexCatalog *scan;
	Relation	rel;
	TableScanDesc hscan;
	HeapTuple	tup;
	int			alloc = 1024;
	int			keyalloc = 4096;
	int			nkeys = 0;
	MemoryContext cxt;
	MemoryContext old;

	if (!registered)
	{
		CacheRegisterSyscacheCallback(INDEXRELID, index_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(CONSTROID, index_inval, (Datum) 0);
		registered = true;
	}
	if (index_catalog)
		return index_catalog;

	/*
	 * Built in a context of its own under the caller's, so that an error
	 * midway frees it; once done, it outlives the report and replaces the
	 * one before.
	 */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "dbops index scan", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	scan = palloc0(sizeof(IndexCatalog));
	rel = table_open(IndexRelationId, AccessShareLock);
	if (RelationGetForm(rel)->reltuples > alloc)
		alloc = (int) Min(RelationGetForm(rel)->reltuples * 1.1, 16.0 * 1024 * 1024);
	scan->ix = palloc_extended(sizeof(IndexEntry) * alloc, MCXT_ALLOC_HUGE);
	scan->keypool = palloc(sizeof(int16) * keyalloc);
	hscan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		Form_pg_index x = (Form_pg_index) GETSTRUCT(tup);
		IndexEntry *e;

		CHECK_FOR_INTERRUPTS();
		if (scan->n == alloc)
		{
			alloc *= 2;
			scan->ix = repalloc_huge(scan->ix, sizeof(IndexEntry) * alloc);
		}
		while (nkeys + x->indnatts > keyalloc)
		{
			keyalloc *= 2;
			scan->keypool = repalloc_huge(scan->keypool, sizeof(int16) * keyalloc);
		}
		e = &scan->ix[scan->n++];
		e->indexrelid = x->indexrelid;
		e->indrelid = x->indrelid;
		e->natts = x->indnatts;
		e->nkeyatts = x->indnkeyatts;
		e->valid = x->indisvalid;
		e->unique = x->indisunique;
		e->exclusion = x->indisexclusion;
		e->replident = x->indisreplident;
		e->partial = !heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		e->keys = nkeys;
		/* indkey is the first variable-length column: at its offset */
		memcpy(&scan->keypool[nkeys], x->indkey.values, sizeof(int16) * x->indnatts);
		nkeys += x->indnatts;
	}
	table_endscan(hscan);
	table_close(rel, AccessShareLock);
	sort_index_entries(scan->ix, scan->n);
	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, TopMemoryContext);
	if (index_cxt)
		MemoryContextDelete(index_cxt);
	index_cxt = cxt;
	index_catalog = scan;
	fk_cands = NULL;
	fk_ncands = -1;
	return scan;
}

/* The first of table relid's indexes in scan (-1: none); they follow it. */
static int
first_index_of(const IndexCatalog *scan, Oid relid)
{
	int			lo = 0;
	int			hi = scan->n;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (scan->ix[mid].indrelid < relid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < scan->n && scan->ix[lo].indrelid == relid ? lo : -1;
}

/*
 * unused_indexes: the query's candidates are the valid indexes that are not
 * unique, exclusion or replica identity ones.
 */
static Oid *
unused_candidates(IndexCatalog *scan, int *ncand)
{
	Oid		   *cands = palloc(sizeof(Oid) * Max(scan->n, 1));
	int			n = 0;

	for (int i = 0; i < scan->n; i++)
	{
		const IndexEntry *e = &scan->ix[i];

		if (e->valid && !e->unique && !e->exclusion && !e->replident)
			cands[n++] = e->indexrelid;
	}
	*ncand = n;
	return cands;
}

/*
 * duplicate_indexes: the query's candidates are the valid indexes r of a
 * table with another valid index k that has at least as many columns, and
 * key columns, and the same column numbers first (r's INCLUDE ones too).
 */
static Oid *
duplicate_candidates(IndexCatalog *scan, int *ncand)
{
	Oid		   *cands = palloc(sizeof(Oid) * Max(scan->n, 1));
	int			n = 0;

	for (int a = 0; a < scan->n;)
	{
		int			b = a + 1;

		while (b < scan->n && scan->ix[b].indrelid == scan->ix[a].indrelid)
			b++;
		for (int r = a; b - a > 1 && r < b; r++)
		{
			const IndexEntry *er = &scan->ix[r];

			if (!er->valid)
				continue;
			for (int k = a; k < b; k++)
			{
				const IndexEntry *ek = &scan->ix[k];

				if (k == r || !ek->valid || er->natts > ek->natts ||
					er->nkeyatts > ek->nkeyatts ||
					memcmp(&scan->keypool[er->keys], &scan->keypool[ek->keys],
						   sizeof(int16) * er->natts) != 0)
					continue;
				cands[n++] = er->indexrelid;
				break;
			}
		}
		a = b;
		if ((a & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	*ncand = n;
	return cands;
}

/* Whether each of the n numbers of a is among those of b (m of them). */
static bool
attnums_within(const int16 *a, int n, const int16 *b, int m)
{
	for (int i = 0; i < n; i++)
	{
		bool		found = false;

		for (int j = 0; j < m && !found; j++)
			found = (a[i] == b[j]);
		if (!found)
			return false;
	}
	return true;
}

/*
 * fk_without_index: the query's candidates are the foreign keys (of no
 * parent key) of a table none of whose valid, non-partial indexes has, as
 * its first key columns, the key's columns in any order; from one heap scan
 * of pg_constraint.
 */
static Oid *
fk_candidates(IndexCatalog *scan, int *ncand)
{
	Relation	rel;
	MemoryContext old;
	TableScanDesc hscan;
	HeapTuple	tup;
	Oid		   *cands = NULL;
	int			n = 0;
	int			alloc = 0;

	if (fk_ncands >= 0)
	{
		*ncand = fk_ncands;
		return fk_cands;
	}
	rel = table_open(ConstraintRelationId, AccessShareLock);
	hscan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		Form_pg_constraint c = (Form_pg_constraint) GETSTRUCT(tup);
		bool		isnull;
		Datum		d;
		ArrayType  *arr;
		int16	   *conkey;
		int			nkey;
		bool		covered = false;

		CHECK_FOR_INTERRUPTS();
		if (c->contype != CONSTRAINT_FOREIGN || OidIsValid(c->conparentid))
			continue;
		d = heap_getattr(tup, Anum_pg_constraint_conkey, RelationGetDescr(rel), &isnull);
		if (isnull)
			continue;
		arr = DatumGetArrayTypeP(d);
		conkey = (int16 *) ARR_DATA_PTR(arr);
		nkey = ARR_DIMS(arr)[0];
		for (int i = first_index_of(scan, c->conrelid);
			 i >= 0 && i < scan->n && scan->ix[i].indrelid == c->conrelid && !covered; i++)
		{
			const IndexEntry *e = &scan->ix[i];
			const int16 *keys = &scan->keypool[e->keys];

			covered = e->valid && !e->partial && e->nkeyatts >= nkey &&
				attnums_within(keys, nkey, conkey, nkey) &&
				attnums_within(conkey, nkey, keys, nkey);
		}
		if (covered)
			continue;
		if (n == alloc)
		{
			alloc = Max(64, alloc * 2);
			cands = cands ? repalloc(cands, sizeof(Oid) * alloc) : palloc(sizeof(Oid) * alloc);
		}
		cands[n++] = c->oid;
	}
	table_endscan(hscan);
	table_close(rel, AccessShareLock);

	/* kept beside the index scan until either catalog changes */
	if (fk_cands)
		pfree(fk_cands);
	old = MemoryContextSwitchTo(index_cxt);
	fk_cands = palloc(sizeof(Oid) * Max(n, 1));
	MemoryContextSwitchTo(old);
	if (n > 0)
		memcpy(fk_cands, cands, sizeof(Oid) * n);
	fk_ncands = n;
	*ncand = n;
	return fk_cands;
}

/*
 * invalid_indexes: indexes left invalid (failed CREATE INDEX CONCURRENTLY),
 * from the report's pg_index scan.
 */
typedef struct InvalidIndex
{
	char	   *index;
	char	   *table;
} InvalidIndex;

static int
invalid_index_cmp(const void *a, const void *b)
{
	return strcmp(((const InvalidIndex *) a)->index, ((const InvalidIndex *) b)->index);
}

void
dbops_check_invalid_indexes(DbopsReport *report, DbopsCheckResult *res)
{
	IndexCatalog *scan = scan_indexes();
	InvalidIndex *found = NULL;
	int			n = 0;
	DbopsCulprits shown;

	for (int i = 0; i < scan->n; i++)
	{
		const IndexEntry *e = &scan->ix[i];
		Oid			nsp;

		if (e->valid)
			continue;
		/* dropped since the scan: not an index of this database any more */
		nsp = get_rel_namespace(e->indexrelid);
		if (!OidIsValid(nsp))
			continue;
		found = found ? repalloc(found, sizeof(InvalidIndex) * (n + 1)) : palloc(sizeof(InvalidIndex));
		found[n].index = dbops_relation_display_name(e->indexrelid, nsp);
		found[n].table = dbops_relation_display_name(e->indrelid, get_rel_namespace(e->indrelid));
		n++;
	}
	dbops_check_value(res, n, "indexes");
	if (n == 0)
	{
		appendStringInfoString(&res->detail, "no invalid index in this database");
		return;
	}
	qsort(found, n, sizeof(InvalidIndex), invalid_index_cmp);
	appendStringInfo(&res->detail, "%d invalid index(es): ", n);
	dbops_culprits_init(&shown, &res->detail, DBOPS_MAX_CULPRITS, "", ", ");
	for (int i = 0; i < n; i++)
		if (dbops_culprit(&shown))
			appendStringInfo(&res->detail, "%s on %s", found[i].index, found[i].table);
	dbops_culprits_end(&shown);
	appendStringInfoString(&res->detail, " (an index being built CONCURRENTLY right now is also invalid)");
	appendStringInfoString(&res->hint,
						   "Invalid indexes cost writes and serve no reads: DROP INDEX CONCURRENTLY and create them again, or REINDEX INDEX CONCURRENTLY.");
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
 * and the first finding's detail after the list.  The query runs for the
 * ncands candidates cands only (none: not at all), or whole if ncands is -1
 * or more than CANDIDATES_MAX.
 */
static void
check_advice(DbopsCheckResult *res, IndexAdviceKind kind, const Oid *cands, int ncands)
{
	const AdviceCheck *ac = &advice_checks[kind];
	SPITupleTable *tt = NULL;
	uint64		n = 0;
	double		bytes = 0;
	DbopsCulprits shown;

	if (ac->needs_counts && !dbops_counts_tracked(res))
		return;
	if (ncands < 0 || ncands > CANDIDATES_MAX)
	{
		tt = advice_query(kind);
		n = SPI_processed;
	}
	else if (ncands > 0)
	{
		tt = candidate_query(kind, cands, ncands);
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
	int			ncands;
	Oid		   *cands = unused_candidates(scan_indexes(), &ncands);

	check_advice(res, ADVICE_UNUSED, cands, ncands);
}

/* duplicate_indexes: btree indexes that another index makes needless */
void
dbops_check_duplicate_indexes(DbopsReport *report, DbopsCheckResult *res)
{
	int			ncands;
	Oid		   *cands = duplicate_candidates(scan_indexes(), &ncands);

	check_advice(res, ADVICE_DUPLICATE, cands, ncands);
}

/* fk_without_index: foreign keys no index leads with */
void
dbops_check_fk_without_index(DbopsReport *report, DbopsCheckResult *res)
{
	int			ncands;
	Oid		   *cands = fk_candidates(scan_indexes(), &ncands);

	check_advice(res, ADVICE_FK, cands, ncands);
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
	check_advice(res, ADVICE_SEQ_SCAN, NULL, large ? -1 : 0);
}
