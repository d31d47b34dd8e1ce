/* wdload - a load generator for warden serve (the specs and `make bench`).
**
** C clients, each on a keep-alive connection of its own, send one request after another
** to URL until the duration is over or the total is sent, then one JSON line is printed:
**   {"requests", "ok" (2xx whose body holds --expect, when given), "status": {code: n},
**    "errors" (transport), "unexpected" (2xx bodies without --expect), "seconds", "rps",
**    "p50_ms", "p90_ms", "p99_ms", "max_ms", "first_error"}
**
**   wdload --url http://127.0.0.1:PORT/v1/runs [--key KEY] [--body JSON] [--method GET|POST]
**          [--clients C] [--duration-ms D | --requests N] [--expect TEXT] */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct client {
    struct evhttp_connection *conn;
    double t0;
    int busy;
} client;

static struct {
    struct event_base *base;
    const char *host, *path, *key, *body, *expect;
    int port, method, clients;
    long duration_ms, total;
    long sent, done, errors, unexpected, ok;
    long status[600];
    double *lat;
    size_t nlat, cap;
    double start, end;
    char first_error[300];
} L;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void send_one(client *c);

static int more(void)
{
    if (L.total > 0)
        return L.sent < L.total;
    return now_ms() - L.start < L.duration_ms;
}

static void on_response(struct evhttp_request *req, void *arg)
{
    client *c = arg;
    double t = now_ms() - c->t0;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    L.done++;
    if (!code) {
        L.errors++;
        if (!L.first_error[0])
            snprintf(L.first_error, sizeof L.first_error, "transport error (connection failed or closed)");
        /* a failed connection is made anew */
        evhttp_connection_free(c->conn);
        c->conn = evhttp_connection_base_new(L.base, NULL, L.host, (unsigned short)L.port);
        evhttp_connection_set_timeout(c->conn, 120);
    } else {
        if (code < 600)
            L.status[code]++;
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        const char *b = n ? (const char *)evbuffer_pullup(in, -1) : "";
        int good = code >= 200 && code < 300;
        if (good && L.expect && !memmem(b, n, L.expect, strlen(L.expect))) {
            good = 0;
            L.unexpected++;
        }
        if (good)
            L.ok++;
        else if (!L.first_error[0])
            snprintf(L.first_error, sizeof L.first_error, "%d %.*s", code, (int)(n > 250 ? 250 : n), b);
    }
    if (L.nlat == L.cap) {
        L.cap = L.cap ? L.cap * 2 : 4096;
        L.lat = realloc(L.lat, L.cap * sizeof *L.lat);
    }
    L.lat[L.nlat++] = t;
    c->busy = 0;
    if (more())
        send_one(c);
    else if (L.done == L.sent)
        event_base_loopbreak(L.base);
}

static void send_one(client *c)
{
    struct evhttp_request *req = evhttp_request_new(on_response, c);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[300], auth[600];
    snprintf(host, sizeof host, "%s:%d", L.host, L.port);
    evhttp_add_header(h, "Host", host);
    if (L.key) {
        snprintf(auth, sizeof auth, "Bearer %s", L.key);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (L.body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), L.body, strlen(L.body));
    }
    c->busy = 1;
    c->t0 = now_ms();
    L.sent++;
    evhttp_make_request(c->conn, req, L.method, L.path);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) { return L.nlat ? L.lat[(size_t)(p * (double)(L.nlat - 1))] : 0; }

int main(int argc, char **argv)
{
    const char *url = NULL;
    L.clients = 10;
    L.duration_ms = 1000;
    L.method = EVHTTP_REQ_GET;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--url"))
            url = v;
        else if (!strcmp(k, "--key"))
            L.key = v;
        else if (!strcmp(k, "--body")) {
            L.body = v;
            L.method = EVHTTP_REQ_POST;
        } else if (!strcmp(k, "--method"))
            L.method = strcmp(v, "POST") ? EVHTTP_REQ_GET : EVHTTP_REQ_POST;
        else if (!strcmp(k, "--clients"))
            L.clients = atoi(v);
        else if (!strcmp(k, "--duration-ms"))
            L.duration_ms = atol(v);
        else if (!strcmp(k, "--requests"))
            L.total = atol(v);
        else if (!strcmp(k, "--expect"))
            L.expect = v;
        else {
            fprintf(stderr, "wdload: unknown option %s\n", k);
            return 2;
        }
    }
    static char hostbuf[256], pathbuf[1024];
    if (!url || sscanf(url, "http://%255[^:/]:%d%1023s", hostbuf, &L.port, pathbuf) != 3 || L.clients < 1) {
        fprintf(stderr, "usage: wdload --url http://HOST:PORT/PATH [--key K] [--body JSON] [--clients C] "
                        "[--duration-ms D | --requests N] [--expect TEXT]\n");
        return 2;
    }
    L.host = hostbuf;
    L.path = pathbuf;
    L.base = event_base_new();
    client *cs = calloc((size_t)L.clients, sizeof *cs);
    L.start = now_ms();
    for (int i = 0; i < L.clients; i++) {
        cs[i].conn = evhttp_connection_base_new(L.base, NULL, L.host, (unsigned short)L.port);
        evhttp_connection_set_timeout(cs[i].conn, 120);
        if (more())
            send_one(&cs[i]);
    }
    if (L.sent)
        event_base_dispatch(L.base);
    L.end = now_ms();
    qsort(L.lat, L.nlat, sizeof *L.lat, cmp);
    double secs = (L.end - L.start) / 1e3;
    printf("{\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"unexpected\":%ld,\"seconds\":%.3f,\"rps\":%.1f,"
           "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"status\":{",
           L.done, L.ok, L.errors, L.unexpected, secs, secs > 0 ? L.done / secs : 0, pct(0.5), pct(0.9), pct(0.99),
           L.nlat ? L.lat[L.nlat - 1] : 0);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (L.status[s]) {
            printf("%s\"%d\":%ld", first ? "" : ",", s, L.status[s]);
            first = 0;
        }
    printf("},\"first_error\":\"");
    for (const char *p = L.first_error; *p; p++) /* JSON-safe enough: quotes and controls escaped */
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            putchar(' ');
        else
            putchar(*p);
    printf("\"}\n");
    for (int i = 0; i < L.clients; i++)
        evhttp_connection_free(cs[i].conn);
    free(cs);
    free(L.lat);
    event_base_free(L.base);
    return 0;
}
