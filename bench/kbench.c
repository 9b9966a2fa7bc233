/* kbench.c - Kafka load driver on librdkafka for the benchmarks (bench/kafka.sh).
 * Data path measured: librdkafka producer -> TCP -> broker Produce (acks as asked) ->
 * delivery report, and broker Fetch -> librdkafka consumer. Also a loopback TCP probe,
 * the limit the consume figure is compared with.
 * Human-readable results go to stderr; one JSON object per run goes to stdout, so a
 * script can keep it (bench/results/).
 *
 * Usage:
 *   kbench produce --brokers B --topic T [--record-bytes 1024] [--partitions 1]
 *                  [--acks all|1|0] [--linger-ms 5] [--batch-bytes 65536]
 *                  [--compression none] [--rate R (records/s, 0 = max)] [--seconds 10]
 *                  [--queue-kbytes 32768 (librdkafka queue.buffering.max.kbytes)]
 *   kbench consume --brokers B --topic T [--seconds 30]
 *   kbench loopback [--seconds 3] [--write-bytes 65536]
 *
 * produce creates the topic with --partitions when it is missing and spreads records
 * round-robin over its partitions. Latency is per record, from rd_kafka_producev() to its
 * delivery report, in a log-bucket histogram (HdrHistogram-style, ~3% precision).
 * consume reads every partition from the beginning without a consumer group (legacy
 * queue API) until every partition reports EOF or --seconds pass. */
#include <librdkafka/rdkafka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "kbench: %s: %s\n", what, why);
    exit(1);
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

/* Value at quantile q (0..1) in microseconds; 0 when empty. */
static double hist_quantile(const hist_t *h, double q)
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
            return v > (double)h->max_us ? (double)h->max_us : v;
        }
    }
    return (double)h->max_us;
}

/* ---- Options ---- */

typedef struct {
    const char *brokers;
    const char *topic;
    int record_bytes;
    int partitions;
    const char *acks;
    int linger_ms;
    int batch_bytes;
    const char *compression;
    double rate;
    double seconds;
    int write_bytes;
    long queue_kbytes;
} opts_t;

static void parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.brokers = "127.0.0.1:9092",
                  .topic = "kbench",
                  .record_bytes = 1024,
                  .partitions = 1,
                  .acks = "all",
                  .linger_ms = 5,
                  .batch_bytes = 65536,
                  .compression = "none",
                  .rate = 0,
                  .seconds = 10,
                  .write_bytes = 65536,
                  .queue_kbytes = 32768};
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die(k, "missing value");
        if (!strcmp(k, "--brokers"))
            o->brokers = v;
        else if (!strcmp(k, "--topic"))
            o->topic = v;
        else if (!strcmp(k, "--record-bytes"))
            o->record_bytes = atoi(v);
        else if (!strcmp(k, "--partitions"))
            o->partitions = atoi(v);
        else if (!strcmp(k, "--acks"))
            o->acks = v;
        else if (!strcmp(k, "--linger-ms"))
            o->linger_ms = atoi(v);
        else if (!strcmp(k, "--batch-bytes"))
            o->batch_bytes = atoi(v);
        else if (!strcmp(k, "--compression"))
            o->compression = v;
        else if (!strcmp(k, "--rate"))
            o->rate = atof(v);
        else if (!strcmp(k, "--seconds"))
            o->seconds = atof(v);
        else if (!strcmp(k, "--queue-kbytes"))
            o->queue_kbytes = atol(v);
        else if (!strcmp(k, "--write-bytes"))
            o->write_bytes = atoi(v);
        else
            die(k, "unknown option");
    }
    if (o->record_bytes < 0 || o->partitions < 1 || o->seconds <= 0 || o->write_bytes < 1)
        die("options", "out of range");
}

static void conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die(k, err);
}

static void conf_seti(rd_kafka_conf_t *conf, const char *k, long v)
{
    char s[32];
    snprintf(s, sizeof(s), "%ld", v);
    conf_set(conf, k, s);
}

/* ---- Topic creation (admin API), when the topic does not exist ---- */

static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    int n = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

static void ensure_topic(rd_kafka_t *rk, const char *topic, int partitions)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
    if (!nt)
        die("NewTopic", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev)
        die("CreateTopics", "timed out");
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (rd_kafka_event_error(ev))
        die("CreateTopics", rd_kafka_event_error_string(ev));
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            die("CreateTopics", rd_kafka_err2str(e));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    /* Wait until metadata shows every partition (leaders elected). */
    for (int i = 0; i < 100 && topic_partitions(rk, topic) < partitions; i++)
        usleep(100000);
    if (topic_partitions(rk, topic) < partitions)
        die(topic, "partitions do not appear in metadata");
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

/* The average produced batch size of a statistics window, from librdkafka's stats
 * (topics.T.batchsize.avg); -1 when absent. */
