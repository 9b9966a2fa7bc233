/* seg_write.c - encode a sealed segment as a zstd seekable object.
 * Data path: tier_uploader (thread pool) -> tier_seg_writer_write() with the
 * segment's bytes in any pieces -> whole batches gather in `raw` until the next
 * would pass the frame target -> one independent zstd frame per chunk goes to
 * the sink -> tier_seg_writer_finish() adds the seek table and returns the
 * chunk metadata the index commits after the PUT.
 * Invariants: 1. raw[0, parsed) holds whole, checked batches of the open
 *                chunk; raw[parsed, raw_len) is an incomplete tail;
 *             2. a frame never splits a batch, and only a single batch larger
 *                than the target makes a frame exceed it;
 *             3. offsets increase strictly across the whole segment. */
#include "tiering/seg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "core/plog.h"
#include "core/st_crc32c.h"

struct tier_seg_writer {
    tier_seg_sink_fn sink;
    void *sink_arg; /* borrowed: valid until free */
    size_t target;
    int level;
    bool is_crc_trusted;
    int err; /* sticky: first error */

    ZSTD_CCtx *cctx; /* owned */
    uint8_t *raw;    /* owned: open chunk's bytes (+ incomplete tail) */
    size_t raw_len, raw_cap, parsed;
    uint8_t *zbuf; /* owned: compression output */
    size_t zbuf_cap;

    tier_seg_chunk_t cur; /* open chunk (n_batches == 0: none) */
    int64_t next_offset;  /* smallest offset the next batch may start at */

    tier_seg_chunk_t *chunks; /* owned */
    size_t n_chunks, chunks_cap;
    uint32_t *xxh;        /* owned: content checksum per frame (seek table) */
    tier_seg_info_t info; /* info.aborted owned, grown as markers come */
    size_t aborted_cap;

    /* Transactions: the caller's known aborts, and the producers with a
     * transactional batch since their last marker in this segment. */
    const tier_seg_aborted_t *known;
    size_t n_known;
    struct {
        int64_t pid, first;
    } * open;
    size_t n_open, open_cap;
};

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void tier_seg_info_fini(tier_seg_info_t *info)
{
    if (!info)
        return;
    free(info->chunks);
    info->chunks = NULL;
    info->n_chunks = 0;
    free(info->aborted);
    info->aborted = NULL;
    info->n_aborted = 0;
}

int tier_seg_writer_new(const tier_seg_opts_t *opts,
                        tier_seg_sink_fn sink,
                        void *sink_arg,
                        tier_seg_writer_t **out)
{
    tier_seg_opts_t def = {0};
    if (!opts)
        opts = &def;
    if (!sink || opts->frame_target_bytes > TIER_SEG_MAX_FRAME_RAW || opts->level < 0 ||
        opts->level > ZSTD_maxCLevel())
        return ST_E_INVAL;
    tier_seg_writer_t *w = calloc(1, sizeof *w);
    if (!w)
        return ST_E_NOMEM;
    w->sink = sink;
    w->sink_arg = sink_arg;
    w->target = opts->frame_target_bytes ? opts->frame_target_bytes : TIER_SEG_FRAME_TARGET;
    w->level = opts->level ? opts->level : 3;
    w->is_crc_trusted = opts->is_crc_trusted;
    w->known = opts->known_aborted;
    w->n_known = opts->known_aborted ? opts->n_known_aborted : 0;
    w->next_offset = INT64_MIN;
    w->info.base_offset = w->info.last_offset = -1;
    w->info.base_ts = w->info.max_ts = -1;
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx) {
        free(w);
        return ST_E_NOMEM;
    }
    /* Content size lets readers check a frame before inflating it; the
     * content checksum doubles as the seek table's per-frame checksum. */
    if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1))) {
        tier_seg_writer_free(w);
        return ST_E_INVAL;
    }
    *out = w;
    return 0;
}

void tier_seg_writer_free(tier_seg_writer_t *w)
{
    if (!w)
        return;
    ZSTD_freeCCtx(w->cctx);
    free(w->raw);
    free(w->zbuf);
    free(w->chunks);
    free(w->xxh);
    free(w->info.aborted);
    free(w->open);
    free(w);
}

