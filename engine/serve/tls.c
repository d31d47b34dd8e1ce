/* tls.c - HTTPS for warden serve (tls.h) */
#include "tls.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wd_tls {
    SSL_CTX *ctx;
};

/* OpenSSL's last error, or what we were doing */
static void ssl_err(char *err, size_t n, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, n, "%s %s: %s", what, path, e ? buf : "failed");
    ERR_clear_error();
}

wd_tls *wd_tls_new(const char *cert, const char *key, char *err, size_t errlen)
{
    wd_tls *t = calloc(1, sizeof *t);
    if (!t || !(t->ctx = SSL_CTX_new(TLS_server_method()))) {
        snprintf(err, errlen, "TLS: out of memory");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
        ssl_err(err, errlen, "--tls-cert", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(t->ctx) != 1) {
        ssl_err(err, errlen, "--tls-key", key);
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (is it the key of --tls-cert %s?)", cert);
        goto fail;
    }
    return t;
fail:
    wd_tls_free(t);
    return NULL;
}

void wd_tls_free(wd_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* evhttp's hook for a new connection: its socket wrapped in TLS (NULL: evhttp drops it) */
static struct bufferevent *wrap(struct event_base *base, void *arg)
{
    wd_tls *t = arg;
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        SSL_free(ssl);
    return bev;
}

void wd_tls_serve(wd_tls *t, struct evhttp *http)
{
    if (t)
        evhttp_set_bevcb(http, wrap, t);
}
