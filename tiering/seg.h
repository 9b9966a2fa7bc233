/* seg.h - the remote object format: one sealed Kafka segment as one object in
 * the zstd seekable format.
 *
 * Data path: tier_uploader reads a sealed segment and feeds it to a
 * tier_seg_writer (here) on the libuv thread pool -> the writer emits
 * independent zstd frames of ~1 MiB of whole record batches plus a trailing
 * seek table -> the object is PUT -> the chunk metadata it returned is
 * committed to index/ (idx_segment_add). Hydration later looks a chunk up in
 * the index, fetches [obj_pos, obj_pos + obj_len) with one ranged GET and
 * turns it back into the exact batch bytes with tier_seg_chunk_decode().
 *
 * Object layout (zstd contrib/seekable_format, little-endian integers):
 *
 *   frame 0 | frame 1 | ... | frame n-1 | seek table
 *
 *   frame i     a regular zstd frame with content size and content checksum,
 *               holding whole batches, back to back, exactly as on disk.
 *   seek table  a skippable frame:
 *                 u32 0x184D2A5E (skippable magic)   u32 frame_size (= rest)
 *                 n entries { u32 compressed_size, u32 decompressed_size,
 *                             u32 checksum (low 32 bits of XXH64 of the
 *                             decompressed frame = the frame's own zstd
 *                             content checksum) }
 *                 footer { u32 n_frames, u8 descriptor (bit 7: checksums
 *                          present; bits 2-6 reserved, zero),
 *                          u32 0x8F92EAB1 (seekable magic) }
 *
 * `zstd -dc object > file.log` therefore yields the original segment byte for
 * byte (plain zstd skips the skippable frames). The seek table has no
 * offsets: the writer returns them per chunk (tier_seg_chunk_t) for the
 * index, and also writes them into the object as a Strata chunk table, a
 * second skippable frame just before the seek table (the seek table's
 * entries cover the data frames only; seekable readers locate frames by
 * those sizes and never look between the last frame and the table):
 *
 *   chunk table  u32 0x184D2A5D (skippable magic, variant D)   u32 frame_size
 *                u32 tag "STCT"   u32 version (1)   u32 n_chunks (= n_frames)
 *                u32 data_crc32c (CRC-32C of the object bytes before this frame)
 *                n entries { i64 first_offset, i64 last_offset, i64 first_ts,
 *                            i64 max_ts, u32 crc32c (compressed frame),
 *                            u32 n_batches }
 *                u32 CRC-32C of the frame after its 8-byte header, this excluded
 *
 * and, only when the object holds abort markers, a Strata transaction table
 * just before the chunk table (Kafka's .txnindex of the object's range:
 * read_committed readers skip the aborted batches it names):
 *
 *   txn table    u32 0x184D2A5C (skippable magic, variant C)   u32 frame_size
 *                u32 tag "STTX"   u32 version (1)   u32 n_aborted
 *                n entries { i64 producer_id, i64 first_offset (the aborted
 *                            transaction's first batch on this partition,
 *                            possibly in an earlier object), i64 last_offset
 *                            (its ABORT marker, in this object) }, in
 *                            marker order
 *                u32 CRC-32C of the frame after its 8-byte header, this excluded
 *
 * Its size is what lies between the data frames and the chunk table, so the
 * tail still describes the object; objects without it (older ones, or no
 * aborts) have no aborted transactions. The chunk table's data_crc32c covers
 * it (it covers every byte before the chunk table).
 *
 * So recovery from a bucket rebuilds an object's index rows from its tail
 * alone (tier_seg_tail_describe: one or two ranged GETs, not the object);
 * objects without it are described by decoding every frame
 * (tier_seg_object_describe).
 *
 * Threads: every function here is CPU-only and reentrant on distinct objects;
 * compression of a segment and decoding of a frame are heavy (milliseconds
 * per MiB), so callers on a shard loop run them through uv_queue_work().
 */
#ifndef TIER_SEG_H
#define TIER_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/st_err.h"

