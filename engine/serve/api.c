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

#define DENY_AUDIT_PER_S 50
#define STREAM_POLL_MS 50
#define LIST_LIMIT 500

/* a request waiting for its run's result (POST /v1/runs with wait) and, either way, what
** the run's end must do */
typedef struct wd_waiter {
    struct wd_waiter *next, *prev;
    wd_front *f;
    struct evhttp_request *req; /* NULL: answered already, or the client went away */
    char run_id[37];
    char *path, *input, *session; /* what to start, while it waits for room (admit.h) */
    wd_admit_item item;           /* its user and memory, its place in the queue */
    int admitted;                 /* counted running: wd_admit_done at its end */
    int64_t started_ns;
    char *refuse;                 /* it waited too long: it starts refused */
} wd_waiter;

/* an open event stream (GET /v1/runs/{id}/events) */
typedef struct wd_stream {
    struct wd_stream *next, *prev;
    wd_front *f;
    struct evhttp_request *req;
    struct event *timer;
    char run_id[37];
    long cursor;
} wd_stream;

typedef struct call {
    wd_front *f;
    struct evhttp_request *req;
    const char *route;  /* for the metrics */
    wd_policy *p;       /* a reference, for the request's life */
    const wd_user *user;
    int admin;
    const char *path;
    char method[8];
} call;

/* ---- replies ---------------------------------------------------------------- */

static void send_text(call *c, int status, const char *type, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (c->f->draining)
        evhttp_add_header(h, "Connection", "close");
    if (b)
        evbuffer_add(b, body, len);
    evhttp_send_reply(c->req, status, NULL, b);
    if (b)
        evbuffer_free(b);
    wd_metrics_http(c->f->srv->met, c->route, status);
}

/* takes v */
static void send_json(call *c, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(v);
    if (!s) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        send_text(c, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    send_text(c, status, "application/json", s, strlen(s));
    free(s);
}

static void send_error(call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_error(call *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_json(c, status, json_pack("{s:s}", "error", msg));
}

/* a record of no run into the worker's log (takes rec) */
static void audit(wd_front *f, const wd_policy *p, json_t *rec) { wd_redact_append(p, f->e->audit, rec); }

/* an operator's action is in the file before it is acknowledged, and before what it causes */
static void audit_now(wd_front *f, const wd_policy *p, json_t *rec)
{
    audit(f, p, rec);
    wd_audit_flush(f->e->audit);
}

/* A refusal's record (takes rec) goes to the log if this worker has audited fewer than
** DENY_AUDIT_PER_S in the last second; otherwise it is only counted, and the next record
** says how many were not written (unaudited_before): a flood cannot flood the log */
static void audit_refusal(call *c, json_t *rec)
{
    wd_front *f = c->f;
    int64_t now = wd_now_ns() / 1000000;
    if (now - f->deny_window_ms >= 1000) {
        f->deny_window_ms = now;
        f->deny_count = 0;
    }
    if (f->deny_count >= DENY_AUDIT_PER_S || !rec) {
        f->deny_unaudited++;
        json_decref(rec);
        return;
    }
    f->deny_count++;
    json_object_set_new(rec, "unaudited_before", json_integer(f->deny_unaudited));
    f->deny_unaudited = 0;
    audit(f, c->p, rec);
}

/* 401 or 403, audited (within the rate) as authorization_denied */
static void deny(call *c, int status, const char *user, const char *why)
{
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(c->req), &peer, &port);
    char reason[600];
    snprintf(reason, sizeof reason, "http %d: %s", status, why);
    audit_refusal(c, json_pack("{s:s,s:s?,s:b,s:s,s:s,s:s,s:s?}", "event", "authorization_denied", "user_id", user,
                               "success", 0, "reason", reason, "http_method", c->method, "http_path", c->path,
                               "remote_addr", peer));
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "WWW-Authenticate", "Bearer realm=\"warden\"");
    send_error(c, status, "%s", why);
}

