/* cli.h - shared pieces of the `strata` command-line tool.
 * Data path: none of the broker's. `strata` is a separate process that talks to brokers
 * through librdkafka (Kafka API; `bench fetch` alone through the kafka/ codec on a socket)
 * and to the admin HTTP API through libcurl; this header
 * holds the global options, client construction, output helpers and the per-family
 * command entry points (cli_topic.c, cli_io.c, cli_cluster.c, cli_group.c, cli_storage.c,
 * cli_archive.c). `strata archive` alone reads an object store (tiering/) instead.
 * Invariants: 1. every command returns a process exit code (CLI_EXIT_*), never exits itself
 *                except through cli_die paths in main;
 *             2. every failure prints one clear line starting with "strata: " on stderr. */
#ifndef CLI_H
#define CLI_H

#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 an operation failed, 2 bad usage or not available. */
#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

#define CLI_MAX_X 64

/* Global options, parsed once by main before the command runs. */
typedef struct {
    const char *brokers;     /* borrowed: argv, env or cli_profile storage */
    const char *admin_url;   /* borrowed: argv, env or cli_profile storage */
    const char *archive_url; /* borrowed: 'archive_url' of the profile, or NULL */
    const char *profile;     /* --profile NAME, or NULL ($STRATA_PROFILE, 'profile use') */
    bool is_json;            /* --format json */
    const char *format;      /* "text" or "json" when given (-f/--format), else NULL */
    bool is_verbose;         /* -v: librdkafka logs go to stderr */
    int timeout_ms;          /* bound on reaching the cluster and on each admin request */
    /* How the CLI authenticates (flag > STRATA_* environment > profile); borrowed. */
    bool is_tls;                   /* --tls-enabled (implied by the other --tls-* flags) */
    const char *tls_ca;            /* --tls-truststore / --tls-ca: CA file (PEM) */
    const char *tls_cert;          /* --tls-cert: client certificate (mTLS) */
    const char *tls_key;           /* --tls-key: its private key */
    const char *sasl_mechanism;    /* --sasl-mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 */
    const char *user;              /* --user: SASL user (and admin API HTTP Basic) */
    const char *password;          /* --password */
    const char *x_keys[CLI_MAX_X]; /* borrowed: -X key=value pairs, split in place */
    const char *x_vals[CLI_MAX_X];
    int n_x;
} cli_opts_t;

extern cli_opts_t cli_opts;

/* A command: name, entry point, one-line summary. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_cmd_t;

/* ---- Errors and output (cli_common.c) ---- */

/** Print "strata: <message>" on stderr. @return CLI_EXIT_FAIL for `return cli_err(...)`. */
int cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Print a notice that is not an error ("strata: <message>", or {"warning":...} with
 * --format json) on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Same as cli_err, for usage errors. @return CLI_EXIT_USAGE. */
int cli_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Write `s` (len bytes, NULL prints null) as a JSON string literal. Valid UTF-8 passes
 * through; each byte of invalid UTF-8 becomes \u00XX so the output stays valid JSON. */
void cli_json_str(FILE *f, const char *s, size_t len);
/** Write a NUL-terminated string as JSON (NULL prints null). */
void cli_json_cstr(FILE *f, const char *s);

/** Dispatch argv[0] among cmds, or print the family help.
 * @return the command's exit code. */
int cli_dispatch(
    const char *family, const cli_cmd_t *cmds, int argc, char **argv, const char *help);

/** The command being run, for messages: "strata group describe" (set by cli_dispatch). */
extern char cli_cmd_path[128];

/** The flag parser of every command: getopt_long over argv (GNU order: flags and
 * arguments may mix; "--" ends the flags). An unknown flag, a missing value or a value
 * given to a flag without one prints one usage error naming the flag and the command.
 * @return the flag's code, -1 at the end (arguments from optind), or '?' after printing
 * a usage error (the caller returns CLI_EXIT_USAGE). */
int cli_getopt(int argc, char **argv, const char *shorts, const struct option *longs);

/** Flag parsing of a command whose only flag is -h/--help: prints `help` for it.
 * @return -1 to go on (arguments from optind), CLI_EXIT_OK after the help, or
 * CLI_EXIT_USAGE after an unknown flag. */
int cli_args_only(int argc, char **argv, const char *help);


/* ---- Parsing helpers ---- */

/** Parse a decimal integer in [lo, hi]. @return 0 or -1 (bad value). */
int cli_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
/** Parse "1000", "500ms", "10s", "2m", "1h" into milliseconds. @return 0 or -1. */
int cli_parse_duration_ms(const char *s, int64_t *out);
/** Parse a time after '@': "1700000000000" (epoch ms), "2024-01-31", "2024-01-31T12:00:00"
 * (UTC) or "-10m" (relative to now) into epoch milliseconds. @return 0 or -1. */
