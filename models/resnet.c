/* resnet.c: torchvision ResNet-18/34/50/101 classifiers, batch norm folded into every convolution.
 *
 * Block outputs alternate between two ping-pong buffers sized for the largest activation; a
 * block's temporaries (conv1/conv2 outputs, the downsample branch) sit above them and are
 * rewound after each block, so the arena holds two maps plus one block's worth of scratch.
 * The residual add and its ReLU are fused into the block's last convolution (eng_conv2d_res:
 * in the packed GEMM's store for a bottleneck's 1x1, else one eng_add pass after it).
 *
 * Manifest (family "resnet"):
 *   "arch": {"name": "resnet50", "block": "basic" | "bottleneck", "layers": [3, 4, 6, 3],
 *            "in_channels": 3}      (name gives torchvision's configuration)
 *   "preset": "covid" | "imagenet" | "generic" | "multilabel"
 *   "output": {"activation": "softmax" | "sigmoid" | "none"}   (default from the preset)
 *   "labels": one per fc output.
 * Weights: torchvision names (conv1, bn1, layer<i>.<j>.*, fc).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/eltwise.h"
#include "engine/error.h"
#include "engine/pooling.h"
#include "models/backbone.h"
#include "models/families.h"
#include "models/head.h"
#include "models/weights.h"

struct rn_block {
    struct eng_conv conv1, conv2, conv3; /* conv3: bottleneck only; BN folded, ReLU fused but for
                                            the last conv, whose ReLU comes after the add */
    struct eng_conv down;                /* downsample.0 + downsample.1 folded */
    bool has_down;
    int64_t cout;
};

struct rn_backbone {
    bool bottleneck;
    int layers[4];
    struct eng_conv conv1; /* 7x7/2, bn1 folded, ReLU */
    struct rn_block *blocks[4];
};

struct rn_arch_default {
    const char *name;
    bool bottleneck;
    int layers[4];
};

static const struct rn_arch_default rn_archs[] = {
    {"resnet18", false, {2, 2, 2, 2}},
    {"resnet34", false, {3, 4, 6, 3}},
    {"resnet50", true, {3, 4, 6, 3}},
    {"resnet101", true, {3, 4, 23, 3}},
    {"resnet152", true, {3, 8, 36, 3}},
};

/* Fill r from spec: a name ("name" or "arch") gives torchvision's configuration; "block" and
 * "layers" override it; "in_channels", if given, must be in_c. */
static int rn_parse_arch(struct rn_backbone *r, json_t *spec, int64_t in_c)
{
    if (spec && !json_is_object(spec))
        return eng_error("resnet 'arch' must be an object");
    const char *name = "resnet18";
    json_t *jn = spec ? json_object_get(spec, "name") : NULL;
    if (!jn && spec)
        jn = json_object_get(spec, "arch");
    if (jn) {
        if (!json_is_string(jn))
            return eng_error("resnet 'arch.name' must be a string");
        name = json_string_value(jn);
    }
    const struct rn_arch_default *a = NULL;
    for (size_t i = 0; i < sizeof rn_archs / sizeof rn_archs[0]; i++)
        if (strcmp(rn_archs[i].name, name) == 0)
            a = &rn_archs[i];
    json_t *jb = spec ? json_object_get(spec, "block") : NULL, *jl = spec ? json_object_get(spec, "layers") : NULL;
    if (!a && (!jb || !jl))
        return eng_error("unknown resnet arch '%s' (known: resnet18, resnet34, resnet50, resnet101, resnet152; "
                         "or give block and layers)", name);
    if (a) {
        r->bottleneck = a->bottleneck;
        memcpy(r->layers, a->layers, sizeof r->layers);
    }
    if (jb) {
        const char *s = json_is_string(jb) ? json_string_value(jb) : "";
        if (strcmp(s, "basic") != 0 && strcmp(s, "bottleneck") != 0)
            return eng_error("resnet 'arch.block' must be \"basic\" or \"bottleneck\"");
        r->bottleneck = strcmp(s, "bottleneck") == 0;
    }
    if (jl) {
        if (!json_is_array(jl) || json_array_size(jl) != 4)
            return eng_error("resnet 'arch.layers' must be a list of 4 block counts");
        for (size_t i = 0; i < 4; i++) {
            json_t *e = json_array_get(jl, i);
            if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 256)
                return eng_error("resnet 'arch.layers[%zu]' must be an integer in 1..256", i);
            r->layers[i] = (int)json_integer_value(e);
        }
    }
    json_t *jc = spec ? json_object_get(spec, "in_channels") : NULL;
    if (jc && (!json_is_integer(jc) || json_integer_value(jc) != in_c))
        return eng_error("resnet 'arch.in_channels' must be %lld, the input's channel count", (long long)in_c);
    return 0;
}

