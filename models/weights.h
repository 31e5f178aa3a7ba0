/* Reading a model's weights by their upstream names, with the model named in every error.
 *
 *   struct mdl_weights w;
 *   if (mdl_weights_open(&w, m, "model.safetensors") < 0) return -1;
 *   struct eng_conv conv0;
 *   struct eng_conv_params p = eng_conv_torch(3, 64, 7, 2, 3, 1, 1);
 *   p.act = ENG_ACT_RELU;
 *   mdl_load_conv(&w, "features.conv0", "features.norm0", &p, &conv0);   // conv + folded BN
 *   struct mdl_bn norm5;
 *   mdl_load_bn(&w, "features.norm5", 1024, ENG_ACT_RELU, &norm5);         // BN kept as affine
 *   mdl_weights_close(&w);
 *
 * Names are torchvision's (state_dict keys). A prefix (mdl_weights_prefix) lets one reader
 * serve a sub-network: quadrant_ae's backbones live under "backbones.<i>.". Missing tensors
 * and wrong shapes are errors that name the file, the tensor and both shapes.
 */
#ifndef SALIENT_MODELS_WEIGHTS_H
#define SALIENT_MODELS_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/conv.h"
#include "engine/eltwise.h"
#include "engine/linear.h"
#include "engine/safetensors.h"
#include "models/model.h"

struct mdl_weights {
    struct eng_st_file *file; /* owned unless borrowed is set */
    bool borrowed;
    char prefix[128];         /* prepended to every name */
};

/* Open <m->dir>/<file>. Returns 0, or -1 with the reader's message. */
int mdl_weights_open(struct mdl_weights *w, const struct mdl_model *m, const char *file);
/* A reader over the same file with prefix appended to w's own (for sub-networks); close it too. */
struct mdl_weights mdl_weights_sub(const struct mdl_weights *w, const char *prefix);
void mdl_weights_close(struct mdl_weights *w);

/* True if prefix+name exists. */
bool mdl_weights_has(const struct mdl_weights *w, const char *name);
/* malloc'd fp32 copy of prefix+name with exactly this shape; NULL with a message. Caller frees. */
float *mdl_weights_get(const struct mdl_weights *w, const char *name, int ndim, const int64_t *shape);
/* The shape of prefix+name into shape (up to 8 dims); returns ndim, or -1 with a message. */
int mdl_weights_shape(const struct mdl_weights *w, const char *name, int64_t *shape);

/* <conv>.weight [cout, cin/groups, kh, kw] (+ <conv>.bias if p says... if present), then, if bn
 * is not NULL, <bn>.{weight,bias,running_mean,running_var} folded in (eps from bn_eps, 1e-5
 * for torchvision). p->act is applied after. Returns 0 or -1; out is safe to free either way. */
int mdl_load_conv(const struct mdl_weights *w, const char *conv, const char *bn, const struct eng_conv_params *p,
                  struct eng_conv *out);

/* A batch norm kept as a per-channel affine (it cannot be folded: DenseNet's norms follow a
 * concatenation). */
struct mdl_bn {
    struct eng_affine aff; /* borrows scale/shift below */
    float *scale, *shift;  /* owned */
};
int mdl_load_bn(const struct mdl_weights *w, const char *bn, int64_t channels, enum eng_act act, struct mdl_bn *out);
void mdl_bn_free(struct mdl_bn *bn);

/* <name>.weight [out, in] and <name>.bias [out] if present. */
int mdl_load_linear(const struct mdl_weights *w, const char *name, int64_t in, int64_t out, enum eng_act act,
                    struct eng_linear *lin);

#endif
