/* tier_gc.c - total retention over archived + local data, deletion of
 * archived objects below the log start, DeleteTopics, orphan removal (see
 * tier.h for the rules).
 * Data path: off the produce/fetch path. A repeating timer on each shard's
 * loop starts a pass over the remote-enabled partitions the shard owns, one
 * partition at a time:
 *   LIST (idx_list_segments: what the archive holds)
 *     -> MOVE (plog_delete_records, when retention.ms/bytes cut)
 *     -> TRIM (idx_low_offset; idx_delete_below(log start) -> obj_delete_many)
 *     -> next partition ... -> ORPHANS (orphan scanner shard only:
 *        obj_list pages + idx_list_keys pages -> merge -> obj_delete_many)
 *     -> IDLE
 * Every step is asynchronous (index thread, object store, thread pool), so
 * no loop ever waits.
 * Invariants: 1. a partition is trimmed only once the uploader resumed it
 *                (tier__part_ready), so a log start not yet lowered to the
 *                archive's after a restart never deletes archived data;
 *             2. index rows go first, objects second: a crash in between
 *                leaves orphans (collected here), never a row without object;
 *             3. retention.bytes never cuts into local segments here (the
 *                local log applies local.retention.*); it removes archived
 *                segments that are no longer on local disk, oldest first. */
#include "core/st_log.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GC_DEFAULT_INTERVAL_MS 300000
#define GC_MIN_GRACE_MS        2000
#define GC_INFLIGHT_FACTOR     10

typedef struct {
    char *topic; /* owned */
    int32_t partition;
} gc_tp_t;

typedef struct {
    char *key; /* owned */
    uint64_t first_seen_ms;
} gc_cand_t;

typedef struct {
    char **v; /* owned strings */
    size_t n, cap;
} gc_keys_t;

struct tier_gc {
    tier_shard_t *ts;
    uv_timer_t timer;
    uint64_t interval_ms;
    bool running; /* a pass is in progress */
    bool again;   /* kicked during a pass */
    bool closing;
    int pending_plog; /* plog_delete_records callbacks outstanding */
    void (*done)(void *);
    void *done_arg;
    /* the pass */
    gc_tp_t *tps; /* owned */
    size_t n_tps, next_tp;
    /* orphan scan */
    gc_keys_t bucket, indexed;
    char *token;      /* owned: next bucket page */
    gc_cand_t *cands; /* owned: orphans seen before, sorted by key */
    size_t n_cands;
    gc_keys_t doomed; /* orphans being deleted */
    tier_gc_stats_t stats;
};

static void next_part(struct tier_gc *gc);
static void trim(struct tier_gc *gc);

static const gc_tp_t *cur(const struct tier_gc *gc)
{
    return &gc->tps[gc->next_tp - 1];
}

static plog_t *cur_log(struct tier_gc *gc)
{
    const gc_tp_t *tp = cur(gc);
    return part_get(gc->ts->ps, tp->topic, tp->partition);
}

static bool stopping(const struct tier_gc *gc)
{
    return gc->closing || gc->ts->closing;
}

static void keys_clear(gc_keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof(*k));
}

static int keys_push(gc_keys_t *k, const char *key)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        char **v = realloc(k->v, cap * sizeof(*v));
        if (!v)
            return ST_E_NOMEM;
        k->v = v;
        k->cap = cap;
    }
    if (!(k->v[k->n] = strdup(key)))
        return ST_E_NOMEM;
    k->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- Pass lifecycle ---- */

static void finish_close(struct tier_gc *gc);

static void end_pass(struct tier_gc *gc)
{
    for (size_t i = 0; i < gc->n_tps; i++)
        free(gc->tps[i].topic);
    free(gc->tps);
    gc->tps = NULL;
    gc->n_tps = gc->next_tp = 0;
    keys_clear(&gc->bucket);
    keys_clear(&gc->indexed);
    keys_clear(&gc->doomed);
    free(gc->token);
    gc->token = NULL;
    gc->running = false;
    if (stopping(gc))
        return;
    if (gc->again) {
        gc->again = false;
        tier_gc_kick(gc->ts);
    }
}

