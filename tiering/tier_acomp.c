/* tier_acomp.c - compaction of archived data: the archive of a compacted
 * topic (cleanup.policy=compact with remote.storage.enable=true) keeps the
 * latest record of each key, as the local log does (core/plog_compact.c).
 * Data path: a timer on each shard's loop (log.cleaner.backoff.ms) offers one
 * compacted remote partition at a time, round robin, to the shard's archive
 * cleaner thread, with references to its local sealed segments not yet
 * archived -> the thread, with its own loop, object store and index client:
 *   LIST    the partition's objects (idx_list_segments), its clean end
 *           (idx_clean_end); the cleanable prefix is the objects whose
 *           records are all older than min.compaction.lag.ms; nothing to do
 *           unless its dirty share (bytes of objects at or after the clean
 *           end) reaches min.cleanable.dirty.ratio or a dirty object began
 *           longer than max.compaction.lag.ms ago
 *   MAP     each dirty object is fetched (obj_get, checked against its
 *           SHA-256), its frames decoded one at a time, and every batch
 *           added to the offset map (core/compact.c, the local cleaner's),
 *           then the local sealed segments after the archive's end: a key
 *           overwritten locally is dead in the archive too; a full map ends
 *           the map at that batch (map_end)
 *   REWRITE every object starting below map_end is fetched again and its
 *           batches filtered (compact_filter_batch: latest record per key,
 *           tombstones older than delete.retention.ms go, transactional and
 *           control batches whole); its first and last batches stay (empty
 *           if need be) so the object keeps its offsets [base, last]; an
 *           object that loses something is written anew in the same format
 *           (tier_seg_writer: `zstd -dc` yields a segment with gaps, the txn
 *           table carried over) under the key of a later generation
 *           "<base>-<last>-<term>_c<gen>.seg.zst" (next_key) and PUT
 *   SWITCH  idx_segments_replace: every new row in, every old row out and
 *           the clean end moved, in one SQLite transaction
 *   DELETE  the old objects, AC_DELETE_DELAY_MS later, when the thread is
 *           idle (a reader that looked an old chunk up just before the
 *           switch still gets it); when the switch failed (an old row is
 *           gone: retention), the new objects at once.
 * -> the pass is posted back to the loop (stats, log, references released).
 *
 *   IDLE --timer: a partition--> (thread) LIST -> [MAP -> REWRITE -> SWITCH
 *        -> DELETE] -> posted --> IDLE
 *
 * Invariants: 1. the index names either every old object of a pass or every
 *                new one, never a mix (one transaction), and an object is
 *                deleted only when no row names it: a kill at any moment
 *                leaves new objects (before the switch) or old ones (after)
 *                as orphans, which tier_gc.c removes; while a pass runs its
 *                new keys are registered (tier__acomp_is_pending) so that
 *                the orphan scan does not take them before their switch;
 *             2. offsets never change: every kept record keeps its offset,
 *                every object its range, so the uploader, retention,
 *                hydration and recovery from the bucket see the same
 *                partition, with gaps; recovery indexes the highest
 *                generation of an object (it sorts last);
 *             3. memory: the offset map (log.cleaner.dedupe.buffer.size /
 *                shards, allocated per pass), one object and its rewrite,
 *                one decoded frame;
 *             4. the shard's loop only plans and takes segment references:
 *                downloads, decoding, hashing, compression, uploads and
 *                index waits run on the thread. */
#include "core/compact.h"
#include "core/st_log.h"
#include "tiering/seg.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AC_DEFAULT_INTERVAL_MS 15000
#define AC_GET_TIMEOUT_MS      600000
#define AC_DELETE_DELAY_MS     10000
#define AC_MIN_MAP_BYTES       (1u << 20)

/* ---- Keys of a pass not yet switched (read by the orphan scan) ---- */

static pthread_mutex_t g_pending_mu = PTHREAD_MUTEX_INITIALIZER;
static char **g_pending; /* guarded by g_pending_mu */
static size_t g_n_pending, g_pending_cap;

static int pending_add(const char *key)
{
    int rc = 0;
    pthread_mutex_lock(&g_pending_mu);
    if (g_n_pending == g_pending_cap) {
        size_t cap = g_pending_cap ? g_pending_cap * 2 : 64;
        char **n = realloc(g_pending, cap * sizeof(*n));
        if (n) {
            g_pending = n;
            g_pending_cap = cap;
        }
    }
    if (g_n_pending < g_pending_cap && (g_pending[g_n_pending] = strdup(key)) != NULL)
        g_n_pending++;
    else
        rc = ST_E_NOMEM;
    pthread_mutex_unlock(&g_pending_mu);
    return rc;
}

static void pending_remove(const char *key)
{
    pthread_mutex_lock(&g_pending_mu);
    for (size_t i = 0; i < g_n_pending; i++)
        if (!strcmp(g_pending[i], key)) {
            free(g_pending[i]);
            g_pending[i] = g_pending[--g_n_pending];
            break;
        }
    pthread_mutex_unlock(&g_pending_mu);
}

bool tier__acomp_is_pending(const char *key)
{
    bool found = false;
    pthread_mutex_lock(&g_pending_mu);
    for (size_t i = 0; i < g_n_pending && !found; i++)
        found = !strcmp(g_pending[i], key);
    pthread_mutex_unlock(&g_pending_mu);
    return found;
}

/* ---- State ---- */

