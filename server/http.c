/* http.c: libmicrohttpd glue: request state, body limits, auth, CORS, routing, suspend/resume,
 * graceful drain, one log line per request. */
#include "config.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/error.h"
#include "server/request.h"
#include "server/routes.h"

struct srv_http {
    struct MHD_Daemon *daemon;
    struct srv_server srv;
};

/* Which requests need what: OPEN routes skip the API key (health checks from load balancers
 * and kubelets carry none); CONTROL routes change what is served. */
enum { OPEN = 1, CONTROL = 2 };

static const struct route {
    const char *method;
    const char *pattern;
    srv_handler fn;
    int flags;
} routes[] = {
    {"GET", "/v2/health/live", srv_v2_live, OPEN},
    {"GET", "/v2/health/ready", srv_v2_ready, OPEN},
    {"GET", "/v2", srv_v2_server, 0},
    {"GET", "/v2/models/{}", srv_v2_model, 0},
    {"GET", "/v2/models/{}/versions/{}", srv_v2_model, 0},
    {"GET", "/v2/models/{}/ready", srv_v2_model_ready, 0},
    {"GET", "/v2/models/{}/versions/{}/ready", srv_v2_model_ready, 0},
    {"POST", "/v2/models/{}/infer", srv_v2_infer, 0},
    {"POST", "/v2/models/{}/versions/{}/infer", srv_v2_infer, 0},
    {"POST", "/v2/repository/index", srv_v2_repo_index, CONTROL},
    {"POST", "/v2/repository/models/{}/load", srv_v2_repo_load, CONTROL},
    {"POST", "/v2/repository/models/{}/unload", srv_v2_repo_unload, CONTROL},
    {"GET", "/v1/models", srv_v1_models, 0},
    {"GET", "/v1/models/{}", srv_v1_model, 0},
    {"POST", "/v1/models/{}:predict", srv_v1_predict, 0},
    {"POST", "/v1/faces:verify", srv_v1_verify, 0},
    {"GET", "/metrics", srv_metrics, 0},
    {"GET", "/openapi.json", srv_openapi, OPEN},
    {"GET", "/", srv_static, OPEN},
    {"GET", "/static/{}", srv_static, OPEN},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* Match path against pattern; fill args. */
static bool match(const char *pattern, const char *path, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    int na = 0;
    memset(args, 0, SRV_MAX_ARGS * SRV_ARG_MAX);
    while (*pattern) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t n = 0;
            while (path[n] && (path[n] == '.' || path[n] == '_' || path[n] == '-' ||
                               (path[n] >= 'a' && path[n] <= 'z') || (path[n] >= 'A' && path[n] <= 'Z') ||
                               (path[n] >= '0' && path[n] <= '9')))
                n++;
            if (n == 0 || n >= SRV_ARG_MAX || na == SRV_MAX_ARGS)
                return false;
            memcpy(args[na], path, n);
            args[na][n] = '\0';
            na++;
            path += n;
            pattern += 2;
        } else if (*pattern++ != *path++) {
            return false;
        }
    }
    return *path == '\0';
}

/* ---- answers ---------------------------------------------------------------------------- */

void srv_reply_text(struct srv_req *q, unsigned status, const char *content_type, char *text, size_t len)
{
    free(q->reply);
    q->status = status;
    q->reply = text;
    q->reply_len = len;
    q->reply_type = content_type;
}

void srv_reply_json(struct srv_req *q, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory building the answer\"}";
        srv_reply_text(q, 500, "application/json", strdup(oom), sizeof oom - 1);
        return;
    }
    srv_reply_text(q, status, "application/json", text, strlen(text));
}

