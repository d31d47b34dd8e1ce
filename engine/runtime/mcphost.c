/* mcphost.c - an engine's MCP servers (mcphost.h) */
#include "mcphost.h"
#include "mcpsession.h"
#include "jail.h"
#include "util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct server {
    struct wd_mcp_host *host;
    const wd_mcp_server *cfg; /* in host->policy */
    struct event *restart;    /* armed when it ended */
    int restarts;             /* in a row, since it last listed its tools */
    long total_restarts;
    char *name;
    wd_mcp *conn;
    json_t *tools;   /* the last list it gave */
    char error[600]; /* why it is not usable; "" while it is */
    int ready;       /* its first list came (or it failed) */
    long long timeout_ms;
} server;

struct wd_mcp_host {
    struct event_base *base;
    wd_policy *policy; /* the servers' configuration, as the engine started */
    char *log_dir;     /* the servers' stderr logs go there */
    server *v;
    size_t n;
};

static void on_tools(void *ud, json_t *init, json_t *tools, const char *error)
{
    server *s = ud;
    s->ready = 1;
    if (error) {
        if (wd_mcp_running(s->conn)) /* its end, if it ended, says more */
            snprintf(s->error, sizeof s->error, "mcp server %s: %s", s->name, error);
        return;
    }
    json_decref(s->tools);
    s->tools = json_incref(tools);
    if (init) { /* a (re)started server is usable again */
        s->error[0] = '\0';
        s->restarts = 0;
    }
}

static void on_notify(void *ud, const char *method, json_t *params)
{
    server *s = ud;
    (void)params;
    if (!strcmp(method, "notifications/tools/list_changed") && s->conn && s->ready)
        wd_mcp_session_tools(s->conn, s->timeout_ms, on_tools, s);
}

static void start(wd_mcp_host *h, server *s, const wd_mcp_server *m);

/* ** A server that ended is started again after 0.5 s, 1 s, 2 s ... up to 30 s (the
** count resets once it lists its tools again); its tools fail, saying why, meanwhile. */
static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server *s = arg;
    wd_mcp_free(s->conn);
    s->conn = NULL;
    s->total_restarts++;
    start(s->host, s, s->cfg);
}

static void on_end(void *ud, const char *why)
{
    server *s = ud;
    s->ready = 1;
    long long delay = 500LL << (s->restarts < 6 ? s->restarts : 6);
    if (delay > 30000)
        delay = 30000;
    s->restarts++;
    if (s->restart || (s->restart = evtimer_new(s->host->base, on_restart, s))) {
        struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
        evtimer_add(s->restart, &tv);
    }
    snprintf(s->error, sizeof s->error, "%s", why);
}

/* NAME<sep>value for each pair, values from the policy or from warden's environment
** (a variable that is not set is left out); caller frees each and the list */
static char **pairs(char **names, char **values, char **from, size_t n, const char *sep)
{
    char **out = calloc(n + 1, sizeof *out);
    size_t k = 0;
    for (size_t i = 0; out && i < n; i++) {
        const char *v = values[i] ? values[i] : getenv(from[i]);
        if (v && asprintf(&out[k], "%s%s%s", names[i], sep, v) >= 0)
            k++;
    }
    return out;
}

/* the command a server runs as: bubblewrap's around its own (caller frees with
** wd_jail_free; NULL with why in err) */
static char **jailed_command(const wd_mcp_server *m, char *err, size_t n)
{
    const char *bw = wd_jail_bwrap();
    if (!bw) {
        snprintf(err, n, "mcp server %s: its sandbox needs bubblewrap (bwrap), which is not installed", m->name);
        return NULL;
    }
    wd_jail j = {&m->sandbox_ro, &m->sandbox_rw, NULL, m->cwd, m->sandbox_net, 0};
    char **argv = wd_jail_argv(bw, &j, m->argv);
    if (!argv)
        snprintf(err, n, "mcp server %s: a path of its sandbox does not resolve", m->name);
    return argv;
}

