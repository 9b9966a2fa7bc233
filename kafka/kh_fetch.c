/* kh_fetch.c - Fetch (with long poll), ListOffsets, OffsetForLeaderEpoch.
 * Data path: connection shard decodes -> one read op per partition posted to
 * its owner -> owner: plog_read() finds whole batches (sequential readers hit
 * the log's read cursor, no index search) and preads them -> op posted back
 * -> when all are back: enough bytes (min_bytes) or no wait left -> respond;
 * otherwise the request waits: a watch is registered on each owner, an append
 * there (kh_notify_append) or the max_wait timer re-runs the read round.
 *
 * Fetch request states:
 *   READING --all ops back, >= min_bytes or deadline--> ANSWERED
 *   READING --all ops back, < min_bytes--> WAITING (watches + timer)
 *   WAITING --notify / timer--> READING (timer: last round)
 *   WAITING --connection closed--> freed (kh_fetch_cancel)
 * Stale watches and notifications are harmless: they name a request id that
 * is looked up, never a pointer. */
#include "core/st_log.h"
#include "kafka/kh_int.h"
#include "tiering/tier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OP_FETCH, OP_LIST, OP_EPOCH, OP_WATCH } op_kind_t;

/* How long ListOffsets waits for an archived chunk (it has no max.wait.ms). */
#define KH_REMOTE_LIST_WAIT_MS 30000

typedef struct {
    kh_post_t post;
    kh_req_t *req;
    int origin;
    op_kind_t kind;
    char *topic; /* arena */
    int32_t partition;
    int64_t offset;    /* fetch offset, or ListOffsets timestamp */
    int32_t max_bytes; /* partition_max_bytes */
    uint64_t req_id;   /* OP_WATCH */
    int64_t deadline_ms;
    rt_fn back; /* runs on the origin when the op returns */
    /* results, filled on the owner */
    int16_t err;
    int64_t hw, log_start;
    uint8_t *data; /* owned (malloc), freed by the request */
    int64_t data_len;
    int64_t res_offset, res_ts;
} rop_t;

/* A watch request travelling to a partition's owner (malloc'd, freed there). */
typedef struct {
    rop_t op; /* first: op_run frees the message through it */
    char topic[256];
} watch_msg_t;

typedef struct kh_watch {
    struct kh_watch *next;
    plog_t *log;
    int origin;
    uint64_t req_id;
    int64_t deadline_ms;
} watch_t;

typedef struct {
    rop_t *ops; /* arena */
    int n_ops;
    int64_t deadline_ms;
    bool waiting;
    bool last_round;
    kp_fetch_response_t *resp;
} fstate_t;

static void fetch_state_free(kh_req_t *req)
{
    fstate_t *st = req->state;
    for (int i = 0; st && i < st->n_ops; i++) {
        free(st->ops[i].data);
        st->ops[i].data = NULL;
    }
    if (req->wait_timer) {
        uv_close((uv_handle_t *)req->wait_timer, (uv_close_cb)free);
        req->wait_timer = NULL;
    }
}

/* ---- Owner side ---- */

static void op_run(rt_shard_t *sh, void *arg);

static void send_back(kh_shard_t *ks, rop_t *op)
{
    kh_post(ks, &op->post, op->origin, op->back, op);
}

static void send_back(kh_shard_t *ks, rop_t *op);

/* The archive answered a read below the local log (tier_read). */
static void on_remote_read(void *arg, int status, uint8_t *data, size_t len)
{
    rop_t *op = arg;
    kh_shard_t *ks = kh_shard_of(rt_current());
    if (status != 0) {
        op->err = status == ST_E_RANGE ? KP_ERR_OFFSET_OUT_OF_RANGE : KP_ERR_KAFKA_STORAGE_ERROR;
        free(data);
    } else {
        op->data = data;
        op->data_len = (int64_t)len;
    }
    send_back(ks, op);
}

/* The archive answered a ListOffsets by timestamp; when it has no such
 * record, the local log is asked (the record may be newer). */
