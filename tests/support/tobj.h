/* tobj.h - archived objects for tests: a segment of record batches written
 * as the uploader writes it (tiering/seg.h), stored with a synchronous PUT,
 * and indexed as the uploader indexes it. */
#ifndef TOBJ_H
#define TOBJ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "index/idx.h"
#include "tiering/obj.h"
#include "tiering/seg.h"

typedef struct {
    uint8_t *p; /* owned (free()) */
    size_t len, cap;
} tobj_buf_t;

/** The object of n_batches batches of 20 records (tbatch_build, 300-byte
 * values, seed k and timestamps from 1700000000000 + k * 100 for batch k)
 * from offset base, in frames of frame_target_bytes (1: a frame per batch).
 * @return 0 or an error (obj and info then hold what was written). */
int tobj_build(
    int64_t base, int n_batches, size_t frame_target_bytes, tobj_buf_t *obj, tier_seg_info_t *info);

/** PUT key on st, running loop until it is stored. @return its status. */
int tobj_put(uv_loop_t *loop, obj_store_t *st, const char *key, const void *p, size_t n);

/** Add the object (key, info) of (topic, partition) to the index as the
 * uploader does, running loop until committed. @return its status. */
int tobj_index(uv_loop_t *loop,
               idx_client_t *c,
               const char *topic,
               int32_t partition,
               const char *key,
               const tier_seg_info_t *info);

#endif
