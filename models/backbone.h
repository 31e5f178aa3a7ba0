/* Headless CNN backbones: a family's feature extractor, reusable by other families.
 *
 *   struct mdl_backbone b;
 *   struct mdl_weights sub = mdl_weights_sub(&w, "backbones.0.");       // names under a prefix
 *   if (mdl_backbone_load(&b, "resnet", &sub, spec_json) < 0) return -1; // spec: {"arch": "resnet18", ...}
 *   struct eng_tensor feat;                                              // [n, b.features], in act
 *   mdl_backbone_forward(&b, ctx, act, &x, &feat, out);                   // global-average-pooled
 *   mdl_backbone_free(&b);
 *
 * densenet.c and resnet.c each provide their backbone ops (torchvision's `features` part /
 * everything before `fc`) and build their own classifiers on top of them; quadrant_ae.c runs
 * several on image quadrants. The forward may offer taps (the blocks' outputs and the last
 * feature map, names as in the family) through out.
 */
#ifndef SALIENT_MODELS_BACKBONE_H
#define SALIENT_MODELS_BACKBONE_H

#include <jansson.h>

#include "models/head.h"
#include "models/model.h"
#include "models/weights.h"

struct mdl_backbone;

struct mdl_backbone_ops {
    const char *family; /* "densenet", "resnet" */
    /* spec: the family's architecture object (e.g. {"arch": "densenet121"} or
     * {"growth_rate": 32, "block_config": [6, 12, 24, 16], "num_init_features": 64, "in_channels": 1});
     * weights under w's prefix with torchvision names. Sets b->features, b->impl. */
    int (*load)(struct mdl_backbone *b, const struct mdl_weights *w, json_t *spec, int64_t in_c);
    void (*free)(struct mdl_backbone *b);
    /* x [n,h,w,c] -> last feature map [n,fh,fw,features] (after the final norm/ReLU for DenseNet),
     * allocated in act. */
    int (*forward)(const struct mdl_backbone *b, struct eng_ctx *ctx, struct eng_arena *act,
                   const struct eng_tensor *x, struct eng_tensor *fmap, const struct mdl_output *out);
};

struct mdl_backbone {
    const struct mdl_backbone_ops *ops;
    void *impl;
    int64_t in_c;
    int64_t features; /* channels of the last feature map */
};

extern const struct mdl_backbone_ops mdl_backbone_densenet;
extern const struct mdl_backbone_ops mdl_backbone_resnet;

/* Load a backbone of family ("densenet" or "resnet"). Returns 0 or -1 with a message. */
int mdl_backbone_load(struct mdl_backbone *b, const char *family, const struct mdl_weights *w, json_t *spec,
                      int64_t in_c);
void mdl_backbone_free(struct mdl_backbone *b);
/* The last feature map [n,fh,fw,features] in act (before pooling). */
int mdl_backbone_features(const struct mdl_backbone *b, struct eng_ctx *ctx, struct eng_arena *act,
                          const struct eng_tensor *x, struct eng_tensor *fmap, const struct mdl_output *out);
/* The same, global-average-pooled: pooled [n, features] in act. */
int mdl_backbone_pooled(const struct mdl_backbone *b, struct eng_ctx *ctx, struct eng_arena *act,
                        const struct eng_tensor *x, struct eng_tensor *pooled, const struct mdl_output *out);

/* A classifier that is a backbone, global average pooling and one linear head: densenet and
 * resnet are both this, and differ only in what a mdl_cnn_spec says. */
struct mdl_cnn_spec {
    const char *family;    /* backbone family, e.g. "densenet" */
    const char *head_name; /* the head's weights: <head_name>.{weight,bias} */
    /* The head's activation (and whether op_threshs calibration applies) from the manifest. */
    int (*parse_output)(json_t *manifest, enum mdl_out_act *act, bool *calibrate);
    /* After loading: check the input size suits the backbone and add the model's taps. */
    int (*finish)(struct mdl_model *m, const struct mdl_backbone *bb);
};

struct mdl_cnn {
    struct mdl_backbone bb;
    struct mdl_linear_head head;
};

/* Load m as spec describes: m->impl becomes a struct mdl_cnn; in_c from arch.in_channels
 * (default 3), in_h/in_w from the preprocessing, nout from the head. Returns 0, or -1 with a
 * message and nothing left allocated. */
int mdl_cnn_load(struct mdl_model *m, const struct mdl_cnn_spec *spec);
void mdl_cnn_free(struct mdl_model *m);
/* Pooled backbone features through the head into out. */
int mdl_cnn_forward(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                    const struct eng_tensor *x, struct mdl_output *out);

/* Label k's head weights (for exact CAMs), and the head alone on pooled features (for
 * perturbation CAMs): mdl_family's class_weights and head_probs. */
int mdl_cnn_class_weights(const struct mdl_model *m, int k, float *w, float *bias);
int mdl_cnn_head_probs(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                       const struct eng_tensor *pooled, const int *labels, int nl, float *probs);

/* For families: a tensor of shape ne (ndim dims) from act; NULL with the arena's message. */
int mdl_alloc(struct eng_arena *act, const char *name, int ndim, const int64_t *ne, struct eng_tensor *t);

#endif
