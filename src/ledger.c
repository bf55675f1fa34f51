/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Migration ledger: the parts that serve better in C than in SQL.
 *
 *	  - dbops.migration_checksum(): sha256 of a script with its line endings
 *		and trailing white space normalised;
 *	  - the entry points that write the ledger or run a migration script
 *		(migrate, migration_begin, migration_pending, migration_rollback,
 *		migration_baseline, migration_repair, migration_import): they check
 *		their arguments, take the ledger lock, record failed attempts, open
 *		the DDL capture, and call the PL/pgSQL implementations
 *		(dbops._migrate() and friends, search_path pinned) directly;
 *	  - the failed-attempt writer: a dynamic background worker that commits
 *		a 'failed' event in a transaction of its own, so that the event
 *		survives the rollback of the caller's transaction;
 *	  - the DDL capture state: which version, if any, the ledger opened in
 *		this transaction (dbops._migration_capture_version(), read by the
 *		event trigger);
 *	  - the health check "migrations";
 *	  - the GUCs dbops.migration_allow_out_of_order and
 *		dbops.current_migration (which shows the open version).
 *
 * Privileges and search_path.  The implementations are revoked from PUBLIC
 * and called through fmgr, which checks no EXECUTE privilege: a role needs
 * EXECUTE only on the entry point it calls.  Every implementation pins
 * search_path = pg_catalog, pg_temp.  migrate() and migration_rollback()
 * run the caller's script, which must see the caller's search_path: they
 * carry no SET clause, read the caller's search_path here and hand it to the
 * implementation, which applies it only around the EXECUTE of the script.
 * Nothing these two do in C depends on search_path (catalog look-ups by
 * schema-qualified name and type OIDs, functions called directly).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/pg_prng.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "dbops.h"
#include "healthkit.h"

static bool		dbops_migration_allow_out_of_order = false;
static int	migration_lock_timeout = 3000;	/* ms; 0: the session's */
static int	migration_lock_retries = 5;
static int	migration_retry_delay = 1000;	/* ms */
static char *dbops_current_migration = NULL;

/* the ledger lock: transaction-scoped advisory lock ('dbop', 1) */
#define LEDGER_LOCK_KEY1	1684172656
#define LEDGER_LOCK_KEY2	1

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
	DefineCustomIntVariable("dbops.migration_lock_timeout",
							"lock_timeout of a migration's statements (dbops.migrate(), and the transaction of dbops.migration_begin()).",
							"0 leaves the session's lock_timeout; a session's lower one is kept.",
							&migration_lock_timeout, 3000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.migration_lock_retries",
							"How many times dbops.migrate() tries a migration again after its lock_timeout.",
							NULL, &migration_lock_retries, 5, 0, 1000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("dbops.migration_retry_delay",
							"Pause before dbops.migrate()'s first retry; it doubles with each retry, up to a minute, with jitter.",
							NULL, &migration_retry_delay, 1000, 1, 60000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("dbops.current_migration",
							   "Version of the migration open in the current transaction.",
							   "Set transaction-locally by dbops.migrate(), dbops.migration_rollback() "
							   "and dbops.migration_begin() to show the open version; setting it by hand "
							   "records nothing.",
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

static text *
ledger_checksum(text *script)
{
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
	return cstring_to_text(hex);
}

PG_FUNCTION_INFO_V1(dbops_migration_checksum);

Datum
dbops_migration_checksum(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(ledger_checksum(PG_GETARG_TEXT_PP(0)));
}

/* ------------------------------------------------------------------------
 * What the ledger records, and how much of an input a message quotes
 *
 * Every field the ledger writes is checked before anything is written, so
 * that no row can later break a reader: a version is 1 to
 * LEDGER_VERSION_MAX bytes without control characters and without white
 * space at either end (so migration_version_key() can always order it, and
 * the events, the health check and migration_status() can always print it);
 * a description has at most LEDGER_DESCRIPTION_MAX characters; requires is
 * a one-dimensional array of at most LEDGER_REQUIRES_MAX such versions; a
 * message recorded with a failed attempt is cut to LEDGER_MESSAGE_MAX - 1
 * bytes.  Messages quote at most LEDGER_ECHO_MAX characters of an input.
 * ------------------------------------------------------------------------
 */
#define LEDGER_VERSION_MAX		256
#define LEDGER_DESCRIPTION_MAX	1000
#define LEDGER_REQUIRES_MAX		1000
#define LEDGER_MESSAGE_MAX		1024
#define LEDGER_ECHO_MAX			64

#define LEDGER_VERSION_HINT \
	"A version is 1 to 256 bytes without control characters and without white space at either end, such as '0015' or '2.1'."

/* the first LEDGER_ECHO_MAX characters of an input, for messages */
static char *
ledger_echo_len(const char *s, int len)
{
	return dbops_echo(s, len, LEDGER_ECHO_MAX);
}

static char *
ledger_echo(const char *s)
{
	return dbops_echo(s, -1, LEDGER_ECHO_MAX);
}

static inline bool
ledger_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * Why v (len bytes) is not a version the ledger records, or NULL when it
 * is one.
 */
static char *
ledger_version_problem(const char *v, int len)
{
	if (len == 0)
		return pstrdup("It is empty.");
	if (len > LEDGER_VERSION_MAX)
		return psprintf("It is %d bytes long; a version has at most %d.",
						len, LEDGER_VERSION_MAX);
	if (ledger_is_space((unsigned char) v[0]) || ledger_is_space((unsigned char) v[len - 1]))
		return pstrdup("It starts or ends with white space.");
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) v[i];

		if (c < 0x20 || c == 0x7f)
			return psprintf("It contains the control character \\x%02x at byte %d.", c, i + 1);
	}
	return NULL;
}

/* dbops._ledger_in_transaction_block() of dbops 1.0 */
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
 *	- the entry points run their checks (and migrate()/migration_rollback()
 *	  the script) in a subtransaction; when it fails they start the worker,
 *	  wait for it, then re-raise the error;
 *	- migration_begin() arms a segment for its transaction (the psql script
 *	  path, where dbops never sees the script's errors).  The emit_log_hook
 *	  copies the SQLSTATE and message of an error reported while that
 *	  migration is open; if the transaction then aborts, the abort callback
 *	  starts the worker without waiting (it cannot wait there).  That
 *	  segment is pinned, so that it outlives this backend, and the worker
 *	  unpins it.  Commit, or an abort without such an error, just drops it.
 *
 * The worker connects as the bootstrap superuser, with its database's and
 * role's settings applied: it pins its own search_path before its one query,
 * which names everything by schema.
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

typedef struct LedgerFailure
{
	Oid			dboid;
	int			backend_pid;
	bool		pinned;			/* the worker unpins the segment */
	bool		recorded;		/* set by the worker after its commit */
	bool		retry;			/* a retry after lock_timeout, not a failure */
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

/*
 * DDL capture: the version whose DDL dbops._migration_capture_ddl() records
 * now, set only by the ledger's own entry points (migrate() and
 * migration_rollback() for their call, migration_begin() for the rest of
 * its transaction), never by a setting a session can change.  Kept in
 * TopTransactionContext; capture_subid is the subtransaction that opened
 * it, whose abort closes it.
 */
static char *capture_version = NULL;
static SubTransactionId capture_subid = InvalidSubTransactionId;

PGDLLEXPORT void dbops_ledger_event_worker(Datum main_arg);

void
dbops_ledger_event_worker(Datum main_arg)
{
	dsm_handle	handle = DatumGetUInt32(main_arg);
	dsm_segment *seg;
	LedgerFailure *lf;
	Datum		values[LF_NFIELDS + 2];
	char		nulls[LF_NFIELDS + 2];
	Oid			argtypes[LF_NFIELDS + 2];
	bool		pinned;
	int			ret;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(handle);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dbops ledger event writer could not map its dynamic shared memory segment"),
				 errhint("The backend that started it was gone before it attached; its failed attempt is not recorded.")));
	lf = (LedgerFailure *) dsm_segment_address(seg);
	pinned = lf->pinned;

	BackgroundWorkerInitializeConnectionByOid(lf->dboid, BOOTSTRAP_SUPERUSERID, 0);
	/* the database owner controls ALTER DATABASE ... SET search_path */
	dbops_worker_pin_search_path();

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
	argtypes[LF_NFIELDS + 1] = TEXTOID;
	values[LF_NFIELDS + 1] = CStringGetTextDatum(lf->retry ? "retry" : "failed");
	nulls[LF_NFIELDS + 1] = ' ';
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
	pgstat_report_activity(STATE_RUNNING, "recording a migration attempt");

	ret = SPI_execute_with_args("INSERT INTO dbops.migration_events "
								"(version, operation, checksum, sqlstate, message, "
								" username, \"session_user\", application_name, client_addr, "
								" backend_pid, event) "
								"VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.name, $7::pg_catalog.name, "
								" $8, $9::pg_catalog.inet, $10, $11)",
								LF_NFIELDS + 2, argtypes, values, nulls, false, 0);
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
	int			flen[LF_NFIELDS];

	/*
	 * The version was checked by the caller; every other field is cut to
	 * LEDGER_MESSAGE_MAX - 1 bytes (the 1.0 functions pass what they are
	 * given).
	 */
	for (int i = 0; i < LF_NFIELDS; i++)
	{
		flen[i] = -1;
		if (fields[i] == NULL)
			continue;
		flen[i] = VARSIZE_ANY_EXHDR(fields[i]);
		if (i != LF_VERSION && flen[i] >= LEDGER_MESSAGE_MAX)
			flen[i] = pg_mbcliplen(VARDATA_ANY(fields[i]), flen[i], LEDGER_MESSAGE_MAX - 1);
		size += flen[i];
	}

	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return NULL;
	lf = (LedgerFailure *) dsm_segment_address(seg);
	lf->dboid = MyDatabaseId;
	lf->backend_pid = backend_pid;
	lf->pinned = false;
	lf->recorded = false;
	lf->retry = false;
	for (int i = 0; i < LF_NFIELDS; i++)
	{
		lf->off[i] = pos;
		lf->len[i] = flen[i];
		if (flen[i] > 0)
		{
			memcpy(lf->data + pos, VARDATA_ANY(fields[i]), flen[i]);
			pos += flen[i];
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
	Oid			events = dbops_relid("migration_events");

	if (OidIsValid(events) &&
		pg_class_aclcheck(events, GetUserId(), ACL_INSERT) == ACLCHECK_OK)
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("failed attempt of migration %s not recorded in dbops.migration_events",
					ledger_echo(version)),
			 errdetail("Role \"%s\" may not insert into dbops.migration_events.",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("Grant the deploying role INSERT on dbops.migration_events and USAGE on its sequence, as the README shows.")));
	return false;
}

static text *
cstring_to_text_or_null(const char *s)
{
	return s ? cstring_to_text(s) : NULL;
}

/*
 * Who and where: current_user, session_user, application_name and the
 * client address (NULL for a Unix-domain socket), as the columns' defaults
 * would have them.
 */
static void
ledger_fill_who(text **fields)
{
	LOCAL_FCINFO(fc, 0);
	Datum		addr;

	fields[LF_USERNAME] = cstring_to_text(GetUserNameFromId(GetUserId(), false));
	fields[LF_SESSION_USER] = cstring_to_text(GetUserNameFromId(GetSessionUserId(), false));
	fields[LF_APPLICATION_NAME] = cstring_to_text_or_null(application_name);

	InitFunctionCallInfoData(*fc, NULL, 0, InvalidOid, NULL, NULL);
	addr = inet_client_addr(fc);
	fields[LF_CLIENT_ADDR] = fc->isnull ? NULL :
		cstring_to_text(DatumGetCString(DirectFunctionCall1(inet_out, addr)));
}

/*
 * Start the worker for these fields and wait for it: it records a failed
 * attempt, or with retry a retry.  Returns whether the event was committed;
 * warns when it could not be.
 */
static bool
ledger_record(text **fields, int backend_pid, bool retry)
{
	dsm_segment *seg;
	LedgerFailure *lf;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	bool		recorded;
	char	   *version = text_to_cstring(fields[LF_VERSION]);
	const char *what = retry ? "retry" : "failed attempt";

	if (RecoveryInProgress() || !ledger_may_record(version))
		return false;

	seg = ledger_failure_segment(fields, backend_pid, 0);
	if (seg == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("%s of migration %s not recorded in dbops.migration_events",
						what, ledger_echo(version)),
				 errdetail("Too many dynamic shared memory segments are in use."),
				 errhint("Try again when fewer sessions are running parallel queries, or raise max_connections.")));
		return false;
	}
	lf = (LedgerFailure *) dsm_segment_address(seg);
	lf->retry = retry;

	ledger_worker_struct(&worker, seg, MyProcPid);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("%s of migration %s not recorded in dbops.migration_events",
						what, ledger_echo(version)),
				 errdetail("No background worker slot was free to record it."),
				 errhint("Raise max_worker_processes.")));
		return false;
	}

	status = WaitForBackgroundWorkerShutdown(handle);
	pg_read_barrier();
	recorded = lf->recorded;
	dsm_detach(seg);

	if (!recorded)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s of migration %s not recorded in dbops.migration_events",
						what, ledger_echo(version)),
				 errdetail(status == BGWH_POSTMASTER_DIED ?
						   "The postmaster died." :
						   "The background worker that writes it did not finish."),
				 errhint("See the server log for the error of the \"dbops ledger event writer\".")));
	return recorded;
}

