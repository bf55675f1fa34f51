/*-------------------------------------------------------------------------
 *
 * reaper_sweep.c
 *	  The reaper's sweep, shared by its background worker, dbops.reap_idle()
 *	  and dbops.reap_runaway() (reaper.c): one pass over the live backend
 *	  status array, the exemptions, the winning policy of each kind a
 *	  session can be reaped for (idle too long, statement running too long,
 *	  transaction open too long), keep_min floors, and a re-check of each
 *	  victim right before it is signalled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>
#include <netdb.h>
#include <sys/socket.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_collation.h"
#include "commands/dbcommands.h"
#include "commands/progress.h"
#include "common/ip.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "regex/regex.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/backend_progress.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/inet.h"

#include "dbops.h"
#include "livestatus.h"
#include "reaper.h"

const char *const dbops_reaper_kind_names[REAPER_NKINDS] = {
	"idle", "query", "transaction"
};
const char *const dbops_reaper_state_names[REAPER_NSTATES] = {
	"idle", "idle in transaction", "idle in transaction (aborted)",
	"active", "fastpath function call"
};
const char *const dbops_reaper_action_names[3] = {"terminate", "cancel", "exempt"};
const char *const dbops_reaper_outcome_names[10] = {
	"", "signalled", "dry run", "spared: became active", "gone", "spared: keep_min",
	"spared: statement ended", "spared: transaction ended", "spared: maintenance",
	"skipped: idle in transaction"
};
const char *const dbops_reaper_source_names[3] = {"worker", "reap_idle", "reap_runaway"};

/* ---------------------------------------------------------------------
 * Maintenance commands
 * ---------------------------------------------------------------------
 */
static const struct
{
	const char *name;
	int			bit;
}			reaper_commands[] =
{
	{"vacuum", REAPER_MAINT_VACUUM},
	{"vacuum full", REAPER_MAINT_VACUUM_FULL},
	{"analyze", REAPER_MAINT_ANALYZE},
	{"cluster", REAPER_MAINT_CLUSTER},
	{"create index", REAPER_MAINT_CREATE_INDEX},
	{"create index concurrently", REAPER_MAINT_CREATE_INDEX_CONCURRENTLY},
	{"reindex", REAPER_MAINT_REINDEX},
	{"reindex concurrently", REAPER_MAINT_REINDEX_CONCURRENTLY},
	{"copy", REAPER_MAINT_COPY},
};

/*
 * Parse dbops.reaper_exempt_commands: comma-separated command names, case
 * and runs of blanks ignored.  False, with *bad the first unknown name,
 * when one is not a command the reaper recognises.
 */
bool
dbops_reaper_parse_commands(const char *value, int *mask, char **bad)
{
	const char *p = value ? value : "";

	*mask = 0;
	*bad = NULL;
	while (*p)
	{
		StringInfoData name;
		bool		blank = false;
		int			i;

		initStringInfo(&name);
		for (; *p && *p != ','; p++)
		{
			if (isspace((unsigned char) *p))
				blank = true;
			else
			{
				if (blank && name.len > 0)
					appendStringInfoChar(&name, ' ');
				blank = false;
				appendStringInfoChar(&name, pg_ascii_tolower((unsigned char) *p));
			}
		}
		if (*p == ',')
			p++;
		if (name.len == 0)
			continue;
		for (i = 0; i < lengthof(reaper_commands); i++)
			if (strcmp(name.data, reaper_commands[i].name) == 0)
				break;
		if (i == lengthof(reaper_commands))
		{
			*bad = name.data;
			return false;
		}
		*mask |= reaper_commands[i].bit;
		pfree(name.data);
	}
	return true;
}

/*
 * The maintenance command a backend runs, from its progress reporting
 * (which only the server's own code for that command sets, and which ends
 * with the command): 0 for none.
 */
