/* kh_int.h - internals shared by the kh_*.c files. */
#ifndef KH_INT_H
#define KH_INT_H

#include "core/st_listen.h"
#include "core/st_metrics.h"
#include "kafka/kh.h"
#include "kafka/kp.h"

typedef struct kh_conn kh_conn_t;
typedef struct kh_req kh_req_t;
typedef struct kh_sasl kh_sasl_t;

/* Bytes of a principal string ("User:" + a SCRAM user name, or an mTLS subject). */
#define KH_PRINCIPAL_MAX 512
/* Largest frame read before SASL authentication (Kafka's sasl.server.max.receive.size). */
#define KH_SASL_MAX_RECEIVE 524288

/* One bound listener of a shard (every shard binds every listener with
 * SO_REUSEPORT). */
typedef struct kh_lsock {
    st_listen_t sock; /* pauses while the process is out of file descriptors */
    kh_shard_t *ks;
    const kh_listener_t *lis; /* borrowed from ks->ctx */
} kh_lsock_t;

/* The security state of a connection (kh_conn_sec()). Read and written on
 * the connection's shard only. */
typedef struct kh_sec {
    const kh_listener_t *lis; /* the listener the client connected to */
    struct kh_tls_conn *tls;  /* SSL / SASL_SSL: the TLS session (kh_tls.c); else NULL */
    /* "User:ANONYMOUS" until authenticated: set from the client certificate
     * subject on SSL listeners with ssl.client.auth (as Kafka's
     * DefaultKafkaPrincipalBuilder: "User:CN=alice,OU=...,O=..."), or by
     * SASL (kh_sasl.c) on SASL_* listeners. */
    char principal[KH_PRINCIPAL_MAX];
    bool authenticated; /* SASL_*: a SaslAuthenticate succeeded (kh_sasl.c sets it) */
} kh_sec_t;

struct kh_shard {
    rt_shard_t *sh;                      /* borrowed */
    const kh_ctx_t *ctx;                 /* borrowed */
    part_shard_t *ps;                    /* borrowed */
    kh_lsock_t lsocks[KH_MAX_LISTENERS]; /* one per ctx->listeners entry */
    int n_lsocks;                        /* bound (listening) ones */
    uint64_t refused_log_ms;             /* last "refused connection" line (rate limit) */
    int refused_quiet;                   /* refusals not logged since */
    uint64_t sasl_fail_log_ms;           /* last "SASL authentication failed" line (rate limit) */
    int sasl_fail_quiet;                 /* failed logins not logged since */
    kh_conn_t *conns;                    /* doubly linked list of open connections */
    int n_conns;
    uint64_t next_conn_id;
    uint64_t next_req_id;
    uv_timer_t idle_timer;
    /* Cross-shard posts refused by a full queue, retried by retry_timer. */
    struct kh_post *retry_head, *retry_tail;
    uv_timer_t retry_timer;
    /* Connections that stopped reading because queued.max.request.bytes is
     * reached are resumed by mem_timer once the pool has room again. */
    uv_timer_t mem_timer;
    kh_req_t *dispatching;   /* the request whose handler is running (pool accounting) */
    uint64_t limit_log_ms;   /* last "refused: max.connections..." line (rate limit) */
    int64_t n_limit_refused; /* refused for a limit since that line */
    /* Fetches waiting for data (long poll), by request id. */
    kh_req_t *waiting;
    /* Watchers of partitions owned here: notified on append. */
    struct kh_watch *watches;
    /* Tiered storage of this shard (reads below the local log); may be NULL. */
    struct tier_shard *tier;
    /* Idempotent producer state of partitions owned here (kh_idem.c). */
    struct kh_idem_part *idem_parts;
    /* Transaction state of partitions owned here (kh_txn_part.c). */
    struct kh_txn_part *txn_parts;
    bool closing;       /* kh_shard_close() was called: draining */
    bool timers_closed; /* every connection and request is gone (or abandoned) */
    /* Requests of this shard not yet freed (kh_req_t allocated by dispatch),
     * orphans whose connection closed included: the kafka layer closes only
     * once it is 0, so every op another shard answers finds its origin open. */
    int n_reqs_live;
    bool is_orphans_abandoned; /* shutdown gave up waiting for them (a stuck op) */
    bool is_freeing;           /* kh_shard_free() was called: the retry list drains, then free */
    bool is_retry_closed;      /* retry_timer was handed to uv_close */
    bool parts_closed;         /* the partition registry is closing: no partition work */
    kh_closed_cb closed_cb;
    void *closed_arg;
    int n_handles_open;
};

