/* conv.c: 2-D convolution over NHWC tensors: 1x1 GEMM, im2col + GEMM, and direct depthwise paths. */
#include "engine/conv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/arena.h"
#include "engine/eltwise.h"
#include "engine/error.h"
#include "engine/gemm.h"
#include "engine/linear.h"
#include "engine/profile.h"
#include "engine/winograd.h"

/* im2col tile per thread: big enough for efficient GEMM calls, small enough to stay in L2
 * while the GEMM reads it and the epilogue runs; but never under CONV_MIN_TILE_ROWS rows, as
 * each GEMM call repacks all of the layer's weights (9.4 MB for ResNet-50's last 3x3). */
#define CONV_TILE_BYTES ((int64_t)512 << 10)
#define CONV_MIN_TILE_ROWS 192
/* The build's -O2 leaves loops of unknown trip count scalar and short fixed ones rolled; the
 * engine is built with OpenMP, so ask for vectorisation where it matters. */
#ifdef _OPENMP
#define CONV_SIMD _Pragma("omp simd")
#else
#define CONV_SIMD
#endif
/* Fully unrolled, a fixed-size accumulator is kept in registers instead of on the stack. */
#if defined(__clang__)
#define CONV_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define CONV_UNROLL _Pragma("GCC unroll 32")
#else
#define CONV_UNROLL
#endif

/* Below this many multiply-adds a call runs on one thread. */
#define CONV_MIN_PARALLEL_FLOPS ((int64_t)1 << 17)

enum conv_path { CONV_PATH_1X1, CONV_PATH_DEPTHWISE, CONV_PATH_WINOGRAD, CONV_PATH_IM2COL, CONV_PATH_RUNS };

/* Everything eng_conv2d decides from the input shape, shared with eng_conv2d_scratch_bytes so
 * the size callers reserve is exactly what the call borrows. */
struct conv_plan {
    int64_t n, h, w, oh, ow, m; /* m = output pixels, n * oh * ow */
    int pt, pb, pl, pr;
    enum conv_path path;
    int64_t ktot;  /* im2col row: kh * kw * cin floats, group-major */
    int64_t tile;  /* output rows per im2col tile */
    int64_t ntile;
    int tasks;     /* threads (and im2col buffers) */
    bool whole;    /* too few rows to split: im2col everything once, split the GEMM by columns */
    size_t scratch;
    int64_t ox_lo, ox_hi; /* runs: the output columns whose kernel stays inside the image across */
    int run_tasks;        /* runs: threads (and edge buffers) */
};

struct eng_conv_params eng_conv_torch(int cin, int cout, int k, int stride, int padding, int dilation, int groups)
{
    struct eng_conv_params p = {0};
    p.cin = cin;
    p.cout = cout;
    p.kh = p.kw = k;
    p.stride_h = p.stride_w = stride;
    p.dil_h = p.dil_w = dilation;
    p.groups = groups;
    p.pad_t = p.pad_b = p.pad_l = p.pad_r = padding;
    p.act = ENG_ACT_NONE;
    return p;
}

