/* winograd.c: F(4x4, 3x3) Winograd convolution: input/output transforms over NHWC channel vectors, 36 GEMMs per tile block. */
#include "engine/winograd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/arena.h"
#include "engine/error.h"
#include "engine/gemm.h"
#include "engine/sgemm.h"

#define WG_A 6   /* transform domain: 6x6 input patch per tile */
#define WG_M 4   /* output tile: 4x4 */
#define WG_N 36  /* WG_A * WG_A GEMMs */
#define WG_CB 8  /* channels per transform step: two SSE / one AVX vector, kept in registers */

/* Two ways to cut the tiles into blocks, chosen per layer by the size of its transformed
 * weights U (36 x cin x cout floats), as each GEMM call has OpenBLAS repack its U[xi]:
 *  - shared, for a large U (ResNet's layers: 0.6 to 9.4 MB): blocks of up to WG_SHARED_TILES
 *    tiles that all threads work on phase by phase: input transform (tiles split), the 36 GEMMs
 *    (split among the threads: each U[xi] packed once per block), output transform. Small
 *    per-thread blocks had every thread repack all of U for a few cycles of work per weight:
 *    the packing cost as much as the multiplies. V and M live in L3.
 *  - private, for a small U (DenseNet's 128 -> 32: 0.6 MB) and enough tiles: each thread runs
 *    its own blocks, V + M within WG_PRIVATE_BYTES so they stay in its L2 from the input
 *    transform through the GEMMs to the output transform. */
#define WG_SHARED_TILES 256
#define WG_SHARED_U_BYTES ((int64_t)1 << 20)
#define WG_PRIVATE_BYTES ((int64_t)640 << 10)
#define WG_PRIVATE_MIN_TILES 16
/* Below either, im2col on the packed GEMM wins (eng_winograd_use). */
#define WG_MIN_TILES 16
#define WG_MIN_TILE_MACS ((int64_t)1 << 17)

/* SALIENT_WINOGRAD, read once: "0" off, "1" wherever eligible and the tiles are not mostly
 * waste (tests of the transforms on small maps), else the per-call choice of eng_winograd_use. */
enum { WG_AUTO, WG_OFF, WG_ALWAYS };
static pthread_once_t wg_once = PTHREAD_ONCE_INIT;
static int wg_mode;

static void wg_read_env(void)
{
    const char *e = getenv("SALIENT_WINOGRAD");
    wg_mode = !e ? WG_AUTO : strcmp(e, "0") == 0 ? WG_OFF : strcmp(e, "1") == 0 ? WG_ALWAYS : WG_AUTO;
}

bool eng_winograd_eligible(const struct eng_conv_params *p)
{
    pthread_once(&wg_once, wg_read_env);
    return wg_mode != WG_OFF && p->kh == 3 && p->kw == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1 &&
           p->dil_w == 1 && p->groups == 1 && p->cin >= 8 && p->cout >= 8;
}

