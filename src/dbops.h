/*-------------------------------------------------------------------------
 *
 * dbops.h
 *	  The contract the dbops capabilities share, grouped by the file that
 *	  defines each part: message helpers and the result-shape check
 *	  (dbops.c), the health-check contract (health.c), the large relations
 *	  of a report (health_relations.c), running as a table's owner
 *	  (secure.c), and each capability's init hook and health check.  A
 *	  capability's GUC variables are static in its own file; healthkit.h
 *	  (the checks' toolkit and the health families), livestatus.h and
 *	  retention_exec.h are the headers of the files only some capabilities
 *	  use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DBOPS_H
#define DBOPS_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"

/* dbops.c: helpers for messages and limits */

/* What a message quotes of a caller's input: at most this many characters. */
#define DBOPS_ECHO_CHARS 64
extern char *dbops_echo(const char *s, int len, int maxchars);
extern char *dbops_bounded(const char *s, int maxchars);
extern const char *dbops_relkind_name(char relkind);

/*
 * Whether this database's dbops catalog is at another version than the
 * library (DBOPS_VERSION, the Makefile's EXTVERSION): a package upgrade
 * before ALTER EXTENSION dbops UPDATE.  The library's messages then say so.
 */
extern bool dbops_catalog_outdated(void);

/* One of dbops' own relations, by name (schema dbops); InvalidOid if none. */
extern Oid	dbops_relid(const char *relname);
#define DBOPS_OUTDATED_HINT \
	"This database's dbops catalog is older than its library: run ALTER EXTENSION dbops UPDATE."

/* An interval in microseconds; false if it does not fit (dbops.c). */
extern bool dbops_interval_usecs(const Interval *iv, int64 *usecs);

/*
 * Every C function returning rows or a record names the number of columns
 * it fills and checks its SQL declaration against it, before it builds a
 * row: a catalog of another version, or an altered one, gets an error.
 */
extern void dbops_check_result_columns(FunctionCallInfo fcinfo, TupleDesc desc, int ncolumns);

/*
 * Health checks
 *
 * A check is a C function registered in dbops_checks[] (health.c) under its
 * name; dbops.health_thresholds holds one row per check with its warning and
 * critical thresholds and whether it is enabled.  Adding a check is:
 *
 *	 1. write "void dbops_check_foo(DbopsReport *report, DbopsCheckResult
 *		*res)" in the file of its capability (a check of the health
 *		capability's own: in the health_*.c file of its family) and declare
 *		it below (healthkit.h for those of the families);
 *	 2. add one line { "foo", dbops_check_foo, DBOPS_HIGHER_IS_WORSE } to
 *		dbops_checks[] in health.c;
 *	 3. add its default thresholds row to the capability's SQL fragment.
 *
 * The engine runs each enabled check in its own subtransaction under
 * dbops.health_check_timeout (and a lock_timeout of the same length), with
 * SPI already connected, so a check may call SPI_execute() directly; the
 * toolkit of healthkit.h (kept plans, column readers, culprit lists,
 * formatting) serves every check.  report is what the checks of one report
 * share (the pg_class scan, the report's memory context); the check
 * reports through res:
 *
 *	 - dbops_check_value(res, v, unit): the figure the thresholds apply to;
 *	   the engine grades it (ok / warning / critical) against res->warning
 *	   and res->critical (NaN when the threshold is NULL);
 *	 - res->detail: names the culprits (pids, databases, relations);
 *	 - res->hint: what to do about it (shown only when the status is not ok);
 *	 - dbops_check_at_least(res, DBOPS_WARNING or DBOPS_CRITICAL): a floor
 *	   for the graded status, for facts that are bad whatever the value (a
 *	   lost replication slot, an archiver failing right now);
 *	 - dbops_check_skip(res, ...) when the caller may not read what the check
 *	   needs, dbops_check_unknown(res, ...) when the answer cannot be known;
 *	   an error raised by the check becomes "unknown" with its message (or
 *	   "skipped" for insufficient_privilege), a timeout "unknown".
 *
 * "skipped" means "could not look": it keeps the overall status from being
 * "ok" (see dbops.health_status()).  A check that does not apply here (no
 * standby, archive_mode off, an optional extension not installed) reports
 * "ok" and says so in its detail, with or without a value.
 *
 * Everything the check appends to detail and hint lives in the caller's
 * memory context; anything else it allocates is released with SPI.
 */