static void collect(void *arg, const char *topic, int32_t partition, plog_t *log)
{
    struct tier_gc *gc = arg;
    (void)log;
    if (!gc->ts->opts.is_remote(gc->ts->opts.is_remote_arg, topic))
        return;
    gc_tp_t *n = realloc(gc->tps, (gc->n_tps + 1) * sizeof(*n));
    if (!n)
        return;
    gc->tps = n;
    if ((n[gc->n_tps].topic = strdup(topic)) != NULL)
        n[gc->n_tps++].partition = partition;
}

static void on_timer(uv_timer_t *t)
{
    struct tier_gc *gc = t->data;
    if (stopping(gc))
        return;
    if (gc->running) {
        gc->again = true;
        return;
    }
    gc->running = true;
    part_foreach(gc->ts->ps, collect, gc);
    next_part(gc);
}

/* ---- Orphans ---- */

static void on_orphans_deleted(obj_req_t *req, obj_result_t *res, void *arg)
{
    struct tier_gc *gc = arg;
    (void)req;
    if (res->status == 0) {
        gc->stats.deleted_orphans += (int64_t)gc->doomed.n;
        ST_INFO("tier", "deleted orphaned objects n=%zu first=%s", gc->doomed.n, gc->doomed.v[0]);
    } else if (res->status != ST_E_CANCELED) {
        gc->stats.errors++;
        ST_WARN("tier", "cannot delete orphaned objects n=%zu: %s %s", gc->doomed.n,
                st_strerror(res->status), res->errmsg);
    }
    end_pass(gc);
}

/* Same partition: keys share "<hash>/<topic>/<partition>/". */
static bool same_partition(const char *a, const char *b)
{
    int slashes = 0;
    for (; *a && *a == *b; a++, b++)
        if (*a == '/' && ++slashes == 3)
            return true;
    return false;
}

static void merge_orphans(struct tier_gc *gc)
{
    if (gc->bucket.n > 1) /* qsort must not see the NULL of an empty list */
        qsort(gc->bucket.v, gc->bucket.n, sizeof(char *), cmp_str);
    if (gc->indexed.n > 1)
        qsort(gc->indexed.v, gc->indexed.n, sizeof(char *), cmp_str);
    uint64_t now = uv_now(gc->ts->loop);
    uint64_t grace = gc->interval_ms * 2 > GC_MIN_GRACE_MS ? gc->interval_ms * 2 : GC_MIN_GRACE_MS;
    gc_cand_t *next = calloc(gc->bucket.n ? gc->bucket.n : 1, sizeof(*next));
    size_t n_next = 0, j = 0, c = 0;
    if (!next) {
        end_pass(gc);
        return;
    }
    for (size_t i = 0; i < gc->bucket.n; i++) {
        const char *key = gc->bucket.v[i];
        while (j < gc->indexed.n && strcmp(gc->indexed.v[j], key) < 0)
            j++;
        if (j < gc->indexed.n && !strcmp(gc->indexed.v[j], key))
            continue; /* indexed */
        if (tier__acomp_is_pending(key))
            continue; /* a compacted rewrite waiting for its switch (tier_acomp.c) */
        /* Below the partition's highest indexed key: no upload can be
         * about to index it (uploads go in offset order). */
        bool is_stale = j < gc->indexed.n && same_partition(gc->indexed.v[j], key);
        while (c < gc->n_cands && strcmp(gc->cands[c].key, key) < 0)
            c++;
        uint64_t first =
            c < gc->n_cands && !strcmp(gc->cands[c].key, key) ? gc->cands[c].first_seen_ms : now;
        uint64_t wait = is_stale ? grace : grace * GC_INFLIGHT_FACTOR;
        if (now - first >= wait) {
            if (keys_push(&gc->doomed, key) != 0)
                break;
            continue;
        }
        if (!(next[n_next].key = strdup(key)))
            break;
        next[n_next++].first_seen_ms = first;
    }
    for (size_t i = 0; i < gc->n_cands; i++)
        free(gc->cands[i].key);
    free(gc->cands);
    gc->cands = next;
    gc->n_cands = n_next;
    if (gc->doomed.n == 0) {
        end_pass(gc);
        return;
    }
    int rc = obj_delete_many(gc->ts->store, (const char *const *)gc->doomed.v, gc->doomed.n,
                             on_orphans_deleted, gc, NULL);
    if (rc != 0)
        end_pass(gc);
}

