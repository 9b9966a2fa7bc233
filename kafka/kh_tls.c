/* kh_tls.c - TLS server contexts and sessions over memory BIOs (see kh_tls.h).
 * Data path: the connection's loop hands ciphertext to kh_tls_conn_read()
 * -> BIO_write into the session's read BIO -> SSL_do_handshake / SSL_read
 * decrypt into the connection's buffer; responses -> kh_tls_conn_write()
 * -> SSL_write into the output BIO, which appends the records to a buffer of
 * the session -> kh_tls_conn_output() hands that buffer over -> uv_write.
 * OpenSSL never blocks and never sees a socket, so a shard loop stays free.
 * Invariants: 1. t->ctx is replaced under t->mu, never modified once
 *                published: a session keeps a reference to the context it was
 *                made from (rotation leaves open connections alone);
 *             2. renegotiation is refused (SSL_OP_NO_RENEGOTIATION), so
 *                SSL_write never needs to read. */
#include "kafka/kh_tls.h"
#include "core/cfg.h"
#include "core/st_log.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define N_OPTS (sizeof(kh_tls_opts_t) / sizeof(char *))

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_sig_t;

struct kh_tls {
    pthread_mutex_t mu;
    SSL_CTX *ctx; /* current context (mu); sessions hold their own reference */
    _Atomic int generation;
    kh_tls_opts_t o;   /* owned copies of every string */
    file_sig_t sig[4]; /* keystore.location, truststore.location, cert_file, key_file */
};

struct kh_tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl; wbio appends to out */
    uint8_t *out;     /* owned: TLS records not yet taken by kh_tls_conn_output */
    size_t out_len, out_cap;
    bool is_ready;
    char *principal; /* owned */
    char err[200];
};

static int fail(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *buf, size_t len, const char *fmt, ...)
{
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, len, fmt, ap);
        va_end(ap);
        /* The innermost OpenSSL reason, when there is one. */
        unsigned long e, last = 0;
        while ((e = ERR_get_error()) != 0)
            last = e;
        if (last && n >= 0 && (size_t)n < len) {
            snprintf(buf + n, len - (size_t)n, " (%s)",
                     ERR_reason_error_string(last) ? ERR_reason_error_string(last)
                                                   : "unknown OpenSSL error");
        }
    }
    ERR_clear_error();
    return ST_E_CONFIG;
}

static bool set(const char *s)
{
    return s && *s;
}

/* ---- Options ---- */

static const struct {
    size_t off;
    cfg_key_t key;
} k_opt_keys[] = {
    {offsetof(kh_tls_opts_t, keystore_type), CFG_SSL_KEYSTORE_TYPE},
    {offsetof(kh_tls_opts_t, keystore_location), CFG_SSL_KEYSTORE_LOCATION},
    {offsetof(kh_tls_opts_t, keystore_password), CFG_SSL_KEYSTORE_PASSWORD},
    {offsetof(kh_tls_opts_t, keystore_chain), CFG_SSL_KEYSTORE_CHAIN},
    {offsetof(kh_tls_opts_t, keystore_key), CFG_SSL_KEYSTORE_KEY},
    {offsetof(kh_tls_opts_t, key_password), CFG_SSL_KEY_PASSWORD},
    {offsetof(kh_tls_opts_t, truststore_type), CFG_SSL_TRUSTSTORE_TYPE},
    {offsetof(kh_tls_opts_t, truststore_location), CFG_SSL_TRUSTSTORE_LOCATION},
    {offsetof(kh_tls_opts_t, truststore_password), CFG_SSL_TRUSTSTORE_PASSWORD},
    {offsetof(kh_tls_opts_t, truststore_certs), CFG_SSL_TRUSTSTORE_CERTS},
    {offsetof(kh_tls_opts_t, client_auth), CFG_SSL_CLIENT_AUTH},
    {offsetof(kh_tls_opts_t, cipher_suites), CFG_SSL_CIPHER_SUITES},
    {offsetof(kh_tls_opts_t, enabled_protocols), CFG_SSL_ENABLED_PROTOCOLS},
};

void kh_tls_opts_from_cfg(
    const struct cfg *cfg, const char *listener, kh_tls_opts_t *out, char *what, size_t what_len)
{
    memset(out, 0, sizeof(*out));
    snprintf(what, what_len, "listener %s", listener);
    out->what = what;
    for (size_t i = 0; i < sizeof(k_opt_keys) / sizeof(k_opt_keys[0]); i++) {
        const char *v = cfg_listener_str(cfg, listener, k_opt_keys[i].key);
        *(const char **)((char *)out + k_opt_keys[i].off) = v;
    }
}

