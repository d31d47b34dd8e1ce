/* serve.c - warden serve: the process around the API (serve.h).
**
** The main thread loads the policy, binds one listening socket per worker (SO_REUSEPORT:
** the kernel spreads connections), starts the pool (each worker's start hook puts the
** API on its loop) and then turns a loop of its own for signals and inotify.
**
** Live reload. The policy file (or every *.yaml of a policy directory) and every .lua
** under the agents directory are watched. Changes settle for RELOAD_SETTLE_MS (an editor
** writes a file in several steps), then: a policy that loads, and keeps the audit log and
** the state store where they are, becomes the snapshot every worker checks from its next
** check on (posted to each worker's thread), audited policy_reloaded; one that does not is
** audited policy_rejected with each error (file:line:column) and the previous snapshot
** keeps serving. A script is compiled: if it compiles, runs load the new text from then
** on; if not, the cached version they loaded before keeps serving (chunks.h, pinned).
** SIGHUP reloads both.
**
** SIGTERM (or SIGINT): the workers stop accepting and answer 503 on open connections; runs
** get grace_ms to finish, then the rest end as killed; their results still reach waiting
** clients, the workers' logs and ledgers are flushed as the engines stop, and the exit
** code is 0. A second signal cancels at once. */
#include "events.h"
#include "admit.h"
#include "check.h"
#include "chunks.h"
#include "mcpserve.h"
#include "mcpsess.h"
#include "redact.h"
#include "serve.h"
#include "home.h"
#include "tls.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RELOAD_SETTLE_MS 100
#define RELOAD_WAIT_MS   5000 /* a worker's loop turns in milliseconds; this is a stuck one */
#define STOP_TICK_MS     20
#define REPLY_FLUSH_MS   200 /* after the last run ended: time for its answer to leave */
#define MAX_WATCHES      4096

typedef struct watch {
    int wd;
    char *dir;
} watch;

typedef struct srv_main {
    wd_server s;
    struct event_base *base;
    wd_audit *audit;
    char *policy_dir, *policy_base; /* the policy file's directory and name, or the directory and "" */
    int policy_is_dir;
    int ifd;
    struct event *inotify_ev, *settle_ev, *stop_ev, *house_ev;
    struct event *sig[3];
    watch *watches;
    size_t nwatches;
    int policy_dirty;
    char **scripts; /* changed .lua files waiting for the settle timer */
    size_t nscripts;
    int stopping, cancelled, signals;
    int64_t stop_deadline, drained_at;
    int front_failed;
} srv_main;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("warden: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

/* a record of the server itself, written at once; takes rec */
static void audit(srv_main *m, json_t *rec)
{
    wd_policy *p = wd_server_policy(&m->s);
    wd_redact_append(p, m->audit, rec);
    wd_policy_unref(p);
    if (wd_audit_flush(m->audit) < 0)
        say("%s", wd_audit_error(m->audit));
}

/* ---- the workers' hooks ------------------------------------------------------ */

static void on_record(void *ud, const json_t *rec) { wd_metrics_record(ud, rec); }

static void on_line(void *ud, const char *run_id, const char *event, const char *line, size_t len)
{
    wd_registry_event(ud, run_id, event, line, len);
}

static void front_start(void *ud, int index, wd_engine *e)
{
    srv_main *m = ud;
    wd_front *f = &m->s.fronts[index];
    f->e = e;
    wd_engine_on_record(e, on_record, m->s.met);
    wd_audit_observe(wd_engine_audit(e), on_line, m->s.reg);
    wd_policy *p = wd_server_policy(&m->s); /* the snapshot every worker shares */
    wd_engine_set_policy(e, p);
    wd_policy_unref(p);
    if (wd_api_start(f) < 0)
        __atomic_store_n(&m->front_failed, 1, __ATOMIC_RELAXED);
}

static void front_stop(void *ud, int index, wd_engine *e)
{
    srv_main *m = ud;
    (void)e;
    wd_mcp_stop(&m->s.fronts[index]);
    wd_api_stop(&m->s.fronts[index]);
}

static void post_drain(void *arg, int index, wd_engine *e)
{
    (void)e;
    srv_main *m = arg;
    wd_api_drain(&m->s.fronts[index]);
}

static void post_cancel(void *arg, int index, wd_engine *e)
{
    (void)arg;
    (void)index;
    wd_engine_cancel(e, NULL, "the server is stopping: the run did not finish within the grace period");
}

/* the main thread waits until every worker took a new policy (or RELOAD_WAIT_MS): what
** the engines hold under the old limits is revoked before the reload is announced */
typedef struct reload_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left, refs;
} reload_wait;