/* Bytes of the valid UTF-8 character at p (as jansson checks it: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_char_len(const unsigned char *p)
{
    size_t n;
    uint32_t v;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2, v = p[0] & 0x1Fu;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3, v = p[0] & 0x0Fu;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4, v = p[0] & 0x07u;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

void srv_reply_error(struct srv_req *q, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent (a path, a header, a JSON key), which need not be
     * UTF-8, and truncation can cut a character: jansson refuses such a string, which made the
     * answer a 500. Invalid bytes become '?'. */
    for (unsigned char *p = (unsigned char *)msg; *p;) {
        size_t n = utf8_char_len(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
    srv_reply_json(q, status, json_pack("{s:s}", "error", msg));
    if (status == 503 || status == 429)
        q->retry_after = 1;
}

const char *srv_req_header(struct srv_req *q, const char *name)
{
    return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

const char *srv_req_query(struct srv_req *q, const char *name)
{
    return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
}

void srv_req_suspend(struct srv_req *q)
{
    q->suspended = true;
    MHD_suspend_connection(q->conn);
}

void srv_req_wake(struct srv_req *q)
{
    MHD_resume_connection(q->conn);
}

/* ---- request state --------------------------------------------------------------------- */

struct conn_req {
    struct srv_req q;
    uint8_t *body;
    size_t len, cap;
    bool too_large;
    bool handled;
};

static void log_request(const struct srv_req *q)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* The path is the client's, %-decoded: control bytes are escaped so that a %0A cannot
     * end the line and forge the next one. */
    char url[512];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)q->url; *p && o + 5 < sizeof url; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            o += (size_t)snprintf(url + o, sizeof url - o, "\\x%02x", *p);
        else
            url[o++] = (char)*p;
    }
    url[o] = '\0';
    /* Never bodies, never image bytes: these are patient images. */
    fprintf(stderr, "%s %s %s model=%s status=%u %.2fms batch=%d\n", stamp, q->method, url,
            q->model[0] ? q->model : "-", q->status, (double)(srv_now_us() - q->t0_us) / 1e3, q->batch);
}

static bool is_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ci->client_addr;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ci->client_addr;
        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    return false;
}

/* Constant-time comparison: the time taken does not depend on where the strings differ. */
static bool key_equal(const char *given, const char *key)
{
    size_t gl = strlen(given), kl = strlen(key);
    unsigned char diff = (unsigned char)(gl != kl);
    for (size_t i = 0; i < kl; i++)
        diff |= (unsigned char)(key[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

/* 0 if the request carries the key (or none is needed), else answers 401/403. */
static int check_key(struct srv_req *q)
{
    const char *key = q->srv->o->api_key;
    if (!key)
        return 0;
    const char *given = srv_req_header(q, "X-API-Key");
    const char *auth = srv_req_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!given && auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        given = auth + 7;
        while (*given == ' ')
            given++;
    }
    if (!given) {
        srv_reply_error(q, 401, "this server needs an API key: send 'Authorization: Bearer <key>' or "
                                "'X-API-Key: <key>'");
        return -1;
    }
    if (!key_equal(given, key)) {
        srv_reply_error(q, 403, "the API key is not valid");
        return -1;
    }
    return 0;
}

/* The origin to echo in Access-Control-Allow-Origin, or NULL when CORS does not apply. */
static const char *cors_origin(struct srv_req *q)
{
    const char *list = q->srv->o->cors_origins;
    const char *origin = srv_req_header(q, "Origin");
    if (!list || !origin)
        return NULL;
    if (strcmp(list, "*") == 0)
        return "*";
    size_t ol = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && p[m - 1] == ' ')
            m--;
        if (m == ol && m && strncmp(p, origin, m) == 0)
            return origin;
        p += n;
    }
    return NULL;
}