void eng_conv_same_padding(int64_t in, int k, int stride, int dilation, int *before, int *after)
{
    int64_t out = (in + stride - 1) / stride;
    int64_t total = (out - 1) * stride + (int64_t)(k - 1) * dilation + 1 - in;
    if (total < 0)
        total = 0;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

int64_t eng_conv_out_dim(int64_t in, int k, int stride, int dilation, int before, int after)
{
    int64_t span = in + before + after - (int64_t)(k - 1) * dilation - 1;
    if (span < 0)
        return 0;
    return span / stride + 1;
}

static void conv_pads(const struct eng_conv *c, int64_t h, int64_t w, int *pt, int *pb, int *pl, int *pr)
{
    const struct eng_conv_params *p = &c->p;
    if (p->pad_same) {
        eng_conv_same_padding(h, p->kh, p->stride_h, p->dil_h, pt, pb);
        eng_conv_same_padding(w, p->kw, p->stride_w, p->dil_w, pl, pr);
    } else {
        *pt = p->pad_t;
        *pb = p->pad_b;
        *pl = p->pad_l;
        *pr = p->pad_r;
    }
}

int eng_conv_out_size(const struct eng_conv *conv, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w)
{
    const struct eng_conv_params *p = &conv->p;
    int pt, pb, pl, pr;
    conv_pads(conv, in_h, in_w, &pt, &pb, &pl, &pr);
    *out_h = eng_conv_out_dim(in_h, p->kh, p->stride_h, p->dil_h, pt, pb);
    *out_w = eng_conv_out_dim(in_w, p->kw, p->stride_w, p->dil_w, pl, pr);
    if (*out_h < 1 || *out_w < 1)
        return eng_error("conv '%s': input %lldx%lld (padded %d,%d,%d,%d) is smaller than its %dx%d kernel "
                         "(dilation %d,%d)",
                         conv->name, (long long)in_h, (long long)in_w, pt, pb, pl, pr, p->kh, p->kw, p->dil_h,
                         p->dil_w);
    return 0;
}

static void im2col_plan(const struct eng_conv *c, int nthreads, struct conv_plan *pl);

static int conv_plan(const struct eng_conv *c, const int64_t *x_ne, int nthreads, struct conv_plan *pl)
{
    const struct eng_conv_params *p = &c->p;
    memset(pl, 0, sizeof *pl);
    pl->n = x_ne[0];
    pl->h = x_ne[1];
    pl->w = x_ne[2];
    if (eng_conv_out_size(c, pl->h, pl->w, &pl->oh, &pl->ow) < 0)
        return -1;
    conv_pads(c, pl->h, pl->w, &pl->pt, &pl->pb, &pl->pl, &pl->pr);
    pl->m = pl->n * pl->oh * pl->ow;
    if (c->depthwise) {
        pl->path = CONV_PATH_DEPTHWISE;
        return 0;
    }
    if (p->kh == 1 && p->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->groups == 1 && pl->pt == 0 &&
        pl->pb == 0 && pl->pl == 0 && pl->pr == 0) {
        pl->path = CONV_PATH_1X1;
        return 0;
    }
    if (c->wino || c->wino_pw) {
        /* The path may differ between batch sizes (eng_winograd_use): reserve for both, so the
         * scratch measured at the largest batch covers each smaller one, whichever path it takes. */
        size_t wg = eng_winograd_scratch_bytes(c, pl->n, pl->oh, pl->ow, nthreads);
        im2col_plan(c, nthreads, pl);
        if (wg > pl->scratch)
            pl->scratch = wg;
        if (eng_winograd_use(c, pl->n, pl->oh, pl->ow))
            pl->path = CONV_PATH_WINOGRAD;
        return 0;
    }
    im2col_plan(c, nthreads, pl);
    /* A kernel's rows read in place (eng_sgemm_packed_runs) where its K is one GEMM block: the
     * stems (7x7 over 3 channels: im2col had copied 21-float runs into a 512 KiB buffer that
     * then streamed from L3) and other few-channel layers. Columns whose kernel crosses the
     * image's left or right edge still go through im2col (zeros for the padding). The scratch
     * covers im2col's plan too: an input whose pixels are not contiguous (a channel slice)
     * takes im2col after all (conv_runs). */
    if (c->pw.p && p->groups == 1 && p->dil_w == 1 && pl->ktot <= ENG_SGEMM_RUNS_MAX_K) {
        int64_t sw = p->stride_w, reach = (int64_t)(p->kw - 1) * p->dil_w;
        pl->ox_lo = (pl->pl + sw - 1) / sw;
        pl->ox_hi = pl->w - 1 - reach + pl->pl < 0 ? -1 : (pl->w - 1 - reach + pl->pl) / sw;
        if (pl->ox_hi > pl->ow - 1)
            pl->ox_hi = pl->ow - 1;
        int nth = nthreads < 1 ? 1 : nthreads;
        int64_t rows = pl->n * pl->oh;
        size_t per = (size_t)((pl->ow * pl->ktot + 15) / 16 * 16) * sizeof(float);
        pl->path = CONV_PATH_RUNS;
        pl->run_tasks = (int)(rows < nth ? rows : nth);
        if (pl->m * pl->ktot * p->cout < CONV_MIN_PARALLEL_FLOPS)
            pl->run_tasks = 1;
        if (per * (size_t)nth + ENG_ARENA_ALIGN > pl->scratch)
            pl->scratch = per * (size_t)nth + ENG_ARENA_ALIGN;
    }
    return 0;
}

/* pl (geometry filled in) as an im2col + GEMM plan: tiles, tasks, scratch. */
static void im2col_plan(const struct eng_conv *c, int nthreads, struct conv_plan *pl)
{
    const struct eng_conv_params *p = &c->p;
    pl->path = CONV_PATH_IM2COL;
    pl->ktot = (int64_t)p->kh * p->kw * p->cin;
    int nth = nthreads < 1 ? 1 : nthreads;
    if (pl->m < 16 * (int64_t)nth) {
        pl->whole = true;
        pl->tile = pl->m;
        pl->ntile = 1;
        pl->tasks = 1;
        pl->scratch = (size_t)(pl->m * pl->ktot) * sizeof(float) + ENG_ARENA_ALIGN;
        return;
    }
    int64_t tile = CONV_TILE_BYTES / (pl->ktot * (int64_t)sizeof(float));
    int64_t share = (pl->m + nth - 1) / nth;
    if (tile < CONV_MIN_TILE_ROWS)
        tile = CONV_MIN_TILE_ROWS;
    if (tile > share)
        tile = share;
    /* The buffers are sized for this cap, not for the evened-out tile below: the cap never grows
     * when the batch shrinks, so scratch measured at the largest batch covers every smaller one
     * (the evened-out tile can be larger at a smaller batch). */
    int64_t cap = tile;
    /* Round the tile count up to a multiple of the threads and even out the tiles, so no
     * thread is left with one tile more than the others (7 tiles on 2 threads idle one core
     * for a seventh of the time). */
    int64_t ntile = (pl->m + tile - 1) / tile;
    ntile = (ntile + nth - 1) / nth * nth;
    tile = (pl->m + ntile - 1) / ntile;
    pl->tile = tile;
    pl->ntile = (pl->m + tile - 1) / tile;
    pl->tasks = (int)(pl->ntile < nth ? pl->ntile : nth);
    int64_t flops = pl->m * pl->ktot * p->cout / p->groups;
    if (flops < CONV_MIN_PARALLEL_FLOPS)
        pl->tasks = 1;
    /* Each thread's buffer starts on its own cache line. */
    int64_t per = (cap * pl->ktot + 15) / 16 * 16;
    pl->scratch = (size_t)(per * pl->tasks) * sizeof(float) + ENG_ARENA_ALIGN;
}

size_t eng_conv2d_scratch_bytes(const struct eng_conv *conv, const int64_t *x_ne, int nthreads)
{
    struct conv_plan pl;
    if (conv_plan(conv, x_ne, nthreads, &pl) < 0)
        return 0;
    return pl.scratch;
}

static int check_params(const char *name, const struct eng_conv_params *p)
{
    if (p->cin < 1 || p->cout < 1 || p->kh < 1 || p->kw < 1 || p->stride_h < 1 || p->stride_w < 1 ||
        p->dil_h < 1 || p->dil_w < 1 || p->groups < 1 || p->pad_t < 0 || p->pad_b < 0 || p->pad_l < 0 ||
        p->pad_r < 0)
        return eng_error("conv '%s': bad geometry cin=%d cout=%d kernel %dx%d stride %d,%d dilation %d,%d "
                         "groups %d pads %d,%d,%d,%d",
                         name, p->cin, p->cout, p->kh, p->kw, p->stride_h, p->stride_w, p->dil_h, p->dil_w,
                         p->groups, p->pad_t, p->pad_b, p->pad_l, p->pad_r);
    if (p->cin % p->groups || p->cout % p->groups)
        return eng_error("conv '%s': groups %d does not divide cin %d and cout %d", name, p->groups, p->cin, p->cout);
    return 0;
}

/* Pack w for engine/sgemm.h where that kernel runs: one group, not depthwise. */
static int conv_pack(struct eng_conv *conv)
{
    const struct eng_conv_params *p = &conv->p;
    if (conv->depthwise || p->groups != 1 || !eng_sgemm_enabled())
        return 0;
    int64_t k = (int64_t)p->kh * p->kw * p->cin;
    return eng_pack_b(&conv->pw, conv->name, conv->w, p->cout, k, p->cout);
}

/* Pack the 36 Winograd matrices for engine/sgemm.h and drop the unpacked copy. */
static int conv_pack_wino(struct eng_conv *conv)
{
    int64_t cin = conv->p.cin, cout = conv->p.cout;
    conv->wino_pw = calloc(36, sizeof *conv->wino_pw);
    if (!conv->wino_pw)
        return eng_error("conv '%s': out of memory packing Winograd weights", conv->name);
    for (int xi = 0; xi < 36; xi++)
        if (eng_pack_b(&conv->wino_pw[xi], conv->name, conv->wino + xi * cin * cout, cout, cin, cout) < 0)
            return -1;
    free(conv->wino);
    conv->wino = NULL;
    return 0;
}

/* hwio selects the source layout: torch [cout, cin_g, kh, kw] or TF [kh, kw, cin_g, cout]. */
static int conv_init(struct eng_conv *conv, const char *name, const struct eng_conv_params *p, const float *w,
                     const float *bias, bool hwio)
{
    memset(conv, 0, sizeof *conv);
    snprintf(conv->name, sizeof conv->name, "%s", name ? name : "");
    if (check_params(conv->name, p) < 0)
        return -1;
    conv->p = *p;
    conv->depthwise = p->groups > 1 && p->groups == p->cin;
    int64_t cin_g = p->cin / p->groups, cout_g = p->cout / p->groups, taps = (int64_t)p->kh * p->kw;
    int64_t kg = taps * cin_g, nw = kg * p->cout;
    conv->w = malloc((size_t)nw * sizeof(float));
    if (!conv->w)
        return eng_error("conv '%s': out of memory packing %lld weights", conv->name, (long long)nw);
    for (int64_t oc = 0; oc < p->cout; oc++) {
        int64_t g = oc / cout_g, j = oc % cout_g;
        for (int64_t t = 0; t < taps; t++)
            for (int64_t ci = 0; ci < cin_g; ci++) {
                int64_t src = hwio ? (t * cin_g + ci) * p->cout + oc : (oc * cin_g + ci) * taps + t;
                int64_t dst = conv->depthwise ? t * p->cout + oc : g * kg * cout_g + (t * cin_g + ci) * cout_g + j;
                conv->w[dst] = w[src];
            }
    }
    if (bias) {
        conv->bias = malloc((size_t)p->cout * sizeof(float));
        if (!conv->bias) {
            eng_conv_free(conv);
            return eng_error("conv '%s': out of memory for bias", name ? name : "");
        }
        memcpy(conv->bias, bias, (size_t)p->cout * sizeof(float));
    }
    if (conv_pack(conv) < 0) {
        eng_conv_free(conv);
        return -1;
    }
    if (!conv->depthwise && eng_winograd_eligible(p)) {
        conv->wino = eng_winograd_pack(conv->name, conv->w, p->cin, p->cout);
        if (!conv->wino || (eng_sgemm_enabled() && conv_pack_wino(conv) < 0)) {
            eng_conv_free(conv);
            return -1;
        }
    }
    return 0;
}

int eng_conv_init_oihw(struct eng_conv *conv, const char *name, const struct eng_conv_params *p, const float *w,
                       const float *bias)
{
    return conv_init(conv, name, p, w, bias, false);
}

int eng_conv_init_hwio(struct eng_conv *conv, const char *name, const struct eng_conv_params *p, const float *w,
                       const float *bias)
{
    return conv_init(conv, name, p, w, bias, true);
}

void eng_conv_free(struct eng_conv *conv)
{
    free(conv->w);
    free(conv->bias);
    free(conv->wino);
    eng_packed_b_free(&conv->pw);
    if (conv->wino_pw)
        for (int xi = 0; xi < 36; xi++)
            eng_packed_b_free(&conv->wino_pw[xi]);
    free(conv->wino_pw);
    conv->wino_pw = NULL;
    conv->w = NULL;
    conv->bias = NULL;
    conv->wino = NULL;
}

void eng_conv_drop_unpacked(struct eng_conv *conv)
{
    if (conv->pw.p) { /* 1x1 and im2col run from pw; Winograd from wino or wino_pw */
        free(conv->w);
        conv->w = NULL;
    }
}

int eng_conv_fold_bn(struct eng_conv *conv, const float *gamma, const float *beta, const float *mean,
                     const float *var, float eps)
{
    const struct eng_conv_params *p = &conv->p;
    for (int oc = 0; oc < p->cout; oc++)
        if (!(var[oc] + eps > 0.0f))
            return eng_error("conv '%s': batch norm channel %d has var + eps = %g, not positive", conv->name, oc,
                             (double)(var[oc] + eps));
    if (!conv->bias) {
        conv->bias = calloc((size_t)p->cout, sizeof(float));
        if (!conv->bias)
            return eng_error("conv '%s': out of memory for folded bias", conv->name);
    }
    int64_t cin_g = p->cin / p->groups, cout_g = p->cout / p->groups, taps = (int64_t)p->kh * p->kw;
    int64_t kg = taps * cin_g;
    for (int64_t oc = 0; oc < p->cout; oc++) {
        /* In double so the fold adds no error beyond the final rounding to float. */
        double s = (gamma ? gamma[oc] : 1.0) / sqrt((double)var[oc] + (double)eps);
        if (conv->w && conv->depthwise) {
            for (int64_t t = 0; t < taps; t++)
                conv->w[t * p->cout + oc] = (float)(conv->w[t * p->cout + oc] * s);
        } else if (conv->w) { /* NULL once dropped: the packed copies below are all there is */
            float *wg = conv->w + (oc / cout_g) * kg * cout_g + oc % cout_g;
            for (int64_t k = 0; k < kg; k++)
                wg[k * cout_g] = (float)(wg[k * cout_g] * s);
        }
        if (conv->wino) /* linear in the weights: its column oc scales the same way */
            for (int64_t k = 0; k < 36 * (int64_t)p->cin; k++)
                conv->wino[k * p->cout + oc] = (float)(conv->wino[k * p->cout + oc] * s);
        if (conv->wino_pw)
            for (int xi = 0; xi < 36; xi++)
                eng_packed_b_scale_col(&conv->wino_pw[xi], oc, s);
        if (conv->pw.p)
            eng_packed_b_scale_col(&conv->pw, oc, s);
        conv->bias[oc] = (float)(((double)conv->bias[oc] - mean[oc]) * s + (beta ? beta[oc] : 0.0));
    }
    return 0;
}

static inline const float *pixel(const struct eng_tensor *t, int64_t b, int64_t y, int64_t x)
{
    return (const float *)((const char *)t->data + b * t->nb[0] + y * t->nb[1] + x * t->nb[2]);
}

/* --- depthwise: per output pixel, accumulate kh*kw taps over contiguous channels --- */

struct dw_job {
    const struct eng_conv *c;
    const struct eng_tensor *x, *y;
    const struct conv_plan *pl;
};

/* Channels per register-resident accumulator: 8 SSE / 4 AVX registers, leaving room for loads. */
#define DW_BLOCK 32

/* Input pixel of output pixel (oy, ox)'s tap (ky, kx), or NULL in the padding. */
static inline const float *dw_src(const struct dw_job *j, int64_t b, int64_t oy, int64_t ox, int ky, int kx)
{
    const struct eng_conv_params *p = &j->c->p;
    int64_t iy = oy * p->stride_h - j->pl->pt + (int64_t)ky * p->dil_h;
    int64_t ix = ox * p->stride_w - j->pl->pl + (int64_t)kx * p->dil_w;
    if (iy < 0 || iy >= j->pl->h || ix < 0 || ix >= j->pl->w)
        return NULL;
    return pixel(j->x, b, iy, ix);
}

/* Channels [c0, c0 + DW_BLOCK) of one output pixel, multiplier 1: the fixed trip count lets the
 * accumulator live in registers across all taps, so each tap costs two loads per vector. */
static void dw_block(const struct dw_job *j, int64_t b, int64_t oy, int64_t ox, int64_t c0, float *restrict out)
{
    const struct eng_conv_params *p = &j->c->p;
    float acc[DW_BLOCK];
    const float *bias = j->c->bias;
    CONV_UNROLL
    for (int c = 0; c < DW_BLOCK; c++)
        acc[c] = bias ? bias[c0 + c] : 0.0f;
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
            const float *restrict xp = dw_src(j, b, oy, ox, ky, kx);
            if (!xp)
                continue;
            xp += c0;
            const float *restrict wp = j->c->w + ((int64_t)ky * p->kw + kx) * p->cout + c0;
            CONV_UNROLL
            for (int c = 0; c < DW_BLOCK; c++)
                acc[c] += xp[c] * wp[c];
        }
    CONV_UNROLL
    for (int c = 0; c < DW_BLOCK; c++)
        out[c] = acc[c];
}

