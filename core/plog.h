/* plog.h - the partition log: Kafka's on-disk layout, durable appends, reads.
 *
 * Data path: kh_produce decodes a record set -> plog_append() validates every
 * batch, assigns offsets (rewriting only baseOffset and partitionLeaderEpoch)
 * on the owning shard loop and hands a copy of the bytes to the env's writer
 * thread -> which writes them into the active segment (page cache) -> the
 * env's flusher thread fdatasyncs (group commit: every append that arrived
 * while a sync was in flight shares the next one) -> both steps are posted
 * back to the loop,
 * where plog_wait_written() (acks=1, write caching) and plog_wait_durable()
 * waiters fire -> ack. The loop never writes a segment itself.
 * kh_fetch calls plog_read() for a slice of whole batches; tiering reads
 * sealed segments.
 *
 * Layout: DIR/<20-digit base offset>.log, .index (8-byte entries: relative
 * offset of a batch's last record, file position of the batch, big-endian) and
 * .timeindex (12-byte entries: max timestamp so far, relative offset). The
 * index is kept in memory; its files are loaded at open and saved from memory
 * (written, fdatasynced) when a segment is sealed or closed and by recovery,
 * so an append writes only the .log and a segment keeps one descriptor open.
 *
 * Threads: a plog_t belongs to one loop (its shard). Only plog_env's writer
 * and flusher threads touch it elsewhere, under the log's mutexes.
 */
#ifndef PLOG_H
#define PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/st_err.h"

/* ---- Record batch v2 ---- */

#define PLOG_BATCH_HDR_SIZE     61 /* bytes up to and including recordsCount */
#define PLOG_BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define PLOG_BATCH_CRC_START    21 /* CRC-32C covers attributes .. end */

/* Field names follow the Kafka spec (DefaultRecordBatch). */
typedef struct {
    int64_t base_offset;
    int32_t batch_length; /* bytes after this field */
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes; /* bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control */
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
} plog_batch_hdr_t;

/** Decode the fixed header of the batch at p (no validation beyond length).
 * @return 0, or ST_E_MALFORMED when len < PLOG_BATCH_HDR_SIZE. */
ST_MUST_CHECK int plog_batch_parse_hdr(const uint8_t *p, size_t len, plog_batch_hdr_t *out);

/** Validate one complete batch of exactly len bytes: lengths, magic 2, CRC-32C,
 * compression codec, record count, and (uncompressed) every record's framing.
 * @param why  Out (may be NULL): a static string naming the failed check.
 * @return 0, ST_E_MALFORMED or ST_E_CORRUPT (CRC mismatch). */
ST_MUST_CHECK int
plog_batch_validate(const uint8_t *p, size_t len, plog_batch_hdr_t *out, const char **why);

/** As plog_batch_validate, for a batch read back from a log or an object:
 * it may hold fewer records than lastOffsetDelta + 1 (the cleaner removed
 * some: offsets keep their gaps) or none (an empty batch that keeps the
 * offsets of a segment's end). Recovery and `strata archive verify` use it. */
ST_MUST_CHECK int
plog_batch_validate_stored(const uint8_t *p, size_t len, plog_batch_hdr_t *out, const char **why);

/** Validate a record set (batches back to back) as plog_append() will.
 * @param n_batches  Out: number of batches.  @return as plog_batch_validate. */
ST_MUST_CHECK int
plog_records_validate(const uint8_t *p, size_t len, int *n_batches, const char **why);

/** First offset in the batch at p whose record timestamp is >= ts, reading its
 * records (decompressed when the batch is; a batch that does not decompress
 * answers its base offset). *rec_ts (may be NULL) gets that record's timestamp
 * (the batch's maxTimestamp for LogAppendTime, as Kafka reports it).
 * @return the offset, or -1 when no record qualifies. */
int64_t plog_batch_offset_for_time(const uint8_t *p, size_t len, int64_t ts, int64_t *rec_ts);

/* One record of a batch (plog_batch_records). Views into the batch or its
 * decompressed records, borrowed for the callback. */
