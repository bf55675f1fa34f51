/*-------------------------------------------------------------------------
 *
 * health.c
 *	  dbops.health(): the registry of health checks and the engine that runs
 *	  them, each in its own subtransaction under a short timeout, and grades
 *	  their values against dbops.health_thresholds.  The checks of the health
 *	  capability itself follow the engine.
 *
 *	  The checks read server state where it is cheapest: the backend status
 *	  array instead of pg_stat_activity, one heap scan of pg_class with the
 *	  cumulative statistics fetched per relation instead of
 *	  pg_stat_user_tables, and the sequence pages read through the buffer
 *	  manager instead of opening every sequence.  Small views (pg_database,
 *	  pg_replication_slots, pg_stat_database...) are read with SPI through
 *	  plans kept for the life of the backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/twophase.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_tablespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "postmaster/autovacuum.h"
#include "postmaster/postmaster.h"
#include "replication/walreceiver.h"
#include "storage/bufmgr.h"
#include "storage/fd.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/sinval.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"

/* The health capability's own checks (the others are declared in dbops.h) */
static void check_long_query(DbopsCheckResult *res);
static void check_idle_in_transaction(DbopsCheckResult *res);
static void check_xid_wraparound(DbopsCheckResult *res);
static void check_mxid_wraparound(DbopsCheckResult *res);
static void check_prepared_xacts(DbopsCheckResult *res);
static void check_replication_lag(DbopsCheckResult *res);
static void check_replication_slots(DbopsCheckResult *res);
static void check_archiver(DbopsCheckResult *res);
static void check_invalid_indexes(DbopsCheckResult *res);
static void check_sequences(DbopsCheckResult *res);
static void check_dead_tuples(DbopsCheckResult *res);
static void check_vacuum_age(DbopsCheckResult *res);
static void check_cache_hit_ratio(DbopsCheckResult *res);
static void check_deadlocks(DbopsCheckResult *res);
static void check_temp_files(DbopsCheckResult *res);
static void check_checkpoints(DbopsCheckResult *res);
static void check_database_size(DbopsCheckResult *res);

/* The registry: every check dbops knows, in report order for equal status. */
static const DbopsCheck dbops_checks[] = {
	{"connections", dbops_check_connections, DBOPS_HIGHER_IS_WORSE},
	{"lock_waits", dbops_check_lock_waits, DBOPS_HIGHER_IS_WORSE},
	{"long_query", check_long_query, DBOPS_HIGHER_IS_WORSE},
	{"idle_in_transaction", check_idle_in_transaction, DBOPS_HIGHER_IS_WORSE},
	{"xid_wraparound", check_xid_wraparound, DBOPS_HIGHER_IS_WORSE},
	{"mxid_wraparound", check_mxid_wraparound, DBOPS_HIGHER_IS_WORSE},
	{"prepared_xacts", check_prepared_xacts, DBOPS_HIGHER_IS_WORSE},
	{"replication_lag", check_replication_lag, DBOPS_HIGHER_IS_WORSE},
	{"replication_slots", check_replication_slots, DBOPS_HIGHER_IS_WORSE},
	{"archiver", check_archiver, DBOPS_HIGHER_IS_WORSE},
	{"invalid_indexes", check_invalid_indexes, DBOPS_HIGHER_IS_WORSE},
	{"dead_tuples", check_dead_tuples, DBOPS_HIGHER_IS_WORSE},
	{"vacuum_age", check_vacuum_age, DBOPS_HIGHER_IS_WORSE},
	{"sequences", check_sequences, DBOPS_HIGHER_IS_WORSE},
	{"cache_hit_ratio", check_cache_hit_ratio, DBOPS_LOWER_IS_WORSE},
	{"deadlocks", check_deadlocks, DBOPS_HIGHER_IS_WORSE},
	{"temp_files", check_temp_files, DBOPS_HIGHER_IS_WORSE},
	{"checkpoints", check_checkpoints, DBOPS_HIGHER_IS_WORSE},
	{"database_size", check_database_size, DBOPS_HIGHER_IS_WORSE},
	{"bloat", dbops_check_bloat, DBOPS_HIGHER_IS_WORSE},
	{"reaper", dbops_check_reaper, DBOPS_HIGHER_IS_WORSE},
	{"migrations", dbops_check_migrations, DBOPS_HIGHER_IS_WORSE},
	{"retention", dbops_check_retention, DBOPS_HIGHER_IS_WORSE},
	{"cron_failures", dbops_check_cron_failures, DBOPS_HIGHER_IS_WORSE},
};

#define NUM_DBOPS_CHECKS lengthof(dbops_checks)

static int			dbops_health_check_timeout = 2000;
static bool		dbops_health_timing = false;

static TimeoutId check_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t check_timed_out = false;

/* how many culprits a detail names */
#define MAX_CULPRITS 5

void
dbops_health_init(void)
{
	DefineCustomIntVariable("dbops.health_check_timeout",
							"Time limit for one health check.",
							"A check that runs longer is reported as unknown; 0 disables the limit.",
							&dbops_health_check_timeout,
							2000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("dbops.health_timing",
							 "Reports the run time of every health check as a NOTICE.",
							 NULL,
							 &dbops_health_timing,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

const char *
dbops_status_name(DbopsStatus status)
{
	switch (status)
	{
		case DBOPS_OK:
			return "ok";
		case DBOPS_SKIPPED:
			return "skipped";
		case DBOPS_UNKNOWN:
			return "unknown";
		case DBOPS_WARNING:
			return "warning";
		case DBOPS_CRITICAL:
			return "critical";
	}
	return "unknown";			/* keep compiler quiet */
}

void
dbops_check_value(DbopsCheckResult *res, double value, const char *unit)
{
	res->has_value = true;
	res->value = value;
	res->unit = unit;
}

void
dbops_check_at_least(DbopsCheckResult *res, DbopsStatus status)
{
	Assert(status == DBOPS_WARNING || status == DBOPS_CRITICAL);
	if (status > res->min_status)
		res->min_status = status;
}

void
dbops_check_skip(DbopsCheckResult *res, const char *fmt,...)
{
	va_list		args;

	res->status = DBOPS_SKIPPED;
	resetStringInfo(&res->detail);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&res->detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&res->detail, needed);
	}
}

void
dbops_check_unknown(DbopsCheckResult *res, const char *fmt,...)
{
	va_list		args;

	res->status = DBOPS_UNKNOWN;
	resetStringInfo(&res->detail);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&res->detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&res->detail, needed);
	}
}

