/* tier.h - tiered storage on a shard: the uploader of sealed segments.
 * Data path: core/plog seals a segment (roll) -> tier_on_sealed() queues its
 * partition -> the segment file is compressed into the zstd seekable object
 * format (tiering/seg.h) on the thread pool -> obj_put() stores it under
 * <8 hex hash>/<topic>/<partition>/<base>-<last>-<term>.seg.zst -> only then
 * idx_segment_add() commits its row (index/idx.h) -> plog_set_uploaded()
 * tells the log that those offsets are safely in the bucket.
 * The active segment is uploaded too, in ranges of its durable records, once
 * its oldest record not archived is strata.archive.max.upload.interval.ms
 * old: losing the whole disk loses at most that window.
 * Invariants: 1. a partition uploads one range at a time, in offset order,
 *                each starting where the last one ended (a batch boundary);
 *                only durable records (below plog_durable_offset) go;
 *             2. a failed step is retried from the PUT with backoff, forever,
 *                while the log keeps its data (nothing local is deleted for
 *                a segment that is not indexed);
 *             3. after a restart uploads resume after the highest indexed
 *                offset, so nothing already indexed is uploaded again.
 * Threads: everything runs on the shard's loop except the compression. */
#ifndef TIER_H
#define TIER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/meta.h"
#include "core/part.h"
#include "core/st_err.h"
#include "core/st_pool.h"
#include "index/idx.h"
#include "tiering/seg.h"

typedef struct tier_shard tier_shard_t;

typedef struct {
    const char *archive_url; /* borrowed: strata.archive.url (file://DIR or s3://BUCKET/PREFIX) */
    idx_t *idx;              /* borrowed: the broker's remote index */
    unsigned max_uploads;    /* partitions uploading at once on this shard (0 = 2) */
    /* strata.archive.max.upload.interval.ms: upload the active segment's
     * durable records once its oldest not archived is this old (0 = only
     * sealed segments are uploaded). */
    int64_t max_upload_interval_ms;
    /* Is remote storage enabled for this topic (remote.storage.enable)? */
    bool (*is_remote)(void *arg, const char *topic);
    void *is_remote_arg;
    /* The aborted transactions whose ABORT marker lies in [from, to) of log,
     * as the broker knows them (their first offsets may precede from): the
     * uploader gives them to the object writer (tiering/seg.h's txn table).
     * *out is malloc'd (the uploader frees it), NULL with *n = 0 for none.
     * Called on the partition's shard loop. NULL = the writer's own view. */
    int (*aborted)(
        void *arg, plog_t *log, int64_t from, int64_t to, tier_seg_aborted_t **out, size_t *n);
    void *aborted_arg;
    /* Total retention and orphan GC (tier_gc.c). */
    int64_t gc_interval_ms; /* period of the retention pass (0 = 300000) */
    bool is_orphan_scanner; /* this shard also removes orphans (one per broker) */
    /* The topic's log config (retention.ms, retention.bytes); NULL = no total retention. */
    void (*topic_config)(void *arg, const char *topic, plog_config_t *out);
    void *topic_config_arg;
    /* Archive compaction (tier_acomp.c) of compacted remote topics: the
     * offset map's memory (log.cleaner.dedupe.buffer.size / shards, at least
     * 1 MiB), how often a partition is offered (log.cleaner.backoff.ms,
     * 0 = 15 s) and the object bytes a pass reads plus writes per second.
     * Needs topic_config. */
    size_t acomp_map_bytes;
    int64_t acomp_interval_ms;
    int64_t acomp_io_bytes_per_sec; /* log.cleaner.io.max.bytes.per.second (<= 0: none) */
    /* The topic table: the orphan scanner shard keeps a manifest of every
     * remote-enabled topic in the archive (tier_topics.c). NULL = none. */
    meta_t *meta;
    /* Worker pools (core/st_pool.h), borrowed, NULL = libuv's shared pool:
     * hydration (chunk verification, decoding, chunk cache file I/O) and
     * uploads (segment compression), so an upload burst cannot delay a replay. */
    st_pool_t *hydration_pool;
    st_pool_t *upload_pool;
} tier_opts_t;

/** Start the uploader of a shard: open the object store and an index client
 * on loop, and resume every partition of ps whose topic is remote-enabled.
 * @return 0 or an error (errbuf says why). @thread loop's thread */
