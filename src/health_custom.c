/*-------------------------------------------------------------------------
 *
 * health_custom.c
 *	  Health checks written in SQL: dbops.add_check() registers a query that
 *	  returns a value (and optionally a detail) in dbops.custom_checks, and
 *	  the engine (health.c) runs it after its own checks, in the same
 *	  subtransaction, under the same timeout and thresholds.
 *
 *	  A check runs with the rights of the role that added it, never with
 *	  those of whoever runs the report: every dbops.health() caller, the
 *	  history snapshots a superuser's job takes, and pg_monitor members all
 *	  run the same query as that role, in a security-restricted operation,
 *	  read-only, with search_path pinned to pg_catalog, pg_temp.  Read-only
 *	  is the transaction's own flag (XactReadOnly), raised for the query and
 *	  lowered after it: transaction_read_only cannot be set for a nest level
 *	  from 16 on, and the end of the engine's subtransaction (or the abort
 *	  of the statement, in add_check()) restores the flag on error.  A
 *	  session's temporary objects are the one name space that pin cannot
 *	  keep out (relations and types in pg_temp are found by unqualified
 *	  names), so a check is not run in a session that has any unless both
 *	  the session's role and the current one have the rights of its owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

#include "dbops.h"
#include "healthkit.h"

/* limits of a definition */
#define CUSTOM_QUERY_MAX	65536
#define CUSTOM_UNIT_MAX		32
#define CUSTOM_HINT_MAX		1000

#define CUSTOM_HINT_SHAPE \
	"A check's query is one SELECT that returns at most one row: a numeric value, and optionally a second column for the detail."

/* A role as messages name it: its name, or its OID once it is dropped. */
static const char *
custom_role_name(Oid roleid)
{
	char	   *name = GetUserNameFromId(roleid, true);

	return name ? quote_identifier(name) : psprintf("(dropped role %u)", roleid);
}

/*
 * The checks of dbops.custom_checks, by name, in memory context cxt.  SPI
 * must be connected.  A catalog of another version of dbops has none (the
 * table came with 1.1), nor has the upgrade script to 1.1 before it creates
 * the table.
 */
int
dbops_custom_checks_load(MemoryContext cxt, DbopsCustomCheck **defs)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	DbopsCustomCheck *d;
	MemoryContext old;
	int			n = 0;

	*defs = NULL;
	if (dbops_catalog_outdated() || !OidIsValid(dbops_relid("custom_checks")))
		return 0;
	tt = dbops_kept_query(&plan,
						  "SELECT c.check_name, c.query, c.direction, c.unit, c.hint,"
						  "       c.owner::pg_catalog.oid"
						  "  FROM dbops.custom_checks c"
						  " ORDER BY c.check_name COLLATE \"C\"");
	if (SPI_processed == 0)
		return 0;

	old = MemoryContextSwitchTo(cxt);
	d = palloc0(sizeof(DbopsCustomCheck) * SPI_processed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *name = dbops_col_text(tt, i, 1);
		char	   *dir = dbops_col_text(tt, i, 3);
		char	   *unit = dbops_col_cstring(tt, i, 4);
		char	   *hint = dbops_col_cstring(tt, i, 5);
		bool		isnull;

		/* a row written around add_check() cannot stand in for a built-in */
		if (dbops_builtin_check_exists(name))
			continue;
		d[n].name = pstrdup(name);
		d[n].query = pstrdup(dbops_col_text(tt, i, 2));
		d[n].direction = strcmp(dir, "lower_is_worse") == 0 ?
			DBOPS_LOWER_IS_WORSE : DBOPS_HIGHER_IS_WORSE;
		d[n].unit = unit ? pstrdup(unit) : NULL;
		d[n].hint = hint ? pstrdup(hint) : NULL;
		d[n].owner = DatumGetObjectId(dbops_col_datum(tt, i, 6, &isnull));
		n++;
	}
	MemoryContextSwitchTo(old);
	*defs = d;
	return n;
}

/* The caller's session may run a check of this owner (see the header). */
static bool
custom_check_runnable_here(Oid owner)
{
	Oid			temp_ns;
	Oid			temp_toast_ns;

	GetTempNamespaceState(&temp_ns, &temp_toast_ns);
	if (!OidIsValid(temp_ns))
		return true;
	return has_privs_of_role(GetSessionUserId(), owner) &&
		has_privs_of_role(GetUserId(), owner);
}

/*
 * Run one custom check: the engine has put its definition in
 * report->custom.  Errors are the engine's to report (unknown).
 */
