/* cli_cluster.c - `strata cluster info|health|status|config get|list|set|delete`, and the
 * admin HTTP client shared with cli_storage.c.
 * Data path: info, config get and config list speak the Kafka API (Metadata,
 * DescribeConfigs on the broker resource) through librdkafka; health, status and config
 * set/delete use the admin HTTP API (/v1/status/live, /v1/status/ready, /v1/cluster,
 * PUT /v1/cluster/config) with libcurl and a bounded timeout.
 * Invariants: 1. an unreachable admin API is one clear error and exit 1, never a hang;
 *             2. config set/delete change one key: the broker validates, persists and
 *                applies it (Strata has no dynamic broker configs over Kafka's AlterConfigs). */
#include "tools/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Admin HTTP ---- */

typedef struct {
    char *p;
    size_t len;
} http_buf_t;

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
    http_buf_t *b = opaque;
    size_t add = size * n;
    if (b->len + add > (16u << 20))
        return 0; /* refuse absurd answers */
    char *np = realloc(b->p, b->len + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, data, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

/* One admin API request; `quiet`: no message when it cannot be reached. */
static long http_do(
    const char *method, const char *path, const char *req_body, char **body, int tmo, bool quiet)
{
    *body = NULL;
    CURL *c = curl_easy_init();
    if (!c)
        return cli_err("cannot initialise libcurl"), -1;
    char url[2048];
    size_t base = strlen(cli_opts.admin_url);
    while (base && cli_opts.admin_url[base - 1] == '/')
        base--;
    snprintf(url, sizeof(url), "%.*s%s", (int)base, cli_opts.admin_url, path);
    http_buf_t b = {0};
    struct curl_slist *hdrs = NULL;
    const char *token = getenv("STRATA_ADMIN_TOKEN");
    if (token && *token) {
        char h[1024];
        snprintf(h, sizeof(h), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, h);
    }
    if (req_body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req_body);
    }
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if ((!token || !*token) && cli_opts.user) { /* HTTP Basic against the SCRAM users */
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, cli_opts.user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, cli_opts.password ? cli_opts.password : "");
    }
    if (cli_opts.tls_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, cli_opts.tls_ca);
    if (cli_opts.tls_cert)
        curl_easy_setopt(c, CURLOPT_SSLCERT, cli_opts.tls_cert);
    if (cli_opts.tls_key)
        curl_easy_setopt(c, CURLOPT_SSLKEY, cli_opts.tls_key);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)tmo);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)tmo);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc != CURLE_OK) {
        if (!quiet)
            cli_err("cannot reach the admin API at %s: %s", url,
                    errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(b.p);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        *body = b.p ? b.p : strdup("");
        if (status == 401 && !quiet)
            cli_err("the admin API at %s refused the request (401): set STRATA_ADMIN_TOKEN to "
                    "its bearer token, or --user/--password of a SCRAM user",
                    cli_opts.admin_url);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return status;
}

long cli_http(const char *method, const char *path, const char *req_body, char **body)
{
    return http_do(method, path, req_body, body, cli_opts.timeout_ms, false);
}

long cli_http_probe(const char *path, int timeout_ms, char **body)
{
    return http_do("GET", path, NULL, body, timeout_ms, true);
}

long cli_http_get(const char *path, char **body)
{
    return cli_http("GET", path, NULL, body);
}

int cli_http_error(long status, const char *what, const char *body)
{
    if (status == 401)
        return CLI_EXIT_FAIL; /* already explained */
    json_error_t jerr;
    json_t *j = body ? json_loads(body, 0, &jerr) : NULL;
    json_t *e = j ? json_object_get(j, "error") : NULL;
    json_t *m = j ? json_object_get(j, "message") : NULL;
    json_t *k = j ? json_object_get(j, "key") : NULL;
    if (json_is_object(e)) { /* {"error": {"code", "message", "key"}} */
        m = json_object_get(e, "message");
        k = json_object_get(e, "key");
        e = json_object_get(e, "code");
    }
    cli_err("%s: admin API answered %ld%s%s%s%s%s%s", what, status, json_is_string(e) ? " " : "",
            json_is_string(e) ? json_string_value(e) : "", json_is_string(m) ? ": " : "",
            json_is_string(m) ? json_string_value(m) : "", json_is_string(k) ? " key=" : "",
            json_is_string(k) ? json_string_value(k) : "");
    json_decref(j);
    return status == 501 ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

/* ---- health ---- */

static const char health_help[] =
    "Usage: strata cluster health\n"
    "Ask the admin API whether the broker is live and ready (exit 1 if not).\n\n"
    "Examples:\n"
    "  strata cluster health\n"
    "  strata cluster health --admin-url http://10.0.0.5:9644 --format json\n";

static int cmd_health(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, health_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc > 1)
        return cli_usage_err("unexpected argument '%s'", argv[1]);
    char *body = NULL;
    long live = cli_http_get("/v1/status/live", &body);
    free(body);
    if (live < 0)
        return CLI_EXIT_FAIL;
    long ready = cli_http_get("/v1/status/ready", &body);
    free(body);
    if (ready < 0)
        return CLI_EXIT_FAIL;
    if (live == 404 && ready == 404)
        return cli_err("the admin API at %s has no health endpoints (/v1/status/*)",
                       cli_opts.admin_url);
    bool is_live = live == 200, is_ready = ready == 200;
    if (cli_opts.is_json)
        printf("{\"healthy\":%s,\"live\":%s,\"ready\":%s}\n",
               is_live && is_ready ? "true" : "false", is_live ? "true" : "false",
               is_ready ? "true" : "false");
    else
        printf("Healthy:  %s\nLive:     %s\nReady:    %s\n", is_live && is_ready ? "true" : "false",
               is_live ? "true" : "false", is_ready ? "true" : "false");
    return is_live && is_ready ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- status ---- */

static const char status_help[] =
    "Usage: strata cluster status\n"
    "Show the broker's state from the admin API (GET /v1/cluster): node id, version,\n"
    "listeners, shards, uptime.\n\n"
    "Examples:\n"
    "  strata cluster status\n"
    "  strata cluster status --format json\n";

static void print_json_text(const char *prefix, json_t *v)
{
    const char *key;
    json_t *item;
    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            char name[256];
            snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", key);
            if (json_is_object(item)) {
                print_json_text(name, item);
                continue;
            }
            char *s =
                json_is_string(item)
                    ? NULL
                    : json_dumps(item, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
            printf("%-28s %s\n", name, s ? s : json_string_value(item));
            free(s);
        }
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
        printf("%s\n", s ? s : "");
        free(s);
    }
}

static int cmd_status(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, status_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc > 1)
        return cli_usage_err("unexpected argument '%s'", argv[1]);
    char *body = NULL;
    long st = cli_http_get("/v1/cluster", &body);
    if (st < 0)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    json_error_t jerr;
    json_t *j = json_loads(body, 0, &jerr);
    if (st != 200) {
        rc = cli_http_error(st, "cannot read /v1/cluster", body);
    } else if (!j) {
        rc = cli_err("admin API sent invalid JSON for /v1/cluster: %s", jerr.text);
    } else if (cli_opts.is_json) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        puts(s ? s : "{}");
        free(s);
    } else {
        print_json_text("", j);
    }
    json_decref(j);
    free(body);
    return rc;
}

