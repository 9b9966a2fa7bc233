/* strata.c - entry point of the `strata` CLI: global flags, profile, help, dispatch,
 * and the small commands (version, start, completion).
 * Data path: none of the broker's. main() takes the global flags out of argv wherever
 * they appear, fills cli_opts (flag > STRATA_* environment > profile file > default),
 * then hands the rest to a command family (cli_topic.c, cli_io.c, cli_cluster.c,
 * cli_group.c, cli_storage.c, cli_archive.c).
 * Invariants: 1. global flags never reach a command's getopt;
 *             2. `strata start` replaces this process with stratad (exec), so signals
 *                and the exit code are the broker's own. */
#include "tools/cli.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef STRATA_VERSION
#define STRATA_VERSION "unknown"
#endif

#define CLI_DEFAULT_BROKERS   "127.0.0.1:9092"
#define CLI_DEFAULT_ADMIN_URL "http://127.0.0.1:9644"
#define CLI_DEFAULT_TIMEOUT   10000

static const char cli_main_help[] =
    "strata - manage a Strata cluster: topics, records, groups, the cluster itself.\n"
    "\n"
    "Usage: strata [global flags] COMMAND [SUBCOMMAND] [flags] [args]\n"
    "\n"
    "Commands:\n"
    "  start        start a broker in the foreground (dev defaults)\n"
    "  version      print the CLI and librdkafka versions\n"
    "  topic        create, list, describe, describe-storage, delete, alter-config,\n"
    "               add-partitions, trim-prefix topics; produce and consume records\n"
    "  group        list, describe, seek, delete consumer groups\n"
    "  cluster      cluster info, health, status and broker configuration\n"
    "  storage      local vs remote storage status (admin API)\n"
    "  transaction  list and describe transactions (admin API)\n"
    "  archive      read an archive (bucket or file://) without a broker: ls, cat, verify\n"
    "  bench        load driver: produce/consume throughput and latency, mock cluster\n"
    "  security     ACLs (acl create|list|delete) and SCRAM users (user create|...)\n"
    "  profile      named connection settings: create, use, list, show, delete\n"
    "  completion   print a shell completion script (bash, zsh, fish)\n"
    "\n"
    "Global flags (accepted anywhere on the line):\n"
    "  --brokers LIST       Kafka bootstrap servers (default: $STRATA_BROKERS, then\n"
    "                       'brokers' in ~/.config/strata/strata.yaml, then " CLI_DEFAULT_BROKERS
    ")\n"
    "  --admin-url URL      admin HTTP API (default: $STRATA_ADMIN_URL, then 'admin_url'\n"
    "                       in the profile, then " CLI_DEFAULT_ADMIN_URL ")\n"
    "  --profile NAME       read ~/.config/strata/profiles/NAME.yaml instead of\n"
    "                       strata.yaml (default: $STRATA_PROFILE, then 'strata profile use')\n"
    "  -X KEY=VALUE         any librdkafka client setting (repeatable)\n"
    "  --format text|json   output format (default text: human tables)\n"
    "  --timeout DURATION   bound on reaching the cluster and on each request (default 10s)\n"
    "  -v, --verbose        show librdkafka logs on stderr\n"
    "  --tls-enabled        connect with TLS ($STRATA_TLS_ENABLED=1, profile tls.enabled)\n"
    "  --tls-truststore FILE, --tls-ca FILE\n"
    "                       CA certificates, PEM; implies TLS ($STRATA_TLS_CA, tls.ca)\n"
    "  --tls-cert FILE, --tls-key FILE\n"
    "                       client certificate and key for mTLS ($STRATA_TLS_CERT/KEY)\n"
    "  --sasl-mechanism M   PLAIN, SCRAM-SHA-256 (default with --user) or SCRAM-SHA-512\n"
    "                       ($STRATA_SASL_MECHANISM, profile sasl.mechanism)\n"
    "  --user NAME          SASL user, also HTTP Basic for the admin API ($STRATA_USER,\n"
    "                       profile user)\n"
    "  --password PASSWORD  its password ($STRATA_PASSWORD, profile password)\n"
    "  -h, --help           help for any command\n"
    "\n"
    "Exit codes: 0 success, 1 an operation failed, 2 bad usage or not available.\n"
    "\n"
    "Examples:\n"
    "  strata start\n"
    "  strata topic create orders -p 3\n"
    "  echo hello | strata topic produce orders\n"
    "  strata topic consume orders -n 1\n"
    "  strata --brokers 10.0.0.5:9092 cluster info --format json\n"
    "  strata --brokers h:9093 --tls-ca ca.pem --user admin --password s3cret topic list\n";

/* ---- Profile file ---- */

