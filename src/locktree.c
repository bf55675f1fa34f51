/*-------------------------------------------------------------------------
 *
 * locktree.c
 *	  dbops.lock_tree(), dbops.cancel_blockers() and the lock_waits health
 *	  check: who blocks whom, from one snapshot of the lock manager.
 *
 * The snapshot is taken in one pass with every lock-manager partition lock
 * held in shared mode (in partition order, as GetLockStatusData() does),
 * which makes the wait queues, the PROCLOCKs and the lock-group links
 * mutually consistent: a PGPROC's waitLock and waitLockMode change only
 * under the partition lock of the awaited lock, and lockGroupLeader only
 * under the leader's partition lock, so no ProcArrayLock is needed.  Under those locks we only copy, into arrays sized
 * beforehand, what the trees need:
 *
 *	 - every waiting PGPROC: the lock it waits for, the mode and the start of
 *	   the wait;
 *	 - once per awaited lock: its tag, and for each PROCLOCK on it the holder
 *	   (its PGPROC, lock-group leader and pid), the modes it holds, the mode
 *	   it waits for on this lock and its position in the lock's wait queue.
 *
 * Fast-path locks need no look: a weak relation lock that conflicts with a
 * waiting strong request has been moved to the main table before the strong
 * locker went to sleep (FastPathTransferRelationLocks), and a fast-path
 * VXID lock likewise when somebody waits for it.
 *
 * The partition locks are released before anything else happens: the
 * blocking edges, the trees, the backend-status join and the catalog
 * lookups are all done in backend-local memory afterwards.
 *
 * Blocking follows pg_blocking_pids(): a session is blocked "hard" by one
 * that holds a lock mode conflicting with its request, and "soft" by one
 * that only stands ahead of it in the wait queue with a conflicting request.
 * Members of a lock group (parallel query) are folded into their leader.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/twophase.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "dbops.h"
#include "livestatus.h"

/* ----------------------------------------------------------------
 * The raw snapshot, filled under the partition locks
 * ----------------------------------------------------------------
 */

/* One PROCLOCK on an awaited lock */
typedef struct LtHolder
{
	int			procno;			/* the PROCLOCK's PGPROC */
	int			leaderno;		/* its lock-group leader (itself if none) */
	int			pid;			/* the leader's pid; 0 for a prepared xact */
	TransactionId xid;			/* the leader's xid (names prepared xacts) */
	LOCKMASK	holdMask;		/* modes held */
	LOCKMODE	waitMode;		/* mode awaited on this lock, or NoLock */
	int			queuepos;		/* position in the wait queue, or -1 */
} LtHolder;

/* One awaited lock */
typedef struct LtLock
{
	LOCKTAG		tag;
	int			first;			/* its holders: holders[first .. first+count) */
	int			count;
} LtLock;

/* One waiting PGPROC */
typedef struct LtWaiter
{
	int			procno;
	int			leaderno;
	int			pid;			/* the leader's pid */
	int			lockidx;		/* into locks[] */
	LOCKMODE	mode;
	TimestampTz waitStart;		/* 0 while the waiter is still going to sleep */
} LtWaiter;

typedef struct LtSnapshot
{
	int			nprocs;			/* PGPROCs, prepared xacts' dummies included */
	TimestampTz taken;			/* when the snapshot was taken */
	LtWaiter   *waiters;
	int			nwaiters;
	LtLock	   *locks;
	int			nlocks;
	LtHolder   *holders;
	int			nholders;		/* may exceed maxholders: then retry */
	int			maxholders;
	/* scratch space, allocated before taking the locks */
	int		   *qpos;			/* per procno: position in current queue */
	const LOCK **hkeys;			/* open-addressing set of awaited LOCKs */
	int		   *hvals;
	int			hsize;			/* power of two */
} LtSnapshot;

/* ----------------------------------------------------------------
 * The trees, built from the snapshot in local memory
 * ----------------------------------------------------------------
 */

/* An edge from a waiting session to one that blocks it */
typedef struct LtEdge
{
	int			blocker;		/* node index */
	bool		hard;
	int			lockidx;		/* the lock it is blocked on */
	LOCKMODE	blockmode;		/* mode held (hard) or awaited (soft) by the
								 * blocker that conflicts */
} LtEdge;

/* A session: a backend, a lock group folded into its leader, or a prepared xact */
typedef struct LtNode
{
	int			leaderno;
	int			pid;
	TransactionId xid;
	bool		waiting;		/* waits for a heavyweight lock */
	int			wait_lockidx;
	LOCKMODE	wait_mode;
	TimestampTz waitStart;
	LtEdge	   *edges;			/* whom it waits for */
	int			nedges;
	int			maxedges;
	int		   *waiters;		/* who waits for it directly */
	int			nwaiters;
	int			maxwaiters;
	int			parent;			/* tree parent (a chosen blocker), or -1 */
	int			parent_edge;	/* index into edges of the parent, or -1 */
	int		   *children;
	int			nchildren;
	int			blocked_count;	/* sessions waiting on it, transitively */
	TimestampTz oldest_wait;	/* earliest waitStart among those, or 0 */
	bool		is_root;		/* blocks, and waits for nobody */
	bool		visited;
} LtNode;

typedef struct LtTree
{
	LtSnapshot	snap;
	LtNode	   *nodes;
	int			nnodes;
	int		   *order;			/* nodes in output (depth-first) order */
	int		   *depth;			/* per node */
	int		   *root;			/* per node: root of its tree */
	int			norder;
} LtTree;

#define LT_INITIAL_HOLDERS_PER_PROC 4

