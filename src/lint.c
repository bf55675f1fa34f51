/*-------------------------------------------------------------------------
 *
 * lint.c
 *	  dbops.migration_lint(): the statements of a migration that would
 *	  block production traffic, found with PostgreSQL's own parser.
 *
 * The body is split and parsed by raw_parser(), exactly as the server will
 * parse it; nothing is executed and no lock is taken.  Each statement is
 * matched against the rules below, with the lock it takes (for ALTER TABLE,
 * from AlterTableGetLockLevel(), the function ALTER TABLE itself uses) and
 * what that lock blocks.  A few rules read the catalog, with the caller's
 * rights and search_path, as the migration will: the current type of a
 * column whose type changes, the validated CHECK constraints that make SET
 * NOT NULL free, and the volatility of the functions in a new column's
 * default.
 *
 * Tables created earlier in the same body are new: nobody else can see
 * them before the migration commits, so nothing done to them is a hazard.
 *
 * A body is one transaction, as dbops.migrate() runs it, unless
 * single_transaction is false: then it is read as psql runs a script,
 * each statement on its own outside BEGIN ... COMMIT.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_coerce.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "parser/scansup.h"
#include "storage/lockdefs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "compat.h"
#include "dbops.h"

/* The rules: a name to allow each by, and the safe form of the statement. */
typedef enum LintRule
{
	LINT_CREATE_INDEX,
	LINT_ADD_COLUMN_REWRITE,
	LINT_ALTER_COLUMN_TYPE,
	LINT_ADD_FOREIGN_KEY,
	LINT_ADD_CHECK,
	LINT_SET_NOT_NULL,
	LINT_ADD_UNIQUE,
	LINT_TABLE_REWRITE,
	LINT_VACUUM_FULL,
	LINT_CLUSTER,
	LINT_LOCK_TABLE,
	LINT_RENAME_TABLE,
	LINT_RENAME_COLUMN,
	LINT_DROP_TABLE,
	LINT_DROP_COLUMN,
	LINT_DROP_INDEX,
	LINT_REINDEX,
	LINT_NOT_IN_TRANSACTION,
	LINT_LOCK_HELD,
	LINT_NRULES
} LintRule;

typedef struct LintRuleInfo
{
	const char *name;
	const char *safe_form;
} LintRuleInfo;

static const LintRuleInfo lint_rules[LINT_NRULES] = {
	[LINT_CREATE_INDEX] = {"create_index",
	"CREATE INDEX CONCURRENTLY, outside a transaction block, as a step (dbops.migration_step_begin() with index_name, the statement, dbops.migration_step_finish(), which checks the index is valid)"},
	[LINT_ADD_COLUMN_REWRITE] = {"add_column_rewrite",
	"add the column with no default or a constant one, set the default for new rows with ALTER COLUMN ... SET DEFAULT, and fill the existing rows in batches (CALL dbops.backfill)"},
	[LINT_ALTER_COLUMN_TYPE] = {"alter_column_type",
	"add a column of the new type, fill it in batches, move the application to it, then drop the old column"},
	[LINT_ADD_FOREIGN_KEY] = {"add_foreign_key",
	"ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a later transaction (it takes SHARE UPDATE EXCLUSIVE: reads and writes go on)"},
	[LINT_ADD_CHECK] = {"add_check",
	"ADD CONSTRAINT ... CHECK (...) NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a later transaction (it takes SHARE UPDATE EXCLUSIVE: reads and writes go on)"},
	[LINT_SET_NOT_NULL] = {"set_not_null",
	"ADD CONSTRAINT ... CHECK (column IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later transaction, then SET NOT NULL (it uses the validated constraint and scans nothing) and drop the CHECK"},
	[LINT_ADD_UNIQUE] = {"add_unique",
	"CREATE UNIQUE INDEX CONCURRENTLY in a step of its own, then ADD CONSTRAINT ... UNIQUE (or PRIMARY KEY) USING INDEX, which only attaches it"},
	[LINT_TABLE_REWRITE] = {"table_rewrite",
	"build a new table beside the old one and move the rows in batches, or schedule the change for a maintenance window"},
	[LINT_VACUUM_FULL] = {"vacuum_full",
	"plain VACUUM (it blocks neither reads nor writes); to give space back to the file system, rebuild the table online with a tool made for that, or in a maintenance window"},
	[LINT_CLUSTER] = {"cluster",
	"a maintenance window, or an online rebuild; an index on the order the queries need often does the job"},
	[LINT_LOCK_TABLE] = {"lock_table",
	"let each statement take the lock it needs, under a short lock_timeout (dbops.migration_lock_timeout), and keep the transaction short"},
	[LINT_RENAME_TABLE] = {"rename_table",
	"first deploy application code that works with both names (a view under the new name, say), then rename, then drop the view"},
	[LINT_RENAME_COLUMN] = {"rename_column",
	"add the new column, write both, fill it in batches, move the readers, then drop the old column"},
	[LINT_DROP_TABLE] = {"drop_table",
	"stop using the table in the application and deploy that first; then drop it (or rename it aside and drop it in a later release)"},
	[LINT_DROP_COLUMN] = {"drop_column",
	"stop using the column in the application and deploy that first; then drop it"},
	[LINT_DROP_INDEX] = {"drop_index",
	"DROP INDEX CONCURRENTLY, outside a transaction block (a step of its own)"},
	[LINT_REINDEX] = {"reindex",
	"REINDEX ... CONCURRENTLY, outside a transaction block (a step of its own)"},
	[LINT_NOT_IN_TRANSACTION] = {"not_in_transaction",
	"run the statement on its own, outside a transaction block: a step (dbops.migration_step_begin(), the statement, dbops.migration_step_finish()), or its own psql statement outside BEGIN ... COMMIT"},
	[LINT_LOCK_HELD] = {"lock_held",
	"commit right after the statement that takes the strong lock (one locking change per migration), or make it the last statement of its transaction"},
};