#define TIER_SEG_SKIPPABLE_MAGIC 0x184D2A5Eu
#define TIER_SEG_SEEKABLE_MAGIC  0x8F92EAB1u
#define TIER_SEG_FOOTER_SIZE     9u /* n_frames + descriptor + seekable magic */
#define TIER_SEG_SKIP_HDR_SIZE   8u /* skippable magic + frame size */
#define TIER_SEG_DESC_CHECKSUM   0x80u
#define TIER_SEG_DESC_RESERVED   0x7Cu
/* Limits of the published format (contrib/seekable_format/zstd_seekable.h). */
#define TIER_SEG_MAX_FRAMES    0x8000000u
#define TIER_SEG_MAX_FRAME_RAW 0x40000000u /* 1 GiB: also the largest batch we accept */
#define TIER_SEG_FRAME_TARGET  (1u << 20)  /* default raw bytes per frame */

/* ---- Chunk metadata (what the index stores) ---- */

/* One chunk = one zstd frame = whole batches [first_offset, last_offset]. */
typedef struct {
    int64_t first_offset; /* baseOffset of the chunk's first batch */
    int64_t last_offset;  /* baseOffset + lastOffsetDelta of its last batch */
    int64_t first_ts;     /* baseTimestamp of the first batch */
    int64_t max_ts;       /* largest maxTimestamp among its batches */
    uint64_t obj_pos;     /* byte position of the frame in the object */
    uint32_t obj_len;     /* compressed frame length */
    uint32_t raw_len;     /* decompressed length (sum of its batch lengths) */
    uint32_t crc32c;      /* CRC-32C of the compressed frame bytes */
    uint32_t n_batches;   /* batches in the chunk */
} tier_seg_chunk_t;

/* An aborted transaction whose ABORT marker lies in the object (one entry of
 * the txn table, Kafka's AbortedTxn). */
typedef struct tier_seg_aborted_s {
    int64_t pid;          /* producer id */
    int64_t first_offset; /* its first batch on the partition (may precede the object) */
    int64_t last_offset;  /* offset of its ABORT control batch */
} tier_seg_aborted_t;

/** The entries of v (n, in marker order) that a read_committed fetch of
 * [from, to) needs: marker at or after from, first offset below to (Kafka's
 * collectAbortedTxns).
 * @param out  Out: malloc'd (NULL when none), owned by the caller.
 * @return 0 or ST_E_NOMEM.  @thread any  @blocking no */
ST_MUST_CHECK int tier_seg_aborted_range(const tier_seg_aborted_t *v,
                                         size_t n,
                                         int64_t from,
                                         int64_t to,
                                         tier_seg_aborted_t **out,
                                         size_t *n_out);

/* What the writer produced for one segment. */
typedef struct {
    tier_seg_chunk_t *chunks; /* owned: n_chunks entries in offset order */
    size_t n_chunks;
    tier_seg_aborted_t *aborted; /* owned: n_aborted entries in marker order (txn table) */
    size_t n_aborted;
    int64_t base_offset; /* first offset of the segment, -1 when empty */
    int64_t last_offset; /* last offset of the segment, -1 when empty */
    int64_t base_ts;     /* baseTimestamp of the first batch, -1 when empty */
    int64_t max_ts;      /* largest maxTimestamp, -1 when empty */
    uint64_t raw_size;   /* segment bytes fed in */
    uint64_t obj_size;   /* object bytes emitted, seek table included */
    uint32_t obj_crc32c; /* CRC-32C of the whole object */
} tier_seg_info_t;

/** Release info->chunks and info->aborted; info may be zeroed or NULL. @thread any */
void tier_seg_info_fini(tier_seg_info_t *info);

/* ---- Writer ---- */

/** Where the writer puts object bytes, in order. Return 0 or a negative
 * st_err, which aborts the write and is returned by the writer call. */
typedef int (*tier_seg_sink_fn)(void *arg, const void *data, size_t len);

