/* cli_common.c - errors, JSON output, argument parsing and librdkafka plumbing shared by
 * every `strata` command.
 * Data path: none of the broker's; commands build one librdkafka client here
 * (cli_client_new), check the cluster is reachable within cli_opts.timeout_ms
 * (cli_metadata) and wait for admin results on a private queue (cli_admin_wait).
 * Invariants: 1. librdkafka never logs to the terminal unless -v is given; its last error
 *                is kept and shown when the cluster cannot be reached;
 *             2. every blocking call is bounded by cli_opts.timeout_ms. */
#include "tools/cli.h"

#include "core/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

cli_opts_t cli_opts;

static char cli_last_error[512];

#define CLI_SLICE_MS 100 /* how often a wait checks that the cluster is reachable at all */

/* ---- Errors and output ---- */

char cli_cmd_path[128] = "strata";

/* One error line on stderr: "strata: message", or with --format json one JSON object
 * {"error":"message","exit_code":N} so that scripts parse stdout and stderr alike. */
static void vreport(int code, const char *fmt, va_list ap)
{
    fflush(stdout);
    if (cli_opts.is_json) {
        char msg[2048];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        fputs("{\"error\":", stderr);
        cli_json_cstr(stderr, msg);
        fprintf(stderr, ",\"exit_code\":%d}\n", code);
        return;
    }
    fputs("strata: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (code == CLI_EXIT_USAGE)
        fputs("Run with --help for usage.\n", stderr);
}

int cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(CLI_EXIT_FAIL, fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    if (cli_opts.is_json) {
        char msg[2048];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        fputs("{\"warning\":", stderr);
        cli_json_cstr(stderr, msg);
        fputs("}\n", stderr);
    } else {
        fputs("strata: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

int cli_usage_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(CLI_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/* Length of the valid UTF-8 sequence at s (0 if invalid or truncated). */
static size_t utf8_len(const char *s, size_t avail)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n;
    uint32_t cp;
    if (u[0] >= 0xc2 && u[0] <= 0xdf) {
        n = 2;
        cp = u[0] & 0x1fu;
    } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
        n = 3;
        cp = u[0] & 0x0fu;
    } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        n = 4;
        cp = u[0] & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((u[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (u[k] & 0x3fu);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

void cli_json_str(FILE *f, const char *s, size_t len)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                fprintf(f, "\\u%04x", c);
            } else if (c < 0x80) {
                fputc(c, f);
            } else {
                size_t n = utf8_len(s + i, len - i);
                if (n) { /* a valid sequence goes out as is */
                    fwrite(s + i, 1, n, f);
                    i += n - 1;
                } else { /* a stray byte becomes the code point of the same value */
                    fprintf(f, "\\u%04x", c);
                }
            }
        }
    }
    fputc('"', f);
}

void cli_json_cstr(FILE *f, const char *s)
{
    cli_json_str(f, s, s ? strlen(s) : 0);
}

/* A negative number where a flag was expected: a value that belongs after "--". */
static bool is_negative_number(const char *a)
{
    if (a[0] != '-' || !isdigit((unsigned char)a[1]))
        return false;
    for (a++; *a; a++)
        if (!isdigit((unsigned char)*a) && *a != '.')
            return false;
    return true;
}

int cli_getopt(int argc, char **argv, const char *shorts, const struct option *longs)
{
    char sh[96];
    /* ':' first (after GNU's '+'/'-'): a missing value returns ':' instead of '?'. */
    if (shorts[0] == '+' || shorts[0] == '-')
        snprintf(sh, sizeof(sh), "%c:%s", shorts[0], shorts + 1);
    else
        snprintf(sh, sizeof(sh), ":%s", shorts);
    opterr = 0;
    int prev = optind ? optind : 1;
    int c = getopt_long(argc, argv, sh, longs, NULL);
    if (c != '?' && c != ':')
        return c;
    /* The offending word: the one getopt just stepped over, or the current one while it is
     * still inside a cluster of short flags. */
    const char *word = optind > prev && optind - 1 < argc ? argv[optind - 1] : argv[prev];
    if (isdigit(optopt) && optind < argc && is_negative_number(argv[optind]))
        word = argv[optind]; /* "-15": getopt stopped inside it */
    char shortf[3] = {'-', (char)optopt, '\0'};
    bool is_long = word && word[0] == '-' && word[1] == '-';
    const char *flag = is_long || !optopt ? word : shortf;
    if (is_long && !strncmp(word, "--format", 8) && (!word[8] || word[8] == '='))
        cli_usage_err("bad --format '%s': '%s' prints text or json",
                      word[8]         ? word + 9
                      : optind < argc ? argv[optind]
                                      : "",
                      cli_cmd_path);
    else if (c == ':')
        cli_usage_err("flag %s of '%s' needs a value", flag, cli_cmd_path);
    else if (!is_long && word && is_negative_number(word))
        cli_usage_err("'%s' looks like a flag to '%s': put values that start with '-' "
                      "after --",
                      word, cli_cmd_path);
    else if (is_long && optopt)
        cli_usage_err("flag %s of '%s' takes no value", flag, cli_cmd_path);
    else
        cli_usage_err("unknown flag '%s' for '%s'", flag, cli_cmd_path);
    return '?';
}

int cli_args_only(int argc, char **argv, const char *help)
{
    static const struct option longs[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = cli_getopt(argc, argv, "h", longs)) != -1) {
        if (c != 'h')
            return CLI_EXIT_USAGE;
        fputs(help, stdout);
        return CLI_EXIT_OK;
    }
    return -1;
}

int cli_dispatch(const char *family, const cli_cmd_t *cmds, int argc, char **argv, const char *help)
{
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help") ||
        !strcmp(argv[0], "help")) {
        fputs(help, stdout);
        fputs("\nCommands:\n", stdout);
        for (const cli_cmd_t *c = cmds; c->name; c++)
            printf("  %-16s %s\n", c->name, c->summary);
        printf("\nRun 'strata %s COMMAND --help' for a command's flags and examples.\n", family);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    for (const cli_cmd_t *c = cmds; c->name; c++)
        if (!strcmp(argv[0], c->name)) {
            optind = 0; /* glibc: full reinitialisation for the command's getopt */
            size_t len = strlen(cli_cmd_path);
            snprintf(cli_cmd_path + len, sizeof(cli_cmd_path) - len, " %s", c->name);
            return c->run(argc, argv);
        }
    return cli_usage_err("unknown command 'strata %s %s'", family, argv[0]);
}

/* ---- Parsing helpers ---- */

int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_duration_ms(const char *s, int64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0)
        return -1;
    int64_t mul;
    if (!*end || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else
        return -1;
    if (v > INT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int cli_split_kv(char *s, char **key, char **val)
{
    char *eq = strchr(s, '=');
    if (!eq || eq == s)
        return -1;
    *eq = '\0';
    *key = s;
    *val = eq + 1;
    return 0;
}

int cli_parse_partitions(const char *s, int32_t *out, int n)
{
    int count = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return -1;
        if (count == n)
            return -1;
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p)
            return -1;
    }
    return count ? count : -1;
}

void cli_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '\\' || !r[1]) {
            *w++ = *r;
            continue;
        }
        r++;
        switch (*r) {
        case 'n':
            *w++ = '\n';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case '\\':
            *w++ = '\\';
            break;
        default:
            *w++ = '\\';
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* ---- librdkafka clients ---- */

/* Connection failures of the bootstrap brokers, seen by log_cb on librdkafka's threads:
 * once every bootstrap broker has failed to connect (refused, unresolvable, TLS or SASL
 * failure) the CLI stops waiting and shows the cause instead of timing out. */
#define CLI_MAX_BOOT  16
#define CLI_MAX_ADDRS 8
struct boot_fail {
    char name[128];
    int n_addrs;  /* addresses the name resolves to */
    int n_failed; /* distinct addresses refused */
    char failed[CLI_MAX_ADDRS][64];
    bool is_hard; /* unresolvable, TLS or SASL: no address helps */
};
static pthread_mutex_t boot_mu = PTHREAD_MUTEX_INITIALIZER;
static struct boot_fail boot_failed[CLI_MAX_BOOT];
static int n_boot_failed;
static char boot_cause[512];

/* How many addresses `name` ("[proto://]host:port") resolves to: librdkafka tries each in
 * turn, so a name has failed only when all of them refused ("localhost" is ::1 and
 * 127.0.0.1 on many machines). */
static int name_addrs(const char *name)
{
    const char *hp = strstr(name, "://");
    char host[128];
    int port;
    if (cfg_parse_hostport(hp ? hp + 3 : name, host, sizeof(host), &port) != 0)
        return 1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return 1;
    int n = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        n++;
    freeaddrinfo(res);
    return n < 1 ? 1 : n > CLI_MAX_ADDRS ? CLI_MAX_ADDRS : n;
}

static void note_connect_failure(const char *buf)
{
    const char *sep = strstr(buf, "/bootstrap: ");
    if (!sep)
        return;
    const char *name = strstr(buf, "]: ");
    name = name && name < sep ? name + 3 : buf;
    const char *cause = sep + strlen("/bootstrap: ");
    if (!strncmp(cause, "Disconnected", 12))
        return; /* an idle or closed connection that had worked */
    size_t name_len = (size_t)(sep - name), cause_len = strlen(cause);
    const char *after = strstr(cause, " (after ");
    if (after)
        cause_len = (size_t)(after - cause);
    /* "Connect to ipv6#[::1]:9092 failed: ..." names one address of the broker. */
    char addr[64] = "";
    if (!strncmp(cause, "Connect to ", 11)) {
        const char *end = strstr(cause + 11, " failed");
        if (end && (size_t)(end - cause - 11) < sizeof(addr))
            snprintf(addr, sizeof(addr), "%.*s", (int)(end - cause - 11), cause + 11);
    }
    char nm[128];
    snprintf(nm, sizeof(nm), "%.*s", (int)name_len, name);
    int n_addrs = addr[0] ? name_addrs(nm) : 1;
    pthread_mutex_lock(&boot_mu);
    snprintf(boot_cause, sizeof(boot_cause), "%.*s", (int)cause_len, cause);
    struct boot_fail *bf = NULL;
    for (int i = 0; i < n_boot_failed && !bf; i++)
        if (!strcmp(boot_failed[i].name, nm))
            bf = &boot_failed[i];
    if (!bf && n_boot_failed < CLI_MAX_BOOT) {
        bf = &boot_failed[n_boot_failed++];
        snprintf(bf->name, sizeof(bf->name), "%s", nm);
        bf->n_addrs = n_addrs;
    }
    if (bf && !addr[0]) {
        bf->is_hard = true;
    } else if (bf) {
        bool seen = false;
        for (int i = 0; i < bf->n_failed && !seen; i++)
            seen = !strcmp(bf->failed[i], addr);
        if (!seen && bf->n_failed < CLI_MAX_ADDRS)
            snprintf(bf->failed[bf->n_failed++], sizeof(bf->failed[0]), "%s", addr);
    }
    pthread_mutex_unlock(&boot_mu);
}

/* Whether every bootstrap broker failed on all its addresses; the cause is copied to `why`. */
static bool all_bootstrap_failed(char *why, size_t cap)
{
    int n_boot = 1;
    for (const char *p = cli_opts.brokers; *p; p++)
        n_boot += *p == ',';
    pthread_mutex_lock(&boot_mu);
    int n_dead = 0;
    for (int i = 0; i < n_boot_failed; i++)
        n_dead += boot_failed[i].is_hard || boot_failed[i].n_failed >= boot_failed[i].n_addrs;
    bool all = n_dead >= n_boot || n_dead == CLI_MAX_BOOT;
    snprintf(why, cap, "%s", boot_cause);
    pthread_mutex_unlock(&boot_mu);
    return all;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 4 && !strcmp(fac, "FAIL"))
        note_connect_failure(buf);
    if (cli_opts.is_verbose)
        fprintf(stderr, "rdkafka %d %s: %s\n", level, fac, buf);
}

bool cli_unreachable(void)
{
    char why[512];
    if (!all_bootstrap_failed(why, sizeof(why)))
        return false;
    cli_err("cannot reach the cluster at %s: %s", cli_opts.brokers, why);
    return true;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    snprintf(cli_last_error, sizeof(cli_last_error), "%s", reason);
    if (cli_opts.is_verbose)
        fprintf(stderr, "rdkafka error: %s\n", reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, key, val, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        cli_err("bad client setting %s=%s: %s", key, val, errstr);
        return -1;
    }
    return 0;
}

/* security.protocol and its settings from cli_opts (-X may still override them). */
static int security_conf(rd_kafka_conf_t *conf)
{
    bool sasl = cli_opts.user || cli_opts.sasl_mechanism;
    const char *proto =
        cli_opts.is_tls ? (sasl ? "SASL_SSL" : "SSL") : (sasl ? "SASL_PLAINTEXT" : "PLAINTEXT");
    if (conf_set(conf, "security.protocol", proto))
        return -1;
    if (sasl && (conf_set(conf, "sasl.mechanisms",
                          cli_opts.sasl_mechanism ? cli_opts.sasl_mechanism : "SCRAM-SHA-256") ||
                 (cli_opts.user && conf_set(conf, "sasl.username", cli_opts.user)) ||
                 (cli_opts.password && conf_set(conf, "sasl.password", cli_opts.password))))
        return -1;
    if ((cli_opts.tls_ca && conf_set(conf, "ssl.ca.location", cli_opts.tls_ca)) ||
        (cli_opts.tls_cert && conf_set(conf, "ssl.certificate.location", cli_opts.tls_cert)) ||
        (cli_opts.tls_key && conf_set(conf, "ssl.key.location", cli_opts.tls_key)))
        return -1;
    return 0;
}

rd_kafka_conf_t *cli_conf_new(const char *const *extra)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%d", cli_opts.timeout_ms < 300000 ? cli_opts.timeout_ms : 300000);
    if (conf_set(conf, "bootstrap.servers", cli_opts.brokers) ||
        conf_set(conf, "client.id", "strata-cli") || conf_set(conf, "socket.timeout.ms", tmo) ||
        security_conf(conf))
        goto fail;
    for (int i = 0; extra && extra[i]; i += 2)
        if (conf_set(conf, extra[i], extra[i + 1]))
            goto fail;
    for (int i = 0; i < cli_opts.n_x; i++)
        if (conf_set(conf, cli_opts.x_keys[i], cli_opts.x_vals[i]))
            goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *cli_client_from_conf(rd_kafka_type_t type, rd_kafka_conf_t *conf_owned)
{
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf_owned, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf_owned);
        cli_err("cannot create Kafka client: %s", errstr);
        return NULL;
    }
    return rk;
}

