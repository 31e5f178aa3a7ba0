/* fuzz_common.c: copies, a scratch folder and a model-less server for the fuzz harnesses. */
#include "tests/fuzz/fuzz_common.h"

#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/options.h"
#include "server/registry.h"
#include "server/request.h"

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "==fuzz== invariant broken at %s:%d: %s\n", file, line, what);
    abort();
}

uint8_t *fuzz_copy(const uint8_t *data, size_t size, int nul)
{
    uint8_t *p = malloc(size + (nul ? 1 : 0) + (size == 0 && !nul));
    FUZZ_CHECK(p != NULL);
    if (size)
        memcpy(p, data, size);
    if (nul)
        p[size] = 0;
    return p;
}

static char scratch[256];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_scratch(void)
{
    if (scratch[0])
        nftw(scratch, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_scratch_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/salient-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        FUZZ_CHECK(mkdtemp(scratch) != NULL);
        atexit(remove_scratch);
        strcat(scratch, "/");
    }
    return scratch;
}

void fuzz_write_file(const char *name, const void *data, size_t len, char *path, size_t cap)
{
    int n = snprintf(path, cap, "%s%s", fuzz_scratch_dir(), name);
    FUZZ_CHECK(n > 0 && (size_t)n < cap);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    for (size_t at = 0; at < len;) {
        ssize_t w = write(fd, (const char *)data + at, len - at);
        FUZZ_CHECK(w > 0);
        at += (size_t)w;
    }
    FUZZ_CHECK(close(fd) == 0);
}

/* One server for the process: options as salientd's defaults, an empty model repository. */
static struct srv_server *server(void)
{
    static struct srv_options o;
    static struct srv_server srv;
    if (srv.registry)
        return &srv;
    char repo[512];
    snprintf(repo, sizeof repo, "%srepo", fuzz_scratch_dir());
    FUZZ_CHECK(mkdir(repo, 0700) == 0);
    char *argv[] = {"salientd", "--model-repo", repo, NULL};
    FUZZ_CHECK(srv_options_parse(&o, 3, argv, stdout, stderr) == 0);
    o.model_repo = strdup(repo); /* argv is gone after this call */
    srv.o = &o;
    srv.registry = srv_registry_open(&o);
    FUZZ_CHECK(srv.registry != NULL);
    return &srv;
}

unsigned fuzz_route(srv_handler handler, const char *content_type, const uint8_t *body, size_t len)
{
    struct srv_req q = {
        .srv = server(),
        .method = "POST",
        .url = "/fuzz",
        .content_type = content_type,
        .body = body,
        .body_len = len,
    };
    char args[SRV_MAX_ARGS][SRV_ARG_MAX] = {"m"};
    handler(&q, args);
    if (q.cleanup)
        q.cleanup(&q);
    FUZZ_CHECK(!q.suspended);
    FUZZ_CHECK(q.status >= 400 && q.status != 500);
    FUZZ_CHECK(q.reply != NULL);
    json_t *answer = json_loadb(q.reply, q.reply_len, 0, NULL);
    FUZZ_CHECK(json_is_string(json_object_get(answer, "error")));
    json_decref(answer);
    free(q.reply);
    return q.status;
}
