/* obj_fault_test.c - the s3:// backend through a fault-injecting HTTP proxy
 * (tests/fault/faultproxy.py, started by this test) in front of the real S3
 * server: 500/503/429 replies, dropped connections, delays past the attempt
 * timeout, connections reset mid-body and corrupted bodies. Every operation
 * either succeeds after retries with intact data or fails cleanly with a
 * bounded number of attempts; a corrupted GET body is caught by the checksum.
 * The proxy also serves TLS with a self-signed certificate made here: the
 * client refuses it by default (no retry) and works through it when
 * verification is disabled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cmocka.h>

#include "tests/integration/obj_test_s3.h"


typedef struct {
    uv_loop_t loop;
    obj_store_t *st;
    char prefix[96];
} fx_t;

/* ---- The proxy ---- */

typedef struct {
    pid_t pid;
    int stdin_fd;
    int port;
} proxy_t;

static proxy_t g_proxy = {.stdin_fd = -1};
static proxy_t g_tls_proxy = {.stdin_fd = -1};
static char g_pem_path[64];

/* Start faultproxy.py (extra argv: NULL or "--tls", PEMFILE). */
static int proxy_spawn(proxy_t *p, const char *tls_pem)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
        execlp(py, py, STRATA_SOURCE_DIR "/tests/fault/faultproxy.py", t_s3_endpoint(),
               tls_pem ? "--tls" : (char *)NULL, tls_pem, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->stdin_fd = in[1];
    char line[32] = "";
    FILE *f = fdopen(out[0], "r");
    if (!f || !fgets(line, sizeof line, f))
        return -1;
    fclose(f);
    p->port = atoi(line);
    return p->port > 0 ? 0 : -1;
}

static void proxy_stop(proxy_t *p)
{
    if (p->stdin_fd >= 0)
        close(p->stdin_fd); /* the proxy exits when its stdin closes */
    if (p->pid > 0)
        waitpid(p->pid, NULL, 0);
    p->stdin_fd = -1;
    p->pid = 0;
}

/* A throwaway self-signed certificate (P-256) and its key in one PEM file. */
static int make_self_signed(const char *path)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f = fopen(path, "w");
    int rc = -1;
    if (!pk || !x || !f)
        goto out;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, pk, EVP_sha256()) > 0 && PEM_write_X509(f, x) &&
        PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL))
        rc = 0;
out:
    if (f)
        fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
    return rc;
}

