/* test_manifest.c: manifest.json parsing and model repository scanning, table-driven. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "models/manifest.h"
#include "models/repository.h"
#include "tests/unit/fixture.h"

static const struct {
    const char *name;
    const char *json;
    const char *error; /* NULL: must parse */
} cases[] = {
    {"ok", "{\"family\": \"densenet\"}", NULL},
    {"ok", "{\"family\": \"resnet\", \"version\": \"7\", \"demo\": true, \"labels\": [\"COVID-19\", \"Normal\"],"
           " \"batching\": {\"max_batch_size\": 8, \"max_queue_delay_us\": 2000}, \"provenance\": {\"x\": 1}}", NULL},
    {"ok", "", "not JSON"},
    {"ok", "[1, 2]", "must be a JSON object"},
    {"ok", "{\"family\": 3}", "'family' must be a string"},
    {"ok", "{\"task\": \"x\"}", "'family' missing"},
    {"ok", "{\"family\": \"\"}", "'family' must be 1 to"},
    {"ok", "{\"family\": \"a\", \"family\": \"b\"}", "duplicate"},
    {"ok", "{\"family\": \"a\", \"demo\": \"yes\"}", "'demo' must be true or false"},
    {"ok", "{\"family\": \"a\", \"labels\": \"x\"}", "'labels' must be a list of strings"},
    {"ok", "{\"family\": \"a\", \"labels\": [\"x\", 2]}", "'labels[1]' must be a non-empty string"},
    {"ok", "{\"family\": \"a\", \"batching\": 5}", "'batching' must be an object"},
    {"ok", "{\"family\": \"a\", \"batching\": {\"max_batch_size\": 0}}", "'batching.max_batch_size' must be"},
    {"ok", "{\"family\": \"a\", \"batching\": {\"max_queue_size\": 1.5}}", "'batching.max_queue_size' must be"},
    {"ok", "{\"family\": \"a\", \"version\": 2}", "'version' must be a string"},
    {".hidden", "{\"family\": \"a\"}", "model name '.hidden' is not usable"},
    {"a/b", "{\"family\": \"a\"}", "model name 'a/b' is not usable"},
};

START_TEST(parse_case)
{
    struct mdl_manifest m;
    const char *j = cases[_i].json;
    int rc = mdl_manifest_parse(&m, j, strlen(j), "m.json", cases[_i].name);
    if (!cases[_i].error) {
        ck_assert_msg(rc == 0, "case %d: %s", _i, eng_errmsg());
        mdl_manifest_free(&m);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(eng_errmsg(), cases[_i].error) != NULL, "case %d: message '%s' lacks '%s'", _i,
                      eng_errmsg(), cases[_i].error);
        ck_assert_msg(strncmp(eng_errmsg(), "m.json: ", 8) == 0, "message does not name the file: %s", eng_errmsg());
    }
}
END_TEST

START_TEST(fields_and_defaults)
{
    struct mdl_manifest m;
    const char *j = cases[1].json;
    ck_assert_int_eq(mdl_manifest_parse(&m, j, strlen(j), "m.json", "covid"), 0);
    ck_assert_str_eq(m.name, "covid");
    ck_assert_str_eq(m.family, "resnet");
    ck_assert_str_eq(m.version, "7");
    ck_assert(m.demo);
    ck_assert_int_eq(m.nlabels, 2);
    ck_assert_str_eq(m.labels[0], "COVID-19");
    ck_assert_str_eq(m.labels[1], "Normal");
    ck_assert_int_eq(m.batching.max_batch_size, 8);
    ck_assert_int_eq(m.batching.max_queue_delay_us, 2000);
    ck_assert_int_eq(m.batching.max_queue_size, 0);
    mdl_manifest_free(&m);

    j = cases[0].json;
    ck_assert_int_eq(mdl_manifest_parse(&m, j, strlen(j), "m.json", "d"), 0);
    ck_assert_str_eq(m.version, "1");
    ck_assert_str_eq(m.task, "");
    ck_assert(!m.demo);
    ck_assert_int_eq(m.nlabels, 0);
    mdl_manifest_free(&m);
}
END_TEST

START_TEST(repository_scan)
{
    char dir[] = "/tmp/salient-repo-XXXXXX", p[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *models[] = {"zeta", "alpha", "broken", "nomanifest"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, models[i]);
        ck_assert_int_eq(mkdir(p, 0700), 0);
    }
    static const char *files[][2] = {
        {"zeta/manifest.json", "{\"family\": \"swin\"}"},
        {"alpha/manifest.json", "{\"family\": \"densenet\"}"},
        {"broken/manifest.json", "{\"family\": 1}"},
        {"file.txt", "not a model"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        fx_write_file(dir, files[i][0], files[i][1], strlen(files[i][1]), p, sizeof p);

    struct mdl_repository r;
    ck_assert_int_eq(mdl_repository_scan(&r, dir), 0);
    ck_assert_int_eq(r.nmodels, 2);
    ck_assert_str_eq(r.models[0].name, "alpha");
    ck_assert_str_eq(r.models[1].name, "zeta");
    ck_assert_ptr_nonnull(mdl_repository_find(&r, "zeta"));
    ck_assert_ptr_null(mdl_repository_find(&r, "broken"));
    ck_assert_int_eq(r.nproblems, 2); /* broken: bad family; nomanifest: cannot open */
    int seen_broken = 0, seen_missing = 0;
    for (int i = 0; i < r.nproblems; i++) {
        seen_broken += strstr(r.problems[i], "broken/manifest.json: 'family' must be a string") != NULL;
        seen_missing += strstr(r.problems[i], "nomanifest/manifest.json: cannot open") != NULL;
    }
    ck_assert_int_eq(seen_broken, 1);
    ck_assert_int_eq(seen_missing, 1);
    mdl_repository_free(&r);

    ck_assert_int_eq(mdl_repository_scan(&r, "/nonexistent/salient"), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "not a readable directory"));
    mdl_repository_free(&r);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    TCase *tc = tcase_create("manifest");
    tcase_add_loop_test(tc, parse_case, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, fields_and_defaults);
    tcase_add_test(tc, repository_scan);
    return fx_run(suite_with(tc, "manifest"));
}
