/* tier_rd.c - reading offloaded data back: hydration with a chunk cache,
 * shared downloads and read-ahead.
 * Data path: a Fetch below the log's first local offset (plog_read answers
 * ST_E_OFFLOADED) -> tier_read(): the index locates the chunk (one zstd frame
 * of whole batches) holding the offset -> the chunk comes from, in order:
 *   0. a download finished moments ago, still in memory (the last
 *      depth + 1 read-ahead windows' worth per shard),
 *   1. a download already queued or running that covers it (the read waits
 *      with the others: one GET per chunk however many readers want it),
 *   2. the on-disk chunk cache (tier_cache.c, verified by CRC-32C); for a
 *      sequential reader the next RD_CACHE_AHEAD cached chunks are read
 *      while it is served (a warm replay does not wait for the disk per
 *      fetch),
 *   3. a new ranged GET: for a sequential reader a read-ahead window of
 *      consecutive chunks of one object (2 MiB, doubling up to readahead_bytes), else
 *      the chunk;
 * -> each downloaded chunk is checked against the index's CRC-32C on the
 * thread pool (and, once the waiters have their data, written to the cache
 * there) -> the frame is decoded (zstd checksum,
 * offsets) on the thread pool -> the batches from the one holding the offset,
 * up to max_bytes (at least one batch), go back to the caller; when the
 * chunk came from a download in memory, the following chunks of that
 * download are decoded too while they fit in max_bytes (a replay moves
 * several chunks per fetch).
 *
 * Read-ahead: a partition read again at or just after where its last read
 * ended is sequential. Its reader state keeps up to RA_DEPTH windows
 * downloading or downloaded ahead of the chunk being read; a window is found
 * by walking the index chunk by chunk from the read-ahead frontier
 * (idx_lookup_offset of the next offset), skipping chunks already cached or
 * in flight, and ends at readahead_bytes or at the end of the object, since
 * one ranged GET covers [first.obj_pos, last.obj_pos + last.obj_len) of one
 * object. So a replay keeps the store busy and runs at its throughput. The
 * walk stops once h->depth windows are ahead of the reader (the one it reads
 * counts) unless a parked read waits beyond the frontier: a walk that ran
 * ahead of the reader would fill the cache with chunks evicted before they are
 * read, and download them again. The depth is RD_DEPTH (3) when the chunk
 * cache holds twice that many windows (RD_DEPTH_SMALL, 2, otherwise): once
 * windows grow to whole objects, a reader in object N has the GETs of objects
 * N+1 and N+2 queued or running, so the store never idles while the reader
 * decodes and serves N, or while N+1's chunks are verified and cached (with
 * depth 2 the GET of N+1 started only when the reader reached N, after N's GET
 * ended: one GET at a time, and the store idle in between). A window queued
 * while two others are still ahead of the reader (which depth 2 never does)
 * counts in prefetch_windows.
 *
 * Read states (rd_t):
 *   LOOKUP --idx answer--> serve(): a download covers it --> WAIT
 *                                   read ahead (loaded) --> DECODE
 *                                   cached or read ahead (loading) --> CACHE_GET --hit--> DECODE
 *                                                        --miss/corrupt--> serve() (no cache)
 *                                   sequential, frontier not past it --> PARKED
 *                                   else new demand download --> WAIT
 *   PARKED --read-ahead window created--> serve() (no parking)
 *   WAIT --download verified--> DECODE --> answered (freed)
 *   WAIT/PARKED --deadline--> answered with no data (the download goes on)
 *   any --error / closing--> answered with the error
 * Download states (dl_t): QUEUED --slot free (max_downloads)--> GET
 *   --bytes--> SPLIT (thread pool: CRC-32C per chunk) --> done, waiters
 *   decode from its buffer, then CACHE (thread pool: the verified chunks'
 *   cache files, holding a reference); GET error / cancel --> waiters get it.
 *
 * Invariants: 1. at most max_downloads GETs of this shard run at once; demand
 *                downloads start before queued read-ahead;
 *             2. a chunk key (object key, obj_pos) is covered by at most one
 *                queued or running download;
 *             3. no read waits past its deadline: a slow download never holds
 *                a fetch longer than its max.wait.ms;
 *             4. everything runs on the shard's loop except the split and
 *                decode work and the cache's file I/O: on the hydration pool
 *                (strata.hydration.threads, core/st_pool.h), where uploads'
 *                compression never queues ahead of them. */
#include "core/part.h"
#include "core/plog.h"
#include "core/st_crc32c.h"
#include "core/st_log.h"
#include "core/st_metrics.h"
#include "tiering/cache.h"
#include "tiering/obj.h"
#include "tiering/seg.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RD_MAX_DOWNLOADS   4
#define RD_READAHEAD_BYTES (16u << 20)
#define RD_FIRST_WINDOW    (2u << 20) /* windows start small and double up to ra_bytes */
#define RD_DEPTH           3          /* read-ahead windows ahead of the reader */
#define RD_DEPTH_SMALL     2          /* ... when the cache holds fewer than 2 * RD_DEPTH windows */
#define RD_MAX_WINDOWS     8          /* remembered windows per partition */
#define RD_MAX_SKIPS       64         /* lookups of cached chunks per read-ahead walk */
#define RD_CACHE_AHEAD     2          /* cached chunks read ahead of a sequential reader */
#define RD_CACHE_AHEAD_MAX 16         /* ... in all on a shard (each one chunk in memory) */
#define RD_SWEEP_MS        10
/* Finished downloads kept in memory: (h->depth + 1) * ra_bytes per shard. */
#define RD_MAX_HOPS 1024 /* reads past empty batches before answering them */

typedef struct tier_hyd hyd_t;
typedef struct dl dl_t;
typedef struct rp rp_t;
typedef struct rd rd_t;
typedef struct ahead ahead_t;

typedef enum { RD_LOOKUP, RD_PARKED, RD_WAIT, RD_CACHE_GET, RD_DECODE } rd_state_t;

struct rd {
    rd_t *next; /* in dl->waiters or rp->parked */
    hyd_t *h;
    rp_t *rp;
    rd_state_t state;
    tier_read_cb cb;
    void *arg;
    int64_t offset;
    int64_t max_bytes;
    int64_t deadline_ms;
    uint64_t start_ns; /* uv_hrtime() of the request: the hydration latency metric */
    bool is_sequential;
    char key[IDX_MAX_KEY_LEN + 1]; /* object key */
    tier_seg_chunk_t chunk;
    dl_t *dl;            /* DECODE from a download: holds a reference */
    size_t dl_index;     /* the chunk's index in dl->chunks */
    int64_t served_last; /* last offset answered (later chunks of dl may follow) */
    st_pool_work_t work;
    const uint8_t *frame; /* borrowed from dl->data, or owned_frame */
    size_t frame_len;
    uint8_t *owned_frame; /* owned: from the cache */
    uint8_t *raw;         /* owned: decoded batches */
    size_t raw_len;
    size_t from, len; /* the part of raw to return */
    int err;
    bool has_records; /* the part to return holds a record (not only empty batches) */
    int hops;         /* reads again past answers of empty batches only (hop()) */
    uint8_t *held;    /* owned: the empty batches of the first answer, served if nothing follows */
    size_t held_len;
};

