/* tier_topics.c - the archive's topic manifests (see tier.h).
 * Data path: off the produce/fetch path. On the orphan scanner shard a timer
 * compares the topic table's snapshot version with the last one synced; when
 * it changed (or every TOPICS_RESYNC_MS, since remote storage can also be
 * turned on cluster-wide), it diffs the manifests the archive should hold
 * (one per remote-enabled topic) with those it wrote, then PUTs the changed
 * ones and DELETEs those of deleted topics, one request at a time:
 *   IDLE --version changed--> DIFF --> PUT/DELETE ... --> IDLE (synced)
 *   a failed request: the pass goes on with the next change, then ends
 *   unsynced, so the whole pass is retried at the next tick; a warning at
 *   most every TOPICS_FAIL_LOG_MS says what still fails, and
 *   strata_archive_manifest_errors_total counts each failure.
 * Recovery (tier_recover.c) reads the manifests back, so a topic rebuilt
 * from the bucket gets its partition count and configs, not defaults.
 * Invariants: 1. a manifest only ever describes a topic that existed with
 *                remote storage on; a deleted topic's manifest is deleted;
 *             2. the loop never waits: JSON is built in memory (a topic's
 *                manifest is a few hundred bytes), requests are asynchronous. */
#include "core/st_log.h"
#include "core/st_metrics.h"
#include "tiering/obj.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPICS_RESYNC_MS     60000
#define TOPICS_MAX_CONFIGS   1000
#define TOPICS_MAX_PARTITION 1000000
#define TOPICS_REQ_TIMEOUT   30000
#define TOPICS_FAIL_LOG_MS   300000

typedef struct {
    char *name; /* owned */
    char *json; /* owned: what the archive holds; NULL = delete it */
} tt_entry_t;

struct tier_topics {
    tier_shard_t *ts;
    uv_timer_t timer;
    int64_t synced_version; /* snapshot version fully written; -1 = none */
    uint64_t synced_ms;
    tt_entry_t *written; /* owned: manifests in the archive, sorted by name */
    size_t n_written;
    tt_entry_t *todo; /* owned: changes of the current pass */
    size_t n_todo, next_todo;
    int64_t todo_version;
    bool busy, failing;
    bool pass_failed;     /* a change of the current pass failed */
    uint64_t fail_log_ms; /* the last "cannot write the manifest" line */
    int64_t n_failures;   /* since the manifests were last all written */
    void (*done)(void *);
    void *done_arg;
};

/* ---- The manifest format ---- */

int tier_topic_manifest_key(const char *topic, char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "%s%s.json", TIER_TOPICS_PREFIX, topic);
    return n < 0 || (size_t)n >= out_len ? ST_E_INVAL : 0;
}

int tier_topic_manifest_name(const char *key, char *topic, size_t topic_len)
{
    size_t pl = strlen(TIER_TOPICS_PREFIX), kl = strlen(key);
    if (kl <= pl + 5 || strncmp(key, TIER_TOPICS_PREFIX, pl) != 0 ||
        strcmp(key + kl - 5, ".json") != 0)
        return ST_E_INVAL;
    size_t n = kl - pl - 5;
    if (n >= topic_len || meta_topic_name_invalid(key + pl, n))
        return ST_E_INVAL;
    memcpy(topic, key + pl, n);
    topic[n] = 0;
    return 0;
}

char *tier_topic_manifest_json(const meta_topic_t *t)
{
    json_t *cfg = json_object();
    json_t *root = cfg ? json_pack("{s:i,s:s,s:I,s:O}", "version", 1, "topic", t->name,
                                   "partitions", (json_int_t)t->n_partitions, "configs", cfg)
                       : NULL;
    json_decref(cfg); /* root holds its own reference ("O") */
    if (!root)
        return NULL;
    for (int i = 0; i < t->n_configs; i++)
        if (json_object_set_new(cfg, t->configs[i].key, json_string(t->configs[i].value)) != 0) {
            json_decref(root);
            return NULL;
        }
    char *s = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(root);
    return s;
}

void tier_recover_topic_fini(tier_recover_topic_t *t)
{
    for (int i = 0; i < t->n_configs; i++) {
        free(t->configs[i].key);
        free(t->configs[i].value);
    }
    free(t->configs);
    free(t->name);
    memset(t, 0, sizeof(*t));
}