/* 429 with Retry-After: the server has no room for another run now; audited (within the
** same rate as refusals of keys) as rate_limited */
static void busy(call *c, const char *why, int retry_s)
{
    audit_refusal(c, json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:I}", "event", "rate_limited", "user_id", c->user->name,
                               "success", 0, "reason", why, "http_method", c->method, "http_path", c->path,
                               "retry_after_ms", (json_int_t)retry_s * 1000));
    char ra[24];
    snprintf(ra, sizeof ra, "%d", retry_s);
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", ra);
    send_error(c, 429, "%s", why);
}

/* ---- authentication ---------------------------------------------------------- */

/* the user the request's key belongs to; NULL after a 401 */
static const wd_user *authenticate(call *c)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Authorization");
    if (!h) {
        deny(c, 401, NULL, "no API key: send Authorization: Bearer KEY");
        return NULL;
    }
    if (strncasecmp(h, "Bearer ", 7) || !h[7]) {
        deny(c, 401, NULL, "the Authorization header must be 'Bearer KEY'");
        return NULL;
    }
    const wd_user *found = wd_admin_user_by_key(c->p, h + 7);
    if (!found)
        deny(c, 401, NULL, "unknown API key");
    return found;
}

static int need_admin(call *c)
{
    if (c->admin)
        return 1;
    char why[300];
    snprintf(why, sizeof why, "%s %s needs the '%s' role; %s has '%s'", c->method, c->path,
             c->p->roles.v[c->p->roles.n - 1], c->user->name, c->p->roles.v[c->user->role]);
    deny(c, 403, c->user->name, why);
    return 0;
}

/* ---- request bodies ------------------------------------------------------------ */

/* the body as a JSON object (an empty body reads {}); NULL after a 400 */
static json_t *body_object(call *c)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
    size_t n = evbuffer_get_length(in);
    if (!n)
        return json_object();
    const char *text = (const char *)evbuffer_pullup(in, -1);
    json_error_t je;
    json_t *v = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v) {
        send_error(c, 400, "request body: invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        send_error(c, 400, "request body: expected a JSON object");
        return NULL;
    }
    return v;
}

/* every key of o is one of allowed (NULL-terminated); else 400 */
static int known_keys(call *c, json_t *o, const char *const *allowed, const char *list)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(k, allowed[i]);
        if (!ok) {
            send_error(c, 400, "request body: unknown field '%s'; the fields are %s", k, list);
            return 0;
        }
    }
    return 1;
}