float *eng_winograd_pack(const char *name, const float *w, int cin, int cout)
{
    static const double G[WG_A][3] = {{1.0 / 4, 0, 0},
                                      {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                      {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                      {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                      {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                      {0, 0, 1}};
    size_t n = (size_t)WG_N * (size_t)cin * (size_t)cout;
    float *u = malloc(n * sizeof(float));
    if (!u) {
        eng_error("conv '%s': out of memory for %zu Winograd weights", name, n);
        return NULL;
    }
    for (int64_t ci = 0; ci < cin; ci++)
        for (int64_t oc = 0; oc < cout; oc++) {
            double g[3][3], gg[WG_A][3];
            for (int t = 0; t < 9; t++)
                g[t / 3][t % 3] = w[((int64_t)t * cin + ci) * cout + oc];
            for (int a = 0; a < WG_A; a++)
                for (int kx = 0; kx < 3; kx++)
                    gg[a][kx] = G[a][0] * g[0][kx] + G[a][1] * g[1][kx] + G[a][2] * g[2][kx];
            for (int a = 0; a < WG_A; a++)
                for (int b = 0; b < WG_A; b++)
                    u[((int64_t)(a * WG_A + b) * cin + ci) * cout + oc] =
                        (float)(gg[a][0] * G[b][0] + gg[a][1] * G[b][1] + gg[a][2] * G[b][2]);
        }
    return u;
}

bool eng_winograd_use(const struct eng_conv *conv, int64_t n, int64_t oh, int64_t ow)
{
    (void)n;
    if (!conv->wino && !conv->wino_pw)
        return false;
    /* Outputs computed per output wanted: a 7x7 map is 2x2 tiles, 64 computed for 49 (1.3);
     * a 2x2 map computes 16 for 4 (4.0), where 2.25 multiplies per 9 no longer pay for the
     * transforms. */
    int64_t th = (oh + WG_M - 1) / WG_M, tw = (ow + WG_M - 1) / WG_M;
    if (th * tw * WG_M * WG_M * 10 > oh * ow * 16)
        return false;
    if (!conv->pw.p || wg_mode == WG_ALWAYS)
        return true;
    /* Against im2col on the packed GEMM, the 36 transform-domain GEMMs need rows: with a few
     * tiles (batch 1 at 7x7 is 4) each streams its whole cin x cout matrix for a handful of rows,
     * and with narrow layers (DenseNet's 128 -> 32 at 14x14: 16 tiles) the transforms and the
     * three phases' hand-offs cost more than the multiplies saved. bench_conv, 2 threads, batch 1,
     * GFLOP/s (direct-equivalent) Winograd vs im2col: ResNet-50 512->512 at 7x7 37-84 vs 117-125,
     * DenseNet 128->32 at 14x14 63-90 vs 125-132 and at 7x7 55-79 vs 88-104; still Winograd at
     * 256->256 14x14 (16 tiles: 201-245 vs 42-170), 128->32 28x28 (49 tiles: 175 vs 128-140) and
     * everywhere at batch 8. */
    int64_t tiles = n * th * tw;
    return tiles >= WG_MIN_TILES && tiles * conv->p.cin * conv->p.cout >= WG_MIN_TILE_MACS;
}

/* ---- plan ---- */

struct wg_plan {
    int64_t th, tw, ntiles;
    bool shared;    /* one block at a time, all threads; else each thread its own blocks */
    int64_t block;  /* tiles per block */
    int64_t nblock;
    int tasks;      /* private: threads with blocks (and buffers) */
    int64_t per;    /* floats of one buffer (V + M), rounded to cache lines: from the block size
                       before evening out, so it grows with the batch, as the runners' scratch
                       (measured once at the largest batch) requires */
};

static void wg_plan_make(const struct eng_conv *c, int64_t n, int64_t oh, int64_t ow, int nthreads,
                         struct wg_plan *pl)
{
    int64_t cin = c->p.cin, cout = c->p.cout, nth = nthreads < 1 ? 1 : nthreads;
    pl->th = (oh + WG_M - 1) / WG_M;
    pl->tw = (ow + WG_M - 1) / WG_M;
    pl->ntiles = n * pl->th * pl->tw;
    pl->shared = WG_N * cin * cout * (int64_t)sizeof(float) > WG_SHARED_U_BYTES ||
                 pl->ntiles < nth * WG_PRIVATE_MIN_TILES;
    int64_t cap;
    if (pl->shared) {
        pl->block = cap = pl->ntiles < WG_SHARED_TILES ? pl->ntiles : WG_SHARED_TILES;
        pl->nblock = (pl->ntiles + pl->block - 1) / pl->block;
        pl->tasks = 1;
    } else {
        int64_t block = WG_PRIVATE_BYTES / (WG_N * (cin + cout) * (int64_t)sizeof(float));
        block = block < WG_PRIVATE_MIN_TILES ? WG_PRIVATE_MIN_TILES : block;
        block = block > WG_SHARED_TILES ? WG_SHARED_TILES : block;
        int64_t share = (pl->ntiles + nth - 1) / nth;
        block = cap = block > share ? share : block;
        /* As conv.c's tiles: a multiple of the threads' count of blocks, evened out. */
        int64_t nb = (pl->ntiles + block - 1) / block;
        nb = (nb + nth - 1) / nth * nth;
        pl->block = (pl->ntiles + nb - 1) / nb;
        pl->nblock = (pl->ntiles + pl->block - 1) / pl->block;
        pl->tasks = (int)(pl->nblock < nth ? pl->nblock : nth);
    }
    pl->per = (WG_N * cap * (cin + cout) + 15) / 16 * 16;
}

size_t eng_winograd_scratch_bytes(const struct eng_conv *conv, int64_t n, int64_t oh, int64_t ow, int nthreads)
{
    struct wg_plan pl;
    wg_plan_make(conv, n, oh, ow, nthreads, &pl);
    return (size_t)(pl.per * pl.tasks) * sizeof(float) + ENG_ARENA_ALIGN;
}

/* ---- transforms ---- */

struct wg_job {
    const struct eng_conv *c;
    const struct eng_tensor *x, *y;
    struct wg_plan pl;
    int pt, pl_;
    float *V, *M;     /* shared: the block's transformed inputs and GEMM outputs; private: the
                         first thread's (each thread's are per floats further on) */
    int64_t t0, t1;   /* shared: the block, tiles [t0, t1) */
};

/* Eight channels as one value: GCC's vector extension, two SSE registers on any x86-64, one AVX
 * register in the AVX2 clones below (same arithmetic, no FMA contraction, same results). */
typedef float wg_v8 __attribute__((vector_size(32)));

typedef int32_t wg_v8i __attribute__((vector_size(32)));

/* Loads and stores by memcpy (unaligned, no aliasing questions); macros rather than functions,
 * as a function returning a 32-byte vector would have an ABI that depends on -mavx. */
#define WG_LOAD(v, p) memcpy(&(v), (p), sizeof(wg_v8))
#define WG_STORE(p, v) memcpy((p), &(v), sizeof(wg_v8))

/* Eight channels of a partial chunk (cb < 8) or of a padding pixel (p NULL): zeros elsewhere. */
static inline void wg_load_part(wg_v8 *v, const float *p, int64_t cb)
{
    float t[WG_CB] = {0};
    for (int64_t c = 0; p && c < cb; c++)
        t[c] = p[c];
    memcpy(v, t, sizeof t);
}

/* The 1-D input transform B^T applied to six vectors in place. */
#define WG_BT(d0, d1, d2, d3, d4, d5, r)                                                                     \
    do {                                                                                                      \
        r[0] = 4.0f * d0 - 5.0f * d2 + d4;                                                                    \
        r[1] = (d3 + d4) - 4.0f * (d1 + d2);                                                                  \
        r[2] = (d4 - d3) + 4.0f * (d1 - d2);                                                                  \
        r[3] = (d4 - d2) + 2.0f * (d3 - d1);                                                                  \
        r[4] = (d4 - d2) - 2.0f * (d3 - d1);                                                                  \
        r[5] = 4.0f * d1 - 5.0f * d3 + d5;                                                                    \
    } while (0)

/* Not under ThreadSanitizer: the ifunc resolver that picks the clone runs while the loader
 * relocates the program, before TSan's runtime is up, and GCC instruments it anyway (crash). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define WG_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define WG_CLONES
#endif

/* Tile t's 6x6 input patch: src[i][k] points at pixel (i, k)'s channels, or is NULL in the
 * padding; true when the whole patch is inside the map. */
static inline bool wg_patch(const struct wg_job *j, int64_t t, const float *src[WG_A][WG_A])
{
    const struct eng_tensor *x = j->x;
    int64_t h = x->ne[1], w = x->ne[2], per_img = j->pl.th * j->pl.tw;
    int64_t b = t / per_img, r = t % per_img;
    int64_t iy0 = (r / j->pl.tw) * WG_M - j->pt, ix0 = (r % j->pl.tw) * WG_M - j->pl_;
    const char *base = (const char *)x->data + b * x->nb[0];
    for (int i = 0; i < WG_A; i++)
        for (int k = 0; k < WG_A; k++) {
            int64_t iy = iy0 + i, ix = ix0 + k;
            src[i][k] = iy >= 0 && iy < h && ix >= 0 && ix < w
                            ? (const float *)(base + iy * x->nb[1] + ix * x->nb[2])
                            : NULL;
        }
    return iy0 >= 0 && iy0 + WG_A <= h && ix0 >= 0 && ix0 + WG_A <= w;
}

/* Tiles [t0, t1) of the block starting at tile tb into V[xi][t - tb][c] (rows block apart). */
WG_CLONES
static void wg_input(const struct wg_job *j, int64_t tb, int64_t t0, int64_t t1, float *V)
{
    int64_t cin = j->c->p.cin, vs = j->pl.block * cin;
    for (int64_t t = t0; t < t1; t++) {
        const float *src[WG_A][WG_A];
        bool inside = wg_patch(j, t, src);
        float *vt = V + (t - tb) * cin;
        for (int64_t c0 = 0; c0 < cin; c0 += WG_CB) {
            int64_t cb = cin - c0 < WG_CB ? cin - c0 : WG_CB;
            wg_v8 u[WG_A][WG_A];
            /* u = B^T d, down each column of the patch */
            for (int k = 0; k < WG_A; k++) {
                wg_v8 d[WG_A];
                if (inside && cb == WG_CB)
                    for (int i = 0; i < WG_A; i++)
                        WG_LOAD(d[i], src[i][k] + c0);
                else
                    for (int i = 0; i < WG_A; i++)
                        wg_load_part(&d[i], src[i][k] ? src[i][k] + c0 : NULL, cb);
                wg_v8 r[WG_A];
                WG_BT(d[0], d[1], d[2], d[3], d[4], d[5], r);
                for (int i = 0; i < WG_A; i++)
                    u[i][k] = r[i];
            }
            /* V = u B, along each row, scattered to the 36 GEMM inputs */
            for (int i = 0; i < WG_A; i++) {
                wg_v8 v[WG_A];
                WG_BT(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], v);
                for (int k = 0; k < WG_A; k++) {
                    float *dst = vt + (int64_t)(i * WG_A + k) * vs + c0;
                    if (cb == WG_CB) {
                        WG_STORE(dst, v[k]);
                    } else {
                        for (int64_t c = 0; c < cb; c++)
                            dst[c] = v[k][c];
                    }
                }
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WG_FMA 1

/* wg_input with AVX2 and FMA, for cin a multiple of 8 (every layer of the shipped networks):
 * the same transform with B^T's multiply-adds fused (12 operations per 1-D transform instead
 * of 18) and whole 32-byte loads and stores (the generic version's memcpy vectors became
 * pairs of 16-byte moves through the stack). Rounding differs from wg_input by the fusing only.
 * DenseNet-121 at batch 1 spent 12% of its time in wg_input (its 3x3 layers have 32 outputs,
 * so the transform is large beside their GEMMs). Whole convolution, batch 1, 2 threads,
 * interleaved in one process: 128 -> 32 at 56x56 219 -> 252 GFLOP/s (direct-equivalent), at
 * 28x28 202 -> 255; 64 -> 64 at 56x56 207 -> 225; 256 -> 256 at 14x14 293 -> 308. */
#define WG_BT_FMA(d0, d1, d2, d3, d4, d5, r)                                                                 \
    do {                                                                                                      \
        __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);         \
        __m256 s12 = _mm256_add_ps(d1, d2), s34 = _mm256_add_ps(d3, d4);                                      \
        __m256 m12 = _mm256_sub_ps(d1, d2), m43 = _mm256_sub_ps(d4, d3);                                      \
        __m256 m42 = _mm256_sub_ps(d4, d2), m31 = _mm256_mul_ps(two, _mm256_sub_ps(d3, d1));                  \
        r[0] = _mm256_fmadd_ps(four, d0, _mm256_fnmadd_ps(five, d2, d4));                                     \
        r[1] = _mm256_fnmadd_ps(four, s12, s34);                                                              \
        r[2] = _mm256_fmadd_ps(four, m12, m43);                                                               \
        r[3] = _mm256_add_ps(m42, m31);                                                                       \
        r[4] = _mm256_sub_ps(m42, m31);                                                                       \
        r[5] = _mm256_fmadd_ps(four, d1, _mm256_fnmadd_ps(five, d3, d5));                                     \
    } while (0)

__attribute__((target("avx2,fma"))) static void wg_input_fma(const struct wg_job *j, int64_t tb, int64_t t0,
                                                             int64_t t1, float *V)
{
    int64_t cin = j->c->p.cin, vs = j->pl.block * cin;
    for (int64_t t = t0; t < t1; t++) {
        const float *src[WG_A][WG_A];
        wg_patch(j, t, src);
        float *vt = V + (t - tb) * cin;
        for (int64_t c0 = 0; c0 < cin; c0 += WG_CB) {
            __m256 u[WG_A][WG_A];
            for (int k = 0; k < WG_A; k++) { /* u = B^T d, down each column of the patch */
                __m256 d[WG_A], rr[WG_A];
                for (int i = 0; i < WG_A; i++)
                    d[i] = src[i][k] ? _mm256_loadu_ps(src[i][k] + c0) : _mm256_setzero_ps();
                WG_BT_FMA(d[0], d[1], d[2], d[3], d[4], d[5], rr);
                for (int i = 0; i < WG_A; i++)
                    u[i][k] = rr[i];
            }
            for (int i = 0; i < WG_A; i++) { /* V = u B, along each row, to the 36 GEMM inputs */
                __m256 v[WG_A];
                WG_BT_FMA(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], v);
                for (int k = 0; k < WG_A; k++)
                    _mm256_storeu_ps(vt + (int64_t)(i * WG_A + k) * vs + c0, v[k]);
            }
        }
    }
}
#else
#define WG_FMA 0
#endif

/* Whether the AVX2 + FMA transforms run on this CPU for a side of this many channels. */
static bool wg_fma_for(int64_t channels)
{
#if WG_FMA
    return channels % WG_CB == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    (void)channels;
    return false;
#endif
}

/* The input transform on the best code this CPU runs. */
static void wg_input_any(const struct wg_job *j, int64_t tb, int64_t t0, int64_t t1, float *V)
{
#if WG_FMA
    if (wg_fma_for(j->c->p.cin)) {
        wg_input_fma(j, tb, t0, t1, V);
        return;
    }
#endif
    wg_input(j, tb, t0, t1, V);
}

/* GEMMs xi in [xi0, xi1) of a block of rows tiles: M[xi] = V[xi] U[xi]. */
static void wg_gemms(const struct wg_job *j, const float *V, float *M, int64_t rows, int xi0, int xi1)
{
    int64_t cin = j->c->p.cin, cout = j->c->p.cout, blk = j->pl.block;
    for (int xi = xi0; xi < xi1; xi++) {
        if (j->c->wino_pw)
            eng_sgemm_packed(rows, V + xi * blk * cin, cin, &j->c->wino_pw[xi], 0, cout, M + xi * blk * cout, cout,
                             NULL);
        else
            eng_gemm_serial(false, false, rows, cout, cin, 1.0f, V + xi * blk * cin, cin,
                            j->c->wino + (int64_t)xi * cin * cout, cout, 0.0f, M + xi * blk * cout, cout);
    }
}

/* The 1-D output transform A^T: six vectors to four. */
#define WG_AT(m0, m1, m2, m3, m4, m5, r)                                                                     \
    do {                                                                                                      \
        r[0] = m0 + (m1 + m2) + (m3 + m4);                                                                    \
        r[1] = (m1 - m2) + 2.0f * (m3 - m4);                                                                  \
        r[2] = (m1 + m2) + 4.0f * (m3 + m4);                                                                  \
        r[3] = (m1 - m2) + 8.0f * (m3 - m4) + m5;                                                             \
    } while (0)

/* Tile t's output block in y: its first pixel (row oy0, column ox0 of its image) and how many
 * of its 4 rows (ny) and columns (nx) lie inside y. */
static inline char *wg_out_tile(const struct wg_job *j, int64_t t, int64_t *ny, int64_t *nx)
{
    const struct eng_tensor *y = j->y;
    int64_t per_img = j->pl.th * j->pl.tw, b = t / per_img, r = t % per_img;
    int64_t oy0 = (r / j->pl.tw) * WG_M, ox0 = (r % j->pl.tw) * WG_M;
    *ny = y->ne[1] - oy0 < WG_M ? y->ne[1] - oy0 : WG_M;
    *nx = y->ne[2] - ox0 < WG_M ? y->ne[2] - ox0 : WG_M;
    return (char *)y->data + b * y->nb[0] + oy0 * y->nb[1] + ox0 * y->nb[2];
}

/* Tiles [t0, t1) of the block at tb: Y = A^T M A + bias, activation, into y's valid pixels. */
WG_CLONES
static void wg_output(const struct wg_job *j, int64_t tb, int64_t t0, int64_t t1, const float *M)
{
    const struct eng_tensor *y = j->y;
    const struct eng_conv_params *p = &j->c->p;
    int64_t cout = p->cout, ms = j->pl.block * cout;
    const float *bias = j->c->bias;
    bool relu = p->act == ENG_ACT_RELU;
    const wg_v8 zero = {0};
    for (int64_t t = t0; t < t1; t++) {
        int64_t ny, nx;
        char *base = wg_out_tile(j, t, &ny, &nx);
        const float *mt = M + (t - tb) * cout;
        for (int64_t c0 = 0; c0 < cout; c0 += WG_CB) {
            int64_t cb = cout - c0 < WG_CB ? cout - c0 : WG_CB;
            wg_v8 u[WG_M][WG_A];
            wg_v8 bv = zero;
            if (bias)
                wg_load_part(&bv, bias + c0, cb);
            /* u = A^T m, down each column */
            for (int k = 0; k < WG_A; k++) {
                wg_v8 m[WG_A];
                for (int i = 0; i < WG_A; i++) {
                    const float *s = mt + (int64_t)(i * WG_A + k) * ms + c0;
                    if (cb == WG_CB)
                        WG_LOAD(m[i], s);
                    else
                        wg_load_part(&m[i], s, cb);
                }
                wg_v8 r4[WG_M];
                WG_AT(m[0], m[1], m[2], m[3], m[4], m[5], r4);
                for (int i = 0; i < WG_M; i++)
                    u[i][k] = r4[i];
            }
            /* Y = u A, along each row, + bias, activation, stored */
            for (int i = 0; i < ny; i++) {
                wg_v8 o[WG_M];
                WG_AT(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], o);
                char *row = base + i * y->nb[1];
                for (int k = 0; k < nx; k++) {
                    wg_v8 v = o[k] + bv;
                    if (relu) /* v < 0 is all ones where true: those lanes become +0, NaN passes */
                        v = (wg_v8)((wg_v8i)v & ~(v < zero));
                    float *dst = (float *)(row + k * y->nb[2]) + c0;
                    if (cb == WG_CB) {
                        WG_STORE(dst, v);
                    } else {
                        for (int64_t c = 0; c < cb; c++)
                            dst[c] = v[c];
                    }
                    if (!relu)
                        eng_act_rows(p->act, p->act_param, dst, 1, cb, cb);
                }
            }
        }
    }
}

#if WG_FMA
/* wg_output with AVX2 and FMA, for cout a multiple of 8: A^T's multiply-adds fused, whole
 * 32-byte loads and stores (the generic version's memcpy vectors are pairs of 16-byte moves
 * through the stack). Rounding differs from wg_output by the fusing only. */
#define WG_AT_FMA(m0, m1, m2, m3, m4, m5, r)                                                                 \
    do {                                                                                                      \
        __m256 a12 = _mm256_add_ps(m1, m2), s12 = _mm256_sub_ps(m1, m2);                                      \
        __m256 a34 = _mm256_add_ps(m3, m4), s34 = _mm256_sub_ps(m3, m4);                                      \
        r[0] = _mm256_add_ps(_mm256_add_ps(m0, a12), a34);                                                    \
        r[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), s34, s12);                                               \
        r[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), a34, a12);                                               \
        r[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), s34, s12), m5);                            \
    } while (0)

