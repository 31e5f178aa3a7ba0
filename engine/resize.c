/* resize.c: separable bilinear / bicubic resizing (torch and TF.js conventions) on NHWC floats. */
#include "engine/resize.h"

#include <math.h>
#include <string.h>

#include "engine/error.h"

/* Per-axis taps: output o reads cnt[o] input indices idx[o*k + j] with weights w[o*k + j]. */
struct rs_axis {
    int64_t in, out;
    int k;          /* taps reserved per output */
    bool lerp;      /* TF: value = a + (b - a) * w[1] instead of a weighted sum */
    int32_t *idx;
    float *w;
    int32_t *cnt;
};

/* Taps per output the tables reserve; the antialias width follows torch's max_interp_size. */
static int rs_taps(enum eng_resize_mode mode, bool antialias, int64_t in, int64_t out)
{
    if (mode == ENG_RESIZE_TF_BILINEAR)
        return 2;
    int isz = mode == ENG_RESIZE_BICUBIC ? 4 : 2;
    if (!antialias)
        return isz;
    float scale = (float)in / (float)out;
    float support = scale >= 1.0f ? (isz * 0.5f) * scale : isz * 0.5f;
    int k = (int)ceilf(support) * 2 + 1;
    return k;
}

static size_t rs_align(size_t b)
{
    return (b + ENG_ARENA_ALIGN - 1) / ENG_ARENA_ALIGN * ENG_ARENA_ALIGN;
}

static size_t rs_axis_bytes(int k, int64_t out)
{
    return rs_align((size_t)out * (size_t)k * sizeof(int32_t)) + rs_align((size_t)out * (size_t)k * sizeof(float)) +
           rs_align((size_t)out * sizeof(int32_t));
}

size_t eng_resize_scratch_bytes(enum eng_resize_mode mode, bool antialias, int64_t n, int64_t h_in, int64_t w_in,
                                int64_t c, int64_t h_out, int64_t w_out)
{
    if (n <= 0 || h_in <= 0 || w_in <= 0 || c <= 0 || h_out <= 0 || w_out <= 0)
        return 0;
    return rs_axis_bytes(rs_taps(mode, antialias, w_in, w_out), w_out) +
           rs_axis_bytes(rs_taps(mode, antialias, h_in, h_out), h_out) +
           rs_align((size_t)n * (size_t)h_in * (size_t)w_out * (size_t)c * sizeof(float));
}

static float rs_aa_filter(enum eng_resize_mode mode, float x)
{
    x = fabsf(x);
    if (mode == ENG_RESIZE_BILINEAR)
        return x < 1.0f ? 1.0f - x : 0.0f;
    /* torch's antialiased bicubic is PIL's kernel, a = -0.5, not the -0.75 of the plain path. */
    const float a = -0.5f;
    if (x < 1.0f)
        return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f)
        return (((x - 5.0f) * x + 8.0f) * x - 4.0f) * a;
    return 0.0f;
}

/* Mirrors torch 1.13's _compute_indices_weights_aa, including where it computes in float
 * (scalar_t) and where a 0.5 literal promotes to double, so tap ranges agree at the edges. */
static void rs_fill_aa(struct rs_axis *ax, enum eng_resize_mode mode)
{
    int isz = mode == ENG_RESIZE_BICUBIC ? 4 : 2;
    float scale = (float)ax->in / (float)ax->out;
    float support = scale >= 1.0f ? (isz * 0.5f) * scale : isz * 0.5f;
    float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    for (int64_t i = 0; i < ax->out; i++) {
        float center = (float)(scale * (i + 0.5));
        int64_t xmin = (int64_t)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int64_t xmax = (int64_t)(center + support + 0.5);
        if (xmax > ax->in)
            xmax = ax->in;
        int64_t xsize = xmax - xmin;
        if (xsize > ax->k)
            xsize = ax->k; /* cannot happen with torch's max_interp_size; keeps writes in bounds */
        if (xsize < 1) {
            /* Only reachable through float edge effects; take the nearest pixel. */
            xmin = xmin >= ax->in ? ax->in - 1 : xmin;
            xsize = 1;
        }
        int32_t *idx = ax->idx + i * ax->k;
        float *w = ax->w + i * ax->k;
        float total = 0.0f;
        for (int64_t j = 0; j < xsize; j++) {
            float v = rs_aa_filter(mode, (float)(((float)(j + xmin) - center + 0.5) * invscale));
            w[j] = v;
            idx[j] = (int32_t)(xmin + j);
            total += v;
        }
        for (int64_t j = 0; j < xsize; j++)
            if (total != 0.0f)
                w[j] /= total;
        ax->cnt[i] = (int32_t)xsize;
    }
}

