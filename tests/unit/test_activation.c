/* test_activation.c: activations and softmax against PyTorch (fixtures/gen_activation.py). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/ctx.h"
#include "engine/error.h"
#include "tests/unit/fixture.h"

static struct fx fx;
static struct eng_ctx ctx1, ctx3;

START_TEST(act_case)
{
    json_t *c = fx_case(&fx, _i);
    const char *name = fx_str(c, "act"), *api = fx_str(c, "api");
    bool slice = fx_bool(c, "slice");
    float param = (float)fx_num(c, "param");
    int64_t pre = slice ? 3 : 0, post = slice ? 5 : 0, n;
    struct eng_tensor x0, want, x;
    float *xb0 = fx_load(&fx, c, "x", &x0), *wb = fx_load(&fx, c, "y", &want);
    float *xb = fx_widen(&x0, pre, post, true, &x, &n);
    int64_t cols = x.ne[x.ndim - 1], rows = eng_tensor_nelem(&x) / cols;
    if (strcmp(name, "softmax") == 0) {
        eng_softmax(&ctx3, &x);
    } else {
        enum eng_act act;
        ck_assert_msg(eng_act_parse(name, &act) == 0, "%s", eng_errmsg());
        if (strcmp(api, "rows") == 0)
            eng_act_rows(act, param, x.data, rows, cols, eng_tensor_ld(&x));
        else
            eng_activation(&ctx3, act, param, &x);
    }
    char op[48];
    snprintf(op, sizeof op, "%s%s", name, strcmp(name, "leaky_relu") == 0 ? (param < 0.15f ? "(0.1)" : "(0.2)") : "");
    /* gelu/sigmoid/softmax use libm's erff/expf; torch its own vectorised ones: both are
     * within a few ulp, so 1e-5 (relative to max(1, |y|)) holds. */
    fx_check(op, c, &x, &want, 1e-5);
    if (slice)
        fx_check_guards(op, c, xb, n, pre, cols, post);
    free(xb);
    free(xb0);
    free(wb);
}
END_TEST

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Threads only split rows: results must be bit-identical on 1 and 3 threads. */
START_TEST(threads_match_serial)
{
    enum { R = 40, C = 1000, NE = R * C };
    float *x = malloc(NE * sizeof(float)), *a = malloc(NE * sizeof(float)), *b = malloc(NE * sizeof(float));
    ck_assert(x && a && b);
    unsigned s = 5;
    for (int i = 0; i < NE; i++)
        x[i] = 20.0f * frand(&s);
    struct eng_tensor ta = eng_tensor_make("a", a, 2, (int64_t[]){R, C});
    struct eng_tensor tb = eng_tensor_make("b", b, 2, (int64_t[]){R, C});
    memcpy(a, x, NE * sizeof(float));
    memcpy(b, x, NE * sizeof(float));
    eng_softmax(&ctx1, &ta);
    eng_softmax(&ctx3, &tb);
    ck_assert(memcmp(a, b, NE * sizeof(float)) == 0);
    for (int r = 0; r < R; r++) {
        double sum = 0;
        for (int i = 0; i < C; i++)
            sum += a[r * C + i];
        ck_assert_double_eq_tol(sum, 1.0, 1e-5);
    }
    for (enum eng_act act = ENG_ACT_RELU; act <= ENG_ACT_SIGMOID; act++) {
        memcpy(a, x, NE * sizeof(float));
        memcpy(b, x, NE * sizeof(float));
        eng_activation(&ctx1, act, 0.1f, &ta);
        eng_activation(&ctx3, act, 0.1f, &tb);
        ck_assert_msg(memcmp(a, b, NE * sizeof(float)) == 0, "act %d differs on 3 threads", (int)act);
    }
    free(x);
    free(a);
    free(b);
}
END_TEST

/* A NaN must reach the output (torch propagates it) rather than be hidden as 0 or 6. */
START_TEST(nan_propagates)
{
    for (enum eng_act act = ENG_ACT_RELU; act <= ENG_ACT_SIGMOID; act++) {
        float v[3] = {NAN, -1.0f, 1.0f};
        eng_act_rows(act, 0.1f, v, 1, 3, 3);
        ck_assert_msg(isnan(v[0]), "act %d turned NaN into %g", (int)act, v[0]);
    }
    float v[3] = {1.0f, NAN, 2.0f};
    struct eng_tensor t = eng_tensor_make("v", v, 1, (int64_t[]){3});
    eng_activation(&ctx1, ENG_ACT_NONE, 0.0f, &t);
    ck_assert_float_eq(v[0], 1.0f);
    ck_assert_float_eq(v[2], 2.0f);
}
END_TEST

START_TEST(parse)
{
    static const struct {
        const char *s;
        enum eng_act act;
    } ok[] = {{"none", ENG_ACT_NONE},         {"relu", ENG_ACT_RELU},
              {"relu6", ENG_ACT_RELU6},       {"leaky_relu", ENG_ACT_LEAKY_RELU},
              {"gelu", ENG_ACT_GELU},         {"quick_gelu", ENG_ACT_QUICK_GELU},
              {"sigmoid", ENG_ACT_SIGMOID}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        enum eng_act act = (enum eng_act)99;
        ck_assert_int_eq(eng_act_parse(ok[i].s, &act), 0);
        ck_assert_int_eq(act, ok[i].act);
    }
    enum eng_act act = ENG_ACT_RELU;
    ck_assert_int_eq(eng_act_parse("swish", &act), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "unknown activation 'swish'"));
    ck_assert_int_eq(act, ENG_ACT_RELU);
    ck_assert_int_eq(eng_act_parse("RELU", &act), -1);
    ck_assert_int_eq(eng_act_parse("", &act), -1);
    ck_assert_int_eq(eng_act_parse(NULL, &act), -1);
    ck_assert_ptr_nonnull(strstr(eng_errmsg(), "(null)"));
}
END_TEST

int main(void)
{
    TCase *tc = fx_begin(&fx, "activation");
    fx_ctx_pair(&ctx1, &ctx3);
    tcase_add_loop_test(tc, act_case, 0, fx_ncases(&fx));
    tcase_add_test(tc, threads_match_serial);
    tcase_add_test(tc, nan_propagates);
    tcase_add_test(tc, parse);
    int rc = fx_finish(&fx, tc);
    eng_ctx_free(&ctx1);
    eng_ctx_free(&ctx3);
    return rc;
}