static void on_remote_time(void *arg, int status, int64_t offset, int64_t timestamp)
{
    rop_t *op = arg;
    kh_shard_t *ks = kh_shard_of(rt_current());
    op->res_offset = op->res_ts = -1;
    if (status == 0) {
        op->res_offset = offset < op->log_start ? op->log_start : offset;
        op->res_ts = timestamp;
    } else if (status == ST_E_NOTFOUND) {
        plog_t *log = part_get(ks->ps, op->topic, op->partition);
        if (!log || plog_offset_for_time(log, op->offset, &op->res_offset, &op->res_ts) != 0)
            op->res_offset = op->res_ts = -1;
    } else {
        op->err = KP_ERR_KAFKA_STORAGE_ERROR; /* the archive did not answer in time */
    }
    send_back(ks, op);
}

/* @return true when the answer comes later (from the archive). */
static bool read_partition(kh_shard_t *ks, plog_t *log, rop_t *op)
{
    op->hw = plog_end_offset(log);
    op->log_start = plog_start_offset(log);
    switch (op->kind) {
    case OP_FETCH: {
        if (op->max_bytes <= 0 || op->offset == op->hw)
            return false;
        plog_slice_t s;
        int rc = plog_read(log, op->offset, op->max_bytes, &s);
        if (rc == ST_E_OFFLOADED && ks->tier) {
            /* Answer by the fetch's own max.wait.ms; a slower download
             * goes on and fills the cache for the next fetch. */
            rc = tier_read_until(ks->tier, op->topic, op->partition, op->offset, op->max_bytes,
                                 op->deadline_ms, on_remote_read, op);
            if (rc == 0)
                return true;
        }
        if (rc != 0) {
            op->err = kh_errcode_from_st(rc);
            return false;
        }
        if (s.len > 0 && (op->data = malloc((size_t)s.len)) != NULL) {
            if (plog_slice_pread(&s, op->data) == 0) {
                op->data_len = s.len;
            } else {
                free(op->data);
                op->data = NULL;
                op->err = KP_ERR_KAFKA_STORAGE_ERROR;
            }
        }
        plog_slice_release(&s);
        return false;
    }
    case OP_LIST:
        op->res_ts = -1;
        if (op->offset == -1) { /* LATEST */
            op->res_offset = op->hw;
        } else if (op->offset == -2) { /* EARLIEST */
            op->res_offset = op->log_start;
        } else if (op->offset == -3) { /* MAX_TIMESTAMP */
            if (plog_max_timestamp(log, &op->res_ts, &op->res_offset) != 0)
                op->res_offset = -1;
        } else if (ks->tier && op->log_start < plog_local_start_offset(log) &&
                   tier_offset_for_time(ks->tier, op->topic, op->partition, op->offset,
                                        part_now_ms() + KH_REMOTE_LIST_WAIT_MS, on_remote_time,
                                        op) == 0) {
            return true; /* the archive may hold it: answered by on_remote_time */
        } else if (plog_offset_for_time(log, op->offset, &op->res_offset, &op->res_ts) != 0) {
            op->res_offset = -1;
            op->res_ts = -1;
        }
        return false;
    case OP_EPOCH:
        op->res_offset = op->hw;
        return false;
    case OP_WATCH:
        break;
    }
    return false;
}

static void prune_watches(kh_shard_t *ks, int64_t now)
{
    for (watch_t **pw = &ks->watches; *pw;) {
        if ((*pw)->deadline_ms < now) {
            watch_t *w = *pw;
            *pw = w->next;
            free(w);
        } else {
            pw = &(*pw)->next;
        }
    }
}

static void op_run(rt_shard_t *sh, void *arg)
{
    rop_t *op = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    plog_t *log = kh_local_log(ks, snap, op->topic, op->partition);
    meta_snap_put(snap);
    if (op->kind == OP_WATCH) {
        int64_t now = part_now_ms();
        prune_watches(ks, now);
        /* Data may have arrived since the read: then wake at once. */
        watch_t *w = log ? malloc(sizeof(*w)) : NULL;
        if (w) {
            *w = (watch_t){ks->watches, log, op->origin, op->req_id, op->deadline_ms};
            ks->watches = w;
            if (plog_end_offset(log) > op->offset)
                kh_notify_append(ks, log);
        }
        free(op); /* a watch_msg_t: watches are not answered */
        return;
    }
    if (!log)
        op->err = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    else if (read_partition(ks, log, op))
        return; /* answered by on_remote_read */
    send_back(ks, op);
}