struct dl {
    dl_t *next; /* h->dls, queued and running, in creation order */
    hyd_t *h;
    char key[IDX_MAX_KEY_LEN + 1];
    tier_seg_chunk_t *chunks; /* owned: contiguous in the object */
    size_t n;
    uint64_t pos, len; /* the range [pos, pos + len) */
    bool is_readahead;
    bool is_running;
    bool is_listed; /* in h->dls */
    obj_req_t *req; /* while the GET runs */
    rd_t *waiters;
    uint8_t *data; /* owned: the range */
    size_t data_len;
    int *chunk_err;            /* owned: per chunk, after SPLIT */
    hyd_cache_file_t *files;   /* owned: per chunk, written after SPLIT */
    st_pool_work_t work;       /* SPLIT */
    st_pool_work_t cache_work; /* the cache files, after the waiters were answered */
    int refs; /* 1 while listed + one per decode reading data + one while caching */
};

/* A cached chunk read into memory ahead of its sequential reader (warm
 * replay): the reader's next fetch takes it instead of waiting for the disk. */
struct ahead {
    ahead_t *next; /* rp->ahead, in the order of the chunks */
    hyd_t *h;
    rp_t *rp; /* NULL once dropped while its read runs (freed when it ends) */
    char key[IDX_MAX_KEY_LEN + 1];
    uint64_t pos; /* the chunk (object key, obj_pos) */
    bool is_loading;
    uint8_t *data; /* owned once loaded */
    size_t len;
    uint32_t crc; /* the data's CRC-32C, verified by the cache */
    rd_t *waiter; /* the read of this chunk that came while it was loading */
};

/* Reader state of one partition on this shard. */
struct rp {
    rp_t *next;
    hyd_t *h;
    char topic[IDX_MAX_TOPIC_LEN + 1];
    int32_t partition;
    bool has_last;
    int64_t last_offset;     /* offset of the last read */
    int64_t last_chunk_last; /* last offset of its chunk */
    /* read-ahead */
    int64_t ra_next;                  /* first offset no window covers; -1 = not started */
    bool ra_busy;                     /* a walk of the index is running */
    bool ra_end;                      /* the walk reached the end of the archive at ra_next */
    int64_t win_last[RD_MAX_WINDOWS]; /* last offsets of the windows created */
    int n_win;
    int skips;
    char wkey[IDX_MAX_KEY_LEN + 1]; /* the window being built */
    tier_seg_chunk_t *wchunks;      /* owned */
    size_t wn, wcap;
    uint64_t wbytes;
    uint64_t wtarget; /* bytes of the window being built (grows from RD_FIRST_WINDOW) */
    rd_t *parked;
    ahead_t *ahead; /* owned: cached chunks read ahead (RD_CACHE_AHEAD at most) */
    int n_ahead;
};

struct tier_hyd {
    tier_shard_t *ts;
    hyd_cache_t *cache; /* owned; NULL = no cache */
    unsigned max_downloads;
    uint64_t ra_bytes;
    int depth; /* read-ahead windows ahead of a sequential reader */
    dl_t *dls;
    int running;
    rp_t *rps; /* owned list */
    uv_timer_t sweep;
    bool is_sweeping;
    dl_t **recent; /* owned refs: finished downloads kept in memory, oldest first */
    size_t n_recent, cap_recent;
    uint64_t recent_bytes;
    int n_ahead; /* ahead_t of the shard, dropped ones still loading included */
    int pending; /* lookups, thread pool work, running GETs, reads waiting for the cache */
    bool closing;
    bool cache_closed;
    /* The cache's LRU is rebuilt from its files on the thread pool at start;
     * until then reads wait here, so that a warm cache is not bypassed by
     * the first fetches after a restart (owned list, newest first). */
    bool cache_ready;
    struct lookup *cache_waiters;
    tier_read_closed_cb closed_cb;
    void *closed_arg;
};

static void serve(rd_t *r, bool may_park, bool may_cache);
static void ra_walk(rp_t *rp);
static void check_closed(hyd_t *h);
static void pump(hyd_t *h);
static void unpark(rp_t *rp);

static void chunk_key(const char *key, uint64_t pos, char *out, size_t len)
{
    snprintf(out, len, "%s@%" PRIu64, key, pos);
}

static void sync_cache_stats(hyd_t *h)
{
    if (!h->cache)
        return;
    hyd_cache_stats_t cs;
    hyd_cache_stats(h->cache, &cs);
    h->ts->stats.cache_evictions = cs.evictions;
    h->ts->stats.cache_corrupt = cs.corrupt;
}

/* ---- Answering ---- */

static void answer(rd_t *r, int status)
{
    hyd_t *h = r->h;
    uint8_t *data = NULL;
    size_t len = 0;
    if (r->held && status == ST_E_RANGE) {
        /* Nothing follows the empty batches read first: answer those. */
        free(r->raw);
        r->raw = r->held;
        r->raw_len = r->len = r->held_len;
        r->from = 0;
        r->held = NULL;
        status = 0;
    }
    free(r->held);
    if (status == 0 && r->raw) {
        /* Only the part asked for (decode_work moved it to the front and
         * released the rest): the fetch holds it until its response is sent. */
        data = r->raw;
        len = r->len;
        h->ts->stats.hydrated_bytes += (int64_t)len;
        h->ts->stats_hydrated_bytes += (int64_t)len;
    } else {
        free(r->raw);
    }
    free(r->owned_frame);
    r->cb(r->arg, status, data, len);
    free(r);
}

/* ---- Decode (thread pool) ---- */

/* After the chunk r asked for, append whole batches of the following chunks
 * of the same download (already in memory and verified) while they fit in
 * max_bytes: a replay then moves several chunks per fetch, not one. */
static void decode_more(rd_t *r)
{
    const dl_t *d = r->dl;
    for (size_t i = r->dl_index + 1; i < d->n && (int64_t)r->len < r->max_bytes; i++) {
        const tier_seg_chunk_t *c = &d->chunks[i];
        if (d->chunk_err[i] || c->first_offset != r->served_last + 1)
            return;
        uint8_t *raw;
        size_t raw_len, take = 0;
        if (tier_seg_chunk_decode(d->data + (c->obj_pos - d->pos), c->obj_len, c,
                                  TIER_SEG_MAX_FRAME_RAW, &raw, &raw_len) != 0)
            return;
        plog_batch_hdr_t hd;
        int64_t last = r->served_last;
        while (take < raw_len && plog_batch_parse_hdr(raw + take, raw_len - take, &hd) == 0) {
            size_t blen = (size_t)hd.batch_length + PLOG_BATCH_LOG_OVERHEAD;
            if (blen > raw_len - take || (int64_t)(r->len + take + blen) > r->max_bytes)
                break;
            take += blen;
            last = hd.base_offset + hd.last_offset_delta;
        }
        uint8_t *n = take ? realloc(r->raw, r->from + r->len + take) : NULL;
        if (n) {
            memcpy(n + r->from + r->len, raw, take);
            r->raw = n;
            r->len += take;
            r->served_last = last;
        }
        free(raw);
        if (!n || take < raw_len)
            return;
    }
}

