/*-------------------------------------------------------------------------
 *
 * health_tables.c
 *	  The checks of dbops.health() on what autovacuum owes each table of
 *	  the current database beyond its dead tuples: stale_statistics (tables
 *	  the planner plans for without statistics, or with statistics long past
 *	  their autoanalyze threshold) and table_freeze_age (the tables closest
 *	  to a forced anti-wraparound vacuum, by name).  Both read the report's
 *	  pg_class scan (health_relations.c) and nothing per table but what it
 *	  already holds, save one stat() for a table whose emptiness nothing
 *	  else tells.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/multixact.h"
#include "access/transam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_statistic.h"
#include "common/relpath.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/autovacuum.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

/*
 * At most this many tables per report have their file looked at to tell
 * whether a never-analyzed table holds rows (lost_table_has_rows()); past
 * that the count is a lower bound and the detail says so.
 */
#define STAT_PROBES_MAX 1000

/*
 * Does a table that PostgreSQL has never vacuumed or analyzed (reltuples =
 * -1) and that has no cumulative statistics hold more than a page of rows?
 * A table gets its statistics entry when it is created, and every
 * committed insert counts in its n_mod_since_analyze, which the threshold
 * test sees; a table without an entry lost it (crash recovery discards the
 * statistics; pg_upgrade starts with none).  Then only its main fork's
 * size tells, with one stat() and no lock.  A table dropped or rewritten
 * since the pg_class scan has no file under the old name and counts as
 * empty.  A table of one page holds too few rows for autoanalyze's own
 * threshold (50 by default) and plans well enough from its size alone.
 * *probed counts the stat() calls, *unsure is set once they run out.
 */
static bool
lost_table_has_rows(const DbopsRelInfo *ri, int *probed, bool *unsure)
{
	DbopsRelFile rfile;
	struct stat st;

	Assert(!ri->have_stats && ri->reltuples < 0);
	if (ri->relpages > 1)
		return true;
	if (ri->relfilenode == InvalidOid)	/* a mapped catalog */
		return false;
	if (*probed >= STAT_PROBES_MAX)
	{
		*unsure = true;
		return false;
	}
	(*probed)++;
	DBOPS_RELFILE_SET(rfile,
					  OidIsValid(ri->reltablespace) ? ri->reltablespace : MyDatabaseTableSpace,
					  ri->relisshared ? InvalidOid : MyDatabaseId, ri->relfilenode);
	if (stat(DBOPS_RELPATH_MAIN(rfile), &st) != 0)
		return false;
	return st.st_size > BLCKSZ;
}

/*
 * stale_statistics: how long, in hours, the table waiting longest has gone
 * without ANALYZE, among the tables and materialized views whose
 * statistics are stale:
 *
 * - past their autoanalyze threshold: rows changed since the last ANALYZE
 *   above autovacuum_analyze_threshold + autovacuum_analyze_scale_factor *
 *   reltuples, with the table's own settings where it has them, as
 *   autovacuum computes it; the wait counts from the last ANALYZE (manual
 *   or automatic), or from the statistics' reset (or the server start) for
 *   a table never analyzed since;
 *
 * - never analyzed (reltuples = -1: never vacuumed or analyzed), without
 *   cumulative statistics, and holding more than a page: autovacuum will
 *   not analyze it until enough rows change, because it counts the changes
 *   from zero.  That is the state pg_upgrade leaves every table in (up to
 *   17), and crash recovery every table never vacuumed.  It is at least a
 *   warning, however short the wait, because nothing will end it.  (After
 *   pg_stat_reset() a never-analyzed table keeps an entry whose counters
 *   are zero: such a table is not recognised.)
 *
 * TOAST tables and pg_statistic are never analyzed and are left out;
 * partitioned tables
 * have no storage and are not in the scan (autovacuum never analyzes them
 * either: doc/health.md).
 */
