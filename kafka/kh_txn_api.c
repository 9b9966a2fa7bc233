/* kh_txn_api.c - the transaction APIs on the connection's shard:
 * InitProducerId (with a transactional.id), AddPartitionsToTxn (v0-3, and the
 * batched v4+ form), AddOffsetsToTxn, TxnOffsetCommit, EndTxn; and for
 * operators DescribeTransactions (one op per id) and ListTransactions (one op
 * per shard, the lists concatenated here).
 * Data path: decoded request -> checked against the topic snapshot (unknown
 * partitions, oversized metadata are answered here) -> one op per
 * transactional id posted to its coordinator shard (kh_txn.c) -> op back ->
 * when the last one is back the response is encoded.
 * Invariant: the coordinator writes only into response entries allocated
 * here before the op was posted (it allocates nothing from the request). */
#include "core/acl.h"
#include "core/st_log.h"
#include "kafka/kh_txn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void respond(kh_req_t *req);

void kh_txn__op_back(rt_shard_t *sh, void *arg)
{
    top_t *op = arg;
    (void)sh;
    if (kh_req_op_back(op->req))
        respond(op->req);
}

/* A new op of req for transactional id (an arena string), or NULL. */
static top_t *op_new(kh_req_t *req, kind_t kind, const char *txn_id)
{
    top_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
    if (!op)
        return NULL;
    memset(op, 0, sizeof(*op));
    op->req = req;
    op->origin = rt_shard_id(req->ks->sh);
    op->kind = kind;
    op->txn_id = txn_id;
    op->v = req->hdr.request_api_version;
    op->res_pid = -1;
    op->res_epoch = -1;
    return op;
}

static void op_send_to(kh_req_t *req, top_t *op, int to)
{
    kh_req_op_out(req);
    kh_post(req->ks, &op->post, to, kh_txn__op_run, kh_txn__op_closed, op);
}

static void op_send(kh_req_t *req, top_t *op)
{
    op_send_to(req, op, rt_shard_for(op->txn_id, 0, rt_shard_count(req->ks->ctx->rt)));
}

/* Answers: req->state is the response; the ops filled it, except the
 * top-level fields of single-op APIs, copied from the op here. */
typedef struct {
    void *resp;
    top_t *op;     /* single-op APIs */
    top_t *arenas; /* ops with their own arena (Describe/ListTransactions) */
} tstate_req_t;

static void state_free(kh_req_t *req)
{
    tstate_req_t *st = req->state;
    for (top_t *op = st ? st->arenas : NULL; op; op = op->next_in_req)
        kp_arena_fini(&op->arena);
}

/* An op whose coordinator allocates (its answer lives in op->arena). */
static top_t *op_new_arena(kh_req_t *req, kind_t kind, const char *txn_id)
{
    tstate_req_t *st = req->state;
    top_t *op = op_new(req, kind, txn_id);
    if (!op)
        return NULL;
    kp_arena_init(&op->arena, 64u << 20);
    op->next_in_req = st->arenas;
    st->arenas = op;
    req->state_free = state_free;
    return op;
}

