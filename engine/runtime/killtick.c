/* killtick.c - the kill switch enforced on a live engine: every KILL_POLL_MS while runs
** are active, the kill table is read again and a run of a killed agent ends killed */
#include "engine.h"
#include "killswitch.h"

#include <stdio.h>
#include <string.h>

/* the runs of killed agents end killed; the poll goes on while runs are live */
static void enforce(wd_engine *e)
{
    if (json_object_size(e->kills.killed)) {
        wd_run *next;
        for (wd_run *r = e->live; r; r = next) {
            next = r->live_next;
            const char *who, *why;
            /* by the name its directory gives it too: a script that renames itself is
            ** still the agent that was killed */
            if (!r->pol || r->finishing ||
                (!(why = wd_kills_why(e, r->agent_name, &who)) &&
                 !(r->agent_key && (why = wd_kills_why(e, r->agent_key, &who)))))
                continue;
            char msg[600];
            snprintf(msg, sizeof msg, "killed by the kill switch (%s: %s)", who, *why ? why : "no reason given");
            wd_kills_audit(r, "cancel_run", msg, 0);
            wd_run_end(r, WD_ST_KILLED, msg);
        }
    }
    if (e->active > 0)
        wd_kills_arm(e);
}

/* the tables read without waiting (a Redis store): taken, then enforced */
static void on_read(void *ud, int rc, json_t *killed, json_t *failing)
{
    wd_engine *e = ud;
    e->kills.asking = 0;
    if (!e->kills.ev) { /* the engine is stopping: its poll is gone */
        json_decref(killed);
        json_decref(failing);
        return;
    }
    if (rc == 0) {
        json_decref(e->kills.killed);
        json_decref(e->kills.failing);
        e->kills.killed = killed;
        e->kills.failing = failing;
        e->kills.read_ns = wd_now_ns();
    }
    enforce(e); /* a failed read keeps what was known, as the waiting read does */
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_engine *e = arg;
    int64_t asked = e->kills.read_ns;
    e->kills.read_ns = wd_now_ns(); /* as a waiting read counts: a run's check reads no more meanwhile */
    if (wd_store_kill_read_async(e->store, on_read, e) == 0) {
        e->kills.asking = 1;
        return; /* on_read goes on */
    }
    e->kills.read_ns = asked;
    wd_kills_refresh(e, 1);
    enforce(e);
}

void wd_kills_now(wd_engine *e)
{
    if (e->kills.ev && evtimer_pending(e->kills.ev, NULL)) { /* runs are live: the poll, now */
        event_del(e->kills.ev);
        event_active(e->kills.ev, EV_TIMEOUT, 0);
    } else {
        wd_kills_refresh(e, 1); /* the copy a new run is checked against */
    }
}

void wd_kills_arm(wd_engine *e)
{
    if (!e->kills.ev && !(e->kills.ev = evtimer_new(e->base, on_poll, e)))
        return;
    if (evtimer_pending(e->kills.ev, NULL))
        return;
    struct timeval tv = {0, KILL_POLL_MS * 1000};
    evtimer_add(e->kills.ev, &tv);
}

void wd_kills_free(wd_engine *e)
{
    if (e->kills.ev)
        event_free(e->kills.ev);
    json_decref(e->kills.killed);
    json_decref(e->kills.failing);
    memset(&e->kills, 0, sizeof e->kills);
}
