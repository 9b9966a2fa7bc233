/* adm_int.h - internals shared by the adm_*.c files (and their unit tests). */
#ifndef ADM_INT_H
#define ADM_INT_H

#include "admin/adm.h"
#include "core/st_listen.h"
#include "core/st_metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

/* ---- HTTP/1.1 request parser (adm_http.c): pure, no I/O, fuzzed ---- */

#define ADM_HTTP_MAX_HEAD    8192  /* request line + headers, bytes (else 431) */
#define ADM_HTTP_MAX_HEADERS 64    /* header fields (else 431) */
#define ADM_HTTP_MAX_BODY    65536 /* Content-Length (else 413) */
#define ADM_HTTP_MAX_TARGET  2048  /* request-target bytes (else 414... answered 400) */

typedef struct {
    const char *p; /* borrowed: points into the parsed buffer */
    size_t len;
} adm_str_t;

typedef struct {
    adm_str_t method;        /* e.g. "GET" (a token, case-sensitive) */
    adm_str_t target;        /* origin-form: "/v1/cluster?x=1" */
    adm_str_t path;          /* target up to '?' */
    adm_str_t query;         /* after '?', may be empty */
    int version_minor;       /* HTTP/1.<minor>: 0 or 1 */
    adm_str_t authorization; /* value of Authorization, or len 0 */
    adm_str_t content_type;  /* value of Content-Type, or len 0 */
    int n_headers;
    const char *body; /* borrowed; body_len bytes */
    size_t body_len;
    size_t total_len; /* bytes of this request (head + body) in the buffer */
    bool is_keep_alive;
    /* Set when adm_http_parse() fails: the status to answer (400, 413, 431,
     * 501, 505) and a static reason. The connection closes after it. */
    int error_status;
    const char *error_why;
} adm_http_req_t;

/** Parse one HTTP/1.x request at the start of buf.
 * @param buf  Borrowed; out's strings point into it.
 * @return 0 (out complete, out->total_len bytes used), ST_E_AGAIN (need more
 * bytes), or ST_E_MALFORMED (out->error_status / error_why say why).
 * Never reads past buf + len, whatever the bytes are.  @thread any */
ST_MUST_CHECK int adm_http_parse(const char *buf, size_t len, adm_http_req_t *out);

/** Reason phrase of an HTTP status ("Not Found"). */
const char *adm_http_reason(int status);
/** Whether s equals the NUL-terminated lit (case-sensitive). */
bool adm_str_eq(adm_str_t s, const char *lit);

/** Append a complete response (status line, headers, body) to t.
 * @param extra_headers  NULL or "Name: value\r\n" lines. */
void adm_http_format(st_mtext_t *t,
                     int status,
                     const char *content_type,
                     const char *extra_headers,
                     const char *body,
                     size_t body_len,
                     bool is_keep_alive);

/* ---- Server (adm_server.c) ---- */

typedef struct adm_conn adm_conn_t;
typedef struct adm_gather adm_gather_t;

/* One request being answered. Lives until adm_reply*() ran; the connection
 * may close meanwhile (conn == NULL), and the reply is then dropped. */
typedef struct adm_call {
    adm_server_t *s;
    adm_conn_t *conn; /* borrowed; NULL once the connection closed */
    char method[16];
    char *path; /* owned, NUL-terminated */
    char *body; /* owned, NUL-terminated (body_len bytes) */
    size_t body_len;
    bool is_keep_alive;
} adm_call_t;

/* Shard answers of a gather: fn ran on each shard and filled result[i]. */
typedef void (*adm_shard_fn)(rt_shard_t *sh, adm_gather_t *g, int shard);
typedef void (*adm_gather_done_fn)(adm_gather_t *g);

struct adm_gather {
    adm_server_t *s;
    adm_call_t *call; /* owned until done runs */
    adm_shard_fn fn;
    adm_gather_done_fn done;
    int n;       /* shards asked */
    int pending; /* answers still out (admin loop only) */
    int n_failed;
    /* owned: [slot], set by fn on the shard (plain data: shards build no
     * JSON, so their part of a scrape stays cheap); freed with free(). done
     * may take them all (then it sets result and arg to NULL). */
    void **result;
    void *arg; /* owned by the endpoint: freed by free_arg */
    void (*free_arg)(void *arg);
    struct adm_gpost *posts; /* owned: one message per shard asked */
};

