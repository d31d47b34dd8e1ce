/* policy.c - YAML policy into a validated, immutable snapshot.
** Every key is checked: type, range, unknown keys (with a suggestion), and references
** (a user's role and tier, a tool's permission). All problems are reported at once. */
#include "policy.h"
#include "schema.h"
#include "util.h"
#include "ydoc.h"
#include "yread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_POLICY_FILES 64

/* half of what the machine (or the container's cgroup, if less) has, in MB */
static long long half_the_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    long long bytes = pages > 0 && psz > 0 ? (long long)pages * psz : 4LL << 30;
    char buf[64];
    int fd = open("/sys/fs/cgroup/memory.max", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        long long cg = strtoll(buf, NULL, 10);
        if (cg > 0 && cg < bytes)
            bytes = cg;
    }
    long long mb = bytes / 2 >> 20;
    return mb < 256 ? 256 : mb;
}

/* caller unrefs: a policy holding every default of docs/policy.md */
static wd_policy *policy_new(void)
{
    wd_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    static unsigned long long next_gen;
    p->refs = 1;
    p->gen = __atomic_add_fetch(&next_gen, 1, __ATOMIC_RELAXED);
    p->generation = 1;
    p->max_iterations = 5;
    p->max_tool_calls_per_answer = 32;
    p->structured_retries = 1;
    p->session_max_messages = 50;
    p->session_max_tokens = 8000;
    p->session_ttl_ms = 86400000;
    p->max_tool_calls = 1000;
    p->max_audit_bytes = 16LL << 20;
    p->max_audit_records = 10000;
    p->max_audit_field_bytes = 64LL << 10;
    p->serve_memory_mb = half_the_memory_mb();
    p->serve_max_runs = 256;
    p->serve_max_queued = 1024;
    p->serve_max_runs_user = 64;
    p->serve_max_queued_user = 256;
    p->serve_queue_wait_ms = 60000;
    p->serve_result_kb = 64;
    p->serve_events_kb = 1024;
    p->serve_kept_mb = 256;
    p->serve_keep_runs = 10000;
    p->llm_connect_ms = 3000;
    p->llm_read_ms = 30000;
    p->tool_ms = 5000;
    p->run_ms = 120000;
    p->max_retries = 3;
    p->retry_base_ms = 1000;
    p->retry_max_ms = 8000;
    p->retry_jitter_ms = 500;
    p->breaker_failure_threshold = 5;
    p->breaker_open_ms = 60000;
    p->breaker_half_open_probes = 1;
    p->memory_mb = 64;
    p->instructions_per_call = 100000000;
    p->expiry_ms[0] = 24LL * 3600000;
    p->expiry_ms[1] = 4LL * 3600000;
    p->expiry_ms[2] = 3600000;
    p->expiry_ms[3] = 15LL * 60000;
    p->escalate_at = 0.5;
    p->global_monthly_usd = 10000;
    p->warn_ratio = 0.8;
    p->kill_consecutive_errors = 5;
    p->approval_min_risk = 3; /* high and critical actions always wait for a person */
    p->hitl_confidence_below = -1;
    p->hitl_cost_above_usd = -1;
    p->exec_cpu_s = 10;
    p->exec_memory_mb = 256;
    p->exec_procs = 64;
    p->exec_file_mb = 16;
    p->exec_output_kb = 256;
    p->audit_path = wd_strdup("logs/agent_audit.jsonl");
    p->audit_fsync = WD_FSYNC_BATCH;
    p->store_path = wd_strdup("var/warden.db");
    p->cache_ttl_ms = 3600000;
    wd_policy_account_defaults(p);
    const char *keys[] = {"password", "api_key", "secret", "token", "authorization"};
    const char *pats[] = {"credit_card", "email", "bearer_token"};
    p->redact_keys.v = calloc(5, sizeof(char *));
    p->redact_pattern_names.v = calloc(3, sizeof(char *));
    if (!p->redact_keys.v || !p->redact_pattern_names.v) {
        wd_policy_unref(p);
        return NULL;
    }
    for (int i = 0; i < 5; i++)
        p->redact_keys.v[p->redact_keys.n++] = wd_strdup(keys[i]);
    for (int i = 0; i < 3; i++)
        p->redact_pattern_names.v[p->redact_pattern_names.n++] = wd_strdup(pats[i]);
    return p;
}