typedef struct policy_post {
    wd_policy *p;
    reload_wait *w;
} policy_post;

/* NULL-safe; the last reference frees */
static void wait_unref(reload_wait *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
    }
}

static void post_policy(void *arg, int index, wd_engine *e)
{
    (void)index;
    policy_post *pp = arg;
    wd_engine_set_policy(e, pp->p);
    wd_policy_unref(pp->p);
    if (pp->w) {
        pthread_mutex_lock(&pp->w->mu);
        pp->w->left--;
        pthread_cond_signal(&pp->w->cv);
        pthread_mutex_unlock(&pp->w->mu);
        wait_unref(pp->w);
    }
    free(pp);
}

/* gives np to every worker and waits until each has it (at most RELOAD_WAIT_MS); the
** number of workers that had not yet */
static int give_policy(srv_main *m, wd_policy *np)
{
    reload_wait *w = calloc(1, sizeof *w);
    if (w) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* a stepped wall clock moves no wait */
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, &ca);
        pthread_condattr_destroy(&ca);
        /* one reference for this thread and one per worker, each worker's counted before
        ** any is posted: a worker done at once never frees what this thread waits on */
        w->refs = 1 + m->s.nfronts;
        w->left = m->s.nfronts;
    }
    int lost = 0; /* posts that did not go out: their references and counts come back */
    for (int i = 0; i < m->s.nfronts; i++) {
        policy_post *pp = malloc(sizeof *pp);
        if (pp) {
            pp->p = wd_policy_ref(np);
            pp->w = w;
        }
        if (!pp || wd_pool_post(m->s.pool, i, post_policy, pp) < 0) {
            if (pp)
                wd_policy_unref(pp->p);
            free(pp);
            lost++;
        }
    }
    if (!w)
        return m->s.nfronts;
    pthread_mutex_lock(&w->mu);
    w->left -= lost;
    w->refs -= lost; /* never to 0: this thread holds one */
    pthread_mutex_unlock(&w->mu);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += RELOAD_WAIT_MS / 1000;
    pthread_mutex_lock(&w->mu);
    while (w->left > 0 && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
        ;
    int left = w->left;
    pthread_mutex_unlock(&w->mu);
    wait_unref(w);
    return left;
}

/* ---- housekeeping ------------------------------------------------------------ */

#define HOUSE_MS 250

/* what the table of runs keeps, from the policy's serve.* */
static void apply_limits(wd_server *s, const wd_policy *p)
{
    wd_registry_limits(s->reg, (size_t)p->serve_keep_runs, 1000, (size_t)p->serve_events_kb << 10,
                       (size_t)p->serve_kept_mb << 20, (size_t)p->serve_result_kb << 10);
}

/* ** Memory a finished run freed goes back to the system: the executable's allocator is
** mimalloc (each thread collects its own heap), anywhere else glibc's (malloc_trim). A
** burst of runs with large answers must not leave the server at its peak. */
static void collect_here(void)
{
    static void (*mi_collect_fn)(bool);
    static int looked;
    if (!__atomic_load_n(&looked, __ATOMIC_ACQUIRE)) {
        *(void **)&mi_collect_fn = dlsym(RTLD_DEFAULT, "mi_collect");
        __atomic_store_n(&looked, 1, __ATOMIC_RELEASE);
    }
    if (mi_collect_fn) {
        mi_collect_fn(true);
        return;
    }
    /* one thread at a time: glibc sets its heap up lazily on the first call into it, and
    ** where another allocator serves malloc (the sanitizers') that first call can be this
    ** one, from the main thread and a worker at once: they raced in its setup (SEGV) */
    static pthread_mutex_t trim_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&trim_mu);
    malloc_trim(0);
    pthread_mutex_unlock(&trim_mu);
}

