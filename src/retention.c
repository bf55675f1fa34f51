/*-------------------------------------------------------------------------
 *
 * retention.c
 *	  Retention purges: the GUCs, the guards CALL dbops.purge() needs from C
 *	  (standby, transaction block, per-policy advisory lock released on
 *	  abort) and the "retention" health check.  The purge loop itself is
 *	  PL/pgSQL in retention.sql (dbops.purge() runs its phases,
 *	  dbops._purge_<phase>(), committing between them); the statements that read or change a
 *	  policy's table run as its owner in retention_exec.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "catalog/pg_type.h"
#include "storage/lmgr.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"
#include "retention_exec.h"

/*
 * First key of the session advisory lock a purge holds on a policy (the
 * second is the policy id): visible in pg_locks as classid 1684172914,
 * objid = policy_id, objsubid 2.
 */
#define DBOPS_PURGE_LOCK_KEY	1684172914	/* 'dbpr' */

int			dbops_purge_batch_target = 200;
int			dbops_purge_batch_max = 100000;
int			dbops_purge_lock_timeout = 100;
int			dbops_purge_lock_retries = 10;
int			dbops_purge_max_replica_lag = 10000;
static int			dbops_purge_runs_keep = 90 * 86400;
static int			dbops_retention_slack = 86400;
static double		dbops_purge_yield = 1.0;

/* Policy whose advisory lock this session holds for a purge, 0 if none. */
static int32 purge_locked_policy = 0;

static void retention_xact_callback(XactEvent event, void *arg);

void
dbops_retention_init(void)
{
	DefineCustomIntVariable("dbops.purge_batch_target",
							"Target duration of one purge batch.",
							"CALL dbops.purge() grows or shrinks the batch size so that a batch takes about this long.",
							&dbops_purge_batch_target,
							200, 1, 60000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.purge_batch_max",
							"Largest number of rows one purge batch may delete.",
							NULL,
							&dbops_purge_batch_max,
							100000, 1, 10000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.purge_lock_timeout",
							"lock_timeout of each purge batch.",
							"A batch that cannot get its locks within this time is rolled back and retried later.",
							&dbops_purge_lock_timeout,
							100, 1, 60000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.purge_lock_retries",
							"How many times in a row a purge retries a batch that could not get its locks.",
							"After that many failed attempts the policy's run ends as partial.",
							&dbops_purge_lock_retries,
							10, 0, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomRealVariable("dbops.purge_yield",
							 "How much a purge yields to other sessions running queries.",
							 "While other client sessions are active, a purge sleeps this many times the duration of each batch after it; 0 never yields.",
							 &dbops_purge_yield,
							 1.0, 0.0, 100.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.purge_max_replica_lag",
							"Replay lag of a streaming standby above which a purge pauses between batches.",
							"0 disables the guard.",
							&dbops_purge_max_replica_lag,
							10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.purge_runs_keep",
							"How long finished rows of dbops.purge_runs are kept.",
							"Each CALL dbops.purge() deletes older ones.",
							&dbops_purge_runs_keep,
							90 * 86400, 60, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.retention_slack",
							"How far past its keep a policy may fall before the retention health check reports it.",
							NULL,
							&dbops_retention_slack,
							86400, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	RegisterXactCallback(retention_xact_callback, NULL);
}

/*
 * A purge that errors out (cancel, statement_timeout, a bug) ends the
 * top-level transaction: release the policy's session lock there, or the
 * session would keep every later purge of that policy out.
 */
static void
retention_xact_callback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) &&
		purge_locked_policy != 0)
	{
		int32		policy = purge_locked_policy;

		purge_locked_policy = 0;
		(void) DirectFunctionCall2(pg_advisory_unlock_int4,
								   Int32GetDatum(DBOPS_PURGE_LOCK_KEY),
								   Int32GetDatum(policy));
	}
}