static int group_setup(void **state)
{
    if (!t_s3_endpoint() || proxy_spawn(&g_proxy, NULL)) {
        fprintf(stderr, "could not start the S3 server or the fault proxy\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    proxy_stop(&g_tls_proxy);
    if (g_pem_path[0])
        unlink(g_pem_path);
    proxy_stop(&g_proxy);
    return 0;
}

static size_t sink(char *p, size_t s, size_t n, void *u)
{
    obj__str_t *o = u;
    return obj__str_add(o, p, s * n) ? 0 : s * n;
}

/* One control request to the proxy (blocking; the store's loop is idle). */
static char *proxy_ctl(const char *path, const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_proxy.port, path);
    CURL *e = curl_easy_init();
    obj__str_t out = {0};
    assert_int_equal(obj__str_add(&out, "", 0), 0);
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    return out.p;
}

static void plan(const char *actions)
{
    free(proxy_ctl("/__fault/plan", actions));
}

static void always(const char *action)
{
    free(proxy_ctl("/__fault/always", action));
}

static int proxy_requests(void)
{
    char *s = proxy_ctl("/__fault/stats", NULL);
    int n = -1;
    sscanf(s, "requests=%d", &n);
    free(s);
    return n;
}

/* ---- Fixture ---- */

static obj_config_t proxy_cfg(const char *url)
{
    static char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", g_proxy.port);
    obj_config_t cfg = {.url = url,
                        .endpoint = ep,
                        .access_key = "S3RVER",
                        .secret_key = "S3RVER",
                        .addressing = OBJ_ADDR_PATH,
                        .max_attempts = 4,
                        .retry_base_ms = 10,
                        .retry_max_ms = 40,
                        .attempt_timeout_ms = 400,
                        .multipart_threshold_bytes = 6u << 20,
                        .multipart_part_bytes = 5u << 20};
    return cfg;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    t_unique_prefix(f->prefix, sizeof f->prefix, "fault");
    char url[160];
    snprintf(url, sizeof url, "s3://" T_BUCKET "/%s", f->prefix);
    obj_config_t cfg = proxy_cfg(url);
    assert_int_equal(obj_store_new(&f->loop, &cfg, &f->st, NULL, 0), 0);
    free(proxy_ctl("/__fault/reset", ""));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    free(proxy_ctl("/__fault/reset", ""));
    t_close_store(&f->loop, f->st);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static t_out_t run_put(fx_t *f, const char *key, const void *data, size_t len)
{
    t_out_t o = {0};
    assert_int_equal(obj_put(f->st, key, data, len, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    return o;
}

static t_out_t run_get(fx_t *f, const char *key)
{
    t_out_t o = {0};
    assert_int_equal(obj_get(f->st, key, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    return o;
}

static uint8_t *pattern(size_t n)
{
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 13 + (i >> 8));
    return b;
}

/* ---- Tests ---- */

static void test_fault_5xx_and_429_are_retried(void **state)
{
    fx_t *f = *state;
    size_t n = 200000;
    uint8_t *buf = pattern(n);
    plan("503 500");
    t_out_t o = run_put(f, "a", buf, n);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 3);
    t_out_free(&o);
    plan("500 503 429");
    o = run_get(f, "a");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 4);
    assert_int_equal(o.len, n);
    assert_memory_equal(o.data, buf, n);
    t_out_free(&o);
    free(buf);
}

static void test_fault_connection_reset_mid_body(void **state)
{
    fx_t *f = *state;
    size_t n = 3u << 20;
    uint8_t *buf = pattern(n);
    plan("drop");
    t_out_t o = run_put(f, "reset/obj", buf, n);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 2);
    t_out_free(&o);
    plan("reset");
    o = run_get(f, "reset/obj");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 2);
    assert_int_equal(o.len, n);
    assert_memory_equal(o.data, buf, n);
    t_out_free(&o);
    plan("reset reset");
    assert_int_equal(obj_get_range(f->st, "reset/obj", 1u << 20, 1u << 20, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 3);
    assert_int_equal(o.len, 1u << 20);
    assert_memory_equal(o.data, buf + (1u << 20), 1u << 20);
    t_out_free(&o);
    free(buf);
}

static void test_fault_delay_past_attempt_timeout(void **state)
{
    fx_t *f = *state;
    t_out_t o = run_put(f, "slow", "slow body", 9);
    assert_int_equal(o.status, 0);
    t_out_free(&o);
    /* attempt timeout 400 ms; a whole GET is cut by stall detection (>= 1 s) */
    plan("delay:3000");
    o = run_get(f, "slow");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 2);
    assert_memory_equal(o.data, "slow body", 9);
    t_out_free(&o);
}

static void test_fault_request_deadline(void **state)
{
    fx_t *f = *state;
    always("delay:1500");
    t_out_t o = {0};
    obj_req_t *req;
    assert_int_equal(obj_head(f->st, "slow", t_done_cb, &o, &req), 0);
    obj_req_set_timeout(req, 200);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, ST_E_TIMEOUT);
    assert_true(o.attempts <= 1);
    t_out_free(&o);
    always("");
}

static void test_fault_corrupt_body_detected(void **state)
{
    fx_t *f = *state;
    size_t n = 100000;
    uint8_t *buf = pattern(n);
    t_out_t o = run_put(f, "c", buf, n);
    assert_int_equal(o.status, 0);
    t_out_free(&o);
    /* once: the checksum catches it and the retry reads good bytes */
    plan("corrupt");
    o = run_get(f, "c");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 2);
    assert_memory_equal(o.data, buf, n);
    t_out_free(&o);
    /* always: a clean ST_E_CORRUPT after max_attempts */
    always("corrupt");
    o = run_get(f, "c");
    assert_int_equal(o.status, ST_E_CORRUPT);
    assert_int_equal(o.attempts, 4);
    assert_non_null(strstr(o.errmsg, "checksum mismatch"));
    t_out_free(&o);
    always("");
    free(buf);
}

static void test_fault_persistent_5xx_fails_cleanly(void **state)
{
    fx_t *f = *state;
    always("503");
    t_out_t o = run_put(f, "never", "x", 1);
    assert_int_equal(o.status, ST_E_REMOTE);
    assert_int_equal(o.attempts, 4);
    assert_int_equal(o.http_status, 503);
    assert_non_null(strstr(o.errmsg, "SlowDown"));
    assert_int_equal(proxy_requests(), 4);
    t_out_free(&o);
    always("");
}

