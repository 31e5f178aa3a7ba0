/* pool.c: workers that claim parts of a job with one atomic counter, spin briefly when idle, then sleep on a futex;
 * a worker that finds itself on the caller's CPU moves off it. */
#include "config.h" /* _GNU_SOURCE, for syscall() */
#include "engine/pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/error.h"

/* Idle polls before a worker sleeps: with a pause each, some hundreds of microseconds, longer
 * than the gap between two ops of a forward pass, far shorter than the gap between requests. */
#define POOL_SPINS 20000
/* Polls before a caller waiting for a part (claimed by a worker the kernel has descheduled)
 * starts yielding its core. */
#define POOL_WAIT_SPINS 2000

struct eng_pool {
    int nworkers;
    pthread_t *threads;
    /* the current job: written by the caller before it publishes the job */
    void (*fn)(void *arg, int ith, int nth);
    void *arg;
    _Atomic int nparts;       /* atomic: a worker done with its part reads it while the caller sets the next job's */
    uint32_t last;            /* the caller's job counter */
    _Atomic uint64_t claim;   /* (job << 32) | next unclaimed part */
    _Atomic int done;         /* parts of the current job finished */
    _Atomic uint32_t job;     /* futex word: the newest job's number */
    _Atomic int sleepers;
    _Atomic int stop;
    _Atomic int caller_cpu; /* where the caller was when it published the current job, or -1 */
    _Atomic long moves;     /* times a worker moved off the caller's CPU (eng_pool_moves) */
};

static inline void pool_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Claim and run parts of job j until none is left. fn, arg and nparts are read only after a
 * successful claim: the job cannot finish (and be replaced) while a claimed part is running. */
static void pool_work(struct eng_pool *p, uint32_t j)
{
    for (;;) {
        uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
        if ((uint32_t)(c >> 32) != j)
            return;
        uint32_t idx = (uint32_t)c;
        if (idx >= (uint32_t)atomic_load_explicit(&p->nparts, memory_order_relaxed))
            return; /* stale nparts can only make the exchange below fail */
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        p->fn(p->arg, (int)idx, atomic_load_explicit(&p->nparts, memory_order_relaxed));
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

/* The scheduler can leave a worker on the caller's CPU while the other CPUs idle: woken from
 * its futex next to the thread that woke it, and never pulled away, since the two take turns
 * (the caller's wait yields to it). The two threads then share one core for seconds: a
 * 2-thread GEMM ran at 43-57 GFLOP/s in such a process, 93-114 in one where they sat apart
 * (6272 x 64 x 256, the same binary run six times: sched_getcpu in every part showed which).
 * So a worker that sees the caller's CPU on taking a job moves: its affinity without that CPU
 * (the kernel migrates it at once), then its own affinity back, so it stays free to move. */
static void pool_move_off(struct eng_pool *p, const cpu_set_t *allowed)
{
    int here = sched_getcpu(), caller = atomic_load_explicit(&p->caller_cpu, memory_order_relaxed);
    if (here < 0 || here != caller || here >= CPU_SETSIZE || CPU_COUNT(allowed) < 2)
        return;
    cpu_set_t away = *allowed;
    CPU_CLR(here, &away);
    if (sched_setaffinity(0, sizeof away, &away) == 0) {
        sched_setaffinity(0, sizeof *allowed, allowed);
        atomic_fetch_add_explicit(&p->moves, 1, memory_order_relaxed);
    }
}

static void *pool_main(void *arg)
{
    struct eng_pool *p = arg;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        CPU_ZERO(&allowed);
    uint32_t seen = atomic_load_explicit(&p->job, memory_order_acquire);
    for (;;) {
        uint32_t j;
        int spins = 0;
        while ((j = atomic_load_explicit(&p->job, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&p->stop, memory_order_acquire))
                return NULL;
            if (++spins < POOL_SPINS) {
                pool_relax();
                continue;
            }
            atomic_fetch_add(&p->sleepers, 1);
            if (atomic_load(&p->job) == seen && !atomic_load(&p->stop))
                futex_wait(&p->job, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            spins = 0;
        }
        seen = j;
        pool_move_off(p, &allowed);
        pool_work(p, j);
    }
}

struct eng_pool *eng_pool_create(int nworkers)
{
    struct eng_pool *p = calloc(1, sizeof *p);
    if (!p || nworkers < 1) {
        free(p);
        eng_error(nworkers < 1 ? "thread pool: %d workers, need at least 1" : "thread pool: out of memory (%d)",
                  nworkers);
        return NULL;
    }
    atomic_store(&p->caller_cpu, -1);
    p->threads = calloc((size_t)nworkers, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        eng_error("thread pool: out of memory for %d workers", nworkers);
        return NULL;
    }
    for (int i = 0; i < nworkers; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0) {
            p->nworkers = i;
            eng_pool_destroy(p);
            eng_error("thread pool: cannot start worker %d of %d", i + 1, nworkers);
            return NULL;
        }
        p->nworkers = i + 1;
    }
    return p;
}

void eng_pool_destroy(struct eng_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->job, 1);
    futex_wake_all(&p->job);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p);
}

void eng_pool_run(struct eng_pool *p, int nparts, void (*fn)(void *arg, int ith, int nth), void *arg)
{
    if (nparts <= 0)
        return;
    uint32_t j = ++p->last;
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->nparts, nparts, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->caller_cpu, sched_getcpu(), memory_order_relaxed);
    atomic_store_explicit(&p->claim, (uint64_t)j << 32, memory_order_release);
    /* seq_cst store then load, against the worker's increment then load: either it sees the new
     * job before sleeping, or this sees it counted among the sleepers. */
    atomic_store(&p->job, j);
    if (atomic_load(&p->sleepers) > 0)
        futex_wake_all(&p->job);
    pool_work(p, j);
    for (int spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < nparts; spins++) {
        if (spins < POOL_WAIT_SPINS)
            pool_relax();
        else
            sched_yield();
    }
}

long eng_pool_moves(const struct eng_pool *p)
{
    return p ? atomic_load_explicit(&p->moves, memory_order_relaxed) : 0;
}
