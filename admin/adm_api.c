/* adm_api.c - the admin API's endpoints: routing, health, cluster, partition
 * and storage state, and GET /metrics.
 * Data path: adm_server hands a parsed request to adm_route() (here) on the
 * admin loop -> answers that need partition state ask the owning shard(s)
 * (adm_gather: each shard reads its own plogs and builds a JSON fragment) ->
 * the fragments are merged and written back here. Field names are a stable
 * contract, documented in docs/admin-api.md.
 * Invariants: 1. shard functions read only their own shard's partitions;
 *             2. this file never blocks: no file or socket I/O of its own. */
#include "admin/adm_int.h"
#include "core/part.h"
#include "core/plog.h"
#include "kafka/kp.h"
#include "tiering/tier.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double uptime_s(const adm_server_t *s)
{
    return (double)((uv_hrtime() - s->start_ns) / 1000000) / 1000.0; /* whole ms */
}

/* ---- Health and cluster ---- */

static void get_live(adm_call_t *call)
{
    adm_reply_json(call, 200, json_pack("{s:s}", "status", "live"));
}

static void get_ready(adm_call_t *call)
{
    adm_server_t *s = call->s;
    if (!s->is_ready) {
        adm_reply_json(call, 503,
                       json_pack("{s:s,s:s}", "status", "starting", "message",
                                 "shards are still recovering their partitions"));
        return;
    }
    adm_reply_json(call, 200,
                   json_pack("{s:s,s:i}", "status", "ready", "shards", rt_shard_count(s->o.rt)));
}

static void get_cluster(adm_call_t *call)
{
    adm_server_t *s = call->s;
    const kh_ctx_t *k = s->o.kctx;
    meta_snap_t *snap = meta_snap_get(s->o.meta);
    int n_topics = snap->n_topics;
    int64_t n_parts = 0;
    for (int i = 0; i < snap->n_topics; i++)
        n_parts += snap->topics[i].n_partitions;
    meta_snap_put(snap);
    char kafka[300], adv[300];
    const kh_listener_t *l0 = &k->listeners[0];
    snprintf(kafka, sizeof(kafka), "%s:%d", l0->host, l0->port);
    snprintf(adv, sizeof(adv), "%s:%d", l0->adv_host, l0->adv_port);
    json_t *doc = json_pack(
        "{s:i,s:s,s:s,s:{s:s,s:s,s:s},s:i,s:f,s:I,s:i,s:I,s:s}", "node_id", (int)k->node_id,
        "cluster_id", k->cluster_id, "version", STRATA_VERSION, "listeners", "kafka", kafka,
        "kafka_advertised", adv, "admin", s->listen_addr, "shards", rt_shard_count(s->o.rt),
        "uptime_seconds", uptime_s(s), "started_at_ms", (json_int_t)s->start_ms, "topics", n_topics,
        "partitions", (json_int_t)n_parts, "archive_url", cfg_str(s->o.cfg, CFG_ARCHIVE_URL));
    /* Every Kafka listener: name, security protocol, bind and advertised address. */
    json_t *ls = json_array();
    for (int i = 0; ls && i < k->n_listeners; i++) {
        const kh_listener_t *l = &k->listeners[i];
        snprintf(kafka, sizeof(kafka), "%s:%d", l->host, l->port);
        snprintf(adv, sizeof(adv), "%s:%d", l->adv_host, l->adv_port);
        json_array_append_new(ls, json_pack("{s:s,s:s,s:s,s:s}", "name", l->name, "protocol",
                                            kh_sec_proto_name(l->proto), "address", kafka,
                                            "advertised", adv));
    }
    if (doc && ls)
        json_object_set_new(json_object_get(doc, "listeners"), "kafka_listeners", ls);
    else
        json_decref(ls);
    adm_reply_json(call, 200, doc);
}

/* ---- One partition ---- */

typedef struct {
    char *topic; /* owned */
    int32_t partition;
} tp_arg_t;

static void tp_free(void *arg)
{
    tp_arg_t *a = arg;
    if (a) {
        free(a->topic);
        free(a);
    }
}

/* The local state of one partition, read on its shard. topic is borrowed
 * from the gather's argument (which outlives the rows). */
typedef struct {
    const char *topic;
    int32_t partition;
    int shard;
    bool is_open;
    int64_t log_start, local_start, end, durable, size_bytes;
    int segments;
    /* Tiered storage, when is_remote (remote.storage.enable on for the topic): */
    bool is_remote;
    int64_t hw;              /* high watermark: what consumers see */
    int64_t unflushed_bytes; /* written, not yet fdatasynced (write caching) */
    int64_t uploaded_offset; /* every offset below is archived and indexed */
    int64_t lag_bytes;       /* sealed local segments at or above it: bytes */
    int64_t lag_segments;    /* and how many */
    /* The unarchived window: what losing the disk now would lose. */
    int64_t window_offsets; /* offsets at or above uploaded_offset */
    int64_t window_bytes;   /* durable local bytes at or above it (active segment included) */
    int64_t window_age_ms;  /* age of its oldest record, -1 = empty or not known */
    /* From the remote index on the admin loop (storage answers only); -1 = unknown */
    int64_t remote_bytes, remote_segments;
    plog_compact_stats_t compact; /* the cleaner's figures (compacted topics) */
} prow_t;

/* A shard's answer: its tiered storage counters and n rows. */
typedef struct {
    bool has_tier; /* the shard runs tiered storage: tier, gc are set */
    tier_stats_t tier;
    tier_gc_stats_t gc;
    tier_acomp_stats_t acomp;
    size_t n;
    prow_t rows[];
} prows_t;

/* Upload lag of a remote-enabled log: the sealed segments not yet uploaded,
 * and the unarchived window (ts: the shard's uploader, NULL = none). */