ST_MUST_CHECK int tier_shard_new(uv_loop_t *loop,
                                 part_shard_t *ps,
                                 const tier_opts_t *opts,
                                 tier_shard_t **out,
                                 char *errbuf,
                                 size_t errbuf_len);

/** Call cb(arg) on the loop once every remote-enabled partition open at start
 * has learned from the index what the archive holds (its log start lowered
 * to the archive's): at once when there is none. Serve clients only after,
 * or reads of archived offsets would be answered as out of range. */
void tier_when_resumed(tier_shard_t *ts, void (*cb)(void *arg), void *arg);

/** plog_sealed_fn: a segment of log was sealed. arg is the tier_shard_t. */
void tier_on_sealed(void *arg, plog_t *log, int64_t base_offset, int64_t next_offset);

/** The aborted transactions recorded in (topic, partition)'s archived
 * objects (their txn tables, loaded from the index at start, grown by
 * uploads) that a read_committed fetch of [from, to) needs: marker at or
 * after from, first offset below to (Kafka's collectAbortedTxns).
 * @param out  Out: malloc'd (NULL when none), owned by the caller.
 * @return 0 or ST_E_NOMEM. @thread the shard's loop */
ST_MUST_CHECK int tier_aborted(tier_shard_t *ts,
                               const char *topic,
                               int32_t partition,
                               int64_t from,
                               int64_t to,
                               tier_seg_aborted_t **out,
                               size_t *n_out);

/** Upload whatever is sealed and not yet indexed for (topic, partition). */
void tier_kick(tier_shard_t *ts, const char *topic, int32_t partition);

/** The unarchived window of (topic, partition): since when (part_now_ms
 * clock) its oldest record not archived waits, or -1 when everything
 * durable is archived or not known yet (sealed segments waiting count from
 * their segment's first append). @thread loop */
int64_t tier_window_since(tier_shard_t *ts, const char *topic, int32_t partition);

/* ---- Reading offloaded data (tier_rd.c) ----
 * Call tier_read_open() after tier_shard_new() (starts the chunk cache) and
 * tier_read_close() before tier_shard_close() (ends downloads and cache I/O). */

typedef struct {
    const char *cache_dir;    /* borrowed for the call: this shard's chunk cache, NULL = none */
    uint64_t cache_bytes;     /* its bound (strata.cache.bytes / shards) */
    unsigned max_downloads;   /* ranged GETs of archived chunks at once on this shard (0 = 4) */
    uint64_t readahead_bytes; /* object bytes per read-ahead GET (0 = 16 MiB) */
} tier_read_opts_t;

/** Open the chunk cache and rebuild its LRU from the files on the thread
 * pool. Without this call reads work with no cache and default limits.
 * @param opts  Borrowed for the call.
 * @return 0 or an error (errbuf says why; reads still work without a cache).
 * @thread ts's loop  @blocking mkdir only */
ST_MUST_CHECK int
tier_read_open(tier_shard_t *ts, const tier_read_opts_t *opts, char *errbuf, size_t errbuf_len);

/** Called on the shard's loop with the batches starting with the one that
 * holds the offset (data malloc'd, the callee frees it), or an error:
 * ST_E_RANGE when the archive does not have the offset. */
typedef void (*tier_read_cb)(void *arg, int status, uint8_t *data, size_t len);

/** Read whole batches of (topic, partition) from the archive, starting with
 * the one holding offset, up to max_bytes (at least one batch).
 * @return 0 (cb will run), or an error (cb will not). @thread loop */
ST_MUST_CHECK int tier_read(tier_shard_t *ts,
                            const char *topic,
                            int32_t partition,
                            int64_t offset,
                            int64_t max_bytes,
                            tier_read_cb cb,
                            void *arg);

/** tier_read() answering by deadline_ms (part_now_ms() clock): when the chunk
 * is not downloaded by then, cb runs with status 0 and no data (the download
 * goes on and fills the cache, so the next fetch finds it). tier_read() uses
 * now + TIER_READ_WAIT_MS (Kafka's default fetch.max.wait.ms).
 * @thread loop @blocking no */
#define TIER_READ_WAIT_MS 500
ST_MUST_CHECK int tier_read_until(tier_shard_t *ts,
                                  const char *topic,
                                  int32_t partition,
                                  int64_t offset,
                                  int64_t max_bytes,
                                  int64_t deadline_ms,
                                  tier_read_cb cb,
                                  void *arg);

