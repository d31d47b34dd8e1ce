/* mcpconn.c - one MCP server over stdio (mcpconn.h) */
#include "mcpconn.h"
#include "jsonrpc.h"
#include "util.h"
#include "http.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct pending {
    long long id;
    wd_mcp_cb cb;
    void *ud;
    long long timeout_ms;
    struct event *timer;
    wd_mcp *m;
    wd_http_req *hreq; /* over HTTP: its POST in flight */
    struct pending *next;
    wd_mcp_progress_fn progress; /* asked with a progressToken: its notifications */
} pending;

struct wd_mcp {
    char *name;
    struct event_base *base;
    pid_t pid;
    int fd_in, fd_out, fd_err, pidfd;
    struct event *ev_in, *ev_out, *ev_err, *ev_exit;
    wd_buf out;      /* what waits to be written to its stdin */
    size_t out_done; /* of out, written */
    wd_rpc_reader rd;
    wd_buf err_tail;
    size_t err_cap;
    int log_fd;     /* its stderr's log file, or -1 */
    char *log_path; /* rotated to PATH.1 past WD_MCP_LOG_CAP */
    long long log_size;
    long garbage;
    long long next_id;
    pending *pend;
    int running;
    wd_mcp_notify_fn notify;
    wd_mcp_exit_fn on_exit;
    void *ud;
    /* Streamable HTTP (wd_mcp_connect): every message a POST to url */
    char *url;
    char **headers; /* "Name: value", the policy's */
    size_t nheaders;
    char *session; /* Mcp-Session-Id, once the server gave one */
    wd_http *client;
    wd_http_req *listen;        /* the server's own event stream (GET), while open */
    struct event *listen_timer; /* its reopening, armed after it ended */
    wd_buf ev_line, ev_data;    /* the stream's line not yet whole, its event's data so far */
    int listen_tries;           /* reopenings in a row without an event */
    int no_stream;              /* the server has none (405): not asked again */
    char version[16];           /* the protocol version agreed at initialize */
};

/* ---- the child ------------------------------------------------------------- */