/* Output channels [c0, cout) of one output pixel, accumulated in place; any multiplier
 * (output channel oc reads input channel oc / mult). */
static void dw_tail(const struct dw_job *j, int64_t b, int64_t oy, int64_t ox, int64_t c0, float *restrict out)
{
    const struct eng_conv_params *p = &j->c->p;
    int64_t cout = p->cout, mult = cout / p->cin;
    for (int64_t c = c0; c < cout; c++)
        out[c] = j->c->bias ? j->c->bias[c] : 0.0f;
    for (int ky = 0; ky < p->kh; ky++)
        for (int kx = 0; kx < p->kw; kx++) {
            const float *restrict xp = dw_src(j, b, oy, ox, ky, kx);
            if (!xp)
                continue;
            const float *restrict wp = j->c->w + ((int64_t)ky * p->kw + kx) * cout;
            if (mult == 1) {
                CONV_SIMD
                for (int64_t c = c0; c < cout; c++)
                    out[c] += xp[c] * wp[c];
            } else {
                for (int64_t c = c0; c < cout; c++)
                    out[c] += xp[c / mult] * wp[c];
            }
        }
}

static void dw_part(void *arg, int ith, int nth)
{
    const struct dw_job *j = arg;
    const struct eng_conv_params *p = &j->c->p;
    const struct conv_plan *pl = j->pl;
    int64_t cout = p->cout, mult = cout / p->cin;
    int64_t full = mult == 1 ? cout / DW_BLOCK * DW_BLOCK : 0;
    int64_t ldy = (int64_t)(j->y->nb[2] / sizeof(float));
    int64_t r0, r1;
    eng_split(pl->n * pl->oh, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        int64_t b = r / pl->oh, oy = r % pl->oh;
        float *yrow = (float *)pixel(j->y, b, oy, 0);
        for (int64_t ox = 0; ox < pl->ow; ox++) {
            float *out = yrow + ox * ldy;
            for (int64_t c0 = 0; c0 < full; c0 += DW_BLOCK)
                dw_block(j, b, oy, ox, c0, out + c0);
            if (full < cout)
                dw_tail(j, b, oy, ox, full, out);
        }
        eng_act_rows(p->act, p->act_param, yrow, pl->ow, cout, ldy);
    }
}

