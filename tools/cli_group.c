/* cli_group.c - `strata group list|describe|seek|delete|offset-delete`.
 * Data path: librdkafka admin APIs against the group coordinator: ListGroups,
 * DescribeGroups, OffsetFetch (committed offsets, joined with ListOffsets watermarks to show
 * lag), OffsetCommit through AlterConsumerGroupOffsets (seek), DeleteGroups, OffsetDelete.
 * Invariants: 1. seek only changes committed offsets; the broker refuses it while the group
 *                has members, and that refusal is shown as is;
 *             2. lag = log end offset - committed offset, or "-" with no commit. */
#include "tools/cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define CLI_MAX_GROUPS 256

static const char *state_name(rd_kafka_consumer_group_state_t s)
{
    return rd_kafka_consumer_group_state_name(s);
}

/* Send a request built by `issue` and wait for its result. */
static rd_kafka_event_t *
run_admin(rd_kafka_t *rk,
          rd_kafka_admin_op_t op,
          rd_kafka_event_type_t ev_type,
          void (*issue)(rd_kafka_t *, rd_kafka_AdminOptions_t *, rd_kafka_queue_t *, void *),
          void *arg)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, op);
    issue(rk, o, q, arg);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = cli_admin_wait(q, ev_type);
    rd_kafka_queue_destroy(q);
    return ev;
}

/* ---- list ---- */

static const char list_help[] = "Usage: strata group list\n"
                                "List consumer groups and their states.\n\n"
                                "Examples:\n"
                                "  strata group list\n"
                                "  strata group list --format json\n";

static void issue_list(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *a)
{
    rd_kafka_ListConsumerGroups(rk, o, q);
}

