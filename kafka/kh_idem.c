/* kh_idem.c - idempotent producer state: per partition and producer id, the
 * epoch and the sequence ranges of the last five batches (as Kafka keeps).
 * Data path: on the partition's owning shard, kh_produce calls
 * kh_idem_check() before plog_append(): a retried batch already in the log
 * is acknowledged with its original offset and not appended again; a gap in
 * sequence numbers gets OUT_OF_ORDER_SEQUENCE_NUMBER; an old epoch gets
 * INVALID_PRODUCER_EPOCH. Those answers are given only to a record set that
 * is valid (kh_produce validates it first, as Kafka: a corrupt batch with a
 * retried sequence is CORRUPT_MESSAGE, never a duplicate); the check itself
 * reads only batch headers. After the append, kh_idem_record() remembers it.
 * The state of a partition is rebuilt from its log (batch headers of the
 * last segments) the first time the partition sees an idempotent batch after
 * a restart. State lives only on the owning shard: no locks. */
#include "core/st_log.h"
#include "kafka/kh_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDEM_BATCHES   5 /* batches remembered per producer, as Kafka */
#define IDEM_SCAN_SEGS 2 /* segments read to rebuild state after a restart, at least */
/* ... and every older segment written within this window: a producer retries
 * a batch for up to its delivery timeout (librdkafka's message.timeout.ms is
 * 5 min, Java's delivery.timeout.ms 2 min), so its last batches must be known
 * after a restart however many segments rolled since. Without them a retry
 * of a producer with no state was appended a second time. */
#define IDEM_SCAN_WINDOW_MS (15 * 60 * 1000)

typedef struct {
    int32_t first_seq, last_seq;
    int64_t base_offset, last_offset;
} idem_batch_t;

typedef struct idem_pid {
    struct idem_pid *next;
    int64_t pid;
    int16_t epoch;
    idem_batch_t b[IDEM_BATCHES]; /* ring, newest at (head + n - 1) */
    int head, n;
} idem_pid_t;

struct kh_idem_part {
    struct kh_idem_part *next;
    plog_t *log; /* borrowed: identity of the partition on this shard */
    idem_pid_t *pids;
};

typedef struct kh_idem_part idem_part_t;

/* The sequence of the last record of a batch: first + last_offset_delta, wrapping past
 * INT32_MAX to 0 as Kafka does (DefaultRecordBatch.incrementSequence). Both come from the
 * client: the sum is taken in 64 bits so hostile values cannot overflow. */
static int32_t seq_last(int32_t first, int32_t delta)
{
    return (int32_t)(((int64_t)first + delta) & INT32_MAX);
}

static idem_pid_t *pid_find(idem_part_t *p, int64_t pid, bool create)
{
    for (idem_pid_t *e = p->pids; e; e = e->next)
        if (e->pid == pid)
            return e;
    if (!create)
        return NULL;
    idem_pid_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->pid = pid;
    e->epoch = -1;
    e->next = p->pids;
    p->pids = e;
    return e;
}

static void
pid_push(idem_pid_t *e, int16_t epoch, int32_t first, int32_t last, int64_t base, int64_t last_off)
{
    if (epoch != e->epoch) {
        e->epoch = epoch;
        e->n = e->head = 0;
    }
    int slot = (e->head + e->n) % IDEM_BATCHES;
    if (e->n == IDEM_BATCHES)
        e->head = (e->head + 1) % IDEM_BATCHES;
    else
        e->n++;
    e->b[slot] = (idem_batch_t){first, last, base, last_off};
}

static int rebuild_one(void *arg, const plog_batch_hdr_t *h)
{
    idem_part_t *p = arg;
    if (h->producer_id < 0 || h->base_sequence < 0)
        return 0;
    idem_pid_t *e = pid_find(p, h->producer_id, true);
    if (e && h->producer_epoch >= e->epoch)
        pid_push(e, h->producer_epoch, h->base_sequence,
                 seq_last(h->base_sequence, h->last_offset_delta), h->base_offset,
                 h->base_offset + h->last_offset_delta);
    return 0;
}

