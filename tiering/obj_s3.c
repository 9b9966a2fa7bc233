/* obj_s3.c - the `s3://BUCKET[/PREFIX]` backend: S3 REST over libcurl's multi
 * interface driven by the store's libuv loop, signed with our SigV4 signer.
 * Data path: obj_store.c starts a request -> a per-operation state machine here
 * issues one HTTP call at a time (easy handle on the shared multi, so
 * connections are reused) -> curl reports completion through check_done() ->
 * the state machine retries, advances or finishes the request.
 *
 * Operation phases (op->phase), each one HTTP call with its own retries:
 *
 *   PUT  small:  HASH --> PUT ------------------------------------> done
 *        large:  HASH --> INIT (?uploads=) --> PART 1..n --> COMPLETE --> done
 *                                  |  any failure after INIT ---> ABORT (one try) --> failed
 *   GET/HEAD/DELETE/LIST:  CALL --> done
 *   DELETE_MANY:           CALL (batch of <= 1000) --> CALL ... --> done
 *
 * HASH runs on the thread pool for bodies above 64 KiB (SHA-256 of a 64 MiB
 * segment takes too long for a loop callback).
 * Retry policy: 5xx, 429/SlowDown, RequestTimeout, curl timeouts and connection
 * errors, and checksum mismatches are retried with exponential backoff and
 * jitter up to cfg.max_attempts; auth errors (403), missing bucket/key and
 * other 4xx are final. Auth and missing-bucket errors log one ERROR naming the
 * bucket and the cause.
 * Invariants: 1. at most one easy handle per request is on the multi;
 *             2. every uv_poll_t is closed before the store is freed;
 *             3. secrets never reach the log. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/st_assert.h"
#include "core/st_log.h"
#include "tiering/obj_int.h"

#define HASH_OFFLOAD_BYTES (64u << 10)
#define ERR_BODY_MAX       (64u << 10)
#define MAX_DELETE_BATCH   1000

typedef enum {
    PH_HASH,
    PH_PUT,
    PH_INIT,
    PH_PART,
    PH_COMPLETE,
    PH_ABORT,
    PH_CALL,
} phase_t;

struct obj__s3op_s {
    obj_req_t *req;
    phase_t phase;
    CURL *easy;
    struct curl_slist *hdrs;
    char curl_err[CURL_ERROR_SIZE];
    unsigned attempt; /* attempts of the current HTTP call */
    /* current call */
    const char *method;
    obj__str_t url;
    const uint8_t *body;
    size_t body_len;
    size_t body_pos;
    obj__str_t owned_body; /* for POST bodies we build */
    /* response */
    long http;
    bool is_body_to_data; /* 2xx GET: body goes to req->res.data */
    obj__str_t rbody;     /* other bodies (XML), capped */
    size_t data_cap;
    EVP_MD_CTX *md;
    char etag[160];
    char meta_sha[65];
    char err_code[64];
    uint64_t content_length;
    bool has_content_length;
    uint64_t range_total;
    /* put */
    uv_work_t work;
    bool is_hashing;
    char sha_hex[65];
    size_t n_parts;
    char (*part_sha)[65];
    char **part_etag;
    size_t part_idx;
    char *upload_id;
    int fail_status; /* multipart: error to report after ABORT */
    char fail_msg[512];
    /* delete_many */
    size_t batch_off;
    /* scratch for the call being prepared */
    char md5_b64[32];
    char body_sha[65];
};

typedef struct obj__sock_s {
    uv_poll_t poll;
    curl_socket_t fd;
    obj_store_t *st;
    struct obj__sock_s *prev, *next;
} obj__sock_t;

static void issue(obj__s3op_t *op);
static void op_step(obj__s3op_t *op);

/* ---- Configuration ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Read one profile of an AWS shared credentials file (INI). Missing file: 0. */
static int read_profile(obj_store_t *st, const char *path, const char *profile)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    bool in = false;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line);
        if (*s == '#' || *s == ';' || !*s)
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (e)
                *e = '\0';
            in = strcmp(trim(s + 1), profile) == 0;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        char **dst = !strcmp(k, "aws_access_key_id")       ? &st->access_key
                     : !strcmp(k, "aws_secret_access_key") ? &st->secret_key
                     : !strcmp(k, "aws_session_token")     ? &st->session_token
                                                           : NULL;
        if (dst && !*dst && !(*dst = strdup(v)))
            rc = ST_E_NOMEM;
    }
    fclose(f);
    memset(line, 0, sizeof line);
    return rc;
}

