/* kh_acls.c - the ACL APIs: CreateAcls, DescribeAcls, DeleteAcls (versions 0-3).
 * Data path: the request is checked (ALTER, resp. DESCRIBE, on the cluster:
 * kh_acl_cluster) and validated on the connection's shard; DescribeAcls
 * answers from the current ACL set (core/acl, no I/O); Create/DeleteAcls
 * change meta.db on the thread pool (meta_acls_change), which publishes the
 * new set before the answer. DeleteAcls matches its filters against the
 * set it read, then deletes exactly those bindings.
 * Invariant: with authorization off (ctx->acl NULL) every ACL API answers
 * SECURITY_DISABLED, as Kafka without an authorizer. */
#include "core/st_log.h"
#include "kafka/kh_int.h"

#include <string.h>

/* KP_ERR_NONE, or the error that answers the whole request. */
static int16_t acl_api_allowed(kh_req_t *req, int op)
{
    return req->ks->ctx->acl ? kh_acl_cluster(req, op) : KP_ERR_SECURITY_DISABLED;
}

static const char *str_or_null(kh_req_t *req, kp_str_t s)
{
    return s.len < 0 ? NULL : kh_cstr(req, s);
}

static kp_str_t kstr(const char *s)
{
    return kp_str_from_cstr(s);
}

typedef struct {
    kh_req_t *req;
    void *resp;
} acl_wait_t;

static void on_acls_created(void *arg, int status, const char *msg)
{
    acl_wait_t *w = arg;
    if (!kh_req_op_back(w->req))
        return; /* the request was dropped (its connection failed) and is freed */
    kp_create_acls_response_t *r = w->resp;
    for (int32_t i = 0; status != 0 && i < r->n_results; i++)
        if (r->results[i].error_code == KP_ERR_NONE) {
            r->results[i].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            r->results[i].error_message = kstr(kh_cstr(w->req, kstr(msg ? msg : "error")));
        }
    kh_respond(w->req, r);
}

