/* audit.h - the append-only, hash-chained audit log (docs/safety.md, Audit schema).
**
** Records are rendered to canonical text in small groups soon after they are appended
** (while still in the cache) and chained at flush time, under an exclusive
** file lock: the writer reads the last line's seq and hash when the file grew under it
** (another process appended), so several processes append one valid chain.
** hash = SHA-256(prev_hash || canonical JSON of the record without "hash"), where the
** canonical JSON is compact with sorted keys and reals printed with 15 significant
** digits. The first record's prev_hash is 64 zeros. A torn last line (a crash mid
** write) is cut off on the next flush and an "audit_recovered" record keeps it. */
#ifndef WD_AUDIT_H
#define WD_AUDIT_H

#include <stddef.h>
#include <jansson.h>
#include "util.h"

#include <stdio.h>

typedef struct wd_audit wd_audit;

#define WD_AUDIT_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15))

/* caller closes with wd_audit_close; the file and its directory are created on demand */
wd_audit *wd_audit_open(const char *path, int fsync_mode, char *err, size_t errlen);
/* flushes, then frees; accepts NULL */
void wd_audit_close(wd_audit *a);
/* takes ownership of rec (already redacted); stamps timestamp. -1 when the log failed
** closed (an earlier write or fsync error): callers must stop acting. */
int wd_audit_append(wd_audit *a, json_t *rec);
/* writes what is buffered; 0 ok, -1 the log failed (and stays failed) */
int wd_audit_flush(wd_audit *a);
size_t wd_audit_pending(const wd_audit *a);
/* how many records were appended so far: a mark for wd_audit_durable */
long long wd_audit_appended(const wd_audit *a);
/* how many of them are in the file */
long long wd_audit_durable_mark(const wd_audit *a);
/* the records appended up to mark upto are in the file (written now if they are not; in
** batch mode the disk's flush waits for the next wd_audit_flush): 0, or -1 when the log
** failed */
int wd_audit_durable(wd_audit *a, long long upto);
int wd_audit_failed(const wd_audit *a);
const char *wd_audit_path(const wd_audit *a);
const char *wd_audit_error(const wd_audit *a);

/* rotation and retention as the policy says (rotate.h); off until set */
typedef struct wd_audit_rotation wd_audit_rotation;
void wd_audit_set_rotation(wd_audit *a, const wd_audit_rotation *r);
/* the policy's audit.rotate and audit.retention (again at each reload) */
struct wd_policy;
void wd_audit_apply_policy(wd_audit *a, const struct wd_policy *p);
/* every record from now on carries host (NULL or "": none); wd_audit_apply_policy sets it */
void wd_audit_set_host(wd_audit *a, const char *host);

/* fn sees each line this handle wrote (chained, without its newline), after the write,
** on the flushing thread, with the record's run_id and event ("" when none); the line
** is borrowed. NULL: none */
typedef void (*wd_audit_observer)(void *ud, const char *run_id, const char *event, const char *line, size_t len);
void wd_audit_observe(wd_audit *a, wd_audit_observer fn, void *ud);

/* verify.c: the chain of the log at path, over every file it was rotated into (reader.h):
** 0 intact, 1 tampered (report names the first bad line), -1 unreadable */
int wd_audit_verify(const char *path, wd_buf *report, long *records);
/* a view warden audit merge wrote: each host's records (by their host field) checked as
** that host's own chain; as wd_audit_verify otherwise */
int wd_audit_verify_merged(const char *path, wd_buf *report, long *records);
/* merge.c: the logs of paths (each with its rotated files; each intact and its records
** naming a host of their own) written to out as one view in time order, each line as it
** was. 0, 1 refused (report says why), -1 an I/O error; *records written */
int wd_audit_merge(const char *const *paths, size_t n, FILE *out, wd_buf *report, long *records);

/* the chain's hash of a record: SHA-256 of prev (64 hex digits) then canon, in hex;
** *ctx is made on first use (the caller frees it with EVP_MD_CTX_free) */
typedef struct evp_md_ctx_st EVP_MD_CTX;
void wd_audit_hash(EVP_MD_CTX **ctx, const char *prev, const char *canon, size_t len, char out[65]);

#endif
