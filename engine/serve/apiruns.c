/* apiruns.c - runs over HTTP: POST /v1/runs (queued for room, admit.h; answered at
** once or when the run ends), GET /v1/runs/{id} and its event stream */
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
#include "apicall.h"

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

/* ---- runs ------------------------------------------------------------------ */

char *wd_api_agent_path(wd_server *s, const char *name)
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
    free(w->tool);
    free(w->history);
    free(w->output_schema);
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
    json_object_set_new(cp, "result_note",
                        json_string("cut to serve.result_kb for the table of runs: the audit "
                                    "log's run_finished record has the whole result"));
    char *kept = json_dumps(cp, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(cp);
    return kept;
}

static wd_admit_limits admit_limits(const wd_policy *p)
{
    return (wd_admit_limits){p->serve_memory_mb,     p->serve_max_runs,        p->serve_max_queued,
                             p->serve_max_runs_user, p->serve_max_queued_user, p->serve_queue_wait_ms};
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
    if (w->on_end)
        w->on_end(w, res);
    else if (w->req) {
        text = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(12));
        evhttp_connection_set_closecb(evhttp_request_get_connection(w->req), NULL, NULL);
        wd_call c = {.f = f, .req = w->req, .route = "/v1/runs"};
        if (text)
            wd_call_text(&c, 200, "application/json", text, strlen(text));
        else
            wd_call_error(&c, 500, "out of memory");
    }
    char *kept = kept_result(s, res, &text);
    free(text);
    wd_registry_finish(s->reg, w->run_id, json_string_value(json_object_get(res, "status")), kept);
    if (w->admitted) {
        wd_policy *p = wd_server_policy(s);
        wd_admit_limits l = admit_limits(p);
        wd_policy_unref(p);
        hand_out(s, wd_admit_done(s->admit, &l, w->item.user, w->item.mem_mb, (wd_now_ns() - w->started_ns) / 1000000),
                 NULL);
    }
    __atomic_store_n(&s->freed, 1, __ATOMIC_RELAXED);
    waiter_unlink(w);
    waiter_free(w);
}

/* a tool's progress in the run, to whoever waits for it (on this worker) */
static void on_run_progress(const json_t *p, void *ud)
{
    wd_waiter *w = ud;
    if (w->on_progress)
        w->on_progress(w, p);
}

/* a piece of the model's answer, to whoever waits for it (on this worker) */
static void on_run_text(const char *text, size_t len, void *ud)
{
    wd_waiter *w = ud;
    if (w->on_text)
        w->on_text(w, text, len);
}

/* on w's worker: the run starts (or ends refused, having waited too long) */
static void start_waiter(void *arg, int index, wd_engine *e)
{
    (void)index;
    wd_waiter *w = arg;
    w->started_ns = wd_now_ns();
    wd_run_opts ro = {w->tool ? w->f->srv->agents_dir : w->path,
                      w->input,
                      w->item.user,
                      w->session,
                      NULL,
                      w->run_id,
                      w->refuse,
                      0,
                      w->tool,
                      w->on_progress ? on_run_progress : NULL,
                      w->history,
                      w->on_text ? on_run_text : NULL,
                      w->output_schema};
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
        snprintf(msg, sizeof msg,
                 "the server is busy: the run waited %lld ms for room and did not get it "
                 "(serve.queue_wait_ms; serve.max_runs, serve.max_runs_per_user, serve.memory_mb)",
                 l.queue_wait_ms);
    hand_out(s, wd_admit_expire(s->admit, &l, all), why ? why : msg);
}