static char profile_brokers[1024];
static char profile_admin_url[1024];
static char profile_archive_url[1024];
/* TLS / SASL of the profile: "tls.ca: FILE" or a "tls:" block with "ca: FILE" under it. */
static char profile_tls_enabled[16], profile_tls_ca[1024], profile_tls_cert[1024],
    profile_tls_key[1024], profile_sasl_mechanism[64], profile_user[256], profile_password[256];

/* The storage of a TLS/SASL profile key ("tls.ca", "sasl.mechanism", "user", ...). */
static char *profile_security_slot(const char *key, size_t *cap)
{
    static const struct {
        const char *key;
        char *buf;
        size_t cap;
    } k[] = {{"tls.enabled", profile_tls_enabled, sizeof(profile_tls_enabled)},
             {"tls.ca", profile_tls_ca, sizeof(profile_tls_ca)},
             {"tls.truststore", profile_tls_ca, sizeof(profile_tls_ca)},
             {"tls.cert", profile_tls_cert, sizeof(profile_tls_cert)},
             {"tls.key", profile_tls_key, sizeof(profile_tls_key)},
             {"sasl.mechanism", profile_sasl_mechanism, sizeof(profile_sasl_mechanism)},
             {"sasl.user", profile_user, sizeof(profile_user)},
             {"sasl.password", profile_password, sizeof(profile_password)},
             {"user", profile_user, sizeof(profile_user)},
             {"password", profile_password, sizeof(profile_password)}};
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        if (!strcmp(key, k[i].key)) {
            *cap = k[i].cap;
            return k[i].buf;
        }
    return NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Append a list item to a comma-separated value. */
static void append_item(char *dst, size_t cap, const char *item)
{
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, "%s%s", n ? "," : "", item);
}

/* Read ~/.config/strata/strata.yaml: top-level "brokers:" (a scalar "h:p,h:p" or a list of
 * "- h:p" items), "admin_url:", "archive_url:" and the TLS/SASL keys. Other keys are
 * ignored with a warning (a typo must not pass silently). */
static int load_profile(void)
{
    char path[PATH_MAX];
    if (cli_profile_path(path, sizeof(path)))
        return -1;
    if (!path[0])
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    char *list = NULL;
    char section[16] = ""; /* "tls" or "sasl" while reading the lines of such a block */
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        if (s[0] == '-' && list) {
            append_item(list, sizeof(profile_brokers), trim(s + 1));
            continue;
        }
        list = NULL;
        if (line[0] == ' ' || line[0] == '\t') {
            char *colon = section[0] ? strchr(s, ':') : NULL;
            if (colon) {
                *colon = '\0';
                char key[64];
                snprintf(key, sizeof(key), "%s.%s", section, trim(s));
                size_t cap;
                char *slot = profile_security_slot(key, &cap);
                if (slot)
                    snprintf(slot, cap, "%s", trim(colon + 1));
                else
                    cli_warn("%s:%d: unknown key '%s' ignored", path, lineno, key);
            }
            continue;
        }
        section[0] = '\0';
        char *colon = strchr(s, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *key = trim(s), *val = trim(colon + 1);
        if (!strcmp(key, "brokers")) {
            if (*val == '[') {
                val++;
                char *rb = strchr(val, ']');
                if (rb)
                    *rb = '\0';
                for (char *tok = strtok(val, ","); tok; tok = strtok(NULL, ","))
                    append_item(profile_brokers, sizeof(profile_brokers), trim(tok));
            } else if (*val) {
                snprintf(profile_brokers, sizeof(profile_brokers), "%s", val);
            } else {
                profile_brokers[0] = '\0';
                list = profile_brokers;
            }
        } else if (!strcmp(key, "admin_url") || !strcmp(key, "admin-url")) {
            snprintf(profile_admin_url, sizeof(profile_admin_url), "%s", val);
        } else if (!strcmp(key, "archive_url") || !strcmp(key, "archive-url")) {
            snprintf(profile_archive_url, sizeof(profile_archive_url), "%s", val);
        } else if ((!strcmp(key, "tls") || !strcmp(key, "sasl")) && !*val) {
            snprintf(section, sizeof(section), "%s", key);
        } else {
            size_t cap;
            char *slot = profile_security_slot(key, &cap);
            if (slot)
                snprintf(slot, cap, "%s", val);
            else
                cli_warn("%s:%d: unknown key '%s' ignored (known: brokers, admin_url, "
                         "archive_url, tls, sasl, user, password)",
                         path, lineno, key);
        }
    }
    fclose(f);
    return 0;
}

/* ---- Global flags ---- */