static inline uint32
lt_hash_ptr(const void *p)
{
	uint64		v = (uint64) (uintptr_t) p;

	v ^= v >> 33;
	v *= UINT64CONST(0xff51afd7ed558ccd);
	v ^= v >> 33;
	return (uint32) v;
}

/*
 * Copy the awaited lock's PROCLOCKs and wait queue into the snapshot.
 * Called with all partition locks held: no allocation, no errors.
 */
static void
lt_copy_lock(LtSnapshot *snap, const LOCK *lock, LtLock *lt)
{
	PGPROC	   *allProcs = ProcGlobal->allProcs;
	int			pos;

	lt->tag = lock->tag;
	lt->first = snap->nholders;
	lt->count = 0;

	/* number the wait queue */
	pos = 0;
	DBOPS_FOREACH_WAITER(lock, proc)
		snap->qpos[proc - allProcs] = pos++;
	DBOPS_FOREACH_END

	/* the holders (and queued requesters) */
	DBOPS_FOREACH_PROCLOCK(lock, proclock)
	{
		PGPROC	   *proc = proclock->tag.myProc;
		PGPROC	   *leader = proclock->groupLeader;
		int			procno = proc - allProcs;

		if (snap->nholders < snap->maxholders)
		{
			LtHolder   *h = &snap->holders[snap->nholders];

			h->procno = procno;
			h->leaderno = leader - allProcs;
			h->pid = leader->pid;
			h->xid = leader->xid;
			h->holdMask = proclock->holdMask;
			h->waitMode = (proc->waitLock == lock) ? proc->waitLockMode : NoLock;
			h->queuepos = snap->qpos[procno];
		}
		snap->nholders++;
		lt->count++;
	}
	DBOPS_FOREACH_END

	/* reset the queue numbering for the next lock */
	DBOPS_FOREACH_WAITER(lock, proc)
		snap->qpos[proc - allProcs] = -1;
	DBOPS_FOREACH_END
}

/*
 * The pass under the partition locks.  Everything it writes was allocated
 * by the caller; if the holders array turns out too small it keeps counting
 * so that the caller can retry with the right size.
 */
static void
lt_snapshot_locked(LtSnapshot *snap)
{
	PGPROC	   *allProcs = ProcGlobal->allProcs;
	int			nprocs = snap->nprocs;
	uint32		mask = snap->hsize - 1;

	snap->nwaiters = 0;
	snap->nlocks = 0;
	snap->nholders = 0;

	for (int i = 0; i < NUM_LOCK_PARTITIONS; i++)
		LWLockAcquire(LockHashPartitionLockByIndex(i), LW_SHARED);

	snap->taken = GetCurrentTimestamp();

	for (int p = 0; p < nprocs; p++)
	{
		PGPROC	   *proc = &allProcs[p];
		LOCK	   *lock = proc->waitLock;
		PGPROC	   *leader;
		LtWaiter   *w;
		uint32		slot;

		if (lock == NULL)
			continue;

		/* find or add the awaited lock */
		slot = lt_hash_ptr(lock) & mask;
		while (snap->hkeys[slot] != NULL && snap->hkeys[slot] != lock)
			slot = (slot + 1) & mask;
		if (snap->hkeys[slot] == NULL)
		{
			snap->hkeys[slot] = lock;
			snap->hvals[slot] = snap->nlocks;
			lt_copy_lock(snap, lock, &snap->locks[snap->nlocks]);
			snap->nlocks++;
		}

		leader = proc->lockGroupLeader ? proc->lockGroupLeader : proc;
		w = &snap->waiters[snap->nwaiters++];
		w->procno = p;
		w->leaderno = leader - allProcs;
		w->pid = leader->pid;
		w->lockidx = snap->hvals[slot];
		w->mode = proc->waitLockMode;
		w->waitStart = (TimestampTz) pg_atomic_read_u64(&proc->waitStart);
	}

	for (int i = NUM_LOCK_PARTITIONS; --i >= 0;)
		LWLockRelease(LockHashPartitionLockByIndex(i));
}

/*
 * Take the snapshot: size the arrays, take the pass, retry with a larger
 * holders array if the first guess was too small.
 */
static void
lt_take_snapshot(LtSnapshot *snap)
{
	/* allProcCount leaves out the dummy PGPROCs of prepared transactions */
	int			nprocs = ProcGlobal->allProcCount + max_prepared_xacts;
	int			hsize = 16;

	while (hsize < 2 * nprocs)
		hsize <<= 1;

	memset(snap, 0, sizeof(LtSnapshot));
	snap->nprocs = nprocs;
	snap->waiters = palloc(sizeof(LtWaiter) * nprocs);
	snap->locks = palloc(sizeof(LtLock) * nprocs);
	snap->qpos = palloc(sizeof(int) * nprocs);
	snap->hsize = hsize;
	snap->hkeys = palloc(sizeof(LOCK *) * hsize);
	snap->hvals = palloc(sizeof(int) * hsize);
	snap->maxholders = Max(64, LT_INITIAL_HOLDERS_PER_PROC * nprocs);
	snap->holders = palloc(sizeof(LtHolder) * snap->maxholders);

	for (;;)
	{
		for (int i = 0; i < nprocs; i++)
			snap->qpos[i] = -1;
		memset(snap->hkeys, 0, sizeof(LOCK *) * hsize);

		lt_snapshot_locked(snap);

		if (snap->nholders <= snap->maxholders)
			break;

		CHECK_FOR_INTERRUPTS();
		/* too many PROCLOCKs on the awaited locks: retry with room to spare */
		snap->maxholders = snap->nholders + snap->nholders / 4 + 64;
		pfree(snap->holders);
		snap->holders = palloc(sizeof(LtHolder) * snap->maxholders);
	}
}

