/* kh_fetch.c - Fetch (with long poll), ListOffsets, OffsetForLeaderEpoch.
 * Data path: connection shard decodes -> one read op per partition posted to
 * its owner -> owner: plog_read() finds whole batches (sequential readers hit
 * the log's read cursor, no index search) and preads them -> op posted back
 * -> when all are back: enough bytes (min_bytes) or no wait left -> respond;
 * otherwise the request waits: a watch is registered on each owner, an append
 * there (kh_notify_append) or the max_wait timer re-runs the read round.
 *
 * Budget (Kafka's KIP-74, see "Origin side: Fetch"): a response holds at most
 * min(max_bytes, fetch.max.bytes) bytes, except the first batch of the first
 * non-empty partition, spent while reading: a read is posted with its share
 * (grant), never with the client's partition_max_bytes alone. A partition
 * named twice is read once; the serving order rotates per connection. A
 * connection reads for one Fetch at a time (later ones are parked until it
 * answered) and the budget leaves out the connection's unsent bytes.
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

/* A Fetch partition read within one round: IDLE --posted--> POSTED --back--> BACK. */
enum { FOP_IDLE, FOP_POSTED, FOP_BACK };

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
    int64_t grant;     /* OP_FETCH: bytes this read may return (its share of the budget) */
    bool min_one;      /* OP_FETCH: return the first batch even when larger than grant */
    bool committed;    /* OP_FETCH, OP_LIST: isolation_level=READ_COMMITTED */
    bool too_big;      /* OP_FETCH: only a batch larger than grant was found (none returned) */
    bool stale;        /* OP_FETCH: posted before a rollback: its answer is dropped */
    bool sendfile;     /* OP_FETCH: the connection sends file ranges (no TLS): keep the slice */
    uint8_t fstate;    /* OP_FETCH: FOP_* */
    uint64_t key;      /* OP_FETCH: hash of (topic, partition), the rotation cursor */
    kp_fetch_response_partition_data_t *rp; /* OP_FETCH: its response entry (arena) */
    uint64_t req_id;                        /* OP_WATCH */
    int64_t deadline_ms;
    rt_fn back; /* runs on the origin when the op returns */
    /* results, filled on the owner */
    int16_t err;
    int64_t hw, log_start;
    int64_t lso;                                      /* OP_FETCH: last stable offset */
    kp_fetch_response_aborted_transaction_t *aborted; /* owned (malloc): read_committed */
    int n_aborted;
    uint8_t *data; /* owned (malloc), freed by the request */
    int64_t data_len;
    /* OP_FETCH: the records as a segment file range (data is NULL then), sent with
     * sendfile by the connection; the segment ref is owned, released by the request */
    plog_slice_t slice;
    uv_work_t work; /* OP_FETCH: the thread-pool read of pages not in the page cache */
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
    rop_t *ops; /* arena: one per distinct partition, in response order */
    int n_ops;
    int *order; /* arena: serving order of the ops with a topic (rotated) */
    int n_order;
    int next;       /* order[next] is the next read to post this round */
    int settled;    /* order[0, settled) are final this round */
    int64_t budget; /* min(max_bytes, fetch.max.bytes) */
    int64_t min_bytes;
    int64_t used;     /* bytes returned by the reads back this round */
    int64_t reserved; /* grants of the reads out */
    bool has_data;    /* a settled read returned data: no more first-batch exception */
    bool may_exceed;  /* v3+: the first batch of the first non-empty partition is whole */
    int32_t max_wait_ms;
    int64_t deadline_ms;
    kh_fetch_conn_t *fc; /* the connection's Fetch state; NULL once it closed */
    bool parked;         /* queued behind the connection's active Fetch */
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
        plog_slice_release(&st->ops[i].slice);
        free(st->ops[i].aborted);
        st->ops[i].aborted = NULL;
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
    kh_post(ks, &op->post, op->origin, op->back, NULL, op);
}

