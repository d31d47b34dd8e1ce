/* serve.h - warden serve (docs/serve.md): the engine as a long-running HTTP
** service. serve.c owns the process: the worker pool, the listening sockets, signals,
** live reload and the graceful stop, on the main thread. api.c answers requests on the
** worker threads: every worker's loop serves HTTP beside its runs (one listening socket
** each, SO_REUSEPORT), and a run asked for over a connection runs on that connection's
** worker, so its result is written from the thread it ends on. */
#ifndef WD_SERVE_H
#define WD_SERVE_H

#include <pthread.h>
#include <stdatomic.h>

#include "host.h"
#include "policy.h"
#include "metrics.h"
#include "registry.h"

typedef struct wd_serve_opts {
    const char *policy_path; /* default policies/default.yaml */
    const char *agents_dir;  /* default agents */
    const char *listen;      /* HOST:PORT, default 127.0.0.1:8080; port 0: any free one */
    int workers;             /* default 2 */
    const char *llm;         /* as warden run's --llm, for every run */
    long long grace_ms;      /* SIGTERM: how long runs may finish, default 10 s */
    long long max_body;      /* request bodies, default 1 MiB */
    const char *web_dir;     /* the dashboard's files, default the home's web/ (home.h) */
    const char *store_path;  /* overrides the policy's store.path */
    const char *tls_cert;    /* PEM files: serve HTTPS (both or neither) */
    const char *tls_key;
} wd_serve_opts;

typedef struct wd_server wd_server;

/* one worker's HTTP side */
typedef struct wd_front {
    wd_server *srv;
    int index;
    wd_engine *e;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int fd;                    /* its listening socket (SO_REUSEPORT) */
    int draining;              /* stopping: requests get 503 and their connection closes */
    struct wd_stream *streams; /* event streams open on this worker */
    struct wd_waiter *waiters; /* requests waiting for a run's result */
    int64_t deny_window_ms;    /* audited refusals: at most DENY_AUDIT_PER_S a second */
    int deny_count;
    long deny_unaudited;
    struct json_t *tool_specs;     /* /mcp: script tools' definitions by path, while unchanged (mcplist.c) */
    struct wd_mcp_call *mcp_calls; /* /mcp: tool calls answering on this worker (mcpserve.c) */
} wd_front;

struct wd_server {
    wd_serve_opts o;
    char *agents_dir; /* without trailing slashes */
    char *web_dir;
    wd_pool *pool;
    wd_front *fronts;
    int nfronts;
    wd_registry *reg;
    wd_metrics *met;
    atomic_long generation; /* policy loads, 1 the first */
    atomic_int draining;
    pthread_mutex_t mu;                   /* guards policy */
    wd_policy *policy;                    /* the current snapshot (the one workers were last given) */
    struct wd_admit *admit;               /* runs in flight and waiting (admit.h) */
    struct wd_tls *tls;                   /* --tls-cert/--tls-key: every worker speaks HTTPS (tls.h) */
    int freed;                            /* a run ended since the main thread last gave memory back */
    struct wd_mcp_sessions *mcp_sessions; /* /mcp's sessions (mcpsess.h) */
};

/* api.c, on a worker's thread */
int wd_api_start(wd_front *f);  /* its HTTP server on its loop; 0 or -1 */
void wd_api_drain(wd_front *f); /* stop accepting; later requests get 503 */
void wd_api_stop(wd_front *f);  /* closes every connection and frees the server */
/* any thread: queued runs that waited serve.queue_wait_ms (all: every one) start refused,
** with why (NULL: the wait) */
void wd_api_expire(wd_server *s, int all, const char *why);
/* server.c, any thread: the policy snapshot the server serves now; a new reference */
wd_policy *wd_server_policy(wd_server *s);

/* listen.c: n listening sockets on spec (HOST:PORT) sharing the port; the host and the
** port chosen into host_out and *port_out. 0, or -1 with the message in err */
int wd_serve_listen(const char *spec, int *fds, int n, char *host_out, size_t hn, int *port_out, char *err, size_t en);

/* serve.c: runs until SIGTERM or SIGINT; the exit code (0 after a graceful stop, 2 on
** a configuration error, with the message on stderr) */
int wd_serve(const wd_serve_opts *o);

#endif