void kh_create_acls(kh_req_t *req)
{
    kp_create_acls_request_t *q = req->msg;
    kp_create_acls_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    int32_t n = q->n_creations > 0 ? q->n_creations : 0;
    acl_entry_t *add = kh_array(req, n, sizeof(*add));
    acl_wait_t *w = kp_arena_alloc(&req->arena, sizeof(*w));
    if (!r || !add || !w)
        goto oom;
    kp_create_acls_response_init(r);
    r->results = kh_array(req, n, sizeof(*r->results));
    if (!r->results)
        goto oom;
    r->n_results = n;
    int16_t err = acl_api_allowed(req, ACL_OP_ALTER);
    int n_add = 0;
    for (int32_t i = 0; i < n; i++) {
        const kp_create_acls_request_acl_creation_t *c = &q->creations[i];
        kp_create_acls_response_acl_creation_result_t *res = &r->results[i];
        kp_create_acls_response_acl_creation_result_init(res);
        res->error_message = KP_STR_NULL;
        if (err != KP_ERR_NONE) {
            res->error_code = err;
            continue;
        }
        acl_entry_t e = {c->resource_type,
                         req->hdr.request_api_version >= 1 ? c->resource_pattern_type
                                                           : ACL_PAT_LITERAL,
                         c->operation,
                         c->permission_type,
                         str_or_null(req, c->resource_name),
                         str_or_null(req, c->principal),
                         str_or_null(req, c->host)};
        const char *why = acl_binding_invalid(&e);
        if (why) {
            res->error_code = KP_ERR_INVALID_REQUEST;
            res->error_message = kstr(why);
            continue;
        }
        add[n_add++] = e;
    }
    if (n_add == 0) {
        kh_respond(req, r);
        return;
    }
    w->req = req;
    w->resp = r;
    ST_INFO("kafka", "principal=%s creates %d ACLs", kh_req_principal(req), n_add);
    kh_req_op_out(req); /* back in on_acls_created */
    meta_acls_change(req->ks->ctx->meta, rt_shard_loop(req->ks->sh), add, n_add, NULL, 0,
                     on_acls_created, w);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

static acl_entry_t filter_of(kh_req_t *req,
                             int8_t res,
                             kp_str_t name,
                             int8_t pattern,
                             kp_str_t principal,
                             kp_str_t host,
                             int8_t op,
                             int8_t perm)
{
    return (acl_entry_t){res,
                         req->hdr.request_api_version >= 1 ? pattern : ACL_PAT_LITERAL,
                         op,
                         perm,
                         str_or_null(req, name),
                         str_or_null(req, principal),
                         str_or_null(req, host)};
}

void kh_describe_acls(kh_req_t *req)
{
    kp_describe_acls_request_t *q = req->msg;
    kp_describe_acls_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    if (!r)
        goto oom;
    kp_describe_acls_response_init(r);
    r->error_message = KP_STR_NULL;
    r->error_code = acl_api_allowed(req, ACL_OP_DESCRIBE);
    acl_entry_t f =
        filter_of(req, q->resource_type_filter, q->resource_name_filter, q->pattern_type_filter,
                  q->principal_filter, q->host_filter, q->operation, q->permission_type);
    const char *why = r->error_code == KP_ERR_NONE ? acl_filter_invalid(&f) : NULL;
    if (why) {
        r->error_code = KP_ERR_INVALID_REQUEST;
        r->error_message = kstr(why);
    }
    if (r->error_code != KP_ERR_NONE) {
        kh_respond(req, r);
        return;
    }
    acl_set_t *s = meta_acls_get(req->ks->ctx->meta);
    int n;
    const acl_entry_t *e = acl_set_entries(s, &n);
    /* Entries are sorted by resource: one response resource per run. */
    r->resources = kh_array(req, n, sizeof(*r->resources));
    kp_describe_acls_response_acl_description_t *d = kh_array(req, n, sizeof(*d));
    if (!r->resources || !d) {
        acl_set_put(s);
        goto oom;
    }
    r->n_resources = 0;
    kp_describe_acls_response_resource_t *cur = NULL;
    for (int i = 0; i < n; i++) {
        if (!acl_filter_matches(&f, &e[i]))
            continue;
        if (!cur || cur->resource_type != e[i].res_type || cur->pattern_type != e[i].pattern ||
            strcmp(cur->resource_name.ptr, e[i].name) != 0) {
            cur = &r->resources[r->n_resources++];
            kp_describe_acls_response_resource_init(cur);
            cur->resource_type = e[i].res_type;
            cur->pattern_type = e[i].pattern;
            cur->resource_name = kstr(kh_cstr(req, kstr(e[i].name)));
            cur->acls = d;
            cur->n_acls = 0;
        }
        kp_describe_acls_response_acl_description_t *x = &d[0];
        d++;
        cur->n_acls++;
        x->principal = kstr(kh_cstr(req, kstr(e[i].principal)));
        x->host = kstr(kh_cstr(req, kstr(e[i].host)));
        x->operation = e[i].op;
        x->permission_type = e[i].perm;
    }
    acl_set_put(s);
    kh_respond(req, r);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

static void on_acls_deleted(void *arg, int status, const char *msg)
{
    acl_wait_t *w = arg;
    if (!kh_req_op_back(w->req))
        return; /* the request was dropped (its connection failed) and is freed */
    kp_delete_acls_response_t *r = w->resp;
    for (int32_t i = 0; status != 0 && i < r->n_filter_results; i++)
        if (r->filter_results[i].error_code == KP_ERR_NONE) {
            r->filter_results[i].error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            r->filter_results[i].error_message = kstr(kh_cstr(w->req, kstr(msg ? msg : "error")));
            r->filter_results[i].n_matching_acls = 0;
        }
    kh_respond(w->req, r);
}

void kh_delete_acls(kh_req_t *req)
{
    kp_delete_acls_request_t *q = req->msg;
    kp_delete_acls_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    acl_wait_t *w = kp_arena_alloc(&req->arena, sizeof(*w));
    int32_t nf = q->n_filters > 0 ? q->n_filters : 0;
    if (!r || !w)
        goto oom;
    kp_delete_acls_response_init(r);
    r->filter_results = kh_array(req, nf, sizeof(*r->filter_results));
    if (!r->filter_results)
        goto oom;
    r->n_filter_results = nf;
    int16_t err = acl_api_allowed(req, ACL_OP_ALTER);
    acl_set_t *s = err == KP_ERR_NONE ? meta_acls_get(req->ks->ctx->meta) : NULL;
    int n;
    const acl_entry_t *e = acl_set_entries(s, &n);
    acl_entry_t *del = kh_array(req, n, sizeof(*del));
    bool *taken = kh_array(req, n, sizeof(*taken));
    int n_del = 0;
    if (!del || !taken) {
        acl_set_put(s);
        goto oom;
    }
    for (int32_t k = 0; k < nf; k++) {
        const kp_delete_acls_request_filter_t *qf = &q->filters[k];
        kp_delete_acls_response_filter_result_t *fr = &r->filter_results[k];
        kp_delete_acls_response_filter_result_init(fr);
        fr->error_message = KP_STR_NULL;
        fr->error_code = err;
        if (err != KP_ERR_NONE)
            continue;
        acl_entry_t f = filter_of(req, qf->resource_type_filter, qf->resource_name_filter,
                                  qf->pattern_type_filter, qf->principal_filter, qf->host_filter,
                                  qf->operation, qf->permission_type);
        const char *why = acl_filter_invalid(&f);
        if (why) {
            fr->error_code = KP_ERR_INVALID_REQUEST;
            fr->error_message = kstr(why);
            continue;
        }
        fr->matching_acls = kh_array(req, n, sizeof(*fr->matching_acls));
        if (!fr->matching_acls) {
            acl_set_put(s);
            goto oom;
        }
        for (int i = 0; i < n; i++) {
            if (!acl_filter_matches(&f, &e[i]))
                continue;
            kp_delete_acls_response_matching_acl_t *m = &fr->matching_acls[fr->n_matching_acls++];
            kp_delete_acls_response_matching_acl_init(m);
            m->error_message = KP_STR_NULL;
            m->resource_type = e[i].res_type;
            m->pattern_type = e[i].pattern;
            m->operation = e[i].op;
            m->permission_type = e[i].perm;
            m->resource_name = kstr(kh_cstr(req, kstr(e[i].name)));
            m->principal = kstr(kh_cstr(req, kstr(e[i].principal)));
            m->host = kstr(kh_cstr(req, kstr(e[i].host)));
            if (!taken[i]) {
                taken[i] = true;
                del[n_del++] =
                    (acl_entry_t){e[i].res_type,        e[i].pattern,     e[i].op,    e[i].perm,
                                  m->resource_name.ptr, m->principal.ptr, m->host.ptr};
            }
        }
    }
    acl_set_put(s);
    if (n_del == 0) {
        kh_respond(req, r);
        return;
    }
    w->req = req;
    w->resp = r;
    ST_INFO("kafka", "principal=%s deletes %d ACLs", kh_req_principal(req), n_del);
    kh_req_op_out(req); /* back in on_acls_deleted */
    meta_acls_change(req->ks->ctx->meta, rt_shard_loop(req->ks->sh), NULL, 0, del, n_del,
                     on_acls_deleted, w);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}
