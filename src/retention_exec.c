/*-------------------------------------------------------------------------
 *
 * retention_exec.c
 *	  The statements of a retention purge, run as the policy table's owner.
 *
 *	  CALL dbops.purge() and dbops.purge_preview() never read or change a
 *	  policy's table themselves: they call dbops._purge_exec(), which
 *
 *	   - reads the policy row, and builds the statement from it (through
 *		 dbops._purge_batch_sql(), or here for DETACH/DROP): the caller only
 *		 picks which step and narrows it (bounds, row limit, a cutoff that
 *		 may not be later than now() - keep);
 *	   - locks the relation, then checks that it is still a plain or
 *		 partitioned table, not temporary, that the target belongs to the
 *		 policy, that the role recorded in created_by still has the
 *		 privileges of the table's owner, and that the caller may do this
 *		 step (SELECT and DELETE on the table; the owner's privileges to
 *		 detach or drop a partition);
 *	   - runs the statement as the table's owner in a security-restricted
 *		 operation (dbops_become_owner()), so that the owner's triggers,
 *		 rules and functions run with the owner's rights only.
 *
 *	  Also here: dbops._retention_problem(), the same checks for the purge's
 *	  and the preview's messages, and dbops._purge_relname().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "storage/lockdefs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "dbops.h"
#include "retention_exec.h"

typedef enum PurgeAction
{
	PURGE_BOUND,
	PURGE_RANGE,
	PURGE_SKIP_LOCKED,
	PURGE_EXISTS,
	PURGE_PREVIEW,
	PURGE_DETACH
} PurgeAction;

static const struct
{
	const char *name;
	PurgeAction action;
}			purge_actions[] =
{
	{"bound", PURGE_BOUND},
	{"range", PURGE_RANGE},
	{"skip_locked", PURGE_SKIP_LOCKED},
	{"exists", PURGE_EXISTS},
	{"preview", PURGE_PREVIEW},
	{"detach", PURGE_DETACH},
};

typedef struct RetentionPolicy
{
	int32		policy_id;
	Oid			relid;
	char	   *time_column;
	Interval   *keep;
	char	   *created_by;
	bool		drop_partitions;
} RetentionPolicy;

/*
 * The schema-qualified, quoted name of a relation (its OID if it is gone);
 * this session's temporary schema is called pg_temp.
 */
char *
dbops_retention_relname(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class cls;
	char	   *nsp;
	char	   *name;

	if (!HeapTupleIsValid(tup))
		return psprintf("%u", relid);
	cls = (Form_pg_class) GETSTRUCT(tup);
	nsp = isTempNamespace(cls->relnamespace) ? pstrdup("pg_temp") :
		get_namespace_name(cls->relnamespace);
	name = quote_qualified_identifier(nsp ? nsp : "?", NameStr(cls->relname));
	ReleaseSysCache(tup);
	return name;
}

bool
dbops_retention_time_type_ok(Oid typid)
{
	return typid == TIMESTAMPTZOID || typid == TIMESTAMPOID || typid == DATEOID;
}

#define HINT_NOT_A_TABLE \
	"The purge acts on plain and partitioned tables only, with the rights of the table's owner, and only while the role in created_by has them; remove the policy with dbops.remove_retention_policy()."
#define HINT_CREATED_BY \
	"The table's owner (or a member of the owning role) adopts the policy with dbops.alter_retention_policy(), or removes it with dbops.remove_retention_policy()."
#define HINT_GONE \
	"Remove the policy with dbops.remove_retention_policy()."
#define HINT_COLUMN \
	"Point the policy at a timestamptz, timestamp or date column with dbops.alter_retention_policy(relation, time_column => ...), or remove it."
#define HINT_LIMITS \
	"Give the policy limits in range with dbops.alter_retention_policy(): keep and max_run_time at most 1000 years, e.g. keep => interval '10 years'."

/*
 * At most the first 64 characters of s (whole characters), with "..." when
 * there were more: what a message quotes of a caller's text.
 */
static char *
clip(const char *s)
{
	int			len = strlen(s);
	int			keep = pg_mbcliplen(s, len, 64);

	if (keep >= len)
		return pstrdup(s);
	return psprintf("%.*s...", keep, s);
}