/* in the child: its own process group, the pipes as 0-2, a bare environment; never returns */
static void child(const wd_mcp_opts *o, int in, int out, int err)
{
    setpgid(0, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(127);
    syscall(SYS_close_range, 3, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    if (o->cwd && chdir(o->cwd) < 0) {
        dprintf(2, "warden: mcp server %s: cannot enter %s: %s\n", o->name, o->cwd, strerror(errno));
        _exit(127);
    }
    static char path[] = "PATH=/usr/local/bin:/usr/bin:/bin", lang[] = "LANG=C.UTF-8";
    char home[4200];
    const char *h = getenv("HOME");
    snprintf(home, sizeof home, "HOME=%s", h ? h : "/nonexistent");
    size_t n = 0;
    while (o->env && o->env[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        _exit(127);
    size_t k = 0;
    env[k++] = path;
    env[k++] = home;
    env[k++] = lang;
    for (size_t i = 0; i < n; i++)
        env[k++] = o->env[i];
    execvpe(o->argv[0], o->argv, env);
    dprintf(2, "warden: mcp server %s: cannot run %s: %s\n", o->name, o->argv[0], strerror(errno));
    _exit(127);
}

/* ---- pending requests ---------------------------------------------------------- */

static pending *take(wd_mcp *m, long long id)
{
    for (pending **pp = &m->pend; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            pending *p = *pp;
            *pp = p->next;
            return p;
        }
    return NULL;
}

/* p (taken out of the list) answered: its timer gone, its callback called, freed */
static void settle(pending *p, json_t *result, const char *error)
{
    if (p->timer)
        event_free(p->timer);
    wd_http_cancel(p->hreq); /* over HTTP, a POST whose answer nobody waits for now */
    p->cb(p->ud, result, error);
    free(p);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending *p = arg;
    char why[120];
    snprintf(why, sizeof why, "timed out after %lld ms", p->timeout_ms);
    wd_mcp_cancel(p->m, p->id, why);
}

static void fail_all(wd_mcp *m, const char *why)
{
    while (m->pend) {
        pending *p = m->pend;
        m->pend = p->next;
        settle(p, NULL, why);
    }
}

/* ---- writing ------------------------------------------------------------------ */

static void flush_out(wd_mcp *m)
{
    while (m->fd_in >= 0 && m->out_done < m->out.len) {
        ssize_t w = write(m->fd_in, m->out.p + m->out_done, m->out.len - m->out_done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            event_add(m->ev_in, NULL);
            return;
        }
        if (w < 0) { /* it closed its stdin: what we had to say is lost, its end will tell */
            m->out.len = m->out_done = 0;
            return;
        }
        m->out_done += (size_t)w;
    }
    m->out.len = m->out_done = 0;
    event_del(m->ev_in);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_out(arg);
}

static int post(wd_mcp *m, json_t *msg, pending *p);

static int send_msg(wd_mcp *m, json_t *msg)
{
    if (m->url)
        return post(m, msg, NULL);
    int rc = m->running && wd_rpc_write(&m->out, msg) == 0 ? 0 : -1;
    json_decref(msg);
    if (rc == 0)
        flush_out(m);
    return rc;
}

/* ---- reading ------------------------------------------------------------------ */

/* a request from the server: ping is answered, anything else is not supported */
static void answer(wd_mcp *m, json_t *id, const char *method)
{
    json_t *r = !strcmp(method, "ping")
                    ? json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", id, "result")
                    : json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code", -32601, "message",
                                "warden does not offer this to MCP servers");
    send_msg(m, r);
}

/* a request's progress, to whoever asked with that token; others' are ignored */
static void progressed(wd_mcp *m, json_t *params)
{
    json_t *token = json_object_get(params, "progressToken");
    for (pending *p = m->pend; p && json_is_integer(token); p = p->next)
        if (p->id == json_integer_value(token)) {
            if (p->progress && json_is_number(json_object_get(params, "progress")))
                p->progress(p->ud, params);
            return;
        }
}

static void on_line(void *ud, int kind, json_t *msg, const char *why)
{
    wd_mcp *m = ud;
    (void)why;
    if (kind != WD_RPC_MESSAGE) {
        m->garbage++;
        return;
    }
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method) {
        if (id && !json_is_null(id))
            answer(m, id, method);
        else if (!strcmp(method, "notifications/progress"))
            progressed(m, json_object_get(msg, "params"));
        else if (m->notify)
            m->notify(m->ud, method, json_object_get(msg, "params"));
        return;
    }
    pending *p = json_is_integer(id) ? take(m, json_integer_value(id)) : NULL;
    if (!p) {
        m->garbage++; /* an answer to nothing we asked */
        return;
    }
    json_t *result = NULL;
    char err[600];
    int r = wd_rpc_response(msg, &result, err, sizeof err);
    settle(p, r == 1 ? result : NULL, r == 1 ? NULL : r == 0 ? err : "an answer with neither result nor error");
}

static void on_stdout(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    wd_mcp *m = arg;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        wd_rpc_feed(&m->rd, buf, (size_t)n, on_line, m);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        event_del(m->ev_out); /* its end (the pidfd) says the rest */
    }
}

/* the log of its stderr: appended, and rotated to PATH.1 past WD_MCP_LOG_CAP (one older
** file kept) */
static void log_stderr(wd_mcp *m, const char *p, size_t n)
{
    if (m->log_fd < 0)
        return;
    if (m->log_size + (long long)n > WD_MCP_LOG_CAP) {
        char old[4200];
        snprintf(old, sizeof old, "%s.1", m->log_path);
        close(m->log_fd);
        rename(m->log_path, old);
        m->log_fd = open(m->log_path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        wd_file_own_like_dir(m->log_fd, m->log_path);
        m->log_size = 0;
        if (m->log_fd < 0)
            return;
    }
    ssize_t w = write(m->log_fd, p, n);
    if (w > 0)
        m->log_size += w;
}

static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    wd_mcp *m = arg;
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            event_del(m->ev_err);
        return;
    }
    wd_buf_add(&m->err_tail, buf, (size_t)n);
    log_stderr(m, buf, (size_t)n);
    if (m->err_tail.len > m->err_cap) { /* keep the tail */
        size_t cut = m->err_tail.len - m->err_cap;
        memmove(m->err_tail.p, m->err_tail.p + cut, m->err_tail.len - cut + 1);
        m->err_tail.len -= cut;
    }
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_mcp *m = arg;
    int status = 0;
    if (waitpid(m->pid, &status, WNOHANG) <= 0)
        return;
    on_stderr(m->fd_err, 0, m); /* its last words */
    m->running = 0;
    char how[200];
    if (WIFEXITED(status))
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    char why[600];
    /* its last line on stderr says the most */
    const char *tail = wd_mcp_stderr(m);
    size_t tl = strlen(tail);
    while (tl && (tail[tl - 1] == '\n' || tail[tl - 1] == '\r'))
        tl--;
    const char *last = tail + tl;
    while (last > tail && last[-1] != '\n')
        last--;
    snprintf(why, sizeof why, "mcp server %s %s%s%.*s", m->name, how, tl ? ": " : "", (int)(tail + tl - last), last);
    fail_all(m, why);
    if (m->on_exit)
        m->on_exit(m->ud, why);
}