/* The global flags that take a value (the completion script skips their values). */
static const char *const cli_global_values[] = {
    "--brokers",        "--admin-url",      "--format",   "--timeout",  "-X",
    "--profile",        "--tls-truststore", "--tls-ca",   "--tls-cert", "--tls-key",
    "--sasl-mechanism", "--user",           "--password", NULL};

/* Take a global flag at argv[*i] (with its value) out of argv. @return 1 if taken, 0 if
 * not a global flag, 2 if it is a command's flag with its value (both stay), or -1 after
 * a usage error. */
static int take_global(int *argc, char **argv, int i)
{
    const char *const *with_value = cli_global_values;
    const char *a = argv[i];
    const char *name = NULL, *val = NULL;
    int used = 1;
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
        cli_opts.is_verbose = true;
        name = a;
    } else if (!strcmp(a, "--tls-enabled")) {
        cli_opts.is_tls = true;
        name = a;
    }
    for (int k = 0; !name && with_value[k]; k++) {
        size_t n = strlen(with_value[k]);
        if (strncmp(a, with_value[k], n))
            continue;
        if (a[n] == '=') {
            name = with_value[k];
            val = a + n + 1;
        } else if (!a[n]) {
            name = with_value[k];
            if (i + 1 >= *argc) {
                cli_usage_err("flag %s needs a value", name);
                return -1;
            }
            val = argv[i + 1];
            used = 2;
        } else if (!strcmp(with_value[k], "-X")) {
            name = "-X"; /* -Xkey=value */
            val = a + 2;
        }
    }
    if (!name)
        return 0;
    /* --format FMT (not text/json) is the record format of produce, consume and archive
     * cat: it stays for the command, which says so if it takes none. */
    if (!strcmp(name, "--format") && strcmp(val, "json") && strcmp(val, "text"))
        return used == 2 ? 2 : 0;
    if (!strcmp(name, "--profile")) {
        cli_opts.profile = val;
    } else if (!strcmp(name, "--brokers")) {
        cli_opts.brokers = val;
    } else if (!strcmp(name, "--admin-url")) {
        cli_opts.admin_url = val;
    } else if (!strcmp(name, "--format")) {
        cli_opts.format = !strcmp(val, "json") ? "json" : "text";
        cli_opts.is_json = !strcmp(val, "json");
    } else if (!strcmp(name, "--timeout")) {
        int64_t ms;
        if (cli_parse_duration_ms(val, &ms) || ms < 1 || ms > 3600000) {
            cli_usage_err("bad --timeout '%s': use a duration such as 500ms, 10s or 1m", val);
            return -1;
        }
        cli_opts.timeout_ms = (int)ms;
    } else if (!strcmp(name, "--tls-truststore") || !strcmp(name, "--tls-ca")) {
        cli_opts.tls_ca = val;
    } else if (!strcmp(name, "--tls-cert")) {
        cli_opts.tls_cert = val;
    } else if (!strcmp(name, "--tls-key")) {
        cli_opts.tls_key = val;
    } else if (!strcmp(name, "--sasl-mechanism")) {
        cli_opts.sasl_mechanism = val;
    } else if (!strcmp(name, "--user")) {
        cli_opts.user = val;
    } else if (!strcmp(name, "--password")) {
        cli_opts.password = val;
    } else if (!strcmp(name, "-X")) {
        char *k, *v;
        if (cli_opts.n_x == CLI_MAX_X || cli_split_kv((char *)val, &k, &v)) {
            cli_usage_err("bad -X '%s': use -X key=value (librdkafka setting)", val);
            return -1;
        }
        cli_opts.x_keys[cli_opts.n_x] = k;
        cli_opts.x_vals[cli_opts.n_x++] = v;
    }
    memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used + 1) * sizeof(*argv));
    *argc -= used;
    return 1;
}

/* A setting not given as a flag: $ENV, then the profile's value, else NULL. */
static const char *env_or_profile(const char *cur, const char *env, const char *profile)
{
    const char *v = cur ? cur : getenv(env);
    if (!v || !*v)
        v = profile[0] ? profile : NULL;
    return v;
}

