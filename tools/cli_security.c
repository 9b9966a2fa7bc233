/* cli_security.c - `strata security acl create|list|delete` and `strata security user
 * create|delete|list|update`, with rpk's grammar.
 * Data path: ACLs go over the Kafka API (librdkafka's CreateAcls, DescribeAcls, DeleteAcls;
 * the broker needs ALTER, resp. DESCRIBE, on the cluster from the CLI's principal); SCRAM
 * users go over the admin HTTP API (/v1/security/users), which salts and hashes the password
 * on the broker. Both connect with the global TLS/SASL settings (cli_opts).
 * Invariants: 1. create makes the cartesian product of resources x principals x hosts x
 *                operations, as rpk does; a principal without a type is "User:NAME";
 *             2. delete refuses to run without any resource or principal flag, so a typo
 *                cannot remove every ACL. */
#include "tools/cli.h"

#include <ctype.h>
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SEC_MAX 64 /* of each repeatable flag */

/* ---- ACL flags ---- */

typedef struct {
    const char *v[SEC_MAX];
    int n;
} strs_t;

typedef struct {
    strs_t allow, deny; /* principals */
    strs_t allow_hosts, deny_hosts;
    strs_t ops;
    strs_t topics, groups, txns;
    bool cluster;
    const char *pattern; /* NULL: literal for create, any for list/delete */
} acl_args_t;

/* Add every item of a comma list (split in place). @return 0 or -1 (too many). */
static int add_list(strs_t *s, char *list)
{
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (s->n == SEC_MAX)
            return -1;
        s->v[s->n++] = t;
    }
    return 0;
}

static const char acl_flags_help[] =
    "Flags:\n"
    "      --allow-principal P     principal granted (User:NAME, or NAME; User:* = everyone)\n"
    "      --deny-principal P      principal denied (DENY wins over ALLOW)\n"
    "      --allow-host H          host of the allowed principals (default *)\n"
    "      --deny-host H           host of the denied principals (default *)\n"
    "      --operation OP          all, read, write, create, delete, alter, describe,\n"
    "                              cluster_action, describe_configs, alter_configs,\n"
    "                              idempotent_write (create: required; list/delete: any)\n"
    "      --topic NAME            a topic resource\n"
    "      --group NAME            a consumer group resource\n"
    "      --cluster               the cluster resource\n"
    "      --transactional-id ID   a transactional id resource (not with librdkafka 2.0,\n"
    "                              which also lists such ACLs as RESOURCE-TYPE UNKNOWN)\n"
    "      --resource-pattern-type literal|prefixed (create, default literal);\n"
    "                              any|match|literal|prefixed (list/delete, default any)\n"
    "Each flag is repeatable and takes comma lists.\n";

