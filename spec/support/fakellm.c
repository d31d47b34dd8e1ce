/* fakellm - a fault-injecting OpenAI- and Anthropic-compatible server for the specs and
** the benchmarks. It listens on a free loopback port (written to --port-file), logs
** one line per request to --log (with the names of the tools it offers the model, its
** max_tokens and its response_format's schema name), and
** exits when --watch-pid is gone.
**
** The faults are chosen by the URL: every path segment holding '=' is a list of
** options, so a policy's base_url picks them, e.g.
**   http://127.0.0.1:PORT/key=a,fail=2,status=503/v1
**
**   key=K            requests are counted per key (for fail=N)
**   delay=MS         answer after MS milliseconds (never sooner, at most 0.5 ms later)
**   fail=N           the first N requests of the key get `status` (default 503)
**   status=S         with mode=status: every request gets S
**   retry_after=S    Retry-After: S (seconds) on failures
**   retry_date=S     Retry-After as an HTTP date S seconds from now
**   mode=M           hang | trickle | malformed | truncated | big | reset | badargs | status
**   calls=N,tool=T   call tool T (arguments args=JSON, %-escaped, default {}) until the request
**                    holds N assistant messages, then answer "done"
**   expect_key=K     401 (quoting the key received) unless the request carries key K
**   tokens=T         the answer's input token count is the JSON text T (9e18, -5, "x")
**   words=N          the answer's text is N words "001 002 ..." (default: "done")
**
** A request with "stream": true is answered as a stream of server-sent events (OpenAI
** chunks, or Anthropic's events): one word of the text a chunk, a tool call's arguments
** in two pieces, usage at the end (prompt 100, completion: the words, or 20), then
** [DONE]; and the connection closed. Options for streams:
**   gap=MS           between events (default none)
**   stall=K          after K events, send nothing more and keep the connection open
**   nousage=1        no usage in the stream
**
** /v1/chat/completions answers as OpenAI, /v1/messages as Anthropic, any other path
** echoes the request as JSON (for ctx:http). A path ending in /hook is a webhook
** receiver: each request is also kept as a JSON line in LOG.hooks, {key, n (the key's
** count), ms (when it came, Unix ms), status (what it was answered), headers (the
** X-Warden-* ones, lower case), body}. */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD  (64 * 1024)
#define MAX_BODY  (16 * 1024 * 1024)
#define BIG_BYTES (64L * 1024 * 1024)

typedef struct opts {
    char key[64], mode[32], tool[64], args[512], expect_key[256], tokens[64];
    long delay, fail, status, retry_after, retry_date, calls;
    long words, gap, stall, nousage;
} opts;

typedef struct conn {
    struct bufferevent *bev;
    struct event *timer;
    int busy; /* a request is being answered */
    int close_after;
    char *trickle; /* bytes still to send one per second */
    size_t trickle_len, trickle_pos;
    long big_left;
    char *pending; /* the response waiting for its delay */
    size_t pending_len;
    int pending_reset;
    long long due_ns; /* the delay's end on the precise clock */
    int slot;         /* where it waits in the delay heap; -1 when it does not */
    char **ev;        /* a stream's events still to send, one per gap */
    size_t nev, evpos;
    long gap;
} conn;

static struct event_base *base;
static FILE *log_file;
static json_t *counters; /* key -> requests seen */
static pid_t watch_pid;

static void unqueue(conn *c);

static void conn_free(conn *c)
{
    unqueue(c);
    if (c->timer)
        event_free(c->timer);
    bufferevent_free(c->bev);
    free(c->trickle);
    free(c->pending);
    for (size_t i = 0; i < c->nev; i++)
        free(c->ev[i]);
    free(c->ev);
    free(c);
}