static int load_credentials(obj_store_t *st)
{
    const obj_config_t *c = &st->cfg;
    if (c->access_key && c->secret_key) {
        st->access_key = strdup(c->access_key);
        st->secret_key = strdup(c->secret_key);
        st->session_token = c->session_token ? strdup(c->session_token) : NULL;
    } else if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
        st->access_key = strdup(env("AWS_ACCESS_KEY_ID"));
        st->secret_key = strdup(env("AWS_SECRET_ACCESS_KEY"));
        st->session_token = env("AWS_SESSION_TOKEN") ? strdup(env("AWS_SESSION_TOKEN")) : NULL;
    } else {
        const char *profile = c->profile ? c->profile : env("AWS_PROFILE");
        const char *file =
            c->credentials_file ? c->credentials_file : env("AWS_SHARED_CREDENTIALS_FILE");
        char buf[1024];
        if (!file && env("HOME")) {
            snprintf(buf, sizeof buf, "%s/.aws/credentials", env("HOME"));
            file = buf;
        }
        if (file) {
            int rc = read_profile(st, file, profile ? profile : "default");
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int parse_endpoint(obj_store_t *st, const char *ep, char *errbuf, size_t errbuf_len)
{
    const char *sep = strstr(ep, "://");
    if (!sep) {
        snprintf(errbuf, errbuf_len, "S3 endpoint must be http(s)://host[:port]: %s", ep);
        return ST_E_CONFIG;
    }
    st->scheme = strndup(ep, (size_t)(sep - ep));
    const char *h = sep + 3;
    size_t n = strcspn(h, "/");
    st->hostport = strndup(h, n);
    if (!st->scheme || !st->hostport)
        return ST_E_NOMEM;
    if ((strcmp(st->scheme, "http") && strcmp(st->scheme, "https")) || n == 0) {
        snprintf(errbuf, errbuf_len, "S3 endpoint must be http(s)://host[:port]: %s", ep);
        return ST_E_CONFIG;
    }
    return 0;
}

int obj__s3_init(obj_store_t *st, char *errbuf, size_t errbuf_len)
{
    pthread_once(&curl_once, curl_init_once);
    char dummy[1];
    if (!errbuf || !errbuf_len) {
        errbuf = dummy;
        errbuf_len = sizeof dummy;
    }
    const obj_config_t *c = &st->cfg;
    const char *b = c->url + 5;
    size_t bn = strcspn(b, "/");
    if (bn < 3 || bn > 63) {
        snprintf(errbuf, errbuf_len, "S3 bucket name must have 3 to 63 characters: %s", c->url);
        return ST_E_CONFIG;
    }
    st->bucket = strndup(b, bn);
    const char *p = b[bn] ? b + bn + 1 : "";
    size_t pn = strlen(p);
    while (pn && p[pn - 1] == '/')
        pn--;
    if (pn > OBJ_S3_MAX_PREFIX) {
        /* Strata's keys reach 330 bytes (a segment of a 249-character
         * topic): with a longer prefix they would pass S3's 1024-byte key
         * limit and their uploads would fail for good. */
        snprintf(errbuf, errbuf_len,
                 "S3 key prefix has %zu bytes, more than %d: archive keys (up to 330 bytes "
                 "after it) would pass S3's 1024-byte key limit: %s",
                 pn, OBJ_S3_MAX_PREFIX, c->url);
        return ST_E_CONFIG;
    }
    st->prefix = malloc(pn + 2);
    if (!st->bucket || !st->prefix)
        return ST_E_NOMEM;
    memcpy(st->prefix, p, pn);
    if (pn)
        st->prefix[pn++] = '/';
    st->prefix[pn] = '\0';
    size_t nl = strlen(st->bucket) + strlen(st->prefix) + 8;
    if (!(st->name = malloc(nl)))
        return ST_E_NOMEM;
    snprintf(st->name, nl, "s3://%s%s%.*s", st->bucket, pn ? "/" : "", pn ? (int)pn - 1 : 0,
             st->prefix);

    const char *region = c->region ? c->region : env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!(st->region = strdup(region ? region : "us-east-1")))
        return ST_E_NOMEM;
    int rc;
    const char *endpoint = c->endpoint ? c->endpoint : env("AWS_ENDPOINT_URL_S3");
    if (!endpoint)
        endpoint = env("AWS_ENDPOINT_URL");
    bool is_aws = !endpoint;
    if (endpoint) {
        rc = parse_endpoint(st, endpoint, errbuf, errbuf_len);
    } else {
        char ep[256];
        snprintf(ep, sizeof ep, "https://s3.%s.amazonaws.com", st->region);
        rc = parse_endpoint(st, ep, errbuf, errbuf_len);
    }
    if (rc)
        return rc;
    st->is_path_style = c->addressing == OBJ_ADDR_PATH ||
                        (c->addressing == OBJ_ADDR_AUTO && (!is_aws || strchr(st->bucket, '.')));
    if ((rc = load_credentials(st)))
        return rc;
    if (!st->access_key || !st->secret_key) {
        snprintf(errbuf, errbuf_len,
                 "no S3 credentials for %s: set them in the config, AWS_ACCESS_KEY_ID/"
                 "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials",
                 st->name);
        return ST_E_CONFIG;
    }
    st->multi = curl_multi_init();
    if (!st->multi)
        return ST_E_NOMEM;
    return 0;
}

/* ---- curl multi <-> libuv ---- */

static void check_done(obj_store_t *st);

static void sock_close_cb(uv_handle_t *h)
{
    obj__sock_t *s = h->data;
    obj_store_t *st = s->st;
    free(s);
    obj__handle_closed(st);
}

static void sock_close(obj_store_t *st, obj__sock_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        st->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_close_cb);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    obj__sock_t *s = h->data;
    obj_store_t *st = s->st;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(st->multi, s->fd, flags, &running);
    check_done(st);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    obj_store_t *st = userp;
    obj__sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(st->multi, fd, NULL);
            sock_close(st, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -1;
        s->fd = fd;
        s->st = st;
        if (uv_poll_init_socket(st->loop, &s->poll, fd)) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        st->n_open_handles++;
        s->next = st->socks;
        if (s->next)
            s->next->prev = s;
        st->socks = s;
        curl_multi_assign(st->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, poll_cb);
    return 0;
}

static void curl_timer_cb(uv_timer_t *t)
{
    obj_store_t *st = t->data;
    int running;
    curl_multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(st);
}

static int timer_fn(CURLM *m, long timeout_ms, void *userp)
{
    obj_store_t *st = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&st->curl_timer);
    else
        uv_timer_start(&st->curl_timer, curl_timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static void curl_timer_closed(uv_handle_t *h)
{
    obj__handle_closed(h->data);
}

static void multi_setup(obj_store_t *st)
{
    if (st->curl_timer.data)
        return;
    uv_timer_init(st->loop, &st->curl_timer);
    st->curl_timer.data = st;
    st->n_open_handles++;
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETDATA, st);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERDATA, st);
    curl_multi_setopt(st->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)st->cfg.max_inflight);
    curl_multi_setopt(st->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)st->cfg.max_inflight);
}

void obj__s3_close(obj_store_t *st)
{
    if (st->multi) {
        curl_multi_cleanup(st->multi); /* may call sock_cb(REMOVE) */
        st->multi = NULL;
    }
    while (st->socks)
        sock_close(st, st->socks);
    if (st->curl_timer.data) {
        uv_timer_stop(&st->curl_timer);
        uv_close((uv_handle_t *)&st->curl_timer, curl_timer_closed);
    }
}

/* ---- HTTP calls ---- */

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    obj__s3op_t *op = userp;
    size_t n = size * nitems, left = op->body_len - op->body_pos;
    if (n > left)
        n = left;
    if (n)
        memcpy(buf, op->body + op->body_pos, n);
    op->body_pos += n;
    return n;
}