static void start(wd_mcp_host *h, server *s, const wd_mcp_server *m)
{
    char err[400];
    char **jailed = m->argv && m->sandboxed ? jailed_command(m, err, sizeof err) : NULL;
    if (m->argv && m->sandboxed && !jailed) {
        snprintf(s->error, sizeof s->error, "%s", err);
        s->ready = 1;
        return;
    }
    char **env = m->url ? pairs(m->header_names, m->header_values, m->header_from, m->n_headers, ": ")
                        : pairs(m->env_names, m->env_values, m->env_from, m->n_env, "=");
    char log[4200];
    snprintf(log, sizeof log, "%s/mcp-%s.stderr.log", h->log_dir ? h->log_dir : ".", m->name);
    wd_mcp_opts o = {.name = m->name,
                     .argv = jailed ? jailed : m->argv,
                     .env = env,
                     .cwd = jailed ? NULL : m->cwd, /* bwrap enters it inside */
                     .url = m->url,
                     .headers = env,
                     .stderr_log = h->log_dir ? log : NULL};
    s->conn = m->url    ? wd_mcp_connect(h->base, &o, err, sizeof err)
              : m->argv ? wd_mcp_spawn(h->base, &o, err, sizeof err)
                        : NULL;
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
    wd_jail_free(jailed);
    if (!s->conn) {
        snprintf(s->error, sizeof s->error, "%s", m->argv || m->url ? err : "no command");
        s->ready = 1;
        return;
    }
    wd_mcp_on(s->conn, on_notify, on_end, s);
    if (wd_mcp_session_start(s->conn, s->timeout_ms, on_tools, s) < 0) {
        snprintf(s->error, sizeof s->error, "mcp server %s: cannot start its session", m->name);
        s->ready = 1;
    }
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

wd_mcp_host *wd_mcp_host_new(struct event_base *b, const wd_policy *p, const char *audit_path)
{
    if (!p->n_mcp_servers)
        return NULL;
    wd_mcp_host *h = calloc(1, sizeof *h);
    if (!h || !(h->v = calloc(p->n_mcp_servers, sizeof *h->v))) {
        free(h);
        return NULL;
    }
    h->base = b;
    h->n = p->n_mcp_servers;
    h->policy = wd_policy_ref((wd_policy *)p);
    h->log_dir = audit_path ? wd_strdup(audit_path) : NULL;
    char *slash = h->log_dir ? strrchr(h->log_dir, '/') : NULL;
    if (slash)
        *slash = '\0';
    else if (h->log_dir)
        strcpy(h->log_dir, ".");
    long long longest = 0;
    for (size_t i = 0; i < h->n; i++) {
        server *s = &h->v[i];
        s->host = h;
        s->cfg = &p->mcp_servers[i];
        s->name = wd_strdup(p->mcp_servers[i].name);
        s->timeout_ms = p->mcp_servers[i].timeout_ms;
        if (s->timeout_ms > longest)
            longest = s->timeout_ms;
        start(h, s, &p->mcp_servers[i]);
    }
    /* the engine starts once every server answered (or its time ran out): runs find
    ** their tools listed */
    int64_t until = mono_ms() + longest;
    for (;;) {
        int waiting = 0;
        for (size_t i = 0; i < h->n; i++)
            waiting |= !h->v[i].ready;
        if (!waiting || mono_ms() >= until)
            break;
        struct timeval tick = {0, 20000};
        event_base_loopexit(b, &tick);
        event_base_dispatch(b);
    }
    for (size_t i = 0; i < h->n; i++)
        if (!h->v[i].ready)
            snprintf(h->v[i].error, sizeof h->v[i].error, "mcp server %s did not list its tools within %lld ms",
                     h->v[i].name, h->v[i].timeout_ms);
    return h;
}

const json_t *wd_mcp_host_tool(wd_mcp_host *h, const char *name, size_t len, const char *tool, wd_mcp **conn, char *why,
                               size_t n)
{
    for (size_t i = 0; h && i < h->n; i++) {
        server *s = &h->v[i];
        if (strlen(s->name) != len || strncmp(s->name, name, len))
            continue;
        if (s->error[0] || !wd_mcp_running(s->conn)) {
            snprintf(why, n, "%s", s->error[0] ? s->error : "mcp server has ended");
            return NULL;
        }
        size_t k;
        json_t *t;
        json_array_foreach(s->tools, k, t) if (!strcmp(json_string_value(json_object_get(t, "name")), tool))
        {
            *conn = s->conn;
            return t;
        }
        snprintf(why, n, "mcp server %s lists no tool '%s'", s->name, tool);
        return NULL;
    }
    snprintf(why, n, "no mcp server '%.*s' in the policy", (int)len, name);
    return NULL;
}

void wd_mcp_host_each(wd_mcp_host *h, wd_mcp_tool_fn fn, void *ud)
{
    for (size_t i = 0; h && i < h->n; i++) {
        server *s = &h->v[i];
        if (s->error[0] || !wd_mcp_running(s->conn))
            continue;
        size_t k;
        json_t *t;
        json_array_foreach(s->tools, k, t) fn(ud, s->name, t);
    }
}

void wd_mcp_host_free(wd_mcp_host *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        if (h->v[i].restart)
            event_free(h->v[i].restart);
        wd_mcp_on(h->v[i].conn, NULL, NULL, NULL); /* no restart from its end now */
        wd_mcp_free(h->v[i].conn);
        json_decref(h->v[i].tools);
        free(h->v[i].name);
    }
    free(h->v);
    wd_policy_unref(h->policy);
    free(h->log_dir);
    free(h);
}
