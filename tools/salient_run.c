/* salient_run.c: salient-run, one model on a tensor file or image files -> logits, probabilities and taps in safetensors. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"
#include "models/manifest.h"
#include "models/model.h"
#include "models/attention.h"
#include "models/preprocess.h"
#include "server/decode_image.h"
#include "tools/cli.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "salient-run writes safetensors (little-endian) by copying floats; add byte swapping for this host"
#endif

#define MAX_IMAGES 100000
#define DEFAULT_MAX_BATCH_CAP 64       /* default max_batch: the number of images, at most this */
#define MAX_IMAGE_FILE ((size_t)1 << 30) /* an image file larger than 1 GiB is refused unread */

const char *const cli_prog = "salient-run";

static const char usage_text[] =
    "usage: salient-run --model DIR [--name NAME] (--input IN.safetensors | --image FILE [--image FILE ...])\n"
    "                   --output OUT.safetensors [--taps NAME,NAME|all] [--threads N] [--max-batch N]\n"
    "                   [--batch N] [--max-pixels N] [--attention] [--preprocess-only] [--quiet]\n"
    "\n"
    "Run one model of a salient model repository outside the server and write what it computes.\n"
    "\n"
    "  --model DIR        the model's folder (manifest.json + weights)\n"
    "  --name NAME        the model's name in messages and metadata (default: DIR's last component)\n"
    "  --input FILE       a safetensors file whose tensor 'input' is N x C x H x W (F32, F16 or BF16),\n"
    "                     exactly what the PyTorch model is fed (already preprocessed); C, H and W must\n"
    "                     match the model's input\n"
    "  --image FILE       a JPEG or PNG image (repeatable); it is decoded as the server decodes it (EXIF\n"
    "                     orientation applied, alpha dropped) and preprocessed as the manifest says; the\n"
    "                     preprocessed batch is also written as 'input' (N x C x H x W)\n"
    "  --output FILE      the safetensors file to write (F32):\n"
    "                       logits      [N, outputs]      the head's raw outputs\n"
    "                       probs       [N, labels]       label probabilities (models with labels)\n"
    "                       tap/NAME    [N, C, H, W] for feature maps (converted from the engine's\n"
    "                                   N, H, W, C), other tensors in the shape the model offers them\n"
    "                       input       [N, C, H, W]      with --image: the preprocessed images\n"
    "                     and metadata: model, family, version, task, demo, labels (a JSON list)\n"
    "  --attention        also write the manifest's attention maps, as the server computes them:\n"
    "                       attention/LAYER [N, H, W]   layer maps, min-max normalised to [0, 1]\n"
    "                       attention_weight [N, layers] each layer's share (docs/MODELS.md)\n"
    "                       cam/LABEL   [N, H, W]       class activation map of every label (raw)\n"
    "  --taps LIST        intermediate tensors to write, comma separated, or 'all' (names as the family\n"
    "                     offers them, e.g. denseblock1,denseblock4; an unknown name lists the known ones)\n"
    "  --threads N        engine threads for the network and for preprocessing (default 1)\n"
    "  --max-batch N      load the model for batches of up to N (default: the number of images, at\n"
    "                     most 64); arenas are sized for it\n"
    "  --batch N          images per forward pass, 1..max-batch (default: max-batch); the outputs are\n"
    "                     concatenated along N, so any batch size gives the same file\n"
    "  --max-pixels N     refuse images over N pixels (default 50000000, as the server)\n"
    "  --preprocess-only  read only the manifest's 'preprocess' block and write 'input' for the images;\n"
    "                     no weights are loaded and no network runs (checks preprocessing on its own)\n"
    "  --quiet            print nothing on success\n"
    "  --help             this text\n"
    "\n"
    "stdout gets a short summary (per image the three best labels); errors go to stderr.\n"
    "Exit status: 0 done, 1 error (model, input or output), 2 bad usage.\n"
    "\n"
    "examples:\n"
    "  salient-run --model repo/chexnet-demo --image cxr.png --output out.safetensors\n"
    "  salient-run --model repo/chexnet-demo --input x.safetensors --output y.safetensors --taps all --batch 1\n";