static void opts_free(kh_tls_opts_t *o)
{
    const char **f = (const char **)o;
    for (size_t i = 0; i < N_OPTS; i++)
        free((char *)f[i]);
    memset(o, 0, sizeof(*o));
}

static int opts_copy(kh_tls_opts_t *dst, const kh_tls_opts_t *src)
{
    const char *const *s = (const char *const *)src;
    const char **d = (const char **)dst;
    for (size_t i = 0; i < N_OPTS; i++) {
        d[i] = strdup(s[i] ? s[i] : "");
        if (!d[i]) {
            opts_free(dst);
            return ST_E_NOMEM;
        }
    }
    return 0;
}

/* ---- Loading keys and certificates ---- */

/* Passphrase of encrypted PEM keys: ssl.key.password, never a prompt. */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *p = u;
    if (!p || !*p)
        return 0;
    int n = (int)strlen(p);
    if (n > size)
        return 0;
    memcpy(buf, p, (size_t)n);
    return n;
}

static BIO *pem_source(const char *file, const char *inline_pem)
{
    return set(file) ? BIO_new_file(file, "r") : BIO_new_mem_buf(inline_pem, -1);
}

/* Every certificate of a PEM source (other blocks, e.g. keys, are skipped). */
static STACK_OF(X509) * read_certs(const char *file, const char *inline_pem)
{
    BIO *b = pem_source(file, inline_pem);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while (b && sk && (x = PEM_read_bio_X509(b, NULL, pass_cb, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            break;
        }
    }
    ERR_clear_error(); /* the end of the input reads as "no start line" */
    BIO_free(b);
    if (sk && sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        sk = NULL;
    }
    return sk;
}

static EVP_PKEY *read_key(const char *file, const char *inline_pem, const char *pass)
{
    BIO *b = pem_source(file, inline_pem);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, pass_cb, (void *)pass) : NULL;
    BIO_free(b);
    return k;
}

static int
read_pkcs12(const char *file, const char *pass, EVP_PKEY **key, X509 **cert, STACK_OF(X509) * *ca)
{
    BIO *b = BIO_new_file(file, "rb");
    PKCS12 *p12 = b ? d2i_PKCS12_bio(b, NULL) : NULL;
    int ok = p12 && PKCS12_parse(p12, pass ? pass : "", key, cert, ca);
    PKCS12_free(p12);
    BIO_free(b);
    return ok ? 0 : -1;
}

static int load_keystore(SSL_CTX *ctx, const kh_tls_opts_t *o, char *errbuf, size_t errbuf_len)
{
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL; /* the certificates after the leaf */
    int rc = 0;
    if (!strcasecmp(o->keystore_type, "PKCS12")) {
        if (!set(o->keystore_location))
            return fail(errbuf, errbuf_len,
                        "%s: ssl.keystore.type=PKCS12 needs ssl.keystore.location", o->what);
        if (read_pkcs12(o->keystore_location, o->keystore_password, &key, &leaf, &chain) != 0 ||
            !key || !leaf) {
            rc = fail(errbuf, errbuf_len, "%s: cannot read the PKCS12 keystore %s", o->what,
                      o->keystore_location);
            goto out;
        }
    } else if (!strcasecmp(o->keystore_type, "PEM")) {
        const char *loc = set(o->keystore_location) ? o->keystore_location : NULL;
        const char *cfile = set(o->cert_file) ? o->cert_file : loc;
        const char *kfile = set(o->key_file) ? o->key_file : loc;
        if (!(cfile || set(o->keystore_chain)) || !(kfile || set(o->keystore_key)))
            return fail(errbuf, errbuf_len,
                        "%s: TLS needs ssl.keystore.location (a PEM file with the key and the "
                        "certificate chain) or ssl.keystore.certificate.chain and ssl.keystore.key",
                        o->what);
        chain = read_certs(cfile, o->keystore_chain);
        key = read_key(kfile, o->keystore_key, o->key_password);
        if (!chain) {
            rc = fail(errbuf, errbuf_len, "%s: no PEM certificate in %s", o->what,
                      cfile ? cfile : "ssl.keystore.certificate.chain");
            goto out;
        }
        if (!key) {
            rc = fail(errbuf, errbuf_len,
                      "%s: cannot read the private key in %s (missing, or encrypted and "
                      "ssl.key.password is wrong or unset)",
                      o->what, kfile ? kfile : "ssl.keystore.key");
            goto out;
        }
        leaf = sk_X509_shift(chain);
    } else {
        return fail(errbuf, errbuf_len, "%s: ssl.keystore.type '%s' is not PEM or PKCS12", o->what,
                    o->keystore_type);
    }
    if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        rc =
            fail(errbuf, errbuf_len, "%s: the private key does not match the certificate", o->what);
        goto out;
    }
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
            rc = fail(errbuf, errbuf_len, "%s: cannot add a chain certificate", o->what);
            goto out;
        }
    }