static void reset_conn(conn *c)
{
    struct linger l = {1, 0}; /* close with RST */
    setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    conn_free(c);
}

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* %XX decoding, in place (sscanf per escape was a twentieth of the server's CPU) */
static void unescape(char *s)
{
    char *w = s;
    for (; *s; s++) {
        int h, l;
        if (*s == '%' && (h = hex(s[1])) >= 0 && (l = hex(s[2])) >= 0) {
            *w++ = (char)(h * 16 + l);
            s += 2;
        } else {
            *w++ = *s;
        }
    }
    *w = '\0';
}

static void parse_opts(const char *path, opts *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->key, "default");
    strcpy(o->args, "{}");
    o->status = 503;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    char *q = strchr(buf, '?');
    if (q)
        *q = '\0';
    for (char *seg = strtok(buf, "/"); seg; seg = strtok(NULL, "/")) {
        if (!strchr(seg, '='))
            continue;
        char *save = NULL;
        for (char *kv = strtok_r(seg, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq)
                continue;
            *eq = '\0';
            unescape(eq + 1);
            const char *k = kv, *v = eq + 1;
            if (!strcmp(k, "key"))
                snprintf(o->key, sizeof o->key, "%s", v);
            else if (!strcmp(k, "mode"))
                snprintf(o->mode, sizeof o->mode, "%s", v);
            else if (!strcmp(k, "tool"))
                snprintf(o->tool, sizeof o->tool, "%s", v);
            else if (!strcmp(k, "args"))
                snprintf(o->args, sizeof o->args, "%s", v);
            else if (!strcmp(k, "expect_key"))
                snprintf(o->expect_key, sizeof o->expect_key, "%s", v);
            else if (!strcmp(k, "tokens"))
                snprintf(o->tokens, sizeof o->tokens, "%s", v);
            else if (!strcmp(k, "delay"))
                o->delay = atol(v);
            else if (!strcmp(k, "fail"))
                o->fail = atol(v);
            else if (!strcmp(k, "status"))
                o->status = atol(v);
            else if (!strcmp(k, "retry_after"))
                o->retry_after = atol(v);
            else if (!strcmp(k, "retry_date"))
                o->retry_date = atol(v);
            else if (!strcmp(k, "calls"))
                o->calls = atol(v);
            else if (!strcmp(k, "words"))
                o->words = atol(v);
            else if (!strcmp(k, "gap"))
                o->gap = atol(v);
            else if (!strcmp(k, "stall"))
                o->stall = atol(v);
            else if (!strcmp(k, "nousage"))
                o->nousage = atol(v);
        }
    }
}

/* a case-insensitive header lookup in the request head; into out */
static int header(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= n)
                l = n - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return 1;
        }
    }
    return 0;
}

static char *response(long status, const char *extra_headers, const char *body, size_t *len, long declared)
{
    const char *reason = status == 200   ? "OK"
                         : status == 429 ? "Too Many Requests"
                         : status == 401 ? "Unauthorized"
                         : status >= 500 ? "Server Error"
                                         : "Error";
    char *out = NULL;
    int n = asprintf(&out, "HTTP/1.1 %ld %s\r\nContent-Type: application/json\r\nContent-Length: %ld\r\n%s\r\n%s",
                     status, reason, declared >= 0 ? declared : (long)strlen(body), extra_headers, body);
    *len = n < 0 ? 0 : (size_t)n;
    return out;
}

/* members "role": "assistant" in the request body, counted in the raw text: a quote
** inside a JSON string is escaped, so an unescaped "role" can only be a key (parsing
** every growing conversation into a tree cost the benchmarks most of this server's CPU) */
static int count_assistant(const char *body)
{
    int n = 0;
    for (const char *p = strstr(body, "\"role\""); p; p = strstr(p + 6, "\"role\"")) {
        const char *v = p + 6;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        if (*v++ != ':')
            continue;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
            v++;
        n += !strncmp(v, "\"assistant\"", 11);
    }
    return n;
}

/* s as a JSON string's contents (no quotes), appended at *at within cap */
static void put_escaped(char *out, size_t cap, size_t *at, const char *s)
{
    for (; *s && *at + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*at)++] = '\\';
            out[(*at)++] = (char)c;
        } else if (c < 0x20) {
            *at += (size_t)snprintf(out + *at, cap - *at, "\\u%04x", c);
        } else {
            out[(*at)++] = (char)c;
        }
    }
    out[*at] = '\0';
}

