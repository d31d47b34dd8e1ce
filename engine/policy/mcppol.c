/* mcppol.c - the policy's mcp section (docs/mcp.md): the MCP servers whose tools agents
** may call, each as NAME__TOOL under the same rules as any tool. */
#include "policy.h"
#include "util.h"
#include "yread.h"

#include <stdlib.h>
#include <string.h>

static const char *const MCP_KEYS[] = {"servers", NULL};
static const char *const SERVER_KEYS[] = {"command", "env", "cwd", "timeout_ms", "url", "headers", "sandbox", NULL};
static const char *const SANDBOX_KEYS[] = {"allowed_resources", "writable_resources", "network", NULL};

/* a server's name: lowercase letters, digits and single '-' or '_', at most 32, never
** "__" (the separator of NAME__TOOL) */
static int valid_server_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 32 || !(*s >= 'a' && *s <= 'z'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_') ||
            (s[i] == '_' && s[i + 1] == '_'))
            return 0;
    return s[n - 1] != '_';
}

static void load_command(wd_yread *c, const wd_ynode *v, const char *where, wd_mcp_server *m)
{
    const wd_ynode *cmd = wd_ydoc_get(v, "command");
    if (!cmd) {
        wd_yread_err(c, v, "%s has no command; add command: [program, arguments...] (or url: for HTTP)", where);
        return;
    }
    if (cmd->kind != WD_Y_SEQ || !cmd->n || cmd->n > 256) {
        wd_yread_err(c, cmd, "%s.command must be a list of 1 to 256 strings: [program, arguments...]", where);
        return;
    }
    m->argv = calloc(cmd->n + 1, sizeof *m->argv);
    for (size_t i = 0; m->argv && i < cmd->n; i++) {
        if (cmd->kids[i]->kind != WD_Y_SCALAR || (i == 0 && !cmd->kids[i]->len)) {
            wd_yread_err(c, cmd->kids[i], "%s.command[%zu] must be a string", where, i + 1);
            m->argv[i] = wd_strdup("");
        } else {
            m->argv[i] = wd_strdup(cmd->kids[i]->str);
        }
    }
}

/* env (or headers): NAME: "value" or NAME: {from_env: VARIABLE}, into the three lists
** and their count */
static void load_env(wd_yread *c, const wd_ynode *e, const char *sub, char ***names, char ***values, char ***from,
                     size_t *count)
{
    if (wd_yread_map(c, e, sub, NULL) < 0)
        return;
    size_t n = e->n / 2;
    char **nv = *names = calloc(n + 1, sizeof **names), **vv = *values = calloc(n + 1, sizeof **values),
         **fv = *from = calloc(n + 1, sizeof **from);
    if (!nv || !vv || !fv)
        return;
    for (size_t i = 0; i + 1 < e->n; i += 2) {
        const char *k = e->kids[i]->str;
        const wd_ynode *v = e->kids[i + 1];
        int ok = *k && strlen(k) <= 128 &&
                 strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(k);
        if (!ok) {
            wd_yread_err(c, e->kids[i], "%s.%s: a name is letters, digits, _ and - (at most 128)", sub, k);
            continue;
        }
        const wd_ynode *src = v->kind == WD_Y_MAP ? wd_ydoc_get(v, "from_env") : NULL;
        if (v->kind == WD_Y_SCALAR && !strpbrk(v->str, "\r\n")) {
            vv[*count] = wd_strdup(v->str);
        } else if (src && src->kind == WD_Y_SCALAR && src->len && v->n == 2) {
            fv[*count] = wd_strdup(src->str);
        } else {
            wd_yread_err(c, v,
                         "%s.%s must be one line of text, or {from_env: VARIABLE} (a secret kept out of the policy)",
                         sub, k);
            continue;
        }
        nv[(*count)++] = wd_strdup(k);
    }
}

/* sandbox: true, or {allowed_resources, writable_resources, network}: the server runs
** under bubblewrap (jail.h) */
static void load_sandbox(wd_yread *c, const wd_ynode *v, const char *where, wd_mcp_server *m)
{
    const wd_ynode *sb = wd_ydoc_get(v, "sandbox");
    char sub[220];
    if (!sb)
        return;
    if (sb->kind == WD_Y_SCALAR) {
        wd_yread_bool(c, v, "sandbox", where, &m->sandboxed);
        return;
    }
    snprintf(sub, sizeof sub, "%s.sandbox", where);
    if (wd_yread_map(c, sb, sub, SANDBOX_KEYS) < 0)
        return;
    m->sandboxed = 1;
    snprintf(sub, sizeof sub, "%s.sandbox.allowed_resources", where);
    wd_yread_strlist(c, wd_ydoc_get(sb, "allowed_resources"), sub, &m->sandbox_ro);
    snprintf(sub, sizeof sub, "%s.sandbox.writable_resources", where);
    wd_yread_strlist(c, wd_ydoc_get(sb, "writable_resources"), sub, &m->sandbox_rw);
    snprintf(sub, sizeof sub, "%s.sandbox", where);
    wd_yread_bool(c, sb, "network", sub, &m->sandbox_net);
}