/* The owner shard closed for good before op_run ran there (shutdown): a
 * read answers on the origin as an error, a watch message frees itself. */
static void op_closed(rt_shard_t *sh, void *arg)
{
    rop_t *op = arg;
    if (op->kind == OP_WATCH) {
        free(op); /* a watch_msg_t */
        return;
    }
    op->err = KP_ERR_NOT_LEADER_OR_FOLLOWER;
    op->back(sh, op);
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

/* Thread pool: bring a slice whose pages are not all in the page cache into it
 * (sendfile), or read it into memory. */
static void cold_read(uv_work_t *w)
{
    rop_t *op = w->data;
    int rc;
    if (op->sendfile) {
        rc = plog_slice_warm(&op->slice);
    } else if (!(op->data = malloc((size_t)op->slice.len))) {
        rc = ST_E_NOMEM;
    } else if ((rc = plog_slice_pread(&op->slice, op->data)) != 0) {
        free(op->data);
        op->data = NULL;
    }
    if (rc != 0)
        op->err = KP_ERR_KAFKA_STORAGE_ERROR;
    else
        op->data_len = op->slice.len;
}

static void cold_read_done(uv_work_t *w, int status)
{
    rop_t *op = w->data;
    (void)status; /* the work always runs: nothing cancels it */
    if (op->err || !op->sendfile)
        plog_slice_release(&op->slice);
    if (op->err)
        op->data_len = 0;
    send_back(kh_shard_of(rt_current()), op);
}

/* The bytes of a slice found for op: kept as a file range for sendfile, or
 * read into memory; pages not all in the page cache are read in the thread
 * pool, never on the loop. @return true when the answer comes later. */
static bool take_slice(kh_shard_t *ks, rop_t *op, plog_slice_t *s)
{
    if (!plog_slice_cached(s)) {
        st_metric_add(ST_M_FETCH_COLD_READS, 1);
        op->slice = *s;
        op->work.data = op;
        if (uv_queue_work(rt_shard_loop(ks->sh), &op->work, cold_read, cold_read_done) == 0)
            return true;
        *s = op->slice; /* read on the loop after all */
        memset(&op->slice, 0, sizeof(op->slice));
    }
    if (op->sendfile) {
        op->slice = *s; /* the ref moves to op */
        op->data_len = s->len;
        return false;
    }
    if ((op->data = malloc((size_t)s->len)) != NULL && plog_slice_pread(s, op->data) == 0) {
        op->data_len = s->len;
    } else {
        free(op->data);
        op->data = NULL;
        op->err = KP_ERR_KAFKA_STORAGE_ERROR;
    }
    plog_slice_release(s);
    return false;
}

/* @return true when the answer comes later (from the archive or the thread pool). */
static bool read_partition(kh_shard_t *ks, plog_t *log, rop_t *op)
{
    op->hw = plog_high_watermark(log);
    op->log_start = plog_start_offset(log);
    switch (op->kind) {
    case OP_FETCH: {
        /* read_committed: nothing at or past the last stable offset. */
        op->lso = op->committed ? kh_txn_lso(ks, log) : op->hw;
        if ((op->grant <= 0 && !op->min_one) || op->offset == op->lso)
            return false;
        /* At least one byte: plog_read and tier_read return the first batch
         * whole, which min_one keeps and fetch_op_back otherwise drops. */
        int64_t limit = op->grant > 0 ? op->grant : 1;
        plog_slice_t s;
        int rc = plog_read_upto(log, op->offset, limit, op->lso, &s);
        if (op->committed && (rc == 0 || rc == ST_E_OFFLOADED) &&
            (kh_txn_aborted(ks, log, op->offset, rc == 0 ? s.next_offset : op->lso, &op->aborted,
                            &op->n_aborted) != 0 ||
             (rc == ST_E_OFFLOADED &&
              kh_txn_aborted_archive(ks, op->topic, op->partition, op->offset, op->lso,
                                     &op->aborted, &op->n_aborted) != 0)))
            op->err = KP_ERR_UNKNOWN_SERVER_ERROR;
        if (rc == ST_E_OFFLOADED && ks->tier) {
            /* Answer by the fetch's own max.wait.ms; a slower download
             * goes on and fills the cache for the next fetch. */
            rc = tier_read_until(ks->tier, op->topic, op->partition, op->offset, limit,
                                 op->deadline_ms, on_remote_read, op);
            if (rc == 0)
                return true;
        }
        if (rc != 0) {
            op->err = kh_errcode_from_st(rc);
            return false;
        }
        if (s.len > op->grant && !op->min_one)
            op->too_big = true; /* not read: the origin would drop it */
        else if (s.len > 0)
            return take_slice(ks, op, &s);
        plog_slice_release(&s);
        return false;
    }
    case OP_LIST:
        op->res_ts = -1;
        if (op->offset == -1) { /* LATEST (read_committed: the last stable offset) */
            op->res_offset = op->committed ? kh_txn_lso(ks, log) : op->hw;
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
        /* Data may have arrived since the read: then wake at once. Compared with the high
         * watermark the read saw, not the fetch offset: data already there that could not
         * make min_bytes would otherwise wake the fetch again and again (a busy loop). */
        watch_t *w = log ? malloc(sizeof(*w)) : NULL;
        if (w) {
            *w = (watch_t){ks->watches, log, op->origin, op->req_id, op->deadline_ms};
            ks->watches = w;
            if (plog_high_watermark(log) > op->hw)
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

/* The watcher's shard closed for good (shutdown): nobody waits any more. */
static void notify_closed(rt_shard_t *sh, void *arg)
{
    (void)sh;
    free(arg);
}

void kh_fetch_on_hw(void *arg, plog_t *log)
{
    kh_notify_append(arg, log);
}

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
            kh_post(ks, &n->post, w->origin, on_notify, notify_closed, n);
        }
        free(w);
    }
}

/* ---- Origin side: Fetch ----
 * The budget (Kafka's KIP-74): partitions are served in order, each may
 * return min(partition_max_bytes, what the earlier ones left of max_bytes),
 * and only the first non-empty partition may exceed that with its first batch
 * (v3+). Reads run in parallel while the budget left after every read still
 * out covers a partition's whole partition_max_bytes (its limit cannot depend
 * on the reads before it); otherwise the partition waits for them. A read
 * that found only a batch larger than its limit returns nothing; if every
 * partition before it turns out empty, it is read again with the first-batch
 * exception and the reads after it, made under a wrong assumption, are
 * dropped and made again. So a request holds at most its budget plus one
 * batch, whatever partition_max_bytes says. */

static void fetch_round(kh_req_t *req);
static void fetch_answer(kh_req_t *req);
static void fetch_pump(kh_req_t *req);
static void fetch_start(kh_req_t *req);

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
    kh_fetch_conn_t *fc = st->fc;
    st->fc = NULL;    /* the connection is going away */
    if (st->parked) { /* never started: nothing is out */
        for (kh_req_t **p = &fc->parked; *p; p = &(*p)->next_waiting) {
            if (*p == req) {
                *p = req->next_waiting;
                break;
            }
        }
        req->next_waiting = NULL;
        st->parked = false;
        kh_no_response(req); /* conn is NULL: this frees the request */
        return;
    }
    if (fc && fc->active == req)
        fc->active = NULL;
    if (!st->waiting)
        return; /* ops are out: the request frees itself when they return */
    st->waiting = false;
    waiting_remove(req->ks, req);
    kh_no_response(req); /* conn is NULL: this frees the request */
}

static void op_drop_data(rop_t *op)
{
    free(op->data);
    op->data = NULL;
    plog_slice_release(&op->slice);
    op->data_len = 0;
    free(op->aborted);
    op->aborted = NULL;
    op->n_aborted = 0;
}

static void fetch_op_back(rt_shard_t *sh, void *arg)
{
    rop_t *op = arg;
    kh_req_t *req = op->req;
    fstate_t *st = req->state;
    (void)sh;
    /* A fetch finishes only once no read is out (fetch_pump): req is live. */
    (void)kh_req_op_back(req);
    st->reserved -= op->grant;
    op->fstate = FOP_BACK;
    if (op->stale) { /* made before a rollback: made again later */
        op_drop_data(op);
        op->stale = false;
        op->fstate = FOP_IDLE;
    } else {
        if (op->data_len > op->grant && !op->min_one) {
            op_drop_data(op); /* only a batch larger than its limit */
            op->too_big = true;
        }
        st->used += op->data_len;
    }
    fetch_pump(req);
}

/* The first partition that returned data was read without the first-batch
 * exception: read it again with it, and drop what was read after it. */
static void fetch_rollback(fstate_t *st, int pos)
{
    for (int i = pos + 1; i < st->next; i++) {
        rop_t *op = &st->ops[st->order[i]];
        if (op->fstate == FOP_POSTED) {
            op->stale = true;
        } else {
            st->used -= op->data_len;
            op_drop_data(op);
            op->too_big = false;
            op->fstate = FOP_IDLE;
        }
    }
    rop_t *op = &st->ops[st->order[pos]];
    op->too_big = false;
    op->fstate = FOP_IDLE;
    st->next = pos;
}

/* Post the read of op with its share of the budget. */
static void fetch_post(kh_req_t *req, rop_t *op, int64_t grant, bool min_one)
{
    fstate_t *st = req->state;
    op->grant = grant;
    op->min_one = min_one;
    op->fstate = FOP_POSTED;
    st->reserved += grant;
    kh_req_op_out(req);
    kh_post(req->ks, &op->post, kh_owner(req->ks, op->topic, op->partition), op_run, op_closed, op);
}

static void fetch_round_done(kh_req_t *req);

static void fetch_pump(kh_req_t *req)
{
    fstate_t *st = req->state;
    if (!req->conn) { /* nobody to answer: wait for the reads out, then free */
        if (req->pending == 0)
            fetch_answer(req);
        return;
    }
    while (st->settled < st->next) {
        rop_t *op = &st->ops[st->order[st->settled]];
        if (op->fstate != FOP_BACK)
            break;
        if (op->too_big && !st->has_data && st->may_exceed) {
            fetch_rollback(st, st->settled);
            break;
        }
        st->has_data |= op->data_len > 0;
        st->settled++;
    }
    while (st->next < st->n_order) {
        rop_t *op = &st->ops[st->order[st->next]];
        if (op->fstate == FOP_POSTED)
            break; /* its dropped read is still out */
        int64_t pmax = op->max_bytes > 0 ? op->max_bytes : 0;
        if (st->settled == st->next) { /* every partition before it is final */
            int64_t left = st->budget - st->used;
            fetch_post(req, op, left < pmax ? (left > 0 ? left : 0) : pmax,
                       st->may_exceed && !st->has_data);
        } else if (st->budget - st->used - st->reserved >= pmax) {
            fetch_post(req, op, pmax, false);
        } else {
            break;
        }
        st->next++;
    }
    if (st->settled == st->n_order && req->pending == 0)
        fetch_round_done(req);
}

static void fetch_round_done(kh_req_t *req)
{
    fstate_t *st = req->state;
    bool err = false;
    for (int i = 0; i < st->n_ops; i++)
        err |= st->ops[i].err != 0;
    int64_t now = part_now_ms();
    if (st->used >= st->min_bytes || err || st->last_round || st->max_wait_ms <= 0 ||
        now >= st->deadline_ms) {
        fetch_answer(req);
        return;
    }
    /* Long poll: wait for an append on any partition, or the deadline. */
    for (int i = 0; i < st->n_ops; i++)
        op_drop_data(&st->ops[i]);
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
        kh_post(req->ks, &w->post, kh_owner(req->ks, w->topic, w->partition), op_run, op_closed, w);
    }
}

