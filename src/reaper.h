/*-------------------------------------------------------------------------
 *
 * reaper.h
 *	  The reaper's sweep (reaper_sweep.c), shared by the background worker,
 *	  dbops.reap_idle() and dbops.reap_runaway() (reaper.c): the kinds of
 *	  session it ends, its policies, what one run is asked to do and what
 *	  it did.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DBOPS_REAPER_H
#define DBOPS_REAPER_H

#include "postgres.h"

#include "libpq/pqcomm.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

/*
 * What a policy or a request reaps: sessions idle for too long, statements
 * running for too long, transactions open for too long.
 */
typedef enum ReaperKind
{
	REAPER_KIND_IDLE,
	REAPER_KIND_QUERY,
	REAPER_KIND_TRANSACTION
} ReaperKind;

#define REAPER_NKINDS 3
#define REAPER_KIND_ANY (-1)	/* an exempt policy: every kind */

extern const char *const dbops_reaper_kind_names[REAPER_NKINDS];

/*
 * The session states a policy can name, as pg_stat_activity.state shows
 * them: the idle ones first.
 */
#define REAPER_NIDLE	3
#define REAPER_NSTATES	5
#define REAPER_STATE_ACTIVE 3
#define REAPER_STATE_FASTPATH 4

extern const char *const dbops_reaper_state_names[REAPER_NSTATES];

typedef enum ReaperAction
{
	REAPER_TERMINATE,
	REAPER_CANCEL,
	REAPER_EXEMPT
} ReaperAction;

extern const char *const dbops_reaper_action_names[3];

typedef enum ReaperOutcome
{
	OUTCOME_NONE,
	OUTCOME_SIGNALLED,			/* signal sent */
	OUTCOME_DRY_RUN,			/* would have been signalled */
	OUTCOME_ACTIVE,				/* left its idle spell before the signal */
	OUTCOME_GONE,				/* exited before the signal */
	OUTCOME_KEEP_MIN,			/* spared to keep a policy's floor */
	OUTCOME_STATEMENT_ENDED,	/* its statement ended before the signal */
	OUTCOME_TRANSACTION_ENDED,	/* its transaction ended before the signal */
	OUTCOME_MAINTENANCE,		/* started exempt maintenance before it */
	OUTCOME_IDLE_IN_XACT		/* cancel cannot end an idle transaction */
} ReaperOutcome;

extern const char *const dbops_reaper_outcome_names[10];

/* Where a run comes from: also the source column of the events. */
typedef enum ReaperSource
{
	REAPER_SOURCE_WORKER,
	REAPER_SOURCE_REAP_IDLE,
	REAPER_SOURCE_REAP_RUNAWAY
} ReaperSource;

extern const char *const dbops_reaper_source_names[3];

/* Maintenance commands, recognised by their progress reporting. */
#define REAPER_MAINT_VACUUM			0x0001
#define REAPER_MAINT_VACUUM_FULL	0x0002
#define REAPER_MAINT_ANALYZE		0x0004
#define REAPER_MAINT_CLUSTER		0x0008
#define REAPER_MAINT_CREATE_INDEX	0x0010
#define REAPER_MAINT_CREATE_INDEX_CONCURRENTLY 0x0020
#define REAPER_MAINT_REINDEX		0x0040
#define REAPER_MAINT_REINDEX_CONCURRENTLY 0x0080
#define REAPER_MAINT_COPY			0x0100

extern bool dbops_reaper_parse_commands(const char *value, int *mask, char **bad);

typedef struct ReaperPolicy
{
	int			id;
	ReaperKind	kind;			/* REAPER_KIND_ANY for exempt policies */
	bool		has_role;
	Oid			roleid;			/* InvalidOid if the role does not exist */
	bool		has_db;
	Oid			dbid;
	text	   *app_pattern;	/* NULL: any application */
	bool		has_cidr;
	Datum		cidr;
	int			state;			/* -1: any state */
	text	   *query_pattern;	/* NULL: any query */
	bool		unusable;		/* matches nothing: a pattern LIKE or the
								 * engine refuses, a reaping row without a
								 * timeout */
	int64		timeout;		/* microseconds; unused for exempt */
	ReaperAction action;
	int			keep_min;
	int			specificity;	/* number of match columns set */
	/* per run */
	int			nmatching;
	int			nremoved;
} ReaperPolicy;

typedef struct ReaperSession
{
	int			slot;			/* index in the backend status array */
	int			pid;
	Oid			roleid;
	Oid			dbid;
	int			state;			/* index into dbops_reaper_state_names */
	TimestampTz state_start;
	TimestampTz query_start;
	TimestampTz xact_start;		/* 0: no transaction open */
	SockAddr	addr;
	char		appname[NAMEDATALEN];
	char	   *query;			/* query text, NULL when not read */
	int			maintenance;	/* REAPER_MAINT_* it runs */
	/* decided by the run */
	ReaperKind	kind;			/* what it is reaped for */
	ReaperPolicy *policy;		/* winning policy of that kind, NULL: none */
	ReaperAction action;
	int64		timeout;
	TimestampTz since;			/* start of its idle spell, statement or transaction */
	int64		duration;		/* microseconds since then */
	ReaperOutcome outcome;
} ReaperSession;

typedef struct ReaperRequest
{
	ReaperSource source;
	bool		dry_run;
	bool		check_caller;	/* apply the caller's right to signal */
	bool		use_policies;	/* policies' timeouts and actions decide */
	/* when no policy decides: per idle state, and for the other kinds */
	int64		idle_timeout[REAPER_NIDLE];	/* -1: not reaped */
	int64		query_timeout;
	int64		transaction_timeout;
	ReaperAction idle_action;
	ReaperAction query_action;
	ReaperAction transaction_action;
	text	   *query_pattern;	/* only sessions whose query matches, or NULL */
	/* never touched */
	List	   *exempt_roleids;
	List	   *exempt_apps;
	int			exempt_commands;	/* REAPER_MAINT_* */
	int			recheck_delay;	/* ms, testing aid */
	TimestampTz report_after;	/* worker dry run: report matches due since */
} ReaperRequest;

typedef struct ReaperResult
{
	int			nseen;
	int			nidle;
	int			nactive;
	int			nxact;
	int			nexempt;
	int			nreaped[REAPER_NKINDS];
	int			nspared;
	int			ndryrun;
	TimestampTz now;			/* the time durations were measured at */
	List	   *sessions;		/* ReaperSession *, in the order acted upon */
} ReaperResult;

/* reaper_sweep.c */
extern ReaperPolicy *dbops_reaper_load_policies(int *npolicies);
extern void dbops_reaper_free_policies(ReaperPolicy *policies, int npolicies);
extern bool dbops_reaper_pattern_valid(const text *pattern, char *errbuf, size_t len);
extern void dbops_reaper_run(const ReaperRequest *req, ReaperPolicy *policies,
							 int npolicies, ReaperResult *res);

/* reaper.c */
extern void dbops_reaper_record_event(const ReaperRequest *req, const ReaperSession *s);

#define REAPER_ADDR_LEN 64

#endif							/* DBOPS_REAPER_H */
