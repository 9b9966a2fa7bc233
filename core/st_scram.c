/* st_scram.c - SCRAM arithmetic (OpenSSL libcrypto) and the parsers of the
 * client's SASL messages (SCRAM client-first / client-final, PLAIN).
 * Data path: called by kafka/kh_sasl.c on a shard loop for SCRAM (HMACs
 * only: cheap), and from the thread pool for PLAIN and HTTP Basic (PBKDF2:
 * thousands of HMACs). See st_scram.h for the invariants. */
#include "core/st_scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

static const EVP_MD *md_of(int mech)
{
    switch (mech) {
    case ST_SCRAM_SHA_256:
        return EVP_sha256();
    case ST_SCRAM_SHA_512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

const char *st_scram_mech_name(int mech)
{
    switch (mech) {
    case ST_SCRAM_SHA_256:
        return "SCRAM-SHA-256";
    case ST_SCRAM_SHA_512:
        return "SCRAM-SHA-512";
    default:
        return NULL;
    }
}

int st_scram_mech_of(const char *name, size_t len)
{
    for (int m = ST_SCRAM_SHA_256; m <= ST_SCRAM_SHA_512; m++)
        if (strlen(st_scram_mech_name(m)) == len && !memcmp(name, st_scram_mech_name(m), len))
            return m;
    return 0;
}

size_t st_scram_hash_len(int mech)
{
    return mech == ST_SCRAM_SHA_256 ? 32 : mech == ST_SCRAM_SHA_512 ? 64 : 0;
}

bool st_scram_ct_eq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int st_scram_salted_password(int mech,
                             const char *password,
                             size_t password_len,
                             const uint8_t *salt,
                             size_t salt_len,
                             int iterations,
                             uint8_t *out)
{
    const EVP_MD *md = md_of(mech);
    if (!md || iterations < 1 || password_len > INT32_MAX || salt_len > INT32_MAX)
        return ST_E_INVAL;
    if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, iterations, md,
                          (int)st_scram_hash_len(mech), out) != 1)
        return ST_E_INVAL;
    return 0;
}

int st_scram_hmac(
    int mech, const uint8_t *key, size_t key_len, const void *msg, size_t msg_len, uint8_t *out)
{
    const EVP_MD *md = md_of(mech);
    unsigned int n = 0;
    if (!md || key_len > INT32_MAX || !HMAC(md, key, (int)key_len, msg, msg_len, out, &n))
        return ST_E_INVAL;
    return 0;
}

static int hash(int mech, const uint8_t *in, size_t n, uint8_t *out)
{
    const EVP_MD *md = md_of(mech);
    return md && EVP_Digest(in, n, out, NULL, md, NULL) == 1 ? 0 : ST_E_INVAL;
}

int st_scram_keys(
    int mech, const uint8_t *salted, size_t salted_len, uint8_t *stored_key, uint8_t *server_key)
{
    size_t hl = st_scram_hash_len(mech);
    uint8_t client_key[ST_SCRAM_HASH_MAX];
    int rc = st_scram_hmac(mech, salted, salted_len, "Client Key", 10, client_key);
    if (rc == 0)
        rc = hash(mech, client_key, hl, stored_key);
    if (rc == 0)
        rc = st_scram_hmac(mech, salted, salted_len, "Server Key", 10, server_key);
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return rc;
}

int st_scram_derive(int mech,
                    const char *password,
                    size_t password_len,
                    const uint8_t *salt,
                    size_t salt_len,
                    int iterations,
                    uint8_t *stored_key,
                    uint8_t *server_key)
{
    uint8_t salted[ST_SCRAM_HASH_MAX];
    int rc =
        st_scram_salted_password(mech, password, password_len, salt, salt_len, iterations, salted);
    if (rc == 0)
        rc = st_scram_keys(mech, salted, st_scram_hash_len(mech), stored_key, server_key);
    OPENSSL_cleanse(salted, sizeof(salted));
    return rc;
}

bool st_scram_verify_proof(int mech,
                           const uint8_t *stored_key,
                           const char *auth_message,
                           size_t auth_len,
                           const uint8_t *proof,
                           size_t proof_len)
{
    size_t hl = st_scram_hash_len(mech);
    if (hl == 0 || proof_len != hl)
        return false;
    uint8_t sig[ST_SCRAM_HASH_MAX], client_key[ST_SCRAM_HASH_MAX], h[ST_SCRAM_HASH_MAX];
    if (st_scram_hmac(mech, stored_key, hl, auth_message, auth_len, sig) != 0)
        return false;
    for (size_t i = 0; i < hl; i++)
        client_key[i] = proof[i] ^ sig[i];
    bool ok = hash(mech, client_key, hl, h) == 0 && st_scram_ct_eq(h, stored_key, hl);
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return ok;
}

/* ---- base64 ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t st_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int st_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 != 0)
        return ST_E_MALFORMED;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0) /* data after padding */
                return ST_E_MALFORMED;
            v[k] = b64_val(c);
            if (v[k] < 0)
                return ST_E_MALFORMED;
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        int bytes = 3 - pad;
        if (o + (size_t)bytes > cap)
            return ST_E_TOO_LARGE;
        out[o++] = (uint8_t)(w >> 16);
        if (bytes > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (bytes > 2)
            out[o++] = (uint8_t)w;
    }
    return (int)o;
}

/* ---- Message parsing ---- */

/* The attribute at [p, end) up to the next ',' (or end): "x=value". */
typedef struct {
    char name;
    const char *val;
    size_t len;
} attr_t;

