/*-------------------------------------------------------------------------
 *
 * health_history.c
 *	  What is kept and exported of dbops.health(): the rows of the report
 *	  that dbops.health_snapshot() records in dbops.health_history (no
 *	  messages of other roles' jobs: pg_monitor reads the history), and the
 *	  report in the Prometheus text format (dbops.health_metrics()).  The
 *	  history's tables and dbops.health_trend() are SQL (health.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/tuplestore.h"

#include "dbops.h"
#include "healthkit.h"

/* the columns of dbops._health_snapshot_rows() */
#define SNAPSHOT_COLS 5

PG_FUNCTION_INFO_V1(dbops_health_snapshot_rows);

/*
 * dbops._health_snapshot_rows(): the rows of dbops.health() that
 * dbops.health_snapshot() keeps (check_name, status, value, unit, detail),
 * from a report that shows no pg_cron job message.
 */
Datum
dbops_health_snapshot_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DbopsCheckResult *results;
	int			nresults;

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, rsinfo->setDesc, SNAPSHOT_COLS);
	results = dbops_health_run(true, &nresults);
	for (int r = 0; r < nresults; r++)
	{
		Datum		row[DBOPS_HEALTH_COLS];
		bool		rownulls[DBOPS_HEALTH_COLS];
		Datum		values[SNAPSHOT_COLS];
		bool		nulls[SNAPSHOT_COLS];
		static const int cols[SNAPSHOT_COLS] = {0, 1, 2, 5, 6};

		dbops_health_values(&results[r], row, rownulls);
		for (int c = 0; c < SNAPSHOT_COLS; c++)
		{
			values[c] = row[cols[c]];
			nulls[c] = rownulls[cols[c]];
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Append a label value, escaped for the Prometheus text format. */
static void
append_label_value(StringInfo buf, const char *s, int maxbytes)
{
	int			len = strlen(s);

	if (maxbytes > 0 && len > maxbytes)
		len = pg_mbcliplen(s, len, maxbytes);
	for (int i = 0; i < len; i++)
	{
		switch (s[i])
		{
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			default:
				appendStringInfoChar(buf, s[i]);
		}
	}
}

/* Append a sample value: Go's float syntax, +Inf/-Inf/NaN spelled its way. */
static void
append_sample_value(StringInfo buf, double v)
{
	if (isnan(v))
		appendStringInfoString(buf, "NaN");
	else if (isinf(v))
		appendStringInfoString(buf, v > 0 ? "+Inf" : "-Inf");
	else
		appendStringInfoString(buf, float8out_internal(v));
}

typedef struct MetricRow
{
	char	   *check;			/* escaped label values */
	char	   *status;
	char	   *unit;
	char	   *detail;
	bool		has_value;
	double		value;
	bool		has_warning;
	double		warning;
	bool		has_critical;
	double		critical;
} MetricRow;

static const char *const metric_statuses[] = {
	"ok", "skipped", "unknown", "warning", "critical"
};

/* A numeric column of a report row: a value beyond float8 is +Inf or -Inf. */
static double
metric_number(Datum *values, bool *nulls, int col, bool *has)
{
	*has = !nulls[col];
	return nulls[col] ? 0 :
		DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, values[col]));
}

/* A text column of a report row, escaped as a label value. */
static char *
metric_label(Datum *values, bool *nulls, int col, int maxbytes)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (!nulls[col])
		append_label_value(&buf, TextDatumGetCString(values[col]), maxbytes);
	return buf.data;
}

PG_FUNCTION_INFO_V1(dbops_health_metrics);

/*
 * dbops.health_metrics(): dbops.health() in the Prometheus text exposition
 * format 0.0.4.  Families are written whole, each after its HELP and TYPE
 * lines; the detail goes out (cut to 200 bytes) only for checks that are not
 * ok, so that the series stay bounded.
 */
