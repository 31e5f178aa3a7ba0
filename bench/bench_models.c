/* bench_models.c: salient's side of bench/run_models.sh: one model folder timed through the engine (no HTTP).
 *
 *   build/bench/bench_models --model DIR [--threads 2] [--reps1 15] [--reps8 5] [--check DIR/<model>.json]
 *   build/bench/bench_models --peak [--threads 2]
 *   build/bench/bench_models --model DIR --layers FILE ...   # also per-layer times into FILE
 *
 * With --model: loads the folder as salientd would (mdl_model_load, max batch 8, weights
 * prepared at load), runs one runner with --threads engine threads, and prints one JSON line:
 * batch-1 latency (median of reps1 forward passes after 3 warm-ups) and the CPU time those
 * passes took (all threads; with --threads 1 a contention-proof cost for comparing changes),
 * batch-8 images/s (median of reps8 passes after one warm-up), peak RSS of this process, and, with --check, the largest
 * absolute difference between its logits and PyTorch's for the input bench/models.py stored, and
 * how often the pool's worker moved off the caller's CPU (engine/pool.h).
 * With --peak: OpenBLAS's own sgemm (its threading at --threads) on 2048^3, best of 5, in
 * GFLOP/s: the machine's peak the harness divides by.
 * With --layers FILE: after the timed passes, reps1 more at batch 1 and reps8 at batch 8 with the
 * engine's profile on (engine/profile.h), appending one JSON line per layer and batch to FILE:
 * the median ms per call and its GFLOP (bench/layers.py sets them beside ONNX Runtime's).
 * Timing is reported, never judged: this is not a test.
 */
#include "config.h"

#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/pool.h"
#include "engine/profile.h"
#include "models/model.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all its threads): on a machine shared with other jobs, what a
 * pass costs rather than how long it waited for a core. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_models: %s\n", what);
    exit(1);
}

static double sgemm_peak(int threads)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(threads);
#else
    (void)threads;
#endif
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c)
        die("out of memory");
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = now_s() - t;
        if (r > 0 && t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n / best / 1e9;
}

/* The stored batch-1 input (NCHW, as torch takes it) as NHWC, and torch's logits. */
static int read_check(const char *path, int64_t h, int64_t w, int64_t c, float *x, float **logits, size_t *nlog)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        return fprintf(stderr, "bench_models: %s: %s\n", path, err.text), -1;
    json_t *in = json_object_get(j, "input"), *lg = json_object_get(j, "logits");
    if (!json_is_array(in) || json_array_size(in) != (size_t)(h * w * c) || !json_is_array(lg)) {
        json_decref(j);
        return fprintf(stderr, "bench_models: %s: input is not %lldx%lldx%lld\n", path, (long long)c, (long long)h,
                       (long long)w), -1;
    }
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t xx = 0; xx < w; xx++)
                x[(y * w + xx) * c + ci] = (float)json_number_value(json_array_get(in, (size_t)((ci * h + y) * w + xx)));
    *nlog = json_array_size(lg);
    *logits = malloc(sizeof(float) * *nlog);
    if (!*logits)
        die("out of memory");
    for (size_t i = 0; i < *nlog; i++)
        (*logits)[i] = (float)json_number_value(json_array_get(lg, i));
    json_decref(j);
    return 0;
}

/* --layers: reps1 passes at batch 1 and reps8 at batch 8 with the profile on (logits into lg,
 * room for 8), one JSON line per layer and batch appended to path. */
