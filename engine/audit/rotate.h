/* rotate.h - the files of a rotated audit log (docs/safety.md, Retention, rotation and
** erasure): numbering the next one, reading a file's ends, and planning and carrying
** out what audit.retention removes. The chain itself is audit.c's. */
#ifndef WD_ROTATE_H
#define WD_ROTATE_H

#include <jansson.h>
#include <stdint.h>

/* what audit.rotate and audit.retention say (0: never, forever, every file) */
typedef struct wd_audit_rotation {
    long long max_bytes, max_age_ms;
    long long keep_files, keep_ms;
    int archive;
} wd_audit_rotation;

/* the number the next rotated file of path gets: one more than any path.N or path.N.gz */
long wd_rotate_next_number(const char *path);

/* a log file's first and last records: their seq, the last one's hash and the first
** one's time (ms, 0 unknown). 0, or -1 when the file is empty or unreadable */
int wd_rotate_ends(const char *file, long long *first_seq, long long *last_seq, char last_hash[65], int64_t *first_ms);

/* the rotated files of path that retention removes once the live file is rotated too: a list of
** {file, first_seq, last_seq, last_hash, archived_to} (archived_to null when deleted),
** oldest first; NULL when none. Caller decrefs */
json_t *wd_rotate_plan(const char *path, const wd_audit_rotation *r, int64_t now_ms);
/* carries out a plan: each file compressed to its archived_to (0600), then removed. The
** files it could not remove; problems in err */
int wd_rotate_apply(const json_t *plan, char *err, size_t n);

#endif