/* dbops.migration_lint: what dbops.migrate() does with a hazard */
typedef enum LintMode
{
	LINT_MODE_OFF,
	LINT_MODE_WARN,
	LINT_MODE_ERROR
} LintMode;

static const struct config_enum_entry lint_mode_options[] = {
	{"off", LINT_MODE_OFF, false},
	{"warn", LINT_MODE_WARN, false},
	{"error", LINT_MODE_ERROR, false},
	{NULL, 0, false}
};

static int	lint_mode = LINT_MODE_WARN;
static char *lint_allow = NULL;

/* the names of the lock modes, as the documentation writes them */
static const char *const lock_names[] = {
	NULL, "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE",
	"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
	"ACCESS EXCLUSIVE"
};

typedef struct LintFinding
{
	int			statement;		/* 1-based */
	LintRule	rule;
	char	   *relation;
	LOCKMODE	lock;			/* NoLock: none */
	char	   *why;
	bool		allowed;
	char	   *text;
} LintFinding;

/* a CHECK (column IS NOT NULL) added NOT VALID in the body */
typedef struct NotNullCheck
{
	char	   *rel;
	char	   *column;
	char	   *conname;
	bool		validated;
} NotNullCheck;

typedef struct LintState
{
	const char *body;
	bool		single_xact;
	bool		in_block;		/* script mode: inside BEGIN ... COMMIT */
	bool		allowed[LINT_NRULES];
	bool		allowed_first[LINT_NRULES]; /* as the lint was called */
	List	   *created;		/* char *: tables created in the body */
	List	   *checks;			/* NotNullCheck * */
	List	   *findings;		/* LintFinding * */

	/* the statement being read */
	int			stmt_no;
	int			stmt_location;
	int			stmt_len;
	char	   *stmt_text;
	List	   *touched;		/* char *: existing tables it locks */
	bool		dml;			/* it reads or writes rows of one of them */

	/* the transaction so far */
	int			strong_stmt;	/* 0: no strong lock yet */
	char	   *strong_rel;
	LOCKMODE	strong_mode;
	bool		strong_reported;
} LintState;

static bool
in_transaction(LintState *st)
{
	return st->single_xact || st->in_block;
}

static char *
rv_name(const RangeVar *rv)
{
	if (rv->schemaname)
		return psprintf("%s.%s", quote_identifier(rv->schemaname),
						quote_identifier(rv->relname));
	return pstrdup(quote_identifier(rv->relname));
}

/* a name as rv_name() writes it, from a list of String nodes */
static char *
names_name(List *names)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, names)
	{
		if (buf.len > 0)
			appendStringInfoChar(&buf, '.');
		appendStringInfoString(&buf, quote_identifier(strVal(lfirst(lc))));
	}
	return buf.data;
}

/* same table?  A name without a schema matches any schema. */
static bool
same_rel(const char *a, const char *b)
{
	const char *da = strrchr(a, '.');
	const char *db = strrchr(b, '.');

	if (strcmp(a, b) == 0)
		return true;
	if ((da == NULL) != (db == NULL))
		return strcmp(da ? da + 1 : a, db ? db + 1 : b) == 0;
	return false;
}

static bool
is_new(LintState *st, const char *rel)
{
	ListCell   *lc;

	foreach(lc, st->created)
	{
		if (same_rel((const char *) lfirst(lc), rel))
			return true;
	}
	return false;
}

static void
add_finding(LintState *st, LintRule rule, const char *rel, LOCKMODE lock,
			const char *fmt,...) pg_attribute_printf(5, 6);

static void
add_finding(LintState *st, LintRule rule, const char *rel, LOCKMODE lock,
			const char *fmt,...)
{
	LintFinding *f = palloc0(sizeof(LintFinding));
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	f->statement = st->stmt_no;
	f->rule = rule;
	f->relation = rel ? pstrdup(rel) : NULL;
	f->lock = lock;
	f->why = buf.data;
	f->allowed = st->allowed[rule];
	f->text = st->stmt_text;
	st->findings = lappend(st->findings, f);
}

/* The statement locks existing table rel (in a mode that blocks writes?). */
static void
touch(LintState *st, const char *rel, LOCKMODE mode)
{
	if (is_new(st, rel))
		return;
	st->touched = lappend(st->touched, pstrdup(rel));
	if (mode >= ShareLock && st->strong_stmt == 0 && in_transaction(st))
	{
		st->strong_stmt = st->stmt_no;
		st->strong_rel = pstrdup(rel);
		st->strong_mode = mode;
	}
}

/* The statement reads or writes rows of rel (NULL: none). */
static void
touch_rows(LintState *st, RangeVar *rel)
{
	if (rel == NULL)
		return;
	touch(st, rv_name(rel), RowExclusiveLock);
	st->dml = true;
}

static const char *
blocks_of(LOCKMODE mode)
{
	if (mode == AccessExclusiveLock)
		return "reads and writes";
	if (mode >= ShareLock)
		return "writes";
	if (mode == ShareUpdateExclusiveLock)
		return "schema changes, VACUUM, ANALYZE and CREATE INDEX CONCURRENTLY";
	return NULL;
}

/* ---- catalog reads, with the caller's rights and search_path ---- */

