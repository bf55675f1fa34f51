/*-------------------------------------------------------------------------
 *
 * bloat.c
 *	  dbops.bloat(): how many bytes a rewrite (VACUUM FULL for a table,
 *	  REINDEX for an index) would give back, estimated from catalog
 *	  statistics, from a random sample of pages, or from every page.
 *
 * Definition: bloat_bytes = size of the main fork now - its size right after
 * a rewrite with the same fillfactor.  The page-reading methods measure, on
 * each page read, the bytes of the tuples a rewrite keeps (MAXALIGNed tuple
 * plus its line pointer), the bytes it drops and the free space, and feed the
 * kept tuples, in page order, through a small simulation of the rewrite's
 * packing rule:
 *
 *	 - heap (rewriteheap.c, raw_heap_insert): a tuple goes on the current page
 *	   unless MAXALIGN(len) + fillfactor reserve exceeds the page's free space
 *	   less one line pointer, or the page holds MaxHeapTuplesPerPage tuples;
 *	 - btree leaf (nbtsort.c, _bt_buildadd): the high key's line pointer is
 *	   reserved up front; a page is finished when the free space before the
 *	   next item falls under the leaf fillfactor reserve (or the item does not
 *	   fit) and it holds at least two items; its last item then moves to the
 *	   next page.  Upper levels are packed to 70% with pivots the size of the
 *	   high keys seen.  Posting-list tuples are measured as they are.
 *
 * `exact` reads every page and counts the simulated pages.  `sample` reads a
 * uniform random sample of pages (Knuth's algorithm S, as ANALYZE does,
 * through a bulk-read ring), estimates the kept bytes per page with its
 * variance, and divides by the bytes per page the simulation achieved on the
 * sampled tuples: a ratio estimate with a 95% confidence interval.  The
 * sample grows in up to three rounds (each round drawn uniformly from the
 * pages not read yet) until the interval is as narrow as asked or the page
 * budget is spent.
 *
 * Whose code runs: none but PostgreSQL's.  The page-reading methods read
 * pages through the buffer manager and look at tuple headers, line pointers
 * and btree items; they never evaluate an index expression or predicate,
 * fire a trigger or rule, or call a type's functions on a user's data, so
 * they need not (and do not) switch to the relation's owner.  `stats` reads
 * the catalogs (pg_class, pg_stats) with the caller's rights.  Every query
 * text here is schema-qualified, and dbops.bloat() pins search_path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace_d.h"
#include "commands/defrem.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_authid_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type_d.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/sampling.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "dbops.h"

/* GUCs */
static int			dbops_bloat_max_pages = 20000;
static int			dbops_bloat_health_pages = 250;

/* auto: relations up to this many pages are read in full */
#define BLOAT_AUTO_EXACT_PAGES	1280
/* first round of a sample, and the least a sample may read */
#define BLOAT_FIRST_ROUND		200
#define BLOAT_MIN_SAMPLE		30
#define BLOAT_MAX_ROUNDS		3
/* sample: batches of pages read for the packing's share of the interval */
#define BLOAT_BATCHES			10
/* sample: index entries per leaf page checked against the table */
#define BLOAT_TID_CHECKS		5
/* health check: relations smaller than this are not looked at */
#define BLOAT_HEALTH_FLOOR_PAGES DBOPS_LARGE_REL_PAGES
#define BLOAT_HEALTH_MAX_RELS	5

typedef enum BloatMethod
{
	BLOAT_STATS,
	BLOAT_SAMPLE,
	BLOAT_EXACT,
	BLOAT_AUTO
} BloatMethod;

static const char *const method_names[] = {"stats", "sample", "exact", "auto"};

/* The packing of a rewrite, fed one kept item at a time. */
typedef struct PackSim
{
	bool		btree;
	Size		usable;			/* page bytes for items and line pointers */
	Size		reserve;		/* fillfactor reserve */
	int			maxitems;		/* heap: MaxHeapTuplesPerPage */
	double		pages;			/* pages finished */
	double		finished_bytes; /* item bytes on finished pages */
	Size		used;			/* bytes used on the current page */
	int			nitems;			/* items on the current page */
	Size		last;			/* bytes of the last item (btree) */
	Size		lastextra;		/* of which its posting list (btree) */
} PackSim;

/*
 * Checks of btree entries against their table: would a rebuild still index
 * this heap TID (is some member of its HOT chain not removable)?
 */
typedef struct HeapCheck
{
	Relation	heap;
	SnapshotData snap;
	BufferAccessStrategy strategy;
	Buffer		buf;
	BlockNumber blk;
	bool		all;			/* exact: every TID; sample: a few per page */
	int64		reads;			/* heap pages read */
	int64		checked;
	int64		dead;
	/* sampling: draws so far by kind (0 plain item, 1 posting list) */
	int64		kind_checked[2];
	int64		kind_alive[2];
	pg_prng_state prng;
} HeapCheck;

/* What the pages read add up to. */
typedef struct PageAcc
{
	int64		npages;			/* pages of the sampling frame read */
	double		sum_y;			/* kept item bytes (leaf items for btree) */
	double		sumsq_y;
	double		live;			/* kept bytes incl. btree upper levels */
	double		dead;
	double		free;
	double		recently_dead;	/* dead but still kept by a rewrite now */
	double		hikey_bytes;	/* btree: high keys seen */
	int64		hikeys;
	double		tids;			/* btree: heap TIDs of the leaf items read */
	PackSim		sim;

	/*
	 * btree whose build deduplicates: the run of equal keys being gathered
	 * (a build merges every heap TID of a key into posting lists of at most
	 * maxposting bytes), and the bytes the rebuilt items take.
	 */
	bool		dedup;
	Size		maxposting;
	char	   *runkey;			/* key bytes of the run (after the header) */
	Size		runkeysz;		/* 0: no run */
	uint16		runflags;
	double		runtids;
	double		rebuilt;		/* item bytes after a rebuild, with lps */
	double		current;		/* the same items' bytes now, with lps */
	bool		per_page;		/* sampling: a run ends with its page */
	double		carry;			/* full posting tuples not yet fed (< 1) */

	HeapCheck  *hc;				/* NULL: entries are not checked */

	/*
	 * heap: a rewrite forms every tuple again (dropped columns become NULL,
	 * columns added since the tuple was written are filled in).  When the
	 * table has dropped columns, every kept tuple is measured as it would
	 * be formed; otherwise only those with fewer attributes than the table.
	 */
	TupleDesc	desc;
	bool		reform_all;
	Datum	   *values;
	bool	   *isnull;
} PageAcc;

/* One output row. */
typedef struct BloatRow
{
	Oid			relid;
	const char *kind;
	const char *method;
	int64		size;
	bool		has_bloat;
	double		bloat_bytes;
	bool		has_ci;
	double		ci_low;
	double		ci_high;
	bool		has_parts;		/* live/dead/free known */
	double		live;
	double		dead;
	double		free;
	int64		pages_read;
	StringInfoData note;		/* initialized by the caller */
	bool		needs_stats;	/* catalog estimate still to fill in */
	BlockNumber nblocks;
} BloatRow;

/* A relation the call reports on. */
typedef struct BloatTarget
{
	Oid			relid;
	char		relkind;
	Oid			relam;
	char		persistence;
	bool		named;			/* the caller named it (or its table) */
	int64		relpages;		/* from pg_class, to order the work */
} BloatTarget;

/* Catalog estimate of one relation, from dbops._bloat_stats(). */
typedef struct StatsEst
{
	Oid			relid;
	bool		found;			/* _bloat_stats() still saw the relation */
	bool		has_est;
	double		est_pages;
	double		live_bytes;
	char	   *note;
} StatsEst;

/* the page budget the current call started with, for notes */
static int64 call_budget = 0;

static void
sim_init(PackSim *sim, bool btree, Size reserve)
{
	memset(sim, 0, sizeof(PackSim));
	sim->btree = btree;
	sim->reserve = reserve;
	if (btree)
	{
		sim->usable = BLCKSZ - SizeOfPageHeaderData - MAXALIGN(sizeof(BTPageOpaqueData));
		sim->used = sizeof(ItemIdData); /* the high key's line pointer */
		sim->maxitems = INT_MAX;
	}
	else
	{
		sim->usable = BLCKSZ - SizeOfPageHeaderData;
		sim->maxitems = MaxHeapTuplesPerPage;
	}
}

/*
 * Feed one item of len bytes (unaligned tuple length) to the packing; for a
 * btree, postlen is the bytes of its posting list, which do not go into the
 * high key a build makes of a page's last item.
 */
