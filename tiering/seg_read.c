/* seg_read.c - read the remote object format: seek table, chunk lookup, frame
 * decoding.
 * Data path: hydration fetches an object's tail (recovery) or a chunk's byte
 * range (fetch below the local log start) -> here the bytes, which are
 * untrusted, are bounds-checked, checksummed and inflated under a hard output
 * cap back to the exact record batches the segment held.
 * Invariants: 1. nothing is allocated from a count in the input before the
 *                bytes that count describes are known to be present;
 *             2. every error is a return code, never an assert: the input comes
 *                from the object store. */
#include "tiering/seg.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "core/plog.h"
#include "core/st_crc32c.h"

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t get_le64(const uint8_t *p)
{
    return (int64_t)((uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32);
}

/* ---- Seek table ---- */

int tier_seg_table_size(const uint8_t *tail, size_t tail_len, uint64_t *table_size)
{
    if (tail_len < TIER_SEG_FOOTER_SIZE)
        return ST_E_MALFORMED;
    const uint8_t *f = tail + tail_len - TIER_SEG_FOOTER_SIZE;
    if (get_le32(f + 5) != TIER_SEG_SEEKABLE_MAGIC || (f[4] & TIER_SEG_DESC_RESERVED) != 0)
        return ST_E_MALFORMED;
    uint32_t n = get_le32(f);
    if (n > TIER_SEG_MAX_FRAMES)
        return ST_E_MALFORMED;
    uint64_t entry = (f[4] & TIER_SEG_DESC_CHECKSUM) ? 12 : 8;
    *table_size = TIER_SEG_SKIP_HDR_SIZE + (uint64_t)n * entry + TIER_SEG_FOOTER_SIZE;
    return 0;
}

void tier_seg_table_fini(tier_seg_table_t *t)
{
    if (!t)
        return;
    free(t->frames);
    t->frames = NULL;
    t->n_frames = 0;
}

int tier_seg_table_parse(const uint8_t *tail,
                         size_t tail_len,
                         uint64_t obj_size,
                         tier_seg_table_t *out)
{
    memset(out, 0, sizeof *out);
    uint64_t tsize;
    if (tail_len > obj_size)
        return ST_E_INVAL;
    int rc = tier_seg_table_size(tail, tail_len, &tsize);
    if (rc != 0)
        return rc;
    if (tsize > obj_size)
        return ST_E_MALFORMED;
    out->table_size = tsize;
    if (tsize > tail_len)
        return ST_E_AGAIN;
    const uint8_t *t = tail + tail_len - tsize;
    if (get_le32(t) != TIER_SEG_SKIPPABLE_MAGIC ||
        get_le32(t + 4) != tsize - TIER_SEG_SKIP_HDR_SIZE)
        return ST_E_MALFORMED;
    const uint8_t *f = tail + tail_len - TIER_SEG_FOOTER_SIZE;
    uint32_t n = get_le32(f);
    bool has_ck = (f[4] & TIER_SEG_DESC_CHECKSUM) != 0;
    size_t entry = has_ck ? 12 : 8;
    tier_seg_frame_t *fr = NULL;
    if (n > 0 && !(fr = calloc(n, sizeof *fr)))
        return ST_E_NOMEM; /* n * entry <= tail_len bounds this allocation */
    uint64_t pos = 0, raw = 0;
    const uint8_t *e = t + TIER_SEG_SKIP_HDR_SIZE;
    for (uint32_t i = 0; i < n; i++, e += entry) {
        fr[i].obj_pos = pos;
        fr[i].raw_pos = raw;
        fr[i].obj_len = get_le32(e);
        fr[i].raw_len = get_le32(e + 4);
        fr[i].xxh32 = has_ck ? get_le32(e + 8) : 0;
        if (fr[i].obj_len == 0 || fr[i].raw_len > TIER_SEG_MAX_FRAME_RAW) {
            free(fr);
            return ST_E_MALFORMED;
        }
        pos += fr[i].obj_len; /* < 2^32 * 2^27: no overflow */
        raw += fr[i].raw_len;
    }
    /* The frames fill the object up to the seek table, or up to a chunk
     * table of the size n entries need, or up to a txn table before it. */
    uint64_t gap = pos <= obj_size - tsize ? obj_size - tsize - pos : UINT64_MAX;
    if (gap != 0 && (gap == UINT64_MAX || gap < TIER_SEG_CT_SIZE(n) ||
                     (gap != TIER_SEG_CT_SIZE(n) &&
                      (gap < TIER_SEG_CT_SIZE(n) + TIER_SEG_TX_SIZE(1) ||
                       (gap - TIER_SEG_CT_SIZE(n) - TIER_SEG_TX_SIZE(0)) % TIER_SEG_TX_ENTRY)))) {
        free(fr);
        return ST_E_MALFORMED;
    }
    out->ct_size = gap ? TIER_SEG_CT_SIZE(n) : 0;
    out->tx_size = gap ? gap - out->ct_size : 0;
    out->frames = fr;
    out->n_frames = n;
    out->has_checksums = has_ck;
    out->data_size = pos;
    out->raw_size = raw;
    return 0;
}

/* ---- Chunk table ---- */

/* Count chunk c (the next one, in offset order) into info's summary. */
static void info_add_chunk(tier_seg_info_t *info, const tier_seg_chunk_t *c)
{
    if (info->n_chunks == 0) {
        info->base_offset = c->first_offset;
        info->base_ts = c->first_ts;
        info->max_ts = c->max_ts;
    }
    info->last_offset = c->last_offset;
    if (c->max_ts > info->max_ts)
        info->max_ts = c->max_ts;
    info->raw_size += c->raw_len;
    info->n_chunks++;
}

/* Check the chunk table ct (t->ct_size bytes, untrusted) against the seek
 * table t and fill info's chunks and summary from both. */
static int parse_chunk_table(const uint8_t *ct, const tier_seg_table_t *t, tier_seg_info_t *info)
{
    uint64_t size = t->ct_size;
    uint32_t n = t->n_frames;
    if (n == 0 || size != TIER_SEG_CT_SIZE(n) || get_le32(ct) != TIER_SEG_CT_MAGIC ||
        get_le32(ct + 4) != size - TIER_SEG_SKIP_HDR_SIZE)
        return ST_E_MALFORMED;
    const uint8_t *p = ct + TIER_SEG_SKIP_HDR_SIZE;
    if (get_le32(p) != TIER_SEG_CT_TAG || get_le32(p + 4) != 1 || get_le32(p + 8) != n)
        return ST_E_MALFORMED;
    if (st_crc32c(0, p, size - TIER_SEG_SKIP_HDR_SIZE - 4) != get_le32(ct + size - 4))
        return ST_E_CORRUPT;
    info->chunks = calloc(n, sizeof(*info->chunks));
    if (!info->chunks)
        return ST_E_NOMEM;
    info->obj_crc32c = get_le32(p + 12); /* of the data frames: extended by the caller */
    const uint8_t *e = p + 16;
    for (uint32_t i = 0; i < n; i++, e += TIER_SEG_CT_ENTRY) {
        tier_seg_chunk_t *c = &info->chunks[i];
        c->first_offset = get_le64(e);
        c->last_offset = get_le64(e + 8);
        c->first_ts = get_le64(e + 16);
        c->max_ts = get_le64(e + 24);
        c->crc32c = get_le32(e + 32);
        c->n_batches = get_le32(e + 36);
        c->obj_pos = t->frames[i].obj_pos;
        c->obj_len = t->frames[i].obj_len;
        c->raw_len = t->frames[i].raw_len;
        if (c->first_offset < 0 || c->last_offset < c->first_offset || c->n_batches == 0 ||
            c->raw_len == 0 || (i > 0 && c->first_offset <= info->chunks[i - 1].last_offset))
            return ST_E_MALFORMED;
        info_add_chunk(info, c);
    }
    return 0;
}

/* Check the txn table tx (t->tx_size bytes, untrusted) and fill info's
 * aborted transactions from it. */
static int parse_txn_table(const uint8_t *tx, const tier_seg_table_t *t, tier_seg_info_t *info)
{
    uint64_t size = t->tx_size;
    if (size < TIER_SEG_TX_SIZE(1) || get_le32(tx) != TIER_SEG_TX_MAGIC ||
        get_le32(tx + 4) != size - TIER_SEG_SKIP_HDR_SIZE)
        return ST_E_MALFORMED;
    const uint8_t *p = tx + TIER_SEG_SKIP_HDR_SIZE;
    uint32_t n = get_le32(p + 8);
    if (get_le32(p) != TIER_SEG_TX_TAG || get_le32(p + 4) != 1 || n == 0 ||
        size != TIER_SEG_TX_SIZE(n))
        return ST_E_MALFORMED;
    if (st_crc32c(0, p, size - TIER_SEG_SKIP_HDR_SIZE - 4) != get_le32(tx + size - 4))
        return ST_E_CORRUPT;
    info->aborted = calloc(n, sizeof(*info->aborted));
    if (!info->aborted)
        return ST_E_NOMEM;
    const uint8_t *e = p + 12;
    for (uint32_t i = 0; i < n; i++, e += TIER_SEG_TX_ENTRY) {
        tier_seg_aborted_t *a = &info->aborted[i];
        a->pid = (int64_t)get_le64(e);
        a->first_offset = (int64_t)get_le64(e + 8);
        a->last_offset = (int64_t)get_le64(e + 16);
        if (a->pid < 0 || a->first_offset < 0 || a->last_offset < a->first_offset ||
            (i > 0 && a->last_offset <= info->aborted[i - 1].last_offset))
            return ST_E_MALFORMED;
        info->n_aborted++;
    }
    return 0;
}

int tier_seg_aborted_range(const tier_seg_aborted_t *v,
                           size_t n,
                           int64_t from,
                           int64_t to,
                           tier_seg_aborted_t **out,
                           size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    size_t lo = 0, hi = n; /* the first marker at or past from */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].last_offset < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = 0;
    for (size_t i = lo; i < n; i++)
        k += v[i].first_offset < to;
    if (k == 0)
        return 0;
    if (!(*out = malloc(k * sizeof(**out))))
        return ST_E_NOMEM;
    for (size_t i = lo; i < n; i++)
        if (v[i].first_offset < to)
            (*out)[(*n_out)++] = v[i];
    return 0;
}

