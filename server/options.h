/* salientd's command-line options, with their defaults in one table.
 *
 *   struct srv_options o;
 *   int rc = srv_options_parse(&o, argc, argv, stdout, stderr);  // 0 run, 1 exit 0 (--help), 2 exit 2
 */
#ifndef SALIENT_SERVER_OPTIONS_H
#define SALIENT_SERVER_OPTIONS_H

#include <stdio.h>

struct srv_options {
    int port;               /* --port, default 8080 */
    const char *host;       /* --host, default 0.0.0.0 (all IPv4 interfaces) */
    const char *model_repo; /* --model-repo, default ./model-repo */
    int threads;            /* --threads: engine threads per worker, default: all cores */
    int http_threads;       /* --http-threads: libmicrohttpd's pool, default 2 */
};

/* Fill o from argv (o's defaults first). Returns 0 to run, 1 when --help/--version printed
 * (exit 0), 2 on a bad option with a message on err (exit 2). Strings borrow from argv. */
int srv_options_parse(struct srv_options *o, int argc, char **argv, FILE *out, FILE *err);

#endif
