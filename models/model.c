/* model.c: loading a model folder through its family, sizing its arenas, running batches. */
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "models/families.h"

/* Every family salient knows; a new family adds one line here and one in families.h. */
static const struct mdl_family *const families[] = {
    &mdl_family_densenet,
    &mdl_family_resnet,
    &mdl_family_swin,
    &mdl_family_quadrant_ae,
    &mdl_family_faceapi,
};

/* Families that take decoded images, with their image operations. */
static const struct {
    const struct mdl_family *family;
    const struct mdl_image_ops *ops;
} image_families[] = {
    {&mdl_family_faceapi, &mdl_faceapi_image_ops},
};

const struct mdl_image_ops *mdl_family_image_ops(const struct mdl_family *f)
{
    for (size_t i = 0; i < sizeof image_families / sizeof image_families[0]; i++)
        if (image_families[i].family == f)
            return image_families[i].ops;
    return NULL;
}

const struct mdl_family *mdl_family_find(const char *name)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i]->name, name) == 0)
            return families[i];
    return NULL;
}

void mdl_tap(const struct mdl_output *out, const char *name, const struct eng_tensor *t)
{
    if (out && out->tap)
        out->tap(out->tap_user, name, t);
}

void mdl_model_add_tap(struct mdl_model *m, const char *name)
{
    if (m->ntaps < MDL_MAX_TAPS)
        snprintf(m->taps[m->ntaps++], sizeof m->taps[0], "%s", name);
}

/* Prefix the engine's message with the model's name, once. */
static int model_error(const char *name)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", eng_errmsg());
    char prefix[200];
    snprintf(prefix, sizeof prefix, "model '%s': ", name);
    if (strncmp(msg, prefix, strlen(prefix)) == 0)
        return eng_error("%s", msg);
    return eng_error("model '%s': %s", name, msg);
}

/* Reserve-only arenas this large cost address space, not memory: the dry run commits only
 * the pages it touches. */
#define PROBE_ACT_BYTES ((size_t)16 << 30)
#define PROBE_SCRATCH_BYTES ((size_t)4 << 30)

/* The dry run's tap callback: remember each tap's shape, for attention.c's buffer sizes. */
static void record_tap_shape(void *user, const char *name, const struct eng_tensor *t)
{
    struct mdl_model *m = user;
    for (int i = 0; i < m->ntaps; i++)
        if (strcmp(m->taps[i], name) == 0 && t->ndim <= 4) {
            m->tap_ndim[i] = t->ndim;
            for (int d = 0; d < t->ndim; d++)
                m->tap_ne[i][d] = t->ne[d];
        }
}

/* Run max_batch zero images once and keep the peaks as the runners' arena sizes. */
static int measure(struct mdl_model *m)
{
    struct mdl_runner r;
    memset(&r, 0, sizeof r);
    eng_init();
    int rc = -1;
    size_t nin = (size_t)m->max_batch * (size_t)(m->in_h * m->in_w * m->in_c);
    float *x = calloc(nin ? nin : 1, sizeof(float));
    float *logits = calloc((size_t)m->max_batch * (size_t)(m->nout ? m->nout : 1), sizeof(float));
    float *probs = calloc((size_t)m->max_batch * (size_t)(m->manifest.nlabels ? m->manifest.nlabels : 1),
                          sizeof(float));
    if (!x || !logits || !probs) {
        eng_error("out of memory for the sizing run");
        goto out;
    }
    r.ctx.nthreads = 1;
    if (eng_arena_init_reserve(&r.ctx.scratch, "scratch", PROBE_SCRATCH_BYTES) < 0 ||
        eng_arena_init_reserve(&r.act, "activations", PROBE_ACT_BYTES) < 0)
        goto out;
    struct eng_tensor t = eng_tensor_make("input", x, 4, (int64_t[]){m->max_batch, m->in_h, m->in_w, m->in_c});
    struct mdl_output o = {logits, m->manifest.nlabels ? probs : NULL, record_tap_shape, m};
    /* A family that takes images has no zero-image run; it says what its largest batch holds. */
    const struct mdl_image_ops *img_ops = mdl_family_image_ops(m->family);
    if (img_ops ? img_ops->dry_run(m, &r.ctx, &r.act) < 0 : m->family->forward(m, &r.ctx, &r.act, &t, &o) < 0)
        goto out;
    /* Scratch needs grow with threads (one im2col tile each); measure with one thread and
     * scale by the runner's count in mdl_runner_init. */
    m->act_bytes = r.act.peak + ENG_ARENA_ALIGN;
    m->scratch_bytes = r.ctx.scratch.peak + ENG_ARENA_ALIGN;
    rc = 0;
out:
    eng_arena_free(&r.act);
    eng_arena_free(&r.ctx.scratch);
    free(x), free(logits), free(probs);
    return rc;
}

