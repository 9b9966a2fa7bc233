/* kh_group_int.h - internals shared by kh_group.c (coordinator, membership and group admin
 * APIs) and kh_offsets.c (OffsetCommit, OffsetFetch, OffsetDelete): the per-shard group
 * coordinator with its offset writer, and the ops that carry a request to a group's shard.
 * Everything here runs on one shard's loop unless said otherwise. */
#ifndef KH_GROUP_INT_H
#define KH_GROUP_INT_H

#include "core/goffs.h"
#include "kafka/grp.h"
#include "kafka/kh_int.h"

#define KH_GROUP_OP_ARENA (64u << 20)

typedef struct kh_group__wop wop_t;
typedef void (*wop_done_fn)(wop_t *w, int status);

/* A durable change of offsets: rows for SQLite, then done() on the shard's loop. */
struct kh_group__wop {
    wop_t *next;
    goffs_row_t *rows; /* owned, with owned strings */
    int n_rows;
    wop_done_fn done;
    void *arg;
};

typedef struct kh_group__shard {
    kh_shard_t *ks;      /* borrowed */
    grp_coord_t *coord;  /* owned */
    uv_timer_t timer;    /* drives grp_coord_tick */
    wop_t *queue, *tail; /* waiting for the next transaction */
    wop_t *inflight;     /* in the transaction running now */
    goffs_row_t *batch;  /* owned: rows of the running transaction (shallow copies) */
    bool closing;
    bool timer_closed;
} gshard_t;

typedef struct kh_group__op gop_t;
typedef void (*gop_fn)(gop_t *op, gshard_t *gs);

struct kh_group__op {
    kh_post_t post;
    kh_req_t *req;
    gop_t *next_in_req; /* for state_free */
    int origin;
    char *group; /* request arena, NUL-terminated */
    int index;   /* element of a batched request */
    gop_fn run;
    kp_arena_t arena; /* allocations made on the owning shard */
    void *resp;       /* the part of the response this op fills (request arena) */
    void *extra;      /* per-API state */
    uint64_t incarnation;
};

typedef struct {
    void *resp;
    gop_t *ops;
} gstate_t;


/** The coordinator of the calling shard, or NULL (not started, or freed at shutdown). */
gshard_t *kh_group__shard(void);

/** Free rows[0..n) and their strings. */
void kh_group__rows_free(goffs_row_t *rows, int n);
/** A writer op with room for n_rows rows (n_rows 0 allowed), or NULL. */
wop_t *kh_group__wop_new(int n_rows, wop_done_fn done, void *arg);
/** Queue w (takes ownership) for the shard's next SQLite transaction; w->done runs on the
 * loop once it committed or failed, in submission order, then w is freed. */
void kh_group__write(gshard_t *gs, wop_t *w);

/** Start a group request: a hold is taken (kh_req_op_out), always, and req->state becomes
 * the gstate_t (with a zeroed response struct of resp_size bytes).
 * @return NULL when out of memory. Every failure after it is kh_fail_held(). */
gstate_t *kh_group__start(kh_req_t *req, size_t resp_size);
/** Drop the hold of kh_group__start: the response goes out when every op is back. */
void kh_group__release(kh_req_t *req);
/** Post an op for group (a request-arena string) to the group's shard, where run(op, gs)
 * runs; run ends with kh_group__done, or with gs == NULL (coordinator gone) only fills a
 * COORDINATOR_NOT_AVAILABLE answer. Everything the op needs (resp, extra) is given here:
 * the op may run on the other shard before this returns, so the caller must not touch it.
 * @return the op (not to be dereferenced), or NULL when out of memory. */
gop_t *
kh_group__send(kh_req_t *req, const char *group, int index, gop_fn run, void *resp, void *extra);
/** The op's work on the group's shard is over: post it back to its request. */
void kh_group__done(gop_t *op, gshard_t *gs);

/** The member's host as Kafka reports it ("/IP"); arena memory of req. */
const char *kh_group__client_host(kh_req_t *req);
/** NULL for a null wire string, else an arena C string. */
char *kh_group__opt_cstr(kh_req_t *req, kp_str_t s);
/** Copies into an op arena (empty on allocation failure, never null). */
kp_str_t kh_group__arena_str(kp_arena_t *a, const char *s);
kp_bytes_t kh_group__arena_bytes(kp_arena_t *a, const uint8_t *p, int32_t len);

#endif