static int emit(tier_seg_writer_t *w, const void *p, size_t n)
{
    int rc = w->sink(w->sink_arg, p, n);
    if (rc != 0)
        return rc < 0 ? rc : ST_E_IO;
    w->info.obj_crc32c = st_crc32c(w->info.obj_crc32c, p, n);
    w->info.obj_size += n;
    return 0;
}

/* ---- Frames ---- */

/* Compress raw[0, parsed) as one frame, emit it and record its chunk. */
static int close_chunk(tier_seg_writer_t *w)
{
    if (w->cur.n_batches == 0)
        return 0;
    if (w->n_chunks == w->chunks_cap) {
        size_t cap = w->chunks_cap ? w->chunks_cap * 2 : 16;
        if (cap > TIER_SEG_MAX_FRAMES)
            return ST_E_TOO_LARGE;
        tier_seg_chunk_t *c = realloc(w->chunks, cap * sizeof *c);
        if (!c)
            return ST_E_NOMEM;
        w->chunks = c;
        uint32_t *x = realloc(w->xxh, cap * sizeof *x);
        if (!x)
            return ST_E_NOMEM;
        w->xxh = x;
        w->chunks_cap = cap;
    }
    size_t bound = ZSTD_compressBound(w->parsed);
    if (bound > w->zbuf_cap) {
        uint8_t *z = realloc(w->zbuf, bound);
        if (!z)
            return ST_E_NOMEM;
        w->zbuf = z;
        w->zbuf_cap = bound;
    }
    size_t zn = ZSTD_compress2(w->cctx, w->zbuf, w->zbuf_cap, w->raw, w->parsed);
    if (ZSTD_isError(zn) || zn < 4 || zn > UINT32_MAX)
        return ST_E_NOMEM; /* only allocation can fail with a bound-sized buffer */
    tier_seg_chunk_t *c = &w->chunks[w->n_chunks];
    *c = w->cur;
    c->obj_pos = w->info.obj_size;
    c->obj_len = (uint32_t)zn;
    c->raw_len = (uint32_t)w->parsed;
    c->crc32c = st_crc32c(0, w->zbuf, zn);
    w->xxh[w->n_chunks] = get_le32(w->zbuf + zn - 4); /* zstd content checksum */
    int rc = emit(w, w->zbuf, zn);
    if (rc != 0)
        return rc;
    w->n_chunks++;
    memmove(w->raw, w->raw + w->parsed, w->raw_len - w->parsed);
    w->raw_len -= w->parsed;
    w->parsed = 0;
    memset(&w->cur, 0, sizeof w->cur);
    return 0;
}

/* ---- Transactions ---- */

#define ATTR_TRANSACTIONAL 0x10
#define ATTR_CONTROL       0x20

/* Skip one varint of b[*i, n). @return false when it does not end in n. */
static bool skip_varint(const uint8_t *b, size_t n, size_t *i)
{
    for (int k = 0; k < 10 && *i < n; k++)
        if (!(b[(*i)++] & 0x80))
            return true;
    return false;
}

/* Is the control batch p (blen bytes, header checked) an ABORT marker? Its
 * first record's key is int16 version, int16 type (0 abort, 1 commit). */
static bool is_abort_marker(const uint8_t *p, size_t blen)
{
    size_t i = PLOG_BATCH_HDR_SIZE;
    if (!skip_varint(p, blen, &i) || ++i > blen ||                /* length, attributes */
        !skip_varint(p, blen, &i) || !skip_varint(p, blen, &i) || /* ts, offset deltas */
        !skip_varint(p, blen, &i) || i + 4 > blen)                /* key length */
        return false;
    return ((p[i + 2] << 8) | p[i + 3]) == 0;
}

/* Note a transactional batch of h: data opens the producer's transaction
 * here, a marker closes it (and an ABORT joins info.aborted). */
