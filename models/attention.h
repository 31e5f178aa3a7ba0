/* Layer-attention maps and class activation maps, computed from the activations of the forward
 * pass that runs anyway (docs/MODELS.md, "Attention maps").
 *
 *   // at load (model.c): the manifest's "attention" block checked against the taps' shapes
 *   mdl_attention_init(m);
 *   // per image, buffers sized by m->attn (mdl_attn_image_floats):
 *   struct mdl_attn_image a = {.want_layers = true, .labels = (int[]){2}, .nlabels = 1, .buf = floats};
 *   // during the forward, from the tap callback, for image row r of tensor t:
 *   mdl_attn_tap(m, &a, name, t, r);
 *   // after the forward, on the same worker (uses the runner's arenas):
 *   mdl_attn_finish(m, &runner, &a);
 *   // a.buf now holds each layer's map in [0, 1] (mdl_attn_layer_map) and each CAM
 *   // (mdl_attn_cam), a.weight[l] each layer's share.
 *
 * Layer map of a tapped activation A [h, w, c]: M(i, j) = mean_c A(i, j, c)^2, min-max
 * normalised to [0, 1] (all zeros if M is constant). Token tensors [L, C] of a square grid are
 * read as [sqrt L, sqrt L, C].
 *
 * Layer weight ("at which depth the model looked"): the contrast of the layer's raw map,
 * peak / mean - 1 (0 for a flat map, large when the energy sits in a few cells), divided by
 * the sum over the reported layers so the weights add up to 1. Scale-free, so layers of very
 * different magnitudes compare.
 *
 * CAM, manifest "cam":
 *   "linear"        exact for global-average-pool + linear heads: CAM_k(i, j) = w_k . F(i, j) + b_k
 *                   on the last feature map F (manifest "features"); its mean over cells is the
 *                   logit of label k (GAP is linear).
 *   "perturbation"  for heads that are not linear (SwinCheX's MLPs, quadrant_ae's autoencoder +
 *                   classifier): ReciproCAM-style. For each cell (i, j) of the source map(s) a copy
 *                   keeping that cell at weight 1, its 4-neighbours' rows/columns at 0.5 (corners
 *                   0.25) and zeros elsewhere is pooled as the network pools ("cam_pool": "global"
 *                   mean, or "quadrants": each 2x2 quadrant's mean, quadrant-major then source, as
 *                   quadrant_ae concatenates) and run through the real head; the map is label k's
 *                   probability per cell. Faithful because every number is the model's own answer
 *                   to evidence from one neighbourhood only; for a linear head and sigmoid it is
 *                   a monotone function of the exact CAM.
 *   "gradient"      for non-linear heads over global-average-pooled features (SwinCheX's MLPs):
 *                   the head linearised at this image. With z = mean over cells of F(i, j),
 *                   s_k(z) label k's score (SwinCheX: the log-odds logit[1] - logit[0]) and
 *                   g_k = ds_k/dz (one backward pass through label k's MLP from the activations
 *                   the network's forward left in the tap "head", all images' rows as one GEMM
 *                   per layer: family head_grads),
 *                   CAM_k(i, j) = s_k(z) + g_k . (F(i, j) - z): the first-order Taylor term of the
 *                   head, whose mean over cells is s_k(z) itself. For a linear head g_k = w_k and
 *                   this is exactly the "linear" CAM. First-order: what the ReLUs couple between
 *                   cells is not in it.
 *   "none"          no CAM.
 * CAMs are reported raw (logit units for "linear", log-odds for "gradient", probabilities for
 * "perturbation"); callers normalise for display.
 */
#ifndef SALIENT_MODELS_ATTENTION_H
#define SALIENT_MODELS_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/tensor.h"

struct mdl_model;
struct mdl_runner;

enum mdl_cam_kind { MDL_CAM_NONE, MDL_CAM_LINEAR, MDL_CAM_PERTURBATION, MDL_CAM_GRADIENT };

#define MDL_ATTN_MAX_SOURCES 8
#define MDL_ATTN_MAX_LAYERS 16

