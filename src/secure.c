/*-------------------------------------------------------------------------
 *
 * secure.c
 *	  The two ways dbops keeps its privileged code from running anybody
 *	  else's: a search_path that resolves only to pg_catalog (and dbops'
 *	  qualified names), and running work on a user's table as that table's
 *	  owner in a security-restricted operation, as VACUUM, ANALYZE and
 *	  REFRESH MATERIALIZED VIEW do.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "dbops.h"

/*
 * Pin search_path for a background worker's whole life.  A worker connects
 * with its database's and role's settings applied (ALTER DATABASE ... SET
 * search_path), which the database owner controls: replace them before the
 * first query.  PGC_S_OVERRIDE keeps the value through every transaction.
 */
void
dbops_worker_pin_search_path(void)
{
	SetConfigOption("search_path", DBOPS_SAFE_SEARCH_PATH,
					PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Become the owner of a relation, in a security-restricted operation with a
 * GUC nest level of its own and search_path pinned, until
 * dbops_restore_user().  The owner's triggers, rules, functions and index
 * expressions then run with the owner's rights only, and cannot leave
 * settings, temporary objects or a changed role behind.
 *
 * On error the transaction's (or subtransaction's) abort restores the user
 * and the GUC nest level; dbops_restore_user() is for the normal path.
 */
void
dbops_become_owner(Oid owner, DbopsUserContext *ctx)
{
	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(owner,
						   ctx->save_sec_context | SECURITY_RESTRICTED_OPERATION);
	ctx->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", DBOPS_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
dbops_restore_user(DbopsUserContext *ctx)
{
	AtEOXact_GUC(false, ctx->save_nestlevel);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}