/*
 * Record a failed attempt of an entry point.  Whatever goes wrong here is a
 * WARNING: recording must never hide the error being reported.
 */
static void
ledger_record_failure(const char *version, const char *operation,
					  text *checksum, int sqlerrcode, const char *message,
					  bool retry)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		text	   *fields[LF_NFIELDS];
		char		state[6];
		int			msglen = strlen(message);

		if (msglen >= LEDGER_MESSAGE_MAX)
			msglen = pg_mbcliplen(message, msglen, LEDGER_MESSAGE_MAX - 1);
		memcpy(state, unpack_sql_state(sqlerrcode), sizeof(state));
		fields[LF_VERSION] = cstring_to_text(version);
		fields[LF_OPERATION] = cstring_to_text(operation);
		fields[LF_CHECKSUM] = checksum;
		fields[LF_SQLSTATE] = cstring_to_text(state);
		fields[LF_MESSAGE] = cstring_to_text_with_len(message, msglen);
		ledger_fill_who(fields);
		(void) ledger_record(fields, MyProcPid, retry);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			/* a second cancel (or a timeout) while waiting for the worker */
			ereport(WARNING,
					(errmsg("stopped waiting for the %s of migration %s to be recorded",
							retry ? "retry" : "failed attempt", ledger_echo(version)),
					 errdetail("%s", ledger_echo(edata->message ? edata->message : "")),
					 errhint("The worker that records it may still write it to dbops.migration_events.")));
		else
			ereport(WARNING,
					(errmsg("%s of migration %s not recorded in dbops.migration_events",
							retry ? "retry" : "failed attempt", ledger_echo(version)),
					 errdetail("Recording it failed: %s", ledger_echo(edata->message ? edata->message : "")),
					 errhint("The error of the migration follows; see the server log for the rest.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * A version passed to a function of dbops 1.0 that records it: only one
 * that 1.1 would record (warns when not).
 */
static bool
ledger_arg_version_ok(text *version)
{
	char	   *problem = ledger_version_problem(VARDATA_ANY(version), VARSIZE_ANY_EXHDR(version));

	if (problem == NULL)
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("failed attempt of migration \"%s\" not recorded in dbops.migration_events",
					ledger_echo_len(VARDATA_ANY(version), VARSIZE_ANY_EXHDR(version))),
			 errdetail("%s", problem),
			 errhint(LEDGER_VERSION_HINT)));
	return false;
}

static void
ledger_collect_args(FunctionCallInfo fcinfo, text **fields)
{
	for (int i = 0; i < LF_NFIELDS; i++)
		fields[i] = PG_ARGISNULL(i) ? NULL : PG_GETARG_TEXT_PP(i);

	/*
	 * 1.0's SQL always passes who the caller is, but these functions are
	 * open to PUBLIC in 1.0: a direct call may leave the users out (then the
	 * event names the caller) or pass an address that is not one (refused
	 * here, in the caller, rather than failing the writer's insert).
	 */
	if (fields[LF_USERNAME] == NULL)
		fields[LF_USERNAME] = cstring_to_text(GetUserNameFromId(GetUserId(), false));
	if (fields[LF_SESSION_USER] == NULL)
		fields[LF_SESSION_USER] = cstring_to_text(GetUserNameFromId(GetSessionUserId(), false));
	if (fields[LF_CLIENT_ADDR] != NULL)
		(void) DirectFunctionCall1(inet_in,
								   CStringGetDatum(text_to_cstring(fields[LF_CLIENT_ADDR])));
}

PG_FUNCTION_INFO_V1(dbops_migration_record_failure);

/*
 * dbops._migration_record_failure(version, operation, checksum, sqlstate,
 *		message, username, session_username, application_name, client_addr,
 *		backend_pid) returns boolean: the function of dbops 1.0 (1.1 records
 * from its entry points in C).
 */
Datum
dbops_migration_record_failure(PG_FUNCTION_ARGS)
{
	text	   *fields[LF_NFIELDS];

	if (PG_ARGISNULL(0) || !ledger_arg_version_ok(PG_GETARG_TEXT_PP(0)))
		PG_RETURN_BOOL(false);
	ledger_collect_args(fcinfo, fields);
	PG_RETURN_BOOL(ledger_record(fields,
								 PG_ARGISNULL(LF_NFIELDS) ? MyProcPid : PG_GETARG_INT32(LF_NFIELDS),
								 false));
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
	const char *cur = capture_version;
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

	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			capture_version = NULL;
			capture_subid = InvalidSubTransactionId;
			if (armed_seg == NULL)
				break;
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
			capture_version = NULL;
			capture_subid = InvalidSubTransactionId;
			if (armed_seg != NULL)
				ledger_disarm(true);
			break;
		default:
			break;
	}
}

