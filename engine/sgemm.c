/* sgemm.c: packed-weight GEMM, a 6x16 AVX2/FMA micro-kernel with bias, residual and ReLU fused in its store. */
#include "engine/sgemm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SG_X86 1
#else
#define SG_X86 0
#endif

#define MR 6
#define NR ENG_SGEMM_NR
/* Blocking sized for AMD EPYC's 32 KiB L1d and 512 KiB L2 per core: a KC x 16 panel of B
 * (16 KiB) stays in L1 while the MC x KC block of A (144 KiB) streams from L2. On the loaded
 * test machine bench_conv --cpu could not tell KC 128/512, MC 72 or packing A from these
 * (all within +-4%). The maxima bound the per-thread A buffer. */
#define MC_DEFAULT 144
#define KC_DEFAULT 256
#define MC_MAX 288
#define KC_MAX 512
_Static_assert(ENG_SGEMM_RUNS_MAX_K <= KC_MAX, "a runs call is one K block");
/* Without a prologue A is read in place (six row streams), whatever the call's shape, unless
 * SALIENT_GEMM_PACK_ROWS (tuning only) asks to pack calls of at most that many rows and at least
 * PACK_MIN_COLS columns. Packing them (96 rows) had paid while a call's last rows went through
 * copies of six whole rows of A (15-20% on ResNet-50's 49-row layer4); with kernel_tail reading
 * only its rows it costs more than it saves: in-process interleaved, 2 threads, packed ->
 * in place, 49 x 4608 x 512 122.6 -> 135.7 GFLOP/s, 49 x 2048 x 512 135.2 -> 146.6, 8 x 768 x
 * 3072 105.5 -> 112.6, the rest level (49 x 512 x 2048, 96 x 1024 x 1024, 1 x 2048 x 1000). */
#define PACK_ROWS_DEFAULT 0
#define PACK_MIN_COLS 256
/* The next B block is prefetched in calls of at most this many rows (see the loop below):
 * with few row tiles per block a block of weights is used a few times only and comes from
 * memory at batch 1 (ResNet-50's layer4 1x1 at 49 rows, B cold, 2 threads: 107 -> 116-130
 * GFLOP/s; its 3x3 as a 49 x 4608 x 512 GEMM: 104-108 -> 114-117); with many rows the
 * blocks are in cache anyway and the prefetches cost 2-4% (3136 x 64 x 256, hot). */
#define PREFETCH_MAX_ROWS 256
/* The next A block is prefetched in calls of more than PREFETCH_MAX_ROWS rows and at most
 * this many columns (see the loop below). */
#define PREFETCH_A_MAX_COLS 64
/* Floats past the packed A that pack_a's last store may write (A buffers are this much longer). */
#define PACK_SLACK 8

static pthread_once_t sg_once = PTHREAD_ONCE_INIT;
static bool sg_on;
static int sg_mc = MC_DEFAULT, sg_kc = KC_DEFAULT;
static bool sg_pack_a; /* SALIENT_GEMM_PACK_A: pack A even without a prologue (tuning only) */
static int sg_pack_rows = PACK_ROWS_DEFAULT; /* SALIENT_GEMM_PACK_ROWS (tuning only) */
static pthread_key_t sg_key; /* each thread's A buffer, freed when the thread exits */
static bool sg_key_ok;

static int env_int(const char *name, int def, int lo, int hi, int mult)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    int v = atoi(s);
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v / mult * mult;
}

static void sg_init(void)
{
#if SG_X86
    __builtin_cpu_init();
    const char *g = getenv("SALIENT_GEMM");
    sg_on = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !(g && strcmp(g, "openblas") == 0);
#endif
    sg_mc = env_int("SALIENT_GEMM_MC", MC_DEFAULT, MR, MC_MAX, MR);
    sg_kc = env_int("SALIENT_GEMM_KC", KC_DEFAULT, 8, KC_MAX, 1);
    sg_pack_a = getenv("SALIENT_GEMM_PACK_A") != NULL;
    sg_pack_rows = env_int("SALIENT_GEMM_PACK_ROWS", PACK_ROWS_DEFAULT, 0, 1 << 20, 1);
    sg_key_ok = pthread_key_create(&sg_key, free) == 0;
}

bool eng_sgemm_enabled(void)
{
    pthread_once(&sg_once, sg_init);
    return sg_on;
}

int64_t eng_packed_b_floats(int64_t k, int64_t n)
{
    return (n + NR - 1) / NR * k * NR;
}

