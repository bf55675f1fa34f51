/*-------------------------------------------------------------------------
 *
 * health_relations.c
 *	  The checks of dbops.health() on the relations of the current database,
 *	  and the one heap scan of pg_class (with the cumulative statistics of
 *	  every table) that they, the sequences check and the bloat check share
 *	  within a report (with stale_statistics and table_freeze_age, in
 *	  health_tables.c): dead_tuples, vacuum_age and database_size.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/autovacuum.h"
#include "storage/sinval.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/pgstat_internal.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

/* statistics entries looked up, and fetched ahead, at a time */
#define STATS_BATCH 32

/*
 * One heap scan of pg_class for the checks that look at every relation;
 * tables get their cumulative statistics.  Built by the first check of a
 * report that needs it, in the report's memory context, and shared by the
 * report's other checks.
 */
DbopsRelScan *
dbops_report_relscan(DbopsReport *report)
{
	DbopsRelScan *scan;
	Relation	rel;
	TableScanDesc hscan;
	HeapTuple	tup;
	int			alloc = 1024;
	MemoryContext old;

	if (report->relscan)
		return report->relscan;

	old = MemoryContextSwitchTo(report->context);
	scan = palloc0(sizeof(DbopsRelScan));
	scan->rels = palloc(sizeof(DbopsRelInfo) * alloc);

	rel = table_open(RelationRelationId, AccessShareLock);
	scan->inval_count = SharedInvalidMessageCounter;
	/* about two thirds of pg_class are tables and sequences */
	if (RelationGetForm(rel)->reltuples > alloc)
	{
		alloc = (int) Min(RelationGetForm(rel)->reltuples * 0.7, 16.0 * 1024 * 1024);
		scan->rels = repalloc_huge(scan->rels, sizeof(DbopsRelInfo) * alloc);
	}
	hscan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		Form_pg_class c = (Form_pg_class) GETSTRUCT(tup);
		DbopsRelInfo *ri;

		CHECK_FOR_INTERRUPTS();

		if (!RELKIND_HAS_STORAGE(c->relkind))
			continue;
		if (c->relpersistence == RELPERSISTENCE_TEMP)
			continue;
		scan->total_pages += c->relpages;
		if (c->relpages >= DBOPS_LARGE_REL_PAGES)
		{
			DbopsLargeRel *lr;

			if (scan->nlarge == scan->alloclarge)
			{
				scan->alloclarge = Max(64, 2 * scan->alloclarge);
				scan->large = scan->large
					? repalloc(scan->large, sizeof(DbopsLargeRel) * scan->alloclarge)
					: palloc(sizeof(DbopsLargeRel) * scan->alloclarge);
			}
			lr = &scan->large[scan->nlarge++];
			lr->relid = c->oid;
			lr->relam = c->relam;
			lr->relkind = c->relkind;
			lr->relpersistence = c->relpersistence;
			lr->relpages = c->relpages;
		}

		/*
		 * A vacuumed table also has a free space map (three pages, and a leaf
		 * per ~4000 heap pages) and a visibility map (a page per ~32000):
		 * with many small tables they outweigh the heap.
		 */
		if (c->relpages > 0 &&
			(c->relkind == RELKIND_RELATION || c->relkind == RELKIND_MATVIEW ||
			 c->relkind == RELKIND_TOASTVALUE))
			scan->total_pages += 2 + (c->relpages + 4068) / 4069 + (c->relpages + 32639) / 32640;
		if (c->relpages > 0 &&
			(scan->nlargest < DBOPS_MAX_CULPRITS ||
			 c->relpages > scan->largest[DBOPS_MAX_CULPRITS - 1].relpages))
		{
			int			pos = Min(scan->nlargest, DBOPS_MAX_CULPRITS - 1);

			while (pos > 0 && scan->largest[pos - 1].relpages < c->relpages)
			{
				scan->largest[pos] = scan->largest[pos - 1];
				pos--;
			}
			scan->largest[pos].relid = c->oid;
			scan->largest[pos].relnamespace = c->relnamespace;
			scan->largest[pos].relpages = c->relpages;
			if (scan->nlargest < DBOPS_MAX_CULPRITS)
				scan->nlargest++;
		}
		/* the other checks look at tables and sequences only */
		if (c->relkind != RELKIND_RELATION && c->relkind != RELKIND_MATVIEW &&
			c->relkind != RELKIND_TOASTVALUE && c->relkind != RELKIND_SEQUENCE)
			continue;
		if (scan->nrels == alloc)
		{
			alloc *= 2;
			scan->rels = repalloc_huge(scan->rels, sizeof(DbopsRelInfo) * alloc);
		}
		ri = &scan->rels[scan->nrels++];
		ri->relid = c->oid;
		ri->relnamespace = c->relnamespace;
		ri->relfilenode = c->relfilenode;
		ri->reltablespace = c->reltablespace;
		ri->relkind = c->relkind;
		ri->relpersistence = c->relpersistence;
		ri->relisshared = c->relisshared;
		ri->relpages = c->relpages;
		ri->reltuples = c->reltuples;
		ri->relfrozenxid = c->relfrozenxid;
		ri->relminmxid = c->relminmxid;
		ri->have_stats = false;
		ri->av_vac_thresh = -1;
		ri->av_vac_scale = -1;
		ri->av_anl_thresh = -1;
		ri->av_anl_scale = -1;
		ri->av_freeze_max_age = -1;
		ri->av_mxid_freeze_max_age = -1;
		ri->av_disabled = false;
		if (c->relkind != RELKIND_SEQUENCE &&
			!heap_attisnull(tup, Anum_pg_class_reloptions, NULL))
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, Anum_pg_class_reloptions,
										 RelationGetDescr(rel), &isnull);
			StdRdOptions *opts = (StdRdOptions *) heap_reloptions(c->relkind, d, false);

			if (opts != NULL)
			{
				ri->av_vac_thresh = opts->autovacuum.vacuum_threshold;
				ri->av_vac_scale = opts->autovacuum.vacuum_scale_factor;
				ri->av_anl_thresh = opts->autovacuum.analyze_threshold;
				ri->av_anl_scale = opts->autovacuum.analyze_scale_factor;
				ri->av_freeze_max_age = opts->autovacuum.freeze_max_age;
				ri->av_mxid_freeze_max_age = opts->autovacuum.multixact_freeze_max_age;
				ri->av_disabled = !opts->autovacuum.enabled;
				pfree(opts);
			}
		}
	}
	table_endscan(hscan);
	table_close(rel, AccessShareLock);

	/*
	 * The statistics of every table, read in place under the entry's lock
	 * as pgstat_fetch_entry() reads them, without its copy into the
	 * transaction's snapshot: each table is read once per report, and with
	 * tens of thousands of tables the copies and the snapshot's hash cost
	 * more than the reading.  The entries are scattered over shared memory:
	 * they are looked up STATS_BATCH at a time and their memory fetched
	 * ahead of the reading, so that the cache misses overlap.
	 */
	for (int i = 0; i < scan->nrels;)
	{
		PgStat_EntryRef *refs[STATS_BATCH];
		int			idx[STATS_BATCH];
		int			n = 0;

		CHECK_FOR_INTERRUPTS();
		for (; i < scan->nrels && n < STATS_BATCH; i++)
		{
			DbopsRelInfo *ri = &scan->rels[i];
			PgStat_EntryRef *ref;

			if (ri->relkind != RELKIND_RELATION && ri->relkind != RELKIND_MATVIEW &&
				ri->relkind != RELKIND_TOASTVALUE)
				continue;
			ref = pgstat_get_entry_ref(PGSTAT_KIND_RELATION,
									   ri->relisshared ? InvalidOid : MyDatabaseId,
									   ri->relid, false, NULL);
			if (ref == NULL)
				continue;
			DBOPS_PREFETCH(ref->shared_entry);
			DBOPS_PREFETCH(ref->shared_stats);
			DBOPS_PREFETCH((char *) ref->shared_stats + offsetof(PgStatShared_Relation, stats));
			DBOPS_PREFETCH((char *) ref->shared_stats + offsetof(PgStatShared_Relation, stats) + 64);
			DBOPS_PREFETCH((char *) ref->shared_stats + offsetof(PgStatShared_Relation, stats) + 128);
			refs[n] = ref;
			idx[n++] = i;
		}
		for (int j = 0; j < n; j++)
		{
			DbopsRelInfo *ri = &scan->rels[idx[j]];
			PgStat_StatTabEntry *tab;

			if (refs[j]->shared_entry->dropped)
				continue;
			pgstat_lock_entry_shared(refs[j], false);
			tab = &((PgStatShared_Relation *) refs[j]->shared_stats)->stats;
			ri->have_stats = true;
			ri->n_live = DBOPS_TAB_LIVE_TUPLES(tab);
			ri->n_dead = DBOPS_TAB_DEAD_TUPLES(tab);
			ri->n_mod_since_analyze = DBOPS_TAB_MOD_SINCE_ANALYZE(tab);
			ri->last_vacuum = Max(DBOPS_TAB_LAST_VACUUM(tab), DBOPS_TAB_LAST_AUTOVACUUM(tab));
			ri->last_analyze = Max(DBOPS_TAB_LAST_ANALYZE(tab), DBOPS_TAB_LAST_AUTOANALYZE(tab));
			pgstat_unlock_entry(refs[j]);
		}
	}

	MemoryContextSwitchTo(old);
	report->relscan = scan;
	return scan;
}