out:
    EVP_PKEY_free(key);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

static int load_truststore(SSL_CTX *ctx, const kh_tls_opts_t *o, char *errbuf, size_t errbuf_len)
{
    STACK_OF(X509) *cas = NULL;
    const char *file = set(o->truststore_location) ? o->truststore_location : NULL;
    if (!file && !set(o->truststore_certs))
        return 0;
    if (!strcasecmp(o->truststore_type, "PKCS12")) {
        EVP_PKEY *k = NULL;
        X509 *c = NULL;
        if (!file || read_pkcs12(file, o->truststore_password, &k, &c, &cas) != 0)
            return fail(errbuf, errbuf_len, "%s: cannot read the PKCS12 truststore %s", o->what,
                        file ? file : "(ssl.truststore.location unset)");
        EVP_PKEY_free(k);
        if (c && (cas || (cas = sk_X509_new_null())) && !sk_X509_push(cas, c))
            X509_free(c);
    } else if (!strcasecmp(o->truststore_type, "PEM")) {
        cas = read_certs(file, o->truststore_certs);
    } else {
        return fail(errbuf, errbuf_len, "%s: ssl.truststore.type '%s' is not PEM or PKCS12",
                    o->what, o->truststore_type);
    }
    if (!cas || sk_X509_num(cas) == 0) {
        sk_X509_pop_free(cas, X509_free);
        return fail(errbuf, errbuf_len, "%s: no certificate in %s", o->what,
                    file ? file : "ssl.truststore.certificates");
    }
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    int rc = 0;
    for (int i = 0; i < sk_X509_num(cas) && rc == 0; i++) {
        X509 *x = sk_X509_value(cas, i);
        /* Tell clients which CAs their certificate must come from. */
        if (X509_STORE_add_cert(st, x) != 1 || SSL_CTX_add_client_CA(ctx, x) != 1)
            rc = fail(errbuf, errbuf_len, "%s: cannot add a truststore certificate", o->what);
    }
    sk_X509_pop_free(cas, X509_free);
    return rc;
}

static int set_protocols(SSL_CTX *ctx, const kh_tls_opts_t *o, char *errbuf, size_t errbuf_len)
{
    int lo = 0, hi = 0;
    const char *p = o->enabled_protocols;
    if (!set(p))
        p = "TLSv1.2,TLSv1.3";
    while (*p) {
        size_t n = strcspn(p, ", ");
        int v = 0;
        if (n == 7 && !strncasecmp(p, "TLSv1.2", 7))
            v = TLS1_2_VERSION;
        else if (n == 7 && !strncasecmp(p, "TLSv1.3", 7))
            v = TLS1_3_VERSION;
        else if (n > 0)
            return fail(errbuf, errbuf_len,
                        "%s: ssl.enabled.protocols: '%.*s' is not supported (TLSv1.2, TLSv1.3)",
                        o->what, (int)n, p);
        if (v && (!lo || v < lo))
            lo = v;
        if (v > hi)
            hi = v;
        p += n;
        p += strspn(p, ", ");
    }
    if (SSL_CTX_set_min_proto_version(ctx, lo) != 1 || SSL_CTX_set_max_proto_version(ctx, hi) != 1)
        return fail(errbuf, errbuf_len, "%s: cannot set ssl.enabled.protocols", o->what);
    return 0;
}

/* ssl.cipher.suites: Kafka lists IANA names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
 * TLS_AES_256_GCM_SHA384); OpenSSL names are accepted too. TLS 1.3 suites and
 * TLS 1.2 ciphers are set apart, as OpenSSL configures them. */