static void fetch_round(kh_req_t *req)
{
    fstate_t *st = req->state;
    for (int i = 0; i < st->n_ops; i++) {
        rop_t *op = &st->ops[i];
        op->err = 0;
        op->data_len = 0;
        op->grant = 0;
        op->too_big = op->stale = false;
        op->fstate = FOP_IDLE;
        op->deadline_ms = st->deadline_ms;
    }
    st->next = st->settled = 0;
    st->used = st->reserved = 0;
    st->has_data = false;
    fetch_pump(req);
}

static void fetch_answer(kh_req_t *req)
{
    fstate_t *st = req->state;
    /* Records are not copied into the response (kh_int.h, "Zero-copy"):
     * file ranges are sent from the segment files, and records in memory (read
     * from a segment, or decoded from the archive) are sent, or over TLS
     * encrypted, from where they are. */
    int n_ext = 0;
    for (int i = 0; i < st->n_ops; i++)
        n_ext += st->ops[i].slice.seg != NULL || (st->ops[i].data && st->ops[i].data_len > 0);
    kp_ext_t *ext = n_ext && req->conn ? kh_array(req, n_ext, sizeof(*ext)) : NULL;
    if (n_ext && req->conn && !ext) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    n_ext = 0;
    for (int i = 0; i < st->n_ops; i++) {
        rop_t *op = &st->ops[i];
        kp_fetch_response_partition_data_t *rp = op->rp;
        if (!op->topic)
            continue; /* error already set */
        rp->error_code = op->err;
        rp->high_watermark = op->hw;
        rp->last_stable_offset = op->err ? op->hw : op->lso;
        rp->log_start_offset = op->log_start;
        if (op->data_len > 0 && op->slice.seg && ext) {
            rp->records = (kp_bytes_t){(const uint8_t *)&op->slice, (int32_t)op->data_len};
            ext[n_ext++] = (kp_ext_t){.token = rp->records.ptr, .len = rp->records.len};
        } else if (op->data_len > 0 && op->data) {
            rp->records = (kp_bytes_t){op->data, (int32_t)op->data_len};
            if (ext)
                ext[n_ext++] =
                    (kp_ext_t){.token = op->data, .len = rp->records.len, .is_mem = true};
        }
        if (op->committed && op->n_aborted > 0) {
            rp->aborted_transactions = op->aborted;
            rp->n_aborted_transactions = op->n_aborted;
        }
        st_metric_topic(ST_T_FETCH_REQUESTS, op->topic, (uint64_t)rp->records.len);
    }
    /* The next fetch on this connection starts after the last partition
     * served with data, so a budget smaller than the data starves nobody. */
    kh_fetch_conn_t *fc = st->fc;
    for (int i = st->n_order - 1; fc && i >= 0; i--) {
        if (st->ops[st->order[i]].data_len > 0) {
            fc->cursor = st->ops[st->order[i]].key;
            break;
        }
    }
    if (fc && fc->active == req)
        fc->active = NULL;
    st->fc = NULL;
    kp_writer_set_ext(&req->out, ext, n_ext);
    kh_respond(req, st->resp); /* may free req, or close the connection */
    /* The connection's next Fetch reads now (a close above cancelled them). */
    if (fc && !fc->active && fc->parked) {
        kh_req_t *next = fc->parked;
        fc->parked = next->next_waiting;
        next->next_waiting = NULL;
        ((fstate_t *)next->state)->parked = false;
        fc->active = next;
        fetch_start(next);
    }
}

