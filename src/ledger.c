/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Migration ledger: the parts that serve better in C than in SQL.
 *
 *	  - dbops.migration_checksum(): sha256 of a script with its line endings
 *		and trailing white space normalised;
 *	  - dbops._migration_record_failure(): records a failed attempt from a
 *		dynamic background worker in a transaction of its own, so that the
 *		event survives the rollback of the caller's transaction;
 *	  - the health check "migrations";
 *	  - the GUCs dbops.migration_allow_out_of_order and
 *		dbops.current_migration (the transaction-local marker the DDL event
 *		trigger reads).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "dbops.h"

bool		dbops_migration_allow_out_of_order = false;
static char *dbops_current_migration = NULL;

void
dbops_ledger_init(void)
{
	DefineCustomBoolVariable("dbops.migration_allow_out_of_order",
							 "Lets dbops.migrate() and dbops.migration_begin() apply a version older than an applied one.",
							 NULL,
							 &dbops_migration_allow_out_of_order,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("dbops.current_migration",
							   "Version of the migration open in the current transaction.",
							   "Set transaction-locally by dbops.migrate() and dbops.migration_begin(); "
							   "DDL run while it is set is recorded in dbops.migration_objects.",
							   &dbops_current_migration,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------
 * dbops.migration_checksum(script text)
 *
 * Line endings CRLF and CR become LF; spaces, tabs, form feeds and vertical
 * tabs at the end of every line are removed, and so are empty lines at the
 * end of the script.  The result is the lower-case hex sha256 of that text.
 * ------------------------------------------------------------------------
 */
static inline bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

PG_FUNCTION_INFO_V1(dbops_migration_checksum);

Datum
dbops_migration_checksum(PG_FUNCTION_ARGS)
{
	text	   *script = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(script);
	int			len = VARSIZE_ANY_EXHDR(script);
	StringInfoData buf;
	int			blank_start = -1;	/* start of pending trailing blanks */
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];

	initStringInfo(&buf);
	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '\r')
		{
			if (i + 1 < len && s[i + 1] == '\n')
				i++;
			c = '\n';
		}
		if (is_blank(c))
		{
			if (blank_start < 0)
				blank_start = i;
			continue;
		}
		if (c != '\n' && blank_start >= 0)
			appendBinaryStringInfo(&buf, s + blank_start, i - blank_start);
		blank_start = -1;
		appendStringInfoChar(&buf, c);
	}
	while (buf.len > 0 && buf.data[buf.len - 1] == '\n')
		buf.len--;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) buf.data, buf.len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256 digest: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	pfree(buf.data);

	hex_encode((const char *) digest, sizeof(digest), hex);
	hex[sizeof(hex) - 1] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

PG_FUNCTION_INFO_V1(dbops_ledger_in_transaction_block);

Datum
dbops_ledger_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock());
}

/* ------------------------------------------------------------------------
 * Failed attempts
 *
 * The caller's transaction is going to roll back, so a 'failed' event is
 * written by a dynamic background worker that connects to the same database
 * and commits it on its own.  The fields travel in a DSM segment.
 *
 * Two paths use it:
 *
 *	- dbops._migration_record_failure(), called by migrate() and friends
 *	  from their exception handler: the worker is started and waited for,
 *	  then the caller re-raises the error.
 *	- migration_begin() arms a segment for its transaction (the psql script
 *	  path, where dbops never sees the script's errors).  The emit_log_hook
 *	  copies the SQLSTATE and message of an error reported while that
 *	  migration is open; if the transaction then aborts, the abort callback
 *	  starts the worker without waiting (it cannot wait there).  That
 *	  segment is pinned, so that it outlives this backend, and the worker
 *	  unpins it.  Commit, or an abort without such an error, just drops it.
 * ------------------------------------------------------------------------
 */
enum
{
	LF_VERSION,
	LF_OPERATION,
	LF_CHECKSUM,
	LF_SQLSTATE,
	LF_MESSAGE,
	LF_USERNAME,
	LF_SESSION_USER,
	LF_APPLICATION_NAME,
	LF_CLIENT_ADDR,
	LF_NFIELDS
};

#define LEDGER_MESSAGE_MAX 1024

typedef struct LedgerFailure
{
	Oid			dboid;
	int			backend_pid;
	bool		pinned;			/* the worker unpins the segment */
	bool		recorded;		/* set by the worker after its commit */
	int			off[LF_NFIELDS];
	int			len[LF_NFIELDS];	/* -1: NULL */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} LedgerFailure;

/* the segment armed by migration_begin() for the current transaction */
static dsm_segment *armed_seg = NULL;
static LedgerFailure *armed = NULL;
static bool armed_has_error = false;
static bool ledger_callbacks_registered = false;
static emit_log_hook_type prev_emit_log_hook = NULL;