static void
check_timeout_handler(void)
{
	check_timed_out = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/*
 * Whose cancel is it?  The engine's own per-check timer cancels the check
 * it times by setting QueryCancelPending, which is also what a user's
 * cancel (pg_cancel_backend(), Ctrl-C) and statement_timeout do.  A cancel
 * while our timer had not fired is the user's and cancels the whole report;
 * so does any error once the statement's statement_timeout deadline has
 * passed, even when the check's own timer fired at the same moment (a
 * lock_timeout or our timer may hide it).  A pg_cancel_backend() that lands
 * in the same instant as our timer is taken for the timer, as PostgreSQL
 * takes one that lands with a lock_timeout for the lock timeout.
 */
static TimestampTz report_deadline = 0;	/* statement_timeout's, or 0 */

static void
report_cancel_watch_begin(void)
{
	report_deadline = 0;
	if (get_timeout_active(STATEMENT_TIMEOUT))
		report_deadline = get_timeout_finish_time(STATEMENT_TIMEOUT);
}

static void
report_cancel_watch_end(void)
{
	report_deadline = 0;
}

/* Has the statement that runs the report used up its statement_timeout? */
static bool
report_deadline_passed(void)
{
	return report_deadline != 0 && GetCurrentTimestamp() >= report_deadline;
}

/* Grade a value against its thresholds. */
static DbopsStatus
grade(const DbopsCheck *check, const DbopsCheckResult *res)
{
	double		v = res->value;
	DbopsStatus status = DBOPS_OK;

	if (res->has_value && !isnan(v))
	{
		if (check->direction == DBOPS_HIGHER_IS_WORSE)
		{
			if (!isnan(res->critical) && v >= res->critical)
				status = DBOPS_CRITICAL;
			else if (!isnan(res->warning) && v >= res->warning)
				status = DBOPS_WARNING;
		}
		else
		{
			if (!isnan(res->critical) && v <= res->critical)
				status = DBOPS_CRITICAL;
			else if (!isnan(res->warning) && v <= res->warning)
				status = DBOPS_WARNING;
		}
	}
	return Max(status, res->min_status);
}

/*
 * Run one check in a subtransaction, so that an error or a timeout in it is
 * reported as that check's status and cannot spoil the others.  The
 * lock_timeout the check runs under is undone when it ends, whatever the
 * outcome, so the caller's transaction keeps its own setting.
 *
 * A cancel of the statement (the user's, statement_timeout) is not the
 * check's: it rolls back and releases the check's subtransaction and is
 * raised again, so that the statement ends cleanly and the session (and
 * its transaction block, if any) is left as after any other error.
 */
static void
run_check(const DbopsCheck *check, DbopsCheckResult *res)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char		timeout_str[32];
	int			save_nestlevel;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	save_nestlevel = NewGUCNestLevel();
	check_timed_out = false;
	PG_TRY();
	{
		if (dbops_health_check_timeout > 0)
		{
			snprintf(timeout_str, sizeof(timeout_str), "%d", dbops_health_check_timeout);
			(void) set_config_option("lock_timeout", timeout_str,
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
			enable_timeout_after(check_timeout_id, dbops_health_check_timeout);
		}

		check->func(res);

		if (dbops_health_check_timeout > 0)
			disable_timeout(check_timeout_id, false);

		/*
		 * The timer may have fired just as the check returned: its cancel
		 * request is ours and must not cancel the rest of the report, unless
		 * somebody else asked to cancel meanwhile (then it stays pending).
		 */
		if (check_timed_out)
		{
			if (!report_deadline_passed())
				QueryCancelPending = false;
			check_timed_out = false;
		}

		AtEOXact_GUC(true, save_nestlevel);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		timed_out;
		bool		cancelled;
		bool		out_of_time;

		if (dbops_health_check_timeout > 0)
			disable_timeout(check_timeout_id, false);
		timed_out = check_timed_out;
		check_timed_out = false;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		/*
		 * The statement is cancelled when the cancel is not (only) our
		 * timer's, and when its statement_timeout has run out whatever the
		 * error was (a lock_timeout that fired with it hides it).
		 */
		out_of_time = report_deadline_passed();
		cancelled = edata->sqlerrcode == ERRCODE_QUERY_CANCELED && !timed_out;
		if (out_of_time && !cancelled)
		{
			FreeErrorData(edata);
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("canceling statement due to statement timeout")));
		}
		if (cancelled)
			ReThrowError(edata);

		/* our timer's cancel that the error beat to it is ours to drop */
		if (timed_out)
			QueryCancelPending = false;

		/* start over: whatever the check had filled in is not to be trusted */
		res->has_value = false;
		res->unit = NULL;
		res->min_status = DBOPS_OK;
		resetStringInfo(&res->hint);

		if (timed_out)
		{
			dbops_check_unknown(res, "check did not finish within dbops.health_check_timeout (%d ms)",
								dbops_health_check_timeout);
			appendStringInfoString(&res->hint, "Raise dbops.health_check_timeout or find what slows the check (catalog or lock contention).");
		}
		else if (edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		{
			dbops_check_skip(res, "%s", edata->message);
			appendStringInfoString(&res->hint, "Grant the role pg_monitor to run this check.");
		}
		else
		{
			dbops_check_unknown(res, "check failed: %s", dbops_bounded(edata->message, 200));
			if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
				appendStringInfoString(&res->hint, "The check could not get a lock within dbops.health_check_timeout; run it again, or find the session holding the lock.");
			else if (edata->hint != NULL)
				appendStringInfoString(&res->hint, dbops_bounded(edata->hint, 400));
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

typedef struct CheckRow
{
	DbopsCheckResult res;
	int			order;
} CheckRow;

static int
checkrow_cmp(const void *a, const void *b)
{
	const CheckRow *ra = (const CheckRow *) a;
	const CheckRow *rb = (const CheckRow *) b;

	if (ra->res.status != rb->res.status)
		return (int) rb->res.status - (int) ra->res.status;
	return ra->order - rb->order;
}

static double
nullable_float(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return NAN;
	/* a row stored before thresholds were range-checked cannot fail the report */
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
}

/*
 * What several checks of one report share: the pg_class scan with the
 * statistics of every table (built by the first check that needs it, kept in
 * the report's memory context, forgotten when the report ends).
 */
typedef struct RelInfo
{
	Oid			relid;
	Oid			relnamespace;
	Oid			relfilenode;
	Oid			reltablespace;
	char		relkind;
	char		relpersistence;
	bool		relisshared;
	int32		relpages;
	float4		reltuples;
	/* statistics, for tables (have_stats) */
	bool		have_stats;
	int64		n_live;
	int64		n_dead;
	TimestampTz last_vacuum;	/* latest of manual and auto vacuum */
	/* the table's own autovacuum settings (reloptions); -1 where unset */
	int			av_vac_thresh;
	double		av_vac_scale;
	bool		av_disabled;	/* autovacuum_enabled = false */
} RelInfo;

typedef struct RelScan
{
	int			nrels;
	RelInfo    *rels;
	int64		total_pages;
	int			nlargest;		/* the largest relations of any kind */
	RelInfo		largest[MAX_CULPRITS];
	int			nlarge;			/* every relation of DBOPS_LARGE_REL_PAGES or more */
	int			alloclarge;
	DbopsLargeRel *large;
	uint64		inval_count;	/* SharedInvalidMessageCounter at the scan */
} RelScan;

static MemoryContext report_context = NULL;
static RelScan *report_relscan = NULL;

/*
 * A detail or hint longer than this is cut (at a character boundary, with
 * "..."): a check that names what a caller recorded cannot make the report,
 * or the snapshots kept of it, grow without bound.
 */
#define DBOPS_REPORT_TEXT_MAX 8192

static void
clip_report_text(StringInfo buf)
{
	int			cut;

	if (buf->len <= DBOPS_REPORT_TEXT_MAX)
		return;
	cut = pg_mbcliplen(buf->data, buf->len, DBOPS_REPORT_TEXT_MAX - 3);
	buf->len = cut;
	buf->data[cut] = '\0';
	appendStringInfoString(buf, "...");
}

/*
 * Run every enabled check; returns the results sorted worst first, and their
 * number in *nrows.
 */
static CheckRow *
run_checks(int *nrows)
{
	MemoryContext outer = CurrentMemoryContext;
	CheckRow   *rows;
	bool		enabled[NUM_DBOPS_CHECKS];
	int			n = 0;
	int			ret;
	uint64		i;

	rows = palloc0(sizeof(CheckRow) * NUM_DBOPS_CHECKS);
	report_context = outer;
	report_relscan = NULL;

	SPI_connect();
	ret = SPI_execute("SELECT check_name, warning, critical, enabled FROM dbops.health_thresholds",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dbops.health_thresholds: %s", SPI_result_code_string(ret));

	/* thresholds, in registry order; a check without a row runs ungraded */
	for (int c = 0; c < NUM_DBOPS_CHECKS; c++)
	{
		rows[c].res.warning = NAN;
		rows[c].res.critical = NAN;
		enabled[c] = true;
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *name = SPI_getvalue(tup, desc, 1);
			bool		isnull;

			if (strcmp(name, dbops_checks[c].name) != 0)
				continue;
			rows[c].res.warning = nullable_float(tup, desc, 2);
			rows[c].res.critical = nullable_float(tup, desc, 3);
			enabled[c] = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) && !isnull;
			break;
		}
	}

	for (int c = 0; c < NUM_DBOPS_CHECKS; c++)
	{
		const DbopsCheck *check = &dbops_checks[c];
		CheckRow   *row = &rows[n];
		MemoryContext spicxt;
		instr_time	start;
		instr_time	duration;

		CHECK_FOR_INTERRUPTS();

		if (!enabled[c])
			continue;
		/* compact the enabled checks to the front */
		if (row != &rows[c])
			row->res = rows[c].res;
		row->order = c;
		row->res.name = check->name;

		spicxt = MemoryContextSwitchTo(outer);
		initStringInfo(&row->res.detail);
		initStringInfo(&row->res.hint);
		MemoryContextSwitchTo(spicxt);

		INSTR_TIME_SET_CURRENT(start);
		run_check(check, &row->res);
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);

		if (dbops_health_timing)
			ereport(NOTICE,
					(errmsg("dbops.health: check %s took %.3f ms",
							check->name, INSTR_TIME_GET_MILLISEC(duration))));

		clip_report_text(&row->res.detail);
		clip_report_text(&row->res.hint);
		if (row->res.status == DBOPS_OK)
			row->res.status = grade(check, &row->res);
		n++;
	}
	SPI_finish();
	report_relscan = NULL;
	report_context = NULL;

	qsort(rows, n, sizeof(CheckRow), checkrow_cmp);
	*nrows = n;
	return rows;
}

/*
 * run_checks(), with the statement's deadline noted for telling cancels apart
 * (see report_cancel_watch_begin()); whatever ends the report, nothing of
 * the report's is left for the next one.
 */
static CheckRow *
dbops_health_collect(int *nrows)
{
	CheckRow   *volatile rows = NULL;

	if (check_timeout_id == MAX_TIMEOUTS)
		check_timeout_id = RegisterTimeout(USER_TIMEOUT, check_timeout_handler);

	report_cancel_watch_begin();
	PG_TRY();
	{
		rows = run_checks(nrows);
	}
	PG_FINALLY();
	{
		report_cancel_watch_end();
		report_relscan = NULL;
		report_context = NULL;
	}
	PG_END_TRY();
	return rows;
}

PG_FUNCTION_INFO_V1(dbops_health);

Datum
dbops_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CheckRow   *rows;
	int			nrows;

	InitMaterializedSRF(fcinfo, 0);
	rows = dbops_health_collect(&nrows);

	for (int r = 0; r < nrows; r++)
	{
		DbopsCheckResult *res = &rows[r].res;
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = CStringGetTextDatum(res->name);
		values[1] = CStringGetTextDatum(dbops_status_name(res->status));
		if (res->has_value && !isnan(res->value))
			values[2] = DirectFunctionCall1(float8_numeric, Float8GetDatum(res->value));
		else
			nulls[2] = true;
		if (!isnan(res->warning))
			values[3] = DirectFunctionCall1(float8_numeric, Float8GetDatum(res->warning));
		else
			nulls[3] = true;
		if (!isnan(res->critical))
			values[4] = DirectFunctionCall1(float8_numeric, Float8GetDatum(res->critical));
		else
			nulls[4] = true;
		if (res->unit)
			values[5] = CStringGetTextDatum(res->unit);
		else
			nulls[5] = true;
		if (res->detail.len > 0)
			values[6] = CStringGetTextDatum(res->detail.data);
		else
			nulls[6] = true;
		if (res->status != DBOPS_OK && res->hint.len > 0)
			values[7] = CStringGetTextDatum(res->hint.data);
		else
			nulls[7] = true;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * dbops.health_checks(): the registry, for the thresholds trigger and for
 * users who want to know which checks exist.
 */
PG_FUNCTION_INFO_V1(dbops_health_checks);

Datum
dbops_health_checks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int c = 0; c < NUM_DBOPS_CHECKS; c++)
	{
		Datum		values[2];
		bool		nulls[2] = {0};

		values[0] = CStringGetTextDatum(dbops_checks[c].name);
		values[1] = CStringGetTextDatum(dbops_checks[c].direction == DBOPS_HIGHER_IS_WORSE ?
										"higher_is_worse" : "lower_is_worse");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ----------------------------------------------------------------------
 * Helpers for the checks
 * ----------------------------------------------------------------------
 */

/*
 * Run a query through a plan kept for the life of the backend (checks run
 * often; planning the same catalog query every time is wasted work).
 *
 * A kept plan is analyzed again when search_path changes, and superusers
 * run these: every query text names its functions, operators, types and
 * relations with their schema (pg_catalog.x, OPERATOR(pg_catalog.-),
 * ::pg_catalog.float8), so that it means the same under any search_path.
 * dbops.health() also pins search_path in its CREATE FUNCTION.
 */
static SPITupleTable *
run_kept_query(SPIPlanPtr *plan, const char *sql)
{
	int			ret;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, 0, NULL);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	ret = SPI_execute_plan(*plan, NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s", sql,
			 SPI_result_code_string(ret));
	return SPI_tuptable;
}

static char *
col_text(SPITupleTable *tt, uint64 row, int col)
{
	char	   *v = SPI_getvalue(tt->vals[row], tt->tupdesc, col);

	return v ? v : "?";
}

static double
col_float(SPITupleTable *tt, uint64 row, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tt->vals[row], tt->tupdesc, col, isnull);
	Oid			typid = SPI_gettypeid(tt->tupdesc, col);

	if (*isnull)
		return 0;
	switch (typid)
	{
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		case INT4OID:
			return DatumGetInt32(d);
		case XIDOID:
			return DatumGetTransactionId(d);
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		default:
			elog(ERROR, "unexpected type %u", typid);
	}
	return 0;					/* keep compiler quiet */
}