static void upload_lag(prow_t *r, const char *topic, int32_t p, plog_t *log, struct tier_shard *ts)
{
    r->uploaded_offset = plog_uploaded_offset(log);
    plog_seg_info_t si;
    for (int64_t from = r->uploaded_offset; plog_sealed_get(log, from, &si) == 0;) {
        r->lag_bytes += si.size;
        r->lag_segments++;
        from = si.next_offset;
        plog_seg_info_release(&si);
    }
    r->window_offsets = plog_end_offset(log) - r->uploaded_offset;
    for (int64_t from = r->uploaded_offset; plog_archive_get(log, from, true, &si) == 0;) {
        r->window_bytes += si.size;
        from = si.next_offset;
        plog_seg_info_release(&si);
    }
    int64_t since = ts ? tier_window_since(ts, topic, p) : -1;
    r->window_age_ms = since >= 0 ? part_now_ms() - since : -1;
}

static void prow_fill(prow_t *r,
                      const char *topic,
                      int32_t p,
                      plog_t *log,
                      int shard,
                      bool is_remote,
                      struct tier_shard *ts)
{
    memset(r, 0, sizeof(*r));
    r->window_age_ms = -1;
    r->topic = topic;
    r->partition = p;
    r->shard = shard;
    r->is_remote = is_remote;
    r->remote_bytes = r->remote_segments = -1;
    if (!log)
        return;
    if (is_remote)
        upload_lag(r, topic, p, log, ts);
    r->is_open = true;
    r->log_start = plog_start_offset(log);
    r->segments = plog_segment_count(log);
    r->local_start = r->segments > 0 ? plog_segment_base(log, 0) : r->log_start;
    if (r->local_start < r->log_start)
        r->local_start = r->log_start;
    r->end = plog_end_offset(log);
    r->durable = plog_durable_offset(log);
    r->hw = plog_high_watermark(log);
    r->unflushed_bytes = plog_unflushed_bytes(log);
    r->size_bytes = plog_size_bytes(log);
    plog_compact_stats(log, &r->compact);
}

/* The cleaner's figures of a compacted partition, or null. */
static json_t *compaction_json(const prow_t *r)
{
    const plog_compact_stats_t *c = &r->compact;
    if (!r->is_open || !c->is_compacted)
        return json_null();
    return json_pack(
        "{s:f,s:I,s:I,s:I,s:I,s:o,s:o}", "dirty_ratio", c->dirty_ratio, "runs", (json_int_t)c->runs,
        "bytes_read", (json_int_t)c->bytes_read, "bytes_written", (json_int_t)c->bytes_written,
        "records_removed", (json_int_t)c->records_removed, "last_clean_ms",
        c->last_clean_ms >= 0 ? json_integer(c->last_clean_ms) : json_null(), "clean_end_offset",
        c->clean_end >= 0 ? json_integer(c->clean_end) : json_null());
}

static json_t *partition_json(const prow_t *r)
{
    return json_pack("{s:s,s:i,s:i,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}", "topic", r->topic,
                     "partition", (int)r->partition, "shard", r->shard, "open", r->is_open,
                     "log_start_offset", (json_int_t)r->log_start, "local_start_offset",
                     (json_int_t)r->local_start, "high_watermark", (json_int_t)r->hw, "end_offset",
                     (json_int_t)r->end, "durable_offset", (json_int_t)r->durable,
                     "unflushed_bytes", (json_int_t)r->unflushed_bytes, "size_bytes",
                     (json_int_t)r->size_bytes, "segments", r->segments);
}

static bool topic_is_remote(const adm_server_t *s, const char *topic)
{
    return s->o.is_remote && s->o.is_remote(s->o.is_remote_arg, topic);
}

/* The uploader of shard sh, NULL when tiering is not running. */
static struct tier_shard *shard_tier(const adm_server_t *s, rt_shard_t *sh)
{
    return s->o.tiers ? s->o.tiers[rt_shard_id(sh)] : NULL;
}

/* A shard's answer with room for n rows, its tiered storage counters read. */
static prows_t *prows_new(const adm_server_t *s, rt_shard_t *sh, size_t n)
{
    prows_t *rs = malloc(sizeof(*rs) + (n ? n : 1) * sizeof(prow_t));
    if (!rs)
        return NULL;
    rs->n = 0;
    struct tier_shard *ts = s->o.tiers ? s->o.tiers[rt_shard_id(sh)] : NULL;
    rs->has_tier = ts != NULL;
    if (ts) {
        tier_read_stats(ts, &rs->tier);
        tier_gc_stats(ts, &rs->gc);
        tier_acomp_stats(ts, &rs->acomp);
    }
    return rs;
}

static void on_shard_partition(rt_shard_t *sh, adm_gather_t *g, int slot)
{
    tp_arg_t *a = g->arg;
    part_shard_t *ps = adm_shard_parts(sh);
    plog_t *log = ps ? part_get(ps, a->topic, a->partition) : NULL;
    prows_t *rs = prows_new(g->s, sh, 1);
    if (rs) {
        rs->n = 1;
        prow_fill(&rs->rows[0], a->topic, a->partition, log, rt_shard_id(sh),
                  topic_is_remote(g->s, a->topic), shard_tier(g->s, sh));
    }
    g->result[slot] = rs; /* NULL (out of memory) answers 500 */
}

static void partition_done(adm_gather_t *g)
{
    adm_call_t *call = g->call;
    g->call = NULL;
    prows_t *rs = g->result[0];
    if (!rs || rs->n != 1)
        adm_reply_error(call, 500, "internal", "out of memory");
    else
        adm_reply_json(call, 200, partition_json(&rs->rows[0]));
}