rd_kafka_t *cli_client_new(rd_kafka_type_t type, const char *const *extra)
{
    rd_kafka_conf_t *conf = cli_conf_new(extra);
    return conf ? cli_client_from_conf(type, conf) : NULL;
}

const rd_kafka_metadata_t *cli_metadata(rd_kafka_t *rk)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    /* Short slices, so that a refused or unresolvable broker fails at once. */
    for (int waited = 0; waited < cli_opts.timeout_ms; waited += CLI_SLICE_MS) {
        int slice = cli_opts.timeout_ms - waited < CLI_SLICE_MS ? cli_opts.timeout_ms - waited
                                                                : CLI_SLICE_MS;
        err = rd_kafka_metadata(rk, 1, NULL, &md, slice);
        if (!err)
            return md;
        if (cli_unreachable())
            return NULL;
    }
    if (err) {
        cli_err("cannot reach the cluster at %s: %s%s%s (timeout %d ms)", cli_opts.brokers,
                rd_kafka_err2str(err), cli_last_error[0] ? ": " : "", cli_last_error,
                cli_opts.timeout_ms);
        return NULL;
    }
    return md;
}

rd_kafka_t *cli_connect_checked(void)
{
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return NULL;
    const rd_kafka_metadata_t *md = cli_metadata(rk);
    if (!md) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_metadata_destroy(md);
    return rk;
}

