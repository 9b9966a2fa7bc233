/* obj_file_test.c - the file:// object store backend on a temp directory:
 * put/get/range/head/list paging/delete/delete-many, checksum verification of
 * a corrupted file, invalid keys, cancellation, timeouts, bounded concurrency
 * and clean close (every handle closed, uv_loop_close() == 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tiering/obj_int.h"

typedef struct {
    uv_loop_t loop;
    obj_store_t *st;
    char dir[64];
} fx_t;

typedef struct {
    bool is_done;
    int status;
    uint8_t *data;
    size_t len;
    uint64_t object_size;
    char sha[65];
    char **keys;
    size_t n_keys;
    char *next_token;
    size_t n_failed;
    unsigned max_active;
} out_t;

static void rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/obj_file_test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char url[128];
    snprintf(url, sizeof url, "file://%s/store", f->dir);
    obj_config_t cfg = {.url = url, .max_inflight = 2};
    char err[256];
    assert_int_equal(obj_store_new(&f->loop, &cfg, &f->st, err, sizeof err), 0);
    *state = f;
    return 0;
}

static void closed_cb(void *arg)
{
    *(bool *)arg = true;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    bool closed = false;
    obj_store_close(f->st, closed_cb, &closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void out_free(out_t *o)
{
    free(o->data);
    for (size_t i = 0; i < o->n_keys; i++)
        free(o->keys[i]);
    free(o->keys);
    free(o->next_token);
    memset(o, 0, sizeof *o);
}

static void done_cb(obj_req_t *req, obj_result_t *res, void *arg)
{
    out_t *o = arg;
    o->is_done = true;
    o->status = res->status;
    o->len = res->data_len;
    o->data = obj_result_take_data(res);
    o->object_size = res->object_size;
    memcpy(o->sha, res->sha256_hex, sizeof o->sha);
    o->n_keys = res->n_entries;
    o->keys = calloc(res->n_entries + 1, sizeof *o->keys);
    for (size_t i = 0; i < res->n_entries; i++)
        o->keys[i] = strdup(res->entries[i].key);
    o->next_token = res->next_token ? strdup(res->next_token) : NULL;
    o->n_failed = res->n_failed;
    if (res->status)
        assert_true(res->errmsg[0] != '\0');
}

static void wait_for(fx_t *f, out_t *o)
{
    while (!o->is_done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int put_sync(fx_t *f, const char *key, const void *data, size_t len)
{
    out_t o = {0};
    assert_int_equal(obj_put(f->st, key, data, len, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    int rc = o.status;
    out_free(&o);
    return rc;
}

static void test_obj_file_put_get_roundtrip(void **state)
{
    fx_t *f = *state;
    size_t n = 300000;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(put_sync(f, "t/0/00000000000000000000.seg", buf, n), 0);

    out_t o = {0};
    assert_int_equal(obj_get(f->st, "t/0/00000000000000000000.seg", done_cb, &o, NULL), 0);
    assert_false(o.is_done); /* callbacks never run inside the call */
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.len, n);
    assert_memory_equal(o.data, buf, n);
    char want[65];
    obj__sha256_hex(buf, n, want);
    assert_string_equal(o.sha, want);
    out_free(&o);

    /* the file is body + a zstd skippable-frame trailer */
    char path[256];
    snprintf(path, sizeof path, "%s/store/t/0/00000000000000000000.seg", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, n + 56);

    assert_int_equal(obj_head(f->st, "t/0/00000000000000000000.seg", done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.object_size, n);
    assert_string_equal(o.sha, want);
    out_free(&o);

    /* overwrite is atomic and replaces the bytes; empty objects work */
    assert_int_equal(put_sync(f, "t/0/00000000000000000000.seg", "", 0), 0);
    assert_int_equal(obj_get(f->st, "t/0/00000000000000000000.seg", done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.len, 0);
    out_free(&o);
    free(buf);
}

/* A key whose segments use all 255 bytes a file name has (the manifest of a
 * 249-character topic is "_strata/topics/<topic>.json"): the temp file of the
 * put must not be named after it. */
static void test_obj_file_longest_names(void **state)
{
    fx_t *f = *state;
    char key[600];
    int n = snprintf(key, sizeof key, "%0255d/", 7);
    memset(key + n, 'n', 250);
    snprintf(key + n + 250, sizeof key - (size_t)n - 250, ".json");
    assert_int_equal(put_sync(f, key, "manifest", 8), 0);
    out_t o = {0};
    assert_int_equal(obj_get(f->st, key, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.len, 8);
    assert_memory_equal(o.data, "manifest", 8);
    out_free(&o);
    assert_int_equal(obj_list(f->st, "", NULL, 10, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.n_keys, 1);
    assert_string_equal(o.keys[0], key);
    out_free(&o);
}

static void test_obj_file_get_range(void **state)
{
    fx_t *f = *state;
    char buf[1000];
    for (int i = 0; i < 1000; i++)
        buf[i] = (char)('a' + i % 26);
    assert_int_equal(put_sync(f, "r", buf, sizeof buf), 0);
    out_t o = {0};
    assert_int_equal(obj_get_range(f->st, "r", 100, 100, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.len, 100);
    assert_memory_equal(o.data, buf + 100, 100);
    assert_int_equal(o.object_size, 1000);
    out_free(&o);
    /* cut at the end of the object */
    assert_int_equal(obj_get_range(f->st, "r", 950, 100, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.len, 50);
    assert_memory_equal(o.data, buf + 950, 50);
    out_free(&o);
    assert_int_equal(obj_get_range(f->st, "r", 1000, 1, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, ST_E_RANGE);
    out_free(&o);
    assert_int_equal(obj_get_range(f->st, "r", 0, 0, done_cb, &o, NULL), ST_E_INVAL);
}

static void test_obj_file_missing_and_invalid_keys(void **state)
{
    fx_t *f = *state;
    out_t o = {0};
    assert_int_equal(obj_get(f->st, "nope/x", done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, ST_E_NOTFOUND);
    out_free(&o);
    assert_int_equal(obj_head(f->st, "nope", done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, ST_E_NOTFOUND);
    out_free(&o);
    const char *bad[] = {"../escape", "/abs", "a//b", "a/./b", "a/", ".strata-tmp.x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(put_sync(f, bad[i], "x", 1), ST_E_INVAL);
    }
    assert_int_equal(obj_put(f->st, "", "x", 1, done_cb, &o, NULL), ST_E_INVAL);
}

static void test_obj_file_corruption_detected(void **state)
{
    fx_t *f = *state;
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    assert_int_equal(put_sync(f, "c/obj", buf, sizeof buf), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/store/c/obj", f->dir);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    fseek(fp, 1234, SEEK_SET);
    fputc('Y', fp);
    fclose(fp);
    out_t o = {0};
    assert_int_equal(obj_get(f->st, "c/obj", done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, ST_E_CORRUPT);
    out_free(&o);
}

static void test_obj_file_list_paging_and_prefix(void **state)
{
    fx_t *f = *state;
    char key[64];
    for (int i = 0; i < 25; i++) {
        snprintf(key, sizeof key, "p/%c/k%02d", i % 2 ? 'a' : 'b', i);
        assert_int_equal(put_sync(f, key, key, strlen(key)), 0);
    }
    assert_int_equal(put_sync(f, "q/other", "x", 1), 0);
    /* a stray temp file is never listed */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/store/p/a/.strata-tmp.k99.abc", f->dir);
    FILE *fp = fopen(tmp, "w");
    fclose(fp);

    size_t total = 0, pages = 0;
    char *token = NULL;
    char last[64] = "";
    do {
        out_t o = {0};
        assert_int_equal(obj_list(f->st, "p/", token, 10, done_cb, &o, NULL), 0);
        wait_for(f, &o);
        assert_int_equal(o.status, 0);
        for (size_t i = 0; i < o.n_keys; i++) {
            assert_true(strncmp(o.keys[i], "p/", 2) == 0);
            assert_true(strcmp(o.keys[i], last) > 0);
            snprintf(last, sizeof last, "%s", o.keys[i]);
        }
        total += o.n_keys;
        pages++;
        free(token);
        token = o.next_token;
        o.next_token = NULL;
        out_free(&o);
    } while (token);
    assert_int_equal(total, 25);
    assert_int_equal(pages, 3);

    out_t o = {0};
    assert_int_equal(obj_list(f->st, "p/a/k0", NULL, 0, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.n_keys, 5); /* k01 k03 k05 k07 k09 */
    assert_null(o.next_token);
    out_free(&o);
}

static void test_obj_file_delete_and_delete_many(void **state)
{
    fx_t *f = *state;
    const char *keys[] = {"d/1", "d/2", "d/sub/3", "d/missing"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(put_sync(f, keys[i], "v", 1), 0);
    out_t o = {0};
    assert_int_equal(obj_delete(f->st, "d/1", done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    out_free(&o);
    assert_int_equal(obj_delete(f->st, "d/1", done_cb, &o, NULL), 0); /* missing: fine */
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    out_free(&o);
    assert_int_equal(obj_delete_many(f->st, keys + 1, 3, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.n_failed, 0);
    out_free(&o);
    assert_int_equal(obj_list(f->st, "d/", NULL, 0, done_cb, &o, NULL), 0);
    wait_for(f, &o);
    assert_int_equal(o.n_keys, 0);
    out_free(&o);
    /* emptied directories are pruned */
    char path[256];
    snprintf(path, sizeof path, "%s/store/d", f->dir);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_obj_file_cancel_and_timeout(void **state)
{
    fx_t *f = *state;
    assert_int_equal(put_sync(f, "x", "abc", 3), 0);
    out_t o = {0};
    obj_req_t *req;
    assert_int_equal(obj_get(f->st, "x", done_cb, &o, &req), 0);
    obj_cancel(req);
    assert_false(o.is_done);
    wait_for(f, &o);
    assert_int_equal(o.status, ST_E_CANCELED);
    out_free(&o);
    assert_int_equal(obj_get(f->st, "x", done_cb, &o, &req), 0);
    obj_req_set_timeout(req, 0);
    wait_for(f, &o);
    assert_int_equal(o.status, ST_E_TIMEOUT);
    out_free(&o);
}

static unsigned g_max_active;
static void active_cb(obj_req_t *req, obj_result_t *res, void *arg)
{
    unsigned a = req->st->n_active;
    if (a > g_max_active)
        g_max_active = a;
    done_cb(req, res, arg);
}

static void test_obj_file_bounded_concurrency_and_close(void **state)
{
    fx_t *f = *state;
    enum { N = 12 };
    out_t o[N];
    memset(o, 0, sizeof o);
    char key[32];
    g_max_active = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "c/%d", i);
        assert_int_equal(obj_put(f->st, key, "data", 4, active_cb, &o[i], NULL), 0);
    }
    for (int i = 0; i < N; i++)
        wait_for(f, &o[i]);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].status, 0);
        out_free(&o[i]);
    }
    assert_true(g_max_active >= 1 && g_max_active <= 2);
    /* closing with queued requests cancels them */
    for (int i = 0; i < N; i++)
        assert_int_equal(obj_get(f->st, "c/1", done_cb, &o[i], NULL), 0);
    bool closed = false;
    obj_store_close(f->st, closed_cb, &closed);
    assert_int_equal(obj_get(f->st, "c/1", done_cb, &o[0], NULL), ST_E_CLOSED);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    for (int i = 0; i < N; i++) {
        assert_true(o[i].is_done);
        assert_int_equal(o[i].status, ST_E_CANCELED);
        out_free(&o[i]);
    }
    /* reopen for teardown */
    char url[128];
    snprintf(url, sizeof url, "file://%s/store", f->dir);
    obj_config_t cfg = {.url = url};
    assert_int_equal(obj_store_new(&f->loop, &cfg, &f->st, NULL, 0), 0);
}

static void test_obj_store_config_errors(void **state)
{
    fx_t *f = *state;
    obj_store_t *st;
    char err[256] = "";
    obj_config_t cfg = {.url = "ftp://x"};
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), ST_E_CONFIG);
    assert_non_null(strstr(err, "file://"));
    cfg.url = "s3://ab";
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), ST_E_CONFIG);
    cfg.url = "s3://bucket/pre";
    cfg.endpoint = "127.0.0.1:9000";
    cfg.access_key = "a";
    cfg.secret_key = "b";
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), ST_E_CONFIG);
    cfg.endpoint = "http://127.0.0.1:9000";
    /* a prefix that would take archive keys past S3's 1024 bytes */
    char url[700];
    int n = snprintf(url, sizeof url, "s3://bucket/");
    memset(url + n, 'p', OBJ_S3_MAX_PREFIX + 1);
    url[n + OBJ_S3_MAX_PREFIX + 1] = '\0';
    cfg.url = url;
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), ST_E_CONFIG);
    assert_non_null(strstr(err, "1024-byte key limit"));
    url[n + OBJ_S3_MAX_PREFIX] = '/'; /* a trailing slash is not counted */
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), 0);
    obj_store_close(st, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cfg.url = "s3://bucket/pre";
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), 0);
    assert_string_equal(obj_store_name(st), "s3://bucket/pre");
    obj_store_close(st, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void test_obj_s3_credentials_from_profile(void **state)
{
    fx_t *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/credentials", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("[default]\naws_access_key_id = DEF\naws_secret_access_key = DEFSECRET\n"
          "[prod]\naws_access_key_id=PRODKEY\naws_secret_access_key = PRODSECRET\n"
          "aws_session_token = TOK\n",
          fp);
    fclose(fp);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    obj_config_t cfg = {.url = "s3://bucket",
                        .endpoint = "http://127.0.0.1:1",
                        .credentials_file = path,
                        .profile = "prod"};
    obj_store_t *st;
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, NULL, 0), 0);
    assert_string_equal(st->access_key, "PRODKEY");
    assert_string_equal(st->secret_key, "PRODSECRET");
    assert_string_equal(st->session_token, "TOK");
    assert_true(st->is_path_style);
    obj_store_close(st, NULL, NULL);
    cfg.profile = NULL;
    setenv("AWS_REGION", "eu-west-3", 1);
    cfg.endpoint = NULL;
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, NULL, 0), 0);
    assert_string_equal(st->access_key, "DEF");
    assert_string_equal(st->region, "eu-west-3");
    assert_string_equal(st->hostport, "s3.eu-west-3.amazonaws.com");
    assert_false(st->is_path_style);
    obj_store_close(st, NULL, NULL);
    unsetenv("AWS_REGION");
    cfg.profile = "absent";
    char err[256];
    assert_int_equal(obj_store_new(&f->loop, &cfg, &st, err, sizeof err), ST_E_CONFIG);
    assert_non_null(strstr(err, "credentials"));
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_obj_file_put_get_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_longest_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_get_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_missing_and_invalid_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_corruption_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_list_paging_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_delete_and_delete_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_cancel_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_file_bounded_concurrency_and_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_obj_store_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obj_s3_credentials_from_profile, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
