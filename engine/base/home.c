/* home.c - where warden's own files are (home.h) */
#include "home.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char home[PATH_MAX], code_dir[PATH_MAX];
static int home_found;

/* a home holds lua/warden/runner.lua */
static int is_home(const char *dir)
{
    char p[PATH_MAX + 32];
    struct stat st;
    snprintf(p, sizeof p, "%s/lua/warden/runner.lua", dir);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void set_home(const char *dir)
{
    char *r = realpath(dir, NULL);
    snprintf(home, sizeof home, "%s", r ? r : dir);
    free(r);
    home_found = 1;
}

/* the file holding this code: the executable, or the shared library we were linked into */
static void find_code_dir(void)
{
    Dl_info di;
    char *r = NULL;
    if (dladdr((void *)&is_home, &di) && di.dli_fname && strchr(di.dli_fname, '/'))
        r = realpath(di.dli_fname, NULL);
    if (!r)
        r = realpath("/proc/self/exe", NULL);
    snprintf(code_dir, sizeof code_dir, "%s", r ? r : ".");
    free(r);
    char *slash = strrchr(code_dir, '/');
    if (slash && slash != code_dir)
        *slash = '\0';
}

static void find(void)
{
    const char *env = getenv("WARDEN_HOME");
    find_code_dir();
    if (env && *env) {
        set_home(env);
        home_found = is_home(home);
        return;
    }
    /* up to four levels: PREFIX/lib/warden/lua/warden/core.so is the deepest */
    char dir[PATH_MAX], cand[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", code_dir);
    for (int up = 0; up < 5 && dir[0]; up++) {
        if (snprintf(cand, sizeof cand, "%s/share/warden", dir) < (int)sizeof cand && is_home(cand))
            return set_home(cand);
        if (is_home(dir))
            return set_home(dir);
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    snprintf(home, sizeof home, ".");
}

const char *wd_home_dir(int *found)
{
    pthread_once(&once, find);
    if (found)
        *found = home_found;
    return home;
}

const char *wd_home_code_dir(void)
{
    pthread_once(&once, find);
    return code_dir;
}

char *wd_home_path(const char *sub, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", wd_home_dir(NULL), sub);
    return out;
}
