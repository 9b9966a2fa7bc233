/* grp_test.c - the group coordinator's state machine (kafka/grp.c) with injected clocks:
 * MEMBER_ID_REQUIRED, rebalances, leader election, protocol selection, session/join/sync
 * timeouts, generation fencing, static membership, bad JoinGroup input, offsets, retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kafka/grp.h"
#include "kafka/kp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Fixture: fake clocks and recorded callbacks ---- */

typedef struct {
    int64_t mono, wall;
    char expired[64];
    int n_expired;
} clk_t;

static int64_t mono_ms(void *arg)
{
    return ((clk_t *)arg)->mono;
}

static int64_t wall_ms(void *arg)
{
    return ((clk_t *)arg)->wall;
}

static void on_expire(void *arg, const char *group)
{
    clk_t *c = arg;
    snprintf(c->expired, sizeof(c->expired), "%s", group);
    c->n_expired++;
}

typedef struct {
    bool called;
    int16_t err;
    int32_t gen;
    char member[128];
    char leader[128];
    char protocol[32];
    int n_members;
    bool skip;
} join_rec_t;

static void join_done(void *arg, const grp_join_result_t *r)
{
    join_rec_t *j = arg;
    j->called = true;
    j->err = r->error_code;
    j->gen = r->generation_id;
    snprintf(j->member, sizeof(j->member), "%s", r->member_id ? r->member_id : "");
    snprintf(j->leader, sizeof(j->leader), "%s", r->leader_id ? r->leader_id : "");
    snprintf(j->protocol, sizeof(j->protocol), "%s", r->protocol_name ? r->protocol_name : "");
    j->n_members = r->n_members;
    j->skip = r->skip_assignment;
}

typedef struct {
    bool called;
    int16_t err;
    char assignment[32];
} sync_rec_t;

static void sync_done(void *arg, const grp_sync_result_t *r)
{
    sync_rec_t *s = arg;
    s->called = true;
    s->err = r->error_code;
    snprintf(s->assignment, sizeof(s->assignment), "%.*s", (int)r->assignment_len,
             r->assignment ? (const char *)r->assignment : "");
}

static grp_coord_t *coord(clk_t *clk, int32_t initial_delay_ms)
{
    memset(clk, 0, sizeof(*clk));
    clk->mono = 1000000;
    clk->wall = 1700000000000;
    grp_config_t cfg = {
        .min_session_timeout_ms = 1000,
        .max_session_timeout_ms = 60000,
        .initial_rebalance_delay_ms = initial_delay_ms,
        .offsets_retention_ms = 3600000,
        .max_metadata_bytes = 1024,
        .now_ms = mono_ms,
        .wall_ms = wall_ms,
        .clock_arg = clk,
        .on_expire = on_expire,
        .expire_arg = clk,
    };
    grp_coord_t *c = grp_coord_new(&cfg);
    assert_non_null(c);
    return c;
}

static const grp_protocol_t k_range[] = {{"range", (const uint8_t *)"m1", 2}};

static grp_join_req_t jreq(const char *member, const grp_protocol_t *p, int n)
{
    return (grp_join_req_t){.group_id = "g",
                            .member_id = member,
                            .client_id = "cli",
                            .client_host = "/127.0.0.1",
                            .protocol_type = "consumer",
                            .session_timeout_ms = 10000,
                            .rebalance_timeout_ms = 30000,
                            .protocols = p,
                            .n_protocols = n,
                            .require_known_member_id = true};
}

/* Join a new dynamic member through MEMBER_ID_REQUIRED; returns its id in out. */
static void join_new(grp_coord_t *c, join_rec_t *out)
{
    grp_join_req_t q = jreq("", k_range, 1);
    join_rec_t first = {0};
    grp_join(c, &q, join_done, &first);
    assert_true(first.called);
    assert_int_equal(first.err, KP_ERR_MEMBER_ID_REQUIRED);
    assert_true(strncmp(first.member, "cli-", 4) == 0);
    q.member_id = first.member;
    memset(out, 0, sizeof(*out));
    snprintf(out->member, sizeof(out->member), "%s", first.member);
    grp_join(c, &q, join_done, out);
}

static void sync_as(grp_coord_t *c,
                    const char *member,
                    int32_t gen,
                    sync_rec_t *out,
                    const grp_assignment_t *a,
                    int n)
{
    grp_sync_req_t q = {.group_id = "g",
                        .generation_id = gen,
                        .member_id = member,
                        .assignments = a,
                        .n_assignments = n};
    memset(out, 0, sizeof(*out));
    grp_sync(c, &q, sync_done, out);
}

