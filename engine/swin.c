/* swin.c: torchvision Swin ops: shifted-window multi-head attention and patch merging. */
#include "engine/swin.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/gemm.h"
#include "engine/norm.h"
#include "engine/sgemm.h"

/* Windows are processed in blocks of about this many tokens per thread, so the qkv and proj
 * GEMMs see a few hundred rows (efficient) while the working set stays in L2. */
#define SW_BLOCK_ROWS 448

static size_t sw_align(size_t b)
{
    return (b + ENG_ARENA_ALIGN - 1) / ENG_ARENA_ALIGN * ENG_ARENA_ALIGN;
}

void eng_swin_relative_position_index(int win_h, int win_w, int64_t *index)
{
    int64_t t = (int64_t)win_h * win_w;
    for (int64_t p = 0; p < t; p++)
        for (int64_t q = 0; q < t; q++) {
            int64_t dh = p / win_w - q / win_w + (win_h - 1);
            int64_t dw = p % win_w - q % win_w + (win_w - 1);
            index[p * t + q] = dh * (2 * win_w - 1) + dw;
        }
}

void eng_swin_attn_free(struct eng_swin_attn *a)
{
    eng_linear_free(&a->qkv);
    eng_linear_free(&a->proj);
    free(a->bias);
    a->bias = NULL;
}

int eng_swin_attn_init(struct eng_swin_attn *a, int64_t dim, int64_t heads, int win_h, int win_w, int shift_h,
                       int shift_w, const float *qkv_w, const float *qkv_b, const float *proj_w,
                       const float *proj_b, const float *rel_table)
{
    memset(a, 0, sizeof *a);
    if (dim <= 0 || heads <= 0 || dim % heads != 0)
        return eng_error("swin attention: dim %lld is not a positive multiple of %lld heads", (long long)dim,
                         (long long)heads);
    if (win_h <= 0 || win_w <= 0 || win_h > 64 || win_w > 64)
        return eng_error("swin attention: window %dx%d outside 1..64", win_h, win_w);
    if (shift_h < 0 || shift_w < 0 || shift_h >= win_h || shift_w >= win_w)
        return eng_error("swin attention: shift (%d, %d) outside [0, window (%d, %d))", shift_h, shift_w, win_h,
                         win_w);
    a->dim = dim;
    a->heads = heads;
    a->head_dim = dim / heads;
    a->win_h = win_h;
    a->win_w = win_w;
    a->shift_h = shift_h;
    a->shift_w = shift_w;
    if (eng_linear_init(&a->qkv, "swin attention qkv", dim, 3 * dim, qkv_w, qkv_b, ENG_ACT_NONE, 0.0f) < 0 ||
        eng_linear_init(&a->proj, "swin attention proj", dim, dim, proj_w, proj_b, ENG_ACT_NONE, 0.0f) < 0) {
        eng_swin_attn_free(a);
        return -1;
    }
    eng_linear_drop_unpacked(&a->qkv); /* only the products read them: packed where that runs */
    eng_linear_drop_unpacked(&a->proj);
    int64_t t = (int64_t)win_h * win_w;
    a->bias = malloc(sizeof(float) * (size_t)(heads * t * t));
    int64_t *index = malloc(sizeof(int64_t) * (size_t)(t * t));
    if (!a->bias || !index) {
        free(index);
        eng_swin_attn_free(a);
        return eng_error("swin attention: out of memory for dim %lld", (long long)dim);
    }
    eng_swin_relative_position_index(win_h, win_w, index);
    for (int64_t h = 0; h < heads; h++)
        for (int64_t pq = 0; pq < t * t; pq++)
            a->bias[h * t * t + pq] = rel_table[index[pq] * heads + h];
    free(index);
    return 0;
}

/* The per-call geometry: padded sizes, effective shifts, window counts. */
struct sw_geom {
    int64_t n, h, w, ph, pw, nwh, nww, nwin, t;
    int sh, sw;
};

static void sw_geom_make(const struct eng_swin_attn *a, int64_t n, int64_t h, int64_t w, struct sw_geom *g)
{
    g->n = n;
    g->h = h;
    g->w = w;
    g->ph = (h + a->win_h - 1) / a->win_h * a->win_h;
    g->pw = (w + a->win_w - 1) / a->win_w * a->win_w;
    /* torchvision: no shift where one window already spans the (padded) map. */
    g->sh = a->win_h >= g->ph ? 0 : a->shift_h;
    g->sw = a->win_w >= g->pw ? 0 : a->shift_w;
    g->nwh = g->ph / a->win_h;
    g->nww = g->pw / a->win_w;
    g->nwin = n * g->nwh * g->nww;
    g->t = (int64_t)a->win_h * a->win_w;
}

