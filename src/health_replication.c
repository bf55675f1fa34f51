/*-------------------------------------------------------------------------
 *
 * health_replication.c
 *	  The replication and WAL checks of dbops.health(): replication_lag (on a
 *	  primary its standbys' replay lag, on a standby its own), replication_slots
 *	  and archiver.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "replication/walreceiver.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

/*
 * replication_lag: on a primary, the largest replay lag of its standbys in
 * seconds (bytes in the detail); on a standby, its own replay delay.
 */
void
dbops_check_replication_lag(DbopsReport *report, DbopsCheckResult *res)
{
	if (RecoveryInProgress())
	{
		static SPIPlanPtr plan = NULL;
		XLogRecPtr	receive = GetWalRcvFlushRecPtr(NULL, NULL);
		XLogRecPtr	replay = GetXLogReplayRecPtr(NULL);
		TimestampTz last_xact = GetLatestXTime();
		double		delay = 0;
		double		bytes = 0;
		SPITupleTable *tt;

		/*
		 * What was received beyond the page the last replayed record ends in:
		 * the WAL sender streams up to the primary's flush position, which
		 * can be the end of that page while no further record follows.
		 */
		if (receive != InvalidXLogRecPtr && receive > replay &&
			receive > replay + (XLOG_BLCKSZ - replay % XLOG_BLCKSZ) % XLOG_BLCKSZ)
			bytes = (double) (receive - replay);

		/*
		 * Caught up with what arrived: no delay, however long the primary has
		 * been quiet.  Behind: the delay runs from the last transaction
		 * replayed, which a standby that has replayed none cannot know.
		 */
		if (bytes > 0 && last_xact == 0)
		{
			dbops_check_unknown(res, "standby: %.0f bytes received but not replayed, and no transaction replayed since the standby started: the replay delay cannot be measured yet",
								bytes);
			appendStringInfoString(&res->hint,
								   "Check whether replay is paused (pg_is_wal_replay_paused()) or stuck on a recovery conflict.");
			return;
		}
		if (bytes > 0)
			delay = Max(dbops_seconds_between(last_xact, GetCurrentTimestamp()), 0);
		dbops_check_value(res, dbops_rounded(delay, 3), "s");

		tt = dbops_kept_query(&plan, "SELECT status, sender_host FROM pg_catalog.pg_stat_wal_receiver");
		if (bytes == 0)
			appendStringInfoString(&res->detail, "standby: caught up");
		else
		{
			appendStringInfo(&res->detail, "standby: replay delay ");
			dbops_append_duration(&res->detail, delay);
			appendStringInfoString(&res->detail, ", ");
			dbops_append_bytes(&res->detail, bytes);
			appendStringInfoString(&res->detail, " received but not replayed");
		}
		appendStringInfo(&res->detail, " (received %X/%X, replayed %X/%X)",
						 LSN_FORMAT_ARGS(receive), LSN_FORMAT_ARGS(replay));
		if (last_xact != 0)
			appendStringInfo(&res->detail, ", last replayed transaction at %s",
							 timestamptz_to_str(last_xact));
		if (SPI_processed == 0)
			appendStringInfoString(&res->detail, "; no WAL receiver is running");
		else
		{
			appendStringInfo(&res->detail, "; WAL receiver %s", dbops_col_text(tt, 0, 1));
			if (SPI_getvalue(tt->vals[0], tt->tupdesc, 2) != NULL)
				appendStringInfo(&res->detail, " from %s", dbops_col_text(tt, 0, 2));
		}
		appendStringInfoString(&res->hint,
							   "Check the primary's WAL sender and the network; on the standby look for recovery conflicts, a paused replay (pg_is_wal_replay_paused()) or slow storage.");
	}
	else
	{
		static SPIPlanPtr plan = NULL;
		SPITupleTable *tt;
		uint64		n;
		double		worst = 0;

		tt = dbops_kept_query(&plan,
							"SELECT pid, state, sync_state, "
							"pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)::pg_catalog.float8, "
							"pg_catalog.extract('epoch', replay_lag)::pg_catalog.float8 "
							"FROM pg_catalog.pg_stat_get_wal_senders() ORDER BY 4 DESC NULLS FIRST, pid");
		n = SPI_processed;
		if (n == 0)
		{
			dbops_check_value(res, 0, "s");
			appendStringInfoString(&res->detail, "primary: no standby is connected");
			return;
		}
		if (!dbops_can_read_all_stats())
		{
			dbops_check_skip_all_stats(res, psprintf("%d WAL sender(s) connected; reading their positions needs the privileges of pg_read_all_stats",
													 (int) n));
			return;
		}
		appendStringInfo(&res->detail, "primary: %d standby(s): ", (int) n);
		for (uint64 r = 0; r < n; r++)
		{
			int			pid = atoi(dbops_col_text(tt, r, 1));
			bool		bytes_null;
			bool		lag_null;
			double		bytes = dbops_col_float(tt, r, 4, &bytes_null);
			double		lag = dbops_col_float(tt, r, 5, &lag_null);
			PgBackendStatus *be = dbops_session_by_pid(pid);
			const char *appname = be ? be->st_appname : NULL;

			if (!lag_null)
				worst = Max(worst, lag);
			if (r >= DBOPS_MAX_CULPRITS)
				continue;
			appendStringInfo(&res->detail, "%s%s (pid %d, %s, %s): replay lag ",
							 r > 0 ? "; " : "",
							 appname && appname[0] ? quote_identifier(appname) : "(no application_name)",
							 pid, dbops_col_text(tt, r, 2), dbops_col_text(tt, r, 3));
			if (bytes_null)
				appendStringInfoString(&res->detail, "unknown bytes");
			else
				dbops_append_bytes(&res->detail, bytes);
			appendStringInfoString(&res->detail, ", ");
			if (lag_null)
				appendStringInfoString(&res->detail, "no recent time");
			else
				dbops_append_duration(&res->detail, lag);
		}
		dbops_check_value(res, dbops_rounded(worst, 3), "s");
		appendStringInfoString(&res->hint,
							   "Look at the lagging standby: network, disk, long queries there holding replay back (hot_standby_feedback, max_standby_streaming_delay), or a paused replay.");
	}
}