static idem_part_t *part_state(kh_shard_t *ks, plog_t *log)
{
    for (idem_part_t *p = ks->idem_parts; p; p = p->next)
        if (p->log == log)
            return p;
    idem_part_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->log = log;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t since_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - IDEM_SCAN_WINDOW_MS;
    if (plog_scan_tail(log, IDEM_SCAN_SEGS, since_ms, rebuild_one, p) != 0)
        ST_WARN("kafka", "producer state rebuild incomplete dir=%s", plog_dir(log));
    p->next = ks->idem_parts;
    ks->idem_parts = p;
    return p;
}

/* Producer id, epoch and sequence range of a record set (first and last batch). */
static bool
set_ids(const uint8_t *rec, size_t len, int64_t *pid, int16_t *epoch, int32_t *first, int32_t *last)
{
    plog_batch_hdr_t h, t;
    if (plog_batch_parse_hdr(rec, len, &h) != 0 || h.producer_id < 0 || h.base_sequence < 0)
        return false;
    t = h;
    for (size_t pos = 0; pos + PLOG_BATCH_HDR_SIZE <= len;) {
        if (plog_batch_parse_hdr(rec + pos, len - pos, &t) != 0 || t.batch_length < 0)
            break;
        pos += (size_t)t.batch_length + PLOG_BATCH_LOG_OVERHEAD;
    }
    *pid = h.producer_id;
    *epoch = h.producer_epoch;
    *first = h.base_sequence;
    *last = seq_last(t.base_sequence, t.last_offset_delta);
    return true;
}

int16_t kh_idem_check(kh_shard_t *ks,
                      plog_t *log,
                      const uint8_t *rec,
                      size_t len,
                      int64_t *dup_base,
                      int64_t *dup_last)
{
    int64_t pid;
    int16_t epoch;
    int32_t first, last;
    if (!set_ids(rec, len, &pid, &epoch, &first, &last))
        return KP_ERR_NONE; /* not idempotent */
    idem_part_t *p = part_state(ks, log);
    idem_pid_t *e = p ? pid_find(p, pid, false) : NULL;
    if (!e)
        return KP_ERR_NONE; /* a new producer here may start at any sequence */
    if (epoch < e->epoch)
        return KP_ERR_INVALID_PRODUCER_EPOCH;
    if (epoch > e->epoch)
        return first == 0 ? KP_ERR_NONE : KP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    for (int i = 0; i < e->n; i++) {
        const idem_batch_t *b = &e->b[(e->head + i) % IDEM_BATCHES];
        if (b->first_seq == first && b->last_seq == last) {
            *dup_base = b->base_offset;
            *dup_last = b->last_offset;
            return KP_ERR_DUPLICATE_SEQUENCE_NUMBER; /* answered as success */
        }
    }
    if (e->n > 0) {
        int32_t prev = e->b[(e->head + e->n - 1) % IDEM_BATCHES].last_seq;
        int32_t expect = prev == INT32_MAX ? 0 : prev + 1;
        if (first != expect)
            return KP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    }
    return KP_ERR_NONE;
}

void kh_idem_record(kh_shard_t *ks,
                    plog_t *log,
                    const uint8_t *rec,
                    size_t len,
                    int64_t base_offset,
                    int64_t last_offset)
{
    int64_t pid;
    int16_t epoch;
    int32_t first, last;
    if (!set_ids(rec, len, &pid, &epoch, &first, &last))
        return;
    idem_part_t *p = part_state(ks, log);
    idem_pid_t *e = p ? pid_find(p, pid, true) : NULL;
    if (e)
        pid_push(e, epoch, first, last, base_offset, last_offset);
}

void kh_idem_forget(kh_shard_t *ks, plog_t *log)
{
    for (idem_part_t **pp = &ks->idem_parts; *pp; pp = &(*pp)->next) {
        idem_part_t *p = *pp;
        if (p->log != log)
            continue;
        *pp = p->next;
        for (idem_pid_t *e = p->pids, *n; e; e = n) {
            n = e->next;
            free(e);
        }
        free(p);
        return;
    }
}

void kh_idem_free_all(kh_shard_t *ks)
{
    while (ks->idem_parts)
        kh_idem_forget(ks, ks->idem_parts->log);
}