static int64_t sw_block_windows(const struct sw_geom *g)
{
    int64_t wb = SW_BLOCK_ROWS / g->t;
    if (wb < 1)
        wb = 1;
    return wb < g->nwin ? wb : g->nwin;
}

static int sw_slices(int nthreads, const struct sw_geom *g)
{
    int64_t s = nthreads < 1 ? 1 : nthreads;
    return (int)(s < g->nwin ? s : g->nwin);
}

/* Scores' row stride: whole 16-column panels, so the q k^T product runs on full tiles. */
static int64_t sw_score_ld(int64_t t)
{
    return (t + ENG_SGEMM_NR - 1) / ENG_SGEMM_NR * ENG_SGEMM_NR;
}

/* Bytes of one head's work area: its scores, then (packed GEMM) its keys packed as k^T and its
 * values packed, the per-call B operands of the two products. */
static size_t sw_head_bytes(const struct eng_swin_attn *a, const struct sw_geom *g)
{
    int64_t t = g->t, hd = a->head_dim;
    return sw_align((size_t)(t * sw_score_ld(t)) * sizeof(float)) +
           sw_align((size_t)eng_packed_b_floats(hd, t) * sizeof(float)) +
           sw_align((size_t)eng_packed_b_floats(t, hd) * sizeof(float));
}

/* Bytes of one thread's slice: tokens X (reused for the attention output), qkv (reused for the
 * projection), one head's work area, the tokens' region labels. */
static size_t sw_slice_bytes(const struct eng_swin_attn *a, const struct sw_geom *g)
{
    size_t rows = (size_t)(sw_block_windows(g) * g->t), c = (size_t)a->dim;
    return sw_align(rows * c * sizeof(float)) + sw_align(rows * 3 * c * sizeof(float)) +
           sw_head_bytes(a, g) + sw_align((size_t)g->t * sizeof(int));
}

/* Fewer windows than threads (Swin-T's last stage at batch 1 is one window): rather than leave
 * threads idle, all windows go through one slice phase by phase, the GEMMs and the heads split
 * across the threads, each thread with its own score buffer. */
static bool sw_few(int nthreads, const struct sw_geom *g)
{
    return nthreads > 1 && g->nwin < nthreads;
}

static size_t sw_few_bytes(int nthreads, const struct eng_swin_attn *a, const struct sw_geom *g)
{
    return sw_slice_bytes(a, g) + (size_t)nthreads * sw_head_bytes(a, g) +
           (size_t)nthreads * sw_align((size_t)g->t * sizeof(int));
}

size_t eng_swin_attn_scratch_bytes(const struct eng_swin_attn *a, int nthreads, int64_t n, int64_t h, int64_t w)
{
    if (n <= 0 || h <= 0 || w <= 0)
        return 0;
    struct sw_geom g;
    sw_geom_make(a, n, h, w, &g);
    if (sw_few(nthreads, &g))
        return sw_few_bytes(nthreads, a, &g);
    return (size_t)sw_slices(nthreads, &g) * sw_slice_bytes(a, &g);
}

struct sw_job {
    const struct eng_swin_attn *a;
    const struct eng_tensor *x;
    struct eng_tensor *y;
    bool accumulate;
    struct sw_geom g;
    char *scratch; /* nslices slices of slice_bytes */
    size_t slice_bytes;
    int nslices;
};

/* Region label of a rolled, padded coordinate, as torchvision's three slices
 * [0, P-win), [P-win, P-shift), [P-shift, P) label them; one region when not shifted. */
static int sw_region(int64_t v, int64_t p, int win, int shift)
{
    if (shift == 0)
        return 0;
    return v < p - win ? 0 : (v < p - shift ? 1 : 2);
}

/* Pixel of x (or y) behind token tok of window gw, or NULL for a padding token. The token sits
 * at (yy, xx) of the rolled map, which holds padded pixel ((yy+sh) mod ph, (xx+sw) mod pw). */
