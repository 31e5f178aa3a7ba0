/* metrics.c: GET /metrics in Prometheus text format (version 0.0.4).
 *
 * Per model: requests by status, images run (inference_count) and batches run
 * (execution_count) -- their ratio is the mean batch size --, cumulative queue / preprocess /
 * compute / request microseconds, queue depth, loaded or not. Server-wide: requests by status
 * on every route, requests in flight, resident memory. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/routes.h"

static const unsigned codes[SRV_NSTATUS] = SRV_STATUS_CODES;

static void status_label(char *buf, size_t len, int i)
{
    if (i < SRV_NSTATUS)
        snprintf(buf, len, "%u", codes[i]);
    else
        snprintf(buf, len, "other");
}

struct emit {
    FILE *f;
    int pass; /* which family of lines is being written */
};

enum {
    P_REQUESTS,
    P_INFERENCES,
    P_EXECUTIONS,
    P_QUEUE_US,
    P_PREPROCESS_US,
    P_COMPUTE_US,
    P_REQUEST_US,
    P_QUEUE_DEPTH,
    P_LOADED,
    P_COUNT
};

static const struct {
    const char *name, *type, *help;
} families[P_COUNT] = {
    {"salient_model_requests_total", "counter", "Requests for a model answered, by HTTP status."},
    {"salient_model_inference_count_total", "counter", "Images run through the model."},
    {"salient_model_execution_count_total", "counter",
     "Batches run; inference_count / execution_count is the mean batch size."},
    {"salient_model_queue_duration_us_total", "counter", "Microseconds requests waited in the queue, summed."},
    {"salient_model_preprocess_duration_us_total", "counter",
     "Microseconds spent decoding and preprocessing images, summed."},
    {"salient_model_compute_duration_us_total", "counter", "Microseconds spent running batches, summed."},
    {"salient_model_request_duration_us_total", "counter", "Microseconds from request to answer, summed."},
    {"salient_model_queue_depth", "gauge", "Requests waiting in the model's queue now."},
    {"salient_model_loaded", "gauge", "1 if the model is loaded and serving."},
};

static void one_model(void *user, const char *name, struct srv_slot_stats *st, const struct srv_model *sm)
{
    struct emit *e = user;
    FILE *f = e->f;
    const char *n = families[e->pass].name;
    switch (e->pass) {
    case P_REQUESTS:
        for (int i = 0; i <= SRV_NSTATUS; i++) {
            unsigned long long v = atomic_load(&st->requests[i]);
            if (!v)
                continue;
            char s[16];
            status_label(s, sizeof s, i);
            fprintf(f, "%s{model=\"%s\",status=\"%s\"} %llu\n", n, name, s, v);
        }
        break;
    case P_INFERENCES:
        fprintf(f, "%s{model=\"%s\"} %llu\n", n, name, (unsigned long long)atomic_load(&st->batch.inferences));
        break;
    case P_EXECUTIONS:
        fprintf(f, "%s{model=\"%s\"} %llu\n", n, name, (unsigned long long)atomic_load(&st->batch.executions));
        break;
    case P_QUEUE_US:
        fprintf(f, "%s{model=\"%s\"} %llu\n", n, name, (unsigned long long)atomic_load(&st->batch.queue_us));
        break;
    case P_PREPROCESS_US:
        fprintf(f, "%s{model=\"%s\"} %llu\n", n, name, (unsigned long long)atomic_load(&st->preprocess_us));
        break;
    case P_COMPUTE_US:
        fprintf(f, "%s{model=\"%s\"} %llu\n", n, name, (unsigned long long)atomic_load(&st->batch.compute_us));
        break;
    case P_REQUEST_US:
        fprintf(f, "%s{model=\"%s\"} %llu\n", n, name, (unsigned long long)atomic_load(&st->request_us));
        break;
    case P_QUEUE_DEPTH:
        fprintf(f, "%s{model=\"%s\"} %d\n", n, name, sm ? srv_batcher_queued(sm->batcher) : 0);
        break;
    case P_LOADED:
        fprintf(f, "%s{model=\"%s\"} %d\n", n, name, sm ? 1 : 0);
        break;
    }
}

static void count_loaded(void *user, const char *name, struct srv_slot_stats *st, const struct srv_model *sm)
{
    (void)name;
    (void)st;
    *(int *)user += sm != NULL;
}

static long resident_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

void srv_metrics(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        srv_reply_error(q, 500, "out of memory");
        return;
    }
    struct emit e = {f, 0};
    for (e.pass = 0; e.pass < P_COUNT; e.pass++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", families[e.pass].name, families[e.pass].help,
                families[e.pass].name, families[e.pass].type);
        srv_registry_foreach(q->srv->registry, one_model, &e);
    }
    fprintf(f, "# HELP salient_http_requests_total Requests answered on every route, by HTTP status.\n"
               "# TYPE salient_http_requests_total counter\n");
    for (int i = 0; i <= SRV_NSTATUS; i++) {
        unsigned long long v = atomic_load(&q->srv->http_requests[i]);
        char s[16];
        status_label(s, sizeof s, i);
        if (v)
            fprintf(f, "salient_http_requests_total{status=\"%s\"} %llu\n", s, v);
    }
    int loaded = 0;
    srv_registry_foreach(q->srv->registry, count_loaded, &loaded);
    fprintf(f,
            "# HELP salient_models_loaded Models loaded and serving.\n# TYPE salient_models_loaded gauge\n"
            "salient_models_loaded %d\n"
            "# HELP salient_inflight_requests Requests received and not yet answered.\n"
            "# TYPE salient_inflight_requests gauge\nsalient_inflight_requests %d\n"
            "# HELP salient_open_connections Client connections open now (at most --max-connections).\n"
            "# TYPE salient_open_connections gauge\nsalient_open_connections %d\n"
            "# HELP salient_connections_refused_total Connections closed when accepted: --max-connections reached.\n"
            "# TYPE salient_connections_refused_total counter\nsalient_connections_refused_total %llu\n"
            "# HELP salient_uploads_cut_total Connections closed: the request body took over --connection-timeout.\n"
            "# TYPE salient_uploads_cut_total counter\nsalient_uploads_cut_total %llu\n"
            "# HELP salient_uptime_seconds Seconds since the server started.\n"
            "# TYPE salient_uptime_seconds gauge\nsalient_uptime_seconds %.3f\n"
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
            loaded, atomic_load(&q->srv->inflight) - 1, atomic_load(&q->srv->connections),
            (unsigned long long)atomic_load(&q->srv->connections_refused),
            (unsigned long long)atomic_load(&q->srv->uploads_cut), (double)(srv_now_us() - q->srv->started_us) / 1e6,
            resident_bytes());
    fclose(f);
    srv_reply_text(q, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
