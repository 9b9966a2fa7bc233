/* st_wake.h - a loop wake-up that any thread may send without spinning: an
 * eventfd watched by a uv_poll_t. It replaces uv_async_t on the hot paths
 * (cross-shard messages in rt.c, fdatasync completions in plog_flush.c):
 * libuv 1.44's uv_async_t makes the loop spin and sched_yield() while a
 * sender thread is between its two atomic steps, which on a loaded 2-core
 * machine turns into yield storms on the shard loops.
 * Like uv_async_t: sends coalesce; the callback runs on the loop at least once
 * after every send, and never concurrently with itself. */
#ifndef ST_WAKE_H
#define ST_WAKE_H

#include "core/st_err.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

typedef struct st_wake st_wake_t;
typedef void (*st_wake_cb)(st_wake_t *w);

struct st_wake {
    uv_poll_t poll; /* first: the handle's close callback finds the wake */
    int efd;
    atomic_int pending; /* 1 while a wake-up is written and not yet taken */
    atomic_int firing;  /* sends claimed and not yet written (st_wake_claim) */
    st_wake_cb cb;
    uv_close_cb closed_cb;
    void *data; /* the owner's */
};

/** Watch a new eventfd on loop; cb runs there after sends.
 * @return 0 or -errno.  @thread loop (or before the loop runs) */
ST_MUST_CHECK int st_wake_init(uv_loop_t *loop, st_wake_t *w, st_wake_cb cb);
/** Wake the loop (coalesced). Never blocks, never spins (one eventfd write
 * when no wake-up is pending). Callers send under the lock that guards their
 * queue and its closed state, so that no send can still be under way when the
 * loop closes the wake (the eventfd number could be reused).
 * @thread any, until st_wake_close */
void st_wake_send(st_wake_t *w);
/** The first half of a send made under the caller's lock: true when this
 * send must write the eventfd, which the caller then does with st_wake_fire()
 * once it released its lock. The loop woken by that write takes the same
 * lock first thing: written under the lock, on a loaded machine the woken
 * loop preempts the sender inside its critical section and then blocks on
 * it (bench/REPORT.md). The handle's close waits for claimed sends to be
 * written, so the caller's lock still orders claims before st_wake_close.
 * @thread any, until st_wake_close */
bool st_wake_claim(st_wake_t *w);
/** The second half: write the eventfd of a send st_wake_claim() returned
 * true for, with no lock held.  @thread the claiming thread */
void st_wake_fire(st_wake_t *w);
/** Stop watching and close the eventfd; closed_cb (may be NULL) runs on the
 * loop once the handle is closed, after every claimed send was written. No
 * send or claim may follow.  @thread loop */
void st_wake_close(st_wake_t *w, uv_close_cb closed_cb);

#endif