typedef struct {
    int64_t offset;         /* absolute offset */
    int64_t timestamp;      /* absolute (LogAppendTime batches: maxTimestamp) */
    const uint8_t *key;     /* NULL for a null key */
    int32_t key_len;        /* -1 for a null key */
    const uint8_t *value;   /* NULL for a null value */
    int32_t value_len;      /* -1 for a null value */
    int32_t n_headers;      /* read them with plog_record_headers() */
    const uint8_t *headers; /* the encoded headers */
    size_t headers_len;
    const uint8_t *raw; /* the whole encoded record, its length prefix included */
    size_t raw_len;
} plog_record_t;

/* One record header: views like plog_record_t's. */
typedef struct {
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value; /* NULL for a null value */
    int32_t value_len;    /* -1 for a null value */
} plog_header_t;

/** Called for each record in offset order. @return 0 to go on, or a negative
 * st_err that stops the walk and is returned by plog_batch_records(). */
typedef int (*plog_record_fn)(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec);

/** Decode every record of one batch of exactly len bytes (untrusted; the CRC
 * is not checked here: plog_batch_validate does), decompressing compressed
 * batches under max_raw bytes.
 * @return 0, ST_E_MALFORMED, ST_E_TOO_LARGE, ST_E_INVAL (unknown codec), or
 *         fn's error.  @thread any  @blocking CPU (decompression) */
ST_MUST_CHECK int
plog_batch_records(const uint8_t *p, size_t len, size_t max_raw, plog_record_fn fn, void *arg);

/** Decode up to cap headers of rec into out. @return how many (fewer than
 * rec->n_headers only when cap is smaller). */
int32_t plog_record_headers(const plog_record_t *rec, plog_header_t *out, int32_t cap);

/* ---- Environment: one per data directory ---- */

typedef struct plog_env plog_env_t;
typedef struct plog_shard plog_shard_t;
typedef struct plog plog_t;
typedef struct plog_seg plog_seg_t;

/* Syscalls the engine makes on its files and directories (every write, sync,
 * truncation, creation, rename and unlink of a log goes through here); tests
 * replace them to inject ENOSPC, EIO and short writes, and to simulate power
 * cuts (tests/unit/plog_crash_test.c). Reads use pread directly. */
typedef struct {
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*open)(const char *path, int flags, mode_t mode); /* files and directories */
    int (*fsync)(int fd);                                  /* directories */
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
} plog_sys_t;

/** Replace the syscall table (NULL restores the real one; NULL members keep
 * the real call). @thread any, before use */
void plog_set_sys(const plog_sys_t *sys);

/** Start the writer and flusher threads. @return 0 or ST_E_NOMEM / negative errno. */
ST_MUST_CHECK int plog_env_new(plog_env_t **out);
/** A flusher without a thread, for deterministic tests (crash simulation):
 * nothing is synced until plog_env_flush_step(). */
ST_MUST_CHECK int plog_env_new_manual(plog_env_t **out);
/** Run one round of a manual env's flusher on the calling thread: the queued
 * syncs, the delayed ones (write caching) and the jobs. The completions fire
 * on the shards' loops. @return whether there was any work. */
bool plog_env_flush_step(plog_env_t *env);
/** Stop the flusher after it drained its queue; all logs must be closed. */
void plog_env_free(plog_env_t *env);
/** Cap the bytes queued for the flusher to write (default 64 MiB): an append
 * that would pass it blocks its loop until the flusher wrote enough (one
 * append always fits an empty queue). A manual env never blocks. */
void plog_env_set_write_cap(plog_env_t *env, int64_t bytes);
/** Whether the flusher waits for work (an append then makes its write in the
 * flusher's next round, not on the writer). For tests.  @thread any */
bool plog_env_flusher_idle(plog_env_t *env);

/** Per-loop completion channel (owns an st_wake_t, an eventfd, on loop).
 * @thread loop's thread */
ST_MUST_CHECK int plog_shard_new(plog_env_t *env, uv_loop_t *loop, plog_shard_t **out);

/** Called on the loop when a segment of log is sealed (rolled) and durable
 * (fdatasynced, with its directory entry): it holds offsets [base_offset,
 * next_offset). Tiering registers it to upload. */
typedef void (*plog_sealed_fn)(void *arg, plog_t *log, int64_t base_offset, int64_t next_offset);
void plog_shard_on_sealed(plog_shard_t *sh, plog_sealed_fn fn, void *arg);
/** Called on the loop when the high watermark of log moved up (a sync or,
 * with write caching, a write completed): Fetch wakes its long polls. */
