/* rt.c - shards and their message queues (see rt.h).
 * Each shard: a thread (named shard-N, asking for strata.sched.slice.us as it
 * starts: core/st_sched.h), a uv_loop_t, a wake-up (st_wake_t: an eventfd, no
 * spinning) and a ring of messages guarded by a mutex. rt_post() pushes and
 * wakes the loop under the mutex; the wake callback swaps the ring's contents
 * out in one critical section and runs them in FIFO order.
 *
 * Shard lifecycle:
 *   NEW --rt_start--> RUNNING --rt_stop (stop flag + wake)--> STOPPING
 *   STOPPING: on_stop runs; messages are still delivered (so work spread
 *   over shards can finish) until the app calls rt_shard_done()
 *   --> DONE: the queue closes (posts get ST_E_CLOSED), the wake handle
 *   closes, and the loop returns when the app closed its handles --> exit. */
#include "core/rt.h"
#include "core/st_assert.h"
#include "core/st_log.h"
#include "core/st_sched.h"
#include "core/st_wake.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    rt_fn fn;
    void *arg;
} msg_t;

struct rt_shard {
    rt_t *rt;
    int id;
    pthread_t thread;
    bool started;
    uv_loop_t loop;
    st_wake_t wake;
    void *data;
    pthread_mutex_t mu;
    msg_t *ring; /* owned: capacity entries */
    int head, count;
    bool stop_requested; /* guarded by mu */
    bool stop_called;    /* loop only: on_stop ran */
    bool closed;         /* guarded by mu: no more posts */
};

struct rt {
    int n;
    int capacity;
    const rt_hooks_t *hooks;
    rt_shard_t *shards; /* owned array */
};

static _Thread_local rt_shard_t *t_current;

int rt_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int rt_new(int n_shards, int queue_capacity, rt_t **out)
{
    if (n_shards < 1 || n_shards > 1024 || queue_capacity < 1)
        return ST_E_INVAL;
    rt_t *rt = calloc(1, sizeof(*rt));
    if (!rt || !(rt->shards = calloc((size_t)n_shards, sizeof(*rt->shards)))) {
        free(rt);
        return ST_E_NOMEM;
    }
    rt->n = n_shards;
    rt->capacity = queue_capacity;
    for (int i = 0; i < n_shards; i++) {
        rt_shard_t *sh = &rt->shards[i];
        sh->rt = rt;
        sh->id = i;
        pthread_mutex_init(&sh->mu, NULL);
        sh->ring = calloc((size_t)queue_capacity, sizeof(*sh->ring));
        int rc = sh->ring ? uv_loop_init(&sh->loop) : ST_E_NOMEM;
        if (rc != 0) {
            ST_ERROR("rt", "cannot create shard %d: %s", i, st_strerror(rc));
            return rc; /* process start-up failure: the caller exits */
        }
    }
    *out = rt;
    return 0;
}

static void drain(rt_shard_t *sh)
{
    msg_t batch[256];
    for (;;) {
        int n = 0;
        pthread_mutex_lock(&sh->mu);
        while (sh->count > 0 && n < (int)(sizeof(batch) / sizeof(batch[0]))) {
            batch[n++] = sh->ring[sh->head];
            sh->head = (sh->head + 1) % sh->rt->capacity;
            sh->count--;
        }
        pthread_mutex_unlock(&sh->mu);
        if (n == 0)
            return;
        for (int i = 0; i < n; i++)
            batch[i].fn(sh, batch[i].arg);
    }
}

void rt_shard_done(rt_shard_t *sh)
{
    pthread_mutex_lock(&sh->mu);
    bool was_closed = sh->closed;
    sh->closed = true;
    pthread_mutex_unlock(&sh->mu);
    if (was_closed)
        return;
    drain(sh); /* messages that raced with the close */
    st_wake_close(&sh->wake, NULL);
}

static void on_wake(st_wake_t *h)
{
    rt_shard_t *sh = h->data;
    drain(sh);
    pthread_mutex_lock(&sh->mu);
    bool stop = sh->stop_requested && !sh->stop_called && !sh->closed;
    pthread_mutex_unlock(&sh->mu);
    if (stop) {
        ST_DEBUG("rt", "shard stopping");
        sh->stop_called = true;
        if (sh->rt->hooks->on_stop)
            sh->rt->hooks->on_stop(sh, sh->rt->hooks->arg);
        else
            rt_shard_done(sh);
    }
}

