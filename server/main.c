/* main.c: salientd's entry point: options, model registry, HTTP daemon, signals, drain. */
#include "config.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "server/http.h"
#include "server/options.h"
#include "server/registry.h"

/* OpenMP threads that finish a parallel region spin for a while before sleeping (libgomp's
 * default), which is right for one program owning the machine and wrong for a server whose
 * models each have a team of threads next to the HTTP threads: measured under load, spinning
 * cost up to 20x the CPU per image. libgomp reads OMP_WAIT_POLICY when it is loaded, before
 * main, so salientd re-executes itself once with "passive" unless the variable is set
 * (set it to "active" to keep spinning). */
static void ensure_passive_omp(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    /* If that fails, run on with libgomp's default. */
}

int main(int argc, char **argv)
{
    ensure_passive_omp(argv);
    /* A request's large buffers (its body, decoded image, preprocessed tensor, answer) are
     * allocated and freed on several threads. glibc raises its mmap threshold to the size of
     * the largest block freed (up to 32 MiB), after which such buffers come from per-thread
     * arenas that keep the memory once freed: after 3 minutes of bench/soak.py (32 clients,
     * faces photos and attention answers queued) salientd's RSS was 716 MiB once the load had
     * stopped against 570 MiB after the warm-up. A fixed threshold keeps blocks of 128 KiB and
     * more in their own mappings, returned to the system when freed (the same run: 555 and
     * 556 MiB; 10 minutes: 553.9 -> 554.7 MiB at rest); the cost is an mmap per large buffer,
     * small next to inference. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    struct srv_options opts;
    int rc = srv_options_parse(&opts, argc, argv, stdout, stderr);
    if (rc != 0) {
        srv_options_free(&opts);
        return rc == 1 ? 0 : 2;
    }

    /* Block the stop signals before any thread starts so that they all inherit the mask
     * and only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    eng_init();

    /* Load every model now: weights mapped and prepared, arenas measured, workers started.
     * A model that fails is reported and kept as unavailable; the others are served. */
    struct srv_registry *registry = srv_registry_open(&opts);
    if (!registry) {
        fprintf(stderr, "salientd: %s\n", eng_errmsg());
        srv_options_free(&opts);
        return 1;
    }
    struct srv_http *http = srv_http_start(&opts, registry);
    if (!http) {
        fprintf(stderr, "salientd: %s\n", eng_errmsg());
        srv_registry_close(registry);
        srv_options_free(&opts);
        return 1;
    }
    fprintf(stderr, "salientd: listening on http://%s:%d (%d worker(s) x %d engine thread(s) per model)\n",
            opts.host, srv_http_port(http), opts.workers, opts.threads);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "salientd: %s received: not ready, finishing accepted requests (up to %d s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", opts.exit_timeout);
    if (srv_http_drain(http, opts.exit_timeout) < 0) {
        /* Requests still parked on a batcher cannot be torn down safely: leave now. */
        fprintf(stderr, "salientd: --exit-timeout passed with requests unanswered; exiting\n");
        _Exit(0);
    }
    srv_http_stop(http);
    srv_registry_close(registry);
    srv_options_free(&opts);
    fprintf(stderr, "salientd: stopped\n");
    return 0;
}
