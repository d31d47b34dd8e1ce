/* audit.c - buffered, hash-chained JSON lines with group fsync and torn-line repair. */
#include "events.h"
#include "audit.h"
#include "canon.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STAGE_GROUP 8 /* one group costs ~16 us: every eighth call pays it (p99 26 us) */
#define ZERO_HASH   "0000000000000000000000000000000000000000000000000000000000000000"

struct wd_audit {
    char *path;
    int fd;
    int fsync_mode;
    int failed;
    char errmsg[256];
    /* records rendered soon after they are appended, in small groups, while their trees
    ** are still in the cache (at the flush, a thousand runs later, each node was a
    ** miss): the canonical members in text, with the places of prev_hash and seq, which
    ** only the flush knows. A group keeps the rendering out of most calls' own path. */
    json_t *fresh[STAGE_GROUP];
    size_t nfresh;
    wd_buf text;
    wd_buf out; /* the lines of a flush; kept between flushes: growing a fresh buffer
                ** to a flush's size each time cost page faults and copies */
    struct pending {
        size_t start, prev_at, seq_at, end;
        size_t line_at, line_end; /* in out, once rendered */
        char run[37], event[40];  /* for the observer */
    } * pending;
    size_t npending, cap;
    long long appended, written; /* records taken, and of those the ones in the file */
    int unsynced;                /* written without the disk's flush: the next batch flush asks for it */
    off_t known_size;            /* file size after our last write; -1 unknown */
    long long seq;
    char prev_hash[65];
    EVP_MD_CTX *md;
    json_t *ts; /* the timestamp of the millisecond ts_ms */
    int64_t ts_ms;
    /* fsync: batch syncs on a thread of its own: a flush writes under the file lock
    ** and returns, while fdatasync (0.5 ms typically, 14 ms seen, on a virtual disk)
    ** stalls neither this loop nor the other writers waiting for the lock */
    pthread_t syncer;
    int has_syncer, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long long want, synced; /* flushes written, and synced */
    atomic_int sync_failed;
    char sync_errmsg[256]; /* written by the syncer before sync_failed is set */
    const char *check;     /* WARDEN_CHECK_RECORDS (check_record) */
    wd_audit_observer observer;
    void *observer_ud;
};

void wd_audit_observe(wd_audit *a, wd_audit_observer fn, void *ud)
{
    a->observer = fn;
    a->observer_ud = ud;
}

/* a string member of rec into out, "" when there is none */
static void member(const json_t *rec, const char *key, char *out, size_t n)
{
    const char *v = json_string_value(json_object_get(rec, key));
    wd_strlcpy(out, v ? v : "", n);
}

static int mkdirs(const char *path)
{
    char *dup = strdup(path);
    if (!dup)
        return -1;
    char *dir = dirname(dup);
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0750);
            *p = '/';
        }
    int rc = mkdir(dir, 0750);
    free(dup);
    return rc == 0 || errno == EEXIST ? 0 : -1;
}

wd_audit *wd_audit_open(const char *path, int fsync_mode, char *err, size_t errlen)
{
    wd_audit *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    a->fsync_mode = fsync_mode;
    a->known_size = -1;
    a->check = getenv("WARDEN_CHECK_RECORDS");
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    mkdirs(path);
    a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (a->fd < 0) {
        wd_errf(err, errlen, "cannot open audit log %s: %s", path, strerror(errno));
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a->path);
        free(a);
        return NULL;
    }
    return a;
}

void wd_audit_close(wd_audit *a)
{
    if (!a)
        return;
    wd_audit_flush(a);
    if (a->has_syncer) { /* the last flush is synced before the log is closed */
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->syncer, NULL);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    for (size_t i = 0; i < a->nfresh; i++)
        json_decref(a->fresh[i]);
    json_decref(a->ts);
    wd_buf_free(&a->text);
    wd_buf_free(&a->out);
    free(a->pending);
    EVP_MD_CTX_free(a->md);
    if (a->fd >= 0)
        close(a->fd);
    free(a->path);
    free(a);
}

