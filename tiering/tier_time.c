/* tier_time.c - ListOffsets by timestamp over archived data.
 * Data path: kh_fetch's ListOffsets on the partition's owner, when the log
 * starts below its first local offset -> tier_offset_for_time(): the index
 * finds the first chunk whose records may reach the timestamp
 * (idx_lookup_time) -> the chunk's batches come through tier_read_until()
 * (chunk cache, shared downloads) -> the first batch whose maxTimestamp
 * reaches it gives the exact record offset (plog_batch_offset_for_time, which
 * also looks inside compressed batches). ST_E_NOTFOUND: the archive has no
 * such record; the caller then asks the local log. */
#include "core/plog.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tier_shard_t *ts;
    char topic[256];
    int32_t partition;
    int64_t target;
    int64_t deadline_ms;
    tier_time_cb cb;
    void *arg;
} tq_t;

static void on_batches(void *arg, int status, uint8_t *data, size_t len)
{
    tq_t *q = arg;
    int64_t offset = -1, ts = -1;
    if (status == 0 && len == 0)
        status = ST_E_TIMEOUT; /* the chunk did not arrive by the deadline */
    for (size_t pos = 0; status == 0 && pos + PLOG_BATCH_HDR_SIZE <= len;) {
        plog_batch_hdr_t h;
        if (plog_batch_parse_hdr(data + pos, len - pos, &h) != 0)
            break;
        size_t blen = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        if (h.batch_length < 0 || blen > len - pos)
            break;
        if (h.max_timestamp >= q->target) {
            offset = plog_batch_offset_for_time(data + pos, blen, q->target, &ts);
            break;
        }
        pos += blen;
    }
    free(data);
    if (status == 0 && offset < 0)
        status = ST_E_NOTFOUND;
    q->cb(q->arg, status, offset, ts);
    free(q);
}

static void on_loc(void *arg, int status, const idx_loc_t *loc)
{
    tq_t *q = arg;
    if (status != 0) {
        q->cb(q->arg, status == ST_E_RANGE ? ST_E_NOTFOUND : status, -1, -1);
        free(q);
        return;
    }
    int rc = tier_read_until(q->ts, q->topic, q->partition, loc->chunk.first_offset,
                             loc->chunk.raw_len, q->deadline_ms, on_batches, q);
    if (rc != 0) {
        q->cb(q->arg, rc, -1, -1);
        free(q);
    }
}

int tier_offset_for_time(tier_shard_t *ts,
                         const char *topic,
                         int32_t partition,
                         int64_t target,
                         int64_t deadline_ms,
                         tier_time_cb cb,
                         void *arg)
{
    if (ts->closing)
        return ST_E_CLOSED;
    tq_t *q = calloc(1, sizeof(*q));
    if (!q)
        return ST_E_NOMEM;
    *q = (tq_t){.ts = ts,
                .partition = partition,
                .target = target,
                .deadline_ms = deadline_ms,
                .cb = cb,
                .arg = arg};
    snprintf(q->topic, sizeof(q->topic), "%s", topic);
    int rc = idx_lookup_time(ts->idx, topic, partition, target, on_loc, q);
    if (rc != 0)
        free(q);
    return rc;
}
