/* salient_faces.c: salient-faces, a faceapi model on image files (faces as JSON), face verification, or one face network on a tensor. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/faceapi.h"
#include "models/model.h"
#include "server/decode_image.h"
#include "tools/cli.h"
#include "server/faces.h"

#define MAX_IMAGE_FILE ((size_t)1 << 30)

const char *const cli_prog = "salient-faces";

static const char usage_text[] =
    "usage: salient-faces --model DIR --image FILE [--image FILE ...] [options]   faces in each image\n"
    "       salient-faces --model DIR --verify --image A --image B [options]     same person or not\n"
    "       salient-faces --model DIR --net NAME --input X.safetensors           one network on a tensor\n"
    "\n"
    "Run a faceapi model (face-api's networks and pipeline) outside the server; JSON to --output or stdout.\n"
    "\n"
    "  --model DIR          the model's folder (manifest.json + face-api's weights manifests and .bin files)\n"
    "  --image FILE         JPEG or PNG (decoded as the server decodes it), or binary PPM (P6) / PGM (P5)\n"
    "                       with maxval 255: raw pixels, e.g. decoded elsewhere (repeatable)\n"
    "  --detector NAME      ssd_mobilenetv1 | tiny_face_detector (default: the manifest's)\n"
    "  --input-size N       tiny detector input side, a multiple of 32 (default: the manifest's, 416)\n"
    "  --score X            keep faces scoring above X (default 0.5)\n"
    "  --iou X              NMS IoU threshold (default: SSD 0.5, tiny 0.4)\n"
    "  --max-faces N        per image (default: the manifest's, 100)\n"
    "  --tasks LIST         landmarks,age_gender,expression,descriptor | all | none (default: the manifest's)\n"
    "  --tiny-landmarks     FaceLandmark68TinyNet instead of FaceLandmark68Net\n"
    "  --batch N            images per run (default: the model's max batch)\n"
    "  --threads N          engine threads (default 1)\n"
    "  --verify             two images: the best face of each, descriptor distance, same_person\n"
    "  --threshold X        verification distance threshold (default 0.6, face-api's)\n"
    "  --net NAME           run one network (ssd_mobilenetv1, tiny_face_detector, face_landmark_68,\n"
    "                       face_landmark_68_tiny, face_recognition, face_expression, age_gender) on --input:\n"
    "                       a safetensors tensor 'input' [N, side, side, 3] (NHWC, pixels 0..255, what\n"
    "                       face-api's toBatchTensor hands the net); writes {\"net\", \"shape\", \"output\"}\n"
    "  --attention          also each face's attention maps (with --net face_expression or age_gender, each\n"
    "                       image's) as the model computes them: \"maps\": {\"layers\": {name: {\"grid\",\n"
    "                       \"weight\", \"map\"}}, \"cam\": {label: {\"grid\", \"map\"}}}, layer maps normalised\n"
    "                       to [0, 1], CAMs raw (logits; years for age)\n"
    "  --repeat N           run the whole thing N times; each one's wall time goes in \"timing_ms\",\n"
    "                       its CPU time (all threads) in \"cpu_ms\"\n"
    "  --output FILE        write the JSON here (default: stdout)\n"
    "  --help               this text\n"
    "\n"
    "Exit status: 0 done, 1 error, 2 bad usage.\n";

struct options {
    const char *model, *output, *net, *input, *tasks;
    const char **images;
    int nimages;
    struct mdl_face_opts fo;
    bool have_detector, tiny_landmarks, verify, attention;
    float threshold;
    int batch, threads, repeat;
};

static float parse_float(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        cli_usage_error("%s wants a number, not '%s'", opt, s);
    return (float)v;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    enum { OPT_DETECTOR = 256, OPT_INPUT_SIZE, OPT_SCORE, OPT_IOU, OPT_MAX_FACES, OPT_TASKS, OPT_TINY_LM,
           OPT_VERIFY, OPT_THRESHOLD, OPT_NET, OPT_REPEAT, OPT_ATTENTION };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"image", required_argument, NULL, 'I'},
        {"output", required_argument, NULL, 'o'},
        {"input", required_argument, NULL, 'i'},
        {"detector", required_argument, NULL, OPT_DETECTOR},
        {"input-size", required_argument, NULL, OPT_INPUT_SIZE},
        {"score", required_argument, NULL, OPT_SCORE},
        {"iou", required_argument, NULL, OPT_IOU},
        {"max-faces", required_argument, NULL, OPT_MAX_FACES},
        {"tasks", required_argument, NULL, OPT_TASKS},
        {"tiny-landmarks", no_argument, NULL, OPT_TINY_LM},
        {"verify", no_argument, NULL, OPT_VERIFY},
        {"threshold", required_argument, NULL, OPT_THRESHOLD},
        {"net", required_argument, NULL, OPT_NET},
        {"repeat", required_argument, NULL, OPT_REPEAT},
        {"attention", no_argument, NULL, OPT_ATTENTION},
        {"batch", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->repeat = 1;
    o->images = calloc((size_t)argc + 1, sizeof *o->images);
    if (!o->images)
        cli_die("out of memory");
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'I': o->images[o->nimages++] = optarg; break;
        case 'o': o->output = optarg; break;
        case 'i': o->input = optarg; break;
        case OPT_DETECTOR:
            if (mdl_face_detector_parse(optarg, &o->fo.detector) < 0)
                cli_usage_error("%s", eng_errmsg());
            o->have_detector = true;
            break;
        case OPT_INPUT_SIZE: o->fo.input_size = (int)cli_parse_int("--input-size", optarg, 32, 4096); break;
        case OPT_SCORE: o->fo.score_threshold = parse_float("--score", optarg); break;
        case OPT_IOU: o->fo.iou_threshold = parse_float("--iou", optarg); break;
        case OPT_MAX_FACES: o->fo.max_faces = (int)cli_parse_int("--max-faces", optarg, 1, MDL_FACE_MAX_FACES); break;
        case OPT_TASKS: o->tasks = optarg; break;
        case OPT_TINY_LM: o->tiny_landmarks = true; break;
        case OPT_VERIFY: o->verify = true; break;
        case OPT_THRESHOLD: o->threshold = parse_float("--threshold", optarg); break;
        case OPT_NET: o->net = optarg; break;
        case OPT_ATTENTION: o->attention = true; break;
        case OPT_REPEAT: o->repeat = (int)cli_parse_int("--repeat", optarg, 1, 100000); break;
        case 'b': o->batch = (int)cli_parse_int("--batch", optarg, 1, 4096); break;
        case 'j': o->threads = (int)cli_parse_int("--threads", optarg, 1, 1024); break;
        case 'h': fputs(usage_text, stdout); exit(0);
        case ':': cli_usage_error("%s needs a value", argv[optind - 1]);
        default: cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->model)
        cli_usage_error("--model DIR is required");
    if (o->net ? !o->input || o->nimages : !o->nimages || o->input)
        cli_usage_error("give --image FILE (one or more), or --net NAME with --input FILE");
    if (o->verify && o->nimages != 2)
        cli_usage_error("--verify takes exactly two --image files");
}

/* ---- images ---- */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        cli_die("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap)
            break;
        if (cap > MAX_IMAGE_FILE)
            cli_die("%s is larger than %zu bytes", path, MAX_IMAGE_FILE);
        uint8_t *b = realloc(buf, cap * 2);
        if (!b)
            free(buf);
        buf = b, cap *= 2;
    }
    if (!buf || ferror(fp))
        cli_die("cannot read %s", path);
    fclose(fp);
    *len = n;
    return buf;
}

