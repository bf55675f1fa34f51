/*-------------------------------------------------------------------------
 *
 * health_horizon.c
 *	  The xmin_horizon check of dbops.health(): the oldest transaction ID
 *	  that keeps vacuum from removing dead rows, across what PostgreSQL
 *	  counts in its horizons (ComputeXidHorizons()): the xid and xmin of
 *	  every process (pg_stat_activity's backend_xid and backend_xmin, from
 *	  the ProcArray; a WAL sender's xmin is its standby's
 *	  hot_standby_feedback, pg_stat_replication.backend_xmin), the xmin and
 *	  catalog_xmin of replication slots, and prepared transactions.  Lazy
 *	  VACUUM and logical decoding processes are left out, as PostgreSQL
 *	  leaves them out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netdb.h>

#include "access/transam.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/walreceiver.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"
#include "livestatus.h"

typedef enum HolderKind
{
	HOLDER_PROCESS,				/* a session or another process */
	HOLDER_STANDBY,				/* a WAL sender: its standby's feedback */
	HOLDER_SLOT,
	HOLDER_PREPARED
} HolderKind;

/* One thing that holds the horizon back, by the oldest xid it holds. */
typedef struct Holder
{
	HolderKind	kind;
	TransactionId xid;
	const char *what;			/* which of its xids that is */
	int			index;			/* backend status entry (1-based) or row */
} Holder;

/* slots' columns */
#define SLOT_NAME		1
#define SLOT_TYPE		2
#define SLOT_ACTIVE		3
#define SLOT_PID		4
#define SLOT_XMIN		5
#define SLOT_CATALOG	6
#define SLOT_INACTIVE	7

/* prepared transactions' columns */
#define PREP_GID		1
#define PREP_OWNER		2
#define PREP_DATABASE	3
#define PREP_XID		4
#define PREP_AT			5

/* The holder's oldest: the older of two xids (either may be invalid). */
static TransactionId
older_xid(TransactionId a, TransactionId b)
{
	if (!TransactionIdIsNormal(a))
		return b;
	if (!TransactionIdIsNormal(b))
		return a;
	return TransactionIdPrecedes(b, a) ? b : a;
}

/* age() of xid, as of next: how many transactions it is behind */
static int64
transactions_behind(TransactionId next, TransactionId xid)
{
	return Max((int32) (next - xid), 0);
}

static void
add_holder(Holder **holders, int *n, int *alloc, HolderKind kind,
		   TransactionId xid, const char *what, int index)
{
	if (*n == *alloc)
	{
		*alloc *= 2;
		*holders = repalloc(*holders, sizeof(Holder) * *alloc);
	}
	(*holders)[*n].kind = kind;
	(*holders)[*n].xid = xid;
	(*holders)[*n].what = what;
	(*holders)[*n].index = index;
	(*n)++;
}

/*
 * The pids of the processes whose xmin PostgreSQL's horizons leave out: a
 * lazy VACUUM and logical decoding (whose slot holds what it needs).  Only
 * the flags are read under ProcArrayLock, into memory taken before.
 */
static int
collect_ignored_pids(int **pids)
{
	int			n = 0;
	uint32		nprocs = ProcGlobal->allProcCount;

	*pids = palloc(sizeof(int) * Max(nprocs, 1));
	LWLockAcquire(ProcArrayLock, LW_SHARED);
	for (uint32 i = 0; i < nprocs; i++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[i];

		if (proc->pid != 0 &&
			(proc->statusFlags & (PROC_IN_VACUUM | PROC_IN_LOGICAL_DECODING)) != 0)
			(*pids)[n++] = proc->pid;
	}
	LWLockRelease(ProcArrayLock);
	return n;
}

/*
 * The processes of pgstat's copy of the backend status array that hold an
 * xid or xmin (ProcArray's, as pg_stat_activity shows them), other than
 * ours and those PostgreSQL's horizons leave out: with own_xid those whose
 * oldest is their own xid, else those whose oldest is their snapshot's xmin.
 */
