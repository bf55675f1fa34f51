/*-------------------------------------------------------------------------
 *
 * dbops.c
 *	  Module entry: each capability registers its GUCs, shared memory and
 *	  background worker from its own init hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "dbops.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	dbops_health_init();
	dbops_reaper_init();
	dbops_ledger_init();
	dbops_retention_init();
	dbops_bloat_init();

	MarkGUCPrefixReserved("dbops");
}
