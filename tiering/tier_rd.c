/* tier_rd.c - reading offloaded data back (hydration, first version).
 * Data path: a Fetch below the log's first local offset (plog_read answers
 * ST_E_OFFLOADED) -> tier_read(): the index locates the chunk (one zstd frame
 * of whole batches) holding the offset -> one ranged GET of exactly that
 * frame -> the frame is verified (CRC-32C, zstd checksum, offsets) and
 * decompressed on the thread pool -> the batches from the one holding the
 * offset, up to max_bytes (at least one batch), go back to the caller.
 * Not yet: the on-disk chunk cache, shared downloads and read-ahead that
 * ARCHITECTURE.md describes; every read is one GET of one chunk. */
#include "core/plog.h"
#include "core/st_log.h"
#include "tiering/obj.h"
#include "tiering/seg.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tier_shard_t *ts;
    tier_read_cb cb;
    void *arg;
    int64_t offset;
    int64_t max_bytes;
    char key[1024];
    tier_seg_chunk_t chunk;
    uv_work_t work;
    uint8_t *frame; /* owned: the compressed frame */
    size_t frame_len;
    uint8_t *raw; /* owned: decoded batches */
    size_t raw_len;
    size_t from, len; /* the part of raw to return */
    int err;
} rd_t;

static void finish(rd_t *r, int status)
{
    if (status != 0) {
        free(r->raw);
        r->raw = NULL;
        r->len = 0;
    } else if (r->from > 0) {
        memmove(r->raw, r->raw + r->from, r->len);
    }
    free(r->frame);
    r->cb(r->arg, status, r->raw, r->len);
    free(r);
}

/* Thread pool: verify and decompress, then pick the batches to return. */
static void decode_work(uv_work_t *w)
{
    rd_t *r = w->data;
    r->err = tier_seg_chunk_decode(r->frame, r->frame_len, &r->chunk, TIER_SEG_MAX_FRAME_RAW,
                                   &r->raw, &r->raw_len);
    if (r->err)
        return;
    size_t pos = 0;
    plog_batch_hdr_t h;
    r->from = SIZE_MAX;
    while (pos < r->raw_len && plog_batch_parse_hdr(r->raw + pos, r->raw_len - pos, &h) == 0) {
        size_t blen = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        if (blen > r->raw_len - pos)
            break;
        if (r->from == SIZE_MAX && h.base_offset + h.last_offset_delta >= r->offset)
            r->from = pos;
        if (r->from != SIZE_MAX) {
            if (pos > r->from && (int64_t)(pos + blen - r->from) > r->max_bytes)
                break;
            r->len = pos + blen - r->from;
        }
        pos += blen;
    }
    if (r->from == SIZE_MAX)
        r->err = ST_E_RANGE;
}

static void decode_done(uv_work_t *w, int status)
{
    rd_t *r = w->data;
    int err = status ? status : r->err;
    if (err)
        ST_WARN("tier", "cannot read remote chunk key=%s offset=%" PRId64 ": %s", r->key, r->offset,
                st_strerror(err));
    r->ts->stats_hydrated_bytes += err ? 0 : (int64_t)r->len;
    finish(r, err);
}

static void on_chunk(obj_req_t *req, obj_result_t *res, void *arg)
{
    rd_t *r = arg;
    (void)req;
    if (res->status != 0) {
        ST_WARN("tier", "ranged GET failed key=%s: %s %s", r->key, st_strerror(res->status),
                res->errmsg);
        finish(r, res->status);
        return;
    }
    r->frame = res->data;
    r->frame_len = res->data_len;
    res->data = NULL; /* taken */
    r->work.data = r;
    int rc = uv_queue_work(r->ts->loop, &r->work, decode_work, decode_done);
    if (rc != 0)
        finish(r, rc);
}

static void on_loc(void *arg, int status, const idx_loc_t *loc)
{
    rd_t *r = arg;
    if (status != 0) {
        finish(r, status == ST_E_RANGE ? ST_E_RANGE : status);
        return;
    }
    snprintf(r->key, sizeof(r->key), "%s", loc->seg.object_key);
    r->chunk = (tier_seg_chunk_t){.first_offset = loc->chunk.first_offset,
                                  .last_offset = loc->chunk.last_offset,
                                  .first_ts = loc->chunk.first_ts,
                                  .max_ts = loc->chunk.max_ts,
                                  .obj_pos = (uint64_t)loc->chunk.obj_pos,
                                  .obj_len = (uint32_t)loc->chunk.obj_len,
                                  .raw_len = (uint32_t)loc->chunk.raw_len,
                                  .crc32c = loc->chunk.checksum,
                                  .n_batches = 0};
    int rc =
        obj_get_range(r->ts->store, r->key, r->chunk.obj_pos, r->chunk.obj_len, on_chunk, r, NULL);
    if (rc != 0)
        finish(r, rc);
}

int tier_read(tier_shard_t *ts,
              const char *topic,
              int32_t partition,
              int64_t offset,
              int64_t max_bytes,
              tier_read_cb cb,
              void *arg)
{
    if (ts->closing)
        return ST_E_CLOSED;
    rd_t *r = calloc(1, sizeof(*r));
    if (!r)
        return ST_E_NOMEM;
    r->ts = ts;
    r->cb = cb;
    r->arg = arg;
    r->offset = offset;
    r->max_bytes = max_bytes > 0 ? max_bytes : 1;
    int rc = idx_lookup_offset(ts->idx, topic, partition, offset, on_loc, r);
    if (rc != 0)
        free(r);
    return rc;
}
