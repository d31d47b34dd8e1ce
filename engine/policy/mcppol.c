/* mcppol.c - the policy's mcp section (docs/mcp.md): the MCP servers whose tools agents
** may call, each as NAME__TOOL under the same rules as any tool. */
#include "policy.h"
#include "util.h"
#include "yread.h"

#include <stdlib.h>
#include <string.h>

static const char *const MCP_KEYS[] = {"servers", NULL};
static const char *const SERVER_KEYS[] = {"command", "env", "cwd", "timeout_ms", NULL};

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
        wd_yread_err(c, v, "%s has no command; add command: [program, arguments...]", where);
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

/* env: NAME: "value" or NAME: {from_env: VARIABLE} */
static void load_env(wd_yread *c, const wd_ynode *e, const char *where, wd_mcp_server *m)
{
    char sub[200];
    snprintf(sub, sizeof sub, "%s.env", where);
    if (wd_yread_map(c, e, sub, NULL) < 0)
        return;
    size_t n = e->n / 2;
    m->env_names = calloc(n + 1, sizeof *m->env_names);
    m->env_values = calloc(n + 1, sizeof *m->env_values);
    m->env_from = calloc(n + 1, sizeof *m->env_from);
    if (!m->env_names || !m->env_values || !m->env_from)
        return;
    for (size_t i = 0; i + 1 < e->n; i += 2) {
        const char *k = e->kids[i]->str;
        const wd_ynode *v = e->kids[i + 1];
        int ok = *k && !strchr(k, '=') &&
                 strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == strlen(k);
        if (!ok) {
            wd_yread_err(c, e->kids[i], "%s.%s: a variable name is letters, digits and _", sub, k);
            continue;
        }
        const wd_ynode *from = v->kind == WD_Y_MAP ? wd_ydoc_get(v, "from_env") : NULL;
        if (v->kind == WD_Y_SCALAR) {
            m->env_values[m->n_env] = wd_strdup(v->str);
        } else if (from && from->kind == WD_Y_SCALAR && from->len && v->n == 2) {
            m->env_from[m->n_env] = wd_strdup(from->str);
        } else {
            wd_yread_err(c, v, "%s.%s must be a string, or {from_env: VARIABLE} (a secret kept out of the policy)", sub,
                         k);
            continue;
        }
        m->env_names[m->n_env++] = wd_strdup(k);
    }
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
        load_command(c, v, where, m);
        const wd_ynode *e = wd_ydoc_get(v, "env");
        if (e)
            load_env(c, e, where, m);
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
        size_t argc = 0;
        while (m->argv && m->argv[argc])
            argc++;
        free_list(m->argv, argc);
        free_list(m->env_names, m->n_env);
        free_list(m->env_values, m->n_env);
        free_list(m->env_from, m->n_env);
        free(m->name);
        free(m->cwd);
    }
    free(p->mcp_servers);
    p->mcp_servers = NULL;
    p->n_mcp_servers = 0;
}