/* ---- info ---- */

static const char info_help[] = "Usage: strata cluster info\n"
                                "Show the cluster id, controller, brokers and topic count.\n\n"
                                "Examples:\n"
                                "  strata cluster info\n"
                                "  strata --brokers 127.0.0.1:9092 cluster info --format json\n";

static int cmd_info(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv, info_help);
    if (args_rc >= 0)
        return args_rc;
    argc -= optind - 1; /* the arguments follow argv[0] again */
    argv += optind - 1;
    if (argc > 1)
        return cli_usage_err("unexpected argument '%s'", argv[1]);
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    char *cid = rd_kafka_clusterid(rk, cli_opts.timeout_ms);
    int32_t ctrl = rd_kafka_controllerid(rk, cli_opts.timeout_ms);
    int n_user = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strncmp(md->topics[i].topic, "__", 2))
            n_user++;
    if (cli_opts.is_json) {
        fputs("{\"cluster_id\":", stdout);
        cli_json_cstr(stdout, cid);
        printf(",\"controller_id\":%d,\"brokers\":[", (int)ctrl);
        for (int i = 0; i < md->broker_cnt; i++) {
            printf("%s{\"id\":%d,\"host\":", i ? "," : "", (int)md->brokers[i].id);
            cli_json_cstr(stdout, md->brokers[i].host);
            printf(",\"port\":%d}", md->brokers[i].port);
        }
        printf("],\"topics\":%d}\n", n_user);
    } else {
        printf("CLUSTER\n%-12s %s\n%-12s %d\n%-12s %d\n\nBROKERS\n%-6s %-30s %s\n", "ID",
               cid ? cid : "-", "CONTROLLER", (int)ctrl, "TOPICS", n_user, "ID", "HOST", "PORT");
        for (int i = 0; i < md->broker_cnt; i++) {
            char id[16];
            snprintf(id, sizeof(id), "%d%s", (int)md->brokers[i].id,
                     md->brokers[i].id == ctrl ? "*" : "");
            printf("%-6s %-30s %d\n", id, md->brokers[i].host, md->brokers[i].port);
        }
    }
    free(cid);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return CLI_EXIT_OK;
}