struct options {
    const char *model_dir, *name, *input, *output, *taps;
    const char **images;
    int nimages;
    int threads, max_batch, batch;
    size_t max_pixels;
    bool preprocess_only, quiet, attention;
};

static void *xcalloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        cli_die("out of memory for %s (%zu x %zu bytes)", what, n, size);
    return p;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_MAX_BATCH = 256, OPT_MAX_PIXELS, OPT_PREPROCESS_ONLY, OPT_ATTENTION };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"name", required_argument, NULL, 'n'},
        {"input", required_argument, NULL, 'i'},
        {"image", required_argument, NULL, 'I'},
        {"output", required_argument, NULL, 'o'},
        {"taps", required_argument, NULL, 't'},
        {"threads", required_argument, NULL, 'j'},
        {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
        {"batch", required_argument, NULL, 'b'},
        {"max-pixels", required_argument, NULL, OPT_MAX_PIXELS},
        {"preprocess-only", no_argument, NULL, OPT_PREPROCESS_ONLY},
        {"attention", no_argument, NULL, OPT_ATTENTION},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->max_pixels = SRV_DECODE_DEFAULT_MAX_PIXELS;
    o->images = xcalloc((size_t)argc, sizeof *o->images, "the image list");
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_dir = optarg; break;
        case 'n': o->name = optarg; break;
        case 'i': o->input = optarg; break;
        case 'I':
            if (o->nimages >= MAX_IMAGES)
                cli_usage_error("more than %d images", MAX_IMAGES);
            o->images[o->nimages++] = optarg;
            break;
        case 'o': o->output = optarg; break;
        case 't': o->taps = optarg; break;
        case 'j': o->threads = (int)cli_parse_int("--threads", optarg, 1, 1024); break;
        case OPT_MAX_BATCH: o->max_batch = (int)cli_parse_int("--max-batch", optarg, 1, 4096); break;
        case 'b': o->batch = (int)cli_parse_int("--batch", optarg, 1, 4096); break;
        case OPT_MAX_PIXELS:
            o->max_pixels = (size_t)cli_parse_int("--max-pixels", optarg, 1, (long long)1 << 40);
            break;
        case OPT_PREPROCESS_ONLY: o->preprocess_only = true; break;
        case OPT_ATTENTION: o->attention = true; break;
        case 'q': o->quiet = true; break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case ':': cli_usage_error("%s needs a value", argv[optind - 1]);
        default: cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->model_dir)
        cli_usage_error("--model DIR is required");
    if (!o->output)
        cli_usage_error("--output FILE is required");
    if (!o->input == !o->nimages)
        cli_usage_error("give either --input FILE or one or more --image FILE");
    if (o->preprocess_only && o->input)
        cli_usage_error("--preprocess-only works on --image files");
    if (o->preprocess_only && o->taps)
        cli_usage_error("--preprocess-only runs no network, so it has no --taps");
    if (o->batch && o->max_batch && o->batch > o->max_batch)
        cli_usage_error("--batch %d is larger than --max-batch %d", o->batch, o->max_batch);
}

/* The model's name when --name is not given: DIR's last path component. */
static void dir_basename(const char *dir, char *out, size_t cap)
{
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    size_t n = end - start < cap - 1 ? end - start : cap - 1;
    memcpy(out, dir + start, n);
    out[n] = '\0';
}

/* ---- outputs: named F32 tensors grown batch by batch along N ---- */

struct out_tensor {
    char name[ENG_NAME_MAX + 8];
    int ndim;
    int64_t shape[ENG_MAX_DIMS]; /* shape[0] counts the rows appended so far */
    float *data;
    size_t n, cap;               /* floats held / allocated */
};

struct outputs {
    struct out_tensor *t;
    int n, cap;
};