typedef void (*plog_hw_fn)(void *arg, plog_t *log);
void plog_shard_on_hw(plog_shard_t *sh, plog_hw_fn fn, void *arg);
/** Close the channel; frees itself in the close callback. All its logs must be
 * closed (plog_close callbacks fired) first. */
void plog_shard_free(plog_shard_t *sh);

/* ---- Partition log ---- */

typedef struct {
    int64_t segment_bytes;        /* segment.bytes: roll when the active segment would exceed it */
    int64_t segment_ms;           /* segment.ms: roll when the active segment is older */
    int64_t retention_bytes;      /* retention.bytes, -1 = unlimited */
    int64_t retention_ms;         /* retention.ms, -1 = unlimited */
    int32_t index_interval_bytes; /* index.interval.bytes */
    /* Tiered storage (KIP-405 names). With remote_enabled, local segments are
     * deleted by local.retention.* only once uploaded (plog_set_uploaded),
     * without moving the log start offset; retention.bytes is then enforced
     * by tiering over remote + local data. -2 = same as retention.*. */
    bool remote_enabled;           /* remote.storage.enable */
    int64_t local_retention_bytes; /* local.retention.bytes */
    int64_t local_retention_ms;    /* local.retention.ms */
    /* Redpanda's write caching: acks=all is answered once the write is in the
     * page cache (plog_wait_acked) and the high watermark is the written end;
     * the data is fdatasynced after flush_ms, or once flush_bytes bytes or
     * flush_messages records are unsynced, whichever comes first. Without it
     * every append is synced before it is acknowledged or visible. */
    bool write_caching;     /* write.caching */
    int64_t flush_ms;       /* flush.ms */
    int64_t flush_bytes;    /* flush.bytes */
    int64_t flush_messages; /* flush.messages */
    /* Log compaction (Kafka's names; core/plog_compact.c). */
    bool cleanup_delete;           /* cleanup.policy has delete: retention.* delete segments */
    bool cleanup_compact;          /* cleanup.policy has compact: the shard's cleaner runs */
    double min_cleanable_ratio;    /* min.cleanable.dirty.ratio */
    int64_t min_compaction_lag_ms; /* min.compaction.lag.ms */
    int64_t max_compaction_lag_ms; /* max.compaction.lag.ms (also rolls the active segment) */
    int64_t delete_retention_ms;   /* delete.retention.ms: tombstone lifetime */
} plog_config_t;

/** Parse a cleanup.policy value: "delete", "compact", or both comma-separated
 * (blanks allowed). @param is_delete, is_compact  Out (may be NULL).
 * @return 0 or ST_E_INVAL. */
ST_MUST_CHECK int plog_cleanup_policy_parse(const char *s, bool *is_delete, bool *is_compact);
/** Parse a ratio in [0, 1] (min.cleanable.dirty.ratio). @return 0 or ST_E_INVAL. */
ST_MUST_CHECK int plog_ratio_parse(const char *s, double *out);

/** Kafka's defaults (1 GiB segments, 7 days, unlimited size, 4 KiB index
 * interval, remote storage off, local retention = total retention), write
 * caching off (flush.ms 100, flush.bytes 256 KiB, flush.messages unlimited:
 * Redpanda's defaults for when it is turned on). */
void plog_config_default(plog_config_t *cfg);

/** Open (creating if needed) the log in dir and recover it: scan the active
 * segment's tail from its last good index entry, truncate at the first torn or
 * CRC-failing batch, rebuild missing or corrupt index files, delete leftovers.
 * Then the recovered log is made durable (fdatasync of every segment and its
 * index files, fsync of the directory): what a killed process left in the
 * page cache is never acknowledged, uploaded or read before it is on disk.
 * @param dir  Borrowed; the partition directory (created if absent).
 * @return 0, or negative errno / ST_E_IO with a reason in errbuf.
 * @thread sh's loop (or a pool thread before the log is used)  @blocking yes: disk reads */
ST_MUST_CHECK int plog_open(plog_shard_t *sh,
                            const char *dir,
                            const plog_config_t *cfg,
                            int64_t now_ms,
                            plog_t **out,
                            char *errbuf,
                            size_t errbuf_len);

