/* rt.h - per-core runtime: shards, each one thread running its own libuv loop,
 * and bounded cross-shard message queues woken by uv_async_t.
 *
 * Data path: a connection's shard decodes a request; work on a partition
 * owned by another shard (rt_shard_for) is posted there with rt_post(), and
 * the answer is posted back. Shards share no mutable state.
 *
 * Ordering: messages from one sender to one shard run in the order posted.
 * Back-pressure: a full queue refuses with ST_E_AGAIN; the sender retries
 * later (after its own loop turns) rather than blocking its loop. */
#ifndef RT_H
#define RT_H

#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"

typedef struct rt rt_t;
typedef struct rt_shard rt_shard_t;

/* A message: fn(shard, arg) runs on the target shard's loop. */
typedef void (*rt_fn)(rt_shard_t *sh, void *arg);

typedef struct {
    /* Runs on each shard's loop when it starts. */
    rt_fn on_start;
    /* Runs on each shard's loop at rt_stop(): the app winds down (messages
     * are still delivered meanwhile), closes every handle it opened on this
     * loop and then calls rt_shard_done(); the shard's thread exits once the
     * loop has no open handles left. NULL: rt_shard_done() right away. */
    rt_fn on_stop;
    void *arg; /* borrowed: passed to both */
} rt_hooks_t;

/** Create n_shards shards (not started) with queues of queue_capacity messages.
 * @return 0, ST_E_INVAL, ST_E_NOMEM. */
ST_MUST_CHECK int rt_new(int n_shards, int queue_capacity, rt_t **out);
/** Start one thread per shard; each runs hooks->on_start first.
 * @param hooks  Borrowed; must outlive the runtime. */
ST_MUST_CHECK int rt_start(rt_t *rt, const rt_hooks_t *hooks);
/** Post fn(arg) to shard `to`. @return 0, ST_E_AGAIN (queue full, nothing
 * posted), ST_E_CLOSED (shard stopping), ST_E_INVAL.  @thread any */
ST_MUST_CHECK int rt_post(rt_t *rt, int to, rt_fn fn, void *arg);
/** Ask every shard to stop (runs on_stop on each loop). @thread any */
void rt_stop(rt_t *rt);
/** The app finished stopping shard sh: its queue closes (later posts get
 * ST_E_CLOSED). @thread sh's loop */
void rt_shard_done(rt_shard_t *sh);
/** Wait for every shard thread to exit, then free the runtime. */
void rt_join_free(rt_t *rt);

int rt_shard_count(const rt_t *rt);
int rt_shard_id(const rt_shard_t *sh);
uv_loop_t *rt_shard_loop(rt_shard_t *sh);
rt_t *rt_shard_rt(rt_shard_t *sh);
/** Per-shard app state slot. */
void *rt_shard_data(rt_shard_t *sh);
void rt_shard_set_data(rt_shard_t *sh, void *data);
/** The shard running on the calling thread, or NULL. */
rt_shard_t *rt_current(void);

/** The shard owning (topic, partition) among n shards: stable across restarts. */
int rt_shard_for(const char *topic, int32_t partition, int n_shards);

/** Number of cores available to this process (sched_getaffinity). */
int rt_cpu_count(void);

#endif
