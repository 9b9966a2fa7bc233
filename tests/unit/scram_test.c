/* scram_test.c - unit tests of SCRAM arithmetic and message parsing
 * (core/st_scram) against RFC 7677's SCRAM-SHA-256 example and a
 * SCRAM-SHA-512 exchange computed with Python's hashlib/hmac, and of the
 * SCRAM users in the metadata store (core/meta_users.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/meta.h"
#include "core/st_scram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* RFC 7677 section 3 (user "user", password "pencil"). */
#define CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define SERVER_FIRST                                                                               \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define FINAL_NO_PROOF "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

typedef struct {
    int mech;
    const char *proof_b64;
    const char *server_sig_b64;
    const char *stored_hex;
} vec_t;

static const vec_t k_vecs[] = {
    {ST_SCRAM_SHA_256,
     "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
     "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6"},
    {ST_SCRAM_SHA_512,
     "gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
     "ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==",
     "e8002e6f7d3ae446119b216933644dc2a2be7869eb918b8459b5e7d7d2ec1260"
     "6aceef106825cd735170a675fd3611f684affad1dce3f43a0ee43bd590e1dbbe"},
};

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_rfc_exchange(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof(k_vecs) / sizeof(k_vecs[0]); v++) {
        const vec_t *t = &k_vecs[v];
        size_t hl = st_scram_hash_len(t->mech);
        uint8_t salt[32], stored[64], server[64];
        int sl = st_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt));
        assert_int_equal(sl, 16);
        assert_int_equal(
            st_scram_derive(t->mech, "pencil", 6, salt, (size_t)sl, 4096, stored, server), 0);
        char h[129];
        hex(stored, hl, h);
        assert_string_equal(h, t->stored_hex);

        /* The server's side of the exchange, as kh_sasl.c runs it. */
        st_scram_client_first_t cf;
        assert_int_equal(st_scram_parse_client_first(CLIENT_FIRST, strlen(CLIENT_FIRST), &cf), 0);
        assert_string_equal(cf.user, "user");
        assert_int_equal(cf.gs2_len, 3);
        char final[256];
        snprintf(final, sizeof(final), "%s,p=%s", FINAL_NO_PROOF, t->proof_b64);
        st_scram_client_final_t cl;
        assert_int_equal(st_scram_parse_client_final(final, strlen(final), &cl), 0);
        assert_int_equal(cl.without_proof_len, strlen(FINAL_NO_PROOF));
        assert_int_equal(cl.proof_len, hl);
        char auth[512];
        int al = snprintf(auth, sizeof(auth), "%.*s,%s,%.*s", (int)cf.bare_len, cf.bare,
                          SERVER_FIRST, (int)cl.without_proof_len, final);
        assert_true(
            st_scram_verify_proof(t->mech, stored, auth, (size_t)al, cl.proof, cl.proof_len));
        uint8_t sig[64];
        char sig_b64[100];
        assert_int_equal(st_scram_hmac(t->mech, server, hl, auth, (size_t)al, sig), 0);
        st_b64_encode(sig, hl, sig_b64);
        assert_string_equal(sig_b64, t->server_sig_b64);

        /* A flipped bit of the proof, or another password, fails. */
        cl.proof[0] ^= 1;
        assert_false(
            st_scram_verify_proof(t->mech, stored, auth, (size_t)al, cl.proof, cl.proof_len));
        cl.proof[0] ^= 1;
        uint8_t stored2[64], server2[64];
        assert_int_equal(
            st_scram_derive(t->mech, "pencil2", 7, salt, (size_t)sl, 4096, stored2, server2), 0);
        assert_false(
            st_scram_verify_proof(t->mech, stored2, auth, (size_t)al, cl.proof, cl.proof_len));
        /* A proof of the wrong length never verifies. */
        assert_false(st_scram_verify_proof(t->mech, stored, auth, (size_t)al, cl.proof, hl - 1));
    }
}