static void
set_problem(RetentionProblem *problem, const char *status, int sqlerrcode,
			char *message, const char *hint)
{
	problem->status = status;
	problem->sqlerrcode = sqlerrcode;
	problem->message = message;
	problem->hint = hint;
}

static char *
interval_text(const Interval *iv)
{
	return DatumGetCString(DirectFunctionCall1(interval_out,
											   IntervalPGetDatum((Interval *) iv)));
}

/*
 * Whether a keep or max_run_time is at most DBOPS_RETENTION_MAX_YEARS long
 * (counted as extract(epoch) does: a year is 365.25 days, a month beyond
 * whole years 30 days), with neither its months nor its days longer than
 * that on their own.  Says nothing about its sign.  The same rule is
 * written in SQL in dbops._retention_validate() and the policy functions.
 */
bool
dbops_retention_interval_ok(const Interval *iv)
{
	const int64 max_months = (int64) DBOPS_RETENTION_MAX_YEARS * MONTHS_PER_YEAR;
	const int64 max_days = (int64) DBOPS_RETENTION_MAX_YEARS * 36525 / 100;
	double		days;

	if ((int64) iv->month > max_months || (int64) iv->month < -max_months)
		return false;
	if ((int64) iv->day > max_days || (int64) iv->day < -max_days)
		return false;
	days = (double) (iv->month / MONTHS_PER_YEAR) * DAYS_PER_YEAR +
		(double) (iv->month % MONTHS_PER_YEAR) * DAYS_PER_MONTH +
		(double) iv->day + (double) iv->time / (double) USECS_PER_DAY;
	return days <= (double) max_days;
}

static bool
interval_positive(const Interval *iv)
{
	Interval	zero = {0};

	return DatumGetInt32(DirectFunctionCall2(interval_cmp,
											 IntervalPGetDatum((Interval *) iv),
											 IntervalPGetDatum(&zero))) > 0;
}

/*
 * Whether a policy row's keep and max_run_time (NULL: not checked, no cap)
 * can be used:
 * false, with the reason in *problem (status "skipped", 22023), if keep is
 * not positive or either is longer than DBOPS_RETENTION_MAX_YEARS.  Rows
 * written before 1.1 checked this, or written into the table directly, may
 * hold such values; the purge, the preview and the health check skip them.
 */
bool
dbops_retention_limits_problem(const Interval *keep, const Interval *max_run_time,
							   RetentionProblem *problem)
{
	if (keep != NULL && !interval_positive(keep))
	{
		set_problem(problem, "skipped", ERRCODE_INVALID_PARAMETER_VALUE,
					psprintf("keep (%s) is not a positive interval", interval_text(keep)),
					HINT_LIMITS);
		return false;
	}
	if (keep != NULL && !dbops_retention_interval_ok(keep))
	{
		set_problem(problem, "skipped", ERRCODE_INVALID_PARAMETER_VALUE,
					psprintf("keep (%s) is longer than %d years", interval_text(keep),
							 DBOPS_RETENTION_MAX_YEARS),
					HINT_LIMITS);
		return false;
	}
	if (max_run_time != NULL &&
		(!interval_positive(max_run_time) || !dbops_retention_interval_ok(max_run_time)))
	{
		set_problem(problem, "skipped", ERRCODE_INVALID_PARAMETER_VALUE,
					psprintf("max_run_time (%s) is not a positive interval of at most %d years",
							 interval_text(max_run_time), DBOPS_RETENTION_MAX_YEARS),
					HINT_LIMITS);
		return false;
	}
	return true;
}

/*
 * Whether a policy on relid, recorded as made by created_by, may be acted on
 * now: false, with the reason in *problem, if the relation is gone, is no
 * longer a plain or partitioned table, is temporary, or created_by (if not
 * NULL) no longer exists or no longer has the privileges of the relation's
 * owner; and, with time_column (if not NULL), if that column is gone or no
 * longer of a date/time type.  The caller decides whether to lock first.
 */