/* o[key] as a string; *out NULL when absent. 0, or -1 after a 400 */
static int opt_string(call *c, json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        send_error(c, 400, "request body: '%s' must be a string", key);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) { /* C strings end there */
        send_error(c, 400, "request body: '%s' must not hold a NUL byte", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* ---- runs ------------------------------------------------------------------ */

/* agent name → its path under the agents directory (caller frees); NULL: no such agent */
static char *agent_path(wd_server *s, const char *name)
{
    if (!*name || name[0] == '.' || strlen(name) > 128)
        return NULL;
    for (const char *q = name; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-' && *q != '.')
            return NULL;
    char *p = NULL;
    struct stat st;
    if (asprintf(&p, "%s/%s/agent.lua", s->agents_dir, name) < 0)
        return NULL;
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        p[strlen(p) - strlen("/agent.lua")] = '\0';
        return p;
    }
    free(p);
    if (asprintf(&p, "%s/%s.lua", s->agents_dir, name) < 0)
        return NULL;
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
        return p;
    free(p);
    return NULL;
}

static void waiter_unlink(wd_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (w->f->waiters == w)
        w->f->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

static void on_waiter_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    wd_waiter *w = arg;
    w->req = NULL; /* libevent frees the request with its connection */
}

static void waiter_free(wd_waiter *w)
{
    free(w->path);
    free(w->input);
    free(w->session);
    free(w->refuse);
    free(w);
}

/* the result as the table of runs keeps it: whole up to serve.result_kb, else each of its
** fields cut to a quarter of that, what was cut named in `truncated` (bound.h) and the
** whole in the audit log's run_finished. *whole: the text already rendered for a waiting
** client, or NULL; taken when it is what is kept. Caller frees. */
static char *kept_result(wd_server *s, const json_t *res, char **whole)
{
    size_t max = wd_registry_result_max(s->reg);
    if (wd_bound_size(res, max) <= max) {
        char *t = *whole ? *whole : json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(12));
        *whole = NULL;
        return t;
    }
    json_t *cp = json_copy((json_t *)res); /* shallow: the cut fields are replaced in cp only */
    if (!cp)
        return NULL;
    wd_bound_record(cp, max / 4, NULL, 0, NULL);
    json_object_set_new(cp, "result_note", json_string("cut to serve.result_kb for the table of runs: the audit "
                                                       "log's run_finished record has the whole result"));
    char *kept = json_dumps(cp, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(cp);
    return kept;
}

static wd_admit_limits admit_limits(const wd_policy *p)
{
    return (wd_admit_limits){p->serve_memory_mb, p->serve_max_runs, p->serve_max_queued, p->serve_max_runs_user,
                             p->serve_max_queued_user, p->serve_queue_wait_ms};
}

static void start_waiter(void *arg, int index, wd_engine *e);

/* runs that may start now, or must start refused: each to its own worker */
static void hand_out(wd_server *s, wd_admit_item *it, const char *refuse)
{
    while (it) {
        wd_admit_item *next = it->next;
        wd_waiter *w = it->ud;
        w->admitted = !refuse; /* counted running by admit.c */
        if (refuse) {
            free(w->refuse);
            w->refuse = wd_strdup(refuse);
        }
        if (wd_pool_post(s->pool, w->f->index, start_waiter, w) < 0)
            start_waiter(w, w->f->index, w->f->e); /* not reached while the pool lives */
        it = next;
    }
}

/* the run ended (on this worker's thread): the registry learns it, a waiting client gets
** it, and its room goes to the runs waiting for some */
static void on_run_done(const json_t *res, void *ud)
{
    wd_waiter *w = ud;
    wd_front *f = w->f;
    wd_server *s = f->srv;
    /* rendered whole only for a waiting client; the table of runs keeps it bounded, and
    ** the same text when it fits */
    char *text = NULL;
    if (w->req) {
        text = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(12));
        evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
        call c = {.f = f, .req = w->req, .route = "/v1/runs"};
        if (text)
            send_text(&c, 200, "application/json", text, strlen(text));
        else
            send_error(&c, 500, "out of memory");
    }
    char *kept = kept_result(s, res, &text);
    free(text);
    wd_registry_finish(s->reg, w->run_id, json_string_value(json_object_get(res, "status")), kept);
    if (w->admitted) {
        wd_policy *p = wd_server_policy(s);
        wd_admit_limits l = admit_limits(p);
        wd_policy_unref(p);
        hand_out(s, wd_admit_done(s->admit, &l, w->item.user, w->item.mem_mb,
                                  (wd_now_ns() - w->started_ns) / 1000000), NULL);
    }
    __atomic_store_n(&s->freed, 1, __ATOMIC_RELAXED);
    waiter_unlink(w);
    waiter_free(w);
}

/* on w's worker: the run starts (or ends refused, having waited too long) */
static void start_waiter(void *arg, int index, wd_engine *e)
{
    (void)index;
    wd_waiter *w = arg;
    w->started_ns = wd_now_ns();
    wd_run_opts ro = {w->path, w->input, w->item.user, w->session, NULL, w->run_id, w->refuse, 0};
    if (w->refuse)
        ro.refuse_retry_ms = 1000;
    wd_engine_submit(e, &ro, on_run_done, w);
}

void wd_api_expire(wd_server *s, int all, const char *why)
{
    wd_policy *p = wd_server_policy(s);
    wd_admit_limits l = admit_limits(p);
    wd_policy_unref(p);
    char msg[300];
    if (!why)
        snprintf(msg, sizeof msg, "the server is busy: the run waited %lld ms for room and did not get it "
                 "(serve.queue_wait_ms; serve.max_runs, serve.max_runs_per_user, serve.memory_mb)", l.queue_wait_ms);
    hand_out(s, wd_admit_expire(s->admit, &l, all), why ? why : msg);
}

/* what a run asked for over c needs until it ends (takes path); NULL out of memory */
static wd_waiter *new_waiter(call *c, char *path, const char *input, const char *session)
{
    wd_waiter *w = calloc(1, sizeof *w);
    if (!w || !(w->input = wd_strdup(input)) || (session && !(w->session = wd_strdup(session)))) {
        if (w)
            waiter_free(w);
        free(path);
        return NULL;
    }
    w->f = c->f;
    w->path = path;
    w->item.ud = w;
    wd_strlcpy(w->item.user, c->user->name, sizeof w->item.user);
    w->item.mem_mb = c->p->memory_mb + wd_detect_memory_mb(c->p->memory_mb); /* its sandbox, its detectors' */
    return w;
}

static void post_run(call *c)
{
    wd_server *s = c->f->srv;
    json_t *o = body_object(c);
    if (!o)
        return;
    static const char *const KEYS[] = {"agent", "input", "session_id", "wait", NULL};
    const char *agent, *input, *session;
    json_t *wait = json_object_get(o, "wait");
    if (!known_keys(c, o, KEYS, "agent, input, session_id, wait") || opt_string(c, o, "agent", &agent) < 0 ||
        opt_string(c, o, "input", &input) < 0 || opt_string(c, o, "session_id", &session) < 0)
        goto done;
    if (!agent || !input) {
        send_error(c, 400, "request body: '%s' is required (a string)", agent ? "input" : "agent");
        goto done;
    }
    if (wait && !json_is_boolean(wait)) {
        send_error(c, 400, "request body: 'wait' must be true or false");
        goto done;
    }
    if (session && (!*session || strlen(session) > 128)) {
        send_error(c, 400, "request body: 'session_id' must be 1 to 128 characters");
        goto done;
    }
    char *path = agent_path(s, agent);
    if (!path) {
        send_error(c, 404, "no agent named '%s' under %s/", agent, s->agents_dir);
        goto done;
    }
    wd_waiter *w = new_waiter(c, path, input, session);
    if (!w) {
        send_error(c, 503, "out of memory");
        goto done;
    }
    wd_admit_limits lim = admit_limits(c->p);
    char why[300];
    int retry_s;
    int got = wd_admit_ask(s->admit, &lim, &w->item, why, sizeof why, &retry_s);
    if (got == WD_ADMIT_FULL) {
        waiter_free(w);
        busy(c, why, retry_s);
        goto done;
    }
    wd_uuid(w->run_id);
    w->admitted = got == WD_ADMIT_RUN;
    if (wd_registry_add(s->reg, w->run_id, agent, c->user->name, session) < 0) {
        /* out of memory: started or queued, the run ends refused, and gives its room back */
        w->refuse = wd_strdup("out of memory");
    }
    w->next = c->f->waiters;
    if (w->next)
        w->next->prev = w;
    c->f->waiters = w;
    int waiting = json_is_true(wait);
    if (waiting) {
        w->req = c->req;
        evhttp_connection_set_closecb(evhttp_request_get_connection(c->req), on_waiter_gone, w);
    }
    char run_id[37];
    memcpy(run_id, w->run_id, sizeof run_id);
    /* the run may end inside submit (out of memory): on_run_done then frees w and answers.
    ** Queued, it starts when a run ends (hand_out) or is refused when it waited too long */
    if (got == WD_ADMIT_RUN)
        start_waiter(w, c->f->index, c->f->e);
    if (!waiting) {
        char loc[80];
        snprintf(loc, sizeof loc, "/v1/runs/%s", run_id);
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
        send_json(c, 202, json_pack("{s:s,s:s,s:s}", "run_id", run_id, "status", "queued", "events",
                                    strcat(loc, "/events")));
    }
done:
    json_decref(o);
}

/* the run, if this user may see it (its owner, or an admin); NULL after a 404 */
static json_t *visible_run(call *c, const char *id)
{
    char owner[160];
    json_t *r = wd_registry_get(c->f->srv->reg, id, owner);
    if (r && (c->admin || !strcmp(owner, c->user->name)))
        return r;
    json_decref(r);
    send_error(c, 404, "no run %s (unknown, someone else's, or finished long enough ago to be forgotten: "
                       "the audit log has it)", id);
    return NULL;
}

static void stream_free(wd_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else if (st->f->streams == st)
        st->f->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    if (st->timer)
        event_free(st->timer);
    free(st);
}

static void on_stream_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    stream_free(arg);
}

