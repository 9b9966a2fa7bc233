/* admin_test.c - unit tests of the admin API's HTTP parser (admin/adm_http.c)
 * and of the metrics registry's Prometheus text (core/st_metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "admin/adm_int.h"
#include "core/st_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *s, adm_http_req_t *r)
{
    return adm_http_parse(s, strlen(s), r);
}

/* ---- HTTP parser ---- */

static void test_adm_http_parse_get(void **state)
{
    (void)state;
    adm_http_req_t r;
    const char *s =
        "GET /v1/cluster?pretty=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n";
    assert_int_equal(parse(s, &r), 0);
    assert_true(adm_str_eq(r.method, "GET"));
    assert_true(adm_str_eq(r.path, "/v1/cluster"));
    assert_true(adm_str_eq(r.query, "pretty=1"));
    assert_true(adm_str_eq(r.authorization, "Bearer t"));
    assert_int_equal(r.version_minor, 1);
    assert_true(r.is_keep_alive);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.total_len, strlen(s));
}

static void test_adm_http_parse_body_and_pipelining(void **state)
{
    (void)state;
    adm_http_req_t r;
    const char *s =
        "PUT /v1/cluster/config HTTP/1.1\r\ncontent-length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n";
    assert_int_equal(parse(s, &r), 0);
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
    const char *next = s + r.total_len;
    assert_int_equal(parse(next, &r), 0);
    assert_true(adm_str_eq(r.path, "/"));
    assert_false(r.is_keep_alive); /* HTTP/1.0 without keep-alive */
}

static void test_adm_http_parse_needs_more_at_every_prefix(void **state)
{
    (void)state;
    const char *s = "POST /v1/storage/recover HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    adm_http_req_t r;
    for (size_t n = 0; n < strlen(s); n++)
        assert_int_equal(adm_http_parse(s, n, &r), ST_E_AGAIN);
    assert_int_equal(adm_http_parse(s, strlen(s), &r), 0);
}

static void test_adm_http_parse_connection_header(void **state)
{
    (void)state;
    adm_http_req_t r;
    assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n", &r), 0);
    assert_false(r.is_keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r), 0);
    assert_true(r.is_keep_alive);
    assert_int_equal(parse("\r\nGET / HTTP/1.1\n\n", &r), 0); /* bare LF, leading CRLF */
}

static void test_adm_http_parse_refuses_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int status;
    } cases[] = {
        {"\x16\x03\x01\x02\x00\x01\x00", 400}, /* a TLS ClientHello */
        {"garbage\r\n\r\n", 400},
        {" GET / HTTP/1.1\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\n\r\n", 400},
        {"GET http://x/ HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1 \r\n\r\n", 400},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET / FTP/1.1\r\n\r\n", 400},
        {"GET /\x01 HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n: empty name\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", 413},
        {"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"VERYLONGMETHODNAME / HTTP/1.1\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        adm_http_req_t r;
        int rc = parse(cases[i].in, &r);
        if (rc != ST_E_MALFORMED || r.error_status != cases[i].status)
            fail_msg("case %zu (%s): rc=%d status=%d", i, cases[i].in, rc, r.error_status);
        assert_non_null(r.error_why);
    }
}

static void test_adm_http_parse_limits(void **state)
{
    (void)state;
    adm_http_req_t r;
    /* A head that never ends: 431 once it passes the limit, not before. */
    size_t n = ADM_HTTP_MAX_HEAD + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', n - 19);
    big[n] = 0;
    assert_int_equal(adm_http_parse(big, 1000, &r), ST_E_AGAIN);
    assert_int_equal(adm_http_parse(big, n, &r), ST_E_MALFORMED);
    assert_int_equal(r.error_status, 431);
    /* Too many header fields. */
    st_mtext_t t = {0};
    st_mtext_printf(&t, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < ADM_HTTP_MAX_HEADERS + 1; i++)
        st_mtext_printf(&t, "X-%d: y\r\n", i);
    st_mtext_printf(&t, "\r\n");
    assert_int_equal(adm_http_parse(t.p, t.len, &r), ST_E_MALFORMED);
    assert_int_equal(r.error_status, 431);
    st_mtext_free(&t);
    /* A body at the limit is fine. */
    st_mtext_printf(&t, "PUT / HTTP/1.1\r\nContent-Length: %d\r\n\r\n", ADM_HTTP_MAX_BODY);
    size_t head = t.len;
    st_mtext_printf(&t, "%*s", ADM_HTTP_MAX_BODY, "");
    assert_int_equal(adm_http_parse(t.p, t.len, &r), 0);
    assert_int_equal(r.total_len, head + ADM_HTTP_MAX_BODY);
    st_mtext_free(&t);
    free(big);
}

