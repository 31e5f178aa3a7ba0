/* faceapi_nets.c: face-api's networks (SSD MobileNetV1, TinyFaceDetector, the 68-landmark nets, FaceRecognitionNet, FaceExpressionNet, AgeGenderNet) on engine ops. */
#include "models/faceapi_nets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/eltwise.h"
#include "engine/error.h"
#include "engine/pooling.h"
#include "engine/tfjs.h"

#define PAD_SAME (-1)
/* MobileNetV1's batch norm epsilon as face-api spells it (0.001 in float32). */
#define SSD_BN_EPS 0.0010000000474974513f

static const float head_mean[3] = {122.782f, 117.001f, 104.298f};    /* FaceFeatureExtractor, TinyXception, FaceRecognitionNet */
static const float tiny_mean[3] = {117.001f, 114.697f, 97.404f};     /* TinyFaceDetector's MEAN_RGB */

/* ---- loading ---- */

/* Weight `name` of exactly `shape` as fp32 in a malloc'd buffer; NULL with the reader's message. */
static float *read_w(const struct eng_tfjs *w, const char *name, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!d) {
        eng_error("out of memory for weight '%s'", name);
        return NULL;
    }
    if (eng_tfjs_read(w, name, ndim, shape, d) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* Square kernel k, stride, padding (PAD_SAME: TF 'SAME'; else that many zeros on every side). */
static struct eng_conv_params conv_params(int k, int cin, int cout, int stride, int pad, int groups, enum eng_act act)
{
    struct eng_conv_params p = eng_conv_torch(cin, cout, k, stride, pad < 0 ? 0 : pad, 1, groups);
    p.pad_same = pad == PAD_SAME;
    p.act = act;
    p.act_param = act == ENG_ACT_LEAKY_RELU ? 0.1f : 0.0f; /* tinyYolov2's leaky: slope 0.1 */
    return p;
}

/* filters [k, k, cin, cout] and bias [cout] (bname may be NULL). With scale_w/scale_b (the
 * recognition net's scale layer, (conv + b) * s + t) the scale is folded into filters and bias. */
static int load_conv(struct eng_conv *c, const struct eng_tfjs *w, const char *fname, const char *bname, int k,
                     int cin, int cout, int stride, int pad, enum eng_act act, const char *scale_w,
                     const char *scale_b)
{
    int rc = -1;
    float *f = read_w(w, fname, 4, (int64_t[]){k, k, cin, cout}), *b = NULL, *s = NULL, *t = NULL;
    if (!f)
        return -1;
    if (bname && !(b = read_w(w, bname, 1, (int64_t[]){cout})))
        goto out;
    if (scale_w) {
        if (!b || !(s = read_w(w, scale_w, 1, (int64_t[]){cout})) || !(t = read_w(w, scale_b, 1, (int64_t[]){cout})))
            goto out;
        for (int64_t i = 0; i < (int64_t)k * k * cin; i++)
            for (int o = 0; o < cout; o++)
                f[i * cout + o] *= s[o];
        for (int o = 0; o < cout; o++)
            b[o] = b[o] * s[o] + t[o];
    }
    struct eng_conv_params p = conv_params(k, cin, cout, stride, pad, 1, act);
    rc = eng_conv_init_hwio(c, fname, &p, f, b);
    if (rc == 0)
        eng_conv_drop_unpacked(c);
out:
    free(f), free(b), free(s), free(t);
    return rc;
}

/* A 3x3 depthwise filter [3, 3, cin, 1] (no bias). */
static int load_dw(struct eng_conv *c, const struct eng_tfjs *w, const char *fname, int cin, int stride, int pad,
                   enum eng_act act)
{
    float *f = read_w(w, fname, 4, (int64_t[]){3, 3, cin, 1});
    if (!f)
        return -1;
    struct eng_conv_params p = conv_params(3, cin, cin, stride, pad, cin, act);
    int rc = eng_conv_init_hwio(c, fname, &p, f, NULL);
    free(f);
    return rc;
}

/* prefix/depthwise_filter, prefix/pointwise_filter, prefix/bias: face-api's separable conv. */
static int load_sep(struct mdl_fa_sep *s, const struct eng_tfjs *w, const char *prefix, int cin, int cout,
                    int stride, int pad, enum eng_act act)
{
    char dw[160], pw[160], b[160];
    snprintf(dw, sizeof dw, "%s/depthwise_filter", prefix);
    snprintf(pw, sizeof pw, "%s/pointwise_filter", prefix);
    snprintf(b, sizeof b, "%s/bias", prefix);
    if (load_dw(&s->dw, w, dw, cin, stride, pad, ENG_ACT_NONE) < 0)
        return -1;
    return load_conv(&s->pw, w, pw, b, 1, cin, cout, 1, 0, act, NULL, NULL);
}

static void free_sep(struct mdl_fa_sep *s)
{
    eng_conv_free(&s->dw);
    eng_conv_free(&s->pw);
}

/* A fully connected layer, TF layout [in, out] (+ bias [out] unless bname is NULL). */
static int load_fc(struct eng_linear *l, const struct eng_tfjs *w, const char *wname, const char *bname, int in,
                   int out)
{
    int rc = -1;
    float *W = read_w(w, wname, 2, (int64_t[]){in, out}), *b = NULL, *wt = NULL;
    if (!W)
        return -1;
    if (bname && !(b = read_w(w, bname, 1, (int64_t[]){out})))
        goto done;
    if (!(wt = malloc((size_t)in * (size_t)out * sizeof(float)))) {
        eng_error("out of memory for weight '%s'", wname);
        goto done;
    }
    for (int i = 0; i < in; i++)
        for (int o = 0; o < out; o++)
            wt[(size_t)o * in + i] = W[(size_t)i * out + o];
    rc = eng_linear_init(l, wname, in, out, wt, b, ENG_ACT_NONE, 0.0f);
done:
    free(W), free(b), free(wt);
    return rc;
}

static const int ssd_channels[14] = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
static const int ssd_pred_k[8] = {1, 3, 1, 3, 1, 3, 1, 3};
static const int ssd_pred_cin[8] = {1024, 256, 512, 128, 256, 128, 256, 64};
static const int ssd_pred_cout[8] = {256, 512, 128, 256, 128, 256, 64, 128};
static const int ssd_box_cin[6] = {512, 1024, 512, 256, 256, 128};
static const int ssd_box_anchors[6] = {3, 6, 6, 6, 6, 6};

static int load_ssd(struct mdl_fa_ssd *s, const struct eng_tfjs *w)
{
    char f[160], b[160], g[160], be[160], mu[160], var[160];
    if (load_conv(&s->conv0, w, "MobilenetV1/Conv2d_0_pointwise/weights",
                  "MobilenetV1/Conv2d_0_pointwise/convolution_bn_offset", 3, 3, 32, 2, PAD_SAME, ENG_ACT_RELU6, NULL,
                  NULL) < 0)
        return -1;
    for (int i = 1; i <= 13; i++) {
        int cin = ssd_channels[i - 1], cout = ssd_channels[i];
        int stride = (i == 2 || i == 4 || i == 6 || i == 12) ? 2 : 1;
        snprintf(f, sizeof f, "MobilenetV1/Conv2d_%d_depthwise/depthwise_weights", i);
        if (load_dw(&s->dw[i], w, f, cin, stride, PAD_SAME, ENG_ACT_RELU6) < 0)
            return -1;
        snprintf(g, sizeof g, "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/gamma", i);
        snprintf(be, sizeof be, "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/beta", i);
        snprintf(mu, sizeof mu, "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/moving_mean", i);
        snprintf(var, sizeof var, "MobilenetV1/Conv2d_%d_depthwise/BatchNorm/moving_variance", i);
        int64_t sh[1] = {cin};
        float *bn[4] = {read_w(w, g, 1, sh), NULL, NULL, NULL};
        if (bn[0])
            bn[1] = read_w(w, be, 1, sh);
        if (bn[1])
            bn[2] = read_w(w, mu, 1, sh);
        if (bn[2])
            bn[3] = read_w(w, var, 1, sh);
        int rc = bn[3] ? eng_conv_fold_bn(&s->dw[i], bn[0], bn[1], bn[2], bn[3], SSD_BN_EPS) : -1;
        for (int k = 0; k < 4; k++)
            free(bn[k]);
        if (rc < 0)
            return -1;
        snprintf(f, sizeof f, "MobilenetV1/Conv2d_%d_pointwise/weights", i);
        snprintf(b, sizeof b, "MobilenetV1/Conv2d_%d_pointwise/convolution_bn_offset", i);
        if (load_conv(&s->pw[i], w, f, b, 1, cin, cout, 1, PAD_SAME, ENG_ACT_RELU6, NULL, NULL) < 0)
            return -1;
    }
    for (int i = 0; i < 8; i++) {
        snprintf(f, sizeof f, "Prediction/Conv2d_%d_pointwise/weights", i);
        snprintf(b, sizeof b, "Prediction/Conv2d_%d_pointwise/convolution_bn_offset", i);
        if (load_conv(&s->pred[i], w, f, b, ssd_pred_k[i], ssd_pred_cin[i], ssd_pred_cout[i], ssd_pred_k[i] == 3 ? 2 : 1,
                      PAD_SAME, ENG_ACT_RELU6, NULL, NULL) < 0)
            return -1;
    }
    for (int i = 0; i < 6; i++) {
        snprintf(f, sizeof f, "Prediction/BoxPredictor_%d/BoxEncodingPredictor/weights", i);
        snprintf(b, sizeof b, "Prediction/BoxPredictor_%d/BoxEncodingPredictor/biases", i);
        if (load_conv(&s->box[i], w, f, b, 1, ssd_box_cin[i], 4 * ssd_box_anchors[i], 1, PAD_SAME, ENG_ACT_NONE,
                      NULL, NULL) < 0)
            return -1;
        snprintf(f, sizeof f, "Prediction/BoxPredictor_%d/ClassPredictor/weights", i);
        snprintf(b, sizeof b, "Prediction/BoxPredictor_%d/ClassPredictor/biases", i);
        if (load_conv(&s->cls[i], w, f, b, 1, ssd_box_cin[i], 3 * ssd_box_anchors[i], 1, PAD_SAME, ENG_ACT_NONE,
                      NULL, NULL) < 0)
            return -1;
    }
    s->anchors = read_w(w, "Output/extra_dim", 3, (int64_t[]){1, MDL_FA_SSD_ANCHORS, 4});
    return s->anchors ? 0 : -1;
}

static void free_ssd(struct mdl_fa_ssd *s)
{
    eng_conv_free(&s->conv0);
    for (int i = 0; i < 14; i++)
        eng_conv_free(&s->dw[i]), eng_conv_free(&s->pw[i]);
    for (int i = 0; i < 8; i++)
        eng_conv_free(&s->pred[i]);
    for (int i = 0; i < 6; i++)
        eng_conv_free(&s->box[i]), eng_conv_free(&s->cls[i]);
    free(s->anchors);
    s->anchors = NULL;
}

static int load_tiny(struct mdl_fa_tiny *t, const struct eng_tfjs *w)
{
    static const int ch[6] = {16, 32, 64, 128, 256, 512};
    if (load_conv(&t->conv0, w, "conv0/filters", "conv0/bias", 3, 3, 16, 1, 0, ENG_ACT_LEAKY_RELU, NULL, NULL) < 0)
        return -1;
    for (int i = 1; i <= 5; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "conv%d", i);
        /* tinyYolov2's separable conv pads 1 explicitly, then runs 'valid' */
        if (load_sep(&t->conv[i], w, prefix, ch[i - 1], ch[i], 1, 1, ENG_ACT_LEAKY_RELU) < 0)
            return -1;
    }
    return load_conv(&t->conv8, w, "conv8/filters", "conv8/bias", 1, 512, MDL_FA_TINY_ANCHORS * 5, 1, 0, ENG_ACT_NONE,
                     NULL, NULL);
}