static void post_collect(void *arg, int index, wd_engine *e)
{
    (void)arg;
    (void)index;
    (void)e;
    collect_here();
}

static void house_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv_main *m = arg;
    wd_api_expire(&m->s, 0, NULL);
    if (__atomic_exchange_n(&m->s.freed, 0, __ATOMIC_RELAXED)) {
        for (int i = 0; i < m->s.nfronts; i++)
            wd_pool_post(m->s.pool, i, post_collect, NULL);
        collect_here();
    }
}

/* ---- reload ---------------------------------------------------------------- */

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static void reject(srv_main *m, const char *file, json_t *errors, const char *why)
{
    wd_metrics_reload(m->s.met, 0);
    say("%s rejected, the previous version keeps serving: %s", file, why);
    audit(m, json_pack("{s:s,s:b,s:s,s:s,s:o}", "event", wd_event_name(WD_AE_POLICY_REJECTED), "success", 0, "file",
                       file, "reason", why, "errors", errors ? errors : json_array()));
}

static void reload_policy(srv_main *m, const char *why)
{
    wd_perrors pe = {0};
    const char *path = m->s.o.policy_path;
    wd_policy *np = wd_policy_load(path, &pe);
    if (!np) {
        json_t *errs = json_array();
        for (size_t i = 0; i < pe.n; i++)
            json_array_append_new(errs, json_string(pe.v[i]));
        reject(m, path, errs, pe.n ? pe.v[0] : "invalid policy");
        wd_perrors_free(&pe);
        return;
    }
    wd_perrors_free(&pe);
    wd_policy *cur = wd_server_policy(&m->s);
    char msg[600] = "";
    if (!same(np->audit_path, cur->audit_path) || np->audit_fsync != cur->audit_fsync)
        snprintf(msg, sizeof msg,
                 "%s: audit.path and audit.fsync cannot change while serving (the log is %s); "
                 "restart the server to move it",
                 path, cur->audit_path);
    else if (!same(np->store_path, cur->store_path))
        snprintf(msg, sizeof msg,
                 "%s: store.path cannot change while serving (the store is %s); restart the server "
                 "to move it",
                 path, cur->store_path);
    wd_policy_unref(cur);
    if (msg[0]) {
        reject(m, path, json_pack("[s]", msg), msg);
        wd_policy_unref(np);
        return;
    }
    long gen = atomic_fetch_add(&m->s.generation, 1) + 1;
    np->generation = gen; /* before any run sees it */
    pthread_mutex_lock(&m->s.mu);
    wd_policy *old = m->s.policy;
    m->s.policy = np;
    pthread_mutex_unlock(&m->s.mu);
    wd_policy_unref(old);
    apply_limits(&m->s, np);
    int late = give_policy(m, np);
    if (late)
        say("policy %s: %d worker(s) had not taken it after %d ms; they will at their next turn", path, late,
            RELOAD_WAIT_MS);
    wd_metrics_reload(m->s.met, 1);
    say("policy %s reloaded (%s): generation %ld", path, why, gen);
    audit(m, json_pack("{s:s,s:b,s:s,s:s,s:I}", "event", wd_event_name(WD_AE_POLICY_RELOADED), "success", 1, "file",
                       path, "reason", why, "generation", (json_int_t)gen));
}