static char *sw_pixel(const struct sw_job *job, const struct eng_tensor *t, int64_t gw, int64_t tok, int *region)
{
    const struct sw_geom *g = &job->g;
    const struct eng_swin_attn *a = job->a;
    int64_t per_img = g->nwh * g->nww;
    int64_t n = gw / per_img, wi = gw % per_img;
    int64_t yy = (wi / g->nww) * a->win_h + tok / a->win_w;
    int64_t xx = (wi % g->nww) * a->win_w + tok % a->win_w;
    if (region)
        *region = sw_region(yy, g->ph, a->win_h, g->sh) * 3 + sw_region(xx, g->pw, a->win_w, g->sw);
    int64_t sy = (yy + g->sh) % g->ph, sx = (xx + g->sw) % g->pw;
    if (sy >= g->h || sx >= g->w)
        return NULL;
    return (char *)t->data + n * t->nb[0] + sy * t->nb[1] + sx * t->nb[2];
}

/* exp(x) for x <= 0 (softmax after subtracting the row's maximum), Cephes' expf: x = n ln2 + r,
 * |r| <= ln2 / 2, a degree-6 polynomial for e^r, 2^n put in the exponent bits; within 2 ulp
 * of expf. Straight-line code (the rounding by the 1.5 * 2^23 trick, no floorf) so the row
 * loop vectorises, which libm's expf call does not: the softmax was 7% of Swin-T. */
static inline float sw_exp_neg(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* Rows [0, t) of one head's scores (row stride ld): + relative position bias (+ -100 between regions of a
 * shifted map), then softmax, in one pass over each row while it is in L1. */
/* Not under ThreadSanitizer: the ifunc resolver that picks the clone runs while the loader
 * relocates the program, before TSan's runtime is up, and GCC instruments it anyway (crash). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("avx2", "default"))) /* 8 lanes where the CPU has them */
#endif
static void sw_softmax_rows(float *sc, int64_t t, int64_t ld, const float *bias, const int *reg, bool masked)
{
    float mask[64 * 64]; /* t <= 64 * 64, eng_swin_attn_init's limit */
    for (int64_t i = 0; i < t; i++) {
        float *s = sc + i * ld;
        const float *b = bias + i * t;
        if (masked) {
            for (int64_t j = 0; j < t; j++)
                mask[j] = reg[i] != reg[j] ? -100.0f : 0.0f;
            for (int64_t j = 0; j < t; j++)
                s[j] = (s[j] + b[j]) + mask[j];
        } else {
            for (int64_t j = 0; j < t; j++)
                s[j] += b[j];
        }
        float m = s[0];
        for (int64_t j = 1; j < t; j++)
            m = s[j] > m ? s[j] : m;
        for (int64_t j = 0; j < t; j++)
            s[j] = sw_exp_neg(s[j] - m);
        float sum = 0.0f; /* in order, as a separate loop: the one above then vectorises */
        for (int64_t j = 0; j < t; j++)
            sum += s[j];
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < t; j++)
            s[j] *= inv;
    }
}

/* Windows [w0, w0 + nw) of x into xb, one token per row (zeros for padding tokens). */
static void sw_gather(const struct sw_job *job, int64_t w0, int64_t nw, float *xb)
{
    int64_t t = job->g.t, c = job->a->dim;
    for (int64_t w = 0; w < nw; w++)
        for (int64_t k = 0; k < t; k++) {
            const char *p = sw_pixel(job, job->x, w0 + w, k, NULL);
            float *dst = xb + (w * t + k) * c;
            if (p)
                memcpy(dst, p, (size_t)c * sizeof(float));
            else
                memset(dst, 0, (size_t)c * sizeof(float));
        }
}

/* q scaled as torch does it, after the bias (which the product added): q = (x Wq + bq) * hd^-0.5. */
static void sw_qkv_epilogue(const struct eng_swin_attn *a, float *qkv, int64_t rows)
{
    int64_t c = a->dim, c3 = 3 * c;
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    for (int64_t r = 0; r < rows; r++) {
        float *q = qkv + r * c3;
        for (int64_t j = 0; j < c; j++)
            q[j] *= scale;
    }
}