/* what a run asked for over c needs until it ends (takes path); NULL out of memory */
static wd_waiter *new_waiter(wd_call *c, char *path, const char *input, const char *session, const char *tool)
{
    wd_waiter *w = calloc(1, sizeof *w);
    if (!w || !(w->input = wd_strdup(input)) || (session && !(w->session = wd_strdup(session))) ||
        (tool && !(w->tool = wd_strdup(tool)))) {
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

wd_waiter *wd_api_run(wd_call *c, char *path, const char *input, const char *session, const char *tool,
                      const char *label, void (*on_end)(wd_waiter *w, const json_t *res), void *ud)
{
    wd_server *s = c->f->srv;
    wd_waiter *w = new_waiter(c, path, input, session, tool);
    if (!w) {
        wd_call_error(c, 503, "out of memory");
        return NULL;
    }
    w->on_end = on_end;
    w->ud = ud;
    wd_admit_limits lim = admit_limits(c->p);
    char why[300];
    int retry_s;
    int got = wd_admit_ask(s->admit, &lim, &w->item, why, sizeof why, &retry_s);
    if (got == WD_ADMIT_FULL) {
        waiter_free(w);
        wd_call_busy(c, why, retry_s);
        return NULL;
    }
    wd_uuid(w->run_id);
    w->admitted = got == WD_ADMIT_RUN;
    if (wd_registry_add(s->reg, w->run_id, label, c->user->name, session) < 0) {
        /* out of memory: started or queued, the run ends refused, and gives its room back */
        w->refuse = wd_strdup("out of memory");
    }
    w->next = c->f->waiters;
    if (w->next)
        w->next->prev = w;
    c->f->waiters = w;
    return w;
}

void wd_api_go(wd_call *c, wd_waiter *w)
{
    if (w->admitted)
        start_waiter(w, c->f->index, c->f->e);
}

void wd_api_post_run(wd_call *c)
{
    wd_server *s = c->f->srv;
    json_t *o = wd_call_body(c);
    if (!o)
        return;
    static const char *const KEYS[] = {"agent", "input", "session_id", "wait", NULL};
    const char *agent, *input, *session;
    json_t *wait = json_object_get(o, "wait");
    if (!wd_call_keys(c, o, KEYS, "agent, input, session_id, wait") || wd_call_opt_string(c, o, "agent", &agent) < 0 ||
        wd_call_opt_string(c, o, "input", &input) < 0 || wd_call_opt_string(c, o, "session_id", &session) < 0)
        goto done;
    if (!agent || !input) {
        wd_call_error(c, 400, "request body: '%s' is required (a string)", agent ? "input" : "agent");
        goto done;
    }
    if (wait && !json_is_boolean(wait)) {
        wd_call_error(c, 400, "request body: 'wait' must be true or false");
        goto done;
    }
    if (session && (!*session || strlen(session) > 128)) {
        wd_call_error(c, 400, "request body: 'session_id' must be 1 to 128 characters");
        goto done;
    }
    char *path = wd_api_agent_path(s, agent);
    if (!path) {
        wd_call_error(c, 404, "no agent named '%s' under %s/", agent, s->agents_dir);
        goto done;
    }
    wd_waiter *w = wd_api_run(c, path, input, session, NULL, agent, NULL, NULL);
    if (!w)
        goto done;
    int waiting = json_is_true(wait);
    if (waiting) {
        w->req = c->req;
        evhttp_connection_set_closecb(evhttp_request_get_connection(c->req), on_waiter_gone, w);
    }
    char run_id[37];
    memcpy(run_id, w->run_id, sizeof run_id);
    wd_api_go(c, w);
    if (!waiting) {
        char loc[80];
        snprintf(loc, sizeof loc, "/v1/runs/%s", run_id);
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
        wd_call_json(
            c, 202, json_pack("{s:s,s:s,s:s}", "run_id", run_id, "status", "queued", "events", strcat(loc, "/events")));
    }
done:
    json_decref(o);
}

/* the run, if this user may see it (its owner, or an admin); NULL after a 404 */
json_t *wd_api_visible_run(wd_call *c, const char *id)
{
    char owner[160];
    json_t *r = wd_registry_get(c->f->srv->reg, id, owner);
    if (r && (c->admin || !strcmp(owner, c->user->name)))
        return r;
    json_decref(r);
    wd_call_error(c, 404,
                  "no run %s (unknown, someone else's, or finished long enough ago to be forgotten: "
                  "the audit log has it)",
                  id);
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
        wd_buf_addf(&b, "data: {\"event\":\"end\",\"run_id\":\"%s\"}\n\n", st->run_id);
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

void wd_api_get_events(wd_call *c, const char *id)
{
    json_t *r = wd_api_visible_run(c, id);
    if (!r)
        return;
    json_decref(r);
    wd_stream *st = calloc(1, sizeof *st);
    if (!st || !(st->timer = event_new(wd_engine_base(c->f->e), -1, EV_PERSIST, stream_pump, st))) {
        free(st);
        wd_call_error(c, 503, "out of memory");
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
    wd_call_stream_start(c->req);
    wd_metrics_http(c->f->srv->met, c->route, 200);
    struct timeval tv = {0, STREAM_POLL_MS * 1000};
    event_add(st->timer, &tv);
    stream_pump(-1, 0, st);
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