/*
 * dbops._purge_begin(dry_run boolean): the first thing CALL dbops.purge()
 * does.  Refuses what cannot work (a standby, a transaction block) and
 * returns the settings, so the procedure sees them even when this session
 * had not loaded the library before.
 */
PG_FUNCTION_INFO_V1(dbops_purge_begin);

/* the columns of dbops._purge_begin() */
#define PURGE_BEGIN_COLS 8

Datum
dbops_purge_begin(PG_FUNCTION_ARGS)
{
	bool		dry_run = PG_ARGISNULL(0) ? false : PG_GETARG_BOOL(0);
	TupleDesc	tupdesc;
	Datum		values[PURGE_BEGIN_COLS];
	bool		nulls[PURGE_BEGIN_COLS] = {0};

	if (!dry_run && RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot purge on a server in recovery"),
				 errdetail("CALL dbops.purge() deletes rows and records its runs."),
				 errhint("Run it on the primary; deletions reach the standbys by replication. dry_run => true works here.")));

	if (!dry_run && IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("CALL dbops.purge() cannot run inside a transaction block"),
				 errdetail("It commits after each batch."),
				 errhint("Run CALL dbops.purge() on its own, outside BEGIN ... COMMIT and not from a function.")));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc, PURGE_BEGIN_COLS);
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = Int32GetDatum(dbops_purge_batch_target);
	values[1] = Int32GetDatum(dbops_purge_batch_max);
	values[2] = Int32GetDatum(dbops_purge_lock_timeout);
	values[3] = Int32GetDatum(dbops_purge_lock_retries);
	values[4] = Int32GetDatum(dbops_purge_max_replica_lag);
	values[5] = Int32GetDatum(dbops_purge_runs_keep);
	values[6] = Int32GetDatum(MyProcPid);
	values[7] = Float8GetDatum(dbops_purge_yield);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * dbops._purge_busy_sessions(): how many other client backends are running
 * a query or are inside a transaction right now.  A purge yields to them.
 * Reads the local snapshot of backend status, so it needs no privilege and
 * reveals nothing but a count.
 */
PG_FUNCTION_INFO_V1(dbops_purge_busy_sessions);

Datum
dbops_purge_busy_sessions(PG_FUNCTION_ARGS)
{
	int			nbackends;
	int			busy = 0;

	/* a fresh look each time: drop the snapshot taken by a previous call */
	pgstat_clear_backend_activity_snapshot();
	nbackends = pgstat_fetch_stat_numbackends();

	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = dbops_local_beentry(i);
		PgBackendStatus *be;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_backendType != B_BACKEND || be->st_procpid == MyProcPid)
			continue;
		if (be->st_state == STATE_RUNNING ||
			be->st_state == STATE_FASTPATH ||
			be->st_state == STATE_IDLEINTRANSACTION)
			busy++;
	}
	PG_RETURN_INT32(busy);
}

/*
 * Under a 1.0 catalog, CALL dbops.purge() computes the policy's cutoff in SQL
 * right after taking its lock, and a keep 1.0 accepted but no timestamp can
 * hold fails it with a bare "timestamp out of range".  Refuse such a policy
 * here instead, naming it (1.1 checks its limits itself and skips it).
 */
static void
purge_check_old_policy(int32 policy)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(policy)};
	RetentionProblem problem;

	SPI_connect();
	if (SPI_execute_with_args("SELECT p.keep, p.relation::pg_catalog.text "
							  "FROM dbops.retention_policies p "
							  "WHERE p.policy_id OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		keep = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull && !dbops_retention_limits_problem(DatumGetIntervalP(keep), NULL, &problem))
		{
			char	   *rel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			ereport(ERROR,
					(errcode(problem.sqlerrcode),
					 errmsg("retention policy %d on %s cannot be purged: %s",
							policy, dbops_bounded(rel, DBOPS_ECHO_CHARS), problem.message),
					 errhint("Set a shorter keep with dbops.alter_retention_policy(); %s "
							 "(1.1 skips such a policy and purges the others).",
							 DBOPS_OUTDATED_HINT)));
		}
	}
	SPI_finish();
}

