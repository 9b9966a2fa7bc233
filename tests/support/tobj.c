/* tobj.c - archived objects for tests (tobj.h). */
#include "tests/support/tobj.h"
#include "core/st_err.h"
#include "tests/support/tbatch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int sink(void *arg, const void *data, size_t n)
{
    tobj_buf_t *b = arg;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return ST_E_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

int tobj_build(
    int64_t base, int n_batches, size_t frame_target_bytes, tobj_buf_t *obj, tier_seg_info_t *info)
{
    tier_seg_opts_t o = {.frame_target_bytes = frame_target_bytes};
    tier_seg_writer_t *w;
    int rc = tier_seg_writer_new(&o, sink, obj, &w);
    if (rc != 0)
        return rc;
    for (int k = 0; k < n_batches && rc == 0; k++) {
        size_t len;
        uint8_t *b = tbatch_build(20, 300, (uint64_t)k, 1700000000000 + k * 100, &len);
        if (!b) {
            rc = ST_E_NOMEM;
            break;
        }
        int64_t off = base + k * 20;
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)((uint64_t)off >> (56 - 8 * i)); /* baseOffset, outside the CRC */
        rc = tier_seg_writer_write(w, b, len);
        free(b);
    }
    if (rc == 0)
        rc = tier_seg_writer_finish(w, info);
    tier_seg_writer_free(w);
    return rc;
}

typedef struct {
    bool done;
    int status;
} wait_t;

static void on_put(obj_req_t *req, obj_result_t *res, void *arg)
{
    (void)req;
    wait_t *w = arg;
    w->done = true;
    w->status = res->status;
}

int tobj_put(uv_loop_t *loop, obj_store_t *st, const char *key, const void *p, size_t n)
{
    wait_t w = {false, 0};
    int rc = obj_put(st, key, p, n, on_put, &w, NULL);
    if (rc != 0)
        return rc;
    while (!w.done)
        uv_run(loop, UV_RUN_ONCE);
    return w.status;
}

static void on_added(void *arg, int status)
{
    wait_t *w = arg;
    w->done = true;
    w->status = status;
}

int tobj_index(uv_loop_t *loop,
               idx_client_t *c,
               const char *topic,
               int32_t partition,
               const char *key,
               const tier_seg_info_t *info)
{
    idx_chunk_t *chunks = calloc(info->n_chunks ? info->n_chunks : 1, sizeof(*chunks));
    if (!chunks)
        return ST_E_NOMEM;
    for (size_t i = 0; i < info->n_chunks; i++) {
        const tier_seg_chunk_t *ch = &info->chunks[i];
        chunks[i] = (idx_chunk_t){.first_offset = ch->first_offset,
                                  .last_offset = ch->last_offset,
                                  .first_ts = ch->first_ts,
                                  .max_ts = ch->max_ts,
                                  .obj_pos = (int64_t)ch->obj_pos,
                                  .obj_len = ch->obj_len,
                                  .raw_len = ch->raw_len,
                                  .checksum = ch->crc32c};
    }
    idx_segment_t row = {.topic = topic,
                         .partition = partition,
                         .base_offset = info->base_offset,
                         .last_offset = info->last_offset,
                         .base_ts = info->base_ts,
                         .max_ts = info->max_ts,
                         .size = (int64_t)info->obj_size,
                         .object_key = key,
                         .checksum = info->obj_crc32c,
                         .state = IDX_SEG_LIVE};
    wait_t w = {false, 0};
    int rc = idx_segment_add(c, &row, chunks, info->n_chunks, on_added, &w);
    free(chunks);
    if (rc != 0)
        return rc;
    while (!w.done)
        uv_run(loop, UV_RUN_ONCE);
    return w.status;
}
