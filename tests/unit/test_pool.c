/* test_pool.c: engine/pool.h: every part of every job runs exactly once, whoever is awake to run it. */
#include "config.h"

#include <check.h>
#include <stdatomic.h>
#include <time.h>

#include "engine/error.h"
#include "engine/pool.h"
#include "tests/unit/fixture.h"

#define MAX_PARTS 16

static atomic_int hits[MAX_PARTS];
static atomic_int bad_nth;

struct job {
    int nparts;
    int sleep_part; /* this part naps, so the others run while it is away; -1: none */
};

static void part(void *arg, int ith, int nth)
{
    const struct job *j = arg;
    if (nth != j->nparts || ith < 0 || ith >= nth)
        atomic_fetch_add(&bad_nth, 1);
    else
        atomic_fetch_add(&hits[ith], 1);
    if (ith == j->sleep_part)
        nanosleep(&(struct timespec){0, 2000000}, NULL);
}

/* workers, parts per job, jobs run back to back, the napping part */
static const struct {
    int workers, nparts, jobs, sleep_part;
} runs[] = {{1, 2, 1, -1}, {1, 2, 20000, -1}, {3, 2, 5000, -1}, {1, 7, 3000, -1}, {2, 16, 200, 3}, {1, 1, 10, 0}};

START_TEST(pool_parts_once)
{
    struct eng_pool *p = eng_pool_create(runs[_i].workers);
    ck_assert_msg(p != NULL, "%s", eng_errmsg());
    struct job j = {runs[_i].nparts, runs[_i].sleep_part};
    for (int r = 0; r < runs[_i].jobs; r++) {
        for (int i = 0; i < MAX_PARTS; i++)
            atomic_store(&hits[i], 0);
        eng_pool_run(p, j.nparts, part, &j);
        /* eng_pool_run returned: every part has finished, none runs twice, none is left over */
        for (int i = 0; i < MAX_PARTS; i++)
            ck_assert_int_eq(atomic_load(&hits[i]), i < j.nparts ? 1 : 0);
    }
    ck_assert_int_eq(atomic_load(&bad_nth), 0);
    eng_pool_destroy(p);
}
END_TEST

START_TEST(pool_bad_size)
{
    ck_assert_ptr_null(eng_pool_create(0));
    eng_pool_destroy(NULL);
}
END_TEST

int main(void)
{
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, pool_parts_once, 0, (int)(sizeof runs / sizeof runs[0]));
    tcase_add_test(tc, pool_bad_size);
    return fx_run(suite_with(tc, "pool"));
}
