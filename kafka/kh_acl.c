/* kh_acl.c - authorization of Kafka requests.
 * (The ACL APIs themselves are in kh_acls.c.)
 * Data path: dispatch (kh_conn.c) -> kh_acl_check() before the handler:
 *   - a request refused as a whole (group APIs without READ on the group,
 *     InitProducerId, ...) is answered here with the precise error;
 *   - entries the principal may not touch (topics of a Produce, groups of a
 *     DescribeGroups, ...) are removed from the decoded request and kept in
 *     req->acl, so the handler never sees them;
 * -> the handler answers -> kh_respond() calls kh_acl_respond(), which adds
 * the removed entries back with their error (TOPIC_AUTHORIZATION_FAILED, ...)
 * and drops from "list everything" answers (Metadata, ListGroups,
 * OffsetFetch of all topics) what the principal may not DESCRIBE.
 * Decisions read the ACL set published by core/meta.c (no SQLite, no lock
 * besides the snapshot's pointer copy) and core/acl.c's matcher.
 * Which operation each API needs follows Kafka's KafkaApis; the table is in
 * docs/ARCHITECTURE.md ("Authorization").
 * Invariant: with ctx->acl == NULL (authorization off) nothing here runs
 * but the ACL APIs, which answer SECURITY_DISABLED as Kafka does. */
#include "core/st_log.h"
#include "kafka/kh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX

/* An entry removed from a request, answered with err. */
typedef struct {
    kp_str_t name;
    kp_uuid_t id;
    int32_t *parts; /* arena: the partition indexes asked for */
    int32_t n_parts;
    int16_t err;
    int8_t res_type; /* DescribeConfigs / AlterConfigs: the request's resource type */
} denied_t;

/* Where an API keeps its list of entries, in the request and the response:
 * offsets into the generated structs, NONE when a field does not exist. */
typedef struct {
    size_t q_arr, q_n, q_size, q_name, q_id, q_type;
    size_t q_parts, q_nparts, q_psize, q_pidx;
    size_t r_arr, r_n, r_size, r_name, r_id, r_err, r_type;
    size_t r_parts, r_nparts, r_psize, r_pidx, r_perr;
    void (*r_init)(void *);
    void (*r_pinit)(void *);
} shape_t;

/* Entries removed from one list of a request, to add back to its response. */
typedef struct {
    const shape_t *shape; /* where they go back in the response; NULL: none */
    denied_t *d;          /* arena */
    int n;
} dlist_t;

/* OffsetFetch v8+: one group of the request, its refused topics. */
typedef struct {
    kp_str_t group_id;
    dlist_t topics;
    bool filter_topics; /* all topics asked for: drop undescribable ones */
} group_acl_t;

struct kh_acl_req {
    const char *principal; /* arena copies: valid while req lives */
    const char *host;
    dlist_t top;         /* entries refused from the request's main list */
    group_acl_t *groups; /* arena: OffsetFetch v8+ groups that were allowed */
    int n_groups;
    bool filter_topics; /* Metadata / OffsetFetch of all topics: drop undescribable */
    bool filter_groups; /* ListGroups without DESCRIBE on the cluster */
};

/* ---- Decisions ---- */

static acl_set_t *acls_of(kh_req_t *req)
{
    return meta_acls_get(req->ks->ctx->meta);
}

static bool allowed(kh_req_t *req, const acl_set_t *s, int op, int res, kp_str_t name)
{
    struct kh_acl_req *a = req->acl;
    if (name.len < 0)
        name = KP_STR_LIT("");
    return acl_authorize(s, req->ks->ctx->acl, a->principal, a->host, op, res, name.ptr,
                         (size_t)name.len);
}

static bool cluster_ok(kh_req_t *req, const acl_set_t *s, int op)
{
    return allowed(req, s, op, ACL_RES_CLUSTER, KP_STR_LIT(ACL_CLUSTER_NAME));
}

/* ---- Generic entry lists ---- */

#define AT(p, off, T) (*(T *)((char *)(p) + (off)))

/* The name of a request entry; topics asked for by id are looked up. */
static kp_str_t entry_name(kh_req_t *req, const shape_t *sh, const void *e, const meta_snap_t *snap)
{
    kp_str_t name = AT(e, sh->q_name, kp_str_t);
    if (name.len > 0 || sh->q_id == NONE)
        return name;
    const meta_topic_t *t = meta_snap_find_id(snap, AT(e, sh->q_id, kp_uuid_t).b);
    return t ? kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(t->name))) : name;
}

typedef int16_t (*decide_fn)(
    kh_req_t *req, const acl_set_t *s, const void *e, kp_str_t name, void *arg);

typedef struct {
    int op, res;
    int16_t err;
    int cluster_op; /* also granted by this operation on the cluster (0: none) */
} rule_t;

static int16_t
decide_rule(kh_req_t *req, const acl_set_t *s, const void *e, kp_str_t name, void *arg)
{
    (void)e;
    const rule_t *r = arg;
    if (r->cluster_op && cluster_ok(req, s, r->cluster_op))
        return KP_ERR_NONE;
    return allowed(req, s, r->op, r->res, name) ? KP_ERR_NONE : r->err;
}

static int16_t
decide_all(kh_req_t *req, const acl_set_t *s, const void *e, kp_str_t name, void *arg)
{
    (void)req, (void)s, (void)e, (void)name;
    return *(int16_t *)arg;
}

/* Remove the entries decide() refuses from the request's list; remember them.
 * @return 0, or ST_E_NOMEM. */
static int strip_into(kh_req_t *req,
                      dlist_t *a,
                      const shape_t *sh,
                      void *msg,
                      const acl_set_t *s,
                      decide_fn decide,
                      void *arg)
{
    char *arr = AT(msg, sh->q_arr, char *);
    int32_t n = AT(msg, sh->q_n, int32_t);
    if (n <= 0)
        return 0;
    meta_snap_t *snap = sh->q_id != NONE ? meta_snap_get(req->ks->ctx->meta) : NULL;
    denied_t *d = kh_array(req, a->n + n, sizeof(*d));
    if (!d) {
        meta_snap_put(snap);
        return ST_E_NOMEM;
    }
    if (a->n)
        memcpy(d, a->d, (size_t)a->n * sizeof(*d));
    a->d = d;
    int32_t w = 0;
    for (int32_t i = 0; i < n; i++) {
        char *e = arr + (size_t)i * sh->q_size;
        kp_str_t name = entry_name(req, sh, e, snap);
        int16_t err = decide(req, s, e, name, arg);
        if (err == KP_ERR_NONE) {
            if (w != i)
                memmove(arr + (size_t)w * sh->q_size, e, sh->q_size);
            w++;
            continue;
        }
        denied_t *x = &d[a->n++];
        memset(x, 0, sizeof(*x));
        x->name = AT(e, sh->q_name, kp_str_t); /* asked by id: stays null, as in Kafka
                                                  the refusal does not disclose the name */
        if (sh->q_id != NONE)
            x->id = AT(e, sh->q_id, kp_uuid_t);
        if (sh->q_type != NONE)
            x->res_type = AT(e, sh->q_type, int8_t);
        x->err = err;
        if (sh->q_parts != NONE) {
            int32_t np = AT(e, sh->q_nparts, int32_t);
            const char *qp = AT(e, sh->q_parts, const char *);
            x->n_parts = np > 0 ? np : 0;
            x->parts = kh_array(req, x->n_parts, sizeof(int32_t));
            if (!x->parts) {
                meta_snap_put(snap);
                return ST_E_NOMEM;
            }
            for (int32_t j = 0; j < x->n_parts; j++)
                x->parts[j] = AT(qp + (size_t)j * sh->q_psize, sh->q_pidx, int32_t);
        }
    }
    AT(msg, sh->q_n, int32_t) = w;
    meta_snap_put(snap);
    a->shape = sh;
    return 0;
}