static struct out_tensor *out_get(struct outputs *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->t[i].name, name) == 0)
            return &o->t[i];
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 8;
        struct out_tensor *t = realloc(o->t, (size_t)cap * sizeof *t);
        if (!t)
            cli_die("out of memory for the output list");
        o->t = t, o->cap = cap;
    }
    struct out_tensor *t = &o->t[o->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

/* Room for `more` floats at the end of t; returns where they go. */
static float *out_grow(struct out_tensor *t, size_t more)
{
    if (t->n + more > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->n + more)
            cap *= 2;
        float *d = realloc(t->data, cap * sizeof(float));
        if (!d)
            cli_die("out of memory for output '%s' (%zu floats)", t->name, cap);
        t->data = d, t->cap = cap;
    }
    float *dst = t->data + t->n;
    t->n += more;
    return dst;
}

static void outputs_free(struct outputs *o)
{
    for (int i = 0; i < o->n; i++)
        free(o->t[i].data);
    free(o->t);
    memset(o, 0, sizeof *o);
}

/* Write the tensors (and string metadata) as safetensors at path: 8-byte little-endian header
 * length, the JSON header padded with spaces to 8 bytes, then the data in order. Written to
 * path.tmp and renamed, so a failed run never leaves half a file under the real name. Steals
 * meta (an object of strings). Exits with a message on any failure. */
