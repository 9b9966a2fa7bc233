/* tier_recover.c - rebuild the remote index from the bucket alone.
 * Data path: not on the produce/fetch path. When the data directory (and with
 * it remote-index.db) is lost, stratad calls tier_recover_blocking() before
 * the shards start (or an operator asks for it): obj_list() pages through the
 * archive -> for each segment object one ranged GET of its last 64 KiB (a
 * second one when its tables are larger) -> tier_seg_tail_describe() checks
 * the seek table and the Strata chunk table before it and yields the chunk
 * offsets, timestamps, byte ranges and checksums -> idx_segment_add() re-adds
 * the row exactly as the uploader wrote it. An object without a chunk table
 * (or with a damaged one) is read whole with obj_get() (verified against its
 * stored SHA-256) and described on the thread pool by decoding every frame
 * (tier_seg_object_describe). Topic manifests (_strata/topics/) are read
 * into the result for tier_recover_restore().
 *
 * Recovery states (one object at a time, on the caller's loop):
 *   LIST --page--> TAIL (obj_get_range, x1-3) --> ADD (idx)
 *   TAIL --no usable tables--> GET (obj_get) --> DESCRIBE (thread pool) --> ADD
 *   ADD --> TAIL of the next key of the page, or LIST next page, or DONE
 *   a failed TAIL/GET/DESCRIBE/ADD counts the object as failed and goes on.
 *
 * Invariants: 1. keys are listed in byte order, and a partition's keys share
 *                the prefix "<hash>/<topic>/<partition>/" followed by the
 *                20-digit base offset, so each partition's objects arrive in
 *                offset order, as idx_segment_add() requires;
 *             2. an object that overlaps what is already indexed (an orphan
 *                re-uploaded with the same offsets is the same key; anything
 *                else is skipped) never replaces a row (ST_E_EXISTS);
 *             3. nothing here deletes from the bucket;
 *             4. of objects starting at the same offset (a range of an active
 *                segment taken again after a crash lost its index commit),
 *                only the longest, last in byte order, is indexed. */
#include "core/meta.h"
#include "core/st_crc32c.h"
#include "core/st_fs.h"
#include "core/st_log.h"
#include "tiering/seg.h"
#include "tiering/tier.h"
#include "tiering/tier_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECOVER_PAGE 1000
/* A listing fails fast (the store is down: say so at start-up); a GET of a
 * whole segment object (up to segment.bytes) may take long on a slow link. */
#define RECOVER_LIST_TIMEOUT_MS 60000
#define RECOVER_GET_TIMEOUT_MS  600000
/* First tail read: the seek and chunk tables of a segment of up to ~1000
 * frames (52 bytes a frame); larger ones take a second ranged GET. */
#define RECOVER_TAIL_BYTES 65536

typedef struct {
    uv_loop_t *loop;
    obj_store_t *store; /* borrowed */
    idx_client_t *idx;  /* borrowed */
    bool only_if_empty;
    tier_recover_cb cb;
    void *cb_arg;
    tier_recover_result_t res;
    /* the current page */
    char **keys;     /* owned */
    uint64_t *sizes; /* owned: object sizes of keys */
    size_t n_keys, next_key;
    char *token; /* owned: next page, NULL at the end */
    bool has_more;
    /* the object in flight */
    char topic[256];
    int32_t partition;
    uint8_t *obj; /* owned */
    size_t obj_len;
    uint64_t obj_size; /* from the listing */
    int tail_tries;
    uv_work_t work;
    int work_err;
    tier_seg_info_t info;
    char key[1024];
} rec_t;

static void next_object(rec_t *r);
static void list_page(rec_t *r);

