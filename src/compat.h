/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  The differences between the PostgreSQL versions dbops builds against
 *	  (15, 16, 17 and 18), in one place: each capability's file uses the
 *	  names below and has no #if PG_VERSION_NUM of its own.  16 is compiled
 *	  through the same branches as 17 where they agree.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DBOPS_COMPAT_H
#define DBOPS_COMPAT_H

#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/backend_status.h"

/*
 * A function that does not return: 18 replaced pg_attribute_noreturn(),
 * written after the declarator, by pg_noreturn, written before it.  The
 * attribute works in front with the compilers PostgreSQL supports.
 */
#if PG_VERSION_NUM >= 180000
#define DBOPS_NORETURN pg_noreturn
#else
#define DBOPS_NORETURN pg_attribute_noreturn()
#endif

/*
 * Fetch the cache line at address p ahead of its use, where the compiler
 * can (GCC and Clang); a no-op elsewhere.  Not a version difference: a
 * compiler one, kept here with the others.
 */
#if defined(__GNUC__) || defined(__clang__)
#define DBOPS_PREFETCH(p) __builtin_prefetch(p)
#else
#define DBOPS_PREFETCH(p) ((void) (p))
#endif

/* The backend status of the idx'th session (1-based) of pgstat's copy. */
#if PG_VERSION_NUM >= 160000
#define dbops_local_beentry(idx) pgstat_get_local_beentry_by_index(idx)
#else
#define dbops_local_beentry(idx) pgstat_fetch_stat_local_beentry(idx)
#endif

/* Connection slots closed to ordinary roles. */
#if PG_VERSION_NUM >= 160000
#define DBOPS_RESERVED_CONNECTIONS (SuperuserReservedConnections + ReservedConnections)
#else
#define DBOPS_RESERVED_CONNECTIONS ReservedBackends
#endif

/* Cumulative statistics of a table (PgStat_StatTabEntry). */
#if PG_VERSION_NUM >= 160000
#define DBOPS_TAB_LIVE_TUPLES(t)		((t)->live_tuples)
#define DBOPS_TAB_DEAD_TUPLES(t)		((t)->dead_tuples)
#define DBOPS_TAB_LAST_VACUUM(t)		((t)->last_vacuum_time)
#define DBOPS_TAB_LAST_AUTOVACUUM(t)	((t)->last_autovacuum_time)
#define DBOPS_TAB_MOD_SINCE_ANALYZE(t)	((t)->mod_since_analyze)
#define DBOPS_TAB_LAST_ANALYZE(t)		((t)->last_analyze_time)
#define DBOPS_TAB_LAST_AUTOANALYZE(t)	((t)->last_autoanalyze_time)
#else
#define DBOPS_TAB_LIVE_TUPLES(t)		((t)->n_live_tuples)
#define DBOPS_TAB_DEAD_TUPLES(t)		((t)->n_dead_tuples)
#define DBOPS_TAB_LAST_VACUUM(t)		((t)->vacuum_timestamp)
#define DBOPS_TAB_LAST_AUTOVACUUM(t)	((t)->autovac_vacuum_timestamp)
#define DBOPS_TAB_MOD_SINCE_ANALYZE(t)	((t)->changes_since_analyze)
#define DBOPS_TAB_LAST_ANALYZE(t)		((t)->analyze_timestamp)
#define DBOPS_TAB_LAST_AUTOANALYZE(t)	((t)->autovac_analyze_timestamp)
#endif

/* A generated column of a parsed ADD COLUMN that is stored (18: or virtual). */
#if PG_VERSION_NUM >= 180000
#define DBOPS_CONSTR_GENERATED_STORED(c)	((c)->generated_kind == ATTRIBUTE_GENERATED_STORED)
#else
#define DBOPS_CONSTR_GENERATED_STORED(c)	true
#endif

/* Checkpoints of the checkpointer's statistics (PgStat_CheckpointerStats). */
#if PG_VERSION_NUM >= 170000
#define DBOPS_CHECKPOINTS_TIMED(cp)		((cp)->num_timed)
#define DBOPS_CHECKPOINTS_REQUESTED(cp) ((cp)->num_requested)
#else
#define DBOPS_CHECKPOINTS_TIMED(cp)		((cp)->timed_checkpoints)
#define DBOPS_CHECKPOINTS_REQUESTED(cp) ((cp)->requested_checkpoints)
#endif

/*
 * Since when a replication slot has been inactive, as an expression over
 * pg_catalog.pg_replication_slots: its inactive_since column is new in 17;
 * before, PostgreSQL does not know.
 */