/* strip_into the request's main list. */
static int
strip(kh_req_t *req, const shape_t *sh, void *msg, const acl_set_t *s, decide_fn decide, void *arg)
{
    return strip_into(req, &req->acl->top, sh, msg, s, decide, arg);
}

/* Append the entries remembered in a to the response's list. */
static int patch(kh_req_t *req, const dlist_t *a, void *resp)
{
    const shape_t *sh = a->shape;
    if (!sh || a->n == 0)
        return 0;
    int32_t on = AT(resp, sh->r_n, int32_t);
    on = on > 0 ? on : 0;
    char *arr = kh_array(req, on + a->n, sh->r_size);
    if (!arr)
        return ST_E_NOMEM;
    if (on)
        memcpy(arr, AT(resp, sh->r_arr, char *), (size_t)on * sh->r_size);
    for (int k = 0; k < a->n; k++) {
        const denied_t *x = &a->d[k];
        char *e = arr + (size_t)(on + k) * sh->r_size;
        sh->r_init(e);
        AT(e, sh->r_name, kp_str_t) = x->name;
        if (sh->r_id != NONE)
            AT(e, sh->r_id, kp_uuid_t) = x->id;
        if (sh->r_err != NONE)
            AT(e, sh->r_err, int16_t) = x->err;
        if (sh->r_type != NONE)
            AT(e, sh->r_type, int8_t) = x->res_type;
        if (sh->r_parts == NONE)
            continue;
        char *parts = kh_array(req, x->n_parts, sh->r_psize);
        if (!parts)
            return ST_E_NOMEM;
        for (int32_t j = 0; j < x->n_parts; j++) {
            char *p = parts + (size_t)j * sh->r_psize;
            sh->r_pinit(p);
            AT(p, sh->r_pidx, int32_t) = x->parts[j];
            AT(p, sh->r_perr, int16_t) = x->err;
        }
        AT(e, sh->r_parts, char *) = parts;
        AT(e, sh->r_nparts, int32_t) = x->n_parts;
    }
    AT(resp, sh->r_arr, char *) = arr;
    AT(resp, sh->r_n, int32_t) = on + a->n;
    return 0;
}

/* ---- Where each API keeps its entries ---- */

#define INIT(T)                                                                                    \
    static void init_##T(void *p)                                                                  \
    {                                                                                              \
        kp_##T##_init(p);                                                                          \
    }
INIT(produce_response_topic_produce_response)
INIT(fetch_response_fetchable_topic_response)
INIT(list_offsets_response_topic_response)
INIT(list_offsets_response_partition_response)
INIT(offset_for_leader_epoch_response_offset_for_leader_topic_result)
INIT(offset_for_leader_epoch_response_epoch_end_offset)
INIT(metadata_response_topic)
INIT(describe_topic_partitions_response_topic)
INIT(create_topics_response_creatable_topic_result)
INIT(delete_topics_response_deletable_topic_result)
INIT(delete_records_response_topic_result)
INIT(create_partitions_response_topic_result)
INIT(offset_commit_response_topic)
INIT(offset_commit_response_partition)
INIT(offset_fetch_response_topic)
INIT(offset_fetch_response_group)
INIT(offset_fetch_response_topics)
INIT(offset_delete_response_topic)
INIT(offset_delete_response_partition)
INIT(describe_groups_response_described_group)
INIT(consumer_group_describe_response_described_group)
INIT(delete_groups_response_deletable_group_result)
INIT(find_coordinator_response_coordinator)
INIT(describe_configs_response_result)
INIT(alter_configs_response_resource_response)
INIT(incremental_alter_configs_response_alter_configs_resource_response)

/* Partitions refused carry Kafka's "invalid" values, not the schema's defaults. */
static void init_produce_response_partition_produce_response(void *p)
{
    kp_produce_response_partition_produce_response_t *x = p;
    kp_produce_response_partition_produce_response_init(x);
    x->base_offset = -1;
}

static void init_fetch_response_partition_data(void *p)
{
    kp_fetch_response_partition_data_t *x = p;
    kp_fetch_response_partition_data_init(x);
    x->high_watermark = -1;
    x->records = (kp_bytes_t){(const uint8_t *)"", 0};
}

static void init_offset_fetch_response_partition(void *p)
{
    kp_offset_fetch_response_partition_t *x = p;
    kp_offset_fetch_response_partition_init(x);
    x->committed_offset = -1;
}

static void init_offset_fetch_response_partitions(void *p)
{
    kp_offset_fetch_response_partitions_t *x = p;
    kp_offset_fetch_response_partitions_init(x);
    x->committed_offset = -1;
}

static void init_delete_records_response_partition_result(void *p)
{
    kp_delete_records_response_partition_result_t *x = p;
    kp_delete_records_response_partition_result_init(x);
    x->low_watermark = -1;
}

static const shape_t k_produce = {
    offsetof(kp_produce_request_t, topic_data),
    offsetof(kp_produce_request_t, n_topic_data),
    sizeof(kp_produce_request_topic_produce_data_t),
    offsetof(kp_produce_request_topic_produce_data_t, name),
    NONE,
    NONE,
    offsetof(kp_produce_request_topic_produce_data_t, partition_data),
    offsetof(kp_produce_request_topic_produce_data_t, n_partition_data),
    sizeof(kp_produce_request_partition_produce_data_t),
    offsetof(kp_produce_request_partition_produce_data_t, index),
    offsetof(kp_produce_response_t, responses),
    offsetof(kp_produce_response_t, n_responses),
    sizeof(kp_produce_response_topic_produce_response_t),
    offsetof(kp_produce_response_topic_produce_response_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_produce_response_topic_produce_response_t, partition_responses),
    offsetof(kp_produce_response_topic_produce_response_t, n_partition_responses),
    sizeof(kp_produce_response_partition_produce_response_t),
    offsetof(kp_produce_response_partition_produce_response_t, index),
    offsetof(kp_produce_response_partition_produce_response_t, error_code),
    init_produce_response_topic_produce_response,
    init_produce_response_partition_produce_response,
};

