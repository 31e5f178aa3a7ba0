/* swin.c: Swin Transformer v1 classifiers as torchvision builds them, with a linear or SwinCheX head.
 *
 * The network is torchvision's SwinTransformer (swin_t/s/b and smaller configurations):
 * patch embedding (conv k=s=patch, LayerNorm), stages of blocks
 *   x = x + attn(norm1(x));  x = x + fc2(gelu(fc1(norm2(x))))
 * (shift = window/2 on odd blocks, stochastic depth is the identity at inference), PatchMerging
 * between stages, a final LayerNorm, global average pooling and the head. Weight names are
 * torchvision's (features.<i>..., norm, head); export.py renames other layouts.
 *
 * Manifest fields read here (export.py's salient_export/swin.py writes them):
 *   "arch":   {"name": "swin_t", "patch_size": 4, "embed_dim": 96, "depths": [2, 2, 6, 2],
 *              "num_heads": [3, 6, 12, 24], "window_size": [7, 7], "mlp_ratio": 4.0}
 *             (a known name alone, or the string "swin_t", gives that architecture's values;
 *             explicit fields override them; window_size and patch_size take an int or [h, w])
 *   "head":   {"type": "linear"} or {"type": "swinchex", "hidden": [384, 48, 48]}
 *             (absent: from "preset": "swinchex", "linear" or "linear_sigmoid")
 *   "output": {"activation": "softmax" | "sigmoid" (linear head) | "softmax_pairs" (SwinCheX:
 *             P = softmax(pair)[1])}; absent: the head's usual one
 *   "labels": one per head output (linear) or per SwinCheX MLP.
 * The input size is the preprocessing's output (Swin pads to whole windows, so any size works).
 *
 * Taps: "stage1".."stageN" (each stage's output, NHWC [n, h, w, c]) and "features" (after the
 * final norm, before pooling).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conv.h"
#include "engine/eltwise.h"
#include "engine/error.h"
#include "engine/linear.h"
#include "engine/norm.h"
#include "engine/pooling.h"
#include "engine/swin.h"
#include "models/backbone.h"
#include "models/families.h"
#include "models/head.h"
#include "models/weights.h"

#define SW_MAX_STAGES 8
#define SW_MAX_HIDDEN 8
/* The MLP runs over this many tokens at a time, so its 4x-wide hidden buffer stays small
 * (the arena holds one chunk, not the whole map) while each GEMM still has plenty of rows. */
#define SW_MLP_ROWS 4096

/* SwinCheX's outputs are always softmax pairs (P = softmax(pair)[1]); the linear head's activation
 * is its mdl_linear_head's. */
enum sw_head { SW_HEAD_LINEAR, SW_HEAD_SWINCHEX };

/* A LayerNorm with its own parameters (eng_layer_norm borrows them). */
struct sw_norm {
    struct eng_layer_norm ln;
    float *w, *b;
};

struct sw_block {
    struct sw_norm norm1, norm2;
    struct eng_swin_attn attn;
    struct eng_linear fc1; /* GELU fused */
    struct eng_linear fc2;
};

struct sw_stage {
    int64_t dim, hidden; /* channels; MLP width int(dim * mlp_ratio) */
    int depth;
    struct sw_block *blocks;
    bool has_merge; /* PatchMerging after this stage (all but the last) */
    struct eng_swin_merge merge;
};

struct sw_config {
    int patch_h, patch_w, win_h, win_w;
    int64_t embed_dim, in_c;
    int nstages;
    int depths[SW_MAX_STAGES];
    int64_t heads[SW_MAX_STAGES];
    double mlp_ratio;
};

struct sw_impl {
    struct sw_config cfg;
    struct eng_conv embed;
    struct sw_norm embed_norm;
    struct sw_stage stages[SW_MAX_STAGES];
    struct sw_norm norm;
    int64_t nfeat;
    enum sw_head head;
    struct mdl_linear_head linear; /* linear head: head.{weight,bias}, act softmax or sigmoid */
    int nlabels;                 /* SwinCheX: one MLP per label */
    int nhidden;                 /* SwinCheX hidden layers (3) */
    int64_t hidden[SW_MAX_HIDDEN];
    struct eng_linear *mlps;     /* SwinCheX: nlabels * (nhidden + 1) layers, label-major */
    struct eng_packed_b *mlps_t; /* SwinCheX, where the packed GEMM runs: each layer's W (not W^T),
                                    packed for the gradient CAMs' backward (same indexing; the
                                    output layers' entries stay empty), else NULL */
    int64_t state_per;           /* SwinCheX: floats per label in the "head" tap: hidden activations
                                    (layer after layer), then the logit pair */
};

/* The architectures torchvision names (Swin v1). */
static const struct {
    const char *name;
    int64_t embed_dim;
    int depths[4];
    int64_t heads[4];
} sw_archs[] = {
    {"swin_t", 96, {2, 2, 6, 2}, {3, 6, 12, 24}},
    {"swin_s", 96, {2, 2, 18, 2}, {3, 6, 12, 24}},
    {"swin_b", 128, {2, 2, 18, 2}, {4, 8, 16, 32}},
};

/* ---- manifest ---- */