PGDLLEXPORT void dbops_ledger_event_worker(Datum main_arg);

void
dbops_ledger_event_worker(Datum main_arg)
{
	dsm_handle	handle = DatumGetUInt32(main_arg);
	dsm_segment *seg;
	LedgerFailure *lf;
	Datum		values[LF_NFIELDS + 1];
	char		nulls[LF_NFIELDS + 1];
	Oid			argtypes[LF_NFIELDS + 1];
	bool		pinned;
	int			ret;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(handle);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dbops ledger event writer could not map its dynamic shared memory segment")));
	lf = (LedgerFailure *) dsm_segment_address(seg);
	pinned = lf->pinned;

	BackgroundWorkerInitializeConnectionByOid(lf->dboid, BOOTSTRAP_SUPERUSERID, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();

	/* copy the fields out, so that a pinned segment can go at once */
	for (int i = 0; i < LF_NFIELDS; i++)
	{
		argtypes[i] = TEXTOID;
		if (lf->len[i] < 0)
		{
			values[i] = (Datum) 0;
			nulls[i] = 'n';
		}
		else
		{
			values[i] = PointerGetDatum(cstring_to_text_with_len(lf->data + lf->off[i], lf->len[i]));
			nulls[i] = ' ';
		}
	}
	argtypes[LF_NFIELDS] = INT4OID;
	values[LF_NFIELDS] = Int32GetDatum(lf->backend_pid);
	nulls[LF_NFIELDS] = ' ';
	if (pinned)
	{
		dsm_detach(seg);
		seg = NULL;
		dsm_unpin_segment(handle);
	}

	/* never wait long for a lock the caller might hold */
	SetConfigOption("lock_timeout", "5000", PGC_SUSET, PGC_S_OVERRIDE);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "recording a failed migration attempt");

	ret = SPI_execute_with_args("INSERT INTO dbops.migration_events "
								"(version, operation, checksum, sqlstate, message, "
								" username, \"session_user\", application_name, client_addr, "
								" backend_pid, event) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10, 'failed')",
								LF_NFIELDS + 1, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert into dbops.migration_events: %s",
			 SPI_result_code_string(ret));

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (seg != NULL)
	{
		pg_write_barrier();
		lf->recorded = true;
		dsm_detach(seg);
	}
	proc_exit(0);
}

/*
 * Create a segment holding the fields (the text arguments, NULL allowed)
 * with 'extra' spare bytes at the end; NULL when no segment is available.
 */
static dsm_segment *
ledger_failure_segment(text **fields, int backend_pid, Size extra)
{
	Size		size = offsetof(LedgerFailure, data) + extra;
	dsm_segment *seg;
	LedgerFailure *lf;
	int			pos = 0;

	for (int i = 0; i < LF_NFIELDS; i++)
		if (fields[i])
			size += VARSIZE_ANY_EXHDR(fields[i]);

	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return NULL;
	lf = (LedgerFailure *) dsm_segment_address(seg);
	lf->dboid = MyDatabaseId;
	lf->backend_pid = backend_pid;
	lf->pinned = false;
	lf->recorded = false;
	for (int i = 0; i < LF_NFIELDS; i++)
	{
		lf->off[i] = pos;
		if (fields[i] == NULL)
			lf->len[i] = -1;
		else
		{
			lf->len[i] = VARSIZE_ANY_EXHDR(fields[i]);
			memcpy(lf->data + pos, VARDATA_ANY(fields[i]), lf->len[i]);
			pos += lf->len[i];
		}
	}
	return seg;
}

static void
ledger_worker_struct(BackgroundWorker *worker, dsm_segment *seg, pid_t notify_pid)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "dbops");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "dbops_ledger_event_worker");
	snprintf(worker->bgw_name, BGW_MAXLEN, "dbops ledger event writer");
	snprintf(worker->bgw_type, BGW_MAXLEN, "dbops ledger event writer");
	worker->bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker->bgw_notify_pid = notify_pid;
}

/* May the current role write the events itself?  Warns when not. */
static bool
ledger_may_record(const char *version)
{
	Oid			nsp = get_namespace_oid("dbops", true);
	Oid			events = OidIsValid(nsp) ? get_relname_relid("migration_events", nsp) : InvalidOid;

	if (OidIsValid(events) &&
		pg_class_aclcheck(events, GetUserId(), ACL_INSERT) == ACLCHECK_OK)
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("failed attempt of migration %s not recorded in dbops.migration_events", version),
			 errdetail("Role \"%s\" may not insert into dbops.migration_events.",
					   GetUserNameFromId(GetUserId(), false))));
	return false;
}