typedef void (*plog_closed_cb)(void *arg);
/** Flush, then close the log; cb fires on the loop once the final fdatasync
 * completed and every waiter was answered. Readers' slices stay valid. */
void plog_close(plog_t *log, plog_closed_cb cb, void *arg);

/** Change the config of an open log (takes effect on the next append/tick). */
void plog_set_config(plog_t *log, const plog_config_t *cfg);

typedef struct {
    int64_t base_offset;   /* offset of the first record appended */
    int64_t last_offset;   /* offset of the last record appended */
    int64_t end_offset;    /* log end offset after the append (last_offset + 1) */
    int64_t max_timestamp; /* largest maxTimestamp among the batches */
    int64_t log_start_offset;
} plog_append_info_t;

/** Append a record set after validating all of it: nothing is queued if any
 * batch is bad. Rewrites baseOffset and partitionLeaderEpoch inside the
 * caller's buffer (outside the CRC), copies it and queues the copy for the
 * flusher to write at the end of the active segment, rolling first by
 * segment.bytes / segment.ms. Offsets, index and end offset move at once;
 * readers see the bytes once written (plog_wait_written). A write that
 * fails later (ENOSPC, EIO) fails the log, as a failed fdatasync does:
 * waiters past what was written get ST_E_FAILED, appends are refused, and a
 * restart recovers what is on disk.
 * @param batches  Borrowed and modified in place for the call.
 * @return 0; ST_E_MALFORMED / ST_E_CORRUPT for bad input; ST_E_NOSPC (a new
 *         segment could not be created, the log stays usable); ST_E_FAILED
 *         after a write or fsync error; ST_E_NOMEM.
 * @thread owning loop  @blocking no (a copy; waits only while the env's write
 *         queue is over its cap, plog_env_set_write_cap) */
ST_MUST_CHECK int plog_append(plog_t *log,
                              uint8_t *batches,
                              size_t len,
                              int32_t leader_epoch,
                              int64_t now_ms,
                              plog_append_info_t *out,
                              const char **why);

typedef void (*plog_durable_cb)(void *arg, int status);
/* Caller-owned waiter, typically embedded in the request it acknowledges. */
typedef struct plog_waiter {
    struct plog_waiter *next;
    int64_t end_offset;
    plog_durable_cb cb;
    void *arg;
} plog_waiter_t;

/** Call cb(arg, 0) once every offset below end_offset is on stable storage, or
 * cb(arg, err) when the log failed before they were. Fires synchronously if
 * already durable (also on a failed log).
 * @param w  Borrowed until cb fires.   @thread owning loop */
void plog_wait_durable(
    plog_t *log, plog_waiter_t *w, int64_t end_offset, plog_durable_cb cb, void *arg);
/** acks=1: call cb(arg, 0) once every offset below end_offset is written
 * (in the page cache: survives a kill, not a power cut), or cb(arg, err)
 * when the log failed before they were. Fires synchronously if already
 * written (also on a failed log).  @thread owning loop */
void plog_wait_written(
    plog_t *log, plog_waiter_t *w, int64_t end_offset, plog_durable_cb cb, void *arg);
/** acks=all: plog_wait_durable, or with write caching plog_wait_written
 * (the data is in the page cache). @thread owning loop */
void plog_wait_acked(
    plog_t *log, plog_waiter_t *w, int64_t end_offset, plog_durable_cb cb, void *arg);

/* A read result: whole batches [pos, pos+len) of one segment file. Those bytes never
 * change while seg is held (sealed segments are immutable and replaced by rename, the
 * active one is only appended to; a deleted segment's file stays readable through fd), so
 * they may be read or sent (sendfile) later, on any thread. */
typedef struct {
    plog_seg_t *seg; /* owned ref: release with plog_slice_release */
    int fd;          /* borrowed: valid while seg is held */
    int64_t pos;
    int64_t len;
    int64_t first_offset; /* base offset of the first batch in the slice */
    int64_t next_offset;  /* offset after the last batch in the slice */
} plog_slice_t;

/** Find whole batches starting with the one holding offset, up to max_bytes
 * (the first batch is returned whole even if larger, as Kafka does), never
 * past the high watermark (plog_high_watermark).
 * Sequential readers continue from a cached position: no index search.
 * @return 0 (len 0 when offset >= high watermark), ST_E_RANGE when out of
 *         [log start, end], ST_E_IO.
 * @thread owning loop  @blocking small header reads (page cache) */