/* Can the caller read other roles' session and replication details? */
static bool
can_read_all_stats(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/* v rounded to the given number of decimals, for a value users read */
static double
rounded(double v, int decimals)
{
	double		scale = pow(10, decimals);

	return round(v * scale) / scale;
}

static double
seconds_between(TimestampTz from, TimestampTz to)
{
	return (double) (to - from) / USECS_PER_SEC;
}

/* "1h 02m", "3m 04s", "5.2s": a duration as a DBA reads it */
static void
append_duration(StringInfo buf, double secs)
{
	if (secs >= 86400)
		appendStringInfo(buf, "%dd %02dh", (int) (secs / 86400), (int) fmod(secs, 86400) / 3600);
	else if (secs >= 3600)
		appendStringInfo(buf, "%dh %02dm", (int) (secs / 3600), (int) fmod(secs, 3600) / 60);
	else if (secs >= 60)
		appendStringInfo(buf, "%dm %02ds", (int) (secs / 60), (int) fmod(secs, 60));
	else
		appendStringInfo(buf, "%.1fs", secs);
}

static void
append_bytes(StringInfo buf, double bytes)
{
	const char *units[] = {"bytes", "kB", "MB", "GB", "TB", "PB"};
	int			u = 0;

	while (bytes >= 10240 && u < lengthof(units) - 1)
	{
		bytes /= 1024;
		u++;
	}
	appendStringInfo(buf, "%.0f %s", bytes, units[u]);
}

static char *
relation_display_name(Oid relid, Oid nspid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname = get_namespace_name(nspid);

	if (relname == NULL)
		return psprintf("(dropped relation %u)", relid);
	return quote_qualified_identifier(nspname, relname);
}

/*
 * The candidates a detail names: a bounded list kept sorted by score,
 * highest first.
 */
typedef struct TopN
{
	int			n;
	double		score[MAX_CULPRITS];
	int			item[MAX_CULPRITS];
} TopN;

static void
topn_add(TopN *top, double score, int item)
{
	int			pos;

	if (top->n == MAX_CULPRITS && score <= top->score[MAX_CULPRITS - 1])
		return;
	pos = Min(top->n, MAX_CULPRITS - 1);
	while (pos > 0 && top->score[pos - 1] < score)
	{
		top->score[pos] = top->score[pos - 1];
		top->item[pos] = top->item[pos - 1];
		pos--;
	}
	top->score[pos] = score;
	top->item[pos] = item;
	if (top->n < MAX_CULPRITS)
		top->n++;
}

/*
 * The cumulative statistics the check reads are collected only with
 * track_counts on: without them, an empty answer would be a false "ok".
 */
static bool
counts_tracked(DbopsCheckResult *res)
{
	if (pgstat_track_counts)
		return true;
	dbops_check_unknown(res, "track_counts is off: the statistics this check reads are not collected");
	appendStringInfoString(&res->hint, "Turn track_counts on (it is on by default).");
	return false;
}

/* ----------------------------------------------------------------------
 * Session checks: the backend status array, no pg_stat_activity
 * ----------------------------------------------------------------------
 */

/*
 * connections: client backends in use as a percentage of the slots open to
 * ordinary roles (max_connections less the reserved ones).
 */
void
dbops_check_connections(DbopsCheckResult *res)
{
	int			nbackends = pgstat_fetch_stat_numbackends();
	int			usable = MaxConnections - DBOPS_RESERVED_CONNECTIONS;
	int			used = 0;
	int			nstate[3] = {0, 0, 0};	/* active, idle, idle in transaction */
	Oid		   *dbs = palloc(sizeof(Oid) * Max(nbackends, 1));
	int		   *cnts = palloc0(sizeof(int) * Max(nbackends, 1));
	int			ndbs = 0;
	TopN		top = {0};

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
		topn_add(&top, cnts[d], d);

	dbops_check_value(res, rounded(usable > 0 ? 100.0 * used / usable : 100.0, 2), "%");
	appendStringInfo(&res->detail, "%d of %d connections in use (max_connections %d, %d reserved)",
					 used, usable, MaxConnections, DBOPS_RESERVED_CONNECTIONS);
	if (can_read_all_stats())
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
	if (can_read_all_stats())
		return true;
	dbops_check_skip(res, "reading other roles' sessions needs the privileges of pg_read_all_stats");
	appendStringInfoString(&res->hint, "Grant the role pg_monitor (or pg_read_all_stats) to run this check.");
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
	append_duration(buf, secs);
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
	TopN		top = {0};
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
		topn_add(&top, seconds_between(since, now), i);
	}

	if (count == 0 && untracked > 0)
	{
		dbops_check_unknown(res, "%d session(s) do not report their activity (track_activities is off)",
							untracked);
		appendStringInfoString(&res->hint, "Turn track_activities on (it is on by default).");
		return;
	}
	dbops_check_value(res, rounded(top.n > 0 ? Max(top.score[0], 0) : 0, 3), "s");
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
static void
check_long_query(DbopsCheckResult *res)
{
	session_check(res, false);
}

/* idle_in_transaction: the session idle in transaction the longest, in seconds */
static void
check_idle_in_transaction(DbopsCheckResult *res)
{
	session_check(res, true);
}

/* ----------------------------------------------------------------------
 * Wraparound and prepared transactions
 * ----------------------------------------------------------------------
 */

static void
wraparound_check(DbopsCheckResult *res, bool multixact)
{
	static SPIPlanPtr plan_xid = NULL;
	static SPIPlanPtr plan_mxid = NULL;
	SPITupleTable *tt;
	bool		isnull;
	uint64		n;

	if (multixact)
		tt = run_kept_query(&plan_mxid,
							"SELECT datname, pg_catalog.mxid_age(datminmxid)::pg_catalog.int8 AS age "
							"FROM pg_catalog.pg_database "
							"ORDER BY 2 DESC, 1");
	else
		tt = run_kept_query(&plan_xid,
							"SELECT datname, pg_catalog.age(datfrozenxid)::pg_catalog.int8 AS age "
							"FROM pg_catalog.pg_database "
							"ORDER BY 2 DESC, 1");
	n = SPI_processed;
	if (n == 0)
	{
		dbops_check_unknown(res, "pg_database is empty");
		return;
	}
	dbops_check_value(res, col_float(tt, 0, 2, &isnull), multixact ? "multixacts" : "transactions");
	appendStringInfoString(&res->detail, "oldest: ");
	for (uint64 r = 0; r < n && r < 3; r++)
		appendStringInfo(&res->detail, "%s%s %s", r > 0 ? ", " : "",
						 quote_identifier(col_text(tt, r, 1)), col_text(tt, r, 2));
	appendStringInfo(&res->detail, " (%s = %s; wraparound at 2^31)",
					 multixact ? "autovacuum_multixact_freeze_max_age" : "autovacuum_freeze_max_age",
					 GetConfigOption(multixact ? "autovacuum_multixact_freeze_max_age" : "autovacuum_freeze_max_age",
									 false, false));
	appendStringInfoString(&res->hint, multixact ?
						   "VACUUM (FREEZE) the oldest tables of those databases (see pg_class.relminmxid); end long transactions and drop stale replication slots and prepared transactions that hold the horizon back." :
						   "VACUUM (FREEZE) the oldest tables of those databases (see age(pg_class.relfrozenxid)); end long transactions and drop stale replication slots and prepared transactions that hold the horizon back.");
}

/* xid_wraparound: the highest age(datfrozenxid) of any database */
static void
check_xid_wraparound(DbopsCheckResult *res)
{
	wraparound_check(res, false);
}

/* mxid_wraparound: the highest mxid_age(datminmxid) of any database */
static void
check_mxid_wraparound(DbopsCheckResult *res)
{
	wraparound_check(res, true);
}

/* prepared_xacts: age of the oldest prepared transaction, in seconds */
static void
check_prepared_xacts(DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	uint64		n;
	bool		isnull;

	tt = run_kept_query(&plan,
						"SELECT gid, owner, database, "
						"pg_catalog.extract('epoch', pg_catalog.now() OPERATOR(pg_catalog.-) prepared)"
						"::pg_catalog.float8 "
						"FROM pg_catalog.pg_prepared_xacts ORDER BY prepared, gid");
	n = SPI_processed;
	if (n == 0)
	{
		dbops_check_value(res, 0, "s");
		appendStringInfo(&res->detail, "no prepared transaction (max_prepared_transactions = %d)",
						 max_prepared_xacts);
		return;
	}
	dbops_check_value(res, rounded(Max(col_float(tt, 0, 4, &isnull), 0), 3), "s");
	appendStringInfo(&res->detail, "%d prepared transaction(s), oldest: ", (int) n);
	for (uint64 r = 0; r < n && r < MAX_CULPRITS; r++)
	{
		appendStringInfo(&res->detail, "%s%s (%s@%s, ", r > 0 ? "; " : "",
						 quote_literal_cstr(col_text(tt, r, 1)),
						 quote_identifier(col_text(tt, r, 2)),
						 quote_identifier(col_text(tt, r, 3)));
		append_duration(&res->detail, col_float(tt, r, 4, &isnull));
		appendStringInfoChar(&res->detail, ')');
	}
	appendStringInfoString(&res->hint,
						   "A forgotten prepared transaction holds locks and the xmin horizon: have its transaction manager finish it, or run COMMIT PREPARED / ROLLBACK PREPARED 'gid' in its database.");
}

/* ----------------------------------------------------------------------
 * Replication and WAL
 * ----------------------------------------------------------------------
 */

/*
 * replication_lag: on a primary, the largest replay lag of its standbys in
 * seconds (bytes in the detail); on a standby, its own replay delay.
 */
static void
check_replication_lag(DbopsCheckResult *res)
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
			delay = Max(seconds_between(last_xact, GetCurrentTimestamp()), 0);
		dbops_check_value(res, rounded(delay, 3), "s");

		tt = run_kept_query(&plan, "SELECT status, sender_host FROM pg_catalog.pg_stat_wal_receiver");
		if (bytes == 0)
			appendStringInfoString(&res->detail, "standby: caught up");
		else
		{
			appendStringInfo(&res->detail, "standby: replay delay ");
			append_duration(&res->detail, delay);
			appendStringInfoString(&res->detail, ", ");
			append_bytes(&res->detail, bytes);
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
			appendStringInfo(&res->detail, "; WAL receiver %s", col_text(tt, 0, 1));
			if (SPI_getvalue(tt->vals[0], tt->tupdesc, 2) != NULL)
				appendStringInfo(&res->detail, " from %s", col_text(tt, 0, 2));
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

		tt = run_kept_query(&plan,
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
		if (!can_read_all_stats())
		{
			dbops_check_skip(res, "%d WAL sender(s) connected; reading their positions needs the privileges of pg_read_all_stats",
							 (int) n);
			appendStringInfoString(&res->hint, "Grant the role pg_monitor (or pg_read_all_stats) to run this check.");
			return;
		}
		appendStringInfo(&res->detail, "primary: %d standby(s): ", (int) n);
		for (uint64 r = 0; r < n; r++)
		{
			int			pid = atoi(col_text(tt, r, 1));
			bool		bytes_null;
			bool		lag_null;
			double		bytes = col_float(tt, r, 4, &bytes_null);
			double		lag = col_float(tt, r, 5, &lag_null);
			const char *appname = NULL;
			int			nbackends = pgstat_fetch_stat_numbackends();

			for (int i = 1; i <= nbackends; i++)
			{
				LocalPgBackendStatus *local = dbops_local_beentry(i);

				if (local && local->backendStatus.st_procpid == pid)
				{
					appname = local->backendStatus.st_appname;
					break;
				}
			}
			if (!lag_null)
				worst = Max(worst, lag);
			if (r >= MAX_CULPRITS)
				continue;
			appendStringInfo(&res->detail, "%s%s (pid %d, %s, %s): replay lag ",
							 r > 0 ? "; " : "",
							 appname && appname[0] ? quote_identifier(appname) : "(no application_name)",
							 pid, col_text(tt, r, 2), col_text(tt, r, 3));
			if (bytes_null)
				appendStringInfoString(&res->detail, "unknown bytes");
			else
				append_bytes(&res->detail, bytes);
			appendStringInfoString(&res->detail, ", ");
			if (lag_null)
				appendStringInfoString(&res->detail, "no recent time");
			else
				append_duration(&res->detail, lag);
		}
		dbops_check_value(res, rounded(worst, 3), "s");
		appendStringInfoString(&res->hint,
							   "Look at the lagging standby: network, disk, long queries there holding replay back (hot_standby_feedback, max_standby_streaming_delay), or a paused replay.");
	}
}

/*
 * replication_slots: the WAL retained by the slot that holds the most, in
 * MB; inactive and lost slots are named.
 */
static void
check_replication_slots(DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	uint64		n;
	int			inactive = 0;
	int			lost = 0;
	bool		isnull;

	tt = run_kept_query(&plan,
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
	dbops_check_value(res, rounded(Max(col_float(tt, 0, 5, &isnull), 0) / (1024.0 * 1024.0), 2), "MB");
	appendStringInfo(&res->detail, "%d slot(s): ", (int) n);
	for (uint64 r = 0; r < n; r++)
	{
		bool		active = strcmp(col_text(tt, r, 3), "t") == 0;
		char	   *wal_status = SPI_getvalue(tt->vals[r], tt->tupdesc, 4);
		double		retained = col_float(tt, r, 5, &isnull);

		if (!active)
			inactive++;
		if (wal_status && strcmp(wal_status, "lost") == 0)
			lost++;
		if (r >= MAX_CULPRITS)
			continue;
		appendStringInfo(&res->detail, "%s%s (%s, %s, ", r > 0 ? "; " : "",
						 quote_identifier(col_text(tt, r, 1)), col_text(tt, r, 2),
						 active ? "active" : "inactive");
		if (isnull)
			appendStringInfoString(&res->detail, "no WAL reserved");
		else
		{
			append_bytes(&res->detail, retained);
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
static void
check_archiver(DbopsCheckResult *res)
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

/* ----------------------------------------------------------------------
 * Relations of the current database
 * ----------------------------------------------------------------------
 */

/* invalid_indexes: indexes left invalid (failed CREATE INDEX CONCURRENTLY) */
static void
check_invalid_indexes(DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	uint64		n;

	tt = run_kept_query(&plan,
						"SELECT i.indexrelid::pg_catalog.regclass::pg_catalog.text, "
						"i.indrelid::pg_catalog.regclass::pg_catalog.text "
						"FROM pg_catalog.pg_index i WHERE NOT i.indisvalid ORDER BY 1");
	n = SPI_processed;
	dbops_check_value(res, n, "indexes");
	if (n == 0)
	{
		appendStringInfoString(&res->detail, "no invalid index in this database");
		return;
	}
	appendStringInfo(&res->detail, "%d invalid index(es): ", (int) n);
	for (uint64 r = 0; r < n && r < MAX_CULPRITS; r++)
		appendStringInfo(&res->detail, "%s%s on %s", r > 0 ? ", " : "",
						 col_text(tt, r, 1), col_text(tt, r, 2));
	if (n > MAX_CULPRITS)
		appendStringInfo(&res->detail, ", and %d more", (int) (n - MAX_CULPRITS));
	appendStringInfoString(&res->detail, " (an index being built CONCURRENTLY right now is also invalid)");
	appendStringInfoString(&res->hint,
						   "Invalid indexes cost writes and serve no reads: DROP INDEX CONCURRENTLY and create them again, or REINDEX INDEX CONCURRENTLY.");
}

/*
 * One heap scan of pg_class for the checks that look at every relation;
 * tables get their cumulative statistics.  Shared by the checks of one
 * report.
 */
static RelScan *
get_relscan(void)
{
	RelScan    *scan;
	Relation	rel;
	TableScanDesc hscan;
	HeapTuple	tup;
	int			alloc = 1024;
	MemoryContext old;

	if (report_relscan)
		return report_relscan;

	old = MemoryContextSwitchTo(report_context ? report_context : CurrentMemoryContext);
	scan = palloc0(sizeof(RelScan));
	scan->rels = palloc(sizeof(RelInfo) * alloc);

	rel = table_open(RelationRelationId, AccessShareLock);
	scan->inval_count = SharedInvalidMessageCounter;
	/* about two thirds of pg_class are tables and sequences */
	if (RelationGetForm(rel)->reltuples > alloc)
	{
		alloc = (int) Min(RelationGetForm(rel)->reltuples * 0.7, 16.0 * 1024 * 1024);
		scan->rels = repalloc_huge(scan->rels, sizeof(RelInfo) * alloc);
	}
	hscan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		Form_pg_class c = (Form_pg_class) GETSTRUCT(tup);
		RelInfo    *ri;

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
			(scan->nlargest < MAX_CULPRITS ||
			 c->relpages > scan->largest[MAX_CULPRITS - 1].relpages))
		{
			int			pos = Min(scan->nlargest, MAX_CULPRITS - 1);

			while (pos > 0 && scan->largest[pos - 1].relpages < c->relpages)
			{
				scan->largest[pos] = scan->largest[pos - 1];
				pos--;
			}
			scan->largest[pos].relid = c->oid;
			scan->largest[pos].relnamespace = c->relnamespace;
			scan->largest[pos].relpages = c->relpages;
			if (scan->nlargest < MAX_CULPRITS)
				scan->nlargest++;
		}
		/* the other checks look at tables and sequences only */
		if (c->relkind != RELKIND_RELATION && c->relkind != RELKIND_MATVIEW &&
			c->relkind != RELKIND_TOASTVALUE && c->relkind != RELKIND_SEQUENCE)
			continue;
		if (scan->nrels == alloc)
		{
			alloc *= 2;
			scan->rels = repalloc_huge(scan->rels, sizeof(RelInfo) * alloc);
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
		ri->have_stats = false;
		ri->av_vac_thresh = -1;
		ri->av_vac_scale = -1;
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
				ri->av_disabled = !opts->autovacuum.enabled;
				pfree(opts);
			}
		}
	}
	table_endscan(hscan);
	table_close(rel, AccessShareLock);

	for (int i = 0; i < scan->nrels; i++)
	{
		RelInfo    *ri = &scan->rels[i];
		PgStat_StatTabEntry *tab;

		if (ri->relkind != RELKIND_RELATION && ri->relkind != RELKIND_MATVIEW &&
			ri->relkind != RELKIND_TOASTVALUE)
			continue;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		tab = pgstat_fetch_stat_tabentry_ext(ri->relisshared, ri->relid);
		if (tab == NULL)
			continue;
		ri->have_stats = true;
		ri->n_live = DBOPS_TAB_LIVE_TUPLES(tab);
		ri->n_dead = DBOPS_TAB_DEAD_TUPLES(tab);
		ri->last_vacuum = Max(DBOPS_TAB_LAST_VACUUM(tab), DBOPS_TAB_LAST_AUTOVACUUM(tab));
	}

	MemoryContextSwitchTo(old);
	if (report_context)
		report_relscan = scan;
	return scan;
}

int
dbops_report_large_rels(const DbopsLargeRel **rels)
{
	RelScan    *scan = get_relscan();

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
		append_duration(buf, seconds_between(last, now));
		appendStringInfoString(buf, " ago");
	}
}

/* Only tables with at least this many dead tuples are graded. */
#define DEAD_TUPLES_MIN 1000

/*
 * dead_tuples: the highest share of dead tuples (percent) among the tables
 * of the current database that have at least DEAD_TUPLES_MIN of them.
 */
static void
check_dead_tuples(DbopsCheckResult *res)
{
	RelScan    *scan = get_relscan();
	TopN		bycount = {0};
	double		worst = 0;
	int			worst_item = -1;
	int64		total_dead = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!counts_tracked(res))
		return;

	for (int i = 0; i < scan->nrels; i++)
	{
		RelInfo    *ri = &scan->rels[i];
		double		pct;

		if (!ri->have_stats || ri->n_dead <= 0)
			continue;
		total_dead += ri->n_dead;
		topn_add(&bycount, (double) ri->n_dead, i);
		if (ri->n_dead < DEAD_TUPLES_MIN)
			continue;
		pct = 100.0 * ri->n_dead / (double) (ri->n_dead + Max(ri->n_live, 0));
		if (pct > worst)
		{
			worst = pct;
			worst_item = i;
		}
	}

	dbops_check_value(res, rounded(worst, 2), "%");
	if (bycount.n == 0)
	{
		appendStringInfoString(&res->detail, "no dead tuples in this database");
		return;
	}
	if (worst_item >= 0)
	{
		RelInfo    *ri = &scan->rels[worst_item];

		appendStringInfo(&res->detail, "worst: %s %.1f%% dead; ",
						 relation_display_name(ri->relid, ri->relnamespace), worst);
	}
	appendStringInfo(&res->detail, "%lld dead tuples in this database, most in: ",
					 (long long) total_dead);
	for (int t = 0; t < bycount.n; t++)
	{
		RelInfo    *ri = &scan->rels[bycount.item[t]];

		appendStringInfo(&res->detail, "%s%s %lld dead / %lld live, ",
						 t > 0 ? "; " : "",
						 relation_display_name(ri->relid, ri->relnamespace),
						 (long long) ri->n_dead, (long long) ri->n_live);
		append_last_vacuum(&res->detail, ri->last_vacuum, now);
	}
	appendStringInfoString(&res->hint,
						   "VACUUM (VERBOSE) the tables named; if autovacuum cannot keep up, lower their autovacuum_vacuum_scale_factor and look for long transactions or slots holding the xmin horizon.");
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
static void
check_vacuum_age(DbopsCheckResult *res)
{
	RelScan    *scan = get_relscan();
	TopN		top = {0};
	int			due = 0;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz origin = PgStartTime;
	PgStat_StatDBEntry *db = pgstat_fetch_stat_dbentry(MyDatabaseId);

	if (!counts_tracked(res))
		return;

	if (db && db->stat_reset_timestamp != 0)
		origin = db->stat_reset_timestamp;

	for (int i = 0; i < scan->nrels; i++)
	{
		RelInfo    *ri = &scan->rels[i];
		double		trigger;
		TimestampTz last;

		if (!ri->have_stats)
			continue;
		trigger = (ri->av_vac_thresh >= 0 ? ri->av_vac_thresh : autovacuum_vac_thresh) +
			(ri->av_vac_scale >= 0 ? ri->av_vac_scale : autovacuum_vac_scale) *
			Max(ri->reltuples, 0);
		if ((double) ri->n_dead <= trigger)
			continue;
		due++;
		last = ri->last_vacuum != 0 ? ri->last_vacuum : origin;
		topn_add(&top, Max(seconds_between(last, now), 0), i);
	}

	dbops_check_value(res, rounded(top.n > 0 ? top.score[0] / 3600.0 : 0, 3), "h");
	if (due == 0)
	{
		appendStringInfoString(&res->detail, "no table is past its autovacuum threshold");
		return;
	}
	appendStringInfo(&res->detail, "%d table(s) past their autovacuum threshold, longest without vacuum: ", due);
	for (int t = 0; t < top.n; t++)
	{
		RelInfo    *ri = &scan->rels[top.item[t]];

		appendStringInfo(&res->detail, "%s%s (%lld dead, ",
						 t > 0 ? "; " : "",
						 relation_display_name(ri->relid, ri->relnamespace),
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
static void
check_database_size(DbopsCheckResult *res)
{
	RelScan    *scan = get_relscan();

	dbops_check_value(res, rounded((double) scan->total_pages * BLCKSZ / (1024.0 * 1024.0), 2), "MB");
	appendStringInfo(&res->detail, "%s: about ", quote_identifier(get_database_name(MyDatabaseId)));
	append_bytes(&res->detail, (double) scan->total_pages * BLCKSZ);
	appendStringInfoString(&res->detail, " (estimated from pg_class.relpages and the free space and visibility maps that implies; pg_database_size() gives the exact figure)");
	for (int t = 0; t < scan->nlargest; t++)
	{
		RelInfo    *ri = &scan->largest[t];

		appendStringInfo(&res->detail, "%s%s ", t == 0 ? "; largest: " : ", ",
						 relation_display_name(ri->relid, ri->relnamespace));
		append_bytes(&res->detail, (double) ri->relpages * BLCKSZ);
	}
	appendStringInfoString(&res->hint,
						   "Find what grows (dbops.bloat(), pg_total_relation_size()), purge or archive old rows, and plan disk space.");
}

/*
 * sequences: the highest share (percent) of its range a sequence has used,
 * where the range ends at the sequence's own limit or at the limit of the
 * integer column that owns it (serial or identity), whichever comes first.
 * Cycling sequences never run out and are left out.
 *
 * The value of every sequence is read from its page through the buffer
 * manager, under a short-lived AccessShareLock, without building a relcache
 * entry for it; the owning column's type is looked up only for the sequences
 * whose value could rank among the worst if that column were the narrowest
 * integer type.
 */
#define SEQ_PAGE_MAGIC	0x1717	/* as sequence.c stamps its pages */

typedef struct SeqInfo
{
	Oid			relid;
	Oid			relnamespace;
	int64		last_value;
	bool		is_called;
	int64		seqmin;
	int64		seqmax;
	int64		seqincrement;
	Oid			seqtypid;
	double		pct;			/* used, of the range we know so far */
	double		bound_pct;		/* upper bound of pct over column types */
	int64		limit;			/* the limit pct refers to */
	bool		exact;
	Oid			ownrel;
	int32		owncol;
	Oid			owntype;
} SeqInfo;

static int64
type_max(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PG_INT16_MAX;
		case INT4OID:
			return PG_INT32_MAX;
		default:
			return PG_INT64_MAX;
	}
}

static int64
type_min(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return PG_INT16_MIN;
		case INT4OID:
			return PG_INT32_MIN;
		default:
			return PG_INT64_MIN;
	}
}

/* Share of the range [min, max] used by a sequence at last_value. */
static double
seq_used_pct(SeqInfo *s, int64 lo, int64 hi)
{
	double		used;
	double		range;

	if (s->seqincrement > 0)
	{
		if (!s->is_called && s->last_value <= s->seqmin)
			return 0;
		used = (double) s->last_value - (double) s->seqmin;
		range = (double) hi - (double) s->seqmin;
	}
	else
	{
		if (!s->is_called && s->last_value >= s->seqmax)
			return 0;
		used = (double) s->seqmax - (double) s->last_value;
		range = (double) s->seqmax - (double) lo;
	}
	if (range <= 0)
		return 100.0;
	return Min(Max(100.0 * used / range, 0), 100.0);
}

/* Read last_value and is_called of a sequence from its page. */
static bool
read_sequence_page(RelScan *scan, RelInfo *ri, SeqInfo *s)
{
	DbopsRelFile rfile;
	Buffer		buf;
	Page		page;
	ItemId		lp;
	HeapTupleHeader htup;
	Form_pg_sequence_data seq;
	bool		valid;
	Oid			relfilenode = ri->relfilenode;
	Oid			reltablespace = ri->reltablespace;

	LockRelationOid(ri->relid, AccessShareLock);

	/*
	 * Someone may have dropped or rewritten the sequence (ALTER SEQUENCE
	 * RESTART gives it a new relfilenode) since our pg_class scan: look its
	 * storage up again, now that it is locked, if invalidations arrived
	 * since that scan.  A sequence dropped meanwhile is left out.
	 */
	if (SharedInvalidMessageCounter != scan->inval_count)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(ri->relid));

		if (!HeapTupleIsValid(tup) ||
			((Form_pg_class) GETSTRUCT(tup))->relkind != RELKIND_SEQUENCE)
		{
			if (HeapTupleIsValid(tup))
				ReleaseSysCache(tup);
			UnlockRelationOid(ri->relid, AccessShareLock);
			return false;
		}
		relfilenode = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
		reltablespace = ((Form_pg_class) GETSTRUCT(tup))->reltablespace;
		ReleaseSysCache(tup);
	}

	DBOPS_RELFILE_SET(rfile,
					  OidIsValid(reltablespace) ? reltablespace : MyDatabaseTableSpace,
					  MyDatabaseId, relfilenode);

	buf = ReadBufferWithoutRelcache(rfile, MAIN_FORKNUM, 0, RBM_NORMAL, NULL,
									ri->relpersistence == RELPERSISTENCE_PERMANENT);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	valid = PageGetSpecialSize(page) == MAXALIGN(sizeof(uint32)) &&
		*((uint32 *) PageGetSpecialPointer(page)) == SEQ_PAGE_MAGIC &&
		PageGetMaxOffsetNumber(page) >= FirstOffsetNumber;
	if (valid)
	{
		lp = PageGetItemId(page, FirstOffsetNumber);
		htup = (HeapTupleHeader) PageGetItem(page, lp);
		seq = (Form_pg_sequence_data) ((char *) htup + htup->t_hoff);
		s->last_value = seq->last_value;
		s->is_called = seq->is_called;
	}
	UnlockReleaseBuffer(buf);
	UnlockRelationOid(ri->relid, AccessShareLock);

	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("bad magic number in sequence with OID %u", ri->relid),
				 errhint("The sequence's first page is damaged: check the storage, and recreate the sequence (setval() to its last value) or restore it.")));
	return true;
}