int tier_parse_object_key(const char *key,
                          char *topic,
                          size_t topic_len,
                          int32_t *partition,
                          int64_t *base,
                          int64_t *last)
{
    /* <8 hex>/<topic>/<partition>/<20 digits>-<20 digits>-<term>.seg.zst */
    const char *p = key;
    for (int i = 0; i < 8; i++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return ST_E_INVAL;
    if (*p++ != '/')
        return ST_E_INVAL;
    const char *slash = strchr(p, '/');
    if (!slash || slash == p || (size_t)(slash - p) >= topic_len)
        return ST_E_INVAL;
    memcpy(topic, p, (size_t)(slash - p));
    topic[slash - p] = 0;
    char *end;
    long long part = strtoll(slash + 1, &end, 10);
    if (end == slash + 1 || *end != '/' || part < 0 || part > INT32_MAX)
        return ST_E_INVAL;
    p = end + 1;
    long long b = strtoll(p, &end, 10);
    if (end - p != 20 || *end != '-')
        return ST_E_INVAL;
    p = end + 1;
    long long l = strtoll(p, &end, 10);
    if (end - p != 20 || *end != '-' || l < b)
        return ST_E_INVAL;
    p = end + 1;
    (void)strtoll(p, &end, 10);
    if (end == p)
        return ST_E_INVAL;
    if (end[0] == '_' && end[1] == 'c') { /* a compacted rewrite: _c<10 digits> */
        for (int i = 0; i < 10; i++)
            if (end[2 + i] < '0' || end[2 + i] > '9')
                return ST_E_INVAL;
        end += 12;
    }
    if (strcmp(end, ".seg.zst") != 0)
        return ST_E_INVAL;
    *partition = (int32_t)part;
    *base = b;
    *last = l;
    return 0;
}

static void free_page(rec_t *r)
{
    for (size_t i = 0; i < r->n_keys; i++)
        free(r->keys[i]);
    free(r->keys);
    free(r->sizes);
    r->keys = NULL;
    r->sizes = NULL;
    r->n_keys = r->next_key = 0;
}

static void finish(rec_t *r, int status)
{
    free_page(r);
    free(r->token);
    if (r->res.was_not_empty)
        ST_INFO("tier", "recovery from the archive not needed: the remote index has objects");
    else
        ST_INFO("tier",
                "recovery from the archive done status=%s objects=%" PRId64 " (from their tables "
                "alone: %" PRId64 ") skipped=%" PRId64 " failed=%" PRId64
                " partitions=%zu topics=%zu",
                st_strerror(status), r->res.objects, r->res.tail_only, r->res.skipped,
                r->res.failed, r->res.n_parts, r->res.n_topics);
    tier_recover_cb cb = r->cb;
    void *arg = r->cb_arg;
    tier_recover_result_t res = r->res;
    free(r);
    cb(arg, status, &res); /* the callee owns res.parts */
}

/* Remember (topic, partition) and its offset range for the caller. */
static int note_part(rec_t *r, int64_t base, int64_t last)
{
    tier_recover_part_t *p = NULL;
    if (r->res.n_parts > 0) {
        tier_recover_part_t *q = &r->res.parts[r->res.n_parts - 1];
        if (q->partition == r->partition && !strcmp(q->topic, r->topic))
            p = q;
    }
    if (!p) {
        tier_recover_part_t *n = realloc(r->res.parts, (r->res.n_parts + 1) * sizeof(*n));
        if (!n)
            return ST_E_NOMEM;
        r->res.parts = n;
        p = &n[r->res.n_parts++];
        memset(p, 0, sizeof(*p));
        snprintf(p->topic, sizeof(p->topic), "%s", r->topic);
        p->partition = r->partition;
        p->low_offset = base;
        p->high_offset = last;
    }
    if (base < p->low_offset)
        p->low_offset = base;
    if (last > p->high_offset)
        p->high_offset = last;
    return 0;
}

/* ---- ADD ---- */

static void on_added(void *arg, int status)
{
    rec_t *r = arg;
    if (status == 0) {
        r->res.objects++;
        r->res.bytes += (int64_t)r->obj_len;
        if (note_part(r, r->info.base_offset, r->info.last_offset) != 0)
            r->res.failed++;
    } else if (status == ST_E_EXISTS) {
        r->res.skipped++;
        ST_WARN("tier", "recovery: object overlaps indexed data, skipped key=%s", r->key);
    } else {
        r->res.failed++;
        ST_WARN("tier", "recovery: cannot index key=%s: %s", r->key, st_strerror(status));
    }
    free(r->obj);
    r->obj = NULL;
    tier_seg_info_fini(&r->info);
    memset(&r->info, 0, sizeof(r->info));
    next_object(r);
}

/* ---- DESCRIBE (thread pool) ---- */

static void add_row(rec_t *r);

static int describe(rec_t *r)
{
    return tier_seg_object_describe(r->obj, r->obj_len, NULL, NULL, &r->info);
}

static void describe_work(uv_work_t *w)
{
    rec_t *r = w->data;
    r->work_err = describe(r);
}

static void describe_done(uv_work_t *w, int status)
{
    rec_t *r = w->data;
    int err = status ? status : r->work_err;
    if (err != 0) {
        r->res.failed++;
        ST_WARN("tier", "recovery: cannot read the seek table or frames of key=%s: %s", r->key,
                st_strerror(err));
        free(r->obj);
        r->obj = NULL;
        tier_seg_info_fini(&r->info);
        memset(&r->info, 0, sizeof(r->info));
        next_object(r);
        return;
    }
    add_row(r);
}

/* Add the row of the described object r->info under r->key. */
static void add_row(rec_t *r)
{
    idx_chunk_t *chunks = calloc(r->info.n_chunks, sizeof(*chunks));
    int rc = ST_E_NOMEM;
    if (chunks) {
        for (size_t i = 0; i < r->info.n_chunks; i++) {
            const tier_seg_chunk_t *c = &r->info.chunks[i];
            chunks[i] = (idx_chunk_t){c->first_offset,     c->last_offset, c->first_ts, c->max_ts,
                                      (int64_t)c->obj_pos, c->obj_len,     c->raw_len,  c->crc32c};
        }
        idx_segment_t row = {.topic = r->topic,
                             .partition = r->partition,
                             .base_offset = r->info.base_offset,
                             .last_offset = r->info.last_offset,
                             .base_ts = r->info.base_ts,
                             .max_ts = r->info.max_ts,
                             .size = (int64_t)r->info.obj_size,
                             .object_key = r->key,
                             .checksum = r->info.obj_crc32c,
                             .term = 0,
                             .state = IDX_SEG_LIVE,
                             /* the same layout (tier_up.c asserts it) */
                             .aborted = (const idx_aborted_t *)r->info.aborted,
                             .n_aborted = r->info.n_aborted};
        rc = idx_segment_add(r->idx, &row, chunks, r->info.n_chunks, on_added, r);
        free(chunks);
    }
    if (rc != 0)
        on_added(r, rc);
}

/* ---- GET ---- */

static void on_get(obj_req_t *req, obj_result_t *res, void *arg)
{
    rec_t *r = arg;
    (void)req;
    if (res->status != 0) {
        r->res.failed++;
        ST_WARN("tier", "recovery: cannot read key=%s: %s %s", r->key, st_strerror(res->status),
                res->errmsg);
        next_object(r);
        return;
    }
    r->obj_len = res->data_len;
    r->obj = obj_result_take_data(res);
    r->work.data = r;
    r->work_err = 0;
    int rc = uv_queue_work(r->loop, &r->work, describe_work, describe_done);
    if (rc != 0) {
        r->work_err = rc;
        describe_done(&r->work, 0);
    }
}

/* A topic manifest: remember its partition count and configs. */
static void on_manifest(obj_req_t *req, obj_result_t *res, void *arg)
{
    rec_t *r = arg;
    (void)req;
    tier_recover_topic_t t;
    int rc = res->status;
    if (rc == 0)
        rc = tier_topic_manifest_parse((const char *)res->data, res->data_len, &t);
    if (rc == 0) {
        tier_recover_topic_t *n = realloc(r->res.topics, (r->res.n_topics + 1) * sizeof(*n));
        if (n) {
            r->res.topics = n;
            n[r->res.n_topics++] = t;
        } else {
            tier_recover_topic_fini(&t);
            rc = ST_E_NOMEM;
        }
    }
    if (rc != 0)
        ST_WARN("tier",
                "recovery: cannot read the topic manifest key=%s: %s %s (the topic "
                "gets default configs)",
                r->key, st_strerror(rc), res->status ? res->errmsg : "");
    next_object(r);
}

/* ---- TAIL: the seek and chunk tables only ---- */

static void get_whole(rec_t *r)
{
    obj_req_t *req;
    int rc = obj_get(r->store, r->key, on_get, r, &req);
    if (rc != 0) {
        finish(r, rc);
        return;
    }
    obj_req_set_timeout(req, RECOVER_GET_TIMEOUT_MS);
}

static void get_tail(rec_t *r, uint64_t want);

static void on_tail(obj_req_t *req, obj_result_t *res, void *arg)
{
    rec_t *r = arg;
    (void)req;
    if (res->status != 0) {
        r->res.failed++;
        ST_WARN("tier", "recovery: cannot read the tail of key=%s: %s %s", r->key,
                st_strerror(res->status), res->errmsg);
        next_object(r);
        return;
    }
    uint64_t need = 0;
    int rc = tier_seg_tail_describe(res->data, res->data_len, r->obj_size, &need, &r->info);
    if (rc == 0) {
        r->obj_len = r->obj_size;
        r->res.tail_only++;
        add_row(r);
    } else if (rc == ST_E_AGAIN && r->tail_tries < 3 && need > res->data_len) {
        get_tail(r, need);
    } else {
        /* No chunk table (another writer) or a damaged tail: decoding the
         * whole object decides. */
        if (rc != ST_E_NOTFOUND)
            ST_WARN("tier",
                    "recovery: the tables at the end of key=%s are unusable (%s); "
                    "reading the whole object",
                    r->key, st_strerror(rc));
        get_whole(r);
    }
}

static void get_tail(rec_t *r, uint64_t want)
{
    if (want > r->obj_size)
        want = r->obj_size;
    r->tail_tries++;
    obj_req_t *req;
    int rc = want == 0
                 ? ST_E_INVAL
                 : obj_get_range(r->store, r->key, r->obj_size - want, want, on_tail, r, &req);
    if (rc != 0) {
        finish(r, rc);
        return;
    }
    obj_req_set_timeout(req, RECOVER_LIST_TIMEOUT_MS);
}

int tier_object_key_gen(const char *key, uint32_t *gen)
{
    char topic[256];
    int32_t partition;
    int64_t base, last;
    int rc = tier_parse_object_key(key, topic, sizeof(topic), &partition, &base, &last);
    if (rc != 0)
        return rc;
    /* Parsed: a generation is exactly "_c<10 digits>" before ".seg.zst". */
    size_t n = strlen(key), sfx = strlen(".seg.zst") + 12;
    const char *c = n > sfx ? key + n - sfx : key;
    *gen = c[0] == '_' && c[1] == 'c' ? (uint32_t)strtoul(c + 2, NULL, 10) : 0;
    return 0;
}

/* Does the next key of the page start at the same offset of the same
 * partition (r->topic, r->partition)? Ranges of an active segment are cut at
 * its durable end when they are taken: an upload whose index commit was lost
 * (a crash) is taken again later, longer, from the same offset. The longer
 * one (later in byte order) is the indexed one; the shorter is an orphan.
 * So is an object that a compacted rewrite (same range, "_c<gen>" suffix,
 * later in byte order) replaced, or would have, had its pass not been cut
 * short: either is a valid state of the partition. */
static bool is_superseded(rec_t *r, int64_t base)
{
    if (r->next_key >= r->n_keys)
        return false;
    char topic[256];
    int32_t partition;
    int64_t nbase, nlast;
    return tier_parse_object_key(r->keys[r->next_key], topic, sizeof(topic), &partition, &nbase,
                                 &nlast) == 0 &&
           nbase == base && partition == r->partition && !strcmp(topic, r->topic);
}

static void next_object(rec_t *r)
{
    while (r->next_key < r->n_keys) {
        const char *key = r->keys[r->next_key++];
        int64_t base, last;
        char name[META_TOPIC_MAX + 1];
        if (tier_topic_manifest_name(key, name, sizeof(name)) == 0) {
            snprintf(r->key, sizeof(r->key), "%s", key);
            obj_req_t *req;
            int rc = obj_get(r->store, r->key, on_manifest, r, &req);
            if (rc != 0) {
                finish(r, rc);
                return;
            }
            obj_req_set_timeout(req, RECOVER_LIST_TIMEOUT_MS);
            return;
        }
        if (tier_parse_object_key(key, r->topic, sizeof(r->topic), &r->partition, &base, &last) !=
            0) {
            r->res.skipped++; /* not a segment object */
            continue;
        }
        if (is_superseded(r, base)) {
            ST_INFO("tier", "recovery: %s is superseded by a longer object from the same offset",
                    key);
            r->res.skipped++;
            continue;
        }
        snprintf(r->key, sizeof(r->key), "%s", key);
        r->obj_size = r->sizes[r->next_key - 1];
        r->tail_tries = 0;
        get_tail(r, r->obj_size < RECOVER_TAIL_BYTES ? r->obj_size : RECOVER_TAIL_BYTES);
        return;
    }
    free_page(r);
    if (r->has_more) {
        list_page(r);
        return;
    }
    finish(r, 0);
}

/* ---- LIST ---- */

static void on_list(obj_req_t *req, obj_result_t *res, void *arg)
{
    rec_t *r = arg;
    (void)req;
    if (res->status != 0) {
        ST_WARN("tier", "recovery: cannot list the archive: %s %s", st_strerror(res->status),
                res->errmsg);
        finish(r, res->status);
        return;
    }
    free(r->token);
    r->token = res->next_token ? strdup(res->next_token) : NULL;
    r->has_more = res->next_token != NULL;
    r->keys = calloc(res->n_entries ? res->n_entries : 1, sizeof(*r->keys));
    r->sizes = calloc(res->n_entries ? res->n_entries : 1, sizeof(*r->sizes));
    if (!r->keys || !r->sizes || (res->next_token && !r->token)) {
        finish(r, ST_E_NOMEM);
        return;
    }
    for (size_t i = 0; i < res->n_entries; i++)
        if ((r->keys[r->n_keys] = strdup(res->entries[i].key)) != NULL)
            r->sizes[r->n_keys++] = res->entries[i].size_bytes;
    next_object(r);
}

static void list_page(rec_t *r)
{
    obj_req_t *req;
    int rc = obj_list(r->store, "", r->token, RECOVER_PAGE, on_list, r, &req);
    if (rc != 0)
        finish(r, rc);
    else
        obj_req_set_timeout(req, RECOVER_LIST_TIMEOUT_MS);
}

static void
on_index_probe(void *arg, int status, const char *const *keys, size_t n, const char *next_after)
{
    rec_t *r = arg;
    (void)keys;
    (void)next_after;
    if (status != 0) {
        finish(r, status);
        return;
    }
    if (n > 0) {
        r->res.was_not_empty = true;
        finish(r, 0);
        return;
    }
    list_page(r);
}

int tier_recover(uv_loop_t *loop,
                 obj_store_t *store,
                 idx_client_t *idx,
                 bool only_if_empty,
                 tier_recover_cb cb,
                 void *arg)
{
    rec_t *r = calloc(1, sizeof(*r));
    if (!r)
        return ST_E_NOMEM;
    r->loop = loop;
    r->store = store;
    r->idx = idx;
    r->only_if_empty = only_if_empty;
    r->cb = cb;
    r->cb_arg = arg;
    int rc;
    obj_req_t *req;
    if (only_if_empty)
        rc = idx_list_keys(idx, NULL, 1, on_index_probe, r);
    else if ((rc = obj_list(store, "", NULL, RECOVER_PAGE, on_list, r, &req)) == 0)
        obj_req_set_timeout(req, RECOVER_LIST_TIMEOUT_MS);
    if (rc != 0)
        free(r);
    else
        ST_INFO("tier", "recovery: %s the remote index from %s",
                only_if_empty ? "checking" : "rebuilding", obj_store_name(store));
    return rc;
}

/* ---- Blocking wrapper for start-up ---- */

typedef struct {
    bool done;
    int status;
    tier_recover_result_t res;
} sync_t;

static void on_sync_done(void *arg, int status, const tier_recover_result_t *res)
{
    sync_t *s = arg;
    s->done = true;
    s->status = status;
    s->res = *res;
}

static void on_closed(void *arg)
{
    (void)arg;
}

int tier_recover_blocking(const char *archive_url,
                          idx_t *idx,
                          bool only_if_empty,
                          tier_recover_result_t *out,
                          char *errbuf,
                          size_t errbuf_len)
{
    memset(out, 0, sizeof(*out));
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc != 0)
        return rc;
    obj_config_t oc;
    memset(&oc, 0, sizeof(oc));
    oc.url = archive_url;
    obj_store_t *store = NULL;
    idx_client_t *c = NULL;
    sync_t s = {0};
    rc = obj_store_new(&loop, &oc, &store, errbuf, errbuf_len);
    if (rc == 0 && (rc = idx_client_new(idx, &loop, &c)) != 0)
        snprintf(errbuf, errbuf_len, "cannot open a remote index client: %s", st_strerror(rc));
    if (rc == 0 && (rc = tier_recover(&loop, store, c, only_if_empty, on_sync_done, &s)) != 0)
        snprintf(errbuf, errbuf_len, "cannot start recovery: %s", st_strerror(rc));
    while (rc == 0 && !s.done)
        uv_run(&loop, UV_RUN_ONCE);
    if (rc == 0 && s.status != 0) {
        rc = s.status;
        snprintf(errbuf, errbuf_len, "recovery from %s failed: %s", archive_url, st_strerror(rc));
    }
    if (rc == 0)
        *out = s.res;
    else
        tier_recover_result_fini(&s.res);
    if (c)
        idx_client_close(c, on_closed, NULL);
    if (store)
        obj_store_close(store, on_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        ST_WARN("tier", "recovery: a handle of the temporary loop is still open");
    return rc;
}

/* ---- Restoring topics and partition starts ---- */

typedef struct {
    uv_work_t work;
    uv_loop_t *loop;
    meta_t *meta;               /* borrowed */
    char *data_dir;             /* owned */
    tier_recover_part_t *parts; /* owned */
    size_t n_parts;
    tier_recover_topic_t *topics; /* owned: manifests */
    size_t n_topics;
    int pending; /* meta_create_topic callbacks */
    int failed;
    tier_restore_cb cb;
    void *arg;
} restore_t;

/* Thread pool: a partition with no directory starts after its archived
 * offsets (plog_open creates a new log at its log-start-offset checkpoint). */
static void restore_dirs(uv_work_t *w)
{
    restore_t *r = w->data;
    bool created = false;
    for (size_t i = 0; i < r->n_parts; i++) {
        const tier_recover_part_t *p = &r->parts[i];
        char path[PATH_MAX], ckpt[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/%s-%d", r->data_dir, p->topic, p->partition);
        if (mkdir(path, 0755) != 0)
            continue; /* exists: the log has its own offsets */
        snprintf(ckpt, sizeof(ckpt), "%s/log-start-offset", path);
        FILE *f = fopen(ckpt, "w");
        if (!f || fprintf(f, "%lld\n", (long long)p->high_offset + 1) < 0 || fflush(f) != 0 ||
            fsync(fileno(f)) != 0) {
            ST_WARN("tier", "recovery: cannot write %s: %s", ckpt, strerror(errno));
            r->failed++;
        }
        if (f)
            fclose(f);
        created = true;
        /* The checkpoint's entry in the new directory, and that directory
         * in the data directory (below), are durable before the log opens. */
        int rc = st_fsync_dir(path);
        if (rc != 0) {
            ST_WARN("tier", "recovery: cannot sync %s: %s", path, st_strerror(rc));
            r->failed++;
        }
    }
    int rc = created ? st_fsync_dir(r->data_dir) : 0;
    if (rc != 0) {
        ST_WARN("tier", "recovery: cannot sync %s: %s", r->data_dir, st_strerror(rc));
        r->failed++;
    }
}

static void restore_finish(restore_t *r)
{
    int status = r->failed ? ST_E_IO : 0;
    tier_restore_cb cb = r->cb;
    void *arg = r->arg;
    tier_recover_result_t res = {
        .parts = r->parts, .n_parts = r->n_parts, .topics = r->topics, .n_topics = r->n_topics};
    tier_recover_result_fini(&res);
    free(r->data_dir);
    free(r);
    cb(arg, status);
}

static void on_topic_created(void *arg, int status, const char *msg)
{
    restore_t *r = arg;
    if (status != 0 && status != ST_E_EXISTS) {
        r->failed++;
        ST_WARN("tier", "recovery: cannot recreate a topic: %s", msg ? msg : st_strerror(status));
    }
    if (--r->pending == 0)
        restore_finish(r);
}

/* Create topic unless meta knows it: partition count = the larger of its
 * manifest's and its highest archived partition + 1; configs from the
 * manifest, with remote storage on (its data is in the archive). */
static void restore_topic(restore_t *r, const char *topic, const tier_recover_topic_t *m)
{
    meta_snap_t *snap = meta_snap_get(r->meta);
    bool known = meta_snap_find(snap, topic, strlen(topic)) != NULL;
    meta_snap_put(snap);
    if (known)
        return;
    int32_t n = m ? m->n_partitions : 0;
    for (size_t j = 0; j < r->n_parts; j++)
        if (!strcmp(r->parts[j].topic, topic) && r->parts[j].partition + 1 > n)
            n = r->parts[j].partition + 1;
    int n_cfg = m ? m->n_configs : 0;
    meta_kv_t *cfg = calloc((size_t)n_cfg + 1, sizeof(*cfg));
    if (!cfg) {
        r->failed++;
        return;
    }
    bool has_remote = false;
    for (int i = 0; i < n_cfg; i++) {
        cfg[i] = m->configs[i];
        has_remote |= !strcmp(cfg[i].key, "remote.storage.enable");
    }
    if (!has_remote)
        cfg[n_cfg++] = (meta_kv_t){"remote.storage.enable", "true"};
    ST_INFO("tier",
            "recovery: recreating topic %s with %d partitions and %d configs from the "
            "archive%s",
            topic, (int)n, n_cfg, m ? "" : " (no manifest: default configs)");
    meta_topic_spec_t spec = {topic, n, cfg, n_cfg};
    r->pending++;
    meta_create_topic(r->meta, r->loop, &spec, on_topic_created, r); /* copies spec */
    free(cfg);
}

static void restore_topics(uv_work_t *w, int status)
{
    restore_t *r = w->data;
    if (status != 0)
        r->failed++;
    r->pending = 1; /* held until every topic was submitted */
    for (size_t i = 0; i < r->n_topics; i++)
        restore_topic(r, r->topics[i].name, &r->topics[i]);
    for (size_t i = 0; i < r->n_parts; i++) {
        const char *topic = r->parts[i].topic;
        bool seen = false; /* keys are ordered by hash: a topic's partitions are spread */
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(r->parts[j].topic, topic);
        for (size_t j = 0; j < r->n_topics && !seen; j++)
            seen = !strcmp(r->topics[j].name, topic);
        if (!seen)
            restore_topic(r, topic, NULL);
    }
    if (--r->pending == 0)
        restore_finish(r);
}

void tier_recover_result_fini(tier_recover_result_t *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->n_topics; i++)
        tier_recover_topic_fini(&res->topics[i]);
    free(res->topics);
    free(res->parts);
    res->topics = NULL;
    res->parts = NULL;
    res->n_topics = res->n_parts = 0;
}

int tier_recover_restore(uv_loop_t *loop,
                         struct meta *meta,
                         const char *data_dir,
                         tier_recover_result_t *res,
                         tier_restore_cb cb,
                         void *arg)
{
    restore_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->data_dir = strdup(data_dir))) {
        free(r);
        return ST_E_NOMEM;
    }
    r->loop = loop;
    r->meta = meta;
    r->cb = cb;
    r->arg = arg;
    r->work.data = r;
    r->parts = res->parts; /* moved before the work starts: it reads them */
    r->n_parts = res->n_parts;
    r->topics = res->topics;
    r->n_topics = res->n_topics;
    int rc = uv_queue_work(loop, &r->work, restore_dirs, restore_topics);
    if (rc != 0) {
        free(r->data_dir);
        free(r);
        return rc; /* res still owns them */
    }
    res->parts = NULL;
    res->topics = NULL;
    res->n_parts = res->n_topics = 0;
    return 0;
}