int tier_seg_tail_describe(
    const uint8_t *tail, size_t tail_len, uint64_t obj_size, uint64_t *need, tier_seg_info_t *info)
{
    memset(info, 0, sizeof(*info));
    tier_seg_table_t t;
    int rc = tier_seg_table_parse(tail, tail_len, obj_size, &t);
    if (rc == ST_E_AGAIN) {
        /* The table's size is known; the chunk table may follow: ask for
         * both at once (bounded by the object). */
        uint64_t n = (t.table_size - TIER_SEG_SKIP_HDR_SIZE - TIER_SEG_FOOTER_SIZE) / 8;
        uint64_t want = t.table_size + TIER_SEG_CT_SIZE(n);
        *need = want < obj_size ? want : obj_size;
        return ST_E_AGAIN;
    }
    if (rc != 0)
        return rc;
    uint64_t back = t.table_size + t.ct_size + t.tx_size;
    if (t.ct_size == 0) {
        rc = ST_E_NOTFOUND;
    } else if (back > tail_len) {
        *need = back;
        rc = ST_E_AGAIN;
    } else {
        /* The chunk table's data CRC covers the txn table before it. */
        const uint8_t *ct = tail + tail_len - t.table_size - t.ct_size;
        rc = parse_chunk_table(ct, &t, info);
        if (rc == 0 && t.tx_size > 0)
            rc = parse_txn_table(tail + tail_len - back, &t, info);
        if (rc == 0) {
            info->obj_size = obj_size;
            info->obj_crc32c = st_crc32c(info->obj_crc32c, ct, (size_t)(t.table_size + t.ct_size));
        }
    }
    tier_seg_table_fini(&t);
    if (rc != 0)
        tier_seg_info_fini(info);
    return rc;
}

