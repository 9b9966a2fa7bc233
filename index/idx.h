/* idx.h - the remote index: a SQLite catalog of the segments uploaded to the
 * object store and of the chunks (zstd frames) inside each object.
 *
 * Data path: tier_uploader PUTs a segment object, then calls idx_segment_add()
 * with the chunk metadata the seg writer returned; the callback fires once
 * the row is durably committed, and only then may local retention delete the
 * local segment. Hydration asks idx_lookup_offset() / idx_lookup_time() which
 * object byte range holds an offset or timestamp, then GETs that range.
 * Retention calls idx_delete_below() / idx_drop() and deletes the returned
 * keys from the bucket; orphan GC compares idx_list_keys() with a bucket
 * listing (objects whose index row was removed before the object, or that
 * were stored but never indexed, are orphans).
 *
 * Threads: one index thread per idx_t owns the only connection (WAL mode,
 * synchronous=FULL: an add's callback means the row survives power loss).
 * Reads run on that thread too, in submission order, rather than on the libuv
 * pool: every lookup is a few index seeks in pages SQLite already caches
 * (tens of microseconds), a single connection needs no busy handling or
 * cross-connection WAL snapshots, the pool's 4 threads stay free for file
 * I/O and compression, and a read submitted after an add's callback always
 * sees that add. STYLE.md 5 requires SQLite to run only on this thread.
 * Callers submit from their own libuv loop through an idx_client_t (one per
 * loop, owning a uv_async_t); every callback runs later on that loop, never
 * inside the submitting call.
 *
 * Model: segments of a partition are added in offset order (the uploader
 * uploads in order) and never overlap. Offsets can be missing between chunks
 * (compaction) or between segments (deleted records); a lookup in such a gap
 * returns the next chunk, as a Kafka fetch returns the next batch present.
 */
#ifndef IDX_H
#define IDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"

#define IDX_SCHEMA_VERSION 3
#define IDX_MAX_KEY_LEN    1024 /* as the object store */
#define IDX_MAX_TOPIC_LEN  249  /* Kafka's topic name limit */
#define IDX_MAX_CHUNKS     (1 << 20)
#define IDX_MAX_PAGE       10000 /* rows per list call */

typedef struct idx idx_t;
typedef struct idx_client idx_client_t;

/* Lifecycle of a segment row. Rows are inserted already LIVE: the caller adds
 * a segment only after its object is stored, and removing a row is how a
 * segment is deleted (its object becomes an orphan if the bucket delete never
 * happens). The column is kept for future states (e.g. a two-phase delete). */
typedef enum {
    IDX_SEG_LIVE = 0,
} idx_seg_state_t;

/* A segment row. Strings are borrowed: as input, for the submitting call
 * (copied); as output, until the callback returns. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t base_offset; /* first offset in the object */
    int64_t last_offset; /* last offset in the object */
    int64_t base_ts;     /* baseTimestamp of its first batch */
    int64_t max_ts;      /* largest maxTimestamp of its batches */
    int64_t size;        /* object size in bytes */
    const char *object_key;
    uint32_t checksum; /* CRC-32C of the whole object (tier_seg_info_t.obj_crc32c) */
    int32_t term;      /* leader epoch that wrote it */
    int state;         /* idx_seg_state_t */
    /* Input of idx_segment_add only (output rows leave them NULL/0): the
     * aborted transactions whose ABORT marker is in the object (its txn
     * table, tiering/seg.h), borrowed for the call (copied). */
    const struct idx_aborted *aborted;
    size_t n_aborted;
} idx_segment_t;

/* An aborted transaction of a partition (Kafka's AbortedTxn): its marker
 * lies in the object of the segment row it belongs to. */
typedef struct idx_aborted {
    int64_t pid;
    int64_t first_offset; /* its first batch (may lie in an earlier object) */
    int64_t last_offset;  /* its ABORT marker */
} idx_aborted_t;

/* A chunk row: one zstd frame of the object, whole batches. */
typedef struct {
    int64_t first_offset; /* baseOffset of its first batch */
    int64_t last_offset;  /* last offset of its last batch */
    int64_t first_ts;     /* baseTimestamp of its first batch */
    int64_t max_ts;       /* largest maxTimestamp of its batches */
    int64_t obj_pos;      /* byte range [obj_pos, obj_pos + obj_len) in the object */
    int64_t obj_len;
    int64_t raw_len;   /* decompressed bytes */
    uint32_t checksum; /* CRC-32C of the compressed bytes */
} idx_chunk_t;