static const shape_t k_fetch = {
    offsetof(kp_fetch_request_t, topics),
    offsetof(kp_fetch_request_t, n_topics),
    sizeof(kp_fetch_request_topic_t),
    offsetof(kp_fetch_request_topic_t, topic),
    offsetof(kp_fetch_request_topic_t, topic_id),
    NONE,
    offsetof(kp_fetch_request_topic_t, partitions),
    offsetof(kp_fetch_request_topic_t, n_partitions),
    sizeof(kp_fetch_request_partition_t),
    offsetof(kp_fetch_request_partition_t, partition),
    offsetof(kp_fetch_response_t, responses),
    offsetof(kp_fetch_response_t, n_responses),
    sizeof(kp_fetch_response_fetchable_topic_response_t),
    offsetof(kp_fetch_response_fetchable_topic_response_t, topic),
    offsetof(kp_fetch_response_fetchable_topic_response_t, topic_id),
    NONE,
    NONE,
    offsetof(kp_fetch_response_fetchable_topic_response_t, partitions),
    offsetof(kp_fetch_response_fetchable_topic_response_t, n_partitions),
    sizeof(kp_fetch_response_partition_data_t),
    offsetof(kp_fetch_response_partition_data_t, partition_index),
    offsetof(kp_fetch_response_partition_data_t, error_code),
    init_fetch_response_fetchable_topic_response,
    init_fetch_response_partition_data,
};

static const shape_t k_list_offsets = {
    offsetof(kp_list_offsets_request_t, topics),
    offsetof(kp_list_offsets_request_t, n_topics),
    sizeof(kp_list_offsets_request_topic_t),
    offsetof(kp_list_offsets_request_topic_t, name),
    NONE,
    NONE,
    offsetof(kp_list_offsets_request_topic_t, partitions),
    offsetof(kp_list_offsets_request_topic_t, n_partitions),
    sizeof(kp_list_offsets_request_partition_t),
    offsetof(kp_list_offsets_request_partition_t, partition_index),
    offsetof(kp_list_offsets_response_t, topics),
    offsetof(kp_list_offsets_response_t, n_topics),
    sizeof(kp_list_offsets_response_topic_response_t),
    offsetof(kp_list_offsets_response_topic_response_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_list_offsets_response_topic_response_t, partitions),
    offsetof(kp_list_offsets_response_topic_response_t, n_partitions),
    sizeof(kp_list_offsets_response_partition_response_t),
    offsetof(kp_list_offsets_response_partition_response_t, partition_index),
    offsetof(kp_list_offsets_response_partition_response_t, error_code),
    init_list_offsets_response_topic_response,
    init_list_offsets_response_partition_response,
};

static const shape_t k_ofle = {
    offsetof(kp_offset_for_leader_epoch_request_t, topics),
    offsetof(kp_offset_for_leader_epoch_request_t, n_topics),
    sizeof(kp_offset_for_leader_epoch_request_offset_for_leader_topic_t),
    offsetof(kp_offset_for_leader_epoch_request_offset_for_leader_topic_t, topic),
    NONE,
    NONE,
    offsetof(kp_offset_for_leader_epoch_request_offset_for_leader_topic_t, partitions),
    offsetof(kp_offset_for_leader_epoch_request_offset_for_leader_topic_t, n_partitions),
    sizeof(kp_offset_for_leader_epoch_request_offset_for_leader_partition_t),
    offsetof(kp_offset_for_leader_epoch_request_offset_for_leader_partition_t, partition),
    offsetof(kp_offset_for_leader_epoch_response_t, topics),
    offsetof(kp_offset_for_leader_epoch_response_t, n_topics),
    sizeof(kp_offset_for_leader_epoch_response_offset_for_leader_topic_result_t),
    offsetof(kp_offset_for_leader_epoch_response_offset_for_leader_topic_result_t, topic),
    NONE,
    NONE,
    NONE,
    offsetof(kp_offset_for_leader_epoch_response_offset_for_leader_topic_result_t, partitions),
    offsetof(kp_offset_for_leader_epoch_response_offset_for_leader_topic_result_t, n_partitions),
    sizeof(kp_offset_for_leader_epoch_response_epoch_end_offset_t),
    offsetof(kp_offset_for_leader_epoch_response_epoch_end_offset_t, partition),
    offsetof(kp_offset_for_leader_epoch_response_epoch_end_offset_t, error_code),
    init_offset_for_leader_epoch_response_offset_for_leader_topic_result,
    init_offset_for_leader_epoch_response_epoch_end_offset,
};

static const shape_t k_delete_records = {
    offsetof(kp_delete_records_request_t, topics),
    offsetof(kp_delete_records_request_t, n_topics),
    sizeof(kp_delete_records_request_topic_t),
    offsetof(kp_delete_records_request_topic_t, name),
    NONE,
    NONE,
    offsetof(kp_delete_records_request_topic_t, partitions),
    offsetof(kp_delete_records_request_topic_t, n_partitions),
    sizeof(kp_delete_records_request_partition_t),
    offsetof(kp_delete_records_request_partition_t, partition_index),
    offsetof(kp_delete_records_response_t, topics),
    offsetof(kp_delete_records_response_t, n_topics),
    sizeof(kp_delete_records_response_topic_result_t),
    offsetof(kp_delete_records_response_topic_result_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_delete_records_response_topic_result_t, partitions),
    offsetof(kp_delete_records_response_topic_result_t, n_partitions),
    sizeof(kp_delete_records_response_partition_result_t),
    offsetof(kp_delete_records_response_partition_result_t, partition_index),
    offsetof(kp_delete_records_response_partition_result_t, error_code),
    init_delete_records_response_topic_result,
    init_delete_records_response_partition_result,
};

static const shape_t k_offset_commit = {
    offsetof(kp_offset_commit_request_t, topics),
    offsetof(kp_offset_commit_request_t, n_topics),
    sizeof(kp_offset_commit_request_topic_t),
    offsetof(kp_offset_commit_request_topic_t, name),
    NONE,
    NONE,
    offsetof(kp_offset_commit_request_topic_t, partitions),
    offsetof(kp_offset_commit_request_topic_t, n_partitions),
    sizeof(kp_offset_commit_request_partition_t),
    offsetof(kp_offset_commit_request_partition_t, partition_index),
    offsetof(kp_offset_commit_response_t, topics),
    offsetof(kp_offset_commit_response_t, n_topics),
    sizeof(kp_offset_commit_response_topic_t),
    offsetof(kp_offset_commit_response_topic_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_offset_commit_response_topic_t, partitions),
    offsetof(kp_offset_commit_response_topic_t, n_partitions),
    sizeof(kp_offset_commit_response_partition_t),
    offsetof(kp_offset_commit_response_partition_t, partition_index),
    offsetof(kp_offset_commit_response_partition_t, error_code),
    init_offset_commit_response_topic,
    init_offset_commit_response_partition,
};

static const shape_t k_offset_fetch = {
    offsetof(kp_offset_fetch_request_t, topics),
    offsetof(kp_offset_fetch_request_t, n_topics),
    sizeof(kp_offset_fetch_request_topic_t),
    offsetof(kp_offset_fetch_request_topic_t, name),
    NONE,
    NONE,
    offsetof(kp_offset_fetch_request_topic_t, partition_indexes),
    offsetof(kp_offset_fetch_request_topic_t, n_partition_indexes),
    sizeof(int32_t),
    0,
    offsetof(kp_offset_fetch_response_t, topics),
    offsetof(kp_offset_fetch_response_t, n_topics),
    sizeof(kp_offset_fetch_response_topic_t),
    offsetof(kp_offset_fetch_response_topic_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_offset_fetch_response_topic_t, partitions),
    offsetof(kp_offset_fetch_response_topic_t, n_partitions),
    sizeof(kp_offset_fetch_response_partition_t),
    offsetof(kp_offset_fetch_response_partition_t, partition_index),
    offsetof(kp_offset_fetch_response_partition_t, error_code),
    init_offset_fetch_response_topic,
    init_offset_fetch_response_partition,
};