typedef struct {
    kh_post_t post;
    uint64_t req_id;
} notify_t;

static void on_notify(rt_shard_t *sh, void *arg);

void kh_notify_append(kh_shard_t *ks, plog_t *log)
{
    for (watch_t **pw = &ks->watches; *pw;) {
        watch_t *w = *pw;
        if (w->log != log) {
            pw = &w->next;
            continue;
        }
        *pw = w->next;
        notify_t *n = malloc(sizeof(*n));
        if (n) {
            n->req_id = w->req_id;
            kh_post(ks, &n->post, w->origin, on_notify, n);
        }
        free(w);
    }
}

/* ---- Origin side: Fetch ---- */

static void fetch_round(kh_req_t *req);
static void fetch_answer(kh_req_t *req);

static void waiting_remove(kh_shard_t *ks, kh_req_t *req)
{
    for (kh_req_t **p = &ks->waiting; *p; p = &(*p)->next_waiting) {
        if (*p == req) {
            *p = req->next_waiting;
            break;
        }
    }
    req->next_waiting = NULL;
}

static void wake(kh_req_t *req, bool last)
{
    fstate_t *st = req->state;
    if (!st->waiting)
        return;
    st->waiting = false;
    st->last_round = last;
    waiting_remove(req->ks, req);
    if (req->wait_timer)
        uv_timer_stop(req->wait_timer);
    fetch_round(req);
}

static void on_notify(rt_shard_t *sh, void *arg)
{
    notify_t *n = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    for (kh_req_t *r = ks->waiting; r; r = r->next_waiting) {
        if (r->id == n->req_id) {
            wake(r, false);
            break;
        }
    }
    free(n);
}

void kh_fetch_free_watches(kh_shard_t *ks)
{
    prune_watches(ks, INT64_MAX);
}

void kh_fetch_wake_all(kh_shard_t *ks)
{
    while (ks->waiting)
        wake(ks->waiting, true);
}

static void on_wait_timeout(uv_timer_t *t)
{
    wake(t->data, true);
}

void kh_fetch_cancel(kh_req_t *req)
{
    if (!req->api || req->api->api_key != KP_API_FETCH || !req->state)
        return;
    fstate_t *st = req->state;
    if (!st->waiting)
        return; /* ops are out: the request frees itself when they return */
    st->waiting = false;
    waiting_remove(req->ks, req);
    kh_no_response(req); /* conn is NULL: this frees the request */
}

static void fetch_op_back(rt_shard_t *sh, void *arg)
{
    rop_t *op = arg;
    kh_req_t *req = op->req;
    (void)sh;
    if (--req->pending > 0)
        return;
    fstate_t *st = req->state;
    kp_fetch_request_t *q = req->msg;
    int64_t total = 0;
    bool err = false;
    for (int i = 0; i < st->n_ops; i++) {
        total += st->ops[i].data_len;
        err |= st->ops[i].err != 0;
    }
    int64_t now = part_now_ms();
    if (!req->conn || total >= q->min_bytes || err || st->last_round || q->max_wait_ms <= 0 ||
        now >= st->deadline_ms) {
        fetch_answer(req);
        return;
    }
    /* Long poll: wait for an append on any partition, or the deadline. */
    for (int i = 0; i < st->n_ops; i++) {
        free(st->ops[i].data);
        st->ops[i].data = NULL;
    }
    st->waiting = true;
    req->next_waiting = req->ks->waiting;
    req->ks->waiting = req;
    if (!req->wait_timer) {
        req->wait_timer = malloc(sizeof(uv_timer_t));
        if (!req->wait_timer) {
            wake(req, true);
            return;
        }
        uv_timer_init(rt_shard_loop(req->ks->sh), req->wait_timer);
        req->wait_timer->data = req;
    }
    uv_timer_start(req->wait_timer, on_wait_timeout, (uint64_t)(st->deadline_ms - now), 0);
    for (int i = 0; i < st->n_ops; i++) {
        if (!st->ops[i].topic || st->ops[i].err)
            continue;
        /* Watch messages are owned by themselves, not by the request: the
         * request may be gone (connection closed) before the owner runs them. */
        watch_msg_t *m = malloc(sizeof(*m));
        if (!m)
            continue;
        m->op = st->ops[i];
        snprintf(m->topic, sizeof(m->topic), "%s", st->ops[i].topic);
        rop_t *w = &m->op;
        w->topic = m->topic;
        w->req = NULL;
        w->kind = OP_WATCH;
        w->req_id = req->id;
        w->deadline_ms = st->deadline_ms;
        w->data = NULL;
        kh_post(req->ks, &w->post, kh_owner(req->ks, w->topic, w->partition), op_run, w);
    }
}

