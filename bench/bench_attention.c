/* bench_attention.c: what attention maps cost. For each model folder given, the median time of
 * a batch forward without maps, with layer maps + each image's best-label CAM (the server's
 * default for "attention": "maps"), and with every label's CAM; the overhead in percent.
 * Maps are computed from the forward that runs anyway (taps), so the target is <= 10%.
 * Times are the process's CPU time (all threads; run with OMP_WAIT_POLICY=passive so idle
 * threads do not spin): on a shared machine wall-clock time says more about the neighbours
 * than about the maps. The "finish" columns time mdl_attn_finish_batch alone (layer-map
 * normalisation and the CAMs after the forward): the maps' own cost, which a busy machine's
 * jitter in the whole batch hides.
 *
 * A face model (faceapi) runs the whole pipeline on --image (batch copies of it) without maps
 * and with every face's maps (layer maps and all 10 CAMs: they are computed in the heads' taps
 * whichever are reported, so both map columns are the same work, measured twice).
 *
 *   bench/bench_attention [--batch 8] [--runs 15] [--threads 2] [--image FACE.jpg] MODEL_DIR...
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/error.h"
#include "models/attention.h"
#include "models/faceapi.h"
#include "models/model.h"
#include "server/decode_image.h"

struct tap_ctx {
    const struct mdl_model *m;
    struct mdl_attn_image *att;
};

static void on_tap(void *user, const char *name, const struct eng_tensor *t)
{
    struct tap_ctx *c = user;
    for (int64_t i = 0; i < t->ne[0]; i++)
        mdl_attn_tap(c->m, &c->att[i], name, t, i);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_attention: %s\n", what);
    exit(1);
}

/* mode 0: no maps; 1: layers + 1 CAM per image; 2: layers + every label's CAM. Median ms of
 * the whole batch; *finish (may be NULL) the median ms of mdl_attn_finish_batch. */