static long stats_avg_batch(const char *stats, const char *topic)
{
    char key[300];
    snprintf(key, sizeof(key), "\"topic\":\"%s\"", topic);
    const char *p = strstr(stats, key);
    if (!p || !(p = strstr(p, "\"batchsize\":")) || !(p = strstr(p, "\"avg\":")))
        return -1;
    return atol(p + 6);
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    prod_state_t *st = opaque;
    long avg = stats_avg_batch(json, st->topic);
    if (avg > 0)
        st->avg_batch = avg;
    return 0; /* librdkafka frees json */
}

static int cmd_produce(const opts_t *o)
{
    char err[256];
    prod_state_t *st = calloc(1, sizeof(*st));
    st->topic = o->topic;
    st->avg_batch = -1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", o->brokers);
    conf_set(conf, "acks", o->acks);
    conf_seti(conf, "linger.ms", o->linger_ms);
    conf_seti(conf, "batch.size", o->batch_bytes);
    conf_set(conf, "compression.codec", o->compression);
    /* A bounded queue: at max rate the run ends with a short drain, not seconds of backlog. */
    conf_seti(conf, "queue.buffering.max.kbytes", o->queue_kbytes);
    conf_set(conf, "queue.buffering.max.messages", "1000000");
    conf_set(conf, "statistics.interval.ms", "1000");
    conf_set(conf, "socket.nagle.disable", "true"); /* as the Java client does */
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk)
        die("producer", err);
    ensure_topic(rk, o->topic, o->partitions);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);

    char *payload = malloc((size_t)o->record_bytes + 1);
    for (int i = 0; i < o->record_bytes; i++)
        payload[i] = (char)('a' + (i * 7 + i / 13) % 26); /* some entropy, printable */
    uint64_t sent = 0, queue_full = 0;
    int64_t t0 = now_ns(), end = t0 + (int64_t)(o->seconds * 1e9);
    int64_t now;
    while ((now = now_ns()) < end) {
        if (o->rate > 0) {
            /* Pace: the n-th record is due at t0 + n / rate. Sleep rather than spin (the
             * broker shares this machine's cores); records that fell due meanwhile go out
             * as a burst, as from an application with a fixed average rate. */
            int64_t due = t0 + (int64_t)((double)sent * 1e9 / o->rate);
            if (now < due) {
                if (due - now >= 1000000) {
                    rd_kafka_poll(rk, 1); /* serves delivery reports as they come */
                } else {
                    rd_kafka_poll(rk, 0);
                    int64_t wait_ns = due - now < 100000 ? 100000 : due - now;
                    struct timespec ts = {0, (long)wait_ns};
                    nanosleep(&ts, NULL);
                }
                continue;
            }
        }
        int32_t part = (int32_t)(sent % (uint64_t)o->partitions);
        if (rd_kafka_produce(rkt, part, RD_KAFKA_MSG_F_COPY, payload, (size_t)o->record_bytes, NULL,
                             0, (void *)(intptr_t)now_ns()) != 0) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce", rd_kafka_err2str(rd_kafka_last_error()));
            queue_full++;
            rd_kafka_poll(rk, 1);
            continue;
        }
        sent++;
        if ((sent & 255) == 0)
            rd_kafka_poll(rk, 0);
    }
    while (rd_kafka_outq_len(rk) > 0 && now_ns() - end < 60 * (int64_t)1000000000)
        rd_kafka_poll(rk, 10);
    double secs = (double)(now_ns() - t0) / 1e9;
    long avg_batch = st->avg_batch;

    double mbps = (double)st->bytes / secs / 1e6, rps = (double)st->delivered / secs;
    double p50 = hist_quantile(&st->hist, 0.50) / 1000, p99 = hist_quantile(&st->hist, 0.99) / 1000,
           p999 = hist_quantile(&st->hist, 0.999) / 1000;
    fprintf(stderr,
            "kbench produce: topic=%s partitions=%d acks=%s record=%dB linger=%dms batch=%dB "
            "compression=%s rate=%s\n"
            "  %.1f MB/s  %.0f records/s  delivered=%" PRIu64 " failed=%" PRIu64
            "  latency ms p50=%.2f p99=%.2f p999=%.2f max=%.2f  avg batch=%ldB\n",
            o->topic, o->partitions, o->acks, o->record_bytes, o->linger_ms, o->batch_bytes,
            o->compression, o->rate > 0 ? "limited" : "max", mbps, rps, st->delivered, st->failed,
            p50, p99, p999, (double)st->hist.max_us / 1000, avg_batch);
    if (st->failed)
        fprintf(stderr, "  first delivery error: %s\n", rd_kafka_err2str(st->first_err));
    printf("{\"mode\":\"produce\",\"topic\":\"%s\",\"partitions\":%d,\"acks\":\"%s\","
           "\"record_bytes\":%d,\"linger_ms\":%d,\"batch_bytes\":%d,\"compression\":\"%s\","
           "\"rate\":%.0f,\"seconds\":%.3f,\"records\":%" PRIu64 ",\"failed\":%" PRIu64
           ",\"mb_per_s\":%.3f,\"records_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"avg_batch_bytes\":%ld,\"queue_full\":%" PRIu64 "}\n",
           o->topic, o->partitions, o->acks, o->record_bytes, o->linger_ms, o->batch_bytes,
           o->compression, o->rate, secs, st->delivered, st->failed, mbps, rps, p50, p99, p999,
           (double)st->hist.max_us / 1000, avg_batch, queue_full);
    fflush(stdout);
    int rc = st->failed || st->delivered == 0 ? 1 : 0;
    free(payload);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(st);
    return rc;
}

