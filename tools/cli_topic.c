/* cli_topic.c - `strata topic create|list|describe|delete|add-partitions|alter-config|
 * trim-prefix`: topic administration over the Kafka admin API.
 * Data path: each command builds one librdkafka client, sends CreateTopics, DeleteTopics,
 * CreatePartitions, DescribeConfigs/AlterConfigs, DeleteRecords or Metadata, and prints the
 * per-topic results as a table or JSON. produce/consume live in cli_io.c.
 * Invariants: 1. a command that touches several topics reports each one and exits 1 if
 *                any failed;
 *             2. alter-config keeps every other dynamic config of the topic: librdkafka 2.0
 *                has no IncrementalAlterConfigs, so it reads the topic's dynamic configs,
 *                merges the change and sends the full set with AlterConfigs. */
#include "tools/cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define CLI_MAX_ITEMS 256

/* Parse the flags of a topic command; shared shape for all of them. */
#define CLI_LONG_HELP                                                                              \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

static int print_help(const char *text)
{
    fputs(text, stdout);
    return CLI_EXIT_OK;
}

/* Print one result row; collects failures. */
static void print_result(const char *topic, rd_kafka_resp_err_t err, const char *msg, bool *first)
{
    if (cli_opts.is_json) {
        printf("%s{\"topic\":", *first ? "[" : ",");
        cli_json_cstr(stdout, topic);
        printf(",\"error\":");
        if (err)
            cli_json_cstr(stdout, msg && *msg ? msg : rd_kafka_err2str(err));
        else
            fputs("null", stdout);
        putchar('}');
    } else {
        if (*first)
            printf("%-40s %s\n", "TOPIC", "STATUS");
        printf("%-40s %s\n", topic, err ? (msg && *msg ? msg : rd_kafka_err2str(err)) : "OK");
    }
    *first = false;
}

static void end_results(bool first)
{
    if (cli_opts.is_json)
        puts(first ? "[]" : "]");
}

/* Print per-topic results; `ok_err` (e.g. TOPIC_ALREADY_EXISTS for --if-not-exists) is
 * shown but is not a failure. */
static int topic_results(const rd_kafka_topic_result_t **res, size_t n, rd_kafka_resp_err_t ok_err)
{
    bool first = true;
    int rc = CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
        if (err && err == ok_err) {
            print_result(rd_kafka_topic_result_name(res[i]), 0, NULL, &first);
            continue;
        }
        print_result(rd_kafka_topic_result_name(res[i]), err,
                     rd_kafka_topic_result_error_string(res[i]), &first);
        if (err)
            rc = CLI_EXIT_FAIL;
    }
    end_results(first);
    return rc;
}

/* ---- Selecting topics: names, or regular expressions (-r) ---- */

static int cmp_topic(const void *a, const void *b)
{
    const rd_kafka_metadata_topic_t *x = *(const rd_kafka_metadata_topic_t *const *)a;
    const rd_kafka_metadata_topic_t *y = *(const rd_kafka_metadata_topic_t *const *)b;
    return strcmp(x->topic, y->topic);
}

