/* A loaded model: manifest, family, prepared weights, and how to run a batch through it.
 *
 *   struct mdl_model *m = mdl_model_load("build/model-repo/chexnet-demo", "chexnet-demo", 8);
 *   if (!m) log("%s", eng_errmsg());     // "model 'chexnet-demo': tensor 'features.conv0.weight' has shape ..."
 *   struct mdl_runner r;                  // one per worker thread
 *   mdl_runner_init(&r, m, 2);            // 2 engine threads; arenas sized at load for max_batch
 *   float *in = ...;                      // n x in_h x in_w x in_c, from mdl_preprocess (preprocess.h)
 *   struct mdl_output out = {.logits = lg, .probs = pr};   // n*nout and n*nlabels floats
 *   mdl_model_run(m, &r, in, n, &out);
 *   mdl_runner_free(&r);
 *   mdl_model_free(m);
 *
 * A family (densenet.c, resnet.c, swin.c, quadrant_ae.c, ...) is a struct mdl_family: load
 * reads the manifest and weights into the family's own struct (m->impl) and sets the input
 * shape and output counts; forward runs a batch with activations from the runner's arena and
 * workspace from its ctx, never calling malloc. At load the model is run once at max_batch on
 * zeros in reserve-only arenas; the peaks it reaches size every runner's arenas exactly.
 *
 * Taps: a forward offers named intermediate tensors (the manifest's attention layers, the
 * last feature map, any layer salient-run is asked for) to an optional callback while they
 * are alive; the callback may read or copy them, never keep the pointer.
 */
#ifndef SALIENT_MODELS_MODEL_H
#define SALIENT_MODELS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/ctx.h"
#include "engine/tensor.h"
#include "models/attention.h"
#include "models/manifest.h"
#include "models/preprocess.h"

struct mdl_model;
struct mdl_face_opts; /* faceapi.h */
struct mdl_faces;     /* faceapi.h */

/* Called during a forward for each tensor the family offers (NHWC maps [n,h,w,c], token
 * tensors [n,L,C], pooled features [n,C]); t is valid only during the call. */
typedef void (*mdl_tap_fn)(void *user, const char *name, const struct eng_tensor *t);

struct mdl_output {
    float *logits;  /* n * m->nout floats, or NULL; the head's raw outputs */
    float *probs;   /* n * m->nlabels floats, or NULL; label probabilities (calibrated where the
                       manifest says so), in manifest label order */
    mdl_tap_fn tap; /* optional */
    void *tap_user;
};

/* What a family provides. All functions return 0, or -1 with an engine error message (the
 * caller prefixes the model's name). */
struct mdl_family {
    const char *name; /* manifest "family" */
    /* Read m->manifest (m->dir holds the files) and the weights; set m->impl, m->in_h/in_w/in_c,
     * m->nout, and m->taps (names a forward offers). Allocations here are fine. */
    int (*load)(struct mdl_model *m);
    void (*free)(struct mdl_model *m);
    /* x: [n, in_h, in_w, in_c] preprocessed. Fill out->logits / out->probs where non-NULL. */
    int (*forward)(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act, const struct eng_tensor *x,
                   struct mdl_output *out);
    /* Optional, for exact class activation maps (attention.h, "linear"): label k's row of the
     * global-average-pool + linear head into w (features floats) and its bias. */
    int (*class_weights)(const struct mdl_model *m, int k, float *w, float *bias);
    /* Optional, for perturbation CAMs (attention.h): the head's probabilities of the labels asked
     * for (labels[0..nl-1], manifest indices) for k rows of pooled features (what the network
     * would pool) into probs [k, nl], activations from act. A head whose labels are independent
     * (SwinCheX's per-label MLPs) runs only the asked ones. */
    int (*head_probs)(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                      const struct eng_tensor *pooled, const int *labels, int nl, float *probs);
    /* Optional, for gradient CAMs (attention.h, "gradient"): for k rows of pooled features z
     * (what the network pools) and each label asked for, the label's score s (SwinCheX: its
     * log-odds logit[1] - logit[0]; a linear head: its logit) into scores [k, nl] and ds/dz into
     * grads [k, nl, features] (row-major: row b's label j at (b * nl + j) * features), by one
     * backward pass through the head; activations from act. state: the same k rows of the
     * family's tap "head" (what its forward's head left, [k, *]; the family may overwrite it), or
     * NULL for a family that offers no such tap. */
    int (*head_grads)(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                      const struct eng_tensor *pooled, struct eng_tensor *state, const int *labels, int nl,
                      float *scores, float *grads);
};

