/*-------------------------------------------------------------------------
 *
 * reaper.c
 *	  Session reaper: a background worker that ends client sessions idle
 *	  for longer than a policy allows, statements that run too long and
 *	  transactions open too long, and dbops.reap_idle() and
 *	  dbops.reap_runaway() doing the same on demand.  All share one sweep
 *	  (reaper_sweep.c); this file keeps the settings, the worker, the
 *	  record of every action in a shared-memory ring (dbops.reaper_events())
 *	  that the worker copies into dbops.reaper_log when it can write, the
 *	  SQL functions and the health check.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>
#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
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
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "dbops.h"
#include "healthkit.h"
#include "livestatus.h"
#include "reaper.h"

PGDLLEXPORT void dbops_reaper_main(Datum main_arg);

/* ---------------------------------------------------------------------
 * GUCs
 * ---------------------------------------------------------------------
 */
static char *reaper_database = "postgres";
static int	reaper_naptime = 10;	/* seconds */
static int	reaper_idle_timeout = 0;	/* ms, 0 = off */
static int	reaper_idle_in_transaction_timeout = 0; /* ms, 0 = off */
static int	reaper_query_timeout = 0;	/* ms, 0 = off */
static int	reaper_transaction_timeout = 0; /* ms, 0 = off */
static int	reaper_query_action = REAPER_CANCEL;
static int	reaper_transaction_action = REAPER_TERMINATE;
static bool reaper_dry_run = false;
static char *reaper_exempt_roles = NULL;
static char *reaper_exempt_applications = NULL;
static char *reaper_exempt_commands = NULL;
static int	reaper_recheck_delay = 0;	/* ms, testing aid */
static int	reaper_log_keep = 43200;	/* minutes, 0 = forever */

static const struct config_enum_entry reaper_action_options[] = {
	{"terminate", REAPER_TERMINATE, false},
	{"cancel", REAPER_CANCEL, false},
	{NULL, 0, false}
};

#define REAPER_DEFAULT_EXEMPT_COMMANDS \
	"vacuum, vacuum full, analyze, cluster, create index concurrently, reindex concurrently"

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
#define REAPER_WORD_LEN			32
/* query text kept per event: track_activity_query_size's default */
#define REAPER_QUERY_LEN		1024

typedef struct ReaperEvent
{
	uint64		seq;			/* 0: slot unused */
	TimestampTz at;
	int			pid;
	int			policy_id;		/* 0: no policy (GUC defaults, arguments) */
	ReaperSource source;
	ReaperKind	kind;
	int			state;			/* index into dbops_reaper_state_names */
	int64		duration;		/* microseconds idle, running or open */
	char		usename[NAMEDATALEN];
	char		datname[NAMEDATALEN];
	char		appname[NAMEDATALEN];
	char		client_addr[REAPER_ADDR_LEN];	/* "" for a Unix socket */
	char		action[REAPER_WORD_LEN];
	char		outcome[REAPER_WORD_LEN];
	char		query[REAPER_QUERY_LEN];
} ReaperEvent;

