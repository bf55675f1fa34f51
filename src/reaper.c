/*-------------------------------------------------------------------------
 *
 * reaper.c
 *	  Idle-connection reaper: a background worker that terminates (or
 *	  cancels) client sessions idle for longer than a policy allows, and
 *	  dbops.reap_idle() doing the same on demand.  Both share one code path
 *	  (reaper_run): snapshot of the live backend status array, exemptions,
 *	  policy matching, keep_min floors, a re-check of each victim's state
 *	  right before it is signalled, and a record of every action in a
 *	  shared-memory ring (dbops.reaper_events()) that the worker copies into
 *	  dbops.reaper_log when it can write.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/ip.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "dbops.h"
#include "livestatus.h"

PGDLLEXPORT void dbops_reaper_main(Datum main_arg);

/* ---------------------------------------------------------------------
 * GUCs
 * ---------------------------------------------------------------------
 */
static char *reaper_database = "postgres";
static int	reaper_naptime = 10;	/* seconds */
static int	reaper_idle_timeout = 0;	/* ms, 0 = off */
static int	reaper_idle_in_transaction_timeout = 0; /* ms, 0 = off */
static bool reaper_dry_run = false;
static char *reaper_exempt_roles = NULL;
static char *reaper_exempt_applications = NULL;
static int	reaper_recheck_delay = 0;	/* ms, testing aid */
static int	reaper_log_keep = 43200;	/* minutes, 0 = forever */

/* the worker prunes dbops.reaper_log at most this often ... */
#define REAPER_PRUNE_INTERVAL_MS (3600 * 1000)
/* ... deleting at most this many rows in one go */
#define REAPER_PRUNE_BATCH 10000

/* worker only: when it last pruned, and whether rows were left over */
static TimestampTz reaper_last_prune = 0;
static bool reaper_prune_more = false;

/* ---------------------------------------------------------------------
 * Shared memory: worker status and the event ring
 * ---------------------------------------------------------------------
 */
#define REAPER_RING_SIZE		1024
#define REAPER_ADDR_LEN			64
#define REAPER_WORD_LEN			32

typedef struct ReaperEvent
{
	uint64		seq;			/* 0: slot unused */
	TimestampTz at;
	int			pid;
	int			policy_id;		/* 0: no policy (GUC defaults, arguments) */
	bool		from_worker;
	int			state;			/* index into reaper_state_names */
	int64		idle_for;		/* microseconds */
	char		usename[NAMEDATALEN];
	char		datname[NAMEDATALEN];
	char		appname[NAMEDATALEN];
	char		client_addr[REAPER_ADDR_LEN];	/* "" for a Unix socket */
	char		action[REAPER_WORD_LEN];
	char		outcome[REAPER_WORD_LEN];
} ReaperEvent;

typedef struct ReaperStatus
{
	pid_t		worker_pid;		/* 0 when not running */
	TimestampTz worker_started;
	TimestampTz last_sweep;
	int64		sweeps;
	int			last_seen;		/* client backends in the last sweep */
	int			last_idle;		/* of which idle */
	int			last_exempt;	/* of which exempt */
	int64		reaped;			/* signalled by the worker, in total */
	int64		spared;			/* due but spared (keep_min, became active) */
	int64		dry_run_matches;
	int64		last_sweep_cpu_ns;
	int64		total_sweep_cpu_ns;
	bool		extension_missing;	/* dbops not installed in the database */
} ReaperStatus;

typedef struct ReaperShared
{
	LWLock	   *lock;			/* protects everything below */
	ReaperStatus st;
	uint64		next_seq;		/* sequence number of the next event */
	uint64		logged_upto;	/* events below this are in dbops.reaper_log */
	ReaperEvent ring[REAPER_RING_SIZE];
} ReaperShared;

static ReaperShared *reaper_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---------------------------------------------------------------------
 * Sessions, policies, requests
 * ---------------------------------------------------------------------
 */
#define REAPER_NSTATES	3
static const char *const reaper_state_names[REAPER_NSTATES] = {
	"idle", "idle in transaction", "idle in transaction (aborted)"
};

typedef enum ReaperAction
{
	REAPER_TERMINATE,
	REAPER_CANCEL,
	REAPER_EXEMPT
} ReaperAction;

static const char *const reaper_action_names[] = {"terminate", "cancel", "exempt"};

typedef enum ReaperOutcome
{
	OUTCOME_NONE,
	OUTCOME_SIGNALLED,			/* signal sent */
	OUTCOME_DRY_RUN,			/* would have been signalled */
	OUTCOME_ACTIVE,				/* left its idle spell before the signal */
	OUTCOME_GONE,				/* exited before the signal */
	OUTCOME_KEEP_MIN			/* spared to keep a policy's floor */
} ReaperOutcome;

static const char *const reaper_outcome_names[] = {
	"", "signalled", "dry run", "spared: became active", "gone", "spared: keep_min"
};

typedef struct ReaperPolicy
{
	int			id;
	bool		has_role;
	Oid			roleid;			/* InvalidOid if the role does not exist */
	bool		has_db;
	Oid			dbid;
	text	   *app_pattern;	/* NULL: any application */
	bool		app_invalid;	/* pattern LIKE refuses: matches nothing */
	bool		has_cidr;
	Datum		cidr;
	int			state;			/* -1: any idle state */
	int64		timeout;		/* microseconds; unused for exempt */
	ReaperAction action;
	int			keep_min;
	int			specificity;	/* number of match columns set */
	/* per run */
	int			nmatching;
	int			nremoved;
} ReaperPolicy;

typedef struct ReaperSession
{
	int			slot;			/* index in the backend status array */
	int			pid;
	Oid			roleid;
	Oid			dbid;
	int			state;			/* index into reaper_state_names */
	TimestampTz state_start;
	SockAddr	addr;
	char		appname[NAMEDATALEN];
	/* decided by reaper_run */
	ReaperPolicy *policy;		/* winning policy, NULL: none */
	ReaperAction action;
	int64		timeout;
	int64		idle_for;
	ReaperOutcome outcome;
} ReaperSession;

