/* bench_conv.c: GFLOP/s of ResNet-50's and DenseNet-121's convolutions next to OpenBLAS sgemm.
 *
 *   build/bench/bench_conv [--threads N] [--batch N] [--reps N] [--cpu] [--cold]
 *
 * For every convolution of the two networks at 224x224 (torchvision's layer shapes), the
 * engine's eng_conv2d is timed, and so is one OpenBLAS sgemm of the same (M, N, K) with
 * OpenBLAS's own threading at N threads: the ratio conv/sgemm says how much the engine loses
 * around the GEMM (im2col, epilogue, splitting). A large square sgemm gives this machine's peak.
 * DenseNet's 1x1 convolutions read a channel prefix of the block's concatenation buffer and
 * its 3x3 convolutions write into a channel slice of it, as the real network will.
 * Where the engine's packed GEMM runs (engine/sgemm.h), the same convolution is also timed with
 * its packed weights removed, i.e. on OpenBLAS as before, the two interleaved rep by rep so load
 * changes hit both alike: column packed/obl is that speed-up (1.00 for Winograd layers, which
 * do not use it).
 * --cpu times with the process's CPU clock instead of the wall clock: on a loaded machine the
 * CPU an op costs is disturbed far less than its wall time (with --threads 1 it is the op's
 * time on one core; spinning pool workers are counted too).
 * --cold evicts the caches (writes a 64 MiB buffer) before every timed call, engine and OpenBLAS
 * alike: the weights then come from memory, as in a batch-1 forward pass of a network whose
 * weights (ResNet-50: 100 MB) do not fit the cache, instead of from the L3 the previous rep left.
 * Timing is reported, never judged: this is not a test.
 */
#include "config.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/conv.h"
#include "engine/ctx.h"
#include "engine/error.h"

struct shape {
    const char *net;
    const char *where;
    int cin, cout, k, stride, pad, h; /* square input h x h */
    int in_ld, out_ld, out_off;       /* DenseNet: buffer channel counts and slice offset (0 = dense) */
    int count;                        /* occurrences in the network */
    double gm, gn, gk;                /* the GEMM it amounts to: M x K times K x N */
    double conv_s, gemm_s, obl_s;     /* best times: engine, OpenBLAS alone, engine on OpenBLAS */
};

static struct shape shapes[512];
static int nshapes;

static void add(const char *net, const char *where, int cin, int cout, int k, int stride, int pad, int h, int in_ld,
                int out_ld, int out_off, int count)
{
    for (int i = 0; i < nshapes; i++) {
        struct shape *s = &shapes[i];
        if (strcmp(s->net, net) == 0 && s->cin == cin && s->cout == cout && s->k == k && s->stride == stride &&
            s->h == h && s->in_ld == in_ld && s->out_ld == out_ld) {
            s->count += count;
            return;
        }
    }
    if (nshapes == (int)(sizeof shapes / sizeof shapes[0])) {
        fprintf(stderr, "bench_conv: shape table full\n");
        exit(1);
    }
    shapes[nshapes++] = (struct shape){net, where, cin, cout, k, stride, pad, h, in_ld, out_ld, out_off, count, 0, 0, 0, 0, 0, 0};
}

static void resnet50(void)
{
    add("resnet50", "conv1", 3, 64, 7, 2, 3, 224, 0, 0, 0, 1);
    static const int blocks[4] = {3, 4, 6, 3}, width[4] = {64, 128, 256, 512}, size[4] = {56, 28, 14, 7};
    int cin = 64;
    for (int l = 0; l < 4; l++) {
        int w = width[l], out = w * 4;
        for (int b = 0; b < blocks[l]; b++) {
            int first = b == 0, in_h = first && l > 0 ? size[l - 1] : size[l];
            int stride = first && l > 0 ? 2 : 1;
            static const char *names[4] = {"layer1", "layer2", "layer3", "layer4"};
            const char *where = names[l];
            add("resnet50", where, first ? cin : out, w, 1, 1, 0, in_h, 0, 0, 0, 1);
            add("resnet50", where, w, w, 3, stride, 1, in_h, 0, 0, 0, 1);
            add("resnet50", where, w, out, 1, 1, 0, size[l], 0, 0, 0, 1);
            if (first)
                add("resnet50", where, cin, out, 1, stride, 0, in_h, 0, 0, 0, 1);
        }
        cin = out;
    }
}

