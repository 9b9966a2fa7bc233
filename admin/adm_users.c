/* adm_users.c - SCRAM users over the admin HTTP API (as Redpanda's
 * /v1/security/users), for operators and `strata security user`:
 *   GET    /v1/security/users         {"users": [{"name", "credentials": [{"mechanism",
 * "iterations"}]}]} POST   /v1/security/users         {"username", "password", "algorithm"?,
 * "iterations"?} -> 201 (409 if it exists) PUT    /v1/security/users/NAME    {"password",
 * "algorithm"?, "iterations"?} -> 200 (404 if absent) DELETE /v1/security/users/NAME    -> 200 (404
 * if absent) "algorithm" is SCRAM-SHA-256 or SCRAM-SHA-512; without it both credentials are
 * written, so the user can log in with either mechanism (and PLAIN). Data path: runs on the admin
 * loop; the password is turned into salt + StoredKey + ServerKey here (PBKDF2) and wiped;
 * meta_users_alter() writes them on the thread pool and publishes the snapshot SaslAuthenticate
 * reads. Passwords never reach the log nor any answer. */
#include "admin/adm_int.h"
#include "core/st_scram.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    adm_call_t *call; /* owned until the reply */
    meta_scram_change_t ch[2];
    int n;
    char name[ST_SCRAM_USER_MAX + 1];
    int ok_status; /* HTTP status of success */
} ujob_t;

static void get_users(adm_call_t *call)
{
    meta_users_t *u = meta_users_get(call->s->o.meta);
    json_t *arr = json_array();
    json_t *cur = NULL;
    for (int i = 0; i < u->n_creds; i++) {
        const meta_scram_cred_t *c = &u->creds[i];
        if (!cur || strcmp(json_string_value(json_object_get(cur, "name")), c->name) != 0) {
            cur = json_pack("{s:s,s:[]}", "name", c->name, "credentials");
            json_array_append_new(arr, cur);
        }
        json_array_append_new(json_object_get(cur, "credentials"),
                              json_pack("{s:s,s:i}", "mechanism", st_scram_mech_name(c->mechanism),
                                        "iterations", c->iterations));
    }
    meta_users_put(u);
    adm_reply_json(call, 200, json_pack("{s:o}", "users", arr));
}

static bool user_exists(adm_server_t *s, const char *name)
{
    meta_users_t *u = meta_users_get(s->o.meta);
    bool has = meta_users_find(u, name, strlen(name), ST_SCRAM_SHA_256) ||
               meta_users_find(u, name, strlen(name), ST_SCRAM_SHA_512);
    meta_users_put(u);
    return has;
}

static void on_altered(void *arg, int status, const char *msg)
{
    ujob_t *j = arg;
    bool all_missing = j->n > 0;
    for (int k = 0; k < j->n; k++) {
        all_missing = all_missing && j->ch[k].status == ST_E_NOTFOUND;
        OPENSSL_cleanse(&j->ch[k].cred, sizeof(j->ch[k].cred));
    }
    if (status != 0)
        adm_reply_error(j->call, 500, "internal", "cannot store the user: %s (%s)",
                        msg ? msg : "metadata store", st_strerror(status));
    else if (all_missing)
        adm_reply_error(j->call, 404, "not_found", "no such user: %s", j->name);
    else
        adm_reply_json(j->call, j->ok_status, json_pack("{s:s}", "name", j->name));
    free(j);
}

bool adm_decode_segment(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            unsigned v;
            if (i + 2 >= n || sscanf(p + i + 1, "%2x", &v) != 1)
                return false;
            c = (char)v;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = 0;
    return o > 0;
}

