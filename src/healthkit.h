/*-------------------------------------------------------------------------
 *
 * healthkit.h
 *	  What a health check works with, beyond the contract in dbops.h: the
 *	  state of the report it runs in (DbopsReport), the toolkit every check
 *	  uses (healthkit.c: kept plans, column readers, culprit lists and the
 *	  formatting of durations, sizes and names), the pg_class scan the
 *	  checks of one report share (health_relations.c), and the checks of
 *	  the health capability's own families, by the file that defines them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DBOPS_HEALTHKIT_H
#define DBOPS_HEALTHKIT_H

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"

#include "dbops.h"

/*
 * One health report: what its checks share.  The engine (health.c) sets it
 * up and hands it to every check; everything in it lives in the report's
 * memory context and is gone when the report ends.
 */
struct DbopsRelScan;
struct DbopsCustomCheck;

struct DbopsReport
{
	MemoryContext context;		/* the caller's: results and shared state */
	bool		for_history;	/* rows kept for pg_monitor to read: no
								 * messages of other roles' jobs */
	struct DbopsRelScan *relscan;	/* the pg_class scan, built on first use */
	const struct DbopsCustomCheck *custom;	/* the custom check running */
};

/*
 * health.c: a report run from C, for the functions that keep or export it
 * (health_history.c), and one result as a row of dbops.health().
 */
#define DBOPS_HEALTH_COLS 8

extern DbopsCheckResult *dbops_health_run(bool for_history, int *nresults);
extern bool dbops_builtin_check_exists(const char *name);
extern void dbops_health_values(const DbopsCheckResult *res, Datum *values, bool *nulls);

/* healthkit.c: the toolkit */

/* how many culprits a detail names */
#define DBOPS_MAX_CULPRITS 5

/*
 * A query run through a plan kept for the life of the backend.  The query
 * text must name every function, operator, type and relation with its
 * schema: superusers run it, under any search_path.  read_only queries see
 * the snapshot of the report; others take a new one.
 */
extern SPITupleTable *dbops_kept_query(SPIPlanPtr *plan, const char *sql);
extern SPITupleTable *dbops_kept_query_args(SPIPlanPtr *plan, const char *sql,
											int nargs, Oid *argtypes,
											Datum *values, bool read_only);

/* Column readers: col is 1-based; NULLs as said. */
extern char *dbops_col_text(SPITupleTable *tt, uint64 row, int col);	/* "?" */
extern char *dbops_col_cstring(SPITupleTable *tt, uint64 row, int col); /* NULL */
extern double dbops_col_float(SPITupleTable *tt, uint64 row, int col, bool *isnull);
extern bool dbops_col_bool(SPITupleTable *tt, uint64 row, int col);	/* false */
extern Datum dbops_col_datum(SPITupleTable *tt, uint64 row, int col, bool *isnull);

/* The DBOPS_MAX_CULPRITS items of highest score, highest first. */
typedef struct DbopsTopN
{
	int			n;
	double		score[DBOPS_MAX_CULPRITS];
	int			item[DBOPS_MAX_CULPRITS];
} DbopsTopN;

extern void dbops_topn_add(DbopsTopN *top, double score, int item);

/*
 * A list of culprits in a detail, in the order they come, at most limit of
 * them named and the rest counted: dbops_culprit() counts one and says
 * whether to name it (having appended the separator: first before the
 * first, sep before the others); dbops_culprits_end() appends
 * "<sep>and N more".
 */
typedef struct DbopsCulprits
{
	StringInfo	buf;
	int			limit;
	const char *first;
	const char *sep;
	int			count;
} DbopsCulprits;

extern void dbops_culprits_init(DbopsCulprits *c, StringInfo buf, int limit,
								const char *first, const char *sep);
extern bool dbops_culprit(DbopsCulprits *c);
extern void dbops_culprits_end(DbopsCulprits *c);
extern void dbops_detail_prepend(DbopsCheckResult *res, const char *text);

/* Formatting for details a DBA reads. */
extern double dbops_rounded(double v, int decimals);
extern double dbops_seconds_between(TimestampTz from, TimestampTz to);
extern void dbops_append_duration(StringInfo buf, double secs);
extern void dbops_append_bytes(StringInfo buf, double bytes);
extern void dbops_append_clipped(StringInfo buf, const char *s, int limit);
extern char *dbops_relation_display_name(Oid relid, Oid nspid);

/*
 * What a check may read: dbops_check_skip_all_stats() skips it with the
 * grant that lets it; dbops_counts_tracked() is false, with the check
 * unknown, when track_counts is off.
 */
extern bool dbops_can_read_all_stats(void);
extern void dbops_check_skip_all_stats(DbopsCheckResult *res, const char *why);
extern bool dbops_counts_tracked(DbopsCheckResult *res);