static int set_ciphers(SSL_CTX *ctx, const kh_tls_opts_t *o, char *errbuf, size_t errbuf_len)
{
    if (!set(o->cipher_suites))
        return 0;
    char v12[2048] = "", v13[512] = "";
    STACK_OF(SSL_CIPHER) *all = NULL;
    SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
    if (!probe || SSL_CTX_set_cipher_list(probe, "ALL:COMPLEMENTOFALL") != 1) {
        SSL_CTX_free(probe);
        return fail(errbuf, errbuf_len, "%s: cannot list the TLS ciphers", o->what);
    }
    all = SSL_CTX_get_ciphers(probe);
    int rc = 0;
    for (const char *p = o->cipher_suites; *p && rc == 0;) {
        size_t n = strcspn(p, ", :");
        const SSL_CIPHER *found = NULL;
        for (int i = 0; n && i < sk_SSL_CIPHER_num(all) && !found; i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(all, i);
            const char *std = SSL_CIPHER_standard_name(c), *name = SSL_CIPHER_get_name(c);
            if ((std && strlen(std) == n && !strncmp(std, p, n)) ||
                (strlen(name) == n && !strncmp(name, p, n)))
                found = c;
        }
        if (n && !found) {
            rc = fail(errbuf, errbuf_len, "%s: ssl.cipher.suites: unknown cipher suite '%.*s'",
                      o->what, (int)n, p);
            break;
        }
        if (found) {
            bool tls13 = !strcmp(SSL_CIPHER_get_version(found), "TLSv1.3");
            char *dst = tls13 ? v13 : v12;
            size_t cap = tls13 ? sizeof(v13) : sizeof(v12), used = strlen(dst);
            snprintf(dst + used, cap - used, "%s%s", used ? ":" : "",
                     tls13 ? SSL_CIPHER_standard_name(found) : SSL_CIPHER_get_name(found));
        }
        p += n;
        p += strspn(p, ", :");
    }
    SSL_CTX_free(probe);
    if (rc != 0)
        return rc;
    /* A list without TLS 1.2 ciphers allows TLS 1.3 only, and the reverse. */
    if (SSL_CTX_set_ciphersuites(ctx, v13) != 1 ||
        (*v12 ? SSL_CTX_set_cipher_list(ctx, v12) != 1
              : SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1))
        return fail(errbuf, errbuf_len, "%s: ssl.cipher.suites: cannot use '%s'", o->what,
                    o->cipher_suites);
    if (!*v13 && SSL_CTX_get_min_proto_version(ctx) <= TLS1_2_VERSION)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    return 0;
}

static int build_ctx(const kh_tls_opts_t *o, SSL_CTX **out, char *errbuf, size_t errbuf_len)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return fail(errbuf, errbuf_len, "%s: cannot create a TLS context", o->what);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"strata", 6);
    int verify = SSL_VERIFY_NONE;
    const char *ca = o->client_auth;
    if (!set(ca) || !strcasecmp(ca, "none"))
        verify = SSL_VERIFY_NONE;
    else if (!strcasecmp(ca, "requested"))
        verify = SSL_VERIFY_PEER;
    else if (!strcasecmp(ca, "required"))
        verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    else {
        SSL_CTX_free(ctx);
        return fail(errbuf, errbuf_len,
                    "%s: ssl.client.auth '%s' is not none, requested or required", o->what, ca);
    }
    int rc = set_protocols(ctx, o, errbuf, errbuf_len);
    if (rc == 0)
        rc = set_ciphers(ctx, o, errbuf, errbuf_len);
    if (rc == 0)
        rc = load_keystore(ctx, o, errbuf, errbuf_len);
    if (rc == 0)
        rc = load_truststore(ctx, o, errbuf, errbuf_len);
    if (rc == 0 && verify != SSL_VERIFY_NONE && !set(o->truststore_location) &&
        !set(o->truststore_certs))
        rc = fail(errbuf, errbuf_len,
                  "%s: ssl.client.auth=%s needs the CAs of client certificates in "
                  "ssl.truststore.location or ssl.truststore.certificates",
                  o->what, ca);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    SSL_CTX_set_verify(ctx, verify, NULL);
    *out = ctx;
    return 0;
}

