/* api.c - the HTTP API of warden serve, on each worker's loop (serve.h).
**
** Every route but / and /healthz wants `Authorization: Bearer KEY`, whose SHA-256 must
** be a user's api_key_sha256 in the policy the worker serves now; admin routes want the
** policy's top role. Refusals (401, 403) are audited as authorization_denied, at most
** DENY_AUDIT_PER_S a second per worker (the rest are counted, so a flood of bad keys
** cannot flood the log). Errors are {"error": "..."} with the status that says why. */
#include "admin.h"
#include "admit.h"
#include "approval.h"
#include "bound.h"
#include "chunks.h"
#include "detect.h"
#include "killswitch.h"
#include "redact.h"
#include "report.h"
#include "serve.h"
#include "tls.h"
#include "apicall.h"
#include "mcpserve.h"
#include "oaichat.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- routing --------------------------------------------------------------- */

/* ---- the routes: each a handler with the id its path holds -------------------- */

static void r_healthz(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_server *s = c->f->srv;
    long running, queued;
    long long mem;
    wd_admit_counts(s->admit, &running, &queued, &mem);
    wd_call_json(c, 200,
                 json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "status", "ok", "policy_generation",
                           (json_int_t)atomic_load(&s->generation), "runs_active", (json_int_t)wd_registry_live(s->reg),
                           "runs_running", (json_int_t)running, "runs_queued", (json_int_t)queued, "sandbox_memory_mb",
                           (json_int_t)mem));
}

static void r_page(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_api_get_page(c);
}

static void r_metrics(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_api_get_metrics(c);
}

static void r_post_run(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_api_post_run(c);
}

static void r_list_runs(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    const char *live = wd_call_param(q, "live");
    wd_call_json(
        c, 200,
        wd_registry_list(c->f->srv->reg, c->admin ? NULL : c->user->name, live && strcmp(live, "0"), LIST_LIMIT));
}

static void r_run(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)q;
    json_t *r = wd_api_visible_run(c, id);
    if (r)
        wd_call_json(c, 200, r);
}

static void r_events(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)q;
    wd_api_get_events(c, id);
}

static void r_approvals(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    const char *all = wd_call_param(q, "all");
    wd_api_get_approvals(c, all && strcmp(all, "0"));
}

static void r_approve(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)q;
    wd_api_decide(c, id, 1);
}

static void r_reject(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)q;
    wd_api_decide(c, id, 0);
}

static void r_kill(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_api_kill_or_revive(c, 0);
}

static void r_revive(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_api_kill_or_revive(c, 1);
}

static void r_breakers(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_store *st = wd_engine_store(c->f->e);
    json_t *l = wd_admin_breakers(st, c->p);
    if (l)
        wd_call_json(c, 200, l);
    else
        wd_call_error(c, 503, "state store: %s", wd_store_error(st));
}

static void r_reset(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)q;
    wd_api_reset_breaker(c, id);
}

static void r_cost(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    wd_api_get_cost(c, q);
}

static void r_mcp(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    if (!strcmp(c->method, "POST"))
        wd_mcp_post(c);
    else if (!strcmp(c->method, "DELETE"))
        wd_mcp_delete(c);
    else
        wd_mcp_get(c);
}

static void r_chat(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_oai_chat(c);
}

static void r_responses(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_oai_responses(c);
}

static void r_models(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_oai_models(c);
}

static void r_none(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_call_error(c, 404, "no route %s %s", c->method, c->path);
}

static void r_dashboard(wd_call *c, const char *id, struct evkeyvalq *q)
{
    (void)id;
    (void)q;
    wd_api_get_dashboard(c);
}

/* The routes, tried in order: the method, the path ("{}" holds an id of at most idmax
** - 1 characters, up to the next "/"), the label metrics count the request under, who
** may call it (OPEN: anyone, no key; USER: a user's key; ADMIN: the top role). */
enum { OPEN, USER, ADMIN, METRICS }; /* METRICS: the top role, or a user of scope metrics */
typedef struct {
    const char *method, *path, *label;
    int who;
    size_t idmax;
    void (*fn)(wd_call *c, const char *id, struct evkeyvalq *q);
} route;