bool
dbops_retention_problem_of(Oid relid, const char *created_by,
						   const char *time_column, RetentionProblem *problem)
{
	HeapTuple	tup;
	Form_pg_class cls;
	char		relkind;
	char		persistence;
	Oid			owner;
	char	   *name;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
	{
		set_problem(problem, "failed", ERRCODE_UNDEFINED_TABLE,
					psprintf("relation with OID %u no longer exists", relid),
					HINT_GONE);
		return false;
	}
	cls = (Form_pg_class) GETSTRUCT(tup);
	relkind = cls->relkind;
	persistence = cls->relpersistence;
	owner = cls->relowner;
	ReleaseSysCache(tup);
	name = dbops_retention_relname(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
	{
		set_problem(problem, "skipped", ERRCODE_WRONG_OBJECT_TYPE,
					psprintf("%s is a %s, not a table: it is not read",
							 name, dbops_relkind_name(relkind)),
					HINT_NOT_A_TABLE);
		return false;
	}
	if (persistence == RELPERSISTENCE_TEMP)
	{
		set_problem(problem, "skipped", ERRCODE_WRONG_OBJECT_TYPE,
					psprintf("%s is a temporary table: it is not read", name),
					HINT_NOT_A_TABLE);
		return false;
	}
	if (created_by != NULL)
	{
		Oid			creator = get_role_oid(created_by, true);

		if (!OidIsValid(creator))
		{
			set_problem(problem, "skipped", ERRCODE_INSUFFICIENT_PRIVILEGE,
						psprintf("created_by role \"%s\" no longer exists",
								 created_by),
						HINT_CREATED_BY);
			return false;
		}
		if (!has_privs_of_role(creator, owner))
		{
			set_problem(problem, "skipped", ERRCODE_INSUFFICIENT_PRIVILEGE,
						psprintf("created_by role \"%s\" does not have the privileges of role \"%s\", the owner of %s",
								 created_by, GetUserNameFromId(owner, false), name),
						HINT_CREATED_BY);
			return false;
		}
	}
	if (time_column != NULL)
	{
		AttrNumber	attnum = get_attnum(relid, time_column);
		Oid			typid;

		if (attnum == InvalidAttrNumber || attnum < 0)
		{
			set_problem(problem, "failed", ERRCODE_UNDEFINED_COLUMN,
						psprintf("column \"%s\" of %s no longer exists",
								 time_column, name),
						HINT_COLUMN);
			return false;
		}
		typid = get_atttype(relid, attnum);
		if (!dbops_retention_time_type_ok(typid))
		{
			set_problem(problem, "failed", ERRCODE_DATATYPE_MISMATCH,
						psprintf("column \"%s\" of %s is of type %s, not timestamptz, timestamp or date",
								 time_column, name, format_type_be(typid)),
						HINT_COLUMN);
			return false;
		}
	}
	return true;
}

static void
raise_problem(const RetentionProblem *problem)
{
	ereport(ERROR,
			(errcode(problem->sqlerrcode),
			 errmsg("%s", problem->message),
			 errhint("%s", problem->hint)));
}

/* Read a policy row (as the caller, who must be able to read the table). */
static void
load_policy(int32 policy_id, RetentionPolicy *pol, MemoryContext outer)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(policy_id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;
	int			ret;

	ret = SPI_execute_with_args("SELECT p.relation::pg_catalog.oid, p.time_column, p.keep,"
								"       p.created_by, p.drop_partitions"
								"  FROM dbops.retention_policies p"
								" WHERE p.policy_id OPERATOR(pg_catalog.=) $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read dbops.retention_policies: %s",
			 SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("retention policy %d does not exist", policy_id),
				 errhint("The policies are in dbops.retention_policies; it may have been removed meanwhile.")));

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	old = MemoryContextSwitchTo(outer);
	pol->policy_id = policy_id;
	pol->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	pol->time_column = SPI_getvalue(tup, desc, 2);
	pol->keep = DatumGetIntervalP(datumCopy(SPI_getbinval(tup, desc, 3, &isnull),
											false, sizeof(Interval)));
	pol->created_by = SPI_getvalue(tup, desc, 4);
	pol->drop_partitions = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	MemoryContextSwitchTo(old);
}

Oid
dbops_retention_rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u no longer exists", relid),
				 errhint(HINT_GONE)));
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Whether target is the policy's relation (any action) or one of its leaf
 * partitions (row actions) or one of its direct partitions (detach).  Read
 * from the catalogs as they are: called before the lock, to refuse locking
 * unrelated tables, and again after it.
 */