static void test_base64(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char b[16];
        uint8_t d[16];
        st_b64_encode((const uint8_t *)in[i], strlen(in[i]), b);
        assert_string_equal(b, out[i]);
        int n = st_b64_decode(out[i], strlen(out[i]), d, sizeof(d));
        assert_int_equal(n, (int)strlen(in[i]));
        assert_memory_equal(d, in[i], (size_t)n);
    }
    uint8_t d[4];
    assert_int_equal(st_b64_decode("Zg=", 3, d, 4), ST_E_MALFORMED);      /* not a multiple of 4 */
    assert_int_equal(st_b64_decode("Z===", 4, d, 4), ST_E_MALFORMED);     /* too much padding */
    assert_int_equal(st_b64_decode("Zg==Zg==", 8, d, 4), ST_E_MALFORMED); /* data after padding */
    assert_int_equal(st_b64_decode("Zm 9", 4, d, 4), ST_E_MALFORMED);     /* a blank */
    assert_int_equal(st_b64_decode("Zm9vYmFy", 8, d, 4), ST_E_TOO_LARGE);
}

static int first(const char *m, st_scram_client_first_t *cf)
{
    return st_scram_parse_client_first(m, strlen(m), cf);
}

static int final(const char *m, st_scram_client_final_t *cl)
{
    return st_scram_parse_client_final(m, strlen(m), cl);
}