/* ---- Rebuild on demand (POST /v1/storage/recover) ---- */

typedef struct {
    uv_loop_t *loop;
    obj_store_t *store; /* owned */
    idx_client_t *idx;  /* owned */
    meta_t *meta;       /* borrowed */
    char *data_dir;     /* owned */
    int closing;
} ondemand_t;

static bool g_recovering; /* one rebuild at a time per process (its loop only) */

static void ondemand_step_closed(void *arg)
{
    ondemand_t *o = arg;
    if (--o->closing > 0)
        return;
    free(o->data_dir);
    free(o);
    g_recovering = false;
}

static void ondemand_finish(ondemand_t *o)
{
    o->closing = 2;
    idx_client_close(o->idx, ondemand_step_closed, o);
    obj_store_close(o->store, ondemand_step_closed, o);
}

static void ondemand_restored(void *arg, int status)
{
    ondemand_t *o = arg;
    if (status != 0)
        ST_WARN("tier", "recovery: restoring topics failed: %s", st_strerror(status));
    ondemand_finish(o);
}

static void ondemand_recovered(void *arg, int status, const tier_recover_result_t *res)
{
    ondemand_t *o = arg;
    tier_recover_result_t own = *res;
    bool any = own.n_parts > 0 || own.n_topics > 0;
    int rc = status;
    if (status == 0 && any)
        rc = tier_recover_restore(o->loop, o->meta, o->data_dir, &own, ondemand_restored, o);
    tier_recover_result_fini(&own); /* nothing left when restore took it */
    if (status != 0 || !any || rc != 0)
        ondemand_finish(o);
}