static int write_layers(const char *path, const char *model, const struct mdl_model *m, struct mdl_runner *r,
                        const float *x, float *lg, int reps1, int reps8, int threads)
{
    struct eng_profile *prof = eng_profile_new();
    if (!prof)
        return -1;
    struct mdl_output out = {.logits = lg};
    r->ctx.prof = prof;
    int rc = 0;
    for (int i = 0; i < reps1 && rc == 0; i++)
        rc = mdl_model_run(m, r, x, 1, &out);
    for (int i = 0; i < reps8 && rc == 0; i++)
        rc = mdl_model_run(m, r, x, 8, &out);
    r->ctx.prof = NULL;
    FILE *f = rc == 0 ? fopen(path, "a") : NULL;
    if (rc == 0 && !f)
        rc = eng_error("--layers: cannot open '%s'", path);
    for (int i = 0; f && i < eng_profile_count(prof); i++) {
        const struct eng_profile_entry *e = eng_profile_entry(prof, i);
        json_t *j = json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:f, s:f, s:i}", "runtime", "salient", "model", model,
                              "threads", threads, "batch", (json_int_t)e->batch, "layer", e->name, "kind", e->kind,
                              "ms", 1e3 * eng_profile_median(e), "gflop", e->flops / 1e9, "calls", e->nsamples);
        if (j)
            json_dumpf(j, f, JSON_COMPACT | JSON_REAL_PRECISION(6)), fputc('\n', f);
        json_decref(j);
    }
    if (f)
        fclose(f);
    eng_profile_free(prof);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *check = NULL, *layers = NULL;
    int threads = 2, reps1 = 15, reps8 = 5, peak = 0;
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
                                         {"reps1", required_argument, NULL, '1'}, {"reps8", required_argument, NULL, '8'},
                                         {"check", required_argument, NULL, 'c'}, {"peak", no_argument, NULL, 'p'},
                                         {"layers", required_argument, NULL, 'l'}, {NULL, 0, NULL, 0}};
    /* As salientd runs (server/main.c): blocks of 128 KiB and more in their own mappings, so
     * what load frees (weights dropped once packed) goes back to the system, and peak RSS is the
     * server's. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': dir = optarg; break;
        case 't': threads = atoi(optarg); break;
        case '1': reps1 = atoi(optarg); break;
        case '8': reps8 = atoi(optarg); break;
        case 'c': check = optarg; break;
        case 'p': peak = 1; break;
        case 'l': layers = optarg; break;
        default:
            fprintf(stderr, "usage: bench_models (--model DIR [--check FILE.json] [--reps1 N] [--reps8 N] "
                            "[--layers FILE] | --peak) [--threads N]\n");
            return 2;
        }
    }
    if (threads < 1 || reps1 < 1 || reps8 < 1)
        die("--threads, --reps1 and --reps8 must be at least 1");
    if (peak) {
        printf("{\"runtime\": \"openblas\", \"threads\": %d, \"sgemm_gflops\": %.1f}\n", threads, sgemm_peak(threads));
        return 0;
    }
    if (!dir)
        die("--model DIR or --peak is required");

    const char *slash = strrchr(dir, '/');
    struct mdl_model *m = mdl_model_load(dir, slash ? slash + 1 : dir, 8);
    if (!m)
        die(eng_errmsg());
    struct mdl_runner r;
    if (mdl_runner_init(&r, m, threads) < 0)
        die(eng_errmsg());
    size_t per = (size_t)(m->in_h * m->in_w * m->in_c);
    float *x = malloc(sizeof(float) * per * 8), *lg = malloc(sizeof(float) * (size_t)m->nout * 8);
    if (!x || !lg)
        die("out of memory");
    srand(8);
    for (size_t i = 0; i < per * 8; i++)
        x[i] = (float)rand() / (float)RAND_MAX * 4.0f - 2.0f;
    double diff = -1.0;
    if (check) {
        float *ref;
        size_t nref;
        if (read_check(check, m->in_h, m->in_w, m->in_c, x, &ref, &nref) < 0)
            return 1;
        struct mdl_output out = {.logits = lg};
        if ((size_t)m->nout != nref || mdl_model_run(m, &r, x, 1, &out) < 0)
            die(m->nout != (int64_t)nref ? "--check: logit count differs" : eng_errmsg());
        diff = 0.0;
        for (size_t i = 0; i < nref; i++) {
            double d = lg[i] > ref[i] ? lg[i] - ref[i] : ref[i] - lg[i];
            if (d > diff)
                diff = d;
        }
        free(ref);
    }

    struct mdl_output out = {.logits = lg};
    double *t = malloc(sizeof(double) * (size_t)(reps1 > reps8 ? reps1 : reps8));
    if (!t)
        die("out of memory");
    for (int i = 0; i < 3; i++)
        if (mdl_model_run(m, &r, x, 1, &out) < 0)
            die(eng_errmsg());
    double *tc = malloc(sizeof(double) * (size_t)reps1);
    if (!tc)
        die("out of memory");
    for (int i = 0; i < reps1; i++) {
        double s = now_s(), c = cpu_s();
        mdl_model_run(m, &r, x, 1, &out);
        t[i] = now_s() - s;
        tc[i] = cpu_s() - c;
    }
    double b1 = median(t, reps1), b1_cpu = median(tc, reps1);
    free(tc);
    mdl_model_run(m, &r, x, 8, &out);
    for (int i = 0; i < reps8; i++) {
        double s = now_s();
        mdl_model_run(m, &r, x, 8, &out);
        t[i] = now_s() - s;
    }
    double b8 = median(t, reps8);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"runtime\": \"salient\", \"model\": \"%s\", \"threads\": %d, \"b1_ms\": %.3f, \"b8_img_s\": %.3f, "
           "\"b1_cpu_ms\": %.3f, \"peak_rss_mb\": %.1f, \"max_abs_diff\": %.3g, \"pool_moves\": %ld}\n",
           slash ? slash + 1 : dir, threads, 1e3 * b1, 8.0 / b8, 1e3 * b1_cpu, (double)ru.ru_maxrss / 1024.0, diff,
           eng_pool_moves(r.ctx.pool));
    free(t);
    if (layers && write_layers(layers, slash ? slash + 1 : dir, m, &r, x, lg, reps1, reps8, threads) < 0)
        die(eng_errmsg());
    free(x);
    free(lg);
    mdl_runner_free(&r);
    mdl_model_free(m);
    return 0;
}
