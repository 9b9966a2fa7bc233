/* acl_test.c - unit tests of the ACL model and Kafka's authorization
 * decision (core/acl): implied operations, DENY wins, prefixes, wildcards,
 * super users, allow.everyone.if.no.acl.found, filters, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/acl.h"

#include <stdio.h>
#include <string.h>

#define E(t, p, name, princ, host, op, perm)                                                       \
    (acl_entry_t)                                                                                  \
    {                                                                                              \
        ACL_RES_##t, ACL_PAT_##p, ACL_OP_##op, ACL_PERM_##perm, name, princ, host                  \
    }

static const acl_conf_t k_strict = {false, NULL, 0, NULL};

static bool ok(const acl_set_t *s, const char *who, int op, int t, const char *name)
{
    return acl_authorize(s, &k_strict, who, "10.0.0.1", op, t, name, strlen(name));
}

static void test_literal_and_implied(void **state)
{
    (void)state;
    acl_entry_t e[] = {
        E(TOPIC, LITERAL, "orders", "User:alice", "*", WRITE, ALLOW),
        E(TOPIC, LITERAL, "cfg", "User:alice", "*", ALTER_CONFIGS, ALLOW),
        E(GROUP, LITERAL, "g1", "User:alice", "*", READ, ALLOW),
    };
    acl_set_t *s = acl_set_new(e, 3);
    assert_non_null(s);
    assert_true(ok(s, "User:alice", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    assert_true(ok(s, "User:alice", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "orders")); /* implied */
    assert_false(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "orders"));
    assert_false(ok(s, "User:bob", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    assert_false(ok(s, "User:alice", ACL_OP_WRITE, ACL_RES_TOPIC, "orders2")); /* no ACL */
    assert_false(ok(s, "User:alice", ACL_OP_WRITE, ACL_RES_TOPIC, "order"));
    assert_true(ok(s, "User:alice", ACL_OP_DESCRIBE_CONFIGS, ACL_RES_TOPIC, "cfg"));
    assert_false(ok(s, "User:alice", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "cfg"));
    assert_true(ok(s, "User:alice", ACL_OP_DESCRIBE, ACL_RES_GROUP, "g1"));
    assert_false(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "g1")); /* other type */
    acl_set_put(s);
}

static void test_deny_wins_and_wildcards(void **state)
{
    (void)state;
    acl_entry_t e[] = {
        E(TOPIC, LITERAL, "*", "User:*", "*", ALL, ALLOW),
        E(TOPIC, LITERAL, "secret", "User:bob", "*", READ, DENY),
        E(TOPIC, PREFIXED, "hr.", "User:*", "10.0.0.1", ALL, DENY),
    };
    acl_set_t *s = acl_set_new(e, 3);
    assert_true(ok(s, "User:bob", ACL_OP_READ, ACL_RES_TOPIC, "anything"));
    assert_true(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "secret"));
    assert_false(ok(s, "User:bob", ACL_OP_READ, ACL_RES_TOPIC, "secret"));
    assert_true(ok(s, "User:bob", ACL_OP_WRITE, ACL_RES_TOPIC, "secret"));
    /* A DENY of READ does not deny DESCRIBE (Kafka checks the op itself). */
    assert_true(ok(s, "User:bob", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "secret"));
    assert_false(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "hr.pay"));
    assert_true(acl_authorize(s, &k_strict, "User:alice", "10.0.0.2", ACL_OP_READ, ACL_RES_TOPIC,
                              "hr.pay", 6)); /* the deny names one host */
    acl_set_put(s);
}

static void test_prefixed(void **state)
{
    (void)state;
    acl_entry_t e[] = {
        E(TOPIC, PREFIXED, "team-a.", "User:alice", "*", READ, ALLOW),
        E(TOPIC, PREFIXED, "team-a.private", "User:alice", "*", READ, DENY),
        E(TOPIC, PREFIXED, "t", "User:carol", "*", WRITE, ALLOW),
        E(GROUP, PREFIXED, "app-", "User:alice", "*", READ, ALLOW),
    };
    acl_set_t *s = acl_set_new(e, 4);
    assert_true(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "team-a.orders"));
    assert_true(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "team-a."));
    assert_false(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "team-a"));
    assert_false(ok(s, "User:alice", ACL_OP_READ, ACL_RES_TOPIC, "team-a.private-x"));
    assert_true(ok(s, "User:carol", ACL_OP_WRITE, ACL_RES_TOPIC, "team-a.orders"));
    assert_false(ok(s, "User:carol", ACL_OP_WRITE, ACL_RES_TOPIC, "orders"));
    assert_true(ok(s, "User:alice", ACL_OP_READ, ACL_RES_GROUP, "app-1"));
    assert_false(ok(s, "User:alice", ACL_OP_READ, ACL_RES_GROUP, "ap"));
    acl_set_put(s);
}

