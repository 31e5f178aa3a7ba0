/* head.c: the linear classifier head shared by the CNN families and Swin's linear head. */
#include "models/head.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activation.h"
#include "engine/error.h"
#include "models/backbone.h"

int mdl_head_parse_output(json_t *man, bool calibration, enum mdl_out_act *act, bool *calibrate)
{
    json_t *jo = json_object_get(man, "output");
    if (!jo)
        return 0;
    if (!json_is_object(jo))
        return eng_error("'output' must be an object");
    json_t *ja = json_object_get(jo, "activation");
    if (ja) {
        const char *s = json_is_string(ja) ? json_string_value(ja) : "";
        if (strcmp(s, "sigmoid") == 0)
            *act = MDL_OUT_SIGMOID;
        else if (strcmp(s, "softmax") == 0)
            *act = MDL_OUT_SOFTMAX;
        else if (strcmp(s, "none") == 0)
            *act = MDL_OUT_NONE;
        else
            return eng_error("'output.activation' must be \"sigmoid\", \"softmax\" or \"none\"");
    }
    if (!calibration)
        return 0;
    json_t *jc = json_object_get(jo, "calibration");
    if (jc) {
        const char *s = json_is_string(jc) ? json_string_value(jc) : "";
        if (strcmp(s, "op_threshs") == 0)
            *calibrate = true;
        else if (strcmp(s, "none") == 0)
            *calibrate = false;
        else
            return eng_error("'output.calibration' must be \"op_threshs\" or \"none\"");
    }
    if (*calibrate && *act != MDL_OUT_SIGMOID)
        return eng_error("'output.calibration' op_threshs needs 'output.activation' sigmoid");
    return 0;
}

int mdl_head_load(struct mdl_linear_head *h, const struct mdl_weights *w, const char *name, int64_t in,
                  int nlabels, bool calibrate)
{
    char wname[160];
    snprintf(wname, sizeof wname, "%s.weight", name);
    int64_t shape[8];
    int nd = mdl_weights_shape(w, wname, shape);
    if (nd < 0)
        return -1;
    if (nd != 2 || shape[1] != in) {
        char dims[96];
        return eng_error("tensor '%s' has shape %s, expected [outputs,%lld]", wname,
                         eng_dims_str(nd, shape, dims, sizeof dims), (long long)in);
    }
    /* One label per output: a manifest that names fewer or more would mislabel every score. */
    if (nlabels != shape[0])
        return eng_error("the manifest lists %d labels, but tensor '%s' [%lld,%lld] has %lld outputs", nlabels,
                         wname, (long long)shape[0], (long long)shape[1], (long long)shape[0]);
    h->nout = shape[0];
    if (mdl_load_linear(w, name, in, h->nout, ENG_ACT_NONE, &h->fc) < 0)
        return -1;
    if (calibrate && !(h->op_threshs = mdl_weights_get(w, "op_threshs", 1, (int64_t[]){h->nout})))
        return -1;
    return 0;
}

void mdl_head_free(struct mdl_linear_head *h)
{
    eng_linear_free(&h->fc);
    free(h->op_threshs);
    h->op_threshs = NULL;
}

int mdl_head_logits(const struct mdl_linear_head *h, struct eng_ctx *ctx, struct eng_arena *act,
                    const struct eng_tensor *pooled, const struct mdl_output *out, struct eng_tensor *logits)
{
    int64_t n = pooled->ne[0];
    if (out->logits)
        *logits = eng_tensor_make("logits", out->logits, 2, (int64_t[]){n, h->nout});
    else if (mdl_alloc(act, "logits", 2, (int64_t[]){n, h->nout}, logits) < 0)
        return -1;
    return eng_linear(ctx, &h->fc, pooled, logits);
}

/* torchxrayvision's op_norm on sigmoid outputs: p < t -> p / (2t), else 1 - (1 - p) / (2 (1 - t));
 * a NaN threshold marks a label the model was not trained on and gives 0.5, as it does there. */
static float head_op_norm(float p, float t)
{
    if (isnan(t))
        return 0.5f;
    if (p < t)
        return p / (t * 2.0f);
    return 1.0f - (1.0f - p) / ((1.0f - t) * 2.0f);
}

void mdl_head_probs_row(const struct mdl_linear_head *h, const float *z, float *p)
{
    memcpy(p, z, (size_t)h->nout * sizeof(float));
    if (h->act == MDL_OUT_SOFTMAX) {
        eng_softmax_row(p, h->nout);
    } else if (h->act == MDL_OUT_SIGMOID) {
        for (int64_t j = 0; j < h->nout; j++) {
            p[j] = 1.0f / (1.0f + expf(-z[j]));
            if (h->op_threshs)
                p[j] = head_op_norm(p[j], h->op_threshs[j]);
        }
    }
}

int mdl_head_forward(const struct mdl_linear_head *h, struct eng_ctx *ctx, struct eng_arena *act,
                     const struct eng_tensor *pooled, struct mdl_output *out)
{
    struct eng_tensor logits;
    if (mdl_head_logits(h, ctx, act, pooled, out, &logits) < 0)
        return -1;
    if (!out->probs)
        return 0;
    for (int64_t i = 0; i < pooled->ne[0]; i++)
        mdl_head_probs_row(h, logits.data + i * h->nout, out->probs + i * h->nout);
    return 0;
}

void mdl_head_pick(const float *all, int64_t n, int nall, const int *labels, int nl, float *probs)
{
    for (int64_t r = 0; r < n; r++)
        for (int s = 0; s < nl; s++)
            probs[r * nl + s] = all[r * nall + labels[s]];
}

int mdl_head_class_weights(const struct mdl_linear_head *h, int64_t c, float *w, float *bias)
{
    if (c < 0 || c >= h->nout)
        return eng_error("head '%s': class %lld out of 0..%lld", h->fc.name, (long long)c, (long long)(h->nout - 1));
    for (int64_t k = 0; k < h->fc.in; k++)
        w[k] = h->fc.w[k * h->fc.out + c];
    if (bias)
        *bias = h->fc.bias ? h->fc.bias[c] : 0.0f;
    return 0;
}