__attribute__((target("avx2,fma"))) static void wg_output_fma(const struct wg_job *j, int64_t tb, int64_t t0,
                                                              int64_t t1, const float *M)
{
    const struct eng_tensor *y = j->y;
    const struct eng_conv_params *p = &j->c->p;
    int64_t cout = p->cout, ms = j->pl.block * cout;
    const float *bias = j->c->bias;
    bool relu = p->act == ENG_ACT_RELU;
    for (int64_t t = t0; t < t1; t++) {
        int64_t ny, nx;
        char *base = wg_out_tile(j, t, &ny, &nx);
        const float *mt = M + (t - tb) * cout;
        for (int64_t c0 = 0; c0 < cout; c0 += WG_CB) {
            __m256 u[WG_M][WG_A];
            __m256 bv = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();
            for (int k = 0; k < WG_A; k++) { /* u = A^T m, down each column */
                __m256 m[WG_A], r4[WG_M];
                for (int i = 0; i < WG_A; i++)
                    m[i] = _mm256_loadu_ps(mt + (int64_t)(i * WG_A + k) * ms + c0);
                WG_AT_FMA(m[0], m[1], m[2], m[3], m[4], m[5], r4);
                for (int i = 0; i < WG_M; i++)
                    u[i][k] = r4[i];
            }
            for (int i = 0; i < ny; i++) { /* Y = u A, along each row, + bias, activation, stored */
                __m256 o[WG_M];
                WG_AT_FMA(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5], o);
                char *row = base + i * y->nb[1];
                for (int k = 0; k < nx; k++) {
                    __m256 v = _mm256_add_ps(o[k], bv);
                    if (relu) /* as the generic version: NaN passes (max returns its second operand) */
                        v = _mm256_max_ps(_mm256_setzero_ps(), v);
                    float *dst = (float *)(row + k * y->nb[2]) + c0;
                    _mm256_storeu_ps(dst, v);
                    if (!relu)
                        eng_act_rows(p->act, p->act_param, dst, 1, WG_CB, WG_CB);
                }
            }
        }
    }
}
#endif

