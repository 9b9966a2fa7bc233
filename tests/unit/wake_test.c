/* wake_test.c - unit tests of the eventfd loop wake-up (core/st_wake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/st_wake.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

/* ---- Sends from several threads: no item is left without a wake-up ----
 * Each sender waits until its item was taken before it pushes the next, so
 * sends keep landing while the callback runs (where a wrong clear of the
 * pending flag loses one and the loop then waits forever). */

enum { N_THREADS = 2, N_PER_THREAD = 20000 };

typedef struct {
    st_wake_t wake;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled when items are taken */
    int queued;          /* items pushed and not yet taken, guarded by mu */
    int taken;           /* loop only */
    int calls;           /* loop only: callbacks run */
    bool closing;        /* guarded by mu: no send after it is set */
} box_t;

static void on_wake(st_wake_t *w)
{
    box_t *b = w->data;
    pthread_mutex_lock(&b->mu);
    b->taken += b->queued;
    b->queued = 0;
    pthread_cond_broadcast(&b->cond);
    bool all = b->taken == N_THREADS * N_PER_THREAD;
    if (all)
        b->closing = true;
    pthread_mutex_unlock(&b->mu);
    b->calls++;
    if (all)
        st_wake_close(&b->wake, NULL);
}

/* Sends whole under the lock (st_wake_send). */
static void *sender(void *arg)
{
    box_t *b = arg;
    for (int i = 0; i < N_PER_THREAD; i++) {
        pthread_mutex_lock(&b->mu);
        b->queued++;
        st_wake_send(&b->wake);
        while (b->queued > 0)
            pthread_cond_wait(&b->cond, &b->mu);
        pthread_mutex_unlock(&b->mu);
    }
    return NULL;
}

/* Claims under the lock, writes after it (st_wake_claim + st_wake_fire): the
 * loop may take the item, and close the wake after the last one, before the
 * write; the close then waits for it. */
static void *claim_sender(void *arg)
{
    box_t *b = arg;
    for (int i = 0; i < N_PER_THREAD; i++) {
        pthread_mutex_lock(&b->mu);
        b->queued++;
        bool fire = st_wake_claim(&b->wake);
        pthread_mutex_unlock(&b->mu);
        if (fire)
            st_wake_fire(&b->wake);
        pthread_mutex_lock(&b->mu);
        while (b->queued > 0)
            pthread_cond_wait(&b->cond, &b->mu);
        pthread_mutex_unlock(&b->mu);
    }
    return NULL;
}

static void test_no_lost_wakeup(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    box_t b = {0};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cond, NULL);
    assert_int_equal(st_wake_init(&loop, &b.wake, on_wake), 0);
    b.wake.data = &b;
    int efd = b.wake.efd;
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, i % 2 ? claim_sender : sender, &b), 0);
    /* The loop runs until the callback saw every item and closed the wake:
     * a lost wake-up would leave items queued and the loop waiting forever. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(b.taken, N_THREADS * N_PER_THREAD);
    /* Sends coalesce: far fewer callbacks than sends. */
    assert_true(b.calls >= 1 && b.calls <= N_THREADS * N_PER_THREAD);
    /* The eventfd is closed with the handle. */
    assert_int_equal(fcntl(efd, F_GETFD), -1);
    assert_int_equal(uv_loop_close(&loop), 0);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cond);
}

/* ---- A send before the loop runs is delivered once it runs ---- */

static int g_calls;
static void on_wake_count(st_wake_t *w)
{
    g_calls++;
    st_wake_close(w, NULL);
}

static void test_send_before_run(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    st_wake_t w;
    assert_int_equal(st_wake_init(&loop, &w, on_wake_count), 0);
    st_wake_send(&w);
    st_wake_send(&w); /* coalesced with the first */
    g_calls = 0;
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- The close waits for a claimed send to be written ----
 * The sender claims, the loop closes the wake, and the sender writes only
 * once the close callback ran or 0.2 s passed: with the wait, the close
 * callback runs after the write (the eventfd still open); without it, the
 * callback runs first and the write goes to a closed descriptor. */

typedef struct {
    st_wake_t wake;
    atomic_bool closed; /* set by the close callback */
    atomic_bool fired;  /* set as st_wake_fire is called */
    bool fired_at_close;
} late_t;

static void on_late_closed(uv_handle_t *h)
{
    late_t *l = ((st_wake_t *)h)->data;
    l->fired_at_close = atomic_load(&l->fired);
    atomic_store(&l->closed, true);
}

static void *late_fire(void *arg)
{
    late_t *l = arg;
    for (int i = 0; i < 200 && !atomic_load(&l->closed); i++)
        usleep(1000);
    atomic_store(&l->fired, true);
    st_wake_fire(&l->wake);
    return NULL;
}

static void on_wake_none(st_wake_t *w)
{
    (void)w;
    fail_msg("no callback: the wake was closed before its send was written");
}

static void test_close_waits_for_claimed_send(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    late_t l = {0};
    assert_int_equal(st_wake_init(&loop, &l.wake, on_wake_none), 0);
    l.wake.data = &l;
    assert_true(st_wake_claim(&l.wake));
    assert_false(st_wake_claim(&l.wake)); /* coalesced: one write pending */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_fire, &l), 0);
    st_wake_close(&l.wake, on_late_closed);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    pthread_join(t, NULL);
    assert_true(l.fired_at_close);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_lost_wakeup),
        cmocka_unit_test(test_send_before_run),
        cmocka_unit_test(test_close_waits_for_claimed_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