static void
on_index_keys(void *arg, int status, const char *const *keys, size_t n, const char *next_after)
{
    struct tier_gc *gc = arg;
    if (stopping(gc) || status != 0) {
        if (status != 0 && !stopping(gc))
            ST_WARN("tier", "orphan scan: cannot list the index: %s", st_strerror(status));
        end_pass(gc);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (keys_push(&gc->indexed, keys[i]) != 0) {
            end_pass(gc);
            return;
        }
    if (next_after) {
        if (idx_list_keys(gc->ts->idx, next_after, IDX_MAX_PAGE, on_index_keys, gc) != 0)
            end_pass(gc);
        return;
    }
    merge_orphans(gc);
}

static void on_bucket_page(obj_req_t *req, obj_result_t *res, void *arg)
{
    struct tier_gc *gc = arg;
    (void)req;
    if (stopping(gc) || res->status != 0) {
        if (res->status != 0 && !stopping(gc))
            ST_WARN("tier", "orphan scan: cannot list the archive: %s %s", st_strerror(res->status),
                    res->errmsg);
        end_pass(gc);
        return;
    }
    for (size_t i = 0; i < res->n_entries; i++) {
        char topic[256];
        int32_t partition;
        int64_t base, last;
        const char *key = res->entries[i].key;
        /* Only segment objects: anything else in the bucket is not ours to judge. */
        if (tier_parse_object_key(key, topic, sizeof(topic), &partition, &base, &last) == 0 &&
            keys_push(&gc->bucket, key) != 0) {
            end_pass(gc);
            return;
        }
    }
    free(gc->token);
    gc->token = res->next_token ? strdup(res->next_token) : NULL;
    int rc;
    if (gc->token)
        rc = obj_list(gc->ts->store, "", gc->token, 1000, on_bucket_page, gc, NULL);
    else /* the index is listed after the bucket: a row committed meanwhile is seen */
        rc = idx_list_keys(gc->ts->idx, NULL, IDX_MAX_PAGE, on_index_keys, gc);
    if (rc != 0)
        end_pass(gc);
}

static void scan_orphans(struct tier_gc *gc)
{
    if (obj_list(gc->ts->store, "", NULL, 1000, on_bucket_page, gc, NULL) != 0)
        end_pass(gc);
}

/* ---- Retention of one partition ---- */

static void on_objects_deleted(obj_req_t *req, obj_result_t *res, void *arg)
{
    struct tier_gc *gc = arg;
    (void)req;
    if (res->status != 0 && res->status != ST_E_CANCELED) {
        gc->stats.errors++;
        ST_WARN("tier", "cannot delete archived objects (left as orphans): %s %s",
                st_strerror(res->status), res->errmsg);
    }
    keys_clear(&gc->doomed);
    if (stopping(gc)) {
        end_pass(gc);
        return;
    }
    next_part(gc);
}

static void
on_trimmed(void *arg, int status, const char *const *keys, size_t n, const char *next_after)
{
    struct tier_gc *gc = arg;
    (void)next_after;
    if (stopping(gc)) {
        end_pass(gc);
        return;
    }
    if (status != 0 || n == 0) {
        if (status != 0)
            gc->stats.errors++;
        next_part(gc);
        return;
    }
    const gc_tp_t *tp = cur(gc);
    ST_INFO("tier", "deleting archived objects below the log start tp=%s-%d n=%zu", tp->topic,
            tp->partition, n);
    gc->stats.deleted_objects += (int64_t)n;
    for (size_t i = 0; i < n; i++)
        if (keys_push(&gc->doomed, keys[i]) != 0)
            break;
    int rc = obj_delete_many(gc->ts->store, (const char *const *)gc->doomed.v, gc->doomed.n,
                             on_objects_deleted, gc, NULL);
    if (rc != 0) {
        keys_clear(&gc->doomed);
        next_part(gc);
    }
}

static void on_low(void *arg, int status, int64_t low)
{
    struct tier_gc *gc = arg;
    if (stopping(gc)) {
        end_pass(gc);
        return;
    }
    plog_t *log = cur_log(gc);
    if (status != 0 || low < 0 || !log || low >= plog_start_offset(log)) {
        next_part(gc);
        return;
    }
    const gc_tp_t *tp = cur(gc);
    if (idx_delete_below(gc->ts->idx, tp->topic, tp->partition, plog_start_offset(log), on_trimmed,
                         gc) != 0)
        next_part(gc);
}

/* Delete what the archive holds wholly below the log start. */
static void trim(struct tier_gc *gc)
{
    const gc_tp_t *tp = cur(gc);
    if (idx_low_offset(gc->ts->idx, tp->topic, tp->partition, on_low, gc) != 0)
        next_part(gc);
}

static void on_moved(void *arg, int status)
{
    struct tier_gc *gc = arg;
    gc->pending_plog--;
    if (stopping(gc)) {
        end_pass(gc);
        if (gc->closing && gc->done && gc->pending_plog == 0)
            finish_close(gc); /* tier__gc_close() waited for this */
        return;
    }
    if (status != 0)
        ST_WARN("tier", "cannot persist the log start tp=%s-%d: %s", cur(gc)->topic,
                cur(gc)->partition, st_strerror(status));
    trim(gc);
}

static void
on_segments(void *arg, int status, const idx_segment_t *segs, size_t n, int64_t next_base_offset)
{
    struct tier_gc *gc = arg;
    (void)next_base_offset;
    if (stopping(gc)) {
        end_pass(gc);
        return;
    }
    plog_t *log = cur_log(gc);
    if (status != 0 || !log) {
        next_part(gc);
        return;
    }
    const gc_tp_t *tp = cur(gc);
    plog_config_t cfg;
    gc->ts->opts.topic_config(gc->ts->opts.topic_config_arg, tp->topic, &cfg);
    int64_t now = part_now_ms(), cut = -1;
    const char *why = NULL;
    if (cfg.retention_ms >= 0)
        for (size_t i = 0; i < n && segs[i].max_ts < now - cfg.retention_ms; i++) {
            cut = segs[i].last_offset + 1;
            why = "retention.ms";
        }
    if (cfg.retention_bytes >= 0) {
        int64_t local_start = plog_local_start_offset(log), total = plog_size_bytes(log);
        for (size_t i = 0; i < n; i++)
            if (segs[i].last_offset < local_start && segs[i].last_offset >= cut)
                total += segs[i].size;
        for (size_t i = 0; i < n && total > cfg.retention_bytes; i++) {
            if (segs[i].last_offset >= local_start)
                break;
            if (segs[i].last_offset < cut)
                continue; /* already cut by retention.ms */
            total -= segs[i].size;
            cut = segs[i].last_offset + 1;
            why = "retention.bytes";
        }
    }
    if (cut <= plog_start_offset(log) || cut > plog_end_offset(log)) {
        trim(gc);
        return;
    }
    ST_INFO("tier", "%s moves the log start tp=%s-%d from=%" PRId64 " to=%" PRId64, why, tp->topic,
            tp->partition, plog_start_offset(log), cut);
    gc->pending_plog++;
    int rc = plog_delete_records(log, cut, on_moved, gc);
    if (rc != 0) {
        gc->pending_plog--;
        trim(gc);
    }
}

static void next_part(struct tier_gc *gc)
{
    tier_shard_t *ts = gc->ts;
    while (!stopping(gc) && gc->next_tp < gc->n_tps) {
        const gc_tp_t *tp = &gc->tps[gc->next_tp++];
        if (!part_get(ts->ps, tp->topic, tp->partition) ||
            !tier__part_ready(ts, tp->topic, tp->partition))
            continue;
        int rc;
        if (ts->opts.topic_config)
            rc = idx_list_segments(ts->idx, tp->topic, tp->partition, 0, IDX_MAX_PAGE, on_segments,
                                   gc);
        else
            rc = idx_low_offset(ts->idx, tp->topic, tp->partition, on_low, gc);
        if (rc == 0)
            return;
    }
    if (!stopping(gc) && ts->opts.is_orphan_scanner) {
        scan_orphans(gc);
        return;
    }
    end_pass(gc);
}

/* ---- DeleteTopics ---- */

typedef struct {
    tier_shard_t *ts;
    char *topic; /* owned */
    gc_keys_t keys;
} drop_t;

static void drop_free(drop_t *d)
{
    keys_clear(&d->keys);
    free(d->topic);
    free(d);
}

static void on_drop_deleted(obj_req_t *req, obj_result_t *res, void *arg)
{
    drop_t *d = arg;
    (void)req;
    if (res->status == 0) {
        ST_INFO("tier", "deleted the archived objects of topic=%s n=%zu", d->topic, d->keys.n);
        if (d->ts->gc)
            d->ts->gc->stats.deleted_objects += (int64_t)d->keys.n;
    } else if (res->status != ST_E_CANCELED) {
        if (d->ts->gc)
            d->ts->gc->stats.errors++;
        ST_WARN("tier", "cannot delete the archived objects of topic=%s (left as orphans): %s %s",
                d->topic, st_strerror(res->status), res->errmsg);
    }
    drop_free(d);
}

static void
on_dropped(void *arg, int status, const char *const *keys, size_t n, const char *next_after)
{
    drop_t *d = arg;
    (void)next_after;
    if (status != 0 || n == 0 || d->ts->closing) {
        if (status != 0)
            ST_WARN("tier", "cannot drop topic=%s from the remote index: %s", d->topic,
                    st_strerror(status));
        drop_free(d);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (keys_push(&d->keys, keys[i]) != 0)
            break;
    if (obj_delete_many(d->ts->store, (const char *const *)d->keys.v, d->keys.n, on_drop_deleted, d,
                        NULL) != 0)
        drop_free(d);
}

void tier_topic_deleted(tier_shard_t *ts, const char *topic)
{
    if (!ts || ts->closing)
        return;
    drop_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->topic = strdup(topic))) {
        free(d);
        return;
    }
    d->ts = ts;
    /* Every shard drops the whole topic: the first one finds the rows, the
     * others find none. Uploads in flight for it are not indexed (tier_up.c
     * sees the log gone) and their objects end as orphans. */
    if (idx_drop(ts->idx, topic, -1, on_dropped, d) != 0)
        drop_free(d);
}