/* One archived object of the partition (a copy of its index row). */
typedef struct {
    char *key; /* owned */
    int64_t base, last, base_ts, max_ts, size;
    int32_t term;
} ac_obj_t;

/* A rewritten object waiting for the switch. */
typedef struct {
    char *old_key; /* borrowed from the pass's objects */
    char *key;     /* owned */
    tier_seg_info_t info;
    int32_t term;
} ac_new_t;

typedef struct ac_job {
    /* In (loop). */
    char topic[256];
    int32_t partition;
    double min_ratio;
    int64_t min_lag_ms, max_lag_ms, delete_retention_ms, now_ms;
    plog_seg_info_t *local; /* owned refs, released on the loop; the thread reads their fds */
    size_t n_local;
    int64_t local_from; /* the local offsets mapped start here (uploaded end) */
    /* Out (thread). */
    int err;
    bool did_run;  /* dirty enough: a pass ran */
    bool switched; /* the index names the new objects */
    int64_t objects, objects_rewritten, bytes_before, bytes_after, clean_end, map_end;
    compact_stats_t st;
} ac_job_t;

struct tier_acomp {
    tier_shard_t *ts;
    uv_timer_t timer;
    uv_async_t posted; /* thread -> loop: a pass is done, or the thread exited */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ac_job_t *todo, *done; /* guarded by mu */
    bool stop, exited;     /* guarded by mu */
    bool is_wake_closed;   /* guarded by mu: the thread closed wake */
    bool has_thread;
    _Atomic bool cancel;
    bool busy; /* loop: a pass is out */
    size_t next;
    size_t map_bytes;
    int64_t interval_ms;
    tier_acomp_stats_t stats;
    void (*close_done)(void *);
    void *close_arg;
    int n_closing; /* loop handles not closed yet */
    /* Thread only. */
    uv_loop_t loop;
    uv_async_t wake;
    obj_store_t *store;
    idx_client_t *idx;
    compact_map_t *map;
    compact_throttle_t io; /* the pass's budget (log.cleaner.io.max.bytes.per.second) */
    char **later;          /* owned: replaced objects to delete at later_due_ms (defer_delete) */
    size_t n_later;
    uint64_t later_due_ms;
};

/* ---- Waiting on the thread's loop ---- */

typedef struct {
    bool done;
    int status;
    uint8_t *data;
    size_t len;
    char errmsg[256];
} ac_res_t;

static void on_obj(obj_req_t *req, obj_result_t *res, void *arg)
{
    ac_res_t *r = arg;
    (void)req;
    r->status = res->status;
    if (res->status == 0 && res->data) {
        r->len = res->data_len;
        r->data = obj_result_take_data(res);
    }
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", res->errmsg ? res->errmsg : "");
    r->done = true;
}

static void on_idx_done(void *arg, int status)
{
    ac_res_t *r = arg;
    r->status = status;
    r->done = true;
}

/* Run the thread's loop until r is done; a close cancels req. */
static int wait_res(struct tier_acomp *a, ac_res_t *r, obj_req_t *req)
{
    bool is_canceled = false;
    while (!r->done) {
        if (req && !is_canceled && atomic_load(&a->cancel)) {
            obj_cancel(req);
            is_canceled = true;
        }
        uv_run(&a->loop, UV_RUN_ONCE);
    }
    return r->status;
}

static int get_object(struct tier_acomp *a, const char *key, uint8_t **data, size_t *len)
{
    ac_res_t r = {0};
    obj_req_t *req = NULL;
    int rc = obj_get(a->store, key, on_obj, &r, &req);
    if (rc != 0)
        return rc;
    obj_req_set_timeout(req, AC_GET_TIMEOUT_MS);
    if ((rc = wait_res(a, &r, req)) != 0) {
        ST_WARN("tier", "archive compaction: cannot read %s: %s %s", key, st_strerror(rc),
                r.errmsg);
        free(r.data);
        return rc;
    }
    *data = r.data;
    *len = r.len;
    compact_throttle(&a->io, (int64_t)r.len, &a->cancel);
    return 0;
}

static int put_object(struct tier_acomp *a, const char *key, const void *data, size_t len)
{
    ac_res_t r = {0};
    obj_req_t *req = NULL;
    int rc = obj_put(a->store, key, data, len, on_obj, &r, &req);
    if (rc == 0 && (rc = wait_res(a, &r, req)) != 0)
        ST_WARN("tier", "archive compaction: cannot store %s: %s %s", key, st_strerror(rc),
                r.errmsg);
    if (rc == 0)
        compact_throttle(&a->io, (int64_t)len, &a->cancel);
    return rc;
}

static void delete_objects(struct tier_acomp *a, const char *const *keys, size_t n)
{
    if (n == 0)
        return;
    ac_res_t r = {0};
    obj_req_t *req = NULL;
    int rc = obj_delete_many(a->store, keys, n, on_obj, &r, &req);
    if (rc == 0)
        rc = wait_res(a, &r, req);
    if (rc != 0 && rc != ST_E_CANCELED)
        ST_WARN("tier",
                "archive compaction: cannot delete %zu replaced objects (left as orphans): %s %s",
                n, st_strerror(rc), r.errmsg);
}

/* ---- LIST ---- */

typedef struct {
    ac_res_t r;
    ac_obj_t *v;
    size_t n;
    int64_t next;
} ac_list_t;