void eng_pack_b_into(struct eng_packed_b *pb, float *dst, const float *b, int64_t ldb, int64_t k, int64_t n,
                     bool trans)
{
    int64_t panels = (n + NR - 1) / NR;
    for (int64_t j = 0; j < panels; j++) {
        float *d = dst + j * k * NR;
        int64_t cols = n - j * NR < NR ? n - j * NR : NR;
        if (trans) {
            for (int64_t q = 0; q < cols; q++) {
                const float *src = b + (j * NR + q) * ldb;
                for (int64_t p = 0; p < k; p++)
                    d[p * NR + q] = src[p];
            }
            for (int64_t p = 0; p < k && cols < NR; p++)
                memset(d + p * NR + cols, 0, (size_t)(NR - cols) * sizeof(float));
            continue;
        }
        for (int64_t p = 0; p < k; p++) {
            memcpy(d + p * NR, b + p * ldb + j * NR, (size_t)cols * sizeof(float));
            memset(d + p * NR + cols, 0, (size_t)(NR - cols) * sizeof(float));
        }
    }
    pb->p = dst;
    pb->k = k;
    pb->n = n;
}

int eng_pack_b(struct eng_packed_b *pb, const char *name, const float *b, int64_t ldb, int64_t k, int64_t n)
{
    memset(pb, 0, sizeof *pb);
    if (k < 1 || n < 1 || ldb < n)
        return eng_error("pack '%s': bad GEMM weights k=%lld n=%lld ldb=%lld", name ? name : "", (long long)k,
                         (long long)n, (long long)ldb);
    size_t bytes = (size_t)eng_packed_b_floats(k, n) * sizeof(float);
    float *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p)
        return eng_error("pack '%s': out of memory for %lld x %lld packed weights", name ? name : "", (long long)k,
                         (long long)n);
    eng_pack_b_into(pb, p, b, ldb, k, n, false);
    return 0;
}

void eng_packed_b_free(struct eng_packed_b *pb)
{
    free(pb->p);
    pb->p = NULL;
    pb->k = pb->n = 0;
}

void eng_packed_b_scale_col(struct eng_packed_b *pb, int64_t col, double s)
{
    float *d = pb->p + (col / NR) * pb->k * NR + col % NR;
    for (int64_t p = 0; p < pb->k; p++)
        d[p * NR] = (float)(d[p * NR] * s);
}

#if SG_X86

/* A's prologue (a_scale, a_shift, a_relu) on eight values at column k (absolute). */
__attribute__((target("avx2,fma"))) static inline __m256 pro8(__m256 v, const float *sc, const float *sh, bool relu,
                                                              int64_t k)
{
    if (sc && sh)
        v = _mm256_fmadd_ps(v, _mm256_loadu_ps(sc + k), _mm256_loadu_ps(sh + k));
    else if (sc)
        v = _mm256_mul_ps(v, _mm256_loadu_ps(sc + k));
    else if (sh)
        v = _mm256_add_ps(v, _mm256_loadu_ps(sh + k));
    return relu ? _mm256_max_ps(v, _mm256_setzero_ps()) : v;
}

/* Rows [0, mc) x columns [0, kc) of A into MR-row panels: panel i holds A[i*MR + r][p] at
 * [p * MR + r]; rows past mc are zero (their products are never stored). Eight columns at a
 * time: six row vectors through the prologue, transposed in registers, each column's six
 * values stored as one 8-float store that the next column's overwrites in part (the last one
 * writes 2 floats past the panel: into the next panel, packed later, or the buffers' slack).
 * The next panel's rows are prefetched meanwhile: A is an activation written layers ago
 * (DenseNet's concatenation buffer), and rows of kc floats are too short a stream for the
 * hardware prefetcher; DenseNet-121 at batch 1 spent 10% of its time here. 1 thread, A cold,
 * with DenseNet's BN + ReLU prologue, against one value at a time: 784 x 512 x 128 58.5 ->
 * 68.0 GFLOP/s, 196 x 1024 x 128 58.3 -> 65.8; 2 threads 196 x 800 x 128 91.7 -> 104.2. */