typedef enum DbopsStatus
{
	DBOPS_OK = 0,
	DBOPS_SKIPPED,
	DBOPS_UNKNOWN,
	DBOPS_WARNING,
	DBOPS_CRITICAL
} DbopsStatus;

typedef enum DbopsDirection
{
	DBOPS_HIGHER_IS_WORSE,
	DBOPS_LOWER_IS_WORSE
} DbopsDirection;

typedef struct DbopsCheckResult
{
	const char *name;
	double		warning;		/* NaN when NULL */
	double		critical;		/* NaN when NULL */
	DbopsStatus status;			/* set by skip/unknown, else graded */
	DbopsStatus min_status;		/* floor of the graded status */
	bool		has_value;
	double		value;
	const char *unit;
	StringInfoData detail;
	StringInfoData hint;
} DbopsCheckResult;

/* the report a check runs in: what its checks share (healthkit.h) */
typedef struct DbopsReport DbopsReport;

typedef void (*DbopsCheckFunc) (DbopsReport *report, DbopsCheckResult *res);

typedef struct DbopsCheck
{
	const char *name;
	DbopsCheckFunc func;
	DbopsDirection direction;
} DbopsCheck;

extern void dbops_check_value(DbopsCheckResult *res, double value, const char *unit);
extern void dbops_check_at_least(DbopsCheckResult *res, DbopsStatus status);
extern void dbops_check_skip(DbopsCheckResult *res, const char *fmt,...) pg_attribute_printf(2, 3);
extern void dbops_check_unknown(DbopsCheckResult *res, const char *fmt,...) pg_attribute_printf(2, 3);
extern const char *dbops_status_name(DbopsStatus status);

/*
 * health_relations.c: the relations with storage (temporary ones left out)
 * of at least DBOPS_LARGE_REL_PAGES pages, from the one pg_class scan that
 * the checks of a health report share.  Valid for the rest of the report.
 */
#define DBOPS_LARGE_REL_PAGES 1280	/* 10 MB */

typedef struct DbopsLargeRel
{
	Oid			relid;
	Oid			relam;
	char		relkind;
	char		relpersistence;
	int32		relpages;
} DbopsLargeRel;

extern int	dbops_report_large_rels(DbopsReport *report, const DbopsLargeRel **rels);

/*
 * Each capability's init hook (called from _PG_init() in dbops.c) and
 * health check, by the file that defines them.
 */

/* health.c (the health capability's own checks: healthkit.h) */
extern void dbops_health_init(void);

/* backfill.c */
extern void dbops_backfill_init(void);

/* bloat.c */
extern void dbops_bloat_init(void);
extern void dbops_check_bloat(DbopsReport *report, DbopsCheckResult *res);

/* ledger.c */
extern void dbops_ledger_init(void);
extern void dbops_check_migrations(DbopsReport *report, DbopsCheckResult *res);

/* lint.c */
#define DBOPS_ERRCODE_MIGRATION_LINT MAKE_SQLSTATE('D', 'B', '0', '0', '9')
extern void dbops_lint_init(void);
extern void dbops_lint_migration(const char *version, const char *body);

/* locktree.c */
extern void dbops_check_lock_waits(DbopsReport *report, DbopsCheckResult *res);

/* reaper.c */
extern void dbops_reaper_init(void);
extern void dbops_check_reaper(DbopsReport *report, DbopsCheckResult *res);

/* retention.c */
extern void dbops_retention_init(void);
extern void dbops_check_retention(DbopsReport *report, DbopsCheckResult *res);

/* schedule.c */
extern void dbops_check_cron_failures(DbopsReport *report, DbopsCheckResult *res);

/*
 * secure.c: the search_path every privileged query runs under, and running
 * work on a user's table as its owner in a security-restricted operation.
 */
#define DBOPS_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

typedef struct DbopsUserContext
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} DbopsUserContext;

extern void dbops_worker_pin_search_path(void);
extern void dbops_become_owner(Oid owner, DbopsUserContext *ctx);
extern void dbops_restore_user(DbopsUserContext *ctx);

#endif							/* DBOPS_H */