static int parse_acl_args(int argc, char **argv, acl_args_t *a, const char *help)
{
    memset(a, 0, sizeof(*a));
    /* The list flags: their getopt value is their index here. */
    strs_t *lists[] = {&a->allow, &a->deny,   &a->allow_hosts, &a->deny_hosts,
                       &a->ops,   &a->topics, &a->groups,      &a->txns};
    static const struct option longs[] = {{"allow-principal", required_argument, NULL, 0},
                                          {"deny-principal", required_argument, NULL, 1},
                                          {"allow-host", required_argument, NULL, 2},
                                          {"deny-host", required_argument, NULL, 3},
                                          {"operation", required_argument, NULL, 4},
                                          {"topic", required_argument, NULL, 5},
                                          {"group", required_argument, NULL, 6},
                                          {"transactional-id", required_argument, NULL, 7},
                                          {"cluster", no_argument, NULL, 'c'},
                                          {"resource-pattern-type", required_argument, NULL, 'p'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c, bad = 0;
    while ((c = cli_getopt(argc, argv, "h", longs)) != -1) {
        if (c >= 0 && c < (int)(sizeof(lists) / sizeof(lists[0]))) {
            if (add_list(lists[c], optarg))
                return cli_usage_err("too many values for one flag (at most %d)", SEC_MAX), -1;
        } else if (c == 'c') {
            a->cluster = true;
        } else if (c == 'p') {
            a->pattern = optarg;
        } else if (c == 'h') {
            fputs(help, stdout);
            fputs(acl_flags_help, stdout);
            return -2;
        } else {
            bad = 1;
        }
    }
    if (bad)
        return -1;
    if (optind < argc)
        return cli_usage_err("unexpected argument '%s'", argv[optind]), -1;
    if (a->txns.n)
        return cli_usage_err("--transactional-id: the CLI's librdkafka (%s) cannot send "
                             "TRANSACTIONAL_ID ACLs; use another Kafka admin client",
                             rd_kafka_version_str()),
               -1;
    return 0;
}

/* "alice" -> "User:alice" (rpk's rule); kept in a static ring so each stays valid. */
static const char *principal_of(const char *p)
{
    static char ring[SEC_MAX * 2][300];
    static int next;
    if (strchr(p, ':'))
        return p;
    char *out = ring[next++ % (SEC_MAX * 2)];
    snprintf(out, sizeof(ring[0]), "User:%s", p);
    return out;
}

static int op_of(const char *s, rd_kafka_AclOperation_t *out)
{
    for (int op = RD_KAFKA_ACL_OPERATION_ANY; op < RD_KAFKA_ACL_OPERATION__CNT; op++) {
        const char *n = rd_kafka_AclOperation_name(op);
        size_t i = 0;
        for (; s[i] && n[i]; i++)
            if (toupper((unsigned char)(s[i] == '-' ? '_' : s[i])) != toupper((unsigned char)n[i]))
                break;
        if (!s[i] && !n[i]) {
            *out = op;
            return 0;
        }
    }
    return -1;
}

static int pattern_of(const char *s, bool for_filter, rd_kafka_ResourcePatternType_t *out)
{
    if (!s) {
        *out = for_filter ? RD_KAFKA_RESOURCE_PATTERN_ANY : RD_KAFKA_RESOURCE_PATTERN_LITERAL;
        return 0;
    }
    if (!strcasecmp(s, "literal"))
        *out = RD_KAFKA_RESOURCE_PATTERN_LITERAL;
    else if (!strcasecmp(s, "prefixed"))
        *out = RD_KAFKA_RESOURCE_PATTERN_PREFIXED;
    else if (for_filter && !strcasecmp(s, "any"))
        *out = RD_KAFKA_RESOURCE_PATTERN_ANY;
    else if (for_filter && !strcasecmp(s, "match"))
        *out = RD_KAFKA_RESOURCE_PATTERN_MATCH;
    else
        return -1;
    return 0;
}

/* The resources named by the flags: (type, name) pairs. */
typedef struct {
    rd_kafka_ResourceType_t type;
    const char *name;
} res_t;

static int resources_of(const acl_args_t *a, res_t *out)
{
    int n = 0;
    for (int i = 0; i < a->topics.n; i++)
        out[n++] = (res_t){RD_KAFKA_RESOURCE_TOPIC, a->topics.v[i]};
    for (int i = 0; i < a->groups.n; i++)
        out[n++] = (res_t){RD_KAFKA_RESOURCE_GROUP, a->groups.v[i]};
    if (a->cluster)
        out[n++] = (res_t){RD_KAFKA_RESOURCE_BROKER, "kafka-cluster"};
    return n;
}

/* Kafka names the cluster resource CLUSTER; librdkafka calls the same wire value BROKER.
 * librdkafka 2.0 reads TRANSACTIONAL_ID (5) as UNKNOWN, the name it prints then. */
static const char *res_name(rd_kafka_ResourceType_t t)
{
    return t == RD_KAFKA_RESOURCE_BROKER ? "CLUSTER" : rd_kafka_ResourceType_name(t);
}

static void print_binding(const rd_kafka_AclBinding_t *b, bool first)
{
    const char *principal = rd_kafka_AclBinding_principal(b);
    const char *host = rd_kafka_AclBinding_host(b);
    const char *type = res_name(rd_kafka_AclBinding_restype(b));
    const char *name = rd_kafka_AclBinding_name(b);
    const char *pattern =
        rd_kafka_ResourcePatternType_name(rd_kafka_AclBinding_resource_pattern_type(b));
    const char *op = rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(b));
    const char *perm = rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(b));
    if (!cli_opts.is_json) {
        printf("%-24s %-16s %-16s %-28s %-9s %-17s %s\n", principal, host, type, name, pattern, op,
               perm);
        return;
    }
    const char *keys[] = {"principal",    "host",      "resource_type", "resource_name",
                          "pattern_type", "operation", "permission"};
    const char *vals[] = {principal, host, type, name, pattern, op, perm};
    fputs(first ? "{" : ",{", stdout);
    for (int i = 0; i < 7; i++) {
        printf("%s\"%s\":", i ? "," : "", keys[i]);
        cli_json_cstr(stdout, vals[i]);
    }
    putchar('}');
}

