/* grp.h - the group coordinator of one shard: classic consumer groups (rebalance state
 * machine, membership, generations) and their committed offsets in memory.
 * Data path: kh_group.c decodes JoinGroup/SyncGroup/Heartbeat/LeaveGroup/OffsetCommit/...
 * on the connection's shard -> posts the work to the shard owning the group
 * (rt_shard_for(group_id, 0, n)) -> calls grp_* there -> results come back through
 * callbacks (Join and Sync wait for the rest of the group) -> posted back and answered.
 * Durability is the caller's: OffsetCommit is written to core/goffs first and
 * grp_offset_put() runs when SQLite committed.
 * Threads: one coordinator per shard; every function runs on that shard's loop and never
 * blocks. Time comes from the config's clocks (injectable for tests); the caller runs
 * grp_coord_tick() at grp_coord_next_deadline() (kh_group.c drives a uv timer).
 * Callbacks run synchronously inside grp_* calls or grp_coord_tick(); they must not call
 * back into the coordinator, and their result structs are borrowed for the call. */
#ifndef GRP_H
#define GRP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Group states (Kafka's classic protocol), with the function behind each transition:
 *
 *              grp_join (first member)          all members rejoined, or rebalance
 *    +-------+ ------------------------> +------------------+ timeout (complete_join)
 *    | EMPTY |                           |PREPARING_REBALANCE|----------------------+
 *    +-------+ <------------------------ +------------------+                       |
 *      |   ^     complete_join with no        ^        ^                             v
 *      |   |     member left (gen++)          |        |                 +----------------------+
 *      |   |                                  |        +---------------- |COMPLETING_REBALANCE  |
 *      |   |    join of a new/changed member, |  join/leave/expiry/sync  +----------------------+
 *      |   |    leave, session expiry         |  timeout (prepare_rebal.)          |
 *      |   |    (prepare_rebalance)           |                        leader's grp_sync
 *      |   |                             +--------+                                |
 *      |   |                             | STABLE | <------------------------------+
 *      |   |                             +--------+
 *      |   +-- (Empty groups only) grp_delete_begin / offsets.retention.minutes expiry
 *      v
 *    +------+  removed by grp_delete_end once its offsets are deleted from disk.
 *    | DEAD |
 *    +------+
 */
typedef enum {
    GRP_EMPTY,
    GRP_PREPARING_REBALANCE,
    GRP_COMPLETING_REBALANCE,
    GRP_STABLE,
    GRP_DEAD,
} grp_state_t;

/** Kafka's name of a state ("PreparingRebalance", ...). */
const char *grp_state_name(grp_state_t s);

typedef struct grp_config {
    /* group.min.session.timeout.ms / group.max.session.timeout.ms */
    int32_t min_session_timeout_ms;
    int32_t max_session_timeout_ms;
    /* group.initial.rebalance.delay.ms: wait for more members when an empty group fills */
    int32_t initial_rebalance_delay_ms;
    /* offsets.retention.minutes in ms: an empty group's offsets expire after this */
    int64_t offsets_retention_ms;
    /* cap on the protocol metadata of one JoinGroup (sum over protocols) */
    int32_t max_metadata_bytes;
    /* monotonic clock in ms, for timers */
    int64_t (*now_ms)(void *clock_arg);
    /* wall clock in ms since the epoch, for retention (survives restarts) */
    int64_t (*wall_ms)(void *clock_arg);
    /* borrowed: passed to both clocks */
    void *clock_arg;
    /* an empty group's retention expired: it is DEAD now; the callee deletes its offsets
     * from disk, then calls grp_delete_end(). May be NULL (then it is removed at once). */
    void (*on_expire)(void *arg, const char *group_id);
    /* borrowed: passed to on_expire */
    void *expire_arg;
    /* KIP-848: group.consumer.session.timeout.ms / group.consumer.heartbeat.interval.ms */
    int32_t cons_session_timeout_ms;
    int32_t cons_heartbeat_interval_ms;
    /* group.consumer.assignors: GRP_ASSIGNOR_* in preference order (the first is the default) */
    int cons_assignors[2];
    int n_cons_assignors;
    /* KIP-848 membership changed: the consumer group's durable state (an opaque blob for
     * grp_cons_restore, borrowed for the call), or len 0 when it has none any more (empty, or
     * classic again). The callee writes it behind (member epochs fence what a crash lost).
     * May be NULL. */
    void (*on_cons_state)(void *arg, const char *group_id, const uint8_t *state, size_t len);
    void *cons_state_arg;
} grp_config_t;

