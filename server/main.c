/* main.c: salientd's entry point: options, model repository, HTTP daemon, signals. */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "models/repository.h"
#include "server/http.h"
#include "server/options.h"

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
    for (int i = 0; i < repo.nmodels; i++)
        fprintf(stderr, "salientd:   %s (family %s, version %s%s)\n", repo.models[i].name, repo.models[i].family,
                repo.models[i].version, repo.models[i].demo ? ", demo" : "");

    struct srv_http *http = srv_http_start(&opts, &repo);
    if (!http) {
        fprintf(stderr, "salientd: %s\n", eng_errmsg());
        mdl_repository_free(&repo);
        return 1;
    }
    fprintf(stderr, "salientd: listening on http://%s:%d\n", opts.host, srv_http_port(http));

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "salientd: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_http_set_ready(http, 0);
    srv_http_stop(http);
    mdl_repository_free(&repo);
    return 0;
}
