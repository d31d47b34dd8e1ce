/* mcplist.c - what a client of /mcp may call (mcplist.h) */
#include "mcplist.h"
#include "apicall.h"
#include "check.h"
#include "killswitch.h"
#include "util.h"

#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_AGENTS 1000 /* listed from the agents directory */

const char *wd_mcplist_agent(const char *name)
{
    size_t l = strlen(MCP_AGENT_PREFIX);
    return !strncmp(name, MCP_AGENT_PREFIX, l) && name[l] ? name + l : NULL;
}

/* the script a direct call of tool `name` loads, as a run would find it: tools/NAME.lua
** under the agents directory, else beside it; 0 with its path and stat, or -1 */
static int script_of(const char *dir, const char *name, char *path, size_t n, struct stat *st)
{
    snprintf(path, n, "%s/tools/%s.lua", dir, name);
    if (stat(path, st) == 0 && S_ISREG(st->st_mode))
        return 0;
    char *d = wd_strdup(dir);
    snprintf(path, n, "%s/tools/%s.lua", d ? dirname(d) : ".", name);
    free(d);
    return stat(path, st) == 0 && S_ISREG(st->st_mode) ? 0 : -1;
}

/* ** A script tool's definition, kept per worker while its file's inode, size and time
** stay the same: checking it runs its top level in a scratch sandbox (check.h), too much
** for every tools/list. A script that does not check is left out (warden serve's own
** check of the agents directory reports it). */
static json_t *script_spec(wd_front *f, const char *path, const struct stat *st)
{
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%llu.%lld.%lld.%ld", (unsigned long long)st->st_ino, (long long)st->st_size,
             (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
    if (!f->tool_specs && !(f->tool_specs = json_object()))
        return NULL;
    json_t *kept = json_object_get(f->tool_specs, path);
    if (kept && !strcmp(json_string_value(json_object_get(kept, "stamp")), stamp))
        return json_object_get(kept, "spec");
    char err[600];
    json_t *spec = wd_check_tool(path, err, sizeof err);
    json_object_set_new(f->tool_specs, path, json_pack("{s:s,s:o*}", "stamp", stamp, "spec", spec));
    return spec;
}

/* the input schema a client sees: the tool's own, with the rule's narrowing beside it
** (allOf) when the rule has one; a new reference */
static json_t *input_schema(const json_t *own, const wd_tool_policy *tp)
{
    json_t *base = json_is_object(own) ? json_incref((json_t *)own) : json_object();
    if (!tp->schema_json)
        return base;
    return json_pack("{s:s,s:[o,O]}", "type", "object", "allOf", base, tp->schema_json);
}

typedef struct {
    const wd_policy *p;
    const wd_user *u;
    json_t *out;
} mcp_walk;

/* one tool of an MCP server the engine governs: listed when a rule of the policy covers
** it and lets the user's role call it */
static void add_server_tool(void *ud, const char *server, const json_t *tool)
{
    mcp_walk *w = ud;
    char name[200];
    const char *t = json_string_value(json_object_get(tool, "name"));
    if (!t || snprintf(name, sizeof name, "%s__%s", server, t) >= (int)sizeof name || !wd_name_ok(name))
        return;
    const wd_tool_policy *tp = wd_policy_tool(w->p, name);
    if (!tp || tp->permission > w->u->role)
        return;
    json_t *d = json_object_get(tool, "description"), *schema = json_object_get(tool, "inputSchema");
    json_array_append_new(
        w->out, json_pack("{s:s,s:O?,s:o}", "name", name, "description", d, "inputSchema", input_schema(schema, tp)));
}

static void add_script_tools(wd_front *f, const wd_policy *p, const wd_user *u, json_t *out)
{
    for (size_t i = 0; i < p->n_tools; i++) {
        const wd_tool_policy *tp = &p->tools[i];
        const char *sep = strstr(tp->name, "__");
        if (tp->pattern || tp->permission > u->role || !wd_name_ok(tp->name) ||
            (sep && sep > tp->name && wd_policy_mcp_server(p, tp->name, (size_t)(sep - tp->name))))
            continue; /* a server's tools come from its list */
        char path[4200];
        struct stat st;
        json_t *spec =
            script_of(f->srv->agents_dir, tp->name, path, sizeof path, &st) == 0 ? script_spec(f, path, &st) : NULL;
        json_t *shown = spec ? json_copy(spec) : NULL; /* the kept definition stays as it is */
        if (shown)
            json_object_set_new(shown, "inputSchema", input_schema(json_object_get(spec, "inputSchema"), tp));
        if (shown)
            json_array_append_new(out, shown);
    }
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the agents under the agents directory (NAME/agent.lua or NAME.lua), by name, that the
** kill switch does not stop */
static void add_agents(wd_front *f, const json_t *killed, json_t *out)
{
    DIR *d = opendir(f->srv->agents_dir);
    if (!d)
        return;
    char *names[MAX_AGENTS];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < MAX_AGENTS) {
        char name[256];
        wd_strlcpy(name, de->d_name, sizeof name);
        size_t l = strlen(name);
        if (l > 4 && !strcmp(name + l - 4, ".lua"))
            name[l - 4] = '\0';
        char full[300];
        snprintf(full, sizeof full, MCP_AGENT_PREFIX "%s", name);
        if (name[0] == '.' || !wd_name_ok(full) || json_object_get(killed, name))
            continue;
        char *path = wd_api_agent_path(f->srv, name);
        if (path && (names[n] = wd_strdup(name)))
            n++;
        free(path);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(names[i], names[i - 1])) {
            char name[300], desc[400];
            snprintf(name, sizeof name, MCP_AGENT_PREFIX "%s", names[i]);
            snprintf(desc, sizeof desc,
                     "Runs warden's agent '%s' on the input, under warden's policy, and returns its result", names[i]);
            json_array_append_new(out, json_pack("{s:s,s:s,s:{s:s,s:{s:{s:s,s:s}},s:[s],s:b}}", "name", name,
                                                 "description", desc, "inputSchema", "type", "object", "properties",
                                                 "input", "type", "string", "description", "what the agent is asked",
                                                 "required", "input", "additionalProperties", 0));
        }
    }
    for (size_t i = 0; i < n; i++) /* after: each name is compared with the one before it */
        free(names[i]);
}

