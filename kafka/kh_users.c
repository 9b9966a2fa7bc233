/* kh_users.c - DescribeUserScramCredentials and AlterUserScramCredentials:
 * SCRAM users managed over the Kafka API (kafka-configs --alter
 * --add-config 'SCRAM-SHA-512=[password=...]', AdminClient).
 * Data path: Describe reads the users snapshot on the connection's shard;
 * Alter validates each change here, turns the client's salted password into
 * StoredKey/ServerKey (the salted password itself is never stored), then
 * meta_users_alter() writes them on the thread pool and publishes the next
 * snapshot, which the next SaslAuthenticate on any shard sees.
 * Errors follow Kafka: RESOURCE_NOT_FOUND (describe or delete of an absent
 * credential), DUPLICATE_RESOURCE (a user twice), UNSUPPORTED_SASL_MECHANISM,
 * UNACCEPTABLE_CREDENTIAL (empty name, iterations outside [4096, 16384],
 * empty or oversized salt or salted password). */
#include "core/acl.h"
#include "core/st_log.h"
#include "core/st_scram.h"
#include "kafka/kh_int.h"

#include <openssl/crypto.h>
#include <string.h>

/* ---- DescribeUserScramCredentials ---- */

/* Fill r with the credentials of name (NUL-terminated) in u. */
static void describe_one(kh_req_t *req,
                         const meta_users_t *u,
                         const char *name,
                         kp_describe_user_scram_credentials_response_result_t *r)
{
    kp_describe_user_scram_credentials_response_result_init(r);
    r->user = kp_str_from_cstr(name);
    r->error_message = KP_STR_NULL;
    r->credential_infos = kh_array(req, 2, sizeof(*r->credential_infos));
    if (!r->credential_infos) {
        r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    for (int m = ST_SCRAM_SHA_256; m <= ST_SCRAM_SHA_512; m++) {
        const meta_scram_cred_t *c = meta_users_find(u, name, strlen(name), m);
        if (!c)
            continue;
        r->credential_infos[r->n_credential_infos].mechanism = (int8_t)m;
        r->credential_infos[r->n_credential_infos].iterations = c->iterations;
        r->n_credential_infos++;
    }
    if (r->n_credential_infos == 0) {
        r->error_code = KP_ERR_RESOURCE_NOT_FOUND;
        r->error_message = KP_STR_LIT("Attempt to describe a user credential that does not exist");
    }
}

void kh_describe_user_scram_credentials(kh_req_t *req)
{
    const kp_describe_user_scram_credentials_request_t *q = req->msg;
    kp_describe_user_scram_credentials_response_t resp;
    kp_describe_user_scram_credentials_response_init(&resp);
    resp.error_message = KP_STR_NULL;
    resp.error_code = kh_acl_cluster(req, ACL_OP_DESCRIBE); /* Kafka: DESCRIBE on the cluster */
    if (resp.error_code != KP_ERR_NONE) {
        kh_respond(req, &resp);
        return;
    }
    meta_users_t *u = meta_users_get(req->ks->ctx->meta);
    if (q->n_users <= 0) { /* null or empty: every user */
        resp.results = kh_array(req, u->n_creds, sizeof(*resp.results));
        for (int i = 0; resp.results && i < u->n_creds; i++) {
            if (i > 0 && !strcmp(u->creds[i].name, u->creds[i - 1].name))
                continue; /* sorted by name: one result per user */
            char *name = kh_cstr(req, kp_str_from_cstr(u->creds[i].name));
            if (name)
                describe_one(req, u, name, &resp.results[resp.n_results++]);
        }
    } else {
        resp.results = kh_array(req, q->n_users, sizeof(*resp.results));
        for (int32_t i = 0; resp.results && i < q->n_users; i++) {
            kp_describe_user_scram_credentials_response_result_t *r =
                &resp.results[resp.n_results++];
            char *name = kh_cstr(req, q->users[i].name);
            bool is_dup = false;
            for (int32_t k = 0; k < q->n_users && !is_dup; k++)
                is_dup = k != i && kp_str_eq(q->users[k].name, q->users[i].name);
            if (!name) {
                kp_describe_user_scram_credentials_response_result_init(r);
                r->error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
            } else if (is_dup) {
                kp_describe_user_scram_credentials_response_result_init(r);
                r->user = kp_str_from_cstr(name);
                r->error_code = KP_ERR_DUPLICATE_RESOURCE;
                r->error_message = KP_STR_LIT("Cannot describe SCRAM credentials for the same "
                                              "user twice in a single request");
            } else {
                describe_one(req, u, name, r);
            }
        }
    }
    if (!resp.results)
        resp.error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
    kh_respond(req, &resp);
    meta_users_put(u); /* after encoding: names were borrowed from it */
}

/* ---- AlterUserScramCredentials ---- */

typedef struct {
    meta_scram_change_t *changes; /* arena */
    int n;
    kp_alter_user_scram_credentials_response_result_t *results; /* arena, one per user */
    int n_results;
    int *result_of; /* arena: [change] index of its user's result */
} alter_t;

/* The result slot of user name, added on first sight. */
static int result_for(alter_t *a, kp_str_t name)
{
    for (int i = 0; i < a->n_results; i++)
        if (kp_str_eq(a->results[i].user, name))
            return i;
    kp_alter_user_scram_credentials_response_result_init(&a->results[a->n_results]);
    a->results[a->n_results].user = name;
    a->results[a->n_results].error_message = KP_STR_NULL;
    return a->n_results++;
}

static void set_error(alter_t *a, int r, int16_t code, const char *msg)
{
    if (a->results[r].error_code != KP_ERR_NONE)
        return; /* the first error of a user wins */
    a->results[r].error_code = code;
    a->results[r].error_message = kp_str_from_cstr(msg);
}

static void on_altered(void *arg, int status, const char *msg)
{
    kh_req_t *req = arg;
    if (!kh_req_op_back(req))
        return; /* the request was dropped meanwhile and is freed */
    alter_t *a = req->state;
    for (int k = 0; k < a->n; k++) {
        int st = a->changes[k].status;
        int r = a->result_of[k];
        if (st == ST_E_NOTFOUND)
            set_error(a, r, KP_ERR_RESOURCE_NOT_FOUND,
                      "Attempt to delete a user credential that does not exist");
        else if (st < 0)
            set_error(a, r, kh_errcode_from_st(st), "metadata store error");
    }
    if (status != 0)
        ST_WARN("kafka", "AlterUserScramCredentials: %s (%s)", msg ? msg : "", st_strerror(status));
    for (int k = 0; k < a->n; k++) {
        OPENSSL_cleanse(a->changes[k].cred.stored_key, sizeof(a->changes[k].cred.stored_key));
        OPENSSL_cleanse(a->changes[k].cred.server_key, sizeof(a->changes[k].cred.server_key));
    }
    kp_alter_user_scram_credentials_response_t resp;
    kp_alter_user_scram_credentials_response_init(&resp);
    resp.results = a->results;
    resp.n_results = a->n_results;
    kh_respond(req, &resp);
}

/* Validate one change (name, mechanism) and register it; an error marks
 * the change skipped (status 1) and its user's result. */
static meta_scram_change_t *
add_change(kh_req_t *req, alter_t *a, kp_str_t name, int8_t mech, bool is_delete)
{
    int k = a->n++;
    meta_scram_change_t *ch = &a->changes[k];
    int r = a->result_of[k] = result_for(a, name);
    ch->is_delete = is_delete;
    ch->cred.mechanism = mech;
    ch->cred.name = kh_cstr(req, name);
    if (name.len <= 0 || name.len > ST_SCRAM_USER_MAX || memchr(name.ptr, 0, (size_t)name.len)) {
        set_error(a, r, KP_ERR_UNACCEPTABLE_CREDENTIAL, "Username must not be empty");
        ch->status = 1;
    } else if (!st_scram_mech_name(mech)) {
        set_error(a, r, KP_ERR_UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism");
        ch->status = 1;
    }
    for (int j = 0; j < k; j++) {
        if (a->changes[j].cred.mechanism == mech && a->result_of[j] == r) {
            set_error(a, r, KP_ERR_DUPLICATE_RESOURCE,
                      "A user credential cannot be altered twice in the same request");
            ch->status = 1;
        }
    }
    return ch;
}

void kh_alter_user_scram_credentials(kh_req_t *req)
{
    const kp_alter_user_scram_credentials_request_t *q = req->msg;
    int32_t nd = q->n_deletions > 0 ? q->n_deletions : 0;
    int32_t nu = q->n_upsertions > 0 ? q->n_upsertions : 0;
    alter_t *a = kp_arena_calloc(&req->arena, 1, sizeof(*a));
    if (!a || !(a->changes = kh_array(req, nd + nu, sizeof(*a->changes))) ||
        !(a->results = kh_array(req, nd + nu, sizeof(*a->results))) ||
        !(a->result_of = kh_array(req, nd + nu, sizeof(int)))) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    req->state = a;
    int16_t denied = kh_acl_cluster(req, ACL_OP_ALTER); /* Kafka: ALTER on the cluster */
    for (int32_t i = 0; i < nd; i++)
        add_change(req, a, q->deletions[i].name, q->deletions[i].mechanism, true);
    for (int32_t i = 0; i < nu; i++) {
        const kp_alter_user_scram_credentials_request_scram_credential_upsertion_t *up =
            &q->upsertions[i];
        meta_scram_change_t *ch = add_change(req, a, up->name, up->mechanism, false);
        int r = a->result_of[a->n - 1];
        if (ch->status != 0)
            continue;
        if (up->iterations < ST_SCRAM_MIN_ITERATIONS) {
            set_error(a, r, KP_ERR_UNACCEPTABLE_CREDENTIAL, "Too few iterations");
        } else if (up->iterations > ST_SCRAM_MAX_ITERATIONS) {
            set_error(a, r, KP_ERR_UNACCEPTABLE_CREDENTIAL, "Too many iterations");
        } else if (up->salt.len <= 0 || up->salt.len > META_SCRAM_SALT_MAX) {
            set_error(a, r, KP_ERR_UNACCEPTABLE_CREDENTIAL, "Salt must hold 1 to 64 bytes");
        } else if (up->salted_password.len <= 0 || up->salted_password.len > 1024) {
            set_error(a, r, KP_ERR_UNACCEPTABLE_CREDENTIAL, "Salted password is empty");
        } else {
            ch->cred.iterations = up->iterations;
            ch->cred.salt_len = up->salt.len;
            memcpy(ch->cred.salt, up->salt.ptr, (size_t)up->salt.len);
            if (st_scram_keys(up->mechanism, up->salted_password.ptr,
                              (size_t)up->salted_password.len, ch->cred.stored_key,
                              ch->cred.server_key) != 0)
                set_error(a, r, KP_ERR_UNACCEPTABLE_CREDENTIAL, "Cannot derive the keys");
        }
        if (a->results[r].error_code != KP_ERR_NONE)
            ch->status = 1;
    }
    if (denied != KP_ERR_NONE)
        for (int r = 0; r < a->n_results; r++) {
            a->results[r].error_code = denied;
            a->results[r].error_message = KP_STR_NULL;
        }
    /* A user with any refused change keeps all its credentials unchanged. */
    for (int k = 0; k < a->n; k++)
        if (a->results[a->result_of[k]].error_code != KP_ERR_NONE)
            a->changes[k].status = 1;
    kh_req_op_out(req); /* back in on_altered */
    meta_users_alter(req->ks->ctx->meta, rt_shard_loop(req->ks->sh), a->changes, a->n, on_altered,
                     req);
}