/* A request's lifetime: framed -> handler (may fan out to shards) ->
 * kh_respond() or kh_no_response() -> written in order -> freed once no op
 * that refers to it is out (pending == 0).
 * Ownership: ops (posted to other shards, queued to the metadata thread or
 * the thread pool) point into the request's arena and frame. The request is
 * freed only when its last op is back, even when it failed (kh_fail_conn) or
 * its connection closed while they were out: such a request is "dropped"
 * (finished, out of every queue) and the last kh_req_op_back() frees it. */
struct kh_req {
    kh_req_t *next;           /* in the connection's in-order queue */
    kh_conn_t *conn;          /* borrowed; NULL once the connection closed */
    kh_shard_t *ks;           /* the connection's shard */
    const kh_listener_t *lis; /* the connection's listener (outlives the request) */
    uint64_t id;              /* unique within the shard */
    uint64_t t0_ns;           /* when it was framed (uv_hrtime): request latency metric */
    uint8_t *frame;           /* owned: the request bytes (without the size prefix) */
    size_t frame_len;
    kp_request_header_t hdr;
    const kp_api_t *api;
    kp_arena_t arena; /* decoded request and response structs */
    void *msg;        /* decoded request (arena) */
    kp_writer_t out;  /* the encoded response with its size prefix; out.ext: file ranges */
    /* zero-copy send progress (kh_conn.c): bytes of out sent, next out.ext
     * entry, bytes of it sent, bytes sent in all */
    size_t zs_out;
    int zs_i;
    int64_t zs_off;
    size_t zs_sent;
    bool done; /* response ready (or none is due) */
    /* ops out that refer to this request, plus the handler's hold while it
     * posts them: changed only by kh_req_op_out / kh_req_op_back */
    int pending;
    bool is_dropped;  /* finished and out of its connection's queue: the last op back frees it */
    void *state;      /* handler state (arena or owned by the handler) */
    bool close_after; /* close the connection once this response is written */
    int64_t charged;  /* bytes counted in the queued-request pool (queued.max.request.bytes) */
    void (*state_free)(kh_req_t *req);
    struct kh_acl_req *acl; /* arena: authorization state (kh_acl.c); NULL when off */
    /* long-poll bookkeeping */
    kh_req_t *next_waiting;
    uv_timer_t *wait_timer; /* owned when set */
};

/* Zero-copy (kh_fetch.c -> kh_conn.c): on a listener without TLS, Fetch
 * records found in segment files stay there. The response is encoded with
 * each such records value standing for a plog_slice_t (its kp_bytes_t ptr is
 * the slice's address, registered in req->out.ext: the writer writes the
 * length and notes where the bytes go); the slice and its segment ref live in
 * the request, which the connection keeps at the head of its queue until
 * every byte went out, the ranges with sendfile(2). So a segment deleted or
 * replaced meanwhile is still read through the descriptor the request holds,
 * never through a reused one. Records in memory (a cold segment range read
 * with sendfile off, or batches decoded from the archive) are ext values too,
 * their token the bytes (kp_ext_t.is_mem): sent from their own buffer without
 * TLS, and over TLS (where every ext value is in memory) encrypted from
 * there, the one copy TLS keeps. */

/* ---- kh_conn.c ---- */
/** Encode resp (a response struct of req's API) and queue it in order. */
void kh_respond(kh_req_t *req, const void *resp);
/** Finish a request that gets no response (Produce acks=0). */
void kh_no_response(kh_req_t *req);
/* kh_fetch's per-connection state, kept in the connection. A connection
 * reads for one Fetch at a time (its responses go out in order anyway), so
 * pipelined Fetches cannot each hold a budget at once. */
typedef struct kh_fetch_conn {
    uint64_t cursor;  /* rotation: hash of the partition last served with data */
    kh_req_t *active; /* the Fetch reading or long-polling now, or NULL */
    kh_req_t *parked; /* later Fetches, in arrival order (linked by next_waiting) */
} kh_fetch_conn_t;
/** c's Fetch state (zeroed with the connection). @thread the connection's shard */
kh_fetch_conn_t *kh_conn_fetch(kh_conn_t *c);
/** Response bytes of c not yet taken by the kernel: libuv's write queue and
 * answered requests waiting behind earlier ones. @thread the connection's shard */