/* ---- the interface ------------------------------------------------------------- */

static int watch(wd_mcp *m)
{
    m->ev_in = event_new(m->base, m->fd_in, EV_WRITE, on_writable, m);
    m->ev_out = event_new(m->base, m->fd_out, EV_READ | EV_PERSIST, on_stdout, m);
    m->ev_err = event_new(m->base, m->fd_err, EV_READ | EV_PERSIST, on_stderr, m);
    m->ev_exit = event_new(m->base, m->pidfd, EV_READ, on_exit_ev, m);
    if (!m->ev_in || !m->ev_out || !m->ev_err || !m->ev_exit)
        return -1;
    event_add(m->ev_out, NULL);
    event_add(m->ev_err, NULL);
    event_add(m->ev_exit, NULL);
    return 0;
}

wd_mcp *wd_mcp_spawn(struct event_base *b, const wd_mcp_opts *o, char *err, size_t n)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    wd_mcp *m = calloc(1, sizeof *m);
    if (!m || !o->argv || !o->argv[0]) {
        snprintf(err, n, "mcp server %s: no command", o->name);
        free(m);
        return NULL;
    }
    struct sigaction sa; /* a server that closes its stdin must not kill us with SIGPIPE */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    m->name = wd_strdup(o->name ? o->name : "?");
    m->base = b;
    m->fd_in = m->fd_out = m->fd_err = m->pidfd = -1;
    m->rd.max_line = o->max_line ? o->max_line : 8u << 20;
    m->err_cap = o->stderr_cap ? o->stderr_cap : 64u << 10;
    m->next_id = 1;
    m->log_fd = -1;
    if (o->stderr_log) {
        m->log_path = wd_strdup(o->stderr_log);
        m->log_fd = open(o->stderr_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        wd_file_own_like_dir(m->log_fd, o->stderr_log);
        struct stat st;
        m->log_size = m->log_fd >= 0 && fstat(m->log_fd, &st) == 0 ? (long long)st.st_size : 0;
    }
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
        goto fail;
    m->pid = fork();
    if (m->pid < 0)
        goto fail;
    if (m->pid == 0)
        child(o, pin[0], pout[1], perr[1]);
    setpgid(m->pid, m->pid); /* both sides: no race with the kill of its group */
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    m->fd_in = pin[1];
    m->fd_out = pout[0];
    m->fd_err = perr[0];
    pin[0] = pin[1] = pout[0] = pout[1] = perr[0] = perr[1] = -1;
    m->running = 1;
    m->pidfd = (int)syscall(SYS_pidfd_open, m->pid, 0);
    fcntl(m->fd_in, F_SETFL, O_NONBLOCK);
    fcntl(m->fd_out, F_SETFL, O_NONBLOCK);
    fcntl(m->fd_err, F_SETFL, O_NONBLOCK);
    if (m->pidfd < 0 || watch(m) < 0)
        goto fail;
    return m;
fail:
    snprintf(err, n, "mcp server %s: cannot start %s: %s", m->name, o->argv[0], strerror(errno));
    int fds[6] = {pin[0], pin[1], pout[0], pout[1], perr[0], perr[1]};
    for (int i = 0; i < 6; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    wd_mcp_free(m);
    return NULL;
}

void wd_mcp_on(wd_mcp *m, wd_mcp_notify_fn notify, wd_mcp_exit_fn on_exit, void *ud)
{
    if (!m)
        return;
    m->notify = notify;
    m->on_exit = on_exit;
    m->ud = ud;
}

long long wd_mcp_request(wd_mcp *m, const char *method, json_t *params, long long timeout_ms, wd_mcp_cb cb, void *ud)
{
    return wd_mcp_request_progress(m, method, params, timeout_ms, cb, NULL, ud);
}

long long wd_mcp_request_progress(wd_mcp *m, const char *method, json_t *params, long long timeout_ms, wd_mcp_cb cb,
                                  wd_mcp_progress_fn progress, void *ud)
{
    pending *p = m->running ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        json_decref(params);
        return -1;
    }
    *p = (pending){m->next_id++, cb, ud, timeout_ms, NULL, m, NULL, m->pend, progress};
    json_t *msg = json_pack("{s:s,s:I,s:s}", "jsonrpc", "2.0", "id", (json_int_t)p->id, "method", method);
    if (progress && json_is_object(params)) { /* its token is its id */
        json_t *meta = json_object_get(params, "_meta");
        if (!json_is_object(meta))
            json_object_set_new(params, "_meta", meta = json_object());
        json_object_set_new(meta, "progressToken", json_integer((json_int_t)p->id));
    }
    if (params)
        json_object_set_new(msg, "params", params);
    if ((m->url ? post(m, msg, p) : send_msg(m, msg)) < 0) {
        free(p);
        return -1;
    }
    m->pend = p;
    if (timeout_ms > 0 && (p->timer = evtimer_new(m->base, on_timeout, p))) {
        struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
        evtimer_add(p->timer, &tv);
    }
    return p->id;
}