ST_MUST_CHECK int plog_read(plog_t *log, int64_t offset, int64_t max_bytes, plog_slice_t *out);
/** plog_read, also never past limit (a batch boundary: read_committed
 * fetches pass the last stable offset). */
ST_MUST_CHECK int
plog_read_upto(plog_t *log, int64_t offset, int64_t max_bytes, int64_t limit, plog_slice_t *out);
/** Read a slice's bytes into buf (len bytes). @blocking yes  @thread any */
ST_MUST_CHECK int plog_slice_pread(const plog_slice_t *s, void *buf);
/** Are all of the slice's pages in the page cache? (cachestat(2), or mincore(2) where the
 * kernel has no cachestat; false when neither answers.) Reading or sendfile'ing a cached
 * slice does not wait for the disk. @blocking no  @thread any */
bool plog_slice_cached(const plog_slice_t *s);
/** Read the slice through the page cache (into a small scratch buffer), so that a later
 * read or sendfile of it finds every page there; only its 256 KiB chunks with a page
 * missing are read. @blocking yes (the disk)  @thread any */
ST_MUST_CHECK int plog_slice_warm(const plog_slice_t *s);
void plog_slice_release(plog_slice_t *s);

/** Offset of the first record with timestamp >= ts (Kafka ListOffsets),
 * among the batches below the high watermark.
 * @return 0 with *offset and *timestamp (that record's), or ST_E_NOTFOUND. */
ST_MUST_CHECK int
plog_offset_for_time(plog_t *log, int64_t ts, int64_t *offset, int64_t *timestamp);

/** The largest timestamp in the log and the offset of the first record that
 * has it (ListOffsets MAX_TIMESTAMP, as Kafka since 3.8: the exact record, not
 * its batch). @return 0 or ST_E_NOTFOUND when empty. @blocking header reads */
ST_MUST_CHECK int plog_max_timestamp(plog_t *log, int64_t *timestamp, int64_t *offset);

/** Call fn(arg, header) for every batch header of the last n_segments
 * segments, and of every earlier segment whose file was last written at or
 * after since_ms (wall clock; -1: none), oldest first: e.g. to rebuild
 * producer state after a restart from every batch a producer may still
 * retry, however many segments rolled meanwhile.
 * fn returns non-zero to stop. @return 0 or an I/O error.
 * @thread owning loop  @blocking header reads (page cache) */
int plog_scan_tail(plog_t *log,
                   int n_segments,
                   int64_t since_ms,
                   int (*fn)(void *arg, const plog_batch_hdr_t *h),
                   void *arg);

/** Call fn(arg, header) for every batch header from the batch that holds
 * offset (or the first one after it) to the end of the log, oldest first:
 * e.g. to bring state saved at offset up to date. Batches before offset in
 * the same index interval are passed too (the caller skips them).
 * fn returns non-zero to stop. @return 0 or an I/O error.
 * @thread owning loop  @blocking header reads (page cache) */
int plog_scan_from(plog_t *log,
                   int64_t offset,
                   int (*fn)(void *arg, const plog_batch_hdr_t *h),
                   void *arg);

typedef void (*plog_done_cb)(void *arg, int status);
/** DeleteRecords: move the log start offset up to offset (<= high watermark),
 * delete the segments wholly below it, and persist the new start in
 * DIR/log-start-offset before cb(arg, status) fires on the loop. Offsets
 * below the start answer ST_E_RANGE from then on. Fires at once when offset
 * is not above the current start. @return 0, ST_E_RANGE. @thread owning loop */
ST_MUST_CHECK int plog_delete_records(plog_t *log, int64_t offset, plog_done_cb cb, void *arg);

/** Periodic work: roll an aged active segment (segment.ms), apply retention
 * (retention.ms / retention.bytes, whole segments only, never the active one).
 * @return number of segments deleted, or a negative error. @thread owning loop */
int plog_tick(plog_t *log, int64_t now_ms);

/** Roll now (seal the active segment, start a new one) if it holds data. */
ST_MUST_CHECK int plog_roll(plog_t *log, int64_t now_ms);

/* ---- Tiered storage ---- */