static void
sim_add(PackSim *sim, Size len, Size postlen)
{
	Size		alen = MAXALIGN(len);
	Size		freespace = sim->usable > sim->used + sizeof(ItemIdData) ?
		sim->usable - sim->used - sizeof(ItemIdData) : 0;

	if (sim->btree)
	{
		if (freespace < alen + MAXALIGN(sizeof(ItemPointerData)) ||
			(sim->nitems >= 2 && freespace + sim->lastextra < sim->reserve))
		{
			/* page done; its last item moves to the next page */
			Size		moved = sim->last;

			sim->pages += 1;
			sim->finished_bytes += sim->used - moved - sizeof(ItemIdData);
			sim->used = sizeof(ItemIdData) + moved;
			sim->nitems = 1;
		}
	}
	else if (sim->nitems > 0 &&
			 (sim->nitems >= sim->maxitems || alen + sim->reserve > freespace))
	{
		sim->pages += 1;
		sim->finished_bytes += sim->used;
		sim->used = 0;
		sim->nitems = 0;
	}

	sim->used += alen + sizeof(ItemIdData);
	sim->last = alen + sizeof(ItemIdData);
	sim->lastextra = postlen;
	sim->nitems++;
}

/* Pages the simulation has used so far, the last one counted whole. */
static double
sim_pages(const PackSim *sim)
{
	Size		empty = sim->btree ? sizeof(ItemIdData) : 0;

	return sim->pages + (sim->used > empty ? 1 : 0);
}

/* Item bytes a rewritten page holds on average, by the simulation. */
static double
sim_bytes_per_page(const PackSim *sim)
{
	if (sim->pages >= 1)
		return sim->finished_bytes / sim->pages;
	return (double) (sim->usable - sim->reserve);
}

/* Upper btree levels over nleaf leaf pages, plus the metapage. */
static double
btree_upper_pages(double nleaf, double pivot_bytes)
{
	double		per_page;
	double		total = 1;		/* metapage */
	double		level = nleaf;
	Size		usable = BLCKSZ - SizeOfPageHeaderData - MAXALIGN(sizeof(BTPageOpaqueData));
	Size		reserve = BLCKSZ * (100 - BTREE_NONLEAF_FILLFACTOR) / 100;

	per_page = floor((double) (usable - reserve) / (pivot_bytes + sizeof(ItemIdData))) + 1;
	if (per_page < 2)
		per_page = 2;
	while (level > 1)
	{
		level = ceil(level / per_page);
		total += level;
	}
	return total;
}

/*
 * Can the current role read the pages of this relation?  The same rule as
 * pgstattuple's functions granted to pg_stat_scan_tables, plus anyone who
 * may read the table itself.
 */
