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
 * State is rebuilt the first time a partition is touched after a start:
 * from the partition's last snapshot (txn.snapshot in its directory: the
 * state at a durable offset O, written on the thread pool about every
 * strata.transaction.state.snapshot.bytes of log, tmp + fsync + rename) and
 * the log from O on (every batch header, and the key of each control batch);
 * without a usable snapshot, from the whole local log. Aborted transactions
 * whose marker is below the local log start are dropped (retention,
 * DeleteRecords).
 * Invariants: 1. LSO = max(log start, min(HW, first offset of every open
 *                transaction));
 *             2. an open transaction leaves the open set only when its marker
 *                is durable, so the LSO never passes an unmarked transaction;
 *             3. a snapshot at O holds exactly the state the log below O
 *                gives (markers below O applied, batches at or past O not);
 *             4. touched only on the partition's owning shard. */
#include "core/st_crc32c.h"
#include "core/st_fs.h"
#include "core/st_log.h"
#include "core/st_metrics.h"
#include "kafka/kh_int.h"
#include "tiering/seg.h"
#include "tiering/tier.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ATTR_TRANSACTIONAL 0x10
#define ATTR_CONTROL       0x20
#define MARKER_BYTES       78 /* a control batch with one record (see marker_build) */

typedef struct tpid {
    struct tpid *next;
    int64_t pid;
    int16_t epoch;         /* the newest epoch seen (batches, registrations, markers) */
    bool open;             /* registered by the coordinator, or data without a marker */
    bool ending;           /* its marker is written, not yet durable: no more batches */
    int64_t first_offset;  /* open: offset of its first batch here, -1 before any */
    int64_t marker_offset; /* ending: where its marker is */
    bool marker_commit;    /* ending: a commit marker */
} tpid_t;

typedef tier_seg_aborted_t tab_t; /* last_offset: the abort marker's offset */

/* Shared by a partition and its snapshot write in flight (either may end first). */
typedef struct {
    int refs;
    bool busy; /* a write is in flight */
} snapref_t;

struct kh_txn_part {
    struct kh_txn_part *next;
    plog_t *log; /* borrowed: identity of the partition on this shard */
    tpid_t *pids;
    tab_t *ab; /* aborted transactions, in marker order */
    int n_ab, cap_ab;
    snapref_t *snap;
    int64_t snap_offset; /* the last snapshot's O (or where the rebuild scan began) */
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
    st_metric_add(ST_M_TXN_ABORTED_KEPT, 1);
    return 0;
}

/* Drop the aborted transactions whose marker is below the local log start:
 * their data is gone (or archived: the archive's txn tables answer for it). */
