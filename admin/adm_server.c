/* adm_server.c - the admin HTTP server: listener, connections, replies, and
 * gathering answers from the shards.
 * Data path: a client connects to strata.admin.listener -> bytes are parsed
 * one request at a time (adm_http_parse) -> adm_route answers it, at once or
 * after asking shards (adm_gather: rt_post to each shard, whose answer comes
 * back through done_async) -> the response is written; keep-alive connections
 * then parse their next request.
 *
 * Connection states:
 *   READING --(complete request)--> BUSY (reading paused, call out)
 *   BUSY --(reply written, keep-alive)--> READING (next pipelined request)
 *   any --(error, Connection: close, refused request, idle 60 s)--> CLOSING
 *   CLOSING: the socket closes; a call still out finds conn == NULL and drops
 *            its reply; the struct is freed by the close callback.
 * Invariants: 1. at most one call per connection is out (responses in order);
 *             2. the read buffer never holds more than one maximal request
 *                plus what arrived behind it before reading paused;
 *             3. shards touch only their own gather slot and the done list
 *                (under mu); everything else runs on the server's loop. */
#include "admin/adm_int.h"
#include "core/st_log.h"
#include "kafka/kh_tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADM_MAX_CONNS    256
#define ADM_IDLE_MS      60000
#define ADM_DRAIN_MS     2000  /* lingering close after a refused request */
#define ADM_REQUEST_MS   10000 /* a started request must be complete by then (slow clients) */
#define ADM_RBUF_CAP     (ADM_HTTP_MAX_HEAD + ADM_HTTP_MAX_BODY + 4096)
#define ADM_IDLE_TICK_MS 1000

struct adm_conn {
    uv_tcp_t tcp;
    adm_server_t *s;
    adm_conn_t *prev, *next;
    char *rbuf; /* owned: rcap bytes (ADM_RBUF_CAP; TLS may add a record) */
    size_t rlen, rcap;
    kh_tls_conn_t *tls; /* owned: https (strata.admin.tls.enabled); else NULL */
    adm_call_t *call;   /* the request being answered, or NULL */
    bool is_reading;
    bool is_closing;
    bool close_after_write;
    bool is_draining; /* response sent and write side shut: discard input until EOF */
    uv_shutdown_t shut;
    uint64_t last_active_ms;
    uint64_t partial_since_ms; /* when the incomplete request in rbuf began, or 0 */
};

typedef struct {
    uv_write_t w;
    adm_conn_t *conn;
    char *buf;          /* owned */
    bool is_tls_output; /* TLS handshake bytes, not a reply */
} adm_wreq_t;

static void conn_close(adm_conn_t *c);
static void conn_process(adm_conn_t *c);
static void conn_resume(adm_conn_t *c);

static uint64_t now_ms(adm_server_t *s)
{
    return uv_now(s->o.loop);
}

/* ---- Replies ---- */

static void call_free(adm_call_t *call)
{
    if (!call)
        return;
    free(call->path);
    free(call->body);
    free(call);
}

static void on_written(uv_write_t *w, int status)
{
    adm_wreq_t *wr = (adm_wreq_t *)w;
    adm_conn_t *c = wr->conn;
    bool is_tls_output = wr->is_tls_output;
    free(wr->buf);
    free(wr);
    if (c->is_closing)
        return;
    if (status != 0) {
        conn_close(c);
        return;
    }
    if (is_tls_output)
        return;
    if (c->close_after_write) {
        /* Lingering close: shut our side, then read (and drop) what the
         * client still sends, so that closing with unread bytes does not
         * reset the connection before the client read our answer. */
        c->is_draining = true;
        c->last_active_ms = now_ms(c->s);
        if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, NULL) != 0)
            conn_close(c);
        else
            conn_resume(c);
        return;
    }
    conn_process(c); /* a pipelined request may be waiting */
}

/* ---- https: TLS over memory BIOs (kafka/kh_tls.c) ---- */

