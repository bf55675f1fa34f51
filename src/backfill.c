/*-------------------------------------------------------------------------
 *
 * backfill.c
 *	  Batched, resumable backfills: what CALL dbops.backfill() needs from C.
 *
 *	  The batch loop is PL/pgSQL in backfill.sql (dbops.backfill() runs its
 *	  phases, dbops._backfill_<phase>(), committing between them).  Here:
 *
 *	   - dbops._backfill_begin(): refuses a server in recovery (25006) and a
 *		 transaction block, and returns the settings (the purge's GUCs and
 *		 dbops.backfill_yield), so the procedure sees them whether or not the
 *		 library was loaded in the session before;
 *	   - dbops._backfill_check(set, where, key_column): the caller's text is
 *		 pasted into an UPDATE, so it is checked with PostgreSQL's own
 *		 scanner and parser first: the where text must be one balanced
 *		 expression (it cannot close the parenthesis it is put in, nor end
 *		 the statement), the set text one SET list (no FROM, no WHERE of its
 *		 own) that does not assign the key column, and the statement they
 *		 make must parse as exactly one UPDATE.
 *
 *	  The statements themselves run with the caller's rights: nothing here
 *	  or in backfill.sql is SECURITY DEFINER.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "dbops.h"
#include "retention_exec.h"

static double dbops_backfill_yield = 0.25;

#define BACKFILL_HINT_SET \
	"set is the SET list of an UPDATE without the word SET, e.g. 'new_field = ''default'''; it may not contain FROM, WHERE or a ';', nor assign the key column."
#define BACKFILL_HINT_WHERE \
	"where is one boolean expression, e.g. 'new_field IS NULL'; it may not contain a ';' nor unbalanced parentheses."

void
dbops_backfill_init(void)
{
	DefineCustomRealVariable("dbops.backfill_yield",
							 "How much a backfill yields to other sessions running queries.",
							 "While other client sessions are active, a backfill sleeps this many times the duration of each batch after it; 0 never yields.",
							 &dbops_backfill_yield,
							 0.25, 0.0, 100.0,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

/*
 * dbops._backfill_begin(): the first thing CALL dbops.backfill() does.
 */
PG_FUNCTION_INFO_V1(dbops_backfill_begin);

#define BACKFILL_BEGIN_COLS 7

Datum
dbops_backfill_begin(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[BACKFILL_BEGIN_COLS];
	bool		nulls[BACKFILL_BEGIN_COLS] = {0};

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot backfill on a server in recovery"),
				 errdetail("CALL dbops.backfill() updates rows and records its runs."),
				 errhint("Run it on the primary; the updates reach the standbys by replication. dbops.backfill_progress can be read here.")));

	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("CALL dbops.backfill() cannot run inside a transaction block"),
				 errdetail("It commits after each batch."),
				 errhint("Run CALL dbops.backfill() on its own, outside BEGIN ... COMMIT and not from a function.")));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc, BACKFILL_BEGIN_COLS);
	tupdesc = BlessTupleDesc(tupdesc);

	values[0] = Int32GetDatum(dbops_purge_batch_target);
	values[1] = Int32GetDatum(dbops_purge_batch_max);
	values[2] = Int32GetDatum(dbops_purge_lock_timeout);
	values[3] = Int32GetDatum(dbops_purge_lock_retries);
	values[4] = Int32GetDatum(dbops_purge_max_replica_lag);
	values[5] = Float8GetDatum(dbops_backfill_yield);
	values[6] = Int32GetDatum(MyProcPid);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Scan text with PostgreSQL's lexer: its parentheses must balance without
 * ever closing one it did not open, and it may hold no ';'.  The lexer
 * raises on an unterminated string, quoted identifier or comment.
 */
static void
check_tokens(const char *text, const char *what, const char *hint)
{
	core_yyscan_t scanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			depth = 0;
	int			ntokens = 0;

	scanner = scanner_init(text, &yyextra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, scanner);

		if (tok == 0)
			break;
		ntokens++;
		if (tok == '(' || tok == '[')
			depth++;
		else if (tok == ')' || tok == ']')
		{
			if (--depth < 0)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("the %s of dbops.backfill() closes a parenthesis it did not open", what),
						 errdetail("At character %d.", yylloc + 1),
						 errhint("%s", hint)));
		}
		else if (tok == ';')
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("the %s of dbops.backfill() contains a ';'", what),
					 errdetail("At character %d: the text is put into one UPDATE statement.", yylloc + 1),
					 errhint("%s", hint)));
	}
	scanner_finish(scanner);
	if (depth != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the %s of dbops.backfill() has unbalanced parentheses", what),
				 errhint("%s", hint)));
	if (ntokens == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s of dbops.backfill() is empty", what),
				 errhint("%s", hint)));
}