static void densenet121(void)
{
    add("densenet121", "conv0", 3, 64, 7, 2, 3, 224, 0, 0, 0, 1);
    static const int layers[4] = {6, 12, 24, 16}, size[4] = {56, 28, 14, 7};
    int c0 = 64;
    for (int b = 0; b < 4; b++) {
        int total = c0 + 32 * layers[b];
        static const char *names[4] = {"denseblock1", "denseblock2", "denseblock3", "denseblock4"};
        static const char *transitions[3] = {"transition1", "transition2", "transition3"};
        const char *where = names[b];
        for (int i = 0; i < layers[b]; i++) {
            int cin = c0 + 32 * i;
            add("densenet121", where, cin, 128, 1, 1, 0, size[b], total, 0, 0, 1);
            add("densenet121", where, 128, 32, 3, 1, 1, size[b], 0, total, cin, 1);
        }
        if (b < 3) {
            add("densenet121", transitions[b], total, total / 2, 1, 1, 0, size[b], 0, 0, 0, 1);
            c0 = total / 2;
        }
    }
}

/* OpenBLAS's thread count for the reference phase; other BLAS libraries keep their own. */
static void blas_threads(int n)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(n);
#else
    (void)n;
#endif
}

static clockid_t clock_id = CLOCK_MONOTONIC;
static bool cold;

#define EVICT_BYTES ((size_t)64 << 20)