/** ListOffsets by timestamp over the archive: cb(arg, 0, offset, batch max
 * timestamp) for the first archived record with timestamp >= target;
 * ST_E_NOTFOUND when the archive holds none (ask the local log);
 * ST_E_TIMEOUT when its chunk did not arrive by deadline_ms.
 * @thread loop */
typedef void (*tier_time_cb)(void *arg, int status, int64_t offset, int64_t timestamp);
ST_MUST_CHECK int tier_offset_for_time(tier_shard_t *ts,
                                       const char *topic,
                                       int32_t partition,
                                       int64_t target,
                                       int64_t deadline_ms,
                                       tier_time_cb cb,
                                       void *arg);

typedef void (*tier_read_closed_cb)(tier_shard_t *ts, void *arg);
/** Stop hydration: queued and running downloads are canceled (their readers
 * get an error), thread pool work finishes, the cache closes; then cb(ts, arg)
 * runs on the loop, and ts is ready for tier_shard_close(). @thread ts's loop */
void tier_read_close(tier_shard_t *ts, tier_read_closed_cb cb, void *arg);

typedef struct {
    int64_t uploaded_segments; /* objects uploaded since start */
    int64_t uploaded_active;   /* of which ranges of an active segment (its window passed) */
    int64_t reconciled;        /* logs continued after the archive at start (it was ahead) */
    int64_t uploaded_bytes;    /* object bytes */
    int64_t errors;            /* failed upload attempts (retried) */
    int64_t corrupt_segments;  /* attempts that found a local batch failing its CRC-32C */
    int active;                /* partitions uploading now */
    /* Hydration (tier_rd.c), since start: */
    int64_t reads;               /* tier_read*() calls: reads of archived data */
    int64_t download_errors;     /* ranged GETs that failed (their readers got the error) */
    int64_t cache_hits;          /* chunks read from the chunk cache */
    int64_t cache_misses;        /* chunks not cached when a reader wanted them */
    int64_t cache_evictions;     /* chunk files evicted to stay under strata.cache.bytes */
    int64_t cache_corrupt;       /* cached chunks that failed verification (refetched) */
    int64_t downloads;           /* ranged GETs of archived chunks */
    int64_t readahead_downloads; /* of which read-ahead */
    int64_t downloaded_bytes;    /* object bytes fetched by those GETs */
    int64_t hydrated_bytes;      /* batch bytes returned to readers */
    int64_t shared_waits;        /* reads that joined a download already running */
    int64_t prefetch_windows; /* read-ahead GETs queued with 2 other windows ahead of the reader */
    int64_t cache_ahead_hits; /* of cache_hits: read from the cache ahead of their reader */
    /* Filled by tier_read_stats() only: */
    int64_t cache_bytes;   /* file bytes in the chunk cache now */
    int64_t cache_entries; /* chunks in the chunk cache now */
    char last_error[512];  /* the object store's last failure, "" = none */
} tier_stats_t;
void tier_stats(const tier_shard_t *ts, tier_stats_t *out);
/** tier_stats() with the chunk cache's counters and occupancy read now and
 * the object store's last error. @thread ts's loop */
void tier_read_stats(const tier_shard_t *ts, tier_stats_t *out);

typedef void (*tier_closed_cb)(void *arg);
/** Stop uploading (an upload in flight is abandoned: its object may remain
 * as an orphan, its row is not written), close the store and the client. */
void tier_shard_close(tier_shard_t *ts, tier_closed_cb cb, void *arg);

/** The object key of a segment: "<8 hex>/<topic>/<partition>/<base>-<last>-<term>.seg.zst". */
void tier_object_key(const char *topic,
                     int32_t partition,
                     int64_t base,
                     int64_t last,
                     int32_t term,
                     char *out,
                     size_t out_len);

/** tier_object_key() of a compacted rewrite: generation gen > 0 adds
 * "_c<10 digits>" before ".seg.zst" (so it sorts after the object it
 * replaces); gen 0 is tier_object_key(). */
void tier_object_key_with_gen(const char *topic,
                              int32_t partition,
                              int64_t base,
                              int64_t last,
                              int32_t term,
                              uint32_t gen,
                              char *out,
                              size_t out_len);

