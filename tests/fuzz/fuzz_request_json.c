/* fuzz_request_json: a request body through json_loadb and our walk of it, as the three JSON
 * routes do it: POST /v1/models/{m}:predict ({"image"} / {"instances"} + "parameters"),
 * /v2/models/{m}/infer ({"inputs": [{... "data": [base64]}]}) and /v1/faces:verify
 * ({"images": [a, b]}); base64 decoding and srv_params_parse included. The server has no
 * models, so a body that passes every check ends in 404; anything else must be a 4xx too. */
#include <stdlib.h>

#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *body = fuzz_copy(data, size, 0);
    fuzz_route(srv_v1_predict, "application/json", body, size);
    fuzz_route(srv_v2_infer, "application/json", body, size);
    fuzz_route(srv_v1_verify, "application/json", body, size);
    free(body);
    return 0;
}
