/* kh_api.c - cluster-level handlers: ApiVersions, Metadata (with topic
 * auto-creation), DescribeTopicPartitions, DescribeCluster, InitProducerId; and helpers shared by
 * the partition handlers (owner lookup, lazy partition open, error mapping). Data path: these
 * answer from the metadata snapshot on the connection's shard; only auto-creation and producer-id
 * allocation touch SQLite, on the thread pool. */
#include "core/st_log.h"
#include "kafka/kh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int16_t kh_errcode_from_st(int err)
{
    switch (err) {
    case 0:
        return KP_ERR_NONE;
    case ST_E_MALFORMED:
    case ST_E_CORRUPT:
        return KP_ERR_CORRUPT_MESSAGE;
    case ST_E_RANGE:
        return KP_ERR_OFFSET_OUT_OF_RANGE;
    case ST_E_TOO_LARGE:
        return KP_ERR_MESSAGE_TOO_LARGE;
    case ST_E_NOTFOUND:
        return KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    case ST_E_EXISTS:
        return KP_ERR_TOPIC_ALREADY_EXISTS;
    case ST_E_NOSPC:
    case ST_E_FAILED:
    case ST_E_IO:
        return KP_ERR_KAFKA_STORAGE_ERROR;
    case ST_E_TIMEOUT:
        return KP_ERR_REQUEST_TIMED_OUT;
    default:
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    }
}

void kh_ctx_set_log_defaults(kh_ctx_t *ctx, const plog_config_t *cfg)
{
    atomic_store_explicit(&ctx->log_defaults, cfg, memory_order_release);
}

void kh_topic_log_config(const kh_ctx_t *ctx, const meta_topic_t *t, plog_config_t *out)
{
    *out = *atomic_load_explicit(&ctx->log_defaults, memory_order_acquire);
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        {"segment.bytes", offsetof(plog_config_t, segment_bytes)},
        {"segment.ms", offsetof(plog_config_t, segment_ms)},
        {"retention.bytes", offsetof(plog_config_t, retention_bytes)},
        {"retention.ms", offsetof(plog_config_t, retention_ms)},
        {"flush.ms", offsetof(plog_config_t, flush_ms)},
        {"flush.bytes", offsetof(plog_config_t, flush_bytes)},
        {"flush.messages", offsetof(plog_config_t, flush_messages)},
    };
    for (size_t i = 0; t && i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = meta_topic_config(t, keys[i].key);
        if (v)
            *(int64_t *)((char *)out + keys[i].off) = strtoll(v, NULL, 10);
    }
    const char *v = t ? meta_topic_config(t, "index.interval.bytes") : NULL;
    if (v)
        out->index_interval_bytes = (int32_t)strtol(v, NULL, 10);
    /* Tiered storage: the topic's setting, else the broker default. */
    if ((v = t ? meta_topic_config(t, "remote.storage.enable") : NULL))
        out->remote_enabled = !strcmp(v, "true");
    if ((v = t ? meta_topic_config(t, "local.retention.ms") : NULL))
        out->local_retention_ms = strtoll(v, NULL, 10);
    if ((v = t ? meta_topic_config(t, "local.retention.bytes") : NULL))
        out->local_retention_bytes = strtoll(v, NULL, 10);
    if ((v = t ? meta_topic_config(t, "write.caching") : NULL))
        out->write_caching = !strcmp(v, "true");
    /* Compaction (validated when stored: a bad value cannot be here). */
    if ((v = t ? meta_topic_config(t, "cleanup.policy") : NULL) &&
        plog_cleanup_policy_parse(v, &out->cleanup_delete, &out->cleanup_compact) != 0)
        out->cleanup_delete = true, out->cleanup_compact = false;
    if ((v = t ? meta_topic_config(t, "min.cleanable.dirty.ratio") : NULL) &&
        plog_ratio_parse(v, &out->min_cleanable_ratio) != 0)
        out->min_cleanable_ratio = 0.5;
    if ((v = t ? meta_topic_config(t, "min.compaction.lag.ms") : NULL))
        out->min_compaction_lag_ms = strtoll(v, NULL, 10);
    if ((v = t ? meta_topic_config(t, "max.compaction.lag.ms") : NULL))
        out->max_compaction_lag_ms = strtoll(v, NULL, 10);
    if ((v = t ? meta_topic_config(t, "delete.retention.ms") : NULL))
        out->delete_retention_ms = strtoll(v, NULL, 10);
}