/* 1 the script's text now serves (quiet: neither printed nor audited, the caller sums
** them up), 0 it was rejected or removed */
static int reload_script(srv_main *m, const char *path, const char *why, int quiet)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        wd_chunks_forget(path);
        say("script %s removed", path);
        audit(m, json_pack("{s:s,s:b,s:s,s:s}", "event", wd_event_name(WD_AE_POLICY_RELOADED), "success", 1, "script",
                           path, "reason", "removed"));
        wd_metrics_reload(m->s.met, 1);
        return 0;
    }
    char err[1024];
    /* what runs will load is checked whole first: compiled, its top level run, its
    ** definition valid (check.h); then it replaces the cached version */
    int n = wd_check_script(path, m->s.policy, err, sizeof err) < 0 ? -1 : wd_chunks_refresh(path, err, sizeof err);
    if (n < 0) {
        wd_metrics_reload(m->s.met, 0);
        say("script %s rejected, the previous version keeps serving: %s", path, err);
        audit(m, json_pack("{s:s,s:b,s:s,s:s,s:[s]}", "event", wd_event_name(WD_AE_POLICY_REJECTED), "success", 0,
                           "script", path, "reason", err, "errors", err));
        return 0;
    }
    wd_metrics_reload(m->s.met, 1);
    if (quiet)
        return 1;
    say("script %s reloaded (%s)", path, why);
    audit(m, json_pack("{s:s,s:b,s:s,s:s}", "event", wd_event_name(WD_AE_POLICY_RELOADED), "success", 1, "script", path,
                       "reason", why));
    return 1;
}

static int is_lua(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".lua") && name[0] != '.';
}

static int is_yaml(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && ((n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml")));
}

static void add_script(srv_main *m, const char *path)
{
    for (size_t i = 0; i < m->nscripts; i++)
        if (!strcmp(m->scripts[i], path))
            return;
    char **v = realloc(m->scripts, (m->nscripts + 1) * sizeof *v);
    if (!v)
        return;
    m->scripts = v;
    if ((v[m->nscripts] = wd_strdup(path)))
        m->nscripts++;
}

/* watches dir and, for the agents tree, every directory under it; with compile, checks
** every script met (the start: a broken script is reported before anyone runs it) */
static void watch_tree(srv_main *m, const char *dir, int recurse, int compile)
{
    if (m->nwatches >= MAX_WATCHES)
        return;
    int wd = inotify_add_watch(m->ifd, dir,
                               IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ONLYDIR);
    if (wd < 0) {
        say("cannot watch %s: %s (its changes will need SIGHUP)", dir, strerror(errno));
        return;
    }
    watch *w = realloc(m->watches, (m->nwatches + 1) * sizeof *w);
    if (!w)
        return;
    m->watches = w;
    m->watches[m->nwatches++] = (watch){wd, wd_strdup(dir)};
    if (!recurse)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char sub[2048];
        snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(sub, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            watch_tree(m, sub, 1, compile);
        else if (compile && is_lua(de->d_name)) {
            char err[1024];
            if (wd_check_script(sub, m->s.policy, err, sizeof err) < 0 || wd_chunks_refresh(sub, err, sizeof err) < 0)
                say("warning: %s", err);
        }
    }
    closedir(d);
}

static const char *watch_dir(srv_main *m, int wd)
{
    for (size_t i = 0; i < m->nwatches; i++)
        if (m->watches[i].wd == wd)
            return m->watches[i].dir;
    return NULL;
}

static void on_settled(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv_main *m = arg;
    if (m->stopping)
        return;
    if (m->policy_dirty) {
        m->policy_dirty = 0;
        reload_policy(m, "file changed");
    }
    for (size_t i = 0; i < m->nscripts; i++) {
        reload_script(m, m->scripts[i], "file changed", 0);
        free(m->scripts[i]);
    }
    m->nscripts = 0;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    srv_main *m = arg;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    int any = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            const char *dir = watch_dir(m, ev->wd);
            if (!dir || !ev->len)
                continue;
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, ev->name);
            int in_policy = !strcmp(dir, m->policy_dir) &&
                            (m->policy_is_dir ? is_yaml(ev->name) : !strcmp(ev->name, m->policy_base));
            if (in_policy) {
                m->policy_dirty = any = 1;
            } else if (!strncmp(path, m->s.agents_dir, strlen(m->s.agents_dir))) {
                if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)))
                    watch_tree(m, path, 1, 0);                          /* a new agent: its scripts load on first use */
                else if (is_lua(ev->name) && !(ev->mask & IN_CREATE)) { /* created: the close follows */
                    add_script(m, path);
                    any = 1;
                }
            }
        }
    }
    if (any) {
        struct timeval tv = {0, RELOAD_SETTLE_MS * 1000};
        event_add(m->settle_ev, &tv);
    }
}

