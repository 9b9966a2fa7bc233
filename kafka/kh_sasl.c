/* kh_sasl.c - SASL authentication of Kafka connections: SaslHandshake,
 * SaslAuthenticate (and SaslHandshake v0's unframed tokens), mechanisms
 * PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, session lifetime (KIP-368).
 * Data path: a connection accepted on a SASL_* listener gets a kh_sasl_t;
 * kh_conn.c's dispatch asks kh_sasl_allows() before every request, so only
 * ApiVersions / SaslHandshake / SaslAuthenticate run until the connection is
 * authenticated, and anything else closes it (Kafka's rule). The verified
 * user becomes the connection's principal ("User:alice"), which every later
 * request carries (kh_req_principal) for the authorizer. While a login is
 * verified off the loop (VERIFYING), the connection reads and dispatches
 * nothing more (kh_sasl_holds_frames): frames a client pipelined behind its
 * SaslAuthenticate wait and run as the principal the login gives, or never
 * when it fails (the connection closes after the answer), as Kafka, which
 * reads no further request until authentication completes.
 * SCRAM costs a few HMACs and runs on the shard loop; PLAIN derives the
 * stored key from the password (PBKDF2, thousands of HMACs), so it runs on
 * the thread pool. Credentials come from the users snapshot (meta_users_get:
 * no SQLite on this path).
 *
 * States (s->state), per connection:
 *
 *   START --SaslHandshake(mech enabled)--> HANDSHAKED --+
 *     ^        (v0: raw = true)               |          |
 *     |                          PLAIN token: | SCRAM client-first:
 *     |                          verify()     | scram_first()
 *     |                                v      v
 *     |                          VERIFYING  SCRAM_FIRST
 *     |                  (thread pool) |      | client-final: scram_final()
 *     |                                v      v
 *     |      +------------------- ok? --------+--- no ---> FAILED: answer
 *     |      v                                             SASL_AUTHENTICATION_FAILED
 *   AUTHENTICATED --SaslHandshake (v1+, same mechanism):   (raw: nothing), close
 *       re-authentication, back to HANDSHAKED with has_session set
 *
 * Invariants: 1. requests other than ApiVersions/SaslHandshake/SaslAuthenticate
 *                run only while has_session and the session has not expired;
 *             2. a failed login answers the same error and message whether or
 *                not the user exists (unknown SCRAM users get a salt derived
 *                from a process secret and the default iterations, and their
 *                proof is checked against a random key, never skipped);
 *             3. re-authentication cannot change the principal;
 *             4. passwords are never logged nor kept: PLAIN's copy is wiped
 *                after the derivation. */
#include "core/st_log.h"
#include "core/st_scram.h"
#include "kafka/kh_int.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_BYTES  24 /* server nonce: 32 base64 characters */
#define AUTH_MSG_MAX 2048

typedef enum {
    KH_SASL_START,
    KH_SASL_HANDSHAKED,
    KH_SASL_SCRAM_FIRST,
    KH_SASL_VERIFYING,
    KH_SASL_AUTHENTICATED,
    KH_SASL_FAILED,
} kh_sasl_state_t;

struct kh_sasl {
    const kh_ctx_t *ctx;
    kh_sasl_state_t state;
    int mech;           /* KH_SASL_* chosen by the handshake */
    bool raw;           /* SaslHandshake v0: tokens are not SaslAuthenticate requests */
    bool has_session;   /* authenticated once: the principal stays valid until expiry */
    uint64_t expiry_ms; /* loop time the session ends; 0 = never */
    char user[ST_SCRAM_USER_MAX + 1]; /* the authenticated user ("" before) */
    /* SCRAM exchange in progress */
    char scram_user[ST_SCRAM_USER_MAX + 1];
    char *auth_msg; /* owned: client-first-bare "," server-first "," */
    size_t auth_len;
    char nonce[ST_SCRAM_NONCE_MAX + 64]; /* client nonce + server nonce */
    size_t nonce_len;
    char cbind[(ST_SCRAM_USER_MAX + 8) / 3 * 4 + 8]; /* expected c= (base64 of the gs2 header) */
    uint8_t stored_key[ST_SCRAM_HASH_MAX];
    uint8_t server_key[ST_SCRAM_HASH_MAX];
};

