/* acl_decide.c - time of one authorization decision (core/acl) with 1,000 ACLs, as made for
 * each topic of a Produce or Fetch: the same mix as bench/acl.sh (literal and prefixed
 * topics, 12 prefix lengths, 200 ACLs on the benchmarked resource for other principals).
 * Prints ns per decision with the 1,000 ACLs and with an empty set (the floor). Never part
 * of `make test`: nothing asserts on the numbers. Usage: acl_decide [DECISIONS] */
#include "core/acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_ACLS 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: neighbours do not count */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double ns_per_decision(const acl_set_t *s, const acl_conf_t *conf, long n, int *allowed)
{
    const char *topic = "acl-bench-on-1";
    double t0 = now_s();
    int ok = 0;
    for (long i = 0; i < n; i++)
        ok +=
            acl_authorize(s, conf, "User:ANONYMOUS", "127.0.0.1",
                          i & 1 ? ACL_OP_WRITE : ACL_OP_READ, ACL_RES_TOPIC, topic, strlen(topic));
    *allowed = ok;
    return (now_s() - t0) / (double)n * 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    static acl_entry_t e[N_ACLS];
    static char names[N_ACLS][48], princ[N_ACLS][32];
    int k = 0;
    for (int i = 0; i < 600; i++, k++) {
        snprintf(names[k], sizeof(names[k]), "t-%d", i);
        snprintf(princ[k], sizeof(princ[k]), "User:u%d", i % 10);
        e[k] = (acl_entry_t){ACL_RES_TOPIC, ACL_PAT_LITERAL, ACL_OP_WRITE, ACL_PERM_ALLOW,
                             names[k],      princ[k],        "*"};
    }
    for (int i = 0; i < 150; i++, k++) {
        snprintf(names[k], sizeof(names[k]), "%.*s%.*s%d", 1 + i % 9, "acl-bench", i % 4, "xxxx",
                 i);
        snprintf(princ[k], sizeof(princ[k]), "User:u%d", i % 10);
        e[k] = (acl_entry_t){ACL_RES_TOPIC, ACL_PAT_PREFIXED, ACL_OP_READ, ACL_PERM_ALLOW,
                             names[k],      princ[k],         "*"};
    }
    for (int i = 0; i < 48; i++, k++) {
        snprintf(names[k], sizeof(names[k]), "g-%d", i);
        snprintf(princ[k], sizeof(princ[k]), "User:u%d", i % 10);
        e[k] = (acl_entry_t){ACL_RES_GROUP, ACL_PAT_LITERAL, ACL_OP_READ, ACL_PERM_ALLOW,
                             names[k],      princ[k],        "*"};
    }
    for (int i = 0; i < 200; i++, k++) {
        snprintf(princ[k], sizeof(princ[k]), "User:other%d", i);
        e[k] = (acl_entry_t){ACL_RES_TOPIC, ACL_PAT_PREFIXED, ACL_OP_READ, ACL_PERM_ALLOW,
                             "acl-bench",   princ[k],         "*"};
    }
    e[k++] = (acl_entry_t){ACL_RES_TOPIC, ACL_PAT_PREFIXED, ACL_OP_ALL, ACL_PERM_ALLOW,
                           "acl-bench",   "User:ANONYMOUS", "*"};
    e[k++] = (acl_entry_t){ACL_RES_CLUSTER,
                           ACL_PAT_LITERAL,
                           ACL_OP_IDEMPOTENT_WRITE,
                           ACL_PERM_ALLOW,
                           ACL_CLUSTER_NAME,
                           "User:ANONYMOUS",
                           "*"};
    acl_set_t *full = acl_set_new(e, k), *empty = acl_set_new(NULL, 0);
    acl_conf_t conf;
    if (!full || !empty || acl_conf_init(&conf, "", false) != 0)
        return 1;
    int ok_full, ok_empty;
    double t_full = ns_per_decision(full, &conf, n, &ok_full);
    double t_empty = ns_per_decision(empty, &conf, n, &ok_empty);
    printf("{\"bench\":\"acl_decide\",\"acls\":%d,\"decisions\":%ld,\"ns_per_decision\":%.1f,"
           "\"ns_per_decision_empty_set\":%.1f,\"allowed\":%d}\n",
           k, n, t_full, t_empty, ok_full);
    acl_conf_fini(&conf);
    acl_set_put(full);
    acl_set_put(empty);
    return ok_full == n ? 0 : 1; /* every decision must allow, or the mix is wrong */
}