static void route(struct srv_req *q)
{
    const char *method = strcmp(q->method, "HEAD") == 0 ? "GET" : q->method;
    if (strcmp(method, "OPTIONS") == 0) {
        /* CORS preflight: allowed origins get the methods and headers they may use. */
        if (srv_req_header(q, "Origin") && !cors_origin(q)) {
            srv_reply_error(q, 403, "origin '%s' is not allowed (see --cors-origins)", srv_req_header(q, "Origin"));
            return;
        }
        srv_reply_text(q, 204, "text/plain", NULL, 0);
        return;
    }
    char args[SRV_MAX_ARGS][SRV_ARG_MAX];
    const char *allow = NULL;
    for (size_t i = 0; i < NROUTES; i++) {
        const struct route *r = &routes[i];
        if (!match(r->pattern, q->url, args))
            continue;
        if (strcmp(r->method, method) != 0) {
            allow = strcmp(r->method, "GET") == 0 ? "GET, HEAD" : r->method;
            continue;
        }
        if (!(r->flags & OPEN) && check_key(q) < 0)
            return;
        if ((r->flags & CONTROL) && !q->srv->o->api_key && !q->loopback) {
            srv_reply_error(q, 403, "model control is allowed only from loopback unless the server has an API key");
            return;
        }
        r->fn(q, args);
        return;
    }
    if (allow) {
        srv_reply_error(q, 405, "method %s is not allowed on %s (allowed: %s)", q->method, q->url, allow);
        q->allow = allow;
        return;
    }
    srv_reply_error(q, 404, "no route for %s %s (see GET /openapi.json)", q->method, q->url);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct conn_req *cr)
{
    struct srv_req *q = &cr->q;
    if (!q->status)
        srv_reply_error(q, 500, "internal error: the request was not answered");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(q->reply_len, q->reply ? q->reply : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (q->reply_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, q->reply_type);
    if (q->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, q->allow);
    if (q->retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", q->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (q->status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    const char *origin = cors_origin(q);
    if (origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Vary", "Origin");
        if (strcmp(q->method, "OPTIONS") == 0) {
            MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type, Authorization, X-API-Key");
            MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        }
    }
    if (atomic_load(&q->srv->draining) || cr->too_large)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(conn, q->status, r);
    MHD_destroy_response(r);

    int si = srv_status_index(q->status);
    atomic_fetch_add(&q->srv->http_requests[si], 1);
    if (q->model[0]) {
        struct srv_slot_stats *st = srv_registry_stats(q->srv->registry, q->model);
        if (st) {
            atomic_fetch_add(&st->requests[si], 1);
            atomic_fetch_add(&st->request_us, srv_now_us() - q->t0_us);
        }
    }
    log_request(q);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    struct srv_http *h = cls;
    (void)version;
    struct conn_req *cr = *req_cls;
    if (!cr) {
        /* Headers only: set up, refuse what is too big before reading it. */
        cr = calloc(1, sizeof *cr);
        if (!cr)
            return MHD_NO;
        *req_cls = cr;
        atomic_fetch_add(&h->srv.inflight, 1);
        struct srv_req *q = &cr->q;
        q->srv = &h->srv;
        q->conn = conn;
        q->method = method;
        q->url = url;
        q->t0_us = srv_now_us();
        q->loopback = is_loopback(conn);
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        q->content_type = ct ? ct : "";
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        size_t limit = h->srv.o->max_body_bytes;
        if (cl) {
            unsigned long long n = strtoull(cl, NULL, 10);
            if (n > limit) {
                cr->too_large = true;
                srv_reply_error(q, 413, "request body of %llu bytes is over the limit of %zu bytes", n, limit);
                return send_reply(conn, cr);
            }
            if (n > 0) {
                cr->body = malloc((size_t)n);
                if (!cr->body)
                    return MHD_NO;
                cr->cap = (size_t)n;
            }
        }
        return MHD_YES;
    }
    struct srv_req *q = &cr->q;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* libmicrohttpd's --connection-timeout restarts on every byte received, so a client
         * sending its body a byte a second held its connection, its buffer and a slot of
         * --max-connections for as long as it liked. The whole body must now arrive within
         * --connection-timeout of the headers; past that the connection is closed (MHD_NO:
         * libmicrohttpd cannot queue an answer mid-upload) and on_completed frees the body. */
        if (srv_now_us() - q->t0_us > (uint64_t)h->srv.o->connection_timeout * 1000000u) {
            atomic_fetch_add(&h->srv.uploads_cut, 1);
            fprintf(stderr, "salientd: closed a connection: %s %s sent %zu of its body's bytes in over "
                            "--connection-timeout %d s\n", q->method, q->url, cr->len + n, h->srv.o->connection_timeout);
            return MHD_NO;
        }
        size_t limit = h->srv.o->max_body_bytes;
        if (cr->too_large || cr->len + n > limit) {
            /* A chunked body grew past the limit: keep nothing more, answer 413 at its end
             * (libmicrohttpd queues answers only before or after the upload). */
            cr->too_large = true;
            free(cr->body);
            cr->body = NULL;
            cr->len = cr->cap = 0;
            return MHD_YES;
        }
        if (cr->len + n > cr->cap) {
            size_t cap = cr->cap ? cr->cap : 65536;
            while (cap < cr->len + n)
                cap *= 2;
            if (cap > limit)
                cap = limit;
            uint8_t *b = realloc(cr->body, cap);
            if (!b)
                return MHD_NO;
            cr->body = b;
            cr->cap = cap;
        }
        memcpy(cr->body + cr->len, upload_data, n);
        cr->len += n;
        return MHD_YES;
    }
    if (q->suspended) {
        /* Resumed: the deferred work is done. */
        q->suspended = false;
        if (!q->status && q->resume)
            q->resume(q);
        return send_reply(conn, cr);
    }
    if (cr->handled)
        return send_reply(conn, cr);
    cr->handled = true;
    if (cr->too_large) {
        srv_reply_error(q, 413, "request body is over the limit of %zu bytes", h->srv.o->max_body_bytes);
    } else {
        q->body = cr->body ? cr->body : (const uint8_t *)"";
        q->body_len = cr->len;
        route(q);
    }
    if (q->suspended)
        return MHD_YES;
    return send_reply(conn, cr);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    struct srv_http *h = cls;
    (void)conn;
    (void)toe;
    struct conn_req *cr = *req_cls;
    if (!cr)
        return;
    if (cr->q.cleanup)
        cr->q.cleanup(&cr->q);
    free(cr->q.reply);
    free(cr->body);
    free(cr);
    *req_cls = NULL;
    atomic_fetch_sub(&h->srv.inflight, 1);
}

/* The --max-connections cap. libmicrohttpd's own limit stops accepting at the cap, which left
 * every further connection, a client's real request included, queued in the kernel's listen
 * backlog behind whatever held the slots (a thousand idle connections kept a request waiting
 * for minutes). Now a connection over the cap is accepted and closed at once: its client sees
 * the connection closed before any answer and may retry; idle connections give their slots
 * back after --connection-timeout. Counted at NOTIFY_STARTED / NOTIFY_CLOSED; two HTTP threads
 * accepting at the same instant may both take the last slot (one over the cap at most per
 * extra thread). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct srv_http *h = cls;
    (void)addr;
    (void)addrlen;
    if (atomic_load(&h->srv.connections) >= h->srv.o->max_connections) {
        atomic_fetch_add(&h->srv.connections_refused, 1);
        return MHD_NO;
    }
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode what)
{
    struct srv_http *h = cls;
    (void)conn;
    /* The socket context marks a counted connection: libmicrohttpd's cleanup paths may report
     * CLOSED for a connection whose STARTED was never reported; those must not free a slot. */
    static char counted;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_ctx = &counted;
        atomic_fetch_add(&h->srv.connections, 1);
    } else if (what == MHD_CONNECTION_NOTIFY_CLOSED && *socket_ctx == &counted) {
        *socket_ctx = NULL;
        atomic_fetch_sub(&h->srv.connections, 1);
    }
}

