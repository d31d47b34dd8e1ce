/* killswitch.c - the kill switch in the state store and what a run checks of it: its
** start refused, its end counted (killswitch.h); killtick.c ends the runs killed while
** they run */
#include "killswitch.h"
#include "engine.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- engine side ------------------------------------------------------------------ */

void wd_kills_invalidate(wd_engine *e) { e->kills.read_ns = 0; }

/* the engine's copy of the tables, read again when older than KILL_POLL_MS:
** killed {agent: reason}, failing {agent: count} */
int wd_kills_refresh(wd_engine *e, int force)
{
    int64_t now = wd_now_ns();
    if (!force && e->kills.read_ns && (e->kills.asking || now - e->kills.read_ns < KILL_POLL_MS * 1000000LL))
        return 0;
    e->kills.read_ns = now;
    json_t *killed, *failing;
    if (wd_store_kill_read(e->store, &killed, &failing) < 0)
        return -1; /* keep what we knew: the store speaks again at the next poll */
    json_decref(e->kills.killed);
    json_decref(e->kills.failing);
    e->kills.killed = killed;
    e->kills.failing = failing;
    return 0;
}

/* the reason agent is killed, or NULL */
const char *wd_kills_why(wd_engine *e, const char *agent, const char **who)
{
    json_t *v = json_object_get(e->kills.killed, WD_KILL_ALL);
    *who = "all agents";
    if (!v) {
        v = agent ? json_object_get(e->kills.killed, agent) : NULL;
        *who = agent;
    }
    return v ? json_string_value(v) : NULL;
}

void wd_kills_audit(wd_run *r, const char *action, const char *reason, int automatic)
{
    json_t *ev = wd_run_event(r, WD_AE_KILL_SWITCH, 0);
    json_object_set_new(ev, "action", json_string(action));
    json_object_set_new(ev, "reason", json_string(reason));
    if (automatic)
        json_object_set_new(ev, "automatic", json_true());
    wd_run_audit(r, ev);
}

int wd_kills_refuse(wd_run *r, char *msg, size_t n)
{
    wd_engine *e = r->eng;
    wd_kills_refresh(e, 0);
    const char *who, *why = wd_kills_why(e, r->agent_name, &who);
    if (!why)
        return 0;
    snprintf(msg, n, "agent '%s' is stopped by the kill switch (%s: %s); warden revive %s brings it back",
             r->agent_name, who, *why ? why : "no reason given", strcmp(who, "all agents") ? r->agent_name : "--all");
    wd_kills_audit(r, "refuse_run", msg, 0);
    return 1;
}

void wd_kills_note_end(wd_run *r, int st)
{
    wd_engine *e = r->eng;
    /* counted under the name its directory gives it, which its next runs are refused by:
    ** a script that declares another name is still that agent */
    const char *agent = r->agent_key ? r->agent_key : r->agent_name;
    if (!r->sb || !agent || r->direct_tool) /* never started: nothing the agent did; a client's own call */
        return;
    int failed = st == WD_ST_FAILED || st == WD_ST_MAX_ITERATIONS || st == WD_ST_TIMEOUT || st == WD_ST_HALTED;
    if (!failed && st != WD_ST_COMPLETED)
        return; /* out of budget or rate, refused, rejected by a person, killed: not the agent failing */
    wd_kills_refresh(e, 0);
    json_t *known = json_object_get(e->kills.failing, agent);
    if (!failed && !known)
        return; /* the common case costs no write */
    long long count;
    if (wd_store_health_note(e->store, agent, failed, &count) < 0)
        return;
    if (!failed) {
        json_object_del(e->kills.failing, agent);
        return;
    }
    json_object_set_new(e->kills.failing, agent, json_integer(count));
    long long limit = r->pol ? r->pol->kill_consecutive_errors : 0;
    if (limit <= 0 || count < limit)
        return;
    char why[300];
    snprintf(why, sizeof why, "disabled automatically: its last %lld runs failed (kill_switch.consecutive_errors)",
             count);
    if (wd_store_kill_set(e->store, agent, "warden", why, 1, wd_wall_ms()) == 1) {
        wd_kills_audit(r, "kill", why, 1);
        if (e->notice) {
            char line[500];
            snprintf(line, sizeof line, "agent '%s' %s; warden revive %s brings it back", agent, why, agent);
            e->notice(e->notice_ud, line);
        }
    }
    wd_kills_refresh(e, 1);
}