static void
add_processes(Holder **holders, int *n, int *alloc, const int *ignored, int nignored,
			  bool own_xid)
{
	int			nbackends = pgstat_fetch_stat_numbackends();

	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = dbops_local_beentry(i);
		TransactionId xid;
		bool		skip = false;

		CHECK_FOR_INTERRUPTS();
		if (local == NULL || local->backendStatus.st_procpid == MyProcPid)
			continue;
		xid = older_xid(local->backend_xid, local->backend_xmin);
		if (!TransactionIdIsNormal(xid) || (xid == local->backend_xid) != own_xid)
			continue;
		for (int k = 0; k < nignored && !skip; k++)
			skip = ignored[k] == local->backendStatus.st_procpid;
		if (skip)
			continue;
		add_holder(holders, n, alloc,
				   local->backendStatus.st_backendType == B_WAL_SENDER ? HOLDER_STANDBY : HOLDER_PROCESS,
				   xid, own_xid ? "backend_xid" : "backend_xmin", i);
	}
}

/* ", from 10.0.0.5" for a client connected over TCP, ", local" over a socket */
static void
append_client(StringInfo buf, const PgBackendStatus *be)
{
	char		host[NI_MAXHOST];

	if (dbops_client_addr(&be->st_clientaddr, host, sizeof(host)))
		appendStringInfo(buf, ", from %s", host);
	else if (be->st_clientaddr.addr.ss_family == AF_UNIX)
		appendStringInfoString(buf, ", local");
}

static void
append_holder(StringInfo buf, const Holder *h, TransactionId next, TimestampTz now,
			  SPITupleTable *slots, SPITupleTable *prepared)
{
	appendStringInfo(buf, "%lld transactions (%s %u): ",
					 (long long) transactions_behind(next, h->xid), h->what, h->xid);
	switch (h->kind)
	{
		case HOLDER_PROCESS:
			{
				PgBackendStatus *be = &dbops_local_beentry(h->index)->backendStatus;
				TimestampTz xact_start = be->st_xact_start_timestamp;

				if (be->st_backendType == B_BACKEND || be->st_backendType == B_BG_WORKER)
					dbops_append_session(buf, be,
										 xact_start != 0 ? Max(dbops_seconds_between(xact_start, now), 0) : -1,
										 true);
				else
				{
					appendStringInfo(buf, "%s pid %d (transaction open ",
									 GetBackendTypeDesc(be->st_backendType), be->st_procpid);
					if (xact_start != 0)
						dbops_append_duration(buf, Max(dbops_seconds_between(xact_start, now), 0));
					else
						appendStringInfoString(buf, "for an unknown time");
					appendStringInfoChar(buf, ')');
				}
				break;
			}
		case HOLDER_STANDBY:
			{
				PgBackendStatus *be = &dbops_local_beentry(h->index)->backendStatus;

				appendStringInfo(buf, "standby %s (WAL sender pid %d",
								 be->st_appname && be->st_appname[0] ?
								 quote_identifier(be->st_appname) : "(no application_name)",
								 be->st_procpid);
				append_client(buf, be);
				appendStringInfoString(buf, ", hot_standby_feedback, for an unknown time)");
				break;
			}
		case HOLDER_SLOT:
			{
				bool		active = dbops_col_bool(slots, h->index, SLOT_ACTIVE);
				bool		isnull;
				Datum		d = dbops_col_datum(slots, h->index, SLOT_INACTIVE, &isnull);

				appendStringInfo(buf, "slot %s (%s, ",
								 quote_identifier(dbops_col_text(slots, h->index, SLOT_NAME)),
								 dbops_col_text(slots, h->index, SLOT_TYPE));
				if (active)
					appendStringInfo(buf, "active, pid %s", dbops_col_text(slots, h->index, SLOT_PID));
				else if (isnull)
					appendStringInfoString(buf, "inactive for an unknown time");
				else
				{
					appendStringInfoString(buf, "inactive for ");
					dbops_append_duration(buf, Max(dbops_seconds_between(DatumGetTimestampTz(d), now), 0));
				}
				if (strcmp(h->what, "catalog_xmin") == 0)
					appendStringInfoString(buf, "; catalog_xmin holds back the system catalogs only");
				appendStringInfoChar(buf, ')');
				break;
			}
		case HOLDER_PREPARED:
			{
				bool		isnull;
				Datum		d = dbops_col_datum(prepared, h->index, PREP_AT, &isnull);

				appendStringInfo(buf, "prepared transaction %s (%s@%s, ",
								 quote_literal_cstr(dbops_col_text(prepared, h->index, PREP_GID)),
								 quote_identifier(dbops_col_text(prepared, h->index, PREP_OWNER)),
								 quote_identifier(dbops_col_text(prepared, h->index, PREP_DATABASE)));
				if (isnull)
					appendStringInfoString(buf, "prepared at an unknown time)");
				else
				{
					appendStringInfoString(buf, "prepared ");
					dbops_append_duration(buf, Max(dbops_seconds_between(DatumGetTimestampTz(d), now), 0));
					appendStringInfoString(buf, " ago)");
				}
				break;
			}
	}
}