static int
maintenance_of(const PgBackendStatus *be)
{
	switch (be->st_progress_command)
	{
		case PROGRESS_COMMAND_VACUUM:
			return REAPER_MAINT_VACUUM;
		case PROGRESS_COMMAND_ANALYZE:
			return REAPER_MAINT_ANALYZE;
		case PROGRESS_COMMAND_CLUSTER:
			return be->st_progress_param[PROGRESS_CLUSTER_COMMAND] ==
				PROGRESS_CLUSTER_COMMAND_VACUUM_FULL ?
				REAPER_MAINT_VACUUM_FULL : REAPER_MAINT_CLUSTER;
		case PROGRESS_COMMAND_CREATE_INDEX:
			switch (be->st_progress_param[PROGRESS_CREATEIDX_COMMAND])
			{
				case PROGRESS_CREATEIDX_COMMAND_CREATE:
					return REAPER_MAINT_CREATE_INDEX;
				case PROGRESS_CREATEIDX_COMMAND_CREATE_CONCURRENTLY:
					return REAPER_MAINT_CREATE_INDEX_CONCURRENTLY;
				case PROGRESS_CREATEIDX_COMMAND_REINDEX:
					return REAPER_MAINT_REINDEX;
				case PROGRESS_CREATEIDX_COMMAND_REINDEX_CONCURRENTLY:
					return REAPER_MAINT_REINDEX_CONCURRENTLY;
			}
			return 0;
		case PROGRESS_COMMAND_COPY:
			return REAPER_MAINT_COPY;
		default:
			return 0;
	}
}

/* ---------------------------------------------------------------------
 * The live backend status array
 * ---------------------------------------------------------------------
 */

/*
 * The array is read with dbops_read_backend_status_slot() (livestatus.c),
 * never through the backend-local snapshot pg_stat_activity uses, so that
 * the re-check right before a signal sees the session as it is now.
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
		case STATE_RUNNING:
			return REAPER_STATE_ACTIVE;
		case STATE_FASTPATH:
			return REAPER_STATE_FASTPATH;
		default:
			return -1;
	}
}

static bool
state_running(int state)
{
	return state == REAPER_STATE_ACTIVE || state == REAPER_STATE_FASTPATH;
}

typedef struct SlotCopy
{
	int			pid;
	BackendType type;
	int			state;			/* state_index() */
	TimestampTz state_start;
	TimestampTz query_start;
	TimestampTz xact_start;
	Oid			dbid;
	Oid			userid;
	int			maintenance;	/* REAPER_MAINT_* */
	SockAddr	addr;
	char		appname[NAMEDATALEN];
} SlotCopy;

/* Copy one live entry consistently (the st_changecount protocol). */
static void
read_slot(volatile PgBackendStatus *be, SlotCopy *out, char *activity)
{
	PgBackendStatus copy;

	dbops_read_backend_status_slot(be, &copy, out->appname, activity);
	out->pid = copy.st_procpid;
	out->type = copy.st_backendType;
	out->state = state_index(copy.st_state);
	out->state_start = copy.st_state_start_timestamp;
	out->query_start = copy.st_activity_start_timestamp;
	out->xact_start = copy.st_xact_start_timestamp;
	out->dbid = copy.st_databaseid;
	out->userid = copy.st_userid;
	out->maintenance = maintenance_of(&copy);
	memcpy(&out->addr, &copy.st_clientaddr, sizeof(SockAddr));
}


/* ---------------------------------------------------------------------
 * Policies
 * ---------------------------------------------------------------------
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

/*
 * Would the ~ operator accept this regular expression?  Compiled once and
 * freed at once (before 16 the engine's memory is malloc'd); errbuf, when
 * given, receives the engine's message.  Matching goes through ~ itself
 * (textregexeq), which keeps compiled expressions in its cache.
 */
