/* quadrant_ae.c: placeholder until the family lands (issue 3). */
#include "engine/error.h"
#include "models/families.h"

static int ph_load(struct mdl_model *m)
{
    (void)m;
    return eng_error("family 'quadrant_ae' is not built yet");
}

static void ph_free(struct mdl_model *m)
{
    (void)m;
}

static int ph_forward(const struct mdl_model *m, struct eng_ctx *ctx, struct eng_arena *act, const struct eng_tensor *x,
                      struct mdl_output *out)
{
    (void)m, (void)ctx, (void)act, (void)x, (void)out;
    return -1;
}

const struct mdl_family mdl_family_quadrant_ae = {"quadrant_ae", ph_load, ph_free, ph_forward};
