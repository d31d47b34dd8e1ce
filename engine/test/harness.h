/* harness.h - a tiny test harness: CHECK records failures, the runner prints
** "<file>: N passed, N failed" as its last line and exits non-zero on failure.
** WD_TEST_FILTER=text runs only the tests whose name contains text
** (`make ctest T=test_policy FILTER=reload`). */
#ifndef WD_HARNESS_H
#define WD_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int h_pass, h_fail, h_case_failed;
static const char *h_case;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
        } else {                                                                                                       \
            fprintf(stderr, "  FAIL %s: %s:%d: %s\n", h_case, __FILE__, __LINE__, #cond);                              \
            h_case_failed = 1;                                                                                         \
        }                                                                                                              \
    } while (0)

/* a check the rest of the test needs (a pointer it goes on to use): failed, the test ends */
#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "  FAIL %s: %s:%d: %s (required)\n", h_case, __FILE__, __LINE__, #cond);                   \
            h_case_failed = 1;                                                                                         \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

static inline int h_streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }
#define CHECK_STR(a, b) CHECK(h_streq((a), (b)))
static inline int h_has(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }
#define CHECK_HAS(hay, needle) CHECK(h_has((hay), (needle)))

#define TEST(name) static void name(void)
static inline int h_selected(const char *name)
{
    const char *f = getenv("WD_TEST_FILTER");
    return !f || !*f || strstr(name, f) != NULL;
}

#define RUN(name)                                                                                                      \
    do {                                                                                                               \
        if (!h_selected(#name))                                                                                        \
            break;                                                                                                     \
        h_case = #name;                                                                                                \
        h_case_failed = 0;                                                                                             \
        name();                                                                                                        \
        if (h_case_failed)                                                                                             \
            h_fail++;                                                                                                  \
        else                                                                                                           \
            h_pass++;                                                                                                  \
    } while (0)

#define DONE()                                                                                                         \
    do {                                                                                                               \
        printf("%s: %d passed, %d failed\n", __FILE__, h_pass, h_fail);                                                \
        return h_fail ? 1 : 0;                                                                                         \
    } while (0)

#endif
