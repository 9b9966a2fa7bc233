/* kh_admin.c - topic administration: CreateTopics, DeleteTopics.
 * Data path: validate on the connection's shard -> meta_* mutation (SQLite on
 * the thread pool, then a new snapshot) -> for deletions every shard is told
 * to close and remove its partitions of the topic -> respond. */
#include "core/st_log.h"
#include "kafka/kh_int.h"
#include "tiering/tier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    kh_req_t *req;
} astate_t;

/* A metadata store call is back (or the handler drops its hold). */
static void admin_done(astate_t *st)
{
    if (kh_req_op_back(st->req))
        kh_respond(st->req, st->req->state);
}

/* ---- CreateTopics ---- */

typedef struct {
    astate_t *st;
    kp_create_topics_response_creatable_topic_result_t *res;
    meta_kv_t *kvs; /* arena: the validated config overrides */
    int n_kvs;
} create_op_t;

static void on_created(void *arg, int status, const char *msg)
{
    create_op_t *op = arg;
    if (status != 0) {
        op->res->error_code =
            status == ST_E_EXISTS ? KP_ERR_TOPIC_ALREADY_EXISTS : KP_ERR_UNKNOWN_SERVER_ERROR;
        op->res->error_message = kp_str_from_cstr(kh_cstr(op->st->req, kp_str_from_cstr(msg)));
        op->res->num_partitions = -1;
        op->res->replication_factor = -1;
    } else {
        meta_snap_t *snap = meta_snap_get(op->st->req->ks->ctx->meta);
        const meta_topic_t *t = meta_snap_find(snap, op->res->name.ptr, (size_t)op->res->name.len);
        if (t)
            memcpy(op->res->topic_id.b, t->id, 16);
        meta_snap_put(snap);
        kh_config_fill_created(op->st->req, op->kvs, op->n_kvs, op->res);
        ST_INFO("kafka", "created topic=%.*s partitions=%d", op->res->name.len, op->res->name.ptr,
                op->res->num_partitions);
    }
    admin_done(op->st);
}

static int16_t set_err(kh_req_t *req,
                       kp_create_topics_response_creatable_topic_result_t *res,
                       int16_t code,
                       const char *msg)
{
    res->error_code = code;
    res->error_message = kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(msg)));
    res->num_partitions = -1;
    res->replication_factor = -1;
    return code;
}