enum { GRP_ASSIGNOR_UNIFORM = 1, GRP_ASSIGNOR_RANGE = 2 };

typedef struct grp_coord grp_coord_t;
typedef struct grp grp_t;
struct meta_snap;

/** A coordinator with no groups. @param cfg Copied. @return NULL when out of memory. */
grp_coord_t *grp_coord_new(const grp_config_t *cfg);
/** Answer every waiting Join/Sync with COORDINATOR_NOT_AVAILABLE and free everything.
 * grp_coord_free(NULL) is a no-op. */
void grp_coord_free(grp_coord_t *c);
/** Run every expired timer: join/sync deadlines, session timeouts, offset retention. */
void grp_coord_tick(grp_coord_t *c);
/** The earliest monotonic time at which grp_coord_tick() has work, or -1 for none.
 * Retention is checked at most once per minute of the monotonic clock. */
int64_t grp_coord_next_deadline(const grp_coord_t *c);

/* ---- JoinGroup ---- */

typedef struct grp_protocol {
    /* borrowed for the call (copied) */
    const char *name;
    /* borrowed for the call (copied) */
    const uint8_t *metadata;
    int32_t metadata_len;
} grp_protocol_t;

typedef struct grp_join_req {
    /* every string is borrowed for the call; NUL-terminated */
    const char *group_id;
    /* "" for a new member */
    const char *member_id;
    /* NULL unless static membership (group.instance.id) */
    const char *instance_id;
    const char *client_id;
    const char *client_host;
    const char *protocol_type;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    const grp_protocol_t *protocols;
    int n_protocols;
    /* JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED */
    bool require_known_member_id;
    /* JoinGroup v9+: a static leader rejoining a stable group may skip the assignment */
    bool supports_skip_assignment;
    /* borrowed for the call: topic names, ids and partitions, for a classic member of a
     * consumer-protocol group (its subscription and owned partitions name topics) */
    const struct meta_snap *snap;
} grp_join_req_t;

typedef struct grp_member_info {
    const char *member_id;
    /* NULL for dynamic members */
    const char *instance_id;
    /* metadata of the selected protocol */
    const uint8_t *metadata;
    int32_t metadata_len;
} grp_member_info_t;

typedef struct grp_join_result {
    int16_t error_code;
    int32_t generation_id;
    /* NULL when not decided */
    const char *protocol_type;
    const char *protocol_name;
    const char *leader_id;
    const char *member_id;
    /* every member, for the leader only */
    const grp_member_info_t *members;
    int n_members;
    bool skip_assignment;
} grp_join_result_t;

/** Result pointers are borrowed for the call. */
typedef void (*grp_join_cb)(void *arg, const grp_join_result_t *res);

/** Handle a JoinGroup: cb runs now (errors, MEMBER_ID_REQUIRED, unchanged members) or when
 * the rebalance completes. */
void grp_join(grp_coord_t *c, const grp_join_req_t *q, grp_join_cb cb, void *arg);

/* ---- SyncGroup ---- */

typedef struct grp_assignment {
    const char *member_id;
    const uint8_t *assignment;
    int32_t assignment_len;
} grp_assignment_t;

typedef struct grp_sync_req {
    const char *group_id;
    int32_t generation_id;
    const char *member_id;
    /* NULL unless static */
    const char *instance_id;
    /* NULL when the request carries none (SyncGroup < v5) */
    const char *protocol_type;
    const char *protocol_name;
    /* the leader's assignments (ignored from followers) */
    const grp_assignment_t *assignments;
    int n_assignments;
    /* borrowed for the call: to name the topics of a consumer-protocol group's assignment */
    const struct meta_snap *snap;
} grp_sync_req_t;

typedef struct grp_sync_result {
    int16_t error_code;
    const char *protocol_type;
    const char *protocol_name;
    const uint8_t *assignment;
    int32_t assignment_len;
} grp_sync_result_t;

typedef void (*grp_sync_cb)(void *arg, const grp_sync_result_t *res);