/*
 * An error rolled back with its savepoint did not fail the migration; a
 * savepoint rolled back past migration_begin() closes its migration.
 */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		armed_has_error = false;
		if (capture_version != NULL && capture_subid == mySubid)
		{
			capture_version = NULL;
			capture_subid = InvalidSubTransactionId;
			if (armed_seg != NULL)
				ledger_disarm(true);
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB && capture_subid == mySubid)
		capture_subid = parentSubid;
}

static void
ledger_register_callbacks(void)
{
	if (ledger_callbacks_registered)
		return;
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = ledger_emit_log_hook;
	ledger_callbacks_registered = true;
}

/* Open the DDL capture for version in the current (sub)transaction. */
static void
ledger_capture_open(const char *version)
{
	ledger_register_callbacks();
	capture_version = MemoryContextStrdup(TopTransactionContext, version);
	capture_subid = GetCurrentSubTransactionId();
}

/* Show the open version in dbops.current_migration, transaction-locally. */
static void
ledger_show_open(const char *version)
{
	(void) set_config_option("dbops.current_migration", version ? version : "",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Arm the current transaction of migration_begin(): an error that aborts it
 * while the migration is open becomes a 'failed' event.  Warns (and returns
 * false) when it cannot.
 */
static bool
ledger_arm(text **fields, int backend_pid)
{
	dsm_segment *seg;

	if (RecoveryInProgress() || !IsTransactionBlock())
		return false;
	if (!ledger_may_record(text_to_cstring(fields[LF_VERSION])))
		return false;

	ledger_register_callbacks();
	if (armed_seg != NULL)
		ledger_disarm(true);

	fields[LF_SQLSTATE] = NULL;
	fields[LF_MESSAGE] = NULL;
	seg = ledger_failure_segment(fields, backend_pid, 5 + LEDGER_MESSAGE_MAX);
	if (seg == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("a failure of migration %s will not be recorded in dbops.migration_events",
						ledger_echo(text_to_cstring(fields[LF_VERSION]))),
				 errdetail("Too many dynamic shared memory segments are in use."),
				 errhint("Try again when fewer sessions are running parallel queries, or raise max_connections.")));
		return false;
	}

	armed = (LedgerFailure *) dsm_segment_address(seg);
	/* room for the SQLSTATE and the message at the end */
	armed->off[LF_SQLSTATE] = armed->off[LF_NFIELDS - 1] + Max(armed->len[LF_NFIELDS - 1], 0);
	armed->off[LF_MESSAGE] = armed->off[LF_SQLSTATE] + 5;
	armed->pinned = true;
	dsm_pin_mapping(seg);
	dsm_pin_segment(seg);
	armed_seg = seg;
	armed_has_error = false;
	return true;
}

PG_FUNCTION_INFO_V1(dbops_migration_arm);

/*
 * dbops._migration_arm(version, operation, checksum, sqlstate, message,
 *		username, session_username, application_name, client_addr,
 *		backend_pid) returns boolean: the function of dbops 1.0, whose
 * migration_begin() calls it once its migration is open (1.1 arms from its
 * entry point in C).
 */
Datum
dbops_migration_arm(PG_FUNCTION_ARGS)
{
	text	   *fields[LF_NFIELDS];
	bool		ok;

	if (PG_ARGISNULL(0) || RecoveryInProgress() || !IsTransactionBlock() ||
		!ledger_arg_version_ok(PG_GETARG_TEXT_PP(0)))
		PG_RETURN_BOOL(false);
	ledger_collect_args(fcinfo, fields);
	ok = ledger_arm(fields, PG_ARGISNULL(LF_NFIELDS) ? MyProcPid : PG_GETARG_INT32(LF_NFIELDS));
	if (ok)
		ledger_capture_open(text_to_cstring(fields[LF_VERSION]));
	PG_RETURN_BOOL(ok);
}

PG_FUNCTION_INFO_V1(dbops_migration_capture_version);

/*
 * dbops._migration_capture_version() returns text: the version whose DDL
 * the event triggers record now, or NULL.  Only the ledger sets it.
 */
Datum
dbops_migration_capture_version(PG_FUNCTION_ARGS)
{
	if (capture_version == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(capture_version));
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------
 */
#define LEDGER_MAX_ARGS 8

/*
 * Call the implementation dbops.<name>(argtypes) directly: found by its
 * schema-qualified name and argument type OIDs (nothing depends on
 * search_path), and called without an EXECUTE privilege check (the caller
 * was checked on the entry point).  The implementation's SET clause pins
 * its search_path.
 */
static Datum
ledger_call(const char *name, int nargs, const Oid *argtypes,
			const Datum *values, const bool *nulls, bool *isnull)
{
	List	   *fname = list_make2(makeString("dbops"), makeString(pstrdup(name)));
	Oid			fn = LookupFuncName(fname, nargs, argtypes, false);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fc, LEDGER_MAX_ARGS);
	Datum		result;

	Assert(nargs <= LEDGER_MAX_ARGS);
	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fc, &flinfo, nargs, DEFAULT_COLLATION_OID, NULL, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fc->args[i].value = values[i];
		fc->args[i].isnull = nulls[i];
	}
	result = FunctionCallInvoke(fc);
	if (isnull)
		*isnull = fc->isnull;
	else if (fc->isnull)
		elog(ERROR, "dbops.%s returned NULL", name);
	return result;
}

/* What an entry point does with the ledger's tables. */
typedef enum LedgerAccess
{
	LEDGER_READ,				/* reads them */
	LEDGER_WRITE,				/* records a migration */
	LEDGER_STEP					/* and a step outside a transaction block */
} LedgerAccess;

/*
 * May the current role use the ledger's tables as the entry point will?
 * Checked up front, so that a role without the documented grants gets one
 * clear error instead of a permission error from inside the implementation
 * (and a failed attempt it cannot record).
 */