static int cmd_list(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, list_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc > 1)
        return cli_usage_err("unexpected argument '%s'", argv[1]);
    rd_kafka_t *rk = cli_connect_checked();
    if (!rk)
        return CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = run_admin(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS,
                                     RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, issue_list, NULL);
    int rc = CLI_EXIT_FAIL;
    if (ev) {
        const rd_kafka_ListConsumerGroups_result_t *r =
            rd_kafka_event_ListConsumerGroups_result(ev);
        size_t n, n_err;
        const rd_kafka_ConsumerGroupListing_t **gs =
            rd_kafka_ListConsumerGroups_result_valid(r, &n);
        const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(r, &n_err);
        if (cli_opts.is_json)
            putchar('[');
        else
            printf("%-40s %s\n", "GROUP", "STATE");
        for (size_t i = 0; i < n; i++) {
            const char *id = rd_kafka_ConsumerGroupListing_group_id(gs[i]);
            const char *st = state_name(rd_kafka_ConsumerGroupListing_state(gs[i]));
            if (cli_opts.is_json) {
                printf("%s{\"group\":", i ? "," : "");
                cli_json_cstr(stdout, id);
                fputs(",\"state\":", stdout);
                cli_json_cstr(stdout, st);
                putchar('}');
            } else {
                printf("%-40s %s\n", id, st);
            }
        }
        if (cli_opts.is_json)
            puts("]");
        rc = CLI_EXIT_OK;
        for (size_t i = 0; i < n_err; i++)
            rc = cli_err("listing groups: %s", rd_kafka_error_string(errs[i]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- describe ---- */

static const char describe_help[] =
    "Usage: strata group describe GROUP...\n"
    "Describe groups: state, coordinator, members, total lag, and per partition the\n"
    "committed offset, log start and end offsets, lag, and the member, client id and host\n"
    "that own it. An unknown group is an error (exit 1).\n\n"
    "Examples:\n"
    "  strata group describe billing\n"
    "  strata group describe billing --format json\n";

typedef struct {
    const char **groups;
    size_t n;
} groups_arg_t;

static void issue_describe(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *a)
{
    groups_arg_t *g = a;
    rd_kafka_DescribeConsumerGroups(rk, g->groups, g->n, o, q);
}

static void issue_offsets(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *a)
{
    rd_kafka_ListConsumerGroupOffsets_t *l = rd_kafka_ListConsumerGroupOffsets_new(a, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &l, 1, o, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
}

/* Committed offsets of a group. @return an owned list, or NULL after printing. */
static rd_kafka_topic_partition_list_t *committed(rd_kafka_t *rk, const char *group)
{
    rd_kafka_event_t *ev =
        run_admin(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
                  RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, issue_offsets, (void *)group);
    if (!ev)
        return NULL;
    size_t n;
    const rd_kafka_group_result_t **gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    rd_kafka_topic_partition_list_t *out = NULL;
    if (n != 1)
        cli_err("cannot read offsets of group '%s': empty answer", group);
    else if (rd_kafka_group_result_error(gr[0]))
        cli_err("cannot read offsets of group '%s': %s", group,
                rd_kafka_error_string(rd_kafka_group_result_error(gr[0])));
    else if (rd_kafka_group_result_partitions(gr[0]))
        out = rd_kafka_topic_partition_list_copy(rd_kafka_group_result_partitions(gr[0]));
    else
        out = rd_kafka_topic_partition_list_new(0);
    rd_kafka_event_destroy(ev);
    return out;
}

/* Member that owns topic/partition, or NULL. */
static const rd_kafka_MemberDescription_t *
owner(const rd_kafka_ConsumerGroupDescription_t *d, const char *topic, int32_t partition)
{
    size_t n = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_topic_partition_list_t *a =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
        if (a && rd_kafka_topic_partition_list_find(a, topic, partition))
            return m;
    }
    return NULL;
}

static int cmp_tp(const void *a, const void *b, void *opaque)
{
    const rd_kafka_topic_partition_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* A JSON integer, or null for a negative value (no commit, unknown). */
static void json_i64_or_null(int64_t v)
{
    if (v < 0)
        fputs("null", stdout);
    else
        printf("%" PRId64, v);
}

/* Describe one group; `first` is cleared once something is printed. An unknown group
 * (Dead, no member, no offset) is an error. @return CLI_EXIT_*. */
static int describe_one(rd_kafka_t *rk, const rd_kafka_ConsumerGroupDescription_t *d, bool *first)
{
    const char *id = rd_kafka_ConsumerGroupDescription_group_id(d);
    const rd_kafka_error_t *err = rd_kafka_ConsumerGroupDescription_error(d);
    if (err)
        return cli_err("cannot describe group '%s': %s", id, rd_kafka_error_string(err));
    const char *st = state_name(rd_kafka_ConsumerGroupDescription_state(d));
    const rd_kafka_Node_t *coord = rd_kafka_ConsumerGroupDescription_coordinator(d);
    size_t n_members = rd_kafka_ConsumerGroupDescription_member_count(d);
    rd_kafka_topic_partition_list_t *offs = committed(rk, id);
    if (!offs)
        return CLI_EXIT_FAIL;
    /* Assigned partitions without a commit yet show too, with no current offset. */
    for (size_t i = 0; i < n_members; i++) {
        const rd_kafka_topic_partition_list_t *a = rd_kafka_MemberAssignment_partitions(
            rd_kafka_MemberDescription_assignment(rd_kafka_ConsumerGroupDescription_member(d, i)));
        for (int k = 0; a && k < a->cnt; k++)
            if (!rd_kafka_topic_partition_list_find(offs, a->elems[k].topic, a->elems[k].partition))
                rd_kafka_topic_partition_list_add(offs, a->elems[k].topic, a->elems[k].partition)
                    ->offset = RD_KAFKA_OFFSET_INVALID;
    }
    rd_kafka_topic_partition_list_sort(offs, cmp_tp, NULL);
    int coord_id = coord ? rd_kafka_Node_id(coord) : -1;
    if (rd_kafka_ConsumerGroupDescription_state(d) == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD &&
        n_members == 0 && offs->cnt == 0) { /* what the coordinator says of an unknown id */
        rd_kafka_topic_partition_list_destroy(offs);
        return cli_err("unknown group '%s'", id);
    }
    /* Watermarks first: the header shows the total lag. */
    int64_t *lows = calloc((size_t)offs->cnt + 1, 2 * sizeof(int64_t)), *highs;
    if (!lows) {
        rd_kafka_topic_partition_list_destroy(offs);
        return cli_err("out of memory");
    }
    highs = lows + offs->cnt;
    int64_t total_lag = 0;
    for (int i = 0; i < offs->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &offs->elems[i];
        if (rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lows[i], &highs[i],
                                             cli_opts.timeout_ms))
            lows[i] = highs[i] = -1;
        if (p->offset >= 0 && highs[i] > p->offset)
            total_lag += highs[i] - p->offset;
    }
    if (cli_opts.is_json) {
        printf("%s{\"group\":", *first ? "" : ",");
        cli_json_cstr(stdout, id);
        fputs(",\"state\":", stdout);
        cli_json_cstr(stdout, st);
        printf(",\"coordinator\":%d,\"members\":%zu,\"total_lag\":%" PRId64 ",\"partitions\":[",
               coord_id, n_members, total_lag);
    } else {
        printf("%sGROUP        %s\nCOORDINATOR  %d\nSTATE        %s\nMEMBERS      %zu\n"
               "TOTAL-LAG    %" PRId64 "\n\n%-30s %-9s %-14s %-16s %-14s %-6s %-20s %-20s %s\n",
               *first ? "" : "\n", id, coord_id, st, n_members, total_lag, "TOPIC", "PARTITION",
               "CURRENT-OFFSET", "LOG-START-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID",
               "CLIENT-ID", "HOST");
    }
    *first = false;
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < offs->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &offs->elems[i];
        int64_t low = lows[i], high = highs[i];
        int64_t lag = p->offset >= 0 && high >= 0 ? high - p->offset : -1;
        if (lag < 0 && p->offset >= 0 && high >= 0)
            lag = 0;
        const rd_kafka_MemberDescription_t *m = owner(d, p->topic, p->partition);
        const char *mid = m ? rd_kafka_MemberDescription_consumer_id(m) : NULL;
        const char *cid = m ? rd_kafka_MemberDescription_client_id(m) : NULL;
        const char *host = m ? rd_kafka_MemberDescription_host(m) : NULL;
        if (cli_opts.is_json) {
            printf("%s{\"topic\":", i ? "," : "");
            cli_json_cstr(stdout, p->topic);
            printf(",\"partition\":%d,\"current_offset\":", (int)p->partition);
            json_i64_or_null(p->offset);
            fputs(",\"log_start_offset\":", stdout);
            json_i64_or_null(low);
            fputs(",\"log_end_offset\":", stdout);
            json_i64_or_null(high);
            fputs(",\"lag\":", stdout);
            json_i64_or_null(lag);
            fputs(",\"member_id\":", stdout);
            cli_json_cstr(stdout, mid);
            fputs(",\"client_id\":", stdout);
            cli_json_cstr(stdout, cid);
            fputs(",\"host\":", stdout);
            cli_json_cstr(stdout, host);
            putchar('}');
        } else {
            char cur[24] = "-", start[24] = "-", end[24] = "-", lg[24] = "-";
            if (p->offset >= 0)
                snprintf(cur, sizeof(cur), "%" PRId64, p->offset);
            if (low >= 0)
                snprintf(start, sizeof(start), "%" PRId64, low);
            if (high >= 0)
                snprintf(end, sizeof(end), "%" PRId64, high);
            if (lag >= 0)
                snprintf(lg, sizeof(lg), "%" PRId64, lag);
            printf("%-30s %-9d %-14s %-16s %-14s %-6s %-20s %-20s %s\n", p->topic,
                   (int)p->partition, cur, start, end, lg, mid ? mid : "-", cid ? cid : "-",
                   host ? host : "-");
        }
    }
    free(lows);
    if (cli_opts.is_json)
        fputs("]}", stdout);
    rd_kafka_topic_partition_list_destroy(offs);
    return rc;
}

static int cmd_describe(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, describe_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc < 2)
        return cli_usage_err("group describe needs at least one GROUP");
    if (argc - 1 > CLI_MAX_GROUPS)
        return cli_usage_err("too many groups (max %d)", CLI_MAX_GROUPS);
    rd_kafka_t *rk = cli_connect_checked();
    if (!rk)
        return CLI_EXIT_FAIL;
    groups_arg_t ga = {(const char **)argv + 1, (size_t)argc - 1};
    rd_kafka_event_t *ev =
        run_admin(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
                  RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, issue_describe, &ga);
    int rc = CLI_EXIT_FAIL;
    if (ev) {
        size_t n;
        const rd_kafka_ConsumerGroupDescription_t **ds =
            rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
        rc = CLI_EXIT_OK;
        if (cli_opts.is_json)
            putchar('[');
        bool first = true;
        for (size_t i = 0; i < n; i++)
            if (describe_one(rk, ds[i], &first))
                rc = CLI_EXIT_FAIL;
        if (cli_opts.is_json)
            puts("]");
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Group results (delete, seek, offset-delete) ---- */

static int print_group_results(const rd_kafka_group_result_t **gr, size_t n)
{
    int rc = CLI_EXIT_OK;
    if (cli_opts.is_json)
        putchar('[');
    else
        printf("%-40s %s\n", "GROUP", "STATUS");
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
        const char *msg = e ? rd_kafka_error_string(e) : NULL;
        /* Per-partition errors (seek, offset-delete). */
        const rd_kafka_topic_partition_list_t *ps = rd_kafka_group_result_partitions(gr[i]);
        char pmsg[512] = "";
        for (int k = 0; !msg && ps && k < ps->cnt; k++)
            if (ps->elems[k].err) {
                snprintf(pmsg, sizeof(pmsg), "%s/%d: %s", ps->elems[k].topic,
                         (int)ps->elems[k].partition, rd_kafka_err2str(ps->elems[k].err));
                msg = pmsg;
            }
        if (msg)
            rc = CLI_EXIT_FAIL;
        if (cli_opts.is_json) {
            printf("%s{\"group\":", i ? "," : "");
            cli_json_cstr(stdout, rd_kafka_group_result_name(gr[i]));
            fputs(",\"error\":", stdout);
            cli_json_cstr(stdout, msg);
            putchar('}');
        } else {
            printf("%-40s %s\n", rd_kafka_group_result_name(gr[i]), msg ? msg : "OK");
        }
    }
    if (cli_opts.is_json)
        puts("]");
    return rc;
}

/* ---- delete ---- */

static const char delete_help[] = "Usage: strata group delete GROUP...\n"
                                  "Delete empty groups and their committed offsets.\n\n"
                                  "Examples:\n"
                                  "  strata group delete billing\n";

static void issue_delete(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *a)
{
    groups_arg_t *g = a;
    rd_kafka_DeleteGroup_t *dg[CLI_MAX_GROUPS];
    for (size_t i = 0; i < g->n; i++)
        dg[i] = rd_kafka_DeleteGroup_new(g->groups[i]);
    rd_kafka_DeleteGroups(rk, dg, g->n, o, q);
    rd_kafka_DeleteGroup_destroy_array(dg, g->n);
}

static int cmd_delete(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, delete_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc < 2)
        return cli_usage_err("group delete needs at least one GROUP");
    if (argc - 1 > CLI_MAX_GROUPS)
        return cli_usage_err("too many groups (max %d)", CLI_MAX_GROUPS);
    rd_kafka_t *rk = cli_connect_checked();
    if (!rk)
        return CLI_EXIT_FAIL;
    groups_arg_t ga = {(const char **)argv + 1, (size_t)argc - 1};
    rd_kafka_event_t *ev = run_admin(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS,
                                     RD_KAFKA_EVENT_DELETEGROUPS_RESULT, issue_delete, &ga);
    int rc = CLI_EXIT_FAIL;
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr =
            rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
        rc = print_group_results(gr, n);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- seek ---- */

static const char seek_help[] =
    "Usage: strata group seek GROUP --to SPEC|--to-group GROUP2|--to-file FILE\n"
    "                            [--topics T1,T2]\n"
    "Set the committed offsets of an empty group.\n\n"
    "Flags:\n"
    "  --to SPEC         start, end, +N, -N, @TIME or an exact offset (per partition)\n"
    "  --to-group GROUP2 the committed offsets of another group (copied)\n"
    "  --to-file FILE    offsets from FILE: one 'TOPIC PARTITION OFFSET' per line\n"
    "                    (blank lines and # comments skipped; - is stdin)\n"
    "  --topics LIST     topics to seek (default: the topics the group has offsets for;\n"
    "                    with --to-group or --to-file: all of theirs)\n\n"
    "Examples:\n"
    "  strata group seek billing --to start\n"
    "  strata group seek billing --to @2024-01-31 --topics orders\n"
    "  strata group seek billing --to -100 --topics orders,payments\n"
    "  strata group seek billing --to-group billing-old\n"
    "  strata group seek billing --to-file offsets.txt\n";

typedef struct {
    const char *group;
    rd_kafka_topic_partition_list_t *parts;
} group_parts_arg_t;

static void issue_alter(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *a)
{
    group_parts_arg_t *g = a;
    rd_kafka_AlterConsumerGroupOffsets_t *x =
        rd_kafka_AlterConsumerGroupOffsets_new(g->group, g->parts);
    rd_kafka_AlterConsumerGroupOffsets(rk, &x, 1, o, q);
    rd_kafka_AlterConsumerGroupOffsets_destroy(x);
}

/* Add every partition of `topic` (or the committed ones) at the resolved offsets. */
static int seek_topic(rd_kafka_t *rk,
                      const rd_kafka_metadata_topic_t *t,
                      const rd_kafka_topic_partition_list_t *only,
                      const char *spec,
                      rd_kafka_topic_partition_list_t *out)
{
    int32_t *parts = calloc((size_t)t->partition_cnt + 1, sizeof(*parts));
    int64_t *offs = calloc((size_t)t->partition_cnt + 1, sizeof(*offs));
    int n = 0, rc = parts && offs ? 0 : cli_err("out of memory");
    for (int i = 0; !rc && i < t->partition_cnt; i++)
        if (!only || rd_kafka_topic_partition_list_find(only, t->topic, t->partitions[i].id))
            parts[n++] = t->partitions[i].id;
    if (!rc && n)
        rc = cli_resolve_offsets(rk, t->topic, parts, n, spec, offs);
    for (int i = 0; !rc && i < n; i++)
        rd_kafka_topic_partition_list_add(out, t->topic, parts[i])->offset = offs[i];
    free(parts);
    free(offs);
    return rc;
}

/* Whether `topic` is in the comma list `csv` (NULL: every topic is). */
static bool topic_listed(const char *csv, const char *topic)
{
    if (!csv)
        return true;
    size_t n = strlen(topic);
    for (const char *p = csv; (p = strstr(p, topic)); p += n)
        if ((p == csv || p[-1] == ',') && (p[n] == ',' || !p[n]))
            return true;
    return false;
}

/* Offsets of another group (--to-group). @return 0 or CLI_EXIT_FAIL after printing. */
static int seek_from_group(rd_kafka_t *rk,
                           const char *src_group,
                           const char *topics,
                           rd_kafka_topic_partition_list_t *out)
{
    rd_kafka_topic_partition_list_t *src = committed(rk, src_group);
    if (!src)
        return CLI_EXIT_FAIL;
    for (int i = 0; i < src->cnt; i++)
        if (src->elems[i].offset >= 0 && topic_listed(topics, src->elems[i].topic))
            rd_kafka_topic_partition_list_add(out, src->elems[i].topic, src->elems[i].partition)
                ->offset = src->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(src);
    return out->cnt ? 0 : cli_err("group '%s' has no committed offsets to copy", src_group);
}

/* Offsets from "TOPIC PARTITION OFFSET" lines (--to-file). @return 0 or CLI_EXIT_*. */
static int seek_from_file(const rd_kafka_metadata_t *md,
                          const char *file,
                          const char *topics,
                          rd_kafka_topic_partition_list_t *out)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!f)
        return cli_err("cannot read %s: %s", file, strerror(errno));
    char line[1024];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char topic[256], extra[2];
        long long part, off;
        char *l = line + strspn(line, " \t");
        if (!*l || *l == '\n' || *l == '#')
            continue;
        int k = sscanf(l, "%255s %lld %lld %1s", topic, &part, &off, extra);
        const rd_kafka_metadata_topic_t *t = k == 3 ? cli_md_topic(md, topic) : NULL;
        if (k != 3 || part < 0 || part > INT32_MAX || off < 0)
            rc = cli_usage_err("%s:%d: expected TOPIC PARTITION OFFSET", file, lineno);
        else if (!t)
            rc = cli_err("%s:%d: unknown topic '%s'", file, lineno, topic);
        else if (part >= t->partition_cnt)
            rc = cli_err("%s:%d: unknown partition %s/%lld", file, lineno, topic, part);
        else if (topic_listed(topics, topic))
            rd_kafka_topic_partition_list_add(out, topic, (int32_t)part)->offset = off;
    }
    if (f != stdin)
        fclose(f);
    return rc ? rc : out->cnt ? 0 : cli_err("%s names no offsets", file);
}

