/* kh_cgroup.c - KIP-848 consumer group APIs: ConsumerGroupHeartbeat (68) and
 * ConsumerGroupDescribe (69), served by the same per-shard group coordinator as the classic
 * protocol (kafka/grp_cons.c beside kafka/grp.c).
 * Data path: the connection's shard decodes and copies the request into C strings -> one op
 * per group is posted to the group's owning shard (kh_group__send) -> the op takes the current
 * metadata snapshot (topic names, ids, partition counts) and runs grp_consumer_heartbeat() or
 * reads the group there, copying the answer into its own arena -> posted back and answered.
 * Membership changes are written behind by kh_group.c (on_cons_state -> core/goffs); offsets
 * go through kh_offsets.c. */
#include "core/meta.h"
#include "kafka/kh_group_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- ConsumerGroupHeartbeat ---- */

static void chb_run(gop_t *op, gshard_t *gs)
{
    kp_consumer_group_heartbeat_response_t *r = op->resp;
    if (!gs) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    grp_chb_result_t res;
    meta_snap_t *snap = meta_snap_get(gs->ks->ctx->meta);
    grp_consumer_heartbeat(gs->coord, snap, op->extra, &res);
    meta_snap_put(snap);
    kp_arena_t *a = &op->arena;
    r->error_code = res.error_code;
    if (res.error_message)
        r->error_message = kp_str_from_cstr(res.error_message); /* static text */
    r->member_epoch = res.member_epoch;
    r->heartbeat_interval_ms = res.heartbeat_interval_ms;
    if (!res.error_code)
        r->member_id = kh_group__arena_str(a, res.member_id);
    if (!res.error_code && res.has_assignment) {
        kp_consumer_group_heartbeat_response_assignment_t *as = kp_arena_alloc(a, sizeof(*as));
        int nt = 0;
        for (int i = 0; i < res.n_assignment; i++)
            nt += i == 0 || memcmp(res.assignment[i].topic_id, res.assignment[i - 1].topic_id, 16);
        kp_consumer_group_heartbeat_response_topic_partitions_t *tps =
            kp_arena_calloc(a, (size_t)nt + 1, sizeof(*tps));
        int32_t *parts = kp_arena_calloc(a, (size_t)res.n_assignment + 1, sizeof(int32_t));
        if (!as || !tps || !parts) {
            r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            kh_group__done(op, gs);
            return;
        }
        kp_consumer_group_heartbeat_response_assignment_init(as);
        int k = -1;
        for (int i = 0; i < res.n_assignment; i++) {
            if (i == 0 || memcmp(res.assignment[i].topic_id, res.assignment[i - 1].topic_id, 16)) {
                k++;
                kp_consumer_group_heartbeat_response_topic_partitions_init(&tps[k]);
                memcpy(tps[k].topic_id.b, res.assignment[i].topic_id, 16);
                tps[k].partitions = &parts[i];
                tps[k].n_partitions = 0;
            }
            parts[i] = res.assignment[i].partition;
            tps[k].n_partitions++;
        }
        as->topic_partitions = tps;
        as->n_topic_partitions = nt;
        r->assignment = as;
    }
    kh_group__done(op, gs);
}

