/* kh_txn_part.c - transactions on a partition's owner: which producers have
 * a transaction open here, the last stable offset (LSO), the aborted
 * transactions that read_committed fetches return, and the commit/abort
 * control batches (markers).
 * Data path: the coordinator (kh_txn.c) registers a producer on each
 * partition AddPartitionsToTxn adds (kh_txn_part_begin) before it answers;
 * Produce accepts a transactional batch only from a registered producer with
 * its current epoch (kh_txn_produce_check) and notes the offset of its first
 * batch (kh_txn_produce_appended); EndTxn makes the coordinator append a
 * marker here (kh_txn_part_marker), and once the marker is durable the
 * transaction leaves the open set (kh_txn_part_marker_durable): an aborted one
 * joins the aborted list. Fetch(read_committed) reads below
 * kh_txn_lso() and gets kh_txn_aborted() with its data.
 * State is rebuilt from the local log (every batch header, and the key of
 * each control batch) the first time a partition is touched after a start.
 * Invariants: 1. LSO = min(HW, first offset of every open transaction);
 *             2. an open transaction leaves the open set only when its marker
 *                is durable, so the LSO never passes an unmarked transaction;
 *             3. touched only on the partition's owning shard. */
#include "core/st_crc32c.h"
#include "core/st_log.h"
#include "kafka/kh_int.h"
#include "tiering/seg.h"
#include "tiering/tier.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ATTR_TRANSACTIONAL 0x10
#define ATTR_CONTROL       0x20
#define MARKER_BYTES       78 /* a control batch with one record (see marker_build) */

typedef struct tpid {
    struct tpid *next;
    int64_t pid;
    int16_t epoch;        /* the newest epoch seen (batches, registrations, markers) */
    bool open;            /* registered by the coordinator, or data without a marker */
    bool ending;          /* its marker is written, not yet durable: no more batches */
    int64_t first_offset; /* open: offset of its first batch here, -1 before any */
} tpid_t;

typedef tier_seg_aborted_t tab_t; /* last_offset: the abort marker's offset */

struct kh_txn_part {
    struct kh_txn_part *next;
    plog_t *log; /* borrowed: identity of the partition on this shard */
    tpid_t *pids;
    tab_t *ab; /* aborted transactions, in marker order */
    int n_ab, cap_ab;
};

typedef struct kh_txn_part tpart_t;

static tpid_t *pid_get(tpart_t *p, int64_t pid, bool create)
{
    for (tpid_t *e = p->pids; e; e = e->next)
        if (e->pid == pid)
            return e;
    if (!create)
        return NULL;
    tpid_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->pid = pid;
    e->epoch = -1;
    e->first_offset = -1;
    e->next = p->pids;
    p->pids = e;
    return e;
}

static int ab_push(tpart_t *p, int64_t pid, int64_t first, int64_t last)
{
    if (p->n_ab == p->cap_ab) {
        int cap = p->cap_ab ? p->cap_ab * 2 : 8;
        tab_t *n = realloc(p->ab, (size_t)cap * sizeof(*n));
        if (!n)
            return ST_E_NOMEM;
        p->ab = n;
        p->cap_ab = cap;
    }
    p->ab[p->n_ab++] = (tab_t){pid, first, last};
    return 0;
}

/* A marker of pid at offset: the open transaction ends (commit or abort). */
static void end_txn(tpart_t *p, int64_t pid, int16_t epoch, bool commit, int64_t offset)
{
    tpid_t *e = pid_get(p, pid, true);
    if (!e)
        return;
    if (e->open && e->first_offset >= 0 && !commit && ab_push(p, pid, e->first_offset, offset) != 0)
        ST_ERROR("kafka", "out of memory recording an aborted transaction pid=%lld",
                 (long long)pid);
    e->open = false;
    e->ending = false;
    e->first_offset = -1;
    if (epoch > e->epoch)
        e->epoch = epoch;
}

/* ---- Rebuild from the log ---- */

typedef struct {
    int64_t pid, offset;
    int16_t epoch;
    bool control;
} scan_ent_t;

typedef struct {
    scan_ent_t *v;
    int n, cap;
    bool oom;
} scan_t;

