/* plog_batch.c - record batch v2 validation (Kafka DefaultRecordBatch).
 * Data path: plog_append() runs every produced record set through
 * plog_records_validate() before a byte reaches disk; recovery runs
 * plog_batch_validate() over the active segment's tail.
 * Invariant: a batch that passes has magic 2, batchLength matching its span,
 * a correct CRC-32C, a known codec, and (uncompressed) exactly recordsCount
 * well-framed records. All reads are bounds-checked: input is untrusted. */
#include "core/plog.h"
#include "core/st_codec.h"
#include "core/st_crc32c.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PLOG_DECOMPRESS_MAX (64u << 20) /* bound on a decompressed batch */

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* base + delta as the wire's two's complement: a client's base offset or
 * timestamp may sit near INT64_MAX (a Produce's base offset is replaced at
 * append, so its records' offsets may wrap before that; signed overflow would
 * be undefined behaviour). */
static inline int64_t add_wrap(int64_t base, int64_t delta)
{
    return (int64_t)((uint64_t)base + (uint64_t)delta);
}

static inline uint64_t be64(const uint8_t *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

int plog_batch_parse_hdr(const uint8_t *p, size_t len, plog_batch_hdr_t *h)
{
    if (len < PLOG_BATCH_HDR_SIZE)
        return ST_E_MALFORMED;
    h->base_offset = (int64_t)be64(p);
    h->batch_length = (int32_t)be32(p + 8);
    h->partition_leader_epoch = (int32_t)be32(p + 12);
    h->magic = (int8_t)p[16];
    h->crc = be32(p + 17);
    h->attributes = (int16_t)be16(p + 21);
    h->last_offset_delta = (int32_t)be32(p + 23);
    h->base_timestamp = (int64_t)be64(p + 27);
    h->max_timestamp = (int64_t)be64(p + 35);
    h->producer_id = (int64_t)be64(p + 43);
    h->producer_epoch = (int16_t)be16(p + 51);
    h->base_sequence = (int32_t)be32(p + 53);
    h->records_count = (int32_t)be32(p + 57);
    return 0;
}

/* ---- Varints (zigzag), bounds-checked ---- */

typedef struct {
    const uint8_t *p, *end;
    int err;
} rd_t;

static uint64_t rd_uvarint(rd_t *r, int max_bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (r->p >= r->end) {
            r->err = 1;
            return 0;
        }
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            return v;
    }
    r->err = 1; /* too long */
    return 0;
}