/* torch computes the scale in float but the source coordinate and lambda in double (its CPU
 * accumulate type), rounding lambda to float last; following that makes the weights bit-equal. */
static void rs_fill_linear(struct rs_axis *ax)
{
    float scale = (float)ax->in / (float)ax->out;
    for (int64_t i = 0; i < ax->out; i++) {
        double src = (double)scale * ((double)i + 0.5) - 0.5;
        if (src < 0.0)
            src = 0.0;
        int64_t i0 = (int64_t)src;
        if (i0 > ax->in - 1)
            i0 = ax->in - 1;
        double l = src - (double)i0;
        float l1 = (float)(l < 0.0 ? 0.0 : (l > 1.0 ? 1.0 : l));
        ax->idx[i * 2] = (int32_t)i0;
        ax->idx[i * 2 + 1] = (int32_t)(i0 < ax->in - 1 ? i0 + 1 : i0);
        ax->w[i * 2] = 1.0f - l1;
        ax->w[i * 2 + 1] = l1;
        ax->cnt[i] = 2;
    }
}

static double rs_cubic1(double x, double a)
{
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
}

static double rs_cubic2(double x, double a)
{
    return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
}

/* The outer taps' polynomial cancels heavily, so its float evaluation in torch is off by up to
 * ~1e-6; we evaluate in double (closer to exact) rather than chase torch's compiler's rounding. */
static void rs_fill_cubic(struct rs_axis *ax)
{
    const double a = -0.75;
    float scale = (float)ax->in / (float)ax->out;
    for (int64_t i = 0; i < ax->out; i++) {
        double src = (double)scale * ((double)i + 0.5) - 0.5; /* not clamped at 0: the kernel reaches past the edge */
        int64_t i0 = (int64_t)floor(src);
        if (i0 > ax->in - 1)
            i0 = ax->in - 1;
        double t = src - (double)i0;
        t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
        float *w = ax->w + i * 4;
        int32_t *idx = ax->idx + i * 4;
        w[0] = (float)rs_cubic2(t + 1.0, a);
        w[1] = (float)rs_cubic1(t, a);
        w[2] = (float)rs_cubic1(1.0 - t, a);
        w[3] = (float)rs_cubic2(2.0 - t, a);
        for (int j = 0; j < 4; j++) {
            int64_t s = i0 - 1 + j;
            idx[j] = (int32_t)(s < 0 ? 0 : (s > ax->in - 1 ? ax->in - 1 : s));
        }
        ax->cnt[i] = 4;
    }
}

/* tfjs-backend-cpu resizeBilinear without alignCorners / halfPixelCenters: the ratio and the
 * source coordinate are doubles there (JS numbers). */
static void rs_fill_tf(struct rs_axis *ax)
{
    double ratio = (double)ax->in / (double)ax->out;
    for (int64_t i = 0; i < ax->out; i++) {
        double src = ratio * (double)i;
        double lo = floor(src);
        if (lo < 0)
            lo = 0;
        double hi = ceil(src);
        if (hi > (double)(ax->in - 1))
            hi = (double)(ax->in - 1);
        ax->idx[i * 2] = (int32_t)lo;
        ax->idx[i * 2 + 1] = (int32_t)hi;
        ax->w[i * 2] = 1.0f - (float)(src - lo);
        ax->w[i * 2 + 1] = (float)(src - lo);
        ax->cnt[i] = 2;
    }
}