/* ListTransactions: the shards' lists, one after the other. */
static void list_concat(kh_req_t *req, tstate_req_t *st)
{
    kp_list_transactions_response_t *r = st->resp;
    int n = 0;
    for (top_t *op = st->arenas; op; op = op->next_in_req) {
        n += op->n_list;
        if (op->err)
            r->error_code = op->err;
    }
    r->transaction_states = kh_array(req, n, sizeof(*r->transaction_states));
    if (!r->transaction_states) {
        r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    for (top_t *op = st->arenas; op; op = op->next_in_req)
        for (int i = 0; i < op->n_list; i++)
            if (kh_acl_allows(req, ACL_OP_DESCRIBE, ACL_RES_TRANSACTIONAL_ID,
                              op->list[i].transactional_id))
                r->transaction_states[r->n_transaction_states++] = op->list[i];
}

static void respond(kh_req_t *req)
{
    tstate_req_t *st = req->state;
    top_t *op = st->op;
    switch (req->api->api_key) {
    case KP_API_INIT_PRODUCER_ID: {
        kp_init_producer_id_response_t *r = st->resp;
        r->error_code = op->err;
        r->producer_id = op->err ? -1 : op->res_pid;
        r->producer_epoch = op->err ? -1 : op->res_epoch;
        break;
    }
    case KP_API_ADD_OFFSETS_TO_TXN:
        ((kp_add_offsets_to_txn_response_t *)st->resp)->error_code = op->err;
        break;
    case KP_API_END_TXN: {
        kp_end_txn_response_t *r = st->resp;
        r->error_code = op->err;
        r->producer_id = -1;
        r->producer_epoch = -1;
        break;
    }
    case KP_API_LIST_TRANSACTIONS:
        list_concat(req, st);
        break;
    default:
        break;
    }
    kh_respond(req, st->resp);
}

static tstate_req_t *start(kh_req_t *req, size_t resp_size)
{
    tstate_req_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    if (!st || !(st->resp = kp_arena_alloc(&req->arena, resp_size)))
        return NULL;
    memset(st->resp, 0, resp_size);
    st->op = NULL;
    st->arenas = NULL;
    req->state = st;
    kh_req_op_out(req); /* the hold */
    return st;
}

static void release(kh_req_t *req)
{
    if (kh_req_op_back(req))
        respond(req);
}

/* An id the coordinator can work with: a NUL-terminated copy, or NULL. */
static const char *id_cstr(kh_req_t *req, kp_str_t s)
{
    return s.len > 0 ? kh_cstr(req, s) : NULL;
}

void kh_txn_init_producer_id(kh_req_t *req)
{
    kp_init_producer_id_request_t *q = req->msg;
    const kh_ctx_t *ctx = req->ks->ctx;
    tstate_req_t *st = start(req, sizeof(kp_init_producer_id_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_init_producer_id_response_init(st->resp);
    const char *id = kh_cstr(req, q->transactional_id);
    top_t *op = op_new(req, K_INIT, id ? id : "");
    if (!id || !op) {
        kh_fail_held(req, "out of memory");
        return;
    }
    st->op = op;
    op->timeout_ms = q->transaction_timeout_ms;
    op->pid = req->hdr.request_api_version >= 3 ? q->producer_id : -1;
    op->epoch = req->hdr.request_api_version >= 3 ? q->producer_epoch : -1;
    if (!id[0])
        op->err = KP_ERR_INVALID_REQUEST; /* Kafka: an empty id is no transactional id */
    else if (q->transaction_timeout_ms <= 0 || q->transaction_timeout_ms > ctx->txn_max_timeout_ms)
        op->err = KP_ERR_INVALID_TRANSACTION_TIMEOUT;
    else
        op_send(req, op);
    release(req);
}

/* One AddPartitionsToTxn transaction: results laid out, unknown partitions
 * answered here (the rest OPERATION_NOT_ATTEMPTED, as Kafka), else an op. */
static int add_parts_one(kh_req_t *req,
                         const meta_snap_t *snap,
                         kp_str_t txn_id,
                         int64_t pid,
                         int16_t epoch,
                         bool verify_only,
                         const kp_add_partitions_to_txn_request_topic_t *topics,
                         int n_topics,
                         kp_add_partitions_to_txn_response_topic_result_t **out,
                         int32_t *n_out)
{
    int nt = n_topics > 0 ? n_topics : 0;
    kp_add_partitions_to_txn_response_topic_result_t *res = kh_array(req, nt, sizeof(*res));
    if (!res)
        return ST_E_NOMEM;
    *out = res;
    *n_out = nt;
    bool bad = false;
    bool txn_ok = kh_acl_allows(req, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, txn_id);
    for (int i = 0; i < nt; i++) {
        const kp_add_partitions_to_txn_request_topic_t *qt = &topics[i];
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        res[i].name = qt->name;
        res[i].results_by_partition = kh_array(req, np, sizeof(*res[i].results_by_partition));
        if (!res[i].results_by_partition)
            return ST_E_NOMEM;
        res[i].n_results_by_partition = np;
        const meta_topic_t *t = qt->name.len > 0 && qt->name.len < 250
                                    ? meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len)
                                    : NULL;
        bool may_write = kh_acl_allows(req, ACL_OP_WRITE, ACL_RES_TOPIC, qt->name);
        for (int j = 0; j < np; j++) {
            kp_add_partitions_to_txn_response_partition_result_t *rp =
                &res[i].results_by_partition[j];
            int32_t p = qt->partitions[j];
            rp->partition_index = p;
            if (!txn_ok)
                rp->partition_error_code = KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
            else if (!may_write)
                rp->partition_error_code = KP_ERR_TOPIC_AUTHORIZATION_FAILED;
            else if (!t || p < 0 || p >= t->n_partitions)
                rp->partition_error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            bad |= rp->partition_error_code != KP_ERR_NONE;
        }
    }
    const char *id = id_cstr(req, txn_id);
    top_t *op = op_new(req, K_ADD_PARTS, id ? id : "");
    if (!op || (txn_id.len > 0 && !id))
        return ST_E_NOMEM;
    op->topics = topics;
    op->n_topics = nt;
    op->results = res;
    if (bad || !id) {
        kh_txn__set_all(op, id ? KP_ERR_OPERATION_NOT_ATTEMPTED : KP_ERR_INVALID_REQUEST);
        return 0;
    }
    op->pid = pid;
    op->epoch = epoch;
    op->verify_only = verify_only;
    op_send(req, op);
    return 0;
}

void kh_txn_add_partitions(kh_req_t *req)
{
    kp_add_partitions_to_txn_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    tstate_req_t *st = start(req, sizeof(kp_add_partitions_to_txn_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_add_partitions_to_txn_response_t *r = st->resp;
    kp_add_partitions_to_txn_response_init(r);
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    int rc = 0;
    if (v <= 3) {
        rc = add_parts_one(req, snap, q->v3_and_below_transactional_id, q->v3_and_below_producer_id,
                           q->v3_and_below_producer_epoch, false, q->v3_and_below_topics,
                           q->n_v3_and_below_topics, &r->results_by_topic_v3_and_below,
                           &r->n_results_by_topic_v3_and_below);
    } else if ((r->error_code = kh_acl_cluster(req, ACL_OP_CLUSTER_ACTION)) == KP_ERR_NONE) {
        /* v4+: the batched form brokers send (Kafka: CLUSTER_ACTION). */
        int n = q->n_transactions > 0 ? q->n_transactions : 0;
        r->results_by_transaction = kh_array(req, n, sizeof(*r->results_by_transaction));
        rc = r->results_by_transaction ? 0 : ST_E_NOMEM;
        r->n_results_by_transaction = rc ? 0 : n;
        for (int i = 0; rc == 0 && i < n; i++) {
            kp_add_partitions_to_txn_request_transaction_t *qx = &q->transactions[i];
            kp_add_partitions_to_txn_response_result_t *rx = &r->results_by_transaction[i];
            rx->transactional_id = qx->transactional_id;
            rc = add_parts_one(req, snap, qx->transactional_id, qx->producer_id, qx->producer_epoch,
                               qx->verify_only, qx->topics, qx->n_topics, &rx->topic_results,
                               &rx->n_topic_results);
        }
    }
    meta_snap_put(snap);
    if (rc != 0) {
        kh_fail_held(req, "out of memory");
        return;
    }
    release(req);
}

void kh_txn_add_offsets(kh_req_t *req)
{
    kp_add_offsets_to_txn_request_t *q = req->msg;
    tstate_req_t *st = start(req, sizeof(kp_add_offsets_to_txn_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_add_offsets_to_txn_response_init(st->resp);
    const char *id = id_cstr(req, q->transactional_id);
    const char *group = id_cstr(req, q->group_id);
    top_t *op = op_new(req, K_ADD_OFFS, id ? id : "");
    if (!op || (q->transactional_id.len > 0 && !id) || (q->group_id.len > 0 && !group)) {
        kh_fail_held(req, "out of memory");
        return;
    }
    st->op = op;
    op->pid = q->producer_id;
    op->epoch = q->producer_epoch;
    op->group = group;
    if (!id)
        op->err = KP_ERR_INVALID_REQUEST;
    else if (!group)
        op->err = KP_ERR_INVALID_GROUP_ID;
    else if (!kh_acl_allows(req, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, q->transactional_id))
        op->err = KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    else if (!kh_acl_allows(req, ACL_OP_READ, ACL_RES_GROUP, q->group_id))
        op->err = KP_ERR_GROUP_AUTHORIZATION_FAILED;
    else
        op_send(req, op);
    release(req);
}

#define TXN_OFFSET_METADATA_MAX 4096 /* offset.metadata.max.bytes, as OffsetCommit */

/* Back on the request's shard from the group check: refused, or on to the
 * transaction coordinator. */
static void toc_checked(rt_shard_t *sh, void *arg)
{
    top_t *op = arg;
    (void)sh;
    if (op->err)
        kh_txn__toc_set_all(op->toc, op->err);
    else
        op_send(op->req, op);
    release(op->req);
}

/* On the group's shard: is the committer the group's member of that
 * generation (KIP-447: a zombie of an older generation must not commit)? */
static void toc_group_run(rt_shard_t *sh, void *arg)
{
    top_t *op = arg;
    gshard_t *gs = kh_group__shard();
    op->err = gs ? grp_txn_commit_check(gs->coord, op->group, op->generation, op->member_id,
                                        op->instance_id)
                 : KP_ERR_COORDINATOR_NOT_AVAILABLE;
    kh_post(kh_shard_of(sh), &op->post, op->origin, toc_checked, NULL, op);
}

/* The group's shard closed for good (shutdown). */
static void toc_group_closed(rt_shard_t *sh, void *arg)
{
    top_t *op = arg;
    op->err = KP_ERR_COORDINATOR_NOT_AVAILABLE;
    toc_checked(sh, op);
}

void kh_txn_offset_commit(kh_req_t *req)
{
    kp_txn_offset_commit_request_t *q = req->msg;
    tstate_req_t *st = start(req, sizeof(kp_txn_offset_commit_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_txn_offset_commit_response_t *r = st->resp;
    kp_txn_offset_commit_response_init(r);
    int nt = q->n_topics > 0 ? q->n_topics : 0;
    r->topics = kh_array(req, nt, sizeof(*r->topics));
    const char *id = id_cstr(req, q->transactional_id);
    const char *group = id_cstr(req, q->group_id);
    top_t *op = op_new(req, K_TXN_OFFS, id ? id : "");
    if (!r->topics || !op || (q->transactional_id.len > 0 && !id) ||
        (q->group_id.len > 0 && !group)) {
        kh_fail_held(req, "out of memory");
        return;
    }
    r->n_topics = nt;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        kp_txn_offset_commit_request_topic_t *qt = &q->topics[i];
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        r->topics[i].name = qt->name;
        r->topics[i].partitions = kh_array(req, np, sizeof(*r->topics[i].partitions));
        if (!r->topics[i].partitions) {
            meta_snap_put(snap);
            kh_fail_held(req, "out of memory");
            return;
        }
        r->topics[i].n_partitions = np;
        const meta_topic_t *t =
            qt->name.len > 0 ? meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len) : NULL;
        bool may_read = kh_acl_allows(req, ACL_OP_READ, ACL_RES_TOPIC, qt->name);
        for (int j = 0; j < np; j++) {
            kp_txn_offset_commit_request_partition_t *qp = &qt->partitions[j];
            kp_txn_offset_commit_response_partition_t *rp = &r->topics[i].partitions[j];
            rp->partition_index = qp->partition_index;
            if (!may_read)
                rp->error_code = KP_ERR_TOPIC_AUTHORIZATION_FAILED;
            else if (!t || qp->partition_index < 0 || qp->partition_index >= t->n_partitions)
                rp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (qp->committed_metadata.len > TXN_OFFSET_METADATA_MAX)
                rp->error_code = KP_ERR_OFFSET_METADATA_TOO_LARGE;
        }
    }
    meta_snap_put(snap);
    op->toc = r;
    op->generation = req->hdr.request_api_version >= 3 ? q->generation_id : -1;
    if (req->hdr.request_api_version >= 3) {
        op->member_id = q->member_id.len > 0 ? kh_cstr(req, q->member_id) : NULL;
        op->instance_id = kh_group__opt_cstr(req, q->group_instance_id);
        if ((q->member_id.len > 0 && !op->member_id) ||
            (q->group_instance_id.len >= 0 && !op->instance_id)) {
            kh_fail_held(req, "out of memory");
            return;
        }
    }
    op->pid = q->producer_id;
    op->epoch = q->producer_epoch;
    op->group = group;
    if (!id || !group)
        kh_txn__toc_set_all(r, id ? KP_ERR_INVALID_GROUP_ID : KP_ERR_INVALID_REQUEST);
    else if (!kh_acl_allows(req, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, q->transactional_id))
        kh_txn__toc_set_all(r, KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    else if (!kh_acl_allows(req, ACL_OP_READ, ACL_RES_GROUP, q->group_id))
        kh_txn__toc_set_all(r, KP_ERR_GROUP_AUTHORIZATION_FAILED);
    else if (op->generation >= 0 || op->member_id || op->instance_id) {
        kh_req_op_out(req);
        kh_post(req->ks, &op->post, rt_shard_for(group, 0, rt_shard_count(req->ks->ctx->rt)),
                toc_group_run, toc_group_closed, op);
    } else
        op_send(req, op);
    release(req);
}

void kh_txn_end(kh_req_t *req)
{
    kp_end_txn_request_t *q = req->msg;
    tstate_req_t *st = start(req, sizeof(kp_end_txn_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_end_txn_response_init(st->resp);
    const char *id = id_cstr(req, q->transactional_id);
    top_t *op = op_new(req, K_END, id ? id : "");
    if (!op || (q->transactional_id.len > 0 && !id)) {
        kh_fail_held(req, "out of memory");
        return;
    }
    st->op = op;
    op->pid = q->producer_id;
    op->epoch = q->producer_epoch;
    op->commit = q->committed;
    if (!id)
        op->err = KP_ERR_INVALID_REQUEST;
    else if (!kh_acl_allows(req, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, q->transactional_id))
        op->err = KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    else
        op_send(req, op);
    release(req);
}

void kh_txn_describe(kh_req_t *req)
{
    kp_describe_transactions_request_t *q = req->msg;
    tstate_req_t *st = start(req, sizeof(kp_describe_transactions_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_describe_transactions_response_t *r = st->resp;
    kp_describe_transactions_response_init(r);
    int n = q->n_transactional_ids > 0 ? q->n_transactional_ids : 0;
    r->transaction_states = kh_array(req, n, sizeof(*r->transaction_states));
    if (!r->transaction_states) {
        kh_fail_held(req, "out of memory");
        return;
    }
    r->n_transaction_states = n;
    for (int i = 0; i < n; i++) {
        kp_describe_transactions_response_transaction_state_t *rs = &r->transaction_states[i];
        kp_describe_transactions_response_transaction_state_init(rs);
        rs->transactional_id = q->transactional_ids[i];
        rs->transaction_state = KP_STR_LIT("");
        rs->producer_id = -1;
        rs->producer_epoch = -1;
        rs->transaction_start_time_ms = -1;
        if (!kh_acl_allows(req, ACL_OP_DESCRIBE, ACL_RES_TRANSACTIONAL_ID,
                           q->transactional_ids[i])) {
            rs->error_code = KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
            continue;
        }
        const char *id = id_cstr(req, q->transactional_ids[i]);
        top_t *op = id ? op_new_arena(req, K_DESCRIBE, id) : NULL;
        if (!op) {
            if (q->transactional_ids[i].len > 0) {
                kh_fail_held(req, "out of memory");
                return;
            }
            rs->error_code = KP_ERR_TRANSACTIONAL_ID_NOT_FOUND;
            continue;
        }
        op->desc = rs;
        op_send(req, op);
    }
    release(req);
}

void kh_txn_list(kh_req_t *req)
{
    kp_list_transactions_request_t *q = req->msg;
    tstate_req_t *st = start(req, sizeof(kp_list_transactions_response_t));
    if (!st) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_list_transactions_response_t *r = st->resp;
    kp_list_transactions_response_init(r);
    int nf = q->n_state_filters > 0 ? q->n_state_filters : 0;
    r->unknown_state_filters = kh_array(req, nf, sizeof(*r->unknown_state_filters));
    if (!r->unknown_state_filters) {
        kh_fail_held(req, "out of memory");
        return;
    }
    for (int i = 0; i < nf; i++)
        if (!kh_txn__state_known(q->state_filters[i]))
            r->unknown_state_filters[r->n_unknown_state_filters++] = q->state_filters[i];
    int n = rt_shard_count(req->ks->ctx->rt);
    for (int i = 0; i < n; i++) {
        top_t *op = op_new_arena(req, K_LIST, "");
        if (!op) {
            kh_fail_held(req, "out of memory");
            return;
        }
        op->to = i;
        op_send_to(req, op, i);
    }
    release(req);
}
