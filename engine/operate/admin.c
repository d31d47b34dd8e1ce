/* admin.c - operator actions shared by cli.c and api.c */
#include "events.h"
#include "admin.h"
#include "breaker.h"
#include "killswitch.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *wd_admin_breakers(wd_store *st, const wd_policy *p)
{
    wd_breaker_row *rows;
    size_t n;
    if (wd_store_breaker_list(st, &rows, &n) < 0)
        return NULL;
    int64_t now = wd_store_now(st);
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        wd_breaker_row *r = &rows[i];
        long long retry_in = r->state == WD_BR_OPEN ? p->breaker_open_ms - (now - r->opened_ms) : 0;
        if (retry_in < 0)
            retry_in = 0; /* due: the next call is the probe */
        if (retry_in > p->breaker_open_ms)
            retry_in = p->breaker_open_ms;
        char opened[40] = "";
        if (r->opened_ms)
            wd_rfc3339_ms(r->opened_ms, opened, sizeof opened);
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:I,s:s?,s:I,s:I}", "name", r->name, "state",
                                        wd_breaker_state_name(r->state), "failures", (json_int_t)r->failures,
                                        "opened_at", opened[0] ? opened : NULL, "retry_in_ms", (json_int_t)retry_in,
                                        "probes_in_flight", (json_int_t)(r->state == WD_BR_HALF_OPEN ? r->probes : 0)));
    }
    free(rows);
    return list;
}

int wd_admin_breaker_reset(wd_store *st, const char *name, const char *by, int *from, json_t **rec)
{
    *rec = NULL;
    wd_breaker_row row;
    int found;
    if (wd_store_begin(st) < 0)
        return -1;
    if ((found = wd_store_breaker_get(st, name, &row)) <= 0) {
        wd_store_rollback(st);
        return found;
    }
    *from = row.state;
    row.state = WD_BR_CLOSED;
    row.failures = 0;
    row.probes = 0;
    row.updated_ms = wd_store_now(st);
    if (wd_store_breaker_put(st, &row) < 0 || wd_store_commit(st) < 0) {
        wd_store_rollback(st);
        return -1;
    }
    char reason[300];
    snprintf(reason, sizeof reason, "reset by %s (was %s)", by, wd_breaker_state_name(*from));
    *rec = json_pack("{s:s,s:n,s:n,s:s,s:n,s:b,s:s,s:s,s:s}", "event", wd_event_name(WD_AE_BREAKER_CLOSED), "run_id",
                     "session_id", "user_id", by, "agent", "success", 1, "breaker", name, "circuit_breaker_state",
                     "closed", "reason", reason);
    return 1;
}

int wd_admin_kill(wd_store *st, const char *agent, int revive, const char *by, const char *reason, json_t **rec)
{
    *rec = NULL;
    int got = revive ? wd_store_kill_clear(st, agent, !strcmp(agent, WD_KILL_ALL))
                     : wd_store_kill_set(st, agent, by ? by : "", reason, 0, wd_wall_ms());
    if (got < 0)
        return -1;
    *rec = json_pack("{s:s,s:n,s:n,s:s?,s:s,s:b,s:s,s:s}", "event", wd_event_name(WD_AE_KILL_SWITCH), "run_id",
                     "session_id", "user_id", by, "agent", agent, "success", 1, "action", revive ? "revive" : "kill",
                     "reason", reason);
    return got > 0;
}

const wd_user *wd_admin_user_by_key(const wd_policy *p, const char *key)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)key, strlen(key));
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    const wd_user *found = NULL;
    for (size_t i = 0; i < p->n_users; i++) {
        const char *k = p->users[i].api_key_sha256;
        if (k && strlen(k) == 64 && sodium_memcmp(k, hex, 64) == 0)
            found = &p->users[i];
    }
    return found;
}

int wd_admin_identify(const wd_policy *p, const char *key, const char *login, const char *by, const char **name,
                      const char **via, char *err, size_t n)
{
    const wd_user *u = NULL;
    *name = *via = NULL;
    if (key) {
        if (!(u = wd_admin_user_by_key(p, key))) {
            snprintf(err, n, "the API key given is no user's (users.NAME.api_key_sha256 in the policy)");
            return -1;
        }
        *via = "api_key";
    } else if (login && *login) {
        for (size_t i = 0; i < p->n_users; i++) /* by --by among several users of one login */
            if (p->users[i].os_user && !strcmp(p->users[i].os_user, login) &&
                (!u || (by && !strcmp(p->users[i].name, by))))
                u = &p->users[i];
        if (u)
            *via = "os_user";
    }
    if (u) {
        if (by && *by && strcmp(by, u->name)) {
            snprintf(err, n, "--by %s is not who the %s proves: %s", by, !strcmp(*via, "api_key") ? "API key" : "login",
                     u->name);
            return -1;
        }
        *name = u->name;
        return 0;
    }
    if (p->approval_trust_cli && by && *by) {
        *name = by;
        *via = "cli_flag";
        return 0;
    }
    snprintf(err, n,
             "prove who decides: give the approver's API key (--key-file FILE, or WARDEN_API_KEY), or map the "
             "login running this (%s) to the approver with users.NAME.os_user in the policy; a bare --by is "
             "believed only with approvals.trust_cli_identity: true (for development)",
             login && *login ? login : "?");
    return -1;
}
