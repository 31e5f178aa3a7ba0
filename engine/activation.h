/* Activations, applied in place to rows of floats; also the fused epilogue of conv/linear.
 *
 *   eng_act_rows(ENG_ACT_RELU6, 0.0f, y, rows, cols, ld);      // in place, one thread
 *   eng_activation(ctx, ENG_ACT_GELU, 0.0f, &t);                // in place on a tensor, threaded
 *   eng_softmax(ctx, &t);                                       // over the innermost dimension
 *
 * GELU is the exact erf form (PyTorch's default, approximate='none'); QuickGELU is
 * x * sigmoid(1.702 x) as in CLIP/FaRL; LeakyReLU's slope is the param.
 */
#ifndef SALIENT_ENGINE_ACTIVATION_H
#define SALIENT_ENGINE_ACTIVATION_H

#include <stdint.h>

#include "engine/ctx.h"
#include "engine/tensor.h"

/* The erf under GELU: a rational minimax fit on [-ENG_ERF_CLAMP, ENG_ERF_CLAMP] (Eigen's float
 * erf), erf(x) = x P(x^2) / Q(x^2), coefficients highest power first. One table for the scalar
 * form (activation.c) and the vector one in the GEMM's epilogue (sgemm.c's gelu8). */
#define ENG_ERF_CLAMP 4.0f
#define ENG_ERF_P6 -2.72614225801306e-10f
#define ENG_ERF_P5 2.77068142495902e-08f
#define ENG_ERF_P4 -2.10102402082508e-06f
#define ENG_ERF_P3 -5.69250639462346e-05f
#define ENG_ERF_P2 -7.34990630326855e-04f
#define ENG_ERF_P1 -2.95459980854025e-03f
#define ENG_ERF_P0 -1.60960333262415e-02f
#define ENG_ERF_Q4 -1.45660718464996e-05f
#define ENG_ERF_Q3 -2.13374055278905e-04f
#define ENG_ERF_Q2 -1.68282697438203e-03f
#define ENG_ERF_Q1 -7.37332916720468e-03f
#define ENG_ERF_Q0 -1.42647390514189e-02f

enum eng_act {
    ENG_ACT_NONE = 0,
    ENG_ACT_RELU,
    ENG_ACT_RELU6,
    ENG_ACT_LEAKY_RELU, /* param: negative slope */
    ENG_ACT_GELU,
    ENG_ACT_QUICK_GELU,
    ENG_ACT_SIGMOID,
};

/* Apply act to rows x cols floats starting at x, rows ld floats apart; calling thread only. */
void eng_act_rows(enum eng_act act, float param, float *x, int64_t rows, int64_t cols, int64_t ld);

/* Apply act in place to every element of t (any strides), split over ctx's threads. */
void eng_activation(const struct eng_ctx *ctx, enum eng_act act, float param, struct eng_tensor *t);

/* Numerically stable softmax over the innermost dimension, in place. */
void eng_softmax(const struct eng_ctx *ctx, struct eng_tensor *t);

/* The same softmax on one row of n >= 1 contiguous floats, in place; calling thread only. */
void eng_softmax_row(float *p, int64_t n);

/* Parse "relu", "relu6", "leaky_relu", "gelu", "quick_gelu", "sigmoid", "none".
 * Returns 0, or -1 with a message. */
int eng_act_parse(const char *s, enum eng_act *out);

#endif
