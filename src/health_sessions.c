/*-------------------------------------------------------------------------
 *
 * health_sessions.c
 *	  The session checks of dbops.health(): connections, long_query,
 *	  idle_in_transaction and long_transaction, read from the backend status
 *	  array (no pg_stat_activity, no query); and the description of a session
 *	  that the other checks naming sessions share.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"
#include "livestatus.h"

/*
 * connections: client backends in use as a percentage of the slots open to
 * ordinary roles (max_connections less the reserved ones).
 */
void
dbops_check_connections(DbopsReport *report, DbopsCheckResult *res)
{
	int			nbackends = pgstat_fetch_stat_numbackends();
	int			usable = MaxConnections - DBOPS_RESERVED_CONNECTIONS;
	int			used = 0;
	int			nstate[3] = {0, 0, 0};	/* active, idle, idle in transaction */
	Oid		   *dbs = palloc(sizeof(Oid) * Max(nbackends, 1));
	int		   *cnts = palloc0(sizeof(int) * Max(nbackends, 1));
	int			ndbs = 0;
	DbopsTopN	top = {0};

	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = dbops_local_beentry(i);
		PgBackendStatus *be;
		int			d;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_backendType != B_BACKEND)
			continue;
		used++;
		switch (be->st_state)
		{
			case STATE_RUNNING:
			case STATE_FASTPATH:
				nstate[0]++;
				break;
			case STATE_IDLE:
				nstate[1]++;
				break;
			case STATE_IDLEINTRANSACTION:
			case STATE_IDLEINTRANSACTION_ABORTED:
				nstate[2]++;
				break;
			default:
				break;
		}
		for (d = 0; d < ndbs; d++)
			if (dbs[d] == be->st_databaseid)
				break;
		if (d == ndbs)
			dbs[ndbs++] = be->st_databaseid;
		cnts[d]++;
	}

	for (int d = 0; d < ndbs; d++)
		dbops_topn_add(&top, cnts[d], d);

	dbops_check_value(res, dbops_rounded(usable > 0 ? 100.0 * used / usable : 100.0, 2), "%");
	appendStringInfo(&res->detail, "%d of %d connections in use (max_connections %d, %d reserved)",
					 used, usable, MaxConnections, DBOPS_RESERVED_CONNECTIONS);
	if (dbops_can_read_all_stats())
		appendStringInfo(&res->detail, "; %d active, %d idle, %d idle in transaction",
						 nstate[0], nstate[1], nstate[2]);
	for (int t = 0; t < top.n; t++)
	{
		Oid			dbid = dbs[top.item[t]];
		char	   *dbname = OidIsValid(dbid) ? get_database_name(dbid) : NULL;

		appendStringInfo(&res->detail, "%s%s: %d", t == 0 ? "; by database: " : ", ",
						 dbname ? quote_identifier(dbname) : "(none)", cnts[top.item[t]]);
	}
	appendStringInfoString(&res->hint,
						   "Put a connection pooler (PgBouncer) in front, end idle sessions (pg_terminate_backend), or raise max_connections.");
}

/*
 * The sessions of client backends and background workers (pg_cron jobs run
 * as either) other than our own, for the checks about what sessions do.
 * Returns false, with the check skipped, when the caller may not see them.
 */
static bool
sessions_visible(DbopsCheckResult *res)
{
	if (dbops_can_read_all_stats())
		return true;
	dbops_check_skip_all_stats(res, "reading other roles' sessions needs the privileges of pg_read_all_stats");
	return false;
}

/* The session of pid in pgstat's copy of the backend status array, or NULL. */
PgBackendStatus *
dbops_session_by_pid(int pid)
{
	int			nbackends = pgstat_fetch_stat_numbackends();

	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = dbops_local_beentry(i);

		if (local != NULL && local->backendStatus.st_procpid == pid)
			return &local->backendStatus;
	}
	return NULL;
}

/*
 * "pid 42 (alice@app, 3m 04s): SELECT ...", the query on one line, clipped;
 * with full, also the application and the state, and secs is how long the
 * transaction has been open (negative: not known): "pid 42 (alice@app,
 * application psql, idle in transaction, open 1h 02m): SELECT ...".
 */
void
dbops_append_session(StringInfo buf, PgBackendStatus *be, double secs, bool full)
{
	char	   *user = GetUserNameFromId(be->st_userid, true);
	char	   *db = OidIsValid(be->st_databaseid) ? get_database_name(be->st_databaseid) : NULL;
	char	   *query = be->st_activity_raw ? pgstat_clip_activity(be->st_activity_raw) : NULL;
	const char *state;

	appendStringInfo(buf, "pid %d (%s@%s, ", be->st_procpid,
					 user ? quote_identifier(user) : "?",
					 db ? quote_identifier(db) : "?");
	if (full)
	{
		if (be->st_appname && be->st_appname[0] != '\0')
			appendStringInfo(buf, "application %s", quote_identifier(be->st_appname));
		else
			appendStringInfoString(buf, "no application_name");
		state = dbops_backend_state_name(be->st_state);
		appendStringInfo(buf, ", %s, open ", state ? state : "state unknown");
	}
	if (secs >= 0)
		dbops_append_duration(buf, secs);
	else
		appendStringInfoString(buf, "for an unknown time");
	appendStringInfoChar(buf, ')');
	if (query && query[0] != '\0')
	{
		appendStringInfoString(buf, ": ");
		dbops_append_clipped(buf, query, 60);
	}
}

