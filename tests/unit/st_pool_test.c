/* st_pool_test.c - unit tests of the per-class worker pools (core/st_pool):
 * every item's work runs on a pool thread and its done callback once on the
 * port's loop; a pool whose every thread is held by long work does not delay
 * another pool's items (the point of one pool per work class); a NULL port
 * runs on libuv's pool. No timing: the held pool is released only after the
 * other pool's items are all done, so a shared queue would hang (ctest's
 * timeout fails it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/st_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
    st_pool_work_t w;
    pthread_t loop_thread; /* the done callback's thread */
    pthread_t work_thread;
    pid_t work_tid;
    int *done_count;
    bool is_held; /* work waits for the gate */
} item_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static bool g_open;        /* the gate held items wait for */
static int g_held_running; /* held items inside their work */

static void work(st_pool_work_t *w)
{
    item_t *it = w->data;
    it->work_thread = pthread_self();
    it->work_tid = (pid_t)syscall(SYS_gettid);
    if (!it->is_held)
        return;
    pthread_mutex_lock(&g_mu);
    g_held_running++;
    pthread_cond_broadcast(&g_cv);
    while (!g_open)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void done(st_pool_work_t *w, int status)
{
    item_t *it = w->data;
    assert_int_equal(status, 0);
    it->loop_thread = pthread_self();
    (*it->done_count)++;
}

static void run_until(uv_loop_t *loop, const int *count, int n)
{
    while (*count < n)
        uv_run(loop, UV_RUN_ONCE);
}

static void test_items_run_on_workers_and_finish_on_the_loop(void **state)
{
    (void)state;
    enum { N = 1000 };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    st_pool_t *p = NULL;
    assert_int_equal(st_pool_new("t", 3, &p), 0);
    st_pool_port_t *port = NULL;
    assert_int_equal(st_pool_port_new(p, &loop, &port), 0);
    assert_non_null(port);
    item_t *items = calloc(N, sizeof(*items));
    assert_non_null(items);
    int count = 0;
    for (int i = 0; i < N; i++) {
        items[i].w.data = &items[i];
        items[i].done_count = &count;
        assert_int_equal(st_pool_queue(port, &loop, &items[i].w, work, done), 0);
    }
    run_until(&loop, &count, N);
    assert_int_equal(count, N);
    for (int i = 0; i < N; i++) {
        assert_true(pthread_equal(items[i].loop_thread, pthread_self()));
        assert_false(pthread_equal(items[i].work_thread, pthread_self()));
    }
    st_pool_port_close(port);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    st_pool_free(p);
    free(items);
}

static void test_a_busy_pool_does_not_delay_another(void **state)
{
    (void)state;
    enum { N_HELD = 2, N_FREE = 50 };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    st_pool_t *up = NULL, *hyd = NULL;
    assert_int_equal(st_pool_new("up", N_HELD, &up), 0);
    assert_int_equal(st_pool_new("hyd", 1, &hyd), 0);
    st_pool_port_t *up_port = NULL, *hyd_port = NULL;
    assert_int_equal(st_pool_port_new(up, &loop, &up_port), 0);
    assert_int_equal(st_pool_port_new(hyd, &loop, &hyd_port), 0);
    g_open = false;
    g_held_running = 0;
    /* Every thread of "up" is held, with more of its items queued behind. */
    item_t held[N_HELD + 3] = {0};
    int held_done = 0;
    for (int i = 0; i < N_HELD + 3; i++) {
        held[i].w.data = &held[i];
        held[i].done_count = &held_done;
        held[i].is_held = true;
        assert_int_equal(st_pool_queue(up_port, &loop, &held[i].w, work, done), 0);
    }
    pthread_mutex_lock(&g_mu);
    while (g_held_running < N_HELD)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    /* "hyd" still runs everything queued on it. */
    item_t free_items[N_FREE] = {0};
    int free_done = 0;
    for (int i = 0; i < N_FREE; i++) {
        free_items[i].w.data = &free_items[i];
        free_items[i].done_count = &free_done;
        assert_int_equal(st_pool_queue(hyd_port, &loop, &free_items[i].w, work, done), 0);
    }
    run_until(&loop, &free_done, N_FREE);
    assert_int_equal(held_done, 0);
    pthread_mutex_lock(&g_mu);
    g_open = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    run_until(&loop, &held_done, N_HELD + 3);
    st_pool_port_close(up_port);
    st_pool_port_close(hyd_port);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    st_pool_free(up);
    st_pool_free(hyd);
}

static void test_null_port_uses_libuv_pool(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    st_pool_port_t *port = (st_pool_port_t *)&loop; /* overwritten */
    assert_int_equal(st_pool_port_new(NULL, &loop, &port), 0);
    assert_null(port);
    item_t it = {0};
    int count = 0;
    it.w.data = &it;
    it.done_count = &count;
    assert_int_equal(st_pool_queue(NULL, &loop, &it.w, work, done), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(count, 1);
    assert_false(pthread_equal(it.work_thread, pthread_self()));
    st_pool_port_close(NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(st_pool_new("x", 0, &(st_pool_t *){NULL}), ST_E_INVAL);
    st_pool_free(NULL);
}

/* Field 19 of /proc/self/task/TID/stat: the thread's nice value. */
static int nice_of(pid_t tid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    assert_non_null(p);
    int nice = 99;
    /* After ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice */
    assert_int_equal(sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %d",
                            &nice),
                     1);
    return nice;
}

static int io_class_of(pid_t tid)
{
    long v = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, (int)tid);
    assert_true(v >= 0);
    return (int)(v >> 13);
}

/* Run one item on each of p's n threads (held until all n are in) and
 * return their thread ids in tids. */
static void tids_of(st_pool_t *p, int n, pid_t *tids)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    st_pool_port_t *port = NULL;
    assert_int_equal(st_pool_port_new(p, &loop, &port), 0);
    item_t items[4] = {0};
    assert_true(n <= 4);
    int count = 0;
    g_open = false;
    g_held_running = 0;
    for (int i = 0; i < n; i++) {
        items[i].w.data = &items[i];
        items[i].done_count = &count;
        items[i].is_held = true;
        assert_int_equal(st_pool_queue(port, &loop, &items[i].w, work, done), 0);
    }
    pthread_mutex_lock(&g_mu);
    while (g_held_running < n)
        pthread_cond_wait(&g_cv, &g_mu);
    g_open = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    run_until(&loop, &count, n);
    for (int i = 0; i < n; i++)
        tids[i] = items[i].work_tid;
    st_pool_port_close(port);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_pool_threads_run_at_their_priority(void **state)
{
    (void)state;
    pid_t self = (pid_t)syscall(SYS_gettid);
    int base = nice_of(self);
    if (base > 19 - 5)
        skip(); /* already niced to the limit: a raise could not be seen */
    int base_class = io_class_of(self);
    assert_true(base_class != 3);
    st_pool_t *low = NULL, *plain = NULL;
    assert_int_equal(
        st_pool_new_prio("low", 2, &(st_pool_prio_t){.nice = 5, .io_idle = true}, &low), 0);
    assert_int_equal(st_pool_new("plain", 2, &plain), 0);
    pid_t lt[2], pt[2];
    tids_of(low, 2, lt);
    tids_of(plain, 2, pt);
    assert_true(lt[0] != lt[1]);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nice_of(lt[i]), base + 5);
        assert_int_equal(io_class_of(lt[i]), 3); /* IOPRIO_CLASS_IDLE */
        assert_int_equal(nice_of(pt[i]), base);
        assert_int_equal(io_class_of(pt[i]), base_class);
    }
    /* The creating thread keeps its own. */
    assert_int_equal(nice_of(self), base);
    assert_int_equal(io_class_of(self), base_class);
    /* A nice over 19 is capped; a negative one (a raise) is refused. */
    st_pool_t *capped = NULL;
    assert_int_equal(st_pool_new_prio("cap", 1, &(st_pool_prio_t){.nice = 40}, &capped), 0);
    tids_of(capped, 1, lt);
    assert_int_equal(nice_of(lt[0]), 19);
    assert_int_equal(
        st_pool_new_prio("neg", 1, &(st_pool_prio_t){.nice = -1}, &(st_pool_t *){NULL}),
        ST_E_INVAL);
    st_pool_free(low);
    st_pool_free(plain);
    st_pool_free(capped);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items_run_on_workers_and_finish_on_the_loop),
        cmocka_unit_test(test_a_busy_pool_does_not_delay_another),
        cmocka_unit_test(test_null_port_uses_libuv_pool),
        cmocka_unit_test(test_pool_threads_run_at_their_priority),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