#if PG_VERSION_NUM >= 170000
#define DBOPS_SLOT_INACTIVE_SINCE "inactive_since"
#else
#define DBOPS_SLOT_INACTIVE_SINCE "NULL::pg_catalog.timestamptz"
#endif

/*
 * The live backend status array: its number of slots, and the slot of a
 * PGPROC (-1 if it has none).  Up to 16 the array holds the regular
 * backends by BackendId, then one slot per auxiliary process type; since 17
 * it is indexed by ProcNumber.
 */
#if PG_VERSION_NUM >= 170000
#define DBOPS_BACKEND_STATUS_SLOTS (MaxBackends + NUM_AUXILIARY_PROCS)
#define dbops_proc_status_slot(proc) GetNumberFromPGProc(proc)
#else
#define DBOPS_BACKEND_STATUS_SLOTS (MaxBackends + NUM_AUXPROCTYPES)
static inline int
dbops_proc_status_slot(const PGPROC *proc)
{
	int			backendId = *((volatile const BackendId *) &proc->backendId);

	return (backendId >= 1 && backendId <= MaxBackends) ? backendId - 1 : -1;
}
#endif

/*
 * The physical file of a relation, for ReadBufferWithoutRelcache(): 16
 * renamed RelFileNode (spcNode, dbNode, relNode) to RelFileLocator (spcOid,
 * dbOid, relNumber).
 */
#if PG_VERSION_NUM >= 160000
typedef RelFileLocator DbopsRelFile;
#define DBOPS_RELFILE_SET(f, spc, db, rel) \
	((f).spcOid = (spc), (f).dbOid = (db), (f).relNumber = (rel))
#else
typedef RelFileNode DbopsRelFile;
#define DBOPS_RELFILE_SET(f, spc, db, rel) \
	((f).spcNode = (spc), (f).dbNode = (db), (f).relNode = (rel))
#endif

/*
 * The path of a relation's main fork, for stat(): 18's relpathperm()
 * returns a struct holding the path instead of a palloc'd string.  Use it
 * within one expression.
 */
#if PG_VERSION_NUM >= 180000
#define DBOPS_RELPATH_MAIN(f) (relpathperm((f), MAIN_FORKNUM).str)
#else
#define DBOPS_RELPATH_MAIN(f) relpathperm((f), MAIN_FORKNUM)
#endif

/*
 * Walking a lock's wait queue and its PROCLOCKs (under its partition lock):
 * 16 turned both SHM_QUEUEs into dlists.  DBOPS_FOREACH_WAITER(lock, proc)
 * and DBOPS_FOREACH_PROCLOCK(lock, proclock) open a block in which the
 * named variable is each element in turn; DBOPS_FOREACH_END closes it.
 */
#if PG_VERSION_NUM >= 160000
#define DBOPS_FOREACH_WAITER(lock, proc) \
	{ \
		dlist_iter	dbops_iter_; \
		dclist_foreach(dbops_iter_, (dclist_head *) &(lock)->waitProcs) \
		{ \
			PGPROC	   *proc = dlist_container(PGPROC, links, dbops_iter_.cur);
#define DBOPS_FOREACH_PROCLOCK(lock, proclock) \
	{ \
		dlist_iter	dbops_iter_; \
		dlist_foreach(dbops_iter_, (dlist_head *) &(lock)->procLocks) \
		{ \
			PROCLOCK   *proclock = dlist_container(PROCLOCK, lockLink, dbops_iter_.cur);
#else
#define DBOPS_FOREACH_WAITER(lock, proc) \
	{ \
		const PROC_QUEUE *dbops_queue_ = &(lock)->waitProcs; \
		PGPROC	   *dbops_next_ = (PGPROC *) dbops_queue_->links.next; \
		for (int dbops_i_ = 0; dbops_i_ < dbops_queue_->size; dbops_i_++) \
		{ \
			PGPROC	   *proc = dbops_next_; \
			dbops_next_ = (PGPROC *) proc->links.next;
#define DBOPS_FOREACH_PROCLOCK(lock, proclock) \
	{ \
		PROCLOCK   *dbops_next_ = (PROCLOCK *) \
			SHMQueueNext(&(lock)->procLocks, &(lock)->procLocks, offsetof(PROCLOCK, lockLink)); \
		for (; dbops_next_ != NULL; ) \
		{ \
			PROCLOCK   *proclock = dbops_next_; \
			dbops_next_ = (PROCLOCK *) \
				SHMQueueNext(&(lock)->procLocks, &proclock->lockLink, offsetof(PROCLOCK, lockLink));
#endif
#define DBOPS_FOREACH_END } }

#endif							/* DBOPS_COMPAT_H */