static bool
target_belongs(Oid relid, Oid target, PurgeAction action)
{
	if (action == PURGE_DETACH)
	{
		if (target == relid || !get_rel_relispartition(target))
			return false;
		return get_partition_parent(target, true) == relid;
	}
	if (target == relid)
		return true;
	if (action == PURGE_PREVIEW || !get_rel_relispartition(target))
		return false;
	return list_member_oid(get_partition_ancestors(target), relid);
}

/*
 * A lower or upper bound passed as text must be a value of the time column's
 * type: said so here, quoting at most the start of it, rather than by the
 * type's input function inside the statement (which quotes all of it).
 */
static void
check_bound_value(const char *what, text *value, Oid typid)
{
	char	   *str = text_to_cstring(value);
	Oid			typinput;
	Oid			typioparam;
	MemoryContext cxt = CurrentMemoryContext;
	bool		ok = true;

	getTypeInputInfo(typid, &typinput, &typioparam);
	PG_TRY();
	{
		(void) OidInputFunctionCall(typinput, str, typioparam, -1);
	}
	PG_CATCH();
	{
		/* a date/time input function takes no resources: raise ours */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("%s \"%s\" is not a value of type %s", what, clip(str),
						format_type_be(typid)),
				 errhint("lower_value and upper_value are time values of the policy's column, as an earlier purge step returned them.")));
}

static void
set_local(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

static void
require_table_privilege(Oid relid, AclMode mode)
{
	AclResult	acl = pg_class_aclcheck(relid, GetUserId(), mode);

	if (acl != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("The purge needs SELECT and DELETE on the policy's table, the preview SELECT."),
				 errhint("GRANT %s ON %s TO the role that runs it (the rows it deletes are still only those the policy allows).",
						 mode == ACL_SELECT ? "SELECT" : "SELECT, DELETE",
						 dbops_retention_relname(relid))));
}

static void
require_owner_privileges(Oid role, const char *who, Oid relid, const char *what)
{
	Oid			owner = dbops_retention_rel_owner(relid);

	if (!has_privs_of_role(role, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s does not have the privileges of role \"%s\", the owner of %s, to %s it",
						who, GetUserNameFromId(owner, false),
						dbops_retention_relname(relid), what),
				 errhint("Detaching and dropping partitions needs the owner's privileges: run the purge as the owner, a member of the owning role or a superuser, or set drop_partitions => false.")));
}

/*
 * dbops._purge_exec(policy_id, target, action, cutoff, lower_value,
 *					 upper_value, n_rows, OUT n, OUT value, OUT value2)
 *
 * One step of a purge of a policy's table, built from the policy row and run
 * as the table's owner.  action (the statements are those of
 * dbops._purge_batch_sql()):
 *
 *	 bound		 n_rows = offset: value = the time value that far into the rows
 *				 older than cutoff from lower_value on, n = how many rows (up
 *				 to the offset) share it; no row when fewer remain
 *	 range		 deletes the rows older than cutoff between lower_value and
 *				 upper_value (either may be NULL); n = rows deleted
 *	 skip_locked deletes up to n_rows rows older than cutoff from lower_value
 *				 on, skipping rows locked by others; n = rows, value = the
 *				 highest time deleted
 *	 exists		 n = 1 if rows older than cutoff remain, else 0
 *	 preview	 n = rows older than cutoff, value/value2 = their oldest and
 *				 newest time (read-only)
 *	 detach		 target is a partition wholly older than cutoff, never the
 *				 last one: detached, and dropped if the policy says so; n = 1
 *				 if dropped, 0 if only detached
 *
 * Time values travel as text in ISO style.  cutoff may not be later than
 * now() - keep, so that no caller deletes more than the policy allows.
 */
PG_FUNCTION_INFO_V1(dbops_purge_exec);

/* the columns of dbops._purge_exec() and of dbops._retention_problem() */
#define PURGE_EXEC_COLS 3
#define RETENTION_PROBLEM_COLS 4