/** Every offset below end_offset is uploaded and indexed remotely: local
 * retention may now delete those segments. @thread owning loop */
void plog_set_uploaded(plog_t *log, int64_t end_offset);
int64_t plog_uploaded_offset(const plog_t *log);
/** Lower the log start offset to what remote storage still holds (after a
 * restart, from the remote index). Ignored unless remote storage is enabled
 * and offset is below the current start. */
void plog_set_remote_start(plog_t *log, int64_t offset);
/** First offset still on local disk (>= the log start offset). Reads below it
 * answer ST_E_OFFLOADED. */
int64_t plog_local_start_offset(const plog_t *log);

/* A sealed segment handed to the uploader. */
typedef struct {
    plog_seg_t *seg; /* owned ref: release with plog_seg_info_release */
    int fd;          /* borrowed: valid while seg is held */
    int64_t base_offset;
    int64_t next_offset; /* last offset + 1 */
    int64_t size;
    int64_t max_timestamp;
    const char *path; /* borrowed: DIR/<base>.log, valid while seg is held */
    /* Set by plog_archive_get() (plog_sealed_get: 0, true, first append): */
    int64_t pos;             /* file position of base_offset's batch */
    bool is_sealed;          /* false: a durable prefix-range of the active segment */
    int64_t first_append_ms; /* when the segment got its first record (-1: empty) */
} plog_seg_info_t;

/** The oldest sealed and durable segment holding offsets at or after
 * from_offset (the uploader never sees a segment before it was fdatasynced).
 * @return 0, or ST_E_NOTFOUND when every such offset is in the active one or
 *         not durable yet. */
ST_MUST_CHECK int plog_sealed_get(plog_t *log, int64_t from_offset, plog_seg_info_t *out);

/** The next durable data to archive after from_offset (a batch boundary, as
 * plog_uploaded_offset() is): the whole batches of one segment from the batch
 * holding from_offset up to the segment's end, bytes [pos, pos + size) of
 * its file. A sealed segment is returned only once all of it is durable;
 * with with_active, the active segment's batches below the durable end too.
 * @return 0, or ST_E_NOTFOUND when nothing durable is left to archive (or
 *         the oldest such sealed segment is not durable yet).
 * @thread owning loop  @blocking small header reads (page cache) */
ST_MUST_CHECK int
plog_archive_get(plog_t *log, int64_t from_offset, bool with_active, plog_seg_info_t *out);
void plog_seg_info_release(plog_seg_info_t *info);

/** Drop every local segment and continue the log empty at offset (the
 * archive holds more than the local log after a power cut: it wins, and new
 * records must not reuse its offsets). The log start, end, durable and
 * uploaded offsets all become offset (plog_set_remote_start() lowers the
 * start to the archive's). The new segment and the directory are synced
 * before it returns. Only while nothing waits on the log (at start, before
 * appends): @return 0, ST_E_INVAL (offset not above the end, or waiters),
 * or an I/O error. @thread owning loop @blocking yes: renames, create, fsync */
ST_MUST_CHECK int plog_reset(plog_t *log, int64_t offset);

/* ---- Compaction (core/plog_compact.c) ----
 * A cleaner per shard: a thread that rewrites the sealed segments of
 * compacted logs (cleanup.policy=compact) keeping the latest record of each
 * key (core/compact.h). The loop only plans a pass and swaps the rewritten
 * segments in; reading, hashing, writing, fdatasync and renames run on the
 * thread. A rewritten segment replaces the old one atomically:
 * DIR/<base>.{log,index,timeindex}.cleaned are written and synced, renamed to
 * .swap (the .log rename commits), then to their final names, the directory
 * synced after each step; plog_open finishes committed swaps and deletes the
 * rest, so a kill at any moment leaves the old segment or the new one.
 * Only segments that are sealed, durable, below the recovery point, older
 * than min.compaction.lag.ms and (with remote storage) uploaded are cleaned. */

typedef struct plog_cleaner plog_cleaner_t;

