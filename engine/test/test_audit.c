/* test_audit.c - the hash chain, verify's verdicts, redaction, torn-line repair */
#include "harness.h"
#include "audit.h"
#include "events.h"
#include "policy.h"
#include "redact.h"
#include "rotate.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/wd-audit-test.XXXXXX";

static char *path_of(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_n(const char *path, int n)
{
    char err[200];
    wd_audit *a = wd_audit_open(path, WD_FSYNC_NONE, err, sizeof err);
    for (int i = 0; i < n; i++)
        wd_audit_append(a, json_pack("{s:s,s:i,s:b}", "event", "tool_call", "n", i, "success", 1));
    wd_audit_close(a);
}

static int verify(const char *path, char *msg, size_t n)
{
    wd_buf rep = {0};
    int rc = wd_audit_verify(path, &rep, NULL);
    snprintf(msg, n, "%s", rep.p ? rep.p : "");
    wd_buf_free(&rep);
    return rc;
}

TEST(chain_is_valid_and_continues)
{
    char *p = path_of("a.jsonl"), msg[300];
    write_n(p, 10);
    write_n(p, 5); /* a second writer continues the chain */
    CHECK(verify(p, msg, sizeof msg) == 0);
    CHECK_HAS(msg, "intact, 15 records");
}

/* records are rendered in groups between flushes: none lost, none reordered, each
** with its own content, whatever the group boundaries */
TEST(groups_keep_every_record_in_order)
{
    char *p = path_of("g.jsonl"), msg[300], err[200];
    wd_audit *a = wd_audit_open(p, WD_FSYNC_NONE, err, sizeof err);
    for (int i = 0; i < 100; i++) {
        wd_audit_append(a, json_pack("{s:s,s:i,s:s}", "event", "tool_call", "n", i, "seq", "not the writer's"));
        if (i == 40 || i == 41 || i == 77)
            CHECK(wd_audit_flush(a) == 0);
    }
    CHECK(wd_audit_pending(a) == 22); /* 16 staged, 6 fresh */
    wd_audit_close(a);
    CHECK(verify(p, msg, sizeof msg) == 0);
    CHECK_HAS(msg, "intact, 100 records");
    size_t len;
    char *text = wd_read_file(p, 1 << 20, &len);
    int n = 0, in_order = 1;
    for (char *s = text; s && *s; n++) {
        json_t *r = json_loads(s, JSON_DISABLE_EOF_CHECK, NULL);
        in_order &=
            json_integer_value(json_object_get(r, "n")) == n && json_integer_value(json_object_get(r, "seq")) == n + 1;
        json_decref(r);
        s = strchr(s, '\n');
        s = s ? s + 1 : NULL;
    }
    CHECK(n == 100 && in_order);
    free(text);
}

static void rewrite(const char *path, int line, const char *with, int drop)
{
    size_t len;
    char *text = wd_read_file(path, 1 << 20, &len);
    FILE *f = fopen(path, "w");
    int n = 1;
    for (char *s = text, *nl; s && *s; s = nl + 1, n++) {
        nl = strchr(s, '\n');
        if (n == line) {
            if (with)
                fprintf(f, "%s\n", with);
            if (drop)
                continue;
        }
        fwrite(s, 1, (size_t)(nl - s + 1), f);
    }
    fclose(f);
    free(text);
}

TEST(edit_delete_insert_detected)
{
    char *p = path_of("b.jsonl"), msg[300];
    write_n(p, 6);
    size_t len;
    char *text = wd_read_file(p, 1 << 20, &len);
    char *line3 = strdup(strchr(strchr(text, '\n') + 1, '\n') + 1);
    *strchr(line3, '\n') = '\0';
    free(text);

    rewrite(p, 4, NULL, 1); /* delete line 4 */
    CHECK(verify(p, msg, sizeof msg) == 1);
    CHECK_HAS(msg, ":4: chain broken");

    unlink(p);
    write_n(p, 6);
    rewrite(p, 5, line3, 0); /* insert a copy of line 3 before line 5 */
    CHECK(verify(p, msg, sizeof msg) == 1);
    CHECK_HAS(msg, ":5: chain broken");

    unlink(p);
    write_n(p, 6);
    char *edited = strdup(line3);
    char *at = strstr(edited, "\"n\":2");
    at[4] = '7';
    rewrite(p, 3, edited, 1); /* edit line 3 */
    CHECK(verify(p, msg, sizeof msg) == 1);
    CHECK_HAS(msg, ":3: hash does not match");
    free(edited);
    free(line3);
}

TEST(torn_line_repaired_with_record)
{
    char *p = path_of("c.jsonl"), msg[300];
    write_n(p, 3);
    FILE *f = fopen(p, "a");
    fputs("{\"seq\":4,\"ev", f);
    fclose(f);
    CHECK(verify(p, msg, sizeof msg) == 1);
    CHECK_HAS(msg, "torn last line");
    write_n(p, 1);
    CHECK(verify(p, msg, sizeof msg) == 0);
    size_t len;
    char *text = wd_read_file(p, 1 << 20, &len);
    CHECK_HAS(text, "\"event\":\"audit_recovered\"");
    CHECK_HAS(text, "\"torn_fragment\":\"{\\\"seq\\\":4,\\\"ev\"");
    free(text);
}

TEST(fails_closed_when_unwritable)
{
    char err[200];
    wd_audit *a = wd_audit_open("/proc/warden-cannot-write/x.jsonl", WD_FSYNC_BATCH, err, sizeof err);
    CHECK(a == NULL);
    CHECK_HAS(err, "cannot open audit log");
}

/* a FIFO takes writes but refuses fdatasync (EINVAL): a real fsync error */
static wd_audit *open_fifo(const char *name, int mode)
{
    char err[200];
    char *p = path_of(name);
    CHECK(mkfifo(p, 0600) == 0);
    wd_audit *a = wd_audit_open(p, mode, err, sizeof err);
    CHECK(a != NULL);
    return a;
}

TEST(fsync_error_fails_closed_always)
{
    wd_audit *a = open_fifo("always.fifo", WD_FSYNC_ALWAYS);
    CHECK(wd_audit_append(a, json_pack("{s:s}", "event", "run_started")) == -1);
    CHECK(wd_audit_failed(a));
    CHECK_HAS(wd_audit_error(a), "fsync failed");
    wd_audit_close(a);
}

/* batch syncs on its own thread: the error arrives after the flush returned, and the
** log is closed for every later record */
TEST(fsync_error_fails_closed_batch)
{
    wd_audit *a = open_fifo("batch.fifo", WD_FSYNC_BATCH);
    CHECK(wd_audit_append(a, json_pack("{s:s}", "event", "run_started")) == 0);
    CHECK(wd_audit_flush(a) == 0);
    for (int i = 0; i < 2000 && !wd_audit_failed(a); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK(wd_audit_failed(a));
    CHECK_HAS(wd_audit_error(a), "fsync failed");
    CHECK(wd_audit_append(a, json_pack("{s:s}", "event", "tool_call")) == -1);
    CHECK(wd_audit_flush(a) == -1);
    wd_audit_close(a);
}

/* a policy from text; caller unrefs */
static wd_policy *policy_of(const char *y)
{
    wd_perrors pe = {0};
    wd_policy *p = wd_policy_load_text(y, strlen(y), "t.yaml", &pe);
    wd_perrors_free(&pe);
    return p;
}

TEST(secret_keys_match_whole_words)
{
    wd_policy *p = policy_of("audit: {redact_keys: [password, token, api_key]}\n");
    CHECK(p != NULL);
    const char *yes[] = {"password",  "PASSWORD",   "user_Password", "token", "a.token",
                         "x-TOKEN-y", "my_api_key", "api_key",       NULL};
    const char *no[] = {"input_tokens", "tokenizer", "mytoken", "passwords", "api", "apikey", "", NULL};
    for (int i = 0; yes[i]; i++)
        CHECK(wd_redact_is_secret_key(p, yes[i]));
    for (int i = 0; no[i]; i++)
        CHECK(!wd_redact_is_secret_key(p, no[i]));
    wd_policy_unref(p);
}

TEST(redaction)
{
    wd_policy *p =
        policy_of("audit: {redact_keys: [password, token], redact_patterns: [credit_card, email, bearer_token]}\n");
    CHECK(p != NULL);
    json_t *rec = json_pack("{s:s,s:{s:s,s:i,s:s},s:s}", "event", "tool_call", "tool_args", "password", "hunter2",
                            "input_tokens", 5, "note", "mail me at a.b@example.com or 4111-1111-1111-1111", "error",
                            "Authorization: Bearer abc.def");
    wd_redact_record(p, rec);
    char *s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(strstr(s, "hunter2") == NULL);
    CHECK(strstr(s, "example.com") == NULL);
    CHECK(strstr(s, "4111") == NULL);
    CHECK(strstr(s, "abc.def") == NULL);
    CHECK_HAS(s, "\"input_tokens\":5");
    CHECK_HAS(s, "[REDACTED:email]");
    CHECK_HAS(s, "[REDACTED:credit_card]");
    CHECK_HAS(s, "[REDACTED:bearer_token]");
    CHECK_HAS(s, "\"event\":\"tool_call\"");
    free(s);
    json_decref(rec);
    wd_policy_unref(p);
}

/* each event's fields defined once (events.c): a member the event does not declare is
** found, and WARDEN_CHECK_RECORDS=path collects every one the writer is given */
TEST(stray_fields_reported)
{
    json_t *good = json_pack("{s:s,s:s,s:b,s:s,s:i}", "event", "tool_call", "run_id", "r", "success", 1, "tool_name",
                             "echo", "agent_step", 1);
    json_t *bad = json_pack("{s:s,s:b,s:s}", "event", "tool_call", "success", 1, "bogus", "x");
    json_t *unknown = json_pack("{s:s}", "event", "no_such_event");
    CHECK(wd_event_stray(good) == NULL);
    CHECK_STR(wd_event_stray(bad), "bogus");
    CHECK_STR(wd_event_stray(unknown), "event");
    CHECK(wd_event_fields(WD_AE_COUNT)[0] != NULL); /* the members every record has */
    char log[300], report[300];                     /* path_of's buffer is shared */
    snprintf(log, sizeof log, "%s", path_of("strays.jsonl"));
    snprintf(report, sizeof report, "%s", path_of("strays.txt"));
    setenv("WARDEN_CHECK_RECORDS", report, 1);
    char err[200];
    wd_audit *a = wd_audit_open(log, WD_FSYNC_NONE, err, sizeof err);
    unsetenv("WARDEN_CHECK_RECORDS");
    REQUIRE(a);
    wd_audit_append(a, good);
    wd_audit_append(a, bad);
    wd_audit_append(a, unknown);
    wd_audit_close(a);
    FILE *f = fopen(report, "r");
    REQUIRE(f);
    char text[300] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK_STR(text, "tool_call bogus\nno_such_event event\n");
}

/* two writers (as two processes would: each its own descriptor and lock) rotate one log
** while they append from threads of their own, with batch fsync's thread swapping files
** under them: one chain over every file, no record lost */
typedef struct writer {
    const char *path;
    int id;
} writer;

static void *write_rotating(void *arg)
{
    writer *w = arg;
    char err[200];
    wd_audit *a = wd_audit_open(w->path, WD_FSYNC_BATCH, err, sizeof err);
    if (!a)
        return NULL;
    wd_audit_rotation r = {2048, 0, 0, 0, 0};
    wd_audit_set_rotation(a, &r);
    for (int i = 0; i < 150; i++) {
        wd_audit_append(a, json_pack("{s:s,s:i,s:i,s:b}", "event", "tool_call", "agent_step", w->id, "retry_count", i,
                                     "success", 1));
        if (i % 3 == 0)
            wd_audit_flush(a);
    }
    wd_audit_close(a);
    return NULL;
}

TEST(rotation_keeps_one_chain_over_files)
{
    char p[300], msg[300];
    snprintf(p, sizeof p, "%s", path_of("rot.jsonl"));
    pthread_t t[2];
    writer w[2] = {{p, 1}, {p, 2}};
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, write_rotating, &w[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    wd_buf rep = {0};
    long n = 0;
    int rc = wd_audit_verify(p, &rep, &n);
    snprintf(msg, sizeof msg, "%s", rep.p ? rep.p : "");
    wd_buf_free(&rep);
    if (rc != 0)
        fprintf(stderr, "verify: %s\n", msg);
    CHECK(rc == 0);
    CHECK_HAS(msg, "files");
    long rotations = n - 300; /* each new file begins with an audit_rotated record */
    CHECK(rotations >= 5);
    struct stat st;
    char first[320];
    snprintf(first, sizeof first, "%s.1", p);
    CHECK(stat(first, &st) == 0 && (st.st_mode & 0777) == 0600);
}

/* a crash between the link and the rename left the live file with its number already:
** the next rotation keeps that number for it, and retention never counts it among the
** old files (with max_files 1 it would have removed the live records) */
TEST(rotation_after_a_crash_keeps_the_live_file)
{
    char p[300], link_name[320], err[200];
    snprintf(p, sizeof p, "%s", path_of("crash.jsonl"));
    wd_audit *a = wd_audit_open(p, WD_FSYNC_NONE, err, sizeof err);
    REQUIRE(a);
    wd_audit_rotation r = {1024, 0, 1, 0, 0};
    wd_audit_set_rotation(a, &r);
    for (int i = 0; i < 4; i++)
        wd_audit_append(a, json_pack("{s:s,s:i,s:b}", "event", "tool_call", "retry_count", i, "success", 1));
    CHECK(wd_audit_flush(a) == 0);
    snprintf(link_name, sizeof link_name, "%s.1", p);
    REQUIRE(link(p, link_name) == 0); /* the crash's leftover */
    for (int i = 4; i < 12; i++)
        wd_audit_append(a, json_pack("{s:s,s:i,s:b}", "event", "tool_call", "retry_count", i, "success", 1));
    CHECK(wd_audit_flush(a) == 0);
    wd_audit_close(a);
    wd_buf rep = {0};
    long n = 0;
    CHECK(wd_audit_verify(p, &rep, &n) == 0);
    wd_buf_free(&rep);
    CHECK(n == 13); /* the twelve, and the new file's audit_rotated */
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    RUN(chain_is_valid_and_continues);
    RUN(groups_keep_every_record_in_order);
    RUN(edit_delete_insert_detected);
    RUN(torn_line_repaired_with_record);
    RUN(fails_closed_when_unwritable);
    RUN(fsync_error_fails_closed_always);
    RUN(fsync_error_fails_closed_batch);
    RUN(secret_keys_match_whole_words);
    RUN(redaction);
    RUN(stray_fields_reported);
    RUN(rotation_keeps_one_chain_over_files);
    RUN(rotation_after_a_crash_keeps_the_live_file);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    DONE();
}