/* ---- partitions ---- */

static const char partitions_help[] =
    "Usage: strata cluster partitions [TOPIC...] [-r] [-i]\n"
    "List partitions with their leader, replicas and in-sync replicas (Metadata), for\n"
    "every topic or the ones named (regular expressions with -r).\n\n"
    "Flags:\n"
    "  -r, --regex      the arguments are regular expressions matching whole names\n"
    "  -i, --internal   also internal topics (__*)\n\n"
    "Examples:\n"
    "  strata cluster partitions\n"
    "  strata cluster partitions -r 'ord.*' --format json\n";

static int cmp_md_part(const void *a, const void *b)
{
    const rd_kafka_metadata_partition_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* "1,2,3" of n broker ids into buf. */
static const char *ids_text(const int32_t *ids, int n, char *buf, size_t cap, bool json)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 16 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", (int)ids[i]);
    if (!n && !json)
        snprintf(buf, cap, "-");
    return buf;
}

static int cmd_partitions(int argc, char **argv)
{
    static const struct option longs[] = {{"regex", no_argument, NULL, 'r'},
                                          {"internal", no_argument, NULL, 'i'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    bool is_regex = false, internal = false;
    int c;
    while ((c = cli_getopt(argc, argv, "rih", longs)) != -1) {
        if (c == 'r')
            is_regex = true;
        else if (c == 'i')
            internal = true;
        else if (c == 'h')
            return fputs(partitions_help, stdout), CLI_EXIT_OK;
        else
            return CLI_EXIT_USAGE;
    }
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    const rd_kafka_metadata_topic_t **ts = NULL;
    int n = md ? cli_select_topics(md, argv + optind, argc - optind, is_regex, internal, &ts) : -1;
    if (n >= 0) {
        if (cli_opts.is_json)
            putchar('[');
        else
            printf("%-30s %-9s %-6s %-16s %s\n", "TOPIC", "PARTITION", "LEADER", "REPLICAS",
                   "IN-SYNC");
        bool first = true;
        for (int i = 0; i < n; i++) {
            rd_kafka_metadata_topic_t *t = (rd_kafka_metadata_topic_t *)ts[i];
            if (t->partition_cnt > 1)
                qsort(t->partitions, (size_t)t->partition_cnt, sizeof(*t->partitions), cmp_md_part);
            for (int k = 0; k < t->partition_cnt; k++) {
                const rd_kafka_metadata_partition_t *p = &t->partitions[k];
                char reps[256], isr[256];
                ids_text(p->replicas, p->replica_cnt, reps, sizeof(reps), cli_opts.is_json);
                ids_text(p->isrs, p->isr_cnt, isr, sizeof(isr), cli_opts.is_json);
                if (cli_opts.is_json) {
                    printf("%s{\"topic\":", first ? "" : ",");
                    cli_json_cstr(stdout, t->topic);
                    printf(",\"partition\":%d,\"leader\":%d,\"replicas\":[%s],"
                           "\"in_sync\":[%s]}",
                           (int)p->id, (int)p->leader, reps, isr);
                } else {
                    printf("%-30s %-9d %-6d %-16s %s\n", t->topic, (int)p->id, (int)p->leader, reps,
                           isr);
                }
                first = false;
            }
        }
        if (cli_opts.is_json)
            puts("]");
    }
    free(ts);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return n < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- config get|set|list ---- */

static const char config_help[] =
    "Usage: strata cluster config get KEY | list [--node ID] | set KEY VALUE | delete KEY\n"
    "       strata cluster config export [--file FILE] | import --file FILE | edit\n"
    "get and list read the running broker configuration over the Kafka API\n"
    "(DescribeConfigs on the broker resource). set and delete go through the admin API\n"
    "(PUT /v1/cluster/config): the broker validates the value, persists it and applies it\n"
    "at once (keys that are not reloadable are refused: set them in the config file).\n\n"
    "export writes every config 'set' can change as KEY: VALUE lines (stdout or --file);\n"
    "import sets the keys of such a file whose value differs, in one request, and returns\n"
    "to its default every key set through the admin API that the file does not name;\n"
    "edit exports to a temporary file, opens $EDITOR (vi) and imports what you save.\n\n"
    "Flags:\n"
    "  --node ID     broker to ask (default: the first broker in metadata)\n"
    "  --file FILE   export: write FILE; import: read FILE (- is stdin)\n\n"
    "Examples:\n"
    "  strata cluster config list\n"
    "  strata cluster config get log.retention.ms\n"
    "  strata cluster config set log.retention.ms 86400000\n"
    "  strata cluster config delete log.retention.ms\n"
    "  strata cluster config export --file cluster.yaml\n"
    "  strata cluster config import --file cluster.yaml\n";

/* Broker resource name: --node or the first broker of metadata. @return 0 or CLI_EXIT_*. */
static int broker_name(rd_kafka_t *rk, int64_t node, char *out, size_t cap)
{
    if (node >= 0) {
        snprintf(out, cap, "%" PRId64, node);
        return 0;
    }
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md)
        return CLI_EXIT_FAIL;
    int rc = 0;
    if (md->broker_cnt < 1)
        rc = cli_err("the cluster reported no brokers");
    else
        snprintf(out, cap, "%d", (int)md->brokers[0].id);
    rd_kafka_metadata_destroy(md);
    return rc;
}

static void print_entry(const rd_kafka_ConfigEntry_t *e, bool first)
{
    const char *val =
        rd_kafka_ConfigEntry_is_sensitive(e) ? "(sensitive)" : rd_kafka_ConfigEntry_value(e);
    const char *src = cli_config_source_name(rd_kafka_ConfigEntry_source(e));
    if (cli_opts.is_json) {
        printf("%s{\"key\":", first ? "" : ",");
        cli_json_cstr(stdout, rd_kafka_ConfigEntry_name(e));
        fputs(",\"value\":", stdout);
        cli_json_cstr(stdout, val);
        printf(",\"source\":\"%s\",\"read_only\":%s}", src,
               rd_kafka_ConfigEntry_is_read_only(e) ? "true" : "false");
    } else {
        printf("%-44s %-30s %s\n", rd_kafka_ConfigEntry_name(e), val ? val : "-", src);
    }
}

/* Whether the array member `list` of j holds the string key. */
static bool lists_key(json_t *j, const char *list, const char *key)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, list), i, it)
    {
        if (json_is_string(it) && !strcmp(json_string_value(it), key))
            return true;
    }
    return false;
}