static void rn_free_impl(struct rn_backbone *r)
{
    if (!r)
        return;
    eng_conv_free(&r->conv1);
    for (int i = 0; i < 4; i++) {
        if (r->blocks[i])
            for (int j = 0; j < r->layers[i]; j++) {
                eng_conv_free(&r->blocks[i][j].conv1);
                eng_conv_free(&r->blocks[i][j].conv2);
                eng_conv_free(&r->blocks[i][j].conv3);
                eng_conv_free(&r->blocks[i][j].down);
            }
        free(r->blocks[i]);
    }
    free(r);
}

static void rn_bfree(struct mdl_backbone *b)
{
    rn_free_impl(b->impl);
    b->impl = NULL;
}

/* layer<i>.<j>.<conv> with layer<i>.<j>.<bn> folded in. */
static int rn_conv(const struct mdl_weights *w, int i, int j, const char *conv, const char *bn,
                   struct eng_conv_params p, enum eng_act act, struct eng_conv *out)
{
    char a[96], b[96];
    snprintf(a, sizeof a, "layer%d.%d.%s", i + 1, j, conv);
    snprintf(b, sizeof b, "layer%d.%d.%s", i + 1, j, bn);
    p.act = act;
    return mdl_load_conv(w, a, b, &p, out);
}

static int rn_bload(struct mdl_backbone *bb, const struct mdl_weights *w, json_t *spec, int64_t in_c)
{
    struct rn_backbone *r = calloc(1, sizeof *r);
    if (!r)
        return eng_error("out of memory for a resnet");
    if (rn_parse_arch(r, spec, in_c) < 0)
        goto fail;
    struct eng_conv_params p = eng_conv_torch((int)in_c, 64, 7, 2, 3, 1, 1);
    p.act = ENG_ACT_RELU;
    if (mdl_load_conv(w, "conv1", "bn1", &p, &r->conv1) < 0)
        goto fail;
    int inplanes = 64, exp = r->bottleneck ? 4 : 1;
    for (int i = 0; i < 4; i++) {
        int planes = 64 << i, stride = i == 0 ? 1 : 2;
        r->blocks[i] = calloc((size_t)r->layers[i], sizeof(struct rn_block));
        if (!r->blocks[i]) {
            eng_error("out of memory for a resnet");
            goto fail;
        }
        for (int j = 0; j < r->layers[i]; j++) {
            struct rn_block *B = &r->blocks[i][j];
            int s = j == 0 ? stride : 1;
            B->cout = (int64_t)planes * exp;
            if (r->bottleneck) {
                /* torchvision (v1.5): the stride sits on the 3x3 conv */
                if (rn_conv(w, i, j, "conv1", "bn1", eng_conv_torch(inplanes, planes, 1, 1, 0, 1, 1), ENG_ACT_RELU,
                            &B->conv1) < 0 ||
                    rn_conv(w, i, j, "conv2", "bn2", eng_conv_torch(planes, planes, 3, s, 1, 1, 1), ENG_ACT_RELU,
                            &B->conv2) < 0 ||
                    rn_conv(w, i, j, "conv3", "bn3", eng_conv_torch(planes, planes * exp, 1, 1, 0, 1, 1),
                            ENG_ACT_NONE, &B->conv3) < 0)
                    goto fail;
            } else {
                if (rn_conv(w, i, j, "conv1", "bn1", eng_conv_torch(inplanes, planes, 3, s, 1, 1, 1), ENG_ACT_RELU,
                            &B->conv1) < 0 ||
                    rn_conv(w, i, j, "conv2", "bn2", eng_conv_torch(planes, planes, 3, 1, 1, 1, 1), ENG_ACT_NONE,
                            &B->conv2) < 0)
                    goto fail;
            }
            B->has_down = s != 1 || inplanes != planes * exp;
            if (B->has_down &&
                rn_conv(w, i, j, "downsample.0", "downsample.1",
                        eng_conv_torch(inplanes, planes * exp, 1, s, 0, 1, 1), ENG_ACT_NONE, &B->down) < 0)
                goto fail;
            inplanes = planes * exp;
        }
    }
    bb->impl = r;
    bb->features = inplanes;
    return 0;
fail:
    rn_free_impl(r);
    return -1;
}