/* ----------------------------------------------------------------
 * Building the trees
 * ----------------------------------------------------------------
 */

static int
lt_node_for(LtTree *tree, int *node_of, int leaderno, int pid, TransactionId xid)
{
	LtNode	   *n;

	if (node_of[leaderno] >= 0)
		return node_of[leaderno];

	n = &tree->nodes[tree->nnodes];
	memset(n, 0, sizeof(LtNode));
	n->leaderno = leaderno;
	n->pid = pid;
	n->xid = (pid == 0) ? xid : InvalidTransactionId;
	n->wait_lockidx = -1;
	n->parent = -1;
	n->parent_edge = -1;
	node_of[leaderno] = tree->nnodes;
	return tree->nnodes++;
}

static void
lt_add_edge(LtTree *tree, int waiter, int blocker, bool hard, int lockidx,
			LOCKMODE blockmode)
{
	LtNode	   *w = &tree->nodes[waiter];
	LtNode	   *b = &tree->nodes[blocker];

	for (int i = 0; i < w->nedges; i++)
	{
		if (w->edges[i].blocker == blocker)
		{
			/* hard wins over soft */
			if (hard && !w->edges[i].hard)
			{
				w->edges[i].hard = true;
				w->edges[i].lockidx = lockidx;
				w->edges[i].blockmode = blockmode;
			}
			return;
		}
	}

	if (w->nedges == w->maxedges)
	{
		w->maxedges = Max(4, w->maxedges * 2);
		w->edges = w->edges ? repalloc(w->edges, sizeof(LtEdge) * w->maxedges)
			: palloc(sizeof(LtEdge) * w->maxedges);
	}
	w->edges[w->nedges].blocker = blocker;
	w->edges[w->nedges].hard = hard;
	w->edges[w->nedges].lockidx = lockidx;
	w->edges[w->nedges].blockmode = blockmode;
	w->nedges++;

	if (b->nwaiters == b->maxwaiters)
	{
		b->maxwaiters = Max(4, b->maxwaiters * 2);
		b->waiters = b->waiters ? repalloc(b->waiters, sizeof(int) * b->maxwaiters)
			: palloc(sizeof(int) * b->maxwaiters);
	}
	b->waiters[b->nwaiters++] = waiter;
}

/* highest lock mode in a mask */
static LOCKMODE
lt_strongest(LOCKMASK mask)
{
	for (LOCKMODE m = MAX_LOCKMODES - 1; m > NoLock; m--)
		if (mask & LOCKBIT_ON(m))
			return m;
	return NoLock;
}

static LtTree *lt_sort_tree;

/* children and roots: longest waiting first, then by pid */
static int
lt_child_cmp(const void *a, const void *b)
{
	const LtNode *na = &lt_sort_tree->nodes[*(const int *) a];
	const LtNode *nb = &lt_sort_tree->nodes[*(const int *) b];

	if (na->waitStart != nb->waitStart)
	{
		if (na->waitStart == 0)
			return 1;
		if (nb->waitStart == 0)
			return -1;
		return na->waitStart < nb->waitStart ? -1 : 1;
	}
	if (na->pid != nb->pid)
		return na->pid < nb->pid ? -1 : 1;
	return na->xid < nb->xid ? -1 : (na->xid > nb->xid ? 1 : 0);
}

/* roots: most sessions blocked first, then by pid */
static int
lt_root_cmp(const void *a, const void *b)
{
	const LtNode *na = &lt_sort_tree->nodes[*(const int *) a];
	const LtNode *nb = &lt_sort_tree->nodes[*(const int *) b];

	if (na->blocked_count != nb->blocked_count)
		return na->blocked_count > nb->blocked_count ? -1 : 1;
	if (na->pid != nb->pid)
		return na->pid < nb->pid ? -1 : 1;
	return na->xid < nb->xid ? -1 : (na->xid > nb->xid ? 1 : 0);
}

/* depth-first walk of the tree under start, appending to tree->order */
static void
lt_walk(LtTree *tree, int start, int *stack)
{
	int			sp = 0;

	tree->depth[start] = 0;
	tree->root[start] = start;
	stack[sp++] = start;
	while (sp > 0)
	{
		int			n = stack[--sp];
		LtNode	   *node = &tree->nodes[n];

		CHECK_FOR_INTERRUPTS();
		if (node->visited)
			continue;
		node->visited = true;
		tree->order[tree->norder++] = n;

		/* push children in reverse so that the first comes out first */
		for (int c = node->nchildren; --c >= 0;)
		{
			int			child = node->children[c];

			if (tree->nodes[child].visited)
				continue;		/* closes a cycle */
			tree->depth[child] = tree->depth[n] + 1;
			tree->root[child] = tree->root[n];
			stack[sp++] = child;
		}
	}
}

/*
 * Take a snapshot and build the trees: nodes, edges, tree parents, blocked
 * counts and the depth-first output order.
 */
