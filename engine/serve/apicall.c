/* apicall.c - a request of the HTTP API answered: replies, audited refusals,
** authentication and request bodies (apicall.h) */
#include "events.h"
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
#include "store.h"
#include "util.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- replies ---------------------------------------------------------------- */

void wd_call_stream_start(struct evhttp_request *req)
{
    /* each event goes out as it comes: Nagle would hold a small one back until the one
    ** before is acknowledged, which a client's delayed ACK puts off up to 40 ms */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    int one = 1, fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evhttp_send_reply_start(req, 200, "OK");
}

void wd_call_text(wd_call *c, int status, const char *type, const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (c->f->draining)
        evhttp_add_header(h, "Connection", "close");
    /* every 429 and 503 says when to come back (RFC 9110): the refusal's own figure when
    ** it gave one; a stopping server, after its grace; anything else, a second */
    if ((status == 429 || status == 503) && !evhttp_find_header(h, "Retry-After")) {
        char ra[24];
        long long s = c->f->draining ? (c->f->srv->o.grace_ms + 999) / 1000 : 1;
        snprintf(ra, sizeof ra, "%lld", s > 0 ? s : 1);
        evhttp_add_header(h, "Retry-After", ra);
    }
    if (b)
        evbuffer_add(b, body, len);
    evhttp_send_reply(c->req, status, NULL, b);
    if (b)
        evbuffer_free(b);
    wd_metrics_http(c->f->srv->met, c->route, status);
}

/* takes v */
void wd_call_json(wd_call *c, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(v);
    if (!s) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        wd_call_text(c, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    wd_call_text(c, status, "application/json", s, strlen(s));
    free(s);
}

void wd_call_error(wd_call *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->oai) { /* as OpenAI's API says it: {error: {message, type, param, code}} */
        const char *type = status == 401   ? "invalid_request_error"
                           : status == 403 ? "permission_error"
                           : status == 429 ? "rate_limit_error"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error";
        const char *code = status == 401   ? "invalid_api_key"
                           : status == 404 ? "not_found"
                           : status == 429 ? "rate_limit_exceeded"
                                           : NULL;
        wd_call_json(c, status,
                     json_pack("{s:{s:s,s:s,s:n,s:s?}}", "error", "message", msg, "type", type, "param", "code", code));
        return;
    }
    wd_call_json(c, status, json_pack("{s:s}", "error", msg));
}

/* a record of no run into the worker's log (takes rec) */
void wd_call_audit(wd_front *f, const wd_policy *p, json_t *rec)
{
    json_incref(rec);
    wd_redact_append(p, wd_engine_audit(f->e), rec);
    if (rec) /* the server's metrics count it as a run's record */
        wd_engine_observe(f->e, rec);
    json_decref(rec);
}

/* an operator's action is in the file before it is acknowledged, and before what it causes */
void wd_call_audit_now(wd_front *f, const wd_policy *p, json_t *rec)
{
    wd_call_audit(f, p, rec);
    wd_audit_flush(wd_engine_audit(f->e));
}

/* A refusal's record (takes rec) goes to the log if this worker has audited fewer than
** DENY_AUDIT_PER_S in the last second; otherwise it is only counted, and the next record
** says how many were not written (unaudited_before): a flood cannot flood the log */
void wd_call_refusal(wd_call *c, json_t *rec)
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
    wd_call_audit(f, c->p, rec);
}

/* 401 or 403, audited (within the rate) as authorization_denied */
void wd_call_deny(wd_call *c, int status, const char *user, const char *why)
{
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(c->req), &peer, &port);
    char reason[600];
    snprintf(reason, sizeof reason, "http %d: %s", status, why);
    wd_call_refusal(c, json_pack("{s:s,s:s?,s:b,s:s,s:s,s:s,s:s?}", "event", wd_event_name(WD_AE_AUTHORIZATION_DENIED),
                                 "user_id", user, "success", 0, "reason", reason, "http_method", c->method, "http_path",
                                 c->path, "remote_addr", peer));
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(c->req), "WWW-Authenticate", "Bearer realm=\"warden\"");
    wd_call_error(c, status, "%s", why);
}

/* 429 with Retry-After: the server has no room for another run now; audited (within the
** same rate as refusals of keys) as rate_limited */
void wd_call_busy(wd_call *c, const char *why, int retry_s)
{
    wd_call_refusal(c, json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:I}", "event", wd_event_name(WD_AE_RATE_LIMITED), "user_id",
                                 c->user->name, "success", 0, "reason", why, "http_method", c->method, "http_path",
                                 c->path, "retry_after_ms", (json_int_t)retry_s * 1000));
    char ra[24];
    snprintf(ra, sizeof ra, "%d", retry_s);
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", ra);
    wd_call_error(c, 429, "%s", why);
}

/* ---- authentication ---------------------------------------------------------- */

/* ** Failed authentications (docs/serve.md, Blocking abuse): each one counts against
** the address it came from and, when it sent a key, against that key's hash, in the
** store's windows (serve.auth_failures: max in window), so every worker and every host
** sharing the store counts together. One more than max blocks the address or key for
** block_for: it is answered 429 whatever key it sends, the block is audited
** (auth_blocked) and notified. */
static void peer_of(wd_call *c, char *out, size_t n)
{
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(c->req), &peer, &port);
    snprintf(out, n, "addr:%s", peer ? peer : "?");
}

/* "key:" and the first 32 hex digits of the key's SHA-256: what a block of a key names */
static void key_id(const char *key, char *out, size_t n)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
    sodium_bin2hex(hex, sizeof hex, h, 16);
    snprintf(out, n, "key:%s", hex);
}