static void file_sig(const char *path, file_sig_t *s)
{
    struct stat st;
    memset(s, 0, sizeof(*s));
    if (set(path) && stat(path, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->size = st.st_size;
        s->mtime = st.st_mtim;
    }
}

static void take_sigs(kh_tls_t *t, file_sig_t sig[4])
{
    file_sig(t->o.keystore_location, &sig[0]);
    file_sig(t->o.truststore_location, &sig[1]);
    file_sig(t->o.cert_file, &sig[2]);
    file_sig(t->o.key_file, &sig[3]);
}

/* ---- Contexts ---- */

int kh_tls_new(const kh_tls_opts_t *o, kh_tls_t **out, char *errbuf, size_t errbuf_len)
{
    kh_tls_t *t = calloc(1, sizeof(*t));
    if (!t || opts_copy(&t->o, o) != 0) {
        free(t);
        return ST_E_NOMEM;
    }
    take_sigs(t, t->sig); /* before reading: a change while loading shows next time */
    int rc = build_ctx(&t->o, &t->ctx, errbuf, errbuf_len);
    if (rc != 0) {
        opts_free(&t->o);
        free(t);
        return rc;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->generation = 1;
    *out = t;
    return 0;
}

int kh_tls_reload(kh_tls_t *t, char *errbuf, size_t errbuf_len)
{
    file_sig_t sig[4];
    take_sigs(t, sig);
    SSL_CTX *ctx;
    int rc = build_ctx(&t->o, &ctx, errbuf, errbuf_len);
    pthread_mutex_lock(&t->mu);
    memcpy(t->sig, sig, sizeof(sig)); /* a broken file is not retried until it changes */
    SSL_CTX *old = rc == 0 ? t->ctx : NULL;
    if (rc == 0) {
        t->ctx = ctx;
        t->generation++;
    }
    pthread_mutex_unlock(&t->mu);
    SSL_CTX_free(old); /* sessions made from it keep their reference */
    return rc;
}

bool kh_tls_files_changed(kh_tls_t *t)
{
    file_sig_t sig[4];
    take_sigs(t, sig);
    pthread_mutex_lock(&t->mu);
    bool changed = memcmp(sig, t->sig, sizeof(sig)) != 0;
    pthread_mutex_unlock(&t->mu);
    return changed;
}

int kh_tls_generation(const kh_tls_t *t)
{
    return t->generation;
}

void kh_tls_free(kh_tls_t *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->mu);
    opts_free(&t->o);
    free(t);
}

/* ---- Sessions ---- */

/* The output BIO: records are appended to the session's buffer, which
 * kh_tls_conn_output() then gives away whole (a memory BIO would copy them
 * once more on the way out). */
static int out_write(BIO *b, const char *data, int n)
{
    kh_tls_conn_t *tc = BIO_get_data(b);
    if (n <= 0)
        return 0;
    if (tc->out_cap - tc->out_len < (size_t)n) {
        size_t cap = tc->out_cap ? tc->out_cap * 2 : 4096;
        while (cap - tc->out_len < (size_t)n)
            cap *= 2;
        uint8_t *p = realloc(tc->out, cap);
        if (!p)
            return -1;
        tc->out = p;
        tc->out_cap = cap;
    }
    memcpy(tc->out + tc->out_len, data, (size_t)n);
    tc->out_len += (size_t)n;
    return n;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    kh_tls_conn_t *tc = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_PENDING:
        return (long)tc->out_len;
    default:
        return 0;
    }
}

static int out_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *g_out_method;
static pthread_once_t g_out_once = PTHREAD_ONCE_INIT;

static void out_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "strata TLS out");
    if (m && BIO_meth_set_write(m, out_write) == 1 && BIO_meth_set_ctrl(m, out_ctrl) == 1 &&
        BIO_meth_set_create(m, out_create) == 1)
        g_out_method = m; /* lives as long as the process */
    else
        BIO_meth_free(m);
}

kh_tls_conn_t *kh_tls_conn_new(kh_tls_t *t)
{
    kh_tls_conn_t *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return NULL;
    pthread_mutex_lock(&t->mu);
    tc->ssl = SSL_new(t->ctx); /* takes its own reference on the context */
    pthread_mutex_unlock(&t->mu);
    tc->rbio = BIO_new(BIO_s_mem());
    pthread_once(&g_out_once, out_method_init);
    tc->wbio = g_out_method ? BIO_new(g_out_method) : NULL;
    if (tc->wbio)
        BIO_set_data(tc->wbio, tc);
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        SSL_free(tc->ssl);
        free(tc);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_mem_eof_return(tc->rbio, -1); /* empty = "try again", not EOF */
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void kh_tls_conn_free(kh_tls_conn_t *tc)
{
    if (!tc)
        return;
    SSL_free(tc->ssl); /* frees the BIOs */
    free(tc->out);
    free(tc->principal);
    free(tc);
}

/* Record why the session failed: the OpenSSL reason or the verify result. */
static ssize_t conn_fail(kh_tls_conn_t *tc, int ssl_err, const char *stage)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    long vr = SSL_get_verify_result(tc->ssl);
    if (vr != X509_V_OK)
        snprintf(tc->err, sizeof(tc->err), "%s: client certificate: %s", stage,
                 X509_verify_cert_error_string(vr));
    else
        snprintf(tc->err, sizeof(tc->err), "%s: %s", stage,
                 why                            ? why
                 : ssl_err == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                                : "error");
    ERR_clear_error();
    return ST_E_MALFORMED;
}