/* Read one "x=value" attribute at *pos; *pos moves past it and its comma. */
static int next_attr(const char *msg, size_t len, size_t *pos, attr_t *a)
{
    size_t p = *pos;
    if (p + 2 > len || msg[p + 1] != '=')
        return ST_E_MALFORMED;
    char n = msg[p];
    if (!((n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z')))
        return ST_E_MALFORMED;
    const char *v = msg + p + 2;
    const char *comma = memchr(v, ',', len - (p + 2));
    a->name = n;
    a->val = v;
    a->len = comma ? (size_t)(comma - v) : len - (p + 2);
    *pos = p + 2 + a->len + (comma ? 1 : 0);
    if (comma && *pos == len)
        return ST_E_MALFORMED; /* trailing comma */
    return 0;
}

/* Decode a saslname (RFC 5802: ',' is =2C, '=' is =3D) into out (NUL-terminated). */
static int saslname(const char *v, size_t n, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    if (n == 0)
        return ST_E_MALFORMED;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == 0 || c == ',')
            return ST_E_MALFORMED;
        if (c == '=') {
            if (i + 2 >= n)
                return ST_E_MALFORMED;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                c = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                c = '=';
            else
                return ST_E_MALFORMED;
            i += 2;
        }
        if (o + 1 >= cap)
            return ST_E_MALFORMED;
        out[o++] = c;
    }
    out[o] = 0;
    *out_len = o;
    return 0;
}

/* A nonce is printable ASCII except ','. */
static bool nonce_ok(const char *v, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',')
            return false;
    return true;
}

int st_scram_parse_client_first(const char *msg, size_t len, st_scram_client_first_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 3 || memchr(msg, 0, len))
        return ST_E_MALFORMED;
    /* gs2-cbind-flag: "n" (client does not support binding) or "y" (thinks
     * we do not); "p=" asks for channel binding, which we do not offer. */
    if ((msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
        return ST_E_MALFORMED;
    size_t p = 2;
    const char *comma = memchr(msg + p, ',', len - p);
    if (!comma)
        return ST_E_MALFORMED;
    size_t az_len = (size_t)(comma - (msg + p));
    if (az_len > 0) {
        size_t n;
        if (az_len < 3 || msg[p] != 'a' || msg[p + 1] != '=' ||
            saslname(msg + p + 2, az_len - 2, out->authzid, sizeof(out->authzid), &n) != 0)
            return ST_E_MALFORMED;
        out->has_authzid = true;
    }
    p += az_len + 1;
    out->gs2_header = msg;
    out->gs2_len = p;
    out->bare = msg + p;
    out->bare_len = len - p;
    attr_t a;
    if (p < len && msg[p] == 'm')
        return ST_E_MALFORMED; /* reserved-mext: mandatory extensions are refused */
    if (next_attr(msg, len, &p, &a) != 0 || a.name != 'n' ||
        saslname(a.val, a.len, out->user, sizeof(out->user), &out->user_len) != 0)
        return ST_E_MALFORMED;
    if (next_attr(msg, len, &p, &a) != 0 || a.name != 'r' || a.len > ST_SCRAM_NONCE_MAX ||
        !nonce_ok(a.val, a.len))
        return ST_E_MALFORMED;
    out->nonce = a.val;
    out->nonce_len = a.len;
    while (p < len) {
        if (next_attr(msg, len, &p, &a) != 0)
            return ST_E_MALFORMED;
        out->has_extensions = true;
    }
    return 0;
}

int st_scram_parse_client_final(const char *msg, size_t len, st_scram_client_final_t *out)
{
    memset(out, 0, sizeof(*out));
    if (memchr(msg, 0, len))
        return ST_E_MALFORMED;
    size_t p = 0;
    attr_t a;
    if (next_attr(msg, len, &p, &a) != 0 || a.name != 'c')
        return ST_E_MALFORMED;
    out->channel_binding = a.val;
    out->channel_binding_len = a.len;
    if (next_attr(msg, len, &p, &a) != 0 || a.name != 'r' || !nonce_ok(a.val, a.len))
        return ST_E_MALFORMED;
    out->nonce = a.val;
    out->nonce_len = a.len;
    /* Extensions may follow; the proof is always last. */
    for (;;) {
        size_t at = p;
        if (p >= len || next_attr(msg, len, &p, &a) != 0)
            return ST_E_MALFORMED;
        if (a.name == 'p') {
            if (p != len || at == 0)
                return ST_E_MALFORMED;
            out->without_proof_len = at - 1; /* without the comma before p= */
            int n = st_b64_decode(a.val, a.len, out->proof, sizeof(out->proof));
            if (n <= 0)
                return ST_E_MALFORMED;
            out->proof_len = (size_t)n;
            return 0;
        }
    }
}

int st_sasl_parse_plain(const char *msg,
                        size_t len,
                        const char **authzid,
                        size_t *authzid_len,
                        const char **user,
                        size_t *user_len,
                        const char **password,
                        size_t *password_len)
{
    const char *z1 = memchr(msg, 0, len);
    if (!z1)
        return ST_E_MALFORMED;
    const char *u = z1 + 1;
    const char *z2 = memchr(u, 0, len - (size_t)(u - msg));
    if (!z2)
        return ST_E_MALFORMED;
    const char *pw = z2 + 1;
    size_t pwl = len - (size_t)(pw - msg);
    if (memchr(pw, 0, pwl) || z2 == u || pwl == 0)
        return ST_E_MALFORMED;
    *authzid = msg;
    *authzid_len = (size_t)(z1 - msg);
    *user = u;
    *user_len = (size_t)(z2 - u);
    *password = pw;
    *password_len = pwl;
    return 0;
}