/* Set or remove one key through PUT /v1/cluster/config (validated and persisted by the
 * broker). The Kafka API cannot do it: Strata has no dynamic broker configs. */
static int config_put(const char *key, const char *val)
{
    json_t *req =
        val ? json_pack("{s:{s:s}}", "upsert", key, val) : json_pack("{s:[s]}", "remove", key);
    char *req_s = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!req_s)
        return cli_err("out of memory");
    char *body = NULL;
    long st = cli_http("PUT", "/v1/cluster/config", req_s, &body);
    free(req_s);
    if (st < 0)
        return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    char what[300];
    snprintf(what, sizeof(what), "cannot %s %s", val ? "set" : "remove", key);
    json_error_t jerr;
    json_t *j = json_loads(body, 0, &jerr);
    if (st != 200) {
        rc = cli_http_error(st, what, body);
    } else if (!j) {
        rc = cli_err("%s: admin API sent invalid JSON: %s", what, jerr.text);
    } else {
        bool now = lists_key(j, "applied", key), shadowed = lists_key(j, "shadowed", key);
        const char *how = now        ? "persisted and in effect now"
                          : shadowed ? "persisted, but the environment or a flag sets it and "
                                       "wins (now and after a restart)"
                                     : "persisted, takes effect when the broker restarts";
        if (cli_opts.is_json) {
            fputs("{\"key\":", stdout);
            cli_json_cstr(stdout, key);
            fputs(",\"value\":", stdout);
            cli_json_cstr(stdout, val);
            printf(",\"applied\":%s,\"restart_required\":%s,\"shadowed\":%s}\n",
                   now ? "true" : "false", now || shadowed ? "false" : "true",
                   shadowed ? "true" : "false");
        } else if (val) {
            printf("Set %s=%s: %s\n", key, val, how);
        } else {
            printf("Removed %s: %s\n", key, how);
        }
    }
    json_decref(j);
    free(body);
    return rc;
}

