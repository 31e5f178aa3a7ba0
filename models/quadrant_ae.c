/* quadrant_ae.c: "deep reproductive features": 2x2 quadrants -> CNN backbones -> AE encoder -> SLP/MLP/SVM. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/error.h"
#include "engine/linear.h"
#include "engine/pooling.h"
#include "models/backbone.h"
#include "models/families.h"
#include "models/head.h"
#include "models/weights.h"

/*
 * The pipeline, as the manifest describes it (models/export/salient_export/quadrant_ae.py writes it):
 *
 *   "backbones":  [{"family": "densenet"|"resnet", "spec": {...the family's backbone spec...},
 *                   "weights": "backbones.0.", "features": 1024}, ...]
 *   "encoder":    [{"weights": "encoder.0", "in": F, "out": 512, "activation": "relu"}, ...]
 *   "classifier": {"kind": "slp"|"mlp", "layers": [{"weights": "classifier.0", "in": 32, "out": 3,
 *                  "activation": "none"}, ...]}
 *             or  {"kind": "svm", "kernel": "linear"|"rbf"|"poly"|"sigmoid", "gamma": g, "coef0": c,
 *                  "degree": d, "decision_function_shape": "ovo"|"ovr", "n_support": [..],
 *                  "weights": "svm.", "scaler": false, "probs": "softmax_ovr"}
 *
 * Quadrants are numbered q = 2 * row + col: 0 top-left, 1 top-right, 2 bottom-left,
 * 3 bottom-right (the manifest's "quadrants" says so and is checked). The feature vector is
 * quadrant-major, backbone-minor: [q0 b0 | q0 b1 | ... | q1 b0 | ...], each block a backbone's
 * global-average-pooled last feature map, so F = 4 * sum(features).
 *
 * SVM: the parameters are scikit-learn SVC's public attributes (support_vectors_ grouped by
 * class with n_support_, dual_coef_ [K-1, nSV], intercept_ [K(K-1)/2]); the pairwise value
 * for classes i < j (libsvm's order (0,1), (0,2), ..., (1,2), ...) is
 *   d_ij = sum_{s in class i} dual_coef_[j-1, s] k(s, x) + sum_{s in class j} dual_coef_[i, s] k(s, x) + intercept_[p]
 * exactly as SVC.decision_function computes it. logits are sklearn's decision_function:
 * the K(K-1)/2 pairwise values ("ovo"), or "ovr" = votes + sum of confidences / (3 (|sum| + 1))
 * (sklearn's _ovr_decision_function); for two classes one value, positive meaning labels[1].
 * probs are softmax over the ovr values whatever the shape: their argmax is SVC's prediction
 * with break_ties=True, they sum to 1, and unlike vote fractions they vary smoothly with the
 * input, which the perturbation saliency maps need. They are scores, not Platt-calibrated
 * probabilities (probA_/probB_ are not used).
 */

#define QAE_MAX_BACKBONES 8
#define QAE_MAX_LAYERS 8

static const char *const quadrant_names[4] = {"top-left", "top-right", "bottom-left", "bottom-right"};

enum qae_kind { QAE_SLP, QAE_MLP, QAE_SVM };
enum qae_kernel { QAE_LINEAR, QAE_RBF, QAE_POLY, QAE_SIGMOID };

struct qae_svm {
    enum qae_kernel kernel;
    double gamma, coef0;
    int degree;
    bool ovr;         /* logits are the ovr values, else the pairwise ones */
    int nclass;
    int64_t nsv, dim;
    int64_t *start;   /* owned, nclass + 1: class c's support vectors are rows [start[c], start[c+1]) */
    float *sv;        /* owned, [nsv, dim] */
    float *dual;      /* owned, [nclass - 1, nsv] */
    float *intercept; /* owned, [nclass (nclass - 1) / 2] */
    float *mean, *scale; /* owned, [dim] each, or NULL: sklearn StandardScaler applied first */
};

struct qae {
    int nbackbones;
    struct mdl_backbone bb[QAE_MAX_BACKBONES];
    int64_t bb_off[QAE_MAX_BACKBONES]; /* where backbone b's block starts inside a quadrant's block */
    int64_t quad_features;             /* sum of the backbones' features */
    int nenc;
    struct eng_linear enc[QAE_MAX_LAYERS];
    enum qae_kind kind;
    int nclf;
    struct eng_linear clf[QAE_MAX_LAYERS];
    struct qae_svm svm;
    char tap_bb[QAE_MAX_BACKBONES][32];
};