static void
ledger_collect_args(FunctionCallInfo fcinfo, text **fields)
{
	for (int i = 0; i < LF_NFIELDS; i++)
		fields[i] = PG_ARGISNULL(i) ? NULL : PG_GETARG_TEXT_PP(i);
}

PG_FUNCTION_INFO_V1(dbops_migration_record_failure);

/*
 * dbops._migration_record_failure(version, operation, checksum, sqlstate,
 *		message, username, session_username, application_name, client_addr,
 *		backend_pid) returns boolean
 */
Datum
dbops_migration_record_failure(PG_FUNCTION_ARGS)
{
	text	   *fields[LF_NFIELDS];
	dsm_segment *seg;
	LedgerFailure *lf;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	bool		recorded;
	char	   *version;

	if (PG_ARGISNULL(0) || RecoveryInProgress())
		PG_RETURN_BOOL(false);
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!ledger_may_record(version))
		PG_RETURN_BOOL(false);

	ledger_collect_args(fcinfo, fields);
	seg = ledger_failure_segment(fields,
								 PG_ARGISNULL(LF_NFIELDS) ? MyProcPid : PG_GETARG_INT32(LF_NFIELDS),
								 0);
	if (seg == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("failed attempt of migration %s not recorded in dbops.migration_events", version),
				 errdetail("Too many dynamic shared memory segments are in use.")));
		PG_RETURN_BOOL(false);
	}
	lf = (LedgerFailure *) dsm_segment_address(seg);

	ledger_worker_struct(&worker, seg, MyProcPid);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("failed attempt of migration %s not recorded in dbops.migration_events", version),
				 errdetail("No background worker slot was free to record it."),
				 errhint("Raise max_worker_processes.")));
		PG_RETURN_BOOL(false);
	}

	status = WaitForBackgroundWorkerShutdown(handle);
	pg_read_barrier();
	recorded = lf->recorded;
	dsm_detach(seg);

	if (!recorded)
		ereport(WARNING,
				(errmsg("failed attempt of migration %s not recorded in dbops.migration_events", version),
				 errdetail(status == BGWH_POSTMASTER_DIED ?
						   "The postmaster died." :
						   "The background worker that writes it did not finish; see the server log.")));
	PG_RETURN_BOOL(recorded);
}

/* Drop the armed segment (commit, or abort without an error to record). */
static void
ledger_disarm(bool unpin)
{
	dsm_segment *seg = armed_seg;

	armed_seg = NULL;
	armed = NULL;
	armed_has_error = false;
	if (seg != NULL)
	{
		dsm_handle	h = dsm_segment_handle(seg);

		dsm_detach(seg);
		if (unpin)
			dsm_unpin_segment(h);
	}
}

static bool
ledger_armed_version_is_open(void)
{
	const char *cur = dbops_current_migration;
	int			len = armed->len[LF_VERSION];

	return cur != NULL && strlen(cur) == (size_t) len &&
		memcmp(cur, armed->data + armed->off[LF_VERSION], len) == 0;
}

/* Keep the SQLSTATE and message of an error raised inside the migration. */
static void
ledger_emit_log_hook(ErrorData *edata)
{
	if (armed != NULL && !armed_has_error && edata->elevel == ERROR &&
		ledger_armed_version_is_open())
	{
		const char *state = unpack_sql_state(edata->sqlerrcode);
		const char *msg = edata->message ? edata->message : "";
		int			msglen = strlen(msg);

		memcpy(armed->data + armed->off[LF_SQLSTATE], state, 5);
		armed->len[LF_SQLSTATE] = 5;
		if (msglen >= LEDGER_MESSAGE_MAX)
			msglen = pg_mbcliplen(msg, msglen, LEDGER_MESSAGE_MAX - 1);
		memcpy(armed->data + armed->off[LF_MESSAGE], msg, msglen);
		armed->len[LF_MESSAGE] = msglen;
		armed_has_error = true;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

static void
ledger_xact_callback(XactEvent event, void *arg)
{
	BackgroundWorker worker;

	if (armed_seg == NULL)
		return;
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (armed_has_error)
			{
				ledger_worker_struct(&worker, armed_seg, 0);
				if (RegisterDynamicBackgroundWorker(&worker, NULL))
				{
					ledger_disarm(false);	/* the worker unpins it */
					return;
				}
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("failed migration not recorded in dbops.migration_events"),
						 errdetail("No background worker slot was free to record it."),
						 errhint("Raise max_worker_processes.")));
			}
			ledger_disarm(true);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			ledger_disarm(true);
			break;
		default:
			break;
	}
}

/* An error rolled back with its savepoint did not fail the migration. */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		armed_has_error = false;
}

PG_FUNCTION_INFO_V1(dbops_migration_arm);