static void write_safetensors(const char *path, const struct outputs *o, json_t *meta)
{
    json_t *hdr = json_object();
    if (!hdr)
        cli_die("out of memory for the output header");
    json_object_set_new(hdr, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < o->n; i++) {
        const struct out_tensor *t = &o->t[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        size_t bytes = t->n * sizeof(float);
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets",
                              (json_int_t)off, (json_int_t)(off + bytes));
        if (!e || json_object_set_new(hdr, t->name, e) < 0)
            cli_die("out of memory for the output header");
        off += bytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(hdr);
    if (!text)
        cli_die("out of memory for the output header");
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        cli_die("output path too long");
    FILE *fp = fopen(tmp, "wb");
    if (!fp)
        cli_die("cannot write %s: %s", tmp, strerror(errno));
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(text, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < o->n; i++)
        ok = fwrite(o->t[i].data, sizeof(float), o->t[i].n, fp) == o->t[i].n;
    free(text);
    if (fclose(fp) != 0)
        ok = false;
    if (!ok) {
        remove(tmp);
        cli_die("cannot write %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        cli_die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
    }
}

/* ---- taps ---- */

struct tap_state {
    struct outputs *outs;
    bool all;
    char **want; /* requested names (when not all) */
    int nwant;
    char offered[256][64]; /* every name offered, for the error that lists them */
    int noffered;
    char error[512];       /* first problem; the callback cannot return one */
};

static void on_tap(void *user, const char *name, const struct eng_tensor *t)
{
    struct tap_state *s = user;
    int k;
    for (k = 0; k < s->noffered; k++)
        if (strcmp(s->offered[k], name) == 0)
            break;
    if (k == s->noffered && s->noffered < 256)
        snprintf(s->offered[s->noffered++], sizeof s->offered[0], "%s", name);
    bool wanted = s->all;
    for (int i = 0; !wanted && i < s->nwant; i++)
        wanted = strcmp(s->want[i], name) == 0;
    if (!wanted || s->error[0])
        return;
    char full[ENG_NAME_MAX + 8];
    snprintf(full, sizeof full, "tap/%s", name);
    struct out_tensor *o = out_get(s->outs, full);
    /* The shape of one image's slice: feature maps become C, H, W. */
    int ndim = t->ndim;
    int64_t per[ENG_MAX_DIMS] = {0};
    if (ndim == 4)
        per[1] = t->ne[3], per[2] = t->ne[1], per[3] = t->ne[2];
    else
        for (int d = 1; d < ndim; d++)
            per[d] = t->ne[d];
    if (o->ndim == 0) {
        o->ndim = ndim;
        memcpy(o->shape, per, sizeof per);
    } else if (o->ndim != ndim || memcmp(o->shape + 1, per + 1, sizeof(int64_t) * (ENG_MAX_DIMS - 1)) != 0) {
        char a[64], b[64];
        snprintf(s->error, sizeof s->error, "tap '%s' changed shape between batches (%s now, %s before)", name,
                 eng_shape_str(t, a, sizeof a), eng_dims_str(o->ndim - 1, o->shape + 1, b, sizeof b));
        return;
    }
    int64_t n = t->ne[0], rows = eng_tensor_nrows(t), inner = t->ne[ndim - 1];
    float *dst = out_grow(o, (size_t)eng_tensor_nelem(t));
    if (ndim == 4) {
        int64_t h = t->ne[1], w = t->ne[2], c = t->ne[3];
        for (int64_t r = 0; r < rows; r++) { /* r = (i * h + y) * w + x */
            const float *src = eng_tensor_row(t, r);
            int64_t x = r % w, y = (r / w) % h, i = r / (w * h);
            float *d = dst + (size_t)i * c * h * w + (size_t)y * w + x;
            for (int64_t ch = 0; ch < c; ch++)
                d[(size_t)ch * h * w] = src[ch];
        }
    } else {
        for (int64_t r = 0; r < rows; r++)
            memcpy(dst + (size_t)r * inner, eng_tensor_row(t, r), (size_t)inner * sizeof(float));
    }
    o->shape[0] += n;
}

/* ---- attention maps ---- */

struct run_taps {
    struct tap_state *taps;   /* --taps, or NULL */
    const struct mdl_model *m;
    struct mdl_attn_image *att; /* this batch's images, or NULL */
};

static void on_any_tap(void *user, const char *name, const struct eng_tensor *t)
{
    struct run_taps *rt = user;
    if (rt->taps)
        on_tap(rt->taps, name, t);
    if (rt->att)
        for (int64_t i = 0; i < t->ne[0]; i++)
            mdl_attn_tap(rt->m, &rt->att[i], name, t, i);
}

/* Append image a's maps (finished) to the outputs. */
static void add_attention(struct outputs *outs, const struct mdl_model *m, const struct mdl_attn_image *a)
{
    const struct mdl_attention *at = &m->attn;
    char full[ENG_NAME_MAX + 8];
    for (int l = 0; l < at->nlayers; l++) {
        snprintf(full, sizeof full, "attention/%s", m->taps[at->layer_tap[l]]);
        struct out_tensor *t = out_get(outs, full);
        t->ndim = 3, t->shape[1] = at->layer_h[l], t->shape[2] = at->layer_w[l], t->shape[0]++;
        size_t n = (size_t)at->layer_h[l] * (size_t)at->layer_w[l];
        memcpy(out_grow(t, n), mdl_attn_layer_map(m, a, l), n * sizeof(float));
    }
    if (at->nlayers) {
        struct out_tensor *t = out_get(outs, "attention_weight");
        t->ndim = 2, t->shape[1] = at->nlayers, t->shape[0]++;
        memcpy(out_grow(t, (size_t)at->nlayers), a->weight, (size_t)at->nlayers * sizeof(float));
    }
    for (int s = 0; s < a->nlabels; s++) {
        snprintf(full, sizeof full, "cam/%s", m->manifest.labels[a->labels[s]]);
        struct out_tensor *t = out_get(outs, full);
        t->ndim = 3, t->shape[1] = at->cam_h, t->shape[2] = at->cam_w, t->shape[0]++;
        size_t n = (size_t)at->cam_h * (size_t)at->cam_w;
        memcpy(out_grow(t, n), mdl_attn_cam(m, a, s), n * sizeof(float));
    }
}

/* ---- inputs ---- */

/* Read a whole file (at most cap bytes) into a malloc'd buffer. Returns 0, or -1 with errbuf. */
static int read_file(const char *path, size_t cap, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = 0, size = 1 << 16;
    uint8_t *buf = malloc(size);
    while (buf) {
        n += fread(buf + n, 1, size - n, fp);
        if (n < size)
            break;
        if (size >= cap + 1) {
            snprintf(err, errlen, "%s is larger than %zu bytes", path, cap);
            free(buf), fclose(fp);
            return -1;
        }
        size_t grown = size * 2 > cap + 1 ? cap + 1 : size * 2;
        uint8_t *b = realloc(buf, grown);
        if (!b)
            free(buf);
        buf = b, size = grown;
    }
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        fclose(fp);
        return -1;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        free(buf), fclose(fp);
        return -1;
    }
    fclose(fp);
    *out = buf, *len = n;
    return 0;
}

/* Decode and preprocess every image into nhwc (nimages x floats of p). The preprocessing has
 * its own context, its scratch grown to the largest image. */
static void preprocess_images(const struct options *o, const struct mdl_preprocess *p, float *nhwc)
{
    struct eng_ctx ctx;
    size_t have = 0;
    if (eng_ctx_init(&ctx, o->threads, 0) < 0)
        cli_die("%s", eng_errmsg());
    size_t per = mdl_preprocess_floats(p);
    for (int i = 0; i < o->nimages; i++) {
        uint8_t *bytes;
        size_t len;
        char err[512];
        if (read_file(o->images[i], MAX_IMAGE_FILE, &bytes, &len, err, sizeof err) < 0)
            cli_die("%s", err);
        struct srv_image img;
        enum srv_decode_status st = srv_decode_image(bytes, len, o->max_pixels, &img, err, sizeof err);
        free(bytes);
        if (st != SRV_DECODE_OK)
            cli_die("%s: %s", o->images[i], err);
        size_t need = mdl_preprocess_scratch_bytes(p, img.width, img.height);
        if (need > have) {
            eng_ctx_free(&ctx);
            if (eng_ctx_init(&ctx, o->threads, need) < 0)
                cli_die("%s", eng_errmsg());
            have = need;
        }
        struct mdl_image view = {img.width, img.height, img.channels, img.data, img.stride};
        if (mdl_preprocess_run(&ctx, p, &view, nhwc + (size_t)i * per) < 0)
            cli_die("%s: %s", o->images[i], eng_errmsg());
        srv_image_free(&img);
    }
    eng_ctx_free(&ctx);
}

/* NHWC <-> NCHW for n images of h x w x c. */
static void nhwc_to_nchw(const float *src, float *dst, int64_t n, int64_t h, int64_t w, int64_t c)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                for (int64_t k = 0; k < c; k++)
                    dst[((i * c + k) * h + y) * w + x] = src[((i * h + y) * w + x) * c + k];
}

