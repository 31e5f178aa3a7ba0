/* densenet.c: torchvision DenseNet (CheXNet, torchxrayvision, generic heads) with zero-copy concatenation.
 *
 * Each dense block owns one NHWC buffer as wide as the block's final channel count. The block's
 * input is written into its channel prefix (by the stem's max pool or the previous transition's
 * conv); layer l reads the prefix [0, c) through norm1 + ReLU (that norm follows a concatenation,
 * so it cannot be folded into a weight: eng_conv2d_pre applies it while the packed GEMM packs the
 * prefix's rows, or into a temporary without it), runs conv1 (1x1, norm2 folded, ReLU fused) and lets
 * conv2 (3x3) write its growth_rate channels straight into the slice [c, c + growth). torch.cat
 * never happens.
 *
 * Manifest (family "densenet"):
 *   "arch": {"name": "densenet121", "growth_rate": 32, "block_config": [6, 12, 24, 16],
 *            "num_init_features": 64, "bn_size": 4, "in_channels": 3}   (name gives defaults)
 *   "preset": "chexnet" | "xrv" | "imagenet" | "generic" | "multilabel"
 *   "output": {"activation": "sigmoid" | "softmax" | "none", "calibration": "op_threshs" | "none"}
 *             (defaults from the preset; op_threshs is torchxrayvision's operating-point
 *             calibration with thresholds in the tensor "op_threshs" [nout])
 *   "labels": one per classifier output.
 * Weights: torchvision names (features.*, classifier.*).
 */
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

#define DN_MAX_BLOCKS 8

struct dn_layer {
    struct mdl_bn norm1;   /* + ReLU, applied to the channel prefix the layer reads */
    struct eng_conv conv1; /* 1x1 to bn_size * growth, norm2 folded, ReLU fused */
    struct eng_conv conv2; /* 3x3 to growth, written into the block buffer */
};

struct dn_trans {
    struct mdl_bn norm;   /* + ReLU */
    struct eng_conv conv; /* 1x1 halving the channels; run after the 2x2 average pool, which
                             commutes with it (both linear, no bias) and leaves it 4x less work */
};

struct dn_backbone {
    int growth, bn_size, init_features, nblocks;
    int block_config[DN_MAX_BLOCKS];
    int64_t block_in[DN_MAX_BLOCKS];  /* channels entering block b */
    int64_t block_out[DN_MAX_BLOCKS]; /* channels leaving it: the width of its buffer */
    struct eng_conv conv0;            /* 7x7/2, norm0 folded, ReLU */
    struct dn_layer *layers[DN_MAX_BLOCKS];
    struct dn_trans trans[DN_MAX_BLOCKS];
    struct mdl_bn norm5;              /* + ReLU: torchvision's forward applies F.relu after it */
};

/* ---- architecture from JSON ---------------------------------------------------------------- */

struct dn_arch_default {
    const char *name;
    int growth, init;
    int nblocks;
    int blocks[4];
};

static const struct dn_arch_default dn_archs[] = {
    {"densenet121", 32, 64, 4, {6, 12, 24, 16}},
    {"densenet161", 48, 96, 4, {6, 12, 36, 24}},
    {"densenet169", 32, 64, 4, {6, 12, 32, 32}},
    {"densenet201", 32, 64, 4, {6, 12, 48, 32}},
};

/* Optional integer spec[key] in [lo, hi] into *v. */
static int dn_int(json_t *spec, const char *key, int lo, int hi, int *v)
{
    json_t *j = spec ? json_object_get(spec, key) : NULL;
    if (!j)
        return 0;
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return eng_error("densenet 'arch.%s' must be an integer in %d..%d", key, lo, hi);
    *v = (int)json_integer_value(j);
    return 0;
}

/* Fill d's numbers from spec: a name ("name" or "arch") gives torchvision's configuration,
 * explicit fields override it. in_c is the input channel count the caller feeds. */
