/* tier_int.h - internals shared by tiering/tier_*.c. */
#ifndef TIER_INT_H
#define TIER_INT_H

#include "tiering/obj.h"
#include "tiering/tier.h"

struct up_part;

struct tier_shard {
    uv_loop_t *loop;
    part_shard_t *ps;
    tier_opts_t opts;
    obj_store_t *store;    /* owned */
    idx_client_t *idx;     /* owned */
    struct up_part *parts; /* owned list */
    int active;
    bool closing;
    tier_stats_t stats;
    int64_t stats_hydrated_bytes; /* bytes read back from the archive */
    tier_closed_cb closed_cb;
    void *closed_arg;
    int closing_steps;
};

#endif