/* ---- stopping -------------------------------------------------------------- */

static void stop_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    srv_main *m = arg;
    int64_t now = wd_now_ns() / 1000000;
    /* a run queued by a request that came in as the drain began */
    wd_api_expire(&m->s, 1, "the server is stopping: the run had not started");
    long live = wd_registry_live(m->s.reg);
    if (live > 0 && !m->cancelled && now >= m->stop_deadline) {
        m->cancelled = 1;
        say("grace period over: %ld run(s) end as killed", live);
        for (int i = 0; i < m->s.nfronts; i++)
            wd_pool_post(m->s.pool, i, post_cancel, m);
    }
    if (live > 0)
        return;
    if (!m->drained_at)
        m->drained_at = now;
    else if (now - m->drained_at >= REPLY_FLUSH_MS)
        event_base_loopbreak(m->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    srv_main *m = arg;
    if (sig == SIGHUP) {
        if (m->stopping)
            return;
        reload_policy(m, "SIGHUP");
        long scripts = 0; /* every script of the tree: one record for those that compile */
        for (size_t i = 0; i < m->nwatches; i++) {
            if (strncmp(m->watches[i].dir, m->s.agents_dir, strlen(m->s.agents_dir)))
                continue;
            DIR *d = opendir(m->watches[i].dir);
            struct dirent *de;
            while (d && (de = readdir(d)))
                if (is_lua(de->d_name)) {
                    char path[2048];
                    snprintf(path, sizeof path, "%s/%s", m->watches[i].dir, de->d_name);
                    scripts += reload_script(m, path, "SIGHUP", 1);
                }
            if (d)
                closedir(d);
        }
        say("%ld script(s) reloaded (SIGHUP)", scripts);
        audit(m, json_pack("{s:s,s:b,s:s,s:s,s:I}", "event", wd_event_name(WD_AE_POLICY_RELOADED), "success", 1,
                           "agents", m->s.agents_dir, "reason", "SIGHUP", "scripts", (json_int_t)scripts));
        return;
    }
    if (m->stopping) { /* a second signal: no more waiting */
        m->stop_deadline = 0;
        return;
    }
    m->stopping = 1;
    atomic_store(&m->s.draining, 1);
    long live = wd_registry_live(m->s.reg);
    say("%s: no new requests; %ld run(s) get %lld ms to finish", sig == SIGTERM ? "SIGTERM" : "SIGINT", live,
        m->s.o.grace_ms);
    m->stop_deadline = wd_now_ns() / 1000000 + m->s.o.grace_ms;
    wd_api_expire(&m->s, 1, "the server is stopping: the run had not started");
    for (int i = 0; i < m->s.nfronts; i++)
        wd_pool_post(m->s.pool, i, post_drain, m);
    struct timeval tv = {0, STOP_TICK_MS * 1000};
    event_add(m->stop_ev, &tv);
}

/* ---- the whole ------------------------------------------------------------- */

static char *strip_slashes(const char *s)
{
    char *d = wd_strdup(s);
    size_t n = d ? strlen(d) : 0;
    while (n > 1 && d[n - 1] == '/')
        d[--n] = '\0';
    return d;
}

