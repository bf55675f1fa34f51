/*-------------------------------------------------------------------------
 *
 * health.c
 *	  dbops.health(): the registry of health checks and the engine that runs
 *	  them, each in its own subtransaction under a short timeout, and grades
 *	  their values against dbops.health_thresholds.
 *
 *	  The checks live in the files of their families (health_sessions.c,
 *	  health_wraparound.c, health_horizon.c, health_replication.c,
 *	  health_relations.c, health_tables.c, health_sequences.c,
 *	  health_database.c) and of the other capabilities; the checks written
 *	  in SQL (dbops.add_check()) are health_custom.c's;
 *	  they share the toolkit of healthkit.c and the state of the report they
 *	  run in (DbopsReport, handed to each).  health_history.c keeps the
 *	  report's history and its Prometheus text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "dbops.h"
#include "healthkit.h"

/* The registry: every check dbops knows, in report order for equal status. */
static const DbopsCheck dbops_checks[] = {
	{"connections", dbops_check_connections, DBOPS_HIGHER_IS_WORSE},
	{"lock_waits", dbops_check_lock_waits, DBOPS_HIGHER_IS_WORSE},
	{"long_query", dbops_check_long_query, DBOPS_HIGHER_IS_WORSE},
	{"idle_in_transaction", dbops_check_idle_in_transaction, DBOPS_HIGHER_IS_WORSE},
	{"long_transaction", dbops_check_long_transaction, DBOPS_HIGHER_IS_WORSE},
	{"xid_wraparound", dbops_check_xid_wraparound, DBOPS_HIGHER_IS_WORSE},
	{"mxid_wraparound", dbops_check_mxid_wraparound, DBOPS_HIGHER_IS_WORSE},
	{"prepared_xacts", dbops_check_prepared_xacts, DBOPS_HIGHER_IS_WORSE},
	{"xmin_horizon", dbops_check_xmin_horizon, DBOPS_HIGHER_IS_WORSE},
	{"replication_lag", dbops_check_replication_lag, DBOPS_HIGHER_IS_WORSE},
	{"replication_slots", dbops_check_replication_slots, DBOPS_HIGHER_IS_WORSE},
	{"archiver", dbops_check_archiver, DBOPS_HIGHER_IS_WORSE},
	{"invalid_indexes", dbops_check_invalid_indexes, DBOPS_HIGHER_IS_WORSE},
	{"unused_indexes", dbops_check_unused_indexes, DBOPS_HIGHER_IS_WORSE},
	{"duplicate_indexes", dbops_check_duplicate_indexes, DBOPS_HIGHER_IS_WORSE},
	{"fk_without_index", dbops_check_fk_without_index, DBOPS_HIGHER_IS_WORSE},
	{"seq_scan_tables", dbops_check_seq_scan_tables, DBOPS_HIGHER_IS_WORSE},
	{"dead_tuples", dbops_check_dead_tuples, DBOPS_HIGHER_IS_WORSE},
	{"vacuum_age", dbops_check_vacuum_age, DBOPS_HIGHER_IS_WORSE},
	{"stale_statistics", dbops_check_stale_statistics, DBOPS_HIGHER_IS_WORSE},
	{"table_freeze_age", dbops_check_table_freeze_age, DBOPS_HIGHER_IS_WORSE},
	{"sequences", dbops_check_sequences, DBOPS_HIGHER_IS_WORSE},
	{"cache_hit_ratio", dbops_check_cache_hit_ratio, DBOPS_LOWER_IS_WORSE},
	{"deadlocks", dbops_check_deadlocks, DBOPS_HIGHER_IS_WORSE},
	{"temp_files", dbops_check_temp_files, DBOPS_HIGHER_IS_WORSE},
	{"checkpoints", dbops_check_checkpoints, DBOPS_HIGHER_IS_WORSE},
	{"database_size", dbops_check_database_size, DBOPS_HIGHER_IS_WORSE},
	{"disk_space", dbops_check_disk_space, DBOPS_LOWER_IS_WORSE},
	{"slow_queries", dbops_check_slow_queries, DBOPS_HIGHER_IS_WORSE},
	{"bloat", dbops_check_bloat, DBOPS_HIGHER_IS_WORSE},
	{"reaper", dbops_check_reaper, DBOPS_HIGHER_IS_WORSE},
	{"migrations", dbops_check_migrations, DBOPS_HIGHER_IS_WORSE},
	{"retention", dbops_check_retention, DBOPS_HIGHER_IS_WORSE},
	{"cron_failures", dbops_check_cron_failures, DBOPS_HIGHER_IS_WORSE},
};