static void on_segs(void *arg, int status, const idx_segment_t *segs, size_t n, int64_t next)
{
    ac_list_t *l = arg;
    l->next = next;
    l->r.status = status;
    ac_obj_t *v = status == 0 && n ? realloc(l->v, (l->n + n) * sizeof(*v)) : l->v;
    if (!v)
        l->r.status = ST_E_NOMEM;
    l->v = v;
    for (size_t i = 0; l->r.status == 0 && i < n; i++) {
        ac_obj_t *o = &l->v[l->n];
        *o = (ac_obj_t){.key = strdup(segs[i].object_key),
                        .base = segs[i].base_offset,
                        .last = segs[i].last_offset,
                        .base_ts = segs[i].base_ts,
                        .max_ts = segs[i].max_ts,
                        .size = segs[i].size,
                        .term = segs[i].term};
        if (!o->key)
            l->r.status = ST_E_NOMEM;
        else
            l->n++;
    }
    l->r.done = true;
}

static void objs_free(ac_obj_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].key);
    free(v);
}

static int list_objects(struct tier_acomp *a, ac_job_t *j, ac_list_t *l)
{
    int64_t from = 0;
    do {
        l->r = (ac_res_t){0};
        int rc = idx_list_segments(a->idx, j->topic, j->partition, from, IDX_MAX_PAGE, on_segs, l);
        if (rc != 0 || (rc = wait_res(a, &l->r, NULL)) != 0)
            return rc;
        from = l->next;
    } while (from >= 0);
    return 0;
}

typedef struct {
    ac_res_t r;
    int64_t off;
} ac_off_t;

static void on_off(void *arg, int status, int64_t off)
{
    ac_off_t *o = arg;
    o->off = off;
    o->r.status = status;
    o->r.done = true;
}

typedef struct {
    ac_res_t r;
    tier_seg_aborted_t *v;
    size_t n;
} ac_ab_t;

static void on_aborted(void *arg, int status, const idx_aborted_t *v, size_t n)
{
    ac_ab_t *ab = arg;
    ab->r.status = status;
    if (status == 0 && n) {
        if ((ab->v = malloc(n * sizeof(*ab->v))) != NULL) {
            for (size_t i = 0; i < n; i++)
                ab->v[i] = (tier_seg_aborted_t){v[i].pid, v[i].first_offset, v[i].last_offset};
            ab->n = n;
        } else {
            ab->r.status = ST_E_NOMEM;
        }
    }
    ab->r.done = true;
}

/* ---- Objects, frames, batches ---- */

typedef int (*ac_batch_fn)(void *arg, const uint8_t *p, size_t len, bool is_first, bool is_last);

/* Call fn for every batch of the object obj (already described by info). */
static int for_each_batch(
    const uint8_t *obj, size_t obj_len, const tier_seg_info_t *info, ac_batch_fn fn, void *arg)
{
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < info->n_chunks; c++) {
        const tier_seg_chunk_t *ch = &info->chunks[c];
        if (ch->obj_pos + ch->obj_len > obj_len)
            return ST_E_CORRUPT;
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        rc = tier_seg_chunk_decode(obj + ch->obj_pos, ch->obj_len, ch, TIER_SEG_MAX_FRAME_RAW, &raw,
                                   &raw_len);
        for (size_t pos = 0; rc == 0 && pos < raw_len;) {
            plog_batch_hdr_t h;
            if (plog_batch_parse_hdr(raw + pos, raw_len - pos, &h) != 0 || h.batch_length < 49 ||
                (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD > raw_len - pos) {
                rc = ST_E_CORRUPT;
                break;
            }
            size_t blen = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
            rc = fn(arg, raw + pos, blen, c == 0 && pos == 0,
                    c + 1 == info->n_chunks && pos + blen == raw_len);
            pos += blen;
        }
        free(raw);
    }
    return rc;
}

/* Fetch an object and describe it from its tables (or its frames). */
static int load_object(
    struct tier_acomp *a, const ac_obj_t *o, uint8_t **obj, size_t *len, tier_seg_info_t *info)
{
    int rc = get_object(a, o->key, obj, len);
    if (rc != 0)
        return rc;
    uint64_t need = 0;
    memset(info, 0, sizeof(*info));
    rc = tier_seg_tail_describe(*obj, *len, *len, &need, info);
    if (rc == ST_E_NOTFOUND) /* no chunk table: an older object */
        rc = tier_seg_object_describe(*obj, *len, NULL, NULL, info);
    if (rc == 0 && (info->base_offset != o->base || info->last_offset != o->last))
        rc = ST_E_CORRUPT;
    if (rc != 0) {
        ST_WARN("tier", "archive compaction: %s is not a valid object: %s", o->key,
                st_strerror(rc));
        tier_seg_info_fini(info);
        free(*obj);
        *obj = NULL;
    }
    return rc;
}

/* ---- MAP ---- */

typedef struct {
    compact_map_t *map;
    int64_t from;    /* batches ending below are clean: not added */
    int64_t map_end; /* the map is complete below */
    bool is_full;
} ac_map_t;

static int map_batch(void *arg, const uint8_t *p, size_t len, bool is_first, bool is_last)
{
    ac_map_t *m = arg;
    (void)is_first;
    (void)is_last;
    if (m->is_full)
        return 0;
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(p, len, &h) != 0)
        return ST_E_CORRUPT;
    int64_t last = h.base_offset + h.last_offset_delta;
    if (last < m->from)
        return 0;
    int rc = compact_map_add_batch(m->map, p, len);
    if (rc == ST_E_AGAIN) {
        m->is_full = true;
        return 0;
    }
    if (rc == 0)
        m->map_end = last + 1;
    return rc;
}

