/* infer.c: decode + preprocess on the HTTP thread, queue on the batcher, answer on resume. */
#include "config.h"
#include "server/infer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "models/preprocess.h"

/* Each HTTP thread keeps one single-threaded engine context for preprocessing, its scratch
 * grown to the largest image seen; freed when the thread ends. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

struct pre_ctx {
    struct eng_ctx ctx;
    size_t cap;
    bool init;
};

static void pre_ctx_free(void *p)
{
    struct pre_ctx *c = p;
    if (c->init)
        eng_ctx_free(&c->ctx);
    free(c);
}

static void make_key(void)
{
    pthread_key_create(&ctx_key, pre_ctx_free);
}

static struct eng_ctx *preprocess_ctx(size_t need)
{
    pthread_once(&ctx_once, make_key);
    struct pre_ctx *c = pthread_getspecific(ctx_key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c || pthread_setspecific(ctx_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    if (!c->init || c->cap < need) {
        if (c->init)
            eng_ctx_free(&c->ctx);
        c->init = false;
        if (eng_ctx_init(&c->ctx, 1, need) < 0)
            return NULL;
        c->init = true;
        c->cap = need;
    }
    return &c->ctx;
}

void srv_images_free(struct srv_image_in *imgs, int n)
{
    if (!imgs)
        return;
    for (int i = 0; i < n; i++)
        if (imgs[i].owned)
            free((void *)imgs[i].data);
    free(imgs);
}

/* A face-model parameter into p (range checks come with the model: mdl_face_opts_check).
 * 0 taken, -1 answered 400 (bad value or unknown key). */
static int face_param(struct srv_req *q, const char *key, json_t *v, struct srv_params *p)
{
    unsigned bit = 0;
    if (strcmp(key, "detector") == 0) {
        if (!json_is_string(v) || mdl_face_detector_parse(json_string_value(v), &p->face.detector) < 0) {
            srv_reply_error(q, 400, "parameters.detector must be \"ssd_mobilenetv1\" or \"tiny_face_detector\"");
            return -1;
        }
        bit = SRV_FACE_DETECTOR;
    } else if (strcmp(key, "score_threshold") == 0 || strcmp(key, "iou_threshold") == 0) {
        if (!json_is_number(v)) {
            srv_reply_error(q, 400, "parameters.%s must be a number", key);
            return -1;
        }
        bool score = key[0] == 's';
        *(score ? &p->face.score_threshold : &p->face.iou_threshold) = (float)json_number_value(v);
        bit = score ? SRV_FACE_SCORE : SRV_FACE_IOU;
    } else if (strcmp(key, "max_faces") == 0 || strcmp(key, "input_size") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000) {
            srv_reply_error(q, 400, "parameters.%s must be a positive integer", key);
            return -1;
        }
        bool mf = key[0] == 'm';
        *(mf ? &p->face.max_faces : &p->face.input_size) = (int)json_integer_value(v);
        bit = mf ? SRV_FACE_MAX_FACES : SRV_FACE_INPUT_SIZE;
    } else if (strcmp(key, "tasks") == 0) {
        char list[256] = "";
        size_t i;
        json_t *e;
        if (!json_is_array(v)) {
            srv_reply_error(q, 400, "parameters.tasks must be a list, e.g. [\"landmarks\", \"age_gender\", "
                                    "\"expression\", \"descriptor\"]");
            return -1;
        }
        json_array_foreach(v, i, e)
        {
            const char *t = json_string_value(e);
            if (!t || strlen(list) + strlen(t) + 2 > sizeof list) {
                srv_reply_error(q, 400, "parameters.tasks[%zu] must be a task name", i);
                return -1;
            }
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", t);
        }
        if (mdl_face_tasks_parse(list, &p->face.tasks) < 0) {
            srv_reply_error(q, 400, "parameters.tasks: %s", eng_errmsg());
            return -1;
        }
        bit = SRV_FACE_TASKS;
    } else if (strcmp(key, "tiny_landmarks") == 0) {
        if (!json_is_boolean(v)) {
            srv_reply_error(q, 400, "parameters.tiny_landmarks must be true or false");
            return -1;
        }
        p->face.tiny_landmarks = json_is_true(v);
        bit = SRV_FACE_TINY_LANDMARKS;
    } else {
        srv_reply_error(q, 400,
                        "unknown parameter '%s' (known: top_k, attention, attention_layers, cam_labels; for face "
                        "models detector, score_threshold, iou_threshold, max_faces, input_size, tasks, "
                        "tiny_landmarks)",
                        key);
        return -1;
    }
    if (!p->face_set)
        snprintf(p->face_first, sizeof p->face_first, "%s", key);
    p->face_set |= bit;
    return 0;
}