/* raw_parser(sql), re-raising a syntax error with what it was and a hint */
static List *
parse_or_explain(const char *sql, const char *what, const char *hint)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	List	   *volatile raw = NIL;

	PG_TRY();
	{
		raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("the %s of dbops.backfill() does not parse: %s", what,
						dbops_bounded(edata->message, 200)),
				 errhint("%s", hint)));
	}
	PG_END_TRY();
	return raw;
}

/*
 * check_tokens(), re-raising the lexer's own errors (an unterminated
 * string, quoted identifier or comment) with what it was and a hint.
 */
static void
scan_or_explain(const char *text, const char *what, const char *hint)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	PG_TRY();
	{
		check_tokens(text, what, hint);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 edata->hint ? errmsg("%s", dbops_bounded(edata->message, 200)) :
				 errmsg("the %s of dbops.backfill() does not parse: %s", what,
						dbops_bounded(edata->message, 200)),
				 edata->detail ? errdetail("%s", edata->detail) : 0,
				 errhint("%s", edata->hint ? edata->hint : hint)));
	}
	PG_END_TRY();
}

/*
 * dbops._backfill_check(set text, where text, key_column name): raises
 * unless set and where are safe to put into
 *   UPDATE t SET <set> WHERE <key range> AND (<where>)
 * (each on lines of their own, so that a trailing -- comment ends with its
 * line).
 */
PG_FUNCTION_INFO_V1(dbops_backfill_check);

Datum
dbops_backfill_check(PG_FUNCTION_ARGS)
{
	char	   *set;
	char	   *where;
	char	   *key;
	List	   *raw;
	RawStmt    *rs;
	UpdateStmt *upd;
	ListCell   *lc;
	char	   *sql;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("set, where and the key column of dbops.backfill() must not be NULL"),
				 errhint("where defaults to 'true' (every row); give set as e.g. 'new_field = ''default''', and a where that skips done rows if the run may be repeated.")));
	set = text_to_cstring(PG_GETARG_TEXT_PP(0));
	where = text_to_cstring(PG_GETARG_TEXT_PP(1));
	key = NameStr(*PG_GETARG_NAME(2));

	scan_or_explain(set, "set", BACKFILL_HINT_SET);
	scan_or_explain(where, "where", BACKFILL_HINT_WHERE);

	/* the set list on its own: one UPDATE with no FROM, WHERE or RETURNING */
	sql = psprintf("UPDATE pg_catalog.pg_class SET\n%s\n", set);
	raw = parse_or_explain(sql, "set", BACKFILL_HINT_SET);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the set of dbops.backfill() is not one SET list"),
				 errhint("%s", BACKFILL_HINT_SET)));
	rs = linitial_node(RawStmt, raw);
	if (!IsA(rs->stmt, UpdateStmt))
		elog(ERROR, "dbops.backfill(): the set text did not parse as an UPDATE");
	upd = (UpdateStmt *) rs->stmt;
	if (upd->fromClause != NIL || upd->whereClause != NULL || upd->withClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the set of dbops.backfill() has a %s clause",
						upd->fromClause != NIL ? "FROM" : upd->whereClause ? "WHERE" : "WITH"),
				 errhint("%s", BACKFILL_HINT_SET)));
	/* (a RETURNING list fails to parse in the whole statement below) */
	foreach(lc, upd->targetList)
	{
		ResTarget  *rt = lfirst_node(ResTarget, lc);

		if (rt->name != NULL && strcmp(rt->name, key) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the set of dbops.backfill() assigns the key column \"%s\"", key),
					 errdetail("The backfill walks the table in the order of that column: a row given a new key could be updated twice or not at all."),
					 errhint("Update the key column another way, or name another unique column with key_column => ...")));
	}

	/* the whole statement the batches run: exactly one UPDATE */
	sql = psprintf("UPDATE pg_catalog.pg_class SET\n%s\nWHERE %s OPERATOR(pg_catalog.>) $1 AND %s OPERATOR(pg_catalog.<=) $2 AND (\n%s\n)",
				   set, quote_identifier(key), quote_identifier(key), where);
	raw = parse_or_explain(sql, "where", BACKFILL_HINT_WHERE);
	if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, UpdateStmt))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the set and where of dbops.backfill() do not make one UPDATE statement"),
				 errhint("%s", BACKFILL_HINT_WHERE)));
	upd = (UpdateStmt *) linitial_node(RawStmt, raw)->stmt;
	if (upd->fromClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("the set of dbops.backfill() has a FROM clause"),
				 errhint("%s", BACKFILL_HINT_SET)));

	PG_RETURN_VOID();
}