static void set_file(wd_ynode *n, const char *f)
{
    n->file = f;
    for (size_t i = 0; i < n->n; i++)
        set_file(n->kids[i], f);
}

/* move b's entries into a, recursively for maps; takes ownership of b */
static int merge(wd_ynode *a, wd_ynode *b)
{
    for (size_t i = 0; i + 1 < b->n; i += 2) {
        wd_ynode *k = b->kids[i], *v = b->kids[i + 1];
        wd_ynode *cur = NULL;
        size_t at = 0;
        for (size_t j = 0; k->kind == WD_Y_SCALAR && j + 1 < a->n; j += 2)
            if (a->kids[j]->kind == WD_Y_SCALAR && !strcmp(a->kids[j]->str, k->str)) {
                cur = a->kids[j + 1];
                at = j + 1;
            }
        if (cur && cur->kind == WD_Y_MAP && v->kind == WD_Y_MAP) {
            b->kids[i + 1] = NULL;
            merge(cur, v);
            continue;
        }
        if (cur) {
            wd_ydoc_free(cur);
            a->kids[at] = v;
            b->kids[i + 1] = NULL;
            continue;
        }
        wd_ynode **kids = realloc(a->kids, (a->n + 2) * sizeof *kids);
        if (!kids) {
            wd_ydoc_free(b);
            return -1;
        }
        a->kids = kids;
        a->kids[a->n++] = k;
        a->kids[a->n++] = v;
        b->kids[i] = b->kids[i + 1] = NULL;
    }
    /* free what was not moved */
    for (size_t i = 0; i < b->n; i++)
        wd_ydoc_free(b->kids[i]);
    free(b->kids);
    free(b->str);
    free(b);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* caller unrefs; NULL when errs got anything */
static wd_policy *load_root(wd_ynode *root, const char *fname, wd_perrors *errs)
{
    wd_yread c = {errs, policy_new(), fname};
    if (!c.p) {
        wd_yread_err(&c, NULL, "out of memory");
        return NULL;
    }
    c.p->path = wd_strdup(fname);
    const wd_ynode *nul = wd_ydoc_find_nul(root);
    if (nul)
        wd_yread_err(&c, nul, "a NUL byte inside a value: policy values are text");
    else
        wd_policy_build(&c, root);
    if (errs->n) {
        wd_policy_unref(c.p);
        return NULL;
    }
    return c.p;
}

wd_policy *wd_policy_load_text(const char *text, size_t len, const char *fname, wd_perrors *errs)
{
    char e[300];
    wd_yread c = {errs, NULL, fname};
    wd_ynode *root = wd_ydoc_parse(text, len, e, sizeof e);
    if (!root) {
        wd_yread_err(&c, NULL, "%s", e);
        /* the parser's message starts with line:col already; drop our 1:1 */
        char *m = errs->v[errs->n - 1];
        char *fix = NULL;
        if (asprintf(&fix, "%s:%s", fname, e) > 0) {
            free(m);
            errs->v[errs->n - 1] = fix;
        }
        return NULL;
    }
    set_file(root, fname);
    if ((root->kind == WD_Y_MAP && !root->n) || wd_ydoc_is_null(root)) {
        wd_yread_err(&c, NULL, "the policy is empty; a policy holds at least `version: 1`");
        wd_ydoc_free(root);
        return NULL;
    }
    wd_policy *p = load_root(root, fname, errs);
    wd_ydoc_free(root);
    if (p) { /* which text this is: run_started names it */
        unsigned char d[32];
        crypto_hash_sha256(d, (const unsigned char *)text, len);
        sodium_bin2hex(p->sha256, sizeof p->sha256, d, sizeof d);
    }
    return p;
}

/* the *.yaml and *.yml files of a policy directory, in name order, into names (at most
** MAX_POLICY_FILES; caller frees each); how many, or -1 when the directory cannot be read */
static int list_files(const char *path, char **names)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < MAX_POLICY_FILES) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        if ((l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) || (l > 4 && !strcmp(de->d_name + l - 4, ".yml")))
            if (asprintf(&names[nn], "%s/%s", path, de->d_name) > 0)
                nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str);
    return (int)nn;
}