static bool
can_read_pages(Oid relid, char relkind)
{
	Oid			tableoid = relid;

	if (superuser() ||
		has_privs_of_role(GetUserId(), ROLE_PG_STAT_SCAN_TABLES))
		return true;
	if (relkind == RELKIND_INDEX)
		tableoid = IndexGetRelation(relid, true);
	if (!OidIsValid(tableoid))
		return false;
	if (relkind == RELKIND_TOASTVALUE || get_rel_relkind(tableoid) == RELKIND_TOASTVALUE)
	{
		/* a TOAST table (or its index): the rights on its owning table */
		Oid			owner = InvalidOid;
		int			ret;
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(tableoid)};

		SPI_connect();
		ret = SPI_execute_with_args("SELECT c.oid FROM pg_catalog.pg_class c"
									" WHERE c.reltoastrelid OPERATOR(pg_catalog.=) $1",
									1, argtypes, args, NULL, true, 1);
		if (ret == SPI_OK_SELECT && SPI_processed == 1)
		{
			bool		isnull;

			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_finish();
		tableoid = owner;
		if (!OidIsValid(tableoid))
			return false;
	}
	return pg_class_aclcheck(tableoid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

/* The length of a heap tuple as a rewrite forms it again (heap_form_tuple). */
static Size
reformed_len(HeapTuple tuple, PageAcc *acc)
{
	TupleDesc	desc = acc->desc;
	bool		hasnull = false;
	Size		len;

	heap_deform_tuple(tuple, desc, acc->values, acc->isnull);
	for (int i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			acc->isnull[i] = true;
		hasnull |= acc->isnull[i];
	}
	len = offsetof(HeapTupleHeaderData, t_bits);
	if (hasnull)
		len += BITMAPLEN(desc->natts);
	len = MAXALIGN(len);
	return len + heap_compute_data_size(desc, acc->values, acc->isnull);
}

/* Measure one heap page into acc. */
static void
measure_heap_page(Relation rel, Buffer buf, BlockNumber blkno,
				  TransactionId oldestxmin, PageAcc *acc)
{
	Page		page;
	double		y = 0;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);

	if (PageIsNew(page))
		acc->free += BLCKSZ - SizeOfPageHeaderData;
	else
	{
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

		acc->free += PageGetExactFreeSpace(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemId		itemid = PageGetItemId(page, off);
			HeapTupleData tuple;
			Size		bytes;

			if (!ItemIdIsNormal(itemid))
			{
				/* unused, redirect and dead line pointers: a rewrite has none */
				acc->dead += sizeof(ItemIdData);
				continue;
			}
			tuple.t_data = (HeapTupleHeader) PageGetItem(page, itemid);
			tuple.t_len = ItemIdGetLength(itemid);
			tuple.t_tableOid = RelationGetRelid(rel);
			ItemPointerSet(&tuple.t_self, blkno, off);
			bytes = MAXALIGN(tuple.t_len) + sizeof(ItemIdData);

			switch (HeapTupleSatisfiesVacuum(&tuple, oldestxmin, buf))
			{
				case HEAPTUPLE_DEAD:
					acc->dead += bytes;
					break;
				case HEAPTUPLE_RECENTLY_DEAD:
					acc->recently_dead += bytes;
					/* a rewrite now keeps it */
					/* FALLTHROUGH */
				default:
					if (acc->desc &&
						(acc->reform_all ||
						 HeapTupleHeaderGetNatts(tuple.t_data) < acc->desc->natts))
					{
						/* what the rewrite keeps is the tuple formed again */
						Size		len = reformed_len(&tuple, acc);

						acc->dead += bytes - Min(bytes, MAXALIGN(len) + sizeof(ItemIdData));
						bytes = MAXALIGN(len) + sizeof(ItemIdData);
						tuple.t_len = len;
					}
					y += bytes;
					sim_add(&acc->sim, tuple.t_len, 0);
					break;
			}
		}
	}
	UnlockReleaseBuffer(buf);

	acc->npages++;
	acc->live += y;
	acc->sum_y += y;
	acc->sumsq_y += y * y;
}

/* The most heap TIDs one posting tuple of a key of keysz bytes may hold. */
static int64
dedup_permax(const PageAcc *acc, Size keysz)
{
	int64		permax;

	if (keysz + 2 * sizeof(ItemPointerData) > acc->maxposting)
		return 1;				/* too wide for a posting list */
	permax = (int64) ((acc->maxposting - keysz) / sizeof(ItemPointerData));

	while (MAXALIGN(keysz + permax * sizeof(ItemPointerData)) > acc->maxposting && permax > 1)
		permax--;
	return Max(permax, 1);
}

/*
 * Sampling: the current run goes on past the end of its page (the page's
 * high key is the same key).  Its TIDs are a stretch of a longer run, so a
 * build makes full posting tuples of them: they count at t / permax full
 * tuples, and the packing gets the whole ones (the fractions add up over
 * the sample).  Only the run that ends a key ends with a partial tuple;
 * flushing each sampled page's runs as if they were whole would make one
 * per page read.
 */
static void
dedup_flush_crossing(PageAcc *acc)
{
	Size		keysz = acc->runkeysz;
	int64		permax;
	Size		sz;
	double		tuples;

	acc->runkeysz = 0;
	if (keysz == 0 || acc->runtids <= 0)
	{
		acc->runtids = 0;
		return;
	}
	permax = dedup_permax(acc, keysz);
	sz = permax > 1 ? MAXALIGN(keysz + permax * sizeof(ItemPointerData)) : keysz;
	tuples = acc->runtids / permax;
	acc->rebuilt += tuples * (sz + sizeof(ItemIdData));
	acc->carry += tuples;
	while (acc->carry >= 1)
	{
		sim_add(&acc->sim, sz, permax > 1 ? sz - keysz : 0);
		acc->carry -= 1;
	}
	acc->runtids = 0;
}

/*
 * Does the run go on past the end of this leaf page?  Then the high key
 * (the right sibling's first key) is the run's key with a heap TID: a
 * pivot keeps every key attribute and a heap TID only when the items on
 * either side of the split have equal keys.
 */
static bool
dedup_run_crosses(const PageAcc *acc, Page page, BTPageOpaque opaque)
{
	IndexTuple	hikey;
	Size		keydata = acc->runkeysz - sizeof(IndexTupleData);

	if (acc->runkeysz == 0 || P_RIGHTMOST(opaque))
		return false;
	hikey = (IndexTuple) PageGetItem(page, PageGetItemId(page, P_HIKEY));
	if (!BTreeTupleIsPivot(hikey) || BTreeTupleGetHeapTID(hikey) == NULL)
		return false;
	if ((hikey->t_info & INDEX_NULL_MASK) != acc->runflags ||
		IndexTupleSize(hikey) < acc->runkeysz)
		return false;
	return memcmp(acc->runkey, (char *) hikey + sizeof(IndexTupleData), keydata) == 0;
}

/*
 * Emit the posting-list tuples a build makes of the current run.  When
 * sampling, the run's TID count is an estimate and may be fractional: the
 * packing sees whole tuples, the rebuilt bytes are scaled to the estimate.
 */
static void
dedup_flush(PageAcc *acc)
{
	Size		keysz = acc->runkeysz;
	int64		whole = (int64) ceil(acc->runtids - 1e-9);
	int64		left = whole;
	int64		permax;
	double		bytes = 0;

	acc->runkeysz = 0;
	if (keysz == 0 || whole <= 0)
	{
		acc->runtids = 0;
		return;
	}
	permax = dedup_permax(acc, keysz);
	while (left > 0)
	{
		int64		n = Min(left, permax);
		Size		sz = n > 1 ? MAXALIGN(keysz + n * sizeof(ItemPointerData)) : keysz;

		sim_add(&acc->sim, sz, n > 1 ? sz - keysz : 0);
		bytes += sz + sizeof(ItemIdData);
		left -= n;
	}
	acc->rebuilt += bytes * acc->runtids / whole;
	acc->runtids = 0;
}

/*
 * Feed one live leaf item to the build's deduplication; frac of its heap
 * TIDs survive a rebuild.
 */
static void
dedup_add(PageAcc *acc, IndexTuple itup, double frac)
{
	Size		keysz;
	int64		ntids;

	if (BTreeTupleIsPosting(itup))
	{
		keysz = BTreeTupleGetPostingOffset(itup);
		ntids = BTreeTupleGetNPosting(itup);
	}
	else
	{
		keysz = IndexTupleSize(itup);
		ntids = 1;
	}
	if (acc->runkeysz != keysz ||
		acc->runflags != (itup->t_info & INDEX_NULL_MASK) ||
		memcmp(acc->runkey, (char *) itup + sizeof(IndexTupleData),
			   keysz - sizeof(IndexTupleData)) != 0)
	{
		dedup_flush(acc);
		memcpy(acc->runkey, (char *) itup + sizeof(IndexTupleData),
			   keysz - sizeof(IndexTupleData));
		acc->runkeysz = keysz;
		acc->runflags = itup->t_info & INDEX_NULL_MASK;
	}
	acc->runtids += ntids * frac;
}

/* Would a rebuild index this heap TID? */
static bool
tid_survives(HeapCheck *hc, ItemPointer tid)
{
	BlockNumber blk = ItemPointerGetBlockNumber(tid);
	ItemPointerData t = *tid;
	HeapTupleData htup;
	bool		found;

	if (hc->buf == InvalidBuffer || hc->blk != blk)
	{
		if (hc->buf != InvalidBuffer)
			ReleaseBuffer(hc->buf);
		hc->buf = InvalidBuffer;
		if (blk >= RelationGetNumberOfBlocks(hc->heap))
			return false;
		hc->buf = ReadBufferExtended(hc->heap, MAIN_FORKNUM, blk, RBM_NORMAL, hc->strategy);
		hc->blk = blk;
		hc->reads++;
	}
	LockBuffer(hc->buf, BUFFER_LOCK_SHARE);
	found = heap_hot_search_buffer(&t, hc->heap, hc->buf, &hc->snap, &htup, NULL, true);
	LockBuffer(hc->buf, BUFFER_LOCK_UNLOCK);
	hc->checked++;
	if (!found)
		hc->dead++;
	return found;
}

/* How many of a leaf item's heap TIDs survive a rebuild (exact). */
static int
item_surviving_tids(HeapCheck *hc, IndexTuple itup, int *ntids)
{
	int			alive = 0;

	if (BTreeTupleIsPosting(itup))
	{
		*ntids = BTreeTupleGetNPosting(itup);
		for (int j = 0; j < *ntids; j++)
			alive += tid_survives(hc, BTreeTupleGetPostingN(itup, j)) ? 1 : 0;
	}
	else
	{
		*ntids = 1;
		alive = tid_survives(hc, &itup->t_tid) ? 1 : 0;
	}
	return alive;
}

/*
 * Sampling: the share of a leaf page's entries a rebuild keeps, from a few
 * random items (one random heap TID of each), for plain items and posting
 * lists apart: whether an entry is dead is often tied to its kind, as for
 * an updated row, whose old and new versions share a posting list while
 * the rows not updated stay plain.  A kind no draw on this page hit gets
 * its share on the pages read so far (the other kind's share, before any).
 */
static void
page_surviving_fraction(HeapCheck *hc, Page page, OffsetNumber first, OffsetNumber maxoff,
						double *plain_frac, double *posting_frac)
{
	int64		checked[2] = {0, 0};
	int64		alive[2] = {0, 0};

	*plain_frac = *posting_frac = 1.0;
	if (maxoff < first)
		return;
	for (int j = 0; j < BLOAT_TID_CHECKS; j++)
	{
		OffsetNumber off = first + (OffsetNumber) pg_prng_uint64_range(&hc->prng, 0, maxoff - first);
		ItemId		itemid = PageGetItemId(page, off);
		IndexTuple	itup;
		ItemPointer tid;
		int			kind;

		if (ItemIdIsDead(itemid))
			continue;
		itup = (IndexTuple) PageGetItem(page, itemid);
		kind = BTreeTupleIsPosting(itup) ? 1 : 0;
		if (kind)
			tid = BTreeTupleGetPostingN(itup, (int) pg_prng_uint64_range(&hc->prng, 0,
																		 BTreeTupleGetNPosting(itup) - 1));
		else
			tid = &itup->t_tid;
		checked[kind]++;
		alive[kind] += tid_survives(hc, tid) ? 1 : 0;
	}
	for (int kind = 0; kind < 2; kind++)
	{
		hc->kind_checked[kind] += checked[kind];
		hc->kind_alive[kind] += alive[kind];
		if (checked[kind] == 0 && hc->kind_checked[kind] > 0)
		{
			checked[kind] = hc->kind_checked[kind];
			alive[kind] = hc->kind_alive[kind];
		}
	}
	if (checked[0] > 0)
		*plain_frac = (double) alive[0] / checked[0];
	if (checked[1] > 0)
		*posting_frac = (double) alive[1] / checked[1];
	if (checked[0] == 0)
		*plain_frac = *posting_frac;
	if (checked[1] == 0)
		*posting_frac = *plain_frac;
}

/* Measure one btree page (not the metapage) into acc. */
static void
measure_btree_page(Buffer buf, PageAcc *acc)
{
	Page		page;
	double		y = 0;
	double		plain_frac = 1.0;
	double		posting_frac = 1.0;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);

	if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(BTPageOpaqueData)))
		acc->free += BLCKSZ - SizeOfPageHeaderData;
	else
	{
		BTPageOpaque opaque = BTPageGetOpaque(page);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

		if (P_IGNORE(opaque))
			acc->free += BLCKSZ - SizeOfPageHeaderData; /* deleted or half-dead */
		else if (P_ISLEAF(opaque))
		{
			acc->free += PageGetExactFreeSpace(page);
			if (!P_RIGHTMOST(opaque))
			{
				ItemId		hk = PageGetItemId(page, P_HIKEY);

				acc->hikey_bytes += MAXALIGN(ItemIdGetLength(hk));
				acc->hikeys++;
				acc->live += MAXALIGN(ItemIdGetLength(hk)) + sizeof(ItemIdData);
			}
			if (acc->hc && !acc->hc->all)
				page_surviving_fraction(acc->hc, page, P_FIRSTDATAKEY(opaque), maxoff,
										&plain_frac, &posting_frac);
			for (OffsetNumber off = P_FIRSTDATAKEY(opaque); off <= maxoff; off++)
			{
				ItemId		itemid = PageGetItemId(page, off);
				Size		bytes = MAXALIGN(ItemIdGetLength(itemid)) + sizeof(ItemIdData);
				IndexTuple	itup = (IndexTuple) PageGetItem(page, itemid);
				Size		len = ItemIdGetLength(itemid);
				Size		postlen = 0;
				double		frac = BTreeTupleIsPosting(itup) ? posting_frac : plain_frac;

				if (ItemIdIsDead(itemid))
				{
					acc->dead += bytes;
					continue;
				}
				if (BTreeTupleIsPosting(itup))
				{
					postlen = IndexTupleSize(itup) - BTreeTupleGetPostingOffset(itup);
					acc->tids += BTreeTupleGetNPosting(itup);
				}
				else
					acc->tids += 1;
				if (acc->hc && acc->hc->all)
				{
					int			ntids;
					int			alive = item_surviving_tids(acc->hc, itup, &ntids);

					if (alive == 0)
					{
						acc->dead += bytes;
						continue;
					}
					frac = (double) alive / ntids;
					if (alive < ntids && !acc->dedup)
					{
						/* the posting list a rebuild would make of the rest */
						Size		keysz = BTreeTupleGetPostingOffset(itup);

						len = alive > 1 ? MAXALIGN(keysz + alive * sizeof(ItemPointerData)) : keysz;
						postlen = alive > 1 ? len - keysz : 0;
					}
				}
				y += bytes * frac;
				acc->dead += bytes * (1 - frac);
				if (acc->dedup)
				{
					acc->current += bytes * frac;
					dedup_add(acc, itup, frac);
				}
				else
					sim_add(&acc->sim, len, postlen);
			}
			if (acc->dedup && acc->per_page)
			{
				if (dedup_run_crosses(acc, page, opaque))
					dedup_flush_crossing(acc);
				else
					dedup_flush(acc);
			}
		}
		else
		{
			acc->free += PageGetExactFreeSpace(page);
			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
				acc->live += MAXALIGN(ItemIdGetLength(PageGetItemId(page, off))) +
					sizeof(ItemIdData);
		}
	}
	UnlockReleaseBuffer(buf);

	acc->npages++;
	acc->live += y;
	acc->sum_y += y;
	acc->sumsq_y += y * y;
}