static void decode_work(st_pool_work_t *w)
{
    rd_t *r = w->data;
    r->err = tier_seg_chunk_decode(r->frame, r->frame_len, &r->chunk, TIER_SEG_MAX_FRAME_RAW,
                                   &r->raw, &r->raw_len);
    if (r->err)
        return;
    size_t pos = 0;
    plog_batch_hdr_t hd;
    r->from = SIZE_MAX;
    while (pos < r->raw_len && plog_batch_parse_hdr(r->raw + pos, r->raw_len - pos, &hd) == 0) {
        size_t blen = (size_t)hd.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        if (blen > r->raw_len - pos)
            break;
        if (r->from == SIZE_MAX && hd.base_offset + hd.last_offset_delta >= r->offset)
            r->from = pos;
        if (r->from != SIZE_MAX) {
            if (pos > r->from && (int64_t)(pos + blen - r->from) > r->max_bytes)
                break;
            r->len = pos + blen - r->from;
        }
        pos += blen;
    }
    if (r->from == SIZE_MAX) {
        r->err = ST_E_RANGE;
        r->from = 0;
        return;
    }
    r->served_last = r->chunk.last_offset;
    if (r->dl && pos == r->raw_len)
        decode_more(r);
    for (pos = r->from; !r->has_records && pos + PLOG_BATCH_HDR_SIZE <= r->from + r->len;
         pos += (size_t)hd.batch_length + PLOG_BATCH_LOG_OVERHEAD) {
        if (plog_batch_parse_hdr(r->raw + pos, r->raw_len - pos, &hd) != 0 || hd.batch_length < 0)
            break;
        r->has_records = hd.records_count != 0;
    }
    /* The answer keeps only [from, from + len): moved to the front and the
     * rest released here, not on the loop (answer() and hop() take it as is). */
    if (r->from > 0)
        memmove(r->raw, r->raw + r->from, r->len);
    if (r->len < r->raw_len) {
        uint8_t *shrunk = realloc(r->raw, r->len ? r->len : 1);
        if (shrunk)
            r->raw = shrunk;
    }
    r->from = 0;
    r->raw_len = r->len;
}

static void dl_unref(dl_t *d);

static int hop(rd_t *r);

static void decode_done(st_pool_work_t *w, int status)
{
    rd_t *r = w->data;
    hyd_t *h = r->h;
    int err = status ? status : r->err;
    if (err)
        ST_WARN("tier", "cannot read remote chunk key=%s offset=%" PRId64 ": %s", r->key, r->offset,
                st_strerror(err));
    if (r->dl)
        dl_unref(r->dl);
    r->dl = NULL;
    if (!err && r->rp && r->served_last > r->rp->last_chunk_last)
        r->rp->last_chunk_last = r->served_last; /* the next read follows on: sequential */
    if (!err && !r->has_records && r->rp && r->hops < RD_MAX_HOPS && !h->closing && hop(r) == 0) {
        h->pending--;
        return;
    }
    answer(r, err);
    h->pending--;
    check_closed(h);
}

static void decode(rd_t *r, const uint8_t *frame, size_t len)
{
    st_metric_observe_ns(ST_H_HYDRATION_LATENCY, 0, uv_hrtime() - r->start_ns);
    r->state = RD_DECODE;
    r->frame = frame;
    r->frame_len = len;
    r->work.data = r;
    int rc = st_pool_queue(r->h->ts->hyd_port, r->h->ts->loop, &r->work, decode_work, decode_done);
    if (rc != 0) {
        if (r->dl)
            dl_unref(r->dl);
        r->dl = NULL;
        answer(r, rc);
        return;
    }
    r->h->pending++;
}

/* ---- Deadlines ---- */

/* Answer (with no data) every waiting read whose deadline passed. */
static int expire(rd_t **list, int64_t now)
{
    int left = 0;
    for (rd_t **p = list; *p;) {
        rd_t *r = *p;
        if (r->deadline_ms <= now) {
            *p = r->next;
            answer(r, 0);
        } else {
            left++;
            p = &r->next;
        }
    }
    return left;
}

static void on_sweep(uv_timer_t *t)
{
    hyd_t *h = t->data;
    int64_t now = part_now_ms();
    int left = 0;
    for (dl_t *d = h->dls; d; d = d->next)
        left += expire(&d->waiters, now);
    for (rp_t *rp = h->rps; rp; rp = rp->next)
        left += expire(&rp->parked, now);
    if (!left) {
        uv_timer_stop(&h->sweep);
        h->is_sweeping = false;
    }
}

static void sweep_on(hyd_t *h)
{
    if (!h->is_sweeping && !h->closing) {
        h->is_sweeping = true;
        uv_timer_start(&h->sweep, on_sweep, RD_SWEEP_MS, RD_SWEEP_MS);
    }
}

/* ---- Downloads ---- */

static void dl_free(dl_t *d)
{
    for (size_t i = 0; d->files && i < d->n; i++)
        hyd_cache_file_fini(&d->files[i]);
    free(d->files);
    free(d->chunk_err);
    free(d->chunks);
    free(d->data);
    free(d);
}

static void dl_unref(dl_t *d)
{
    if (--d->refs == 0)
        dl_free(d);
}

