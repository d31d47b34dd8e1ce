/* exec.c - ctx:exec{argv=, stdin=, timeout_ms=} for tools of category execute.
**
** The command runs under bubblewrap: every namespace unshared (no network: its own
** loopback only), a root of its own holding /usr and the loader cache read-only, /proc,
** /dev, a private /tmp, and the tool's allowed_resources read-only and
** writable_resources read-write; nothing else of the host. Before bwrap starts, the
** child takes the policy's rlimits (CPU, address space, processes, file size) and,
** when warden runs as root, the uid of nobody: root is exempt from RLIMIT_NPROC, so a
** fork bomb would not be contained otherwise. The wall timeout kills the whole tree
** (bwrap's pid namespace dies with it); output beyond the cap is dropped and flagged.
** The command's end is a value {exit_code, signal, stdout, stderr, timed_out,
** truncated}; a refusal or a failure to start is (nil, message). */
#include "exec.h"
#include "settle.h"
#include "fetch.h"
#include "guard.h"
#include "jail.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXEC_MAX_ARGS       256
#define EXEC_MAX_ARGV_BYTES 65536
#define EXEC_MAX_STDIN      (1u << 20)
#define EXEC_UID            65534 /* nobody: who commands run as when warden is root */

/* ctx:exec in flight: a run makes it on its first command (r->exec) */
struct wd_exec_state {
    char **argv;   /* bwrap's command line */
    char *cmd;     /* the command's argv joined by spaces */
    json_t *jargv; /* the command's argv, for the audit record */
    char *in;
    size_t in_len, in_off, cap;
    long long timeout_ms, limits[4]; /* cpu_s, memory_mb, procs, file_mb */
    int pid, pidfd, fd_in, fd_out, fd_err;
    struct event *ev_in, *ev_out, *ev_err, *ev_exit, *timer;
    wd_buf out, err;
    int truncated, timed_out;
    int64_t t0;
};

static void exec_clear(wd_run *r)
{
    struct event *evs[4] = {r->exec->ev_in, r->exec->ev_out, r->exec->ev_err, r->exec->ev_exit};
    for (int i = 0; i < 4; i++)
        if (evs[i])
            event_free(evs[i]);
    if (r->exec->timer)
        event_free(r->exec->timer);
    int fds[4] = {r->exec->fd_in, r->exec->fd_out, r->exec->fd_err, r->exec->pidfd};
    for (int i = 0; i < 4; i++)
        if (fds[i] > 0)
            close(fds[i]);
    wd_jail_free(r->exec->argv);
    free(r->exec->in);
    free(r->exec->cmd);
    wd_buf_free(&r->exec->out);
    wd_buf_free(&r->exec->err);
    memset(r->exec, 0, sizeof *r->exec);
}

/* kills the sandbox (bwrap's pid namespace goes with it) and reaps it */
static void kill_child(wd_run *r)
{
    if (r->exec->pid > 0) {
        kill(-r->exec->pid, SIGKILL);
        kill(r->exec->pid, SIGKILL);
        waitpid(r->exec->pid, NULL, 0); /* SIGKILL: at once */
    }
    r->exec->pid = 0;
}

void wd_exec_cancel(wd_run *r, const char *why)
{
    (void)why;
    if (!r->exec)
        return;
    kill_child(r);
    json_decref(r->exec->jargv);
    exec_clear(r);
}

static int refuse(wd_run *r, lua_State *L, json_t *args, const char *msg, const char *type, const char *severity)
{
    wd_run_audit_guardrail(r, args, msg, type, severity);
    luaL_pushfail(L);
    lua_pushstring(L, msg);
    return 2;
}

/* processes of uid now (RLIMIT_NPROC counts them all, ours included) */
static long count_procs(uid_t uid)
{
    DIR *d = opendir("/proc");
    long n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && st.st_uid == uid)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* opts.argv (at stack index 3 once read) checked: its length; raises on a bad one */