int cli_select_topics(const rd_kafka_metadata_t *md,
                      char **pats,
                      int n_pats,
                      bool is_regex,
                      bool internal,
                      const rd_kafka_metadata_topic_t ***out)
{
    const rd_kafka_metadata_topic_t **ts = calloc((size_t)md->topic_cnt + 1, sizeof(*ts));
    regex_t *rx = calloc((size_t)n_pats + 1, sizeof(*rx));
    int n = 0, n_rx = 0, rc = 0;
    if (!ts || !rx)
        rc = cli_err("out of memory");
    for (int i = 0; !rc && is_regex && i < n_pats; i++, n_rx++) {
        char anchored[1024];
        snprintf(anchored, sizeof(anchored), "^(%s)$", pats[i]);
        int e = regcomp(&rx[i], anchored, REG_EXTENDED | REG_NOSUB);
        if (e) {
            char why[256];
            regerror(e, &rx[i], why, sizeof(why));
            rc = cli_usage_err("bad regular expression '%s': %s", pats[i], why);
        }
    }
    for (int i = 0; !rc && !is_regex && i < n_pats; i++)
        if (!cli_md_topic(md, pats[i]))
            rc = cli_err("unknown topic '%s'", pats[i]);
    for (int i = 0; !rc && i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        if (t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            continue;
        bool hit = n_pats == 0 && (internal || strncmp(t->topic, "__", 2));
        for (int k = 0; !hit && k < n_pats; k++)
            hit = is_regex
                      ? !regexec(&rx[k], t->topic, 0, NULL, 0) &&
                            (internal || strncmp(t->topic, "__", 2) || !strncmp(pats[k], "__", 2))
                      : !strcmp(pats[k], t->topic);
        if (hit)
            ts[n++] = t;
    }
    for (int i = 0; i < n_rx; i++)
        regfree(&rx[i]);
    free(rx);
    if (rc) {
        free(ts);
        return -1;
    }
    if (n > 1)
        qsort(ts, (size_t)n, sizeof(*ts), cmp_topic);
    *out = ts;
    return n;
}

/* ---- create ---- */

static const char create_help[] =
    "Usage: strata topic create TOPIC... [-p PARTITIONS] [-r REPLICAS] [-c KEY=VALUE]...\n"
    "Create topics.\n\n"
    "Flags:\n"
    "  -p, --partitions N   partitions per topic (default 1)\n"
    "  -r, --replicas N     replication factor (default: broker default)\n"
    "  -c, --topic-config K=V  topic config, repeatable (e.g. retention.ms=3600000)\n"
    "      --if-not-exists  a topic that exists already is not an error (its settings\n"
    "                       are left as they are)\n\n"
    "Examples:\n"
    "  strata topic create orders\n"
    "  strata topic create orders --if-not-exists\n"
    "  strata topic create orders payments -p 6 -c retention.ms=86400000\n";

static int cmd_create(int argc, char **argv)
{
    static const struct option longs[] = {{"partitions", required_argument, NULL, 'p'},
                                          {"replicas", required_argument, NULL, 'r'},
                                          {"topic-config", required_argument, NULL, 'c'},
                                          {"if-not-exists", no_argument, NULL, 'E'},
                                          CLI_LONG_HELP,
                                          {NULL, 0, NULL, 0}};
    int64_t partitions = 1, replicas = -1;
    rd_kafka_resp_err_t ok_err = 0;
    char *keys[CLI_MAX_ITEMS], *vals[CLI_MAX_ITEMS];
    int n_cfg = 0, c;
    while ((c = cli_getopt(argc, argv, "p:r:c:h", longs)) != -1) {
        switch (c) {
        case 'p':
            if (cli_parse_i64(optarg, 1, 100000, &partitions))
                return cli_usage_err("bad --partitions '%s': use a number from 1 to 100000",
                                     optarg);
            break;
        case 'r':
            if (cli_parse_i64(optarg, -1, 32767, &replicas) || replicas == 0)
                return cli_usage_err("bad --replicas '%s': use a positive number", optarg);
            break;
        case 'c':
            if (n_cfg == CLI_MAX_ITEMS || cli_split_kv(optarg, &keys[n_cfg], &vals[n_cfg]))
                return cli_usage_err("bad --topic-config '%s': use KEY=VALUE", optarg);
            n_cfg++;
            break;
        case 'E':
            ok_err = RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
            break;
        case 'h':
            return print_help(create_help);
        default:
            return CLI_EXIT_USAGE;
        }
    }
    int n = argc - optind;
    if (n < 1)
        return cli_usage_err("topic create needs at least one TOPIC");
    if (n > CLI_MAX_ITEMS)
        return cli_usage_err("too many topics (max %d)", CLI_MAX_ITEMS);
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    rd_kafka_NewTopic_t *nt[CLI_MAX_ITEMS];
    char errstr[256];
    for (int i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(argv[optind + i], (int)partitions, (int)replicas, errstr,
                                      sizeof(errstr));
        if (!nt[i]) {
            rd_kafka_NewTopic_destroy_array(nt, (size_t)i);
            rd_kafka_destroy(rk);
            return cli_usage_err("bad topic '%s': %s", argv[optind + i], errstr);
        }
        for (int k = 0; k < n_cfg; k++)
            rd_kafka_NewTopic_set_config(nt[i], keys[k], vals[k]);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(rk, nt, (size_t)n, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy_array(nt, (size_t)n);
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    if (ev) {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rc = topic_results(res, cnt, ok_err);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- delete ---- */

static const char delete_help[] =
    "Usage: strata topic delete TOPIC... [-r]\n"
    "Delete topics and all their records.\n\n"
    "Flags:\n"
    "  -r, --regex   the arguments are regular expressions (POSIX extended, matching whole\n"
    "                names; internal __* topics only when the expression starts with __):\n"
    "                delete every topic one matches, an error when none does\n\n"
    "Examples:\n"
    "  strata topic delete orders\n"
    "  strata topic delete a b c --format json\n"
    "  strata topic delete -r 'tmp-.*'\n";

static int cmd_delete(int argc, char **argv)
{
    static const struct option longs[] = {
        {"regex", no_argument, NULL, 'r'}, CLI_LONG_HELP, {NULL, 0, NULL, 0}};
    bool is_regex = false;
    int c;
    while ((c = cli_getopt(argc, argv, "rh", longs)) != -1) {
        if (c == 'r')
            is_regex = true;
        else if (c == 'h')
            return print_help(delete_help);
        else
            return CLI_EXIT_USAGE;
    }
    int n = argc - optind;
    if (n < 1)
        return cli_usage_err("topic delete needs at least one TOPIC");
    if (n > CLI_MAX_ITEMS)
        return cli_usage_err("too many topics (max %d)", CLI_MAX_ITEMS);
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    const char *names[CLI_MAX_ITEMS];
    const rd_kafka_metadata_topic_t **sel = NULL;
    const rd_kafka_metadata_t *md = NULL;
    if (is_regex) {
        if (!(md = cli_metadata(rk)) ||
            (n = cli_select_topics(md, argv + optind, n, true, false, &sel)) < 0) {
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_destroy(rk);
            return n < 0 && md ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        if (n == 0 || n > CLI_MAX_ITEMS) {
            free(sel);
            rd_kafka_metadata_destroy(md);
            rd_kafka_destroy(rk);
            return n ? cli_err("%d topics match: delete at most %d at once", n, CLI_MAX_ITEMS)
                     : cli_err("no topic matches");
        }
        for (int i = 0; i < n; i++)
            names[i] = sel[i]->topic;
    } else {
        for (int i = 0; i < n; i++)
            names[i] = argv[optind + i];
    }
    rd_kafka_DeleteTopic_t *dt[CLI_MAX_ITEMS];
    for (int i = 0; i < n; i++)
        dt[i] = rd_kafka_DeleteTopic_new(names[i]);
    free(sel);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_DeleteTopics(rk, dt, (size_t)n, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteTopic_destroy_array(dt, (size_t)n);
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT);
    if (ev) {
        size_t cnt;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &cnt);
        rc = topic_results(res, cnt, 0);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- list ---- */

static const char list_help[] =
    "Usage: strata topic list [REGEX...] [-i]\n"
    "List topics with their partition and replica counts; with REGEX arguments only the\n"
    "topics one of them matches (POSIX extended, matching whole names).\n\n"
    "Flags:\n"
    "  -i, --internal   also list internal topics (__*)\n"
    "  -r, --regex      accepted for rpk habits: the arguments of list are always regexes\n\n"
    "Examples:\n"
    "  strata topic list\n"
    "  strata topic list 'ord.*' payments\n"
    "  strata topic list --format json\n";

static int cmd_list(int argc, char **argv)
{
    static const struct option longs[] = {{"internal", no_argument, NULL, 'i'},
                                          {"regex", no_argument, NULL, 'r'},
                                          CLI_LONG_HELP,
                                          {NULL, 0, NULL, 0}};
    bool internal = false;
    int c;
    while ((c = cli_getopt(argc, argv, "irh", longs)) != -1) {
        if (c == 'i')
            internal = true;
        else if (c == 'h')
            return print_help(list_help);
        else if (c != 'r')
            return CLI_EXIT_USAGE;
    }
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    const rd_kafka_metadata_topic_t **ts = NULL;
    int n = cli_select_topics(md, argv + optind, argc - optind, true, internal, &ts);
    if (n < 0) {
        rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
        return CLI_EXIT_USAGE;
    }
    if (!cli_opts.is_json)
        printf("%-40s %10s %8s\n", "NAME", "PARTITIONS", "REPLICAS");
    else
        putchar('[');
    for (int i = 0; i < n; i++) {
        int replicas = ts[i]->partition_cnt ? ts[i]->partitions[0].replica_cnt : 0;
        if (cli_opts.is_json) {
            printf("%s{\"name\":", i ? "," : "");
            cli_json_cstr(stdout, ts[i]->topic);
            printf(",\"partitions\":%d,\"replicas\":%d}", ts[i]->partition_cnt, replicas);
        } else {
            printf("%-40s %10d %8d\n", ts[i]->topic, ts[i]->partition_cnt, replicas);
        }
    }
    if (cli_opts.is_json)
        puts("]");
    free(ts);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return CLI_EXIT_OK;
}

/* ---- describe ---- */

static const char describe_help[] =
    "Usage: strata topic describe TOPIC... [-r] [-s] [-c] [-p]\n"
    "Describe topics: summary, configs and partitions (all three by default). With\n"
    "--format json: one object for one TOPIC, an array for several or with -r.\n\n"
    "Flags:\n"
    "  -s, --summary      print the summary section\n"
    "  -c, --configs      print the configs section\n"
    "  -p, --partitions   print the partitions section (leader, replicas, offsets)\n"
    "  -r, --regex        the arguments are regular expressions (POSIX extended, matching\n"
    "                     whole names): describe every topic one matches\n\n"
    "Examples:\n"
    "  strata topic describe orders\n"
    "  strata topic describe orders -p --format json\n"
    "  strata topic describe -r 'ord.*' -s\n";

static void describe_configs_out(const rd_kafka_ConfigResource_t *res, bool json)
{
    size_t n;
    const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(res, &n);
    if (!json)
        printf("CONFIGS\n%-40s %-30s %s\n", "KEY", "VALUE", "SOURCE");
    else
        fputs("[", stdout);
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_ConfigEntry_name(es[i]);
        const char *val = rd_kafka_ConfigEntry_value(es[i]);
        bool sens = rd_kafka_ConfigEntry_is_sensitive(es[i]);
        const char *src = cli_config_source_name(rd_kafka_ConfigEntry_source(es[i]));
        if (json) {
            printf("%s{\"key\":", i ? "," : "");
            cli_json_cstr(stdout, name);
            fputs(",\"value\":", stdout);
            cli_json_cstr(stdout, sens ? "(sensitive)" : val);
            printf(",\"source\":\"%s\",\"read_only\":%s}", src,
                   rd_kafka_ConfigEntry_is_read_only(es[i]) ? "true" : "false");
        } else {
            printf("%-40s %-30s %s\n", name, sens ? "(sensitive)" : (val ? val : "-"), src);
        }
    }
    if (json)
        fputs("]", stdout);
}

static int describe_partitions_out(rd_kafka_t *rk, const rd_kafka_metadata_topic_t *t, bool json)
{
    if (!json)
        printf("PARTITIONS\n%-10s %-7s %-16s %-18s %s\n", "PARTITION", "LEADER", "REPLICAS",
               "LOG-START-OFFSET", "HIGH-WATERMARK");
    else
        fputs("[", stdout);
    for (int i = 0; i < t->partition_cnt; i++) {
        const rd_kafka_metadata_partition_t *p = &t->partitions[i];
        int64_t low = -1, high = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, t->topic, p->id, &low, &high, cli_opts.timeout_ms);
        if (err) {
            if (json)
                fputs("]", stdout);
            return cli_err("cannot read offsets of %s/%d: %s", t->topic, (int)p->id,
                           rd_kafka_err2str(err));
        }
        char reps[128] = "";
        size_t len = 0;
        for (int r = 0; r < p->replica_cnt && len < sizeof(reps) - 16; r++)
            len += (size_t)snprintf(reps + len, sizeof(reps) - len, "%s%d", r ? "," : "",
                                    (int)p->replicas[r]);
        if (json)
            printf("%s{\"partition\":%d,\"leader\":%d,\"replicas\":[%s],"
                   "\"log_start_offset\":%" PRId64 ",\"high_watermark\":%" PRId64 "}",
                   i ? "," : "", (int)p->id, (int)p->leader, reps, low, high);
        else
            printf("%-10d %-7d %-16s %-18" PRId64 " %" PRId64 "\n", (int)p->id, (int)p->leader,
                   reps, low, high);
    }
    if (json)
        fputs("]", stdout);
    return 0;
}

static int cmp_part(const void *a, const void *b)
{
    const rd_kafka_metadata_partition_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Describe one topic (sections s, cf, p). @return 0 or CLI_EXIT_FAIL after printing. */
static int describe_one(rd_kafka_t *rk, rd_kafka_metadata_topic_t *t, bool s, bool cf, bool p)
{
    const char *name = t->topic;
    if (t->partition_cnt > 1)
        qsort(t->partitions, (size_t)t->partition_cnt, sizeof(*t->partitions), cmp_part);
    const rd_kafka_ConfigResource_t *res = NULL;
    rd_kafka_event_t *ev = NULL;
    if (cf && !(ev = cli_describe_configs(rk, RD_KAFKA_RESOURCE_TOPIC, name, &res)))
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    int replicas = t->partition_cnt ? t->partitions[0].replica_cnt : 0;
    if (cli_opts.is_json) {
        fputs("{\"name\":", stdout);
        cli_json_cstr(stdout, name);
        printf(",\"partitions\":%d,\"replicas\":%d", t->partition_cnt, replicas);
        if (cf) {
            fputs(",\"configs\":", stdout);
            describe_configs_out(res, true);
        }
        if (p) {
            fputs(",\"partition_details\":", stdout);
            if (describe_partitions_out(rk, t, true))
                goto out;
        }
        putchar('}');
    } else {
        if (s)
            printf("SUMMARY\nNAME        %s\nPARTITIONS  %d\nREPLICAS    %d\n%s", name,
                   t->partition_cnt, replicas, cf || p ? "\n" : "");
        if (cf) {
            describe_configs_out(res, false);
            if (p)
                putchar('\n');
        }
        if (p && describe_partitions_out(rk, t, false))
            goto out;
    }
    rc = CLI_EXIT_OK;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    return rc;
}

static int cmd_describe(int argc, char **argv)
{
    static const struct option longs[] = {{"summary", no_argument, NULL, 's'},
                                          {"configs", no_argument, NULL, 'c'},
                                          {"partitions", no_argument, NULL, 'p'},
                                          {"regex", no_argument, NULL, 'r'},
                                          CLI_LONG_HELP,
                                          {NULL, 0, NULL, 0}};
    bool s = false, cf = false, p = false, is_regex = false;
    int c;
    while ((c = cli_getopt(argc, argv, "scprh", longs)) != -1) {
        if (c == 's')
            s = true;
        else if (c == 'c')
            cf = true;
        else if (c == 'p')
            p = true;
        else if (c == 'r')
            is_regex = true;
        else if (c == 'h')
            return print_help(describe_help);
        else
            return CLI_EXIT_USAGE;
    }
    if (!s && !cf && !p)
        s = cf = p = true;
    if (argc - optind < 1)
        return cli_usage_err("topic describe needs at least one TOPIC");
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_CONSUMER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    const rd_kafka_metadata_topic_t **ts = NULL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    int n = md ? cli_select_topics(md, argv + optind, argc - optind, is_regex, false, &ts) : -1;
    if (n < 0)
        goto out;
    if (n == 0) {
        rc = cli_err("no topic matches");
        goto out;
    }
    /* One object for one named topic (as before), an array otherwise. */
    bool array = is_regex || argc - optind > 1;
    if (cli_opts.is_json && array)
        putchar('[');
    rc = CLI_EXIT_OK;
    for (int i = 0; i < n && !rc; i++) {
        if (i)
            fputs(cli_opts.is_json ? "," : "\n", stdout);
        rc = describe_one(rk, (rd_kafka_metadata_topic_t *)ts[i], s, cf, p);
    }
    if (cli_opts.is_json)
        puts(array ? "]" : "");
out:
    free(ts);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- add-partitions ---- */

static const char addp_help[] = "Usage: strata topic add-partitions TOPIC... -n COUNT\n"
                                "Add COUNT partitions to each topic (partitions can only grow).\n\n"
                                "Flags:\n"
                                "  -n, --num COUNT   partitions to add (required)\n\n"
                                "Examples:\n"
                                "  strata topic add-partitions orders -n 3\n";

static int cmd_add_partitions(int argc, char **argv)
{
    static const struct option longs[] = {
        {"num", required_argument, NULL, 'n'}, CLI_LONG_HELP, {NULL, 0, NULL, 0}};
    int64_t num = 0;
    int c;
    while ((c = cli_getopt(argc, argv, "n:h", longs)) != -1) {
        if (c == 'n') {
            if (cli_parse_i64(optarg, 1, 100000, &num))
                return cli_usage_err("bad --num '%s': use a number from 1 to 100000", optarg);
        } else if (c == 'h') {
            return print_help(addp_help);
        } else {
            return CLI_EXIT_USAGE;
        }
    }
    int n = argc - optind;
    if (n < 1 || num == 0)
        return cli_usage_err("topic add-partitions needs TOPIC... and --num COUNT");
    if (n > CLI_MAX_ITEMS)
        return cli_usage_err("too many topics (max %d)", CLI_MAX_ITEMS);
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    rd_kafka_NewPartitions_t *np[CLI_MAX_ITEMS];
    int k = 0, rc = CLI_EXIT_OK;
    bool first = true;
    char errstr[256];
    for (int i = 0; i < n; i++) {
        const rd_kafka_metadata_topic_t *t = cli_md_topic(md, argv[optind + i]);
        if (!t) {
            print_result(argv[optind + i], RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, "unknown topic",
                         &first);
            rc = CLI_EXIT_FAIL;
            continue;
        }
        np[k++] = rd_kafka_NewPartitions_new(t->topic, (size_t)(t->partition_cnt + num), errstr,
                                             sizeof(errstr));
    }
    rd_kafka_event_t *ev = NULL;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    if (k) {
        rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
        rd_kafka_CreatePartitions(rk, np, (size_t)k, o, q);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_NewPartitions_destroy_array(np, (size_t)k);
        ev = cli_admin_wait(q, RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT);
        if (!ev)
            rc = CLI_EXIT_FAIL;
    }
    if (ev) {
        size_t cnt;
        const rd_kafka_topic_result_t **res = rd_kafka_CreatePartitions_result_topics(
            rd_kafka_event_CreatePartitions_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
            print_result(rd_kafka_topic_result_name(res[i]), err,
                         rd_kafka_topic_result_error_string(res[i]), &first);
            if (err)
                rc = CLI_EXIT_FAIL;
        }
        rd_kafka_event_destroy(ev);
    }
    if (ev || !k)
        end_results(first);
    rd_kafka_queue_destroy(q);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- alter-config ---- */

static const char alter_help[] =
    "Usage: strata topic alter-config TOPIC... [--set KEY=VALUE]... [--delete KEY]...\n"
    "Set or remove topic configs; other configs of the topic are kept.\n\n"
    "Flags:\n"
    "  -s, --set KEY=VALUE   set a config (repeatable)\n"
    "  -d, --delete KEY      remove a config, back to the broker default (repeatable)\n\n"
    "Examples:\n"
    "  strata topic alter-config orders --set retention.ms=3600000\n"
    "  strata topic alter-config orders --delete retention.ms\n";

static bool in_list(char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

/* Alter one topic: read its dynamic configs, merge, send AlterConfigs. */
static int alter_one(rd_kafka_t *rk,
                     const char *topic,
                     char **keys,
                     char **vals,
                     int n_set,
                     char **dels,
                     int n_del,
                     char *why,
                     size_t why_len)
{
    const rd_kafka_ConfigResource_t *cur = NULL;
    rd_kafka_event_t *dev = cli_describe_configs(rk, RD_KAFKA_RESOURCE_TOPIC, topic, &cur);
    if (!dev) {
        snprintf(why, why_len, "cannot read its configs");
        return -1;
    }
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    size_t n;
    const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(cur, &n);
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_ConfigEntry_name(es[i]);
        if (rd_kafka_ConfigEntry_source(es[i]) != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG ||
            in_list(keys, n_set, name) || in_list(dels, n_del, name))
            continue;
        rd_kafka_ConfigResource_set_config(res, name, rd_kafka_ConfigEntry_value(es[i]));
    }
    rd_kafka_event_destroy(dev);
    for (int i = 0; i < n_set; i++)
        rd_kafka_ConfigResource_set_config(res, keys[i], vals[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AlterConfigs(rk, &res, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_ALTERCONFIGS_RESULT);
    rd_kafka_queue_destroy(q);
    if (!ev) {
        snprintf(why, why_len, "no answer");
        return -1;
    }
    int rc = 0;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
    if (n != 1) {
        snprintf(why, why_len, "empty answer");
        rc = -1;
    } else if (rd_kafka_ConfigResource_error(rs[0])) {
        const char *s = rd_kafka_ConfigResource_error_string(rs[0]);
        snprintf(why, why_len, "%s",
                 s && *s ? s : rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[0])));
        rc = -1;
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

static int cmd_alter_config(int argc, char **argv)
{
    static const struct option longs[] = {{"set", required_argument, NULL, 's'},
                                          {"delete", required_argument, NULL, 'd'},
                                          CLI_LONG_HELP,
                                          {NULL, 0, NULL, 0}};
    char *keys[CLI_MAX_ITEMS], *vals[CLI_MAX_ITEMS], *dels[CLI_MAX_ITEMS];
    int n_set = 0, n_del = 0, c;
    while ((c = cli_getopt(argc, argv, "s:d:h", longs)) != -1) {
        if (c == 's') {
            if (n_set == CLI_MAX_ITEMS || cli_split_kv(optarg, &keys[n_set], &vals[n_set]))
                return cli_usage_err("bad --set '%s': use KEY=VALUE", optarg);
            n_set++;
        } else if (c == 'd') {
            if (n_del == CLI_MAX_ITEMS || !*optarg)
                return cli_usage_err("bad --delete '%s'", optarg);
            dels[n_del++] = optarg;
        } else if (c == 'h') {
            return print_help(alter_help);
        } else {
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind < 1 || (!n_set && !n_del))
        return cli_usage_err("topic alter-config needs TOPIC... and --set or --delete");
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    int rc = CLI_EXIT_OK;
    bool first = true;
    for (int i = optind; i < argc; i++) {
        char why[512] = "";
        int r = -1;
        if (!cli_md_topic(md, argv[i]))
            snprintf(why, sizeof(why), "unknown topic");
        else
            r = alter_one(rk, argv[i], keys, vals, n_set, dels, n_del, why, sizeof(why));
        print_result(argv[i], r ? RD_KAFKA_RESP_ERR__FAIL : 0, why, &first);
        if (r)
            rc = CLI_EXIT_FAIL;
    }
    end_results(first);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- trim-prefix ---- */

static const char trim_help[] =
    "Usage: strata topic trim-prefix TOPIC -o OFFSET [-p PARTITIONS]\n"
    "Delete every record below OFFSET (DeleteRecords): the log start offset moves up.\n\n"
    "Flags:\n"
    "  -o, --offset OFFSET       new log start offset, or 'end' for the high watermark\n"
    "  -p, --partitions LIST     comma-separated partitions (default: all)\n\n"
    "Examples:\n"
    "  strata topic trim-prefix orders -o 1000 -p 0\n"
    "  strata topic trim-prefix orders -o end\n";

/* Print DeleteRecords results. @return CLI_EXIT_FAIL if any partition failed. */
static int print_trim_results(const char *topic, const rd_kafka_topic_partition_list_t *r)
{
    int rc = CLI_EXIT_OK;
    if (cli_opts.is_json)
        putchar('[');
    else
        printf("%-10s %-18s %s\n", "PARTITION", "NEW-START-OFFSET", "ERROR");
    for (int i = 0; i < r->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &r->elems[i];
        if (p->err)
            rc = CLI_EXIT_FAIL;
        if (cli_opts.is_json) {
            printf("%s{\"topic\":", i ? "," : "");
            cli_json_cstr(stdout, topic);
            printf(",\"partition\":%d,\"new_start_offset\":%" PRId64 ",\"error\":", p->partition,
                   p->err ? (int64_t)-1 : p->offset);
            cli_json_cstr(stdout, p->err ? rd_kafka_err2str(p->err) : NULL);
            putchar('}');
        } else {
            printf("%-10d %-18" PRId64 " %s\n", p->partition, p->err ? (int64_t)-1 : p->offset,
                   p->err ? rd_kafka_err2str(p->err) : "-");
        }
    }
    if (cli_opts.is_json)
        puts("]");
    return rc;
}

static int cmd_trim_prefix(int argc, char **argv)
{
    static const struct option longs[] = {{"offset", required_argument, NULL, 'o'},
                                          {"partitions", required_argument, NULL, 'p'},
                                          CLI_LONG_HELP,
                                          {NULL, 0, NULL, 0}};
    int64_t offset = -2;
    int32_t parts[CLI_MAX_ITEMS];
    int n_parts = 0, c;
    while ((c = cli_getopt(argc, argv, "o:p:h", longs)) != -1) {
        if (c == 'o') {
            if (!strcmp(optarg, "end"))
                offset = RD_KAFKA_OFFSET_END;
            else if (cli_parse_i64(optarg, 0, INT64_MAX, &offset))
                return cli_usage_err("bad --offset '%s': use a number or 'end'", optarg);
        } else if (c == 'p') {
            if ((n_parts = cli_parse_partitions(optarg, parts, CLI_MAX_ITEMS)) < 0)
                return cli_usage_err("bad --partitions '%s': use e.g. 0,1,2", optarg);
        } else if (c == 'h') {
            return print_help(trim_help);
        } else {
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || offset == -2)
        return cli_usage_err("topic trim-prefix needs one TOPIC and --offset");
    const char *topic = argv[optind];
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    rd_kafka_queue_t *q = NULL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md)
        goto out;
    const rd_kafka_metadata_topic_t *t = cli_md_topic(md, topic);
    if (!t) {
        rc = cli_err("unknown topic '%s'", topic);
        goto out;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(t->partition_cnt);
    if (n_parts) {
        for (int i = 0; i < n_parts; i++) {
            if (parts[i] >= t->partition_cnt) {
                rd_kafka_topic_partition_list_destroy(l);
                rc = cli_err("unknown partition %s/%d (the topic has %d)", topic, (int)parts[i],
                             t->partition_cnt);
                goto out;
            }
            rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset = offset;
        }
    } else {
        for (int i = 0; i < t->partition_cnt; i++)
            rd_kafka_topic_partition_list_add(l, topic, t->partitions[i].id)->offset = offset;
    }
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
    rd_kafka_topic_partition_list_destroy(l);
    q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    rd_kafka_DeleteRecords(rk, &dr, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteRecords_destroy(dr);
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DELETERECORDS_RESULT);
    if (!ev)
        goto out;
    rc = print_trim_results(
        topic, rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev)));
    rd_kafka_event_destroy(ev);
out:
    if (q)
        rd_kafka_queue_destroy(q);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Family ---- */

static const char topic_help[] = "Usage: strata topic COMMAND [flags]\n"
                                 "Manage topics, produce and consume records.\n\n"
                                 "Examples:\n"
                                 "  strata topic create orders -p 3\n"
                                 "  strata topic list\n"
                                 "  echo hi | strata topic produce orders\n"
                                 "  strata topic consume orders -o start -n 10\n";

static const cli_cmd_t topic_cmds[] = {
    {"create", cmd_create, "create topics"},
    {"list", cmd_list, "list topics"},
    {"describe", cmd_describe, "describe topics: configs, partitions, offsets"},
    {"describe-storage", cli_topic_describe_storage, "tiered storage of a topic (admin API)"},
    {"delete", cmd_delete, "delete topics"},
    {"add-partitions", cmd_add_partitions, "add partitions to topics"},
    {"alter-config", cmd_alter_config, "set or delete topic configs"},
    {"trim-prefix", cmd_trim_prefix, "delete records below an offset"},
    {"produce", cli_produce, "produce records read from stdin"},
    {"consume", cli_consume, "consume records"},
    {NULL, NULL, NULL}};

int cli_topic_main(int argc, char **argv)
{
    return cli_dispatch("topic", topic_cmds, argc - 1, argv + 1, topic_help);
}
