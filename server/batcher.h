/* Dynamic batching: a model's bounded queue of jobs and the worker threads that run them.
 *
 *   struct srv_batcher *b = srv_batcher_start(model, &(struct srv_batch_opts){
 *       .max_batch = 8, .max_delay_us = 2000, .max_queue = 64, .workers = 1, .threads = 2});
 *   struct srv_job *j = ...;            // j->n preprocessed images at j->input, j->probs for the answer
 *   j->done = resume_connection;         // called on a worker thread when j is answered
 *   if (srv_batcher_submit(b, j) < 0)    // queue full or stopping: answer 503 yourself
 *       ...;
 *   srv_batcher_stop(b);                 // answers what is queued, then joins the workers
 *
 * A job is one request's images (1..max_batch). A worker takes the oldest job, then waits up
 * to max_delay_us after that job arrived for more work, packs whole jobs in arrival order
 * until the next would pass max_batch images, runs them as one batch through
 * mdl_model_run, and scatters the outputs back. A job whose deadline passes while it waits in
 * the queue is answered 504 without running. Workers never allocate per batch: each owns an
 * mdl_runner and an input buffer sized for max_batch at start.
 *
 * Threads: each worker's engine context uses `threads` cores; the default rule (server/
 * options.c) is workers x threads = cores, one worker per model, so a batch uses every core
 * and requests queue instead of fighting for cores.
 */
#ifndef SALIENT_SERVER_BATCHER_H
#define SALIENT_SERVER_BATCHER_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine/tensor.h"
#include "models/faceapi.h"
#include "models/model.h"

/* Running totals, kept by the caller so they outlive one loaded version of a model. */
struct srv_batch_stats {
    atomic_uint_fast64_t executions; /* batches run */
    atomic_uint_fast64_t inferences; /* images run */
    atomic_uint_fast64_t queue_us;   /* summed over jobs */
    atomic_uint_fast64_t compute_us; /* summed over batches */
};

struct srv_batch_opts {
    int max_batch;    /* images per batch, 1..model's max_batch */
    int max_delay_us; /* how long the oldest job may wait for company */
    int max_queue;    /* jobs waiting; one more is refused */
    int workers;      /* threads running batches */
    int threads;      /* engine threads per worker */
    struct srv_batch_stats *stats; /* updated as batches run; borrowed, may be NULL */
};

enum srv_job_status {
    SRV_JOB_OK = 0,
    SRV_JOB_TIMEOUT, /* deadline passed in the queue (504) */
    SRV_JOB_FAILED,  /* the forward pass failed (500; message in err) */
};

struct srv_job;

/* Called for each tensor the forward offers while it runs: `t` holds this job's rows only
 * (first dimension = job->n). Valid only during the call. */
typedef void (*srv_job_tap_fn)(struct srv_job *job, const char *name, const struct eng_tensor *t);

struct srv_job {
    /* Filled by the submitter. */
    int n;                  /* images, 1..max_batch */
    const float *input;     /* n * per-image floats, preprocessed NHWC (tensor models) */
    /* Models that take decoded images (mdl_model_takes_images: faces): n images, their options,
     * and n result lists whose .faces point at the job's own buffers. */
    const struct mdl_image *images;
    const struct mdl_face_opts *face_opts;
    struct mdl_faces *faces;
    float *probs;           /* n * nlabels, or NULL */
    float *logits;          /* n * nout, or NULL */
    srv_job_tap_fn tap;     /* optional */
    /* Optional: on the worker after a successful forward (outputs already copied into the job),
     * with the runner whose arenas are now free; returns 0, or -1 with a message (job fails). */
    int (*after)(struct srv_job *job, struct mdl_runner *r);
    uint64_t deadline_us;   /* srv_now_us() clock; 0: none */
    void (*done)(struct srv_job *job); /* on a worker thread, exactly once */
    void *user;

    /* Filled by the batcher before done(). */
    enum srv_job_status status;
    char err[256];
    uint64_t t_queued, t_started, t_finished; /* srv_now_us() */
    int batch_images;       /* images in the batch it ran in */

    struct srv_job *next;   /* queue link, the batcher's */
};

struct srv_batcher; /* opaque */

/* Microseconds on CLOCK_MONOTONIC. */
uint64_t srv_now_us(void);

/* Start o->workers threads for m (borrowed: must outlive the batcher). NULL with a message
 * (eng_errmsg) if a runner or a thread cannot be created. */
struct srv_batcher *srv_batcher_start(const struct mdl_model *m, const struct srv_batch_opts *o);

/* Queue j (j->n must be 1..max_batch: the caller checks and answers 400). Returns 0, or -1
 * when the queue is full or the batcher is stopping: j is not taken, done() is not called. */
int srv_batcher_submit(struct srv_batcher *b, struct srv_job *j);

/* Stop taking jobs, finish every queued one, join the workers, free b. */
void srv_batcher_stop(struct srv_batcher *b);

/* Jobs waiting now. */
int srv_batcher_queued(struct srv_batcher *b);
const struct srv_batch_opts *srv_batcher_opts(const struct srv_batcher *b);

#endif