static bool is_true(const char *v)
{
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

/* TLS/SASL: flag > STRATA_* environment > profile. Any CA, certificate or key turns TLS on. */
static void security_defaults(void)
{
    cli_opts.tls_ca = env_or_profile(cli_opts.tls_ca, "STRATA_TLS_CA", profile_tls_ca);
    cli_opts.tls_cert = env_or_profile(cli_opts.tls_cert, "STRATA_TLS_CERT", profile_tls_cert);
    cli_opts.tls_key = env_or_profile(cli_opts.tls_key, "STRATA_TLS_KEY", profile_tls_key);
    cli_opts.sasl_mechanism =
        env_or_profile(cli_opts.sasl_mechanism, "STRATA_SASL_MECHANISM", profile_sasl_mechanism);
    cli_opts.user = env_or_profile(cli_opts.user, "STRATA_USER", profile_user);
    cli_opts.password = env_or_profile(cli_opts.password, "STRATA_PASSWORD", profile_password);
    if (is_true(env_or_profile(NULL, "STRATA_TLS_ENABLED", profile_tls_enabled)) ||
        cli_opts.tls_ca || cli_opts.tls_cert || cli_opts.tls_key)
        cli_opts.is_tls = true;
}

static int parse_globals(int *argc, char **argv)
{
    cli_opts.timeout_ms = CLI_DEFAULT_TIMEOUT;
    for (int i = 1; i < *argc;) {
        if (!strcmp(argv[i], "--"))
            break;
        int r = take_global(argc, argv, i);
        if (r < 0)
            return -1;
        if (r == 0)
            i++;
        else if (r == 2)
            i += 2;
    }
    /* `strata profile ...` works on the profiles themselves: none is read (create saves
     * the flags and environment of its own line only). */
    bool is_profile_cmd = *argc > 1 && !strcmp(argv[1], "profile");
    if (!is_profile_cmd && load_profile())
        return -1;
    if (!cli_opts.brokers)
        cli_opts.brokers = getenv("STRATA_BROKERS");
    if (!cli_opts.brokers || !*cli_opts.brokers)
        cli_opts.brokers = profile_brokers[0] ? profile_brokers : CLI_DEFAULT_BROKERS;
    if (!cli_opts.admin_url)
        cli_opts.admin_url = getenv("STRATA_ADMIN_URL");
    if (!cli_opts.admin_url || !*cli_opts.admin_url)
        cli_opts.admin_url = profile_admin_url[0] ? profile_admin_url : CLI_DEFAULT_ADMIN_URL;
    cli_opts.archive_url = profile_archive_url[0] ? profile_archive_url : NULL;
    security_defaults();
    return 0;
}

/* ---- version ---- */

static int cmd_version(int argc, char **argv)
{
    int args_rc = cli_args_only(argc, argv,
                                "Usage: strata version\nPrint the versions of strata and "
                                "librdkafka.\n\nExamples:\n  strata version\n  strata "
                                "version --format json\n");
    if (args_rc >= 0)
        return args_rc;
    if (optind < argc)
        return cli_usage_err("version takes no arguments");
    if (cli_opts.is_json)
        printf("{\"version\":\"%s\",\"librdkafka\":\"%s\"}\n", STRATA_VERSION,
               rd_kafka_version_str());
    else
        printf("strata %s (librdkafka %s)\n", STRATA_VERSION, rd_kafka_version_str());
    return CLI_EXIT_OK;
}

/* ---- start ---- */

static const char start_help[] =
    "Usage: strata start [--config FILE] [--data-dir DIR] [--smp N] [-- STRATAD-FLAGS...]\n"
    "Start a broker in the foreground. Without --config it uses dev defaults: data in\n"
    "./strata-data, one shard, Kafka on 127.0.0.1:9092, admin API on 127.0.0.1:9644,\n"
    "group.initial.rebalance.delay.ms=0 (a first group consumer starts at once).\n"
    "stratad is looked up as $STRATAD, next to the strata binary, then on PATH.\n"
    "Flags after -- go to stratad unchanged.\n"
    "\n"
    "Flags:\n"
    "  -c, --config FILE   broker YAML configuration (no dev defaults are added)\n"
    "  -d, --data-dir DIR  data directory (default ./strata-data)\n"
    "      --smp N         number of shards (default 1)\n"
    "\n"
    "Examples:\n"
    "  strata start\n"
    "  strata start --config /etc/strata/strata.yaml\n"
    "  strata start -- --listeners 127.0.0.1:19092 -X log.segment.bytes=8MiB\n";

/* Find stratad: $STRATAD, the directory of this executable, then PATH. */
static int find_stratad(char *out, size_t cap)
{
    const char *env = getenv("STRATAD");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) ? -1 : 0;
    }
    char self[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, cap, "%s/stratad", self);
            if (!access(out, X_OK))
                return 0;
        }
    }
    const char *path = getenv("PATH");
    if (!path)
        return -1;
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int rc = -1;
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir;
         dir = strtok_r(NULL, ":", &save)) {
        int len = snprintf(out, cap, "%s/stratad", *dir ? dir : ".");
        if (len > 0 && (size_t)len < cap && !access(out, X_OK)) {
            rc = 0;
            break;
        }
    }
    free(copy);
    return rc;
}