/* Parse a decimal partition id. @return 0 or -1. */
static int parse_partition(const char *s, size_t len, int32_t *out)
{
    if (len == 0 || len > 9)
        return -1;
    int32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static void
get_partition(adm_call_t *call, const char *topic, size_t tlen, const char *ptxt, size_t plen)
{
    adm_server_t *s = call->s;
    int32_t p;
    if (parse_partition(ptxt, plen, &p) != 0) {
        adm_reply_error(call, 400, "bad_request", "partition must be a non-negative integer");
        return;
    }
    meta_snap_t *snap = meta_snap_get(s->o.meta);
    const meta_topic_t *t = meta_snap_find(snap, topic, tlen);
    int32_t n_parts = t ? t->n_partitions : -1;
    meta_snap_put(snap);
    if (n_parts < 0) {
        adm_reply_error(call, 404, "unknown_topic", "topic '%.*s' does not exist", (int)tlen,
                        topic);
        return;
    }
    if (p >= n_parts) {
        adm_reply_error(call, 404, "unknown_partition", "topic '%.*s' has %d partitions", (int)tlen,
                        topic, (int)n_parts);
        return;
    }
    tp_arg_t *a = calloc(1, sizeof(*a));
    if (a)
        a->topic = strndup(topic, tlen);
    if (!a || !a->topic) {
        tp_free(a);
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    a->partition = p;
    int owner = rt_shard_for(a->topic, p, rt_shard_count(s->o.rt));
    adm_gather_one(call, owner, on_shard_partition, partition_done, a, tp_free);
}

/* ---- Storage: every partition of every shard (or of one topic) ---- */

typedef struct {
    meta_snap_t *snap; /* referenced */
    char *topic;       /* owned; NULL = all topics */
    bool is_metrics;   /* GET /metrics: render text */
} scan_arg_t;

static void scan_free(void *arg)
{
    scan_arg_t *a = arg;
    if (!a)
        return;
    meta_snap_put(a->snap);
    free(a->topic);
    free(a);
}

/* On each shard: the partitions it owns. Topic names are borrowed from the
 * snapshot the gather's argument references. */
static void on_shard_scan(rt_shard_t *sh, adm_gather_t *g, int slot)
{
    scan_arg_t *a = g->arg;
    part_shard_t *ps = adm_shard_parts(sh);
    int me = rt_shard_id(sh), n = rt_shard_count(rt_shard_rt(sh));
    size_t cap = 0;
    for (int i = 0; i < a->snap->n_topics; i++)
        if (!a->topic || !strcmp(a->topic, a->snap->topics[i].name))
            cap += (size_t)a->snap->topics[i].n_partitions;
    prows_t *rs = prows_new(g->s, sh, cap);
    if (!rs)
        return; /* NULL: answered 500 */
    for (int i = 0; i < a->snap->n_topics; i++) {
        const meta_topic_t *t = &a->snap->topics[i];
        if (a->topic && strcmp(a->topic, t->name) != 0)
            continue;
        bool is_remote = topic_is_remote(g->s, t->name);
        for (int32_t p = 0; p < t->n_partitions; p++) {
            if (rt_shard_for(t->name, p, n) != me)
                continue;
            plog_t *log = ps ? part_get(ps, t->name, p) : NULL;
            prow_fill(&rs->rows[rs->n++], t->name, p, log, me, is_remote, shard_tier(g->s, sh));
        }
    }
    g->result[slot] = rs;
}

/* Every partition answered by the shards, sorted by (topic, partition). */
static int cmp_row(const void *x, const void *y)
{
    const prow_t *a = *(const prow_t *const *)x, *b = *(const prow_t *const *)y;
    int c = strcmp(a->topic, b->topic);
    if (c)
        return c;
    return a->partition < b->partition ? -1 : a->partition > b->partition;
}

/* @return the rows (an owned array of borrowed pointers), or NULL when a
 * shard could not answer or memory ran out. */
static const prow_t **collect(adm_gather_t *g, size_t *n_out)
{
    size_t n = 0;
    for (int i = 0; i < g->n; i++) {
        const prows_t *rs = g->result[i];
        if (!rs)
            return NULL;
        n += rs->n;
    }
    const prow_t **v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return NULL;
    size_t k = 0;
    for (int i = 0; i < g->n; i++) {
        const prows_t *rs = g->result[i];
        for (size_t j = 0; j < rs->n; j++)
            v[k++] = &rs->rows[j];
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_row);
    *n_out = n;
    return v;
}

/* ---- Storage answers ---- */

/* Totals of the tiered storage fields over some partitions. */
typedef struct {
    bool has_remote; /* a partition is remote-enabled or has archived data */
    bool is_remote_known;
    int64_t lag_bytes, lag_segments, remote_bytes, remote_segments;
    int64_t window_offsets, window_bytes, window_age_ms; /* sums; the oldest age */
} tsum_t;

static void tsum_add(tsum_t *t, const prow_t *r)
{
    if (!r->is_remote && r->remote_segments <= 0)
        return;
    if (!t->has_remote)
        t->is_remote_known = true;
    t->has_remote = true;
    t->lag_bytes += r->lag_bytes;
    t->lag_segments += r->lag_segments;
    t->window_offsets += r->window_offsets;
    t->window_bytes += r->window_bytes;
    if (r->window_age_ms > t->window_age_ms)
        t->window_age_ms = r->window_age_ms;
    if (r->remote_bytes < 0)
        t->is_remote_known = false;
    else {
        t->remote_bytes += r->remote_bytes;
        t->remote_segments += r->remote_segments;
    }
}

static json_t *int_or_null(bool is_known, int64_t v)
{
    return is_known ? json_integer(v) : json_null();
}

/* The upload fields of a topic (uploaded_offset only per partition) or a
 * partition (r != NULL); null where remote storage is off. */
static json_t *upload_fields(json_t *o, const tsum_t *t, const prow_t *r)
{
    bool on = t->has_remote;
    json_object_set_new(o, "uploaded_offset",
                        int_or_null(r && r->is_remote, r ? r->uploaded_offset : 0));
    json_object_set_new(o, "upload_lag_bytes", int_or_null(on, t->lag_bytes));
    json_object_set_new(o, "upload_lag_segments", int_or_null(on, t->lag_segments));
    json_object_set_new(o, "unarchived_offsets", int_or_null(on, t->window_offsets));
    json_object_set_new(o, "unarchived_bytes", int_or_null(on, t->window_bytes));
    json_object_set_new(o, "unarchived_age_ms",
                        int_or_null(on && t->window_age_ms >= 0, t->window_age_ms));
    json_object_set_new(o, "remote_bytes", int_or_null(on && t->is_remote_known, t->remote_bytes));
    json_object_set_new(o, "remote_segments",
                        int_or_null(on && t->is_remote_known, t->remote_segments));
    return o;
}

/* Tiered storage counters of every shard, summed. */
typedef struct {
    bool has_tier;
    tier_stats_t t;
    tier_gc_stats_t gc;
    tier_acomp_stats_t acomp;
    const char *last_error; /* borrowed from a shard's answer; NULL = none */
} tier_sum_t;

static void tier_sum(adm_gather_t *g, tier_sum_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < g->n; i++) {
        const prows_t *rs = g->result[i];
        if (!rs || !rs->has_tier)
            continue;
        out->has_tier = true;
        const tier_stats_t *t = &rs->tier;
        out->t.uploaded_segments += t->uploaded_segments;
        out->t.uploaded_active += t->uploaded_active;
        out->t.reconciled += t->reconciled;
        out->t.uploaded_bytes += t->uploaded_bytes;
        out->t.errors += t->errors;
        out->t.corrupt_segments += t->corrupt_segments;
        out->t.active += t->active;
        out->t.reads += t->reads;
        out->t.download_errors += t->download_errors;
        out->t.cache_hits += t->cache_hits;
        out->t.cache_misses += t->cache_misses;
        out->t.cache_evictions += t->cache_evictions;
        out->t.cache_corrupt += t->cache_corrupt;
        out->t.downloads += t->downloads;
        out->t.readahead_downloads += t->readahead_downloads;
        out->t.downloaded_bytes += t->downloaded_bytes;
        out->t.hydrated_bytes += t->hydrated_bytes;
        out->t.shared_waits += t->shared_waits;
        out->t.prefetch_windows += t->prefetch_windows;
        out->t.cache_ahead_hits += t->cache_ahead_hits;
        out->t.cache_bytes += t->cache_bytes;
        out->t.cache_entries += t->cache_entries;
        out->gc.deleted_objects += rs->gc.deleted_objects;
        out->gc.deleted_orphans += rs->gc.deleted_orphans;
        out->gc.errors += rs->gc.errors;
        out->acomp.passes += rs->acomp.passes;
        out->acomp.objects_rewritten += rs->acomp.objects_rewritten;
        out->acomp.bytes_read += rs->acomp.bytes_read;
        out->acomp.bytes_written += rs->acomp.bytes_written;
        out->acomp.records_removed += rs->acomp.records_removed;
        out->acomp.errors += rs->acomp.errors;
        if (!out->last_error && t->last_error[0])
            out->last_error = t->last_error;
    }
}

static json_t *remote_summary(const adm_server_t *s, const tier_sum_t *ts, const tsum_t *all)
{
    bool on = ts->has_tier;
    const tier_stats_t *t = &ts->t;
    int64_t lookups = t->cache_hits + t->cache_misses;
    json_t *o = json_pack("{s:b,s:s}", "enabled",
                          all->has_remote || cfg_bool(s->o.cfg, CFG_REMOTE_SYSTEM_ENABLE),
                          "archive_url", cfg_str(s->o.cfg, CFG_ARCHIVE_URL));
    json_object_set_new(o, "uploaded_bytes", int_or_null(on, t->uploaded_bytes));
    json_object_set_new(o, "uploaded_segments", int_or_null(on, t->uploaded_segments));
    json_object_set_new(o, "upload_errors", int_or_null(on, t->errors));
    json_object_set_new(o, "archive_compaction_passes", int_or_null(on, ts->acomp.passes));
    json_object_set_new(o, "archive_compacted_objects",
                        int_or_null(on, ts->acomp.objects_rewritten));
    json_object_set_new(o, "archive_compaction_bytes_read", int_or_null(on, ts->acomp.bytes_read));
    json_object_set_new(o, "archive_compaction_bytes_written",
                        int_or_null(on, ts->acomp.bytes_written));
    json_object_set_new(o, "cache_bytes", int_or_null(on, t->cache_bytes));
    json_object_set_new(o, "cache_max_bytes", json_integer(cfg_int(s->o.cfg, CFG_CACHE_BYTES)));
    json_object_set_new(o, "cache_entries", int_or_null(on, t->cache_entries));
    json_object_set_new(o, "cache_hits", int_or_null(on, t->cache_hits));
    json_object_set_new(o, "cache_misses", int_or_null(on, t->cache_misses));
    json_object_set_new(o, "cache_hit_rate",
                        on && lookups > 0 ? json_real((double)t->cache_hits / (double)lookups)
                                          : json_null());
    json_object_set_new(o, "last_error",
                        ts->last_error ? json_string(ts->last_error) : json_null());
    json_object_set_new(o, "upload_lag_bytes", int_or_null(all->has_remote, all->lag_bytes));
    json_object_set_new(o, "upload_lag_segments", int_or_null(all->has_remote, all->lag_segments));
    json_object_set_new(o, "unarchived_bytes", int_or_null(all->has_remote, all->window_bytes));
    json_object_set_new(
        o, "unarchived_age_ms",
        int_or_null(all->has_remote && all->window_age_ms >= 0, all->window_age_ms));
    json_object_set_new(o, "uploaded_active_ranges", int_or_null(on, t->uploaded_active));
    json_object_set_new(o, "reconciled_logs", int_or_null(on, t->reconciled));
    json_object_set_new(o, "remote_bytes",
                        int_or_null(all->has_remote && all->is_remote_known, all->remote_bytes));
    json_object_set_new(o, "remote_segments",
                        int_or_null(all->has_remote && all->is_remote_known, all->remote_segments));
    return o;
}

static json_t *
topic_summary(const char *topic, int n_parts, int64_t bytes, int64_t segs, const tsum_t *t)
{
    return upload_fields(json_pack("{s:s,s:i,s:I,s:I}", "topic", topic, "partitions", n_parts,
                                   "local_bytes", (json_int_t)bytes, "local_segments",
                                   (json_int_t)segs),
                         t, NULL);
}

static json_t *partition_storage_json(const prow_t *r)
{
    tsum_t t = {.window_age_ms = -1};
    tsum_add(&t, r);
    json_t *o = upload_fields(
        json_pack("{s:i,s:i,s:I,s:i,s:I,s:I,s:I}", "partition", (int)r->partition, "shard",
                  r->shard, "local_bytes", (json_int_t)r->size_bytes, "local_segments", r->segments,
                  "log_start_offset", (json_int_t)r->log_start, "local_start_offset",
                  (json_int_t)r->local_start, "end_offset", (json_int_t)r->end),
        &t, r);
    json_object_set_new(o, "compaction", compaction_json(r));
    return o;
}

/* The answer of GET /v1/storage[/topics/T] from sorted rows. */
static json_t *storage_json(adm_gather_t *g, const prow_t **v, size_t n)
{
    scan_arg_t *a = g->arg;
    json_t *doc = json_object();
    json_t *parts = json_array();
    json_t *topics = json_array();
    int64_t bytes = 0, segs = 0;     /* all partitions */
    int64_t t_bytes = 0, t_segs = 0; /* the current topic's */
    int t_parts = 0;
    tsum_t all = {.window_age_ms = -1}, tt = {.window_age_ms = -1};
    for (size_t i = 0; i < n; i++) {
        const prow_t *r = v[i];
        bytes += r->size_bytes;
        segs += r->segments;
        t_bytes += r->size_bytes;
        t_segs += r->segments;
        t_parts++;
        tsum_add(&all, r);
        tsum_add(&tt, r);
        if (i + 1 == n || strcmp(v[i + 1]->topic, r->topic) != 0) {
            json_array_append_new(topics, topic_summary(r->topic, t_parts, t_bytes, t_segs, &tt));
            t_bytes = t_segs = t_parts = 0;
            tt = (tsum_t){.window_age_ms = -1};
        }
        json_array_append_new(parts, partition_storage_json(r));
    }
    if (a->topic) {
        json_object_set_new(doc, "topic", json_string(a->topic));
        json_object_set_new(doc, "local_bytes", json_integer(bytes));
        json_object_set_new(doc, "local_segments", json_integer(segs));
        upload_fields(doc, &all, NULL);
        json_object_set_new(doc, "partitions", parts);
        json_decref(topics);
    } else {
        tier_sum_t ts;
        tier_sum(g, &ts);
        json_object_set_new(doc, "local",
                            json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)bytes, "segments",
                                      (json_int_t)segs, "partitions", (json_int_t)n));
        json_object_set_new(doc, "remote", remote_summary(g->s, &ts, &all));
        json_object_set_new(doc, "topics", topics);
        json_decref(parts);
    }
    return doc;
}