static int dn_parse_arch(struct dn_backbone *d, json_t *spec, int64_t in_c)
{
    if (spec && !json_is_object(spec))
        return eng_error("densenet 'arch' must be an object");
    const char *name = "densenet121";
    json_t *jn = spec ? json_object_get(spec, "name") : NULL;
    if (!jn && spec)
        jn = json_object_get(spec, "arch");
    if (jn) {
        if (!json_is_string(jn))
            return eng_error("densenet 'arch.name' must be a string");
        name = json_string_value(jn);
    }
    const struct dn_arch_default *a = NULL;
    for (size_t i = 0; i < sizeof dn_archs / sizeof dn_archs[0]; i++)
        if (strcmp(dn_archs[i].name, name) == 0)
            a = &dn_archs[i];
    json_t *jb = spec ? json_object_get(spec, "block_config") : NULL;
    if (!a && !jb)
        return eng_error("unknown densenet arch '%s' (known: densenet121, densenet161, densenet169, densenet201; "
                         "or give growth_rate, block_config, num_init_features)", name);
    if (!a)
        a = &dn_archs[0];
    d->growth = a->growth;
    d->init_features = a->init;
    d->bn_size = 4;
    d->nblocks = a->nblocks;
    memcpy(d->block_config, a->blocks, sizeof a->blocks);
    int inc = (int)in_c;
    if (dn_int(spec, "growth_rate", 1, 1024, &d->growth) < 0 || dn_int(spec, "bn_size", 1, 64, &d->bn_size) < 0 ||
        dn_int(spec, "num_init_features", 1, 4096, &d->init_features) < 0 ||
        dn_int(spec, "in_channels", 1, 64, &inc) < 0)
        return -1;
    if (inc != in_c)
        return eng_error("densenet 'arch.in_channels' is %d, but the input has %lld channels", inc, (long long)in_c);
    if (jb) {
        size_t nb = json_is_array(jb) ? json_array_size(jb) : 0;
        if (nb < 1 || nb > DN_MAX_BLOCKS)
            return eng_error("densenet 'arch.block_config' must be a list of 1..%d layer counts", DN_MAX_BLOCKS);
        d->nblocks = (int)nb;
        for (size_t i = 0; i < nb; i++) {
            json_t *e = json_array_get(jb, i);
            if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 512)
                return eng_error("densenet 'arch.block_config[%zu]' must be an integer in 1..512", i);
            d->block_config[i] = (int)json_integer_value(e);
        }
    }
    return 0;
}

/* ---- backbone ops ---------------------------------------------------------------------------- */

static void dn_free_impl(struct dn_backbone *d)
{
    if (!d)
        return;
    eng_conv_free(&d->conv0);
    for (int b = 0; b < d->nblocks; b++) {
        if (d->layers[b])
            for (int l = 0; l < d->block_config[b]; l++) {
                mdl_bn_free(&d->layers[b][l].norm1);
                eng_conv_free(&d->layers[b][l].conv1);
                eng_conv_free(&d->layers[b][l].conv2);
            }
        free(d->layers[b]);
        mdl_bn_free(&d->trans[b].norm);
        eng_conv_free(&d->trans[b].conv);
    }
    mdl_bn_free(&d->norm5);
    free(d);
}

static void dn_bfree(struct mdl_backbone *b)
{
    dn_free_impl(b->impl);
    b->impl = NULL;
}

static int dn_bload(struct mdl_backbone *bb, const struct mdl_weights *w, json_t *spec, int64_t in_c)
{
    struct dn_backbone *d = calloc(1, sizeof *d);
    if (!d)
        return eng_error("out of memory for a densenet");
    if (dn_parse_arch(d, spec, in_c) < 0)
        goto fail;
    struct eng_conv_params p = eng_conv_torch((int)in_c, d->init_features, 7, 2, 3, 1, 1);
    p.act = ENG_ACT_RELU;
    if (mdl_load_conv(w, "features.conv0", "features.norm0", &p, &d->conv0) < 0)
        goto fail;
    int64_t c = d->init_features;
    int g = d->growth, bott = d->bn_size * d->growth;
    char a[160], b2[160];
    for (int b = 0; b < d->nblocks; b++) {
        d->block_in[b] = c;
        d->layers[b] = calloc((size_t)d->block_config[b], sizeof(struct dn_layer));
        if (!d->layers[b]) {
            eng_error("out of memory for a densenet");
            goto fail;
        }
        for (int l = 0; l < d->block_config[b]; l++) {
            struct dn_layer *L = &d->layers[b][l];
            int64_t cl = c + (int64_t)l * g;
            snprintf(a, sizeof a, "features.denseblock%d.denselayer%d.norm1", b + 1, l + 1);
            if (mdl_load_bn(w, a, cl, ENG_ACT_RELU, &L->norm1) < 0)
                goto fail;
            struct eng_conv_params p1 = eng_conv_torch((int)cl, bott, 1, 1, 0, 1, 1);
            p1.act = ENG_ACT_RELU;
            snprintf(a, sizeof a, "features.denseblock%d.denselayer%d.conv1", b + 1, l + 1);
            snprintf(b2, sizeof b2, "features.denseblock%d.denselayer%d.norm2", b + 1, l + 1);
            if (mdl_load_conv(w, a, b2, &p1, &L->conv1) < 0)
                goto fail;
            struct eng_conv_params p2 = eng_conv_torch(bott, g, 3, 1, 1, 1, 1);
            snprintf(a, sizeof a, "features.denseblock%d.denselayer%d.conv2", b + 1, l + 1);
            if (mdl_load_conv(w, a, NULL, &p2, &L->conv2) < 0)
                goto fail;
        }
        c += (int64_t)d->block_config[b] * g;
        d->block_out[b] = c;
        if (b + 1 < d->nblocks) {
            snprintf(a, sizeof a, "features.transition%d.norm", b + 1);
            if (mdl_load_bn(w, a, c, ENG_ACT_RELU, &d->trans[b].norm) < 0)
                goto fail;
            struct eng_conv_params pt = eng_conv_torch((int)c, (int)(c / 2), 1, 1, 0, 1, 1);
            snprintf(a, sizeof a, "features.transition%d.conv", b + 1);
            if (mdl_load_conv(w, a, NULL, &pt, &d->trans[b].conv) < 0)
                goto fail;
            c /= 2;
        }
    }
    if (mdl_load_bn(w, "features.norm5", c, ENG_ACT_RELU, &d->norm5) < 0)
        goto fail;
    bb->impl = d;
    bb->features = c;
    return 0;
fail:
    dn_free_impl(d);
    return -1;
}