static int cmd_seek(int argc, char **argv)
{
    static const struct option longs[] = {
        {"to", required_argument, NULL, 't'},       {"topics", required_argument, NULL, 'T'},
        {"to-group", required_argument, NULL, 'G'}, {"to-file", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    const char *to = NULL, *to_group = NULL, *to_file = NULL;
    char *topics = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, "h", longs)) != -1) {
        if (c == 't')
            to = optarg;
        else if (c == 'G')
            to_group = optarg;
        else if (c == 'F')
            to_file = optarg;
        else if (c == 'T')
            topics = optarg;
        else if (c == 'h')
            return fputs(seek_help, stdout), CLI_EXIT_OK;
        else
            return CLI_EXIT_USAGE;
    }
    if (argc - optind != 1 || !!to + !!to_group + !!to_file != 1)
        return cli_usage_err("group seek needs one GROUP and one of --to, --to-group, "
                             "--to-file");
    if (to && cli_check_offset_spec(to))
        return cli_usage_err("bad --to '%s': use start, end, +N, -N, @TIME or an offset", to);
    const char *group = argv[optind];
    rd_kafka_t *rk = cli_connect_checked();
    if (!rk)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    rd_kafka_topic_partition_list_t *cur = NULL, *out = rd_kafka_topic_partition_list_new(16);
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md)
        goto out;
    if (to_group || to_file) {
        if ((rc = to_group ? seek_from_group(rk, to_group, topics, out)
                           : seek_from_file(md, to_file, topics, out)))
            goto out;
    } else if (topics) {
        for (char *save = NULL, *tok = strtok_r(topics, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            const rd_kafka_metadata_topic_t *t = cli_md_topic(md, tok);
            if (!t) {
                rc = cli_err("unknown topic '%s'", tok);
                goto out;
            }
            if ((rc = seek_topic(rk, t, NULL, to, out)))
                goto out;
        }
    } else {
        if (!(cur = committed(rk, group)))
            goto out;
        if (!cur->cnt) {
            rc = cli_err("group '%s' has no committed offsets: name the topics with --topics",
                         group);
            goto out;
        }
        for (int i = 0; i < md->topic_cnt; i++) {
            const rd_kafka_metadata_topic_t *t = &md->topics[i];
            bool used = false;
            for (int k = 0; k < cur->cnt && !used; k++)
                used = !strcmp(cur->elems[k].topic, t->topic);
            if (used && (rc = seek_topic(rk, t, cur, to, out)))
                goto out;
        }
    }
    group_parts_arg_t ga = {group, out};
    rd_kafka_event_t *ev =
        run_admin(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
                  RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, issue_alter, &ga);
    rc = CLI_EXIT_FAIL;
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
            rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
        rc = print_group_results(gr, n);
        rd_kafka_event_destroy(ev);
    }
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (cur)
        rd_kafka_topic_partition_list_destroy(cur);
    rd_kafka_topic_partition_list_destroy(out);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- offset-delete ---- */