/* Remote bytes and segments of each partition, from the remote index (on
 * this loop, paged), then the answer. Owns the gather's results meanwhile. */
typedef struct stor_job stor_job_t;
typedef struct {
    stor_job_t *job;
    prow_t *row; /* borrowed from job->g */
} stor_q_t;

struct stor_job {
    adm_gather_t g; /* a copy: result and arg taken from the finished gather */
    adm_call_t *call;
    const prow_t **v; /* owned: sorted rows */
    size_t n;
    stor_q_t *qs; /* owned: one per row */
    int pending;
};

static void stor_job_finish(stor_job_t *j)
{
    json_t *doc = storage_json(&j->g, j->v, j->n);
    adm_reply_json(j->call, 200, doc);
    for (int i = 0; i < j->g.n; i++)
        free(j->g.result[i]);
    free(j->g.result);
    j->g.free_arg(j->g.arg);
    free(j->v);
    free(j->qs);
    free(j);
}

static void
on_remote_segs(void *arg, int status, const idx_segment_t *segs, size_t n, int64_t next_base_offset)
{
    stor_q_t *q = arg;
    prow_t *r = q->row;
    stor_job_t *j = q->job;
    if (status == 0) {
        if (r->remote_bytes < 0)
            r->remote_bytes = r->remote_segments = 0;
        for (size_t i = 0; i < n; i++)
            r->remote_bytes += segs[i].size;
        r->remote_segments += (int64_t)n;
        adm_server_t *s = j->call->s;
        if (next_base_offset >= 0 && s->idx &&
            idx_list_segments(s->idx, r->topic, r->partition, next_base_offset, IDX_MAX_PAGE,
                              on_remote_segs, q) == 0)
            return; /* the next page */
        if (next_base_offset >= 0)
            r->remote_bytes = r->remote_segments = -1; /* closing: unknown */
    } else {
        r->remote_bytes = r->remote_segments = -1;
    }
    if (--j->pending == 0)
        stor_job_finish(j);
}