static void dl_unlist(dl_t *d)
{
    hyd_t *h = d->h;
    for (dl_t **p = &h->dls; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    d->is_listed = false;
}

/* The download is over: answer its waiters with err, drop it from the list. */
static void dl_fail(dl_t *d, int err)
{
    hyd_t *h = d->h;
    if (err == ST_E_CANCELED)
        err = ST_E_CLOSED;
    dl_unlist(d);
    for (rd_t *r = d->waiters, *next; r; r = next) {
        next = r->next;
        answer(r, err);
    }
    d->waiters = NULL;
    if (err != ST_E_CLOSED)
        h->ts->stats.download_errors++;
    dl_unref(d);
}

/* Index in d->chunks of the chunk at pos of object key, or d->n. */
static size_t dl_chunk(const dl_t *d, const char *key, uint64_t pos)
{
    if (pos < d->pos || pos >= d->pos + d->len || strcmp(d->key, key) != 0)
        return d->n;
    size_t i = 0;
    while (i < d->n && d->chunks[i].obj_pos != pos)
        i++;
    return i;
}

static dl_t *dl_find(hyd_t *h, const char *key, uint64_t pos)
{
    for (dl_t *d = h->dls; d; d = d->next)
        if (dl_chunk(d, key, pos) < d->n)
            return d;
    return NULL;
}

/* A finished download of this shard still in memory that holds the chunk at
 * pos of key (its index in *ci), or NULL. */
static dl_t *recent_find(hyd_t *h, const char *key, uint64_t pos, size_t *ci)
{
    for (size_t k = h->n_recent; k-- > 0;)
        if ((*ci = dl_chunk(h->recent[k], key, pos)) < h->recent[k]->n)
            return h->recent[k];
    return NULL;
}

/* Keep d (its list reference moves here) for the reads that follow; the
 * oldest go once more than depth + 1 read-ahead windows are kept. */
static void recent_add(hyd_t *h, dl_t *d)
{
    if (h->closing || h->ra_bytes == 0) {
        dl_unref(d);
        return;
    }
    if (h->n_recent == h->cap_recent) {
        size_t cap = h->cap_recent ? h->cap_recent * 2 : 8;
        dl_t **n = realloc(h->recent, cap * sizeof(*n));
        if (!n) {
            dl_unref(d);
            return;
        }
        h->recent = n;
        h->cap_recent = cap;
    }
    h->recent[h->n_recent++] = d;
    h->recent_bytes += d->data_len;
    while (h->n_recent > 1 && h->recent_bytes > (uint64_t)(h->depth + 1) * h->ra_bytes) {
        dl_t *old = h->recent[0];
        h->recent_bytes -= old->data_len;
        memmove(h->recent, h->recent + 1, --h->n_recent * sizeof(*h->recent));
        dl_unref(old);
    }
}

static void recent_clear(hyd_t *h)
{
    for (size_t i = 0; i < h->n_recent; i++)
        dl_unref(h->recent[i]);
    free(h->recent);
    h->recent = NULL;
    h->n_recent = h->cap_recent = 0;
    h->recent_bytes = 0;
}

/* Thread pool: check each chunk against the index's CRC-32C. */
static void split_work(st_pool_work_t *w)
{
    dl_t *d = w->data;
    for (size_t i = 0; i < d->n; i++) {
        const tier_seg_chunk_t *c = &d->chunks[i];
        uint64_t at = c->obj_pos - d->pos;
        if (at + c->obj_len > d->data_len) {
            d->chunk_err[i] = ST_E_RANGE; /* the object is shorter than indexed */
            continue;
        }
        if (st_crc32c(0, d->data + at, c->obj_len) != c->crc32c)
            d->chunk_err[i] = ST_E_CORRUPT;
    }
}

/* Thread pool: write the verified chunks to the cache. Runs after the
 * download's waiters were answered: the files (written past the page cache,
 * so each write waits for the disk) are for later reads, not this one. */
static void cache_work(st_pool_work_t *w)
{
    dl_t *d = w->data;
    char ck[HYD_CACHE_MAX_KEY + 32];
    for (size_t i = 0; i < d->n; i++) {
        const tier_seg_chunk_t *c = &d->chunks[i];
        if (d->chunk_err[i])
            continue;
        chunk_key(d->key, c->obj_pos, ck, sizeof(ck));
        int rc = hyd_cache_write_crc(d->h->cache, ck, d->data + (c->obj_pos - d->pos), c->obj_len,
                                     c->crc32c, &d->files[i]);
        if (rc != 0 && rc != ST_E_AGAIN && rc != ST_E_TOO_LARGE)
            ST_WARN("tier", "cache: cannot write chunk %s: %s", ck, st_strerror(rc));
    }
}

static void cache_done(st_pool_work_t *w, int status)
{
    dl_t *d = w->data;
    hyd_t *h = d->h;
    h->pending--;
    /* Added while closing too: the cache closes only once nothing is pending
     * (check_closed), and a replay stopped by a restart keeps what it cached. */
    for (size_t i = 0; i < d->n; i++) {
        if (status == 0 && d->files[i].key)
            hyd_cache_add(h->cache, &d->files[i]);
        else if (d->files[i].key)
            hyd_cache_discard(h->cache, &d->files[i]);
    }
    sync_cache_stats(h);
    dl_unref(d);
    check_closed(h);
}

static void split_done(st_pool_work_t *w, int status)
{
    dl_t *d = w->data;
    hyd_t *h = d->h;
    h->pending--;
    if (status != 0) {
        dl_fail(d, status);
        pump(h);
        check_closed(h);
        return;
    }
    for (size_t i = 0; i < d->n; i++)
        if (d->chunk_err[i])
            ST_WARN("tier", "archived chunk failed verification key=%s pos=%" PRIu64 ": %s", d->key,
                    d->chunks[i].obj_pos, st_strerror(d->chunk_err[i]));
    dl_unlist(d);
    rd_t *ws = d->waiters;
    d->waiters = NULL;
    for (rd_t *r = ws, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        size_t i = dl_chunk(d, r->key, r->chunk.obj_pos);
        if (i == d->n || d->chunk_err[i]) {
            answer(r, i == d->n ? ST_E_RANGE : d->chunk_err[i]);
            continue;
        }
        d->refs++;
        r->dl = d;
        r->dl_index = i;
        decode(r, d->data + (d->chunks[i].obj_pos - d->pos), d->chunks[i].obj_len);
    }
    if (h->cache && !h->closing) {
        d->refs++;
        h->pending++;
        d->cache_work.data = d;
        if (st_pool_queue(h->ts->hyd_port, h->ts->loop, &d->cache_work, cache_work, cache_done) !=
            0) {
            h->pending--;
            d->refs--; /* the list's reference is still held */
        }
    }
    recent_add(h, d); /* the list's reference */
    pump(h);
    check_closed(h);
}

static void on_got(obj_req_t *req, obj_result_t *res, void *arg)
{
    dl_t *d = arg;
    hyd_t *h = d->h;
    (void)req;
    d->req = NULL;
    d->is_running = false;
    h->running--;
    h->pending--;
    if (res->status != 0 || h->closing) {
        if (res->status != ST_E_CANCELED)
            ST_WARN("tier", "ranged GET failed key=%s range=%" PRIu64 "+%" PRIu64 ": %s %s", d->key,
                    d->pos, d->len, st_strerror(res->status), res->errmsg);
        dl_fail(d, res->status ? res->status : ST_E_CLOSED);
        pump(h);
        check_closed(h);
        return;
    }
    d->data_len = res->data_len;
    d->data = obj_result_take_data(res);
    h->ts->stats.downloaded_bytes += (int64_t)d->data_len;
    d->chunk_err = calloc(d->n, sizeof(*d->chunk_err));
    d->files = calloc(d->n, sizeof(*d->files));
    d->work.data = d;
    int rc = !d->chunk_err || !d->files
                 ? ST_E_NOMEM
                 : st_pool_queue(h->ts->hyd_port, h->ts->loop, &d->work, split_work, split_done);
    if (rc != 0) {
        dl_fail(d, rc);
        pump(h);
        check_closed(h);
        return;
    }
    h->pending++;
    pump(h);
}

/* Start queued downloads while slots are free: demand before read-ahead. */
static void pump(hyd_t *h)
{
    while (!h->closing && h->running < (int)h->max_downloads) {
        dl_t *pick = NULL;
        for (dl_t *d = h->dls; d; d = d->next) {
            if (d->is_running || d->data)
                continue;
            if (!d->is_readahead) {
                pick = d;
                break;
            }
            if (!pick)
                pick = d;
        }
        if (!pick)
            return;
        pick->is_running = true;
        int rc =
            obj_get_range(h->ts->store, pick->key, pick->pos, pick->len, on_got, pick, &pick->req);
        if (rc != 0) {
            pick->is_running = false;
            dl_fail(pick, rc);
            continue;
        }
        h->running++;
        h->pending++;
        h->ts->stats.downloads++;
        if (pick->is_readahead)
            h->ts->stats.readahead_downloads++;
    }
}

/* Queue a download of n contiguous chunks (copied) of object key. */
static dl_t *
dl_new(hyd_t *h, const char *key, const tier_seg_chunk_t *chunks, size_t n, bool is_readahead)
{
    dl_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->chunks = malloc(n * sizeof(*chunks)))) {
        free(d);
        return NULL;
    }
    memcpy(d->chunks, chunks, n * sizeof(*chunks));
    d->h = h;
    d->n = n;
    snprintf(d->key, sizeof(d->key), "%s", key);
    d->pos = chunks[0].obj_pos;
    d->len = chunks[n - 1].obj_pos + chunks[n - 1].obj_len - d->pos;
    d->is_readahead = is_readahead;
    d->refs = 1;
    d->is_listed = true;
    dl_t **p = &h->dls;
    while (*p)
        p = &(*p)->next;
    *p = d;
    return d;
}

