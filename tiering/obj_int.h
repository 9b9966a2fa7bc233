/* obj_int.h - internals shared by the object store's files (obj__ prefix).
 * Not for other modules: they include tiering/obj.h only.
 *
 * Request life cycle (obj_store.c owns the transitions):
 *
 *   obj_put()... --> QUEUED --pump (slot free)--> ACTIVE --backend done--> DONE
 *                      |                            |                      |
 *                      +--deadline/cancel-----------+--deadline/cancel-----+--> callback
 *                                                                          --> timers closed
 *                                                                          --> freed
 *
 * Invariants: 1. the callback runs exactly once, from a loop callback, never
 *                while file work for the request is still on the thread pool;
 *             2. n_active counts ACTIVE requests and never exceeds max_inflight;
 *             3. a request is freed only after both of its timers are closed. */
#ifndef OBJ_INT_H
#define OBJ_INT_H

#include <curl/curl.h>
#include <openssl/sha.h>

#include "tiering/obj.h"

#define OBJ__MOD "obj"

typedef enum {
    OBJ__OP_PUT,
    OBJ__OP_GET,
    OBJ__OP_HEAD,
    OBJ__OP_LIST,
    OBJ__OP_DELETE,
    OBJ__OP_DELETE_MANY,
} obj__op_t;

typedef enum { OBJ__KIND_FILE, OBJ__KIND_S3 } obj__kind_t;

typedef struct obj__s3op_s obj__s3op_t;

struct obj_req_s {
    /* borrowed: the store outlives its requests */
    obj_store_t *st;
    obj__op_t op;
    obj_cb cb;
    void *arg;
    /* owned: key relative to the store prefix */
    char *key;
    /* borrowed until the callback: put body */
    const uint8_t *put_data;
    size_t put_len;
    /* get_range */
    bool is_ranged;
    uint64_t range_off;
    uint64_t range_len;
    /* list: owned prefix and token */
    char *prefix;
    char *token;
    unsigned max_keys;
    /* delete_many: owned array of owned keys */
    char **keys;
    size_t n_keys;
    /* result handed to the callback; its data/entries/next_token are owned here */
    obj_result_t res;
    char errmsg[512];
    /* deadline (and deferred cancel); backoff for S3 retries */
    uv_timer_t deadline_timer;
    uv_timer_t retry_timer;
    int n_open_timers;
    /* file backend work item */
    uv_work_t work;
    bool is_queued;
    bool is_active;
    bool is_work_pending;
    bool is_done;
    bool is_canceled;
    bool is_timed_out;
    /* file backend: status computed on the thread pool */
    int work_status;
    /* owned: S3 state while active */
    obj__s3op_t *s3;
    /* links: the store's list of live requests and its FIFO of queued ones */
    obj_req_t *all_prev, *all_next;
    obj_req_t *q_next;
    /* uv_hrtime() at submission: the request latency metric */
    uint64_t start_ns;
};

struct obj_store_s {
    uv_loop_t *loop;
    obj__kind_t kind;
    /* owned: "file:///dir" or "s3://bucket/prefix" */
    char *name;
    /* copied config with defaults applied; string fields point to NULL */
    obj_config_t cfg;
    /* file backend: owned absolute directory without trailing '/' */
    char *dir;
    /* s3 backend: owned strings */
    char *bucket;
    char *prefix;   /* "" or "some/prefix/" */
    char *scheme;   /* "http" or "https" */
    char *hostport; /* endpoint host[:port] */
    char *region;
    char *access_key;
    char *secret_key;    /* never logged */
    char *session_token; /* may be NULL; never logged */
    bool is_path_style;
    /* new TCP connections opened by finished transfers (connection reuse check) */
    uint64_t n_connects;
    /* tests only: seconds added to the wall clock when signing (clock-skew tests) */
    int64_t clock_offset_s;
    /* requests */
    unsigned n_active;
    unsigned n_reqs;
    obj_req_t *all_head;
    obj_req_t *q_head, *q_tail;
    uv_timer_t pump_timer;
    /* curl multi driven by this loop (S3 only) */
    CURLM *multi;
    uv_timer_t curl_timer;
    void *socks; /* obj__sock_t list */
    int n_open_handles;
    bool is_closing;
    obj_close_cb close_cb;
    void *close_arg;
    /* file backend: the last "file op failed" line (rate limit) and the
     * failures since */
    uint64_t warn_ms;
    unsigned n_warn_quiet;
    /* the last failed request's reason ("" = none yet), for operators */
    char last_error[512];
};