/* A lookup result: the chunk and the segment (object) holding it. */
typedef struct {
    idx_segment_t seg;
    idx_chunk_t chunk;
} idx_loc_t;

/* ---- Open / close ---- */

/** Open (creating if needed) the index at path, apply schema migrations and
 * start its thread.
 * @param path  Borrowed for the call.
 * @return 0; ST_E_CORRUPT when the file is not a usable SQLite database;
 *         ST_E_INVAL when its schema is newer than this build; ST_E_IO,
 *         ST_E_NOMEM; a reason in errbuf (may be NULL).
 * @thread any, not a loop that must stay responsive
 * @blocking yes: waits for the index thread to open the file (startup) */
ST_MUST_CHECK int idx_open(const char *path, idx_t **out, char *errbuf, size_t errbuf_len);

/** Run every queued operation, close the database and join the thread. All
 * clients must be closed first (their close callbacks fired). NULL is a no-op.
 * @blocking yes: joins the index thread */
void idx_close(idx_t *idx);

/** Create the completion channel for loop (owns a uv_async_t on it).
 * @return 0, ST_E_NOMEM or a libuv error.  @thread loop's thread */
ST_MUST_CHECK int idx_client_new(idx_t *idx, uv_loop_t *loop, idx_client_t **out);

typedef void (*idx_closed_cb)(void *arg);
/** Stop accepting submissions; callbacks of operations already submitted still
 * fire, then the handle closes, c is freed and cb(arg) runs (cb may be NULL).
 * @thread c's loop */
void idx_client_close(idx_client_t *c, idx_closed_cb cb, void *arg);

/* ---- Operations: submit, then a callback on the client's loop ----
 * Every submit function copies its inputs and returns 0 (the callback will
 * fire exactly once) or an error (ST_E_INVAL, ST_E_CLOSED, ST_E_NOMEM; the
 * callback will not fire). Callback statuses: 0, ST_E_CORRUPT (database
 * damaged), ST_E_IO, ST_E_NOSPC, or what each function lists. Results passed
 * to callbacks are borrowed until the callback returns.
 * @thread c's loop  @blocking no */

typedef void (*idx_done_cb)(void *arg, int status);
typedef void (*idx_loc_cb)(void *arg, int status, const idx_loc_t *loc);
typedef void (*idx_offset_cb)(void *arg, int status, int64_t offset);
/** next_base_offset: pass it as from_offset for the next page; -1 at the end. */
typedef void (*idx_segs_cb)(
    void *arg, int status, const idx_segment_t *segs, size_t n, int64_t next_base_offset);
/** next_after: pass it as `after` for the next page; NULL at the end. */
typedef void (*idx_keys_cb)(
    void *arg, int status, const char *const *keys, size_t n, const char *next_after);

/** Add a segment and its chunks in one transaction. Call only after the
 * object is fully stored. chunks must be in offset order, non-overlapping,
 * span [base_offset, last_offset], lie inside [0, size), n_chunks >= 1.
 * Status ST_E_EXISTS when the segment does not start after the partition's
 * last indexed offset; 0 when the very same row (key and offsets) is already
 * there (a retry after a crash or a lost callback).
 * @return ST_E_INVAL (synchronously) for inconsistent input. */
ST_MUST_CHECK int idx_segment_add(idx_client_t *c,
                                  const idx_segment_t *seg,
                                  const idx_chunk_t *chunks,
                                  size_t n_chunks,
                                  idx_done_cb cb,
                                  void *arg);

typedef void (*idx_aborted_cb)(void *arg, int status, const idx_aborted_t *v, size_t n);

/** Every aborted transaction recorded for (topic, partition), in marker
 * order (v borrowed until the callback returns; NULL with n = 0 for none).
 * Rows go with their segment (retention, drop). */
ST_MUST_CHECK int idx_list_aborted(
    idx_client_t *c, const char *topic, int32_t partition, idx_aborted_cb cb, void *arg);

/** The chunk holding offset, or the first chunk after it when offset is in a
 * gap. Status ST_E_RANGE when offset is below the partition's first or above
 * its last indexed offset (or nothing is indexed). O(log n). */
ST_MUST_CHECK int idx_lookup_offset(idx_client_t *c,
                                    const char *topic,
                                    int32_t partition,
                                    int64_t offset,
                                    idx_loc_cb cb,
                                    void *arg);