/* Any function of this name volatile?  Unknown names count as volatile. */
static bool
func_volatile_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall))
	{
		FuncCall   *fc = (FuncCall *) node;
		FuncCandidateList cands;
		bool		found = false;

		cands = FuncnameGetCandidates(fc->funcname, -1, NIL, false, false,
									  false, true);
		for (; cands != NULL; cands = cands->next)
		{
			found = true;
			if (func_volatile(cands->oid) == PROVOLATILE_VOLATILE)
			{
				*(char **) context = NameListToString(fc->funcname);
				return true;
			}
		}
		if (!found)
		{
			*(char **) context = NameListToString(fc->funcname);
			return true;
		}
	}
	return raw_expression_tree_walker(node, func_volatile_walker, context);
}

/* does a validated CHECK (attnum IS NOT NULL) exist on relid? */
static bool
catalog_not_null_check(Oid relid, AttrNumber attnum)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found = false;

	rel = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_constraint_conrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, ConstraintRelidTypidNameIndexId, true,
							  NULL, 1, &key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
		Datum		d;
		bool		isnull;
		Node	   *expr;

		if (con->contype != CONSTRAINT_CHECK || !con->convalidated)
			continue;
		d = heap_getattr(tup, Anum_pg_constraint_conbin, RelationGetDescr(rel), &isnull);
		if (isnull)
			continue;
		expr = stringToNode(TextDatumGetCString(d));
		if (IsA(expr, NullTest))
		{
			NullTest   *nt = (NullTest *) expr;

			found = nt->nulltesttype == IS_NOT_NULL && !nt->argisrow &&
				IsA(nt->arg, Var) && ((Var *) nt->arg)->varattno == attnum;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Does changing a column of type oldtyp/oldmod to newtyp/newmod, without
 * USING, leave the rows as they are?  Only what ALTER TABLE is known to do
 * without a rewrite: a binary-coercible type without a length limit
 * (varchar to text), a longer or no limit on varchar and varbit, a larger
 * precision of numeric at the same scale.
 */
static bool
type_change_keeps_rows(Oid oldtyp, int32 oldmod, Oid newtyp, int32 newmod)
{
	if (oldtyp == newtyp)
	{
		if (oldmod == newmod)
			return true;
		if (newtyp == VARCHAROID || newtyp == VARBITOID)
			return newmod == -1 || (oldmod != -1 && newmod > oldmod);
		if (newtyp == NUMERICOID)
		{
			if (newmod == -1)
				return true;
			if (oldmod == -1)
				return false;
			/* typmod: ((precision << 16) | scale) + VARHDRSZ */
			return ((oldmod - VARHDRSZ) & 0xffff) == ((newmod - VARHDRSZ) & 0xffff) &&
				((newmod - VARHDRSZ) >> 16) >= ((oldmod - VARHDRSZ) >> 16);
		}
		return false;
	}
	return newmod == -1 && get_typtype(newtyp) != TYPTYPE_DOMAIN &&
		IsBinaryCoercible(oldtyp, newtyp);
}

/* The table of an index named by a list of String nodes, as rv_name() writes it; NULL if not found. */
static char *
index_table(List *names)
{
	Oid			indexid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	Oid			tableid;
	char	   *relname;
	char	   *nspname;

	if (!OidIsValid(indexid) || get_rel_relkind(indexid) != RELKIND_INDEX)
		return NULL;
	tableid = IndexGetRelation(indexid, true);
	relname = OidIsValid(tableid) ? get_rel_name(tableid) : NULL;
	nspname = relname ? get_namespace_name(get_rel_namespace(tableid)) : NULL;
	if (relname == NULL || nspname == NULL)
		return NULL;
	/* as the body names it: with a schema only if the index's name has one */
	if (list_length(names) > 1)
		return psprintf("%s.%s", quote_identifier(nspname), quote_identifier(relname));
	return pstrdup(quote_identifier(relname));
}

/* ---- the rules, per statement ---- */

static LOCKMODE
cmd_lock(AlterTableCmd *cmd)
{
	return AlterTableGetLockLevel(list_make1(cmd));
}

static bool
is_serial(TypeName *tn)
{
	char	   *name;

	if (tn == NULL || list_length(tn->names) > 2 || tn->arrayBounds != NIL)
		return false;
	if (list_length(tn->names) == 2 &&
		strcmp(strVal(linitial(tn->names)), "pg_catalog") != 0)
		return false;
	name = strVal(llast(tn->names));
	return strcmp(name, "serial") == 0 || strcmp(name, "bigserial") == 0 ||
		strcmp(name, "smallserial") == 0 || strcmp(name, "serial2") == 0 ||
		strcmp(name, "serial4") == 0 || strcmp(name, "serial8") == 0;
}

/* a NOT NULL test of one column: its name, or NULL */
static char *
not_null_column(Node *expr)
{
	NullTest   *nt;
	ColumnRef  *cr;

	if (expr == NULL || !IsA(expr, NullTest))
		return NULL;
	nt = (NullTest *) expr;
	if (nt->nulltesttype != IS_NOT_NULL || nt->arg == NULL || !IsA(nt->arg, ColumnRef))
		return NULL;
	cr = (ColumnRef *) nt->arg;
	if (list_length(cr->fields) != 1 || !IsA(linitial(cr->fields), String))
		return NULL;
	return strVal(linitial(cr->fields));
}

static void
lint_constraint(LintState *st, const char *rel, Constraint *con, LOCKMODE lock,
				const char *column)
{
	switch (con->contype)
	{
		case CONSTR_FOREIGN:
			{
				char	   *pk = rv_name(con->pktable);

				if (!con->skip_validation)
					add_finding(st, LINT_ADD_FOREIGN_KEY, rel, lock,
								"validating the new foreign key reads every row of %s under %s on %s and on %s: writes to both wait",
								rel, lock_names[lock], rel, pk);
				touch(st, pk, lock);
			}
			break;
		case CONSTR_CHECK:
			if (!con->skip_validation)
				add_finding(st, LINT_ADD_CHECK, rel, lock,
							"validating the new CHECK constraint reads every row of %s under %s: %s wait",
							rel, lock_names[lock], blocks_of(lock));
			else
			{
				char	   *col = not_null_column(con->raw_expr);

				if (col && con->conname)
				{
					NotNullCheck *c = palloc(sizeof(NotNullCheck));

					c->rel = pstrdup(rel);
					c->column = pstrdup(col);
					c->conname = pstrdup(con->conname);
					c->validated = false;
					st->checks = lappend(st->checks, c);
				}
			}
			break;
		case CONSTR_PRIMARY:
		case CONSTR_UNIQUE:
		case CONSTR_EXCLUSION:
			if (con->indexname == NULL)
				add_finding(st, LINT_ADD_UNIQUE, rel, lock,
							"ADD %s builds its index, reading every row of %s, under %s: %s wait",
							con->contype == CONSTR_PRIMARY ? "PRIMARY KEY" :
							con->contype == CONSTR_UNIQUE ? "UNIQUE" : "EXCLUDE",
							rel, lock_names[lock], blocks_of(lock));
			break;
		case CONSTR_NOTNULL:
			/* ADD CONSTRAINT ... NOT NULL col: from 18 on (a syntax error before) */
			if (column == NULL && !con->skip_validation)
				add_finding(st, LINT_SET_NOT_NULL, rel, lock,
							"the new NOT NULL constraint reads every row of %s under %s: %s wait",
							rel, lock_names[lock], blocks_of(lock));
			break;
		default:
			break;
	}
}

static void
lint_add_column(LintState *st, const char *rel, ColumnDef *def, LOCKMODE lock)
{
	ListCell   *lc;

	if (is_serial(def->typeName))
		add_finding(st, LINT_ADD_COLUMN_REWRITE, rel, lock,
					"a %s column's default, nextval(), is volatile: every existing row of %s is rewritten under %s: %s wait",
					strVal(llast(def->typeName->names)), rel, lock_names[lock], blocks_of(lock));
	foreach(lc, def->constraints)
	{
		Constraint *con = lfirst_node(Constraint, lc);
		char	   *fn = NULL;

		switch (con->contype)
		{
			case CONSTR_DEFAULT:
				if (func_volatile_walker(con->raw_expr, &fn))
					add_finding(st, LINT_ADD_COLUMN_REWRITE, rel, lock,
								"the default calls %s(), which is volatile (or unknown): every existing row of %s is rewritten under %s: %s wait",
								fn, rel, lock_names[lock], blocks_of(lock));
				break;
			case CONSTR_IDENTITY:
				add_finding(st, LINT_ADD_COLUMN_REWRITE, rel, lock,
							"an identity column fills every existing row of %s, rewriting it under %s: %s wait",
							rel, lock_names[lock], blocks_of(lock));
				break;
			case CONSTR_GENERATED:
				if (DBOPS_CONSTR_GENERATED_STORED(con))
					add_finding(st, LINT_ADD_COLUMN_REWRITE, rel, lock,
								"a stored generated column is computed for every existing row of %s, rewriting it under %s: %s wait",
								rel, lock_names[lock], blocks_of(lock));
				break;
			default:
				lint_constraint(st, rel, con,
								con->contype == CONSTR_FOREIGN ? ShareRowExclusiveLock : lock,
								def->colname);
				break;
		}
	}
}

static void
lint_alter_type(LintState *st, const char *rel, RangeVar *rv, AlterTableCmd *cmd,
				LOCKMODE lock)
{
	ColumnDef  *def = castNode(ColumnDef, cmd->def);
	Oid			relid;
	HeapTuple	att;
	Type		newtype;
	int32		newmod;

	if (def->raw_default != NULL)
	{
		add_finding(st, LINT_ALTER_COLUMN_TYPE, rel, lock,
					"changing the type of %s with USING rewrites %s and rebuilds its indexes under %s: %s wait",
					quote_identifier(cmd->name), rel, lock_names[lock], blocks_of(lock));
		return;
	}
	relid = RangeVarGetRelid(rv, NoLock, true);
	att = OidIsValid(relid) ? SearchSysCacheAttName(relid, cmd->name) : NULL;
	newtype = LookupTypeName(NULL, def->typeName, &newmod, true);
	if (att != NULL && newtype != NULL)
	{
		Form_pg_attribute a = (Form_pg_attribute) GETSTRUCT(att);
		Oid			newtyp = typeTypeId(newtype);
		bool		keeps = type_change_keeps_rows(a->atttypid, a->atttypmod, newtyp, newmod);

		if (!keeps)
			add_finding(st, LINT_ALTER_COLUMN_TYPE, rel, lock,
						"changing %s from %s to %s rewrites %s and rebuilds its indexes under %s: %s wait",
						quote_identifier(cmd->name),
						format_type_with_typemod(a->atttypid, a->atttypmod),
						format_type_with_typemod(newtyp, newmod),
						rel, lock_names[lock], blocks_of(lock));
	}
	else
		add_finding(st, LINT_ALTER_COLUMN_TYPE, rel, lock,
					"changing the type of %s may rewrite %s and rebuild its indexes under %s (%s): %s wait",
					quote_identifier(cmd->name), rel, lock_names[lock],
					att == NULL ? "the column is not in the catalog to compare with" :
					"the new type is not in the catalog",
					blocks_of(lock));
	if (att != NULL)
		ReleaseSysCache(att);
	if (newtype != NULL)
		ReleaseSysCache(newtype);
}

static void
lint_set_not_null(LintState *st, const char *rel, RangeVar *rv, const char *column,
				  LOCKMODE lock)
{
	ListCell   *lc;
	Oid			relid;

	foreach(lc, st->checks)
	{
		NotNullCheck *c = (NotNullCheck *) lfirst(lc);

		if (c->validated && same_rel(c->rel, rel) && strcmp(c->column, column) == 0)
			return;
	}
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (OidIsValid(relid))
	{
		AttrNumber	attnum = get_attnum(relid, column);
		HeapTuple	att;
		bool		notnull = false;

		if (attnum != InvalidAttrNumber)
		{
			att = SearchSysCacheAttNum(relid, attnum);
			if (HeapTupleIsValid(att))
			{
				notnull = ((Form_pg_attribute) GETSTRUCT(att))->attnotnull;
				ReleaseSysCache(att);
			}
			if (notnull || catalog_not_null_check(relid, attnum))
				return;
		}
	}
	add_finding(st, LINT_SET_NOT_NULL, rel, lock,
				"SET NOT NULL reads every row of %s under %s, unless a validated CHECK (%s IS NOT NULL) proves it: %s wait",
				rel, lock_names[lock], quote_identifier(column), blocks_of(lock));
}

static void
lint_alter_table(LintState *st, AlterTableStmt *stmt)
{
	char	   *rel = rv_name(stmt->relation);
	ListCell   *lc;

	if (stmt->objtype != OBJECT_TABLE)
		return;
	if (is_new(st, rel))
		return;
	touch(st, rel, AlterTableGetLockLevel(stmt->cmds));
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		LOCKMODE	lock = cmd_lock(cmd);

		switch (cmd->subtype)
		{
			case AT_AddColumn:
				lint_add_column(st, rel, castNode(ColumnDef, cmd->def), lock);
				break;
			case AT_AlterColumnType:
				lint_alter_type(st, rel, stmt->relation, cmd, lock);
				break;
			case AT_AddConstraint:
				lint_constraint(st, rel, castNode(Constraint, cmd->def), lock, NULL);
				break;
			case AT_ValidateConstraint:
				{
					ListCell   *c;

					foreach(c, st->checks)
					{
						NotNullCheck *nn = (NotNullCheck *) lfirst(c);

						if (same_rel(nn->rel, rel) && strcmp(nn->conname, cmd->name) == 0)
							nn->validated = true;
					}
				}
				break;
			case AT_SetNotNull:
				lint_set_not_null(st, rel, stmt->relation, cmd->name, lock);
				break;
			case AT_DropColumn:
				add_finding(st, LINT_DROP_COLUMN, rel, lock,
							"clients still reading or writing %s.%s fail as soon as this commits",
							rel, quote_identifier(cmd->name));
				break;
			case AT_SetLogged:
			case AT_SetUnLogged:
			case AT_SetAccessMethod:
				add_finding(st, LINT_TABLE_REWRITE, rel, lock,
							"%s rewrites %s under %s: %s wait",
							cmd->subtype == AT_SetAccessMethod ? "SET ACCESS METHOD" :
							cmd->subtype == AT_SetLogged ? "SET LOGGED" : "SET UNLOGGED",
							rel, lock_names[lock], blocks_of(lock));
				break;
			default:
				break;
		}
	}
}