/* Every map's spatial size, to size the ping-pong buffers: the stem conv's output, then each
 * block's. Returns the largest per-image float count, or -1 with a message. */
static int64_t rn_max_map(const struct rn_backbone *r, int64_t h, int64_t w)
{
    int64_t oh, ow, best;
    struct eng_pool2d mp = eng_pool2d_make(3, 2, 1);
    if (eng_conv_out_size(&r->conv1, h, w, &oh, &ow) < 0)
        return eng_error("resnet: a %lldx%lld input is too small", (long long)h, (long long)w);
    best = oh * ow * 64;
    if (eng_pool2d_out(&mp, oh, ow, &h, &w) < 0)
        return eng_error("resnet: a %lldx%lld input is too small", (long long)h, (long long)w);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < r->layers[i]; j++) {
            const struct rn_block *B = &r->blocks[i][j];
            const struct eng_conv *sc = r->bottleneck ? &B->conv2 : &B->conv1; /* the strided one */
            if (eng_conv_out_size(sc, h, w, &oh, &ow) < 0)
                return eng_error("resnet: the input is too small for layer%d", i + 1);
            h = oh, w = ow;
            if (h * w * B->cout > best)
                best = h * w * B->cout;
        }
    return best;
}

/* One block: x -> y (y preallocated [n, oh, ow, cout]); temporaries above the arena's mark. */
static int rn_block_forward(const struct rn_backbone *r, const struct rn_block *B, struct eng_ctx *ctx,
                            struct eng_arena *act, const struct eng_tensor *x, struct eng_tensor *y)
{
    int64_t n = x->ne[0], oh = y->ne[1], ow = y->ne[2];
    size_t mark = eng_arena_mark(act);
    struct eng_tensor t1, t2, id = *x;
    int rc = -1;
    /* The identity first, so the block's last convolution can add it (and the ReLU) in its
     * GEMM's store (eng_conv2d_res) instead of a separate pass over y. */
    if (B->has_down && (mdl_alloc(act, "downsample", 4, (int64_t[]){n, oh, ow, B->cout}, &id) < 0 ||
                        eng_conv2d(ctx, &B->down, x, &id) < 0))
        goto out;
    if (r->bottleneck) {
        if (mdl_alloc(act, "conv1", 4, (int64_t[]){n, x->ne[1], x->ne[2], B->conv1.p.cout}, &t1) < 0 ||
            eng_conv2d(ctx, &B->conv1, x, &t1) < 0 ||
            mdl_alloc(act, "conv2", 4, (int64_t[]){n, oh, ow, B->conv2.p.cout}, &t2) < 0 ||
            eng_conv2d(ctx, &B->conv2, &t1, &t2) < 0)
            goto out;
        rc = eng_conv2d_res(ctx, &B->conv3, &t2, &id, ENG_ACT_RELU, 0.0f, y);
    } else {
        if (mdl_alloc(act, "conv1", 4, (int64_t[]){n, oh, ow, B->conv1.p.cout}, &t1) < 0 ||
            eng_conv2d(ctx, &B->conv1, x, &t1) < 0)
            goto out;
        rc = eng_conv2d_res(ctx, &B->conv2, &t1, &id, ENG_ACT_RELU, 0.0f, y);
    }
out:
    eng_arena_rewind(act, mark);
    return rc;
}

