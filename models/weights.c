/* weights.c: named, shape-checked weight reading and the conv / BN / linear loaders families share. */
#include "models/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/norm.h"

int mdl_weights_open(struct mdl_weights *w, const struct mdl_model *m, const char *file)
{
    char path[1200];
    memset(w, 0, sizeof *w);
    snprintf(path, sizeof path, "%s/%s", m->dir, file);
    w->file = eng_st_open(path);
    return w->file ? 0 : -1;
}

struct mdl_weights mdl_weights_sub(const struct mdl_weights *w, const char *prefix)
{
    struct mdl_weights s = *w;
    s.borrowed = true;
    snprintf(s.prefix, sizeof s.prefix, "%s%s", w->prefix, prefix);
    return s;
}

void mdl_weights_close(struct mdl_weights *w)
{
    if (!w->borrowed)
        eng_st_close(w->file);
    w->file = NULL;
}

static const char *full_name(const struct mdl_weights *w, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", w->prefix, name);
    return buf;
}

bool mdl_weights_has(const struct mdl_weights *w, const char *name)
{
    char buf[512];
    return eng_st_find(w->file, full_name(w, name, buf, sizeof buf)) != NULL;
}

int mdl_weights_shape(const struct mdl_weights *w, const char *name, int64_t *shape)
{
    char buf[512];
    const struct eng_st_info *i = eng_st_find(w->file, full_name(w, name, buf, sizeof buf));
    if (!i)
        return eng_error("%s: no tensor '%s'", eng_st_path(w->file), buf);
    memcpy(shape, i->shape, sizeof(int64_t) * (size_t)i->ndim);
    return i->ndim;
}

float *mdl_weights_get(const struct mdl_weights *w, const char *name, int ndim, const int64_t *shape)
{
    char buf[512];
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)shape[d];
    float *dst = malloc((n ? n : 1) * sizeof(float));
    if (!dst) {
        eng_error("out of memory for tensor '%s'", full_name(w, name, buf, sizeof buf));
        return NULL;
    }
    if (eng_st_read(w->file, full_name(w, name, buf, sizeof buf), ndim, shape, dst) < 0) {
        free(dst);
        return NULL;
    }
    return dst;
}

/* gamma, beta, mean, var of <bn> as four malloc'd arrays of c floats. */
static int read_bn(const struct mdl_weights *w, const char *bn, int64_t c, float *v[4])
{
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    char name[256];
    for (int i = 0; i < 4; i++)
        v[i] = NULL;
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", bn, parts[i]);
        v[i] = mdl_weights_get(w, name, 1, (int64_t[]){c});
        if (!v[i]) {
            for (int j = 0; j < i; j++)
                free(v[j]);
            return -1;
        }
    }
    return 0;
}

int mdl_load_conv(const struct mdl_weights *w, const char *conv, const char *bn, const struct eng_conv_params *p,
                  struct eng_conv *out)
{
    char name[256], full[512];
    memset(out, 0, sizeof *out);
    snprintf(name, sizeof name, "%s.weight", conv);
    float *wt = mdl_weights_get(w, name, 4, (int64_t[]){p->cout, p->cin / p->groups, p->kh, p->kw});
    if (!wt)
        return -1;
    float *bias = NULL;
    snprintf(name, sizeof name, "%s.bias", conv);
    if (mdl_weights_has(w, name) && !(bias = mdl_weights_get(w, name, 1, (int64_t[]){p->cout}))) {
        free(wt);
        return -1;
    }
    /* Fold with no activation first: the activation belongs after the batch norm. */
    struct eng_conv_params q = *p;
    if (bn) {
        q.act = ENG_ACT_NONE;
        q.act_param = 0.0f;
    }
    int rc = eng_conv_init_oihw(out, full_name(w, conv, full, sizeof full), &q, wt, bias);
    free(wt);
    free(bias);
    if (rc < 0)
        return rc;
    if (!bn) {
        eng_conv_drop_unpacked(out);
        return 0;
    }
    float *v[4];
    if (read_bn(w, bn, p->cout, v) < 0) {
        eng_conv_free(out);
        return -1;
    }
    rc = eng_conv_fold_bn(out, v[0], v[1], v[2], v[3], 1e-5f);
    for (int i = 0; i < 4; i++)
        free(v[i]);
    if (rc < 0) {
        eng_conv_free(out);
        return -1;
    }
    out->p.act = p->act;
    out->p.act_param = p->act_param;
    eng_conv_drop_unpacked(out);
    return 0;
}

int mdl_load_bn(const struct mdl_weights *w, const char *bn, int64_t channels, enum eng_act act, struct mdl_bn *out)
{
    float *v[4];
    memset(out, 0, sizeof *out);
    if (read_bn(w, bn, channels, v) < 0)
        return -1;
    out->scale = malloc((size_t)channels * sizeof(float));
    out->shift = malloc((size_t)channels * sizeof(float));
    int rc = -1;
    if (!out->scale || !out->shift)
        eng_error("out of memory for batch norm '%s'", bn);
    else
        rc = eng_batch_norm_init(&out->aff, channels, v[0], v[1], v[2], v[3], 1e-5f, out->scale, out->shift);
    for (int i = 0; i < 4; i++)
        free(v[i]);
    if (rc < 0) {
        mdl_bn_free(out);
        return -1;
    }
    out->aff.act = act;
    return 0;
}

void mdl_bn_free(struct mdl_bn *bn)
{
    free(bn->scale);
    free(bn->shift);
    bn->scale = bn->shift = NULL;
}

int mdl_load_linear(const struct mdl_weights *w, const char *name, int64_t in, int64_t out, enum eng_act act,
                    struct eng_linear *lin)
{
    char n[256], full[512];
    memset(lin, 0, sizeof *lin);
    snprintf(n, sizeof n, "%s.weight", name);
    float *wt = mdl_weights_get(w, n, 2, (int64_t[]){out, in});
    if (!wt)
        return -1;
    float *bias = NULL;
    snprintf(n, sizeof n, "%s.bias", name);
    if (mdl_weights_has(w, n) && !(bias = mdl_weights_get(w, n, 1, (int64_t[]){out}))) {
        free(wt);
        return -1;
    }
    int rc = eng_linear_init(lin, full_name(w, name, full, sizeof full), in, out, wt, bias, act, 0.0f);
    free(wt);
    free(bias);
    return rc;
}