static void
lint_statement(LintState *st, Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateStmt:
			st->created = lappend(st->created, rv_name(((CreateStmt *) stmt)->relation));
			break;
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *c = (CreateTableAsStmt *) stmt;

				if (c->into && c->into->rel)
					st->created = lappend(st->created, rv_name(c->into->rel));
			}
			break;
		case T_AlterTableStmt:
			lint_alter_table(st, (AlterTableStmt *) stmt);
			break;
		case T_IndexStmt:
			{
				IndexStmt  *ix = (IndexStmt *) stmt;
				char	   *rel = rv_name(ix->relation);

				if (ix->concurrent && in_transaction(st))
					add_finding(st, LINT_NOT_IN_TRANSACTION, rel, NoLock,
								"CREATE INDEX CONCURRENTLY cannot run inside a transaction block: the migration fails (SQLSTATE 25001)");
				else if (!ix->concurrent && !is_new(st, rel))
					add_finding(st, LINT_CREATE_INDEX, rel, ShareLock,
								"CREATE INDEX reads and sorts every row of %s under SHARE: INSERT, UPDATE and DELETE wait",
								rel);
				touch(st, rel, ix->concurrent ? ShareUpdateExclusiveLock : ShareLock);
			}
			break;
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;
				ListCell   *lc;

				if (d->removeType != OBJECT_TABLE && d->removeType != OBJECT_INDEX)
					break;
				if (d->removeType == OBJECT_INDEX && d->concurrent && in_transaction(st))
				{
					add_finding(st, LINT_NOT_IN_TRANSACTION, names_name(linitial(d->objects)), NoLock,
								"DROP INDEX CONCURRENTLY cannot run inside a transaction block: the migration fails (SQLSTATE 25001)");
					break;
				}
				foreach(lc, d->objects)
				{
					char	   *name = names_name((List *) lfirst(lc));

					if (is_new(st, name))
						continue;
					if (d->removeType == OBJECT_TABLE)
						add_finding(st, LINT_DROP_TABLE, name, AccessExclusiveLock,
									"clients still using %s fail as soon as this commits, and its rows are gone",
									name);
					else
					{
						char	   *table = index_table(lfirst(lc));

						if (!d->concurrent)
							add_finding(st, LINT_DROP_INDEX, name, AccessExclusiveLock,
										"DROP INDEX holds ACCESS EXCLUSIVE on %s, the index's table, until the transaction ends: reads and writes of it wait",
										table ? table : "the index's table");
						name = table;
					}
					if (name)
						touch(st, name, d->concurrent ? ShareUpdateExclusiveLock : AccessExclusiveLock);
				}
			}
			break;
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) stmt;
				char	   *rel;

				if (r->relation == NULL)
					break;
				rel = rv_name(r->relation);
				if (is_new(st, rel))
					break;
				if (r->renameType == OBJECT_TABLE)
					add_finding(st, LINT_RENAME_TABLE, rel, AccessExclusiveLock,
								"clients still using the name %s fail as soon as this commits",
								rel);
				else if (r->renameType == OBJECT_COLUMN && r->relationType == OBJECT_TABLE)
					add_finding(st, LINT_RENAME_COLUMN, rel, AccessExclusiveLock,
								"clients still using the column %s.%s fail as soon as this commits",
								rel, quote_identifier(r->subname));
				touch(st, rel, AccessExclusiveLock);
			}
			break;
		case T_VacuumStmt:
			{
				VacuumStmt *v = (VacuumStmt *) stmt;
				ListCell   *lc;
				bool		full = false;

				if (!v->is_vacuumcmd)
					break;
				if (in_transaction(st))
					add_finding(st, LINT_NOT_IN_TRANSACTION, NULL, NoLock,
								"VACUUM cannot run inside a transaction block: the migration fails (SQLSTATE 25001)");
				foreach(lc, v->options)
				{
					DefElem    *opt = lfirst_node(DefElem, lc);

					if (strcmp(opt->defname, "full") == 0)
						full = defGetBoolean(opt);
				}
				if (!full)
					break;
				if (v->rels == NIL)
					add_finding(st, LINT_VACUUM_FULL, NULL, AccessExclusiveLock,
								"VACUUM FULL rewrites every table of the database in turn, each under ACCESS EXCLUSIVE: reads and writes of it wait");
				foreach(lc, v->rels)
				{
					VacuumRelation *vr = lfirst_node(VacuumRelation, lc);
					char	   *rel = rv_name(vr->relation);

					add_finding(st, LINT_VACUUM_FULL, rel, AccessExclusiveLock,
								"VACUUM FULL rewrites %s and its indexes under ACCESS EXCLUSIVE: reads and writes wait",
								rel);
				}
			}
			break;
		case T_ClusterStmt:
			{
				ClusterStmt *c = (ClusterStmt *) stmt;
				char	   *rel = c->relation ? rv_name(c->relation) : NULL;

				add_finding(st, LINT_CLUSTER, rel, AccessExclusiveLock,
							"CLUSTER rewrites %s and its indexes under ACCESS EXCLUSIVE: reads and writes wait",
							rel ? rel : "every clustered table");
				if (rel)
					touch(st, rel, AccessExclusiveLock);
			}
			break;
		case T_LockStmt:
			{
				LockStmt   *l = (LockStmt *) stmt;
				ListCell   *lc;

				foreach(lc, l->relations)
				{
					char	   *rel = rv_name(lfirst_node(RangeVar, lc));

					if (l->mode >= ShareLock && !is_new(st, rel))
						add_finding(st, LINT_LOCK_TABLE, rel, l->mode,
									"LOCK TABLE holds %s on %s until the transaction ends: %s wait",
									lock_names[l->mode], rel, blocks_of(l->mode));
					touch(st, rel, l->mode);
				}
			}
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;
				ListCell   *lc;
				bool		concurrently = false;
				char	   *rel;

				foreach(lc, r->params)
				{
					DefElem    *opt = lfirst_node(DefElem, lc);

					if (strcmp(opt->defname, "concurrently") == 0)
						concurrently = defGetBoolean(opt);
				}
				if (r->relation == NULL)
				{
					if (in_transaction(st))
						add_finding(st, LINT_NOT_IN_TRANSACTION, NULL, NoLock,
									"REINDEX SCHEMA, DATABASE and SYSTEM cannot run inside a transaction block: the migration fails (SQLSTATE 25001)");
					break;
				}
				rel = rv_name(r->relation);
				if (concurrently && in_transaction(st))
					add_finding(st, LINT_NOT_IN_TRANSACTION, rel, NoLock,
								"REINDEX CONCURRENTLY cannot run inside a transaction block: the migration fails (SQLSTATE 25001)");
				else if (!concurrently && !is_new(st, rel))
					add_finding(st, LINT_REINDEX, rel, ShareLock,
								"REINDEX holds SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each index it rebuilds (queries that would use it wait)");
				touch(st, rel, concurrently ? ShareUpdateExclusiveLock : ShareLock);
			}
			break;
		case T_TruncateStmt:
			{
				ListCell   *lc;

				foreach(lc, ((TruncateStmt *) stmt)->relations)
					touch(st, rv_name(lfirst_node(RangeVar, lc)), AccessExclusiveLock);
			}
			break;
		case T_InsertStmt:
			touch_rows(st, ((InsertStmt *) stmt)->relation);
			break;
		case T_UpdateStmt:
			touch_rows(st, ((UpdateStmt *) stmt)->relation);
			break;
		case T_DeleteStmt:
			touch_rows(st, ((DeleteStmt *) stmt)->relation);
			break;
		case T_MergeStmt:
			touch_rows(st, ((MergeStmt *) stmt)->relation);
			break;
		case T_CopyStmt:
			touch_rows(st, ((CopyStmt *) stmt)->relation);
			break;
		default:
			break;
	}
}

