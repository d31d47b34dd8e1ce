/* test_util.c - run ids: UUID v4 text, never repeated, not shared with a forked child */
#include "harness.h"
#include "util.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_uuid4(const char *s)
{
    if (strlen(s) != 36 || s[14] != '4' || !strchr("89ab", s[19]))
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return 0;
    }
    return 1;
}

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

TEST(ids_are_uuid4_text_and_never_repeat)
{
    enum { N = 5000 }; /* many more than one block of random bytes holds */
    static char ids[N][37];
    int bad = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        wd_uuid(ids[i]);
        bad += !is_uuid4(ids[i]);
    }
    qsort(ids, N, sizeof ids[0], cmp);
    for (int i = 1; i < N; i++)
        dup += !strcmp(ids[i - 1], ids[i]);
    CHECK(bad == 0);
    CHECK(dup == 0);
    /* every hex digit shows up in every free position: the bytes are not constant */
    int seen[36][16] = {{0}};
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 36; k++)
            if (ids[i][k] != '-')
                seen[k][strchr("0123456789abcdef", ids[i][k]) - "0123456789abcdef"] = 1;
    int missing = 0;
    for (int k = 0; k < 36; k++)
        if (k != 8 && k != 13 && k != 14 && k != 18 && k != 19 && k != 23)
            for (int d = 0; d < 16; d++)
                missing += !seen[k][d];
    CHECK(missing == 0);
}

/* a forked child must not hand out the ids its parent will: it draws its own bytes */
TEST(a_forked_child_draws_its_own_ids)
{
    char warm[37], mine[37], theirs[37] = "";
    wd_uuid(warm); /* the parent now holds a block with ids left in it */
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char id[37];
        wd_uuid(id);
        ssize_t w = write(fd[1], id, 37);
        _exit(w == 37 ? 0 : 1);
    }
    close(fd[1]);
    CHECK(read(fd[0], theirs, 37) == 37);
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    wd_uuid(mine);
    CHECK(is_uuid4(theirs));
    CHECK(strcmp(mine, theirs) != 0);
}

int main(void)
{
    RUN(ids_are_uuid4_text_and_never_repeat);
    RUN(a_forked_child_draws_its_own_ids);
    DONE();
}