/*
 * health_relations.c: the report's pg_class scan.  Relations with storage,
 * temporary ones left out; tables (with their cumulative statistics and
 * autovacuum settings), materialized views, TOAST tables and sequences are
 * kept in rels.
 */
typedef struct DbopsRelInfo
{
	Oid			relid;
	Oid			relnamespace;
	Oid			relfilenode;
	Oid			reltablespace;
	char		relkind;
	char		relpersistence;
	bool		relisshared;
	int32		relpages;
	float4		reltuples;
	TransactionId relfrozenxid;
	MultiXactId relminmxid;
	/* statistics, for tables (have_stats) */
	bool		have_stats;
	int64		n_live;
	int64		n_dead;
	int64		n_mod_since_analyze;
	TimestampTz last_vacuum;	/* latest of manual and auto vacuum */
	TimestampTz last_analyze;	/* latest of manual and auto analyze */
	/* the table's own autovacuum settings (reloptions); -1 where unset */
	int			av_vac_thresh;
	double		av_vac_scale;
	int			av_anl_thresh;
	double		av_anl_scale;
	int			av_freeze_max_age;
	int			av_mxid_freeze_max_age;
	bool		av_disabled;	/* autovacuum_enabled = false */
} DbopsRelInfo;

typedef struct DbopsRelScan
{
	int			nrels;
	DbopsRelInfo *rels;
	int64		total_pages;
	int			nlargest;		/* the largest relations of any kind */
	DbopsRelInfo largest[DBOPS_MAX_CULPRITS];
	int			nlarge;			/* every relation of DBOPS_LARGE_REL_PAGES or more */
	int			alloclarge;
	DbopsLargeRel *large;
	uint64		inval_count;	/* SharedInvalidMessageCounter at the scan */
} DbopsRelScan;

extern DbopsRelScan *dbops_report_relscan(DbopsReport *report);
extern double dbops_autovac_trigger(int own_thresh, double own_scale, int thresh,
									double scale, float4 reltuples);
extern TimestampTz dbops_stats_origin(void);

/* The checks of the health capability's families, by defining file. */

/*
 * health_sessions.c; also the session of a pid in pgstat's copy of the
 * backend status array (NULL if none), and a session as the details name
 * it: pid, user, database, how long, the query clipped; with full, also
 * application and state, secs being the transaction's age.
 */
struct PgBackendStatus;

extern void dbops_check_connections(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_long_query(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_idle_in_transaction(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_long_transaction(DbopsReport *report, DbopsCheckResult *res);
extern struct PgBackendStatus *dbops_session_by_pid(int pid);
extern void dbops_append_session(StringInfo buf, struct PgBackendStatus *be, double secs,
								 bool full);

/* health_horizon.c */
extern void dbops_check_xmin_horizon(DbopsReport *report, DbopsCheckResult *res);

/* health_wraparound.c */
extern void dbops_check_xid_wraparound(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_mxid_wraparound(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_prepared_xacts(DbopsReport *report, DbopsCheckResult *res);

/* health_replication.c */
extern void dbops_check_replication_lag(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_replication_slots(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_archiver(DbopsReport *report, DbopsCheckResult *res);

/* health_relations.c */
extern void dbops_check_dead_tuples(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_vacuum_age(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_database_size(DbopsReport *report, DbopsCheckResult *res);

/* health_tables.c */
extern void dbops_check_stale_statistics(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_table_freeze_age(DbopsReport *report, DbopsCheckResult *res);

/* health_disk.c */
extern void dbops_check_disk_space(DbopsReport *report, DbopsCheckResult *res);

/* health_indexes.c (also dbops.index_advice()) */
extern void dbops_check_invalid_indexes(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_unused_indexes(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_duplicate_indexes(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_fk_without_index(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_seq_scan_tables(DbopsReport *report, DbopsCheckResult *res);

/* health_sequences.c */
extern void dbops_check_sequences(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_sequences_init(void);

/* health_database.c */
extern void dbops_check_cache_hit_ratio(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_deadlocks(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_temp_files(DbopsReport *report, DbopsCheckResult *res);
extern void dbops_check_checkpoints(DbopsReport *report, DbopsCheckResult *res);

/*
 * health_custom.c: the checks of dbops.custom_checks (dbops.add_check()),
 * loaded by the engine with SPI connected, and the function that runs one
 * (report->custom).
 */
typedef struct DbopsCustomCheck
{
	char	   *name;
	char	   *query;
	DbopsDirection direction;
	char	   *unit;			/* NULL if none */
	char	   *hint;			/* NULL if none */
	Oid			owner;			/* the role it runs as */
} DbopsCustomCheck;

extern int	dbops_custom_checks_load(MemoryContext cxt, DbopsCustomCheck **defs);
extern void dbops_check_custom(DbopsReport *report, DbopsCheckResult *res);

/* health_statements.c */
extern void dbops_check_slow_queries(DbopsReport *report, DbopsCheckResult *res);

#endif							/* DBOPS_HEALTHKIT_H */
