/* watchdog.c - the watchdog thread: it interrupts a slice that runs past its deadline
** (a signal to the loop thread arms the hook at once), and the resume and call that run
** script code under it. */
#include "sandbox.h"
#include "sbpriv.h"
#include "util.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define MAX_SLOTS 256

typedef struct {
    _Atomic int used;
    _Atomic(pthread_t) thread; /* read by the watchdog while a new thread takes the slot */
    _Atomic(wd_sandbox *) sb;
    _Atomic int64_t started;
    _Atomic int64_t signalled; /* when the watchdog last interrupted this slice (0: never) */
} slot_t;

static slot_t slots[MAX_SLOTS];
static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static int wd_started;
static _Thread_local slot_t *my_slot;

static slot_t *find_slot(void)
{
    pthread_t self = pthread_self();
    for (int i = 0; i < MAX_SLOTS; i++)
        if (atomic_load(&slots[i].used) && pthread_equal(atomic_load(&slots[i].thread), self))
            return &slots[i];
    return NULL;
}

/* Runs on the loop thread, interrupting Lua: lua_sethook is async-signal-safe. Only the
** loop thread (and this handler, on it) touches a sandbox: the watchdog sees slots,
** never sandboxes, so a sandbox freed after its slice is never written by it. */
static void on_signal(int sig)
{
    (void)sig;
    int e = errno;
    slot_t *s = find_slot();
    wd_sandbox *sb = s ? atomic_load(&s->sb) : NULL;
    if (sb && sb->running) {
        if (sb->mode == WD_MODE_NONE)
            sb->mode = WD_MODE_METER;
        wd_sandbox_arm_now(sb->running); /* check at the next instruction (fields only: signal-safe) */
    }
    errno = e;
}

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec tick = {0, 1000000}; /* 1 ms */
    for (;;) {
        nanosleep(&tick, NULL);
        int64_t now = wd_now_ns();
        for (int i = 0; i < MAX_SLOTS; i++) {
            slot_t *s = &slots[i];
            if (!atomic_load(&s->used))
                continue;
            if (!atomic_load(&s->sb))
                continue;
            int64_t last = atomic_load(&s->signalled);
            if (now - atomic_load(&s->started) > METER_AFTER_NS && (!last || now - last >= RECHECK_NS)) {
                atomic_store(&s->signalled, now);
                pthread_kill(atomic_load(&s->thread), SIGURG);
            }
        }
    }
    return NULL;
}

int wd_watchdog_attach(void)
{
    if (my_slot)
        return 0;
    pthread_mutex_lock(&wd_mu);
    if (!wd_started) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGURG, &sa, NULL);
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* the watchdog takes no signals */
        int rc = pthread_create(&t, &at, watchdog, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&at);
        if (rc) {
            pthread_mutex_unlock(&wd_mu);
            return -1;
        }
        wd_started = 1;
    }
    for (int i = 0; i < MAX_SLOTS; i++)
        if (!atomic_load(&slots[i].used)) {
            atomic_store(&slots[i].thread, pthread_self());
            atomic_store(&slots[i].sb, NULL);
            atomic_store(&slots[i].used, 1);
            my_slot = &slots[i];
            break;
        }
    pthread_mutex_unlock(&wd_mu);
    return my_slot ? 0 : -1;
}

void wd_watchdog_detach(void)
{
    if (!my_slot)
        return;
    atomic_store(&my_slot->sb, NULL);
    atomic_store(&my_slot->used, 0);
    my_slot = NULL;
}

int wd_sandbox_resume(wd_sandbox *sb, lua_State *co, int nargs, int *nres, int64_t deadline_ns)
{
    if (!my_slot)
        wd_watchdog_attach();
    sb->deadline_ns = deadline_ns;
    if (!sb->preempted)
        sb->instr = 0; /* a preempted slice keeps counting where it stopped */
    sb->preempted = 0;
    sb->running = co;
    if (sb->mode != WD_MODE_KILL) {
        sb->mode = WD_MODE_NONE;
        sb->kill_reason = WD_KILL_NONE;
    } else {
        wd_sandbox_arm_now(co);
    }
    sb->slice_start_ns = wd_now_ns();
    if (deadline_ns <= sb->slice_start_ns) {
        /* already late: meter from the first instruction, the hook will stop it */
        sb->mode = WD_MODE_METER;
        wd_sandbox_arm_now(co);
    }
    if (my_slot) {
        atomic_store(&my_slot->started, sb->slice_start_ns);
        atomic_store(&my_slot->signalled, 0);
        atomic_store(&my_slot->sb, sb);
    }
    int st = lua_resume(co, NULL, nargs, nres);
    if (my_slot)
        atomic_store(&my_slot->sb, NULL);
    sb->running = NULL;
    if (sb->mode == WD_MODE_METER)
        sb->mode = WD_MODE_NONE; /* hooks left on threads disarm themselves */
    return st;
}

int wd_sandbox_call(wd_sandbox *sb, int nargs, int64_t deadline, char *err, size_t n)
{
    lua_State *L = sb->L;
    lua_State *co = lua_newthread(L);
    lua_insert(L, -(nargs + 2));
    lua_xmove(L, co, nargs + 1);
    int nres = 0, st, narg = nargs;
    sb->in_engine--; /* the script's own allocations are under the cap */
    do {
        st = wd_sandbox_resume(sb, co, narg, &nres, deadline);
        narg = 0;
    } while (st == LUA_YIELD && nres == 0 && sb->preempted && sb->mode != WD_MODE_KILL);
    sb->in_engine++;
    int rc = WD_CALL_OK;
    if (sb->mode == WD_MODE_KILL) {
        rc = WD_CALL_KILLED;
    } else if (st == LUA_YIELD) {
        rc = WD_CALL_YIELDED;
    } else if (st != LUA_OK) {
        if (st == LUA_ERRMEM)
            snprintf(err, n, "memory limit exceeded");
        else
            wd_sandbox_error_text(co, -1, err, n, NULL);
        rc = WD_CALL_ERROR;
    } else {
        if (nres == 0)
            lua_pushnil(co);
        else
            lua_settop(co, lua_gettop(co) - nres + 1);
        lua_xmove(co, L, 1);
        lua_remove(L, -2); /* the thread */
        return WD_CALL_OK;
    }
    lua_pop(L, 1); /* the thread */
    return rc;
}