/* ---- config export | import | edit ---- */

/* A broker config a file may set: the admin API changes it (not read-only), not a secret. */
static bool is_settable(const rd_kafka_ConfigEntry_t *e)
{
    return !rd_kafka_ConfigEntry_is_read_only(e) && !rd_kafka_ConfigEntry_is_sensitive(e);
}

/* Write "key: value" for every settable config. @return 0 or CLI_EXIT_FAIL. */
static int config_export(const rd_kafka_ConfigEntry_t **es, size_t n, FILE *f)
{
    fputs("# strata cluster config export: the broker configs 'strata cluster config set'\n"
          "# changes. Edit, then 'strata cluster config import --file FILE' applies the\n"
          "# changed keys; a key set through the admin API that the file drops goes back\n"
          "# to its default.\n",
          f);
    for (size_t i = 0; i < n; i++)
        if (is_settable(es[i])) {
            const char *v = rd_kafka_ConfigEntry_value(es[i]);
            fprintf(f, "%s: %s\n", rd_kafka_ConfigEntry_name(es[i]), v && *v ? v : "\"\"");
        }
    return ferror(f) ? cli_err("cannot write the export: %s", strerror(errno)) : 0;
}

static char *trim_ws(char *s)
{
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1]))
        s[--n] = '\0';
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Apply a "key: value" file: upsert the keys whose value differs, remove the keys set
 * through the admin API (dynamic) that the file does not name. @return CLI_EXIT_*. */