/** The first chunk (lowest offsets) that may hold a record with timestamp >=
 * ts: the first chunk whose max_ts >= ts. Status ST_E_RANGE when no indexed
 * record qualifies. O(log n): rows carry a running maximum of max_ts. */
ST_MUST_CHECK int idx_lookup_time(
    idx_client_t *c, const char *topic, int32_t partition, int64_t ts, idx_loc_cb cb, void *arg);

/** Up to limit (<= IDX_MAX_PAGE) segments of a partition with base_offset >=
 * from_offset, in offset order. */
ST_MUST_CHECK int idx_list_segments(idx_client_t *c,
                                    const char *topic,
                                    int32_t partition,
                                    int64_t from_offset,
                                    size_t limit,
                                    idx_segs_cb cb,
                                    void *arg);

/** Highest indexed offset of a partition (the uploader resumes after it), or
 * -1 when nothing is indexed. */
ST_MUST_CHECK int
idx_high_offset(idx_client_t *c, const char *topic, int32_t partition, idx_offset_cb cb, void *arg);

/** Lowest indexed offset of a partition (remote log start), or -1. */
ST_MUST_CHECK int
idx_low_offset(idx_client_t *c, const char *topic, int32_t partition, idx_offset_cb cb, void *arg);

/** Remove every segment of the partition whose last_offset < offset (wholly
 * below it) with its chunks, in one transaction; the callback gets their
 * object keys (next_after NULL) for the caller to delete from the bucket.
 * Timestamp lookups then see only the rows left (their running maxima of
 * max_ts no longer count the removed rows). */
ST_MUST_CHECK int idx_delete_below(idx_client_t *c,
                                   const char *topic,
                                   int32_t partition,
                                   int64_t offset,
                                   idx_keys_cb cb,
                                   void *arg);

/** Remove a partition (partition >= 0) or a whole topic (partition == -1);
 * the callback gets the removed object keys. */
ST_MUST_CHECK int
idx_drop(idx_client_t *c, const char *topic, int32_t partition, idx_keys_cb cb, void *arg);

/* ---- Archive compaction (tiering/tier_acomp.c) ---- */

/* One object replaced by its compacted rewrite: the same offsets
 * [base_offset, last_offset], a new object key. */
typedef struct {
    const char *old_key;       /* the row replaced (borrowed for the call) */
    idx_segment_t seg;         /* the new row, as for idx_segment_add (aborted included) */
    const idx_chunk_t *chunks; /* borrowed for the call; rules as idx_segment_add */
    size_t n_chunks;
} idx_replace_t;

/** Switch (topic, partition) to compacted objects in one transaction: each
 * row of v[i].old_key is deleted with its chunks and aborted rows and
 * v[i].seg inserted with v[i].chunks; the running maxima of max_ts
 * (timestamp lookups) are recomputed from the first replaced row on; the
 * partition's clean end becomes clean_end. All or nothing: status
 * ST_E_NOTFOUND when an old row is gone (retention deleted it meanwhile) or
 * does not have the new row's partition and offsets; the caller then deletes
 * the new objects, else the old ones (after the callback: readers that
 * looked an old chunk up just before may still fetch it). n may be 0 (only
 * the clean end moves).
 * @return ST_E_INVAL (synchronously) for inconsistent input. */
ST_MUST_CHECK int idx_segments_replace(idx_client_t *c,
                                       const char *topic,
                                       int32_t partition,
                                       const idx_replace_t *v,
                                       size_t n,
                                       int64_t clean_end,
                                       idx_done_cb cb,
                                       void *arg);

/** The clean end of (topic, partition)'s archive: the last clean_end
 * idx_segments_replace() committed (records below were compacted against
 * every key up to it), or -1 when it was never compacted. Dropped with the
 * partition. */
ST_MUST_CHECK int
idx_clean_end(idx_client_t *c, const char *topic, int32_t partition, idx_offset_cb cb, void *arg);

/** Up to limit (<= IDX_MAX_PAGE) object keys of all segments, in byte order
 * (the order of an S3 listing), starting after `after` (NULL = from the
 * start), for orphan detection by merging with a bucket listing. */
ST_MUST_CHECK int
idx_list_keys(idx_client_t *c, const char *after, size_t limit, idx_keys_cb cb, void *arg);

#endif