/*
 * Relative variance of the bytes per rewritten page the packing achieved on
 * the sample, by batch means: the pages read cut into BLOAT_BATCHES runs of
 * consecutive reads, each with the bytes per page of the pages it finished.
 * pages[i] and bytes[i] are the packing's finished pages and their bytes
 * after the i-th page read.
 */
static double
perpage_relvar(const double *pages, const double *bytes, int64 n)
{
	double		vals[BLOAT_BATCHES];
	int			nb = 0;
	double		p0 = 0,
				b0 = 0,
				sum = 0,
				ss = 0,
				mean;

	for (int b = 1; b <= BLOAT_BATCHES; b++)
	{
		int64		end = n * b / BLOAT_BATCHES - 1;

		if (end < 0 || pages[end] - p0 < 1)
			continue;
		vals[nb] = (bytes[end] - b0) / (pages[end] - p0);
		sum += vals[nb++];
		p0 = pages[end];
		b0 = bytes[end];
	}
	if (nb < 2)
		return 0;
	mean = sum / nb;
	for (int b = 0; b < nb; b++)
		ss += (vals[b] - mean) * (vals[b] - mean);
	return ss / (nb - 1) / nb / (mean * mean);
}

static int
blockno_cmp(const void *a, const void *b)
{
	BlockNumber ba = *(const BlockNumber *) a;
	BlockNumber bb = *(const BlockNumber *) b;

	return ba < bb ? -1 : (ba > bb ? 1 : 0);
}

/*
 * Start acc over: nothing measured, the packing at its first page.  What
 * stays is how the relation is read (deduplication, the heap check).
 */
static void
acc_reset(PageAcc *acc, bool btree, Size reserve)
{
	PageAcc		keep = *acc;

	memset(acc, 0, sizeof(PageAcc));
	sim_init(&acc->sim, btree, reserve);
	acc->dedup = keep.dedup;
	acc->maxposting = keep.maxposting;
	acc->runkey = keep.runkey;
	acc->hc = keep.hc;
	acc->desc = keep.desc;
	acc->reform_all = keep.reform_all;
	acc->values = keep.values;
	acc->isnull = keep.isnull;
}

/* Read every page of the frame, in order, into acc. */
static void
read_every_page(Relation rel, bool btree, BlockNumber first, BlockNumber nblocks,
				BufferAccessStrategy bstrategy, TransactionId oldestxmin, PageAcc *acc)
{
	for (BlockNumber blk = first; blk < nblocks; blk++)
	{
		Buffer		buf;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk, RBM_NORMAL, bstrategy);
		if (btree)
			measure_btree_page(buf, acc);
		else
			measure_heap_page(rel, buf, blk, oldestxmin, acc);
	}
	dedup_flush(acc);
}

/*
 * Read the pages of rel and fill row.  first..nblocks-1 is the sampling
 * frame (the btree metapage is left out).  Every page is read when the frame
 * fits in sample_cap (when sampling: in the first round), else a sample of
 * at most sample_cap pages.
 */