static int sw_pos_int(json_t *v, const char *what, int64_t max, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
        return eng_error("manifest: '%s' must be an integer from 1 to %lld", what, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

/* An int or [h, w] pair. */
static int sw_pair(json_t *v, const char *what, int max, int *h, int *w)
{
    int64_t a, b;
    if (json_is_array(v)) {
        if (json_array_size(v) != 2)
            return eng_error("manifest: '%s' must be an integer or [h, w]", what);
        if (sw_pos_int(json_array_get(v, 0), what, max, &a) < 0 || sw_pos_int(json_array_get(v, 1), what, max, &b) < 0)
            return -1;
    } else {
        if (sw_pos_int(v, what, max, &a) < 0)
            return -1;
        b = a;
    }
    *h = (int)a;
    *w = (int)b;
    return 0;
}

static int sw_parse_arch(json_t *arch, struct sw_config *c)
{
    memset(c, 0, sizeof *c);
    c->patch_h = c->patch_w = 4;
    c->win_h = c->win_w = 7;
    c->mlp_ratio = 4.0;
    c->in_c = 3;
    if (!json_is_string(arch) && !json_is_object(arch))
        return eng_error("manifest: 'arch' missing (an object with embed_dim, depths, num_heads, window_size, ...)");
    const char *name =
        json_is_string(arch) ? json_string_value(arch) : json_string_value(json_object_get(arch, "name"));
    if (name) {
        size_t i;
        for (i = 0; i < sizeof sw_archs / sizeof sw_archs[0]; i++)
            if (strcmp(sw_archs[i].name, name) == 0)
                break;
        if (i < sizeof sw_archs / sizeof sw_archs[0]) {
            c->embed_dim = sw_archs[i].embed_dim;
            c->nstages = 4;
            for (int s = 0; s < 4; s++) {
                c->depths[s] = sw_archs[i].depths[s];
                c->heads[s] = sw_archs[i].heads[s];
            }
        } else if (json_is_string(arch) || !json_object_get(arch, "depths")) {
            return eng_error("manifest: unknown swin arch '%s' (known: swin_t, swin_s, swin_b; or give embed_dim, "
                             "depths, num_heads)", name);
        }
    }
    if (json_is_string(arch))
        return 0;
    json_t *v;
    if ((v = json_object_get(arch, "embed_dim")) && sw_pos_int(v, "arch.embed_dim", 65536, &c->embed_dim) < 0)
        return -1;
    if ((v = json_object_get(arch, "in_channels")) && sw_pos_int(v, "arch.in_channels", 4, &c->in_c) < 0)
        return -1;
    if ((v = json_object_get(arch, "patch_size")) && sw_pair(v, "arch.patch_size", 64, &c->patch_h, &c->patch_w) < 0)
        return -1;
    if ((v = json_object_get(arch, "window_size")) && sw_pair(v, "arch.window_size", 64, &c->win_h, &c->win_w) < 0)
        return -1;
    if ((v = json_object_get(arch, "mlp_ratio"))) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 64)
            return eng_error("manifest: 'arch.mlp_ratio' must be a number in (0, 64]");
        c->mlp_ratio = json_number_value(v);
    }
    json_t *d = json_object_get(arch, "depths"), *h = json_object_get(arch, "num_heads");
    if (d || h) {
        if (!json_is_array(d) || !json_is_array(h) || json_array_size(d) != json_array_size(h) ||
            json_array_size(d) < 1 || json_array_size(d) > SW_MAX_STAGES)
            return eng_error("manifest: 'arch.depths' and 'arch.num_heads' must be lists of the same length, 1 to %d",
                             SW_MAX_STAGES);
        c->nstages = (int)json_array_size(d);
        for (int s = 0; s < c->nstages; s++) {
            int64_t dv, hv;
            if (sw_pos_int(json_array_get(d, (size_t)s), "arch.depths[]", 1024, &dv) < 0 ||
                sw_pos_int(json_array_get(h, (size_t)s), "arch.num_heads[]", 1024, &hv) < 0)
                return -1;
            c->depths[s] = (int)dv;
            c->heads[s] = hv;
        }
    }
    if (c->nstages == 0 || c->embed_dim == 0)
        return eng_error("manifest: 'arch' needs a known name or embed_dim, depths and num_heads");
    for (int s = 0; s < c->nstages; s++)
        if (((c->embed_dim << s) % c->heads[s]) != 0)
            return eng_error("manifest: stage %d width %lld is not divisible by its %lld heads", s + 1,
                             (long long)(c->embed_dim << s), (long long)c->heads[s]);
    return 0;
}