Datum
dbops_health_metrics(PG_FUNCTION_ARGS)
{
	DbopsCheckResult *results;
	MetricRow  *rows;
	int			nrows;
	int			worst = 0;
	StringInfoData db;
	StringInfoData out;

	initStringInfo(&db);
	append_label_value(&db, get_database_name(MyDatabaseId), 0);

	results = dbops_health_run(false, &nrows);
	rows = palloc0(sizeof(MetricRow) * Max(nrows, 1));
	for (int i = 0; i < nrows; i++)
	{
		Datum		values[DBOPS_HEALTH_COLS];
		bool		nulls[DBOPS_HEALTH_COLS];
		MetricRow  *r = &rows[i];

		/* the row of dbops.health(), figures as numeric as it returns them */
		dbops_health_values(&results[i], values, nulls);
		r->check = metric_label(values, nulls, 0, 0);
		r->status = metric_label(values, nulls, 1, 0);
		r->value = metric_number(values, nulls, 2, &r->has_value);
		r->warning = metric_number(values, nulls, 3, &r->has_warning);
		r->critical = metric_number(values, nulls, 4, &r->has_critical);
		r->unit = metric_label(values, nulls, 5, 0);
		r->detail = metric_label(values, nulls, 6, 200);
		for (int st = 0; st < lengthof(metric_statuses); st++)
			if (strcmp(r->status, metric_statuses[st]) == 0 && st > worst)
				worst = st;
	}

	initStringInfo(&out);
	appendStringInfoString(&out,
						   "# HELP dbops_check_value Value of a dbops.health() check, in the unit of its unit label.\n"
						   "# TYPE dbops_check_value gauge\n");
	for (int i = 0; i < nrows; i++)
	{
		if (!rows[i].has_value)
			continue;
		appendStringInfo(&out, "dbops_check_value{database=\"%s\",check=\"%s\",unit=\"%s\"} ",
						 db.data, rows[i].check, rows[i].unit);
		append_sample_value(&out, rows[i].value);
		appendStringInfoChar(&out, '\n');
	}

	appendStringInfoString(&out,
						   "# HELP dbops_check_status Status of a dbops.health() check: 1 for its current status, 0 for the others.\n"
						   "# TYPE dbops_check_status gauge\n");
	for (int i = 0; i < nrows; i++)
		for (int s = 0; s < lengthof(metric_statuses); s++)
			appendStringInfo(&out, "dbops_check_status{database=\"%s\",check=\"%s\",status=\"%s\"} %d\n",
							 db.data, rows[i].check, metric_statuses[s],
							 strcmp(rows[i].status, metric_statuses[s]) == 0 ? 1 : 0);

	appendStringInfoString(&out,
						   "# HELP dbops_check_threshold Warning and critical thresholds of a dbops.health() check.\n"
						   "# TYPE dbops_check_threshold gauge\n");
	for (int i = 0; i < nrows; i++)
	{
		if (rows[i].has_warning)
		{
			appendStringInfo(&out, "dbops_check_threshold{database=\"%s\",check=\"%s\",level=\"warning\"} ",
							 db.data, rows[i].check);
			append_sample_value(&out, rows[i].warning);
			appendStringInfoChar(&out, '\n');
		}
		if (rows[i].has_critical)
		{
			appendStringInfo(&out, "dbops_check_threshold{database=\"%s\",check=\"%s\",level=\"critical\"} ",
							 db.data, rows[i].check);
			append_sample_value(&out, rows[i].critical);
			appendStringInfoChar(&out, '\n');
		}
	}

	appendStringInfoString(&out,
						   "# HELP dbops_check_detail Detail (culprits) of a dbops.health() check that is not ok, cut to 200 bytes.\n"
						   "# TYPE dbops_check_detail gauge\n");
	for (int i = 0; i < nrows; i++)
		if (strcmp(rows[i].status, "ok") != 0)
			appendStringInfo(&out, "dbops_check_detail{database=\"%s\",check=\"%s\",status=\"%s\",detail=\"%s\"} 1\n",
							 db.data, rows[i].check, rows[i].status, rows[i].detail);

	appendStringInfo(&out,
					 "# HELP dbops_health_status Worst status of the dbops.health() report: 0 ok, 1 skipped, 2 unknown, 3 warning, 4 critical.\n"
					 "# TYPE dbops_health_status gauge\n"
					 "dbops_health_status{database=\"%s\"} %d\n", db.data, worst);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