static const char odel_help[] =
    "Usage: strata group offset-delete GROUP --topic TOPIC[:P1,P2]...\n"
    "Delete committed offsets of a group for whole topics or some partitions.\n\n"
    "Flags:\n"
    "  -t, --topic TOPIC[:PARTITIONS]   repeatable\n\n"
    "Examples:\n"
    "  strata group offset-delete billing --topic orders\n"
    "  strata group offset-delete billing --topic orders:0,1 --topic payments\n";

static void issue_odel(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *a)
{
    group_parts_arg_t *g = a;
    rd_kafka_DeleteConsumerGroupOffsets_t *x =
        rd_kafka_DeleteConsumerGroupOffsets_new(g->group, g->parts);
    rd_kafka_DeleteConsumerGroupOffsets(rk, &x, 1, o, q);
    rd_kafka_DeleteConsumerGroupOffsets_destroy(x);
}

static int cmd_offset_delete(int argc, char **argv)
{
    static const struct option longs[] = {{"topic", required_argument, NULL, 't'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    char *specs[CLI_MAX_GROUPS];
    int n_specs = 0, c;
    while ((c = cli_getopt(argc, argv, "t:h", longs)) != -1) {
        if (c == 't' && n_specs < CLI_MAX_GROUPS)
            specs[n_specs++] = optarg;
        else if (c == 'h')
            return fputs(odel_help, stdout), CLI_EXIT_OK;
        else
            return CLI_EXIT_USAGE;
    }
    if (argc - optind != 1 || !n_specs)
        return cli_usage_err("group offset-delete needs one GROUP and --topic");
    rd_kafka_t *rk = cli_connect_checked();
    if (!rk)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md)
        goto out;
    for (int i = 0; i < n_specs; i++) {
        char *colon = strchr(specs[i], ':');
        if (colon)
            *colon = '\0';
        const rd_kafka_metadata_topic_t *t = cli_md_topic(md, specs[i]);
        if (!t) {
            rc = cli_err("unknown topic '%s'", specs[i]);
            goto out;
        }
        if (colon) {
            int32_t parts[CLI_MAX_GROUPS];
            int n = cli_parse_partitions(colon + 1, parts, CLI_MAX_GROUPS);
            if (n < 0) {
                rc = cli_usage_err("bad --topic partitions '%s': use TOPIC:0,1,2", colon + 1);
                goto out;
            }
            for (int k = 0; k < n; k++)
                rd_kafka_topic_partition_list_add(l, t->topic, parts[k]);
        } else {
            for (int k = 0; k < t->partition_cnt; k++)
                rd_kafka_topic_partition_list_add(l, t->topic, t->partitions[k].id);
        }
    }
    group_parts_arg_t ga = {argv[optind], l};
    rd_kafka_event_t *ev =
        run_admin(rk, RD_KAFKA_ADMIN_OP_DELETECONSUMERGROUPOFFSETS,
                  RD_KAFKA_EVENT_DELETECONSUMERGROUPOFFSETS_RESULT, issue_odel, &ga);
    if (ev) {
        size_t n;
        const rd_kafka_group_result_t **gr = rd_kafka_DeleteConsumerGroupOffsets_result_groups(
            rd_kafka_event_DeleteConsumerGroupOffsets_result(ev), &n);
        rc = print_group_results(gr, n);
        rd_kafka_event_destroy(ev);
    }
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Family ---- */

static const char group_help[] = "Usage: strata group COMMAND [flags]\n"
                                 "Manage consumer groups.\n\n"
                                 "Examples:\n"
                                 "  strata group list\n"
                                 "  strata group describe billing\n"
                                 "  strata group seek billing --to start\n";

static const cli_cmd_t group_cmds[] = {
    {"list", cmd_list, "list groups"},
    {"describe", cmd_describe, "members, committed offsets and lag"},
    {"seek", cmd_seek, "set committed offsets of an empty group"},
    {"delete", cmd_delete, "delete groups"},
    {"offset-delete", cmd_offset_delete, "delete committed offsets"},
    {NULL, NULL, NULL}};

int cli_group_main(int argc, char **argv)
{
    return cli_dispatch("group", group_cmds, argc - 1, argv + 1, group_help);
}