/* sends what the run recorded since the cursor; at the end, an `end` event and the
** stream closes */
static void stream_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_stream *st = arg;
    wd_buf b = {0};
    int ended = 0;
    long next = wd_registry_events(st->f->srv->reg, st->run_id, st->cursor, &b, &ended);
    if (next < 0)
        ended = 1; /* forgotten meanwhile */
    else
        st->cursor = next;
    if (ended)
        wd_buf_addf(&b, "event: end\ndata: {\"run_id\":\"%s\"}\n\n", st->run_id);
    if (b.len) {
        struct evbuffer *eb = evbuffer_new();
        if (eb) {
            evbuffer_add(eb, b.p, b.len);
            evhttp_send_reply_chunk(st->req, eb);
            evbuffer_free(eb);
        }
    }
    wd_buf_free(&b);
    if (ended) {
        struct evhttp_request *req = st->req;
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
        stream_free(st);
        evhttp_send_reply_end(req);
    }
}

static void get_events(call *c, const char *id)
{
    json_t *r = visible_run(c, id);
    if (!r)
        return;
    json_decref(r);
    wd_stream *st = calloc(1, sizeof *st);
    if (!st || !(st->timer = event_new(c->f->e->base, -1, EV_PERSIST, stream_pump, st))) {
        free(st);
        send_error(c, 503, "out of memory");
        return;
    }
    st->f = c->f;
    st->req = c->req;
    wd_strlcpy(st->run_id, id, sizeof st->run_id);
    const char *last = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Last-Event-ID");
    st->cursor = last ? atol(last) : 0; /* ids are record numbers from 1: resume after the last seen */
    st->next = c->f->streams;
    if (st->next)
        st->next->prev = st;
    c->f->streams = st;
    struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_connection_set_closecb(evhttp_request_get_connection(c->req), on_stream_gone, st);
    evhttp_send_reply_start(c->req, 200, "OK");
    wd_metrics_http(c->f->srv->met, c->route, 200);
    struct timeval tv = {0, STREAM_POLL_MS * 1000};
    event_add(st->timer, &tv);
    stream_pump(-1, 0, st);
}

