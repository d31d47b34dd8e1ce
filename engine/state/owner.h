/* owner.h - which process holds a row: leases on the ledger and pending approvals are
** marked with their process as "pid:start time", so a sweep by any process can tell a
** holder that died (its pid gone, or reused by another program) from one still running */
#ifndef WD_OWNER_H
#define WD_OWNER_H

/* this process's id (computed again after a fork); borrowed, per thread */
const char *wd_owner_id(void);
/* 1 when the process an owner id names is still running (a zombie is not) */
int wd_owner_alive(const char *owner);

#endif
