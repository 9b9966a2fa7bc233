/* kh_produce.c - Produce: fan a request out to the partitions' owning shards,
 * append there, acknowledge per acks.
 * Data path: connection shard decodes -> one op per partition, posted to the
 * owner (rt_post) -> owner: the producer's state (kh_idem, kh_txn: a set it
 * refuses or dedupes is validated first, as Kafka, so a corrupt batch is never
 * acknowledged as a duplicate) -> plog_append() (validates, assigns offsets,
 * queues the bytes for the writer thread), and for acks=1 waits until they
 * are written (page cache), for acks=all until the group-committed fdatasync
 * (plog_wait_acked) -> op posted back -> when the last op is back the
 * response is encoded (acks=0: none is sent). Long-polling fetches wake when
 * the high watermark moves (plog_shard_on_hw).
 * Invariants: 1. the record bytes are appended straight from the request
 *                frame, which lives until the request is freed, i.e. after
 *                every op came back (kh_req_op_out / kh_req_op_back);
 *             2. ops are posted only once the whole response is built, so an
 *                allocation failure never leaves a partition appended. */
#include "core/st_crc32c.h"
#include "core/st_log.h"
#include "kafka/kh_int.h"
#include "tiering/tier.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct prod_op {
    kh_post_t post;
    kh_req_t *req;
    struct prod_op *next; /* the request's ops, posted once all are built */
    int origin;
    char *topic; /* arena */
    int32_t partition;
    uint8_t *records; /* view into req->frame */
    size_t len;
    int16_t acks;
    kh_append_rules_t rules; /* the topic's LogAppendTime and timestamp bounds */
    char msg[256];           /* why the rules refused the record set */
    plog_waiter_t waiter;
    kp_produce_response_partition_produce_response_t *resp; /* arena */
    uint64_t stage_ns; /* uv_hrtime() when its current stage began; 0: not timed */
} prod_op_t;

/* The stage that began at op->stage_ns ends now (the produce stage metric;
 * only appended ops are timed). */
static void stage_end(prod_op_t *op, st_produce_stage_t stage)
{
    if (!op->stage_ns)
        return;
    uint64_t now = uv_hrtime();
    st_metric_observe_ns(ST_H_PRODUCE_STAGE_LATENCY, (int)stage, now - op->stage_ns);
    op->stage_ns = stage == ST_PSTAGE_REPLY ? 0 : now;
}

static void produce_answer(kh_req_t *req)
{
    kp_produce_request_t *q = req->msg;
    if (q->acks == 0)
        kh_no_response(req);
    else
        kh_respond(req, req->state);
}

static void op_back(rt_shard_t *sh, void *arg)
{
    prod_op_t *op = arg;
    (void)sh;
    stage_end(op, ST_PSTAGE_REPLY);
    if (kh_req_op_back(op->req))
        produce_answer(op->req);
}

static void send_back(kh_shard_t *owner, prod_op_t *op)
{
    kh_post(owner, &op->post, op->origin, op_back, NULL, op);
}

/* The owner shard closed for good before the op ran (shutdown). */
static void op_closed(rt_shard_t *sh, void *arg)
{
    prod_op_t *op = arg;
    op->resp->error_code = KP_ERR_NOT_LEADER_OR_FOLLOWER;
    op->resp->base_offset = -1;
    op_back(sh, op);
}

/* The batch is in the log; status says whether it became durable (acks=1:
 * written). When the
 * sync failed it may still survive (the page cache is written back, a restart
 * reads it): Kafka's "written, not enough replicas" tells clients just that
 * (librdkafka marks the batch possibly persisted and retries it with the same
 * sequence), where KAFKA_STORAGE_ERROR would tell them it was not written. */
static void on_durable(void *arg, int status)
{
    prod_op_t *op = arg;
    if (status != 0) {
        op->resp->error_code = KP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND;
        op->resp->error_message =
            kp_str_from_cstr("appended to the log, not made durable: the log failed");
        op->resp->base_offset = -1;
    }
    stage_end(op, ST_PSTAGE_ACK);
    send_back(kh_shard_of(rt_current()), op);
}

/* Kafka validates a record set before it looks at its producer's state: a
 * corrupt batch is refused as such whatever its sequence (a retried one must
 * not be acknowledged as a duplicate, an out-of-order one is not an ordering
 * error). Checked only when the producer state refuses or dedupes the set:
 * a set that goes on to plog_append is validated there.
 * @return true when op->records is valid; else op's answer holds the error. */