/* Above this many lookups, one scan of pg_depend beats an index scan each. */
#define OWNER_SCAN_MIN 256

typedef struct SeqOwner
{
	Oid			seqid;
	Oid			tableid;
	int32		colid;
} SeqOwner;

/*
 * The column owning each sequence (serial: an auto dependency; identity: an
 * internal one), from one heap scan of pg_depend.
 */
static HTAB *
sequence_owners(void)
{
	HASHCTL		ctl;
	HTAB	   *owners;
	Relation	rel;
	TableScanDesc hscan;
	HeapTuple	tup;

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(SeqOwner);
	ctl.hcxt = CurrentMemoryContext;
	owners = hash_create("dbops sequence owners", 1024, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	rel = table_open(DependRelationId, AccessShareLock);
	hscan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);
		SeqOwner   *o;

		if (d->classid != RelationRelationId || d->refclassid != RelationRelationId ||
			d->objsubid != 0 || d->refobjsubid <= 0 ||
			(d->deptype != DEPENDENCY_AUTO && d->deptype != DEPENDENCY_INTERNAL))
			continue;
		o = hash_search(owners, &d->objid, HASH_ENTER, NULL);
		o->tableid = d->refobjid;
		o->colid = d->refobjsubid;
	}
	table_endscan(hscan);
	table_close(rel, AccessShareLock);
	return owners;
}

