/* obj_store.c - the object store's front end: configuration, the request
 * queue (bounded concurrency), deadlines, cancellation and completion.
 * Data path: tier_uploader / hydration call obj_put()/obj_get_range() here ->
 * the request waits in a FIFO until a slot is free -> the backend (obj_file.c
 * or obj_s3.c) runs it -> obj__finish() calls back on the store's loop.
 * Invariants: see the request state diagram in obj_int.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/st_assert.h"
#include "core/st_log.h"
#include "core/st_metrics.h"
#include "tiering/obj_int.h"

/* ---- Small helpers ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void obj__set_err(obj_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->errmsg, sizeof req->errmsg, fmt, ap);
    va_end(ap);
}

uint64_t obj__remaining_ms(const obj_req_t *req)
{
    if (!uv_is_active((const uv_handle_t *)&req->deadline_timer))
        return req->st->cfg.request_timeout_ms;
    uint64_t due = uv_timer_get_due_in(&req->deadline_timer);
    return due;
}

static void errf(char *errbuf, size_t errbuf_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *errbuf, size_t errbuf_len, const char *fmt, ...)
{
    if (!errbuf || !errbuf_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errbuf_len, fmt, ap);
    va_end(ap);
}

/* ---- Store life cycle ---- */

static void store_free(obj_store_t *st)
{
    if (st->multi)
        curl_multi_cleanup(st->multi);
    free(st->name);
    free(st->dir);
    free(st->bucket);
    free(st->prefix);
    free(st->scheme);
    free(st->hostport);
    free(st->region);
    free(st->access_key);
    if (st->secret_key) {
        memset(st->secret_key, 0, strlen(st->secret_key));
        free(st->secret_key);
    }
    free(st->session_token);
    free(st);
}

static void pump_cb(uv_timer_t *t);

static void apply_defaults(obj_config_t *c)
{
    if (!c->max_inflight)
        c->max_inflight = 16;
    if (!c->request_timeout_ms)
        c->request_timeout_ms = 120000;
    if (!c->attempt_timeout_ms)
        c->attempt_timeout_ms = 30000;
    if (!c->max_attempts)
        c->max_attempts = 6;
    if (!c->retry_base_ms)
        c->retry_base_ms = 100;
    if (!c->retry_max_ms)
        c->retry_max_ms = 5000;
    if (!c->multipart_threshold_bytes)
        c->multipart_threshold_bytes = 16u << 20;
    if (!c->multipart_part_bytes)
        c->multipart_part_bytes = 8u << 20;
}

static int file_init(obj_store_t *st, const char *path, char *errbuf, size_t errbuf_len)
{
    if (!*path) {
        errf(errbuf, errbuf_len, "file:// URL needs a directory");
        return ST_E_CONFIG;
    }
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    st->dir = strndup(path, n);
    if (!st->dir)
        return ST_E_NOMEM;
    size_t nl = strlen(st->dir) + 8;
    st->name = malloc(nl);
    if (!st->name)
        return ST_E_NOMEM;
    snprintf(st->name, nl, "file://%s", st->dir);
    return 0;
}

int obj_store_new(
    uv_loop_t *loop, const obj_config_t *cfg, obj_store_t **out, char *errbuf, size_t errbuf_len)
{
    ST_ASSERT(loop && cfg && out);
    *out = NULL;
    if (!cfg->url) {
        errf(errbuf, errbuf_len, "object store URL is missing");
        return ST_E_CONFIG;
    }
    obj_store_t *st = calloc(1, sizeof *st);
    if (!st)
        return ST_E_NOMEM;
    st->loop = loop;
    st->cfg = *cfg;
    st->cfg.url = st->cfg.endpoint = st->cfg.region = NULL;
    st->cfg.access_key = st->cfg.secret_key = st->cfg.session_token = NULL;
    st->cfg.profile = st->cfg.credentials_file = NULL;
    apply_defaults(&st->cfg);
    int rc;
    if (strncmp(cfg->url, "file://", 7) == 0) {
        st->kind = OBJ__KIND_FILE;
        rc = file_init(st, cfg->url + 7, errbuf, errbuf_len);
    } else if (strncmp(cfg->url, "s3://", 5) == 0) {
        st->kind = OBJ__KIND_S3;
        /* obj__s3_init reads the string fields of cfg through st->cfg: pass them */
        obj_config_t tmp = st->cfg;
        tmp.url = cfg->url;
        tmp.endpoint = cfg->endpoint;
        tmp.region = cfg->region;
        tmp.access_key = cfg->access_key;
        tmp.secret_key = cfg->secret_key;
        tmp.session_token = cfg->session_token;
        tmp.profile = cfg->profile;
        tmp.credentials_file = cfg->credentials_file;
        obj_config_t saved = st->cfg;
        st->cfg = tmp;
        rc = obj__s3_init(st, errbuf, errbuf_len);
        st->cfg = saved;
    } else {
        errf(errbuf, errbuf_len, "object store URL must start with file:// or s3://: %s", cfg->url);
        rc = ST_E_CONFIG;
    }
    if (rc) {
        store_free(st);
        return rc;
    }
    uv_timer_init(loop, &st->pump_timer);
    st->pump_timer.data = st;
    st->n_open_handles++;
    *out = st;
    return 0;
}

