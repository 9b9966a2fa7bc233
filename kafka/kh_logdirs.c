/* kh_logdirs.c - DescribeLogDirs: the broker's one log directory (log.dir), the size of each
 * partition's log in it and, from v4, the size and free space of its filesystem.
 * Data path: on the connection's shard the principal's DESCRIBE on the cluster is checked and
 * the partitions are listed from the metadata snapshot (every partition, or the requested ones
 * that exist: Kafka omits the others) -> one op per owning shard reads its own logs' sizes and
 * offsets, and statfs(log.dir) runs on the thread pool, at the same time -> answered once all
 * are back. Nothing here touches a disk on a loop.
 * OffsetLag is Kafka's max(0, high watermark - log end offset): 0 for a log that is not a
 * future replica, as on Kafka's leaders. */
#include "core/part.h"
#include "core/plog.h"
#include "kafka/kh_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *topic; /* arena */
    int32_t partition;
    int64_t size; /* bytes of the log's segments, 0 for a log never opened */
    int64_t lag;
} ld_row_t;

typedef struct ld_state ld_state_t;

/* The rows one shard owns; posted there and back. */
typedef struct {
    kh_post_t post;
    ld_state_t *st;
    int origin;
    int *rows; /* arena: indexes into st->rows */
    int n_rows;
} ld_op_t;

struct ld_state {
    kh_req_t *req;
    ld_row_t *rows; /* arena, in response order (topic, then partition) */
    int n_rows;
    uv_fs_t statfs; /* v4: total and usable bytes of log.dir's filesystem */
    int64_t total_bytes, usable_bytes;
    bool is_failed; /* a shard closed for good (shutdown) before answering */
};

static void respond(ld_state_t *st)
{
    kh_req_t *req = st->req;
    kp_describe_log_dirs_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    kp_describe_log_dirs_response_result_t *d = kp_arena_alloc(&req->arena, sizeof(*d));
    if (!r || !d) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_describe_log_dirs_response_init(r);
    kp_describe_log_dirs_response_result_init(d);
    r->results = d;
    r->n_results = 1;
    d->log_dir = kp_str_from_cstr(req->ks->ctx->log_dir);
    d->total_bytes = st->total_bytes;
    d->usable_bytes = st->usable_bytes;
    if (st->is_failed) {
        d->error_code = KP_ERR_KAFKA_STORAGE_ERROR;
        kh_respond(req, r);
        return;
    }
    int nt = 0;
    for (int i = 0; i < st->n_rows; i++)
        nt += i == 0 || st->rows[i].topic != st->rows[i - 1].topic;
    d->topics = kh_array(req, nt, sizeof(*d->topics));
    kp_describe_log_dirs_response_partition_t *ps =
        kh_array(req, st->n_rows, sizeof(kp_describe_log_dirs_response_partition_t));
    if (!d->topics || !ps) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_describe_log_dirs_response_topic_t *t = NULL;
    for (int i = 0; i < st->n_rows; i++) {
        const ld_row_t *row = &st->rows[i];
        if (i == 0 || row->topic != st->rows[i - 1].topic) {
            t = &d->topics[d->n_topics++];
            kp_describe_log_dirs_response_topic_init(t);
            t->name = kp_str_from_cstr(row->topic);
            t->partitions = &ps[i];
        }
        kp_describe_log_dirs_response_partition_t *p = &t->partitions[t->n_partitions++];
        kp_describe_log_dirs_response_partition_init(p);
        p->partition_index = row->partition;
        p->partition_size = row->size;
        p->offset_lag = row->lag;
    }
    kh_respond(req, r);
}

static void op_back(ld_state_t *st)
{
    if (kh_req_op_back(st->req))
        respond(st);
}

static void on_back(rt_shard_t *sh, void *arg)
{
    (void)sh;
    op_back(((ld_op_t *)arg)->st);
}

/* On the owning shard: its logs' figures, then back to the connection's shard. */
static void on_shard(rt_shard_t *sh, void *arg)
{
    ld_op_t *op = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    for (int i = 0; i < op->n_rows; i++) {
        ld_row_t *row = &op->st->rows[op->rows[i]];
        plog_t *log = ks->parts_closed ? NULL : part_get(ks->ps, row->topic, row->partition);
        if (!log)
            continue;
        row->size = plog_size_bytes(log);
        int64_t lag = plog_high_watermark(log) - plog_end_offset(log);
        row->lag = lag > 0 ? lag : 0;
    }
    kh_post(ks, &op->post, op->origin, on_back, NULL, op);
}

/* That shard closed for good (shutdown): runs on the connection's shard. */
static void on_closed(rt_shard_t *sh, void *arg)
{
    (void)sh;
    ld_op_t *op = arg;
    op->st->is_failed = true;
    op_back(op->st);
}