/* The local sealed segments after the archive's end, read with pread. */
static int map_local(struct tier_acomp *a, ac_job_t *j, ac_map_t *m)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && !m->is_full && i < j->n_local; i++) {
        const plog_seg_info_t *s = &j->local[i];
        plog_batch_hdr_t h;
        for (int64_t pos = s->pos; rc == 0 && !m->is_full && pos < s->pos + s->size;) {
            uint8_t hb[PLOG_BATCH_HDR_SIZE];
            if (pread(s->fd, hb, sizeof(hb), pos) != (ssize_t)sizeof(hb) ||
                plog_batch_parse_hdr(hb, sizeof(hb), &h) != 0 || h.batch_length < 49) {
                rc = ST_E_CORRUPT;
                break;
            }
            size_t blen = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
            if (blen > COMPACT_MAX_RAW) {
                rc = ST_E_TOO_LARGE;
                break;
            }
            if (blen > cap) {
                uint8_t *n = realloc(buf, blen);
                if (!n) {
                    rc = ST_E_NOMEM;
                    break;
                }
                buf = n;
                cap = blen;
            }
            if (pread(s->fd, buf, blen, pos) != (ssize_t)blen ||
                plog_batch_validate_stored(buf, blen, &h, NULL) != 0) {
                rc = ST_E_CORRUPT;
                break;
            }
            compact_throttle(&a->io, (int64_t)blen, &a->cancel);
            m->from = j->local_from;
            rc = map_batch(m, buf, blen, false, false);
            pos += (int64_t)blen;
        }
    }
    free(buf);
    return rc;
}

static int
build_map(struct tier_acomp *a, ac_job_t *j, const ac_list_t *l, size_t k, int64_t clean_end)
{
    ac_map_t m = {.map = a->map, .from = clean_end, .map_end = clean_end};
    compact_map_clear(a->map);
    int rc = 0;
    for (size_t i = 0; rc == 0 && !m.is_full && i < k; i++) {
        const ac_obj_t *o = &l->v[i];
        if (o->last < clean_end)
            continue;
        uint8_t *obj = NULL;
        size_t len = 0;
        tier_seg_info_t info;
        if ((rc = load_object(a, o, &obj, &len, &info)) != 0)
            break;
        rc = for_each_batch(obj, len, &info, map_batch, &m);
        if (rc == 0 && !m.is_full)
            m.map_end = o->last + 1;
        tier_seg_info_fini(&info);
        free(obj);
        if (atomic_load(&a->cancel))
            rc = ST_E_CLOSED;
    }
    /* Records after the cleanable prefix, archived and local, only decide
     * which archived records are dead: the archive's dirty part ends at k. */
    for (size_t i = k; rc == 0 && !m.is_full && i < l->n; i++) {
        uint8_t *obj = NULL;
        size_t len = 0;
        tier_seg_info_t info;
        if ((rc = load_object(a, &l->v[i], &obj, &len, &info)) != 0)
            break;
        rc = for_each_batch(obj, len, &info, map_batch, &m);
        if (rc == 0 && !m.is_full)
            m.map_end = l->v[i].last + 1;
        tier_seg_info_fini(&info);
        free(obj);
    }
    if (rc == 0 && !m.is_full && l->n > 0 && j->local_from == l->v[l->n - 1].last + 1)
        rc = map_local(a, j, &m);
    j->map_end = m.map_end;
    return rc;
}

/* ---- REWRITE ---- */

/* tier_seg_sink_fn: the new object grows in a compact_buf_t. */
static int sink(void *arg, const void *data, size_t len)
{
    return compact_buf_add(arg, data, len);
}

typedef struct {
    tier_seg_writer_t *w;
    compact_rules_t rules;
    compact_buf_t out;
    compact_stats_t *st;
} ac_filter_t;

static int filter_batch(void *arg, const uint8_t *p, size_t len, bool is_first, bool is_last)
{
    ac_filter_t *f = arg;
    compact_rules_t r = f->rules;
    /* The object keeps its first and last offsets (its index range). */
    r.keep_empty = is_first || is_last;
    f->out.len = 0;
    int rc = compact_filter_batch(p, len, &r, &f->out, f->st);
    if (rc == 0 && f->out.len > 0)
        rc = tier_seg_writer_write(f->w, f->out.p, f->out.len);
    return rc;
}

/* The key of o's rewrite: "..._c<gen>.seg.zst", gen above o's (recovery
 * takes the last in byte order) and the pass's wall clock second: a pass run
 * again after a kill never reuses the key of an orphan its predecessor left,
 * which the orphan scan may be deleting. */
static int next_key(const ac_job_t *j, const ac_obj_t *o, char *out, size_t out_len)
{
    uint32_t gen = 0;
    int rc = tier_object_key_gen(o->key, &gen);
    int64_t now_s = j->now_ms / 1000;
    if (rc == 0 && gen == UINT32_MAX)
        rc = ST_E_TOO_LARGE;
    if (rc == 0) {
        gen = now_s > (int64_t)gen && now_s < UINT32_MAX ? (uint32_t)now_s : gen + 1;
        tier_object_key_with_gen(j->topic, j->partition, o->base, o->last, o->term, gen, out,
                                 out_len);
    }
    return rc;
}