static void print_header(void)
{
    if (cli_opts.is_json)
        putchar('[');
    else
        printf("%-24s %-16s %-16s %-28s %-9s %-17s %s\n", "PRINCIPAL", "HOST", "RESOURCE-TYPE",
               "RESOURCE-NAME", "PATTERN", "OPERATION", "PERMISSION");
}

/* ---- acl create ---- */

static const char acl_create_help[] =
    "Usage: strata security acl create (--allow-principal P | --deny-principal P)...\n"
    "                                  --operation OP... RESOURCE-FLAGS...\n"
    "Create ACLs: one per resource, principal, host and operation (as rpk). The broker\n"
    "needs ALTER on the cluster from the CLI's principal (or a super user).\n\n"
    "Examples:\n"
    "  strata security acl create --allow-principal alice --operation read,describe "
    "--topic orders\n"
    "  strata security acl create --allow-principal User:bob --operation write --topic logs- "
    "--resource-pattern-type prefixed\n"
    "  strata security acl create --deny-principal User:mallory --operation all --topic '*'\n"
    "  strata security acl create --allow-principal alice --operation read --group app\n"
    "  strata security acl create --allow-principal admin --operation alter --cluster\n\n";

static int cmd_acl_create(int argc, char **argv)
{
    acl_args_t a;
    int rc = parse_acl_args(argc, argv, &a, acl_create_help);
    if (rc)
        return rc == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    res_t res[SEC_MAX * 2 + 1];
    int n_res = resources_of(&a, res);
    rd_kafka_ResourcePatternType_t pat;
    if (!a.allow.n && !a.deny.n)
        return cli_usage_err("give --allow-principal or --deny-principal");
    if (!a.ops.n)
        return cli_usage_err("give --operation (e.g. read, write, all)");
    if (!n_res)
        return cli_usage_err("give a resource: --topic, --group or --cluster");
    if (pattern_of(a.pattern, false, &pat))
        return cli_usage_err("bad --resource-pattern-type '%s': use literal or prefixed",
                             a.pattern);
    rd_kafka_AclOperation_t ops[SEC_MAX];
    for (int i = 0; i < a.ops.n; i++)
        if (op_of(a.ops.v[i], &ops[i]) || ops[i] == RD_KAFKA_ACL_OPERATION_ANY)
            return cli_usage_err("bad --operation '%s'", a.ops.v[i]);
    size_t cap = (size_t)n_res *
                 (size_t)(a.allow.n * (a.allow_hosts.n ? a.allow_hosts.n : 1) +
                          a.deny.n * (a.deny_hosts.n ? a.deny_hosts.n : 1)) *
                 (size_t)a.ops.n;
    rd_kafka_AclBinding_t **b = calloc(cap, sizeof(*b));
    if (!b)
        return cli_err("out of memory");
    size_t n = 0;
    char errstr[256];
    rc = CLI_EXIT_OK;
    for (int perm = 0; perm < 2 && rc == CLI_EXIT_OK; perm++) {
        const strs_t *who = perm ? &a.deny : &a.allow;
        const strs_t *hosts = perm ? &a.deny_hosts : &a.allow_hosts;
        for (int r = 0; r < n_res; r++)
            for (int p = 0; p < who->n; p++)
                for (int h = 0; h < (hosts->n ? hosts->n : 1); h++)
                    for (int o = 0; o < a.ops.n && rc == CLI_EXIT_OK; o++) {
                        b[n] = rd_kafka_AclBinding_new(res[r].type, res[r].name, pat,
                                                       principal_of(who->v[p]),
                                                       hosts->n ? hosts->v[h] : "*", ops[o],
                                                       perm ? RD_KAFKA_ACL_PERMISSION_TYPE_DENY
                                                            : RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                                                       errstr, sizeof(errstr));
                        if (!b[n])
                            rc = cli_usage_err("bad ACL: %s", errstr);
                        else
                            n++;
                    }
    }
    rd_kafka_t *rk = rc == CLI_EXIT_OK ? cli_connect_checked() : NULL;
    if (rc == CLI_EXIT_OK && !rk)
        rc = CLI_EXIT_FAIL;
    if (rk) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opt = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEACLS);
        rd_kafka_CreateAcls(rk, b, n, opt, q);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_CREATEACLS_RESULT);
        rd_kafka_queue_destroy(q);
        rc = ev ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        if (ev) {
            size_t nr;
            const rd_kafka_acl_result_t **rs =
                rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &nr);
            print_header();
            bool first = true;
            for (size_t i = 0; i < nr && i < n; i++) {
                const rd_kafka_error_t *e = rd_kafka_acl_result_error(rs[i]);
                if (e) {
                    rc = cli_err("cannot create ACL %zu: %s", i + 1, rd_kafka_error_string(e));
                    continue;
                }
                print_binding(b[i], first);
                first = false;
            }
            if (cli_opts.is_json)
                puts("]");
            rd_kafka_event_destroy(ev);
        }
        rd_kafka_destroy(rk);
    }
    for (size_t i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(b[i]);
    free(b);
    return rc;
}