size_t kh_conn_unsent_bytes(kh_conn_t *c);
/** Close the connection of req after a protocol violation or an allocation
 * failure (logged at DEBUG) and finish req without a response. Safe with ops
 * out: req's memory stays until the last one is back. */
void kh_fail_conn(kh_req_t *req, const char *why);
/** One op that refers to req goes out (a post to a shard, a metadata store or
 * thread-pool call whose callback uses req): req's memory lives until it is
 * back. A handler also takes one as its hold while it posts ops, so that none
 * coming back can answer before the last is posted. @thread req's shard */
void kh_req_op_out(kh_req_t *req);
/** One op of req is back (or the handler drops its hold).
 * @return true when it was the last one and req still waits for its answer:
 *         the caller answers now (kh_respond / kh_no_response / a new round).
 *         false otherwise: the caller stops. When req had already finished
 *         (failed while ops were out) and this was its last op, req is freed
 *         here, so after false neither req nor its arena may be touched.
 * @thread req's shard */
bool kh_req_op_back(kh_req_t *req);
/** kh_fail_conn() from a handler that holds req (kh_req_op_out): also drops
 * the hold; req is freed when its last op is back. */
void kh_fail_held(kh_req_t *req, const char *why);
/** The security state of c (listener, TLS session, principal). Borrowed:
 * valid while c is open. @thread c's shard */
kh_sec_t *kh_conn_sec(kh_conn_t *c);
/** Answer req with an unframed SASL token: int32 length + bytes (SaslHandshake
 * v0's raw exchange). bytes are copied. */
void kh_respond_raw(kh_req_t *req, const uint8_t *bytes, size_t len);

/* ---- Principal and connection (for kh_sasl.c, kh_acl.c, kh_tls.c) ---- */
/** Set the principal of the connection's next requests (copied, truncated to
 * KH_PRINCIPAL_MAX - 1 bytes). @thread the connection's shard */
void kh_conn_set_principal(kh_conn_t *c, const char *principal);
/** The connection's SASL state, NULL on a non-SASL listener or for NULL c. */
kh_sasl_t *kh_conn_sasl(kh_conn_t *c);
uint64_t kh_conn_id(const kh_conn_t *c);
const char *kh_conn_peer(const kh_conn_t *c);

/* ---- SASL (kh_sasl.c) ---- */
/** Per-connection SASL state for a SASL_* listener. NULL when out of memory. */
kh_sasl_t *kh_sasl_new(const kh_ctx_t *ctx);
void kh_sasl_free(kh_sasl_t *s);
/** Whether a request of api key may run now: before authentication only
 * ApiVersions, SaslHandshake and SaslAuthenticate; after the session's
 * lifetime (connections.max.reauth.ms) only a re-authentication. */
bool kh_sasl_allows(const kh_sasl_t *s, int16_t key, uint64_t now_ms);
bool kh_sasl_is_authenticated(const kh_sasl_t *s);
/** A login is being verified off the loop (PLAIN's derivation on the thread
 * pool): the connection must neither read nor dispatch its next frames until
 * the answer is queued (then kh_conn.c's flush resumes it). */
bool kh_sasl_holds_frames(const kh_sasl_t *s);
/** SaslHandshake v0 was accepted: the next frames are bare SASL tokens. */
bool kh_sasl_expects_raw(const kh_sasl_t *s);
/** Handle one bare token (req has no header nor decoded message). */
void kh_sasl_raw_token(kh_req_t *req);
void kh_sasl_handshake(kh_req_t *req);
void kh_sasl_authenticate(kh_req_t *req);

/* ---- SCRAM users over the Kafka API (kh_users.c) ---- */
void kh_describe_user_scram_credentials(kh_req_t *req);
void kh_alter_user_scram_credentials(kh_req_t *req);

/** The principal of req's connection ("User:ANONYMOUS" until authenticated),
 * and its peer "IP:port". Borrowed: valid during the handler's synchronous
 * part (the connection is alive at dispatch). */
