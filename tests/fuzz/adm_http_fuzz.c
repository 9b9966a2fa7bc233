/* adm_http_fuzz.c - libFuzzer target of the admin API's HTTP request parser.
 * Data path: none (tests). Feeds arbitrary bytes to adm_http_parse(), then
 * every prefix of them (as if they arrived in pieces), and checks the
 * results stay inside the input. Runs as a plain test over
 * tests/fuzz/corpus/adm with kp_fuzz_main.c (ctest adm_http_fuzz_corpus). For
 * real fuzzing, build it like tests/fuzz/run.sh does the codec's:
 *   clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DSTRATA_VERSION='"0"' \
 *     -I. $(pkg-config --cflags jansson libuv) admin/adm_http.c core/st_metrics.c \
 *     core/rt.c core/st_log.c core/st_err.c tests/fuzz/adm_http_fuzz.c -luv -lpthread */
#include "admin/adm_int.h"

#include <stdlib.h>

static void check(const char *buf, size_t len)
{
    adm_http_req_t r;
    int rc = adm_http_parse(buf, len, &r);
    if (rc == 0) {
        if (r.total_len > len || r.body_len > ADM_HTTP_MAX_BODY || r.body < buf ||
            r.body + r.body_len > buf + len || r.path.p < buf || r.path.p + r.path.len > buf + len)
            abort();
    } else if (rc == ST_E_MALFORMED) {
        if (r.error_status < 400 || r.error_status > 505 || !r.error_why)
            abort();
    } else if (rc != ST_E_AGAIN) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size);
    for (size_t n = 0; n < size && n < 512; n++)
        check((const char *)data, n);
    return 0;
}