/* With --cold: write a buffer larger than every cache level, so the next call starts cold. */
static void evict(void)
{
    static unsigned char *buf;
    if (!cold)
        return;
    if (!buf && !(buf = malloc(EVICT_BYTES))) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    static unsigned char v;
    memset(buf, ++v, EVICT_BYTES);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *randbuf(size_t n)
{
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-3f;
    return p;
}

/* Best of reps after one warm-up: the least disturbed run is the most repeatable figure.
 * OpenBLAS's thread count is set by the caller for the whole reference phase: changing it
 * between calls restarts its thread pool and makes small GEMMs look slow. */
static double best_sgemm(int m, int n, int k, int reps)
{
    float *a = randbuf((size_t)m * k), *b = randbuf((size_t)k * n), *c = randbuf((size_t)m * n);
    double best = INFINITY;
    for (int r = 0; r <= reps; r++) {
        evict();
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        double t = now_s() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv)
{
    int threads = 2, batch = 1, reps = 5;
    static const struct option longopts[] = {{"threads", required_argument, NULL, 't'},
                                             {"batch", required_argument, NULL, 'b'},
                                             {"reps", required_argument, NULL, 'r'},
                                             {"cpu", no_argument, NULL, 'c'},
                                             {"cold", no_argument, NULL, 'C'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 't')
            threads = atoi(optarg);
        else if (c == 'b')
            batch = atoi(optarg);
        else if (c == 'r')
            reps = atoi(optarg);
        else if (c == 'c')
            clock_id = CLOCK_PROCESS_CPUTIME_ID;
        else if (c == 'C')
            cold = true;
        else {
            fprintf(stderr, "usage: bench_conv [--threads N] [--batch N] [--reps N] [--cpu] [--cold]\n");
            return 2;
        }
    }
    if (threads < 1 || batch < 1 || reps < 1) {
        fprintf(stderr, "bench_conv: --threads, --batch and --reps must be >= 1\n");
        return 2;
    }
    resnet50();
    densenet121();

    struct eng_ctx ctx;
    size_t scratch = 0;
    for (int i = 0; i < nshapes; i++) {
        struct eng_conv_params p = eng_conv_torch(shapes[i].cin, shapes[i].cout, shapes[i].k, shapes[i].stride,
                                                  shapes[i].pad, 1, 1);
        struct eng_conv conv;
        float *w = randbuf((size_t)p.cout * p.cin * p.kh * p.kw);
        if (eng_conv_init_oihw(&conv, "bench", &p, w, NULL) < 0) {
            fprintf(stderr, "bench_conv: %s\n", eng_errmsg());
            return 1;
        }
        size_t s = eng_conv2d_scratch_bytes(&conv, (int64_t[]){batch, shapes[i].h, shapes[i].h, p.cin}, threads);
        scratch = s > scratch ? s : scratch;
        eng_conv_free(&conv);
        free(w);
    }
    if (eng_ctx_init(&ctx, threads, scratch) < 0) {
        fprintf(stderr, "bench_conv: %s\n", eng_errmsg());
        return 1;
    }

    /* Phase 1: the engine, with OpenBLAS at 1 thread as the engine always runs it. */
    for (int i = 0; i < nshapes; i++) {
        struct shape *s = &shapes[i];
        struct eng_conv_params p = eng_conv_torch(s->cin, s->cout, s->k, s->stride, s->pad, 1, 1);
        struct eng_conv conv;
        float *w = randbuf((size_t)p.cout * p.cin * p.kh * p.kw);
        if (eng_conv_init_oihw(&conv, "bench", &p, w, NULL) < 0) {
            fprintf(stderr, "bench_conv: %s\n", eng_errmsg());
            return 1;
        }
        int64_t oh, ow;
        eng_conv_out_size(&conv, s->h, s->h, &oh, &ow);
        int in_c = s->in_ld ? s->in_ld : s->cin, out_c = s->out_ld ? s->out_ld : s->cout;
        float *xb = randbuf((size_t)batch * s->h * s->h * in_c), *yb = randbuf((size_t)batch * oh * ow * out_c);
        struct eng_tensor x = eng_tensor_make("x", xb, 4, (int64_t[]){batch, s->h, s->h, in_c});
        struct eng_tensor y = eng_tensor_make("y", yb, 4, (int64_t[]){batch, oh, ow, out_c});
        x = eng_tensor_slice(&x, 3, 0, s->cin);
        y = eng_tensor_slice(&y, 3, s->out_off, s->cout);
        /* The same layer without its packed weights runs the OpenBLAS path (borrows conv's). */
        struct eng_conv obl = conv;
        obl.pw = (struct eng_packed_b){0};
        s->conv_s = s->obl_s = INFINITY;
        for (int r = 0; r <= reps; r++) {
            for (int v = 0; v < 2; v++) {
                evict();
                double t0 = now_s();
                if (eng_conv2d(&ctx, v ? &obl : &conv, &x, &y) < 0) {
                    fprintf(stderr, "bench_conv: %s\n", eng_errmsg());
                    return 1;
                }
                double t = now_s() - t0;
                double *best = v ? &s->obl_s : &s->conv_s;
                if (r > 0 && t < *best)
                    *best = t;
            }
        }
        s->gm = (double)batch * oh * ow;
        s->gn = s->cout;
        s->gk = (double)s->cin * s->k * s->k;
        eng_conv_free(&conv);
        free(w), free(xb), free(yb);
    }

    /* Phase 2: OpenBLAS alone, with its own threading at the same thread count. */
    blas_threads(threads);
    double peak = 2.0 * 2048 * 2048 * 2048 / best_sgemm(2048, 2048, 2048, reps) / 1e9;
    for (int i = 0; i < nshapes; i++)
        shapes[i].gemm_s = best_sgemm((int)shapes[i].gm, (int)shapes[i].gn, (int)shapes[i].gk, reps);
    blas_threads(1); /* the engine's rule, restored */

    printf("salient bench_conv: %d thread(s), batch %d, best of %d runs, %s time%s\n", threads, batch, reps,
           clock_id == CLOCK_MONOTONIC ? "wall" : "CPU", cold ? ", caches evicted before each call" : "");
#ifdef HAVE_OPENBLAS_GET_CONFIG
    printf("BLAS: %s\n", openblas_get_config());
#endif
    printf("OpenBLAS sgemm 2048^3 on %d thread(s): %.1f GFLOP/s (the peak below)\n\n", threads, peak);
    printf("%-12s %-12s %5s %5s %2s %2s %4s %3s | %9s %10s | %9s %9s | %8s %10s\n", "net", "where", "cin", "cout", "k",
           "s", "h", "n", "conv GF/s", "sgemm GF/s", "conv/gemm", "conv/peak", "obl GF/s", "packed/obl");
    const char *nets[2] = {"resnet50", "densenet121"};
    for (int ni = 0; ni < 2; ni++) {
        double flops_all = 0, conv_all = 0, gemm_all = 0, obl_all = 0;
        for (int i = 0; i < nshapes; i++) {
            struct shape *s = &shapes[i];
            if (strcmp(s->net, nets[ni]) != 0)
                continue;
            double flops = 2.0 * s->gm * s->gn * s->gk;
            printf("%-12s %-12s %5d %5d %2d %2d %4d %3d | %9.1f %10.1f | %9.2f %9.2f | %8.1f %10.2f\n", s->net,
                   s->where, s->cin, s->cout, s->k, s->stride, s->h, s->count, flops / s->conv_s / 1e9,
                   flops / s->gemm_s / 1e9, s->gemm_s / s->conv_s, flops / s->conv_s / 1e9 / peak,
                   flops / s->obl_s / 1e9, s->obl_s / s->conv_s);
            flops_all += flops * s->count;
            conv_all += s->conv_s * s->count;
            gemm_all += s->gemm_s * s->count;
            obl_all += s->obl_s * s->count;
        }
        printf("%s, all convolutions: %.2f GFLOP in %.1f ms = %.1f GFLOP/s; the same GEMMs in OpenBLAS: %.1f ms; "
               "ratio conv/gemm %.2f, conv/peak %.2f; the engine on OpenBLAS: %.1f ms, packed/obl %.2f\n\n",
               nets[ni], flops_all / 1e9, conv_all * 1e3, flops_all / conv_all / 1e9, gemm_all * 1e3,
               gemm_all / conv_all, flops_all / conv_all / 1e9 / peak, obl_all * 1e3, obl_all / conv_all);
    }
    eng_ctx_free(&ctx);
    return 0;
}