static void nchw_to_nhwc(const float *src, float *dst, int64_t n, int64_t h, int64_t w, int64_t c)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    dst[((i * h + y) * w + x) * c + k] = src[((i * c + k) * h + y) * w + x];
}

/* Append the preprocessed images as 'input' [N, C, H, W]. */
static void add_input_output(struct outputs *outs, const float *nhwc, int n, const struct mdl_preprocess *p)
{
    struct out_tensor *t = out_get(outs, "input");
    t->ndim = 4;
    t->shape[0] = n, t->shape[1] = p->channels, t->shape[2] = p->out_h, t->shape[3] = p->out_w;
    float *dst = out_grow(t, (size_t)n * mdl_preprocess_floats(p));
    nhwc_to_nchw(nhwc, dst, n, p->out_h, p->out_w, p->channels);
}

static json_t *make_metadata(const struct mdl_manifest *man)
{
    json_t *labels = json_array();
    for (int i = 0; i < man->nlabels; i++)
        json_array_append_new(labels, json_string(man->labels[i]));
    char *ltext = json_dumps(labels, JSON_COMPACT);
    json_decref(labels);
    json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "format", "pt", "model", man->name, "family",
                             man->family, "version", man->version, "task", man->task, "demo",
                             man->demo ? "true" : "false", "labels", ltext ? ltext : "[]");
    free(ltext);
    if (!meta)
        cli_die("out of memory for metadata");
    return meta;
}

