/* st_pool.h - worker thread pools, one per class of blocking or CPU-heavy work,
 * so that one class cannot queue behind another in libuv's single,
 * process-wide pool (a burst of segment compressions for uploads would
 * otherwise hold every thread while a cold replay's chunk verification and
 * decoding waits behind it).
 *
 * Data path: stratad creates the pools at start (strata.hydration.threads:
 * tiering/tier_rd.c's chunk verification and decoding and the chunk cache's
 * file I/O; strata.upload.threads: tiering/tier_up.c's segment compression);
 * each shard opens a port per pool on its loop -> a loop queues an item on its
 * port -> a worker runs work(w) -> the item goes to the port's done list and
 * the loop is woken (st_wake, no spinning) -> done(w, 0) runs on the loop.
 *
 * Invariants: 1. work callbacks run on the pool's threads, done callbacks on
 *                the loop of the port they were queued on, each exactly once;
 *             2. items start in the order queued (FIFO per pool);
 *             3. a port is closed only once every item queued on it is done
 *                (its owner counts them), a pool freed only once its ports are
 *                closed;
 *             4. a NULL port queues on libuv's pool of the given loop (tests,
 *                tools, and pools of 0 threads: the shared pool, as before);
 *             5. a pool's threads run at its priority (st_pool_prio_t) from
 *                their first item on: each thread sets its own nice value and
 *                I/O class before st_pool_new_prio() returns. So a replay's
 *                hydration work yields the CPU to the shard loops and the
 *                flusher serving produce, and its cache file I/O yields the
 *                disk to the produce's fdatasyncs, yet uses both when they are
 *                idle (a lower priority is not a cap). */
#ifndef ST_POOL_H
#define ST_POOL_H

#include "core/st_err.h"

#include <stdbool.h>
#include <uv.h>

typedef struct st_pool st_pool_t;
typedef struct st_pool_port st_pool_port_t;
typedef struct st_pool_work st_pool_work_t;

typedef void (*st_pool_work_cb)(st_pool_work_t *w);
/* status: 0, or libuv's (UV_ECANCELED never happens: items are not cancelled). */
typedef void (*st_pool_done_cb)(st_pool_work_t *w, int status);

struct st_pool_work {
    void *data; /* the owner's */
    /* Private: */
    st_pool_work_t *next;
    st_pool_work_cb work;
    st_pool_done_cb done;
    st_pool_port_t *port;
    uv_work_t uv; /* on libuv's pool (NULL port) */
};

/** CPU and I/O priority of a pool's threads (per thread: the rest of the
 * process keeps its own). */
typedef struct {
    /* added to the process's nice value (capped at 19); 0 = the same; >= 0 */
    int nice;
    /* the idle I/O class (ioprio_set): the threads' own disk requests are
     * dispatched after other classes' by schedulers that honour classes
     * (mq-deadline, BFQ); false = the process's class */
    bool io_idle;
} st_pool_prio_t;

/** Start n_threads (>= 1) workers at the process's priority.
 * @param name  Borrowed for the call: thread names "<name>-N" (at most 10 chars kept).
 * @return 0, ST_E_INVAL, ST_E_NOMEM or a negative errno.  @thread any */
ST_MUST_CHECK int st_pool_new(const char *name, int n_threads, st_pool_t **out);
/** st_pool_new() whose threads run at prio (NULL = the process's); returns once
 * every thread has set it. A priority the system refuses is logged (a warning)
 * and the thread runs on at the process's: never an error.
 * @return as st_pool_new(); ST_E_INVAL for a negative nice.  @thread any */
ST_MUST_CHECK int
st_pool_new_prio(const char *name, int n_threads, const st_pool_prio_t *prio, st_pool_t **out);
/** Stop and join the workers and free the pool; p == NULL is a no-op.
 * Every port must be closed (nothing queued). @thread not a worker */
void st_pool_free(st_pool_t *p);

/** Open the pool's port on loop (done callbacks of items queued on it run
 * there). p == NULL gives *out = NULL (libuv's pool) and returns 0.
 * @return 0, ST_E_NOMEM or a negative errno.  @thread loop */
ST_MUST_CHECK int st_pool_port_new(st_pool_t *p, uv_loop_t *loop, st_pool_port_t **out);
/** Close a port (freed once its wake-up handle is closed); NULL is a no-op.
 * Nothing queued on it may still be pending.  @thread its loop */
void st_pool_port_close(st_pool_port_t *port);

/** Queue work(w) on the port's pool, or on libuv's pool of loop when port is
 * NULL; done(w, status) runs on the loop afterwards. w->data is left alone.
 * @param w  Borrowed until done runs.
 * @return 0 (done will run) or a negative errno (nothing queued).
 * @thread loop (the port's)  @blocking no */
ST_MUST_CHECK int st_pool_queue(st_pool_port_t *port,
                                uv_loop_t *loop,
                                st_pool_work_t *w,
                                st_pool_work_cb work,
                                st_pool_done_cb done);

#endif