int wd_audit_failed(const wd_audit *a) { return a->failed || atomic_load(&((wd_audit *)a)->sync_failed); }
const char *wd_audit_path(const wd_audit *a) { return a->path; }
const char *wd_audit_error(const wd_audit *a)
{
    if (!a->failed && atomic_load(&((wd_audit *)a)->sync_failed))
        return a->sync_errmsg;
    return a->errmsg;
}
size_t wd_audit_pending(const wd_audit *a) { return a->npending + a->nfresh; }

/* sync 0: written now, synced by the next flush that syncs (batch mode): a run's first
** record and the records its result waits for are in the file before it acts or answers,
** and the disk's flush stays one per batch */
static int flush_impl(wd_audit *a, int sync);

long long wd_audit_appended(const wd_audit *a) { return a->appended; }

long long wd_audit_durable_mark(const wd_audit *a) { return a->written; }

int wd_audit_durable(wd_audit *a, long long upto)
{
    if (wd_audit_failed(a))
        return -1;
    if (a->written >= upto)
        return 0;
    return flush_impl(a, 0);
}

static int fail_closed(wd_audit *a, const char *what);

/* the members the chain writes itself, sorted */
static const char *const CHAIN_KEYS[] = {"hash", "prev_hash", "seq", NULL};

/* rec (not consumed) into the pending text; 0 or -1 */
static int stage(wd_audit *a, const json_t *rec)
{
    if (a->npending == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        struct pending *p = realloc(a->pending, cap * sizeof *p);
        if (!p)
            return -1;
        a->pending = p;
        a->cap = cap;
    }
    size_t at[3], start = a->text.len;
    if (wd_json_canon_members(rec, &a->text, CHAIN_KEYS, at) < 0) {
        a->text.len = start;
        if (a->text.p)
            a->text.p[start] = '\0';
        return -1;
    }
    struct pending *pd = &a->pending[a->npending++];
    *pd = (struct pending){start, at[1], at[2], a->text.len, 0, 0, "", ""};
    if (a->observer) {
        member(rec, "run_id", pd->run, sizeof pd->run);
        member(rec, "event", pd->event, sizeof pd->event);
    }
    return 0;
}

/* the fresh records into the pending text; -1 when one could not be rendered */
static int stage_fresh(wd_audit *a)
{
    int rc = 0;
    for (size_t i = 0; i < a->nfresh; i++) {
        if (!rc && stage(a, a->fresh[i]) < 0)
            rc = -1;
        json_decref(a->fresh[i]);
    }
    a->nfresh = 0;
    return rc;
}

/* ** The test suite's check that every member of a record is declared for its event
** (events.h): WARDEN_CHECK_RECORDS=1 aborts on a stray member, a path collects them. */
static void check_record(const char *mode, const json_t *rec)
{
    if (!mode || !*mode)
        return;
    const char *stray = wd_event_stray(rec);
    if (!stray)
        return;
    const char *event = json_string_value(json_object_get(rec, "event"));
    if (strcmp(mode, "1")) { /* every stray member, one line each */
        FILE *f = fopen(mode, "a");
        json_t *copy = f ? json_copy((json_t *)rec) : NULL;
        /* each turn removes the member it reports; an unknown event ends it at once */
        for (size_t left = json_object_size(rec); copy && stray && left > 0; left--) {
            fprintf(f, "%s %s\n", event ? event : "?", stray);
            if (!strcmp(stray, "event"))
                break;
            json_object_del(copy, stray);
            stray = wd_event_stray(copy);
        }
        json_decref(copy);
        if (f)
            fclose(f);
        return;
    }
    fprintf(stderr, "warden: a record of event %s has member %s, which audit/events.c does not declare for it\n",
            event ? event : "(none)", stray);
    abort();
}

int wd_audit_append(wd_audit *a, json_t *rec)
{
    if (!rec)
        return -1;
    check_record(a->check, rec);
    if (wd_audit_failed(a)) {
        json_decref(rec);
        return -1;
    }
    /* records come in bursts: one timestamp value serves every record of its millisecond */
    int64_t ms = wd_wall_ms();
    if (ms != a->ts_ms || !a->ts) {
        char ts[40];
        wd_rfc3339_ms(ms, ts, sizeof ts);
        json_decref(a->ts);
        a->ts = json_string(ts);
        a->ts_ms = ms;
    }
    json_object_set(rec, "timestamp", a->ts);
    a->fresh[a->nfresh++] = rec;
    a->appended++;
    if (a->nfresh == STAGE_GROUP && stage_fresh(a) < 0) {
        errno = ENOMEM;
        return fail_closed(a, "render");
    }
    if (a->fsync_mode == WD_FSYNC_ALWAYS)
        return wd_audit_flush(a);
    return 0;
}