/* ---- approvals ------------------------------------------------------------- */

/* user is in the list of approvers */
static int named_approver(const json_t *approvers, const char *user)
{
    size_t i;
    json_t *a;
    json_array_foreach(approvers, i, a) if (json_is_string(a) && !strcmp(json_string_value(a), user)) return 1;
    return 0;
}

/* the requests this user may see: an admin every one, others those naming them as an
** approver or asked by their own runs */
static void get_approvals(call *c, int all)
{
    wd_store *st = c->f->e->store;
    json_t *l;
    if (wd_approval_sweep(st, wd_store_now(st)) < 0 || wd_approval_list(st, all, &l) < 0) {
        send_error(c, 503, "state store %s: %s", wd_store_path(st), wd_store_error(st));
        return;
    }
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(l, i, r) {
        const char *owner = json_string_value(json_object_get(r, "user_id"));
        if (c->admin || named_approver(json_object_get(r, "approvers"), c->user->name) ||
            (owner && !strcmp(owner, c->user->name)))
            json_array_append(out, r);
    }
    json_decref(l);
    send_json(c, 200, out);
}

static void decide(call *c, const char *id, int approve)
{
    wd_store *st = c->f->e->store;
    json_t *o = body_object(c);
    if (!o)
        return;
    static const char *const KEYS[] = {"reason", NULL};
    const char *reason;
    if (!known_keys(c, o, KEYS, "reason") || opt_string(c, o, "reason", &reason) < 0)
        goto done;
    if (!approve && (!reason || !*reason)) {
        send_error(c, 400, "request body: a rejection needs a 'reason'");
        goto done;
    }
    int64_t now = wd_store_now(st);
    wd_approval_state as;
    int found = wd_approval_sweep(st, now) < 0 ? -1 : wd_approval_get(st, id, &as);
    if (found < 0) {
        send_error(c, 503, "state store %s: %s", wd_store_path(st), wd_store_error(st));
        goto done;
    }
    if (!found) {
        send_error(c, 404, "no approval request %s", id);
        goto done;
    }
    int may = c->admin || named_approver(as.approvers, c->user->name);
    wd_approval_state_clear(&as);
    if (!may) {
        char why[300];
        snprintf(why, sizeof why, "%s is not an approver of request %s (an admin or a named approver decides)",
                 c->user->name, id);
        deny(c, 403, c->user->name, why);
        goto done;
    }
    char msg[1400];
    int got = wd_approval_decide(st, id, approve, c->user->name, "api_key", reason, now, msg, sizeof msg);
    if (got < 0)
        send_error(c, 503, "state store %s: %s", wd_store_path(st), wd_store_error(st));
    else if (!got)
        send_error(c, 409, "%s", msg);
    else
        send_json(c, 200, json_pack("{s:s,s:s,s:s}", "id", id, "decision", approve ? "approve" : "reject",
                                    "message", msg));
done:
    json_decref(o);
}