/* Rewrite object o; *nw gets the new object (stored) when o lost something. */
static int rewrite_object(struct tier_acomp *a,
                          ac_job_t *j,
                          const ac_obj_t *o,
                          const ac_ab_t *ab,
                          ac_new_t *nw,
                          bool *is_new)
{
    *is_new = false;
    uint8_t *obj = NULL;
    size_t len = 0;
    tier_seg_info_t info;
    int rc = load_object(a, o, &obj, &len, &info);
    if (rc != 0)
        return rc;
    /* The writer takes the first offsets of aborted transactions from the
     * index's rows of this object (they may lie in earlier objects). */
    size_t ab0 = 0, ab1;
    while (ab0 < ab->n && ab->v[ab0].last_offset < o->base)
        ab0++;
    for (ab1 = ab0; ab1 < ab->n && ab->v[ab1].last_offset <= o->last;)
        ab1++;
    tier_seg_opts_t so = {.known_aborted = ab->v ? ab->v + ab0 : NULL,
                          .n_known_aborted = ab1 - ab0};
    compact_buf_t b = {0};
    compact_stats_t st0 = j->st;
    ac_filter_t f = {.rules = {.map = a->map,
                               .map_end = j->map_end,
                               .tombstone_horizon_ms = j->delete_retention_ms > j->now_ms
                                                           ? INT64_MIN
                                                           : j->now_ms - j->delete_retention_ms},
                     .st = &j->st};
    rc = tier_seg_writer_new(&so, sink, &b, &f.w);
    if (rc == 0)
        rc = for_each_batch(obj, len, &info, filter_batch, &f);
    free(obj);
    bool changed = j->st.records_read - j->st.records_kept > st0.records_read - st0.records_kept ||
                   j->st.batches_rewritten > st0.batches_rewritten;
    if (rc == 0 && changed)
        rc = tier_seg_writer_finish(f.w, &nw->info);
    tier_seg_writer_free(f.w);
    compact_buf_free(&f.out);
    tier_seg_info_fini(&info);
    if (rc == 0 && changed && (nw->info.base_offset != o->base || nw->info.last_offset != o->last))
        rc = ST_E_CORRUPT; /* cannot happen: the first and last batches stay */
    if (rc == 0 && changed) {
        char key[IDX_MAX_KEY_LEN + 1];
        nw->old_key = o->key;
        nw->term = o->term;
        if ((rc = next_key(j, o, key, sizeof(key))) == 0 && !(nw->key = strdup(key)))
            rc = ST_E_NOMEM;
        if (rc == 0 && (rc = pending_add(key)) == 0) {
            if ((rc = put_object(a, key, b.p, b.len)) != 0)
                pending_remove(key);
        }
        if (rc == 0) {
            *is_new = true;
            j->bytes_after += (int64_t)b.len;
        } else {
            free(nw->key);
            nw->key = NULL;
            tier_seg_info_fini(&nw->info);
        }
    }
    if (rc == 0 && !changed)
        j->bytes_after += o->size;
    compact_buf_free(&b);
    return rc;
}

/* ---- SWITCH ---- */

static int switch_index(struct tier_acomp *a, ac_job_t *j, ac_new_t *nv, size_t n)
{
    idx_replace_t *rv = calloc(n ? n : 1, sizeof(*rv));
    idx_chunk_t **cv = calloc(n ? n : 1, sizeof(*cv));
    int rc = rv && cv ? 0 : ST_E_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const tier_seg_info_t *in = &nv[i].info;
        if (!(cv[i] = calloc(in->n_chunks, sizeof(*cv[i])))) {
            rc = ST_E_NOMEM;
            break;
        }
        for (size_t c = 0; c < in->n_chunks; c++) {
            const tier_seg_chunk_t *ch = &in->chunks[c];
            cv[i][c] =
                (idx_chunk_t){ch->first_offset,     ch->last_offset, ch->first_ts, ch->max_ts,
                              (int64_t)ch->obj_pos, ch->obj_len,     ch->raw_len,  ch->crc32c};
        }
        rv[i] = (idx_replace_t){.old_key = nv[i].old_key,
                                .seg = {.topic = j->topic,
                                        .partition = j->partition,
                                        .base_offset = in->base_offset,
                                        .last_offset = in->last_offset,
                                        .base_ts = in->base_ts,
                                        .max_ts = in->max_ts,
                                        .size = (int64_t)in->obj_size,
                                        .object_key = nv[i].key,
                                        .checksum = in->obj_crc32c,
                                        .term = nv[i].term,
                                        .state = IDX_SEG_LIVE,
                                        .aborted = (const idx_aborted_t *)in->aborted,
                                        .n_aborted = in->n_aborted},
                                .chunks = cv[i],
                                .n_chunks = in->n_chunks};
    }
    ac_res_t r = {0};
    if (rc == 0 && (rc = idx_segments_replace(a->idx, j->topic, j->partition, rv, n, j->clean_end,
                                              on_idx_done, &r)) == 0)
        rc = wait_res(a, &r, NULL);
    for (size_t i = 0; cv && i < n; i++)
        free(cv[i]);
    free(cv);
    free(rv);
    return rc;
}

/* ---- DELETE, deferred ---- */

static uint64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Remember keys (copied) for deletion AC_DELETE_DELAY_MS from now; a key
 * that cannot be remembered is left to the orphan scan. */