static int seek_cb(void *userp, curl_off_t offset, int origin)
{
    obj__s3op_t *op = userp;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > op->body_len)
        return CURL_SEEKFUNC_FAIL;
    op->body_pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    obj__s3op_t *op = userp;
    size_t n = size * nitems;
    char line[512];
    size_t ln = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, buf, ln);
    line[ln] = '\0';
    char *v = strchr(line, ':');
    if (!strncmp(line, "HTTP/", 5)) {
        /* a new response (after 100-continue or a redirect): reset */
        char *sp = strchr(line, ' ');
        op->http = sp ? strtol(sp + 1, NULL, 10) : 0;
        op->etag[0] = op->meta_sha[0] = op->err_code[0] = '\0';
        op->has_content_length = false;
        op->range_total = 0;
        return n;
    }
    if (!v)
        return n;
    *v = '\0';
    char *val = trim(v + 1);
    if (!strcasecmp(line, "etag")) {
        snprintf(op->etag, sizeof op->etag, "%s", val);
    } else if (!strcasecmp(line, "x-amz-meta-strata-sha256")) {
        snprintf(op->meta_sha, sizeof op->meta_sha, "%s", val);
    } else if (!strcasecmp(line, "x-amz-error-code")) {
        snprintf(op->err_code, sizeof op->err_code, "%s", val);
    } else if (!strcasecmp(line, "content-length")) {
        op->content_length = strtoull(val, NULL, 10);
        op->has_content_length = true;
    } else if (!strcasecmp(line, "content-range")) {
        char *slash = strchr(val, '/');
        if (slash)
            op->range_total = strtoull(slash + 1, NULL, 10);
    }
    return n;
}

static size_t write_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    obj__s3op_t *op = userp;
    obj_req_t *req = op->req;
    size_t n = size * nitems;
    bool to_data = req->op == OBJ__OP_GET && op->phase == PH_CALL && op->http / 100 == 2;
    if (!to_data) {
        if (op->rbody.len + n > ERR_BODY_MAX && req->op != OBJ__OP_LIST &&
            req->op != OBJ__OP_DELETE_MANY)
            return n; /* keep the head of a long error body */
        if (obj__str_add(&op->rbody, buf, n))
            return 0;
        return n;
    }
    obj_result_t *res = &req->res;
    if (req->is_ranged && res->data_len + n > req->range_len)
        return 0; /* server sent more than asked: fail the transfer */
    if (res->data_len + n > op->data_cap) {
        size_t cap = op->data_cap ? op->data_cap : 16384;
        if (op->has_content_length && op->content_length > cap && op->content_length < SIZE_MAX)
            cap = (size_t)op->content_length;
        while (cap < res->data_len + n)
            cap *= 2;
        uint8_t *p = realloc(res->data, cap);
        if (!p)
            return 0;
        res->data = p;
        op->data_cap = cap;
    }
    memcpy(res->data + res->data_len, buf, n);
    res->data_len += n;
    if (op->md)
        EVP_DigestUpdate(op->md, buf, n);
    return n;
}

static void amz_date_now(const obj_store_t *st, char out[17])
{
    time_t t = time(NULL) + (time_t)st->clock_offset_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

int obj__s3_target(const obj_store_t *st, const char *key, obj__str_t *host, obj__str_t *path)
{
    if (st->is_path_style ? obj__str_addf(host, "%s", st->hostport)
                          : obj__str_addf(host, "%s.%s", st->bucket, st->hostport))
        return ST_E_NOMEM;
    if (st->is_path_style && (obj__str_add(path, "/", 1) ||
                              obj__uri_encode(path, st->bucket, strlen(st->bucket), false)))
        return ST_E_NOMEM;
    if (!key)
        return path->len ? 0 : obj__str_add(path, "/", 1);
    if (obj__str_add(path, "/", 1) || obj__uri_encode(path, st->prefix, strlen(st->prefix), true) ||
        obj__uri_encode(path, key, strlen(key), true))
        return ST_E_NOMEM;
    return 0;
}

typedef struct {
    const char *method;
    const char *key; /* NULL: the bucket */
    obj__kv_t query[5];
    size_t n_query;
    obj__kv_t extra[3]; /* extra signed headers */
    size_t n_extra;
    const uint8_t *body;
    size_t body_len;
    const char *payload_hash;
} call_t;

static int call_prepare(obj__s3op_t *op, const call_t *c)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    obj__str_t path = {0}, hostbuf = {0};
    obj__sigv4_out_t sig = {0};
    int rc = ST_E_NOMEM;
    char date[17];
    amz_date_now(st, date);
    if (obj__s3_target(st, c->key, &hostbuf, &path))
        goto out;
    obj__kv_t h[8];
    size_t nh = 0;
    h[nh++] = (obj__kv_t){"host", hostbuf.p};
    h[nh++] = (obj__kv_t){"x-amz-date", date};
    h[nh++] = (obj__kv_t){"x-amz-content-sha256", c->payload_hash};
    if (st->session_token)
        h[nh++] = (obj__kv_t){"x-amz-security-token", st->session_token};
    for (size_t i = 0; i < c->n_extra; i++)
        h[nh++] = c->extra[i];
    obj__sigv4_in_t in = {
        .method = c->method,
        .canonical_uri = path.p,
        .query = c->query,
        .n_query = c->n_query,
        .headers = h,
        .n_headers = nh,
        .payload_hash = c->payload_hash,
        .access_key = st->access_key,
        .secret_key = st->secret_key,
        .region = st->region,
        .service = "s3",
        .amz_date = date,
    };
    if (obj__sigv4_sign(&in, &sig))
        goto out;
    obj__str_free(&op->url);
    if (obj__str_addf(&op->url, "%s://%s%s%s%s", st->scheme, hostbuf.p, path.p,
                      sig.canonical_query[0] ? "?" : "", sig.canonical_query))
        goto out;
    curl_slist_free_all(op->hdrs);
    op->hdrs = NULL;
    struct curl_slist *l = NULL;
    for (size_t i = 0; i <= nh; i++) {
        obj__str_t line = {0};
        int lrc = i < nh ? obj__str_addf(&line, "%s: %s", h[i].name, h[i].value)
                         : obj__str_addf(&line, "Authorization: %s", sig.authorization);
        struct curl_slist *nl = lrc ? NULL : curl_slist_append(l, line.p);
        obj__str_free(&line);
        if (!nl)
            goto slist_fail;
        l = nl;
    }
    {
        /* no 100-continue round trip; no default form content type on POST */
        struct curl_slist *nl = curl_slist_append(l, "Expect:");
        if (!nl)
            goto slist_fail;
        l = nl;
        if (c->body && !(nl = curl_slist_append(l, "Content-Type: application/octet-stream")))
            goto slist_fail;
        l = nl;
    }
    op->hdrs = l;
    op->method = c->method;
    op->body = c->body;
    op->body_len = c->body_len;
    rc = 0;
    goto out;
slist_fail:
    curl_slist_free_all(l);
out:
    obj__str_free(&path);
    obj__str_free(&hostbuf);
    obj__sigv4_out_free(&sig);
    return rc;
}

