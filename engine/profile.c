/* profile.c: per-layer wall time samples for bench/ (engine/profile.h). */
#include "engine/profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/error.h"

struct eng_profile {
    int n, cap;
    struct eng_profile_entry *e;
};

struct eng_profile *eng_profile_new(void)
{
    struct eng_profile *p = calloc(1, sizeof *p);
    if (!p)
        eng_error("profile: out of memory");
    return p;
}

void eng_profile_free(struct eng_profile *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        free(p->e[i].samples);
    free(p->e);
    free(p);
}

double eng_profile_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void eng_profile_add(struct eng_profile *p, const char *name, const char *kind, int64_t batch, double seconds,
                     double flops)
{
    int i = 0;
    while (i < p->n && !(p->e[i].batch == batch && strcmp(p->e[i].name, name) == 0))
        i++;
    if (i == p->n) {
        if (p->n == p->cap) {
            int cap = p->cap ? 2 * p->cap : 64;
            struct eng_profile_entry *e = realloc(p->e, (size_t)cap * sizeof *e);
            if (!e)
                return;
            p->e = e;
            p->cap = cap;
        }
        struct eng_profile_entry *e = &p->e[p->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", name);
        snprintf(e->kind, sizeof e->kind, "%s", kind);
        e->batch = batch;
        e->flops = flops;
    }
    struct eng_profile_entry *e = &p->e[i];
    if ((e->nsamples & (e->nsamples - 1)) == 0) { /* grow at 0, 1, 2, 4, ... */
        double *s = realloc(e->samples, (size_t)(e->nsamples ? 2 * e->nsamples : 1) * sizeof *s);
        if (!s)
            return;
        e->samples = s;
    }
    e->samples[e->nsamples++] = seconds;
}

int eng_profile_count(const struct eng_profile *p)
{
    return p->n;
}

const struct eng_profile_entry *eng_profile_entry(const struct eng_profile *p, int i)
{
    return &p->e[i];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double eng_profile_median(const struct eng_profile_entry *e)
{
    if (e->nsamples == 0)
        return 0.0;
    double *s = malloc((size_t)e->nsamples * sizeof *s);
    if (!s)
        return e->samples[0];
    memcpy(s, e->samples, (size_t)e->nsamples * sizeof *s);
    qsort(s, (size_t)e->nsamples, sizeof *s, cmp_double);
    double m = e->nsamples % 2 ? s[e->nsamples / 2] : 0.5 * (s[e->nsamples / 2 - 1] + s[e->nsamples / 2]);
    free(s);
    return m;
}