struct srv_http *srv_http_start(const struct srv_options *o, struct srv_registry *registry)
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
    h->srv.o = o;
    h->srv.registry = registry;
    h->srv.started_us = srv_now_us();
    /* libmicrohttpd splits its connection limit between the --http-threads: give each thread
     * room for the whole cap, so that on_accept, not libmicrohttpd, enforces it. */
    unsigned int mhd_limit = ((unsigned int)o->max_connections + 1u) * (unsigned int)o->http_threads;
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_USE_ERROR_LOG |
                                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
                                 (uint16_t)o->port, on_accept, h, on_request, h, MHD_OPTION_SOCK_ADDR,
                                 (const struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
                                 (unsigned int)o->http_threads, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int)o->connection_timeout, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
                                 on_connection, h, MHD_OPTION_END);
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

int srv_http_drain(struct srv_http *h, int timeout_s)
{
    atomic_store(&h->srv.draining, 1);
    /* Refuse new connections; connections already open get their answers ("Connection: close"). */
    MHD_socket s = MHD_quiesce_daemon(h->daemon);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    uint64_t until = srv_now_us() + (uint64_t)timeout_s * 1000000u;
    while (atomic_load(&h->srv.inflight) > 0) {
        if (srv_now_us() >= until)
            return -1;
        usleep(10000);
    }
    return 0;
}

void srv_http_stop(struct srv_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