typedef struct ReaperRequest
{
	bool		from_worker;
	bool		dry_run;
	bool		check_caller;	/* apply the caller's right to signal */
	int64		timeout[REAPER_NSTATES];	/* per state, -1: not reaped */
	ReaperAction action;		/* when no policy decides */
	TimestampTz report_after;	/* worker dry run: report matches due since */
} ReaperRequest;

typedef struct ReaperResult
{
	int			nseen;
	int			nidle;
	int			nexempt;
	int			nreaped;
	int			nspared;
	int			ndryrun;
	TimestampTz now;			/* the time idle spells were measured at */
	List	   *sessions;		/* ReaperSession *, in the order acted upon */
} ReaperResult;


/* ---------------------------------------------------------------------
 * Init: GUCs, shared memory, worker registration
 * ---------------------------------------------------------------------
 */
static void
reaper_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ReaperShared)));
	RequestNamedLWLockTranche("dbops_reaper", 1);
}

static void
reaper_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	reaper_shared = ShmemInitStruct("dbops reaper", sizeof(ReaperShared), &found);
	if (!found)
	{
		memset(reaper_shared, 0, sizeof(ReaperShared));
		reaper_shared->lock = &(GetNamedLWLockTranche("dbops_reaper"))->lock;
		reaper_shared->next_seq = 1;
		reaper_shared->logged_upto = 1;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
dbops_reaper_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("dbops.reaper_naptime",
							"Time between two sweeps of the reaper worker.",
							NULL,
							&reaper_naptime,
							10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.reaper_idle_timeout",
							"Idle time after which the reaper terminates a session no policy decides about.",
							"0 turns it off.",
							&reaper_idle_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.reaper_idle_in_transaction_timeout",
							"Idle-in-transaction time after which the reaper terminates a session no policy decides about.",
							"0 turns it off.",
							&reaper_idle_in_transaction_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("dbops.reaper_dry_run",
							 "Record what the reaper worker would do without signalling anyone.",
							 NULL,
							 &reaper_dry_run,
							 false,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("dbops.reaper_exempt_roles",
							   "Comma-separated roles whose sessions the reaper never touches.",
							   NULL,
							   &reaper_exempt_roles,
							   "",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("dbops.reaper_exempt_applications",
							   "Comma-separated application names whose sessions the reaper never touches.",
							   NULL,
							   &reaper_exempt_applications,
							   "pg_dump,pg_basebackup,pg_restore",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.reaper_log_keep",
							"How long the reaper worker keeps events in dbops.reaper_log.",
							"Older rows are deleted once an hour; 0 keeps them forever.",
							&reaper_log_keep,
							43200, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MIN,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.reaper_recheck_delay",
							"Testing aid: pause between the reaper's snapshot and its re-check of each victim.",
							NULL,
							&reaper_recheck_delay,
							0, 0, 60000,
							PGC_SUSET, GUC_UNIT_MS | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	/* the worker and its shared memory need shared_preload_libraries */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("dbops.reaper_database",
							   "Database the reaper worker connects to (where dbops is installed).",
							   NULL,
							   &reaper_database,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = reaper_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = reaper_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 10;
	strlcpy(worker.bgw_library_name, "dbops", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dbops_reaper_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "dbops reaper", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "dbops reaper", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

static void
require_shared(void)
{
	if (reaper_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the dbops reaper is not loaded"),
				 errhint("Add dbops to shared_preload_libraries and restart the server.")));
}

/* ---------------------------------------------------------------------
 * The live backend status array
 * ---------------------------------------------------------------------
 */

/*
 * The live array is read with dbops_backend_status_array() and
 * dbops_read_backend_status_slot() (livestatus.c), never through the
 * backend-local snapshot pg_stat_activity uses, so that a re-read sees the
 * state as it is now.
 */

static int
state_index(BackendState st)
{
	switch (st)
	{
		case STATE_IDLE:
			return 0;
		case STATE_IDLEINTRANSACTION:
			return 1;
		case STATE_IDLEINTRANSACTION_ABORTED:
			return 2;
		default:
			return -1;
	}
}

typedef struct SlotCopy
{
	int			pid;
	BackendType type;
	BackendState state;
	TimestampTz state_start;
	Oid			dbid;
	Oid			userid;
	SockAddr	addr;
	char		appname[NAMEDATALEN];
} SlotCopy;

/* Copy one live entry consistently (the st_changecount protocol). */
static void
read_slot(volatile PgBackendStatus *be, SlotCopy *out, bool full)
{
	PgBackendStatus copy;

	dbops_read_backend_status_slot(be, &copy, out->appname, NULL);
	out->pid = copy.st_procpid;
	out->type = copy.st_backendType;
	out->state = copy.st_state;
	out->state_start = copy.st_state_start_timestamp;
	if (full && out->pid > 0)
	{
		out->dbid = copy.st_databaseid;
		out->userid = copy.st_userid;
		memcpy(&out->addr, &copy.st_clientaddr, sizeof(SockAddr));
	}
}

/* Client address as text; false for a Unix socket or an unknown family. */
static bool
session_addr(const SockAddr *addr, char *buf, size_t len)
{
	if (addr->addr.ss_family != AF_INET && addr->addr.ss_family != AF_INET6)
		return false;
	if (pg_getnameinfo_all(&addr->addr, addr->salen, buf, len, NULL, 0,
						   NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return false;
	clean_ipv6_addr(addr->addr.ss_family, buf);
	return true;
}

/* ---------------------------------------------------------------------
 * Events
 * ---------------------------------------------------------------------
 */
static void
record_event(const ReaperRequest *req, const ReaperSession *s)
{
	ReaperEvent ev;
	Interval	iv = {0};
	const char *verb;
	char	   *usename = GetUserNameFromId(s->roleid, true);
	char	   *datname = get_database_name(s->dbid);

	memset(&ev, 0, sizeof(ev));
	ev.at = GetCurrentTimestamp();
	ev.pid = s->pid;
	ev.policy_id = s->policy ? s->policy->id : 0;
	ev.from_worker = req->from_worker;
	ev.state = s->state;
	ev.idle_for = s->idle_for;
	strlcpy(ev.usename, usename ? usename : "", NAMEDATALEN);
	strlcpy(ev.datname, datname ? datname : "", NAMEDATALEN);
	strlcpy(ev.appname, s->appname, NAMEDATALEN);
	if (!session_addr(&s->addr, ev.client_addr, sizeof(ev.client_addr)))
		ev.client_addr[0] = '\0';
	strlcpy(ev.action, reaper_action_names[s->action], REAPER_WORD_LEN);
	strlcpy(ev.outcome, reaper_outcome_names[s->outcome], REAPER_WORD_LEN);
	iv.time = s->idle_for;

	switch (s->outcome)
	{
		case OUTCOME_SIGNALLED:
			verb = s->action == REAPER_CANCEL ? "cancelled" : "terminated";
			break;
		case OUTCOME_DRY_RUN:
			verb = s->action == REAPER_CANCEL ? "dry run, would cancel" : "dry run, would terminate";
			break;
		default:
			verb = s->action == REAPER_CANCEL ? "did not cancel (became active)" : "did not terminate (became active)";
			break;
	}
	ereport(LOG,
			(errmsg("dbops reaper: %s session %d (user \"%s\", database \"%s\", application \"%s\"), %s for %s",
					verb, ev.pid, ev.usename, ev.datname, ev.appname,
					reaper_state_names[s->state],
					DatumGetCString(DirectFunctionCall1(interval_out,
														IntervalPGetDatum(&iv)))),
			 errhidestmt(true), errhidecontext(true)));

	if (reaper_shared == NULL)
		return;

	LWLockAcquire(reaper_shared->lock, LW_EXCLUSIVE);
	ev.seq = reaper_shared->next_seq++;
	memcpy(&reaper_shared->ring[ev.seq % REAPER_RING_SIZE], &ev, sizeof(ev));
	LWLockRelease(reaper_shared->lock);
}

/* ---------------------------------------------------------------------
 * Policies
 * ---------------------------------------------------------------------
 */

/*
 * Load the enabled rows of dbops.reaper_policies (SPI must be connected, in
 * a transaction).  Roles and databases are resolved to OIDs here; a name
 * that does not exist leaves a policy that matches nothing.
 *
 * The worker and superusers run this query: every function, operator and
 * type in it is schema-qualified, so that it cannot resolve to an object of
 * a schema on the search_path (an exact-match public.*(numeric, integer)
 * would beat pg_catalog's *(numeric, numeric)).
 */
/*
 * Would LIKE accept this pattern?  Its one error is a pattern that ends in
 * the escape character (a backslash not itself escaped).
 */
static bool
like_pattern_valid(const text *pattern)
{
	const char *p = VARDATA_ANY(pattern);
	int			len = VARSIZE_ANY_EXHDR(pattern);
	int			i = 0;

	while (i < len)
	{
		if (p[i] == '\\')
		{
			if (i + 1 >= len)
				return false;
			i++;
		}
		i += pg_mblen(p + i);
	}
	return true;
}

static ReaperPolicy *
load_policies(int *npolicies)
{
	ReaperPolicy *policies;
	int			ret;

	ret = SPI_execute("SELECT id, role_name, database_name, application_name, client_addr, state,"
					  " pg_catalog.extract('epoch', idle_timeout)::pg_catalog.float8,"
					  " action, keep_min"
					  " FROM dbops.reaper_policies WHERE enabled ORDER BY id",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dbops.reaper_policies: %s", SPI_result_code_string(ret));

	policies = palloc0(sizeof(ReaperPolicy) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ReaperPolicy *p = &policies[i];
		bool		isnull;
		Datum		d;
		char	   *str;

		p->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));

		str = SPI_getvalue(tup, desc, 2);
		if (str)
		{
			p->has_role = true;
			p->roleid = get_role_oid(str, true);
			p->specificity++;
		}
		str = SPI_getvalue(tup, desc, 3);
		if (str)
		{
			p->has_db = true;
			p->dbid = get_database_oid(str, true);
			p->specificity++;
		}
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
		{
			p->app_pattern = DatumGetTextPCopy(d);
			p->specificity++;
			/* a row older than the validation trigger may hold a bad pattern */
			if (!like_pattern_valid(p->app_pattern))
				p->app_invalid = true;
		}
		d = SPI_getbinval(tup, desc, 5, &isnull);
		if (!isnull)
		{
			p->has_cidr = true;
			p->cidr = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
			p->specificity++;
		}
		p->state = -1;
		str = SPI_getvalue(tup, desc, 6);
		if (str)
		{
			for (int s = 0; s < REAPER_NSTATES; s++)
				if (strcmp(str, reaper_state_names[s]) == 0)
					p->state = s;
			p->specificity++;
		}
		d = SPI_getbinval(tup, desc, 7, &isnull);
		if (isnull)
			p->timeout = -1;
		else
		{
			/*
			 * Seconds, as microseconds; a timeout too long to count in
			 * microseconds (a row older than the validation trigger) is
			 * one no session ever reaches.
			 */
			double		usecs = DatumGetFloat8(d) * USECS_PER_SEC;

			p->timeout = usecs >= (double) PG_INT64_MAX ? PG_INT64_MAX :
				(int64) rint(Max(usecs, 0));
		}
		str = SPI_getvalue(tup, desc, 8);
		if (str && strcmp(str, "cancel") == 0)
			p->action = REAPER_CANCEL;
		else if (str && strcmp(str, "exempt") == 0)
			p->action = REAPER_EXEMPT;
		else
			p->action = REAPER_TERMINATE;
		p->keep_min = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		if (isnull)
			p->keep_min = 0;
	}
	*npolicies = (int) SPI_processed;
	return policies;
}

static bool
policy_matches(const ReaperPolicy *p, const ReaperSession *s, Datum *inet, bool *inet_done)
{
	if (p->state >= 0 && p->state != s->state)
		return false;
	if (p->has_role && p->roleid != s->roleid)
		return false;
	if (p->has_db && p->dbid != s->dbid)
		return false;
	if (p->app_invalid)
		return false;
	if (p->app_pattern &&
		!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
											  PointerGetDatum(cstring_to_text(s->appname)),
											  PointerGetDatum(p->app_pattern))))
		return false;
	if (p->has_cidr)
	{
		if (!*inet_done)
		{
			char		buf[REAPER_ADDR_LEN];

			*inet_done = true;
			*inet = session_addr(&s->addr, buf, sizeof(buf)) ?
				DirectFunctionCall1(inet_in, CStringGetDatum(buf)) : (Datum) 0;
		}
		if (*inet == (Datum) 0 ||
			!DatumGetBool(DirectFunctionCall2(network_subeq, *inet, p->cidr)))
			return false;
	}
	return true;
}

/*
 * The most specific matching policy: the one with the most match columns set;
 * on a tie an exempt policy wins, then the lowest id.
 */
static ReaperPolicy *
winning_policy(ReaperPolicy *policies, int npolicies, const ReaperSession *s)
{
	ReaperPolicy *best = NULL;
	Datum		inet = (Datum) 0;
	bool		inet_done = false;

	for (int i = 0; i < npolicies; i++)
	{
		ReaperPolicy *p = &policies[i];

		if (best != NULL &&
			(p->specificity < best->specificity ||
			 (p->specificity == best->specificity &&
			  (best->action == REAPER_EXEMPT || p->action != REAPER_EXEMPT))))
			continue;			/* cannot beat the current winner */
		if (policy_matches(p, s, &inet, &inet_done))
			best = p;
	}
	return best;
}

/* ---------------------------------------------------------------------
 * The sweep, shared by the worker and dbops.reap_idle()
 * ---------------------------------------------------------------------
 */
static bool
name_in_list(const char *name, List *list)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		if (strcmp(name, (const char *) lfirst(lc)) == 0)
			return true;
	}
	return false;
}

static List *
parse_list(const char *value, bool identifiers)
{
	char	   *raw;
	List	   *list = NIL;
	bool		ok;

	if (value == NULL || value[0] == '\0')
		return NIL;
	raw = pstrdup(value);
	ok = identifiers ? SplitIdentifierString(raw, ',', &list) : SplitGUCList(raw, ',', &list);
	if (!ok)
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in \"%s\", ignored",
						dbops_bounded(value, DBOPS_ECHO_CHARS)),
				 errhint("dbops.reaper_exempt_roles and dbops.reaper_exempt_applications are comma-separated lists; double-quote a name that contains a comma or a quote.")));
	return ok ? list : NIL;
}