static void defer_delete(struct tier_acomp *a, const char *const *keys, size_t n)
{
    char **v = realloc(a->later, (a->n_later + n) * sizeof(*v));
    if (!v)
        return;
    a->later = v;
    for (size_t i = 0; i < n; i++)
        if ((v[a->n_later] = strdup(keys[i])) != NULL)
            a->n_later++;
    a->later_due_ms = mono_ms() + AC_DELETE_DELAY_MS;
}

/* Delete what defer_delete() remembered (due or not: the thread is idle or
 * stopping has abandoned it). */
static void run_deferred(struct tier_acomp *a)
{
    if (a->n_later > 0 && !atomic_load(&a->cancel))
        delete_objects(a, (const char *const *)a->later, a->n_later);
    for (size_t i = 0; i < a->n_later; i++)
        free(a->later[i]);
    free(a->later);
    a->later = NULL;
    a->n_later = 0;
}

/* ---- The pass ---- */

/* min.cleanable.dirty.ratio of the prefix's bytes, or a dirty object that
 * began longer than max.compaction.lag.ms ago. */
static bool is_dirty_enough(const ac_job_t *j, const ac_list_t *l, size_t k, int64_t clean_end)
{
    int64_t total = 0, dirty = 0, oldest_dirty_ts = INT64_MAX;
    for (size_t i = 0; i < k; i++) {
        total += l->v[i].size;
        if (l->v[i].last >= clean_end) {
            dirty += l->v[i].size;
            if (l->v[i].base_ts < oldest_dirty_ts)
                oldest_dirty_ts = l->v[i].base_ts;
        }
    }
    bool is_overdue = j->max_lag_ms != INT64_MAX && oldest_dirty_ts != INT64_MAX &&
                      j->now_ms - oldest_dirty_ts > j->max_lag_ms;
    return dirty > 0 && (is_overdue || (double)dirty >= j->min_ratio * (double)total);
}

static void run_pass(struct tier_acomp *a, ac_job_t *j)
{
    ac_list_t l = {0};
    ac_off_t ce = {0};
    ac_ab_t ab = {0};
    ac_new_t *nv = NULL;
    size_t n_new = 0;
    int rc = list_objects(a, j, &l);
    if (rc == 0 && (rc = idx_clean_end(a->idx, j->topic, j->partition, on_off, &ce)) == 0)
        rc = wait_res(a, &ce.r, NULL);
    if (rc != 0 || l.n == 0)
        goto out;
    int64_t clean_end = ce.off > l.v[0].base ? ce.off : l.v[0].base;
    size_t k = 0; /* the cleanable prefix: records older than min.compaction.lag.ms */
    while (k < l.n && l.v[k].max_ts <= j->now_ms - j->min_lag_ms)
        k++;
    if (k == 0 || !is_dirty_enough(j, &l, k, clean_end))
        goto out;
    j->did_run = true;
    compact_throttle_start(&a->io, a->ts->opts.acomp_io_bytes_per_sec);
    if (!a->map && (rc = compact_map_new(a->map_bytes, &a->map)) != 0)
        goto out;
    if ((rc = build_map(a, j, &l, k, clean_end)) != 0)
        goto out;
    if (j->map_end <= clean_end) {
        ST_WARN("tier",
                "archive compaction: log.cleaner.dedupe.buffer.size holds no whole batch "
                "tp=%s-%d",
                j->topic, j->partition);
        rc = ST_E_TOO_LARGE;
        goto out;
    }
    if ((rc = idx_list_aborted(a->idx, j->topic, j->partition, on_aborted, &ab)) != 0 ||
        (rc = wait_res(a, &ab.r, NULL)) != 0)
        goto out;
    if (!(nv = calloc(k, sizeof(*nv)))) {
        rc = ST_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < k && l.v[i].base < j->map_end; i++) {
        bool is_new;
        j->objects++;
        j->bytes_before += l.v[i].size;
        if ((rc = rewrite_object(a, j, &l.v[i], &ab, &nv[n_new], &is_new)) == 0 && is_new)
            n_new++;
        if (rc == 0 && atomic_load(&a->cancel))
            rc = ST_E_CLOSED;
    }
    j->objects_rewritten = (int64_t)n_new;
    j->clean_end = j->map_end < l.v[k - 1].last + 1 ? j->map_end : l.v[k - 1].last + 1;
    if (rc == 0) {
        rc = switch_index(a, j, nv, n_new);
        j->switched = rc == 0;
    }
    /* The losers go: the new objects at once when the switch did not happen
     * (while they are pending the orphan scan skips them), the old ones
     * AC_DELETE_DELAY_MS after it (defer_delete). */
    for (size_t i = 0; i < n_new; i++)
        pending_remove(nv[i].key);
    const char **gone = calloc(n_new ? n_new : 1, sizeof(*gone));
    for (size_t i = 0; gone && i < n_new; i++)
        gone[i] = j->switched ? nv[i].old_key : nv[i].key;
    if (gone && !j->switched)
        delete_objects(a, gone, n_new);
    else if (gone)
        defer_delete(a, gone, n_new);
    free(gone);
out:
    for (size_t i = 0; i < n_new; i++) {
        free(nv[i].key);
        tier_seg_info_fini(&nv[i].info);
    }
    free(nv);
    free(ab.v);
    objs_free(l.v, l.n);
    j->err = rc;
}

/* ---- Thread ---- */

static void on_wake(uv_async_t *h)
{
    (void)h; /* only ends uv_run(UV_RUN_ONCE) */
}