void
dbops_check_stale_statistics(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan = dbops_report_relscan(report);
	DbopsTopN	top = {0};
	int			stale = 0;
	int			never_due = 0;
	int			probed = 0;
	bool		unsure = false;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz origin = dbops_stats_origin();

	if (!dbops_counts_tracked(res))
		return;

	for (int i = 0; i < scan->nrels; i++)
	{
		DbopsRelInfo *ri = &scan->rels[i];
		double		trigger;
		bool		past;
		bool		never;
		TimestampTz last;

		/* ANALYZE and autovacuum leave pg_statistic out: it is never due */
		if ((ri->relkind != RELKIND_RELATION && ri->relkind != RELKIND_MATVIEW) ||
			ri->relid == StatisticRelationId)
			continue;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		trigger = dbops_autovac_trigger(ri->av_anl_thresh, ri->av_anl_scale,
										autovacuum_anl_thresh, autovacuum_anl_scale,
										ri->reltuples);
		past = ri->have_stats && (double) ri->n_mod_since_analyze > trigger;
		never = !ri->have_stats && ri->reltuples < 0 &&
			lost_table_has_rows(ri, &probed, &unsure);
		if (!past && !never)
			continue;
		stale++;
		if (never)
			never_due++;
		last = ri->have_stats && ri->last_analyze != 0 ? ri->last_analyze : origin;
		dbops_topn_add(&top, Max(dbops_seconds_between(last, now), 0), i);
	}

	dbops_check_value(res, dbops_rounded(top.n > 0 ? top.score[0] / 3600.0 : 0, 4), "h");
	if (stale == 0)
	{
		appendStringInfoString(&res->detail, "every table has statistics that autoanalyze keeps up to date");
		if (unsure)
			appendStringInfo(&res->detail, " (of those whose size %d file lookups could tell)", STAT_PROBES_MAX);
		return;
	}
	if (never_due > 0)
		dbops_check_at_least(res, DBOPS_WARNING);
	appendStringInfo(&res->detail, "%d table(s) with stale statistics", stale);
	if (never_due > 0)
		appendStringInfo(&res->detail, ", %d never analyzed that autoanalyze will not reach", never_due);
	if (unsure)
		appendStringInfo(&res->detail, " (at least: only %d tables' files were looked at)", STAT_PROBES_MAX);
	appendStringInfoString(&res->detail, "; longest without ANALYZE: ");
	for (int t = 0; t < top.n; t++)
	{
		DbopsRelInfo *ri = &scan->rels[top.item[t]];

		appendStringInfo(&res->detail, "%s%s (", t > 0 ? "; " : "",
						 dbops_relation_display_name(ri->relid, ri->relnamespace));
		if (!ri->have_stats)
			appendStringInfoString(&res->detail, "never analyzed, no statistics since the server lost them");
		else if (ri->reltuples < 0)
			appendStringInfoString(&res->detail, "never analyzed");
		else if (ri->last_analyze != 0)
		{
			appendStringInfoString(&res->detail, "analyzed ");
			dbops_append_duration(&res->detail, dbops_seconds_between(ri->last_analyze, now));
			appendStringInfoString(&res->detail, " ago");
		}
		else
			appendStringInfoString(&res->detail, "not analyzed since the statistics were reset");
		if (ri->have_stats)
			appendStringInfo(&res->detail, ", %lld rows changed since", (long long) ri->n_mod_since_analyze);
		if (ri->av_disabled)
			appendStringInfoString(&res->detail, ", autovacuum off");
		appendStringInfoChar(&res->detail, ')');
	}
	if (never_due > 0)
		appendStringInfoString(&res->hint,
							   "Tables without statistics get guessed plans, and autovacuum will not analyze them until enough rows change: ANALYZE them now (vacuumdb --analyze-only --all after pg_upgrade or a restore). ");
	appendStringInfoString(&res->hint,
						   "ANALYZE the tables named; if autovacuum should have, check that it is on, that its workers are not all busy vacuuming (autovacuum_max_workers), and lower autovacuum_analyze_scale_factor on tables that change fast.");
}

