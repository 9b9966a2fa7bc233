/* cli_bench.c - `strata bench produce|consume|fetch|metadata|loopback|mock`: the Kafka load
 * driver of the benchmarks (bench/), usable against any Kafka-API cluster.
 * Data path measured: librdkafka producer -> TCP -> broker Produce (acks as asked) -> delivery
 * report; broker Fetch -> librdkafka consumer, or -> `fetch`, a raw client at record-batch
 * level (kafka/ codec, CRC-32C per batch, no per-record work); Metadata round trips. `loopback`
 * measures the TCP limit the consume figure is compared with, and `mock` serves librdkafka's
 * in-memory mock cluster on loopback, the peer baseline the benchmarks run the same scenarios
 * against.
 * Results: a human summary on stdout, or with --format json one JSON object per run (the
 * field names the bench/ scripts and bench/report.py read).
 * Invariants: 1. produce latency is per record, from rd_kafka_produce() to its delivery
 *                report, in a log-bucket histogram (HdrHistogram-style, ~3% precision);
 *             2. produce exits 0 only if every record was delivered, consume only if it read
 *                records without errors, fetch only if it read every partition to its end
 *                with every batch's CRC-32C right and no error;
 *             3. fetch trusts no byte from the network: frames, decoded fields and batch
 *                lengths are bounds-checked and capped before use. */
#include "tools/cli.h"

#include "core/plog.h"
#include "core/st_crc32c.h"
#include "kafka/kp.h"

#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
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
    int32_t fetch_max_bytes;     /* fetch: FetchRequest MaxBytes */
    int32_t partition_max_bytes; /* fetch: PartitionMaxBytes */
    bool is_random;              /* produce: incompressible values from a random pool */
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
    "      --mock-topic NAME:N   mock: create a topic with N partitions (repeatable)\n"
    "      --fetch-max-bytes N   fetch: bytes per Fetch response (default 52428800, as\n"
    "                            consume's fetch.max.bytes)\n"
    "      --partition-max-bytes N  fetch: bytes per partition per Fetch (default 4194304,\n"
    "                            as consume's fetch.message.max.bytes)\n";

static const char bench_help[] =
    "Usage: strata bench produce|consume|fetch|metadata|loopback|mock [flags]\n"
    "Load driver for benchmarks (like librdkafka's rdkafka_performance or rpk's tooling).\n"
    "  produce   produce fixed-size records for a duration, optionally rate-limited; prints\n"
    "            MB/s, records/s and delivery latency p50/p99/p999/max\n"
    "  consume   read every partition of a topic from the start to the end (no group); MB/s\n"
    "            of record values (librdkafka: parses every record)\n"
    "  fetch     the same read with raw Fetch v12 requests at record-batch level: one Fetch\n"
    "            in flight per leader, each batch's CRC-32C checked, records counted from\n"
    "            batch headers, nothing done per record; MB/s of record batches, and per\n"
    "            Fetch the time to its first bytes, receiving, and walking it. Plain TCP\n"
    "            only (no TLS/SASL, -X ignored); exits 1 on any error or before the end\n"
    "  metadata  time full Metadata requests (all topics); p50/p99 latency\n"
    "  loopback  TCP bandwidth over 127.0.0.1 (the limit consume is compared with)\n"
    "  mock      serve librdkafka's in-memory mock cluster; prints its bootstrap servers\n"
    "Results go to stdout, as one JSON object per run with --format json. On a terminal,\n"
    "produce, consume and fetch show their progress on stderr once a second.\n"
    "\n";

static const char bench_examples[] =
    "\nExamples:\n"
    "  strata bench produce -t load -p 8 --acks all -s 1024 -d 30s\n"
    "  strata bench produce -t lat --rate 50000 --linger-ms 0 --format json\n"
    "  strata bench consume -t load\n"
    "  strata bench fetch -t load --format json\n"
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
    case 'F':
        rc = parse_int_flag("--fetch-max-bytes", v, 1, 1 << 30, &n),
        o->fetch_max_bytes = (int32_t)n;
        break;
    case 'P':
        rc = parse_int_flag("--partition-max-bytes", v, 1, 1 << 30, &n);
        o->partition_max_bytes = (int32_t)n;
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
                                          {"fetch-max-bytes", required_argument, NULL, 'F'},
                                          {"partition-max-bytes", required_argument, NULL, 'P'},
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
                        .mock_brokers = 1,
                        .fetch_max_bytes = 50 << 20,
                        .partition_max_bytes = 4 << 20};
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

