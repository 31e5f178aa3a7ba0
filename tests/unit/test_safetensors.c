/* test_safetensors.c: the safetensors reader on good files, a PyTorch-written file and a table of bad ones. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "tests/unit/fixture.h"

static char tmpdir[] = "/tmp/salient-st-XXXXXX";

/* Write 8-byte LE length + header + data to tmpdir/name; the path goes into path. */
static void write_st(char *path, size_t cap, const char *name, const char *header, const void *data, size_t dlen)
{
    size_t hlen = strlen(header);
    unsigned char *file = malloc(8 + hlen + dlen);
    ck_assert_ptr_nonnull(file);
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((unsigned long long)hlen >> (8 * i));
    memcpy(file + 8, header, hlen);
    if (dlen)
        memcpy(file + 8 + hlen, data, dlen);
    fx_write_file(tmpdir, name, file, 8 + hlen + dlen, path, cap);
    free(file);
}

/* ---- good files ---- */

/* F32 [2,2], F16 [9] with subnormals, infinities and NaN, BF16 [5], an F32 scalar, an empty
 * tensor and an I64; the header length is odd so no tensor is aligned. */
START_TEST(good_file)
{
    static const float f32[4] = {1.5f, -2.25f, 0.0f, 1e-30f};
    static const uint16_t f16[9] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x7bff, 0x7e00};
    static const float f16_want[8] = {1.0f, -2.0f, 5.9604644775390625e-8f, 6.0975551605224609375e-5f,
                                      INFINITY, -INFINITY, -0.0f, 65504.0f};
    static const uint16_t bf16[5] = {0x3f80, 0xc040, 0x4049, 0xff80, 0x0001};
    static const float bf16_want[5] = {1.0f, -3.0f, 3.140625f, -INFINITY, 9.18354961579912e-41f};
    static const float scalar = 42.0f;
    static const int64_t i64[2] = {7, -7};
    unsigned char data[16 + 18 + 10 + 4 + 16];
    size_t off = 0;
    memcpy(data + off, f32, 16), off += 16;
    memcpy(data + off, f16, 18), off += 18;
    memcpy(data + off, bf16, 10), off += 10;
    memcpy(data + off, &scalar, 4), off += 4;
    memcpy(data + off, i64, 16), off += 16;
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                      "\"h\":{\"dtype\":\"F16\",\"shape\":[9],\"data_offsets\":[16,34]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[34,44]},"
                      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[44,48]},"
                      "\"e\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[48,48]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[48,64]},"
                      "\"__metadata__\":{\"format\":\"pt\",\"note\":\"hello\"}} ";
    char path[512];
    write_st(path, sizeof path, "good.safetensors", hdr, data, off);
    struct eng_st_file *f = eng_st_open(path);
    ck_assert_msg(f != NULL, "%s", eng_errmsg());
    ck_assert_str_eq(eng_st_path(f), path);
    ck_assert_int_eq(eng_st_count(f), 6);

    /* eng_st_at is in data-offset order; the empty tensor sorts before the one at its offset */
    static const char *order[] = {"w", "h", "b", "s", "e", "i"};
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(eng_st_at(f, i)->name, order[i]);
    ck_assert_ptr_null(eng_st_at(f, 6));
    ck_assert_ptr_null(eng_st_at(f, -1));

    ck_assert_str_eq(eng_st_metadata(f, "format"), "pt");
    ck_assert_str_eq(eng_st_metadata(f, "note"), "hello");
    ck_assert_ptr_null(eng_st_metadata(f, "absent"));
    ck_assert_ptr_null(eng_st_find(f, "__metadata__"));
    ck_assert_ptr_null(eng_st_find(f, "zz"));

    const struct eng_st_info *t = eng_st_find(f, "h");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, ENG_DTYPE_F16);
    ck_assert_int_eq(t->ndim, 1);
    ck_assert_int_eq(t->shape[0], 9);
    ck_assert_uint_eq(t->nbytes, 18);
    ck_assert_int_eq(memcmp(t->data, f16, 18), 0);
    t = eng_st_find(f, "i");
    ck_assert_int_eq(t->dtype, ENG_DTYPE_I64);
    ck_assert_str_eq(eng_dtype_name(t->dtype), "I64");

    float got[9];
    ck_assert_int_eq(eng_st_read(f, "w", 2, (int64_t[]){2, 2}, got), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(got[i], f32[i]);
    ck_assert_int_eq(eng_st_read(f, "h", 1, (int64_t[]){9}, got), 0);
    for (int i = 0; i < 8; i++) {
        ck_assert_float_eq(got[i], f16_want[i]);
        ck_assert_int_eq(signbit(got[i]) != 0, signbit(f16_want[i]) != 0);
    }
    ck_assert(isnan(got[8]));
    ck_assert_int_eq(eng_st_read(f, "b", 1, (int64_t[]){5}, got), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(got[i], bf16_want[i]);
    got[0] = 0;
    ck_assert_int_eq(eng_st_read(f, "s", 0, NULL, got), 0);
    ck_assert_float_eq(got[0], 42.0f);
    got[0] = 7;
    ck_assert_int_eq(eng_st_read(f, "e", 2, (int64_t[]){3, 0}, got), 0);
    ck_assert_float_eq(got[0], 7); /* nothing written */

    size_t n = 0;
    ck_assert_int_eq(eng_st_read_any(f, "w", got, 9, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_float_eq(got[1], -2.25f);
    ck_assert_int_eq(eng_st_read_any(f, "h", got, 8, &n), -1);
    fx_assert_error(path, "tensor 'h' has shape [9] (9 elements), buffer holds 8");
    eng_st_close(f);
    unlink(path);
}
END_TEST

/* Every half against an independent formula: (1024+m) * 2^(e-25), m * 2^-24 when e is 0. */
START_TEST(f16_all)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
        float got = eng_f16_to_f32((uint16_t)h);
        ck_assert_int_eq(signbit(got) != 0, (h & 0x8000) != 0);
        if (e == 0x1f) {
            ck_assert_msg(m ? isnan(got) : isinf(got), "half 0x%04x gave %g", h, got);
            continue;
        }
        double want = e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
        ck_assert_msg(fabs((double)got) == want, "half 0x%04x gave %.9g, want %.9g", h, got, want);
    }
    ck_assert_float_eq(eng_bf16_to_f32(0x4049), 3.140625f);
    ck_assert(isnan(eng_bf16_to_f32(0x7fc0)));
}
END_TEST

/* F16 and BF16 bytes made by PyTorch match torch's own widening to fp32. */
START_TEST(torch_file)
{
    const char *dir = getenv("SALIENT_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/st_torch_f16.safetensors", dir ? dir : "tests/unit/fixtures");
    struct eng_st_file *f = eng_st_open(path);
    ck_assert_msg(f != NULL, "%s (run tests/unit/fixtures/gen_safetensors.py)", eng_errmsg());
    ck_assert_ptr_nonnull(eng_st_metadata(f, "torch"));
    static const char *names[][2] = {{"f16", "f16_want"}, {"bf16", "bf16_want"}};
    for (int k = 0; k < 2; k++) {
        float got[18], want[18];
        ck_assert_int_eq(eng_st_find(f, names[k][0])->dtype, k == 0 ? ENG_DTYPE_F16 : ENG_DTYPE_BF16);
        ck_assert_msg(eng_st_read(f, names[k][0], 2, (int64_t[]){2, 9}, got) == 0, "%s", eng_errmsg());
        ck_assert_msg(eng_st_read(f, names[k][1], 2, (int64_t[]){2, 9}, want) == 0, "%s", eng_errmsg());
        int nonzero_subnormal = 0;
        for (int i = 0; i < 18; i++) {
            if (isnan(want[i])) {
                ck_assert_msg(isnan(got[i]), "%s[%d] = %g, want nan", names[k][0], i, got[i]);
                continue;
            }
            ck_assert_msg(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s[%d] = %.9g, want %.9g",
                          names[k][0], i, got[i], want[i]);
            if (k == 0 && want[i] != 0 && fabsf(want[i]) < 6.103515625e-5f)
                nonzero_subnormal++;
        }
        if (k == 0)
            ck_assert_int_ge(nonzero_subnormal, 2); /* the file does exercise F16 subnormals */
    }
    eng_st_close(f);
}
END_TEST

/* ---- bad files ---- */

enum bad_step { BAD_OPEN, BAD_READ };

struct bad_case {
    const char *name;
    const char *header;     /* NULL: write raw bytes instead */
    const char *raw;
    size_t raw_len;
    size_t data_len;        /* zero bytes of data after the header */
    enum bad_step step;
    const char *read_name;  /* BAD_READ: eng_st_read(read_name, read_ndim, read_shape) */
    int read_ndim;
    int64_t read_shape[4];
    const char *want;
};

#define ONE_F32(shape, offs) "{\"a\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static const struct bad_case bad_cases[] = {
    {"empty", NULL, "", 0, 0, BAD_OPEN, NULL, 0, {0}, "truncated: 0 bytes"},
    {"truncated", NULL, "\x10\0\0\0\0", 5, 0, BAD_OPEN, NULL, 0, {0}, "truncated: 5 bytes"},
    {"header_past_end", NULL, "\xe8\x03\0\0\0\0\0\0{}", 10, 0, BAD_OPEN, NULL, 0, {0},
     "header length 1000 past end of file (10 bytes)"},
    {"header_huge", NULL, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10, 0, BAD_OPEN, NULL, 0, {0},
     "header length 18446744073709551615 past end of file"},
    {"not_json", "{\"a\": nope", NULL, 0, 0, BAD_OPEN, NULL, 0, {0}, "header not JSON"},
    {"trailing_garbage", "{} x", NULL, 0, 0, BAD_OPEN, NULL, 0, {0}, "header not JSON"},
    {"duplicate_key", "{\"a\":{},\"a\":{}}", NULL, 0, 0, BAD_OPEN, NULL, 0, {0}, "header not JSON"},
    {"not_object", "[1,2]", NULL, 0, 0, BAD_OPEN, NULL, 0, {0}, "header JSON is not an object"},
    {"entry_not_object", "{\"a\":3}", NULL, 0, 0, BAD_OPEN, NULL, 0, {0}, "tensor 'a': header entry is not an object"},
    {"offsets_outside", ONE_F32("[2]", "[0,8]"), NULL, 0, 4, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': data offsets outside the file"},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     NULL, 0, 12, BAD_OPEN, NULL, 0, {0}, "tensors 'a' and 'b' overlap"},
    {"overlap_inside",
     "{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"mid\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
     "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
     NULL, 0, 16, BAD_OPEN, NULL, 0, {0}, "tensors 'big' and 'mid' overlap"},
    {"unknown_dtype", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}", NULL, 0, 1, BAD_OPEN,
     NULL, 0, {0}, "tensor 'a': unknown dtype 'Q4'"},
    {"missing_dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", NULL, 0, 8, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': dtype missing"},
    {"shape_vs_bytes", ONE_F32("[3]", "[0,8]"), NULL, 0, 8, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': F32 shape [3] needs 12 bytes, data_offsets give 8"},
    {"begin_after_end", ONE_F32("[1]", "[8,4]"), NULL, 0, 8, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': data_offsets [8,4] begin after end"},
    {"negative_offset", ONE_F32("[1]", "[-4,0]"), NULL, 0, 8, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': data_offsets is not a list of two non-negative integers"},
    {"offsets_not_pair", ONE_F32("[1]", "[0]"), NULL, 0, 8, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': data_offsets is not a list"},
    {"negative_shape", ONE_F32("[-1]", "[0,0]"), NULL, 0, 0, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': shape entry 0 is not a non-negative integer"},
    {"shape_not_list", ONE_F32("2", "[0,8]"), NULL, 0, 8, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': shape missing or not a list"},
    {"too_many_dims", ONE_F32("[1,1,1,1,1,1,1,1,1]", "[0,4]"), NULL, 0, 4, BAD_OPEN, NULL, 0, {0},
     "tensor 'a': shape has 9 dimensions, at most 8"},
    {"shape_overflow", ONE_F32("[4294967296,4294967296,4294967296]", "[0,4]"), NULL, 0, 4, BAD_OPEN, NULL, 0,
     {0}, "tensor 'a': shape [4294967296,4294967296,4294967296] is too large"},
    {"bytes_overflow", ONE_F32("[4611686018427387904]", "[0,4]"), NULL, 0, 4, BAD_OPEN, NULL, 0, {0},
     "is too large"},
    {"metadata_not_object", "{\"__metadata__\":[1]}", NULL, 0, 0, BAD_OPEN, NULL, 0, {0},
     "__metadata__ is not an object"},
    {"metadata_not_string", "{\"__metadata__\":{\"k\":1}}", NULL, 0, 0, BAD_OPEN, NULL, 0, {0},
     "__metadata__ 'k' is not a string"},
    {"wrong_shape", ONE_F32("[64,1,7,7]", "[0,12544]"), NULL, 0, 12544, BAD_READ, "a", 4, {64, 3, 7, 7},
     "tensor 'a' has shape [64,1,7,7], expected [64,3,7,7]"},
    {"wrong_ndim", ONE_F32("[2]", "[0,8]"), NULL, 0, 8, BAD_READ, "a", 2, {1, 2},
     "tensor 'a' has shape [2], expected [1,2]"},
    {"wrong_dtype", "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", NULL, 0, 16, BAD_READ,
     "a", 1, {2}, "tensor 'a' has dtype I64, expected F32, F16 or BF16"},
    {"missing_tensor", ONE_F32("[2]", "[0,8]"), NULL, 0, 8, BAD_READ, "x", 1, {2}, "no tensor 'x'"},
};
#define N_BAD ((int)(sizeof bad_cases / sizeof bad_cases[0]))

START_TEST(bad_file)
{
    const struct bad_case *c = &bad_cases[_i];
    char path[512], fname[128];
    snprintf(fname, sizeof fname, "%s.safetensors", c->name);
    if (c->header) {
        void *zeros = calloc(1, c->data_len + 1);
        ck_assert_ptr_nonnull(zeros);
        write_st(path, sizeof path, fname, c->header, zeros, c->data_len);
        free(zeros);
    } else {
        fx_write_file(tmpdir, fname, c->raw, c->raw_len, path, sizeof path);
    }
    eng_error("(no message)");
    struct eng_st_file *f = eng_st_open(path);
    if (c->step == BAD_OPEN) {
        ck_assert_msg(f == NULL, "case %s: opened", c->name);
    } else {
        ck_assert_msg(f != NULL, "case %s: %s", c->name, eng_errmsg());
        float *dst = calloc(64 * 3 * 7 * 7, sizeof *dst);
        ck_assert_ptr_nonnull(dst);
        ck_assert_int_eq(eng_st_read(f, c->read_name, c->read_ndim, c->read_shape, dst), -1);
        free(dst);
        eng_st_close(f);
    }
    fx_assert_error(path, c->want);
    unlink(path);
}
END_TEST

/* eng_st_open_mem: the same checks on bytes in memory; tensors point into the caller's buffer. */
START_TEST(from_memory)
{
    static const float w[3] = {1.5f, -2.0f, 0.25f};
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    size_t hlen = strlen(hdr);
    unsigned char buf[8 + 128 + 12];
    ck_assert_uint_lt(hlen, 128);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    memcpy(buf + 8 + hlen, w, sizeof w);
    struct eng_st_file *f = eng_st_open_mem(buf, 8 + hlen + sizeof w, "mem.safetensors");
    ck_assert_msg(f != NULL, "%s", eng_errmsg());
    ck_assert_str_eq(eng_st_path(f), "mem.safetensors");
    const struct eng_st_info *t = eng_st_find(f, "w");
    ck_assert_ptr_eq(t->data, buf + 8 + hlen);
    float got[3];
    ck_assert_int_eq(eng_st_read(f, "w", 1, (int64_t[]){3}, got), 0);
    ck_assert_float_eq(got[2], 0.25f);
    eng_st_close(f);

    /* Errors name the buffer as eng_st_open names the file. */
    ck_assert_ptr_null(eng_st_open_mem(buf, 8 + hlen + 8, "mem.safetensors"));
    fx_assert_error("mem.safetensors", "tensor 'w': data offsets outside the file: [0,12], data section is 8 bytes");
    ck_assert_ptr_null(eng_st_open_mem(buf, 7, "short"));
    fx_assert_error("short", "truncated: 7 bytes, too short for the 8-byte header length");
    /* No tensors at all is a valid, empty file (this once reached qsort(NULL, 0)). */
    memcpy(buf, "\2\0\0\0\0\0\0\0{}", 10);
    f = eng_st_open_mem(buf, 10, "empty");
    ck_assert_msg(f != NULL, "%s", eng_errmsg());
    ck_assert_int_eq(eng_st_count(f), 0);
    ck_assert_ptr_null(eng_st_find(f, "w"));
    eng_st_close(f);
}
END_TEST

START_TEST(missing_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/absent.safetensors", tmpdir);
    ck_assert_ptr_null(eng_st_open(path));
    fx_assert_error(path, "cannot open");
    ck_assert_ptr_null(eng_st_open(tmpdir));
    fx_assert_error(tmpdir, "not a regular file");
}
END_TEST

int main(void)
{
    fx_tmpdir_make(tmpdir);
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, good_file);
    tcase_add_test(tc, f16_all);
    tcase_add_test(tc, torch_file);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, from_memory);
    tcase_add_loop_test(tc, bad_file, 0, N_BAD);
    int rc = fx_run(suite_with(tc, "safetensors"));
    fx_tmpdir_remove(tmpdir);
    return rc;
}
