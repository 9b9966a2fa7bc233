/* grp_int.h - internals shared by grp.c (classic protocol, offsets, lookup) and grp_cons.c
 * (KIP-848 consumer protocol): the group and coordinator structs. Same threading as grp.h. */
#ifndef GRP_INT_H
#define GRP_INT_H

#include "kafka/grp.h"

#define GRP_BUCKETS           1024
#define GRP_RETENTION_TICK_MS 60000

typedef struct grp_cgroup grp_cgroup_t;

typedef struct grp_member grp_member_t;
struct grp_member {
    grp_member_t *next;  /* in join order */
    char *member_id;     /* owned */
    char *instance_id;   /* owned; NULL for dynamic members */
    char *client_id;     /* owned */
    char *client_host;   /* owned */
    char *protocol_type; /* owned */
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    grp_protocol_t *protocols; /* owned, with owned names and metadata */
    int n_protocols;
    uint8_t *assignment; /* owned */
    int32_t assignment_len;
    int64_t hb_deadline; /* monotonic ms */
    grp_join_cb join_cb; /* set while a JoinGroup waits */
    void *join_arg;
    grp_sync_cb sync_cb; /* set while a SyncGroup waits */
    void *sync_arg;
    bool is_new; /* joined during the current rebalance */
};

typedef struct grp_pending {
    struct grp_pending *next;
    char *member_id; /* owned: handed out with MEMBER_ID_REQUIRED */
    int64_t deadline;
} grp_pending_t;

struct grp {
    grp_t *next; /* in the hash bucket */
    char *id;    /* owned */
    grp_state_t state;
    uint64_t incarnation; /* distinguishes a re-created group from a deleted one */
    int32_t generation;
    char *protocol_type; /* owned, "" until a member joined */
    char *protocol_name; /* owned, NULL until selected */
    char *leader_id;     /* owned, NULL without leader */
    grp_member_t *members;
    int n_members;
    grp_pending_t *pending;
    int64_t deadline;   /* join (Preparing) or sync (Completing) deadline, monotonic */
    bool initial_delay; /* Preparing from Empty: wait for more members */
    int64_t rebalance_start;
    int64_t empty_since_ms; /* wall clock */
    grp_offset_t *offsets;  /* owned, sorted */
    int n_offsets, cap_offsets;
    grp_cgroup_t *cg; /* owned: KIP-848 state of a consumer-protocol group, else NULL */
};

struct grp_coord {
    grp_config_t cfg;
    grp_t *buckets[GRP_BUCKETS];
    uint64_t next_incarnation;
    int64_t next_retention_check;
};

/* grp.c */
grp_t *grp__group_new(grp_coord_t *c, const char *id);
grp_protocol_t *grp__protocols_dup(const grp_protocol_t *p, int n);
void grp__protocols_free(grp_protocol_t *p, int n);
void grp__member_free(grp_member_t *m);
/** Answer a member's waiting JoinGroup/SyncGroup with err. */
void grp__member_fail_waiters(grp_member_t *m, int16_t err);
/** A classic group (back from the consumer protocol) starts a rebalance. */
void grp__prepare_rebalance(grp_coord_t *c, grp_t *g);
char *grp__new_member_id(const char *prefix);
int64_t grp__now_ms(const grp_coord_t *c);
int64_t grp__wall_ms(const grp_coord_t *c);

/* grp_cons.c */
void grp__cons_free(grp_cgroup_t *cg);
void grp__cons_tick(grp_coord_t *c, grp_t *g, int64_t now);
int64_t grp__cons_deadline(const grp_t *g);
bool grp__cons_subscribed(const grp_t *g, const char *topic);
int16_t grp__cons_commit_check(grp_t *g, int32_t member_epoch, const char *member_id);
/* The classic protocol's APIs from classic members of a consumer-protocol group (g->cg with
 * members): Kafka 4's group.consumer.migration.policy=bidirectional. */
void grp__cons_join(grp_coord_t *c, grp_t *g, const grp_join_req_t *q, grp_join_cb cb, void *arg);
void grp__cons_sync(grp_coord_t *c, grp_t *g, const grp_sync_req_t *q, grp_sync_cb cb, void *arg);
int16_t grp__cons_heartbeat(grp_coord_t *c,
                            grp_t *g,
                            int32_t generation_id,
                            const char *member_id,
                            const char *instance_id);
int16_t grp__cons_leave(grp_coord_t *c, grp_t *g, const char *member_id, const char *instance_id);

#endif