/* Spatial size after the stem (conv0 + pool0) and each transition; -1 with a message if the
 * input is too small for the network. */
static int dn_sizes(const struct dn_backbone *d, int64_t h, int64_t w, int64_t hs[], int64_t ws[])
{
    int64_t h0, w0;
    struct eng_pool2d mp = eng_pool2d_make(3, 2, 1), ap = eng_pool2d_make(2, 2, 0);
    if (eng_conv_out_size(&d->conv0, h, w, &h0, &w0) < 0 || eng_pool2d_out(&mp, h0, w0, &hs[0], &ws[0]) < 0)
        return eng_error("densenet: a %lldx%lld input is too small", (long long)h, (long long)w);
    for (int b = 1; b < d->nblocks; b++)
        if (hs[b - 1] < 2 || ws[b - 1] < 2 || eng_pool2d_out(&ap, hs[b - 1], ws[b - 1], &hs[b], &ws[b]) < 0)
            return eng_error("densenet: a %lldx%lld input is too small for %d dense blocks", (long long)h,
                             (long long)w, d->nblocks);
    return 0;
}

static int dn_bforward(const struct mdl_backbone *bb, struct eng_ctx *ctx, struct eng_arena *act,
                       const struct eng_tensor *x, struct eng_tensor *fmap, const struct mdl_output *out)
{
    const struct dn_backbone *d = bb->impl;
    char name[32];
    if (x->ndim != 4 || x->ne[3] != bb->in_c)
        return eng_error("densenet: input must be [n,h,w,%lld]", (long long)bb->in_c);
    int64_t n = x->ne[0], hs[DN_MAX_BLOCKS], ws[DN_MAX_BLOCKS], h0, w0;
    if (dn_sizes(d, x->ne[1], x->ne[2], hs, ws) < 0)
        return -1;
    eng_conv_out_size(&d->conv0, x->ne[1], x->ne[2], &h0, &w0);

    /* Block 1's buffer first, then the stem's output above it: the stem dies after pool0 and
     * its space goes back to the layers' temporaries. */
    size_t buf_mark = eng_arena_mark(act);
    struct eng_tensor buf, s, t, u, pool;
    if (mdl_alloc(act, "denseblock1", 4, (int64_t[]){n, hs[0], ws[0], d->block_out[0]}, &buf) < 0)
        return -1;
    size_t m = eng_arena_mark(act);
    if (mdl_alloc(act, "features.conv0", 4, (int64_t[]){n, h0, w0, d->init_features}, &s) < 0 ||
        eng_conv2d(ctx, &d->conv0, x, &s) < 0)
        return -1;
    struct eng_pool2d mp = eng_pool2d_make(3, 2, 1), ap = eng_pool2d_make(2, 2, 0);
    struct eng_tensor prefix = eng_tensor_slice(&buf, 3, 0, d->init_features);
    if (eng_max_pool2d(ctx, &mp, &s, &prefix) < 0)
        return -1;
    eng_arena_rewind(act, m);

    for (int b = 0; b < d->nblocks; b++) {
        int64_t h = hs[b], w = ws[b], c = d->block_in[b];
        int64_t bott = (int64_t)d->bn_size * d->growth;
        for (int l = 0; l < d->block_config[b]; l++, c += d->growth) {
            const struct dn_layer *L = &d->layers[b][l];
            size_t ml = eng_arena_mark(act);
            struct eng_tensor in = eng_tensor_slice(&buf, 3, 0, c);
            struct eng_tensor o = eng_tensor_slice(&buf, 3, c, d->growth);
            if (mdl_alloc(act, "norm1", 4, (int64_t[]){n, h, w, c}, &t) < 0 ||
                mdl_alloc(act, "conv1", 4, (int64_t[]){n, h, w, bott}, &u) < 0 ||
                eng_conv2d_pre(ctx, &L->conv1, &L->norm1.aff, &in, &t, &u) < 0 ||
                eng_conv2d(ctx, &L->conv2, &u, &o) < 0)
                return -1;
            eng_arena_rewind(act, ml);
        }
        snprintf(name, sizeof name, "denseblock%d", b + 1);
        mdl_tap(out, name, &buf);
        if (b + 1 == d->nblocks)
            break;
        /* Transition: norm + ReLU in place (the block's output is dead once tapped), pool, then
         * the 1x1 conv straight into the next block's prefix. */
        const struct dn_trans *T = &d->trans[b];
        if (eng_affine(ctx, &T->norm.aff, &buf, &buf) < 0 ||
            mdl_alloc(act, "transition.pool", 4, (int64_t[]){n, hs[b + 1], ws[b + 1], d->block_out[b]}, &pool) < 0 ||
            eng_avg_pool2d(ctx, &ap, &buf, &pool) < 0)
            return -1;
        /* The next block's buffer may take this block's place if it ends before the pooled tensor
         * starts: it does for torchvision's DenseNets (a quarter of the pixels, at most twice the
         * channels), so the arena holds about one block buffer rather than all of them. */
        size_t need = (size_t)(n * hs[b + 1] * ws[b + 1] * d->block_out[b + 1]) * sizeof(float);
        if (need <= (size_t)((char *)pool.data - (char *)buf.data))
            eng_arena_rewind(act, buf_mark);
        else
            buf_mark = eng_arena_mark(act);
        snprintf(name, sizeof name, "denseblock%d", b + 2);
        if (mdl_alloc(act, name, 4, (int64_t[]){n, hs[b + 1], ws[b + 1], d->block_out[b + 1]}, &buf) < 0)
            return -1;
        prefix = eng_tensor_slice(&buf, 3, 0, d->block_in[b + 1]);
        if (eng_conv2d(ctx, &T->conv, &pool, &prefix) < 0)
            return -1;
    }
    /* norm5 + ReLU in place: the last block's output has been tapped. */
    if (eng_affine(ctx, &d->norm5.aff, &buf, &buf) < 0)
        return -1;
    snprintf(buf.name, sizeof buf.name, "features");
    *fmap = buf;
    mdl_tap(out, "features", fmap);
    return 0;
}