/* pg_signal_backend()'s rules, for the caller of dbops.reap_idle() */
static bool
caller_may_signal(Oid target_role)
{
	if (!OidIsValid(target_role) || superuser_arg(target_role))
		return superuser();
	return has_privs_of_role(GetUserId(), target_role) ||
		has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND);
}

static int
session_oldest_first(const void *a, const void *b)
{
	const ReaperSession *sa = *(ReaperSession *const *) a;
	const ReaperSession *sb = *(ReaperSession *const *) b;

	if (sa->state_start != sb->state_start)
		return sa->state_start < sb->state_start ? -1 : 1;
	return sa->pid - sb->pid;
}

/*
 * Re-read the victim's live entry right before signalling it: a session that
 * left its idle state, or started a new idle spell, or exited is spared.
 */
static ReaperOutcome
recheck_and_signal(ReaperSession *s, bool dry_run)
{
	int			nslots;
	volatile PgBackendStatus *array = dbops_backend_status_array(&nslots);
	SlotCopy	now;
	int			sig;

	read_slot(&array[s->slot], &now, false);
	if (now.pid != s->pid)
		return OUTCOME_GONE;
	if (state_index(now.state) != s->state || now.state_start != s->state_start)
		return OUTCOME_ACTIVE;
	if (dry_run)
		return OUTCOME_DRY_RUN;

	sig = (s->action == REAPER_CANCEL) ? SIGINT : SIGTERM;
#ifdef HAVE_SETSID
	if (kill(-s->pid, sig) != 0)
#else
	if (kill(s->pid, sig) != 0)
#endif
		return OUTCOME_GONE;
	return OUTCOME_SIGNALLED;
}

