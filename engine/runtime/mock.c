/* mock.c - the built-in mock provider: a YAML scenario played one entry per LLM call,
** from the start for every run; the last entry repeats (docs/policy.md, The mock provider). */
#include "engine.h"
#include "mock.h"
#include "util.h"
#include "ydoc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct wd_mock {
    json_t *entries;
};

static const char *const ENTRY_KEYS[] = {"content", "tool_calls", "usage", "error", "delay_ms", NULL};

wd_mock *wd_mock_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = wd_read_file(path, WD_YDOC_MAX_BYTES, &len);
    if (!text) {
        wd_errf(err, errlen, "mock scenario %s: %s", path, wd_read_error(errno, WD_YDOC_MAX_BYTES));
        return NULL;
    }
    char e[300];
    wd_ynode *root = wd_ydoc_parse(text, len, e, sizeof e);
    free(text);
    if (!root) {
        wd_errf(err, errlen, "mock scenario %s:%s", path, e);
        return NULL;
    }
    if (root->kind != WD_Y_SEQ || root->n == 0) {
        wd_errf(err, errlen, "mock scenario %s:%d:%d: must be a non-empty list of entries", path, root->line,
                root->col);
        wd_ydoc_free(root);
        return NULL;
    }
    for (size_t i = 0; i < root->n; i++) {
        wd_ynode *en = root->kids[i];
        if (en->kind != WD_Y_MAP) {
            wd_errf(err, errlen, "mock scenario %s:%d:%d: an entry must be a mapping", path, en->line, en->col);
            wd_ydoc_free(root);
            return NULL;
        }
        for (size_t k = 0; k + 1 < en->n; k += 2) {
            int known = 0;
            for (int j = 0; ENTRY_KEYS[j]; j++)
                known |= en->kids[k]->kind == WD_Y_SCALAR && !strcmp(en->kids[k]->str, ENTRY_KEYS[j]);
            if (!known) {
                wd_errf(err, errlen,
                        "mock scenario %s:%d:%d: unknown key '%s'; use content, tool_calls, usage, error, delay_ms",
                        path, en->kids[k]->line, en->kids[k]->col, en->kids[k]->str ? en->kids[k]->str : "?");
                wd_ydoc_free(root);
                return NULL;
            }
        }
    }
    wd_mock *m = calloc(1, sizeof *m);
    if (m)
        m->entries = wd_ydoc_to_json(root);
    wd_ydoc_free(root);
    if (!m || !m->entries) {
        wd_mock_free(m);
        wd_errf(err, errlen, "out of memory");
        return NULL;
    }
    return m;
}

void wd_mock_free(wd_mock *m)
{
    if (!m)
        return;
    json_decref(m->entries);
    free(m);
}

json_t *wd_mock_entry(const wd_mock *m, int i)
{
    size_t n = json_array_size(m->entries);
    if (i < 0)
        i = 0;
    return json_array_get(m->entries, (size_t)i < n ? (size_t)i : n - 1);
}