static void free_tiny(struct mdl_fa_tiny *t)
{
    eng_conv_free(&t->conv0);
    for (int i = 0; i < 6; i++)
        free_sep(&t->conv[i]);
    eng_conv_free(&t->conv8);
}

static int load_dense(struct mdl_fa_dense *d, const struct eng_tfjs *w, bool tiny, int nout)
{
    d->nblocks = d->nconvs = tiny ? 3 : 4;
    for (int b = 0; b < 4; b++)
        d->channels[b] = 32 << b;
    if (load_conv(&d->first, w, "dense0/conv0/filters", "dense0/conv0/bias", 3, 3, 32, 2, PAD_SAME, ENG_ACT_RELU, NULL,
                  NULL) < 0)
        return -1;
    for (int b = 0; b < d->nblocks; b++)
        for (int k = b == 0 ? 1 : 0; k < d->nconvs; k++) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "dense%d/conv%d", b, k);
            int cin = k == 0 ? d->channels[b - 1] : d->channels[b];
            if (load_sep(&d->sep[b][k], w, prefix, cin, d->channels[b], k == 0 ? 2 : 1, PAD_SAME,
                         k == 0 ? ENG_ACT_RELU : ENG_ACT_NONE) < 0)
                return -1;
        }
    return load_fc(&d->fc, w, "fc/weights", "fc/bias", d->channels[d->nblocks - 1], nout);
}

