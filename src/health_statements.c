/*-------------------------------------------------------------------------
 *
 * health_statements.c
 *	  The check of dbops.health() over pg_stat_statements: slow_queries.
 *	  pg_stat_statements is optional and may be installed in any schema; the
 *	  check finds it through pg_extension and reads its view as the caller
 *	  (who sees every statement's figures; the queryid of another role's
 *	  statement only with pg_read_all_stats).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "dbops.h"
#include "healthkit.h"

/*
 * Statements with fewer calls than this are left out: a mean over a handful
 * of calls says little (a first run with a cold cache, a one-off report).
 */
#define SLOW_QUERIES_MIN_CALLS	10

/*
 * slow_queries: the highest mean execution time (ms) among the current
 * database's statements of at least SLOW_QUERIES_MIN_CALLS calls; the
 * detail names those whose mean passes the warning threshold (the critical
 * one when warning is NULL), the top ones by total time, with their
 * queryid.
 */
void
dbops_check_slow_queries(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr ext_plan = NULL;
	static SPIPlanPtr stmt_plan = NULL;
	static char plan_schema[NAMEDATALEN];
	SPITupleTable *tt;
	char	   *schema;
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		args[2];
	double		limit;
	double		worst = 0;
	int			nslow = 0;
	uint64		n;
	DbopsTopN	top = {0};

	tt = dbops_kept_query(&ext_plan,
						  "SELECT n.nspname::pg_catalog.text "
						  "FROM pg_catalog.pg_extension e "
						  "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
						  "WHERE e.extname OPERATOR(pg_catalog.=) 'pg_stat_statements'::pg_catalog.name");
	if (SPI_processed == 0)
	{
		appendStringInfoString(&res->detail,
							   "pg_stat_statements is not installed in this database: nothing to check");
		return;
	}
	schema = dbops_col_text(tt, 0, 1);

	/*
	 * Installed but not preloaded: pg_stat_statements defines its variables
	 * only when loaded at server start (a setting of it in the configuration
	 * file is then a placeholder).
	 */
	if (GetConfigOption("pg_stat_statements.max", true, false) == NULL ||
		(GetConfigOptionFlags("pg_stat_statements.max", true) & GUC_CUSTOM_PLACEHOLDER) != 0)
	{
		dbops_check_unknown(res, "pg_stat_statements is installed in this database but not loaded");
		appendStringInfoString(&res->hint,
							   "Add pg_stat_statements to shared_preload_libraries and restart the server.");
		return;
	}

	/* the kept plan names the schema it was built for */
	if (stmt_plan != NULL && strcmp(plan_schema, schema) != 0)
	{
		SPI_freeplan(stmt_plan);
		stmt_plan = NULL;
	}
	if (stmt_plan == NULL)
		strlcpy(plan_schema, schema, sizeof(plan_schema));

	args[0] = Int64GetDatum(SLOW_QUERIES_MIN_CALLS);
	args[1] = ObjectIdGetDatum(MyDatabaseId);
	tt = dbops_kept_query_args(&stmt_plan,
							   psprintf("SELECT s.queryid, s.calls, s.total_exec_time, s.mean_exec_time "
										"FROM %s.pg_stat_statements AS s "
										"WHERE s.calls OPERATOR(pg_catalog.>=) $1 "
										"AND s.dbid OPERATOR(pg_catalog.=) $2",
										quote_identifier(plan_schema)),
							   2, argtypes, args, true);
	n = SPI_processed;

	limit = !isnan(res->warning) ? res->warning : res->critical;
	for (uint64 r = 0; r < n; r++)
	{
		bool		isnull;
		double		mean = dbops_col_float(tt, r, 4, &isnull);

		worst = Max(worst, mean);
		if (isnan(limit) || mean >= limit)
		{
			nslow++;
			dbops_topn_add(&top, dbops_col_float(tt, r, 3, &isnull), (int) r);
		}
	}
	dbops_check_value(res, dbops_rounded(worst, 2), "ms");

	if (nslow == 0 && isnan(limit))
	{
		appendStringInfo(&res->detail, "no statement of at least %d calls in this database",
						 SLOW_QUERIES_MIN_CALLS);
		return;
	}
	if (nslow == 0)
	{
		appendStringInfo(&res->detail,
						 "no statement of at least %d calls in this database has a mean over %g ms",
						 SLOW_QUERIES_MIN_CALLS, limit);
		return;
	}
	if (isnan(limit))
		appendStringInfo(&res->detail, "%d statement(s) of at least %d calls",
						 nslow, SLOW_QUERIES_MIN_CALLS);
	else
		appendStringInfo(&res->detail,
						 "%d statement(s) of at least %d calls with a mean over %g ms",
						 nslow, SLOW_QUERIES_MIN_CALLS, limit);
	appendStringInfoString(&res->detail, "; by total time: ");
	for (int t = 0; t < top.n; t++)
	{
		int			r = top.item[t];
		char	   *queryid = dbops_col_cstring(tt, r, 1);
		bool		isnull;

		if (t > 0)
			appendStringInfoString(&res->detail, ", ");
		if (queryid)
			appendStringInfo(&res->detail, "queryid %s", queryid);
		else
			appendStringInfoString(&res->detail, "queryid hidden (another role's)");
		appendStringInfo(&res->detail, " (mean %.2f ms over %s calls, total ",
						 dbops_col_float(tt, r, 4, &isnull), dbops_col_text(tt, r, 2));
		dbops_append_duration(&res->detail, top.score[t] / 1000.0);
		appendStringInfoChar(&res->detail, ')');
	}
	if (nslow > top.n)
		appendStringInfo(&res->detail, ", and %d more", nslow - top.n);
	appendStringInfoString(&res->hint,
						   "See SELECT * FROM dbops.top_queries('mean_time'); look at their plans (EXPLAIN (ANALYZE, BUFFERS)) for missing indexes or large sorts.");
}
