/* pooling.c: max, average, global and adaptive average pooling of NHWC tensors. */
#include "engine/pooling.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/error.h"

/* Below this many multiply-adds one thread beats waking the others. */
#define POOL_SERIAL_WORK 32768

/* One spatial dimension of a pooling, resolved for a given input size. */
struct pool_dim {
    int64_t in, out;
    int k, s, d;
    int64_t p0, p1; /* padding before / after */
};

enum pool_kind { POOL_MAX, POOL_AVG, POOL_ADAPTIVE };

struct pool_job {
    enum pool_kind kind;
    struct pool_dim h, w;
    bool exclude_pad;
    const struct eng_tensor *x;
    struct eng_tensor *y;
};

struct eng_pool2d eng_pool2d_make(int k, int s, int p)
{
    struct eng_pool2d r = {0};
    r.kh = r.kw = k;
    r.sh = r.sw = s;
    r.pad_t = r.pad_b = r.pad_l = r.pad_r = p;
    return r;
}

struct eng_pool2d eng_pool2d_tf_same(int k, int s)
{
    struct eng_pool2d r = {0};
    r.kh = r.kw = k;
    r.sh = r.sw = s;
    r.exclude_pad = true;
    r.tf_same = true;
    return r;
}

static int resolve_dim(const char *axis, int64_t in, int k, int s, int d, int p0, int p1, bool ceil_mode,
                       bool tf_same, struct pool_dim *r)
{
    if (s == 0)
        s = k;
    if (d == 0)
        d = 1;
    if (k < 1 || s < 1 || d < 1)
        return eng_error("pool2d: %s window %d, stride %d, dilation %d must be positive", axis, k, s, d);
    if (in < 1)
        return eng_error("pool2d: input %s is %lld, must be positive", axis, (long long)in);
    int64_t eff = (int64_t)d * (k - 1) + 1;
    if (tf_same) {
        int64_t out = (in + s - 1) / s;
        int64_t total = (out - 1) * s + eff - in;
        if (total < 0)
            total = 0;
        *r = (struct pool_dim){in, out, k, s, d, total / 2, total - total / 2};
        return 0;
    }
    /* torch refuses wider padding: a window could then hold padding only. */
    if (p0 < 0 || p1 < 0 || p0 > k / 2 || p1 > k / 2)
        return eng_error("pool2d: %s padding %d/%d must be in [0, %d] (half the window %d)", axis, p0, p1, k / 2,
                         k);
    int64_t span = in + p0 + p1 - eff;
    if (span < 0)
        return eng_error("pool2d: input %s %lld plus padding %d+%d is smaller than the window %lld", axis,
                         (long long)in, p0, p1, (long long)eff);
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* torch: the last window must start inside the input or the left padding. */
    if (ceil_mode && (out - 1) * s >= in + p0)
        out--;
    *r = (struct pool_dim){in, out, k, s, d, p0, p1};
    return 0;
}

static int resolve(const struct eng_pool2d *p, int64_t in_h, int64_t in_w, struct pool_dim *h, struct pool_dim *w)
{
    if (resolve_dim("height", in_h, p->kh, p->sh, p->dh, p->pad_t, p->pad_b, p->ceil_mode, p->tf_same, h) < 0)
        return -1;
    return resolve_dim("width", in_w, p->kw, p->sw, p->dw, p->pad_l, p->pad_r, p->ceil_mode, p->tf_same, w);
}

int eng_pool2d_out(const struct eng_pool2d *p, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w)
{
    struct pool_dim h, w;
    if (resolve(p, in_h, in_w, &h, &w) < 0)
        return -1;
    *out_h = h.out;
    *out_w = w.out;
    return 0;
}

static int check_io(const char *op, const struct eng_tensor *x, const struct eng_tensor *y, int64_t oh, int64_t ow)
{
    char a[64], b[64];
    if (x->ndim != 4)
        return eng_error("%s: input '%s' has shape %s, expected [N,H,W,C]", op, x->name, eng_shape_str(x, a, sizeof a));
    if (y->ndim != 4 || y->ne[0] != x->ne[0] || y->ne[1] != oh || y->ne[2] != ow || y->ne[3] != x->ne[3])
        return eng_error("%s: output '%s' has shape %s, expected [%lld,%lld,%lld,%lld] for input '%s' %s", op,
                         y->name, eng_shape_str(y, a, sizeof a), (long long)x->ne[0], (long long)oh, (long long)ow,
                         (long long)x->ne[3], x->name, eng_shape_str(x, b, sizeof b));
    return 0;
}

static inline const float *x_cell(const struct eng_tensor *x, int64_t n, int64_t i, int64_t j)
{
    return (const float *)((const char *)x->data + n * x->nb[0] + i * x->nb[1] + j * x->nb[2]);
}

static inline float *y_cell(const struct eng_tensor *y, int64_t n, int64_t i, int64_t j)
{
    return (float *)((char *)y->data + n * y->nb[0] + i * y->nb[1] + j * y->nb[2]);
}

