/* apicall.h - what the files of the HTTP API share (api.c routes, apiruns.c the runs,
** apiops.c approvals and operator routes, apicall.c replies, authentication and request
** bodies): one request being answered, and the waiters and streams of a worker. */
#ifndef WD_APICALL_H
#define WD_APICALL_H

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admit.h"
#include "serve.h"

#define DENY_AUDIT_PER_S 50
#define STREAM_POLL_MS   50
#define LIST_LIMIT       500

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
    char *refuse;        /* it waited too long: it starts refused */
    char *tool;          /* a direct call of this tool (wd_run_opts.tool) */
    char *history;       /* the conversation before input (wd_run_opts.history), set before wd_api_go */
    char *output_schema; /* the final answer's schema (wd_run_opts.output_schema), set before wd_api_go */
    /* set: called when the run ends, in place of answering req with the result (req is
    ** the caller's to answer, and to clear when its client goes) */
    void (*on_end)(struct wd_waiter *w, const json_t *res);
    void (*on_progress)(struct wd_waiter *w, const json_t *p); /* set: a tool's progress (wd_run_opts.progress) */
    void (*on_text)(struct wd_waiter *w, const char *text,
                    size_t len); /* set: the answer as it comes (wd_run_opts.on_text) */
    void *ud;
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

typedef struct wd_call {
    wd_front *f;
    struct evhttp_request *req;
    const char *route; /* for the metrics */
    wd_policy *p;      /* a reference, for the request's life */
    const wd_user *user;
    int admin;
    const char *path;
    char method[8];
    int oai; /* an OpenAI-compatible route: errors in OpenAI's shape (oaichat.c) */
} wd_call;

/* apicall.c */
void wd_call_text(wd_call *c, int status, const char *type, const char *body, size_t len);
/* a streamed reply's 200 (its headers set before), its socket sending each piece at once */
void wd_call_stream_start(struct evhttp_request *req);
void wd_call_json(wd_call *c, int status, json_t *v); /* takes v */
void wd_call_error(wd_call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void wd_call_audit(wd_front *f, const wd_policy *p, json_t *rec);     /* takes rec */
void wd_call_audit_now(wd_front *f, const wd_policy *p, json_t *rec); /* takes rec; written at once */
void wd_call_refusal(wd_call *c, json_t *rec);                        /* rate-bounded (DENY_AUDIT_PER_S); takes rec */
void wd_call_deny(wd_call *c, int status, const char *user, const char *why);
void wd_call_busy(wd_call *c, const char *why, int retry_s); /* 429 with Retry-After */
/* the names a request's blocks are kept under: its address, and its key's hash ("" none) */
void wd_call_who(struct evhttp_request *req, char addr[80], char kid[80]);
/* the caller, or NULL (answered 401, or 429 when blocked names the address or key found
** blocked until until) */
const wd_user *wd_call_auth(wd_call *c, const char *blocked, int64_t until);
int wd_call_admin(wd_call *c);    /* 1 when the caller is an admin, else answered 403 */
json_t *wd_call_body(wd_call *c); /* the JSON object body, or NULL (answered 400) */
int wd_call_keys(wd_call *c, json_t *o, const char *const *allowed, const char *list);
int wd_call_opt_string(wd_call *c, json_t *o, const char *key, const char **out);
const char *wd_call_param(struct evkeyvalq *q, const char *k);

/* apiruns.c */
void wd_api_post_run(wd_call *c);
/* agent name → its path under the agents directory (caller frees); NULL: no such agent */
char *wd_api_agent_path(wd_server *s, const char *name);
/* A run for c's user, started now or queued for room (admit.h): of the agent at path
** (taken), or, with tool, a direct call of that tool under the agents directory (path
** NULL). label names it in the table of runs. on_end (with ud) gets its result on this
** worker when it ends. The waiter (its run_id set), or NULL after answering c: 429 with
** Retry-After when the server is full, 503 out of memory */
wd_waiter *wd_api_run(wd_call *c, char *path, const char *input, const char *session, const char *tool,
                      const char *label, void (*on_end)(wd_waiter *w, const json_t *res), void *ud);
/* the waiter wd_api_run made starts now when it was admitted (queued, it starts when a
** run ends or is refused when it waited too long). It may end inside (out of memory):
** on_end is then called, and the waiter freed, before this returns */
void wd_api_go(wd_call *c, wd_waiter *w);
json_t *wd_api_visible_run(wd_call *c, const char *id); /* NULL: answered 404 */
void wd_api_get_events(wd_call *c, const char *id);

/* apiops.c */
void wd_api_get_approvals(wd_call *c, int all);
void wd_api_decide(wd_call *c, const char *id, int approve);
void wd_api_kill_or_revive(wd_call *c, int revive);
void wd_api_reset_breaker(wd_call *c, const char *name);
void wd_api_get_cost(wd_call *c, struct evkeyvalq *q);
void wd_api_get_metrics(wd_call *c);
void wd_api_get_dashboard(wd_call *c);
void wd_api_get_page(wd_call *c);

#endif
