/* static.c: the demo frontend from --web-root: GET / is <root>/index.html, GET /static/<name>
 * is <root>/static/<name>.
 *
 * The route pattern already limits <name> to one path segment of [A-Za-z0-9._-] (no '/', and
 * libmicrohttpd has unescaped %2F before matching), so the only way out of the folder would be
 * "." or ".."; names starting with '.' are refused, which also hides dot-files. Only the file
 * types a frontend needs are served, each with its Content-Type; anything else is 404, so a
 * stray backup or source file in the folder is not published. Files are read whole per request
 * (the frontend is a few small files; the page is not on the inference path). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/routes.h"

/* Larger files are an operator's mistake (the frontend is tens of KiB), not something to stream. */
#define STATIC_MAX_BYTES ((size_t)16 << 20)

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
};

/* The Content-Type for a file name, or NULL when its type is not served. */
static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* Answer with the regular file at path, or 404 / 500 saying why not. */
static void send_file(struct srv_req *q, const char *path, const char *url_name, const char *type)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        srv_reply_error(q, 404, "no file '%s' in the web root", url_name);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        srv_reply_error(q, 404, "no file '%s' in the web root", url_name);
        return;
    }
    if ((size_t)st.st_size > STATIC_MAX_BYTES) {
        close(fd);
        srv_reply_error(q, 500, "'%s' is %lld bytes, over the %zu the web root serves", url_name,
                        (long long)st.st_size, STATIC_MAX_BYTES);
        return;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *data = malloc(len ? len : 1);
    if (!data) {
        close(fd);
        srv_reply_error(q, 500, "out of memory");
        return;
    }
    while (got < len) {
        ssize_t n = read(fd, data + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != len) {
        free(data);
        srv_reply_error(q, 500, "could not read '%s' from the web root", url_name);
        return;
    }
    srv_reply_text(q, 200, type, data, len);
}

void srv_static(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    const char *root = q->srv->o->web_root;
    if (!root || !*root) {
        srv_reply_error(q, 404, "no demo frontend here: salientd runs without --web-root (the API is under "
                                "/v1 and /v2, see GET /openapi.json)");
        return;
    }
    bool index = strcmp(q->url, "/") == 0;
    const char *name = index ? "index.html" : args[0];
    if (name[0] == '.' || strchr(name, '/')) {
        srv_reply_error(q, 404, "no file '%s' in the web root", name);
        return;
    }
    const char *type = content_type(name);
    if (!type) {
        srv_reply_error(q, 404, "'%s' is not a file type the web root serves", name);
        return;
    }
    char path[4096];
    int n = snprintf(path, sizeof path, "%s%s%s", root, index ? "/" : "/static/", name);
    if (n < 0 || (size_t)n >= sizeof path) {
        srv_reply_error(q, 404, "no file '%s' in the web root", name);
        return;
    }
    send_file(q, path, name, type);
}
