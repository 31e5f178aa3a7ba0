/* Execution context: the threads an op may use and the scratch memory it may borrow.
 *
 *   struct eng_ctx ctx;
 *   if (eng_ctx_init(&ctx, 2, 16 << 20) < 0) die(eng_errmsg());   // 2 threads, 16 MiB scratch
 *   eng_conv2d(&ctx, &conv, &x, &y);
 *   eng_ctx_free(&ctx);
 *
 * Threading rule: the engine parallelises each op itself, splitting rows across
 * ctx->nthreads threads (engine/pool.h underneath, OpenMP for a context set up by hand;
 * kernels see only (ith, nth)), and calls OpenBLAS
 * from those threads with OpenBLAS's own threading fixed at 1, set once by eng_init().
 * So a worker running with nthreads = k uses exactly k cores, never k x OpenBLAS's default.
 *
 * Scratch: ops borrow workspace (im2col tiles, attention scores) with eng_ctx_scratch() and
 * give it back before they return; the arena is sized at creation, so no op mallocs.
 * A context is used by one thread (a worker) at a time.
 */
#ifndef SALIENT_ENGINE_CTX_H
#define SALIENT_ENGINE_CTX_H

#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"

struct eng_pool;
struct eng_profile;

struct eng_ctx {
    int nthreads;             /* threads each op splits its work over (>= 1) */
    struct eng_arena scratch; /* workspace borrowed by ops; empty between ops */
    struct eng_pool *pool;    /* owned: nthreads - 1 workers (engine/pool.h), or NULL (then OpenMP) */
    struct eng_profile *prof; /* not owned: per-layer times (engine/profile.h, bench only), or NULL */
};

/* Process-wide set-up, idempotent and thread-safe: fixes OpenBLAS to 1 thread (see above). */
void eng_init(void);

/* nthreads < 1 means 1. scratch_bytes may be 0 for ops that need none. Calls eng_init().
 * With nthreads > 1 starts nthreads - 1 pool workers (engine/pool.h), stopped by
 * eng_ctx_free; SALIENT_OPENMP set in the environment keeps OpenMP teams instead (for
 * comparison). Returns 0, or -1 with a message. */
int eng_ctx_init(struct eng_ctx *ctx, int nthreads, size_t scratch_bytes);
void eng_ctx_free(struct eng_ctx *ctx);

/* Run fn(arg, ith, nth) for ith in [0, nth) on the context's threads and wait for all.
 * nth is min(ctx->nthreads, max_tasks) (max_tasks < 1 means no cap), so an op with two rows
 * of work does not wake eight threads. fn must split its own work by (ith, nth). */
void eng_parallel(const struct eng_ctx *ctx, int max_tasks, void (*fn)(void *arg, int ith, int nth),
                  void *arg);

/* Split [0, n) into nth near-equal parts; part ith is [*begin, *end). */
void eng_split(int64_t n, int ith, int nth, int64_t *begin, int64_t *end);

#endif