json_t *wd_mcplist_agents(wd_front *f, char *err, size_t n)
{
    json_t *killed = NULL, *failing = NULL;
    if (wd_store_kill_read(wd_engine_store(f->e), &killed, &failing) < 0) {
        snprintf(err, n, "state store: %s", wd_store_error(wd_engine_store(f->e)));
        return NULL;
    }
    json_decref(failing);
    json_t *tools = json_array(), *out = json_array();
    if (tools && out && !json_object_get(killed, WD_KILL_ALL))
        add_agents(f, killed, tools);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) json_array_append(out, json_object_get(t, "name"));
    json_decref(tools);
    json_decref(killed);
    for (i = 0; i < json_array_size(out); i++) /* agent__NAME: the NAME */
        json_array_set_new(out, i, json_string(json_string_value(json_array_get(out, i)) + strlen(MCP_AGENT_PREFIX)));
    if (!out)
        snprintf(err, n, "out of memory");
    return out;
}

json_t *wd_mcplist_tools(wd_front *f, const wd_policy *p, const wd_user *u, char *err, size_t n)
{
    json_t *killed = NULL, *failing = NULL;
    if (wd_store_kill_read(wd_engine_store(f->e), &killed, &failing) < 0) {
        snprintf(err, n, "state store: %s", wd_store_error(wd_engine_store(f->e)));
        return NULL;
    }
    json_decref(failing);
    json_t *out = json_array();
    if (out && !json_object_get(killed, WD_KILL_ALL)) {
        if (!json_object_get(killed, WD_DIRECT_AGENT)) {
            add_script_tools(f, p, u, out);
            mcp_walk w = {p, u, out};
            wd_engine_mcp_tools(f->e, add_server_tool, &w);
        }
        add_agents(f, killed, out);
    }
    json_decref(killed);
    if (!out)
        snprintf(err, n, "out of memory");
    return out;
}

void wd_mcplist_free(wd_front *f)
{
    json_decref(f->tool_specs);
    f->tool_specs = NULL;
}