static void free_dense(struct mdl_fa_dense *d)
{
    eng_conv_free(&d->first);
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 4; k++)
            free_sep(&d->sep[b][k]);
    eng_linear_free(&d->fc);
}

static const struct {
    const char *name;
    int cin, cout;
    bool down;
} rec_layers[MDL_FA_REC_LAYERS] = {
    {"conv32_1", 32, 32, false},    {"conv32_2", 32, 32, false},    {"conv32_3", 32, 32, false},
    {"conv64_down", 32, 64, true},  {"conv64_1", 64, 64, false},    {"conv64_2", 64, 64, false},
    {"conv64_3", 64, 64, false},    {"conv128_down", 64, 128, true}, {"conv128_1", 128, 128, false},
    {"conv128_2", 128, 128, false}, {"conv256_down", 128, 256, true}, {"conv256_1", 256, 256, false},
    {"conv256_2", 256, 256, false}, {"conv256_down_out", 256, 256, true},
};

static int load_rec_conv(struct eng_conv *c, const struct eng_tfjs *w, const char *prefix, int k, int cin, int cout,
                         int stride, int pad, enum eng_act act)
{
    char f[160], b[160], sw[160], sb[160];
    snprintf(f, sizeof f, "%s/conv/filters", prefix);
    snprintf(b, sizeof b, "%s/conv/bias", prefix);
    snprintf(sw, sizeof sw, "%s/scale/weights", prefix);
    snprintf(sb, sizeof sb, "%s/scale/biases", prefix);
    return load_conv(c, w, f, b, k, cin, cout, stride, pad, act, sw, sb);
}

static int load_rec(struct mdl_fa_rec *r, const struct eng_tfjs *w)
{
    if (load_rec_conv(&r->down, w, "conv32_down", 7, 3, 32, 2, 0, ENG_ACT_RELU) < 0)
        return -1;
    for (int i = 0; i < MDL_FA_REC_LAYERS; i++) {
        char p1[64], p2[64];
        snprintf(p1, sizeof p1, "%s/conv1", rec_layers[i].name);
        snprintf(p2, sizeof p2, "%s/conv2", rec_layers[i].name);
        bool down = rec_layers[i].down;
        r->layer[i].down = down;
        if (load_rec_conv(&r->layer[i].c1, w, p1, 3, rec_layers[i].cin, rec_layers[i].cout, down ? 2 : 1,
                          down ? 0 : PAD_SAME, ENG_ACT_RELU) < 0 ||
            load_rec_conv(&r->layer[i].c2, w, p2, 3, rec_layers[i].cout, rec_layers[i].cout, 1, PAD_SAME,
                          ENG_ACT_NONE) < 0)
            return -1;
    }
    return load_fc(&r->fc, w, "fc", NULL, 256, MDL_FACE_DESCRIPTOR);
}

static void free_rec(struct mdl_fa_rec *r)
{
    eng_conv_free(&r->down);
    for (int i = 0; i < MDL_FA_REC_LAYERS; i++)
        eng_conv_free(&r->layer[i].c1), eng_conv_free(&r->layer[i].c2);
    eng_linear_free(&r->fc);
}

static int load_reduction(struct mdl_fa_xception *x, int i, const struct eng_tfjs *w, const char *prefix, int cin,
                          int cout)
{
    char a[96], f[128], b[128];
    snprintf(a, sizeof a, "%s/separable_conv0", prefix);
    if (load_sep(&x->red[i].s0, w, a, cin, cout, 1, PAD_SAME, ENG_ACT_NONE) < 0)
        return -1;
    snprintf(a, sizeof a, "%s/separable_conv1", prefix);
    if (load_sep(&x->red[i].s1, w, a, cout, cout, 1, PAD_SAME, ENG_ACT_NONE) < 0)
        return -1;
    snprintf(f, sizeof f, "%s/expansion_conv/filters", prefix);
    snprintf(b, sizeof b, "%s/expansion_conv/bias", prefix);
    return load_conv(&x->red[i].expansion, w, f, b, 1, cin, cout, 2, PAD_SAME, ENG_ACT_NONE, NULL, NULL);
}

static int load_xception(struct mdl_fa_xception *x, const struct eng_tfjs *w)
{
    if (load_conv(&x->conv_in, w, "entry_flow/conv_in/filters", "entry_flow/conv_in/bias", 3, 3, 32, 2, PAD_SAME,
                  ENG_ACT_RELU, NULL, NULL) < 0 ||
        load_reduction(x, 0, w, "entry_flow/reduction_block_0", 32, 64) < 0 ||
        load_reduction(x, 1, w, "entry_flow/reduction_block_1", 64, 128) < 0)
        return -1;
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 3; k++) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "middle_flow/main_block_%d/separable_conv%d", b, k);
            if (load_sep(&x->main_[b][k], w, prefix, 128, 128, 1, PAD_SAME, ENG_ACT_NONE) < 0)
                return -1;
        }
    if (load_reduction(x, 2, w, "exit_flow/reduction_block", 128, 256) < 0 ||
        load_sep(&x->exit_sep, w, "exit_flow/separable_conv", 256, 512, 1, PAD_SAME, ENG_ACT_RELU) < 0 ||
        load_fc(&x->age, w, "fc/age/weights", "fc/age/bias", 512, 1) < 0)
        return -1;
    return load_fc(&x->gender, w, "fc/gender/weights", "fc/gender/bias", 512, 2);
}

static void free_xception(struct mdl_fa_xception *x)
{
    eng_conv_free(&x->conv_in);
    for (int i = 0; i < 3; i++)
        free_sep(&x->red[i].s0), free_sep(&x->red[i].s1), eng_conv_free(&x->red[i].expansion);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 3; k++)
            free_sep(&x->main_[b][k]);
    free_sep(&x->exit_sep);
    eng_linear_free(&x->age);
    eng_linear_free(&x->gender);
}

void mdl_fa_net_free(struct mdl_fa_net *net)
{
    switch (net->kind) {
    case MDL_FACE_NET_SSD: free_ssd(&net->u.ssd); break;
    case MDL_FACE_NET_TINY: free_tiny(&net->u.tiny); break;
    case MDL_FACE_NET_LANDMARKS:
    case MDL_FACE_NET_LANDMARKS_TINY:
    case MDL_FACE_NET_EXPRESSION: free_dense(&net->u.dense); break;
    case MDL_FACE_NET_RECOGNITION: free_rec(&net->u.rec); break;
    case MDL_FACE_NET_AGE_GENDER: free_xception(&net->u.xc); break;
    default: break;
    }
    net->loaded = false;
}