/* OffsetFetch v8+: the topics of one group (offsets inside the group structs). */
static const shape_t k_offset_fetch_group_topics = {
    offsetof(kp_offset_fetch_request_group_t, topics),
    offsetof(kp_offset_fetch_request_group_t, n_topics),
    sizeof(kp_offset_fetch_request_topics_t),
    offsetof(kp_offset_fetch_request_topics_t, name),
    NONE,
    NONE,
    offsetof(kp_offset_fetch_request_topics_t, partition_indexes),
    offsetof(kp_offset_fetch_request_topics_t, n_partition_indexes),
    sizeof(int32_t),
    0,
    offsetof(kp_offset_fetch_response_group_t, topics),
    offsetof(kp_offset_fetch_response_group_t, n_topics),
    sizeof(kp_offset_fetch_response_topics_t),
    offsetof(kp_offset_fetch_response_topics_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_offset_fetch_response_topics_t, partitions),
    offsetof(kp_offset_fetch_response_topics_t, n_partitions),
    sizeof(kp_offset_fetch_response_partitions_t),
    offsetof(kp_offset_fetch_response_partitions_t, partition_index),
    offsetof(kp_offset_fetch_response_partitions_t, error_code),
    init_offset_fetch_response_topics,
    init_offset_fetch_response_partitions,
};

static const shape_t k_offset_delete = {
    offsetof(kp_offset_delete_request_t, topics),
    offsetof(kp_offset_delete_request_t, n_topics),
    sizeof(kp_offset_delete_request_topic_t),
    offsetof(kp_offset_delete_request_topic_t, name),
    NONE,
    NONE,
    offsetof(kp_offset_delete_request_topic_t, partitions),
    offsetof(kp_offset_delete_request_topic_t, n_partitions),
    sizeof(kp_offset_delete_request_partition_t),
    offsetof(kp_offset_delete_request_partition_t, partition_index),
    offsetof(kp_offset_delete_response_t, topics),
    offsetof(kp_offset_delete_response_t, n_topics),
    sizeof(kp_offset_delete_response_topic_t),
    offsetof(kp_offset_delete_response_topic_t, name),
    NONE,
    NONE,
    NONE,
    offsetof(kp_offset_delete_response_topic_t, partitions),
    offsetof(kp_offset_delete_response_topic_t, n_partitions),
    sizeof(kp_offset_delete_response_partition_t),
    offsetof(kp_offset_delete_response_partition_t, partition_index),
    offsetof(kp_offset_delete_response_partition_t, error_code),
    init_offset_delete_response_topic,
    init_offset_delete_response_partition,
};

