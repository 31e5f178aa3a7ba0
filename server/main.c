/* main.c: salientd's entry point: options, model repository, HTTP daemon, signals. */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "models/model.h"
#include "models/repository.h"
#include "server/http.h"
#include "server/options.h"

static void free_models(struct mdl_model **models, int n)
{
    for (int i = 0; i < n; i++)
        mdl_model_free(models[i]);
    free(models);
}

int main(int argc, char **argv)
{
    struct srv_options opts;
    int rc = srv_options_parse(&opts, argc, argv, stdout, stderr);
    if (rc == 1)
        return 0;
    if (rc == 2)
        return 2;

    /* Block the stop signals before any thread starts so that they all inherit the mask
     * and only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    eng_init();

    struct mdl_repository repo;
    if (mdl_repository_scan(&repo, opts.model_repo) < 0) {
        fprintf(stderr, "salientd: %s\n", eng_errmsg());
        mdl_repository_free(&repo);
        return 1;
    }
    for (int i = 0; i < repo.nproblems; i++)
        fprintf(stderr, "salientd: skipped: %s\n", repo.problems[i]);
    fprintf(stderr, "salientd: %d model(s) in %s\n", repo.nmodels, opts.model_repo);

    /* Load every model now: weights mapped and prepared, arenas measured. A model that fails
     * is skipped with its reason; the others are served. */
    struct mdl_model **models = calloc((size_t)(repo.nmodels ? repo.nmodels : 1), sizeof *models);
    int nloaded = 0;
    if (!models) {
        fprintf(stderr, "salientd: out of memory\n");
        mdl_repository_free(&repo);
        return 1;
    }
    for (int i = 0; i < repo.nmodels; i++) {
        const struct mdl_manifest *mf = &repo.models[i];
        char dir[2048];
        snprintf(dir, sizeof dir, "%s/%s", opts.model_repo, mf->name);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct mdl_model *m = mdl_model_load(dir, mf->name, 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (!m) {
            fprintf(stderr, "salientd: skipped: %s\n", eng_errmsg());
            continue;
        }
        fprintf(stderr,
                "salientd:   loaded %s (family %s, version %s%s; input %lldx%lldx%lld, %d labels, batch <= %d, "
                "%.1f MiB activations) in %.0f ms\n",
                m->manifest.name, m->manifest.family, m->manifest.version, m->manifest.demo ? ", demo" : "",
                (long long)m->in_h, (long long)m->in_w, (long long)m->in_c, m->manifest.nlabels, m->max_batch,
                (double)m->act_bytes / (1 << 20),
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        models[nloaded++] = m;
    }

    struct srv_http *http = srv_http_start(&opts, nloaded);
    if (!http) {
        fprintf(stderr, "salientd: %s\n", eng_errmsg());
        free_models(models, nloaded);
        mdl_repository_free(&repo);
        return 1;
    }
    fprintf(stderr, "salientd: listening on http://%s:%d\n", opts.host, srv_http_port(http));

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "salientd: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_http_set_ready(http, 0);
    srv_http_stop(http);
    free_models(models, nloaded);
    mdl_repository_free(&repo);
    return 0;
}
