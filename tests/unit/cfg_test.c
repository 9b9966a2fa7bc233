/* cfg_test.c - unit tests of configuration parsing and validation (core/cfg). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_tmp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/cfg_test.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_cfg_defaults(void **state)
{
    (void)state;
    cfg_t *c;
    assert_int_equal(cfg_new(&c), 0);
    assert_string_equal(cfg_str(c, CFG_LOG_DIR), "./data");
    assert_string_equal(cfg_str(c, CFG_LISTENERS), "PLAINTEXT://127.0.0.1:9092");
    assert_string_equal(cfg_str(c, CFG_ADMIN_LISTENER), "127.0.0.1:9644");
    assert_int_equal(cfg_int(c, CFG_SEGMENT_BYTES), 1073741824);
    assert_int_equal(cfg_int(c, CFG_RETENTION_BYTES), -1);
    assert_true(cfg_bool(c, CFG_AUTO_CREATE));
    cfg_free(c);
}

static void test_cfg_set_validates_with_clear_messages(void **state)
{
    (void)state;
    cfg_t *c;
    char err[256];
    assert_int_equal(cfg_new(&c), 0);
    assert_int_equal(cfg_set(c, "log.segment.bytes", "8MiB", "--set", err, sizeof(err)), 0);
    assert_int_equal(cfg_int(c, CFG_SEGMENT_BYTES), 8 << 20);
    assert_int_equal(cfg_set(c, "log.segment.bytes", "64k", "--set", err, sizeof(err)), 0);
    assert_int_equal(cfg_int(c, CFG_SEGMENT_BYTES), 65536);

    assert_int_equal(cfg_set(c, "log.segmnt.bytes", "1", "--set", err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "unknown configuration key 'log.segmnt.bytes'"));
    assert_int_equal(cfg_set(c, "log.segment.bytes", "lots", "--set", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_non_null(strstr(err, "log.segment.bytes: 'lots' is not an integer"));
    assert_int_equal(cfg_set(c, "log.segment.bytes", "3", "--set", err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(cfg_set(c, "log.segment.bytes", "4GiB", "--set", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "log.segment.bytes", "99999999999999999999", "x", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_int_equal(cfg_int(c, CFG_SEGMENT_BYTES), 65536); /* unchanged by failures */
    assert_int_equal(cfg_set(c, "auto.create.topics.enable", "maybe", "x", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "auto.create.topics.enable", "false", "x", err, sizeof(err)), 0);
    assert_false(cfg_bool(c, CFG_AUTO_CREATE));
    assert_int_equal(cfg_set(c, "strata.log.level", "loud", "x", err, sizeof(err)), ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "listeners", "localhost", "x", err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "listeners"));
    assert_int_equal(cfg_set(c, "listeners", "127.0.0.1:70000", "x", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "listeners", "[::1]:9093", "x", err, sizeof(err)), 0);
    assert_int_equal(cfg_set(c, "strata.archive.url", "ftp://x", "x", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "log.dir", "", "x", err, sizeof(err)), ST_E_CONFIG);
    /* A Kafka key that means nothing here is accepted with a warning. */
    assert_int_equal(cfg_set(c, "num.io.threads", "8", "x", err, sizeof(err)), 0);
    cfg_free(c);
}