static void test_adm_http_format_response(void **state)
{
    (void)state;
    st_mtext_t t = {0};
    adm_http_format(&t, 404, "application/json", "Allow: GET\r\n", "{}\n", 3, false);
    assert_non_null(strstr(t.p, "HTTP/1.1 404 Not Found\r\n"));
    assert_non_null(strstr(t.p, "Content-Length: 3\r\n"));
    assert_non_null(strstr(t.p, "Connection: close\r\n"));
    assert_non_null(strstr(t.p, "Allow: GET\r\n\r\n{}\n"));
    st_mtext_free(&t);
}

/* ---- Metrics text ---- */

static const char *names(st_hist_t h, int label)
{
    return h == ST_H_REQUEST_LATENCY && label == 0 ? "Produce" : NULL;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void test_st_metrics_render_values(void **state)
{
    (void)state;
    st_metric_add(ST_M_KAFKA_CONNECTIONS, 1); /* before init: ignored */
    assert_int_equal(st_metrics_init(2), 0);
    st_metric_add(ST_M_KAFKA_CONNECTIONS, 3);
    st_metric_add(ST_M_KAFKA_CONNECTIONS, -1);
    st_metric_topic(ST_T_PRODUCE_REQUESTS, "orders", 100);
    st_metric_topic(ST_T_PRODUCE_REQUESTS, "orders", 50);
    st_metric_topic(ST_T_FETCH_REQUESTS, "we\"ird\\", 7);
    st_metric_observe_ns(ST_H_REQUEST_LATENCY, 0, 300000);      /* 0.3 ms */
    st_metric_observe_ns(ST_H_REQUEST_LATENCY, 0, 20000000000); /* 20 s: +Inf only */
    st_metric_observe_ns(ST_H_REQUEST_LATENCY, 999, 1);         /* no such label: ignored */
    st_metric_observe_ns(ST_H_FSYNC_LATENCY, 0, 2000000);
    st_metric_op(ST_O_OBJ_REQUESTS, ST_OBJ_PUT, 1);
    st_metric_op(ST_O_OBJ_REQUESTS, ST_OBJ_PUT, 1);
    st_metric_op(ST_O_OBJ_ERRORS, ST_OBJ_DELETE, 1);
    st_metric_op(ST_O_OBJ_ERRORS, ST_OBJ__COUNT, 1);              /* no such operation: ignored */
    st_metric_observe_ns(ST_H_OBJ_LATENCY, ST_OBJ_GET, 40000000); /* 40 ms */
    st_metric_observe_ns(ST_H_HYDRATION_LATENCY, 0, 1000);
    assert_int_equal(st_metric_value(ST_M_KAFKA_CONNECTIONS), 2);
    st_mtext_t t = {0};
    st_metrics_render(&t, names);
    assert_false(t.is_oom);
    assert_true(has_line(t.p, "# TYPE strata_kafka_connections gauge"));
    assert_true(has_line(t.p, "strata_kafka_connections 2"));
    assert_true(has_line(t.p, "strata_kafka_produce_requests_total{topic=\"orders\"} 2"));
    assert_true(has_line(t.p, "strata_kafka_produce_bytes_total{topic=\"orders\"} 150"));
    assert_true(has_line(t.p, "strata_kafka_fetch_bytes_total{topic=\"we\\\"ird\\\\\"} 7"));
    assert_true(has_line(t.p, "# TYPE strata_kafka_request_latency_seconds histogram"));
    assert_true(has_line(t.p, "strata_kafka_request_latency_seconds_bucket{api=\"Produce\","
                              "le=\"0.00025\"} 0"));
    assert_true(has_line(t.p, "strata_kafka_request_latency_seconds_bucket{api=\"Produce\","
                              "le=\"0.0005\"} 1"));
    assert_true(has_line(t.p, "strata_kafka_request_latency_seconds_bucket{api=\"Produce\","
                              "le=\"10\"} 1"));
    assert_true(has_line(t.p, "strata_kafka_request_latency_seconds_bucket{api=\"Produce\","
                              "le=\"+Inf\"} 2"));
    assert_true(has_line(t.p, "strata_kafka_request_latency_seconds_count{api=\"Produce\"} 2"));
    assert_true(has_line(t.p, "strata_kafka_request_latency_seconds_sum{api=\"Produce\"} "
                              "20.000300000"));
    assert_true(has_line(t.p, "strata_log_fsync_latency_seconds_bucket{le=\"0.0025\"} 1"));
    assert_true(has_line(t.p, "strata_log_fsync_latency_seconds_count 1"));
    assert_null(strstr(t.p, "api=\"999\""));
    /* Per-operation counters show every operation, histograms those with samples,
     * labelled by name. */
    assert_true(has_line(t.p, "strata_object_store_requests_total{op=\"put\"} 2"));
    assert_true(has_line(t.p, "strata_object_store_requests_total{op=\"list\"} 0"));
    assert_true(has_line(t.p, "strata_object_store_errors_total{op=\"delete\"} 1"));
    assert_true(has_line(t.p, "strata_object_store_request_latency_seconds_bucket{op=\"get\","
                              "le=\"0.025\"} 0"));
    assert_true(has_line(t.p, "strata_object_store_request_latency_seconds_bucket{op=\"get\","
                              "le=\"0.05\"} 1"));
    assert_true(has_line(t.p, "strata_object_store_request_latency_seconds_count{op=\"get\"} 1"));
    assert_null(strstr(t.p, "strata_object_store_request_latency_seconds_count{op=\"put\"}"));
    assert_true(has_line(t.p, "strata_tier_hydration_latency_seconds_count 1"));
    /* Format: every line is a comment or "name{labels} value", no blank lines. */
    for (char *line = t.p, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl > line);
        if (*line != '#') {
            char *sp = memchr(line, ' ', (size_t)(nl - line));
            assert_non_null(sp);
            assert_true(strncmp(line, "strata_", 7) == 0);
        }
    }
    st_mtext_free(&t);
    st_metrics_fini();
    st_metric_topic(ST_T_PRODUCE_REQUESTS, "orders", 1); /* after fini: ignored */
}