int srv_params_parse(struct srv_req *q, json_t *obj, struct srv_params *p)
{
    memset(p, 0, sizeof *p);
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj)) {
        srv_reply_error(q, 400, "'parameters' must be an object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "top_k") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000) {
                srv_reply_error(q, 400, "parameters.top_k must be a positive integer");
                return -1;
            }
            p->top_k = (int)json_integer_value(v);
        } else if (strcmp(key, "attention") == 0) {
            const char *s = json_string_value(v);
            if (s && strcmp(s, "none") == 0) {
                p->attention = SRV_ATTENTION_NONE;
            } else if (s && (strcmp(s, "maps") == 0 || strcmp(s, "png") == 0)) {
                p->attention = strcmp(s, "maps") == 0 ? SRV_ATTENTION_MAPS : SRV_ATTENTION_PNG;
            } else {
                srv_reply_error(q, 400, "parameters.attention must be \"none\", \"maps\" or \"png\"");
                return -1;
            }
        } else if (strcmp(key, "attention_layers") == 0 || strcmp(key, "cam_labels") == 0) {
            bool layers = key[0] == 'a';
            int max = layers ? SRV_MAX_LAYER_SEL : SRV_MAX_CAM_SEL;
            if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > (size_t)max) {
                srv_reply_error(q, 400, "parameters.%s must be a list of 1..%d names", key, max);
                return -1;
            }
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                const char *name = json_string_value(e);
                size_t cap = layers ? sizeof p->layer_names[0] : sizeof p->cam_names[0];
                if (!name || strlen(name) >= cap) {
                    srv_reply_error(q, 400, "parameters.%s[%zu] must be a name (a string)", key, i);
                    return -1;
                }
                memcpy(layers ? p->layer_names[i] : p->cam_names[i], name, strlen(name) + 1);
            }
            if (layers)
                p->nlayer_names = (int)json_array_size(v);
            else
                p->ncam_names = (int)json_array_size(v);
        } else if (face_param(q, key, v, p) != 0) {
            return -1;
        }
    }
    return 0;
}

json_t *srv_model_header(const struct mdl_model *m)
{
    return json_pack("{s:s, s:s, s:b}", "model", m->manifest.name, "version", m->manifest.version, "demo",
                     m->manifest.demo);
}

json_t *srv_infer_timing(const struct srv_infer *inf)
{
    const struct srv_job *j = &inf->job;
    return json_pack("{s:f, s:f, s:f, s:i}", "queue", (double)(j->t_started - j->t_queued) / 1e3, "preprocess",
                     (double)inf->preprocess_us / 1e3, "compute", (double)(j->t_finished - j->t_started) / 1e3,
                     "batch", j->batch_images);
}

static void infer_free(struct srv_infer *inf)
{
    for (int i = 0; inf->decoded && i < inf->n; i++)
        srv_image_free(&inf->decoded[i]);
    free(inf->decoded);
    free(inf->att);
    free(inf->att_buf);
    free(inf->cam_labels);
    free(inf->views);
    free(inf->face_opts);
    free(inf->faces);
    free(inf->face_buf);
    free(inf->face_maps);
    srv_images_free(inf->imgs, inf->n);
    free(inf->input);
    free(inf->probs);
    free(inf->logits);
    srv_model_release(inf->sm);
    free(inf);
}

static void cleanup(struct srv_req *q)
{
    infer_free(q->state);
    q->state = NULL;
}

/* Worker thread: the job is answered; wake the connection. */
static void job_done(struct srv_job *j)
{
    struct srv_infer *inf = j->user;
    srv_req_wake(inf->q);
}