static void qae_free(struct mdl_model *m)
{
    struct qae *q = m->impl;
    if (!q)
        return;
    for (int b = 0; b < q->nbackbones; b++)
        mdl_backbone_free(&q->bb[b]);
    for (int i = 0; i < q->nenc; i++)
        eng_linear_free(&q->enc[i]);
    for (int i = 0; i < q->nclf; i++)
        eng_linear_free(&q->clf[i]);
    free(q->svm.start);
    free(q->svm.sv);
    free(q->svm.dual);
    free(q->svm.intercept);
    free(q->svm.mean);
    free(q->svm.scale);
    free(q);
    m->impl = NULL;
}

/* Prefix the calling thread's engine message with where (the message is copied first: it
 * lives in the buffer eng_error writes). Returns -1. */
static int error_in(const char *where)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", eng_errmsg());
    return eng_error("%s: %s", where, msg);
}

/* A positive integer field of obj, or -1 with a message naming where. */
static int get_int(json_t *obj, const char *key, const char *where, int64_t *v)
{
    json_t *j = json_object_get(obj, key);
    if (!json_is_integer(j) || json_integer_value(j) < 1)
        return eng_error("manifest: %s.%s must be a positive integer", where, key);
    *v = json_integer_value(j);
    return 0;
}

/* A list of Linear + activation layers (the encoder, or an SLP/MLP classifier), chained from
 * `in` features that `source` names. Sets *out_features to the last layer's output size. */
static int load_layers(const struct mdl_weights *w, json_t *arr, const char *what, int64_t in, const char *source,
                       struct eng_linear *layers, int *nlayers, int64_t *out_features)
{
    if (!json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > QAE_MAX_LAYERS)
        return eng_error("manifest: '%s' must be a list of 1..%d layers", what, QAE_MAX_LAYERS);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *l = json_array_get(arr, i);
        char where[64];
        snprintf(where, sizeof where, "%s[%zu]", what, i);
        const char *name = json_string_value(json_object_get(l, "weights"));
        const char *act_s = json_string_value(json_object_get(l, "activation"));
        int64_t lin, lout;
        if (!json_is_object(l) || !name)
            return eng_error("manifest: %s must be an object with a 'weights' name", where);
        if (get_int(l, "in", where, &lin) < 0 || get_int(l, "out", where, &lout) < 0)
            return -1;
        if (lin != in)
            return eng_error("manifest: %s takes %lld features, %s gives %lld", where, (long long)lin,
                             i ? "the layer before" : source, (long long)in);
        enum eng_act act = ENG_ACT_NONE;
        if (act_s && eng_act_parse(act_s, &act) < 0)
        {
            char at[96];
            snprintf(at, sizeof at, "manifest: %s.activation", where);
            return error_in(at);
        }
        if (mdl_load_linear(w, name, lin, lout, act, &layers[i]) < 0)
            return -1;
        (*nlayers)++;
        /* torch's LeakyReLU default slope, unless the manifest gives one. */
        json_t *slope = json_object_get(l, "negative_slope");
        if (act == ENG_ACT_LEAKY_RELU)
            layers[i].act_param = json_is_number(slope) ? (float)json_number_value(slope) : 0.01f;
        in = lout;
    }
    *out_features = in;
    return 0;
}

