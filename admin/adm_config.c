/* adm_config.c - GET and PUT /v1/cluster/config: the broker's configuration
 * with each value's source, and validated, persisted changes applied live.
 * Data path: an operator PUTs {"upsert": {...}, "remove": [...]} -> every key
 * is checked against the key table (known, reloadable, valid value) -> the
 * overrides are written to log.dir/cluster_config.yaml (atomically: temp
 * file, fsync, rename), which stratad applies at its next start
 * (adm_config_load) -> each reloadable key is applied to the running broker
 * (apply_live): the log level, the _Atomic limits of the Kafka context, or a
 * new version of the log defaults, which every shard then applies to the
 * partitions it has open (adm_gather + kh_shard_apply_defaults) before the
 * answer goes out, so the change is in effect when the client reads it.
 * Invariants: 1. the running cfg_t is never modified here (shards read it
 *                without a lock); live values are kept in s->live;
 *             2. a PUT is all or nothing: one bad key refuses all of it;
 *             3. a published log-defaults version is never changed or freed
 *                while shards run (adm_config_fini frees them at exit).
 * The file is small and written on the admin loop, never on a shard's. */
#include "admin/adm_int.h"
#include "core/part.h"
#include "core/st_fs.h"
#include "core/st_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADM_CFG_FILE   "cluster_config.yaml"
#define ADM_CFG_ORIGIN "admin API"

/* One published version of the log defaults (kh_ctx_t.log_defaults). */
typedef struct adm_defaults {
    struct adm_defaults *next;
    plog_config_t cfg;
} adm_defaults_t;

static json_t *value_json(const cfg_t *c, cfg_key_t k)
{
    if (cfg_sensitive(k))
        return json_null(); /* a secret is never shown */
    switch (cfg_type(k)) {
    case CFG_INT:
        return json_integer(cfg_int(c, k));
    case CFG_BOOL:
        return json_boolean(cfg_bool(c, k));
    case CFG_STR:
        break;
    }
    return json_string(cfg_str(c, k));
}

static const char *type_name(cfg_key_t k)
{
    switch (cfg_type(k)) {
    case CFG_INT:
        return "int";
    case CFG_BOOL:
        return "bool";
    case CFG_STR:
        break;
    }
    return "string";
}

/* Whether the value k started with came from the persisted file. */
static bool from_file(const adm_server_t *s, cfg_key_t k)
{
    const char *o = cfg_origin(s->o.cfg, k);
    size_t n = s->cfg_path ? strlen(s->cfg_path) : 0;
    return n && !strncmp(o, s->cfg_path, n) && o[n] == ':';
}

/* Set by the environment or a flag: those win over the persisted file, now
 * and at the next start, so a PUT of such a key changes nothing running. */
static bool is_shadowed(const adm_server_t *s, cfg_key_t k)
{
    const char *o = cfg_origin(s->o.cfg, k);
    return !strncmp(o, "STRATA_", 7) || !strcmp(o, "command line");
}

void adm_config_get(adm_call_t *call)
{
    adm_server_t *s = call->s;
    json_t *arr = json_array();
    for (int i = 0; arr && i < CFG__COUNT; i++) {
        cfg_key_t k = (cfg_key_t)i;
        const cfg_t *c = s->is_live[k] ? s->live : s->o.cfg;
        json_t *e = json_pack("{s:s,s:o,s:s,s:s,s:b,s:s,s:s}", "name", cfg_name(k), "value",
                              value_json(c, k), "type", type_name(k), "source", cfg_origin(c, k),
                              "reloadable", cfg_reloadable(k), "default", cfg_default(k), "doc",
                              cfg_doc(k));
        json_t *pending = json_object_get(s->pending_cfg, cfg_name(k));
        if (e && pending && !s->is_live[k] && !from_file(s, k))
            json_object_set_new(e, "pending",
                                cfg_sensitive(k) ? json_null() : json_incref(pending));
        json_array_append_new(arr, e);
    }
    adm_reply_json(
        call, 200,
        json_pack("{s:o,s:s}", "config", arr, "persisted_file", s->cfg_path ? s->cfg_path : ""));
}

/* A JSON scalar as the text cfg_set parses. @return 0 or -1. */
static int scalar_text(json_t *v, char *out, size_t len)
{
    if (json_is_string(v))
        snprintf(out, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(out, len, "%s", json_is_true(v) ? "true" : "false");
    else
        return -1;
    return 0;
}

static int write_yaml(const char *path, json_t *kv, char *err, size_t err_len)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, err_len, "cannot write %.300s: %s", tmp, strerror(errno));
        return -errno;
    }
    fprintf(f, "# Written by the admin API (PUT /v1/cluster/config); applied at start-up.\n");
    const char *key;
    json_t *v;
    json_object_foreach(kv, key, v)
    {
        /* Double-quoted YAML scalars: escape what needs it. */
        fprintf(f, "\"%s\": \"", key);
        for (const char *p = json_string_value(v); p && *p; p++) {
            if (*p == '"' || *p == '\\')
                fprintf(f, "\\%c", *p);
            else
                fputc(*p, f);
        }
        fprintf(f, "\"\n");
    }
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = st_fsync_parent(path); /* the rename */
    if (rc != 0)
        snprintf(err, err_len, "cannot write %.300s: %s", path, strerror(-rc));
    return rc;
}