/* the OpenAI answer, printed rather than built as a tree: the benchmarks ask for
** thousands a second, and this server shares the machine's cores with the engine */
static char *openai_body(const char *id, const char *tool, const char *args, int call, int finish_call)
{
    char *out = malloc(2048);
    if (!out)
        return NULL;
    size_t at;
    if (!call) {
        at = (size_t)snprintf(out, 2048,
                              "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
                              "{\"role\":\"assistant\",\"content\":\"done\"},\"finish_reason\":\"stop\"}],"
                              "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20}}");
        return out;
    }
    at = (size_t)snprintf(out, 2048,
                          "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
                          "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"%s\","
                          "\"type\":\"function\",\"function\":{\"name\":\"",
                          id);
    put_escaped(out, 2048, &at, tool);
    at += (size_t)snprintf(out + at, 2048 - at, "\",\"arguments\":\"");
    put_escaped(out, 2048, &at, args);
    snprintf(out + at, 2048 - at,
             "\"}}]},\"finish_reason\":\"%s\"}],"
             "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20}}",
             finish_call ? "tool_calls" : "stop");
    return out;
}

static char *answer_body(const opts *o, const char *body, int anthropic)
{
    int call = o->tool[0] && count_assistant(body) < o->calls;
    int bad = !strcmp(o->mode, "badargs");
    static long seq;
    char id[32];
    snprintf(id, sizeof id, "call_%ld", ++seq);
    if (!anthropic)
        return openai_body(id, bad ? (o->tool[0] ? o->tool : "echo") : o->tool, bad ? "{\"query\": " : o->args,
                           call || bad, call);
    json_t *content = json_array();
    if (call || bad) {
        json_t *args = json_loads(o->args, 0, NULL);
        json_array_append_new(content, json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", id, "name",
                                                 bad ? (o->tool[0] ? o->tool : "echo") : o->tool, "input",
                                                 args ? args : json_object()));
    } else {
        json_array_append_new(content, json_pack("{s:s,s:s}", "type", "text", "text", "done"));
    }
    json_t *b = json_pack("{s:s,s:s,s:o,s:{s:i,s:i}}", "type", "message", "role", "assistant", "content", content,
                          "usage", "input_tokens", 100, "output_tokens", 20);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

/* takes body, returns it with its input token count (100) written as the text t */
static char *with_tokens(char *body, const char *t)
{
    static const char *const keys[] = {"\"prompt_tokens\":100", "\"input_tokens\":100"};
    for (int i = 0; i < 2; i++) {
        char *at = strstr(body, keys[i]);
        if (!at)
            continue;
        size_t klen = strlen(keys[i]) - 3, n = strlen(body) + strlen(t) + 1;
        char *out = malloc(n);
        if (!out)
            return body;
        snprintf(out, n, "%.*s%s%s", (int)(at - body + klen), body, t, at + klen + 3);
        free(body);
        return out;
    }
    return body;
}

static void on_write_done(struct bufferevent *bev, void *arg);
static void on_read(struct bufferevent *bev, void *arg);

static void send_bytes(conn *c, const char *p, size_t n) { bufferevent_write(c->bev, p, n); }

/* a whole response, straight to the socket when nothing is queued ahead of it (the
** buffered way switches write events on and off: two epoll_ctl calls a response), then
** on as if the buffer had drained; what the socket does not take is queued. c may be
** gone on return. */
static void send_response(conn *c, const char *p, size_t n)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        ssize_t w = send(bufferevent_getfd(c->bev), p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)n) {
            on_write_done(c->bev, c);
            return;
        }
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    bufferevent_write(c->bev, p, n);
}

static long long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/*
** Delays, on time. libevent's timers read the coarse clock, which moves in ticks of the
** kernel's HZ (4 ms here): a 50 ms delay came out 50 to 55 ms, 2.5 late on average, and
** a benchmark measured against 50 ms would be charged for it. Delays wait instead in a
** heap ordered by their end on the precise clock, under one timerfd set to the earliest
** end: one wake-up answers every response due by then, and costs two system calls (the
** read that clears the timerfd, the setting of the next end). Ends are rounded up to
** the next half millisecond, so a burst of requests is answered in a few wake-ups, not
** one each (a wake-up per response cost the server a third more CPU, taken from the
** engine it shares the machine with): a delay is never short, and at most 0.5 ms long.
*/
#define GRID_NS 500000LL
static conn **heap;
static int nheap, capheap, tfd = -1;

