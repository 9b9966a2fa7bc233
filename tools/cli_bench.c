/* cli_bench.c - `strata bench produce|consume|metadata|loopback|mock`: the Kafka load driver
 * of the benchmarks (bench/), usable against any Kafka-API cluster.
 * Data path measured: librdkafka producer -> TCP -> broker Produce (acks as asked) -> delivery
 * report; broker Fetch -> librdkafka consumer; Metadata round trips. `loopback` measures the
 * TCP limit the consume figure is compared with, and `mock` serves librdkafka's in-memory mock
 * cluster on loopback, the peer baseline the benchmarks run the same scenarios against.
 * Results: a human summary on stdout, or with --format json one JSON object per run (the
 * field names the bench/ scripts and bench/report.py read).
 * Invariants: 1. produce latency is per record, from rd_kafka_produce() to its delivery
 *                report, in a log-bucket histogram (HdrHistogram-style, ~3% precision);
 *             2. produce exits 0 only if every record was delivered, consume only if it read
 *                records without errors. */
#include "tools/cli.h"

#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_MOCK_TOPICS 64

static volatile sig_atomic_t bench_stop;

static void on_signal(int sig)
{
    (void)sig;
    bench_stop = 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- Latency histogram: 32 linear sub-buckets per power of two (values in us) ---- */

#define HIST_SUB     32
#define HIST_SUB_LOG 5
#define HIST_N       (HIST_SUB * 40)

typedef struct {
    uint64_t counts[HIST_N];
    uint64_t total;
    uint64_t max_us;
} hist_t;

static int hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int e = 63 - __builtin_clzll(v); /* e >= HIST_SUB_LOG */
    int sub = (int)((v >> (e - HIST_SUB_LOG)) & (HIST_SUB - 1));
    int idx = (e - HIST_SUB_LOG + 1) * HIST_SUB + sub;
    return idx < HIST_N ? idx : HIST_N - 1;
}

/* The middle of bucket idx, the value reported for it. */
static double hist_value(int idx)
{
    if (idx < HIST_SUB)
        return idx;
    int e = idx / HIST_SUB + HIST_SUB_LOG - 1;
    int sub = idx % HIST_SUB;
    double width = (double)(1ULL << (e - HIST_SUB_LOG));
    return ((double)(1ULL << e) + sub * width) + width / 2;
}

static void hist_add(hist_t *h, uint64_t us)
{
    h->counts[hist_index(us)]++;
    h->total++;
    if (us > h->max_us)
        h->max_us = us;
}

/* Value at quantile q (0..1) in milliseconds; 0 when empty. */
static double hist_ms(const hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->total);
    if (want >= h->total)
        want = h->total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_N; i++) {
        seen += h->counts[i];
        if (seen > want) {
            double v = hist_value(i);
            return (v > (double)h->max_us ? (double)h->max_us : v) / 1000;
        }
    }
    return (double)h->max_us / 1000;
}

/* ---- Options, shared by the subcommands ---- */

typedef struct {
    const char *topic;
    int record_bytes;
    int partitions;
    const char *acks;
    int linger_ms;
    int batch_bytes;
    const char *compression;
    double rate;         /* records/s, 0 = as fast as possible */
    int64_t duration_ms; /* produce: how long; consume: upper bound; mock: 0 = until signal */
    int write_bytes;     /* loopback */
    long queue_kbytes;   /* librdkafka queue.buffering.max.kbytes */
    int count;           /* metadata: requests; consume: passes over the topic */
    int mock_brokers;
    bool is_random; /* produce: incompressible values from a random pool */
    const char *mock_topics[BENCH_MAX_MOCK_TOPICS]; /* borrowed: argv, "name:partitions" */
    int n_mock_topics;
} bench_opts_t;