/* ---- acl list / delete: filters ---- */

typedef struct {
    const char *p; /* principal, NULL: any */
    rd_kafka_AclPermissionType_t perm;
    const strs_t *hosts; /* NULL or empty: any host */
} who_t;

/* Filters for list/delete: every resource x principal x operation given (a missing
 * dimension matches anything). @return count, or -1 after a usage error. */
static int make_filters(const acl_args_t *a, rd_kafka_AclBindingFilter_t **out, int cap)
{
    res_t res[SEC_MAX * 2 + 1];
    int n_res = resources_of(a, res);
    if (!n_res)
        res[n_res++] = (res_t){RD_KAFKA_RESOURCE_ANY, NULL};
    rd_kafka_ResourcePatternType_t pat;
    if (pattern_of(a->pattern, true, &pat))
        return cli_usage_err("bad --resource-pattern-type '%s': use any, match, literal or "
                             "prefixed",
                             a->pattern),
               -1;
    who_t who[SEC_MAX * 2 + 1];
    int n_who = 0;
    for (int i = 0; i < a->allow.n; i++)
        who[n_who++] = (who_t){principal_of(a->allow.v[i]), RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                               &a->allow_hosts};
    for (int i = 0; i < a->deny.n; i++)
        who[n_who++] =
            (who_t){principal_of(a->deny.v[i]), RD_KAFKA_ACL_PERMISSION_TYPE_DENY, &a->deny_hosts};
    if (!n_who)
        who[n_who++] = (who_t){NULL, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, NULL};
    rd_kafka_AclOperation_t ops[SEC_MAX];
    int n_ops = a->ops.n;
    for (int i = 0; i < n_ops; i++)
        if (op_of(a->ops.v[i], &ops[i]))
            return cli_usage_err("bad --operation '%s'", a->ops.v[i]), -1;
    if (!n_ops)
        ops[n_ops++] = RD_KAFKA_ACL_OPERATION_ANY;
    int n = 0;
    char errstr[256];
    for (int r = 0; r < n_res; r++)
        for (int w = 0; w < n_who; w++)
            for (int h = 0; h < (who[w].hosts && who[w].hosts->n ? who[w].hosts->n : 1); h++)
                for (int o = 0; o < n_ops; o++) {
                    if (n == cap)
                        return cli_usage_err("too many filters (at most %d)", cap), -1;
                    const char *host = who[w].hosts && who[w].hosts->n ? who[w].hosts->v[h] : NULL;
                    out[n] =
                        rd_kafka_AclBindingFilter_new(res[r].type, res[r].name, pat, who[w].p, host,
                                                      ops[o], who[w].perm, errstr, sizeof(errstr));
                    if (!out[n])
                        return cli_usage_err("bad filter: %s", errstr), -1;
                    n++;
                }
    return n;
}

#define MAX_FILTERS 256

static const char acl_list_help[] =
    "Usage: strata security acl list [FILTER-FLAGS...]\n"
    "List ACLs matching the flags (none: every ACL). With --resource-pattern-type match,\n"
    "the ACLs that apply to a name: its literal ACLs, '*', and prefixes of it.\n"
    "The broker needs DESCRIBE on the cluster from the CLI's principal.\n\n"
    "Examples:\n"
    "  strata security acl list\n"
    "  strata security acl list --topic orders --resource-pattern-type match\n"
    "  strata security acl list --allow-principal alice --format json\n\n";