/* One header number of a PNM file, skipping whitespace and comments. */
static long pnm_number(const uint8_t *b, size_t len, size_t *pos, const char *path)
{
    for (;;) {
        while (*pos < len && (b[*pos] == ' ' || b[*pos] == '\t' || b[*pos] == '\n' || b[*pos] == '\r'))
            (*pos)++;
        if (*pos < len && b[*pos] == '#') {
            while (*pos < len && b[*pos] != '\n')
                (*pos)++;
            continue;
        }
        break;
    }
    long v = 0;
    size_t start = *pos;
    while (*pos < len && b[*pos] >= '0' && b[*pos] <= '9' && v < 1000000)
        v = v * 10 + (b[(*pos)++] - '0');
    if (*pos == start)
        cli_die("%s: not a valid PPM/PGM header", path);
    return v;
}

/* Binary PPM (P6, RGB) or PGM (P5, gray), maxval 255. */
static void decode_pnm(const uint8_t *b, size_t len, const char *path, struct srv_image *img)
{
    size_t pos = 2;
    long w = pnm_number(b, len, &pos, path), h = pnm_number(b, len, &pos, path), max = pnm_number(b, len, &pos, path);
    int ch = b[1] == '6' ? 3 : 1;
    if (max != 255 || w < 1 || h < 1 || pos >= len)
        cli_die("%s: only 8-bit (maxval 255) PPM/PGM files of at least 1x1 pixels", path);
    pos++; /* the single whitespace after maxval */
    size_t need = (size_t)w * (size_t)h * (size_t)ch;
    if (len - pos < need)
        cli_die("%s: %zu bytes of pixels, %ldx%ld needs %zu", path, len - pos, w, h, need);
    img->width = (int)w, img->height = (int)h, img->channels = ch, img->stride = (size_t)w * ch;
    img->data = malloc(need);
    if (!img->data)
        cli_die("out of memory for %s", path);
    memcpy(img->data, b + pos, need);
}