bool
dbops_reaper_pattern_valid(const text *pattern, char *errbuf, size_t len)
{
	int			plen = VARSIZE_ANY_EXHDR(pattern);
	pg_wchar   *wide = palloc((plen + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(VARDATA_ANY(pattern), wide, plen);
	regex_t		re;
	int			rc;

	rc = pg_regcomp(&re, wide, wlen, REG_ADVANCED | REG_NOSUB, C_COLLATION_OID);
	pfree(wide);
	if (rc == REG_OKAY)
	{
		pg_regfree(&re);
		return true;
	}
	if (errbuf)
		pg_regerror(rc, &re, errbuf, len);
	return false;
}

/* An interval column read as seconds, as microseconds; -1 when NULL. */
static int64
policy_timeout(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	double		usecs;

	if (isnull)
		return -1;

	/*
	 * A timeout too long to count in microseconds (a row older than the
	 * validation trigger) is one no session ever reaches.
	 */
	usecs = DatumGetFloat8(d) * USECS_PER_SEC;
	return usecs >= (double) PG_INT64_MAX ? PG_INT64_MAX : (int64) rint(Max(usecs, 0));
}

/*
 * Load the enabled rows of dbops.reaper_policies (SPI must be connected, in
 * a transaction).  Roles and databases are resolved to OIDs here; a name
 * that does not exist leaves a policy that matches nothing, and so does a
 * pattern LIKE or the regular expression engine refuses (a row written
 * while the validation trigger was disabled).
 *
 * The worker and superusers run this query: every function, operator and
 * type in it is schema-qualified, so that it cannot resolve to an object of
 * a schema on the search_path (an exact-match public.*(numeric, integer)
 * would beat pg_catalog's *(numeric, numeric)).  Under a 1.0 catalog (the
 * library updated, ALTER EXTENSION not yet run) the table has idle policies
 * only.
 */
ReaperPolicy *
dbops_reaper_load_policies(int *npolicies)
{
	ReaperPolicy *policies;
	bool		old = dbops_catalog_outdated();
	int			ret;

	ret = SPI_execute(old ?
					  "SELECT id, role_name, database_name, application_name, client_addr, state,"
					  " pg_catalog.extract('epoch', idle_timeout)::pg_catalog.float8,"
					  " action, keep_min"
					  " FROM dbops.reaper_policies WHERE enabled ORDER BY id" :
					  "SELECT id, role_name, database_name, application_name, client_addr, state,"
					  " pg_catalog.extract('epoch', idle_timeout)::pg_catalog.float8,"
					  " action, keep_min,"
					  " pg_catalog.extract('epoch', query_timeout)::pg_catalog.float8,"
					  " pg_catalog.extract('epoch', transaction_timeout)::pg_catalog.float8,"
					  " query_pattern"
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
		int64		timeouts[REAPER_NKINDS];
		bool		isnull;
		Datum		d;
		char	   *str;

		CHECK_FOR_INTERRUPTS();

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
			if (!like_pattern_valid(p->app_pattern))
				p->unusable = true;
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
				if (strcmp(str, dbops_reaper_state_names[s]) == 0)
					p->state = s;
			p->specificity++;
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

		timeouts[REAPER_KIND_IDLE] = policy_timeout(tup, desc, 7);
		timeouts[REAPER_KIND_QUERY] = old ? -1 : policy_timeout(tup, desc, 10);
		timeouts[REAPER_KIND_TRANSACTION] = old ? -1 : policy_timeout(tup, desc, 11);
		if (!old)
		{
			d = SPI_getbinval(tup, desc, 12, &isnull);
			if (!isnull)
			{
				p->query_pattern = DatumGetTextPCopy(d);
				p->specificity++;
				if (!dbops_reaper_pattern_valid(p->query_pattern, NULL, 0))
					p->unusable = true;
			}
		}

		/* the constraints allow one timeout; the first set decides the kind */
		p->kind = REAPER_KIND_ANY;
		p->timeout = -1;
		if (p->action != REAPER_EXEMPT)
		{
			for (int k = 0; k < REAPER_NKINDS && p->kind == REAPER_KIND_ANY; k++)
				if (timeouts[k] >= 0)
				{
					p->kind = (ReaperKind) k;
					p->timeout = timeouts[k];
				}
			/* a reaping row without a timeout (constraints disabled) */
			if (p->kind == REAPER_KIND_ANY)
				p->unusable = true;
		}
	}
	*npolicies = (int) SPI_processed;
	return policies;
}

/* What policy matching computes at most once per session. */
typedef struct MatchCache
{
	bool		inet_done;
	Datum		inet;			/* (Datum) 0: no address */
	text	   *appname;		/* the application name, once needed */
	text	   *query;			/* the query text, once needed */
} MatchCache;

/* Does the session's query text match the regular expression (as ~ does)? */
static bool
query_matches(text *pattern, const ReaperSession *s, MatchCache *cache)
{
	if (cache->query == NULL)
		cache->query = cstring_to_text(s->query ? s->query : "");
	return DatumGetBool(DirectFunctionCall2Coll(textregexeq, C_COLLATION_OID,
												PointerGetDatum(cache->query),
												PointerGetDatum(pattern)));
}

static bool
policy_matches(const ReaperPolicy *p, const ReaperSession *s, MatchCache *cache)
{
	if (p->state >= 0 && p->state != s->state)
		return false;
	if (p->has_role && p->roleid != s->roleid)
		return false;
	if (p->has_db && p->dbid != s->dbid)
		return false;
	if (p->unusable)
		return false;
	if (p->app_pattern)
	{
		if (cache->appname == NULL)
			cache->appname = cstring_to_text(s->appname);
		if (!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
												  PointerGetDatum(cache->appname),
												  PointerGetDatum(p->app_pattern))))
			return false;
	}
	if (p->has_cidr)
	{
		if (!cache->inet_done)
		{
			char		buf[REAPER_ADDR_LEN];

			cache->inet_done = true;
			cache->inet = dbops_client_addr(&s->addr, buf, sizeof(buf)) ?
				DirectFunctionCall1(inet_in, CStringGetDatum(buf)) : (Datum) 0;
		}
		if (cache->inet == (Datum) 0 ||
			!DatumGetBool(DirectFunctionCall2(network_subeq, cache->inet, p->cidr)))
			return false;
	}
	if (p->query_pattern && !query_matches(p->query_pattern, s, cache))
		return false;
	return true;
}