static void
ledger_check_access(const char *fn, LedgerAccess access)
{
	static const struct
	{
		const char *rel;
		AclMode		mode;
		const char *what;
		LedgerAccess access;
	}			need[] =
	{
		{"migrations", ACL_SELECT, "SELECT", LEDGER_READ},
		{"migration_events", ACL_SELECT, "SELECT", LEDGER_READ},
		{"migrations", ACL_INSERT, "INSERT", LEDGER_WRITE},
		{"migrations", ACL_UPDATE, "UPDATE", LEDGER_WRITE},
		{"migration_events", ACL_INSERT, "INSERT", LEDGER_WRITE},
		{"migration_events_event_id_seq", ACL_USAGE, "USAGE", LEDGER_WRITE},
		{"migration_steps", ACL_SELECT, "SELECT", LEDGER_STEP},
		{"migration_steps", ACL_INSERT, "INSERT", LEDGER_STEP},
		{"migration_steps", ACL_UPDATE, "UPDATE", LEDGER_STEP},
		{"migration_steps", ACL_DELETE, "DELETE", LEDGER_STEP},
	};
	Oid			nsp = get_namespace_oid("dbops", false);

	for (int i = 0; i < lengthof(need); i++)
	{
		Oid			rel;

		if (need[i].access > access)
			continue;
		rel = get_relname_relid(need[i].rel, nsp);
		if (OidIsValid(rel) &&
			pg_class_aclcheck(rel, GetUserId(), need[i].mode) == ACLCHECK_OK)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for the migration ledger"),
				 errdetail("dbops.%s() needs %s on dbops.%s, which role \"%s\" does not have.",
						   fn, need[i].what, need[i].rel, GetUserNameFromId(GetUserId(), false)),
				 access == LEDGER_READ ?
				 errhint("Grant the role pg_monitor, or SELECT on dbops.migrations and dbops.migration_events.") :
				 access == LEDGER_WRITE ?
				 errhint("Grant the deploying role SELECT, INSERT, UPDATE on dbops.migrations, SELECT, INSERT on dbops.migration_events and USAGE on dbops.migration_events_event_id_seq, as the README shows.") :
				 errhint("Grant the deploying role SELECT, INSERT, UPDATE on dbops.migrations, SELECT, INSERT on dbops.migration_events, USAGE on dbops.migration_events_event_id_seq and SELECT, INSERT, UPDATE, DELETE on dbops.migration_steps, as the README shows.")));
	}
}

static void
ledger_check_writable(const char *what)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s on a standby", what),
				 errhint("The migration ledger is written on the primary; dbops.migration_status() and dbops.migration_pending() work here.")));
}

/* Which tables ledger_version_recorded() looks in. */
typedef enum LedgerRecorded
{
	LEDGER_NEW_ONLY,			/* none: only versions the rules allow */
	LEDGER_IN_MIGRATIONS,		/* dbops.migrations */
	LEDGER_IN_LEDGER			/* dbops.migrations or dbops.migration_events */
} LedgerRecorded;

/*
 * Is v already in the ledger (where says which tables)?  Rows written by
 * dbops 1.0, or by a role that inserted them directly, may hold versions
 * the rules refuse; the entry points still accept those, so that such a
 * version can be skipped, rolled back, repaired or acknowledged.  A role
 * that may not read the table finds nothing there.
 */
static bool
ledger_version_recorded(const char *v, LedgerRecorded where)
{
	Oid			nsp = get_namespace_oid("dbops", true);
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found = false;
	const char *const tables[] = {"migrations", "migration_events"};

	if (where == LEDGER_NEW_ONLY || !OidIsValid(nsp))
		return false;
	values[0] = CStringGetTextDatum(v);
	SPI_connect();
	for (int t = 0; t < (where == LEDGER_IN_LEDGER ? 2 : 1) && !found; t++)
	{
		Oid			rel = get_relname_relid(tables[t], nsp);
		char	   *q;

		if (!OidIsValid(rel) ||
			pg_class_aclcheck(rel, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			continue;
		q = psprintf("SELECT 1 FROM dbops.%s x WHERE x.version OPERATOR(pg_catalog.=) $1 LIMIT 1",
					 tables[t]);
		if (SPI_execute_with_args(q, 1, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed > 0)
			found = true;
	}
	SPI_finish();
	return found;
}

/*
 * The version argument: not NULL, and a version the ledger records (see
 * ledger_version_problem()) or one already in the ledger (where).
 */
static char *
ledger_check_version(FunctionCallInfo fcinfo, int argno, LedgerRecorded where)
{
	text	   *t;
	char	   *problem;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration version must not be NULL"),
				 errhint("Pass the version of the migration, such as '0015'.")));
	t = PG_GETARG_TEXT_PP(argno);
	problem = ledger_version_problem(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	if (problem != NULL &&
		!(VARSIZE_ANY_EXHDR(t) > 0 && ledger_version_recorded(text_to_cstring(t), where)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid migration version \"%s\"",
						ledger_echo_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))),
				 errdetail("%s", problem),
				 errhint(LEDGER_VERSION_HINT)));
	return text_to_cstring(t);
}

/* A description argument: NULL, or at most LEDGER_DESCRIPTION_MAX characters. */
static void
ledger_check_description(FunctionCallInfo fcinfo, int argno)
{
	text	   *t;
	int			len;

	if (PG_ARGISNULL(argno))
		return;
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (len > LEDGER_DESCRIPTION_MAX &&
		pg_mbcharcliplen(VARDATA_ANY(t), len, LEDGER_DESCRIPTION_MAX) < len)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("migration description is too long"),
				 errdetail("It starts \"%s\" and has more than %d characters.",
						   ledger_echo_len(VARDATA_ANY(t), len), LEDGER_DESCRIPTION_MAX),
				 errhint("A description has at most 1000 characters; the script itself goes in body.")));
}

/* A checksum argument: NULL, '' or 64 lower-case hex digits. */
static void
ledger_check_checksum(FunctionCallInfo fcinfo, int argno)
{
	text	   *t;
	const char *c;
	int			len;
	bool		ok;

	if (PG_ARGISNULL(argno))
		return;
	t = PG_GETARG_TEXT_PP(argno);
	c = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);
	ok = (len == 0 || len == 64);
	for (int i = 0; ok && i < len; i++)
		ok = (c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f');
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid migration checksum \"%s\"", ledger_echo_len(c, len)),
				 errhint("Pass the value of dbops.migration_checksum(script): 64 lower-case hexadecimal digits.")));
}

/* A checksum argument with '' taken as NULL. */
static text *
ledger_checksum_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *c;

	if (PG_ARGISNULL(argno))
		return NULL;
	c = PG_GETARG_TEXT_PP(argno);
	return VARSIZE_ANY_EXHDR(c) == 0 ? NULL : c;
}

#define LEDGER_REQUIRES_HINT \
	"Pass the versions this one needs as a one-dimensional array, such as '{0013,0014}', or '{}' for none."

/*
 * The requires argument: a one-dimensional array of at most
 * LEDGER_REQUIRES_MAX versions (each a version the ledger records, or one
 * already in dbops.migrations), no NULLs.
 */
static void
ledger_check_requires(FunctionCallInfo fcinfo, int argno)
{
	ArrayType  *a;
	Datum	   *elems;
	bool	   *elemnulls;
	int			n;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("requires must not be NULL"),
				 errhint(LEDGER_REQUIRES_HINT)));
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("requires must be a one-dimensional array of versions"),
				 errdetail("It has %d dimensions.", ARR_NDIM(a)),
				 errhint(LEDGER_REQUIRES_HINT)));
	n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if (n > LEDGER_REQUIRES_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("requires names %d versions; at most %d are allowed", n, LEDGER_REQUIRES_MAX),
				 errhint("Require the latest versions this one depends on; they require the older ones.")));
	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elemnulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *t;
		char	   *problem;

		if (elemnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("requires must not contain NULL"),
					 errdetail("Element %d is NULL.", i + 1),
					 errhint(LEDGER_REQUIRES_HINT)));
		t = DatumGetTextPP(elems[i]);
		problem = ledger_version_problem(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		if (problem != NULL &&
			!(VARSIZE_ANY_EXHDR(t) > 0 &&
			  ledger_version_recorded(text_to_cstring(t), LEDGER_IN_MIGRATIONS)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid version \"%s\" in requires",
							ledger_echo_len(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))),
					 errdetail("Element %d: %s", i + 1, problem),
					 errhint(LEDGER_VERSION_HINT)));
	}
}