/* The statement after a strong lock: does it keep the lock waiting long? */
static void
lint_lock_held(LintState *st)
{
	ListCell   *lc;
	bool		other = false;

	if (st->strong_stmt == 0 || st->strong_stmt == st->stmt_no || st->strong_reported)
		return;
	foreach(lc, st->touched)
	{
		if (!same_rel((const char *) lfirst(lc), st->strong_rel))
			other = true;
	}
	if (!other && !(st->dml && st->touched != NIL))
		return;
	add_finding(st, LINT_LOCK_HELD, st->strong_rel, st->strong_mode,
				"%s stays locked in %s mode from statement %d until the transaction ends, while this statement %s: %s of it wait all that time",
				st->strong_rel, lock_names[st->strong_mode], st->strong_stmt,
				st->dml ? "reads or writes rows" : "locks another table",
				blocks_of(st->strong_mode));
	st->strong_reported = true;
}

static void
reset_transaction(LintState *st)
{
	st->strong_stmt = 0;
	st->strong_rel = NULL;
	st->strong_mode = NoLock;
	st->strong_reported = false;
}

/* The allowed rules of a list of names (SplitIdentifierString syntax). */
static void
allow_names(LintState *st, const char *list, bool reset)
{
	char	   *raw = pstrdup(list);
	List	   *names;
	ListCell   *lc;

	if (reset)
		memset(st->allowed, 0, sizeof(st->allowed));
	if (!SplitIdentifierString(raw, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list of migration hazards: \"%s\"", dbops_bounded(list, DBOPS_ECHO_CHARS)),
				 errhint("Separate the hazard names with commas.")));
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		int			i;

		for (i = 0; i < LINT_NRULES; i++)
		{
			if (strcmp(lint_rules[i].name, name) == 0)
				break;
		}
		if (i == LINT_NRULES)
		{
			StringInfoData all;

			initStringInfo(&all);
			for (int j = 0; j < LINT_NRULES; j++)
				appendStringInfo(&all, "%s%s", j ? ", " : "", lint_rules[j].name);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown migration hazard \"%s\"", dbops_bounded(name, DBOPS_ECHO_CHARS)),
					 errhint("The hazards are: %s.", all.data)));
		}
		st->allowed[i] = true;
	}
}

