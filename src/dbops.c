/*-------------------------------------------------------------------------
 *
 * dbops.c
 *	  Module entry: each capability registers its GUCs, shared memory and
 *	  background worker from its own init hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
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

/*
 * The first maxchars characters of s, followed by "..." when there is more:
 * what an error message quotes of a caller's input (never the whole of a
 * 200 kB argument).  NULL gives "NULL".
 */
char *
dbops_bounded(const char *s, int maxchars)
{
	int			len;
	int			cut;

	if (s == NULL)
		return pstrdup("NULL");
	len = strlen(s);
	cut = pg_mbcharcliplen(s, len, maxchars);
	if (cut >= len)
		return pstrdup(s);
	return psprintf("%.*s...", cut, s);
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