static void
measure_relation(Relation rel, bool btree, BlockNumber nblocks, int64 sample_cap,
				 bool sampling, double ci_width, uint32 seed, BloatRow *row)
{
	BlockNumber first = btree ? BTREE_METAPAGE + 1 : 0;
	BlockNumber frame = nblocks > first ? nblocks - first : 0;
	BufferAccessStrategy bstrategy = GetAccessStrategy(BAS_BULKREAD);
	TransactionId oldestxmin = InvalidTransactionId;
	PageAcc		acc;
	Size		reserve;
	bool		explicit_exact = sample_cap == INT64_MAX;
	bool		full = sampling ? (int64) frame <= Min(sample_cap, BLOAT_FIRST_ROUND) :
		(int64) frame <= sample_cap;
	HeapCheck  *hc = NULL;
	BlockNumber *read_blocks = NULL;
	double	   *snap_pages = NULL;
	double	   *snap_bytes = NULL;
	int64		nread = 0;
	int64		cap = sample_cap;
	int64		reread = 0;		/* sampled pages read again by an exact read */
	bool		exact_instead = false;
	bool		short_of_full = false;
	double		kept_pages;
	double		half = 0;
	double		after;

	memset(&acc, 0, sizeof(acc));
	if (btree)
		reserve = BTGetTargetPageFreeSpace(rel);
	else
	{
		TupleDesc	desc = RelationGetDescr(rel);

		reserve = RelationGetTargetPageFreeSpace(rel, HEAP_DEFAULT_FILLFACTOR);
		oldestxmin = GetOldestNonRemovableTransactionId(rel);
		acc.desc = desc;
		for (int i = 0; i < desc->natts; i++)
			acc.reform_all |= TupleDescAttr(desc, i)->attisdropped;
		acc.values = palloc(sizeof(Datum) * Max(desc->natts, 1));
		acc.isnull = palloc(sizeof(bool) * Max(desc->natts, 1));
	}
	sim_init(&acc.sim, btree, reserve);
	if (btree && !rel->rd_index->indisunique && BTGetDeduplicateItems(rel) &&
		_bt_allequalimage(rel, false))
	{
		/* nbtsort.c: posting lists of a build stay under 10% of a page */
		acc.dedup = true;
		acc.maxposting = MAXALIGN_DOWN((BLCKSZ * 10 / 100)) - sizeof(ItemIdData);
		acc.runkey = palloc(BLCKSZ);
	}
	if (btree)
	{
		/*
		 * Entries of heap rows VACUUM has not removed yet still sit in the
		 * index, and a rebuild drops them.  When the table's statistics
		 * show dead rows (or there are none, as on a standby), check the
		 * entries against the table: all of them for exact, a few per
		 * sampled leaf page otherwise (and the sample shrinks to pay for
		 * the heap pages).
		 */
		Oid			heapoid = rel->rd_index->indrelid;
		Relation	heap = NULL;
		int64		ndead = DatumGetInt64(DirectFunctionCall1(pg_stat_get_dead_tuples,
															  ObjectIdGetDatum(heapoid)));
		int64		nlive = DatumGetInt64(DirectFunctionCall1(pg_stat_get_live_tuples,
															  ObjectIdGetDatum(heapoid)));

		bool		want_check = ndead > 0.01 * (nlive + ndead) || nlive + ndead == 0;

		if (want_check && !explicit_exact &&
			sample_cap / (1 + BLOAT_TID_CHECKS) < BLOAT_MIN_SAMPLE)
			appendStringInfo(&row->note, "%sentries not checked against the table (page budget too small): those of dead rows not yet vacuumed count as live",
							 row->note.len ? "; " : "");
		else if (want_check && ConditionalLockRelationOid(heapoid, AccessShareLock))
		{
			/* locked: is it still there? (the index is locked, so it should be) */
			heap = try_relation_open(heapoid, NoLock);
			if (heap == NULL)
				UnlockRelationOid(heapoid, AccessShareLock);
		}
		if (heap != NULL)
		{
			hc = palloc0(sizeof(HeapCheck));
			hc->heap = heap;
			InitNonVacuumableSnapshot(hc->snap, GlobalVisTestFor(hc->heap));
			hc->strategy = bstrategy;
			hc->buf = InvalidBuffer;
			hc->all = explicit_exact;
			pg_prng_seed(&hc->prng, seed ^ 0x5bd1e995);
			acc.hc = hc;
			if (!explicit_exact)
			{
				/* a few heap pages per index page: the budget pays for them */
				sample_cap = sample_cap / (1 + BLOAT_TID_CHECKS);
				full = frame == 0;
			}
		}
	}

	if (full)
	{
		read_every_page(rel, btree, first, nblocks, bstrategy, oldestxmin, &acc);
		nread = frame;
		kept_pages = sim_pages(&acc.sim);
	}
	else
	{
		int64		want;
		double		mean = 0,
					fpc = 1,
					var = 0,
					perpage = 0,
					k = 0;

		sample_cap = Min(sample_cap, (int64) frame);
		want = Min(sample_cap, BLOAT_FIRST_ROUND);
		acc.per_page = true;
		read_blocks = palloc(sizeof(BlockNumber) * sample_cap);
		snap_pages = palloc(sizeof(double) * sample_cap);
		snap_bytes = palloc(sizeof(double) * sample_cap);
		for (int round = 0; round < BLOAT_MAX_ROUNDS && want > nread; round++)
		{
			BlockSamplerData bs;
			int64		nold = nread;
			int			p = 0;

			/*
			 * Draw want - nread pages uniformly from those not read yet.
			 * Each round has a stream of its own, far from those of the
			 * next seeds (with seed + round, seed 1's second round would
			 * be seed 2's first, and nearby seeds would agree).
			 */
			BlockSampler_Init(&bs, frame - nold, want - nold,
							  seed + (uint32) round * 0x9E3779B9);
			while (BlockSampler_HasMore(&bs))
			{
				BlockNumber rank = BlockSampler_Next(&bs);
				BlockNumber blk;
				Buffer		buf;

				/*
				 * rank counts the pages not read yet, in increasing order:
				 * its page in the frame is rank plus the pages already read
				 * at or below it (p of them were passed for earlier ranks).
				 */
				blk = rank + p;
				while (p < nold && read_blocks[p] <= blk)
				{
					blk++;
					p++;
				}
				read_blocks[nread++] = blk;

				CHECK_FOR_INTERRUPTS();
				buf = ReadBufferExtended(rel, MAIN_FORKNUM, blk + first, RBM_NORMAL,
										 bstrategy);
				if (btree)
					measure_btree_page(buf, &acc);
				else
					measure_heap_page(rel, buf, blk + first, oldestxmin, &acc);
				snap_pages[nread - 1] = acc.sim.pages;
				snap_bytes[nread - 1] = acc.sim.finished_bytes;
			}
			qsort(read_blocks, nread, sizeof(BlockNumber), blockno_cmp);

			/*
			 * The interval so far, and the sample it would take to narrow it
			 * (a deduplicating btree's runs were flushed with their pages).
			 */
			mean = acc.sum_y / nread;
			var = nread > 1 ? Max(0, (acc.sumsq_y - nread * mean * mean) / (nread - 1)) : 0;
			if (acc.dedup && acc.current > 0)
				mean = mean * acc.rebuilt / acc.current;
			perpage = sim_bytes_per_page(&acc.sim);
			k = 100.0 * frame / ((double) nblocks * perpage);
			if (acc.dedup && acc.current > 0)
				var = var * (acc.rebuilt / acc.current) * (acc.rebuilt / acc.current);
			/*
			 * The mean's share and the packing's (bytes per rewritten page
			 * are estimated from the same pages); sampled heap checks leave
			 * doubt even when every page was read.
			 */
			fpc = hc ? 1.0 : 1.0 - (double) nread / frame;
			half = 1.96 * k * sqrt(var * fpc / nread +
								   mean * mean * perpage_relvar(snap_pages, snap_bytes, nread) * fpc);
			if (half <= ci_width / 2 || var <= 0)
				break;
			else
			{
				double		h = ci_width / 2 / (1.96 * k * sqrt(var));
				double		need = 1.0 / (h * h + 1.0 / frame);

				want = Min(sample_cap, (int64) ceil(need * 1.1));
			}

			/*
			 * The next round would read every page left: read the relation
			 * as exact does instead, every page in order and every entry
			 * checked, so that a sample of the whole relation is exact.
			 * The pages read so far are read again, and the heap pages the
			 * checks may read (one per TID at most) count too: only when
			 * the budget holds all that.
			 */
			if (want >= (int64) frame &&
				nread + (hc ? hc->reads : 0) + frame +
				(hc ? acc.tids * frame / nread : 0) <= (double) cap)
			{
				exact_instead = true;
				break;
			}

			/*
			 * Otherwise a sample stops a page short of the whole relation:
			 * it would see every page but not in their order, and its
			 * answer could differ from exact's.
			 */
			if (want >= (int64) frame)
			{
				want = frame - 1;
				short_of_full = true;
			}
		}
		if (!exact_instead)
		{
			kept_pages = frame * mean / perpage;
			acc.live = acc.live * frame / nread;
			acc.dead = acc.dead * frame / nread;
			acc.free = acc.free * frame / nread;
			acc.recently_dead = acc.recently_dead * frame / nread;
		}
	}
	if (exact_instead)
	{
		reread = nread;
		acc_reset(&acc, btree, reserve);
		if (hc)
		{
			hc->all = true;
			hc->checked = hc->dead = 0;
		}
		read_every_page(rel, btree, first, nblocks, bstrategy, oldestxmin, &acc);
		nread = frame;
		kept_pages = sim_pages(&acc.sim);
		full = true;
		appendStringInfo(&row->note, "%sa sample would have read every page: read in full instead (%lld pages read twice)",
						 row->note.len ? "; " : "", (long long) reread);
	}
	if (btree)
	{
		double		pivot = acc.hikeys > 0 ? acc.hikey_bytes / acc.hikeys : 16;

		kept_pages = kept_pages > 0 ? ceil(kept_pages) : 0;
		after = kept_pages > 0 ? kept_pages + btree_upper_pages(kept_pages, pivot) : 1;
	}
	else
		after = ceil(kept_pages);

	row->pages_read = reread + nread + (hc ? hc->reads : 0);
	row->has_parts = true;
	row->live = acc.live;
	row->dead = acc.dead;
	row->free = acc.free;
	row->has_bloat = true;
	row->bloat_bytes = ((double) nblocks - after) * BLCKSZ;
	row->has_ci = true;
	if (full)
	{
		row->method = "exact";
		row->ci_low = row->ci_high = nblocks > 0 ? 100.0 * row->bloat_bytes / ((double) nblocks * BLCKSZ) : 0;
	}
	else
	{
		double		pct = 100.0 * row->bloat_bytes / ((double) nblocks * BLCKSZ);

		row->method = "sample";
		row->ci_low = pct - half;
		row->ci_high = Min(100.0, pct + half);
		if (short_of_full && nread == (int64) frame - 1)
			appendStringInfo(&row->note, "%sthe sample stopped a page short of the whole relation: reading it in full instead would exceed the page budget",
							 row->note.len ? "; " : "");
		if (half > ci_width / 2)
			appendStringInfo(&row->note, "%sinterval wider than ci_width: stopped after %lld of %u pages (%s)",
							 row->note.len ? "; " : "", (long long) nread, nblocks,
							 nread >= sample_cap ? "page budget" : "sampling rounds");
	}

	if (!btree && acc.recently_dead > 0.01 * Max(acc.live, 1))
		appendStringInfo(&row->note, "%s%.0f%% of the kept bytes are dead rows an open transaction may still see (xmin horizon): a rewrite now keeps them",
						 row->note.len ? "; " : "", 100.0 * acc.recently_dead / Max(acc.live, 1));
	if (hc)
	{
		if (hc->checked > 0)
			appendStringInfo(&row->note, "%schecked %lld index entries against the table (%lld heap pages read): %.1f%% point to dead rows a rebuild drops",
							 row->note.len ? "; " : "", (long long) hc->checked,
							 (long long) hc->reads, 100.0 * hc->dead / hc->checked);
		if (hc->buf != InvalidBuffer)
			ReleaseBuffer(hc->buf);
		relation_close(hc->heap, AccessShareLock);
		pfree(hc);
	}
	FreeAccessStrategy(bstrategy);
	if (read_blocks)
	{
		pfree(read_blocks);
		pfree(snap_pages);
		pfree(snap_bytes);
	}
	if (acc.values)
	{
		pfree(acc.values);
		pfree(acc.isnull);
	}
}

/*
 * A relation's name for a detail or message, quoted; a relation dropped
 * meanwhile is named by its OID.
 */
static const char *
rel_name_or_oid(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		return psprintf("(dropped relation %u)", relid);
	return quote_identifier(name);
}

static const char *
kind_name(char relkind, bool toast_index)
{
	switch (relkind)
	{
		case RELKIND_RELATION:
			return "table";
		case RELKIND_MATVIEW:
			return "materialized view";
		case RELKIND_TOASTVALUE:
			return "toast";
		case RELKIND_INDEX:
			return toast_index ? "toast index" : "index";
	}
	return "?";
}

/* The kinds dbops.bloat() reads. */
static bool
bloat_relkind_has_pages(char relkind)
{
	return relkind == RELKIND_RELATION || relkind == RELKIND_MATVIEW ||
		relkind == RELKIND_TOASTVALUE || relkind == RELKIND_INDEX;
}

/*
 * The error for a named relation of a kind without pages; "changed" when it
 * was of a kind with pages until dbops.bloat() got its lock.
 */
DBOPS_NORETURN static void refuse_relkind(const char *relname, char relkind, bool changed);