static void heap_set(int i, conn *c)
{
    heap[i] = c;
    c->slot = i;
}

static void sift_up(int i)
{
    conn *c = heap[i];
    while (i > 0 && heap[(i - 1) / 2]->due_ns > c->due_ns) {
        heap_set(i, heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, c);
}

static void sift_down(int i)
{
    conn *c = heap[i];
    for (;;) {
        int k = 2 * i + 1;
        if (k >= nheap)
            break;
        if (k + 1 < nheap && heap[k + 1]->due_ns < heap[k]->due_ns)
            k++;
        if (heap[k]->due_ns >= c->due_ns)
            break;
        heap_set(i, heap[k]);
        i = k;
    }
    heap_set(i, c);
}

static void set_alarm(void)
{
    struct itimerspec it = {{0, 0}, {0, 0}};
    if (nheap) {
        long long due = heap[0]->due_ns;
        it.it_value.tv_sec = (time_t)(due / 1000000000LL);
        it.it_value.tv_nsec = (long)(due % 1000000000LL);
        if (!it.it_value.tv_sec && !it.it_value.tv_nsec)
            it.it_value.tv_nsec = 1;
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &it, NULL);
}

static void unqueue(conn *c)
{
    int i = c->slot;
    if (i < 0)
        return;
    c->slot = -1;
    conn *last = heap[--nheap];
    if (i < nheap) {
        heap_set(i, last);
        sift_up(i);
        sift_down(last->slot);
    }
    if (i == 0)
        set_alarm();
}

static void arm(conn *c, long ms)
{
    unqueue(c);
    c->due_ns = (mono_ns() + ms * 1000000LL + GRID_NS - 1) / GRID_NS * GRID_NS;
    if (nheap == capheap) {
        capheap = capheap ? 2 * capheap : 1024;
        heap = realloc(heap, (size_t)capheap * sizeof *heap);
    }
    heap_set(nheap++, c);
    sift_up(nheap - 1);
    if (c->slot == 0)
        set_alarm();
}

/* a stream's next event, and the timer for the one after (a stall sends no more) */
static void send_next_event(conn *c)
{
    char *e = c->ev[c->evpos++];
    send_bytes(c, e, strlen(e));
    if (c->evpos < c->nev)
        arm(c, c->gap > 0 ? c->gap : 0);
}

/* the end of a delay (or a trickle's or a stream's next piece) */
static void fire(conn *c)
{
    if (c->pending_reset) {
        reset_conn(c);
        return;
    }
    if (c->pending) {
        char *p = c->pending;
        c->pending = NULL;
        send_response(c, p, c->pending_len);
        free(p);
        return;
    }
    if (c->ev && c->evpos < c->nev) {
        send_next_event(c);
        return;
    }
    if (c->trickle && c->trickle_pos < c->trickle_len) {
        send_bytes(c, c->trickle + c->trickle_pos++, 1);
        struct timeval tv = {1, 0};
        evtimer_add(c->timer, &tv);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fire(arg);
}

static void on_alarm(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        return;
    long long now = mono_ns();
    while (nheap && heap[0]->due_ns <= now) {
        conn *c = heap[0];
        c->slot = -1;
        conn *last = heap[--nheap];
        if (nheap) {
            heap_set(0, last);
            sift_down(0);
        }
        fire(c); /* may free c, which is out of the heap already */
    }
    set_alarm();
}

/* queue the response, after the delay */
static void respond(conn *c, char *resp, size_t len, long delay)
{
    if (delay > 0) {
        c->pending = resp;
        c->pending_len = len;
        arm(c, delay);
        return;
    }
    send_response(c, resp, len);
    free(resp);
}

/* the next space-separated word of *s into out (cut to fit), as sscanf("%s") would */
static void word(const char **s, char *out, size_t n)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t k = 0;
    for (; *p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n'; p++)
        if (k + 1 < n)
            out[k++] = *p;
    out[k] = '\0';
    *s = p;
}

static char *hooks_path;

/* a webhook's request kept for the spec (see the head of the file) */
static void keep_hook(const char *head, const char *body, size_t body_len, const opts *o, long seen)
{
    json_t *h = json_object();
    for (const char *l = strstr(head, "\r\n"); l && l[2] && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *name = l + 2, *colon = strchr(name, ':'), *end = strstr(name, "\r\n");
        if (!colon || (end && colon > end) || strncasecmp(name, "x-warden-", 9))
            continue;
        char k[64], v[512];
        size_t kl = (size_t)(colon - name) < sizeof k - 1 ? (size_t)(colon - name) : sizeof k - 1;
        for (size_t i = 0; i < kl; i++)
            k[i] = (char)tolower((unsigned char)name[i]);
        k[kl] = '\0';
        const char *vs = colon + 1;
        while (*vs == ' ')
            vs++;
        size_t vl = end ? (size_t)(end - vs) : strlen(vs);
        snprintf(v, sizeof v, "%.*s", (int)vl, vs);
        json_object_set_new(h, k, json_string(v));
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int failed = (o->fail && seen < o->fail) || !strcmp(o->mode, "status");
    json_t *rec = json_pack("{s:s,s:I,s:I,s:I,s:o,s:s%}", "key", o->key, "n", (json_int_t)seen + 1, "ms",
                            (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, "status",
                            (json_int_t)(failed                     ? o->status
                                         : !strcmp(o->mode, "hang") ? 0
                                                                    : 200),
                            "headers", h, "body", body, body_len);
    char *line = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    FILE *f = line && hooks_path ? fopen(hooks_path, "a") : NULL;
    if (f) {
        fprintf(f, "%s\n", line);
        fclose(f);
    }
    free(line);
    json_decref(rec);
}

/* ---- streams ---------------------------------------------------------------------- */

typedef struct evlist {
    char **ev;
    size_t n;
} evlist;

/* the event j (taken) as a line of the stream; Anthropic's are named by their type */
static void ev_add(evlist *l, json_t *j, int anthropic)
{
    char *d = j ? json_dumps(j, JSON_COMPACT) : NULL, *e = NULL;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (d && anthropic && asprintf(&e, "event: %s\ndata: %s\n\n", type ? type : "x", d) < 0)
        e = NULL;
    if (d && !anthropic && asprintf(&e, "data: %s\n\n", d) < 0)
        e = NULL;
    free(d);
    json_decref(j);
    if (!e)
        return;
    l->ev = realloc(l->ev, (l->n + 1) * sizeof *l->ev);
    l->ev[l->n++] = e;
}

static json_t *chunk(json_t *delta, const char *finish)
{
    return json_pack("{s:s,s:s,s:i,s:s,s:[{s:i,s:o,s:s?}]}", "id", "chatcmpl-fake", "object", "chat.completion.chunk",
                     "created", 0, "model", "fake", "choices", "index", 0, "delta", delta, "finish_reason", finish);
}

/* the answer as OpenAI's chunks or Anthropic's events, into l */
static void stream_events(evlist *l, const opts *o, int call, int anthropic)
{
    static long seq;
    char id[32], word[16];
    snprintf(id, sizeof id, "call_s%ld", ++seq);
    size_t half = strlen(o->args) / 2;
    long out = o->words > 0 ? o->words : 20;
    if (anthropic)
        ev_add(l,
               json_pack("{s:s,s:{s:s,s:s,s:s,s:[],s:s,s:{s:i,s:i}}}", "type", "message_start", "message", "id",
                         "msg_fake", "type", "message", "role", "assistant", "content", "model", "fake", "usage",
                         "input_tokens", 100, "output_tokens", 1),
               1);
    else
        ev_add(l, chunk(json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL), 0);
    if (call && anthropic) {
        ev_add(l,
               json_pack("{s:s,s:i,s:{s:s,s:s,s:s,s:{}}}", "type", "content_block_start", "index", 0, "content_block",
                         "type", "tool_use", "id", id, "name", o->tool, "input"),
               1);
        for (int i = 0; i < 2; i++)
            ev_add(l,
                   json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index", 0, "delta", "type",
                             "input_json_delta", "partial_json", o->args + (i ? half : 0),
                             i ? strlen(o->args) - half : half),
                   1);
    } else if (call) {
        ev_add(l,
               chunk(json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", 0, "id", id, "type",
                               "function", "function", "name", o->tool, "arguments", ""),
                     NULL),
               0);
        for (int i = 0; i < 2; i++)
            ev_add(l,
                   chunk(json_pack("{s:[{s:i,s:{s:s%}}]}", "tool_calls", "index", 0, "function", "arguments",
                                   o->args + (i ? half : 0), i ? strlen(o->args) - half : half),
                         NULL),
                   0);
    } else {
        if (anthropic)
            ev_add(l,
                   json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", 0, "content_block",
                             "type", "text", "text", ""),
                   1);
        for (long w = 1; w <= (o->words > 0 ? o->words : 1); w++) {
            snprintf(word, sizeof word, o->words > 0 ? "%03ld " : "done", w);
            ev_add(l,
                   anthropic ? json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index", 0, "delta",
                                         "type", "text_delta", "text", word)
                             : chunk(json_pack("{s:s}", "content", word), NULL),
                   anthropic);
        }
    }
    const char *stop = anthropic ? (call ? "tool_use" : "end_turn") : (call ? "tool_calls" : "stop");
    if (anthropic) {
        ev_add(l, json_pack("{s:s,s:i}", "type", "content_block_stop", "index", 0), 1);
        json_t *md = json_pack("{s:s,s:{s:s}}", "type", "message_delta", "delta", "stop_reason", stop);
        if (!o->nousage)
            json_object_set_new(md, "usage", json_pack("{s:i}", "output_tokens", (int)out));
        ev_add(l, md, 1);
        ev_add(l, json_pack("{s:s}", "type", "message_stop"), 1);
        return;
    }
    ev_add(l, chunk(json_object(), stop), 0);
    if (!o->nousage)
        ev_add(l,
               json_pack("{s:s,s:s,s:[],s:{s:i,s:i,s:i}}", "id", "chatcmpl-fake", "object", "chat.completion.chunk",
                         "choices", "usage", "prompt_tokens", 100, "completion_tokens", (int)out, "total_tokens",
                         100 + (int)out),
               0);
    l->ev = realloc(l->ev, (l->n + 1) * sizeof *l->ev);
    l->ev[l->n++] = strdup("data: [DONE]\n\n");
}