/* SET [LOCAL] dbops.migration_lint_allow in the body: for what follows */
static void
lint_set(LintState *st, VariableSetStmt *set)
{
	StringInfoData buf;
	ListCell   *lc;

	if (set->name == NULL || strcmp(set->name, "dbops.migration_lint_allow") != 0)
		return;
	if (set->kind == VAR_RESET || set->kind == VAR_SET_DEFAULT)
	{
		memcpy(st->allowed, st->allowed_first, sizeof(st->allowed));
		return;
	}
	if (set->kind != VAR_SET_VALUE)
		return;
	initStringInfo(&buf);
	foreach(lc, set->args)
	{
		A_Const    *c = (A_Const *) lfirst(lc);

		if (!IsA(c, A_Const) || c->isnull || !IsA(&c->val, String))
			continue;
		appendStringInfo(&buf, "%s%s", buf.len ? "," : "", strVal(&c->val));
	}
	allow_names(st, buf.data, true);
}

/*
 * The statements of a body.  A syntax error points into the body (as an
 * internal query, the way PL/pgSQL reports one in a string it executes),
 * not into the statement that called the lint.
 */
static List *
parse_body(const char *body)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *stmts = NIL;

	PG_TRY();
	{
		stmts = raw_parser(body, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->cursorpos <= 0)
			PG_RE_THROW();
		FlushErrorState();
		edata->internalpos = edata->cursorpos;
		edata->internalquery = pstrdup(body);
		edata->cursorpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return stmts;
}

