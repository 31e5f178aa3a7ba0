/* test_tfjs.c: the TF.js weights reader on a manifest with split and quantised shards, and a table of bad ones. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/tfjs.h"
#include "tests/unit/fixture.h"

static char tmpdir[] = "/tmp/salient-tfjs-XXXXXX";

/* ---- a good manifest ---- */

/* Group 0: a uint8-quantised [2,3], a float32 [3] that straddles the two shards, a
 * uint16-quantised [2,2]. Group 1: int32 [3], float16-quantised [2], a float32 scalar. */
static const char good_manifest[] =
    "[{\"paths\":[\"g0-shard1of2.bin\",\"g0-shard2of2.bin\"],\"weights\":["
    "{\"name\":\"conv0/filters\",\"shape\":[2,3],\"dtype\":\"float32\","
    "\"quantization\":{\"dtype\":\"uint8\",\"scale\":0.009007044399485869,\"min\":-1.2069439495311063}},"
    "{\"name\":\"conv0/bias\",\"shape\":[3],\"dtype\":\"float32\"},"
    "{\"name\":\"fc/weights\",\"shape\":[2,2],\"dtype\":\"float32\","
    "\"quantization\":{\"dtype\":\"uint16\",\"scale\":0.001,\"min\":-2.5}}]},"
    "{\"paths\":[\"g1.bin\"],\"weights\":["
    "{\"name\":\"ids\",\"shape\":[3],\"dtype\":\"int32\"},"
    "{\"name\":\"half\",\"shape\":[2],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"float16\"}},"
    "{\"name\":\"scalar\",\"shape\":[],\"dtype\":\"float32\"}]}]\n";

