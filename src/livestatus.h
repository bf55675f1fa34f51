/*-------------------------------------------------------------------------
 *
 * livestatus.h
 *	  Live backend status (livestatus.c), shared by the reaper and the lock
 *	  tree: entries of PostgreSQL's backend status array read one at a time
 *	  with the st_changecount protocol, instead of pgstat's copy of every
 *	  slot; and a session state's name, for every reader of the status
 *	  (the health checks read pgstat's copy).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DBOPS_LIVESTATUS_H
#define DBOPS_LIVESTATUS_H

#include "postgres.h"

#include "fmgr.h"
#include "libpq/pqcomm.h"

struct PGPROC;
struct PgBackendStatus;

extern volatile struct PgBackendStatus *dbops_backend_status_array(int *nslots);
extern void dbops_read_backend_status_slot(volatile struct PgBackendStatus *be,
										   struct PgBackendStatus *out,
										   char *appname, char *activity);
extern bool dbops_read_backend_status(int pid, const struct PGPROC *proc,
									  struct PgBackendStatus *out,
									  char *appname, char *activity);
extern Datum dbops_activity_text(const char *activity);
extern bool dbops_client_addr(const SockAddr *addr, char *buf, size_t len);
extern const char *dbops_backend_state_name(int state);

#endif							/* DBOPS_LIVESTATUS_H */