/* the options' defaults, the agents directory, the policy and the server's own log;
** 0, or -1 said on stderr */
static int configure(srv_main *m, const wd_serve_opts *opts)
{
    wd_server *s = &m->s;
    s->o = *opts;
    if (!s->o.policy_path)
        s->o.policy_path = "policies/default.yaml";
    if (!s->o.listen)
        s->o.listen = "127.0.0.1:8080";
    if (s->o.workers <= 0)
        s->o.workers = 2;
    if (s->o.grace_ms <= 0)
        s->o.grace_ms = 10000;
    if (s->o.max_body <= 0)
        s->o.max_body = 1 << 20;
    s->agents_dir = strip_slashes(s->o.agents_dir ? s->o.agents_dir : "agents");
    char web[4200];
    s->web_dir = wd_strdup(s->o.web_dir ? s->o.web_dir : wd_home_path("web", web, sizeof web));
    struct stat st;
    if (stat(s->agents_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        say("--agents %s: not a directory", s->agents_dir);
        return -1;
    }
    wd_perrors pe = {0};
    s->policy = wd_policy_load(s->o.policy_path, &pe);
    for (size_t i = 0; i < pe.n; i++)
        fprintf(stderr, "%s\n", pe.v[i]);
    wd_perrors_free(&pe);
    if (!s->policy)
        return -1;
    atomic_store(&s->generation, 1);
    char err[600];
    if (!(m->audit = wd_audit_open(s->policy->audit_path, s->policy->audit_fsync, err, sizeof err))) {
        say("%s", err);
        return -1;
    }
    wd_audit_apply_policy(m->audit, s->policy);
    m->policy_is_dir = stat(s->o.policy_path, &st) == 0 && S_ISDIR(st.st_mode);
    char *pd = strip_slashes(s->o.policy_path);
    if (m->policy_is_dir) {
        m->policy_dir = pd;
        m->policy_base = wd_strdup("");
    } else {
        char *slash = pd ? strrchr(pd, '/') : NULL;
        m->policy_base = wd_strdup(slash ? slash + 1 : pd);
        if (slash)
            *slash = '\0';
        m->policy_dir = slash ? pd : wd_strdup(".");
        if (!slash)
            free(pd);
    }
    return m->policy_dir && m->policy_base ? 0 : -1;
}

/* scripts pinned and watched (each checked once now), the timers and the signals */
static void watch_all(srv_main *m)
{
    wd_server *s = &m->s;
    wd_chunks_pin(1);
    m->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (m->ifd < 0)
        say("inotify: %s (changes will need SIGHUP)", strerror(errno));
    else {
        watch_tree(m, m->policy_dir, 0, 0);
        watch_tree(m, s->agents_dir, 1, 1);
        m->inotify_ev = event_new(m->base, m->ifd, EV_READ | EV_PERSIST, on_inotify, m);
        event_add(m->inotify_ev, NULL);
    }
    m->settle_ev = evtimer_new(m->base, on_settled, m);
    m->stop_ev = event_new(m->base, -1, EV_PERSIST, stop_tick, m);
    m->house_ev = event_new(m->base, -1, EV_PERSIST, house_tick, m);
    const int SIGS[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        m->sig[i] = evsignal_new(m->base, SIGS[i], on_signal, m);
        if (m->sig[i])
            event_add(m->sig[i], NULL);
    }
}

/* the workers started, the loop turned until the server stops; 0, or -1 said */
static int run_workers(srv_main *m, const char *host, int port)
{
    wd_server *s = &m->s;
    char err[600];
    wd_engine_opts eo = {s->o.policy_path, s->o.llm, NULL, s->o.store_path};
    wd_pool_hooks hooks = {front_start, front_stop, m};
    s->pool = wd_pool_new_hooked(&eo, s->nfronts, &hooks, err, sizeof err);
    if (!s->pool) {
        say("%s", err);
        return -1;
    }
    if (m->front_failed) {
        say("cannot serve HTTP on every worker");
        return -1;
    }
    say("serving %s://%s:%d/ with %d worker(s); policy %s, agents %s/", s->tls ? "https" : "http", host, port,
        s->nfronts, s->o.policy_path, s->agents_dir);
    struct timeval house = {0, HOUSE_MS * 1000};
    if (m->house_ev)
        event_add(m->house_ev, &house);
    audit(m,
          json_pack("{s:s,s:b,s:s,s:s,s:s,s:i}", "event", wd_event_name(WD_AE_SERVER_STARTED), "success", 1, "listen",
                    s->o.listen, "policy", s->o.policy_path, "agents", s->agents_dir, "workers", s->nfronts));
    event_base_dispatch(m->base);
    wd_pool_free(s->pool); /* the engines stop: their logs and ledgers are flushed */
    s->pool = NULL;
    audit(m, json_pack("{s:s,s:b,s:s}", "event", wd_event_name(WD_AE_SERVER_STOPPED), "success", 1, "reason",
                       m->cancelled ? "stopped: runs past the grace period were killed" : "stopped"));
    say("stopped");
    return 0;
}

/* everything wd_serve made, in any state it reached */
static void teardown(srv_main *m)
{
    wd_server *s = &m->s;
    wd_pool_free(s->pool);
    for (int i = 0; s->fronts && i < s->nfronts; i++) /* those no listener took */
        if (s->fronts[i].fd >= 0)
            close(s->fronts[i].fd);
    for (int i = 0; i < 3; i++)
        if (m->sig[i])
            event_free(m->sig[i]);
    struct event *evs[4] = {m->inotify_ev, m->settle_ev, m->stop_ev, m->house_ev};
    for (int i = 0; i < 4; i++)
        if (evs[i])
            event_free(evs[i]);
    if (m->base)
        event_base_free(m->base);
    if (m->ifd >= 0)
        close(m->ifd);
    for (size_t i = 0; i < m->nwatches; i++)
        free(m->watches[i].dir);
    free(m->watches);
    for (size_t i = 0; i < m->nscripts; i++)
        free(m->scripts[i]);
    free(m->scripts);
    wd_audit_close(m->audit);
    wd_registry_free(s->reg);
    wd_admit_free(s->admit);
    wd_mcpsess_free(s->mcp_sessions);
    wd_metrics_free(s->met);
    wd_policy_unref(s->policy);
    wd_tls_free(s->tls);
    pthread_mutex_destroy(&s->mu);
    free(s->fronts);
    free(s->agents_dir);
    free(s->web_dir);
    free(m->policy_dir);
    free(m->policy_base);
    free(m);
}

int wd_serve(const wd_serve_opts *opts)
{
    srv_main *m = calloc(1, sizeof *m);
    if (!m)
        return 2;
    int rc = 2;
    wd_server *s = &m->s;
    pthread_mutex_init(&s->mu, NULL);
    m->ifd = -1;
    int *fds = NULL;
    if (configure(m, opts) < 0)
        goto out;
    s->nfronts = s->o.workers;
    s->fronts = calloc((size_t)s->nfronts, sizeof *s->fronts);
    fds = calloc((size_t)s->nfronts, sizeof *fds);
    s->reg = wd_registry_new(10000, 1000);
    s->met = wd_metrics_new();
    s->admit = wd_admit_new();
    s->mcp_sessions = wd_mcpsess_new();
    m->base = event_base_new();
    for (int i = 0; s->fronts && i < s->nfronts; i++)
        s->fronts[i].fd = -1;
    if (!s->fronts || !fds || !s->reg || !s->met || !s->admit || !s->mcp_sessions || !m->base)
        goto out;
    apply_limits(s, s->policy);
    char host[256];
    int port;
    char err[600] = "";
    if (s->o.tls_cert && !(s->tls = wd_tls_new(s->o.tls_cert, s->o.tls_key, err, sizeof err))) {
        say("%s", err);
        goto out;
    }
    if (wd_serve_listen(s->o.listen, fds, s->nfronts, host, sizeof host, &port, err, sizeof err) < 0) {
        say("%s", err);
        goto out;
    }
    for (int i = 0; i < s->nfronts; i++)
        s->fronts[i] = (wd_front){.srv = s, .index = i, .fd = fds[i]};
    watch_all(m);
    if (run_workers(m, host, port) == 0)
        rc = 0;
out:
    free(fds);
    teardown(m);
    return rc;
}