int mdl_fa_net_load(struct mdl_fa_net *net, enum mdl_face_net kind, const char *manifest_path)
{
    memset(net, 0, sizeof *net);
    net->kind = kind;
    struct eng_tfjs *w = eng_tfjs_open(manifest_path);
    if (!w)
        return -1;
    int rc;
    switch (kind) {
    case MDL_FACE_NET_SSD: rc = load_ssd(&net->u.ssd, w); break;
    case MDL_FACE_NET_TINY: rc = load_tiny(&net->u.tiny, w); break;
    case MDL_FACE_NET_LANDMARKS: rc = load_dense(&net->u.dense, w, false, 2 * MDL_FACE_LANDMARKS); break;
    case MDL_FACE_NET_LANDMARKS_TINY: rc = load_dense(&net->u.dense, w, true, 2 * MDL_FACE_LANDMARKS); break;
    case MDL_FACE_NET_EXPRESSION: rc = load_dense(&net->u.dense, w, false, MDL_FACE_EXPRESSIONS); break;
    case MDL_FACE_NET_RECOGNITION: rc = load_rec(&net->u.rec, w); break;
    case MDL_FACE_NET_AGE_GENDER: rc = load_xception(&net->u.xc, w); break;
    default: rc = eng_error("unknown face network %d", (int)kind); break;
    }
    if (rc < 0) {
        /* The reader's message names the weight; say which file it was in. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", eng_errmsg());
        if (!strstr(msg, manifest_path))
            eng_error("%s: %s", manifest_path, msg);
        mdl_fa_net_free(net);
        eng_tfjs_close(w);
        return -1;
    }
    eng_tfjs_close(w);
    net->loaded = true;
    return 0;
}

/* ---- forward ---- */

struct run {
    struct eng_ctx *ctx;
    struct eng_arena *act;
    const struct mdl_output *taps; /* or NULL */
};

static int new_tensor(struct eng_arena *a, struct eng_tensor *t, const char *name, int64_t n, int64_t h, int64_t w,
                      int64_t c)
{
    float *d = eng_arena_floats(a, (size_t)(n * h * w * c));
    if (!d)
        return -1;
    *t = eng_tensor_make(name, d, 4, (int64_t[]){n, h, w, c});
    return 0;
}

/* A new tensor shaped like x with c channels. */
static int new_like(struct eng_arena *a, struct eng_tensor *t, const char *name, const struct eng_tensor *x, int64_t c)
{
    return new_tensor(a, t, name, x->ne[0], x->ne[1], x->ne[2], c);
}

/* y = conv(x) in a new tensor. */
static int conv_new(const struct run *R, const struct eng_conv *c, const struct eng_tensor *x, struct eng_tensor *y)
{
    int64_t oh, ow;
    if (eng_conv_out_size(c, x->ne[1], x->ne[2], &oh, &ow) < 0 ||
        new_tensor(R->act, y, c->name, x->ne[0], oh, ow, c->p.cout) < 0)
        return -1;
    return eng_conv2d(R->ctx, c, x, y);
}

/* y = pw(dw(x)) into y (already shaped); the depthwise output is borrowed from the arena. */
static int pair_into(const struct run *R, const struct eng_conv *dw, const struct eng_conv *pw,
                     const struct eng_tensor *x, struct eng_tensor *y)
{
    size_t mark = eng_arena_mark(R->act);
    struct eng_tensor t;
    int rc = conv_new(R, dw, x, &t) < 0 || eng_conv2d(R->ctx, pw, &t, y) < 0 ? -1 : 0;
    eng_arena_rewind(R->act, mark);
    return rc;
}

static int pair_new(const struct run *R, const struct eng_conv *dw, const struct eng_conv *pw,
                    const struct eng_tensor *x, struct eng_tensor *y)
{
    int64_t oh, ow;
    if (eng_conv_out_size(dw, x->ne[1], x->ne[2], &oh, &ow) < 0 ||
        new_tensor(R->act, y, pw->name, x->ne[0], oh, ow, pw->p.cout) < 0)
        return -1;
    return pair_into(R, dw, pw, x, y);
}

static int sep_into(const struct run *R, const struct mdl_fa_sep *s, const struct eng_tensor *x, struct eng_tensor *y)
{
    return pair_into(R, &s->dw, &s->pw, x, y);
}

static int sep_new(const struct run *R, const struct mdl_fa_sep *s, const struct eng_tensor *x, struct eng_tensor *y)
{
    return pair_new(R, &s->dw, &s->pw, x, y);
}

/* y = relu(x), shapes equal (y may be x). */
static int relu_into(const struct run *R, const struct eng_tensor *x, struct eng_tensor *y)
{
    struct eng_affine a = {x->ne[3], NULL, NULL, ENG_ACT_RELU, 0.0f};
    return eng_affine(R->ctx, &a, x, y);
}

/* x = (x - mean[c]) / div - sub, in place; x contiguous NHWC with 3 channels. The division and
 * the order of operations are face-api's (normalize, then div; SSD: div, then sub). */
static void normalize(struct eng_tensor *x, const float *mean, float div, float sub)
{
    float *p = x->data;
    int64_t npix = eng_tensor_nelem(x) / 3;
    for (int64_t i = 0; i < npix; i++, p += 3)
        for (int c = 0; c < 3; c++)
            p[c] = (p[c] - (mean ? mean[c] : 0.0f)) / div - sub;
}

static float sigmoidf(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* ---- banded convolutions: skipping face-api's padding ----
 *
 * face-api pads a photo to a square with zeros at the bottom (landscape) or right (portrait),
 * 20-35 % of a detector's input for common photos. Those rows are all equal, so every feature
 * map has a band of equal rows (or columns) below the image's influence, up to the few rows
 * that see the bottom border's own zero padding. A band is computed as one representative row
 * and copied: the same numbers, a quarter less work for the SSD. */
struct band {
    int axis;       /* 1: rows, 2: columns */
    int64_t lo, hi; /* slices [lo, hi) along axis are copies of slice lo; lo == hi: no band */
};

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The trailing rows (else columns) that are zero in every image of x [n, h, w, 3]. */
static struct band find_band(const struct eng_tensor *x)
{
    int64_t n = x->ne[0], h = x->ne[1], w = x->ne[2], c = x->ne[3];
    int64_t lo = h;
    for (; lo > 0; lo--) {
        bool zero = true;
        for (int64_t i = 0; i < n && zero; i++) {
            const float *r = x->data + ((i * h + lo - 1) * w) * c;
            for (int64_t k = 0; k < w * c && zero; k++)
                zero = r[k] == 0.0f;
        }
        if (!zero)
            break;
    }
    if (lo < h)
        return (struct band){1, lo, h};
    lo = w;
    for (; lo > 0; lo--) {
        bool zero = true;
        for (int64_t i = 0; i < n && zero; i++)
            for (int64_t y = 0; y < h && zero; y++)
                for (int64_t k = 0; k < c && zero; k++)
                    zero = x->data[((i * h + y) * w + lo - 1) * c + k] == 0.0f;
        if (!zero)
            break;
    }
    return (struct band){2, lo, w};
}

/* c's padding (before, after) along rows and columns for an input of x's size. */
static void conv_pads(const struct eng_conv *c, const struct eng_tensor *x, int pad[2][2])
{
    const struct eng_conv_params *p = &c->p;
    if (p->pad_same) {
        eng_conv_same_padding(x->ne[1], p->kh, p->stride_h, p->dil_h, &pad[0][0], &pad[0][1]);
        eng_conv_same_padding(x->ne[2], p->kw, p->stride_w, p->dil_w, &pad[1][0], &pad[1][1]);
    } else {
        pad[0][0] = p->pad_t, pad[0][1] = p->pad_b, pad[1][0] = p->pad_l, pad[1][1] = p->pad_r;
    }
}

/* Output slices [a, b) along axis of y = c(x): c with explicit padding on the input slices they read. */
static int conv_part(const struct run *R, const struct eng_conv *c, const struct eng_tensor *x, int axis, int64_t a,
                     int64_t b, struct eng_tensor *y)
{
    int pad[2][2];
    conv_pads(c, x, pad);
    int k = axis == 1 ? c->p.kh : c->p.kw, s = axis == 1 ? c->p.stride_h : c->p.stride_w;
    int64_t start = a * s - pad[axis - 1][0], end = (b - 1) * s - pad[axis - 1][0] + k;
    int64_t s0 = start < 0 ? 0 : start, s1 = end > x->ne[axis] ? x->ne[axis] : end;
    struct eng_conv sub = *c; /* shares the packed weights; never freed */
    sub.p.pad_same = false;
    sub.p.pad_t = pad[0][0], sub.p.pad_b = pad[0][1], sub.p.pad_l = pad[1][0], sub.p.pad_r = pad[1][1];
    if (axis == 1)
        sub.p.pad_t = (int)(s0 - start), sub.p.pad_b = (int)(end - s1);
    else
        sub.p.pad_l = (int)(s0 - start), sub.p.pad_r = (int)(end - s1);
    struct eng_tensor xs = eng_tensor_slice(x, axis, s0, s1 - s0), ys = eng_tensor_slice(y, axis, a, b - a);
    return eng_conv2d(R->ctx, &sub, &xs, &ys);
}

/* y = c(x) into y (shaped), x having band bx; *by is y's band. */
static int conv_banded_into(const struct run *R, const struct eng_conv *c, const struct eng_tensor *x,
                            const struct band *bx, struct eng_tensor *y, struct band *by)
{
    int64_t oh = y->ne[1], ow = y->ne[2];
    int axis = bx->axis, pad[2][2];
    int64_t out = axis == 1 ? oh : ow, lo = out, hi = out;
    if (bx->lo < bx->hi) {
        conv_pads(c, x, pad);
        int k = axis == 1 ? c->p.kh : c->p.kw, s = axis == 1 ? c->p.stride_h : c->p.stride_w, pb = pad[axis - 1][0];
        /* outputs whose whole window lies in the band: start >= lo and end < hi */
        lo = floor_div(bx->lo + pb + s - 1, s);
        hi = floor_div(bx->hi - k + pb, s) + 1;
        if (hi > out)
            hi = out;
        if (hi - lo < 2)
            lo = hi = out;
    }
    *by = (struct band){axis, lo, hi};
    if (lo == hi)
        return eng_conv2d(R->ctx, c, x, y);
    if ((lo > 0 && conv_part(R, c, x, axis, 0, lo, y) < 0) || conv_part(R, c, x, axis, lo, lo + 1, y) < 0 ||
        (hi < out && conv_part(R, c, x, axis, hi, out, y) < 0))
        return -1;
    struct eng_tensor first = eng_tensor_slice(y, axis, lo, 1);
    for (int64_t i = lo + 1; i < hi; i++) {
        struct eng_tensor d = eng_tensor_slice(y, axis, i, 1);
        if (eng_tensor_copy(&d, &first) < 0)
            return -1;
    }
    return 0;
}

/* The same into a new tensor. */
static int conv_banded(const struct run *R, const struct eng_conv *c, const struct eng_tensor *x,
                       const struct band *bx, struct eng_tensor *y, struct band *by)
{
    int64_t oh, ow;
    if (eng_conv_out_size(c, x->ne[1], x->ne[2], &oh, &ow) < 0 ||
        new_tensor(R->act, y, c->name, x->ne[0], oh, ow, c->p.cout) < 0)
        return -1;
    return conv_banded_into(R, c, x, bx, y, by);
}

static int ssd_forward(const struct mdl_fa_ssd *s, const struct run *R, struct eng_tensor *x, float *out)
{
    if (x->ne[1] != MDL_FA_SSD_SIDE || x->ne[2] != MDL_FA_SSD_SIDE)
        return eng_error("ssd_mobilenetv1 takes %dx%d, not %lldx%lld", MDL_FA_SSD_SIDE, MDL_FA_SSD_SIDE,
                         (long long)x->ne[1], (long long)x->ne[2]);
    struct band band = find_band(x), b11 = {0}, bp[8], bt, bb;
    normalize(x, NULL, 127.5f, 1.0f);
    size_t mark = eng_arena_mark(R->act);
    int rc = -1;
    struct eng_tensor cur, conv11 = {0}, p[8], bx, cl;
    if (conv_banded(R, &s->conv0, x, &band, &cur, &band) < 0)
        goto out;
    for (int i = 1; i <= 13; i++) {
        struct eng_tensor y, t;
        /* the pair's output first, then its depthwise output on top, given back at once */
        int64_t oh, ow;
        if (eng_conv_out_size(&s->dw[i], cur.ne[1], cur.ne[2], &oh, &ow) < 0 ||
            new_tensor(R->act, &y, s->pw[i].name, cur.ne[0], oh, ow, s->pw[i].p.cout) < 0)
            goto out;
        size_t m2 = eng_arena_mark(R->act);
        int bad = conv_banded(R, &s->dw[i], &cur, &band, &t, &bt) < 0 ||
                  conv_banded_into(R, &s->pw[i], &t, &bt, &y, &band) < 0;
        eng_arena_rewind(R->act, m2);
        if (bad)
            goto out;
        if (i == 11)
            conv11 = y, b11 = band;
        cur = y;
    }
    for (int i = 0; i < 8; i++)
        if (conv_banded(R, &s->pred[i], i == 0 ? &cur : &p[i - 1], i == 0 ? &band : &bp[i - 1], &p[i], &bp[i]) < 0)
            goto out;
    const struct eng_tensor *src[6] = {&conv11, &cur, &p[1], &p[3], &p[5], &p[7]};
    const struct band *bsrc[6] = {&b11, &band, &bp[1], &bp[3], &bp[5], &bp[7]};
    int64_t n = x->ne[0], stride = (int64_t)MDL_FA_SSD_ANCHORS * 5;
    int64_t a0 = 0; /* first anchor of this predictor */
    for (int k = 0; k < 6; k++) {
        size_t m2 = eng_arena_mark(R->act);
        if (conv_banded(R, &s->box[k], src[k], bsrc[k], &bx, &bb) < 0 ||
            conv_banded(R, &s->cls[k], src[k], bsrc[k], &cl, &bb) < 0)
            goto out;
        int64_t cells = src[k]->ne[1] * src[k]->ne[2], A = ssd_box_anchors[k];
        for (int64_t i = 0; i < n; i++) {
            float *boxes = out + i * stride, *scores = boxes + (int64_t)MDL_FA_SSD_ANCHORS * 4;
            for (int64_t j = 0; j < cells * A; j++) {
                const float *e = bx.data + (i * cells * A + j) * 4, *c = cl.data + (i * cells * A + j) * 3;
                const float *an = s->anchors + (a0 + j) * 4;
                /* face-api's decodeBoxesLayer, operation for operation (float32) */
                float s0 = an[2] - an[0], s1 = an[3] - an[1];
                float c0 = an[0] + s0 / 2.0f, c1 = an[1] + s1 / 2.0f;
                float h0 = expf(e[2] / 5.0f) * s0 / 2.0f, m0 = e[0] / 10.0f * s0 + c0;
                float h1 = expf(e[3] / 5.0f) * s1 / 2.0f, m1 = e[1] / 10.0f * s1 + c1;
                float *b = boxes + (a0 + j) * 4;
                b[0] = m0 - h0, b[1] = m1 - h1, b[2] = m0 + h0, b[3] = m1 + h1;
                scores[a0 + j] = sigmoidf(c[1]); /* class 1 of (background, face, ...) */
            }
        }
        a0 += cells * A;
        eng_arena_rewind(R->act, m2);
    }
    if (a0 != MDL_FA_SSD_ANCHORS) {
        eng_error("ssd_mobilenetv1: %lld anchors, the weights have %d", (long long)a0, MDL_FA_SSD_ANCHORS);
        goto out;
    }
    rc = 0;
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

/* y = maxpool(conv(x)) with the convolution's output borrowed: only the pooled map stays. */
static int conv_pool_new(const struct run *R, const struct eng_conv *dw, const struct eng_conv *pw,
                         const struct eng_pool2d *pool, const struct eng_tensor *x, struct eng_tensor *y)
{
    int64_t ch, cw, ph, pw_;
    const struct eng_conv *first = dw ? dw : pw;
    if (eng_conv_out_size(first, x->ne[1], x->ne[2], &ch, &cw) < 0 || eng_pool2d_out(pool, ch, cw, &ph, &pw_) < 0 ||
        new_tensor(R->act, y, "pool", x->ne[0], ph, pw_, pw->p.cout) < 0)
        return -1;
    size_t mark = eng_arena_mark(R->act);
    struct eng_tensor t;
    int rc = (dw ? pair_new(R, dw, pw, x, &t) : conv_new(R, pw, x, &t)) < 0 || eng_max_pool2d(R->ctx, pool, &t, y) < 0
                 ? -1
                 : 0;
    eng_arena_rewind(R->act, mark);
    return rc;
}

static int tiny_forward(const struct mdl_fa_tiny *t, const struct run *R, struct eng_tensor *x, float *out)
{
    if (x->ne[1] != x->ne[2] || x->ne[1] % 32 || x->ne[1] < 32)
        return eng_error("tiny_face_detector takes a square input with a side that is a multiple of 32, not %lldx%lld",
                         (long long)x->ne[1], (long long)x->ne[2]);
    normalize(x, tiny_mean, 255.0f, 0.0f);
    size_t mark = eng_arena_mark(R->act);
    int rc = -1;
    struct eng_pool2d p2 = eng_pool2d_tf_same(2, 2), p1 = eng_pool2d_tf_same(2, 1);
    struct eng_tensor cur, y;
    if (conv_pool_new(R, NULL, &t->conv0, &p2, x, &cur) < 0)
        goto out;
    for (int i = 1; i <= 5; i++) {
        if (conv_pool_new(R, &t->conv[i].dw, &t->conv[i].pw, i == 5 ? &p1 : &p2, &cur, &y) < 0)
            goto out;
        cur = y;
    }
    int64_t oh, ow;
    if (eng_conv_out_size(&t->conv8, cur.ne[1], cur.ne[2], &oh, &ow) < 0)
        goto out;
    y = eng_tensor_make("conv8", out, 4, (int64_t[]){cur.ne[0], oh, ow, t->conv8.p.cout});
    rc = eng_conv2d(R->ctx, &t->conv8, &cur, &y);
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

/* face-api's denseBlock3 / denseBlock4: out1 = relu(conv0(x)), then each further separable conv
 * reads relu(sum so far) and adds its output to the sum; the block returns relu(sum). */
static int dense_block(const struct mdl_fa_dense *d, int b, const struct run *R, const struct eng_tensor *x,
                       struct eng_tensor *y)
{
    const struct eng_conv *c0 = b == 0 ? &d->first : &d->sep[b][0].dw;
    int64_t oh, ow;
    if (eng_conv_out_size(c0, x->ne[1], x->ne[2], &oh, &ow) < 0 ||
        new_tensor(R->act, y, "dense", x->ne[0], oh, ow, d->channels[b]) < 0)
        return -1;
    size_t mark = eng_arena_mark(R->act);
    int rc = -1;
    struct eng_tensor out1, in, o;
    if (new_like(R->act, &out1, "out1", y, d->channels[b]) < 0 ||
        (b == 0 ? eng_conv2d(R->ctx, &d->first, x, &out1) : sep_into(R, &d->sep[b][0], x, &out1)) < 0 ||
        sep_into(R, &d->sep[b][1], &out1, y) < 0 ||
        eng_add(R->ctx, d->nconvs == 2 ? ENG_ACT_RELU : ENG_ACT_NONE, 0.0f, &out1, y, y) < 0 ||
        new_like(R->act, &in, "in", y, d->channels[b]) < 0 || new_like(R->act, &o, "o", y, d->channels[b]) < 0)
        goto out;
    for (int k = 2; k < d->nconvs; k++)
        if (relu_into(R, y, &in) < 0 || sep_into(R, &d->sep[b][k], &in, &o) < 0 ||
            eng_add(R->ctx, k == d->nconvs - 1 ? ENG_ACT_RELU : ENG_ACT_NONE, 0.0f, y, &o, y) < 0)
            goto out;
    rc = 0;
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

/* The feature extractor, average-pooled over its whole last map, then the fully connected layer. */
static int dense_forward(const struct mdl_fa_dense *d, const struct run *R, struct eng_tensor *x, float *out,
                         bool softmax)
{
    if (x->ne[1] != MDL_FA_HEAD_SIDE || x->ne[2] != MDL_FA_HEAD_SIDE)
        return eng_error("the face feature extractor takes %dx%d, not %lldx%lld", MDL_FA_HEAD_SIDE, MDL_FA_HEAD_SIDE,
                         (long long)x->ne[1], (long long)x->ne[2]);
    normalize(x, head_mean, 255.0f, 0.0f);
    size_t mark = eng_arena_mark(R->act);
    int rc = -1;
    int64_t n = x->ne[0];
    struct eng_tensor cur = *x, y, g;
    for (int b = 0; b < d->nblocks; b++) {
        if (dense_block(d, b, R, &cur, &y) < 0)
            goto out;
        cur = y;
        static const char *const names[4] = {"dense0", "dense1", "dense2", "dense3"};
        mdl_tap(R->taps, names[b], &cur);
    }
    /* face-api: avgPool 7x7 (tiny: 14x14) stride 2 'valid' on a 7x7 (14x14) map, i.e. the mean */
    float *gd = eng_arena_floats(R->act, (size_t)(n * cur.ne[3]));
    if (!gd)
        goto out;
    g = eng_tensor_make("pooled", gd, 2, (int64_t[]){n, cur.ne[3]});
    struct eng_tensor o = eng_tensor_make("fc", out, 2, (int64_t[]){n, d->fc.out});
    if (eng_global_avg_pool(R->ctx, &cur, &g) < 0 || eng_linear(R->ctx, &d->fc, &g, &o) < 0)
        goto out;
    if (softmax)
        for (int64_t i = 0; i < n; i++)
            eng_softmax_row(out + i * d->fc.out, d->fc.out);
    rc = 0;
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

/* residualDown's sum: y = relu(pad(u) + pad_c(pooled)): u (the conv branch, possibly one row and
 * column short) padded with zeros at the bottom/right, the pooled shortcut padded with zero
 * channels, as face-api concatenates zeros. */
static void rec_down_sum(const struct eng_tensor *u, const struct eng_tensor *pooled, struct eng_tensor *y)
{
    int64_t n = y->ne[0], h = y->ne[1], w = y->ne[2], c = y->ne[3], cp = pooled->ne[3];
    for (int64_t i = 0; i < n; i++)
        for (int64_t r = 0; r < h; r++)
            for (int64_t q = 0; q < w; q++) {
                float *o = y->data + ((i * h + r) * w + q) * c;
                const float *p = pooled->data + ((i * h + r) * w + q) * cp;
                bool in = r < u->ne[1] && q < u->ne[2];
                const float *a = in ? u->data + ((i * u->ne[1] + r) * u->ne[2] + q) * c : NULL;
                for (int64_t k = 0; k < c; k++) {
                    float v = (a ? a[k] : 0.0f) + (k < cp ? p[k] : 0.0f);
                    o[k] = v > 0.0f ? v : 0.0f;
                }
            }
}

static int rec_forward(const struct mdl_fa_rec *r, const struct run *R, struct eng_tensor *x, float *out)
{
    if (x->ne[1] != MDL_FA_RECOGNITION_SIDE || x->ne[2] != MDL_FA_RECOGNITION_SIDE)
        return eng_error("face_recognition takes %dx%d, not %lldx%lld", MDL_FA_RECOGNITION_SIDE,
                         MDL_FA_RECOGNITION_SIDE, (long long)x->ne[1], (long long)x->ne[2]);
    normalize(x, head_mean, 255.0f, 0.0f);
    size_t mark = eng_arena_mark(R->act);
    int rc = -1;
    int64_t n = x->ne[0], ph, pw;
    struct eng_tensor t, cur, y;
    struct eng_pool2d mp = eng_pool2d_make(3, 2, 0), ap = eng_pool2d_make(2, 2, 0);
    if (conv_new(R, &r->down, x, &t) < 0 || eng_pool2d_out(&mp, t.ne[1], t.ne[2], &ph, &pw) < 0 ||
        new_tensor(R->act, &cur, "pool", n, ph, pw, t.ne[3]) < 0 || eng_max_pool2d(R->ctx, &mp, &t, &cur) < 0)
        goto out;
    for (int i = 0; i < MDL_FA_REC_LAYERS; i++) {
        const struct eng_conv *c1 = &r->layer[i].c1, *c2 = &r->layer[i].c2;
        if (!r->layer[i].down) {
            if (new_like(R->act, &y, rec_layers[i].name, &cur, c2->p.cout) < 0)
                goto out;
            size_t m2 = eng_arena_mark(R->act);
            int bad = conv_new(R, c1, &cur, &t) < 0 || eng_conv2d(R->ctx, c2, &t, &y) < 0;
            eng_arena_rewind(R->act, m2);
            if (bad || eng_add(R->ctx, ENG_ACT_RELU, 0.0f, &y, &cur, &y) < 0)
                goto out;
        } else {
            if (eng_pool2d_out(&ap, cur.ne[1], cur.ne[2], &ph, &pw) < 0 ||
                new_tensor(R->act, &y, rec_layers[i].name, n, ph, pw, c2->p.cout) < 0)
                goto out;
            size_t m2 = eng_arena_mark(R->act);
            struct eng_tensor u, pooled;
            int bad = conv_new(R, c1, &cur, &t) < 0 || conv_new(R, c2, &t, &u) < 0 ||
                      new_tensor(R->act, &pooled, "pooled", n, ph, pw, cur.ne[3]) < 0 ||
                      eng_avg_pool2d(R->ctx, &ap, &cur, &pooled) < 0;
            if (!bad && (u.ne[1] > ph || u.ne[2] > pw || cur.ne[3] > c2->p.cout))
                bad = eng_error("face_recognition: %s gives %lldx%lld, its shortcut %lldx%lld", rec_layers[i].name,
                                (long long)u.ne[1], (long long)u.ne[2], (long long)ph, (long long)pw);
            if (!bad)
                rec_down_sum(&u, &pooled, &y);
            eng_arena_rewind(R->act, m2);
            if (bad)
                goto out;
        }
        cur = y;
    }
    float *gd = eng_arena_floats(R->act, (size_t)(n * cur.ne[3]));
    if (!gd)
        goto out;
    struct eng_tensor g = eng_tensor_make("mean", gd, 2, (int64_t[]){n, cur.ne[3]});
    struct eng_tensor o = eng_tensor_make("descriptor", out, 2, (int64_t[]){n, MDL_FACE_DESCRIPTOR});
    rc = eng_global_avg_pool(R->ctx, &cur, &g) < 0 || eng_linear(R->ctx, &r->fc, &g, &o) < 0 ? -1 : 0;
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

/* TinyXception's reductionBlock: separable convs on relu(x) (unless the first), 3x3/2 max pool,
 * plus the 1x1/2 expansion of x. */
static int xc_reduction(const struct mdl_fa_xception *xc, int i, bool activate, const struct run *R,
                        const struct eng_tensor *x, struct eng_tensor *y)
{
    struct eng_pool2d pool = eng_pool2d_tf_same(3, 2);
    int64_t ph, pw;
    if (eng_pool2d_out(&pool, x->ne[1], x->ne[2], &ph, &pw) < 0 ||
        new_tensor(R->act, y, "reduction", x->ne[0], ph, pw, xc->red[i].s1.pw.p.cout) < 0)
        return -1;
    size_t mark = eng_arena_mark(R->act);
    struct eng_tensor a = *x, t, t2, e;
    int rc = -1;
    if (activate && (new_like(R->act, &a, "relu", x, x->ne[3]) < 0 || relu_into(R, x, &a) < 0))
        goto out;
    if (sep_new(R, &xc->red[i].s0, &a, &t) < 0 || relu_into(R, &t, &t) < 0 || sep_new(R, &xc->red[i].s1, &t, &t2) < 0 ||
        eng_max_pool2d(R->ctx, &pool, &t2, y) < 0 || conv_new(R, &xc->red[i].expansion, x, &e) < 0 ||
        eng_add(R->ctx, ENG_ACT_NONE, 0.0f, y, &e, y) < 0)
        goto out;
    rc = 0;
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

/* mainBlock: three separable convs, each on relu of the previous, plus x. */
static int xc_main(const struct mdl_fa_sep *s, const struct run *R, const struct eng_tensor *x, struct eng_tensor *y)
{
    if (new_like(R->act, y, "main", x, x->ne[3]) < 0)
        return -1;
    size_t mark = eng_arena_mark(R->act);
    struct eng_tensor a, t1, t2;
    int rc = new_like(R->act, &a, "relu", x, x->ne[3]) < 0 || relu_into(R, x, &a) < 0 || sep_new(R, &s[0], &a, &t1) < 0 ||
                     relu_into(R, &t1, &t1) < 0 || sep_new(R, &s[1], &t1, &t2) < 0 || relu_into(R, &t2, &t2) < 0 ||
                     sep_into(R, &s[2], &t2, y) < 0 || eng_add(R->ctx, ENG_ACT_NONE, 0.0f, y, x, y) < 0
                 ? -1
                 : 0;
    eng_arena_rewind(R->act, mark);
    return rc;
}

static int xc_forward(const struct mdl_fa_xception *xc, const struct run *R, struct eng_tensor *x, float *out)
{
    if (x->ne[1] != MDL_FA_HEAD_SIDE || x->ne[2] != MDL_FA_HEAD_SIDE)
        return eng_error("age_gender takes %dx%d, not %lldx%lld", MDL_FA_HEAD_SIDE, MDL_FA_HEAD_SIDE,
                         (long long)x->ne[1], (long long)x->ne[2]);
    normalize(x, head_mean, 255.0f, 0.0f);
    size_t mark = eng_arena_mark(R->act);
    int rc = -1;
    int64_t n = x->ne[0];
    struct eng_tensor cur, y;
    if (conv_new(R, &xc->conv_in, x, &cur) < 0 || xc_reduction(xc, 0, false, R, &cur, &y) < 0)
        goto out;
    cur = y;
    if (xc_reduction(xc, 1, true, R, &cur, &y) < 0)
        goto out;
    cur = y;
    mdl_tap(R->taps, "entry_flow", &cur);
    for (int b = 0; b < 2; b++) {
        if (xc_main(xc->main_[b], R, &cur, &y) < 0)
            goto out;
        cur = y;
    }
    mdl_tap(R->taps, "middle_flow", &cur);
    if (xc_reduction(xc, 2, true, R, &cur, &y) < 0 || sep_new(R, &xc->exit_sep, &y, &cur) < 0)
        goto out;
    mdl_tap(R->taps, "exit_flow", &cur);
    float *gd = eng_arena_floats(R->act, (size_t)(n * (cur.ne[3] + 3)));
    if (!gd)
        goto out;
    struct eng_tensor g = eng_tensor_make("pooled", gd, 2, (int64_t[]){n, cur.ne[3]});
    float *age = gd + n * cur.ne[3], *gender = age + n;
    struct eng_tensor ta = eng_tensor_make("age", age, 2, (int64_t[]){n, 1});
    struct eng_tensor tg = eng_tensor_make("gender", gender, 2, (int64_t[]){n, 2});
    if (eng_global_avg_pool(R->ctx, &cur, &g) < 0 || eng_linear(R->ctx, &xc->age, &g, &ta) < 0 ||
        eng_linear(R->ctx, &xc->gender, &g, &tg) < 0)
        goto out;
    for (int64_t i = 0; i < n; i++) {
        eng_softmax_row(gender + 2 * i, 2);
        out[3 * i] = age[i];
        out[3 * i + 1] = gender[2 * i];
        out[3 * i + 2] = gender[2 * i + 1];
    }
    rc = 0;
out:
    eng_arena_rewind(R->act, mark);
    return rc;
}

int mdl_fa_net_forward(const struct mdl_fa_net *net, struct eng_ctx *ctx, struct eng_arena *act,
                       struct eng_tensor *x, float *out, const struct mdl_output *taps)
{
    if (!net->loaded)
        return eng_error("face network %s is not loaded", mdl_face_net_names[net->kind]);
    if (x->ndim != 4 || x->ne[3] != 3 || !eng_tensor_is_contiguous(x))
        return eng_error("face network %s takes a contiguous [n, h, w, 3] tensor", mdl_face_net_names[net->kind]);
    struct run R = {ctx, act, taps};
    switch (net->kind) {
    case MDL_FACE_NET_SSD: return ssd_forward(&net->u.ssd, &R, x, out);
    case MDL_FACE_NET_TINY: return tiny_forward(&net->u.tiny, &R, x, out);
    case MDL_FACE_NET_LANDMARKS:
    case MDL_FACE_NET_LANDMARKS_TINY: return dense_forward(&net->u.dense, &R, x, out, false);
    case MDL_FACE_NET_EXPRESSION: return dense_forward(&net->u.dense, &R, x, out, true);
    case MDL_FACE_NET_RECOGNITION: return rec_forward(&net->u.rec, &R, x, out);
    case MDL_FACE_NET_AGE_GENDER: return xc_forward(&net->u.xc, &R, x, out);
    default: return eng_error("unknown face network %d", (int)net->kind);
    }
}
