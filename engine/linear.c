/* linear.c: fully connected layers, row GEMMs with a fused epilogue, matmul and batched matmul. */
#include "engine/linear.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/gemm.h"
#include "engine/sgemm.h"

/* Below this many multiply-adds a product runs on one thread: waking the others costs more. */
#define LIN_MIN_PARALLEL_FLOPS ((int64_t)1 << 18)
/* Rows per GEMM call in the row split: enough that OpenBLAS repacking B is amortised, few
 * enough that the tile is still in L2 when the epilogue walks it. Every call repacks all of B
 * (k x n weights, megabytes in a CNN's late stages) for a few cycles of work per weight and
 * row, so rows win over cache: at 32 rows the packing cost as much as the multiplies. */
#define LIN_TILE_BYTES ((int64_t)256 << 10)
#define LIN_MIN_TILE_ROWS 256

/* The build's -O2 leaves loops of unknown trip count scalar; the engine is built with OpenMP. */
#ifdef _OPENMP
#define LIN_SIMD _Pragma("omp simd")
#else
#define LIN_SIMD
#endif

/* Evenly spaced rows of a tensor viewed as rows of its innermost dimension. */
struct row_run {
    float *p;   /* first row */
    int64_t n;  /* rows in the run, including p's */
    int64_t ld; /* floats between rows */
};

/* Rows r, r+1, ... of t that are evenly spaced. Size-1 dimensions are skipped so that, for
 * example, an [N,1,1,C] view of a wider buffer is still one run per spacing change. The run
 * spans the inner outer dimensions whose strides nest; r's place in that span is r % span. */
static struct row_run row_run(const struct eng_tensor *t, int64_t r)
{
    struct row_run run = {eng_tensor_row(t, r), 1, t->ne[t->ndim - 1]};
    int inner = -1;
    int64_t span = 1;
    for (int d = t->ndim - 2; d >= 0; d--) {
        if (t->ne[d] == 1)
            continue;
        if (inner < 0) {
            inner = d;
            run.ld = (int64_t)(t->nb[d] / sizeof(float));
        } else if (t->nb[d] != (size_t)span * t->nb[inner]) {
            break;
        }
        span *= t->ne[d];
    }
    run.n = span - r % span;
    if (run.n == 1 && run.ld < t->ne[t->ndim - 1])
        run.ld = t->ne[t->ndim - 1]; /* a lone row's spacing is irrelevant, but BLAS checks it */
    return run;
}

int64_t eng_row_run(const struct eng_tensor *t, int64_t r, float **row, int64_t *ld)
{
    struct row_run run = row_run(t, r);
    *row = run.p;
    *ld = run.ld;
    return run.n;
}

void eng_bias_act_rows(float *y, int64_t rows, int64_t cols, int64_t ld, const float *bias, enum eng_act act,
                       float param)
{
    if (bias) {
        for (int64_t r = 0; r < rows; r++) {
            float *p = y + r * ld;
            LIN_SIMD
            for (int64_t c = 0; c < cols; c++)
                p[c] += bias[c];
        }
    }
    eng_act_rows(act, param, y, rows, cols, ld);
}

struct rg_job {
    const struct eng_tensor *x, *y;
    const float *b, *bias;
    int64_t ldb, m, n, k;
    enum eng_act act;
    float param;
    bool split_n;
    const struct eng_packed_b *pb;  /* packed B (engine/sgemm.h) instead of b, or NULL */
    const struct eng_sgemm_ops *op; /* with pb: prologue and epilogue (its res is set per run) */
    const struct eng_tensor *res;   /* with pb: residual rows added before act, or NULL */
};

/* Rows [r0, r1), columns [c0, c1) of y: GEMM then epilogue, run by run. */
static void rg_block(const struct rg_job *j, int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    for (int64_t r = r0; r < r1;) {
        struct row_run xr = row_run(j->x, r), yr = row_run(j->y, r);
        int64_t n = r1 - r;
        if (xr.n < n)
            n = xr.n;
        if (yr.n < n)
            n = yr.n;
        if (j->pb) {
            struct eng_sgemm_ops op = *j->op;
            if (j->res) {
                struct row_run rr = row_run(j->res, r);
                if (rr.n < n)
                    n = rr.n;
                op.res = rr.p;
                op.ldr = rr.ld;
            }
            eng_sgemm_packed(n, xr.p, xr.ld, j->pb, c0, c1, yr.p, yr.ld, &op);
            r += n;
            continue;
        }
        float *c = yr.p + c0;
        eng_gemm_serial(false, false, n, c1 - c0, j->k, 1.0f, xr.p, xr.ld, j->b + c0, j->ldb, 0.0f, c, yr.ld);
        eng_bias_act_rows(c, n, c1 - c0, yr.ld, j->bias ? j->bias + c0 : NULL, j->act, j->param);
        r += n;
    }
}

