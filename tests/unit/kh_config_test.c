/* kh_config_test.c - unit tests of the topic config rules (kafka/kh_config.c).
 * Data path: none; kh_topic_config_check() is what CreateTopics, AlterConfigs
 * and IncrementalAlterConfigs run on every topic config before anything
 * reaches the metadata store, so each rule kind is covered here: ranges of
 * INT and LONG keys, booleans, enumerated strings, lists, unknown keys, null
 * values, and the normalisation of what is stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/kh_int.h"

/* Run the check on a writable copy; returns the code, leaves the reason in err. */
static int16_t check(const char *name, const char *value, char *out, char *err)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", value);
    err[0] = 0;
    int16_t code = kh_topic_config_check(name, buf, err, 512);
    if (out)
        snprintf(out, 256, "%s", buf);
    return code;
}

static void test_kh_topic_config_check_accepts_valid_values(void **state)
{
    (void)state;
    char err[512], out[256];
    assert_int_equal(check("retention.ms", "-1", out, err), KP_ERR_NONE);
    assert_int_equal(check("retention.ms", "9223372036854775807", out, err), KP_ERR_NONE);
    assert_int_equal(check("segment.bytes", "14", out, err), KP_ERR_NONE);
    assert_int_equal(check("segment.bytes", "2147483647", out, err), KP_ERR_NONE);
    assert_int_equal(check("local.retention.bytes", "-2", out, err), KP_ERR_NONE);
    assert_int_equal(check("compression.type", "producer", out, err), KP_ERR_NONE);
    assert_int_equal(check("min.insync.replicas", "1", out, err), KP_ERR_NONE);
    assert_int_equal(check("message.timestamp.type", "LogAppendTime", out, err), KP_ERR_NONE);
    assert_int_equal(check("cleanup.policy", "delete", out, err), KP_ERR_NONE);
    assert_int_equal(check("remote.storage.enable", "true", out, err), KP_ERR_NONE);
}

static void test_kh_topic_config_check_normalises_stored_form(void **state)
{
    (void)state;
    char err[512], out[256];
    assert_int_equal(check("retention.bytes", "  1048576 \t", out, err), KP_ERR_NONE);
    assert_string_equal(out, "1048576");
    assert_int_equal(check("write.caching", " TRUE", out, err), KP_ERR_NONE);
    assert_string_equal(out, "true");
}

static void test_kh_topic_config_check_ranges_name_key_and_rule(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("segment.bytes", "13", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_string_equal(
        err, "Invalid value 13 for configuration segment.bytes: Value must be at least 14");
    assert_int_equal(check("segment.bytes", "2147483648", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "no more than 2147483647"));
    assert_int_equal(check("retention.ms", "-2", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("retention.ms", "99999999999999999999", NULL, err),
                     KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "Not a number of type LONG"));
    assert_int_equal(check("segment.ms", "10s", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("segment.ms", "", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("min.insync.replicas", "0", NULL, err), KP_ERR_INVALID_CONFIG);
}

/* Values that pass their type's rule but that Strata could not honour. */
static void test_kh_topic_config_check_refuses_what_would_do_nothing(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("min.insync.replicas", "2", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "min.insync.replicas: Strata is one broker"));
    assert_int_equal(check("compression.type", "zstd", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "only producer is supported"));
    assert_int_equal(check("message.timestamp.before.max.ms", "3600000", NULL, err),
                     KP_ERR_NONE); /* applied on the produce path */
    assert_int_equal(check("segment.jitter.ms", "5", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("preallocate", "true", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("preallocate", "false", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("segment.jitter.ms", "0", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("segment.index.bytes", "4096", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("file.delete.delay.ms", "0", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("file.delete.delay.ms", "60000", NULL, err), KP_ERR_NONE);
}

static void test_kh_topic_config_check_refuses_bad_enums_and_lists(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("unclean.leader.election.enable", "yes", NULL, err),
                     KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "either true or false"));
    assert_int_equal(check("compression.type", "ZSTD", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "String must be one of"));
    assert_int_equal(check("cleanup.policy", "compact", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("cleanup.policy", "delete, compact", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("cleanup.policy", "compact,delete", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("cleanup.policy", "delete,shred", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("cleanup.policy", "", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "empty"));
}

static void test_kh_topic_config_check_doubles_and_replica_lists(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("min.cleanable.dirty.ratio", "0.25", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("min.cleanable.dirty.ratio", "1.5", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "between 0 and 1"));
    assert_int_equal(check("min.cleanable.dirty.ratio", "half", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "DOUBLE"));
    assert_int_equal(check("leader.replication.throttled.replicas", "", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("leader.replication.throttled.replicas", "*", NULL, err), KP_ERR_NONE);
    assert_int_equal(check("follower.replication.throttled.replicas", "0:0, 1:0", NULL, err),
                     KP_ERR_NONE);
    assert_int_equal(check("follower.replication.throttled.replicas", "0:x", NULL, err),
                     KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("follower.replication.throttled.replicas", "0:", NULL, err),
                     KP_ERR_INVALID_CONFIG);
    assert_int_equal(check("follower.replication.throttled.replicas", "0:1,,", NULL, err),
                     KP_ERR_INVALID_CONFIG);
    assert_non_null(strstr(err, "partition:broker"));
}

static void test_kh_topic_config_check_unknown_and_null(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(check("log.retention.ms", "1", NULL, err), KP_ERR_INVALID_CONFIG);
    assert_string_equal(err, "Unknown topic config name: log.retention.ms");
    assert_int_equal(kh_topic_config_check("retention.ms", NULL, err, sizeof(err)),
                     KP_ERR_INVALID_CONFIG);
    assert_string_equal(err, "Null value not supported for topic config: retention.ms");
    assert_int_equal(kh_topic_config_check("nope", NULL, NULL, 0), KP_ERR_INVALID_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kh_topic_config_check_accepts_valid_values),
        cmocka_unit_test(test_kh_topic_config_check_normalises_stored_form),
        cmocka_unit_test(test_kh_topic_config_check_ranges_name_key_and_rule),
        cmocka_unit_test(test_kh_topic_config_check_refuses_what_would_do_nothing),
        cmocka_unit_test(test_kh_topic_config_check_refuses_bad_enums_and_lists),
        cmocka_unit_test(test_kh_topic_config_check_doubles_and_replica_lists),
        cmocka_unit_test(test_kh_topic_config_check_unknown_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