/*
 * The most specific matching policy for one kind: of the policies of that
 * kind and the exempt ones, the one with the most match columns set; on a
 * tie an exempt policy wins, then the lowest id.
 */
static ReaperPolicy *
winning_policy(ReaperPolicy *policies, int npolicies, ReaperKind kind,
			   const ReaperSession *s, MatchCache *cache)
{
	ReaperPolicy *best = NULL;

	for (int i = 0; i < npolicies; i++)
	{
		ReaperPolicy *p = &policies[i];

		if (p->kind != REAPER_KIND_ANY && p->kind != kind)
			continue;
		if (best != NULL &&
			(p->specificity < best->specificity ||
			 (p->specificity == best->specificity &&
			  (best->action == REAPER_EXEMPT || p->action != REAPER_EXEMPT))))
			continue;			/* cannot beat the current winner */
		if (policy_matches(p, s, cache))
			best = p;
	}
	return best;
}

/* ---------------------------------------------------------------------
 * The sweep
 * ---------------------------------------------------------------------
 */

/* pg_signal_backend()'s rules, for the caller of the on-demand functions */
static bool
caller_may_signal(Oid target_role)
{
	if (!OidIsValid(target_role) || superuser_arg(target_role))
		return superuser();
	return has_privs_of_role(GetUserId(), target_role) ||
		has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND);
}

static bool
kind_applies(ReaperKind kind, const ReaperSession *s)
{
	switch (kind)
	{
		case REAPER_KIND_IDLE:
			return s->state >= 0 && s->state < REAPER_NIDLE;
		case REAPER_KIND_QUERY:
			return state_running(s->state) && s->query_start != 0;
		case REAPER_KIND_TRANSACTION:
			return s->xact_start != 0;
	}
	return false;
}

static TimestampTz
kind_since(ReaperKind kind, const ReaperSession *s)
{
	switch (kind)
	{
		case REAPER_KIND_IDLE:
			return s->state_start;
		case REAPER_KIND_QUERY:
			return s->query_start;
		case REAPER_KIND_TRANSACTION:
			return s->xact_start;
	}
	return 0;
}

static int
session_oldest_first(const void *a, const void *b)
{
	const ReaperSession *sa = *(ReaperSession *const *) a;
	const ReaperSession *sb = *(ReaperSession *const *) b;

	if (sa->since != sb->since)
		return sa->since < sb->since ? -1 : 1;
	return sa->pid - sb->pid;
}

/*
 * Re-read the victim's live entry right before signalling it.  Spared: a
 * session that exited, one that left the idle spell it was due for (it ran
 * a statement, even a short one), whose statement ended (a new one that
 * started since the sweep is spared too), whose transaction ended, or that
 * started exempt maintenance.  The entry's query text is what the event
 * records.
 */
