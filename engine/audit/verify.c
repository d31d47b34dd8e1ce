/* verify.c - an audit log's chain checked, over every file it was rotated into */
#include "audit.h"
#include "events.h"
#include "canon.h"
#include "reader.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* One line of the log (n bytes with its newline) against the chain so far: its seq after
** *expect_seq, its prev_hash prev, its hash over its canonical content. 0 and the chain
** moved on, or 1 with the break in report. */
static int verify_line(char *line, ssize_t n, const char *path, long lineno, long long *expect_seq, char prev[65],
                       EVP_MD_CTX **md, wd_buf *report, json_t *removed)
{
    line[n - 1] = '\0';
    json_error_t je;
    json_t *rec = json_loads(line, JSON_ALLOW_NUL, &je);
    if (!json_is_object(rec)) {
        wd_buf_addf(report, "%s:%ld: not a JSON object (%s): the line was edited", path, lineno, je.text);
        json_decref(rec);
        return 1;
    }
    json_t *h = json_object_get(rec, "hash"), *ph = json_object_get(rec, "prev_hash"),
           *seq = json_object_get(rec, "seq");
    if (!json_is_string(h) || !json_is_string(ph) || !json_is_integer(seq)) {
        wd_buf_addf(report, "%s:%ld: missing seq, prev_hash or hash: the line was edited", path, lineno);
        json_decref(rec);
        return 1;
    }
    char want_hash[65];
    wd_strlcpy(want_hash, json_string_value(h), sizeof want_hash);
    const char *ev = json_string_value(json_object_get(rec, "event"));
    if (ev && !strcmp(ev, wd_event_name(WD_AE_AUDIT_RETENTION))) { /* what it removed, for the chain's start */
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(rec, "removed"), i, e)
            json_array_append(removed, json_object_get(e, "last_hash"));
    }
    long long s = json_integer_value(seq);
    int seq_ok = s == *expect_seq + 1;
    int prev_ok = !strcmp(json_string_value(ph), prev);
    json_object_del(rec, "hash");
    wd_buf canon = {0};
    char got[65];
    if (wd_json_canon(rec, &canon) < 0)
        wd_buf_free(&canon);
    char ph64[65] = {0}; /* an edited prev_hash may be short: hash 64 bytes of ours */
    strncpy(ph64, json_string_value(ph), 64);
    wd_audit_hash(md, ph64, canon.p ? canon.p : "", canon.len, got);
    wd_buf_free(&canon);
    json_decref(rec);
    if (strcmp(got, want_hash)) {
        wd_buf_addf(report, "%s:%ld: hash does not match the record's content: the line was edited", path, lineno);
        return 1;
    }
    if (!prev_ok || !seq_ok) {
        wd_buf_addf(report,
                    "%s:%ld: chain broken (seq %lld after %lld; prev_hash does %smatch the line before): "
                    "a line was deleted, inserted or moved here",
                    path, lineno, s, *expect_seq, prev_ok ? "" : "not ");
        return 1;
    }
    *expect_seq = s;
    memcpy(prev, want_hash, 65);
    return 0;
}

/* ** Where the chain starts. The first file's first record is seq 1 after 64 zeros, or
** the audit_rotated record a rotation began the file with (its prev_hash the last hash
** of a file retention removed since): then *link gets that hash, which a later
** audit_retention record must name, or files were removed by hand. */
static int chain_start(const char *line, const char *file, long long *expect_seq, char prev[65], char link[65],
                       wd_buf *report)
{
    json_t *r = json_loads(line, JSON_ALLOW_NUL, NULL);
    json_t *seq = json_object_get(r, "seq"), *ph = json_object_get(r, "prev_hash");
    const char *ev = json_string_value(json_object_get(r, "event"));
    int rc = 0;
    if (json_is_integer(seq) && json_integer_value(seq) > 1 && json_is_string(ph) && json_string_length(ph) == 64 &&
        ev && !strcmp(ev, wd_event_name(WD_AE_AUDIT_ROTATED))) {
        *expect_seq = json_integer_value(seq) - 1;
        memcpy(prev, json_string_value(ph), 65);
        memcpy(link, prev, 65);
    } else if (json_is_integer(seq) && json_integer_value(seq) != 1) {
        wd_buf_addf(report,
                    "%s:1: the chain starts at seq %lld, not 1, without a rotation: records before it were removed",
                    file, (long long)json_integer_value(seq));
        rc = 1;
    }
    json_decref(r);
    return rc;
}

