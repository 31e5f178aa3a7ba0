/* fixture.c: loading PyTorch fixtures and comparing against them. */
#include "tests/unit/fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

#define FX_MAX_OPS 64

static struct {
    char op[48];
    char worst_case[96];
    double worst;
    double worst_rel;
    int checks;
} fx_ops[FX_MAX_OPS];
static int fx_nops;

void fx_open(struct fx *fx, const char *module)
{
    const char *dir = getenv("SALIENT_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir ? dir : "tests/unit/fixtures", module);
    memset(fx, 0, sizeof *fx);
    snprintf(fx->module, sizeof fx->module, "%s", module);
    fx->file = eng_st_open(path);
    if (!fx->file) {
        fprintf(stderr, "fixture %s: %s\n", path, eng_errmsg());
        exit(1);
    }
    const char *cases = eng_st_metadata(fx->file, "cases");
    json_error_t err;
    fx->cases = cases ? json_loads(cases, 0, &err) : NULL;
    if (!fx->cases || !json_is_array(fx->cases) || json_array_size(fx->cases) == 0) {
        fprintf(stderr, "fixture %s: __metadata__.cases missing, not a JSON list, or empty\n", path);
        exit(1);
    }
}

void fx_close(struct fx *fx)
{
    eng_st_close(fx->file);
    json_decref(fx->cases);
    fx->file = NULL;
    fx->cases = NULL;
}

int fx_ncases(const struct fx *fx)
{
    return (int)json_array_size(fx->cases);
}

json_t *fx_case(const struct fx *fx, int i)
{
    return json_array_get(fx->cases, (size_t)i);
}

const char *fx_name(json_t *c)
{
    const char *s = json_string_value(json_object_get(c, "name"));
    return s ? s : "?";
}

static json_t *fx_param(json_t *c, const char *key)
{
    json_t *v = json_object_get(c, key);
    ck_assert_msg(v != NULL, "case %s: parameter '%s' missing", fx_name(c), key);
    return v;
}

int fx_int(json_t *c, const char *key)
{
    json_t *v = fx_param(c, key);
    ck_assert_msg(json_is_integer(v) || json_is_boolean(v), "case %s: '%s' is not an integer", fx_name(c), key);
    return json_is_boolean(v) ? json_is_true(v) : (int)json_integer_value(v);
}

int fx_int_or(json_t *c, const char *key, int def)
{
    return json_object_get(c, key) ? fx_int(c, key) : def;
}

double fx_num(json_t *c, const char *key)
{
    json_t *v = fx_param(c, key);
    ck_assert_msg(json_is_number(v), "case %s: '%s' is not a number", fx_name(c), key);
    return json_number_value(v);
}

const char *fx_str(json_t *c, const char *key)
{
    json_t *v = fx_param(c, key);
    ck_assert_msg(json_is_string(v), "case %s: '%s' is not a string", fx_name(c), key);
    return json_string_value(v);
}

bool fx_bool(json_t *c, const char *key)
{
    json_t *v = fx_param(c, key);
    ck_assert_msg(json_is_boolean(v), "case %s: '%s' is not a boolean", fx_name(c), key);
    return json_is_true(v);
}

int fx_ints(json_t *c, const char *key, int64_t *out, int cap)
{
    json_t *v = fx_param(c, key);
    ck_assert_msg(json_is_array(v), "case %s: '%s' is not a list", fx_name(c), key);
    int n = (int)json_array_size(v);
    ck_assert_msg(n <= cap, "case %s: '%s' has %d entries, at most %d", fx_name(c), key, n, cap);
    for (int i = 0; i < n; i++)
        out[i] = json_integer_value(json_array_get(v, (size_t)i));
    return n;
}

bool fx_has(const struct fx *fx, json_t *c, const char *key)
{
    char name[256];
    snprintf(name, sizeof name, "%s/%s", fx_name(c), key);
    return eng_st_find(fx->file, name) != NULL;
}

float *fx_load(const struct fx *fx, json_t *c, const char *key, struct eng_tensor *t)
{
    char name[256];
    snprintf(name, sizeof name, "%s/%s", fx_name(c), key);
    const struct eng_st_info *info = eng_st_find(fx->file, name);
    ck_assert_msg(info != NULL, "fixture %s: no tensor '%s'", fx->module, name);
    ck_assert_msg(info->ndim >= 1 && info->ndim <= ENG_MAX_DIMS, "fixture tensor '%s' has %d dims", name,
                  info->ndim);
    size_t n = 1;
    for (int d = 0; d < info->ndim; d++)
        n *= (size_t)info->shape[d];
    float *buf = malloc((n ? n : 1) * sizeof(float));
    ck_assert_msg(buf != NULL, "out of memory");
    size_t got;
    ck_assert_msg(eng_st_read_any(fx->file, name, buf, n, &got) == 0, "%s", eng_errmsg());
    *t = eng_tensor_make(name, buf, info->ndim, info->shape);
    return buf;
}

static void fx_record(const char *op, json_t *c, double err, double rel)
{
    int i;
    for (i = 0; i < fx_nops; i++)
        if (strcmp(fx_ops[i].op, op) == 0)
            break;
    if (i == fx_nops) {
        if (fx_nops == FX_MAX_OPS)
            return;
        fx_nops++;
        snprintf(fx_ops[i].op, sizeof fx_ops[i].op, "%s", op);
        fx_ops[i].worst = -1;
    }
    fx_ops[i].checks++;
    if (err > fx_ops[i].worst) {
        fx_ops[i].worst = err;
        fx_ops[i].worst_rel = rel;
        snprintf(fx_ops[i].worst_case, sizeof fx_ops[i].worst_case, "%s", fx_name(c));
    }
}

double fx_check(const char *op, json_t *c, const struct eng_tensor *got, const struct eng_tensor *want,
                double tol)
{
    char a[64], b[64];
    ck_assert_msg(eng_tensor_same_shape(got, want), "%s %s: got shape %s, want %s", op, fx_name(c),
                  eng_shape_str(got, a, sizeof a), eng_shape_str(want, b, sizeof b));
    int64_t ne[ENG_MAX_DIMS] = {1, 1, 1, 1};
    size_t gb[ENG_MAX_DIMS] = {0}, wb[ENG_MAX_DIMS] = {0};
    int off = ENG_MAX_DIMS - got->ndim;
    for (int d = 0; d < got->ndim; d++) {
        ne[off + d] = got->ne[d];
        gb[off + d] = got->nb[d];
        wb[off + d] = want->nb[d];
    }
    double worst = 0, scale = 1, gv = 0, wv = 0;
    int64_t worst_at = 0, flat = 0;
    int nonfinite = 0;
    for (int64_t i0 = 0; i0 < ne[0]; i0++)
        for (int64_t i1 = 0; i1 < ne[1]; i1++)
            for (int64_t i2 = 0; i2 < ne[2]; i2++)
                for (int64_t i3 = 0; i3 < ne[3]; i3++, flat++) {
                    float g = *(const float *)((const char *)got->data + i0 * gb[0] + i1 * gb[1] + i2 * gb[2] +
                                               i3 * gb[3]);
                    float w = *(const float *)((const char *)want->data + i0 * wb[0] + i1 * wb[1] +
                                               i2 * wb[2] + i3 * wb[3]);
                    if (!isfinite(g) && isfinite(w))
                        nonfinite++;
                    double e = fabs((double)g - (double)w);
                    if (fabs(w) > scale)
                        scale = fabs(w);
                    if (e > worst || (isnan(e) && !isnan(worst))) {
                        worst = e;
                        worst_at = flat;
                        gv = g;
                        wv = w;
                    }
                }
    fx_record(op, c, worst, worst / scale);
    ck_assert_msg(nonfinite == 0 && worst <= tol * scale,
                  "%s case %s: max |err| %.3g at flat index %lld (got %.9g, want %.9g), allowed %.3g",
                  op, fx_name(c), worst, (long long)worst_at, gv, wv, tol * scale);
    return worst;
}

float *fx_widen(const struct eng_tensor *t, int64_t pre, int64_t post, bool copy, struct eng_tensor *view,
                int64_t *total)
{
    int64_t ne[ENG_MAX_DIMS];
    int last = t->ndim - 1;
    memcpy(ne, t->ne, sizeof ne);
    ne[last] += pre + post;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= ne[d];
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(buf);
    for (int64_t i = 0; i < n; i++)
        buf[i] = NAN;
    struct eng_tensor wide = eng_tensor_make(t->name, buf, t->ndim, ne);
    *view = eng_tensor_slice(&wide, last, pre, t->ne[last]);
    if (copy)
        ck_assert_int_eq(eng_tensor_copy(view, t), 0);
    *total = n;
    return buf;
}

void fx_check_guards(const char *op, json_t *c, const float *buf, int64_t n, int64_t pre, int64_t ch,
                     int64_t post)
{
    int64_t wide_c = pre + ch + post;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = i % wide_c;
        if (k < pre || k >= pre + ch)
            ck_assert_msg(isnan(buf[i]), "%s %s: wrote outside its channel slice at %lld", op, fx_name(c),
                          (long long)i);
    }
}

