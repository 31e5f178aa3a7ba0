/* registry.c: the served models, their reference counts, reloads and per-name statistics. */
#include "config.h"
#include "server/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "models/manifest.h"
#include "models/repository.h"

struct srv_slot {
    char name[MDL_NAME_MAX];
    bool in_repo;             /* found by the last scan */
    struct srv_model *current; /* loaded version (the registry's reference), or NULL */
    char reason[512];         /* why not loaded */
    struct srv_slot_stats stats;
};

struct srv_registry {
    struct srv_options o;       /* copy; strings borrowed from the caller's options */
    pthread_mutex_t lock;       /* slots and current pointers */
    pthread_mutex_t control;    /* one load/unload/scan at a time */
    int nslots, cap;
    struct srv_slot **slots;
};

static const unsigned status_codes[SRV_NSTATUS] = SRV_STATUS_CODES;

int srv_status_index(unsigned status)
{
    for (int i = 0; i < SRV_NSTATUS; i++)
        if (status_codes[i] == status)
            return i;
    return SRV_NSTATUS;
}

/* The slot called name (lock held), created when create is set; NULL if absent or OOM. */
static struct srv_slot *slot_find(struct srv_registry *r, const char *name, bool create)
{
    for (int i = 0; i < r->nslots; i++)
        if (strcmp(r->slots[i]->name, name) == 0)
            return r->slots[i];
    if (!create)
        return NULL;
    if (r->nslots == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        struct srv_slot **s = realloc(r->slots, (size_t)cap * sizeof *s);
        if (!s)
            return NULL;
        r->slots = s;
        r->cap = cap;
    }
    struct srv_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    r->slots[r->nslots++] = s;
    return s;
}

void srv_model_release(struct srv_model *sm)
{
    if (!sm || atomic_fetch_sub(&sm->refs, 1) != 1)
        return;
    srv_batcher_stop(sm->batcher);
    mdl_model_free(sm->m);
    free(sm);
}

/* Load name's folder into a new version with its workers running. NULL with a message. */
static struct srv_model *build(struct srv_registry *r, struct srv_slot *slot)
{
    char dir[2048], path[2100];
    snprintf(dir, sizeof dir, "%s/%s", r->o.model_repo, slot->name);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    struct mdl_manifest mf;
    if (mdl_manifest_load(&mf, path, slot->name) < 0)
        return NULL;
    struct mdl_batching bt = mf.batching;
    mdl_manifest_free(&mf);
    int max_batch = bt.max_batch_size > 0 ? bt.max_batch_size : r->o.max_batch_size;

    struct srv_model *sm = calloc(1, sizeof *sm);
    if (!sm) {
        eng_error("out of memory");
        return NULL;
    }
    sm->slot = slot;
    atomic_init(&sm->refs, 1);
    sm->m = mdl_model_load(dir, slot->name, max_batch);
    if (!sm->m) {
        free(sm);
        return NULL;
    }
    struct srv_batch_opts bo = {
        .max_batch = sm->m->max_batch,
        .max_delay_us = bt.max_queue_delay_us > 0 ? bt.max_queue_delay_us : r->o.max_queue_delay_us,
        .max_queue = bt.max_queue_size > 0 ? bt.max_queue_size : r->o.max_queue_size,
        .workers = r->o.workers,
        .threads = r->o.threads,
        .stats = &slot->stats.batch,
    };
    sm->batcher = srv_batcher_start(sm->m, &bo);
    if (!sm->batcher) {
        mdl_model_free(sm->m);
        free(sm);
        return NULL;
    }
    return sm;
}

/* Build and swap in (control lock held). */
static int load_slot(struct srv_registry *r, struct srv_slot *slot)
{
    uint64_t t0 = srv_now_us();
    struct srv_model *sm = build(r, slot);
    if (!sm) {
        pthread_mutex_lock(&r->lock);
        if (!slot->current)
            snprintf(slot->reason, sizeof slot->reason, "%s", eng_errmsg());
        pthread_mutex_unlock(&r->lock);
        fprintf(stderr, "salientd: not loaded: %s\n", eng_errmsg());
        return -1;
    }
    const struct mdl_model *m = sm->m;
    fprintf(stderr,
            "salientd:   loaded %s (family %s, version %s%s; input %lldx%lldx%lld, %d labels, batch <= %d, "
            "%.1f MiB activations) in %.0f ms\n",
            m->manifest.name, m->manifest.family, m->manifest.version, m->manifest.demo ? ", demo" : "",
            (long long)m->in_h, (long long)m->in_w, (long long)m->in_c, m->manifest.nlabels, m->max_batch,
            (double)m->act_bytes / (1 << 20), (double)(srv_now_us() - t0) / 1e3);
    pthread_mutex_lock(&r->lock);
    struct srv_model *old = slot->current;
    slot->current = sm;
    slot->reason[0] = '\0';
    pthread_mutex_unlock(&r->lock);
    srv_model_release(old);
    return 0;
}

/* Rescan the repository (control lock held): mark what is there, create slots for new names.
 * Returns the scan (caller frees) or -1. */
