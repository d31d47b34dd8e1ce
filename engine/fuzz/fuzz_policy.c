/* fuzz_policy.c - the policy loader on any bytes: it answers with a policy or with
** errors that name file:line:column, never crashes, leaks or loops. */
#include "fuzz.h"
#include "policy.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load_text((const char *)data, size, "fuzz.yaml", &pe);
    FUZZ_ASSERT(p || pe.n, "no policy and no error");
    for (size_t i = 0; i < pe.n; i++)
        FUZZ_ASSERT(!strncmp(pe.v[i], "fuzz.yaml:", 10), "an error without its place: %s", pe.v[i]);
    wd_policy_unref(p);
    wd_perrors_free(&pe);
    return 0;
}