int cli_parse_timestamp_ms(const char *s, int64_t *out);
/** Split "key=value" in place. @return 0 or -1 when there is no '=' or the key is empty. */
int cli_split_kv(char *s, char **key, char **val);
/** Parse a comma list of partitions "0,1,5" into out (max n). @return count or -1. */
int cli_parse_partitions(const char *s, int32_t *out, int n);
/** Decode \n \t \r \\ \0 escapes of a format string in place. */
void cli_unescape(char *s);

/* ---- Record formats (cli_io.c): produce input, consume and archive cat output ---- */

typedef struct {
    char field;      /* 0 for a literal, else the field letter ('k', 'v', 'o', ...) */
    char enc;        /* %k and %v output: 0 raw, 'x' {hex}, 'b' {base64}; %d output: 0
                      * epoch ms, 's' {unix_sec}, 'u' {unix_micro}, 'n' {unix_nano},
                      * 'f' {strftime[FMT]}, 'g' {go[LAYOUT]} (FMT, LAYOUT in lit) */
    const char *lit; /* borrowed: points into the compiled format string or tbuf */
    size_t lit_len;
} cli_fmt_item_t;

typedef struct {
    cli_fmt_item_t items[64];
    int n;
    char tbuf[256]; /* NUL-terminated strftime formats of %d{strftime[...]} items */
    size_t tbuf_used;
    const char *delim; /* record delimiter: the trailing literal (produce) */
    size_t delim_len;
} cli_fmt_t;

/** Compile a format (already unescaped, kept alive: items point into it) into
 * literals and %X fields; `fields` lists the accepted letters.
 * @return 0 or -1 after printing a usage error. */
int cli_fmt_compile(char *s, const char *fields, cli_fmt_t *f);

/** Take -f/--format ARG of a command that prints records (consume, archive cat): "json"
 * and "text" choose the output format (cli_opts), anything else is a record format
 * compiled into f (ARG is unescaped in place and must stay alive).
 * @return 0 or CLI_EXIT_USAGE after printing. */
int cli_record_format_arg(char *arg, cli_fmt_t *f, bool *has_fmt);
/** After parsing: the record format to print with, or NULL for JSON lines. Without -f,
 * `default_json` decides; "text" prints each value on its own line. */
const cli_fmt_t *cli_record_format(cli_fmt_t *f, bool has_fmt, bool default_json);

/* One record header; strings are not NUL-terminated, value NULL means null. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} cli_header_t;

/* A record to print, from a consumer or from the archive. Everything borrowed. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* epoch ms */
    const char *key;   /* NULL: null key */
    size_t key_len;
    const char *value; /* NULL: null value */
    size_t value_len;
    const cli_header_t *headers;
    size_t n_headers;
} cli_record_t;

/** Print a record as one JSON object line: topic, key, value, headers, timestamp,
 * partition, offset. */
void cli_record_print_json(const cli_record_t *r);
/** Print a record with a compiled consume format (%t %k %v %o %p %d %T %h %K %V). */
void cli_record_print_fmt(const cli_fmt_t *f, const cli_record_t *r);

/* ---- librdkafka clients ---- */

/** Build a client configuration: bootstrap.servers, timeouts, quiet logging, the TLS/SASL
 * settings of cli_opts, then the extra key/value pairs (NULL-terminated list of pairs),
 * then -X settings.
 * @return an owned conf, or NULL after printing which setting is bad. */
rd_kafka_conf_t *cli_conf_new(const char *const *extra);
/** Create a client from conf_owned (always consumed). @return it or NULL after printing. */
rd_kafka_t *cli_client_from_conf(rd_kafka_type_t type, rd_kafka_conf_t *conf_owned);

/** Create a client of `type` with bootstrap.servers, -X settings and quiet logging; extra
 * key/value pairs (NULL-terminated list of pairs) are applied before -X.
 * @return the handle or NULL after printing why. */
rd_kafka_t *cli_client_new(rd_kafka_type_t type, const char *const *extra);

/** Fetch full metadata, bounded by cli_opts.timeout_ms; prints the unreachable-broker
 * message on failure. @return metadata (free with rd_kafka_metadata_destroy) or NULL. */
const rd_kafka_metadata_t *cli_metadata(rd_kafka_t *rk);

/** Whether every bootstrap broker has failed to connect (refused, unresolvable, TLS or
 * SASL failure); then prints "cannot reach the cluster at ...: CAUSE". Waits for the
 * cluster poll this so that they fail at once instead of at the timeout. */