/* HTTP thread, after the wake. */
static void resumed(struct srv_req *q)
{
    struct srv_infer *inf = q->state;
    q->batch = inf->job.batch_images;
    switch (inf->job.status) {
    case SRV_JOB_OK:
        inf->answer(inf);
        break;
    case SRV_JOB_TIMEOUT:
        srv_reply_error(q, 504, "model '%s': %s (--request-timeout-ms %d)", inf->m->manifest.name, inf->job.err,
                        q->srv->o->request_timeout_ms);
        break;
    case SRV_JOB_FAILED:
        srv_reply_error(q, 500, "model '%s' failed to run: %s", inf->m->manifest.name, inf->job.err);
        break;
    }
}

/* Decode and preprocess image i into inf->input. 0, or -1 having answered. */
static int prepare_image(struct srv_req *q, struct srv_infer *inf, int i)
{
    const struct mdl_model *m = inf->m;
    struct srv_image_in *in = &inf->imgs[i];
    struct srv_image img;
    char err[256];
    enum srv_decode_status st = srv_decode_image(in->data, in->len, q->srv->o->max_pixels, &img, err, sizeof err);
    if (st != SRV_DECODE_OK) {
        srv_reply_error(q, (unsigned)srv_decode_http_status(st), "%s: %s", in->field, err);
        return -1;
    }
    struct mdl_image view = {img.width, img.height, img.channels, img.data, img.stride};
    struct eng_ctx *ctx = preprocess_ctx(mdl_preprocess_scratch_bytes(&m->pre, img.width, img.height));
    int rc = -1;
    if (!ctx)
        srv_reply_error(q, 500, "out of memory preprocessing %s", in->field);
    else if (mdl_preprocess_run(ctx, &m->pre, &view, inf->input + (size_t)i * mdl_preprocess_floats(&m->pre)) < 0)
        srv_reply_error(q, 400, "%s (%dx%d): %s", in->field, img.width, img.height, eng_errmsg());
    else
        rc = 0;
    if (rc == 0 && inf->decoded)
        inf->decoded[i] = img; /* kept for the overlays */
    else
        srv_image_free(&img);
    return rc;
}

/* Worker: the forward offers a tensor; rows are this job's images. */
static void attention_tap(struct srv_job *j, const char *name, const struct eng_tensor *t)
{
    struct srv_infer *inf = j->user;
    for (int64_t i = 0; i < t->ne[0]; i++)
        mdl_attn_tap(inf->m, &inf->att[i], name, t, i);
}

/* Worker, after the forward: pick default CAM labels from the probabilities, finish the maps. */
static int attention_after(struct srv_job *j, struct mdl_runner *r)
{
    struct srv_infer *inf = j->user;
    const struct mdl_model *m = inf->m;
    int nl = m->manifest.nlabels;
    for (int i = 0; i < inf->n; i++) {
        if (!inf->params.ncam_names && !inf->params.cam_all && inf->ncams == 1) {
            const float *pr = inf->probs + (size_t)i * (size_t)nl;
            int best = 0;
            for (int k = 1; k < nl; k++)
                best = pr[k] > pr[best] ? k : best;
            inf->cam_labels[i] = best;
        }
    }
    return mdl_attn_finish_batch(m, r, inf->att, inf->n);
}

/* Check the attention parameters against the model and allocate the per-image state.
 * 0, or -1 having answered 400/500. */