/* ---- fetch: a raw Kafka consumer at record-batch level ----
 * `bench consume` measures librdkafka as much as the broker: its fetch thread parses every
 * record (0.5-0.6 ms of CPU per MB of 1 KiB records) before it sends the next Fetch. This
 * driver does what a consumer must do per batch and nothing per record: one Fetch in flight
 * per leader connection, every response decoded with bounds checks (the kafka/ codec), every
 * record batch's header walked and its CRC-32C checked, records counted from the header, the
 * next offset taken from lastOffsetDelta. Versions are fixed, no ApiVersions: Metadata v12 and
 * Fetch v12 (topics by name), served by Strata (0-12, 0-17) and Apache Kafka 4.x (4-13, 4-17).
 * Plain TCP only. */

#define FETCH_VERSION        12
#define FETCH_MD_VERSION     12
#define FETCH_MAX_WAIT_MS    100                /* bench consume's fetch.wait.max.ms */
#define FETCH_ARENA_BYTES    ((size_t)16 << 20) /* decoded structs of one response */
#define FETCH_FRAME_SLACK    ((size_t)64 << 20) /* a response past max_bytes: KIP-74 */
#define FETCH_MAX_STALLS     200                /* Fetches in a row that move nothing */
#define FETCH_MAX_BROKERS    64
#define FETCH_MAX_PARTITIONS 100000
#define FETCH_CONTROL_BATCH  0x20 /* attributes bit 5: transaction markers, not records */

/* One partition being read. */
typedef struct {
    int32_t partition;
    int64_t offset;         /* the next offset to fetch */
    int64_t high_watermark; /* from the latest response; -1 before the first */
    uint64_t asked;         /* number of the last Fetch that listed it */
    uint64_t answered;      /* number of the last Fetch whose response held it */
} fetch_part_t;

struct fetch_job;

/* A connection to one partition leader: one Fetch in flight at a time. */
typedef struct {
    struct fetch_job *job; /* borrowed: the run */
    char host[256];
    int port;
    int32_t node_id;
    fetch_part_t *parts; /* owned: the partitions it leads, sorted by partition */
    int n_parts;
    kp_fetch_request_partition_t *req_parts; /* owned: n_parts request slots */
    int fd;
    int32_t corr; /* correlation id of the last request */
    int rot;      /* index of the partition listed first in the next Fetch */
    kp_writer_t w;
    kp_arena_t arena;
    uint8_t *buf; /* owned: the last response frame */
    size_t cap;
    /* results; counters are atomic (conns[0]'s thread shows the progress of all) */
    uint64_t records, bytes, batches, fetches, partial_batches;
    int64_t first_ns, last_ns; /* first Fetch sent, last response handled */
    int64_t size_ns, done_ns;  /* the last response's size prefix, and its last byte, read */
    /* sums over the Fetches: sent -> first bytes (the broker's part), first -> last byte
     * (the transfer), last byte -> decoded and walked (the reader's own work) */
    int64_t wait_ns, receive_ns, walk_ns;
    bool is_complete;
    int rc;
} fetch_conn_t;

typedef struct fetch_job {
    const char *topic; /* borrowed: argv */
    int passes;
    int32_t max_bytes, partition_max_bytes;
    int64_t end_ns;
    fetch_conn_t *conns; /* owned: one per leader */
    int n_conns, n_partitions;
    int failed; /* atomic: a connection failed, the others stop */
} fetch_job_t;

/* Split "host:port", "[v6]:port" or "host" (port 9092) of a brokers list item. */
static int fetch_split_addr(const char *s, size_t n, char *host, size_t host_len, int *port)
{
    const char *colon = NULL, *h = s;
    size_t hl = n;
    for (size_t i = n; i-- > 0;)
        if (s[i] == ':' || s[i] == ']') {
            colon = s[i] == ':' ? s + i : NULL;
            break;
        }
    int64_t p = 9092;
    if (colon) {
        char ps[16];
        snprintf(ps, sizeof(ps), "%.*s", (int)(s + n - colon - 1), colon + 1);
        if (cli_parse_i64(ps, 1, 65535, &p))
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= host_len)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* Connect c to c->host:c->port, with the CLI's timeout on connect, send and receive.
 * @return 0, or -1 with why filled. */
static int fetch_connect(fetch_conn_t *c, char *why, size_t why_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", c->port);
    int gai = getaddrinfo(c->host, ps, &hints, &res);
    if (gai) {
        snprintf(why, why_len, "%s", gai_strerror(gai));
        return -1;
    }
    struct timeval tv = {cli_opts.timeout_ms / 1000, (cli_opts.timeout_ms % 1000) * 1000};
    int one = 1;
    c->fd = -1;
    for (struct addrinfo *a = res; a && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect() too */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            c->fd = fd;
        } else {
            snprintf(why, why_len, "%s", errno == EINPROGRESS ? "timed out" : strerror(errno));
            close(fd);
        }
    }
    freeaddrinfo(res);
    return c->fd < 0 ? -1 : 0;
}