static void
refuse_relkind(const char *relname, char relkind, bool changed)
{
	if (changed)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table, materialized view, TOAST table or index",
						relname),
				 errdetail("It changed while dbops.bloat() waited for its lock: it is now a %s.",
						   dbops_relkind_name(relkind)),
				 errhint("Bloat is measured on relations with storage.")));
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("\"%s\" is not a table, materialized view, TOAST table or index",
					relname),
			 errdetail("Bloat is measured on relations with storage."),
			 errhint("%s",
					 relkind == RELKIND_PARTITIONED_TABLE || relkind == RELKIND_PARTITIONED_INDEX ?
					 "Name one of its partitions, or leave relation NULL to list every relation." :
					 "Name a table, materialized view, TOAST table or index.")));
}

static BloatMethod
parse_method(const char *name)
{
	for (int i = 0; i < lengthof(method_names); i++)
		if (strcmp(name, method_names[i]) == 0)
			return (BloatMethod) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown bloat method \"%s\"", dbops_bounded(name, DBOPS_ECHO_CHARS)),
			 errhint("Use one of stats, sample, exact or auto.")));
	return BLOAT_AUTO;			/* keep compiler quiet */
}

static int
statsest_cmp(const void *a, const void *b)
{
	Oid			oa = ((const StatsEst *) a)->relid;
	Oid			ob = ((const StatsEst *) b)->relid;

	return oa < ob ? -1 : (oa > ob ? 1 : 0);
}

/* The entry of relid in est (n entries sorted by relid), or NULL. */
static StatsEst *
find_est(StatsEst *est, int n, Oid relid)
{
	StatsEst	key;

	key.relid = relid;
	return (StatsEst *) bsearch(&key, est, n, sizeof(StatsEst), statsest_cmp);
}

/*
 * Catalog estimates for the given relations, through dbops._bloat_stats().
 * Returns an array of n entries, sorted by relid, in the current memory
 * context.
 *
 * The function is called through the function manager, not through a
 * query: it is internal (revoked from PUBLIC), and EXECUTE on dbops.bloat()
 * is the privilege that counts.  It runs with the caller's rights (pg_stats
 * shows only the columns the caller may read) and its own pinned
 * search_path (fmgr applies its SET clause).
 */
static StatsEst *
fetch_stats(Oid *relids, int n)
{
	StatsEst   *est = palloc0(sizeof(StatsEst) * n);
	Datum	   *elems = palloc(sizeof(Datum) * n);
	ArrayType  *arr;
	Oid			argtype = OIDARRAYOID;
	Oid			funcoid;
	FmgrInfo	flinfo;
	ReturnSetInfo rsinfo;
	TupleTableSlot *slot;

	LOCAL_FCINFO(fcinfo, 1);

	for (int i = 0; i < n; i++)
	{
		elems[i] = ObjectIdGetDatum(relids[i]);
		est[i].relid = relids[i];
	}
	arr = construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
	qsort(est, n, sizeof(StatsEst), statsest_cmp);

	funcoid = LookupFuncName(list_make2(makeString("dbops"), makeString("_bloat_stats")),
							 1, &argtype, false);
	fmgr_info(funcoid, &flinfo);

	memset(&rsinfo, 0, sizeof(rsinfo));
	rsinfo.type = T_ReturnSetInfo;
	rsinfo.econtext = CreateStandaloneExprContext();
	rsinfo.allowedModes = SFRM_ValuePerCall | SFRM_Materialize | SFRM_Materialize_Preferred;
	rsinfo.returnMode = SFRM_ValuePerCall;

	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, (fmNodePtr) &rsinfo);
	fcinfo->args[0].value = PointerGetDatum(arr);
	fcinfo->args[0].isnull = false;
	(void) FunctionCallInvoke(fcinfo);
	if (rsinfo.returnMode != SFRM_Materialize)
		elog(ERROR, "dbops._bloat_stats did not return a materialized set");

	if (rsinfo.setResult != NULL && rsinfo.setDesc != NULL)
	{
		slot = MakeSingleTupleTableSlot(rsinfo.setDesc, &TTSOpsMinimalTuple);
		while (tuplestore_gettupleslot(rsinfo.setResult, true, false, slot))
		{
			bool		isnull;
			Datum		d = slot_getattr(slot, 1, &isnull);
			StatsEst   *e = isnull ? NULL : find_est(est, n, DatumGetObjectId(d));

			if (e == NULL)
				continue;
			e->found = true;
			d = slot_getattr(slot, 2, &isnull);
			e->has_est = !isnull;
			if (!isnull)
				e->est_pages = DatumGetFloat8(d);
			d = slot_getattr(slot, 3, &isnull);
			if (!isnull)
				e->live_bytes = DatumGetFloat8(d);
			d = slot_getattr(slot, 4, &isnull);
			if (!isnull)
				e->note = TextDatumGetCString(d);
		}
		ExecDropSingleTupleTableSlot(slot);
		tuplestore_end(rsinfo.setResult);
	}
	FreeExprContext(rsinfo.econtext, true);
	return est;
}

static void
fill_from_stats(BloatRow *row, const StatsEst *est, BlockNumber nblocks)
{
	row->method = "stats";
	row->pages_read = 0;
	if (est == NULL || !est->found)
	{
		/* dropped after its pages were counted (its lock was released) */
		appendStringInfo(&row->note, "%sskipped: dropped meanwhile, no catalog estimate",
						 row->note.len ? "; " : "");
		return;
	}
	if (est->has_est)
	{
		row->has_bloat = true;
		row->bloat_bytes = ((double) nblocks - est->est_pages) * BLCKSZ;
		if (row->bloat_bytes < 0)
			row->bloat_bytes = 0;	/* the classic estimate floors at zero */
		row->has_parts = false;
		row->live = est->live_bytes;
	}
	if (est->note)
		appendStringInfo(&row->note, "%s%s", row->note.len ? "; " : "", est->note);
}

/* A target from its pg_class row; NULL if the relation is gone. */
static BloatTarget *
make_target(Oid relid, bool named)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class form;
	BloatTarget *t;

	if (!HeapTupleIsValid(tup))
		return NULL;
	form = (Form_pg_class) GETSTRUCT(tup);
	t = palloc0(sizeof(BloatTarget));
	t->relid = relid;
	t->relkind = form->relkind;
	t->relam = form->relam;
	t->persistence = form->relpersistence;
	t->relpages = form->relpages;
	t->named = named;
	ReleaseSysCache(tup);
	return t;
}

/* The indexes of a relation, from the relcache, as targets. */
static List *
index_targets(List *targets, Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		BloatTarget *t = make_target(lfirst_oid(lc), true);

		if (t)
			targets = lappend(targets, t);
	}
	list_free(indexes);
	relation_close(rel, AccessShareLock);
	return targets;
}

/*
 * The relations a call reports on: the named one (with its TOAST table, the
 * TOAST index and its indexes when it is a table), or every user relation of
 * the database, largest first by pg_class.relpages.
 */
static List *
collect_targets(Oid relid)
{
	List	   *targets = NIL;
	int			ret;
	MemoryContext outer = CurrentMemoryContext;

	if (OidIsValid(relid))
	{
		BloatTarget *t;
		Oid			toastoid;
		Relation	rel;

		/*
		 * Lock the named relation for the rest of the call before looking at
		 * what it is and at its TOAST table and indexes: a transaction that
		 * held it may have turned it into a view (and dropped its TOAST
		 * table) meanwhile.
		 */
		rel = try_relation_open(relid, AccessShareLock);
		if (rel == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid),
					 errdetail("It was dropped while dbops.bloat() waited for its lock."),
					 errhint("Check the name and call again; leave relation out to report on every relation.")));
		if (!bloat_relkind_has_pages(rel->rd_rel->relkind))
			refuse_relkind(RelationGetRelationName(rel), rel->rd_rel->relkind, true);
		relation_close(rel, NoLock);

		t = make_target(relid, true);
		if (t == NULL)			/* cannot happen: it is locked */
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid),
					 errhint("Check the name and call again; leave relation out to report on every relation.")));
		targets = lappend(targets, t);
		if (t->relkind == RELKIND_INDEX)
			return targets;
		toastoid = InvalidOid;
		if (t->relkind != RELKIND_TOASTVALUE)
		{
			HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

			if (HeapTupleIsValid(tup))
			{
				toastoid = ((Form_pg_class) GETSTRUCT(tup))->reltoastrelid;
				ReleaseSysCache(tup);
			}
		}
		if (OidIsValid(toastoid))
		{
			BloatTarget *tt = make_target(toastoid, true);

			if (tt)
			{
				targets = lappend(targets, tt);
				targets = index_targets(targets, toastoid);
			}
		}
		return index_targets(targets, relid);
	}

	SPI_connect();
	ret = SPI_execute(psprintf("SELECT c.oid, c.relkind, c.relam, c.relpersistence, c.relpages "
							   "FROM pg_catalog.pg_class c "
							   "WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m,t,i}'::pg_catalog.\"char\"[]) "
							   "  AND c.oid OPERATOR(pg_catalog.>=) '%u'::pg_catalog.oid "
							   "  AND c.relnamespace OPERATOR(pg_catalog.<>) '%u'::pg_catalog.oid "
							   "  AND c.relnamespace OPERATOR(pg_catalog.<>) "
							   "      'information_schema'::pg_catalog.regnamespace::pg_catalog.oid "
							   "  AND NOT pg_catalog.pg_is_other_temp_schema(c.relnamespace) "
							   "ORDER BY c.relpages DESC, c.oid",
							   FirstNormalObjectId, PG_CATALOG_NAMESPACE),
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list relations: %s", SPI_result_code_string(ret));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext spicxt = MemoryContextSwitchTo(outer);
		BloatTarget *t = palloc0(sizeof(BloatTarget));

		t->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		t->relkind = DatumGetChar(SPI_getbinval(tup, desc, 2, &isnull));
		t->relam = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		t->persistence = DatumGetChar(SPI_getbinval(tup, desc, 4, &isnull));
		t->relpages = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		t->named = false;
		targets = lappend(targets, t);
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
	return targets;
}

