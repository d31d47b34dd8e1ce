/* owner.c - process identities for the rows processes hold (owner.h) */
#include "owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* this process, as its leases name it: "pid:start time in clock ticks since boot"
** (a pid alone may be reused by the time a sweep looks) */
static int proc_start(long pid, char *out, size_t n)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');                   /* ends field 2, the command name (which may hold ')') */
    if (!p || !p[1] || p[2] == 'Z' || p[2] == 'X') /* a zombie is gone, whoever reaps it */
        return -1;
    for (int field = 3; field <= 22 && p; field++) /* p: the space before field 22, starttime */
        p = strchr(p + 1, ' ');
    if (!p)
        return -1;
    p++;
    size_t l = strcspn(p, " ");
    if (l == 0 || l >= n)
        return -1;
    memcpy(out, p, l);
    out[l] = '\0';
    return 0;
}

const char *wd_owner_id(void)
{
    static __thread char id[64];
    static __thread long for_pid;
    long pid = (long)getpid();
    if (for_pid != pid) { /* computed again in a forked child */
        char st[32];
        if (proc_start(pid, st, sizeof st) < 0)
            snprintf(st, sizeof st, "?");
        snprintf(id, sizeof id, "%ld:%s", pid, st);
        for_pid = pid;
    }
    return id;
}

int wd_owner_alive(const char *owner)
{
    char *end;
    long pid = strtol(owner, &end, 10);
    if (*end != ':' || pid <= 0)
        return 0;
    char st[32];
    if (proc_start(pid, st, sizeof st) < 0)
        return 0;
    return !strcmp(st, end + 1);
}
