/* fuzz_audit.c - the audit log's verifier and its writer. Any bytes as a log: the
** verifier answers intact, tampered (naming a line) or unreadable, never crashes. And
** when the bytes are a JSON object, it is written through the log's writer (as a record
** of a run would be) and the verifier must find that log intact: the writer, the
** verifier and the chain's continuation agree on every byte a record can hold. */
#include "fuzz.h"
#include "audit.h"
#include "policy.h"
#include "util.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char dir[64];

static void verify_bytes(const uint8_t *data, size_t size)
{
    int fd = memfd_create("log", 0);
    if (fd < 0)
        return;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        wd_buf report = {0};
        long n = 0;
        int rc = wd_audit_verify(path, &report, &n);
        FUZZ_ASSERT(rc >= -1 && rc <= 1, "verify returned %d", rc);
        FUZZ_ASSERT(rc == 0 || report.len, "a broken log without a report");
        wd_buf_free(&report);
        /* the same bytes read as a merged view of several hosts' chains */
        memset(&report, 0, sizeof report);
        rc = wd_audit_verify_merged(path, &report, &n);
        FUZZ_ASSERT(rc >= -1 && rc <= 1, "merged verify returned %d", rc);
        FUZZ_ASSERT(rc == 0 || report.len, "a broken merged view without a report");
        wd_buf_free(&report);
    }
    close(fd);
}

static void write_and_verify(const uint8_t *data, size_t size)
{
    json_t *rec = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return;
    }
    /* the writer owns these fields */
    static const char *const OWN[] = {"seq", "prev_hash", "hash", "timestamp", NULL};
    for (int i = 0; OWN[i]; i++)
        json_object_del(rec, OWN[i]);
    char path[128], err[300];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    unlink(path);
    for (int round = 0; round < 2; round++) { /* a second handle continues the chain */
        wd_audit *a = wd_audit_open(path, WD_FSYNC_NONE, err, sizeof err);
        FUZZ_ASSERT(a, "cannot open the log: %s", err);
        FUZZ_ASSERT(wd_audit_append(a, json_deep_copy(rec)) == 0, "append refused");
        FUZZ_ASSERT(wd_audit_flush(a) == 0, "flush failed: %s", wd_audit_error(a));
        wd_audit_close(a);
    }
    wd_buf report = {0};
    long n = 0;
    int rc = wd_audit_verify(path, &report, &n);
    FUZZ_ASSERT(rc == 0 && n == 2, "the writer's own log does not verify: %s", report.p ? report.p : "");
    wd_buf_free(&report);
    json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/wd-fuzz-audit.XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    verify_bytes(data, size);
    write_and_verify(data, size);
    return 0;
}