/* One sentence of the hint for the oldest named holder of each kind. */
static void
append_hint(StringInfo hint, const Holder *h, SPITupleTable *slots, SPITupleTable *prepared)
{
	if (hint->len > 0)
		appendStringInfoChar(hint, ' ');
	switch (h->kind)
	{
		case HOLDER_PROCESS:
			appendStringInfo(hint, "Have the application of pid %d commit sooner, or end its session with pg_terminate_backend(%d); idle_in_transaction_session_timeout and transaction_timeout (PostgreSQL 17 and later) end such transactions by themselves.",
							 dbops_local_beentry(h->index)->backendStatus.st_procpid,
							 dbops_local_beentry(h->index)->backendStatus.st_procpid);
			break;
		case HOLDER_STANDBY:
			appendStringInfoString(hint, "A standby with hot_standby_feedback on holds the horizon for its oldest query: end that query on the standby, or turn hot_standby_feedback off there (its queries may then be cancelled by recovery conflicts).");
			break;
		case HOLDER_SLOT:
			{
				char	   *name = dbops_col_text(slots, h->index, SLOT_NAME);

				appendStringInfo(hint, "Reconnect the consumer of slot %s (a standby sends new feedback, a logical consumer confirms its changes; pg_replication_slot_advance() moves a logical slot on), or drop a slot nobody uses: SELECT pg_drop_replication_slot(%s).",
								 quote_identifier(name), quote_literal_cstr(name));
				break;
			}
		case HOLDER_PREPARED:
			{
				char	   *gid = quote_literal_cstr(dbops_col_text(prepared, h->index, PREP_GID));

				appendStringInfo(hint, "Have the transaction manager finish the prepared transaction, or run COMMIT PREPARED %s or ROLLBACK PREPARED %s in database %s.",
								 gid, gid,
								 quote_identifier(dbops_col_text(prepared, h->index, PREP_DATABASE)));
				break;
			}
	}
}

/*
 * xmin_horizon: the age, in transactions, of the oldest xid that any
 * process, replication slot or prepared transaction holds, with the
 * holders named oldest first.
 */