static void answer_blocked(wd_call *c, const char *who, int64_t until, int64_t now)
{
    long long s = (until - now + 999) / 1000;
    char why[300];
    snprintf(why, sizeof why, "too many failed authentications from this %s: blocked for %lld s more",
             !strncmp(who, "key:", 4) ? "key" : "address", s);
    char ra[24];
    snprintf(ra, sizeof ra, "%lld", s > 0 ? s : 1);
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", ra);
    wd_call_refusal(c, json_pack("{s:s,s:b,s:s,s:s,s:s,s:I}", "event", wd_event_name(WD_AE_RATE_LIMITED), "success", 0,
                                 "reason", why, "http_method", c->method, "http_path", c->path, "retry_after_ms",
                                 (json_int_t)(until - now)));
    wd_call_error(c, 429, "%s", why);
}

/* a failed authentication counted; 1 when it began a block (answered 429), else 0 */
static int count_failure(wd_call *c, const char *const *who)
{
    wd_store *s = wd_engine_store(c->f->e);
    const wd_policy *p = c->p;
    int64_t now = wd_store_now(s), retry;
    for (int i = 0; who[i]; i++) {
        char key[200];
        long long count = 0;
        if (!who[i][0])
            continue;
        snprintf(key, sizeof key, "authfail:%s", who[i]);
        if (wd_store_rate_take(s, key, p->serve_authfail_max, p->serve_authfail_window_ms, now, &count, &retry) != 0)
            continue;
        int64_t until = now + p->serve_authfail_block_ms;
        char why[300], ts[40];
        snprintf(why, sizeof why, "more than %lld failed authentications in %lld s: blocked for %lld s",
                 p->serve_authfail_max, p->serve_authfail_window_ms / 1000, p->serve_authfail_block_ms / 1000);
        wd_rfc3339_ms(wd_wall_ms() + p->serve_authfail_block_ms, ts, sizeof ts);
        wd_store_block_set(s, who[i], until, why);
        char peer[80];
        peer_of(c, peer, sizeof peer);
        json_t *rec = json_pack("{s:s,s:b,s:s,s:s,s:I,s:s,s:s,s:s,s:s}", "event", wd_event_name(WD_AE_AUTH_BLOCKED),
                                "success", 0, "blocked", who[i], "blocked_until", ts, "failures", (json_int_t)count + 1,
                                "remote_addr", peer + 5, "http_method", c->method, "http_path", c->path, "reason", why);
        if (rec) {
            json_incref(rec);
            wd_call_audit_now(c->f, p, rec);
            wd_engine_notify(c->f->e, rec);
            json_decref(rec);
        }
        answer_blocked(c, who[i], until, now);
        return 1;
    }
    return 0;
}

void wd_call_who(struct evhttp_request *req, char addr[80], char kid[80])
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const char *key = h && !strncasecmp(h, "Bearer ", 7) && h[7] ? h + 7 : NULL;
    char *peer = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
    snprintf(addr, 80, "addr:%s", peer ? peer : "?");
    kid[0] = '\0';
    if (key)
        key_id(key, kid, 80);
}

/* the user the request's key belongs to; NULL after a 401 (or a 429 while blocked) */
const wd_user *wd_call_auth(wd_call *c, const char *blocked, int64_t until)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Authorization");
    const char *key = h && !strncasecmp(h, "Bearer ", 7) && h[7] ? h + 7 : NULL;
    char addr[80], kid[80];
    wd_call_who(c->req, addr, kid);
    const char *who[] = {addr, kid, NULL};
    if (blocked) {
        answer_blocked(c, blocked, until, wd_store_now(wd_engine_store(c->f->e)));
        return NULL;
    }
    const char *why = !h     ? "no API key: send Authorization: Bearer KEY"
                      : !key ? "the Authorization header must be 'Bearer KEY'"
                             : NULL;
    const wd_user *found = key ? wd_admin_user_by_key(c->p, key) : NULL;
    if (found)
        return found;
    if (!count_failure(c, who))
        wd_call_deny(c, 401, NULL, why ? why : "unknown API key");
    return NULL;
}

int wd_call_admin(wd_call *c)
{
    if (c->admin)
        return 1;
    char why[300];
    snprintf(why, sizeof why, "%s %s needs the '%s' role; %s has '%s'", c->method, c->path,
             c->p->roles.v[c->p->roles.n - 1], c->user->name, c->p->roles.v[c->user->role]);
    wd_call_deny(c, 403, c->user->name, why);
    return 0;
}

/* ---- request bodies ------------------------------------------------------------ */

/* the body as a JSON object (an empty body reads {}); NULL after a 400 */
json_t *wd_call_body(wd_call *c)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
    size_t n = evbuffer_get_length(in);
    if (!n)
        return json_object();
    const char *text = (const char *)evbuffer_pullup(in, -1);
    json_error_t je;
    json_t *v = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v) {
        wd_call_error(c, 400, "request body: invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        wd_call_error(c, 400, "request body: expected a JSON object");
        return NULL;
    }
    return v;
}

/* every key of o is one of allowed (NULL-terminated); else 400 */
int wd_call_keys(wd_call *c, json_t *o, const char *const *allowed, const char *list)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(k, allowed[i]);
        if (!ok) {
            wd_call_error(c, 400, "request body: unknown field '%s'; the fields are %s", k, list);
            return 0;
        }
    }
    return 1;
}

/* o[key] as a string; *out NULL when absent. 0, or -1 after a 400 */
int wd_call_opt_string(wd_call *c, json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        wd_call_error(c, 400, "request body: '%s' must be a string", key);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) { /* C strings end there */
        wd_call_error(c, 400, "request body: '%s' must not hold a NUL byte", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

const char *wd_call_param(struct evkeyvalq *q, const char *k) { return evhttp_find_header(q, k); }