static const char bench_flags_help[] =
    "Flags:\n"
    "  -t, --topic NAME          topic (default strata-bench)\n"
    "  -s, --record-size BYTES   value size of each record (default 1024)\n"
    "  -p, --partitions N        produce: partitions of the topic, created when missing,\n"
    "                            records spread round-robin (default 1)\n"
    "      --acks all|1|0        produce acks (default all)\n"
    "      --linger-ms MS        librdkafka linger.ms (default 5)\n"
    "      --batch-bytes BYTES   librdkafka batch.size (default 65536)\n"
    "  -z, --compression CODEC   none, gzip, snappy, lz4, zstd (default none)\n"
    "      --rate N              produce: records/s, 0 = as fast as possible (default 0)\n"
    "      --random              produce: incompressible values (default: repetitive text)\n"
    "  -d, --duration DURATION   produce: run time (default 10s); consume: upper bound (60s);\n"
    "                            loopback: run time (3s); mock: lifetime (default: until killed)\n"
    "      --queue-kbytes N      librdkafka queue.buffering.max.kbytes (default 32768)\n"
    "  -n, --count N             produce: records to send (then --duration is only an\n"
    "                            upper bound, default none); metadata: requests to time\n"
    "                            (default 100); consume: read the topic N times (default 1;\n"
    "                            for small logs such as the mock cluster's, ~5 MB/partition)\n"
    "      --write-bytes BYTES   loopback: bytes per write (default 65536)\n"
    "      --mock-brokers N      mock: brokers of the mock cluster (default 1)\n"
    "      --mock-topic NAME:N   mock: create a topic with N partitions (repeatable)\n";

static const char bench_help[] =
    "Usage: strata bench produce|consume|metadata|loopback|mock [flags]\n"
    "Load driver for benchmarks (like librdkafka's rdkafka_performance or rpk's tooling).\n"
    "  produce   produce fixed-size records for a duration, optionally rate-limited; prints\n"
    "            MB/s, records/s and delivery latency p50/p99/p999/max\n"
    "  consume   read every partition of a topic from the start to the end (no group); MB/s\n"
    "  metadata  time full Metadata requests (all topics); p50/p99 latency\n"
    "  loopback  TCP bandwidth over 127.0.0.1 (the limit consume is compared with)\n"
    "  mock      serve librdkafka's in-memory mock cluster; prints its bootstrap servers\n"
    "Results go to stdout, as one JSON object per run with --format json. On a terminal,\n"
    "produce and consume show their progress on stderr once a second.\n"
    "\n";

static const char bench_examples[] =
    "\nExamples:\n"
    "  strata bench produce -t load -p 8 --acks all -s 1024 -d 30s\n"
    "  strata bench produce -t lat --rate 50000 --linger-ms 0 --format json\n"
    "  strata bench consume -t load\n"
    "  strata bench metadata -n 50\n"
    "  strata bench loopback -d 3s\n"
    "  strata bench mock --mock-topic load:8 &   # prints 127.0.0.1:PORT\n"
    "  strata --brokers 127.0.0.1:PORT bench produce -t load -p 8\n";

static int bench_help_out(void)
{
    fputs(bench_help, stdout);
    fputs(bench_flags_help, stdout);
    fputs(bench_examples, stdout);
    return CLI_EXIT_OK;
}

static int parse_int_flag(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (cli_parse_i64(v, lo, hi, out))
        return cli_usage_err("bad %s '%s': use a number from %" PRId64 " to %" PRId64, flag, v, lo,
                             hi);
    return 0;
}

/* Apply one parsed option. @return 0 or CLI_EXIT_USAGE after printing. */
static int bench_opt(bench_opts_t *o, int c, const char *v)
{
    int64_t n = 0;
    switch (c) {
    case 't':
        o->topic = v;
        return 0;
    case 'z':
        o->compression = v;
        return 0;
    case 'A':
        if (strcmp(v, "all") && strcmp(v, "-1") && strcmp(v, "1") && strcmp(v, "0"))
            return cli_usage_err("bad --acks '%s': use all, 1 or 0", v);
        o->acks = v;
        return 0;
    case 'd':
        if (cli_parse_duration_ms(v, &o->duration_ms))
            return cli_usage_err("bad --duration '%s': use 500ms, 10s, 2m ...", v);
        return 0;
    case 'r': {
        char *end;
        o->rate = strtod(v, &end);
        if (*end || o->rate < 0)
            return cli_usage_err("bad --rate '%s': use records per second, 0 = max", v);
        return 0;
    }
    case 'M':
        if (o->n_mock_topics == BENCH_MAX_MOCK_TOPICS || !strchr(v, ':'))
            return cli_usage_err("bad --mock-topic '%s': use NAME:PARTITIONS", v);
        o->mock_topics[o->n_mock_topics++] = v;
        return 0;
    }
    int rc = 0;
    switch (c) {
    case 's':
        rc = parse_int_flag("--record-size", v, 0, 64 << 20, &n), o->record_bytes = (int)n;
        break;
    case 'p':
        rc = parse_int_flag("--partitions", v, 1, 100000, &n), o->partitions = (int)n;
        break;
    case 'L':
        rc = parse_int_flag("--linger-ms", v, 0, 900000, &n), o->linger_ms = (int)n;
        break;
    case 'B':
        rc = parse_int_flag("--batch-bytes", v, 1, 1 << 30, &n), o->batch_bytes = (int)n;
        break;
    case 'Q':
        rc = parse_int_flag("--queue-kbytes", v, 1, 2097151, &n), o->queue_kbytes = (long)n;
        break;
    case 'n':
        rc = parse_int_flag("--count", v, 1, 1000000, &n), o->count = (int)n;
        break;
    case 'W':
        rc = parse_int_flag("--write-bytes", v, 1, 64 << 20, &n), o->write_bytes = (int)n;
        break;
    case 'K':
        rc = parse_int_flag("--mock-brokers", v, 1, 16, &n), o->mock_brokers = (int)n;
        break;
    default:
        return CLI_EXIT_USAGE;
    }
    return rc;
}