int tier_topic_manifest_parse(const char *json, size_t len, tier_recover_topic_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len > TIER_TOPICS_MAX_JSON)
        return ST_E_CORRUPT;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *name = json_object_get(root, "topic");
    json_t *parts = json_object_get(root, "partitions");
    json_t *cfg = json_object_get(root, "configs");
    int rc = ST_E_CORRUPT;
    if (!json_is_string(name) || !json_is_integer(parts) || !json_is_object(cfg) ||
        meta_topic_name_invalid(json_string_value(name), json_string_length(name)) ||
        json_integer_value(parts) < 1 || json_integer_value(parts) > TOPICS_MAX_PARTITION ||
        json_object_size(cfg) > TOPICS_MAX_CONFIGS)
        goto out;
    rc = ST_E_NOMEM;
    out->n_partitions = (int32_t)json_integer_value(parts);
    if (!(out->name = strdup(json_string_value(name))) ||
        !(out->configs = calloc(json_object_size(cfg) + 1, sizeof(*out->configs))))
        goto out;
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        if (!json_is_string(v)) {
            rc = ST_E_CORRUPT;
            goto out;
        }
        meta_kv_t *kv = &out->configs[out->n_configs];
        kv->key = strdup(k);
        kv->value = strdup(json_string_value(v));
        out->n_configs++;
        if (!kv->key || !kv->value)
            goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0)
        tier_recover_topic_fini(out);
    return rc;
}

/* ---- Keeping the archive's manifests in step with the topic table ---- */

static void tick(struct tier_topics *tt);

static void entries_free(tt_entry_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].json);
    }
    free(v);
}

static tt_entry_t *find_written(struct tier_topics *tt, const char *name)
{
    size_t lo = 0, hi = tt->n_written;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(tt->written[mid].name, name);
        if (c == 0)
            return &tt->written[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const tt_entry_t *)a)->name, ((const tt_entry_t *)b)->name);
}

/* The archive now holds e (or, with e->json NULL, no longer holds it). */
static int note_written(struct tier_topics *tt, tt_entry_t *e)
{
    tt_entry_t *w = find_written(tt, e->name);
    if (w && !e->json) {
        free(w->name);
        free(w->json);
        size_t i = (size_t)(w - tt->written);
        memmove(w, w + 1, (tt->n_written - i - 1) * sizeof(*w));
        tt->n_written--;
    } else if (w) {
        free(w->json);
        w->json = e->json;
        e->json = NULL;
    } else if (e->json) {
        tt_entry_t *n = realloc(tt->written, (tt->n_written + 1) * sizeof(*n));
        if (!n)
            return ST_E_NOMEM;
        tt->written = n;
        n[tt->n_written++] = *e;
        e->name = e->json = NULL;
        qsort(tt->written, tt->n_written, sizeof(*n), cmp_entry);
    }
    return 0;
}

static void end_pass(struct tier_topics *tt, bool ok)
{
    entries_free(tt->todo, tt->n_todo);
    tt->todo = NULL;
    tt->n_todo = tt->next_todo = 0;
    tt->pass_failed = false;
    if (ok) {
        tt->synced_version = tt->todo_version;
        tt->synced_ms = uv_now(tt->ts->loop);
        if (tt->failing)
            ST_INFO("tier", "topic manifests written to the archive again (after %lld failures)",
                    (long long)tt->n_failures);
        tt->failing = false;
        tt->n_failures = 0;
    }
}

static void on_done(obj_req_t *req, obj_result_t *res, void *arg)
{
    struct tier_topics *tt = arg;
    (void)req;
    tt->busy = false;
    tt_entry_t *e = &tt->todo[tt->next_todo];
    if (res->status != 0 || note_written(tt, e) != 0) {
        /* Retried by the next pass; the others of this pass still go. */
        st_metric_add(ST_M_ARCHIVE_MANIFEST_ERRORS, 1);
        tt->n_failures++;
        uint64_t now = uv_now(tt->ts->loop);
        if (!tt->ts->closing && (!tt->failing || now - tt->fail_log_ms >= TOPICS_FAIL_LOG_MS)) {
            ST_WARN("tier",
                    "cannot %s the manifest of topic %s in the archive: %s %s (%lld failures so "
                    "far, retried every %d ms; until it is written, a recovery from the archive "
                    "gives this topic default configs)",
                    e->json ? "write" : "delete", e->name, st_strerror(res->status), res->errmsg,
                    (long long)tt->n_failures, TIER_TOPICS_CHECK_MS);
            tt->fail_log_ms = now;
        }
        tt->failing = true;
        tt->pass_failed = true;
    }
    tt->next_todo++;
    if (!tt->ts->closing)
        tick(tt);
}