/* Fill j's upsertions for password (one mechanism, or both). */
static int make_creds(adm_call_t *call, ujob_t *j, json_t *body)
{
    const char *pw = json_string_value(json_object_get(body, "password"));
    const char *alg = json_string_value(json_object_get(body, "algorithm"));
    json_t *it = json_object_get(body, "iterations");
    json_int_t iterations = it ? json_integer_value(it) : ST_SCRAM_MIN_ITERATIONS;
    int only = alg ? st_scram_mech_of(alg, strlen(alg)) : 0;
    if (!pw || !*pw) {
        adm_reply_error(call, 400, "bad_request", "\"password\" (a non-empty string) is required");
        return -1;
    }
    if (alg && !only) {
        adm_reply_error(call, 400, "bad_request",
                        "\"algorithm\" must be SCRAM-SHA-256 or SCRAM-SHA-512");
        return -1;
    }
    if ((it && !json_is_integer(it)) || iterations < ST_SCRAM_MIN_ITERATIONS ||
        iterations > ST_SCRAM_MAX_ITERATIONS) {
        adm_reply_error(call, 400, "bad_request", "\"iterations\" must be in [%d, %d]",
                        ST_SCRAM_MIN_ITERATIONS, ST_SCRAM_MAX_ITERATIONS);
        return -1;
    }
    for (int m = ST_SCRAM_SHA_256; m <= ST_SCRAM_SHA_512; m++) {
        if (only && m != only)
            continue;
        meta_scram_change_t *ch = &j->ch[j->n++];
        if (meta_scram_cred_make(m, pw, strlen(pw), (int32_t)iterations, &ch->cred) != 0) {
            adm_reply_error(call, 500, "internal", "cannot derive the SCRAM keys");
            return -1;
        }
        ch->cred.name = j->name;
    }
    return 0;
}

static const char k_405[] = "{\"error\":\"method_not_allowed\",\"status\":405}\n";

void adm_users_route(adm_call_t *call, const char *name, size_t name_len)
{
    const char *m = call->method;
    if (!name) {
        if (!strcmp(m, "GET") || !strcmp(m, "HEAD")) {
            get_users(call);
            return;
        }
        if (strcmp(m, "POST") != 0) {
            adm_reply_raw(call, 405, "application/json", "Allow: GET, POST\r\n", k_405,
                          strlen(k_405));
            return;
        }
    } else if (strcmp(m, "PUT") != 0 && strcmp(m, "DELETE") != 0) {
        adm_reply_raw(call, 405, "application/json", "Allow: PUT, DELETE\r\n", k_405,
                      strlen(k_405));
        return;
    }
    ujob_t *j = calloc(1, sizeof(*j));
    if (!j) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    j->call = call;
    json_t *body = NULL;
    if (strcmp(m, "DELETE") != 0) {
        json_error_t jerr;
        body = json_loadb(call->body, call->body_len, 0, &jerr);
        OPENSSL_cleanse(call->body, call->body_len); /* it may hold a password */
        if (!json_is_object(body)) {
            adm_reply_error(call, 400, "bad_request", "the body must be a JSON object");
            goto out;
        }
    }
    if (!name) {
        const char *u = json_string_value(json_object_get(body, "username"));
        if (!u || !*u || strlen(u) > ST_SCRAM_USER_MAX) {
            adm_reply_error(call, 400, "bad_request", "\"username\" (1 to %d bytes) is required",
                            ST_SCRAM_USER_MAX);
            goto out;
        }
        snprintf(j->name, sizeof(j->name), "%s", u);
    } else if (!adm_decode_segment(name, name_len, j->name, sizeof(j->name))) {
        adm_reply_error(call, 400, "bad_request", "invalid user name in the path");
        goto out;
    }
    if (!strcmp(m, "DELETE")) {
        for (int k = ST_SCRAM_SHA_256; k <= ST_SCRAM_SHA_512; k++) {
            meta_scram_change_t *ch = &j->ch[j->n++];
            ch->is_delete = true;
            ch->cred.name = j->name;
            ch->cred.mechanism = (int8_t)k;
        }
        j->ok_status = 200;
    } else {
        bool exists = user_exists(call->s, j->name);
        if (!name && exists) {
            adm_reply_error(call, 409, "exists", "user %s already exists", j->name);
            goto out;
        }
        if (name && !exists) {
            adm_reply_error(call, 404, "not_found", "no such user: %s", j->name);
            goto out;
        }
        if (make_creds(call, j, body) != 0)
            goto out;
        j->ok_status = name ? 200 : 201;
    }
    json_decref(body);
    meta_users_alter(call->s->o.meta, call->s->o.loop, j->ch, j->n, on_altered, j);
    return;
out:
    json_decref(body);
    OPENSSL_cleanse(j, sizeof(*j));
    free(j);
}