static int sw_parse_head(json_t *man, int nlabels, struct sw_impl *s)
{
    const char *preset = json_string_value(json_object_get(man, "preset"));
    json_t *head = json_object_get(man, "head");
    const char *type = json_string_value(json_object_get(head, "type"));
    const char *def_out = "softmax";
    if (!type) {
        if (head)
            return eng_error("manifest: 'head.type' must be \"linear\" or \"swinchex\"");
        if (!preset)
            return eng_error("manifest: neither 'head' nor 'preset' says which head the model has");
        if (strcmp(preset, "swinchex") == 0)
            type = "swinchex";
        else if (strcmp(preset, "linear") == 0)
            type = "linear";
        else if (strcmp(preset, "linear_sigmoid") == 0)
            type = "linear", def_out = "sigmoid";
        else
            return eng_error("manifest: unknown swin preset '%s' (known: swinchex, linear, linear_sigmoid)", preset);
    }
    if (strcmp(type, "linear") == 0) {
        s->head = SW_HEAD_LINEAR;
    } else if (strcmp(type, "swinchex") == 0) {
        s->head = SW_HEAD_SWINCHEX;
        def_out = "softmax_pairs";
        json_t *hid = json_object_get(head, "hidden");
        s->nhidden = 3;
        s->hidden[0] = 384, s->hidden[1] = 48, s->hidden[2] = 48;
        if (hid) {
            if (!json_is_array(hid) || json_array_size(hid) > SW_MAX_HIDDEN)
                return eng_error("manifest: 'head.hidden' must be a list of at most %d widths", SW_MAX_HIDDEN);
            s->nhidden = (int)json_array_size(hid);
            for (int i = 0; i < s->nhidden; i++)
                if (sw_pos_int(json_array_get(hid, (size_t)i), "head.hidden[]", 1 << 20, &s->hidden[i]) < 0)
                    return -1;
        }
    } else {
        return eng_error("manifest: unknown swin head '%s' (known: linear, swinchex)", type);
    }
    /* "output": {"activation": ...} as the other families write it; a bare string also works. */
    json_t *o = json_object_get(man, "output");
    if (json_is_object(o))
        o = json_object_get(o, "activation");
    const char *out = o ? json_string_value(o) : def_out;
    if (!out)
        return eng_error("manifest: 'output.activation' must be a string");
    if (s->head == SW_HEAD_SWINCHEX) {
        if (strcmp(out, "softmax_pairs") != 0)
            return eng_error("manifest: output '%s' does not fit the SwinCheX head (it gives \"softmax_pairs\")", out);
    } else if (strcmp(out, "softmax") == 0) {
        s->linear.act = MDL_OUT_SOFTMAX;
    } else if (strcmp(out, "sigmoid") == 0) {
        s->linear.act = MDL_OUT_SIGMOID;
    } else {
        return eng_error("manifest: unknown output '%s' for a linear head (known: softmax, sigmoid)", out);
    }
    if (nlabels < 1)
        return eng_error("manifest: 'labels' missing or empty");
    s->nlabels = nlabels;
    return 0;
}

/* ---- weights ---- */

static void sw_norm_free(struct sw_norm *n)
{
    free(n->w);
    free(n->b);
    n->w = n->b = NULL;
}

static int sw_load_norm(const struct mdl_weights *w, const char *name, int64_t dim, struct sw_norm *n)
{
    char buf[256];
    memset(n, 0, sizeof *n);
    snprintf(buf, sizeof buf, "%s.weight", name);
    if (!(n->w = mdl_weights_get(w, buf, 1, (int64_t[]){dim})))
        return -1;
    snprintf(buf, sizeof buf, "%s.bias", name);
    if (!(n->b = mdl_weights_get(w, buf, 1, (int64_t[]){dim}))) {
        sw_norm_free(n);
        return -1;
    }
    n->ln = (struct eng_layer_norm){dim, n->w, n->b, 1e-5f};
    return 0;
}

static void sw_block_free(struct sw_block *b)
{
    sw_norm_free(&b->norm1);
    sw_norm_free(&b->norm2);
    eng_swin_attn_free(&b->attn);
    eng_linear_free(&b->fc1);
    eng_linear_free(&b->fc2);
}

/* features.<layer>.<i> with window shift on odd blocks, as torchvision builds it. */
static int sw_load_block(const struct mdl_weights *w, const struct sw_config *c, int layer, int i, int64_t dim,
                         int64_t heads, int64_t hidden, struct sw_block *b)
{
    char p[96], n[160];
    memset(b, 0, sizeof *b);
    snprintf(p, sizeof p, "features.%d.%d", layer, i);
    int64_t tbl = (int64_t)(2 * c->win_h - 1) * (2 * c->win_w - 1);
    float *qkv_w = NULL, *qkv_b = NULL, *proj_w = NULL, *proj_b = NULL, *rel = NULL;
    int rc = -1;
    snprintf(n, sizeof n, "%s.norm1", p);
    if (sw_load_norm(w, n, dim, &b->norm1) < 0)
        goto out;
    snprintf(n, sizeof n, "%s.norm2", p);
    if (sw_load_norm(w, n, dim, &b->norm2) < 0)
        goto out;
    snprintf(n, sizeof n, "%s.attn.qkv.weight", p);
    if (!(qkv_w = mdl_weights_get(w, n, 2, (int64_t[]){3 * dim, dim})))
        goto out;
    snprintf(n, sizeof n, "%s.attn.qkv.bias", p);
    if (mdl_weights_has(w, n) && !(qkv_b = mdl_weights_get(w, n, 1, (int64_t[]){3 * dim})))
        goto out;
    snprintf(n, sizeof n, "%s.attn.proj.weight", p);
    if (!(proj_w = mdl_weights_get(w, n, 2, (int64_t[]){dim, dim})))
        goto out;
    snprintf(n, sizeof n, "%s.attn.proj.bias", p);
    if (mdl_weights_has(w, n) && !(proj_b = mdl_weights_get(w, n, 1, (int64_t[]){dim})))
        goto out;
    snprintf(n, sizeof n, "%s.attn.relative_position_bias_table", p);
    if (!(rel = mdl_weights_get(w, n, 2, (int64_t[]){tbl, heads})))
        goto out;
    int sh = i % 2 ? c->win_h / 2 : 0, sw = i % 2 ? c->win_w / 2 : 0;
    if (eng_swin_attn_init(&b->attn, dim, heads, c->win_h, c->win_w, sh, sw, qkv_w, qkv_b, proj_w, proj_b, rel) < 0)
        goto out;
    snprintf(n, sizeof n, "%s.mlp.0", p);
    if (mdl_load_linear(w, n, dim, hidden, ENG_ACT_GELU, &b->fc1) < 0)
        goto out;
    snprintf(n, sizeof n, "%s.mlp.3", p);
    if (mdl_load_linear(w, n, hidden, dim, ENG_ACT_NONE, &b->fc2) < 0)
        goto out;
    eng_linear_drop_unpacked(&b->fc1); /* nothing reads a block's MLP weights back */
    eng_linear_drop_unpacked(&b->fc2);
    rc = 0;
out:
    free(qkv_w), free(qkv_b), free(proj_w), free(proj_b), free(rel);
    if (rc < 0)
        sw_block_free(b);
    return rc;
}