/* --- im2col + GEMM --- */

/* Output pixels [r0, r1) into buf, one row of ktot floats each, laid out group-major:
 * g * kh*kw*cin_g + (ky*kw + kx) * cin_g + ci, so group g's A matrix is a column block. */
static void im2col_rows(const struct eng_conv *c, const struct conv_plan *pl, const struct eng_tensor *x,
                        int64_t r0, int64_t r1, float *buf)
{
    const struct eng_conv_params *p = &c->p;
    int64_t groups = p->groups, cin_g = p->cin / groups, kg = (int64_t)p->kh * p->kw * cin_g;
    int64_t b = r0 / (pl->oh * pl->ow), oy = r0 / pl->ow % pl->oh, ox = r0 % pl->ow;
    /* With one group, no horizontal dilation and pixels packed (not a channel slice), the kw
     * taps of a kernel row are kw*cin adjacent floats: one copy per row instead of one per tap.
     * It is what keeps a 3-channel stem (21-float runs instead of 3-float ones) fed. */
    bool row_runs = groups == 1 && p->dil_w == 1 && x->nb[2] == (size_t)cin_g * sizeof(float);
    for (int64_t r = r0; r < r1; r++) {
        float *dst = buf + (r - r0) * pl->ktot;
        for (int ky = 0; ky < p->kh; ky++) {
            int64_t iy = oy * p->stride_h - pl->pt + (int64_t)ky * p->dil_h;
            if (row_runs) {
                float *d = dst + (int64_t)ky * p->kw * cin_g;
                int64_t ix0 = ox * p->stride_w - pl->pl;
                int64_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = pl->w - ix0 < p->kw ? pl->w - ix0 : p->kw;
                if (iy < 0 || iy >= pl->h || kx1 <= kx0) {
                    memset(d, 0, (size_t)(p->kw * cin_g) * sizeof(float));
                    continue;
                }
                if (kx0 > 0)
                    memset(d, 0, (size_t)(kx0 * cin_g) * sizeof(float));
                memcpy(d + kx0 * cin_g, pixel(x, b, iy, ix0 + kx0), (size_t)((kx1 - kx0) * cin_g) * sizeof(float));
                if (kx1 < p->kw)
                    memset(d + kx1 * cin_g, 0, (size_t)((p->kw - kx1) * cin_g) * sizeof(float));
                continue;
            }
            for (int kx = 0; kx < p->kw; kx++) {
                int64_t ix = ox * p->stride_w - pl->pl + (int64_t)kx * p->dil_w;
                float *d = dst + ((int64_t)ky * p->kw + kx) * cin_g;
                if (iy < 0 || iy >= pl->h || ix < 0 || ix >= pl->w) {
                    for (int64_t g = 0; g < groups; g++)
                        memset(d + g * kg, 0, (size_t)cin_g * sizeof(float));
                } else {
                    const float *s = pixel(x, b, iy, ix);
                    for (int64_t g = 0; g < groups; g++)
                        memcpy(d + g * kg, s + g * cin_g, (size_t)cin_g * sizeof(float));
                }
            }
        }
        if (++ox == pl->ow) {
            ox = 0;
            if (++oy == pl->oh) {
                oy = 0;
                b++;
            }
        }
    }
}

