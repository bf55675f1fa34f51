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
#include "access/xlogrecord.h"
#include "access/xlogrecovery.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/lmgr.h"
#include "storage/sinval.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

/*
 * sequences: the highest share (percent) of its range a sequence has used,
 * where the range ends at the sequence's own limit or at the limit of the
 * integer column that owns it (serial or identity), whichever comes first.
 * Cycling sequences never run out and are left out.
 *
 * The value of a sequence is read from its page through the buffer manager,
 * under a short-lived AccessShareLock, without building a relcache entry
 * for it; the owning column's type is looked up only for the sequences
 * whose value could rank among the worst if that column were the narrowest
 * integer type.
 *
 * When dbops is preloaded, each reading is kept in shared memory, and a
 * later report uses it instead of reading the page again while it proves
 * the sequence still below the lowest threshold (see reading_still_below()).
 * With 50,000 sequences, most of whose pages are no longer in shared
 * buffers, reading them all costs hundreds of milliseconds; checking the
 * readings costs a hash lookup each.
 */
#define SEQ_PAGE_MAGIC	0x1717	/* as sequence.c stamps its pages */

/*
 * nextval() WAL-logs SEQ_LOG_VALS values beyond those it hands out, as
 * sequence.c does; see reading_still_below().
 */
#define SEQ_LOG_VALS	32

typedef struct SeqInfo
{
	Oid			relid;
	Oid			relnamespace;
	Oid			relfilenode;
	int64		last_value;
	int64		log_cnt;
	bool		is_called;
	bool		cycle;
	int64		seqmin;
	int64		seqmax;
	int64		seqincrement;
	int64		seqcache;
	double		pct;			/* used, of the range we know so far */
	double		bound_pct;		/* upper bound of pct over column types */
	int64		limit;			/* the limit pct refers to */
	bool		exact;
	bool		owner_known;	/* the owning column was looked up */
	bool		kept;			/* from a reading kept in shared memory */
	bool		unlogged;		/* no reading of it is kept */
	bool		lookup;			/* look up the owning column */
	Oid			ownrel;
	int32		owncol;
	Oid			owntype;
} SeqInfo;

/*
 * A reading kept in shared memory: what a report read of a sequence, where
 * the WAL was then, and when: a later report may use it for share (0.5 to
 * 1, at random, to spread the next reads over time) of
 * dbops.sequence_reread_interval.
 */
typedef struct SeqReadingKey
{
	Oid			dbid;
	Oid			relid;
} SeqReadingKey;

typedef struct SeqReading
{
	SeqReadingKey key;
	Oid			relfilenode;	/* the storage read; a rewrite changes it */
	bool		is_called;
	bool		cycle;
	bool		owner_known;
	int64		last_value;
	int64		log_cnt;
	int64		seqmin;
	int64		seqmax;
	int64		seqincrement;
	int64		seqcache;
	int64		limit;			/* the column's limit, if owner_known */
	Oid			ownrel;
	int32		owncol;
	Oid			owntype;
	XLogRecPtr	lsn;			/* WAL position before the page was read */
	TimestampTz taken;			/* when */
	float		share;			/* used for this share of the interval */
} SeqReading;

static int	seq_readings_max = 65536;
static int	seq_reread_interval = 600;
static LWLock *seq_readings_lock = NULL;
static HTAB *seq_readings = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* lookups and stores per hold of the readings' lock */
#define READINGS_BATCH 1024

static void
seq_readings_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(hash_estimate_size(seq_readings_max, sizeof(SeqReading)));
	RequestNamedLWLockTranche("dbops_sequence_readings", 1);
}