/* Per-log cleaner figures (metrics, `strata storage status`). */
typedef struct {
    bool is_compacted;       /* cleanup.policy has compact */
    int64_t runs;            /* passes finished */
    int64_t bytes_read;      /* segment bytes read by passes */
    int64_t bytes_written;   /* segment bytes written (rewritten segments) */
    int64_t records_removed; /* records dropped (older values, expired tombstones) */
    int64_t last_clean_ms;   /* wall clock of the last finished pass, -1: none */
    int64_t clean_end;       /* offsets below were cleaned, -1: none */
    double dirty_ratio;      /* of the cleanable part, at the last planning */
    bool is_failing;         /* the last pass failed: taken after every other log due */
} plog_compact_stats_t;

/** Start the cleaner thread of a shard.
 * @param buffer_bytes       log.cleaner.dedupe.buffer.size: the offset map's memory.
 * @param io_bytes_per_sec   log.cleaner.io.max.bytes.per.second (read + written).
 * @return 0, ST_E_NOMEM or a negative errno. @thread loop's thread */
ST_MUST_CHECK int plog_cleaner_new(uv_loop_t *loop,
                                   size_t buffer_bytes,
                                   int64_t io_bytes_per_sec,
                                   plog_cleaner_t **out);
/** Called on the loop when a pass ends (to offer the next log at once). */
void plog_cleaner_on_done(plog_cleaner_t *c, void (*fn)(void *arg), void *arg);
/** Plan a pass over log: when the cleaner is idle, the log compacted, and
 * its cleanable part dirty enough (min.cleanable.dirty.ratio) or a dirty
 * segment older than max.compaction.lag.ms, hand it to the thread; the
 * rewritten segments are swapped in on the loop when it is done.
 * @return 1 when a pass started, 0 when not, or a negative error.
 * @thread the loop of c and log */
int plog_cleaner_offer(plog_cleaner_t *c, plog_t *log, int64_t now_ms);
/** Plan a pass over the dirtiest of n_logs logs (as Kafka's LogCleanerManager
 * grabs the filthiest log): of those due now, the ones with a dirty record
 * older than max.compaction.lag.ms first, then the highest dirty ratio; ties
 * go to the earlier in logs. A log whose last pass failed goes after every
 * other (Kafka sets it aside as uncleanable; here it is retried when no other
 * log is due), so it cannot starve them. Every compacted log's dirty ratio
 * figure is refreshed. @param picked  Out: the index of the log whose pass started.
 * @return 1 when a pass started, 0 when none is due (or the cleaner is busy),
 * or a negative error. @thread the loop of c and the logs */
int plog_cleaner_offer_dirtiest(
    plog_cleaner_t *c, plog_t *const *logs, int n_logs, int64_t now_ms, int *picked);
bool plog_cleaner_is_busy(const plog_cleaner_t *c);
/** Ask a running pass to stop at its next batch (shutdown); what it already
 * swapped stays. */
void plog_cleaner_cancel(plog_cleaner_t *c);
/** Stop the thread (after the running pass ended: every log closed) and
 * free c once its handle closed. @thread loop's thread */
void plog_cleaner_free(plog_cleaner_t *c);

/** The cleaner figures of log. @thread owning loop */
void plog_compact_stats(const plog_t *log, plog_compact_stats_t *out);

int64_t plog_start_offset(const plog_t *log);
int64_t plog_end_offset(const plog_t *log);
int64_t plog_durable_offset(const plog_t *log);
/** 0, or why the log refuses appends until a restart (a sync failed: ST_E_FAILED;
 * a half-done rename found at open: ST_E_IO). @thread owning loop */
int plog_failed(const plog_t *log);
/** What consumers may see (Fetch, ListOffsets LATEST): the durable end, or
 * with write caching the written end (what the flusher wrote, not what was
 * appended). Never below the log start offset. */
int64_t plog_high_watermark(const plog_t *log);
/** Bytes written but not yet fdatasynced (a metric). */
int64_t plog_unflushed_bytes(const plog_t *log);
int64_t plog_size_bytes(const plog_t *log);
int plog_segment_count(const plog_t *log);
/** Base offset of segment i (0 = oldest). */
int64_t plog_segment_base(const plog_t *log, int i);
const char *plog_dir(const plog_t *log);

/** Parse a partition directory name "<topic>-<partition>".
 * @param topic  Out buffer for the topic name.  @return 0 or ST_E_INVAL. */
ST_MUST_CHECK int
plog_parse_dir_name(const char *name, char *topic, size_t topic_len, int32_t *partition);

#endif