static int take_txn(tier_seg_writer_t *w, const plog_batch_hdr_t *h, const uint8_t *p, size_t blen)
{
    size_t k = 0;
    while (k < w->n_open && w->open[k].pid != h->producer_id)
        k++;
    if (!(h->attributes & ATTR_CONTROL)) {
        if (k < w->n_open)
            return 0;
        if (w->n_open == w->open_cap) {
            size_t cap = w->open_cap ? w->open_cap * 2 : 8;
            void *n = realloc(w->open, cap * sizeof(*w->open));
            if (!n)
                return ST_E_NOMEM;
            w->open = n;
            w->open_cap = cap;
        }
        w->open[w->n_open].pid = h->producer_id;
        w->open[w->n_open++].first = h->base_offset;
        return 0;
    }
    int64_t first = k < w->n_open ? w->open[k].first : w->info.base_offset;
    if (k < w->n_open)
        w->open[k] = w->open[--w->n_open];
    if (!is_abort_marker(p, blen))
        return 0;
    for (size_t i = 0; i < w->n_known; i++)
        if (w->known[i].pid == h->producer_id && w->known[i].last_offset == h->base_offset &&
            w->known[i].first_offset >= 0 && w->known[i].first_offset <= first)
            first = w->known[i].first_offset;
    if (w->info.n_aborted == w->aborted_cap) {
        size_t cap = w->aborted_cap ? w->aborted_cap * 2 : 8;
        tier_seg_aborted_t *n = realloc(w->info.aborted, cap * sizeof(*n));
        if (!n)
            return ST_E_NOMEM;
        w->info.aborted = n;
        w->aborted_cap = cap;
    }
    w->info.aborted[w->info.n_aborted++] =
        (tier_seg_aborted_t){h->producer_id, first, h->base_offset};
    return 0;
}

/* Check the batch at raw[parsed] (blen bytes) and add it to the open chunk. */
static int take_batch(tier_seg_writer_t *w, size_t blen)
{
    const uint8_t *p = w->raw + w->parsed;
    plog_batch_hdr_t h;
    if (blen < PLOG_BATCH_HDR_SIZE || plog_batch_parse_hdr(p, blen, &h) != 0 || h.magic != 2 ||
        h.last_offset_delta < 0 || h.base_offset < 0 || h.base_offset < w->next_offset ||
        h.base_offset > INT64_MAX - h.last_offset_delta - 1)
        return ST_E_MALFORMED;
    if (!w->is_crc_trusted &&
        st_crc32c(0, p + PLOG_BATCH_CRC_START, blen - PLOG_BATCH_CRC_START) != h.crc)
        return ST_E_CORRUPT;
    int64_t last = h.base_offset + h.last_offset_delta;
    if (w->info.base_offset < 0)
        w->info.base_offset = h.base_offset; /* take_txn's fallback first offset */
    if ((h.attributes & ATTR_TRANSACTIONAL) && h.producer_id >= 0) {
        int rc = take_txn(w, &h, p, blen);
        if (rc != 0)
            return rc;
    }
    if (w->cur.n_batches == 0) {
        w->cur.first_offset = h.base_offset;
        w->cur.first_ts = h.base_timestamp;
        w->cur.max_ts = h.max_timestamp;
    }
    if (h.max_timestamp > w->cur.max_ts)
        w->cur.max_ts = h.max_timestamp;
    w->cur.last_offset = last;
    w->cur.n_batches++;
    if (w->info.last_offset < 0) { /* the first batch */
        w->info.base_ts = h.base_timestamp;
        w->info.max_ts = h.max_timestamp;
    }
    if (h.max_timestamp > w->info.max_ts)
        w->info.max_ts = h.max_timestamp;
    w->info.last_offset = last;
    w->next_offset = last + 1;
    w->parsed += blen;
    return 0;
}