__attribute__((target("avx2,fma"))) static void pack_a(const float *a, int64_t lda, int64_t mc, int64_t kc, int64_t k0,
                                                       const struct eng_sgemm_ops *op, float *restrict dst)
{
    const float *sc = op && op->a_scale ? op->a_scale + k0 : NULL;
    const float *sh = op && op->a_shift ? op->a_shift + k0 : NULL;
    bool relu = op && op->a_relu;
    int64_t kc8 = kc / 8 * 8;
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int rows = mc - i0 < MR ? (int)(mc - i0) : MR;
        const float *src = a + i0 * lda;
        bool next = i0 + MR < mc; /* the next panel's rows, a line per row every 16 columns */
        for (int64_t p = 0; p < kc8; p += 8) {
            if (next && (p & 15) == 0)
                for (int r = 0; r < MR; r++)
                    _mm_prefetch((const char *)(src + (MR + r) * lda + p), _MM_HINT_T0);
            __m256 v[8];
            for (int r = 0; r < 8; r++)
                v[r] = r < rows ? pro8(_mm256_loadu_ps(src + r * lda + p), sc, sh, relu, p) : _mm256_setzero_ps();
            /* 8 x 8 transpose: t[q] holds column p + q's eight rows (six real) */
            __m256 u0 = _mm256_unpacklo_ps(v[0], v[1]), u1 = _mm256_unpackhi_ps(v[0], v[1]);
            __m256 u2 = _mm256_unpacklo_ps(v[2], v[3]), u3 = _mm256_unpackhi_ps(v[2], v[3]);
            __m256 u4 = _mm256_unpacklo_ps(v[4], v[5]), u5 = _mm256_unpackhi_ps(v[4], v[5]);
            __m256 u6 = _mm256_unpacklo_ps(v[6], v[7]), u7 = _mm256_unpackhi_ps(v[6], v[7]);
            __m256 s0 = _mm256_shuffle_ps(u0, u2, 0x44), s1 = _mm256_shuffle_ps(u0, u2, 0xee);
            __m256 s2 = _mm256_shuffle_ps(u1, u3, 0x44), s3 = _mm256_shuffle_ps(u1, u3, 0xee);
            __m256 s4 = _mm256_shuffle_ps(u4, u6, 0x44), s5 = _mm256_shuffle_ps(u4, u6, 0xee);
            __m256 s6 = _mm256_shuffle_ps(u5, u7, 0x44), s7 = _mm256_shuffle_ps(u5, u7, 0xee);
            __m256 t[8] = {_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
                           _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
                           _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
                           _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
            for (int q = 0; q < 8; q++)
                _mm256_storeu_ps(dst + (p + q) * MR, t[q]);
        }
        for (int64_t p = kc8; p < kc; p++)
            for (int r = 0; r < MR; r++) {
                float x = 0.0f;
                if (r < rows) {
                    x = src[r * lda + p];
                    if (sc)
                        x *= sc[p];
                    if (sh)
                        x += sh[p];
                    if (relu)
                        x = x > 0.0f ? x : 0.0f;
                }
                dst[p * MR + r] = x;
            }
    }
}

enum { CLAMP_NONE, CLAMP_RELU, CLAMP_RELU6, CLAMP_GELU };

/* GELU (erf) of 8 values: activation.c's erf_fast (the same rational approximation, clamp and
 * coefficients: activation.h's ENG_ERF_*) on vectors, so Swin's fc1 applies it to the
 * accumulators instead of calling eng_act_rows on every stored tile (that call was 4% of Swin-T
 * at batch 8). NaN passes through (max/min return their second operand when one is NaN). */
__attribute__((target("avx2,fma"))) static inline __m256 gelu8(__m256 v)
{
#define SG_C(name) _mm256_set1_ps(ENG_ERF_##name)
    __m256 x = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
    x = _mm256_min_ps(SG_C(CLAMP), _mm256_max_ps(_mm256_set1_ps(-ENG_ERF_CLAMP), x));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, SG_C(P6), SG_C(P5));
    p = _mm256_fmadd_ps(x2, p, SG_C(P4));
    p = _mm256_fmadd_ps(x2, p, SG_C(P3));
    p = _mm256_fmadd_ps(x2, p, SG_C(P2));
    p = _mm256_fmadd_ps(x2, p, SG_C(P1));
    p = _mm256_fmadd_ps(x2, p, SG_C(P0));
    __m256 q = _mm256_fmadd_ps(x2, SG_C(Q4), SG_C(Q3));
    q = _mm256_fmadd_ps(x2, q, SG_C(Q2));
    q = _mm256_fmadd_ps(x2, q, SG_C(Q1));
    q = _mm256_fmadd_ps(x2, q, SG_C(Q0));
#undef SG_C
    __m256 erf = _mm256_div_ps(_mm256_mul_ps(x, p), q);
    __m256 half_v = _mm256_mul_ps(_mm256_set1_ps(0.5f), v);
    return _mm256_fmadd_ps(half_v, erf, half_v);
}

/* C[6 x 16] (+)= A x B panel over kc; on the last K block, + bias + residual, clamp. A's row r
 * element p is at a + r * ars + p * aks: a packed panel (ars 1, aks 6) or A itself (ars lda,
 * aks 1); or, with runs (run < kc), A's rows are kc / run runs of run elements, run q starting
 * at a + q * a_run (a convolution's kernel rows read in place from its input, aks 1). first: C
 * is not read (the product of this block is the whole sum so far). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
kernel_body(const bool runs, int64_t kc, int64_t run, int64_t a_run, const float *restrict a, int64_t ars, int64_t aks,
            const float *restrict b, const float *pf, int64_t pf_n, float *c, int64_t ldc, bool first, bool last,
            const float *bias, const float *res, int64_t ldr, int clamp)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    /* C's lines, and the residual's on the last K block, for this tile and the next one down
     * (rows 6-11, in the caller's next call), are fetched while the K loop runs, not when the
     * epilogue reaches them: at batch 8 both are tens of megabytes streamed from memory, and a
     * short K (ResNet-50's layer1: 64) left each tile stalled on its residual. 2 threads,
     * in-process interleaved, with residual: 25088 x 64 x 256 52-63 -> 71-101 GFLOP/s, 6272 x
     * 128 x 512 69-87 -> 85-117, 1568 x 256 x 1024 113-116 -> 133-134, 392 x 512 x 2048 116-122
     * -> 128-132. Rows past C's end are never read: a prefetch does not fault. */
    for (int r = 0; r < 2 * MR; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 15), _MM_HINT_T0);
        if (last && res) {
            _mm_prefetch((const char *)(res + r * ldr), _MM_HINT_T0);
            _mm_prefetch((const char *)(res + r * ldr + 15), _MM_HINT_T0);
        }
    }
    if (first) {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    } else {
        c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
        c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    }