/* Window of output index o for an average: [*b, *e) clipped to the input, and the cell count
 * torch divides by when padding counts (the window clipped to the padded extent only). */
static inline int64_t avg_window(const struct pool_dim *d, enum pool_kind kind, int64_t o, int64_t *b, int64_t *e)
{
    if (kind == POOL_ADAPTIVE) {
        *b = o * d->in / d->out;
        *e = ((o + 1) * d->in + d->out - 1) / d->out;
        return *e - *b;
    }
    int64_t s = o * d->s - d->p0;
    int64_t t = s + d->k;
    if (t > d->in + d->p1)
        t = d->in + d->p1;
    int64_t padded = t - s;
    *b = s < 0 ? 0 : s;
    *e = t > d->in ? d->in : t;
    return padded;
}

static void max_row(const struct pool_job *j, int64_t n, int64_t oi)
{
    const struct pool_dim *h = &j->h, *w = &j->w;
    int64_t c = j->x->ne[3];
    int64_t hs = oi * h->s - h->p0;
    for (int64_t oj = 0; oj < w->out; oj++) {
        float *o = y_cell(j->y, n, oi, oj);
        int64_t ws = oj * w->s - w->p0;
        bool first = true;
        for (int a = 0; a < h->k; a++) {
            int64_t ii = hs + (int64_t)a * h->d;
            if (ii < 0 || ii >= h->in)
                continue;
            for (int b = 0; b < w->k; b++) {
                int64_t jj = ws + (int64_t)b * w->d;
                if (jj < 0 || jj >= w->in)
                    continue;
                const float *src = x_cell(j->x, n, ii, jj);
                if (first) {
                    memcpy(o, src, (size_t)c * sizeof(float));
                    first = false;
                    continue;
                }
                for (int64_t k = 0; k < c; k++) {
                    float v = src[k];
                    o[k] = (v > o[k] || v != v) ? v : o[k];
                }
            }
        }
        /* Unreachable with validated parameters; torch's value for an empty window. */
        if (first)
            for (int64_t k = 0; k < c; k++)
                o[k] = -INFINITY;
    }
}

static void avg_row(const struct pool_job *j, int64_t n, int64_t oi)
{
    const struct pool_dim *h = &j->h, *w = &j->w;
    int64_t c = j->x->ne[3];
    int64_t h0, h1;
    int64_t hpad = avg_window(h, j->kind, oi, &h0, &h1);
    for (int64_t oj = 0; oj < w->out; oj++) {
        float *o = y_cell(j->y, n, oi, oj);
        int64_t w0, w1;
        int64_t wpad = avg_window(w, j->kind, oj, &w0, &w1);
        int64_t count = j->exclude_pad ? (h1 - h0) * (w1 - w0) : hpad * wpad;
        for (int64_t k = 0; k < c; k++)
            o[k] = 0.0f;
        for (int64_t ii = h0; ii < h1; ii++)
            for (int64_t jj = w0; jj < w1; jj++) {
                const float *src = x_cell(j->x, n, ii, jj);
                for (int64_t k = 0; k < c; k++)
                    o[k] += src[k];
            }
        /* count is 0 only for an empty window, which validation rules out; torch gives NaN. */
        float inv = count > 0 ? 1.0f / (float)count : NAN;
        for (int64_t k = 0; k < c; k++)
            o[k] *= inv;
    }
}

static void pool_part(void *arg, int ith, int nth)
{
    const struct pool_job *j = arg;
    int64_t r0, r1;
    eng_split(j->x->ne[0] * j->h.out, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / j->h.out, oi = r % j->h.out;
        if (j->kind == POOL_MAX)
            max_row(j, n, oi);
        else
            avg_row(j, n, oi);
    }
}

static int tasks_for(int64_t work, int64_t rows)
{
    if (work < POOL_SERIAL_WORK)
        return 1;
    return rows > 1024 ? 1024 : (int)rows;
}

static void run(const struct eng_ctx *ctx, struct pool_job *j)
{
    int64_t rows = j->x->ne[0] * j->h.out;
    int64_t window = j->kind == POOL_ADAPTIVE ? (j->h.in / j->h.out + 1) * (j->w.in / j->w.out + 1)
                                               : (int64_t)j->h.k * j->w.k;
    int64_t work = rows * j->w.out * j->x->ne[3] * window;
    eng_parallel(ctx, tasks_for(work, rows), pool_part, j);
}