static lua_Integer read_argv(lua_State *L)
{
    if (lua_getfield(L, 2, "argv") != LUA_TTABLE)
        luaL_error(L, "ctx:exec: argv must be a list of strings");
    lua_Integer argc = luaL_len(L, -1);
    if (argc < 1 || argc > EXEC_MAX_ARGS)
        luaL_error(L, "ctx:exec: argv must hold 1 to %d strings", EXEC_MAX_ARGS);
    size_t total = 0;
    for (lua_Integer i = 1; i <= argc; i++) {
        size_t l;
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
            luaL_error(L, "ctx:exec: argv[%d] must be a string", (int)i);
        const char *s = lua_tolstring(L, -1, &l);
        if (strlen(s) != l)
            luaL_error(L, "ctx:exec: argv[%d] holds a NUL byte", (int)i);
        total += l + 1;
        lua_pop(L, 1);
    }
    if (total > EXEC_MAX_ARGV_BYTES)
        luaL_error(L, "ctx:exec: argv is longer than %d bytes", EXEC_MAX_ARGV_BYTES);
    return argc;
}

/* the command refused by the tool's policy (not of category execute, or a forbidden
** pattern over the joined command): the refusal pushed, its count returned (takes jargv);
** 0 when allowed */
static int policy_refuses(wd_run *r, lua_State *L, const wd_tool_policy *tp, const wd_buf *joined, json_t *jargv)
{
    char msg[700];
    if (!tp || !tp->category || strcmp(tp->category, "execute")) {
        snprintf(msg, sizeof msg, "ctx:exec: tool '%s' is not of category execute in the policy", r->tool.name);
        return refuse(r, L, json_pack("{s:o}", "argv", jargv), msg, "exec_not_allowed", "high");
    }
    for (size_t i = 0; i < tp->forbidden.n; i++)
        if (wd_rx_match(tp->forbidden.v[i], joined->p ? joined->p : "", joined->len) != 0) {
            snprintf(msg, sizeof msg, "ctx:exec: the command matches forbidden pattern '%s'",
                     wd_rx_source(tp->forbidden.v[i]));
            return refuse(r, L, json_pack("{s:o}", "argv", jargv), msg, "forbidden_pattern", "critical");
        }
    return 0;
}