/* ---- Tests ---- */

static void test_grp_join_member_id_required_then_leads(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    join_rec_t j;
    join_new(c, &j);
    assert_true(j.called);
    assert_int_equal(j.err, 0);
    assert_int_equal(j.gen, 1);
    assert_string_equal(j.leader, j.member);
    assert_string_equal(j.protocol, "range");
    assert_int_equal(j.n_members, 1);
    grp_t *g = grp_find(c, "g");
    assert_int_equal(grp_state(g), GRP_COMPLETING_REBALANCE);
    grp_assignment_t a = {j.member, (const uint8_t *)"A1", 2};
    sync_rec_t s;
    sync_as(c, j.member, 1, &s, &a, 1);
    assert_true(s.called);
    assert_int_equal(s.err, 0);
    assert_string_equal(s.assignment, "A1");
    assert_int_equal(grp_state(g), GRP_STABLE);
    assert_int_equal(grp_heartbeat(c, "g", 1, j.member, NULL), KP_ERR_NONE);
    grp_coord_free(c);
}

static void test_grp_second_member_triggers_rebalance(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    join_rec_t a, b;
    join_new(c, &a);
    sync_rec_t sa, sb;
    sync_as(c, a.member, 1, &sa, NULL, 0);
    join_new(c, &b); /* waits: a has not rejoined */
    assert_false(b.called);
    grp_t *g = grp_find(c, "g");
    assert_int_equal(grp_state(g), GRP_PREPARING_REBALANCE);
    assert_int_equal(grp_heartbeat(c, "g", 1, a.member, NULL), KP_ERR_REBALANCE_IN_PROGRESS);
    grp_join_req_t q = jreq(a.member, k_range, 1);
    join_rec_t a2 = {0};
    grp_join(c, &q, join_done, &a2);
    assert_true(a2.called && b.called);
    assert_int_equal(a2.gen, 2);
    assert_int_equal(b.gen, 2);
    assert_string_equal(a2.leader, a.member); /* the leader stays */
    assert_int_equal(a2.n_members, 2);
    assert_int_equal(b.n_members, 0);
    /* The follower's sync waits for the leader's. */
    sync_as(c, b.member, 2, &sb, NULL, 0);
    assert_false(sb.called);
    grp_assignment_t as[] = {{a.member, (const uint8_t *)"PA", 2},
                             {b.member, (const uint8_t *)"PB", 2}};
    sync_as(c, a.member, 2, &sa, as, 2);
    assert_true(sb.called);
    assert_string_equal(sb.assignment, "PB");
    assert_string_equal(sa.assignment, "PA");
    assert_int_equal(grp_state(g), GRP_STABLE);
    grp_coord_free(c);
}

static void test_grp_session_timeout_removes_member(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    join_rec_t a, b;
    join_new(c, &a);
    sync_rec_t s;
    sync_as(c, a.member, 1, &s, NULL, 0);
    join_new(c, &b);
    grp_join_req_t q = jreq(a.member, k_range, 1);
    join_rec_t a2 = {0};
    grp_join(c, &q, join_done, &a2);
    sync_as(c, a.member, 2, &s, NULL, 0);
    grp_t *g = grp_find(c, "g");
    assert_int_equal(grp_state(g), GRP_STABLE);
    /* a keeps heartbeating, b goes silent. */
    for (int i = 0; i < 12 && grp_n_members(g) == 2; i++) {
        clk.mono += 1000;
        assert_int_equal(grp_heartbeat(c, "g", 2, a.member, NULL), KP_ERR_NONE);
        grp_coord_tick(c);
    }
    /* b's session (10 s) expired: a rebalance started without it. */
    assert_int_equal(grp_n_members(g), 1);
    assert_int_equal(grp_state(g), GRP_PREPARING_REBALANCE);
    assert_int_equal(grp_heartbeat(c, "g", 2, b.member, NULL), KP_ERR_UNKNOWN_MEMBER_ID);
    join_rec_t a3 = {0};
    grp_join(c, &q, join_done, &a3);
    assert_int_equal(a3.gen, 3);
    grp_coord_free(c);
}