static void on_thread_closed(void *arg)
{
    (void)arg;
}

static void on_wake_closed(uv_handle_t *h)
{
    (void)h;
}

static void *thread_main(void *arg)
{
    struct tier_acomp *a = arg;
    obj_config_t oc;
    memset(&oc, 0, sizeof(oc));
    oc.url = a->ts->opts.archive_url;
    char err[512] = "";
    int rc = obj_store_new(&a->loop, &oc, &a->store, err, sizeof(err));
    if (rc == 0 && (rc = idx_client_new(a->ts->opts.idx, &a->loop, &a->idx)) != 0)
        snprintf(err, sizeof(err), "cannot open a remote index client: %s", st_strerror(rc));
    if (rc != 0)
        ST_WARN("tier", "no archive compaction on this shard: %s", err);
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stop && !a->todo) {
            if (a->n_later == 0) {
                pthread_cond_wait(&a->cv, &a->mu);
                continue;
            }
            uint64_t now = mono_ms();
            if (now >= a->later_due_ms) {
                pthread_mutex_unlock(&a->mu);
                run_deferred(a);
                pthread_mutex_lock(&a->mu);
                continue;
            }
            struct timespec until; /* the condition variable's clock: CLOCK_REALTIME */
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t wait_ms = a->later_due_ms - now;
            until.tv_sec += (time_t)(wait_ms / 1000u);
            until.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&a->cv, &a->mu, &until);
        }
        if (a->stop)
            break;
        ac_job_t *j = a->todo;
        a->todo = NULL;
        pthread_mutex_unlock(&a->mu);
        if (rc == 0)
            run_pass(a, j);
        else
            j->err = rc;
        pthread_mutex_lock(&a->mu);
        a->done = j;
        uv_async_send(&a->posted);
    }
    a->is_wake_closed = true;
    pthread_mutex_unlock(&a->mu);
    run_deferred(a); /* canceled: the replaced objects are left to the orphan scan */
    if (a->idx)
        idx_client_close(a->idx, on_thread_closed, NULL);
    if (a->store)
        obj_store_close(a->store, on_thread_closed, NULL);
    uv_close((uv_handle_t *)&a->wake, on_wake_closed);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&a->loop);
    compact_map_free(a->map);
    pthread_mutex_lock(&a->mu);
    a->exited = true;
    uv_async_send(&a->posted);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ---- Loop side ---- */

static void release_job(ac_job_t *j)
{
    for (size_t i = 0; i < j->n_local; i++)
        plog_seg_info_release(&j->local[i]);
    free(j->local);
    free(j);
}

static void finish_close(struct tier_acomp *a);

static void on_posted(uv_async_t *h)
{
    struct tier_acomp *a = h->data;
    pthread_mutex_lock(&a->mu);
    ac_job_t *j = a->done;
    a->done = NULL;
    bool exited = a->exited;
    pthread_mutex_unlock(&a->mu);
    if (j) {
        a->busy = false;
        if (j->did_run) {
            a->stats.passes++;
            if (j->err == 0 && j->switched) {
                a->stats.objects_rewritten += j->objects_rewritten;
                a->stats.bytes_read += j->bytes_before;
                a->stats.bytes_written += j->bytes_after;
                a->stats.records_removed += j->st.records_read - j->st.records_kept;
                ST_INFO("tier",
                        "archive compacted tp=%s-%d up_to=%" PRId64 " objects=%" PRId64
                        " rewritten=%" PRId64 " records_read=%" PRId64 " removed=%" PRId64
                        " bytes=%" PRId64 "->%" PRId64,
                        j->topic, j->partition, j->clean_end, j->objects, j->objects_rewritten,
                        j->st.records_read, j->st.records_read - j->st.records_kept,
                        j->bytes_before, j->bytes_after);
            } else if (j->err != ST_E_CLOSED) {
                a->stats.errors++;
                ST_WARN("tier", "archive compaction pass failed tp=%s-%d: %s", j->topic,
                        j->partition, st_strerror(j->err));
            }
        }
        release_job(j);
    }
    if (exited && a->close_done)
        finish_close(a);
}

typedef struct {
    struct tier_acomp *a;
    char **topics; /* owned strings */
    int32_t *parts;
    size_t n, cap;
} ac_cands_t;

static void collect(void *arg, const char *topic, int32_t partition, plog_t *log)
{
    ac_cands_t *c = arg;
    tier_shard_t *ts = c->a->ts;
    (void)log;
    if (!ts->opts.is_remote(ts->opts.is_remote_arg, topic))
        return;
    plog_config_t cfg;
    ts->opts.topic_config(ts->opts.topic_config_arg, topic, &cfg);
    if (!cfg.cleanup_compact)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **t = realloc(c->topics, cap * sizeof(*t));
        if (t)
            c->topics = t;
        int32_t *p = realloc(c->parts, cap * sizeof(*p));
        if (p)
            c->parts = p;
        if (!t || !p)
            return;
        c->cap = cap;
    }
    if ((c->topics[c->n] = strdup(topic)) != NULL)
        c->parts[c->n++] = partition;
}

/* Local sealed, durable segments from the uploaded end on. */
static int take_local(ac_job_t *j, plog_t *log)
{
    j->local_from = plog_uploaded_offset(log);
    for (int64_t from = j->local_from;;) {
        plog_seg_info_t s;
        if (plog_sealed_get(log, from, &s) != 0)
            return 0;
        plog_seg_info_t *n = realloc(j->local, (j->n_local + 1) * sizeof(*n));
        if (!n) {
            plog_seg_info_release(&s);
            return ST_E_NOMEM;
        }
        j->local = n;
        j->local[j->n_local++] = s;
        from = s.next_offset;
    }
}

