/* Packed-weight single-precision GEMM with a fused epilogue, for the engine's hot shape.
 *
 *   // at load: the weights B [k x n] (row-major, leading dimension ldb) packed once
 *   struct eng_packed_b pb;
 *   if (eng_pack_b(&pb, "layer1.0.conv1", w, n, k, n) < 0) die(eng_errmsg());
 *   // per call, on the calling thread: C[m x n] = relu(A B + bias + R), columns [0, n)
 *   struct eng_sgemm_ops op = {.bias = bias, .res = r, .ldr = ldr, .act = ENG_ACT_RELU};
 *   eng_sgemm_packed(m, a, lda, &pb, 0, n, c, ldc, &op);
 *   eng_packed_b_free(&pb);
 *
 * C[m x n] = A[m x k] (activations: NHWC rows, any lda) x B[k x n] (weights). B is packed at
 * load into 16-column panels (each k x 16 floats, zero beyond n), the layout the 6x16 AVX2/FMA
 * micro-kernel streams; OpenBLAS instead repacks B on every call, which cost 15% of ResNet-50.
 * A is read in place (six row streams, any lda) unless a prologue is asked for: then each block
 * of MC rows x KC columns is packed by the calling thread (through the per-column affine + ReLU:
 * DenseNet's norm1, fused into the 1x1 convolution that follows it; AVX2, the next rows
 * prefetched) into a per-thread buffer allocated on the thread's first call and freed when it
 * exits. K is split into near-equal blocks of at most KC so a block of a B panel (KC x 16)
 * stays in L1 while A streams from L2; in calls of at most 256 rows (batch 1's late layers,
 * whose weights come from memory and serve a few row tiles only) each block prefetches the next
 * one's lines; C, and the residual on the last K block, are prefetched a tile ahead, and long,
 * narrow calls prefetch their next A block. A call's last 1-5 rows run on a kernel of their own
 * (no copies, no wasted rows).
 * The epilogue runs in the micro-kernel's store, while the 6x16 tile is in registers: bias
 * (batch norm folded), an optional residual add (ResNet's identity) and ReLU, ReLU6 or GELU
 * (other activations are applied to the tile right after, still in L1). C is written, never
 * read except between K blocks, so no zeroing pass; ldc lets C be a channel slice of a wider
 * buffer. Threads are the caller's business (engine/linear.c splits rows or 16-column blocks).
 * B may also be packed per call into a caller's buffer (eng_pack_b_into, from B or B^T: Swin's
 * keys and values for the attention products).
 *
 * Numerics: each output is a plain sum over k in order, within a K block, blocks added in
 * order (like OpenBLAS, no compensated summation).
 *
 * SALIENT_GEMM=openblas in the environment (read once), or a CPU without AVX2+FMA, turns it
 * off: eng_sgemm_enabled() is then false and the callers keep OpenBLAS. SALIENT_GEMM_MC,
 * SALIENT_GEMM_KC, SALIENT_GEMM_PACK_A (pack A even without a prologue) and SALIENT_GEMM_PACK_ROWS
 * (pack A of calls of at most that many rows when at least 256 columns wide; default 0) are for
 * tuning.
 */
#ifndef SALIENT_ENGINE_SGEMM_H
#define SALIENT_ENGINE_SGEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/activation.h"

#define ENG_SGEMM_NR 16 /* columns per packed panel; column splits must be multiples of it */

struct eng_packed_b {
    int64_t k, n;
    float *p; /* owned, 64-byte aligned: panel j (columns 16j .. 16j+15) is k x 16 floats at p + j*k*16 */
};

/* What is fused around the product. Every pointer may be NULL; indices are absolute columns
 * (bias[j] belongs to column j of C, whichever columns a call computes). */
struct eng_sgemm_ops {
    const float *a_scale, *a_shift; /* prologue: A[i][p] -> A[i][p] * a_scale[p] + a_shift[p] */
    bool a_relu;                    /*   ... then max(., 0) */
    const float *bias;              /* epilogue: + bias[j] */
    const float *res;               /*   + res[i * ldr + j] (must not overlap C) */
    int64_t ldr;
    enum eng_act act; /*   then act */
    float act_param;
};

/* Whether the packed kernel runs here: the CPU has AVX2 and FMA and SALIENT_GEMM is not
 * "openblas". Constant for the process. */
bool eng_sgemm_enabled(void);

/* Pack B [k x n], row-major with leading dimension ldb >= n. Load time: allocates. Returns 0, or
 * -1 with a message naming the layer (bad sizes, out of memory), leaving pb empty. */
int eng_pack_b(struct eng_packed_b *pb, const char *name, const float *b, int64_t ldb, int64_t k, int64_t n);

/* Floats of a packed B of k x n (n rounded up to whole 16-column panels). */
int64_t eng_packed_b_floats(int64_t k, int64_t n);

/* Packs B[k x n] (row p at b + p * ldb), or with trans the B whose column j is row j of b
 * (B = b^T, b being n x k with leading dimension ldb), into dst (eng_packed_b_floats(k, n)
 * floats, 32-byte aligned), and describes it in pb, which does not own dst (never free it):
 * per-call operands such as an attention head's keys and values. */
void eng_pack_b_into(struct eng_packed_b *pb, float *dst, const float *b, int64_t ldb, int64_t k, int64_t n,
                     bool trans);

/* Releases pb's panels; pb is empty afterwards (freeing twice is harmless). */
void eng_packed_b_free(struct eng_packed_b *pb);

/* Multiply column col of the packed B by s (batch-norm folding after packing), rounding
 * (float)(b * s) as an unpacked copy scaled the same way would. */
void eng_packed_b_scale_col(struct eng_packed_b *pb, int64_t col, double s);

/* Columns [c0, c1) of C = ops(A B) for rows [0, m), on the calling thread. a and c point at row
 * 0, column 0 (C's columns outside [c0, c1) are not touched); c0 must be a multiple of
 * ENG_SGEMM_NR and c1 <= b->n. op may be NULL (plain product). Requires eng_sgemm_enabled(). */
void eng_sgemm_packed(int64_t m, const float *a, int64_t lda, const struct eng_packed_b *b, int64_t c0, int64_t c1,
                      float *c, int64_t ldc, const struct eng_sgemm_ops *op);

/* The most K eng_sgemm_packed_runs takes (nruns * run): one K block. */
#define ENG_SGEMM_RUNS_MAX_K 512

/* C[m x b->n] = ops(A B[k0 .. k0 + nruns * run)) where row i of A is nruns runs of run floats,
 * run q of row i starting at a + q * a_run + i * lda: a convolution's kernel rows read in place
 * from its NHWC input (row i an output pixel, lda its input stride, a run the kw * cin floats
 * of one kernel row, a_run an input row), without an im2col copy; B's rows k0 .. are those
 * kernel rows' weights. Requires eng_sgemm_enabled(), 1 <= nruns * run <=
 * ENG_SGEMM_RUNS_MAX_K, k0 + nruns * run <= b->k, and no prologue in op (bias, residual and
 * activation apply). */
void eng_sgemm_packed_runs(int64_t m, const float *a, int64_t lda, int64_t run, int64_t nruns, int64_t a_run,
                           const struct eng_packed_b *b, int64_t k0, float *c, int64_t ldc,
                           const struct eng_sgemm_ops *op);

#endif