/* ---- Chunks ---- */

int tier_seg_chunk_find(const tier_seg_chunk_t *chunks, size_t n, int64_t offset)
{
    if (n == 0 || offset < chunks[0].first_offset || offset > chunks[n - 1].last_offset)
        return ST_E_RANGE;
    /* Last chunk whose first_offset <= offset. */
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (chunks[mid].first_offset <= offset)
            lo = mid;
        else
            hi = mid;
    }
    if (offset > chunks[lo].last_offset)
        lo++; /* in a gap: the next chunk holds the next offset present */
    return (int)lo;
}

int tier_seg_chunk_describe(const uint8_t *raw, size_t raw_len, tier_seg_chunk_t *c)
{
    if (raw_len == 0 || raw_len > TIER_SEG_MAX_FRAME_RAW)
        return ST_E_MALFORMED;
    tier_seg_chunk_t d = {0};
    int64_t next = INT64_MIN;
    size_t pos = 0;
    while (pos < raw_len) {
        size_t avail = raw_len - pos;
        plog_batch_hdr_t h;
        if (plog_batch_parse_hdr(raw + pos, avail, &h) != 0 || h.magic != 2 ||
            h.batch_length < PLOG_BATCH_HDR_SIZE - PLOG_BATCH_LOG_OVERHEAD ||
            (size_t)h.batch_length > avail - PLOG_BATCH_LOG_OVERHEAD || h.base_offset < next ||
            h.base_offset < 0 || h.last_offset_delta < 0 ||
            h.base_offset > INT64_MAX - h.last_offset_delta - 1)
            return ST_E_MALFORMED;
        if (d.n_batches == 0) {
            d.first_offset = h.base_offset;
            d.first_ts = h.base_timestamp;
            d.max_ts = h.max_timestamp;
        }
        if (h.max_timestamp > d.max_ts)
            d.max_ts = h.max_timestamp;
        d.last_offset = h.base_offset + h.last_offset_delta;
        next = d.last_offset + 1;
        d.n_batches++;
        pos += (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
    }
    c->first_offset = d.first_offset;
    c->last_offset = d.last_offset;
    c->first_ts = d.first_ts;
    c->max_ts = d.max_ts;
    c->n_batches = d.n_batches;
    c->raw_len = (uint32_t)raw_len;
    return 0;
}

/* ---- Frames ---- */

/* Inflate exactly one zstd frame of raw_len bytes (<= max_raw). When
 * has_xxh, the frame's content checksum must equal xxh32. */
static int decode_frame(const uint8_t *frame,
                        size_t frame_len,
                        uint64_t raw_len,
                        bool has_xxh,
                        uint32_t xxh32,
                        size_t max_raw,
                        uint8_t **out,
                        size_t *out_len)
{
    if (frame_len < 4 || get_le32(frame) != ZSTD_MAGICNUMBER)
        return ST_E_MALFORMED;
    size_t csize = ZSTD_findFrameCompressedSize(frame, frame_len);
    if (ZSTD_isError(csize) || csize != frame_len)
        return ST_E_MALFORMED; /* truncated, or trailing bytes */
    /* Frame_Header_Descriptor bit 2: Content_Checksum_flag (RFC 8878 3.1.1.1.1). */
    if (frame_len < 5 || (frame[4] & 0x04) == 0)
        return ST_E_MALFORMED;
    unsigned long long fcs = ZSTD_getFrameContentSize(frame, frame_len);
    if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN)
        return ST_E_MALFORMED;
    if (fcs != raw_len)
        return ST_E_CORRUPT;
    if (raw_len > max_raw || raw_len > TIER_SEG_MAX_FRAME_RAW)
        return ST_E_TOO_LARGE;
    if (has_xxh && get_le32(frame + frame_len - 4) != xxh32)
        return ST_E_CORRUPT;
    uint8_t *buf = malloc(raw_len ? (size_t)raw_len : 1);
    if (!buf)
        return ST_E_NOMEM;
    /* The destination has exactly raw_len bytes: zstd cannot write past it,
     * and verifies the content checksum before returning success. */
    size_t got = ZSTD_decompress(buf, (size_t)raw_len, frame, frame_len);
    if (ZSTD_isError(got) || got != raw_len) {
        free(buf);
        return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? ST_E_NOMEM : ST_E_CORRUPT;
    }
    *out = buf;
    *out_len = (size_t)raw_len;
    return 0;
}