typedef struct {
    /* Raw bytes per frame: a frame is closed before the batch that would take
     * it past this; a larger batch gets a frame of its own. 0 = 1 MiB. */
    size_t frame_target_bytes;
    /* zstd level; 0 = 3. */
    int level;
    /* Skip the CRC-32C check of every batch (the caller validated them). */
    bool is_crc_trusted;
    /* Aborted transactions the caller knows (borrowed for the writer's life):
     * an ABORT marker of the segment takes its first_offset from the entry
     * with the same pid and last_offset; without one, from the producer's
     * first transactional batch since its previous marker in the segment,
     * else the segment's first offset (the transaction began in an earlier
     * object that the caller did not describe). */
    const tier_seg_aborted_t *known_aborted;
    size_t n_known_aborted;
} tier_seg_opts_t;

typedef struct tier_seg_writer tier_seg_writer_t;

/** Start an object.
 * @param opts  Borrowed for the call; NULL = defaults.
 * @param sink  Called with the object bytes as frames complete; sink_arg is
 *              borrowed until tier_seg_writer_free().
 * @return 0, ST_E_NOMEM, ST_E_INVAL (bad option).  @thread any  @blocking no */
ST_MUST_CHECK int tier_seg_writer_new(const tier_seg_opts_t *opts,
                                      tier_seg_sink_fn sink,
                                      void *sink_arg,
                                      tier_seg_writer_t **out);

/** Feed the next len bytes of the segment: any split of the byte stream works
 * (whole batches, or a file read in pieces). The writer buffers at most one
 * frame plus one batch. Each batch is checked (magic 2, batchLength, offsets
 * increasing, CRC-32C unless trusted).
 * @param data  Borrowed for the call (copied).
 * @return 0; ST_E_MALFORMED / ST_E_CORRUPT for a bad batch; ST_E_TOO_LARGE for
 *         a batch over TIER_SEG_MAX_FRAME_RAW; ST_E_NOMEM; a sink error. After
 *         an error the writer only accepts tier_seg_writer_free().
 * @thread any (thread pool)  @blocking CPU: compresses each completed frame */
ST_MUST_CHECK int tier_seg_writer_write(tier_seg_writer_t *w, const void *data, size_t len);

/** Compress the last frame and append the seek table.
 * @param info  Out: the segment summary and chunks; the caller owns it
 *              (tier_seg_info_fini) on success, untouched on error.
 * @return 0; ST_E_MALFORMED when the stream ends inside a batch; as above.
 * @thread any (thread pool)  @blocking CPU */
ST_MUST_CHECK int tier_seg_writer_finish(tier_seg_writer_t *w, tier_seg_info_t *info);

/** Free a writer (finished or not). NULL is a no-op. */
void tier_seg_writer_free(tier_seg_writer_t *w);

/** Convenience: encode bytes [pos, pos + len) of the segment file fd, read with
 * pread in pieces of 256 KiB, into sink.
 * @return as tier_seg_writer_*, or negative errno / ST_E_IO (short file).
 * @thread thread pool  @blocking yes: file reads and compression */
ST_MUST_CHECK int tier_seg_write_fd(int fd,
                                    off_t pos,
                                    off_t len,
                                    const tier_seg_opts_t *opts,
                                    tier_seg_sink_fn sink,
                                    void *sink_arg,
                                    tier_seg_info_t *info);

/* ---- Reader: seek table ---- */

/* One frame as the seek table describes it. */
typedef struct {
    uint64_t obj_pos; /* position in the object (sum of preceding sizes) */
    uint64_t raw_pos; /* position in the decompressed segment */
    uint32_t obj_len; /* compressed size */
    uint32_t raw_len; /* decompressed size */
    uint32_t xxh32;   /* low 32 bits of XXH64(decompressed), 0 without checksums */
} tier_seg_frame_t;

typedef struct {
    tier_seg_frame_t *frames; /* owned: n_frames entries */
    uint32_t n_frames;
    bool has_checksums;
    uint64_t table_size; /* bytes of the seek table frame, header included */
    uint64_t ct_size;    /* bytes of the chunk table frame before it, 0 = none */
    uint64_t tx_size;    /* bytes of the txn table frame before that, 0 = none */
    uint64_t data_size;  /* bytes of all frames = object size - ct_size - table_size */
    uint64_t raw_size;   /* decompressed size of the whole segment */
} tier_seg_table_t;