/* Heads [h0, h1) of windows [w0, w0 + nw): softmax(q k^T + bias) v into ow's head columns. */
static void sw_heads(const struct sw_job *job, int64_t w0, int64_t nw, const float *qkv, float *o, float *sc,
                     int *reg, int64_t h0, int64_t h1)
{
    const struct eng_swin_attn *a = job->a;
    int64_t t = job->g.t, c = a->dim, c3 = 3 * c, hd = a->head_dim, ld = sw_score_ld(t);
    bool masked = job->g.sh > 0 || job->g.sw > 0, packed = eng_sgemm_enabled();
    float *kt = (float *)((char *)sc + sw_align((size_t)(t * ld) * sizeof(float)));
    float *vp = (float *)((char *)kt + sw_align((size_t)eng_packed_b_floats(hd, t) * sizeof(float)));
    for (int64_t w = 0; w < nw; w++) {
        const float *qw = qkv + w * t * c3;
        float *ow = o + w * t * c;
        if (masked)
            for (int64_t k = 0; k < t; k++)
                (void)sw_pixel(job, job->x, w0 + w, k, &reg[k]);
        for (int64_t h = h0; h < h1; h++) {
            const float *q = qw + h * hd, *k = qw + c + h * hd, *v = qw + 2 * c + h * hd;
            if (!packed) {
                eng_gemm_serial(false, true, t, t, hd, 1.0f, q, c3, k, c3, 0.0f, sc, t);
                sw_softmax_rows(sc, t, t, a->bias + h * t * t, reg, masked);
                eng_gemm_serial(false, false, t, hd, t, 1.0f, sc, t, v, c3, 0.0f, ow + h * hd, c);
                continue;
            }
            /* On the packed GEMM, k^T and v packed here as its B operands: OpenBLAS packed
             * both operands of these 49 x 49 x 32 products and zeroed C on every call. */
            struct eng_packed_b kb, vb;
            eng_pack_b_into(&kb, kt, k, c3, hd, t, true);
            kb.n = ld; /* the panel's zero columns fill the scores' padding: full tiles only */
            eng_sgemm_packed(t, q, c3, &kb, 0, ld, sc, ld, NULL);
            sw_softmax_rows(sc, t, ld, a->bias + h * t * t, reg, masked);
            eng_pack_b_into(&vb, vp, v, c3, t, hd, false);
            eng_sgemm_packed(t, sc, ld, &vb, 0, hd, ow + h * hd, c, NULL);
        }
    }
}

/* out (rows of the projection, bias added) back to y's real pixels, added or copied. */
static void sw_scatter(const struct sw_job *job, int64_t w0, int64_t nw, const float *out)
{
    int64_t t = job->g.t, c = job->a->dim;
    for (int64_t w = 0; w < nw; w++)
        for (int64_t k = 0; k < t; k++) {
            float *p = (float *)sw_pixel(job, job->y, w0 + w, k, NULL);
            if (!p)
                continue;
            const float *o = out + (w * t + k) * c;
            if (job->accumulate)
                for (int64_t j = 0; j < c; j++)
                    p[j] += o[j];
            else
                memcpy(p, o, (size_t)c * sizeof(float));
        }
}

/* y [rows x l->out] = x [rows x l->in] W^T + bias, on the calling thread (eng_linear on the
 * pool's threads is for the few-window path): from the packed weights where that GEMM runs
 * (the bias in its store), else OpenBLAS. */
static void sw_product(const struct eng_linear *l, int64_t rows, const float *x, float *y)
{
    if (l->pw.p) {
        struct eng_sgemm_ops op = {.bias = l->bias};
        eng_sgemm_packed(rows, x, l->in, &l->pw, 0, l->out, y, l->out, &op);
        return;
    }
    eng_gemm_serial(false, false, rows, l->out, l->in, 1.0f, x, l->in, l->w, l->out, 0.0f, y, l->out);
    eng_bias_act_rows(y, rows, l->out, l->out, l->bias, ENG_ACT_NONE, 0.0f);
}

/* One thread's block of windows, start to end on its own scratch. */
static void sw_attn_block(const struct sw_job *job, int64_t w0, int64_t nw, float *xb, float *qkv, float *sc,
                          int *reg)
{
    const struct eng_swin_attn *a = job->a;
    int64_t rows = nw * job->g.t;
    sw_gather(job, w0, nw, xb);
    sw_product(&a->qkv, rows, xb, qkv);
    sw_qkv_epilogue(a, qkv, rows);
    /* the tokens are no longer needed: the attention output goes over them */
    sw_heads(job, w0, nw, qkv, xb, sc, reg, 0, a->heads);
    float *out = qkv; /* [rows, c] */
    sw_product(&a->proj, rows, xb, out);
    sw_scatter(job, w0, nw, out);
}

