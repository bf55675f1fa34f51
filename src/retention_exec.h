/*-------------------------------------------------------------------------
 *
 * retention_exec.h
 *	  What retention.c (the health check) shares with retention_exec.c (the
 *	  statements of a purge, run as the table's owner).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DBOPS_RETENTION_EXEC_H
#define DBOPS_RETENTION_EXEC_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* Why a policy's relation must not be read or changed now. */
typedef struct RetentionProblem
{
	const char *status;			/* "skipped" (refused) or "failed" */
	int			sqlerrcode;
	char	   *message;
	const char *hint;			/* what to do about it */
} RetentionProblem;

extern bool dbops_retention_problem_of(Oid relid, const char *created_by,
									   const char *time_column,
									   RetentionProblem *problem);

/*
 * The longest keep and max_run_time a policy may have, in years of 365.25
 * days (as extract(epoch) counts them); neither the years-and-months nor
 * the days of such an interval may exceed it on their own either.  Then
 * now() - keep, now() - keep - dbops.retention_slack and now() +
 * max_run_time stay far inside the range of timestamp and timestamptz
 * (4713 BC to 294276 AD) whatever the signs of the interval's parts.
 */
/*
 * The purge's batch, lock and lag settings (retention.c): dbops.purge_lock_timeout
 * is also used by retention_exec.c, and all of them by a backfill (backfill.c).
 */
extern int	dbops_purge_batch_target;
extern int	dbops_purge_batch_max;
extern int	dbops_purge_lock_timeout;
extern int	dbops_purge_lock_retries;
extern int	dbops_purge_max_replica_lag;

#define DBOPS_RETENTION_MAX_YEARS	1000
/* The largest batch_size: the largest dbops.purge_batch_max. */
#define DBOPS_RETENTION_MAX_BATCH	10000000

extern bool dbops_retention_interval_ok(const Interval *iv);
extern bool dbops_retention_limits_problem(const Interval *keep,
										   const Interval *max_run_time,
										   RetentionProblem *problem);
extern char *dbops_retention_relname(Oid relid);
extern bool dbops_retention_time_type_ok(Oid typid);
extern Oid	dbops_retention_rel_owner(Oid relid);

#endif							/* DBOPS_RETENTION_EXEC_H */