/* Start a request in c->w: the size slot, then the request header. @return the writer error. */
static int fetch_req_begin(fetch_conn_t *c, int16_t api_key, int16_t version)
{
    kp_writer_reset(&c->w);
    kp_writer_reserve(&c->w, 4);
    kp_request_header_t h;
    kp_request_header_init(&h);
    h.request_api_key = api_key;
    h.request_api_version = version;
    h.correlation_id = ++c->corr;
    h.client_id = KP_STR_LIT("strata-bench-fetch");
    return kp_request_header_encode(&c->w, kp_request_header_version(api_key, version), &h);
}

/* Send the request in c->w (encoded with status enc_rc). @return 0 or CLI_EXIT_FAIL. */
static int fetch_send(fetch_conn_t *c, int enc_rc)
{
    if (enc_rc || !kp_writer_ok(&c->w) || c->w.len - 4 > INT32_MAX)
        return cli_err("fetch: cannot encode a request: %s",
                       st_strerror(enc_rc ? enc_rc : c->w.err));
    kp_writer_patch_i32(&c->w, 0, (int32_t)(c->w.len - 4));
    for (size_t off = 0; off < c->w.len;) {
        ssize_t n = send(c->fd, c->w.buf + off, c->w.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cli_err("fetch: sending to %s:%d: %s", c->host, c->port,
                           errno == EAGAIN ? "timed out" : strerror(errno));
        off += (size_t)n;
    }
    return 0;
}

/* Read exactly len bytes. @return 0 or CLI_EXIT_FAIL after printing. */
static int fetch_read(fetch_conn_t *c, uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = recv(c->fd, p, len, 0);
        if (n > 0) {
            p += n, len -= (size_t)n;
        } else if (n == 0) {
            return cli_err("fetch: %s:%d closed the connection", c->host, c->port);
        } else if (errno != EINTR) {
            return cli_err("fetch: reading from %s:%d: %s", c->host, c->port,
                           errno == EAGAIN ? "no answer within the timeout" : strerror(errno));
        }
    }
    return 0;
}

/* Receive the answer to the last request (at most max_bytes) into c->buf and check its header;
 * r is left at the body. @return 0 or CLI_EXIT_FAIL after printing. */
static int
fetch_recv(fetch_conn_t *c, int16_t api_key, int16_t version, size_t max_bytes, kp_reader_t *r)
{
    uint8_t sz[4];
    if (fetch_read(c, sz, 4))
        return CLI_EXIT_FAIL;
    c->size_ns = now_ns();
    int32_t n =
        (int32_t)((uint32_t)sz[0] << 24 | (uint32_t)sz[1] << 16 | (uint32_t)sz[2] << 8 | sz[3]);
    if (n < 4 || (size_t)n > max_bytes)
        return cli_err("fetch: %s:%d announced a %" PRId32 "-byte response (allowed: 4 to %zu)",
                       c->host, c->port, n, max_bytes);
    if ((size_t)n > c->cap) {
        uint8_t *b = realloc(c->buf, (size_t)n);
        if (!b)
            return cli_err("fetch: out of memory for a %" PRId32 "-byte response", n);
        c->buf = b, c->cap = (size_t)n;
    }
    if (fetch_read(c, c->buf, (size_t)n))
        return CLI_EXIT_FAIL;
    c->done_ns = now_ns();
    kp_reader_init(r, c->buf, (size_t)n);
    kp_arena_reset(&c->arena);
    kp_response_header_t h;
    if (kp_response_header_decode(r, kp_response_header_version(api_key, version), &h, &c->arena) ||
        h.correlation_id != c->corr)
        return cli_err("fetch: bad response header from %s:%d (correlation id %" PRId32
                       ", expected %" PRId32 ")",
                       c->host, c->port, h.correlation_id, c->corr);
    return 0;
}

