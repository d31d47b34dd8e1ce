/* redact.c - key- and pattern-based redaction for audit records. */
#include "redact.h"
#include "util.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>

/* a redact key matches a whole word of the key: "user_api_key" and "X-Api-Key" hold
** "api_key"/"api-key"... as words, "input_tokens" does not hold the word "token" */
static int word_char(char c) { return isalnum((unsigned char)c); }

int wd_redact_is_secret_key(const wd_policy *p, const char *key)
{
    /* a match starts where a word may start: only those places are tried (strcasestr
    ** on every key of every record cost 2% of a run) */
    for (const char *at = key; *at; at++) {
        if (at != key && word_char(at[-1]))
            continue;
        for (size_t i = 0; i < p->redact_keys.n; i++) {
            const char *rk = p->redact_keys.v[i];
            if (tolower((unsigned char)*at) != tolower((unsigned char)*rk))
                continue;
            size_t rl = strlen(rk);
            if (!strncasecmp(at, rk, rl) && !word_char(at[rl]))
                return 1;
        }
    }
    return 0;
}

/* card numbers must pass the Luhn check, so ids and counts are left alone */
static int luhn_ok(const char *s, size_t n)
{
    int sum = 0, alt = 0, digits = 0;
    for (size_t i = n; i-- > 0;) {
        if (!isdigit((unsigned char)s[i]))
            continue;
        int d = s[i] - '0';
        if (alt) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        alt = !alt;
        digits++;
    }
    return digits >= 13 && digits <= 19 && sum % 10 == 0;
}

/* ** Secrets in free text, redacted whatever audit.redact_patterns lists (docs/safety.md,
** Audit schema): a secret-named key followed by ':' or '=' (\K keeps the key, the value
** goes), bearer tokens, the shapes of cloud and provider keys, private key blocks (an
** unterminated one to the end of the text). Compiled once per process. */
static const struct {
    const char *name, *rx;
} SECRETS[] = {
    {"secret", "(?i)(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?key|private[_-]?key|"
               "token)\\\\?[\"']?\\s*[:=]\\s*(?:\\\\?\"\\K(?!\\[REDACTED)[^\"\\\\\\n]+(?=\\\\?\")|"
               "'\\K(?!\\[REDACTED)[^'\\n]+(?=')|\\K(?!\\[REDACTED)[^\\s,;&\"'<>{}\\[\\]\\\\]+)"},
    {"bearer_token", "\\b[Bb]earer\\s+[A-Za-z0-9._~+/=-]{8,}"},
    {"provider_key", "\\b(?:(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|AIPA)[A-Z0-9]{16}|AIza[0-9A-Za-z_-]{35}|"
                     "gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
                     "[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|"
                     "eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{8,})"},
    {"private_key", "-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\\s\\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\\s\\S]*)"},
};
#define NSECRETS (sizeof SECRETS / sizeof SECRETS[0])
/* ** The shapes as one pattern, each in a group of its own: one scan of each string
** finds them all (four scans cost a tool call 2 us), the group names the shape. */
static wd_rx *secrets_rx;

static void compile_secrets(void)
{
    wd_buf b = {0};
    char err[200];
    for (size_t i = 0; i < NSECRETS; i++)
        wd_buf_addf(&b, "%s(%s)", i ? "|" : "", SECRETS[i].rx);
    if (b.p)
        secrets_rx = wd_rx_compile(b.p, 0, err, sizeof err);
    wd_buf_free(&b);
}

/* one pattern (all: the secrets, the group naming each) over cur: the matches replaced
** into out (reset first). The number of matches; a match error (PCRE2's limits: hostile
** text) redacts the rest of the text, so a secret the pattern could not finish reading
** stays out of the log. */
static int replace_all(const wd_rx *rx, const char *name, int all, const char *cur, size_t curlen, wd_buf *out)
{
    int card = !strcmp(name, "credit_card"), n = 0, rc;
    size_t pos = 0, so, eo, copied = 0;
    out->len = 0;
    while (pos <= curlen && (rc = wd_rx_find_which(rx, cur, curlen, pos, &so, &eo)) != 0) {
        const char *what = all && rc > 0 && (size_t)rc <= NSECRETS ? SECRETS[rc - 1].name : name;
        if (rc < 0) {
            so = pos;
            eo = curlen;
            what = "unreadable";
        } else if (eo <= so) {
            pos = (so > pos ? so : pos) + 1;
            continue;
        } else if (card && !luhn_ok(cur + so, eo - so)) {
            pos = eo;
            continue;
        }
        wd_buf_add(out, cur + copied, so - copied);
        wd_buf_addf(out, "[REDACTED:%s]", strncmp(what, "re:", 3) ? what : "pattern");
        copied = pos = eo;
        n++;
        if (rc < 0)
            break;
    }
    if (n)
        wd_buf_add(out, cur + copied, curlen - copied);
    return n;
}

