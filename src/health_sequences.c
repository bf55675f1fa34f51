/*-------------------------------------------------------------------------
 *
 * health_sequences.c
 *	  The sequences check of dbops.health(): how much of its range each
 *	  sequence has used, its value read from its page through the buffer
 *	  manager.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/sinval.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

/*
 * sequences: the highest share (percent) of its range a sequence has used,
 * where the range ends at the sequence's own limit or at the limit of the
 * integer column that owns it (serial or identity), whichever comes first.
 * Cycling sequences never run out and are left out.
 *
 * The value of every sequence is read from its page through the buffer
 * manager, under a short-lived AccessShareLock, without building a relcache
 * entry for it; the owning column's type is looked up only for the sequences
 * whose value could rank among the worst if that column were the narrowest
 * integer type.
 */
#define SEQ_PAGE_MAGIC	0x1717	/* as sequence.c stamps its pages */

typedef struct SeqInfo
{
	Oid			relid;
	Oid			relnamespace;
	int64		last_value;
	bool		is_called;
	int64		seqmin;
	int64		seqmax;
	int64		seqincrement;
	Oid			seqtypid;
	double		pct;			/* used, of the range we know so far */
	double		bound_pct;		/* upper bound of pct over column types */
	int64		limit;			/* the limit pct refers to */
	bool		exact;
	Oid			ownrel;
	int32		owncol;
	Oid			owntype;
} SeqInfo;

static int64
type_max(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PG_INT16_MAX;
		case INT4OID:
			return PG_INT32_MAX;
		default:
			return PG_INT64_MAX;
	}
}

static int64
type_min(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PG_INT16_MIN;
		case INT4OID:
			return PG_INT32_MIN;
		default:
			return PG_INT64_MIN;
	}
}

/* Share of the range [min, max] used by a sequence at last_value. */
static double
seq_used_pct(SeqInfo *s, int64 lo, int64 hi)
{
	double		used;
	double		range;

	if (s->seqincrement > 0)
	{
		if (!s->is_called && s->last_value <= s->seqmin)
			return 0;
		used = (double) s->last_value - (double) s->seqmin;
		range = (double) hi - (double) s->seqmin;
	}
	else
	{
		if (!s->is_called && s->last_value >= s->seqmax)
			return 0;
		used = (double) s->seqmax - (double) s->last_value;
		range = (double) s->seqmax - (double) lo;
	}
	if (range <= 0)
		return 100.0;
	return Min(Max(100.0 * used / range, 0), 100.0);
}

/* Read last_value and is_called of a sequence from its page. */
static bool
read_sequence_page(DbopsRelScan *scan, DbopsRelInfo *ri, SeqInfo *s)
{
	DbopsRelFile rfile;
	Buffer		buf;
	Page		page;
	ItemId		lp;
	HeapTupleHeader htup;
	Form_pg_sequence_data seq;
	bool		valid;
	Oid			relfilenode = ri->relfilenode;
	Oid			reltablespace = ri->reltablespace;

	LockRelationOid(ri->relid, AccessShareLock);

	/*
	 * Someone may have dropped or rewritten the sequence (ALTER SEQUENCE
	 * RESTART gives it a new relfilenode) since our pg_class scan: look its
	 * storage up again, now that it is locked, if invalidations arrived
	 * since that scan.  A sequence dropped meanwhile is left out.
	 */
	if (SharedInvalidMessageCounter != scan->inval_count)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(ri->relid));

		if (!HeapTupleIsValid(tup) ||
			((Form_pg_class) GETSTRUCT(tup))->relkind != RELKIND_SEQUENCE)
		{
			if (HeapTupleIsValid(tup))
				ReleaseSysCache(tup);
			UnlockRelationOid(ri->relid, AccessShareLock);
			return false;
		}
		relfilenode = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
		reltablespace = ((Form_pg_class) GETSTRUCT(tup))->reltablespace;
		ReleaseSysCache(tup);
	}

	DBOPS_RELFILE_SET(rfile,
					  OidIsValid(reltablespace) ? reltablespace : MyDatabaseTableSpace,
					  MyDatabaseId, relfilenode);

	buf = ReadBufferWithoutRelcache(rfile, MAIN_FORKNUM, 0, RBM_NORMAL, NULL,
									ri->relpersistence == RELPERSISTENCE_PERMANENT);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	valid = PageGetSpecialSize(page) == MAXALIGN(sizeof(uint32)) &&
		*((uint32 *) PageGetSpecialPointer(page)) == SEQ_PAGE_MAGIC &&
		PageGetMaxOffsetNumber(page) >= FirstOffsetNumber;
	if (valid)
	{
		lp = PageGetItemId(page, FirstOffsetNumber);
		htup = (HeapTupleHeader) PageGetItem(page, lp);
		seq = (Form_pg_sequence_data) ((char *) htup + htup->t_hoff);
		s->last_value = seq->last_value;
		s->is_called = seq->is_called;
	}
	UnlockReleaseBuffer(buf);
	UnlockRelationOid(ri->relid, AccessShareLock);

	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bad magic number in sequence with OID %u", ri->relid),
				 errhint("The sequence's first page is damaged: check the storage, and recreate the sequence (setval() to its last value) or restore it.")));
	return true;
}