const struct mdl_backbone_ops mdl_backbone_densenet = {"densenet", dn_bload, dn_bfree, dn_bforward};

/* ---- the classifier family --------------------------------------------------------------------- */

/* The head's post-processing from "preset" and "output" (output wins). */
static int dn_parse_output(json_t *man, enum mdl_out_act *act, bool *calibrate)
{
    static const char *const presets[] = {"chexnet", "xrv", "imagenet", "generic", "multilabel"};
    json_t *jp = json_object_get(man, "preset");
    const char *preset = "chexnet";
    if (jp) {
        if (!json_is_string(jp))
            return eng_error("'preset' must be a string");
        preset = json_string_value(jp);
        size_t i;
        for (i = 0; i < sizeof presets / sizeof presets[0]; i++)
            if (strcmp(presets[i], preset) == 0)
                break;
        if (i == sizeof presets / sizeof presets[0])
            return eng_error("unknown densenet preset '%s' (known: chexnet, xrv, imagenet, generic, multilabel)",
                             preset);
    }
    *act = (strcmp(preset, "imagenet") == 0 || strcmp(preset, "generic") == 0) ? MDL_OUT_SOFTMAX : MDL_OUT_SIGMOID;
    *calibrate = strcmp(preset, "xrv") == 0;
    return mdl_head_parse_output(man, true, act, calibrate);
}

/* The input must survive every pooling; the taps are the blocks' outputs and "features". */
static int dn_finish(struct mdl_model *m, const struct mdl_backbone *bb)
{
    const struct dn_backbone *d = bb->impl;
    int64_t hs[DN_MAX_BLOCKS], ws[DN_MAX_BLOCKS];
    if (dn_sizes(d, m->in_h, m->in_w, hs, ws) < 0)
        return -1;
    char name[32];
    for (int b = 0; b < d->nblocks; b++) {
        snprintf(name, sizeof name, "denseblock%d", b + 1);
        mdl_model_add_tap(m, name);
    }
    mdl_model_add_tap(m, "features");
    return 0;
}

static const struct mdl_cnn_spec dn_spec = {"densenet", "classifier", dn_parse_output, dn_finish};

static int dn_load(struct mdl_model *m)
{
    return mdl_cnn_load(m, &dn_spec);
}

const struct mdl_family mdl_family_densenet = {
    .name = "densenet",
    .load = dn_load,
    .free = mdl_cnn_free,
    .forward = mdl_cnn_forward,
    .class_weights = mdl_cnn_class_weights,
    .head_probs = mdl_cnn_head_probs,
};