static const char *mech_name(int mech)
{
    return mech == KH_SASL_PLAIN ? "PLAIN" : st_scram_mech_name(mech);
}

static int mech_of(const char *name, size_t len)
{
    if (len == 5 && !memcmp(name, "PLAIN", 5))
        return KH_SASL_PLAIN;
    return st_scram_mech_of(name, len);
}

int kh_sasl_parse_mechanisms(const char *list, unsigned *mask, char *errbuf, size_t errbuf_len)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if (e == p)
            break;
        int m = mech_of(p, (size_t)(e - p));
        if (!m) {
            snprintf(errbuf, errbuf_len,
                     "sasl.enabled.mechanisms: '%.*s' is not one of PLAIN, SCRAM-SHA-256, "
                     "SCRAM-SHA-512",
                     (int)(e - p), p);
            return ST_E_CONFIG;
        }
        *mask |= 1u << m;
        p = e;
    }
    if (!*mask) {
        snprintf(errbuf, errbuf_len, "sasl.enabled.mechanisms: no mechanism given");
        return ST_E_CONFIG;
    }
    return 0;
}

kh_sasl_t *kh_sasl_new(const kh_ctx_t *ctx)
{
    kh_sasl_t *s = calloc(1, sizeof(*s));
    if (s)
        s->ctx = ctx;
    return s;
}

static void scram_reset(kh_sasl_t *s)
{
    free(s->auth_msg);
    s->auth_msg = NULL;
    s->auth_len = 0;
    OPENSSL_cleanse(s->stored_key, sizeof(s->stored_key));
    OPENSSL_cleanse(s->server_key, sizeof(s->server_key));
}

void kh_sasl_free(kh_sasl_t *s)
{
    if (!s)
        return;
    scram_reset(s);
    free(s);
}

bool kh_sasl_is_authenticated(const kh_sasl_t *s)
{
    return s->has_session;
}

bool kh_sasl_holds_frames(const kh_sasl_t *s)
{
    return s->state == KH_SASL_VERIFYING;
}

bool kh_sasl_expects_raw(const kh_sasl_t *s)
{
    return s->raw && (s->state == KH_SASL_HANDSHAKED || s->state == KH_SASL_SCRAM_FIRST);
}

bool kh_sasl_allows(const kh_sasl_t *s, int16_t key, uint64_t now_ms)
{
    bool is_live = s->has_session && (s->expiry_ms == 0 || now_ms < s->expiry_ms);
    if (key == KP_API_SASL_HANDSHAKE || key == KP_API_SASL_AUTHENTICATE)
        return s->state != KH_SASL_FAILED && s->state != KH_SASL_VERIFYING;
    if (key == KP_API_API_VERSIONS)
        return !s->has_session || is_live;
    /* A live session keeps serving while it re-authenticates. */
    return is_live && s->state != KH_SASL_FAILED;
}

/* ---- Answers ---- */

static uint64_t loop_now(kh_req_t *req)
{
    return uv_now(rt_shard_loop(req->ks->sh));
}

static const char *const k_failed_msg =
    "Authentication failed: invalid credentials with SASL mechanism %s";

/* Answer a step: token (may be empty) on success or continuation; on
 * failure error != 0 and the connection closes after the answer (a raw
 * exchange gets no answer: Kafka just closes). */