/* Lists of names (no partitions). */
#define NAMES(Q, QT, qarr, qname, qid, R, RT, rarr, rname, rid, rerr, init)                        \
    {                                                                                              \
        offsetof(Q, qarr), offsetof(Q, n_##qarr), sizeof(QT), qname, qid, NONE, NONE, NONE, 0, 0,  \
            offsetof(R, rarr), offsetof(R, n_##rarr), sizeof(RT), offsetof(RT, rname), rid,        \
            offsetof(RT, rerr), NONE, NONE, NONE, 0, 0, 0, init, NULL                              \
    }

static const shape_t k_metadata = NAMES(kp_metadata_request_t,
                                        kp_metadata_request_topic_t,
                                        topics,
                                        offsetof(kp_metadata_request_topic_t, name),
                                        offsetof(kp_metadata_request_topic_t, topic_id),
                                        kp_metadata_response_t,
                                        kp_metadata_response_topic_t,
                                        topics,
                                        name,
                                        offsetof(kp_metadata_response_topic_t, topic_id),
                                        error_code,
                                        init_metadata_response_topic);
static const shape_t k_describe_topic_partitions =
    NAMES(kp_describe_topic_partitions_request_t,
          kp_describe_topic_partitions_request_topic_request_t,
          topics,
          offsetof(kp_describe_topic_partitions_request_topic_request_t, name),
          NONE,
          kp_describe_topic_partitions_response_t,
          kp_describe_topic_partitions_response_topic_t,
          topics,
          name,
          NONE,
          error_code,
          init_describe_topic_partitions_response_topic);
static const shape_t k_create_topics =
    NAMES(kp_create_topics_request_t,
          kp_create_topics_request_creatable_topic_t,
          topics,
          offsetof(kp_create_topics_request_creatable_topic_t, name),
          NONE,
          kp_create_topics_response_t,
          kp_create_topics_response_creatable_topic_result_t,
          topics,
          name,
          NONE,
          error_code,
          init_create_topics_response_creatable_topic_result);
static const shape_t k_delete_topics_v6 =
    NAMES(kp_delete_topics_request_t,
          kp_delete_topics_request_delete_topic_state_t,
          topics,
          offsetof(kp_delete_topics_request_delete_topic_state_t, name),
          offsetof(kp_delete_topics_request_delete_topic_state_t, topic_id),
          kp_delete_topics_response_t,
          kp_delete_topics_response_deletable_topic_result_t,
          responses,
          name,
          offsetof(kp_delete_topics_response_deletable_topic_result_t, topic_id),
          error_code,
          init_delete_topics_response_deletable_topic_result);
static const shape_t k_delete_topics = NAMES(kp_delete_topics_request_t,
                                             kp_str_t,
                                             topic_names,
                                             0,
                                             NONE,
                                             kp_delete_topics_response_t,
                                             kp_delete_topics_response_deletable_topic_result_t,
                                             responses,
                                             name,
                                             NONE,
                                             error_code,
                                             init_delete_topics_response_deletable_topic_result);
static const shape_t k_create_partitions =
    NAMES(kp_create_partitions_request_t,
          kp_create_partitions_request_topic_t,
          topics,
          offsetof(kp_create_partitions_request_topic_t, name),
          NONE,
          kp_create_partitions_response_t,
          kp_create_partitions_response_topic_result_t,
          results,
          name,
          NONE,
          error_code,
          init_create_partitions_response_topic_result);
static const shape_t k_describe_groups = NAMES(kp_describe_groups_request_t,
                                               kp_str_t,
                                               groups,
                                               0,
                                               NONE,
                                               kp_describe_groups_response_t,
                                               kp_describe_groups_response_described_group_t,
                                               groups,
                                               group_id,
                                               NONE,
                                               error_code,
                                               init_describe_groups_response_described_group);
static const shape_t k_consumer_group_describe =
    NAMES(kp_consumer_group_describe_request_t,
          kp_str_t,
          group_ids,
          0,
          NONE,
          kp_consumer_group_describe_response_t,
          kp_consumer_group_describe_response_described_group_t,
          groups,
          group_id,
          NONE,
          error_code,
          init_consumer_group_describe_response_described_group);
static const shape_t k_delete_groups = NAMES(kp_delete_groups_request_t,
                                             kp_str_t,
                                             groups_names,
                                             0,
                                             NONE,
                                             kp_delete_groups_response_t,
                                             kp_delete_groups_response_deletable_group_result_t,
                                             results,
                                             group_id,
                                             NONE,
                                             error_code,
                                             init_delete_groups_response_deletable_group_result);
static const shape_t k_find_coordinator = NAMES(kp_find_coordinator_request_t,
                                                kp_str_t,
                                                coordinator_keys,
                                                0,
                                                NONE,
                                                kp_find_coordinator_response_t,
                                                kp_find_coordinator_response_coordinator_t,
                                                coordinators,
                                                key,
                                                NONE,
                                                error_code,
                                                init_find_coordinator_response_coordinator);
static const shape_t k_offset_fetch_groups =
    NAMES(kp_offset_fetch_request_t,
          kp_offset_fetch_request_group_t,
          groups,
          offsetof(kp_offset_fetch_request_group_t, group_id),
          NONE,
          kp_offset_fetch_response_t,
          kp_offset_fetch_response_group_t,
          groups,
          group_id,
          NONE,
          error_code,
          init_offset_fetch_response_group);

/* Config resources: the resource type decides the rule. */
#define CONFIGS(Q, QT, R, RT, rarr, init)                                                          \
    {                                                                                              \
        offsetof(Q, resources), offsetof(Q, n_resources), sizeof(QT), offsetof(QT, resource_name), \
            NONE, offsetof(QT, resource_type), NONE, NONE, 0, 0, offsetof(R, rarr),                \
            offsetof(R, n_##rarr), sizeof(RT), offsetof(RT, resource_name), NONE,                  \
            offsetof(RT, error_code), offsetof(RT, resource_type), NONE, NONE, 0, 0, 0, init, NULL \
    }
static const shape_t k_describe_configs = CONFIGS(kp_describe_configs_request_t,
                                                  kp_describe_configs_request_resource_t,
                                                  kp_describe_configs_response_t,
                                                  kp_describe_configs_response_result_t,
                                                  results,
                                                  init_describe_configs_response_result);
static const shape_t k_alter_configs = CONFIGS(kp_alter_configs_request_t,
                                               kp_alter_configs_request_resource_t,
                                               kp_alter_configs_response_t,
                                               kp_alter_configs_response_resource_response_t,
                                               responses,
                                               init_alter_configs_response_resource_response);
static const shape_t k_incr_alter_configs =
    CONFIGS(kp_incremental_alter_configs_request_t,
            kp_incremental_alter_configs_request_alter_configs_resource_t,
            kp_incremental_alter_configs_response_t,
            kp_incremental_alter_configs_response_alter_configs_resource_response_t,
            responses,
            init_incremental_alter_configs_response_alter_configs_resource_response);

#define CFG_RES_TOPIC  2
#define CFG_RES_BROKER 4
#define CFG_RES_LOGGER 8

static int16_t
decide_config(kh_req_t *req, const acl_set_t *s, const void *e, kp_str_t name, void *arg)
{
    int op = *(int *)arg;
    int8_t type = AT(e, offsetof(kp_describe_configs_request_resource_t, resource_type), int8_t);
    if (type == CFG_RES_TOPIC)
        return allowed(req, s, op, ACL_RES_TOPIC, name) ? KP_ERR_NONE
                                                        : KP_ERR_TOPIC_AUTHORIZATION_FAILED;
    if (type == CFG_RES_BROKER || type == CFG_RES_LOGGER)
        return cluster_ok(req, s, op) ? KP_ERR_NONE : KP_ERR_CLUSTER_AUTHORIZATION_FAILED;
    return KP_ERR_NONE; /* the handler refuses unknown resource types */
}

/* ---- Requests refused as a whole ---- */

/* Answer req now with err in its top-level error field (and in every entry
 * remembered in req->acl). */
static void refuse(kh_req_t *req, int16_t err)
{
    void *r = kp_arena_alloc(&req->arena, req->api->response->struct_size);
    if (!r) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    req->api->response->init(r);
    switch (req->api->api_key) {
    case KP_API_JOIN_GROUP:
        ((kp_join_group_response_t *)r)->error_code = err;
        break;
    case KP_API_SYNC_GROUP:
        ((kp_sync_group_response_t *)r)->error_code = err;
        break;
    case KP_API_HEARTBEAT:
        ((kp_heartbeat_response_t *)r)->error_code = err;
        break;
    case KP_API_CONSUMER_GROUP_HEARTBEAT:
        ((kp_consumer_group_heartbeat_response_t *)r)->error_code = err;
        break;
    case KP_API_LEAVE_GROUP:
        ((kp_leave_group_response_t *)r)->error_code = err;
        break;
    case KP_API_INIT_PRODUCER_ID:
        ((kp_init_producer_id_response_t *)r)->error_code = err;
        ((kp_init_producer_id_response_t *)r)->producer_id = -1;
        ((kp_init_producer_id_response_t *)r)->producer_epoch = -1;
        break;
    case KP_API_FIND_COORDINATOR:
        ((kp_find_coordinator_response_t *)r)->error_code = err;
        ((kp_find_coordinator_response_t *)r)->node_id = -1;
        ((kp_find_coordinator_response_t *)r)->port = -1;
        break;
    case KP_API_OFFSET_FETCH:
        ((kp_offset_fetch_response_t *)r)->error_code = err;
        break;
    case KP_API_OFFSET_DELETE:
        ((kp_offset_delete_response_t *)r)->error_code = err;
        break;
    default: /* the entries carry the error */
        break;
    }
    kh_respond(req, r); /* kh_acl_respond adds the remembered entries */
}

/* ---- Per API ---- */

static const rule_t R_TOPIC_WRITE = {ACL_OP_WRITE, ACL_RES_TOPIC, KP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                     0};
static const rule_t R_TOPIC_READ = {ACL_OP_READ, ACL_RES_TOPIC, KP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                    0};
static const rule_t R_TOPIC_DESCRIBE = {ACL_OP_DESCRIBE, ACL_RES_TOPIC,
                                        KP_ERR_TOPIC_AUTHORIZATION_FAILED, 0};
static const rule_t R_TOPIC_DELETE = {ACL_OP_DELETE, ACL_RES_TOPIC,
                                      KP_ERR_TOPIC_AUTHORIZATION_FAILED, 0};
static const rule_t R_TOPIC_ALTER = {ACL_OP_ALTER, ACL_RES_TOPIC, KP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                     0};
static const rule_t R_TOPIC_CREATE = {ACL_OP_CREATE, ACL_RES_TOPIC,
                                      KP_ERR_TOPIC_AUTHORIZATION_FAILED, ACL_OP_CREATE};
static const rule_t R_GROUP_DESCRIBE = {ACL_OP_DESCRIBE, ACL_RES_GROUP,
                                        KP_ERR_GROUP_AUTHORIZATION_FAILED, 0};
static const rule_t R_GROUP_DELETE = {ACL_OP_DELETE, ACL_RES_GROUP,
                                      KP_ERR_GROUP_AUTHORIZATION_FAILED, 0};
static const rule_t R_TXN_DESCRIBE = {ACL_OP_DESCRIBE, ACL_RES_TRANSACTIONAL_ID,
                                      KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 0};

#define STRIP(sh, rule) strip(req, &(sh), req->msg, s, decide_rule, (void *)&(rule))

/* Metadata: undescribable topics are refused (or hidden from "all topics");
 * unknown topics that would be auto-created need CREATE. */
typedef struct {
    bool auto_create;
    bool cluster_create;
    meta_snap_t *snap;
} md_arg_t;

static int16_t
decide_metadata(kh_req_t *req, const acl_set_t *s, const void *e, kp_str_t name, void *arg)
{
    md_arg_t *m = arg;
    if (!allowed(req, s, ACL_OP_DESCRIBE, ACL_RES_TOPIC, name))
        return KP_ERR_TOPIC_AUTHORIZATION_FAILED;
    kp_str_t asked = AT(e, offsetof(kp_metadata_request_topic_t, name), kp_str_t);
    if (m->auto_create && !m->cluster_create && asked.len > 0 &&
        !meta_snap_find(m->snap, asked.ptr, (size_t)asked.len) &&
        !meta_topic_name_invalid(asked.ptr, (size_t)asked.len) &&
        !allowed(req, s, ACL_OP_CREATE, ACL_RES_TOPIC, asked))
        return KP_ERR_TOPIC_AUTHORIZATION_FAILED;
    return KP_ERR_NONE;
}

static int check_metadata(kh_req_t *req, const acl_set_t *s)
{
    kp_metadata_request_t *q = req->msg;
    int16_t v = req->hdr.request_api_version;
    if (q->n_topics < 0 || (v == 0 && q->n_topics == 0)) {
        req->acl->filter_topics = true;
        return 0;
    }
    md_arg_t m = {atomic_load(&req->ks->ctx->auto_create) &&
                      (v < 4 || q->allow_auto_topic_creation),
                  false, meta_snap_get(req->ks->ctx->meta)};
    if (m.auto_create)
        m.cluster_create = cluster_ok(req, s, ACL_OP_CREATE);
    int rc = strip(req, &k_metadata, q, s, decide_metadata, &m);
    meta_snap_put(m.snap);
    return rc;
}

/* OffsetFetch v8+: in each group left, refuse the undescribable topics (or
 * hide them when the group asks for all its topics). */
static int check_offset_fetch_topics(kh_req_t *req, const acl_set_t *s)
{
    kp_offset_fetch_request_t *q = req->msg;
    struct kh_acl_req *a = req->acl;
    if (q->n_groups <= 0)
        return 0;
    if (!(a->groups = kh_array(req, q->n_groups, sizeof(*a->groups))))
        return ST_E_NOMEM;
    a->n_groups = q->n_groups;
    for (int32_t i = 0; i < q->n_groups; i++) {
        kp_offset_fetch_request_group_t *g = &q->groups[i];
        a->groups[i].group_id = g->group_id;
        a->groups[i].filter_topics = g->n_topics < 0;
        int rc = strip_into(req, &a->groups[i].topics, &k_offset_fetch_group_topics, g, s,
                            decide_rule, (void *)&R_TOPIC_DESCRIBE);
        if (rc != 0)
            return rc;
    }
    return 0;
}

_Static_assert(offsetof(kp_join_group_request_t, group_id) == 0 &&
                   offsetof(kp_sync_group_request_t, group_id) == 0 &&
                   offsetof(kp_heartbeat_request_t, group_id) == 0 &&
                   offsetof(kp_leave_group_request_t, group_id) == 0,
               "check_api reads group_id at offset 0 of the group membership requests");

/* @return true when the handler may run. */
static bool check_api(kh_req_t *req, const acl_set_t *s)
{
    void *msg = req->msg;
    int16_t v = req->hdr.request_api_version;
    int rc = 0;
    switch (req->api->api_key) {
    case KP_API_PRODUCE: {
        kp_produce_request_t *q = msg;
        if (q->transactional_id.len >= 0 &&
            !allowed(req, s, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, q->transactional_id)) {
            int16_t err = KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
            if (strip(req, &k_produce, msg, s, decide_all, &err) != 0)
                kh_fail_conn(req, "out of memory");
            else if (q->acks != 0)
                refuse(req, err);
            else /* no response to carry the error: close, as below */
                kh_fail_conn(req, "acks=0 produce with a transactional id the principal "
                                  "may not write");
            return false;
        }
        rc = STRIP(k_produce, R_TOPIC_WRITE);
        if (rc == 0 && q->acks == 0 && req->acl->top.n > 0) {
            /* No response carries the error: like Kafka, close the connection so
             * the client notices (here before appending the authorized rest). */
            kh_fail_conn(req, "acks=0 produce to a topic the principal may not write");
            return false;
        }
        break;
    }
    case KP_API_FETCH: {
        kp_fetch_request_t *q = msg;
        int32_t replica = v >= 15 ? q->replica_state.replica_id : q->replica_id;
        if (replica >= 0) { /* a follower: CLUSTER_ACTION, no per-topic check */
            int16_t err = KP_ERR_TOPIC_AUTHORIZATION_FAILED;
            if (!cluster_ok(req, s, ACL_OP_CLUSTER_ACTION))
                rc = strip(req, &k_fetch, msg, s, decide_all, &err);
            break;
        }
        rc = STRIP(k_fetch, R_TOPIC_READ);
        break;
    }
    case KP_API_LIST_OFFSETS:
        rc = STRIP(k_list_offsets, R_TOPIC_DESCRIBE);
        break;
    case KP_API_OFFSET_FOR_LEADER_EPOCH: {
        kp_offset_for_leader_epoch_request_t *q = msg;
        if (v >= 3 && q->replica_id >= 0) { /* a follower: as Fetch */
            int16_t err = KP_ERR_TOPIC_AUTHORIZATION_FAILED;
            if (!cluster_ok(req, s, ACL_OP_CLUSTER_ACTION))
                rc = strip(req, &k_ofle, msg, s, decide_all, &err);
            break;
        }
        rc = STRIP(k_ofle, R_TOPIC_DESCRIBE);
        break;
    }
    case KP_API_METADATA:
        rc = check_metadata(req, s);
        break;
    case KP_API_DESCRIBE_TOPIC_PARTITIONS: { /* as Metadata: all topics hides, names refuse */
        kp_describe_topic_partitions_request_t *q = msg;
        if (q->n_topics == 0) {
            req->acl->filter_topics = true;
            break;
        }
        rc = STRIP(k_describe_topic_partitions, R_TOPIC_DESCRIBE);
        if (rc == 0 && q->n_topics == 0)
            q->n_topics = -1; /* every named topic was refused: answer none, not all */
        break;
    }
    case KP_API_CREATE_TOPICS:
        rc = STRIP(k_create_topics, R_TOPIC_CREATE);
        break;
    case KP_API_DELETE_TOPICS:
        rc = v >= 6 ? STRIP(k_delete_topics_v6, R_TOPIC_DELETE)
                    : STRIP(k_delete_topics, R_TOPIC_DELETE);
        break;
    case KP_API_DELETE_RECORDS:
        rc = STRIP(k_delete_records, R_TOPIC_DELETE);
        break;
    case KP_API_CREATE_PARTITIONS:
        rc = STRIP(k_create_partitions, R_TOPIC_ALTER);
        break;
    case KP_API_DESCRIBE_CONFIGS: {
        int op = ACL_OP_DESCRIBE_CONFIGS;
        rc = strip(req, &k_describe_configs, msg, s, decide_config, &op);
        break;
    }
    case KP_API_ALTER_CONFIGS:
    case KP_API_INCREMENTAL_ALTER_CONFIGS: {
        int op = ACL_OP_ALTER_CONFIGS;
        rc = strip(req,
                   req->api->api_key == KP_API_ALTER_CONFIGS ? &k_alter_configs
                                                             : &k_incr_alter_configs,
                   msg, s, decide_config, &op);
        break;
    }
    case KP_API_INIT_PRODUCER_ID: {
        kp_init_producer_id_request_t *q = msg;
        if (q->transactional_id.len >= 0) {
            if (!allowed(req, s, ACL_OP_WRITE, ACL_RES_TRANSACTIONAL_ID, q->transactional_id)) {
                refuse(req, KP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
                return false;
            }
        } else if (!cluster_ok(req, s, ACL_OP_IDEMPOTENT_WRITE) &&
                   !acl_authorize_any(s, req->ks->ctx->acl, req->acl->principal, req->acl->host,
                                      ACL_OP_WRITE, ACL_RES_TOPIC)) {
            refuse(req, KP_ERR_CLUSTER_AUTHORIZATION_FAILED);
            return false;
        }
        break;
    }
    case KP_API_FIND_COORDINATOR: {
        kp_find_coordinator_request_t *q = msg;
        const rule_t *r = q->key_type == 1 ? &R_TXN_DESCRIBE : &R_GROUP_DESCRIBE;
        if (v >= 4) {
            rc = strip(req, &k_find_coordinator, msg, s, decide_rule, (void *)r);
            break;
        }
        if (!allowed(req, s, r->op, r->res, q->key)) {
            refuse(req, r->err);
            return false;
        }
        break;
    }
    case KP_API_JOIN_GROUP:
    case KP_API_SYNC_GROUP:
    case KP_API_HEARTBEAT:
    case KP_API_LEAVE_GROUP:
    case KP_API_CONSUMER_GROUP_HEARTBEAT: {
        kp_str_t group = AT(msg, 0, kp_str_t); /* group_id comes first in each */
        if (!allowed(req, s, ACL_OP_READ, ACL_RES_GROUP, group)) {
            refuse(req, KP_ERR_GROUP_AUTHORIZATION_FAILED);
            return false;
        }
        break;
    }
    case KP_API_OFFSET_COMMIT: {
        kp_offset_commit_request_t *q = msg;
        if (!allowed(req, s, ACL_OP_READ, ACL_RES_GROUP, q->group_id)) {
            int16_t err = KP_ERR_GROUP_AUTHORIZATION_FAILED;
            if (strip(req, &k_offset_commit, msg, s, decide_all, &err) == 0)
                refuse(req, err);
            else
                kh_fail_conn(req, "out of memory");
            return false;
        }
        rc = STRIP(k_offset_commit, R_TOPIC_READ);
        break;
    }
    case KP_API_OFFSET_FETCH: {
        kp_offset_fetch_request_t *q = msg;
        if (v >= 8) { /* batched groups: refuse each undescribable group */
            rc = STRIP(k_offset_fetch_groups, R_GROUP_DESCRIBE);
            if (rc == 0)
                rc = check_offset_fetch_topics(req, s);
            break;
        }
        if (!allowed(req, s, ACL_OP_DESCRIBE, ACL_RES_GROUP, q->group_id)) {
            int16_t err = KP_ERR_GROUP_AUTHORIZATION_FAILED;
            if (strip(req, &k_offset_fetch, msg, s, decide_all, &err) == 0)
                refuse(req, err);
            else
                kh_fail_conn(req, "out of memory");
            return false;
        }
        if (q->n_topics < 0)
            req->acl->filter_topics = true;
        else
            rc = STRIP(k_offset_fetch, R_TOPIC_DESCRIBE);
        break;
    }
    case KP_API_OFFSET_DELETE: {
        kp_offset_delete_request_t *q = msg;
        if (!allowed(req, s, ACL_OP_DELETE, ACL_RES_GROUP, q->group_id)) {
            refuse(req, KP_ERR_GROUP_AUTHORIZATION_FAILED);
            return false;
        }
        rc = STRIP(k_offset_delete, R_TOPIC_READ);
        break;
    }
    case KP_API_LIST_GROUPS:
        req->acl->filter_groups = !cluster_ok(req, s, ACL_OP_DESCRIBE);
        break;
    case KP_API_DESCRIBE_GROUPS:
        rc = STRIP(k_describe_groups, R_GROUP_DESCRIBE);
        break;
    case KP_API_CONSUMER_GROUP_DESCRIBE:
        rc = STRIP(k_consumer_group_describe, R_GROUP_DESCRIBE);
        break;
    case KP_API_DELETE_GROUPS:
        rc = STRIP(k_delete_groups, R_GROUP_DELETE);
        break;
    default: /* ApiVersions, DescribeCluster, SASL, ACL APIs: checked by their handler or open */
        break;
    }
    if (rc != 0) {
        kh_fail_conn(req, "out of memory");
        return false;
    }
    return true;
}

/* The host part of "IP:port" (IPv6 keeps its colons). */
static const char *peer_host(kh_req_t *req, const char *peer)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    return kh_cstr(req, (kp_str_t){peer, (int32_t)n});
}

static bool acl_state(kh_req_t *req)
{
    if (req->acl)
        return true;
    struct kh_acl_req *a = kp_arena_alloc(&req->arena, sizeof(*a));
    if (!a)
        return false;
    memset(a, 0, sizeof(*a));
    a->principal = kh_cstr(req, kp_str_from_cstr(kh_req_principal(req)));
    a->host = peer_host(req, kh_req_peer(req));
    req->acl = a;
    return a->principal && a->host;
}

bool kh_acl_check(kh_req_t *req)
{
    if (!req->ks->ctx->acl)
        return true;
    if (!acl_state(req)) {
        kh_fail_conn(req, "out of memory");
        return false;
    }
    acl_set_t *s = acls_of(req);
    bool run = check_api(req, s);
    acl_set_put(s);
    return run;
}

/* ---- Responses ---- */

/* Keep only the elements (size bytes each, a kp_str_t name at name_off) of
 * the response list *arr / *n that the principal may DESCRIBE as res. */
static void filter_list(
    kh_req_t *req, const acl_set_t *s, int res, void *arr, int32_t *n, size_t size, size_t name_off)
{
    char *base = arr;
    int32_t w = 0;
    for (int32_t i = 0; i < *n; i++) {
        char *e = base + (size_t)i * size;
        if (!allowed(req, s, ACL_OP_DESCRIBE, res, AT(e, name_off, kp_str_t)))
            continue;
        if (w != i)
            memcpy(base + (size_t)w * size, e, size);
        w++;
    }
    *n = *n > 0 ? w : *n;
}

/* Kafka's authorized-operations bit sets (1 << AclOperation) of a resource. */
static int32_t ops_mask(kh_req_t *req, const acl_set_t *s, int res, kp_str_t name)
{
    static const int8_t topic_ops[] = {ACL_OP_READ,
                                       ACL_OP_WRITE,
                                       ACL_OP_CREATE,
                                       ACL_OP_DELETE,
                                       ACL_OP_ALTER,
                                       ACL_OP_DESCRIBE,
                                       ACL_OP_DESCRIBE_CONFIGS,
                                       ACL_OP_ALTER_CONFIGS,
                                       0};
    static const int8_t group_ops[] = {ACL_OP_READ, ACL_OP_DESCRIBE, ACL_OP_DELETE, 0};
    static const int8_t cluster_ops[] = {ACL_OP_CREATE,           ACL_OP_CLUSTER_ACTION,
                                         ACL_OP_DESCRIBE_CONFIGS, ACL_OP_ALTER_CONFIGS,
                                         ACL_OP_IDEMPOTENT_WRITE, ACL_OP_ALTER,
                                         ACL_OP_DESCRIBE,         0};
    const int8_t *ops = res == ACL_RES_TOPIC   ? topic_ops
                        : res == ACL_RES_GROUP ? group_ops
                                               : cluster_ops;
    int32_t mask = 0;
    for (int i = 0; ops[i]; i++)
        if (allowed(req, s, ops[i], res, name))
            mask |= (int32_t)1 << ops[i];
    return mask;
}

/* Fill the authorized-operations fields a request asked for (Metadata v8+,
 * DescribeGroups v3+, DescribeCluster); hide the configs of created topics
 * the principal may not DESCRIBE_CONFIGS (CreateTopics v5+). */
static void fill_authorized_ops(kh_req_t *req, const acl_set_t *s, void *resp)
{
    int16_t v = req->hdr.request_api_version;
    kp_str_t cluster = KP_STR_LIT(ACL_CLUSTER_NAME);
    switch (req->api->api_key) {
    case KP_API_METADATA: {
        const kp_metadata_request_t *q = req->msg;
        kp_metadata_response_t *r = resp;
        for (int32_t i = 0; v >= 8 && q->include_topic_authorized_operations && i < r->n_topics;
             i++)
            if (r->topics[i].error_code == KP_ERR_NONE)
                r->topics[i].topic_authorized_operations =
                    ops_mask(req, s, ACL_RES_TOPIC, r->topics[i].name);
        if (v >= 8 && v <= 10 && q->include_cluster_authorized_operations)
            r->cluster_authorized_operations = ops_mask(req, s, ACL_RES_CLUSTER, cluster);
        break;
    }
    case KP_API_DESCRIBE_GROUPS: {
        const kp_describe_groups_request_t *q = req->msg;
        kp_describe_groups_response_t *r = resp;
        for (int32_t i = 0; v >= 3 && q->include_authorized_operations && i < r->n_groups; i++)
            if (r->groups[i].error_code == KP_ERR_NONE)
                r->groups[i].authorized_operations =
                    ops_mask(req, s, ACL_RES_GROUP, r->groups[i].group_id);
        break;
    }
    case KP_API_CREATE_TOPICS: { /* v5+ configs need DESCRIBE_CONFIGS on the topic */
        kp_create_topics_response_t *r = resp;
        for (int32_t i = 0; v >= 5 && i < r->n_topics; i++) {
            kp_create_topics_response_creatable_topic_result_t *t = &r->topics[i];
            if (t->error_code != KP_ERR_NONE ||
                allowed(req, s, ACL_OP_DESCRIBE_CONFIGS, ACL_RES_TOPIC, t->name))
                continue;
            t->topic_config_error_code = KP_ERR_TOPIC_AUTHORIZATION_FAILED;
            t->n_configs = 0;
            t->num_partitions = -1;
            t->replication_factor = -1;
        }
        break;
    }
    case KP_API_DESCRIBE_CLUSTER: {
        const kp_describe_cluster_request_t *q = req->msg;
        kp_describe_cluster_response_t *r = resp;
        if (q->include_cluster_authorized_operations)
            r->cluster_authorized_operations = ops_mask(req, s, ACL_RES_CLUSTER, cluster);
        break;
    }
    default:
        break;
    }
}

/* OffsetFetch v8+: per group, hide or add back its refused topics. */
static void respond_offset_fetch_groups(kh_req_t *req, kp_offset_fetch_response_t *r)
{
    struct kh_acl_req *a = req->acl;
    acl_set_t *s = acls_of(req);
    for (int32_t i = 0; i < r->n_groups; i++) {
        kp_offset_fetch_response_group_t *rg = &r->groups[i];
        for (int k = 0; k < a->n_groups; k++) {
            if (!kp_str_eq(a->groups[k].group_id, rg->group_id))
                continue;
            if (a->groups[k].filter_topics)
                filter_list(req, s, ACL_RES_TOPIC, rg->topics, &rg->n_topics, sizeof(*rg->topics),
                            offsetof(kp_offset_fetch_response_topics_t, name));
            if (patch(req, &a->groups[k].topics, rg) != 0)
                ST_WARN("kafka", "out of memory adding refused topics to an OffsetFetch response");
            break;
        }
    }
    acl_set_put(s);
}

void kh_acl_respond(kh_req_t *req, void *resp)
{
    struct kh_acl_req *a = req->acl;
    if (!a)
        return;
    int16_t key = req->api->api_key;
    if (a->filter_topics || a->filter_groups || key == KP_API_METADATA ||
        key == KP_API_DESCRIBE_GROUPS || key == KP_API_DESCRIBE_CLUSTER ||
        key == KP_API_CREATE_TOPICS) {
        acl_set_t *s = acls_of(req);
        fill_authorized_ops(req, s, resp);
        if (a->filter_topics && req->api->api_key == KP_API_METADATA) {
            kp_metadata_response_t *r = resp;
            filter_list(req, s, ACL_RES_TOPIC, r->topics, &r->n_topics, sizeof(*r->topics),
                        offsetof(kp_metadata_response_topic_t, name));
        } else if (a->filter_topics && req->api->api_key == KP_API_DESCRIBE_TOPIC_PARTITIONS) {
            kp_describe_topic_partitions_response_t *r = resp;
            filter_list(req, s, ACL_RES_TOPIC, r->topics, &r->n_topics, sizeof(*r->topics),
                        offsetof(kp_describe_topic_partitions_response_topic_t, name));
        } else if (a->filter_topics && req->api->api_key == KP_API_OFFSET_FETCH) {
            kp_offset_fetch_response_t *r = resp;
            filter_list(req, s, ACL_RES_TOPIC, r->topics, &r->n_topics, sizeof(*r->topics),
                        offsetof(kp_offset_fetch_response_topic_t, name));
        }
        if (a->filter_groups) {
            kp_list_groups_response_t *r = resp;
            filter_list(req, s, ACL_RES_GROUP, r->groups, &r->n_groups, sizeof(*r->groups),
                        offsetof(kp_list_groups_response_listed_group_t, group_id));
        }
        acl_set_put(s);
    }
    if (a->n_groups && req->api->api_key == KP_API_OFFSET_FETCH)
        respond_offset_fetch_groups(req, resp);
    if (patch(req, &a->top, resp) != 0)
        ST_WARN("kafka", "out of memory adding refused entries to a %s response", req->api->name);
}

/* ---- Cluster checks of handlers that answer them themselves ---- */

bool kh_acl_allows(kh_req_t *req, int op, int res, kp_str_t name)
{
    if (!req->ks->ctx->acl)
        return true;
    if (!acl_state(req))
        return false;
    acl_set_t *s = acls_of(req);
    bool ok = allowed(req, s, op, res, name);
    acl_set_put(s);
    return ok;
}

int16_t kh_acl_cluster(kh_req_t *req, int op)
{
    if (!req->ks->ctx->acl)
        return KP_ERR_NONE;
    if (!acl_state(req))
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    acl_set_t *s = acls_of(req);
    bool ok = cluster_ok(req, s, op);
    acl_set_put(s);
    return ok ? KP_ERR_NONE : KP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}