/* The output transform on the best code this CPU runs. */
static void wg_output_any(const struct wg_job *j, int64_t tb, int64_t t0, int64_t t1, const float *M)
{
#if WG_FMA
    if (wg_fma_for(j->c->p.cout)) {
        wg_output_fma(j, tb, t0, t1, M);
        return;
    }
#endif
    wg_output(j, tb, t0, t1, M);
}

/* Private blocks: each thread transforms, multiplies and writes back its own. */
static void wg_private_part(void *arg, int ith, int nth)
{
    const struct wg_job *j = arg;
    float *V = j->V + ith * j->pl.per, *M = V + WG_N * j->pl.block * j->c->p.cin;
    int64_t b0, b1;
    eng_split(j->pl.nblock, ith, nth, &b0, &b1);
    for (int64_t bi = b0; bi < b1; bi++) {
        int64_t t0 = bi * j->pl.block, t1 = t0 + j->pl.block < j->pl.ntiles ? t0 + j->pl.block : j->pl.ntiles;
        wg_input_any(j, t0, t0, t1, V);
        wg_gemms(j, V, M, t1 - t0, 0, WG_N);
        wg_output_any(j, t0, t0, t1, M);
    }
}

/* A shared block, phase by phase: tiles split for the transforms, the 36 GEMMs among threads. */
static void wg_input_part(void *arg, int ith, int nth)
{
    const struct wg_job *j = arg;
    int64_t a, b;
    eng_split(j->t1 - j->t0, ith, nth, &a, &b);
    wg_input_any(j, j->t0, j->t0 + a, j->t0 + b, j->V);
}