static const route ROUTES[] = {
    {"GET", "/healthz", "/healthz", OPEN, 0, r_healthz},
    {"GET", "/", "/", OPEN, 0, r_page},
    {"GET", "/dashboard", "/", OPEN, 0, r_page},
    {"GET", "/metrics", "/metrics", METRICS, 0, r_metrics},
    {"POST", "/v1/runs", "/v1/runs", USER, 0, r_post_run},
    {"GET", "/v1/runs", "/v1/runs", USER, 0, r_list_runs},
    {"GET", "/v1/runs/{}", "/v1/runs/{id}", USER, 37, r_run},
    {"GET", "/v1/runs/{}/events", "/v1/runs/{id}/events", USER, 37, r_events},
    {"GET", "/v1/approvals", "/v1/approvals", USER, 0, r_approvals},
    {"POST", "/v1/approvals/{}/approve", "/v1/approvals/{id}", USER, 37, r_approve},
    {"POST", "/v1/approvals/{}/reject", "/v1/approvals/{id}", USER, 37, r_reject},
    {"POST", "/v1/kill", "/v1/kill", ADMIN, 0, r_kill},
    {"POST", "/v1/revive", "/v1/revive", ADMIN, 0, r_revive},
    {"GET", "/v1/breakers", "/v1/breakers", USER, 0, r_breakers},
    {"POST", "/v1/breakers/{}/reset", "/v1/breakers/{name}/reset", ADMIN, 200, r_reset},
    {"GET", "/v1/report/cost", "/v1/report/cost", ADMIN, 0, r_cost},
    {"GET", "/v1/dashboard", "/v1/dashboard", ADMIN, 0, r_dashboard},
    {"POST", "/v1/chat/completions", "/v1/chat/completions", USER, 0, r_chat},
    {"POST", "/v1/responses", "/v1/responses", USER, 0, r_responses},
    {"GET", "/v1/models", "/v1/models", USER, 0, r_models},
    {"POST", "/mcp", "/mcp", USER, 0, r_mcp},
    {"GET", "/mcp", "/mcp", USER, 0, r_mcp},
    {"DELETE", "/mcp", "/mcp", USER, 0, r_mcp},
};

/* a path of the API (or /metrics) that no route takes: 404, to a caller with a key */
static const route NO_ROUTE = {"", "", "other", USER, 0, r_none};

/* 1 when path fits pattern; the "{}" segment goes into id (at most idmax - 1 bytes) */
static int matches(const char *pattern, const char *path, char *id, size_t idmax)
{
    const char *hole = strstr(pattern, "{}");
    if (!hole)
        return !strcmp(pattern, path);
    size_t pre = (size_t)(hole - pattern);
    if (strncmp(pattern, path, pre))
        return 0;
    const char *seg = path + pre, *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    if (!len || len >= idmax)
        return 0;
    memcpy(id, seg, len);
    id[len] = '\0';
    return !strcmp(hole + 2, seg + len);
}

/* the route for the request, or NULL: answered (503 stopping, 405, 404) */
static const route *find_route(wd_call *c, enum evhttp_cmd_type m, char *id)
{
    if (c->f->draining) {
        c->route = "draining";
        wd_call_error(c, 503, "the server is stopping");
        return NULL;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_POST && !(m == EVHTTP_REQ_DELETE && !strcmp(c->path, "/mcp"))) {
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow", "GET, POST");
        wd_call_error(c, 405, "%s takes GET or POST", c->path);
        return NULL;
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
        if (!strcmp(ROUTES[i].method, c->method) &&
            matches(ROUTES[i].path, c->path, id, ROUTES[i].idmax ? ROUTES[i].idmax : 1))
            return &ROUTES[i];
    if (!strncmp(c->path, "/v1/", 4) || !strcmp(c->path, "/metrics"))
        return &NO_ROUTE;
    wd_call_error(c, 404, "no route %s %s", c->method, c->path);
    return NULL;
}

/* the request's method, path and kind into c */
static void call_init(wd_call *c, wd_front *f, struct evhttp_request *req)
{
    *c = (wd_call){.f = f, .req = req, .route = "other"};
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    snprintf(c->method, sizeof c->method, "%s",
             m == EVHTTP_REQ_GET      ? "GET"
             : m == EVHTTP_REQ_POST   ? "POST"
             : m == EVHTTP_REQ_DELETE ? "DELETE"
                                      : "OTHER");
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    c->path = path && *path ? path : "/";
    c->oai =
        !strcmp(c->path, "/v1/chat/completions") || !strcmp(c->path, "/v1/responses") || !strcmp(c->path, "/v1/models");
}

/* the caller known (blocked: the address or key found blocked), the route runs */
static void dispatch(wd_front *f, struct evhttp_request *req, const route *rt, const char *id, const char *blocked,
                     int64_t until)
{
    wd_call c;
    call_init(&c, f, req);
    c.route = rt->label;
    c.p = wd_engine_policy(f->e);
    struct evkeyvalq q = {0};
    TAILQ_INIT(&q);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (query)
        evhttp_parse_query_str(query, &q);
    if ((c.user = wd_call_auth(&c, blocked, until))) {
        c.admin = c.user->role == (int)c.p->roles.n - 1;
        if (c.user->metrics_only && rt->who != METRICS)
            wd_call_deny(&c, 403, c.user->name, "this key may read /metrics only (its user has scope: metrics)");
        else if ((rt->who != ADMIN && rt->who != METRICS) || c.user->metrics_only || wd_call_admin(&c))
            rt->fn(&c, id, &q);
    }
    evhttp_clear_headers(&q);
    wd_policy_unref(c.p);
}

/* ** A request's blocks (docs/serve.md, Blocking abuse) are read before its key is looked
** at, asked without waiting: the request waits, its client watched (one that leaves
** drops it), and goes on when the store answered. A store that cannot say counts as no
** block, as the key is still checked. */
typedef struct authwait {
    wd_front *f;
    struct evhttp_request *req; /* NULL: its client left */
    const route *rt;
    char id[200];
    char who[2][80]; /* its address, its key's hash */
    int step;
    wd_store_op op;
} authwait;

static void ask_blocks(authwait *w);

static void on_auth_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    ((authwait *)arg)->req = NULL;
}

