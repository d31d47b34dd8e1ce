/* test_http.c - HTTP over curl's multi-socket interface: kept-alive connections are
** reused, and one the server drops while idle costs the next request nothing but a
** reconnect (its socket's parked watch must not outlive it: the new socket usually gets
** the same descriptor number, and a stale watch would leave it unwatched until the read
** deadline). The server is a thread here answering on a loopback port. */
#include "harness.h"
#include "http.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd, port;
static atomic_int accepted, close_each; /* close_each: drop the connection after each answer */
static atomic_int streaming;            /* answer as a stream: three pieces 300 ms apart, 96 KiB in all */

/* reads one request (head and Content-Length body); 0 on EOF or error */
static int read_request(int fd)
{
    char buf[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strcasestr(buf, "Content-Length:");
        size_t want = (size_t)(end + 4 - buf) + (cl ? (size_t)atol(cl + 15) : 0);
        if (len >= want)
            return 1;
    }
}

static void *server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        accepted++;
        if (streaming && read_request(c)) {
            static const char head[] =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            static char piece[32768];
            memset(piece, 'x', sizeof piece);
            int ok = send(c, head, sizeof head - 1, MSG_NOSIGNAL) > 0;
            for (int i = 0; ok && i < 3; i++) {
                ok = send(c, piece, sizeof piece, MSG_NOSIGNAL) > 0;
                usleep(300000);
            }
            close(c);
            continue;
        }
        while (read_request(c)) {
            static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if (send(c, resp, sizeof resp - 1, MSG_NOSIGNAL) < 0 || close_each)
                break; /* an abrupt close: nothing told curl the connection would end */
        }
        close(c);
    }
}

typedef struct {
    struct event_base *base;
    long status;
    int fail;
    long long ms;
} outcome;

static void done(const wd_http_resp *r, void *ud)
{
    outcome *o = ud;
    o->status = r->status;
    o->fail = (int)r->fail;
    o->ms = r->latency_ms;
    event_base_loopbreak(o->base);
}

/* one GET on h, run to its end */
static outcome get(wd_http *h, struct event_base *base)
{
    char url[64], err[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    wd_http_opts o = {0};
    o.url = url;
    o.read_ms = 3000;
    o.connect_ms = 1000;
    outcome out = {base, 0, -1, 0};
    if (!wd_http_start(h, &o, done, &out, err, sizeof err))
        return out;
    event_base_dispatch(base);
    return out;
}

static double cpu_ms(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0 +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
}

/* n GETs in a row on one wd_http, the server dropping each connection after its answer
** (drop) or keeping it; the connections it accepted */
static int series(int drop, int n)
{
    struct event_base *base = event_base_new();
    wd_http *h = wd_http_new(base);
    close_each = drop;
    int before = accepted;
    for (int i = 0; i < n; i++) {
        outcome o = get(h, base);
        CHECK(o.fail == WD_HTTP_OK);
        CHECK(o.status == 200);
        CHECK(o.ms < 1000); /* not the read deadline's 3 s */
        /* the loop runs while the connection is idle (and a drop reaches it): no spinning */
        struct timeval tv = {0, 100000};
        double c0 = cpu_ms();
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
        CHECK(cpu_ms() - c0 < 30);
    }
    close_each = 0;
    wd_http_free(h);
    event_base_free(base);
    return accepted - before;
}

/* the client side of kept-alive connections to our server, and how many are close-on-exec */
static int client_sockets(int *cloexec)
{
    int n = 0;
    *cloexec = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in peer;
        socklen_t l = sizeof peer;
        if (getpeername(fd, (struct sockaddr *)&peer, &l) < 0 || peer.sin_family != AF_INET ||
            ntohs(peer.sin_port) != port)
            continue;
        n++;
        if (fcntl(fd, F_GETFD) & FD_CLOEXEC)
            (*cloexec)++;
    }
    return n;
}

TEST(a_kept_alive_connection_is_reused) { CHECK(series(0, 5) == 1); }

TEST(connections_are_closed_on_exec)
{
    struct event_base *base = event_base_new();
    wd_http *h = wd_http_new(base);
    outcome o = get(h, base);
    CHECK(o.fail == WD_HTTP_OK);
    int cloexec, n = client_sockets(&cloexec);
    CHECK(n == 1);
    CHECK(cloexec == n);
    wd_http_free(h);
    event_base_free(base);
}

TEST(a_connection_dropped_while_idle_costs_only_a_reconnect) { CHECK(series(1, 6) == 6); }