/* ---- consume ---- */

static int cmd_consume(const opts_t *o)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", o->brokers);
    conf_set(conf, "enable.partition.eof", "true");
    conf_set(conf, "queued.max.messages.kbytes", "262144");
    conf_set(conf, "fetch.message.max.bytes", "4194304");
    conf_set(conf, "fetch.max.bytes", "52428800");
    conf_set(conf, "fetch.wait.max.ms", "100");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk)
        die("consumer", err);
    int np = topic_partitions(rk, o->topic);
    if (np < 1)
        die(o->topic, "no such topic");
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int64_t t0 = now_ns(), end = t0 + (int64_t)(o->seconds * 1e9), first = 0, last = t0;
    for (int p = 0; p < np; p++)
        if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q) != 0)
            die("consume_start", rd_kafka_err2str(rd_kafka_last_error()));
    uint64_t records = 0, bytes = 0;
    int eofs = 0, errors = 0;
    rd_kafka_message_t *batch[1024];
    while (eofs < np && now_ns() < end) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch, 1024);
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                eofs++;
                last = now_ns();
            } else if (m->err) {
                if (!errors++)
                    fprintf(stderr, "  consume error: %s\n", rd_kafka_message_errstr(m));
            } else {
                if (!first)
                    first = now_ns();
                records++;
                bytes += m->len;
            }
            rd_kafka_message_destroy(m);
        }
    }
    if (eofs < np)
        last = now_ns();
    for (int p = 0; p < np; p++)
        rd_kafka_consume_stop(rkt, p);
    /* Time from the start (connect + first fetch included) to the last EOF. */
    double secs = (double)(last - t0) / 1e9;
    double mbps = (double)bytes / secs / 1e6, rps = (double)records / secs;
    fprintf(stderr,
            "kbench consume: topic=%s partitions=%d\n  %.1f MB/s  %.0f records/s  records=%" PRIu64
            " in %.2f s (first record after %.1f ms)%s\n",
            o->topic, np, mbps, rps, records, secs, first ? (double)(first - t0) / 1e6 : -1.0,
            eofs < np ? "  [timed out before EOF]" : "");
    printf("{\"mode\":\"consume\",\"topic\":\"%s\",\"partitions\":%d,\"seconds\":%.3f,"
           "\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"mb_per_s\":%.3f,\"records_per_s\":%.1f,\"complete\":%s,\"errors\":%d}\n",
           o->topic, np, secs, records, bytes, mbps, rps, eofs == np ? "true" : "false", errors);
    fflush(stdout);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return records == 0 || errors ? 1 : 0;
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
    while (now_ns() < w->end_ns) {
        ssize_t n = write(w->fd, buf, (size_t)w->write_bytes);
        if (n < 0 && errno != EINTR)
            break;
    }
    shutdown(w->fd, SHUT_WR);
    free(buf);
    return NULL;
}

static int cmd_loopback(const opts_t *o)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 1) != 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
        die("loopback", strerror(errno));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("loopback connect", strerror(errno));
    int s = accept(ls, NULL, NULL);
    if (s < 0)
        die("loopback accept", strerror(errno));
    int64_t t0 = now_ns();
    lb_writer_t w = {
        .fd = c, .write_bytes = o->write_bytes, .end_ns = t0 + (int64_t)(o->seconds * 1e9)};
    pthread_t th;
    pthread_create(&th, NULL, lb_write, &w);
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(s, buf, cap)) > 0 || (n < 0 && errno == EINTR))
        total += n > 0 ? (uint64_t)n : 0;
    double secs = (double)(now_ns() - t0) / 1e9;
    pthread_join(th, NULL);
    close(s);
    close(c);
    close(ls);
    free(buf);
    double mbps = (double)total / secs / 1e6;
    fprintf(stderr, "kbench loopback: %d B writes, %.1f MB/s over %.2f s\n", o->write_bytes, mbps,
            secs);
    printf("{\"mode\":\"loopback\",\"write_bytes\":%d,\"seconds\":%.3f,\"mb_per_s\":%.3f}\n",
           o->write_bytes, secs, mbps);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kbench produce|consume|loopback [options] (see bench/kbench.c)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    opts_t o;
    parse_opts(argc, argv, &o);
    if (!strcmp(argv[1], "produce"))
        return cmd_produce(&o);
    if (!strcmp(argv[1], "consume"))
        return cmd_consume(&o);
    if (!strcmp(argv[1], "loopback"))
        return cmd_loopback(&o);
    fprintf(stderr, "kbench: unknown command %s\n", argv[1]);
    return 2;
}
