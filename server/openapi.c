/* openapi.c: GET /openapi.json, the OpenAPI 3 description in server/openapi.json, compiled in
 * (openapi_data.c is generated from it at build time) so a container needs no data files. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "server/routes.h"

extern const char srv_openapi_text[];

void srv_openapi(struct srv_req *q, char args[SRV_MAX_ARGS][SRV_ARG_MAX])
{
    (void)args;
    char *text = strdup(srv_openapi_text);
    if (!text) {
        srv_reply_error(q, 500, "out of memory");
        return;
    }
    srv_reply_text(q, 200, "application/json", text, strlen(text));
}