static void blocks_answered(void *ud, int rc)
{
    authwait *w = ud;
    if (w->req && rc != 1) {
        w->step++;
        ask_blocks(w);
        return;
    }
    if (w->req) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
        dispatch(w->f, w->req, w->rt, w->id, w->who[w->step], w->op.until_ms);
    }
    free(w);
}

static void ask_blocks(authwait *w)
{
    while (w->step < 2 && !w->who[w->step][0])
        w->step++;
    if (w->step == 2) { /* none blocked */
        evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
        dispatch(w->f, w->req, w->rt, w->id, NULL, 0);
        free(w);
        return;
    }
    wd_store *s = wd_engine_store(w->f->e);
    w->op = (wd_store_op){.kind = WD_SOP_BLOCK_GET, .key = w->who[w->step], .now_ms = wd_store_now(s)};
    wd_store_ask(s, &w->op, blocks_answered, w);
}

static void handle(struct evhttp_request *req, void *arg)
{
    wd_front *f = arg;
    wd_call c;
    call_init(&c, f, req);
    char id[200] = "";
    const route *rt = find_route(&c, evhttp_request_get_command(req), id);
    if (!rt)
        return;
    c.route = rt->label;
    if (rt->who == OPEN) {
        rt->fn(&c, id, NULL);
        return;
    }
    authwait *w = calloc(1, sizeof *w);
    if (!w) {
        wd_call_error(&c, 503, "out of memory");
        return;
    }
    *w = (authwait){.f = f, .req = req, .rt = rt};
    snprintf(w->id, sizeof w->id, "%s", id);
    wd_call_who(req, w->who[0], w->who[1]);
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_auth_gone, w);
    ask_blocks(w);
}

/* ---- lifecycle ------------------------------------------------------------- */

int wd_api_start(wd_front *f)
{
    f->http = evhttp_new(wd_engine_base(f->e));
    if (!f->http)
        return -1;
    evhttp_set_gencb(f->http, handle, f);
    wd_tls_serve(f->srv->tls, f->http);
    evhttp_set_max_body_size(f->http, (ev_ssize_t)f->srv->o.max_body);
    evhttp_set_max_headers_size(f->http, 64 * 1024);
    evhttp_set_timeout(f->http, 120); /* an idle keep-alive connection, a stalled request */
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    f->bound = evhttp_accept_socket_with_handle(f->http, f->fd);
    if (!f->bound) {
        evhttp_free(f->http);
        f->http = NULL;
        return -1;
    }
    f->fd = -1; /* the listener closes it */
    return 0;
}

void wd_api_drain(wd_front *f)
{
    f->draining = 1;
    if (f->bound) {
        evhttp_del_accept_socket(f->http, f->bound); /* closes the socket */
        f->bound = NULL;
    }
}