static int load_svm(struct qae_svm *s, const struct mdl_weights *wroot, json_t *c, int64_t dim, int nlabels)
{
    const char *kernel = json_string_value(json_object_get(c, "kernel"));
    const char *shape = json_string_value(json_object_get(c, "decision_function_shape"));
    const char *prefix = json_string_value(json_object_get(c, "weights"));
    json_t *ns = json_object_get(c, "n_support");
    if (!kernel)
        return eng_error("manifest: classifier.kernel missing (linear, rbf, poly or sigmoid)");
    if (strcmp(kernel, "linear") == 0)
        s->kernel = QAE_LINEAR;
    else if (strcmp(kernel, "rbf") == 0)
        s->kernel = QAE_RBF;
    else if (strcmp(kernel, "poly") == 0)
        s->kernel = QAE_POLY;
    else if (strcmp(kernel, "sigmoid") == 0)
        s->kernel = QAE_SIGMOID;
    else
        return eng_error("manifest: classifier.kernel '%s' unknown (linear, rbf, poly or sigmoid)", kernel);
    if (!shape || (strcmp(shape, "ovo") != 0 && strcmp(shape, "ovr") != 0))
        return eng_error("manifest: classifier.decision_function_shape must be \"ovo\" or \"ovr\"");
    s->ovr = strcmp(shape, "ovr") == 0;
    json_t *g = json_object_get(c, "gamma");
    if (s->kernel != QAE_LINEAR && (!json_is_number(g) || !(json_number_value(g) > 0)))
        return eng_error("manifest: classifier.gamma must be a positive number for kernel '%s' (sklearn's _gamma, "
                         "not \"scale\")", kernel);
    s->gamma = json_is_number(g) ? json_number_value(g) : 0.0;
    json_t *c0 = json_object_get(c, "coef0");
    s->coef0 = json_is_number(c0) ? json_number_value(c0) : 0.0;
    json_t *deg = json_object_get(c, "degree");
    s->degree = json_is_integer(deg) ? (int)json_integer_value(deg) : 3;
    if (s->kernel == QAE_POLY && (s->degree < 0 || s->degree > 64))
        return eng_error("manifest: classifier.degree %d out of range 0..64", s->degree);
    if (!json_is_array(ns) || (int)json_array_size(ns) != nlabels)
        return eng_error("manifest: classifier.n_support must list one count per label (%d)", nlabels);
    if (nlabels < 2)
        return eng_error("manifest: an SVM needs at least 2 labels");
    s->nclass = nlabels;
    s->start = calloc((size_t)nlabels + 1, sizeof *s->start);
    if (!s->start)
        return eng_error("out of memory");
    for (int k = 0; k < nlabels; k++) {
        json_t *v = json_array_get(ns, (size_t)k);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 24))
            return eng_error("manifest: classifier.n_support[%d] must be a count", k);
        s->start[k + 1] = s->start[k] + json_integer_value(v);
    }
    s->nsv = s->start[nlabels];
    s->dim = dim;
    if (s->nsv < 1)
        return eng_error("manifest: classifier.n_support sums to 0 support vectors");
    struct mdl_weights w = mdl_weights_sub(wroot, prefix ? prefix : "svm.");
    int64_t npair = (int64_t)nlabels * (nlabels - 1) / 2;
    s->sv = mdl_weights_get(&w, "support_vectors", 2, (int64_t[]){s->nsv, dim});
    s->dual = s->sv ? mdl_weights_get(&w, "dual_coef", 2, (int64_t[]){nlabels - 1, s->nsv}) : NULL;
    s->intercept = s->dual ? mdl_weights_get(&w, "intercept", 1, (int64_t[]){npair}) : NULL;
    int rc = s->intercept ? 0 : -1;
    if (rc == 0 && json_is_true(json_object_get(c, "scaler"))) {
        s->mean = mdl_weights_get(&w, "scaler_mean", 1, (int64_t[]){dim});
        s->scale = s->mean ? mdl_weights_get(&w, "scaler_scale", 1, (int64_t[]){dim}) : NULL;
        rc = s->scale ? 0 : -1;
        for (int64_t d = 0; rc == 0 && d < dim; d++)
            if (!(s->scale[d] != 0.0f && isfinite(s->scale[d])))
                rc = eng_error("%sscaler_scale[%lld] is %g; it must be finite and non-zero", w.prefix, (long long)d,
                               (double)s->scale[d]);
    }
    mdl_weights_close(&w);
    return rc;
}

