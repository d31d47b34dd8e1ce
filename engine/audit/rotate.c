/* rotate.c - a rotated audit log's files: numbers, ends, retention */
#include "rotate.h"
#include "reader.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <dirent.h>

long wd_rotate_next_number(const char *path)
{
    char *d1 = wd_strdup(path), *d2 = wd_strdup(path);
    long max = 0;
    DIR *d = d1 && d2 ? opendir(dirname(d1)) : NULL;
    const char *base = d2 ? basename(d2) : "";
    size_t bl = strlen(base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char name[512];
        wd_strlcpy(name, e->d_name, sizeof name);
        size_t l = strlen(name);
        if (l > bl + 3 && !strcmp(name + l - 3, ".gz"))
            name[l - 3] = '\0'; /* an archived one keeps its number taken */
        long n = wd_audit_file_number(base, name);
        if (n > max)
            max = n;
    }
    if (d)
        closedir(d);
    free(d1);
    free(d2);
    return max + 1;
}

/* the record on one line (without its newline) read into fields */
static void read_line(const char *line, long long *seq, char hash[65], int64_t *ms)
{
    json_t *r = json_loads(line, JSON_ALLOW_NUL, NULL);
    json_t *s = json_object_get(r, "seq"), *h = json_object_get(r, "hash");
    if (seq)
        *seq = json_is_integer(s) ? json_integer_value(s) : -1;
    if (hash)
        wd_strlcpy(hash, json_is_string(h) ? json_string_value(h) : "", 65);
    if (ms) {
        const char *ts = json_string_value(json_object_get(r, "timestamp"));
        *ms = ts ? wd_parse_time(ts) : 0;
        if (*ms < 0)
            *ms = 0;
    }
    json_decref(r);
}

int wd_rotate_ends(const char *file, long long *first_seq, long long *last_seq, char last_hash[65], int64_t *first_ms)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    char *line = NULL, *last = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = -1;
    if ((n = getline(&line, &cap, f)) > 0) {
        line[strcspn(line, "\n")] = '\0';
        read_line(line, first_seq, NULL, first_ms);
        last = wd_strdup(line);
        rc = 0;
    }
    /* the last complete line: read from near the end */
    if (rc == 0 && fseeko(f, 0, SEEK_END) == 0) {
        off_t size = ftello(f), from = size > 65536 ? size - 65536 : 0;
        if (fseeko(f, from, SEEK_SET) < 0 || (from > 0 && getline(&line, &cap, f) < 0))
            clearerr(f); /* only the first line, then */
        while ((n = getline(&line, &cap, f)) > 0)
            if (line[n - 1] == '\n') {
                line[n - 1] = '\0';
                free(last);
                last = wd_strdup(line);
            }
    }
    if (rc == 0 && last)
        read_line(last, last_seq, last_hash, NULL);
    free(line);
    free(last);
    fclose(f);
    return rc;
}

json_t *wd_rotate_plan(const char *path, const wd_audit_rotation *r, int64_t now_ms)
{
    if (!r->keep_files && !r->keep_ms)
        return NULL;
    wd_strlist files;
    if (wd_audit_files(path, &files) < 0) {
        wd_audit_files_free(&files);
        return NULL;
    }
    /* the rotated ones: all but the live file, which is last, and a name a crash left
    ** on the live file (it keeps that number at this rotation: never a candidate) */
    struct stat live, st;
    size_t rotated = files.n && !strcmp(files.v[files.n - 1], path) ? files.n - 1 : files.n;
    if (rotated && stat(path, &live) == 0 && stat(files.v[rotated - 1], &st) == 0 && st.st_ino == live.st_ino &&
        st.st_dev == live.st_dev)
        rotated--;
    size_t after = rotated + 1; /* the file being rotated joins them */
    json_t *plan = json_array();
    for (size_t i = 0; plan && i < rotated; i++) {
        int too_many = r->keep_files && after - i > (size_t)r->keep_files;
        int too_old = r->keep_ms && stat(files.v[i], &st) == 0 && (int64_t)st.st_mtime * 1000 + r->keep_ms < now_ms;
        if (!too_many && !too_old)
            continue;
        long long first = -1, last = -1;
        char hash[65] = "";
        wd_rotate_ends(files.v[i], &first, &last, hash, NULL);
        char *gz = NULL;
        if (r->archive && asprintf(&gz, "%s.gz", files.v[i]) < 0)
            gz = NULL;
        json_array_append_new(plan,
                              json_pack("{s:s,s:I,s:I,s:s,s:s?}", "file", files.v[i], "first_seq", (json_int_t)first,
                                        "last_seq", (json_int_t)last, "last_hash", hash, "archived_to", gz));
        free(gz);
    }
    wd_audit_files_free(&files);
    if (plan && !json_array_size(plan)) {
        json_decref(plan);
        return NULL;
    }
    return plan;
}

/* src compressed into dst (created 0600, replaced when there); 0 or -1 */
static int gzip_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    wd_file_own_like_dir(out, dst);
    gzFile gz = out >= 0 ? gzdopen(out, "wb9") : NULL;
    int rc = in >= 0 && gz ? 0 : -1;
    char buf[65536];
    ssize_t n;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || gzwrite(gz, buf, (unsigned)n) != (int)n)
            rc = -1;
    }
    if (gz) {
        if (gzclose(gz) != Z_OK)
            rc = -1;
    } else if (out >= 0) {
        close(out);
    }
    if (in >= 0)
        close(in);
    if (rc < 0)
        unlink(dst);
    return rc;
}

int wd_rotate_apply(const json_t *plan, char *err, size_t n)
{
    int failed = 0;
    size_t i;
    json_t *e;
    json_array_foreach(plan, i, e)
    {
        const char *file = json_string_value(json_object_get(e, "file"));
        const char *gz = json_string_value(json_object_get(e, "archived_to"));
        if (gz && gzip_file(file, gz) < 0) {
            wd_errf(err, n, "audit retention: cannot archive %s to %s: %s", file, gz, strerror(errno));
            failed++;
            continue; /* kept: a file is never removed before its archive is whole */
        }
        if (unlink(file) < 0) {
            wd_errf(err, n, "audit retention: cannot remove %s: %s", file, strerror(errno));
            failed++;
        }
    }
    return failed;
}