/* Start one attempt of the prepared call. */
static int call_send(obj__s3op_t *op)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    multi_setup(st);
    CURL *e = curl_easy_init();
    if (!e)
        return ST_E_NOMEM;
    op->easy = e;
    op->body_pos = 0;
    op->http = 0;
    op->rbody.len = 0;
    op->curl_err[0] = '\0';
    req->res.data_len = 0;
    if (op->md)
        EVP_DigestInit_ex(op->md, EVP_sha256(), NULL);
    /* The attempt's deadline grows with the bytes it moves (at least 1 MiB/s
     * after attempt_timeout_ms); a whole-object GET, whose size is unknown, is
     * bounded by the request deadline and by stall detection below. */
    uint64_t left = obj__remaining_ms(req);
    uint64_t expect = op->body_len;
    bool is_unbounded = req->op == OBJ__OP_GET && op->phase == PH_CALL && !req->is_ranged;
    if (req->op == OBJ__OP_GET && req->is_ranged)
        expect = req->range_len;
    uint64_t tmo = left;
    if (!is_unbounded && st->cfg.attempt_timeout_ms + expect / 1024 < tmo)
        tmo = st->cfg.attempt_timeout_ms + expect / 1024;
    uint64_t ctmo = st->cfg.attempt_timeout_ms < tmo ? st->cfg.attempt_timeout_ms : tmo;
    long stall_s = (long)(st->cfg.attempt_timeout_ms / 1000);
    curl_easy_setopt(e, CURLOPT_PRIVATE, op);
    curl_easy_setopt(e, CURLOPT_URL, op->url.p);
    /* Send the path exactly as signed: curl would otherwise squash "." and
     * ".." segments, which are plain characters of an S3 key. */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->curl_err);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(tmo ? tmo : 1));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(ctmo ? ctmo : 1));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L << 10);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 256L << 10);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, st->cfg.is_tls_verify_disabled ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, st->cfg.is_tls_verify_disabled ? 0L : 2L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!strcmp(op->method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(op->method, "PUT") || !strcmp(op->method, "POST")) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, op->method);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, op);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, op);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)op->body_len);
    } else if (strcmp(op->method, "GET")) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, op->method);
    }
    op->attempt++;
    req->res.attempts++;
    if (curl_multi_add_handle(st->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        op->easy = NULL;
        return ST_E_NOMEM;
    }
    return 0;
}

static void easy_drop(obj__s3op_t *op)
{
    if (!op->easy)
        return;
    curl_multi_remove_handle(op->req->st->multi, op->easy);
    curl_easy_cleanup(op->easy);
    op->easy = NULL;
}

/* ---- Outcome classification ---- */

typedef enum { OUT_OK, OUT_RETRY, OUT_FAIL } outcome_t;

static const char *auth_cause(const char *code)
{
    if (!strcmp(code, "SignatureDoesNotMatch"))
        return "wrong secret key (signature does not match)";
    if (!strcmp(code, "InvalidAccessKeyId"))
        return "unknown access key id";
    if (!strcmp(code, "RequestTimeTooSkewed"))
        return "clock skew: this machine's clock differs too much from the server's";
    if (!strcmp(code, "ExpiredToken") || !strcmp(code, "TokenRefreshRequired"))
        return "expired session token";
    if (!strcmp(code, "InvalidToken"))
        return "invalid session token";
    if (!strcmp(code, "AccessDenied"))
        return "access denied by bucket or IAM policy";
    return "forbidden (check credentials, bucket policy and clock)";
}

/* Error code from the XML body or the x-amz-error-code header. */
static void error_code(obj__s3op_t *op, char *code, size_t n, char *msg, size_t mn)
{
    const char *p = op->rbody.p ? op->rbody.p : "", *end = p + op->rbody.len, *v;
    size_t vn;
    code[0] = msg[0] = '\0';
    if (op->rbody.len && obj__xml_next(&p, end, "Code", &v, &vn))
        snprintf(code, n, "%.*s", (int)vn, v);
    else if (op->err_code[0])
        snprintf(code, n, "%s", op->err_code);
    p = op->rbody.p ? op->rbody.p : "";
    if (op->rbody.len && obj__xml_next(&p, end, "Message", &v, &vn))
        snprintf(msg, mn, "%.*s", (int)vn, v);
}

static const char *op_what(const obj__s3op_t *op)
{
    static const char *names[] = {"HASH",
                                  "PUT",
                                  "CreateMultipartUpload",
                                  "UploadPart",
                                  "CompleteMultipartUpload",
                                  "AbortMultipartUpload",
                                  NULL};
    if (op->phase != PH_CALL)
        return names[op->phase];
    switch (op->req->op) {
    case OBJ__OP_GET:
        return "GET";
    case OBJ__OP_HEAD:
        return "HEAD";
    case OBJ__OP_LIST:
        return "LIST";
    case OBJ__OP_DELETE:
        return "DELETE";
    case OBJ__OP_DELETE_MANY:
        return "DeleteObjects";
    default:
        return "PUT";
    }
}

static bool curl_is_retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
        return true;
    default:
        return false;
    }
}