/* Whether the stratad flags (after --) or the environment set listener `flag`/`key`. */
static bool sets_listener(int argc, char **argv, int from, const char *flag, const char *key)
{
    char env[64], x[80];
    snprintf(x, sizeof(x), "%s=", key);
    snprintf(env, sizeof(env), "STRATA_%s", key);
    for (char *p = env; *p; p++)
        *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    if (getenv(env))
        return true;
    for (int i = from; i < argc; i++)
        if (!strncmp(argv[i], flag, strlen(flag)) || strstr(argv[i], x))
            return true;
    return false;
}

/* Refuse early, with the flags of `strata start`, what stratad would refuse: a data
 * directory another broker holds, or a default port in use. @return 0 or CLI_EXIT_FAIL. */
static int start_precheck(const char *data_dir, int argc, char **argv, int from)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/.lock", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
            char pid[32] = "?";
            ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
            pid[n > 0 ? n : 1] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            close(fd);
            return cli_err("data directory %s is in use by another broker (pid %s): stop it, or "
                           "start another one with --data-dir DIR and other ports",
                           data_dir, pid);
        }
        close(fd); /* releases the lock taken */
    }
    static const struct {
        const char *flag, *key;
        int port;
    } ls[] = {{"--listeners", "listeners", 9092},
              {"--admin-listener", "strata.admin.listener", 9644}};
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        if (sets_listener(argc, argv, from, ls[i].flag, ls[i].key))
            continue;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ls[i].port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int busy = s >= 0 && !setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) &&
                   bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 && errno == EADDRINUSE;
        if (s >= 0)
            close(s);
        if (busy)
            return cli_err("127.0.0.1:%d is in use (another broker?): stop it, or choose free "
                           "ports, e.g. strata start -- --listeners 127.0.0.1:19092 "
                           "--admin-listener 127.0.0.1:19644",
                           ls[i].port);
    }
    return 0;
}