/* What a family that takes decoded images rather than a preprocessed tensor provides besides
 * its mdl_family (faceapi.h; its forward is NULL and its manifest needs no "preprocess").
 * model.c pairs the two in its table of image families. */
struct mdl_image_ops {
    /* n images, each with its options, into out[n]. Results the caller gave no buffer for go in act. */
    int (*run_images)(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                      const struct mdl_image *images, const struct mdl_face_opts *opts, int n, struct mdl_faces *out);
    /* Allocate once what the largest batch needs, on the measuring arenas the load sizes every
     * runner's from (the stand-in for forward's zero-image run). */
    int (*dry_run)(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act);
};

/* The image operations of family f, or NULL for a family that takes tensors. */
const struct mdl_image_ops *mdl_family_image_ops(const struct mdl_family *f);

#define MDL_MAX_TAPS 16

struct mdl_model {
    struct mdl_manifest manifest; /* owned */
    char dir[1024];
    const struct mdl_family *family;
    void *impl;                   /* family's prepared weights, owned via family->free */
    struct mdl_preprocess pre;    /* from manifest "preprocess" */
    int64_t in_h, in_w, in_c;     /* network input after preprocessing */
    int64_t nout;                 /* logits per image */
    int max_batch;
    size_t act_bytes, scratch_bytes; /* per runner, measured at load at max_batch */
    int ntaps;
    char taps[MDL_MAX_TAPS][64];  /* tensors a forward offers, in network order */
    int tap_ndim[MDL_MAX_TAPS];   /* their shapes at the load-time dry run (max_batch rows) */
    int64_t tap_ne[MDL_MAX_TAPS][4];
    struct mdl_attention attn;    /* the manifest's attention maps (attention.h) */
};

/* The family called name, or NULL. */
const struct mdl_family *mdl_family_find(const char *name);

/* Load the model in dir (manifest.json + weights), prepare it for batches of up to max_batch
 * (0: the manifest's batching.max_batch_size, else 8). NULL with a message that starts
 * "model '<name>': " on any problem. The caller frees with mdl_model_free. */
struct mdl_model *mdl_model_load(const char *dir, const char *name, int max_batch);
void mdl_model_free(struct mdl_model *m);

/* A worker's private state: engine threads, scratch and activation arenas. */
struct mdl_runner {
    struct eng_ctx ctx;
    struct eng_arena act;
};

/* Arenas sized from m's load-time measurement. Returns 0 or -1 with a message. */
int mdl_runner_init(struct mdl_runner *r, const struct mdl_model *m, int nthreads);
void mdl_runner_free(struct mdl_runner *r);

/* Run n (1..max_batch) preprocessed images, input n*in_h*in_w*in_c floats NHWC. Returns 0,
 * or -1 with a message. The arenas are reset at the start; tap tensors die with the call. */
int mdl_model_run(const struct mdl_model *m, struct mdl_runner *r, const float *input, int n,
                  struct mdl_output *out);

/* True if m's family takes decoded images (mdl_model_run_images), false if preprocessed
 * tensors (mdl_model_run). */
bool mdl_model_takes_images(const struct mdl_model *m);

/* Run n (1..max_batch) decoded images through an image-taking model (faceapi.h), each with its
 * options (opts may be NULL: defaults), results into out[n]. The arenas are reset at the start;
 * results the caller gave no buffer for live in r's arena until r's next run. Returns 0, or -1
 * with a message (bad options say so and leave out untouched). */
int mdl_model_run_images(const struct mdl_model *m, struct mdl_runner *r, const struct mdl_image *images,
                         const struct mdl_face_opts *opts, int n, struct mdl_faces *out);

/* For families: offer a tensor to out's tap callback (no-op without one). */
void mdl_tap(const struct mdl_output *out, const char *name, const struct eng_tensor *t);

/* For families: record a tap name at load (ignored past MDL_MAX_TAPS). */
void mdl_model_add_tap(struct mdl_model *m, const char *name);

#endif