static int scan(struct srv_registry *r, struct mdl_repository *repo)
{
    int rc = mdl_repository_scan(repo, r->o.model_repo);
    if (rc < 0)
        return -1;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nslots; i++)
        r->slots[i]->in_repo = false;
    for (int i = 0; i < repo->nmodels; i++) {
        struct srv_slot *s = slot_find(r, repo->models[i].name, true);
        if (s)
            s->in_repo = true;
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

struct srv_registry *srv_registry_open(const struct srv_options *o)
{
    struct srv_registry *r = calloc(1, sizeof *r);
    if (!r) {
        eng_error("out of memory");
        return NULL;
    }
    r->o = *o;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->control, NULL);
    struct mdl_repository repo;
    if (scan(r, &repo) < 0) {
        mdl_repository_free(&repo);
        srv_registry_close(r);
        return NULL;
    }
    for (int i = 0; i < repo.nproblems; i++)
        fprintf(stderr, "salientd: skipped: %s\n", repo.problems[i]);
    fprintf(stderr, "salientd: %d model(s) in %s\n", repo.nmodels, o->model_repo);
    pthread_mutex_lock(&r->control);
    for (int i = 0; i < repo.nmodels; i++) {
        pthread_mutex_lock(&r->lock);
        struct srv_slot *s = slot_find(r, repo.models[i].name, false);
        pthread_mutex_unlock(&r->lock);
        if (s)
            load_slot(r, s);
    }
    pthread_mutex_unlock(&r->control);
    mdl_repository_free(&repo);
    return r;
}

void srv_registry_close(struct srv_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nslots; i++) {
        srv_model_release(r->slots[i]->current);
        free(r->slots[i]);
    }
    free(r->slots);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->control);
    free(r);
}

struct srv_model *srv_registry_acquire(struct srv_registry *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    struct srv_slot *s = slot_find(r, name, false);
    struct srv_model *sm = s ? s->current : NULL;
    if (sm)
        atomic_fetch_add(&sm->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return sm;
}

enum srv_model_state srv_registry_state(struct srv_registry *r, const char *name, char *reason, size_t len)
{
    pthread_mutex_lock(&r->lock);
    struct srv_slot *s = slot_find(r, name, false);
    enum srv_model_state st = !s ? SRV_MODEL_UNKNOWN
                              : s->current ? SRV_MODEL_READY
                              : s->in_repo ? SRV_MODEL_UNAVAILABLE
                                           : SRV_MODEL_UNKNOWN;
    if (reason && len)
        snprintf(reason, len, "%s", s && st == SRV_MODEL_UNAVAILABLE ? (s->reason[0] ? s->reason : "unloaded") : "");
    pthread_mutex_unlock(&r->lock);
    return st;
}

struct srv_slot_stats *srv_registry_stats(struct srv_registry *r, const char *name)
{
    pthread_mutex_lock(&r->lock);
    struct srv_slot *s = slot_find(r, name, false);
    pthread_mutex_unlock(&r->lock);
    return s ? &s->stats : NULL;
}

int srv_registry_load(struct srv_registry *r, const char *name, bool *notfound)
{
    *notfound = false;
    pthread_mutex_lock(&r->control);
    struct mdl_repository repo;
    int rc = scan(r, &repo);
    bool found = rc == 0 && mdl_repository_find(&repo, name) != NULL;
    mdl_repository_free(&repo);
    if (rc < 0) {
        pthread_mutex_unlock(&r->control);
        return -1;
    }
    if (!found) {
        *notfound = true;
        pthread_mutex_unlock(&r->control);
        return eng_error("model '%s' is not in the repository %s (or its manifest is invalid)", name,
                         r->o.model_repo);
    }
    pthread_mutex_lock(&r->lock);
    struct srv_slot *s = slot_find(r, name, false);
    pthread_mutex_unlock(&r->lock);
    rc = s ? load_slot(r, s) : eng_error("out of memory");
    pthread_mutex_unlock(&r->control);
    return rc;
}

int srv_registry_unload(struct srv_registry *r, const char *name)
{
    pthread_mutex_lock(&r->control);
    pthread_mutex_lock(&r->lock);
    struct srv_slot *s = slot_find(r, name, false);
    struct srv_model *old = s ? s->current : NULL;
    if (old) {
        s->current = NULL;
        snprintf(s->reason, sizeof s->reason, "unloaded");
    }
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&r->control);
    if (!old)
        return eng_error("model '%s' is not loaded", name);
    fprintf(stderr, "salientd: unloaded %s\n", name);
    srv_model_release(old);
    return 0;
}

json_t *srv_registry_index(struct srv_registry *r)
{
    pthread_mutex_lock(&r->control);
    struct mdl_repository repo;
    int rc = scan(r, &repo);
    mdl_repository_free(&repo);
    pthread_mutex_unlock(&r->control);
    json_t *list = json_array();
    if (rc < 0 || !list)
        return list;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nslots; i++) {
        struct srv_slot *s = r->slots[i];
        if (!s->in_repo && !s->current)
            continue;
        json_t *e = json_pack("{s:s, s:s}", "name", s->name, "state", s->current ? "READY" : "UNAVAILABLE");
        if (!e)
            continue;
        if (s->current)
            json_object_set_new(e, "version", json_string(s->current->m->manifest.version));
        else
            json_object_set_new(e, "reason", json_string(s->reason[0] ? s->reason : "unloaded"));
        json_array_append_new(list, e);
    }
    pthread_mutex_unlock(&r->lock);
    return list;
}

bool srv_registry_all_ready(struct srv_registry *r)
{
    pthread_mutex_lock(&r->lock);
    bool ready = true;
    for (int i = 0; i < r->nslots; i++)
        if (r->slots[i]->in_repo && !r->slots[i]->current)
            ready = false;
    pthread_mutex_unlock(&r->lock);
    return ready;
}

void srv_registry_foreach(struct srv_registry *r,
                          void (*fn)(void *user, const char *name, struct srv_slot_stats *st,
                                     const struct srv_model *sm),
                          void *user)
{
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nslots; i++)
        fn(user, r->slots[i]->name, &r->slots[i]->stats, r->slots[i]->current);
    pthread_mutex_unlock(&r->lock);
}