typedef struct ReaperStatus
{
	pid_t		worker_pid;		/* 0 when not running */
	TimestampTz worker_started;
	TimestampTz last_sweep;
	int64		sweeps;
	int			last_seen;		/* client backends in the last sweep */
	int			last_idle;		/* of which idle */
	int			last_active;	/* of which running a statement */
	int			last_in_xact;	/* of which in a transaction */
	int			last_exempt;	/* of which exempt */
	int64		reaped[REAPER_NKINDS];	/* signalled by the worker, in total */
	int64		spared;			/* due but spared (keep_min, ended, ...) */
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

static bool
check_exempt_commands(char **newval, void **extra, GucSource source)
{
	int			mask;
	char	   *bad;

	if (dbops_reaper_parse_commands(*newval, &mask, &bad))
		return true;
	GUC_check_errdetail("\"%s\" is not a maintenance command the reaper recognises.",
						dbops_bounded(bad, DBOPS_ECHO_CHARS));
	GUC_check_errhint("Known commands: vacuum, vacuum full, analyze, cluster, create index, create index concurrently, reindex, reindex concurrently, copy.");
	return false;
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
	DefineCustomIntVariable("dbops.reaper_query_timeout",
							"Running time after which the reaper ends a statement no policy decides about.",
							"0 turns it off; dbops.reaper_query_action says how.",
							&reaper_query_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("dbops.reaper_query_action",
							 "How the reaper ends a statement past dbops.reaper_query_timeout: cancel it or terminate its session.",
							 NULL,
							 &reaper_query_action,
							 REAPER_CANCEL, reaper_action_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.reaper_transaction_timeout",
							"Time a transaction may stay open before the reaper ends it, whatever its session's state, when no policy decides about it.",
							"0 turns it off; dbops.reaper_transaction_action says how.",
							&reaper_transaction_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("dbops.reaper_transaction_action",
							 "How the reaper ends a transaction past dbops.reaper_transaction_timeout: terminate its session or cancel its running statement.",
							 NULL,
							 &reaper_transaction_action,
							 REAPER_TERMINATE, reaper_action_options,
							 PGC_SIGHUP, 0,
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
	DefineCustomStringVariable("dbops.reaper_exempt_commands",
							   "Comma-separated maintenance commands whose statements and transactions the reaper never ends.",
							   "Known: vacuum, vacuum full, analyze, cluster, create index, create index concurrently, reindex, reindex concurrently, copy.",
							   &reaper_exempt_commands,
							   REAPER_DEFAULT_EXEMPT_COMMANDS,
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   check_exempt_commands, NULL, NULL);
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
 * Events
 * ---------------------------------------------------------------------
 */
static char *
interval_text(int64 usecs)
{
	Interval	iv = {0};

	iv.time = usecs;
	return DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(&iv)));
}

/*
 * Record one action or spared victim of a sweep: in the server log, and in
 * the ring when dbops is preloaded.
 */
void
dbops_reaper_record_event(const ReaperRequest *req, const ReaperSession *s)
{
	ReaperEvent ev;
	const char *verb;
	const char *what;
	char	   *usename = GetUserNameFromId(s->roleid, true);
	char	   *datname = get_database_name(s->dbid);
	const char *query = s->query ? s->query : "";

	memset(&ev, 0, sizeof(ev));
	ev.at = GetCurrentTimestamp();
	ev.pid = s->pid;
	ev.policy_id = s->policy ? s->policy->id : 0;
	ev.source = req->source;
	ev.kind = s->kind;
	ev.state = s->state;
	ev.duration = s->duration;
	strlcpy(ev.usename, usename ? usename : "", NAMEDATALEN);
	strlcpy(ev.datname, datname ? datname : "", NAMEDATALEN);
	strlcpy(ev.appname, s->appname, NAMEDATALEN);
	if (!dbops_client_addr(&s->addr, ev.client_addr, sizeof(ev.client_addr)))
		ev.client_addr[0] = '\0';
	strlcpy(ev.action, dbops_reaper_action_names[s->action], REAPER_WORD_LEN);
	strlcpy(ev.outcome, dbops_reaper_outcome_names[s->outcome], REAPER_WORD_LEN);
	/* at a character boundary: the text was read as the server keeps it */
	memcpy(ev.query, query, pg_mbcliplen(query, strlen(query), REAPER_QUERY_LEN - 1));

	switch (s->outcome)
	{
		case OUTCOME_SIGNALLED:
			verb = s->action == REAPER_CANCEL ? "cancelled" : "terminated";
			break;
		case OUTCOME_DRY_RUN:
			verb = s->action == REAPER_CANCEL ? "dry run, would cancel" : "dry run, would terminate";
			break;
		default:
			verb = psprintf("did not %s (%s)", dbops_reaper_action_names[s->action],
							dbops_reaper_outcome_names[s->outcome] + strlen("spared: "));
			break;
	}
	switch (s->kind)
	{
		case REAPER_KIND_QUERY:
			what = psprintf("statement running for %s", interval_text(s->duration));
			break;
		case REAPER_KIND_TRANSACTION:
			what = psprintf("transaction open for %s (%s)", interval_text(s->duration),
							dbops_reaper_state_names[s->state]);
			break;
		default:
			what = psprintf("%s for %s", dbops_reaper_state_names[s->state],
							interval_text(s->duration));
			break;
	}
	ereport(LOG,
			(errmsg("dbops reaper: %s session %d (user \"%s\", database \"%s\", application \"%s\"), %s",
					verb, ev.pid, ev.usename, ev.datname, ev.appname, what),
			 s->kind != REAPER_KIND_IDLE && ev.query[0] != '\0' ?
			 errdetail("Query: %s", dbops_bounded(ev.query, 200)) : 0,
			 errhidestmt(true), errhidecontext(true)));

	if (reaper_shared == NULL)
		return;

	LWLockAcquire(reaper_shared->lock, LW_EXCLUSIVE);
	ev.seq = reaper_shared->next_seq++;
	memcpy(&reaper_shared->ring[ev.seq % REAPER_RING_SIZE], &ev, sizeof(ev));
	LWLockRelease(reaper_shared->lock);
}

/* ---------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------
 */
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

static int64
guc_usecs(int ms)
{
	return ms > 0 ? (int64) ms * 1000 : -1;
}

/*
 * A request from source with nothing to reap yet, with the exemptions of
 * the dbops.reaper_exempt_* settings.
 */
static void
request_init(ReaperRequest *req, ReaperSource source)
{
	ListCell   *lc;
	char	   *bad;

	memset(req, 0, sizeof(*req));
	req->source = source;
	for (int s = 0; s < REAPER_NIDLE; s++)
		req->idle_timeout[s] = -1;
	req->query_timeout = -1;
	req->transaction_timeout = -1;
	req->idle_action = REAPER_TERMINATE;
	req->query_action = REAPER_CANCEL;
	req->transaction_action = REAPER_TERMINATE;
	foreach(lc, parse_list(reaper_exempt_roles, true))
	{
		Oid			roleid = get_role_oid((char *) lfirst(lc), true);

		if (OidIsValid(roleid))
			req->exempt_roleids = lappend_oid(req->exempt_roleids, roleid);
	}
	req->exempt_apps = parse_list(reaper_exempt_applications, false);
	/* the setting's check hook refused unknown names */
	(void) dbops_reaper_parse_commands(reaper_exempt_commands, &req->exempt_commands, &bad);
	req->recheck_delay = reaper_recheck_delay;
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

/*
 * One event as the columns of dbops.reaper_events() and dbops.reaper_log:
 * 1.1's, or 1.0's first 13 (where idle_for is the duration of any kind).
 */
#define REAPER_EVENT_COLS_1_0 13
#define REAPER_EVENT_COLS 16

static void
event_datums(const ReaperEvent *ev, Datum *values, bool *nulls, bool v1_0)
{
	memset(nulls, 0, sizeof(bool) * REAPER_EVENT_COLS);
	values[0] = Int64GetDatum((int64) ev->seq);
	values[1] = TimestampTzGetDatum(ev->at);
	values[2] = CStringGetTextDatum(dbops_reaper_source_names[ev->source]);
	values[3] = Int32GetDatum(ev->pid);
	values[4] = CStringGetTextDatum(ev->usename);
	values[5] = CStringGetTextDatum(ev->datname);
	values[6] = CStringGetTextDatum(ev->appname);
	if (ev->client_addr[0] != '\0')
		values[7] = DirectFunctionCall1(inet_in, CStringGetDatum(ev->client_addr));
	else
		nulls[7] = true;
	values[8] = CStringGetTextDatum(dbops_reaper_state_names[ev->state]);
	values[9] = interval_datum(ev->duration);
	nulls[9] = !v1_0 && ev->kind != REAPER_KIND_IDLE;
	values[10] = Int32GetDatum(ev->policy_id);
	nulls[10] = (ev->policy_id == 0);
	values[11] = CStringGetTextDatum(ev->action);
	values[12] = CStringGetTextDatum(ev->outcome);
	if (v1_0)
		return;
	values[13] = CStringGetTextDatum(dbops_reaper_kind_names[ev->kind]);
	values[14] = interval_datum(ev->duration);
	nulls[14] = ev->kind == REAPER_KIND_IDLE;
	values[15] = CStringGetTextDatum(ev->query);
	nulls[15] = ev->query[0] == '\0';
}

/*
 * Copy the ring's new events into dbops.reaper_log (its 1.0 columns under
 * a 1.0 catalog).
 */
static void
drain_ring_to_log(void)
{
	ReaperEvent *events;
	int			n;
	uint64		from;
	uint64		upto;
	SPIPlanPtr	plan;
	bool		v1_0;
	int			ncols;
	Oid			argtypes[REAPER_EVENT_COLS] = {INT8OID, TIMESTAMPTZOID, TEXTOID, INT4OID,
		TEXTOID, TEXTOID, TEXTOID, INETOID, TEXTOID, INTERVALOID, INT4OID, TEXTOID, TEXTOID,
	TEXTOID, INTERVALOID, TEXTOID};

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
	v1_0 = dbops_catalog_outdated();
	ncols = v1_0 ? REAPER_EVENT_COLS_1_0 : REAPER_EVENT_COLS;
	plan = SPI_prepare(v1_0 ?
					   "INSERT INTO dbops.reaper_log (seq, event_time, source, pid, usename, datname,"
					   " application_name, client_addr, state, idle_for, policy_id, action, outcome)"
					   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)" :
					   "INSERT INTO dbops.reaper_log (seq, event_time, source, pid, usename, datname,"
					   " application_name, client_addr, state, idle_for, policy_id, action, outcome,"
					   " kind, running_for, query)"
					   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
					   ncols, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare insert into dbops.reaper_log: %s",
			 SPI_result_code_string(SPI_result));

	for (int i = 0; i < n; i++)
	{
		Datum		values[REAPER_EVENT_COLS];
		bool		isnull[REAPER_EVENT_COLS];
		char		nulls[REAPER_EVENT_COLS];

		CHECK_FOR_INTERRUPTS();
		event_datums(&events[i], values, isnull, v1_0);
		for (int c = 0; c < ncols; c++)
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

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "dbops reaper sweep");

	/* the exempt roles are looked up in the catalog */
	request_init(&req, REAPER_SOURCE_WORKER);
	req.dry_run = reaper_dry_run;
	req.use_policies = true;
	req.idle_timeout[0] = guc_usecs(reaper_idle_timeout);
	req.idle_timeout[1] = req.idle_timeout[2] = guc_usecs(reaper_idle_in_transaction_timeout);
	req.query_timeout = guc_usecs(reaper_query_timeout);
	req.query_action = (ReaperAction) reaper_query_action;
	req.transaction_timeout = guc_usecs(reaper_transaction_timeout);
	req.transaction_action = (ReaperAction) reaper_transaction_action;
	req.report_after = report_after;

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
		policies = dbops_reaper_load_policies(&npolicies);

	dbops_reaper_run(&req, policies, npolicies, &res);

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
	reaper_shared->st.last_active = res.nactive;
	reaper_shared->st.last_in_xact = res.nxact;
	reaper_shared->st.last_exempt = res.nexempt;
	for (int k = 0; k < REAPER_NKINDS; k++)
		reaper_shared->st.reaped[k] += res.nreaped[k];
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
	const char *action = dbops_reaper_action_names[s->action];

	if (s->outcome == OUTCOME_SIGNALLED)
		return action;
	if (s->outcome == OUTCOME_DRY_RUN)
		return psprintf("dry run: %s", action);
	return dbops_reaper_outcome_names[s->outcome];
}

/*
 * An interval argument as microseconds, refused unless positive and
 * countable; -1 for a NULL that null_ok allows.  what says what it is for
 * the hint ("how long a session must have been idle").
 */
static int64
interval_arg(FunctionCallInfo fcinfo, int argno, const char *name,
			 const char *what, bool null_ok)
{
	int64		span;

	if (PG_ARGISNULL(argno))
	{
		if (null_ok)
			return -1;
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name),
				 errhint("Pass %s, e.g. interval '10 minutes'.", what)));
	}
	if (!dbops_interval_usecs(PG_GETARG_INTERVAL_P(argno), &span))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", name),
				 errhint("Pass an interval of less than 290000 years, e.g. interval '10 minutes'.")));
	if (span <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive interval", name),
				 errhint("Pass %s, e.g. interval '10 minutes'.", what)));
	return span;
}