static int cmd_start(int argc, char **argv)
{
    static const struct option longs[] = {{"config", required_argument, NULL, 'c'},
                                          {"data-dir", required_argument, NULL, 'd'},
                                          {"smp", required_argument, NULL, 's'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *config = NULL, *data_dir = "./strata-data", *smp = "1";
    int c;
    while ((c = cli_getopt(argc, argv, "+c:d:h", longs)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 's': {
            int64_t v;
            if (cli_parse_i64(optarg, 1, 1024, &v))
                return cli_usage_err("bad --smp '%s': use a number from 1 to 1024", optarg);
            smp = optarg;
            break;
        }
        case 'h':
            fputs(start_help, stdout);
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (cli_opts.n_x)
        return cli_usage_err("-X before -- sets librdkafka options of strata itself; pass "
                             "broker settings after --, e.g. strata start -- -X %s=%s",
                             cli_opts.x_keys[0], cli_opts.x_vals[0]);
    if (optind < argc && strcmp(argv[optind - 1], "--"))
        return cli_usage_err("unexpected argument '%s' (stratad flags go after --)", argv[optind]);
    if (!config && start_precheck(data_dir, argc, argv, optind))
        return CLI_EXIT_FAIL;
    char bin[PATH_MAX];
    if (find_stratad(bin, sizeof(bin)))
        return cli_err("cannot find stratad: set $STRATAD, install it next to strata or put "
                       "it on PATH");
    char **args = calloc((size_t)argc + 10, sizeof(*args));
    if (!args)
        return cli_err("out of memory");
    int n = 0;
    args[n++] = bin;
    if (config) {
        args[n++] = "--config";
        args[n++] = (char *)config;
    } else {
        args[n++] = "--log-dir";
        args[n++] = (char *)data_dir;
        args[n++] = "--smp";
        args[n++] = (char *)smp;
        /* Dev default: a first group consumer gets its partitions at once (Kafka's 3 s
         * wait for more members matters only with several consumers starting together). */
        args[n++] = "-X";
        args[n++] = "group.initial.rebalance.delay.ms=0";
    }
    for (int i = optind; i < argc; i++)
        args[n++] = argv[i];
    if (config)
        fprintf(stderr, "strata: starting %s --config %s\n", bin, config);
    else
        fprintf(stderr, "strata: starting %s with data in %s (Ctrl-C stops it)\n", bin, data_dir);
    fflush(stdout);
    execv(bin, args);
    int err = errno;
    free(args);
    return cli_err("cannot start %s: %s", bin, strerror(err));
}

/* ---- completion ---- */

/* The script: commands, subcommands and flags are read from strata's own --help when
 * completing (so they stay true to the binary); @BIN@, @GLOBALS@ and @GLOBAL_VALUES@ are
 * filled in by cmd_completion. */
static const char completion_bash[] =
    "# bash completion for strata: source <(strata completion bash)\n"
    "# zsh: autoload -U +X bashcompinit && bashcompinit && source <(strata completion bash)\n"
    "# Commands, subcommands and flags come from strata's own --help (always true to the\n"
    "# binary); topic, group and profile names from the cluster and the profiles.\n"
    "_strata_bin=\"@BIN@\"\n"
    "[ -x \"$_strata_bin\" ] || _strata_bin=strata\n"
    "_strata_globals=\"@GLOBALS@\"\n"
    "_strata_global_values=\" @GLOBAL_VALUES@ \"\n"
    "\n"
    "# The first words of the lines after \"Commands:\" in a help text.\n"
    "_strata_cmds()\n"
    "{\n"
    "    \"$_strata_bin\" \"$@\" --help 2>/dev/null |\n"
    "        awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}'\n"
    "}\n"
    "\n"
    "# Every -x and --long-flag a help text names.\n"
    "_strata_flags()\n"
    "{\n"
    "    \"$_strata_bin\" \"$@\" --help 2>/dev/null | grep -oE -- '(^|[ ,])--?[A-Za-z][a-z0-9-]*' "
    "|\n"
    "        tr -d ' ,'\n"
    "}\n"
    "\n"
    "_strata()\n"
    "{\n"
    "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
    "    local i w words=() globals=() skip=0\n"
    "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
    "        w=\"${COMP_WORDS[i]}\"\n"
    "        if [ \"$skip\" = 1 ]; then globals+=(\"$w\"); skip=0; continue; fi\n"
    "        case \"$_strata_global_values\" in *\" $w \"*) globals+=(\"$w\"); skip=1; continue;; "
    "esac\n"
    "        case \"$w\" in -*) ;; *) words+=(\"$w\");; esac\n"
    "    done\n"
    "    case \"$prev\" in\n"
    "        --format|-f) COMPREPLY=($(compgen -W \"text json\" -- \"$cur\")); return;;\n"
    "        -z|--compression) COMPREPLY=($(compgen -W \"none gzip snappy lz4 zstd\" -- "
    "\"$cur\")); return;;\n"
    "        --acks) COMPREPLY=($(compgen -W \"all 0 1 -1\" -- \"$cur\")); return;;\n"
    "        --operation) COMPREPLY=($(compgen -W \"all read write create delete alter describe "
    "cluster_action describe_configs alter_configs idempotent_write\" -- \"$cur\")); return;;\n"
    "        --resource-pattern-type) COMPREPLY=($(compgen -W \"literal prefixed any match\" -- "
    "\"$cur\")); return;;\n"
    "        -o|--offset|--to) COMPREPLY=($(compgen -W \"start end start:end\" -- \"$cur\")); "
    "return;;\n"
    "        --sasl-mechanism|-m|--mechanism)\n"
    "            COMPREPLY=($(compgen -W \"PLAIN SCRAM-SHA-256 SCRAM-SHA-512\" -- \"$cur\")); "
    "return;;\n"
    "        --profile)\n"
    "            COMPREPLY=($(compgen -W \"$(\"$_strata_bin\" profile list 2>/dev/null |\n"
    "                awk 'NR > 1 {print $1}')\" -- \"$cur\")); return;;\n"
    "        -i|--index|--tls-truststore|--tls-ca|--tls-cert|--tls-key|-c|--config|-d|--data-dir)\n"
    "            COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n"
    "    esac\n"
    "    local n=${#words[@]} list=\"\"\n"
    "    if [[ \"$cur\" == -* ]]; then\n"
    "        list=\"$_strata_globals $(_strata_flags \"${words[@]:0:3}\")\"\n"
    "    elif [ \"$n\" = 0 ]; then\n"
    "        list=\"$(_strata_cmds)\"\n"
    "    elif [ \"$n\" = 1 ] || { [ \"$n\" = 2 ] && [ \"${words[0]}\" = security ]; }; then\n"
    "        list=\"$(_strata_cmds \"${words[@]}\")\"\n"
    "        [ \"${words[0]}\" = completion ] && list=\"bash zsh fish\"\n"
    "    else\n"
    "        local q=(\"${globals[@]}\" --timeout 3s)\n"
    "        case \"${words[0]} ${words[1]}\" in\n"
    "            \"topic create\"|\"topic list\") ;;\n"
    "            \"topic \"*) list=\"$(\"$_strata_bin\" \"${q[@]}\" topic list 2>/dev/null |\n"
    "                awk 'NR > 1 {print $1}')\";;\n"
    "            \"group list\") ;;\n"
    "            \"group \"*) list=\"$(\"$_strata_bin\" \"${q[@]}\" group list 2>/dev/null |\n"
    "                awk 'NR > 1 {print $1}')\";;\n"
    "            \"profile use\"|\"profile show\"|\"profile delete\")\n"
    "                list=\"$(\"$_strata_bin\" profile list 2>/dev/null | awk 'NR > 1 {print "
    "$1}')\";;\n"
    "            \"cluster config\") [ \"$n\" = 2 ] && list=\"get list set delete export import "
    "edit\";;\n"
    "        esac\n"
    "    fi\n"
    "    COMPREPLY=($(compgen -W \"$(printf '%s\\n' $list | sort -u)\" -- \"$cur\"))\n"
    "}\n"
    "complete -F _strata strata\n";

/* The fish script: the same rules as completion_bash, in fish. */
static const char completion_fish[] =
    "# fish completion for strata: strata completion fish | source\n"
    "# (or: strata completion fish > ~/.config/fish/completions/strata.fish)\n"
    "# The same rules as the bash script: commands, subcommands and flags from strata's own\n"
    "# --help; topic, group and profile names from the cluster and the profiles.\n"
    "set -g __strata_bin \"@BIN@\"\n"
    "test -x \"$__strata_bin\"; or set -g __strata_bin strata\n"
    "set -g -- __strata_globals @GLOBALS@\n"
    "set -g -- __strata_global_values @GLOBAL_VALUES@\n"
    "\n"
    "function __strata_cmds\n"
    "    $__strata_bin $argv --help 2>/dev/null |\n"
    "        awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}'\n"
    "end\n"
    "\n"
    "function __strata_flags\n"
    "    $__strata_bin $argv --help 2>/dev/null | grep -oE -- '(^|[ ,])--?[A-Za-z][a-z0-9-]*' |\n"
    "        tr -d ' ,'\n"
    "end\n"
    "\n"
    "# The first column of a listing without its header line.\n"
    "function __strata_names\n"
    "    $__strata_bin $argv 2>/dev/null | awk 'NR > 1 {print $1}'\n"
    "end\n"
    "\n"
    "function __strata_complete\n"
    "    set -l toks (commandline -opc)\n"
    "    set -e toks[1]\n"
    "    set -l cur (commandline -ct)\n"
    "    set -l words\n"
    "    set -l globals\n"
    "    set -l skip 0\n"
    "    for w in $toks\n"
    "        if test $skip = 1\n"
    "            set -a globals $w\n"
    "            set skip 0\n"
    "        else if contains -- $w $__strata_global_values\n"
    "            set -a globals $w\n"
    "            set skip 1\n"
    "        else if not string match -q -- '-*' $w\n"
    "            set -a words $w\n"
    "        end\n"
    "    end\n"
    "    switch \"$toks[-1]\"\n"
    "        case --format -f\n"
    "            printf '%s\\n' text json\n"
    "            return\n"
    "        case -z --compression\n"
    "            printf '%s\\n' none gzip snappy lz4 zstd\n"
    "            return\n"
    "        case --acks\n"
    "            printf '%s\\n' all 0 1 -1\n"
    "            return\n"
    "        case --operation\n"
    "            printf '%s\\n' all read write create delete alter describe cluster_action \\\n"
    "                describe_configs alter_configs idempotent_write\n"
    "            return\n"
    "        case --resource-pattern-type\n"
    "            printf '%s\\n' literal prefixed any match\n"
    "            return\n"
    "        case -o --offset --to\n"
    "            printf '%s\\n' start end start:end\n"
    "            return\n"
    "        case --sasl-mechanism -m --mechanism\n"
    "            printf '%s\\n' PLAIN SCRAM-SHA-256 SCRAM-SHA-512\n"
    "            return\n"
    "        case --profile\n"
    "            __strata_names profile list\n"
    "            return\n"
    "        case -i --index --tls-truststore --tls-ca --tls-cert --tls-key -c --config -d \\\n"
    "            --data-dir\n"
    "            __fish_complete_path \"$cur\"\n"
    "            return\n"
    "    end\n"
    "    set -l n (count $words)\n"
    "    if string match -q -- '-*' \"$cur\"\n"
    "        printf '%s\\n' $__strata_globals\n"
    "        __strata_flags $words[1] $words[2] $words[3]\n"
    "    else if test $n = 0\n"
    "        __strata_cmds\n"
    "    else if test $n = 1; or begin; test $n = 2; and test \"$words[1]\" = security; end\n"
    "        if test \"$words[1]\" = completion\n"
    "            printf '%s\\n' bash zsh fish\n"
    "        else\n"
    "            __strata_cmds $words\n"
    "        end\n"
    "    else\n"
    "        set -l q $globals --timeout 3s\n"
    "        switch \"$words[1] $words[2]\"\n"
    "            case \"topic create\" \"topic list\" \"group list\"\n"
    "            case \"topic *\"\n"
    "                __strata_names $q topic list\n"
    "            case \"group *\"\n"
    "                __strata_names $q group list\n"
    "            case \"profile use\" \"profile show\" \"profile delete\"\n"
    "                __strata_names profile list\n"
    "            case \"cluster config\"\n"
    "                test $n = 2; and printf '%s\\n' get list set delete export import edit\n"
    "        end\n"
    "    end\n"
    "end\n"
    "complete -c strata -e\n"
    "complete -c strata -f -a '(__strata_complete)'\n";

/* Print a script with its placeholders filled in. */
static void print_completion(const char *script)
{
    char bin[PATH_MAX] = "strata", globals[1024] = "-v --verbose --tls-enabled -h --help",
         values[1024] = "";
    ssize_t n = readlink("/proc/self/exe", bin, sizeof(bin) - 1);
    bin[n > 0 ? n : 6] = '\0';
    for (int i = 0; cli_global_values[i]; i++) {
        size_t g = strlen(globals), v = strlen(values);
        snprintf(globals + g, sizeof(globals) - g, " %s", cli_global_values[i]);
        snprintf(values + v, sizeof(values) - v, "%s%s", v ? " " : "", cli_global_values[i]);
    }
    const struct {
        const char *mark, *val;
    } subst[] = {{"@BIN@", bin}, {"@GLOBALS@", globals}, {"@GLOBAL_VALUES@", values}};
    for (const char *p = script; *p;) {
        size_t k = 0;
        while (k < 3 && strncmp(p, subst[k].mark, strlen(subst[k].mark)))
            k++;
        if (k < 3) {
            fputs(subst[k].val, stdout);
            p += strlen(subst[k].mark);
        } else {
            putchar(*p++);
        }
    }
}

static int cmd_completion(int argc, char **argv)
{
    static const char help[] =
        "Usage: strata completion bash|zsh|fish\n"
        "Print a shell completion script: commands, subcommands and each command's flags\n"
        "(read from strata's --help), topic and group names from the cluster (with the\n"
        "global flags of the line being completed), profile names. zsh runs the bash\n"
        "script through bashcompinit; fish gets its own script with the same rules.\n\n"
        "Examples:\n"
        "  source <(strata completion bash)\n"
        "  strata completion bash > /etc/bash_completion.d/strata\n"
        "  source <(strata completion zsh)      # in ~/.zshrc\n"
        "  strata completion fish > ~/.config/fish/completions/strata.fish\n";
    int args_rc = cli_args_only(argc, argv, help);
    if (args_rc >= 0)
        return args_rc;
    if (optind >= argc) {
        fputs(help, stdout);
        return CLI_EXIT_USAGE;
    }
    const char *sh = argv[optind];
    bool zsh = !strcmp(sh, "zsh"), fish = !strcmp(sh, "fish");
    if ((!zsh && !fish && strcmp(sh, "bash")) || optind + 1 < argc)
        return cli_usage_err("unsupported shell '%s': use bash, zsh or fish", sh);
    if (zsh)
        fputs("autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && "
              "bashcompinit\n",
              stdout);
    print_completion(fish ? completion_fish : completion_bash);
    return CLI_EXIT_OK;
}

/* ---- main ---- */

static const cli_cmd_t cli_top[] = {
    {"version", cmd_version, "print the CLI and librdkafka versions"},
    {"start", cmd_start, "start a broker in the foreground"},
    {"topic", cli_topic_main, "manage topics, produce and consume"},
    {"group", cli_group_main, "manage consumer groups"},
    {"cluster", cli_cluster_main, "cluster info, health, status and configuration"},
    {"storage", cli_storage_main, "local vs remote storage status (admin API)"},
    {"transaction", cli_txn_main, "list and describe transactions (admin API)"},
    {"archive", cli_archive_main, "read an archive without a broker"},
    {"bench", cli_bench_main, "load driver for benchmarks"},
    {"security", cli_security_main, "ACLs and SCRAM users"},
    {"profile", cli_profile_main, "named connection settings"},
    {"completion", cmd_completion, "print a shell completion script"},
    {NULL, NULL, NULL}};

int main(int argc, char **argv)
{
    if (parse_globals(&argc, argv))
        return CLI_EXIT_USAGE;
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        fputs(cli_main_help, stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        optind = 0;
        return cmd_version(1, argv + 1);
    }
    for (const cli_cmd_t *c = cli_top; c->name; c++)
        if (!strcmp(argv[1], c->name)) {
            optind = 0;
            snprintf(cli_cmd_path, sizeof(cli_cmd_path), "strata %s", c->name);
            return c->run(argc - 1, argv + 1);
        }
    return cli_usage_err("unknown command '%s'", argv[1]);
}