static void
seq_readings_shmem_startup(void)
{
	HASHCTL		ctl;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	seq_readings_lock = &(GetNamedLWLockTranche("dbops_sequence_readings"))->lock;
	ctl.keysize = sizeof(SeqReadingKey);
	ctl.entrysize = sizeof(SeqReading);
	seq_readings = ShmemInitHash("dbops sequence readings",
								 seq_readings_max, seq_readings_max,
								 &ctl, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

void
dbops_sequences_init(void)
{
	DefineCustomIntVariable("dbops.sequence_reread_interval",
							"Longest time the sequences check uses a kept reading of a sequence instead of its page.",
							"Each reading is used for a random time between half this and this; 0 reads every sequence in every report.",
							&seq_reread_interval,
							600, 0, 86400,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	/* the readings live in shared memory, which needs preloading */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("dbops.sequence_readings",
							"Number of sequence readings the sequences check keeps in shared memory.",
							"Sequences beyond this number are read in every report; 0 keeps none.",
							&seq_readings_max,
							65536, 0, 10000000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	if (seq_readings_max == 0)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = seq_readings_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = seq_readings_shmem_startup;
}

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

/* Where the WAL is: written on a primary, replayed on a standby. */
static XLogRecPtr
wal_position(void)
{
	return RecoveryInProgress() ? GetXLogReplayRecPtr(NULL) : GetXLogInsertRecPtr();
}

/*
 * The share of its range (percent) a sequence can have used at most, records
 * WAL records after a reading of last_value and log_cnt; see
 * reading_still_below().  Without owner_known, the range is the one a
 * smallint column would leave, the narrowest.
 */
static double
reach_pct(bool owner_known, int64 limit, int64 last_value, int64 log_cnt,
		  int64 seqmin, int64 seqmax, int64 seqincrement, int64 seqcache,
		  double records)
{
	/* how far the value can be from the reading's, in either direction */
	double		reach = ((double) log_cnt + records * ((double) seqcache + SEQ_LOG_VALS)) *
		fabs((double) seqincrement);
	int64		lo = seqmin;
	int64		hi = seqmax;

	if (owner_known)
	{
		if (seqincrement > 0)
			hi = Min(hi, limit);
		else
			lo = Max(lo, limit);
	}
	else
	{
		hi = Min(hi, PG_INT16_MAX);
		lo = Max(lo, PG_INT16_MIN);
	}
	if (seqincrement > 0)
		return hi > seqmin ?
			100.0 * ((double) last_value + reach - (double) seqmin) / ((double) hi - (double) seqmin) : 100.0;
	return seqmax > lo ?
		100.0 * ((double) seqmax - ((double) last_value - reach)) / ((double) seqmax - (double) lo) : 100.0;
}

/*
 * Whether a kept reading proves the sequence still below threshold (percent)
 * at WAL position now, without reading its page.
 *
 * Proof.  The reading matches the sequence's current relfilenode (the
 * caller checks): every ALTER SEQUENCE that changes how the sequence counts
 * (AS, INCREMENT, MINVALUE, MAXVALUE, START, RESTART, CACHE, CYCLE), and
 * TRUNCATE ... RESTART IDENTITY, give the sequence a new relfilenode, so
 * its definition is the one read with it.  On that storage only nextval()
 * and setval() change the value, and on a standby only WAL replay:
 *   - nextval() WAL-logs the state SEQ_LOG_VALS values beyond those it
 *     hands out, and hands out values without WAL only up to what is
 *     logged: the page's last_value + log_cnt * increment, the ceiling.  To
 *     go past the ceiling it writes a WAL record whose logged value is at
 *     most (cache + SEQ_LOG_VALS) * |increment| beyond the page's value,
 *     which is within the ceiling; so each WAL record raises the ceiling by
 *     at most that step.
 *   - Every WAL record takes at least MAXALIGN(SizeOfXLogRecord) bytes of
 *     WAL, so between the position read before the page and now at most
 *     (now - then) / MAXALIGN(SizeOfXLogRecord) + 1 records were written
 *     (or replayed).
 * Hence the value now is within ceiling + records * step, and if that is
 * below the threshold, so is the sequence; where the owning column was not
 * looked up, the range is the one a smallint column would leave, the
 * narrowest.  setval() is the exception: it moves the value anywhere in one
 * record.  Nothing shows a setval() without reading the page, so a reading
 * is used for at most dbops.sequence_reread_interval after it was taken:
 * that is how long a setval() (or an OWNED BY moving the sequence to a
 * narrower column) can go unseen.  A new relfilenode with the OID of a
 * sequence dropped since would need the OID counter to wrap around within
 * that time, and PostgreSQL does not reuse a dropped relation's
 * relfilenode before the next checkpoint.  Unlogged sequences
 * write no WAL and are always read.
 */
static bool
reading_still_below(const SeqReading *r, XLogRecPtr now, double threshold)
{
	double		records;

	if (now < r->lsn || isnan(threshold))
		return false;
	records = (double) ((now - r->lsn) / MAXALIGN(SizeOfXLogRecord)) + 1;
	/* a margin far above the rounding of these doubles */
	return reach_pct(r->owner_known, r->limit, r->last_value, r->log_cnt,
					 r->seqmin, r->seqmax, r->seqincrement, r->seqcache,
					 records) < threshold - 1e-6;
}

/* Read last_value, log_cnt and is_called of a sequence from its page. */
static bool
read_sequence_page(DbopsRelScan *scan, DbopsRelInfo *ri, SeqInfo *s,
				   BufferAccessStrategy strategy)
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

	s->relfilenode = relfilenode;
	buf = ReadBufferWithoutRelcache(rfile, MAIN_FORKNUM, 0, RBM_NORMAL, strategy,
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
		s->log_cnt = seq->log_cnt;
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

/* Whether a reading's time is up (with the interval as it is now). */
static bool
reading_expired(const SeqReading *r, TimestampTz now)
{
	return now >= r->taken + (TimestampTz) (r->share * seq_reread_interval * USECS_PER_SEC);
}

/*
 * Remove the readings whose time is up; with the readings' lock held
 * exclusively.  Bounded by dbops.sequence_readings.
 */
static void
prune_readings(TimestampTz now)
{
	HASH_SEQ_STATUS hs;
	SeqReading *r;

	hash_seq_init(&hs, seq_readings);
	while ((r = hash_seq_search(&hs)) != NULL)
		if (reading_expired(r, now))
			hash_search(seq_readings, &r->key, HASH_REMOVE, NULL);
}

/*
 * Keep the readings this report took (lsn: the WAL position before them);
 * with owners_only, only those whose owning column was looked up since.
 */
static void
keep_readings(SeqInfo *seqs, int nseqs, XLogRecPtr lsn, bool owners_only)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		pruned = false;
	int			i = 0;

	while (i < nseqs)
	{
		int			stop = Min(i + READINGS_BATCH, nseqs);

		LWLockAcquire(seq_readings_lock, LW_EXCLUSIVE);
		for (; i < stop; i++)
		{
			SeqInfo    *s = &seqs[i];
			SeqReadingKey key;
			SeqReading *r;
			bool		found;

			if (s->kept || s->unlogged || !OidIsValid(s->relfilenode) ||
				(owners_only && !s->owner_known))
				continue;
			key.dbid = MyDatabaseId;
			key.relid = s->relid;
			r = hash_search(seq_readings, &key, HASH_FIND, NULL);
			if (r == NULL && hash_get_num_entries(seq_readings) >= seq_readings_max)
			{
				if (pruned)
					continue;
				prune_readings(now);
				pruned = true;
				if (hash_get_num_entries(seq_readings) >= seq_readings_max)
					continue;
			}
			if (r == NULL)
				r = hash_search(seq_readings, &key, HASH_ENTER, &found);
			r->relfilenode = s->relfilenode;
			r->is_called = s->is_called;
			r->cycle = s->cycle;
			r->owner_known = s->owner_known;
			r->last_value = s->last_value;
			r->log_cnt = s->log_cnt;
			r->seqmin = s->seqmin;
			r->seqmax = s->seqmax;
			r->seqincrement = s->seqincrement;
			r->seqcache = s->seqcache;
			r->limit = s->limit;
			r->ownrel = s->ownrel;
			r->owncol = s->owncol;
			r->owntype = s->owntype;
			r->lsn = lsn;
			r->taken = now;
			r->share = 0.5 + 0.5 * pg_prng_double(&pg_global_prng_state);
		}
		LWLockRelease(seq_readings_lock);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Take the sequences whose kept readings prove them below threshold from
 * those readings; returns how many.
 */
static int
use_readings(SeqInfo *seqs, int nseqs, double threshold)
{
	XLogRecPtr	walnow = wal_position();
	TimestampTz now = GetCurrentTimestamp();
	int			nkept = 0;
	int			i = 0;

	while (i < nseqs)
	{
		int			stop = Min(i + READINGS_BATCH, nseqs);

		LWLockAcquire(seq_readings_lock, LW_SHARED);
		for (; i < stop; i++)
		{
			SeqInfo    *s = &seqs[i];
			SeqReadingKey key;
			SeqReading *r;

			key.dbid = MyDatabaseId;
			key.relid = s->relid;
			r = hash_search(seq_readings, &key, HASH_FIND, NULL);
			if (r == NULL || r->relfilenode != s->relfilenode || reading_expired(r, now) ||
				!(r->cycle || reading_still_below(r, walnow, threshold)))
				continue;
			s->is_called = r->is_called;
			s->cycle = r->cycle;
			s->owner_known = r->owner_known;
			s->last_value = r->last_value;
			s->log_cnt = r->log_cnt;
			s->seqmin = r->seqmin;
			s->seqmax = r->seqmax;
			s->seqincrement = r->seqincrement;
			s->seqcache = r->seqcache;
			s->limit = r->limit;
			s->ownrel = r->ownrel;
			s->owncol = r->owncol;
			s->owntype = r->owntype;
			s->kept = true;
			nkept++;
		}
		LWLockRelease(seq_readings_lock);
		CHECK_FOR_INTERRUPTS();
	}
	return nkept;
}

/*
 * The pg_sequence row of every sequence to read, sorted by OID: below this
 * many, one syscache lookup each; from it on, one heap scan of pg_sequence.
 */
#define SEQDEF_SCAN_MIN 1024

static Form_pg_sequence
sequence_definitions(SeqInfo *seqs, int nseqs, int nread, int *ndefs)
{
	Form_pg_sequence defs;
	int			n = 0;

	if (nread < SEQDEF_SCAN_MIN)
	{
		defs = palloc(sizeof(FormData_pg_sequence) * Max(nread, 1));
		for (int i = 0; i < nseqs; i++)
		{
			HeapTuple	tup;

			if (seqs[i].kept)
				continue;
			tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqs[i].relid));
			if (!HeapTupleIsValid(tup))
				continue;		/* dropped since our pg_class scan */
			defs[n++] = *(Form_pg_sequence) GETSTRUCT(tup);
			ReleaseSysCache(tup);
		}
	}
	else
	{
		Relation	seqrel;
		TableScanDesc hscan;
		HeapTuple	tup;
		int			maxdefs = 1024;

		defs = palloc(sizeof(FormData_pg_sequence) * maxdefs);
		seqrel = table_open(SequenceRelationId, AccessShareLock);
		hscan = table_beginscan_catalog(seqrel, 0, NULL);
		while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
		{
			if (n == maxdefs)
			{
				maxdefs *= 2;
				defs = repalloc_huge(defs, sizeof(FormData_pg_sequence) * maxdefs);
			}
			defs[n++] = *(Form_pg_sequence) GETSTRUCT(tup);
		}
		table_endscan(hscan);
		table_close(seqrel, AccessShareLock);
	}
	if (n > 1)
		qsort(defs, n, sizeof(FormData_pg_sequence), seqdef_cmp);
	*ndefs = n;
	return defs;
}

void
dbops_check_sequences(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan;
	Form_pg_sequence defs = NULL;
	int			ndefs = 0;
	SeqInfo    *seqs;
	int		   *relidx;
	int			nseqs = 0;
	int			nall = 0;
	int			nhidden = 0;
	int			ncycle = 0;
	int			nkept = 0;
	int			nread = 0;
	int			ncounted = 0;
	bool		privileged = dbops_can_read_all_stats();
	DbopsTopN	top = {0};
	double		lowest;
	int			ncand = 0;
	int			nunresolved = 0;
	HTAB	   *owners = NULL;
	XLogRecPtr	readlsn = InvalidXLogRecPtr;
	bool		use_kept;

	scan = dbops_report_relscan(report);
	lowest = res->warning;
	if (isnan(lowest) || (!isnan(res->critical) && res->critical < lowest))
		lowest = res->critical;
	use_kept = seq_readings != NULL && seq_reread_interval > 0 && !isnan(lowest);

	/* the sequences this role may read */
	for (int i = 0; i < scan->nrels; i++)
		if (scan->rels[i].relkind == RELKIND_SEQUENCE)
			nall++;
	seqs = palloc(sizeof(SeqInfo) * Max(nall, 1));
	relidx = palloc(sizeof(int) * Max(nall, 1));
	for (int i = 0; i < scan->nrels; i++)
	{
		DbopsRelInfo *ri = &scan->rels[i];
		SeqInfo    *s;

		if (ri->relkind != RELKIND_SEQUENCE)
			continue;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
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
		memset(s, 0, sizeof(SeqInfo));
		s->relid = ri->relid;
		s->relnamespace = ri->relnamespace;
		s->relfilenode = ri->relfilenode;
		/* unlogged sequences write no WAL: no reading of theirs proves anything */
		s->unlogged = ri->relpersistence != RELPERSISTENCE_PERMANENT;
		relidx[nseqs++] = i;
	}
	if (nhidden > 0)
	{
		dbops_check_skip_all_stats(res, psprintf("%d of %d sequences cannot be read by this role (reading them all needs the privileges of pg_read_all_stats, or SELECT on each)",
												 nhidden, nhidden + nseqs));
		return;
	}

	/* the kept readings that prove their sequence below the lowest threshold */
	if (use_kept)
		nkept = use_readings(seqs, nseqs, lowest);
	nread = nseqs - nkept;

	/* the others, from their pages */
	if (nread > 0)
	{
		BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);

		int			kept_upto = 0;

		defs = sequence_definitions(seqs, nseqs, nread, &ndefs);
		readlsn = wal_position();
		for (int i = 0; i < nseqs; i++)
		{
			SeqInfo    *s = &seqs[i];
			DbopsRelInfo *ri = &scan->rels[relidx[i]];
			Form_pg_sequence d;

			/*
			 * Keep what was read as it is read: a report cut short by
			 * dbops.health_check_timeout still spares the next one those
			 * pages.
			 */
			if (use_kept && i - kept_upto >= READINGS_BATCH)
			{
				keep_readings(seqs + kept_upto, i - kept_upto, readlsn, false);
				kept_upto = i;
			}
			if (s->kept)
				continue;
			CHECK_FOR_INTERRUPTS();
			d = ndefs > 0 ? bsearch(&s->relid, defs, ndefs, sizeof(FormData_pg_sequence), seqdef_cmp) : NULL;
			s->seqmin = d ? d->seqmin : 0;
			s->seqmax = d ? d->seqmax : 0;
			s->seqincrement = d ? d->seqincrement : 0;
			s->seqcache = d ? d->seqcache : 0;
			s->cycle = d ? d->seqcycle : false;
			/* gone since our pg_class scan; cycling sequences are not read */
			if (d == NULL || (!s->cycle && !read_sequence_page(scan, ri, s, strategy)))
			{
				s->relfilenode = InvalidOid;
				continue;
			}
		}
		FreeAccessStrategy(strategy);
		if (use_kept)
			keep_readings(seqs + kept_upto, nseqs - kept_upto, readlsn, false);
	}

	/* what the value rests on, of every sequence counted */
	{
		for (int i = 0; i < nseqs; i++)
		{
			SeqInfo    *s = &seqs[i];
			int64		lo;
			int64		hi;

			if (!OidIsValid(s->relfilenode))
				continue;		/* gone */
			if (s->cycle)
			{
				ncycle++;
				continue;		/* not counted */
			}
			s->limit = s->owner_known ? s->limit : (s->seqincrement > 0 ? s->seqmax : s->seqmin);
			lo = s->seqmin;
			hi = s->seqmax;
			if (s->owner_known && s->seqincrement > 0)
				hi = s->limit;
			else if (s->owner_known)
				lo = s->limit;
			s->pct = seq_used_pct(s, lo, hi);
			/* the narrowest integer column could own a sequence wider than int2 */
			if (!s->owner_known &&
				((s->seqincrement > 0 && s->seqmax > PG_INT16_MAX) ||
				 (s->seqincrement < 0 && s->seqmin < PG_INT16_MIN)))
			{
				s->bound_pct = seq_used_pct(s, Max(s->seqmin, PG_INT16_MIN), Min(s->seqmax, PG_INT16_MAX));
				s->exact = false;
			}
			else
			{
				s->bound_pct = s->pct;
				s->exact = true;
			}
		}
	}

	/*
	 * The column that owns a sequence matters only when its type could end
	 * the range before the sequence's own limit, and only for the sequences
	 * that could then reach the lowest threshold.  For all the others, even a
	 * smallint column would leave them below it: that proves their status
	 * without looking the column up (their value is then the share of their
	 * own range, a lower bound).  A kept reading is used only when it proves
	 * this (reading_still_below()), so only sequences read now can need it.
	 * The column is looked up too for a sequence read now whose reading
	 * could not prove it with the narrowest column even one WAL record later
	 * (a large increment): else it would be read in every report.
	 */
	for (int i = 0; i < nseqs; i++)
	{
		SeqInfo    *s = &seqs[i];

		if (s->exact || s->cycle || !OidIsValid(s->relfilenode))
			continue;
		if (!isnan(lowest) &&
			(s->bound_pct >= lowest ||
			 (use_kept && !s->kept &&
			  reach_pct(false, 0, s->last_value, s->log_cnt, s->seqmin, s->seqmax,
						s->seqincrement, s->seqcache, 1) >= lowest - 1e-6)))
		{
			s->lookup = true;
			ncand++;
		}
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

		if (!s->lookup)
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
		s->owner_known = true;
		s->exact = true;
	}
	/* the owning columns looked up, for the next reports */
	if (use_kept && nread > 0)
		keep_readings(seqs, nseqs, readlsn, true);

	/* the sequences counted: neither gone nor cycling */
	nkept = 0;
	ncounted = 0;
	for (int i = 0; i < nseqs; i++)
	{
		if (seqs[i].cycle || !OidIsValid(seqs[i].relfilenode))
			continue;
		ncounted++;
		nkept += seqs[i].kept;
		dbops_topn_add(&top, seqs[i].pct, i);
	}

	dbops_check_value(res, dbops_rounded(top.n > 0 ? top.score[0] : 0, 4), "%");
	if (ncounted == 0)
	{
		appendStringInfo(&res->detail, "no sequence in this database%s",
						 ncycle > 0 ? " that does not cycle" : "");
		return;
	}
	appendStringInfo(&res->detail, "%d sequence(s)", ncounted);
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
	if (nkept > 0)
		appendStringInfo(&res->detail, "; %d sequence(s) not read again: their last reading and the WAL written since keep them below %g%% (a setval() shows at their next reading, within dbops.sequence_reread_interval)",
						 nkept, lowest);
	appendStringInfoString(&res->hint,
						   "Before the sequence runs out, move the column (and the sequence: ALTER SEQUENCE ... AS bigint) to bigint; for a sequence limited by its own MAXVALUE, raise it.");
}