static void rg_part(void *arg, int ith, int nth)
{
    const struct rg_job *j = arg;
    int64_t b0, b1;
    if (j->split_n) {
        /* Column blocks of 16 keep every thread's epilogue on whole vectors. */
        eng_split((j->n + 15) / 16, ith, nth, &b0, &b1);
        int64_t c1 = b1 * 16 < j->n ? b1 * 16 : j->n;
        if (b0 * 16 < c1)
            rg_block(j, 0, j->m, b0 * 16, c1);
        return;
    }
    eng_split(j->m, ith, nth, &b0, &b1);
    int64_t tile = LIN_TILE_BYTES / (j->n * (int64_t)sizeof(float));
    if (tile < LIN_MIN_TILE_ROWS)
        tile = LIN_MIN_TILE_ROWS;
    for (int64_t r = b0; r < b1; r += tile)
        rg_block(j, r, r + tile < b1 ? r + tile : b1, 0, j->n);
}

/* Checks the shapes of j (x, y, k, n filled in) and runs it over ctx's threads. */
static int rg_run(const struct eng_ctx *ctx, struct rg_job *j)
{
    char xs[64], ys[64];
    const struct eng_tensor *x = j->x, *y = j->y;
    j->m = eng_tensor_nrows(x);
    j->n = y->ne[y->ndim - 1];
    j->k = x->ne[x->ndim - 1];
    if (eng_tensor_nrows(y) != j->m || (j->res && eng_tensor_nrows(j->res) != j->m))
        return eng_error("row gemm: x '%s' %s has %lld rows but y '%s' %s has %lld%s", x->name,
                         eng_shape_str(x, xs, sizeof xs), (long long)j->m, y->name, eng_shape_str(y, ys, sizeof ys),
                         (long long)eng_tensor_nrows(y), j->res ? " (or the residual differs)" : "");
    if (j->k < 1 || j->n < 1 || j->ldb < j->n)
        return eng_error("row gemm: x '%s' %s, y '%s' %s: empty rows or ldb %lld < %lld", x->name,
                         eng_shape_str(x, xs, sizeof xs), y->name, eng_shape_str(y, ys, sizeof ys),
                         (long long)j->ldb, (long long)j->n);
    if (j->res && j->res->ne[j->res->ndim - 1] != j->n)
        return eng_error("row gemm: residual '%s' has %lld columns, y '%s' %lld", j->res->name,
                         (long long)j->res->ne[j->res->ndim - 1], y->name, (long long)j->n);
    if (j->m == 0)
        return 0;
    int nth = ctx->nthreads;
    /* Split the columns when there are more of them than rows: each thread then packs and
     * streams only its share of B (the weights: megabytes in the late stages of a CNN or Swin's
     * MLPs at batch 1) instead of all of it, while the rows it re-reads are the smaller side. */
    j->split_n = j->n > j->m && (j->n + 15) / 16 >= nth;
    int64_t units = j->split_n ? (j->n + 15) / 16 : j->m;
    int tasks = j->m * j->n * j->k < LIN_MIN_PARALLEL_FLOPS ? 1 : (int)(units < nth ? units : nth);
    eng_parallel(ctx, tasks, rg_part, j);
    return 0;
}

int eng_rows_gemm(const struct eng_ctx *ctx, const struct eng_tensor *x, const float *b, int64_t ldb,
                  const float *bias, enum eng_act act, float act_param, struct eng_tensor *y)
{
    struct rg_job j = {.x = x, .y = y, .b = b, .bias = bias, .ldb = ldb, .act = act, .param = act_param};
    return rg_run(ctx, &j);
}

int eng_rows_gemm_packed(const struct eng_ctx *ctx, const struct eng_tensor *x, const struct eng_packed_b *pb,
                         const struct eng_sgemm_ops *op, const struct eng_tensor *res, struct eng_tensor *y)
{
    char xs[64], ys[64];
    if (x->ne[x->ndim - 1] != pb->k || y->ne[y->ndim - 1] != pb->n)
        return eng_error("row gemm: x '%s' %s and y '%s' %s do not fit packed weights %lld x %lld", x->name,
                         eng_shape_str(x, xs, sizeof xs), y->name, eng_shape_str(y, ys, sizeof ys),
                         (long long)pb->k, (long long)pb->n);
    struct eng_sgemm_ops none = {0};
    struct rg_job j = {.x = x, .y = y, .ldb = pb->n, .pb = pb, .op = op ? op : &none, .res = res};
    return rg_run(ctx, &j);
}

