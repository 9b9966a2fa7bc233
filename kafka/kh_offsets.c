/* kh_offsets.c - committed offsets: OffsetCommit, OffsetFetch (incl. the multi-group form of
 * v8+), OffsetDelete.
 * Data path: validated on the connection's shard (topics against the metadata snapshot,
 * metadata size) -> an op goes to the group's shard (kh_group__send) -> OffsetCommit and
 * OffsetDelete are checked by the coordinator (generation, member, subscription), written by
 * the shard's offset writer (core/goffs, one SQLite transaction at a time) and applied to the
 * in-memory offsets once durable -> posted back and answered. OffsetFetch reads memory.
 * Invariant: an OffsetCommit is acknowledged only after its rows are committed to SQLite. */
#include "core/st_log.h"
#include "kafka/kh_group_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KH_OFFSET_METADATA_MAX 4096 /* offset.metadata.max.bytes */

/* ---- OffsetCommit ---- */

typedef struct {
    char *member_id;
    char *instance_id;
    wop_t *w;
} commit_x_t;

static void commit_set_all(kp_offset_commit_response_t *r, int16_t err)
{
    for (int i = 0; i < r->n_topics; i++)
        for (int j = 0; j < r->topics[i].n_partitions; j++)
            if (!r->topics[i].partitions[j].error_code)
                r->topics[i].partitions[j].error_code = err;
}

static void commit_done(wop_t *w, int status)
{
    gop_t *op = w->arg;
    gshard_t *gs = kh_group__shard();
    kp_offset_commit_response_t *r = op->resp;
    if (status != 0) {
        ST_WARN("grp", "offset commit of group=%s failed: %s", op->group, st_strerror(status));
        commit_set_all(r, KP_ERR_COORDINATOR_NOT_AVAILABLE);
    } else {
        for (int i = 0; i < w->n_rows; i++) {
            goffs_row_t *row = &w->rows[i];
            if (grp_offset_put(gs->coord, op->group, op->incarnation, row->topic, row->partition,
                               row->offset, row->leader_epoch, row->metadata, row->commit_ms) != 0)
                ST_ERROR("grp", "out of memory storing offsets of group=%s", op->group);
        }
    }
    kh_group__done(op, gs);
}

static void commit_run(gop_t *op, gshard_t *gs)
{
    kp_offset_commit_response_t *r = op->resp;
    commit_x_t *x = op->extra;
    kp_offset_commit_request_t *q = op->req->msg;
    if (!gs || !x->w) {
        commit_set_all(r, KP_ERR_COORDINATOR_NOT_AVAILABLE);
        if (x->w) {
            kh_group__rows_free(x->w->rows, x->w->n_rows);
            free(x->w);
            x->w = NULL;
        }
        return;
    }
    int16_t err = grp_commit_check(gs->coord, op->group, q->generation_id_or_member_epoch,
                                   x->member_id, x->instance_id, &op->incarnation);
    wop_t *w = x->w;
    x->w = NULL;
    if (err) {
        kh_group__rows_free(w->rows, w->n_rows);
        free(w);
        commit_set_all(r, err);
        kh_group__done(op, gs);
        return;
    }
    w->arg = op;
    kh_group__write(gs, w);
}