static int fetch_part_cmp(const void *a, const void *b)
{
    int32_t x = ((const fetch_part_t *)a)->partition, y = ((const fetch_part_t *)b)->partition;
    return (x > y) - (x < y);
}

/* The connection of leader node_id, added (host and port from the broker list) if new. */
static fetch_conn_t *
fetch_leader(fetch_job_t *job, const kp_metadata_response_t *m, int32_t node_id)
{
    for (int i = 0; i < job->n_conns; i++)
        if (job->conns[i].node_id == node_id)
            return &job->conns[i];
    for (int32_t i = 0; i < m->n_brokers && job->n_conns < FETCH_MAX_BROKERS; i++) {
        const kp_metadata_response_broker_t *b = &m->brokers[i];
        fetch_conn_t *c = &job->conns[job->n_conns];
        if (b->node_id != node_id || b->host.len <= 0 || (size_t)b->host.len >= sizeof(c->host) ||
            b->port < 1 || b->port > 65535)
            continue;
        memcpy(c->host, b->host.ptr, (size_t)b->host.len);
        c->host[b->host.len] = '\0';
        c->port = b->port, c->node_id = node_id, c->fd = -1, c->job = job;
        c->parts = calloc((size_t)m->topics[0].n_partitions, sizeof(*c->parts));
        c->req_parts = calloc((size_t)m->topics[0].n_partitions, sizeof(*c->req_parts));
        kp_writer_init(&c->w, (size_t)16 << 20);
        kp_arena_init(&c->arena, FETCH_ARENA_BYTES);
        job->n_conns++;
        return c->parts && c->req_parts ? c : NULL;
    }
    return NULL;
}

/* The topic's partitions from a Metadata answer: one connection per leader.
 * @return 0 or CLI_EXIT_FAIL after printing. */
static int fetch_plan(fetch_job_t *job, const kp_metadata_response_t *m)
{
    const kp_metadata_response_topic_t *t = m->n_topics == 1 ? &m->topics[0] : NULL;
    if (t && t->error_code == KP_ERR_UNKNOWN_TOPIC_OR_PARTITION)
        return cli_err("no such topic: %s", job->topic);
    if (t && t->error_code)
        return cli_err("topic %s: %s", job->topic, kp_errcode_name(t->error_code));
    if (!t || !kp_str_eq(t->name, kp_str_from_cstr(job->topic)) ||
        t->n_partitions > FETCH_MAX_PARTITIONS)
        return cli_err("topic %s: unexpected Metadata answer", job->topic);
    if (t->n_partitions < 1)
        return cli_err("no such topic: %s", job->topic);
    job->conns = calloc(FETCH_MAX_BROKERS, sizeof(*job->conns));
    if (!job->conns)
        return cli_err("out of memory");
    for (int32_t i = 0; i < t->n_partitions; i++) {
        const kp_metadata_response_partition_t *p = &t->partitions[i];
        if (p->error_code || p->leader_id < 0)
            return cli_err("topic %s partition %" PRId32 ": %s", job->topic, p->partition_index,
                           p->error_code ? kp_errcode_name(p->error_code) : "no leader");
        fetch_conn_t *c = fetch_leader(job, m, p->leader_id);
        if (!c)
            return cli_err("topic %s partition %" PRId32 ": leader %" PRId32
                           " not among the brokers (or out of memory)",
                           job->topic, p->partition_index, p->leader_id);
        c->parts[c->n_parts++] = (fetch_part_t){.partition = p->partition_index};
    }
    for (int i = 0; i < job->n_conns; i++) {
        fetch_conn_t *c = &job->conns[i];
        qsort(c->parts, (size_t)c->n_parts, sizeof(*c->parts), fetch_part_cmp);
        for (int j = 1; j < c->n_parts; j++)
            if (c->parts[j].partition == c->parts[j - 1].partition)
                return cli_err("topic %s: partition %" PRId32 " listed twice", job->topic,
                               c->parts[j].partition);
    }
    job->n_partitions = t->n_partitions;
    return 0;
}

/* Metadata v12 of the topic from the first bootstrap broker that answers, without creating it.
 * @return 0 or CLI_EXIT_FAIL after printing. */