struct mdl_model *mdl_model_load(const char *dir, const char *name, int max_batch)
{
    struct mdl_model *m = calloc(1, sizeof *m);
    if (!m) {
        eng_error("model '%s': out of memory", name);
        return NULL;
    }
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char path[1100];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (mdl_manifest_load(&m->manifest, path, name) < 0) {
        model_error(name);
        free(m);
        return NULL;
    }
    m->family = mdl_family_find(m->manifest.family);
    if (!m->family) {
        eng_error("model '%s': unknown family '%s' (known: densenet, resnet, swin, quadrant_ae, faceapi)", name,
                  m->manifest.family);
        goto fail_manifest;
    }
    int mb = max_batch > 0 ? max_batch : m->manifest.batching.max_batch_size;
    m->max_batch = mb > 0 ? mb : 8;
    json_t *pre = json_object_get(m->manifest.json, "preprocess");
    bool takes_images = mdl_family_image_ops(m->family) != NULL;
    if ((pre || !takes_images) && mdl_preprocess_parse(&m->pre, pre, path) < 0) {
        model_error(name);
        goto fail_manifest;
    }
    if (m->family->load(m) < 0) {
        model_error(name);
        goto fail_manifest;
    }
    if (!takes_images && (m->pre.out_h != m->in_h || m->pre.out_w != m->in_w || m->pre.channels != m->in_c)) {
        eng_error("model '%s': preprocessing gives %dx%dx%d, the network takes %lldx%lldx%lld", name, m->pre.out_h,
                  m->pre.out_w, m->pre.channels, (long long)m->in_h, (long long)m->in_w, (long long)m->in_c);
        goto fail_family;
    }
    if (measure(m) < 0 || mdl_attention_init(m) < 0) {
        model_error(name);
        goto fail_family;
    }
    return m;
fail_family:
    m->family->free(m);
fail_manifest:
    mdl_manifest_free(&m->manifest);
    free(m);
    return NULL;
}

void mdl_model_free(struct mdl_model *m)
{
    if (!m)
        return;
    m->family->free(m);
    mdl_manifest_free(&m->manifest);
    free(m);
}

int mdl_runner_init(struct mdl_runner *r, const struct mdl_model *m, int nthreads)
{
    memset(r, 0, sizeof *r);
    if (nthreads < 1)
        nthreads = 1;
    if (eng_ctx_init(&r->ctx, nthreads, m->scratch_bytes * (size_t)nthreads) < 0)
        return -1;
    if (eng_arena_init(&r->act, "activations", m->act_bytes) < 0) {
        eng_ctx_free(&r->ctx);
        return -1;
    }
    return 0;
}

void mdl_runner_free(struct mdl_runner *r)
{
    eng_arena_free(&r->act);
    eng_ctx_free(&r->ctx);
}

int mdl_model_run(const struct mdl_model *m, struct mdl_runner *r, const float *input, int n,
                  struct mdl_output *out)
{
    if (n < 1 || n > m->max_batch)
        return eng_error("model '%s': batch of %d, allowed 1..%d", m->manifest.name, n, m->max_batch);
    if (!m->family->forward)
        return eng_error("model '%s': family %s takes decoded images (mdl_model_run_images), not tensors",
                         m->manifest.name, m->family->name);
    eng_arena_reset(&r->act);
    eng_arena_reset(&r->ctx.scratch);
    struct eng_tensor x =
        eng_tensor_make("input", (float *)input, 4, (int64_t[]){n, m->in_h, m->in_w, m->in_c});
    if (m->family->forward(m, &r->ctx, &r->act, &x, out) < 0)
        return model_error(m->manifest.name);
    return 0;
}

bool mdl_model_takes_images(const struct mdl_model *m)
{
    return mdl_family_image_ops(m->family) != NULL;
}

int mdl_model_run_images(const struct mdl_model *m, struct mdl_runner *r, const struct mdl_image *images,
                         const struct mdl_face_opts *opts, int n, struct mdl_faces *out)
{
    const struct mdl_image_ops *ops = mdl_family_image_ops(m->family);
    if (!ops)
        return eng_error("model '%s': family %s takes preprocessed tensors (mdl_model_run), not images",
                         m->manifest.name, m->family->name);
    if (n < 1 || n > m->max_batch)
        return eng_error("model '%s': batch of %d, allowed 1..%d", m->manifest.name, n, m->max_batch);
    eng_arena_reset(&r->act);
    eng_arena_reset(&r->ctx.scratch);
    if (ops->run_images(m, &r->ctx, &r->act, images, opts, n, out) < 0)
        return model_error(m->manifest.name);
    return 0;
}
