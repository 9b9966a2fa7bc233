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
#include <stdlib.h>

typedef struct {
    st_pool_work_t w;
    pthread_t loop_thread; /* the done callback's thread */
    pthread_t work_thread;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items_run_on_workers_and_finish_on_the_loop),
        cmocka_unit_test(test_a_busy_pool_does_not_delay_another),
        cmocka_unit_test(test_null_port_uses_libuv_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