static void sw_attn_task(void *arg, int ith, int nth)
{
    const struct sw_job *job = arg;
    assert(ith < job->nslices);
    const struct sw_geom *g = &job->g;
    int64_t wb = sw_block_windows(g), rows = wb * g->t, c = job->a->dim, b0, b1;
    char *s = job->scratch + (size_t)ith * job->slice_bytes;
    float *xb = (float *)s;
    s += sw_align((size_t)(rows * c) * sizeof(float));
    float *qkv = (float *)s;
    s += sw_align((size_t)(rows * 3 * c) * sizeof(float));
    float *sc = (float *)s;
    s += sw_head_bytes(job->a, g);
    int *reg = (int *)s;
    eng_split(g->nwin, ith, nth, &b0, &b1);
    for (int64_t w = b0; w < b1; w += wb)
        sw_attn_block(job, w, b1 - w < wb ? b1 - w : wb, xb, qkv, sc, reg);
}

struct sw_few_job {
    const struct sw_job *job;
    const float *qkv;
    float *o;
    char *bufs; /* per thread: scores, then region labels */
    size_t buf_bytes;
};

static void sw_few_heads(void *arg, int ith, int nth)
{
    const struct sw_few_job *f = arg;
    int64_t h0, h1;
    eng_split(f->job->a->heads, ith, nth, &h0, &h1);
    float *sc = (float *)(f->bufs + (size_t)ith * f->buf_bytes);
    int *reg = (int *)((char *)sc + sw_head_bytes(f->job->a, &f->job->g));
    sw_heads(f->job, 0, f->job->g.nwin, f->qkv, f->o, sc, reg, h0, h1);
}

static int sw_attn_few(struct eng_ctx *ctx, const struct sw_job *job)
{
    const struct eng_swin_attn *a = job->a;
    const struct sw_geom *g = &job->g;
    int64_t c = a->dim, rows = g->nwin * g->t;
    float *xb = (float *)job->scratch;
    float *qkv = (float *)(job->scratch + sw_align((size_t)(sw_block_windows(g) * g->t * c) * sizeof(float)));
    char *bufs = job->scratch + sw_slice_bytes(a, g);
    /* Few windows: the products are split across the threads, not the windows. */
    struct eng_tensor xt = eng_tensor_make("swin tokens", xb, 2, (int64_t[]){rows, c});
    struct eng_tensor qt = eng_tensor_make("swin qkv", qkv, 2, (int64_t[]){rows, 3 * c});
    struct eng_tensor ot = eng_tensor_make("swin proj", qkv, 2, (int64_t[]){rows, c});
    sw_gather(job, 0, g->nwin, xb);
    if (eng_linear(ctx, &a->qkv, &xt, &qt) < 0)
        return -1;
    sw_qkv_epilogue(a, qkv, rows);
    struct sw_few_job f = {job, qkv, xb, bufs,
                           sw_head_bytes(a, g) + sw_align((size_t)g->t * sizeof(int))};
    eng_parallel(ctx, (int)(a->heads < ctx->nthreads ? a->heads : ctx->nthreads), sw_few_heads, &f);
    if (eng_linear(ctx, &a->proj, &xt, &ot) < 0)
        return -1;
    sw_scatter(job, 0, g->nwin, qkv);
    return 0;
}

int eng_swin_window_attention(struct eng_ctx *ctx, const struct eng_swin_attn *a, const struct eng_tensor *x,
                              struct eng_tensor *y, bool accumulate)
{
    char s1[64], s2[64];
    if (x->ndim != 4 || x->ne[3] != a->dim || x->ne[0] <= 0 || x->ne[1] <= 0 || x->ne[2] <= 0)
        return eng_error("swin attention: input '%s' has shape %s, expected [N,H,W,%lld]", x->name,
                         eng_shape_str(x, s1, sizeof s1), (long long)a->dim);
    if (!eng_tensor_same_shape(x, y))
        return eng_error("swin attention: output '%s' has shape %s, expected %s like input '%s'", y->name,
                         eng_shape_str(y, s1, sizeof s1), eng_shape_str(x, s2, sizeof s2), x->name);
    if (x->data != y->data) {
        /* Partial overlap would let one window's write clobber another's input; exact aliasing
         * is fine because each window is read whole before it is written. */
        const char *xb = (const char *)x->data, *yb = (const char *)y->data;
        size_t xs = x->nb[0] * (size_t)x->ne[0], ys = y->nb[0] * (size_t)y->ne[0];
        if (xb < yb + ys && yb < xb + xs)
            return eng_error("swin attention: output '%s' partly overlaps input '%s'", y->name, x->name);
    } else if (memcmp(x->nb, y->nb, sizeof x->nb) != 0) {
        return eng_error("swin attention: output '%s' aliases input '%s' with other strides", y->name, x->name);
    }