/* The dry_run and action arguments of the on-demand functions. */
static void
dry_run_and_action_args(FunctionCallInfo fcinfo, int argno, ReaperRequest *req,
						ReaperAction *action)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must not be NULL"),
				 errhint("Pass true to list the matches, false to act on them.")));
	req->dry_run = PG_GETARG_BOOL(argno);

	if (PG_ARGISNULL(argno + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("action must not be NULL"),
				 errhint("Valid actions are 'terminate' and 'cancel'.")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno + 1));
	if (strcmp(name, "terminate") == 0)
		*action = REAPER_TERMINATE;
	else if (strcmp(name, "cancel") == 0)
		*action = REAPER_CANCEL;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown action \"%s\"", dbops_bounded(name, DBOPS_ECHO_CHARS)),
				 errhint("Valid actions are 'terminate' and 'cancel'.")));
}

/*
 * Run an on-demand request (the caller's right to signal applies; the
 * policies' exemptions, superuser naming and keep_min floors count, their
 * timeouts and actions do not).  Leaves SPI connected: the sessions in
 * *res live in its memory until the caller's SPI_finish().
 */
static void
run_on_demand(FunctionCallInfo fcinfo, ReaperRequest *req, int ncolumns,
			  ReaperResult *res)
{
	ReaperPolicy *policies;
	int			npolicies;

	req->check_caller = true;
	req->use_policies = false;
	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc, ncolumns);

	SPI_connect();
	policies = dbops_reaper_load_policies(&npolicies);
	dbops_reaper_run(req, policies, npolicies, res);
}