/* ---- Fetch request: duplicates, response layout, serving order ---- */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

/* The name (v0-12) or id (v13+) of request topic i, hashed. */
static uint64_t topic_hash(const kp_fetch_request_topic_t *qt, bool by_id)
{
    if (by_id)
        return hash_bytes(HASH_SEED, qt->topic_id.b, sizeof(qt->topic_id.b));
    return hash_bytes(HASH_SEED, qt->topic.ptr, qt->topic.len > 0 ? (size_t)qt->topic.len : 0);
}

static bool
topic_same(const kp_fetch_request_topic_t *a, const kp_fetch_request_topic_t *b, bool by_id)
{
    if (by_id)
        return !memcmp(a->topic_id.b, b->topic_id.b, sizeof(a->topic_id.b));
    return kp_str_eq(a->topic, b->topic);
}

/* An open-addressing table of n_slots (a power of two) int slots, all -1. */
static int *slots_new(kh_req_t *req, int n_items, uint32_t *mask)
{
    uint32_t n = 16;
    while (n < 2u * (uint32_t)n_items)
        n *= 2;
    int *t = kh_array(req, (int32_t)n, sizeof(int));
    if (t)
        memset(t, 0xff, n * sizeof(int));
    *mask = n - 1;
    return t;
}

/* Map each request topic to the first request topic naming the same topic. */
static int *canon_topics(kh_req_t *req, const kp_fetch_request_t *q, int nt, bool by_id)
{
    uint32_t mask;
    int *slots = slots_new(req, nt, &mask);
    int *canon = kh_array(req, nt, sizeof(int));
    if (!slots || !canon)
        return NULL;
    for (int i = 0; i < nt; i++) {
        uint32_t h = (uint32_t)topic_hash(&q->topics[i], by_id) & mask;
        while (slots[h] >= 0 && !topic_same(&q->topics[slots[h]], &q->topics[i], by_id))
            h = (h + 1) & mask;
        if (slots[h] < 0)
            slots[h] = i;
        canon[i] = slots[h];
    }
    return canon;
}

