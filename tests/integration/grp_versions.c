/* grp_versions.c - every advertised version of every group API, end to end against a
 * running stratad: requests encoded and responses decoded with the generated codec (the
 * flexible versions Java 3.x clients use included). For each JoinGroup version 0..9 a
 * fresh group goes FindCoordinator -> JoinGroup (MEMBER_ID_REQUIRED from v4) -> SyncGroup ->
 * Heartbeat -> OffsetCommit -> OffsetFetch -> DescribeGroups -> ListGroups -> LeaveGroup ->
 * OffsetDelete -> DeleteGroups, each API at the highest of its versions <= that one.
 * Usage: grp_versions PORT TOPIC (TOPIC must exist with at least 2 partitions).
 * Exit status 0 when every answer is as expected; otherwise the first mismatch is printed. */
#include "kafka/kp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "grp_versions:%d: %s: ", __LINE__, #cond);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int g_fd;
static int32_t g_corr;
static uint8_t g_buf[1 << 20];

static void io_all(int fd, uint8_t *p, size_t n, bool wr)
{
    while (n > 0) {
        ssize_t k = wr ? write(fd, p, n) : read(fd, p, n);
        CHECK(k > 0, "socket %s failed", wr ? "write" : "read");
        p += k;
        n -= (size_t)k;
    }
}

static int16_t min16(int a, int16_t b)
{
    return (int16_t)(a < b ? a : b);
}

/* Send req (a request struct of api key) at version ver; the decoded response (arena). */
static void *call(int16_t key, int16_t ver, const void *req, kp_arena_t *a)
{
    const kp_api_t *api = kp_api_get(key);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    size_t at = kp_writer_reserve(&w, 4);
    kp_request_header_t h;
    kp_request_header_init(&h);
    h.request_api_key = key;
    h.request_api_version = ver;
    h.correlation_id = ++g_corr;
    h.client_id = KP_STR_LIT("grp-versions");
    CHECK(kp_request_header_encode(&w, kp_request_header_version(key, ver), &h) == 0, "hdr");
    CHECK(api->request->encode(&w, ver, req) == 0, "encode %s v%d field=%s", api->name, ver,
          w.err_field ? w.err_field : "?");
    kp_writer_patch_i32(&w, at, (int32_t)(w.len - 4));
    io_all(g_fd, w.buf, w.len, true);
    kp_writer_fini(&w);
    uint8_t sz[4];
    io_all(g_fd, sz, 4, false);
    uint32_t n = ((uint32_t)sz[0] << 24) | ((uint32_t)sz[1] << 16) | ((uint32_t)sz[2] << 8) | sz[3];
    CHECK(n <= sizeof(g_buf), "response of %u bytes", n);
    uint8_t *buf = kp_arena_alloc(a, n);
    io_all(g_fd, buf, n, false);
    kp_reader_t r;
    kp_reader_init(&r, buf, n);
    kp_response_header_t rh;
    CHECK(kp_response_header_decode(&r, kp_response_header_version(key, ver), &rh, a) == 0, "rh");
    CHECK(rh.correlation_id == g_corr, "correlation %d != %d", rh.correlation_id, g_corr);
    void *resp = kp_arena_alloc(a, api->response->struct_size);
    CHECK(api->response->decode(&r, ver, resp, a) == 0 && kp_reader_remaining(&r) == 0,
          "decode %s v%d response", api->name, ver);
    return resp;
}

static bool str_is(kp_str_t s, const char *c)
{
    return s.len == (int32_t)strlen(c) && !memcmp(s.ptr, c, (size_t)s.len);
}