const rd_kafka_metadata_topic_t *cli_md_topic(const rd_kafka_metadata_t *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, name))
            return md->topics[i].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? NULL
                                                                                : &md->topics[i];
    return NULL;
}

rd_kafka_AdminOptions_t *cli_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t api)
{
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, api);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(o, cli_opts.timeout_ms, errstr, sizeof(errstr));
    if (api == RD_KAFKA_ADMIN_OP_CREATETOPICS || api == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
        api == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS || api == RD_KAFKA_ADMIN_OP_DELETERECORDS)
        rd_kafka_AdminOptions_set_operation_timeout(o, cli_opts.timeout_ms, errstr, sizeof(errstr));
    return o;
}

rd_kafka_event_t *cli_admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t ev_type)
{
    rd_kafka_event_t *ev = NULL;
    for (int waited = 0; !ev && waited < cli_opts.timeout_ms + 2000; waited += CLI_SLICE_MS) {
        ev = rd_kafka_queue_poll(q, CLI_SLICE_MS);
        if (!ev && cli_unreachable())
            return NULL;
    }
    if (!ev) {
        cli_err("no answer from the cluster at %s within %d ms", cli_opts.brokers,
                cli_opts.timeout_ms);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != ev_type || rd_kafka_event_error(ev)) {
        const char *why =
            rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : rd_kafka_event_name(ev);
        if (rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__TIMED_OUT)
            cli_err("cannot reach the cluster at %s: %s (timeout %d ms)", cli_opts.brokers, why,
                    cli_opts.timeout_ms);
        else
            cli_err("request failed: %s", why);
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

rd_kafka_event_t *cli_describe_configs(rd_kafka_t *rk,
                                       rd_kafka_ResourceType_t type,
                                       const char *name,
                                       const rd_kafka_ConfigResource_t **res_out)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(type, name);
    rd_kafka_AdminOptions_t *o = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = cli_admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
    rd_kafka_queue_destroy(q);
    if (!ev)
        return NULL;
    size_t n;
    const rd_kafka_ConfigResource_t **rs =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    if (n != 1 || rd_kafka_ConfigResource_error(rs[0])) {
        cli_err("cannot describe configs of %s: %s", name,
                n == 1 ? rd_kafka_ConfigResource_error_string(rs[0]) : "empty answer");
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    *res_out = rs[0];
    return ev;
}

const char *cli_config_source_name(rd_kafka_ConfigSource_t src)
{
    switch (src) {
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG:
        return "dynamic-topic";
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG:
        return "dynamic-broker";
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG:
        return "dynamic-default-broker";
    case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG:
        return "static-broker";
    case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG:
        return "default";
    default:
        return "unknown";
    }
}

/* ---- Offset specs: start, end, +N, -N, @timestamp, N ---- */

int cli_parse_timestamp_ms(const char *s, int64_t *out)
{
    int64_t v;
    if (!cli_parse_i64(s, 0, INT64_MAX, &v)) {
        *out = v;
        return 0;
    }
    if (s[0] == '-' && !cli_parse_duration_ms(s + 1, &v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - v;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || *end) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, "%Y-%m-%d", &tm);
        if (!end || *end)
            return -1;
    }
    *out = (int64_t)timegm(&tm) * 1000;
    return 0;
}

int cli_check_offset_spec(const char *spec)
{
    int64_t v;
    if (!strcmp(spec, "start") || !strcmp(spec, "oldest") || !strcmp(spec, "end") ||
        !strcmp(spec, "newest"))
        return 0;
    if (spec[0] == '@')
        return cli_parse_timestamp_ms(spec + 1, &v);
    if (spec[0] == '+' || spec[0] == '-')
        return cli_parse_i64(spec + 1, 0, INT64_MAX, &v);
    return cli_parse_i64(spec, 0, INT64_MAX, &v);
}

static int resolve_times(rd_kafka_t *rk,
                         const char *topic,
                         const int32_t *parts,
                         int n_parts,
                         int64_t ts_ms,
                         const int64_t *high,
                         int64_t *out)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n_parts);
    for (int i = 0; i < n_parts; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset = ts_ms;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, cli_opts.timeout_ms);
    if (err) {
        rd_kafka_topic_partition_list_destroy(l);
        return cli_err("cannot look up offsets by time in %s: %s", topic, rd_kafka_err2str(err));
    }
    int rc = 0;
    for (int i = 0; i < n_parts; i++) {
        rd_kafka_topic_partition_t *p = &l->elems[i];
        if (p->err) {
            rc = cli_err("cannot look up offset by time in %s/%d: %s", topic, (int)parts[i],
                         rd_kafka_err2str(p->err));
            break;
        }
        /* No record at or after the time: start at the end. */
        out[i] = p->offset < 0 ? high[i] : p->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static int resolve_offsets(rd_kafka_t *rk,
                           const char *topic,
                           const int32_t *parts,
                           int n_parts,
                           const char *spec,
                           bool is_stop,
                           int64_t *out);

int cli_resolve_offsets(rd_kafka_t *rk,
                        const char *topic,
                        const int32_t *parts,
                        int n_parts,
                        const char *spec,
                        int64_t *out)
{
    return resolve_offsets(rk, topic, parts, n_parts, spec, false, out);
}

int cli_resolve_stop_offsets(rd_kafka_t *rk,
                             const char *topic,
                             const int32_t *parts,
                             int n_parts,
                             const char *spec,
                             int64_t *out)
{
    return resolve_offsets(rk, topic, parts, n_parts, spec, true, out);
}

static int resolve_offsets(rd_kafka_t *rk,
                           const char *topic,
                           const int32_t *parts,
                           int n_parts,
                           const char *spec,
                           bool is_stop,
                           int64_t *out)
{
    if (cli_check_offset_spec(spec))
        return cli_usage_err("bad offset '%s': use start, end, +N, -N, @TIMESTAMP or an offset",
                             spec);
    int64_t *low = calloc((size_t)n_parts * 2, sizeof(*low));
    if (!low)
        return cli_err("out of memory");
    int64_t *high = low + n_parts;
    int rc = 0;
    for (int i = 0; i < n_parts; i++) {
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, parts[i], &low[i],
                                                                   &high[i], cli_opts.timeout_ms);
        if (err) {
            rc = cli_err("cannot read offsets of %s/%d: %s", topic, (int)parts[i],
                         rd_kafka_err2str(err));
            goto out;
        }
    }
    int64_t v = 0;
    if (spec[0] == '@') {
        cli_parse_timestamp_ms(spec + 1, &v);
        rc = resolve_times(rk, topic, parts, n_parts, v, high, out);
        goto out;
    }
    for (int i = 0; i < n_parts; i++) {
        if (!strcmp(spec, "start") || !strcmp(spec, "oldest")) {
            out[i] = low[i];
        } else if (!strcmp(spec, "end") || !strcmp(spec, "newest")) {
            out[i] = high[i];
        } else if (spec[0] == '+') {
            cli_parse_i64(spec + 1, 0, INT64_MAX, &v);
            out[i] = v > high[i] - low[i] ? high[i] : low[i] + v;
        } else if (spec[0] == '-') {
            cli_parse_i64(spec + 1, 0, INT64_MAX, &v);
            out[i] = v > high[i] - low[i] ? low[i] : high[i] - v;
        } else {
            /* An exact offset outside the log: say where reading starts instead of letting
             * the client reset it silently (and wait without a word past the end). */
            cli_parse_i64(spec, 0, INT64_MAX, &v);
            out[i] = v;
            if (is_stop) {
                /* a stop past the end waits for it */
            } else if (v > high[i]) {
                cli_warn("offset %" PRId64 " is past the end of %s/%d (next offset %" PRId64
                         "): reading from the end",
                         v, topic, (int)parts[i], high[i]);
                out[i] = high[i];
            } else if (v < low[i]) {
                cli_warn("offset %" PRId64 " is before the start of %s/%d (first offset %" PRId64
                         "): starting at %" PRId64,
                         v, topic, (int)parts[i], low[i], low[i]);
                out[i] = low[i];
            }
        }
    }
out:
    free(low);
    return rc;
}