static void storage_done(adm_gather_t *g)
{
    adm_server_t *s = g->s;
    size_t n = 0;
    const prow_t **v = collect(g, &n);
    stor_job_t *j = v ? calloc(1, sizeof(*j)) : NULL;
    if (j)
        j->qs = calloc(n ? n : 1, sizeof(*j->qs));
    if (!j || !j->qs) {
        if (j)
            free(j);
        free(v);
        adm_reply_error(g->call, 500, "internal", "out of memory");
        g->call = NULL;
        return;
    }
    /* Take the call, the results and the argument from the gather. */
    j->g = *g;
    j->call = g->call;
    g->call = NULL;
    g->result = NULL;
    g->arg = NULL;
    j->v = v;
    j->n = n;
    j->pending = 1; /* held while submitting */
    for (size_t i = 0; s->idx && i < n; i++) {
        stor_q_t *q = &j->qs[i];
        q->job = j;
        q->row = (prow_t *)v[i];
        if (idx_list_segments(s->idx, v[i]->topic, v[i]->partition, 0, IDX_MAX_PAGE, on_remote_segs,
                              q) == 0)
            j->pending++;
    }
    if (--j->pending == 0)
        stor_job_finish(j);
}

static void get_storage(adm_call_t *call, const char *topic, size_t tlen)
{
    adm_server_t *s = call->s;
    scan_arg_t *a = calloc(1, sizeof(*a));
    if (!a) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    a->snap = meta_snap_get(s->o.meta);
    if (topic) {
        if (!meta_snap_find(a->snap, topic, tlen)) {
            scan_free(a);
            adm_reply_error(call, 404, "unknown_topic", "topic '%.*s' does not exist", (int)tlen,
                            topic);
            return;
        }
        a->topic = strndup(topic, tlen);
        if (!a->topic) {
            scan_free(a);
            adm_reply_error(call, 500, "internal", "out of memory");
            return;
        }
    }
    adm_gather(call, on_shard_scan, storage_done, a, scan_free);
}