static void sweep(int16_t jv, const char *topic, kp_arena_t *a)
{
    char gname[32];
    snprintf(gname, sizeof(gname), "vg-%d", jv);
    kp_str_t group = kp_str_from_cstr(gname);
    kp_str_t tname = kp_str_from_cstr(topic);

    /* FindCoordinator */
    int16_t fv = min16(jv, 6);
    kp_find_coordinator_request_t fq;
    kp_find_coordinator_request_init(&fq);
    if (fv < 4) {
        fq.key = group;
    } else {
        fq.coordinator_keys = &group;
        fq.n_coordinator_keys = 1;
    }
    kp_find_coordinator_response_t *fr = call(KP_API_FIND_COORDINATOR, fv, &fq, a);
    if (fv < 4)
        CHECK(fr->error_code == 0 && fr->port > 0, "FindCoordinator v%d", fv);
    else
        CHECK(fr->n_coordinators == 1 && fr->coordinators[0].error_code == 0 &&
                  str_is(fr->coordinators[0].key, gname),
              "FindCoordinator v%d", fv);

    /* JoinGroup */
    static const uint8_t meta[] = {0,   0,   0,   0,   0,    1,    0,    4,
                                   'v', 't', 'o', 'p', 0xff, 0xff, 0xff, 0xff};
    kp_join_group_request_protocol_t proto;
    kp_join_group_request_protocol_init(&proto);
    proto.name = KP_STR_LIT("range");
    proto.metadata = (kp_bytes_t){meta, sizeof(meta)};
    kp_join_group_request_t jq;
    kp_join_group_request_init(&jq);
    jq.group_id = group;
    jq.session_timeout_ms = 10000;
    if (jv >= 1)
        jq.rebalance_timeout_ms = 10000;
    jq.member_id = KP_STR_LIT("");
    jq.protocol_type = KP_STR_LIT("consumer");
    jq.protocols = &proto;
    jq.n_protocols = 1;
    kp_join_group_response_t *jr = call(KP_API_JOIN_GROUP, jv, &jq, a);
    if (jv >= 4) {
        CHECK(jr->error_code == KP_ERR_MEMBER_ID_REQUIRED && jr->member_id.len > 0,
              "JoinGroup v%d first answer %d", jv, jr->error_code);
        jq.member_id = jr->member_id;
        jr = call(KP_API_JOIN_GROUP, jv, &jq, a);
    }
    CHECK(jr->error_code == 0 && jr->generation_id == 1 && str_is(jr->protocol_name, "range") &&
              jr->n_members == 1 && kp_str_eq(jr->leader, jr->member_id),
          "JoinGroup v%d: error %d", jv, jr->error_code);
    if (jv >= 7)
        CHECK(str_is(jr->protocol_type, "consumer"), "JoinGroup v%d protocol type", jv);
    kp_str_t member = jr->member_id;
    int32_t gen = jr->generation_id;

    /* SyncGroup */
    int16_t sv = min16(jv, 5);
    kp_sync_group_request_assignment_t as;
    kp_sync_group_request_assignment_init(&as);
    as.member_id = member;
    as.assignment = (kp_bytes_t){(const uint8_t *)"ASSIGN", 6};
    kp_sync_group_request_t sq;
    kp_sync_group_request_init(&sq);
    sq.group_id = group;
    sq.generation_id = gen;
    sq.member_id = member;
    if (sv >= 5) {
        sq.protocol_type = KP_STR_LIT("consumer");
        sq.protocol_name = KP_STR_LIT("range");
    }
    sq.assignments = &as;
    sq.n_assignments = 1;
    kp_sync_group_response_t *sr = call(KP_API_SYNC_GROUP, sv, &sq, a);
    CHECK(sr->error_code == 0 && sr->assignment.len == 6 &&
              !memcmp(sr->assignment.ptr, "ASSIGN", 6),
          "SyncGroup v%d: error %d", sv, sr->error_code);

    /* Heartbeat */
    int16_t hv = min16(jv, 4);
    kp_heartbeat_request_t hq;
    kp_heartbeat_request_init(&hq);
    hq.group_id = group;
    hq.generation_id = gen;
    hq.member_id = member;
    kp_heartbeat_response_t *hr = call(KP_API_HEARTBEAT, hv, &hq, a);
    CHECK(hr->error_code == 0, "Heartbeat v%d: %d", hv, hr->error_code);
    hq.generation_id = gen + 1;
    hr = call(KP_API_HEARTBEAT, hv, &hq, a);
    CHECK(hr->error_code == KP_ERR_ILLEGAL_GENERATION, "Heartbeat v%d: %d", hv, hr->error_code);

    /* OffsetCommit (v0 carries no generation: only an unmanaged group may use it) */
    int16_t cv = jv;
    kp_offset_commit_request_partition_t cp[2];
    for (int i = 0; i < 2; i++) {
        kp_offset_commit_request_partition_init(&cp[i]);
        cp[i].partition_index = i;
        cp[i].committed_offset = 100 * jv + i + 1;
        if (cv >= 6)
            cp[i].committed_leader_epoch = 3;
        cp[i].committed_metadata = KP_STR_LIT("md");
    }
    kp_offset_commit_request_topic_t ct;
    kp_offset_commit_request_topic_init(&ct);
    ct.name = tname;
    ct.partitions = cp;
    ct.n_partitions = 2;
    kp_offset_commit_request_t cq;
    kp_offset_commit_request_init(&cq);
    char simple[32];
    snprintf(simple, sizeof(simple), "vg-simple-%d", jv);
    cq.group_id = cv == 0 ? kp_str_from_cstr(simple) : group;
    if (cv >= 1) {
        cq.generation_id_or_member_epoch = gen;
        cq.member_id = member;
    }
    cq.topics = &ct;
    cq.n_topics = 1;
    kp_offset_commit_response_t *cr = call(KP_API_OFFSET_COMMIT, cv, &cq, a);
    CHECK(cr->n_topics == 1 && cr->topics[0].n_partitions == 2 &&
              cr->topics[0].partitions[0].error_code == 0 &&
              cr->topics[0].partitions[1].error_code == 0,
          "OffsetCommit v%d: %d", cv, cr->topics[0].partitions[0].error_code);

    /* OffsetFetch */
    int16_t ov = jv;
    int32_t parts[2] = {0, 1};
    kp_offset_fetch_request_t oq;
    kp_offset_fetch_request_init(&oq);
    kp_offset_fetch_request_topic_t ot;
    kp_offset_fetch_request_topics_t ots;
    kp_offset_fetch_request_group_t og[2];
    if (ov < 8) {
        kp_offset_fetch_request_topic_init(&ot);
        ot.name = tname;
        ot.partition_indexes = parts;
        ot.n_partition_indexes = 2;
        oq.group_id = cq.group_id;
        oq.topics = &ot;
        oq.n_topics = 1;
    } else {
        kp_offset_fetch_request_topics_init(&ots);
        ots.name = tname;
        ots.partition_indexes = parts;
        ots.n_partition_indexes = 2;
        for (int i = 0; i < 2; i++) { /* the multi-group form: ours and an unknown one */
            kp_offset_fetch_request_group_init(&og[i]);
            og[i].group_id = i == 0 ? cq.group_id : KP_STR_LIT("vg-none");
            og[i].topics = &ots;
            og[i].n_topics = 1;
        }
        oq.groups = og;
        oq.n_groups = 2;
    }
    kp_offset_fetch_response_t *orr = call(KP_API_OFFSET_FETCH, ov, &oq, a);
    if (ov < 8) {
        CHECK(orr->n_topics == 1 && orr->topics[0].n_partitions == 2 &&
                  orr->topics[0].partitions[1].committed_offset == 100 * jv + 2 &&
                  str_is(orr->topics[0].partitions[1].metadata, "md"),
              "OffsetFetch v%d", ov);
        if (ov >= 5 && cv >= 6)
            CHECK(orr->topics[0].partitions[0].committed_leader_epoch == 3, "epoch v%d", ov);
    } else {
        CHECK(orr->n_groups == 2 && orr->groups[1].error_code == 0 &&
                  orr->groups[1].topics[0].partitions[1].committed_offset == -1 &&
                  str_is(orr->groups[1].group_id, "vg-none"),
              "OffsetFetch v%d unknown group", ov);
        CHECK(orr->groups[0].error_code == 0 && orr->groups[0].n_topics == 1 &&
                  orr->groups[0].topics[0].partitions[1].committed_offset == 100 * jv + 2 &&
                  orr->groups[0].topics[0].partitions[0].committed_leader_epoch == 3,
              "OffsetFetch v%d", ov);
    }

    /* DescribeGroups */
    int16_t dv = min16(jv, 5);
    kp_describe_groups_request_t dq;
    kp_describe_groups_request_init(&dq);
    dq.groups = &group;
    dq.n_groups = 1;
    kp_describe_groups_response_t *dr = call(KP_API_DESCRIBE_GROUPS, dv, &dq, a);
    CHECK(dr->n_groups == 1 && dr->groups[0].error_code == 0 &&
              str_is(dr->groups[0].group_state, "Stable") && dr->groups[0].n_members == 1 &&
              str_is(dr->groups[0].protocol_data, "range") &&
              dr->groups[0].members[0].member_assignment.len == 6,
          "DescribeGroups v%d", dv);

    /* ListGroups (state filter from v4) */
    int16_t lv = min16(jv, 5);
    kp_list_groups_request_t lq;
    kp_list_groups_request_init(&lq);
    kp_str_t stable = KP_STR_LIT("stable");
    if (lv >= 4) {
        lq.states_filter = &stable;
        lq.n_states_filter = 1;
    }
    kp_list_groups_response_t *lr = call(KP_API_LIST_GROUPS, lv, &lq, a);
    bool listed = false;
    for (int i = 0; i < lr->n_groups; i++) {
        listed |= str_is(lr->groups[i].group_id, gname);
        if (lv >= 4)
            CHECK(str_is(lr->groups[i].group_state, "Stable"), "ListGroups v%d filter", lv);
    }
    CHECK(lr->error_code == 0 && listed, "ListGroups v%d", lv);

    /* LeaveGroup */
    int16_t gv = min16(jv, 5);
    kp_leave_group_request_t gq;
    kp_leave_group_request_init(&gq);
    kp_leave_group_request_member_identity_t mi[2];
    kp_leave_group_request_member_identity_init(&mi[0]);
    kp_leave_group_request_member_identity_init(&mi[1]);
    gq.group_id = group;
    if (gv < 3) {
        gq.member_id = member;
    } else { /* batched: one member, one stranger */
        mi[0].member_id = member;
        mi[1].member_id = KP_STR_LIT("ghost");
        gq.members = mi;
        gq.n_members = 2;
    }
    kp_leave_group_response_t *gr = call(KP_API_LEAVE_GROUP, gv, &gq, a);
    CHECK(gr->error_code == 0 &&
              (gv < 3 || (gr->n_members == 2 && gr->members[0].error_code == 0 &&
                          gr->members[1].error_code == KP_ERR_UNKNOWN_MEMBER_ID)),
          "LeaveGroup v%d", gv);

    /* OffsetDelete v0 of partition 1 (the group is empty now) */
    kp_offset_delete_request_partition_t dp;
    kp_offset_delete_request_partition_init(&dp);
    dp.partition_index = 1;
    kp_offset_delete_request_topic_t dt;
    kp_offset_delete_request_topic_init(&dt);
    dt.name = tname;
    dt.partitions = &dp;
    dt.n_partitions = 1;
    kp_offset_delete_request_t odq;
    kp_offset_delete_request_init(&odq);
    odq.group_id = cq.group_id;
    odq.topics = &dt;
    odq.n_topics = 1;
    kp_offset_delete_response_t *odr = call(KP_API_OFFSET_DELETE, 0, &odq, a);
    CHECK(odr->error_code == 0 && odr->topics[0].partitions[0].error_code == 0, "OffsetDelete");
    orr = call(KP_API_OFFSET_FETCH, ov, &oq, a);
    int64_t left = ov < 8 ? orr->topics[0].partitions[1].committed_offset
                          : orr->groups[0].topics[0].partitions[1].committed_offset;
    CHECK(left == -1, "offset deleted (v%d): %lld", ov, (long long)left);

    /* DeleteGroups */
    int16_t xv = min16(jv, 2);
    kp_delete_groups_request_t xq;
    kp_delete_groups_request_init(&xq);
    kp_str_t names[2] = {group, cq.group_id};
    xq.groups_names = names;
    xq.n_groups_names = cv == 0 ? 2 : 1;
    kp_delete_groups_response_t *xr = call(KP_API_DELETE_GROUPS, xv, &xq, a);
    for (int i = 0; i < xq.n_groups_names; i++)
        CHECK(xr->results[i].error_code == 0, "DeleteGroups v%d: %d", xv,
              xr->results[i].error_code);
    printf("group APIs at JoinGroup v%d: ok\n", jv);
}

int main(int argc, char **argv)
{
    CHECK(argc == 3, "usage: grp_versions PORT TOPIC");
    g_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(g_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    for (int16_t jv = 0; jv <= kp_api_get(KP_API_JOIN_GROUP)->max_stable_version; jv++) {
        kp_arena_t a;
        kp_arena_init(&a, 64u << 20);
        sweep(jv, argv[2], &a);
        kp_arena_fini(&a);
    }
    close(g_fd);
    return 0;
}