static void on_statfs(uv_fs_t *fs)
{
    ld_state_t *st = fs->data;
    if (fs->result == 0 && fs->ptr) {
        const uv_statfs_t *v = fs->ptr;
        st->total_bytes = (int64_t)(v->f_blocks * v->f_bsize);
        st->usable_bytes = (int64_t)(v->f_bavail * v->f_bsize);
    }
    uv_fs_req_cleanup(fs);
    op_back(st);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Add the partitions of t that the request names (sorted, once each), or all of them. */
static int add_topic(kh_req_t *req,
                     ld_state_t *st,
                     const meta_topic_t *t,
                     const int32_t *want,
                     int32_t n_want,
                     int cap)
{
    const char *name = kh_cstr(req, kp_str_from_cstr(t->name));
    int32_t *sorted = want ? kh_array(req, n_want, sizeof(*sorted)) : NULL;
    if (!name || (want && !sorted))
        return -1;
    if (want) {
        memcpy(sorted, want, (size_t)n_want * sizeof(*sorted));
        qsort(sorted, (size_t)n_want, sizeof(*sorted), cmp_i32);
    }
    int32_t n = want ? n_want : t->n_partitions;
    for (int32_t i = 0; i < n; i++) {
        int32_t p = want ? sorted[i] : i;
        if (want && (p < 0 || p >= t->n_partitions || (i > 0 && p == sorted[i - 1])))
            continue; /* not a partition of t, or named twice */
        if (st->n_rows >= cap)
            return -1;
        st->rows[st->n_rows++] = (ld_row_t){name, p, 0, 0};
    }
    return 0;
}

void kh_describe_log_dirs(kh_req_t *req)
{
    kp_describe_log_dirs_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    int16_t denied = kh_acl_cluster(req, ACL_OP_DESCRIBE); /* Kafka: DESCRIBE on the cluster */
    if (denied != KP_ERR_NONE) {
        /* v3+ says why; before, Kafka answers no log directory */
        kp_describe_log_dirs_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
        if (!r) {
            kh_fail_conn(req, "out of memory");
            return;
        }
        kp_describe_log_dirs_response_init(r);
        r->error_code = v >= 3 ? denied : KP_ERR_NONE;
        kh_respond(req, r);
        return;
    }
    kh_req_op_out(req); /* the hold: every failure below is kh_fail_held */
    ld_state_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    if (!st)
        goto oom;
    memset(st, 0, sizeof(*st));
    st->req = req;
    st->total_bytes = st->usable_bytes = -1;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    /* an upper bound of the rows: every partition, or every requested one */
    int64_t cap = 0;
    bool *dup = NULL;
    if (q->n_topics < 0) {
        for (int i = 0; i < snap->n_topics; i++)
            cap += snap->topics[i].n_partitions;
    } else {
        for (int i = 0; i < q->n_topics; i++)
            cap += q->topics[i].n_partitions > 0 ? q->topics[i].n_partitions : 0;
        dup = q->n_topics ? kh_str_dups(req, &q->topics[0].topic, q->n_topics, sizeof(*q->topics))
                          : NULL;
    }
    if (cap > INT32_MAX / 2 || (q->n_topics > 0 && !dup) ||
        !(st->rows = kh_array(req, (int32_t)cap, sizeof(*st->rows)))) {
        meta_snap_put(snap);
        goto oom;
    }
    int rc = 0;
    if (q->n_topics < 0) {
        for (int i = 0; rc == 0 && i < snap->n_topics; i++)
            rc = add_topic(req, st, &snap->topics[i], NULL, 0, (int)cap);
    } else {
        for (int i = 0; rc == 0 && i < q->n_topics; i++) {
            const kp_describe_log_dirs_request_describable_log_dir_topic_t *qt = &q->topics[i];
            const meta_topic_t *t = dup[i] ? NULL : kh_topic_find(req, snap, qt->topic, NULL);
            if (t && qt->n_partitions > 0)
                rc = add_topic(req, st, t, qt->partitions, qt->n_partitions, (int)cap);
        }
    }
    meta_snap_put(snap);
    if (rc != 0)
        goto oom;
    /* one op per shard that owns a listed partition */
    int n_shards = rt_shard_count(req->ks->ctx->rt);
    int *owner = kh_array(req, st->n_rows, sizeof(*owner));
    int *count = kh_array(req, n_shards, sizeof(*count));
    ld_op_t *ops = kh_array(req, n_shards, sizeof(*ops));
    if (!owner || !count || !ops)
        goto oom;
    for (int i = 0; i < st->n_rows; i++)
        count[owner[i] = kh_owner(req->ks, st->rows[i].topic, st->rows[i].partition)]++;
    for (int s = 0; s < n_shards; s++) {
        ops[s] = (ld_op_t){.st = st, .origin = rt_shard_id(req->ks->sh)};
        if (count[s] && !(ops[s].rows = kh_array(req, count[s], sizeof(int))))
            goto oom;
    }
    for (int i = 0; i < st->n_rows; i++) {
        ld_op_t *op = &ops[owner[i]];
        op->rows[op->n_rows++] = i;
    }
    if (v >= 4) {
        st->statfs.data = st;
        kh_req_op_out(req);
        if (uv_fs_statfs(rt_shard_loop(req->ks->sh), &st->statfs, req->ks->ctx->log_dir,
                         on_statfs) != 0)
            kh_req_op_back(req); /* the sizes stay -1 (unknown), as Kafka's default */
    }
    for (int s = 0; s < n_shards; s++) {
        if (!ops[s].n_rows)
            continue;
        kh_req_op_out(req);
        kh_post(req->ks, &ops[s].post, s, on_shard, on_closed, &ops[s]);
    }
    op_back(st); /* the hold */
    return;
oom:
    kh_fail_held(req, "out of memory");
}