const char *obj_store_name(const obj_store_t *st)
{
    return st->name;
}

const char *obj_store_last_error(const obj_store_t *st)
{
    return st->last_error;
}

void obj__handle_closed(obj_store_t *st)
{
    ST_ASSERT(st->n_open_handles > 0);
    if (--st->n_open_handles > 0)
        return;
    obj_close_cb cb = st->close_cb;
    void *arg = st->close_arg;
    store_free(st);
    if (cb)
        cb(arg);
}

static void store_handle_close_cb(uv_handle_t *h)
{
    obj__handle_closed(h->data);
}

/* Called when the last request of a closing store is gone. */
static void store_close_handles(obj_store_t *st)
{
    uv_close((uv_handle_t *)&st->pump_timer, store_handle_close_cb);
    if (st->kind == OBJ__KIND_S3)
        obj__s3_close(st);
}

void obj_store_close(obj_store_t *st, obj_close_cb cb, void *arg)
{
    if (!st)
        return;
    ST_ASSERT(!st->is_closing);
    st->is_closing = true;
    st->close_cb = cb;
    st->close_arg = arg;
    for (obj_req_t *r = st->all_head; r; r = r->all_next)
        obj_cancel(r);
    if (st->n_reqs == 0)
        store_close_handles(st);
}

/* ---- Request life cycle ---- */

static void req_timer_closed(uv_handle_t *h)
{
    obj_req_t *req = h->data;
    if (--req->n_open_timers > 0)
        return;
    obj_store_t *st = req->st;
    free(req);
    ST_ASSERT(st->n_reqs > 0);
    if (--st->n_reqs == 0 && st->is_closing)
        store_close_handles(st);
}

static void result_free(obj_result_t *res)
{
    free(res->data);
    res->data = NULL;
    for (size_t i = 0; i < res->n_entries; i++)
        free(res->entries[i].key);
    free(res->entries);
    res->entries = NULL;
    free((char *)res->next_token);
    res->next_token = NULL;
}

static void q_remove(obj_store_t *st, obj_req_t *req)
{
    obj_req_t **pp = &st->q_head;
    obj_req_t *prev = NULL;
    while (*pp && *pp != req) {
        prev = *pp;
        pp = &(*pp)->q_next;
    }
    if (*pp) {
        *pp = req->q_next;
        if (st->q_tail == req)
            st->q_tail = prev;
    }
    req->q_next = NULL;
    req->is_queued = false;
}

static void pump_later(obj_store_t *st)
{
    if (!st->is_closing && st->q_head && st->n_active < st->cfg.max_inflight)
        uv_timer_start(&st->pump_timer, pump_cb, 0, 0);
}

/* Metrics of a completed request: count, latency, errors by operation. A
 * missing object answers a question (head, get) and a cancel is the caller's
 * choice: neither is an error of the store. */
static void count_done(obj_req_t *req, int status)
{
    static const st_obj_op_t k_op[] = {
        [OBJ__OP_PUT] = ST_OBJ_PUT,       [OBJ__OP_GET] = ST_OBJ_GET,
        [OBJ__OP_HEAD] = ST_OBJ_HEAD,     [OBJ__OP_LIST] = ST_OBJ_LIST,
        [OBJ__OP_DELETE] = ST_OBJ_DELETE, [OBJ__OP_DELETE_MANY] = ST_OBJ_DELETE,
    };
    st_obj_op_t op = k_op[req->op];
    st_metric_op(ST_O_OBJ_REQUESTS, op, 1);
    st_metric_observe_ns(ST_H_OBJ_LATENCY, (int)op, uv_hrtime() - req->start_ns);
    if (status != 0 && status != ST_E_NOTFOUND && status != ST_E_CANCELED) {
        st_metric_op(ST_O_OBJ_ERRORS, op, 1);
        snprintf(req->st->last_error, sizeof req->st->last_error, "%s", req->errmsg);
    }
}