static void
put_fail(adm_call_t *call, int status, const char *code, const char *key, const char *msg)
{
    json_t *doc = json_pack("{s:s,s:s,s:i}", "error", code, "message", msg, "status", status);
    cfg_key_t k;
    if (doc && key) {
        json_object_set_new(doc, "key", json_string(key));
        if (cfg_lookup(key, &k) == 0 && !cfg_reloadable(k))
            json_object_set_new(doc, "restart_required", json_true());
    }
    adm_reply_json(call, status, doc);
}

/* Check one key for PUT. @return 0 or fills msg. */
static int
check_key(const char *key, json_t *v, char *text, size_t text_len, char *msg, size_t msg_len)
{
    cfg_key_t k;
    if (cfg_lookup(key, &k) != 0) {
        snprintf(msg, msg_len, "unknown configuration key '%s'", key);
        return -1;
    }
    if (!cfg_reloadable(k)) {
        snprintf(msg, msg_len,
                 "'%s' cannot be changed through the admin API (not reloadable); set it in the "
                 "config file and restart",
                 key);
        return -1;
    }
    if (v && scalar_text(v, text, text_len) != 0) {
        snprintf(msg, msg_len, "'%s': value must be a string, integer or boolean", key);
        return -1;
    }
    if (v) {
        cfg_t *scratch = NULL;
        if (cfg_new(&scratch) != 0) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }
        int rc = cfg_set(scratch, key, text, "request", msg, msg_len);
        cfg_free(scratch);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ---- Live application ---- */

typedef enum {
    LIVE_NO,         /* applied at the next start */
    LIVE_DONE,       /* in effect */
    LIVE_PARTITIONS, /* in effect once the shards re-applied their partitions' configs */
} live_t;

/* Apply key k with the value it has in v to the running broker. */
static live_t apply_key(adm_server_t *s, cfg_key_t k, const cfg_t *v)
{
    kh_ctx_t *kc = s->o.kctx;
    st_log_level_t lv;
    switch (k) {
    case CFG_LOG_LEVEL:
        if (st_log_parse_level(cfg_str(v, k), &lv) != 0)
            return LIVE_NO;
        st_log_set_level(lv);
        return LIVE_DONE;
    case CFG_MESSAGE_MAX_BYTES:
        atomic_store(&kc->message_max_bytes, cfg_int(v, k));
        return LIVE_DONE;
    case CFG_NUM_PARTITIONS:
        atomic_store(&kc->num_partitions, (int32_t)cfg_int(v, k));
        return LIVE_DONE;
    case CFG_MAX_PARTITIONS: {
        int64_t n = cfg_int(v, k);
        uint64_t nofile;
        if (n == 0) /* derived, as at start */
            n = kh_max_partitions_derived(&nofile);
        atomic_store(&kc->max_partitions, n);
        return LIVE_DONE;
    }
    case CFG_AUTO_CREATE:
        atomic_store(&kc->auto_create, cfg_bool(v, k));
        return LIVE_DONE;
    case CFG_SEGMENT_BYTES:
    case CFG_ROLL_MS:
    case CFG_RETENTION_MS:
    case CFG_RETENTION_BYTES:
    case CFG_INDEX_INTERVAL:
        break;
    default:
        return LIVE_NO;
    }
    adm_defaults_t *d = malloc(sizeof(*d));
    if (!d)
        return LIVE_NO;
    d->cfg = *atomic_load(&kc->log_defaults);
    int64_t x = cfg_int(v, k);
    if (k == CFG_SEGMENT_BYTES)
        d->cfg.segment_bytes = x;
    else if (k == CFG_ROLL_MS)
        d->cfg.segment_ms = x;
    else if (k == CFG_RETENTION_MS)
        d->cfg.retention_ms = x;
    else if (k == CFG_RETENTION_BYTES)
        d->cfg.retention_bytes = x;
    else
        d->cfg.index_interval_bytes = (int32_t)x;
    d->next = s->defaults;
    s->defaults = d;
    kh_ctx_set_log_defaults(kc, &d->cfg);
    return LIVE_PARTITIONS;
}

/* Text of k's value in c, as cfg_set parses it. */
static void value_text(const cfg_t *c, cfg_key_t k, char *out, size_t len)
{
    if (cfg_type(k) == CFG_STR)
        snprintf(out, len, "%s", cfg_str(c, k));
    else if (cfg_type(k) == CFG_BOOL)
        snprintf(out, len, "%s", cfg_bool(c, k) ? "true" : "false");
    else
        snprintf(out, len, "%lld", (long long)cfg_int(c, k));
}

/* Apply one key of a PUT: set (text) or removed (text NULL). Appends the key
 * to the list of the answer it belongs in. @return whether shards must
 * re-apply their partitions' configs. */
static bool apply_one(adm_server_t *s, const char *key, const char *text, json_t *doc)
{
    cfg_key_t k;
    if (cfg_lookup(key, &k) != 0 || !s->live)
        return false; /* checked already; out of memory at start */
    const char *list = "restart_required";
    live_t how = LIVE_NO;
    char start[1024];
    if (is_shadowed(s, k)) {
        list = "shadowed";
    } else if (text) { /* validated: cannot fail */
        if (cfg_set(s->live, key, text, ADM_CFG_ORIGIN, NULL, 0) == 0 &&
            (how = apply_key(s, k, s->live)) != LIVE_NO)
            s->is_live[k] = true;
    } else if (!from_file(s, k)) {
        /* Removed: back to the value the broker started with, which the
         * persisted file did not set. */
        value_text(s->o.cfg, k, start, sizeof(start));
        if (cfg_set(s->live, key, start, ADM_CFG_ORIGIN, NULL, 0) == 0 &&
            (how = apply_key(s, k, s->live)) != LIVE_NO)
            s->is_live[k] = false;
    }
    if (how != LIVE_NO) {
        list = "applied";
        kh_ctx_t *kc = s->o.kctx;
        uint64_t bit = UINT64_C(1) << (k % 64);
        if (text)
            atomic_fetch_or(&kc->cfg_dynamic[k / 64], bit);
        else
            atomic_fetch_and(&kc->cfg_dynamic[k / 64], ~bit);
    }
    json_array_append_new(json_object_get(doc, list), json_string(key));
    return how == LIVE_PARTITIONS;
}

static void on_shard_reapply(rt_shard_t *sh, adm_gather_t *g, int slot)
{
    kh_shard_t *ks = kh_shard_of(sh);
    if (ks)
        kh_shard_apply_defaults(ks);
    g->result[slot] = malloc(1); /* answered */
}

static void reapply_done(adm_gather_t *g)
{
    adm_call_t *call = g->call;
    g->call = NULL;
    adm_reply_json(call, 200, json_incref(g->arg));
}

static void doc_free(void *doc)
{
    json_decref(doc);
}

/* Apply every key of a validated, persisted PUT and answer it. */
static void apply_all(adm_call_t *call, json_t *upsert, json_t *remove)
{
    adm_server_t *s = call->s;
    json_t *doc = json_pack("{s:[],s:[],s:[],s:O,s:s}", "applied", "restart_required", "shadowed",
                            "pending", s->pending_cfg, "persisted_file", s->cfg_path);
    if (!doc) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    bool reapply = false;
    const char *key;
    json_t *v;
    json_object_foreach(upsert, key, v)
    {
        const char *text = json_string_value(json_object_get(s->pending_cfg, key));
        reapply |= apply_one(s, key, text ? text : "", doc);
    }
    size_t i;
    json_array_foreach(remove, i, v) reapply |= apply_one(s, json_string_value(v), NULL, doc);
    if (reapply) /* answered once every shard re-applied its partitions' configs */
        adm_gather(call, on_shard_reapply, reapply_done, doc, doc_free);
    else
        adm_reply_json(call, 200, doc);
}

void adm_config_put(adm_call_t *call)
{
    adm_server_t *s = call->s;
    json_error_t jerr;
    json_t *doc = json_loadb(call->body, call->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        char msg[300];
        snprintf(msg, sizeof(msg), "body is not valid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        put_fail(call, 400, "invalid_json", NULL, msg);
        return;
    }
    json_t *upsert = json_object_get(doc, "upsert");
    json_t *remove = json_object_get(doc, "remove");
    if (!json_is_object(doc) || (upsert && !json_is_object(upsert)) ||
        (remove && !json_is_array(remove)) || (!upsert && !remove) ||
        json_object_size(doc) != (size_t)(!!upsert + !!remove)) {
        json_decref(doc);
        put_fail(call, 400, "invalid_request", NULL,
                 "expected {\"upsert\": {KEY: VALUE, ...}, \"remove\": [KEY, ...]}");
        return;
    }
    json_t *next = json_deep_copy(s->pending_cfg);
    char text[1024], msg[512];
    const char *key;
    json_t *v;
    json_object_foreach(upsert, key, v)
    {
        if (check_key(key, v, text, sizeof(text), msg, sizeof(msg)) != 0) {
            put_fail(call, 400, "invalid_config", key, msg);
            goto out;
        }
        json_object_set_new(next, key, json_string(text));
    }
    size_t i;
    json_array_foreach(remove, i, v)
    {
        if (!json_is_string(v)) {
            put_fail(call, 400, "invalid_request", NULL, "\"remove\" lists key names (strings)");
            goto out;
        }
        key = json_string_value(v);
        if (check_key(key, NULL, text, sizeof(text), msg, sizeof(msg)) != 0) {
            put_fail(call, 400, "invalid_config", key, msg);
            goto out;
        }
        json_object_del(next, key);
    }
    if (!next || !s->cfg_path || write_yaml(s->cfg_path, next, msg, sizeof(msg)) != 0) {
        put_fail(call, 500, "internal", NULL, next && s->cfg_path ? msg : "out of memory");
        goto out;
    }
    json_decref(s->pending_cfg);
    s->pending_cfg = next;
    next = NULL;
    ST_INFO("admin", "configuration changed: %zu set, %zu removed, persisted to %s",
            json_object_size(upsert), json_array_size(remove), s->cfg_path);
    apply_all(call, upsert, remove);
out:
    json_decref(next);
    json_decref(doc);
}

int adm_config_load(cfg_t *cfg, const char *dir, char *errbuf, size_t errbuf_len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, ADM_CFG_FILE);
    if (access(path, F_OK) != 0)
        return 0;
    /* Load into a scratch config, then copy the keys the file sets unless the
     * environment or the command line set them (they take precedence). */
    cfg_t *scratch = NULL;
    int rc = cfg_new(&scratch);
    if (rc != 0)
        return rc;
    rc = cfg_load_yaml(scratch, path, errbuf, errbuf_len);
    for (int i = 0; rc == 0 && i < CFG__COUNT; i++) {
        cfg_key_t k = (cfg_key_t)i;
        const char *from = cfg_origin(scratch, k);
        const char *now = cfg_origin(cfg, k);
        if (!strcmp(from, "default") || !strncmp(now, "STRATA_", 7) || !strcmp(now, "command line"))
            continue;
        char text[1024];
        switch (cfg_type(k)) {
        case CFG_INT:
            snprintf(text, sizeof(text), "%lld", (long long)cfg_int(scratch, k));
            break;
        case CFG_BOOL:
            snprintf(text, sizeof(text), "%s", cfg_bool(scratch, k) ? "true" : "false");
            break;
        case CFG_STR:
            snprintf(text, sizeof(text), "%s", cfg_str(scratch, k));
            break;
        }
        rc = cfg_set(cfg, cfg_name(k), text, from, errbuf, errbuf_len);
    }
    cfg_free(scratch);
    return rc;
}

void adm_config_fini(adm_server_t *s)
{
    while (s->defaults) {
        adm_defaults_t *d = s->defaults;
        s->defaults = d->next;
        free(d);
    }
    cfg_free(s->live);
    s->live = NULL;
}

void adm_config_init(adm_server_t *s)
{
    if (cfg_new(&s->live) != 0)
        s->live = NULL; /* PUT then only persists */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", cfg_str(s->o.cfg, CFG_LOG_DIR), ADM_CFG_FILE);
    s->cfg_path = strdup(path);
    cfg_t *scratch = NULL;
    if (access(path, F_OK) != 0 || cfg_new(&scratch) != 0)
        return;
    char err[512];
    if (cfg_load_yaml(scratch, path, err, sizeof(err)) == 0) {
        for (int i = 0; i < CFG__COUNT; i++) {
            cfg_key_t k = (cfg_key_t)i;
            char text[1024];
            if (!strcmp(cfg_origin(scratch, k), "default"))
                continue;
            /* In force from the persisted file (not shadowed): a dynamic config. */
            if (s->o.kctx && strstr(cfg_origin(s->o.cfg, k), ADM_CFG_FILE))
                atomic_fetch_or(&s->o.kctx->cfg_dynamic[k / 64], UINT64_C(1) << (k % 64));
            if (cfg_type(k) == CFG_STR)
                snprintf(text, sizeof(text), "%s", cfg_str(scratch, k));
            else if (cfg_type(k) == CFG_BOOL)
                snprintf(text, sizeof(text), "%s", cfg_bool(scratch, k) ? "true" : "false");
            else
                snprintf(text, sizeof(text), "%lld", (long long)cfg_int(scratch, k));
            json_object_set_new(s->pending_cfg, cfg_name(k), json_string(text));
        }
    }
    cfg_free(scratch);
}