/*
 * dbops._purge_lock(policy_id int): take the policy's session advisory lock
 * without waiting; false when another session holds it.  Under an outdated
 * catalog it first refuses a policy 1.0's SQL could not purge.
 */
PG_FUNCTION_INFO_V1(dbops_purge_lock);

Datum
dbops_purge_lock(PG_FUNCTION_ARGS)
{
	int32		policy = PG_GETARG_INT32(0);
	bool		got;

	if (dbops_catalog_outdated())
		purge_check_old_policy(policy);

	if (purge_locked_policy != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this session already holds the purge lock of policy %d",
						purge_locked_policy),
				 errhint("CALL dbops.purge() takes and releases these locks itself, one policy at a time; let it finish, or end the session.")));

	got = DatumGetBool(DirectFunctionCall2(pg_try_advisory_lock_int4,
										   Int32GetDatum(DBOPS_PURGE_LOCK_KEY),
										   Int32GetDatum(policy)));
	if (got)
		purge_locked_policy = policy;
	PG_RETURN_BOOL(got);
}

/* dbops._purge_unlock(policy_id int) */
PG_FUNCTION_INFO_V1(dbops_purge_unlock);

Datum
dbops_purge_unlock(PG_FUNCTION_ARGS)
{
	int32		policy = PG_GETARG_INT32(0);

	if (purge_locked_policy != policy)
		PG_RETURN_BOOL(false);
	purge_locked_policy = 0;
	PG_RETURN_DATUM(DirectFunctionCall2(pg_advisory_unlock_int4,
										Int32GetDatum(DBOPS_PURGE_LOCK_KEY),
										Int32GetDatum(policy)));
}

/*
 * Whether policy's table has rows older than keep + slack, read as the
 * table's owner in a subtransaction, so that whatever the owner's table
 * does (an error in its row security policy, an index function) is that
 * policy's note instead of failing the check for every policy.  Returns
 * NULL (and *behind) when read, else why not.  A cancel is passed on, after
 * the subtransaction is rolled back.
 */
static char *
retention_read_behind(Oid relid, const char *column, Datum cutoff, bool *behind)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *why = NULL;

	*behind = false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		StringInfoData sql;
		Oid			types[1] = {TIMESTAMPTZOID};
		Datum		args[1] = {cutoff};
		DbopsUserContext ctx;
		bool		isnull;
		int			ret;

		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT EXISTS (SELECT FROM %s WHERE %s OPERATOR(pg_catalog.<) $1)",
						 dbops_retention_relname(relid), quote_identifier(column));
		dbops_become_owner(dbops_retention_rel_owner(relid), &ctx);
		ret = SPI_execute_with_args(sql.data, 1, types, args, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not read %s: %s", dbops_retention_relname(relid),
							SPI_result_code_string(ret))));
		*behind = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		dbops_restore_user(&ctx);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		/* a cancel (the user's, statement_timeout, the check's timeout) ends the check */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		{
			StringInfoData buf;

			initStringInfo(&buf);
			appendStringInfoString(&buf, "not checked: ");
			dbops_append_clipped(&buf, edata->message, 200);
			why = buf.data;
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return why;
}

/*
 * retention: enabled policies that are behind (rows older than keep +
 * dbops.retention_slack), whose last run failed, was skipped or was
 * interrupted (also one still marked running whose session no longer holds
 * the policy's purge lock: it was cancelled, failed or crashed), that the
 * purge would refuse now (keep or max_run_time out of range, the relation
 * is no longer a table, is temporary, the policy's creator lost the owner's
 * privileges), or that have never run although they exist for longer than
 * the slack.  The value is the number of such policies.
 *
 * Whether a policy is behind is read from its table as the table's owner in
 * a security-restricted operation, after locking it and checking again what
 * it is: a table turned into a view is never read.  The lock is not waited
 * for: a table another session holds locked (ALTER TABLE, VACUUM FULL...)
 * is not read and is counted in the detail.  Relations are named
 * schema-qualified, whatever the caller's search_path.
 */