/*
 * dbops._migration_arm(version, operation, checksum, sqlstate, message,
 *		username, session_username, application_name, client_addr,
 *		backend_pid) returns boolean
 *
 * Called by migration_begin() once its migration is open: an error that
 * aborts this transaction while the migration is open becomes a 'failed'
 * event (written after the abort, asynchronously).
 */
Datum
dbops_migration_arm(PG_FUNCTION_ARGS)
{
	text	   *fields[LF_NFIELDS];
	dsm_segment *seg;

	if (PG_ARGISNULL(0) || RecoveryInProgress() || !IsTransactionBlock())
		PG_RETURN_BOOL(false);
	if (!ledger_may_record(text_to_cstring(PG_GETARG_TEXT_PP(0))))
		PG_RETURN_BOOL(false);

	if (!ledger_callbacks_registered)
	{
		RegisterXactCallback(ledger_xact_callback, NULL);
		RegisterSubXactCallback(ledger_subxact_callback, NULL);
		prev_emit_log_hook = emit_log_hook;
		emit_log_hook = ledger_emit_log_hook;
		ledger_callbacks_registered = true;
	}
	if (armed_seg != NULL)
		ledger_disarm(true);

	ledger_collect_args(fcinfo, fields);
	fields[LF_SQLSTATE] = NULL;
	fields[LF_MESSAGE] = NULL;
	seg = ledger_failure_segment(fields,
								 PG_ARGISNULL(LF_NFIELDS) ? MyProcPid : PG_GETARG_INT32(LF_NFIELDS),
								 5 + LEDGER_MESSAGE_MAX);
	if (seg == NULL)
		PG_RETURN_BOOL(false);

	armed = (LedgerFailure *) dsm_segment_address(seg);
	/* room for the SQLSTATE and the message at the end */
	armed->off[LF_SQLSTATE] = armed->off[LF_NFIELDS - 1] + Max(armed->len[LF_NFIELDS - 1], 0);
	armed->off[LF_MESSAGE] = armed->off[LF_SQLSTATE] + 5;
	armed->pinned = true;
	dsm_pin_mapping(seg);
	dsm_pin_segment(seg);
	armed_seg = seg;
	armed_has_error = false;
	PG_RETURN_BOOL(true);
}

/* ------------------------------------------------------------------------
 * Health check "migrations": versions whose last attempt failed (drift
 * included) and versions rolled back.
 * ------------------------------------------------------------------------
 */
void
dbops_check_migrations(DbopsCheckResult *res)
{
	int			ret;
	int			shown = 0;
	int			nfailed = 0;
	int			nrolled = 0;

	ret = SPI_execute("WITH last AS ("
					  "  SELECT DISTINCT ON (e.version) e.version, e.event, e.sqlstate, e.message"
					  "  FROM dbops.migration_events e"
					  "  ORDER BY e.version, e.event_id DESC) "
					  "SELECT l.version, CASE WHEN l.sqlstate = 'DB001' THEN 'drifted' ELSE 'failed' END,"
					  "       l.sqlstate, l.message"
					  "  FROM last l WHERE l.event = 'failed' "
					  "UNION ALL "
					  "SELECT m.version, 'rolled back', NULL, NULL"
					  "  FROM dbops.migrations m"
					  "  WHERE m.status = 'rolled_back'"
					  "    AND NOT EXISTS (SELECT 1 FROM last l"
					  "                    WHERE l.version = m.version AND l.event = 'failed') "
					  "ORDER BY 1",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the migration ledger: %s", SPI_result_code_string(ret));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *version = SPI_getvalue(tup, desc, 1);
		char	   *problem = SPI_getvalue(tup, desc, 2);
		char	   *sqlstate = SPI_getvalue(tup, desc, 3);

		CHECK_FOR_INTERRUPTS();

		if (strcmp(problem, "rolled back") == 0)
			nrolled++;
		else
			nfailed++;
		if (shown++ < 10)
		{
			appendStringInfo(&res->detail, "%s%s %s", shown > 1 ? "; " : "", version, problem);
			if (sqlstate)
				appendStringInfo(&res->detail, " (%s: %s)", sqlstate,
								 SPI_getvalue(tup, desc, 4));
		}
	}
	if (shown > 10)
		appendStringInfo(&res->detail, "; and %d more", shown - 10);
	if (shown == 0)
		appendStringInfoString(&res->detail, "no failed, drifted or rolled back migration");

	dbops_check_value(res, (double) (nfailed + nrolled), "versions");
	if (nfailed > 0)
		appendStringInfoString(&res->hint,
							   "See SELECT * FROM dbops.migration_status() WHERE last_event = 'failed'; "
							   "fix and re-run the failed version, or acknowledge it with dbops.migration_repair(version, checksum).");
	else
		appendStringInfoString(&res->hint,
							   "Rolled back versions are pending again: re-apply them or remove them from the release.");
}
