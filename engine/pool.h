/* Thread pool behind eng_parallel: parts handed out first come, first served, so a descheduled thread delays nobody.
 *
 *   struct eng_pool *p = eng_pool_create(1);       // 1 worker + the calling thread = 2 threads
 *   eng_pool_run(p, 2, fn, arg);                    // fn(arg, 0, 2) and fn(arg, 1, 2), each exactly once
 *   eng_pool_destroy(p);
 *
 * Why not an OpenMP parallel region: its closing barrier waits for every thread of the team,
 * including one the kernel has descheduled because the cores are shared (other processes,
 * builds, a training job). Each of the few hundred ops of a forward pass then waits a
 * scheduler slice, and a 2-thread batch-1 pass ran 3x slower than a 1-thread one on this
 * loaded machine. Here a job is nparts parts claimed one at a time with an atomic counter by
 * whichever threads are awake, the caller included; the job is over when every part is done,
 * so a worker that wakes late finds nothing left and goes back to waiting, costing nothing.
 * Part i still gets (ith = i, nth = nparts) and runs exactly once, so kernels that split work
 * and scratch by (ith, nth) are unchanged. Idle workers spin briefly (ops follow each other
 * within microseconds in a forward pass), then sleep on a futex. A worker that takes a job on
 * the CPU the caller published it from moves off that CPU (pool.c: the scheduler had left both
 * on one core for whole runs, halving a 2-thread pass).
 */
#ifndef SALIENT_ENGINE_POOL_H
#define SALIENT_ENGINE_POOL_H

struct eng_pool;

/* nworkers >= 1 threads besides the caller. Returns NULL with a message on failure. */
struct eng_pool *eng_pool_create(int nworkers);

/* Stops and joins the workers; NULL is fine. */
void eng_pool_destroy(struct eng_pool *p);

/* Run fn(arg, i, nparts) for i in [0, nparts) across the caller and the workers; returns when
 * all are done. One caller at a time per pool. */
void eng_pool_run(struct eng_pool *p, int nparts, void (*fn)(void *arg, int ith, int nth), void *arg);

/* How many times a worker has moved off the caller's CPU (0 for NULL): for tests and bench/. */
long eng_pool_moves(const struct eng_pool *p);

#endif
