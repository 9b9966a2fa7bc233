/* kh_partitions.c - CreatePartitions: raise a topic's partition count.
 * Data path: validate on the connection's shard against the metadata
 * snapshot -> meta_set_partitions() (SQLite on the thread pool, then a new
 * snapshot) -> respond. Nothing is opened here: a new partition's log is
 * created on its owning shard on first use (kh_local_log checks the newest
 * snapshot), so it is usable as soon as the response is sent.
 * Invariants: 1. the partition count only grows (meta re-checks it in its
 *                transaction, so two racing requests cannot shrink it);
 *             2. every partition lives on this broker: a manual assignment
 *                is accepted only when it names exactly this broker. */
#include "core/st_log.h"
#include "kafka/kh_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define KH_MAX_PARTITIONS 1000000 /* as CreateTopics */

typedef struct {
    kh_req_t *req;
    kp_create_partitions_response_t *resp;
} cp_state_t;

typedef struct {
    cp_state_t *st;
    kp_create_partitions_response_topic_result_t *res;
    const char *topic; /* arena */
    int32_t count;
} cp_op_t;

/* A metadata store call is back (or the handler drops its hold). */
static void cp_done(cp_state_t *st)
{
    if (kh_req_op_back(st->req))
        kh_respond(st->req, st->resp);
}

static void set_err(kh_req_t *req,
                    kp_create_partitions_response_topic_result_t *res,
                    int16_t code,
                    const char *msg)
{
    res->error_code = code;
    res->error_message = kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(msg)));
}

static void on_partitions_set(void *arg, int status, const char *msg)
{
    cp_op_t *op = arg;
    kh_req_t *req = op->st->req;
    if (status != 0) {
        set_err(req, op->res,
                status == ST_E_INVAL      ? KP_ERR_INVALID_PARTITIONS
                : status == ST_E_NOTFOUND ? KP_ERR_UNKNOWN_TOPIC_OR_PARTITION
                                          : KP_ERR_UNKNOWN_SERVER_ERROR,
                msg ? msg : st_strerror(status));
    } else {
        ST_INFO("kafka", "partitions raised topic=%s partitions=%" PRId32, op->topic, op->count);
    }
    cp_done(op->st);
}

/* A manual assignment is honoured only when it changes nothing: one replica,
 * this broker, for each new partition. @return NULL or the reason. */
static const char *check_assignments(kh_req_t *req,
                                     const kp_create_partitions_request_topic_t *qt,
                                     int32_t added,
                                     char *err,
                                     size_t err_len)
{
    int32_t node = req->ks->ctx->node_id;
    if (qt->n_assignments < 0)
        return NULL;
    if (qt->n_assignments != added) {
        snprintf(err, err_len,
                 "Increasing the number of partitions by %" PRId32 " but %" PRId32
                 " assignments provided.",
                 added, qt->n_assignments);
        return err;
    }
    for (int i = 0; i < qt->n_assignments; i++) {
        const kp_create_partitions_request_assignment_t *a = &qt->assignments[i];
        if (a->n_broker_ids != 1 || a->broker_ids[0] != node) {
            snprintf(err, err_len,
                     "Manual replica assignment is not supported: this cluster has one broker, "
                     "so every new partition must be assigned to [%" PRId32 "] (or leave the "
                     "assignment out).",
                     node);
            return err;
        }
    }
    return NULL;
}

int64_t kh_partitions_total(const meta_snap_t *snap)
{
    int64_t total = 0;
    for (int i = 0; i < snap->n_topics; i++)
        total += snap->topics[i].n_partitions;
    return total;
}

int64_t kh_max_partitions_derived(uint64_t *nofile_out)
{
    struct rlimit rl;
    uint64_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                          ? (uint64_t)rl.rlim_cur
                          : 1048576;
    *nofile_out = nofile;
    uint64_t headroom = nofile / 4 > 256 ? nofile / 4 : 256;
    uint64_t n = nofile > headroom ? (nofile - headroom) / KH_FDS_PER_PARTITION : 0;
    return n < 1 ? 1 : n > 100000 ? 100000 : (int64_t)n;
}