static int sw_load_merge(const struct mdl_weights *w, int layer, int64_t dim, struct eng_swin_merge *m)
{
    char n[96];
    float *nw = NULL, *nb = NULL, *red = NULL;
    int rc = -1;
    snprintf(n, sizeof n, "features.%d.norm.weight", layer);
    if (!(nw = mdl_weights_get(w, n, 1, (int64_t[]){4 * dim})))
        goto out;
    snprintf(n, sizeof n, "features.%d.norm.bias", layer);
    if (!(nb = mdl_weights_get(w, n, 1, (int64_t[]){4 * dim})))
        goto out;
    snprintf(n, sizeof n, "features.%d.reduction.weight", layer);
    if (!(red = mdl_weights_get(w, n, 2, (int64_t[]){2 * dim, 4 * dim})))
        goto out;
    rc = eng_swin_merge_init(m, dim, nw, nb, red);
out:
    free(nw), free(nb), free(red);
    return rc;
}

static void sw_free_impl(struct sw_impl *s)
{
    if (!s)
        return;
    eng_conv_free(&s->embed);
    sw_norm_free(&s->embed_norm);
    for (int st = 0; st < s->cfg.nstages; st++) {
        struct sw_stage *g = &s->stages[st];
        for (int i = 0; g->blocks && i < g->depth; i++)
            sw_block_free(&g->blocks[i]);
        free(g->blocks);
        if (g->has_merge)
            eng_swin_merge_free(&g->merge);
    }
    sw_norm_free(&s->norm);
    mdl_head_free(&s->linear);
    if (s->mlps)
        for (int i = 0; i < s->nlabels * (s->nhidden + 1); i++)
            eng_linear_free(&s->mlps[i]);
    free(s->mlps);
    if (s->mlps_t)
        for (int i = 0; i < s->nlabels * (s->nhidden + 1); i++)
            eng_packed_b_free(&s->mlps_t[i]);
    free(s->mlps_t);
    free(s);
}

/* A tensor the manifest's configuration does not expect is an error: a checkpoint with more
 * stages, blocks or SwinCheX heads than the manifest says would otherwise load silently. */
static int sw_check_extra(const struct mdl_weights *w, const char *name, const char *why)
{
    if (mdl_weights_has(w, name))
        return eng_error("%s: unexpected tensor '%s%s' (%s)", eng_st_path(w->file), w->prefix, name, why);
    return 0;
}

/* Each hidden layer's W [out x in] packed as a GEMM's B, for sw_label_backward's G W: its
 * small products then skip OpenBLAS's per-call packing (most of their cost at 8 rows). */