int
dbops_report_large_rels(DbopsReport *report, const DbopsLargeRel **rels)
{
	DbopsRelScan *scan = dbops_report_relscan(report);

	*rels = scan->large;
	return scan->nlarge;
}

static void
append_last_vacuum(StringInfo buf, TimestampTz last, TimestampTz now)
{
	if (last == 0)
		appendStringInfoString(buf, "never vacuumed");
	else
	{
		appendStringInfoString(buf, "vacuumed ");
		dbops_append_duration(buf, dbops_seconds_between(last, now));
		appendStringInfoString(buf, " ago");
	}
}

/* Only tables with at least this many dead tuples are graded. */
#define DEAD_TUPLES_MIN 1000

/*
 * dead_tuples: the highest share of dead tuples (percent) among the tables
 * of the current database that have at least DEAD_TUPLES_MIN of them.
 */
void
dbops_check_dead_tuples(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan = dbops_report_relscan(report);
	DbopsTopN	bycount = {0};
	double		worst = 0;
	int			worst_item = -1;
	int64		total_dead = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!dbops_counts_tracked(res))
		return;

	for (int i = 0; i < scan->nrels; i++)
	{
		DbopsRelInfo *ri = &scan->rels[i];
		double		pct;

		if (!ri->have_stats || ri->n_dead <= 0)
			continue;
		total_dead += ri->n_dead;
		dbops_topn_add(&bycount, (double) ri->n_dead, i);
		if (ri->n_dead < DEAD_TUPLES_MIN)
			continue;
		pct = 100.0 * ri->n_dead / (double) (ri->n_dead + Max(ri->n_live, 0));
		if (pct > worst)
		{
			worst = pct;
			worst_item = i;
		}
	}

	dbops_check_value(res, dbops_rounded(worst, 2), "%");
	if (bycount.n == 0)
	{
		appendStringInfoString(&res->detail, "no dead tuples in this database");
		return;
	}
	if (worst_item >= 0)
	{
		DbopsRelInfo *ri = &scan->rels[worst_item];

		appendStringInfo(&res->detail, "worst: %s %.1f%% dead; ",
						 dbops_relation_display_name(ri->relid, ri->relnamespace), worst);
	}
	appendStringInfo(&res->detail, "%lld dead tuples in this database, most in: ",
					 (long long) total_dead);
	for (int t = 0; t < bycount.n; t++)
	{
		DbopsRelInfo *ri = &scan->rels[bycount.item[t]];

		appendStringInfo(&res->detail, "%s%s %lld dead / %lld live, ",
						 t > 0 ? "; " : "",
						 dbops_relation_display_name(ri->relid, ri->relnamespace),
						 (long long) ri->n_dead, (long long) ri->n_live);
		append_last_vacuum(&res->detail, ri->last_vacuum, now);
	}
	appendStringInfoString(&res->hint,
						   "VACUUM (VERBOSE) the tables named; if autovacuum cannot keep up, lower their autovacuum_vacuum_scale_factor and look for long transactions or slots holding the xmin horizon.");
}

