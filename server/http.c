/* http.c: libmicrohttpd glue, routing and JSON error responses for salientd. */
#include "config.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/error.h"

struct srv_http {
    struct MHD_Daemon *daemon;
    int nmodels;
    atomic_int ready;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One line per request: never bodies or image bytes (patient data). */
static void log_request(const char *method, const char *url, unsigned status, double ms)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s %s %s %u %.2fms\n", stamp, method, url, status, ms);
}

/* Steals body. */
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, json_t *body, const char *allow)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static json_t *error_body(const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, b);
    return json_pack("{s:s}", "error", msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    struct srv_http *h = cls;
    (void)version;
    (void)upload_data;
    /* First call: headers only. Remember the start time; answer on the next call. */
    if (*req_cls == NULL) {
        double *t0 = malloc(sizeof *t0);
        if (!t0)
            return MHD_NO;
        *t0 = now_ms();
        *req_cls = t0;
        return MHD_YES;
    }
    /* Bodies are not used by any route yet: drop them without buffering. */
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    double t0 = *(double *)*req_cls;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    unsigned status;
    json_t *body;
    const char *allow = NULL;
    if (strcmp(url, "/v2/health/live") == 0 || strcmp(url, "/v2/health/ready") == 0 || strcmp(url, "/v2") == 0) {
        if (!get) {
            status = MHD_HTTP_METHOD_NOT_ALLOWED;
            body = error_body("method %s not allowed on %s", method, url);
            allow = "GET, HEAD";
        } else if (strcmp(url, "/v2/health/live") == 0) {
            status = MHD_HTTP_OK;
            body = json_pack("{s:b}", "live", 1);
        } else if (strcmp(url, "/v2/health/ready") == 0) {
            int ready = atomic_load(&h->ready);
            status = ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
            body = json_pack("{s:b}", "ready", ready);
        } else {
            status = MHD_HTTP_OK;
            body = json_pack("{s:s, s:s, s:[], s:i}", "name", "salient", "version", PACKAGE_VERSION, "extensions",
                             "models", h->nmodels);
        }
    } else {
        status = MHD_HTTP_NOT_FOUND;
        body = error_body("no route for %s %s", method, url);
    }
    enum MHD_Result ret = reply_json(conn, status, body, allow);
    log_request(method, url, status, now_ms() - t0);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}

struct srv_http *srv_http_start(const struct srv_options *o, int nmodels)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1) {
        eng_error("--host '%s' is not an IPv4 address", o->host);
        return NULL;
    }
    struct srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        eng_error("out of memory");
        return NULL;
    }
    h->nmodels = nmodels;
    atomic_init(&h->ready, 1);
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_USE_ERROR_LOG,
                                 (uint16_t)o->port, NULL, NULL, on_request, h,
                                 MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)o->http_threads,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                 MHD_OPTION_END);
    if (!h->daemon) {
        eng_error("cannot listen on %s:%d (port in use, or not allowed)", o->host, o->port);
        free(h);
        return NULL;
    }
    return h;
}

int srv_http_port(const struct srv_http *h)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return i ? (int)i->port : -1;
}

void srv_http_set_ready(struct srv_http *h, int ready)
{
    atomic_store(&h->ready, ready);
}

void srv_http_stop(struct srv_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