/*
 * The findings of a body (a List of LintFinding), with the rules in allow
 * (a list of names) allowed from its start.
 */
static List *
lint_body(const char *body, bool single_xact, const char *allow)
{
	LintState	st;
	List	   *stmts;
	ListCell   *lc;

	memset(&st, 0, sizeof(st));
	st.body = body;
	st.single_xact = single_xact;
	if (allow)
		allow_names(&st, allow, true);
	memcpy(st.allowed_first, st.allowed, sizeof(st.allowed));
	stmts = parse_body(body);
	foreach(lc, stmts)
	{
		RawStmt    *raw = lfirst_node(RawStmt, lc);
		int			len = raw->stmt_len > 0 ? raw->stmt_len : (int) strlen(body) - raw->stmt_location;
		const char *s = body + raw->stmt_location;

		CHECK_FOR_INTERRUPTS();
		while (len > 0 && scanner_isspace(*s))
			s++, len--;
		st.stmt_no++;
		st.stmt_text = dbops_echo(s, len, 200);
		st.touched = NIL;
		st.dml = false;

		if (IsA(raw->stmt, TransactionStmt))
		{
			TransactionStmt *t = (TransactionStmt *) raw->stmt;

			if (!single_xact)
			{
				st.in_block = (t->kind == TRANS_STMT_BEGIN || t->kind == TRANS_STMT_START ||
							   (st.in_block && (t->kind == TRANS_STMT_SAVEPOINT ||
												t->kind == TRANS_STMT_RELEASE ||
												t->kind == TRANS_STMT_ROLLBACK_TO)));
				if (!st.in_block)
					reset_transaction(&st);
			}
			continue;
		}
		if (IsA(raw->stmt, VariableSetStmt))
		{
			lint_set(&st, (VariableSetStmt *) raw->stmt);
			continue;
		}
		lint_statement(&st, raw->stmt);
		lint_lock_held(&st);
		if (!in_transaction(&st))
			reset_transaction(&st);
	}
	return st.findings;
}