    struct sw_job job = {.a = a, .x = x, .y = y, .accumulate = accumulate};
    sw_geom_make(a, x->ne[0], x->ne[1], x->ne[2], &job.g);
    if (sw_few(ctx->nthreads, &job.g)) {
        size_t mark = eng_arena_mark(&ctx->scratch);
        job.scratch = eng_arena_alloc(&ctx->scratch, sw_few_bytes(ctx->nthreads, a, &job.g));
        if (!job.scratch)
            return -1;
        int rc = sw_attn_few(ctx, &job);
        eng_arena_rewind(&ctx->scratch, mark);
        return rc;
    }
    job.nslices = sw_slices(ctx->nthreads, &job.g);
    job.slice_bytes = sw_slice_bytes(a, &job.g);
    size_t mark = eng_arena_mark(&ctx->scratch);
    job.scratch = eng_arena_alloc(&ctx->scratch, job.slice_bytes * (size_t)job.nslices);
    if (!job.scratch)
        return -1;
    eng_parallel(ctx, job.nslices, sw_attn_task, &job);
    eng_arena_rewind(&ctx->scratch, mark);
    return 0;
}

/* ---- patch merging ---- */

void eng_swin_merge_free(struct eng_swin_merge *m)
{
    free(m->norm_w);
    free(m->norm_b);
    eng_linear_free(&m->red);
    m->norm_w = m->norm_b = NULL;
}

int eng_swin_merge_init(struct eng_swin_merge *m, int64_t dim, const float *norm_w, const float *norm_b,
                        const float *red_w)
{
    memset(m, 0, sizeof *m);
    if (dim <= 0)
        return eng_error("swin patch merging: dim %lld must be positive", (long long)dim);
    m->dim = dim;
    m->eps = 1e-5f;
    m->norm_w = malloc(sizeof(float) * (size_t)(4 * dim));
    m->norm_b = malloc(sizeof(float) * (size_t)(4 * dim));
    if (!m->norm_w || !m->norm_b) {
        eng_swin_merge_free(m);
        return eng_error("swin patch merging: out of memory for dim %lld", (long long)dim);
    }
    memcpy(m->norm_w, norm_w, sizeof(float) * (size_t)(4 * dim));
    memcpy(m->norm_b, norm_b, sizeof(float) * (size_t)(4 * dim));
    if (eng_linear_init(&m->red, "swin patch merging reduction", 4 * dim, 2 * dim, red_w, NULL, ENG_ACT_NONE,
                        0.0f) < 0) {
        eng_swin_merge_free(m);
        return -1;
    }
    eng_linear_drop_unpacked(&m->red);
    return 0;
}

struct pm_job {
    const struct eng_tensor *x;
    const struct eng_tensor *y; /* [N, h2, w2, 4C], any strides */
    int64_t h2, w2;
};

static void pm_gather_task(void *arg, int ith, int nth)
{
    const struct pm_job *job = arg;
    const struct eng_tensor *x = job->x;
    int64_t c = x->ne[3], rows = x->ne[0] * job->h2, r0, r1;
    size_t row_bytes = (size_t)c * sizeof(float);
    /* torchvision's order: x0 = (0,0), x1 = (1,0), x2 = (0,1), x3 = (1,1) as (dy, dx). */
    static const int dy[4] = {0, 1, 0, 1}, dx[4] = {0, 0, 1, 1};
    eng_split(rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / job->h2, i = r % job->h2;
        for (int64_t j = 0; j < job->w2; j++) {
            float *out = eng_tensor_row(job->y, r * job->w2 + j);
            for (int k = 0; k < 4; k++) {
                int64_t sy = 2 * i + dy[k], sx = 2 * j + dx[k];
                if (sy < x->ne[1] && sx < x->ne[2])
                    memcpy(out + k * c, (const char *)x->data + n * x->nb[0] + sy * x->nb[1] + sx * x->nb[2],
                           row_bytes);
                else
                    memset(out + k * c, 0, row_bytes);
            }
        }
    }
}