static bool records_valid(prod_op_t *op)
{
    int n;
    const char *why = NULL;
    int rc = plog_records_validate(op->records, op->len, &n, &why);
    if (rc == 0)
        return true;
    op->resp->error_code = kh_errcode_from_st(rc);
    op->resp->error_message = kp_str_from_cstr(why);
    op->resp->base_offset = -1;
    return false;
}

/* Send op back once what its acks promise holds for the log up to end: at
 * once (acks=0), written (acks=1), durable or, with write caching, written
 * (acks=all). */
static void answer_at(kh_shard_t *ks, plog_t *log, prod_op_t *op, int64_t end)
{
    if (op->acks == -1)
        plog_wait_acked(log, &op->waiter, end, on_durable, op);
    else if (op->acks == 1)
        plog_wait_written(log, &op->waiter, end, on_durable, op);
    else
        send_back(ks, op);
}

static void op_append(rt_shard_t *sh, void *arg)
{
    prod_op_t *op = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    uint64_t start_ns = uv_hrtime();
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    plog_t *log = kh_local_log(ks, snap, op->topic, op->partition);
    meta_snap_put(snap);
    if (!log) {
        op->resp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        send_back(ks, op);
        return;
    }
    int64_t dup_base = -1, dup_last = -1;
    int16_t ierr = kh_idem_check(ks, log, op->records, op->len, &dup_base, &dup_last);
    if (ierr != KP_ERR_DUPLICATE_SEQUENCE_NUMBER && plog_failed(log)) {
        /* A failed log refuses every new batch before its sequence is looked at
         * (as Kafka's offline partition): the batches refused before this one
         * leave a gap, and OUT_OF_ORDER_SEQUENCE_NUMBER would make librdkafka
         * bump its epoch and send the written, possibly surviving batches again
         * as new ones. A retry of a written batch waits below (and fails). */
        op->resp->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
        op->resp->error_message = kp_str_from_cstr("the log failed; appends refused until restart");
        op->resp->base_offset = -1;
        send_back(ks, op);
        return;
    }
    if (ierr == KP_ERR_NONE) /* transactional: only to a partition of its transaction */
        ierr = kh_txn_produce_check(ks, log, op->records, op->len);
    if (ierr != KP_ERR_NONE && !records_valid(op)) {
        send_back(ks, op);
        return;
    }
    if (ierr == KP_ERR_DUPLICATE_SEQUENCE_NUMBER) {
        /* A retry of a batch we have: answer as the first time, once durable. */
        op->resp->base_offset = dup_base;
        op->resp->log_start_offset = plog_start_offset(log);
        answer_at(ks, log, op, dup_last + 1);
        return;
    }
    if (ierr != KP_ERR_NONE) {
        op->resp->error_code = ierr;
        op->resp->base_offset = -1;
        send_back(ks, op);
        return;
    }
    plog_append_info_t info;
    const char *why = NULL;
    int64_t now = part_now_ms();
    int16_t code =
        kh_apply_append_rules(&op->rules, op->records, op->len, now, op->msg, sizeof(op->msg));
    if (code != KP_ERR_NONE) {
        op->resp->error_code = code;
        op->resp->error_message = kp_str_from_cstr(op->msg);
        op->resp->base_offset = -1;
        send_back(ks, op);
        return;
    }
    int rc = plog_append(log, op->records, op->len, 0, now, &info, &why);
    if (rc != 0) {
        op->resp->error_code = kh_errcode_from_st(rc);
        op->resp->error_message = kp_str_from_cstr(why);
        op->resp->base_offset = -1;
        ST_DEBUG("kafka", "produce rejected tp=%s-%d: %s", op->topic, op->partition,
                 why ? why : st_strerror(rc));
        send_back(ks, op);
        return;
    }
    /* Timed from here on: queue and append end now, ack and reply follow. */
    st_metric_observe_ns(ST_H_PRODUCE_STAGE_LATENCY, ST_PSTAGE_QUEUE, start_ns - op->req->t0_ns);
    op->stage_ns = start_ns;
    stage_end(op, ST_PSTAGE_APPEND);
    op->resp->base_offset = info.base_offset;
    op->resp->log_start_offset = info.log_start_offset;
    if (op->rules.log_append_time)
        op->resp->log_append_time_ms = now;
    kh_idem_record(ks, log, op->records, op->len, info.base_offset, info.last_offset);
    kh_txn_produce_appended(ks, log, op->records, op->len, info.base_offset);
    st_metric_topic(ST_T_PRODUCE_REQUESTS, op->topic, op->len);
    /* Long polls wake when the high watermark reaches it (plog_shard_on_hw):
     * the bytes are only queued for the writer here. */
    answer_at(ks, log, op, info.end_offset);
}