/* One op per distinct (topic, partition), in order of first appearance; a
 * repeated partition takes the later entry's offset and limit (Kafka keeps
 * a request's partitions in a map). tcanon[k]: the op's canonical topic. */
static int dedup_partitions(kh_req_t *req,
                            const kp_fetch_request_t *q,
                            int nt,
                            int n_entries,
                            const int *canon,
                            fstate_t *st,
                            int *tcanon)
{
    uint32_t mask;
    int *slots = slots_new(req, n_entries, &mask);
    if (!slots)
        return -1;
    int n = 0;
    for (int i = 0; i < nt; i++) {
        const kp_fetch_request_topic_t *qt = &q->topics[i];
        for (int j = 0; j < qt->n_partitions; j++) {
            const kp_fetch_request_partition_t *qp = &qt->partitions[j];
            uint64_t key = ((uint64_t)(uint32_t)canon[i] << 32) | (uint32_t)qp->partition;
            uint32_t h = (uint32_t)hash_bytes(HASH_SEED, &key, sizeof(key)) & mask;
            while (slots[h] >= 0 &&
                   (tcanon[slots[h]] != canon[i] || st->ops[slots[h]].partition != qp->partition))
                h = (h + 1) & mask;
            if (slots[h] < 0) {
                slots[h] = n;
                tcanon[n] = canon[i];
                st->ops[n++].partition = qp->partition;
            }
            rop_t *op = &st->ops[slots[h]];
            op->offset = qp->fetch_offset;
            op->max_bytes = qp->partition_max_bytes;
            op->committed = q->isolation_level == 1;
        }
    }
    st->n_ops = n;
    return 0;
}