static LtTree *
lt_build(void)
{
	LtTree	   *tree = palloc0(sizeof(LtTree));
	LtSnapshot *snap = &tree->snap;
	int		   *node_of;
	int		   *roots;
	int			nroots = 0;
	int		   *stack;
	int		   *mark;
	int		   *queue;
	int			maxnodes;

	lt_take_snapshot(snap);

	/* every node is a waiter or a holder on an awaited lock */
	maxnodes = snap->nwaiters + Min(snap->nholders, snap->maxholders);
	tree->nodes = palloc(sizeof(LtNode) * Max(maxnodes, 1));
	node_of = palloc(sizeof(int) * snap->nprocs);
	for (int i = 0; i < snap->nprocs; i++)
		node_of[i] = -1;

	/* the waiters */
	for (int i = 0; i < snap->nwaiters; i++)
	{
		LtWaiter   *w = &snap->waiters[i];
		int			n = lt_node_for(tree, node_of, w->leaderno, w->pid,
									InvalidTransactionId);
		LtNode	   *node = &tree->nodes[n];

		/* a lock group waits for the lock its first member started on */
		if (!node->waiting ||
			(w->waitStart != 0 &&
			 (node->waitStart == 0 || w->waitStart < node->waitStart)))
		{
			node->waiting = true;
			node->wait_lockidx = w->lockidx;
			node->wait_mode = w->mode;
			node->waitStart = w->waitStart;
		}
	}

	/* the edges, as pg_blocking_pids() sees them */
	for (int i = 0; i < snap->nwaiters; i++)
	{
		LtWaiter   *w = &snap->waiters[i];
		LtLock	   *lk = &snap->locks[w->lockidx];
		LtHolder   *hs = &snap->holders[lk->first];
		LockMethod	method = GetLockTagsMethodTable(&lk->tag);
		LOCKMASK	conflict = method->conflictTab[w->mode];
		int			wnode = node_of[w->leaderno];
		int			wpos = -1;

		CHECK_FOR_INTERRUPTS();

		for (int j = 0; j < lk->count; j++)
			if (hs[j].procno == w->procno)
				wpos = hs[j].queuepos;

		for (int j = 0; j < lk->count; j++)
		{
			LtHolder   *h = &hs[j];
			int			bnode;

			if (h->procno == w->procno || h->leaderno == w->leaderno)
				continue;		/* nobody blocks himself or his lock group */

			if (h->holdMask & conflict)
			{
				bnode = lt_node_for(tree, node_of, h->leaderno, h->pid, h->xid);
				lt_add_edge(tree, wnode, bnode, true, w->lockidx,
							lt_strongest(h->holdMask & conflict));
			}
			else if (h->waitMode != NoLock &&
					 (conflict & LOCKBIT_ON(h->waitMode)) &&
					 h->queuepos >= 0 && (wpos < 0 || h->queuepos < wpos))
			{
				bnode = lt_node_for(tree, node_of, h->leaderno, h->pid, h->xid);
				lt_add_edge(tree, wnode, bnode, false, w->lockidx, h->waitMode);
			}
		}
	}

	/*
	 * Tree parent: the first session holding a conflicting lock, else the
	 * first one queued ahead.
	 */
	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];

		for (int e = 0; e < node->nedges; e++)
		{
			if (node->edges[e].hard)
			{
				node->parent_edge = e;
				break;
			}
		}
		if (node->parent_edge < 0 && node->nedges > 0)
			node->parent_edge = 0;
		if (node->parent_edge >= 0)
			node->parent = node->edges[node->parent_edge].blocker;
		node->is_root = (node->nedges == 0 && node->nwaiters > 0);
	}

	/* children lists */
	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];

		if (node->parent >= 0)
			tree->nodes[node->parent].nchildren++;
	}
	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];

		node->children = node->nchildren > 0 ? palloc(sizeof(int) * node->nchildren) : NULL;
		node->nchildren = 0;
	}
	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];

		if (node->parent >= 0)
		{
			LtNode	   *p = &tree->nodes[node->parent];

			p->children[p->nchildren++] = n;
		}
	}

	/*
	 * blocked_count: every session that waits, directly or not, for this
	 * one (a breadth-first search over the reversed edges), and the oldest
	 * wait among them.
	 */
	mark = palloc(sizeof(int) * Max(tree->nnodes, 1));
	queue = palloc(sizeof(int) * Max(tree->nnodes, 1));
	for (int n = 0; n < tree->nnodes; n++)
		mark[n] = -1;
	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];
		int			head = 0,
					tail = 0;

		if (node->nwaiters == 0)
			continue;
		CHECK_FOR_INTERRUPTS();
		mark[n] = n;
		queue[tail++] = n;
		while (head < tail)
		{
			LtNode	   *cur = &tree->nodes[queue[head++]];

			for (int k = 0; k < cur->nwaiters; k++)
			{
				int			wn = cur->waiters[k];
				LtNode	   *wnode = &tree->nodes[wn];

				if (mark[wn] == n)
					continue;
				mark[wn] = n;
				queue[tail++] = wn;
				node->blocked_count++;
				if (wnode->waitStart != 0 &&
					(node->oldest_wait == 0 || wnode->waitStart < node->oldest_wait))
					node->oldest_wait = wnode->waitStart;
			}
		}
	}

	/* output order */
	lt_sort_tree = tree;
	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];

		if (node->nchildren > 1)
			qsort(node->children, node->nchildren, sizeof(int), lt_child_cmp);
	}
	roots = palloc(sizeof(int) * Max(tree->nnodes, 1));
	for (int n = 0; n < tree->nnodes; n++)
		if (tree->nodes[n].nedges == 0)
			roots[nroots++] = n;
	qsort(roots, nroots, sizeof(int), lt_root_cmp);
	lt_sort_tree = NULL;

	tree->order = palloc(sizeof(int) * Max(tree->nnodes, 1));
	tree->depth = palloc(sizeof(int) * Max(tree->nnodes, 1));
	tree->root = palloc(sizeof(int) * Max(tree->nnodes, 1));
	stack = palloc(sizeof(int) * Max(tree->nnodes, 1));

	for (int r = 0; r < nroots; r++)
		lt_walk(tree, roots[r], stack);

	/*
	 * What is left hangs in or below a wait cycle.  Follow the tree parents
	 * from each unvisited node until one repeats: that one is on the cycle,
	 * and becomes the top of the cycle's tree.
	 */
	for (int n = 0; n < tree->nnodes; n++)
	{
		int			cur = n;
		int			stamp = -2 - n;

		if (tree->nodes[n].visited)
			continue;
		while (mark[cur] != stamp)
		{
			mark[cur] = stamp;
			cur = tree->nodes[cur].parent;
		}
		lt_walk(tree, cur, stack);
	}

	pfree(stack);
	pfree(queue);
	pfree(mark);
	pfree(roots);
	pfree(node_of);
	return tree;
}

