/* options.c: parsing salientd's flags; --help is generated from the same table. */
#include "server/options.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static const struct {
    const char *name;
    const char *arg;
    const char *help;
} flag_help[] = {
    {"port", "N", "TCP port to listen on (default 8080; 0 picks a free one, printed at start)"},
    {"host", "ADDR", "IPv4 address to bind (default 0.0.0.0, every interface)"},
    {"model-repo", "DIR", "model repository: one folder per model with manifest.json (default ./model-repo)"},
    {"threads", "N", "engine threads per inference worker (default: number of cores)"},
    {"http-threads", "N", "libmicrohttpd threads that parse and decode requests (default 2)"},
    {"help", NULL, "print this help and exit"},
    {"version", NULL, "print the version and exit"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: salientd [options]\n\n"
                 "salient's inference server: chest X-ray and face models over HTTP (KServe v2 and JSON).\n\n"
                 "options:\n");
    for (size_t i = 0; i < sizeof flag_help / sizeof flag_help[0]; i++) {
        char left[40];
        snprintf(left, sizeof left, "--%s%s%s", flag_help[i].name, flag_help[i].arg ? " " : "",
                 flag_help[i].arg ? flag_help[i].arg : "");
        fprintf(out, "  %-22s %s\n", left, flag_help[i].help);
    }
    fprintf(out, "\nEndpoints: GET /v2, /v2/health/live, /v2/health/ready. See docs/API.md.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int srv_options_parse(struct srv_options *o, int argc, char **argv, FILE *out, FILE *err)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},  {"host", required_argument, NULL, 'H'},
        {"model-repo", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"http-threads", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0},
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->port = 8080;
    o->host = "0.0.0.0";
    o->model_repo = "./model-repo";
    o->threads = ncpu > 0 && ncpu < 1024 ? (int)ncpu : 1;
    o->http_threads = 2;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_int(optarg, 0, 65535, &o->port) < 0) {
                fprintf(err, "salientd: --port must be 0..65535, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'H':
            o->host = optarg;
            break;
        case 'm':
            o->model_repo = optarg;
            break;
        case 't':
            if (parse_int(optarg, 1, 1024, &o->threads) < 0) {
                fprintf(err, "salientd: --threads must be 1..1024, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'T':
            if (parse_int(optarg, 1, 256, &o->http_threads) < 0) {
                fprintf(err, "salientd: --http-threads must be 1..256, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(out);
            return 1;
        case 'V':
            fprintf(out, "salientd %s\n", PACKAGE_VERSION);
            return 1;
        default:
            if (optopt)
                fprintf(err, "salientd: option '%s' needs a value or is unknown; see --help\n", argv[optind - 1]);
            else
                fprintf(err, "salientd: unknown option '%s'; see --help\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(err, "salientd: unexpected argument '%s'; see --help\n", argv[optind]);
        return 2;
    }
    return 0;
}
