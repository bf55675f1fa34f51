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

/* Why a policy's relation must not be read or changed now. */
typedef struct RetentionProblem
{
	const char *status;			/* "skipped" (refused) or "failed" */
	int			sqlerrcode;
	char	   *message;
} RetentionProblem;

extern bool dbops_retention_problem_of(Oid relid, const char *created_by,
									   const char *time_column,
									   RetentionProblem *problem);
extern char *dbops_retention_relname(Oid relid);
extern bool dbops_retention_time_type_ok(Oid typid);
extern Oid	dbops_retention_rel_owner(Oid relid);

#endif							/* DBOPS_RETENTION_EXEC_H */
