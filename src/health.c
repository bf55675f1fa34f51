/*-------------------------------------------------------------------------
 *
 * health.c
 *	  dbops.health(): the registry of health checks and the engine that runs
 *	  them, each in its own subtransaction under a short timeout, and grades
 *	  their values against dbops.health_thresholds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "commands/dbcommands.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "dbops.h"

/* The registry: every check dbops knows, in report order for equal status. */
static const DbopsCheck dbops_checks[] = {
	{"connections", dbops_check_connections, DBOPS_HIGHER_IS_WORSE},
	{"bloat", dbops_check_bloat, DBOPS_HIGHER_IS_WORSE},
	{"reaper", dbops_check_reaper, DBOPS_HIGHER_IS_WORSE},
	{"migrations", dbops_check_migrations, DBOPS_HIGHER_IS_WORSE},
};

#define NUM_DBOPS_CHECKS lengthof(dbops_checks)

int			dbops_health_check_timeout = 2000;

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

/* Grade a value against its thresholds. */
static DbopsStatus
grade(const DbopsCheck *check, const DbopsCheckResult *res)
{
	double		v = res->value;

	if (!res->has_value)
		return DBOPS_OK;
	if (check->direction == DBOPS_HIGHER_IS_WORSE)
	{
		if (!isnan(res->critical) && v >= res->critical)
			return DBOPS_CRITICAL;
		if (!isnan(res->warning) && v >= res->warning)
			return DBOPS_WARNING;
	}
	else
	{
		if (!isnan(res->critical) && v <= res->critical)
			return DBOPS_CRITICAL;
		if (!isnan(res->warning) && v <= res->warning)
			return DBOPS_WARNING;
	}
	return DBOPS_OK;
}

/*
 * Run one check in a subtransaction, so that an error or a timeout in it is
 * reported as that check's status and cannot spoil the others.
 */
static void
run_check(const DbopsCheck *check, DbopsCheckResult *res)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char		timeout_str[32];

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	check_timed_out = false;
	PG_TRY();
	{
		if (dbops_health_check_timeout > 0)
		{
			snprintf(timeout_str, sizeof(timeout_str), "%d", dbops_health_check_timeout);
			(void) set_config_option("lock_timeout", timeout_str,
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
			enable_timeout_after(check_timeout_id, dbops_health_check_timeout);
		}

		check->func(res);

		if (dbops_health_check_timeout > 0)
			disable_timeout(check_timeout_id, false);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (dbops_health_check_timeout > 0)
			disable_timeout(check_timeout_id, false);

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		/* start over: whatever the check had filled in is not to be trusted */
		res->has_value = false;
		res->unit = NULL;
		resetStringInfo(&res->hint);

		if (check_timed_out)
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
			dbops_check_unknown(res, "check failed: %s", edata->message);
			if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
				appendStringInfoString(&res->hint, "The check could not get a lock in time; run it again.");
		}
		FreeErrorData(edata);
		check_timed_out = false;
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
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
}

/*
 * Run every enabled check; returns the results sorted worst first, and their
 * number in *nrows.
 */
static CheckRow *
dbops_health_collect(int *nrows)
{
	MemoryContext outer = CurrentMemoryContext;
	CheckRow   *rows;
	int			n = 0;
	int			ret;
	uint64		i;

	if (check_timeout_id == MAX_TIMEOUTS)
		check_timeout_id = RegisterTimeout(USER_TIMEOUT, check_timeout_handler);

	rows = palloc0(sizeof(CheckRow) * NUM_DBOPS_CHECKS);

	SPI_connect();
	ret = SPI_execute("SELECT check_name, warning, critical, enabled FROM dbops.health_thresholds",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dbops.health_thresholds: %s", SPI_result_code_string(ret));

	for (int c = 0; c < NUM_DBOPS_CHECKS; c++)
	{
		const DbopsCheck *check = &dbops_checks[c];
		CheckRow   *row = &rows[n];
		bool		enabled = true;
		MemoryContext spicxt;

		CHECK_FOR_INTERRUPTS();

		row->order = c;
		row->res.name = check->name;
		row->res.warning = NAN;
		row->res.critical = NAN;

		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *name = SPI_getvalue(tup, desc, 1);
			bool		isnull;

			if (strcmp(name, check->name) != 0)
				continue;
			row->res.warning = nullable_float(tup, desc, 2);
			row->res.critical = nullable_float(tup, desc, 3);
			enabled = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)) && !isnull;
			break;
		}
		if (!enabled)
			continue;

		spicxt = MemoryContextSwitchTo(outer);
		initStringInfo(&row->res.detail);
		initStringInfo(&row->res.hint);
		MemoryContextSwitchTo(spicxt);

		run_check(check, &row->res);
		if (row->res.status == DBOPS_OK)
			row->res.status = grade(check, &row->res);
		n++;
	}
	SPI_finish();

	qsort(rows, n, sizeof(CheckRow), checkrow_cmp);
	*nrows = n;
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
		if (res->has_value)
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
 * connections: client backends in use as a percentage of the slots open to
 * ordinary roles (max_connections less the reserved ones).
 */
void
dbops_check_connections(DbopsCheckResult *res)
{
	int			nbackends = pgstat_fetch_stat_numbackends();
	int			usable = MaxConnections - ReservedBackends;
	int			used = 0;
	Oid			topdb[3] = {InvalidOid, InvalidOid, InvalidOid};
	int			topcnt[3] = {0, 0, 0};
	Oid		   *dbs = palloc(sizeof(Oid) * Max(nbackends, 1));
	int			ndbs = 0;
	int		   *cnts = palloc0(sizeof(int) * Max(nbackends, 1));

	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;
		int			d;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_backendType != B_BACKEND)
			continue;
		used++;
		for (d = 0; d < ndbs; d++)
			if (dbs[d] == be->st_databaseid)
				break;
		if (d == ndbs)
			dbs[ndbs++] = be->st_databaseid;
		cnts[d]++;
	}

	for (int d = 0; d < ndbs; d++)
	{
		for (int t = 0; t < 3; t++)
		{
			if (cnts[d] > topcnt[t])
			{
				for (int s = 2; s > t; s--)
				{
					topcnt[s] = topcnt[s - 1];
					topdb[s] = topdb[s - 1];
				}
				topcnt[t] = cnts[d];
				topdb[t] = dbs[d];
				break;
			}
		}
	}

	dbops_check_value(res, usable > 0 ? 100.0 * used / usable : 100.0, "%");
	appendStringInfo(&res->detail, "%d of %d connections in use (max_connections %d, %d reserved)",
					 used, usable, MaxConnections, ReservedBackends);
	for (int t = 0; t < 3 && topcnt[t] > 0; t++)
	{
		char	   *dbname = OidIsValid(topdb[t]) ? get_database_name(topdb[t]) : NULL;

		appendStringInfo(&res->detail, "%s%s: %d", t == 0 ? "; by database: " : ", ",
						 dbname ? dbname : "(none)", topcnt[t]);
	}
	appendStringInfoString(&res->hint,
						   "Put a connection pooler (PgBouncer) in front, find idle sessions with dbops.reap_idle(), or raise max_connections.");
}