void
dbops_check_retention(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr run_plan = NULL;
	uint64		npolicies;
	int			problems = 0;
	int			unreadable = 0;
	int			locked = 0;
	char		slack[32];
	Oid			argtypes[2] = {INTERVALOID, OIDOID};
	Datum		args[2];
	Datum		now;
	Datum		slack_iv;
	SPITupleTable *policies;

	snprintf(slack, sizeof(slack), "%d seconds", dbops_retention_slack);
	slack_iv = DirectFunctionCall3(interval_in, CStringGetDatum(slack),
								   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	args[0] = slack_iv;
	args[1] = ObjectIdGetDatum((Oid) DBOPS_PURGE_LOCK_KEY);
	now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	policies = dbops_kept_query_args(&plan,
									 "SELECT p.relation::pg_catalog.oid, p.time_column, p.keep, p.created_by,"
									 "       c.oid IS NOT NULL AS present,"
									 "       c.oid IS NOT NULL AND pg_catalog.has_table_privilege(c.oid, 'SELECT') AS readable,"
									 "       r.status, r.sqlstate, r.message,"
									 "       r.status IS NULL"
									 "         AND p.created OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1) AS never_run,"
									 "       p.max_run_time, r.run_id, r.pid,"
									 "       EXISTS (SELECT FROM pg_catalog.pg_locks l"
									 "                WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'"
									 "                  AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d"
									 "                                                          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
									 "                  AND l.classid OPERATOR(pg_catalog.=) $2"
									 "                  AND l.objid OPERATOR(pg_catalog.=) p.policy_id::pg_catalog.oid"
									 "                  AND l.objsubid OPERATOR(pg_catalog.=) 2::pg_catalog.int2"
									 "                  AND l.granted) AS purging"
									 "  FROM dbops.retention_policies p"
									 "  LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relation"
									 "  LEFT JOIN LATERAL (SELECT r.run_id, r.status, r.sqlstate, r.message, r.pid FROM dbops.purge_runs r"
									 "                      WHERE r.policy_id OPERATOR(pg_catalog.=) p.policy_id"
									 "                      ORDER BY r.started DESC, r.run_id DESC LIMIT 1) r ON true"
									 " WHERE p.enabled"
									 " ORDER BY p.policy_id",
									 2, argtypes, args, true);
	npolicies = SPI_processed;

	for (uint64 i = 0; i < npolicies; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(dbops_col_datum(policies, i, 1, &isnull));
		char	   *column = dbops_col_cstring(policies, i, 2);
		Datum		keep = dbops_col_datum(policies, i, 3, &isnull);
		char	   *created_by = dbops_col_cstring(policies, i, 4);
		bool		present = dbops_col_bool(policies, i, 5);
		bool		readable = dbops_col_bool(policies, i, 6);
		char	   *status = dbops_col_cstring(policies, i, 7);
		char	   *sqlstate = dbops_col_cstring(policies, i, 8);
		char	   *message = dbops_col_cstring(policies, i, 9);
		bool		never_run = dbops_col_bool(policies, i, 10);
		Datum		max_run_time = dbops_col_datum(policies, i, 11, &isnull);
		bool		no_cap = isnull;
		Datum		run_id = dbops_col_datum(policies, i, 12, &isnull);
		char	   *run_pid = dbops_col_cstring(policies, i, 13);
		bool		purging = dbops_col_bool(policies, i, 14);
		char	   *relname = dbops_retention_relname(relid);
		const char *problem = NULL;
		RetentionProblem refusal;
		StringInfoData why;

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&why);

		/* a still running run whose session no longer holds the lock */
		if (status && strcmp(status, "running") == 0 && !purging)
		{
			Oid			rtypes[1] = {INT8OID};
			Datum		rargs[1] = {run_id};
			SPITupleTable *run;

			/* it may just have finished: look again, with a new snapshot */
			run = dbops_kept_query_args(&run_plan,
										"SELECT r.status, r.sqlstate, r.message FROM dbops.purge_runs r"
										" WHERE r.run_id OPERATOR(pg_catalog.=) $1",
										1, rtypes, rargs, false);
			if (SPI_processed == 1)
			{
				status = dbops_col_cstring(run, 0, 1);
				sqlstate = dbops_col_cstring(run, 0, 2);
				message = dbops_col_cstring(run, 0, 3);
			}
			if (status && strcmp(status, "running") == 0)
			{
				status = "interrupted";
				sqlstate = NULL;
				message = psprintf("backend %s no longer runs it (cancel, error or crash); the next purge marks it",
								   run_pid ? run_pid : "?");
			}
		}

		if (!dbops_retention_limits_problem(DatumGetIntervalP(keep),
											no_cap ? NULL : DatumGetIntervalP(max_run_time),
											&refusal))
			problem = refusal.message;
		else if (!present)
			problem = "relation no longer exists";
		else if (!dbops_retention_problem_of(relid, created_by, column, &refusal))
			problem = refusal.message;
		else if (status && (strcmp(status, "failed") == 0 ||
							strcmp(status, "skipped") == 0 ||
							strcmp(status, "interrupted") == 0))
		{
			appendStringInfo(&why, "last run %s", status);
			if (sqlstate)
				appendStringInfo(&why, " (%s)", sqlstate);
			if (message)
			{
				appendStringInfoString(&why, ": ");
				dbops_append_clipped(&why, message, 200);
			}
			problem = why.data;
		}
		else if (never_run)
			problem = "never run";

		if (problem == NULL && present)
		{
			if (!readable)
				unreadable++;
			else if (!ConditionalLockRelationOid(relid, AccessShareLock))
				locked++;
			else
			{
				/* locked: look again at what is locked */
				if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
					problem = "relation no longer exists";
				else if (!dbops_retention_problem_of(relid, created_by, column, &refusal))
					problem = refusal.message;
				else
				{
					bool		behind;
					Datum		cutoff;

					/* in range: keep and the slack are bounded */
					cutoff = DirectFunctionCall2(timestamptz_mi_interval,
												 DirectFunctionCall2(timestamptz_mi_interval,
																	 now, keep),
												 slack_iv);
					problem = retention_read_behind(relid, column, cutoff, &behind);
					if (problem == NULL && behind)
						problem = "behind: rows older than keep + slack";
				}
			}
		}

		/* detail was allocated by the engine; repalloc keeps its context */
		if (problem)
		{
			appendStringInfo(&res->detail, "%s%s: %s", problems ? "; " : "",
							 relname, problem);
			problems++;
		}
	}

	if (problems == 0 && unreadable > 0 && unreadable == npolicies)
	{
		dbops_check_skip(res, "cannot read the %d table(s) under retention policies",
						 unreadable);
		return;
	}

	dbops_check_value(res, problems, "policies");
	if (problems == 0)
		appendStringInfo(&res->detail, "%d enabled polic%s up to date",
						 (int) (npolicies - unreadable - locked),
						 npolicies - unreadable - locked == 1 ? "y" : "ies");
	if (unreadable > 0)
		appendStringInfo(&res->detail, "; %d polic%s not checked: no SELECT privilege on the table",
						 unreadable, unreadable == 1 ? "y" : "ies");
	if (locked > 0)
		appendStringInfo(&res->detail, "; %d polic%s not checked: the table is locked by another session",
						 locked, locked == 1 ? "y" : "ies");
	appendStringInfoString(&res->hint,
						   "Look at dbops.purge_runs for the policy's last runs, then CALL dbops.purge(relation); schedule it if it is not.");
}