static void test_grp_join_timeout_drops_members_that_do_not_rejoin(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    join_rec_t a, b;
    join_new(c, &a);
    sync_rec_t s;
    sync_as(c, a.member, 1, &s, NULL, 0);
    join_new(c, &b); /* a must rejoin within its rebalance timeout (30 s) */
    assert_false(b.called);
    assert_int_equal(grp_coord_next_deadline(c), clk.mono + 10000); /* a's session first */
    clk.mono += 30000;
    grp_coord_tick(c);
    assert_true(b.called);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.gen, 2);
    assert_string_equal(b.leader, b.member); /* a is gone: b leads */
    assert_int_equal(grp_n_members(grp_find(c, "g")), 1);
    assert_int_equal(grp_heartbeat(c, "g", 2, a.member, NULL), KP_ERR_UNKNOWN_MEMBER_ID);
    grp_coord_free(c);
}

static void test_grp_sync_timeout_rebalances(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    join_rec_t a;
    join_new(c, &a);
    grp_t *g = grp_find(c, "g");
    assert_int_equal(grp_state(g), GRP_COMPLETING_REBALANCE);
    clk.mono += 30000; /* the leader never syncs */
    grp_coord_tick(c);
    assert_int_equal(grp_n_members(g), 0);
    assert_int_equal(grp_state(g), GRP_EMPTY);
    grp_coord_free(c);
}

static void test_grp_generation_fencing(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    uint64_t inc;
    /* A simple consumer commits to an unknown group: it is created, Empty. */
    assert_int_equal(grp_commit_check(c, "simple", -1, "", NULL, &inc), KP_ERR_NONE);
    assert_int_equal(grp_state(grp_find(c, "simple")), GRP_EMPTY);
    assert_int_equal(grp_commit_check(c, "nogroup", 3, "m", NULL, &inc), KP_ERR_ILLEGAL_GENERATION);
    join_rec_t a;
    join_new(c, &a);
    /* Completing: commits wait for the assignment. */
    assert_int_equal(grp_commit_check(c, "g", 1, a.member, NULL, &inc),
                     KP_ERR_REBALANCE_IN_PROGRESS);
    sync_rec_t s;
    sync_as(c, a.member, 1, &s, NULL, 0);
    assert_int_equal(grp_commit_check(c, "g", 1, a.member, NULL, &inc), KP_ERR_NONE);
    assert_int_equal(grp_commit_check(c, "g", 0, a.member, NULL, &inc), KP_ERR_ILLEGAL_GENERATION);
    assert_int_equal(grp_commit_check(c, "g", -1, "", NULL, &inc), KP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(grp_heartbeat(c, "g", 5, a.member, NULL), KP_ERR_ILLEGAL_GENERATION);
    assert_int_equal(grp_heartbeat(c, "g", 1, "stranger", NULL), KP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(grp_heartbeat(c, "nope", 1, a.member, NULL), KP_ERR_UNKNOWN_MEMBER_ID);
    sync_as(c, a.member, 0, &s, NULL, 0);
    assert_int_equal(s.err, KP_ERR_ILLEGAL_GENERATION);
    sync_as(c, "stranger", 1, &s, NULL, 0);
    assert_int_equal(s.err, KP_ERR_UNKNOWN_MEMBER_ID);
    grp_join_req_t q = jreq("stranger", k_range, 1);
    join_rec_t j = {0};
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(grp_state(grp_find(c, "g")), GRP_STABLE);
    grp_coord_free(c);
}

static void test_grp_static_member_rejoins_without_rebalance(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    grp_join_req_t q = jreq("", k_range, 1);
    q.instance_id = "inst-1";
    q.supports_skip_assignment = true;
    join_rec_t a = {0};
    grp_join(c, &q, join_done, &a); /* static members skip MEMBER_ID_REQUIRED */
    assert_int_equal(a.err, 0);
    assert_true(strncmp(a.member, "inst-1-", 7) == 0);
    sync_rec_t s;
    grp_assignment_t as = {a.member, (const uint8_t *)"P0", 2};
    sync_as(c, a.member, 1, &s, &as, 1);
    grp_t *g = grp_find(c, "g");
    assert_int_equal(grp_state(g), GRP_STABLE);
    /* Restarted with the same instance id and subscription: new id, same generation. */
    join_rec_t a2 = {0};
    grp_join(c, &q, join_done, &a2);
    assert_true(a2.called);
    assert_int_equal(a2.err, 0);
    assert_int_equal(a2.gen, 1);
    assert_string_not_equal(a2.member, a.member);
    assert_string_equal(a2.leader, a2.member);
    assert_true(a2.skip);
    assert_int_equal(grp_state(g), GRP_STABLE);
    /* The old incarnation is fenced. */
    assert_int_equal(grp_heartbeat(c, "g", 1, a.member, "inst-1"), KP_ERR_FENCED_INSTANCE_ID);
    uint64_t inc;
    assert_int_equal(grp_commit_check(c, "g", 1, a.member, "inst-1", &inc),
                     KP_ERR_FENCED_INSTANCE_ID);
    sync_as(c, a2.member, 1, &s, NULL, 0);
    assert_string_equal(s.assignment, "P0"); /* the assignment is kept */
    assert_int_equal(grp_leave(c, "g", a.member, "inst-1"), KP_ERR_FENCED_INSTANCE_ID);
    assert_int_equal(grp_leave(c, "g", "", "inst-1"), KP_ERR_NONE);
    assert_int_equal(grp_state(g), GRP_EMPTY);
    grp_coord_free(c);
}

static void test_grp_bad_join_leaves_group_intact(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    join_rec_t a;
    join_new(c, &a);
    sync_rec_t s;
    sync_as(c, a.member, 1, &s, NULL, 0);
    grp_t *g = grp_find(c, "g");
    join_rec_t j = {0};
    grp_join_req_t q = jreq(a.member, k_range, 0); /* no protocols */
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    static uint8_t big[2048];
    grp_protocol_t huge = {"range", big, sizeof(big)};
    q = jreq(a.member, &huge, 1);
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_INVALID_REQUEST);
    q = jreq("", k_range, 1);
    q.session_timeout_ms = 10;
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_INVALID_SESSION_TIMEOUT);
    q = jreq("", k_range, 1);
    q.protocol_type = "connect";
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    static const grp_protocol_t other[] = {{"roundrobin", (const uint8_t *)"", 0}};
    q = jreq("", other, 1);
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_INCONSISTENT_GROUP_PROTOCOL);
    q = jreq("", k_range, 1);
    q.group_id = "";
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_INVALID_GROUP_ID);
    assert_int_equal(grp_state(g), GRP_STABLE);
    assert_int_equal(grp_generation(g), 1);
    assert_int_equal(grp_n_members(g), 1);
    assert_int_equal(grp_heartbeat(c, "g", 1, a.member, NULL), KP_ERR_NONE);
    grp_coord_free(c);
}

