/* adm_auth.c - authentication of admin HTTP requests.
 * Data path: adm_server parses a request -> adm_auth_check() (here) before
 * routing -> 401 with a WWW-Authenticate challenge, or the endpoint.
 * Rules: the probes (/v1/status/live, /v1/status/ready) are always open;
 * GET /metrics is open when strata.admin.metrics.open is set; otherwise,
 * when strata.admin.token.file is set the bearer token is accepted, and when
 * strata.admin.require.auth is set HTTP Basic credentials of a SCRAM user
 * (the Kafka SASL users, as Redpanda does) are accepted too: when ACL
 * authorization is on, only super.users (403 for the others). With neither
 * setting the API is open (bind it to loopback).
 * Invariants: 1. secrets are compared in constant time;
 *             2. a wrong password and an unknown user cost the same
 *                derivation and get the same 401. */
#include "admin/adm_int.h"
#include "core/acl.h"
#include "core/st_scram.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool bearer_ok(const adm_server_t *s, adm_str_t a)
{
    const char *token = s->token;
    if (!token || !*token || a.len < 7 || strncasecmp(a.p, "Bearer ", 7) != 0)
        return false;
    size_t n = strlen(token);
    return a.len - 7 == n && st_scram_ct_eq(a.p + 7, token, n);
}

/* "Basic base64(user:password)" against the SCRAM users. PBKDF2 runs on the
 * admin loop (not a shard's): a few milliseconds per request. */
static bool basic_ok(const adm_server_t *s, adm_str_t a, char *user, size_t user_cap)
{
    if (a.len < 6 || strncasecmp(a.p, "Basic ", 6) != 0 || a.len - 6 > 1400)
        return false;
    const char *b = a.p + 6;
    size_t bl = a.len - 6;
    while (bl > 0 && *b == ' ') {
        b++;
        bl--;
    }
    uint8_t dec[1100];
    int n = st_b64_decode(b, bl, dec, sizeof(dec) - 1);
    if (n <= 0)
        return false;
    dec[n] = 0;
    uint8_t *colon = memchr(dec, ':', (size_t)n);
    bool ok = false;
    if (colon && colon > dec && (size_t)(colon - dec) < user_cap) {
        size_t ul = (size_t)(colon - dec);
        memcpy(user, dec, ul);
        user[ul] = 0;
        const char *pw = (const char *)colon + 1;
        size_t pwl = (size_t)n - ul - 1;
        ok = pwl > 0 && meta_users_check_password(s->o.meta, user, ul, pw, pwl);
    }
    OPENSSL_cleanse(dec, sizeof(dec));
    return ok;
}

int adm_auth_check(adm_server_t *s, const adm_http_req_t *r)
{
    bool require_basic = cfg_bool(s->o.cfg, CFG_ADMIN_REQUIRE_AUTH);
    bool has_token = s->token && *s->token;
    if (!require_basic && !has_token)
        return 200;
    if (adm_str_eq(r->path, "/v1/status/live") || adm_str_eq(r->path, "/v1/status/ready"))
        return 200; /* probes carry no secrets and answer nothing sensitive */
    if (adm_str_eq(r->path, "/metrics") && cfg_bool(s->o.cfg, CFG_ADMIN_METRICS_OPEN))
        return 200;
    if (has_token && bearer_ok(s, r->authorization))
        return 200;
    char user[ST_SCRAM_USER_MAX + 1];
    if (require_basic && basic_ok(s, r->authorization, user, sizeof(user))) {
        /* With authorization on, the admin API is the super users' (as
         * Redpanda's is its superusers'); without it, any user's. */
        const acl_conf_t *acl = s->o.kctx ? s->o.kctx->acl : NULL;
        char principal[ST_SCRAM_USER_MAX + 8];
        snprintf(principal, sizeof(principal), "User:%s", user);
        return !acl || acl_is_super(acl, principal) ? 200 : 403;
    }
    st_metric_add(ST_M_ADMIN_AUTH_FAILURES, 1);
    return 401;
}

void adm_auth_refuse(adm_call_t *call, int status)
{
    if (status == 403) {
        adm_reply_error(call, 403, "forbidden",
                        "authenticated, but only super.users may use the admin API");
        return;
    }
    bool basic = cfg_bool(call->s->o.cfg, CFG_ADMIN_REQUIRE_AUTH);
    const char *hdr = basic ? "WWW-Authenticate: Basic realm=\"strata\", charset=\"UTF-8\"\r\n"
                            : "WWW-Authenticate: Bearer realm=\"strata\"\r\n";
    const char *body =
        basic ? "{\"error\":\"unauthorized\",\"message\":\"missing or wrong credentials: HTTP "
                "Basic of a SCRAM user (strata.admin.require.auth) or the bearer token\","
                "\"status\":401}\n"
              : "{\"error\":\"unauthorized\",\"message\":\"missing or wrong bearer "
                "token (strata.admin.token.file)\",\"status\":401}\n";
    adm_reply_raw(call, 401, "application/json", hdr, body, strlen(body));
}