/* One row of the 6x16 tile: broadcast A[r][p], two FMAs into the row's accumulators. */
#define SG_ROW(ar, acc0, acc1)                                                                                    \
    x = _mm256_broadcast_ss((ar) + o), acc0 = _mm256_fmadd_ps(x, b0, acc0), acc1 = _mm256_fmadd_ps(x, b1, acc1)
/* One step of K: a row of the B panel times a column of A's six rows. */
#define SG_STEP                                                                                                   \
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), x;                                                 \
    int64_t o = p * aks;                                                                                          \
    SG_ROW(a0, c00, c01);                                                                                         \
    SG_ROW(a1, c10, c11);                                                                                         \
    SG_ROW(a2, c20, c21);                                                                                         \
    SG_ROW(a3, c30, c31);                                                                                         \
    SG_ROW(a4, c40, c41);                                                                                         \
    SG_ROW(a5, c50, c51)
/* Steps [0, n) of A's rows from ar, the first pn of them prefetching pf's lines: pf_n lines of
 * the next B block (a panel row is one 64-byte line), one per step, fetched while this block
 * computes, so a block of weights never waits on memory. */
#define SG_STEPS(ar, n, pn, pf)                                                                                   \
    do {                                                                                                          \
        const float *a0 = (ar), *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars, *a4 = a3 + ars, *a5 = a4 + ars;    \
        int64_t p = 0;                                                                                            \
        _Pragma("GCC unroll 4") for (; p < (pn); p++, b += NR)                                                    \
        {                                                                                                         \
            _mm_prefetch((const char *)((pf) + p * NR), _MM_HINT_T0);                                             \
            SG_STEP;                                                                                              \
        }                                                                                                         \
        _Pragma("GCC unroll 4") for (; p < (n); p++, b += NR)                                                     \
        {                                                                                                         \
            SG_STEP;                                                                                              \
        }                                                                                                         \
    } while (0)
    if (!runs)
        SG_STEPS(a, kc, pf_n, pf);
    else /* one K block per call (eng_sgemm_packed_runs): no next block to prefetch */
        for (int64_t q = 0; q < kc; q += run)
            SG_STEPS(a + q / run * a_run, run, 0, pf);