/** The compaction generation of a segment object key (0: never compacted).
 * @return 0, or ST_E_INVAL when key is not a segment object's. */
ST_MUST_CHECK int tier_object_key_gen(const char *key, uint32_t *gen);

/* ---- Archive compaction (tier_acomp.c) ----
 * The archive of a compacted topic with remote storage is compacted too:
 * each shard's archive cleaner thread rewrites its partitions' objects
 * keeping the latest record of each key (the local cleaner's offset map and
 * batch filter, core/compact.h), switches the index to the new objects in
 * one transaction (idx_segments_replace) and deletes the old ones after. */
typedef struct {
    int64_t passes;            /* partitions dirty enough that a pass ran */
    int64_t objects_rewritten; /* objects replaced by a compacted rewrite */
    int64_t bytes_read;        /* object bytes of the ranges compacted */
    int64_t bytes_written;     /* their bytes after (unchanged objects counted as they are) */
    int64_t records_removed;   /* records dropped (older values, expired tombstones) */
    int64_t errors;            /* passes that failed (retried at the next offer) */
} tier_acomp_stats_t;
void tier_acomp_stats(const tier_shard_t *ts, tier_acomp_stats_t *out);

/* ---- Total retention and GC (tier_gc.c) ----
 * Every gc_interval_ms each shard, for the remote-enabled partitions it owns:
 * retention.ms (archived segments whose max_ts is older) and retention.bytes
 * (archived-only bytes + local bytes above the limit) move the log start up
 * (plog_delete_records); then the index rows and the objects wholly below the
 * log start (whatever moved it: retention, DeleteRecords) are deleted
 * (idx_delete_below, then obj_delete_many). The orphan scanner shard also
 * merges a bucket listing with idx_list_keys() and deletes segment objects
 * without a row once they stayed orphans for a grace period (2 passes, at
 * least 2 s; 10 times that for objects above the partition's indexed
 * offsets, which may be an upload between its PUT and its index commit). */

/** Run a retention pass soon (after DeleteRecords). @thread loop */
void tier_gc_kick(tier_shard_t *ts);

/** DeleteTopics: forget the topic's index rows and delete its objects.
 * @thread loop */
void tier_topic_deleted(tier_shard_t *ts, const char *topic);

typedef struct {
    int64_t deleted_objects; /* by retention, DeleteRecords, DeleteTopics */
    int64_t deleted_orphans;
    int64_t errors;
} tier_gc_stats_t;
void tier_gc_stats(const tier_shard_t *ts, tier_gc_stats_t *out);

/* ---- Recovery from the bucket (tier_recover.c) ---- */

/* A partition found in the archive. */
typedef struct {
    char topic[256];
    int32_t partition;
    int64_t low_offset;  /* first archived offset */
    int64_t high_offset; /* last archived offset */
} tier_recover_part_t;

/* A topic manifest found in the archive (tier_topics.c writes them). */
typedef struct {
    char *name; /* owned */
    int32_t n_partitions;
    meta_kv_t *configs; /* owned: the topic's config overrides */
    int n_configs;
} tier_recover_topic_t;

typedef struct {
    int64_t objects;            /* segment objects indexed */
    int64_t skipped;            /* not segment objects, or overlapping indexed data */
    int64_t failed;             /* unreadable or corrupt objects (left in the bucket) */
    int64_t bytes;              /* object bytes indexed */
    int64_t tail_only;          /* of the objects: described from their tail alone */
    bool was_not_empty;         /* only_if_empty and the index had rows: nothing done */
    tier_recover_part_t *parts; /* owned by the callee of the result */
    size_t n_parts;
    tier_recover_topic_t *topics; /* owned by the callee: manifests of the archive */
    size_t n_topics;
} tier_recover_result_t;

/** Free what a result owns (parts, topics); res may be zeroed. @thread any */
void tier_recover_result_fini(tier_recover_result_t *res);

/** res is borrowed, except what it owns, which the callback owns
 * (tier_recover_result_fini). */
typedef void (*tier_recover_cb)(void *arg, int status, const tier_recover_result_t *res);

struct obj_store_s;
/** Rebuild the remote index from the objects of store: list, read each
 * segment object, parse its seek table and frames, add its rows in offset
 * order. With only_if_empty, do nothing when the index has any row.
 * @param store, idx  Borrowed until cb; both on loop.
 * @return 0 (cb will run on loop) or an error. @thread loop @blocking no */