/* Print the k best of n scores ("label 0.812"); names may be NULL (then "#i"). */
static void print_top(const char *who, const float *s, int n, const char **names, const char *what)
{
    int idx[3] = {-1, -1, -1}, k = n < 3 ? n : 3;
    for (int j = 0; j < k; j++)
        for (int i = 0; i < n; i++) {
            bool used = false;
            for (int q = 0; q < j; q++)
                used |= idx[q] == i;
            if (!used && (idx[j] < 0 || s[i] > s[idx[j]]))
                idx[j] = i;
        }
    printf("%s:", who);
    for (int j = 0; j < k; j++) {
        if (names)
            printf("%s %s %.4f", j ? "," : "", names[idx[j]], s[idx[j]]);
        else
            printf("%s %s[%d] %.4f", j ? "," : "", what, idx[j], s[idx[j]]);
    }
    printf("\n");
}

/* --preprocess-only: the manifest's preprocess block, the images, 'input'. */
static int run_preprocess_only(const struct options *o, const char *name)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/manifest.json", o->model_dir) >= sizeof path)
        cli_die("model path too long");
    struct mdl_manifest man;
    if (mdl_manifest_load(&man, path, name) < 0)
        cli_die("%s", eng_errmsg());
    struct mdl_preprocess p;
    if (mdl_preprocess_parse(&p, json_object_get(man.json, "preprocess"), path) < 0)
        cli_die("%s", eng_errmsg());
    size_t per = mdl_preprocess_floats(&p);
    float *nhwc = xcalloc((size_t)o->nimages * per, sizeof(float), "the preprocessed images");
    preprocess_images(o, &p, nhwc);
    struct outputs outs = {0};
    add_input_output(&outs, nhwc, o->nimages, &p);
    write_safetensors(o->output, &outs, make_metadata(&man));
    if (!o->quiet)
        for (int i = 0; i < o->nimages; i++)
            printf("%s: input [%d, %d, %d]\n", o->images[i], p.channels, p.out_h, p.out_w);
    outputs_free(&outs);
    free(nhwc);
    mdl_manifest_free(&man);
    return 0;
}

/* --taps split into names; the names point into `copy`. */
struct tap_list {
    char *copy;
    char **names;
    int n;
};

static void split_taps(const char *list, struct tap_list *t)
{
    size_t len = strlen(list);
    t->copy = xcalloc(len + 1, 1, "the tap list");
    memcpy(t->copy, list, len + 1);
    t->names = xcalloc(len + 1, sizeof *t->names, "the tap list");
    t->n = 0;
    for (char *s = t->copy, *tok; (tok = strtok(s, ",")); s = NULL)
        t->names[t->n++] = tok;
    if (t->n == 0)
        cli_usage_error("--taps lists no names");
}

