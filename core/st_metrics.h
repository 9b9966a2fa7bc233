/* st_metrics.h - the process's metrics registry: counters, gauges and
 * fixed-bucket histograms, updated lock-free from any thread and rendered in
 * the Prometheus text format by the admin API's GET /metrics.
 * Data path: handlers call one-line st_metric_*() functions on the hot path
 * (an atomic add into the calling shard's own slot: no lock, no sharing of a
 * cache line between shards); a scrape sums the slots. Nothing here blocks.
 * Slots: slot 0 is for threads that are not shards (flusher, main); slot
 * i + 1 belongs to shard i (rt_current()).
 * Before st_metrics_init() (unit tests of other modules) every update is a
 * no-op, so instrumented code needs no set-up. */
#ifndef ST_METRICS_H
#define ST_METRICS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"

/* Counters and gauges without labels. X(id, name, type, help) */
#define ST_METRICS(X)                                                                              \
    X(KAFKA_CONNECTIONS, "strata_kafka_connections", "gauge", "Open Kafka connections.")           \
    X(KAFKA_CONNECTIONS_ACCEPTED, "strata_kafka_connections_accepted_total", "counter",            \
      "Kafka connections accepted since start.")                                                   \
    X(KAFKA_CONNECTIONS_REFUSED, "strata_kafka_connections_refused_total", "counter",              \
      "Kafka connections closed at accept: max.connections or max.connections.per.ip reached.")    \
    X(LISTENER_PAUSED, "strata_listener_paused_total", "counter",                                  \
      "Times a listener stopped accepting for a second: out of file descriptors (EMFILE/ENFILE).") \
    X(ARCHIVE_MANIFEST_ERRORS, "strata_archive_manifest_errors_total", "counter",                  \
      "Failed writes or deletes of topic manifests in the archive (each is retried).")             \
    X(KAFKA_QUEUED_REQUEST_BYTES, "strata_kafka_queued_request_bytes", "gauge",                    \
      "Bytes of Kafka requests read but not yet answered (the queued.max.request.bytes pool).")    \
    X(ADMIN_REQUESTS, "strata_admin_http_requests_total", "counter",                               \
      "Admin HTTP requests answered (any status).")                                                \
    X(SASL_AUTH_SUCCESSES, "strata_kafka_sasl_authentications_total", "counter",                   \
      "Successful SASL authentications and re-authentications of Kafka connections.")              \
    X(SASL_AUTH_FAILURES, "strata_kafka_sasl_authentication_failures_total", "counter",            \
      "Failed SASL authentications (wrong password, unknown user, malformed exchange).")           \
    X(ADMIN_AUTH_FAILURES, "strata_admin_authentication_failures_total", "counter",                \
      "Admin HTTP requests refused with 401 (missing or wrong credentials).")                      \
    X(DISK_FREE_BYTES, "strata_disk_free_bytes", "gauge",                                          \
      "Bytes available to stratad on the data directory's filesystem.")                            \
    X(DISK_TOTAL_BYTES, "strata_disk_total_bytes", "gauge",                                        \
      "Size of the data directory's filesystem in bytes.")                                         \
    X(DISK_SPACE_LOW, "strata_disk_space_low", "gauge",                                            \
      "1 while free space is under strata.disk.alert.free.bytes/percent, else 0.")                 \
    X(TXN_OPEN, "strata_kafka_transactions_open", "gauge",                                         \
      "Transactions begun and not yet complete (Ongoing, PrepareCommit, PrepareAbort).")           \
    X(TXN_COMMITS, "strata_kafka_transaction_commits_total", "counter",                            \
      "Transactions committed (markers written to every partition).")                              \
    X(TXN_ABORTS, "strata_kafka_transaction_aborts_total", "counter",                              \
      "Transactions aborted (by the producer, a timeout or a new producer of the same id).")       \
    X(TXN_TIMEOUTS, "strata_kafka_transaction_timeouts_total", "counter",                          \
      "Transactions the coordinator aborted because transaction.timeout.ms passed.")               \
    X(TXN_ABORTED_KEPT, "strata_kafka_transaction_aborted_kept", "gauge",                          \
      "Aborted transactions kept in memory for read_committed fetches of local logs (dropped "     \
      "when the log start passes their marker).")                                                  \
    X(TXN_STATE_SNAPSHOTS, "strata_kafka_transaction_state_snapshots_total", "counter",            \
      "Partition transaction state snapshots written (strata.transaction.state.snapshot.bytes).")  \
    X(TXN_REBUILD_BATCHES, "strata_kafka_transaction_state_rebuild_batches_total", "counter",      \
      "Batch headers read to rebuild partitions' transaction state after a start (the log after "  \
      "the last snapshot).")                                                                       \
    X(FETCH_SENDFILE_BYTES, "strata_kafka_fetch_sendfile_bytes_total", "counter",                  \
      "Record bytes of Fetch responses sent straight from segment files (sendfile, no copy).")     \
    X(FETCH_MEMORY_BYTES, "strata_kafka_fetch_memory_bytes_total", "counter",                      \
      "Record bytes of Fetch responses sent without TLS from the buffer they were read or "        \
      "decoded into (sendfile off, archived batches), not copied into the response.")              \
    X(FETCH_COLD_READS, "strata_kafka_fetch_cold_reads_total", "counter",                          \
      "Fetch reads of segment bytes not in the page cache, done in the thread pool.")              \
    X(CLEANER_PASSES, "strata_log_cleaner_passes_total", "counter",                                \
      "Log cleaner passes finished (a compacted log's dirty sealed segments rewritten).")          \
    X(CLEANER_FAILURES, "strata_log_cleaner_pass_failures_total", "counter",                       \
      "Log cleaner passes that failed (I/O error, corrupt batch, offset map too small); retried.") \
    X(CLEANER_READ_BYTES, "strata_log_cleaner_read_bytes_total", "counter",                        \
      "Segment bytes read by the log cleaner.")                                                    \
    X(CLEANER_WRITTEN_BYTES, "strata_log_cleaner_written_bytes_total", "counter",                  \
      "Segment bytes written by the log cleaner (the rewritten segments).")                        \
    X(CLEANER_REMOVED_RECORDS, "strata_log_cleaner_removed_records_total", "counter",              \
      "Records the log cleaner removed (older values of a key, expired tombstones).")