static int config_import(const rd_kafka_ConfigEntry_t **es, size_t n, const char *file)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!f)
        return cli_err("cannot read %s: %s", file, strerror(errno));
    json_t *upsert = json_object(), *remove = json_array(), *named = json_object();
    char line[4096];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof(line), f)) {
        lineno++;
        char *l = trim_ws(line);
        if (!*l || *l == '#')
            continue;
        char *colon = strchr(l, ':');
        if (!colon) {
            rc = cli_usage_err("%s:%d: expected KEY: VALUE", file, lineno);
            break;
        }
        *colon = '\0';
        char *key = trim_ws(l), *val = trim_ws(colon + 1);
        const rd_kafka_ConfigEntry_t *e = NULL;
        for (size_t i = 0; i < n && !e; i++)
            if (!strcmp(rd_kafka_ConfigEntry_name(es[i]), key))
                e = es[i];
        if (!e)
            rc = cli_usage_err("%s:%d: unknown broker config '%s'", file, lineno, key);
        else if (!is_settable(e))
            rc = cli_usage_err("%s:%d: %s cannot be set through the admin API (read-only or "
                               "secret): set it in the broker's config file",
                               file, lineno, key);
        if (rc)
            break;
        json_object_set_new(named, key, json_true());
        const char *cur = rd_kafka_ConfigEntry_value(e);
        if (strcmp(cur ? cur : "", val))
            json_object_set_new(upsert, key, json_string(val));
    }
    if (f != stdin)
        fclose(f);
    for (size_t i = 0; !rc && i < n; i++) {
        const char *k = rd_kafka_ConfigEntry_name(es[i]);
        if (is_settable(es[i]) && !json_object_get(named, k) &&
            rd_kafka_ConfigEntry_source(es[i]) ==
                RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG)
            json_array_append_new(remove, json_string(k));
    }
    json_t *req = json_object();
    if (json_object_size(upsert))
        json_object_set(req, "upsert", upsert);
    if (json_array_size(remove))
        json_object_set(req, "remove", remove);
    char *body = NULL;
    if (!rc && !json_object_size(req)) {
        if (cli_opts.is_json)
            puts("{\"applied\":[],\"restart_required\":[],\"shadowed\":[],\"removed\":[]}");
        else
            puts("No changes");
    } else if (!rc) {
        char *req_s = json_dumps(req, JSON_COMPACT);
        long st = req_s ? cli_http("PUT", "/v1/cluster/config", req_s, &body) : -1;
        free(req_s);
        json_t *j = st == 200 ? json_loads(body, 0, NULL) : NULL;
        if (st < 0) {
            rc = CLI_EXIT_FAIL;
        } else if (st != 200) {
            rc = cli_http_error(st, "cannot import the configs", body);
        } else if (cli_opts.is_json) {
            json_object_set(j, "removed", remove);
            char *out = json_dumps(j, JSON_COMPACT);
            puts(out ? out : "{}");
            free(out);
        } else {
            const char *key;
            json_t *v;
            json_object_foreach(upsert, key, v)
            {
                printf("Set %s=%s: %s\n", key, json_string_value(v),
                       lists_key(j, "applied", key)    ? "in effect now"
                       : lists_key(j, "shadowed", key) ? "persisted, but the environment or a "
                                                         "flag sets it and wins"
                                                       : "persisted, takes effect when the "
                                                         "broker restarts");
            }
            size_t i;
            json_array_foreach(remove, i, v)
            {
                printf("Removed %s (back to its default)\n", json_string_value(v));
            }
        }
        json_decref(j);
    }
    free(body);
    json_decref(req);
    json_decref(upsert);
    json_decref(remove);
    json_decref(named);
    return rc;
}

/* export to a temporary file, run $EDITOR (vi) on it, import it. */
static int config_edit(const rd_kafka_ConfigEntry_t **es, size_t n)
{
    char path[] = "/tmp/strata-config-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return cli_err("cannot create a temporary file: %s", strerror(errno));
    int rc = config_export(es, n, f);
    fclose(f);
    const char *ed = getenv("EDITOR");
    char cmd[PATH_MAX + 256];
    snprintf(cmd, sizeof(cmd), "%s '%s'", ed && *ed ? ed : "vi", path);
    if (!rc && system(cmd) != 0)
        rc = cli_err("the editor (%s) failed: nothing imported", ed && *ed ? ed : "vi");
    if (!rc)
        rc = config_import(es, n, path);
    unlink(path);
    return rc;
}