/* Consume every complete batch in raw[parsed, raw_len). */
static int drain(tier_seg_writer_t *w)
{
    for (;;) {
        size_t avail = w->raw_len - w->parsed;
        if (avail < PLOG_BATCH_LOG_OVERHEAD)
            return 0;
        const uint8_t *p = w->raw + w->parsed + 8;
        uint32_t bl = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (bl > INT32_MAX || bl < PLOG_BATCH_HDR_SIZE - PLOG_BATCH_LOG_OVERHEAD)
            return ST_E_MALFORMED;
        size_t blen = (size_t)bl + PLOG_BATCH_LOG_OVERHEAD;
        if (blen > TIER_SEG_MAX_FRAME_RAW)
            return ST_E_TOO_LARGE;
        if (w->parsed > 0 && w->parsed + blen > w->target) {
            int rc = close_chunk(w); /* moves the tail to raw[0] */
            if (rc != 0)
                return rc;
            continue;
        }
        if (avail < blen)
            return 0;
        int rc = take_batch(w, blen);
        if (rc != 0)
            return rc;
        if (w->parsed >= w->target && (rc = close_chunk(w)) != 0)
            return rc;
    }
}

int tier_seg_writer_write(tier_seg_writer_t *w, const void *data, size_t len)
{
    if (w->err)
        return w->err;
    const uint8_t *src = data;
    while (len > 0) {
        /* Copy in pieces so that raw holds at most the open chunk, one batch
         * and one piece, however large the caller's buffer is. */
        size_t n = len < 256 * 1024 ? len : 256 * 1024;
        if (w->raw_len + n > w->raw_cap) {
            size_t cap = w->raw_cap ? w->raw_cap : 64 * 1024;
            while (cap < w->raw_len + n)
                cap *= 2;
            uint8_t *r = realloc(w->raw, cap);
            if (!r)
                return w->err = ST_E_NOMEM;
            w->raw = r;
            w->raw_cap = cap;
        }
        memcpy(w->raw + w->raw_len, src, n);
        w->raw_len += n;
        w->info.raw_size += n;
        src += n;
        len -= n;
        int rc = drain(w);
        if (rc != 0)
            return w->err = rc;
    }
    return 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- Chunk table and seek table ---- */

/* Start a Strata table frame of size bytes: skippable header, tag, version
 * 1, n entries. @return where the frame's fields after n go. */
static uint8_t *table_begin(uint8_t *t, uint32_t magic, size_t size, uint32_t tag, size_t n)
{
    put_le32(t, magic);
    put_le32(t + 4, (uint32_t)(size - TIER_SEG_SKIP_HDR_SIZE));
    uint8_t *p = t + TIER_SEG_SKIP_HDR_SIZE;
    put_le32(p, tag);
    put_le32(p + 4, 1);
    put_le32(p + 8, (uint32_t)n);
    return p + 12;
}

/* Close the table frame t with its CRC-32C, emit and free it. */
static int table_end(tier_seg_writer_t *w, uint8_t *t, size_t size)
{
    put_le32(t + size - 4,
             st_crc32c(0, t + TIER_SEG_SKIP_HDR_SIZE, size - TIER_SEG_SKIP_HDR_SIZE - 4));
    int rc = emit(w, t, size);
    free(t);
    return rc;
}

static int write_chunk_table(tier_seg_writer_t *w)
{
    size_t n = w->n_chunks, size = (size_t)TIER_SEG_CT_SIZE(n);
    uint8_t *t = malloc(size);
    if (!t)
        return ST_E_NOMEM;
    uint8_t *p = table_begin(t, TIER_SEG_CT_MAGIC, size, TIER_SEG_CT_TAG, n);
    put_le32(p, w->info.obj_crc32c); /* the data frames so far */
    p += 4;
    for (size_t i = 0; i < n; i++, p += TIER_SEG_CT_ENTRY) {
        const tier_seg_chunk_t *c = &w->chunks[i];
        put_le64(p, (uint64_t)c->first_offset);
        put_le64(p + 8, (uint64_t)c->last_offset);
        put_le64(p + 16, (uint64_t)c->first_ts);
        put_le64(p + 24, (uint64_t)c->max_ts);
        put_le32(p + 32, c->crc32c);
        put_le32(p + 36, c->n_batches);
    }
    return table_end(w, t, size);
}

static int write_txn_table(tier_seg_writer_t *w)
{
    size_t n = w->info.n_aborted, size = (size_t)TIER_SEG_TX_SIZE(n);
    uint8_t *t = malloc(size);
    if (!t)
        return ST_E_NOMEM;
    uint8_t *p = table_begin(t, TIER_SEG_TX_MAGIC, size, TIER_SEG_TX_TAG, n);
    for (size_t i = 0; i < n; i++, p += TIER_SEG_TX_ENTRY) {
        put_le64(p, (uint64_t)w->info.aborted[i].pid);
        put_le64(p + 8, (uint64_t)w->info.aborted[i].first_offset);
        put_le64(p + 16, (uint64_t)w->info.aborted[i].last_offset);
    }
    return table_end(w, t, size);
}

static int write_table(tier_seg_writer_t *w)
{
    size_t n = w->n_chunks;
    size_t body = n * 12 + TIER_SEG_FOOTER_SIZE;
    uint8_t *t = malloc(TIER_SEG_SKIP_HDR_SIZE + body);
    if (!t)
        return ST_E_NOMEM;
    put_le32(t, TIER_SEG_SKIPPABLE_MAGIC);
    put_le32(t + 4, (uint32_t)body);
    uint8_t *p = t + TIER_SEG_SKIP_HDR_SIZE;
    for (size_t i = 0; i < n; i++, p += 12) {
        put_le32(p, w->chunks[i].obj_len);
        put_le32(p + 4, w->chunks[i].raw_len);
        put_le32(p + 8, w->xxh[i]);
    }
    put_le32(p, (uint32_t)n);
    p[4] = TIER_SEG_DESC_CHECKSUM;
    put_le32(p + 5, TIER_SEG_SEEKABLE_MAGIC);
    int rc = emit(w, t, TIER_SEG_SKIP_HDR_SIZE + body);
    free(t);
    return rc;
}

int tier_seg_writer_finish(tier_seg_writer_t *w, tier_seg_info_t *info)
{
    if (w->err)
        return w->err;
    int rc;
    if (w->parsed != w->raw_len)
        rc = ST_E_MALFORMED; /* stream ends inside a batch */
    else if ((rc = close_chunk(w)) == 0 &&
             (w->n_chunks == 0 || w->info.n_aborted == 0 || (rc = write_txn_table(w)) == 0) &&
             (w->n_chunks == 0 || (rc = write_chunk_table(w)) == 0))
        rc = write_table(w);
    if (rc != 0)
        return w->err = rc;
    *info = w->info;
    info->chunks = w->chunks;
    info->n_chunks = w->n_chunks;
    w->info.aborted = NULL;
    w->info.n_aborted = 0;
    w->chunks = NULL;
    w->n_chunks = w->chunks_cap = 0;
    w->err = ST_E_CLOSED;
    return 0;
}

int tier_seg_write_fd(int fd,
                      off_t pos,
                      off_t len,
                      const tier_seg_opts_t *opts,
                      tier_seg_sink_fn sink,
                      void *sink_arg,
                      tier_seg_info_t *info)
{
    enum { PIECE = 256 * 1024 };
    if (pos < 0 || len < 0)
        return ST_E_INVAL;
    tier_seg_writer_t *w;
    int rc = tier_seg_writer_new(opts, sink, sink_arg, &w);
    if (rc != 0)
        return rc;
    uint8_t *buf = malloc(PIECE);
    if (!buf) {
        rc = ST_E_NOMEM;
        goto out;
    }
    while (len > 0) {
        size_t want = len < PIECE ? (size_t)len : PIECE;
        ssize_t got = pread(fd, buf, want, pos);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            goto out;
        }
        if (got == 0) {
            rc = ST_E_IO; /* file shorter than the caller said */
            goto out;
        }
        if ((rc = tier_seg_writer_write(w, buf, (size_t)got)) != 0)
            goto out;
        pos += got;
        len -= got;
    }
    rc = tier_seg_writer_finish(w, info);
out:
    free(buf);
    tier_seg_writer_free(w);
    return rc;
}