static void test_fault_list_head_delete_retry(void **state)
{
    fx_t *f = *state;
    const char *keys[] = {"m/1", "m/2", "m/3"};
    for (int i = 0; i < 3; i++) {
        t_out_t o = run_put(f, keys[i], "v", 1);
        assert_int_equal(o.status, 0);
        t_out_free(&o);
    }
    t_out_t o = {0};
    plan("503");
    assert_int_equal(obj_list(f->st, "m/", NULL, 2, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 2);
    assert_int_equal(o.n_keys, 2);
    assert_non_null(o.next_token);
    t_out_free(&o);
    plan("reset");
    assert_int_equal(obj_head(f->st, "m/1", t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.object_size, 1);
    t_out_free(&o);
    plan("500");
    assert_int_equal(obj_delete(f->st, "m/1", t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.attempts, 2);
    t_out_free(&o);
    plan("drop 503");
    assert_int_equal(obj_delete_many(f->st, keys, 3, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    /* 3, or 4 when s3rver itself answers 500 to a batch that empties a "directory" */
    assert_true(o.attempts >= 3 && o.attempts <= 4);
    t_out_free(&o);
    assert_int_equal(obj_list(f->st, "m/", NULL, 0, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.n_keys, 0);
    t_out_free(&o);
}

static void test_fault_multipart_part_failure_aborts(void **state)
{
    fx_t *f = *state;
    size_t n = 11u << 20; /* 3 parts */
    uint8_t *buf = pattern(n);
    /* initiate ok, then part 1 fails every attempt */
    plan("ok 500 500 500 500");
    t_out_t o = run_put(f, "mp/fail", buf, n);
    assert_int_equal(o.status, ST_E_REMOTE);
    assert_non_null(strstr(o.errmsg, "UploadPart"));
    /* initiate + 4 part attempts + one abort, nothing more */
    assert_int_equal(proxy_requests(), 6);
    t_out_free(&o);
    o = run_get(f, "mp/fail");
    assert_int_equal(o.status, ST_E_NOTFOUND);
    t_out_free(&o);
    /* a part that fails twice is retried and the upload completes */
    plan("ok ok 503 drop");
    o = run_put(f, "mp/ok", buf, n);
    assert_int_equal(o.status, 0);
    t_out_free(&o);
    o = run_get(f, "mp/ok");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.len, n);
    assert_memory_equal(o.data, buf, n);
    t_out_free(&o);
    free(buf);
}

static void test_fault_tls_verified_by_default(void **state)
{
    fx_t *f = *state;
    if (!g_tls_proxy.pid) {
        snprintf(g_pem_path, sizeof g_pem_path, "/tmp/strata-objtls.%d.pem", (int)getpid());
        assert_int_equal(make_self_signed(g_pem_path), 0);
        assert_int_equal(proxy_spawn(&g_tls_proxy, g_pem_path), 0);
    }
    char ep[64], url[160];
    snprintf(ep, sizeof ep, "https://127.0.0.1:%d", g_tls_proxy.port);
    snprintf(url, sizeof url, "s3://" T_BUCKET "/%s/tls", f->prefix);
    obj_config_t cfg = proxy_cfg(url);
    cfg.endpoint = ep;
    obj_store_t *st;
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, NULL, 0), 0);
    t_out_t o = {0};
    assert_int_equal(obj_put(st, "k", "secure", 6, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, ST_E_IO);
    assert_int_equal(o.attempts, 1); /* a certificate problem is not retried */
    assert_non_null(strstr(o.errmsg, "certificate"));
    t_out_free(&o);
    t_close_store(&f->loop, st);

    cfg.is_tls_verify_disabled = true;
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, NULL, 0), 0);
    assert_int_equal(obj_put(st, "k", "secure", 6, t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    t_out_free(&o);
    assert_int_equal(obj_get(st, "k", t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, 0);
    assert_memory_equal(o.data, "secure", 6);
    t_out_free(&o);
    t_close_store(&f->loop, st);
}

static void test_fault_server_down_fails_after_bounded_retries(void **state)
{
    fx_t *f = *state;
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", t_free_port()); /* nobody listens */
    obj_config_t cfg = proxy_cfg("s3://" T_BUCKET "/down");
    cfg.endpoint = ep;
    cfg.max_attempts = 3;
    obj_store_t *st;
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, NULL, 0), 0);
    t_out_t o = {0};
    assert_int_equal(obj_get(st, "k", t_done_cb, &o, NULL), 0);
    t_wait(&f->loop, &o);
    assert_int_equal(o.status, ST_E_IO);
    assert_int_equal(o.attempts, 3);
    assert_non_null(strstr(o.errmsg, "network error"));
    t_out_free(&o);
    t_close_store(&f->loop, st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fault_5xx_and_429_are_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_connection_reset_mid_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_delay_past_attempt_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_request_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_corrupt_body_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_persistent_5xx_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_list_head_delete_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_multipart_part_failure_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_tls_verified_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_server_down_fails_after_bounded_retries, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