static int fetch_metadata(fetch_job_t *job)
{
    fetch_conn_t boot = {.fd = -1};
    char why[256] = "no broker address";
    const char *s = cli_opts.brokers;
    while (*s && boot.fd < 0) {
        size_t n = strcspn(s, ",");
        if (fetch_split_addr(s, n, boot.host, sizeof(boot.host), &boot.port) == 0)
            fetch_connect(&boot, why, sizeof(why));
        s += n + (s[n] == ',');
    }
    if (boot.fd < 0)
        return cli_err("cannot reach the cluster at %s: %s", cli_opts.brokers, why);
    kp_writer_init(&boot.w, 1 << 20);
    kp_arena_init(&boot.arena, FETCH_ARENA_BYTES);
    kp_metadata_request_topic_t qt;
    kp_metadata_request_topic_init(&qt);
    qt.name = kp_str_from_cstr(job->topic);
    kp_metadata_request_t q;
    kp_metadata_request_init(&q);
    q.topics = &qt, q.n_topics = 1;
    q.allow_auto_topic_creation = false; /* a bench reads, never creates */
    int rc = fetch_req_begin(&boot, KP_API_METADATA, FETCH_MD_VERSION);
    if (!rc)
        rc = kp_metadata_request_encode(&boot.w, FETCH_MD_VERSION, &q);
    kp_reader_t r;
    kp_metadata_response_t m;
    if (!(rc = fetch_send(&boot, rc)) &&
        !(rc = fetch_recv(&boot, KP_API_METADATA, FETCH_MD_VERSION, FETCH_FRAME_SLACK, &r))) {
        if (kp_metadata_response_decode(&r, FETCH_MD_VERSION, &m, &boot.arena))
            rc = cli_err("fetch: malformed Metadata response from %s:%d (%s)", boot.host, boot.port,
                         r.err_field ? r.err_field : "?");
        else
            rc = fetch_plan(job, &m);
    }
    close(boot.fd);
    kp_writer_fini(&boot.w);
    kp_arena_fini(&boot.arena);
    free(boot.buf);
    return rc;
}

/* Walk the record batches of one partition's records: check each complete batch (v2 header,
 * batchLength, CRC-32C), count it, and move the fetch offset past it. A batch cut at the end (a
 * broker fills partition_max_bytes with whole file ranges: Kafka does) is fetched again next
 * time. Records of batches that end before the fetch offset are not counted; a batch that
 * starts before it and ends after it is counted whole (only after a jump to the log start).
 * @return 0 or CLI_EXIT_FAIL after printing. */
static int fetch_walk(fetch_conn_t *c, fetch_part_t *fp, const uint8_t *p, size_t len)
{
    const char *topic = c->job->topic;
    size_t off = 0;
    uint64_t records = 0, bytes = 0, batches = 0;
    while (len - off >= PLOG_BATCH_LOG_OVERHEAD) {
        const uint8_t *b = p + off;
        int32_t blen =
            (int32_t)((uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11]);
        plog_batch_hdr_t h;
        if (blen >= 0 && (size_t)blen > len - off - PLOG_BATCH_LOG_OVERHEAD)
            break; /* cut at the end */
        if (blen < 5 || b[16] != 2)
            return cli_err("fetch %s/%" PRId32 ": not a v2 record batch at offset %" PRId64
                           " (batchLength %" PRId32 ", magic %d)",
                           topic, fp->partition, fp->offset, blen, blen < 5 ? -1 : b[16]);
        size_t n = (size_t)blen + PLOG_BATCH_LOG_OVERHEAD;
        if (plog_batch_parse_hdr(b, n, &h) || h.last_offset_delta < 0 || h.records_count < 0 ||
            h.base_offset < 0 || h.base_offset > INT64_MAX - INT32_MAX)
            return cli_err("fetch %s/%" PRId32 ": malformed batch header at offset %" PRId64, topic,
                           fp->partition, fp->offset);
        if (st_crc32c(0, b + PLOG_BATCH_CRC_START, n - PLOG_BATCH_CRC_START) != h.crc)
            return cli_err("fetch %s/%" PRId32 ": CRC-32C mismatch in the batch at offset %" PRId64,
                           topic, fp->partition, h.base_offset);
        int64_t next = h.base_offset + h.last_offset_delta + 1;
        if (next > fp->offset) {
            if (!(h.attributes & FETCH_CONTROL_BATCH))
                records += (uint64_t)h.records_count;
            bytes += n, batches++;
            fp->offset = next;
        }
        off += n;
    }
    __atomic_fetch_add(&c->records, records, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->bytes, bytes, __ATOMIC_RELAXED);
    __atomic_fetch_add(&c->batches, batches, __ATOMIC_RELAXED);
    if (off < len)
        __atomic_fetch_add(&c->partial_batches, 1, __ATOMIC_RELAXED);
    return 0;
}