/* Post every op built by kh_produce, under a hold so that none answers early. */
static void produce_post(kh_req_t *req, prod_op_t *ops)
{
    kh_req_op_out(req); /* the hold */
    for (prod_op_t *op = ops, *next; op; op = next) {
        next = op->next; /* op may run (and come back) at once */
        kh_req_op_out(req);
        kh_post(req->ks, &op->post, kh_owner(req->ks, op->topic, op->partition), op_append,
                op_closed, op);
    }
    if (kh_req_op_back(req))
        produce_answer(req);
}

/* Phase 1 builds the whole response and every op; only phase 2 posts, so an
 * allocation failure (a hostile partition count exhausting the arena) closes
 * the connection before anything was appended or any op refers to req. */
void kh_produce(kh_req_t *req)
{
    kp_produce_request_t *q = req->msg;
    const kh_ctx_t *ctx = req->ks->ctx;
    kp_produce_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!r)
        goto oom;
    kp_produce_response_init(r);
    req->state = r;
    int n_topics = q->n_topic_data > 0 ? q->n_topic_data : 0;
    r->responses = kh_array(req, n_topics, sizeof(*r->responses));
    if (!r->responses)
        goto oom;
    r->n_responses = n_topics;
    bool bad_acks = q->acks != 0 && q->acks != 1 && q->acks != -1;
    prod_op_t *ops = NULL, **tail = &ops;
    meta_snap_t *snap = meta_snap_get(ctx->meta);
    for (int i = 0; i < n_topics; i++) {
        kp_produce_request_topic_produce_data_t *qt = &q->topic_data[i];
        kp_produce_response_topic_produce_response_t *rt = &r->responses[i];
        rt->name = qt->name;
        int np = qt->n_partition_data > 0 ? qt->n_partition_data : 0;
        rt->partition_responses = kh_array(req, np, sizeof(*rt->partition_responses));
        if (!rt->partition_responses) {
            meta_snap_put(snap);
            goto oom;
        }
        rt->n_partition_responses = np;
        char *topic;
        const meta_topic_t *t = kh_topic_find(req, snap, qt->name, &topic);
        if (t && !topic) {
            meta_snap_put(snap);
            goto oom;
        }
        for (int j = 0; j < np; j++) {
            kp_produce_request_partition_produce_data_t *qp = &qt->partition_data[j];
            kp_produce_response_partition_produce_response_t *rp = &rt->partition_responses[j];
            kp_produce_response_partition_produce_response_init(rp);
            rp->index = qp->index;
            rp->base_offset = -1;
            if (bad_acks) {
                rp->error_code = KP_ERR_INVALID_REQUIRED_ACKS;
                continue;
            }
            if (!t || qp->index < 0 || qp->index >= t->n_partitions) {
                rp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (qp->records.len <= 0) {
                rp->error_code = KP_ERR_CORRUPT_MESSAGE;
                rp->error_message = KP_STR_LIT("empty record set");
                continue;
            }
            if ((rp->error_code = kh_check_batch_sizes(req, t, qp->records, topic, qp->index,
                                                       &rp->error_message)) != 0)
                continue;
            prod_op_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
            if (!op) {
                meta_snap_put(snap);
                goto oom;
            }
            op->req = req;
            op->origin = rt_shard_id(req->ks->sh);
            op->topic = topic;
            op->partition = qp->index;
            /* The frame is ours: appending rewrites offsets in place. */
            op->records = (uint8_t *)qp->records.ptr;
            op->len = (size_t)qp->records.len;
            op->acks = q->acks;
            kh_topic_append_rules(req->ks->ctx, t, &op->rules);
            op->resp = rp;
            *tail = op;
            tail = &op->next;
        }
    }
    meta_snap_put(snap);
    produce_post(req, ops);
    return;
oom:
    kh_fail_conn(req, "out of memory"); /* nothing was posted */
}

/* ---- DeleteRecords: move log start offsets on the owners ---- */

