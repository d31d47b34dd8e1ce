/* check.h - a script checked as a run would load it, before any run does.
**
** The file is compiled from its text now, its top level run in a scratch sandbox under
** limits (CHECK_MS, CHECK_INSTR, a memory cap), and what it returns checked by where it
** lives: agent.lua gives warden.agent{} or warden.workflow{} (names in tools, steps,
** choose and detectors are text), tools/NAME.lua gives warden.tool{name = "NAME"} whose
** parameters compile as a JSON Schema, detectors/NAME.lua gives warden.detector{name =
** "NAME"} with a check function and known events; any other .lua file is compiled only
** (a module, run when required). warden serve checks an edit before it accepts it, and
** `warden check` checks a tree offline. The same definition checks (checkdef.h) serve
** the runs. */
#ifndef WD_CHECK_H
#define WD_CHECK_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

#include "policy.h"
#include "schema.h"
#include "util.h"

/* Checks the script at path (see above): 0, or -1 with "path:line: why" in err. A tool an
** agent lists must have a script when policy p declares it (when p is NULL: always),
** as its runs would load it; a detector it names must exist. */
int wd_check_script(const char *path, const wd_policy *p, char *err, size_t n);

/* The tool script at path (tools/NAME.lua) checked as above and its definition as an MCP
** client sees it: {name, description, inputSchema} (the parameters as written, an object
** schema when it gives none). Caller frees; NULL with "path:line: why" in err. */
json_t *wd_check_tool(const char *path, char *err, size_t n);

/* Checks path, a script or a directory: an agent's (agent.lua, tools/, detectors/ and its
** other .lua files) or one holding several. One line per script into report ("path: ok"
** or the error). The number of scripts that failed, or -1 when path cannot be read. */
int wd_check_tree(const char *path, const wd_policy *p, wd_buf *report, int *checked);

#endif