/** Handle a SyncGroup: cb runs now or when the leader's assignment arrives. */
void grp_sync(grp_coord_t *c, const grp_sync_req_t *q, grp_sync_cb cb, void *arg);

/* ---- Heartbeat, LeaveGroup ---- */

/** @return a Kafka error code (NONE, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, ...). */
int16_t grp_heartbeat(grp_coord_t *c,
                      const char *group_id,
                      int32_t generation_id,
                      const char *member_id,
                      const char *instance_id);
/** Remove one member (by member id, or by instance id for static members).
 * @return a Kafka error code. */
int16_t
grp_leave(grp_coord_t *c, const char *group_id, const char *member_id, const char *instance_id);

/* ---- Offsets ---- */

typedef struct grp_offset {
    /* owned by the group */
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    /* owned by the group; NULL for null */
    char *metadata;
    int64_t commit_ms;
} grp_offset_t;

/** May (generation, member, instance) commit offsets now? A commit with generation < 0 to an
 * unknown group creates it (Empty, no protocol). Refreshes the member's session.
 * @param incarnation  Out: the group's incarnation, for grp_offset_put().
 * @return a Kafka error code. */
int16_t grp_commit_check(grp_coord_t *c,
                         const char *group_id,
                         int32_t generation_id,
                         const char *member_id,
                         const char *instance_id,
                         uint64_t *incarnation);
/** May a TxnOffsetCommit (v3+, KIP-447) of (generation, member, instance) go on? Kafka's rules
 * for transactional commits: nothing given (generation < 0, no member, no instance) or an
 * Empty group with generation < 0 passes; otherwise the member (by instance id when given:
 * FENCED_INSTANCE_ID when another member holds it) and its exact generation; an unknown group
 * passes only with generation < 0; a rebalance in progress does not refuse it.
 * @return a Kafka error code. */
int16_t grp_txn_commit_check(grp_coord_t *c,
                             const char *group_id,
                             int32_t generation_id,
                             const char *member_id,
                             const char *instance_id);
/** Store a committed offset (after it is durable). Ignored when the group was deleted since
 * grp_commit_check() returned incarnation. Strings are copied. @return 0 or ST_E_NOMEM. */
int grp_offset_put(grp_coord_t *c,
                   const char *group_id,
                   uint64_t incarnation,
                   const char *topic,
                   int32_t partition,
                   int64_t offset,
                   int32_t leader_epoch,
                   const char *metadata,
                   int64_t commit_ms);
/** The committed offset of (group, topic, partition), borrowed until the next mutation, or NULL. */
const grp_offset_t *
grp_offset_get(const grp_coord_t *c, const char *group_id, const char *topic, int32_t partition);
/** Every committed offset of g, sorted by (topic, partition); borrowed until the next mutation. */
const grp_offset_t *grp_offsets(const grp_t *g, int *n);
/** Forget offsets: topic NULL = every topic, partition -1 = every partition. */
void grp_offsets_delete(grp_coord_t *c, const char *group_id, const char *topic, int32_t partition);
/** Forget the offsets of a deleted topic in every group. */
void grp_offsets_delete_topic(grp_coord_t *c, const char *topic);

/* ---- Groups: lookup, listing, deletion ---- */

grp_t *grp_find(const grp_coord_t *c, const char *group_id);
/** Iterate every group (in no particular order); NULL ends. */
grp_t *grp_first(const grp_coord_t *c);
grp_t *grp_next(const grp_coord_t *c, const grp_t *g);

const char *grp_id(const grp_t *g);
grp_state_t grp_state(const grp_t *g);
int32_t grp_generation(const grp_t *g);
/** "" for groups that only commit offsets. */
const char *grp_protocol_type(const grp_t *g);
/** NULL until a protocol was selected. */
const char *grp_protocol_name(const grp_t *g);
/** NULL when there is no leader. */
const char *grp_leader(const grp_t *g);
int grp_n_members(const grp_t *g);

typedef struct grp_member_desc {
    const char *member_id;
    const char *instance_id;
    const char *client_id;
    const char *client_host;
    /* the selected protocol's metadata (NULL before one is selected) */
    const uint8_t *metadata;
    int32_t metadata_len;
    const uint8_t *assignment;
    int32_t assignment_len;
} grp_member_desc_t;

/** Member i (0 <= i < grp_n_members) of g; pointers borrowed until the next mutation. */
void grp_member_desc(const grp_t *g, int i, grp_member_desc_t *out);