typedef struct del_op {
    kh_post_t post;
    kh_req_t *req;
    struct del_op *next; /* the request's ops, posted once all are built */
    int origin;
    char *topic; /* arena */
    int32_t partition;
    int64_t offset; /* -1: the high watermark */
    kp_delete_records_response_partition_result_t *res;
} del_op_t;

static void del_back(rt_shard_t *sh, void *arg)
{
    del_op_t *op = arg;
    (void)sh;
    if (kh_req_op_back(op->req))
        kh_respond(op->req, op->req->state);
}

static void del_persisted(void *arg, int status)
{
    del_op_t *op = arg;
    if (status != 0)
        op->res->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
    kh_post(kh_shard_of(rt_current()), &op->post, op->origin, del_back, NULL, op);
}

/* The owner shard closed for good before the op ran (shutdown). */
static void del_closed(rt_shard_t *sh, void *arg)
{
    del_op_t *op = arg;
    op->res->error_code = KP_ERR_NOT_LEADER_OR_FOLLOWER;
    op->res->low_watermark = -1;
    del_back(sh, op);
}

static void del_run(rt_shard_t *sh, void *arg)
{
    del_op_t *op = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    plog_t *log = kh_local_log(ks, snap, op->topic, op->partition);
    meta_snap_put(snap);
    int rc = ST_E_NOTFOUND;
    if (log) {
        int64_t to = op->offset == -1 ? plog_high_watermark(log) : op->offset;
        int64_t start = plog_start_offset(log);
        /* Set before the call: when the start is already past `to` the callback runs at
         * once and posts the op back, after which it belongs to the origin shard. */
        op->res->low_watermark = to > start ? to : start;
        rc = plog_delete_records(log, to, del_persisted, op);
        if (rc == 0) {
            tier_gc_kick(ks->tier); /* delete archived objects below the new start */
            return;                 /* answered by del_persisted */
        }
        op->res->low_watermark = -1;
    }
    op->res->error_code = kh_errcode_from_st(rc);
    kh_post(ks, &op->post, op->origin, del_back, NULL, op);
}

void kh_delete_records(kh_req_t *req)
{
    kp_delete_records_request_t *q = req->msg;
    kp_delete_records_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    int nt = q->n_topics > 0 ? q->n_topics : 0;
    if (!r)
        goto oom;
    kp_delete_records_response_init(r);
    req->state = r;
    r->topics = kh_array(req, nt, sizeof(*r->topics));
    if (!r->topics)
        goto oom;
    r->n_topics = nt;
    del_op_t *ops = NULL, **tail = &ops;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        kp_delete_records_request_topic_t *qt = &q->topics[i];
        kp_delete_records_response_topic_result_t *rt = &r->topics[i];
        rt->name = qt->name;
        char *topic;
        const meta_topic_t *t = kh_topic_find(req, snap, qt->name, &topic);
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        rt->partitions = kh_array(req, np, sizeof(*rt->partitions));
        if (!rt->partitions) {
            meta_snap_put(snap);
            goto oom;
        }
        rt->n_partitions = np;
        for (int j = 0; j < np; j++) {
            kp_delete_records_request_partition_t *qp = &qt->partitions[j];
            kp_delete_records_response_partition_result_t *rp = &rt->partitions[j];
            kp_delete_records_response_partition_result_init(rp);
            rp->partition_index = qp->partition_index;
            rp->low_watermark = -1;
            if (!t || qp->partition_index < 0 || qp->partition_index >= t->n_partitions) {
                rp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (qp->offset < -1) {
                rp->error_code = KP_ERR_OFFSET_OUT_OF_RANGE;
                continue;
            }
            del_op_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
            if (!op || !topic) {
                meta_snap_put(snap);
                goto oom;
            }
            *op = (del_op_t){.req = req,
                             .origin = rt_shard_id(req->ks->sh),
                             .topic = topic,
                             .partition = qp->partition_index,
                             .offset = qp->offset,
                             .res = rp};
            *tail = op;
            tail = &op->next;
        }
    }
    meta_snap_put(snap);
    /* Only now, with the whole response built, do ops go out (as Produce). */
    kh_req_op_out(req); /* the hold */
    for (del_op_t *op = ops, *next; op; op = next) {
        next = op->next;
        kh_req_op_out(req);
        kh_post(req->ks, &op->post, kh_owner(req->ks, op->topic, op->partition), del_run,
                del_closed, op);
    }
    if (kh_req_op_back(req))
        kh_respond(req, r);
    return;
oom:
    kh_fail_conn(req, "out of memory"); /* nothing was posted */
}
