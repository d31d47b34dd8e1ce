/* tls.h - HTTPS for warden serve (docs/serve.md, TLS): one OpenSSL context for every
** worker, each connection wrapped in an OpenSSL bufferevent that accepts the handshake. */
#ifndef WD_TLS_H
#define WD_TLS_H

#include <stddef.h>

struct evhttp;
typedef struct wd_tls wd_tls;

/* the certificate chain and key (PEM files) loaded and checked against each other; NULL
** with the message in err. Caller frees with wd_tls_free. */
wd_tls *wd_tls_new(const char *cert, const char *key, char *err, size_t errlen);
void wd_tls_free(wd_tls *t); /* accepts NULL */
/* every connection http accepts from now on speaks TLS; t outlives http */
void wd_tls_serve(wd_tls *t, struct evhttp *http);

#endif