static void fetch_round(kh_req_t *req)
{
    fstate_t *st = req->state;
    req->pending = 1;
    for (int i = 0; i < st->n_ops; i++) {
        rop_t *op = &st->ops[i];
        op->err = 0;
        op->data_len = 0;
        if (!op->topic) /* unknown topic, answered from the snapshot */
            continue;
        req->pending++;
        kh_post(req->ks, &op->post, kh_owner(req->ks, op->topic, op->partition), op_run, op);
    }
    rop_t hold = {.req = req};
    fetch_op_back(req->ks->sh, &hold);
}

static void fetch_answer(kh_req_t *req)
{
    fstate_t *st = req->state;
    kp_fetch_request_t *q = req->msg;
    kp_fetch_response_t *r = st->resp;
    int64_t budget = q->max_bytes > 0 ? q->max_bytes : INT32_MAX;
    int64_t used = 0;
    int k = 0;
    for (int i = 0; i < r->n_responses; i++) {
        kp_fetch_response_fetchable_topic_response_t *rt = &r->responses[i];
        for (int j = 0; j < rt->n_partitions; j++, k++) {
            kp_fetch_response_partition_data_t *rp = &rt->partitions[j];
            rop_t *op = &st->ops[k];
            if (!op->topic)
                continue; /* error already set */
            rp->error_code = op->err;
            rp->high_watermark = rp->last_stable_offset = op->hw;
            rp->log_start_offset = op->log_start;
            if (op->data_len > 0 && (used == 0 || used + op->data_len <= budget)) {
                rp->records = (kp_bytes_t){op->data, (int32_t)op->data_len};
                used += op->data_len;
            } else {
                rp->records = (kp_bytes_t){(const uint8_t *)"", 0};
            }
            st_metric_topic(ST_T_FETCH_REQUESTS, op->topic, (uint64_t)rp->records.len);
        }
    }
    kh_respond(req, r);
}

