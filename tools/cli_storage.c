/* cli_storage.c - `strata storage status [TOPIC]` and `strata storage recover`.
 * Data path: GET /v1/storage, GET /v1/storage/topics/{topic} and POST /v1/storage/recover of
 * the admin HTTP API (cli_http in cli_cluster.c); the broker gathers local and remote state
 * from its shards and the tiering module. Nothing here touches data.
 * Invariants: 1. fields the broker reports as null (tiering not running) print as "-";
 *             2. an error answer exits non-zero with the broker's own explanation. */
#include "tools/cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Text of a JSON scalar for tables: numbers, strings, booleans; null and absent are "-". */
static const char *cell(json_t *obj, const char *key, char *buf, size_t cap)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.3g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else
        snprintf(buf, cap, "-");
    return buf;
}

/* Print one table cell padded to width (0: last cell, ends the line). */
static void pc(json_t *obj, const char *key, int width)
{
    char buf[256];
    cell(obj, key, buf, sizeof(buf));
    if (width)
        printf("%-*s ", width, buf);
    else
        printf("%s\n", buf);
}

/* A table column: title, JSON key of each row, width (0: the last column). */
typedef struct {
    const char *title, *key;
    int width;
} col_t;

/* Print a header line and one line per object of the array `rows`. */
static void print_table(json_t *rows, const col_t *cols, size_t n_cols)
{
    for (size_t c = 0; c < n_cols; c++)
        if (cols[c].width)
            printf("%-*s ", cols[c].width, cols[c].title);
        else
            printf("%s\n", cols[c].title);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        for (size_t c = 0; c < n_cols; c++)
            pc(r, cols[c].key, cols[c].width);
    }
}

/* Print "name  value" lines for keys of obj. */
static void print_kv(json_t *obj, const char *const *keys, const char *const *names)
{
    for (int i = 0; keys[i]; i++) {
        printf("%-22s ", names[i]);
        pc(obj, keys[i], 0);
    }
}

static void print_overview(json_t *j)
{
    static const char *const lk[] = {"bytes", "segments", "partitions", NULL};
    static const char *const rk[] = {"enabled",
                                     "archive_url",
                                     "uploaded_bytes",
                                     "uploaded_segments",
                                     "upload_lag_bytes",
                                     "unarchived_bytes",
                                     "unarchived_age_ms",
                                     "cache_bytes",
                                     "cache_hit_rate",
                                     "archive_compacted_objects",
                                     "archive_compaction_bytes_read",
                                     "archive_compaction_bytes_written",
                                     "last_error",
                                     NULL};
    static const char *const rn[] = {"enabled",
                                     "archive",
                                     "uploaded bytes",
                                     "uploaded segments",
                                     "upload lag bytes",
                                     "unarchived bytes",
                                     "unarchived age ms",
                                     "cache bytes",
                                     "cache hit rate",
                                     "compacted objects",
                                     "compaction bytes in",
                                     "compaction bytes out",
                                     "last error",
                                     NULL};
    puts("LOCAL");
    print_kv(json_object_get(j, "local"), lk, lk);
    puts("\nREMOTE");
    print_kv(json_object_get(j, "remote"), rk, rn);
    static const col_t cols[] = {{"TOPIC", "topic", 30},
                                 {"PARTITIONS", "partitions", 10},
                                 {"LOCAL-BYTES", "local_bytes", 12},
                                 {"SEGMENTS", "local_segments", 9},
                                 /* uploaded_offset is per partition */
                                 {"UNARCHIVED-OFFSETS", "unarchived_offsets", 18},
                                 {"UPLOAD-LAG-BYTES", "upload_lag_bytes", 16},
                                 {"REMOTE-BYTES", "remote_bytes", 0}};
    putchar('\n');
    print_table(json_object_get(j, "topics"), cols, sizeof(cols) / sizeof(cols[0]));
}