/* Write the TLS session's pending output (handshake, alerts). */
static int tls_flush(adm_conn_t *c)
{
    uint8_t *out;
    size_t n;
    if (kh_tls_conn_output(c->tls, &out, &n) != 0) {
        conn_close(c);
        return -1;
    }
    if (!out)
        return 0;
    adm_wreq_t *wr = calloc(1, sizeof(*wr));
    uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
    if (!wr || (wr->conn = c, wr->buf = (char *)out, wr->is_tls_output = true,
                uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)) {
        free(out);
        free(wr);
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Write wr's plaintext reply (len bytes) as TLS records instead; on an
 * error wr is freed and the connection closed. */
static void tls_seal(adm_conn_t *c, adm_wreq_t *wr, size_t len)
{
    uint8_t *out = NULL;
    size_t n = 0;
    int rc = kh_tls_conn_write(c->tls, (const uint8_t *)wr->buf, len);
    if (rc == 0)
        rc = kh_tls_conn_output(c->tls, &out, &n);
    free(wr->buf);
    wr->buf = (char *)out;
    if (rc != 0 || !out) {
        free(out);
        free(wr);
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init(wr->buf, (unsigned)n);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(wr->buf);
        free(wr);
        conn_close(c);
    }
}

void adm_reply_raw(adm_call_t *call,
                   int status,
                   const char *content_type,
                   const char *extra_headers,
                   const char *body,
                   size_t len)
{
    adm_conn_t *c = call->conn;
    st_metric_add(ST_M_ADMIN_REQUESTS, 1);
    if (!c) {
        call_free(call);
        return;
    }
    c->call = NULL;
    bool keep = call->is_keep_alive && !c->s->is_closed;
    st_mtext_t t = {0};
    adm_http_format(&t, status, content_type, extra_headers, body, len, keep);
    if (!strcmp(call->method, "HEAD") && !t.is_oom)
        t.len -= len; /* the headers of GET, without its body */
    call_free(call);
    adm_wreq_t *wr = t.is_oom ? NULL : calloc(1, sizeof(*wr));
    if (!wr) {
        st_mtext_free(&t);
        conn_close(c);
        return;
    }
    wr->conn = c;
    wr->buf = t.p;
    c->close_after_write = !keep;
    if (c->tls) {
        tls_seal(c, wr, t.len);
        return;
    }
    uv_buf_t b = uv_buf_init(wr->buf, (unsigned)t.len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(wr->buf);
        free(wr);
        conn_close(c);
    }
}

void adm_reply_json(adm_call_t *call, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text) {
        adm_reply_raw(call, 500, "application/json", NULL,
                      "{\"error\":\"internal\",\"message\":\"out of memory\"}\n", 47);
        return;
    }
    size_t n = strlen(text);
    char *body = realloc(text, n + 2);
    if (body) {
        body[n++] = '\n';
        body[n] = 0;
        text = body;
    }
    adm_reply_raw(call, status, "application/json", NULL, text, n);
    free(text);
}

void adm_reply_error(adm_call_t *call, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    adm_reply_json(call, status,
                   json_pack("{s:s,s:s,s:i}", "error", code, "message", msg, "status", status));
}

/* ---- Gathering answers from shards ---- */

part_shard_t *adm_shard_parts(rt_shard_t *sh)
{
    kh_shard_t *ks = kh_shard_of(sh);
    return ks ? kh_shard_parts(ks) : NULL;
}

static void gather_free(adm_gather_t *g)
{
    for (int i = 0; g->result && i < g->n; i++) /* NULL: taken by the endpoint */
        free(g->result[i]);
    if (g->free_arg)
        g->free_arg(g->arg);
    call_free(g->call);
    free(g->result);
    free(g->posts);
    free(g);
}

/* On a shard: run the endpoint's function, then hand the answer back. */
static void on_shard(rt_shard_t *sh, void *arg)
{
    adm_gpost_t *gp = arg;
    adm_gather_t *g = gp->g;
    adm_server_t *s = g->s;
    g->fn(sh, g, gp->slot);
    pthread_mutex_lock(&s->mu);
    gp->next_done = s->done_list;
    s->done_list = gp;
    bool send = !s->is_closed;
    pthread_mutex_unlock(&s->mu);
    if (send)
        uv_async_send(&s->done_async);
}

static void gather_answered(adm_gather_t *g)
{
    if (--g->pending > 0)
        return;
    adm_call_t *call = g->call;
    g->call = NULL;
    if (!call->conn)
        call_free(call);
    else if (g->n_failed > 0)
        adm_reply_error(call, 503, "unavailable", "a shard is busy or stopping; retry");
    else {
        g->call = call;
        g->done(g); /* replies with g->call and clears it */
        if (g->call) {
            adm_reply_error(g->call, 500, "internal", "no answer was produced");
            g->call = NULL;
        }
    }
    gather_free(g);
}

/* Answers of the shards, on the server's loop (or at free: answer=false). */
static void drain_done(adm_server_t *s, bool answer)
{
    pthread_mutex_lock(&s->mu);
    adm_gpost_t *list = s->done_list;
    s->done_list = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        adm_gpost_t *next = list->next_done;
        adm_gather_t *g = list->g;
        if (answer) {
            gather_answered(g);
        } else if (--g->pending == 0) {
            call_free(g->call);
            g->call = NULL;
            gather_free(g);
        }
        list = next;
    }
}