/* ---- Serving one read ---- */

static void on_cache_get(void *arg, int status, uint8_t *data, size_t len, uint32_t crc)
{
    (void)crc; /* the cache checked it against the index's */
    rd_t *r = arg;
    hyd_t *h = r->h;
    h->pending--;
    sync_cache_stats(h);
    if (h->closing) {
        free(data);
        answer(r, ST_E_CLOSED);
    } else if (status == 0) {
        h->ts->stats.cache_hits++;
        r->owned_frame = data;
        decode(r, data, len);
    } else {
        free(data);
        serve(r, false, false); /* missing or corrupt: download it again */
    }
    check_closed(h);
}

static void wait_on(rd_t *r, dl_t *d)
{
    r->state = RD_WAIT;
    r->next = d->waiters;
    d->waiters = r;
    sweep_on(r->h);
}

/* Is the chunk at pos of key in the read-ahead window being built (not queued yet)? */
static bool in_window(const rp_t *rp, const char *key, uint64_t pos)
{
    if (rp->wn == 0 || strcmp(rp->wkey, key) != 0)
        return false;
    for (size_t i = 0; i < rp->wn; i++)
        if (rp->wchunks[i].obj_pos == pos)
            return true;
    return false;
}

/* ---- Cache read-ahead (warm replay) ---- */

static void ahead_fill(rp_t *rp, const char *key, uint64_t pos);

static ahead_t *ahead_find(rp_t *rp, const char *key, uint64_t pos)
{
    for (ahead_t *a = rp->ahead; a; a = a->next)
        if (a->pos == pos && !strcmp(a->key, key))
            return a;
    return NULL;
}

/* Take a off its reader's list (if still on it); free it unless its read
 * still runs. */
static void ahead_drop(ahead_t *a)
{
    rp_t *rp = a->rp;
    for (ahead_t **p = rp ? &rp->ahead : NULL; p && *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            rp->n_ahead--;
            break;
        }
    }
    a->rp = NULL;
    if (!a->is_loading) {
        a->h->n_ahead--;
        free(a->data);
        free(a);
    }
}

/* Drop rp's chunks read ahead but those a read waits for. */
static void ahead_drop_all(rp_t *rp)
{
    for (ahead_t *a = rp->ahead, *next; a; a = next) {
        next = a->next;
        if (!a->waiter)
            ahead_drop(a);
    }
}

/* Answer r from data read ahead (owned): when it is the chunk the index
 * names (length, CRC-32C), decode it and read on. @return false: data freed,
 * r untouched. */
static bool ahead_serve(rd_t *r, uint8_t *data, size_t len, uint32_t crc)
{
    if (len != r->chunk.obj_len || crc != r->chunk.crc32c) {
        free(data);
        return false;
    }
    r->h->ts->stats.cache_hits++;
    r->h->ts->stats.cache_ahead_hits++;
    r->owned_frame = data;
    if (r->rp)
        ahead_fill(r->rp, r->key, r->chunk.obj_pos + len);
    decode(r, data, len);
    return true;
}

static void on_ahead_got(void *arg, int status, uint8_t *data, size_t len, uint32_t crc)
{
    ahead_t *a = arg;
    hyd_t *h = a->h;
    h->pending--;
    a->is_loading = false;
    rd_t *r = a->waiter;
    a->waiter = NULL;
    if (status == 0) {
        a->data = data;
        a->len = len;
        a->crc = crc;
    } else {
        free(data);
    }
    if (h->closing || status != 0 || r || !a->rp) {
        uint8_t *d = a->data;
        a->data = NULL;
        ahead_drop(a);
        if (!r || h->closing) {
            free(d);
            if (r)
                answer(r, ST_E_CLOSED);
        } else if (!d || !ahead_serve(r, d, len, crc)) {
            serve(r, false, true); /* not the chunk the index names, or a miss */
        }
    } else {
        ahead_fill(a->rp, a->key, a->pos + a->len);
    }
    check_closed(h);
}

/* Start reading the cached chunk at pos of key ahead of rp's reader. */
static void ahead_kick(rp_t *rp, const char *key, uint64_t pos)
{
    hyd_t *h = rp->h;
    size_t ci;
    char ck[HYD_CACHE_MAX_KEY + 32];
    if (h->closing || !h->cache || rp->n_ahead >= RD_CACHE_AHEAD ||
        h->n_ahead >= RD_CACHE_AHEAD_MAX || dl_find(h, key, pos) || recent_find(h, key, pos, &ci))
        return; /* enough ahead, or in memory or coming */
    chunk_key(key, pos, ck, sizeof(ck));
    if (!hyd_cache_contains(h->cache, ck))
        return;
    ahead_t *a = calloc(1, sizeof(*a));
    if (!a)
        return;
    a->h = h;
    a->rp = rp;
    snprintf(a->key, sizeof(a->key), "%s", key);
    a->pos = pos;
    a->is_loading = true;
    if (hyd_cache_get(h->cache, ck, 0, on_ahead_got, a) != 0) {
        free(a);
        return;
    }
    ahead_t **p = &rp->ahead;
    while (*p)
        p = &(*p)->next;
    *p = a;
    rp->n_ahead++;
    h->n_ahead++;
    h->pending++;
}

/* Keep the cached chunks from pos of key (the one after the chunk being
 * read) read ahead: past those loaded, start the next unless one loads. */
static void ahead_fill(rp_t *rp, const char *key, uint64_t pos)
{
    ahead_t *a;
    while ((a = ahead_find(rp, key, pos)) != NULL) {
        if (a->is_loading)
            return; /* its end fills on */
        pos += a->len;
    }
    ahead_kick(rp, key, pos);
}

/* Serve r from a chunk read ahead, or wait for it while it loads; the ones
 * before it are behind the reader: dropped. @return false: not read ahead. */
static bool ahead_take(rd_t *r)
{
    ahead_t *a = ahead_find(r->rp, r->key, r->chunk.obj_pos);
    for (ahead_t *b = r->rp->ahead, *next; b != a; b = next) {
        next = b->next;
        if (!b->waiter)
            ahead_drop(b);
    }
    if (!a || a->waiter)
        return false;
    if (a->is_loading) {
        r->state = RD_CACHE_GET;
        a->waiter = r;
        return true;
    }
    uint8_t *data = a->data;
    size_t len = a->len;
    uint32_t crc = a->crc;
    a->data = NULL;
    ahead_drop(a);
    return ahead_serve(r, data, len, crc);
}

