/* st_sched_test.c - unit tests of core/st_sched (a short EEVDF time slice for
 * request-serving threads): the slice is asked for the calling thread only,
 * its nice value kept; 0 changes nothing; the shard loops (core/rt) and the
 * log's writer and flusher (core/plog_flush) ask for it as they start, other
 * threads do not. Checked with sched_getattr (the kernel's record of the
 * slice), never with timing. Skipped on kernels without per-task slices
 * (before Linux 6.12 sched_getattr reports 0 for a SCHED_OTHER thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/plog.h"
#include "core/rt.h"
#include "core/st_sched.h"
#include "tests/support/tthread.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pid_t my_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

static int nice_of(pid_t tid)
{
    errno = 0;
    int v = getpriority(PRIO_PROCESS, (id_t)tid);
    assert_int_equal(errno, 0);
    return v;
}

static bool has_slices(void)
{
    return st_sched_slice_ns(0) > 0;
}

static void test_zero_changes_nothing(void **state)
{
    (void)state;
    int64_t before = st_sched_slice_ns(0);
    assert_true(before >= 0);
    st_sched_set_slice_us(0);
    assert_int_equal(st_sched_apply(), 0);
    assert_int_equal(st_sched_slice_ns(0), before);
}

typedef struct {
    int rc;
    int64_t slice_ns;
    int nice_before, nice_after;
} applied_t;

static void *apply_main(void *arg)
{
    applied_t *a = arg;
    pid_t tid = my_tid();
    int n = nice_of(tid);
    if (n < 19)
        assert_int_equal(setpriority(PRIO_PROCESS, (id_t)tid, n + 1), 0);
    a->nice_before = nice_of(tid);
    a->rc = st_sched_apply();
    a->slice_ns = st_sched_slice_ns(0);
    a->nice_after = nice_of(tid);
    return NULL;
}

static void test_only_the_calling_thread_and_its_nice_kept(void **state)
{
    (void)state;
    if (!has_slices())
        skip();
    int64_t mine = st_sched_slice_ns(0);
    int my_nice = nice_of(my_tid());
    assert_true(mine != 300000);
    st_sched_set_slice_us(300);
    applied_t a = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, apply_main, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    st_sched_set_slice_us(0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.slice_ns, 300000);
    assert_int_equal(a.nice_after, a.nice_before); /* sched_setattr did not reset it */
    assert_int_equal(st_sched_slice_ns(0), mine);  /* this thread was not touched */
    assert_int_equal(nice_of(my_tid()), my_nice);
}

/* ---- The threads that ask for it ---- */

static sem_t g_started;

static void on_start(rt_shard_t *sh, void *arg)
{
    (void)sh;
    (void)arg;
    sem_post(&g_started);
}

static void on_stop(rt_shard_t *sh, void *arg)
{
    (void)arg;
    rt_shard_done(sh);
}

/* How many threads named name report slice_ns (*named: how many are named so). */
static int named_with_slice(const char *name, int64_t slice_ns, int *named)
{
    pid_t tids[64];
    *named = tthread_named(name, tids, 64);
    assert_in_range(*named, 0, 64);
    int n = 0;
    for (int i = 0; i < *named; i++)
        if (st_sched_slice_ns(tids[i]) == slice_ns)
            n++;
    return n;
}

/* Wait until `want` threads named name report slice_ns: each applies it
 * itself once it runs, so this waits for them to be scheduled (bounded:
 * 20,000 sleeps of 1 ms; a thread that never asks fails here). */
static void wait_named(const char *name, int want, int64_t slice_ns)
{
    int named = 0, n = 0;
    for (int i = 0; i < 20000 && (n = named_with_slice(name, slice_ns, &named)) < want; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    if (n != want)
        fail_msg("%s: %d of %d threads (%d named so) report a slice of %lld ns", name, n, want,
                 named, (long long)slice_ns);
}

static void test_loops_writer_and_flusher_ask_for_it(void **state)
{
    (void)state;
    if (!has_slices())
        skip();
    int64_t mine = st_sched_slice_ns(0);
    assert_true(mine != 250000);
    st_sched_set_slice_us(250);
    plog_env_t *env = NULL;
    assert_int_equal(plog_env_new(&env), 0);
    rt_t *rt = NULL;
    assert_int_equal(rt_new(2, 16, &rt), 0);
    assert_int_equal(sem_init(&g_started, 0, 0), 0);
    rt_hooks_t hooks = {.on_start = on_start, .on_stop = on_stop};
    assert_int_equal(rt_start(rt, &hooks), 0);
    sem_wait(&g_started);
    sem_wait(&g_started); /* both loops ran on_start, after asking for the slice */
    wait_named("shard-0", 1, 250000);
    wait_named("shard-1", 1, 250000);
    wait_named("plog-writer", 1, 250000);
    wait_named("plog-flusher", 1, 250000);
    assert_int_equal(st_sched_slice_ns(0), mine); /* the creating thread keeps its own */
    rt_stop(rt);
    rt_join_free(rt);
    plog_env_free(env);
    sem_destroy(&g_started);
    st_sched_set_slice_us(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_changes_nothing),
        cmocka_unit_test(test_only_the_calling_thread_and_its_nice_kept),
        cmocka_unit_test(test_loops_writer_and_flusher_ask_for_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