static void answer(kh_req_t *req, const uint8_t *token, size_t len, int16_t error, const char *msg)
{
    kh_sasl_t *s = kh_conn_sasl(req->conn);
    bool is_raw = req->api == NULL;
    if (error != KP_ERR_NONE) {
        if (s) {
            s->state = KH_SASL_FAILED;
            scram_reset(s);
        }
        if (is_raw) {
            kh_fail_conn(req, msg);
            return;
        }
        req->close_after = true;
    }
    if (is_raw) {
        kh_respond_raw(req, token, len);
        return;
    }
    kp_sasl_authenticate_response_t resp;
    kp_sasl_authenticate_response_init(&resp);
    resp.error_code = error;
    resp.error_message = msg ? kp_str_from_cstr(kh_cstr(req, kp_str_from_cstr(msg))) : KP_STR_NULL;
    resp.auth_bytes = (kp_bytes_t){token, (int32_t)len};
    if (error == KP_ERR_NONE && s && s->state == KH_SASL_AUTHENTICATED)
        resp.session_lifetime_ms = s->ctx->reauth_ms;
    kh_respond(req, &resp);
}

static void fail(kh_req_t *req, const char *user, const char *why)
{
    kh_sasl_t *s = kh_conn_sasl(req->conn);
    st_metric_add(ST_M_SASL_AUTH_FAILURES, 1);
    /* The log says why (at most one line a second per shard, so that a
     * password guesser cannot flood it); the client only learns that it failed. */
    kh_shard_t *ks = req->ks;
    uint64_t now = loop_now(req);
    if (ks->sasl_fail_log_ms == 0 || now - ks->sasl_fail_log_ms >= 1000) {
        ST_INFO("kafka",
                "SASL authentication failed conn=%llu peer=%s mechanism=%s user='%s': %s%s",
                req->conn ? (unsigned long long)kh_conn_id(req->conn) : 0ULL,
                req->conn ? kh_conn_peer(req->conn) : "?", s ? mech_name(s->mech) : "?",
                user ? user : "", why,
                ks->sasl_fail_quiet ? "; more failed logins were not logged" : "");
        ks->sasl_fail_log_ms = now;
        ks->sasl_fail_quiet = 0;
    } else {
        ks->sasl_fail_quiet++;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), k_failed_msg, s ? mech_name(s->mech) : "?");
    answer(req, NULL, 0, KP_ERR_SASL_AUTHENTICATION_FAILED, msg);
}

/* The user proved who they are: start (or renew) the session. */
static void succeed(kh_req_t *req, const char *user, const uint8_t *token, size_t len)
{
    kh_sasl_t *s = kh_conn_sasl(req->conn);
    if (s->has_session && strcmp(s->user, user) != 0) {
        fail(req, user, "re-authentication as another principal");
        return;
    }
    snprintf(s->user, sizeof(s->user), "%s", user);
    char principal[KH_PRINCIPAL_MAX];
    snprintf(principal, sizeof(principal), "User:%s", user);
    kh_conn_set_principal(req->conn, principal);
    kh_conn_sec(req->conn)->authenticated = true;
    s->state = KH_SASL_AUTHENTICATED;
    s->has_session = true;
    s->raw = false;
    s->expiry_ms = s->ctx->reauth_ms > 0 ? loop_now(req) + (uint64_t)s->ctx->reauth_ms : 0;
    scram_reset(s);
    st_metric_add(ST_M_SASL_AUTH_SUCCESSES, 1);
    ST_DEBUG("kafka", "SASL authenticated conn=%llu as %s (%s)",
             (unsigned long long)kh_conn_id(req->conn), principal, mech_name(s->mech));
    answer(req, token, len, KP_ERR_NONE, NULL);
}

/* ---- SaslHandshake ---- */