plog_t *kh_local_log(kh_shard_t *ks, const meta_snap_t *snap, const char *topic, int32_t partition)
{
    if (ks->parts_closed)
        return NULL; /* the registry is being closed: touch no partition */
    plog_t *log = part_get(ks->ps, topic, partition);
    const meta_topic_t *t = meta_snap_find(snap, topic, strlen(topic));
    if (!t || partition < 0 || partition >= t->n_partitions)
        return NULL; /* unknown, or deleted since the request was framed */
    if (log)
        return log;
    plog_config_t cfg;
    kh_topic_log_config(ks->ctx, t, &cfg);
    char err[256];
    if (part_open(ks->ps, topic, partition, &cfg, &log, err, sizeof(err)) != 0) {
        ST_ERROR("kafka", "cannot open partition tp=%s-%d: %s", topic, partition, err);
        return NULL;
    }
    return log;
}

/* ---- ApiVersions ---- */

void kh_api_versions(kh_req_t *req)
{
    kp_api_versions_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!r) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_api_versions_response_init(r);
    r->api_keys = kp_arena_calloc(&req->arena, kp_n_apis, sizeof(*r->api_keys));
    if (!r->api_keys) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    for (size_t i = 0; i < kp_n_apis; i++) {
        const kp_api_t *a = &kp_apis[i];
        if (!kh_handler_for(a->api_key)) /* advertise only what we serve */
            continue;
        r->api_keys[r->n_api_keys++] = (kp_api_versions_response_api_version_t){
            a->api_key, a->min_version, a->max_stable_version};
    }
    int16_t v = req->hdr.request_api_version;
    if (v < req->api->min_version || v > req->api->max_stable_version) {
        /* KIP-511: answer an unknown version in the v0 format so the client
         * can read our range and retry. */
        r->error_code = KP_ERR_UNSUPPORTED_VERSION;
        req->hdr.request_api_version = 0;
    }
    kh_respond(req, r);
}

/* ---- Metadata ---- */