/* Parse the flags of a subcommand (argv[0] is its name). A positional argument is the topic.
 * @return 0, -1 after --help, or CLI_EXIT_USAGE. */
static int bench_parse(int argc, char **argv, bench_opts_t *o, int64_t default_duration_ms)
{
    static const struct option longs[] = {{"topic", required_argument, NULL, 't'},
                                          {"record-size", required_argument, NULL, 's'},
                                          {"partitions", required_argument, NULL, 'p'},
                                          {"acks", required_argument, NULL, 'A'},
                                          {"linger-ms", required_argument, NULL, 'L'},
                                          {"batch-bytes", required_argument, NULL, 'B'},
                                          {"compression", required_argument, NULL, 'z'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"queue-kbytes", required_argument, NULL, 'Q'},
                                          {"count", required_argument, NULL, 'n'},
                                          {"write-bytes", required_argument, NULL, 'W'},
                                          {"mock-brokers", required_argument, NULL, 'K'},
                                          {"mock-topic", required_argument, NULL, 'M'},
                                          {"random", no_argument, NULL, 'R'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (bench_opts_t){.topic = "strata-bench",
                        .record_bytes = 1024,
                        .partitions = 1,
                        .acks = "all",
                        .linger_ms = 5,
                        .batch_bytes = 65536,
                        .compression = "none",
                        .duration_ms = default_duration_ms,
                        .write_bytes = 65536,
                        .queue_kbytes = 32768,
                        .count = 100,
                        .mock_brokers = 1};
    int c;
    while ((c = cli_getopt(argc, argv, "t:s:p:z:d:n:h", longs)) != -1) {
        if (c == 'h')
            return bench_help_out(), -1;
        if (c == '?')
            return CLI_EXIT_USAGE;
        if (c == 'R') {
            o->is_random = true;
            continue;
        }
        int rc = bench_opt(o, c, optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        o->topic = argv[optind++];
    if (optind < argc)
        return cli_usage_err("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* ---- Topic creation when the topic is missing ---- */

/* Partitions of `topic` in a full Metadata answer (asking for the topic by name would make a
 * broker with auto-create on create it with its default partition count). @return the count,
 * or -1 when the topic does not exist or the cluster did not answer. */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md;
    int n = -1;
    if (rd_kafka_metadata(rk, 1, NULL, &md, cli_opts.timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const rd_kafka_metadata_topic_t *t = cli_md_topic(md, topic);
        if (t && t->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            n = t->partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    return n;
}

/* Create `topic` with `partitions` unless it already has that many, then wait until metadata
 * shows them all. @return 0 or CLI_EXIT_FAIL after printing. */
static int ensure_topic(rd_kafka_t *rk, const char *topic, int partitions)
{
    if (topic_partitions(rk, topic) >= partitions)
        return 0;
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
    if (!nt)
        return cli_err("cannot create topic %s: %s", topic, err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = cli_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, cli_opts.timeout_ms + 5000);
    int rc = 0;
    if (!ev) {
        rc = cli_err("cannot create topic %s: timed out", topic);
    } else if (rd_kafka_event_error(ev)) {
        rc = cli_err("cannot create topic %s: %s", topic, rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        for (size_t i = 0; i < n && !rc; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                rc = cli_err("cannot create topic %s: %s", topic, rd_kafka_err2str(e));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    for (int i = 0; !rc && i < 100 && topic_partitions(rk, topic) < partitions; i++)
        usleep(100000);
    if (!rc && topic_partitions(rk, topic) < partitions)
        rc = cli_err("topic %s: %d partitions do not appear in metadata", topic, partitions);
    return rc;
}

/* ---- produce ---- */

typedef struct {
    hist_t hist;
    uint64_t delivered;
    uint64_t failed;
    uint64_t bytes;
    rd_kafka_resp_err_t first_err;
    const char *topic; /* borrowed: the produced topic */
    long avg_batch;    /* last non-zero average batch size in librdkafka's statistics */
} prod_state_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    prod_state_t *st = opaque;
    if (m->err) {
        if (!st->failed)
            st->first_err = m->err;
        st->failed++;
        return;
    }
    int64_t t0 = (int64_t)(intptr_t)m->_private;
    hist_add(&st->hist, (uint64_t)((now_ns() - t0) / 1000));
    st->delivered++;
    st->bytes += m->len;
}

/* The average produced batch size of a statistics window (topics.T.batchsize.avg). */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    (void)len;
    prod_state_t *st = opaque;
    char key[300];
    snprintf(key, sizeof(key), "\"topic\":\"%s\"", st->topic);
    const char *p = strstr(json, key);
    if (p && (p = strstr(p, "\"batchsize\":")) && (p = strstr(p, "\"avg\":"))) {
        long avg = atol(p + 6);
        if (avg > 0)
            st->avg_batch = avg;
    }
    return 0; /* librdkafka frees json */
}

static rd_kafka_t *producer_new(const bench_opts_t *o, prod_state_t *st)
{
    char linger[24], batch[24], queue[24];
    snprintf(linger, sizeof(linger), "%d", o->linger_ms);
    snprintf(batch, sizeof(batch), "%d", o->batch_bytes);
    snprintf(queue, sizeof(queue), "%ld", o->queue_kbytes);
    /* A bounded queue: at max rate the run ends with a short drain, not seconds of backlog.
     * Nagle off, as the Java client does. -X settings are applied after these and win. */
    const char *const extra[] = {"acks",
                                 o->acks,
                                 "linger.ms",
                                 linger,
                                 "batch.size",
                                 batch,
                                 "compression.codec",
                                 o->compression,
                                 "queue.buffering.max.kbytes",
                                 queue,
                                 "queue.buffering.max.messages",
                                 "1000000",
                                 "statistics.interval.ms",
                                 "1000",
                                 "socket.nagle.disable",
                                 "true",
                                 NULL};
    rd_kafka_conf_t *conf = cli_conf_new(extra);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, st);
    return cli_client_from_conf(RD_KAFKA_PRODUCER, conf);
}

/* Pace the n-th record to t0 + n / rate. Sleeps rather than spins (the broker shares this
 * machine's cores); records that fell due meanwhile go out as a burst, as from an application
 * with a fixed average rate. @return true when the record may be sent now. */
static bool pace(rd_kafka_t *rk, const bench_opts_t *o, int64_t t0, uint64_t sent, int64_t now)
{
    if (o->rate <= 0)
        return true;
    int64_t due = t0 + (int64_t)((double)sent * 1e9 / o->rate);
    if (now >= due)
        return true;
    if (due - now >= 1000000) {
        rd_kafka_poll(rk, 1); /* serves delivery reports as they come */
    } else {
        rd_kafka_poll(rk, 0);
        int64_t wait_ns = due - now < 100000 ? 100000 : due - now;
        struct timespec ts = {0, (long)wait_ns};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void
produce_report(const bench_opts_t *o, const prod_state_t *st, double secs, uint64_t queue_full)
{
    double mbps = (double)st->bytes / secs / 1e6, rps = (double)st->delivered / secs;
    const hist_t *h = &st->hist;
    double max_ms = (double)h->max_us / 1000;
    if (!cli_opts.is_json) {
        printf("produce topic=%s partitions=%d acks=%s record=%dB linger=%dms batch=%dB "
               "compression=%s rate=%s\n"
               "  %.1f MB/s  %.0f records/s  delivered=%" PRIu64 " failed=%" PRIu64 "\n"
               "  latency ms p50=%.2f p99=%.2f p999=%.2f max=%.2f  avg batch=%ldB\n",
               o->topic, o->partitions, o->acks, o->record_bytes, o->linger_ms, o->batch_bytes,
               o->compression, o->rate > 0 ? "limited" : "max", mbps, rps, st->delivered,
               st->failed, hist_ms(h, 0.5), hist_ms(h, 0.99), hist_ms(h, 0.999), max_ms,
               st->avg_batch);
        return;
    }
    printf("{\"mode\":\"produce\",\"topic\":");
    cli_json_cstr(stdout, o->topic);
    printf(",\"partitions\":%d,\"acks\":\"%s\",\"record_bytes\":%d,\"linger_ms\":%d,"
           "\"batch_bytes\":%d,\"compression\":\"%s\",\"rate\":%.0f,\"seconds\":%.3f,"
           "\"records\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"mb_per_s\":%.3f,"
           "\"records_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
           "\"max_ms\":%.3f,\"avg_batch_bytes\":%ld,\"queue_full\":%" PRIu64 "}\n",
           o->partitions, o->acks, o->record_bytes, o->linger_ms, o->batch_bytes, o->compression,
           o->rate, secs, st->delivered, st->failed, mbps, rps, hist_ms(h, 0.5), hist_ms(h, 0.99),
           hist_ms(h, 0.999), max_ms, st->avg_batch, queue_full);
}

static bool bench_has_count(int argc, char **argv);

/* True if argv sets -d/--duration. */
static bool bench_has_duration(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "-d", 2) || !strncmp(argv[i], "--duration", 10))
            return true;
    return false;
}

/* Progress on a terminal only (stderr, once a second, one line rewritten in place): pipes
 * and --format json stay quiet. */
static bool progress_on(void)
{
    return isatty(STDERR_FILENO) && !cli_opts.is_json;
}

static void
progress(int64_t *next_ns, const char *what, uint64_t records, uint64_t bytes, int64_t t0)
{
    int64_t now = now_ns();
    if (now < *next_ns)
        return;
    *next_ns = now + 1000000000;
    double secs = (double)(now - t0) / 1e9;
    fprintf(stderr, "\rstrata: %s %" PRIu64 " records, %.1f MB in %.0f s (%.1f MB/s)   ", what,
            records, (double)bytes / 1e6, secs, secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
}

static void progress_end(bool shown)
{
    if (shown)
        fputs("\r\033[K", stderr);
}

static int cmd_produce(int argc, char **argv)
{
    bench_opts_t o;
    int rc = bench_parse(argc, argv, &o, 10000);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    prod_state_t *st = calloc(1, sizeof(*st));
    /* Values are slices of a pool: 16 MiB of random bytes with --random (larger than a zstd
     * window, so archived segments do not shrink), else one repetitive printable value. */
    size_t pool_bytes = o.is_random ? ((size_t)16 << 20) + (size_t)o.record_bytes : 0;
    char *payload = malloc(pool_bytes + (size_t)o.record_bytes + 1);
    if (!st || !payload)
        return free(st), free(payload), cli_err("out of memory");
    st->topic = o.topic;
    st->avg_batch = -1;
    rd_kafka_t *rk = producer_new(&o, st);
    if (!rk || ensure_topic(rk, o.topic, o.partitions)) {
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o.topic, NULL);
    for (int i = 0; i < o.record_bytes; i++)
        payload[i] = (char)('a' + (i * 7 + i / 13) % 26); /* some entropy, printable */
    uint64_t seed = (uint64_t)now_ns() | 1;
    for (size_t i = 0; i < pool_bytes; i++) { /* xorshift64 */
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        payload[i] = (char)(seed >> 24);
    }
    uint64_t sent = 0, queue_full = 0;
    /* -n N: N records; --duration then bounds the run only when given. */
    uint64_t limit = bench_has_count(argc, argv) ? (uint64_t)o.count : 0;
    bool show = progress_on();
    int64_t t0 = now_ns(), now, next_progress = t0;
    int64_t end =
        limit && !bench_has_duration(argc, argv) ? INT64_MAX : t0 + o.duration_ms * 1000000;
    while ((now = now_ns()) < end && !bench_stop && (!limit || sent < limit)) {
        if (show)
            progress(&next_progress, "produced", st->delivered, st->bytes, t0);
        if (!pace(rk, &o, t0, sent, now))
            continue;
        int32_t part = (int32_t)(sent % (uint64_t)o.partitions);
        const char *val =
            pool_bytes ? payload + (sent * 4099) % (pool_bytes - (size_t)o.record_bytes) : payload;
        if (rd_kafka_produce(rkt, part, RD_KAFKA_MSG_F_COPY, (void *)val, (size_t)o.record_bytes,
                             NULL, 0, (void *)(intptr_t)now_ns()) != 0) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rc = cli_err("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
                break;
            }
            queue_full++;
            rd_kafka_poll(rk, 1);
            continue;
        }
        if ((++sent & 255) == 0)
            rd_kafka_poll(rk, 0);
    }
    int64_t drain_from = now_ns();
    while (rd_kafka_outq_len(rk) > 0 && now_ns() - drain_from < 60 * (int64_t)1000000000) {
        rd_kafka_poll(rk, 10);
        if (show)
            progress(&next_progress, "produced", st->delivered, st->bytes, t0);
    }
    progress_end(show);
    produce_report(&o, st, (double)(now_ns() - t0) / 1e9, queue_full);
    if (st->failed)
        fprintf(stderr, "strata: %" PRIu64 " records failed, first: %s\n", st->failed,
                rd_kafka_err2str(st->first_err));
    if (!rc && (st->failed || st->delivered == 0))
        rc = CLI_EXIT_FAIL;
    rd_kafka_topic_destroy(rkt);
out:
    if (rk)
        rd_kafka_destroy(rk);
    free(payload);
    free(st);
    return rc;
}

/* ---- consume ---- */

typedef struct {
    uint64_t records, bytes;
    int eofs, errors;
    int64_t first_ns, last_ns;
} cons_state_t;

/* Read every partition from the beginning to its end, `passes` times over. */
static int consume_loop(
    rd_kafka_topic_t *rkt, rd_kafka_queue_t *q, int np, int passes, int64_t end, cons_state_t *cs)
{
    rd_kafka_message_t *batch[1024];
    bool show = progress_on();
    int64_t t0 = now_ns(), next_progress = t0;
    for (int pass = 0; pass < passes; pass++) {
        for (int p = 0; p < np; p++) {
            if (pass)
                rd_kafka_consume_stop(rkt, p);
            if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q) != 0)
                return cli_err("consume %s/%d: %s", rd_kafka_topic_name(rkt), p,
                               rd_kafka_err2str(rd_kafka_last_error()));
        }
        cs->eofs = 0;
        while (cs->eofs < np && now_ns() < end && !bench_stop) {
            ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch, 1024);
            if (show)
                progress(&next_progress, "consumed", cs->records, cs->bytes, t0);
            for (ssize_t i = 0; i < n; i++) {
                rd_kafka_message_t *m = batch[i];
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    cs->eofs++;
                    cs->last_ns = now_ns();
                } else if (m->err) {
                    if (!cs->errors++)
                        fprintf(stderr, "strata: consume error: %s\n", rd_kafka_message_errstr(m));
                } else {
                    if (!cs->first_ns)
                        cs->first_ns = now_ns();
                    cs->records++;
                    cs->bytes += m->len;
                }
                rd_kafka_message_destroy(m);
            }
        }
        if (cs->eofs < np) {
            cs->last_ns = now_ns();
            break;
        }
    }
    progress_end(show);
    return 0;
}

static void consume_report(const char *topic, int np, const cons_state_t *cs, int64_t t0)
{
    /* Throughput from the first record to the last EOF: connecting and the first fetch's
     * metadata round trips are not the read path (they dominate a small log). */
    double secs = (double)(cs->last_ns - t0) / 1e9;
    double read_s = cs->first_ns ? (double)(cs->last_ns - cs->first_ns) / 1e9 : secs;
    if (read_s <= 0)
        read_s = secs;
    double mbps = (double)cs->bytes / read_s / 1e6, rps = (double)cs->records / read_s;
    bool complete = cs->eofs == np;
    if (!cli_opts.is_json) {
        printf("consume topic=%s partitions=%d\n  %.1f MB/s  %.0f records/s  records=%" PRIu64
               " in %.2f s (first record after %.1f ms)%s\n",
               topic, np, mbps, rps, cs->records, secs,
               cs->first_ns ? (double)(cs->first_ns - t0) / 1e6 : -1.0,
               complete ? "" : "  [stopped before the end]");
        return;
    }
    printf("{\"mode\":\"consume\",\"topic\":");
    cli_json_cstr(stdout, topic);
    printf(",\"partitions\":%d,\"seconds\":%.3f,\"read_seconds\":%.3f,\"records\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"mb_per_s\":%.3f,\"records_per_s\":%.1f,\"complete\":%s,"
           "\"errors\":%d}\n",
           np, secs, read_s, cs->records, cs->bytes, mbps, rps, complete ? "true" : "false",
           cs->errors);
}

/* True if argv sets -n/--count (consume defaults to one pass, metadata to 100 requests). */
static bool bench_has_count(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-n") || !strncmp(argv[i], "--count", 7) || !strncmp(argv[i], "-n", 2))
            return true;
    return false;
}

static int cmd_consume(int argc, char **argv)
{
    bench_opts_t o;
    int rc = bench_parse(argc, argv, &o, 60000);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!bench_has_count(argc, argv))
        o.count = 1;
    static const char *const extra[] = {"enable.partition.eof",
                                        "true",
                                        "queued.max.messages.kbytes",
                                        "262144",
                                        "fetch.message.max.bytes",
                                        "4194304",
                                        "fetch.max.bytes",
                                        "52428800",
                                        "fetch.wait.max.ms",
                                        "100",
                                        NULL};
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_CONSUMER, extra);
    if (!rk)
        return CLI_EXIT_FAIL;
    int np = topic_partitions(rk, o.topic);
    if (np < 1) {
        rd_kafka_destroy(rk);
        return cli_err("no such topic: %s", o.topic);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o.topic, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int64_t t0 = now_ns();
    cons_state_t cs = {0};
    rc = consume_loop(rkt, q, np, o.count, t0 + o.duration_ms * 1000000, &cs);
    if (!rc) {
        consume_report(o.topic, np, &cs, t0);
        rc = cs.records == 0 || cs.errors ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    for (int p = 0; p < np; p++)
        rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- metadata: latency of full Metadata requests ---- */

static int cmd_metadata(int argc, char **argv)
{
    bench_opts_t o;
    int rc = bench_parse(argc, argv, &o, 0);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    rd_kafka_t *rk = cli_client_new(RD_KAFKA_PRODUCER, NULL);
    if (!rk)
        return CLI_EXIT_FAIL;
    hist_t *h = calloc(1, sizeof(*h));
    int topics = 0, partitions = 0;
    for (int i = 0; i < o.count && !rc && !bench_stop; i++) {
        const rd_kafka_metadata_t *md = NULL;
        int64_t t0 = now_ns();
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, cli_opts.timeout_ms);
        if (err) {
            rc = cli_err("metadata: %s", rd_kafka_err2str(err));
            break;
        }
        hist_add(h, (uint64_t)((now_ns() - t0) / 1000));
        topics = md->topic_cnt;
        partitions = 0;
        for (int t = 0; t < md->topic_cnt; t++)
            partitions += md->topics[t].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (!rc && cli_opts.is_json)
        printf("{\"mode\":\"metadata\",\"requests\":%" PRIu64 ",\"topics\":%d,\"partitions\":%d,"
               "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               h->total, topics, partitions, hist_ms(h, 0.5), hist_ms(h, 0.99),
               (double)h->max_us / 1000);
    else if (!rc)
        printf("metadata: %" PRIu64 " requests, %d topics, %d partitions\n"
               "  latency ms p50=%.2f p99=%.2f max=%.2f\n",
               h->total, topics, partitions, hist_ms(h, 0.5), hist_ms(h, 0.99),
               (double)h->max_us / 1000);
    free(h);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- loopback TCP probe: one writer thread, one reader ---- */

typedef struct {
    int fd;
    int write_bytes;
    int64_t end_ns;
} lb_writer_t;

static void *lb_write(void *arg)
{
    lb_writer_t *w = arg;
    char *buf = calloc(1, (size_t)w->write_bytes);
    while (buf && now_ns() < w->end_ns) {
        ssize_t n = write(w->fd, buf, (size_t)w->write_bytes);
        if (n < 0 && errno != EINTR)
            break;
    }
    shutdown(w->fd, SHUT_WR);
    free(buf);
    return NULL;
}

/* A connected loopback pair. @return 0 or -1 (errno set). */
static int lb_connect(int *ls, int *c, int *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    *ls = socket(AF_INET, SOCK_STREAM, 0);
    *c = *s = -1;
    if (*ls < 0 || bind(*ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(*ls, 1) != 0 ||
        getsockname(*ls, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *c = socket(AF_INET, SOCK_STREAM, 0);
    if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    *s = accept(*ls, NULL, NULL);
    return *s < 0 ? -1 : 0;
}

static int cmd_loopback(int argc, char **argv)
{
    bench_opts_t o;
    int rc = bench_parse(argc, argv, &o, 3000);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    int ls, c, s;
    if (lb_connect(&ls, &c, &s)) {
        rc = cli_err("loopback: %s", strerror(errno));
        goto out;
    }
    int64_t t0 = now_ns();
    lb_writer_t w = {.fd = c, .write_bytes = o.write_bytes, .end_ns = t0 + o.duration_ms * 1000000};
    pthread_t th;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (!buf || pthread_create(&th, NULL, lb_write, &w)) {
        free(buf);
        rc = cli_err("loopback: cannot start the writer");
        goto out;
    }
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(s, buf, cap)) > 0 || (n < 0 && errno == EINTR))
        total += n > 0 ? (uint64_t)n : 0;
    double secs = (double)(now_ns() - t0) / 1e9;
    pthread_join(th, NULL);
    free(buf);
    double mbps = (double)total / secs / 1e6;
    if (cli_opts.is_json)
        printf("{\"mode\":\"loopback\",\"write_bytes\":%d,\"seconds\":%.3f,\"mb_per_s\":%.3f}\n",
               o.write_bytes, secs, mbps);
    else
        printf("loopback: %d B writes, %.1f MB/s over %.2f s\n", o.write_bytes, mbps, secs);
out:
    if (s >= 0)
        close(s);
    if (c >= 0)
        close(c);
    if (ls >= 0)
        close(ls);
    return rc;
}

/* ---- mock: librdkafka's in-memory mock cluster, served on loopback ---- */

static int mock_topics(rd_kafka_mock_cluster_t *mc, const bench_opts_t *o)
{
    for (int i = 0; i < o->n_mock_topics; i++) {
        char name[256];
        const char *colon = strrchr(o->mock_topics[i], ':');
        int64_t parts;
        snprintf(name, sizeof(name), "%.*s", (int)(colon - o->mock_topics[i]), o->mock_topics[i]);
        if (!name[0] || cli_parse_i64(colon + 1, 1, 100000, &parts))
            return cli_usage_err("bad --mock-topic '%s': use NAME:PARTITIONS", o->mock_topics[i]);
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, (int)parts, 1);
        if (err)
            return cli_err("mock topic %s: %s", name, rd_kafka_err2str(err));
    }
    return 0;
}

static int cmd_mock(int argc, char **argv)
{
    bench_opts_t o;
    int rc = bench_parse(argc, argv, &o, 0);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* This handle only hosts the mock cluster: quiet its "no bootstrap.servers" notice. */
    if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK)
        return rd_kafka_conf_destroy(conf), cli_err("mock: %s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk)
        return rd_kafka_conf_destroy(conf), cli_err("mock: %s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, o.mock_brokers);
    if (!mc) {
        rd_kafka_destroy(rk);
        return cli_err("mock: cannot create the mock cluster");
    }
    rc = mock_topics(mc, &o);
    if (!rc) {
        printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);
        int64_t end = o.duration_ms ? now_ns() + o.duration_ms * 1000000 : INT64_MAX;
        while (!bench_stop && now_ns() < end)
            usleep(50000);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Family ---- */

int cli_bench_main(int argc, char **argv)
{
    static const cli_cmd_t cmds[] = {
        {"produce", cmd_produce, "produce load; MB/s, records/s, latency percentiles"},
        {"consume", cmd_consume, "read a topic from start to end; MB/s"},
        {"metadata", cmd_metadata, "latency of full Metadata requests"},
        {"loopback", cmd_loopback, "TCP bandwidth over 127.0.0.1"},
        {"mock", cmd_mock, "serve librdkafka's in-memory mock cluster (peer baseline)"},
        {NULL, NULL, NULL}};
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return bench_help_out();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return cli_dispatch("bench", cmds, argc - 1, argv + 1,
                        "Usage: strata bench COMMAND [flags]\n"
                        "Load driver for benchmarks (like librdkafka's rdkafka_performance).\n");
}