/* Decide what a finished HTTP attempt means. Sets *status for OUT_FAIL/OUT_RETRY. */
static outcome_t classify(obj__s3op_t *op, CURLcode cc, int *status)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    const char *key = req->key ? req->key : "";
    req->res.http_status = (int)op->http;
    if (cc != CURLE_OK) {
        *status = cc == CURLE_OPERATION_TIMEDOUT ? ST_E_TIMEOUT : ST_E_IO;
        obj__set_err(req, "%s: %s %s%s: network error: %s", st->name, op_what(op), st->prefix, key,
                     op->curl_err[0] ? op->curl_err : curl_easy_strerror(cc));
        return curl_is_retryable(cc) ? OUT_RETRY : OUT_FAIL;
    }
    long h = op->http;
    if (h / 100 == 2)
        return OUT_OK;
    char code[64], msg[256];
    error_code(op, code, sizeof code, msg, sizeof msg);
    if (h >= 500 || h == 429 || !strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout") ||
        !strcmp(code, "InternalError")) {
        *status = ST_E_REMOTE;
        obj__set_err(req, "%s: %s %s%s: HTTP %ld %s", st->name, op_what(op), st->prefix, key, h,
                     code[0] ? code : "(no error code)");
        return OUT_RETRY;
    }
    if (h == 403 || h == 401 || !strcmp(code, "SignatureDoesNotMatch") ||
        !strcmp(code, "InvalidAccessKeyId") || !strcmp(code, "RequestTimeTooSkewed") ||
        !strcmp(code, "ExpiredToken") || !strcmp(code, "InvalidToken") ||
        !strcmp(code, "AccessDenied")) {
        *status = ST_E_AUTH;
        obj__set_err(req, "%s: bucket %s: %s refused: %s (HTTP %ld %s)", st->name, st->bucket,
                     op_what(op), auth_cause(code), h, code[0] ? code : "no error code");
        ST_ERROR(OBJ__MOD, "S3 auth error bucket=%s endpoint=%s://%s op=%s cause=\"%s\" code=%s",
                 st->bucket, st->scheme, st->hostport, op_what(op), auth_cause(code),
                 code[0] ? code : "-");
        return OUT_FAIL;
    }
    if (!strcmp(code, "NoSuchBucket")) {
        *status = ST_E_NOTFOUND;
        obj__set_err(req, "%s: bucket %s does not exist at %s://%s", st->name, st->bucket,
                     st->scheme, st->hostport);
        ST_ERROR(OBJ__MOD, "S3 bucket missing bucket=%s endpoint=%s://%s", st->bucket, st->scheme,
                 st->hostport);
        return OUT_FAIL;
    }
    if (h == 404) {
        *status = ST_E_NOTFOUND;
        obj__set_err(req, "%s: %s%s: no such key", st->name, st->prefix, key);
        return OUT_FAIL;
    }
    if (h == 416) {
        *status = ST_E_RANGE;
        obj__set_err(req, "%s: %s%s: range starts past the end of the object", st->name, st->prefix,
                     key);
        return OUT_FAIL;
    }
    if (h == 301 || h == 307 || !strcmp(code, "PermanentRedirect") ||
        !strcmp(code, "AuthorizationHeaderMalformed")) {
        *status = ST_E_CONFIG;
        obj__set_err(req, "%s: bucket %s is not in region %s or behind endpoint %s (HTTP %ld %s)",
                     st->name, st->bucket, st->region, st->hostport, h, code);
        ST_ERROR(OBJ__MOD, "S3 region/endpoint mismatch bucket=%s region=%s code=%s", st->bucket,
                 st->region, code[0] ? code : "-");
        return OUT_FAIL;
    }
    *status = ST_E_REMOTE;
    obj__set_err(req, "%s: %s %s%s: HTTP %ld %s %s", st->name, op_what(op), st->prefix, key, h,
                 code, msg);
    ST_WARN(OBJ__MOD, "S3 request rejected bucket=%s op=%s http=%ld code=%s", st->bucket,
            op_what(op), h, code[0] ? code : "-");
    return OUT_FAIL;
}

/* ---- Retry ---- */

static void retry_cb(uv_timer_t *t)
{
    obj_req_t *req = t->data;
    if (!req->s3 || req->is_done)
        return;
    issue(req->s3);
}

static uint64_t backoff_ms(const obj_store_t *st, unsigned attempt)
{
    uint64_t cap = st->cfg.retry_base_ms;
    for (unsigned i = 1; i < attempt && cap < st->cfg.retry_max_ms; i++)
        cap *= 2;
    if (cap > st->cfg.retry_max_ms)
        cap = st->cfg.retry_max_ms;
    uint64_t half = cap / 2;
    return half + (half ? (uint64_t)rand() % (half + 1) : 0);
}

/* A failed attempt: schedule another or give up. Returns true if retrying. */
static bool maybe_retry(obj__s3op_t *op, int status)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    if (op->attempt >= st->cfg.max_attempts || op->phase == PH_ABORT)
        return false;
    uint64_t d = backoff_ms(st, op->attempt);
    if (d >= obj__remaining_ms(req))
        return false;
    ST_WARN(OBJ__MOD, "S3 retry bucket=%s op=%s attempt=%u delay_ms=%llu cause=\"%s\"", st->bucket,
            op_what(op), op->attempt, (unsigned long long)d, req->errmsg);
    (void)status;
    uv_timer_start(&req->retry_timer, retry_cb, d, 0);
    return true;
}

/* ---- Operations ---- */

static void op_fail(obj__s3op_t *op, int status);

static void parse_list(obj__s3op_t *op, int *status)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    const char *p = op->rbody.p ? op->rbody.p : "", *end = p + op->rbody.len, *v, *cv;
    size_t vn, cn, cap = 0;
    size_t plen = strlen(st->prefix);
    while (obj__xml_next(&p, end, "Contents", &cv, &cn)) {
        const char *q = cv, *qe = cv + cn;
        if (!obj__xml_next(&q, qe, "Key", &v, &vn))
            continue;
        char *k = obj__xml_text(v, vn);
        if (!k)
            goto nomem;
        if (strncmp(k, st->prefix, plen) != 0) {
            free(k);
            continue;
        }
        memmove(k, k + plen, strlen(k + plen) + 1);
        uint64_t size = 0;
        q = cv;
        if (obj__xml_next(&q, qe, "Size", &v, &vn))
            size = strtoull(v, NULL, 10);
        if (req->res.n_entries == cap) {
            cap = cap ? cap * 2 : 64;
            obj_entry_t *e = realloc(req->res.entries, cap * sizeof *e);
            if (!e) {
                free(k);
                goto nomem;
            }
            req->res.entries = e;
        }
        req->res.entries[req->res.n_entries++] = (obj_entry_t){k, size};
    }
    p = op->rbody.p ? op->rbody.p : "";
    bool trunc =
        obj__xml_next(&p, end, "IsTruncated", &v, &vn) && vn == 4 && !strncmp(v, "true", 4);
    p = op->rbody.p ? op->rbody.p : "";
    if (trunc && obj__xml_next(&p, end, "NextContinuationToken", &v, &vn)) {
        req->res.next_token = obj__xml_text(v, vn);
        if (!req->res.next_token)
            goto nomem;
    } else if (trunc) {
        *status = ST_E_MALFORMED;
        obj__set_err(req, "%s: LIST: truncated reply without a continuation token", st->name);
        return;
    }
    *status = 0;
    return;
