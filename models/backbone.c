/* backbone.c: choosing a backbone family and pooling its features. */
#include "models/backbone.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/pooling.h"

int mdl_alloc(struct eng_arena *act, const char *name, int ndim, const int64_t *ne, struct eng_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)ne[d];
    float *p = eng_arena_floats(act, n);
    if (!p)
        return -1;
    *t = eng_tensor_make(name, p, ndim, ne);
    return 0;
}

int mdl_backbone_load(struct mdl_backbone *b, const char *family, const struct mdl_weights *w, json_t *spec,
                      int64_t in_c)
{
    static const struct mdl_backbone_ops *const all[] = {&mdl_backbone_densenet, &mdl_backbone_resnet};
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->family, family) == 0) {
            b->ops = all[i];
            b->in_c = in_c;
            if (all[i]->load(b, w, spec, in_c) < 0) {
                b->ops = NULL;
                return -1;
            }
            return 0;
        }
    return eng_error("unknown backbone family '%s' (known: densenet, resnet)", family);
}

void mdl_backbone_free(struct mdl_backbone *b)
{
    if (b->ops)
        b->ops->free(b);
    b->ops = NULL;
}

int mdl_backbone_features(const struct mdl_backbone *b, struct eng_ctx *ctx, struct eng_arena *act,
                          const struct eng_tensor *x, struct eng_tensor *fmap, const struct mdl_output *out)
{
    return b->ops->forward(b, ctx, act, x, fmap, out);
}

int mdl_backbone_pooled(const struct mdl_backbone *b, struct eng_ctx *ctx, struct eng_arena *act,
                        const struct eng_tensor *x, struct eng_tensor *pooled, const struct mdl_output *out)
{
    struct eng_tensor fmap;
    if (b->ops->forward(b, ctx, act, x, &fmap, out) < 0)
        return -1;
    if (mdl_alloc(act, "pooled", 2, (int64_t[]){fmap.ne[0], fmap.ne[3]}, pooled) < 0)
        return -1;
    return eng_global_avg_pool(ctx, &fmap, pooled);
}

void mdl_cnn_free(struct mdl_model *m)
{
    struct mdl_cnn *c = m->impl;
    if (!c)
        return;
    mdl_backbone_free(&c->bb);
    mdl_head_free(&c->head);
    free(c);
    m->impl = NULL;
}

int mdl_cnn_load(struct mdl_model *m, const struct mdl_cnn_spec *spec)
{
    json_t *man = m->manifest.json;
    struct mdl_cnn *c = calloc(1, sizeof *c);
    if (!c)
        return eng_error("out of memory");
    m->impl = c;
    bool calibrate = false;
    if (spec->parse_output(man, &c->head.act, &calibrate) < 0) {
        mdl_cnn_free(m);
        return -1;
    }
    json_t *arch = json_object_get(man, "arch");
    json_t *jin = arch && json_is_object(arch) ? json_object_get(arch, "in_channels") : NULL;
    int64_t in_c = jin && json_is_integer(jin) ? json_integer_value(jin) : 3;
    struct mdl_weights w;
    if (mdl_weights_open(&w, m, "model.safetensors") < 0) {
        mdl_cnn_free(m);
        return -1;
    }
    int rc = -1;
    if (mdl_backbone_load(&c->bb, spec->family, &w, arch, in_c) < 0 ||
        mdl_head_load(&c->head, &w, spec->head_name, c->bb.features, m->manifest.nlabels, calibrate) < 0)
        goto out;
    m->nout = c->head.nout;
    m->in_c = in_c;
    m->in_h = m->pre.out_h;
    m->in_w = m->pre.out_w;
    rc = spec->finish(m, &c->bb);
out:
    mdl_weights_close(&w);
    if (rc < 0)
        mdl_cnn_free(m);
    return rc;
}

int mdl_cnn_forward(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                    const struct eng_tensor *x, struct mdl_output *out)
{
    const struct mdl_cnn *c = m->impl;
    struct eng_tensor pooled;
    if (mdl_backbone_pooled(&c->bb, ctx, act, x, &pooled, out) < 0)
        return -1;
    return mdl_head_forward(&c->head, ctx, act, &pooled, out);
}

int mdl_cnn_class_weights(const struct mdl_model *m, int k, float *w, float *bias)
{
    const struct mdl_cnn *c = m->impl;
    return mdl_head_class_weights(&c->head, k, w, bias);
}

int mdl_cnn_head_probs(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                       const struct eng_tensor *pooled, const int *labels, int nl, float *probs)
{
    const struct mdl_cnn *c = m->impl;
    float *all = eng_arena_floats(act, (size_t)pooled->ne[0] * (size_t)m->manifest.nlabels);
    struct mdl_output out = {.probs = all};
    if (!all || mdl_head_forward(&c->head, ctx, act, pooled, &out) < 0)
        return -1;
    mdl_head_pick(all, pooled->ne[0], m->manifest.nlabels, labels, nl, probs);
    return 0;
}
