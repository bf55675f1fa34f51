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
 * The caller's transaction is going to roll back (migrate() re-raises the
 * error), so the 'failed' event is written by a dynamic background worker
 * that connects to the same database and commits it on its own; the caller
 * waits for it to exit.  The fields travel in a DSM segment.
 * ------------------------------------------------------------------------
 */
#define LEDGER_NFIELDS 10

typedef struct LedgerFailure
{
	Oid			dboid;
	bool		recorded;		/* set by the worker after its commit */
	int			backend_pid;
	int			len[LEDGER_NFIELDS - 1];	/* -1: NULL */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} LedgerFailure;

PGDLLEXPORT void dbops_ledger_event_worker(Datum main_arg);

void
dbops_ledger_event_worker(Datum main_arg)
{
	dsm_segment *seg;
	LedgerFailure *lf;
	Datum		values[LEDGER_NFIELDS];
	char		nulls[LEDGER_NFIELDS];
	Oid			argtypes[LEDGER_NFIELDS];
	char	   *p;
	int			ret;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dbops ledger event writer could not map its dynamic shared memory segment")));
	lf = (LedgerFailure *) dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(lf->dboid, BOOTSTRAP_SUPERUSERID, 0);

	p = lf->data;
	for (int i = 0; i < LEDGER_NFIELDS - 1; i++)
	{
		argtypes[i] = TEXTOID;
		if (lf->len[i] < 0)
		{
			values[i] = (Datum) 0;
			nulls[i] = 'n';
		}
		else
		{
			values[i] = PointerGetDatum(cstring_to_text_with_len(p, lf->len[i]));
			nulls[i] = ' ';
			p += lf->len[i];
		}
	}
	argtypes[LEDGER_NFIELDS - 1] = INT4OID;
	values[LEDGER_NFIELDS - 1] = Int32GetDatum(lf->backend_pid);
	nulls[LEDGER_NFIELDS - 1] = ' ';

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* never wait long for a lock the waiting caller might hold */
	SetConfigOption("lock_timeout", "5000", PGC_SUSET, PGC_S_OVERRIDE);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "recording a failed migration attempt");

	ret = SPI_execute_with_args("INSERT INTO dbops.migration_events "
								"(version, event, operation, checksum, sqlstate, message, "
								" username, \"session_user\", application_name, client_addr, backend_pid) "
								"VALUES ($1, 'failed', $2, $3, $4, $5, $6, $7, $8, $9::inet, $10)",
								LEDGER_NFIELDS, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not insert into dbops.migration_events: %s",
			 SPI_result_code_string(ret));

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	pg_write_barrier();
	lf->recorded = true;
	dsm_detach(seg);
	proc_exit(0);
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
	Oid			nsp;
	Oid			events;
	Size		size;
	dsm_segment *seg;
	LedgerFailure *lf;
	char	   *p;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	bool		recorded;
	char	   *version;
	text	   *args[LEDGER_NFIELDS - 1];

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (RecoveryInProgress())
		PG_RETURN_BOOL(false);

	/* record only for roles that could insert the event themselves */
	nsp = get_namespace_oid("dbops", false);
	events = get_relname_relid("migration_events", nsp);
	if (!OidIsValid(events) ||
		pg_class_aclcheck(events, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("failed attempt of migration %s not recorded in dbops.migration_events", version),
				 errdetail("Role \"%s\" may not insert into dbops.migration_events.",
						   GetUserNameFromId(GetUserId(), false))));
		PG_RETURN_BOOL(false);
	}

	size = offsetof(LedgerFailure, data);
	for (int i = 0; i < LEDGER_NFIELDS - 1; i++)
	{
		args[i] = PG_ARGISNULL(i) ? NULL : PG_GETARG_TEXT_PP(i);
		if (args[i])
			size += VARSIZE_ANY_EXHDR(args[i]);
	}

	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("failed attempt of migration %s not recorded in dbops.migration_events", version),
				 errdetail("Too many dynamic shared memory segments are in use.")));
		PG_RETURN_BOOL(false);
	}
	lf = (LedgerFailure *) dsm_segment_address(seg);
	lf->dboid = MyDatabaseId;
	lf->recorded = false;
	lf->backend_pid = PG_ARGISNULL(LEDGER_NFIELDS - 1) ? MyProcPid : PG_GETARG_INT32(LEDGER_NFIELDS - 1);
	p = lf->data;
	for (int i = 0; i < LEDGER_NFIELDS - 1; i++)
	{
		if (args[i] == NULL)
			lf->len[i] = -1;
		else
		{
			lf->len[i] = VARSIZE_ANY_EXHDR(args[i]);
			memcpy(p, VARDATA_ANY(args[i]), lf->len[i]);
			p += lf->len[i];
		}
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "dbops");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "dbops_ledger_event_worker");
	snprintf(worker.bgw_name, BGW_MAXLEN, "dbops ledger event writer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "dbops ledger event writer");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

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