static void test_super_and_no_acl(void **state)
{
    (void)state;
    acl_conf_t open;
    assert_int_equal(acl_conf_init(&open, " User:admin ;;User:ops", true), 0);
    assert_int_equal(open.n_super_users, 2);
    assert_string_equal(open.super_users[1], "User:ops");
    acl_entry_t e[] = {E(TOPIC, LITERAL, "locked", "User:alice", "*", READ, ALLOW)};
    acl_set_t *s = acl_set_new(e, 1);
    assert_true(
        acl_authorize(s, &open, "User:admin", "h", ACL_OP_DELETE, ACL_RES_TOPIC, "locked", 6));
    assert_true(acl_authorize(s, &open, "User:bob", "h", ACL_OP_DELETE, ACL_RES_TOPIC, "free", 4));
    assert_false(acl_authorize(s, &open, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "locked", 6));
    assert_false(ok(s, "User:bob", ACL_OP_READ, ACL_RES_TOPIC, "free")); /* strict */
    assert_false(ok(NULL, "User:bob", ACL_OP_READ, ACL_RES_TOPIC, "free"));
    assert_true(acl_authorize(NULL, &open, "User:bob", "h", ACL_OP_READ, ACL_RES_TOPIC, "x", 1));
    acl_conf_fini(&open);
    acl_set_put(s);
}

