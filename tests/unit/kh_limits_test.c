/* kh_limits_test.c - unit tests of the broker-wide limits (kafka/kh_limits.c).
 * Data path: none; kh_conn asks kh_limits_conn_admit() at every accept and
 * adds every byte it holds for unanswered requests to the pool, so the
 * counting rules are covered here: max.connections, max.connections.per.ip
 * (IPv4, IPv6, IPv4-mapped IPv6 as IPv4), release, and the pool's full mark. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "kafka/kh.h"

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static void test_kh_limits_per_ip_and_total(void **state)
{
    (void)state;
    kh_limits_t *l = kh_limits_new(5, 2, 0);
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2"), c = v6("2001:db8::1"),
                            mapped = v6("::ffff:10.0.0.1"), d = v4("10.0.0.3");
    assert_int_equal(kh_limits_conn_admit(l, SA(a)), KH_ADMIT_OK);
    assert_int_equal(kh_limits_conn_admit(l, SA(mapped)), KH_ADMIT_OK); /* same IP as a */
    assert_int_equal(kh_limits_conn_admit(l, SA(a)), KH_ADMIT_MAX_PER_IP);
    assert_int_equal(kh_limits_conns(l, SA(a)), 2);
    assert_int_equal(kh_limits_conn_admit(l, SA(b)), KH_ADMIT_OK);
    assert_int_equal(kh_limits_conn_admit(l, SA(c)), KH_ADMIT_OK);
    assert_int_equal(kh_limits_conn_admit(l, SA(c)), KH_ADMIT_OK);
    assert_int_equal(kh_limits_conns(l, NULL), 5);
    assert_int_equal(kh_limits_conn_admit(l, SA(d)), KH_ADMIT_MAX_CONNS);
    /* A release makes room for that address and for the broker. */
    kh_limits_conn_release(l, SA(a));
    assert_int_equal(kh_limits_conns(l, SA(mapped)), 1);
    assert_int_equal(kh_limits_conn_admit(l, SA(d)), KH_ADMIT_OK);
    assert_int_equal(kh_limits_conn_admit(l, SA(a)), KH_ADMIT_MAX_CONNS);
    kh_limits_conn_release(l, SA(mapped));
    kh_limits_conn_release(l, SA(b));
    kh_limits_conn_release(l, SA(c));
    kh_limits_conn_release(l, SA(c));
    kh_limits_conn_release(l, SA(d));
    assert_int_equal(kh_limits_conns(l, NULL), 0);
    assert_int_equal(kh_limits_conns(l, SA(c)), 0);
    kh_limits_conn_release(l, SA(d)); /* not counted: ignored */
    assert_int_equal(kh_limits_conns(l, NULL), 0);
    kh_limits_free(l);
}

static void test_kh_limits_unlimited_and_null(void **state)
{
    (void)state;
    kh_limits_t *l = kh_limits_new(0, 0, -1);
    struct sockaddr_storage a = v4("127.0.0.1");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(kh_limits_conn_admit(l, SA(a)), KH_ADMIT_OK);
    assert_int_equal(kh_limits_conns(l, SA(a)), 1000);
    kh_limits_mem_add(l, INT64_MAX / 2);
    assert_false(kh_limits_mem_full(l));
    kh_limits_free(l);
    /* No limits object: everything is admitted, nothing is counted. */
    assert_int_equal(kh_limits_conn_admit(NULL, SA(a)), KH_ADMIT_OK);
    kh_limits_mem_add(NULL, 5);
    assert_false(kh_limits_mem_full(NULL));
    assert_int_equal(kh_limits_mem_used(NULL), 0);
}

static void test_kh_limits_pool_full_mark(void **state)
{
    (void)state;
    kh_limits_t *l = kh_limits_new(0, 0, 1000);
    kh_limits_mem_add(l, 999);
    assert_false(kh_limits_mem_full(l));
    kh_limits_mem_add(l, 1);
    assert_true(kh_limits_mem_full(l));
    kh_limits_mem_add(l, 500); /* overshoot is allowed: the pool pauses reading, never fails */
    assert_int_equal(kh_limits_mem_used(l), 1500);
    kh_limits_mem_add(l, -501);
    assert_false(kh_limits_mem_full(l));
    kh_limits_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kh_limits_per_ip_and_total),
        cmocka_unit_test(test_kh_limits_unlimited_and_null),
        cmocka_unit_test(test_kh_limits_pool_full_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