static void
ledger_lock(void)
{
	(void) DirectFunctionCall2(pg_advisory_xact_lock_int4,
							   Int32GetDatum(LEDGER_LOCK_KEY1),
							   Int32GetDatum(LEDGER_LOCK_KEY2));
}

/* the caller's search_path, for the caller's migration script */
static Datum
ledger_callers_search_path(void)
{
	return CStringGetTextDatum(GetConfigOption("search_path", false, false));
}

/*
 * lock_timeout = dbops.migration_lock_timeout, unless that is 0 or the
 * session's lock_timeout is already lower (and not 0).
 */
static void
ledger_set_lock_timeout(GucAction action)
{
	if (migration_lock_timeout <= 0 ||
		(LockTimeout > 0 && LockTimeout <= migration_lock_timeout))
		return;
	(void) set_config_option("lock_timeout", psprintf("%d", migration_lock_timeout),
							 PGC_USERSET, PGC_S_SESSION, action, true, 0, false);
}

typedef Datum (*LedgerStep) (void *arg);

/* Does an error with this SQLSTATE count as a failed attempt? */
typedef bool (*LedgerRecordIf) (int sqlerrcode);

/*
 * Run step in a subtransaction; if it fails (and record_if says the error
 * counts), record a failed attempt of version from a background worker,
 * then re-raise the error unchanged.  Cancels and timeouts count too.
 *
 * With retry not NULL, a failure on a lock not granted (lock_timeout, or
 * NOWAIT) is recorded as a retry instead, and *retry set to its message:
 * the caller tries again.  The subtransaction's rollback has undone the attempt and released
 * every lock it took.
 */
static Datum
ledger_attempt(const char *version, const char *operation, text *checksum,
			   LedgerRecordIf record_if, LedgerStep step, void *arg,
			   char **retry)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Datum		result = (Datum) 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		result = step(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (retry != NULL && edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
		{
			*retry = pstrdup(edata->message ? edata->message : "");
			ledger_record_failure(version, operation, checksum, edata->sqlerrcode,
								  *retry, true);
			FreeErrorData(edata);
			return (Datum) 0;
		}
		if (record_if == NULL || record_if(edata->sqlerrcode))
			ledger_record_failure(version, operation, checksum, edata->sqlerrcode,
								  edata->message ? edata->message : "", false);
		ReThrowError(edata);
	}
	PG_END_TRY();
	return result;
}

/* the arguments of dbops._migration_decide() */
static const Oid decide_types[] = {TEXTOID, TEXTOID, TEXTARRAYOID, BOOLOID, TEXTOID};

/* ---- dbops.migrate() ---- */
typedef struct MigrateArgs
{
	Datum		values[7];		/* version, description, body, requires,
								 * checksum, decision, search_path */
	bool		nulls[7];
	Datum		allow_out_of_order;
	bool		allow_isnull;
} MigrateArgs;

static Datum
migrate_step(void *arg)
{
	MigrateArgs *a = (MigrateArgs *) arg;
	static const Oid types[] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		dv[5] = {a->values[0], a->values[4], a->values[3],
	a->allow_out_of_order, CStringGetTextDatum("migrate")};
	bool		dn[5] = {false, a->nulls[4], false, a->allow_isnull, false};

	int			nest;
	Datum		result;

	a->values[5] = ledger_call("_migration_decide", 5, decide_types, dv, dn, NULL);
	a->nulls[5] = false;
	if (strcmp(TextDatumGetCString(a->values[5]), "apply") != 0)
		return ledger_call("_migrate", 7, types, a->values, a->nulls, NULL);

	dbops_lint_migration(TextDatumGetCString(a->values[0]), TextDatumGetCString(a->values[2]));

	/*
	 * The body runs at a GUC nesting level of its own, as a function with
	 * SET clauses does: the lock_timeout set here, and the body's own SET
	 * LOCAL of dbops.migration_lint_allow, end with the migration.
	 */
	nest = NewGUCNestLevel();
	(void) set_config_option("dbops.migration_lint_allow",
							 GetConfigOption("dbops.migration_lint_allow", false, false),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	ledger_set_lock_timeout(GUC_ACTION_SAVE);
	result = ledger_call("_migrate", 7, types, a->values, a->nulls, NULL);
	AtEOXact_GUC(true, nest);
	return result;
}

/*
 * migrate() until it applies (or skips), retrying an attempt that failed
 * on a lock not granted up to dbops.migration_lock_retries times, after a
 * pause that doubles each time (from dbops.migration_retry_delay, at most a
 * minute), with jitter.  Each attempt is a subtransaction rolled back when
 * it fails, so the migration applies at most once; the ledger lock stays
 * held between attempts, so no other runner applies it meanwhile.
 */
static Datum
migrate_with_retries(const char *version, text *checksum, MigrateArgs *a)
{
	for (int attempt = 0;; attempt++)
	{
		char	   *retry = NULL;
		Datum		result;
		long		pause;
		TimestampTz until;

		result = ledger_attempt(version, "migrate", checksum, NULL, migrate_step, a,
								attempt < migration_lock_retries ? &retry : NULL);
		if (retry == NULL)
			return result;

		pause = (long) migration_retry_delay << Min(attempt, 16);
		pause = Min(pause, 60000L);
		pause = pause / 2 + (long) pg_prng_uint64_range(&pg_global_prng_state, 0, pause / 2);
		ereport(NOTICE,
				(errmsg("migration %s: %s", ledger_echo(version), retry),
				 errdetail("Attempt %d of %d rolled back; the next one in %ld ms.",
						   attempt + 1, migration_lock_retries + 1, pause),
				 errhint("A long transaction holds a lock the migration needs: dbops.lock_tree() shows it.")));
		until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), pause);
		for (;;)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

			CHECK_FOR_INTERRUPTS();
			if (left <= 0)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 left, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}

PG_FUNCTION_INFO_V1(dbops_migrate);

/*
 * dbops.migrate(version, description, body, requires, allow_out_of_order)
 * returns 'applied' or 'skipped'.  No SET clause: the body runs with the
 * caller's search_path.
 */
Datum
dbops_migrate(PG_FUNCTION_ARGS)
{
	MigrateArgs a;
	char	   *version;
	text	   *checksum;
	char	   *saved_capture = capture_version;
	SubTransactionId saved_subid = capture_subid;
	const char *saved_shown = pstrdup(dbops_current_migration ? dbops_current_migration : "");
	Datum		result;

	ledger_check_writable("apply a migration");
	ledger_check_access("migrate", LEDGER_WRITE);
	version = ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_check_description(fcinfo, 1);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration body must not be NULL"),
				 errhint("Pass the SQL of the migration; use '' for a version that only needs recording.")));
	ledger_check_requires(fcinfo, 3);
	checksum = ledger_checksum(PG_GETARG_TEXT_PP(2));
	ledger_lock();

	a.values[0] = PG_GETARG_DATUM(0);
	a.nulls[0] = false;
	a.values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	a.nulls[1] = PG_ARGISNULL(1);
	a.values[2] = PG_GETARG_DATUM(2);
	a.nulls[2] = false;
	a.values[3] = PG_GETARG_DATUM(3);
	a.nulls[3] = false;
	a.values[4] = PointerGetDatum(checksum);
	a.nulls[4] = false;
	a.values[6] = ledger_callers_search_path();
	a.nulls[6] = false;
	a.allow_out_of_order = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	a.allow_isnull = PG_ARGISNULL(4);

	ledger_capture_open(version);
	ledger_show_open(version);
	PG_TRY();
	{
		result = migrate_with_retries(version, checksum, &a);
	}
	PG_FINALLY();
	{
		capture_version = saved_capture;
		capture_subid = saved_subid;
	}
	PG_END_TRY();
	ledger_show_open(saved_shown);
	PG_RETURN_DATUM(result);
}

/* ---- dbops.migration_rollback() ---- */
typedef struct RollbackArgs
{
	Datum		values[4];		/* version, body, checksum, search_path */
	bool		nulls[4];
} RollbackArgs;

static Datum
rollback_step(void *arg)
{
	RollbackArgs *a = (RollbackArgs *) arg;
	static const Oid types[] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};

	return ledger_call("_migration_rollback", 4, types, a->values, a->nulls, NULL);
}

