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
    snprintf(kafka, sizeof(kafka), "%s:%d", k->listen_host, k->listen_port);
    snprintf(adv, sizeof(adv), "%s:%d", k->adv_host, k->adv_port);
    json_t *doc = json_pack(
        "{s:i,s:s,s:s,s:{s:s,s:s,s:s},s:i,s:f,s:I,s:i,s:I,s:s}", "node_id", (int)k->node_id,
        "cluster_id", k->cluster_id, "version", STRATA_VERSION, "listeners", "kafka", kafka,
        "kafka_advertised", adv, "admin", s->listen_addr, "shards", rt_shard_count(s->o.rt),
        "uptime_seconds", uptime_s(s), "started_at_ms", (json_int_t)s->start_ms, "topics", n_topics,
        "partitions", (json_int_t)n_parts, "archive_url", cfg_str(s->o.cfg, CFG_ARCHIVE_URL));
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
} prow_t;

/* A shard's answer: n rows. */
typedef struct {
    size_t n;
    prow_t rows[];
} prows_t;

static void prow_fill(prow_t *r, const char *topic, int32_t p, plog_t *log, int shard)
{
    memset(r, 0, sizeof(*r));
    r->topic = topic;
    r->partition = p;
    r->shard = shard;
    if (!log)
        return;
    r->is_open = true;
    r->log_start = plog_start_offset(log);
    r->segments = plog_segment_count(log);
    r->local_start = r->segments > 0 ? plog_segment_base(log, 0) : r->log_start;
    if (r->local_start < r->log_start)
        r->local_start = r->log_start;
    r->end = plog_end_offset(log);
    r->durable = plog_durable_offset(log);
    r->size_bytes = plog_size_bytes(log);
}

static json_t *partition_json(const prow_t *r)
{
    return json_pack("{s:s,s:i,s:i,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:i}", "topic", r->topic,
                     "partition", (int)r->partition, "shard", r->shard, "open", r->is_open,
                     "log_start_offset", (json_int_t)r->log_start, "local_start_offset",
                     (json_int_t)r->local_start, "high_watermark", (json_int_t)r->end, "end_offset",
                     (json_int_t)r->end, "durable_offset", (json_int_t)r->durable, "size_bytes",
                     (json_int_t)r->size_bytes, "segments", r->segments);
}