static void serve(rd_t *r, bool may_park, bool may_cache)
{
    hyd_t *h = r->h;
    rp_t *rp = r->rp;
    if (h->closing) {
        answer(r, ST_E_CLOSED);
        return;
    }
    size_t ci;
    dl_t *d = recent_find(h, r->key, r->chunk.obj_pos, &ci);
    if (d && !d->chunk_err[ci]) { /* downloaded moments ago: still in memory */
        h->ts->stats.cache_hits++;
        d->refs++;
        r->dl = d;
        r->dl_index = ci;
        decode(r, d->data + (d->chunks[ci].obj_pos - d->pos), d->chunks[ci].obj_len);
        return;
    }
    d = dl_find(h, r->key, r->chunk.obj_pos);
    if (d) {
        if (d->is_running || d->data)
            h->ts->stats.shared_waits++;
        wait_on(r, d);
        return;
    }
    if (may_cache && rp && rp->ahead && ahead_take(r))
        return;
    char ck[HYD_CACHE_MAX_KEY + 32];
    chunk_key(r->key, r->chunk.obj_pos, ck, sizeof(ck));
    if (may_cache && h->cache && hyd_cache_contains(h->cache, ck)) {
        r->state = RD_CACHE_GET;
        if (hyd_cache_get(h->cache, ck, r->chunk.crc32c, on_cache_get, r) == 0) {
            h->pending++;
            if (rp && r->is_sequential)
                ahead_fill(rp, r->key, r->chunk.obj_pos + r->chunk.obj_len);
            return;
        }
    }
    if (may_park)
        h->ts->stats.cache_misses++; /* counted once per read */
    if (may_park && rp &&
        ((r->is_sequential && (rp->ra_next < 0 || rp->ra_next <= r->chunk.first_offset)) ||
         (rp->ra_busy && in_window(rp, r->key, r->chunk.obj_pos)))) {
        /* The read-ahead walk has not reached the chunk yet and will put it
         * in a window (had it passed it, the chunk would be in a window or
         * the cache: it was evicted, and is downloaded alone below); or the
         * walk holds it in the window it is building, between two index
         * lookups: the read joins that window once it is queued instead of
         * downloading the chunk alone beside it (two GETs of one chunk, seen
         * under load where lookups are slow). */
        if (!rp->ra_busy && (rp->ra_next < 0 || rp->ra_next < r->chunk.first_offset)) {
            rp->ra_next = r->chunk.first_offset;
            rp->ra_end = false;
        }
        r->state = RD_PARKED;
        r->next = rp->parked;
        rp->parked = r;
        sweep_on(h);
        ra_walk(rp);
        return;
    }
    d = dl_new(h, r->key, &r->chunk, 1, false);
    if (!d) {
        answer(r, ST_E_NOMEM);
        return;
    }
    wait_on(r, d);
    pump(h);
}

/* ---- Read-ahead ---- */

static void unpark(rp_t *rp)
{
    rd_t *list = rp->parked;
    rp->parked = NULL;
    for (rd_t *r = list, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (rp->h->closing)
            answer(r, ST_E_CLOSED);
        else
            serve(r, false, true);
    }
}

/* Is a parked read waiting for a chunk the walk has not reached? */
static bool parked_beyond(const rp_t *rp, int64_t offset)
{
    for (const rd_t *r = rp->parked; r; r = r->next)
        if (r->chunk.first_offset > offset)
            return true;
    return false;
}

/* A window up to offset covered was queued: the parked reads up to it are
 * served (from that window, another, or the cache); the others stay parked
 * for the next window (a reader ahead of the frontier would otherwise
 * download its chunk alone, and again in the window). */
static void unpark_upto(rp_t *rp, int64_t covered)
{
    rd_t *keep = NULL, *list = rp->parked;
    rp->parked = NULL;
    for (rd_t *r = list, *next; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (!rp->h->closing && r->chunk.first_offset > covered) {
            r->next = keep;
            keep = r;
        } else if (rp->h->closing) {
            answer(r, ST_E_CLOSED);
        } else {
            serve(r, false, true);
        }
    }
    rp->parked = keep;
}

static int windows_ahead(rp_t *rp)
{
    int n = 0;
    for (int i = 0; i < rp->n_win; i++)
        n += rp->win_last[i] > rp->last_chunk_last;
    return n;
}

static void window_finish(rp_t *rp)
{
    hyd_t *h = rp->h;
    if (rp->wn == 0)
        return;
    int64_t covered = rp->wchunks[rp->wn - 1].last_offset;
    int ahead = windows_ahead(rp);
    if (dl_new(h, rp->wkey, rp->wchunks, rp->wn, true)) {
        if (ahead >= RD_DEPTH_SMALL)
            h->ts->stats.prefetch_windows++; /* beyond what depth 2 would queue */
        if (rp->n_win == RD_MAX_WINDOWS) {
            memmove(rp->win_last, rp->win_last + 1, sizeof(rp->win_last[0]) * (RD_MAX_WINDOWS - 1));
            rp->n_win--;
        }
        rp->win_last[rp->n_win++] = rp->wchunks[rp->wn - 1].last_offset;
    }
    rp->wn = 0;
    rp->wbytes = 0;
    rp->wtarget = rp->wtarget * 2 < h->ra_bytes ? rp->wtarget * 2 : h->ra_bytes;
    pump(h);
    unpark_upto(rp, covered); /* parked reads join the window just queued */
}