/* ---- Start / stop ---- */

void tier_gc_kick(tier_shard_t *ts)
{
    struct tier_gc *gc = ts ? ts->gc : NULL;
    if (!gc || stopping(gc))
        return;
    if (gc->running)
        gc->again = true;
    else
        uv_timer_start(&gc->timer, on_timer, 0, gc->interval_ms);
}

void tier_gc_stats(const tier_shard_t *ts, tier_gc_stats_t *out)
{
    if (ts->gc)
        *out = ts->gc->stats;
    else
        memset(out, 0, sizeof(*out));
}

int tier__gc_start(tier_shard_t *ts)
{
    struct tier_gc *gc = calloc(1, sizeof(*gc));
    if (!gc)
        return ST_E_NOMEM;
    gc->ts = ts;
    gc->interval_ms =
        ts->opts.gc_interval_ms > 0 ? (uint64_t)ts->opts.gc_interval_ms : GC_DEFAULT_INTERVAL_MS;
    int rc = uv_timer_init(ts->loop, &gc->timer);
    if (rc != 0) {
        free(gc);
        return rc;
    }
    gc->timer.data = gc;
    uv_timer_start(&gc->timer, on_timer, gc->interval_ms, gc->interval_ms);
    ts->gc = gc;
    return 0;
}

static void on_gc_timer_closed(uv_handle_t *h)
{
    struct tier_gc *gc = h->data;
    for (size_t i = 0; i < gc->n_cands; i++)
        free(gc->cands[i].key);
    free(gc->cands);
    void (*done)(void *) = gc->done;
    void *arg = gc->done_arg;
    free(gc);
    done(arg);
}

void tier__gc_close(tier_shard_t *ts, void (*done)(void *), void *arg)
{
    struct tier_gc *gc = ts->gc;
    if (!gc) {
        done(arg);
        return;
    }
    ts->gc = NULL;
    gc->closing = true;
    gc->done = done;
    gc->done_arg = arg;
    uv_timer_stop(&gc->timer);
    if (gc->pending_plog == 0)
        finish_close(gc); /* else on_moved() finishes */
}

/* Nothing of the GC can call back any more: the store and the index client
 * are closed and no plog_delete_records is pending. */
static void finish_close(struct tier_gc *gc)
{
    if (gc->running)
        end_pass(gc);
    uv_close((uv_handle_t *)&gc->timer, on_gc_timer_closed);
}