static int scan_one(void *arg, const plog_batch_hdr_t *h)
{
    scan_t *s = arg;
    if (!(h->attributes & ATTR_TRANSACTIONAL) || h->producer_id < 0)
        return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        scan_ent_t *n = realloc(s->v, (size_t)cap * sizeof(*n));
        if (!n) {
            s->oom = true;
            return 1;
        }
        s->v = n;
        s->cap = cap;
    }
    s->v[s->n++] = (scan_ent_t){h->producer_id, h->base_offset, h->producer_epoch,
                                (h->attributes & ATTR_CONTROL) != 0};
    return 0;
}

/* The type of the control batch at offset: 1 commit, 0 abort, -1 unreadable. */
static int control_type(plog_t *log, int64_t offset)
{
    plog_slice_t s;
    if (plog_read(log, offset, MARKER_BYTES, &s) != 0 || s.len < PLOG_BATCH_HDR_SIZE + 9)
        goto none;
    uint8_t buf[128];
    plog_slice_t one = s;
    one.len = s.len < (int64_t)sizeof(buf) ? s.len : (int64_t)sizeof(buf);
    if (plog_slice_pread(&one, buf) != 0)
        goto none;
    plog_slice_release(&s);
    /* After the header: record length, attributes, timestamp and offset
     * deltas (varints of 0 in markers we and Kafka write: 1 byte each), key
     * length, then the key: int16 version, int16 type. */
    const uint8_t *r = buf + PLOG_BATCH_HDR_SIZE;
    size_t left = (size_t)one.len - PLOG_BATCH_HDR_SIZE;
    size_t i = 0;
    for (int field = 0; field < 5 && i < left; field++) { /* len, attrs, ts, off, keylen */
        if (field == 1) {
            i++;
            continue;
        }
        while (i < left && (r[i] & 0x80))
            i++;
        i++;
    }
    if (i + 4 > left)
        return -1;
    return ((r[i + 2] << 8) | r[i + 3]) == 1 ? 1 : 0;
none:
    if (s.seg)
        plog_slice_release(&s);
    return -1;
}

static void rebuild(tpart_t *p)
{
    scan_t s = {0};
    if (plog_scan_tail(p->log, INT_MAX, -1, scan_one, &s) != 0 || s.oom)
        ST_WARN("kafka", "transaction state rebuild incomplete dir=%s", plog_dir(p->log));
    for (int i = 0; i < s.n; i++) {
        scan_ent_t *x = &s.v[i];
        if (x->control) {
            end_txn(p, x->pid, x->epoch, control_type(p->log, x->offset) != 0, x->offset);
            continue;
        }
        tpid_t *e = pid_get(p, x->pid, true);
        if (!e)
            break;
        if (!e->open) {
            e->open = true;
            e->first_offset = x->offset;
        }
        if (x->epoch > e->epoch)
            e->epoch = x->epoch;
    }
    free(s.v);
}

static tpart_t *part_state(kh_shard_t *ks, plog_t *log)
{
    for (tpart_t *p = ks->txn_parts; p; p = p->next)
        if (p->log == log)
            return p;
    tpart_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->log = log;
    rebuild(p);
    p->next = ks->txn_parts;
    ks->txn_parts = p;
    return p;
}

/* ---- Produce ---- */

int16_t kh_txn_produce_check(kh_shard_t *ks, plog_t *log, const uint8_t *rec, size_t len)
{
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(rec, len, &h) != 0 || !(h.attributes & ATTR_TRANSACTIONAL))
        return KP_ERR_NONE;
    if (h.attributes & ATTR_CONTROL)
        return KP_ERR_INVALID_RECORD; /* markers come from the coordinator only */
    tpart_t *p = part_state(ks, log);
    tpid_t *e = p ? pid_get(p, h.producer_id, false) : NULL;
    if (!p)
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    if (e && h.producer_epoch < e->epoch)
        return KP_ERR_INVALID_PRODUCER_EPOCH; /* a zombie of a fenced producer */
    if (!e || !e->open || e->ending || h.producer_epoch != e->epoch)
        return KP_ERR_INVALID_TXN_STATE; /* the partition was not added to its transaction */
    return KP_ERR_NONE;
}

void kh_txn_produce_appended(
    kh_shard_t *ks, plog_t *log, const uint8_t *rec, size_t len, int64_t base_offset)
{
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(rec, len, &h) != 0 || !(h.attributes & ATTR_TRANSACTIONAL))
        return;
    tpart_t *p = part_state(ks, log);
    tpid_t *e = p ? pid_get(p, h.producer_id, false) : NULL;
    if (e && e->open && e->first_offset < 0)
        e->first_offset = base_offset;
}