static void test_grp_protocol_selection_by_vote(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 1000); /* the initial delay gathers all three */
    static const grp_protocol_t p1[] = {{"range", NULL, 0}, {"sticky", NULL, 0}};
    static const grp_protocol_t p2[] = {{"sticky", NULL, 0}, {"range", NULL, 0}};
    static const grp_protocol_t p3[] = {
        {"sticky", NULL, 0}, {"roundrobin", NULL, 0}, {"range", NULL, 0}};
    const grp_protocol_t *ps[] = {p1, p2, p3};
    int ns[] = {2, 2, 3};
    join_rec_t j[3];
    for (int i = 0; i < 3; i++) {
        grp_join_req_t q = jreq("", ps[i], ns[i]);
        q.require_known_member_id = false;
        memset(&j[i], 0, sizeof(j[i]));
        grp_join(c, &q, join_done, &j[i]);
        assert_false(j[i].called);
    }
    clk.mono += 999;
    grp_coord_tick(c);
    assert_false(j[0].called);
    clk.mono += 1;
    grp_coord_tick(c);
    for (int i = 0; i < 3; i++) {
        assert_true(j[i].called);
        assert_string_equal(j[i].protocol, "sticky");
        assert_string_equal(j[i].leader, j[0].member);
    }
    grp_coord_free(c); /* frees with members still present */
}