/* y rows [r0, r1) = act(A W_g + b) for every group, A = buf (im2col of those rows). */
static void gemm_tile(const struct eng_conv *c, const struct conv_plan *pl, const float *buf, int64_t r0,
                      int64_t r1, const struct eng_tensor *y)
{
    const struct eng_conv_params *p = &c->p;
    int64_t groups = p->groups, cout_g = p->cout / groups, kg = pl->ktot / groups;
    for (int64_t r = r0; r < r1;) {
        float *yp;
        int64_t ldy, n = eng_row_run(y, r, &yp, &ldy);
        if (n > r1 - r)
            n = r1 - r;
        const float *a = buf + (r - r0) * pl->ktot;
        if (c->pw.p) {
            struct eng_sgemm_ops op = {.bias = c->bias, .act = p->act, .act_param = p->act_param};
            eng_sgemm_packed(n, a, pl->ktot, &c->pw, 0, p->cout, yp, ldy, &op);
            r += n;
            continue;
        }
        for (int64_t g = 0; g < groups; g++) {
            float *cg = yp + g * cout_g;
            eng_gemm_serial(false, false, n, cout_g, kg, 1.0f, a + g * kg, pl->ktot, c->w + g * kg * cout_g, cout_g,
                            0.0f, cg, ldy);
            eng_bias_act_rows(cg, n, cout_g, ldy, c->bias ? c->bias + g * cout_g : NULL, p->act, p->act_param);
        }
        r += n;
    }
}