/* One partition of a Fetch response. *moved: its offset or end changed.
 * @return 0 or CLI_EXIT_FAIL after printing. */
static int fetch_partition(fetch_conn_t *c,
                           fetch_part_t *fp,
                           const kp_fetch_response_partition_data_t *pd,
                           bool *moved)
{
    if (pd->error_code == KP_ERR_OFFSET_OUT_OF_RANGE && pd->log_start_offset > fp->offset) {
        fp->offset = pd->log_start_offset; /* retention or DeleteRecords: start at the log start */
        *moved = true;
        return 0;
    }
    if (pd->error_code)
        return cli_err("fetch %s/%" PRId32 " at offset %" PRId64 ": %s", c->job->topic,
                       fp->partition, fp->offset, kp_errcode_name(pd->error_code));
    int64_t was = fp->offset;
    fp->high_watermark = pd->high_watermark;
    if (pd->records.len > 0 && fetch_walk(c, fp, pd->records.ptr, (size_t)pd->records.len))
        return CLI_EXIT_FAIL;
    if (fp->offset != was || fp->offset >= fp->high_watermark)
        *moved = true;
    return 0;
}

/* Check a decoded Fetch response against what was asked and walk it. */
static int fetch_answer(fetch_conn_t *c, const kp_fetch_response_t *m, bool *moved)
{
    if (m->error_code)
        return cli_err("fetch: %s:%d answered %s", c->host, c->port,
                       kp_errcode_name(m->error_code));
    for (int32_t i = 0; i < m->n_responses; i++) {
        const kp_fetch_response_fetchable_topic_response_t *t = &m->responses[i];
        if (!kp_str_eq(t->topic, kp_str_from_cstr(c->job->topic)))
            return cli_err("fetch: %s:%d answered for a topic not asked for", c->host, c->port);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const kp_fetch_response_partition_data_t *pd = &t->partitions[j];
            fetch_part_t key = {.partition = pd->partition_index};
            fetch_part_t *fp =
                bsearch(&key, c->parts, (size_t)c->n_parts, sizeof(*c->parts), fetch_part_cmp);
            if (!fp || fp->asked != c->fetches || fp->answered == c->fetches)
                return cli_err("fetch: %s:%d answered partition %" PRId32
                               " not asked for (or twice)",
                               c->host, c->port, pd->partition_index);
            fp->answered = c->fetches;
            if (fetch_partition(c, fp, pd, moved))
                return CLI_EXIT_FAIL;
        }
    }
    return 0;
}

/* One Fetch of every partition not yet at its end, the first one rotating (a broker may give
 * the first partitions all of max_bytes), then its answer.
 * @return the partitions still short of their end, or -1 after printing. */
static int fetch_once(fetch_conn_t *c, bool *moved)
{
    const fetch_job_t *job = c->job;
    kp_fetch_request_topic_t t;
    kp_fetch_request_topic_init(&t);
    t.topic = kp_str_from_cstr(job->topic);
    t.partitions = c->req_parts;
    uint64_t seq = c->fetches + 1;
    for (int i = 0; i < c->n_parts; i++) {
        fetch_part_t *fp = &c->parts[(c->rot + i) % c->n_parts];
        if (fp->high_watermark >= 0 && fp->offset >= fp->high_watermark)
            continue;
        kp_fetch_request_partition_t *q = &c->req_parts[t.n_partitions++];
        kp_fetch_request_partition_init(q);
        q->partition = fp->partition;
        q->fetch_offset = fp->offset;
        q->partition_max_bytes = job->partition_max_bytes;
        fp->asked = seq;
    }
    c->rot = (c->rot + 1) % c->n_parts;
    if (t.n_partitions == 0)
        return 0;
    kp_fetch_request_t q;
    kp_fetch_request_init(&q); /* replica -1, no fetch session (epoch -1): full Fetches */
    q.max_wait_ms = FETCH_MAX_WAIT_MS;
    q.min_bytes = 1;
    q.max_bytes = job->max_bytes;
    q.topics = &t, q.n_topics = 1;
    int rc = fetch_req_begin(c, KP_API_FETCH, FETCH_VERSION);
    if (!rc)
        rc = kp_fetch_request_encode(&c->w, FETCH_VERSION, &q);
    int64_t sent_ns = now_ns();
    if (!c->first_ns)
        c->first_ns = sent_ns;
    if (fetch_send(c, rc))
        return -1;
    __atomic_store_n(&c->fetches, seq, __ATOMIC_RELAXED);
    kp_reader_t r;
    kp_fetch_response_t m;
    if (fetch_recv(c, KP_API_FETCH, FETCH_VERSION, (size_t)job->max_bytes + FETCH_FRAME_SLACK, &r))
        return -1;
    c->wait_ns += c->size_ns - sent_ns;
    c->receive_ns += c->done_ns - c->size_ns;
    if (kp_fetch_response_decode(&r, FETCH_VERSION, &m, &c->arena))
        return cli_err("fetch: malformed Fetch response from %s:%d (%s at byte %zu: %s)", c->host,
                       c->port, r.err_field ? r.err_field : "?", r.err_offset, st_strerror(r.err)),
               -1;
    if (fetch_answer(c, &m, moved))
        return -1;
    c->walk_ns += now_ns() - c->done_ns;
    int left = 0;
    for (int i = 0; i < c->n_parts; i++)
        left += c->parts[i].high_watermark < 0 || c->parts[i].offset < c->parts[i].high_watermark;
    return left;
}