#undef SG_STEPS
#undef SG_STEP
#undef SG_ROW
    if (last) {
        if (bias) {
            __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
            c00 = _mm256_add_ps(c00, b0), c01 = _mm256_add_ps(c01, b1);
            c10 = _mm256_add_ps(c10, b0), c11 = _mm256_add_ps(c11, b1);
            c20 = _mm256_add_ps(c20, b0), c21 = _mm256_add_ps(c21, b1);
            c30 = _mm256_add_ps(c30, b0), c31 = _mm256_add_ps(c31, b1);
            c40 = _mm256_add_ps(c40, b0), c41 = _mm256_add_ps(c41, b1);
            c50 = _mm256_add_ps(c50, b0), c51 = _mm256_add_ps(c51, b1);
        }
        if (res) {
            c00 = _mm256_add_ps(c00, _mm256_loadu_ps(res)), c01 = _mm256_add_ps(c01, _mm256_loadu_ps(res + 8));
            res += ldr;
            c10 = _mm256_add_ps(c10, _mm256_loadu_ps(res)), c11 = _mm256_add_ps(c11, _mm256_loadu_ps(res + 8));
            res += ldr;
            c20 = _mm256_add_ps(c20, _mm256_loadu_ps(res)), c21 = _mm256_add_ps(c21, _mm256_loadu_ps(res + 8));
            res += ldr;
            c30 = _mm256_add_ps(c30, _mm256_loadu_ps(res)), c31 = _mm256_add_ps(c31, _mm256_loadu_ps(res + 8));
            res += ldr;
            c40 = _mm256_add_ps(c40, _mm256_loadu_ps(res)), c41 = _mm256_add_ps(c41, _mm256_loadu_ps(res + 8));
            res += ldr;
            c50 = _mm256_add_ps(c50, _mm256_loadu_ps(res)), c51 = _mm256_add_ps(c51, _mm256_loadu_ps(res + 8));
        }
        if (clamp == CLAMP_RELU || clamp == CLAMP_RELU6) {
            __m256 z = _mm256_setzero_ps();
            c00 = _mm256_max_ps(c00, z), c01 = _mm256_max_ps(c01, z), c10 = _mm256_max_ps(c10, z);
            c11 = _mm256_max_ps(c11, z), c20 = _mm256_max_ps(c20, z), c21 = _mm256_max_ps(c21, z);
            c30 = _mm256_max_ps(c30, z), c31 = _mm256_max_ps(c31, z), c40 = _mm256_max_ps(c40, z);
            c41 = _mm256_max_ps(c41, z), c50 = _mm256_max_ps(c50, z), c51 = _mm256_max_ps(c51, z);
        }
        if (clamp == CLAMP_RELU6) {
            __m256 s = _mm256_set1_ps(6.0f);
            c00 = _mm256_min_ps(c00, s), c01 = _mm256_min_ps(c01, s), c10 = _mm256_min_ps(c10, s);
            c11 = _mm256_min_ps(c11, s), c20 = _mm256_min_ps(c20, s), c21 = _mm256_min_ps(c21, s);
            c30 = _mm256_min_ps(c30, s), c31 = _mm256_min_ps(c31, s), c40 = _mm256_min_ps(c40, s);
            c41 = _mm256_min_ps(c41, s), c50 = _mm256_min_ps(c50, s), c51 = _mm256_min_ps(c51, s);
        }
        if (clamp == CLAMP_GELU) {
            c00 = gelu8(c00), c01 = gelu8(c01), c10 = gelu8(c10), c11 = gelu8(c11), c20 = gelu8(c20);
            c21 = gelu8(c21), c30 = gelu8(c30), c31 = gelu8(c31), c40 = gelu8(c40), c41 = gelu8(c41);
            c50 = gelu8(c50), c51 = gelu8(c51);
        }
    }
    _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10), _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* kernel_body's two instances: A's rows whole (every GEMM), or in runs (eng_sgemm_packed_runs),
 * apart so the plain kernel keeps its single loop over K (the runs' outer loop in it had cost
 * 2-4% in-process, single thread, on 49 x 4608 x 512 and 196 x 512 x 2048). */
__attribute__((target("avx2,fma"))) static void kernel_6x16(int64_t kc, const float *restrict a, int64_t ars,
                                                            int64_t aks, const float *restrict b, const float *pf,
                                                            int64_t pf_n, float *c, int64_t ldc, bool first,
                                                            bool last, const float *bias, const float *res,
                                                            int64_t ldr, int clamp)
{
    kernel_body(false, kc, kc, 0, a, ars, aks, b, pf, pf_n, c, ldc, first, last, bias, res, ldr, clamp);
}

__attribute__((target("avx2,fma"))) static void kernel_runs(int64_t kc, int64_t run, int64_t a_run,
                                                            const float *restrict a, int64_t ars, int64_t aks,
                                                            const float *restrict b, float *c, int64_t ldc,
                                                            const float *bias, const float *res, int64_t ldr,
                                                            int clamp)
{
    kernel_body(true, kc, run, a_run, a, ars, aks, b, NULL, 0, c, ldc, true, true, bias, res, ldr, clamp);
}

/* The last 1-5 rows of a call, 16 columns wide: kernel_6x16's step, store and epilogue on mr
 * accumulator pairs (mr a constant in each instance below, so the arrays live in registers).
 * Through the 6x16 kernel these rows cost a whole tile plus copies in and out: 49-row calls
 * (ResNet-50's layer4 at batch 1) did 54 rows of work. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
kernel_rows(const int mr, int64_t kc, const float *restrict a, int64_t ars, int64_t aks, const float *restrict b,
            float *c, int64_t ldc, bool first, bool last, const float *bias, const float *res, int64_t ldr, int clamp)
{
    /* Named accumulators, each row's statements behind "mr > r": an array of vectors ended up
     * on the stack. */
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41;
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = _mm256_setzero_ps();
#define SG_EACH(OP) OP(0, c00, c01) OP(1, c10, c11) OP(2, c20, c21) OP(3, c30, c31) OP(4, c40, c41)
#define SG_LOAD(r, x0, x1)                                                                                        \
    if (mr > r && !first)                                                                                         \
        x0 = _mm256_loadu_ps(c + r * ldc), x1 = _mm256_loadu_ps(c + r * ldc + 8);
    SG_EACH(SG_LOAD)
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), x;
#define SG_FMA(r, x0, x1)                                                                                         \
    if (mr > r)                                                                                                   \
        x = _mm256_broadcast_ss(a + r * ars + p * aks), x0 = _mm256_fmadd_ps(x, b0, x0),                          \
        x1 = _mm256_fmadd_ps(x, b1, x1);
        SG_EACH(SG_FMA)
    }
    __m256 bb0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps(), bb1 = bias ? _mm256_loadu_ps(bias + 8) : bb0;
    __m256 z = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