/* Rebuild the remote index from the archive and restore the topics and
 * partitions known only from it (tier_recover_start): 202 once started, the
 * outcome goes to the log ("recovery from the archive done ..."). */
static void post_recover(adm_call_t *call)
{
    adm_server_t *s = call->s;
    if (!s->o.idx) {
        adm_reply_error(call, 501, "not_implemented", "this broker has no remote index");
        return;
    }
    char err[512] = "";
    int rc = tier_recover_start(s->o.loop, cfg_str(s->o.cfg, CFG_ARCHIVE_URL), s->o.idx, s->o.meta,
                                cfg_str(s->o.cfg, CFG_LOG_DIR), err, sizeof(err));
    if (rc == ST_E_AGAIN) {
        adm_reply_error(call, 409, "busy", "%s", err);
        return;
    }
    if (rc != 0) {
        adm_reply_error(call, 500, "internal", "%s (%s)", err, st_strerror(rc));
        return;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "status", json_string("started"));
    json_object_set_new(doc, "archive", json_string(cfg_str(s->o.cfg, CFG_ARCHIVE_URL)));
    adm_reply_json(call, 202, doc);
}

/* ---- GET /metrics ---- */

static const char *label_name(st_hist_t h, int label)
{
    if (h != ST_H_REQUEST_LATENCY)
        return NULL;
    const kp_api_t *api = kp_api_get((int16_t)label);
    return api ? api->name : NULL;
}

/* Value of gauge m of a partition, or false when it has none. */
typedef bool (*part_value_fn)(const prow_t *r, size_t m, double *out);

static bool log_value(const prow_t *r, size_t m, double *out)
{
    const int64_t v[] = {r->size_bytes, r->segments, r->log_start,
                         r->end,        r->hw,       r->unflushed_bytes};
    *out = (double)v[m];
    return true;
}

static bool lag_value(const prow_t *r, size_t m, double *out)
{
    static const size_t age = 4;
    *out = (double)(m == 0   ? r->uploaded_offset
                    : m == 1 ? r->lag_bytes
                    : m == 2 ? r->lag_segments
                    : m == 3 ? r->window_bytes
                             : r->window_age_ms / 1000);
    return r->is_remote && (m != age || r->window_age_ms >= 0);
}

/* The cleaner's figures of a compacted partition: its dirty ratio, and when
 * its last pass finished (absent before the first). */
static bool cleaner_value(const prow_t *r, size_t m, double *out)
{
    const plog_compact_stats_t *c = &r->compact;
    if (!r->is_open || !c->is_compacted)
        return false;
    *out = m == 0 ? c->dirty_ratio : (double)c->last_clean_ms / 1000;
    return m == 0 || c->last_clean_ms >= 0;
}

/* Gauges labelled by topic and partition: names[m] = {name, help}. Whole
 * values print as integers. */
static void render_part_gauges(st_mtext_t *t,
                               const char *const (*names)[2],
                               size_t n_names,
                               const prow_t **v,
                               size_t n,
                               part_value_fn value)
{
    for (size_t m = 0; m < n_names; m++) {
        st_mtext_printf(t, "# HELP %s %s\n# TYPE %s gauge\n", names[m][0], names[m][1],
                        names[m][0]);
        for (size_t i = 0; v && i < n; i++) {
            double val;
            if (!value(v[i], m, &val))
                continue;
            st_mtext_printf(t, "%s{topic=\"", names[m][0]);
            st_mtext_label(t, v[i]->topic);
            st_mtext_printf(t, "\",partition=\"%d\"} ", (int)v[i]->partition);
            if (val == (double)(int64_t)val)
                st_mtext_printf(t, "%" PRId64 "\n", (int64_t)val);
            else
                st_mtext_printf(t, "%.17g\n", val);
        }
    }
}

/* Tiered storage metrics: the shards' counters summed, and the upload
 * state of each remote-enabled partition. */
