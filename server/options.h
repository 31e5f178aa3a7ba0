/* salientd's settings: command-line flags, an optional JSON config file, and environment
 * variables for secrets, with every default in one table (options.c) that --help prints.
 *
 *   struct srv_options o;
 *   int rc = srv_options_parse(&o, argc, argv, stdout, stderr);  // 0 run, 1 exit 0 (--help), 2 exit 2
 *   ...
 *   srv_options_free(&o);
 *
 * Precedence: flags over the config file (--config FILE: a JSON object whose keys are the
 * flag names without dashes, e.g. {"port": 9000, "max-batch-size": 16}) over defaults.
 * The API key may also come from the environment (SALIENT_API_KEY) so it stays out of `ps`.
 */
#ifndef SALIENT_SERVER_OPTIONS_H
#define SALIENT_SERVER_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

struct srv_options {
    int port;                /* --port, default 8080 (0: any free port) */
    const char *host;        /* --host, default 0.0.0.0 */
    const char *model_repo;  /* --model-repo, default ./model-repo */
    int workers;             /* --workers: inference threads per model, default 1 */
    int threads;             /* --threads: engine threads per worker, default cores / workers */
    int http_threads;        /* --http-threads: decode/preprocess threads, default 2 */
    int max_batch_size;      /* --max-batch-size, default 8 (a manifest's batching overrides) */
    int max_queue_delay_us;  /* --max-queue-delay-us, default 2000 */
    int max_queue_size;      /* --max-queue-size (jobs per model), default 64 */
    int request_timeout_ms;  /* --request-timeout-ms (queue wait -> 504), default 30000 */
    size_t max_body_bytes;   /* --max-body-bytes, default 32 MiB */
    size_t max_pixels;       /* --max-pixels (width x height), default 50 000 000 */
    int max_connections;     /* --max-connections, default 1000 */
    int connection_timeout;  /* --connection-timeout seconds: idle, or to send a body; default 60 */
    int exit_timeout;        /* --exit-timeout seconds to finish work after SIGTERM, default 30 */
    const char *api_key;     /* --api-key or $SALIENT_API_KEY; NULL: no auth */
    const char *cors_origins;/* --cors-origins "https://a,https://b" or "*"; NULL: no CORS */
    const char *web_root;    /* --web-root DIR: static files served at / (the demo frontend) */
    const char *config;      /* --config FILE */
    void *owned;             /* the config file's JSON, which strings above may borrow from */
};

/* Fill o (defaults, then --config, then flags). Returns 0 to run, 1 when --help/--version
 * printed (exit 0), 2 on a bad option or config with a message on err (exit 2). Strings
 * borrow from argv or from o->owned; free with srv_options_free. */
int srv_options_parse(struct srv_options *o, int argc, char **argv, FILE *out, FILE *err);
void srv_options_free(struct srv_options *o);

#endif