bool cli_unreachable(void);

/** A client (producer handle, for admin calls) after checking the cluster answers
 * Metadata, so that an unreachable broker is reported clearly. @return it or NULL. */
rd_kafka_t *cli_connect_checked(void);

/** The topics of md that `pats` select (cli_topic.c), sorted by name, each once: with
 * is_regex, the topics one of the POSIX extended expressions matches whole (internal __*
 * topics only with `internal`, or when an expression starts with "__"); else the named
 * topics, an unknown name being an error. No pattern: every topic.
 * @return the count (out owned, free it) or -1 after printing. */
int cli_select_topics(const rd_kafka_metadata_t *md,
                      char **pats,
                      int n_pats,
                      bool is_regex,
                      bool internal,
                      const rd_kafka_metadata_topic_t ***out);

/** Find a topic in metadata. @return it or NULL. */
const rd_kafka_metadata_topic_t *cli_md_topic(const rd_kafka_metadata_t *md, const char *name);

/** Admin options bounded by the global timeout, for `api`. */
rd_kafka_AdminOptions_t *cli_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t api);

/** Wait for the admin result event of type `ev_type` on q. Prints errors.
 * @return the event (destroy it) or NULL. */
rd_kafka_event_t *cli_admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t ev_type);

/** Describe one config resource. @return the event (destroy) or NULL after printing. */
rd_kafka_event_t *cli_describe_configs(rd_kafka_t *rk,
                                       rd_kafka_ResourceType_t type,
                                       const char *name,
                                       const rd_kafka_ConfigResource_t **res_out);

/** Name of a config source for output ("DYNAMIC_TOPIC_CONFIG" -> "dynamic-topic"). */
const char *cli_config_source_name(rd_kafka_ConfigSource_t src);

/** Resolve a per-partition offset spec (start, end, +N, -N, @ts, N) for a list of
 * partitions of `topic`, using watermarks and ListOffsets by time.
 * @return 0 or CLI_EXIT_* after printing. */
int cli_resolve_offsets(rd_kafka_t *rk,
                        const char *topic,
                        const int32_t *parts,
                        int n_parts,
                        const char *spec,
                        int64_t *out);

/** Same for where reading stops (exclusive): "end" is the current end, an exact offset is
 * kept even past the end (reading waits for it), @TIME is the first offset at or after it
 * (the current end when none). @return 0 or CLI_EXIT_* after printing. */
int cli_resolve_stop_offsets(rd_kafka_t *rk,
                             const char *topic,
                             const int32_t *parts,
                             int n_parts,
                             const char *spec,
                             int64_t *out);

/** Validate an offset spec without a broker. @return 0 or -1. */
int cli_check_offset_spec(const char *spec);

/* ---- Admin HTTP (cli_cluster.c) ---- */

/** GET admin_url + path with a short timeout. @return HTTP status (>0) with *body owned
 * (free), or -1 after printing that the admin API is unreachable. */
long cli_http_get(const char *path, char **body);
/** GET without a word when the admin API cannot be reached (-1), bounded by timeout_ms:
 * to look for a running broker. */
long cli_http_probe(const char *path, int timeout_ms, char **body);
/** Same as cli_http_get with any method and an optional JSON request body (borrowed). */
long cli_http(const char *method, const char *path, const char *req_body, char **body);
/** Print a clear error for a non-2xx admin answer (its JSON error body when present).
 * @return CLI_EXIT_USAGE for 501 (not available yet), else CLI_EXIT_FAIL. */
int cli_http_error(long status, const char *what, const char *body);

/* ---- Command families ---- */
int cli_topic_main(int argc, char **argv);
int cli_cluster_main(int argc, char **argv);
int cli_group_main(int argc, char **argv);
int cli_produce(int argc, char **argv);
int cli_consume(int argc, char **argv);
int cli_storage_main(int argc, char **argv);
int cli_topic_describe_storage(int argc, char **argv); /* cli_storage.c: admin API */
int cli_txn_main(int argc, char **argv);
int cli_archive_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);
int cli_security_main(int argc, char **argv);
int cli_profile_main(int argc, char **argv);

/* ---- Profiles (cli_profile.c) ---- */

/** The settings file to read: ~/.config/strata/profiles/NAME.yaml for the profile in use
 * (--profile, $STRATA_PROFILE, then the one 'strata profile use' chose), else
 * ~/.config/strata/strata.yaml; "" without $HOME. @return 0, or -1 after printing that
 * the profile named does not exist. */
int cli_profile_path(char *out, size_t cap);

#endif
