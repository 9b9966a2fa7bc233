/* sasl_fuzz.c - libFuzzer target of the SASL message parsers (core/st_scram.c):
 * SCRAM client-first and client-final messages, PLAIN messages and base64.
 * Data path: none (tests). The first input byte picks the parser (mod 4), the
 * rest is the message as a client sends it in SaslAuthenticate (or a raw
 * SaslHandshake v0 token). Every pointer a parser returns must lie inside the
 * message and every length within its bounds. Runs as a plain test over
 * tests/fuzz/corpus/sasl with kp_fuzz_main.c (ctest sasl_fuzz_corpus). For
 * real fuzzing:
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. core/st_scram.c \
 *     tests/fuzz/sasl_fuzz.c -lcrypto -o sasl_fuzz && ./sasl_fuzz tests/fuzz/corpus/sasl */
#include "core/st_scram.h"

#include <stdlib.h>
#include <string.h>

static void inside(const char *p, size_t n, const char *m, size_t len)
{
    if (n > len || p < m || p + n > m + len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *m = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        st_scram_client_first_t cf;
        if (st_scram_parse_client_first(m, len, &cf) != 0)
            break;
        inside(cf.gs2_header, cf.gs2_len, m, len);
        inside(cf.bare, cf.bare_len, m, len);
        inside(cf.nonce, cf.nonce_len, m, len);
        if (cf.nonce_len == 0 || cf.nonce_len > ST_SCRAM_NONCE_MAX || cf.user_len == 0 ||
            cf.user_len > ST_SCRAM_USER_MAX || strlen(cf.user) != cf.user_len ||
            cf.gs2_len + cf.bare_len != len)
            abort();
        break;
    }
    case 1: {
        st_scram_client_final_t cl;
        if (st_scram_parse_client_final(m, len, &cl) != 0)
            break;
        inside(cl.channel_binding, cl.channel_binding_len, m, len);
        inside(cl.nonce, cl.nonce_len, m, len);
        if (cl.without_proof_len >= len || cl.proof_len == 0 || cl.proof_len > ST_SCRAM_HASH_MAX)
            abort();
        break;
    }
    case 2: {
        const char *az, *u, *pw;
        size_t azl, ul, pwl;
        if (st_sasl_parse_plain(m, len, &az, &azl, &u, &ul, &pw, &pwl) != 0)
            break;
        inside(az, azl, m, len);
        inside(u, ul, m, len);
        inside(pw, pwl, m, len);
        if (ul == 0 || pwl == 0 || azl + ul + pwl + 2 != len)
            abort();
        break;
    }
    default: {
        uint8_t out[64];
        int n = st_b64_decode(m, len, out, sizeof(out));
        if (n > (int)sizeof(out) || (n >= 0 && (size_t)n > len))
            abort();
        if (n >= 0) { /* decode(encode(x)) == x */
            char enc[4 * sizeof(out) / 3 + 8];
            uint8_t back[64];
            size_t el = st_b64_encode(out, (size_t)n, enc);
            if (st_b64_decode(enc, el, back, sizeof(back)) != n || memcmp(back, out, (size_t)n))
                abort();
        }
        break;
    }
    }
    return 0;
}