void kh_create_topics(kh_req_t *req)
{
    kp_create_topics_request_t *q = req->msg;
    const kh_ctx_t *ctx = req->ks->ctx;
    kh_req_op_out(req); /* the hold: every failure below is kh_fail_held */
    kp_create_topics_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    astate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    int n = q->n_topics > 0 ? q->n_topics : 0;
    if (!r || !st)
        goto oom;
    kp_create_topics_response_init(r);
    req->state = r;
    st->req = req;
    r->topics = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->topics));
    if (!r->topics)
        goto oom;
    r->n_topics = n;
    bool *dups = kh_str_dups(req, n ? &q->topics[0].name : NULL, n, sizeof(q->topics[0]));
    if (!dups)
        goto oom;
    meta_snap_t *snap = meta_snap_get(ctx->meta);
    int64_t used = kh_partitions_total(snap); /* and what this request creates */
    char room[200];
    for (int i = 0; i < n; i++) {
        kp_create_topics_request_creatable_topic_t *qt = &q->topics[i];
        kp_create_topics_response_creatable_topic_result_t *res = &r->topics[i];
        kp_create_topics_response_creatable_topic_result_init(res);
        res->name = qt->name;
        int32_t np = qt->num_partitions == -1 ? ctx->num_partitions : qt->num_partitions;
        res->num_partitions = np;
        res->replication_factor = 1;
        const char *bad = qt->name.len >= 0
                              ? meta_topic_name_invalid(qt->name.ptr, (size_t)qt->name.len)
                              : "topic name is null";
        bool dup = dups[i];
        meta_kv_t *kvs = NULL;
        int n_kvs = 0;
        int16_t code;
        const char *why = NULL;
        if (bad) {
            set_err(req, res, KP_ERR_INVALID_TOPIC_EXCEPTION, bad);
        } else if (dup) {
            set_err(req, res, KP_ERR_INVALID_REQUEST, "topic named twice in the request");
        } else if (meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len)) {
            char msg[320];
            snprintf(msg, sizeof(msg), "Topic '%.*s' already exists.", qt->name.len, qt->name.ptr);
            set_err(req, res, KP_ERR_TOPIC_ALREADY_EXISTS, msg);
        } else if (qt->n_assignments > 0) {
            set_err(req, res, KP_ERR_INVALID_REQUEST,
                    "manual replica assignment is not supported on a single broker");
        } else if (np < 1 || np > 1000000) {
            set_err(req, res, KP_ERR_INVALID_PARTITIONS,
                    "Number of partitions must be larger than 0.");
        } else if (qt->replication_factor != -1 && qt->replication_factor != 1) {
            set_err(req, res, KP_ERR_INVALID_REPLICATION_FACTOR,
                    "Replication factor must be 1 (or -1): this cluster has 1 broker.");
        } else if (!kh_partitions_room(ctx, used, np, room, sizeof(room))) {
            set_err(req, res, KP_ERR_POLICY_VIOLATION, room);
        } else if ((code = kh_config_check_create(req, qt, &kvs, &n_kvs, &why)) != 0) {
            set_err(req, res, code, why);
        } else if ((used += np, q->validate_only)) {
            kh_config_fill_created(req, kvs, n_kvs, res);
        } else {
            create_op_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
            if (!op) {
                set_err(req, res, KP_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
                continue;
            }
            op->st = st;
            op->res = res;
            op->kvs = kvs;
            op->n_kvs = n_kvs;
            meta_topic_spec_t spec = {kh_cstr(req, qt->name), np, kvs, n_kvs};
            if (!spec.name) {
                set_err(req, res, KP_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
                continue;
            }
            kh_req_op_out(req);
            meta_create_topic(ctx->meta, rt_shard_loop(req->ks->sh), &spec, on_created, op);
        }
    }
    meta_snap_put(snap);
    admin_done(st);
    return;
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- DeleteTopics ---- */

typedef struct {
    kh_post_t post;
    char *topic; /* malloc'd: outlives the request on slow shards */
} drop_msg_t;

static void forget_log(void *arg, plog_t *log)
{
    kh_idem_forget(arg, log);
    kh_txn_part_forget(arg, log);
}

static void drop_on_shard(rt_shard_t *sh, void *arg)
{
    drop_msg_t *m = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    part_drop_topic(ks->ps, m->topic, forget_log, ks);
    tier_topic_deleted(ks->tier, m->topic); /* its index rows and archived objects */
    kh_group_topic_deleted(ks, m->topic);
    free(m->topic);
    free(m);
}

/* That shard closed for good (shutdown): nothing of it is left to drop. */
static void drop_closed(rt_shard_t *sh, void *arg)
{
    drop_msg_t *m = arg;
    (void)sh;
    free(m->topic);
    free(m);
}

typedef struct {
    astate_t *st;
    kp_delete_topics_response_deletable_topic_result_t *res;
    char *name;
} del_op_t;

static void on_deleted(void *arg, int status, const char *msg)
{
    del_op_t *op = arg;
    kh_req_t *req = op->st->req;
    if (status != 0) {
        op->res->error_code = status == ST_E_NOTFOUND ? KP_ERR_UNKNOWN_TOPIC_OR_PARTITION
                                                      : KP_ERR_UNKNOWN_SERVER_ERROR;
        op->res->error_message = kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(msg)));
    } else {
        ST_INFO("kafka", "deleted topic=%s", op->name);
        int n = rt_shard_count(req->ks->ctx->rt);
        for (int s = 0; s < n; s++) {
            drop_msg_t *m = malloc(sizeof(*m));
            if (!m || !(m->topic = strdup(op->name))) {
                free(m);
                continue;
            }
            kh_post(req->ks, &m->post, s, drop_on_shard, drop_closed, m);
        }
    }
    admin_done(op->st);
}

void kh_delete_topics(kh_req_t *req)
{
    kp_delete_topics_request_t *q = req->msg;
    const kh_ctx_t *ctx = req->ks->ctx;
    kh_req_op_out(req); /* the hold: every failure below is kh_fail_held */
    kp_delete_topics_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    astate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    /* v0-5 name topics in topic_names, v6+ in topics (by name or id). */
    int n = req->hdr.request_api_version >= 6 ? q->n_topics : q->n_topic_names;
    if (n < 0)
        n = 0;
    if (!r || !st)
        goto oom;
    kp_delete_topics_response_init(r);
    req->state = r;
    st->req = req;
    r->responses = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->responses));
    if (!r->responses)
        goto oom;
    r->n_responses = n;
    meta_snap_t *snap = meta_snap_get(ctx->meta);
    for (int i = 0; i < n; i++) {
        kp_delete_topics_response_deletable_topic_result_t *res = &r->responses[i];
        kp_delete_topics_response_deletable_topic_result_init(res);
        const meta_topic_t *t = NULL;
        if (req->hdr.request_api_version >= 6) {
            kp_delete_topics_request_delete_topic_state_t *qt = &q->topics[i];
            res->name = qt->name;
            res->topic_id = qt->topic_id;
            t = qt->name.len >= 0 ? meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len)
                                  : meta_snap_find_id(snap, qt->topic_id.b);
            if (!t && qt->name.len < 0) {
                res->error_code = KP_ERR_UNKNOWN_TOPIC_ID;
                continue;
            }
        } else {
            res->name = q->topic_names[i];
            t = meta_snap_find(snap, res->name.ptr,
                               (size_t)(res->name.len > 0 ? res->name.len : 0));
        }
        if (!t) {
            res->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        res->name = kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(t->name)));
        memcpy(res->topic_id.b, t->id, 16);
        del_op_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
        if (!op) {
            res->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        op->st = st;
        op->res = res;
        op->name = kh_cstr(req, res->name);
        if (!op->name) {
            res->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            continue;
        }
        kh_req_op_out(req);
        meta_delete_topic(ctx->meta, rt_shard_loop(req->ks->sh), op->name, on_deleted, op);
    }
    meta_snap_put(snap);
    admin_done(st);
    return;
oom:
    kh_fail_held(req, "out of memory");
}