static void on_ra_loc(void *arg, int status, const idx_loc_t *loc)
{
    rp_t *rp = arg;
    hyd_t *h = rp->h;
    h->pending--;
    rp->ra_busy = false;
    if (h->closing) {
        rp->wn = 0;
        unpark(rp);
        check_closed(h);
        return;
    }
    bool more = status == 0;
    if (status != 0) {
        rp->ra_end = status == ST_E_RANGE;
        window_finish(rp);
    } else {
        const idx_chunk_t *c = &loc->chunk;
        tier_seg_chunk_t sc = {.first_offset = c->first_offset,
                               .last_offset = c->last_offset,
                               .first_ts = c->first_ts,
                               .max_ts = c->max_ts,
                               .obj_pos = (uint64_t)c->obj_pos,
                               .obj_len = (uint32_t)c->obj_len,
                               .raw_len = (uint32_t)c->raw_len,
                               .crc32c = c->checksum,
                               .n_batches = 0};
        char ck[HYD_CACHE_MAX_KEY + 32];
        chunk_key(loc->seg.object_key, sc.obj_pos, ck, sizeof(ck));
        size_t ci;
        bool have = dl_find(h, loc->seg.object_key, sc.obj_pos) ||
                    recent_find(h, loc->seg.object_key, sc.obj_pos, &ci) ||
                    (h->cache && hyd_cache_contains(h->cache, ck));
        bool contiguous =
            rp->wn > 0 && !strcmp(rp->wkey, loc->seg.object_key) &&
            rp->wchunks[rp->wn - 1].obj_pos + rp->wchunks[rp->wn - 1].obj_len == sc.obj_pos;
        if (rp->wn > 0 && (have || !contiguous))
            window_finish(rp); /* a window is one range of one object */
        if (!have && rp->wn == 0 && windows_ahead(rp) >= h->depth &&
            !parked_beyond(rp, sc.first_offset - 1)) {
            /* Enough is ahead of the reader: this chunk starts the next
             * window, on a later walk (ra_next stays on it). */
            more = false;
            goto out;
        }
        if (have) {
            rp->skips++;
        } else {
            if (rp->wn == rp->wcap) {
                size_t nc = rp->wcap ? rp->wcap * 2 : 32;
                tier_seg_chunk_t *n = realloc(rp->wchunks, nc * sizeof(*n));
                if (!n) {
                    more = false;
                    goto out;
                }
                rp->wchunks = n;
                rp->wcap = nc;
            }
            if (rp->wn == 0)
                snprintf(rp->wkey, sizeof(rp->wkey), "%s", loc->seg.object_key);
            rp->wchunks[rp->wn++] = sc;
            rp->wbytes += sc.obj_len;
            if (rp->wbytes >= rp->wtarget)
                window_finish(rp);
        }
        rp->ra_next = sc.last_offset + 1;
    }
out:
    if (more &&
        (windows_ahead(rp) < h->depth || rp->wn > 0 || parked_beyond(rp, rp->ra_next - 1)) &&
        rp->skips < RD_MAX_SKIPS) {
        ra_walk(rp);
    } else {
        window_finish(rp);
        unpark(rp);
    }
    check_closed(h);
}

/* Walk the index from the frontier while fewer than h->depth windows are ahead. */
static void ra_walk(rp_t *rp)
{
    hyd_t *h = rp->h;
    if (rp->ra_busy || rp->ra_end || h->closing || rp->ra_next < 0)
        return;
    if (windows_ahead(rp) >= h->depth && rp->wn == 0 && !parked_beyond(rp, rp->ra_next - 1))
        return;
    rp->ra_busy = true;
    if (idx_lookup_offset(h->ts->idx, rp->topic, rp->partition, rp->ra_next, on_ra_loc, rp) != 0) {
        rp->ra_busy = false;
        window_finish(rp);
        unpark(rp);
        return;
    }
    h->pending++;
}

static rp_t *rp_get(hyd_t *h, const char *topic, int32_t partition)
{
    for (rp_t *rp = h->rps; rp; rp = rp->next)
        if (rp->partition == partition && !strcmp(rp->topic, topic))
            return rp;
    rp_t *rp = calloc(1, sizeof(*rp));
    if (!rp)
        return NULL;
    rp->h = h;
    snprintf(rp->topic, sizeof(rp->topic), "%s", topic);
    rp->partition = partition;
    rp->ra_next = -1;
    rp->next = h->rps;
    h->rps = rp;
    return rp;
}

/* ---- Entry points ---- */

typedef struct lookup {
    rd_t *r;
    char topic[IDX_MAX_TOPIC_LEN + 1];
    int32_t partition;
    struct lookup *next; /* in cache_waiters */
} lookup_t;