static int cmd_config(int argc, char **argv)
{
    static const struct option longs[] = {{"node", required_argument, NULL, 'n'},
                                          {"file", required_argument, NULL, 'F'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int64_t node = -1;
    const char *file = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, "h", longs)) != -1) {
        if (c == 'F') {
            file = optarg;
        } else if (c == 'n') {
            if (cli_parse_i64(optarg, 0, INT32_MAX, &node))
                return cli_usage_err("bad --node '%s': use a broker id", optarg);
        } else if (c == 'h') {
            fputs(config_help, stdout);
            return CLI_EXIT_OK;
        } else {
            return CLI_EXIT_USAGE;
        }
    }
    int n = argc - optind;
    const char *verb = n ? argv[optind] : "";
    if (!(!strcmp(verb, "list") && n == 1) && !(!strcmp(verb, "get") && n == 2) &&
        !(!strcmp(verb, "set") && n == 3) && !(!strcmp(verb, "delete") && n == 2) &&
        !(!strcmp(verb, "export") && n == 1) && !(!strcmp(verb, "import") && n == 1) &&
        !(!strcmp(verb, "edit") && n == 1))
        return cli_usage_err("use 'strata cluster config get KEY', 'set KEY VALUE', "
                             "'delete KEY', 'list', 'export', 'import --file FILE' or 'edit'");
    if (file && strcmp(verb, "export") && strcmp(verb, "import"))
        return cli_usage_err("--file goes with export and import");
    if (!strcmp(verb, "import") && !file)
        return cli_usage_err("import needs --file FILE (- reads stdin)");
    if (!strcmp(verb, "set") || !strcmp(verb, "delete"))
        return config_put(argv[optind + 1], n == 3 ? argv[optind + 2] : NULL);
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    char name[32];
    int rc = broker_name(rk, node, name, sizeof(name));
    const rd_kafka_ConfigResource_t *cur = NULL;
    rd_kafka_event_t *ev = NULL;
    if (rc || !(ev = cli_describe_configs(rk, RD_KAFKA_RESOURCE_BROKER, name, &cur))) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    size_t cnt;
    const rd_kafka_ConfigEntry_t **es = rd_kafka_ConfigResource_configs(cur, &cnt);
    if (!strcmp(verb, "export")) {
        FILE *f = file && strcmp(file, "-") ? fopen(file, "w") : stdout;
        if (!f) {
            rc = cli_err("cannot write %s: %s", file, strerror(errno));
        } else {
            rc = config_export(es, cnt, f);
            if (f != stdout && fclose(f) && !rc)
                rc = cli_err("cannot write %s: %s", file, strerror(errno));
        }
    } else if (!strcmp(verb, "import")) {
        rc = config_import(es, cnt, file);
    } else if (!strcmp(verb, "edit")) {
        rc = config_edit(es, cnt);
    } else if (!strcmp(verb, "list")) {
        if (cli_opts.is_json)
            putchar('[');
        else
            printf("%-44s %-30s %s\n", "KEY", "VALUE", "SOURCE");
        for (size_t i = 0; i < cnt; i++)
            print_entry(es[i], i == 0);
        if (cli_opts.is_json)
            puts("]");
    } else if (!strcmp(verb, "get")) {
        const rd_kafka_ConfigEntry_t *e = NULL;
        for (size_t i = 0; i < cnt && !e; i++)
            if (!strcmp(rd_kafka_ConfigEntry_name(es[i]), argv[optind + 1]))
                e = es[i];
        if (!e) {
            rc = cli_err("unknown broker config '%s'", argv[optind + 1]);
        } else if (cli_opts.is_json) {
            print_entry(e, true);
            putchar('\n');
        } else {
            const char *v = rd_kafka_ConfigEntry_value(e);
            puts(rd_kafka_ConfigEntry_is_sensitive(e) ? "(sensitive)" : (v ? v : ""));
        }
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Family ---- */

static const char cluster_help[] = "Usage: strata cluster COMMAND [flags]\n"
                                   "Inspect and configure the cluster.\n\n"
                                   "Examples:\n"
                                   "  strata cluster info\n"
                                   "  strata cluster health\n"
                                   "  strata cluster config get log.retention.ms\n";

static const cli_cmd_t cluster_cmds[] = {
    {"info", cmd_info, "cluster id, controller, brokers (Kafka API)"},
    {"metadata", cmd_info, "the same as info (rpk cluster metadata)"},
    {"partitions", cmd_partitions, "partitions with leaders, replicas, in-sync replicas"},
    {"health", cmd_health, "is the broker live and ready (admin API)"},
    {"status", cmd_status, "broker state: version, listeners, shards, uptime (admin API)"},
    {"config", cmd_config, "get, set or list broker configuration (Kafka API)"},
    {NULL, NULL, NULL}};

int cli_cluster_main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cli_dispatch("cluster", cluster_cmds, argc - 1, argv + 1, cluster_help);
    curl_global_cleanup();
    return rc;
}
