/* session.c - a conversation kept between runs (see session.h) */
#include "session.h"
#include "ask.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the session's stored turns (a new array; [] when it has none), or NULL with msg, or
** NULL with *theirs 2: the store was asked (again comes with its answer) */
static json_t *stored(wd_run *r, int *theirs, char *msg, size_t n, void (*again)(wd_run *r))
{
    wd_store *s = r->eng->store;
    wd_store_op op = {.kind = WD_SOP_SESSION_GET, .key = r->session_id, .now_ms = wd_store_now(s)};
    int got;
    *theirs = 0;
    if (wd_run_ask(r, &op, again, &got) == 2) {
        *theirs = 2;
        return NULL;
    }
    char *owner = op.owner, *text = op.text;
    json_t *turns = got == 0 ? json_array() : NULL;
    if (got < 0) {
        snprintf(msg, n, "state store unavailable (%s): session %.128s cannot be read", wd_store_error(s),
                 r->session_id);
        wd_run_store_down(r, "session", NULL, msg);
    }
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

int wd_session_load(wd_run *r, char *msg, size_t n, void (*again)(wd_run *r))
{
    if (!r->session_explicit || r->direct_tool)
        return 0;
    int theirs;
    json_t *turns = stored(r, &theirs, msg, n, again);
    if (!turns)
        return theirs ? theirs : -1;
    r->session_turns = json_copy(turns);
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

static long long tokens_of(json_t *turns)
{
    long long t = 0;
    size_t i;
    json_t *m;
    json_array_foreach(turns, i, m) t += weight(m);
    return t;
}

int wd_session_over(const wd_run *r)
{
    json_t *t = r->session_turns;
    return t &&
           ((long long)json_array_size(t) > r->pol->session_max_messages || tokens_of(t) > r->pol->session_max_tokens);
}

long wd_session_turns_check(const json_t *turns)
{
    size_t i;
    json_t *m;
    if (!json_is_array(turns) || json_array_size(turns) > WD_TURNS_MAX)
        return -1;
    json_array_foreach((json_t *)turns, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role || (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) ||
            !json_is_string(json_object_get(m, "content")))
            return (long)i + 1;
    }
    return 0;
}

int wd_session_replace(wd_run *r, json_t *turns, char *err, size_t n)
{
    size_t i, had = json_array_size(r->session_turns);
    long bad = wd_session_turns_check(turns);
    if (bad) {
        if (bad < 0)
            snprintf(err, n, "a list of at most %d {role, content} is needed", WD_TURNS_MAX);
        else
            snprintf(err, n, "[%ld] must be {role = system, user or assistant, content = text}", bad);
        json_decref(turns);
        return -1;
    }
    json_t *h = json_copy(turns); /* the new turns, then the run's own history after the old ones */
    for (i = had; i < json_array_size(r->history); i++)
        json_array_append(h, json_array_get(r->history, i));
    json_decref(r->history);
    r->history = h;
    json_decref(r->session_turns);
    r->session_turns = turns;
    r->session_replaced = 1;
    return 0;
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
    json_t *turns = stored(r, &theirs, msg, sizeof msg, NULL); /* inside its transaction */
    if (turns && r->session_replaced) {                        /* what the agent's hook made of it */
        json_decref(turns);
        turns = json_copy(r->session_turns);
    }
    if (!turns) { /* taken by another user meanwhile, or unreadable */
        wd_store_rollback(s);
        json_array_append_new(r->errors, json_string(msg));
        return;
    }
    json_array_append_new(turns, json_pack("{s:s,s:s}", "role", "user", "content", r->query ? r->query : ""));
    json_array_append_new(turns,
                          json_pack("{s:s,s:s}", "role", "assistant", "content", r->result_text ? r->result_text : ""));
    long long tokens = tokens_of(turns);
    /* the oldest turn (its user's message and the answer) first, the newest kept whole; an
    ** agent with a summarize hook shortens them itself at its next run, so they are kept
    ** up to four times the caps */
    long long x = r->session_hook ? 4 : 1;
    while (json_array_size(turns) > 2 &&
           ((long long)json_array_size(turns) > x * p->session_max_messages || tokens > x * p->session_max_tokens)) {
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