static void on_done_async(uv_async_t *a)
{
    drain_done(a->data, true);
}

static void gather_start(adm_call_t *call,
                         int first,
                         int n,
                         adm_shard_fn fn,
                         adm_gather_done_fn done,
                         void *arg,
                         void (*free_arg)(void *))
{
    adm_gather_t *g = calloc(1, sizeof(*g));
    if (g) {
        g->result = calloc((size_t)n, sizeof(*g->result));
        g->posts = calloc((size_t)n, sizeof(*g->posts));
    }
    if (!g || !g->result || !g->posts) {
        if (g) {
            free(g->result);
            free(g->posts);
            free(g);
        }
        if (free_arg)
            free_arg(arg);
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    g->s = call->s;
    g->call = call;
    g->fn = fn;
    g->done = done;
    g->arg = arg;
    g->free_arg = free_arg;
    g->n = n;
    g->pending = n + 1; /* +1 held while posting, so no answer finishes it early */
    for (int i = 0; i < n; i++) {
        adm_gpost_t *gp = &g->posts[i];
        gp->g = g;
        gp->slot = i;
        gp->shard = first + i;
        int rc = rt_post(g->s->o.rt, gp->shard, on_shard, gp);
        if (rc != 0) {
            ST_DEBUG("admin", "cannot ask shard %d: %s", gp->shard, st_strerror(rc));
            g->n_failed++;
            g->pending--;
        }
    }
    gather_answered(g);
}

void adm_gather(adm_call_t *call,
                adm_shard_fn fn,
                adm_gather_done_fn done,
                void *arg_owned,
                void (*free_arg)(void *))
{
    gather_start(call, 0, rt_shard_count(call->s->o.rt), fn, done, arg_owned, free_arg);
}

void adm_gather_one(adm_call_t *call,
                    int shard,
                    adm_shard_fn fn,
                    adm_gather_done_fn done,
                    void *arg_owned,
                    void (*free_arg)(void *))
{
    gather_start(call, shard, 1, fn, done, arg_owned, free_arg);
}

/* ---- Connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    adm_conn_t *c = h->data;
    kh_tls_conn_free(c->tls);
    free(c->rbuf);
    free(c);
}

static void conn_close(adm_conn_t *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    adm_server_t *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (c->call)
        c->call->conn = NULL; /* the call frees itself when answered */
    c->call = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    adm_conn_t *c = h->data;
    (void)suggested;
    if (c->is_draining)
        c->rlen = 0;
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    adm_conn_t *c = st->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    if (c->is_draining)
        return;   /* the buffer is reused: nothing is kept */
    if (c->tls) { /* the n bytes at rbuf + rlen are ciphertext: decrypt in place */
        uint8_t *b = (uint8_t *)c->rbuf;
        n = kh_tls_conn_read(c->tls, b + c->rlen, (size_t)n, &b, c->rlen, &c->rcap);
        c->rbuf = (char *)b;
        if (tls_flush(c) != 0)
            return;
        if (n < 0) {
            ST_DEBUG("admin", "closing a connection: %s", kh_tls_conn_error(c->tls));
            conn_close(c);
            return;
        }
    }
    c->rlen += (size_t)n;
    c->last_active_ms = now_ms(c->s);
    conn_process(c);
}

static void conn_pause(adm_conn_t *c)
{
    if (c->is_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->is_reading = false;
    }
}

static void conn_resume(adm_conn_t *c)
{
    if (!c->is_reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->is_reading = true;
}

static char *dup_str(adm_str_t s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.p, s.len);
        p[s.len] = 0;
    }
    return p;
}