static void test_parse_client_first(void **state)
{
    (void)state;
    st_scram_client_first_t cf;
    assert_int_equal(first("n,,n=a=2Cb=3Dc,r=xyz", &cf), 0);
    assert_string_equal(cf.user, "a,b=c");
    assert_int_equal(first("y,,n=u,r=x,x=1", &cf), 0);
    assert_true(cf.has_extensions);
    assert_int_equal(first("n,a=u,n=u,r=x", &cf), 0);
    assert_true(cf.has_authzid);
    assert_string_equal(cf.authzid, "u");
    assert_int_equal(cf.gs2_len, 6);
    const char *bad[] = {
        "p=tls-unique,,n=u,r=x", /* channel binding */
        "n,,n=u",                /* no nonce */
        "n,,r=x,n=u",            /* wrong order */
        "n,,n=,r=x",             /* empty user */
        "n,,n=a=2X,r=x",         /* bad escape */
        "n,,n=a=2,r=x",          /* truncated escape */
        "n,,n=u,r=x,",           /* trailing comma */
        "n,,n=u,r=",             /* empty nonce */
        "n,,m=1,n=u,r=x",        /* mandatory extension */
        "n,x,n=u,r=x",           /* malformed authzid */
        "n,,",                   /* nothing */
        "",
        "n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(first(bad[i], &cf), ST_E_MALFORMED);
    /* An embedded NUL is refused. */
    assert_int_equal(st_scram_parse_client_first("n,,n=u\0,r=x", 11, &cf), ST_E_MALFORMED);
    /* A user name longer than ST_SCRAM_USER_MAX is refused. */
    char big[600] = "n,,n=";
    memset(big + 5, 'a', 400);
    strcpy(big + 405, ",r=x");
    assert_int_equal(first(big, &cf), ST_E_MALFORMED);
}

static void test_parse_client_final(void **state)
{
    (void)state;
    st_scram_client_final_t cl;
    assert_int_equal(final("c=biws,r=abc,p=AAAA", &cl), 0);
    assert_int_equal(cl.proof_len, 3);
    assert_int_equal(cl.without_proof_len, strlen("c=biws,r=abc"));
    assert_int_equal(final("c=biws,r=abc,x=1,p=AAAA", &cl), 0);
    assert_int_equal(cl.without_proof_len, strlen("c=biws,r=abc,x=1"));
    const char *bad[] = {"c=biws,r=abc",        "c=biws,r=abc,p=AAA",
                         "r=abc,c=biws,p=AAAA", "c=biws,r=abc,p=AAAA,x=1",
                         "c=biws,p=AAAA",       "",
                         "c=biws,r=abc,p=",     "c=biws,r=abc,p=AAAA,"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(final(bad[i], &cl), ST_E_MALFORMED);
    char big[256] = "c=biws,r=abc,p=";
    memset(big + 15, 'A', 120); /* 90 bytes: more than any digest */
    assert_int_equal(final(big, &cl), ST_E_MALFORMED);
}

static void test_parse_plain(void **state)
{
    (void)state;
    const char *az, *u, *pw;
    size_t azl, ul, pwl;
    assert_int_equal(st_sasl_parse_plain("\0alice\0pw", 9, &az, &azl, &u, &ul, &pw, &pwl), 0);
    assert_int_equal(azl, 0);
    assert_int_equal(ul, 5);
    assert_memory_equal(u, "alice", 5);
    assert_int_equal(pwl, 2);
    assert_int_equal(st_sasl_parse_plain("bob\0alice\0pw", 12, &az, &azl, &u, &ul, &pw, &pwl), 0);
    assert_int_equal(azl, 3);
    assert_int_equal(st_sasl_parse_plain("alice\0pw", 8, &az, &azl, &u, &ul, &pw, &pwl),
                     ST_E_MALFORMED);
    assert_int_equal(st_sasl_parse_plain("\0alice\0", 7, &az, &azl, &u, &ul, &pw, &pwl),
                     ST_E_MALFORMED);
    assert_int_equal(st_sasl_parse_plain("\0\0pw", 4, &az, &azl, &u, &ul, &pw, &pwl),
                     ST_E_MALFORMED);
    assert_int_equal(st_sasl_parse_plain("\0a\0p\0w", 6, &az, &azl, &u, &ul, &pw, &pwl),
                     ST_E_MALFORMED);
    assert_int_equal(st_sasl_parse_plain("", 0, &az, &azl, &u, &ul, &pw, &pwl), ST_E_MALFORMED);
}

/* Users in the metadata store: upsert, find, delete, persisted across a reopen. */
static void test_meta_users(void **state)
{
    (void)state;
    char dir[] = "/tmp/scram_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    meta_t *m;
    assert_int_equal(meta_open(dir, &m, err, sizeof(err)), 0);
    meta_scram_change_t ch[3] = {0};
    assert_int_equal(meta_scram_cred_make(ST_SCRAM_SHA_256, "pw1", 3, 4096, &ch[0].cred), 0);
    ch[0].cred.name = "alice";
    assert_int_equal(meta_scram_cred_make(ST_SCRAM_SHA_512, "pw2", 3, 8192, &ch[1].cred), 0);
    ch[1].cred.name = "alice";
    ch[2].is_delete = true;
    ch[2].cred.name = "nobody";
    ch[2].cred.mechanism = ST_SCRAM_SHA_256;
    assert_int_equal(meta_users_alter_now(m, ch, 3), 0);
    assert_int_equal(ch[0].status, 0);
    assert_int_equal(ch[2].status, ST_E_NOTFOUND);
    meta_close(m);

    assert_int_equal(meta_open(dir, &m, err, sizeof(err)), 0);
    meta_users_t *u = meta_users_get(m);
    assert_int_equal(u->n_creds, 2);
    const meta_scram_cred_t *c = meta_users_find(u, "alice", 5, ST_SCRAM_SHA_512);
    assert_non_null(c);
    assert_int_equal(c->iterations, 8192);
    uint8_t stored[64], server[64];
    assert_int_equal(st_scram_derive(ST_SCRAM_SHA_512, "pw2", 3, c->salt, (size_t)c->salt_len,
                                     c->iterations, stored, server),
                     0);
    assert_true(st_scram_ct_eq(stored, c->stored_key, 64));
    assert_null(meta_users_find(u, "alic", 4, ST_SCRAM_SHA_512));
    assert_null(meta_users_find(u, "alice", 5, 3));
    meta_users_put(u);
    meta_scram_change_t del = {.is_delete = true};
    del.cred.name = "alice";
    del.cred.mechanism = ST_SCRAM_SHA_256;
    assert_int_equal(meta_users_alter_now(m, &del, 1), 0);
    assert_int_equal(del.status, 0);
    u = meta_users_get(m);
    assert_int_equal(u->n_creds, 1);
    assert_null(meta_users_find(u, "alice", 5, ST_SCRAM_SHA_256));
    meta_users_put(u);
    meta_close(m);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_exchange),       cmocka_unit_test(test_base64),
        cmocka_unit_test(test_parse_client_first), cmocka_unit_test(test_parse_client_final),
        cmocka_unit_test(test_parse_plain),        cmocka_unit_test(test_meta_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