static void ab_prune(tpart_t *p)
{
    int64_t start = plog_local_start_offset(p->log);
    int k = 0;
    while (k < p->n_ab && p->ab[k].last_offset < start)
        k++;
    if (k == 0)
        return;
    memmove(p->ab, p->ab + k, (size_t)(p->n_ab - k) * sizeof(*p->ab));
    p->n_ab -= k;
    st_metric_add(ST_M_TXN_ABORTED_KEPT, -k);
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

/* Forget every producer and aborted transaction of p. */
static void state_clear(tpart_t *p)
{
    for (tpid_t *e = p->pids, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    p->pids = NULL;
    st_metric_add(ST_M_TXN_ABORTED_KEPT, -p->n_ab);
    free(p->ab);
    p->ab = NULL;
    p->n_ab = p->cap_ab = 0;
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
    int64_t from; /* batches below it are in the snapshot */
    int64_t seen; /* headers read */
} scan_t;

static int scan_one(void *arg, const plog_batch_hdr_t *h)
{
    scan_t *s = arg;
    s->seen++;
    if (!(h->attributes & ATTR_TRANSACTIONAL) || h->producer_id < 0 || h->base_offset < s->from)
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

/* ---- Snapshots ----
 * txn.snapshot: "STXS", u32 version 1, i64 O, u32 n_pids, u32 n_aborted,
 * n_pids x (i64 pid, i16 epoch, u8 open, i64 first_offset), n_aborted x
 * (i64 pid, i64 first_offset, i64 marker offset), u32 CRC-32C of all before;
 * big-endian. */

#define SNAP_NAME    "txn.snapshot"
#define SNAP_MAGIC   0x53545853u
#define SNAP_VERSION 1
#define SNAP_HEAD    24
#define SNAP_PID     19
#define SNAP_AB      24

static uint8_t *put(uint8_t *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        *b++ = (uint8_t)(v >> (8 * i));
    return b;
}

static uint64_t get(const uint8_t **b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | *(*b)++;
    return v;
}

static int ab_cmp(const void *a, const void *b)
{
    int64_t x = ((const tab_t *)a)->last_offset, y = ((const tab_t *)b)->last_offset;
    return x < y ? -1 : x > y;
}

/* The state the log below o gives (invariant 3), encoded; NULL when out of
 * memory. o is at most the durable end: every marker below it is durable,
 * though its marker_durable may not have run yet (ending, applied here). */
static uint8_t *snap_encode(const tpart_t *p, int64_t o, size_t *len)
{
    int n_pids = 0, n_ab = 0;
    for (const tpid_t *e = p->pids; e; e = e->next, n_pids++)
        n_ab += e->open && e->ending && e->first_offset >= 0 && e->first_offset < o &&
                e->marker_offset < o && !e->marker_commit;
    for (int i = 0; i < p->n_ab; i++)
        n_ab += p->ab[i].last_offset < o;
    tab_t *ab = n_ab ? malloc((size_t)n_ab * sizeof(*ab)) : NULL;
    size_t n = SNAP_HEAD + (size_t)n_pids * SNAP_PID + (size_t)n_ab * SNAP_AB + 4;
    uint8_t *buf = malloc(n);
    if (!buf || (n_ab && !ab)) {
        free(ab);
        free(buf);
        return NULL;
    }
    int k = 0;
    for (int i = 0; i < p->n_ab; i++)
        if (p->ab[i].last_offset < o)
            ab[k++] = p->ab[i];
    uint8_t *b = put(buf, SNAP_MAGIC, 4);
    b = put(b, SNAP_VERSION, 4);
    b = put(b, (uint64_t)o, 8);
    b = put(b, (uint64_t)n_pids, 4);
    b = put(b, (uint64_t)n_ab, 4);
    for (const tpid_t *e = p->pids; e; e = e->next) {
        bool open = e->open && e->first_offset >= 0 && e->first_offset < o;
        if (open && e->ending && e->marker_offset < o) {
            if (!e->marker_commit)
                ab[k++] = (tab_t){e->pid, e->first_offset, e->marker_offset};
            open = false;
        }
        b = put(b, (uint64_t)e->pid, 8);
        b = put(b, (uint64_t)(uint16_t)e->epoch, 2);
        b = put(b, open, 1);
        b = put(b, (uint64_t)(open ? e->first_offset : -1), 8);
    }
    if (n_ab > 1) /* ab is NULL when there is none: qsort must not get it */
        qsort(ab, (size_t)n_ab, sizeof(*ab), ab_cmp);
    for (int i = 0; i < n_ab; i++) {
        b = put(b, (uint64_t)ab[i].pid, 8);
        b = put(b, (uint64_t)ab[i].first_offset, 8);
        b = put(b, (uint64_t)ab[i].last_offset, 8);
    }
    free(ab);
    put(b, st_crc32c(0, buf, n - 4), 4);
    *len = n;
    return buf;
}

/* Load txn.snapshot into the empty state of p: its O, or -1 when there is
 * none usable (missing, torn, or not within the local log: segments below
 * it were deleted, so markers between it and the local start are unknown). */
static int64_t snap_load(tpart_t *p)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" SNAP_NAME, plog_dir(p->log));
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len >= SNAP_HEAD + 4 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len)) &&
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf)
        return -1;
    const uint8_t *b = buf;
    uint32_t magic = (uint32_t)get(&b, 4), version = (uint32_t)get(&b, 4);
    int64_t o = (int64_t)get(&b, 8);
    uint64_t n_pids = get(&b, 4), n_ab = get(&b, 4);
    const uint8_t *c = buf + len - 4;
    bool ok = magic == SNAP_MAGIC && version == SNAP_VERSION &&
              (uint64_t)len == SNAP_HEAD + n_pids * SNAP_PID + n_ab * SNAP_AB + 4 &&
              get(&c, 4) == st_crc32c(0, buf, (size_t)len - 4) &&
              o >= plog_local_start_offset(p->log) && o <= plog_end_offset(p->log);
    for (uint64_t i = 0; ok && i < n_pids; i++) {
        int64_t pid = (int64_t)get(&b, 8);
        int16_t epoch = (int16_t)get(&b, 2);
        bool open = get(&b, 1) != 0;
        int64_t first = (int64_t)get(&b, 8);
        tpid_t *e = pid_get(p, pid, true);
        ok = e != NULL;
        if (e) {
            e->epoch = epoch;
            e->open = open && first >= 0;
            e->first_offset = e->open ? first : -1;
        }
    }
    for (uint64_t i = 0; ok && i < n_ab; i++) {
        int64_t pid = (int64_t)get(&b, 8), first = (int64_t)get(&b, 8);
        ok = ab_push(p, pid, first, (int64_t)get(&b, 8)) == 0;
    }
    free(buf);
    if (!ok) {
        ST_WARN("kafka", "transaction state snapshot not used dir=%s", plog_dir(p->log));
        state_clear(p);
        return -1;
    }
    return o;
}