static void wg_gemm_part(void *arg, int ith, int nth)
{
    const struct wg_job *j = arg;
    int64_t x0, x1;
    eng_split(WG_N, ith, nth, &x0, &x1);
    wg_gemms(j, j->V, j->M, j->t1 - j->t0, (int)x0, (int)x1);
}

static void wg_output_part(void *arg, int ith, int nth)
{
    const struct wg_job *j = arg;
    int64_t a, b;
    eng_split(j->t1 - j->t0, ith, nth, &a, &b);
    wg_output_any(j, j->t0, j->t0 + a, j->t0 + b, j->M);
}

int eng_winograd_conv2d(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x,
                        struct eng_tensor *y, int pad_t, int pad_l)
{
    struct wg_job j = {.c = conv, .x = x, .y = y, .pt = pad_t, .pl_ = pad_l};
    wg_plan_make(conv, y->ne[0], y->ne[1], y->ne[2], ctx->nthreads, &j.pl);
    size_t mark = eng_arena_mark(&ctx->scratch);
    j.V = eng_arena_floats(&ctx->scratch, (size_t)(j.pl.per * j.pl.tasks));
    if (!j.V) {
        char why[512]; /* the arena's message lives in the buffer eng_error is about to overwrite */
        snprintf(why, sizeof why, "%s", eng_errmsg());
        return eng_error("conv '%s': Winograd scratch: %s", conv->name, why);
    }
    j.M = j.V + WG_N * j.pl.block * conv->p.cin;
    if (!j.pl.shared) {
        eng_parallel(ctx, j.pl.tasks, wg_private_part, &j);
        eng_arena_rewind(&ctx->scratch, mark);
        return 0;
    }
    /* Transforms: a few tiles are not worth a second thread's wake-up. */
    int64_t work = j.pl.block * (conv->p.cin + conv->p.cout);
    int ttasks = work < 4096 ? 1 : ctx->nthreads;
    for (int64_t b = 0; b < j.pl.nblock; b++) {
        j.t0 = b * j.pl.block;
        j.t1 = j.t0 + j.pl.block < j.pl.ntiles ? j.t0 + j.pl.block : j.pl.ntiles;
        eng_parallel(ctx, ttasks, wg_input_part, &j);
        eng_parallel(ctx, ctx->nthreads, wg_gemm_part, &j);
        eng_parallel(ctx, ttasks, wg_output_part, &j);
    }
    eng_arena_rewind(&ctx->scratch, mark);
    return 0;
}
