/* eltwise.c: add, mul, scale, per-channel affine and concatenation over strided tensors. */
#include "engine/eltwise.h"

#include <stdbool.h>
#include <string.h>

#include "engine/error.h"

/* Below this many elements one thread beats waking the others. */
#define EW_SERIAL_ELEMS 32768

enum ew_op { EW_ADD, EW_MUL, EW_SCALE, EW_AFFINE, EW_COPY };

struct ew_job {
    enum ew_op op;
    int64_t nrows, cols;
    const struct eng_tensor *y, *a, *b; /* walked as rows of their innermost dimension */
    float s;
    const float *scale, *shift;
    enum eng_act act;
    float act_param;
};

static void ew_row(const struct ew_job *j, float *y, const float *a, const float *b)
{
    int64_t n = j->cols;
    /* ReLU is fused into the loops that matter (ResNet's residual add, DenseNet's norm+relu);
     * other activations run over the row while it is still in L1. */
    bool relu = j->act == ENG_ACT_RELU, fused = false;
    const float *sc = j->scale, *sh = j->shift;
    switch (j->op) {
    case EW_ADD:
        if (relu) {
            for (int64_t i = 0; i < n; i++) {
                float v = a[i] + b[i];
                y[i] = v < 0.0f ? 0.0f : v;
            }
            fused = true;
        } else {
            for (int64_t i = 0; i < n; i++)
                y[i] = a[i] + b[i];
        }
        break;
    case EW_MUL:
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] * b[i];
        break;
    case EW_SCALE:
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] * j->s;
        break;
    case EW_AFFINE:
        if (sc && sh && relu) {
            for (int64_t i = 0; i < n; i++) {
                float v = a[i] * sc[i] + sh[i];
                y[i] = v < 0.0f ? 0.0f : v;
            }
            fused = true;
        } else if (sc && sh) {
            for (int64_t i = 0; i < n; i++)
                y[i] = a[i] * sc[i] + sh[i];
        } else if (sc) {
            for (int64_t i = 0; i < n; i++)
                y[i] = a[i] * sc[i];
        } else if (sh) {
            for (int64_t i = 0; i < n; i++)
                y[i] = a[i] + sh[i];
        } else if (y != a) {
            memcpy(y, a, (size_t)n * sizeof(float));
        }
        break;
    case EW_COPY:
        memcpy(y, a, (size_t)n * sizeof(float));
        break;
    }
    if (!fused && j->act != ENG_ACT_NONE)
        eng_act_rows(j->act, j->act_param, y, 1, n, n);
}

static void ew_part(void *arg, int ith, int nth)
{
    const struct ew_job *j = arg;
    int64_t r0, r1;
    eng_split(j->nrows, ith, nth, &r0, &r1);
    bool binary = j->op == EW_ADD || j->op == EW_MUL;
    for (int64_t r = r0; r < r1; r++)
        ew_row(j, eng_tensor_row(j->y, r), eng_tensor_row(j->a, r), binary ? eng_tensor_row(j->b, r) : NULL);
}

/* Run op over y's rows; a (and b) have y's shape, checked by the caller. */
static void ew_run(const struct eng_ctx *ctx, struct ew_job *j, const struct eng_tensor *a,
                   const struct eng_tensor *b, struct eng_tensor *y)
{
    j->cols = y->ne[y->ndim - 1];
    j->nrows = j->cols ? eng_tensor_nrows(y) : 0;
    j->y = y;
    j->a = a;
    j->b = b;
    int64_t nelem = j->nrows * j->cols;
    int tasks = nelem < EW_SERIAL_ELEMS ? 1 : (j->nrows > 1024 ? 1024 : (int)j->nrows);
    if (j->nrows > 0)
        eng_parallel(ctx, tasks, ew_part, j);
}

static int check_same(const char *op, const struct eng_tensor *a, const struct eng_tensor *b)
{
    char sa[64], sb[64];
    if (eng_tensor_same_shape(a, b))
        return 0;
    return eng_error("%s: '%s' has shape %s but '%s' has %s", op, a->name, eng_shape_str(a, sa, sizeof sa), b->name,
                     eng_shape_str(b, sb, sizeof sb));
}