/* ---- Coordinator side ---- */

int16_t kh_txn_part_begin(kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch)
{
    tpart_t *p = part_state(ks, log);
    tpid_t *e = p ? pid_get(p, pid, true) : NULL;
    if (!e)
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    if (epoch < e->epoch)
        return KP_ERR_INVALID_PRODUCER_EPOCH;
    e->epoch = epoch;
    if (!e->open) {
        e->open = true;
        e->first_offset = -1;
    }
    e->ending = false;
    return KP_ERR_NONE;
}

/* A control batch with one record (Kafka's EndTransactionMarker): key =
 * int16 version 0, int16 type (0 abort, 1 commit); value = int16 version 0,
 * int32 coordinator epoch. */
static void
marker_build(uint8_t b[MARKER_BYTES], int64_t pid, int16_t epoch, bool commit, int64_t now)
{
    memset(b, 0, MARKER_BYTES);
    uint8_t *p = b;
#define PUT(v, n)                                                                                  \
    do {                                                                                           \
        uint64_t x_ = (uint64_t)(v);                                                               \
        for (int i_ = (n)-1; i_ >= 0; i_--)                                                        \
            *p++ = (uint8_t)(x_ >> (8 * i_));                                                      \
    } while (0)
    PUT(0, 8);                 /* baseOffset (assigned by plog_append) */
    PUT(MARKER_BYTES - 12, 4); /* batchLength */
    PUT(0, 4);                 /* partitionLeaderEpoch */
    PUT(2, 1);                 /* magic */
    uint8_t *crc = p;
    PUT(0, 4);
    PUT(ATTR_TRANSACTIONAL | ATTR_CONTROL, 2);
    PUT(0, 4); /* lastOffsetDelta */
    PUT(now, 8);
    PUT(now, 8);
    PUT(pid, 8);
    PUT(epoch, 2);
    PUT(-1, 4); /* baseSequence */
    PUT(1, 4);  /* recordsCount */
    *p++ = 32;  /* record length 16 (zigzag varint) */
    *p++ = 0;   /* attributes */
    *p++ = 0;   /* timestampDelta */
    *p++ = 0;   /* offsetDelta */
    *p++ = 8;   /* key length 4 */
    PUT(0, 2);
    PUT(commit ? 1 : 0, 2);
    *p++ = 12; /* value length 6 */
    PUT(0, 2);
    PUT(0, 4); /* coordinator epoch */
    *p++ = 0;  /* headers */
#undef PUT
    uint32_t c = st_crc32c(0, b + PLOG_BATCH_CRC_START, MARKER_BYTES - PLOG_BATCH_CRC_START);
    crc[0] = (uint8_t)(c >> 24);
    crc[1] = (uint8_t)(c >> 16);
    crc[2] = (uint8_t)(c >> 8);
    crc[3] = (uint8_t)c;
}

int kh_txn_part_marker(
    kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch, bool commit, int64_t *offset_out)
{
    tpart_t *p = part_state(ks, log);
    tpid_t *e = p ? pid_get(p, pid, true) : NULL;
    if (!e)
        return ST_E_NOMEM;
    uint8_t b[MARKER_BYTES];
    int64_t now = part_now_ms();
    marker_build(b, pid, epoch, commit, now);
    plog_append_info_t info;
    const char *why = NULL;
    int rc = plog_append(log, b, sizeof(b), 0, now, &info, &why);
    if (rc != 0) {
        ST_WARN("kafka", "cannot write a transaction marker dir=%s: %s", plog_dir(log),
                why ? why : st_strerror(rc));
        return rc;
    }
    *offset_out = info.base_offset;
    /* Batches still in flight from the producer must not follow the marker:
     * they would belong to no transaction. */
    e->ending = e->open;
    if (epoch > e->epoch)
        e->epoch = epoch;
    return 0;
}

void kh_txn_part_marker_durable(
    kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch, bool commit, int64_t offset)
{
    tpart_t *p = part_state(ks, log);
    if (p)
        end_txn(p, pid, epoch, commit, offset);
    kh_notify_append(ks, log); /* the LSO moved: wake read_committed long polls */
}

/* ---- Fetch ---- */