static void md_answer(kh_req_t *req)
{
    const kh_ctx_t *ctx = req->ks->ctx;
    kp_metadata_request_t *q = req->msg;
    kp_metadata_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    meta_snap_t *snap = meta_snap_get(ctx->meta);
    int16_t v = req->hdr.request_api_version;
    bool all = q->n_topics < 0 || (v == 0 && q->n_topics == 0);
    int n = all ? snap->n_topics : q->n_topics;
    if (!r)
        goto oom;
    kp_metadata_response_init(r);
    r->brokers = kp_arena_alloc(&req->arena, sizeof(*r->brokers));
    r->topics = kp_arena_calloc(&req->arena, (size_t)(n > 0 ? n : 1), sizeof(*r->topics));
    int32_t *node = kp_arena_alloc(&req->arena, sizeof(int32_t));
    if (!r->brokers || !r->topics || !node)
        goto oom;
    *node = ctx->node_id;
    r->n_brokers = 1;
    r->brokers[0] = (kp_metadata_response_broker_t){
        ctx->node_id, kp_str_from_cstr(req->lis->adv_host), req->lis->adv_port, KP_STR_NULL};
    r->cluster_id = kp_str_from_cstr(ctx->cluster_id);
    r->controller_id = ctx->node_id;
    for (int i = 0; i < n; i++) {
        kp_metadata_response_topic_t *rt = &r->topics[r->n_topics++];
        kp_metadata_response_topic_init(rt);
        const meta_topic_t *t;
        if (all) {
            t = &snap->topics[i];
            rt->name = kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(t->name)));
        } else {
            kp_metadata_request_topic_t *qt = &q->topics[i];
            /* By id when the name is null, or empty with an id (as the Java client sends
             * it): the same choice as the authorizer's (kh_acl.c entry_name), which must
             * check the topic answered. */
            bool by_id = qt->name.len < 0 || (qt->name.len == 0 && !kp_uuid_is_zero(&qt->topic_id));
            rt->name = by_id && v >= 12 ? KP_STR_NULL : qt->name; /* nullable from v12 */
            if (!by_id)
                t = meta_snap_find(snap, qt->name.ptr, (size_t)qt->name.len);
            else
                t = meta_snap_find_id(snap, qt->topic_id.b);
            if (!t && !by_id && meta_topic_name_invalid(qt->name.ptr, (size_t)qt->name.len)) {
                rt->error_code = KP_ERR_INVALID_TOPIC_EXCEPTION;
                continue;
            }
            if (!t) {
                rt->error_code =
                    by_id ? KP_ERR_UNKNOWN_TOPIC_ID : KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                rt->topic_id = qt->topic_id;
                continue;
            }
            if (by_id)
                rt->name = kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(t->name)));
        }
        memcpy(rt->topic_id.b, t->id, 16);
        rt->partitions =
            kp_arena_calloc(&req->arena, (size_t)t->n_partitions, sizeof(*rt->partitions));
        if (!rt->partitions && t->n_partitions > 0)
            goto oom;
        rt->n_partitions = t->n_partitions;
        for (int p = 0; p < t->n_partitions; p++) {
            kp_metadata_response_partition_t *rp = &rt->partitions[p];
            kp_metadata_response_partition_init(rp);
            rp->partition_index = p;
            rp->leader_id = ctx->node_id;
            rp->leader_epoch = 0;
            rp->replica_nodes = rp->isr_nodes = node;
            rp->n_replica_nodes = rp->n_isr_nodes = 1;
        }
    }
    meta_snap_put(snap);
    kh_respond(req, r);
    return;
oom:
    meta_snap_put(snap);
    kh_fail_conn(req, "out of memory");
}

/* An auto-creation is back (or kh_metadata drops its hold). */
static void md_created(void *arg, int status, const char *msg)
{
    kh_req_t *req = arg;
    if (status != 0 && status != ST_E_EXISTS)
        ST_WARN("kafka", "auto-create failed: %s", msg ? msg : st_strerror(status));
    if (kh_req_op_back(req))
        md_answer(req);
}

void kh_metadata(kh_req_t *req)
{
    const kh_ctx_t *ctx = req->ks->ctx;
    kp_metadata_request_t *q = req->msg;
    /* Topic ids (a null name) only from v12, where a response topic may have a null name:
     * refused as Kafka's MetadataRequest does (UnsupportedVersionException). */
    for (int i = 0; req->hdr.request_api_version < 12 && i < q->n_topics; i++) {
        if (q->topics[i].name.len < 0) {
            kh_fail_conn(req, "Metadata before v12 with a null topic name");
            return;
        }
    }
    bool auto_create =
        ctx->auto_create && (req->hdr.request_api_version < 4 || q->allow_auto_topic_creation);
    kh_req_op_out(req); /* the hold */
    if (auto_create && q->n_topics > 0) {
        meta_snap_t *snap = meta_snap_get(ctx->meta);
        int64_t used = kh_partitions_total(snap);
        char room[200];
        for (int i = 0; i < q->n_topics; i++) {
            kp_str_t name = q->topics[i].name;
            if (name.len < 0 || meta_snap_find(snap, name.ptr, (size_t)name.len) ||
                meta_topic_name_invalid(name.ptr, (size_t)name.len))
                continue;
            int32_t np = ctx->num_partitions;
            if (!kh_partitions_room(ctx, used, np, room, sizeof(room))) {
                ST_DEBUG("kafka", "not auto-creating topic=%.*s: %s", name.len, name.ptr, room);
                continue; /* answered as unknown */
            }
            used += np;
            meta_topic_spec_t spec = {kh_cstr(req, name), np, NULL, 0};
            if (!spec.name)
                break; /* out of memory: the rest is answered as unknown */
            kh_req_op_out(req);
            ST_INFO("kafka", "auto-creating topic=%s partitions=%d", spec.name, spec.n_partitions);
            meta_create_topic(ctx->meta, rt_shard_loop(req->ks->sh), &spec, md_created, req);
        }
        meta_snap_put(snap);
    }
    md_created(req, 0, NULL);
}

