/* tier_up.c - the uploader of sealed segments and of the active segment's
 * durable records (see tier.h for the data path and invariants).
 *
 * Partition upload states:
 *   IDLE --kick/sealed/window due--> COMPRESS (thread pool: range -> seekable object)
 *   COMPRESS --ok--> PUT (obj_put) --ok--> INDEX (idx_segment_add)
 *   INDEX --ok--> plog_set_uploaded, next range (COMPRESS) or IDLE
 *   any step --error--> BACKOFF (timer, 1 s doubling to 60 s) --> COMPRESS
 *   RESUME (at start: idx_high_offset; the log is reset after the archive's
 *   end when the archive is ahead) --> COMPRESS or IDLE
 * An object holds one range of a segment's whole batches: a sealed segment
 * from where its last upload ended, or, once the oldest record not archived
 * is strata.archive.max.upload.interval.ms old (the window timer checks every
 * WIN_CHECK_MAX_MS at most), the active segment's durable batches from there.
 * Its key carries the range's first and last offsets, so a partition's
 * objects follow each other without gaps or overlaps whatever the split.
 * The partition is looked up again in the shard's registry after every
 * asynchronous step, so a log deleted meanwhile is simply dropped. */
#include "core/st_log.h"
#include "tiering/obj.h"
#include "tiering/seg.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* The window timer runs every tenth of the interval, within these bounds: a
 * record is archived at most interval + WIN_CHECK_MAX_MS after its append. */
#define WIN_CHECK_MIN_MS 50
#define WIN_CHECK_MAX_MS 1000

typedef enum { UP_IDLE, UP_RESUME, UP_COMPRESS, UP_PUT, UP_INDEX, UP_BACKOFF } up_state_t;

typedef struct up_part {
    struct up_part *next;
    tier_shard_t *ts;
    char *topic; /* owned */
    int32_t partition;
    up_state_t state;
    bool again;   /* a segment was sealed while busy */
    bool gone;    /* the partition was deleted or the shard is closing */
    bool resumed; /* the log start was lowered to the archive's (GC may trust it) */
    bool counted; /* one of the start-up resumes tier_when_resumed() waits for */
    /* The unarchived window of the active segment: since when its oldest
     * record not archived waits (-1: not known yet, or none). */
    int64_t since_ms;
    int64_t snap_ms;  /* when the range in flight was taken */
    int64_t done_end; /* end of the last active range archived ... */
    int64_t done_ms;  /* ... and when it was taken: what follows is younger */
    uint64_t backoff_ms;
    uv_timer_t timer;
    bool timer_init;
    /* the segment in flight */
    plog_seg_info_t seg;
    bool has_seg;
    st_pool_work_t work;
    int work_err;
    uint8_t *obj; /* owned: the object bytes */
    size_t obj_len, obj_cap;
    tier_seg_info_t info;
    tier_seg_aborted_t *known; /* owned: the broker's aborts of the range (opts.aborted) */
    size_t n_known;
    /* The aborted transactions of the archived objects (their txn tables),
     * in marker order: loaded from the index at resume, grown by uploads;
     * what read_committed fetches from the archive need (tier_aborted). */
    idx_aborted_t *arch_ab; /* owned */
    size_t n_arch_ab, arch_ab_cap;
    char key[1024];
} up_part_t;


static void step(up_part_t *p);
static void schedule(tier_shard_t *ts);

void tier_object_key(const char *topic,
                     int32_t partition,
                     int64_t base,
                     int64_t last,
                     int32_t term,
                     char *out,
                     size_t out_len)
{
    tier_object_key_with_gen(topic, partition, base, last, term, 0, out, out_len);
}

