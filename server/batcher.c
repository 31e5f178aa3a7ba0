/* batcher.c: per-model job queue, batch formation and worker threads (see batcher.h). */
#include "config.h"
#include "server/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/error.h"

struct worker {
    struct srv_batcher *b;
    pthread_t thread;
    bool started;
    struct mdl_runner runner;
    float *input;  /* max_batch images */
    float *probs;  /* max_batch * nlabels */
    float *logits; /* max_batch * nout */
    /* Image-taking models: the batch's images, options and result lists. */
    struct mdl_image *images;
    struct mdl_face_opts *face_opts;
    struct mdl_faces *faces;
    /* The batch being run, for the tap callback. */
    struct srv_job *batch;
};

struct srv_batcher {
    const struct mdl_model *m;
    struct srv_batch_opts o;
    size_t per_image; /* floats of one preprocessed image */

    pthread_mutex_t lock;
    pthread_cond_t wake; /* a job arrived, or stopping */
    struct srv_job *head, *tail;
    int queued;
    bool stopping;

    struct srv_batch_stats own_stats; /* when the caller keeps none */
    struct srv_batch_stats *stats;

    int nworkers;
    struct worker *workers;
};

uint64_t srv_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timespec abs_time_in_us(uint64_t us)
{
    /* pthread_cond_timedwait uses the condition's clock, set to CLOCK_MONOTONIC below. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + us * 1000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

static struct srv_job *pop(struct srv_batcher *b)
{
    struct srv_job *j = b->head;
    b->head = j->next;
    if (!b->head)
        b->tail = NULL;
    j->next = NULL;
    b->queued--;
    return j;
}

static void finish(struct srv_job *j, enum srv_job_status st, const char *err)
{
    j->status = st;
    j->t_finished = srv_now_us();
    if (err)
        snprintf(j->err, sizeof j->err, "%s", err);
    j->done(j);
}

/* Hand each job of the running batch its own rows of t. */
static void batch_tap(void *user, const char *name, const struct eng_tensor *t)
{
    struct worker *w = user;
    int64_t off = 0;
    for (struct srv_job *j = w->batch; j; j = j->next) {
        if (j->tap) {
            struct eng_tensor rows = eng_tensor_slice(t, 0, off, j->n);
            j->tap(j, name, &rows);
        }
        off += j->n;
    }
}

/* Take the next batch off the queue (lock held): whole jobs in arrival order up to max_batch
 * images, after giving the oldest job up to max_delay_us to gather company. Expired jobs are
 * answered 504 on the way. NULL when stopping with an empty queue. */
static struct srv_job *take_batch(struct srv_batcher *b, int *nimages)
{
    for (;;) {
        while (!b->head && !b->stopping)
            pthread_cond_wait(&b->wake, &b->lock);
        if (!b->head)
            return NULL;
        /* Wait for company while the queue holds fewer images than a batch. */
        while (!b->stopping && b->head) {
            int have = 0;
            for (struct srv_job *j = b->head; j && have < b->o.max_batch; j = j->next)
                have += j->n;
            uint64_t waited = srv_now_us() - b->head->t_queued;
            if (have >= b->o.max_batch || waited >= (uint64_t)b->o.max_delay_us)
                break;
            struct timespec until = abs_time_in_us((uint64_t)b->o.max_delay_us - waited);
            pthread_cond_timedwait(&b->wake, &b->lock, &until);
        }
        if (!b->head)
            continue; /* another worker took it */
        struct srv_job *first = NULL, *last = NULL;
        int n = 0;
        uint64_t now = srv_now_us();
        while (b->head && n + b->head->n <= b->o.max_batch) {
            struct srv_job *j = pop(b);
            j->t_started = now;
            atomic_fetch_add(&b->stats->queue_us, now - j->t_queued);
            if (j->deadline_us && now > j->deadline_us) {
                /* Answer outside the lock: done() may take the connection's locks. */
                pthread_mutex_unlock(&b->lock);
                finish(j, SRV_JOB_TIMEOUT, "request timed out waiting in the queue");
                pthread_mutex_lock(&b->lock);
                continue;
            }
            if (last)
                last->next = j;
            else
                first = j;
            last = j;
            n += j->n;
        }
        if (first) {
            *nimages = n;
            return first;
        }
    }
}

static void run_batch(struct worker *w, struct srv_job *batch, int n)
{
    struct srv_batcher *b = w->b;
    const struct mdl_model *m = b->m;
    int nl = m->manifest.nlabels;
    int64_t no = m->nout;
    int off = 0;
    bool want_taps = false, images = mdl_model_takes_images(m);
    for (struct srv_job *j = batch; j; j = j->next) {
        if (images) {
            memcpy(w->images + off, j->images, (size_t)j->n * sizeof *w->images);
            memcpy(w->face_opts + off, j->face_opts, (size_t)j->n * sizeof *w->face_opts);
            memcpy(w->faces + off, j->faces, (size_t)j->n * sizeof *w->faces);
        } else {
            memcpy(w->input + (size_t)off * b->per_image, j->input, (size_t)j->n * b->per_image * sizeof(float));
        }
        off += j->n;
        want_taps |= j->tap != NULL;
    }
    w->batch = batch;
    struct mdl_output out = {
        .logits = w->logits,
        .probs = nl > 0 ? w->probs : NULL,
        .tap = want_taps ? batch_tap : NULL,
        .tap_user = w,
    };
    uint64_t t0 = srv_now_us();
    int rc = images ? mdl_model_run_images(m, &w->runner, w->images, w->face_opts, n, w->faces)
                    : mdl_model_run(m, &w->runner, w->input, n, &out);
    uint64_t t1 = srv_now_us();
    const char *err = rc < 0 ? eng_errmsg() : NULL;
    char msg[256];
    if (err)
        snprintf(msg, sizeof msg, "%s", err);

    atomic_fetch_add(&b->stats->executions, 1);
    atomic_fetch_add(&b->stats->inferences, (uint64_t)n);
    atomic_fetch_add(&b->stats->compute_us, t1 - t0);

    off = 0;
    for (struct srv_job *j = batch; j;) {
        struct srv_job *next = j->next;
        j->next = NULL;
        j->batch_images = n;
        if (rc == 0 && images) {
            /* The faces are already in the job's buffers; the counts come back here. */
            memcpy(j->faces, w->faces + off, (size_t)j->n * sizeof *j->faces);
        } else if (rc == 0) {
            if (j->probs && nl > 0)
                memcpy(j->probs, w->probs + (size_t)off * (size_t)nl, (size_t)j->n * (size_t)nl * sizeof(float));
            if (j->logits)
                memcpy(j->logits, w->logits + (size_t)off * (size_t)no, (size_t)j->n * (size_t)no * sizeof(float));
        }
        off += j->n;
        if (rc == 0 && j->after && j->after(j, &w->runner) < 0) {
            snprintf(msg, sizeof msg, "%s", eng_errmsg());
            finish(j, SRV_JOB_FAILED, msg);
        } else {
            finish(j, rc == 0 ? SRV_JOB_OK : SRV_JOB_FAILED, rc == 0 ? NULL : msg);
        }
        j = next;
    }
    w->batch = NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct srv_batcher *b = w->b;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        int n = 0;
        struct srv_job *batch = take_batch(b, &n);
        if (!batch)
            break;
        pthread_mutex_unlock(&b->lock);
        run_batch(w, batch, n);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static void free_worker(struct worker *w)
{
    mdl_runner_free(&w->runner);
    free(w->input);
    free(w->probs);
    free(w->logits);
    free(w->images);
    free(w->face_opts);
    free(w->faces);
}

static void stop_workers(struct srv_batcher *b)
{
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < b->nworkers; i++) {
        if (b->workers[i].started)
            pthread_join(b->workers[i].thread, NULL);
        free_worker(&b->workers[i]);
    }
}

static void destroy(struct srv_batcher *b)
{
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    free(b->workers);
    free(b);
}

struct srv_batcher *srv_batcher_start(const struct mdl_model *m, const struct srv_batch_opts *o)
{
    if (o->max_batch < 1 || o->max_batch > m->max_batch || o->workers < 1 || o->max_queue < 1) {
        eng_error("model '%s': batch %d (model allows 1..%d), workers %d, queue %d", m->manifest.name,
                  o->max_batch, m->max_batch, o->workers, o->max_queue);
        return NULL;
    }
    struct srv_batcher *b = calloc(1, sizeof *b);
    struct worker *ws = calloc((size_t)o->workers, sizeof *ws);
    if (!b || !ws) {
        free(b);
        free(ws);
        eng_error("out of memory");
        return NULL;
    }
    b->m = m;
    b->o = *o;
    if (b->o.threads < 1)
        b->o.threads = 1;
    b->per_image = (size_t)(m->in_h * m->in_w * m->in_c);
    b->workers = ws;
    b->stats = o->stats ? o->stats : &b->own_stats;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->wake, &ca);
    pthread_condattr_destroy(&ca);

    size_t mb = (size_t)o->max_batch;
    for (int i = 0; i < o->workers; i++) {
        struct worker *w = &ws[i];
        w->b = b;
        b->nworkers = i + 1;
        if (mdl_runner_init(&w->runner, m, b->o.threads) < 0)
            goto fail;
        size_t in_floats = mb * b->per_image;
        w->input = malloc((in_floats ? in_floats : 1) * sizeof(float));
        w->probs = malloc(mb * (size_t)(m->manifest.nlabels > 0 ? m->manifest.nlabels : 1) * sizeof(float));
        w->logits = malloc(mb * (size_t)(m->nout > 0 ? m->nout : 1) * sizeof(float));
        if (mdl_model_takes_images(m)) {
            w->images = calloc(mb, sizeof *w->images);
            w->face_opts = calloc(mb, sizeof *w->face_opts);
            w->faces = calloc(mb, sizeof *w->faces);
            if (!w->images || !w->face_opts || !w->faces) {
                eng_error("out of memory for model '%s' worker buffers", m->manifest.name);
                goto fail;
            }
        }
        if (!w->input || !w->probs || !w->logits) {
            eng_error("out of memory for model '%s' worker buffers", m->manifest.name);
            goto fail;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            eng_error("cannot start a worker thread for model '%s'", m->manifest.name);
            goto fail;
        }
        w->started = true;
    }
    return b;
fail:
    stop_workers(b);
    destroy(b);
    return NULL;
}

int srv_batcher_submit(struct srv_batcher *b, struct srv_job *j)
{
    pthread_mutex_lock(&b->lock);
    if (b->stopping || b->queued >= b->o.max_queue) {
        pthread_mutex_unlock(&b->lock);
        return -1;
    }
    j->next = NULL;
    j->status = SRV_JOB_OK;
    j->err[0] = '\0';
    j->t_queued = srv_now_us();
    if (b->tail)
        b->tail->next = j;
    else
        b->head = j;
    b->tail = j;
    b->queued++;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

void srv_batcher_stop(struct srv_batcher *b)
{
    if (!b)
        return;
    /* Workers drain the queue before they see stopping with an empty queue. */
    stop_workers(b);
    destroy(b);
}

int srv_batcher_queued(struct srv_batcher *b)
{
    pthread_mutex_lock(&b->lock);
    int n = b->queued;
    pthread_mutex_unlock(&b->lock);
    return n;
}

const struct srv_batch_opts *srv_batcher_opts(const struct srv_batcher *b)
{
    return &b->o;
}