static void
reaper_run(const ReaperRequest *req, ReaperPolicy *policies, int npolicies,
		   ReaperResult *res)
{
	int			nslots;
	volatile PgBackendStatus *array = dbops_backend_status_array(&nslots);
	ReaperSession *sessions = palloc(sizeof(ReaperSession) * nslots);
	ReaperSession **due = palloc(sizeof(ReaperSession *) * nslots);
	int			ndue = 0;
	List	   *exempt_roles = parse_list(reaper_exempt_roles, true);
	List	   *exempt_apps = parse_list(reaper_exempt_applications, false);
	List	   *exempt_roleids = NIL;
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	memset(res, 0, sizeof(*res));
	res->now = now;
	foreach(lc, exempt_roles)
	{
		Oid			roleid = get_role_oid((char *) lfirst(lc), true);

		if (OidIsValid(roleid))
			exempt_roleids = lappend_oid(exempt_roleids, roleid);
	}
	for (int i = 0; i < npolicies; i++)
	{
		policies[i].nmatching = 0;
		policies[i].nremoved = 0;
	}

	for (int slot = 0; slot < nslots; slot++)
	{
		SlotCopy	copy;
		ReaperSession *s;
		ReaperPolicy *p;
		int			st;

		CHECK_FOR_INTERRUPTS();

		read_slot(&array[slot], &copy, true);
		if (copy.pid <= 0 || copy.type != B_BACKEND || copy.pid == MyProcPid)
			continue;
		res->nseen++;
		st = state_index(copy.state);
		if (st < 0)
			continue;
		res->nidle++;

		s = &sessions[slot];
		s->slot = slot;
		s->pid = copy.pid;
		s->roleid = copy.userid;
		s->dbid = copy.dbid;
		s->state = st;
		s->state_start = copy.state_start;
		s->addr = copy.addr;
		memcpy(s->appname, copy.appname, NAMEDATALEN);
		s->idle_for = now - copy.state_start;
		s->outcome = OUTCOME_NONE;

		if (list_member_oid(exempt_roleids, s->roleid) ||
			name_in_list(s->appname, exempt_apps))
		{
			res->nexempt++;
			continue;
		}

		p = winning_policy(policies, npolicies, s);
		s->policy = p;
		if (p && p->action == REAPER_EXEMPT)
		{
			res->nexempt++;
			continue;
		}
		if (p)
			p->nmatching++;

		if (p && req->from_worker)
		{
			s->timeout = p->timeout;
			s->action = p->action;
		}
		else
		{
			s->timeout = req->timeout[st];
			s->action = req->action;
		}
		if (s->timeout < 0 || s->idle_for < s->timeout)
			continue;

		/* superusers' sessions only when a policy names their role */
		if (superuser_arg(s->roleid) &&
			!(p && p->has_role && p->roleid == s->roleid))
		{
			res->nexempt++;
			continue;
		}
		if (req->check_caller && !caller_may_signal(s->roleid))
			continue;

		due[ndue++] = s;
	}

	if (ndue == 0)
		return;

	qsort(due, ndue, sizeof(ReaperSession *), session_oldest_first);

	if (reaper_recheck_delay > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 reaper_recheck_delay, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	for (int i = 0; i < ndue; i++)
	{
		ReaperSession *s = due[i];
		ReaperPolicy *p = s->policy;

		CHECK_FOR_INTERRUPTS();

		if (p && p->keep_min > 0 && p->nremoved >= p->nmatching - p->keep_min)
		{
			s->outcome = OUTCOME_KEEP_MIN;
			res->nspared++;
			res->sessions = lappend(res->sessions, s);
			continue;
		}

		s->outcome = recheck_and_signal(s, req->dry_run);
		if (s->outcome == OUTCOME_SIGNALLED || s->outcome == OUTCOME_DRY_RUN)
		{
			if (p)
				p->nremoved++;
		}
		if (s->outcome == OUTCOME_SIGNALLED)
			res->nreaped++;
		else if (s->outcome == OUTCOME_DRY_RUN)
			res->ndryrun++;
		else if (s->outcome == OUTCOME_ACTIVE)
			res->nspared++;
		res->sessions = lappend(res->sessions, s);

		/*
		 * Record every action and every spared victim; a worker dry run
		 * records a match once per idle spell (when it first became due),
		 * dbops.reap_idle()'s dry runs are previews and not recorded.
		 */
		if (s->outcome == OUTCOME_DRY_RUN &&
			(!req->from_worker || s->state_start + s->timeout <= req->report_after))
			continue;
		if (s->outcome == OUTCOME_GONE)
			continue;
		record_event(req, s);
	}
}

/* ---------------------------------------------------------------------
 * The background worker
 * ---------------------------------------------------------------------
 */
static int64
cpu_time_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
reaper_worker_exit(int code, Datum arg)
{
	LWLockAcquire(reaper_shared->lock, LW_EXCLUSIVE);
	if (reaper_shared->st.worker_pid == MyProcPid)
		reaper_shared->st.worker_pid = 0;
	LWLockRelease(reaper_shared->lock);
}

static Datum
interval_datum(int64 usecs)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = usecs;
	return IntervalPGetDatum(iv);
}