static int64_t rd_varlong(rd_t *r)
{
    uint64_t u = rd_uvarint(r, 10);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static int32_t rd_varint(rd_t *r)
{
    uint64_t u = rd_uvarint(r, 5);
    if (u > 0xffffffffu)
        r->err = 1;
    uint32_t w = (uint32_t)u;
    return (int32_t)((w >> 1) ^ -(w & 1));
}

static void rd_skip_bytes(rd_t *r, int64_t n, int nullable)
{
    if (n < 0) {
        if (!(nullable && n == -1))
            r->err = 1;
        return;
    }
    if (n > r->end - r->p) {
        r->err = 1;
        return;
    }
    r->p += n;
}

/* rd_skip_bytes that returns where the skipped bytes start (NULL for a null one). */
static const uint8_t *rd_bytes(rd_t *r, int32_t n, int nullable)
{
    const uint8_t *at = r->p;
    rd_skip_bytes(r, n, nullable);
    return n < 0 || r->err ? NULL : at;
}

/* One record: length varint, then attributes, timestampDelta, offsetDelta,
 * key, value, headers. Fills rec with the deltas and views of its fields
 * (rec->offset and rec->timestamp hold the deltas). */
static int parse_record(rd_t *r, plog_record_t *rec)
{
    rec->raw = r->p;
    int32_t rec_len = rd_varint(r);
    if (r->err || rec_len < 0 || rec_len > r->end - r->p)
        return -1;
    rd_t in = {r->p, r->p + rec_len, 0};
    r->p += rec_len;
    if (in.p >= in.end)
        return -1;
    in.p++; /* attributes (unused) */
    rec->timestamp = rd_varlong(&in);
    rec->offset = rd_varint(&in);
    rec->key_len = rd_varint(&in);
    rec->key = rd_bytes(&in, rec->key_len, 1);
    rec->value_len = rd_varint(&in);
    rec->value = rd_bytes(&in, rec->value_len, 1);
    int32_t n_headers = rd_varint(&in);
    if (in.err || n_headers < 0 || n_headers > in.end - in.p)
        return -1;
    rec->n_headers = n_headers;
    rec->headers = in.p;
    for (int32_t i = 0; i < n_headers && !in.err; i++) {
        rd_skip_bytes(&in, rd_varint(&in), 0); /* header key */
        rd_skip_bytes(&in, rd_varint(&in), 1); /* header value */
    }
    if (in.err || in.p != in.end)
        return -1;
    rec->headers_len = (size_t)(in.p - rec->headers);
    rec->raw_len = (size_t)(in.p - rec->raw);
    return 0;
}

static int validate_records(const uint8_t *p, size_t len, int32_t count, const char **why)
{
    rd_t r = {p, p + len, 0};
    for (int32_t i = 0; i < count; i++) {
        plog_record_t rec;
        if (parse_record(&r, &rec) != 0) {
            *why = "malformed record";
            return ST_E_MALFORMED;
        }
    }
    if (r.p != r.end) {
        *why = "record count does not match the records";
        return ST_E_MALFORMED;
    }
    return 0;
}

/* stored: a batch the cleaner rewrote may hold fewer records than its
 * offsets span (gaps), or none (an empty batch keeps a segment's end). */
static int
validate(const uint8_t *p, size_t len, plog_batch_hdr_t *h, const char **why, bool stored)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (plog_batch_parse_hdr(p, len, h) != 0) {
        *why = "batch shorter than its header";
        return ST_E_MALFORMED;
    }
    if (h->magic != 2) {
        *why = "unsupported magic (only record batch v2)";
        return ST_E_MALFORMED;
    }
    if (h->batch_length < PLOG_BATCH_HDR_SIZE - PLOG_BATCH_LOG_OVERHEAD ||
        (size_t)h->batch_length + PLOG_BATCH_LOG_OVERHEAD != len) {
        *why = "batchLength does not match the batch";
        return ST_E_MALFORMED;
    }
    if (st_crc32c(0, p + PLOG_BATCH_CRC_START, len - PLOG_BATCH_CRC_START) != h->crc) {
        *why = "CRC-32C mismatch";
        return ST_E_CORRUPT;
    }
    int codec = h->attributes & 7;
    if (codec > 4) {
        *why = "unknown compression codec";
        return ST_E_MALFORMED;
    }
    bool counts_ok = stored ? h->records_count >= 0 && h->last_offset_delta >= 0 &&
                                  h->records_count - 1 <= h->last_offset_delta
                            : h->records_count > 0 && h->last_offset_delta == h->records_count - 1;
    if (!counts_ok) {
        *why = "recordsCount / lastOffsetDelta mismatch";
        return ST_E_MALFORMED;
    }
    if (codec == 0)
        return validate_records(p + PLOG_BATCH_HDR_SIZE, len - PLOG_BATCH_HDR_SIZE,
                                h->records_count, why);
    return 0;
}

int plog_batch_validate(const uint8_t *p, size_t len, plog_batch_hdr_t *h, const char **why)
{
    return validate(p, len, h, why, false);
}

int plog_batch_validate_stored(const uint8_t *p, size_t len, plog_batch_hdr_t *h, const char **why)
{
    return validate(p, len, h, why, true);
}

int plog_records_validate(const uint8_t *p, size_t len, int *n_batches, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    int n = 0;
    size_t pos = 0;
    if (len == 0) {
        *why = "empty record set";
        return ST_E_MALFORMED;
    }
    while (pos < len) {
        if (len - pos < PLOG_BATCH_LOG_OVERHEAD) {
            *why = "truncated batch";
            return ST_E_MALFORMED;
        }
        int32_t bl = (int32_t)be32(p + pos + 8);
        if (bl < 0 || (size_t)bl > len - pos - PLOG_BATCH_LOG_OVERHEAD) {
            *why = "truncated batch";
            return ST_E_MALFORMED;
        }
        size_t blen = (size_t)bl + PLOG_BATCH_LOG_OVERHEAD;
        plog_batch_hdr_t h;
        int rc = plog_batch_validate(p + pos, blen, &h, why);
        if (rc != 0)
            return rc;
        pos += blen;
        n++;
    }
    if (n_batches)
        *n_batches = n;
    return 0;
}