typedef struct {
    uv_work_t work;
    snapref_t *ref;
    char path[PATH_MAX];
    uint8_t *buf;
    size_t len;
    int rc;
} snapjob_t;

static void snap_work(uv_work_t *w)
{
    snapjob_t *j = w->data;
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        j->rc = -errno;
        return;
    }
    for (size_t off = 0; off < j->len && j->rc == 0;) {
        ssize_t n = write(fd, j->buf + off, j->len - off);
        if (n < 0 && errno != EINTR)
            j->rc = -errno;
        off += n > 0 ? (size_t)n : 0;
    }
    if (j->rc == 0 && fdatasync(fd) != 0)
        j->rc = -errno;
    close(fd);
    if (j->rc == 0 && rename(tmp, j->path) != 0)
        j->rc = -errno;
    if (j->rc == 0)
        j->rc = st_fsync_parent(j->path);
    else
        unlink(tmp);
}

static void snap_ref_put(snapref_t *r)
{
    if (r && --r->refs == 0)
        free(r);
}

static void snap_after(uv_work_t *w, int status)
{
    snapjob_t *j = w->data;
    j->ref->busy = false;
    snap_ref_put(j->ref);
    if (status == 0 && j->rc == 0)
        st_metric_add(ST_M_TXN_STATE_SNAPSHOTS, 1);
    else
        ST_WARN("kafka", "cannot write %s: %s", j->path, st_strerror(status ? status : j->rc));
    free(j->buf);
    free(j);
}

/* Save p's state at the durable end o (unless a write is in flight). */
static void snap_now(kh_shard_t *ks, tpart_t *p, int64_t o)
{
    if (ks->ctx->txn_snapshot_bytes <= 0 || !p->snap || p->snap->busy || o <= p->snap_offset)
        return;
    snapjob_t *j = calloc(1, sizeof(*j));
    if (!j ||
        (size_t)snprintf(j->path, sizeof(j->path), "%s/" SNAP_NAME, plog_dir(p->log)) >=
            sizeof(j->path) ||
        !(j->buf = snap_encode(p, o, &j->len))) {
        free(j);
        return;
    }
    j->ref = p->snap;
    j->work.data = j;
    if (uv_queue_work(rt_shard_loop(ks->sh), &j->work, snap_work, snap_after) != 0) {
        free(j->buf);
        free(j);
        return;
    }
    p->snap->refs++;
    p->snap->busy = true;
    p->snap_offset = o;
}