/*
 * Report on one relation.  *budget is what is left of the call's page
 * budget (-1: no budget, for exact).
 */
static void
bloat_one(BloatTarget *t, BloatMethod method, int64 *budget, double ci_width,
		  uint32 seed, BloatRow *row)
{
	Relation	rel;
	BlockNumber nblocks;
	bool		btree;
	bool		toast_index = false;
	BloatMethod m = method;

	row->relid = t->relid;

	if (t->relkind == RELKIND_INDEX)
		toast_index = get_rel_namespace(t->relid) == PG_TOAST_NAMESPACE;
	row->kind = kind_name(t->relkind, toast_index);

	if (t->named)
	{
		/*
		 * The named relation is locked since collect_targets(); its TOAST
		 * table and indexes are opened (and locked) now, and one may have
		 * gone since they were listed (DROP INDEX CONCURRENTLY, REINDEX
		 * CONCURRENTLY).
		 */
		rel = try_relation_open(t->relid, AccessShareLock);
		if (rel == NULL)
		{
			row->method = method_names[method];
			appendStringInfoString(&row->note, "skipped: dropped meanwhile");
			return;
		}
	}
	else
	{
		if (!ConditionalLockRelationOid(t->relid, AccessShareLock))
		{
			row->method = method_names[method];
			row->size = (int64) t->relpages * BLCKSZ;
			appendStringInfoString(&row->note, "skipped: locked by another session");
			return;
		}
		rel = try_relation_open(t->relid, NoLock);
		if (rel == NULL)
		{
			UnlockRelationOid(t->relid, AccessShareLock);
			row->method = method_names[method];
			appendStringInfoString(&row->note, "skipped: dropped meanwhile");
			return;
		}
	}

	/*
	 * What the relation is now that it is locked: its pg_class row was read
	 * before, and an empty table may have become a view since (CREATE RULE
	 * "_RETURN").  Only a relation still of the kind that was listed, a kind
	 * with pages, is read.
	 */
	if (rel->rd_rel->relkind != t->relkind || !bloat_relkind_has_pages(t->relkind))
	{
		char		now = rel->rd_rel->relkind;

		if (t->named)
			refuse_relkind(RelationGetRelationName(rel), now, true);
		row->method = method_names[method];
		appendStringInfo(&row->note, "skipped: changed meanwhile (now a %s)", dbops_relkind_name(now));
		relation_close(rel, AccessShareLock);
		return;
	}
	btree = t->relkind == RELKIND_INDEX && rel->rd_rel->relam == BTREE_AM_OID;

	if (RELATION_IS_OTHER_TEMP(rel) ||
		(RecoveryInProgress() && rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED))
	{
		row->method = method_names[method];
		appendStringInfoString(&row->note, RELATION_IS_OTHER_TEMP(rel) ?
							   "skipped: temporary table of another session" :
							   "skipped: unlogged relation has no data on a standby");
		relation_close(rel, AccessShareLock);
		return;
	}

	nblocks = RelationGetNumberOfBlocks(rel);
	row->size = (int64) nblocks * BLCKSZ;

	if (t->relkind != RELKIND_INDEX && rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		row->method = method_names[method];
		appendStringInfo(&row->note, "table access method %s: no rewrite model, not estimated",
						 get_am_name(rel->rd_rel->relam));
		relation_close(rel, AccessShareLock);
		return;
	}

	if (m != BLOAT_STATS && t->relkind == RELKIND_INDEX && !btree)
	{
		appendStringInfo(&row->note, "%s index: pages are not read (the rewrite is modelled for btree only)",
						 get_am_name(rel->rd_rel->relam));
		m = BLOAT_STATS;
	}

	if (m != BLOAT_STATS && !can_read_pages(t->relid, t->relkind))
	{
		if (t->named && method != BLOAT_AUTO)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to read the pages of \"%s\"",
							RelationGetRelationName(rel)),
					 errhint("Method %s needs SELECT on the table or membership in pg_stat_scan_tables (pg_monitor has it); method stats does not.",
							 method_names[method])));
		appendStringInfoString(&row->note, "no privilege to read pages (needs SELECT or pg_stat_scan_tables): catalog estimate");
		m = BLOAT_STATS;
	}

	if (m == BLOAT_AUTO)
	{
		BlockNumber frame = btree ? (nblocks > 1 ? nblocks - 1 : 0) : nblocks;

		if (frame <= BLOAT_AUTO_EXACT_PAGES && (*budget < 0 || frame <= *budget))
			m = BLOAT_EXACT;
		else if (*budget < 0 || *budget >= BLOAT_MIN_SAMPLE)
			m = BLOAT_SAMPLE;
		else
		{
			appendStringInfo(&row->note, "page budget of the call spent (max_pages %lld): catalog estimate",
							 (long long) call_budget);
			m = BLOAT_STATS;
		}
	}
	else if (m == BLOAT_SAMPLE && *budget >= 0 && *budget < BLOAT_MIN_SAMPLE)
	{
		appendStringInfo(&row->note, "page budget of the call spent (max_pages %lld): catalog estimate",
						 (long long) call_budget);
		m = BLOAT_STATS;
	}

	if (m == BLOAT_STATS)
	{
		/* the caller fetches the catalog estimates in one query */
		row->method = "stats";
		row->needs_stats = true;
		row->nblocks = nblocks;
	}
	else
	{
		int64		cap;

		if (method == BLOAT_EXACT)
			cap = INT64_MAX;
		else
			cap = *budget < 0 ? nblocks : *budget;
		measure_relation(rel, btree, nblocks, cap, m == BLOAT_SAMPLE, ci_width, seed, row);
		if (*budget >= 0)
			*budget = Max(0, *budget - row->pages_read);
	}

	relation_close(rel, AccessShareLock);
}

PG_FUNCTION_INFO_V1(dbops_bloat);

/* the columns of dbops.bloat() */
#define BLOAT_COLS 13

