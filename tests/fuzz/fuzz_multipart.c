/* fuzz_multipart: a Content-Type line and a body, "multipart/form-data; boundary=X\n<body>".
 * srv_multipart_parse must keep every part inside the body with terminated fields; then the
 * two routes that take forms (POST /v1/models/{m}:predict and /v1/faces:verify) must answer
 * with a client error, never a 500. */
#include <stdlib.h>
#include <string.h>

#include "server/multipart.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPARTS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t clen = nl ? (size_t)(nl - data) : size;
    char *ctype = (char *)fuzz_copy(data, clen, 1);
    size_t blen = nl ? size - clen - 1 : 0;
    uint8_t *body = fuzz_copy(nl ? nl + 1 : data, blen, 0);

    struct srv_part parts[MAXPARTS];
    int n = -1;
    char err[256];
    if (srv_multipart_parse(body, blen, ctype, parts, MAXPARTS, &n, err, sizeof err) == 0) {
        FUZZ_CHECK(n >= 0 && n <= MAXPARTS);
        for (int i = 0; i < n; i++) {
            const struct srv_part *p = &parts[i];
            FUZZ_CHECK(p->data >= body && p->len <= blen && (size_t)(p->data - body) <= blen - p->len);
            FUZZ_CHECK(p->name[0] && memchr(p->name, 0, sizeof p->name));
            FUZZ_CHECK(memchr(p->filename, 0, sizeof p->filename));
            FUZZ_CHECK(memchr(p->content_type, 0, sizeof p->content_type));
        }
    } else {
        FUZZ_CHECK(n == 0 && err[0] != '\0');
    }

    /* The routes look at the Content-Type first: only forms reach the multipart code there. */
    if (srv_is_multipart(ctype)) {
        fuzz_route(srv_v1_predict, ctype, body, blen);
        fuzz_route(srv_v1_verify, ctype, body, blen);
    }
    free(body);
    free(ctype);
    return 0;
}