static int qae_load_impl(struct mdl_model *m, struct qae *q, const struct mdl_weights *w)
{
    json_t *man = m->manifest.json;
    json_t *quads = json_object_get(man, "quadrants");
    if (quads) {
        /* The order is fixed; a manifest that says otherwise was made for another implementation. */
        bool ok = json_is_array(quads) && json_array_size(quads) == 4;
        for (size_t i = 0; ok && i < 4; i++) {
            const char *s = json_string_value(json_array_get(quads, i));
            ok = s && strcmp(s, quadrant_names[i]) == 0;
        }
        if (!ok)
            return eng_error("manifest: 'quadrants' must be [\"top-left\", \"top-right\", \"bottom-left\", "
                             "\"bottom-right\"] (the only order salient implements)");
    }
    m->in_h = m->pre.out_h;
    m->in_w = m->pre.out_w;
    m->in_c = m->pre.channels;
    if (m->in_h < 2 || m->in_w < 2 || m->in_h % 2 || m->in_w % 2)
        return eng_error("preprocessing gives %lldx%lld; quadrant_ae needs an even height and width to split into "
                         "4 equal quadrants",
                         (long long)m->in_h, (long long)m->in_w);

    json_t *bbs = json_object_get(man, "backbones");
    if (!json_is_array(bbs) || json_array_size(bbs) < 1 || json_array_size(bbs) > QAE_MAX_BACKBONES)
        return eng_error("manifest: 'backbones' must be a list of 1..%d backbones", QAE_MAX_BACKBONES);
    for (size_t b = 0; b < json_array_size(bbs); b++) {
        json_t *o = json_array_get(bbs, b);
        const char *family = json_string_value(json_object_get(o, "family"));
        const char *prefix = json_string_value(json_object_get(o, "weights"));
        json_t *spec = json_object_get(o, "spec");
        if (!family || !prefix || !json_is_object(spec))
            return eng_error("manifest: backbones[%zu] needs 'family' (densenet, resnet), 'spec' (an object) and "
                             "'weights' (a tensor name prefix)",
                             b);
        struct mdl_weights sub = mdl_weights_sub(w, prefix);
        int rc = mdl_backbone_load(&q->bb[b], family, &sub, spec, m->in_c);
        mdl_weights_close(&sub);
        if (rc < 0) {
            char at[96];
            snprintf(at, sizeof at, "backbones[%zu] (%s)", b, family);
            return error_in(at);
        }
        q->nbackbones++;
        json_t *feat = json_object_get(o, "features");
        if (feat && (!json_is_integer(feat) || json_integer_value(feat) != q->bb[b].features))
            return eng_error("manifest: backbones[%zu].features must be %lld, what the backbone gives", b,
                             (long long)q->bb[b].features);
        q->bb_off[b] = q->quad_features;
        q->quad_features += q->bb[b].features;
        snprintf(q->tap_bb[b], sizeof q->tap_bb[b], "backbone%zu", b);
    }
    int64_t features = 4 * q->quad_features;
    json_t *feat = json_object_get(man, "features");
    if (feat && (!json_is_integer(feat) || json_integer_value(feat) != features))
        return eng_error("manifest: 'features' must be 4 x the backbones' features = %lld", (long long)features);

    int64_t code;
    if (load_layers(w, json_object_get(man, "encoder"), "encoder", features, "4 x the backbones' features", q->enc,
                    &q->nenc, &code) < 0)
        return -1;

    json_t *c = json_object_get(man, "classifier");
    const char *kind = json_string_value(json_object_get(c, "kind"));
    if (!json_is_object(c) || !kind)
        return eng_error("manifest: 'classifier' must be an object with 'kind' (slp, mlp or svm)");
    int nlabels = m->manifest.nlabels;
    /* "probs" documents how probabilities are made; refuse a manifest that expects another way. */
    const char *probs = json_string_value(json_object_get(c, "probs"));
    const char *want = strcmp(kind, "svm") == 0 ? "softmax_ovr" : "softmax";
    if (json_object_get(c, "probs") && (!probs || strcmp(probs, want) != 0))
        return eng_error("manifest: classifier.probs must be \"%s\" for kind '%s' (the only one salient computes)",
                         want, kind);
    if (nlabels < 1)
        return eng_error("manifest: 'labels' missing; the classifier's classes are the labels, in order");
    if (strcmp(kind, "slp") == 0 || strcmp(kind, "mlp") == 0) {
        q->kind = kind[0] == 's' ? QAE_SLP : QAE_MLP;
        int64_t nout;
        json_t *layers = json_object_get(c, "layers");
        if (load_layers(w, layers, "classifier.layers", code, "the encoder's code", q->clf, &q->nclf, &nout) < 0)
            return -1;
        if (q->kind == QAE_SLP && q->nclf != 1)
            return eng_error("manifest: an slp classifier has exactly one layer, found %d (use kind \"mlp\")",
                             q->nclf);
        if (nout != nlabels)
            return eng_error("manifest: the classifier gives %lld outputs for %d labels", (long long)nout, nlabels);
        m->nout = nout;
    } else if (strcmp(kind, "svm") == 0) {
        q->kind = QAE_SVM;
        if (load_svm(&q->svm, w, c, code, nlabels) < 0)
            return -1;
        m->nout = nlabels == 2 ? 1 : q->svm.ovr ? nlabels : (int64_t)nlabels * (nlabels - 1) / 2;
    } else {
        return eng_error("manifest: classifier.kind '%s' unknown (slp, mlp or svm)", kind);
    }

    for (int b = 0; b < q->nbackbones; b++)
        mdl_model_add_tap(m, q->tap_bb[b]);
    mdl_model_add_tap(m, "features");
    mdl_model_add_tap(m, "code");
    return 0;
}

