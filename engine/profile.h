/* Per-layer wall time, for bench/ (bench_models --layers): which layer costs what, to set beside
 * ONNX Runtime's own profiler (ort_bench.js --profile; bench/layers.py joins the two).
 *
 *   struct eng_profile *prof = eng_profile_new();
 *   runner.ctx.prof = prof;                  // ops on this context now time themselves
 *   mdl_model_run(...);                      // each convolution adds one sample under its name
 *   for (int i = 0; i < eng_profile_count(prof); i++) { const struct eng_profile_entry *e = ...; }
 *   runner.ctx.prof = NULL;
 *   eng_profile_free(prof);
 *
 * Off (ctx->prof NULL, the default everywhere but bench/) an op pays one pointer test. A
 * profile is written by the context's calling thread only (ops call eng_profile_add before or
 * after their parallel part, never from workers), so it takes no lock. Convolutions
 * (eng_conv2d and its fused entry points) are timed: the whole of ResNet-50 and DenseNet-121
 * but for pooling and the head.
 */
#ifndef SALIENT_ENGINE_PROFILE_H
#define SALIENT_ENGINE_PROFILE_H

#include <stdint.h>

#include "engine/tensor.h"

struct eng_profile_entry {
    char name[ENG_NAME_MAX]; /* the op's layer name */
    char kind[24];           /* what the op is, e.g. "conv 3x3/2" */
    int64_t batch;           /* the batch (first dimension of its output) */
    double flops;            /* per call (multiply-adds x 2) */
    int nsamples;
    double *samples; /* seconds, one per call, in call order */
};

struct eng_profile;

/* NULL when out of memory (with a message). */
struct eng_profile *eng_profile_new(void);
void eng_profile_free(struct eng_profile *p);

/* Seconds on a monotonic clock, for a caller's start and end of an op. */
double eng_profile_now(void);

/* One call of layer name (an op of that kind) at batch, seconds long. Out of memory drops the
 * sample (bench only). */
void eng_profile_add(struct eng_profile *p, const char *name, const char *kind, int64_t batch, double seconds,
                     double flops);

/* Entries in first-call order; the median of an entry's samples is its time per call. */
int eng_profile_count(const struct eng_profile *p);
const struct eng_profile_entry *eng_profile_entry(const struct eng_profile *p, int i);
double eng_profile_median(const struct eng_profile_entry *e);

#endif