static int pool2d(const struct eng_ctx *ctx, const char *op, enum pool_kind kind, const struct eng_pool2d *p,
                  const struct eng_tensor *x, struct eng_tensor *y)
{
    char a[64];
    if (x->ndim != 4)
        return eng_error("%s: input '%s' has shape %s, expected [N,H,W,C]", op, x->name, eng_shape_str(x, a, sizeof a));
    /* TensorFlow never counts padding in an average. */
    struct pool_job j = {kind, {0}, {0}, p->exclude_pad || p->tf_same, x, y};
    if (resolve(p, x->ne[1], x->ne[2], &j.h, &j.w) < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", eng_errmsg());
        return eng_error("%s of '%s' %s: %s", op, x->name, eng_shape_str(x, a, sizeof a), msg);
    }
    if (kind == POOL_AVG && (j.h.d != 1 || j.w.d != 1))
        return eng_error("%s: dilation %dx%d is not supported (torch has none)", op, j.h.d, j.w.d);
    if (check_io(op, x, y, j.h.out, j.w.out) < 0)
        return -1;
    run(ctx, &j);
    return 0;
}

int eng_max_pool2d(const struct eng_ctx *ctx, const struct eng_pool2d *p, const struct eng_tensor *x,
                   struct eng_tensor *y)
{
    return pool2d(ctx, "max_pool2d", POOL_MAX, p, x, y);
}

int eng_avg_pool2d(const struct eng_ctx *ctx, const struct eng_pool2d *p, const struct eng_tensor *x,
                   struct eng_tensor *y)
{
    return pool2d(ctx, "avg_pool2d", POOL_AVG, p, x, y);
}

int eng_adaptive_avg_pool2d(const struct eng_ctx *ctx, const struct eng_tensor *x, struct eng_tensor *y)
{
    char a[64], b[64];
    if (x->ndim != 4 || y->ndim != 4 || y->ne[0] != x->ne[0] || y->ne[3] != x->ne[3] || y->ne[1] < 1 ||
        y->ne[2] < 1 || x->ne[1] < 1 || x->ne[2] < 1)
        return eng_error("adaptive_avg_pool2d: output '%s' %s does not fit input '%s' %s (want [N,OH,OW,C], "
                         "OH and OW >= 1)",
                         y->name, eng_shape_str(y, a, sizeof a), x->name, eng_shape_str(x, b, sizeof b));
    struct pool_job j = {POOL_ADAPTIVE, {0}, {0}, false, x, y};
    j.h = (struct pool_dim){x->ne[1], y->ne[1], 1, 1, 1, 0, 0};
    j.w = (struct pool_dim){x->ne[2], y->ne[2], 1, 1, 1, 0, 0};
    run(ctx, &j);
    return 0;
}

/* Global pooling: channels in blocks so each task's double accumulators fit on the stack. */
#define GAP_BLOCK 256

struct gap_job {
    const struct eng_tensor *x;
    float *y;
    size_t y_nb0; /* bytes between batch items of y */
    int64_t nblocks;
};

static void gap_part(void *arg, int ith, int nth)
{
    const struct gap_job *j = arg;
    const struct eng_tensor *x = j->x;
    int64_t c = x->ne[3], r0, r1;
    double inv = 1.0 / (double)(x->ne[1] * x->ne[2]);
    double acc[GAP_BLOCK];
    eng_split(x->ne[0] * j->nblocks, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / j->nblocks, c0 = (r % j->nblocks) * GAP_BLOCK;
        int64_t nc = c - c0 < GAP_BLOCK ? c - c0 : GAP_BLOCK;
        for (int64_t k = 0; k < nc; k++)
            acc[k] = 0.0;
        for (int64_t i = 0; i < x->ne[1]; i++)
            for (int64_t jj = 0; jj < x->ne[2]; jj++) {
                const float *src = x_cell(x, n, i, jj) + c0;
                for (int64_t k = 0; k < nc; k++)
                    acc[k] += src[k];
            }
        float *o = (float *)((char *)j->y + n * j->y_nb0) + c0;
        for (int64_t k = 0; k < nc; k++)
            o[k] = (float)(acc[k] * inv);
    }
}

int eng_global_avg_pool(const struct eng_ctx *ctx, const struct eng_tensor *x, struct eng_tensor *y)
{
    char a[64], b[64];
    bool ok = x->ndim == 4 && x->ne[1] >= 1 && x->ne[2] >= 1;
    if (ok && y->ndim == 2)
        ok = y->ne[0] == x->ne[0] && y->ne[1] == x->ne[3];
    else if (ok && y->ndim == 4)
        ok = y->ne[0] == x->ne[0] && y->ne[1] == 1 && y->ne[2] == 1 && y->ne[3] == x->ne[3];
    else
        ok = false;
    if (!ok)
        return eng_error("global_avg_pool: output '%s' %s does not fit input '%s' %s (want [N,C] or [N,1,1,C] "
                         "from [N,H,W,C])",
                         y->name, eng_shape_str(y, a, sizeof a), x->name, eng_shape_str(x, b, sizeof b));
    struct gap_job j = {x, y->data, y->nb[0], (x->ne[3] + GAP_BLOCK - 1) / GAP_BLOCK};
    int64_t tasks = x->ne[0] * j.nblocks;
    int64_t work = eng_tensor_nelem(x);
    eng_parallel(ctx, tasks_for(work, tasks), gap_part, &j);
    return 0;
}