static int rs_axis_init(struct rs_axis *ax, struct eng_arena *a, enum eng_resize_mode mode, bool antialias,
                        int64_t in, int64_t out)
{
    ax->in = in;
    ax->out = out;
    ax->k = rs_taps(mode, antialias, in, out);
    ax->lerp = mode == ENG_RESIZE_TF_BILINEAR;
    ax->idx = eng_arena_alloc(a, (size_t)out * (size_t)ax->k * sizeof(int32_t));
    ax->w = eng_arena_alloc(a, (size_t)out * (size_t)ax->k * sizeof(float));
    ax->cnt = eng_arena_alloc(a, (size_t)out * sizeof(int32_t));
    if (!ax->idx || !ax->w || !ax->cnt)
        return -1;
    if (mode == ENG_RESIZE_TF_BILINEAR)
        rs_fill_tf(ax);
    else if (antialias)
        rs_fill_aa(ax, mode);
    else if (mode == ENG_RESIZE_BICUBIC)
        rs_fill_cubic(ax);
    else
        rs_fill_linear(ax);
    return 0;
}

struct rs_job {
    const struct eng_tensor *x;
    struct eng_tensor *y;
    struct rs_axis ax_w, ax_h;
    float *tmp; /* [N, H_in, W_out, C] contiguous */
    int64_t c;
};

/* Combine cnt rows (each C floats apart by stride) into o: torch's left-to-right order. */
static inline void rs_combine(float *restrict o, const float *base, size_t stride, const int32_t *idx,
                              const float *w, int cnt, bool lerp, int64_t c)
{
    const float *p0 = base + (size_t)idx[0] * stride;
    if (lerp) {
        const float *p1 = base + (size_t)idx[1] * stride;
        float f = w[1];
        for (int64_t ch = 0; ch < c; ch++)
            o[ch] = p0[ch] + (p1[ch] - p0[ch]) * f;
        return;
    }
    float w0 = w[0];
    for (int64_t ch = 0; ch < c; ch++)
        o[ch] = p0[ch] * w0;
    for (int j = 1; j < cnt; j++) {
        const float *p = base + (size_t)idx[j] * stride;
        float wj = w[j];
        for (int64_t ch = 0; ch < c; ch++)
            o[ch] += p[ch] * wj;
    }
}

static void rs_horizontal(void *arg, int ith, int nth)
{
    struct rs_job *job = arg;
    const struct eng_tensor *x = job->x;
    const struct rs_axis *ax = &job->ax_w;
    int64_t h_in = x->ne[1], c = job->c, rows = x->ne[0] * h_in, r0, r1;
    size_t sx = x->nb[2] / sizeof(float);
    eng_split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        const float *in = (const float *)((const char *)x->data + (r / h_in) * x->nb[0] + (r % h_in) * x->nb[1]);
        float *out = job->tmp + r * ax->out * c;
        for (int64_t o = 0; o < ax->out; o++)
            rs_combine(out + o * c, in, sx, ax->idx + o * ax->k, ax->w + o * ax->k, ax->cnt[o], ax->lerp, c);
    }
}

static void rs_vertical(void *arg, int ith, int nth)
{
    struct rs_job *job = arg;
    struct eng_tensor *y = job->y;
    const struct rs_axis *ax = &job->ax_h;
    int64_t h_out = y->ne[1], w_out = y->ne[2], c = job->c, rows = y->ne[0] * h_out, r0, r1;
    size_t row = (size_t)(w_out * c); /* tmp floats between input rows */
    eng_split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / h_out, oy = r % h_out;
        const float *base = job->tmp + (size_t)n * (size_t)ax->in * row;
        char *out = (char *)y->data + n * y->nb[0] + oy * y->nb[1];
        const int32_t *idx = ax->idx + oy * ax->k;
        const float *w = ax->w + oy * ax->k;
        if (y->nb[2] == (size_t)c * sizeof(float)) {
            /* A contiguous output row is one long vector: combine it in a single sweep. */
            rs_combine((float *)out, base, row, idx, w, ax->cnt[oy], ax->lerp, w_out * c);
        } else {
            for (int64_t ox = 0; ox < w_out; ox++)
                rs_combine((float *)(out + ox * y->nb[2]), base + ox * c, row, idx, w, ax->cnt[oy], ax->lerp, c);
        }
    }
}

