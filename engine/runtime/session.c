/* session.c - a conversation kept between runs (see session.h) */
#include "session.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the session's stored turns (a new array; [] when it has none), or NULL with msg */
static json_t *stored(wd_run *r, int *theirs, char *msg, size_t n)
{
    wd_store *s = r->eng->store;
    char *owner = NULL, *text = NULL;
    *theirs = 0;
    int got = wd_store_session_get(s, r->session_id, wd_store_now(s), &owner, &text);
    json_t *turns = got == 0 ? json_array() : NULL;
    if (got < 0)
        snprintf(msg, n, "state store %s: %s: the session cannot be read", wd_store_path(s), wd_store_error(s));
    if (got == 1 && strcmp(owner, r->user_id)) {
        *theirs = 1;
        snprintf(msg, n, "session %.128s belongs to another user", r->session_id);
    } else if (got == 1 && !json_is_array(turns = json_loads(text, 0, NULL))) {
        json_decref(turns);
        turns = json_array(); /* unreadable: begun anew rather than refused for ever */
    }
    free(owner);
    free(text);
    return turns;
}

int wd_session_load(wd_run *r, char *msg, size_t n)
{
    if (!r->session_explicit || r->direct_tool)
        return 0;
    int theirs;
    json_t *turns = stored(r, &theirs, msg, n);
    if (!turns)
        return theirs ? 1 : -1;
    if (r->history)
        json_array_extend(turns, r->history);
    json_decref(r->history);
    r->history = turns;
    return 0;
}

/* a message's weight in tokens, as a call's input is estimated: three bytes a token and
** four a message */
static long long weight(json_t *m)
{
    return (long long)(json_string_length(json_object_get(m, "content")) + 2) / 3 + 4;
}

void wd_session_save(wd_run *r)
{
    if (!r->session_explicit || r->direct_tool)
        return;
    wd_store *s = r->eng->store;
    const wd_policy *p = r->pol;
    char msg[400];
    int theirs;
    if (wd_store_begin(s) < 0) {
        snprintf(msg, sizeof msg, "session %.128s: the state store is busy: this turn was not kept", r->session_id);
        json_array_append_new(r->errors, json_string(msg));
        return;
    }
    json_t *turns = stored(r, &theirs, msg, sizeof msg);
    if (!turns) { /* taken by another user meanwhile, or unreadable */
        wd_store_rollback(s);
        json_array_append_new(r->errors, json_string(msg));
        return;
    }
    json_array_append_new(turns, json_pack("{s:s,s:s}", "role", "user", "content", r->query ? r->query : ""));
    json_array_append_new(turns,
                          json_pack("{s:s,s:s}", "role", "assistant", "content", r->result_text ? r->result_text : ""));
    long long tokens = 0;
    size_t i;
    json_t *m;
    json_array_foreach(turns, i, m) tokens += weight(m);
    /* the oldest turn (its user's message and the answer) first, the newest kept whole */
    while (json_array_size(turns) > 2 &&
           ((long long)json_array_size(turns) > p->session_max_messages || tokens > p->session_max_tokens)) {
        for (int k = 0; k < 2; k++) {
            tokens -= weight(json_array_get(turns, 0));
            json_array_remove(turns, 0);
        }
    }
    char *text = json_dumps(turns, JSON_COMPACT);
    int64_t now = wd_store_now(s);
    if (!text || wd_store_session_put(s, r->session_id, r->user_id, text, now, now + p->session_ttl_ms) < 0 ||
        wd_store_commit(s) < 0) {
        wd_store_rollback(s);
        snprintf(msg, sizeof msg, "session %.128s: this turn was not kept (%s)", r->session_id,
                 text ? wd_store_error(s) : "out of memory");
        json_array_append_new(r->errors, json_string(msg));
    }
    free(text);
    json_decref(turns);
}
