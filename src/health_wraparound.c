/*-------------------------------------------------------------------------
 *
 * health_wraparound.c
 *	  The checks of dbops.health() on what ages toward wraparound:
 *	  xid_wraparound and mxid_wraparound (the oldest database), and
 *	  prepared_xacts (prepared transactions hold the horizon back).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "compat.h"
#include "dbops.h"
#include "healthkit.h"

static void
wraparound_check(DbopsCheckResult *res, bool multixact)
{
	static SPIPlanPtr plan_xid = NULL;
	static SPIPlanPtr plan_mxid = NULL;
	SPITupleTable *tt;
	bool		isnull;
	uint64		n;

	if (multixact)
		tt = dbops_kept_query(&plan_mxid,
							"SELECT datname, pg_catalog.mxid_age(datminmxid)::pg_catalog.int8 AS age "
							"FROM pg_catalog.pg_database "
							"ORDER BY 2 DESC, 1");
	else
		tt = dbops_kept_query(&plan_xid,
							"SELECT datname, pg_catalog.age(datfrozenxid)::pg_catalog.int8 AS age "
							"FROM pg_catalog.pg_database "
							"ORDER BY 2 DESC, 1");
	n = SPI_processed;
	if (n == 0)
	{
		dbops_check_unknown(res, "pg_database is empty");
		return;
	}
	dbops_check_value(res, dbops_col_float(tt, 0, 2, &isnull), multixact ? "multixacts" : "transactions");
	appendStringInfoString(&res->detail, "oldest: ");
	for (uint64 r = 0; r < n && r < 3; r++)
		appendStringInfo(&res->detail, "%s%s %s", r > 0 ? ", " : "",
						 quote_identifier(dbops_col_text(tt, r, 1)), dbops_col_text(tt, r, 2));
	appendStringInfo(&res->detail, " (%s = %s; wraparound at 2^31)",
					 multixact ? "autovacuum_multixact_freeze_max_age" : "autovacuum_freeze_max_age",
					 GetConfigOption(multixact ? "autovacuum_multixact_freeze_max_age" : "autovacuum_freeze_max_age",
									 false, false));
	appendStringInfoString(&res->hint, multixact ?
						   "VACUUM (FREEZE) the oldest tables of those databases (see pg_class.relminmxid); end long transactions and drop stale replication slots and prepared transactions that hold the horizon back." :
						   "VACUUM (FREEZE) the oldest tables of those databases (see age(pg_class.relfrozenxid)); end long transactions and drop stale replication slots and prepared transactions that hold the horizon back.");
}

/* xid_wraparound: the highest age(datfrozenxid) of any database */
void
dbops_check_xid_wraparound(DbopsReport *report, DbopsCheckResult *res)
{
	wraparound_check(res, false);
}

/* mxid_wraparound: the highest mxid_age(datminmxid) of any database */
void
dbops_check_mxid_wraparound(DbopsReport *report, DbopsCheckResult *res)
{
	wraparound_check(res, true);
}

/* prepared_xacts: age of the oldest prepared transaction, in seconds */
void
dbops_check_prepared_xacts(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	uint64		n;
	bool		isnull;

	tt = dbops_kept_query(&plan,
						"SELECT gid, owner, database, "
						"pg_catalog.extract('epoch', pg_catalog.now() OPERATOR(pg_catalog.-) prepared)"
						"::pg_catalog.float8 "
						"FROM pg_catalog.pg_prepared_xacts ORDER BY prepared, gid");
	n = SPI_processed;
	if (n == 0)
	{
		dbops_check_value(res, 0, "s");
		appendStringInfo(&res->detail, "no prepared transaction (max_prepared_transactions = %d)",
						 max_prepared_xacts);
		return;
	}
	dbops_check_value(res, dbops_rounded(Max(dbops_col_float(tt, 0, 4, &isnull), 0), 3), "s");
	appendStringInfo(&res->detail, "%d prepared transaction(s), oldest: ", (int) n);
	for (uint64 r = 0; r < n && r < DBOPS_MAX_CULPRITS; r++)
	{
		appendStringInfo(&res->detail, "%s%s (%s@%s, ", r > 0 ? "; " : "",
						 quote_literal_cstr(dbops_col_text(tt, r, 1)),
						 quote_identifier(dbops_col_text(tt, r, 2)),
						 quote_identifier(dbops_col_text(tt, r, 3)));
		dbops_append_duration(&res->detail, dbops_col_float(tt, r, 4, &isnull));
		appendStringInfoChar(&res->detail, ')');
	}
	appendStringInfoString(&res->hint,
						   "A forgotten prepared transaction holds locks and the xmin horizon: have its transaction manager finish it, or run COMMIT PREPARED / ROLLBACK PREPARED 'gid' in its database.");
}
