/* listen.c - the listening sockets of warden serve: one per worker on the same port
** (SO_REUSEPORT: the kernel spreads connections) */
#include "serve.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* n listening sockets on host:port sharing the port (SO_REUSEPORT); the port chosen in
** *port_out. 0, or -1 with the message in err */
int wd_serve_listen(const char *spec, int *fds, int n, char *host_out, size_t hn, int *port_out, char *err, size_t en)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1]) {
        snprintf(err, en, "--listen wants HOST:PORT (like 127.0.0.1:8080), not '%s'", spec);
        return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8080 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        snprintf(err, en, "--listen: '%s' is not a port", colon + 1);
        return -1;
    }
    for (int i = 0; i < n; i++)
        fds[i] = -1;
    for (int i = 0; i < n; i++) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
        char ps[16];
        snprintf(ps, sizeof ps, "%ld", port);
        int rc = getaddrinfo(host, ps, &hints, &ai);
        if (rc) {
            snprintf(err, en, "--listen %s: %s", spec, gai_strerror(rc));
            goto fail;
        }
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
            snprintf(err, en, "cannot listen on %s: %s", spec, strerror(errno));
            if (fd >= 0)
                close(fd);
            freeaddrinfo(ai);
            goto fail;
        }
        freeaddrinfo(ai);
        fds[i] = fd;
        if (port == 0) { /* the others share the port the first was given */
            union {
                struct sockaddr sa;
                struct sockaddr_in v4;
                struct sockaddr_in6 v6;
            } u;
            memset(&u, 0, sizeof u);
            socklen_t sl = sizeof u;
            if (getsockname(fd, &u.sa, &sl) < 0) {
                snprintf(err, en, "cannot listen on %s: %s", spec, strerror(errno));
                goto fail;
            }
            port = ntohs(u.sa.sa_family == AF_INET6 ? u.v6.sin6_port : u.v4.sin_port);
        }
    }
    snprintf(host_out, hn, "%s", host);
    *port_out = (int)port;
    return 0;
fail:
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return -1;
}