void
dbops_check_custom(DbopsReport *report, DbopsCheckResult *res)
{
	const DbopsCustomCheck *def = report->custom;
	DbopsUserContext ctx;
	MemoryContext outer = CurrentMemoryContext;
	bool		save_read_only;
	char	   *value = NULL;
	char	   *detail = NULL;
	uint64		nrows;
	int			ret;
	int			natts;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(def->owner)))
	{
		dbops_check_unknown(res, "the role (OID %u) that added this check no longer exists",
							def->owner);
		appendStringInfo(&res->hint, "Remove the check with dbops.remove_check('%s') and add it again as another role.",
						 def->name);
		return;
	}
	if (!custom_check_runnable_here(def->owner))
	{
		dbops_check_skip(res, "not run in a session with temporary objects: this check runs as %s, and the session's temporary tables and types could stand in for the ones its query names",
						 custom_role_name(def->owner));
		appendStringInfoString(&res->hint, "Run dbops.health() in a session without temporary objects (DISCARD TEMP does not end their schema: use a new session), or as the role that added the check.");
		return;
	}

	dbops_become_owner(def->owner, &ctx);
	save_read_only = XactReadOnly;
	XactReadOnly = true;
	ret = SPI_execute(def->query, true, 2);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("the query of check \"%s\" is not a SELECT", def->name),
				 errhint(CUSTOM_HINT_SHAPE)));
	natts = SPI_tuptable->tupdesc->natts;
	nrows = SPI_processed;
	if (natts < 1 || natts > 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query of check \"%s\" returns %d columns", def->name, natts),
				 errhint(CUSTOM_HINT_SHAPE)));
	if (nrows > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("the query of check \"%s\" returned more than one row", def->name),
				 errhint(CUSTOM_HINT_SHAPE)));
	if (nrows == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spicxt = MemoryContextSwitchTo(outer);

		/* the output functions run as the owner too */
		value = SPI_getvalue(tup, desc, 1);
		if (natts == 2)
			detail = SPI_getvalue(tup, desc, 2);
		MemoryContextSwitchTo(spicxt);
	}
	SPI_freetuptable(SPI_tuptable);
	XactReadOnly = save_read_only;
	dbops_restore_user(&ctx);

	if (def->hint)
		appendStringInfoString(&res->hint, def->hint);
	if (detail)
		dbops_append_clipped(&res->detail, detail, 8192);
	if (value == NULL)
	{
		if (res->detail.len == 0)
			appendStringInfoString(&res->detail, nrows == 0 ?
								   "the query returned no row" : "the query returned no value");
		return;
	}
	{
		double		v = DatumGetFloat8(DirectFunctionCall1(float8in, CStringGetDatum(value)));

		if (isnan(v))
		{
			dbops_check_unknown(res, "the query returned NaN");
			return;
		}
		dbops_check_value(res, v, def->unit);
	}
}

/* dbops.add_check() and dbops.remove_check(): the arguments */

static char *
custom_arg_text(FunctionCallInfo fcinfo, int arg, const char *what)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what),
				 errhint("See dbops.add_check() in the health documentation.")));
	return text_to_cstring(PG_GETARG_TEXT_PP(arg));
}

/* A check's name: an identifier that needs no quoting, not a built-in's. */
static void
custom_check_name_valid(const char *name)
{
	bool		ok = name[0] >= 'a' && name[0] <= 'z' && strlen(name) < NAMEDATALEN;

	for (const char *p = name; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid check name \"%s\"", dbops_bounded(name, 64)),
				 errhint("A check's name starts with a lower-case letter and has at most 63 lower-case letters, digits and underscores.")));
	if (dbops_builtin_check_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("\"%s\" is a built-in health check", name),
				 errhint("Give the check another name; dbops.health_checks() lists the names in use.")));
}

static void
custom_require_writable_catalog(const char *func)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot run %s on a server in recovery", func),
				 errhint("Health checks are kept in the primary's catalog, and a standby runs them from its copy: add or remove them on the primary.")));
	if (dbops_catalog_outdated())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot run %s with the installed version of dbops", func),
				 errhint(DBOPS_OUTDATED_HINT)));
}

/* The owner of dbops' tables, who writes their rows. */
static Oid
custom_catalog_owner(void)
{
	Oid			relid = dbops_relid("custom_checks");
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "dbops.custom_checks does not exist");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The query of a new check, parsed and planned as its caller (under the
 * pinned search_path the check will run with): one plain SELECT, no
 * locking clause, no data-modifying WITH, no temporary relation, one or two
 * columns of which the first is numeric.  Then tried once, read-only, so
 * that a query its role may not run is refused now rather than reported
 * unknown at every run.
 */