static int pm_check(const char *what, const struct eng_tensor *x, const struct eng_tensor *y, int64_t c_out)
{
    char s1[64], s2[64];
    if (x->ndim != 4 || x->ne[0] <= 0 || x->ne[1] <= 0 || x->ne[2] <= 0 || x->ne[3] <= 0)
        return eng_error("swin %s: input '%s' has shape %s, expected [N,H,W,C]", what, x->name,
                         eng_shape_str(x, s1, sizeof s1));
    int64_t h2 = (x->ne[1] + 1) / 2, w2 = (x->ne[2] + 1) / 2;
    if (y->ndim != 4 || y->ne[0] != x->ne[0] || y->ne[1] != h2 || y->ne[2] != w2 || y->ne[3] != c_out)
        return eng_error("swin %s: output '%s' has shape %s, expected [%lld,%lld,%lld,%lld] for input '%s' %s",
                         what, y->name, eng_shape_str(y, s1, sizeof s1), (long long)x->ne[0], (long long)h2,
                         (long long)w2, (long long)c_out, x->name, eng_shape_str(x, s2, sizeof s2));
    return 0;
}

int eng_swin_patch_gather(const struct eng_ctx *ctx, const struct eng_tensor *x, struct eng_tensor *y)
{
    if (pm_check("patch gather", x, y, x->ndim == 4 ? 4 * x->ne[3] : 0) < 0)
        return -1;
    struct pm_job job = {x, y, y->ne[1], y->ne[2]};
    int64_t rows = y->ne[0] * y->ne[1];
    eng_parallel(ctx, rows > INT32_MAX ? 0 : (int)rows, pm_gather_task, &job);
    return 0;
}

size_t eng_swin_merge_scratch_bytes(const struct eng_swin_merge *m, int64_t n, int64_t h, int64_t w)
{
    if (n <= 0 || h <= 0 || w <= 0)
        return 0;
    return sw_align((size_t)(n * ((h + 1) / 2) * ((w + 1) / 2) * 4 * m->dim) * sizeof(float));
}

int eng_swin_patch_merge(struct eng_ctx *ctx, const struct eng_swin_merge *m, const struct eng_tensor *x,
                         struct eng_tensor *y)
{
    char s1[64];
    if (x->ndim == 4 && x->ne[3] != m->dim)
        return eng_error("swin patch merging: input '%s' has %lld channels, expected %lld", x->name,
                         (long long)x->ne[3], (long long)m->dim);
    if (pm_check("patch merging", x, y, 2 * m->dim) < 0)
        return -1;
    /* swin.h promises this check (it dates from when the reduction was one GEMM over all
     * pixels); eng_linear would take any strides, but lifting it is an API change. */
    if (y->nb[1] != (size_t)y->ne[2] * y->nb[2] || y->nb[0] != (size_t)y->ne[1] * y->nb[1])
        return eng_error("swin patch merging: output '%s' %s is not a run of evenly spaced pixels", y->name,
                         eng_shape_str(y, s1, sizeof s1));
    int64_t c4 = 4 * m->dim;
    size_t mark = eng_arena_mark(&ctx->scratch);
    float *buf = eng_arena_floats(&ctx->scratch, (size_t)(eng_tensor_nrows(y) * c4));
    if (!buf)
        return -1;
    struct eng_tensor g = eng_tensor_make("swin patch merging gather", buf, 4,
                                          (int64_t[]){y->ne[0], y->ne[1], y->ne[2], c4});
    struct pm_job job = {x, &g, y->ne[1], y->ne[2]};
    int64_t grows = y->ne[0] * y->ne[1];
    eng_parallel(ctx, grows > INT32_MAX ? 0 : (int)grows, pm_gather_task, &job);
    struct eng_layer_norm ln = {c4, m->norm_w, m->norm_b, m->eps};
    int rc = eng_layer_norm(ctx, &ln, &g, &g) < 0 || eng_linear(ctx, &m->red, &g, y) < 0 ? -1 : 0;
    eng_arena_rewind(&ctx->scratch, mark);
    return rc;
}