/* ---- operator routes ----------------------------------------------------------- */

static void invalidate_kills(void *arg, int index, wd_engine *e)
{
    (void)arg;
    (void)index;
    wd_kills_invalidate(e);
}

static void kill_or_revive(call *c, int revive)
{
    json_t *o = body_object(c);
    if (!o)
        return;
    static const char *const KEYS[] = {"agent", "all", "reason", NULL};
    const char *agent, *reason;
    json_t *all = json_object_get(o, "all");
    if (!known_keys(c, o, KEYS, "agent, all, reason") || opt_string(c, o, "agent", &agent) < 0 ||
        opt_string(c, o, "reason", &reason) < 0)
        goto done;
    if (!!agent == json_is_true(all)) {
        send_error(c, 400, "request body: give an 'agent', or \"all\": true");
        goto done;
    }
    const char *target = agent ? agent : WD_KILL_ALL;
    const char *why = reason && *reason ? reason : revive ? "revived" : "killed by an operator";
    json_t *rec;
    int got = wd_admin_kill(c->f->e->store, target, revive, c->user->name, why, &rec);
    if (got < 0) {
        send_error(c, 503, "state store: %s", wd_store_error(c->f->e->store));
        goto done;
    }
    audit_now(c->f, c->p, rec);
    /* every worker reads the switch again before its next run, not within its poll */
    for (int i = 0; i < c->f->srv->nfronts; i++)
        wd_pool_post(c->f->srv->pool, i, invalidate_kills, NULL);
    send_json(c, 200, json_pack("{s:s,s:s,s:b}", "agent", agent ? agent : "*", "action", revive ? "revive" : "kill",
                                "changed", got));
done:
    json_decref(o);
}

static void reset_breaker(call *c, const char *name)
{
    int from;
    json_t *rec;
    int got = wd_admin_breaker_reset(c->f->e->store, name, c->user->name, &from, &rec);
    if (got < 0)
        send_error(c, 503, "state store: %s", wd_store_error(c->f->e->store));
    else if (!got)
        send_error(c, 404, "no breaker named '%s' (GET /v1/breakers lists them)", name);
    else {
        audit_now(c->f, c->p, rec);
        send_json(c, 200, json_pack("{s:s,s:s,s:s}", "name", name, "state", "closed", "was",
                                    wd_breaker_state_name(from)));
    }
}

/* a query parameter, or NULL */
static const char *param(struct evkeyvalq *q, const char *k) { return evhttp_find_header(q, k); }

static void get_cost(call *c, struct evkeyvalq *q)
{
    const char *si = param(q, "since"), *un = param(q, "until");
    int64_t since = si ? wd_parse_time(si) : -1, until = un ? wd_parse_time(un) : -1;
    if ((si && since < 0) || (un && until < 0)) {
        send_error(c, 400, "since and until want a time like 2026-11-21 or 2026-11-21T10:00:00Z");
        return;
    }
    char err[600];
    json_t *rep = wd_report_cost(wd_audit_path(c->f->e->audit), c->f->e->store, c->p, since, until,
                                 until >= 0 ? until : wd_wall_ms(), err, sizeof err);
    if (!rep)
        send_error(c, 503, "%s", err);
    else
        send_json(c, 200, rep);
}