Datum
dbops_purge_exec(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	int32		policy_id;
	Oid			target;
	char	   *action_name;
	PurgeAction action = PURGE_BOUND;
	bool		found = false;
	TimestampTz cutoff;
	TimestampTz latest;
	text	   *lower = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	text	   *upper = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
	bool		have_rows = !PG_ARGISNULL(6);
	int64		n_rows = have_rows ? PG_GETARG_INT64(6) : 0;
	RetentionPolicy pol;
	RetentionProblem problem;
	bool		writes;
	bool		read_only;
	int			nestlevel;
	char	   *sql = NULL;
	char	   *target_name;
	char	   *table_name;
	Oid			argtypes[3];
	Datum		args[3];
	char		argnulls[3] = {' ', ' ', ' '};
	int			nargs = 0;
	int			ret;
	DbopsUserContext ctx;
	TupleDesc	tupdesc;
	Datum		values[PURGE_EXEC_COLS] = {0};
	bool		nulls[PURGE_EXEC_COLS] = {true, true, true};

	/* the result's shape is checked before any work is done */
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc, PURGE_EXEC_COLS);

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("policy_id, target, action and cutoff must not be NULL"),
				 errhint("dbops._purge_exec() is called by CALL dbops.purge() and dbops.purge_preview(); use those.")));
	policy_id = PG_GETARG_INT32(0);
	target = PG_GETARG_OID(1);
	action_name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	cutoff = PG_GETARG_TIMESTAMPTZ(3);

	for (int i = 0; i < lengthof(purge_actions); i++)
	{
		if (strcmp(action_name, purge_actions[i].name) == 0)
		{
			action = purge_actions[i].action;
			found = true;
			break;
		}
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown purge action \"%s\"", clip(action_name)),
				 errhint("The actions are bound, range, skip_locked, exists, preview and detach.")));
	if ((action == PURGE_BOUND || action == PURGE_SKIP_LOCKED) &&
		(!have_rows || n_rows < (action == PURGE_BOUND ? 0 : 1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("action \"%s\" needs a %s n_rows", action_name,
						action == PURGE_BOUND ? "non-negative" : "positive"),
				 errhint("n_rows is the offset (bound) or the row limit (skip_locked) of one batch.")));

	writes = (action == PURGE_RANGE || action == PURGE_SKIP_LOCKED ||
			  action == PURGE_DETACH);
	read_only = (action == PURGE_PREVIEW);

	SPI_connect();
	load_policy(policy_id, &pol, outer);
	if (!dbops_retention_limits_problem(pol.keep, NULL, &problem))
		raise_problem(&problem);

	/* never later than the policy allows now */
	latest = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTimestamp()),
													 IntervalPGetDatum(pol.keep)));
	if (cutoff > latest)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cutoff is later than now() - keep of retention policy %d",
						policy_id),
				 errdetail("The cutoff is %s; the policy keeps rows for %s.",
						   timestamptz_to_str(cutoff),
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(pol.keep)))),
				 errhint("No caller may delete more than the policy allows; pass a cutoff at or before now() - keep.")));

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(target)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", target),
				 errhint("It was dropped meanwhile; CALL dbops.purge() goes on without it.")));
	if (!target_belongs(pol.relid, target, action))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not %s of the table of retention policy %d",
						dbops_retention_relname(target),
						action == PURGE_DETACH ? "a partition" :
						action == PURGE_PREVIEW ? "the table" :
						"the table or a leaf partition", policy_id),
				 errhint("A purge step acts only on the policy's own table and its partitions.")));

	/* named as they were before waiting for the lock, should they go */
	target_name = dbops_retention_relname(target);
	table_name = dbops_retention_relname(pol.relid);

	/*
	 * Settings of this step only: a purge step does not wait for locks longer
	 * than dbops.purge_lock_timeout, goes through the time column's index, and
	 * passes time values in ISO style.
	 */
	nestlevel = NewGUCNestLevel();
	if (action != PURGE_PREVIEW)
	{
		char		timeout[32];

		snprintf(timeout, sizeof(timeout), "%d", dbops_purge_lock_timeout);
		set_local("lock_timeout", timeout);
	}
	set_local("datestyle", "ISO, YMD");
	if (action != PURGE_PREVIEW && action != PURGE_DETACH)
	{
		set_local("enable_seqscan", "off");
		set_local("enable_bitmapscan", "off");
		set_local("enable_sort", "off");
	}

	/* lock, then look again at what is locked */
	if (action == PURGE_DETACH)
	{
		LockRelationOid(pol.relid, AccessExclusiveLock);
		LockRelationOid(target, AccessExclusiveLock);
	}
	else
		LockRelationOid(target, writes ? RowExclusiveLock : AccessShareLock);

	/*
	 * What was dropped while this waited for the lock is said so (the lock
	 * was granted on an OID that no longer names a relation).
	 */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(pol.relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation %s was dropped while waiting for its lock",
						table_name),
				 errhint(HINT_GONE)));
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(target)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("partition %s was dropped while waiting for its lock",
						target_name),
				 errhint("CALL dbops.purge() goes on without it.")));
	if (!dbops_retention_problem_of(pol.relid, pol.created_by, NULL, &problem))
		raise_problem(&problem);
	if (target != pol.relid &&
		!dbops_retention_problem_of(target, NULL, NULL, &problem))
		raise_problem(&problem);
	if (!target_belongs(pol.relid, target, action))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is no longer a partition of %s",
						target_name, table_name),
				 errhint("It was detached while waiting for its lock; CALL dbops.purge() goes on without it.")));
	if (action != PURGE_DETACH && target != pol.relid &&
		get_rel_relkind(target) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a leaf partition", target_name),
				 errhint("Rows are deleted from the leaf partitions; their partitioned parents hold none.")));
	if (action == PURGE_DETACH && get_rel_relkind(pol.relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a partitioned table", table_name),
				 errhint("Only partitions of a partitioned table are detached.")));
	if (action != PURGE_DETACH &&
		!dbops_retention_problem_of(target, NULL, pol.time_column, &problem))
		raise_problem(&problem);
	if (action == PURGE_BOUND || action == PURGE_RANGE || action == PURGE_SKIP_LOCKED)
	{
		Oid			typid = get_atttype(target, get_attnum(target, pol.time_column));

		if (lower)
			check_bound_value("lower_value", lower, typid);
		if (upper)
			check_bound_value("upper_value", upper, typid);
	}

	/* what the caller may do */
	if (action == PURGE_PREVIEW)
		require_table_privilege(pol.relid, ACL_SELECT);
	else if (action == PURGE_DETACH)
	{
		require_owner_privileges(GetUserId(), "the current user", pol.relid, "detach partitions of");
		if (pol.drop_partitions)
		{
			require_owner_privileges(GetUserId(), "the current user", target, "drop");
			require_owner_privileges(get_role_oid(pol.created_by, false),
									 psprintf("created_by role \"%s\"", pol.created_by),
									 target, "drop");
		}
	}
	else
	{
		require_table_privilege(pol.relid, ACL_SELECT);
		require_table_privilege(pol.relid, ACL_DELETE);
	}

	if (action == PURGE_DETACH)
	{
		Oid			dtypes[4] = {REGCLASSOID, NAMEOID, TIMESTAMPTZOID, OIDOID};
		Datum		dargs[4];
		bool		isnull;

		/* wholly older than the cutoff, and never the last partition */
		dargs[0] = ObjectIdGetDatum(pol.relid);
		dargs[1] = DirectFunctionCall1(namein, CStringGetDatum(pol.time_column));
		dargs[2] = TimestampTzGetDatum(cutoff);
		dargs[3] = ObjectIdGetDatum(target);
		ret = SPI_execute_with_args("WITH o AS (SELECT o.partition::pg_catalog.oid AS part, o.upper_bound"
									"             FROM dbops._purge_old_partitions($1, $2, $3) o),"
									"     n AS (SELECT pg_catalog.count(*) AS nparts"
									"             FROM pg_catalog.pg_inherits i"
									"             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid"
									"            WHERE i.inhparent OPERATOR(pg_catalog.=) $1"
									"              AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) OPERATOR(pg_catalog.<>) 'DEFAULT')"
									" SELECT EXISTS (SELECT FROM o WHERE o.part OPERATOR(pg_catalog.=) $4)"
									"    AND ((SELECT n.nparts FROM n) OPERATOR(pg_catalog.>) (SELECT pg_catalog.count(*) FROM o)"
									"         OR EXISTS (SELECT FROM o, o t WHERE t.part OPERATOR(pg_catalog.=) $4"
									"                       AND o.upper_bound OPERATOR(pg_catalog.>) t.upper_bound))",
									4, dtypes, dargs, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not list the old partitions of %s",
				 dbops_retention_relname(pol.relid));
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) || isnull)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("partition %s of %s is not wholly older than the cutoff, or is its last partition",
							dbops_retention_relname(target), dbops_retention_relname(pol.relid)),
					 errhint("Only range partitions whose upper bound is at or before the cutoff are detached, never the last one.")));

		sql = psprintf("ALTER TABLE %s DETACH PARTITION %s",
					   dbops_retention_relname(pol.relid), dbops_retention_relname(target));
		dbops_become_owner(dbops_retention_rel_owner(pol.relid), &ctx);
		ret = SPI_execute(sql, false, 0);
		if (ret != SPI_OK_UTILITY)
			elog(ERROR, "could not detach %s: %s", dbops_retention_relname(target),
				 SPI_result_code_string(ret));
		dbops_restore_user(&ctx);
		if (pol.drop_partitions)
		{
			sql = psprintf("DROP TABLE %s", dbops_retention_relname(target));
			dbops_become_owner(dbops_retention_rel_owner(target), &ctx);
			ret = SPI_execute(sql, false, 0);
			if (ret != SPI_OK_UTILITY)
				elog(ERROR, "could not drop %s: %s", dbops_retention_relname(target),
					 SPI_result_code_string(ret));
			dbops_restore_user(&ctx);
		}
		values[0] = Int64GetDatum(pol.drop_partitions ? 1 : 0);
		nulls[0] = false;
	}
	else
	{
		const char *mode;
		Oid			btypes[5] = {REGCLASSOID, NAMEOID, TEXTOID, BOOLOID, BOOLOID};
		Datum		bargs[5];
		bool		isnull;

		switch (action)
		{
			case PURGE_BOUND:
				mode = "bound";
				break;
			case PURGE_RANGE:
				mode = "range";
				break;
			case PURGE_SKIP_LOCKED:
				mode = "skip_locked";
				break;
			case PURGE_EXISTS:
				mode = "exists";
				break;
			default:
				mode = "preview";
				break;
		}
		bargs[0] = ObjectIdGetDatum(target);
		bargs[1] = DirectFunctionCall1(namein, CStringGetDatum(pol.time_column));
		bargs[2] = CStringGetTextDatum(mode);
		bargs[3] = BoolGetDatum(lower != NULL);
		bargs[4] = BoolGetDatum(upper != NULL);
		ret = SPI_execute_with_args("SELECT dbops._purge_batch_sql($1, $2, $3, $4, $5)",
									5, btypes, bargs, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not build the %s statement for %s", mode,
				 dbops_retention_relname(target));
		sql = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1, &isnull));

		switch (action)
		{
			case PURGE_BOUND:
			case PURGE_SKIP_LOCKED:
				/* $1 lower, $2 cutoff, $3 offset / limit */
				argtypes[0] = TEXTOID;
				args[0] = lower ? PointerGetDatum(lower) : (Datum) 0;
				argnulls[0] = lower ? ' ' : 'n';
				argtypes[1] = TIMESTAMPTZOID;
				args[1] = TimestampTzGetDatum(cutoff);
				argtypes[2] = INT8OID;
				args[2] = Int64GetDatum(n_rows);
				nargs = 3;
				break;
			case PURGE_RANGE:
				/* $1 lower, $2 upper, $3 cutoff */
				argtypes[0] = TEXTOID;
				args[0] = lower ? PointerGetDatum(lower) : (Datum) 0;
				argnulls[0] = lower ? ' ' : 'n';
				argtypes[1] = TEXTOID;
				args[1] = upper ? PointerGetDatum(upper) : (Datum) 0;
				argnulls[1] = upper ? ' ' : 'n';
				argtypes[2] = TIMESTAMPTZOID;
				args[2] = TimestampTzGetDatum(cutoff);
				nargs = 3;
				break;
			default:
				/* exists, preview: $1 cutoff */
				argtypes[0] = TIMESTAMPTZOID;
				args[0] = TimestampTzGetDatum(cutoff);
				nargs = 1;
				break;
		}

		dbops_become_owner(dbops_retention_rel_owner(target), &ctx);
		ret = SPI_execute_with_args(sql, nargs, argtypes, args, argnulls,
									read_only, 0);
		if (ret < 0)
			elog(ERROR, "could not run the %s step on %s: %s", mode,
				 dbops_retention_relname(target), SPI_result_code_string(ret));

		if (action == PURGE_RANGE)
		{
			values[0] = Int64GetDatum((int64) SPI_processed);
			nulls[0] = false;
		}
		else if (SPI_processed > 0)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			Datum		d;
			char	   *s;
			MemoryContext old;

			if (action == PURGE_EXISTS)
			{
				d = SPI_getbinval(tup, desc, 1, &isnull);
				values[0] = Int64GetDatum(!isnull && DatumGetBool(d) ? 1 : 0);
				nulls[0] = false;
			}
			else
			{
				/* bound: (value, ties); skip_locked, preview: (n, value[, value2]) */
				int			ncol = (action == PURGE_BOUND) ? 2 : 1;
				int			vcol = (action == PURGE_BOUND) ? 1 : 2;

				d = SPI_getbinval(tup, desc, ncol, &isnull);
				if (!isnull)
				{
					values[0] = Int64GetDatum(DatumGetInt64(d));
					nulls[0] = false;
				}
				old = MemoryContextSwitchTo(outer);
				s = SPI_getvalue(tup, desc, vcol);
				if (s)
				{
					values[1] = CStringGetTextDatum(s);
					nulls[1] = false;
				}
				if (action == PURGE_PREVIEW && (s = SPI_getvalue(tup, desc, 3)) != NULL)
				{
					values[2] = CStringGetTextDatum(s);
					nulls[2] = false;
				}
				MemoryContextSwitchTo(old);
			}
		}
		dbops_restore_user(&ctx);
	}

	AtEOXact_GUC(false, nestlevel);
	SPI_finish();

	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * dbops._retention_problem(relation regclass, created_by name, time_column
 * name, keep interval, max_run_time interval, OUT status text, OUT sqlstate
 * text, OUT message text, OUT hint text): why a policy on relation, made by
 * created_by, would be skipped or fail now (NULLs if it would not): its keep
 * or max_run_time is out of range (when given), the relation is gone, is not
 * a plain or partitioned table, is temporary, created_by lacks the
 * privileges of its owner, the time column is gone or not of a date/time
 * type.  Reads the catalogs only.
 */