/* Above this many lookups, one scan of pg_depend beats an index scan each. */
#define OWNER_SCAN_MIN 256

typedef struct SeqOwner
{
	Oid			seqid;
	Oid			tableid;
	int32		colid;
} SeqOwner;

/*
 * The column owning each sequence (serial: an auto dependency; identity: an
 * internal one), from one heap scan of pg_depend.
 */
static HTAB *
sequence_owners(void)
{
	HASHCTL		ctl;
	HTAB	   *owners;
	Relation	rel;
	TableScanDesc hscan;
	HeapTuple	tup;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(SeqOwner);
	ctl.hcxt = CurrentMemoryContext;
	owners = hash_create("dbops sequence owners", 1024, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	rel = table_open(DependRelationId, AccessShareLock);
	hscan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);
		SeqOwner   *o;

		if (d->classid != RelationRelationId || d->refclassid != RelationRelationId ||
			d->objsubid != 0 || d->refobjsubid <= 0 ||
			(d->deptype != DEPENDENCY_AUTO && d->deptype != DEPENDENCY_INTERNAL))
			continue;
		o = hash_search(owners, &d->objid, HASH_ENTER, NULL);
		o->tableid = d->refobjid;
		o->colid = d->refobjsubid;
	}
	table_endscan(hscan);
	table_close(rel, AccessShareLock);
	return owners;
}

/* order of pg_sequence rows by OID; the key may be a bare Oid */
static int
seqdef_cmp(const void *a, const void *b)
{
	Oid			oa = *(const Oid *) a;
	Oid			ob = *(const Oid *) b;

	if (oa != ob)
		return oa < ob ? -1 : 1;
	return 0;
}