static void get_metrics(call *c)
{
    wd_buf b = {0};
    wd_metrics_now now = {wd_registry_live(c->f->srv->reg), atomic_load(&c->f->srv->generation), 0, 0, 0};
    wd_admit_counts(c->f->srv->admit, &now.running, &now.queued, &now.reserved_mb);
    if (wd_metrics_render(c->f->srv->met, &b, c->f->e->store, c->p, &now) < 0) {
        wd_buf_free(&b);
        send_error(c, 503, "out of memory");
        return;
    }
    send_text(c, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len);
    wd_buf_free(&b);
}

/* everything the dashboard shows, in one answer */
static void get_dashboard(call *c)
{
    wd_server *s = c->f->srv;
    wd_store *st = c->f->e->store;
    json_t *appr = NULL, *br = wd_admin_breakers(st, c->p);
    if (wd_approval_sweep(st, wd_store_now(st)) < 0 || wd_approval_list(st, 0, &appr) < 0)
        appr = json_array();
    json_t *d = json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:I}", "runs", wd_registry_list(s->reg, NULL, 0, 50), "costs",
                          wd_metrics_costs(s->met), "breakers", br ? br : json_array(), "approvals", appr,
                          "violations", wd_registry_violations(s->reg), "runs_active",
                          (json_int_t)wd_registry_live(s->reg), "policy_generation",
                          (json_int_t)atomic_load(&s->generation));
    send_json(c, 200, d);
}

static void get_page(call *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/dashboard.html", c->f->srv->web_dir);
    size_t n;
    char *html = wd_read_file(path, 1u << 20, &n);
    if (!html) {
        send_error(c, 404, "the dashboard's page %s cannot be read", path);
        return;
    }
    send_text(c, 200, "text/html; charset=utf-8", html, n);
    free(html);
}

/* ---- routing --------------------------------------------------------------- */

/* path is "/v1/runs/ID[/rest]": ID into id (at most n-1 characters); rest or "" */
static const char *segment(const char *path, size_t skip, char *id, size_t n)
{
    const char *p = path + skip, *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (!len || len >= n)
        return NULL;
    memcpy(id, p, len);
    id[len] = '\0';
    return slash ? slash : "";
}