/* bwrap's command line for argv (at stack index 3); caller frees (free_argv); NULL when
** out of memory or without bubblewrap (*bw NULL then) */
static char **bwrap_argv(wd_run *r, lua_State *L, lua_Integer argc, const wd_tool_policy *tp, const char **bw)
{
    *bw = wd_jail_bwrap();
    char **cmd = calloc((size_t)argc + 1, sizeof *cmd);
    for (lua_Integer i = 1; cmd && i <= argc; i++) {
        lua_rawgeti(L, 3, i);
        cmd[i - 1] = wd_strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    /* the agent's directory is the working directory (empty but for the bound resources) */
    wd_jail j = {
        &tp->allowed_resources, &tp->writable_resources, r->agent_dir, r->agent_dir ? r->agent_dir : ".", 0, 1};
    char **argv = *bw && cmd ? wd_jail_argv(*bw, &j, cmd) : NULL;
    wd_jail_free(cmd);
    return argv;
}

int wd_exec_call(wd_run *r, lua_State *L)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!r->tool.active)
        return luaL_error(L, "ctx:exec is for tools");
    if (!r->exec && !(r->exec = calloc(1, sizeof *r->exec)))
        return luaL_error(L, "ctx:exec: out of memory");
    lua_Integer argc = read_argv(L);
    size_t in_len = 0;
    const char *in = NULL;
    int it = lua_getfield(L, 2, "stdin");
    if (it == LUA_TSTRING)
        in = lua_tolstring(L, -1, &in_len);
    else if (it != LUA_TNIL)
        return luaL_error(L, "ctx:exec: stdin must be a string");
    if (in_len > EXEC_MAX_STDIN)
        return luaL_error(L, "ctx:exec: stdin is longer than %u bytes", EXEC_MAX_STDIN);
    lua_Integer timeout = wd_tool_timeout_opt(r, L, 2, "ctx:exec");
    /* stack: ctx, opts, argv, stdin. Nothing below raises. */
    json_t *jargv = json_array();
    wd_buf joined = {0};
    for (lua_Integer i = 1; i <= argc; i++) {
        lua_rawgeti(L, 3, i);
        json_array_append_new(jargv, json_string(lua_tostring(L, -1)));
        if (i > 1)
            wd_buf_add(&joined, " ", 1);
        wd_buf_adds(&joined, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    wd_policy *p = wd_engine_policy(r->eng);
    const wd_tool_policy *tp = wd_policy_tool(p, r->tool.name);
    const char *bw = NULL;
    char **argv = NULL;
    int rc = policy_refuses(r, L, tp, &joined, jargv);
    if (!rc && !(argv = bwrap_argv(r, L, argc, tp, &bw))) {
        json_decref(jargv);
        luaL_pushfail(L);
        lua_pushstring(L, bw ? "ctx:exec: out of memory"
                             : "ctx:exec needs bubblewrap (bwrap), which is not installed: apt-get install bubblewrap");
        rc = 2;
    }
    if (rc) {
        wd_buf_free(&joined);
        wd_policy_unref(p);
        return rc;
    }
    wd_exec_cancel(r, NULL);
    r->exec->argv = argv;
    r->exec->cmd = joined.p; /* owned now */
    r->exec->jargv = jargv;
    if (in_len && (r->exec->in = malloc(in_len)))
        memcpy(r->exec->in, in, in_len);
    r->exec->in_len = r->exec->in ? in_len : 0;
    r->exec->timeout_ms = timeout;
    r->exec->cap = (size_t)p->exec_output_kb * 1024;
    r->exec->limits[0] = p->exec_cpu_s;
    r->exec->limits[1] = p->exec_memory_mb;
    r->exec->limits[2] = p->exec_procs;
    r->exec->limits[3] = p->exec_file_mb;
    r->req.kind = OP_EXEC;
    wd_policy_unref(p);
    return wd_sandbox_yield(L);
}

/* ---- the process on the loop ------------------------------------------------------- */

static void finish(wd_run *r, const char *fail);

static json_t *exec_record(wd_run *r, int ok, int code, int sig, const char *error)
{
    json_t *ev = wd_run_event(r, WD_AE_EXEC, ok);
    json_object_set_new(ev, "tool_name", json_string(r->tool.name));
    json_object_set_new(ev, "tool_args",
                        json_pack("{s:O,s:I}", "argv", r->exec->jargv ? r->exec->jargv : json_null(), "stdin_bytes",
                                  (json_int_t)r->exec->in_len));
    json_object_set_new(ev, "agent_step", json_integer(r->steps));
    json_object_set_new(ev, "latency_ms", json_integer((wd_now_ns() - r->exec->t0) / 1000000));
    if (code >= 0)
        json_object_set_new(ev, "exit_code", json_integer(code));
    if (sig > 0)
        json_object_set_new(ev, "signal", json_integer(sig));
    if (r->exec->timed_out)
        json_object_set_new(ev, "timed_out", json_true());
    if (r->exec->truncated)
        json_object_set_new(ev, "tool_result_truncated", json_true());
    if (error)
        json_object_set_new(ev, "error", json_string(error));
    return ev;
}

/* reads what fd has; 1 at EOF or error, 0 more may come */
static int drain(wd_run *r, int fd, wd_buf *b)
{
    char chunk[16384];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got > 0) {
            size_t room = b->len < r->exec->cap ? r->exec->cap - b->len : 0;
            size_t keep = (size_t)got < room ? (size_t)got : room;
            if (keep < (size_t)got)
                r->exec->truncated = 1;
            if (keep)
                wd_buf_add(b, chunk, keep);
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        return 1;
    }
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    wd_run *r = arg;
    int is_out = fd == r->exec->fd_out;
    if (drain(r, fd, is_out ? &r->exec->out : &r->exec->err)) {
        event_del(is_out ? r->exec->ev_out : r->exec->ev_err);
        close(fd);
        if (is_out)
            r->exec->fd_out = -1;
        else
            r->exec->fd_err = -1;
    }
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    wd_run *r = arg;
    while (r->exec->in_off < r->exec->in_len) {
        ssize_t w = write(fd, r->exec->in + r->exec->in_off, r->exec->in_len - r->exec->in_off);
        if (w > 0) {
            r->exec->in_off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            return; /* the event stays armed */
        break;      /* EPIPE: the command does not read it all */
    }
    event_del(r->exec->ev_in);
    close(fd);
    r->exec->fd_in = -1;
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, NULL);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    wd_run *r = arg;
    r->exec->timed_out = 1;
    kill(-r->exec->pid, SIGKILL);
    kill(r->exec->pid, SIGKILL);
    /* the pidfd reports the death: finish() runs then */
}