static void test_cfg_parse_hostport(void **state)
{
    (void)state;
    char h[64];
    int p;
    assert_int_equal(cfg_parse_hostport("PLAINTEXT://127.0.0.1:9092", h, sizeof(h), &p), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(p, 9092);
    assert_int_equal(cfg_parse_hostport("[::1]:1", h, sizeof(h), &p), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(cfg_parse_hostport(":9092", h, sizeof(h), &p), ST_E_INVAL);
    assert_int_equal(cfg_parse_hostport("host:", h, sizeof(h), &p), ST_E_INVAL);
    assert_int_equal(cfg_parse_hostport("host:12x", h, sizeof(h), &p), ST_E_INVAL);
}

static void test_cfg_parse_listener(void **state)
{
    (void)state;
    char n[64], h[64];
    int p = 0;
    const char *s = "sasl_ssl://0.0.0.0:9093";
    assert_int_equal(cfg_parse_listener(s, strlen(s), n, sizeof(n), h, sizeof(h), &p), 0);
    assert_string_equal(n, "SASL_SSL");
    assert_string_equal(h, "0.0.0.0");
    assert_int_equal(p, 9093);
    s = "127.0.0.1:9092,x"; /* only the first 14 bytes count */
    assert_int_equal(cfg_parse_listener(s, 14, n, sizeof(n), h, sizeof(h), &p), 0);
    assert_string_equal(n, "PLAINTEXT");
    assert_int_equal(p, 9092);
    s = "INTERNAL://:9094";
    assert_int_equal(cfg_parse_listener(s, strlen(s), n, sizeof(n), h, sizeof(h), &p), 0);
    assert_string_equal(n, "INTERNAL");
    assert_string_equal(h, "");
    s = "BAD NAME://h:1";
    assert_int_equal(cfg_parse_listener(s, strlen(s), n, sizeof(n), h, sizeof(h), &p), ST_E_INVAL);
    s = "SSL://h";
    assert_int_equal(cfg_parse_listener(s, strlen(s), n, sizeof(n), h, sizeof(h), &p), ST_E_INVAL);

    cfg_t *c;
    char err[256];
    assert_int_equal(cfg_new(&c), 0);
    assert_int_equal(
        cfg_set(c, "listeners", "PLAINTEXT://127.0.0.1:9092,SSL://:9093", "x", err, sizeof(err)),
        0);
    assert_int_equal(cfg_set(c, "listeners", "SSL://a:1,ssl://b:2", "x", err, sizeof(err)),
                     ST_E_CONFIG); /* duplicate name */
    assert_int_equal(cfg_set(c, "listeners", "SSL://a:1,", "x", err, sizeof(err)), ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "listener.security.protocol.map", "INTERNAL:SASL_SSL,EXT:ssl", "x",
                             err, sizeof(err)),
                     0);
    assert_int_equal(
        cfg_set(c, "listener.security.protocol.map", "INTERNAL:TLS", "x", err, sizeof(err)),
        ST_E_CONFIG);
    assert_non_null(strstr(err, "listener.security.protocol.map"));
    cfg_free(c);
}

static void test_cfg_listener_overrides(void **state)
{
    (void)state;
    cfg_t *c;
    char err[256];
    assert_int_equal(cfg_new(&c), 0);
    assert_int_equal(cfg_set(c, "ssl.client.auth", "requested", "x", err, sizeof(err)), 0);
    assert_int_equal(
        cfg_set(c, "listener.name.internal.ssl.client.auth", "required", "x", err, sizeof(err)), 0);
    assert_int_equal(
        cfg_set(c, "listener.name.internal.ssl.client.auth", "none", "x", err, sizeof(err)), 0);
    assert_string_equal(cfg_listener_str(c, "INTERNAL", CFG_SSL_CLIENT_AUTH), "none");
    assert_string_equal(cfg_listener_str(c, "SSL", CFG_SSL_CLIENT_AUTH), "requested");
    assert_string_equal(cfg_listener_str(c, "internal", CFG_SSL_CIPHER_SUITES), "");
    /* Only ssl.* and sasl.* keys, and only known ones. */
    assert_int_equal(cfg_set(c, "listener.name.internal.log.dir", "x", "o", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_non_null(strstr(err, "unknown configuration key"));
    assert_int_equal(cfg_set(c, "listener.name.internal.ssl.nope", "x", "o", err, sizeof(err)),
                     ST_E_CONFIG);
    assert_int_equal(cfg_set(c, "listener.name.ssl.keystore.type", "x", "o", err, sizeof(err)),
                     ST_E_CONFIG); /* no listener name */
    cfg_free(c);
}

static void test_cfg_yaml_flat_and_nested(void **state)
{
    (void)state;
    cfg_t *c;
    char err[256];
    assert_int_equal(cfg_new(&c), 0);
    char *p = write_tmp("# broker\nlog.dir: /tmp/x\nlog:\n  segment.bytes: 1MiB\n"
                        "  retention:\n    ms: 1000\nstrata.smp: 2\n");
    assert_int_equal(cfg_load_yaml(c, p, err, sizeof(err)), 0);
    assert_string_equal(cfg_str(c, CFG_LOG_DIR), "/tmp/x");
    assert_int_equal(cfg_int(c, CFG_SEGMENT_BYTES), 1 << 20);
    assert_int_equal(cfg_int(c, CFG_RETENTION_MS), 1000);
    assert_int_equal(cfg_int(c, CFG_SMP), 2);
    unlink(p);
    /* An unknown key names the file and line. */
    p = write_tmp("log.dir: /tmp/x\nsegment.bytez: 5\n");
    assert_int_equal(cfg_load_yaml(c, p, err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, ":2: unknown configuration key 'segment.bytez'"));
    unlink(p);
    p = write_tmp("log.dir: [a, b]\n");
    assert_int_equal(cfg_load_yaml(c, p, err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "lists are not supported"));
    unlink(p);
    p = write_tmp("log.dir: x\n  bad: : indent\n");
    assert_int_equal(cfg_load_yaml(c, p, err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "YAML error"));
    unlink(p);
    p = write_tmp("- just\n- a list\n");
    assert_int_equal(cfg_load_yaml(c, p, err, sizeof(err)), ST_E_CONFIG);
    unlink(p);
    p = write_tmp("");
    assert_int_equal(cfg_load_yaml(c, p, err, sizeof(err)), 0); /* empty file: defaults */
    unlink(p);
    assert_int_equal(cfg_load_yaml(c, "/nonexistent/strata.yaml", err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "cannot read config file /nonexistent/strata.yaml"));
    cfg_free(c);
}

static void test_cfg_env_overrides(void **state)
{
    (void)state;
    cfg_t *c;
    char err[256];
    assert_int_equal(cfg_new(&c), 0);
    char *env[] = {"STRATA_LOG_SEGMENT_BYTES=2048", "STRATA_BROKERS=ignored:1",
                   "STRATA_AUTO_CREATE_TOPICS_ENABLE=false", "HOME=/root", NULL};
    assert_int_equal(cfg_load_env(c, env, err, sizeof(err)), 0);
    assert_int_equal(cfg_int(c, CFG_SEGMENT_BYTES), 2048);
    assert_false(cfg_bool(c, CFG_AUTO_CREATE));
    char *bad[] = {"STRATA_LOG_RETENTION_MS=soon", NULL};
    assert_int_equal(cfg_load_env(c, bad, err, sizeof(err)), ST_E_CONFIG);
    assert_non_null(strstr(err, "STRATA_LOG_RETENTION_MS: log.retention.ms: 'soon'"));
    cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg_defaults),
        cmocka_unit_test(test_cfg_set_validates_with_clear_messages),
        cmocka_unit_test(test_cfg_parse_hostport),
        cmocka_unit_test(test_cfg_parse_listener),
        cmocka_unit_test(test_cfg_listener_overrides),
        cmocka_unit_test(test_cfg_yaml_flat_and_nested),
        cmocka_unit_test(test_cfg_env_overrides),
    };
    return cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
}