#define NUM_DBOPS_CHECKS lengthof(dbops_checks)

/* the columns of dbops.health_checks() (dbops.health()'s: healthkit.h) */
#define HEALTH_CHECKS_COLS	2

static int	dbops_health_check_timeout = 2000;
static bool dbops_health_timing = false;

static TimeoutId check_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t check_timed_out = false;

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
	dbops_sequences_init();
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

/* Set a check's status and its detail, formatted (skip and unknown). */
static void set_status_detail(DbopsCheckResult *res, DbopsStatus status,
							  const char *fmt, va_list args) pg_attribute_printf(3, 0);

static void
set_status_detail(DbopsCheckResult *res, DbopsStatus status, const char *fmt, va_list args)
{
	res->status = status;
	resetStringInfo(&res->detail);
	for (;;)
	{
		va_list		copy;
		int			needed;

		va_copy(copy, args);
		needed = appendStringInfoVA(&res->detail, fmt, copy);
		va_end(copy);
		if (needed == 0)
			break;
		enlargeStringInfo(&res->detail, needed);
	}
}

void
dbops_check_skip(DbopsCheckResult *res, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	set_status_detail(res, DBOPS_SKIPPED, fmt, args);
	va_end(args);
}

void
dbops_check_unknown(DbopsCheckResult *res, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	set_status_detail(res, DBOPS_UNKNOWN, fmt, args);
	va_end(args);
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
run_check(const DbopsCheck *check, DbopsReport *report, DbopsCheckResult *res)
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

		check->func(report, res);

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
		else if (edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE &&
				 check->func != dbops_check_custom)
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
			else if (edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
				appendStringInfoString(&res->hint, "The check runs as the role that added it (dbops.custom_checks.owner): grant that role what its query reads.");
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
 * number in *nrows.  The results and everything the checks of the report
 * share live in the caller's memory context.
 */
static DbopsCheckResult *
run_checks(DbopsReport *report, int *nrows)
{
	MemoryContext outer = CurrentMemoryContext;
	CheckRow   *rows;
	DbopsCheckResult *results;
	DbopsCheck *checks;
	DbopsCustomCheck *customs;
	const DbopsCustomCheck **custom_of;
	int			ncustom;
	int			nchecks = NUM_DBOPS_CHECKS;
	bool	   *enabled;
	int			n = 0;
	int			ret;
	uint64		i;

	SPI_connect();

	/* the registry, then the checks added in SQL */
	ncustom = dbops_custom_checks_load(outer, &customs);
	checks = MemoryContextAlloc(outer, sizeof(DbopsCheck) * (NUM_DBOPS_CHECKS + ncustom));
	custom_of = MemoryContextAllocZero(outer, sizeof(DbopsCustomCheck *) * (NUM_DBOPS_CHECKS + ncustom));
	memcpy(checks, dbops_checks, sizeof(dbops_checks));
	for (int k = 0; k < ncustom; k++)
	{
		checks[nchecks].name = customs[k].name;
		checks[nchecks].func = dbops_check_custom;
		checks[nchecks].direction = customs[k].direction;
		custom_of[nchecks] = &customs[k];
		nchecks++;
	}
	rows = MemoryContextAllocZero(outer, sizeof(CheckRow) * nchecks);
	enabled = MemoryContextAlloc(outer, sizeof(bool) * nchecks);

	ret = SPI_execute("SELECT check_name, warning, critical, enabled FROM dbops.health_thresholds",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dbops.health_thresholds: %s", SPI_result_code_string(ret));

	/* thresholds, in registry order; a check without a row runs ungraded */
	for (int c = 0; c < nchecks; c++)
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

			if (strcmp(name, checks[c].name) != 0)
				continue;
			rows[c].res.warning = nullable_float(tup, desc, 2);
			rows[c].res.critical = nullable_float(tup, desc, 3);
			enabled[c] = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) && !isnull;
			break;
		}
	}

	for (int c = 0; c < nchecks; c++)
	{
		const DbopsCheck *check = &checks[c];
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

		report->custom = custom_of[c];
		INSTR_TIME_SET_CURRENT(start);
		run_check(check, report, &row->res);
		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		report->custom = NULL;

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

	qsort(rows, n, sizeof(CheckRow), checkrow_cmp);
	results = palloc(sizeof(DbopsCheckResult) * Max(n, 1));
	for (int r = 0; r < n; r++)
		results[r] = rows[r].res;
	pfree(rows);
	*nrows = n;
	return results;
}

/*
 * A health report: run_checks() with a report of its own, and the
 * statement's deadline noted for telling cancels apart (see
 * report_cancel_watch_begin()).  for_history: the rows are kept in
 * dbops.health_history, which pg_monitor reads (no job messages).
 */
DbopsCheckResult *
dbops_health_run(bool for_history, int *nresults)
{
	DbopsCheckResult *volatile results = NULL;
	DbopsReport report;

	if (check_timeout_id == MAX_TIMEOUTS)
		check_timeout_id = RegisterTimeout(USER_TIMEOUT, check_timeout_handler);

	report.context = CurrentMemoryContext;
	report.for_history = for_history;
	report.relscan = NULL;
	report.custom = NULL;

	report_cancel_watch_begin();
	PG_TRY();
	{
		results = run_checks(&report, nresults);
	}
	PG_FINALLY();
	{
		report_cancel_watch_end();
	}
	PG_END_TRY();
	return results;
}

/* One result as a row of dbops.health(): DBOPS_HEALTH_COLS columns. */
void
dbops_health_values(const DbopsCheckResult *res, Datum *values, bool *nulls)
{
	memset(nulls, 0, sizeof(bool) * DBOPS_HEALTH_COLS);
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
}

PG_FUNCTION_INFO_V1(dbops_health);

Datum
dbops_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DbopsCheckResult *results;
	int			nresults;

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, rsinfo->setDesc, DBOPS_HEALTH_COLS);
	results = dbops_health_run(false, &nresults);

	for (int r = 0; r < nresults; r++)
	{
		Datum		values[DBOPS_HEALTH_COLS];
		bool		nulls[DBOPS_HEALTH_COLS];

		dbops_health_values(&results[r], values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Is name one of the checks compiled in? */
bool
dbops_builtin_check_exists(const char *name)
{
	for (int c = 0; c < NUM_DBOPS_CHECKS; c++)
		if (strcmp(dbops_checks[c].name, name) == 0)
			return true;
	return false;
}

static void
health_checks_row(ReturnSetInfo *rsinfo, const char *name, DbopsDirection direction)
{
	Datum		values[HEALTH_CHECKS_COLS];
	bool		nulls[HEALTH_CHECKS_COLS] = {0};

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(direction == DBOPS_HIGHER_IS_WORSE ?
									"higher_is_worse" : "lower_is_worse");
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * dbops.health_checks(): the registry and the checks added in SQL, for the
 * thresholds trigger and for users who want to know which checks exist.
 */
PG_FUNCTION_INFO_V1(dbops_health_checks);

Datum
dbops_health_checks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DbopsCustomCheck *customs;
	int			ncustom;

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, rsinfo->setDesc, HEALTH_CHECKS_COLS);
	for (int c = 0; c < NUM_DBOPS_CHECKS; c++)
		health_checks_row(rsinfo, dbops_checks[c].name, dbops_checks[c].direction);

	SPI_connect();
	ncustom = dbops_custom_checks_load(CurrentMemoryContext, &customs);
	for (int k = 0; k < ncustom; k++)
		health_checks_row(rsinfo, customs[k].name, customs[k].direction);
	SPI_finish();
	return (Datum) 0;
}
