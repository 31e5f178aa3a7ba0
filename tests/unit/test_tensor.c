/* test_tensor.c: tensor shapes, strides, slices and copies; arenas; the thread fan-out. */
#include <check.h>
#include <stdatomic.h>
#include <string.h>

#include "engine/arena.h"
#include "engine/ctx.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/unit/fixture.h"

START_TEST(make_strides)
{
    float buf[2 * 3 * 4 * 5];
    struct eng_tensor t = eng_tensor_make("x", buf, 4, (int64_t[]){2, 3, 4, 5});
    ck_assert_int_eq(t.nb[3], 4);
    ck_assert_int_eq(t.nb[2], 20);
    ck_assert_int_eq(t.nb[1], 80);
    ck_assert_int_eq(t.nb[0], 240);
    ck_assert_int_eq(eng_tensor_nelem(&t), 120);
    ck_assert(eng_tensor_is_contiguous(&t));
    ck_assert_int_eq(eng_tensor_ld(&t), 5);
    char s[64];
    ck_assert_str_eq(eng_shape_str(&t, s, sizeof s), "[2,3,4,5]");
    ck_assert_ptr_eq(eng_tensor_at(&t, (int64_t[]){1, 2, 3, 4}), &buf[119]);
}
END_TEST

/* Table: (dim, start, len) slices of a [2,3,4,5] tensor; each view must address exactly the
 * elements a nested loop over the original picks. */
static const struct {
    int dim;
    int64_t start, len;
    bool contiguous;
} slices[] = {{3, 0, 5, true},  {3, 2, 3, false}, {3, 4, 1, false}, {2, 1, 2, false},
              {1, 2, 1, false}, {0, 1, 1, true},  {3, 1, 0, false}};

START_TEST(slice_views)
{
    float buf[120];
    for (int i = 0; i < 120; i++)
        buf[i] = (float)i;
    struct eng_tensor t = eng_tensor_make("x", buf, 4, (int64_t[]){2, 3, 4, 5});
    struct eng_tensor v = eng_tensor_slice(&t, slices[_i].dim, slices[_i].start, slices[_i].len);
    ck_assert_int_eq(v.ne[slices[_i].dim], slices[_i].len);
    ck_assert(eng_tensor_is_contiguous(&v) == slices[_i].contiguous);
    int64_t idx[4];
    for (idx[0] = 0; idx[0] < v.ne[0]; idx[0]++)
        for (idx[1] = 0; idx[1] < v.ne[1]; idx[1]++)
            for (idx[2] = 0; idx[2] < v.ne[2]; idx[2]++)
                for (idx[3] = 0; idx[3] < v.ne[3]; idx[3]++) {
                    int64_t o[4] = {idx[0], idx[1], idx[2], idx[3]};
                    o[slices[_i].dim] += slices[_i].start;
                    float want = (float)(((o[0] * 3 + o[1]) * 4 + o[2]) * 5 + o[3]);
                    ck_assert_float_eq(*eng_tensor_at(&v, idx), want);
                }
    if (slices[_i].dim == 3 && slices[_i].len > 0)
        ck_assert_int_eq(eng_tensor_ld(&v), 5); /* a channel slice keeps the buffer's row stride */
}
END_TEST

START_TEST(copy_strided)
{
    float a[120], b[2 * 3 * 4 * 2];
    for (int i = 0; i < 120; i++)
        a[i] = (float)i;
    struct eng_tensor t = eng_tensor_make("a", a, 4, (int64_t[]){2, 3, 4, 5});
    struct eng_tensor src = eng_tensor_slice(&t, 3, 3, 2);
    struct eng_tensor dst = eng_tensor_make("b", b, 4, (int64_t[]){2, 3, 4, 2});
    ck_assert_int_eq(eng_tensor_copy(&dst, &src), 0);
    for (int r = 0; r < 24; r++) {
        ck_assert_float_eq(b[r * 2], a[r * 5 + 3]);
        ck_assert_float_eq(b[r * 2 + 1], a[r * 5 + 4]);
    }
    struct eng_tensor wrong = eng_tensor_make("w", b, 3, (int64_t[]){2, 3, 8});
    ck_assert_int_eq(eng_tensor_copy(&wrong, &src), -1);
    ck_assert_str_eq(eng_errmsg(), "copy: tensor 'a' has shape [2,3,4,2], 'w' has [2,3,8]");
}
END_TEST