static int sw_pack_backward(struct sw_impl *s)
{
    int per = s->nhidden + 1;
    s->mlps_t = calloc((size_t)(s->nlabels * per), sizeof *s->mlps_t);
    if (!s->mlps_t)
        return eng_error("out of memory for the SwinCheX heads' backward weights");
    for (int i = 0; i < s->nlabels * per; i++) {
        const struct eng_linear *l = &s->mlps[i];
        if (i % per == s->nhidden)
            continue;
        float *wt = malloc(sizeof(float) * (size_t)(l->in * l->out));
        if (!wt)
            return eng_error("out of memory for the SwinCheX heads' backward weights");
        for (int64_t o = 0; o < l->out; o++)
            for (int64_t c = 0; c < l->in; c++)
                wt[o * l->in + c] = l->w[c * l->out + o];
        int rc = eng_pack_b(&s->mlps_t[i], l->name, wt, l->in, l->out, l->in);
        free(wt);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int sw_load_head(const struct mdl_weights *w, struct sw_impl *s)
{
    char n[96];
    if (s->head == SW_HEAD_LINEAR) {
        /* Checked here first for swin's own wording of these errors (tests and users match it);
         * mdl_head_load's checks then pass. */
        int64_t shape[8];
        int nd = mdl_weights_shape(w, "head.weight", shape);
        if (nd < 0)
            return -1;
        if (nd != 2 || shape[1] != s->nfeat)
            return eng_error("tensor 'head.weight' must be [outputs, %lld]", (long long)s->nfeat);
        if (shape[0] != s->nlabels)
            return eng_error("the manifest has %d labels, but 'head.weight' has %lld outputs (expected [%d, %lld])",
                             s->nlabels, (long long)shape[0], s->nlabels, (long long)s->nfeat);
        return mdl_head_load(&s->linear, w, "head", s->nfeat, s->nlabels, false);
    }
    snprintf(n, sizeof n, "head.%d.0.weight", s->nlabels);
    if (mdl_weights_has(w, n))
        return eng_error("the manifest has %d labels, but the weights hold more SwinCheX heads ('%s' exists)",
                         s->nlabels, n);
    if (!mdl_weights_has(w, "head.0.0.weight"))
        return eng_error("%s: no SwinCheX head 'head.0.0.weight' (is this a linear-head checkpoint?)",
                         eng_st_path(w->file));
    int per = s->nhidden + 1;
    s->mlps = calloc((size_t)(s->nlabels * per), sizeof *s->mlps);
    if (!s->mlps)
        return eng_error("out of memory for the SwinCheX heads");
    for (int i = 0; i < s->nlabels; i++) {
        int64_t in = s->nfeat;
        for (int j = 0; j < per; j++) {
            int64_t out = j < s->nhidden ? s->hidden[j] : 2;
            snprintf(n, sizeof n, "head.%d.%d", i, 2 * j);
            if (mdl_load_linear(w, n, in, out, j < s->nhidden ? ENG_ACT_RELU : ENG_ACT_NONE, &s->mlps[i * per + j]) < 0)
                return -1;
            in = out;
        }
        snprintf(n, sizeof n, "head.%d.%d.weight", i, 2 * per);
        if (sw_check_extra(w, n, "the manifest's head.hidden has fewer layers") < 0)
            return -1;
    }
    return eng_sgemm_enabled() ? sw_pack_backward(s) : 0;
}

static int sw_load_weights(const struct mdl_weights *w, struct sw_impl *s)
{
    const struct sw_config *c = &s->cfg;
    char n[96];
    struct eng_conv_params p = {0};
    p.cin = (int)c->in_c;
    p.cout = (int)c->embed_dim;
    p.kh = p.stride_h = c->patch_h;
    p.kw = p.stride_w = c->patch_w;
    p.dil_h = p.dil_w = 1;
    p.groups = 1;
    if (mdl_load_conv(w, "features.0.0", NULL, &p, &s->embed) < 0)
        return -1;
    if (sw_load_norm(w, "features.0.2", c->embed_dim, &s->embed_norm) < 0)
        return -1;
    int64_t dim = c->embed_dim;
    for (int st = 0; st < c->nstages; st++, dim *= 2) {
        struct sw_stage *g = &s->stages[st];
        int layer = 2 * st + 1;
        g->dim = dim;
        g->hidden = (int64_t)(dim * c->mlp_ratio); /* torchvision: int(dim * mlp_ratio) */
        g->blocks = calloc((size_t)c->depths[st], sizeof *g->blocks);
        if (!g->blocks)
            return eng_error("out of memory for stage %d", st + 1);
        for (int i = 0; i < c->depths[st]; i++) {
            if (sw_load_block(w, c, layer, i, dim, c->heads[st], g->hidden, &g->blocks[i]) < 0)
                return -1;
            g->depth = i + 1;
        }
        snprintf(n, sizeof n, "features.%d.%d.norm1.weight", layer, c->depths[st]);
        if (sw_check_extra(w, n, "the manifest's arch.depths has fewer blocks in this stage") < 0)
            return -1;
        if (st + 1 < c->nstages) {
            if (sw_load_merge(w, layer + 1, dim, &g->merge) < 0)
                return -1;
            g->has_merge = true;
        }
    }
    s->nfeat = dim / 2;
    snprintf(n, sizeof n, "features.%d.reduction.weight", 2 * c->nstages);
    if (sw_check_extra(w, n, "the manifest's arch.depths has fewer stages") < 0)
        return -1;
    if (sw_load_norm(w, "norm", s->nfeat, &s->norm) < 0)
        return -1;
    return sw_load_head(w, s);
}

static int sw_load(struct mdl_model *m)
{
    json_t *man = m->manifest.json;
    struct sw_impl *s = calloc(1, sizeof *s);
    if (!s)
        return eng_error("out of memory");
    struct mdl_weights w;
    memset(&w, 0, sizeof w);
    if (sw_parse_arch(json_object_get(man, "arch"), &s->cfg) < 0 || sw_parse_head(man, m->manifest.nlabels, s) < 0)
        goto fail;
    if (mdl_weights_open(&w, m, "model.safetensors") < 0)
        goto fail;
    int rc = sw_load_weights(&w, s);
    mdl_weights_close(&w);
    if (rc < 0)
        goto fail;
    if (m->pre.out_h < s->cfg.patch_h || m->pre.out_w < s->cfg.patch_w) {
        eng_error("input %dx%d is smaller than the %dx%d patch", m->pre.out_h, m->pre.out_w, s->cfg.patch_h,
                  s->cfg.patch_w);
        goto fail;
    }
    m->in_h = m->pre.out_h;
    m->in_w = m->pre.out_w;
    m->in_c = s->cfg.in_c;
    m->nout = s->head == SW_HEAD_SWINCHEX ? 2 * (int64_t)s->nlabels : s->nlabels;
    char tap[32];
    for (int st = 0; st < s->cfg.nstages; st++) {
        snprintf(tap, sizeof tap, "stage%d", st + 1);
        mdl_model_add_tap(m, tap);
    }
    mdl_model_add_tap(m, "features");
    if (s->head == SW_HEAD_SWINCHEX) {
        /* The head's own activations, for gradient CAMs (sw_head_grads): no second forward. */
        s->state_per = 2;
        for (int j = 0; j < s->nhidden; j++)
            s->state_per += s->hidden[j];
        mdl_model_add_tap(m, "head");
    }
    m->impl = s;
    return 0;
fail:
    sw_free_impl(s);
    return -1;
}

static void sw_free(struct mdl_model *m)
{
    sw_free_impl(m->impl);
    m->impl = NULL;
}

/* ---- forward ---- */

/* One stage's blocks on x [n, h, w, dim] in place. Temporaries come from act and are given
 * back before returning. */
static int sw_stage_forward(const struct sw_stage *g, struct eng_ctx *ctx, struct eng_arena *act, struct eng_tensor *x)
{
    size_t mark = eng_arena_mark(act);
    int64_t rows = x->ne[0] * x->ne[1] * x->ne[2], chunk = rows < SW_MLP_ROWS ? rows : SW_MLP_ROWS;
    struct eng_tensor xn, hid;
    if (mdl_alloc(act, "swin normed tokens", 4, x->ne, &xn) < 0 ||
        mdl_alloc(act, "swin mlp hidden", 2, (int64_t[]){chunk, g->hidden}, &hid) < 0)
        return -1;
    for (int i = 0; i < g->depth; i++) {
        const struct sw_block *b = &g->blocks[i];
        if (eng_layer_norm(ctx, &b->norm1.ln, x, &xn) < 0 || eng_swin_window_attention(ctx, &b->attn, &xn, x, true) < 0)
            return -1;
        for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
            int64_t len = rows - r0 < chunk ? rows - r0 : chunk;
            struct eng_tensor xc = eng_tensor_make("swin tokens", x->data + r0 * g->dim, 2, (int64_t[]){len, g->dim});
            struct eng_tensor nc = eng_tensor_make("swin normed tokens", xn.data + r0 * g->dim, 2,
                                                   (int64_t[]){len, g->dim});
            struct eng_tensor hc = eng_tensor_make("swin mlp hidden", hid.data, 2, (int64_t[]){len, g->hidden});
            /* nc holds norm2(x), then (once fc1 has read it) fc2's output, added to x. */
            if (eng_layer_norm(ctx, &b->norm2.ln, &xc, &nc) < 0 || eng_linear(ctx, &b->fc1, &nc, &hc) < 0 ||
                eng_linear(ctx, &b->fc2, &hc, &nc) < 0 || eng_add(ctx, ENG_ACT_NONE, 0.0f, &xc, &nc, &xc) < 0)
                return -1;
        }
    }
    eng_arena_rewind(act, mark);
    return 0;
}

/* softmax(l0, l1)[1] without overflow. */
static float sw_pair_prob(float l0, float l1)
{
    float d = l0 - l1;
    if (d > 0) {
        float e = expf(-d);
        return e / (1.0f + e);
    }
    return 1.0f / (1.0f + expf(d));
}

/* SwinCheX: label i's MLP on pooled into its logit pair y [n, 2]; t holds the hidden layers. */
static int sw_label_mlp(const struct sw_impl *s, struct eng_ctx *ctx, int i, const struct eng_tensor *pooled,
                        struct eng_tensor *t, struct eng_tensor *y)
{
    int per = s->nhidden + 1;
    const struct eng_tensor *in = pooled;
    for (int j = 0; j < per; j++) {
        if (eng_linear(ctx, &s->mlps[i * per + j], in, j < s->nhidden ? &t[j] : y) < 0)
            return -1;
        in = &t[j];
    }
    return 0;
}

/* Label i's hidden layers t[] and logit pair *y as column slices of the head's state
 * [n, nlabels * state_per] (sw_head_forward, tap "head"). */
static void sw_label_views(const struct sw_impl *s, const struct eng_tensor *state, int i, struct eng_tensor *t,
                           struct eng_tensor *y)
{
    int64_t off = i * s->state_per;
    for (int j = 0; j < s->nhidden; j++) {
        t[j] = eng_tensor_slice(state, 1, off, s->hidden[j]);
        off += s->hidden[j];
    }
    *y = eng_tensor_slice(state, 1, off, 2);
}

/* The head on pooled [n, features] into logits. SwinCheX keeps every label's activations side by
 * side and offers them as the tap "head" (out may be NULL: no tap). */
static int sw_head_forward(const struct sw_impl *s, struct eng_ctx *ctx, struct eng_arena *act,
                           const struct eng_tensor *pooled, struct eng_tensor *logits, const struct mdl_output *out)
{
    if (s->head == SW_HEAD_LINEAR)
        return eng_linear(ctx, &s->linear.fc, pooled, logits);
    int64_t n = pooled->ne[0];
    struct eng_tensor state, t[SW_MAX_HIDDEN], pair;
    if (mdl_alloc(act, "swinchex head activations", 2, (int64_t[]){n, s->nlabels * s->state_per}, &state) < 0)
        return -1;
    for (int i = 0; i < s->nlabels; i++) {
        struct eng_tensor y = eng_tensor_slice(logits, 1, 2 * i, 2);
        sw_label_views(s, &state, i, t, &pair);
        if (sw_label_mlp(s, ctx, i, pooled, t, &y) < 0)
            return -1;
        for (int64_t b = 0; b < n; b++)
            memcpy(pair.data + b * (pair.nb[0] / sizeof(float)), y.data + b * (y.nb[0] / sizeof(float)),
                   2 * sizeof(float));
    }
    mdl_tap(out, "head", &state);
    return 0;
}

/* Label probabilities of n rows of logits. */
static void sw_probs(const struct sw_impl *s, const float *logits, int64_t n, int64_t nout, float *probs)
{
    for (int64_t b = 0; b < n; b++) {
        const float *l = logits + b * nout;
        float *p = probs + b * s->nlabels;
        if (s->head == SW_HEAD_SWINCHEX) {
            for (int i = 0; i < s->nlabels; i++)
                p[i] = sw_pair_prob(l[2 * i], l[2 * i + 1]);
        } else if (s->linear.act == MDL_OUT_SIGMOID) {
            /* Swin's sigmoid has always been this two-sided form; mdl_head_probs_row's
             * 1 / (1 + e^-z) differs from it by an ulp or two for about 60% of negative logits, so it
             * stays until one formula is chosen for every family. */
            for (int i = 0; i < s->nlabels; i++)
                p[i] = l[i] >= 0 ? 1.0f / (1.0f + expf(-l[i])) : expf(l[i]) / (1.0f + expf(l[i]));
        } else {
            mdl_head_probs_row(&s->linear, l, p);
        }
    }
}

static int sw_forward(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act, const struct eng_tensor *x,
                      struct mdl_output *out)
{
    const struct sw_impl *s = m->impl;
    int64_t n = x->ne[0], h, w;
    char name[32];
    if (eng_conv_out_size(&s->embed, x->ne[1], x->ne[2], &h, &w) < 0)
        return -1;
    struct eng_tensor cur;
    if (mdl_alloc(act, "features.0", 4, (int64_t[]){n, h, w, s->cfg.embed_dim}, &cur) < 0 ||
        eng_conv2d(ctx, &s->embed, x, &cur) < 0 || eng_layer_norm(ctx, &s->embed_norm.ln, &cur, &cur) < 0)
        return -1;
    /* Each stage's output stays allocated under the next one's: the maps shrink 2x per stage,
     * so this costs less than the first stage's temporaries, which are given back. */
    for (int st = 0; st < s->cfg.nstages; st++) {
        const struct sw_stage *g = &s->stages[st];
        if (sw_stage_forward(g, ctx, act, &cur) < 0)
            return -1;
        snprintf(name, sizeof name, "stage%d", st + 1);
        mdl_tap(out, name, &cur);
        if (!g->has_merge)
            break;
        struct eng_tensor next;
        if (mdl_alloc(act, "patch merging", 4, (int64_t[]){n, (cur.ne[1] + 1) / 2, (cur.ne[2] + 1) / 2, 2 * g->dim},
                      &next) < 0 ||
            eng_swin_patch_merge(ctx, &g->merge, &cur, &next) < 0)
            return -1;
        cur = next;
    }
    if (eng_layer_norm(ctx, &s->norm.ln, &cur, &cur) < 0)
        return -1;
    mdl_tap(out, "features", &cur);
    struct eng_tensor pooled, logits;
    if (mdl_alloc(act, "pooled", 2, (int64_t[]){n, s->nfeat}, &pooled) < 0 ||
        eng_global_avg_pool(ctx, &cur, &pooled) < 0 ||
        mdl_alloc(act, "logits", 2, (int64_t[]){n, m->nout}, &logits) < 0 ||
        sw_head_forward(s, ctx, act, &pooled, &logits, out) < 0)
        return -1;
    if (out->logits)
        memcpy(out->logits, logits.data, sizeof(float) * (size_t)(n * m->nout));
    if (out->probs)
        sw_probs(s, logits.data, n, m->nout, out->probs);
    return 0;
}

static int sw_class_weights(const struct mdl_model *m, int k, float *w, float *bias)
{
    const struct sw_impl *s = m->impl;
    if (s->head != SW_HEAD_LINEAR)
        return eng_error("the SwinCheX head is not linear: no exact CAM (use \"cam\": \"gradient\" or "
                         "\"perturbation\")");
    return mdl_head_class_weights(&s->linear, k, w, bias);
}

/* The head alone on pooled features: perturbation CAMs run it on one row per map cell. SwinCheX's
 * labels have an MLP each: only the asked labels' run (the linear head computes all, cheaply). */
static int sw_head_probs(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                         const struct eng_tensor *pooled, const int *labels, int nl, float *probs)
{
    const struct sw_impl *s = m->impl;
    int64_t n = pooled->ne[0];
    if (s->head != SW_HEAD_SWINCHEX) {
        struct eng_tensor logits;
        float *all = eng_arena_floats(act, (size_t)n * (size_t)s->nlabels);
        if (!all || mdl_alloc(act, "logits", 2, (int64_t[]){n, m->nout}, &logits) < 0 ||
            sw_head_forward(s, ctx, act, pooled, &logits, NULL) < 0)
            return -1;
        sw_probs(s, logits.data, n, m->nout, all);
        mdl_head_pick(all, n, s->nlabels, labels, nl, probs);
        return 0;
    }
    struct eng_tensor t[SW_MAX_HIDDEN], pair;
    for (int j = 0; j < s->nhidden; j++)
        if (mdl_alloc(act, "swinchex hidden", 2, (int64_t[]){n, s->hidden[j]}, &t[j]) < 0)
            return -1;
    if (mdl_alloc(act, "swinchex logits", 2, (int64_t[]){n, 2}, &pair) < 0)
        return -1;
    for (int k = 0; k < nl; k++) {
        if (labels[k] < 0 || labels[k] >= s->nlabels)
            return eng_error("label %d out of range", labels[k]);
        if (sw_label_mlp(s, ctx, labels[k], pooled, t, &pair) < 0)
            return -1;
        for (int64_t b = 0; b < n; b++)
            probs[b * nl + k] = sw_pair_prob(pair.data[2 * b], pair.data[2 * b + 1]);
    }
    return 0;
}

/* A ReLU's backward in place: h (its output) becomes d where h > 0, else 0. */
static void sw_relu_backward(float *restrict h, const float *restrict d, int64_t n)
{
    for (int64_t k = 0; k < n; k++) /* branch-free: the masks are data, not predictable */
        h[k] = (float)(h[k] > 0.0f) * d[k];
}

/* Row b of a 2-D view (rows nb[0] bytes apart). */
static float *sw_row(const struct eng_tensor *t, int64_t b)
{
    return (float *)((char *)t->data + (size_t)b * t->nb[0]);
}

/* SwinCheX label i: ds/dz of its log-odds s = y1 - y0 for the n rows whose forward left the
 * ReLU outputs in t (views of the head's state), into gz [n, features] (may be a column slice).
 * Reverse mode, as torch's autograd: ds/dh_last = W_out[1] - W_out[0]; a ReLU passes the
 * gradient where its output is > 0 (torch's threshold_backward), else 0; a Linear's input gets
 * G W (G [n, out], W [out, in] = the packed W^T transposed: one GEMM over all rows). t is
 * overwritten with the gradients of the pre-activations; d holds n x (widest hidden layer)
 * floats. */
static int sw_label_backward(const struct sw_impl *s, struct eng_ctx *ctx, int i, struct eng_tensor *t, float *d,
                             struct eng_tensor *gz)
{
    int per = s->nhidden + 1;
    const struct eng_linear *L = &s->mlps[i * per];
    const struct eng_linear *out = &L[s->nhidden];
    int64_t n = gz->ne[0];
    if (s->nhidden == 0) { /* no hidden layer: the head is linear, ds/dz its row difference */
        for (int64_t b = 0; b < n; b++)
            for (int64_t c = 0; c < out->in; c++)
                sw_row(gz, b)[c] = out->w[c * 2 + 1] - out->w[c * 2];
        return 0;
    }
    int j = s->nhidden - 1;
    for (int64_t c = 0; c < s->hidden[j]; c++)
        d[c] = out->w[c * 2 + 1] - out->w[c * 2];
    for (int64_t b = 0; b < n; b++)
        sw_relu_backward(sw_row(&t[j], b), d, s->hidden[j]);
    for (; j >= 0; j--) {
        struct eng_tensor g = eng_tensor_make("swinchex gradient", d, 2, (int64_t[]){n, L[j].in});
        struct eng_tensor *to = j == 0 ? gz : &g;
        if (s->mlps_t) {
            eng_sgemm_packed(n, t[j].data, (int64_t)(t[j].nb[0] / sizeof(float)), &s->mlps_t[i * per + j], 0,
                             L[j].in, to->data, (int64_t)(to->nb[0] / sizeof(float)), NULL);
        } else {
            struct eng_tensor wt = eng_tensor_make("swinchex W^T", L[j].w, 2, (int64_t[]){L[j].in, L[j].out});
            if (eng_matmul(ctx, &t[j], false, &wt, true, 1.0f, to) < 0)
                return -1;
        }
        if (j == 0)
            return 0;
        for (int64_t b = 0; b < n; b++)
            sw_relu_backward(sw_row(&t[j - 1], b), d + b * L[j].in, L[j].in);
    }
    return 0;
}

/* The head linearised at each of n rows of pooled features, for gradient CAMs: every asked
 * label's score and ds/dz (model.h head_grads). SwinCheX: the log-odds of the label's pair
 * (P = softmax(pair)[1] = sigmoid(s) is monotone in it, and its gradient does not vanish where P
 * saturates), one backward pass through that label's MLP for all rows, from the activations
 * its forward left in the tap "head" (state, which this overwrites). The linear head: its
 * logit, whose gradient is the class row (the gradient CAM is then the exact CAM). */
static int sw_head_grads(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act,
                         const struct eng_tensor *pooled, struct eng_tensor *state, const int *labels, int nl,
                         float *scores, float *grads)
{
    const struct sw_impl *s = m->impl;
    int64_t n = pooled->ne[0], F = s->nfeat;
    for (int k = 0; k < nl; k++)
        if (labels[k] < 0 || labels[k] >= s->nlabels)
            return eng_error("label %d out of range", labels[k]);
    if (s->head != SW_HEAD_SWINCHEX) {
        struct eng_tensor logits;
        if (mdl_alloc(act, "logits", 2, (int64_t[]){n, m->nout}, &logits) < 0 ||
            sw_head_forward(s, ctx, act, pooled, &logits, NULL) < 0)
            return -1;
        for (int k = 0; k < nl; k++)
            for (int64_t b = 0; b < n; b++) {
                scores[b * nl + k] = logits.data[b * m->nout + labels[k]];
                if (mdl_head_class_weights(&s->linear, labels[k], grads + (b * nl + k) * F, NULL) < 0)
                    return -1;
            }
        return 0;
    }
    if (!state || state->ndim != 2 || state->ne[0] != n || state->ne[1] != s->nlabels * s->state_per)
        return eng_error("SwinCheX gradient CAM: the head's activations (tap \"head\", [%lld, %lld]) are missing",
                         (long long)n, (long long)(s->nlabels * s->state_per));
    int64_t widest = 1;
    for (int j = 0; j < s->nhidden; j++)
        widest = s->hidden[j] > widest ? s->hidden[j] : widest;
    float *d = eng_arena_floats(act, (size_t)(n * widest));
    if (!d)
        return -1;
    struct eng_tensor all = eng_tensor_make("swinchex dscore/dpooled", grads, 2, (int64_t[]){n, nl * F});
    for (int k = 0; k < nl; k++) {
        struct eng_tensor gz = eng_tensor_slice(&all, 1, k * F, F), t[SW_MAX_HIDDEN], pair;
        sw_label_views(s, state, labels[k], t, &pair);
        for (int64_t b = 0; b < n; b++)
            scores[b * nl + k] = sw_row(&pair, b)[1] - sw_row(&pair, b)[0];
        if (sw_label_backward(s, ctx, labels[k], t, d, &gz) < 0)
            return -1;
    }
    return 0;
}

const struct mdl_family mdl_family_swin = {
    .name = "swin",
    .load = sw_load,
    .free = sw_free,
    .forward = sw_forward,
    .class_weights = sw_class_weights,
    .head_probs = sw_head_probs,
    .head_grads = sw_head_grads,
};