int eng_linear_init(struct eng_linear *l, const char *name, int64_t in, int64_t out, const float *w,
                    const float *bias, enum eng_act act, float act_param)
{
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    if (in < 1 || out < 1)
        return eng_error("linear '%s': bad size in=%lld out=%lld", l->name, (long long)in, (long long)out);
    l->in = in;
    l->out = out;
    l->act = act;
    l->act_param = act_param;
    l->w = malloc((size_t)(in * out) * sizeof(float));
    if (!l->w)
        return eng_error("linear '%s': out of memory packing [%lld,%lld] weights", l->name, (long long)out,
                         (long long)in);
    /* Blocked so both the torch rows and the packed rows are read/written a cache line at a time. */
    for (int64_t o0 = 0; o0 < out; o0 += 32)
        for (int64_t i0 = 0; i0 < in; i0 += 32)
            for (int64_t o = o0; o < out && o < o0 + 32; o++)
                for (int64_t i = i0; i < in && i < i0 + 32; i++)
                    l->w[i * out + o] = w[o * in + i];
    if (bias) {
        l->bias = malloc((size_t)out * sizeof(float));
        if (!l->bias) {
            eng_linear_free(l);
            return eng_error("linear '%s': out of memory for bias", name ? name : "");
        }
        memcpy(l->bias, bias, (size_t)out * sizeof(float));
    }
    if (eng_sgemm_enabled() && eng_pack_b(&l->pw, l->name, l->w, out, in, out) < 0) {
        eng_linear_free(l);
        return -1;
    }
    return 0;
}

void eng_linear_free(struct eng_linear *l)
{
    free(l->w);
    free(l->bias);
    eng_packed_b_free(&l->pw);
    l->w = NULL;
    l->bias = NULL;
}

void eng_linear_drop_unpacked(struct eng_linear *l)
{
    if (l->pw.p) {
        free(l->w);
        l->w = NULL;
    }
}

int eng_linear(const struct eng_ctx *ctx, const struct eng_linear *l, const struct eng_tensor *x,
               struct eng_tensor *y)
{
    char xs[64], ys[64];
    bool ok = x->ndim == y->ndim && x->ne[x->ndim - 1] == l->in && y->ne[y->ndim - 1] == l->out;
    for (int d = 0; ok && d < x->ndim - 1; d++)
        ok = x->ne[d] == y->ne[d];
    if (!ok)
        return eng_error("linear '%s' (%lld -> %lld): input '%s' %s and output '%s' %s do not fit", l->name,
                         (long long)l->in, (long long)l->out, x->name, eng_shape_str(x, xs, sizeof xs), y->name,
                         eng_shape_str(y, ys, sizeof ys));
    if (l->pw.p) {
        struct eng_sgemm_ops op = {.bias = l->bias, .act = l->act, .act_param = l->act_param};
        return eng_rows_gemm_packed(ctx, x, &l->pw, &op, NULL, y);
    }
    return eng_rows_gemm(ctx, x, l->w, l->out, l->bias, l->act, l->act_param, y);
}

/* Rows and columns of op(t) for a matrix (the last two dimensions of t). */
static void op_dims(const struct eng_tensor *t, bool trans, int64_t *rows, int64_t *cols)
{
    int64_t r = t->ne[t->ndim - 2], c = t->ne[t->ndim - 1];
    *rows = trans ? c : r;
    *cols = trans ? r : c;
}

static int mm_shape_error(const char *op, const struct eng_tensor *a, bool ta, const struct eng_tensor *b, bool tb,
                          const struct eng_tensor *c)
{
    char as[64], bs[64], cs[64];
    return eng_error("%s: a '%s' %s%s times b '%s' %s%s does not give c '%s' %s", op, a->name,
                     eng_shape_str(a, as, sizeof as), ta ? "^T" : "", b->name, eng_shape_str(b, bs, sizeof bs),
                     tb ? "^T" : "", c->name, eng_shape_str(c, cs, sizeof cs));
}

