/* checkdef.h - the definition a tool or detector script returns (warden.tool{},
** warden.detector{}), read raw and checked: the same checks serve a run loading its
** tools and detectors and `warden check` (check.h) reading a tree. */
#ifndef WD_CHECKDEF_H
#define WD_CHECKDEF_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

#include "schema.h"

/* the bit of a detector event name (llm_call, tool_call, tool_result, log, run_finished),
** 0 for another */
unsigned wd_check_event_bit(const char *name);

/* The tool definition at idx (what tools/NAME.lua returned) read raw: warden.tool{} named
** name, its parameters (an object schema when absent) compiled. 0 with *params and
** *schema (caller frees), or -1 with err naming file. Never raises; allocates on L. */
int wd_check_tool_def(lua_State *L, int idx, const char *name, const char *file, json_t **params, wd_schema **schema,
                      char *err, size_t n);

/* The detector definition at idx read raw: warden.detector{} named name with a check
** function; *on gets the bits of its events (every one when it names none), *per_user
** whether it keeps its state per user (state = "user"). 0, or -1 with err naming file.
** Never raises. */
int wd_check_detector_def(lua_State *L, int idx, const char *name, const char *file, unsigned *on, int *per_user,
                          char *err, size_t n);

/* t[k] of the table at idx without metamethods (a definition is read outside any
** watched slice); pushes it and returns its type */
int wd_check_rawfield(lua_State *L, int idx, const char *k);
/* 1 when the table at idx has kind == what, raw */
int wd_check_is_kind(lua_State *L, int idx, const char *what);

#endif