/*
 * The number of changes past which autovacuum acts on a table:
 * threshold + scale_factor * reltuples, with the table's own settings
 * (own_*, -1 where unset) over the server's, as autovacuum computes it.  A
 * table never vacuumed or analyzed (reltuples -1) counts as empty.
 */
double
dbops_autovac_trigger(int own_thresh, double own_scale, int thresh, double scale,
					  float4 reltuples)
{
	return (own_thresh >= 0 ? own_thresh : thresh) +
		(own_scale >= 0 ? own_scale : scale) * Max(reltuples, 0);
}

/*
 * Since when the current database's cumulative statistics count: their last
 * reset, or the server's start.  A table never vacuumed or analyzed since
 * has waited at least that long.
 */
TimestampTz
dbops_stats_origin(void)
{
	PgStat_StatDBEntry *db = pgstat_fetch_stat_dbentry(MyDatabaseId);

	if (db && db->stat_reset_timestamp != 0)
		return db->stat_reset_timestamp;
	return PgStartTime;
}

/*
 * vacuum_age: among the tables that autovacuum should have vacuumed by now
 * (dead tuples over autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor
 * * reltuples, with the table's own settings where it has them, as autovacuum
 * computes it), how long, in hours, the one waiting longest has gone without
 * a vacuum.  Tables with autovacuum_enabled = false count too, and say so:
 * nothing will vacuum them.  A table never vacuumed counts from its
 * database's statistics reset (or the server start).
 */