PG_FUNCTION_INFO_V1(dbops_retention_problem);

Datum
dbops_retention_problem(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[RETENTION_PROBLEM_COLS] = {0};
	bool		nulls[RETENTION_PROBLEM_COLS] = {true, true, true, true};
	RetentionProblem problem;
	bool		ok = true;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc, RETENTION_PROBLEM_COLS);
	tupdesc = BlessTupleDesc(tupdesc);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation must not be NULL"),
				 errhint("Pass the relation of a retention policy.")));

	/* the limits first: they are what a purge computes with before it reads */
	ok = dbops_retention_limits_problem(PG_ARGISNULL(3) ? NULL : PG_GETARG_INTERVAL_P(3),
											PG_ARGISNULL(4) ? NULL : PG_GETARG_INTERVAL_P(4),
											&problem);
	if (ok)
		ok = dbops_retention_problem_of(PG_GETARG_OID(0),
										PG_ARGISNULL(1) ? NULL : NameStr(*PG_GETARG_NAME(1)),
										PG_ARGISNULL(2) ? NULL : NameStr(*PG_GETARG_NAME(2)),
										&problem);
	if (!ok)
	{
		values[0] = CStringGetTextDatum(problem.status);
		values[1] = CStringGetTextDatum(unpack_sql_state(problem.sqlerrcode));
		values[2] = CStringGetTextDatum(problem.message);
		values[3] = CStringGetTextDatum(problem.hint);
		nulls[0] = nulls[1] = nulls[2] = nulls[3] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * dbops._purge_relname(relation regclass, search_path text): relation's name
 * as regclass prints it under the caller's search_path (unqualified when
 * visible there).  The purge runs with search_path pinned but names tables
 * in its messages and in dbops.purge_runs the way the caller sees them;
 * printing a name only looks schemas up, it runs nothing.  A search_path
 * the server would not accept is ignored (the name is then qualified).
 */
PG_FUNCTION_INFO_V1(dbops_purge_relname);

Datum
dbops_purge_relname(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int			nestlevel = NewGUCNestLevel();
	char	   *name;

	/* a search_path that is not valid names the relation schema-qualified */
	(void) set_config_option("search_path", text_to_cstring(PG_GETARG_TEXT_PP(1)),
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, DEBUG1, false);
	name = DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(relid)));
	AtEOXact_GUC(false, nestlevel);
	PG_RETURN_TEXT_P(cstring_to_text(name));
}