/** Size of the whole seek table frame, read from the footer in the last
 * TIER_SEG_FOOTER_SIZE bytes of the object; tells a reader how large a
 * tail range to fetch.
 * @param tail  Borrowed: the last tail_len bytes of the object (untrusted).
 * @return 0 with *table_size, ST_E_MALFORMED (no seekable footer, reserved
 *         bits set, too many frames).  @thread any  @blocking no */
ST_MUST_CHECK int tier_seg_table_size(const uint8_t *tail, size_t tail_len, uint64_t *table_size);

/** Parse and check the seek table at the end of an object of obj_size bytes.
 * Checks: footer, skippable header and its frame size, entry sizes (each
 * compressed size > 0, each raw size <= TIER_SEG_MAX_FRAME_RAW), and that the
 * frames exactly fill the object before the table, or before a chunk table
 * of the size n frames need, or before such a chunk table and a txn table of
 * some TIER_SEG_TX_SIZE (their bytes are checked by tier_seg_tail_describe).
 * @param tail   Borrowed: the last tail_len bytes of the object (untrusted);
 *               must cover the whole table (else ST_E_AGAIN with
 *               out->table_size set so the caller can fetch more).
 * @param out    Out: owned by the caller on success (tier_seg_table_fini).
 * @return 0, ST_E_MALFORMED, ST_E_AGAIN, ST_E_NOMEM.  @thread any */
ST_MUST_CHECK int tier_seg_table_parse(const uint8_t *tail,
                                       size_t tail_len,
                                       uint64_t obj_size,
                                       tier_seg_table_t *out);

/** Release a parsed table; t may be zeroed or NULL. */
void tier_seg_table_fini(tier_seg_table_t *t);

#define TIER_SEG_CT_MAGIC 0x184D2A5Du
#define TIER_SEG_CT_TAG   0x54435453u /* "STCT" little-endian */
#define TIER_SEG_CT_ENTRY 40u
#define TIER_SEG_TX_MAGIC 0x184D2A5Cu
#define TIER_SEG_TX_TAG   0x58545453u /* "STTX" little-endian */
#define TIER_SEG_TX_ENTRY 24u
/** Bytes of the txn table frame with n aborted transactions. */
#define TIER_SEG_TX_SIZE(n) (TIER_SEG_SKIP_HDR_SIZE + 12u + (uint64_t)(n)*TIER_SEG_TX_ENTRY + 4u)
/** Bytes of the chunk table frame of an object with n chunks. */
#define TIER_SEG_CT_SIZE(n) (TIER_SEG_SKIP_HDR_SIZE + 16u + (uint64_t)(n)*TIER_SEG_CT_ENTRY + 4u)

/** Describe an object from its tail: seek table + chunk table (+ txn table), all checked
 * (magics, sizes, the chunk table's own CRC-32C, entries in offset order and
 * agreeing with the seek table), into info exactly as the writer returned it
 * (obj_crc32c included: the table carries the CRC of the bytes before it).
 * @param tail      Borrowed: the last tail_len bytes of the object (untrusted).
 * @param obj_size  Size of the whole object.
 * @param need      Out on ST_E_AGAIN: how many tail bytes are needed.
 * @param info      Out: owned by the caller on success (tier_seg_info_fini).
 * @return 0; ST_E_AGAIN (tail too short, see *need); ST_E_NOTFOUND (the
 *         object has no chunk table: decode it whole); ST_E_MALFORMED,
 *         ST_E_CORRUPT, ST_E_NOMEM.  @thread any  @blocking no */
ST_MUST_CHECK int tier_seg_tail_describe(
    const uint8_t *tail, size_t tail_len, uint64_t obj_size, uint64_t *need, tier_seg_info_t *info);

/* ---- Reader: chunks ---- */

