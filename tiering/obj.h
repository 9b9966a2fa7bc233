/* obj.h - the object store: one asynchronous interface over `file://DIR` and
 * `s3://BUCKET[/PREFIX]`.
 * Data path: tier_uploader puts sealed segments here; the remote reader and
 * hydration cache get byte ranges back; retention lists and deletes.
 * Everything runs on the loop given to obj_store_new(): the S3 backend drives
 * libcurl's multi interface from that loop (uv_poll_t + uv_timer_t), the file
 * backend does its I/O on the libuv thread pool. Completion callbacks always
 * run later on that loop, never from inside the call that started the request.
 *
 * Checksums: every put stores the SHA-256 of the body with the object (S3:
 * user metadata `x-amz-meta-strata-sha256`, and the same hash is the signed
 * `x-amz-content-sha256`, so S3 rejects a body damaged in transit; file: a
 * 56-byte trailer that is a zstd skippable frame, so `zstd -dc` still reads
 * the file). Every whole-object get is verified against it (ST_E_CORRUPT on
 * mismatch, after retries on S3). Ranged gets are not verified: the data
 * inside (zstd frames) has its own checks.
 *
 * Keys are byte strings without NUL, at most 1024 bytes, relative to the
 * store's prefix (an S3 prefix has at most OBJ_S3_MAX_PREFIX bytes, so
 * prefix + key stays within S3's 1024 for Strata's keys, at most 330).
 * The file backend additionally rejects keys that start with '/' or contain
 * an empty, ".", ".." or ".strata-tmp.*" segment. */
#ifndef OBJ_H
#define OBJ_H

#define OBJ_S3_MAX_PREFIX 600

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"

typedef struct obj_store_s obj_store_t;
typedef struct obj_req_s obj_req_t;

/** How S3 URLs name the bucket. */
typedef enum {
    OBJ_ADDR_AUTO = 0, /* path-style with a custom endpoint, virtual-hosted on AWS */
    OBJ_ADDR_PATH,     /* http://endpoint/BUCKET/KEY */
    OBJ_ADDR_VIRTUAL,  /* http://BUCKET.endpoint/KEY */
} obj_addressing_t;

/** Store configuration. All strings are borrowed for the obj_store_new() call
 * (copied). NULL / 0 means "the default" named on each line. */
typedef struct {
    /* "file://DIR" or "s3://BUCKET[/PREFIX]". Required. */
    const char *url;
    /* S3 endpoint "http(s)://host[:port]"; default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL,
     * then https://s3.REGION.amazonaws.com. */
    const char *endpoint;
    /* Region; default $AWS_REGION, $AWS_DEFAULT_REGION, then us-east-1. */
    const char *region;
    /* Credentials; default $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY /
     * $AWS_SESSION_TOKEN, then the profile in the shared credentials file. */
    const char *access_key;
    const char *secret_key;
    const char *session_token;
    /* Profile name; default $AWS_PROFILE, then "default". */
    const char *profile;
    /* Credentials file; default $AWS_SHARED_CREDENTIALS_FILE, then ~/.aws/credentials. */
    const char *credentials_file;
    /* Bucket addressing style. */
    obj_addressing_t addressing;
    /* Disable TLS certificate verification (tests against self-signed servers only). */
    bool is_tls_verify_disabled;
    /* Requests running at once; more are queued in FIFO order. Default 16. */
    unsigned max_inflight;
    /* Whole-request deadline including retries; default 120000. */
    uint64_t request_timeout_ms;
    /* One HTTP attempt: connect timeout, stall timeout (no progress, whole seconds,
     * at least 1) and, plus 1 ms per KiB to move, the attempt's deadline; default 30000. */
    uint64_t attempt_timeout_ms;
    /* Attempts per HTTP call before giving up (1 = no retry); default 6. */
    unsigned max_attempts;
    /* Backoff: delay before retry n is in [cap/2, cap], cap = min(max, base * 2^n).
     * Defaults 100 and 5000. */
    uint64_t retry_base_ms;
    uint64_t retry_max_ms;
    /* Puts larger than this use multipart upload; default 16 MiB. */
    uint64_t multipart_threshold_bytes;
    /* Multipart part size (>= 5 MiB on real S3); default 8 MiB. */
    uint64_t multipart_part_bytes;
} obj_config_t;

/** One listed object. */
typedef struct {
    /* owned by the result: key relative to the store prefix */
    char *key;
    /* body size in bytes */
    uint64_t size_bytes;
} obj_entry_t;

/** Outcome of one request, passed to its callback. Borrowed for the callback;
 * the body may be kept with obj_result_take_data(). */
