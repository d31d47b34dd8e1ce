/* jail.h - bubblewrap's command line for a command run apart from the host: ctx:exec's
** commands (exec.c) and MCP servers over stdio with a sandbox (mcphost.c). Every
** namespace unshared (the network too unless share_net), no capability, a new session
** (no TIOCSTI into warden's terminal), dying with its parent; a root of its own holding
** /usr and the loader's files read-only, /proc, /dev and a private /tmp; the ro paths
** bound read-only, then the rw paths read-write, each at its canonical path; nothing
** else of the host. */
#ifndef WD_JAIL_H
#define WD_JAIL_H

#include "policy.h"

typedef struct wd_jail {
    const wd_strlist *ro, *rw; /* paths, relative to base when not absolute; may be NULL */
    const char *base;          /* NULL: the working directory */
    const char *workdir; /* relative to the working directory: made (empty, unless bound) and entered; NULL: /tmp */
    int share_net;       /* the host's network (and its resolver and certificates) */
    int clearenv;        /* PATH, HOME=/tmp and LANG only; otherwise bwrap passes its own on */
} wd_jail;

/* bwrap's path, or NULL when bubblewrap is not installed */
const char *wd_jail_bwrap(void);
/* bwrap's command line running cmd (NULL-terminated) in j; caller frees with
** wd_jail_free; NULL out of memory or when a path cannot be made canonical */
char **wd_jail_argv(const char *bwrap, const wd_jail *j, char *const *cmd);
void wd_jail_free(char **argv); /* accepts NULL */

#endif