static void offer(struct tier_acomp *a)
{
    tier_shard_t *ts = a->ts;
    ac_cands_t c = {.a = a};
    part_foreach(ts->ps, collect, &c);
    for (size_t tries = 0; !a->busy && tries < c.n; tries++) {
        size_t i = a->next++ % c.n;
        plog_t *log = part_get(ts->ps, c.topics[i], c.parts[i]);
        if (!log || !tier__part_ready(ts, c.topics[i], c.parts[i]))
            continue;
        plog_config_t cfg;
        ts->opts.topic_config(ts->opts.topic_config_arg, c.topics[i], &cfg);
        ac_job_t *j = calloc(1, sizeof(*j));
        if (!j)
            break;
        snprintf(j->topic, sizeof(j->topic), "%s", c.topics[i]);
        j->partition = c.parts[i];
        j->min_ratio = cfg.min_cleanable_ratio;
        j->min_lag_ms = cfg.min_compaction_lag_ms;
        j->max_lag_ms = cfg.max_compaction_lag_ms;
        j->delete_retention_ms = cfg.delete_retention_ms;
        j->now_ms = part_now_ms();
        if (take_local(j, log) != 0) {
            release_job(j);
            break;
        }
        a->busy = true;
        pthread_mutex_lock(&a->mu);
        a->todo = j;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    for (size_t i = 0; i < c.n; i++)
        free(c.topics[i]);
    free(c.topics);
    free(c.parts);
}

static void on_timer(uv_timer_t *t)
{
    struct tier_acomp *a = t->data;
    if (!a->busy && !a->ts->closing && a->ts->opts.topic_config)
        offer(a);
}

int tier__acomp_start(tier_shard_t *ts)
{
    if (!ts->opts.topic_config)
        return 0; /* no topic configs: no compacted topics to know of */
    struct tier_acomp *a = calloc(1, sizeof(*a));
    if (!a)
        return ST_E_NOMEM;
    a->ts = ts;
    a->map_bytes =
        ts->opts.acomp_map_bytes > AC_MIN_MAP_BYTES ? ts->opts.acomp_map_bytes : AC_MIN_MAP_BYTES;
    a->interval_ms =
        ts->opts.acomp_interval_ms > 0 ? ts->opts.acomp_interval_ms : AC_DEFAULT_INTERVAL_MS;
    atomic_init(&a->cancel, false);
    int rc = uv_loop_init(&a->loop);
    if (rc != 0) {
        free(a);
        return rc;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    uv_async_init(&a->loop, &a->wake, on_wake); /* the thread's loop, not running yet */
    uv_async_init(ts->loop, &a->posted, on_posted);
    a->posted.data = a;
    uv_timer_init(ts->loop, &a->timer);
    a->timer.data = a;
    if ((rc = pthread_create(&a->thread, NULL, thread_main, a)) == 0)
        a->has_thread = true;
    else {
        ST_WARN("tier", "cannot start the archive cleaner: %s", st_strerror(-rc));
        uv_close((uv_handle_t *)&a->wake, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&a->loop);
        a->exited = true;
        ts->acomp = a;
        return -rc; /* tier__acomp_close still frees it */
    }
    uv_timer_start(&a->timer, on_timer, (uint64_t)a->interval_ms, (uint64_t)a->interval_ms);
    ts->acomp = a;
    return 0;
}

void tier_acomp_stats(const tier_shard_t *ts, tier_acomp_stats_t *out)
{
    if (ts->acomp)
        *out = ts->acomp->stats;
    else
        memset(out, 0, sizeof(*out));
}

static void on_posted_closed(uv_handle_t *h);

static void finish_close(struct tier_acomp *a)
{
    if (a->close_done == NULL || uv_is_closing((uv_handle_t *)&a->posted))
        return;
    if (a->has_thread)
        pthread_join(a->thread, NULL);
    if (a->todo) { /* handed over after the thread stopped taking passes */
        release_job(a->todo);
        a->todo = NULL;
    }
    a->n_closing = 2;
    uv_close((uv_handle_t *)&a->timer, on_posted_closed);
    uv_close((uv_handle_t *)&a->posted, on_posted_closed);
}

/* The close callback of both loop handles: the second frees a. */
static void on_posted_closed(uv_handle_t *h)
{
    struct tier_acomp *a = h->data;
    if (--a->n_closing > 0)
        return;
    void (*done)(void *) = a->close_done;
    void *arg = a->close_arg;
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
    done(arg);
}

void tier__acomp_close(tier_shard_t *ts, void (*done)(void *), void *arg)
{
    struct tier_acomp *a = ts->acomp;
    if (!a) {
        done(arg);
        return;
    }
    ts->acomp = NULL;
    a->close_done = done;
    a->close_arg = arg;
    uv_timer_stop(&a->timer);
    atomic_store(&a->cancel, true);
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    bool exited = a->exited;
    pthread_cond_signal(&a->cv);
    if (!a->is_wake_closed)
        uv_async_send(&a->wake); /* ends a wait on the thread's loop */
    pthread_mutex_unlock(&a->mu);
    if (exited)
        finish_close(a); /* else on_posted() once the thread is out */
}