/* What session_check() looks for. */
typedef enum SessionKind
{
	SESSIONS_ACTIVE,			/* long_query: a query running */
	SESSIONS_IDLE_IN_XACT,		/* idle_in_transaction */
	SESSIONS_OPEN_XACT			/* long_transaction: any state */
} SessionKind;

static void
session_check(DbopsCheckResult *res, SessionKind kind)
{
	int			nbackends = pgstat_fetch_stat_numbackends();
	TimestampTz now = GetCurrentTimestamp();
	DbopsTopN	top = {0};
	int			count = 0;
	int			untracked = 0;

	if (!sessions_visible(res))
		return;

	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = dbops_local_beentry(i);
		PgBackendStatus *be;
		TimestampTz since;

		CHECK_FOR_INTERRUPTS();
		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid == MyProcPid)
			continue;
		/* pg_cron jobs run as background workers too; transactions: clients */
		if (be->st_backendType != B_BACKEND &&
			(kind == SESSIONS_OPEN_XACT || be->st_backendType != B_BG_WORKER))
			continue;
		if (be->st_state == STATE_DISABLED)
		{
			untracked++;
			continue;
		}
		switch (kind)
		{
			case SESSIONS_IDLE_IN_XACT:
				if (be->st_state != STATE_IDLEINTRANSACTION &&
					be->st_state != STATE_IDLEINTRANSACTION_ABORTED)
					continue;
				since = be->st_state_start_timestamp;
				break;
			case SESSIONS_ACTIVE:
				if (be->st_state != STATE_RUNNING && be->st_state != STATE_FASTPATH)
					continue;
				since = be->st_activity_start_timestamp;
				break;
			default:
				since = be->st_xact_start_timestamp;
				break;
		}
		if (since == 0)
			continue;
		count++;
		dbops_topn_add(&top, dbops_seconds_between(since, now), i);
	}

	if (count == 0 && untracked > 0)
	{
		dbops_check_unknown(res, "%d session(s) do not report their activity (track_activities is off)",
							untracked);
		appendStringInfoString(&res->hint, "Turn track_activities on (it is on by default).");
		return;
	}
	dbops_check_value(res, dbops_rounded(top.n > 0 ? Max(top.score[0], 0) : 0, 3), "s");
	if (untracked > 0)
		appendStringInfo(&res->detail, "%d session(s) do not report their activity (track_activities is off); ",
						 untracked);
	if (count == 0)
	{
		appendStringInfoString(&res->detail,
							   kind == SESSIONS_IDLE_IN_XACT ? "no session is idle in transaction" :
							   kind == SESSIONS_ACTIVE ? "no other query is running" :
							   "no other transaction is open");
		return;
	}
	switch (kind)
	{
		case SESSIONS_IDLE_IN_XACT:
			appendStringInfo(&res->detail, "%d session(s) idle in transaction, longest: ", count);
			break;
		case SESSIONS_ACTIVE:
			appendStringInfo(&res->detail, "%d active quer%s, longest: ",
							 count, count == 1 ? "y" : "ies");
			break;
		default:
			appendStringInfo(&res->detail, "%d open transaction(s), oldest: ", count);
			break;
	}
	for (int t = 0; t < top.n; t++)
	{
		if (t > 0)
			appendStringInfoString(&res->detail, "; ");
		dbops_append_session(&res->detail, &dbops_local_beentry(top.item[t])->backendStatus,
							 top.score[t], kind == SESSIONS_OPEN_XACT);
	}
	switch (kind)
	{
		case SESSIONS_IDLE_IN_XACT:
			appendStringInfoString(&res->hint,
								   "Find the application that leaves transactions open (it holds locks and blocks vacuum); end them with pg_terminate_backend(pid) and set idle_in_transaction_session_timeout.");
			break;
		case SESSIONS_ACTIVE:
			appendStringInfoString(&res->hint,
								   "Look at the query and its plan; cancel it with pg_cancel_backend(pid) if it must not run, and consider statement_timeout.");
			break;
		default:
			appendStringInfoString(&res->hint,
								   "A transaction open this long keeps its locks and holds back vacuum for the whole cluster (see xmin_horizon), even while it runs only short queries: find the application that keeps it open and have it commit sooner; end it with pg_terminate_backend(pid); consider transaction_timeout (PostgreSQL 17 and later).");
			break;
	}
}

/* long_query: the longest running query, in seconds */
void
dbops_check_long_query(DbopsReport *report, DbopsCheckResult *res)
{
	session_check(res, SESSIONS_ACTIVE);
}

/* idle_in_transaction: the session idle in transaction the longest, in seconds */
void
dbops_check_idle_in_transaction(DbopsReport *report, DbopsCheckResult *res)
{
	session_check(res, SESSIONS_IDLE_IN_XACT);
}

/*
 * long_transaction: the client backend whose transaction has been open the
 * longest, whatever its state, in seconds
 */
void
dbops_check_long_transaction(DbopsReport *report, DbopsCheckResult *res)
{
	session_check(res, SESSIONS_OPEN_XACT);
}