static int cmd_acl_list(int argc, char **argv)
{
    acl_args_t a;
    int rc = parse_acl_args(argc, argv, &a, acl_list_help);
    if (rc)
        return rc == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    rd_kafka_AclBindingFilter_t *f[MAX_FILTERS];
    int n = make_filters(&a, f, MAX_FILTERS);
    if (n < 0)
        return CLI_EXIT_USAGE;
    rd_kafka_t *rk = cli_connect_checked();
    rc = rk ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    bool first = true;
    if (rk)
        print_header();
    for (int i = 0; rk && i < n && rc == CLI_EXIT_OK; i++) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opt = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBEACLS);
        rd_kafka_DescribeAcls(rk, f[i], opt, q);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DESCRIBEACLS_RESULT);
        rd_kafka_queue_destroy(q);
        if (!ev) {
            rc = CLI_EXIT_FAIL;
            break;
        }
        size_t nb;
        const rd_kafka_AclBinding_t **bs =
            rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &nb);
        for (size_t k = 0; k < nb; k++, first = false)
            print_binding(bs[k], first);
        rd_kafka_event_destroy(ev);
    }
    if (rk && cli_opts.is_json)
        puts("]");
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(f[i]);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}

static const char acl_delete_help[] =
    "Usage: strata security acl delete FILTER-FLAGS...\n"
    "Delete the ACLs matching the flags and print them. At least one resource or principal\n"
    "flag is required. The broker needs ALTER on the cluster from the CLI's principal.\n\n"
    "Examples:\n"
    "  strata security acl delete --topic orders --allow-principal alice --operation read\n"
    "  strata security acl delete --deny-principal User:mallory\n"
    "  strata security acl delete --topic logs- --resource-pattern-type prefixed\n\n";

static int cmd_acl_delete(int argc, char **argv)
{
    acl_args_t a;
    int rc = parse_acl_args(argc, argv, &a, acl_delete_help);
    if (rc)
        return rc == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (!a.topics.n && !a.groups.n && !a.cluster && !a.allow.n && !a.deny.n)
        return cli_usage_err("give a resource (--topic, --group, --cluster) or a principal: "
                             "delete never removes every ACL at once");
    rd_kafka_AclBindingFilter_t *f[MAX_FILTERS];
    int n = make_filters(&a, f, MAX_FILTERS);
    if (n < 0)
        return CLI_EXIT_USAGE;
    rd_kafka_t *rk = cli_connect_checked();
    rc = rk ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rk) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opt = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETEACLS);
        rd_kafka_DeleteAcls(rk, f, (size_t)n, opt, q);
        rd_kafka_AdminOptions_destroy(opt);
        rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DELETEACLS_RESULT);
        rd_kafka_queue_destroy(q);
        rc = ev ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        if (ev) {
            size_t nr;
            const rd_kafka_DeleteAcls_result_response_t **rs =
                rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(ev), &nr);
            print_header();
            bool first = true;
            for (size_t i = 0; i < nr; i++) {
                const rd_kafka_error_t *e = rd_kafka_DeleteAcls_result_response_error(rs[i]);
                if (e) {
                    rc = cli_err("cannot delete ACLs: %s", rd_kafka_error_string(e));
                    continue;
                }
                size_t nb;
                const rd_kafka_AclBinding_t **bs =
                    rd_kafka_DeleteAcls_result_response_matching_acls(rs[i], &nb);
                for (size_t k = 0; k < nb; k++, first = false)
                    print_binding(bs[k], first);
            }
            if (cli_opts.is_json)
                puts("]");
            rd_kafka_event_destroy(ev);
        }
        rd_kafka_destroy(rk);
    }
    for (int i = 0; i < n; i++)
        rd_kafka_AclBinding_destroy(f[i]);
    return rc;
}

static const cli_cmd_t acl_cmds[] = {{"create", cmd_acl_create, "create ACLs (ALLOW or DENY)"},
                                     {"list", cmd_acl_list, "list ACLs matching filters"},
                                     {"delete", cmd_acl_delete, "delete ACLs matching filters"},
                                     {NULL, NULL, NULL}};

static const char acl_help[] =
    "Usage: strata security acl COMMAND [flags]\n"
    "Manage ACLs (Kafka's model: principal, host, operation, resource, ALLOW or DENY)\n"
    "over the Kafka API, with rpk's flags.\n";

static int cmd_acl(int argc, char **argv)
{
    return cli_dispatch("security acl", acl_cmds, argc - 1, argv + 1, acl_help);
}

/* ---- users (admin API) ---- */