ST_MUST_CHECK int tier_recover(uv_loop_t *loop,
                               struct obj_store_s *store,
                               idx_client_t *idx,
                               bool only_if_empty,
                               tier_recover_cb cb,
                               void *arg);

/** tier_recover() on a private loop with its own store and index client.
 * @param out  Out: the result; out->parts owned by the caller (free()).
 * @thread any except a shard loop @blocking yes: start-up or the admin thread */
ST_MUST_CHECK int tier_recover_blocking(const char *archive_url,
                                        idx_t *idx,
                                        bool only_if_empty,
                                        tier_recover_result_t *out,
                                        char *errbuf,
                                        size_t errbuf_len);

/** Called when tier_recover_restore() is done: 0, or an error (logged). */
typedef void (*tier_restore_cb)(void *arg, int status);

struct meta;
/** After tier_recover(): each partition of res without a directory in
 * data_dir gets one whose log starts after its archived offsets (so new
 * records never reuse them), then every topic of res (manifest or objects)
 * that meta does not know is created with its manifest's configs (remote
 * storage on) and partition count (at least the highest archived partition
 * + 1). Call before the shards open those partitions (start-up) or while no
 * shard has them (their topic unknown).
 * @param meta, data_dir  meta borrowed until cb; data_dir copied; on success
 *        what res owns moves to the restore (res is zeroed).
 * @return 0 (cb will run on loop) or an error. @thread loop @blocking no */
ST_MUST_CHECK int tier_recover_restore(uv_loop_t *loop,
                                       struct meta *meta,
                                       const char *data_dir,
                                       tier_recover_result_t *res,
                                       tier_restore_cb cb,
                                       void *arg);

/** POST /v1/storage/recover: on loop, with its own store and index client,
 * rebuild the index from the archive (tier_recover without only_if_empty:
 * rows already there stay), then tier_recover_restore(); progress and the
 * outcome are logged. @return 0 (started), ST_E_AGAIN (one is running), or
 * an error (errbuf says why). @thread loop (not a shard's) @blocking no */
ST_MUST_CHECK int tier_recover_start(uv_loop_t *loop,
                                     const char *archive_url,
                                     idx_t *idx,
                                     struct meta *meta,
                                     const char *data_dir,
                                     char *errbuf,
                                     size_t errbuf_len);

/* ---- Topic manifests (tier_topics.c) ----
 * The archive describes its topics: next to the segment objects the orphan
 * scanner shard keeps one object "_strata/topics/<topic>.json" per
 * remote-enabled topic, {"topic": name, "partitions": n, "configs": {key:
 * value}} (its config overrides), rewritten when the topic table changes
 * (checked every TIER_TOPICS_CHECK_MS against the snapshot version) and
 * deleted with the topic. Recovery recreates topics from them, configs
 * included; `strata archive ls` shows them. */
#define TIER_TOPICS_PREFIX   "_strata/topics/"
#define TIER_TOPICS_CHECK_MS 1000
#define TIER_TOPICS_MAX_JSON (1 << 20)

/** The manifest object key of topic. @return 0, ST_E_INVAL (too long). */
ST_MUST_CHECK int tier_topic_manifest_key(const char *topic, char *out, size_t out_len);
/** Topic name of a manifest key, or ST_E_INVAL when key is not one. */
ST_MUST_CHECK int tier_topic_manifest_name(const char *key, char *topic, size_t topic_len);
/** A topic's manifest (malloc'd JSON text, NULL on ENOMEM). @thread any */
char *tier_topic_manifest_json(const meta_topic_t *t);
/** Parse an (untrusted) manifest into out (release with
 * tier_recover_result_fini semantics: tier_recover_topic_fini).
 * @return 0, ST_E_CORRUPT (not a valid manifest), ST_E_NOMEM. */
ST_MUST_CHECK int
tier_topic_manifest_parse(const char *json, size_t len, tier_recover_topic_t *out);
void tier_recover_topic_fini(tier_recover_topic_t *t);

/** Parse a segment object key (see tier_object_key).
 * @return 0, or ST_E_INVAL when key is not a segment object's. */
ST_MUST_CHECK int tier_parse_object_key(const char *key,
                                        char *topic,
                                        size_t topic_len,
                                        int32_t *partition,
                                        int64_t *base,
                                        int64_t *last);

#endif