/* refusals (not applied, required by others) are not failed attempts */
static bool
rollback_record_if(int sqlerrcode)
{
	return sqlerrcode != MAKE_SQLSTATE('D', 'B', '0', '0', '5') &&
		sqlerrcode != MAKE_SQLSTATE('D', 'B', '0', '0', '6');
}

PG_FUNCTION_INFO_V1(dbops_migration_rollback);

/*
 * dbops.migration_rollback(version, body) returns 'rolled_back'.  No SET
 * clause: the body runs with the caller's search_path.
 */
Datum
dbops_migration_rollback(PG_FUNCTION_ARGS)
{
	RollbackArgs a;
	char	   *version;
	text	   *checksum;
	char	   *saved_capture = capture_version;
	SubTransactionId saved_subid = capture_subid;
	const char *saved_shown = pstrdup(dbops_current_migration ? dbops_current_migration : "");
	Datum		result;

	checksum = PG_ARGISNULL(1) ? NULL : ledger_checksum(PG_GETARG_TEXT_PP(1));
	ledger_check_writable("roll back a migration");
	ledger_check_access("migration_rollback", LEDGER_WRITE);
	version = ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_lock();

	a.values[0] = PG_GETARG_DATUM(0);
	a.nulls[0] = false;
	a.values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	a.nulls[1] = PG_ARGISNULL(1);
	a.values[2] = PointerGetDatum(checksum);
	a.nulls[2] = (checksum == NULL);
	a.values[3] = ledger_callers_search_path();
	a.nulls[3] = false;

	ledger_capture_open(version);
	if (!PG_ARGISNULL(1))
		ledger_show_open(version);
	PG_TRY();
	{
		result = ledger_attempt(version, "migration_rollback", checksum,
								rollback_record_if, rollback_step, &a, NULL);
	}
	PG_FINALLY();
	{
		capture_version = saved_capture;
		capture_subid = saved_subid;
	}
	PG_END_TRY();
	if (!PG_ARGISNULL(1))
		ledger_show_open(saved_shown);
	PG_RETURN_DATUM(result);
}

/* ---- dbops.migration_begin() ---- */
typedef struct DecideArgs
{
	Datum		values[5];
	bool		nulls[5];
} DecideArgs;

static Datum
decide_step(void *arg)
{
	DecideArgs *a = (DecideArgs *) arg;

	return ledger_call("_migration_decide", 5, decide_types, a->values, a->nulls, NULL);
}

PG_FUNCTION_INFO_V1(dbops_migration_begin);

/*
 * dbops.migration_begin(version, description, checksum, requires,
 *		allow_out_of_order) returns 'open'.  The script's own statements
 * follow it in the caller's transaction, under the caller's settings; this
 * function runs none of them.
 */
Datum
dbops_migration_begin(PG_FUNCTION_ARGS)
{
	static const Oid types[] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID};
	DecideArgs d;
	Datum		values[4];
	bool		nulls[4];
	char	   *version;
	text	   *checksum;
	text	   *fields[LF_NFIELDS];

	ledger_check_writable("open a migration");
	ledger_check_access("migration_begin", LEDGER_WRITE);
	version = ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_check_description(fcinfo, 1);
	ledger_check_checksum(fcinfo, 2);
	checksum = ledger_checksum_arg(fcinfo, 2);
	ledger_check_requires(fcinfo, 3);
	if (!IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("dbops.migration_begin() must be called inside the transaction of the migration"),
				 errhint("Start the script with BEGIN (or run psql with --single-transaction); the version is recorded when that transaction commits.")));
	if (capture_version != NULL)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('D', 'B', '0', '0', '4')),
				 errmsg("migration %s is already open in this transaction", ledger_echo(capture_version)),
				 errhint("Run one migration per transaction.")));
	ledger_lock();

	d.values[0] = PG_GETARG_DATUM(0);
	d.nulls[0] = false;
	d.values[1] = PointerGetDatum(checksum);
	d.nulls[1] = (checksum == NULL);
	d.values[2] = PG_GETARG_DATUM(3);
	d.nulls[2] = false;
	d.values[3] = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	d.nulls[3] = PG_ARGISNULL(4);
	d.values[4] = CStringGetTextDatum("migration_begin");
	d.nulls[4] = false;
	(void) ledger_attempt(version, "migration_begin", checksum, NULL, decide_step, &d, NULL);

	values[0] = PG_GETARG_DATUM(0);
	nulls[0] = false;
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1);
	values[2] = PointerGetDatum(checksum);
	nulls[2] = (checksum == NULL);
	values[3] = PG_GETARG_DATUM(3);
	nulls[3] = false;
	(void) ledger_call("_migration_begin", 4, types, values, nulls, NULL);

	/* the migration's statements, for the rest of the transaction */
	ledger_set_lock_timeout(GUC_ACTION_LOCAL);

	/* open until the transaction ends (or a savepoint before this rolls back) */
	ledger_capture_open(version);
	ledger_show_open(version);

	memset(fields, 0, sizeof(fields));
	fields[LF_VERSION] = PG_GETARG_TEXT_PP(0);
	fields[LF_OPERATION] = cstring_to_text("migration_begin");
	fields[LF_CHECKSUM] = checksum;
	ledger_fill_who(fields);
	(void) ledger_arm(fields, MyProcPid);

	PG_RETURN_TEXT_P(cstring_to_text("open"));
}

/* ---- dbops.migration_step_begin(), dbops.migration_step_finish() ---- */
typedef struct StepArgs
{
	Datum		values[8];		/* action, version, description, checksum,
								 * requires, index_name, decision,
								 * search_path */
	bool		nulls[8];
	Datum		allow_out_of_order;
	bool		allow_isnull;
} StepArgs;

static const Oid step_types[] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID};

static Datum
step_begin_step(void *arg)
{
	StepArgs   *a = (StepArgs *) arg;
	Datum		dv[5] = {a->values[1], a->values[3], a->values[4],
	a->allow_out_of_order, CStringGetTextDatum("migrate")};
	bool		dn[5] = {false, a->nulls[3], false, a->allow_isnull, false};

	a->values[6] = ledger_call("_migration_decide", 5, decide_types, dv, dn, NULL);
	a->nulls[6] = false;
	return ledger_call("_migration_step", 8, step_types, a->values, a->nulls, NULL);
}

/*
 * a step open in another session, or none open, is a refusal, not a
 * failed attempt of the step
 */
static bool
step_record_if(int sqlerrcode)
{
	return sqlerrcode != MAKE_SQLSTATE('D', 'B', '0', '0', '4') &&
		sqlerrcode != MAKE_SQLSTATE('D', 'B', '0', '0', '5');
}

PG_FUNCTION_INFO_V1(dbops_migration_step_begin);

/*
 * dbops.migration_step_begin(version, description, checksum, requires,
 *		allow_out_of_order, index_name) returns 'open', 'skipped' or
 * 'applied'.  Only outside a transaction block: the step's row must be
 * committed before the client runs the statement (which cannot run in a
 * transaction block either), and must stay when that statement fails.  No
 * SET clause: index_name resolves with the caller's search_path.
 */
Datum
dbops_migration_step_begin(PG_FUNCTION_ARGS)
{
	StepArgs	a;
	char	   *version;
	text	   *checksum;

	ledger_check_writable("begin a migration step");
	ledger_check_access("migration_step_begin", LEDGER_STEP);
	version = ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_check_description(fcinfo, 1);
	ledger_check_checksum(fcinfo, 2);
	checksum = ledger_checksum_arg(fcinfo, 2);
	ledger_check_requires(fcinfo, 3);
	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("dbops.migration_step_begin() cannot run inside a transaction block"),
				 errhint("Call it on its own: it records the step as begun in a transaction of its own; then run the step's statement, then dbops.migration_step_finish().")));
	ledger_lock();

	a.values[0] = CStringGetTextDatum("begin");
	a.values[1] = PG_GETARG_DATUM(0);
	a.values[2] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	a.values[3] = PointerGetDatum(checksum);
	a.values[4] = PG_GETARG_DATUM(3);
	a.values[5] = PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5);
	a.values[7] = ledger_callers_search_path();
	memset(a.nulls, false, sizeof(a.nulls));
	a.nulls[2] = PG_ARGISNULL(1);
	a.nulls[3] = (checksum == NULL);
	a.nulls[5] = PG_ARGISNULL(5);
	a.allow_out_of_order = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	a.allow_isnull = PG_ARGISNULL(4);

	/* dropping an invalid index left by a failed build: a short lock wait */
	ledger_set_lock_timeout(GUC_ACTION_LOCAL);
	ledger_capture_open(version);
	ledger_show_open(version);
	PG_RETURN_DATUM(ledger_attempt(version, "migration_step", checksum, step_record_if,
								   step_begin_step, &a, NULL));
}