void
dbops_check_vacuum_age(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan = dbops_report_relscan(report);
	DbopsTopN	top = {0};
	int			due = 0;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz origin = dbops_stats_origin();

	if (!dbops_counts_tracked(res))
		return;

	for (int i = 0; i < scan->nrels; i++)
	{
		DbopsRelInfo *ri = &scan->rels[i];
		double		trigger;
		TimestampTz last;

		if (!ri->have_stats)
			continue;
		trigger = dbops_autovac_trigger(ri->av_vac_thresh, ri->av_vac_scale,
										autovacuum_vac_thresh, autovacuum_vac_scale,
										ri->reltuples);
		if ((double) ri->n_dead <= trigger)
			continue;
		due++;
		last = ri->last_vacuum != 0 ? ri->last_vacuum : origin;
		dbops_topn_add(&top, Max(dbops_seconds_between(last, now), 0), i);
	}

	dbops_check_value(res, dbops_rounded(top.n > 0 ? top.score[0] / 3600.0 : 0, 3), "h");
	if (due == 0)
	{
		appendStringInfoString(&res->detail, "no table is past its autovacuum threshold");
		return;
	}
	appendStringInfo(&res->detail, "%d table(s) past their autovacuum threshold, longest without vacuum: ", due);
	for (int t = 0; t < top.n; t++)
	{
		DbopsRelInfo *ri = &scan->rels[top.item[t]];

		appendStringInfo(&res->detail, "%s%s (%lld dead, ",
						 t > 0 ? "; " : "",
						 dbops_relation_display_name(ri->relid, ri->relnamespace),
						 (long long) ri->n_dead);
		append_last_vacuum(&res->detail, ri->last_vacuum, now);
		if (ri->av_disabled)
			appendStringInfoString(&res->detail, ", autovacuum off");
		appendStringInfoChar(&res->detail, ')');
	}
	appendStringInfoString(&res->hint,
						   "Autovacuum is not keeping up: check that autovacuum is on, that workers are not all busy (autovacuum_max_workers) or throttled (autovacuum_vacuum_cost_limit), and VACUUM the tables named.");
	for (int t = 0; t < top.n; t++)
	{
		if (scan->rels[top.item[t]].av_disabled)
		{
			appendStringInfoString(&res->hint,
								   " Tables with autovacuum off are vacuumed only by hand: VACUUM them on a schedule, or ALTER TABLE ... RESET (autovacuum_enabled).");
			break;
		}
	}
}

/*
 * database_size: the current database, estimated from pg_class.relpages (as
 * of each relation's last VACUUM or ANALYZE) and the free space and
 * visibility maps of the tables, in MB.  pg_database_size()
 * would stat every file of the database; the estimate costs nothing more
 * than the pg_class scan the other checks share.
 */
void
dbops_check_database_size(DbopsReport *report, DbopsCheckResult *res)
{
	DbopsRelScan *scan = dbops_report_relscan(report);

	dbops_check_value(res, dbops_rounded((double) scan->total_pages * BLCKSZ / (1024.0 * 1024.0), 2), "MB");
	appendStringInfo(&res->detail, "%s: about ", quote_identifier(get_database_name(MyDatabaseId)));
	dbops_append_bytes(&res->detail, (double) scan->total_pages * BLCKSZ);
	appendStringInfoString(&res->detail, " (estimated from pg_class.relpages and the free space and visibility maps that implies; pg_database_size() gives the exact figure)");
	for (int t = 0; t < scan->nlargest; t++)
	{
		DbopsRelInfo *ri = &scan->largest[t];

		appendStringInfo(&res->detail, "%s%s ", t == 0 ? "; largest: " : ", ",
						 dbops_relation_display_name(ri->relid, ri->relnamespace));
		dbops_append_bytes(&res->detail, (double) ri->relpages * BLCKSZ);
	}
	appendStringInfoString(&res->hint,
						   "Find what grows (dbops.bloat(), pg_total_relation_size()), purge or archive old rows, and plan disk space.");
}
