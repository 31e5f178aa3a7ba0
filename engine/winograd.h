/* Winograd F(4x4, 3x3) for stride-1 3x3 convolutions over NHWC: 4x fewer multiplies than im2col.
 *
 *   // at load, after packing (conv.c does this for every eligible layer):
 *   if (eng_winograd_eligible(&conv->p)) conv->wino = eng_winograd_pack(conv->w, cin, cout);
 *   // per call, when eng_winograd_use() says it pays for this input:
 *   size_t need = eng_winograd_scratch_bytes(conv, n, oh, ow, nthreads);
 *   eng_winograd_conv2d(ctx, conv, x, y, pad_top, pad_left);
 *
 * Lavin & Gray's algorithm: each 4x4 block of outputs ("tile") reads a 6x6 input patch d and is
 *   Y = A^T [ sum over input channels of (G g G^T) (.) (B^T d B) ] A
 * where (.) multiplies elementwise. The 36 elementwise products summed over channels are 36
 * independent GEMMs, one per position xi of the 6x6 transform domain:
 *   M[xi] (tiles x cout) = V[xi] (tiles x cin) * U[xi] (cin x cout),
 * U = G g G^T being the weights, transformed and packed once at load ([36][cin][cout]), V =
 * B^T d B the input tiles, transformed per call with channels as the vector dimension (NHWC
 * keeps them contiguous). A 3x3 conv costs 9 multiply-adds per output and channel pair; here
 * 36 / 16 = 2.25, plus transforms that grow with cin + cout, not cin * cout.
 * Numerics: the transforms' constants (1/4, 1/6, 1/24, 8) cost about 1e-6 relative error per
 * layer against 1e-7 for a direct sum; U is computed in double and rounded once.
 * Matrices (interpolation points 0, +-1, +-2 and infinity):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 */
#ifndef SALIENT_ENGINE_WINOGRAD_H
#define SALIENT_ENGINE_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/conv.h"
#include "engine/ctx.h"
#include "engine/tensor.h"

/* 3x3, stride 1, dilation 1, one group, at least 8 channels in and out (below that the
 * transforms cost more than the multiplies saved). SALIENT_WINOGRAD=0 in the environment turns
 * it off (numerics comparisons, benchmarks); SALIENT_WINOGRAD=1 takes it wherever a map is not
 * mostly tile waste, without eng_winograd_use's rows and channels test (tests of the transforms
 * on small maps). Read once per process. */
bool eng_winograd_eligible(const struct eng_conv_params *p);

/* U = G g G^T from weights in eng_conv's packed layout w[((ky*3 + kx)*cin + ci)*cout + oc], as
 * [36][cin][cout]. Returns a malloc'd array the caller owns (free()), or NULL with a message. */
float *eng_winograd_pack(const char *name, const float *w, int cin, int cout);

/* Whether Winograd beats im2col for an n x oh x ow output: tiny maps waste most of each tile,
 * and against im2col on the packed GEMM (conv->pw) it also needs enough tiles and channels.
 * The answer can change with n (im2col at batch 1, Winograd at 8): conv.c sizes its scratch
 * for both paths so a batch measured at its largest size covers every smaller one. */
bool eng_winograd_use(const struct eng_conv *conv, int64_t n, int64_t oh, int64_t ow);

/* Scratch eng_winograd_conv2d borrows for an output of n x oh x ow on nthreads threads. */
size_t eng_winograd_scratch_bytes(const struct eng_conv *conv, int64_t n, int64_t oh, int64_t ow, int nthreads);

/* y = act(conv(x) + bias) with conv->wino (or its packed wino_pw); x [N,H,W,cin], y [N,oh,ow,cout] (either may be a
 * strided view, innermost contiguous), pads as resolved by the caller. Returns 0, or -1 with a
 * message when the scratch is too small. Overwrites y only. */
int eng_winograd_conv2d(struct eng_ctx *ctx, const struct eng_conv *conv, const struct eng_tensor *x,
                        struct eng_tensor *y, int pad_t, int pad_l);

#endif
