/* face-api's seven networks: weights from TF.js manifests, forward passes on NHWC batches.
 *
 *   struct mdl_fa_net net;
 *   if (mdl_fa_net_load(&net, MDL_FACE_NET_RECOGNITION, "repo/faces/face_recognition_model-weights_manifest.json") < 0)
 *       die(eng_errmsg());   // "...: weight 'conv32_down/conv/filters' has shape [7,7,3,16], expected [7,7,3,32]"
 *   struct eng_tensor x = ...;            // [n, 150, 150, 3], pixels 0..255 (overwritten)
 *   float desc[n * 128];
 *   mdl_fa_net_forward(&net, ctx, act, &x, desc);
 *   mdl_fa_net_free(&net);
 *
 * Each forward is face-api's forwardInput after toBatchTensor: the net's own mean and scale,
 * then its layers with TF 'SAME' / 'VALID' padding as face-api writes them. Batch norms and
 * face-api's "scale layers" (recognition net) are folded into the convolutions at load, the
 * activations are fused into them. Activations come from the arena and are given back before
 * the forward returns; outputs are written to the caller's floats (see mdl_face_net_outputs).
 * Internal to the faceapi family (faceapi.c).
 */
#ifndef SALIENT_MODELS_FACEAPI_NETS_H
#define SALIENT_MODELS_FACEAPI_NETS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/arena.h"
#include "engine/conv.h"
#include "engine/ctx.h"
#include "engine/linear.h"
#include "engine/tensor.h"
#include "models/faceapi.h"
#include "models/model.h"

#define MDL_FA_SSD_ANCHORS 5118
#define MDL_FA_SSD_SIDE 512
#define MDL_FA_TINY_ANCHORS 5
#define MDL_FA_HEAD_SIDE 112      /* landmarks, expression, age/gender */
#define MDL_FA_RECOGNITION_SIDE 150

/* A depthwise-separable convolution: depthwise (no bias) then pointwise (bias, activation). */
struct mdl_fa_sep {
    struct eng_conv dw, pw;
};

struct mdl_fa_ssd {
    struct eng_conv conv0;                 /* MobilenetV1/Conv2d_0: 3x3 s2 */
    struct eng_conv dw[14], pw[14];        /* Conv2d_1..13 (index 0 unused), BN folded into dw */
    struct eng_conv pred[8];               /* Prediction/Conv2d_0..7 */
    struct eng_conv box[6], cls[6];        /* BoxPredictor_0..5 */
    float *anchors;                        /* Output/extra_dim: 5118 x (ymin, xmin, ymax, xmax) */
};

struct mdl_fa_tiny {
    struct eng_conv conv0;                 /* 3x3 VALID + leaky */
    struct mdl_fa_sep conv[6];             /* conv1..5 (index 0 unused): pad 1, leaky */
    struct eng_conv conv8;                 /* 1x1 -> 25 */
};

/* face-api's FaceFeatureExtractor (4 dense blocks of 4 convs) or TinyFaceFeatureExtractor (3 of
 * 3), and the fully connected layer a FaceProcessor puts on it (landmarks, expressions). */
struct mdl_fa_dense {
    int nblocks, nconvs;
    int channels[4];
    struct eng_conv first;                 /* dense0/conv0: plain 3x3 s2 + ReLU */
    struct mdl_fa_sep sep[4][4];           /* [block][conv]; sep[0][0] unused */
    struct eng_linear fc;
};

/* FaceRecognitionNet: conv32_down, then 14 residual layers, mean, fc. */
#define MDL_FA_REC_LAYERS 14
struct mdl_fa_rec {
    struct eng_conv down;                  /* conv32_down: 7x7 s2 VALID, scale folded, ReLU */
    struct {
        struct eng_conv c1, c2;
        bool down;                         /* residualDown: c1 is 3x3 s2 VALID, shortcut avg-pooled */
    } layer[MDL_FA_REC_LAYERS];
    struct eng_linear fc;                  /* 256 -> 128, no bias */
};

/* AgeGenderNet: TinyXception(2) + two fully connected heads. */
struct mdl_fa_xception {
    struct eng_conv conv_in;               /* entry_flow/conv_in: 3x3 s2 + ReLU */
    struct {
        struct mdl_fa_sep s0, s1;
        struct eng_conv expansion;         /* 1x1 s2 on the block's input */
    } red[3];                              /* entry reduction_block_0, _1, exit reduction_block */
    struct mdl_fa_sep main_[2][3];         /* middle_flow main_block_0..1 */
    struct mdl_fa_sep exit_sep;            /* exit_flow/separable_conv (+ ReLU) */
    struct eng_linear age, gender;
};

struct mdl_fa_net {
    enum mdl_face_net kind;
    bool loaded;
    union {
        struct mdl_fa_ssd ssd;
        struct mdl_fa_tiny tiny;
        struct mdl_fa_dense dense;         /* landmarks (both), expression */
        struct mdl_fa_rec rec;
        struct mdl_fa_xception xc;
    } u;
};

/* Load net `kind` from a TF.js weights manifest. Returns 0, or -1 with a message naming the
 * file and the weight; net is then empty (safe to free). */
int mdl_fa_net_load(struct mdl_fa_net *net, enum mdl_face_net kind, const char *manifest_path);
void mdl_fa_net_free(struct mdl_fa_net *net);

/* Run net on x [n, side, side, 3] (pixels 0..255; overwritten with the normalised input) into
 * out (n x mdl_face_net_outputs(kind, side) floats). Activations from act, given back before
 * returning. taps (NULL: none) sees, while they live, the dense nets' block outputs "dense0".."dense3"
 * (the tiny landmark net's "dense0".."dense2") and TinyXception's "entry_flow", "middle_flow" and
 * "exit_flow" (the map age and gender are pooled from). Returns 0, or -1 with a message (bad side,
 * arena too small). */
int mdl_fa_net_forward(const struct mdl_fa_net *net, struct eng_ctx *ctx, struct eng_arena *act,
                       struct eng_tensor *x, float *out, const struct mdl_output *taps);

#endif