static void on_shard_partition(rt_shard_t *sh, adm_gather_t *g, int slot)
{
    tp_arg_t *a = g->arg;
    part_shard_t *ps = adm_shard_parts(sh);
    plog_t *log = ps ? part_get(ps, a->topic, a->partition) : NULL;
    prows_t *rs = malloc(sizeof(*rs) + sizeof(prow_t));
    if (rs) {
        rs->n = 1;
        prow_fill(&rs->rows[0], a->topic, a->partition, log, rt_shard_id(sh));
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
    prows_t *rs = malloc(sizeof(*rs) + (cap ? cap : 1) * sizeof(prow_t));
    if (!rs)
        return; /* NULL: answered 500 */
    rs->n = 0;
    for (int i = 0; i < a->snap->n_topics; i++) {
        const meta_topic_t *t = &a->snap->topics[i];
        if (a->topic && strcmp(a->topic, t->name) != 0)
            continue;
        for (int32_t p = 0; p < t->n_partitions; p++) {
            if (rt_shard_for(t->name, p, n) != me)
                continue;
            plog_t *log = ps ? part_get(ps, t->name, p) : NULL;
            prow_fill(&rs->rows[rs->n++], t->name, p, log, me);
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

static json_t *upload_fields(json_t *o)
{
    /* Tiered storage is not built yet: its fields exist, as null. */
    json_object_set_new(o, "uploaded_offset", json_null());
    json_object_set_new(o, "upload_lag_bytes", json_null());
    json_object_set_new(o, "upload_lag_segments", json_null());
    json_object_set_new(o, "remote_bytes", json_null());
    json_object_set_new(o, "remote_segments", json_null());
    return o;
}

static json_t *remote_summary(const adm_server_t *s)
{
    return json_pack("{s:b,s:s,s:n,s:n,s:n,s:n,s:n,s:n}", "enabled", 0, "archive_url",
                     cfg_str(s->o.cfg, CFG_ARCHIVE_URL), "uploaded_bytes", "uploaded_segments",
                     "cache_bytes", "cache_hit_rate", "last_error", "upload_lag_bytes");
}

static json_t *topic_summary(const char *topic, int n_parts, int64_t bytes, int64_t segs)
{
    return upload_fields(json_pack("{s:s,s:i,s:I,s:I}", "topic", topic, "partitions", n_parts,
                                   "local_bytes", (json_int_t)bytes, "local_segments",
                                   (json_int_t)segs));
}

static void storage_done(adm_gather_t *g)
{
    scan_arg_t *a = g->arg;
    adm_call_t *call = g->call;
    g->call = NULL;
    size_t n = 0;
    const prow_t **v = collect(g, &n);
    if (!v) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    json_t *doc = json_object();
    json_t *parts = json_array();
    json_t *topics = json_array();
    int64_t bytes = 0, segs = 0;     /* all partitions */
    int64_t t_bytes = 0, t_segs = 0; /* the current topic's */
    int t_parts = 0;
    for (size_t i = 0; i < n; i++) {
        const prow_t *r = v[i];
        bytes += r->size_bytes;
        segs += r->segments;
        t_bytes += r->size_bytes;
        t_segs += r->segments;
        t_parts++;
        if (i + 1 == n || strcmp(v[i + 1]->topic, r->topic) != 0) {
            json_array_append_new(topics, topic_summary(r->topic, t_parts, t_bytes, t_segs));
            t_bytes = t_segs = t_parts = 0;
        }
        json_array_append_new(
            parts,
            upload_fields(json_pack("{s:i,s:i,s:I,s:i,s:I,s:I,s:I}", "partition", (int)r->partition,
                                    "shard", r->shard, "local_bytes", (json_int_t)r->size_bytes,
                                    "local_segments", r->segments, "log_start_offset",
                                    (json_int_t)r->log_start, "local_start_offset",
                                    (json_int_t)r->local_start, "end_offset", (json_int_t)r->end)));
    }
    free(v);
    if (a->topic) {
        json_object_set_new(doc, "topic", json_string(a->topic));
        json_object_set_new(doc, "local_bytes", json_integer(bytes));
        json_object_set_new(doc, "local_segments", json_integer(segs));
        upload_fields(doc);
        json_object_set_new(doc, "partitions", parts);
        json_decref(topics);
    } else {
        json_object_set_new(doc, "local",
                            json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)bytes, "segments",
                                      (json_int_t)segs, "partitions", (json_int_t)n));
        json_object_set_new(doc, "remote", remote_summary(call->s));
        json_object_set_new(doc, "topics", topics);
        json_decref(parts);
    }
    adm_reply_json(call, 200, doc);
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
    };
    for (size_t m = 0; m < sizeof(k_gauges) / sizeof(k_gauges[0]); m++) {
        st_mtext_printf(&t, "# HELP %s %s\n# TYPE %s gauge\n", k_gauges[m][0], k_gauges[m][1],
                        k_gauges[m][0]);
        for (size_t i = 0; v && i < n; i++) {
            const prow_t *r = v[i];
            int64_t val = m == 0   ? r->size_bytes
                          : m == 1 ? r->segments
                          : m == 2 ? r->log_start
                                   : r->end;
            st_mtext_printf(&t, "%s{topic=\"", k_gauges[m][0]);
            st_mtext_label(&t, r->topic);
            st_mtext_printf(&t, "\",partition=\"%d\"} %" PRId64 "\n", (int)r->partition, val);
        }
    }
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