int wd_mcp_notify(wd_mcp *m, const char *method, json_t *params)
{
    json_t *msg = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", method);
    if (params)
        json_object_set_new(msg, "params", params);
    return send_msg(m, msg);
}

void wd_mcp_cancel(wd_mcp *m, long long id, const char *why)
{
    pending *p = take(m, id);
    if (!p)
        return;
    wd_mcp_notify(m, "notifications/cancelled",
                  json_pack("{s:I,s:s}", "requestId", (json_int_t)id, "reason", why ? why : "cancelled"));
    settle(p, NULL, why ? why : "cancelled");
}

int wd_mcp_running(const wd_mcp *m) { return m && m->running; }
const char *wd_mcp_stderr(const wd_mcp *m) { return m->err_tail.p ? m->err_tail.p : ""; }
long wd_mcp_garbage(const wd_mcp *m) { return m->garbage; }
int wd_mcp_pid(const wd_mcp *m) { return (int)m->pid; }

void wd_mcp_free(wd_mcp *m)
{
    if (!m)
        return;
    if (m->running && m->pid > 0) { /* its whole group: a server's own children too */
        kill(-m->pid, SIGTERM);
        for (int i = 0; i < 50 && waitpid(m->pid, NULL, WNOHANG) == 0; i++)
            usleep(2000);
        kill(-m->pid, SIGKILL);
        waitpid(m->pid, NULL, 0);
        m->running = 0;
    }
    char why[200];
    snprintf(why, sizeof why, "mcp server %s: closed", m->name ? m->name : "?");
    fail_all(m, why);
    struct event *evs[4] = {m->ev_in, m->ev_out, m->ev_err, m->ev_exit};
    for (int i = 0; i < 4; i++)
        if (evs[i])
            event_free(evs[i]);
    int fds[4] = {m->fd_in, m->fd_out, m->fd_err, m->pidfd};
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    wd_http_free(m->client); /* after fail_all: each POST cancelled with its request */
    if (m->listen_timer)
        event_free(m->listen_timer);
    wd_buf_free(&m->ev_line);
    wd_buf_free(&m->ev_data);
    if (m->log_fd >= 0)
        close(m->log_fd);
    free(m->log_path);
    for (size_t i = 0; i < m->nheaders; i++)
        free(m->headers[i]);
    free(m->headers);
    free(m->url);
    free(m->session);
    wd_buf_free(&m->out);
    wd_buf_free(&m->err_tail);
    wd_rpc_reader_free(&m->rd);
    free(m->name);
    free(m);
}

/* ---- Streamable HTTP ------------------------------------------------------------ */

/* ** Streamable HTTP (MCP 2025-06-18): each message a POST of its own; the answer is
** application/json (one message) or text/event-stream (events whose data are messages,
** the response among them); a notification gets 202. The session the server names in
** Mcp-Session-Id at initialize goes with every later POST, with the protocol version.
** Once initialized, the server's own stream (GET) is opened for what it says unasked
** (wd_mcp_listen): reopened after it ends, 0.5 s, 1 s ... up to 30 s later, unless the
** server has none (405). */

/* the data of each SSE event in body, as messages */
static void sse_messages(wd_mcp *m, const char *body, size_t len)
{
    wd_buf data = {0};
    const char *end = body + len;
    for (const char *line = body; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0) { /* an event ends */
            if (data.len) {
                wd_rpc_feed(&m->rd, data.p, data.len, on_line, m);
                wd_rpc_feed(&m->rd, "\n", 1, on_line, m);
            }
            data.len = 0;
        } else if (n >= 5 && !strncmp(line, "data:", 5)) {
            const char *v = line + 5 + (n > 5 && line[5] == ' ');
            wd_buf_add(&data, v, (size_t)(line + n - v));
        }
        line = nl ? nl + 1 : end;
    }
    if (data.len) { /* the last event, without its blank line */
        wd_rpc_feed(&m->rd, data.p, data.len, on_line, m);
        wd_rpc_feed(&m->rd, "\n", 1, on_line, m);
    }
    wd_buf_free(&data);
}