void
dbops_check_xmin_horizon(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr slot_plan = NULL;
	static SPIPlanPtr prep_plan = NULL;
	SPITupleTable *slots;
	SPITupleTable *prepared;
	uint64		nslots;
	uint64		nprepared;
	int		   *ignored;
	int			nignored;
	int			alloc = 16;
	int			n = 0;
	Holder	   *holders = palloc(sizeof(Holder) * alloc);
	TransactionId next;
	TimestampTz now = GetCurrentTimestamp();
	DbopsTopN	top = {0};
	bool		named[HOLDER_PREPARED + 1] = {0};

	if (!dbops_can_read_all_stats())
	{
		dbops_check_skip_all_stats(res, "naming the sessions that hold the xmin horizon needs the privileges of pg_read_all_stats");
		return;
	}

	/*
	 * What holds a transaction's own xid first: on a tie, it comes before
	 * the snapshots that wait for it (and still holds when they end).
	 */
	prepared = dbops_kept_query(&prep_plan,
								"SELECT gid, owner, database, transaction, prepared "
								"FROM pg_catalog.pg_prepared_xacts");
	nprepared = SPI_processed;
	for (uint64 r = 0; r < nprepared; r++)
	{
		bool		isnull;
		Datum		xid = dbops_col_datum(prepared, r, PREP_XID, &isnull);

		CHECK_FOR_INTERRUPTS();
		if (!isnull && TransactionIdIsNormal(DatumGetTransactionId(xid)))
			add_holder(&holders, &n, &alloc, HOLDER_PREPARED, DatumGetTransactionId(xid),
					   "xid", (int) r);
	}
	nignored = collect_ignored_pids(&ignored);
	add_processes(&holders, &n, &alloc, ignored, nignored, true);

	slots = dbops_kept_query(&slot_plan,
							 "SELECT slot_name, slot_type, active, active_pid, xmin, catalog_xmin, "
							 DBOPS_SLOT_INACTIVE_SINCE " "
							 "FROM pg_catalog.pg_replication_slots "
							 "WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL");
	nslots = SPI_processed;
	for (uint64 r = 0; r < nslots; r++)
	{
		bool		xmin_null;
		bool		catalog_null;
		Datum		xmin = dbops_col_datum(slots, r, SLOT_XMIN, &xmin_null);
		Datum		catalog = dbops_col_datum(slots, r, SLOT_CATALOG, &catalog_null);
		TransactionId x = xmin_null ? InvalidTransactionId : DatumGetTransactionId(xmin);
		TransactionId c = catalog_null ? InvalidTransactionId : DatumGetTransactionId(catalog);
		TransactionId oldest = older_xid(x, c);

		CHECK_FOR_INTERRUPTS();
		if (TransactionIdIsNormal(oldest))
			add_holder(&holders, &n, &alloc, HOLDER_SLOT, oldest,
					   oldest == x ? "xmin" : "catalog_xmin", (int) r);
	}
	add_processes(&holders, &n, &alloc, ignored, nignored, false);

	/* ages as of now, after everything was read: none comes out negative */
	next = ReadNextTransactionId();
	for (int h = 0; h < n; h++)
		dbops_topn_add(&top, (double) transactions_behind(next, holders[h].xid), h);

	dbops_check_value(res, top.n > 0 ? top.score[0] : 0, "transactions");
	if (RecoveryInProgress())
		appendStringInfoString(&res->detail, hot_standby_feedback ?
							   "standby with hot_standby_feedback on (what holds the horizon here holds back the primary's vacuum too): " :
							   "standby with hot_standby_feedback off (what holds the horizon here does not hold back the primary's vacuum, but can delay replay): ");
	if (n == 0)
	{
		appendStringInfoString(&res->detail, "no session, replication slot or prepared transaction holds the xmin horizon back");
		return;
	}
	appendStringInfo(&res->detail, "%d holder(s) of the xmin horizon, oldest: ", n);
	for (int t = 0; t < top.n; t++)
	{
		const Holder *h = &holders[top.item[t]];

		if (t > 0)
			appendStringInfoString(&res->detail, "; ");
		append_holder(&res->detail, h, next, now, slots, prepared);
		if (!named[h->kind])
			append_hint(&res->hint, h, slots, prepared);
		named[h->kind] = true;
	}
	if (n > top.n)
		appendStringInfo(&res->detail, "; and %d more", n - top.n);
}