/* The columns both on-demand functions start with: pid .. state. */
static void
session_datums(const ReaperSession *s, Datum *values, bool *nulls)
{
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
	if (dbops_client_addr(&s->addr, addr, sizeof(addr)))
		values[4] = DirectFunctionCall1(inet_in, CStringGetDatum(addr));
	else
		nulls[4] = true;
	values[5] = CStringGetTextDatum(dbops_reaper_state_names[s->state]);
}

/* the columns of dbops.reap_idle() and dbops.reap_runaway() */
#define REAP_IDLE_COLS 8
#define REAP_RUNAWAY_COLS 10

PG_FUNCTION_INFO_V1(dbops_reap_idle);

/*
 * dbops.reap_idle(idle_for, states, dry_run, action)
 */
Datum
dbops_reap_idle(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReaperRequest req;
	ReaperResult res;
	int64		span;
	ArrayType  *states;
	Datum	   *elems;
	bool	   *elemnulls;
	int			nelems;
	ListCell   *lc;

	request_init(&req, REAPER_SOURCE_REAP_IDLE);
	span = interval_arg(fcinfo, 0, "idle_for", "how long a session must have been idle", false);

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
		for (s = 0; s < REAPER_NIDLE; s++)
			if (strcmp(name, dbops_reaper_state_names[s]) == 0)
				break;
		if (s == REAPER_NIDLE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown session state \"%s\"", dbops_bounded(name, DBOPS_ECHO_CHARS)),
					 errhint("Valid states are 'idle', 'idle in transaction' and 'idle in transaction (aborted)'.")));
		req.idle_timeout[s] = span;
	}
	dry_run_and_action_args(fcinfo, 2, &req, &req.idle_action);

	run_on_demand(fcinfo, &req, REAP_IDLE_COLS, &res);

	foreach(lc, res.sessions)
	{
		ReaperSession *s = (ReaperSession *) lfirst(lc);
		Datum		values[REAP_IDLE_COLS];
		bool		nulls[REAP_IDLE_COLS] = {0};

		session_datums(s, values, nulls);
		values[6] = interval_datum(s->duration);
		values[7] = CStringGetTextDatum(combined_action(s));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dbops_reap_runaway);