/* order of pg_sequence rows by OID; the key may be a bare Oid */
static int
seqdef_cmp(const void *a, const void *b)
{
	Oid			oa = *(const Oid *) a;
	Oid			ob = *(const Oid *) b;

	if (oa != ob)
		return oa < ob ? -1 : 1;
	return 0;
}

static void
check_sequences(DbopsCheckResult *res)
{
	RelScan    *scan;
	Relation	seqrel;
	TableScanDesc hscan;
	HeapTuple	tup;
	Form_pg_sequence defs = NULL;
	int			ndefs = 0;
	int			maxdefs = 0;
	SeqInfo    *seqs;
	int			nseqs = 0;
	int			nhidden = 0;
	int			ncycle = 0;
	bool		privileged = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	TopN		top = {0};
	double		lowest;
	int			ncand = 0;
	int			nunresolved = 0;
	HTAB	   *owners = NULL;

	scan = get_relscan();

	/*
	 * The definitions of all sequences, from one scan of pg_sequence, sorted
	 * by OID for the lookups below.
	 */
	seqrel = table_open(SequenceRelationId, AccessShareLock);
	hscan = table_beginscan_catalog(seqrel, 0, NULL);
	while ((tup = heap_getnext(hscan, ForwardScanDirection)) != NULL)
	{
		if (ndefs == maxdefs)
		{
			maxdefs = Max(maxdefs * 2, 1024);
			defs = defs ? repalloc_huge(defs, sizeof(FormData_pg_sequence) * maxdefs) :
				palloc(sizeof(FormData_pg_sequence) * maxdefs);
		}
		defs[ndefs++] = *(Form_pg_sequence) GETSTRUCT(tup);
	}
	table_endscan(hscan);
	table_close(seqrel, AccessShareLock);
	if (ndefs > 1)
		qsort(defs, ndefs, sizeof(FormData_pg_sequence), seqdef_cmp);

	seqs = palloc(sizeof(SeqInfo) * Max(ndefs, 1));
	for (int i = 0; i < scan->nrels; i++)
	{
		RelInfo    *ri = &scan->rels[i];
		Form_pg_sequence d;
		SeqInfo    *s;

		if (ri->relkind != RELKIND_SEQUENCE)
			continue;
		if ((i & 255) == 0)
			CHECK_FOR_INTERRUPTS();
		d = ndefs > 0 ? bsearch(&ri->relid, defs, ndefs, sizeof(FormData_pg_sequence), seqdef_cmp) : NULL;
		if (d == NULL)
			continue;			/* created after our pg_sequence scan */
		if (d->seqcycle)
		{
			ncycle++;
			continue;
		}
		/* unlogged sequences have no data on a standby */
		if (ri->relpersistence == RELPERSISTENCE_UNLOGGED && RecoveryInProgress())
			continue;
		if (!privileged &&
			pg_class_aclcheck(ri->relid, GetUserId(), ACL_SELECT | ACL_USAGE) != ACLCHECK_OK)
		{
			nhidden++;
			continue;
		}
		s = &seqs[nseqs];
		s->relid = ri->relid;
		s->relnamespace = ri->relnamespace;
		s->seqmin = d->seqmin;
		s->seqmax = d->seqmax;
		s->seqincrement = d->seqincrement;
		s->seqtypid = d->seqtypid;
		s->ownrel = InvalidOid;
		s->owncol = 0;
		s->owntype = InvalidOid;
		if (!read_sequence_page(scan, ri, s))
			continue;
		s->pct = seq_used_pct(s, s->seqmin, s->seqmax);
		s->limit = s->seqincrement > 0 ? s->seqmax : s->seqmin;
		/* the narrowest integer column could own a sequence wider than int2 */
		if ((s->seqincrement > 0 && s->seqmax > PG_INT16_MAX) ||
			(s->seqincrement < 0 && s->seqmin < PG_INT16_MIN))
		{
			s->bound_pct = seq_used_pct(s, Max(s->seqmin, PG_INT16_MIN), Min(s->seqmax, PG_INT16_MAX));
			s->exact = false;
		}
		else
		{
			s->bound_pct = s->pct;
			s->exact = true;
		}
		nseqs++;
	}

	if (nhidden > 0)
	{
		dbops_check_skip(res, "%d of %d sequences cannot be read by this role (reading them all needs the privileges of pg_read_all_stats, or SELECT on each)",
						 nhidden, nhidden + nseqs);
		appendStringInfoString(&res->hint, "Grant the role pg_monitor (or pg_read_all_stats) to run this check.");
		return;
	}

	/*
	 * The column that owns a sequence matters only when its type could end
	 * the range before the sequence's own limit, and only for the sequences
	 * that could then reach the lowest threshold.  For all the others, even a
	 * smallint column would leave them below it: that proves their status
	 * without looking the column up (their value is then the share of their
	 * own range, a lower bound).
	 */
	lowest = res->warning;
	if (isnan(lowest) || (!isnan(res->critical) && res->critical < lowest))
		lowest = res->critical;
	for (int i = 0; i < nseqs; i++)
	{
		SeqInfo    *s = &seqs[i];

		if (s->exact)
			continue;
		if (!isnan(lowest) && s->bound_pct >= lowest)
			ncand++;
		else
			nunresolved++;
	}
	if (ncand > OWNER_SCAN_MIN)
		owners = sequence_owners();
	for (int i = 0; i < nseqs; i++)
	{
		SeqInfo    *s = &seqs[i];
		Oid			tableid = InvalidOid;
		int32		colid = 0;
		bool		owned;

		if (s->exact || isnan(lowest) || s->bound_pct < lowest)
			continue;
		CHECK_FOR_INTERRUPTS();
		if (owners)
		{
			SeqOwner   *o = hash_search(owners, &s->relid, HASH_FIND, NULL);

			owned = (o != NULL);
			if (o)
			{
				tableid = o->tableid;
				colid = o->colid;
			}
		}
		else
			owned = sequenceIsOwned(s->relid, DEPENDENCY_AUTO, &tableid, &colid) ||
				sequenceIsOwned(s->relid, DEPENDENCY_INTERNAL, &tableid, &colid);
		if (owned)
		{
			Oid			coltype = get_atttype(tableid, colid);

			s->ownrel = tableid;
			s->owncol = colid;
			s->owntype = coltype;
			if (s->seqincrement > 0 && type_max(coltype) < s->seqmax)
			{
				s->pct = seq_used_pct(s, s->seqmin, type_max(coltype));
				s->limit = type_max(coltype);
			}
			else if (s->seqincrement < 0 && type_min(coltype) > s->seqmin)
			{
				s->pct = seq_used_pct(s, type_min(coltype), s->seqmax);
				s->limit = type_min(coltype);
			}
		}
		s->exact = true;
	}
	for (int i = 0; i < nseqs; i++)
		topn_add(&top, seqs[i].pct, i);

	dbops_check_value(res, rounded(top.n > 0 ? top.score[0] : 0, 4), "%");
	if (nseqs == 0)
	{
		appendStringInfo(&res->detail, "no sequence in this database%s",
						 ncycle > 0 ? " that does not cycle" : "");
		return;
	}
	appendStringInfo(&res->detail, "%d sequence(s)", nseqs);
	if (ncycle > 0)
		appendStringInfo(&res->detail, " (and %d cycling, not counted)", ncycle);
	appendStringInfoString(&res->detail, ", most used: ");
	for (int t = 0; t < top.n; t++)
	{
		SeqInfo    *s = &seqs[top.item[t]];

		appendStringInfo(&res->detail, "%s%s %.2f%% (%lld of %lld",
						 t > 0 ? "; " : "",
						 relation_display_name(s->relid, s->relnamespace),
						 s->pct, (long long) s->last_value, (long long) s->limit);
		if (OidIsValid(s->owntype) && s->limit != s->seqmax && s->limit != s->seqmin)
		{
			/* the table (or its column) may have been dropped meanwhile */
			char	   *colname = get_attname(s->ownrel, s->owncol, true);

			appendStringInfo(&res->detail, ", limited by column %s.%s of type %s",
							 relation_display_name(s->ownrel, get_rel_namespace(s->ownrel)),
							 colname ? quote_identifier(colname) : "(dropped column)",
							 format_type_be(s->owntype));
		}
		appendStringInfoChar(&res->detail, ')');
	}
	if (nunresolved > 0)
		appendStringInfo(&res->detail, "; %d sequence(s) not checked against the type of their column: even a smallint column would leave them below %g%%",
						 nunresolved, lowest);
	appendStringInfoString(&res->hint,
						   "Before the sequence runs out, move the column (and the sequence: ALTER SEQUENCE ... AS bigint) to bigint; for a sequence limited by its own MAXVALUE, raise it.");
}