typedef struct {
    /* 0, or negative st_err: ST_E_NOTFOUND, ST_E_AUTH, ST_E_CORRUPT, ST_E_TIMEOUT,
     * ST_E_CANCELED, ST_E_REMOTE, ST_E_IO, ST_E_INVAL, ST_E_RANGE, ... */
    int status;
    /* human-readable reason when status != 0 (names the bucket/key and cause); "" otherwise */
    const char *errmsg;
    /* last HTTP status seen (S3), 0 for the file backend or no response */
    int http_status;
    /* HTTP attempts made (S3; retries included), 0 for the file backend */
    unsigned attempts;
    /* get: the bytes read (owned by the result unless taken) */
    uint8_t *data;
    size_t data_len;
    /* get/head: size of the whole object in bytes */
    uint64_t object_size;
    /* get/head: stored SHA-256 of the whole body as hex, "" if the object has none */
    char sha256_hex[65];
    /* list: one page of entries, sorted by key */
    obj_entry_t *entries;
    size_t n_entries;
    /* list: token for the next page, NULL on the last page */
    const char *next_token;
    /* delete_many: keys that could not be deleted */
    size_t n_failed;
} obj_result_t;

/** Completion callback. `req` is valid only during the callback.
 * @thread the store's loop */
typedef void (*obj_cb)(obj_req_t *req, obj_result_t *res, void *arg);

/** Called once every handle of a closed store is closed and it is freed. */
typedef void (*obj_close_cb)(void *arg);

/** Create a store on `loop`. Reads the credentials file when credentials are not
 * configured (a small file, once, at startup).
 * @param loop   Borrowed; must outlive the store.
 * @param cfg    Borrowed for the call.
 * @param out    Out: owned store, close with obj_store_close().
 * @return 0, ST_E_CONFIG (errbuf says why), ST_E_NOMEM.
 * @thread the loop's thread   @blocking reads a small file */
ST_MUST_CHECK int obj_store_new(
    uv_loop_t *loop, const obj_config_t *cfg, obj_store_t **out, char *errbuf, size_t errbuf_len);

/** Cancel every request (callbacks get ST_E_CANCELED, file I/O already running
 * finishes first), close the handles and free the store; `cb` (may be NULL) runs
 * when done. NULL is a no-op. Run the loop until `cb` to release everything.
 * @thread the store's loop */
void obj_store_close(obj_store_t *st, obj_close_cb cb, void *arg);

/** A short description such as "s3://bucket/prefix" (borrowed, lives with the store). */
const char *obj_store_name(const obj_store_t *st);

/** The reason of the last request that failed (not found and canceled
 * excluded), "" when none has: borrowed, valid until the next request
 * completes. @thread the store's loop */
const char *obj_store_last_error(const obj_store_t *st);

/* ---- Requests ----
 * Each returns 0 and sets *req_out (may be NULL) to a handle valid until the
 * callback returns, or a negative st_err (ST_E_INVAL, ST_E_CLOSED) and then no
 * callback will run. `key`, `prefix`, `keys`, `token` are copied. */

/** Store `len` bytes under `key` atomically with their SHA-256.
 * @param data  Borrowed until the callback: must not change or be freed before. */
ST_MUST_CHECK int obj_put(obj_store_t *st,
                          const char *key,
                          const void *data,
                          size_t len,
                          obj_cb cb,
                          void *arg,
                          obj_req_t **req_out);

/** Read a whole object (verified against its checksum) into res->data. */
ST_MUST_CHECK int
obj_get(obj_store_t *st, const char *key, obj_cb cb, void *arg, obj_req_t **req_out);

/** Read `len` bytes at `offset` (fewer at the end of the object; ST_E_RANGE if
 * offset >= size). `len` must be > 0. */
ST_MUST_CHECK int obj_get_range(obj_store_t *st,
                                const char *key,
                                uint64_t offset,
                                uint64_t len,
                                obj_cb cb,
                                void *arg,
                                obj_req_t **req_out);

/** Object size and stored checksum, ST_E_NOTFOUND if absent. */
ST_MUST_CHECK int
obj_head(obj_store_t *st, const char *key, obj_cb cb, void *arg, obj_req_t **req_out);

/** One page (at most `max_keys`, 0 = 1000) of keys starting with `prefix`,
 * sorted. Pass res->next_token of the previous page as `token` (NULL first). */
ST_MUST_CHECK int obj_list(obj_store_t *st,
                           const char *prefix,
                           const char *token,
                           unsigned max_keys,
                           obj_cb cb,
                           void *arg,
                           obj_req_t **req_out);

/** Delete one object; deleting a missing key succeeds. */
ST_MUST_CHECK int
obj_delete(obj_store_t *st, const char *key, obj_cb cb, void *arg, obj_req_t **req_out);

/** Delete `n_keys` objects (batched by 1000 on S3). Succeeds when all are gone;
 * else ST_E_REMOTE/ST_E_IO with res->n_failed. */
ST_MUST_CHECK int obj_delete_many(obj_store_t *st,
                                  const char *const *keys,
                                  size_t n_keys,
                                  obj_cb cb,
                                  void *arg,
                                  obj_req_t **req_out);

/** Per-request deadline overriding cfg.request_timeout_ms; call right after
 * starting the request. */
void obj_req_set_timeout(obj_req_t *req, uint64_t timeout_ms);

/** Cancel a request: its callback runs later with ST_E_CANCELED (or with its real
 * outcome if it had already completed). A file operation already running on
 * the thread pool finishes first; a canceled put may or may not have happened.
 * @thread the store's loop */
void obj_cancel(obj_req_t *req);

/** Take ownership of res->data (free() it); res->data becomes NULL. */
uint8_t *obj_result_take_data(obj_result_t *res);

#endif