int64_t kh_txn_lso(kh_shard_t *ks, plog_t *log)
{
    int64_t lso = plog_high_watermark(log);
    tpart_t *p = part_state(ks, log);
    for (tpid_t *e = p ? p->pids : NULL; e; e = e->next)
        if (e->open && e->first_offset >= 0 && e->first_offset < lso)
            lso = e->first_offset;
    return lso;
}

int kh_txn_aborted(kh_shard_t *ks,
                   plog_t *log,
                   int64_t from,
                   int64_t to,
                   kp_fetch_response_aborted_transaction_t **out,
                   int *n_out)
{
    *out = NULL;
    *n_out = 0;
    tpart_t *p = part_state(ks, log);
    tab_t *a;
    size_t n;
    if (!p || tier_seg_aborted_range(p->ab, (size_t)p->n_ab, from, to, &a, &n) != 0)
        return p ? ST_E_NOMEM : 0;
    kp_fetch_response_aborted_transaction_t *v = n ? malloc(n * sizeof(*v)) : NULL;
    if (n && !v) {
        free(a);
        return ST_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (kp_fetch_response_aborted_transaction_t){a[i].pid, a[i].first_offset};
    free(a);
    *out = v;
    *n_out = (int)n;
    return 0;
}

int kh_txn_aborted_archive(kh_shard_t *ks,
                           const char *topic,
                           int32_t partition,
                           int64_t from,
                           int64_t to,
                           kp_fetch_response_aborted_transaction_t **io,
                           int *n_io)
{
    tier_seg_aborted_t *a = NULL;
    size_t n = 0;
    if (!ks->tier || tier_aborted(ks->tier, topic, partition, from, to, &a, &n) != 0)
        return ks->tier ? ST_E_NOMEM : 0;
    if (n == 0)
        return 0;
    kp_fetch_response_aborted_transaction_t *v =
        realloc(*io, (size_t)(*n_io + (int)n) * sizeof(*v));
    if (!v) {
        free(a);
        return ST_E_NOMEM;
    }
    /* Markers still in the local log are in both lists: once each (a
     * duplicate would make the client skip a later transaction of the
     * producer). */
    int k = *n_io;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (int j = 0; j < *n_io && !dup; j++)
            dup = v[j].producer_id == a[i].pid && v[j].first_offset == a[i].first_offset;
        if (!dup)
            v[k++] = (kp_fetch_response_aborted_transaction_t){a[i].pid, a[i].first_offset};
    }
    free(a);
    *io = v;
    *n_io = k;
    return 0;
}

int kh_tier_aborted(
    void *arg, plog_t *log, int64_t from, int64_t to, tier_seg_aborted_t **out, size_t *n_out)
{
    (void)arg;
    *out = NULL;
    *n_out = 0;
    kh_shard_t *ks = kh_shard_of(rt_current());
    tpart_t *p = ks ? part_state(ks, log) : NULL;
    if (!p)
        return ks ? ST_E_NOMEM : 0;
    int n = 0;
    for (int i = 0; i < p->n_ab; i++)
        n += p->ab[i].last_offset >= from && p->ab[i].last_offset < to;
    if (n == 0)
        return 0;
    tier_seg_aborted_t *v = malloc((size_t)n * sizeof(*v));
    if (!v)
        return ST_E_NOMEM;
    size_t k = 0;
    for (int i = 0; i < p->n_ab; i++)
        if (p->ab[i].last_offset >= from && p->ab[i].last_offset < to)
            v[k++] =
                (tier_seg_aborted_t){p->ab[i].pid, p->ab[i].first_offset, p->ab[i].last_offset};
    *out = v;
    *n_out = k;
    return 0;
}

/* ---- Lifetime ---- */

void kh_txn_part_forget(kh_shard_t *ks, plog_t *log)
{
    for (tpart_t **pp = &ks->txn_parts; *pp; pp = &(*pp)->next) {
        tpart_t *p = *pp;
        if (p->log != log)
            continue;
        *pp = p->next;
        for (tpid_t *e = p->pids, *n; e; e = n) {
            n = e->next;
            free(e);
        }
        free(p->ab);
        free(p);
        return;
    }
}

void kh_txn_part_free_all(kh_shard_t *ks)
{
    while (ks->txn_parts)
        kh_txn_part_forget(ks, ks->txn_parts->log);
}