/* ----------------------------------------------------------------------
 * Cluster-wide statistics
 * ----------------------------------------------------------------------
 */

static SPITupleTable *
database_stats(void)
{
	static SPIPlanPtr plan = NULL;

	return run_kept_query(&plan,
						  "SELECT datname, blks_hit::pg_catalog.float8, blks_read::pg_catalog.float8, "
						  "deadlocks::pg_catalog.float8, temp_files::pg_catalog.float8, "
						  "temp_bytes::pg_catalog.float8, stats_reset "
						  "FROM pg_catalog.pg_stat_database WHERE datname IS NOT NULL ORDER BY datname");
}

/* cache_hit_ratio: share of block reads served by shared buffers, all databases */
static void
check_cache_hit_ratio(DbopsCheckResult *res)
{
	SPITupleTable *tt = database_stats();
	uint64		n = SPI_processed;
	double		hit = 0;
	double		read = 0;
	bool		isnull;
	double		worst = 101;
	int			worst_row = -1;

	if (!counts_tracked(res))
		return;

	for (uint64 r = 0; r < n; r++)
	{
		double		h = col_float(tt, r, 2, &isnull);
		double		rd = col_float(tt, r, 3, &isnull);

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
	dbops_check_value(res, rounded(100.0 * hit / (hit + read), 2), "%");
	appendStringInfo(&res->detail, "%.0f of %.0f block reads served from shared buffers (shared_buffers = %s)",
					 hit, hit + read, GetConfigOptionByName("shared_buffers", NULL, false));
	if (worst_row >= 0)
		appendStringInfo(&res->detail, "; lowest: %s %.2f%%",
						 quote_identifier(col_text(tt, worst_row, 1)), worst);
	appendStringInfoString(&res->hint,
						   "The working set does not fit in memory: raise shared_buffers (and the machine's RAM), or find the queries reading the most blocks (pg_stat_statements) and index them.");
}

/* deadlocks: deadlocks detected since the statistics were reset, all databases */
static void
check_deadlocks(DbopsCheckResult *res)
{
	SPITupleTable *tt = database_stats();
	uint64		n = SPI_processed;
	double		total = 0;
	bool		isnull;
	TopN		top = {0};

	if (!counts_tracked(res))
		return;

	for (uint64 r = 0; r < n; r++)
	{
		double		d = col_float(tt, r, 4, &isnull);

		total += d;
		if (d > 0)
			topn_add(&top, d, r);
	}
	dbops_check_value(res, total, "deadlocks");
	appendStringInfo(&res->detail, "%.0f deadlock(s) since the statistics were reset", total);
	for (int t = 0; t < top.n; t++)
	{
		char	   *reset = SPI_getvalue(tt->vals[top.item[t]], tt->tupdesc, 7);

		appendStringInfo(&res->detail, "%s%s: %.0f", t == 0 ? "; " : ", ",
						 quote_identifier(col_text(tt, top.item[t], 1)), top.score[t]);
		if (reset)
			appendStringInfo(&res->detail, " since %s", reset);
	}
	appendStringInfoString(&res->hint,
						   "The server log has each deadlock's queries (log_lock_waits helps): make transactions take locks in the same order. The count only restarts with pg_stat_reset() in that database, which also zeroes the dead-tuple counts autovacuum works from: run ANALYZE there afterwards, or raise the thresholds instead.");
}

/* temp_files: temporary file bytes written since the statistics were reset, in MB */
static void
check_temp_files(DbopsCheckResult *res)
{
	SPITupleTable *tt = database_stats();
	uint64		n = SPI_processed;
	double		files = 0;
	double		bytes = 0;
	bool		isnull;
	TopN		top = {0};

	if (!counts_tracked(res))
		return;

	for (uint64 r = 0; r < n; r++)
	{
		double		b = col_float(tt, r, 6, &isnull);

		files += col_float(tt, r, 5, &isnull);
		bytes += b;
		if (b > 0)
			topn_add(&top, b, r);
	}
	dbops_check_value(res, rounded(bytes / (1024.0 * 1024.0), 2), "MB");
	appendStringInfo(&res->detail, "%.0f temporary file(s), ", files);
	append_bytes(&res->detail, bytes);
	appendStringInfo(&res->detail, " since the statistics were reset (work_mem = %s)",
					 GetConfigOptionByName("work_mem", NULL, false));
	for (int t = 0; t < top.n; t++)
	{
		appendStringInfo(&res->detail, "%s%s: ", t == 0 ? "; " : ", ",
						 quote_identifier(col_text(tt, top.item[t], 1)));
		append_bytes(&res->detail, top.score[t]);
	}
	appendStringInfoString(&res->hint,
						   "Sorts and hashes spill to disk: find them with log_temp_files and pg_stat_statements, then add indexes or raise work_mem for those queries.");
}

/* Fewer checkpoints than this (a fresh cluster's first ones) are not graded. */
#define CHECKPOINTS_MIN 10

/* checkpoints: share (percent) of checkpoints that were requested rather than timed */
static void
check_checkpoints(DbopsCheckResult *res)
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
	dbops_check_value(res, rounded(100.0 * req / (timed + req), 2), "%");
	appendStringInfo(&res->detail, "%.0f requested, %.0f timed (max_wal_size = %s, checkpoint_timeout = %s)",
					 req, timed, GetConfigOptionByName("max_wal_size", NULL, false),
					 GetConfigOptionByName("checkpoint_timeout", NULL, false));
	appendStringInfoString(&res->hint,
						   "Checkpoints forced by WAL volume write more and cause I/O spikes: raise max_wal_size until most checkpoints are timed.");
}