/* the messages of a POST's answer: their responses settle what they answer */
static void read_answer(wd_mcp *m, const wd_http_resp *resp)
{
    const char *type = "";
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (!strcmp(resp->headers[i].name, "mcp-session-id") && !m->session)
            m->session = wd_strdup(resp->headers[i].value);
        if (!strcmp(resp->headers[i].name, "content-type"))
            type = resp->headers[i].value;
    }
    if (!strncmp(type, "text/event-stream", 17)) {
        sse_messages(m, resp->body, resp->len);
    } else if (resp->len) {
        wd_rpc_feed(&m->rd, resp->body, resp->len, on_line, m);
        wd_rpc_feed(&m->rd, "\n", 1, on_line, m);
    }
}

/* a request's POST answered (p is still pending: a settled one's POST is cancelled) */
static void on_posted(const wd_http_resp *resp, void *ud)
{
    pending *p = ud;
    wd_mcp *m = p->m;
    long long id = p->id;
    p->hreq = NULL; /* done: nothing to cancel */
    char why[400];
    if (resp->fail != WD_HTTP_OK) {
        snprintf(why, sizeof why, "%s", resp->error ? resp->error : "the request failed");
    } else if (resp->status >= 200 && resp->status < 300) {
        read_answer(m, resp); /* may settle p */
        snprintf(why, sizeof why, "the answer held no response to request %lld", id);
    } else {
        snprintf(why, sizeof why, "HTTP %ld: %.200s", resp->status, resp->body ? resp->body : "");
    }
    if ((p = take(m, id))) /* still here: nothing answered it */
        settle(p, NULL, why);
}

/* a notification's POST answered (202, or messages to read) */
static void on_noted(const wd_http_resp *resp, void *ud)
{
    if (resp->fail == WD_HTTP_OK && resp->status >= 200 && resp->status < 300)
        read_answer(ud, resp);
}

/* one line of the server's stream: data lines gather, a blank line hands the event's
** data to the reader (a line or data longer than its cap is dropped, counted) */
static void stream_line(wd_mcp *m, const char *line, size_t n)
{
    if (n && line[n - 1] == '\r')
        n--;
    if (n == 0) {
        if (m->ev_data.len) {
            wd_rpc_feed(&m->rd, m->ev_data.p, m->ev_data.len, on_line, m);
            wd_rpc_feed(&m->rd, "\n", 1, on_line, m);
            m->listen_tries = 0;
        }
        m->ev_data.len = 0;
    } else if (n >= 5 && !strncmp(line, "data:", 5)) {
        const char *v = line + 5 + (n > 5 && line[5] == ' ');
        if (m->ev_data.len + n > m->rd.max_line) {
            m->garbage++;
            m->ev_data.len = 0;
        } else
            wd_buf_add(&m->ev_data, v, (size_t)(line + n - v));
    }
}

static int on_stream_data(void *ud, const char *p, size_t len)
{
    wd_mcp *m = ud;
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (m->ev_line.len + n > m->rd.max_line) { /* a line without end: dropped */
            m->garbage++;
            m->ev_line.len = 0;
        } else
            wd_buf_add(&m->ev_line, p, n);
        if (!nl)
            return 0;
        stream_line(m, m->ev_line.p ? m->ev_line.p : "", m->ev_line.len);
        m->ev_line.len = 0;
        p = nl + 1;
    }
    return 0;
}

/* the headers of a request to the server into hs (64): accept (and type), then its
** session and the version agreed once it has one, then the policy's; sid and pv hold the
** text of two. The count. */
static size_t request_headers(wd_mcp *m, const char **hs, const char *accept, const char *type, char sid[300],
                              char pv[64])
{
    size_t n = 0;
    if (type)
        hs[n++] = type;
    hs[n++] = accept;
    if (m->session) {
        snprintf(sid, 300, "Mcp-Session-Id: %.250s", m->session);
        snprintf(pv, 64, "MCP-Protocol-Version: %s", m->version[0] ? m->version : "2025-06-18");
        hs[n++] = sid;
        hs[n++] = pv;
    }
    for (size_t i = 0; i < m->nheaders && n < 64; i++)
        hs[n++] = m->headers[i];
    return n;
}