#define SG_STORE(r, x0, x1)                                                                                       \
    if (mr > r) {                                                                                                 \
        if (last) {                                                                                               \
            x0 = _mm256_add_ps(x0, bb0), x1 = _mm256_add_ps(x1, bb1);                                             \
            if (res)                                                                                              \
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(res + r * ldr)),                                           \
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(res + r * ldr + 8));                                       \
            if (clamp == CLAMP_RELU || clamp == CLAMP_RELU6)                                                      \
                x0 = _mm256_max_ps(x0, z), x1 = _mm256_max_ps(x1, z);                                             \
            if (clamp == CLAMP_RELU6)                                                                             \
                x0 = _mm256_min_ps(x0, six), x1 = _mm256_min_ps(x1, six);                                         \
            if (clamp == CLAMP_GELU)                                                                              \
                x0 = gelu8(x0), x1 = gelu8(x1);                                                                   \
        }                                                                                                         \
        _mm256_storeu_ps(c + r * ldc, x0), _mm256_storeu_ps(c + r * ldc + 8, x1);                                 \
    }
    SG_EACH(SG_STORE)
#undef SG_STORE
#undef SG_FMA
#undef SG_LOAD
#undef SG_EACH
}

__attribute__((target("avx2,fma"))) static void kernel_tail(int mr, int64_t kc, const float *restrict a, int64_t ars,
                                                            int64_t aks, const float *restrict b, float *c,
                                                            int64_t ldc, bool first, bool last, const float *bias,
                                                            const float *res, int64_t ldr, int clamp)
{
    switch (mr) {
#define SG_TAIL(n)                                                                                                \
    case n:                                                                                                       \
        kernel_rows(n, kc, a, ars, aks, b, c, ldc, first, last, bias, res, ldr, clamp);                           \
        break
        SG_TAIL(1);
        SG_TAIL(2);
        SG_TAIL(3);
        SG_TAIL(4);
        SG_TAIL(5);
#undef SG_TAIL
    }
}

/* Copy an mr x nr block between buffers with their own leading dimensions. */
static void copy_block(float *dst, int64_t ldd, const float *src, int64_t lds, int mr, int nr)
{
    for (int r = 0; r < mr; r++)
        memcpy(dst + r * ldd, src + r * lds, (size_t)nr * sizeof(float));
}

struct sg_tile {
    int64_t kc;
    int64_t run, a_run; /* A's rows as runs (kernel_runs), or run = kc: whole rows */
    int64_t ars, aks;   /* A's row and k strides (packed panel or A itself) */
    bool first, last;
    int clamp;
    const struct eng_sgemm_ops *op;
};

/* One mr x nr tile at C column j (absolute), its A panel ap and B panel bp. Full tiles go
 * straight to C; edge tiles through a 6x16 buffer so the kernel never reads or writes past C.
 * Inlined in both callers: a call per tile cost 3-5% on short-K calls (3136 x 64 x 256, one
 * thread, in-process). */
__attribute__((always_inline)) static inline void tile(const struct sg_tile *t, const float *ap, const float *bp,
                                                       const float *pf, int64_t pf_n, float *c, int64_t ldc,
                                                       int64_t j, const float *res, int64_t ldr, int mr, int nr)
{
    const struct eng_sgemm_ops *op = t->op;
    const float *bias = t->last && op && op->bias ? op->bias + j : NULL;
    if (!t->last)
        res = NULL;
    if (mr == MR && nr == NR && t->run < t->kc) {
        kernel_runs(t->kc, t->run, t->a_run, ap, t->ars, t->aks, bp, c, ldc, bias, res, ldr, t->clamp);
    } else if (mr == MR && nr == NR) {
        kernel_6x16(t->kc, ap, t->ars, t->aks, bp, pf, pf_n, c, ldc, t->first, t->last, bias, res, ldr, t->clamp);
    } else if (nr == NR && t->run == t->kc) {
        kernel_tail(mr, t->kc, ap, t->ars, t->aks, bp, c, ldc, t->first, t->last, bias, res, ldr, t->clamp);
    } else { /* edge tiles, and a runs call's last rows (a whole tile from a copy of their runs) */
        float tc[MR * NR], tr[MR * NR], tb[NR] = {0};
        float arows[MR * KC_MAX] __attribute__((aligned(32)));
        int64_t ars = t->ars, run = t->run, a_run = t->a_run;
        if (t->aks == 1 && mr < MR) { /* direct A: rows past mr would be read past A's end */
            for (int r = 0; r < MR; r++)
                for (int64_t q = 0; q < t->kc; q += t->run)
                    memcpy(arows + r * t->kc + q, ap + q / t->run * t->a_run + (r < mr ? r : 0) * t->ars,
                           (size_t)t->run * sizeof(float));
            ap = arows;
            ars = t->kc;
            run = t->kc;
            a_run = 0;
        }
        if (!t->first)
            copy_block(tc, NR, c, ldc, mr, nr);
        if (res) {
            copy_block(tr, NR, res, ldr, mr, nr);
            res = tr;
        }
        if (bias) {
            memcpy(tb, bias, (size_t)nr * sizeof(float));
            bias = tb;
        }
        if (run < t->kc)
            kernel_runs(t->kc, run, a_run, ap, ars, t->aks, bp, tc, NR, bias, res, NR, t->clamp);
        else
            kernel_6x16(t->kc, ap, ars, t->aks, bp, pf, pf_n, tc, NR, t->first, t->last, bias, res, NR, t->clamp);
        copy_block(c, ldc, tc, NR, mr, nr);
    }
    if (t->last && op && t->clamp == CLAMP_NONE && op->act != ENG_ACT_NONE)
        eng_act_rows(op->act, op->act_param, c, mr, nr, ldc);
}

