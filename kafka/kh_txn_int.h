/* kh_txn_int.h - internals shared by the transaction coordinator's files:
 * kh_txn.c (the coordinator, on the transactional id's shard), kh_txn_api.c
 * (the handlers on the connection's shard) and kh_txn_state.c (copies and the
 * durable encoding of a transaction's state). */
#ifndef KH_TXN_INT_H
#define KH_TXN_INT_H

#include "kafka/kh_group_int.h"

typedef enum {
    TS_EMPTY,
    TS_ONGOING,
    TS_PREPARE_COMMIT,
    TS_PREPARE_ABORT,
    TS_COMPLETE_COMMIT,
    TS_COMPLETE_ABORT,
    TS_N
} tstate_t;

/* Kafka's names of the states (DescribeTransactions, ListTransactions). */
extern const char *const kh_txn__state_names[TS_N];


typedef struct {
    char *topic; /* owned */
    int32_t partition;
} ttp_t;

typedef struct {
    char *group; /* owned */
    char *topic; /* owned */
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata; /* owned, NULL for null */
} toff_t;

/* The durable part of a transaction (one meta.db row). */
typedef struct {
    int64_t pid; /* -1 until one is allocated */
    int16_t epoch;
    int16_t last_epoch; /* the epoch before a bump by the coordinator (timeout), or -1 */
    int32_t timeout_ms;
    tstate_t state;
    int64_t start_ms; /* wall clock: when the ongoing transaction began */
    ttp_t *tps;
    int n_tps;
    char **groups; /* owned strings */
    int n_groups;
    toff_t *offs; /* pending TxnOffsetCommit offsets */
    int n_offs;
} tdata_t;

typedef struct top top_t;

typedef struct txn {
    struct txn *next;
    char *id; /* owned */
    tdata_t d;
    bool busy;     /* a durable change or a marker round is in flight */
    int out;       /* marker and offset ops of the round out */
    int round_err; /* first failure of the round */
    top_t *waiter; /* the EndTxn answered when the round is over, or NULL */
    /* wall clock of its last change (or of the start that loaded it): an
     * idle id expires transactional.id.expiration.ms later */
    int64_t touched_ms;
} txn_t;

/* A group's offset that an open transaction will commit (on the group's
 * shard): OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT. */
typedef struct pend {
    struct pend *next;
    char *txn;   /* owned: the transactional id */
    char *group; /* owned */
    char *topic; /* owned */
    int32_t partition;
} pend_t;

typedef struct kh_txn_coord {
    kh_shard_t *ks; /* borrowed */
    txn_t *txns;
    uv_timer_t timer; /* timeouts, and Prepare* rounds to finish again */
    int n_out;        /* thread-pool works and posts out that point at txns */
    bool closing;
    bool timer_closed;
} coord_t;


/* ---- Request ops ---- */

typedef enum { K_INIT, K_ADD_PARTS, K_ADD_OFFS, K_TXN_OFFS, K_END, K_DESCRIBE, K_LIST } kind_t;

struct top {
    kh_post_t post;
    kh_req_t *req;
    int origin;
    kind_t kind;
    const char *txn_id; /* request arena */
    int64_t pid;
    int16_t epoch;
    int16_t v; /* the request's version */
    int32_t timeout_ms;
    /* K_ADD_PARTS: topics of one transaction and their results (request arena) */
    const kp_add_partitions_to_txn_request_topic_t *topics;
    int n_topics;
    bool verify_only;
    kp_add_partitions_to_txn_response_topic_result_t *results;
    int regs_out; /* registrations out */
    /* K_ADD_OFFS, K_TXN_OFFS */
    const char *group;
    kp_txn_offset_commit_response_t *toc; /* K_TXN_OFFS: its response */
    /* K_TXN_OFFS v3+ (KIP-447): the consumer's group membership, checked on
     * the group's shard before the coordinator takes the offsets */
    int32_t generation;
    const char *member_id;   /* request arena, NULL when not given */
    const char *instance_id; /* request arena, NULL for null */
    bool commit;             /* K_END */
    /* K_DESCRIBE: its response entry (request arena; lists from op->arena) */
    kp_describe_transactions_response_transaction_state_t *desc;
    /* K_LIST: the shard asked, and its transactions (op->arena) */
    int to;
    kp_list_transactions_response_transaction_state_t *list;
    int n_list;
    /* K_DESCRIBE, K_LIST: allocations made on the coordinator's shard, freed
     * with the request (kh_txn_api.c's state_free) */
    kp_arena_t arena;
    top_t *next_in_req;
    /* results */
    int16_t err;
    int64_t res_pid;
    int16_t res_epoch;
};


/* ---- kh_txn_state.c ---- */
/** Free d's strings and arrays (d is zeroed). */
void kh_txn__fini(tdata_t *d);
/** A deep copy of in with room for extra_* more entries. @return 0 or ST_E_NOMEM. */
int kh_txn__copy(tdata_t *out, const tdata_t *in, int extra_tps, int extra_groups, int extra_offs);
/** A copy of in without partitions, groups nor offsets (a transaction that ended). */
void kh_txn__bare(tdata_t *out, const tdata_t *in);
/** The durable encoding of d (malloc'd, *len bytes), or NULL when out of memory. */
uint8_t *kh_txn__encode(const tdata_t *d, size_t *len);
/** Decode a stored state (untrusted length). @return 0 or ST_E_CORRUPT. */
int kh_txn__decode(tdata_t *d, const void *blob, size_t len);

/* ---- kh_txn.c (coordinator shard) ---- */
/** rt_fn: run op on the transactional id's shard; it is posted back with kh_txn__op_back. */
void kh_txn__op_run(rt_shard_t *sh, void *arg);
/** rt_fn: the coordinator's shard closed for good (shutdown) before op ran:
 * COORDINATOR_NOT_AVAILABLE, answered here (on the request's shard). */
void kh_txn__op_closed(rt_shard_t *sh, void *arg);
/** Set every partition of an AddPartitionsToTxn op still without an error to err. */
void kh_txn__set_all(top_t *op, int16_t err);
/** Set every partition of a TxnOffsetCommit response still without an error to err. */
/** The state name s (a ListTransactions filter) is one of ours. */
bool kh_txn__state_known(kp_str_t s);
void kh_txn__toc_set_all(kp_txn_offset_commit_response_t *r, int16_t err);

/* ---- kh_txn_api.c (connection shard) ---- */
/** rt_fn: an op is back on its request's shard. */
void kh_txn__op_back(rt_shard_t *sh, void *arg);

#endif