static void open_stream(wd_mcp *m);

static void on_reopen(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    open_stream(arg);
}

/* the stream ended: reopened later, unless the server has none */
static void on_stream_end(const wd_http_resp *resp, void *ud)
{
    wd_mcp *m = ud;
    m->listen = NULL;
    m->ev_line.len = m->ev_data.len = 0;
    if (resp->fail == WD_HTTP_OK && (resp->status == 405 || resp->status == 404 || resp->status == 400)) {
        m->no_stream = 1; /* none, or not for this session */
        return;
    }
    long long delay = 500LL << (m->listen_tries < 6 ? m->listen_tries : 6);
    if (delay > 30000)
        delay = 30000;
    m->listen_tries++;
    if (!m->listen_timer)
        m->listen_timer = evtimer_new(m->base, on_reopen, m);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    if (m->listen_timer)
        evtimer_add(m->listen_timer, &tv);
}

static void open_stream(wd_mcp *m)
{
    if (!m->url || m->listen || m->no_stream || !m->running)
        return;
    const char *hs[64];
    char sid[300], pv[64];
    size_t n = request_headers(m, hs, "Accept: text/event-stream", NULL, sid, pv);
    wd_http_opts o = {.method = "GET",
                      .url = m->url,
                      .headers = hs,
                      .nheaders = n,
                      .connect_ms = 5000,
                      .max_body = 65536,
                      .on_data = on_stream_data};
    char err[300];
    m->listen = wd_http_start(m->client, &o, on_stream_end, m, err, sizeof err);
}

void wd_mcp_agreed(wd_mcp *m, const char *version)
{
    if (m && version)
        wd_strlcpy(m->version, version, sizeof m->version);
}

void wd_mcp_listen(wd_mcp *m)
{
    if (m)
        open_stream(m);
}

static int post(wd_mcp *m, json_t *msg, pending *p)
{
    wd_buf body = {0};
    int rc = wd_rpc_write(&body, msg);
    json_decref(msg);
    if (rc < 0) {
        wd_buf_free(&body);
        return -1;
    }
    const char *hs[64];
    char sid[300], pv[64];
    size_t n = request_headers(m, hs, "Accept: application/json, text/event-stream", "Content-Type: application/json",
                               sid, pv);
    wd_http_opts o = {.method = "POST",
                      .url = m->url,
                      .headers = hs,
                      .nheaders = n,
                      .body = body.p,
                      .body_len = body.len,
                      .connect_ms = 5000,
                      .read_ms = p && p->timeout_ms > 0 ? p->timeout_ms + 1000 : 30000,
                      .max_body = m->rd.max_line};
    char err[300];
    wd_http_req *q = p ? wd_http_start(m->client, &o, on_posted, p, err, sizeof err)
                       : wd_http_start(m->client, &o, on_noted, m, err, sizeof err);
    wd_buf_free(&body);
    if (!q)
        return -1;
    if (p)
        p->hreq = q;
    return 0;
}

wd_mcp *wd_mcp_connect(struct event_base *b, const wd_mcp_opts *o, char *err, size_t n)
{
    wd_mcp *m = calloc(1, sizeof *m);
    if (m) /* before any free: no descriptor of ours is 0 */
        m->fd_in = m->fd_out = m->fd_err = m->pidfd = m->log_fd = -1;
    if (!m || !o->url || !(m->client = wd_http_new(b))) {
        snprintf(err, n, "mcp server %s: %s", o->name, m && !o->url ? "no url" : "cannot start libcurl");
        wd_mcp_free(m);
        return NULL;
    }
    m->name = wd_strdup(o->name ? o->name : "?");
    m->base = b;
    m->fd_in = m->fd_out = m->fd_err = m->pidfd = m->log_fd = -1;
    m->rd.max_line = o->max_line ? o->max_line : 8u << 20;
    m->err_cap = 1;
    m->next_id = 1;
    m->url = wd_strdup(o->url);
    for (size_t i = 0; o->headers && o->headers[i]; i++)
        m->nheaders++;
    m->headers = calloc(m->nheaders + 1, sizeof *m->headers);
    for (size_t i = 0; m->headers && i < m->nheaders; i++)
        m->headers[i] = wd_strdup(o->headers[i]);
    m->running = 1; /* a server over HTTP is reachable until a request says otherwise */
    return m;
}