static void load_image(const char *path, struct srv_image *img)
{
    size_t len;
    uint8_t *b = read_file(path, &len);
    memset(img, 0, sizeof *img);
    if (len >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) {
        decode_pnm(b, len, path, img);
    } else {
        char err[256];
        if (srv_decode_image(b, len, 0, img, err, sizeof err) != SRV_DECODE_OK)
            cli_die("%s: %s", path, err);
    }
    free(b);
}

/* ---- JSON ---- */

static void write_json(const char *path, json_t *j)
{
    int flags = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9);
    if (path ? json_dump_file(j, path, flags) < 0 : json_dumpf(j, stdout, flags) < 0)
        cli_die("cannot write %s", path ? path : "stdout");
    if (!path)
        fputc('\n', stdout);
}

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* CPU time of the whole process (all threads): what a run costs when others share the CPU. */
static double cpu_ms(void)
{
    return clock_ms(CLOCK_PROCESS_CPUTIME_ID);
}

/* ---- modes ---- */

static json_t *floats_json(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

/* One face's (or image's) maps: {"layers": {name: {grid, weight, map}}, "cam": {label: {grid, map}}}. */
static json_t *maps_json(const struct mdl_face_attention *at, const struct mdl_face_maps *mp)
{
    json_t *layers = json_object(), *cams = json_object();
    for (int l = 0; l < at->nlayers; l++)
        if (mp->layers & (1u << l))
            json_object_set_new(layers, at->layer[l],
                                json_pack("{s:[i, i], s:f, s:o}", "grid", at->layer_h[l], at->layer_w[l], "weight",
                                          (double)mp->weight[l], "map",
                                          floats_json(mp->buf + at->layer_off[l],
                                                      (size_t)at->layer_h[l] * (size_t)at->layer_w[l])));
    for (int k = 0; k < MDL_FACE_CAMS; k++)
        if (mp->cams & (1u << k))
            json_object_set_new(cams, mdl_face_cam_labels[k],
                                json_pack("{s:[i, i], s:o}", "grid", at->cam_h[k], at->cam_w[k], "map",
                                          floats_json(mp->buf + at->cam_off[k],
                                                      (size_t)at->cam_h[k] * (size_t)at->cam_w[k])));
    return json_pack("{s:o, s:o}", "layers", layers, "cam", cams);
}

static const struct mdl_face_attention *attention_of(const struct mdl_model *m)
{
    const struct mdl_face_attention *at = mdl_face_attention(m);
    if (!at)
        cli_die("this face model has no attention maps (its manifest has no \"attention\")");
    return at;
}

static json_t *run_net(const struct options *o, const struct mdl_model *m, struct mdl_runner *r, json_t *timing,
                       json_t *cpu)
{
    enum mdl_face_net net;
    if (mdl_face_net_parse(o->net, &net) < 0)
        cli_usage_error("%s", eng_errmsg());
    struct eng_st_file *f = eng_st_open(o->input);
    if (!f)
        cli_die("%s", eng_errmsg());
    const struct eng_st_info *in = eng_st_find(f, "input");
    if (!in || in->ndim != 4 || in->shape[3] != 3 || in->shape[1] != in->shape[2])
        cli_die("%s: needs a tensor 'input' [N, side, side, 3]", o->input);
    int n = (int)in->shape[0], side = (int)in->shape[1];
    size_t nx = (size_t)n * side * side * 3;
    int64_t per = mdl_face_net_outputs(net, side);
    float *x = malloc(nx * sizeof(float)), *y = malloc((size_t)(n * per) * sizeof(float));
    size_t got;
    if (!x || !y)
        cli_die("out of memory");
    if (eng_st_read_any(f, "input", x, nx, &got) < 0)
        cli_die("%s", eng_errmsg());
    eng_st_close(f);
    const struct mdl_face_attention *at = o->attention ? attention_of(m) : NULL;
    struct mdl_face_maps *maps = at ? calloc((size_t)n, sizeof *maps) : NULL;
    float *mbuf = at ? calloc((size_t)n * (at->floats ? at->floats : 1), sizeof(float)) : NULL;
    if (at && (!maps || !mbuf))
        cli_die("out of memory");
    for (int i = 0; at && i < n; i++)
        maps[i].buf = mbuf + (size_t)i * at->floats;
    for (int k = 0; k < o->repeat; k++) {
        double t0 = now_ms(), c0 = cpu_ms();
        if ((at ? mdl_face_net_run_maps(m, r, net, x, n, side, y, maps) : mdl_face_net_run(m, r, net, x, n, side, y)) < 0)
            cli_die("%s", eng_errmsg());
        json_array_append_new(timing, json_real(now_ms() - t0));
        json_array_append_new(cpu, json_real(cpu_ms() - c0));
    }
    json_t *out = json_array();
    for (int64_t i = 0; i < n * per; i++)
        json_array_append_new(out, json_real(y[i]));
    free(x), free(y);
    json_t *res = json_pack("{s:s, s:[i, I], s:o}", "net", mdl_face_net_names[net], "shape", n, (json_int_t)per, "output", out);
    if (at) {
        json_t *list = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(list, maps_json(at, &maps[i]));
        json_object_set_new(res, "maps", list);
    }
    free(maps), free(mbuf);
    return res;
}

int main(int argc, char **argv)
{
    struct options o;
    parse_options(argc, argv, &o);
    eng_init();
    int max_batch = o.batch ? o.batch : (o.verify ? 2 : 0);
    struct mdl_model *m = mdl_model_load(o.model, "faces", max_batch);
    if (!m)
        cli_die("%s", eng_errmsg());
    if (!mdl_model_takes_images(m))
        cli_die("%s is not a face model (family %s)", o.model, m->family->name);
    struct mdl_face_opts fo;
    mdl_face_opts_default(m, &fo);
    if (o.have_detector)
        fo.detector = o.fo.detector;
    if (o.fo.input_size)
        fo.input_size = o.fo.input_size;
    if (o.fo.score_threshold)
        fo.score_threshold = o.fo.score_threshold;
    if (o.fo.iou_threshold)
        fo.iou_threshold = o.fo.iou_threshold;
    if (o.fo.max_faces)
        fo.max_faces = o.fo.max_faces;
    if (o.tiny_landmarks)
        fo.tiny_landmarks = true;
    if (o.tasks && strcmp(o.tasks, "none") == 0)
        fo.tasks = 0;
    else if (o.tasks && mdl_face_tasks_parse(o.tasks, &fo.tasks) < 0)
        cli_usage_error("%s", eng_errmsg());
    fo.attention = o.attention && !o.verify && !o.net;
    if (mdl_face_opts_check(m, &fo) < 0)
        cli_usage_error("%s", eng_errmsg());

    struct mdl_runner r;
    if (mdl_runner_init(&r, m, o.threads) < 0)
        cli_die("%s", eng_errmsg());
    json_t *timing = json_array(), *cpu = json_array(), *result;
    if (o.net) {
        result = run_net(&o, m, &r, timing, cpu);
    } else {
        struct srv_image *imgs = calloc((size_t)o.nimages, sizeof *imgs);
        struct mdl_image *views = calloc((size_t)o.nimages, sizeof *views);
        struct mdl_face_opts *opts = calloc((size_t)o.nimages, sizeof *opts);
        struct mdl_faces *out = calloc((size_t)o.nimages, sizeof *out);
        struct mdl_face *faces = calloc((size_t)o.nimages * (size_t)fo.max_faces, sizeof *faces);
        const struct mdl_face_attention *at = fo.attention ? attention_of(m) : NULL;
        size_t per_image = at ? (size_t)fo.max_faces * (at->floats ? at->floats : 1) : 0;
        float *mbuf = at ? calloc((size_t)o.nimages * per_image, sizeof(float)) : NULL;
        if (!imgs || !views || !opts || !out || !faces || (at && !mbuf))
            cli_die("out of memory");
        for (int i = 0; i < o.nimages; i++) {
            load_image(o.images[i], &imgs[i]);
            views[i] = (struct mdl_image){imgs[i].width, imgs[i].height, imgs[i].channels, imgs[i].data, imgs[i].stride};
            opts[i] = fo;
        }
        if (o.verify) {
            struct mdl_face_verify v;
            for (int k = 0; k < o.repeat; k++) {
                double t0 = now_ms(), c0 = cpu_ms();
                if (mdl_face_verify(m, &r, &views[0], &views[1], &fo, o.threshold, &v) < 0)
                    cli_die("%s", eng_errmsg());
                json_array_append_new(timing, json_real(now_ms() - t0));
                json_array_append_new(cpu, json_real(cpu_ms() - c0));
            }
            json_t *fs = json_array();
            for (int i = 0; i < 2; i++)
                json_array_append_new(fs, v.found[i] ? srv_face_json(&v.face[i]) : json_null());
            result = json_pack("{s:o, s:f, s:b, s:o}", "distance", v.found[0] && v.found[1] ? json_real(v.distance) : json_null(),
                               "threshold", (double)v.threshold, "same_person", v.same_person, "faces", fs);
        } else {
            int batch = m->max_batch;
            for (int k = 0; k < o.repeat; k++) {
                double t0 = now_ms(), c0 = cpu_ms();
                for (int s = 0; s < o.nimages; s += batch) {
                    int n = o.nimages - s < batch ? o.nimages - s : batch;
                    /* results in the runner's arena (as the server keeps them), copied out
                     * before the next run reuses it */
                    for (int i = s; i < s + n; i++)
                        out[i] = (struct mdl_faces){NULL, 0, 0, at ? mbuf + (size_t)i * per_image : NULL};
                    if (mdl_model_run_images(m, &r, views + s, opts + s, n, out + s) < 0)
                        cli_die("%s", eng_errmsg());
                    for (int i = s; i < s + n; i++) {
                        struct mdl_face *mine = faces + (size_t)i * fo.max_faces;
                        memcpy(mine, out[i].faces, (size_t)out[i].n * sizeof *mine);
                        out[i].faces = mine;
                    }
                }
                json_array_append_new(timing, json_real(now_ms() - t0));
                json_array_append_new(cpu, json_real(cpu_ms() - c0));
            }
            json_t *list = json_array();
            for (int i = 0; i < o.nimages; i++) {
                json_t *fl = json_array();
                for (int k = 0; k < out[i].n; k++) {
                    json_t *f = srv_face_json(&out[i].faces[k]);
                    if (at && out[i].faces[k].maps.buf) {
                        const struct mdl_face *fk = &out[i].faces[k];
                        json_object_set_new(f, "maps", maps_json(at, &fk->maps));
                        json_object_set_new(f, "crop", json_pack("[i, i, i, i]", fk->crop[0], fk->crop[1], fk->crop[2], fk->crop[3]));
                    }
                    json_array_append_new(fl, f);
                }
                json_array_append_new(list, json_pack("{s:s, s:i, s:i, s:o}", "file", o.images[i], "width",
                                                      imgs[i].width, "height", imgs[i].height, "faces", fl));
            }
            result = json_pack("{s:s, s:o}", "detector", mdl_face_detector_name(fo.detector), "images", list);
        }
        for (int i = 0; i < o.nimages; i++)
            srv_image_free(&imgs[i]);
        free(imgs), free(views), free(opts), free(out), free(faces), free(mbuf);
    }
    if (!result)
        cli_die("out of memory for the JSON answer");
    json_object_set_new(result, "timing_ms", timing);
    json_object_set_new(result, "cpu_ms", cpu);
    write_json(o.output, result);
    json_decref(result);
    mdl_runner_free(&r);
    mdl_model_free(m);
    free(o.images);
    return 0;
}