/*
 * Copy the events numbered [from, upto) that are still in the ring into
 * events[], holding the lock only for the copy; returns how many there were.
 */
static int
copy_ring_events(uint64 from, uint64 upto, ReaperEvent *events)
{
	int			n = 0;

	LWLockAcquire(reaper_shared->lock, LW_SHARED);
	for (uint64 seq = from; seq < upto; seq++)
	{
		ReaperEvent *ev = &reaper_shared->ring[seq % REAPER_RING_SIZE];

		if (ev->seq == seq)
			memcpy(&events[n++], ev, sizeof(ReaperEvent));
	}
	LWLockRelease(reaper_shared->lock);
	return n;
}

/* One event as the columns of dbops.reaper_events() and dbops.reaper_log. */
#define REAPER_EVENT_COLS 13

static void
event_datums(const ReaperEvent *ev, Datum *values, bool *nulls)
{
	memset(nulls, 0, sizeof(bool) * REAPER_EVENT_COLS);
	values[0] = Int64GetDatum((int64) ev->seq);
	values[1] = TimestampTzGetDatum(ev->at);
	values[2] = CStringGetTextDatum(ev->from_worker ? "worker" : "reap_idle");
	values[3] = Int32GetDatum(ev->pid);
	values[4] = CStringGetTextDatum(ev->usename);
	values[5] = CStringGetTextDatum(ev->datname);
	values[6] = CStringGetTextDatum(ev->appname);
	if (ev->client_addr[0] != '\0')
		values[7] = DirectFunctionCall1(inet_in, CStringGetDatum(ev->client_addr));
	else
		nulls[7] = true;
	values[8] = CStringGetTextDatum(reaper_state_names[ev->state]);
	values[9] = interval_datum(ev->idle_for);
	values[10] = Int32GetDatum(ev->policy_id);
	nulls[10] = (ev->policy_id == 0);
	values[11] = CStringGetTextDatum(ev->action);
	values[12] = CStringGetTextDatum(ev->outcome);
}

