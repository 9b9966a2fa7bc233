/* grp_cons_test.c - KIP-848 in the group coordinator (kafka/grp_cons.c) with injected clocks
 * and a hand-built metadata snapshot: revocation before reassignment (no partition owned twice),
 * member epochs, the uniform and range assignors, topic growth, session and leave, static
 * members, offset commits at member epochs, Kafka's error codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/meta.h"
#include "kafka/grp.h"
#include "kafka/kp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t g_mono;

static int64_t mono_ms(void *arg)
{
    (void)arg;
    return g_mono;
}

static int64_t wall_ms(void *arg)
{
    (void)arg;
    return 1000000;
}

static grp_config_t config(void)
{
    return (grp_config_t){
        .min_session_timeout_ms = 6000,
        .max_session_timeout_ms = 300000,
        .offsets_retention_ms = 86400000,
        .now_ms = mono_ms,
        .wall_ms = wall_ms,
        .cons_session_timeout_ms = 10000,
        .cons_heartbeat_interval_ms = 1000,
    };
}

static grp_coord_t *coord(void)
{
    grp_config_t cfg = config();
    g_mono = 1000;
    grp_coord_t *c = grp_coord_new(&cfg);
    assert_non_null(c);
    return c;
}

/* One topic "t" (id 1...) with n partitions, one "u" (id 2...) with 2. */
static meta_topic_t g_topics[2];
static meta_snap_t g_snap;

static const meta_snap_t *snap(int n)
{
    memset(g_topics, 0, sizeof(g_topics));
    g_topics[0].name = "t";
    memset(g_topics[0].id, 1, 16);
    g_topics[0].n_partitions = n;
    g_topics[1].name = "u";
    memset(g_topics[1].id, 2, 16);
    g_topics[1].n_partitions = 2;
    g_snap.topics = g_topics;
    g_snap.n_topics = 2;
    return &g_snap;
}

typedef struct {
    int16_t err;
    int32_t epoch;
    bool has;
    grp_tp_t parts[16];
    int n;
} hb_t;

static const char *const k_t[] = {"t"};

static hb_t hb(grp_coord_t *c,
               const meta_snap_t *s,
               const char *member,
               int32_t epoch,
               const grp_tp_t *owned,
               int n_owned,
               const char *assignor)
{
    grp_chb_req_t q = {
        .group_id = "g",
        .member_id = member,
        .client_id = "cl",
        .client_host = "/127.0.0.1",
        .member_epoch = epoch,
        .rebalance_timeout_ms = epoch == 0 ? 60000 : -1,
        .topics = epoch == 0 ? k_t : NULL,
        .n_topics = epoch == 0 ? 1 : -1,
        .assignor = assignor,
        .owned = owned,
        .n_owned = n_owned,
    };
    grp_chb_result_t r;
    grp_consumer_heartbeat(c, s, &q, &r);
    hb_t h = {.err = r.error_code, .epoch = r.member_epoch, .has = r.has_assignment};
    for (int i = 0; r.has_assignment && i < r.n_assignment && i < 16; i++)
        h.parts[h.n++] = r.assignment[i];
    return h;
}

/* Every partition of "t" is owned by at most one of the members' last assignments. */
static void assert_disjoint(const hb_t *const *hs, int n)
{
    int owner[16];
    memset(owner, -1, sizeof(owner));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < hs[i]->n; j++) {
            int p = hs[i]->parts[j].partition;
            assert_int_equal(owner[p], -1);
            owner[p] = i;
        }
}