/* one file of a policy directory as a document (caller frees), or NULL with the problem
** reported under its name */
static wd_ynode *read_part(wd_yread *c, const char *name, crypto_hash_sha256_state *h)
{
    char e[300];
    size_t len;
    c->fname = name;
    char *text = wd_read_file(name, WD_YDOC_MAX_BYTES, &len);
    if (!text) {
        wd_yread_err(c, NULL, "cannot read: %s", wd_read_error(errno, WD_YDOC_MAX_BYTES));
        return NULL;
    }
    crypto_hash_sha256_update(h, (const unsigned char *)name, strlen(name) + 1);
    crypto_hash_sha256_update(h, (const unsigned char *)text, len);
    wd_ynode *doc = wd_ydoc_parse(text, len, e, sizeof e);
    free(text);
    if (!doc) {
        char *fix = NULL;
        wd_perrors *errs = c->errs;
        if (asprintf(&fix, "%s:%s", name, e) > 0) {
            char **v = realloc(errs->v, (errs->n + 1) * sizeof *v);
            if (v) {
                errs->v = v;
                v[errs->n++] = fix;
            } else {
                free(fix);
            }
        }
        return NULL;
    }
    set_file(doc, name);
    int empty = (doc->kind == WD_Y_MAP && !doc->n) || wd_ydoc_is_null(doc);
    if (empty || doc->kind != WD_Y_MAP) {
        wd_yread_err(c, empty ? NULL : doc,
                     empty ? "the file is empty; remove it or give it settings" : "a policy file must be a mapping");
        wd_ydoc_free(doc);
        return NULL;
    }
    return doc;
}

/* a directory: *.yaml and *.yml merged in name order */
static wd_policy *load_dir(const char *path, wd_perrors *errs)
{
    wd_yread c = {errs, NULL, path};
    char *names[MAX_POLICY_FILES];
    int nn = list_files(path, names);
    if (nn < 0) {
        wd_yread_err(&c, NULL, "cannot open policy directory: %s", strerror(errno));
        return NULL;
    }
    wd_ynode *root = NULL;
    wd_policy *p = NULL;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    for (int i = 0; i < nn; i++) {
        wd_ynode *doc = read_part(&c, names[i], &h);
        if (!doc)
            continue;
        if (!root)
            root = doc;
        else
            merge(root, doc);
    }
    c.fname = path;
    if (!nn) {
        wd_yread_err(&c, NULL, "no *.yaml files in the policy directory");
    } else if (root && !errs->n) {
        p = load_root(root, path, errs);
    }
    unsigned char d[32];
    crypto_hash_sha256_final(&h, d);
    if (p)
        sodium_bin2hex(p->sha256, sizeof p->sha256, d, sizeof d);
    wd_ydoc_free(root);
    for (int i = 0; i < nn; i++)
        free(names[i]);
    return p;
}

wd_policy *wd_policy_load(const char *path, wd_perrors *errs)
{
    struct stat st;
    wd_yread c = {errs, NULL, path};
    if (stat(path, &st) < 0) {
        wd_yread_err(&c, NULL, "cannot read policy: %s", strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode))
        return load_dir(path, errs);
    size_t len;
    char *text = wd_read_file(path, WD_YDOC_MAX_BYTES, &len);
    if (!text) {
        wd_yread_err(&c, NULL, "cannot read policy: %s", wd_read_error(errno, WD_YDOC_MAX_BYTES));
        return NULL;
    }
    wd_policy *p = wd_policy_load_text(text, len, path, errs);
    free(text);
    return p;
}

