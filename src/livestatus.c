/*-------------------------------------------------------------------------
 *
 * livestatus.c
 *	  Reading PostgreSQL's live backend status array, one entry at a time.
 *
 * pg_stat_activity and pgstat_fetch_stat_local_beentry() go through
 * pgstat_read_current_status(), which copies every slot of the array
 * (including track_activity_query_size bytes of query text per slot) into
 * backend-local memory once per transaction.  A caller that needs a few
 * entries, or needs to re-read one as it is now, reads the live array
 * instead: PostgreSQL keeps it private to backend_status.c, but it lives in
 * shared memory under a fixed name, so we attach to it the way any module
 * attaches to a shared structure, and copy entries with the st_changecount
 * protocol that pgstat_read_current_status() itself uses.
 *
 * Shared by the reaper (reaper.c) and the lock trees (locktree.c); the
 * name of a session's state also by the health checks (health_sessions.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <netdb.h>
#include <sys/socket.h>

#include "common/ip.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"

#include "compat.h"
#include "dbops.h"
#include "livestatus.h"

/* The live array and its number of slots (regular backends, then aux). */
volatile PgBackendStatus *
dbops_backend_status_array(int *nslots)
{
	static PgBackendStatus *array = NULL;
	int			n = DBOPS_BACKEND_STATUS_SLOTS;

	if (array == NULL)
	{
		bool		found;
		PgBackendStatus *ptr;

		ptr = ShmemInitStruct("Backend Status Array",
							  mul_size(sizeof(PgBackendStatus), n), &found);
		if (!found)
			elog(ERROR, "backend status array not found in shared memory");
		array = ptr;
	}
	*nslots = n;
	return array;
}

/*
 * Copy one live entry consistently into *out.  appname (NAMEDATALEN bytes)
 * and activity (pgstat_track_activity_query_size bytes) receive the
 * application name and the raw query text when not NULL; out's pointers
 * are set to them (or to NULL).  Host name, SSL and GSS details are not
 * copied: their pointers are set to NULL.
 */
void
dbops_read_backend_status_slot(volatile PgBackendStatus *be, PgBackendStatus *out,
							   char *appname, char *activity)
{
	for (;;)
	{
		int			before;
		int			after;

		pgstat_begin_read_activity(be, before);
		memcpy(out, unvolatize(PgBackendStatus *, be), sizeof(PgBackendStatus));
		if (out->st_procpid > 0)
		{
			/* bounded copies: a racing writer is caught by the re-check */
			if (appname)
			{
				if (be->st_appname)
					strlcpy(appname, be->st_appname, NAMEDATALEN);
				else
					appname[0] = '\0';
			}
			if (activity)
			{
				if (be->st_activity_raw)
				{
					size_t		len = strnlen(be->st_activity_raw,
											  pgstat_track_activity_query_size - 1);

					memcpy(activity, be->st_activity_raw, len);
					activity[len] = '\0';
				}
				else
					activity[0] = '\0';
			}
		}
		pgstat_end_read_activity(be, after);
		if (pgstat_read_activity_complete(before, after))
			break;
		CHECK_FOR_INTERRUPTS();
	}

	out->st_appname = appname;
	out->st_activity_raw = activity;
	out->st_clienthostname = NULL;
	out->st_sslstatus = NULL;
	out->st_gssstatus = NULL;
	if (out->st_procpid <= 0)
	{
		if (appname)
			appname[0] = '\0';
		if (activity)
			activity[0] = '\0';
	}
}

/*
 * Copy the live entry of the backend with this pid, as dbops_read_backend_
 * status_slot() does; false if there is none.  proc, when given, is the
 * PGPROC the caller believes the backend has: it names the slot of a
 * regular backend directly; otherwise (auxiliary processes before
 * PostgreSQL 17, a PGPROC reused since) the array is searched.
 */
bool
dbops_read_backend_status(int pid, const PGPROC *proc, PgBackendStatus *out,
						  char *appname, char *activity)
{
	int			nslots;
	volatile PgBackendStatus *array = dbops_backend_status_array(&nslots);

	if (pid <= 0)
		return false;

	if (proc != NULL)
	{
		int			slot = dbops_proc_status_slot(proc);

		if (slot >= 0 && slot < nslots && array[slot].st_procpid == pid)
		{
			dbops_read_backend_status_slot(&array[slot], out, appname, activity);
			if (out->st_procpid == pid)
				return true;
		}
	}

	for (int slot = 0; slot < nslots; slot++)
	{
		if (array[slot].st_procpid != pid)
			continue;
		dbops_read_backend_status_slot(&array[slot], out, appname, activity);
		if (out->st_procpid == pid)
			return true;
	}
	return false;
}

/*
 * The query text of a copied entry as a text datum, as pg_stat_activity
 * shows it.  The writer stores the text unclipped, cut at the buffer's size
 * perhaps inside a multibyte character; only a text that fills the buffer
 * can have been cut, so only that one needs pgstat_clip_activity().
 */
Datum
dbops_activity_text(const char *activity)
{
	size_t		len = strlen(activity);
	char	   *clipped;
	Datum		result;

	if (len < pgstat_track_activity_query_size - 1)
		return PointerGetDatum(cstring_to_text_with_len(activity, len));
	clipped = pgstat_clip_activity(activity);
	result = CStringGetTextDatum(clipped);
	pfree(clipped);
	return result;
}

/*
 * A session's state (BackendState) as pg_stat_activity.state names it;
 * NULL for a state it shows as NULL (STATE_UNDEFINED, 18's STATE_STARTING).
 */
const char *
dbops_backend_state_name(int state)
{
	switch ((BackendState) state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_DISABLED:
			return "disabled";
		default:
			break;
	}
	return NULL;
}

/*
 * A backend's client address as text, as pg_stat_activity.client_addr
 * shows it; false for a Unix socket, no client or an unknown family.
 */
bool
dbops_client_addr(const SockAddr *addr, char *buf, size_t len)
{
	if (addr->addr.ss_family != AF_INET && addr->addr.ss_family != AF_INET6)
		return false;
	if (pg_getnameinfo_all(&addr->addr, addr->salen, buf, len, NULL, 0,
						   NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return false;
	clean_ipv6_addr(addr->addr.ss_family, buf);
	return true;
}