struct im2col_job {
    const struct eng_conv *c;
    const struct conv_plan *pl;
    const struct eng_tensor *x, *y;
    float *buf;
    int64_t per; /* floats per thread buffer */
};

/* y rows [r0, r1) through im2col into buf, then the GEMM. */
static void im2col_gemm(const struct eng_conv *c, const struct conv_plan *pl, const struct eng_tensor *x,
                        int64_t r0, int64_t r1, float *buf, const struct eng_tensor *y)
{
    im2col_rows(c, pl, x, r0, r1, buf);
    gemm_tile(c, pl, buf, r0, r1, y);
}

static void tile_part(void *arg, int ith, int nth)
{
    const struct im2col_job *j = arg;
    float *buf = j->buf + ith * j->per;
    int64_t t0, t1;
    eng_split(j->pl->ntile, ith, nth, &t0, &t1);
    for (int64_t t = t0; t < t1; t++) {
        int64_t r0 = t * j->pl->tile, r1 = r0 + j->pl->tile < j->pl->m ? r0 + j->pl->tile : j->pl->m;
        im2col_gemm(j->c, j->pl, j->x, r0, r1, buf, j->y);
    }
}

static void whole_im2col_part(void *arg, int ith, int nth)
{
    const struct im2col_job *j = arg;
    int64_t r0, r1;
    eng_split(j->pl->m, ith, nth, &r0, &r1);
    im2col_rows(j->c, j->pl, j->x, r0, r1, j->buf + r0 * j->pl->ktot);
}

/* --- kernel rows read in place (eng_sgemm_packed_runs) --- */

struct runs_job {
    const struct eng_conv *c;
    const struct conv_plan *pl;
    const struct eng_tensor *x, *y;
    float *buf;  /* per thread: the edge pixels' im2col rows */
    int64_t per; /* floats per thread buffer */
};

/* Output rows (image b, row oy) split among the threads; in each, the columns whose kernel
 * stays inside the image (pl->ox_lo .. ox_hi) multiply A read in place, the kernel rows that
 * fall inside the image (ky0 .. ky1) as runs of kw * cin floats; the columns at the left and
 * right edges (and rows whose kernel lies wholly in the padding) go through im2col. */
static void runs_part(void *arg, int ith, int nth)
{
    const struct runs_job *j = arg;
    const struct eng_conv *c = j->c;
    const struct conv_plan *pl = j->pl;
    const struct eng_conv_params *p = &c->p;
    float *buf = j->buf + ith * j->per;
    struct eng_sgemm_ops op = {.bias = c->bias, .act = p->act, .act_param = p->act_param};
    int64_t run = (int64_t)p->kw * p->cin, a_run = p->dil_h * (int64_t)(j->x->nb[1] / sizeof(float));
    int64_t lda = p->stride_w * (int64_t)p->cin, ldy = (int64_t)(j->y->nb[2] / sizeof(float));
    int64_t u0, u1;
    eng_split(pl->n * pl->oh, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        int64_t b = u / pl->oh, oy = u % pl->oh, r0 = u * pl->ow;
        int64_t iy0 = oy * p->stride_h - pl->pt;
        int64_t ky0 = iy0 >= 0 ? 0 : (-iy0 + p->dil_h - 1) / p->dil_h;
        int64_t ky1 = iy0 > pl->h - 1 ? 0 : (pl->h - 1 - iy0) / p->dil_h + 1;
        if (ky1 > p->kh)
            ky1 = p->kh;
        int64_t lo = pl->ox_lo, hi = pl->ox_hi;
        if (ky1 <= ky0 || hi < lo)
            lo = pl->ow, hi = pl->ow - 1; /* the whole row through im2col */
        if (lo > 0)
            im2col_gemm(c, pl, j->x, r0, r0 + lo, buf, j->y);
        if (hi + 1 < pl->ow)
            im2col_gemm(c, pl, j->x, r0 + hi + 1, r0 + pl->ow, buf, j->y);
        if (hi >= lo)
            eng_sgemm_packed_runs(hi - lo + 1, pixel(j->x, b, iy0 + ky0 * p->dil_h, lo * p->stride_w - pl->pl), lda,
                                  run, ky1 - ky0, a_run, &c->pw, ky0 * run,
                                  eng_tensor_at(j->y, (int64_t[]){b, oy, lo, 0}), ldy, &op);
    }
}

static int conv_im2col(struct eng_ctx *ctx, const struct eng_conv *c, const struct conv_plan *pl,
                       const struct eng_tensor *x, struct eng_tensor *y);