static void
custom_query_context(void *arg)
{
	errcontext("trying the query of health check \"%s\"", (const char *) arg);
}

static void
custom_query_valid(const char *name, const char *query)
{
	ErrorContextCallback errcb;
	List	   *raw;
	RawStmt    *rs;
	SelectStmt *sel;
	SPIPlanPtr	plan;
	List	   *sources;
	CachedPlanSource *ps;
	Query	   *q;
	TupleDesc	desc;
	Oid			typid;
	ListCell   *lc;
	DbopsUserContext ctx;
	bool		save_read_only;
	int			ret;
	const char *p;

	for (p = query; *p && isspace((unsigned char) *p); p++)
		;
	if (*p == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of check \"%s\" is empty", name),
				 errhint(CUSTOM_HINT_SHAPE)));
	if (strlen(query) > CUSTOM_QUERY_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the query of check \"%s\" is longer than %d bytes", name, CUSTOM_QUERY_MAX),
				 errhint("Put the work in a function or view and select from it.")));

	errcb.callback = custom_query_context;
	errcb.arg = unconstify(char *, name);
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	raw = raw_parser(query, RAW_PARSE_DEFAULT);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of check \"%s\" has %d statements", name, list_length(raw)),
				 errhint(CUSTOM_HINT_SHAPE)));
	rs = linitial_node(RawStmt, raw);
	if (!IsA(rs->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of check \"%s\" is not a SELECT", name),
				 errhint(CUSTOM_HINT_SHAPE)));
	sel = (SelectStmt *) rs->stmt;
	if (sel->intoClause != NULL || sel->lockingClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of check \"%s\" is a SELECT %s", name,
						sel->intoClause ? "INTO" : "with a locking clause"),
				 errhint("A check only reads: it runs in a read-only transaction and takes no row locks.")));

	dbops_become_owner(GetUserId(), &ctx);
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for the query of check \"%s\": %s",
			 name, SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of check \"%s\" is rewritten into %d statements", name,
						list_length(sources)),
				 errhint(CUSTOM_HINT_SHAPE)));
	ps = (CachedPlanSource *) linitial(sources);
	foreach(lc, ps->query_list)
	{
		q = lfirst_node(Query, lc);
		if (q->commandType != CMD_SELECT || q->hasModifyingCTE || q->rowMarks != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the query of check \"%s\" modifies or locks rows", name),
					 errhint("A check only reads: it runs in a read-only transaction and takes no row locks.")));
	}
	foreach(lc, ps->relationOids)
	{
		Oid			nsp = get_rel_namespace(lfirst_oid(lc));

		if (OidIsValid(nsp) && isAnyTempNamespace(nsp))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the query of check \"%s\" reads the temporary relation %s", name,
							get_rel_name(lfirst_oid(lc))),
					 errhint("A check outlives the session: read permanent tables, with their schema named.")));
	}
	desc = ps->resultDesc;
	if (desc == NULL || desc->natts < 1 || desc->natts > 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query of check \"%s\" returns %d columns", name,
						desc ? desc->natts : 0),
				 errhint(CUSTOM_HINT_SHAPE)));
	typid = getBaseType(TupleDescAttr(desc, 0)->atttypid);
	if (typid != INT2OID && typid != INT4OID && typid != INT8OID &&
		typid != FLOAT4OID && typid != FLOAT8OID && typid != NUMERICOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the first column of the query of check \"%s\" is of type %s, not a number",
						name, format_type_be(TupleDescAttr(desc, 0)->atttypid)),
				 errhint("Return the check's value first, as smallint, integer, bigint, real, double precision or numeric (cast it, e.g. extract(epoch FROM ...)::numeric)."),
				 errdetail("%s", CUSTOM_HINT_SHAPE)));

	save_read_only = XactReadOnly;
	XactReadOnly = true;
	ret = SPI_execute_plan(plan, NULL, NULL, true, 2);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not try the query of check \"%s\": %s", name,
			 SPI_result_code_string(ret));
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("the query of check \"%s\" returned more than one row", name),
				 errhint("Aggregate its rows into one value (count, max, sum), and name the worst in the detail column.")));
	SPI_freeplan(plan);
	XactReadOnly = save_read_only;
	dbops_restore_user(&ctx);
	error_context_stack = errcb.previous;
}

static void
custom_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/*
 * dbops.add_check(check_name, query, warning, critical, direction, unit,
 * hint): register a check run as its caller.
 */
PG_FUNCTION_INFO_V1(dbops_add_check);