static ReaperOutcome
recheck_and_signal(const ReaperRequest *req, ReaperSession *s, char *activity)
{
	int			nslots;
	volatile PgBackendStatus *array = dbops_backend_status_array(&nslots);
	SlotCopy	now;
	int			sig;

	read_slot(&array[s->slot], &now, activity);
	if (now.pid != s->pid)
		return OUTCOME_GONE;
	switch (s->kind)
	{
		case REAPER_KIND_IDLE:
			if (now.state != s->state || now.state_start != s->state_start)
				return OUTCOME_ACTIVE;
			break;
		case REAPER_KIND_QUERY:
			if (!state_running(now.state) || now.query_start != s->query_start)
				return OUTCOME_STATEMENT_ENDED;
			break;
		case REAPER_KIND_TRANSACTION:
			if (now.xact_start != s->xact_start)
				return OUTCOME_TRANSACTION_ENDED;
			/* a cancel ends a transaction only through its statement */
			if (s->action == REAPER_CANCEL && !state_running(now.state))
				return OUTCOME_STATEMENT_ENDED;
			break;
	}
	if (s->kind != REAPER_KIND_IDLE && (now.maintenance & req->exempt_commands))
		return OUTCOME_MAINTENANCE;
	s->query = pstrdup(activity);
	if (req->dry_run)
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

/* What one kind decides about a session that is due for it. */
typedef struct KindVerdict
{
	ReaperPolicy *policy;
	ReaperAction action;
	int64		timeout;
	TimestampTz since;
	bool		skip;			/* due, but a cancel cannot end it */
} KindVerdict;

/*
 * Is the session due for this kind?  Fills *v when it is; sets *exempt when
 * an exemption (maintenance, an exempt policy, a superuser's session no
 * policy names) spared it.
 */
static bool
kind_due(const ReaperRequest *req, ReaperPolicy *policies, int npolicies,
		 ReaperKind kind, ReaperSession *s, MatchCache *cache, TimestampTz now,
		 KindVerdict *v, bool *exempt)
{
	ReaperPolicy *p;

	if (kind != REAPER_KIND_IDLE && (s->maintenance & req->exempt_commands))
	{
		*exempt = true;
		return false;
	}
	p = winning_policy(policies, npolicies, kind, s, cache);
	if (p && p->action == REAPER_EXEMPT)
	{
		*exempt = true;
		return false;
	}
	if (p)
		p->nmatching++;

	v->policy = p;
	if (p && req->use_policies)
	{
		v->timeout = p->timeout;
		v->action = p->action;
	}
	else if (kind == REAPER_KIND_IDLE)
	{
		v->timeout = req->idle_timeout[s->state];
		v->action = req->idle_action;
	}
	else if (kind == REAPER_KIND_QUERY)
	{
		v->timeout = req->query_timeout;
		v->action = req->query_action;
	}
	else
	{
		v->timeout = req->transaction_timeout;
		v->action = req->transaction_action;
	}
	v->since = kind_since(kind, s);
	if (v->timeout < 0 || now - v->since < v->timeout)
		return false;

	if (req->query_pattern && !query_matches(req->query_pattern, s, cache))
		return false;

	/* superusers' sessions only when a policy names their role */
	if (superuser_arg(s->roleid) && !(p && p->has_role && p->roleid == s->roleid))
	{
		*exempt = true;
		return false;
	}
	v->skip = (kind == REAPER_KIND_TRANSACTION && v->action == REAPER_CANCEL &&
			   !state_running(s->state));
	return true;
}

void
dbops_reaper_run(const ReaperRequest *req, ReaperPolicy *policies, int npolicies,
				 ReaperResult *res)
{
	int			nslots;
	volatile PgBackendStatus *array = dbops_backend_status_array(&nslots);
	ReaperSession *sessions = palloc0(sizeof(ReaperSession) * nslots);
	ReaperSession **due = palloc(sizeof(ReaperSession *) * nslots);
	char	   *activity = palloc(pgstat_track_activity_query_size);
	int			ndue = 0;
	bool		in_play[REAPER_NKINDS];
	bool		need_query = req->query_pattern != NULL;
	TimestampTz now = GetCurrentTimestamp();

	memset(res, 0, sizeof(*res));
	res->now = now;

	/*
	 * Idle sessions are always looked at (they are counted); running
	 * statements and open transactions when something may reap them.
	 */
	in_play[REAPER_KIND_IDLE] = true;
	in_play[REAPER_KIND_QUERY] = req->query_timeout >= 0;
	in_play[REAPER_KIND_TRANSACTION] = req->transaction_timeout >= 0;
	for (int i = 0; i < npolicies; i++)
	{
		policies[i].nmatching = 0;
		policies[i].nremoved = 0;
		if (policies[i].query_pattern)
			need_query = true;
		if (req->use_policies && policies[i].kind != REAPER_KIND_ANY)
			in_play[policies[i].kind] = true;
	}

	/*
	 * The query text is copied in the sweep only to match a pattern, or to
	 * list it (the on-demand functions); the re-check before a signal reads
	 * it for the event.
	 */
	if (req->source != REAPER_SOURCE_WORKER)
		need_query = true;

	for (int slot = 0; slot < nslots; slot++)
	{
		SlotCopy	copy;
		ReaperSession *s;
		MatchCache	cache = {0};
		KindVerdict best = {0};
		int			best_kind = -1;
		bool		candidate = false;
		bool		exempt = false;

		CHECK_FOR_INTERRUPTS();

		read_slot(&array[slot], &copy, need_query ? activity : NULL);
		if (copy.pid <= 0 || copy.type != B_BACKEND || copy.pid == MyProcPid)
			continue;
		res->nseen++;
		if (copy.state < 0)
			continue;			/* state unknown: track_activities is off */
		if (copy.state < REAPER_NIDLE)
			res->nidle++;
		else
			res->nactive++;
		if (copy.xact_start != 0)
			res->nxact++;

		s = &sessions[slot];
		s->slot = slot;
		s->pid = copy.pid;
		s->roleid = copy.userid;
		s->dbid = copy.dbid;
		s->state = copy.state;
		s->state_start = copy.state_start;
		s->query_start = copy.query_start;
		s->xact_start = copy.xact_start;
		s->addr = copy.addr;
		memcpy(s->appname, copy.appname, NAMEDATALEN);
		s->outcome = OUTCOME_NONE;

		for (int k = 0; k < REAPER_NKINDS; k++)
			if (in_play[k] && kind_applies((ReaperKind) k, s))
				candidate = true;
		if (!candidate)
			continue;

		if (list_member_oid(req->exempt_roleids, s->roleid))
			exempt = true;
		else
		{
			ListCell   *lc;

			foreach(lc, req->exempt_apps)
				if (strcmp(s->appname, (const char *) lfirst(lc)) == 0)
					exempt = true;
		}
		if (exempt)
		{
			res->nexempt++;
			continue;
		}
		if (need_query)
			s->query = pstrdup(activity);
		s->maintenance = copy.maintenance;

		for (int k = 0; k < REAPER_NKINDS; k++)
		{
			KindVerdict v = {0};

			if (!in_play[k] || !kind_applies((ReaperKind) k, s))
				continue;
			if (!kind_due(req, policies, npolicies, (ReaperKind) k, s, &cache,
						  now, &v, &exempt))
				continue;

			/*
			 * Of the kinds it is due for, a signal beats a skip, and a
			 * terminate beats a cancel; then the first kind.
			 */
			if (best_kind < 0 ||
				(best.skip && !v.skip) ||
				(!v.skip && v.action == REAPER_TERMINATE &&
				 best.action == REAPER_CANCEL))
			{
				best = v;
				best_kind = k;
			}
		}
		if (best_kind < 0)
		{
			if (exempt)
				res->nexempt++;
			continue;
		}
		if (req->check_caller && !caller_may_signal(s->roleid))
			continue;

		s->kind = (ReaperKind) best_kind;
		s->policy = best.policy;
		s->action = best.action;
		s->timeout = best.timeout;
		s->since = best.since;
		s->duration = now - best.since;
		if (best.skip)
			s->outcome = OUTCOME_IDLE_IN_XACT;
		due[ndue++] = s;
	}

	if (ndue == 0)
		return;

	qsort(due, ndue, sizeof(ReaperSession *), session_oldest_first);

	if (req->recheck_delay > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 req->recheck_delay, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	for (int i = 0; i < ndue; i++)
	{
		ReaperSession *s = due[i];
		ReaperPolicy *p = s->policy;

		CHECK_FOR_INTERRUPTS();

		if (s->outcome == OUTCOME_IDLE_IN_XACT)
		{
			/* listed by the on-demand function, neither signalled nor recorded */
			res->sessions = lappend(res->sessions, s);
			continue;
		}
		if (p && p->keep_min > 0 && p->nremoved >= p->nmatching - p->keep_min)
		{
			s->outcome = OUTCOME_KEEP_MIN;
			res->nspared++;
			res->sessions = lappend(res->sessions, s);
			continue;
		}

		s->outcome = recheck_and_signal(req, s, activity);
		if (s->outcome == OUTCOME_SIGNALLED || s->outcome == OUTCOME_DRY_RUN)
		{
			if (p)
				p->nremoved++;
		}
		if (s->outcome == OUTCOME_SIGNALLED)
			res->nreaped[s->kind]++;
		else if (s->outcome == OUTCOME_DRY_RUN)
			res->ndryrun++;
		else if (s->outcome != OUTCOME_GONE)
			res->nspared++;
		res->sessions = lappend(res->sessions, s);

		/*
		 * Record every action and every spared victim; a worker dry run
		 * records a match once (when it first became due), the on-demand
		 * functions' dry runs are previews and not recorded.
		 */
		if (s->outcome == OUTCOME_DRY_RUN &&
			(req->source != REAPER_SOURCE_WORKER ||
			 s->since + s->timeout <= req->report_after))
			continue;
		if (s->outcome == OUTCOME_GONE)
			continue;
		dbops_reaper_record_event(req, s);
	}
}
