/* options.c: salientd's settings from flags and a JSON config file, --help from the same table. */
#include "config.h"
#include "server/options.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind { K_INT, K_SIZE, K_STR, K_HELP, K_VERSION };

struct setting {
    const char *name;
    const char *arg;
    enum kind kind;
    size_t offset;
    long long lo, hi;
    const char *help;
};

#define OFF(f) offsetof(struct srv_options, f)
static const struct setting settings[] = {
    {"port", "N", K_INT, OFF(port), 0, 65535, "TCP port (default 8080; 0 picks a free one, printed at start)"},
    {"host", "ADDR", K_STR, OFF(host), 0, 0, "IPv4 address to bind (default 0.0.0.0, every interface)"},
    {"model-repo", "DIR", K_STR, OFF(model_repo), 0, 0,
     "model repository: one folder per model with manifest.json (default ./model-repo)"},
    {"workers", "N", K_INT, OFF(workers), 1, 64, "inference threads per model (default 1)"},
    {"threads", "N", K_INT, OFF(threads), 1, 1024,
     "engine threads per inference thread (default: cores / workers, at least 1)"},
    {"http-threads", "N", K_INT, OFF(http_threads), 1, 256,
     "threads that parse, decode and preprocess requests (default 2)"},
    {"max-batch-size", "N", K_INT, OFF(max_batch_size), 1, 256,
     "images per batch unless a manifest's batching says otherwise (default 8)"},
    {"max-queue-delay-us", "US", K_INT, OFF(max_queue_delay_us), 0, 10000000,
     "how long a request may wait for others to share its batch (default 2000)"},
    {"max-queue-size", "N", K_INT, OFF(max_queue_size), 1, 1000000,
     "requests waiting per model before 503 + Retry-After (default 64)"},
    {"request-timeout-ms", "MS", K_INT, OFF(request_timeout_ms), 1, 3600000,
     "a request still queued after this is answered 504 (default 30000)"},
    {"max-body-bytes", "N", K_SIZE, OFF(max_body_bytes), 1, (long long)1 << 40,
     "largest request body, else 413 (default 33554432 = 32 MiB)"},
    {"max-pixels", "N", K_SIZE, OFF(max_pixels), 1, (long long)1 << 40,
     "largest image width x height, checked before decoding, else 413 (default 50000000)"},
    {"max-connections", "N", K_INT, OFF(max_connections), 1, 1000000,
     "open connections at most; more are closed as soon as they are accepted (default 1000)"},
    {"connection-timeout", "S", K_INT, OFF(connection_timeout), 1, 86400,
     "seconds a connection may sit idle, or take to send a request body (default 60)"},
    {"exit-timeout", "S", K_INT, OFF(exit_timeout), 0, 86400,
     "seconds to finish accepted requests after SIGTERM/SIGINT (default 30)"},
    {"api-key", "KEY", K_STR, OFF(api_key), 0, 0,
     "require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' except on health (or env SALIENT_API_KEY)"},
    {"cors-origins", "LIST", K_STR, OFF(cors_origins), 0, 0,
     "origins allowed to call from a browser: comma-separated, or * (default: none)"},
    {"web-root", "DIR", K_STR, OFF(web_root), 0, 0, "static files to serve at / (the demo frontend; default: none)"},
    {"config", "FILE", K_STR, OFF(config), 0, 0, "JSON object of settings, keys as these flags without --"},
    {"help", NULL, K_HELP, 0, 0, 0, "print this help and exit"},
    {"version", NULL, K_VERSION, 0, 0, 0, "print the version and exit"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: salientd [options]\n\n"
                 "salient's inference server: chest X-ray and face models over HTTP (KServe v2 and JSON).\n\n"
                 "options:\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        char left[40];
        snprintf(left, sizeof left, "--%s%s%s", settings[i].name, settings[i].arg ? " " : "",
                 settings[i].arg ? settings[i].arg : "");
        fprintf(out, "  %-26s %s\n", left, settings[i].help);
    }
    fprintf(out, "\nEndpoints: /v1/models, /v1/models/{m}:predict, /v2/... (KServe v2), /metrics, /openapi.json.\n"
                 "See docs/API.md.\n");
}

/* Apply one setting from text (a flag's value, or a config value rendered as text). */
static int apply(struct srv_options *o, const struct setting *s, const char *value, const char *origin, FILE *err)
{
    char *p = (char *)o + s->offset;
    if (s->kind == K_STR) {
        *(const char **)p = value;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno || v < s->lo || v > s->hi) {
        fprintf(err, "salientd: %s%s must be an integer %lld..%lld, got '%s'\n", origin, s->name, s->lo, s->hi,
                value);
        return -1;
    }
    if (s->kind == K_INT)
        *(int *)p = (int)v;
    else
        *(size_t *)p = (size_t)v;
    return 0;
}

