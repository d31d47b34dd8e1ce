/* redisconn.c - the Redis backend's connection (redispriv.h): the locator, connecting
** with a timeout and again with backoff after a failure, the store's clock, the scripts
** every operation runs (loaded once, called by SHA, loaded again on NOSCRIPT), the lock
** that makes wd_store_begin/commit a transaction across hosts, and this process's
** liveness key. Each engine holds its own connection: nothing here is shared. */
#include "redispriv.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define LOCK_MS        2000 /* a lock whose holder died frees itself after this */

/* ---- the locator: redis://host:port/db?prefix=..&password_env=..&timeout_ms=..&lease_ms=..
** or redis+unix:///path?db=..&... (policy.c builds it from the store section) ---- */

static int parse_query(wd_redis *r, char *q, char *err, size_t errlen)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            wd_errf(err, errlen, "store locator: '%s' is not key=value", kv);
            return -1;
        }
        *eq++ = '\0';
        if (!strcmp(kv, "prefix") && strlen(eq) < sizeof r->prefix)
            wd_strlcpy(r->prefix, eq, sizeof r->prefix);
        else if (!strcmp(kv, "password_env") && strlen(eq) < sizeof r->t.password_env)
            wd_strlcpy(r->t.password_env, eq, sizeof r->t.password_env);
        else if (!strcmp(kv, "timeout_ms") && atoi(eq) > 0)
            r->t.timeout_ms = atoi(eq);
        else if (!strcmp(kv, "lease_ms") && atoll(eq) > 0)
            r->lease_ms = atoll(eq);
        else if (!strcmp(kv, "db") && atoi(eq) >= 0)
            r->t.db = atoi(eq);
        else {
            wd_errf(err, errlen, "store locator: bad %s=%s", kv, eq);
            return -1;
        }
    }
    return 0;
}

static int parse_locator(wd_redis *r, const char *loc, char *err, size_t errlen)
{
    char buf[1024];
    if (strlen(loc) >= sizeof buf) {
        wd_errf(err, errlen, "store locator too long");
        return -1;
    }
    wd_strlcpy(buf, loc, sizeof buf);
    wd_strlcpy(r->prefix, "warden:", sizeof r->prefix);
    r->t.timeout_ms = 250;
    r->lease_ms = 15000;
    r->t.port = 6379;
    char *q = strchr(buf, '?');
    if (q)
        *q++ = '\0';
    if (!strncmp(buf, "redis+unix://", 13)) {
        if (buf[13] != '/' || strlen(buf + 13) >= sizeof r->t.sock) {
            wd_errf(err, errlen, "store %s: a Unix socket's absolute path expected", loc);
            return -1;
        }
        wd_strlcpy(r->t.sock, buf + 13, sizeof r->t.sock);
    } else if (!strncmp(buf, "redis://", 8)) {
        char *h = buf + 8, *slash = strchr(h, '/');
        if (slash) {
            *slash = '\0';
            char *end;
            long db = strtol(slash + 1, &end, 10);
            if (slash[1] && (*end || db < 0 || db > 1000000)) {
                wd_errf(err, errlen, "store %s: the database must be a number", loc);
                return -1;
            }
            r->t.db = (int)db;
        }
        if (strchr(h, '@')) {
            wd_errf(err, errlen, "store %s: no password in the URL: name an environment variable in password_env", loc);
            return -1;
        }
        char *colon = strrchr(h, ':');
        if (colon && !strchr(h, ']')) {
            *colon = '\0';
            r->t.port = atoi(colon + 1);
        }
        if (!*h || r->t.port <= 0 || r->t.port > 65535 || strlen(h) >= sizeof r->t.host) {
            wd_errf(err, errlen, "store %s: host:port expected", loc);
            return -1;
        }
        wd_strlcpy(r->t.host, h, sizeof r->t.host);
    } else {
        wd_errf(err, errlen, "store %s: not a redis:// or redis+unix:// URL", loc);
        return -1;
    }
    return q ? parse_query(r, q, err, errlen) : 0;
}

/* ---- connecting ---- */

static const char *where(const wd_redis *r, char *out, size_t n)
{
    if (r->t.sock[0])
        snprintf(out, n, "redis at %s", r->t.sock);
    else
        snprintf(out, n, "redis at %s:%d", r->t.host, r->t.port);
    return out;
}

