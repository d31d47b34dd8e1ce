/* jail.c - bubblewrap's command line (jail.h) */
#include "jail.h"
#include "guard.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const BWRAP_DIRS[] = {"/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap", NULL};

const char *wd_jail_bwrap(void)
{
    for (int i = 0; BWRAP_DIRS[i]; i++)
        if (access(BWRAP_DIRS[i], X_OK) == 0)
            return BWRAP_DIRS[i];
    return NULL;
}

void wd_jail_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

typedef struct {
    char **v;
    size_t n, cap;
    int failed;
} argv_b;

/* appends a copy of s (a failure is remembered: the line is dropped at the end) */
static void add(argv_b *b, const char *s)
{
    if (b->failed)
        return;
    if (b->n + 2 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 64;
        char **nv = realloc(b->v, c * sizeof *nv);
        if (!nv) {
            b->failed = 1;
            return;
        }
        b->v = nv;
        b->cap = c;
    }
    if (!(b->v[b->n] = wd_strdup(s))) {
        b->failed = 1;
        return;
    }
    b->v[++b->n] = NULL;
}

static void add3(argv_b *b, const char *opt, const char *from, const char *to)
{
    add(b, opt);
    add(b, from);
    add(b, to);
}

/* every namespace, no capability, a root of its own holding /usr */
static const char *const FIXED[] = {"--unshare-all",
                                    "--die-with-parent",
                                    "--new-session",
                                    "--cap-drop",
                                    "ALL",
                                    "--tmpfs",
                                    "/",
                                    "--ro-bind",
                                    "/usr",
                                    "/usr",
                                    NULL};
static const char *const CLEARENV[] = {"--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
                                       "--setenv",   "HOME",     "/tmp", "--setenv",
                                       "LANG",       "C.UTF-8",  NULL};
/* what a program reaching the network reads */
static const char *const NET_ETC[] = {"/etc/resolv.conf", "/etc/hosts",           "/etc/nsswitch.conf",
                                      "/etc/ssl",         "/etc/ca-certificates", NULL};

/* the system's part: /bin and friends (symlinks into /usr when merged), the loader's
** cache, /proc, /dev, /tmp */
static void system_part(argv_b *b, int share_net)
{
    static const char *const TOP[] = {"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", NULL};
    for (int i = 0; TOP[i]; i++) {
        char target[256];
        ssize_t l = readlink(TOP[i], target, sizeof target - 1);
        if (l > 0) {
            target[l] = '\0';
            add3(b, "--symlink", target, TOP[i]);
        } else if (access(TOP[i], F_OK) == 0)
            add3(b, "--ro-bind", TOP[i], TOP[i]);
    }
    static const char *const ETC[] = {"/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", NULL};
    for (int i = 0; ETC[i]; i++)
        add3(b, "--ro-bind-try", ETC[i], ETC[i]);
    for (int i = 0; share_net && NET_ETC[i]; i++)
        add3(b, "--ro-bind-try", NET_ETC[i], NET_ETC[i]);
    static const char *const SYS[] = {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", NULL};
    for (int i = 0; SYS[i]; i++)
        add(b, SYS[i]);
}

/* the lists' paths bound, each at its canonical path (-1: one cannot be made so) */
static int binds(argv_b *b, const wd_jail *j)
{
    const wd_strlist *lists[2] = {j->ro, j->rw};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; lists[k] && i < lists[k]->n; i++) {
            char *c = wd_guard_canon(j->base, lists[k]->v[i]);
            if (!c)
                return -1;
            add3(b, k ? "--bind-try" : "--ro-bind-try", c, c);
            free(c);
        }
    return 0;
}

char **wd_jail_argv(const char *bwrap, const wd_jail *j, char *const *cmd)
{
    argv_b b = {0};
    char *work = j->workdir ? wd_guard_canon(NULL, j->workdir) : wd_strdup("/tmp");
    if (!work)
        return NULL;
    add(&b, bwrap);
    for (int i = 0; FIXED[i]; i++)
        add(&b, FIXED[i]);
    if (j->share_net)
        add(&b, "--share-net");
    for (int i = 0; j->clearenv && CLEARENV[i]; i++)
        add(&b, CLEARENV[i]);
    system_part(&b, j->share_net);
    add(&b, "--dir");
    add(&b, work);
    if (binds(&b, j) < 0)
        b.failed = 1;
    add(&b, "--remount-ro");
    add(&b, "/");
    add(&b, "--chdir");
    add(&b, work);
    add(&b, "--");
    for (size_t i = 0; cmd[i]; i++)
        add(&b, cmd[i]);
    free(work);
    if (b.failed) {
        wd_jail_free(b.v);
        return NULL;
    }
    return b.v;
}