static int rn_bforward(const struct mdl_backbone *bb, struct eng_ctx *ctx, struct eng_arena *act,
                       const struct eng_tensor *x, struct eng_tensor *fmap, const struct mdl_output *out)
{
    const struct rn_backbone *r = bb->impl;
    if (x->ndim != 4 || x->ne[3] != bb->in_c)
        return eng_error("resnet: input must be [n,h,w,%lld]", (long long)bb->in_c);
    int64_t n = x->ne[0], h, w, oh, ow;
    int64_t most = rn_max_map(r, x->ne[1], x->ne[2]);
    if (most < 0)
        return -1;
    float *buf[2];
    buf[0] = eng_arena_floats(act, (size_t)(n * most));
    buf[1] = buf[0] ? eng_arena_floats(act, (size_t)(n * most)) : NULL;
    if (!buf[1])
        return -1;
    eng_conv_out_size(&r->conv1, x->ne[1], x->ne[2], &oh, &ow);
    struct eng_tensor s = eng_tensor_make("conv1", buf[0], 4, (int64_t[]){n, oh, ow, 64});
    if (eng_conv2d(ctx, &r->conv1, x, &s) < 0)
        return -1;
    struct eng_pool2d mp = eng_pool2d_make(3, 2, 1);
    eng_pool2d_out(&mp, oh, ow, &h, &w);
    struct eng_tensor cur = eng_tensor_make("maxpool", buf[1], 4, (int64_t[]){n, h, w, 64});
    if (eng_max_pool2d(ctx, &mp, &s, &cur) < 0)
        return -1;
    int which = 1;
    char name[32];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < r->layers[i]; j++) {
            const struct rn_block *B = &r->blocks[i][j];
            eng_conv_out_size(r->bottleneck ? &B->conv2 : &B->conv1, cur.ne[1], cur.ne[2], &oh, &ow);
            snprintf(name, sizeof name, "layer%d", i + 1);
            struct eng_tensor y = eng_tensor_make(name, buf[1 - which], 4, (int64_t[]){n, oh, ow, B->cout});
            if (rn_block_forward(r, B, ctx, act, &cur, &y) < 0)
                return -1;
            cur = y;
            which = 1 - which;
        }
        mdl_tap(out, cur.name, &cur);
    }
    snprintf(cur.name, sizeof cur.name, "features");
    *fmap = cur;
    mdl_tap(out, "features", fmap);
    return 0;
}

const struct mdl_backbone_ops mdl_backbone_resnet = {"resnet", rn_bload, rn_bfree, rn_bforward};

/* ---- the classifier family --------------------------------------------------------------------- */

/* The head's activation from "preset" and "output" (output wins); no calibration here. */
static int rn_parse_output(json_t *man, enum mdl_out_act *act, bool *calibrate)
{
    json_t *jp = json_object_get(man, "preset");
    *act = MDL_OUT_SOFTMAX;
    if (jp) {
        const char *s = json_is_string(jp) ? json_string_value(jp) : "";
        if (strcmp(s, "multilabel") == 0)
            *act = MDL_OUT_SIGMOID;
        else if (strcmp(s, "covid") != 0 && strcmp(s, "imagenet") != 0 && strcmp(s, "generic") != 0)
            return eng_error("unknown resnet preset '%s' (known: covid, imagenet, generic, multilabel)", s);
    }
    *calibrate = false;
    return mdl_head_parse_output(man, false, act, calibrate);
}

/* The input must survive the stem and every stride; the taps are the stages and "features". */
static int rn_finish(struct mdl_model *m, const struct mdl_backbone *bb)
{
    if (rn_max_map(bb->impl, m->in_h, m->in_w) < 0)
        return -1;
    mdl_model_add_tap(m, "layer1");
    mdl_model_add_tap(m, "layer2");
    mdl_model_add_tap(m, "layer3");
    mdl_model_add_tap(m, "layer4");
    mdl_model_add_tap(m, "features");
    return 0;
}

static const struct mdl_cnn_spec rn_spec = {"resnet", "fc", rn_parse_output, rn_finish};

static int rn_load(struct mdl_model *m)
{
    return mdl_cnn_load(m, &rn_spec);
}

const struct mdl_family mdl_family_resnet = {
    .name = "resnet",
    .load = rn_load,
    .free = mdl_cnn_free,
    .forward = mdl_cnn_forward,
    .class_weights = mdl_cnn_class_weights,
    .head_probs = mdl_cnn_head_probs,
};
