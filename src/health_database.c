/*-------------------------------------------------------------------------
 *
 * health_database.c
 *	  The checks of dbops.health() on the cumulative statistics of the whole
 *	  cluster: cache_hit_ratio, deadlocks and temp_files (pg_stat_database),
 *	  checkpoints (the checkpointer's).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

static SPITupleTable *
database_stats(void)
{
	static SPIPlanPtr plan = NULL;

	return dbops_kept_query(&plan,
						  "SELECT datname, blks_hit::pg_catalog.float8, blks_read::pg_catalog.float8, "
						  "deadlocks::pg_catalog.float8, temp_files::pg_catalog.float8, "
						  "temp_bytes::pg_catalog.float8, stats_reset "
						  "FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL ORDER BY datname");
}

/*
 * The sum of column col over the databases, those with a positive figure
 * ranked in top (when given).
 */
static double
database_total(SPITupleTable *tt, uint64 n, int col, DbopsTopN *top)
{
	double		total = 0;
	bool		isnull;

	for (uint64 r = 0; r < n; r++)
	{
		double		v = dbops_col_float(tt, r, col, &isnull);

		total += v;
		if (top && v > 0)
			dbops_topn_add(top, v, r);
	}
	return total;
}

/* cache_hit_ratio: share of block reads served by shared buffers, all databases */
void
dbops_check_cache_hit_ratio(DbopsReport *report, DbopsCheckResult *res)
{
	SPITupleTable *tt = database_stats();
	uint64		n = SPI_processed;
	double		hit = 0;
	double		read = 0;
	bool		isnull;
	double		worst = 101;
	int			worst_row = -1;

	if (!dbops_counts_tracked(res))
		return;

	for (uint64 r = 0; r < n; r++)
	{
		double		h = dbops_col_float(tt, r, 2, &isnull);
		double		rd = dbops_col_float(tt, r, 3, &isnull);

		hit += h;
		read += rd;
		if (h + rd >= 1000 && 100.0 * h / (h + rd) < worst)
		{
			worst = 100.0 * h / (h + rd);
			worst_row = r;
		}
	}
	if (hit + read == 0)
	{
		appendStringInfoString(&res->detail, "no block has been read since the statistics were reset");
		return;
	}
	dbops_check_value(res, dbops_rounded(100.0 * hit / (hit + read), 2), "%");
	appendStringInfo(&res->detail, "%.0f of %.0f block reads served from shared buffers (shared_buffers = %s)",
					 hit, hit + read, GetConfigOptionByName("shared_buffers", NULL, false));
	if (worst_row >= 0)
		appendStringInfo(&res->detail, "; lowest: %s %.2f%%",
						 quote_identifier(dbops_col_text(tt, worst_row, 1)), worst);
	appendStringInfoString(&res->hint,
						   "The working set does not fit in memory: raise shared_buffers (and the machine's RAM), or find the queries reading the most blocks (pg_stat_statements) and index them.");
}

/* deadlocks: deadlocks detected since the statistics were reset, all databases */
void
dbops_check_deadlocks(DbopsReport *report, DbopsCheckResult *res)
{
	SPITupleTable *tt = database_stats();
	uint64		n = SPI_processed;
	double		total;
	DbopsTopN	top = {0};

	if (!dbops_counts_tracked(res))
		return;

	total = database_total(tt, n, 4, &top);
	dbops_check_value(res, total, "deadlocks");
	appendStringInfo(&res->detail, "%.0f deadlock(s) since the statistics were reset", total);
	for (int t = 0; t < top.n; t++)
	{
		char	   *reset = SPI_getvalue(tt->vals[top.item[t]], tt->tupdesc, 7);

		appendStringInfo(&res->detail, "%s%s: %.0f", t == 0 ? "; " : ", ",
						 quote_identifier(dbops_col_text(tt, top.item[t], 1)), top.score[t]);
		if (reset)
			appendStringInfo(&res->detail, " since %s", reset);
	}
	appendStringInfoString(&res->hint,
						   "The server log has each deadlock's queries (log_lock_waits helps): make transactions take locks in the same order. The count only restarts with pg_stat_reset() in that database, which also zeroes the dead-tuple counts autovacuum works from: run ANALYZE there afterwards, or raise the thresholds instead.");
}

/* temp_files: temporary file bytes written since the statistics were reset, in MB */
void
dbops_check_temp_files(DbopsReport *report, DbopsCheckResult *res)
{
	SPITupleTable *tt = database_stats();
	uint64		n = SPI_processed;
	double		files;
	double		bytes;
	DbopsTopN	top = {0};

	if (!dbops_counts_tracked(res))
		return;

	files = database_total(tt, n, 5, NULL);
	bytes = database_total(tt, n, 6, &top);
	dbops_check_value(res, dbops_rounded(bytes / (1024.0 * 1024.0), 2), "MB");
	appendStringInfo(&res->detail, "%.0f temporary file(s), ", files);
	dbops_append_bytes(&res->detail, bytes);
	appendStringInfo(&res->detail, " since the statistics were reset (work_mem = %s)",
					 GetConfigOptionByName("work_mem", NULL, false));
	for (int t = 0; t < top.n; t++)
	{
		appendStringInfo(&res->detail, "%s%s: ", t == 0 ? "; " : ", ",
						 quote_identifier(dbops_col_text(tt, top.item[t], 1)));
		dbops_append_bytes(&res->detail, top.score[t]);
	}
	appendStringInfoString(&res->hint,
						   "Sorts and hashes spill to disk: find them with log_temp_files and pg_stat_statements, then add indexes or raise work_mem for those queries.");
}

/* Fewer checkpoints than this (a fresh cluster's first ones) are not graded. */
#define CHECKPOINTS_MIN 10

/* checkpoints: share (percent) of checkpoints that were requested rather than timed */
void
dbops_check_checkpoints(DbopsReport *report, DbopsCheckResult *res)
{
	PgStat_CheckpointerStats *cp = pgstat_fetch_stat_checkpointer();
	double		timed = DBOPS_CHECKPOINTS_TIMED(cp);
	double		req = DBOPS_CHECKPOINTS_REQUESTED(cp);

	if (timed + req < CHECKPOINTS_MIN)
	{
		appendStringInfo(&res->detail, "%.0f checkpoint(s) since the statistics were reset: too few to judge (%.0f requested, %.0f timed)",
						 timed + req, req, timed);
		return;
	}
	dbops_check_value(res, dbops_rounded(100.0 * req / (timed + req), 2), "%");
	appendStringInfo(&res->detail, "%.0f requested, %.0f timed (max_wal_size = %s, checkpoint_timeout = %s)",
					 req, timed, GetConfigOptionByName("max_wal_size", NULL, false),
					 GetConfigOptionByName("checkpoint_timeout", NULL, false));
	appendStringInfoString(&res->hint,
						   "Checkpoints forced by WAL volume write more and cause I/O spikes: raise max_wal_size until most checkpoints are timed.");
}