/** Index of the chunk holding offset (binary search over chunks sorted by
 * offset, as the writer returns them).
 * @return the index, or ST_E_RANGE when no chunk holds it (a gap between
 *         chunks, e.g. compacted or aborted offsets, returns the next chunk).
 * @thread any  @blocking no */
ST_MUST_CHECK int tier_seg_chunk_find(const tier_seg_chunk_t *chunks, size_t n, int64_t offset);

/** Decode one frame back to its batch bytes.
 * Checks, in order: frame length, CRC-32C of the compressed bytes, that it is
 * exactly one zstd frame whose content size equals raw_len and is <= max_raw,
 * zstd's own content checksum, the decoded length, and that the decoded
 * batches span exactly [first_offset, last_offset] in n_batches batches.
 * @param frame       Borrowed: obj_len bytes fetched from the object (untrusted).
 * @param chunk       Borrowed: its metadata (from the index): obj_len,
 *                    raw_len, crc32c and the offsets are checked, and
 *                    n_batches when it is not 0.
 * @param max_raw     Hard cap on the output size (e.g. fetch buffer budget).
 * @param out         Out: malloc'd raw bytes, caller frees; *out_len = raw_len.
 * @return 0; ST_E_CORRUPT (checksum or content mismatch); ST_E_MALFORMED (not
 *         one zstd frame, batches do not match the chunk's offsets);
 *         ST_E_TOO_LARGE (over max_raw); ST_E_NOMEM.
 * @thread any (thread pool for big frames)  @blocking CPU */
ST_MUST_CHECK int tier_seg_chunk_decode(const uint8_t *frame,
                                        size_t frame_len,
                                        const tier_seg_chunk_t *chunk,
                                        size_t max_raw,
                                        uint8_t **out,
                                        size_t *out_len);

/** Decode one frame described only by the seek table (recovery: no index).
 * @param frame   Borrowed: f->obj_len bytes (untrusted).
 * @return as tier_seg_chunk_decode; the xxh32 entry is checked against the
 *         frame's zstd content checksum when the table has checksums. */
ST_MUST_CHECK int tier_seg_frame_decode(const uint8_t *frame,
                                        size_t frame_len,
                                        const tier_seg_frame_t *f,
                                        bool has_checksums,
                                        size_t max_raw,
                                        uint8_t **out,
                                        size_t *out_len);

/** Fill chunk->first/last_offset, first/max_ts, n_batches and raw_len from
 * decoded batch bytes (untrusted: headers are bounds-checked; CRCs are not
 * checked here). obj_pos, obj_len and crc32c are left to the caller.
 * @return 0, ST_E_MALFORMED (empty, torn batch, offsets not increasing). */
ST_MUST_CHECK int
tier_seg_chunk_describe(const uint8_t *raw, size_t raw_len, tier_seg_chunk_t *chunk);

/* ---- Reader: whole objects ---- */

/** Called by tier_seg_object_describe() for each frame, in order, with its
 * described chunk and decoded batch bytes (both borrowed for the call).
 * @return 0 to go on, or a negative st_err that stops the walk and is returned. */
typedef int (*tier_seg_frame_fn)(
    void *arg, uint32_t index, const tier_seg_chunk_t *chunk, const uint8_t *raw, size_t raw_len);

/** Describe a whole object (recovery from a bucket, `strata archive verify`):
 * parse its seek table, decode every frame (zstd content checksums against the
 * table), describe its batches, and check that chunks follow in offset order.
 * @param obj   Borrowed: the whole object (untrusted).
 * @param fn    Optional (NULL): sees every frame's batches, e.g. to check CRCs.
 * @param info  Out: always initialised; the caller releases it with
 *              tier_seg_info_fini() whatever the result. On error,
 *              info->n_chunks is the index of the frame that failed.
 * @return 0, ST_E_MALFORMED, ST_E_CORRUPT, ST_E_NOMEM, or fn's error.
 * @thread any (thread pool)  @blocking CPU */
ST_MUST_CHECK int tier_seg_object_describe(
    const uint8_t *obj, size_t obj_len, tier_seg_frame_fn fn, void *arg, tier_seg_info_t *info);

#endif