Datum
dbops_add_check(PG_FUNCTION_ARGS)
{
	char	   *name = custom_arg_text(fcinfo, 0, "check_name");
	char	   *query = custom_arg_text(fcinfo, 1, "query");
	char	   *direction = custom_arg_text(fcinfo, 4, "direction");
	Oid			caller = GetUserId();
	DbopsUserContext ctx;
	Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, OIDOID, NUMERICOID};
	Datum		values[7];
	char		nulls[7] = "       ";

	custom_require_writable_catalog("dbops.add_check()");
	custom_check_name_valid(name);
	if (strcmp(direction, "higher_is_worse") != 0 && strcmp(direction, "lower_is_worse") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid direction \"%s\"", dbops_bounded(direction, 64)),
				 errhint("Give 'higher_is_worse' (the default) or 'lower_is_worse'.")));
	if (!PG_ARGISNULL(5) && VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(5)) > CUSTOM_UNIT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("the unit of check \"%s\" is longer than %d bytes", name, CUSTOM_UNIT_MAX),
				 errhint("Name the unit, e.g. 'rows', 'seconds' or '%%'.")));
	if (!PG_ARGISNULL(6) && VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(6)) > CUSTOM_HINT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("the hint of check \"%s\" is longer than %d bytes", name, CUSTOM_HINT_MAX),
				 errhint("Say in a sentence or two what to do; link to the runbook for the rest.")));

	SPI_connect();
	custom_query_valid(name, query);

	/* the rows, written as the owner of dbops' tables */
	dbops_become_owner(custom_catalog_owner(), &ctx);
	values[0] = CStringGetTextDatum(name);
	custom_exec("SELECT FROM dbops.custom_checks c WHERE c.check_name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				1, types, values, nulls);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("health check \"%s\" already exists", name),
				 errhint("Remove it first with dbops.remove_check('%s'), or choose another name.", name)));
	values[1] = CStringGetTextDatum(query);
	values[2] = CStringGetTextDatum(direction);
	values[3] = PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5);
	nulls[3] = PG_ARGISNULL(5) ? 'n' : ' ';
	values[4] = PG_ARGISNULL(6) ? (Datum) 0 : PG_GETARG_DATUM(6);
	nulls[4] = PG_ARGISNULL(6) ? 'n' : ' ';
	values[5] = ObjectIdGetDatum(caller);
	custom_exec("INSERT INTO dbops.custom_checks (check_name, query, direction, unit, hint, owner)"
				" VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.regrole)",
				6, types, values, nulls);

	types[1] = NUMERICOID;
	types[2] = NUMERICOID;
	values[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[1] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[2] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[2] = PG_ARGISNULL(3) ? 'n' : ' ';
	custom_exec("INSERT INTO dbops.health_thresholds (check_name, warning, critical)"
				" VALUES ($1, $2, $3)",
				3, types, values, nulls);
	dbops_restore_user(&ctx);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * dbops.remove_check(check_name): remove a check and its thresholds row,
 * for a role with the rights of the one that added it.  Its history stays
 * until the history's retention removes it.
 */
PG_FUNCTION_INFO_V1(dbops_remove_check);

Datum
dbops_remove_check(PG_FUNCTION_ARGS)
{
	char	   *name = custom_arg_text(fcinfo, 0, "check_name");
	DbopsUserContext ctx;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Oid			owner;
	bool		isnull;

	custom_require_writable_catalog("dbops.remove_check()");
	if (dbops_builtin_check_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is a built-in health check", name),
				 errhint("Disable it instead: UPDATE dbops.health_thresholds SET enabled = false WHERE check_name = '%s'.", name)));

	SPI_connect();
	dbops_become_owner(custom_catalog_owner(), &ctx);
	values[0] = CStringGetTextDatum(name);
	custom_exec("SELECT c.owner::pg_catalog.oid FROM dbops.custom_checks c"
				" WHERE c.check_name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				1, types, values, NULL);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("health check \"%s\" does not exist", dbops_bounded(name, 64)),
				 errhint("The checks added with dbops.add_check() are listed in dbops.custom_checks.")));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(ctx.save_userid, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to remove health check \"%s\"", name),
				 errdetail("Only a role with the rights of the role that added it, %s, may remove it.",
						   custom_role_name(owner)),
				 errhint("Ask that role, or a superuser, to remove it.")));
	custom_exec("DELETE FROM dbops.health_thresholds t WHERE t.check_name OPERATOR(pg_catalog.=) $1",
				1, types, values, NULL);
	custom_exec("DELETE FROM dbops.custom_checks c WHERE c.check_name OPERATOR(pg_catalog.=) $1",
				1, types, values, NULL);
	dbops_restore_user(&ctx);
	SPI_finish();
	PG_RETURN_VOID();
}