void
dbops_check_sequences(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan;
	Relation	seqrel;
	TableScanDesc hscan;
	HeapTuple	tup;
	Form_pg_sequence defs = NULL;
	int			ndefs = 0;
	int			maxdefs = 0;
	SeqInfo    *seqs;
	int			nseqs = 0;
	int			nhidden = 0;
	int			ncycle = 0;
	bool		privileged = dbops_can_read_all_stats();
	DbopsTopN	top = {0};
	double		lowest;
	int			ncand = 0;
	int			nunresolved = 0;
	HTAB	   *owners = NULL;

	scan = dbops_report_relscan(report);

	/*
	 * The definitions of all sequences, from one scan of pg_sequence, sorted
	 * by OID for the lookups below.
	 */
	seqrel = table_open(SequenceRelationId, AccessShareLock);
	hscan = table_beginscan_catalog(seqrel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		if (ndefs == maxdefs)
		{
			maxdefs = Max(maxdefs * 2, 1024);
			defs = defs ? repalloc_huge(defs, sizeof(FormData_pg_sequence) * maxdefs) :
				palloc(sizeof(FormData_pg_sequence) * maxdefs);
		}
		defs[ndefs++] = *(Form_pg_sequence) GETSTRUCT(tup);
	}
	table_endscan(hscan);
	table_close(seqrel, AccessShareLock);
	if (ndefs > 1)
		qsort(defs, ndefs, sizeof(FormData_pg_sequence), seqdef_cmp);

	seqs = palloc(sizeof(SeqInfo) * Max(ndefs, 1));
	for (int i = 0; i < scan->nrels; i++)
	{
		DbopsRelInfo *ri = &scan->rels[i];
		Form_pg_sequence d;
		SeqInfo    *s;

		if (ri->relkind != RELKIND_SEQUENCE)
			continue;
		if ((i & 255) == 0)
			CHECK_FOR_INTERRUPTS();
		d = ndefs > 0 ? bsearch(&ri->relid, defs, ndefs, sizeof(FormData_pg_sequence), seqdef_cmp) : NULL;
		if (d == NULL)
			continue;			/* created after our pg_sequence scan */
		if (d->seqcycle)
		{
			ncycle++;
			continue;
		}
		/* unlogged sequences have no data on a standby */
		if (ri->relpersistence == RELPERSISTENCE_UNLOGGED && RecoveryInProgress())
			continue;
		if (!privileged &&
			pg_class_aclcheck(ri->relid, GetUserId(), ACL_SELECT | ACL_USAGE) != ACLCHECK_OK)
		{
			nhidden++;
			continue;
		}
		s = &seqs[nseqs];
		s->relid = ri->relid;
		s->relnamespace = ri->relnamespace;
		s->seqmin = d->seqmin;
		s->seqmax = d->seqmax;
		s->seqincrement = d->seqincrement;
		s->seqtypid = d->seqtypid;
		s->ownrel = InvalidOid;
		s->owncol = 0;
		s->owntype = InvalidOid;
		if (!read_sequence_page(scan, ri, s))
			continue;
		s->pct = seq_used_pct(s, s->seqmin, s->seqmax);
		s->limit = s->seqincrement > 0 ? s->seqmax : s->seqmin;
		/* the narrowest integer column could own a sequence wider than int2 */
		if ((s->seqincrement > 0 && s->seqmax > PG_INT16_MAX) ||
			(s->seqincrement < 0 && s->seqmin < PG_INT16_MIN))
		{
			s->bound_pct = seq_used_pct(s, Max(s->seqmin, PG_INT16_MIN), Min(s->seqmax, PG_INT16_MAX));
			s->exact = false;
		}
		else
		{
			s->bound_pct = s->pct;
			s->exact = true;
		}
		nseqs++;
	}

	if (nhidden > 0)
	{
		dbops_check_skip_all_stats(res, psprintf("%d of %d sequences cannot be read by this role (reading them all needs the privileges of pg_read_all_stats, or SELECT on each)",
												 nhidden, nhidden + nseqs));
		return;
	}

	/*
	 * The column that owns a sequence matters only when its type could end
	 * the range before the sequence's own limit, and only for the sequences
	 * that could then reach the lowest threshold.  For all the others, even a
	 * smallint column would leave them below it: that proves their status
	 * without looking the column up (their value is then the share of their
	 * own range, a lower bound).
	 */
	lowest = res->warning;
	if (isnan(lowest) || (!isnan(res->critical) && res->critical < lowest))
		lowest = res->critical;
	for (int i = 0; i < nseqs; i++)
	{
		SeqInfo    *s = &seqs[i];

		if (s->exact)
			continue;
		if (!isnan(lowest) && s->bound_pct >= lowest)
			ncand++;
		else
			nunresolved++;
	}
	if (ncand > OWNER_SCAN_MIN)
		owners = sequence_owners();
	for (int i = 0; i < nseqs; i++)
	{
		SeqInfo    *s = &seqs[i];
		Oid			tableid = InvalidOid;
		int32		colid = 0;
		bool		owned;

		if (s->exact || isnan(lowest) || s->bound_pct < lowest)
			continue;
		CHECK_FOR_INTERRUPTS();
		if (owners)
		{
			SeqOwner   *o = hash_search(owners, &s->relid, HASH_FIND, NULL);

			owned = (o != NULL);
			if (o)
			{
				tableid = o->tableid;
				colid = o->colid;
			}
		}
		else
			owned = sequenceIsOwned(s->relid, DEPENDENCY_AUTO, &tableid, &colid) ||
				sequenceIsOwned(s->relid, DEPENDENCY_INTERNAL, &tableid, &colid);
		if (owned)
		{
			Oid			coltype = get_atttype(tableid, colid);

			s->ownrel = tableid;
			s->owncol = colid;
			s->owntype = coltype;
			if (s->seqincrement > 0 && type_max(coltype) < s->seqmax)
			{
				s->pct = seq_used_pct(s, s->seqmin, type_max(coltype));
				s->limit = type_max(coltype);
			}
			else if (s->seqincrement < 0 && type_min(coltype) > s->seqmin)
			{
				s->pct = seq_used_pct(s, type_min(coltype), s->seqmax);
				s->limit = type_min(coltype);
			}
		}
		s->exact = true;
	}
	for (int i = 0; i < nseqs; i++)
		dbops_topn_add(&top, seqs[i].pct, i);

	dbops_check_value(res, dbops_rounded(top.n > 0 ? top.score[0] : 0, 4), "%");
	if (nseqs == 0)
	{
		appendStringInfo(&res->detail, "no sequence in this database%s",
						 ncycle > 0 ? " that does not cycle" : "");
		return;
	}
	appendStringInfo(&res->detail, "%d sequence(s)", nseqs);
	if (ncycle > 0)
		appendStringInfo(&res->detail, " (and %d cycling, not counted)", ncycle);
	appendStringInfoString(&res->detail, ", most used: ");
	for (int t = 0; t < top.n; t++)
	{
		SeqInfo    *s = &seqs[top.item[t]];

		appendStringInfo(&res->detail, "%s%s %.2f%% (%lld of %lld",
						 t > 0 ? "; " : "",
						 dbops_relation_display_name(s->relid, s->relnamespace),
						 s->pct, (long long) s->last_value, (long long) s->limit);
		if (OidIsValid(s->owntype) && s->limit != s->seqmax && s->limit != s->seqmin)
		{
			/* the table (or its column) may have been dropped meanwhile */
			char	   *colname = get_attname(s->ownrel, s->owncol, true);

			appendStringInfo(&res->detail, ", limited by column %s.%s of type %s",
							 dbops_relation_display_name(s->ownrel, get_rel_namespace(s->ownrel)),
							 colname ? quote_identifier(colname) : "(dropped column)",
							 format_type_be(s->owntype));
		}
		appendStringInfoChar(&res->detail, ')');
	}
	if (nunresolved > 0)
		appendStringInfo(&res->detail, "; %d sequence(s) not checked against the type of their column: even a smallint column would leave them below %g%%",
						 nunresolved, lowest);
	appendStringInfoString(&res->hint,
						   "Before the sequence runs out, move the column (and the sequence: ALTER SEQUENCE ... AS bigint) to bigint; for a sequence limited by its own MAXVALUE, raise it.");
}