/* answers c as a stream: the head now, the events one per gap, then the close (or,
** with stall=K, nothing after the K-th event) */
static void stream_answer(conn *c, const opts *o, const char *body, int anthropic)
{
    evlist l = {0};
    stream_events(&l, o, o->tool[0] && count_assistant(body) < o->calls, anthropic);
    if (o->stall > 0 && (size_t)o->stall < l.n) {
        for (size_t i = (size_t)o->stall; i < l.n; i++)
            free(l.ev[i]);
        l.n = (size_t)o->stall;
    } else {
        c->close_after = 1;
    }
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    "Connection: close\r\n\r\n";
    send_bytes(c, h, strlen(h));
    c->ev = l.ev;
    c->nev = l.n;
    c->evpos = 0;
    c->gap = o->gap;
    if (c->nev)
        send_next_event(c);
}

static void handle(conn *c, const char *head, const char *body, size_t body_len)
{
    char method[16] = "", path[2048] = "";
    word(&head, method, sizeof method);
    word(&head, path, sizeof path);
    opts o;
    parse_opts(path, &o);
    json_t *cnt = json_object_get(counters, o.key);
    long seen = cnt ? (long)json_integer_value(cnt) : 0;
    json_object_set_new(counters, o.key, json_integer(seen + 1));
    if (log_file) { /* with the names of the tools the request offers the model, and its max_tokens */
        char tools[1024] = "";
        size_t at = 0;
        json_t *req = body_len ? json_loadb(body, body_len, 0, NULL) : NULL, *t;
        size_t i;
        json_array_foreach(json_object_get(req, "tools"), i, t)
        {
            json_t *fn = json_object_get(t, "function"); /* OpenAI's shape; Anthropic's has the name on top */
            const char *name = json_string_value(json_object_get(fn ? fn : t, "name"));
            int n = snprintf(tools + at, sizeof tools - at, "%s%s", at ? "," : "", name ? name : "?");
            if (n < 0 || (size_t)n >= sizeof tools - at)
                break;
            at += (size_t)n;
        }
        json_t *mt = json_object_get(req, "max_tokens");
        long long max_tokens = json_is_integer(mt) ? (long long)json_integer_value(mt) : -1;
        char rf[80]; /* the response_format's schema name, "-" none */
        const char *rfn = json_string_value(
            json_object_get(json_object_get(json_object_get(req, "response_format"), "json_schema"), "name"));
        snprintf(rf, sizeof rf, "%s", rfn ? rfn : "-");
        json_decref(req);
        fprintf(log_file, "%s %s %s tools=%s max_tokens=%lld rf=%s\n", o.key, method, path, at ? tools : "-",
                max_tokens, rf);
        fflush(log_file);
    }
    c->busy = 1;
    size_t pl = strlen(path);
    if (pl >= 5 && !strcmp(path + pl - 5, "/hook"))
        keep_hook(head, body, body_len, &o, seen);
    int anthropic = strstr(path, "/messages") != NULL;
    int llm = anthropic || strstr(path, "/chat/completions") != NULL;
    char extra[256] = "";
    size_t len;
    char *resp;
    if (o.expect_key[0]) {
        char got[512] = "";
        if (!header(head, "x-api-key", got, sizeof got) && header(head, "Authorization", got, sizeof got) &&
            !strncmp(got, "Bearer ", 7))
            memmove(got, got + 7, strlen(got + 7) + 1);
        if (strcmp(got, o.expect_key)) {
            json_t *e = json_pack("{s:{s:s+,s:s}}", "error", "message", "Incorrect API key provided: ", got, "type",
                                  "invalid_request_error");
            char *s = json_dumps(e, JSON_COMPACT);
            json_decref(e);
            resp = response(401, "", s, &len, -1);
            free(s);
            respond(c, resp, len, o.delay);
            return;
        }
    }
    if (o.retry_after)
        snprintf(extra, sizeof extra, "Retry-After: %ld\r\n", o.retry_after);
    if (o.retry_date) {
        time_t t = time(NULL) + o.retry_date;
        char d[64];
        strftime(d, sizeof d, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
        snprintf(extra, sizeof extra, "Retry-After: %s\r\n", d);
    }
    if ((o.fail && seen < o.fail) || !strcmp(o.mode, "status")) {
        char b[200];
        snprintf(b, sizeof b, "{\"error\":{\"message\":\"injected failure %ld\",\"type\":\"server_error\"}}", seen + 1);
        resp = response(o.status, extra, b, &len, -1);
        respond(c, resp, len, o.delay);
        return;
    }
    if (!strcmp(o.mode, "hang"))
        return; /* never answers; the connection stays open */
    if (!strcmp(o.mode, "reset")) {
        if (o.delay > 0) {
            c->pending_reset = 1;
            arm(c, o.delay);
        } else {
            reset_conn(c);
        }
        return;
    }
    if (llm && body_len && strstr(body, "\"stream\":true")) {
        stream_answer(c, &o, body, anthropic);
        return;
    }
    if (!strcmp(o.mode, "big")) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        send_bytes(c, h, strlen(h));
        c->big_left = BIG_BYTES;
        c->close_after = 1;
        on_write_done(c->bev, c);
        return;
    }
    char *b;
    if (llm) {
        b = answer_body(&o, body, anthropic);
    } else {
        json_t *e = json_pack("{s:s,s:s,s:s%}", "method", method, "path", path, "body", body, body_len);
        b = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
    }
    if (!b)
        b = strdup("{}");
    if (b && llm && o.tokens[0])
        b = with_tokens(b, o.tokens);
    if (!strcmp(o.mode, "malformed")) {
        b[strlen(b) / 2] = '\0'; /* half a JSON document, honestly sized */
    }
    if (!strcmp(o.mode, "trickle")) {
        char hb[200];
        snprintf(hb, sizeof hb, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                 strlen(b));
        send_bytes(c, hb, strlen(hb));
        c->trickle = b;
        c->trickle_len = strlen(b);
        c->trickle_pos = 0;
        struct timeval tv = {0, 1000};
        evtimer_add(c->timer, &tv);
        return;
    }
    long declared = -1;
    if (!strcmp(o.mode, "truncated")) {
        declared = (long)strlen(b) + 100; /* promises more than it sends, then closes */
        c->close_after = 1;
    }
    resp = response(200, extra, b, &len, declared);
    free(b);
    respond(c, resp, len, o.delay);
}