const char *kh_req_principal(const kh_req_t *req);
const char *kh_req_peer(const kh_req_t *req);

/* ---- Authorization (kh_acl.c) ---- */
/** Authorize req before its handler runs: answer a request refused as a
 * whole with its precise error (GROUP_AUTHORIZATION_FAILED, ...) and return
 * false; else remove from the decoded request the entries the principal may
 * not touch (answered later by kh_acl_respond) and return true.
 * No-op (true) when ctx->acl is NULL. @thread connection's shard */
bool kh_acl_check(kh_req_t *req);
/** KP_ERR_NONE when req's principal may do op (ACL_OP_*) on the cluster, or
 * authorization is off; else CLUSTER_AUTHORIZATION_FAILED (handlers that
 * answer it themselves: the SCRAM credential APIs). @thread connection's shard */
int16_t kh_acl_cluster(kh_req_t *req, int op);
/** Whether req's principal may do op (ACL_OP_*) on resource (ACL_RES_*,
 * name); true when authorization is off. For handlers that check their own
 * entries (the transaction APIs). @thread connection's shard */
bool kh_acl_allows(kh_req_t *req, int op, int res, kp_str_t name);
/** Called by kh_respond() before encoding resp: add the removed entries with
 * their error, drop what the principal may not describe from listings. */
void kh_acl_respond(kh_req_t *req, void *resp);
/* kh_acls.c: the ACL APIs (SECURITY_DISABLED when authorization is off). */
void kh_create_acls(kh_req_t *req);
void kh_describe_acls(kh_req_t *req);
void kh_delete_acls(kh_req_t *req);

/* ---- Cross-shard work ---- */
typedef struct kh_post {
    struct kh_post *next;
    int to;
    rt_fn fn;
    rt_fn closed;
    void *arg;
} kh_post_t;
/** rt_post that never fails for a full queue: refused posts wait in the
 * shard's retry list (p is caller storage, borrowed until the post runs).
 * A shard's queue closes for good at shutdown (after its kafka layer, tier
 * and partitions closed), but never while a request of its own is alive, so:
 * @param fn      Runs on shard `to` with arg.
 * @param closed  Runs instead of fn, on ks's loop, from the retry timer (never
 *                within this call), when shard `to` closed for good: an op of
 *                one of ks's requests completes there as an error (so the
 *                request's op count drops and it is freed), a message that
 *                owns itself frees itself. NULL for an answer posted back to
 *                a request's origin shard: that shard is open while the
 *                request lives (kh_shard_close waits for its requests), so a
 *                failure there is a bug (logged).
 * @thread ks's loop */
void kh_post(kh_shard_t *ks, kh_post_t *p, int to, rt_fn fn, rt_fn closed, void *arg);

/** The owning shard of (topic, partition). */
int kh_owner(const kh_shard_t *ks, const char *topic, int32_t partition);
/** Open (lazily creating the directory) the log of a partition this shard
 * owns, if the topic exists in snap with that partition; else NULL. */
plog_t *kh_local_log(kh_shard_t *ks, const meta_snap_t *snap, const char *topic, int32_t partition);
/** Which of n wire strings repeat an earlier one, in O(n) (a hash table in
 * req's arena): a hostile request naming 1,000,000 entries must not cost
 * n^2 comparisons on the shard's loop.
 * @param first   &elems[0].<kp_str_t field> (NULL when n == 0).
 * @param stride  sizeof(elems[0]).
 * @return an arena array of n flags (true: equal to an earlier string; null
 *         strings equal each other), or NULL when out of memory. */
bool *kh_str_dups(kh_req_t *req, const kp_str_t *first, int n, size_t stride);

/** May `adding` more partitions be created now, with `used` existing (the
 * snapshot's total plus what this request already creates)?
 * strata.max.partitions bounds all topics together (checked against the
 * current snapshot: requests in flight at once may pass it by what each
 * adds). On false, why holds Kafka's POLICY_VIOLATION message.
 * @thread any shard loop  @blocking no */
bool kh_partitions_room(
    const kh_ctx_t *ctx, int64_t used, int64_t adding, char *why, size_t why_len);
/** A NUL-terminated arena copy of a wire string. */
char *kh_cstr(kh_req_t *req, kp_str_t s);
/** n (<= 0: none) zeroed elements of size bytes from the request arena; not
 * NULL for n == 0, so that only an allocation failure returns NULL. */