/* the command ended (or could not start: fail): the handler's ctx:exec returns */
/* the command's outcome as the agent reads it: {exit_code, signal, stdout, stderr,
** timed_out, truncated, duration_ms} */
typedef struct exec_end {
    int code, sig;
} exec_end;

static int push_outcome(wd_run *r, lua_State *co, void *ud)
{
    const exec_end *x = ud;
    lua_createtable(co, 0, 6);
    if (x->code >= 0) {
        lua_pushinteger(co, x->code);
        lua_setfield(co, -2, "exit_code");
    }
    if (x->sig) {
        lua_pushinteger(co, x->sig);
        lua_setfield(co, -2, "signal");
    }
    lua_pushlstring(co, r->exec->out.p ? r->exec->out.p : "", r->exec->out.len);
    lua_setfield(co, -2, "stdout");
    lua_pushlstring(co, r->exec->err.p ? r->exec->err.p : "", r->exec->err.len);
    lua_setfield(co, -2, "stderr");
    lua_pushboolean(co, r->exec->timed_out);
    lua_setfield(co, -2, "timed_out");
    lua_pushboolean(co, r->exec->truncated);
    lua_setfield(co, -2, "truncated");
    lua_pushinteger(co, (wd_now_ns() - r->exec->t0) / 1000000);
    lua_setfield(co, -2, "duration_ms");
    return 1;
}

static void exec_done(wd_run *r)
{
    json_decref(r->exec->jargv);
    r->exec->jargv = NULL;
    exec_clear(r);
}

static void finish(wd_run *r, const char *fail)
{
    int status = 0;
    exec_end x = {-1, 0};
    if (!fail) {
        event_del(r->exec->timer);
        if (waitpid(r->exec->pid, &status, 0) < 0)
            fail = "ctx:exec: lost the command's process";
        r->exec->pid = 0;
        /* what the pipes still hold: the namespace is gone, so no writer is left */
        if (r->exec->fd_out > 0)
            drain(r, r->exec->fd_out, &r->exec->out);
        if (r->exec->fd_err > 0)
            drain(r, r->exec->fd_err, &r->exec->err);
    }
    if (!fail) {
        if (WIFEXITED(status))
            x.code = WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
            x.sig = WTERMSIG(status);
    }
    char msg[300];
    if (r->exec->timed_out)
        snprintf(msg, sizeof msg, "ctx:exec: the command ran out of time (%lld ms) and was killed",
                 r->exec->timeout_ms);
    else if (x.code > 0)
        snprintf(msg, sizeof msg, "exit status %d", x.code);
    else if (x.sig)
        snprintf(msg, sizeof msg, "killed by signal %d", x.sig);
    int ok = !fail && x.code == 0 && !r->exec->timed_out;
    wd_settle st = {.record = exec_record(r, ok, x.code, x.sig,
                                          fail ? fail
                                          : ok ? NULL
                                               : msg),
                    .co = r->waiting,
                    .fail = fail,
                    .push = push_outcome,
                    .ud = &x,
                    .clear = exec_done};
    wd_run_settle(r, &st);
}