static void handle(struct evhttp_request *req, void *arg)
{
    wd_front *f = arg;
    call c = {.f = f, .req = req, .route = "other"};
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    snprintf(c.method, sizeof c.method, "%s", m == EVHTTP_REQ_GET ? "GET" : m == EVHTTP_REQ_POST ? "POST" : "OTHER");
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    c.path = path && *path ? path : "/";
    int get = m == EVHTTP_REQ_GET, post = m == EVHTTP_REQ_POST;
    if (f->draining) {
        c.route = "draining";
        send_error(&c, 503, "the server is stopping");
        return;
    }
    if (!get && !post) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, POST");
        send_error(&c, 405, "%s takes GET or POST", c.path);
        return;
    }
    if (!strcmp(c.path, "/healthz") && get) {
        c.route = "/healthz";
        long running, queued;
        long long mem;
        wd_admit_counts(f->srv->admit, &running, &queued, &mem);
        send_json(&c, 200, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "status", "ok", "policy_generation",
                                     (json_int_t)atomic_load(&f->srv->generation), "runs_active",
                                     (json_int_t)wd_registry_live(f->srv->reg), "runs_running", (json_int_t)running,
                                     "runs_queued", (json_int_t)queued, "sandbox_memory_mb", (json_int_t)mem));
        return;
    }
    if ((!strcmp(c.path, "/") || !strcmp(c.path, "/dashboard")) && get) {
        c.route = "/";
        get_page(&c);
        return;
    }
    int api = strlen(c.path) >= 4 && !memcmp(c.path, "/v1/", 4), metrics = !strcmp(c.path, "/metrics");
    if (!api && !metrics) {
        send_error(&c, 404, "no route %s %s", c.method, c.path);
        return;
    }
    c.p = wd_engine_policy(f->e);
    struct evkeyvalq q = {0};
    TAILQ_INIT(&q);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (query)
        evhttp_parse_query_str(query, &q);
    char id[200];
    const char *rest;
    if (!(c.user = authenticate(&c)))
        goto done;
    c.admin = c.user->role == (int)c.p->roles.n - 1;
    if (metrics && get) {
        c.route = "/metrics";
        if (need_admin(&c))
            get_metrics(&c);
    } else if (!strcmp(c.path, "/v1/runs")) {
        c.route = "/v1/runs";
        if (post)
            post_run(&c);
        else if (get) {
            const char *live = param(&q, "live");
            send_json(&c, 200, wd_registry_list(f->srv->reg, c.admin ? NULL : c.user->name,
                                                live && strcmp(live, "0"), LIST_LIMIT));
        } else
            send_error(&c, 405, "%s takes GET or POST", c.path);
    } else if (!strncmp(c.path, "/v1/runs/", 9) && (rest = segment(c.path, 9, id, 37)) && get) {
        c.route = *rest ? "/v1/runs/{id}/events" : "/v1/runs/{id}";
        if (!strcmp(rest, "/events"))
            get_events(&c, id);
        else if (!*rest) {
            json_t *r = visible_run(&c, id);
            if (r)
                send_json(&c, 200, r);
        } else
            send_error(&c, 404, "no route %s %s", c.method, c.path);
    } else if (!strcmp(c.path, "/v1/approvals") && get) {
        c.route = "/v1/approvals";
        const char *all = param(&q, "all");
        get_approvals(&c, all && strcmp(all, "0"));
    } else if (!strncmp(c.path, "/v1/approvals/", 14) && (rest = segment(c.path, 14, id, 37)) && post &&
               (!strcmp(rest, "/approve") || !strcmp(rest, "/reject"))) {
        c.route = "/v1/approvals/{id}";
        decide(&c, id, !strcmp(rest, "/approve"));
    } else if ((!strcmp(c.path, "/v1/kill") || !strcmp(c.path, "/v1/revive")) && post) {
        c.route = c.path;
        if (need_admin(&c))
            kill_or_revive(&c, c.path[4] == 'r');
    } else if (!strcmp(c.path, "/v1/breakers") && get) {
        c.route = "/v1/breakers";
        json_t *l = wd_admin_breakers(f->e->store, c.p);
        if (l)
            send_json(&c, 200, l);
        else
            send_error(&c, 503, "state store: %s", wd_store_error(f->e->store));
    } else if (!strncmp(c.path, "/v1/breakers/", 13) && (rest = segment(c.path, 13, id, sizeof id)) &&
               !strcmp(rest, "/reset") && post) {
        c.route = "/v1/breakers/{name}/reset";
        if (need_admin(&c))
            reset_breaker(&c, id);
    } else if (!strcmp(c.path, "/v1/report/cost") && get) {
        c.route = "/v1/report/cost";
        if (need_admin(&c))
            get_cost(&c, &q);
    } else if (!strcmp(c.path, "/v1/dashboard") && get) {
        c.route = "/v1/dashboard";
        if (need_admin(&c))
            get_dashboard(&c);
    } else {
        send_error(&c, 404, "no route %s %s", c.method, c.path);
    }
done:
    evhttp_clear_headers(&q);
    wd_policy_unref(c.p);
}

/* ---- lifecycle ------------------------------------------------------------- */

int wd_api_start(wd_front *f)
{
    f->http = evhttp_new(f->e->base);
    if (!f->http)
        return -1;
    evhttp_set_gencb(f->http, handle, f);
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

void wd_api_stop(wd_front *f)
{
    while (f->streams) { /* their requests go with the connections */
        wd_stream *st = f->streams;
        f->streams = st->next; /* unlinked here: stream_free finds it first in no list */
        if (st->next)
            st->next->prev = NULL;
        st->next = NULL;
        evhttp_connection_set_closecb(evhttp_request_get_connection(st->req), NULL, NULL);
        stream_free(st);
    }
    for (wd_waiter *w = f->waiters; w; w = w->next)
        if (w->req) {
            evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
            w->req = NULL;
        }
    if (f->http)
        evhttp_free(f->http);
    f->http = NULL;
}