static Datum
step_finish_step(void *arg)
{
	StepArgs   *a = (StepArgs *) arg;

	return ledger_call("_migration_step", 8, step_types, a->values, a->nulls, NULL);
}

PG_FUNCTION_INFO_V1(dbops_migration_step_finish);

/*
 * dbops.migration_step_finish(version) returns 'applied'.  No SET clause:
 * the step's index_name resolves with the caller's search_path.
 */
Datum
dbops_migration_step_finish(PG_FUNCTION_ARGS)
{
	StepArgs	a;
	char	   *version;

	ledger_check_writable("finish a migration step");
	ledger_check_access("migration_step_finish", LEDGER_STEP);
	version = ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_lock();

	memset(&a, 0, sizeof(a));
	memset(a.nulls, true, sizeof(a.nulls));
	a.values[0] = CStringGetTextDatum("finish");
	a.values[1] = PG_GETARG_DATUM(0);
	a.values[7] = ledger_callers_search_path();
	a.nulls[0] = a.nulls[1] = a.nulls[7] = false;
	PG_RETURN_DATUM(ledger_attempt(version, "migration_step", NULL, step_record_if,
								   step_finish_step, &a, NULL));
}

/* ---- dbops.migration_pending() ---- */
PG_FUNCTION_INFO_V1(dbops_migration_pending);

/*
 * dbops.migration_pending(version, checksum) returns boolean.  Inside a
 * transaction block it holds the ledger lock to the end of the transaction.
 * A drift found is a failed attempt (DB001), recorded before the error.
 */
Datum
dbops_migration_pending(PG_FUNCTION_ARGS)
{
	static const Oid types[] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		nulls[2];
	char	   *version;
	text	   *checksum;
	Datum		r;
	bool		isnull;
	char	   *drift;

	ledger_check_access("migration_pending", LEDGER_READ);
	version = ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_check_checksum(fcinfo, 1);
	checksum = ledger_checksum_arg(fcinfo, 1);
	if (IsTransactionBlock())
		ledger_lock();

	values[0] = PG_GETARG_DATUM(0);
	nulls[0] = false;
	values[1] = PointerGetDatum(checksum);
	nulls[1] = (checksum == NULL);
	r = ledger_call("_migration_pending", 2, types, values, nulls, &isnull);
	if (isnull)
		PG_RETURN_BOOL(true);
	drift = TextDatumGetCString(r);
	if (drift[0] == '\0')
		PG_RETURN_BOOL(false);

	/* the implementation returns the drift's detail */
	{
		char	   *msg = psprintf("checksum drift: migration %s was applied from a different script",
								   version);

		ledger_record_failure(version, "migration_pending", checksum,
							  MAKE_SQLSTATE('D', 'B', '0', '0', '1'), msg, false);
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('D', 'B', '0', '0', '1')),
				 errmsg("%s", msg),
				 errdetail("%s", drift),
				 errhint("Restore the script as it was applied, or accept the edit deliberately with dbops.migration_repair(version, checksum).")));
	}
	PG_RETURN_NULL();			/* not reached */
}

/* ---- dbops.migration_baseline(), dbops.migration_repair() ---- */
PG_FUNCTION_INFO_V1(dbops_migration_baseline);

Datum
dbops_migration_baseline(PG_FUNCTION_ARGS)
{
	static const Oid types[] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		nulls[2];

	ledger_check_writable("record a baseline");
	ledger_check_access("migration_baseline", LEDGER_WRITE);
	(void) ledger_check_version(fcinfo, 0, LEDGER_IN_MIGRATIONS);
	ledger_check_description(fcinfo, 1);
	ledger_lock();
	values[0] = PG_GETARG_DATUM(0);
	nulls[0] = false;
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1);
	PG_RETURN_DATUM(ledger_call("_migration_baseline", 2, types, values, nulls, NULL));
}

PG_FUNCTION_INFO_V1(dbops_migration_repair);

Datum
dbops_migration_repair(PG_FUNCTION_ARGS)
{
	static const Oid types[] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		nulls[2];
	text	   *checksum;

	ledger_check_writable("repair the migration ledger");
	ledger_check_access("migration_repair", LEDGER_WRITE);
	(void) ledger_check_version(fcinfo, 0, LEDGER_IN_LEDGER);
	ledger_check_checksum(fcinfo, 1);
	checksum = ledger_checksum_arg(fcinfo, 1);
	ledger_lock();
	values[0] = PG_GETARG_DATUM(0);
	nulls[0] = false;
	values[1] = PointerGetDatum(checksum);
	nulls[1] = (checksum == NULL);
	PG_RETURN_DATUM(ledger_call("_migration_repair", 2, types, values, nulls, NULL));
}

/* ---- dbops.migration_import() ---- */

/*
 * The rows read from an import source get the checks of migrate(): each
 * version (with the blanks at either end removed, as the import does) must
 * be one the ledger records, each description at most
 * LEDGER_DESCRIPTION_MAX characters.  The first row that fails is refused,
 * named by its position among the rows read.
 */
static void
ledger_check_import_rows(Datum rows, const char *relname)
{
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {rows};
	int			ret;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT r.ord, pg_catalog.btrim(r.value OPERATOR(pg_catalog.->>) 0),"
								" r.value OPERATOR(pg_catalog.->>) 1"
								" FROM pg_catalog.jsonb_array_elements($1 OPERATOR(pg_catalog.->) 'rows'::pg_catalog.text)"
								"      WITH ORDINALITY AS r (value, ord)"
								" ORDER BY r.ord",
								1, argtypes, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the rows to import: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *version = SPI_getvalue(tup, desc, 2);
		char	   *description = SPI_getvalue(tup, desc, 3);
		char	   *problem;

		CHECK_FOR_INTERRUPTS();
		if (version == NULL)
			continue;			/* the reader leaves NULL versions out */
		problem = ledger_version_problem(version, strlen(version));
		if (problem != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid migration version \"%s\" in row %s of %s",
							ledger_echo(version), SPI_getvalue(tup, desc, 1), relname),
					 errdetail("%s Nothing was imported.", problem),
					 errhint("Fix or leave out that row (import from a view that does), then import again. "
							 LEDGER_VERSION_HINT)));
		if (description != NULL &&
			pg_mbcharcliplen(description, strlen(description), LEDGER_DESCRIPTION_MAX) < (int) strlen(description))
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("description of migration \"%s\" in row %s of %s is too long",
							ledger_echo(version), SPI_getvalue(tup, desc, 1), relname),
					 errdetail("It has more than %d characters. Nothing was imported.",
							   LEDGER_DESCRIPTION_MAX),
					 errhint("Import from a view that shortens the description.")));
	}
	SPI_finish();
}
PG_FUNCTION_INFO_V1(dbops_migration_import);

/*
 * dbops.migration_import(source regclass) returns bigint.
 *
 * The source is a table of the caller's choosing, possibly of another
 * role's (its triggers, rules, column types and casts included): it is read
 * as its owner in a security-restricted operation, as VACUUM reads a table,
 * by a caller that may SELECT from it; the ledger is then written with the
 * caller's rights.
 */