/*
 * dbops.reap_runaway(query_for, transaction_for, dry_run, action,
 *					  query_pattern)
 */
Datum
dbops_reap_runaway(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReaperRequest req;
	ReaperResult res;
	ReaperAction action;
	ListCell   *lc;

	request_init(&req, REAPER_SOURCE_REAP_RUNAWAY);
	req.query_timeout = interval_arg(fcinfo, 0, "query_for",
									 "how long a statement must have run", true);
	req.transaction_timeout = interval_arg(fcinfo, 1, "transaction_for",
										   "how long a transaction must have been open", true);
	if (req.query_timeout < 0 && req.transaction_timeout < 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query_for and transaction_for must not both be NULL"),
				 errhint("Pass query_for to end statements that have run longer, transaction_for to end transactions open longer, or both.")));
	dry_run_and_action_args(fcinfo, 2, &req, &action);
	req.query_action = req.transaction_action = action;
	if (!PG_ARGISNULL(4))
	{
		char		message[256];

		req.query_pattern = PG_GETARG_TEXT_PP(4);
		if (!dbops_reaper_pattern_valid(req.query_pattern, message, sizeof(message)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
					 errmsg("query_pattern is not a valid regular expression: %s", message),
					 errhint("query_pattern is a regular expression as for the ~ operator: write \\( \\[ \\. \\* \\+ \\? for those characters themselves, (?i) in front to ignore case.")));
	}

	run_on_demand(fcinfo, &req, REAP_RUNAWAY_COLS, &res);

	foreach(lc, res.sessions)
	{
		ReaperSession *s = (ReaperSession *) lfirst(lc);
		Datum		values[REAP_RUNAWAY_COLS];
		bool		nulls[REAP_RUNAWAY_COLS] = {0};

		session_datums(s, values, nulls);
		values[6] = CStringGetTextDatum(dbops_reaper_kind_names[s->kind]);
		values[7] = interval_datum(s->duration);
		if (s->query)
			values[8] = dbops_activity_text(s->query);
		else
			nulls[8] = true;
		values[9] = CStringGetTextDatum(combined_action(s));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* The ring's events, oldest first, in 1.0's or 1.1's columns. */
static Datum
reaper_events(FunctionCallInfo fcinfo, bool v1_0)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ReaperEvent *events;
	int			n;
	uint64		from;
	uint64		upto;

	require_shared();
	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc,
							   v1_0 ? REAPER_EVENT_COLS_1_0 : REAPER_EVENT_COLS);

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

		event_datums(&events[i], values, nulls, v1_0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* dbops.reaper_events() of dbops 1.0 */
PG_FUNCTION_INFO_V1(dbops_reaper_events);

Datum
dbops_reaper_events(PG_FUNCTION_ARGS)
{
	return reaper_events(fcinfo, true);
}

PG_FUNCTION_INFO_V1(dbops_reaper_events_1_1);

Datum
dbops_reaper_events_1_1(PG_FUNCTION_ARGS)
{
	return reaper_events(fcinfo, false);
}

/* the columns of dbops.reaper_status(): 1.0's, then 1.1's */
#define REAPER_STATUS_COLS_1_0 13
#define REAPER_STATUS_COLS 17

static Datum
reaper_status(FunctionCallInfo fcinfo, bool v1_0)
{
	TupleDesc	tupdesc;
	ReaperStatus copy;
	Datum		values[REAPER_STATUS_COLS];
	bool		nulls[REAPER_STATUS_COLS] = {0};
	int64		reaped = 0;

	require_shared();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc,
							   v1_0 ? REAPER_STATUS_COLS_1_0 : REAPER_STATUS_COLS);

	LWLockAcquire(reaper_shared->lock, LW_SHARED);
	copy = reaper_shared->st;
	LWLockRelease(reaper_shared->lock);

	for (int k = 0; k < REAPER_NKINDS; k++)
		reaped += copy.reaped[k];
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
	values[7] = Int64GetDatum(reaped);
	values[8] = Int64GetDatum(copy.spared);
	values[9] = Int64GetDatum(copy.dry_run_matches);
	values[10] = Float8GetDatum(copy.last_sweep_cpu_ns / 1000000.0);
	values[11] = Float8GetDatum(copy.sweeps > 0 ?
								copy.total_sweep_cpu_ns / 1000000.0 / copy.sweeps : 0.0);
	nulls[11] = (copy.sweeps == 0);
	values[12] = BoolGetDatum(!copy.extension_missing);
	nulls[12] = (copy.sweeps == 0);
	values[13] = Int32GetDatum(copy.last_active);
	values[14] = Int32GetDatum(copy.last_in_xact);
	values[15] = Int64GetDatum(copy.reaped[REAPER_KIND_QUERY]);
	values[16] = Int64GetDatum(copy.reaped[REAPER_KIND_TRANSACTION]);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* dbops.reaper_status() of dbops 1.0 */
PG_FUNCTION_INFO_V1(dbops_reaper_status);

Datum
dbops_reaper_status(PG_FUNCTION_ARGS)
{
	return reaper_status(fcinfo, true);
}

PG_FUNCTION_INFO_V1(dbops_reaper_status_1_1);

Datum
dbops_reaper_status_1_1(PG_FUNCTION_ARGS)
{
	return reaper_status(fcinfo, false);
}

/* ---------------------------------------------------------------------
 * Health check
 * ---------------------------------------------------------------------
 */

/*
 * reaper: sessions the reaper (worker or on-demand functions) signalled in the
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
	int			recent_kind[REAPER_NKINDS] = {0};
	bool		configured = reaper_idle_timeout > 0 || reaper_idle_in_transaction_timeout > 0 ||
		reaper_query_timeout > 0 || reaper_transaction_timeout > 0;
	int64		reaped = 0;

	if (reaper_shared == NULL)
	{
		if (configured)
		{
			res->status = DBOPS_WARNING;
			appendStringInfoString(&res->detail,
								   "a dbops.reaper_*_timeout is set, but dbops is not in shared_preload_libraries: no reaper worker runs");
			appendStringInfoString(&res->hint,
								   "Add dbops to shared_preload_libraries and restart, or schedule dbops.reap_idle() and dbops.reap_runaway() with pg_cron.");
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
			strcmp(ev->outcome, dbops_reaper_outcome_names[OUTCOME_SIGNALLED]) == 0)
		{
			recent++;
			recent_kind[ev->kind]++;
			if (ev->source == REAPER_SOURCE_WORKER)
				recent_worker++;
		}
	}
	LWLockRelease(reaper_shared->lock);

	dbops_check_value(res, recent, "sessions/h");
	appendStringInfo(&res->detail, "%d sessions reaped in the last hour (%d by the worker)",
					 recent, recent_worker);
	if (recent_kind[REAPER_KIND_QUERY] > 0 || recent_kind[REAPER_KIND_TRANSACTION] > 0)
		appendStringInfo(&res->detail, ", %d for a long statement, %d for a long transaction",
						 recent_kind[REAPER_KIND_QUERY], recent_kind[REAPER_KIND_TRANSACTION]);
	for (int k = 0; k < REAPER_NKINDS; k++)
		reaped += copy.reaped[k];
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
						 timestamptz_to_str(copy.last_sweep), copy.sweeps, reaped, copy.spared);
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