int eng_matmul(const struct eng_ctx *ctx, const struct eng_tensor *a, bool trans_a, const struct eng_tensor *b,
               bool trans_b, float alpha, struct eng_tensor *c)
{
    if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2)
        return mm_shape_error("matmul (2-D only)", a, trans_a, b, trans_b, c);
    int64_t m, k, k2, n;
    op_dims(a, trans_a, &m, &k);
    op_dims(b, trans_b, &k2, &n);
    if (k != k2 || c->ne[0] != m || c->ne[1] != n || k < 1)
        return mm_shape_error("matmul", a, trans_a, b, trans_b, c);
    eng_gemm(ctx, trans_a, trans_b, m, n, k, alpha, a->data, eng_tensor_ld(a), b->data, eng_tensor_ld(b), 0.0f,
             c->data, eng_tensor_ld(c));
    return 0;
}

struct bmm_job {
    const struct eng_tensor *a, *b, *c;
    bool ta, tb, b_shared;
    int64_t m, n, k, nbatch;
    float alpha;
};

/* Byte offset of batch index i in t (its leading ndim-2 dimensions). */
static size_t batch_off(const struct eng_tensor *t, int64_t i)
{
    size_t off = 0;
    for (int d = t->ndim - 3; d >= 0; d--) {
        off += (size_t)(i % t->ne[d]) * t->nb[d];
        i /= t->ne[d];
    }
    return off;
}

static void bmm_one(const struct bmm_job *j, int64_t i)
{
    const float *a = (const float *)((const char *)j->a->data + batch_off(j->a, i));
    const float *b = (const float *)((const char *)j->b->data + (j->b_shared ? 0 : batch_off(j->b, i)));
    float *c = (float *)((char *)j->c->data + batch_off(j->c, i));
    eng_gemm_serial(j->ta, j->tb, j->m, j->n, j->k, j->alpha, a, eng_tensor_ld(j->a), b, eng_tensor_ld(j->b), 0.0f,
                    c, eng_tensor_ld(j->c));
}

static void bmm_part(void *arg, int ith, int nth)
{
    const struct bmm_job *j = arg;
    int64_t b0, b1;
    eng_split(j->nbatch, ith, nth, &b0, &b1);
    for (int64_t i = b0; i < b1; i++)
        bmm_one(j, i);
}

int eng_bmm(const struct eng_ctx *ctx, const struct eng_tensor *a, bool trans_a, const struct eng_tensor *b,
            bool trans_b, float alpha, struct eng_tensor *c)
{
    if (a->ndim < 3 || a->ndim != c->ndim || b->ndim != a->ndim)
        return mm_shape_error("bmm (3-D or 4-D, same rank)", a, trans_a, b, trans_b, c);
    struct bmm_job j = {a, b, c, trans_a, trans_b, true, 0, 0, 0, 1, alpha};
    int64_t k2;
    op_dims(a, trans_a, &j.m, &j.k);
    op_dims(b, trans_b, &k2, &j.n);
    bool ok = j.k == k2 && j.k >= 1 && c->ne[c->ndim - 2] == j.m && c->ne[c->ndim - 1] == j.n;
    bool b_same = true;
    for (int d = 0; d < a->ndim - 2; d++) {
        ok = ok && a->ne[d] == c->ne[d];
        b_same = b_same && b->ne[d] == a->ne[d];
        j.b_shared = j.b_shared && b->ne[d] == 1;
        j.nbatch *= a->ne[d];
    }
    if (!ok || (!b_same && !j.b_shared))
        return mm_shape_error("bmm", a, trans_a, b, trans_b, c);
    if (b_same)
        j.b_shared = false;
    if (j.nbatch == 0 || j.m == 0 || j.n == 0)
        return 0;
    int nth = ctx->nthreads;
    int64_t flops = j.nbatch * j.m * j.n * j.k;
    if (j.nbatch >= nth || flops < LIN_MIN_PARALLEL_FLOPS) {
        int tasks = flops < LIN_MIN_PARALLEL_FLOPS ? 1 : (int)(j.nbatch < nth ? j.nbatch : nth);
        eng_parallel(ctx, tasks, bmm_part, &j);
        return 0;
    }
    /* Fewer matrices than threads: give each product all the threads instead. */
    for (int64_t i = 0; i < j.nbatch; i++) {
        const float *pa = (const float *)((const char *)a->data + batch_off(a, i));
        const float *pb = (const float *)((const char *)b->data + (j.b_shared ? 0 : batch_off(b, i)));
        float *pc = (float *)((char *)c->data + batch_off(c, i));
        eng_gemm(ctx, trans_a, trans_b, j.m, j.n, j.k, alpha, pa, eng_tensor_ld(a), pb, eng_tensor_ld(b), 0.0f, pc,
                 eng_tensor_ld(c));
    }
    return 0;
}