static void on_loc(void *arg, int status, const idx_loc_t *loc)
{
    lookup_t *lk = arg;
    rd_t *r = lk->r;
    hyd_t *h = r->h;
    h->pending--;
    if (h->closing || status != 0) {
        answer(r, h->closing ? ST_E_CLOSED : status);
        free(lk);
        check_closed(h);
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
    rp_t *rp = rp_get(h, lk->topic, lk->partition);
    free(lk);
    r->rp = rp;
    if (rp) {
        r->is_sequential =
            rp->has_last && r->offset >= rp->last_offset && r->offset <= rp->last_chunk_last + 1;
        if (!r->is_sequential) { /* a new position: forget the old read-ahead */
            ahead_drop_all(rp);
            rp->ra_next = -1;
            rp->ra_end = false;
            rp->n_win = 0;
            rp->skips = 0;
            rp->wtarget = RD_FIRST_WINDOW < h->ra_bytes ? RD_FIRST_WINDOW : h->ra_bytes;
        }
        rp->has_last = true;
        rp->last_offset = r->offset;
        rp->last_chunk_last = r->chunk.last_offset;
        rp->skips = 0;
    }
    serve(r, true, true);
    if (rp && r->is_sequential) {
        if (rp->ra_next >= 0 && rp->ra_next <= r->chunk.last_offset && !rp->ra_busy)
            rp->ra_next = r->chunk.last_offset + 1;
        if (rp->ra_next < 0)
            rp->ra_next = r->chunk.last_offset + 1;
        ra_walk(rp);
    }
    check_closed(h);
}

/* The answer holds empty batches only (compaction kept them: the first and
 * last batch of each object, tiering/tier_acomp.c): read on from the offset
 * after them, as the local log skips them (a response without any record
 * crashes some clients, kafka-python 2.0). They are kept and answered when
 * the archive has nothing after them. @return 0 (on_loc answers r). */
static int hop(rd_t *r)
{
    lookup_t *lk = calloc(1, sizeof(*lk));
    if (!lk)
        return ST_E_NOMEM;
    if (!r->held) {
        r->held = r->raw; /* the part asked for, at the front (decode_work) */
        r->held_len = r->len;
    } else {
        free(r->raw);
    }
    r->raw = NULL;
    r->raw_len = r->from = r->len = 0;
    free(r->owned_frame);
    r->owned_frame = NULL;
    r->frame = NULL;
    r->offset = r->served_last + 1;
    r->state = RD_LOOKUP;
    r->hops++;
    lk->r = r;
    snprintf(lk->topic, sizeof(lk->topic), "%s", r->rp->topic);
    lk->partition = r->rp->partition;
    int rc = idx_lookup_offset(r->h->ts->idx, lk->topic, lk->partition, r->offset, on_loc, lk);
    if (rc != 0) { /* answer(r) serves the held batches as they are */
        free(lk);
        r->raw = r->held;
        r->raw_len = r->len = r->held_len;
        r->held = NULL;
        return rc;
    }
    r->h->pending++;
    return 0;
}

/* Release the reads that waited for the cache's rebuild, oldest first:
 * start their index lookups (status ST_E_CLOSED: answer them). */
static void release_cache_waiters(hyd_t *h, int status)
{
    lookup_t *rev = NULL;
    for (lookup_t *lk = h->cache_waiters, *next; lk; lk = next) {
        next = lk->next;
        lk->next = rev;
        rev = lk;
    }
    h->cache_waiters = NULL;
    for (lookup_t *lk = rev, *next; lk; lk = next) {
        next = lk->next;
        rd_t *r = lk->r;
        h->pending--;
        int rc = status;
        if (rc == 0)
            rc = idx_lookup_offset(h->ts->idx, lk->topic, lk->partition, r->offset, on_loc, lk);
        if (rc == 0) {
            h->pending++;
            continue;
        }
        answer(r, rc);
        free(lk);
    }
}

static void on_cache_ready(void *arg, int status)
{
    hyd_t *h = arg;
    (void)status; /* a failed scan leaves an empty cache, still usable */
    h->cache_ready = true;
    release_cache_waiters(h, h->closing ? ST_E_CLOSED : 0);
    check_closed(h);
}

static hyd_t *hyd_get(tier_shard_t *ts)
{
    if (ts->hyd)
        return ts->hyd;
    hyd_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->ts = ts;
    h->max_downloads = RD_MAX_DOWNLOADS;
    h->ra_bytes = RD_READAHEAD_BYTES;
    h->depth = RD_DEPTH;
    uv_timer_init(ts->loop, &h->sweep);
    h->sweep.data = h;
    ts->hyd = h;
    return h;
}

int tier_read_open(tier_shard_t *ts, const tier_read_opts_t *opts, char *errbuf, size_t errbuf_len)
{
    hyd_t *h = hyd_get(ts);
    if (!h)
        return ST_E_NOMEM;
    if (opts->max_downloads)
        h->max_downloads = opts->max_downloads;
    if (opts->readahead_bytes)
        h->ra_bytes = opts->readahead_bytes;
    /* Prefetched windows go to the cache too: with room for fewer than
     * twice the windows ahead, they would evict each other before the
     * reader gets to them. */
    h->depth = opts->cache_bytes && opts->cache_bytes < 2 * RD_DEPTH * h->ra_bytes ? RD_DEPTH_SMALL
                                                                                   : RD_DEPTH;
    if (!opts->cache_dir || !opts->cache_bytes || h->cache)
        return 0;
    int rc =
        hyd_cache_open(ts->loop, opts->cache_dir, opts->cache_bytes, on_cache_ready, h, &h->cache);
    if (rc == 0)
        hyd_cache_set_port(h->cache, ts->hyd_port);
    if (rc != 0)
        snprintf(errbuf, errbuf_len, "cannot open the chunk cache %s: %s", opts->cache_dir,
                 st_strerror(rc));
    return rc;
}

int tier_read_until(tier_shard_t *ts,
                    const char *topic,
                    int32_t partition,
                    int64_t offset,
                    int64_t max_bytes,
                    int64_t deadline_ms,
                    tier_read_cb cb,
                    void *arg)
{
    hyd_t *h = hyd_get(ts);
    if (!h)
        return ST_E_NOMEM;
    if (ts->closing || h->closing)
        return ST_E_CLOSED;
    rd_t *r = calloc(1, sizeof(*r));
    lookup_t *lk = calloc(1, sizeof(*lk));
    if (!r || !lk) {
        free(r);
        free(lk);
        return ST_E_NOMEM;
    }
    r->h = h;
    r->cb = cb;
    r->arg = arg;
    r->offset = offset;
    r->max_bytes = max_bytes > 0 ? max_bytes : 1;
    r->deadline_ms = deadline_ms;
    r->start_ns = uv_hrtime();
    r->state = RD_LOOKUP;
    lk->r = r;
    snprintf(lk->topic, sizeof(lk->topic), "%s", topic);
    lk->partition = partition;
    if (h->cache && !h->cache_ready) {
        lk->next = h->cache_waiters;
        h->cache_waiters = lk;
        h->pending++;
        ts->stats.reads++;
        return 0;
    }
    int rc = idx_lookup_offset(ts->idx, topic, partition, offset, on_loc, lk);
    if (rc != 0) {
        free(r);
        free(lk);
        return rc;
    }
    h->pending++;
    ts->stats.reads++;
    return 0;
}

void tier_read_stats(const tier_shard_t *ts, tier_stats_t *out)
{
    tier_stats(ts, out);
    const hyd_t *h = ts->hyd;
    if (h && h->cache) {
        hyd_cache_stats_t cs;
        hyd_cache_stats(h->cache, &cs);
        out->cache_evictions = cs.evictions;
        out->cache_corrupt = cs.corrupt;
        out->cache_bytes = cs.bytes_used;
        out->cache_entries = cs.entries;
    }
    snprintf(out->last_error, sizeof(out->last_error), "%s",
             ts->store ? obj_store_last_error(ts->store) : "");
}

int tier_read(tier_shard_t *ts,
              const char *topic,
              int32_t partition,
              int64_t offset,
              int64_t max_bytes,
              tier_read_cb cb,
              void *arg)
{
    return tier_read_until(ts, topic, partition, offset, max_bytes,
                           part_now_ms() + TIER_READ_WAIT_MS, cb, arg);
}

/* ---- Close ---- */

static void finish_close(hyd_t *h)
{
    tier_shard_t *ts = h->ts;
    for (rp_t *rp = h->rps, *next; rp; rp = next) {
        next = rp->next;
        while (rp->ahead) /* none loads now: nothing is pending */
            ahead_drop(rp->ahead);
        free(rp->wchunks);
        free(rp);
    }
    tier_read_closed_cb cb = h->closed_cb;
    void *arg = h->closed_arg;
    ts->hyd = NULL;
    free(h);
    if (cb)
        cb(ts, arg);
}

static void on_sweep_closed(uv_handle_t *hd)
{
    finish_close(hd->data);
}

static void on_cache_closed(void *arg)
{
    hyd_t *h = arg;
    h->cache = NULL;
    uv_close((uv_handle_t *)&h->sweep, on_sweep_closed);
}

static void check_closed(hyd_t *h)
{
    if (!h->closing || h->pending > 0 || h->dls || h->cache_closed)
        return;
    h->cache_closed = true;
    tier_stats_t *s = &h->ts->stats;
    ST_INFO("tier",
            "hydration stats cache_hits=%" PRId64 " cache_misses=%" PRId64
            " cache_evictions=%" PRId64 " cache_corrupt=%" PRId64 " downloads=%" PRId64
            " readahead_downloads=%" PRId64 " downloaded_bytes=%" PRId64 " hydrated_bytes=%" PRId64
            " shared_waits=%" PRId64 " prefetch_windows=%" PRId64 " cache_ahead_hits=%" PRId64,
            s->cache_hits, s->cache_misses, s->cache_evictions, s->cache_corrupt, s->downloads,
            s->readahead_downloads, s->downloaded_bytes, s->hydrated_bytes, s->shared_waits,
            s->prefetch_windows, s->cache_ahead_hits);
    if (h->cache)
        hyd_cache_close(h->cache, on_cache_closed, h);
    else
        on_cache_closed(h);
}

void tier_read_close(tier_shard_t *ts, tier_read_closed_cb cb, void *arg)
{
    hyd_t *h = ts->hyd;
    if (!h) {
        cb(ts, arg);
        return;
    }
    h->closing = true;
    h->closed_cb = cb;
    h->closed_arg = arg;
    uv_timer_stop(&h->sweep);
    recent_clear(h);
    release_cache_waiters(h, ST_E_CLOSED);
    for (rp_t *rp = h->rps; rp; rp = rp->next) {
        unpark(rp);
        ahead_drop_all(rp); /* those a read waits for: answered when loaded */
    }
    for (dl_t *d = h->dls, *next; d; d = next) {
        next = d->next;
        if (d->req)
            obj_cancel(d->req); /* on_got fails it */
        else if (!d->is_running && !d->data)
            dl_fail(d, ST_E_CLOSED); /* queued */
    }
    check_closed(h);
}