/* The calling thread's A buffer (MC_MAX x KC_MAX floats), allocated on its first call and
 * freed when it exits; NULL if that failed (the caller then packs one MR panel at a time). */
static float *thread_buffer(void)
{
    if (!sg_key_ok)
        return NULL;
    float *buf = pthread_getspecific(sg_key);
    if (!buf) {
        size_t bytes = (size_t)(MC_MAX * KC_MAX + PACK_SLACK) * sizeof(float);
        buf = aligned_alloc(64, (bytes + 63) / 64 * 64); /* C11: a multiple of the alignment */
        if (buf && pthread_setspecific(sg_key, buf) != 0) {
            free(buf);
            buf = NULL;
        }
    }
    return buf;
}

/* The activation the kernels apply in their store (others: eng_act_rows after it, in tile). */
static int clamp_of(const struct eng_sgemm_ops *op)
{
    if (op && op->act == ENG_ACT_RELU)
        return CLAMP_RELU;
    if (op && op->act == ENG_ACT_RELU6)
        return CLAMP_RELU6;
    if (op && op->act == ENG_ACT_GELU)
        return CLAMP_GELU;
    return CLAMP_NONE;
}

void eng_sgemm_packed(int64_t m, const float *a, int64_t lda, const struct eng_packed_b *b, int64_t c0, int64_t c1,
                      float *c, int64_t ldc, const struct eng_sgemm_ops *op)
{
    pthread_once(&sg_once, sg_init);
    int64_t k = b->k;
    if (m <= 0 || c1 <= c0)
        return;
    float small[MR * KC_MAX + PACK_SLACK] __attribute__((aligned(64)));
    float *abuf = thread_buffer();
    int64_t mcb = abuf ? sg_mc : MR;
    if (!abuf)
        abuf = small;
    /* K in near-equal blocks of at most KC, so no block is a thin remainder. */
    int64_t nkb = (k + sg_kc - 1) / sg_kc, kcb = (k + nkb - 1) / nkb;
    /* Without a prologue the kernel reads A in place (6 row streams): packing would cost a pass
     * over A per K block for no gain (PACK_ROWS_DEFAULT). */
    bool direct = !(op && (op->a_scale || op->a_shift || op->a_relu)) && !sg_pack_a &&
                  !(m <= sg_pack_rows && c1 - c0 >= PACK_MIN_COLS);
    struct sg_tile t = {0, 0, 0, direct ? lda : 1, direct ? 1 : MR, false, false, clamp_of(op), op};
    const float *res = op ? op->res : NULL;
    int64_t ldr = op ? op->ldr : 0;
    for (int64_t m0 = 0; m0 < m; m0 += mcb) {
        int64_t mc = m - m0 < mcb ? m - m0 : mcb;
        for (int64_t k0 = 0; k0 < k; k0 += kcb) {
            t.kc = t.run = k - k0 < kcb ? k - k0 : kcb;
            t.first = k0 == 0;
            t.last = k0 + t.kc == k;
            if (!direct)
                pack_a(a + m0 * lda + k0, lda, mc, t.kc, k0, op, abuf);
            /* Long, narrow calls reading A in place: the next A block (the next K block of these
             * rows, or the next rows' first) is fetched into L2 while this one computes, a few
             * lines before each tile. A is the last layer's output, megabytes at batch 8, its
             * rows of kc floats too short a stream for the hardware prefetcher, and with few
             * panels a block is not reused long enough to hide the misses. 2 threads, A cold,
             * interleaved: 25088 x 256 x 64 106 -> 127 GFLOP/s, 25088 x 64 x 64 120 -> 127;
             * level or within +-3% at 128 columns and more, hence the limit. */
            const float *na = NULL;
            int64_t lpr = 0, nlines = 0, li = 0;
            if (direct && m > PREFETCH_MAX_ROWS && c1 - c0 <= PREFETCH_A_MAX_COLS) {
                int64_t nrows = 0, ncols = 0;
                if (k0 + t.kc < k) {
                    na = a + m0 * lda + k0 + t.kc, nrows = mc, ncols = k - k0 - t.kc < kcb ? k - k0 - t.kc : kcb;
                } else if (m0 + mc < m) {
                    na = a + (m0 + mc) * lda, nrows = m - m0 - mc < mcb ? m - m0 - mc : mcb;
                    ncols = k < kcb ? k : kcb;
                }
                lpr = (ncols + 15) / 16;
                nlines = nrows * lpr;
            }
            int64_t calls = (c1 - c0 + NR - 1) / NR * ((mc + MR - 1) / MR);
            int64_t per_call = (nlines + calls - 1) / calls;
            for (int64_t j = c0; j < c1; j += NR) {
                int nr = (int)(c1 - j < NR ? c1 - j : NR);
                const float *bp = b->p + (j / NR) * k * NR + k0 * NR;
                /* The B block after this one (the next panel, or the first of the next K block)
                 * is fetched while this one computes, each tile of rows fetching its share of
                 * the lines: at batch 1 the weights come from memory, used by a few tiles only
                 * (49 rows in ResNet-50's layer4), and no hardware prefetcher guesses the jump
                 * from one panel to the next (bench/bench_conv --cold). */
                const float *pf = m > PREFETCH_MAX_ROWS ? NULL
                                  : j + NR < c1         ? bp + k * NR
                                  : k0 + t.kc < k       ? b->p + (c0 / NR) * k * NR + (k0 + t.kc) * NR
                                                        : NULL;
                int64_t ntiles = (mc + MR - 1) / MR, per = (t.kc + ntiles - 1) / ntiles;
                for (int64_t i = 0; i < mc; i += MR) {
                    int mr = (int)(mc - i < MR ? mc - i : MR);
                    int64_t row = m0 + i;
                    const float *ap = direct ? a + (m0 + i) * lda + k0 : abuf + i * t.kc;
                    for (int64_t q = 0; q < per_call && li < nlines; q++, li++)
                        _mm_prefetch((const char *)(na + li / lpr * lda + li % lpr * 16), _MM_HINT_T1);
                    /* Each tile fetches its share of the next block's lines. */
                    int64_t l0 = i / MR * per, n = !pf || l0 >= t.kc ? 0 : t.kc - l0 < per ? t.kc - l0 : per;
                    tile(&t, ap, bp, n ? pf + l0 * NR : NULL, n, c + row * ldc + j, ldc, j,
                         res ? res + row * ldr + j : NULL, ldr, mr, nr);
                }
            }
        }
    }
}