/** Does any member's consumer subscription name topic? (OffsetDelete) */
bool grp_subscribed(const grp_t *g, const char *topic);

/** Start deleting a group (DeleteGroups): only Empty groups can go; it becomes DEAD.
 * @return NONE, GROUP_ID_NOT_FOUND or NON_EMPTY_GROUP. */
int16_t grp_delete_begin(grp_coord_t *c, const char *group_id);
/** Free a DEAD group once its offsets are gone from disk (no-op otherwise). */
void grp_delete_end(grp_coord_t *c, const char *group_id);

/* ---- KIP-848 consumer groups (grp_cons.c): ConsumerGroupHeartbeat/Describe ---- */

/** One assigned partition: a topic id and a partition. */
typedef struct grp_tp {
    uint8_t topic_id[16];
    int32_t partition;
} grp_tp_t;

typedef struct grp_chb_req {
    /* strings borrowed for the call; NUL-terminated */
    const char *group_id;
    const char *member_id;
    /* NULL when unchanged (or not static) */
    const char *instance_id;
    const char *rack_id;
    const char *client_id;
    const char *client_host;
    /* 0 joins, -1 leaves, -2 a static member leaves for now */
    int32_t member_epoch;
    /* -1 unchanged */
    int32_t rebalance_timeout_ms;
    /* n_topics < 0: unchanged */
    const char *const *topics;
    int n_topics;
    /* NULL unchanged, "" none */
    const char *regex;
    /* NULL unchanged */
    const char *assignor;
    /* n_owned < 0: unchanged; else the partitions the member owns now */
    const grp_tp_t *owned;
    int n_owned;
} grp_chb_req_t;

typedef struct grp_chb_result {
    int16_t error_code;
    /* NULL, or a static message */
    const char *error_message;
    /* borrowed until the next mutation */
    const char *member_id;
    int32_t member_epoch;
    int32_t heartbeat_interval_ms;
    /* the assignment is sent (replacing the client's) when has_assignment */
    bool has_assignment;
    const grp_tp_t *assignment;
    int n_assignment;
} grp_chb_result_t;

/** Handle a ConsumerGroupHeartbeat against the topics of snap (names, ids, partition counts).
 * Fills out (pointers borrowed until the next call into c). */
void grp_consumer_heartbeat(grp_coord_t *c,
                            const struct meta_snap *snap,
                            const grp_chb_req_t *q,
                            grp_chb_result_t *out);

/** Restore a consumer group's membership from a blob of on_cons_state (start-up): members
 * keep their epochs and partitions; sessions start now. @return 0, ST_E_NOMEM, or
 * ST_E_MALFORMED (the blob is not one this version reads: the group starts empty). */
int grp_cons_restore(grp_coord_t *c, const char *group_id, const uint8_t *state, size_t len);

/** Is g a consumer-protocol (KIP-848) group? */
bool grp_is_consumer(const grp_t *g);
/** Kafka's consumer group state name: Empty, Assigning, Reconciling, Stable (Dead). */
const char *grp_cons_state(const grp_t *g);
int32_t grp_cons_group_epoch(const grp_t *g);
int32_t grp_cons_assignment_epoch(const grp_t *g);
/** "uniform" or "range". */
const char *grp_cons_assignor(const grp_t *g);
int grp_cons_n_members(const grp_t *g);
/** OffsetFetch v9+ with a member id and epoch (epoch < 0: none) on g: NONE for classic groups,
 * else UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH as Kafka checks them. */
int16_t grp_cons_fetch_check(const grp_t *g, const char *member_id, int32_t member_epoch);

typedef struct grp_cmember_desc {
    const char *member_id;
    const char *instance_id; /* NULL for dynamic */
    const char *rack_id;     /* NULL when none */
    const char *client_id;
    const char *client_host;
    int32_t member_epoch;
    const char *const *topics;
    int n_topics;
    const char *regex; /* NULL when none */
    const grp_tp_t *assigned;
    int n_assigned;
    const grp_tp_t *target;
    int n_target;
} grp_cmember_desc_t;

/** Member i of a consumer group; pointers borrowed until the next mutation. */
void grp_cons_member_desc(const grp_t *g, int i, grp_cmember_desc_t *out);

#endif