/* Copy the ring's new events into dbops.reaper_log. */
static void
drain_ring_to_log(void)
{
	ReaperEvent *events;
	int			n;
	uint64		from;
	uint64		upto;
	SPIPlanPtr	plan;
	Oid			argtypes[REAPER_EVENT_COLS] = {INT8OID, TIMESTAMPTZOID, TEXTOID, INT4OID,
		TEXTOID, TEXTOID, TEXTOID, INETOID, TEXTOID, INTERVALOID, INT4OID, TEXTOID, TEXTOID};

	LWLockAcquire(reaper_shared->lock, LW_SHARED);
	upto = reaper_shared->next_seq;
	from = reaper_shared->logged_upto;
	LWLockRelease(reaper_shared->lock);
	if (from >= upto)
		return;
	if (upto - from > REAPER_RING_SIZE)
	{
		ereport(LOG,
				(errmsg("dbops reaper: " UINT64_FORMAT " events were overwritten in memory before they could be written to dbops.reaper_log",
						upto - from - REAPER_RING_SIZE)));
		from = upto - REAPER_RING_SIZE;
	}

	events = palloc(sizeof(ReaperEvent) * (upto - from));
	n = copy_ring_events(from, upto, events);

	/* the parameters have the columns' types: nothing to cast or resolve */
	plan = SPI_prepare("INSERT INTO dbops.reaper_log (seq, event_time, source, pid, usename, datname,"
					   " application_name, client_addr, state, idle_for, policy_id, action, outcome)"
					   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
					   REAPER_EVENT_COLS, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare insert into dbops.reaper_log: %s",
			 SPI_result_code_string(SPI_result));

	for (int i = 0; i < n; i++)
	{
		Datum		values[REAPER_EVENT_COLS];
		bool		isnull[REAPER_EVENT_COLS];
		char		nulls[REAPER_EVENT_COLS];

		event_datums(&events[i], values, isnull);
		for (int c = 0; c < REAPER_EVENT_COLS; c++)
			nulls[c] = isnull[c] ? 'n' : ' ';
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into dbops.reaper_log");
	}

	LWLockAcquire(reaper_shared->lock, LW_EXCLUSIVE);
	if (reaper_shared->logged_upto < upto)
		reaper_shared->logged_upto = upto;
	LWLockRelease(reaper_shared->lock);
}

/*
 * Delete dbops.reaper_log rows older than dbops.reaper_log_keep: once an
 * hour (and after a reload), oldest first, at most REAPER_PRUNE_BATCH rows
 * per sweep so that a long backlog is worked off over several sweeps
 * instead of in one long transaction.
 */
static void
prune_log(void)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2];
	int			ret;

	if (reaper_log_keep <= 0)
		return;
	if (!reaper_prune_more &&
		!TimestampDifferenceExceeds(reaper_last_prune, now, REAPER_PRUNE_INTERVAL_MS))
		return;

	/* whatever happens, do not try again before the next interval */
	reaper_last_prune = now;
	reaper_prune_more = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	values[0] = TimestampTzGetDatum(now - (TimestampTz) reaper_log_keep * USECS_PER_MINUTE);
	values[1] = Int32GetDatum(REAPER_PRUNE_BATCH);
	ret = SPI_execute_with_args("DELETE FROM dbops.reaper_log"
								" WHERE log_id OPERATOR(pg_catalog.=) ANY"
								" (SELECT log_id FROM dbops.reaper_log"
								"  WHERE event_time OPERATOR(pg_catalog.<) $1"
								"  ORDER BY event_time LIMIT $2)",
								2, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not prune dbops.reaper_log: %s", SPI_result_code_string(ret));
	reaper_prune_more = (SPI_processed >= REAPER_PRUNE_BATCH);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static TimestampTz
worker_sweep(TimestampTz report_after)
{
	static bool reported_missing = false;
	ReaperRequest req;
	ReaperResult res;
	ReaperPolicy *policies = NULL;
	int			npolicies = 0;
	bool		installed;
	int64		cpu_start = cpu_time_ns();
	int64		cpu;

	memset(&req, 0, sizeof(req));
	req.from_worker = true;
	req.dry_run = reaper_dry_run;
	req.check_caller = false;
	req.timeout[0] = reaper_idle_timeout > 0 ? (int64) reaper_idle_timeout * 1000 : -1;
	req.timeout[1] = req.timeout[2] =
		reaper_idle_in_transaction_timeout > 0 ? (int64) reaper_idle_in_transaction_timeout * 1000 : -1;
	req.action = REAPER_TERMINATE;
	req.report_after = report_after;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "dbops reaper sweep");

	installed = OidIsValid(get_extension_oid("dbops", true));
	if (!installed && !reported_missing)
		ereport(LOG,
				(errmsg("dbops reaper: extension dbops is not installed in database \"%s\"; sweeping with the dbops.reaper_* settings only",
						reaper_database),
				 errhint("Run CREATE EXTENSION dbops in database \"%s\" for policies and dbops.reaper_log.",
						 reaper_database)));
	else if (installed && reported_missing)
		ereport(LOG,
				(errmsg("dbops reaper: extension dbops found in database \"%s\"; policies are in effect",
						reaper_database)));
	reported_missing = !installed;

	if (installed)
		policies = load_policies(&npolicies);

	reaper_run(&req, policies, npolicies, &res);

	if (installed && !RecoveryInProgress())
		drain_ring_to_log();

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	cpu = cpu_time_ns() - cpu_start;

	/*
	 * In a transaction of its own, so that a failure cannot undo the events
	 * just logged; not counted in the sweep's CPU time.
	 */
	if (installed && !RecoveryInProgress())
		prune_log();
	pgstat_report_activity(STATE_IDLE, NULL);

	LWLockAcquire(reaper_shared->lock, LW_EXCLUSIVE);
	reaper_shared->st.last_sweep = GetCurrentTimestamp();
	reaper_shared->st.sweeps++;
	reaper_shared->st.last_seen = res.nseen;
	reaper_shared->st.last_idle = res.nidle;
	reaper_shared->st.last_exempt = res.nexempt;
	reaper_shared->st.reaped += res.nreaped;
	reaper_shared->st.spared += res.nspared;
	reaper_shared->st.dry_run_matches += res.ndryrun;
	reaper_shared->st.last_sweep_cpu_ns = cpu;
	reaper_shared->st.total_sweep_cpu_ns += cpu;
	reaper_shared->st.extension_missing = !installed;
	LWLockRelease(reaper_shared->lock);

	return res.now;
}