/* Parse and answer the next request in the buffer, if one is complete. */
static void conn_process(adm_conn_t *c)
{
    if (c->is_closing || c->call)
        return;
    adm_http_req_t r;
    int rc = adm_http_parse(c->rbuf, c->rlen, &r);
    if (rc == ST_E_AGAIN) {
        if (c->rlen >= ADM_RBUF_CAP) { /* the parser's limits make it a TLS surplus */
            conn_close(c);
            return;
        }
        if (c->rlen > 0 && !c->partial_since_ms)
            c->partial_since_ms = now_ms(c->s);
        conn_resume(c);
        return;
    }
    conn_pause(c);
    c->partial_since_ms = 0;
    adm_call_t *call = calloc(1, sizeof(*call));
    if (!call) {
        conn_close(c);
        return;
    }
    call->s = c->s;
    call->conn = c;
    c->call = call;
    if (rc != 0) {
        /* The rest of the stream cannot be trusted: answer and close. */
        snprintf(call->method, sizeof(call->method), "GET");
        call->is_keep_alive = false;
        const char *code = r.error_status == 413   ? "payload_too_large"
                           : r.error_status == 431 ? "headers_too_large"
                           : r.error_status == 501 ? "not_implemented"
                           : r.error_status == 505 ? "http_version_not_supported"
                                                   : "bad_request";
        adm_reply_error(call, r.error_status, code, "%s", r.error_why);
        return;
    }
    snprintf(call->method, sizeof(call->method), "%.*s", (int)r.method.len, r.method.p);
    call->path = dup_str(r.path);
    call->body = dup_str((adm_str_t){r.body, r.body_len});
    call->body_len = r.body_len;
    call->is_keep_alive = r.is_keep_alive;
    int auth_status = adm_auth_check(c->s, &r);
    memmove(c->rbuf, c->rbuf + r.total_len, c->rlen - r.total_len);
    c->rlen -= r.total_len;
    if (!call->path || !call->body) {
        adm_reply_error(call, 500, "internal", "out of memory");
        return;
    }
    if (auth_status != 200) {
        adm_auth_refuse(call, auth_status);
        return;
    }
    adm_route(call);
}

static void on_connection(st_listen_t *l, uv_stream_t *server)
{
    adm_server_t *s = l->data;
    adm_conn_t *c = calloc(1, sizeof(*c));
    if (c)
        c->rbuf = malloc(ADM_RBUF_CAP);
    if (!c || !c->rbuf) {
        if (c)
            free(c);
        return;
    }
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    c->s = s;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || s->n_conns >= ADM_MAX_CONNS) {
        if (s->n_conns >= ADM_MAX_CONNS)
            ST_WARN("admin", "refusing connection: %d admin connections open", s->n_conns);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->rcap = ADM_RBUF_CAP;
    if (s->o.tls && !(c->tls = kh_tls_conn_new(s->o.tls))) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->last_active_ms = now_ms(s);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    conn_resume(c);
}

/* A request that started long ago is still incomplete: answer 408, close. */
static void request_timeout(adm_conn_t *c)
{
    conn_pause(c);
    c->partial_since_ms = 0;
    adm_call_t *call = calloc(1, sizeof(*call));
    if (!call) {
        conn_close(c);
        return;
    }
    call->s = c->s;
    call->conn = c;
    c->call = call;
    snprintf(call->method, sizeof(call->method), "GET");
    adm_reply_error(call, 408, "request_timeout", "the request was not complete within %d s",
                    ADM_REQUEST_MS / 1000);
}

static void on_idle_tick(uv_timer_t *t)
{
    adm_server_t *s = t->data;
    uint64_t now = now_ms(s);
    for (adm_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->call && now - c->last_active_ms > (c->is_draining ? ADM_DRAIN_MS : ADM_IDLE_MS))
            conn_close(c);
        else if (!c->call && !c->is_draining && c->partial_since_ms &&
                 now - c->partial_since_ms > ADM_REQUEST_MS)
            request_timeout(c);
    }
}

/* ---- Server lifecycle ---- */

/* The bearer token: the first line of path, without surrounding blanks. The
 * secret stays out of the configuration, so neither this API nor Kafka's
 * DescribeConfigs nor `ps` can show it. */