void kh_sasl_handshake(kh_req_t *req)
{
    const kp_sasl_handshake_request_t *q = req->msg;
    kh_sasl_t *s = kh_conn_sasl(req->conn);
    kp_sasl_handshake_response_t resp;
    kp_sasl_handshake_response_init(&resp);
    unsigned mask = req->lis ? req->lis->sasl_mechs : 0;
    kp_str_t *names = kh_array(req, 3, sizeof(kp_str_t));
    if (!names) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    for (int m = KH_SASL_SCRAM_SHA_256; m <= KH_SASL_PLAIN; m++)
        if (mask & (1u << m))
            names[resp.n_mechanisms++] = kp_str_from_cstr(mech_name(m));
    resp.mechanisms = names;
    int mech = q->mechanism.len > 0 ? mech_of(q->mechanism.ptr, (size_t)q->mechanism.len) : 0;
    if (!s) { /* PLAINTEXT listener: Kafka answers ILLEGAL_SASL_STATE */
        resp.error_code = KP_ERR_ILLEGAL_SASL_STATE;
        kh_respond(req, &resp);
        return;
    }
    bool is_reauth = s->state == KH_SASL_AUTHENTICATED;
    if (s->state != KH_SASL_START && !is_reauth) {
        resp.error_code = KP_ERR_ILLEGAL_SASL_STATE;
    } else if (!mech || !(mask & (1u << mech)) || (is_reauth && mech != s->mech)) {
        resp.error_code = KP_ERR_UNSUPPORTED_SASL_MECHANISM;
    } else if (is_reauth && req->hdr.request_api_version == 0) {
        resp.error_code = KP_ERR_ILLEGAL_SASL_STATE; /* v0 clients cannot re-authenticate */
    }
    if (resp.error_code != KP_ERR_NONE) {
        ST_DEBUG("kafka", "SaslHandshake refused conn=%llu mechanism=%.*s: %s",
                 (unsigned long long)kh_conn_id(req->conn),
                 q->mechanism.len > 0 ? (int)q->mechanism.len : 0,
                 q->mechanism.ptr ? q->mechanism.ptr : "", kp_errcode_name(resp.error_code));
        s->state = KH_SASL_FAILED;
        req->close_after = true;
        kh_respond(req, &resp);
        return;
    }
    s->mech = mech;
    s->raw = req->hdr.request_api_version == 0;
    s->state = KH_SASL_HANDSHAKED;
    kh_respond(req, &resp);
}

/* ---- PLAIN (thread pool) ---- */

typedef struct {
    uv_work_t w;
    kh_req_t *req;
    meta_t *m;
    char user[ST_SCRAM_USER_MAX + 1];
    char *password; /* owned, wiped */
    size_t password_len;
    bool ok;
} plain_job_t;

/* PLAIN checks the password against the user's SCRAM credential
 * (meta_users_check_password: an unknown user costs the same derivation). */
static void plain_work(uv_work_t *w)
{
    plain_job_t *j = w->data;
    j->ok = meta_users_check_password(j->m, j->user, strlen(j->user), j->password, j->password_len);
}

static void plain_after(uv_work_t *w, int status)
{
    plain_job_t *j = w->data;
    kh_req_t *req = j->req;
    bool ok = status == 0 && j->ok;
    OPENSSL_cleanse(j->password, j->password_len);
    free(j->password);
    char user[sizeof(j->user)];
    memcpy(user, j->user, sizeof(user));
    free(j);
    if (!kh_req_op_back(req))
        return; /* the request was dropped meanwhile and is freed */
    if (!req->conn || !kh_conn_sasl(req->conn)) {
        kh_no_response(req); /* the connection closed meanwhile */
        return;
    }
    if (!ok) {
        fail(req, user, "wrong password or unknown user");
        return;
    }
    succeed(req, user, NULL, 0);
}