static void render_tier(st_mtext_t *t, adm_gather_t *g, const prow_t **v, size_t n)
{
    tier_sum_t ts;
    tier_sum(g, &ts);
    const tier_stats_t *x = &ts.t;
    const struct {
        const char *name, *type, *help;
        int64_t value;
    } k_tier[] = {
        {"strata_tier_uploaded_segments_total", "counter",
         "Segment objects uploaded to the archive and indexed.", x->uploaded_segments},
        {"strata_tier_uploaded_active_total", "counter",
         "Of those, ranges of an active segment (its unarchived window passed).",
         x->uploaded_active},
        {"strata_tier_reconciled_total", "counter",
         "Logs continued after the archive at start (the archive held more than the local log).",
         x->reconciled},
        {"strata_tier_uploaded_bytes_total", "counter", "Object bytes uploaded (indexed ones).",
         x->uploaded_bytes},
        {"strata_tier_upload_errors_total", "counter", "Failed upload attempts (retried).",
         x->errors},
        {"strata_tier_upload_corrupt_segments_total", "counter",
         "Upload attempts that found a local batch failing its CRC-32C (not archived).",
         x->corrupt_segments},
        {"strata_tier_uploads_active", "gauge", "Partitions uploading a segment now.", x->active},
        {"strata_tier_hydration_requests_total", "counter",
         "Reads of archived data (fetches and timestamp lookups below the local log).", x->reads},
        {"strata_tier_hydration_bytes_total", "counter",
         "Record batch bytes returned to readers from the archive.", x->hydrated_bytes},
        {"strata_tier_hydration_downloads_total", "counter",
         "Ranged GETs of archived chunks (read-ahead included).", x->downloads},
        {"strata_tier_hydration_downloaded_bytes_total", "counter",
         "Object bytes downloaded by those GETs.", x->downloaded_bytes},
        {"strata_tier_hydration_prefetch_windows_total", "counter",
         "Read-ahead GETs queued while two other read-ahead windows were still ahead of the "
         "reader (two GETs in flight across object boundaries).",
         x->prefetch_windows},
        {"strata_tier_hydration_errors_total", "counter",
         "Ranged GETs of archived chunks that failed.", x->download_errors},
        {"strata_tier_cache_hits_total", "counter", "Chunks read from the chunk cache.",
         x->cache_hits},
        {"strata_tier_cache_ahead_hits_total", "counter",
         "Of those, chunks read from the cache ahead of their sequential reader (warm replay).",
         x->cache_ahead_hits},
        {"strata_tier_cache_misses_total", "counter",
         "Chunks a read wanted that the cache did not hold.", x->cache_misses},
        {"strata_tier_cache_evictions_total", "counter",
         "Chunk files evicted to stay under strata.cache.bytes.", x->cache_evictions},
        {"strata_tier_cache_bytes", "gauge", "Bytes in the chunk cache now.", x->cache_bytes},
        {"strata_tier_cache_entries", "gauge", "Chunks in the chunk cache now.", x->cache_entries},
        {"strata_tier_gc_deleted_objects_total", "counter",
         "Archived objects deleted by retention, DeleteRecords, DeleteTopics and orphan GC.",
         ts.gc.deleted_objects + ts.gc.deleted_orphans},
        {"strata_tier_gc_errors_total", "counter", "Failed retention or GC steps.", ts.gc.errors},
        {"strata_tier_archive_compaction_passes_total", "counter",
         "Archive compaction passes run (compacted topics with remote storage).", ts.acomp.passes},
        {"strata_tier_archive_compaction_objects_total", "counter",
         "Archived objects replaced by their compacted rewrite.", ts.acomp.objects_rewritten},
        {"strata_tier_archive_compaction_read_bytes_total", "counter",
         "Object bytes of the archived ranges compacted.", ts.acomp.bytes_read},
        {"strata_tier_archive_compaction_written_bytes_total", "counter",
         "Object bytes of those ranges after compaction.", ts.acomp.bytes_written},
        {"strata_tier_archive_compaction_removed_records_total", "counter",
         "Records archive compaction dropped (older values, expired tombstones).",
         ts.acomp.records_removed},
        {"strata_tier_archive_compaction_errors_total", "counter",
         "Archive compaction passes that failed (retried).", ts.acomp.errors},
    };
    for (size_t m = 0; m < sizeof(k_tier) / sizeof(k_tier[0]); m++)
        st_mtext_printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %" PRId64 "\n", k_tier[m].name,
                        k_tier[m].help, k_tier[m].name, k_tier[m].type, k_tier[m].name,
                        k_tier[m].value);
    static const char *const k_lag[][2] = {
        {"strata_tier_uploaded_offset",
         "Offsets below it are archived and indexed (remote-enabled partitions)."},
        {"strata_tier_upload_lag_bytes",
         "Bytes of sealed local segments not yet uploaded (remote-enabled partitions)."},
        {"strata_tier_upload_lag_segments",
         "Sealed local segments not yet uploaded (remote-enabled partitions)."},
        {"strata_tier_unarchived_bytes",
         "Durable local bytes not archived yet, active segment included: what losing the disk "
         "would lose."},
        {"strata_tier_unarchived_age_seconds",
         "Age in whole seconds of the oldest record not archived yet (absent when none); the "
         "uploader keeps it "
         "under strata.archive.max.upload.interval.ms."},
    };
    render_part_gauges(t, k_lag, sizeof(k_lag) / sizeof(k_lag[0]), v, n, lag_value);
}