/* output drained: more of a big body, a close, or the next request */
static void on_write_done(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    (void)bev;
    if (c->big_left > 0) {
        static char chunk[65536 + 32];
        static int init;
        if (!init) {
            int h = sprintf(chunk, "10000\r\n");
            memset(chunk + h, 'x', 65536);
            memcpy(chunk + h + 65536, "\r\n", 2);
            init = h + 65536 + 2;
        }
        send_bytes(c, chunk, (size_t)init);
        c->big_left -= 65536;
        if (c->big_left <= 0)
            send_bytes(c, "0\r\n\r\n", 5);
        return;
    }
    if (!c->busy || c->pending || c->trickle_pos < c->trickle_len || c->evpos < c->nev)
        return;
    if (c->close_after) {
        conn_free(c);
        return;
    }
    c->busy = 0;
    free(c->trickle);
    c->trickle = NULL;
    c->trickle_len = c->trickle_pos = 0;
    on_read(c->bev, c); /* a pipelined request may be waiting */
}

static void on_read(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (c->busy)
        return;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HEAD)
            conn_free(c);
        return;
    }
    size_t head_len = (size_t)end.pos + 4;
    char *head = malloc(head_len + 1);
    evbuffer_copyout(in, head, head_len);
    head[head_len] = '\0';
    char cl[32] = "";
    long body_len = header(head, "Content-Length", cl, sizeof cl) ? atol(cl) : 0;
    if (body_len < 0 || body_len > MAX_BODY) {
        free(head);
        conn_free(c);
        return;
    }
    if (evbuffer_get_length(in) < head_len + (size_t)body_len) {
        free(head);
        return;
    }
    evbuffer_drain(in, head_len);
    char *body = malloc((size_t)body_len + 1);
    evbuffer_remove(in, body, (size_t)body_len);
    body[body_len] = '\0';
    handle(c, head, body, (size_t)body_len);
    free(head);
    free(body);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    (void)arg;
    conn *c = calloc(1, sizeof *c);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(base, on_timer, c);
    c->slot = -1;
    bufferevent_setcb(c->bev, on_read, on_write_done, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (watch_pid && kill(watch_pid, 0) < 0 && errno == ESRCH)
        event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *log_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port-file"))
            port_file = argv[i + 1];
        else if (!strcmp(argv[i], "--log"))
            log_path = argv[i + 1];
        else if (!strcmp(argv[i], "--watch-pid"))
            watch_pid = (pid_t)atol(argv[i + 1]);
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    counters = json_object();
    if (log_path && asprintf(&hooks_path, "%s.hooks", log_path) < 0)
        hooks_path = NULL;
    if (log_path && !(log_file = fopen(log_path, "a"))) {
        perror(log_path);
        return 1;
    }
    base = event_base_new();
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) {
        perror("timerfd_create");
        return 1;
    }
    event_add(event_new(base, tfd, EV_READ | EV_PERSIST, on_alarm, NULL), NULL);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l = evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                                       4096, (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        perror("listen");
        return 1;
    }
    socklen_t sl = sizeof sin;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &sl);
    int port = ntohs(sin.sin_port);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) || rename(tmp, port_file)) {
            perror(port_file);
            return 1;
        }
    }
    printf("%d\n", port);
    fflush(stdout);
    struct event *w = event_new(base, -1, EV_PERSIST, on_watch, NULL);
    struct timeval tv = {0, 200000};
    event_add(w, &tv);
    event_base_dispatch(base);
    return 0;
}
