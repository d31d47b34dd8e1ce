/* http.c - libcurl's multi-socket interface on the engine's libevent loop.
**
** curl tells us which sockets to watch (sock_cb) and when to call it back (timer_cb);
** libevent tells curl when a socket is ready or the timer expired, and after each such
** call we collect the transfers that finished. Nothing here blocks. */
#include "http.h"
#include "util.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADERS      100

/* an easy handle costs a few kilobytes and a dozen allocations to make; thousands of
** runs calling in waves reuse them */
#define SPARE_HANDLES 1024

/* curl looks for a reusable connection, and at each removal for connect-only ones, by
** walking every connection its multi handle keeps: a thousand transfers in one handle
** made that a thousand steps per request. A few handles, each request going to the
** least busy one (so a lone agent's calls stay on one warm connection), keep the walks
** short. */
#define SHARDS 8

typedef struct shard {
    struct wd_http *h;
    CURLM *multi;
    struct event *timer;
    size_t active;
} shard;

/* a socket's event, by descriptor (see sock_cb) */
typedef struct watch {
    struct event *ev;
    shard *sh;
    short kind;           /* what ev is in epoll for; 0 when it is not */
    unsigned char parked; /* curl no longer watches it; we leave it in epoll */
    unsigned char ours;   /* opened by open_cb: closed through close_cb */
} watch;

struct wd_http {
    struct event_base *base;
    shard shards[SHARDS];
    watch *watches;
    size_t nwatches;
    wd_http_req *head;
    size_t n;
    CURL *spare[SPARE_HANDLES]; /* reset handles kept for the next requests */
    size_t nspare;
};

struct wd_http_req {
    wd_http *h;
    shard *sh;
    CURL *easy;
    struct curl_slist *hdrs;
    wd_buf body;
    size_t max_body;
    wd_http_header *headers;
    size_t nheaders, header_bytes;
    char *retry_after;
    struct event *read_timer;
    long long read_ms;
    int connected, too_large, stopped;
    long long idle_ms; /* a stream's: the longest silence (0: none) */
    int64_t t0;
    int (*on_data)(void *ud, const char *p, size_t len); /* a stream's (wd_http_opts) */
    wd_http_done_fn cb;
    void *ud;
    wd_http_req *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init_once(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

static void headers_clear(wd_http_req *q)
{
    for (size_t i = 0; i < q->nheaders; i++) {
        free(q->headers[i].name);
        free(q->headers[i].value);
    }
    free(q->headers);
    q->headers = NULL;
    q->nheaders = 0;
    free(q->retry_after);
    q->retry_after = NULL;
}

/* frees everything of q; the transfer must already be out of the multi handle */
static void req_free(wd_http_req *q)
{
    wd_http *h = q->h;
    if (q->prev)
        q->prev->next = q->next;
    else
        h->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    h->n--;
    if (q->read_timer)
        event_free(q->read_timer);
    if (q->easy && h->nspare < SPARE_HANDLES) {
        curl_easy_reset(q->easy);
        h->spare[h->nspare++] = q->easy;
    } else {
        curl_easy_cleanup(q->easy);
    }
    curl_slist_free_all(q->hdrs);
    wd_buf_free(&q->body);
    headers_clear(q);
    free(q);
}

/* Retry-After: delay-seconds or an HTTP date; -1 when absent or unreadable */
static long long retry_after_ms(const char *v)
{
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        long long s = strtoll(v, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || s < 0)
            return -1;
        return s > 86400 ? 86400000LL : s * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t < 0)
        return -1;
    long long d = (long long)t * 1000 - wd_wall_ms();
    return d < 0 ? 0 : d > 86400000LL ? 86400000LL : d;
}

static void detach(wd_http_req *q)
{
    if (!q->sh)
        return;
    curl_multi_remove_handle(q->sh->multi, q->easy);
    q->sh->active--;
    q->sh = NULL;
}

static void finish(wd_http_req *q, wd_http_fail fail, const char *error)
{
    detach(q);
    if (q->read_timer)
        event_del(q->read_timer);
    wd_http_resp r = {0};
    r.fail = fail;
    r.error = error;
    r.retry_after_ms = -1;
    if (fail == WD_HTTP_OK) {
        curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = q->body.p ? q->body.p : "";
        r.len = q->body.len;
        r.headers = q->headers;
        r.nheaders = q->nheaders;
        r.retry_after_ms = retry_after_ms(q->retry_after);
    }
    r.latency_ms = (wd_now_ns() - q->t0) / 1000000;
    q->cb(&r, q->ud);
    req_free(q);
}

static void finish_curl(wd_http_req *q, CURLcode code)
{
    char msg[CURL_ERROR_SIZE + 80];
    const char *detail = q->errbuf[0] ? q->errbuf : curl_easy_strerror(code);
    switch (code) {
    case CURLE_OK: finish(q, WD_HTTP_OK, NULL); return;
    case CURLE_OPERATION_TIMEDOUT:
        if (!q->connected) {
            snprintf(msg, sizeof msg, "connect timed out (%s)", detail);
            finish(q, WD_HTTP_CONNECT_TIMEOUT, msg);
        } else {
            snprintf(msg, sizeof msg, "read timed out after %lld ms", q->read_ms);
            finish(q, WD_HTTP_READ_TIMEOUT, msg);
        }
        return;
    case CURLE_WRITE_ERROR:
        if (q->stopped) {
            finish(q, WD_HTTP_NETWORK, "the stream was stopped by its reader");
            return;
        }
        if (q->too_large) {
            snprintf(msg, sizeof msg, "response body larger than %zu bytes: cut off", q->max_body);
            finish(q, WD_HTTP_TOO_LARGE, msg);
            return;
        }
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(msg, sizeof msg, "invalid request: %s", detail);
        finish(q, WD_HTTP_INVALID, msg);
        return;
    default: break;
    }
    snprintf(msg, sizeof msg, "network error: %s", detail);
    finish(q, WD_HTTP_NETWORK, msg);
}

static void check_done(shard *sh)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(sh->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        wd_http_req *q = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        if (q)
            finish_curl(q, m->data.result);
    }
}