typedef enum {
#define ST_METRIC_ENUM(id, name, type, help) ST_M_##id,
    ST_METRICS(ST_METRIC_ENUM)
#undef ST_METRIC_ENUM
        ST_M__COUNT
} st_metric_t;

/* Counters labelled by topic. X(id, name, help) */
#define ST_TOPIC_METRICS(X)                                                                        \
    X(PRODUCE_REQUESTS, "strata_kafka_produce_requests_total",                                     \
      "Partition produce requests appended (one per partition of a Produce request).")             \
    X(PRODUCE_BYTES, "strata_kafka_produce_bytes_total",                                           \
      "Record batch bytes appended by Produce.")                                                   \
    X(FETCH_REQUESTS, "strata_kafka_fetch_requests_total",                                         \
      "Partition fetches answered (one per partition of a Fetch request).")                        \
    X(FETCH_BYTES, "strata_kafka_fetch_bytes_total", "Record batch bytes returned by Fetch.")

typedef enum {
#define ST_TMETRIC_ENUM(id, name, help) ST_T_##id,
    ST_TOPIC_METRICS(ST_TMETRIC_ENUM)
#undef ST_TMETRIC_ENUM
        ST_T__COUNT
} st_topic_metric_t;

/* Object-store operations: the values of the `op` label. X(id, value) */
#define ST_OBJ_OPS(X)                                                                              \
    X(PUT, "put") X(GET, "get") X(HEAD, "head") X(LIST, "list") X(DELETE, "delete")

typedef enum {
#define ST_OBJ_OP_ENUM(id, value) ST_OBJ_##id,
    ST_OBJ_OPS(ST_OBJ_OP_ENUM)
#undef ST_OBJ_OP_ENUM
        ST_OBJ__COUNT
} st_obj_op_t;

/* Stages of one partition's produce (the `stage` label). X(id, value) */
#define ST_PRODUCE_STAGES(X) X(QUEUE, "queue") X(APPEND, "append") X(ACK, "ack") X(REPLY, "reply")

typedef enum {
#define ST_PSTAGE_ENUM(id, value) ST_PSTAGE_##id,
    ST_PRODUCE_STAGES(ST_PSTAGE_ENUM)
#undef ST_PSTAGE_ENUM
        ST_PSTAGE__COUNT
} st_produce_stage_t;

/* Label values by index for the labels that have a fixed set of them. */
extern const char *const st_obj_op_names[ST_OBJ__COUNT];
extern const char *const st_produce_stage_names[ST_PSTAGE__COUNT];

/* Counters labelled by object-store operation. X(id, name, help) */
#define ST_OP_METRICS(X)                                                                           \
    X(OBJ_REQUESTS, "strata_object_store_requests_total",                                          \
      "Object-store requests completed (retries inside one request not counted), by operation.")   \
    X(OBJ_ERRORS, "strata_object_store_errors_total",                                              \
      "Object-store requests that failed (not found and canceled excluded), by operation.")

typedef enum {
#define ST_OMETRIC_ENUM(id, name, help) ST_O_##id,
    ST_OP_METRICS(ST_OMETRIC_ENUM)
#undef ST_OMETRIC_ENUM
        ST_O__COUNT
} st_op_metric_t;

