/* norm.c: layer norm over the innermost dimension; batch norm folded to scale and shift. */
#include "engine/norm.h"

#include <math.h>

#include "engine/error.h"

/* Below this many elements one thread beats waking the others. */
#define NORM_SERIAL_ELEMS 32768
/* Independent partial sums: the compiler vectorises them, and they halve the rounding walk. */
#define LANES 8

struct ln_job {
    const struct eng_layer_norm *ln;
    const struct eng_tensor *x, *y; /* walked as rows of their innermost dimension */
    int64_t nrows;
};

static void ln_row(const struct eng_layer_norm *ln, const float *x, float *y)
{
    int64_t n = ln->dim, i;
    /* Two passes. The mean is summed in double: features far from zero (a large common
     * offset) would otherwise lose the digits that the centring pass needs. The centred
     * squares are small and all positive, so float partial sums are enough for them. */
    double dacc[LANES] = {0};
    for (i = 0; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            dacc[k] += x[i + k];
    double dsum = 0.0;
    for (; i < n; i++)
        dsum += x[i];
    for (int k = 0; k < LANES; k++)
        dsum += dacc[k];
    /* The mean as hi + lo floats: x - hi is exact for x near the mean, so (x - hi) - lo
     * centres to float precision of the spread, not of the offset (a row 100 +- 0.1 would
     * otherwise lose 1e-4 of its normalised value to the rounding of the mean). */
    double dmean = dsum / (double)n;
    float hi = (float)dmean, lo = (float)(dmean - (double)hi);

    float acc[LANES] = {0};
    for (i = 0; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            float d = (x[i + k] - hi) - lo;
            acc[k] += d * d;
        }
    float ss = 0.0f;
    for (; i < n; i++) {
        float d = (x[i] - hi) - lo;
        ss += d * d;
    }
    for (int k = 0; k < LANES; k++)
        ss += acc[k];
    float rstd = 1.0f / sqrtf(ss / (float)n + ln->eps);

    const float *w = ln->weight, *b = ln->bias;
    if (w && b)
        for (i = 0; i < n; i++)
            y[i] = ((x[i] - hi) - lo) * rstd * w[i] + b[i];
    else if (w)
        for (i = 0; i < n; i++)
            y[i] = ((x[i] - hi) - lo) * rstd * w[i];
    else if (b)
        for (i = 0; i < n; i++)
            y[i] = ((x[i] - hi) - lo) * rstd + b[i];
    else
        for (i = 0; i < n; i++)
            y[i] = ((x[i] - hi) - lo) * rstd;
}

static void ln_part(void *arg, int ith, int nth)
{
    const struct ln_job *j = arg;
    int64_t r0, r1;
    eng_split(j->nrows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        ln_row(j->ln, eng_tensor_row(j->x, r), eng_tensor_row(j->y, r));
}

int eng_layer_norm(const struct eng_ctx *ctx, const struct eng_layer_norm *ln, const struct eng_tensor *x,
                   struct eng_tensor *y)
{
    char a[64], b[64];
    if (!eng_tensor_same_shape(x, y))
        return eng_error("layer_norm: input '%s' has shape %s but output '%s' has %s", x->name,
                         eng_shape_str(x, a, sizeof a), y->name, eng_shape_str(y, b, sizeof b));
    if (x->ne[x->ndim - 1] != ln->dim || ln->dim < 1)
        return eng_error("layer_norm over %lld features: '%s' has shape %s", (long long)ln->dim, x->name,
                         eng_shape_str(x, a, sizeof a));
    struct ln_job j = {ln, x, y, eng_tensor_nrows(x)};
    int tasks = j.nrows * ln->dim < NORM_SERIAL_ELEMS ? 1 : (j.nrows > 1024 ? 1024 : (int)j.nrows);
    if (j.nrows > 0)
        eng_parallel(ctx, tasks, ln_part, &j);
    return 0;
}

int eng_batch_norm_init(struct eng_affine *bn, int64_t channels, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, float *scale, float *shift)
{
    for (int64_t c = 0; c < channels; c++) {
        double v = (double)var[c] + (double)eps;
        if (!(v > 0.0) || !isfinite(v))
            return eng_error("batch_norm: channel %lld has running_var %g + eps %g, not positive and finite",
                             (long long)c, (double)var[c], (double)eps);
    }
    /* Folded in double, rounded once: the folded map then differs from torch's
     * (x - mean) * invstd * gamma + beta only by the rounding of the forward pass. */
    for (int64_t c = 0; c < channels; c++) {
        double s = (gamma ? (double)gamma[c] : 1.0) / sqrt((double)var[c] + (double)eps);
        scale[c] = (float)s;
        shift[c] = (float)((beta ? (double)beta[c] : 0.0) - (double)mean[c] * s);
    }
    *bn = (struct eng_affine){channels, scale, shift, ENG_ACT_NONE, 0.0f};
    return 0;
}