typedef struct {
    size_t bytes, pieces, body;
    long status;
    int fail;
    struct event_base *base;
    size_t stop_at; /* on_piece stops the stream once this many bytes came (0: never) */
    char error[200];
} streamed;

static int on_piece(void *ud, const char *p, size_t len)
{
    streamed *st = ud;
    (void)p;
    st->bytes += len;
    st->pieces++;
    return st->stop_at && st->bytes >= st->stop_at ? -1 : 0;
}

static void stream_done(const wd_http_resp *r, void *ud)
{
    streamed *st = ud;
    st->status = r->status;
    st->fail = (int)r->fail;
    st->body = r->len;
    snprintf(st->error, sizeof st->error, "%s", r->error ? r->error : "");
    event_base_loopbreak(st->base);
}

/* a stream: its pieces go on as they come, past the body cap and the read deadline a
** plain request would have, and none of it is kept */
TEST(a_stream_is_handed_on_as_it_comes_without_a_deadline)
{
    struct event_base *base = event_base_new();
    wd_http *h = wd_http_new(base);
    char url[64], err[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", port);
    wd_http_opts o = {.url = url, .read_ms = 100, .connect_ms = 1000, .max_body = 1024, .on_data = on_piece};
    streamed st = {0, 0, 0, 0, -1, base, 0, ""};
    streaming = 1;
    CHECK(wd_http_start(h, &o, stream_done, &st, err, sizeof err) != NULL);
    event_base_dispatch(base);
    streaming = 0;
    CHECK(st.fail == WD_HTTP_OK);
    CHECK(st.status == 200);
    CHECK(st.bytes == 3 * 32768);
    CHECK(st.pieces >= 3);
    CHECK(st.body == 0);
    wd_http_free(h);
    event_base_free(base);
}

/* the reader stops a stream (an answer cut at its budget): the transfer ends there, told */
TEST(a_stream_its_reader_stops_ends_at_once)
{
    struct event_base *base = event_base_new();
    wd_http *h = wd_http_new(base);
    char url[64], err[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", port);
    wd_http_opts o = {.url = url, .connect_ms = 1000, .on_data = on_piece};
    streamed st = {0, 0, 0, 0, -1, base, 1, ""};
    streaming = 1;
    CHECK(wd_http_start(h, &o, stream_done, &st, err, sizeof err) != NULL);
    event_base_dispatch(base);
    streaming = 0;
    CHECK(st.fail == WD_HTTP_NETWORK);
    CHECK(strstr(st.error, "stopped by its reader") != NULL);
    CHECK(st.bytes < 3 * 32768);
    wd_http_free(h);
    event_base_free(base);
}

/* idle_ms bounds the silence between pieces, not the whole stream: pieces 300 ms apart
** pass a 1 s limit (the stream lasts longer than that) and fail a 100 ms one */
TEST(a_stream_silent_past_its_idle_limit_times_out)
{
    struct event_base *base = event_base_new();
    wd_http *h = wd_http_new(base);
    char url[64], err[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/events", port);
    for (int i = 0; i < 2; i++) {
        wd_http_opts o = {.url = url, .connect_ms = 1000, .on_data = on_piece, .idle_ms = i ? 100 : 1000};
        streamed st = {0, 0, 0, 0, -1, base, 0, ""};
        streaming = 1;
        CHECK(wd_http_start(h, &o, stream_done, &st, err, sizeof err) != NULL);
        event_base_dispatch(base);
        streaming = 0;
        if (!i) {
            CHECK(st.fail == WD_HTTP_OK);
            CHECK(st.bytes == 3 * 32768);
        } else {
            CHECK(st.fail == WD_HTTP_READ_TIMEOUT);
            CHECK(strstr(st.error, "no data for 100 ms") != NULL);
            CHECK(st.bytes < 3 * 32768);
        }
    }
    wd_http_free(h);
    event_base_free(base);
}

int main(void)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(listen_fd, 16) < 0 ||
        getsockname(listen_fd, (struct sockaddr *)&a, &al) < 0) {
        perror("test server");
        return 1;
    }
    port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, server, NULL);
    pthread_detach(t);
    RUN(a_kept_alive_connection_is_reused);
    RUN(a_stream_its_reader_stops_ends_at_once);
    RUN(a_stream_silent_past_its_idle_limit_times_out);
    RUN(a_connection_dropped_while_idle_costs_only_a_reconnect);
    RUN(connections_are_closed_on_exec);
    RUN(a_stream_is_handed_on_as_it_comes_without_a_deadline);
    DONE();
}