/* the watch of socket fd, made when make is set; NULL when there is none (or no memory) */
static watch *watch_of(wd_http *h, curl_socket_t fd, int make)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= h->nwatches) {
        if (!make)
            return NULL;
        size_t n = h->nwatches ? h->nwatches : 256;
        while (n <= (size_t)fd)
            n *= 2;
        watch *w = realloc(h->watches, n * sizeof *w);
        if (!w)
            return NULL;
        memset(w + h->nwatches, 0, (n - h->nwatches) * sizeof *w);
        h->watches = w;
        h->nwatches = n;
    }
    return &h->watches[fd];
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    shard *sh = arg;
    watch *w = watch_of(sh->h, fd, 0);
    if (w && w->parked) { /* an idle connection stirred: closed by the server, most likely */
        event_del(w->ev);
        w->kind = 0;
        w->parked = 0;
        return;
    }
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(sh->multi, fd, flags, &running);
    check_done(sh);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    shard *sh = arg;
    int running;
    curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(sh);
}

/*
** Watching a kept-alive connection between its requests.
**
** For each request on a reused connection curl asks us to watch the socket for reading
** and, the answer in, to stop: an event made, added, deleted and freed, two epoll_ctl
** calls, per request. A socket of ours that curl stops watching for reading is parked
** instead, left in epoll, and the next request on it costs no system call. Should a
** parked socket turn readable (the server closed it, say) it leaves epoll then; curl
** finds the connection dead when it next looks at it. Only sockets curl opened through
** open_cb are parked, because those it closes through close_cb, which frees the event
** first: a descriptor number taken by a new socket never meets a stale registration.
** (The resolver's wake-up pair, for one, is closed behind our back.)
*/
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    shard *sh = userp;
    wd_http *h = sh->h;
    if (what == CURL_POLL_REMOVE) {
        watch *w = watch_of(h, s, 0);
        if (!w || !w->ev || w->parked || !w->kind)
            return 0;
        if (w->ours && w->kind == (EV_READ | EV_PERSIST)) {
            w->parked = 1;
        } else {
            event_del(w->ev);
            w->kind = 0;
        }
        return 0;
    }
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    watch *w = watch_of(h, s, 1);
    if (!w)
        return -1;
    if (w->parked && w->kind == kind && w->sh == sh) { /* in epoll as wanted already */
        w->parked = 0;
        return 0;
    }
    if (!w->ev) {
        w->ev = event_new(h->base, s, kind, on_sock, sh);
        if (!w->ev)
            return -1;
    } else {
        event_del(w->ev);
        event_assign(w->ev, h->base, s, kind, on_sock, sh);
    }
    w->sh = sh;
    w->parked = 0;
    w->kind = 0;
    if (event_add(w->ev, NULL) < 0)
        return -1;
    w->kind = kind;
    return 0;
}

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    /* close-on-exec: a connection must never outlive us in a process we start */
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    watch *w = s >= 0 ? watch_of(clientp, s, 1) : NULL;
    if (w)
        w->ours = 1; /* without a watch the socket is simply never parked */
    return s;
}

