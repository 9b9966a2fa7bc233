/* compact.h - the record-level half of log compaction: the offset map of key
 * hashes and the rewrite of one record batch, keeping the latest record of
 * each key.
 * Data path: the shard's cleaner thread (core/plog_compact.c) reads the dirty
 * part of a compacted log and records, for every key, the offset of its
 * latest record (compact_map_add_batch); it then rewrites every sealed
 * segment up to where the map is complete, batch by batch
 * (compact_filter_batch), into a new file that replaces the old one.
 * Nothing here touches files or the event loop: pure functions over bytes,
 * so they are tested against a model (tests/unit/compact_test.c).
 * Invariants: 1. offsets never change: a kept record keeps its offset delta,
 *                a rewritten batch keeps its base offset, lastOffsetDelta,
 *                producer id/epoch, base sequence, timestamps and codec;
 *             2. a record is dropped only when the map holds a later offset
 *                for its key (hash), it has no key, or it is a tombstone
 *                older than the tombstone horizon;
 *             3. control batches and transactional batches are copied
 *                whole, and their keys never enter the map (an aborted
 *                record must not hide a committed one). */
#ifndef COMPACT_H
#define COMPACT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/plog.h"

/* Bytes of one map entry: a 16-byte key hash (truncated SHA-256) and an offset. */
#define COMPACT_MAP_ENTRY_BYTES 24
/* Largest decompressed batch the cleaner reads (as the produce path). */
#define COMPACT_MAX_RAW (64u << 20)

typedef struct compact_map compact_map_t;

/** A map that fits in memory_bytes (at least 16 entries), filled to 90% at
 * most (Kafka's log.cleaner.io.buffer.load.factor).
 * @return 0 or ST_E_NOMEM. @thread any */
ST_MUST_CHECK int compact_map_new(size_t memory_bytes, compact_map_t **out);
void compact_map_free(compact_map_t *m);
/** Forget every key (the map is reused pass after pass). */
void compact_map_clear(compact_map_t *m);
/** Distinct keys held / the most it takes. */
size_t compact_map_size(const compact_map_t *m);
size_t compact_map_limit(const compact_map_t *m);
/** Record key -> offset (offsets must come in increasing order).
 * @return 0, or ST_E_AGAIN when the key is new and the map is full. */
ST_MUST_CHECK int
compact_map_put(compact_map_t *m, const uint8_t *key, size_t key_len, int64_t offset);
/** The latest offset recorded for key, or -1. */
int64_t compact_map_get(const compact_map_t *m, const uint8_t *key, size_t key_len);

/** Add every keyed record of one stored batch (len bytes, its CRC already
 * checked) to the map. Control and transactional batches add nothing.
 * All or nothing: when the map may not hold all of the batch's records as
 * new keys, nothing is added and ST_E_AGAIN is returned (the pass then ends
 * before this batch).
 * @return 0, ST_E_AGAIN, or a decoding error (ST_E_MALFORMED, ...).
 * @thread any  @blocking CPU (decompression, hashing) */
ST_MUST_CHECK int compact_map_add_batch(compact_map_t *m, const uint8_t *p, size_t len);

/* What one rewrite keeps. */
typedef struct {
    const compact_map_t *map;     /* borrowed: complete for offsets below map_end */
    int64_t map_end;              /* records at or after it are kept as they are */
    int64_t tombstone_horizon_ms; /* tombstones in batches whose maxTimestamp is below go */
    bool keep_empty; /* a batch left with no record stays as an empty batch (header only):
                        the last batch of a segment, so the segment keeps its end offset */
} compact_rules_t;

/* A growable output buffer (owned p). */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} compact_buf_t;

/* Counts of one rewrite, added to by compact_filter_batch. */
typedef struct {
    int64_t records_read;
    int64_t records_kept;
    int64_t tombstones_dropped;
    int64_t batches_rewritten; /* batches whose bytes changed */
} compact_stats_t;

/** Append to out what survives of the stored batch p (len bytes, its CRC
 * already checked): the batch unchanged when every record stays, nothing
 * when none stays (unless rules->keep_empty), else a rewritten batch with the
 * kept records, re-compressed with its codec and a new CRC-32C.
 * @return 0, or ST_E_NOMEM / a decoding error (nothing appended).
 * @thread any  @blocking CPU */
ST_MUST_CHECK int compact_filter_batch(const uint8_t *p,
                                       size_t len,
                                       const compact_rules_t *rules,
                                       compact_buf_t *out,
                                       compact_stats_t *stats);

/* log.cleaner.io.max.bytes.per.second: the I/O budget of one cleaner pass
 * (the local cleaner's and the archive cleaner's). */
typedef struct {
    int64_t bytes_per_sec; /* INT64_MAX: unthrottled */
    uint64_t t0_ns;        /* CLOCK_MONOTONIC at compact_throttle_start */
    int64_t bytes;         /* counted since */
} compact_throttle_t;

/** Start a pass's budget: bytes_per_sec <= 0 means unthrottled. */
void compact_throttle_start(compact_throttle_t *t, int64_t bytes_per_sec);
/** Count bytes read or written and sleep while ahead of the rate (100 ms at
 * a time, until *cancel is set). @thread the cleaner's  @blocking sleeps */
void compact_throttle(compact_throttle_t *t, int64_t bytes, const _Atomic bool *cancel);

void compact_buf_free(compact_buf_t *b);
/** Append n bytes of p to b (grown as needed). @return 0 or ST_E_NOMEM. */
ST_MUST_CHECK int compact_buf_add(compact_buf_t *b, const void *p, size_t n);

#endif