static int qae_load(struct mdl_model *m)
{
    struct qae *q = calloc(1, sizeof *q);
    if (!q)
        return eng_error("out of memory");
    m->impl = q;
    struct mdl_weights w;
    if (mdl_weights_open(&w, m, "model.safetensors") < 0) {
        qae_free(m);
        return -1;
    }
    int rc = qae_load_impl(m, q, &w);
    mdl_weights_close(&w);
    if (rc < 0)
        qae_free(m);
    return rc;
}

/* One support vector against one (scaled) input row. */
static double svm_kernel(const struct qae_svm *s, const float *sv, const float *x)
{
    double acc = 0.0;
    if (s->kernel == QAE_RBF) {
        for (int64_t d = 0; d < s->dim; d++) {
            double t = (double)x[d] - (double)sv[d];
            acc += t * t;
        }
        return exp(-s->gamma * acc);
    }
    for (int64_t d = 0; d < s->dim; d++)
        acc += (double)x[d] * (double)sv[d];
    if (s->kernel == QAE_LINEAR)
        return acc;
    if (s->kernel == QAE_POLY)
        return pow(s->gamma * acc + s->coef0, s->degree);
    return tanh(s->gamma * acc + s->coef0);
}

/* Doubles of workspace svm_forward needs. */
static size_t svm_work_doubles(const struct qae_svm *s)
{
    return (size_t)s->nsv + (size_t)s->nclass * (size_t)(s->nclass - 1) / 2 + 2 * (size_t)s->nclass;
}

/* The SVM on code [n, dim]: logits as sklearn's decision_function, probs softmax over the ovr
 * values (see the top of the file). work holds svm_work_doubles(s), xbuf dim floats. */
static void svm_forward(const struct qae_svm *s, const struct eng_tensor *code, double *work, float *xbuf,
                        float *logits, float *probs)
{
    int K = s->nclass;
    int64_t npair = (int64_t)K * (K - 1) / 2;
    double *kbuf = work, *pair = kbuf + s->nsv, *ovr = pair + npair, *conf = ovr + K;
    for (int64_t i = 0; i < code->ne[0]; i++) {
        const float *x = eng_tensor_row(code, i);
        if (s->mean) {
            for (int64_t d = 0; d < s->dim; d++)
                xbuf[d] = (x[d] - s->mean[d]) / s->scale[d];
            x = xbuf;
        }
        for (int64_t v = 0; v < s->nsv; v++)
            kbuf[v] = svm_kernel(s, s->sv + v * s->dim, x);
        int64_t p = 0;
        for (int a = 0; a < K; a++)
            for (int b = a + 1; b < K; b++, p++) {
                const float *ca = s->dual + (int64_t)(b - 1) * s->nsv, *cb = s->dual + (int64_t)a * s->nsv;
                double d = s->intercept[p];
                for (int64_t v = s->start[a]; v < s->start[a + 1]; v++)
                    d += ca[v] * kbuf[v];
                for (int64_t v = s->start[b]; v < s->start[b + 1]; v++)
                    d += cb[v] * kbuf[v];
                pair[p] = d;
            }
        /* ovr: libsvm's sense of a pair value is "positive votes for the first class"; sklearn
         * flips the sign of its public two-class parameters, so its value is the opposite. */
        for (int k = 0; k < K; k++)
            ovr[k] = conf[k] = 0.0;
        p = 0;
        for (int a = 0; a < K; a++)
            for (int b = a + 1; b < K; b++, p++) {
                double d = K == 2 ? -pair[p] : pair[p];
                ovr[d < 0 ? b : a] += 1.0;
                conf[a] += d;
                conf[b] -= d;
            }
        for (int k = 0; k < K; k++)
            ovr[k] += conf[k] / (3.0 * (fabs(conf[k]) + 1.0));
        if (logits) {
            float *lg = logits + i * (K == 2 ? 1 : s->ovr ? K : npair);
            if (K == 2)
                lg[0] = (float)pair[0];
            else if (s->ovr)
                for (int k = 0; k < K; k++)
                    lg[k] = (float)ovr[k];
            else
                for (int64_t q = 0; q < npair; q++)
                    lg[q] = (float)pair[q];
        }
        if (probs) {
            double mx = ovr[0], sum = 0.0;
            for (int k = 1; k < K; k++)
                mx = ovr[k] > mx ? ovr[k] : mx;
            for (int k = 0; k < K; k++)
                sum += (ovr[k] = exp(ovr[k] - mx));
            for (int k = 0; k < K; k++)
                probs[i * K + k] = (float)(ovr[k] / sum);
        }
    }
}