void *kh_array(kh_req_t *req, int32_t n, size_t size);
/** The requested topic in snap (NULL for an unknown or null name); when it
 * exists and cname is set, *cname gets an arena copy of its name. */
const meta_topic_t *
kh_topic_find(kh_req_t *req, const meta_snap_t *snap, kp_str_t name, char **cname);
/** Map an internal error to a Kafka error code. */
int16_t kh_errcode_from_st(int err);

/* ---- Handlers ---- */
typedef void (*kh_handler_fn)(kh_req_t *req);
/** The handler of an API key (kh_conn.c's table), or NULL when not served. */
kh_handler_fn kh_handler_for(int16_t key);
void kh_api_versions(kh_req_t *req);
void kh_metadata(kh_req_t *req);
void kh_produce(kh_req_t *req);
void kh_fetch(kh_req_t *req);
void kh_list_offsets(kh_req_t *req);
void kh_init_producer_id(kh_req_t *req);
void kh_describe_cluster(kh_req_t *req);
void kh_describe_log_dirs(kh_req_t *req); /* kh_logdirs.c */
void kh_describe_topic_partitions(kh_req_t *req);
void kh_offset_for_leader_epoch(kh_req_t *req);
void kh_create_topics(kh_req_t *req);
void kh_delete_topics(kh_req_t *req);
void kh_delete_records(kh_req_t *req);
void kh_create_partitions(kh_req_t *req);
void kh_describe_configs(kh_req_t *req);
void kh_alter_configs(kh_req_t *req);
void kh_incremental_alter_configs(kh_req_t *req);

/* ---- Topic configs (kh_config.c) ---- */
/** Produce: check each whole batch of a partition's record set against the
 * topic's max.message.bytes (else the broker's message.max.bytes), as Kafka
 * does (a malformed tail is left to plog_append).
 * @param t        The topic (borrowed for the call).
 * @param msg_out  Out: on error, Kafka's reason (arena of req).
 * @return KP_ERR_NONE or MESSAGE_TOO_LARGE. @thread connection's shard */
int16_t kh_check_batch_sizes(kh_req_t *req,
                             const meta_topic_t *t,
                             kp_bytes_t records,
                             const char *topic,
                             int32_t partition,
                             kp_str_t *msg_out);
/* What a topic's configs ask of each append (kh_topic_append_rules). */
typedef struct {
    bool log_append_time; /* message.timestamp.type=LogAppendTime */
    int64_t before_ms;    /* message.timestamp.before.max.ms (or difference.max.ms) */
    int64_t after_ms;     /* message.timestamp.after.max.ms (or difference.max.ms) */
    bool is_compacted;    /* cleanup.policy has compact: every record needs a key */
} kh_append_rules_t;
/** The append rules of topic t (borrowed for the call), with the broker's
 * defaults from ctx. @thread any */
void kh_topic_append_rules(const kh_ctx_t *ctx, const meta_topic_t *t, kh_append_rules_t *out);
/** Apply rules to a record set just before plog_append, as Kafka's broker
 * does: CreateTime record timestamps must lie within [now_ms - before_ms,
 * now_ms + after_ms] (INVALID_TIMESTAMP); LogAppendTime: after validating
 * every batch (CRC first: corruption is never re-checksummed), set each
 * batch's timestamp type bit and maxTimestamp to now_ms and recompute its
 * CRC-32C. Compacted topics: every record must have a key (INVALID_RECORD).
 * @param records  Modified in place (LogAppendTime); nothing on error.
 * @param msg      Out: the reason on error (caller storage).
 * @return KP_ERR_NONE, INVALID_TIMESTAMP, INVALID_RECORD or CORRUPT_MESSAGE.
 * @thread any  @blocking CPU (decompression, only with timestamp bounds or
 *          on compacted topics) */
int16_t kh_apply_append_rules(const kh_append_rules_t *rules,
                              uint8_t *records,
                              size_t len,
                              int64_t now_ms,
                              char *msg,
                              size_t msg_len);

/** Check value against the rule of topic config name (Kafka's types and
 * ranges).
 * @param value   NUL-terminated, modified in place: surrounding blanks are
 *                removed and booleans lowercased (the form that is stored);
 *                NULL is refused.
 * @return KP_ERR_NONE, or KP_ERR_INVALID_CONFIG with a reason naming the key
 *         and the rule in errbuf (NULL/0 allowed). @thread any @blocking no */