START_TEST(good_manifest_read)
{
    unsigned char g0[26], g1[20];
    static const unsigned char q8[6] = {0, 1, 128, 200, 254, 255};
    static const float bias[3] = {0.5f, -1.25f, 3.0e-8f};
    static const uint16_t q16[4] = {0, 1000, 2500, 65535};
    static const int32_t ids[3] = {7, -3, 2147483647};
    static const uint16_t half[2] = {0x3555, 0x0200}; /* 0.333251953125, subnormal 2^-15 */
    static const float scalar = -6.5f;
    memcpy(g0, q8, 6);
    memcpy(g0 + 6, bias, 12);
    memcpy(g0 + 18, q16, 8);
    memcpy(g1, ids, 12);
    memcpy(g1 + 12, half, 4);
    memcpy(g1 + 16, &scalar, 4);

    char dir[512], path[600], shard[600];
    snprintf(dir, sizeof dir, "%s/good", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    fx_write_file(dir, "g0-shard1of2.bin", g0, 10, shard, sizeof shard); /* cuts conv0/bias in two */
    fx_write_file(dir, "g0-shard2of2.bin", g0 + 10, 16, shard, sizeof shard);
    fx_write_file(dir, "g1.bin", g1, 20, shard, sizeof shard);
    fx_write_file(dir, "model-weights_manifest.json", good_manifest, strlen(good_manifest), path, sizeof path);

    struct eng_tfjs *w = eng_tfjs_open(path);
    ck_assert_msg(w != NULL, "%s", eng_errmsg());
    ck_assert_int_eq(eng_tfjs_count(w), 6);
    static const char *order[] = {"conv0/filters", "conv0/bias", "fc/weights", "ids", "half", "scalar"};
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(eng_tfjs_at(w, i)->name, order[i]);
    ck_assert_ptr_null(eng_tfjs_at(w, 6));
    const struct eng_tfjs_info *info = eng_tfjs_find(w, "conv0/filters");
    ck_assert_ptr_nonnull(info);
    ck_assert_int_eq(info->ndim, 2);
    ck_assert_int_eq(info->shape[0], 2);
    ck_assert_int_eq(info->shape[1], 3);
    ck_assert_int_eq(info->nelem, 6);
    ck_assert_ptr_null(eng_tfjs_find(w, "conv0"));

    float got[6];
    /* q * scale + min for q = 0, 1, 128, 200, 254, 255, computed in double (as TF.js does) */
    static const float filters[6] = {-1.2069439495311063f, -1.1979369051316204f, -0.05404226639691512f,
                                     0.5944649303660674f, 1.0808453279383043f, 1.0898523723377902f};
    ck_assert_msg(eng_tfjs_read(w, "conv0/filters", 2, (int64_t[]){2, 3}, got) == 0, "%s", eng_errmsg());
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(got[i], filters[i], 1e-6);
    ck_assert_float_eq(got[0], (float)-1.2069439495311063); /* q = 0 gives min exactly */

    ck_assert_int_eq(eng_tfjs_read(w, "conv0/bias", 1, (int64_t[]){3}, got), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq(got[i], bias[i]);

    static const float fc[4] = {-2.5f, -1.5f, 0.0f, 63.035f};
    ck_assert_int_eq(eng_tfjs_read(w, "fc/weights", 2, (int64_t[]){2, 2}, got), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(got[i], fc[i], 1e-6);

    ck_assert_int_eq(eng_tfjs_read(w, "ids", 1, (int64_t[]){3}, got), 0);
    ck_assert_float_eq(got[0], 7.0f);
    ck_assert_float_eq(got[1], -3.0f);
    ck_assert_float_eq(got[2], 2147483648.0f);

    ck_assert_int_eq(eng_tfjs_read(w, "half", 1, (int64_t[]){2}, got), 0);
    ck_assert_float_eq(got[0], 0.333251953125f);
    ck_assert_float_eq(got[1], 3.0517578125e-05f);

    ck_assert_int_eq(eng_tfjs_read(w, "scalar", 0, NULL, got), 0);
    ck_assert_float_eq(got[0], -6.5f);
    eng_tfjs_close(w);
}
END_TEST

/* ---- bad manifests ---- */

enum bad_step { BAD_OPEN, BAD_READ };

struct bad_case {
    const char *name;
    const char *manifest; /* NULL: no manifest file at all */
    const char *shard;    /* written with shard_len zero bytes, if not NULL */
    size_t shard_len;
    enum bad_step step;
    const char *read_name;
    int read_ndim;
    int64_t read_shape[4];
    const char *want;
};

#define ONE(w) "[{\"paths\":[\"s.bin\"],\"weights\":[" w "]}]"
#define F32_A "{\"name\":\"a\",\"shape\":[3],\"dtype\":\"float32\"}"

static const struct bad_case bad_cases[] = {
    {"no_manifest", NULL, NULL, 0, BAD_OPEN, NULL, 0, {0}, "manifest not found"},
    {"not_json", "[{\"paths\": [", NULL, 0, BAD_OPEN, NULL, 0, {0}, "manifest not JSON"},
    {"empty_file", "", NULL, 0, BAD_OPEN, NULL, 0, {0}, "manifest not JSON"},
    {"not_list", "{\"weights\":[],\"paths\":[]}", NULL, 0, BAD_OPEN, NULL, 0, {0},
     "manifest is not a list of weight groups"},
    {"group_no_paths", "[{\"weights\":[]}]", NULL, 0, BAD_OPEN, NULL, 0, {0},
     "group 0 is not an object with \"paths\" and \"weights\" lists"},
    {"weight_no_name", ONE("{\"shape\":[3],\"dtype\":\"float32\"}"), "s.bin", 12, BAD_OPEN, NULL, 0, {0},
     "group 0: a weight is not an object with a string \"name\""},
    {"path_not_string", "[{\"paths\":[3],\"weights\":[]}]", NULL, 0, BAD_OPEN, NULL, 0, {0},
     "group 0: paths[0] is not a string"},
    {"missing_shard", ONE(F32_A), NULL, 0, BAD_OPEN, NULL, 0, {0}, "shard 's.bin' named by manifest not found"},
    {"shard_escapes", "[{\"paths\":[\"../s.bin\"],\"weights\":[" F32_A "]}]", NULL, 0, BAD_OPEN, NULL, 0, {0},
     "shard '../s.bin' named by manifest is not a file name inside the manifest's folder"},
    {"shard_short", ONE(F32_A), "s.bin", 8, BAD_OPEN, NULL, 0, {0},
     "shard(s) of group 0 hold 8 bytes, weights need 12"},
    {"shard_short_quantised",
     ONE(F32_A ",{\"name\":\"q\",\"shape\":[5],\"dtype\":\"float32\","
               "\"quantization\":{\"dtype\":\"uint16\",\"scale\":1,\"min\":0}}"),
     "s.bin", 21, BAD_OPEN, NULL, 0, {0}, "shard(s) of group 0 hold 21 bytes, weights need 22"},
    {"unknown_dtype", ONE("{\"name\":\"a\",\"shape\":[3],\"dtype\":\"bool\"}"), "s.bin", 12, BAD_OPEN, NULL, 0,
     {0}, "weight 'a': unknown dtype 'bool'"},
    {"unknown_quantization",
     ONE("{\"name\":\"a\",\"shape\":[3],\"dtype\":\"float32\","
         "\"quantization\":{\"dtype\":\"int4\",\"scale\":1,\"min\":0}}"),
     "s.bin", 12, BAD_OPEN, NULL, 0, {0}, "weight 'a': unknown quantization dtype 'int4'"},
    {"quantization_no_scale",
     ONE("{\"name\":\"a\",\"shape\":[3],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint8\",\"min\":0}}"),
     "s.bin", 12, BAD_OPEN, NULL, 0, {0}, "weight 'a': uint8 quantization needs numeric scale and min"},
    {"negative_shape", ONE("{\"name\":\"a\",\"shape\":[3,-1],\"dtype\":\"float32\"}"), "s.bin", 12, BAD_OPEN,
     NULL, 0, {0}, "weight 'a': bad shape: entry 1 is not an integer"},
    {"shape_not_list", ONE("{\"name\":\"a\",\"shape\":3,\"dtype\":\"float32\"}"), "s.bin", 12, BAD_OPEN, NULL,
     0, {0}, "weight 'a': bad shape: missing or not a list"},
    {"shape_huge", ONE("{\"name\":\"a\",\"shape\":[65536,65536,65536],\"dtype\":\"float32\"}"), "s.bin", 12,
     BAD_OPEN, NULL, 0, {0}, "weight 'a': bad shape: too many elements"},
    {"duplicate_weight", ONE(F32_A "," F32_A), "s.bin", 24, BAD_OPEN, NULL, 0, {0}, "weight 'a' listed twice"},
    {"wrong_shape", ONE(F32_A), "s.bin", 12, BAD_READ, "a", 2, {1, 3}, "weight 'a' has shape [3], expected [1,3]"},
    {"missing_weight", ONE(F32_A), "s.bin", 12, BAD_READ, "zz", 1, {3}, "no weight 'zz'"},
};
#define N_BAD ((int)(sizeof bad_cases / sizeof bad_cases[0]))

START_TEST(bad_manifest)
{
    const struct bad_case *c = &bad_cases[_i];
    char dir[512], path[600], shard[600];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, c->name);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    if (c->shard) {
        void *zeros = calloc(1, c->shard_len + 1);
        ck_assert_ptr_nonnull(zeros);
        fx_write_file(dir, c->shard, zeros, c->shard_len, shard, sizeof shard);
        free(zeros);
    }
    if (c->manifest)
        fx_write_file(dir, "m-weights_manifest.json", c->manifest, strlen(c->manifest), path, sizeof path);
    else
        snprintf(path, sizeof path, "%s/m-weights_manifest.json", dir);

    eng_error("(no message)");
    struct eng_tfjs *w = eng_tfjs_open(path);
    if (c->step == BAD_OPEN) {
        ck_assert_msg(w == NULL, "case %s: opened", c->name);
    } else {
        ck_assert_msg(w != NULL, "case %s: %s", c->name, eng_errmsg());
        float dst[16];
        ck_assert_int_eq(eng_tfjs_read(w, c->read_name, c->read_ndim, c->read_shape, dst), -1);
        eng_tfjs_close(w);
    }
    fx_assert_error(path, c->want);
}
END_TEST

int main(void)
{
    fx_tmpdir_make(tmpdir);
    TCase *tc = tcase_create("tfjs");
    tcase_add_test(tc, good_manifest_read);
    tcase_add_loop_test(tc, bad_manifest, 0, N_BAD);
    int rc = fx_run(suite_with(tc, "tfjs"));
    fx_tmpdir_remove(tmpdir);
    return rc;
}
