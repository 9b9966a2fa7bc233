/* st_pool.c - per-class worker thread pools (see st_pool.h).
 * Queue: one mutex-guarded FIFO per pool, workers wait on a condition
 * variable. Completion: a worker appends the item to its port's done list
 * under the port's lock and sends the port's st_wake under that same lock, so
 * no send is under way once the loop has run the last done callback (the port
 * may then be closed).
 * Priority: each worker sets its own nice value (setpriority on its thread id)
 * and I/O class (ioprio_set on itself) before it takes an item, and
 * st_pool_new_prio() waits for every worker to have done so. */
#include "core/st_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/st_log.h"
#include "core/st_wake.h"

/* ioprio_set(2) (no glibc wrapper): linux/ioprio.h's values. */
#define POOL_IOPRIO_WHO_PROCESS 1
#define POOL_IOPRIO_CLASS_IDLE  3
#define POOL_IOPRIO_CLASS_SHIFT 13

struct st_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    st_pool_work_t *head, *tail; /* queued, oldest first */
    bool stopping;
    int n_threads;
    pthread_t *threads; /* owned */
    char name[11];
    st_pool_prio_t prio;
    pthread_cond_t started_cv; /* a worker has set its priority */
    int n_started;
};

struct st_pool_port {
    st_wake_t wake; /* its data is the port */
    st_pool_t *pool;
    pthread_mutex_t mu;
    st_pool_work_t *done; /* finished items, newest first */
};

/* ---- Workers ---- */

/* Set the calling thread's priority (invariant 5). A refusal is logged. */
static void set_prio(const st_pool_t *p)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (p->prio.nice > 0) {
        errno = 0;
        int cur = getpriority(PRIO_PROCESS, (id_t)tid);
        int want = (errno ? 0 : cur) + p->prio.nice;
        if (want > 19)
            want = 19;
        if (setpriority(PRIO_PROCESS, (id_t)tid, want) != 0)
            ST_WARN("pool", "%s: cannot set nice %d: %s", p->name, want, strerror(errno));
    }
    if (p->prio.io_idle && syscall(SYS_ioprio_set, POOL_IOPRIO_WHO_PROCESS, (int)tid,
                                   POOL_IOPRIO_CLASS_IDLE << POOL_IOPRIO_CLASS_SHIFT) != 0)
        ST_WARN("pool", "%s: cannot set the idle I/O class: %s", p->name, strerror(errno));
}

static void *worker_main(void *arg)
{
    st_pool_t *p = arg;
    set_prio(p);
    pthread_mutex_lock(&p->mu);
    p->n_started++;
    pthread_cond_broadcast(&p->started_cv);
    pthread_mutex_unlock(&p->mu);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        st_pool_work_t *w = p->head;
        if (!w) { /* stopping and drained */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        w->work(w);
        st_pool_port_t *port = w->port;
        pthread_mutex_lock(&port->mu);
        w->next = port->done;
        port->done = w;
        bool fire = st_wake_claim(&port->wake); /* written once mu is free */
        pthread_mutex_unlock(&port->mu);
        if (fire)
            st_wake_fire(&port->wake);
    }
}

int st_pool_new(const char *name, int n_threads, st_pool_t **out)
{
    return st_pool_new_prio(name, n_threads, NULL, out);
}

int st_pool_new_prio(const char *name, int n_threads, const st_pool_prio_t *prio, st_pool_t **out)
{
    if (n_threads < 1 || !name || (prio && prio->nice < 0))
        return ST_E_INVAL;
    st_pool_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->threads = calloc((size_t)n_threads, sizeof(*p->threads)))) {
        free(p);
        return ST_E_NOMEM;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (prio)
        p->prio = *prio;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->started_cv, NULL);
    for (int i = 0; i < n_threads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0) {
            st_pool_free(p);
            return -rc;
        }
        char tn[24]; /* pthread names keep 15 bytes */
        snprintf(tn, sizeof(tn), "%s-%d", p->name, i);
        tn[15] = '\0';
        pthread_setname_np(p->threads[i], tn);
        p->n_threads++;
    }
    pthread_mutex_lock(&p->mu);
    while (p->n_started < p->n_threads)
        pthread_cond_wait(&p->started_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    *out = p;
    return 0;
}

void st_pool_free(st_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->started_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

/* ---- Ports ---- */

static void on_wake(st_wake_t *wk)
{
    st_pool_port_t *port = wk->data;
    pthread_mutex_lock(&port->mu);
    st_pool_work_t *list = port->done;
    port->done = NULL;
    pthread_mutex_unlock(&port->mu);
    /* Oldest first. */
    st_pool_work_t *rev = NULL;
    for (st_pool_work_t *w = list, *next; w; w = next) {
        next = w->next;
        w->next = rev;
        rev = w;
    }
    for (st_pool_work_t *w = rev, *next; w; w = next) {
        next = w->next;
        w->next = NULL;
        w->done(w, 0);
    }
}

int st_pool_port_new(st_pool_t *p, uv_loop_t *loop, st_pool_port_t **out)
{
    *out = NULL;
    if (!p)
        return 0;
    st_pool_port_t *port = calloc(1, sizeof(*port));
    if (!port)
        return ST_E_NOMEM;
    port->pool = p;
    pthread_mutex_init(&port->mu, NULL);
    int rc = st_wake_init(loop, &port->wake, on_wake);
    if (rc != 0) {
        pthread_mutex_destroy(&port->mu);
        free(port);
        return rc;
    }
    port->wake.data = port;
    *out = port;
    return 0;
}

static void on_port_closed(uv_handle_t *h)
{
    st_pool_port_t *port = ((st_wake_t *)h)->data;
    pthread_mutex_destroy(&port->mu);
    free(port);
}

void st_pool_port_close(st_pool_port_t *port)
{
    if (port)
        st_wake_close(&port->wake, on_port_closed);
}

/* ---- Queueing ---- */

static void uv_work(uv_work_t *u)
{
    st_pool_work_t *w = u->data;
    w->work(w);
}

static void uv_done(uv_work_t *u, int status)
{
    st_pool_work_t *w = u->data;
    w->done(w, status);
}

int st_pool_queue(st_pool_port_t *port,
                  uv_loop_t *loop,
                  st_pool_work_t *w,
                  st_pool_work_cb work,
                  st_pool_done_cb done)
{
    w->work = work;
    w->done = done;
    w->port = port;
    w->next = NULL;
    if (!port) {
        w->uv.data = w;
        return uv_queue_work(loop, &w->uv, uv_work, uv_done);
    }
    st_pool_t *p = port->pool;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}