/* One message to one shard; back on the server's done list once answered. */
typedef struct adm_gpost {
    adm_gather_t *g;
    int slot;  /* index in g->result */
    int shard; /* the shard asked */
    struct adm_gpost *next_done;
} adm_gpost_t;

struct adm_server {
    adm_opts_t o;
    st_listen_t listener; /* pauses while the process is out of file descriptors */
    uv_timer_t idle_timer;
    uv_async_t done_async; /* shards' answers are ready */
    pthread_mutex_t mu;    /* guards done_list and is_closed against shards */
    adm_gpost_t *done_list;
    bool is_closed;
    bool is_ready;
    adm_conn_t *conns; /* open connections */
    int n_conns;
    uint64_t start_ns;
    int64_t start_ms; /* wall clock at start */
    char listen_addr[300];
    char *token; /* owned: strata.admin.token, "" = no authentication */
    /* Overrides persisted by PUT /v1/cluster/config (key -> string value). */
    json_t *pending_cfg; /* owned */
    char *cfg_path;      /* owned: DIR/cluster_config.yaml */
    /* Values PUT applied to the running broker (adm_config.c). */
    cfg_t *live;                   /* owned: their values; NULL = out of memory at start */
    bool is_live[CFG__COUNT];      /* the running value of a key is live's */
    struct adm_defaults *defaults; /* owned: log defaults published, kept until free */
    idx_client_t *idx;             /* owned: the remote index on this loop; NULL = none */
};

/** Answer call with a JSON document (takes ownership of doc) and free call. */
void adm_reply_json(adm_call_t *call, int status, json_t *doc);
/** Answer with {"error": code, "message": message} (+ optional key). */
void adm_reply_error(adm_call_t *call, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Answer with a body of any type (copied). */
void adm_reply_raw(adm_call_t *call,
                   int status,
                   const char *content_type,
                   const char *extra_headers,
                   const char *body,
                   size_t len);

/** Run fn on every shard, then done(g) on the server's loop.
 * @param arg_owned  Freed with free_arg when the gather ends. */
void adm_gather(adm_call_t *call,
                adm_shard_fn fn,
                adm_gather_done_fn done,
                void *arg_owned,
                void (*free_arg)(void *));
/** Like adm_gather, for one shard only (result[0]). */
void adm_gather_one(adm_call_t *call,
                    int shard,
                    adm_shard_fn fn,
                    adm_gather_done_fn done,
                    void *arg_owned,
                    void (*free_arg)(void *));
/** The part registry of a shard, or NULL if it did not start. @thread sh */
part_shard_t *adm_shard_parts(rt_shard_t *sh);
/** Percent-decode a path segment (n bytes) into out (cap bytes, NUL-terminated).
 * @return false if invalid, empty, holding a NUL or too long (adm_users.c). */
bool adm_decode_segment(const char *p, size_t n, char *out, size_t cap);

/* ---- Transactions (adm_txn.c) ---- */
/** GET /v1/transactions (id NULL) or /v1/transactions/{id} (raw path segment). */
void adm_txn_get(adm_call_t *call, const char *id, size_t id_len);

/* ---- Authentication (adm_auth.c) ---- */

/** Whether r may be served: probes always; otherwise the bearer token
 * (strata.admin.token.file) or, with strata.admin.require.auth, HTTP Basic
 * credentials of a SCRAM user (a super user when ACL authorization is on);
 * /metrics is open with strata.admin.metrics.open. Counts 401s.
 * @return 200 (serve it), 401 (no or wrong credentials) or 403 (not a super
 * user). @thread the server's loop @blocking CPU: PBKDF2 for Basic */
int adm_auth_check(adm_server_t *s, const adm_http_req_t *r);
/** Answer status (401 with the configured scheme's challenge, or 403); frees call. */
void adm_auth_refuse(adm_call_t *call, int status);

/* ---- SCRAM users (adm_users.c): /v1/security/users ---- */
/** Route /v1/security/users[/NAME] (name NULL for the collection). */
void adm_users_route(adm_call_t *call, const char *name, size_t name_len);

/* ---- Endpoints (adm_api.c) ---- */

/** Route and answer one request (takes ownership of call). */
void adm_route(adm_call_t *call);

/* ---- Config (adm_config.c) ---- */
void adm_config_get(adm_call_t *call);
void adm_config_put(adm_call_t *call);
/** Load the persisted overrides (if any) into s->pending_cfg. */
void adm_config_init(adm_server_t *s);
/** Free what adm_config_init() and PUTs allocated. After every shard stopped. */
void adm_config_fini(adm_server_t *s);

#endif