static int user_flags(int argc,
                      char **argv,
                      const char *help,
                      const char **name,
                      const char **password,
                      const char **mechanism,
                      bool want_password)
{
    /* --password is the CLI's own (global) SASL password: the user's is --new-password. */
    static const struct option longs[] = {{"new-password", required_argument, NULL, 'p'},
                                          {"mechanism", required_argument, NULL, 'm'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c;
    *password = *mechanism = NULL;
    while ((c = cli_getopt(argc, argv, "p:m:h", longs)) != -1) {
        switch (c) {
        case 'p':
            *password = optarg;
            break;
        case 'm':
            *mechanism = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return -2;
        default:
            return -1;
        }
    }
    if (optind + 1 != argc)
        return cli_usage_err("give one user name"), -1;
    *name = argv[optind];
    if (want_password && !*password)
        *password = getenv("STRATA_NEW_PASSWORD");
    if (want_password && (!*password || !**password))
        return cli_usage_err("give the password with --new-password (or $STRATA_NEW_PASSWORD)"), -1;
    if (*mechanism && strcasecmp(*mechanism, "SCRAM-SHA-256") &&
        strcasecmp(*mechanism, "SCRAM-SHA-512"))
        return cli_usage_err("bad --mechanism '%s': use SCRAM-SHA-256 or SCRAM-SHA-512",
                             *mechanism),
               -1;
    return 0;
}

/* POST (create) or PUT (update) a user. */
static int user_write(int argc, char **argv, const char *help, bool create)
{
    const char *name, *pw, *mech;
    int rc = user_flags(argc, argv, help, &name, &pw, &mech, true);
    if (rc)
        return rc == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    json_t *j = json_pack("{s:s}", "password", pw);
    if (create)
        json_object_set_new(j, "username", json_string(name));
    if (mech)
        json_object_set_new(j, "algorithm", json_string(mech));
    char *body_in = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char path[512], *esc = NULL, *body = NULL;
    CURL *cu = curl_easy_init();
    if (!create && cu)
        esc = curl_easy_escape(cu, name, 0);
    snprintf(path, sizeof(path), "/v1/security/users%s%s", create ? "" : "/",
             create ? "" : (esc ? esc : name));
    long st = cli_http(create ? "POST" : "PUT", path, body_in, &body);
    if (body_in) /* the password is in it: clear before freeing */
        memset(body_in, 0, strlen(body_in));
    free(body_in);
    curl_free(esc);
    curl_easy_cleanup(cu);
    if (st < 0)
        return CLI_EXIT_FAIL;
    if (st / 100 != 2) {
        rc = cli_http_error(st, create ? "cannot create user" : "cannot update user", body);
    } else if (cli_opts.is_json) {
        printf("{\"user\":");
        cli_json_cstr(stdout, name);
        printf(",\"mechanism\":");
        cli_json_cstr(stdout, mech ? mech : "SCRAM-SHA-256,SCRAM-SHA-512");
        puts("}");
    } else {
        printf("%s user %s (%s)\n", create ? "Created" : "Updated", name,
               mech ? mech : "SCRAM-SHA-256 and SCRAM-SHA-512");
    }
    free(body);
    return rc;
}

static const char user_create_help[] =
    "Usage: strata security user create NAME --new-password PASSWORD [--mechanism MECH]\n"
    "Create a SCRAM user over the admin API. Without --mechanism both SCRAM-SHA-256 and\n"
    "SCRAM-SHA-512 credentials are stored. The password may come from $STRATA_NEW_PASSWORD\n"
    "(--password is the CLI's own SASL password, a global flag).\n\n"
    "Flags:\n"
    "  -p, --new-password PASSWORD   the user's password\n"
    "  -m, --mechanism MECH          SCRAM-SHA-256 or SCRAM-SHA-512 (default: both)\n\n"
    "Examples:\n"
    "  strata security user create alice --new-password s3cret\n"
    "  strata security user create bob -p s3cret --mechanism SCRAM-SHA-512\n";

static int cmd_user_create(int argc, char **argv)
{
    return user_write(argc, argv, user_create_help, true);
}

static const char user_update_help[] =
    "Usage: strata security user update NAME --new-password PASSWORD [--mechanism MECH]\n"
    "Change a SCRAM user's password over the admin API.\n\n"
    "Flags:\n"
    "  -p, --new-password PASSWORD   the new password (or $STRATA_NEW_PASSWORD)\n"
    "  -m, --mechanism MECH          SCRAM-SHA-256 or SCRAM-SHA-512 (default: both)\n\n"
    "Examples:\n"
    "  strata security user update alice --new-password n3w\n";

static int cmd_user_update(int argc, char **argv)
{
    return user_write(argc, argv, user_update_help, false);
}

static const char user_delete_help[] = "Usage: strata security user delete NAME\n"
                                       "Delete a SCRAM user over the admin API.\n\n"
                                       "Examples:\n"
                                       "  strata security user delete alice\n";

static int cmd_user_delete(int argc, char **argv)
{
    const char *name, *pw, *mech;
    int rc = user_flags(argc, argv, user_delete_help, &name, &pw, &mech, false);
    if (rc)
        return rc == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    CURL *cu = curl_easy_init();
    char *esc = cu ? curl_easy_escape(cu, name, 0) : NULL;
    char path[512], *body = NULL;
    snprintf(path, sizeof(path), "/v1/security/users/%s", esc ? esc : name);
    curl_free(esc);
    curl_easy_cleanup(cu);
    long st = cli_http("DELETE", path, NULL, &body);
    if (st < 0)
        return CLI_EXIT_FAIL;
    if (st / 100 != 2)
        rc = cli_http_error(st, "cannot delete user", body);
    else if (cli_opts.is_json)
        printf("{\"deleted\":"), cli_json_cstr(stdout, name), puts("}");
    else
        printf("Deleted user %s\n", name);
    free(body);
    return rc;
}

static const char user_list_help[] = "Usage: strata security user list\n"
                                     "List SCRAM users and their mechanisms (admin API).\n\n"
                                     "Examples:\n"
                                     "  strata security user list\n"
                                     "  strata security user list --format json\n";

static int cmd_user_list(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, user_list_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc > 1)
        return cli_usage_err("unexpected argument '%s'", argv[1]);
    char *body = NULL;
    long st = cli_http_get("/v1/security/users", &body);
    if (st < 0)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    json_error_t jerr;
    json_t *j = st / 100 == 2 ? json_loads(body, 0, &jerr) : NULL;
    json_t *users = json_object_get(j, "users");
    if (st / 100 != 2) {
        rc = cli_http_error(st, "cannot list users", body);
    } else if (!json_is_array(users)) {
        rc = cli_err("unexpected answer from the admin API: %s", body);
    } else if (cli_opts.is_json) {
        char *s = json_dumps(users, JSON_COMPACT);
        puts(s ? s : "[]");
        free(s);
    } else {
        printf("%-32s %s\n", "NAME", "MECHANISMS");
        size_t i;
        json_t *u;
        json_array_foreach(users, i, u)
        {
            printf("%-32s ", json_string_value(json_object_get(u, "name")));
            size_t k;
            json_t *c;
            json_array_foreach(json_object_get(u, "credentials"), k, c)
                printf("%s%s", k ? "," : "", json_string_value(json_object_get(c, "mechanism")));
            putchar('\n');
        }
    }
    json_decref(j);
    free(body);
    return rc;
}

static const cli_cmd_t user_cmds[] = {{"create", cmd_user_create, "create a SCRAM user"},
                                      {"delete", cmd_user_delete, "delete a SCRAM user"},
                                      {"list", cmd_user_list, "list SCRAM users"},
                                      {"update", cmd_user_update, "change a user's password"},
                                      {NULL, NULL, NULL}};

static const char user_help[] = "Usage: strata security user COMMAND [flags]\n"
                                "Manage SCRAM users (SASL) over the admin HTTP API.\n";

static int cmd_user(int argc, char **argv)
{
    return cli_dispatch("security user", user_cmds, argc - 1, argv + 1, user_help);
}

/* ---- security ---- */

static const cli_cmd_t security_cmds[] = {
    {"acl", cmd_acl, "create, list, delete ACLs"},
    {"user", cmd_user, "create, delete, list, update SCRAM users"},
    {NULL, NULL, NULL}};

static const char security_help[] =
    "Usage: strata security acl|user COMMAND [flags]\n"
    "Authorization (ACLs, over the Kafka API) and SASL users (over the admin API).\n"
    "The CLI authenticates with the global --user/--password/--sasl-mechanism and\n"
    "--tls-* flags (see strata --help).\n";

int cli_security_main(int argc, char **argv)
{
    return cli_dispatch("security", security_cmds, argc - 1, argv + 1, security_help);
}