/* Start the next change of the pass; end the pass when none is left. */
static void next_change(struct tier_topics *tt)
{
    if (tt->next_todo == tt->n_todo) {
        end_pass(tt, !tt->pass_failed);
        return;
    }
    tt_entry_t *e = &tt->todo[tt->next_todo];
    char key[IDX_MAX_KEY_LEN];
    int rc = tier_topic_manifest_key(e->name, key, sizeof(key));
    obj_req_t *req = NULL;
    if (rc == 0)
        rc = e->json ? obj_put(tt->ts->store, key, e->json, strlen(e->json), on_done, tt, &req)
                     : obj_delete(tt->ts->store, key, on_done, tt, &req);
    if (rc != 0) {
        end_pass(tt, false);
        return;
    }
    tt->busy = true;
    obj_req_set_timeout(req, TOPICS_REQ_TIMEOUT);
}

static int add_todo(struct tier_topics *tt, const char *name, char *json)
{
    tt_entry_t *n = realloc(tt->todo, (tt->n_todo + 1) * sizeof(*n));
    char *nm = strdup(name);
    if (!n || !nm) {
        if (n)
            tt->todo = n;
        free(nm);
        free(json);
        return ST_E_NOMEM;
    }
    tt->todo = n;
    n[tt->n_todo++] = (tt_entry_t){nm, json};
    return 0;
}

/* Diff the snapshot against what was written: the changes of a new pass. */
static int plan(struct tier_topics *tt, const meta_snap_t *snap)
{
    const tier_opts_t *o = &tt->ts->opts;
    for (int i = 0; i < snap->n_topics; i++) {
        const meta_topic_t *t = &snap->topics[i];
        if (!o->is_remote || !o->is_remote(o->is_remote_arg, t->name))
            continue;
        char *json = tier_topic_manifest_json(t);
        if (!json)
            return ST_E_NOMEM;
        tt_entry_t *w = find_written(tt, t->name);
        if (w && !strcmp(w->json, json))
            free(json);
        else if (add_todo(tt, t->name, json) != 0)
            return ST_E_NOMEM;
    }
    for (size_t i = 0; i < tt->n_written; i++)
        if (!meta_snap_find(snap, tt->written[i].name, strlen(tt->written[i].name)) &&
            add_todo(tt, tt->written[i].name, NULL) != 0)
            return ST_E_NOMEM;
    return 0;
}

static void tick(struct tier_topics *tt)
{
    if (tt->busy || tt->ts->closing)
        return;
    if (tt->todo) {
        next_change(tt);
        return;
    }
    meta_snap_t *snap = meta_snap_get(tt->ts->opts.meta);
    bool stale = uv_now(tt->ts->loop) - tt->synced_ms >= TOPICS_RESYNC_MS;
    if (snap->version != tt->synced_version || stale) {
        tt->todo_version = snap->version;
        if (plan(tt, snap) != 0)
            end_pass(tt, false);
        else if (tt->n_todo == 0)
            end_pass(tt, true);
        else
            next_change(tt);
    }
    meta_snap_put(snap);
}

static void on_timer(uv_timer_t *t)
{
    tick(t->data);
}

int tier__topics_start(tier_shard_t *ts)
{
    struct tier_topics *tt = calloc(1, sizeof(*tt));
    if (!tt)
        return ST_E_NOMEM;
    tt->ts = ts;
    tt->synced_version = -1;
    int rc = uv_timer_init(ts->loop, &tt->timer);
    if (rc != 0) {
        free(tt);
        return rc;
    }
    tt->timer.data = tt;
    uv_timer_start(&tt->timer, on_timer, 0, TIER_TOPICS_CHECK_MS);
    ts->topics = tt;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct tier_topics *tt = h->data;
    entries_free(tt->written, tt->n_written);
    entries_free(tt->todo, tt->n_todo);
    void (*done)(void *) = tt->done;
    void *arg = tt->done_arg;
    free(tt);
    done(arg);
}

void tier__topics_close(tier_shard_t *ts, void (*done)(void *), void *arg)
{
    struct tier_topics *tt = ts->topics;
    if (!tt) {
        done(arg);
        return;
    }
    ts->topics = NULL;
    tt->done = done;
    tt->done_arg = arg;
    uv_close((uv_handle_t *)&tt->timer, on_closed); /* the store is closed: no request left */
}