void kh_fetch(kh_req_t *req)
{
    kp_fetch_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    fstate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    kp_fetch_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!st || !r)
        goto oom;
    req->state = st;
    req->state_free = fetch_state_free;
    kp_fetch_response_init(r);
    st->resp = r;
    st->deadline_ms = part_now_ms() + (q->max_wait_ms > 0 ? q->max_wait_ms : 0);
    if (q->session_id != 0) {
        r->error_code = KP_ERR_FETCH_SESSION_ID_NOT_FOUND;
        kh_respond(req, r);
        return;
    }
    int nt = q->n_topics > 0 ? q->n_topics : 0, n_ops = 0;
    for (int i = 0; i < nt; i++)
        n_ops += q->topics[i].n_partitions > 0 ? q->topics[i].n_partitions : 0;
    r->responses = kh_array(req, nt, sizeof(*r->responses));
    st->ops = kh_array(req, n_ops, sizeof(*st->ops));
    if (!r->responses || !st->ops)
        goto oom;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        kp_fetch_request_topic_t *qt = &q->topics[i];
        kp_fetch_response_fetchable_topic_response_t *rt = &r->responses[r->n_responses++];
        rt->topic = qt->topic;
        rt->topic_id = qt->topic_id;
        const meta_topic_t *t = v >= 13 ? meta_snap_find_id(snap, qt->topic_id.b)
                                : qt->topic.len >= 0
                                    ? meta_snap_find(snap, qt->topic.ptr, (size_t)qt->topic.len)
                                    : NULL;
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        rt->partitions = kh_array(req, np, sizeof(*rt->partitions));
        if (!rt->partitions) {
            meta_snap_put(snap);
            goto oom;
        }
        rt->n_partitions = np;
        char *topic = t ? kh_cstr(req, kp_str_from_cstr(t->name)) : NULL;
        for (int j = 0; j < np; j++) {
            kp_fetch_request_partition_t *qp = &qt->partitions[j];
            kp_fetch_response_partition_data_t *rp = &rt->partitions[j];
            kp_fetch_response_partition_data_init(rp);
            rp->partition_index = qp->partition;
            rp->records = (kp_bytes_t){(const uint8_t *)"", 0};
            rop_t *op = &st->ops[st->n_ops++];
            if (!t || qp->partition < 0 || qp->partition >= t->n_partitions) {
                rp->error_code =
                    v >= 13 && !t ? KP_ERR_UNKNOWN_TOPIC_ID : KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            op->req = req;
            op->origin = rt_shard_id(req->ks->sh);
            op->kind = OP_FETCH;
            op->back = fetch_op_back;
            op->deadline_ms = st->deadline_ms;
            op->topic = topic;
            op->partition = qp->partition;
            op->offset = qp->fetch_offset;
            op->max_bytes = qp->partition_max_bytes;
        }
    }
    meta_snap_put(snap);
    fetch_round(req);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

/* ---- ListOffsets and OffsetForLeaderEpoch: one round, no wait ---- */

typedef struct {
    rop_t *ops;
    int n_ops;
    void *resp;
} lstate_t;

static void list_back(rt_shard_t *sh, void *arg)
{
    rop_t *op = arg;
    kh_req_t *req = op->req;
    (void)sh;
    if (--req->pending > 0)
        return;
    lstate_t *st = req->state;
    if (req->api->api_key == KP_API_LIST_OFFSETS) {
        kp_list_offsets_response_t *r = st->resp;
        int k = 0;
        for (int i = 0; i < r->n_topics; i++) {
            for (int j = 0; j < r->topics[i].n_partitions; j++, k++) {
                kp_list_offsets_response_partition_response_t *rp = &r->topics[i].partitions[j];
                rop_t *o = &st->ops[k];
                if (!o->topic)
                    continue;
                int16_t v = req->hdr.request_api_version;
                rp->error_code = o->err;
                if (v >= 1) {
                    rp->offset = o->err ? -1 : o->res_offset;
                    rp->timestamp = o->err ? -1 : o->res_ts;
                }
                if (v >= 4)
                    rp->leader_epoch = o->err ? -1 : 0;
                if (v == 0 && !o->err) {
                    rp->old_style_offsets = &o->res_offset;
                    rp->n_old_style_offsets = o->res_offset >= 0 ? 1 : 0;
                }
            }
        }
    } else {
        kp_offset_for_leader_epoch_response_t *r = st->resp;
        int k = 0;
        for (int i = 0; i < r->n_topics; i++) {
            for (int j = 0; j < r->topics[i].n_partitions; j++, k++) {
                kp_offset_for_leader_epoch_response_epoch_end_offset_t *rp =
                    &r->topics[i].partitions[j];
                rop_t *o = &st->ops[k];
                if (!o->topic)
                    continue;
                rp->error_code = o->err;
                /* One leader epoch (0) so far: its end is the log end. */
                rp->leader_epoch = o->err ? -1 : 0;
                rp->end_offset = o->err || o->offset > 0 ? -1 : o->res_offset;
            }
        }
    }
    kh_respond(req, st->resp);
}