static void test_cons_revoke_before_reassign(void **state)
{
    (void)state;
    grp_coord_t *c = coord();
    const meta_snap_t *s = snap(6);
    hb_t a = hb(c, s, "a", 0, NULL, 0, NULL);
    assert_int_equal(a.err, KP_ERR_NONE);
    assert_int_equal(a.epoch, 1);
    assert_int_equal(a.n, 6);
    hb_t b = hb(c, s, "b", 0, NULL, 0, NULL);
    assert_int_equal(b.epoch, 2); /* at the new epoch, waiting for a's partitions */
    assert_int_equal(b.n, 0);
    const hb_t *both[] = {&a, &b};
    /* a learns it must give 3 up: it keeps 3, at its old epoch */
    hb_t a2 = hb(c, s, "a", 1, NULL, -1, NULL);
    assert_true(a2.has);
    assert_int_equal(a2.n, 3);
    assert_int_equal(a2.epoch, 1);
    b = hb(c, s, "b", 2, NULL, -1, NULL);
    assert_int_equal(b.n, 0); /* not yet revoked: still a's */
    /* a reports it owns only the 3 it kept: revoked, it moves to epoch 2 */
    a = hb(c, s, "a", 1, a2.parts, a2.n, NULL);
    assert_int_equal(a.epoch, 2);
    assert_int_equal(a.n, 3);
    b = hb(c, s, "b", 2, NULL, -1, NULL);
    assert_true(b.has);
    assert_int_equal(b.n, 3);
    assert_disjoint(both, 2);
    grp_t *g = grp_find(c, "g");
    assert_true(grp_is_consumer(g));
    assert_string_equal(grp_cons_state(g), "Stable");
    assert_string_equal(grp_cons_assignor(g), "uniform");
    /* a stale or future epoch is fenced; an unknown member is unknown */
    assert_int_equal(hb(c, s, "a", 7, NULL, -1, NULL).err, KP_ERR_FENCED_MEMBER_EPOCH);
    assert_int_equal(hb(c, s, "a", 1, NULL, -1, NULL).err, KP_ERR_FENCED_MEMBER_EPOCH);
    assert_int_equal(hb(c, s, "zz", 2, NULL, -1, NULL).err, KP_ERR_UNKNOWN_MEMBER_ID);
    /* commits: the exact epoch only */
    uint64_t inc;
    assert_int_equal(grp_commit_check(c, "g", 2, "a", NULL, &inc), KP_ERR_NONE);
    assert_int_equal(grp_commit_check(c, "g", 1, "a", NULL, &inc), KP_ERR_STALE_MEMBER_EPOCH);
    assert_int_equal(grp_commit_check(c, "g", 3, "a", NULL, &inc), KP_ERR_FENCED_MEMBER_EPOCH);
    assert_int_equal(grp_commit_check(c, "g", 2, "zz", NULL, &inc), KP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(grp_commit_check(c, "g", -1, "", NULL, &inc), KP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(grp_cons_fetch_check(g, "a", 1), KP_ERR_STALE_MEMBER_EPOCH);
    assert_int_equal(grp_cons_fetch_check(g, "a", 2), KP_ERR_NONE);
    /* a leaves: b takes everything at the next epoch */
    assert_int_equal(hb(c, s, "a", -1, NULL, -1, NULL).err, KP_ERR_NONE);
    b = hb(c, s, "b", 2, NULL, -1, NULL);
    assert_int_equal(b.epoch, 3);
    assert_int_equal(b.n, 6);
    grp_coord_free(c);
}

static void test_cons_range_and_growth(void **state)
{
    (void)state;
    grp_coord_t *c = coord();
    const meta_snap_t *s = snap(5);
    assert_int_equal(hb(c, s, "m1", 0, NULL, 0, "sticky").err, KP_ERR_UNSUPPORTED_ASSIGNOR);
    assert_null(grp_find(c, "g")); /* nothing left behind */
    hb_t x = hb(c, s, "m1", 0, NULL, 0, "range");
    hb_t y = hb(c, s, "m2", 0, NULL, 0, "range");
    x = hb(c, s, "m1", x.epoch, NULL, -1, NULL); /* revokes 3, 4 */
    assert_int_equal(x.n, 3);
    assert_int_equal(x.parts[0].partition, 0);
    assert_int_equal(x.parts[2].partition, 2);
    x = hb(c, s, "m1", x.epoch, x.parts, x.n, NULL);
    y = hb(c, s, "m2", y.epoch, NULL, -1, NULL);
    assert_int_equal(y.n, 2);
    assert_int_equal(y.parts[0].partition, 3);
    assert_string_equal(grp_cons_assignor(grp_find(c, "g")), "range");
    /* the topic grows to 8: a new epoch, 4 + 4 */
    s = snap(8);
    int32_t before = grp_cons_group_epoch(grp_find(c, "g"));
    y = hb(c, s, "m2", y.epoch, NULL, -1, NULL);
    assert_int_equal(grp_cons_group_epoch(grp_find(c, "g")), before + 1);
    assert_int_equal(y.n, 1); /* m2 revokes 3, keeps 4 */
    assert_int_equal(y.parts[0].partition, 4);
    x = hb(c, s, "m1", x.epoch, NULL, -1, NULL);
    assert_false(x.has); /* 3 is still m2's */
    y = hb(c, s, "m2", y.epoch, y.parts, y.n, NULL);
    assert_int_equal(y.n, 4);
    x = hb(c, s, "m1", x.epoch, NULL, -1, NULL);
    assert_int_equal(x.n, 4);
    assert_int_equal(x.parts[3].partition, 3);
    grp_coord_free(c);
}

static void join_done(void *arg, const grp_join_result_t *r)
{
    *(int16_t *)arg = r->error_code;
}

typedef struct {
    int16_t err;
    int32_t gen;
    char member[128];
    char leader[128];
    char proto[32];
    uint8_t asg[256];
    int32_t asg_len;
} classic_t;

static void cjoin_done(void *arg, const grp_join_result_t *r)
{
    classic_t *x = arg;
    x->err = r->error_code;
    x->gen = r->generation_id;
    snprintf(x->member, sizeof(x->member), "%s", r->member_id ? r->member_id : "");
    snprintf(x->leader, sizeof(x->leader), "%s", r->leader_id ? r->leader_id : "");
    snprintf(x->proto, sizeof(x->proto), "%s", r->protocol_name ? r->protocol_name : "");
}

static void csync_done(void *arg, const grp_sync_result_t *r)
{
    classic_t *x = arg;
    x->err = r->error_code;
    x->asg_len = r->assignment_len < 256 ? r->assignment_len : 0;
    if (x->asg_len > 0)
        memcpy(x->asg, r->assignment, (size_t)x->asg_len);
}

/* A ConsumerProtocolSubscription v1 of topic t owning partitions owned[0..n). */
static grp_protocol_t subscription(kp_writer_t *w, const int32_t *owned, int n)
{
    kp_consumer_protocol_subscription_t sub;
    kp_consumer_protocol_subscription_init(&sub);
    kp_str_t t = KP_STR_LIT("t");
    kp_consumer_protocol_subscription_topic_partition_t tp;
    kp_consumer_protocol_subscription_topic_partition_init(&tp);
    tp.topic = t;
    tp.partitions = (int32_t *)owned;
    tp.n_partitions = n;
    sub.topics = &t;
    sub.n_topics = 1;
    sub.owned_partitions = &tp;
    sub.n_owned_partitions = n ? 1 : 0;
    kp_writer_reset(w);
    kp_write_i16(w, 1);
    assert_int_equal(kp_consumer_protocol_subscription_encode(w, 1, &sub), 0);
    return (grp_protocol_t){"range", w->buf, (int32_t)w->len};
}

/* The partitions of topic t in a ConsumerProtocolAssignment. */
static int assigned_of(const classic_t *x)
{
    kp_arena_t a;
    kp_arena_init(&a, 1 << 20);
    kp_reader_t r;
    kp_reader_init(&r, x->asg, (size_t)x->asg_len);
    int16_t v = kp_read_i16(&r);
    kp_consumer_protocol_assignment_t as;
    assert_int_equal(kp_consumer_protocol_assignment_decode(&r, v, &as, &a), 0);
    int n = 0;
    for (int i = 0; i < as.n_assigned_partitions; i++)
        n += as.assigned_partitions[i].n_partitions;
    kp_arena_fini(&a);
    return n;
}

/* Kafka 4's migration: a classic group is upgraded when a consumer-protocol member joins; its
 * classic member keeps its partitions until it rejoins, is told to rejoin by Heartbeat, gets
 * its share through JoinGroup/SyncGroup at generation = member epoch; a new classic member
 * joins the consumer group; when the consumer-protocol member leaves, the group is classic
 * again and rebalances. */
static uint8_t g_state[4096];
static size_t g_state_len;
static int g_state_calls;

static void save_state(void *arg, const char *group_id, const uint8_t *state, size_t len)
{
    (void)arg;
    (void)group_id;
    assert_true(len <= sizeof(g_state));
    if (len)
        memcpy(g_state, state, len);
    g_state_len = len;
    g_state_calls++;
}

static void test_cons_classic_members(void **state)
{
    (void)state;
    grp_config_t cfg = config();
    cfg.on_cons_state = save_state;
    g_mono = 1000;
    grp_coord_t *c = grp_coord_new(&cfg);
    const meta_snap_t *s = snap(4);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    grp_protocol_t p = subscription(&w, NULL, 0);
    grp_join_req_t jq = {.group_id = "m",
                         .member_id = "",
                         .client_id = "c",
                         .client_host = "h",
                         .protocol_type = "consumer",
                         .session_timeout_ms = 10000,
                         .rebalance_timeout_ms = 10000,
                         .protocols = &p,
                         .n_protocols = 1,
                         .snap = s};
    classic_t a = {0};
    grp_join(c, &jq, cjoin_done, &a);
    assert_int_equal(a.err, KP_ERR_NONE);
    assert_string_equal(a.leader, a.member);
    int32_t gen = a.gen;
    /* the leader assigns all four partitions to itself */
    kp_consumer_protocol_assignment_t as;
    kp_consumer_protocol_assignment_init(&as);
    int32_t all[] = {0, 1, 2, 3};
    kp_consumer_protocol_assignment_topic_partition_t atp = {KP_STR_LIT("t"), all, 4};
    as.assigned_partitions = &atp;
    as.n_assigned_partitions = 1;
    kp_writer_t aw;
    kp_writer_init(&aw, 0);
    kp_write_i16(&aw, 0);
    assert_int_equal(kp_consumer_protocol_assignment_encode(&aw, 0, &as), 0);
    grp_assignment_t ga = {a.member, aw.buf, (int32_t)aw.len};
    grp_sync_req_t sq = {.group_id = "m",
                         .generation_id = gen,
                         .member_id = a.member,
                         .assignments = &ga,
                         .n_assignments = 1,
                         .snap = s};
    grp_sync(c, &sq, csync_done, &a);
    assert_int_equal(a.err, KP_ERR_NONE);
    assert_int_equal(grp_state(grp_find(c, "m")), GRP_STABLE);
    /* a consumer-protocol member joins: upgrade; the classic member's partitions are not free */
    grp_chb_req_t q = {.group_id = "m",
                       .member_id = "c1",
                       .client_id = "cl",
                       .client_host = "h",
                       .member_epoch = 0,
                       .rebalance_timeout_ms = 1000,
                       .topics = k_t,
                       .n_topics = 1,
                       .n_owned = 0};
    grp_chb_result_t r;
    grp_consumer_heartbeat(c, s, &q, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    assert_int_equal(r.member_epoch, gen + 1);
    assert_int_equal(r.n_assignment, 0);
    grp_t *g = grp_find(c, "m");
    assert_true(grp_is_consumer(g));
    assert_int_equal(grp_cons_n_members(g), 2);
    /* the classic member: its generation still commits; its heartbeat says rejoin */
    uint64_t inc;
    assert_int_equal(grp_commit_check(c, "m", gen, a.member, NULL, &inc), KP_ERR_NONE);
    assert_int_equal(grp_heartbeat(c, "m", gen, a.member, NULL), KP_ERR_REBALANCE_IN_PROGRESS);
    /* it rejoins owning nothing (eager): its share at the new epoch, no leader */
    jq.member_id = a.member;
    grp_join(c, &jq, cjoin_done, &a);
    assert_int_equal(a.err, KP_ERR_NONE);
    assert_int_equal(a.gen, gen + 1);
    assert_string_equal(a.leader, "");
    assert_string_equal(a.proto, "range");
    sq.generation_id = gen;
    grp_sync(c, &sq, csync_done, &a);
    assert_int_equal(a.err, KP_ERR_ILLEGAL_GENERATION);
    sq.generation_id = gen + 1;
    grp_sync(c, &sq, csync_done, &a);
    assert_int_equal(a.err, KP_ERR_NONE);
    assert_int_equal(assigned_of(&a), 2);
    assert_int_equal(grp_heartbeat(c, "m", gen + 1, a.member, NULL), KP_ERR_NONE);
    assert_int_equal(grp_commit_check(c, "m", gen, a.member, NULL, &inc),
                     KP_ERR_ILLEGAL_GENERATION);
    assert_int_equal(grp_commit_check(c, "m", gen + 1, a.member, NULL, &inc), KP_ERR_NONE);
    /* the consumer-protocol member gets the released half */
    q.member_epoch = r.member_epoch;
    grp_consumer_heartbeat(c, s, &q, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    assert_int_equal(r.n_assignment, 2);
    /* a new classic member: MEMBER_ID_REQUIRED, then it joins the consumer group */
    classic_t b = {0};
    jq.member_id = "";
    jq.require_known_member_id = true;
    grp_join(c, &jq, cjoin_done, &b);
    assert_int_equal(b.err, KP_ERR_MEMBER_ID_REQUIRED);
    jq.member_id = b.member;
    grp_join(c, &jq, cjoin_done, &b);
    assert_int_equal(b.err, KP_ERR_NONE);
    assert_int_equal(grp_cons_n_members(g), 3);
    assert_int_equal(grp_heartbeat(c, "m", gen + 1, a.member, NULL), KP_ERR_REBALANCE_IN_PROGRESS);
    /* the classic members are saved with the group: restored, they sync and heartbeat on */
    grp_coord_t *c2 = grp_coord_new(&cfg);
    assert_int_equal(grp_cons_restore(c2, "m", g_state, g_state_len), 0);
    assert_int_equal(grp_cons_n_members(grp_find(c2, "m")), 3);
    classic_t a2 = {0};
    grp_sync(c2, &sq, csync_done, &a2);
    assert_int_equal(a2.err, KP_ERR_NONE);
    assert_int_equal(assigned_of(&a2), 2);
    assert_int_equal(grp_heartbeat(c2, "m", gen + 1, a.member, NULL), KP_ERR_REBALANCE_IN_PROGRESS);
    assert_int_equal(grp_heartbeat(c2, "m", gen + 1, a.member, "inst"), KP_ERR_FENCED_INSTANCE_ID);
    grp_coord_free(c2);
    /* the consumer-protocol member leaves: the group is classic again and rebalances */
    q.member_epoch = -1;
    grp_consumer_heartbeat(c, s, &q, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    g = grp_find(c, "m");
    assert_false(grp_is_consumer(g));
    assert_int_equal(grp_n_members(g), 2);
    assert_int_equal(grp_state(g), GRP_PREPARING_REBALANCE);
    assert_int_equal(grp_leave(c, "m", b.member, NULL), KP_ERR_NONE);
    kp_writer_fini(&w);
    kp_writer_fini(&aw);
    grp_coord_free(c);
}

static void test_cons_session_static_and_classic(void **state)
{
    (void)state;
    grp_coord_t *c = coord();
    const meta_snap_t *s = snap(2);
    grp_chb_req_t q = {
        .group_id = "g",
        .member_id = "s1",
        .instance_id = "inst",
        .client_id = "cl",
        .client_host = "h",
        .member_epoch = 0,
        .rebalance_timeout_ms = 1000,
        .topics = k_t,
        .n_topics = 1,
        .n_owned = 0,
    };
    grp_chb_result_t r;
    grp_consumer_heartbeat(c, s, &q, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    int32_t epoch = r.member_epoch;
    q.member_id = "s2"; /* the instance is taken */
    grp_consumer_heartbeat(c, s, &q, &r);
    assert_int_equal(r.error_code, KP_ERR_UNRELEASED_INSTANCE_ID);
    grp_chb_req_t leave = {
        .group_id = "g", .member_id = "s1", .member_epoch = -2, .n_topics = -1, .n_owned = -1};
    grp_consumer_heartbeat(c, s, &leave, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    grp_consumer_heartbeat(c, s, &q, &r); /* s2 takes over s1's epoch and partitions */
    assert_int_equal(r.error_code, KP_ERR_NONE);
    assert_int_equal(r.member_epoch, epoch);
    assert_int_equal(r.n_assignment, 2);
    /* no heartbeat for the session timeout: gone, the group is empty */
    assert_true(grp_coord_next_deadline(c) <= g_mono + 10000);
    g_mono += 10001;
    grp_coord_tick(c);
    grp_t *g = grp_find(c, "g");
    assert_int_equal(grp_cons_n_members(g), 0);
    assert_int_equal(grp_state(g), GRP_EMPTY);
    assert_string_equal(grp_cons_state(g), "Empty");
    /* an empty consumer group accepts a classic member (it converts)... */
    grp_chb_req_t join2 = q;
    join2.group_id = "h";
    join2.instance_id = NULL;
    grp_consumer_heartbeat(c, s, &join2, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    /* ...a consumer group with members takes classic members, but only with a readable
     * subscription */
    grp_protocol_t p = {"range", (const uint8_t *)"x", 1};
    grp_join_req_t jq = {.group_id = "h",
                         .member_id = "",
                         .client_id = "c",
                         .client_host = "h",
                         .protocol_type = "consumer",
                         .session_timeout_ms = 10000,
                         .rebalance_timeout_ms = 10000,
                         .protocols = &p,
                         .n_protocols = 1,
                         .snap = s};
    /* a static takeover may not reuse another member's id */
    grp_chb_req_t st2 = q;
    st2.group_id = "h";
    st2.member_id = "d1";
    st2.instance_id = NULL;
    grp_consumer_heartbeat(c, s, &st2, &r); /* dynamic d1 */
    assert_int_equal(r.error_code, KP_ERR_NONE);
    st2.member_id = "s9";
    st2.instance_id = "i9";
    grp_consumer_heartbeat(c, s, &st2, &r); /* static s9 */
    leave.group_id = "h";
    leave.member_id = "s9";
    grp_consumer_heartbeat(c, s, &leave, &r);
    st2.member_id = "d1";
    grp_consumer_heartbeat(c, s, &st2, &r);
    assert_int_equal(r.error_code, KP_ERR_INVALID_REQUEST);
    assert_int_equal(grp_cons_n_members(grp_find(c, "h")), 3);
    /* regex subscriptions: full match; back-references refused */
    grp_chb_req_t rx = {.group_id = "r",
                        .member_id = "x1",
                        .client_id = "c",
                        .client_host = "h",
                        .member_epoch = 0,
                        .rebalance_timeout_ms = 1000,
                        .n_topics = -1,
                        .regex = "(a)\\1",
                        .n_owned = 0};
    grp_consumer_heartbeat(c, s, &rx, &r);
    assert_int_equal(r.error_code, KP_ERR_INVALID_REGULAR_EXPRESSION);
    rx.regex = "[tu]";
    grp_consumer_heartbeat(c, s, &rx, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    assert_int_equal(r.n_assignment, 4); /* t: 2, u: 2 */
    rx.regex = "t.+";
    rx.member_id = "x2";
    grp_consumer_heartbeat(c, s, &rx, &r);
    assert_int_equal(r.error_code, KP_ERR_NONE);
    assert_int_equal(r.n_assignment, 0); /* matches nothing */
    int16_t jerr = -1;
    grp_join(c, &jq, join_done, &jerr);
    assert_int_equal(jerr, KP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    grp_coord_free(c);
}

/* Membership survives a restart: the saved state restores members with their epochs and
 * partitions (their heartbeats go on, nothing is fenced); an unchanged heartbeat saves
 * nothing; an empty group's state is deleted; a foreign blob is refused. */
static void test_cons_restore(void **state)
{
    (void)state;
    grp_config_t cfg = config();
    cfg.on_cons_state = save_state;
    g_mono = 1000;
    g_state_calls = 0;
    grp_coord_t *c = grp_coord_new(&cfg);
    const meta_snap_t *s = snap(4);
    hb_t a = hb(c, s, "m1", 0, NULL, 0, NULL);
    hb_t b = hb(c, s, "m2", 0, NULL, 0, NULL);
    a = hb(c, s, "m1", a.epoch, a.parts, a.n, NULL); /* told to revoke two */
    assert_int_equal(a.n, 2);
    a = hb(c, s, "m1", a.epoch, a.parts, a.n, NULL); /* revoked */
    b = hb(c, s, "m2", b.epoch, NULL, -1, NULL);     /* takes them */
    assert_int_equal(b.n, 2);
    assert_int_equal(a.epoch, b.epoch);
    int calls = g_state_calls;
    assert_true(calls > 0);
    hb(c, s, "m1", a.epoch, NULL, -1, NULL); /* nothing changed: nothing saved */
    assert_int_equal(g_state_calls, calls);
    uint8_t saved[4096];
    size_t saved_len = g_state_len;
    memcpy(saved, g_state, saved_len);
    grp_coord_free(c);

    c = grp_coord_new(&cfg);
    assert_int_equal(grp_cons_restore(c, "g", saved, saved_len), 0);
    grp_t *g = grp_find(c, "g");
    assert_true(grp_is_consumer(g));
    assert_int_equal(grp_cons_n_members(g), 2);
    assert_string_equal(grp_cons_state(g), "Stable");
    hb_t a2 = hb(c, s, "m1", a.epoch, NULL, -1, NULL);
    assert_int_equal(a2.err, KP_ERR_NONE);
    assert_int_equal(a2.epoch, a.epoch);
    hb_t b2 = hb(c, s, "m2", b.epoch, b.parts, b.n, NULL);
    assert_int_equal(b2.err, KP_ERR_NONE);
    assert_int_equal(b2.n, 2);
    assert_memory_equal(b2.parts, b.parts, 2 * sizeof(grp_tp_t));
    uint64_t inc;
    assert_int_equal(grp_commit_check(c, "g", b.epoch, "m2", NULL, &inc), KP_ERR_NONE);
    /* the two leave: the state is deleted */
    hb(c, s, "m1", -1, NULL, -1, NULL);
    hb(c, s, "m2", -1, NULL, -1, NULL);
    assert_int_equal(g_state_len, 0);
    /* a truncated or foreign blob is refused, the group is left alone */
    assert_int_equal(grp_cons_restore(c, "x", saved, saved_len - 1), ST_E_MALFORMED);
    assert_int_equal(grp_cons_restore(c, "x", (const uint8_t *)"\0\7", 2), ST_E_MALFORMED);
    assert_null(grp_find(c, "x"));
    grp_coord_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cons_revoke_before_reassign),
        cmocka_unit_test(test_cons_range_and_growth),
        cmocka_unit_test(test_cons_session_static_and_classic),
        cmocka_unit_test(test_cons_classic_members),
        cmocka_unit_test(test_cons_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