nomem:
    *status = ST_E_NOMEM;
}

static int delete_batch_prepare(obj__s3op_t *op, call_t *c)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    obj__str_free(&op->owned_body);
    size_t n = req->n_keys - op->batch_off;
    if (n > MAX_DELETE_BATCH)
        n = MAX_DELETE_BATCH;
    if (obj__str_add(&op->owned_body, "<Delete><Quiet>true</Quiet>", 27))
        return ST_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (obj__str_add(&op->owned_body, "<Object><Key>", 13) ||
            obj__xml_escape(&op->owned_body, st->prefix) ||
            obj__xml_escape(&op->owned_body, req->keys[op->batch_off + i]) ||
            obj__str_add(&op->owned_body, "</Key></Object>", 15))
            return ST_E_NOMEM;
    }
    if (obj__str_add(&op->owned_body, "</Delete>", 9))
        return ST_E_NOMEM;
    char *md5_b64 = op->md5_b64, *sha = op->body_sha;
    uint8_t md5[16];
    unsigned int ml = 16;
    EVP_Digest(op->owned_body.p, op->owned_body.len, md5, &ml, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)md5_b64, md5, 16);
    obj__sha256_hex(op->owned_body.p, op->owned_body.len, sha);
    *c = (call_t){.method = "POST",
                  .query = {{"delete", ""}},
                  .n_query = 1,
                  .extra = {{"content-md5", md5_b64}},
                  .n_extra = 1,
                  .body = (const uint8_t *)op->owned_body.p,
                  .body_len = op->owned_body.len};
    c->payload_hash = sha;
    return 0;
}

/* Build and send the HTTP call of the current phase. */
static void issue(obj__s3op_t *op)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    static const char empty_sha[] =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    call_t c = {.key = req->key, .payload_hash = empty_sha};
    char range[64], partno[16];
    char sha_part[65];
    int rc = 0;
    switch (op->phase) {
    case PH_PUT:
        c.method = "PUT";
        c.body = req->put_data;
        c.body_len = req->put_len;
        c.payload_hash = op->sha_hex;
        c.extra[c.n_extra++] = (obj__kv_t){"x-amz-meta-strata-sha256", op->sha_hex};
        break;
    case PH_INIT:
        c.method = "POST";
        c.query[c.n_query++] = (obj__kv_t){"uploads", ""};
        c.extra[c.n_extra++] = (obj__kv_t){"x-amz-meta-strata-sha256", op->sha_hex};
        break;
    case PH_PART: {
        uint64_t psz = st->cfg.multipart_part_bytes;
        uint64_t off = op->part_idx * psz;
        c.method = "PUT";
        c.body = req->put_data + off;
        c.body_len = (size_t)(req->put_len - off < psz ? req->put_len - off : psz);
        snprintf(partno, sizeof partno, "%zu", op->part_idx + 1);
        c.query[c.n_query++] = (obj__kv_t){"partNumber", partno};
        c.query[c.n_query++] = (obj__kv_t){"uploadId", op->upload_id};
        memcpy(sha_part, op->part_sha[op->part_idx], 65);
        c.payload_hash = sha_part;
        break;
    }
    case PH_COMPLETE:
        obj__str_free(&op->owned_body);
        rc = obj__str_add(&op->owned_body, "<CompleteMultipartUpload>", 25);
        for (size_t i = 0; !rc && i < op->n_parts; i++) {
            rc =
                obj__str_addf(&op->owned_body, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1) ||
                obj__xml_escape(&op->owned_body, op->part_etag[i]) ||
                obj__str_add(&op->owned_body, "</ETag></Part>", 14);
        }
        if (!rc)
            rc = obj__str_add(&op->owned_body, "</CompleteMultipartUpload>", 26);
        if (rc)
            break;
        obj__sha256_hex(op->owned_body.p, op->owned_body.len, sha_part);
        c.method = "POST";
        c.query[c.n_query++] = (obj__kv_t){"uploadId", op->upload_id};
        c.body = (const uint8_t *)op->owned_body.p;
        c.body_len = op->owned_body.len;
        c.payload_hash = sha_part;
        break;
    case PH_ABORT:
        c.method = "DELETE";
        c.query[c.n_query++] = (obj__kv_t){"uploadId", op->upload_id};
        break;
    case PH_CALL:
        switch (req->op) {
        case OBJ__OP_GET:
            c.method = "GET";
            if (req->is_ranged) {
                snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)req->range_off,
                         (unsigned long long)(req->range_off + req->range_len - 1));
                c.extra[c.n_extra++] = (obj__kv_t){"range", range};
            }
            break;
        case OBJ__OP_HEAD:
            c.method = "HEAD";
            break;
        case OBJ__OP_DELETE:
            c.method = "DELETE";
            break;
        case OBJ__OP_LIST: {
            c.method = "GET";
            c.key = NULL;
            obj__str_t pfx = {0};
            if (obj__str_addf(&pfx, "%s%s", st->prefix, req->prefix)) {
                rc = ST_E_NOMEM;
                break;
            }
            snprintf(partno, sizeof partno, "%u", req->max_keys);
            c.query[c.n_query++] = (obj__kv_t){"list-type", "2"};
            c.query[c.n_query++] = (obj__kv_t){"max-keys", partno};
            c.query[c.n_query++] = (obj__kv_t){"prefix", pfx.p};
            if (req->token)
                c.query[c.n_query++] = (obj__kv_t){"continuation-token", req->token};
            rc = call_prepare(op, &c);
            obj__str_free(&pfx);
            goto send;
        }
        case OBJ__OP_DELETE_MANY:
            c.key = NULL;
            rc = delete_batch_prepare(op, &c);
            c.key = NULL;
            break;
        default:
            rc = ST_E_INVAL;
        }
        break;
    case PH_HASH:
        rc = ST_E_INVAL;
        break;
    }
    if (!rc)
        rc = call_prepare(op, &c);