/* the connection is unusable (an I/O error, a timeout): dropped, tried again later */
static void drop(wd_redis *r, const char *why)
{
    char w[300];
    snprintf(r->err, sizeof r->err, "%s unreachable: %s", where(r, w, sizeof w), why && *why ? why : "no answer");
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
    r->in_txn = 0;
    r->retry_ns = wd_now_ns() + (int64_t)r->backoff_ms * 1000000;
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* a connection redisdial.c made, the handle's now */
static void install(wd_redis *r, redisContext *c, int64_t clock_off)
{
    r->c = c;
    r->clock_off = clock_off;
    memset(r->sha, 0, sizeof r->sha); /* a new server may not know them */
    r->backoff_ms = BACKOFF_MIN_MS;
}

/* connects at once: 0, or -1 (dropped, tried again after the backoff) */
static int dial(wd_redis *r)
{
    char err[300];
    int64_t off = r->clock_off;
    redisContext *c = wd_rd_dial(&r->t, &off, err, sizeof err);
    if (!c) {
        drop(r, err);
        return -1;
    }
    install(r, c, off);
    return 0;
}

/* ** The connection, if there is one. Lost, it is made again after the backoff: at once
** for a command, and on a thread of its own for an engine (it watches on a loop), whose
** operations fail at once meanwhile instead of each waiting for a server that may not
** answer. */
static int ensure(wd_redis *r)
{
    if (r->c)
        return 0;
    if (r->dialer) {
        redisContext *c = NULL;
        int64_t off = r->clock_off;
        char err[300];
        if (!wd_rd_dial_take(r->dialer, &c, &off, err, sizeof err))
            return -1; /* still connecting: r->err says what failed last */
        r->dialer = NULL;
        if (!c) {
            drop(r, err);
            return -1;
        }
        install(r, c, off);
        return 0;
    }
    if (wd_now_ns() < r->retry_ns)
        return -1; /* r->err still says why */
    if (r->sub && (r->dialer = wd_rd_dial_start(&r->t)))
        return -1;
    return dial(r);
}

wd_redis *wd_rd_connect(const char *locator, char *err, size_t errlen)
{
    wd_redis *r = calloc(1, sizeof *r);
    if (!r) {
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (parse_locator(r, locator, err, errlen) < 0) {
        free(r);
        return NULL;
    }
    r->base.path = wd_strdup(locator);
    char host[128] = "?", tag[9];
    gethostname(host, sizeof host - 1);
    unsigned char rnd[4];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(tag, sizeof tag, rnd, sizeof rnd);
    snprintf(r->owner, sizeof r->owner, "%s/%ld/%s", host, (long)getpid(), tag);
    r->clock_off = wd_wall_ms() - wd_clock_shift() - wd_boot_ms(); /* until Redis tells its time */
    r->backoff_ms = BACKOFF_MIN_MS;
    dial(r); /* an unreachable Redis is not fatal: each operation fails until it answers */
    return r;
}

void wd_rd_close(wd_store *s)
{
    wd_redis *r = RD(s);
    if (r->in_txn)
        wd_rd_rollback(s);
    wd_rd_unwatch(s);
    wd_rd_dial_abandon(r->dialer);
    if (r->c)
        redisFree(r->c);
    free(r->base.path);
    free(r);
}

const char *wd_rd_error(const wd_store *s) { return RD(s)->err[0] ? RD(s)->err : "no error"; }

int64_t wd_rd_now(const wd_store *s) { return wd_boot_ms() + RD(s)->clock_off + wd_clock_shift(); }

/* ---- scripts ---- */

static int load(wd_redis *r, int slot, const char *lua)
{
    redisReply *x = redisCommandArgv(r->c, 3, (const char *[]){"SCRIPT", "LOAD", lua}, NULL);
    if (!x) {
        drop(r, r->c->errstr);
        return -1;
    }
    int ok = x->type == REDIS_REPLY_STRING && x->len == 40;
    if (ok)
        memcpy(r->sha[slot], x->str, 41);
    else
        snprintf(r->err, sizeof r->err, "redis: cannot load a script: %s", x->str ? x->str : "?");
    freeReplyObject(x);
    return ok ? 0 : -1;
}

redisReply *wd_rd_run(wd_redis *r, int slot, const char *lua, wd_rd_args *a)
{
    const char **argv = malloc((3 + a->n) * sizeof *argv);
    size_t *lens = malloc((3 + a->n) * sizeof *lens);
    redisReply *x = NULL;
    if (!argv || !lens || a->oom) {
        snprintf(r->err, sizeof r->err, "out of memory");
        goto out;
    }
    argv[0] = "EVALSHA";
    argv[2] = "0";
    lens[0] = 7;
    lens[2] = 1;
    for (int i = 0; i < a->n; i++) {
        argv[3 + i] = a->v[i];
        lens[3 + i] = a->len[i];
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (ensure(r) < 0 || (!r->sha[slot][0] && load(r, slot, lua) < 0))
            goto out;
        argv[1] = r->sha[slot];
        lens[1] = 40;
        x = redisCommandArgv(r->c, 3 + a->n, argv, lens);
        if (!x) { /* an I/O error or the timeout: the answer may still come, on a connection now closed */
            char why[200];
            snprintf(why, sizeof why, "no answer within %d ms (store.timeout_ms): %s", r->t.timeout_ms, r->c->errstr);
            drop(r, r->c->err == REDIS_ERR_IO ? why : r->c->errstr);
            goto out;
        }
        if (x->type != REDIS_REPLY_ERROR)
            goto out;
        int noscript = !strncmp(x->str, "NOSCRIPT", 8);
        if (!noscript)
            snprintf(r->err, sizeof r->err, "redis: %s", x->str);
        freeReplyObject(x);
        x = NULL;
        if (!noscript)
            goto out;
        r->sha[slot][0] = '\0'; /* Redis restarted or flushed its scripts: load it again */
    }
    snprintf(r->err, sizeof r->err, "redis: the script would not stay loaded");
out:
    free(argv);
    free(lens);
    wd_rd_done(a);
    return x;
}

long long wd_rd_int(const redisReply *x, size_t i)
{
    if (!x || x->type != REDIS_REPLY_ARRAY || i >= x->elements)
        return 0;
    const redisReply *e = x->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    return e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
}

void wd_rd_copy(const redisReply *x, size_t i, char *out, size_t n)
{
    out[0] = '\0';
    if (x && x->type == REDIS_REPLY_ARRAY && i < x->elements && x->element[i]->type == REDIS_REPLY_STRING)
        wd_strlcpy(out, x->element[i]->str, n);
}

json_t *wd_rd_json(const redisReply *x)
{
    if (!x || x->type != REDIS_REPLY_STRING)
        return NULL;
    json_t *v = json_loadb(x->str, x->len, JSON_DECODE_ANY, NULL);
    if (json_is_object(v) && json_object_size(v) == 0) { /* Redis's cjson writes an empty list as {} */
        json_decref(v);
        v = json_array();
    }
    return v;
}

/* ---- the lock: wd_store_begin .. commit, across every host ---- */

static const char LOCK_LUA[] = "if redis.call('SET', ARGV[1] .. 'lock', ARGV[2], 'NX', 'PX', ARGV[3]) then\n"
                               "  return 1\n"
                               "end\n"
                               "return 0\n";

static const char UNLOCK_LUA[] = "if redis.call('GET', ARGV[1] .. 'lock') == ARGV[2] then\n"
                                 "  redis.call('DEL', ARGV[1] .. 'lock')\n"
                                 "end\n"
                                 "return 1\n";

int wd_rd_begin(wd_store *s)
{
    wd_redis *r = RD(s);
    unsigned char rnd[16];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(r->token, sizeof r->token, rnd, sizeof rnd);
    int64_t until = wd_now_ns() + (int64_t)r->t.timeout_ms * 1000000;
    for (;;) {
        wd_rd_args a;
        wd_rd_init(&a, r);
        wd_rd_s(&a, r->token);
        wd_rd_i(&a, LOCK_MS);
        redisReply *x = wd_rd_run(r, RS_LOCK, LOCK_LUA, &a);
        if (!x)
            return -1;
        int got = x->type == REDIS_REPLY_INTEGER && x->integer == 1;
        freeReplyObject(x);
        if (got) {
            r->in_txn = 1;
            return 0;
        }
        if (wd_now_ns() > until) {
            snprintf(r->err, sizeof r->err, "redis: the store's lock stayed taken for %d ms (store.timeout_ms)",
                     r->t.timeout_ms);
            return -1;
        }
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
}

int wd_rd_commit(wd_store *s)
{
    wd_redis *r = RD(s);
    if (!r->in_txn)
        return 0;
    r->in_txn = 0;
    wd_rd_args a;
    wd_rd_init(&a, r);
    wd_rd_s(&a, r->token);
    redisReply *x = wd_rd_run(r, RS_UNLOCK, UNLOCK_LUA, &a);
    freeReplyObject(x);
    return x ? 0 : -1;
}

int wd_rd_call(wd_redis *r, int slot, const char *lua, wd_rd_args *a, wd_rd_read_fn read, wd_store_op *op)
{
    redisReply *x = wd_rd_run(r, slot, lua, a);
    if (!x)
        return -1;
    int rc = read(r, x, op);
    freeReplyObject(x);
    return rc;
}

/* nothing to undo: each operation inside was whole; the lock is given back */
void wd_rd_rollback(wd_store *s) { wd_rd_commit(s); }