static double time_mode(const struct mdl_model *m, struct mdl_runner *r, const float *x, int n, int runs, int mode,
                        float *probs, float *logits, double *finish)
{
    int nl = m->manifest.nlabels;
    struct mdl_attn_image *att = calloc((size_t)n, sizeof *att);
    float *buf = calloc((size_t)n * (m->attn.floats ? m->attn.floats : 1), sizeof(float));
    int *labels = calloc((size_t)(nl ? nl : 1), sizeof(int));
    double *t = calloc((size_t)runs, sizeof(double)), *tf = calloc((size_t)runs, sizeof(double));
    if (!att || !buf || !labels || !t || !tf) {
        fprintf(stderr, "bench_attention: out of memory\n");
        exit(1);
    }
    for (int k = 0; k < nl; k++)
        labels[k] = k;
    struct tap_ctx tc = {m, att};
    for (int it = -2; it < runs; it++) {
        for (int i = 0; i < n; i++)
            att[i] = (struct mdl_attn_image){.want_layers = true,
                                             .labels = labels,
                                             .nlabels = m->attn.cam == MDL_CAM_NONE ? 0 : mode == 2 ? nl : 1,
                                             .buf = buf + (size_t)i * m->attn.floats};
        struct mdl_output out = {.logits = logits, .probs = probs, .tap = mode ? on_tap : NULL, .tap_user = &tc};
        double t0 = now_ms();
        if (mdl_model_run(m, r, x, n, &out) < 0) {
            fprintf(stderr, "bench_attention: %s\n", eng_errmsg());
            exit(1);
        }
        double t1 = now_ms();
        if (mode && mdl_attn_finish_batch(m, r, att, n) < 0)
            die(eng_errmsg());
        if (it >= 0) {
            t[it] = now_ms() - t0;
            tf[it] = now_ms() - t1;
        }
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    qsort(tf, (size_t)runs, sizeof(double), cmp_double);
    double med = t[runs / 2];
    if (finish)
        *finish = tf[runs / 2];
    free(att);
    free(buf);
    free(labels);
    free(t);
    free(tf);
    return med;
}

/* A face model: the pipeline on n copies of img, with or without every face's maps. Median ms. */
static double time_faces(const struct mdl_model *m, struct mdl_runner *r, const struct srv_image *img, int n,
                         int runs, bool maps)
{
    const struct mdl_face_attention *at = mdl_face_attention(m);
    struct mdl_face_opts o;
    mdl_face_opts_default(m, &o);
    o.attention = maps;
    if (maps && !at)
        die("the face model's manifest names no attention maps");
    if (mdl_face_opts_check(m, &o) < 0)
        die(eng_errmsg());
    struct mdl_image *views = calloc((size_t)n, sizeof *views);
    struct mdl_face_opts *opts = calloc((size_t)n, sizeof *opts);
    struct mdl_faces *out = calloc((size_t)n, sizeof *out);
    float *buf = calloc((size_t)n * (size_t)o.max_faces * (at && at->floats ? at->floats : 1), sizeof(float));
    double *t = calloc((size_t)runs, sizeof(double));
    if (!views || !opts || !out || !buf || !t)
        die("out of memory");
    for (int i = 0; i < n; i++) {
        views[i] = (struct mdl_image){img->width, img->height, img->channels, img->data, img->stride};
        opts[i] = o;
    }
    for (int it = -2; it < runs; it++) {
        for (int i = 0; i < n; i++)
            out[i] = (struct mdl_faces){NULL, 0, 0, maps ? buf + (size_t)i * (size_t)o.max_faces * at->floats : NULL};
        double t0 = now_ms();
        if (mdl_model_run_images(m, r, views, opts, n, out) < 0)
            die(eng_errmsg());
        if (it >= 0)
            t[it] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    double med = t[runs / 2];
    free(views), free(opts), free(out), free(buf), free(t);
    return med;
}

static void load_image(const char *path, struct srv_image *img)
{
    FILE *fp = fopen(path, "rb");
    long len = -1;
    if (!fp || fseek(fp, 0, SEEK_END) < 0 || (len = ftell(fp)) <= 0 || fseek(fp, 0, SEEK_SET) < 0)
        die("cannot read the --image file");
    uint8_t *data = malloc((size_t)len);
    if (!data || fread(data, 1, (size_t)len, fp) != (size_t)len)
        die("cannot read the --image file");
    fclose(fp);
    char err[256];
    if (srv_decode_image(data, (size_t)len, 0, img, err, sizeof err) != SRV_DECODE_OK)
        die(err);
    free(data);
}

int main(int argc, char **argv)
{
    int batch = 8, runs = 15, threads = 2;
    const char *image = NULL;
    int first = 1;
    while (first < argc && strncmp(argv[first], "--", 2) == 0 && first + 1 < argc) {
        int v = atoi(argv[first + 1]);
        if (strcmp(argv[first], "--image") == 0)
            image = argv[first + 1];
        else if (strcmp(argv[first], "--batch") == 0)
            batch = v;
        else if (strcmp(argv[first], "--runs") == 0)
            runs = v;
        else if (strcmp(argv[first], "--threads") == 0)
            threads = v;
        else
            break;
        first += 2;
    }
    if (first >= argc || batch < 1 || runs < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_attention [--batch N] [--runs N] [--threads N] [--image FACE.jpg] MODEL_DIR...\n");
        return 2;
    }
    printf("| model | input | batch | no maps (CPU ms) | maps, best-label CAM (CPU ms) | overhead | finish (CPU ms) | "
           "maps, every label's CAM (CPU ms) | overhead | finish (CPU ms) |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (int a = first; a < argc; a++) {
        const char *dir = argv[a];
        const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
        struct mdl_model *m = mdl_model_load(dir, name, batch);
        if (!m) {
            fprintf(stderr, "bench_attention: %s\n", eng_errmsg());
            return 1;
        }
        struct mdl_runner r;
        if (mdl_runner_init(&r, m, threads) < 0) {
            fprintf(stderr, "bench_attention: %s\n", eng_errmsg());
            return 1;
        }
        if (mdl_model_takes_images(m)) {
            if (!image)
                die("a face model needs --image (a photograph with faces)");
            struct srv_image img;
            load_image(image, &img);
            double t0 = time_faces(m, &r, &img, batch, runs, false);
            double t1 = time_faces(m, &r, &img, batch, runs, true);
            double t2 = time_faces(m, &r, &img, batch, runs, true);
            printf("| %s | %dx%d photo | %d | %.2f | %.2f | %+.1f%% | - | %.2f | %+.1f%% | - |\n", name, img.width,
                   img.height, batch, t0, t1, 100.0 * (t1 / t0 - 1.0), t2, 100.0 * (t2 / t0 - 1.0));
            fflush(stdout);
            srv_image_free(&img);
            mdl_runner_free(&r);
            mdl_model_free(m);
            continue;
        }
        size_t per = (size_t)(m->in_h * m->in_w * m->in_c);
        float *x = malloc((size_t)batch * per * sizeof(float));
        float *probs = malloc((size_t)batch * (size_t)(m->manifest.nlabels + 1) * sizeof(float));
        float *logits = malloc((size_t)batch * (size_t)(m->nout + 1) * sizeof(float));
        if (!x || !probs || !logits)
            return 1;
        unsigned s = 12345;
        for (size_t i = 0; i < (size_t)batch * per; i++) {
            s = s * 1103515245u + 12345u;
            x[i] = (float)((s >> 8) & 0xffff) / 65535.0f * 2.0f - 1.0f;
        }
        double f1, f2;
        double t0 = time_mode(m, &r, x, batch, runs, 0, probs, logits, NULL);
        double t1 = time_mode(m, &r, x, batch, runs, 1, probs, logits, &f1);
        double t2 = time_mode(m, &r, x, batch, runs, 2, probs, logits, &f2);
        printf("| %s | %lldx%lld | %d | %.2f | %.2f | %+.1f%% | %.2f | %.2f | %+.1f%% | %.2f |\n", name,
               (long long)m->in_h, (long long)m->in_w, batch, t0, t1, 100.0 * (t1 / t0 - 1.0), f1, t2,
               100.0 * (t2 / t0 - 1.0), f2);
        fflush(stdout);
        free(x);
        free(probs);
        free(logits);
        mdl_runner_free(&r);
        mdl_model_free(m);
    }
    return 0;
}