int tier_recover_start(uv_loop_t *loop,
                       const char *archive_url,
                       idx_t *idx,
                       struct meta *meta,
                       const char *data_dir,
                       char *errbuf,
                       size_t errbuf_len)
{
    if (g_recovering) {
        snprintf(errbuf, errbuf_len, "a recovery is already running");
        return ST_E_AGAIN;
    }
    ondemand_t *o = calloc(1, sizeof(*o));
    if (!o || !(o->data_dir = strdup(data_dir))) {
        free(o);
        return ST_E_NOMEM;
    }
    o->loop = loop;
    o->meta = meta;
    obj_config_t oc;
    memset(&oc, 0, sizeof(oc));
    oc.url = archive_url;
    int rc = obj_store_new(loop, &oc, &o->store, errbuf, errbuf_len);
    if (rc == 0 && (rc = idx_client_new(idx, loop, &o->idx)) != 0) {
        snprintf(errbuf, errbuf_len, "cannot open a remote index client: %s", st_strerror(rc));
        obj_store_close(o->store, NULL, NULL);
    }
    if (rc == 0 && (rc = tier_recover(loop, o->store, o->idx, false, ondemand_recovered, o)) != 0) {
        snprintf(errbuf, errbuf_len, "cannot start recovery: %s", st_strerror(rc));
        ondemand_finish(o);
        return rc;
    }
    if (rc != 0) {
        free(o->data_dir);
        free(o);
        return rc;
    }
    g_recovering = true;
    return 0;
}