static void metrics_done(adm_gather_t *g)
{
    adm_call_t *call = g->call;
    adm_server_t *s = call->s;
    g->call = NULL;
    size_t n = 0;
    const prow_t **v = collect(g, &n); /* NULL: no partition gauges this time */
    st_mtext_t t = {0};
    st_metrics_render(&t, label_name);
    st_mtext_printf(&t,
                    "# HELP strata_build_info Version of this broker.\n"
                    "# TYPE strata_build_info gauge\nstrata_build_info{version=\"%s\"} 1\n"
                    "# HELP strata_uptime_seconds Seconds since the broker started.\n"
                    "# TYPE strata_uptime_seconds gauge\nstrata_uptime_seconds %.3f\n"
                    "# HELP strata_shards Shards (threads with one event loop each).\n"
                    "# TYPE strata_shards gauge\nstrata_shards %d\n",
                    STRATA_VERSION, uptime_s(s), rt_shard_count(s->o.rt));
    static const char *const k_gauges[][2] = {
        {"strata_log_size_bytes", "Bytes of a partition's local log on disk."},
        {"strata_log_segments", "Segments of a partition's local log."},
        {"strata_log_start_offset", "Log start offset of a partition."},
        {"strata_log_end_offset", "Log end offset (next offset) of a partition."},
        {"strata_log_high_watermark",
         "High watermark of a partition: the durable end, or the written end with write.caching."},
        {"strata_log_unflushed_bytes",
         "Bytes of a partition written to the page cache but not yet fdatasynced."},
    };
    render_part_gauges(&t, k_gauges, sizeof(k_gauges) / sizeof(k_gauges[0]), v, n, log_value);
    static const char *const k_cleaner[][2] = {
        {"strata_log_cleaner_dirty_ratio",
         "Dirty share of a compacted partition's cleanable bytes (sealed, durable, older than "
         "min.compaction.lag.ms, uploaded with remote storage): the cleaner takes the highest "
         "first once it passes min.cleanable.dirty.ratio."},
        {"strata_log_cleaner_last_clean_timestamp_seconds",
         "When the last cleaner pass over a compacted partition finished (Unix time; absent "
         "before the first since start)."},
    };
    render_part_gauges(&t, k_cleaner, sizeof(k_cleaner) / sizeof(k_cleaner[0]), v, n,
                       cleaner_value);
    render_tier(&t, g, v, n);
    free(v);
    if (t.is_oom) {
        st_mtext_free(&t);
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    adm_reply_raw(call, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, t.p, t.len);
    st_mtext_free(&t);
}

static void get_metrics(adm_call_t *call)
{
    scan_arg_t *a = calloc(1, sizeof(*a));
    if (!a) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    a->snap = meta_snap_get(call->s->o.meta);
    a->is_metrics = true;
    adm_gather(call, on_shard_scan, metrics_done, a, scan_free);
}

/* ---- Routing ---- */

/* Split path into at most 8 segments after the leading '/'. */
static int split(const char *path, const char *seg[8], size_t len[8])
{
    int n = 0;
    const char *p = path;
    while (*p == '/' && n < 8) {
        p++;
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        seg[n] = p;
        len[n] = l;
        n++;
        p += l;
    }
    if (*p)
        return -1; /* more than 8 segments */
    if (n > 0 && len[n - 1] == 0)
        n--; /* a trailing slash is the same resource */
    return n;
}

static bool seg_is(const char *seg, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(seg, lit, len) == 0;
}

static void method_not_allowed(adm_call_t *call, const char *allow)
{
    char hdr[64];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"method_not_allowed\",\"message\":\"%s is not allowed here; "
                     "allowed: %s\",\"status\":405}\n",
                     call->method, allow);
    adm_reply_raw(call, 405, "application/json", hdr, body, (size_t)n);
}

/* Allowed methods of a route; GET routes also answer HEAD. */
static bool allow(adm_call_t *call, const char *allowed)
{
    const char *m = call->method;
    if (strstr(allowed, "GET") && !strcmp(m, "HEAD"))
        return true;
    char buf[64];
    snprintf(buf, sizeof(buf), ", %s, ", allowed);
    char want[24];
    snprintf(want, sizeof(want), " %s,", m);
    if (strstr(buf, want))
        return true;
    method_not_allowed(call, allowed);
    return false;
}

void adm_route(adm_call_t *call)
{
    const char *seg[8];
    size_t len[8];
    int n = split(call->path, seg, len);
    if (n == 1 && seg_is(seg[0], len[0], "metrics")) {
        if (allow(call, "GET"))
            get_metrics(call);
        return;
    }
    if (n < 2 || !seg_is(seg[0], len[0], "v1"))
        goto not_found;
    if (n == 3 && seg_is(seg[1], len[1], "status")) {
        if (seg_is(seg[2], len[2], "live")) {
            if (allow(call, "GET"))
                get_live(call);
            return;
        }
        if (seg_is(seg[2], len[2], "ready")) {
            if (allow(call, "GET"))
                get_ready(call);
            return;
        }
    }
    if (seg_is(seg[1], len[1], "cluster")) {
        if (n == 2) {
            if (allow(call, "GET"))
                get_cluster(call);
            return;
        }
        if (n == 3 && seg_is(seg[2], len[2], "config")) {
            if (!allow(call, "GET, PUT"))
                return;
            if (!strcmp(call->method, "PUT"))
                adm_config_put(call);
            else
                adm_config_get(call);
            return;
        }
    }
    if (n == 5 && seg_is(seg[1], len[1], "topics") && seg_is(seg[3], len[3], "partitions")) {
        if (allow(call, "GET"))
            get_partition(call, seg[2], len[2], seg[4], len[4]);
        return;
    }
    if (seg_is(seg[1], len[1], "security") && n >= 3 && n <= 4 && seg_is(seg[2], len[2], "users")) {
        adm_users_route(call, n == 4 ? seg[3] : NULL, n == 4 ? len[3] : 0);
        return;
    }
    if (seg_is(seg[1], len[1], "transactions") && n <= 3) {
        if (allow(call, "GET"))
            adm_txn_get(call, n == 3 ? seg[2] : NULL, n == 3 ? len[2] : 0);
        return;
    }
    if (seg_is(seg[1], len[1], "storage")) {
        if (n == 2) {
            if (allow(call, "GET"))
                get_storage(call, NULL, 0);
            return;
        }
        if (n == 4 && seg_is(seg[2], len[2], "topics")) {
            if (allow(call, "GET"))
                get_storage(call, seg[3], len[3]);
            return;
        }
        if (n == 3 && seg_is(seg[2], len[2], "recover")) {
            if (allow(call, "POST"))
                post_recover(call);
            return;
        }
    }
not_found:
    adm_reply_error(call, 404, "not_found", "no such endpoint: %s %s (see docs/admin-api.md)",
                    call->method, call->path);
}