int16_t kh_topic_config_check(const char *name, char *value, char *errbuf, size_t errbuf_len);
/** Validate the configs of a CreateTopics topic against the topic config
 * table (Kafka's names, types and ranges).
 * @param kvs_out  Out: arena copies for meta_create_topic (NULL when none).
 * @param msg_out  Out: on error, the reason naming the key and the rule
 *                 (static or arena, valid while req lives).
 * @return KP_ERR_NONE, or KP_ERR_INVALID_CONFIG (unknown key, bad value,
 *         duplicate key). @thread connection's shard  @blocking no */
int16_t kh_config_check_create(kh_req_t *req,
                               const kp_create_topics_request_creatable_topic_t *qt,
                               meta_kv_t **kvs_out,
                               int *n_out,
                               const char **msg_out);
/** Fill a CreateTopics v5+ result's config list (every topic config with
 * its value and source) for a topic whose overrides are kvs (borrowed for
 * the call; values are copied into req's arena). No-op below v5. */
void kh_config_fill_created(kh_req_t *req,
                            const meta_kv_t *kvs,
                            int n,
                            kp_create_topics_response_creatable_topic_result_t *res);
/** Make every shard apply topic's config from the newest metadata snapshot
 * to the partitions it has open (after a meta_set_configs). topic is
 * borrowed for the call. @thread ks's loop */
void kh_config_apply_live(kh_shard_t *ks, const char *topic);

/* ---- Idempotent producers (kh_idem.c), on the partition's owner ---- */
/** KP_ERR_NONE to append; KP_ERR_DUPLICATE_SEQUENCE_NUMBER when the batch is
 * already in the log at [*dup_base, *dup_last] (acknowledge it, do not
 * append); OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH to refuse. */
int16_t kh_idem_check(kh_shard_t *ks,
                      plog_t *log,
                      const uint8_t *rec,
                      size_t len,
                      int64_t *dup_base,
                      int64_t *dup_last);
/** Remember an appended record set (its offsets already assigned). */
void kh_idem_record(kh_shard_t *ks,
                    plog_t *log,
                    const uint8_t *rec,
                    size_t len,
                    int64_t base_offset,
                    int64_t last_offset);
/** Drop the state of a partition that is closed for good. */
void kh_idem_forget(kh_shard_t *ks, plog_t *log);
/** Drop every partition's state (shard shutdown). */
void kh_idem_free_all(kh_shard_t *ks);

/* ---- Transactions (kh_txn.c: coordinator; kh_txn_part.c: partitions) ---- */
/** InitProducerId with a transactional.id (kh_init_producer_id hands it over). */
void kh_txn_init_producer_id(kh_req_t *req);
void kh_txn_add_partitions(kh_req_t *req);
void kh_txn_add_offsets(kh_req_t *req);
void kh_txn_offset_commit(kh_req_t *req);
void kh_txn_end(kh_req_t *req);
void kh_txn_describe(kh_req_t *req);
void kh_txn_list(kh_req_t *req);
/** Start / stop the shard's transaction coordinator: start loads the ids it
 * owns from meta.db (blocking: start-up only) and finishes interrupted
 * commits and aborts. @thread ks's loop */
void kh_txn_shard_start(kh_shard_t *ks);
void kh_txn_shard_close(kh_shard_t *ks);
/** On the group's shard: an open transaction holds an offset of (group,
 * topic, partition) not committed yet (OffsetFetch's require_stable answers
 * UNSTABLE_OFFSET_COMMIT). @thread the group's shard */
bool kh_txn_offsets_pending(const char *group, const char *topic, int32_t partition);
/** The coordinator closed and was freed (none was started counts): every op
 * it posted to other shards is back, so the shard's queue may close. The
 * kafka layer's shutdown waits for it (kh_shard_drained is called then).
 * @thread ks's loop */
bool kh_txn_shard_is_closed(kh_shard_t *ks);
/** Something the kafka layer's shutdown waits for (the transaction
 * coordinator) just finished: check whether it may report closed now.
 * @thread ks's loop */