int64_t plog_batch_offset_for_time(const uint8_t *p, size_t len, int64_t ts, int64_t *rec_ts)
{
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(p, len, &h) != 0 || h.max_timestamp < ts)
        return -1;
    if (rec_ts)
        *rec_ts = h.max_timestamp;
    if (h.attributes & 0x8) /* LogAppendTime: every record has maxTimestamp */
        return h.base_offset;
    const uint8_t *recs = p + PLOG_BATCH_HDR_SIZE;
    size_t recs_len = len - PLOG_BATCH_HDR_SIZE;
    uint8_t *raw = NULL;
    int codec = h.attributes & 7;
    if (codec != ST_CODEC_NONE) {
        /* Kafka answers with the exact record: look inside the batch. */
        if (st_decompress(codec, recs, recs_len, PLOG_DECOMPRESS_MAX, &raw, &recs_len) != 0)
            return h.base_offset;
        recs = raw;
    }
    int64_t found = h.base_offset;
    rd_t r = {recs, recs + recs_len, 0};
    for (int32_t i = 0; i < h.records_count; i++) {
        plog_record_t rec;
        if (parse_record(&r, &rec) != 0)
            break;
        if (add_wrap(h.base_timestamp, rec.timestamp) >= ts) {
            found = add_wrap(h.base_offset, rec.offset);
            if (rec_ts)
                *rec_ts = add_wrap(h.base_timestamp, rec.timestamp);
            break;
        }
    }
    free(raw);
    return found;
}

/* ---- Records of a batch (offline readers: `strata archive cat`) ---- */

int plog_batch_records(const uint8_t *p, size_t len, size_t max_raw, plog_record_fn fn, void *arg)
{
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(p, len, &h) != 0 || h.magic != 2 ||
        h.batch_length < PLOG_BATCH_HDR_SIZE - PLOG_BATCH_LOG_OVERHEAD ||
        (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD != len || h.records_count < 0)
        return ST_E_MALFORMED;
    const uint8_t *recs = p + PLOG_BATCH_HDR_SIZE;
    size_t recs_len = len - PLOG_BATCH_HDR_SIZE;
    uint8_t *raw = NULL;
    int codec = h.attributes & 7;
    if (codec != ST_CODEC_NONE) {
        int rc = st_decompress(codec, recs, recs_len, max_raw, &raw, &recs_len);
        if (rc != 0)
            return rc;
        recs = raw;
    }
    int rc = 0;
    rd_t r = {recs, recs + recs_len, 0};
    for (int32_t i = 0; rc == 0 && i < h.records_count; i++) {
        plog_record_t rec;
        if (parse_record(&r, &rec) != 0) {
            rc = ST_E_MALFORMED;
            break;
        }
        rec.offset = add_wrap(h.base_offset, rec.offset);
        rec.timestamp =
            (h.attributes & 0x8) ? h.max_timestamp : add_wrap(h.base_timestamp, rec.timestamp);
        rc = fn(arg, &h, &rec);
    }
    if (rc == 0 && r.p != r.end)
        rc = ST_E_MALFORMED;
    free(raw);
    return rc;
}

int32_t plog_record_headers(const plog_record_t *rec, plog_header_t *out, int32_t cap)
{
    rd_t r = {rec->headers, rec->headers + rec->headers_len, 0};
    int32_t n = 0;
    for (int32_t i = 0; i < rec->n_headers && n < cap && !r.err; i++) {
        plog_header_t *hd = &out[n];
        hd->key_len = rd_varint(&r);
        hd->key = rd_bytes(&r, hd->key_len, 0);
        hd->value_len = rd_varint(&r);
        hd->value = rd_bytes(&r, hd->value_len, 1);
        if (!r.err)
            n++;
    }
    return n;
}