/* Save p's state when about strata.transaction.state.snapshot.bytes of log
 * were written since the last snapshot (the bytes estimated from the log's
 * average batch size per offset). */
static void snap_maybe(kh_shard_t *ks, tpart_t *p)
{
    int64_t every = ks->ctx->txn_snapshot_bytes;
    int64_t o = plog_durable_offset(p->log);
    if (every <= 0 || o <= p->snap_offset)
        return;
    int64_t span = plog_end_offset(p->log) - plog_local_start_offset(p->log);
    double per = span > 0 ? (double)plog_size_bytes(p->log) / (double)span : 0;
    if ((double)(o - p->snap_offset) * per >= (double)every)
        snap_now(ks, p, o);
}

static void rebuild(tpart_t *p)
{
    int64_t from = snap_load(p);
    scan_t s = {.from = from};
    int rc = from >= 0 ? plog_scan_from(p->log, from, scan_one, &s)
                       : plog_scan_tail(p->log, INT_MAX, -1, scan_one, &s);
    st_metric_add(ST_M_TXN_REBUILD_BATCHES, s.seen);
    p->snap_offset = from >= 0 ? from : plog_local_start_offset(p->log);
    if (rc != 0 || s.oom)
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
        if (p->log == log) {
            ab_prune(p);
            return p;
        }
    tpart_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->log = log;
    if ((p->snap = calloc(1, sizeof(*p->snap))))
        p->snap->refs = 1;
    rebuild(p);
    ab_prune(p);
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
    e->marker_offset = info.base_offset;
    e->marker_commit = commit;
    if (epoch > e->epoch)
        e->epoch = epoch;
    return 0;
}

void kh_txn_part_marker_durable(
    kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch, bool commit, int64_t offset)
{
    tpart_t *p = part_state(ks, log);
    if (p) {
        end_txn(p, pid, epoch, commit, offset);
        snap_maybe(ks, p);
    }
    kh_notify_append(ks, log); /* the LSO moved: wake read_committed long polls */
}

/* ---- Fetch ---- */

int64_t kh_txn_lso(kh_shard_t *ks, plog_t *log)
{
    int64_t lso = plog_high_watermark(log);
    tpart_t *p = part_state(ks, log);
    if (p)
        snap_maybe(ks, p);
    for (tpid_t *e = p ? p->pids : NULL; e; e = e->next)
        if (e->open && e->first_offset >= 0 && e->first_offset < lso)
            lso = e->first_offset;
    /* DeleteRecords past an open transaction's first batch (as Kafka) */
    int64_t start = plog_start_offset(log);
    return lso > start ? lso : start;
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
    /* Once [from, to) is archived, local retention may delete it: an open
     * transaction begun there would then, after a restart, be known only
     * from a later batch (the LSO and the archived txn table would get a
     * later first offset). A snapshot at or past to keeps its first offset. */
    bool open_below = false;
    for (const tpid_t *e = p->pids; e && !open_below; e = e->next)
        open_below = e->open && e->first_offset >= 0 && e->first_offset < to;
    if (open_below && p->snap_offset < to)
        snap_now(ks, p, plog_durable_offset(log));
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
        state_clear(p);
        snap_ref_put(p->snap); /* a write in flight frees it when done */
        free(p);
        return;
    }
}

void kh_txn_part_free_all(kh_shard_t *ks)
{
    while (ks->txn_parts)
        kh_txn_part_forget(ks, ks->txn_parts->log);
}