static void test_authorize_any(void **state)
{
    (void)state;
    acl_entry_t e[] = {
        E(TOPIC, PREFIXED, "logs-", "User:alice", "*", WRITE, ALLOW),
        E(TOPIC, LITERAL, "a", "User:bob", "*", WRITE, ALLOW),
        E(TOPIC, PREFIXED, "", "User:bob", "*", WRITE, DENY),
        E(CLUSTER, LITERAL, "kafka-cluster", "User:carol", "*", IDEMPOTENT_WRITE, ALLOW),
    };
    acl_set_t *s = acl_set_new(e, 4);
    assert_true(acl_authorize_any(s, &k_strict, "User:alice", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    assert_false(acl_authorize_any(s, &k_strict, "User:bob", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    assert_false(acl_authorize_any(s, &k_strict, "User:carol", "h", ACL_OP_WRITE, ACL_RES_TOPIC));
    assert_true(acl_authorize(s, &k_strict, "User:carol", "h", ACL_OP_IDEMPOTENT_WRITE,
                              ACL_RES_CLUSTER, ACL_CLUSTER_NAME, strlen(ACL_CLUSTER_NAME)));
    acl_set_put(s);
}

static void test_many_acls(void **state)
{
    (void)state;
    enum { N = 1000 };
    static acl_entry_t e[N];
    static char names[N][32], princ[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "topic-%d", i);
        snprintf(princ[i], sizeof(princ[i]), "User:u%d", i % 10);
        e[i] = (acl_entry_t){ACL_RES_TOPIC,
                             i % 3 ? ACL_PAT_LITERAL : ACL_PAT_PREFIXED,
                             ACL_OP_WRITE,
                             ACL_PERM_ALLOW,
                             names[i],
                             princ[i],
                             "*"};
    }
    acl_set_t *s = acl_set_new(e, N);
    int n;
    acl_set_entries(s, &n);
    assert_int_equal(n, N);
    assert_true(ok(s, "User:u1", ACL_OP_WRITE, ACL_RES_TOPIC, "topic-1"));
    assert_false(ok(s, "User:u2", ACL_OP_WRITE, ACL_RES_TOPIC, "topic-1"));
    /* topic-3 is a prefix ACL of u3: it covers topic-30..39 and topic-300..399. */
    assert_true(ok(s, "User:u3", ACL_OP_WRITE, ACL_RES_TOPIC, "topic-3xyz"));
    assert_true(ok(s, "User:u0", ACL_OP_WRITE, ACL_RES_TOPIC, "topic-30")); /* its own literal */
    assert_false(ok(s, "User:u1", ACL_OP_WRITE, ACL_RES_TOPIC, "nope"));
    /* Duplicates are stored once. */
    acl_entry_t d[] = {e[0], e[0], e[1]};
    acl_set_t *s2 = acl_set_new(d, 3);
    acl_set_entries(s2, &n);
    assert_int_equal(n, 2);
    acl_set_put(s2);
    acl_set_put(s);
}

/* Many principals on one resource: the principal's entries are found inside
 * the resource's run, and User:* entries apply to everyone. */
static void test_one_resource_many_principals(void **state)
{
    (void)state;
    enum { N = 300 };
    static acl_entry_t e[N + 2];
    static char princ[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(princ[i], sizeof(princ[i]), "User:p%03d", i);
        e[i] = (acl_entry_t){ACL_RES_TOPIC,
                             ACL_PAT_LITERAL,
                             i % 2 ? ACL_OP_READ : ACL_OP_WRITE,
                             ACL_PERM_ALLOW,
                             "shared",
                             princ[i],
                             "*"};
    }
    e[N] = E(TOPIC, LITERAL, "shared", "User:*", "*", DELETE, DENY);
    e[N + 1] = E(TOPIC, PREFIXED, "sha", "User:*", "*", ALTER, ALLOW);
    acl_set_t *s = acl_set_new(e, N + 2);
    assert_true(ok(s, "User:p000", ACL_OP_WRITE, ACL_RES_TOPIC, "shared"));
    assert_false(ok(s, "User:p000", ACL_OP_READ, ACL_RES_TOPIC, "shared"));
    assert_true(ok(s, "User:p151", ACL_OP_READ, ACL_RES_TOPIC, "shared"));
    assert_true(ok(s, "User:p299", ACL_OP_DESCRIBE, ACL_RES_TOPIC, "shared"));
    assert_false(ok(s, "User:p300", ACL_OP_READ, ACL_RES_TOPIC, "shared"));
    assert_true(ok(s, "User:nobody", ACL_OP_ALTER, ACL_RES_TOPIC, "shared")); /* User:* */
    assert_false(ok(s, "User:p001", ACL_OP_DELETE, ACL_RES_TOPIC, "shared"));
    assert_false(ok(s, "User:p001", ACL_OP_READ, ACL_RES_TOPIC, "shar")); /* no prefix of it */
    acl_set_put(s);
}

static void test_filters(void **state)
{
    (void)state;
    acl_entry_t lit = E(TOPIC, LITERAL, "orders", "User:alice", "*", READ, ALLOW);
    acl_entry_t star = E(TOPIC, LITERAL, "*", "User:alice", "*", READ, ALLOW);
    acl_entry_t pre = E(TOPIC, PREFIXED, "ord", "User:alice", "*", READ, ALLOW);
    acl_entry_t any = {ACL_RES_ANY, ACL_PAT_ANY, ACL_OP_ANY, ACL_PERM_ANY, NULL, NULL, NULL};
    assert_true(acl_filter_matches(&any, &lit) && acl_filter_matches(&any, &pre));
    acl_entry_t f = {ACL_RES_TOPIC, ACL_PAT_MATCH, ACL_OP_ANY, ACL_PERM_ANY, "orders", NULL, NULL};
    assert_true(acl_filter_matches(&f, &lit));
    assert_true(acl_filter_matches(&f, &star));
    assert_true(acl_filter_matches(&f, &pre));
    f.pattern = ACL_PAT_LITERAL;
    assert_true(acl_filter_matches(&f, &lit));
    assert_false(acl_filter_matches(&f, &star));
    assert_false(acl_filter_matches(&f, &pre));
    f.pattern = ACL_PAT_ANY;
    f.name = "ord";
    assert_true(acl_filter_matches(&f, &pre));
    assert_false(acl_filter_matches(&f, &lit));
    f.name = NULL;
    f.principal = "User:bob";
    assert_false(acl_filter_matches(&f, &lit));
    f.principal = NULL;
    f.op = ACL_OP_WRITE;
    assert_false(acl_filter_matches(&f, &lit));
    f.op = ACL_OP_ANY;
    f.perm = ACL_PERM_DENY;
    assert_false(acl_filter_matches(&f, &lit));
}

static void test_validation_and_names(void **state)
{
    (void)state;
    acl_entry_t b = E(TOPIC, LITERAL, "t", "User:alice", "*", READ, ALLOW);
    assert_null(acl_binding_invalid(&b));
    b.principal = "alice";
    assert_non_null(acl_binding_invalid(&b));
    b.principal = "User:alice";
    b.pattern = ACL_PAT_MATCH;
    assert_non_null(acl_binding_invalid(&b));
    b.pattern = ACL_PAT_LITERAL;
    b.op = ACL_OP_ANY;
    assert_non_null(acl_binding_invalid(&b));
    acl_entry_t c = E(CLUSTER, LITERAL, "other", "User:a", "*", ALTER, ALLOW);
    assert_non_null(acl_binding_invalid(&c));
    c.name = ACL_CLUSTER_NAME;
    assert_null(acl_binding_invalid(&c));
    acl_entry_t f = {ACL_RES_UNKNOWN, ACL_PAT_ANY, ACL_OP_ANY, ACL_PERM_ANY, NULL, NULL, NULL};
    assert_non_null(acl_filter_invalid(&f));
    f.res_type = ACL_RES_ANY;
    assert_null(acl_filter_invalid(&f));
    assert_int_equal(acl_op_parse("describe-configs"), ACL_OP_DESCRIBE_CONFIGS);
    assert_int_equal(acl_op_parse("all"), ACL_OP_ALL);
    assert_int_equal(acl_op_parse("bogus"), -1);
    assert_int_equal(acl_res_parse("transactional_id"), ACL_RES_TRANSACTIONAL_ID);
    assert_int_equal(acl_pattern_parse("prefixed"), ACL_PAT_PREFIXED);
    assert_string_equal(acl_op_name(ACL_OP_IDEMPOTENT_WRITE), "IDEMPOTENT_WRITE");
    assert_string_equal(acl_perm_name(ACL_PERM_DENY), "DENY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_implied),
        cmocka_unit_test(test_deny_wins_and_wildcards),
        cmocka_unit_test(test_prefixed),
        cmocka_unit_test(test_super_and_no_acl),
        cmocka_unit_test(test_authorize_any),
        cmocka_unit_test(test_many_acls),
        cmocka_unit_test(test_one_resource_many_principals),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_validation_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