void kh_offset_commit(kh_req_t *req)
{
    kp_offset_commit_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_offset_commit_response_t));
    commit_x_t *x = kp_arena_alloc(&req->arena, sizeof(*x));
    char *group = kh_cstr(req, q->group_id);
    if (!st || !x || !group)
        goto oom;
    kp_offset_commit_response_t *r = st->resp;
    kp_offset_commit_response_init(r);
    int nt = q->n_topics > 0 ? q->n_topics : 0, n_rows = 0;
    r->topics = kp_arena_calloc(&req->arena, (size_t)(nt ? nt : 1), sizeof(*r->topics));
    if (!r->topics)
        goto oom;
    r->n_topics = nt;
    for (int i = 0; i < nt; i++)
        n_rows += q->topics[i].n_partitions > 0 ? q->topics[i].n_partitions : 0;
    x->member_id = v >= 1 ? kh_cstr(req, q->member_id) : NULL;
    x->instance_id = v >= 7 ? kh_group__opt_cstr(req, q->group_instance_id) : NULL;
    x->w = kh_group__wop_new(n_rows, commit_done, NULL);
    if (!x->w)
        goto oom;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    bool ok = true;
    for (int i = 0; i < nt && ok; i++) {
        kp_offset_commit_request_topic_t *qt = &q->topics[i];
        kp_offset_commit_response_topic_t *rt = &r->topics[i];
        kp_offset_commit_response_topic_init(rt);
        rt->name = qt->name;
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        rt->partitions =
            kp_arena_calloc(&req->arena, (size_t)(np ? np : 1), sizeof(*rt->partitions));
        if (!rt->partitions) {
            ok = false;
            break;
        }
        rt->n_partitions = np;
        const meta_topic_t *t =
            qt->name.len > 0 ? meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len) : NULL;
        for (int j = 0; j < np; j++) {
            kp_offset_commit_request_partition_t *qp = &qt->partitions[j];
            kp_offset_commit_response_partition_t *rp = &rt->partitions[j];
            kp_offset_commit_response_partition_init(rp);
            rp->partition_index = qp->partition_index;
            if (!t || qp->partition_index < 0 || qp->partition_index >= t->n_partitions) {
                rp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (qp->committed_metadata.len > KH_OFFSET_METADATA_MAX) {
                rp->error_code = KP_ERR_OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            goffs_row_t *row = &x->w->rows[x->w->n_rows++];
            row->kind = GOFFS_PUT;
            row->group = strdup(group);
            row->topic = strndup(qt->name.ptr, (size_t)qt->name.len);
            row->metadata =
                qp->committed_metadata.len >= 0
                    ? strndup(qp->committed_metadata.ptr ? qp->committed_metadata.ptr : "",
                              (size_t)qp->committed_metadata.len)
                    : NULL;
            row->partition = qp->partition_index;
            row->offset = qp->committed_offset;
            row->leader_epoch = v >= 6 ? qp->committed_leader_epoch : -1;
            row->commit_ms = now;
            if (!row->group || !row->topic || (qp->committed_metadata.len >= 0 && !row->metadata))
                ok = false;
        }
    }
    meta_snap_put(snap);
    if (!ok) {
        kh_group__rows_free(x->w->rows, x->w->n_rows);
        free(x->w);
        goto oom;
    }
    if (!group[0]) {
        commit_set_all(r, KP_ERR_INVALID_GROUP_ID);
    } else if (x->w->n_rows > 0) {
        if (!kh_group__send(req, group, 0, commit_run, r, x)) {
            kh_group__rows_free(x->w->rows, x->w->n_rows);
            free(x->w);
            goto oom;
        }
        x = NULL; /* the op owns it now, and may already be running on another shard */
    }
    if (x) {
        kh_group__rows_free(x->w->rows, x->w->n_rows);
        free(x->w);
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- OffsetFetch ---- */

/* One requested topic, from either request layout (v0-7 or v8+). */
typedef struct {
    kp_str_t name;
    const int32_t *parts;
    int32_t n_parts;
} of_topic_t;

typedef struct {
    of_topic_t *topics; /* request arena; NULL = every committed offset */
    int n_topics;
} of_x_t;

typedef struct {
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    kp_str_t metadata;
    int16_t error_code; /* UNSTABLE_OFFSET_COMMIT: a transaction will change it */
} of_part_t;

typedef struct {
    kp_str_t name;
    of_part_t *parts;
    int n_parts;
} of_res_t;

/* The answer for one group, in op->arena. @return topics, or NULL when out of memory. */
static of_res_t *offsets_collect(gop_t *op, gshard_t *gs, const of_x_t *x, int *n_out)
{
    kp_arena_t *a = &op->arena;
    of_res_t *res;
    *n_out = 0;
    /* v7+: a consumer that asks for stable offsets waits for open transactions. */
    const kp_offset_fetch_request_t *q = op->req->msg;
    bool stable = op->req->hdr.request_api_version >= 7 && q->require_stable;
    if (x->topics) {
        res = kp_arena_calloc(a, (size_t)(x->n_topics ? x->n_topics : 1), sizeof(*res));
        for (int i = 0; res && i < x->n_topics; i++) {
            const of_topic_t *t = &x->topics[i];
            char *name = kp_arena_alloc(a, (size_t)(t->name.len > 0 ? t->name.len : 0) + 1);
            int np = t->n_parts > 0 ? t->n_parts : 0;
            res[i].name = t->name;
            res[i].parts = kp_arena_calloc(a, (size_t)(np ? np : 1), sizeof(of_part_t));
            if (!name || !res[i].parts)
                return NULL;
            if (t->name.len > 0)
                memcpy(name, t->name.ptr, (size_t)t->name.len);
            res[i].n_parts = np;
            for (int j = 0; j < np; j++) {
                const grp_offset_t *o =
                    gs ? grp_offset_get(gs->coord, op->group, name, t->parts[j]) : NULL;
                bool pending = stable && kh_txn_offsets_pending(op->group, name, t->parts[j]);
                res[i].parts[j] =
                    (of_part_t){t->parts[j], o ? o->offset : -1, o ? o->leader_epoch : -1,
                                o ? kh_group__arena_str(a, o->metadata) : KP_STR_LIT(""),
                                pending ? KP_ERR_UNSTABLE_OFFSET_COMMIT : KP_ERR_NONE};
                if (o && !o->metadata)
                    res[i].parts[j].metadata = KP_STR_LIT("");
            }
        }
        *n_out = x->n_topics;
        return res;
    }
    grp_t *g = gs ? grp_find(gs->coord, op->group) : NULL;
    int n = 0;
    const grp_offset_t *os = g && grp_state(g) != GRP_DEAD ? grp_offsets(g, &n) : NULL;
    int nt = 0;
    for (int i = 0; i < n; i++)
        nt += i == 0 || strcmp(os[i].topic, os[i - 1].topic) != 0;
    res = kp_arena_calloc(a, (size_t)(nt ? nt : 1), sizeof(*res));
    if (!res)
        return NULL;
    for (int i = 0, t = -1; i < n; i++) {
        if (i == 0 || strcmp(os[i].topic, os[i - 1].topic) != 0) {
            int k = i;
            while (k < n && !strcmp(os[k].topic, os[i].topic))
                k++;
            t++;
            res[t].name = kh_group__arena_str(a, os[i].topic);
            res[t].parts = kp_arena_calloc(a, (size_t)(k - i), sizeof(of_part_t));
            if (!res[t].parts)
                return NULL;
        }
        res[t].parts[res[t].n_parts++] =
            (of_part_t){os[i].partition, os[i].offset, os[i].leader_epoch,
                        os[i].metadata ? kh_group__arena_str(a, os[i].metadata) : KP_STR_LIT(""),
                        stable && kh_txn_offsets_pending(op->group, os[i].topic, os[i].partition)
                            ? KP_ERR_UNSTABLE_OFFSET_COMMIT
                            : KP_ERR_NONE};
    }
    *n_out = nt;
    return res;
}

static void offset_fetch_run(gop_t *op, gshard_t *gs)
{
    kp_offset_fetch_response_t *r = op->resp;
    int16_t v = op->req->hdr.request_api_version;
    kp_arena_t *a = &op->arena;
    int nt = 0;
    of_res_t *res = offsets_collect(op, gs, op->extra, &nt);
    int16_t err = !gs ? KP_ERR_COORDINATOR_NOT_AVAILABLE : !res ? KP_ERR_UNKNOWN_SERVER_ERROR : 0;
    if (v >= 9 && !err) { /* KIP-848: a consumer-protocol member fetches at its own epoch */
        const kp_offset_fetch_request_group_t *qg =
            &((const kp_offset_fetch_request_t *)op->req->msg)->groups[op->index];
        grp_t *g = grp_find(gs->coord, op->group);
        size_t len = qg->member_id.len > 0 ? (size_t)qg->member_id.len : 0;
        char *mid = kp_arena_alloc(a, len + 1);
        if (mid) {
            if (len)
                memcpy(mid, qg->member_id.ptr, len);
            mid[len] = 0;
        }
        if (!mid)
            err = KP_ERR_UNKNOWN_SERVER_ERROR;
        else if (g && grp_state(g) != GRP_DEAD)
            err = grp_cons_fetch_check(g, mid, qg->member_epoch);
    }
    if (v >= 8) {
        kp_offset_fetch_response_group_t *rg = &r->groups[op->index];
        rg->error_code = err;
        rg->topics = err ? NULL : kp_arena_calloc(a, (size_t)(nt ? nt : 1), sizeof(*rg->topics));
        for (int i = 0; rg->topics && i < nt; i++) {
            kp_offset_fetch_response_topics_t *t = &rg->topics[i];
            kp_offset_fetch_response_topics_init(t);
            t->name = res[i].name;
            t->partitions = kp_arena_calloc(a, (size_t)(res[i].n_parts ? res[i].n_parts : 1),
                                            sizeof(*t->partitions));
            if (!t->partitions) {
                rg->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
                break;
            }
            for (int j = 0; j < res[i].n_parts; j++) {
                kp_offset_fetch_response_partitions_t *p = &t->partitions[j];
                kp_offset_fetch_response_partitions_init(p);
                p->partition_index = res[i].parts[j].partition;
                p->committed_offset = res[i].parts[j].offset;
                p->committed_leader_epoch = res[i].parts[j].leader_epoch;
                p->metadata = res[i].parts[j].metadata;
                p->error_code = res[i].parts[j].error_code;
            }
            t->n_partitions = res[i].n_parts;
            rg->n_topics++;
        }
    } else {
        if (v >= 2)
            r->error_code = err;
        r->topics = res ? kp_arena_calloc(a, (size_t)(nt ? nt : 1), sizeof(*r->topics)) : NULL;
        for (int i = 0; r->topics && i < nt; i++) {
            kp_offset_fetch_response_topic_t *t = &r->topics[i];
            kp_offset_fetch_response_topic_init(t);
            t->name = res[i].name;
            t->partitions = kp_arena_calloc(a, (size_t)(res[i].n_parts ? res[i].n_parts : 1),
                                            sizeof(*t->partitions));
            if (!t->partitions)
                break;
            for (int j = 0; j < res[i].n_parts; j++) {
                kp_offset_fetch_response_partition_t *p = &t->partitions[j];
                kp_offset_fetch_response_partition_init(p);
                p->partition_index = res[i].parts[j].partition;
                p->committed_offset = res[i].parts[j].offset;
                if (v >= 5)
                    p->committed_leader_epoch = res[i].parts[j].leader_epoch;
                p->metadata = res[i].parts[j].metadata;
                p->error_code = v < 2 ? err : res[i].parts[j].error_code;
            }
            t->n_partitions = res[i].n_parts;
            r->n_topics++;
        }
    }
    if (gs)
        kh_group__done(op, gs);
}

void kh_offset_fetch(kh_req_t *req)
{
    kp_offset_fetch_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    gstate_t *st = kh_group__start(req, sizeof(kp_offset_fetch_response_t));
    if (!st)
        goto oom;
    kp_offset_fetch_response_t *r = st->resp;
    kp_offset_fetch_response_init(r);
    if (v < 8) {
        of_x_t *x = kp_arena_alloc(&req->arena, sizeof(*x));
        char *group = kh_cstr(req, q->group_id);
        if (!x || !group)
            goto oom;
        if (q->n_topics >= 0) {
            x->n_topics = q->n_topics;
            x->topics = kp_arena_calloc(&req->arena, (size_t)x->n_topics + 1, sizeof(*x->topics));
            if (!x->topics)
                goto oom;
            for (int i = 0; i < x->n_topics; i++)
                x->topics[i] = (of_topic_t){q->topics[i].name, q->topics[i].partition_indexes,
                                            q->topics[i].n_partition_indexes};
        }
        if (!group[0]) {
            if (v >= 2)
                r->error_code = KP_ERR_INVALID_GROUP_ID;
        } else {
            if (!kh_group__send(req, group, 0, offset_fetch_run, r, x))
                goto oom;
        }
    } else {
        int ng = q->n_groups > 0 ? q->n_groups : 0;
        r->groups = kp_arena_calloc(&req->arena, (size_t)(ng ? ng : 1), sizeof(*r->groups));
        if (!r->groups)
            goto oom;
        r->n_groups = ng;
        for (int g = 0; g < ng; g++) {
            kp_offset_fetch_request_group_t *qg = &q->groups[g];
            kp_offset_fetch_response_group_t *rg = &r->groups[g];
            kp_offset_fetch_response_group_init(rg);
            rg->group_id = qg->group_id;
            of_x_t *x = kp_arena_alloc(&req->arena, sizeof(*x));
            char *group = kh_cstr(req, qg->group_id);
            if (!x || !group)
                goto oom;
            if (qg->n_topics >= 0) {
                x->n_topics = qg->n_topics;
                x->topics =
                    kp_arena_calloc(&req->arena, (size_t)x->n_topics + 1, sizeof(*x->topics));
                if (!x->topics)
                    goto oom;
                for (int i = 0; i < x->n_topics; i++)
                    x->topics[i] = (of_topic_t){qg->topics[i].name, qg->topics[i].partition_indexes,
                                                qg->topics[i].n_partition_indexes};
            }
            if (!group[0]) {
                rg->error_code = KP_ERR_INVALID_GROUP_ID;
                continue;
            }
            if (!kh_group__send(req, group, g, offset_fetch_run, r, x))
                goto oom;
        }
    }
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- OffsetDelete ---- */

static void odel_done(wop_t *w, int status)
{
    gop_t *op = w->arg;
    gshard_t *gs = kh_group__shard();
    kp_offset_delete_response_t *r = op->resp;
    if (status != 0) {
        r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
    } else {
        for (int i = 0; i < w->n_rows; i++)
            grp_offsets_delete(gs->coord, op->group, w->rows[i].topic, w->rows[i].partition);
    }
    kh_group__done(op, gs);
}

static void odel_run(gop_t *op, gshard_t *gs)
{
    kp_offset_delete_request_t *q = op->req->msg;
    kp_offset_delete_response_t *r = op->resp;
    if (!gs) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    grp_t *g = grp_find(gs->coord, op->group);
    if (!g || grp_state(g) == GRP_DEAD) {
        r->error_code = KP_ERR_GROUP_ID_NOT_FOUND;
        kh_group__done(op, gs);
        return;
    }
    bool empty = grp_state(g) == GRP_EMPTY;
    if (!empty && strcmp(grp_protocol_type(g), "consumer") != 0) {
        r->error_code = KP_ERR_NON_EMPTY_GROUP;
        kh_group__done(op, gs);
        return;
    }
    int n = 0;
    for (int i = 0; i < r->n_topics; i++)
        n += r->topics[i].n_partitions;
    wop_t *w = kh_group__wop_new(n, odel_done, op);
    if (!w) {
        r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        kh_group__done(op, gs);
        return;
    }
    for (int i = 0; i < r->n_topics; i++) {
        kp_offset_delete_response_topic_t *t = &r->topics[i];
        char *topic =
            strndup(t->name.ptr ? t->name.ptr : "", (size_t)(t->name.len > 0 ? t->name.len : 0));
        bool busy = topic && !empty && grp_subscribed(g, topic);
        for (int j = 0; j < t->n_partitions; j++) {
            kp_offset_delete_response_partition_t *p = &t->partitions[j];
            if (p->error_code)
                continue;
            if (!topic) {
                p->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            } else if (busy) {
                p->error_code = KP_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
            } else {
                goffs_row_t *row = &w->rows[w->n_rows++];
                row->kind = GOFFS_DEL;
                row->group = strdup(op->group);
                row->topic = strdup(topic);
                row->partition = p->partition_index;
            }
        }
        free(topic);
    }
    (void)q;
    if (w->n_rows == 0) {
        kh_group__rows_free(w->rows, 0);
        free(w);
        kh_group__done(op, gs);
        return;
    }
    kh_group__write(gs, w);
}

void kh_offset_delete(kh_req_t *req)
{
    kp_offset_delete_request_t *q = req->msg;
    gstate_t *st = kh_group__start(req, sizeof(kp_offset_delete_response_t));
    char *group = kh_cstr(req, q->group_id);
    if (!st || !group)
        goto oom;
    kp_offset_delete_response_t *r = st->resp;
    kp_offset_delete_response_init(r);
    int nt = q->n_topics > 0 ? q->n_topics : 0;
    r->topics = kp_arena_calloc(&req->arena, (size_t)(nt ? nt : 1), sizeof(*r->topics));
    if (!r->topics)
        goto oom;
    r->n_topics = nt;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        kp_offset_delete_request_topic_t *qt = &q->topics[i];
        kp_offset_delete_response_topic_t *t = &r->topics[i];
        kp_offset_delete_response_topic_init(t);
        t->name = qt->name;
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        t->partitions = kp_arena_calloc(&req->arena, (size_t)(np ? np : 1), sizeof(*t->partitions));
        if (!t->partitions) {
            meta_snap_put(snap);
            goto oom;
        }
        t->n_partitions = np;
        const meta_topic_t *mt =
            qt->name.len > 0 ? meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len) : NULL;
        for (int j = 0; j < np; j++) {
            kp_offset_delete_response_partition_init(&t->partitions[j]);
            t->partitions[j].partition_index = qt->partitions[j].partition_index;
            if (!mt || qt->partitions[j].partition_index < 0 ||
                qt->partitions[j].partition_index >= mt->n_partitions)
                t->partitions[j].error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        }
    }
    meta_snap_put(snap);
    if (!group[0])
        r->error_code = KP_ERR_INVALID_GROUP_ID;
    else if (!kh_group__send(req, group, 0, odel_run, r, NULL))
        goto oom;
    kh_group__release(req);
    return;
oom:
    kh_fail_held(req, "out of memory");
}