char *wd_redact_string(const wd_policy *p, const char *s, size_t len, int *hits)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, compile_secrets);
    wd_buf out = {0};
    const char *cur = s;
    size_t curlen = len;
    char *owned = NULL;
    size_t total = 1 + p->redact_patterns.n;
    for (size_t i = 0; i < total; i++) {
        const wd_rx *rx = secrets_rx;
        const char *name = "secret";
        if (i > 0) {
            rx = p->redact_patterns.v[i - 1];
            name = i - 1 < p->redact_pattern_names.n ? p->redact_pattern_names.v[i - 1] : "secret";
        }
        int n = rx ? replace_all(rx, name, i == 0, cur, curlen, &out) : 0;
        if (!n)
            continue;
        if (hits)
            *hits += n;
        free(owned);
        owned = out.p;
        cur = owned;
        curlen = out.len;
        out.p = NULL;
        out.len = out.cap = 0;
    }
    wd_buf_free(&out);
    return owned;
}

/* a replacement for v, or NULL to keep v (objects and arrays are redacted in place) */
static json_t *redact(const wd_policy *p, json_t *v, int depth, int *hits)
{
    if (json_is_string(v)) {
        char *r = wd_redact_string(p, json_string_value(v), json_string_length(v), hits);
        if (!r)
            return NULL;
        json_t *n = json_string(r);
        free(r);
        return n ? n : json_string("[REDACTED]");
    }
    if (depth > 64)
        return NULL;
    if (json_is_object(v)) {
        const char *k;
        json_t *kv;
        json_object_foreach(v, k, kv)
        {
            int secret = wd_redact_is_secret_key(p, k) && !json_is_null(kv);
            json_t *n = secret ? json_string("[REDACTED]") : redact(p, kv, depth + 1, hits);
            *hits += secret;
            if (n)
                json_object_set_new(v, k, n);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *iv;
        json_array_foreach(v, i, iv)
        {
            json_t *n = redact(p, iv, depth + 1, hits);
            if (n)
                json_array_set_new(v, i, n);
        }
    }
    return NULL;
}

int wd_redact_value(const wd_policy *p, json_t *v)
{
    int hits = 0;
    json_decref(redact(p, v, 0, &hits)); /* a bare string cannot be replaced in place: callers pass containers */
    return hits;
}

static const char *const ENGINE_FIELDS[] = {"seq",       "timestamp", "event", "run_id",  "session_id",
                                            "prev_hash", "hash",      "agent", "user_id", NULL};

int wd_redact_record(const wd_policy *p, json_t *rec)
{
    int hits = 0;
    const char *k;
    json_t *kv;
    json_object_foreach(rec, k, kv)
    {
        int skip = 0;
        for (int i = 0; ENGINE_FIELDS[i] && !skip; i++)
            skip = k[0] == ENGINE_FIELDS[i][0] && !strcmp(k, ENGINE_FIELDS[i]);
        if (skip)
            continue;
        int secret = wd_redact_is_secret_key(p, k) && !json_is_null(kv);
        json_t *n = secret ? json_string("[REDACTED]") : redact(p, kv, 1, &hits);
        hits += secret;
        if (n)
            json_object_set_new(rec, k, n);
    }
    /* the record held sensitive data: flagged for the compliance report. A count already
    ** there is what was redacted before the record was made (a tool's result) */
    json_t *before = json_object_get(rec, "sensitive_data");
    if (json_is_integer(before))
        hits += (int)json_integer_value(before);
    if (hits)
        json_object_set_new(rec, "sensitive_data", json_integer(hits));
    return hits;
}

int wd_redact_append(const wd_policy *p, wd_audit *a, json_t *rec)
{
    static const char *const IDS[] = {"run_id", "session_id", "user_id", "agent"};
    for (int i = 0; rec && i < 4; i++)
        if (!json_object_get(rec, IDS[i]))
            json_object_set_new(rec, IDS[i], json_null());
    if (rec)
        wd_redact_record(p, rec);
    return wd_audit_append(a, rec);
}