/* The 4 quadrant feature maps of one backbone, stitched into one map of the whole image. */
static int stitch(const struct eng_tensor kept[4], struct eng_tensor *whole)
{
    int64_t fh = kept[0].ne[1], fw = kept[0].ne[2];
    for (int qd = 0; qd < 4; qd++) {
        struct eng_tensor rows = eng_tensor_slice(whole, 1, (qd / 2) * fh, fh);
        struct eng_tensor cell = eng_tensor_slice(&rows, 2, (qd % 2) * fw, fw);
        if (eng_tensor_copy(&cell, &kept[qd]) < 0)
            return -1;
    }
    return 0;
}

/* Backbone b over the 4 quadrants of x: its pooled features into feat's blocks, and its
 * stitched last feature map offered as tap "backbone<b>". Leaves act as it found it. */
static int run_backbone(const struct qae *q, int b, struct eng_ctx *ctx, struct eng_arena *act,
                        const struct eng_tensor *x, struct eng_tensor *qbuf, struct eng_tensor *feat,
                        const struct mdl_output *out)
{
    const struct mdl_backbone *bb = &q->bb[b];
    int64_t n = x->ne[0], h2 = x->ne[1] / 2, w2 = x->ne[2] / 2, C = bb->features;
    size_t mark_b = eng_arena_mark(act);
    struct eng_tensor kept[4];
    for (int qd = 0; qd < 4; qd++) {
        struct eng_tensor rows = eng_tensor_slice(x, 1, (qd / 2) * h2, h2);
        struct eng_tensor src = eng_tensor_slice(&rows, 2, (qd % 2) * w2, w2);
        if (eng_tensor_copy(qbuf, &src) < 0)
            return -1;
        size_t mark = eng_arena_mark(act);
        struct eng_tensor fmap;
        /* No taps from inside: four quadrants would offer every name four times. */
        if (mdl_backbone_features(bb, ctx, act, qbuf, &fmap, NULL) < 0)
            return -1;
        if (fmap.ndim != 4 || fmap.ne[0] != n || fmap.ne[3] != C ||
            (qd > 0 && (fmap.ne[1] != kept[0].ne[1] || fmap.ne[2] != kept[0].ne[2]))) {
            char s[64];
            return eng_error("backbones[%d] gave a feature map %s, expected [%lld,h,w,%lld]", b,
                             eng_shape_str(&fmap, s, sizeof s), (long long)n, (long long)C);
        }
        /* Keep only the map: free the backbone's working memory and move the map down to where
         * it began. The copy walks rows upwards and the map lay above the mark, so no row is
         * overwritten before it is read. */
        eng_arena_rewind(act, mark);
        if (mdl_alloc(act, "quadrant.fmap", 4, fmap.ne, &kept[qd]) < 0 || eng_tensor_copy(&kept[qd], &fmap) < 0)
            return -1;
        struct eng_tensor block = eng_tensor_slice(feat, 1, qd * q->quad_features + q->bb_off[b], C);
        if (eng_global_avg_pool(ctx, &kept[qd], &block) < 0)
            return -1;
    }
    /* Allocated even without a tap so that the load-time measurement covers a tapped run. */
    struct eng_tensor whole;
    if (mdl_alloc(act, q->tap_bb[b], 4, (int64_t[]){n, 2 * kept[0].ne[1], 2 * kept[0].ne[2], C}, &whole) < 0)
        return -1;
    if (out && out->tap) {
        if (stitch(kept, &whole) < 0)
            return -1;
        mdl_tap(out, q->tap_bb[b], &whole);
    }
    eng_arena_rewind(act, mark_b);
    return 0;
}