static void *shard_main(void *arg)
{
    rt_shard_t *sh = arg;
    t_current = sh;
    st_log_set_shard(sh->id);
    st_sched_apply(); /* a loop serves requests: a short slice (strata.sched.slice.us) */
    if (sh->rt->hooks->on_start)
        sh->rt->hooks->on_start(sh, sh->rt->hooks->arg);
    on_wake(&sh->wake); /* anything posted before the loop ran */
    uv_run(&sh->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&sh->loop);
    if (rc != 0)
        ST_WARN("rt", "loop closed with open handles: %s", st_strerror(rc));
    t_current = NULL;
    return NULL;
}

int rt_start(rt_t *rt, const rt_hooks_t *hooks)
{
    rt->hooks = hooks;
    for (int i = 0; i < rt->n; i++) {
        rt_shard_t *sh = &rt->shards[i];
        /* Safe here: the loop does not run until its thread starts. */
        int rc = st_wake_init(&sh->loop, &sh->wake, on_wake);
        if (rc != 0)
            return rc;
        sh->wake.data = sh;
        pthread_mutex_lock(&sh->mu);
        sh->started = true; /* posts may wake it from now on */
        pthread_mutex_unlock(&sh->mu);
        rc = pthread_create(&sh->thread, NULL, shard_main, sh);
        if (rc != 0)
            return -rc;
        char name[24]; /* pthread names keep 15 bytes */
        snprintf(name, sizeof(name), "shard-%d", i);
        name[15] = '\0';
        pthread_setname_np(sh->thread, name); /* seen by perf, top -H */
    }
    return 0;
}

int rt_post(rt_t *rt, int to, rt_fn fn, void *arg)
{
    if (to < 0 || to >= rt->n)
        return ST_E_INVAL;
    rt_shard_t *sh = &rt->shards[to];
    pthread_mutex_lock(&sh->mu);
    int rc = 0;
    bool fire = false;
    if (sh->closed)
        rc = ST_E_CLOSED;
    else if (sh->count == rt->capacity)
        rc = ST_E_AGAIN;
    else {
        sh->ring[(sh->head + sh->count) % rt->capacity] = (msg_t){fn, arg};
        sh->count++;
        /* Claimed under mu (rt_shard_done cannot close the wake before it),
         * written after: the woken loop then finds mu free. */
        fire = sh->started && st_wake_claim(&sh->wake);
    }
    pthread_mutex_unlock(&sh->mu);
    if (fire)
        st_wake_fire(&sh->wake);
    return rc;
}

void rt_stop(rt_t *rt)
{
    for (int i = 0; i < rt->n; i++) {
        rt_shard_t *sh = &rt->shards[i];
        pthread_mutex_lock(&sh->mu);
        if (!sh->stop_requested && !sh->closed && sh->started)
            st_wake_send(&sh->wake);
        sh->stop_requested = true;
        pthread_mutex_unlock(&sh->mu);
    }
}

void rt_join_free(rt_t *rt)
{
    if (!rt)
        return;
    for (int i = 0; i < rt->n; i++) {
        rt_shard_t *sh = &rt->shards[i];
        if (sh->started)
            pthread_join(sh->thread, NULL);
        else
            (void)uv_loop_close(&sh->loop);
        pthread_mutex_destroy(&sh->mu);
        free(sh->ring);
    }
    free(rt->shards);
    free(rt);
}

int rt_shard_count(const rt_t *rt)
{
    return rt->n;
}

int rt_shard_id(const rt_shard_t *sh)
{
    return sh->id;
}

uv_loop_t *rt_shard_loop(rt_shard_t *sh)
{
    return &sh->loop;
}

rt_t *rt_shard_rt(rt_shard_t *sh)
{
    return sh->rt;
}

void *rt_shard_data(rt_shard_t *sh)
{
    return sh->data;
}

void rt_shard_set_data(rt_shard_t *sh, void *data)
{
    sh->data = data;
}

rt_shard_t *rt_current(void)
{
    return t_current;
}

int rt_shard_for(const char *topic, int32_t partition, int n_shards)
{
    /* FNV-1a over the topic, mixed with the partition (murmur3 finalizer). */
    uint32_t h = 2166136261u;
    for (const char *c = topic; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    h ^= (uint32_t)partition * 0x9E3779B1u;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (int)(h % (uint32_t)n_shards);
}