void kh_shard_drained(kh_shard_t *ks);
/* On the partition's owner (log borrowed for the call): */
/** Produce: KP_ERR_NONE for a non-transactional batch or one of a producer
 * whose transaction holds this partition; INVALID_TXN_STATE when it was not
 * added; INVALID_PRODUCER_EPOCH for a fenced epoch. */
int16_t kh_txn_produce_check(kh_shard_t *ks, plog_t *log, const uint8_t *rec, size_t len);
/** Produce: a record set was appended at base_offset. */
void kh_txn_produce_appended(
    kh_shard_t *ks, plog_t *log, const uint8_t *rec, size_t len, int64_t base_offset);
/** The coordinator added this partition to pid's transaction. */
int16_t kh_txn_part_begin(kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch);
/** Append a commit or abort marker of pid. @return 0 (offset in *offset_out) or an st_err. */
int kh_txn_part_marker(
    kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch, bool commit, int64_t *offset_out);
/** The marker at offset is durable: the transaction is over here. */
void kh_txn_part_marker_durable(
    kh_shard_t *ks, plog_t *log, int64_t pid, int16_t epoch, bool commit, int64_t offset);
/** The last stable offset (<= high watermark). */
int64_t kh_txn_lso(kh_shard_t *ks, plog_t *log);
/** Aborted transactions a read_committed Fetch of [from, to) needs (marker at
 * or after from, first offset below to).
 * @param out  Out: malloc'd array (NULL when none), owned by the caller.
 * @return 0 or ST_E_NOMEM. */
int kh_txn_aborted(kh_shard_t *ks,
                   plog_t *log,
                   int64_t from,
                   int64_t to,
                   kp_fetch_response_aborted_transaction_t **out,
                   int *n_out);
/** Add to *io (n_io entries, malloc'd or NULL) the aborted transactions of
 * [from, to) recorded in the partition's archived objects, for a fetch
 * served from the archive (the local state knows only the local log's).
 * @return 0 or ST_E_NOMEM (*io unchanged). */
int kh_txn_aborted_archive(kh_shard_t *ks,
                           const char *topic,
                           int32_t partition,
                           int64_t from,
                           int64_t to,
                           kp_fetch_response_aborted_transaction_t **io,
                           int *n_io);
/** Drop a partition's transaction state (closed for good / shard shutdown). */
void kh_txn_part_forget(kh_shard_t *ks, plog_t *log);
void kh_txn_part_free_all(kh_shard_t *ks);

/* ---- kh_group.c: group coordinator APIs (kafka/grp.h) ---- */
void kh_find_coordinator(kh_req_t *req);
void kh_join_group(kh_req_t *req);
void kh_sync_group(kh_req_t *req);
void kh_heartbeat(kh_req_t *req);
void kh_leave_group(kh_req_t *req);
void kh_offset_commit(kh_req_t *req);
void kh_offset_fetch(kh_req_t *req);
void kh_list_groups(kh_req_t *req);
void kh_describe_groups(kh_req_t *req);
void kh_consumer_group_heartbeat(kh_req_t *req);
void kh_consumer_group_describe(kh_req_t *req);
void kh_delete_groups(kh_req_t *req);
void kh_offset_delete(kh_req_t *req);
/** Start / stop the shard's group coordinator (loads its committed offsets).
 * @thread ks's loop */
void kh_group_shard_start(kh_shard_t *ks);
void kh_group_shard_close(kh_shard_t *ks);
/** A topic was deleted: forget (in memory and on disk) every group's offsets of it.
 * Called on every shard. @thread ks's loop */
void kh_group_topic_deleted(kh_shard_t *ks, const char *topic);

/* Produce -> Fetch long-poll wake-up (kh_fetch.c): called on the owner shard
 * after data was appended to log. */
void kh_notify_append(kh_shard_t *ks, plog_t *log);
/* plog_hw_fn: a sync moved log's high watermark (arg: the kh_shard_t). */
void kh_fetch_on_hw(void *arg, plog_t *log);
/* Called by the connection layer when a waiting request's connection closes. */
void kh_fetch_cancel(kh_req_t *req);
/* Shutdown: answer every long-polling fetch of the shard now. */
void kh_fetch_wake_all(kh_shard_t *ks);
/* Shutdown: free the watches registered on this shard. */
void kh_fetch_free_watches(kh_shard_t *ks);

#endif