/* The runs path, or im2col where x's pixels are not contiguous (a channel slice). */
static int conv_runs(struct eng_ctx *ctx, const struct eng_conv *c, const struct conv_plan *pl,
                     const struct eng_tensor *x, struct eng_tensor *y)
{
    if (x->nb[3] != sizeof(float) || x->nb[2] != (size_t)c->p.cin * sizeof(float) || x->nb[1] % sizeof(float))
        return conv_im2col(ctx, c, pl, x, y);
    size_t mark = eng_arena_mark(&ctx->scratch);
    int64_t per = (pl->ow * pl->ktot + 15) / 16 * 16;
    float *buf = eng_arena_alloc(&ctx->scratch, (size_t)(per * pl->run_tasks) * sizeof(float));
    if (!buf) {
        char why[512]; /* the arena's message lives in the buffer eng_error is about to overwrite */
        snprintf(why, sizeof why, "%s", eng_errmsg());
        return eng_error("conv '%s': edge scratch: %s", c->name, why);
    }
    struct runs_job j = {c, pl, x, y, buf, per};
    eng_parallel(ctx, pl->run_tasks, runs_part, &j);
    eng_arena_rewind(&ctx->scratch, mark);
    return 0;
}

static int conv_im2col(struct eng_ctx *ctx, const struct eng_conv *c, const struct conv_plan *pl,
                       const struct eng_tensor *x, struct eng_tensor *y)
{
    size_t mark = eng_arena_mark(&ctx->scratch);
    float *buf = eng_arena_alloc(&ctx->scratch, pl->scratch - ENG_ARENA_ALIGN);
    if (!buf) {
        char why[512]; /* the arena's message lives in the buffer eng_error is about to overwrite */
        snprintf(why, sizeof why, "%s", eng_errmsg());
        return eng_error("conv '%s': im2col scratch: %s", c->name, why);
    }
    struct im2col_job j = {c, pl, x, y, buf, (pl->tile * pl->ktot + 15) / 16 * 16};
    if (!pl->whole) {
        eng_parallel(ctx, pl->tasks, tile_part, &j);
        eng_arena_rewind(&ctx->scratch, mark);
        return 0;
    }
    /* Few output pixels (late stages, batch 1): threads share one im2col and split the GEMM
     * by output channels instead, via the row GEMM. */
    const struct eng_conv_params *p = &c->p;
    int64_t groups = p->groups, cout_g = p->cout / groups, kg = pl->ktot / groups;
    int64_t mk = pl->m * pl->ktot;
    eng_parallel(ctx, mk < ((int64_t)1 << 15) ? 1 : ctx->nthreads, whole_im2col_part, &j);
    int rc = 0;
    if (c->pw.p) {
        struct eng_tensor a = eng_tensor_make("im2col", buf, 2, (int64_t[]){pl->m, pl->ktot});
        struct eng_sgemm_ops op = {.bias = c->bias, .act = p->act, .act_param = p->act_param};
        rc = eng_rows_gemm_packed(ctx, &a, &c->pw, &op, NULL, y);
        eng_arena_rewind(&ctx->scratch, mark);
        return rc;
    }
    for (int64_t g = 0; g < groups && rc == 0; g++) {
        struct eng_tensor a = eng_tensor_make("im2col", buf + g * kg, 2, (int64_t[]){pl->m, kg});
        a.nb[0] = (size_t)pl->ktot * sizeof(float);
        struct eng_tensor yg = eng_tensor_slice(y, 3, g * cout_g, cout_g);
        rc = eng_rows_gemm(ctx, &a, c->w + g * kg * cout_g, cout_g, c->bias ? c->bias + g * cout_g : NULL, p->act,
                           p->act_param, &yg);
    }
    eng_arena_rewind(&ctx->scratch, mark);
    return rc;
}

static int conv2d(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x, struct eng_tensor *y)
{
    const struct eng_conv_params *p = &conv->p;
    char xs[64], ys[64];
    if (x->ndim != 4 || x->ne[3] != p->cin)
        return eng_error("conv '%s': input '%s' has shape %s, expected [N,H,W,%d]", conv->name, x->name,
                         eng_shape_str(x, xs, sizeof xs), p->cin);
    struct conv_plan pl;
    if (conv_plan(conv, x->ne, ctx->nthreads, &pl) < 0)
        return -1;
    if (y->ndim != 4 || y->ne[0] != pl.n || y->ne[1] != pl.oh || y->ne[2] != pl.ow || y->ne[3] != p->cout)
        return eng_error("conv '%s': output '%s' has shape %s, expected [%lld,%lld,%lld,%d] for input '%s' %s",
                         conv->name, y->name, eng_shape_str(y, ys, sizeof ys), (long long)pl.n, (long long)pl.oh,
                         (long long)pl.ow, p->cout, x->name, eng_shape_str(x, xs, sizeof xs));
    if (pl.m == 0)
        return 0;
    switch (pl.path) {
    case CONV_PATH_1X1:
        if (conv->pw.p) {
            struct eng_sgemm_ops op = {.bias = conv->bias, .act = p->act, .act_param = p->act_param};
            return eng_rows_gemm_packed(ctx, x, &conv->pw, &op, NULL, y);
        }
        return eng_rows_gemm(ctx, x, conv->w, p->cout, conv->bias, p->act, p->act_param, y);
    case CONV_PATH_DEPTHWISE: {
        struct dw_job j = {conv, x, y, &pl};
        int64_t rows = pl.n * pl.oh, work = pl.m * p->cout * p->kh * p->kw;
        int tasks = work < CONV_MIN_PARALLEL_FLOPS ? 1 : (int)(rows < ctx->nthreads ? rows : ctx->nthreads);
        eng_parallel(ctx, tasks, dw_part, &j);
        return 0;
    }
    case CONV_PATH_WINOGRAD: {
        /* Claim what im2col would need too (conv_plan), so a sizing run at the largest batch,
         * which records the arena's peak, covers a smaller batch that takes im2col. */
        size_t mark = eng_arena_mark(&ctx->scratch);
        if (!eng_arena_alloc(&ctx->scratch, pl.scratch - ENG_ARENA_ALIGN)) {
            char why[512]; /* the arena's message lives in the buffer eng_error is about to overwrite */
            snprintf(why, sizeof why, "%s", eng_errmsg());
            return eng_error("conv '%s': scratch: %s", conv->name, why);
        }
        eng_arena_rewind(&ctx->scratch, mark);
        return eng_winograd_conv2d(ctx, conv, x, y, pl.pt, pl.pl);
    }
    case CONV_PATH_IM2COL:
        return conv_im2col(ctx, conv, &pl, x, y);
    case CONV_PATH_RUNS:
        return conv_runs(ctx, conv, &pl, x, y);
    }
    return 0;
}

