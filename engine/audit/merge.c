/* merge.c - several hosts' audit logs interleaved into one time-ordered view (warden
** audit merge). Each line is copied byte for byte, so every record keeps its hash and
** its place on its own host's chain: wd_audit_verify_merged checks the view host by host. */
#include "audit.h"
#include "reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* one input log: its files (rotated ones first) and its next line */
typedef struct input {
    const char *path;
    wd_strlist files;
    size_t next;
    FILE *f;
    char *line;
    size_t cap;
    ssize_t len;
    char ts[40], host[256];
    long long seq;
} input;

/* the input's next line read (0), or its end (1) */
static int advance(input *in)
{
    for (;;) {
        if (!in->f) {
            if (in->next >= in->files.n)
                return 1;
            in->f = fopen(in->files.v[in->next++], "r");
            continue;
        }
        if ((in->len = getline(&in->line, &in->cap, in->f)) > 0)
            break;
        fclose(in->f);
        in->f = NULL;
    }
    json_t *r = json_loadb(in->line, (size_t)in->len, JSON_ALLOW_NUL, NULL);
    const char *ts = json_string_value(json_object_get(r, "timestamp"));
    const char *h = json_string_value(json_object_get(r, "host"));
    wd_strlcpy(in->ts, ts ? ts : "", sizeof in->ts);
    wd_strlcpy(in->host, h ? h : "", sizeof in->host);
    in->seq = json_integer_value(json_object_get(r, "seq"));
    json_decref(r);
    return 0;
}

/* a before b: earlier, then by host, then along the chain */
static int before(const input *a, const input *b)
{
    int c = strcmp(a->ts, b->ts);
    if (!c)
        c = strcmp(a->host, b->host);
    return c < 0 || (!c && a->seq < b->seq);
}

static void close_input(input *in)
{
    if (in->f)
        fclose(in->f);
    free(in->line);
    wd_audit_files_free(&in->files);
}

/* every input intact, each with a host of its own: 0, or 1 with the reason */
static int check_inputs(input *in, size_t n, wd_buf *report)
{
    for (size_t i = 0; i < n; i++) {
        wd_buf vr = {0};
        int v = wd_audit_verify(in[i].path, &vr, NULL);
        if (v) {
            wd_buf_addf(report, "%s: will not merge a log that does not verify: %s", in[i].path, vr.p ? vr.p : "?");
            wd_buf_free(&vr);
            return 1;
        }
        wd_buf_free(&vr);
        if (wd_audit_files(in[i].path, &in[i].files) <= 0 || advance(&in[i])) {
            wd_buf_addf(report, "%s: empty", in[i].path);
            return 1;
        }
        if (!in[i].host[0]) {
            wd_buf_addf(report,
                        "%s: its records name no host: logs of processes sharing a Redis store do, and WARDEN_HOST "
                        "names one elsewhere",
                        in[i].path);
            return 1;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(in[j].host, in[i].host)) {
                wd_buf_addf(report, "%s and %s: both are host %s's: give each host its own WARDEN_HOST", in[j].path,
                            in[i].path, in[i].host);
                return 1;
            }
    }
    return 0;
}

int wd_audit_merge(const char *const *paths, size_t n, FILE *out, wd_buf *report, long *records)
{
    *records = 0;
    input *in = calloc(n ? n : 1, sizeof *in);
    if (!in) {
        wd_buf_addf(report, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        in[i].path = paths[i];
    int rc = check_inputs(in, n, report);
    int *done = rc ? NULL : calloc(n, sizeof *done);
    if (!rc && !done) {
        wd_buf_addf(report, "out of memory");
        rc = -1;
    }
    while (!rc) {
        size_t k = n;
        for (size_t i = 0; i < n; i++)
            if (!done[i] && (k == n || before(&in[i], &in[k])))
                k = i;
        if (k == n)
            break;
        if (fwrite(in[k].line, 1, (size_t)in[k].len, out) != (size_t)in[k].len) {
            wd_buf_addf(report, "cannot write the merged view: %s", strerror(errno));
            rc = -1;
            break;
        }
        (*records)++;
        done[k] = advance(&in[k]);
    }
    if (!rc)
        wd_buf_addf(report, "merged %ld records of %zu hosts", *records, n);
    free(done);
    for (size_t i = 0; i < n; i++)
        close_input(&in[i]);
    free(in);
    return rc;
}