int eng_add(const struct eng_ctx *ctx, enum eng_act act, float act_param, const struct eng_tensor *a,
            const struct eng_tensor *b, struct eng_tensor *y)
{
    if (check_same("add", a, b) < 0 || check_same("add", a, y) < 0)
        return -1;
    struct ew_job j = {.op = EW_ADD, .act = act, .act_param = act_param};
    ew_run(ctx, &j, a, b, y);
    return 0;
}

int eng_mul(const struct eng_ctx *ctx, const struct eng_tensor *a, const struct eng_tensor *b, struct eng_tensor *y)
{
    if (check_same("mul", a, b) < 0 || check_same("mul", a, y) < 0)
        return -1;
    struct ew_job j = {.op = EW_MUL, .act = ENG_ACT_NONE};
    ew_run(ctx, &j, a, b, y);
    return 0;
}

int eng_scale(const struct eng_ctx *ctx, float s, const struct eng_tensor *x, struct eng_tensor *y)
{
    if (check_same("scale", x, y) < 0)
        return -1;
    struct ew_job j = {.op = EW_SCALE, .s = s, .act = ENG_ACT_NONE};
    ew_run(ctx, &j, x, NULL, y);
    return 0;
}

int eng_affine(const struct eng_ctx *ctx, const struct eng_affine *p, const struct eng_tensor *x,
               struct eng_tensor *y)
{
    char sx[64];
    if (check_same("affine", x, y) < 0)
        return -1;
    if (x->ne[x->ndim - 1] != p->channels)
        return eng_error("affine: '%s' has shape %s, expected %lld channels innermost", x->name,
                         eng_shape_str(x, sx, sizeof sx), (long long)p->channels);
    struct ew_job j = {.op = EW_AFFINE, .scale = p->scale, .shift = p->shift, .act = p->act,
                       .act_param = p->act_param};
    ew_run(ctx, &j, x, NULL, y);
    return 0;
}

int eng_concat(const struct eng_ctx *ctx, int dim, const struct eng_tensor *xs, int n, struct eng_tensor *y)
{
    char sx[64], sy[64];
    if (n < 1)
        return eng_error("concat into '%s': no inputs", y->name);
    if (dim < 0 || dim >= y->ndim)
        return eng_error("concat into '%s' %s: dimension %d out of range", y->name, eng_shape_str(y, sy, sizeof sy),
                         dim);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const struct eng_tensor *x = &xs[i];
        bool fits = x->ndim == y->ndim;
        for (int d = 0; fits && d < y->ndim; d++)
            fits = d == dim || x->ne[d] == y->ne[d];
        if (!fits)
            return eng_error("concat along dim %d: input %d '%s' has shape %s, does not fit output '%s' %s", dim, i,
                             x->name, eng_shape_str(x, sx, sizeof sx), y->name, eng_shape_str(y, sy, sizeof sy));
        total += x->ne[dim];
    }
    if (total != y->ne[dim])
        return eng_error("concat along dim %d: inputs sum to %lld, output '%s' %s has %lld", dim, (long long)total,
                         y->name, eng_shape_str(y, sy, sizeof sy), (long long)y->ne[dim]);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const struct eng_tensor *x = &xs[i];
        struct eng_tensor part = eng_tensor_slice(y, dim, off, x->ne[dim]);
        off += x->ne[dim];
        bool in_place = part.data == x->data;
        for (int d = 0; in_place && d < y->ndim; d++)
            in_place = part.nb[d] == x->nb[d] || part.ne[d] == 1;
        if (in_place)
            continue;
        struct ew_job j = {.op = EW_COPY, .act = ENG_ACT_NONE};
        ew_run(ctx, &j, x, NULL, &part);
    }
    return 0;
}

int eng_concat_channels(const struct eng_ctx *ctx, const struct eng_tensor *xs, int n, struct eng_tensor *y)
{
    return eng_concat(ctx, y->ndim - 1, xs, n, y);
}