/* ----------------------------------------------------------------
 * Per-session information from the backend status array
 * ----------------------------------------------------------------
 */

/*
 * The live backend status entry of a node's session, read when its row is
 * built (livestatus.c), rather than pgstat's copy of every slot: only the
 * sessions in the trees are read.  The buffers hold the strings; NULL if
 * there is no such backend (gone, or a prepared transaction).
 */
typedef struct LtStatusBuf
{
	PgBackendStatus st;
	char		appname[NAMEDATALEN];
	char	   *activity;		/* pgstat_track_activity_query_size bytes */
} LtStatusBuf;

static void
lt_status_init(LtStatusBuf *buf)
{
	buf->activity = palloc(pgstat_track_activity_query_size);
}

static PgBackendStatus *
lt_read_status(LtTree *tree, int n, LtStatusBuf *buf)
{
	LtNode	   *node = &tree->nodes[n];

	if (node->pid <= 0)
		return NULL;
	if (!dbops_read_backend_status(node->pid, &ProcGlobal->allProcs[node->leaderno],
								   &buf->st, buf->appname, buf->activity))
		return NULL;
	return &buf->st;
}

/* client address as pg_stat_activity shows it; false for none (Unix socket) */
static bool
lt_client_addr(PgBackendStatus *be, Datum *result)
{
	char		host[NI_MAXHOST];

	if (!dbops_client_addr(&be->st_clientaddr, host, sizeof(host)))
		return false;
	*result = DirectFunctionCall1(inet_in, CStringGetDatum(host));
	return true;
}

/* A prepared transaction, as pg_prepared_xacts shows it. */
typedef struct LtPrepared
{
	TransactionId xid;
	char	   *gid;
	TimestampTz prepared;
	char	   *owner;
	char	   *database;
} LtPrepared;

static LtPrepared *
lt_prepared_xacts(int *n)
{
	MemoryContext outer = CurrentMemoryContext;
	LtPrepared *result = NULL;
	int			ret;

	*n = 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute("SELECT transaction, gid, prepared, owner, database "
					  "FROM pg_catalog.pg_prepared_xacts", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_prepared_xacts: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		result = MemoryContextAllocZero(outer, sizeof(LtPrepared) * SPI_processed);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		d;
			char	   *s;
			MemoryContext spicxt;

			d = SPI_getbinval(tup, desc, 1, &isnull);
			result[i].xid = isnull ? InvalidTransactionId : DatumGetTransactionId(d);
			d = SPI_getbinval(tup, desc, 3, &isnull);
			result[i].prepared = isnull ? 0 : DatumGetTimestampTz(d);

			spicxt = MemoryContextSwitchTo(outer);
			s = SPI_getvalue(tup, desc, 2);
			result[i].gid = s ? pstrdup(s) : NULL;
			s = SPI_getvalue(tup, desc, 4);
			result[i].owner = s ? pstrdup(s) : NULL;
			s = SPI_getvalue(tup, desc, 5);
			result[i].database = s ? pstrdup(s) : NULL;
			MemoryContextSwitchTo(spicxt);
		}
		*n = (int) SPI_processed;
	}
	SPI_finish();
	return result;
}

static LtPrepared *
lt_find_prepared(LtPrepared *prep, int n, TransactionId xid)
{
	for (int i = 0; i < n; i++)
		if (prep[i].xid == xid)
			return &prep[i];
	return NULL;
}

/* may the caller see what this role's sessions do (pg_stat_activity's rule)? */
static bool
lt_can_see(Oid role)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) ||
		has_privs_of_role(GetUserId(), role);
}

static Datum
lt_interval(TimestampTz from, TimestampTz to)
{
	return DirectFunctionCall2(timestamp_mi, TimestampTzGetDatum(to),
							   TimestampTzGetDatum(from));
}

/* small caches for the names of roles and databases */
typedef struct LtNameCache
{
	Oid			oid;
	Datum		name;
	bool		isnull;
} LtNameCache;

static Datum
lt_cached_name(LtNameCache *cache, int *ncache, int maxcache, Oid oid,
			   bool isrole, bool *isnull, MemoryContext cachecxt)
{
	char	   *s;
	Datum		d;
	MemoryContext old;

	for (int i = 0; i < *ncache; i++)
	{
		if (cache[i].oid == oid)
		{
			*isnull = cache[i].isnull;
			return cache[i].name;
		}
	}
	old = MemoryContextSwitchTo(cachecxt);
	s = !OidIsValid(oid) ? NULL :
		isrole ? GetUserNameFromId(oid, true) : get_database_name(oid);
	*isnull = (s == NULL);
	d = s ? DirectFunctionCall1(namein, CStringGetDatum(s)) : (Datum) 0;
	MemoryContextSwitchTo(old);
	if (*ncache < maxcache)
	{
		cache[*ncache].oid = oid;
		cache[*ncache].name = d;
		cache[*ncache].isnull = *isnull;
		(*ncache)++;
	}
	return d;
}