send:
    if (rc > 0)
        rc = ST_E_NOMEM; /* a failed `a || b` chain of string appends */
    if (!rc)
        rc = call_send(op);
    if (rc)
        op_fail(op, rc);
}

static void next_call(obj__s3op_t *op, phase_t ph)
{
    op->phase = ph;
    op->attempt = 0;
    issue(op);
}

static void op_fail(obj__s3op_t *op, int status)
{
    obj_req_t *req = op->req;
    if (op->upload_id && op->phase != PH_ABORT) {
        /* abort the multipart upload once, then report the original error */
        op->fail_status = status;
        memcpy(op->fail_msg, req->errmsg, sizeof op->fail_msg);
        next_call(op, PH_ABORT);
        return;
    }
    if (op->phase == PH_ABORT) {
        memcpy(req->errmsg, op->fail_msg, sizeof op->fail_msg);
        status = op->fail_status;
    }
    obj__finish(req, status);
}

/* A 2xx reply for the current phase. */
static void on_success(obj__s3op_t *op)
{
    obj_req_t *req = op->req;
    obj_store_t *st = req->st;
    const char *p = op->rbody.p ? op->rbody.p : "", *end = p + op->rbody.len, *v;
    size_t vn;
    int status = 0;
    switch (op->phase) {
    case PH_PUT:
        snprintf(req->res.sha256_hex, sizeof req->res.sha256_hex, "%s", op->sha_hex);
        obj__finish(req, 0);
        return;
    case PH_INIT:
        if (!obj__xml_next(&p, end, "UploadId", &v, &vn) ||
            !(op->upload_id = obj__xml_text(v, vn))) {
            obj__set_err(req, "%s: %s: CreateMultipartUpload reply has no UploadId", st->name,
                         req->key);
            obj__finish(req, ST_E_MALFORMED);
            return;
        }
        op->part_idx = 0;
        next_call(op, PH_PART);
        return;
    case PH_PART:
        if (!op->etag[0] || !(op->part_etag[op->part_idx] = strdup(op->etag))) {
            obj__set_err(req, "%s: %s: UploadPart reply has no ETag", st->name, req->key);
            op_fail(op, ST_E_MALFORMED);
            return;
        }
        if (++op->part_idx < op->n_parts)
            next_call(op, PH_PART);
        else
            next_call(op, PH_COMPLETE);
        return;
    case PH_COMPLETE:
        /* S3 may answer 200 and put an error in the body */
        if (obj__xml_next(&p, end, "Error", &v, &vn)) {
            obj__set_err(req, "%s: %s: CompleteMultipartUpload failed: %.*s", st->name, req->key,
                         (int)(vn > 200 ? 200 : vn), v);
            if (!maybe_retry(op, ST_E_REMOTE))
                op_fail(op, ST_E_REMOTE);
            return;
        }
        free(op->upload_id);
        op->upload_id = NULL;
        snprintf(req->res.sha256_hex, sizeof req->res.sha256_hex, "%s", op->sha_hex);
        obj__finish(req, 0);
        return;
    case PH_ABORT:
        free(op->upload_id);
        op->upload_id = NULL;
        memcpy(req->errmsg, op->fail_msg, sizeof op->fail_msg);
        obj__finish(req, op->fail_status);
        return;
    case PH_HASH:
        return;
    case PH_CALL:
        break;
    }
    switch (req->op) {
    case OBJ__OP_GET: {
        snprintf(req->res.sha256_hex, sizeof req->res.sha256_hex, "%s", op->meta_sha);
        if (req->is_ranged) {
            req->res.object_size = op->range_total ? op->range_total : req->res.data_len;
        } else {
            req->res.object_size = req->res.data_len;
            if (op->has_content_length && op->content_length != req->res.data_len) {
                obj__set_err(req, "%s: GET %s: short body (%zu of %llu bytes)", st->name, req->key,
                             req->res.data_len, (unsigned long long)op->content_length);
                status = ST_E_IO;
            } else if (op->meta_sha[0]) {
                uint8_t md[32];
                unsigned int ml = 32;
                char got[65];
                EVP_DigestFinal_ex(op->md, md, &ml);
                obj__hex(md, 32, got);
                if (strcasecmp(got, op->meta_sha)) {
                    obj__set_err(req, "%s: GET %s: checksum mismatch (stored sha256 %s, got %s)",
                                 st->name, req->key, op->meta_sha, got);
                    ST_WARN(OBJ__MOD, "S3 corrupt body bucket=%s key=%s%s attempt=%u", st->bucket,
                            st->prefix, req->key, op->attempt);
                    status = ST_E_CORRUPT;
                }
            }
            if (status) {
                if (!maybe_retry(op, status))
                    obj__finish(req, status);
                return;
            }
        }
        if (!req->res.data && (req->res.data = malloc(1)) == NULL)
            status = ST_E_NOMEM;
        break;
    }
    case OBJ__OP_HEAD:
        req->res.object_size = op->content_length;
        snprintf(req->res.sha256_hex, sizeof req->res.sha256_hex, "%s", op->meta_sha);
        break;
    case OBJ__OP_LIST:
        parse_list(op, &status);
        break;
    case OBJ__OP_DELETE:
        break;
    case OBJ__OP_DELETE_MANY: {
        size_t n = req->n_keys - op->batch_off;
        n = n > MAX_DELETE_BATCH ? MAX_DELETE_BATCH : n;
        const char *ev;
        size_t en;
        while (obj__xml_next(&p, end, "Error", &ev, &en)) {
            req->res.n_failed++;
            const char *q = ev, *cv;
            size_t cn;
            if (obj__xml_next(&q, ev + en, "Code", &cv, &cn))
                obj__set_err(req, "%s: DeleteObjects: %zu keys failed, last: %.*s", st->name,
                             req->res.n_failed, (int)cn, cv);
        }
        op->batch_off += n;
        if (op->batch_off < req->n_keys) {
            next_call(op, PH_CALL);
            return;
        }
        status = req->res.n_failed ? ST_E_REMOTE : 0;
        break;
    }
    default:
        break;
    }
    obj__finish(req, status);
}