static int setup_attention(struct srv_req *q, struct srv_infer *inf)
{
    const struct mdl_model *m = inf->m;
    const struct mdl_attention *at = &m->attn;
    const struct srv_params *p = &inf->params;
    if (at->nlayers == 0 && at->cam == MDL_CAM_NONE) {
        srv_reply_error(q, 400, "parameters.attention: model '%s' has no attention maps", m->manifest.name);
        return -1;
    }
    if (p->nlayer_names) {
        for (int s = 0; s < p->nlayer_names; s++) {
            int l = 0;
            while (l < at->nlayers && strcmp(m->taps[at->layer_tap[l]], p->layer_names[s]) != 0)
                l++;
            if (l == at->nlayers) {
                char list[512] = "";
                for (int k = 0; k < at->nlayers; k++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                             m->taps[at->layer_tap[k]]);
                srv_reply_error(q, 400, "parameters.attention_layers: '%s' is not a layer of model '%s' (%s)",
                                p->layer_names[s], m->manifest.name, list[0] ? list : "it has none");
                return -1;
            }
            inf->layers[inf->nlayers++] = l;
        }
    } else {
        for (int l = 0; l < at->nlayers; l++)
            inf->layers[inf->nlayers++] = l;
    }
    int nl = m->manifest.nlabels;
    if (p->ncam_names && at->cam == MDL_CAM_NONE) {
        srv_reply_error(q, 400, "parameters.cam_labels: model '%s' has no class activation maps", m->manifest.name);
        return -1;
    }
    inf->ncams = at->cam == MDL_CAM_NONE ? 0 : p->ncam_names ? p->ncam_names : p->cam_all ? nl : 1;
    inf->att = calloc((size_t)inf->n, sizeof *inf->att);
    inf->att_buf = calloc((size_t)inf->n * (at->floats ? at->floats : 1), sizeof(float));
    inf->cam_labels = calloc((size_t)inf->n * (size_t)(inf->ncams ? inf->ncams : 1), sizeof(int));
    if (p->attention == SRV_ATTENTION_PNG)
        inf->decoded = calloc((size_t)inf->n, sizeof *inf->decoded);
    if (!inf->att || !inf->att_buf || !inf->cam_labels || (p->attention == SRV_ATTENTION_PNG && !inf->decoded)) {
        srv_reply_error(q, 500, "out of memory");
        return -1;
    }
    for (int s = 0; s < p->ncam_names; s++) {
        int k = 0;
        while (k < nl && strcmp(m->manifest.labels[k], p->cam_names[s]) != 0)
            k++;
        if (k == nl) {
            srv_reply_error(q, 400, "parameters.cam_labels: '%s' is not a label of model '%s'", p->cam_names[s],
                            m->manifest.name);
            return -1;
        }
        for (int i = 0; i < inf->n; i++)
            inf->cam_labels[(size_t)i * (size_t)inf->ncams + (size_t)s] = k;
    }
    if (!p->ncam_names && p->cam_all)
        for (int i = 0; i < inf->n; i++)
            for (int k = 0; k < nl; k++)
                inf->cam_labels[(size_t)i * (size_t)nl + (size_t)k] = k;
    for (int i = 0; i < inf->n; i++)
        inf->att[i] = (struct mdl_attn_image){
            .want_layers = inf->nlayers > 0,
            .labels = inf->cam_labels + (size_t)i * (size_t)inf->ncams,
            .nlabels = inf->ncams,
            .buf = inf->att_buf + (size_t)i * at->floats,
        };
    return 0;
}

static int submit(struct srv_req *q, struct srv_infer *inf);

/* "attention_layers" and "cam_labels" against a face model's maps; the faces' map buffers.
 * 0, or -1 having answered 400/500. */