static int close_cb(void *clientp, curl_socket_t s)
{
    watch *w = watch_of(clientp, s, 0);
    if (w) {
        if (w->ev)
            event_free(w->ev);
        memset(w, 0, sizeof *w);
    }
    return close(s);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    shard *sh = userp;
    if (timeout_ms < 0) {
        evtimer_del(sh->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(sh->timer, &tv);
    return 0;
}

static void on_read_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_http_req *q = arg;
    char msg[80];
    if (q->on_data)
        snprintf(msg, sizeof msg, "read timed out: no data for %lld ms", q->idle_ms);
    else
        snprintf(msg, sizeof msg, "read timed out after %lld ms", q->read_ms);
    finish(q, WD_HTTP_READ_TIMEOUT, msg);
}

/* the connection is ready (new or reused): the read deadline starts now */
static int prereq_cb(void *clientp, char *ip, char *local_ip, int port, int local_port)
{
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    wd_http_req *q = clientp;
    if (!q->connected && (!q->on_data || q->idle_ms > 0)) { /* a stream: its idle limit, if any */
        q->connected = 1;
        long long ms = q->on_data ? q->idle_ms : q->read_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(q->read_timer, &tv);
    }
    return CURL_PREREQFUNC_OK;
}

/* a stream heard from: its idle limit starts again */
static void rearm_idle(wd_http_req *q)
{
    if (q->idle_ms <= 0 || !q->connected)
        return;
    struct timeval tv = {(time_t)(q->idle_ms / 1000), (suseconds_t)(q->idle_ms % 1000) * 1000};
    evtimer_add(q->read_timer, &tv);
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    wd_http_req *q = ud;
    size_t len = size * n;
    long status = 0;
    rearm_idle(q);
    if (q->on_data && curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status >= 200 &&
        status < 300) {
        if (q->on_data(q->ud, p, len) != 0) {
            q->stopped = 1;
            return 0; /* curl aborts the transfer */
        }
        return len;
    }
    if (q->body.len + len > q->max_body) {
        q->too_large = 1;
        return 0; /* curl aborts the transfer */
    }
    if (wd_buf_add(&q->body, p, len) < 0)
        return 0;
    return len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    wd_http_req *q = ud;
    size_t len = size * n;
    if (len >= 5 && !memcmp(p, "HTTP/", 5)) { /* a new response (after 100 Continue, say) */
        headers_clear(q);
        q->header_bytes = 0;
        return len;
    }
    q->header_bytes += len;
    if (q->header_bytes > MAX_HEADER_BYTES)
        return 0;
    const char *colon = memchr(p, ':', len);
    if (!colon || q->nheaders >= MAX_HEADERS)
        return len;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    wd_http_header *hs = realloc(q->headers, (q->nheaders + 1) * sizeof *hs);
    if (!hs)
        return 0;
    q->headers = hs;
    char *name = wd_strndup(p, nl), *value = wd_strndup(v, (size_t)(end - v));
    if (!name || !value) {
        free(name);
        free(value);
        return 0;
    }
    for (char *c = name; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    hs[q->nheaders].name = name;
    hs[q->nheaders].value = value;
    q->nheaders++;
    if (!strcmp(name, "retry-after")) {
        free(q->retry_after);
        q->retry_after = wd_strdup(value);
    }
    return len;
}

wd_http *wd_http_new(struct event_base *base)
{
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ok)
        return NULL;
    wd_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->base = base;
    for (int i = 0; i < SHARDS; i++) {
        shard *sh = &h->shards[i];
        sh->h = h;
        sh->multi = curl_multi_init();
        sh->timer = evtimer_new(base, on_timer, sh);
        if (!sh->multi || !sh->timer)
            goto fail;
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
        /* idle connections kept for reuse; a thousand runs talk to one server at once */
        curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, 1024L);
    }
    return h;
fail:
    wd_http_free(h);
    return NULL;
}