static void plain_token(kh_req_t *req, kh_sasl_t *s, const uint8_t *tok, size_t len)
{
    const char *az, *user, *pw;
    size_t azl, ul, pwl;
    if (st_sasl_parse_plain((const char *)tok, len, &az, &azl, &user, &ul, &pw, &pwl) != 0 ||
        ul > ST_SCRAM_USER_MAX) {
        fail(req, NULL, "malformed PLAIN message");
        return;
    }
    plain_job_t *j = calloc(1, sizeof(*j));
    if (!j || !(j->password = malloc(pwl))) {
        free(j);
        kh_fail_conn(req, "out of memory");
        return;
    }
    memcpy(j->user, user, ul);
    j->user[ul] = 0;
    if (azl > 0 && (azl != ul || memcmp(az, user, ul) != 0)) {
        free(j->password);
        free(j);
        fail(req, NULL, "authorization id differs from the user name");
        return;
    }
    memcpy(j->password, pw, pwl);
    j->password_len = pwl;
    j->req = req;
    j->m = s->ctx->meta;
    j->w.data = j;
    s->state = KH_SASL_VERIFYING;
    kh_req_op_out(req); /* back in plain_after */
    if (uv_queue_work(rt_shard_loop(req->ks->sh), &j->w, plain_work, plain_after) != 0) {
        OPENSSL_cleanse(j->password, pwl);
        free(j->password);
        free(j);
        kh_fail_held(req, "cannot queue PLAIN verification");
    }
}

/* ---- SCRAM ---- */

static void scram_first(kh_req_t *req, kh_sasl_t *s, const uint8_t *tok, size_t len)
{
    st_scram_client_first_t cf;
    if (st_scram_parse_client_first((const char *)tok, len, &cf) != 0) {
        fail(req, NULL, "malformed SCRAM client-first message");
        return;
    }
    if (cf.gs2_len > ST_SCRAM_USER_MAX + 8) {
        fail(req, cf.user, "SCRAM gs2 header too long");
        return;
    }
    if (cf.has_authzid && strcmp(cf.authzid, cf.user) != 0) {
        fail(req, cf.user, "authorization id differs from the user name");
        return;
    }
    meta_users_t *u = meta_users_get(s->ctx->meta);
    const meta_scram_cred_t *c = meta_users_find(u, cf.user, cf.user_len, s->mech);
    meta_scram_cred_t cred;
    if (c)
        cred = *c;
    else
        meta_scram_cred_fake(cf.user, cf.user_len, s->mech, &cred);
    meta_users_put(u);
    cred.name = NULL; /* borrowed from the snapshot, released above */

    uint8_t rnd[NONCE_BYTES];
    char snonce[NONCE_BYTES * 2];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        kh_fail_conn(req, "RAND_bytes failed");
        return;
    }
    st_b64_encode(rnd, sizeof(rnd), snonce); /* 32 characters: no '=' and no ',' */
    scram_reset(s);
    size_t hl = st_scram_hash_len(s->mech);
    memcpy(s->stored_key, cred.stored_key, hl);
    memcpy(s->server_key, cred.server_key, hl);
    snprintf(s->scram_user, sizeof(s->scram_user), "%s", cf.user);
    s->nonce_len =
        (size_t)snprintf(s->nonce, sizeof(s->nonce), "%.*s%s", (int)cf.nonce_len, cf.nonce, snonce);
    /* The client echoes its gs2 header base64-encoded in c=. */
    st_b64_encode((const uint8_t *)cf.gs2_header, cf.gs2_len, s->cbind);
    char salt[META_SCRAM_SALT_MAX * 2];
    st_b64_encode(cred.salt, (size_t)cred.salt_len, salt);
    int iterations = cred.iterations;
    OPENSSL_cleanse(&cred, sizeof(cred));
    size_t cap = cf.bare_len + sizeof(s->nonce) + sizeof(salt) + 32 + AUTH_MSG_MAX;
    s->auth_msg = malloc(cap);
    if (!s->auth_msg) {
        kh_fail_conn(req, "out of memory");
        return;
    }
    int bl = snprintf(s->auth_msg, cap, "%.*s,", (int)cf.bare_len, cf.bare);
    int sf =
        snprintf(s->auth_msg + bl, cap - (size_t)bl, "r=%s,s=%s,i=%d", s->nonce, salt, iterations);
    const char *server_first = kh_cstr(req, (kp_str_t){s->auth_msg + bl, sf});
    s->auth_len = (size_t)(bl + sf);
    s->auth_msg[s->auth_len++] = ',';
    s->state = KH_SASL_SCRAM_FIRST;
    answer(req, (const uint8_t *)server_first, (size_t)sf, KP_ERR_NONE, NULL);
}