static void fetch_progress(const fetch_job_t *job, int64_t *next_ns, int64_t t0)
{
    uint64_t records = 0, bytes = 0;
    for (int i = 0; i < job->n_conns; i++) {
        records += __atomic_load_n(&job->conns[i].records, __ATOMIC_RELAXED);
        bytes += __atomic_load_n(&job->conns[i].bytes, __ATOMIC_RELAXED);
    }
    progress(next_ns, "fetched", records, bytes, t0);
}

/* Read the connection's partitions from offset 0 to their high watermark, job->passes times.
 * Runs on its own thread (conns[0] on the command's, which also shows the progress). */
static void *fetch_conn_run(void *arg)
{
    fetch_conn_t *c = arg;
    fetch_job_t *job = c->job;
    bool show = c == &job->conns[0] && progress_on();
    int64_t t0 = now_ns(), next_progress = t0;
    char why[256] = "";
    if (fetch_connect(c, why, sizeof(why)))
        c->rc = cli_err("fetch: cannot connect to broker %" PRId32 " at %s:%d: %s", c->node_id,
                        c->host, c->port, why);
    for (int pass = 0; pass < job->passes && !c->rc; pass++) {
        for (int i = 0; i < c->n_parts; i++)
            c->parts[i].offset = 0, c->parts[i].high_watermark = -1;
        int left = c->n_parts, stalls = 0;
        while (left > 0 && !c->rc) {
            if (bench_stop || now_ns() >= job->end_ns ||
                __atomic_load_n(&job->failed, __ATOMIC_RELAXED))
                goto out;
            bool moved = false;
            left = fetch_once(c, &moved);
            stalls = moved ? 0 : stalls + 1;
            if (left < 0)
                c->rc = CLI_EXIT_FAIL;
            else if (left > 0 && stalls >= FETCH_MAX_STALLS)
                c->rc = cli_err("fetch: %d Fetches in a row from %s:%d moved no partition",
                                FETCH_MAX_STALLS, c->host, c->port);
            if (show)
                fetch_progress(job, &next_progress, t0);
        }
    }
    c->is_complete = !c->rc;
out:
    c->last_ns = now_ns();
    if (c->rc)
        __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
    progress_end(show);
    return NULL;
}