/* The lock a row describes: what it waits for, or else what it blocks on. */
static bool
lt_row_lock(LtTree *tree, int n, int *lockidx, LOCKMODE *mode, bool *hard)
{
	LtNode	   *node = &tree->nodes[n];

	*hard = false;
	if (node->parent_edge >= 0)
	{
		LtEdge	   *e = &node->edges[node->parent_edge];

		*hard = e->hard;
	}
	if (node->waiting)
	{
		*lockidx = node->wait_lockidx;
		*mode = node->wait_mode;
		return true;
	}
	if (node->nwaiters > 0)
	{
		/* the mode it holds (or awaits) that blocks its first waiter */
		LtNode	   *w = &tree->nodes[node->waiters[0]];

		for (int e = 0; e < w->nedges; e++)
		{
			if (w->edges[e].blocker == n)
			{
				*lockidx = w->edges[e].lockidx;
				*mode = w->edges[e].blockmode;
				return true;
			}
		}
	}
	return false;
}

/* ----------------------------------------------------------------
 * dbops.lock_tree()
 * ----------------------------------------------------------------
 */

/*
 * A one-dimensional int[] of n pids, built in place (construct_array()'s
 * general path costs more than the rest of the row); empty as '{}'.
 */
static Datum
lt_int4_array(const int32 *vals, int n)
{
	Size		nbytes;
	ArrayType  *a;

	if (n == 0)
		return PointerGetDatum(construct_empty_array(INT4OID));
	nbytes = ARR_OVERHEAD_NONULLS(1) + sizeof(int32) * n;
	a = (ArrayType *) palloc(nbytes);
	SET_VARSIZE(a, nbytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = INT4OID;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	memcpy(ARR_DATA_PTR(a), vals, sizeof(int32) * n);
	return PointerGetDatum(a);
}

#define LT_NCOLS 19

PG_FUNCTION_INFO_V1(dbops_lock_tree);

Datum
dbops_lock_tree(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt;
	MemoryContext rowcxt;
	MemoryContext oldcxt;
	LtTree	   *tree;
	LtStatusBuf statusbuf;
	LtPrepared *prep = NULL;
	int			nprep = 0;
	bool		need_prepared = false;
	bool		read_all;
	int32	   *pids;
	LtNameCache users[16];
	LtNameCache dbs[16];
	int			nusers = 0;
	int			ndbs = 0;

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc, LT_NCOLS);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "dbops lock tree",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	tree = lt_build();
	if (tree->nnodes == 0)
	{
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(cxt);
		return (Datum) 0;
	}

	lt_status_init(&statusbuf);
	for (int n = 0; n < tree->nnodes; n++)
		if (tree->nodes[n].pid == 0)
			need_prepared = true;
	if (need_prepared)
		prep = lt_prepared_xacts(&nprep);

	read_all = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	/* a path or a blocked_by list has at most one entry per node */
	pids = palloc(sizeof(int32) * tree->nnodes);

	/* what one row allocates is released once the tuplestore has it */
	rowcxt = AllocSetContextCreate(cxt, "dbops lock tree row",
								   ALLOCSET_DEFAULT_SIZES);

	for (int o = 0; o < tree->norder; o++)
	{
		int			n = tree->order[o];
		LtNode	   *node = &tree->nodes[n];
		LtNode	   *root = &tree->nodes[tree->root[n]];
		Datum		values[LT_NCOLS];
		bool		nulls[LT_NCOLS];
		int			depth = tree->depth[n];
		int			lockidx;
		LOCKMODE	mode;
		bool		hard;
		PgBackendStatus *be;
		LtPrepared *px = NULL;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(rowcxt);
		memset(nulls, 0, sizeof(nulls));

		values[0] = Int32GetDatum(node->pid);
		values[1] = Int32GetDatum(root->pid);
		values[2] = Int32GetDatum(depth);

		/* path: walk the tree parents up to the root */
		{
			int			cur = n;

			for (int d = depth; d >= 0; d--)
			{
				pids[d] = tree->nodes[cur].pid;
				cur = tree->nodes[cur].parent;
			}
			values[3] = lt_int4_array(pids, depth + 1);
		}

		for (int e = 0; e < node->nedges; e++)
			pids[e] = tree->nodes[node->edges[e].blocker].pid;
		values[4] = lt_int4_array(pids, node->nedges);

		if (lt_row_lock(tree, n, &lockidx, &mode, &hard))
		{
			LOCKTAG    *tag = &tree->snap.locks[lockidx].tag;

			if (node->parent_edge >= 0)
				values[5] = CStringGetTextDatum(hard ? "hard" : "soft");
			else
				nulls[5] = true;
			values[6] = CStringGetTextDatum(GetLockNameFromTagType(tag->locktag_type));
			values[7] = CStringGetTextDatum(GetLockmodeName(tag->locktag_lockmethodid, mode));
			/* a relation of another database cannot be named from here */
			if ((tag->locktag_type == LOCKTAG_RELATION ||
				 tag->locktag_type == LOCKTAG_RELATION_EXTEND ||
				 tag->locktag_type == LOCKTAG_PAGE ||
				 tag->locktag_type == LOCKTAG_TUPLE) &&
				(tag->locktag_field1 == MyDatabaseId || tag->locktag_field1 == InvalidOid))
				values[8] = ObjectIdGetDatum(tag->locktag_field2);
			else
				nulls[8] = true;
		}
		else
		{
			if (node->parent_edge >= 0)
				values[5] = CStringGetTextDatum(hard ? "hard" : "soft");
			else
				nulls[5] = true;
			nulls[6] = nulls[7] = nulls[8] = true;
		}

		if (node->waiting && node->waitStart != 0)
			values[9] = lt_interval(node->waitStart, tree->snap.taken);
		else
			nulls[9] = true;

		values[17] = Int32GetDatum(node->blocked_count);

		be = lt_read_status(tree, n, &statusbuf);
		if (node->pid == 0)
			px = lt_find_prepared(prep, nprep, node->xid);

		if (px != NULL)
		{
			/* a prepared transaction: no backend, its gid as the query */
			if (px->prepared != 0)
				values[10] = lt_interval(px->prepared, tree->snap.taken);
			else
				nulls[10] = true;
			values[11] = CStringGetTextDatum("prepared");
			nulls[12] = true;
			if (px->owner)
				values[13] = DirectFunctionCall1(namein, CStringGetDatum(px->owner));
			else
				nulls[13] = true;
			if (px->database)
				values[14] = DirectFunctionCall1(namein, CStringGetDatum(px->database));
			else
				nulls[14] = true;
			nulls[15] = nulls[16] = true;
			values[18] = CStringGetTextDatum(psprintf("prepared transaction %s",
													  quote_literal_cstr(px->gid ? px->gid : "")));
		}
		else if (node->pid == 0)
		{
			/* prepared transaction that finished since the snapshot */
			values[11] = CStringGetTextDatum("prepared");
			for (int c = 12; c <= 16; c++)
				nulls[c] = true;
			nulls[10] = true;
			values[18] = CStringGetTextDatum(psprintf("prepared transaction (xid %u)", node->xid));
		}
		else if (be == NULL)
		{
			/* gone since the snapshot, or not a backend we can see */
			for (int c = 10; c <= 16; c++)
				nulls[c] = true;
			nulls[18] = true;
		}
		else
		{
			bool		isnull;
			bool		visible = read_all || be->st_userid == GetUserId() ||
				has_privs_of_role(GetUserId(), be->st_userid);

			values[13] = lt_cached_name(users, &nusers, lengthof(users),
										be->st_userid, true, &isnull, cxt);
			nulls[13] = isnull;
			values[14] = lt_cached_name(dbs, &ndbs, lengthof(dbs),
										be->st_databaseid, false, &isnull, cxt);
			nulls[14] = isnull;
			if (be->st_appname)
				values[15] = CStringGetTextDatum(be->st_appname);
			else
				nulls[15] = true;

			if (visible)
			{
				const char *state = dbops_backend_state_name(be->st_state);
				PGPROC	   *proc;
				const char *wait_event = NULL;

				if (be->st_xact_start_timestamp != 0)
					values[10] = lt_interval(be->st_xact_start_timestamp, tree->snap.taken);
				else
					nulls[10] = true;
				if (state)
					values[11] = CStringGetTextDatum(state);
				else
					nulls[11] = true;
				/* the PGPROC is known: no need to search the ProcArray */
				proc = &ProcGlobal->allProcs[node->leaderno];
				if (proc->pid == node->pid)
					wait_event = pgstat_get_wait_event(*((volatile uint32 *) &proc->wait_event_info));
				if (wait_event)
					values[12] = CStringGetTextDatum(wait_event);
				else
					nulls[12] = true;
				if (!lt_client_addr(be, &values[16]))
					nulls[16] = true;
				values[18] = dbops_activity_text(be->st_activity_raw);
			}
			else
			{
				nulls[10] = nulls[11] = nulls[12] = nulls[16] = true;
				values[18] = CStringGetTextDatum("<insufficient privilege>");
			}
		}

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(cxt);
		MemoryContextReset(rowcxt);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * dbops.cancel_blockers()
 * ----------------------------------------------------------------
 */

#define CB_NCOLS 9

PG_FUNCTION_INFO_V1(dbops_cancel_blockers);

Datum
dbops_cancel_blockers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Interval   *min_wait;
	bool		terminate;
	bool		dry_run;
	int64		min_usecs;
	MemoryContext cxt;
	MemoryContext oldcxt;
	LtTree	   *tree;
	LtStatusBuf statusbuf;
	LtPrepared *prep = NULL;
	int			nprep = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("min_wait, terminate and dry_run must not be null"),
				 errhint("Leave an argument out to use its default.")));
	min_wait = PG_GETARG_INTERVAL_P(0);
	terminate = PG_GETARG_BOOL(1);
	dry_run = PG_GETARG_BOOL(2);
	if (!dbops_interval_usecs(min_wait, &min_usecs))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("min_wait is out of range"),
				 errhint("Give an interval of less than 290000 years, e.g. '30 seconds'.")));
	if (min_usecs <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_wait must be a positive interval"),
				 errhint("Give how long blocked sessions must have waited, e.g. '30 seconds'.")));

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc, CB_NCOLS);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "dbops cancel blockers",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	tree = lt_build();
	lt_status_init(&statusbuf);
	for (int n = 0; n < tree->nnodes; n++)
	{
		if (tree->nodes[n].pid == 0 && tree->nodes[n].is_root)
		{
			prep = lt_prepared_xacts(&nprep);
			break;
		}
	}

	for (int o = 0; o < tree->norder; o++)
	{
		int			n = tree->order[o];
		LtNode	   *node = &tree->nodes[n];
		Datum		values[CB_NCOLS];
		bool		nulls[CB_NCOLS];
		PgBackendStatus *be;
		const char *action = terminate ? "terminate" : "cancel";
		bool		done = false;
		char	   *detail = NULL;

		CHECK_FOR_INTERRUPTS();

		/* only real roots whose waiters have waited long enough */
		if (!node->is_root || node->oldest_wait == 0 ||
			tree->snap.taken - node->oldest_wait < min_usecs)
			continue;

		memset(nulls, 0, sizeof(nulls));
		be = lt_read_status(tree, n, &statusbuf);

		if (node->pid == 0)
		{
			LtPrepared *px = lt_find_prepared(prep, nprep, node->xid);

			action = "skip";
			detail = psprintf("prepared transaction %s cannot be signalled: end it with COMMIT PREPARED or ROLLBACK PREPARED",
							  quote_literal_cstr(px && px->gid ? px->gid : "?"));
		}
		else if (node->pid == MyProcPid)
		{
			action = "skip";
			detail = pstrdup("this is the calling session");
		}
		else
		{
			PGPROC	   *proc = BackendPidGetProc(node->pid);

			if (proc == NULL)
			{
				action = "skip";
				detail = pstrdup("not a backend that can be signalled (an auxiliary process such as the startup process, or gone)");
			}
			else if ((!OidIsValid(proc->roleId) || superuser_arg(proc->roleId)) &&
					 !superuser())
			{
				action = "skip";
				detail = pstrdup("permission denied: only superusers may signal this session");
			}
			else if (!has_privs_of_role(GetUserId(), proc->roleId) &&
					 !has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND))
			{
				action = "skip";
				detail = pstrdup("permission denied: needs the privileges of the session's role or of pg_signal_backend");
			}
			else if (!terminate && be != NULL &&
					 (be->st_state == STATE_IDLEINTRANSACTION ||
					  be->st_state == STATE_IDLEINTRANSACTION_ABORTED))
			{
				action = "skip";
				detail = pstrdup("idle in transaction: a cancel would not release its locks; use terminate => true");
			}
			else if (dry_run)
				detail = pstrdup("dry run");
			else
			{
#ifdef HAVE_SETSID
				if (kill(-node->pid, terminate ? SIGTERM : SIGINT) == 0)
#else
				if (kill(node->pid, terminate ? SIGTERM : SIGINT) == 0)
#endif
				{
					done = true;
					detail = psprintf("%s signal sent", terminate ? "terminate" : "cancel");
				}
				else
					detail = psprintf("could not send signal: %m");
			}
		}

		values[0] = Int32GetDatum(node->pid);
		values[1] = CStringGetTextDatum(action);
		values[2] = BoolGetDatum(done);
		values[3] = Int32GetDatum(node->blocked_count);
		values[4] = lt_interval(node->oldest_wait, tree->snap.taken);
		if (be != NULL)
		{
			char	   *name = GetUserNameFromId(be->st_userid, true);
			const char *state = dbops_backend_state_name(be->st_state);

			if (name)
				values[5] = DirectFunctionCall1(namein, CStringGetDatum(name));
			else
				nulls[5] = true;
			if (lt_can_see(be->st_userid) && state)
				values[6] = CStringGetTextDatum(state);
			else
				nulls[6] = true;
			if (lt_can_see(be->st_userid))
				values[7] = dbops_activity_text(be->st_activity_raw);
			else
				values[7] = CStringGetTextDatum("<insufficient privilege>");
		}
		else if (node->pid == 0)
		{
			LtPrepared *px = lt_find_prepared(prep, nprep, node->xid);

			if (px && px->owner)
				values[5] = DirectFunctionCall1(namein, CStringGetDatum(px->owner));
			else
				nulls[5] = true;
			values[6] = CStringGetTextDatum("prepared");
			if (px && px->gid)
				values[7] = CStringGetTextDatum(psprintf("prepared transaction %s",
														 quote_literal_cstr(px->gid)));
			else
				nulls[7] = true;
		}
		else
		{
			nulls[5] = nulls[6] = nulls[7] = true;
		}
		values[8] = CStringGetTextDatum(detail);

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* ----------------------------------------------------------------
 * Health check lock_waits
 * ----------------------------------------------------------------
 */

