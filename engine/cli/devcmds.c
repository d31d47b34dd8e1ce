/* devcmds.c - the agent author's commands: `warden init DIR` makes an agent from the
** home's template (templates/agent), `warden test` runs busted specs with warden's
** modules on the path (docs/testing.md). */
#include "cli.h"
#include "home.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* s with every "{{name}}" replaced by name; caller frees */
static char *fill(const char *s, size_t len, const char *name)
{
    wd_buf b = {0};
    const char *end = s + len;
    for (const char *p = s; p < end;) {
        const char *m = memmem(p, (size_t)(end - p), "{{name}}", 8);
        if (!m) {
            wd_buf_add(&b, p, (size_t)(end - p));
            break;
        }
        wd_buf_add(&b, p, (size_t)(m - p));
        wd_buf_adds(&b, name);
        p = m + 8;
    }
    if (!b.p)
        wd_buf_add(&b, "", 0);
    return b.p;
}

/* the template directory src copied into dst (made here), names and text filled in;
** 0, or -1 after a message */
static int copy_tree(const char *src, const char *dst, const char *name)
{
    DIR *d = opendir(src);
    if (!d || mkdir(dst, 0755) < 0) {
        fprintf(stderr, "warden: init: %s: %s\n", d ? dst : src, strerror(errno));
        if (d)
            closedir(d);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char from[PATH_MAX], to[PATH_MAX];
        char *leaf = fill(de->d_name, strlen(de->d_name), name);
        snprintf(from, sizeof from, "%s/%s", src, de->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, leaf ? leaf : de->d_name);
        free(leaf);
        struct stat st;
        if (stat(from, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = copy_tree(from, to, name);
            continue;
        }
        size_t len = 0;
        char *text = wd_read_file(from, 1 << 20, &len), *out = text ? fill(text, len, name) : NULL;
        FILE *f = out ? fopen(to, "wx") : NULL;
        if (!f || fputs(out, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "warden: init: %s: %s\n", f ? to : from, strerror(errno ? errno : EIO));
            rc = -1;
        }
        free(text);
        free(out);
    }
    closedir(d);
    return rc;
}

int wd_cli_init(int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-')
        return wd_cli_usage("init needs one DIR (warden init --help)");
    const char *dir = argv[2], *slash = strrchr(dir, '/');
    char name[128];
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : dir);
    size_t n = strlen(name);
    int ok = n > 0 && n < 64 && ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'));
    for (size_t i = 0; ok && i < n; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", name[i]) != NULL;
    if (!ok) {
        fprintf(stderr, "warden: init: '%s' cannot name an agent: a letter, then letters, digits, _ or -\n", name);
        return 2;
    }
    if (access(dir, F_OK) == 0) {
        fprintf(stderr, "warden: init: %s exists already; init makes a new directory\n", dir);
        return 2;
    }
    char tpl[PATH_MAX];
    wd_home_path("templates/agent", tpl, sizeof tpl);
    if (access(tpl, R_OK) < 0) {
        fprintf(stderr, "warden: init: no template at %s (set WARDEN_HOME to warden's share directory)\n", tpl);
        return 2;
    }
    if (copy_tree(tpl, dir, name) < 0)
        return 2;
    printf("made agent %s in %s/: agent.lua, tools/greet.lua, prompts/system.txt, policy.yaml (add it to your\n"
           "policy), scenarios/hello.yaml and greet.yaml (mock models), spec/%s_spec.lua. Next:\n"
           "  warden test %s\n  warden run %s \"hi\" --llm mock:%s/scenarios/hello.yaml\n",
           name, dir, name, dir, dir, dir);
    return 0;
}

/* the directory of core.so: beside the binary in a checkout (build/lua), under
** PREFIX/lib/warden/lua when installed; into out, or -1 */
static int core_dir(char *out, size_t n)
{
    const char *code = wd_home_code_dir();
    const char *cands[] = {"lua", "../lib/warden/lua"};
    for (int i = 0; i < 2; i++) {
        char so[PATH_MAX + 40];
        snprintf(out, n, "%s/%s", code, cands[i]);
        snprintf(so, sizeof so, "%s/warden/core.so", out);
        if (access(so, R_OK) == 0)
            return 0;
    }
    return -1;
}

int wd_cli_test(int argc, char **argv)
{
    char cdir[PATH_MAX], lpath[PATH_MAX * 2 + 64], cpath[PATH_MAX + 64], self[PATH_MAX];
    int found;
    const char *home = wd_home_dir(&found);
    if (!found || core_dir(cdir, sizeof cdir) < 0) {
        fprintf(stderr, "warden: test: warden's Lua modules not found (home %s); set WARDEN_HOME\n", home);
        return 2;
    }
    const char *busted = getenv("WARDEN_BUSTED") ? getenv("WARDEN_BUSTED") : "/usr/bin/busted";
    if (access(busted, R_OK) < 0) {
        fprintf(stderr, "warden: test: %s: %s (install Debian's lua-busted)\n", busted, strerror(errno));
        return 2;
    }
    snprintf(lpath, sizeof lpath, "--lpath=%s/lua/?.lua;%s/lua/?/init.lua", home, home);
    snprintf(cpath, sizeof cpath, "--cpath=%s/?.so", cdir);
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    self[k > 0 ? k : 0] = '\0';
    if (k > 0)
        setenv("WARDEN_BIN", self, 0); /* warden.testing's binary: this one */
    setenv("WARDEN_HOME", home, 0);
    char **v = calloc((size_t)argc + 6, sizeof *v);
    if (!v)
        return 2;
    int j = 0, paths = 0;
    v[j++] = "lua5.4";
    v[j++] = (char *)busted;
    v[j++] = lpath;
    v[j++] = cpath;
    for (int i = 2; i < argc; i++) {
        paths += argv[i][0] != '-' && access(argv[i], F_OK) == 0; /* an option's value is not a file */
        v[j++] = argv[i];
    }
    if (!paths) /* busted's own default: ./spec */
        v[j++] = access("spec", F_OK) == 0 ? "spec" : ".";
    execvp(v[0], v);
    fprintf(stderr, "warden: test: cannot run lua5.4: %s (install Debian's lua5.4)\n", strerror(errno));
    free(v);
    return 2;
}