static int setup_face_attention(struct srv_req *q, struct srv_infer *inf, struct mdl_face_opts *o)
{
    const struct mdl_model *m = inf->m;
    const struct mdl_face_attention *at = mdl_face_attention(m);
    const struct srv_params *p = &inf->params;
    if (!at) {
        srv_reply_error(q, 400, "parameters.attention: model '%s' has no attention maps", m->manifest.name);
        return -1;
    }
    for (int s = 0; s < p->nlayer_names; s++) {
        int l = 0;
        while (l < at->nlayers && strcmp(at->layer[l], p->layer_names[s]) != 0)
            l++;
        if (l == at->nlayers) {
            char list[512] = "";
            for (int k = 0; k < at->nlayers; k++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", at->layer[k]);
            srv_reply_error(q, 400, "parameters.attention_layers: '%s' is not a layer of model '%s' (%s)",
                            p->layer_names[s], m->manifest.name, list[0] ? list : "it has none");
            return -1;
        }
        inf->layers[inf->nlayers++] = l;
    }
    if (!p->nlayer_names)
        for (int l = 0; l < at->nlayers; l++)
            inf->layers[inf->nlayers++] = l;
    if (p->ncam_names && !at->cam) {
        srv_reply_error(q, 400, "parameters.cam_labels: model '%s' has no class activation maps", m->manifest.name);
        return -1;
    }
    if (p->ncam_names > MDL_FACE_CAMS) {
        srv_reply_error(q, 400, "parameters.cam_labels: at most %d labels", MDL_FACE_CAMS);
        return -1;
    }
    for (int s = 0; s < p->ncam_names; s++) {
        int k = 0;
        while (k < MDL_FACE_CAMS && !(at->has_cam[k] && strcmp(mdl_face_cam_labels[k], p->cam_names[s]) == 0))
            k++;
        if (k == MDL_FACE_CAMS) {
            srv_reply_error(q, 400,
                            "parameters.cam_labels: '%s' is not a CAM label of model '%s' (neutral, happy, sad, angry, "
                            "fearful, disgusted, surprised from the expression net; female, male, age from age_gender)",
                            p->cam_names[s], m->manifest.name);
            return -1;
        }
        inf->face_cams[inf->nface_cams++] = k;
    }
    o->attention = true;
    inf->face_attention = true;
    inf->face_maps = calloc((size_t)inf->n * (size_t)o->max_faces * (at->floats ? at->floats : 1), sizeof(float));
    if (!inf->face_maps) {
        srv_reply_error(q, 500, "out of memory for the attention maps");
        return -1;
    }
    return 0; /* the decoded images, kept for face models anyway, serve the overlays */
}

/* Face models: decode and keep the images, check the options, give each image a result
 * buffer, queue. 0 queued, -1 answered. */
static int start_faces(struct srv_req *q, struct srv_infer *inf)
{
    const struct mdl_model *m = inf->m;
    const struct srv_params *p = &inf->params;
    int n = inf->n;
    struct mdl_face_opts o;
    mdl_face_opts_default(m, &o);
    if (p->face_set & SRV_FACE_DETECTOR)
        o.detector = p->face.detector;
    if (p->face_set & SRV_FACE_SCORE)
        o.score_threshold = p->face.score_threshold;
    if (p->face_set & SRV_FACE_IOU)
        o.iou_threshold = p->face.iou_threshold;
    if (p->face_set & SRV_FACE_MAX_FACES)
        o.max_faces = p->face.max_faces;
    if (p->face_set & SRV_FACE_INPUT_SIZE)
        o.input_size = p->face.input_size;
    if (p->face_set & SRV_FACE_TASKS)
        o.tasks = p->face.tasks;
    if (p->face_set & SRV_FACE_TINY_LANDMARKS)
        o.tiny_landmarks = p->face.tiny_landmarks;
    if (mdl_face_opts_check(m, &o) < 0) {
        srv_reply_error(q, 400, "parameters: %s", eng_errmsg());
        return -1;
    }
    if (p->attention != SRV_ATTENTION_NONE && setup_face_attention(q, inf, &o) < 0)
        return -1;
    inf->decoded = calloc((size_t)n, sizeof *inf->decoded);
    inf->views = calloc((size_t)n, sizeof *inf->views);
    inf->face_opts = calloc((size_t)n, sizeof *inf->face_opts);
    inf->faces = calloc((size_t)n, sizeof *inf->faces);
    inf->face_buf = calloc((size_t)n * (size_t)o.max_faces, sizeof *inf->face_buf);
    if (!inf->decoded || !inf->views || !inf->face_opts || !inf->faces || !inf->face_buf) {
        srv_reply_error(q, 500, "out of memory");
        return -1;
    }
    uint64_t t0 = srv_now_us();
    for (int i = 0; i < n; i++) {
        struct srv_image_in *in = &inf->imgs[i];
        char err[256];
        enum srv_decode_status st =
            srv_decode_image(in->data, in->len, q->srv->o->max_pixels, &inf->decoded[i], err, sizeof err);
        if (st != SRV_DECODE_OK) {
            srv_reply_error(q, (unsigned)srv_decode_http_status(st), "%s: %s", in->field, err);
            return -1;
        }
        const struct srv_image *d = &inf->decoded[i];
        inf->views[i] = (struct mdl_image){d->width, d->height, d->channels, d->data, d->stride};
        inf->face_opts[i] = o;
        inf->faces[i] = (struct mdl_faces){.faces = inf->face_buf + (size_t)i * (size_t)o.max_faces,
                                           .cap = o.max_faces};
        if (inf->face_maps)
            inf->faces[i].maps = inf->face_maps + (size_t)i * (size_t)o.max_faces * mdl_face_attention(m)->floats;
    }
    inf->preprocess_us = srv_now_us() - t0;
    return submit(q, inf);
}

int srv_infer_start(struct srv_req *q, const char *model, struct srv_image_in *imgs, int n,
                    const struct srv_params *p, void (*answer)(struct srv_infer *inf))
{
    snprintf(q->model, sizeof q->model, "%s", model);
    struct srv_infer *inf = calloc(1, sizeof *inf);
    if (!inf) {
        srv_images_free(imgs, n);
        srv_reply_error(q, 500, "out of memory");
        return -1;
    }
    inf->q = q;
    inf->imgs = imgs;
    inf->n = n;
    inf->params = *p;
    inf->answer = answer;
    q->state = inf;
    q->cleanup = cleanup;

    inf->sm = srv_registry_acquire(q->srv->registry, model);
    if (!inf->sm) {
        char reason[512];
        enum srv_model_state st = srv_registry_state(q->srv->registry, model, reason, sizeof reason);
        if (st == SRV_MODEL_UNKNOWN) {
            q->model[0] = '\0'; /* not a model: not a /metrics label either */
            srv_reply_error(q, 404, "no model named '%s' (see GET /v1/models)", model);
        } else {
            srv_reply_error(q, 503, "model '%s' is not loaded: %s", model, reason);
        }
        return -1;
    }
    const struct mdl_model *m = inf->m = inf->sm->m;
    int max_batch = srv_batcher_opts(inf->sm->batcher)->max_batch;
    if (n < 1) {
        srv_reply_error(q, 400, "no images in the request");
        return -1;
    }
    if (n > max_batch) {
        srv_reply_error(q, 400, "%d images in one request; model '%s' takes at most %d (max_batch_size)", n,
                        m->manifest.name, max_batch);
        return -1;
    }
    if (mdl_model_takes_images(m))
        return start_faces(q, inf);
    if (p->face_set) {
        srv_reply_error(q, 400, "parameters.%s applies to face models only; model '%s' is a %s classifier",
                        p->face_first, m->manifest.name, m->manifest.family);
        return -1;
    }
    size_t per = mdl_preprocess_floats(&m->pre);
    int nl = m->manifest.nlabels;
    inf->input = malloc((size_t)n * per * sizeof(float));
    inf->probs = malloc((size_t)n * (size_t)(nl > 0 ? nl : 1) * sizeof(float));
    inf->logits = malloc((size_t)n * (size_t)(m->nout > 0 ? m->nout : 1) * sizeof(float));
    if (!inf->input || !inf->probs || !inf->logits) {
        srv_reply_error(q, 500, "out of memory");
        return -1;
    }
    if (p->attention != SRV_ATTENTION_NONE && setup_attention(q, inf) < 0)
        return -1;
    uint64_t t0 = srv_now_us();
    for (int i = 0; i < n; i++)
        if (prepare_image(q, inf, i) < 0)
            return -1;
    inf->preprocess_us = srv_now_us() - t0;
    return submit(q, inf);
}

/* Queue inf's job (inputs ready) and park the request. 0, or answered 503 (still 0: woken). */
static int submit(struct srv_req *q, struct srv_infer *inf)
{
    const struct mdl_model *m = inf->m;
    int nl = m->manifest.nlabels;
    struct srv_slot_stats *stats = srv_registry_stats(q->srv->registry, m->manifest.name);
    if (stats)
        atomic_fetch_add(&stats->preprocess_us, inf->preprocess_us);
    struct srv_job *j = &inf->job;
    j->n = inf->n;
    j->input = inf->input;
    j->images = inf->views;
    j->face_opts = inf->face_opts;
    j->faces = inf->faces;
    j->probs = nl > 0 ? inf->probs : NULL;
    j->logits = inf->logits;
    j->deadline_us = srv_now_us() + (uint64_t)q->srv->o->request_timeout_ms * 1000u;
    j->done = job_done;
    j->user = inf;
    if (inf->att) {
        j->tap = attention_tap;
        j->after = attention_after;
    }
    q->resume = resumed;
    /* Park first, then queue: a fast worker's wake must find the connection suspended. */
    srv_req_suspend(q);
    if (srv_batcher_submit(inf->sm->batcher, j) < 0) {
        srv_reply_error(q, 503, "model '%s' is busy: its queue of %d requests is full; retry shortly",
                        m->manifest.name, srv_batcher_opts(inf->sm->batcher)->max_queue);
        srv_req_wake(q);
    }
    return 0;
}