int main(int argc, char **argv)
{
    struct options o;
    parse_options(argc, argv, &o);
    char name[MDL_NAME_MAX];
    if (o.name)
        snprintf(name, sizeof name, "%s", o.name);
    else
        dir_basename(o.model_dir, name, sizeof name);
    eng_init();
    if (o.preprocess_only) {
        int rc = run_preprocess_only(&o, name);
        free(o.images);
        return rc;
    }

    /* The number of images decides the default max_batch, so look at --input first. */
    struct eng_st_file *in_file = NULL;
    const struct eng_st_info *in_info = NULL;
    int64_t n_total = o.nimages;
    if (o.input) {
        in_file = eng_st_open(o.input);
        if (!in_file)
            cli_die("%s", eng_errmsg());
        in_info = eng_st_find(in_file, "input");
        if (!in_info)
            cli_die("%s: no tensor named 'input'", o.input);
        if (in_info->ndim != 4)
            cli_die("%s: tensor 'input' has %d dimensions; expected 4 (N x C x H x W)", o.input, in_info->ndim);
        n_total = in_info->shape[0];
        if (n_total < 1)
            cli_die("%s: tensor 'input' holds no images", o.input);
    }
    int max_batch = o.max_batch;
    if (!max_batch)
        max_batch = n_total < DEFAULT_MAX_BATCH_CAP ? (int)n_total : DEFAULT_MAX_BATCH_CAP;
    int batch = o.batch ? o.batch : max_batch;
    if (batch > max_batch)
        cli_usage_error("--batch %d is larger than max-batch %d", batch, max_batch);

    struct mdl_model *m = mdl_model_load(o.model_dir, name, max_batch);
    if (!m)
        cli_die("%s", eng_errmsg());
    size_t per = (size_t)(m->in_h * m->in_w * m->in_c);
    float *nhwc = xcalloc((size_t)n_total * per, sizeof(float), "the input batch");
    struct outputs outs = {0};
    if (in_file) {
        const int64_t *s = in_info->shape;
        if (s[1] != m->in_c || s[2] != m->in_h || s[3] != m->in_w)
            cli_die("%s: tensor 'input' is [%lld,%lld,%lld,%lld]; model '%s' takes N x %lld x %lld x %lld (C x H x W)",
                o.input, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], name,
                (long long)m->in_c, (long long)m->in_h, (long long)m->in_w);
        float *nchw = xcalloc((size_t)n_total * per, sizeof(float), "the input tensor");
        size_t got;
        if (eng_st_read_any(in_file, "input", nchw, (size_t)n_total * per, &got) < 0)
            cli_die("%s", eng_errmsg());
        nchw_to_nhwc(nchw, nhwc, n_total, m->in_h, m->in_w, m->in_c);
        free(nchw);
        eng_st_close(in_file);
    } else {
        preprocess_images(&o, &m->pre, nhwc);
        add_input_output(&outs, nhwc, o.nimages, &m->pre);
    }

    struct tap_state taps = {.outs = &outs};
    struct tap_list tap_list = {0};
    if (o.taps && strcmp(o.taps, "all") == 0) {
        taps.all = true;
    } else if (o.taps) {
        split_taps(o.taps, &tap_list);
        taps.want = tap_list.names;
        taps.nwant = tap_list.n;
        /* m->taps is complete when it did not overflow: an unknown name fails before the run. */
        for (int i = 0; m->ntaps < MDL_MAX_TAPS && i < taps.nwant; i++) {
            bool known = false;
            for (int k = 0; k < m->ntaps; k++)
                known |= strcmp(m->taps[k], taps.want[i]) == 0;
            if (!known) {
                char list[MDL_MAX_TAPS * 66] = "";
                for (int k = 0; k < m->ntaps; k++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", m->taps[k]);
                cli_usage_error("model '%s' has no tap '%s' (it offers: %s)", name, taps.want[i],
                            m->ntaps ? list : "none");
            }
        }
    }

    struct mdl_runner r;
    if (mdl_runner_init(&r, m, o.threads) < 0)
        cli_die("model '%s': %s", name, eng_errmsg());
    int nlabels = m->manifest.nlabels;
    struct out_tensor *logits = out_get(&outs, "logits");
    logits->ndim = 2, logits->shape[0] = n_total, logits->shape[1] = m->nout;
    out_grow(logits, (size_t)n_total * (size_t)m->nout);
    struct out_tensor *probs = NULL;
    if (nlabels > 0) {
        probs = out_get(&outs, "probs");
        probs->ndim = 2, probs->shape[0] = n_total, probs->shape[1] = nlabels;
        out_grow(probs, (size_t)n_total * (size_t)nlabels);
    }
    /* --attention: every layer, a CAM for every label (when the model has a CAM). */
    struct mdl_attn_image *att = NULL;
    float *att_buf = NULL;
    int *all_labels = NULL;
    if (o.attention) {
        if (m->attn.nlayers == 0 && m->attn.cam == MDL_CAM_NONE)
            cli_die("model '%s' has no attention maps (its manifest has no \"attention\" block)", name);
        att = xcalloc((size_t)batch, sizeof *att, "attention state");
        att_buf = xcalloc((size_t)batch * (m->attn.floats ? m->attn.floats : 1), sizeof(float), "attention maps");
        all_labels = xcalloc((size_t)(nlabels ? nlabels : 1), sizeof(int), "labels");
        for (int k = 0; k < nlabels; k++)
            all_labels[k] = k;
    }
    struct run_taps rt = {.taps = o.taps ? &taps : NULL, .m = m, .att = att};
    /* out_get may move the list: look the two up again after every tap has been added. */
    for (int64_t start = 0; start < n_total; start += batch) {
        int n = (int)(n_total - start < batch ? n_total - start : batch);
        for (int i = 0; att && i < n; i++)
            att[i] = (struct mdl_attn_image){.want_layers = true,
                                             .labels = all_labels,
                                             .nlabels = m->attn.cam != MDL_CAM_NONE ? nlabels : 0,
                                             .buf = att_buf + (size_t)i * m->attn.floats};
        struct mdl_output mo = {
            .logits = out_get(&outs, "logits")->data + start * m->nout,
            .probs = nlabels ? out_get(&outs, "probs")->data + start * nlabels : NULL,
            .tap = o.taps || att ? on_any_tap : NULL,
            .tap_user = &rt,
        };
        if (mdl_model_run(m, &r, nhwc + (size_t)start * per, n, &mo) < 0)
            cli_die("%s", eng_errmsg());
        if (taps.error[0])
            cli_die("model '%s': %s", name, taps.error);
        if (att && mdl_attn_finish_batch(m, &r, att, n) < 0)
            cli_die("model '%s': attention maps: %s", name, eng_errmsg());
        for (int i = 0; att && i < n; i++)
            add_attention(&outs, m, &att[i]);
    }
    free(att);
    free(att_buf);
    free(all_labels);
    /* Every tap asked for must have come, once per image. */
    for (int i = 0; i < taps.nwant; i++) {
        char full[ENG_NAME_MAX + 8];
        snprintf(full, sizeof full, "tap/%s", taps.want[i]);
        struct out_tensor *t = NULL;
        for (int k = 0; k < outs.n; k++)
            if (strcmp(outs.t[k].name, full) == 0)
                t = &outs.t[k];
        if (!t) {
            char list[256 * 66] = "";
            for (int k = 0; k < taps.noffered; k++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", taps.offered[k]);
            cli_die("model '%s' offered no tap '%s' (it offered: %s)", name, taps.want[i],
                taps.noffered ? list : "none");
        }
    }
    for (int k = 0; k < outs.n; k++)
        if (strncmp(outs.t[k].name, "tap/", 4) == 0 && outs.t[k].shape[0] != n_total)
            cli_die("model '%s': tap '%s' came for %lld images, not %lld (offered more than once per pass?)", name,
                outs.t[k].name + 4, (long long)outs.t[k].shape[0], (long long)n_total);
    if (taps.all && taps.noffered == 0)
        fprintf(stderr, "salient-run: warning: model '%s' offers no taps\n", name);

    write_safetensors(o.output, &outs, make_metadata(&m->manifest));
    if (!o.quiet) {
        const float *lg = out_get(&outs, "logits")->data;
        const float *pr = nlabels ? out_get(&outs, "probs")->data : NULL;
        for (int64_t i = 0; i < n_total; i++) {
            char who[4200];
            if (o.nimages)
                snprintf(who, sizeof who, "%s", o.images[i]);
            else
                snprintf(who, sizeof who, "input[%lld]", (long long)i);
            if (pr)
                print_top(who, pr + i * nlabels, nlabels, m->manifest.labels, "label");
            else
                print_top(who, lg + i * m->nout, (int)m->nout, NULL, "logit");
        }
        printf("wrote %s (%d tensors)\n", o.output, outs.n);
    }
    mdl_runner_free(&r);
    outputs_free(&outs);
    free(tap_list.names);
    free(tap_list.copy);
    free(nhwc);
    free(o.images);
    mdl_model_free(m);
    return 0;
}