Datum
dbops_bloat(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
	BloatMethod method;
	int64		budget;
	double		ci_width;
	uint32		seed;
	List	   *targets;
	ListCell   *lc;
	Oid		   *stats_oids;
	BloatRow   *rows;
	MemoryContext rowcxt;
	int			nstats = 0;
	int			ntargets;
	int			i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("method must not be NULL"),
				 errhint("Use one of stats, sample, exact or auto.")));
	method = parse_method(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_pages must not be NULL"),
				 errhint("Leave max_pages out to use dbops.bloat_max_pages.")));
	budget = PG_GETARG_INT64(2);
	if (budget < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_pages must not be negative"),
				 errhint("Give the number of pages the call may read; 0 reads none.")));

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ci_width must not be NULL"),
				 errhint("Give the target width of the 95%% interval in percentage points, e.g. 2.")));
	ci_width = PG_GETARG_FLOAT8(3);
	if (!(ci_width > 0) || isinf(ci_width))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ci_width must be a positive number of percentage points"),
				 errhint("Give the target width of the 95%% interval, e.g. 2.")));

	if (PG_ARGISNULL(4))
		seed = pg_prng_uint32(&pg_global_prng_state);
	else
		seed = (uint32) PG_GETARG_INT32(4);

	/* NULL means every relation; OID 0 is no relation at all */
	if (!PG_ARGISNULL(0) && !OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID 0 does not exist"),
				 errhint("Name a table, materialized view, TOAST table or index; leave relation out (NULL) to report on every relation.")));

	if (OidIsValid(relid))
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		char		relkind;

		if (!HeapTupleIsValid(tup))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", relid),
					 errhint("Check the name and call again; leave relation out to report on every relation.")));
		relkind = ((Form_pg_class) GETSTRUCT(tup))->relkind;
		ReleaseSysCache(tup);
		if (!bloat_relkind_has_pages(relkind))
		{
			char	   *relname = get_rel_name(relid);

			refuse_relkind(relname ? relname : psprintf("%u", relid), relkind, false);
		}
	}

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc, BLOAT_COLS);

	targets = collect_targets(relid);
	ntargets = list_length(targets);

	call_budget = budget;
	if (method == BLOAT_EXACT)
		budget = -1;

	/* what one relation needs is released before the next */
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dbops.bloat row",
								   ALLOCSET_DEFAULT_SIZES);
	rows = palloc0(sizeof(BloatRow) * Max(ntargets, 1));
	stats_oids = palloc(sizeof(Oid) * Max(ntargets, 1));
	i = 0;
	foreach(lc, targets)
	{
		BloatTarget *t = (BloatTarget *) lfirst(lc);
		MemoryContext oldcxt;

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&rows[i].note);
		MemoryContextReset(rowcxt);
		oldcxt = MemoryContextSwitchTo(rowcxt);
		bloat_one(t, method, &budget, ci_width, seed + i * 7919, &rows[i]);
		MemoryContextSwitchTo(oldcxt);
		if (rows[i].needs_stats)
			stats_oids[nstats++] = rows[i].relid;
		i++;
	}
	MemoryContextDelete(rowcxt);

	/* the catalog estimates, in one query */
	if (nstats > 0)
	{
		StatsEst   *est = fetch_stats(stats_oids, nstats);

		for (i = 0; i < ntargets; i++)
			if (rows[i].needs_stats)
				fill_from_stats(&rows[i], find_est(est, nstats, rows[i].relid),
								rows[i].nblocks);
	}

	for (i = 0; i < ntargets; i++)
	{
		BloatRow   *row = &rows[i];
		Datum		values[BLOAT_COLS];
		bool		nulls[BLOAT_COLS] = {0};

		values[0] = ObjectIdGetDatum(row->relid);
		values[1] = CStringGetTextDatum(row->kind);
		values[2] = CStringGetTextDatum(row->method);
		values[3] = Int64GetDatum(row->size);
		if (row->has_bloat)
		{
			values[4] = Int64GetDatum((int64) rint(row->bloat_bytes));
			if (row->size > 0)
				values[5] = DirectFunctionCall2(numeric_round,
												DirectFunctionCall1(float8_numeric,
																	Float8GetDatum(100.0 * row->bloat_bytes / row->size)),
												Int32GetDatum(1));
			else
				values[5] = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
		}
		else
			nulls[4] = nulls[5] = true;
		if (row->has_ci)
		{
			values[6] = DirectFunctionCall2(numeric_round,
											DirectFunctionCall1(float8_numeric, Float8GetDatum(row->ci_low)),
											Int32GetDatum(1));
			values[7] = DirectFunctionCall2(numeric_round,
											DirectFunctionCall1(float8_numeric, Float8GetDatum(row->ci_high)),
											Int32GetDatum(1));
		}
		else
			nulls[6] = nulls[7] = true;
		if (row->has_parts || row->live > 0)
			values[8] = Int64GetDatum((int64) rint(row->live));
		else
			nulls[8] = true;
		if (row->has_parts)
		{
			values[9] = Int64GetDatum((int64) rint(row->dead));
			values[10] = Int64GetDatum((int64) rint(row->free));
		}
		else
			nulls[9] = nulls[10] = true;
		values[11] = Int64GetDatum(row->pages_read);
		if (row->note.len > 0)
			values[12] = CStringGetTextDatum(row->note.data);
		else
			nulls[12] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Largest first, by pg_class.relpages. */
static int
target_size_cmp(const void *a, const void *b)
{
	const BloatTarget *ta = (const BloatTarget *) a;
	const BloatTarget *tb = (const BloatTarget *) b;

	if (ta->relpages != tb->relpages)
		return ta->relpages > tb->relpages ? -1 : 1;
	return ta->relid < tb->relid ? -1 : (ta->relid > tb->relid ? 1 : 0);
}

/*
 * Health check "bloat": the largest relations above a size floor, by
 * catalog statistics, are sampled within dbops.bloat_health_pages; the value
 * is the worst bloat_pct among them.  The detail names the worst ones and
 * says what was not covered.  SPI is connected by the engine.
 */
void
dbops_check_bloat(DbopsReport *report, DbopsCheckResult *res)
{
	MemoryContext outer = CurrentMemoryContext;
	int			ncand;
	int			nsampled = 0;
	int64		budget = dbops_bloat_health_pages;
	int64		pages_read = 0;
	double		worst = 0;
	double		skipped_pages = 0;
	int			nskipped = 0;
	StringInfoData worst_list;
	StringInfoData not_covered;
	BloatTarget *cands;
	const DbopsLargeRel *large;
	int			nlarge;

	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_STAT_SCAN_TABLES))
	{
		dbops_check_skip(res, "reading pages needs pg_stat_scan_tables (pg_monitor has it)");
		return;
	}

	/* the candidates, from the pg_class scan the report's checks share */
	nlarge = dbops_report_large_rels(report, &large);
	ncand = 0;
	cands = palloc0(sizeof(BloatTarget) * Max(nlarge, 1));
	for (int i = 0; i < nlarge; i++)
	{
		const DbopsLargeRel *lr = &large[i];

		if (lr->relid < FirstNormalObjectId ||
			(lr->relkind != RELKIND_RELATION && lr->relkind != RELKIND_MATVIEW &&
			 lr->relkind != RELKIND_TOASTVALUE && lr->relkind != RELKIND_INDEX) ||
			(lr->relkind == RELKIND_INDEX && lr->relam != BTREE_AM_OID))
			continue;
		cands[ncand].relid = lr->relid;
		cands[ncand].relkind = lr->relkind;
		cands[ncand].relam = lr->relam;
		cands[ncand].persistence = lr->relpersistence;
		cands[ncand].relpages = lr->relpages;
		ncand++;
	}
	qsort(cands, ncand, sizeof(BloatTarget), target_size_cmp);

	initStringInfo(&worst_list);
	initStringInfo(&not_covered);
	for (int r = 0; r < ncand; r++)
	{
		BloatRow	row;
		int64		share;

		CHECK_FOR_INTERRUPTS();
		if (nsampled >= BLOAT_HEALTH_MAX_RELS || budget < BLOAT_MIN_SAMPLE)
		{
			nskipped++;
			skipped_pages += cands[r].relpages;
			if (nskipped <= 3)
				appendStringInfo(&not_covered, "%s%s (%.0f MB)", nskipped > 1 ? ", " : "",
								 rel_name_or_oid(cands[r].relid),
								 cands[r].relpages * (double) BLCKSZ / (1024 * 1024));
			continue;
		}
		/* share what is left among the relations still to sample */
		share = budget / (Min(BLOAT_HEALTH_MAX_RELS, ncand) - nsampled);
		share = Max(share, BLOAT_MIN_SAMPLE);
		call_budget = dbops_bloat_health_pages;
		memset(&row, 0, sizeof(row));
		initStringInfo(&row.note);
		cands[r].named = false;
		bloat_one(&cands[r], BLOAT_SAMPLE, &share, 4.0, (uint32) cands[r].relid, &row);
		budget -= row.pages_read;
		pages_read += row.pages_read;
		nsampled++;
		if (row.has_bloat && row.size > 0)
		{
			double		pct = 100.0 * row.bloat_bytes / row.size;

			if (pct > worst)
				worst = pct;
			if (pct >= (isnan(res->warning) ? 0 : res->warning))
				appendStringInfo(&worst_list, "%s%s %.1f%% (%.0f of %.0f MB, 95%% CI %.1f..%.1f)",
								 worst_list.len ? ", " : "",
								 rel_name_or_oid(row.relid), pct,
								 row.bloat_bytes / (1024 * 1024), row.size / (1024.0 * 1024),
								 row.ci_low, row.ci_high);
		}
	}

	MemoryContextSwitchTo(outer);
	dbops_check_value(res, worst, "%");
	if (ncand == 0)
		appendStringInfo(&res->detail, "no table or btree index above %d MB",
						 BLOAT_HEALTH_FLOOR_PAGES * (BLCKSZ / 1024) / 1024);
	else
	{
		appendStringInfo(&res->detail, "sampled the %d largest of %d relations above %d MB (%lld pages read)",
						 nsampled, ncand, BLOAT_HEALTH_FLOOR_PAGES * (BLCKSZ / 1024) / 1024,
						 (long long) pages_read);
		if (worst_list.len > 0)
			appendStringInfo(&res->detail, "; above warning: %s", worst_list.data);
		if (nskipped > 0)
			appendStringInfo(&res->detail, "; not covered: %d relations (%.0f MB by catalog size), the largest %s",
							 nskipped, skipped_pages * BLCKSZ / (1024 * 1024), not_covered.data);
		appendStringInfoString(&res->detail, "; hash, GiST, GIN, BRIN and SP-GiST indexes and relations under the floor are not covered");
	}
	appendStringInfoString(&res->hint,
						   "Check with SELECT * FROM dbops.bloat('name'); rewrite with VACUUM FULL, REINDEX CONCURRENTLY or pg_repack.");
}

void
dbops_bloat_init(void)
{
	DefineCustomIntVariable("dbops.bloat_max_pages",
							"Pages one dbops.bloat() call may read (sample and auto).",
							"Relations left when the budget is spent get the catalog estimate, with a note.",
							&dbops_bloat_max_pages,
							20000, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.bloat_health_pages",
							"Pages the bloat health check may read.",
							NULL,
							&dbops_bloat_health_pages,
							250, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
}