/* ---- obj_store.c ---- */
/** Complete a request: callback, then release. Must not be called while file work is pending. */
void obj__finish(obj_req_t *req, int status);
/** printf into req->errmsg. */
void obj__set_err(obj_req_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Milliseconds left before the request's deadline (0 if passed). */
uint64_t obj__remaining_ms(const obj_req_t *req);

/* ---- obj_file.c ---- */
void obj__file_start(obj_req_t *req);
/** Deadline or cancel: returns true if the request can finish now. */
bool obj__file_abort(obj_req_t *req);

/* ---- obj_s3.c ---- */
int obj__s3_init(obj_store_t *st, char *errbuf, size_t errbuf_len);
void obj__s3_start(obj_req_t *req);
typedef struct obj__str_s obj__str_t;
/** Host header and encoded canonical URI of the bucket (key NULL) or of an object
 * (key relative to the store prefix): path-style "/bucket/prefix/key" on the
 * endpoint host, virtual-hosted "/prefix/key" on "bucket.endpoint". */
ST_MUST_CHECK int
obj__s3_target(const obj_store_t *st, const char *key, obj__str_t *host, obj__str_t *path);
/** Deadline or cancel: stop the transfer; returns true if the request can finish
 * now (false while hashing work is on the thread pool: its completion finishes it). */
bool obj__s3_abort(obj_req_t *req);
void obj__s3_free(obj_req_t *req);
/** Begin closing curl handles; obj__handle_closed() is called for each uv handle. */
void obj__s3_close(obj_store_t *st);
void obj__handle_closed(obj_store_t *st);

/* ---- obj_xml.c ---- */
/** Find the next <tag>...</tag> (or <tag/>) in [*pp, end); set the value span and
 * advance *pp past it. Nested elements of the same name are not supported. */
bool obj__xml_next(const char **pp, const char *end, const char *tag, const char **v, size_t *vn);
/** Decode entities of v[0..n); returns an owned string or NULL (out of memory). */
char *obj__xml_text(const char *v, size_t n);
/** Append s XML-escaped to o. @return 0 or ST_E_NOMEM. */
ST_MUST_CHECK int obj__xml_escape(obj__str_t *o, const char *s);

/* ---- obj_sigv4.c ---- */
/** Lowercase hex of n bytes into out (2n+1 bytes). */
void obj__hex(const uint8_t *in, size_t n, char *out);
/** SHA-256 of data as hex (65 bytes). */
void obj__sha256_hex(const void *data, size_t len, char out[65]);
/** Append RFC 3986 encoding of s[0..len) to out (everything but A-Za-z0-9-._~ becomes
 * %XX; '/' kept if keep_slash). Returns 0 or ST_E_NOMEM. out is a growable string. */
struct obj__str_s {
    char *p;
    size_t len;
    size_t cap;
};
ST_MUST_CHECK int obj__str_add(obj__str_t *s, const char *p, size_t n);
ST_MUST_CHECK int obj__str_addf(obj__str_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void obj__str_free(obj__str_t *s);
ST_MUST_CHECK int obj__uri_encode(obj__str_t *out, const char *s, size_t len, bool keep_slash);

typedef struct {
    const char *name;
    const char *value;
} obj__kv_t;

/** Inputs of one SigV4 signature (header auth). */
typedef struct {
    const char *method;
    /* already-encoded canonical URI ("/bucket/a%20b") */
    const char *canonical_uri;
    /* decoded query parameters, any order; value "" for valueless ones */
    const obj__kv_t *query;
    size_t n_query;
    /* headers to sign, any case/order; values are trimmed and spaces folded */
    const obj__kv_t *headers;
    size_t n_headers;
    /* hex SHA-256 of the payload or "UNSIGNED-PAYLOAD" */
    const char *payload_hash;
    const char *access_key;
    const char *secret_key;
    const char *region;
    const char *service;
    /* "YYYYMMDDTHHMMSSZ" */
    const char *amz_date;
} obj__sigv4_in_t;

/** Outputs (owned strings; free with obj__sigv4_out_free). */
typedef struct {
    char *canonical_request;
    char *string_to_sign;
    char *canonical_query; /* the encoded, sorted query to send */
    char *authorization;
    char signature[65];
} obj__sigv4_out_t;

ST_MUST_CHECK int obj__sigv4_sign(const obj__sigv4_in_t *in, obj__sigv4_out_t *out);
void obj__sigv4_out_free(obj__sigv4_out_t *out);

#endif