void tier_object_key_with_gen(const char *topic,
                              int32_t partition,
                              int64_t base,
                              int64_t last,
                              int32_t term,
                              uint32_t gen,
                              char *out,
                              size_t out_len)
{
    /* FNV-1a of "topic/partition": spreads keys over S3 partitions. */
    char tp[300];
    snprintf(tp, sizeof(tp), "%s/%d", topic, partition);
    uint32_t h = 2166136261u;
    for (const char *c = tp; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    char sfx[16] = "";
    if (gen > 0)
        snprintf(sfx, sizeof(sfx), "_c%010" PRIu32, gen);
    snprintf(out, out_len, "%08x/%s/%d/%020" PRId64 "-%020" PRId64 "-%d%s.seg.zst", h, topic,
             partition, base, last, term, sfx);
}

static plog_t *part_log(up_part_t *p)
{
    return p->gone ? NULL : part_get(p->ts->ps, p->topic, p->partition);
}

static up_part_t *find_part(tier_shard_t *ts, const char *topic, int32_t partition, bool create)
{
    for (up_part_t *p = ts->parts; p; p = p->next)
        if (p->partition == partition && !strcmp(p->topic, topic))
            return p;
    if (!create)
        return NULL;
    up_part_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->ts = ts;
    p->partition = partition;
    p->state = UP_IDLE;
    p->backoff_ms = BACKOFF_MIN_MS;
    p->since_ms = p->done_end = p->done_ms = -1;
    uv_timer_init(ts->loop, &p->timer);
    p->timer.data = p;
    p->timer_init = true;
    p->next = ts->parts;
    ts->parts = p;
    return p;
}

static void release_seg(up_part_t *p)
{
    if (p->has_seg)
        plog_seg_info_release(&p->seg);
    p->has_seg = false;
    free(p->obj);
    p->obj = NULL;
    p->obj_len = p->obj_cap = 0;
    tier_seg_info_fini(&p->info);
    memset(&p->info, 0, sizeof(p->info));
    free(p->known);
    p->known = NULL;
    p->n_known = 0;
}

static void set_idle(up_part_t *p)
{
    if (p->state != UP_IDLE && p->state != UP_BACKOFF)
        p->ts->active--;
    p->state = UP_IDLE;
}

/* The backoff ends: give back the slot it held (step() takes one again), or
 * another partition waiting for a slot may take it. Without this, every
 * failed attempt leaked a slot and after max_uploads failures the shard never
 * uploaded again. */
static void on_backoff(uv_timer_t *t)
{
    up_part_t *p = t->data;
    p->ts->active--;
    p->state = UP_IDLE;
    step(p);
    schedule(p->ts);
}

static void fail(up_part_t *p, const char *what, int err, const char *msg)
{
    p->ts->stats.errors++;
    plog_t *log = part_log(p);
    int64_t lag = log ? plog_end_offset(log) - plog_uploaded_offset(log) : 0;
    /* The lag tells an operator how much local disk the outage holds: local
     * retention keeps every offset that is not archived. */
    ST_WARN("tier",
            "upload %s failed tp=%s-%d err=%s %s; retrying in %" PRIu64
            " ms; not archived yet: offsets=%" PRId64 " local_bytes=%" PRId64,
            what, p->topic, p->partition, st_strerror(err), msg ? msg : "", p->backoff_ms, lag,
            log ? plog_size_bytes(log) : 0);
    release_seg(p);
    set_idle(p);
    if (p->gone || p->ts->closing)
        return;
    p->state = UP_BACKOFF;
    p->ts->active++; /* a backing-off partition still holds its slot */
    uv_timer_start(&p->timer, on_backoff, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* ---- Aborted transactions of the archive ---- */

_Static_assert(sizeof(idx_aborted_t) == sizeof(tier_seg_aborted_t) &&
                   offsetof(idx_aborted_t, first_offset) ==
                       offsetof(tier_seg_aborted_t, first_offset) &&
                   offsetof(idx_aborted_t, last_offset) ==
                       offsetof(tier_seg_aborted_t, last_offset),
               "an object's txn table entry is its index row");

/* Append entries after the known ones (markers only grow with uploads). */
static int arch_ab_add(up_part_t *p, const idx_aborted_t *v, size_t n)
{
    if (n == 0)
        return 0;
    if (p->n_arch_ab + n > p->arch_ab_cap) {
        size_t cap = p->arch_ab_cap ? p->arch_ab_cap : 16;
        while (cap < p->n_arch_ab + n)
            cap *= 2;
        idx_aborted_t *a = realloc(p->arch_ab, cap * sizeof(*a));
        if (!a)
            return ST_E_NOMEM;
        p->arch_ab = a;
        p->arch_ab_cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        if (p->n_arch_ab == 0 || v[i].last_offset > p->arch_ab[p->n_arch_ab - 1].last_offset)
            p->arch_ab[p->n_arch_ab++] = v[i];
    return 0;
}

int tier_aborted(tier_shard_t *ts,
                 const char *topic,
                 int32_t partition,
                 int64_t from,
                 int64_t to,
                 tier_seg_aborted_t **out,
                 size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    up_part_t *p = find_part(ts, topic, partition, false);
    if (!p)
        return 0;
    return tier_seg_aborted_range((const tier_seg_aborted_t *)p->arch_ab, p->n_arch_ab, from, to,
                                  out, n_out);
}

/* ---- INDEX ---- */

static void on_indexed(void *arg, int status)
{
    up_part_t *p = arg;
    if (status != 0) {
        fail(p, "index", status, NULL);
        return;
    }
    if (arch_ab_add(p, (const idx_aborted_t *)p->info.aborted, p->info.n_aborted) != 0)
        ST_ERROR("tier",
                 "out of memory recording the aborted transactions of tp=%s-%d: "
                 "read_committed fetches from the archive may return them",
                 p->topic, p->partition);
    plog_t *log = part_log(p);
    if (log)
        plog_set_uploaded(log, p->seg.next_offset);
    if (!p->seg.is_sealed) {
        p->done_end = p->seg.next_offset;
        p->done_ms = p->snap_ms;
        p->ts->stats.uploaded_active++;
    }
    p->since_ms = -1; /* derived again from what is left */
    p->ts->stats.uploaded_segments++;
    p->ts->stats.uploaded_bytes += (int64_t)p->obj_len;
    ST_INFO("tier", "uploaded tp=%s-%d offsets=%" PRId64 "-%" PRId64 " bytes=%zu key=%s%s",
            p->topic, p->partition, p->seg.base_offset, p->seg.next_offset - 1, p->obj_len, p->key,
            p->seg.is_sealed ? "" : " (active segment)");
    p->backoff_ms = BACKOFF_MIN_MS;
    release_seg(p);
    set_idle(p);
    step(p); /* the next sealed segment, if any */
}

/* ---- PUT ---- */

static void on_put(obj_req_t *req, obj_result_t *res, void *arg)
{
    up_part_t *p = arg;
    (void)req;
    if (res->status != 0) {
        fail(p, "PUT", res->status, res->errmsg);
        return;
    }
    if (p->gone || p->ts->closing || !part_log(p)) {
        release_seg(p); /* deleted meanwhile: the object is an orphan (tier_gc.c) */
        set_idle(p);
        return;
    }
    p->state = UP_INDEX;
    idx_chunk_t *chunks = calloc(p->info.n_chunks, sizeof(*chunks));
    if (!chunks) {
        fail(p, "index", ST_E_NOMEM, NULL);
        return;
    }
    for (size_t i = 0; i < p->info.n_chunks; i++) {
        const tier_seg_chunk_t *c = &p->info.chunks[i];
        chunks[i] = (idx_chunk_t){c->first_offset,     c->last_offset, c->first_ts, c->max_ts,
                                  (int64_t)c->obj_pos, c->obj_len,     c->raw_len,  c->crc32c};
    }
    idx_segment_t row = {.topic = p->topic,
                         .partition = p->partition,
                         .base_offset = p->info.base_offset,
                         .last_offset = p->info.last_offset,
                         .base_ts = p->info.base_ts,
                         .max_ts = p->info.max_ts,
                         .size = (int64_t)p->info.obj_size,
                         .object_key = p->key,
                         .checksum = p->info.obj_crc32c,
                         .term = 0,
                         .state = IDX_SEG_LIVE,
                         .aborted = (const idx_aborted_t *)p->info.aborted,
                         .n_aborted = p->info.n_aborted};
    int rc = idx_segment_add(p->ts->idx, &row, chunks, p->info.n_chunks, on_indexed, p);
    free(chunks);
    if (rc != 0)
        fail(p, "index", rc, NULL);
}

/* ---- COMPRESS (thread pool) ---- */

static int sink(void *arg, const void *data, size_t len)
{
    up_part_t *p = arg;
    if (p->obj_len + len > p->obj_cap) {
        size_t cap = p->obj_cap ? p->obj_cap : (size_t)1 << 20;
        while (cap < p->obj_len + len)
            cap *= 2;
        uint8_t *n = realloc(p->obj, cap);
        if (!n)
            return ST_E_NOMEM;
        p->obj = n;
        p->obj_cap = cap;
    }
    memcpy(p->obj + p->obj_len, data, len);
    p->obj_len += len;
    return 0;
}

static void compress_work(st_pool_work_t *w)
{
    up_part_t *p = w->data;
    tier_seg_opts_t opts = {0};
    /* Every batch was validated when appended, but the disk may have rotted
     * it since: the chunk checksums would certify bad bytes, so each batch's
     * CRC-32C is checked again before anything is archived. */
    opts.is_crc_trusted = false;
    opts.known_aborted = p->known;
    opts.n_known_aborted = p->n_known;
    p->work_err = tier_seg_write_fd(p->seg.fd, (off_t)p->seg.pos, (off_t)p->seg.size, &opts, sink,
                                    p, &p->info);
}

static void compress_finish(up_part_t *p, int status)
{
    int err = status ? status : p->work_err;
    if (err == ST_E_CORRUPT) {
        /* Not archived (the segment stays local; later ones wait behind it):
         * an operator must restore or remove it. */
        p->ts->stats.corrupt_segments++;
        ST_ERROR("tier",
                 "local segment is corrupt (a batch fails its CRC-32C): not archived tp=%s-%d "
                 "base_offset=%" PRId64 " path=%s",
                 p->topic, p->partition, p->seg.base_offset, p->seg.path);
    }
    if (err != 0) {
        fail(p, "compression", err, p->seg.path);
        return;
    }
    if (p->gone || p->ts->closing) {
        release_seg(p);
        set_idle(p);
        return;
    }
    tier_object_key(p->topic, p->partition, p->info.base_offset, p->info.last_offset, 0, p->key,
                    sizeof(p->key));
    p->state = UP_PUT;
    int rc = obj_put(p->ts->store, p->key, p->obj, p->obj_len, on_put, p, NULL);
    if (rc != 0)
        fail(p, "PUT", rc, NULL);
}

static void close_parts(void *arg);

static void compress_done(st_pool_work_t *w, int status)
{
    up_part_t *p = w->data;
    tier_shard_t *ts = p->ts;
    ts->up_pending--;
    compress_finish(p, status);
    if (ts->up_pending == 0 && ts->parts_waiting) {
        /* Closing: the parts stayed until their compressions were done. */
        ts->parts_waiting = false;
        close_parts(ts);
    }
}

/* ---- Scheduling ---- */

/* Since when the oldest record of log not archived waits, when it is in the
 * active segment (-1: nothing there, or sealed segments go first). */
static int64_t window_since(up_part_t *p, plog_t *log, int64_t now)
{
    int64_t up = plog_uploaded_offset(log), end = plog_end_offset(log);
    int64_t act = plog_segment_base(log, plog_segment_count(log) - 1);
    if (up >= end || up < act) {
        p->since_ms = -1;
        return -1;
    }
    if (p->since_ms >= 0)
        return p->since_ms;
    if (up > act) {
        /* After an active range: what follows was acknowledged after the
         * range was taken (only durable records are archived and acked).
         * Unknown after a restart: count from now. */
        p->since_ms = up == p->done_end ? p->done_ms : now;
    } else {
        plog_seg_info_t si; /* nothing of the active segment archived yet */
        if (plog_archive_get(log, up, true, &si) == 0) {
            p->since_ms = si.first_append_ms >= 0 ? si.first_append_ms : now;
            plog_seg_info_release(&si);
        } else {
            p->since_ms = now; /* not durable yet */
        }
    }
    return p->since_ms;
}

static bool window_due(up_part_t *p, plog_t *log, int64_t now)
{
    int64_t iv = p->ts->opts.max_upload_interval_ms;
    if (iv <= 0)
        return false;
    int64_t since = window_since(p, log, now);
    return since >= 0 && now - since >= iv;
}

static void step(up_part_t *p)
{
    tier_shard_t *ts = p->ts;
    if (p->state != UP_IDLE || ts->closing || p->gone)
        return;
    if (ts->active >= (int)ts->opts.max_uploads) {
        p->again = true; /* picked up when a slot frees */
        return;
    }
    plog_t *log = part_log(p);
    if (!log)
        return;
    int64_t now = part_now_ms();
    if (plog_archive_get(log, plog_uploaded_offset(log), window_due(p, log, now), &p->seg) != 0)
        return; /* everything sealed and durable is uploaded (and the window is not due) */
    p->snap_ms = now;
    p->has_seg = true;
    p->again = false;
    p->state = UP_COMPRESS;
    ts->active++;
    p->work.data = p;
    p->work_err = 0;
    /* The first offsets of transactions begun in earlier objects are known
     * only here: the writer sees this range alone. */
    if (ts->opts.aborted && ts->opts.aborted(ts->opts.aborted_arg, log, p->seg.base_offset,
                                             p->seg.next_offset, &p->known, &p->n_known) != 0) {
        fail(p, "compression", ST_E_NOMEM, NULL);
        return;
    }
    int rc = st_pool_queue(ts->up_port, ts->loop, &p->work, compress_work, compress_done);
    if (rc != 0)
        fail(p, "compression", rc, NULL);
    else
        ts->up_pending++;
}

/* Window timer: start the uploads that are due, whether of the active
 * segment (its window passed) or of a sealed segment that was not durable
 * yet when it was sealed. */
static void window_one(void *arg, const char *topic, int32_t partition, plog_t *log)
{
    tier_shard_t *ts = arg;
    if (plog_end_offset(log) <= plog_uploaded_offset(log) ||
        !ts->opts.is_remote(ts->opts.is_remote_arg, topic))
        return;
    up_part_t *p = find_part(ts, topic, partition, true);
    if (!p || p->state != UP_IDLE)
        return;
    int64_t act = plog_segment_base(log, plog_segment_count(log) - 1);
    if (plog_uploaded_offset(log) < act || window_due(p, log, part_now_ms()))
        step(p);
}

static void on_window(uv_timer_t *t)
{
    tier_shard_t *ts = t->data;
    if (!ts->closing)
        part_foreach(ts->ps, window_one, ts);
}

int64_t tier_window_since(tier_shard_t *ts, const char *topic, int32_t partition)
{
    plog_t *log = part_get(ts->ps, topic, partition);
    if (!log || plog_end_offset(log) <= plog_uploaded_offset(log))
        return -1;
    int64_t act = plog_segment_base(log, plog_segment_count(log) - 1);
    if (plog_uploaded_offset(log) < act) {
        plog_seg_info_t si; /* a sealed segment waits: from its first append, if known */
        int64_t since = -1;
        if (plog_archive_get(log, plog_uploaded_offset(log), false, &si) == 0) {
            since = si.first_append_ms;
            plog_seg_info_release(&si);
        }
        return since;
    }
    up_part_t *p = find_part(ts, topic, partition, true);
    return p ? window_since(p, log, part_now_ms()) : -1;
}

/* A slot freed: start a partition that was waiting for one. */
static void schedule(tier_shard_t *ts)
{
    for (up_part_t *p = ts->parts; p && ts->active < (int)ts->opts.max_uploads; p = p->next)
        if (p->again && p->state == UP_IDLE)
            step(p);
}

void tier_kick(tier_shard_t *ts, const char *topic, int32_t partition)
{
    if (ts->closing || !ts->opts.is_remote(ts->opts.is_remote_arg, topic))
        return;
    up_part_t *p = find_part(ts, topic, partition, true);
    if (!p)
        return;
    p->gone = false;
    if (p->state == UP_IDLE)
        step(p);
    else
        p->again = true;
    schedule(ts);
}

void tier_on_sealed(void *arg, plog_t *log, int64_t base_offset, int64_t next_offset)
{
    tier_shard_t *ts = arg;
    char topic[256];
    int32_t partition;
    (void)base_offset;
    (void)next_offset;
    const char *dir = plog_dir(log), *slash = strrchr(dir, '/');
    if (plog_parse_dir_name(slash ? slash + 1 : dir, topic, sizeof(topic), &partition) == 0)
        tier_kick(ts, topic, partition);
}

/* ---- Resume at start ---- */

typedef struct {
    up_part_t *p;
} resume_t;

/* A start-up resume finished (either way): maybe every one has. */
static void resume_done(up_part_t *p)
{
    tier_shard_t *ts = p->ts;
    if (!p->counted)
        return;
    p->counted = false;
    if (--ts->resume_pending == 0 && ts->on_resumed && !ts->closing) {
        void (*cb)(void *) = ts->on_resumed;
        ts->on_resumed = NULL;
        cb(ts->on_resumed_arg);
    }
}

void tier_when_resumed(tier_shard_t *ts, void (*cb)(void *arg), void *arg)
{
    if (ts->resume_pending == 0) {
        cb(arg);
        return;
    }
    ts->on_resumed = cb;
    ts->on_resumed_arg = arg;
}

static void on_aborted_list(void *arg, int status, const idx_aborted_t *v, size_t n)
{
    up_part_t *p = arg;
    if (status != 0 || arch_ab_add(p, v, n) != 0)
        ST_WARN("tier",
                "cannot load the aborted transactions of the archive tp=%s-%d: %s; "
                "read_committed fetches from the archive may return them",
                p->topic, p->partition, st_strerror(status ? status : ST_E_NOMEM));
    p->state = UP_IDLE;
    resume_done(p);
    step(p);
}

static void on_low(void *arg, int status, int64_t offset)
{
    up_part_t *p = arg;
    plog_t *log = part_log(p);
    if (status == 0 && offset >= 0 && log)
        plog_set_remote_start(log, offset); /* the archive still holds from here */
    p->resumed = status == 0 || status == ST_E_NOTFOUND;
    /* Before serving: read_committed fetches from the archive need them. */
    if (idx_list_aborted(p->ts->idx, p->topic, p->partition, on_aborted_list, p) == 0)
        return;
    on_aborted_list(p, ST_E_NOMEM, NULL, 0);
}

/* The archive holds offsets beyond the local log's end: a power cut lost
 * the local tail after it was uploaded. The archive wins, since consumers
 * may have read those records: the local log continues empty after the
 * archive's end (everything below is read from the archive), so new records
 * never reuse an archived offset and no upload overlaps an indexed object.
 * Only before the shard serves (a start-up resume): nothing waits on the log
 * and no producer state was built from it. */
static void reconcile(up_part_t *p, plog_t *log, int64_t high)
{
    int64_t end = plog_end_offset(log);
    if (high < end)
        return;
    if (!p->counted) {
        ST_ERROR("tier",
                 "the archive holds offsets up to %" PRId64 " beyond the local end %" PRId64
                 " of tp=%s-%d; restart the broker to continue the log after the archive",
                 high, end, p->topic, p->partition);
        return;
    }
    ST_WARN("tier",
            "the archive holds offsets %" PRId64 "-%" PRId64 " the local log lost tp=%s-%d "
            "(local end %" PRId64 "): the archive wins; the local log continues at %" PRId64,
            end, high, p->topic, p->partition, end, high + 1);
    int rc = plog_reset(log, high + 1);
    if (rc != 0)
        ST_ERROR("tier", "cannot continue the log of tp=%s-%d after the archive: %s", p->topic,
                 p->partition, st_strerror(rc));
    else
        p->ts->stats.reconciled++;
}

static void on_high(void *arg, int status, int64_t offset)
{
    up_part_t *p = arg;
    plog_t *log = part_log(p);
    if (status == 0 && offset >= 0 && log) {
        reconcile(p, log, offset);
        plog_set_uploaded(log, offset + 1);
        ST_INFO("tier", "resuming uploads tp=%s-%d after offset=%" PRId64, p->topic, p->partition,
                offset);
    } else if (status != 0 && status != ST_E_NOTFOUND) {
        ST_WARN("tier", "cannot read the remote index tp=%s-%d: %s", p->topic, p->partition,
                st_strerror(status));
    }
    if (idx_low_offset(p->ts->idx, p->topic, p->partition, on_low, p) != 0) {
        p->state = UP_IDLE;
        resume_done(p);
        step(p);
    }
}

static void resume_one(void *arg, const char *topic, int32_t partition, plog_t *log)
{
    tier_shard_t *ts = arg;
    (void)log;
    if (!ts->opts.is_remote(ts->opts.is_remote_arg, topic))
        return;
    up_part_t *p = find_part(ts, topic, partition, true);
    if (!p)
        return;
    p->state = UP_RESUME;
    p->counted = true;
    ts->resume_pending++;
    if (idx_high_offset(ts->idx, topic, partition, on_high, p) != 0) {
        p->state = UP_IDLE;
        resume_done(p);
    }
}

int tier_shard_new(uv_loop_t *loop,
                   part_shard_t *ps,
                   const tier_opts_t *opts,
                   tier_shard_t **out,
                   char *errbuf,
                   size_t errbuf_len)
{
    tier_shard_t *ts = calloc(1, sizeof(*ts));
    if (!ts)
        return ST_E_NOMEM;
    ts->loop = loop;
    ts->ps = ps;
    ts->opts = *opts;
    if (!ts->opts.max_uploads)
        ts->opts.max_uploads = 2;
    obj_config_t oc;
    memset(&oc, 0, sizeof(oc)); /* zero = the documented defaults */
    oc.url = opts->archive_url;
    int rc = st_pool_port_new(opts->hydration_pool, loop, &ts->hyd_port);
    if (rc == 0 && (rc = st_pool_port_new(opts->upload_pool, loop, &ts->up_port)) != 0)
        st_pool_port_close(ts->hyd_port);
    if (rc != 0) {
        snprintf(errbuf, errbuf_len, "cannot open the worker pools: %s", st_strerror(rc));
        free(ts);
        return rc;
    }
    rc = obj_store_new(loop, &oc, &ts->store, errbuf, errbuf_len);
    if (rc == 0 && (rc = idx_client_new(opts->idx, loop, &ts->idx)) != 0)
        snprintf(errbuf, errbuf_len, "cannot open a remote index client: %s", st_strerror(rc));
    if (rc != 0) {
        st_pool_port_close(ts->hyd_port);
        st_pool_port_close(ts->up_port);
        obj_store_close(ts->store, NULL, NULL);
        free(ts);
        return rc;
    }
    plog_shard_on_sealed(part_plog_shard(ps), tier_on_sealed, ts);
    part_foreach(ps, resume_one, ts);
    if (ts->opts.max_upload_interval_ms > 0) {
        uint64_t every = (uint64_t)(ts->opts.max_upload_interval_ms / 10);
        every = every < WIN_CHECK_MIN_MS   ? WIN_CHECK_MIN_MS
                : every > WIN_CHECK_MAX_MS ? WIN_CHECK_MAX_MS
                                           : every;
        uv_timer_init(loop, &ts->win_timer);
        ts->win_timer.data = ts;
        ts->has_win_timer = true;
        uv_timer_start(&ts->win_timer, on_window, every, every);
    }
    if ((rc = tier__gc_start(ts)) != 0)
        ST_WARN("tier", "cannot start remote retention: %s", st_strerror(rc));
    if ((rc = tier__acomp_start(ts)) != 0)
        ST_WARN("tier", "cannot start archive compaction: %s", st_strerror(rc));
    if (opts->is_orphan_scanner && opts->meta && (rc = tier__topics_start(ts)) != 0)
        ST_WARN("tier", "cannot keep topic manifests in the archive: %s", st_strerror(rc));
    *out = ts;
    return 0;
}

bool tier__part_ready(tier_shard_t *ts, const char *topic, int32_t partition)
{
    up_part_t *p = find_part(ts, topic, partition, true);
    if (!p || p->resumed)
        return p != NULL;
    if (p->state == UP_IDLE && !ts->closing) {
        /* Created by a seal after start (or remote storage turned on live):
         * learn what the archive holds before anything trusts the start. */
        p->state = UP_RESUME;
        if (idx_high_offset(ts->idx, topic, partition, on_high, p) != 0)
            p->state = UP_IDLE;
    }
    return false;
}

void tier_stats(const tier_shard_t *ts, tier_stats_t *out)
{
    *out = ts->stats;
    out->active = ts->active;
}

/* ---- Close ---- */

static void close_step_done(void *arg)
{
    tier_shard_t *ts = arg;
    if (--ts->closing_steps > 0)
        return;
    tier_closed_cb cb = ts->closed_cb;
    void *cb_arg = ts->closed_arg;
    st_pool_port_close(ts->hyd_port);
    st_pool_port_close(ts->up_port);
    free(ts);
    if (cb)
        cb(cb_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    up_part_t *p = h->data;
    tier_shard_t *ts = p->ts;
    release_seg(p);
    free(p->arch_ab);
    free(p->topic);
    free(p);
    close_step_done(ts);
}

static void on_win_closed(uv_handle_t *h)
{
    close_step_done(h->data);
}

static void close_parts(void *arg)
{
    tier_shard_t *ts = arg;
    if (ts->up_pending > 0) { /* compress_done() calls again */
        ts->parts_waiting = true;
        return;
    }
    if (ts->has_win_timer) {
        ts->closing_steps++;
        uv_close((uv_handle_t *)&ts->win_timer, on_win_closed);
    }
    /* Every callback has run (the store and the client are closed). */
    for (up_part_t *p = ts->parts, *next; p; p = next) {
        next = p->next;
        ts->closing_steps++;
        uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    }
    ts->parts = NULL;
    ts->closing_steps += 3;
    tier__acomp_close(ts, close_step_done, ts);
    tier__gc_close(ts, close_step_done, ts);
    tier__topics_close(ts, close_step_done, ts);
    close_step_done(ts);
}

static void on_store_closed(void *arg)
{
    tier_shard_t *ts = arg;
    idx_client_close(ts->idx, close_parts, ts);
}

void tier_shard_close(tier_shard_t *ts, tier_closed_cb cb, void *arg)
{
    ts->closing = true;
    ts->closed_cb = cb;
    ts->closed_arg = arg;
    ts->closing_steps = 1;
    plog_shard_on_sealed(part_plog_shard(ts->ps), NULL, NULL);
    if (ts->has_win_timer)
        uv_timer_stop(&ts->win_timer);
    for (up_part_t *p = ts->parts; p; p = p->next) {
        p->gone = true;
        uv_timer_stop(&p->timer);
    }
    obj_store_close(ts->store, on_store_closed, ts);
}