void kh_consumer_group_heartbeat(kh_req_t *req)
{
    kp_consumer_group_heartbeat_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_consumer_group_heartbeat_response_t));
    grp_chb_req_t *cq = kp_arena_calloc(&req->arena, 1, sizeof(*cq));
    if (!st || !cq)
        goto oom;
    kp_consumer_group_heartbeat_response_t *r = st->resp;
    kp_consumer_group_heartbeat_response_init(r);
    r->member_id = q->member_id;
    r->member_epoch = q->member_epoch;
    *cq = (grp_chb_req_t){
        .group_id = kh_cstr(req, q->group_id),
        .member_id = kh_cstr(req, q->member_id),
        .instance_id = kh_group__opt_cstr(req, q->instance_id),
        .rack_id = kh_group__opt_cstr(req, q->rack_id),
        .client_id = kh_cstr(req, req->hdr.client_id),
        .client_host = kh_group__client_host(req),
        .member_epoch = q->member_epoch,
        .rebalance_timeout_ms = q->rebalance_timeout_ms,
        .n_topics = q->n_subscribed_topic_names,
        .regex = v >= 1 ? kh_group__opt_cstr(req, q->subscribed_topic_regex) : NULL,
        .assignor = kh_group__opt_cstr(req, q->server_assignor),
        .n_owned = -1,
    };
    if (!cq->group_id || !cq->member_id || !cq->client_id)
        goto oom;
    if (q->n_subscribed_topic_names >= 0) {
        const char **t =
            kp_arena_calloc(&req->arena, (size_t)q->n_subscribed_topic_names + 1, sizeof(*t));
        if (!t)
            goto oom;
        for (int i = 0; i < q->n_subscribed_topic_names; i++)
            if (!(t[i] = kh_cstr(req, q->subscribed_topic_names[i])))
                goto oom;
        cq->topics = t;
    }
    if (q->n_topic_partitions >= 0) {
        int n = 0;
        for (int i = 0; i < q->n_topic_partitions; i++)
            n += q->topic_partitions[i].n_partitions > 0 ? q->topic_partitions[i].n_partitions : 0;
        grp_tp_t *tp = kp_arena_calloc(&req->arena, (size_t)n + 1, sizeof(*tp));
        if (!tp)
            goto oom;
        int k = 0;
        for (int i = 0; i < q->n_topic_partitions; i++) {
            const kp_consumer_group_heartbeat_request_topic_partitions_t *t =
                &q->topic_partitions[i];
            for (int j = 0; j < t->n_partitions; j++) {
                memcpy(tp[k].topic_id, t->topic_id.b, 16);
                tp[k++].partition = t->partitions[j];
            }
        }
        cq->owned = tp;
        cq->n_owned = k;
    }
    if (!cq->group_id[0]) {
        r->error_code = KP_ERR_INVALID_GROUP_ID;
    } else {
        if (!kh_group__send(req, cq->group_id, 0, chb_run, r, cq))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- ConsumerGroupDescribe ---- */

/* A grp_tp_t list as the response's topic-grouped assignment (op arena); false when out of
 * memory. Partitions of topics deleted since are left out. */
static bool fill_assignment(kp_arena_t *a,
                            const meta_snap_t *snap,
                            const grp_tp_t *tps,
                            int n,
                            kp_consumer_group_describe_response_assignment_t *out)
{
    kp_consumer_group_describe_response_assignment_init(out);
    kp_consumer_group_describe_response_topic_partitions_t *t =
        kp_arena_calloc(a, (size_t)n + 1, sizeof(*t));
    int32_t *parts = kp_arena_calloc(a, (size_t)n + 1, sizeof(int32_t));
    if (!t || !parts)
        return false;
    int k = -1;
    for (int i = 0; i < n; i++) {
        if (i == 0 || memcmp(tps[i].topic_id, tps[i - 1].topic_id, 16)) {
            const meta_topic_t *mt = meta_snap_find_id(snap, tps[i].topic_id);
            k++;
            kp_consumer_group_describe_response_topic_partitions_init(&t[k]);
            memcpy(t[k].topic_id.b, tps[i].topic_id, 16);
            t[k].topic_name = kh_group__arena_str(a, mt ? mt->name : "");
            t[k].partitions = &parts[i];
            t[k].n_partitions = 0;
        }
        parts[i] = tps[i].partition;
        t[k].n_partitions++;
    }
    out->topic_partitions = t;
    out->n_topic_partitions = k + 1;
    return true;
}

static void cdesc_run(gop_t *op, gshard_t *gs)
{
    kp_consumer_group_describe_response_t *r = op->resp;
    kp_consumer_group_describe_response_described_group_t *d = &r->groups[op->index];
    kp_arena_t *a = &op->arena;
    if (!gs) {
        d->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    grp_t *g = grp_find(gs->coord, op->group);
    if (!g || grp_state(g) == GRP_DEAD || !grp_is_consumer(g)) {
        d->error_code = KP_ERR_GROUP_ID_NOT_FOUND;
        d->error_message = g && grp_state(g) != GRP_DEAD
                               ? KP_STR_LIT("the group is not a consumer group")
                               : KP_STR_LIT("the group does not exist");
        kh_group__done(op, gs);
        return;
    }
    d->group_state = kp_str_from_cstr(grp_cons_state(g)); /* static text */
    d->group_epoch = grp_cons_group_epoch(g);
    d->assignment_epoch = grp_cons_assignment_epoch(g);
    d->assignor_name = kp_str_from_cstr(grp_cons_assignor(g));
    int n = grp_cons_n_members(g);
    d->members = kp_arena_calloc(a, (size_t)n + 1, sizeof(*d->members));
    meta_snap_t *snap = meta_snap_get(gs->ks->ctx->meta);
    bool ok = d->members != NULL;
    for (int i = 0; ok && i < n; i++) {
        grp_cmember_desc_t md;
        grp_cons_member_desc(g, i, &md);
        kp_consumer_group_describe_response_member_t *m = &d->members[i];
        kp_consumer_group_describe_response_member_init(m);
        m->member_id = kh_group__arena_str(a, md.member_id);
        if (md.instance_id)
            m->instance_id = kh_group__arena_str(a, md.instance_id);
        if (md.rack_id)
            m->rack_id = kh_group__arena_str(a, md.rack_id);
        m->member_epoch = md.member_epoch;
        m->client_id = kh_group__arena_str(a, md.client_id);
        m->client_host = kh_group__arena_str(a, md.client_host);
        m->subscribed_topic_names = kp_arena_calloc(a, (size_t)md.n_topics + 1, sizeof(kp_str_t));
        ok = m->subscribed_topic_names != NULL;
        for (int j = 0; ok && j < md.n_topics; j++)
            m->subscribed_topic_names[j] = kh_group__arena_str(a, md.topics[j]);
        m->n_subscribed_topic_names = md.n_topics;
        if (md.regex)
            m->subscribed_topic_regex = kh_group__arena_str(a, md.regex);
        ok = ok && fill_assignment(a, snap, md.assigned, md.n_assigned, &m->assignment) &&
             fill_assignment(a, snap, md.target, md.n_target, &m->target_assignment);
    }
    meta_snap_put(snap);
    if (!ok) {
        d->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        n = 0;
    }
    d->n_members = n;
    kh_group__done(op, gs);
}

void kh_consumer_group_describe(kh_req_t *req)
{
    kp_consumer_group_describe_request_t *q = req->msg;
    gstate_t *st = kh_group__start(req, sizeof(kp_consumer_group_describe_response_t));
    if (!st)
        goto oom;
    kp_consumer_group_describe_response_t *r = st->resp;
    kp_consumer_group_describe_response_init(r);
    int n = q->n_group_ids > 0 ? q->n_group_ids : 0;
    r->groups = kp_arena_calloc(&req->arena, (size_t)n + 1, sizeof(*r->groups));
    if (!r->groups)
        goto oom;
    r->n_groups = n;
    for (int i = 0; i < n; i++) {
        kp_consumer_group_describe_response_described_group_t *d = &r->groups[i];
        kp_consumer_group_describe_response_described_group_init(d);
        d->group_id = q->group_ids[i];
        d->group_state = KP_STR_LIT("Dead");
        d->assignor_name = KP_STR_LIT("");
        d->members = kp_arena_calloc(&req->arena, 1, sizeof(*d->members));
        char *group = kh_cstr(req, q->group_ids[i]);
        if (!group || !d->members)
            goto oom;
        if (!group[0]) {
            d->error_code = KP_ERR_INVALID_GROUP_ID;
            continue;
        }
        if (!kh_group__send(req, group, i, cdesc_run, r, NULL))
            goto oom;
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}
