/*-------------------------------------------------------------------------
 *
 * dbops.c
 *	  Module entry: each capability registers its GUCs, shared memory and
 *	  background worker from its own init hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"

#include "dbops.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	dbops_health_init();
	dbops_reaper_init();
	dbops_ledger_init();
	dbops_lint_init();
	dbops_retention_init();
	dbops_backfill_init();
	dbops_bloat_init();

	MarkGUCPrefixReserved("dbops");
}

/*
 * The first maxchars characters of s (len bytes; -1: up to its end), for a
 * message: control characters written as \n, \r, \t or \xNN, and "..."
 * when cut, so that no input is echoed whole or breaks a line of the log.
 */
char *
dbops_echo(const char *s, int len, int maxchars)
{
	StringInfoData buf;
	int			cut;

	if (s == NULL)
		return pstrdup("NULL");
	if (len < 0)
		len = strlen(s);
	cut = pg_mbcharcliplen(s, len, maxchars);
	initStringInfo(&buf);
	for (int i = 0; i < cut; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '\n')
			appendStringInfoString(&buf, "\\n");
		else if (c == '\r')
			appendStringInfoString(&buf, "\\r");
		else if (c == '\t')
			appendStringInfoString(&buf, "\\t");
		else if (c < 0x20 || c == 0x7f)
			appendStringInfo(&buf, "\\x%02x", c);
		else
			appendStringInfoChar(&buf, (char) c);
	}
	if (cut < len)
		appendStringInfoString(&buf, "...");
	return buf.data;
}

/* dbops_echo() of a whole C string */
char *
dbops_bounded(const char *s, int maxchars)
{
	return dbops_echo(s, -1, maxchars);
}

/*
 * An interval as microseconds (a month counts 30 days, as interval
 * comparison does); false when that does not fit in 64 bits (an interval of
 * more than about 292,000 years), instead of a wrapped-around figure.
 */
bool
dbops_interval_usecs(const Interval *iv, int64 *usecs)
{
	int64		months;
	int64		days;
	int64		total;

	if (pg_mul_s64_overflow((int64) iv->month, (int64) DAYS_PER_MONTH * USECS_PER_DAY, &months) ||
		pg_mul_s64_overflow((int64) iv->day, USECS_PER_DAY, &days) ||
		pg_add_s64_overflow(months, days, &total) ||
		pg_add_s64_overflow(total, iv->time, &total))
		return false;
	*usecs = total;
	return true;
}

/* A relation kind (pg_class.relkind) in words, for messages. */
const char *
dbops_relkind_name(char relkind)
{
	switch (relkind)
	{
		case RELKIND_RELATION:
			return "table";
		case RELKIND_PARTITIONED_TABLE:
			return "partitioned table";
		case RELKIND_INDEX:
			return "index";
		case RELKIND_PARTITIONED_INDEX:
			return "partitioned index";
		case RELKIND_VIEW:
			return "view";
		case RELKIND_MATVIEW:
			return "materialized view";
		case RELKIND_FOREIGN_TABLE:
			return "foreign table";
		case RELKIND_SEQUENCE:
			return "sequence";
		case RELKIND_COMPOSITE_TYPE:
			return "composite type";
		case RELKIND_TOASTVALUE:
			return "TOAST table";
	}
	return "relation of another kind";
}

Oid
dbops_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("dbops", true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

/* The installed version of dbops in this database differs from the library's. */
bool
dbops_catalog_outdated(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		outdated = false;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("dbops"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		version = heap_getattr(tup, Anum_pg_extension_extversion,
										   RelationGetDescr(rel), &isnull);

		outdated = !isnull && strcmp(TextDatumGetCString(version), DBOPS_VERSION) != 0;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return outdated;
}

/*
 * A function's SQL declaration returns ncolumns columns, as the C code that
 * fills its rows expects.  A catalog of another version of dbops, or a
 * function declared by hand over dbops's library, would otherwise have rows
 * built against the wrong descriptor.
 */
void
dbops_check_result_columns(FunctionCallInfo fcinfo, TupleDesc desc, int ncolumns)
{
	if (desc->natts == ncolumns)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("function %s returns %d columns, but dbops's library fills %d",
					format_procedure(fcinfo->flinfo->fn_oid), desc->natts, ncolumns),
			 errhint(dbops_catalog_outdated() ? DBOPS_OUTDATED_HINT :
					 "The function's SQL declaration does not match the dbops library: declare it as the extension's install script does.")));
}
