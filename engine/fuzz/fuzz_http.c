/* fuzz_http.c - the HTTP API as a client would reach it: the input is the raw bytes a
** client sends on one connection (request lines, headers, bodies, several requests,
** garbage), handed to the same server warden serve runs on each worker (api.c over
** libevent's evhttp, an engine with the mock model, the spec fixtures as agents). The
** dictionary and the seeds hold the test keys, so requests get past authentication and
** reach the routes. Whatever comes in: no crash, no leak, the loop goes on. */
#include "fuzz.h"
#include "admit.h"
#include "mcpsess.h"
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* sha256 of "fuzz-admin" */
#define ADMIN_SHA "1c64ed42d0e14a2b1a137b7634c45cc09a6b67d48ea1767a8a30cdad14225918"

static wd_engine *e;
static struct sockaddr_in addr; /* where the server listens */
static wd_server srv;
static wd_front front;

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    static char dir[] = "/tmp/wd-fuzz-http.XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char pol[128], scen[128], audit[128], store[128], text[2048];
    snprintf(pol, sizeof pol, "%s/policy.yaml", dir);
    snprintf(scen, sizeof scen, "%s/mock.yaml", dir);
    snprintf(audit, sizeof audit, "%s/audit.jsonl", dir);
    snprintf(store, sizeof store, "%s/state.db", dir);
    /* keys: fuzz-reader and fuzz-admin (their sha256) */
    snprintf(text, sizeof text,
             "version: 1\n"
             "defaults: {timeouts: {run_ms: 2000}}\n"
             "roles: [read, write, admin]\n"
             "users:\n"
             "  reader: {role: read, tier: free, api_key_sha256: "
             "443c9d4e4dd4a1fbda9796696a2935a4244bdb7fe633d31067a0add17470a492}\n"
             "  admin: {role: admin, tier: free, api_key_sha256: %s}\n"
             "tiers: {free: {per_run_usd: 1, daily_usd: 1000, monthly_usd: 10000, requests_per_hour: 1000000}}\n"
             "models: {default: {provider: mock, name: m, input_usd_per_1k: 0.01, output_usd_per_1k: 0.01}}\n"
             "tools: {echo: {permission: read}, noop: {permission: read}, approval_tool: {permission: read, "
             "risk: high, requires_approval: true}}\n"
             "audit: {path: %s, fsync: none}\n"
             "store: {path: %s}\n",
             ADMIN_SHA, audit, store);
    put(pol, text);
    put(scen, "- content: done\n");
    char llm[160], err[600];
    snprintf(llm, sizeof llm, "mock:%s", scen);
    wd_engine_opts o = {pol, llm, NULL, NULL};
    if (!(e = wd_engine_new(&o, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    srv.o.max_body = 1 << 20;
    srv.agents_dir = strdup("spec/fixtures");
    srv.web_dir = strdup("web");
    srv.reg = wd_registry_new(200, 200);
    srv.met = wd_metrics_new();
    srv.admit = wd_admit_new();
    srv.mcp_sessions = wd_mcpsess_new();
    pthread_mutex_init(&srv.mu, NULL);
    srv.policy = wd_engine_policy(e);
    atomic_store(&srv.generation, 1);
    srv.fronts = &front;
    srv.nfronts = 1;
    front.srv = &srv;
    front.e = e;
    front.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0); /* evhttp accepts until EAGAIN */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof addr;
    if (front.fd < 0 || bind(front.fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(front.fd, 64) < 0 ||
        getsockname(front.fd, (struct sockaddr *)&addr, &al) < 0 || wd_api_start(&front) < 0)
        abort();
}

static int64_t ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!e)
        setup();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return 0;
    }
    size_t sent = 0;
    int closed = 0;
    char buf[65536];
    int64_t until = ms() + 200;
    while (ms() < until) {
        if (sent < size) {
            ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            if (sent == size)
                shutdown(fd, SHUT_WR);
        }
        event_base_loop(wd_engine_base(e), EVLOOP_NONBLOCK);
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0)
            ;
        if (r == 0) {
            closed = 1;
            break;
        }
    }
    close(fd);
    for (int i = 0; i < 20; i++) /* the server sees the close and frees the connection */
        event_base_loop(wd_engine_base(e), EVLOOP_NONBLOCK);
    (void)closed;
    return 0;
}