/* Whether x goes through conv's 1x1 path on the packed GEMM (where prologues and residuals fuse). */
static bool packed_1x1(const struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x)
{
    struct conv_plan pl;
    return x->ndim == 4 && x->ne[3] == conv->p.cin && conv->pw.p &&
           conv_plan(conv, x->ne, ctx->nthreads, &pl) == 0 && pl.path == CONV_PATH_1X1;
}

static int conv2d_res(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x,
                      const struct eng_tensor *res, enum eng_act act, float act_param, struct eng_tensor *y)
{
    const struct eng_conv_params *p = &conv->p;
    if (p->act == ENG_ACT_NONE && packed_1x1(ctx, conv, x)) {
        char ys[64], rs[64];
        bool fits = y->ndim == 4 && res->ndim == 4;
        for (int d = 0; fits && d < 4; d++)
            fits = res->ne[d] == y->ne[d] && y->ne[d] == (d < 3 ? x->ne[d] : p->cout);
        if (!fits)
            return eng_error("conv '%s': output '%s' %s and residual '%s' %s do not fit input '%s'", conv->name,
                             y->name, eng_shape_str(y, ys, sizeof ys), res->name, eng_shape_str(res, rs, sizeof rs),
                             x->name);
        struct eng_sgemm_ops op = {.bias = conv->bias, .act = act, .act_param = act_param};
        return eng_rows_gemm_packed(ctx, x, &conv->pw, &op, res, y);
    }
    if (conv2d(ctx, conv, x, y) < 0)
        return -1;
    return eng_add(ctx, act, act_param, y, res, y);
}

static int conv2d_pre(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_affine *pre,
                      const struct eng_tensor *x, struct eng_tensor *tmp, struct eng_tensor *y)
{
    const struct eng_conv_params *p = &conv->p;
    if (pre->channels != p->cin)
        return eng_error("conv '%s': its input affine has %lld channels, the convolution %d", conv->name,
                         (long long)pre->channels, p->cin);
    if ((pre->act == ENG_ACT_NONE || pre->act == ENG_ACT_RELU) && packed_1x1(ctx, conv, x)) {
        char xs[64], ys[64];
        if (y->ndim != 4 || y->ne[0] != x->ne[0] || y->ne[1] != x->ne[1] || y->ne[2] != x->ne[2])
            return eng_error("conv '%s': output '%s' %s does not fit input '%s' %s", conv->name, y->name,
                             eng_shape_str(y, ys, sizeof ys), x->name, eng_shape_str(x, xs, sizeof xs));
        struct eng_sgemm_ops op = {.a_scale = pre->scale, .a_shift = pre->shift, .a_relu = pre->act == ENG_ACT_RELU,
                                   .bias = conv->bias, .act = p->act, .act_param = p->act_param};
        return eng_rows_gemm_packed(ctx, x, &conv->pw, &op, NULL, y);
    }
    if (eng_affine(ctx, pre, x, tmp) < 0)
        return -1;
    return conv2d(ctx, conv, tmp, y);
}

/* --- the entry points: the paths above, timed when the context keeps a profile --- */

static void conv_profile(const struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *y,
                         double t0)
{
    const struct eng_conv_params *p = &conv->p;
    double macs = (double)eng_tensor_nrows(y) * p->cout * (p->cin / p->groups) * p->kh * p->kw;
    char kind[24];
    snprintf(kind, sizeof kind, "conv %dx%d/%d%s", p->kh, p->kw, p->stride_h, conv->depthwise ? " dw" : "");
    eng_profile_add(ctx->prof, conv->name, kind, y->ne[0], eng_profile_now() - t0, 2.0 * macs);
}

int eng_conv2d(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x, struct eng_tensor *y)
{
    if (!ctx->prof)
        return conv2d(ctx, conv, x, y);
    double t0 = eng_profile_now();
    int rc = conv2d(ctx, conv, x, y);
    conv_profile(ctx, conv, y, t0);
    return rc;
}

int eng_conv2d_res(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x,
                   const struct eng_tensor *res, enum eng_act act, float act_param, struct eng_tensor *y)
{
    if (!ctx->prof)
        return conv2d_res(ctx, conv, x, res, act, act_param, y);
    double t0 = eng_profile_now();
    int rc = conv2d_res(ctx, conv, x, res, act, act_param, y);
    conv_profile(ctx, conv, y, t0);
    return rc;
}

int eng_conv2d_pre(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_affine *pre,
                   const struct eng_tensor *x, struct eng_tensor *tmp, struct eng_tensor *y)
{
    if (!ctx->prof)
        return conv2d_pre(ctx, conv, pre, x, tmp, y);
    double t0 = eng_profile_now();
    int rc = conv2d_pre(ctx, conv, pre, x, tmp, y);
    conv_profile(ctx, conv, y, t0);
    return rc;
}
