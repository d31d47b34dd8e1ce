/* reader.h - an audit log read back: the files of its chain in order, record by record. */
#ifndef WD_READER_H
#define WD_READER_H

#include <jansson.h>
#include "policy.h"

/* The files of the log whose live file is path, oldest first: the rotated files
** path.1, path.2, ... (numbered as they were rotated out, docs/safety.md) and then path
** itself when it exists. Caller frees out with wd_yread_strlist_free-like free of each.
** The number of files, -1 when the directory cannot be read. */
int wd_audit_files(const char *path, wd_strlist *out);
void wd_audit_files_free(wd_strlist *l);
/* the number N of a rotated file name path.N, 0 when name is not one of path's */
long wd_audit_file_number(const char *path, const char *name);

/* fn sees every record of every file of the log in order (the record is the caller's
** only for the call); a nonzero return stops the reading and is returned. Lines that
** are not JSON objects are skipped. -1 when no file could be opened. */
typedef int (*wd_audit_each)(void *ud, json_t *rec);
int wd_audit_read(const char *path, wd_audit_each fn, void *ud);

#endif
