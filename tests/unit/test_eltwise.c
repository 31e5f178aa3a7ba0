/* test_eltwise.c: add, mul, scale, affine and concat against PyTorch (fixtures/gen_eltwise.py). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/eltwise.h"
#include "engine/error.h"
#include "tests/unit/fixture.h"

#define MAX_PARTS 8

static struct fx fx;
static struct eng_ctx ctx1, ctx3;

static enum eng_act act_of(json_t *c)
{
    enum eng_act act;
    ck_assert_msg(eng_act_parse(fx_str(c, "act"), &act) == 0, "%s", eng_errmsg());
    return act;
}

START_TEST(eltwise_case)
{
    json_t *c = fx_case(&fx, _i);
    const char *op = fx_str(c, "op");
    bool slice = fx_bool(c, "slice"), inplace = fx_bool(c, "inplace");
    int64_t pre = slice ? 3 : 0, post = slice ? 5 : 0;
    struct eng_tensor want, in[MAX_PARTS], v[MAX_PARTS], y;
    float *inb[MAX_PARTS] = {0}, *vb[MAX_PARTS] = {0}, *yb = NULL;
    int64_t nv[MAX_PARTS], ny = 0;
    float *wb = fx_load(&fx, c, "y", &want);
    int n = 0;
    if (strcmp(op, "add") == 0 || strcmp(op, "mul") == 0) {
        inb[n] = fx_load(&fx, c, "a", &in[n]), n++;
        inb[n] = fx_load(&fx, c, "b", &in[n]), n++;
    } else if (strcmp(op, "concat") == 0) {
        for (n = 0; n < fx_int(c, "n"); n++) {
            char key[16];
            snprintf(key, sizeof key, "x%d", n);
            ck_assert_int_lt(n, MAX_PARTS);
            inb[n] = fx_load(&fx, c, key, &in[n]);
        }
    } else {
        inb[n] = fx_load(&fx, c, "x", &in[n]), n++;
    }
    for (int i = 0; i < n; i++)
        vb[i] = fx_widen(&in[i], pre, post, true, &v[i], &nv[i]);
    if (inplace) {
        y = v[0];
    } else {
        yb = fx_widen(&want, pre, post, false, &y, &ny);
    }

    int rc;
    float *scale = NULL, *shift = NULL;
    if (op[0] == 'a' && op[1] == 'd') {
        rc = eng_add(&ctx3, act_of(c), (float)fx_num(c, "param"), &v[0], &v[1], &y);
    } else if (op[0] == 'm') {
        rc = eng_mul(&ctx3, &v[0], &v[1], &y);
    } else if (op[0] == 's') {
        rc = eng_scale(&ctx3, (float)fx_num(c, "s"), &v[0], &y);
    } else if (op[0] == 'a') {
        struct eng_tensor ts;
        if (fx_bool(c, "has_scale"))
            scale = fx_load(&fx, c, "scale", &ts);
        if (fx_bool(c, "has_shift"))
            shift = fx_load(&fx, c, "shift", &ts);
        struct eng_affine p = {want.ne[want.ndim - 1], scale, shift, act_of(c), (float)fx_num(c, "param")};
        rc = eng_affine(&ctx3, &p, &v[0], &y);
    } else {
        rc = eng_concat(&ctx3, fx_int(c, "dim"), v, n, &y);
    }
    ck_assert_msg(rc == 0, "%s: %s", fx_name(c), eng_errmsg());
    /* gelu and sigmoid go through libm's erff/expf where torch has its own; 1e-5 still holds. */
    fx_check(op, c, &y, &want, 1e-5);
    int64_t ch = want.ne[want.ndim - 1];
    if (slice && !inplace)
        fx_check_guards(op, c, yb, ny, pre, ch, post);
    for (int i = 0; slice && i < n; i++)
        fx_check_guards(op, c, vb[i], nv[i], pre, in[i].ne[in[i].ndim - 1], post);
    for (int i = 0; i < n; i++) {
        free(inb[i]);
        free(vb[i]);
    }
    free(yb);
    free(wb);
    free(scale);
    free(shift);
}
END_TEST

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Threads only split rows, so a big tensor must come out bit-identical on 1 and 3 threads. */
START_TEST(threads_match_serial)
{
    enum { N = 3, H = 16, W = 16, C = 64, NE = N * H * W * C };
    float *a = malloc(NE * sizeof(float)), *b = malloc(NE * sizeof(float));
    float *y1 = malloc(2 * NE * sizeof(float)), *y3 = malloc(2 * NE * sizeof(float));
    float sc[C], sh[C];
    ck_assert(a && b && y1 && y3);
    unsigned s = 7;
    for (int i = 0; i < NE; i++)
        a[i] = frand(&s), b[i] = frand(&s);
    for (int i = 0; i < C; i++)
        sc[i] = frand(&s), sh[i] = frand(&s);
    struct eng_tensor ta = eng_tensor_make("a", a, 4, (int64_t[]){N, H, W, C});
    struct eng_tensor tb = eng_tensor_make("b", b, 4, (int64_t[]){N, H, W, C});
    struct eng_tensor t1 = eng_tensor_make("y1", y1, 4, (int64_t[]){N, H, W, C});
    struct eng_tensor t3 = eng_tensor_make("y3", y3, 4, (int64_t[]){N, H, W, C});
    struct eng_affine p = {C, sc, sh, ENG_ACT_RELU, 0.0f};
    for (int op = 0; op < 4; op++) {
        int r1, r3;
        if (op == 0) {
            r1 = eng_add(&ctx1, ENG_ACT_RELU, 0.0f, &ta, &tb, &t1);
            r3 = eng_add(&ctx3, ENG_ACT_RELU, 0.0f, &ta, &tb, &t3);
        } else if (op == 1) {
            r1 = eng_mul(&ctx1, &ta, &tb, &t1);
            r3 = eng_mul(&ctx3, &ta, &tb, &t3);
        } else if (op == 2) {
            r1 = eng_affine(&ctx1, &p, &ta, &t1);
            r3 = eng_affine(&ctx3, &p, &ta, &t3);
        } else {
            struct eng_tensor c1 = eng_tensor_make("c1", y1, 4, (int64_t[]){N, H, W, 2 * C});
            struct eng_tensor c3 = eng_tensor_make("c3", y3, 4, (int64_t[]){N, H, W, 2 * C});
            struct eng_tensor parts[2] = {ta, tb};
            r1 = eng_concat_channels(&ctx1, parts, 2, &c1);
            r3 = eng_concat_channels(&ctx3, parts, 2, &c3);
        }
        ck_assert_int_eq(r1, 0);
        ck_assert_int_eq(r3, 0);
        ck_assert_msg(memcmp(y1, y3, (op == 3 ? 2 : 1) * NE * sizeof(float)) == 0, "op %d differs on 3 threads", op);
    }
    /* spot values: the concat puts b's channels after a's */
    ck_assert_float_eq(y1[C], b[0]);
    ck_assert_float_eq(y1[2 * C * 5 + 3], a[C * 5 + 3]);
    free(a);
    free(b);
    free(y1);
    free(y3);
}
END_TEST