/* ---- Persisted config overrides ---- */

static void test_adm_config_load_precedence(void **state)
{
    (void)state;
    char dir[] = "/tmp/admin_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    cfg_t *c;
    assert_int_equal(cfg_new(&c), 0);
    char err[512];
    assert_int_equal(adm_config_load(c, dir, err, sizeof(err)), 0); /* no file: nothing */
    char path[600];
    snprintf(path, sizeof(path), "%s/cluster_config.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("\"log.segment.bytes\": \"8MiB\"\n\"num.partitions\": \"4\"\n"
          "\"log.retention.ms\": \"1000\"\n",
          f);
    fclose(f);
    assert_int_equal(cfg_set(c, "num.partitions", "2", "command line", err, sizeof(err)), 0);
    assert_int_equal(
        cfg_set(c, "log.retention.ms", "5", "STRATA_LOG_RETENTION_MS", err, sizeof(err)), 0);
    assert_int_equal(adm_config_load(c, dir, err, sizeof(err)), 0);
    cfg_key_t k;
    assert_int_equal(cfg_lookup("log.segment.bytes", &k), 0);
    assert_int_equal(cfg_int(c, k), 8 << 20);
    assert_non_null(strstr(cfg_origin(c, k), "cluster_config.yaml:1"));
    assert_int_equal(cfg_lookup("num.partitions", &k), 0);
    assert_int_equal(cfg_int(c, k), 2); /* flags win */
    assert_int_equal(cfg_lookup("log.retention.ms", &k), 0);
    assert_int_equal(cfg_int(c, k), 5); /* environment wins */
    /* A bad file is an error naming it. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("\"log.segment.bytes\": \"lots\"\n", f);
    fclose(f);
    assert_int_equal(adm_config_load(c, dir, err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "cluster_config.yaml"));
    cfg_free(c);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_http_parse_get),
        cmocka_unit_test(test_adm_http_parse_body_and_pipelining),
        cmocka_unit_test(test_adm_http_parse_needs_more_at_every_prefix),
        cmocka_unit_test(test_adm_http_parse_connection_header),
        cmocka_unit_test(test_adm_http_parse_refuses_malformed),
        cmocka_unit_test(test_adm_http_parse_limits),
        cmocka_unit_test(test_adm_http_format_response),
        cmocka_unit_test(test_st_metrics_render_values),
        cmocka_unit_test(test_adm_config_load_precedence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
