/*-------------------------------------------------------------------------
 *
 * healthkit.c
 *	  The toolkit of the health checks, of every capability: queries run
 *	  through plans kept for the life of the backend, readers of their
 *	  columns, lists of culprits (the top N, or the first N and a count),
 *	  the formatting of durations, sizes, names and other roles' messages,
 *	  and the tests of what the caller may read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "dbops.h"
#include "healthkit.h"

/*
 * Run a query through a plan kept for the life of the backend (checks run
 * often; planning the same query every time is wasted work).
 *
 * A kept plan is analyzed again when search_path changes, and superusers
 * run these: every query text names its functions, operators, types and
 * relations with their schema (pg_catalog.x, OPERATOR(pg_catalog.-),
 * ::pg_catalog.float8), so that it means the same under any search_path.
 * dbops.health() also pins search_path in its CREATE FUNCTION.
 */
SPITupleTable *
dbops_kept_query_args(SPIPlanPtr *plan, const char *sql, int nargs,
					  Oid *argtypes, Datum *values, bool read_only)
{
	int			ret;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}
	ret = SPI_execute_plan(*plan, values, NULL, read_only, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s", sql,
			 SPI_result_code_string(ret));
	return SPI_tuptable;
}

SPITupleTable *
dbops_kept_query(SPIPlanPtr *plan, const char *sql)
{
	return dbops_kept_query_args(plan, sql, 0, NULL, NULL, true);
}

char *
dbops_col_text(SPITupleTable *tt, uint64 row, int col)
{
	char	   *v = SPI_getvalue(tt->vals[row], tt->tupdesc, col);

	return v ? v : "?";
}

char *
dbops_col_cstring(SPITupleTable *tt, uint64 row, int col)
{
	return SPI_getvalue(tt->vals[row], tt->tupdesc, col);
}

Datum
dbops_col_datum(SPITupleTable *tt, uint64 row, int col, bool *isnull)
{
	return SPI_getbinval(tt->vals[row], tt->tupdesc, col, isnull);
}

bool
dbops_col_bool(SPITupleTable *tt, uint64 row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tt->vals[row], tt->tupdesc, col, &isnull);

	return !isnull && DatumGetBool(d);
}

double
dbops_col_float(SPITupleTable *tt, uint64 row, int col, bool *isnull)
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

void
dbops_topn_add(DbopsTopN *top, double score, int item)
{
	int			pos;

	if (top->n == DBOPS_MAX_CULPRITS && score <= top->score[DBOPS_MAX_CULPRITS - 1])
		return;
	pos = Min(top->n, DBOPS_MAX_CULPRITS - 1);
	while (pos > 0 && top->score[pos - 1] < score)
	{
		top->score[pos] = top->score[pos - 1];
		top->item[pos] = top->item[pos - 1];
		pos--;
	}
	top->score[pos] = score;
	top->item[pos] = item;
	if (top->n < DBOPS_MAX_CULPRITS)
		top->n++;
}

void
dbops_culprits_init(DbopsCulprits *c, StringInfo buf, int limit,
					const char *first, const char *sep)
{
	c->buf = buf;
	c->limit = limit;
	c->first = first;
	c->sep = sep;
	c->count = 0;
}

bool
dbops_culprit(DbopsCulprits *c)
{
	if (++c->count > c->limit)
		return false;
	appendStringInfoString(c->buf, c->count == 1 ? c->first : c->sep);
	return true;
}

void
dbops_culprits_end(DbopsCulprits *c)
{
	if (c->count > c->limit)
		appendStringInfo(c->buf, "%sand %d more", c->sep, c->count - c->limit);
}

/* Put text in front of what the check's detail says so far. */
void
dbops_detail_prepend(DbopsCheckResult *res, const char *text)
{
	StringInfoData head;

	initStringInfo(&head);
	appendStringInfoString(&head, text);
	appendBinaryStringInfo(&head, res->detail.data, res->detail.len);
	resetStringInfo(&res->detail);
	appendBinaryStringInfo(&res->detail, head.data, head.len);
	pfree(head.data);
}

/* v rounded to the given number of decimals, for a value users read */
double
dbops_rounded(double v, int decimals)
{
	double		scale = pow(10, decimals);

	return round(v * scale) / scale;
}

double
dbops_seconds_between(TimestampTz from, TimestampTz to)
{
	return (double) (to - from) / USECS_PER_SEC;
}

/* "1h 02m", "3m 04s", "5.2s": a duration as a DBA reads it */
void
dbops_append_duration(StringInfo buf, double secs)
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

void
dbops_append_bytes(StringInfo buf, double bytes)
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

/*
 * Append a message another role or process wrote (a job's error, a failed
 * run's message) on one line, cut to about limit bytes at a character
 * boundary, with "..." where it was cut.
 */
void
dbops_append_clipped(StringInfo buf, const char *s, int limit)
{
	int			len = strlen(s);
	int			cut;

	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	cut = pg_mbcliplen(s, len, limit);
	for (int i = 0; i < cut; i++)
		appendStringInfoChar(buf, (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') ? ' ' : s[i]);
	if (cut < len)
		appendStringInfoString(buf, "...");
}

/* A relation's schema-qualified, quoted name, or that it was dropped. */
char *
dbops_relation_display_name(Oid relid, Oid nspid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname = get_namespace_name(nspid);

	if (relname == NULL)
		return psprintf("(dropped relation %u)", relid);
	return quote_qualified_identifier(nspname, relname);
}

/* Can the caller read other roles' session and replication details? */
bool
dbops_can_read_all_stats(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
}

/*
 * Skip a check that reads other roles' sessions, positions or objects the
 * caller may not read (why says what), with the grant that lets it.
 */
void
dbops_check_skip_all_stats(DbopsCheckResult *res, const char *why)
{
	dbops_check_skip(res, "%s", why);
	appendStringInfoString(&res->hint, "Grant the role pg_monitor (or pg_read_all_stats) to run this check.");
}

/*
 * The cumulative statistics the check reads are collected only with
 * track_counts on: without them, an empty answer would be a false "ok".
 */
bool
dbops_counts_tracked(DbopsCheckResult *res)
{
	if (pgstat_track_counts)
		return true;
	dbops_check_unknown(res, "track_counts is off: the statistics this check reads are not collected");
	appendStringInfoString(&res->hint, "Turn track_counts on (it is on by default).");
	return false;
}