/* one file of the chain; 0 intact so far, 1 broken (report says where), -1 unreadable */
static int verify_file(const char *file, int first, long long *expect_seq, char prev[65], char link[65],
                       EVP_MD_CTX **md, wd_buf *report, json_t *removed, long *records)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        wd_buf_addf(report, "%s: cannot open: %s", file, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            wd_buf_addf(report, "%s:%ld: torn last line (no newline): a crash mid-write or a cut file", file, lineno);
            rc = 1;
            break;
        }
        if (first && lineno == 1 && (rc = chain_start(line, file, expect_seq, prev, link, report)))
            break;
        rc = verify_line(line, n, file, lineno, expect_seq, prev, md, report, removed);
    }
    free(line);
    fclose(f);
    *records += lineno;
    return rc;
}

int wd_audit_verify(const char *path, wd_buf *report, long *records)
{
    wd_strlist files;
    long n = 0;
    if (wd_audit_files(path, &files) <= 0 || strcmp(files.v[files.n - 1], path)) {
        wd_buf_addf(report, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
        wd_audit_files_free(&files);
        if (records)
            *records = 0;
        return -1;
    }
    long long expect_seq = 0;
    char prev[65], link[65] = "";
    memcpy(prev, ZERO_HASH, 65);
    EVP_MD_CTX *md = NULL;
    json_t *removed = json_array();
    int rc = 0;
    for (size_t i = 0; i < files.n && !rc; i++)
        rc = verify_file(files.v[i], i == 0, &expect_seq, prev, link, &md, report, removed, &n);
    if (!rc && link[0]) {
        int named = 0;
        size_t i;
        json_t *h;
        json_array_foreach(removed, i, h) named |= json_is_string(h) && !strcmp(json_string_value(h), link);
        if (!named) {
            wd_buf_addf(report,
                        "%s:1: the chain continues from a file that is gone (hash %.16s...) and no audit_retention "
                        "record says it was removed: files were deleted",
                        files.v[0], link);
            rc = 1;
        }
    }
    if (!rc && files.n > 1)
        wd_buf_addf(report, "%s: intact, %ld records in %zu files", path, n, files.n);
    else if (!rc)
        wd_buf_addf(report, "%s: intact, %ld records", path, n);
    json_decref(removed);
    EVP_MD_CTX_free(md);
    wd_audit_files_free(&files);
    if (records)
        *records = n;
    return rc;
}

/* ---- a view merged from several hosts' logs (warden audit merge): one chain per host ---- */

typedef struct chain {
    char host[256];
    long long seq;
    char prev[65], link[65];
} chain;

/* the chain of rec's host, started when new; NULL when out of memory */
static chain *chain_of(chain **v, size_t *n, const char *host)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i].host, host))
            return &(*v)[i];
    chain *m = realloc(*v, (*n + 1) * sizeof *m);
    if (!m)
        return NULL;
    *v = m;
    chain *c = &m[(*n)++];
    memset(c, 0, sizeof *c);
    wd_strlcpy(c->host, host, sizeof c->host);
    memcpy(c->prev, ZERO_HASH, 65);
    c->seq = -1; /* not started */
    return c;
}

/* ** Each record goes on the chain of its host: the host's first record starts it (seq 1,
** or the rotation record a kept file began with), every later one must follow it as in
** the host's own file. A record moved, removed, edited or made up breaks its host's
** chain, whatever the records of other hosts around it. */
int wd_audit_verify_merged(const char *path, wd_buf *report, long *records)
{
    FILE *f = fopen(path, "r");
    if (records)
        *records = 0;
    if (!f) {
        wd_buf_addf(report, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    chain *v = NULL;
    size_t nv = 0;
    EVP_MD_CTX *md = NULL;
    json_t *removed = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            wd_buf_addf(report, "%s:%ld: torn last line (no newline): a cut file", path, lineno);
            rc = 1;
            break;
        }
        json_t *r = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, NULL);
        const char *h = json_string_value(json_object_get(r, "host"));
        chain *c = chain_of(&v, &nv, h ? h : "");
        json_decref(r);
        if (!c) {
            wd_buf_addf(report, "%s: out of memory", path);
            rc = -1;
            break;
        }
        if (c->seq < 0) {
            c->seq = 0;
            char name[400];
            snprintf(name, sizeof name, "%s (host %s)", path, c->host[0] ? c->host : "none");
            if ((rc = chain_start(line, name, &c->seq, c->prev, c->link, report)))
                break;
        }
        rc = verify_line(line, n, path, lineno, &c->seq, c->prev, &md, report, removed);
    }
    free(line);
    fclose(f);
    if (!rc)
        wd_buf_addf(report, "%s: intact, %ld records of %zu host%s", path, lineno, nv, nv == 1 ? "" : "s");
    if (records)
        *records = lineno;
    free(v);
    json_decref(removed);
    EVP_MD_CTX_free(md);
    return rc;
}
