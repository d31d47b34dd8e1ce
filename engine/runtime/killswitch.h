/* killswitch.h - the kill switch (docs/safety.md; README.md, Command line). `warden kill AGENT|--all`
** marks the agent killed in the state store; every engine sharing the store
** refuses new runs of that agent (status killed) and, polling the table every 200 ms
** while it has runs, ends the running ones. An agent whose last
** kill_switch.consecutive_errors runs failed is killed the same way, automatically,
** until `warden revive`. */
#ifndef WD_KILLSWITCH_H
#define WD_KILLSWITCH_H

#include "store.h"
#include <jansson.h>
#include <stdint.h>

#define WD_KILL_ALL "*"

/* the rows: wd_store_kill_set, _clear, _list, _read and wd_store_health_note (store.h) */

/* engine side (engine.h) */
typedef struct wd_run wd_run;
typedef struct wd_engine wd_engine;
/* 1 and why in msg when the run's agent is killed, 0 not (the cache is at most 200 ms old) */
int wd_kills_refuse(wd_run *r, char *msg, size_t n);
/* a run ending with status st (wd_status): counts it toward auto-disable */
void wd_kills_note_end(wd_run *r, int st);
/* arms the poll that ends running runs of killed agents (while the engine has runs) */
void wd_kills_arm(wd_engine *e);
/* another process changed the kill table (notices.c): read it and enforce it now */
void wd_kills_now(wd_engine *e);
void wd_kills_free(wd_engine *e);
/* the engine's copy of the tables is read again at its next use (a kill made in this process) */
#define KILL_POLL_MS 200 /* how often a live engine reads the tables again */

void wd_kills_invalidate(wd_engine *e);
/* killswitch.c, for killtick.c: the tables read again (at most every poll unless force;
** 0, or -1 when the store failed); why an agent was killed (NULL: it was not; *who who
** did it); a kill_switch record for the run */
int wd_kills_refresh(wd_engine *e, int force);
const char *wd_kills_why(wd_engine *e, const char *agent, const char **who);
void wd_kills_audit(wd_run *r, const char *action, const char *reason, int automatic);

#endif