void wd_http_free(wd_http *h)
{
    if (!h)
        return;
    for (wd_http_req *q = h->head, *next; q; q = next) {
        next = q->next;
        wd_http_cancel(q); /* unlinks and frees q */
    }
    for (int i = 0; i < SHARDS; i++) {
        if (h->shards[i].multi)
            curl_multi_cleanup(h->shards[i].multi); /* closes the cached connections through sock_cb */
        if (h->shards[i].timer)
            event_free(h->shards[i].timer);
    }
    while (h->nspare)
        curl_easy_cleanup(h->spare[--h->nspare]);
    for (size_t i = 0; i < h->nwatches; i++)
        if (h->watches[i].ev)
            event_free(h->watches[i].ev);
    free(h->watches);
    free(h);
}

size_t wd_http_active(const wd_http *h) { return h ? h->n : 0; }

void wd_http_cancel(wd_http_req *q)
{
    if (!q)
        return;
    detach(q);
    req_free(q);
}

/* the easy handle's options: our callbacks, the timeouts (connect, and a backstop behind
** our own read timer), no redirects, no proxy for loopback, http and https only */
static void set_options(wd_http_req *q, const wd_http_opts *o)
{
    CURL *e = q->easy;
    wd_http *h = q->h;
    long long connect_ms = o->connect_ms > 0 ? o->connect_ms : 3000;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    /* a backstop: our own read timer fires first */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(connect_ms + q->read_ms + 1000));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(q->read_ms / 1000 + 1));
    if (o->on_data) { /* a stream lasts: no deadline, and dead peers found by keepalive */
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 0L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    }
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, q);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
}

wd_http_req *wd_http_start(wd_http *h, const wd_http_opts *o, wd_http_done_fn cb, void *ud, char *err, size_t errlen)
{
    wd_http_req *q = calloc(1, sizeof *q);
    if (!q) {
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    q->h = h;
    q->cb = cb;
    q->ud = ud;
    q->max_body = o->max_body ? o->max_body : (8u << 20);
    q->read_ms = o->read_ms > 0 ? o->read_ms : 30000;
    q->on_data = o->on_data;
    q->idle_ms = o->on_data ? o->idle_ms : 0;
    q->t0 = wd_now_ns();
    q->next = h->head;
    if (h->head)
        h->head->prev = q;
    h->head = q;
    h->n++;
    q->easy = h->nspare ? h->spare[--h->nspare] : curl_easy_init();
    q->read_timer = evtimer_new(h->base, on_read_timeout, q);
    if (!q->easy || !q->read_timer) {
        wd_errf(err, errlen, "out of memory");
        goto fail;
    }
    CURL *e = q->easy;
    set_options(q, o);
    const char *method = o->method ? o->method : (o->body ? "POST" : "GET");
    if (o->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body);
    }
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") || o->body)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    /* no Expect: 100-continue round trip; no header from the environment */
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; l && i < o->nheaders; i++)
        l = curl_slist_append(l, o->headers[i]);
    if (!l) {
        wd_errf(err, errlen, "out of memory");
        goto fail;
    }
    q->hdrs = l;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    shard *sh = &h->shards[0];
    for (int i = 1; i < SHARDS; i++)
        if (h->shards[i].active < sh->active)
            sh = &h->shards[i];
    if (curl_multi_add_handle(sh->multi, e) != CURLM_OK) {
        wd_errf(err, errlen, "cannot start the transfer");
        goto fail;
    }
    q->sh = sh;
    sh->active++;
    return q;
fail:
    req_free(q);
    return NULL;
}

int wd_http_url_host(const char *url, char *host, size_t hostlen, int *port)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL, *p = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") && strcmp(scheme, "https")))
        goto out;
    if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !*h || strlen(h) >= hostlen)
        goto out;
    if (curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    for (size_t i = 0; h[i]; i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[strlen(h)] = '\0';
    if (port)
        *port = atoi(p);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return rc;
}