void obj__finish(obj_req_t *req, int status)
{
    obj_store_t *st = req->st;
    ST_ASSERT(!req->is_work_pending);
    if (req->is_done)
        return;
    req->is_done = true;
    if (req->is_queued)
        q_remove(st, req);
    if (req->is_active) {
        req->is_active = false;
        st->n_active--;
        pump_later(st);
    }
    if (req->s3)
        obj__s3_free(req);
    uv_timer_stop(&req->deadline_timer);
    uv_timer_stop(&req->retry_timer);
    /* unlink from the live list */
    if (req->all_prev)
        req->all_prev->all_next = req->all_next;
    else
        st->all_head = req->all_next;
    if (req->all_next)
        req->all_next->all_prev = req->all_prev;
    req->res.status = status;
    if (status == 0)
        req->errmsg[0] = '\0';
    else if (!req->errmsg[0])
        obj__set_err(req, "%s: %s", req->key ? req->key : st->name, st_strerror(status));
    req->res.errmsg = req->errmsg;
    count_done(req, status);
    req->cb(req, &req->res, req->arg);
    result_free(&req->res);
    free(req->key);
    free(req->prefix);
    free(req->token);
    for (size_t i = 0; i < req->n_keys; i++)
        free(req->keys[i]);
    free(req->keys);
    uv_close((uv_handle_t *)&req->deadline_timer, req_timer_closed);
    uv_close((uv_handle_t *)&req->retry_timer, req_timer_closed);
}

static void req_start(obj_req_t *req)
{
    obj_store_t *st = req->st;
    req->is_active = true;
    st->n_active++;
    if (st->kind == OBJ__KIND_FILE)
        obj__file_start(req);
    else
        obj__s3_start(req);
}

static void pump_cb(uv_timer_t *t)
{
    obj_store_t *st = t->data;
    while (!st->is_closing && st->q_head && st->n_active < st->cfg.max_inflight) {
        obj_req_t *req = st->q_head;
        q_remove(st, req);
        req_start(req);
    }
}

/* Deadline passed, or a cancel was requested (the timer was restarted at 0). */
static void deadline_cb(uv_timer_t *t)
{
    obj_req_t *req = t->data;
    if (req->is_done)
        return;
    int status = req->is_canceled ? ST_E_CANCELED : ST_E_TIMEOUT;
    if (status == ST_E_TIMEOUT) {
        req->is_timed_out = true;
        obj__set_err(req, "%s: %s: request timed out", req->st->name,
                     req->key ? req->key : (req->prefix ? req->prefix : ""));
    }
    if (req->is_active) {
        bool can_finish =
            req->st->kind == OBJ__KIND_FILE ? obj__file_abort(req) : obj__s3_abort(req);
        if (!can_finish)
            return; /* the work's completion finishes it */
    }
    obj__finish(req, status);
}

static int
req_new(obj_store_t *st, obj__op_t op, const char *key, obj_cb cb, void *arg, obj_req_t **out)
{
    *out = NULL;
    if (!st || !cb)
        return ST_E_INVAL;
    if (st->is_closing)
        return ST_E_CLOSED;
    obj_req_t *req = calloc(1, sizeof *req);
    if (!req)
        return ST_E_NOMEM;
    req->st = st;
    req->op = op;
    req->cb = cb;
    req->arg = arg;
    if (key) {
        if (!*key || strlen(key) > 1024) {
            free(req);
            return ST_E_INVAL;
        }
        req->key = strdup(key);
        if (!req->key) {
            free(req);
            return ST_E_NOMEM;
        }
    }
    *out = req;
    return 0;
}

/* Queue a fully built request and arm its deadline. */
static int req_submit(obj_req_t *req, obj_req_t **req_out)
{
    obj_store_t *st = req->st;
    req->start_ns = uv_hrtime();
    uv_timer_init(st->loop, &req->deadline_timer);
    uv_timer_init(st->loop, &req->retry_timer);
    req->deadline_timer.data = req;
    req->retry_timer.data = req;
    req->n_open_timers = 2;
    st->n_reqs++;
    req->all_next = st->all_head;
    if (st->all_head)
        st->all_head->all_prev = req;
    st->all_head = req;
    uv_timer_start(&req->deadline_timer, deadline_cb, st->cfg.request_timeout_ms, 0);
    req->is_queued = true;
    if (st->q_tail)
        st->q_tail->q_next = req;
    else
        st->q_head = req;
    st->q_tail = req;
    /* start on the next loop turn so that callbacks never run inside this call */
    uv_timer_start(&st->pump_timer, pump_cb, 0, 0);
    if (req_out)
        *req_out = req;
    return 0;
}