static void test_grp_offsets_and_retention(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    uint64_t inc;
    assert_int_equal(grp_commit_check(c, "simple", -1, "", NULL, &inc), KP_ERR_NONE);
    assert_int_equal(grp_offset_put(c, "simple", inc, "t", 2, 20, 5, "md", clk.wall), 0);
    assert_int_equal(grp_offset_put(c, "simple", inc, "t", 0, 10, -1, NULL, clk.wall), 0);
    assert_int_equal(grp_offset_put(c, "simple", inc, "a", 0, 7, -1, NULL, clk.wall), 0);
    assert_int_equal(grp_offset_put(c, "simple", inc, "t", 2, 21, 6, NULL, clk.wall), 0);
    int n;
    const grp_offset_t *o = grp_offsets(grp_find(c, "simple"), &n);
    assert_int_equal(n, 3);
    assert_string_equal(o[0].topic, "a");
    assert_int_equal(o[1].partition, 0);
    assert_int_equal(o[2].offset, 21);
    assert_int_equal(o[2].leader_epoch, 6);
    assert_null(o[2].metadata);
    /* A stale incarnation (the group was deleted since the check) is ignored. */
    assert_int_equal(grp_offset_put(c, "simple", inc + 100, "t", 9, 1, -1, NULL, clk.wall), 0);
    assert_null(grp_offset_get(c, "simple", "t", 9));
    grp_offsets_delete(c, "simple", "t", 0);
    assert_null(grp_offset_get(c, "simple", "t", 0));
    grp_offsets_delete_topic(c, "a");
    assert_null(grp_offset_get(c, "simple", "a", 0));
    assert_non_null(grp_offset_get(c, "simple", "t", 2));
    /* Retention: an hour after the last commit the group expires. */
    clk.wall += 3599000;
    clk.mono += 60000;
    grp_coord_tick(c);
    assert_int_equal(clk.n_expired, 0);
    clk.wall += 1000;
    clk.mono += 60000;
    grp_coord_tick(c);
    assert_int_equal(clk.n_expired, 1);
    assert_string_equal(clk.expired, "simple");
    assert_int_equal(grp_state(grp_find(c, "simple")), GRP_DEAD);
    assert_null(grp_offset_get(c, "simple", "t", 2));
    assert_int_equal(grp_commit_check(c, "simple", -1, "", NULL, &inc),
                     KP_ERR_COORDINATOR_NOT_AVAILABLE);
    grp_delete_end(c, "simple");
    assert_null(grp_find(c, "simple"));
    grp_coord_free(c);
}

static void test_grp_delete_only_empty_groups(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    assert_int_equal(grp_delete_begin(c, "g"), KP_ERR_GROUP_ID_NOT_FOUND);
    join_rec_t a;
    join_new(c, &a);
    assert_int_equal(grp_delete_begin(c, "g"), KP_ERR_NON_EMPTY_GROUP);
    assert_int_equal(grp_leave(c, "g", a.member, NULL), KP_ERR_NONE);
    assert_int_equal(grp_leave(c, "g", a.member, NULL), KP_ERR_UNKNOWN_MEMBER_ID);
    assert_int_equal(grp_state(grp_find(c, "g")), GRP_EMPTY);
    /* An empty group takes the protocol type of its next first member. */
    grp_join_req_t other = jreq("", k_range, 1);
    other.protocol_type = "connect";
    other.require_known_member_id = false;
    join_rec_t o = {0};
    grp_join(c, &other, join_done, &o);
    assert_int_equal(o.err, 0);
    assert_string_equal(grp_protocol_type(grp_find(c, "g")), "connect");
    assert_int_equal(grp_leave(c, "g", o.member, NULL), KP_ERR_NONE);
    assert_int_equal(grp_delete_begin(c, "g"), KP_ERR_NONE);
    join_rec_t j = {0};
    grp_join_req_t q = jreq("", k_range, 1);
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_COORDINATOR_NOT_AVAILABLE);
    grp_delete_end(c, "g");
    assert_null(grp_find(c, "g"));
    grp_coord_free(c);
}

static void test_grp_pending_member_expires(void **state)
{
    (void)state;
    clk_t clk;
    grp_coord_t *c = coord(&clk, 0);
    grp_join_req_t q = jreq("", k_range, 1);
    join_rec_t first = {0};
    grp_join(c, &q, join_done, &first);
    assert_int_equal(first.err, KP_ERR_MEMBER_ID_REQUIRED);
    clk.mono += 10000; /* never came back within its session */
    grp_coord_tick(c);
    q.member_id = first.member;
    join_rec_t j = {0};
    grp_join(c, &q, join_done, &j);
    assert_int_equal(j.err, KP_ERR_UNKNOWN_MEMBER_ID);
    grp_coord_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grp_join_member_id_required_then_leads),
        cmocka_unit_test(test_grp_second_member_triggers_rebalance),
        cmocka_unit_test(test_grp_session_timeout_removes_member),
        cmocka_unit_test(test_grp_join_timeout_drops_members_that_do_not_rejoin),
        cmocka_unit_test(test_grp_sync_timeout_rebalances),
        cmocka_unit_test(test_grp_generation_fencing),
        cmocka_unit_test(test_grp_static_member_rejoins_without_rebalance),
        cmocka_unit_test(test_grp_bad_join_leaves_group_intact),
        cmocka_unit_test(test_grp_protocol_selection_by_vote),
        cmocka_unit_test(test_grp_offsets_and_retention),
        cmocka_unit_test(test_grp_delete_only_empty_groups),
        cmocka_unit_test(test_grp_pending_member_expires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