START_TEST(arena_alloc)
{
    struct eng_arena a;
    ck_assert_int_eq(eng_arena_init(&a, "test", 1000), 0);
    ck_assert_int_eq(a.size, 1024); /* rounded to the alignment */
    char *p = eng_arena_alloc(&a, 10), *q = eng_arena_alloc(&a, 10);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq((uintptr_t)p % ENG_ARENA_ALIGN, 0);
    ck_assert_int_eq((uintptr_t)q % ENG_ARENA_ALIGN, 0);
    ck_assert_int_eq(q - p, 64);
    size_t mark = eng_arena_mark(&a);
    ck_assert_ptr_nonnull(eng_arena_alloc(&a, 800)); /* at 128, up to 928 */
    ck_assert_ptr_null(eng_arena_alloc(&a, 100));    /* would need 960..1060 */
    ck_assert_str_eq(eng_errmsg(), "arena 'test' too small: need 1060 bytes in all, have 1024 (request of 100)");
    ck_assert_int_eq(a.peak, 1060);
    eng_arena_rewind(&a, mark);
    ck_assert_ptr_eq(eng_arena_alloc(&a, 64), p + 128);
    ck_assert_ptr_null(eng_arena_floats(&a, SIZE_MAX / 2));
    eng_arena_reset(&a);
    ck_assert_ptr_eq(eng_arena_alloc(&a, 1), p);
    eng_arena_free(&a);

    /* A measuring arena hands out nothing but records the need. */
    ck_assert_int_eq(eng_arena_init(&a, "measure", 0), 0);
    ck_assert_ptr_null(eng_arena_alloc(&a, 100));
    ck_assert_ptr_null(eng_arena_alloc(&a, 100));
    ck_assert_int_eq(a.peak, 100);
    eng_arena_free(&a);
}
END_TEST

static const struct {
    int64_t n;
    int nth;
} splits[] = {{10, 1}, {10, 3}, {3, 4}, {0, 2}, {1000003, 7}, {7, 7}};

START_TEST(split_covers)
{
    int64_t n = splits[_i].n, prev_end = 0, lo = INT64_MAX, hi = 0;
    for (int i = 0; i < splits[_i].nth; i++) {
        int64_t b, e;
        eng_split(n, i, splits[_i].nth, &b, &e);
        ck_assert_int_eq(b, prev_end); /* parts are adjacent, in order */
        prev_end = e;
        lo = e - b < lo ? e - b : lo;
        hi = e - b > hi ? e - b : hi;
    }
    ck_assert_int_eq(prev_end, n);
    ck_assert_int_le(hi - lo, 1); /* near-equal */
}
END_TEST

static atomic_int hits[8];
static atomic_int seen_nth;

static void count_part(void *arg, int ith, int nth)
{
    (void)arg;
    atomic_fetch_add(&hits[ith], 1);
    atomic_store(&seen_nth, nth);
}

static const struct {
    int nthreads, max_tasks, want_nth;
} fans[] = {{1, 0, 1}, {2, 0, 2}, {4, 2, 2}, {4, 1, 1}, {3, 8, 3}};

START_TEST(parallel_fanout)
{
    struct eng_ctx ctx;
    ck_assert_int_eq(eng_ctx_init(&ctx, fans[_i].nthreads, 0), 0);
    for (int i = 0; i < 8; i++)
        atomic_store(&hits[i], 0);
    eng_parallel(&ctx, fans[_i].max_tasks, count_part, NULL);
    ck_assert_int_eq(atomic_load(&seen_nth), fans[_i].want_nth);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(atomic_load(&hits[i]), i < fans[_i].want_nth ? 1 : 0);
    eng_ctx_free(&ctx);
}
END_TEST

int main(void)
{
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, make_strides);
    tcase_add_loop_test(tc, slice_views, 0, (int)(sizeof slices / sizeof slices[0]));
    tcase_add_test(tc, copy_strided);
    tcase_add_test(tc, arena_alloc);
    tcase_add_loop_test(tc, split_covers, 0, (int)(sizeof splits / sizeof splits[0]));
    tcase_add_loop_test(tc, parallel_fanout, 0, (int)(sizeof fans / sizeof fans[0]));
    return fx_run(suite_with(tc, "tensor"));
}