static void scram_final(kh_req_t *req, kh_sasl_t *s, const uint8_t *tok, size_t len)
{
    st_scram_client_final_t cl;
    char user[sizeof(s->scram_user)];
    memcpy(user, s->scram_user, sizeof(user));
    if (st_scram_parse_client_final((const char *)tok, len, &cl) != 0 ||
        cl.without_proof_len > AUTH_MSG_MAX) {
        fail(req, user, "malformed SCRAM client-final message");
        return;
    }
    /* The nonce must end with ours, as Kafka checks it (librdkafka sends
     * its client nonce twice: client nonce + our whole nonce). */
    size_t cbl = strlen(s->cbind);
    if (cbl == 0 || cl.channel_binding_len != cbl || memcmp(cl.channel_binding, s->cbind, cbl) ||
        cl.nonce_len < s->nonce_len ||
        memcmp(cl.nonce + cl.nonce_len - s->nonce_len, s->nonce, s->nonce_len)) {
        fail(req, user, "SCRAM channel binding or nonce mismatch");
        return;
    }
    memcpy(s->auth_msg + s->auth_len, tok, cl.without_proof_len);
    s->auth_len += cl.without_proof_len;
    if (!st_scram_verify_proof(s->mech, s->stored_key, s->auth_msg, s->auth_len, cl.proof,
                               cl.proof_len)) {
        fail(req, user, "wrong password or unknown user");
        return;
    }
    uint8_t sig[ST_SCRAM_HASH_MAX];
    size_t hl = st_scram_hash_len(s->mech);
    if (st_scram_hmac(s->mech, s->server_key, hl, s->auth_msg, s->auth_len, sig) != 0) {
        fail(req, user, "HMAC failed");
        return;
    }
    char b64[ST_SCRAM_HASH_MAX * 2];
    char final[ST_SCRAM_HASH_MAX * 2 + 4];
    st_b64_encode(sig, hl, b64);
    int n = snprintf(final, sizeof(final), "v=%s", b64);
    succeed(req, user, (const uint8_t *)kh_cstr(req, (kp_str_t){final, n}), (size_t)n);
}

/* One client token, framed (SaslAuthenticate) or raw (after a v0 handshake). */
static void on_token(kh_req_t *req, const uint8_t *tok, size_t len)
{
    kh_sasl_t *s = kh_conn_sasl(req->conn);
    if (!s || (s->state != KH_SASL_HANDSHAKED && s->state != KH_SASL_SCRAM_FIRST)) {
        if (req->api) {
            kp_sasl_authenticate_response_t resp;
            kp_sasl_authenticate_response_init(&resp);
            resp.error_code = KP_ERR_ILLEGAL_SASL_STATE;
            resp.error_message = KP_STR_LIT("SaslAuthenticate before a SaslHandshake");
            if (s) {
                s->state = KH_SASL_FAILED;
                req->close_after = true;
            }
            kh_respond(req, &resp);
            return;
        }
        kh_fail_conn(req, "SASL token in a wrong state");
        return;
    }
    if (!tok || len == 0) {
        fail(req, NULL, "empty SASL token");
        return;
    }
    if (s->mech == KH_SASL_PLAIN)
        plain_token(req, s, tok, len);
    else if (s->state == KH_SASL_HANDSHAKED)
        scram_first(req, s, tok, len);
    else
        scram_final(req, s, tok, len);
}

void kh_sasl_authenticate(kh_req_t *req)
{
    const kp_sasl_authenticate_request_t *q = req->msg;
    on_token(req, q->auth_bytes.ptr, q->auth_bytes.len > 0 ? (size_t)q->auth_bytes.len : 0);
}

void kh_sasl_raw_token(kh_req_t *req)
{
    on_token(req, req->frame, req->frame_len);
}
