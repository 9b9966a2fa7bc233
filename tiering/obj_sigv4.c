/* obj_sigv4.c - AWS Signature Version 4 (header auth) on OpenSSL, plus the
 * small string/hex/SHA-256 helpers the S3 backend uses.
 * Data path: obj_s3.c builds each HTTP attempt -> obj__sigv4_sign() here
 * computes the canonical request, string to sign and Authorization header ->
 * curl sends it. We sign ourselves because curl 7.88's CURLOPT_AWS_SIGV4 does
 * not sort query parameters and signs `?uploads` as `uploads` (not `uploads=`).
 * Invariants: 1. the canonical query is sorted by encoded name (then value) and
 *                every parameter is written `name=value`, value possibly empty;
 *             2. the URI and query are encoded per RFC 3986 exactly once;
 *             3. header names are lowercased and sorted, values trimmed with
 *                inner runs of spaces folded to one. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tiering/obj_int.h"

/* ---- Helpers ---- */

void obj__hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void obj__sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t md[32];
    SHA256(data ? data : (const void *)"", len, md);
    obj__hex(md, 32, out);
}

int obj__str_add(obj__str_t *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *q = realloc(s->p, cap);
        if (!q)
            return ST_E_NOMEM;
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
    return 0;
}

int obj__str_addf(obj__str_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ST_E_INVAL;
    char *tmp = malloc((size_t)n + 1);
    if (!tmp)
        return ST_E_NOMEM;
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = obj__str_add(s, tmp, (size_t)n);
    free(tmp);
    return rc;
}

void obj__str_free(obj__str_t *s)
{
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
}

int obj__uri_encode(obj__str_t *out, const char *s, size_t len, bool keep_slash)
{
    static const char hexu[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            rc = obj__str_add(out, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hexu[c >> 4], hexu[c & 15]};
            rc = obj__str_add(out, e, 3);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- Signer ---- */

typedef struct {
    char *name;  /* encoded (query) or lowercased (header) */
    char *value; /* encoded (query) or trimmed (header) */
} pair_t;

static int cmp_pair(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void pairs_free(pair_t *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

static char *encode_dup(const char *s)
{
    obj__str_t o = {0};
    if (obj__uri_encode(&o, s, strlen(s), false) || obj__str_add(&o, "", 0)) {
        obj__str_free(&o);
        return NULL;
    }
    return o.p;
}

static char *trim_fold(const char *v)
{
    size_t n = strlen(v);
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == ' ' || v[i] == '\t') {
            space = j > 0;
            continue;
        }
        if (space)
            o[j++] = ' ';
        space = false;
        o[j++] = v[i];
    }
    o[j] = '\0';
    return o;
}

static void hmac256(const void *key, size_t klen, const char *msg, uint8_t out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

void obj__sigv4_out_free(obj__sigv4_out_t *out)
{
    free(out->canonical_request);
    free(out->string_to_sign);
    free(out->canonical_query);
    free(out->authorization);
    memset(out, 0, sizeof *out);
}

int obj__sigv4_sign(const obj__sigv4_in_t *in, obj__sigv4_out_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = ST_E_NOMEM;
    pair_t *q = calloc(in->n_query + 1, sizeof *q);
    pair_t *h = calloc(in->n_headers + 1, sizeof *h);
    obj__str_t cq = {0}, cr = {0}, sh = {0}, sts = {0}, auth = {0};
    if (!q || !h)
        goto out;
    for (size_t i = 0; i < in->n_query; i++) {
        q[i].name = encode_dup(in->query[i].name);
        q[i].value = encode_dup(in->query[i].value ? in->query[i].value : "");
        if (!q[i].name || !q[i].value)
            goto out;
    }
    qsort(q, in->n_query, sizeof *q, cmp_pair);
    for (size_t i = 0; i < in->n_headers; i++) {
        h[i].name = strdup(in->headers[i].name);
        h[i].value = trim_fold(in->headers[i].value);
        if (!h[i].name || !h[i].value)
            goto out;
        for (char *p = h[i].name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    qsort(h, in->n_headers, sizeof *h, cmp_pair);

    if (obj__str_add(&cq, "", 0))
        goto out;
    for (size_t i = 0; i < in->n_query; i++)
        if (obj__str_addf(&cq, "%s%s=%s", i ? "&" : "", q[i].name, q[i].value))
            goto out;
    if (obj__str_add(&sh, "", 0))
        goto out;
    for (size_t i = 0; i < in->n_headers; i++)
        if (obj__str_addf(&sh, "%s%s", i ? ";" : "", h[i].name))
            goto out;
    if (obj__str_addf(&cr, "%s\n%s\n%s\n", in->method, in->canonical_uri, cq.p))
        goto out;
    for (size_t i = 0; i < in->n_headers; i++)
        if (obj__str_addf(&cr, "%s:%s\n", h[i].name, h[i].value))
            goto out;
    if (obj__str_addf(&cr, "\n%s\n%s", sh.p, in->payload_hash))
        goto out;

    char date[9];
    memcpy(date, in->amz_date, 8);
    date[8] = '\0';
    char cr_hash[65];
    obj__sha256_hex(cr.p, cr.len, cr_hash);
    if (obj__str_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", in->amz_date, date,
                      in->region, in->service, cr_hash))
        goto out;

    size_t kl = strlen(in->secret_key) + 5;
    char *k0 = malloc(kl);
    if (!k0)
        goto out;
    snprintf(k0, kl, "AWS4%s", in->secret_key);
    uint8_t k[32], sig[32];
    hmac256(k0, strlen(k0), date, k);
    memset(k0, 0, kl);
    free(k0);
    hmac256(k, 32, in->region, k);
    hmac256(k, 32, in->service, k);
    hmac256(k, 32, "aws4_request", k);
    hmac256(k, 32, sts.p, sig);
    memset(k, 0, sizeof k);
    obj__hex(sig, 32, out->signature);
    if (obj__str_addf(&auth,
                      "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                      "SignedHeaders=%s, Signature=%s",
                      in->access_key, date, in->region, in->service, sh.p, out->signature))
        goto out;
    out->canonical_request = cr.p;
    out->string_to_sign = sts.p;
    out->canonical_query = cq.p;
    out->authorization = auth.p;
    cr.p = sts.p = cq.p = auth.p = NULL;
    rc = 0;
out:
    pairs_free(q, in->n_query);
    pairs_free(h, in->n_headers);
    obj__str_free(&cq);
    obj__str_free(&cr);
    obj__str_free(&sh);
    obj__str_free(&sts);
    obj__str_free(&auth);
    return rc;
}