bool kh_partitions_room(
    const kh_ctx_t *ctx, int64_t used, int64_t adding, char *why, size_t why_len)
{
    int64_t total = used, max = atomic_load(&((kh_ctx_t *)ctx)->max_partitions);
    if (total + adding <= max)
        return true;
    snprintf(why, why_len,
             "%" PRId64 " more partitions would make %" PRId64
             ", over strata.max.partitions=%" PRId64
             " (by default derived from the open file limit: a partition keeps a file open per "
             "segment, %d counted each)",
             adding, total + adding, max, KH_FDS_PER_PARTITION);
    return false;
}

void kh_create_partitions(kh_req_t *req)
{
    kp_create_partitions_request_t *q = req->msg;
    kp_create_partitions_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    cp_state_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    int n = q->n_topics > 0 ? q->n_topics : 0;
    if (!r || !st)
        goto oom;
    kp_create_partitions_response_init(r);
    r->results = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->results));
    if (!r->results)
        goto oom;
    r->n_results = n;
    bool *dups = kh_str_dups(req, n ? &q->topics[0].name : NULL, n, sizeof(q->topics[0]));
    if (!dups)
        goto oom;
    *st = (cp_state_t){req, r};
    kh_req_op_out(req); /* the hold */
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    int64_t used = kh_partitions_total(snap); /* and what this request creates */
    for (int i = 0; i < n; i++) {
        kp_create_partitions_request_topic_t *qt = &q->topics[i];
        kp_create_partitions_response_topic_result_t *res = &r->results[i];
        kp_create_partitions_response_topic_result_init(res);
        res->name = qt->name;
        char err[400];
        bool dup = dups[i];
        const meta_topic_t *t =
            qt->name.len >= 0 ? meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len) : NULL;
        const char *bad;
        if (dup) {
            set_err(req, res, KP_ERR_INVALID_REQUEST, "Duplicate topic in request.");
        } else if (!t) {
            snprintf(err, sizeof(err), "The topic '%.*s' does not exist.",
                     qt->name.len > 0 ? (int)qt->name.len : 0,
                     qt->name.len > 0 ? qt->name.ptr : "");
            set_err(req, res, KP_ERR_UNKNOWN_TOPIC_OR_PARTITION, err);
        } else if (qt->count == t->n_partitions) {
            snprintf(err, sizeof(err), "Topic already has %" PRId32 " partitions.", qt->count);
            set_err(req, res, KP_ERR_INVALID_PARTITIONS, err);
        } else if (qt->count < t->n_partitions) {
            snprintf(err, sizeof(err),
                     "Topic currently has %" PRId32 " partitions, which is higher than the "
                     "requested %" PRId32 ".",
                     t->n_partitions, qt->count);
            set_err(req, res, KP_ERR_INVALID_PARTITIONS, err);
        } else if (qt->count > KH_MAX_PARTITIONS) {
            snprintf(err, sizeof(err), "Number of partitions must be at most %d.",
                     KH_MAX_PARTITIONS);
            set_err(req, res, KP_ERR_INVALID_PARTITIONS, err);
        } else if ((bad = check_assignments(req, qt, qt->count - t->n_partitions, err,
                                            sizeof(err)))) {
            set_err(req, res, KP_ERR_INVALID_REPLICA_ASSIGNMENT, bad);
        } else if (!kh_partitions_room(req->ks->ctx, used, qt->count - t->n_partitions, err,
                                       sizeof(err))) {
            set_err(req, res, KP_ERR_POLICY_VIOLATION, err);
        } else if ((used += qt->count - t->n_partitions, !q->validate_only)) {
            cp_op_t *op = kp_arena_alloc(&req->arena, sizeof(*op));
            char *topic = kh_cstr(req, qt->name);
            if (!op || !topic) {
                set_err(req, res, KP_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
                continue;
            }
            *op = (cp_op_t){st, res, topic, qt->count};
            kh_req_op_out(req);
            meta_set_partitions(req->ks->ctx->meta, rt_shard_loop(req->ks->sh), op->topic,
                                qt->count, on_partitions_set, op);
        }
    }
    meta_snap_put(snap);
    cp_done(st);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}