static const struct setting *find(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    return NULL;
}

static int load_config(struct srv_options *o, const char *path, FILE *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        fprintf(err, "salientd: --config %s: %s (line %d)\n", path, je.text, je.line);
        return -1;
    }
    o->owned = root;
    if (!json_is_object(root)) {
        fprintf(err, "salientd: --config %s: must be a JSON object of settings\n", path);
        return -1;
    }
    const char *key;
    json_t *val;
    char origin[1100];
    snprintf(origin, sizeof origin, "--config %s: ", path);
    json_object_foreach(root, key, val)
    {
        const struct setting *s = find(key);
        if (!s || s->kind == K_HELP || s->kind == K_VERSION || strcmp(key, "config") == 0) {
            fprintf(err, "salientd: %sunknown setting '%s'; see --help\n", origin, key);
            return -1;
        }
        char num[32];
        const char *text;
        if (json_is_string(val)) {
            text = json_string_value(val);
        } else if (json_is_integer(val) && s->kind != K_STR) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(val));
            text = num;
        } else {
            fprintf(err, "salientd: %s'%s' must be %s\n", origin, key, s->kind == K_STR ? "a string" : "an integer");
            return -1;
        }
        if (apply(o, s, text, origin, err) < 0)
            return -1;
    }
    return 0;
}

int srv_options_parse(struct srv_options *o, int argc, char **argv, FILE *out, FILE *err)
{
    memset(o, 0, sizeof *o);
    o->port = 8080;
    o->host = "0.0.0.0";
    o->model_repo = "./model-repo";
    o->workers = 1;
    o->http_threads = 2;
    o->max_batch_size = 8;
    o->max_queue_delay_us = 2000;
    o->max_queue_size = 64;
    o->request_timeout_ms = 30000;
    o->max_body_bytes = (size_t)32 << 20;
    o->max_pixels = 50000000;
    o->max_connections = 1000;
    o->connection_timeout = 60;
    o->exit_timeout = 30;
    o->api_key = getenv("SALIENT_API_KEY");
    if (o->api_key && !*o->api_key)
        o->api_key = NULL;

    struct option longopts[NSETTINGS + 1];
    for (size_t i = 0; i < NSETTINGS; i++)
        longopts[i] = (struct option){settings[i].name, settings[i].arg ? required_argument : no_argument, NULL,
                                      (int)i + 256};
    longopts[NSETTINGS] = (struct option){NULL, 0, NULL, 0};

    /* Two passes: --config first so that flags override it wherever they stand. */
    for (int pass = 0; pass < 2; pass++) {
        optind = 1;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
            if (c == 'h')
                c = 256 + (int)(find("help") - settings);
            if (c < 256 || c >= 256 + (int)NSETTINGS) {
                if (pass == 1)
                    continue;
                if (optopt)
                    fprintf(err, "salientd: option '%s' needs a value or is unknown; see --help\n", argv[optind - 1]);
                else
                    fprintf(err, "salientd: unknown option '%s'; see --help\n", argv[optind - 1]);
                return 2;
            }
            const struct setting *s = &settings[c - 256];
            bool is_config = strcmp(s->name, "config") == 0;
            if (pass == 0) {
                if (s->kind == K_HELP) {
                    usage(out);
                    return 1;
                }
                if (s->kind == K_VERSION) {
                    fprintf(out, "salientd %s\n", PACKAGE_VERSION);
                    return 1;
                }
                if (is_config) {
                    o->config = optarg;
                    if (load_config(o, optarg, err) < 0)
                        return 2;
                }
            } else if (!is_config && apply(o, s, optarg, "--", err) < 0) {
                return 2;
            }
        }
    }
    if (optind < argc) {
        fprintf(err, "salientd: unexpected argument '%s'; see --help\n", argv[optind]);
        return 2;
    }
    if (!o->threads) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int cores = ncpu > 0 && ncpu < 1024 ? (int)ncpu : 1;
        o->threads = cores / o->workers > 0 ? cores / o->workers : 1;
    }
    if (o->api_key && !*o->api_key)
        o->api_key = NULL;
    return 0;
}

void srv_options_free(struct srv_options *o)
{
    json_decref(o->owned);
    o->owned = NULL;
}
