/*-------------------------------------------------------------------------
 *
 * health_disk.c
 *	  The disk_space check of dbops.health(): the free share of the file
 *	  systems that hold the data directory, pg_wal and each tablespace,
 *	  from statvfs(), and where the report's history has it, when the
 *	  fullest one would fill up at its recent pace.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "dbops.h"
#include "healthkit.h"

/* One place PostgreSQL writes to, and the file system under it. */
typedef struct DiskPlace
{
	char	   *what;			/* "data directory", "pg_wal", "tablespace x" */
	char	   *path;
	dev_t		dev;
	double		total;			/* bytes */
	double		avail;			/* bytes free for an unprivileged user */
	int			same_as;		/* index of an earlier place on that file
								 * system, -1: none */
} DiskPlace;

/* Fill in *p from stat() and statvfs(); false with the reason in why. */
static bool
measure_place(DiskPlace *p, StringInfo why)
{
	struct stat st;
	struct statvfs fs;

	if (stat(p->path, &st) != 0 || statvfs(p->path, &fs) != 0)
	{
		appendStringInfo(why, "%s%s: %m", why->len > 0 ? "; " : "", p->what);
		return false;
	}
	p->dev = st.st_dev;
	p->total = (double) fs.f_blocks * fs.f_frsize;
	p->avail = (double) fs.f_bavail * fs.f_frsize;
	return true;
}

/*
 * The oldest disk_space value of the last 7 days in dbops.health_history
 * (dbops.health_snapshot()) and its age in days; false when there is none,
 * or no history table.
 */
static bool
history_point(double *value, double *age_days)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	bool		isnull;

	if (!OidIsValid(dbops_relid("health_history")))
		return false;
	tt = dbops_kept_query(&plan,
						  "SELECT pg_catalog.date_part('epoch'::pg_catalog.text, pg_catalog.now() OPERATOR(pg_catalog.-) h.taken_at)"
						  "::pg_catalog.float8 OPERATOR(pg_catalog./) 86400, h.value::pg_catalog.float8 "
						  "FROM dbops.health_history h "
						  "WHERE h.check_name OPERATOR(pg_catalog.=) 'disk_space'::pg_catalog.text "
						  "AND h.value IS NOT NULL "
						  "AND h.taken_at OPERATOR(pg_catalog.>) (pg_catalog.now() "
						  "OPERATOR(pg_catalog.-) '7 days'::pg_catalog.interval) "
						  "ORDER BY h.taken_at LIMIT 1");
	if (SPI_processed == 0)
		return false;
	*age_days = dbops_col_float(tt, 0, 1, &isnull);
	*value = dbops_col_float(tt, 0, 2, &isnull);
	return true;
}

/*
 * disk_space: the lowest free share (%) of the file systems under the data
 * directory, pg_wal and the tablespaces; lower is worse.  For roles with
 * the privileges of pg_monitor (it tells how the server's storage is laid
 * out and filled).
 */
void
dbops_check_disk_space(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	SPITupleTable *tt;
	DiskPlace  *places;
	int			nplaces = 0;
	int			worst = -1;
	StringInfoData why;
	double		old_value;
	double		age_days;

	if (!has_privs_of_role(GetUserId(), ROLE_PG_MONITOR))
	{
		dbops_check_skip(res, "the file systems of the server are shown to roles with the privileges of pg_monitor");
		appendStringInfoString(&res->hint, "Grant the role pg_monitor to run this check.");
		return;
	}

	tt = dbops_kept_query(&plan,
						  "SELECT t.oid, t.spcname::pg_catalog.text FROM pg_catalog.pg_tablespace t "
						  "WHERE t.spcname OPERATOR(pg_catalog.<>) ALL "
						  "('{pg_default,pg_global}'::pg_catalog.name[]) ORDER BY t.spcname");
	places = palloc0(sizeof(DiskPlace) * (2 + SPI_processed));
	places[nplaces].what = "data directory";
	places[nplaces++].path = DataDir;
	places[nplaces].what = "pg_wal";
	places[nplaces++].path = psprintf("%s/pg_wal", DataDir);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		places[nplaces].what = psprintf("tablespace %s",
										quote_identifier(dbops_col_text(tt, r, 2)));
		places[nplaces++].path = psprintf("%s/pg_tblspc/%s", DataDir, dbops_col_text(tt, r, 1));
	}

	initStringInfo(&why);
	for (int i = 0; i < nplaces; i++)
	{
		DiskPlace  *p = &places[i];

		CHECK_FOR_INTERRUPTS();
		p->same_as = -1;
		if (!measure_place(p, &why))
		{
			p->total = 0;
			continue;
		}
		for (int j = 0; j < i; j++)
			if (places[j].total > 0 && places[j].dev == p->dev)
			{
				p->same_as = j;
				break;
			}
		if (p->same_as < 0 && p->total > 0 &&
			(worst < 0 || p->avail / p->total < places[worst].avail / places[worst].total))
			worst = i;
	}
	if (worst < 0)
	{
		dbops_check_unknown(res, "no file system could be measured: %s", why.data);
		return;
	}

	dbops_check_value(res, dbops_rounded(100.0 * places[worst].avail / places[worst].total, 1), "% free");
	for (int i = 0, shown = 0; i < nplaces; i++)
	{
		DiskPlace  *p = &places[i];

		if (p->same_as >= 0 || p->total <= 0)
			continue;
		appendStringInfo(&res->detail, "%s%s", shown++ > 0 ? "; " : "", p->what);
		for (int j = i + 1; j < nplaces; j++)
			if (places[j].same_as == i)
				appendStringInfo(&res->detail, ", %s", places[j].what);
		appendStringInfo(&res->detail, ": %.1f%% free (", 100.0 * p->avail / p->total);
		dbops_append_bytes(&res->detail, p->avail);
		appendStringInfoString(&res->detail, " of ");
		dbops_append_bytes(&res->detail, p->total);
		appendStringInfoChar(&res->detail, ')');
	}
	if (why.len > 0)
		appendStringInfo(&res->detail, "; not measured: %s", why.data);

	/*
	 * The pace, from the report's history: on a standby the history is the
	 * primary's, whose disks are other disks.
	 */
	if (!RecoveryInProgress() && history_point(&old_value, &age_days) &&
		age_days >= 1.0 / 24 && old_value > res->value)
	{
		double		per_day = (old_value - res->value) / age_days;

		appendStringInfo(&res->detail,
						 "; at the pace since the oldest snapshot of the last 7 days (%.1f%% free %.1f days ago), the fullest fills up in %.1f days",
						 old_value, age_days, res->value / per_day);
	}
	appendStringInfoString(&res->hint,
						   "Free space on that file system or grow it: a full pg_wal stops the server, a full data directory or tablespace fails every write. Look for WAL kept by replication slots (replication_slots) and for bloat.");
}