static int nonblock(int fd) { return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* The child: its pipes as 0, 1 and 2, the limits, nobody's uid when we are root, no
** descriptor and no environment of ours; then bwrap. Async-signal-safe calls only (the
** engine may have threads). */
static void child(char *const *argv, int in, int out, int err, const struct rlimit *lim, int as_root)
{
    static const int RES[5] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_CORE};
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
    for (int i = 0; i < 5; i++)
        if (setrlimit(RES[i], &lim[i]) < 0)
            _exit(126);
    if (as_root && (setgroups(0, NULL) < 0 || setgid(EXEC_UID) < 0 || setuid(EXEC_UID) < 0))
        _exit(126);
    if (syscall(SYS_close_range, 3, ~0U, 0) < 0) /* no descriptor of ours reaches the sandbox */
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
    /* bwrap gets no environment either (LD_PRELOAD and the like stay out) */
    static char *const no_env[] = {NULL};
    execve(argv[0], argv, no_env);
    _exit(127);
}

/* the command's pipes, its exit and its timeout watched on the loop; -1 out of memory */
static int watch(wd_run *r)
{
    wd_exec_state *x = r->exec;
    nonblock(x->fd_in);
    nonblock(x->fd_out);
    nonblock(x->fd_err);
    struct event_base *b = r->eng->base;
    x->ev_out = event_new(b, x->fd_out, EV_READ | EV_PERSIST, on_output, r);
    x->ev_err = event_new(b, x->fd_err, EV_READ | EV_PERSIST, on_output, r);
    x->ev_exit = event_new(b, x->pidfd, EV_READ, on_exit_ev, r);
    x->timer = evtimer_new(b, on_timeout, r);
    if (x->in_len)
        x->ev_in = event_new(b, x->fd_in, EV_WRITE | EV_PERSIST, on_stdin, r);
    else {
        close(x->fd_in);
        x->fd_in = -1;
    }
    if (!x->ev_out || !x->ev_err || !x->ev_exit || !x->timer || (x->in_len && !x->ev_in))
        return -1;
    event_add(x->ev_out, NULL);
    event_add(x->ev_err, NULL);
    event_add(x->ev_exit, NULL);
    if (x->ev_in)
        event_add(x->ev_in, NULL);
    struct timeval tv = {(time_t)(x->timeout_ms / 1000), (suseconds_t)(x->timeout_ms % 1000) * 1000};
    evtimer_add(x->timer, &tv);
    return 0;
}

void wd_exec_start(wd_run *r)
{
    /* a command that exits before reading its stdin must not kill us with SIGPIPE */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    r->exec->t0 = wd_now_ns();
    r->exec->fd_in = r->exec->fd_out = r->exec->fd_err = r->exec->pidfd = -1;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
        goto fail;
    uid_t uid = geteuid() == 0 ? EXEC_UID : geteuid();
    rlim_t nproc = (rlim_t)(count_procs(uid) + r->exec->limits[2] + 2); /* + bwrap's two */
    struct rlimit lim[5] = {
        {(rlim_t)r->exec->limits[0], (rlim_t)r->exec->limits[0] + 1},
        {(rlim_t)r->exec->limits[1] << 20, (rlim_t)r->exec->limits[1] << 20},
        {nproc, nproc},
        {(rlim_t)r->exec->limits[3] << 20, (rlim_t)r->exec->limits[3] << 20},
        {0, 0},
    };
    int as_root = geteuid() == 0;
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0)
        child(r->exec->argv, pin[0], pout[1], perr[1], lim, as_root);
    r->exec->pid = pid;
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    r->exec->fd_in = pin[1];
    r->exec->fd_out = pout[0];
    r->exec->fd_err = perr[0];
    r->exec->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (r->exec->pidfd < 0) {
        kill_child(r);
        finish(r, "ctx:exec: pidfd_open failed");
        return;
    }
    if (watch(r) < 0) {
        kill_child(r);
        finish(r, "ctx:exec: out of memory");
    }
    return;
fail:;
    char msg[200];
    snprintf(msg, sizeof msg, "ctx:exec: cannot start the command: %s", strerror(errno));
    int fds[6] = {pin[0], pin[1], pout[0], pout[1], perr[0], perr[1]};
    for (int i = 0; i < 6; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    finish(r, msg);
}

static void exec_free(wd_run *r)
{
    wd_exec_cancel(r, NULL);
    free(r->exec);
    r->exec = NULL;
}

const wd_op_kind wd_op_exec = {"exec", wd_exec_start, wd_exec_cancel, NULL, exec_free, NULL};