void eng_sgemm_packed_runs(int64_t m, const float *a, int64_t lda, int64_t run, int64_t nruns, int64_t a_run,
                           const struct eng_packed_b *b, int64_t k0, float *c, int64_t ldc,
                           const struct eng_sgemm_ops *op)
{
    int64_t kc = run * nruns;
    if (m <= 0 || kc <= 0 || kc > ENG_SGEMM_RUNS_MAX_K || k0 + kc > b->k)
        abort(); /* the caller's bug (sgemm.h): nothing to return an error through */
    /* One K block: the panel's kc x 16 floats stay in L1 over the call's row tiles, as do the
     * few input rows the runs come from. */
    struct sg_tile t = {kc, run, a_run, lda, 1, true, true, clamp_of(op), op};
    const float *res = op ? op->res : NULL;
    int64_t ldr = op ? op->ldr : 0;
    for (int64_t j = 0; j < b->n; j += NR) {
        int nr = (int)(b->n - j < NR ? b->n - j : NR);
        const float *bp = b->p + (j / NR) * b->k * NR + k0 * NR;
        for (int64_t i = 0; i < m; i += MR)
            tile(&t, a + i * lda, bp, NULL, 0, c + i * ldc + j, ldc, j, res ? res + i * ldr + j : NULL, ldr,
                 (int)(m - i < MR ? m - i : MR), nr);
    }
}

#else /* not x86: eng_sgemm_enabled() is false and this is never called */

void eng_sgemm_packed(int64_t m, const float *a, int64_t lda, const struct eng_packed_b *b, int64_t c0, int64_t c1,
                      float *c, int64_t ldc, const struct eng_sgemm_ops *op)
{
    (void)m, (void)a, (void)lda, (void)b, (void)c0, (void)c1, (void)c, (void)ldc, (void)op;
    abort();
}

void eng_sgemm_packed_runs(int64_t m, const float *a, int64_t lda, int64_t run, int64_t nruns, int64_t a_run,
                           const struct eng_packed_b *b, int64_t k0, float *c, int64_t ldc,
                           const struct eng_sgemm_ops *op)
{
    (void)m, (void)a, (void)lda, (void)run, (void)nruns, (void)a_run, (void)b, (void)k0, (void)c, (void)ldc, (void)op;
    abort();
}

#endif