/* A part that a producer already wrote into its slice of the output is left alone. */
START_TEST(concat_zero_copy_part)
{
    float buf[2 * 3 * 5], other[2 * 3 * 2];
    for (int i = 0; i < 30; i++)
        buf[i] = (float)i;
    for (int i = 0; i < 12; i++)
        other[i] = -1.0f - (float)i;
    struct eng_tensor y = eng_tensor_make("y", buf, 4, (int64_t[]){2, 1, 3, 5});
    struct eng_tensor parts[2];
    parts[0] = eng_tensor_slice(&y, 3, 0, 3); /* already in place */
    parts[1] = eng_tensor_make("other", other, 4, (int64_t[]){2, 1, 3, 2});
    ck_assert_int_eq(eng_concat_channels(&ctx1, parts, 2, &y), 0);
    for (int r = 0; r < 6; r++) {
        for (int k = 0; k < 3; k++)
            ck_assert_float_eq(buf[r * 5 + k], (float)(r * 5 + k));
        for (int k = 0; k < 2; k++)
            ck_assert_float_eq(buf[r * 5 + 3 + k], other[r * 2 + k]);
    }
}
END_TEST

START_TEST(errors)
{
    float a[2 * 3 * 4 * 5], b[2 * 3 * 4 * 5], y[2 * 3 * 4 * 10];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    struct eng_tensor ta = eng_tensor_make("block.out", a, 4, (int64_t[]){2, 3, 4, 5});
    struct eng_tensor tb = eng_tensor_make("identity", b, 4, (int64_t[]){2, 3, 5, 4});
    struct eng_tensor ty = eng_tensor_make("y", y, 4, (int64_t[]){2, 3, 4, 5});
    ck_assert_int_eq(eng_add(&ctx1, ENG_ACT_RELU, 0.0f, &ta, &tb, &ty), -1);
    ck_assert_str_eq(eng_errmsg(), "add: 'block.out' has shape [2,3,4,5] but 'identity' has [2,3,5,4]");
    ck_assert_int_eq(eng_mul(&ctx1, &ta, &tb, &ty), -1);
    struct eng_tensor flat = eng_tensor_make("flat", y, 2, (int64_t[]){24, 5});
    ck_assert_int_eq(eng_scale(&ctx1, 2.0f, &ta, &flat), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "'flat' has [24,5]"));

    float sc[4] = {1, 1, 1, 1};
    struct eng_affine p = {4, sc, NULL, ENG_ACT_NONE, 0.0f};
    ck_assert_int_eq(eng_affine(&ctx1, &p, &ta, &ty), -1);
    ck_assert_str_eq(eng_errmsg(), "affine: 'block.out' has shape [2,3,4,5], expected 4 channels innermost");

    struct eng_tensor out = eng_tensor_make("cat", y, 4, (int64_t[]){2, 3, 4, 10});
    struct eng_tensor parts[2] = {ta, ta};
    ck_assert_int_eq(eng_concat(&ctx1, 3, parts, 2, &out), 0);
    parts[1] = tb;
    ck_assert_int_eq(eng_concat(&ctx1, 3, parts, 2, &out), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "input 1 'identity' has shape [2,3,5,4]"));
    parts[1] = eng_tensor_make("short", b, 4, (int64_t[]){2, 3, 4, 4});
    ck_assert_int_eq(eng_concat(&ctx1, 3, parts, 2, &out), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "inputs sum to 9, output 'cat' [2,3,4,10] has 10"));
    ck_assert_int_eq(eng_concat(&ctx1, 4, parts, 2, &out), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "dimension 4 out of range"));
    ck_assert_int_eq(eng_concat(&ctx1, 0, parts, 0, &out), -1);
    parts[1] = flat;
    ck_assert_int_eq(eng_concat(&ctx1, 3, parts, 2, &out), -1);
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "eltwise");
    fx_ctx_pair(&ctx1, &ctx3);
    tcase_add_loop_test(tc, eltwise_case, 0, fx_ncases(&fx));
    tcase_add_test(tc, threads_match_serial);
    tcase_add_test(tc, concat_zero_copy_part);
    tcase_add_test(tc, errors);
    int rc = fx_finish(&fx, tc);
    eng_ctx_free(&ctx1);
    eng_ctx_free(&ctx3);
    return rc;
}