/* Post the ops of a list-style request; ops without a topic are skipped. */
static void list_round(kh_req_t *req)
{
    lstate_t *st = req->state;
    req->pending = 1;
    for (int i = 0; i < st->n_ops; i++) {
        rop_t *op = &st->ops[i];
        if (!op->topic)
            continue;
        op->req = req;
        op->origin = rt_shard_id(req->ks->sh);
        op->back = list_back;
        req->pending++;
        kh_post(req->ks, &op->post, kh_owner(req->ks, op->topic, op->partition), op_run, op);
    }
    rop_t hold = {.req = req};
    list_back(req->ks->sh, &hold);
}

void kh_list_offsets(kh_req_t *req)
{
    kp_list_offsets_request_t *q = req->msg;
    lstate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    kp_list_offsets_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    int nt = q->n_topics > 0 ? q->n_topics : 0, n = 0;
    for (int i = 0; i < nt; i++)
        n += q->topics[i].n_partitions > 0 ? q->topics[i].n_partitions : 0;
    if (!st || !r)
        goto oom;
    kp_list_offsets_response_init(r);
    st->resp = r;
    req->state = st;
    st->ops = kh_array(req, n, sizeof(*st->ops));
    r->topics = kh_array(req, nt, sizeof(*r->topics));
    if (!st->ops || !r->topics)
        goto oom;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        kp_list_offsets_request_topic_t *qt = &q->topics[i];
        kp_list_offsets_response_topic_response_t *rt = &r->topics[r->n_topics++];
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
            kp_list_offsets_response_partition_response_t *rp = &rt->partitions[j];
            kp_list_offsets_response_partition_response_init(rp);
            rp->partition_index = qt->partitions[j].partition_index;
            rop_t *op = &st->ops[st->n_ops++];
            if (!t || rp->partition_index < 0 || rp->partition_index >= t->n_partitions) {
                rp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            op->kind = OP_LIST;
            op->topic = topic;
            op->partition = rp->partition_index;
            op->offset = qt->partitions[j].timestamp;
        }
    }
    meta_snap_put(snap);
    list_round(req);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

void kh_offset_for_leader_epoch(kh_req_t *req)
{
    kp_offset_for_leader_epoch_request_t *q = req->msg;
    lstate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    kp_offset_for_leader_epoch_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    int nt = q->n_topics > 0 ? q->n_topics : 0, n = 0;
    for (int i = 0; i < nt; i++)
        n += q->topics[i].n_partitions > 0 ? q->topics[i].n_partitions : 0;
    if (!st || !r)
        goto oom;
    kp_offset_for_leader_epoch_response_init(r);
    st->resp = r;
    req->state = st;
    st->ops = kh_array(req, n, sizeof(*st->ops));
    r->topics = kh_array(req, nt, sizeof(*r->topics));
    if (!st->ops || !r->topics)
        goto oom;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        kp_offset_for_leader_epoch_request_offset_for_leader_topic_t *qt = &q->topics[i];
        kp_offset_for_leader_epoch_response_offset_for_leader_topic_result_t *rt =
            &r->topics[r->n_topics++];
        rt->topic = qt->topic;
        char *topic;
        const meta_topic_t *t = kh_topic_find(req, snap, qt->topic, &topic);
        int np = qt->n_partitions > 0 ? qt->n_partitions : 0;
        rt->partitions = kh_array(req, np, sizeof(*rt->partitions));
        if (!rt->partitions) {
            meta_snap_put(snap);
            goto oom;
        }
        rt->n_partitions = np;
        for (int j = 0; j < np; j++) {
            kp_offset_for_leader_epoch_response_epoch_end_offset_t *rp = &rt->partitions[j];
            kp_offset_for_leader_epoch_response_epoch_end_offset_init(rp);
            rp->partition = qt->partitions[j].partition;
            rop_t *op = &st->ops[st->n_ops++];
            if (!t || rp->partition < 0 || rp->partition >= t->n_partitions) {
                rp->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                rp->leader_epoch = -1;
                rp->end_offset = -1;
                continue;
            }
            op->kind = OP_EPOCH;
            op->topic = topic;
            op->partition = rp->partition;
            op->offset = qt->partitions[j].leader_epoch; /* > 0: an epoch we never had */
        }
    }
    meta_snap_put(snap);
    list_round(req);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}
