/* st_alloc_test.c - unit test of core/st_alloc (large freed buffers are kept
 * for reuse): on a thread (its own malloc arena, like a shard loop or a
 * hydration thread), three rounds of three 16 MiB buffers live at once (a
 * replay's GET buffers of the read-ahead windows in flight, tiering/tier_rd.c),
 * each filled, then all freed. With glibc's defaults each round faults every
 * page in again (the free trims the arena: 12,288 minor faults a round, on a
 * VM with free page reporting as many host faults); after
 * st_alloc_keep_freed() the second and third rounds reuse the first one's
 * pages (under 1 % of them faulted). Counts of the thread's own minor faults
 * (getrusage RUSAGE_THREAD), no timing. Skipped under a sanitizer (its
 * allocator ignores mallopt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/st_alloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#define BUF_BYTES (16u << 20)
#define BUF_PAGES (BUF_BYTES / 4096u)
#define N_LIVE    3

/* Each round: N_LIVE buffers at once (a replay's read-ahead windows in
 * flight), each filled, then all freed. */
static void *rounds_main(void *arg)
{
    long *faults = arg;
    for (int i = 0; i < 3; i++) {
        struct rusage a, b;
        uint8_t *p[N_LIVE];
        getrusage(RUSAGE_THREAD, &a);
        for (int k = 0; k < N_LIVE; k++) {
            p[k] = malloc(BUF_BYTES);
            assert_non_null(p[k]);
            memset(p[k], i + 1, BUF_BYTES);
            __asm__ volatile("" : : "r"(p[k]) : "memory"); /* the fill is not optimised away */
        }
        getrusage(RUSAGE_THREAD, &b);
        faults[i] = b.ru_minflt - a.ru_minflt;
        fprintf(stderr, "round %d: %ld minor faults\n", i, faults[i]);
        for (int k = 0; k < N_LIVE; k++)
            free(p[k]);
    }
    return NULL;
}

static void run_rounds(long faults[3])
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, rounds_main, faults), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

/* Runs first: the process still has glibc's defaults. */
static void test_defaults_fault_every_round(void **state)
{
    (void)state;
#ifdef UNDER_SANITIZER
    skip();
#endif
    long f[3];
    run_rounds(f);
    for (int i = 0; i < 3; i++)
        assert_true(f[i] >= (long)(N_LIVE * BUF_PAGES) / 2); /* fresh pages each time */
}

static void test_kept_buffers_are_reused(void **state)
{
    (void)state;
#ifdef UNDER_SANITIZER
    skip();
#endif
    assert_true(st_alloc_keep_freed());
    long f[3];
    run_rounds(f);
    (void)f[0]; /* the first round may reuse what the test before freed */
    assert_true(f[1] < (long)(N_LIVE * BUF_PAGES) / 100);
    assert_true(f[2] < (long)(N_LIVE * BUF_PAGES) / 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_fault_every_round),
        cmocka_unit_test(test_kept_buffers_are_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