void
dbops_reaper_main(Datum main_arg)
{
	MemoryContext sweep_context;
	volatile TimestampTz report_after = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(reaper_shared->lock, LW_EXCLUSIVE);
	reaper_shared->st.worker_pid = MyProcPid;
	reaper_shared->st.worker_started = GetCurrentTimestamp();
	LWLockRelease(reaper_shared->lock);
	before_shmem_exit(reaper_worker_exit, (Datum) 0);

	BackgroundWorkerInitializeConnection(reaper_database, NULL, 0);

	/*
	 * The worker runs as the bootstrap superuser in a database whose owner
	 * may have set its search_path (ALTER DATABASE ... SET): replace it
	 * before the first query.
	 */
	dbops_worker_pin_search_path();
	pgstat_report_appname("dbops reaper");

	sweep_context = AllocSetContextCreate(TopMemoryContext, "dbops reaper sweep",
										  ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("dbops reaper started in database \"%s\", sweeping every %d s",
					reaper_database, reaper_naptime)));

	for (;;)
	{
		TimestampTz start;
		long		elapsed_ms;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			report_after = 0;	/* report dry-run matches afresh */
			reaper_last_prune = 0;	/* apply a new dbops.reaper_log_keep now */
		}

		start = GetCurrentTimestamp();
		MemoryContextSwitchTo(sweep_context);
		PG_TRY();
		{
			report_after = worker_sweep(report_after);
		}
		PG_CATCH();
		{
			/* report, clean up, and try again next time: never spin */
			HOLD_INTERRUPTS();
			MemoryContextSwitchTo(sweep_context);
			EmitErrorReport();
			FlushErrorState();
			LWLockReleaseAll();
			AbortCurrentTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
			RESUME_INTERRUPTS();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(sweep_context);
		pgstat_report_stat(true);

		elapsed_ms = (long) ((GetCurrentTimestamp() - start) / 1000);
		wait_ms = (long) reaper_naptime * 1000 - elapsed_ms;
		if (wait_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 wait_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */
static const char *
combined_action(const ReaperSession *s)
{
	const char *action = reaper_action_names[s->action];

	if (s->outcome == OUTCOME_SIGNALLED)
		return action;
	if (s->outcome == OUTCOME_DRY_RUN)
		return psprintf("dry run: %s", action);
	return reaper_outcome_names[s->outcome];
}

PG_FUNCTION_INFO_V1(dbops_reap_idle);

/*
 * dbops.reap_idle(idle_for, states, dry_run, action)
 */
/* the columns of dbops.reap_idle() and of dbops.reaper_status() */
#define REAP_IDLE_COLS 8
#define REAPER_STATUS_COLS 13

Datum
dbops_reap_idle(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReaperRequest req;
	ReaperResult res;
	Interval   *iv;
	int64		span;
	ArrayType  *states;
	Datum	   *elems;
	bool	   *elemnulls;
	int			nelems;
	char	   *action;
	ReaperPolicy *policies;
	int			npolicies;
	ListCell   *lc;

	memset(&req, 0, sizeof(req));
	for (int s = 0; s < REAPER_NSTATES; s++)
		req.timeout[s] = -1;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("idle_for must not be NULL"),
				 errhint("Pass how long a session must have been idle, e.g. interval '10 minutes'.")));
	iv = PG_GETARG_INTERVAL_P(0);
	if (!dbops_interval_usecs(iv, &span))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("idle_for is out of range"),
				 errhint("Pass an interval of less than 290000 years, e.g. interval '10 minutes'.")));
	if (span <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idle_for must be a positive interval"),
				 errhint("Pass how long a session must have been idle, e.g. interval '10 minutes'.")));

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("states must not be NULL"),
				 errhint("Valid states are 'idle', 'idle in transaction' and 'idle in transaction (aborted)'.")));
	states = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(states, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elemnulls, &nelems);
	if (nelems == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("states must name at least one state"),
				 errhint("Valid states are 'idle', 'idle in transaction' and 'idle in transaction (aborted)'.")));
	for (int i = 0; i < nelems; i++)
	{
		char	   *name;
		int			s;

		if (elemnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("states must not contain NULL"),
					 errhint("Valid states are 'idle', 'idle in transaction' and 'idle in transaction (aborted)'.")));
		name = TextDatumGetCString(elems[i]);
		for (s = 0; s < REAPER_NSTATES; s++)
			if (strcmp(name, reaper_state_names[s]) == 0)
				break;
		if (s == REAPER_NSTATES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown session state \"%s\"", dbops_bounded(name, DBOPS_ECHO_CHARS)),
					 errhint("Valid states are 'idle', 'idle in transaction' and 'idle in transaction (aborted)'.")));
		req.timeout[s] = span;
	}

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must not be NULL"),
				 errhint("Pass true to list the matches, false to act on them.")));
	req.dry_run = PG_GETARG_BOOL(2);

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("action must not be NULL"),
				 errhint("Valid actions are 'terminate' and 'cancel'.")));
	action = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (strcmp(action, "terminate") == 0)
		req.action = REAPER_TERMINATE;
	else if (strcmp(action, "cancel") == 0)
		req.action = REAPER_CANCEL;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown action \"%s\"", dbops_bounded(action, DBOPS_ECHO_CHARS)),
				 errhint("Valid actions are 'terminate' and 'cancel'.")));

	req.from_worker = false;
	req.check_caller = true;

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc, REAP_IDLE_COLS);

	SPI_connect();
	policies = load_policies(&npolicies);
	reaper_run(&req, policies, npolicies, &res);

	foreach(lc, res.sessions)
	{
		ReaperSession *s = (ReaperSession *) lfirst(lc);
		Datum		values[REAP_IDLE_COLS];
		bool		nulls[REAP_IDLE_COLS] = {0};
		char	   *usename = GetUserNameFromId(s->roleid, true);
		char	   *datname = get_database_name(s->dbid);
		char		addr[REAPER_ADDR_LEN];

		values[0] = Int32GetDatum(s->pid);
		if (usename)
			values[1] = DirectFunctionCall1(namein, CStringGetDatum(usename));
		else
			nulls[1] = true;
		if (datname)
			values[2] = DirectFunctionCall1(namein, CStringGetDatum(datname));
		else
			nulls[2] = true;
		values[3] = CStringGetTextDatum(s->appname);
		if (session_addr(&s->addr, addr, sizeof(addr)))
			values[4] = DirectFunctionCall1(inet_in, CStringGetDatum(addr));
		else
			nulls[4] = true;
		values[5] = CStringGetTextDatum(reaper_state_names[s->state]);
		values[6] = interval_datum(s->idle_for);
		values[7] = CStringGetTextDatum(combined_action(s));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();

	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dbops_reaper_events);