static void on_done(obj__s3op_t *op, CURLcode cc)
{
    obj_req_t *req = op->req;
    int status = 0;
    if (req->op == OBJ__OP_DELETE && op->phase == PH_CALL && cc == CURLE_OK && op->http == 404) {
        obj__finish(req, 0); /* deleting a missing key succeeds */
        return;
    }
    outcome_t o = classify(op, cc, &status);
    if (o == OUT_OK) {
        on_success(op);
        return;
    }
    if (op->phase == PH_ABORT) {
        ST_WARN(OBJ__MOD, "S3 AbortMultipartUpload failed bucket=%s key=%s%s http=%ld",
                req->st->bucket, req->st->prefix, req->key, op->http);
        free(op->upload_id);
        op->upload_id = NULL;
        memcpy(req->errmsg, op->fail_msg, sizeof op->fail_msg);
        obj__finish(req, op->fail_status);
        return;
    }
    if (o == OUT_RETRY && maybe_retry(op, status))
        return;
    if (o == OUT_RETRY)
        ST_WARN(OBJ__MOD, "S3 giving up bucket=%s op=%s attempts=%u cause=\"%s\"", req->st->bucket,
                op_what(op), op->attempt, req->errmsg);
    op_fail(op, status);
}

static void check_done(obj_store_t *st)
{
    CURLMsg *m;
    int left;
    while (st->multi && (m = curl_multi_info_read(st->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        obj__s3op_t *op = NULL;
        CURL *e = m->easy_handle;
        CURLcode cc = m->data.result;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&op);
        long code = 0, n_conn = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &n_conn);
        if (code)
            op->http = code;
        st->n_connects += (uint64_t)n_conn;
        ST_DEBUG(OBJ__MOD, "S3 done bucket=%s op=%s key=%s%s http=%ld curl=%d attempt=%u",
                 st->bucket, op_what(op), st->prefix, op->req->key ? op->req->key : "", code,
                 (int)cc, op->attempt);
        easy_drop(op);
        on_done(op, cc);
    }
}

/* ---- Hashing a put body (thread pool above HASH_OFFLOAD_BYTES) ---- */

static void hash_work(uv_work_t *w)
{
    obj__s3op_t *op = w->data;
    obj_req_t *req = op->req;
    obj__sha256_hex(req->put_data, req->put_len, op->sha_hex);
    uint64_t psz = req->st->cfg.multipart_part_bytes;
    for (size_t i = 0; i < op->n_parts; i++) {
        uint64_t off = i * psz;
        size_t n = (size_t)(req->put_len - off < psz ? req->put_len - off : psz);
        obj__sha256_hex(req->put_data + off, n, op->part_sha[i]);
    }
}

static void hash_done(uv_work_t *w, int status)
{
    obj__s3op_t *op = w->data;
    obj_req_t *req = op->req;
    op->is_hashing = false;
    req->is_work_pending = false;
    if (req->is_canceled || req->is_timed_out || status == UV_ECANCELED) {
        obj__finish(req, req->is_timed_out ? ST_E_TIMEOUT : ST_E_CANCELED);
        return;
    }
    op_step(op);
}

/* After hashing: the first HTTP call of a put. */
static void op_step(obj__s3op_t *op)
{
    next_call(op, op->n_parts ? PH_INIT : PH_PUT);
}

void obj__s3_start(obj_req_t *req)
{
    obj__s3op_t *op = calloc(1, sizeof *op);
    if (!op) {
        obj__finish(req, ST_E_NOMEM);
        return;
    }
    op->req = req;
    req->s3 = op;
    obj_store_t *st = req->st;
    if (req->op == OBJ__OP_GET && !req->is_ranged && !(op->md = EVP_MD_CTX_new())) {
        obj__finish(req, ST_E_NOMEM);
        return;
    }
    if (req->op != OBJ__OP_PUT) {
        next_call(op, PH_CALL);
        return;
    }
    op->phase = PH_HASH;
    if (req->put_len > st->cfg.multipart_threshold_bytes) {
        uint64_t psz = st->cfg.multipart_part_bytes;
        op->n_parts = (size_t)((req->put_len + psz - 1) / psz);
        op->part_sha = calloc(op->n_parts, sizeof *op->part_sha);
        op->part_etag = calloc(op->n_parts, sizeof *op->part_etag);
        if (!op->part_sha || !op->part_etag) {
            obj__finish(req, ST_E_NOMEM);
            return;
        }
    }
    op->work.data = op;
    if (req->put_len <= HASH_OFFLOAD_BYTES) {
        hash_work(&op->work);
        op_step(op);
        return;
    }
    op->is_hashing = true;
    req->is_work_pending = true;
    if (uv_queue_work(st->loop, &op->work, hash_work, hash_done)) {
        op->is_hashing = false;
        req->is_work_pending = false;
        obj__finish(req, ST_E_NOMEM);
    }
}

bool obj__s3_abort(obj_req_t *req)
{
    obj__s3op_t *op = req->s3;
    if (!op)
        return true;
    if (op->is_hashing) {
        uv_cancel((uv_req_t *)&op->work);
        return false;
    }
    easy_drop(op);
    if (op->upload_id)
        ST_WARN(OBJ__MOD,
                "S3 multipart upload left incomplete bucket=%s key=%s%s (canceled or timed out; "
                "a lifecycle rule should abort it)",
                req->st->bucket, req->st->prefix, req->key);
    return true;
}

void obj__s3_free(obj_req_t *req)
{
    obj__s3op_t *op = req->s3;
    if (!op)
        return;
    easy_drop(op);
    curl_slist_free_all(op->hdrs);
    obj__str_free(&op->url);
    obj__str_free(&op->owned_body);
    obj__str_free(&op->rbody);
    if (op->md)
        EVP_MD_CTX_free(op->md);
    for (size_t i = 0; op->part_etag && i < op->n_parts; i++)
        free(op->part_etag[i]);
    free(op->part_etag);
    free(op->part_sha);
    free(op->upload_id);
    free(op);
    req->s3 = NULL;
}