int tier_seg_frame_decode(const uint8_t *frame,
                          size_t frame_len,
                          const tier_seg_frame_t *f,
                          bool has_checksums,
                          size_t max_raw,
                          uint8_t **out,
                          size_t *out_len)
{
    if (frame_len != f->obj_len)
        return ST_E_MALFORMED;
    return decode_frame(frame, frame_len, f->raw_len, has_checksums, f->xxh32, max_raw, out,
                        out_len);
}

int tier_seg_chunk_decode(const uint8_t *frame,
                          size_t frame_len,
                          const tier_seg_chunk_t *chunk,
                          size_t max_raw,
                          uint8_t **out,
                          size_t *out_len)
{
    if (frame_len != chunk->obj_len)
        return ST_E_MALFORMED;
    if (st_crc32c(0, frame, frame_len) != chunk->crc32c)
        return ST_E_CORRUPT;
    uint8_t *buf;
    size_t len;
    int rc = decode_frame(frame, frame_len, chunk->raw_len, false, 0, max_raw, &buf, &len);
    if (rc != 0)
        return rc;
    tier_seg_chunk_t d;
    rc = tier_seg_chunk_describe(buf, len, &d);
    if (rc == 0 && (d.first_offset != chunk->first_offset || d.last_offset != chunk->last_offset ||
                    (chunk->n_batches != 0 && d.n_batches != chunk->n_batches)))
        rc = ST_E_CORRUPT;
    if (rc != 0) {
        free(buf);
        return rc == ST_E_MALFORMED ? ST_E_CORRUPT : rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* ---- Whole objects ---- */

int tier_seg_object_describe(
    const uint8_t *obj, size_t obj_len, tier_seg_frame_fn fn, void *arg, tier_seg_info_t *info)
{
    memset(info, 0, sizeof(*info));
    tier_seg_table_t t;
    int rc = tier_seg_table_parse(obj, obj_len, obj_len, &t);
    if (rc != 0)
        return rc;
    info->chunks = calloc(t.n_frames ? t.n_frames : 1, sizeof(*info->chunks));
    if (!info->chunks) {
        tier_seg_table_fini(&t);
        return ST_E_NOMEM;
    }
    info->base_offset = info->last_offset = info->base_ts = info->max_ts = -1;
    for (uint32_t i = 0; rc == 0 && i < t.n_frames; i++) {
        const tier_seg_frame_t *f = &t.frames[i];
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        rc = tier_seg_frame_decode(obj + f->obj_pos, f->obj_len, f, t.has_checksums,
                                   TIER_SEG_MAX_FRAME_RAW, &raw, &raw_len);
        tier_seg_chunk_t *c = &info->chunks[i];
        if (rc == 0)
            rc = tier_seg_chunk_describe(raw, raw_len, c);
        if (rc == 0) {
            c->obj_pos = f->obj_pos;
            c->obj_len = f->obj_len;
            c->crc32c = st_crc32c(0, obj + f->obj_pos, f->obj_len);
            if (i > 0 && c->first_offset <= info->chunks[i - 1].last_offset)
                rc = ST_E_MALFORMED;
        }
        if (rc == 0 && fn)
            rc = fn(arg, i, c, raw, raw_len);
        free(raw);
        if (rc != 0)
            break;
        info_add_chunk(info, c);
    }
    if (rc == 0 && t.ct_size > 0) {
        /* The chunk table must say what the frames hold. */
        tier_seg_info_t ct = {0};
        rc = parse_chunk_table(obj + t.data_size + t.tx_size, &t, &ct);
        for (size_t i = 0; rc == 0 && i < ct.n_chunks; i++)
            if (memcmp(&ct.chunks[i], &info->chunks[i], sizeof(ct.chunks[i])) != 0)
                rc = ST_E_CORRUPT;
        if (rc == 0 && t.tx_size > 0 && (rc = parse_txn_table(obj + t.data_size, &t, &ct)) == 0) {
            info->aborted = ct.aborted; /* the aborts are the object's own word */
            info->n_aborted = ct.n_aborted;
            ct.aborted = NULL;
            ct.n_aborted = 0;
        }
        tier_seg_info_fini(&ct);
    }
    tier_seg_table_fini(&t);
    if (rc == 0 && info->n_chunks == 0)
        rc = ST_E_MALFORMED;
    info->obj_size = obj_len;
    info->obj_crc32c = st_crc32c(0, obj, obj_len);
    return rc;
}