static int qae_head(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                    const struct eng_tensor *feat, struct mdl_output *out);

static int qae_forward(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                       const struct eng_tensor *x, struct mdl_output *out)
{
    const struct qae *q = m->impl;
    int64_t n = x->ne[0];
    if (x->ndim != 4 || x->ne[1] != m->in_h || x->ne[2] != m->in_w || x->ne[3] != m->in_c) {
        char s[64];
        return eng_error("input %s, expected [n,%lld,%lld,%lld]", eng_shape_str(x, s, sizeof s), (long long)m->in_h,
                         (long long)m->in_w, (long long)m->in_c);
    }
    struct eng_tensor feat, qbuf;
    if (mdl_alloc(act, "features", 2, (int64_t[]){n, 4 * q->quad_features}, &feat) < 0)
        return -1;
    size_t mark = eng_arena_mark(act);
    if (mdl_alloc(act, "quadrant", 4, (int64_t[]){n, m->in_h / 2, m->in_w / 2, m->in_c}, &qbuf) < 0)
        return -1;
    for (int b = 0; b < q->nbackbones; b++)
        if (run_backbone(q, b, ctx, act, x, &qbuf, &feat, out) < 0)
            return -1;
    eng_arena_rewind(act, mark);
    mdl_tap(out, "features", &feat);
    return qae_head(m, ctx, act, &feat, out);
}

/* Pooled features [n, 4 * quad_features] -> autoencoder encoder -> classifier. */
static int qae_head(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                    const struct eng_tensor *feat, struct mdl_output *out)
{
    const struct qae *q = m->impl;
    int64_t n = feat->ne[0];
    struct eng_tensor cur = *feat;
    for (int i = 0; i < q->nenc; i++) {
        struct eng_tensor y;
        if (mdl_alloc(act, q->enc[i].name, 2, (int64_t[]){n, q->enc[i].out}, &y) < 0 ||
            eng_linear(ctx, &q->enc[i], &cur, &y) < 0)
            return -1;
        cur = y;
    }
    struct eng_tensor code = cur;
    mdl_tap(out, "code", &code);

    int nl = m->manifest.nlabels;
    if (q->kind == QAE_SVM) {
        const struct qae_svm *s = &q->svm;
        double *work = eng_arena_alloc(act, svm_work_doubles(s) * sizeof(double));
        float *xbuf = eng_arena_floats(act, (size_t)s->dim);
        if (!work || !xbuf)
            return -1;
        svm_forward(s, &code, work, xbuf, out->logits, out->probs);
        return 0;
    }
    for (int i = 0; i < q->nclf; i++) {
        struct eng_tensor y;
        if (mdl_alloc(act, q->clf[i].name, 2, (int64_t[]){n, q->clf[i].out}, &y) < 0 ||
            eng_linear(ctx, &q->clf[i], &cur, &y) < 0)
            return -1;
        cur = y;
    }
    size_t bytes = (size_t)(n * nl) * sizeof(float);
    if (out->logits)
        memcpy(out->logits, cur.data, bytes);
    if (out->probs) {
        memcpy(out->probs, cur.data, bytes);
        for (int64_t i = 0; i < n; i++)
            eng_softmax_row(out->probs + i * nl, nl);
    }
    return 0;
}

/* The classifier's softmax couples the labels: all are computed, the asked ones kept. */
static int qae_head_probs(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                          const struct eng_tensor *pooled, const int *labels, int nl, float *probs)
{
    float *all = eng_arena_floats(act, (size_t)pooled->ne[0] * (size_t)m->manifest.nlabels);
    struct mdl_output out = {.probs = all};
    if (!all || qae_head(m, ctx, act, pooled, &out) < 0)
        return -1;
    mdl_head_pick(all, pooled->ne[0], m->manifest.nlabels, labels, nl, probs);
    return 0;
}

const struct mdl_family mdl_family_quadrant_ae = {
    .name = "quadrant_ae",
    .load = qae_load,
    .free = qae_free,
    .forward = qae_forward,
    .head_probs = qae_head_probs,
};