static void take_principal(kh_tls_conn_t *tc)
{
    X509 *peer = SSL_get0_peer_certificate(tc->ssl);
    if (!peer || SSL_get_verify_result(tc->ssl) != X509_V_OK)
        return;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    /* RFC 2253, most specific first: what Java's X500Principal.getName()
     * gives Kafka's DefaultKafkaPrincipalBuilder ("CN=alice,O=Acme,C=FR"). */
    BIO_puts(b, "User:");
    if (X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        tc->principal = n > 0 ? strndup(p, (size_t)n) : NULL;
    }
    BIO_free(b);
}

ssize_t kh_tls_conn_read(
    kh_tls_conn_t *tc, const uint8_t *in, size_t n, uint8_t **buf, size_t len, size_t *cap)
{
    if (n > 0 && BIO_write(tc->rbio, in, (int)n) != (int)n) {
        snprintf(tc->err, sizeof(tc->err), "out of memory");
        return ST_E_NOMEM;
    }
    if (!tc->is_ready) {
        int r = SSL_do_handshake(tc->ssl);
        if (r != 1) {
            int e = SSL_get_error(tc->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return conn_fail(tc, e, "TLS handshake failed");
        }
        tc->is_ready = true;
        take_principal(tc);
    }
    size_t got = 0;
    for (;;) {
        if (*cap - len - got < 16384) {
            /* Only what the records need: the caller's buffer is in its
             * memory budget (queued.max.request.bytes). */
            size_t ncap = len + got + 65536;
            uint8_t *nb = realloc(*buf, ncap);
            if (!nb) {
                snprintf(tc->err, sizeof(tc->err), "out of memory");
                return ST_E_NOMEM;
            }
            *buf = nb;
            *cap = ncap;
        }
        size_t room = *cap - len - got;
        int r = SSL_read(tc->ssl, *buf + len + got, room > INT32_MAX ? INT32_MAX : (int)room);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int e = SSL_get_error(tc->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            return (ssize_t)got;
        if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: a clean end, like EOF */
            snprintf(tc->err, sizeof(tc->err), "closed by peer (close_notify)");
            return got > 0 ? (ssize_t)got : ST_E_CLOSED; /* what came before still counts */
        }
        return conn_fail(tc, e, "TLS read failed");
    }
}

int kh_tls_conn_write(kh_tls_conn_t *tc, const uint8_t *plain, size_t n)
{
    /* Room for the records at once: 16 KiB of plaintext each, plus at most
     * 5 + 256 + 16 bytes of header, padding and tag. */
    size_t need = tc->out_len + n + (n / 16384 + 1) * 300;
    if (need > tc->out_cap) {
        uint8_t *p = realloc(tc->out, need);
        if (!p)
            return ST_E_NOMEM;
        tc->out = p;
        tc->out_cap = need;
    }
    while (n > 0) {
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        int r = SSL_write(tc->ssl, plain, chunk);
        if (r <= 0) {
            (void)conn_fail(tc, SSL_get_error(tc->ssl, r), "TLS write failed");
            return ST_E_IO;
        }
        plain += r;
        n -= (size_t)r;
    }
    return 0;
}

int kh_tls_conn_output(kh_tls_conn_t *tc, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (tc->out_len == 0)
        return 0;
    *out = tc->out;
    *out_len = tc->out_len;
    tc->out = NULL;
    tc->out_len = tc->out_cap = 0;
    return 0;
}

bool kh_tls_conn_is_ready(const kh_tls_conn_t *tc)
{
    return tc->is_ready;
}

const char *kh_tls_conn_principal(const kh_tls_conn_t *tc)
{
    return tc->principal;
}

const char *kh_tls_conn_error(const kh_tls_conn_t *tc)
{
    return tc->err[0] ? tc->err : "TLS error";
}

const char *kh_tls_conn_describe(const kh_tls_conn_t *tc, char *buf, size_t len)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(tc->ssl);
    snprintf(buf, len, "%s %s", SSL_get_version(tc->ssl),
             c ? SSL_CIPHER_standard_name(c) : "(no cipher)");
    return buf;
}
