/* adm_config.c - GET and PUT /v1/cluster/config: the broker's configuration
 * with each value's source, and validated, persisted changes.
 * Data path: an operator PUTs {"upsert": {...}, "remove": [...]} -> every key
 * is checked against the key table (known, reloadable, valid value) -> the
 * overrides are written to log.dir/cluster_config.yaml (atomically: temp
 * file, fsync, rename) -> stratad applies that file at its next start
 * (adm_config_load), and strata.log.level takes effect at once.
 * Invariants: 1. the running cfg_t is never modified here (shards read it
 *                without a lock); changes live in s->pending_cfg;
 *             2. a PUT is all or nothing: one bad key refuses all of it.
 * The file is small and written on the admin loop, never on a shard's. */
#include "admin/adm_int.h"
#include "core/st_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADM_CFG_FILE "cluster_config.yaml"

static json_t *value_json(const cfg_t *c, cfg_key_t k)
{
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

void adm_config_get(adm_call_t *call)
{
    adm_server_t *s = call->s;
    json_t *arr = json_array();
    for (int i = 0; arr && i < CFG__COUNT; i++) {
        cfg_key_t k = (cfg_key_t)i;
        json_t *e = json_pack("{s:s,s:o,s:s,s:s,s:b,s:s,s:s}", "name", cfg_name(k), "value",
                              value_json(s->o.cfg, k), "type", type_name(k), "source",
                              cfg_origin(s->o.cfg, k), "reloadable", cfg_reloadable(k), "default",
                              cfg_default(k), "doc", cfg_doc(k));
        json_t *pending = json_object_get(s->pending_cfg, cfg_name(k));
        if (e && pending)
            json_object_set(e, "pending", pending);
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
    if (rc != 0)
        snprintf(err, err_len, "cannot write %.300s: %s", path, strerror(-rc));
    return rc;
}

static void
put_fail(adm_call_t *call, int status, const char *code, const char *key, const char *msg)
{
    json_t *doc = json_pack("{s:s,s:s,s:i}", "error", code, "message", msg, "status", status);
    if (doc && key)
        json_object_set_new(doc, "key", json_string(key));
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
    /* Applied now: the log level (a process-wide atomic). Everything else at
     * the next start, which reads the file back. */
    json_t *live = json_array(), *restart = json_array();
    json_object_foreach(upsert, key, v)
    {
        st_log_level_t lv;
        const char *val = json_string_value(json_object_get(s->pending_cfg, key));
        if (!strcmp(key, "strata.log.level") && val && st_log_parse_level(val, &lv) == 0) {
            st_log_set_level(lv);
            json_array_append_new(live, json_string(key));
        } else {
            json_array_append_new(restart, json_string(key));
        }
    }
    json_array_foreach(remove, i, v) json_array_append(restart, v);
    ST_INFO("admin", "configuration changed: %zu set, %zu removed, persisted to %s",
            json_object_size(upsert), json_array_size(remove), s->cfg_path);
    adm_reply_json(call, 200,
                   json_pack("{s:o,s:o,s:O,s:s}", "applied", live, "restart_required", restart,
                             "pending", s->pending_cfg, "persisted_file", s->cfg_path));
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

void adm_config_init(adm_server_t *s)
{
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