static int read_token(const char *path, char **out, char *errbuf, size_t errbuf_len)
{
    *out = strdup("");
    if (!*out)
        return ST_E_NOMEM;
    if (!*path)
        return 0;
    FILE *f = fopen(path, "r");
    char line[1024] = "";
    if (!f || !fgets(line, sizeof(line), f)) {
        int err = f ? ST_E_CONFIG : -errno;
        snprintf(errbuf, errbuf_len, "strata.admin.token.file: cannot read %s: %s", path,
                 f ? "empty file" : strerror(errno));
        if (f)
            fclose(f);
        return err;
    }
    fclose(f);
    char *p = line, *e = line + strlen(line);
    while (*p == ' ' || *p == '\t')
        p++;
    while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
        *--e = 0;
    if (!*p) {
        snprintf(errbuf, errbuf_len, "strata.admin.token.file: %s holds no token", path);
        return ST_E_CONFIG;
    }
    free(*out);
    *out = strdup(p);
    memset(line, 0, sizeof(line));
    return *out ? 0 : ST_E_NOMEM;
}

int adm_server_new(const adm_opts_t *o, adm_server_t **out, char *errbuf, size_t errbuf_len)
{
    int rc;
    adm_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return ST_E_NOMEM;
    s->o = *o;
    s->start_ns = uv_hrtime();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_init(&s->mu, NULL);
    rc = read_token(cfg_str(o->cfg, CFG_ADMIN_TOKEN_FILE), &s->token, errbuf, errbuf_len);
    if (rc != 0) {
        free(s->token);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    s->pending_cfg = json_object();
    char host[256];
    int port;
    const char *addr = cfg_str(o->cfg, CFG_ADMIN_LISTENER);
    snprintf(s->listen_addr, sizeof(s->listen_addr), "%s", addr);
    rc = cfg_parse_hostport(addr, host, sizeof(host), &port);
    struct sockaddr_storage sa;
    if (rc == 0 && st_listen_addr(host, port, &sa) != 0)
        rc = ST_E_INVAL;
    if (rc == 0 && (!s->token || !s->pending_cfg))
        rc = ST_E_NOMEM;
    if (rc != 0) {
        snprintf(errbuf, errbuf_len, "admin listener %s: %s", addr, st_strerror(rc));
        free(s->token);
        json_decref(s->pending_cfg);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    uv_timer_init(o->loop, &s->idle_timer);
    uv_async_init(o->loop, &s->done_async, on_done_async);
    s->idle_timer.data = s->done_async.data = s;
    char what[300];
    snprintf(what, sizeof(what), "admin listener %s", addr);
    rc = st_listen_open(&s->listener, o->loop, (struct sockaddr *)&sa, false, 128, what,
                        on_connection, s, errbuf, errbuf_len);
    if (rc != 0) {
        *out = s;
        adm_server_close(s); /* the caller frees it after the loop closed the handles */
        return rc;
    }
    adm_config_init(s);
    if (o->idx && idx_client_new(o->idx, o->loop, &s->idx) != 0) {
        ST_WARN("admin", "no remote index client: remote bytes are not reported");
        s->idx = NULL;
    }
    uv_timer_start(&s->idle_timer, on_idle_tick, ADM_IDLE_TICK_MS, ADM_IDLE_TICK_MS);
    ST_INFO("admin", "listening on %s://%s", o->tls ? "https" : "http", addr);
    *out = s;
    return 0;
}

void adm_server_set_ready(adm_server_t *s, bool is_ready)
{
    if (s)
        s->is_ready = is_ready;
}

void adm_server_close(adm_server_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    bool was_closed = s->is_closed;
    s->is_closed = true;
    pthread_mutex_unlock(&s->mu);
    if (was_closed)
        return;
    s->is_ready = false;
    while (s->conns)
        conn_close(s->conns);
    st_listen_close(&s->listener, NULL);
    uv_close((uv_handle_t *)&s->idle_timer, NULL);
    uv_close((uv_handle_t *)&s->done_async, NULL);
    if (s->idx) /* lookups already submitted still call back */
        idx_client_close(s->idx, NULL, NULL);
    s->idx = NULL;
}

void adm_server_free(adm_server_t *s)
{
    if (!s)
        return;
    drain_done(s, false); /* answers that arrived after close: drop them */
    free(s->token);
    free(s->cfg_path);
    json_decref(s->pending_cfg);
    adm_config_fini(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