struct mdl_attention {
    int nlayers;
    int layer_tap[MDL_ATTN_MAX_LAYERS]; /* index into m->taps */
    int layer_h[MDL_ATTN_MAX_LAYERS], layer_w[MDL_ATTN_MAX_LAYERS];
    size_t layer_off[MDL_ATTN_MAX_LAYERS]; /* floats from the start of an image's buffer */
    enum mdl_cam_kind cam;
    bool quadrant_pool;
    int nsources;
    int source_tap[MDL_ATTN_MAX_SOURCES];
    int64_t source_c[MDL_ATTN_MAX_SOURCES];
    size_t source_off[MDL_ATTN_MAX_SOURCES];
    int cam_h, cam_w;              /* the CAM grid: the sources' */
    size_t cams_off;               /* first CAM; label slot s at cams_off + s * cam_h * cam_w */
    int state_tap;                 /* gradient CAMs: the family's tap "head" (its head's activations) */
    int64_t state_floats;          /* per image, 0: none */
    size_t state_off;
    int max_cams;                  /* CAM slots per image (= labels) */
    size_t floats;                 /* per image */
};

/* What one image asks for, and its results. buf holds m->attn.floats floats. */
struct mdl_attn_image {
    bool want_layers;
    const int *labels; /* label indices to explain, nlabels of them (<= max_cams) */
    int nlabels;
    float *buf;
    float weight[MDL_ATTN_MAX_LAYERS]; /* per reported layer, after finish */
};

/* Parse the manifest's "attention" ({"layers": [...], "cam": "...", "features": "tap" or
 * [...], "cam_pool": "global" | "quadrants"}) against the taps the dry run saw. A model
 * without the block gets no maps. Without "features", the CAM reads the "features" tap when it
 * is a map, else the layers (quadrant_ae's stitched backbone maps); when those have different
 * grids (two backbones of different depth) the model has layer maps but no CAM. Returns 0 or
 * -1 with a message naming the field. */
int mdl_attention_init(struct mdl_model *m);

/* Offer a tapped tensor (tap callback); row r is the image's row of t. */
void mdl_attn_tap(const struct mdl_model *m, struct mdl_attn_image *a, const char *name,
                  const struct eng_tensor *t, int64_t r);

/* Normalise the layer maps, weigh them, compute the CAMs. Uses r's arenas (after the forward).
 * Returns 0 or -1 with a message. */
int mdl_attn_finish(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *a);

/* The same for the n images of one forward: perturbation and gradient CAMs of images asking for
 * the same labels run through the head together (one weight pass per label for the batch rather
 * than per image). Prefer it to n calls of mdl_attn_finish. */
int mdl_attn_finish_batch(const struct mdl_model *m, struct mdl_runner *r, struct mdl_attn_image *a, int n);

/* Building blocks, also for families that keep their own maps (faceapi.c, per face):
 * the layer map M(i, j) = mean_c A(i, j, c)^2 of row r of t (a [n, h, w, c] map or [n, L, C]
 * tokens of an h x w grid) into map (h * w floats, raw); */
void mdl_attn_energy(const struct eng_tensor *t, int64_t r, int h, int w, float *map);
/* the exact CAM of a GAP + linear head, cam(i, j) = bias + sum_c wk[c * wstride] A(i, j, c), of
 * row r of t into cam (h * w floats); */
void mdl_attn_linear_map(const struct eng_tensor *t, int64_t r, int h, int w, const float *wk, size_t wstride,
                         float bias, float *cam);
/* n raw layer maps (cells[l] floats each) min-max normalised in place, and each one's weight. */
void mdl_attn_normalise(float *const *maps, const int *cells, int n, float *weight);

/* Layer l's map (m->attn.layer_h[l] x layer_w[l] floats) and CAM slot s (cam_h x cam_w) of a. */
const float *mdl_attn_layer_map(const struct mdl_model *m, const struct mdl_attn_image *a, int l);
const float *mdl_attn_cam(const struct mdl_model *m, const struct mdl_attn_image *a, int s);

#endif
