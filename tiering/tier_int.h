/* tier_int.h - internals shared by tiering/tier_*.c. */
#ifndef TIER_INT_H
#define TIER_INT_H

#include "core/st_pool.h"
#include "tiering/obj.h"
#include "tiering/tier.h"

struct up_part;
struct tier_gc;

struct tier_shard {
    uv_loop_t *loop;
    part_shard_t *ps;
    tier_opts_t opts;
    obj_store_t *store;       /* owned */
    idx_client_t *idx;        /* owned */
    struct tier_hyd *hyd;     /* owned by tier_rd.c: downloads, read-ahead, chunk cache */
    st_pool_port_t *hyd_port; /* owned: hydration pool (NULL = libuv's) */
    st_pool_port_t *up_port;  /* owned: upload pool (NULL = libuv's) */
    int up_pending;           /* compressions queued on up_port */
    bool parts_waiting;       /* close_parts() waits for up_pending to reach 0 */
    struct up_part *parts;    /* owned list */
    int active;
    bool closing;
    tier_stats_t stats;
    int64_t stats_hydrated_bytes; /* bytes read back from the archive */
    tier_closed_cb closed_cb;
    void *closed_arg;
    int closing_steps;
    int resume_pending;            /* partitions open at start still asking the index */
    void (*on_resumed)(void *arg); /* tier_when_resumed() */
    void *on_resumed_arg;
    struct tier_gc *gc;         /* owned: total retention and orphan GC (tier_gc.c) */
    struct tier_topics *topics; /* owned: topic manifests (tier_topics.c), orphan scanner only */
    struct tier_acomp *acomp;   /* owned: archive compaction (tier_acomp.c) */
    uv_timer_t win_timer;       /* uploads of the active segments' windows (tier_up.c) */
    bool has_win_timer;
};

/* tier_up.c: may GC trust the log start of (topic, partition)? True once the
 * uploader resumed it from the index; otherwise starts that resume. */
bool tier__part_ready(tier_shard_t *ts, const char *topic, int32_t partition);

/* tier_gc.c: start the periodic GC of a new shard; stop it (done(arg) runs
 * once nothing of it is pending). */
int tier__gc_start(tier_shard_t *ts);
void tier__gc_close(tier_shard_t *ts, void (*done)(void *), void *arg);

/* tier_topics.c: keep the archive's topic manifests (orphan scanner shard);
 * close once the store is closed (done(arg) runs when nothing is left). */
int tier__topics_start(tier_shard_t *ts);
void tier__topics_close(tier_shard_t *ts, void (*done)(void *), void *arg);

/* tier_acomp.c: start the archive cleaner of a shard (a thread); stop it
 * (done(arg) runs on the loop once the thread is joined and nothing of it is
 * left). Is key a new object of a pass not switched in yet (the orphan scan
 * must leave it)? @thread any */
int tier__acomp_start(tier_shard_t *ts);
void tier__acomp_close(tier_shard_t *ts, void (*done)(void *), void *arg);
bool tier__acomp_is_pending(const char *key);

#endif