Datum
dbops_reaper_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReaperEvent *events;
	int			n;
	uint64		from;
	uint64		upto;

	require_shared();
	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc, REAPER_EVENT_COLS);

	LWLockAcquire(reaper_shared->lock, LW_SHARED);
	upto = reaper_shared->next_seq;
	LWLockRelease(reaper_shared->lock);
	from = upto > REAPER_RING_SIZE ? upto - REAPER_RING_SIZE : 1;

	events = palloc(sizeof(ReaperEvent) * REAPER_RING_SIZE);
	n = copy_ring_events(from, upto, events);

	for (int i = 0; i < n; i++)
	{
		Datum		values[REAPER_EVENT_COLS];
		bool		nulls[REAPER_EVENT_COLS];

		event_datums(&events[i], values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dbops_reaper_status);

Datum
dbops_reaper_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	ReaperStatus copy;
	Datum		values[REAPER_STATUS_COLS];
	bool		nulls[REAPER_STATUS_COLS] = {0};

	require_shared();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc, REAPER_STATUS_COLS);

	LWLockAcquire(reaper_shared->lock, LW_SHARED);
	copy = reaper_shared->st;
	LWLockRelease(reaper_shared->lock);

	values[0] = Int32GetDatum(copy.worker_pid);
	nulls[0] = (copy.worker_pid == 0);
	values[1] = TimestampTzGetDatum(copy.worker_started);
	nulls[1] = (copy.worker_pid == 0);
	values[2] = TimestampTzGetDatum(copy.last_sweep);
	nulls[2] = (copy.sweeps == 0);
	values[3] = Int64GetDatum(copy.sweeps);
	values[4] = Int32GetDatum(copy.last_seen);
	values[5] = Int32GetDatum(copy.last_idle);
	values[6] = Int32GetDatum(copy.last_exempt);
	values[7] = Int64GetDatum(copy.reaped);
	values[8] = Int64GetDatum(copy.spared);
	values[9] = Int64GetDatum(copy.dry_run_matches);
	values[10] = Float8GetDatum(copy.last_sweep_cpu_ns / 1000000.0);
	values[11] = Float8GetDatum(copy.sweeps > 0 ?
								copy.total_sweep_cpu_ns / 1000000.0 / copy.sweeps : 0.0);
	nulls[11] = (copy.sweeps == 0);
	values[12] = BoolGetDatum(!copy.extension_missing);
	nulls[12] = (copy.sweeps == 0);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---------------------------------------------------------------------
 * Health check
 * ---------------------------------------------------------------------
 */

/*
 * reaper: sessions the reaper (worker or dbops.reap_idle()) signalled in the
 * last hour; critical when dbops is preloaded but the worker is not running,
 * warning when its last sweep is overdue or when timeouts are set but dbops
 * is not preloaded.
 */
void
dbops_check_reaper(DbopsReport *report, DbopsCheckResult *res)
{
	ReaperStatus copy;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz hour_ago = now - USECS_PER_HOUR;
	int			recent = 0;
	int			recent_worker = 0;
	bool		configured = reaper_idle_timeout > 0 || reaper_idle_in_transaction_timeout > 0;

	if (reaper_shared == NULL)
	{
		if (configured)
		{
			res->status = DBOPS_WARNING;
			appendStringInfoString(&res->detail,
								   "dbops.reaper_idle_timeout or dbops.reaper_idle_in_transaction_timeout is set, but dbops is not in shared_preload_libraries: no reaper worker runs");
			appendStringInfoString(&res->hint,
								   "Add dbops to shared_preload_libraries and restart, or schedule dbops.reap_idle() with pg_cron.");
		}
		else
			appendStringInfoString(&res->detail,
								   "reaper worker not enabled (dbops is not in shared_preload_libraries)");
		return;
	}

	LWLockAcquire(reaper_shared->lock, LW_SHARED);
	copy = reaper_shared->st;
	for (int i = 0; i < REAPER_RING_SIZE; i++)
	{
		ReaperEvent *ev = &reaper_shared->ring[i];

		if (ev->seq != 0 && ev->at >= hour_ago &&
			strcmp(ev->outcome, reaper_outcome_names[OUTCOME_SIGNALLED]) == 0)
		{
			recent++;
			if (ev->from_worker)
				recent_worker++;
		}
	}
	LWLockRelease(reaper_shared->lock);

	dbops_check_value(res, recent, "sessions/h");
	appendStringInfo(&res->detail, "%d sessions reaped in the last hour (%d by the worker)",
					 recent, recent_worker);
	if (copy.worker_pid == 0)
	{
		res->status = DBOPS_CRITICAL;
		appendStringInfoString(&res->detail, "; the reaper worker is not running");
		appendStringInfoString(&res->hint,
							   "The postmaster restarts it within 10 s; if it does not come back, look for \"dbops reaper\" in the server log (dbops.reaper_database must exist).");
		return;
	}
	appendStringInfo(&res->detail, "; worker pid %d", copy.worker_pid);
	if (copy.sweeps > 0)
		appendStringInfo(&res->detail, ", last sweep %s, " INT64_FORMAT " sweeps, " INT64_FORMAT " reaped and " INT64_FORMAT " spared since it started",
						 timestamptz_to_str(copy.last_sweep), copy.sweeps, copy.reaped, copy.spared);
	if (copy.extension_missing)
		appendStringInfo(&res->detail, "; extension dbops missing in dbops.reaper_database \"%s\" (no policies, no dbops.reaper_log)",
						 reaper_database);
	if (reaper_dry_run)
		appendStringInfoString(&res->detail, "; dry run");

	if (copy.sweeps > 0 &&
		now - copy.last_sweep > (int64) Max(3 * reaper_naptime, 60) * USECS_PER_SEC)
	{
		res->status = DBOPS_WARNING;
		appendStringInfoString(&res->hint,
							   "The reaper's last sweep is overdue; look for \"dbops reaper\" errors in the server log.");
		return;
	}
	appendStringInfoString(&res->hint,
						   "Many reaped sessions point at an application that leaks connections: see SELECT * FROM dbops.reaper_events() and use a connection pooler.");
}