/*
 * replication_slots: the WAL retained by the slot that holds the most, in
 * MB; inactive and lost slots are named.
 */
void
dbops_check_replication_slots(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	uint64		n;
	int			inactive = 0;
	int			lost = 0;
	bool		isnull;

	tt = dbops_kept_query(&plan,
						"SELECT slot_name, slot_type, active, wal_status, "
						"pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery() "
						"THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END, "
						"restart_lsn)::pg_catalog.float8 AS retained "
						"FROM pg_catalog.pg_replication_slots ORDER BY retained DESC NULLS LAST, slot_name");
	n = SPI_processed;
	if (n == 0)
	{
		dbops_check_value(res, 0, "MB");
		appendStringInfoString(&res->detail, "no replication slot");
		return;
	}
	dbops_check_value(res, dbops_rounded(Max(dbops_col_float(tt, 0, 5, &isnull), 0) / (1024.0 * 1024.0), 2), "MB");
	appendStringInfo(&res->detail, "%d slot(s): ", (int) n);
	for (uint64 r = 0; r < n; r++)
	{
		bool		active = strcmp(dbops_col_text(tt, r, 3), "t") == 0;
		char	   *wal_status = SPI_getvalue(tt->vals[r], tt->tupdesc, 4);
		double		retained = dbops_col_float(tt, r, 5, &isnull);

		if (!active)
			inactive++;
		if (wal_status && strcmp(wal_status, "lost") == 0)
			lost++;
		if (r >= DBOPS_MAX_CULPRITS)
			continue;
		appendStringInfo(&res->detail, "%s%s (%s, %s, ", r > 0 ? "; " : "",
						 quote_identifier(dbops_col_text(tt, r, 1)), dbops_col_text(tt, r, 2),
						 active ? "active" : "inactive");
		if (isnull)
			appendStringInfoString(&res->detail, "no WAL reserved");
		else
		{
			dbops_append_bytes(&res->detail, retained);
			appendStringInfoString(&res->detail, " retained");
		}
		if (wal_status)
			appendStringInfo(&res->detail, ", wal_status %s", wal_status);
		appendStringInfoChar(&res->detail, ')');
	}
	if (inactive > 0)
		appendStringInfo(&res->detail, "; %d inactive", inactive);
	if (lost > 0)
	{
		appendStringInfo(&res->detail, "; %d lost (its consumer can no longer catch up)", lost);
		dbops_check_at_least(res, DBOPS_CRITICAL);
	}
	appendStringInfoString(&res->hint,
						   "A slot nobody consumes keeps WAL forever: reconnect its consumer or drop it with pg_drop_replication_slot('name'); consider max_slot_wal_keep_size.");
}

/*
 * archiver: WAL segments waiting to be archived (.ready files); a failure
 * more recent than the last success is at least a warning.
 */
void
dbops_check_archiver(DbopsReport *report, DbopsCheckResult *res)
{
	PgStat_ArchiverStats *stats;
	bool		failing;
	int			ready = 0;
	DIR		   *dir;
	struct dirent *de;

	if (!XLogArchivingActive())
	{
		dbops_check_value(res, 0, "files");
		appendStringInfoString(&res->detail, "archive_mode is off");
		return;
	}
	if (!has_privs_of_role(GetUserId(), ROLE_PG_MONITOR))
	{
		dbops_check_skip(res, "counting the WAL segments waiting in pg_wal/archive_status needs the privileges of pg_monitor");
		appendStringInfoString(&res->hint, "Grant the role pg_monitor to run this check.");
		return;
	}

	dir = AllocateDir(XLOGDIR "/archive_status");
	while ((de = ReadDir(dir, XLOGDIR "/archive_status")) != NULL)
	{
		size_t		len = strlen(de->d_name);

		if (len > 6 && strcmp(de->d_name + len - 6, ".ready") == 0)
			ready++;
	}
	FreeDir(dir);

	stats = pgstat_fetch_stat_archiver();
	failing = stats->last_failed_timestamp != 0 &&
		stats->last_failed_timestamp > stats->last_archived_timestamp;

	dbops_check_value(res, ready, "files");
	appendStringInfo(&res->detail, "%d segment(s) waiting to be archived; %lld archived, %lld failed",
					 ready, (long long) stats->archived_count, (long long) stats->failed_count);
	if (stats->last_archived_timestamp != 0)
		appendStringInfo(&res->detail, "; last archived %s at %s", stats->last_archived_wal,
						 timestamptz_to_str(stats->last_archived_timestamp));
	if (stats->last_failed_timestamp != 0)
		appendStringInfo(&res->detail, "; last failed %s at %s", stats->last_failed_wal,
						 timestamptz_to_str(stats->last_failed_timestamp));
	if (failing)
	{
		appendStringInfoString(&res->detail, "; archiving is failing now");
		dbops_check_at_least(res, DBOPS_WARNING);
	}
	appendStringInfoString(&res->hint,
						   "Read the server log for the archive_command's errors and fix it (space, permissions, network); WAL piles up in pg_wal until it succeeds.");
}