static void print_topic(json_t *j)
{
    static const col_t cols[] = {{"PARTITION", "partition", 9},
                                 {"SHARD", "shard", 5},
                                 {"LOCAL-BYTES", "local_bytes", 12},
                                 {"SEGMENTS", "local_segments", 8},
                                 {"LOG-START-OFFSET", "log_start_offset", 16},
                                 {"LOCAL-START-OFFSET", "local_start_offset", 18},
                                 {"END-OFFSET", "end_offset", 10},
                                 {"UPLOADED-OFFSET", "uploaded_offset", 15},
                                 {"UPLOAD-LAG-BYTES", "upload_lag_bytes", 16},
                                 {"UNARCHIVED-BYTES", "unarchived_bytes", 16},
                                 {"UNARCHIVED-AGE-MS", "unarchived_age_ms", 17},
                                 {"REMOTE-BYTES", "remote_bytes", 0}};
    printf("TOPIC ");
    pc(j, "topic", 0);
    putchar('\n');
    print_table(json_object_get(j, "partitions"), cols, sizeof(cols) / sizeof(cols[0]));
    /* Compacted topics: the cleaner's figures per partition. */
    bool any = false;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(j, "partitions"), i, p)
    {
        any = any || json_is_object(json_object_get(p, "compaction"));
    }
    if (!any)
        return;
    printf("\n%-9s %-11s %-12s %-12s %-13s %-15s %-16s %s\n", "PARTITION", "DIRTY-RATIO",
           "CLEANER-RUNS", "BYTES-READ", "BYTES-WRITTEN", "RECORDS-REMOVED", "CLEAN-END-OFFSET",
           "LAST-CLEAN-MS");
    json_array_foreach(json_object_get(j, "partitions"), i, p)
    {
        json_t *c = json_object_get(p, "compaction");
        if (!json_is_object(c))
            continue;
        pc(p, "partition", 9);
        printf("%-11.3f ", json_real_value(json_object_get(c, "dirty_ratio")));
        pc(c, "runs", 12);
        pc(c, "bytes_read", 12);
        pc(c, "bytes_written", 13);
        pc(c, "records_removed", 15);
        pc(c, "clean_end_offset", 16);
        pc(c, "last_clean_ms", 0);
    }
}

static const char status_help[] =
    "Usage: strata storage status [TOPIC]\n"
    "Local and remote (tiered) storage from the admin API: bytes and segments on disk,\n"
    "uploaded offsets, upload lag, remote bytes, cache use, archive compaction (objects\n"
    "rewritten, their bytes before and after). With TOPIC, one row per partition.\n"
    "UNARCHIVED-BYTES and UNARCHIVED-AGE-MS are the unarchived window: durable\n"
    "records not in the archive yet (what losing the disk would lose) and the age of the\n"
    "oldest, kept under strata.archive.max.upload.interval.ms. Remote fields show '-'\n"
    "until tiered storage is running. Compacted topics get a second table: the cleaner's\n"
    "dirty ratio, passes, bytes read and written, records removed, how far the log was\n"
    "cleaned and when.\n\n"
    "Examples:\n"
    "  strata storage status\n"
    "  strata storage status orders --format json\n";

/* GET the storage document of the broker (topic NULL) or of one topic, and print it with
 * `print` (JSON as is with --format json). @return CLI_EXIT_*. */
static int storage_get(const char *topic, void (*print)(json_t *))
{
    char path[1024] = "/v1/storage";
    if (topic) {
        char *esc = curl_easy_escape(NULL, topic, 0);
        if (!esc)
            return cli_err("out of memory");
        snprintf(path, sizeof(path), "/v1/storage/topics/%s", esc);
        curl_free(esc);
    }
    char *body = NULL;
    long st = cli_http_get(path, &body);
    if (st < 0)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    json_error_t jerr;
    json_t *j = json_loads(body, 0, &jerr);
    if (st == 404 && topic) {
        rc = cli_err("unknown topic '%s'", topic);
    } else if (st != 200) {
        rc = cli_http_error(st, "cannot read storage status", body);
    } else if (!j) {
        rc = cli_err("admin API sent invalid JSON for %s: %s", path, jerr.text);
    } else if (cli_opts.is_json) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        puts(s ? s : "{}");
        free(s);
    } else {
        print(j);
    }
    json_decref(j);
    free(body);
    return rc;
}

static int cmd_status(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, status_help);
    if (args_rc >= 0)
        return args_rc;
    if (argc - optind > 1)
        return cli_usage_err("storage status takes at most one TOPIC");
    return optind < argc ? storage_get(argv[optind], print_topic)
                         : storage_get(NULL, print_overview);
}

