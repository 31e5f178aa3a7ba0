/* densenet.c: placeholder until the family lands (issue 3). */
#include "engine/error.h"
#include "models/families.h"

static int ph_load(struct mdl_model *m)
{
    (void)m;
    return eng_error("family 'densenet' is not built yet");
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

const struct mdl_family mdl_family_densenet = {"densenet", ph_load, ph_free, ph_forward};

#include "models/backbone.h"

static int ph_bload(struct mdl_backbone *b, const struct mdl_weights *w, json_t *spec, int64_t in_c)
{
    (void)b, (void)w, (void)spec, (void)in_c;
    return eng_error("backbone 'densenet' is not built yet");
}

static void ph_bfree(struct mdl_backbone *b)
{
    (void)b;
}

static int ph_bforward(const struct mdl_backbone *b, struct eng_ctx *ctx, struct eng_arena *act,
                       const struct eng_tensor *x, struct eng_tensor *fmap, const struct mdl_output *out)
{
    (void)b, (void)ctx, (void)act, (void)x, (void)fmap, (void)out;
    return -1;
}

const struct mdl_backbone_ops mdl_backbone_densenet = {"densenet", ph_bload, ph_bfree, ph_bforward};