/* Response topics: one per run of ops of the same topic (as Kafka groups). */
static int fetch_layout(kh_req_t *req, const kp_fetch_request_t *q, fstate_t *st, const int *tcanon)
{
    kp_fetch_response_t *r = st->resp;
    int runs = 0;
    for (int k = 0; k < st->n_ops; k++)
        runs += k == 0 || tcanon[k] != tcanon[k - 1];
    r->responses = kh_array(req, runs, sizeof(*r->responses));
    if (!r->responses)
        return -1;
    for (int k = 0; k < st->n_ops;) {
        int e = k + 1;
        while (e < st->n_ops && tcanon[e] == tcanon[k])
            e++;
        kp_fetch_response_fetchable_topic_response_t *rt = &r->responses[r->n_responses++];
        rt->topic = q->topics[tcanon[k]].topic;
        rt->topic_id = q->topics[tcanon[k]].topic_id;
        rt->partitions = kh_array(req, e - k, sizeof(*rt->partitions));
        if (!rt->partitions)
            return -1;
        for (; k < e; k++) {
            kp_fetch_response_partition_data_t *rp = &rt->partitions[rt->n_partitions++];
            kp_fetch_response_partition_data_init(rp);
            rp->partition_index = st->ops[k].partition;
            rp->records = (kp_bytes_t){(const uint8_t *)"", 0};
            st->ops[k].rp = rp;
        }
    }
    return 0;
}