Datum
dbops_migration_import(PG_FUNCTION_ARGS)
{
	static const Oid read_types[] = {REGCLASSOID};
	static const Oid write_types[] = {TEXTOID, JSONBOID};
	Oid			source;
	HeapTuple	tup;
	Form_pg_class form;
	char		relkind;
	Oid			owner;
	char	   *relname;
	Datum		values[2];
	bool		nulls[2];
	Datum		rows;
	DbopsUserContext ctx;

	ledger_check_writable("import a migration ledger");
	ledger_check_access("migration_import", LEDGER_WRITE);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source must not be NULL"),
				 errhint("Name the table of the existing ledger, such as 'public.schema_migrations'.")));
	source = PG_GETARG_OID(0);

	/* lock it, then look at what it is now */
	LockRelationOid(source, AccessShareLock);
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(source));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", source),
				 errhint("Name the table of the existing ledger, such as 'public.schema_migrations'; it may have been dropped.")));
	form = (Form_pg_class) GETSTRUCT(tup);
	relkind = form->relkind;
	owner = form->relowner;
	relname = quote_qualified_identifier(get_namespace_name(form->relnamespace),
										 NameStr(form->relname));
	ReleaseSysCache(tup);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW &&
		relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table or view", relname),
				 errhint("dbops.migration_import() reads a table, view, materialized view or foreign table.")));
	if (pg_class_aclcheck(source, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", relname),
				 errhint("dbops.migration_import() needs SELECT on the source; it reads it with the rights of the source's owner.")));
	/* its owner would see rows the caller may not */
	if (check_enable_rls(source, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot import from %s: row-level security applies to it", relname),
				 errhint("Import as its owner, or from a copy without row-level security.")));

	ledger_lock();

	values[0] = ObjectIdGetDatum(source);
	nulls[0] = false;
	dbops_become_owner(owner, &ctx);
	rows = ledger_call("_migration_import_read", 1, read_types, values, nulls, NULL);
	dbops_restore_user(&ctx);

	ledger_check_import_rows(rows, relname);

	values[0] = CStringGetTextDatum(relname);
	values[1] = rows;
	nulls[1] = false;
	PG_RETURN_DATUM(ledger_call("_migration_import", 2, write_types, values, nulls, NULL));
}

/* ------------------------------------------------------------------------
 * Health check "migrations": versions whose last attempt failed (drift
 * included), versions rolled back, and steps left unfinished.
 * ------------------------------------------------------------------------
 */
/* failed, drifted and rolled back versions */
#define MIGRATIONS_SQL \
	"WITH last AS (" \
	"  SELECT DISTINCT ON (e.version) e.version, e.event, e.sqlstate, e.message" \
	"  FROM dbops.migration_events e" \
	"  ORDER BY e.version, e.event_id DESC) " \
	"SELECT l.version," \
	"       CASE WHEN l.sqlstate OPERATOR(pg_catalog.=) 'DB001'::pg_catalog.text" \
	"            THEN 'drifted'::pg_catalog.text ELSE 'failed'::pg_catalog.text END," \
	"       l.sqlstate, l.message" \
	"  FROM last l WHERE l.event OPERATOR(pg_catalog.=) 'failed'::pg_catalog.text " \
	"UNION ALL " \
	"SELECT m.version, 'rolled back'::pg_catalog.text, NULL::pg_catalog.text," \
	"       NULL::pg_catalog.text" \
	"  FROM dbops.migrations m" \
	"  WHERE m.status OPERATOR(pg_catalog.=) 'rolled_back'::pg_catalog.text" \
	"    AND NOT EXISTS (SELECT 1 FROM last l" \
	"                    WHERE l.version OPERATOR(pg_catalog.=) m.version" \
	"                      AND l.event OPERATOR(pg_catalog.=) 'failed'::pg_catalog.text) "

/*
 * steps whose session ended before they finished (one that failed to
 * finish shows above); on a standby, the sessions of the primary
 * cannot be seen, so none is judged there
 */
#define MIGRATIONS_STEPS_SQL \
	"SELECT s.version," \
	"       CASE WHEN EXISTS (" \
	"              SELECT 1 FROM pg_catalog.pg_index i" \
	"              JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid" \
	"              JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace" \
	"              WHERE NOT i.indisvalid" \
	"                AND c.relname OPERATOR(pg_catalog.=) k.ident[pg_catalog.cardinality(k.ident)]::pg_catalog.name" \
	"                AND (pg_catalog.cardinality(k.ident) OPERATOR(pg_catalog.=) 1" \
	"                     OR n.nspname OPERATOR(pg_catalog.=)" \
	"                        k.ident[pg_catalog.cardinality(k.ident) OPERATOR(pg_catalog.-) 1]::pg_catalog.name))" \
	"            THEN 'step not finished, invalid index'::pg_catalog.text" \
	"            ELSE 'step not finished'::pg_catalog.text END," \
	"       NULL::pg_catalog.text, s.index_name" \
	"  FROM dbops.migration_steps s" \
	"  CROSS JOIN LATERAL (SELECT pg_catalog.parse_ident(s.index_name) AS ident) k" \
	"  WHERE NOT pg_catalog.pg_is_in_recovery()" \
	"    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a" \
	"                    WHERE a.pid OPERATOR(pg_catalog.=) s.backend_pid" \
	"                      AND (a.backend_start IS NULL OR s.backend_start IS NULL" \
	"                           OR a.backend_start OPERATOR(pg_catalog.=) s.backend_start))" \
	"    AND NOT EXISTS (SELECT 1 FROM last l" \
	"                    WHERE l.version OPERATOR(pg_catalog.=) s.version" \
	"                      AND l.event OPERATOR(pg_catalog.=) 'failed'::pg_catalog.text) "

void
dbops_check_migrations(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr plan_steps = NULL;
	SPITupleTable *tt;
	int			nfailed = 0;
	int			nrolled = 0;
	int			nsteps = 0;
	DbopsCulprits shown;

	/* a 1.0 catalog has no dbops.migration_steps */
	if (OidIsValid(dbops_relid("migration_steps")))
		tt = dbops_kept_query(&plan_steps, MIGRATIONS_SQL "UNION ALL " MIGRATIONS_STEPS_SQL "ORDER BY 1");
	else
		tt = dbops_kept_query(&plan, MIGRATIONS_SQL "ORDER BY 1");

	dbops_culprits_init(&shown, &res->detail, 10, "", "; ");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *version = dbops_col_cstring(tt, i, 1);
		char	   *problem = dbops_col_text(tt, i, 2);
		char	   *sqlstate = dbops_col_cstring(tt, i, 3);

		CHECK_FOR_INTERRUPTS();

		if (strcmp(problem, "rolled back") == 0)
			nrolled++;
		else if (strncmp(problem, "step", 4) == 0)
			nsteps++;
		else
			nfailed++;
		/* rows may hold anything a writer put there: print a bounded part */
		if (!dbops_culprit(&shown))
			continue;
		appendStringInfo(&res->detail, "%s %s",
						 version ? ledger_echo(version) : "(null)", problem);
		if (strcmp(problem, "step not finished, invalid index") == 0)
		{
			char	   *index_name = dbops_col_cstring(tt, i, 4);

			appendStringInfo(&res->detail, " %s", dbops_echo(index_name, -1, 120));
		}
		else if (sqlstate)
		{
			char	   *msg = dbops_col_cstring(tt, i, 4);

			appendStringInfo(&res->detail, " (%s: %s)", ledger_echo(sqlstate),
							 msg ? dbops_echo(msg, -1, 120) : "no message");
		}
	}
	dbops_culprits_end(&shown);
	if (shown.count == 0)
		appendStringInfoString(&res->detail, "no failed, drifted, rolled back or unfinished migration");

	dbops_check_value(res, (double) (nfailed + nrolled + nsteps), "versions");
	if (nfailed > 0)
		appendStringInfoString(&res->hint,
							   "See SELECT * FROM dbops.migration_status() WHERE last_event = 'failed'; "
							   "fix and re-run the failed version, or acknowledge it with dbops.migration_repair(version, checksum).");
	else if (nsteps > 0)
		appendStringInfoString(&res->hint,
							   "A step's session ended before dbops.migration_step_finish(): run the step again "
							   "(dbops.migration_step_begin() drops an invalid index it left, and its statement builds it anew).");
	else
		appendStringInfoString(&res->hint,
							   "Rolled back versions are pending again: re-apply them or remove them from the release.");
}
