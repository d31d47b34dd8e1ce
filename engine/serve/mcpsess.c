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
    json_t *by_id; /* id → {user, version, used} */
};

wd_mcp_sessions *wd_mcpsess_new(void)
{
    wd_mcp_sessions *ss = calloc(1, sizeof *ss);
    if (!ss || !(ss->by_id = json_object())) {
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
    pthread_mutex_destroy(&ss->mu);
    free(ss);
}

static int64_t used_of(const json_t *v) { return (int64_t)json_integer_value(json_object_get(v, "used")); }

/* under the lock: the sessions unused for too long go; *lru gets user's least recently
** used one left, *mine how many user has */
static void sweep(wd_mcp_sessions *ss, const char *user, int64_t now_ms, const char **lru, size_t *mine)
{
    const char *k;
    json_t *v;
    void *tmp;
    int64_t oldest = INT64_MAX;
    *lru = NULL;
    *mine = 0;
    json_object_foreach_safe(ss->by_id, tmp, k, v)
    {
        if (now_ms - used_of(v) > MCP_SESSION_IDLE_MS) {
            json_object_del(ss->by_id, k);
            continue;
        }
        if (strcmp(json_string_value(json_object_get(v, "user")), user))
            continue;
        (*mine)++;
        if (used_of(v) < oldest) {
            oldest = used_of(v);
            *lru = k;
        }
    }
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
    const char *lru;
    size_t mine;
    sweep(ss, user, now_ms, &lru, &mine);
    if (mine >= MCP_SESSIONS_USER && lru)
        json_object_del(ss->by_id, lru);
    int rc = -1;
    if (json_object_size(ss->by_id) < MCP_SESSIONS_MAX)
        rc = json_object_set_new(ss->by_id, id, v); /* takes v either way */
    else
        json_decref(v);
    pthread_mutex_unlock(&ss->mu);
    return rc;
}

int wd_mcpsess_use(wd_mcp_sessions *ss, const char *id, const char *user, char *version, size_t n, int64_t now_ms)
{
    pthread_mutex_lock(&ss->mu);
    json_t *v = json_object_get(ss->by_id, id);
    int ok =
        v && !strcmp(json_string_value(json_object_get(v, "user")), user) && now_ms - used_of(v) <= MCP_SESSION_IDLE_MS;
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
    int ok = v && !strcmp(json_string_value(json_object_get(v, "user")), user);
    if (ok)
        json_object_del(ss->by_id, id);
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
