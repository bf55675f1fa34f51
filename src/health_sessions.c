/*-------------------------------------------------------------------------
 *
 * health_sessions.c
 *	  The session checks of dbops.health(): connections, long_query and
 *	  idle_in_transaction, read from the backend status array (no
 *	  pg_stat_activity, no query).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

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

static void
append_session(StringInfo buf, PgBackendStatus *be, double secs)
{
	char	   *user = GetUserNameFromId(be->st_userid, true);
	char	   *db = OidIsValid(be->st_databaseid) ? get_database_name(be->st_databaseid) : NULL;
	char	   *query = be->st_activity_raw ? pgstat_clip_activity(be->st_activity_raw) : NULL;

	appendStringInfo(buf, "pid %d (%s@%s, ", be->st_procpid,
					 user ? quote_identifier(user) : "?",
					 db ? quote_identifier(db) : "?");
	dbops_append_duration(buf, secs);
	appendStringInfoChar(buf, ')');
	if (query && query[0] != '\0')
	{
		int			len = pg_mbcliplen(query, strlen(query), 60);

		appendStringInfo(buf, ": %.*s%s", len, query, query[len] ? "..." : "");
	}
}

static void
session_check(DbopsCheckResult *res, bool idle_in_xact)
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

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid == MyProcPid)
			continue;
		if (be->st_backendType != B_BACKEND && be->st_backendType != B_BG_WORKER)
			continue;
		if (be->st_state == STATE_DISABLED)
		{
			untracked++;
			continue;
		}
		if (idle_in_xact)
		{
			if (be->st_state != STATE_IDLEINTRANSACTION &&
				be->st_state != STATE_IDLEINTRANSACTION_ABORTED)
				continue;
			since = be->st_state_start_timestamp;
		}
		else
		{
			if (be->st_state != STATE_RUNNING && be->st_state != STATE_FASTPATH)
				continue;
			since = be->st_activity_start_timestamp;
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
		appendStringInfoString(&res->detail, idle_in_xact ?
							   "no session is idle in transaction" :
							   "no other query is running");
		return;
	}
	appendStringInfo(&res->detail, idle_in_xact ?
					 "%d session(s) idle in transaction, longest: " :
					 "%d active quer%s, longest: ",
					 count, count == 1 ? "y" : "ies");
	for (int t = 0; t < top.n; t++)
	{
		if (t > 0)
			appendStringInfoString(&res->detail, "; ");
		append_session(&res->detail, &dbops_local_beentry(top.item[t])->backendStatus,
					   top.score[t]);
	}
	if (idle_in_xact)
		appendStringInfoString(&res->hint,
							   "Find the application that leaves transactions open (it holds locks and blocks vacuum); end them with pg_terminate_backend(pid) and set idle_in_transaction_session_timeout.");
	else
		appendStringInfoString(&res->hint,
							   "Look at the query and its plan; cancel it with pg_cancel_backend(pid) if it must not run, and consider statement_timeout.");
}

/* long_query: the longest running query, in seconds */
void
dbops_check_long_query(DbopsReport *report, DbopsCheckResult *res)
{
	session_check(res, false);
}

/* idle_in_transaction: the session idle in transaction the longest, in seconds */
void
dbops_check_idle_in_transaction(DbopsReport *report, DbopsCheckResult *res)
{
	session_check(res, true);
}
