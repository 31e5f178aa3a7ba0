/* activation.c: pointwise activations and softmax, in place. */
#include "engine/activation.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/error.h"

/* erf as a rational minimax fit on [-4, 4] (Eigen's float erf; beyond 4, erf is 1 in float):
 * max abs error 4e-7 against erf in double, and, unlike libm's erff, a straight-line formula the
 * compiler vectorises. GELU with erff was a quarter of Swin-T's time; this is 6-8x faster. */
static inline float erf_fast(float v)
{
    float x = v > ENG_ERF_CLAMP ? ENG_ERF_CLAMP : v;
    x = x < -ENG_ERF_CLAMP ? -ENG_ERF_CLAMP : x;
    float x2 = x * x;
    float p = x2 * ENG_ERF_P6 + ENG_ERF_P5;
    p = x2 * p + ENG_ERF_P4;
    p = x2 * p + ENG_ERF_P3;
    p = x2 * p + ENG_ERF_P2;
    p = x2 * p + ENG_ERF_P1;
    p = x2 * p + ENG_ERF_P0;
    float q = x2 * ENG_ERF_Q4 + ENG_ERF_Q3;
    q = x2 * q + ENG_ERF_Q2;
    q = x2 * q + ENG_ERF_Q1;
    q = x2 * q + ENG_ERF_Q0;
    return x * p / q;
}

static inline float act_one(enum eng_act act, float param, float v)
{
    switch (act) {
    case ENG_ACT_RELU:
        return v < 0.0f ? 0.0f : v; /* NaN passes through, as in torch */
    case ENG_ACT_RELU6:
        return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
    case ENG_ACT_LEAKY_RELU:
        return v >= 0.0f ? v : v * param;
    case ENG_ACT_GELU:
        return 0.5f * v * (1.0f + erf_fast(v * 0.70710678118654752f));
    case ENG_ACT_QUICK_GELU:
        return v / (1.0f + expf(-1.702f * v));
    case ENG_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case ENG_ACT_NONE:
        break;
    }
    return v;
}

/* An AVX2 copy where the CPU has it (GELU's erf is a dozen operations a value; 8 lanes, not 4). */
/* Not under ThreadSanitizer: the ifunc resolver that picks the clone runs while the loader
 * relocates the program, before TSan's runtime is up, and GCC instruments it anyway (crash). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("avx2", "default")))
#endif
void eng_act_rows(enum eng_act act, float param, float *x, int64_t rows, int64_t cols, int64_t ld)
{
    if (act == ENG_ACT_NONE)
        return;
    for (int64_t r = 0; r < rows; r++) {
        float *p = x + r * ld;
        /* One loop per activation so the compiler vectorises the common ones. */
        switch (act) {
        case ENG_ACT_RELU:
            for (int64_t i = 0; i < cols; i++)
                p[i] = p[i] < 0.0f ? 0.0f : p[i];
            break;
        case ENG_ACT_RELU6:
            for (int64_t i = 0; i < cols; i++)
                p[i] = p[i] < 0.0f ? 0.0f : (p[i] > 6.0f ? 6.0f : p[i]);
            break;
        case ENG_ACT_GELU:
            for (int64_t i = 0; i < cols; i++)
                p[i] = 0.5f * p[i] * (1.0f + erf_fast(p[i] * 0.70710678118654752f));
            break;
        default:
            for (int64_t i = 0; i < cols; i++)
                p[i] = act_one(act, param, p[i]);
            break;
        }
    }
}

struct act_job {
    const struct eng_tensor *t; /* walked as rows of its innermost dimension */
    int64_t nrows, cols;
    enum eng_act act;
    float param;
    bool softmax;
};

void eng_softmax_row(float *p, int64_t n)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        m = p[i] > m ? p[i] : m;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        p[i] = expf(p[i] - m);
        s += p[i];
    }
    float inv = 1.0f / s;
    for (int64_t i = 0; i < n; i++)
        p[i] *= inv;
}

static void act_part(void *arg, int ith, int nth)
{
    const struct act_job *j = arg;
    int64_t r0, r1;
    eng_split(j->nrows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        float *p = eng_tensor_row(j->t, r);
        if (j->softmax)
            eng_softmax_row(p, j->cols);
        else
            eng_act_rows(j->act, j->param, p, 1, j->cols, j->cols);
    }
}

static int tasks_for(int64_t nelem, int64_t nrows)
{
    /* Waking a thread costs microseconds; below ~32k elements one thread is faster. */
    if (nelem < 32768)
        return 1;
    return nrows > 64 ? 64 : (int)nrows;
}

void eng_activation(const struct eng_ctx *ctx, enum eng_act act, float param, struct eng_tensor *t)
{
    if (act == ENG_ACT_NONE)
        return;
    struct act_job j = {t, eng_tensor_nrows(t), t->ne[t->ndim - 1], act, param, false};
    eng_parallel(ctx, tasks_for(eng_tensor_nelem(t), j.nrows), act_part, &j);
}

void eng_softmax(const struct eng_ctx *ctx, struct eng_tensor *t)
{
    struct act_job j = {t, eng_tensor_nrows(t), t->ne[t->ndim - 1], ENG_ACT_NONE, 0.0f, true};
    eng_parallel(ctx, tasks_for(eng_tensor_nelem(t), j.nrows), act_part, &j);
}

int eng_act_parse(const char *s, enum eng_act *out)
{
    static const struct {
        const char *name;
        enum eng_act act;
    } names[] = {
        {"none", ENG_ACT_NONE},         {"relu", ENG_ACT_RELU},   {"relu6", ENG_ACT_RELU6},
        {"leaky_relu", ENG_ACT_LEAKY_RELU}, {"gelu", ENG_ACT_GELU}, {"quick_gelu", ENG_ACT_QUICK_GELU},
        {"sigmoid", ENG_ACT_SIGMOID},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (s && strcmp(s, names[i].name) == 0) {
            *out = names[i].act;
            return 0;
        }
    return eng_error("unknown activation '%s' (expected none, relu, relu6, leaky_relu, gelu, quick_gelu, sigmoid)",
                     s ? s : "(null)");
}
