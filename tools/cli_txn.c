/* cli_txn.c - `strata transaction list` and `strata transaction describe ID`
 * (rpk's `rpk cluster txn list|describe`).
 * Data path: GET /v1/transactions and GET /v1/transactions/{id} of the admin
 * HTTP API (cli_http in cli_cluster.c); the broker copies each shard's
 * transaction coordinator state. Nothing here touches data.
 * Invariant: an error answer exits non-zero with the broker's explanation. */
#include "tools/cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int64_t jint(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

/* GET path and parse it. @return the document (caller decrefs) or NULL after an error. */
static json_t *get_json(const char *path, const char *what, int *rc)
{
    char *body = NULL;
    long st = cli_http_get(path, &body);
    json_t *j = NULL;
    *rc = CLI_EXIT_OK;
    if (st < 0) {
        *rc = CLI_EXIT_FAIL;
    } else if (st != 200) {
        *rc = cli_http_error(st, what, body);
    } else {
        json_error_t jerr;
        if (!(j = json_loads(body, 0, &jerr)))
            *rc = cli_err("admin API sent invalid JSON for %s: %s", path, jerr.text);
    }
    free(body);
    return j;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    puts(s ? s : "{}");
    free(s);
}

static const char list_help[] =
    "Usage: strata transaction list\n"
    "List the transactional ids the broker's transaction coordinators know: producer\n"
    "id and epoch, state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,\n"
    "CompleteAbort), timeout and the partitions of the open transaction.\n\n"
    "Examples:\n"
    "  strata transaction list\n"
    "  strata --format json transaction list\n";

static int cmd_list(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, list_help);
    if (args_rc >= 0)
        return args_rc;
    if (argc - optind > 0)
        return cli_usage_err("unexpected argument '%s'", argv[optind]);
    int rc;
    json_t *j = get_json("/v1/transactions", "cannot list transactions", &rc);
    if (!j)
        return rc;
    if (cli_opts.is_json) {
        print_json(j);
    } else {
        json_t *arr = json_object_get(j, "transactions");
        printf("%-32s %-12s %-6s %-15s %-11s %s\n", "TRANSACTIONAL-ID", "PRODUCER-ID", "EPOCH",
               "STATE", "TIMEOUT-MS", "PARTITIONS");
        size_t i;
        json_t *t;
        json_array_foreach(arr, i, t)
        {
            printf("%-32s %-12lld %-6lld %-15s %-11lld %zu\n", jstr(t, "transactional_id"),
                   (long long)jint(t, "producer_id"), (long long)jint(t, "producer_epoch"),
                   jstr(t, "state"), (long long)jint(t, "timeout_ms"),
                   json_array_size(json_object_get(t, "partitions")));
        }
    }
    json_decref(j);
    return CLI_EXIT_OK;
}

static const char describe_help[] =
    "Usage: strata transaction describe TRANSACTIONAL-ID\n"
    "Show one transactional id: producer id and epoch, state, timeout, when the open\n"
    "transaction started, and each partition it wrote to.\n\n"
    "Examples:\n"
    "  strata transaction describe orders-enricher-0\n";

static int cmd_describe(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, describe_help);
    if (args_rc >= 0)
        return args_rc;
    if (argc - optind != 1)
        return cli_usage_err("transaction describe takes one TRANSACTIONAL-ID");
    const char *id = argv[optind];
    char *esc = curl_easy_escape(NULL, id, 0);
    if (!esc)
        return cli_err("out of memory");
    char path[2048];
    snprintf(path, sizeof(path), "/v1/transactions/%s", esc);
    curl_free(esc);
    char what[1200];
    snprintf(what, sizeof(what), "cannot describe transactional id '%s'", id);
    int rc;
    json_t *t = get_json(path, what, &rc);
    if (!t)
        return rc;
    if (cli_opts.is_json) {
        print_json(t);
    } else {
        printf("%-18s %s\n", "TRANSACTIONAL-ID", jstr(t, "transactional_id"));
        printf("%-18s %lld\n", "PRODUCER-ID", (long long)jint(t, "producer_id"));
        printf("%-18s %lld\n", "PRODUCER-EPOCH", (long long)jint(t, "producer_epoch"));
        printf("%-18s %s\n", "STATE", jstr(t, "state"));
        printf("%-18s %lld\n", "TIMEOUT-MS", (long long)jint(t, "timeout_ms"));
        printf("%-18s %lld\n", "START-MS", (long long)jint(t, "start_ms"));
        printf("%-18s %lld\n", "GROUPS", (long long)jint(t, "groups"));
        json_t *parts = json_object_get(t, "partitions");
        if (json_array_size(parts) > 0) {
            printf("\n%-40s %s\n", "TOPIC", "PARTITION");
            size_t i;
            json_t *p;
            json_array_foreach(parts, i, p)
            {
                printf("%-40s %lld\n", jstr(p, "topic"), (long long)jint(p, "partition"));
            }
        }
    }
    json_decref(t);
    return CLI_EXIT_OK;
}

static const char txn_help[] = "Usage: strata transaction COMMAND\n"
                               "Transactions of the broker's transaction coordinators (admin "
                               "API).\n\n"
                               "Examples:\n"
                               "  strata transaction list\n"
                               "  strata transaction describe my-transactional-id\n";

static const cli_cmd_t txn_cmds[] = {
    {"list", cmd_list, "transactional ids with their producer, state and partitions"},
    {"describe", cmd_describe, "one transactional id in detail"},
    {NULL, NULL, NULL}};

int cli_txn_main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cli_dispatch("transaction", txn_cmds, argc - 1, argv + 1, txn_help);
    curl_global_cleanup();
    return rc;
}