void wd_policy_load_mcp(wd_yread *c, const wd_ynode *n)
{
    wd_policy *p = c->p;
    if (wd_yread_map(c, n, "mcp", MCP_KEYS) < 0)
        return;
    const wd_ynode *s = wd_ydoc_get(n, "servers");
    if (!s || wd_yread_map(c, s, "mcp.servers", NULL) < 0)
        return;
    p->mcp_servers = calloc(s->n / 2 + 1, sizeof *p->mcp_servers);
    if (!p->mcp_servers)
        return;
    for (size_t i = 0; i + 1 < s->n; i += 2) {
        const wd_ynode *v = s->kids[i + 1];
        char where[160];
        snprintf(where, sizeof where, "mcp.servers.%.60s", s->kids[i]->str);
        if (!valid_server_name(s->kids[i]->str)) {
            wd_yread_err(c, s->kids[i],
                         "%s: a server's name is a lowercase letter, then lowercase letters, digits, - or single _, "
                         "at most 32 (its tools are NAME__TOOL)",
                         where);
            continue;
        }
        wd_mcp_server *m = &p->mcp_servers[p->n_mcp_servers++];
        m->name = wd_strdup(s->kids[i]->str);
        m->timeout_ms = 10000;
        if (wd_yread_map(c, v, where, SERVER_KEYS) < 0)
            continue;
        char sub[200];
        wd_yread_str(c, v, "url", where, &m->url);
        if (m->url) {
            if (strncmp(m->url, "http://", 7) && strncmp(m->url, "https://", 8))
                wd_yread_err(c, wd_ydoc_get(v, "url"), "%s.url must be an http or https URL", where);
            if (wd_ydoc_get(v, "command") || wd_ydoc_get(v, "env") || wd_ydoc_get(v, "cwd") ||
                wd_ydoc_get(v, "sandbox"))
                wd_yread_err(c, v, "%s: a server is a command (stdio) or a url (Streamable HTTP), not both", where);
            const wd_ynode *h = wd_ydoc_get(v, "headers");
            snprintf(sub, sizeof sub, "%s.headers", where);
            if (h)
                load_env(c, h, sub, &m->header_names, &m->header_values, &m->header_from, &m->n_headers);
        } else {
            if (wd_ydoc_get(v, "headers"))
                wd_yread_err(c, wd_ydoc_get(v, "headers"), "%s.headers go with a url", where);
            load_command(c, v, where, m);
            const wd_ynode *e = wd_ydoc_get(v, "env");
            snprintf(sub, sizeof sub, "%s.env", where);
            if (e)
                load_env(c, e, sub, &m->env_names, &m->env_values, &m->env_from, &m->n_env);
            load_sandbox(c, v, where, m);
        }
        wd_yread_str(c, v, "cwd", where, &m->cwd);
        wd_yread_dur(c, v, "timeout_ms", where, &m->timeout_ms, 100, 600000);
    }
}

const wd_mcp_server *wd_policy_mcp_server(const wd_policy *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n_mcp_servers; i++)
        if (strlen(p->mcp_servers[i].name) == len && !strncmp(p->mcp_servers[i].name, name, len))
            return &p->mcp_servers[i];
    return NULL;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void wd_policy_mcp_free(wd_policy *p)
{
    for (size_t i = 0; i < p->n_mcp_servers; i++) {
        wd_mcp_server *m = &p->mcp_servers[i];
        free_list(m->header_names, m->n_headers);
        free_list(m->header_values, m->n_headers);
        free_list(m->header_from, m->n_headers);
        free(m->url);
        size_t argc = 0;
        while (m->argv && m->argv[argc])
            argc++;
        free_list(m->argv, argc);
        free_list(m->env_names, m->n_env);
        free_list(m->env_values, m->n_env);
        free_list(m->env_from, m->n_env);
        free(m->name);
        free(m->cwd);
        wd_yread_strlist_free(&m->sandbox_ro);
        wd_yread_strlist_free(&m->sandbox_rw);
    }
    free(p->mcp_servers);
    p->mcp_servers = NULL;
    p->n_mcp_servers = 0;
}