/* ---- DescribeTopicPartitions (KIP-966) ---- */

/* Kafka's max.request.partition.size.limit default: the most partitions one answer holds. */
#define KH_DTP_MAX_PARTITIONS 2000

static int cmp_str(const void *a, const void *b)
{
    const kp_str_t *x = a, *y = b;
    int32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, (size_t)n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Topics by name (every topic when the request names none), sorted, from the cursor on, with
 * at most response_partition_limit partitions; next_cursor says where the next page starts. */
void kh_describe_topic_partitions(kh_req_t *req)
{
    const kh_ctx_t *ctx = req->ks->ctx;
    kp_describe_topic_partitions_request_t *q = req->msg;
    kp_describe_topic_partitions_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    meta_snap_t *snap = meta_snap_get(ctx->meta);
    bool all = q->n_topics == 0; /* -1: the authorizer refused every named topic */
    int n = all ? snap->n_topics : q->n_topics > 0 ? q->n_topics : 0;
    kp_str_t *names = kp_arena_calloc(&req->arena, (size_t)(n > 0 ? n : 1), sizeof(*names));
    int32_t *node = kp_arena_alloc(&req->arena, sizeof(int32_t));
    if (!r || !names || !node)
        goto oom;
    kp_describe_topic_partitions_response_init(r);
    *node = ctx->node_id;
    for (int i = 0; i < n; i++)
        names[i] = all ? kp_str_from_cstr(snap->topics[i].name) : q->topics[i].name;
    qsort(names, (size_t)n, sizeof(*names), cmp_str);
    r->topics = kp_arena_calloc(&req->arena, (size_t)(n > 0 ? n : 1), sizeof(*r->topics));
    if (!r->topics)
        goto oom;
    int32_t budget = q->response_partition_limit;
    if (budget <= 0 || budget > KH_DTP_MAX_PARTITIONS)
        budget = KH_DTP_MAX_PARTITIONS;
    const kp_describe_topic_partitions_request_cursor_t *cur = q->cursor;
    for (int i = 0; i < n; i++) {
        if ((i > 0 && cmp_str(&names[i - 1], &names[i]) == 0) ||
            (cur && cmp_str(&names[i], &cur->topic_name) < 0))
            continue; /* a duplicate, or before the cursor */
        int32_t from = cur && cmp_str(&names[i], &cur->topic_name) == 0 ? cur->partition_index : 0;
        if (budget == 0) { /* the page is full: the next one starts here */
            r->next_cursor = kp_arena_alloc(&req->arena, sizeof(*r->next_cursor));
            if (!r->next_cursor)
                goto oom;
            *r->next_cursor = (kp_describe_topic_partitions_response_cursor_t){
                kp_str_from_cstr(kh_cstr(req, names[i])), from}; /* names may be the snapshot's */
            if (!r->next_cursor->topic_name.ptr)
                goto oom;
            break;
        }
        kp_describe_topic_partitions_response_topic_t *rt = &r->topics[r->n_topics++];
        kp_describe_topic_partitions_response_topic_init(rt);
        const meta_topic_t *t = meta_snap_find(snap, names[i].ptr, (size_t)names[i].len);
        rt->name = kp_str_from_cstr(kh_cstr(req, names[i]));
        if (!rt->name.ptr)
            goto oom;
        if (!t) {
            rt->error_code = meta_topic_name_invalid(names[i].ptr, (size_t)names[i].len)
                                 ? KP_ERR_INVALID_TOPIC_EXCEPTION
                                 : KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            continue;
        }
        memcpy(rt->topic_id.b, t->id, 16);
        if (from < 0 || from > t->n_partitions)
            from = t->n_partitions;
        int32_t np = t->n_partitions - from < budget ? t->n_partitions - from : budget;
        rt->partitions =
            kp_arena_calloc(&req->arena, (size_t)(np > 0 ? np : 1), sizeof(*rt->partitions));
        if (!rt->partitions)
            goto oom;
        for (int32_t p = 0; p < np; p++) {
            kp_describe_topic_partitions_response_partition_t *rp =
                &rt->partitions[rt->n_partitions++];
            kp_describe_topic_partitions_response_partition_init(rp);
            rp->partition_index = from + p;
            rp->leader_id = ctx->node_id;
            rp->leader_epoch = 0;
            rp->replica_nodes = rp->isr_nodes = node;
            rp->n_replica_nodes = rp->n_isr_nodes = 1;
            rp->n_eligible_leader_replicas = rp->n_last_known_elr = 0; /* empty, as Kafka */
        }
        budget -= np;
        if (from + np < t->n_partitions) { /* stopped inside this topic */
            r->next_cursor = kp_arena_alloc(&req->arena, sizeof(*r->next_cursor));
            if (!r->next_cursor)
                goto oom;
            *r->next_cursor = (kp_describe_topic_partitions_response_cursor_t){rt->name, from + np};
            break;
        }
    }
    meta_snap_put(snap);
    kh_respond(req, r);
    return;
oom:
    meta_snap_put(snap);
    kh_fail_conn(req, "out of memory");
}

/* ---- DescribeCluster ---- */

void kh_describe_cluster(kh_req_t *req)
{
    const kh_ctx_t *ctx = req->ks->ctx;
    kp_describe_cluster_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    kp_describe_cluster_response_broker_t *b = kp_arena_alloc(&req->arena, sizeof(*b));
    if (!r || !b) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_describe_cluster_response_init(r);
    *b = (kp_describe_cluster_response_broker_t){ctx->node_id, kp_str_from_cstr(req->lis->adv_host),
                                                 req->lis->adv_port, KP_STR_NULL};
    r->cluster_id = kp_str_from_cstr(ctx->cluster_id);
    r->controller_id = ctx->node_id;
    r->brokers = b;
    r->n_brokers = 1;
    r->endpoint_type = 1;
    kh_respond(req, r);
}

/* ---- InitProducerId ---- */

typedef struct {
    uv_work_t work;
    kh_req_t *req;
    int64_t pid;
} pid_work_t;

static void pid_alloc(uv_work_t *w)
{
    pid_work_t *pw = w->data;
    pw->pid = meta_next_producer_id(pw->req->ks->ctx->meta); /* SQLite, off the loop */
}

static void pid_done(uv_work_t *w, int status)
{
    pid_work_t *pw = w->data;
    kh_req_t *req = pw->req;
    if (!kh_req_op_back(req))
        return;
    kp_init_producer_id_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!r) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    kp_init_producer_id_response_init(r);
    if (status != 0 || pw->pid < 0) {
        r->error_code = KP_ERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        r->producer_id = pw->pid;
        r->producer_epoch = 0;
    }
    kh_respond(req, r);
}

void kh_init_producer_id(kh_req_t *req)
{
    kp_init_producer_id_request_t *q = req->msg;
    if (q->transactional_id.len >= 0) {
        kh_txn_init_producer_id(req); /* the transaction coordinator (kh_txn.c) */
        return;
    }
    pid_work_t *pw = kp_arena_alloc(&req->arena, sizeof(*pw));
    if (!pw) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    pw->req = req;
    pw->work.data = pw;
    kh_req_op_out(req);
    if (uv_queue_work(rt_shard_loop(req->ks->sh), &pw->work, pid_alloc, pid_done) != 0)
        kh_fail_held(req, "cannot queue work");
}