/*
 * table_freeze_age: the table closest to a forced anti-wraparound vacuum,
 * as the share (percent) of its freeze limit that its oldest unfrozen
 * transaction ID or multixact has used: age(relfrozenxid) over
 * autovacuum_freeze_max_age and mxid_age(relminmxid) over the multixact
 * limit, each with the table's own setting where it has a lower one and the
 * multixact limit lowered when member space runs short, as autovacuum
 * computes them.  At 100% autovacuum starts an aggressive vacuum of the
 * table whatever its dead tuples; a table that stays well past 100% is one
 * that vacuum cannot finish or cannot freeze (xmin_horizon says what holds
 * it).  xid_wraparound names databases; this names the tables.
 * Temporary tables are not in the scan (doc/health.md).
 */
void
dbops_check_table_freeze_age(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan = dbops_report_relscan(report);
	DbopsTopN	top = {0};
	TransactionId next_xid = ReadNextTransactionId();
	MultiXactId next_mxid = ReadNextMultiXactId();
	int			mxid_limit = MultiXactMemberFreezeThreshold();
	int			over = 0;
	double	   *xid_age;
	double	   *mxid_age;

	xid_age = palloc0(sizeof(double) * Max(scan->nrels, 1));
	mxid_age = palloc0(sizeof(double) * Max(scan->nrels, 1));
	for (int i = 0; i < scan->nrels; i++)
	{
		DbopsRelInfo *ri = &scan->rels[i];
		int			xlimit = autovacuum_freeze_max_age;
		int			mlimit = mxid_limit;
		double		pct = 0;

		if (ri->relkind != RELKIND_RELATION && ri->relkind != RELKIND_MATVIEW &&
			ri->relkind != RELKIND_TOASTVALUE)
			continue;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		if (ri->av_freeze_max_age >= 0)
			xlimit = Min(ri->av_freeze_max_age, xlimit);
		if (ri->av_mxid_freeze_max_age >= 0)
			mlimit = Min(ri->av_mxid_freeze_max_age, mlimit);
		if (TransactionIdIsNormal(ri->relfrozenxid))
		{
			xid_age[i] = Max((int32) (next_xid - ri->relfrozenxid), 0);
			pct = 100.0 * xid_age[i] / Max(xlimit, 1);
		}
		if (MultiXactIdIsValid(ri->relminmxid))
		{
			mxid_age[i] = Max((int32) (next_mxid - ri->relminmxid), 0);
			pct = Max(pct, 100.0 * mxid_age[i] / Max(mlimit, 1));
		}
		if (pct >= 100.0)
			over++;
		if (pct > 0)
			dbops_topn_add(&top, pct, i);
	}

	dbops_check_value(res, dbops_rounded(top.n > 0 ? top.score[0] : 0, 2), "%");
	if (top.n == 0)
	{
		appendStringInfoString(&res->detail, "no table has unfrozen transaction IDs");
		return;
	}
	if (over > 0)
		appendStringInfo(&res->detail, "%d table(s) past their freeze limit; ", over);
	appendStringInfoString(&res->detail, "oldest: ");
	for (int t = 0; t < top.n; t++)
	{
		DbopsRelInfo *ri = &scan->rels[top.item[t]];

		appendStringInfo(&res->detail, "%s%s %.1f%% (xid age %.0f, mxid age %.0f)",
						 t > 0 ? "; " : "",
						 dbops_relation_display_name(ri->relid, ri->relnamespace),
						 top.score[t], xid_age[top.item[t]], mxid_age[top.item[t]]);
	}
	appendStringInfo(&res->detail, " (autovacuum_freeze_max_age = %d, multixact limit now %d; wraparound at 2^31)",
					 autovacuum_freeze_max_age, mxid_limit);
	appendStringInfoString(&res->hint,
						   "VACUUM (FREEZE, VERBOSE) the tables named, or let autovacuum's aggressive vacuum finish (pg_stat_progress_vacuum); if it cannot freeze, end what holds the xmin horizon back (see the xmin_horizon check).");
	pfree(xid_age);
	pfree(mxid_age);
}