static void hex(const unsigned char *h, char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = '\0';
}

static EVP_MD *sha256_md;

static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

/* hash of prev_hash followed by the canonical text, with ctx (made on first use).
** OpenSSL's SHA-256 uses the CPU's SHA extensions where there are some: 4-5x faster
** than libsodium's portable code per record */
static void chain_hash(EVP_MD_CTX **ctx, const char *prev, const char *canon, size_t len, char out[65])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    unsigned char h[32];
    unsigned n = 0;
    pthread_once(&once, sha256_fetch);
    if (!*ctx)
        *ctx = EVP_MD_CTX_new();
    if (!sha256_md || !*ctx || !EVP_DigestInit_ex2(*ctx, sha256_md, NULL) || !EVP_DigestUpdate(*ctx, prev, 64) ||
        !EVP_DigestUpdate(*ctx, canon, len) || !EVP_DigestFinal_ex(*ctx, h, &n) || n != 32) {
        /* no SHA-256 at all: a hash nobody can match, so the chain reads as broken */
        memset(out, 'x', 64);
        out[64] = '\0';
        return;
    }
    hex(h, out);
}

/* read [from, to) of the file; caller frees */
static char *read_range(int fd, off_t from, off_t to)
{
    size_t n = (size_t)(to - from);
    char *b = malloc(n + 1);
    if (!b)
        return NULL;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, from + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(b);
            return NULL;
        }
        got += (size_t)r;
    }
    b[n] = '\0';
    return b;
}

