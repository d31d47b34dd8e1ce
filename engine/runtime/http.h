/* http.h - HTTP requests over libcurl's multi-socket interface, driven by the engine's
** libevent loop: no thread per request, no blocking transfer on the loop.
**
** Each request has a connect deadline (curl's) and a read deadline of our own, armed
** when the connection is ready and covering the whole response, so a server that
** never answers or trickles a byte a second is cut off on time. Bodies are capped in
** the write callback (a chunked body is not stopped by CURLOPT_MAXFILESIZE). */
#ifndef WD_HTTP_H
#define WD_HTTP_H

#include <event2/event.h>
#include <stddef.h>

typedef struct wd_http wd_http;
typedef struct wd_http_req wd_http_req;

typedef enum {
    WD_HTTP_OK = 0, /* an HTTP answer arrived, whatever its status */
    WD_HTTP_CONNECT_TIMEOUT,
    WD_HTTP_READ_TIMEOUT,
    WD_HTTP_NETWORK,   /* refused, reset, truncated, DNS ... */
    WD_HTTP_TOO_LARGE, /* the body passed max_body */
    WD_HTTP_INVALID    /* the request itself is wrong (URL, protocol) */
} wd_http_fail;

typedef struct wd_http_header {
    char *name; /* lower case */
    char *value;
} wd_http_header;

typedef struct wd_http_resp {
    wd_http_fail fail;
    long status;      /* when fail == WD_HTTP_OK */
    const char *body; /* NUL-terminated; borrowed for the callback */
    size_t len;
    const wd_http_header *headers;
    size_t nheaders;
    long long retry_after_ms; /* from Retry-After (seconds or HTTP date); -1 when absent */
    long long latency_ms;
    const char *error; /* what went wrong, for fail != OK */
} wd_http_resp;

/* resp and everything in it are borrowed for the call; the request is freed after it */
typedef void (*wd_http_done_fn)(const wd_http_resp *resp, void *ud);

typedef struct wd_http_opts {
    const char *method; /* default GET, or POST when there is a body */
    const char *url;
    const char *const *headers; /* "Name: value" */
    size_t nheaders;
    const char *body;
    size_t body_len;
    long long connect_ms; /* DNS + TCP (+TLS) */
    long long read_ms;    /* from the connection ready to the last byte */
    size_t max_body;
    /* set: a stream (an event stream a server keeps open, an answer streamed): each piece
    ** of a 2xx body goes to on_data (with cb's ud) as it arrives and is not kept, and a
    ** nonzero return stops the transfer (cb gets WD_HTTP_NETWORK); no read deadline but
    ** idle_ms, TCP keepalive on; cb still gets its end */
    int (*on_data)(void *ud, const char *p, size_t len);
    long long idle_ms; /* with on_data: the longest wait for the next piece (0: none) */
} wd_http_opts;

/* caller frees with wd_http_free; NULL when libcurl cannot start */
wd_http *wd_http_new(struct event_base *base);
/* cancels what is in flight, without callbacks; accepts NULL */
void wd_http_free(wd_http *h);
/* starts a request; the callback always runs later, from the loop. NULL with err set
** when the request cannot be made at all. */
wd_http_req *wd_http_start(wd_http *h, const wd_http_opts *o, wd_http_done_fn cb, void *ud, char *err, size_t errlen);
/* abandons a request: no callback afterwards. Accepts NULL; not from inside its callback. */
void wd_http_cancel(wd_http_req *q);
/* requests in flight */
size_t wd_http_active(const wd_http *h);

/* the host part of an http(s) URL, lower case, into out; -1 when it is not one */
int wd_http_url_host(const char *url, char *host, size_t hostlen, int *port);

#endif
