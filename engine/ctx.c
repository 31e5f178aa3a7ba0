/* ctx.c: thread fan-out for ops (OpenMP) and the OpenBLAS threading rule. */
#include "config.h"
#include "engine/ctx.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/error.h"
#include "engine/pool.h"

static pthread_once_t eng_once = PTHREAD_ONCE_INIT;

static void eng_init_once(void)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    /* Parallelism comes from our own row split; a threaded sgemm inside each of our
     * threads would oversubscribe the cores. */
    openblas_set_num_threads(1);
#endif
}

void eng_init(void)
{
    pthread_once(&eng_once, eng_init_once);
}

int eng_ctx_init(struct eng_ctx *ctx, int nthreads, size_t scratch_bytes)
{
    eng_init();
    ctx->nthreads = nthreads < 1 ? 1 : nthreads;
    ctx->pool = NULL;
    ctx->prof = NULL;
    if (eng_arena_init(&ctx->scratch, "scratch", scratch_bytes) < 0)
        return -1;
    if (ctx->nthreads > 1 && !getenv("SALIENT_OPENMP") && !(ctx->pool = eng_pool_create(ctx->nthreads - 1))) {
        eng_arena_free(&ctx->scratch);
        return -1;
    }
    return 0;
}

void eng_ctx_free(struct eng_ctx *ctx)
{
    eng_arena_free(&ctx->scratch);
    eng_pool_destroy(ctx->pool);
    ctx->pool = NULL;
}

void eng_parallel(const struct eng_ctx *ctx, int max_tasks, void (*fn)(void *arg, int ith, int nth),
                  void *arg)
{
    int nth = ctx->nthreads;
    if (max_tasks >= 1 && max_tasks < nth)
        nth = max_tasks;
    if (nth <= 1) {
        fn(arg, 0, 1);
        return;
    }
    if (ctx->pool) {
        eng_pool_run(ctx->pool, nth, fn, arg);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
    {
        fn(arg, omp_get_thread_num(), omp_get_num_threads());
    }
#else
    for (int i = 0; i < nth; i++)
        fn(arg, i, nth);
#endif
}

void eng_split(int64_t n, int ith, int nth, int64_t *begin, int64_t *end)
{
    int64_t q = n / nth, r = n % nth;
    *begin = ith * q + (ith < r ? ith : r);
    *end = *begin + q + (ith < r ? 1 : 0);
}