wd_policy *wd_policy_ref(wd_policy *p)
{
    if (p)
        __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void wd_policy_unref(wd_policy *p)
{
    if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(p->path);
    wd_yread_strlist_free(&p->roles);
    for (size_t i = 0; i < p->n_users; i++) {
        free(p->users[i].name);
        free(p->users[i].api_key_sha256);
        free(p->users[i].os_user);
    }
    free(p->users);
    for (size_t i = 0; i < p->n_tiers; i++)
        free(p->tiers[i].name);
    free(p->tiers);
    for (size_t i = 0; i < p->n_models; i++) {
        wd_model *m = &p->models[i];
        free(m->alias);
        free(m->provider);
        free(m->name);
        free(m->base_url);
        free(m->api_key_env);
    }
    free(p->models);
    for (size_t i = 0; i < p->n_tools; i++) {
        wd_tool_policy *t = &p->tools[i];
        free(t->name);
        free(t->risk);
        free(t->category);
        wd_yread_strlist_free(&t->allowed_resources);
        wd_yread_strlist_free(&t->writable_resources);
        wd_yread_strlist_free(&t->path_arguments);
        wd_yread_strlist_free(&t->allowed_hosts);
        wd_yread_rxlist_free(&t->forbidden);
        wd_schema_free(t->schema);
        json_decref(t->schema_json);
    }
    free(p->tools);
    json_decref(p->routes);
    json_decref(p->detectors);
    json_decref(p->autonomy);
    free(p->audit_path);
    wd_yread_strlist_free(&p->redact_keys);
    wd_yread_rxlist_free(&p->redact_patterns);
    wd_yread_strlist_free(&p->redact_pattern_names);
    wd_yread_strlist_free(&p->personal_fields);
    wd_policy_webhooks_free(p);
    wd_policy_mcp_free(p);
    free(p->store_path);
    free(p);
}

const wd_user *wd_policy_user(const wd_policy *p, const char *name)
{
    for (size_t i = 0; name && i < p->n_users; i++)
        if (!strcmp(p->users[i].name, name))
            return &p->users[i];
    return NULL;
}

/* s matches pat, whose '*' stands for any run of characters (nothing else is special) */
static int glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) { /* the last star takes one more character */
            pat = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return !*pat;
}

/* ** A tool's rule: its own (by name) if it has one; else the most specific pattern that
** matches it, the one with the most characters besides '*' (the first in the file on a
** tie). A name no rule matches is undeclared: refused. */
const wd_tool_policy *wd_policy_tool(const wd_policy *p, const char *name)
{
    const wd_tool_policy *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; name && i < p->n_tools; i++) {
        const wd_tool_policy *t = &p->tools[i];
        if (!t->pattern) {
            if (!strcmp(t->name, name))
                return t;
            continue;
        }
        size_t lit = strlen(t->name);
        for (const char *c = t->name; *c; c++)
            lit -= *c == '*';
        if ((!best || lit > best_len) && glob_match(t->name, name)) {
            best = t;
            best_len = lit;
        }
    }
    return best;
}

double wd_model_cost(const wd_model *m, double in, double out)
{
    return m ? in / 1000.0 * m->input_usd_per_1k + out / 1000.0 * m->output_usd_per_1k : 0;
}

const wd_model *wd_policy_model(const wd_policy *p, const char *alias)
{
    for (size_t i = 0; alias && i < p->n_models; i++)
        if (!strcmp(p->models[i].alias, alias))
            return &p->models[i];
    return NULL;
}

const wd_tier *wd_policy_tier_of(const wd_policy *p, const wd_user *u)
{
    if (!u || u->tier < 0 || (size_t)u->tier >= p->n_tiers)
        return NULL;
    return &p->tiers[u->tier];
}