/* Histograms of durations with fixed buckets (seconds, see st_metrics.c).
 * X(id, name, label name or NULL, labels, label values or NULL, per-slot, help)
 * Request latency is labelled by Kafka API key, loop lag by shard, object
 * store latency by operation (st_obj_op_names), produce stages by stage
 * (st_produce_stage_names). */
#define ST_HISTOGRAMS(X)                                                                           \
    X(REQUEST_LATENCY, "strata_kafka_request_latency_seconds", "api", 128, NULL, true,             \
      "Kafka request latency from framing to the response being queued, by API.")                  \
    X(FSYNC_LATENCY, "strata_log_fsync_latency_seconds", NULL, 1, NULL, false,                     \
      "Latency of one group-commit fdatasync of a partition log.")                                 \
    X(LOOP_LAG, "strata_shard_loop_lag_seconds", "shard", 1024, NULL, false,                       \
      "How late a shard's 100 ms timer fires: time its loop was busy elsewhere.")                  \
    X(OBJ_LATENCY, "strata_object_store_request_latency_seconds", "op", ST_OBJ__COUNT,             \
      st_obj_op_names, true,                                                                       \
      "Object-store request latency from submission (queueing and retries included) to "           \
      "completion.")                                                                               \
    X(HYDRATION_LATENCY, "strata_tier_hydration_latency_seconds", NULL, 1, NULL, true,             \
      "Time from a read of archived data asking for a chunk to the chunk's bytes being ready.")    \
    X(PRODUCE_STAGE_LATENCY, "strata_kafka_produce_stage_seconds", "stage", ST_PSTAGE__COUNT,      \
      st_produce_stage_names, true,                                                                \
      "Time one partition of a Produce spends in each stage: queue (framed to its append "         \
      "starting on the owner shard), append (on the owner's loop), ack (appended to what acks "    \
      "promises: written or durable), reply (back on the connection's shard).")

typedef enum {
#define ST_HIST_ENUM(id, name, label, n_labels, values, per_slot, help) ST_H_##id,
    ST_HISTOGRAMS(ST_HIST_ENUM)
#undef ST_HIST_ENUM
        ST_H__COUNT
} st_hist_t;

/** Allocate the registry for n_shards shards (call once, before the shards
 * start). @return 0, ST_E_INVAL, ST_E_NOMEM.  @thread main, before others */
ST_MUST_CHECK int st_metrics_init(int n_shards);
/** Free the registry. @thread main, after every other thread stopped */
void st_metrics_fini(void);

/** Add v to a counter, or to a gauge (v may be negative). @thread any
 * @blocking no */
void st_metric_add(st_metric_t m, int64_t v);
/** Add one request and `bytes` bytes for topic (NUL-terminated, borrowed for
 * the call): m is the *_REQUESTS metric, m + 1 its *_BYTES twin.
 * @thread any; the first use of a topic takes a mutex once.  @blocking no */
void st_metric_topic(st_topic_metric_t m, const char *topic, uint64_t bytes);
/** Add v to counter m of object-store operation op. @thread any @blocking no */
void st_metric_op(st_op_metric_t m, st_obj_op_t op, uint64_t v);
/** Record a duration in nanoseconds under label (ignored when out of range).
 * @thread any  @blocking no */
void st_metric_observe_ns(st_hist_t h, int label, uint64_t ns);

/** Measure the lag of the calling shard's loop with a 100 ms timer (a
 * histogram sample per tick). Close with st_metrics_lag_stop() on the same
 * loop before it ends. @return 0 or an error. @thread the shard's loop */
ST_MUST_CHECK int st_metrics_lag_start(uv_loop_t *loop);
/** Close the calling shard's lag timer (no-op when none). */
void st_metrics_lag_stop(void);

/* ---- Rendering (Prometheus text format 0.0.4) ---- */

/* A growable text buffer; `is_oom` is sticky. */
typedef struct {
    char *p; /* owned, NUL-terminated when len > 0 */
    size_t len, cap;
    bool is_oom;
} st_mtext_t;

void st_mtext_printf(st_mtext_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_mtext_free(st_mtext_t *t);
/** Append a label value escaped per the text format (\\, \", \n). */
void st_mtext_label(st_mtext_t *t, const char *value);

/** Append every metric of the registry (sums of all slots).
 * @param label_name  Names a label index of a labelled histogram (API names);
 *                    NULL or a NULL return prints the number.
 * @thread any  @blocking no (reads atomics; takes the topic mutex never) */
void st_metrics_render(st_mtext_t *t, const char *(*label_name)(st_hist_t h, int label));

/** Value of an unlabelled counter or gauge (sum of slots), for tests. */
int64_t st_metric_value(st_metric_t m);

#endif