static void fetch_report(const fetch_job_t *job, int64_t t0)
{
    uint64_t records = 0, bytes = 0, batches = 0, fetches = 0, partial = 0;
    int64_t first = 0, last = 0, wait = 0, receive = 0, walk = 0;
    bool complete = true;
    for (int i = 0; i < job->n_conns; i++) {
        const fetch_conn_t *c = &job->conns[i];
        records += c->records, bytes += c->bytes, batches += c->batches;
        fetches += c->fetches, partial += c->partial_batches;
        wait += c->wait_ns, receive += c->receive_ns, walk += c->walk_ns;
        if (c->first_ns && (!first || c->first_ns < first))
            first = c->first_ns;
        last = c->last_ns > last ? c->last_ns : last;
        complete = complete && c->is_complete;
    }
    /* From the first Fetch sent to the last answer handled (the first answer counts: a
     * consumer waits for it too); seconds also holds Metadata and connecting. */
    double secs = (double)(last - t0) / 1e9;
    double read_s = first && last > first ? (double)(last - first) / 1e9 : secs;
    double mbps = read_s > 0 ? (double)bytes / read_s / 1e6 : 0;
    double rps = read_s > 0 ? (double)records / read_s : 0;
    /* Per Fetch: waiting for the first bytes, receiving the rest, decoding and walking it. */
    double n = fetches ? (double)fetches * 1e6 : 1;
    double wait_ms = (double)wait / n, receive_ms = (double)receive / n, walk_ms = (double)walk / n;
    if (!cli_opts.is_json) {
        printf("fetch topic=%s partitions=%d brokers=%d (raw Fetch v%d, batch level)\n"
               "  %.1f MB/s of record batches  %.0f records/s  records=%" PRIu64 " batches=%" PRIu64
               " in %.2f s, %" PRIu64 " Fetches%s\n"
               "  per Fetch: %.2f ms to the first bytes, %.2f ms receiving, %.2f ms walking\n",
               job->topic, job->n_partitions, job->n_conns, FETCH_VERSION, mbps, rps, records,
               batches, secs, fetches, complete ? "" : "  [stopped before the end]", wait_ms,
               receive_ms, walk_ms);
        return;
    }
    printf("{\"mode\":\"fetch\",\"topic\":");
    cli_json_cstr(stdout, job->topic);
    printf(",\"partitions\":%d,\"brokers\":%d,\"fetch_version\":%d,\"max_bytes\":%" PRId32
           ",\"partition_max_bytes\":%" PRId32 ",\"passes\":%d,\"seconds\":%.3f,"
           "\"read_seconds\":%.3f,\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"batches\":%" PRIu64 ",\"fetches\":%" PRIu64 ",\"partial_batches\":%" PRIu64
           ",\"mb_per_s\":%.3f,\"records_per_s\":%.1f,\"wait_ms_avg\":%.3f,"
           "\"receive_ms_avg\":%.3f,\"walk_ms_avg\":%.3f,\"complete\":%s,\"errors\":0}\n",
           job->n_partitions, job->n_conns, FETCH_VERSION, job->max_bytes, job->partition_max_bytes,
           job->passes, secs, read_s, records, bytes, batches, fetches, partial, mbps, rps, wait_ms,
           receive_ms, walk_ms, complete ? "true" : "false");
}

static void fetch_job_free(fetch_job_t *job)
{
    for (int i = 0; job->conns && i < job->n_conns; i++) {
        fetch_conn_t *c = &job->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        free(c->parts);
        free(c->req_parts);
        free(c->buf);
        kp_writer_fini(&c->w);
        kp_arena_fini(&c->arena);
    }
    free(job->conns);
}

static int cmd_fetch(int argc, char **argv)
{
    bench_opts_t o;
    int rc = bench_parse(argc, argv, &o, 60000);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (cli_opts.is_tls || cli_opts.sasl_mechanism)
        return cli_usage_err("bench fetch speaks plain TCP only (no TLS, no SASL): use bench "
                             "consume");
    int64_t t0 = now_ns();
    fetch_job_t job = {.topic = o.topic,
                       .passes = bench_has_count(argc, argv) ? o.count : 1,
                       .max_bytes = o.fetch_max_bytes,
                       .partition_max_bytes = o.partition_max_bytes,
                       .end_ns = t0 + o.duration_ms * 1000000};
    if (fetch_metadata(&job)) {
        fetch_job_free(&job);
        return CLI_EXIT_FAIL;
    }
    pthread_t th[FETCH_MAX_BROKERS];
    int started = 1;
    for (; started < job.n_conns; started++)
        if (pthread_create(&th[started], NULL, fetch_conn_run, &job.conns[started])) {
            __atomic_store_n(&job.failed, 1, __ATOMIC_RELAXED);
            rc = cli_err("fetch: cannot start a thread");
            break;
        }
    fetch_conn_run(&job.conns[0]);
    for (int i = 1; i < started; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < job.n_conns && !rc; i++)
        rc = job.conns[i].rc;
    if (!rc) {
        fetch_report(&job, t0);
        bool complete = true;
        for (int i = 0; i < job.n_conns; i++)
            complete = complete && job.conns[i].is_complete;
        if (!complete)
            rc = cli_err("fetch: stopped before the end of %s", o.topic);
    }
    fetch_job_free(&job);
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
        {"fetch", cmd_fetch, "the same with raw Fetch requests at batch level; MB/s"},
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