/* ---- topic describe-storage: one topic, rpk's layout ---- */

static const char describe_storage_help[] =
    "Usage: strata topic describe-storage TOPIC\n"
    "Tiered storage of one topic (like rpk topic describe-storage): a summary of local,\n"
    "archived and not yet archived data, then per partition the offsets where the log\n"
    "starts (archive included), where the local copy starts, how far it is archived and\n"
    "where it ends, with local and remote bytes. Same data as 'strata storage status\n"
    "TOPIC' (admin API); fields print '-' while tiered storage is off for the topic.\n\n"
    "Examples:\n"
    "  strata topic describe-storage orders\n"
    "  strata topic describe-storage orders --format json\n";

static void print_describe_storage(json_t *j)
{
    static const char *const keys[] = {"topic",
                                       "local_bytes",
                                       "remote_bytes",
                                       "remote_segments",
                                       "unarchived_offsets",
                                       "unarchived_bytes",
                                       "upload_lag_bytes",
                                       NULL};
    static const char *const names[] = {"NAME",
                                        "LOCAL-BYTES",
                                        "REMOTE-BYTES",
                                        "REMOTE-SEGMENTS",
                                        "UNARCHIVED-OFFSETS",
                                        "UNARCHIVED-BYTES",
                                        "UPLOAD-LAG-BYTES",
                                        NULL};
    puts("SUMMARY");
    print_kv(j, keys, names);
    static const col_t cols[] = {{"PARTITION", "partition", 10},
                                 {"LOG-START-OFFSET", "log_start_offset", 17},
                                 {"LOCAL-START-OFFSET", "local_start_offset", 19},
                                 {"UPLOADED-OFFSET", "uploaded_offset", 16},
                                 {"END-OFFSET", "end_offset", 11},
                                 {"LOCAL-BYTES", "local_bytes", 12},
                                 {"REMOTE-BYTES", "remote_bytes", 0}};
    puts("\nOFFSETS");
    print_table(json_object_get(j, "partitions"), cols, sizeof(cols) / sizeof(cols[0]));
}

int cli_topic_describe_storage(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, describe_storage_help);
    if (args_rc >= 0)
        return args_rc;
    if (argc - optind != 1)
        return cli_usage_err("topic describe-storage needs exactly one TOPIC");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = storage_get(argv[optind], print_describe_storage);
    curl_global_cleanup();
    return rc;
}

static const char recover_help[] =
    "Usage: strata storage recover\n"
    "Ask the broker to rebuild its remote index from the object store and recreate\n"
    "the archived topics it does not know, with the partition counts and configs\n"
    "kept in the bucket (POST /v1/storage/recover). Runs in the background; the\n"
    "broker logs its progress and outcome.\n\n"
    "Examples:\n"
    "  strata storage recover\n";

static int cmd_recover(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, recover_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc > 1)
        return cli_usage_err("unexpected argument '%s'", argv[1]);
    char *body = NULL;
    long st = cli_http("POST", "/v1/storage/recover", "{}", &body);
    if (st < 0)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    json_t *j = st >= 200 && st <= 299 ? json_loads(body, 0, NULL) : NULL;
    const char *arch = json_string_value(json_object_get(j, "archive"));
    if (st < 200 || st > 299)
        rc = cli_http_error(st, "cannot start recovery", body);
    else if (cli_opts.is_json)
        puts(body);
    else
        printf("Recovery started from %s. It runs in the broker: its log says "
               "'recovery from the archive done' with the objects, partitions and topics "
               "restored; 'strata storage status' shows them.\n",
               arch ? arch : "the archive");
    json_decref(j);
    free(body);
    return rc;
}

static const char storage_help[] = "Usage: strata storage COMMAND\n"
                                   "Tiered storage state of the broker (admin API).\n\n"
                                   "Examples:\n"
                                   "  strata storage status\n"
                                   "  strata storage status orders\n";

static const cli_cmd_t storage_cmds[] = {
    {"status", cmd_status, "local vs remote bytes and offsets, upload lag, cache"},
    {"recover", cmd_recover, "rebuild the remote index and topics from the object store"},
    {NULL, NULL, NULL}};

int cli_storage_main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cli_dispatch("storage", storage_cmds, argc - 1, argv + 1, storage_help);
    curl_global_cleanup();
    return rc;
}
