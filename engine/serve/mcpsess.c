/* mcpsess.c - the sessions of /mcp (mcpsess.h): a table by id under one mutex */
#include "mcpsess.h"
#include "util.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct wd_mcp_sessions {
    pthread_mutex_t mu;
    json_t *by_id;   /* id → {user, version, used} */
    json_t *by_user; /* user → how many sessions it holds */
    int64_t swept_ms;
};

wd_mcp_sessions *wd_mcpsess_new(void)
{
    wd_mcp_sessions *ss = calloc(1, sizeof *ss);
    if (!ss || !(ss->by_id = json_object()) || !(ss->by_user = json_object())) {
        if (ss)
            json_decref(ss->by_id);
        free(ss);
        return NULL;
    }
    pthread_mutex_init(&ss->mu, NULL);
    return ss;
}

void wd_mcpsess_free(wd_mcp_sessions *ss)
{
    if (!ss)
        return;
    json_decref(ss->by_id);
    json_decref(ss->by_user);
    pthread_mutex_destroy(&ss->mu);
    free(ss);
}

static int64_t used_of(const json_t *v) { return (int64_t)json_integer_value(json_object_get(v, "used")); }
static const char *user_of(const json_t *v) { return json_string_value(json_object_get(v, "user")); }
static json_int_t held(wd_mcp_sessions *ss, const char *user)
{
    return json_integer_value(json_object_get(ss->by_user, user));
}

/* under the lock: the session goes, its user's count with it */
static void forget(wd_mcp_sessions *ss, const char *id, const json_t *v)
{
    const char *user = user_of(v);
    json_int_t n = held(ss, user) - 1;
    if (n > 0)
        json_object_set_new(ss->by_user, user, json_integer(n));
    else
        json_object_del(ss->by_user, user);
    json_object_del(ss->by_id, id); /* frees v, and the key id may be */
}

/* under the lock: the sessions unused for too long go (a walk of all: at most once a
** second, or when the table is full) */
static void sweep(wd_mcp_sessions *ss, int64_t now_ms)
{
    if (now_ms - ss->swept_ms < 1000 && json_object_size(ss->by_id) < MCP_SESSIONS_MAX)
        return;
    ss->swept_ms = now_ms;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(ss->by_id, tmp, k, v) if (now_ms - used_of(v) > MCP_SESSION_IDLE_MS) forget(ss, k, v);
}

/* under the lock: user's least recently used session goes (a walk of all: only for a
** user at its cap) */
static void evict_lru(wd_mcp_sessions *ss, const char *user)
{
    const char *k, *lru = NULL;
    json_t *v, *lv = NULL;
    json_object_foreach(ss->by_id, k, v) if (!strcmp(user_of(v), user) && (!lv || used_of(v) < used_of(lv)))
    {
        lru = k;
        lv = v;
    }
    if (lru)
        forget(ss, lru, lv);
}

int wd_mcpsess_open(wd_mcp_sessions *ss, const char *user, const char *version, char id[MCP_SESSION_ID_LEN + 1],
                    int64_t now_ms)
{
    unsigned char raw[MCP_SESSION_ID_LEN / 2];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(id, MCP_SESSION_ID_LEN + 1, raw, sizeof raw);
    json_t *v = json_pack("{s:s,s:s,s:I}", "user", user, "version", version, "used", (json_int_t)now_ms);
    if (!v)
        return -1;
    pthread_mutex_lock(&ss->mu);
    sweep(ss, now_ms);
    if (held(ss, user) >= MCP_SESSIONS_USER)
        evict_lru(ss, user);
    int rc = -1;
    if (json_object_size(ss->by_id) < MCP_SESSIONS_MAX)
        rc = json_object_set_new(ss->by_id, id, v); /* takes v either way */
    else
        json_decref(v);
    if (rc == 0)
        json_object_set_new(ss->by_user, user, json_integer(held(ss, user) + 1));
    pthread_mutex_unlock(&ss->mu);
    return rc;
}

int wd_mcpsess_use(wd_mcp_sessions *ss, const char *id, const char *user, char *version, size_t n, int64_t now_ms)
{
    pthread_mutex_lock(&ss->mu);
    json_t *v = json_object_get(ss->by_id, id);
    int ok = v && !strcmp(user_of(v), user);
    if (ok && now_ms - used_of(v) > MCP_SESSION_IDLE_MS) {
        forget(ss, id, v);
        ok = 0;
    }
    if (ok) {
        wd_strlcpy(version, json_string_value(json_object_get(v, "version")), n);
        json_object_set_new(v, "used", json_integer((json_int_t)now_ms));
    }
    pthread_mutex_unlock(&ss->mu);
    return ok;
}

int wd_mcpsess_close(wd_mcp_sessions *ss, const char *id, const char *user)
{
    pthread_mutex_lock(&ss->mu);
    json_t *v = json_object_get(ss->by_id, id);
    int ok = v && !strcmp(user_of(v), user);
    if (ok)
        forget(ss, id, v);
    pthread_mutex_unlock(&ss->mu);
    return ok;
}

size_t wd_mcpsess_count(wd_mcp_sessions *ss)
{
    pthread_mutex_lock(&ss->mu);
    size_t n = json_object_size(ss->by_id);
    pthread_mutex_unlock(&ss->mu);
    return n;
}