/* Under the lock: learn seq and prev_hash from the file's last line, cutting a torn
** tail off first. *recovery gets a record describing the cut, if any. */
static int sync_tail(wd_audit *a, off_t size, json_t **recovery)
{
    *recovery = NULL;
    a->seq = 0;
    memcpy(a->prev_hash, ZERO_HASH, 65);
    if (size == 0)
        return 0;
    off_t span = 4096;
    for (;;) {
        off_t from = size > span ? size - span : 0;
        char *b = read_range(a->fd, from, size);
        if (!b)
            return -1;
        size_t n = (size_t)(size - from);
        size_t end; /* end of the last complete line (exclusive of '\n') */
        if (b[n - 1] != '\n') {
            char *nl = memrchr(b, '\n', n);
            if (!nl && from > 0) {
                free(b);
                span *= 4;
                continue;
            }
            size_t keep = nl ? (size_t)(nl - b) + 1 : 0;
            json_t *r = json_object();
            char reason[160];
            snprintf(reason, sizeof reason, "torn last line of %zu bytes cut off at offset %lld", n - keep,
                     (long long)(from + (off_t)keep));
            char ts[40];
            wd_rfc3339_ms(wd_wall_ms(), ts, sizeof ts);
            json_object_set_new(r, "event", json_string(wd_event_name(WD_AE_AUDIT_RECOVERED)));
            json_object_set_new(r, "timestamp", json_string(ts));
            json_object_set_new(r, "success", json_false());
            json_object_set_new(r, "reason", json_string(reason));
            json_t *frag = json_stringn(b + keep, n - keep > 4096 ? 4096 : n - keep);
            json_object_set_new(r, "torn_fragment", frag ? frag : json_string("(not valid UTF-8)"));
            if (ftruncate(a->fd, from + (off_t)keep) < 0) {
                json_decref(r);
                free(b);
                return -1;
            }
            *recovery = r;
            size = from + (off_t)keep;
            end = keep ? keep - 1 : 0;
            if (!keep) {
                free(b);
                if (size == 0)
                    return 0;
                continue; /* the tail we read was all torn: read again before it */
            }
        } else {
            end = n - 1;
        }
        char *start = memrchr(b, '\n', end);
        if (!start && from > 0) {
            free(b);
            span *= 4;
            continue;
        }
        start = start ? start + 1 : b;
        b[end] = '\0';
        json_t *last = json_loads(start, JSON_ALLOW_NUL, NULL);
        free(b);
        json_t *seq = json_object_get(last, "seq"), *h = json_object_get(last, "hash");
        if (json_is_integer(seq))
            a->seq = json_integer_value(seq);
        if (json_is_string(h) && json_string_length(h) == 64)
            memcpy(a->prev_hash, json_string_value(h), 65);
        json_decref(last);
        return 0;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fail_closed(wd_audit *a, const char *what)
{
    a->failed = 1;
    snprintf(a->errmsg, sizeof a->errmsg, "audit log %s: %s failed: %s", a->path, what, strerror(errno));
    return -1;
}

static void *sync_main(void *arg)
{
    wd_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->synced == a->want && !a->stop)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->synced == a->want)
            break; /* stopping, nothing left */
        unsigned long long upto = a->want;
        pthread_mutex_unlock(&a->mu);
        /* an fsync error is fatal for the log: the page cache may have dropped the data */
        if (!atomic_load(&a->sync_failed) && fdatasync(a->fd) < 0) {
            snprintf(a->sync_errmsg, sizeof a->sync_errmsg, "audit log %s: fsync failed: %s", a->path, strerror(errno));
            atomic_store(&a->sync_failed, 1);
        }
        pthread_mutex_lock(&a->mu);
        a->synced = upto;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* what was written gets synced soon; 0, or -1 when no thread could be started (the
** caller syncs itself then) */
static int sync_later(wd_audit *a)
{
    pthread_mutex_lock(&a->mu);
    if (!a->has_syncer) {
        if (pthread_create(&a->syncer, NULL, sync_main, a) != 0) {
            pthread_mutex_unlock(&a->mu);
            return -1;
        }
        a->has_syncer = 1;
    }
    a->want++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* one staged record into its line: seq and prev_hash put in their places, the
** canonical text hashed, the hash appended last */
static int render(wd_audit *a, struct pending *r, wd_buf *out)
{
    const char *t = a->text.p;
    size_t start = out->len;
    char seq[40];
    int sl = snprintf(seq, sizeof seq, ",\"seq\":%lld", ++a->seq);
    int rc = wd_buf_add(out, t + r->start, r->prev_at - r->start);
    rc |= wd_buf_add(out, ",\"prev_hash\":\"", 14);
    rc |= wd_buf_add(out, a->prev_hash, 64);
    rc |= wd_buf_add(out, "\"", 1);
    rc |= wd_buf_add(out, t + r->prev_at, r->seq_at - r->prev_at);
    rc |= wd_buf_add(out, seq, (size_t)sl);
    rc |= wd_buf_add(out, t + r->seq_at, r->end - r->seq_at);
    rc |= wd_buf_add(out, "}", 1);
    if (rc)
        return -1;
    out->p[start] = '{'; /* the first member's comma: prev_hash always precedes it */
    char h[65];
    chain_hash(&a->md, a->prev_hash, out->p + start, out->len - start, h);
    out->p[--out->len] = '\0'; /* the closing brace: the hash goes in before it */
    char tail[8 + 64 + 4];
    memcpy(tail, ",\"hash\":\"", 9);
    memcpy(tail + 9, h, 64);
    memcpy(tail + 73, "\"}\n", 3);
    if (wd_buf_add(out, tail, 76) < 0)
        return -1;
    memcpy(a->prev_hash, h, 65);
    r->line_at = start;
    r->line_end = out->len - 1; /* without the newline */
    return 0;
}

int wd_audit_flush(wd_audit *a) { return flush_impl(a, 1); }

/* Under the file's lock: the tail another writer left made whole, the pending records
** rendered into out and written, synced as the mode says. 0, or -1 (failed closed). */
static int write_locked(wd_audit *a, int sync, wd_buf *out)
{
    struct stat st;
    if (fstat(a->fd, &st) < 0) {
        fail_closed(a, "stat");
        return -1;
    }
    if (st.st_size != a->known_size) {
        json_t *recovery = NULL;
        if (sync_tail(a, st.st_size, &recovery) < 0) {
            fail_closed(a, "read of the last line");
            return -1;
        }
        if (recovery) {
            /* staged behind the others, written ahead of them */
            size_t mark = a->text.len;
            int bad = stage(a, recovery) < 0;
            json_decref(recovery);
            if (bad || render(a, &a->pending[--a->npending], out) < 0) {
                errno = ENOMEM;
                fail_closed(a, "render");
                return -1;
            }
            a->text.len = mark;
        }
    }
    for (size_t i = 0; i < a->npending; i++)
        if (render(a, &a->pending[i], out) < 0) {
            errno = ENOMEM;
            fail_closed(a, "render");
            return -1;
        }
    if (write_all(a->fd, out->p, out->len) < 0) {
        fail_closed(a, "write");
        return -1;
    }
    /* an fsync error is fatal for the log: the page cache may have dropped the data */
    a->unsynced = a->fsync_mode == WD_FSYNC_BATCH && !sync;
    if (a->fsync_mode == WD_FSYNC_ALWAYS || (a->fsync_mode == WD_FSYNC_BATCH && sync && sync_later(a) < 0)) {
        if (fdatasync(a->fd) < 0) {
            fail_closed(a, "fsync");
            return -1;
        }
    }
    if (fstat(a->fd, &st) == 0)
        a->known_size = st.st_size;
    a->written = a->appended;
    return 0;
}

static int flush_impl(wd_audit *a, int sync)
{
    if (!a)
        return 0;
    if (a->failed)
        return -1;
    if (atomic_load(&a->sync_failed)) {
        a->failed = 1;
        snprintf(a->errmsg, sizeof a->errmsg, "%s", a->sync_errmsg);
        return -1;
    }
    if (stage_fresh(a) < 0) {
        errno = ENOMEM;
        return fail_closed(a, "render");
    }
    if (!a->npending) {
        a->written = a->appended;
        if (sync && a->unsynced && a->fsync_mode == WD_FSYNC_BATCH && sync_later(a) < 0 && fdatasync(a->fd) < 0)
            return fail_closed(a, "fsync");
        a->unsynced = 0;
        return 0;
    }
    if (flock(a->fd, LOCK_EX) < 0)
        return fail_closed(a, "lock");
    wd_buf *out = &a->out;
    out->len = 0;
    int rc = write_locked(a, sync, out);
    flock(a->fd, LOCK_UN);
    for (size_t i = 0; rc == 0 && a->observer && i < a->npending; i++) {
        struct pending *pd = &a->pending[i];
        a->observer(a->observer_ud, pd->run, pd->event, out->p + pd->line_at, pd->line_end - pd->line_at);
    }
    if (rc < 0)
        a->known_size = -1;
    a->npending = 0;
    a->text.len = 0;
    if (a->text.p)
        a->text.p[0] = '\0';
    out->len = 0;
    if (out->cap > (4u << 20)) /* an unusual flush does not keep its memory */
        wd_buf_free(out);
    return rc;
}

/* One line of the log (n bytes with its newline) against the chain so far: its seq after
** *expect_seq, its prev_hash prev, its hash over its canonical content. 0 and the chain
** moved on, or 1 with the break in report. */
static int verify_line(char *line, ssize_t n, const char *path, long lineno, long long *expect_seq, char prev[65],
                       EVP_MD_CTX **md, wd_buf *report)
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
    chain_hash(md, ph64, canon.p ? canon.p : "", canon.len, got);
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

int wd_audit_verify(const char *path, wd_buf *report, long *records)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        wd_buf_addf(report, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    long long expect_seq = 0;
    char prev[65];
    memcpy(prev, ZERO_HASH, 65);
    int rc = 0;
    EVP_MD_CTX *md = NULL;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[n - 1] != '\n') {
            wd_buf_addf(report, "%s:%ld: torn last line (no newline): a crash mid-write or a cut file", path, lineno);
            rc = 1;
            break;
        }
        if ((rc = verify_line(line, n, path, lineno, &expect_seq, prev, &md, report)))
            break;
    }
    free(line);
    fclose(f);
    EVP_MD_CTX_free(md);
    if (records)
        *records = lineno;
    if (!rc)
        wd_buf_addf(report, "%s: intact, %ld records", path, lineno);
    return rc;
}