int eng_resize(struct eng_ctx *ctx, enum eng_resize_mode mode, bool antialias, const struct eng_tensor *x,
               struct eng_tensor *y)
{
    char a[64], b[64];
    if (x->ndim != 4 || y->ndim != 4)
        return eng_error("resize: '%s' %s and '%s' %s must both be NHWC (4 dims)", x->name,
                         eng_shape_str(x, a, sizeof a), y->name, eng_shape_str(y, b, sizeof b));
    if (x->ne[0] != y->ne[0] || x->ne[3] != y->ne[3])
        return eng_error("resize: '%s' %s and '%s' %s differ in batch or channels", x->name,
                         eng_shape_str(x, a, sizeof a), y->name, eng_shape_str(y, b, sizeof b));
    for (int d = 0; d < 4; d++)
        if (x->ne[d] <= 0 || y->ne[d] <= 0)
            return eng_error("resize: '%s' %s -> '%s' %s has an empty dimension", x->name,
                             eng_shape_str(x, a, sizeof a), y->name, eng_shape_str(y, b, sizeof b));
    if (x->ne[1] > INT32_MAX || x->ne[2] > INT32_MAX)
        return eng_error("resize: '%s' %s is too large", x->name, eng_shape_str(x, a, sizeof a));
    if (mode != ENG_RESIZE_BILINEAR && mode != ENG_RESIZE_BICUBIC && mode != ENG_RESIZE_TF_BILINEAR)
        return eng_error("resize: unknown mode %d", (int)mode);
    if (mode == ENG_RESIZE_TF_BILINEAR && antialias)
        return eng_error("resize: tf_bilinear has no antialiased variant ('%s' -> '%s')", x->name, y->name);
    if (x->data == y->data)
        return eng_error("resize: output '%s' aliases input '%s'", y->name, x->name);

    struct rs_job job = {.x = x, .y = y, .c = x->ne[3]};
    size_t mark = eng_arena_mark(&ctx->scratch);
    if (rs_axis_init(&job.ax_w, &ctx->scratch, mode, antialias, x->ne[2], y->ne[2]) < 0 ||
        rs_axis_init(&job.ax_h, &ctx->scratch, mode, antialias, x->ne[1], y->ne[1]) < 0 ||
        !(job.tmp = eng_arena_floats(&ctx->scratch, (size_t)(x->ne[0] * x->ne[1] * y->ne[2] * x->ne[3])))) {
        eng_arena_rewind(&ctx->scratch, mark);
        return -1;
    }
    int64_t rows_in = x->ne[0] * x->ne[1], rows_out = y->ne[0] * y->ne[1];
    eng_parallel(ctx, rows_in > INT32_MAX ? 0 : (int)rows_in, rs_horizontal, &job);
    eng_parallel(ctx, rows_out > INT32_MAX ? 0 : (int)rows_out, rs_vertical, &job);
    eng_arena_rewind(&ctx->scratch, mark);
    return 0;
}

int eng_resize_mode_parse(const char *s, enum eng_resize_mode *out)
{
    static const struct {
        const char *name;
        enum eng_resize_mode mode;
    } names[] = {{"bilinear", ENG_RESIZE_BILINEAR}, {"bicubic", ENG_RESIZE_BICUBIC},
                 {"tf_bilinear", ENG_RESIZE_TF_BILINEAR}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].mode;
            return 0;
        }
    return eng_error("unknown resize mode '%s' (expected bilinear, bicubic, tf_bilinear)", s);
}