/*
 * lock_waits: the longest current wait for a heavyweight lock, in seconds;
 * the detail counts the waiting sessions and names the root that blocks
 * the most of them.
 */
void
dbops_check_lock_waits(DbopsReport *report, DbopsCheckResult *res)
{
	LtTree	   *tree = lt_build();
	int			nwaiting = 0;
	TimestampTz oldest = 0;
	int			oldest_pid = 0;
	int			worst_root = -1;

	for (int n = 0; n < tree->nnodes; n++)
	{
		LtNode	   *node = &tree->nodes[n];

		if (node->waiting)
		{
			nwaiting++;
			if (node->waitStart != 0 && (oldest == 0 || node->waitStart < oldest))
			{
				oldest = node->waitStart;
				oldest_pid = node->pid;
			}
		}
		if (node->is_root &&
			(worst_root < 0 || node->blocked_count > tree->nodes[worst_root].blocked_count))
			worst_root = n;
	}

	dbops_check_value(res, oldest != 0 ? (tree->snap.taken - oldest) / 1000000.0 : 0.0, "s");
	if (nwaiting == 0)
		appendStringInfoString(&res->detail, "no session waits for a lock");
	else
	{
		appendStringInfo(&res->detail, "%d session%s waiting for locks",
						 nwaiting, nwaiting == 1 ? "" : "s");
		if (oldest != 0)
			appendStringInfo(&res->detail, "; longest wait %.1f s (pid %d)",
							 (tree->snap.taken - oldest) / 1000000.0, oldest_pid);
		if (worst_root >= 0)
		{
			LtNode	   *r = &tree->nodes[worst_root];

			if (r->pid == 0)
				appendStringInfo(&res->detail, "; root blocking the most: prepared transaction (xid %u), %d blocked",
								 r->xid, r->blocked_count);
			else
				appendStringInfo(&res->detail, "; root blocking the most: pid %d, %d blocked",
								 r->pid, r->blocked_count);
		}
	}
	appendStringInfoString(&res->hint,
						   "See SELECT * FROM dbops.lock_tree(); end the root sessions with dbops.cancel_blockers().");
}
