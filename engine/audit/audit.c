/* audit.c - buffered, hash-chained JSON lines with group fsync and torn-line repair. */
#include "events.h"
#include "audit.h"
#include "canon.h"
#include "policy.h"
#include "rotate.h"

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
    pthread_cond_t synced_cv; /* the syncer caught up (a file is swapped only then) */
    wd_audit_rotation rot;
    int64_t file_t0_ms; /* when the current file's first record was written; 0 unknown */
    json_t *host;       /* every record's host (docs/scale-out.md), or NULL */
};

void wd_audit_set_rotation(wd_audit *a, const wd_audit_rotation *r) { a->rot = *r; }

void wd_audit_set_host(wd_audit *a, const char *host)
{
    json_decref(a->host);
    a->host = host && *host ? json_string(host) : NULL;
}

/* ** A process whose state store is shared (Redis) writes its name in every record, so a
** view merged from several hosts' logs still says whose chain each record is on:
** WARDEN_HOST, else the machine's name. A process on a machine's own SQLite store
** writes none, unless WARDEN_HOST asks. */
void wd_audit_apply_policy(wd_audit *a, const wd_policy *p)
{
    const char *env = getenv("WARDEN_HOST");
    char name[256] = "";
    if (env && *env)
        wd_strlcpy(name, env, sizeof name);
    else if (p->store_path && !strncmp(p->store_path, "redis", 5) && gethostname(name, sizeof name - 1) < 0)
        name[0] = '\0';
    name[sizeof name - 1] = '\0';
    wd_audit_set_host(a, name);
    wd_audit_rotation r = {p->audit_rotate_bytes, p->audit_rotate_ms, p->audit_keep_files, p->audit_keep_ms,
                           p->audit_archive};
    wd_audit_set_rotation(a, &r);
}

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
            mkdir(dir, 0700);
            *p = '/';
        }
    int rc = mkdir(dir, 0700);
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
    pthread_cond_init(&a->synced_cv, NULL);
    mkdirs(path);
    a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    wd_file_own_like_dir(a->fd, path);
    if (a->fd < 0) {
        wd_errf(err, errlen, "cannot open audit log %s: %s", path, strerror(errno));
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        pthread_cond_destroy(&a->synced_cv);
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
    pthread_cond_destroy(&a->synced_cv);
    for (size_t i = 0; i < a->nfresh; i++)
        json_decref(a->fresh[i]);
    json_decref(a->ts);
    json_decref(a->host);
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
    if (a->host)
        json_object_set(rec, "host", a->host);
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
void wd_audit_hash(EVP_MD_CTX **ctx, const char *prev, const char *canon, size_t len, char out[65])
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
        int fd = a->fd; /* a rotation swaps it only once this sync is done */
        pthread_mutex_unlock(&a->mu);
        /* an fsync error is fatal for the log: the page cache may have dropped the data */
        if (!atomic_load(&a->sync_failed) && fdatasync(fd) < 0) {
            snprintf(a->sync_errmsg, sizeof a->sync_errmsg, "audit log %s: fsync failed: %s", a->path, strerror(errno));
            atomic_store(&a->sync_failed, 1);
        }
        pthread_mutex_lock(&a->mu);
        a->synced = upto;
        pthread_cond_broadcast(&a->synced_cv);
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
    wd_audit_hash(&a->md, a->prev_hash, out->p + start, out->len - start, h);
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

/* the log writes to fd from now on (locked by the caller); the old file is synced and
** closed, which releases its lock, once the syncer is done with it */
static void swap_fd(wd_audit *a, int fd)
{
    pthread_mutex_lock(&a->mu);
    while (a->has_syncer && a->synced != a->want)
        pthread_cond_wait(&a->synced_cv, &a->mu);
    int old = a->fd;
    a->fd = fd;
    pthread_mutex_unlock(&a->mu);
    if (a->unsynced && fdatasync(old) < 0)
        fail_closed(a, "fsync");
    a->unsynced = 0;
    close(old);
    a->known_size = -1; /* the new file's tail is read before the next write */
    a->file_t0_ms = 0;
}

/* ** Under the lock of a->fd: another process rotated the log (path names another file
** now, or none: removed by hand), so the records go to the file path names, the chain
** continued from its last line. 0, or -1 when it cannot be opened (or the name never
** stays put: the log fails closed). */
static int follow(wd_audit *a)
{
    /* another writer may rotate the new file before this one gets its lock, and again:
    ** the name is chased until its file is the one locked (never written past it) */
    for (int tries = 0; tries < 100000; tries++) {
        struct stat ps, fs;
        int gone = stat(a->path, &ps) < 0;
        if (fstat(a->fd, &fs) < 0)
            return -1;
        if (!gone && ps.st_ino == fs.st_ino && ps.st_dev == fs.st_dev)
            return 0;
        int fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        wd_file_own_like_dir(fd, a->path);
        if (flock(fd, LOCK_EX) < 0) {
            close(fd);
            return -1;
        }
        swap_fd(a, fd);
    }
    errno = EAGAIN;
    return -1;
}

static int rotation_due(wd_audit *a)
{
    if ((!a->rot.max_bytes && !a->rot.max_age_ms) || a->known_size <= 0)
        return 0;
    if (a->rot.max_bytes && a->known_size >= a->rot.max_bytes)
        return 1;
    if (!a->rot.max_age_ms)
        return 0;
    int64_t now = wd_wall_ms();
    if (!a->file_t0_ms) { /* the file's first record says when it began */
        long long f, l;
        char h[65];
        if (wd_rotate_ends(a->path, &f, &l, h, &a->file_t0_ms) < 0 || !a->file_t0_ms)
            a->file_t0_ms = now;
    }
    return now - a->file_t0_ms >= a->rot.max_age_ms;
}

/* one record the writer makes itself, chained into out */
static int own_record(wd_audit *a, json_t *rec, wd_buf *out)
{
    char ts[40];
    wd_rfc3339_ms(wd_wall_ms(), ts, sizeof ts);
    json_object_set_new(rec, "timestamp", json_string(ts));
    static const char *const IDS[] = {"run_id", "session_id", "user_id", "agent"};
    for (int i = 0; i < 4; i++)
        json_object_set_new(rec, IDS[i], json_null());
    if (a->host)
        json_object_set(rec, "host", a->host);
    size_t mark = a->text.len;
    int bad = stage(a, rec) < 0 || render(a, &a->pending[--a->npending], out) < 0;
    a->text.len = mark;
    json_decref(rec);
    return bad ? -1 : 0;
}

/* ** Rotation, under the file's lock, after a flush's write. The next file is made aside
** beginning with audit_rotated (its prev_hash the last hash here, so the chain runs on)
** and, when retention removes files, audit_retention naming them; then path.N becomes a
** second name of this file and the new one takes path's name in one rename, so path
** always names a whole file. Writers of other processes find path changed (follow).
** A crash before the rename leaves this file live; after it, the files are whole. */
static void rotate(wd_audit *a, const char *why)
{
    long n = wd_rotate_next_number(a->path);
    char dst[4200], tmp[4200], err[600] = "";
    struct stat ds, fs;
    snprintf(dst, sizeof dst, "%s.%ld", a->path, n - 1);
    int relink = n > 1 && stat(dst, &ds) == 0 && fstat(a->fd, &fs) == 0 && ds.st_ino == fs.st_ino;
    if (!relink) /* else a crash left this file with its number already: it keeps it */
        snprintf(dst, sizeof dst, "%s.%ld", a->path, n);
    snprintf(tmp, sizeof tmp, "%s.rotating", a->path);
    json_t *plan = wd_rotate_plan(a->path, &a->rot, wd_wall_ms());
    long long seq = a->seq;
    char prev[65];
    memcpy(prev, a->prev_hash, 65);
    wd_buf out = {0};
    const char *base = strrchr(dst, '/');
    int rc = own_record(a,
                        json_pack("{s:s,s:b,s:s,s:s}", "event", wd_event_name(WD_AE_AUDIT_ROTATED), "success", 1,
                                  "reason", why, "previous_file", base ? base + 1 : dst),
                        &out);
    if (rc == 0 && plan)
        rc = own_record(a,
                        json_pack("{s:s,s:b,s:s,s:O}", "event", wd_event_name(WD_AE_AUDIT_RETENTION), "success", 1,
                                  "reason", a->rot.archive ? "audit.retention: archived" : "audit.retention: deleted",
                                  "removed", plan),
                        &out);
    int fd = rc == 0 ? open(tmp, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    wd_file_own_like_dir(fd, tmp);
    if (fd < 0 || write_all(fd, out.p, out.len) < 0 || fdatasync(fd) < 0 || (!relink && link(a->path, dst) < 0) ||
        rename(tmp, a->path) < 0) {
        /* the log stays in this file and its chain as it was: tried again next flush */
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        a->seq = seq;
        memcpy(a->prev_hash, prev, 65);
    } else {
        flock(fd, LOCK_EX);
        swap_fd(a, fd);
        a->file_t0_ms = wd_wall_ms();
        if (plan && wd_rotate_apply(plan, err, sizeof err) > 0)
            fprintf(stderr, "warden: %s\n", err);
    }
    wd_buf_free(&out);
    json_decref(plan);
}

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
    if (rotation_due(a))
        rotate(a, a->rot.max_bytes && a->known_size >= a->rot.max_bytes ? "audit.rotate.max_bytes"
                                                                        : "audit.rotate.max_age");
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
    if (follow(a) < 0) {
        flock(a->fd, LOCK_UN);
        return fail_closed(a, "reopen after a rotation");
    }
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