/* dbops.migration_lint(body, allow, single_transaction) */
#define LINT_COLS 9

PG_FUNCTION_INFO_V1(dbops_migration_lint);

Datum
dbops_migration_lint(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *findings;
	ListCell   *lc;
	StringInfoData allow;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration body must not be NULL"),
				 errhint("Pass the SQL of the migration.")));
	initStringInfo(&allow);
	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("allow must not contain NULL"),
						 errhint("List hazard names, such as '{create_index}'.")));
			appendStringInfo(&allow, "%s%s", i ? "," : "",
							 quote_identifier(TextDatumGetCString(elems[i])));
		}
	}

	InitMaterializedSRF(fcinfo, 0);
	dbops_check_result_columns(fcinfo, rsinfo->setDesc, LINT_COLS);
	findings = lint_body(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 PG_ARGISNULL(2) ? true : PG_GETARG_BOOL(2), allow.data);
	foreach(lc, findings)
	{
		LintFinding *f = (LintFinding *) lfirst(lc);
		Datum		values[LINT_COLS];
		bool		nulls[LINT_COLS] = {0};
		const char *blocks = blocks_of(f->lock);

		values[0] = Int32GetDatum(f->statement);
		values[1] = CStringGetTextDatum(lint_rules[f->rule].name);
		values[2] = f->relation ? CStringGetTextDatum(f->relation) : (Datum) 0;
		nulls[2] = f->relation == NULL;
		values[3] = f->lock != NoLock ? CStringGetTextDatum(lock_names[f->lock]) : (Datum) 0;
		nulls[3] = f->lock == NoLock;
		values[4] = blocks ? CStringGetTextDatum(blocks) : (Datum) 0;
		nulls[4] = blocks == NULL;
		values[5] = CStringGetTextDatum(f->why);
		values[6] = CStringGetTextDatum(lint_rules[f->rule].safe_form);
		values[7] = BoolGetDatum(f->allowed);
		values[8] = CStringGetTextDatum(f->text);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* check hook of dbops.migration_lint_allow: known names only */
static bool
check_lint_allow(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names;
	ListCell   *lc;

	if (!SplitIdentifierString(raw, ',', &names))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		bool		known = false;

		for (int i = 0; i < LINT_NRULES && !known; i++)
			known = strcmp(lint_rules[i].name, name) == 0;
		if (!known)
		{
			GUC_check_errdetail("\"%s\" is not a migration hazard; dbops.migration_lint() names them.", name);
			return false;
		}
	}
	return true;
}

void
dbops_lint_init(void)
{
	DefineCustomEnumVariable("dbops.migration_lint",
							 "What dbops.migrate() does with a hazard its lint finds: off, warn or error.",
							 NULL, &lint_mode, LINT_MODE_WARN, lint_mode_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("dbops.migration_lint_allow",
							   "Hazards dbops.migrate() accepts without a warning (comma-separated names).",
							   "A migration allows a hazard for itself with SET LOCAL in its body.",
							   &lint_allow, "", PGC_USERSET, GUC_LIST_INPUT,
							   check_lint_allow, NULL, NULL);
}

/*
 * For dbops.migrate(): warn about, or refuse, the hazards of a body that
 * dbops.migration_lint_allow does not allow, as set when the migration
 * starts or by a SET of it in the body before the statement.
 */
void
dbops_lint_migration(const char *version, const char *body)
{
	List	   *findings;
	ListCell   *lc;
	int			n = 0;
	LintFinding *first = NULL;

	if (lint_mode == LINT_MODE_OFF)
		return;
	findings = lint_body(body, true, lint_allow ? lint_allow : "");
	foreach(lc, findings)
	{
		LintFinding *f = (LintFinding *) lfirst(lc);

		if (f->allowed)
			continue;
		n++;
		if (first == NULL)
			first = f;
		if (lint_mode == LINT_MODE_WARN)
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("migration %s, statement %d: hazard %s", dbops_bounded(version, DBOPS_ECHO_CHARS),
							f->statement, lint_rules[f->rule].name),
					 errdetail("%s", f->why),
					 errhint("Safer: %s. To accept it for this migration: SET LOCAL dbops.migration_lint_allow = '%s' in its body.",
							 lint_rules[f->rule].safe_form, lint_rules[f->rule].name)));
	}
	if (lint_mode == LINT_MODE_ERROR && first != NULL)
		ereport(ERROR,
				(errcode(DBOPS_ERRCODE_MIGRATION_LINT),
				 errmsg("migration %s, statement %d: hazard %s", dbops_bounded(version, DBOPS_ECHO_CHARS),
						first->statement, lint_rules[first->rule].name),
				 errdetail("%s%s", first->why,
						   n > 1 ? psprintf(" (and %d more hazard(s): dbops.migration_lint() lists them)", n - 1) : ""),
				 errhint("Safer: %s. To accept it for this migration: SET LOCAL dbops.migration_lint_allow = '%s' in its body, or SET dbops.migration_lint = warn.",
						 lint_rules[first->rule].safe_form, lint_rules[first->rule].name)));
}