void fx_tmpdir_make(char *tmpl)
{
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        exit(1);
    }
}

void fx_tmpdir_remove(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

void fx_write_file(const char *dir, const char *name, const void *bytes, size_t n, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    ck_assert_msg(fp != NULL, "cannot write %s", path);
    if (n)
        ck_assert_uint_eq(fwrite(bytes, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

void fx_assert_error(const char *path, const char *want)
{
    const char *msg = eng_errmsg();
    ck_assert_msg(strncmp(msg, path, strlen(path)) == 0, "message '%s' does not start with '%s'", msg, path);
    ck_assert_msg(strstr(msg, want) != NULL, "message '%s' lacks '%s'", msg, want);
}

TCase *fx_begin(struct fx *fx, const char *module)
{
    fx_open(fx, module);
    return tcase_create("torch");
}

int fx_finish(struct fx *fx, TCase *tc)
{
    int rc = fx_run(suite_with(tc, fx->module));
    fx_close(fx);
    return rc;
}

void fx_ctx_pair(struct eng_ctx *ctx1, struct eng_ctx *ctx3)
{
    if (eng_ctx_init(ctx1, 1, 0) < 0 || eng_ctx_init(ctx3, 3, 0) < 0) {
        fprintf(stderr, "test contexts: %s\n", eng_errmsg());
        exit(1);
    }
}

Suite *suite_with(TCase *tc, const char *name)
{
    Suite *s = suite_create(name);
    suite_add_tcase(s, tc);
    return s;
}

int fx_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (fx_nops)
        printf("worst |err| per op (against PyTorch):\n");
    for (int i = 0; i < fx_nops; i++)
        printf("  %-24s %.3e  (relative %.3e, %d checks, worst case %s)\n", fx_ops[i].op, fx_ops[i].worst,
               fx_ops[i].worst_rel, fx_ops[i].checks, fx_ops[i].worst_case);
    return failed == 0 ? 0 : 1;
}