/* Serving order: the known partitions in request order, starting after the
 * one that last returned data on this connection. */
static int fetch_order(kh_req_t *req, fstate_t *st)
{
    st->order = kh_array(req, st->n_ops, sizeof(int));
    if (!st->order)
        return -1;
    int start = 0;
    uint64_t cursor = st->fc ? st->fc->cursor : 0;
    for (int k = 0; k < st->n_ops; k++) {
        if (!st->ops[k].topic)
            continue;
        if (cursor && st->ops[k].key == cursor)
            start = st->n_order + 1;
        st->order[st->n_order++] = k;
    }
    if (st->n_order > 0 && start % st->n_order) {
        int *rot = kh_array(req, st->n_order, sizeof(int));
        if (!rot)
            return -1;
        for (int i = 0; i < st->n_order; i++)
            rot[i] = st->order[(start + i) % st->n_order];
        st->order = rot;
    }
    return 0;
}

void kh_fetch(kh_req_t *req)
{
    kp_fetch_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    bool by_id = v >= 13;
    fstate_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    kp_fetch_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!st || !r)
        goto oom;
    memset(st, 0, sizeof(*st));
    req->state = st;
    req->state_free = fetch_state_free;
    kp_fetch_response_init(r);
    st->resp = r;
    st->max_wait_ms = q->max_wait_ms;
    st->deadline_ms = part_now_ms() + (q->max_wait_ms > 0 ? q->max_wait_ms : 0);
    /* Kafka: min(max_bytes, fetch.max.bytes); v0-2 have no max_bytes and no
     * first-batch exception. */
    int64_t cap = req->ks->ctx->fetch_max_bytes > 0 ? req->ks->ctx->fetch_max_bytes : INT32_MAX;
    st->budget = v >= 3 && q->max_bytes < cap ? q->max_bytes : cap;
    if (st->budget < 0)
        st->budget = 0;
    st->min_bytes = q->min_bytes < st->budget ? q->min_bytes : st->budget;
    st->may_exceed = v >= 3;
    if (q->session_id != 0) {
        r->error_code = KP_ERR_FETCH_SESSION_ID_NOT_FOUND;
        kh_respond(req, r);
        return;
    }
    int nt = q->n_topics > 0 ? q->n_topics : 0, n_ops = 0;
    for (int i = 0; i < nt; i++) {
        if (q->topics[i].n_partitions < 0)
            q->topics[i].n_partitions = 0;
        n_ops += q->topics[i].n_partitions;
    }
    /* st->n_ops stays 0 until the ops exist: fetch_state_free walks them. */
    st->ops = kh_array(req, n_ops, sizeof(*st->ops));
    int *tcanon = kh_array(req, n_ops, sizeof(int));
    int *canon = canon_topics(req, q, nt, by_id);
    if (!st->ops || !tcanon || !canon ||
        dedup_partitions(req, q, nt, n_ops, canon, st, tcanon) != 0 ||
        fetch_layout(req, q, st, tcanon) != 0)
        goto oom;
    /* Resolve each distinct topic once. */
    const meta_topic_t **tops = kh_array(req, nt, sizeof(*tops));
    char **names = kh_array(req, nt, sizeof(*names));
    if (!tops || !names)
        goto oom;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < nt; i++) {
        if (canon[i] != i)
            continue;
        const kp_fetch_request_topic_t *qt = &q->topics[i];
        tops[i] = by_id                ? meta_snap_find_id(snap, qt->topic_id.b)
                  : qt->topic.len >= 0 ? meta_snap_find(snap, qt->topic.ptr, (size_t)qt->topic.len)
                                       : NULL;
        if (tops[i] && !(names[i] = kh_cstr(req, kp_str_from_cstr(tops[i]->name)))) {
            meta_snap_put(snap);
            goto oom;
        }
    }
    for (int k = 0; k < st->n_ops; k++) {
        rop_t *op = &st->ops[k];
        const meta_topic_t *t = tops[tcanon[k]];
        if (!t || op->partition < 0 || op->partition >= t->n_partitions) {
            op->rp->error_code =
                by_id && !t ? KP_ERR_UNKNOWN_TOPIC_ID : KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        /* Batches are stored as v2, which Fetch v0-3 cannot carry: with
         * message.downconversion.enable=false Kafka refuses such fetches
         * (Strata never down-converts; with true they get v2 as stored). */
        const char *dc = v < 4 ? meta_topic_config(t, "message.downconversion.enable") : NULL;
        if (dc && !strcmp(dc, "false")) {
            op->rp->error_code = KP_ERR_UNSUPPORTED_VERSION;
            continue;
        }
        op->req = req;
        op->origin = rt_shard_id(req->ks->sh);
        op->kind = OP_FETCH;
        op->back = fetch_op_back;
        op->sendfile = req->ks->ctx->fetch_sendfile && req->conn && !kh_conn_sec(req->conn)->tls;
        op->deadline_ms = st->deadline_ms;
        op->topic = names[tcanon[k]];
        uint64_t key = hash_bytes(HASH_SEED, op->topic, strlen(op->topic));
        op->key = hash_bytes(key, &op->partition, sizeof(op->partition)) | 1;
    }
    meta_snap_put(snap);
    st->fc = req->conn ? kh_conn_fetch(req->conn) : NULL;
    if (st->fc && st->fc->active) { /* reads when the ones before it answered */
        kh_req_t **p = &st->fc->parked;
        while (*p)
            p = &(*p)->next_waiting;
        *p = req;
        st->parked = true;
        return;
    }
    if (st->fc)
        st->fc->active = req;
    fetch_start(req);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

/* Start reading: the budget also leaves out what the connection has not sent
 * yet (a client that does not read gets empty responses, not more memory). */
static void fetch_start(kh_req_t *req)
{
    fstate_t *st = req->state;
    kp_fetch_request_t *q = req->msg;
    st->deadline_ms = part_now_ms() + (q->max_wait_ms > 0 ? q->max_wait_ms : 0);
    st->last_round = req->ks->closing; /* shutting down: no long poll */
    if (st->fc && req->conn) {
        int64_t cap = req->ks->ctx->fetch_max_bytes > 0 ? req->ks->ctx->fetch_max_bytes : INT32_MAX;
        int64_t unsent = (int64_t)kh_conn_unsent_bytes(req->conn);
        if (unsent >= cap) {
            st->budget = 0;
            st->may_exceed = false;
        } else if (st->budget > cap - unsent) {
            st->budget = cap - unsent;
        }
        if (st->min_bytes > st->budget)
            st->min_bytes = st->budget;
    }
    if (fetch_order(req, st) != 0) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    fetch_round(req);
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
    if (!kh_req_op_back(req))
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
    kh_req_op_out(req); /* the hold */
    for (int i = 0; i < st->n_ops; i++) {
        rop_t *op = &st->ops[i];
        if (!op->topic)
            continue;
        op->req = req;
        op->origin = rt_shard_id(req->ks->sh);
        op->back = list_back;
        kh_req_op_out(req);
        kh_post(req->ks, &op->post, kh_owner(req->ks, op->topic, op->partition), op_run, op_closed,
                op);
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
            op->committed = q->isolation_level == 1;
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
