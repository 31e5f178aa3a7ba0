/* The linear classifier head on global-average-pooled features, and its output activation.
 *
 *   struct mdl_linear_head head = {0};
 *   bool calibrate = false;
 *   head.act = MDL_OUT_SOFTMAX;                                   // the family's default
 *   if (mdl_head_parse_output(man, true, &head.act, &calibrate) < 0) return -1;   // "output": {...}
 *   if (mdl_head_load(&head, &w, "fc", features, m->manifest.nlabels, calibrate) < 0) return -1;
 *   m->nout = head.nout;
 *   ...
 *   mdl_head_forward(&head, ctx, act, &pooled, out);               // pooled [n, features]
 *   mdl_head_free(&head);
 *
 * densenet.c (classifier), resnet.c (fc) and swin.c (its linear head) keep one here. Because
 * global average pooling is linear, logits = W mean(f) + b = mean(W f + b): the class
 * activation map of class c is row c of W (mdl_head_class_weights) applied to each pixel of the
 * last feature map, plus b[c]; eng_linear(ctx, &head.fc, &fmap, &cams) gives every class's map.
 */
#ifndef SALIENT_MODELS_HEAD_H
#define SALIENT_MODELS_HEAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/ctx.h"
#include "engine/linear.h"
#include "engine/tensor.h"
#include "models/model.h"
#include "models/weights.h"

/* How logits become the probabilities in mdl_output.probs. */
enum mdl_out_act {
    MDL_OUT_NONE,    /* probs = logits */
    MDL_OUT_SIGMOID, /* independent labels; optionally calibrated with op_threshs */
    MDL_OUT_SOFTMAX, /* one label per image */
};

struct mdl_linear_head {
    struct eng_linear fc;   /* <name>.weight [nout, in] and <name>.bias, no fused activation */
    int64_t nout;           /* outputs = labels */
    enum mdl_out_act act;   /* set by the family (mdl_head_parse_output), not by mdl_head_load */
    float *op_threshs;      /* owned, nout floats, or NULL: no calibration */
};

/* The manifest's "output" object over the family's defaults in *act and *calibrate:
 * "activation": "sigmoid" | "softmax" | "none", and, only if calibration is true,
 * "calibration": "op_threshs" | "none" (torchxrayvision's operating-point normalisation, which
 * needs sigmoid). Without "output" the defaults stand. Returns 0, or -1 with a message naming
 * the field. */
int mdl_head_parse_output(json_t *man, bool calibration, enum mdl_out_act *act, bool *calibrate);

/* Read <name>.weight [outputs, in] (+ <name>.bias if present) from w, after checking that it is
 * 2-D over in features and has exactly nlabels outputs (each failure its own message naming the
 * tensor and the shapes), and, if calibrate, the tensor "op_threshs" [outputs]. Sets h->fc,
 * h->nout, h->op_threshs; leaves h->act alone. Returns 0, or -1 with a message; h is safe to
 * mdl_head_free either way. */
int mdl_head_load(struct mdl_linear_head *h, const struct mdl_weights *w, const char *name, int64_t in,
                  int nlabels, bool calibrate);

/* Release h's weights; h is empty afterwards (freeing twice is harmless). */
void mdl_head_free(struct mdl_linear_head *h);

/* pooled [n, in] -> logits [n, nout]: written to out->logits when the caller asked for them,
 * else allocated in act (valid until act is rewound). Returns 0, or -1 with a message. */
int mdl_head_logits(const struct mdl_linear_head *h, struct eng_ctx *ctx, struct eng_arena *act,
                    const struct eng_tensor *pooled, const struct mdl_output *out, struct eng_tensor *logits);

/* One image's probabilities p[nout] from its logits z[nout] by h->act (and op_threshs). */
void mdl_head_probs_row(const struct mdl_linear_head *h, const float *z, float *p);

/* The whole head: logits (mdl_head_logits), then out->probs row by row if asked for.
 * Returns 0, or -1 with a message. */
int mdl_head_forward(const struct mdl_linear_head *h, struct eng_ctx *ctx, struct eng_arena *act,
                     const struct eng_tensor *pooled, struct mdl_output *out);

/* probs[r * nl + s] = all[r * nall + labels[s]] for rows r < n: the asked labels of a head
 * that computes them all (family head_probs). */
void mdl_head_pick(const float *all, int64_t n, int nall, const int *labels, int nl, float *probs);

/* Class c's weights for a class activation map: row c of the torch weight [nout, in] copied to
 * w (in floats, caller's buffer) and its bias to *bias (0 without a bias; bias may be NULL).
 * The packed weights are W^T, so this is a strided gather. Returns 0, or -1 with a message if
 * c is not in 0..nout-1. */
int mdl_head_class_weights(const struct mdl_linear_head *h, int64_t c, float *w, float *bias);

#endif