void obj_req_set_timeout(obj_req_t *req, uint64_t timeout_ms)
{
    if (req->is_done || req->is_canceled)
        return;
    uv_timer_start(&req->deadline_timer, deadline_cb, timeout_ms, 0);
}

void obj_cancel(obj_req_t *req)
{
    if (!req || req->is_done || req->is_canceled)
        return;
    req->is_canceled = true;
    uv_timer_start(&req->deadline_timer, deadline_cb, 0, 0);
}

uint8_t *obj_result_take_data(obj_result_t *res)
{
    uint8_t *p = res->data;
    res->data = NULL;
    return p;
}

/* ---- Public operations ---- */

int obj_put(obj_store_t *st,
            const char *key,
            const void *data,
            size_t len,
            obj_cb cb,
            void *arg,
            obj_req_t **req_out)
{
    if (!key || (!data && len))
        return ST_E_INVAL;
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_PUT, key, cb, arg, &req);
    if (rc)
        return rc;
    req->put_data = data;
    req->put_len = len;
    return req_submit(req, req_out);
}

int obj_get(obj_store_t *st, const char *key, obj_cb cb, void *arg, obj_req_t **req_out)
{
    if (!key)
        return ST_E_INVAL;
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_GET, key, cb, arg, &req);
    if (rc)
        return rc;
    return req_submit(req, req_out);
}

int obj_get_range(obj_store_t *st,
                  const char *key,
                  uint64_t offset,
                  uint64_t len,
                  obj_cb cb,
                  void *arg,
                  obj_req_t **req_out)
{
    if (!key || len == 0 || offset + len < offset || len > SIZE_MAX / 2)
        return ST_E_INVAL;
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_GET, key, cb, arg, &req);
    if (rc)
        return rc;
    req->is_ranged = true;
    req->range_off = offset;
    req->range_len = len;
    return req_submit(req, req_out);
}

int obj_head(obj_store_t *st, const char *key, obj_cb cb, void *arg, obj_req_t **req_out)
{
    if (!key)
        return ST_E_INVAL;
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_HEAD, key, cb, arg, &req);
    if (rc)
        return rc;
    return req_submit(req, req_out);
}

int obj_list(obj_store_t *st,
             const char *prefix,
             const char *token,
             unsigned max_keys,
             obj_cb cb,
             void *arg,
             obj_req_t **req_out)
{
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_LIST, NULL, cb, arg, &req);
    if (rc)
        return rc;
    req->prefix = strdup(prefix ? prefix : "");
    req->token = dup_or_null(token);
    req->max_keys = max_keys == 0 || max_keys > 1000 ? 1000 : max_keys;
    if (!req->prefix || (token && !req->token)) {
        free(req->prefix);
        free(req->token);
        free(req);
        return ST_E_NOMEM;
    }
    return req_submit(req, req_out);
}

int obj_delete(obj_store_t *st, const char *key, obj_cb cb, void *arg, obj_req_t **req_out)
{
    if (!key)
        return ST_E_INVAL;
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_DELETE, key, cb, arg, &req);
    if (rc)
        return rc;
    return req_submit(req, req_out);
}

int obj_delete_many(obj_store_t *st,
                    const char *const *keys,
                    size_t n_keys,
                    obj_cb cb,
                    void *arg,
                    obj_req_t **req_out)
{
    if (!keys && n_keys)
        return ST_E_INVAL;
    for (size_t i = 0; i < n_keys; i++)
        if (!keys[i] || !*keys[i] || strlen(keys[i]) > 1024)
            return ST_E_INVAL;
    obj_req_t *req;
    int rc = req_new(st, OBJ__OP_DELETE_MANY, NULL, cb, arg, &req);
    if (rc)
        return rc;
    req->keys = calloc(n_keys ? n_keys : 1, sizeof *req->keys);
    if (!req->keys) {
        free(req);
        return ST_E_NOMEM;
    }
    for (size_t i = 0; i < n_keys; i++) {
        req->keys[i] = strdup(keys[i]);
        if (!req->keys[i]) {
            for (size_t j = 0; j < i; j++)
                free(req->keys[j]);
            free(req->keys);
            free(req);
            return ST_E_NOMEM;
        }
    }
    req->n_keys = n_keys;
    return req_submit(req, req_out);
}
