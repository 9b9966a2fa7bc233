/* kh.h - the Kafka server: listeners, connections, request handlers.
 * Data path: each shard listens on the Kafka port (SO_REUSEPORT spreads
 * connections over shards) -> kh_conn frames requests and answers them in
 * order -> a handler decodes with the generated codec (kafka/kp.h) and works
 * on partitions through their owning shards (rt_post) -> the response is
 * encoded and written back on the connection's shard. */
#ifndef KH_H
#define KH_H

#include "core/acl.h"
#include "core/goffs.h"
#include "core/meta.h"
#include "core/part.h"
#include "core/plog.h"
#include "core/rt.h"

#include <stdatomic.h>

struct sockaddr;
/** Broker-wide limits shared by every shard (kh_limits.c). */
typedef struct kh_limits kh_limits_t;

/* ---- Listeners ----
 * `listeners` names each Kafka listener with a security protocol, as Kafka
 * does (PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093); custom names get
 * theirs from listener.security.protocol.map, and advertised.listeners gives
 * the address Metadata returns to clients of that listener. */
typedef enum {
    KH_SEC_PLAINTEXT,
    KH_SEC_SSL,
    KH_SEC_SASL_PLAINTEXT,
    KH_SEC_SASL_SSL,
} kh_sec_proto_t;

#define KH_MAX_LISTENERS 8

struct kh_tls;
struct cfg;

typedef struct kh_listener {
    char name[64];        /* upper case, as in `listeners` (PLAINTEXT, SSL, INTERNAL, ...) */
    kh_sec_proto_t proto; /* from the name or listener.security.protocol.map */
    char host[256];       /* bind address ("0.0.0.0" for an empty host) */
    int port;
    char adv_host[256]; /* what Metadata, FindCoordinator, DescribeCluster return */
    int adv_port;
    /* SSL and SASL_SSL: the server TLS context (kafka/kh_tls.h), owned by
     * stratad; NULL for the other protocols. */
    struct kh_tls *tls;
    /* SASL_* listeners: sasl.enabled.mechanisms (or its listener.name.<name>.
     * override) as 1 << KH_SASL_* bits, set by stratad; 0 for the others. */
    unsigned sasl_mechs;
} kh_listener_t;

/** Protocol name ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"). */
const char *kh_sec_proto_name(kh_sec_proto_t p);
/** Whether the protocol runs TLS (SSL, SASL_SSL) / needs SASL (SASL_*). */
bool kh_sec_proto_is_tls(kh_sec_proto_t p);
bool kh_sec_proto_is_sasl(kh_sec_proto_t p);

/* Descriptors counted per partition by strata.max.partitions's default. A
 * partition keeps one open per local segment, its .log (core/plog.c; the
 * index files and the directory are opened only to load, save or fsync):
 * its active segment, and each sealed one until retention (or, archived,
 * local retention) deletes it. The default counts the active segment and
 * one sealed segment. */
#define KH_FDS_PER_PARTITION 2

/** strata.max.partitions when it is 0 (the default): what the open file
 * limit N (soft RLIMIT_NOFILE now; stored in *nofile) allows,
 * min(100000, max(1, (N - max(256, N / 4)) / KH_FDS_PER_PARTITION)): a
 * quarter of the descriptors (at least 256) left for connections, the
 * databases and the archive. */
int64_t kh_max_partitions_derived(uint64_t *nofile);

/** Partitions of all topics of snap (a request sums them once). */
int64_t kh_partitions_total(const meta_snap_t *snap);

/** Build the listeners from `listeners`, `listener.security.protocol.map`
 * and `advertised.listeners` (TLS contexts are not made here: tls = NULL).
 * @param cfg   Borrowed for the call.
 * @param out   Caller storage for KH_MAX_LISTENERS entries.
 * @return 0, or ST_E_CONFIG with the reason in errbuf. @thread any @blocking no */
ST_MUST_CHECK int kh_listeners_from_cfg(
    const struct cfg *cfg, kh_listener_t *out, int *n_out, char *errbuf, size_t errbuf_len);

/* Shared by every shard; read-only once the shards start, except the
 * _Atomic fields, which the admin API changes live (PUT /v1/cluster/config). */
typedef struct kh_ctx {
    rt_t *rt;     /* borrowed */
    meta_t *meta; /* borrowed */
    int32_t node_id;
    char cluster_id[64];
    char log_dir[4096]; /* log.dir as an absolute path (DescribeLogDirs) */
    /* The Kafka listeners; listeners[0] is the one reported as "the" Kafka
     * address (admin API, logs). */
    kh_listener_t listeners[KH_MAX_LISTENERS];
    int n_listeners;
    int64_t request_max_bytes;         /* socket.request.max.bytes */
    _Atomic int64_t message_max_bytes; /* message.max.bytes */
    int64_t fetch_max_bytes;           /* fetch.max.bytes: cap of a Fetch's max_bytes */
    bool fetch_sendfile;               /* strata.fetch.sendfile.enable (listeners without TLS) */
    int32_t socket_send_buffer;        /* socket.send.buffer.bytes: SO_SNDBUF, <= 0 = OS default */
    int64_t idle_ms;                   /* connections.max.idle.ms, -1 = never */
    int64_t ssl_handshake_timeout_ms;  /* strata.ssl.handshake.timeout.ms */
    /* strata.request.read.timeout.ms: a frame must arrive whole this long
     * after its first byte, -1 = never */
    int64_t request_read_timeout_ms;
    kh_limits_t *limits; /* borrowed: connection counts and the queued-request pool; NULL = none */
    _Atomic int32_t num_partitions; /* num.partitions for auto-created topics */
    _Atomic int64_t max_partitions; /* strata.max.partitions: of all topics together */
    _Atomic bool auto_create;       /* auto.create.topics.enable */
    /* Bit k (cfg_key_t) set: the admin API (PUT /v1/cluster/config, or its persisted file
     * at start) set the value in force, which DescribeConfigs reports as a dynamic broker
     * config. 256 bits: room for every key. */
    _Atomic uint64_t cfg_dynamic[4];
    /* borrowed: the cluster defaults of topic configs. Replaced, never
     * modified: a new version is published with a release store and every
     * version stays valid until the broker exits. */
    const plog_config_t *_Atomic log_defaults;
    goffs_t *goffs;                 /* borrowed: committed group offsets */
    int64_t offsets_retention_ms;   /* offsets.retention.minutes */
    int32_t group_min_session_ms;   /* group.min.session.timeout.ms */
    int32_t group_max_session_ms;   /* group.max.session.timeout.ms */
    int32_t group_initial_delay_ms; /* group.initial.rebalance.delay.ms */
    int32_t group_cons_session_ms;  /* group.consumer.session.timeout.ms */
    int32_t group_cons_hb_ms;       /* group.consumer.heartbeat.interval.ms */
    int group_cons_assignors[2];    /* group.consumer.assignors: GRP_ASSIGNOR_* */
    int n_group_cons_assignors;
    int32_t txn_max_timeout_ms; /* transaction.max.timeout.ms */
    /* transaction.abort.timed.out.transaction.cleanup.interval.ms */
    int32_t txn_check_interval_ms;
    int64_t txn_id_expiration_ms; /* transactional.id.expiration.ms */
    int64_t txn_snapshot_bytes;   /* strata.transaction.state.snapshot.bytes */
    /* borrowed: the broker configuration, described by DescribeConfigs; NULL
     * describes every key at its default */
    const struct cfg *cfg;
    /* borrowed: how ACLs decide (super.users, allow.everyone.if.no.acl.found);
     * NULL = authorization off (see docs/ARCHITECTURE.md, "Authorization") */
    const acl_conf_t *acl;
    /* SASL: connections.max.reauth.ms (0 = sessions never expire). */
    int64_t reauth_ms;
} kh_ctx_t;

/* SASL mechanisms (bits of kh_listener_t.sasl_mechs); the SCRAM ones equal
 * Kafka's ScramMechanism ids (core/st_scram.h). */
#define KH_SASL_SCRAM_SHA_256 1
#define KH_SASL_SCRAM_SHA_512 2
#define KH_SASL_PLAIN         3

/** Parse sasl.enabled.mechanisms ("PLAIN,SCRAM-SHA-256") into a mask of
 * 1 << KH_SASL_* bits. @return 0 or ST_E_CONFIG (errbuf names the bad one). */
ST_MUST_CHECK int
kh_sasl_parse_mechanisms(const char *list, unsigned *mask, char *errbuf, size_t errbuf_len);

typedef struct kh_shard kh_shard_t;

/* ---- Broker-wide limits (kh_limits.c), thread-safe ---- */
/** New limits. Each value <= 0 means no limit.
 * @param max_conns         max.connections: open Kafka connections, broker-wide.
 * @param max_per_ip        max.connections.per.ip.
 * @param queued_max_bytes  queued.max.request.bytes: bytes of requests read
 *                          but not yet answered (frames, decoded, responses).
 * @return owned (kh_limits_free), or NULL when out of memory. */
kh_limits_t *kh_limits_new(int64_t max_conns, int64_t max_per_ip, int64_t queued_max_bytes);
void kh_limits_free(kh_limits_t *l);
typedef enum {
    KH_ADMIT_OK,
    KH_ADMIT_MAX_CONNS,  /* max.connections reached */
    KH_ADMIT_MAX_PER_IP, /* max.connections.per.ip reached for this address */
    KH_ADMIT_NOMEM,
} kh_admit_t;
/** Count a new connection from sa (AF_INET or AF_INET6; IPv4-mapped IPv6
 * counts as IPv4) unless a limit is reached. l may be NULL (no limits).
 * Each KH_ADMIT_OK must be matched by one kh_limits_conn_release(). */
kh_admit_t kh_limits_conn_admit(kh_limits_t *l, const struct sockaddr *sa);
void kh_limits_conn_release(kh_limits_t *l, const struct sockaddr *sa);
/** Connections counted: broker-wide (sa NULL) or from sa's address. */
int64_t kh_limits_conns(kh_limits_t *l, const struct sockaddr *sa);
/** Add delta (may be negative) bytes to the queued-request pool. */
void kh_limits_mem_add(kh_limits_t *l, int64_t delta);
int64_t kh_limits_mem_used(const kh_limits_t *l);
/** The pool holds queued.max.request.bytes or more: stop reading requests. */
bool kh_limits_mem_full(const kh_limits_t *l);
struct tier_shard;
struct tier_seg_aborted_s;

/** Start serving on shard sh: bind the Kafka listener (SO_REUSEPORT).
 * @param ps  Borrowed: the shard's partition registry, outlives the server.
 * @return 0 or an error (errbuf says why). @thread sh's loop */
ST_MUST_CHECK int kh_shard_new(rt_shard_t *sh,
                               const kh_ctx_t *ctx,
                               part_shard_t *ps,
                               kh_shard_t **out,
                               char *errbuf,
                               size_t errbuf_len);

typedef void (*kh_closed_cb)(void *arg);
/** Stop accepting and reading; answer the requests already read (long polls
 * at once), closing each connection when its queue is empty (at most 5 s),
 * then wait until every request of the shard was freed (those of closed
 * connections wait for their ops on other shards; 30 s at most, then they
 * are left unfreed with a warning), then cb. Partition work for other shards
 * is still served meanwhile, and answers to them still posted.
 * @thread sh's loop */
void kh_shard_close(kh_shard_t *ks, kh_closed_cb cb, void *arg);
/** Serve reads below the local log start from this shard's archive reader. */
void kh_shard_set_tier(kh_shard_t *ks, struct tier_shard *ts);

/** tier_opts_t.aborted: the aborted transactions whose ABORT marker lies in
 * [from, to) of log, with their first offsets, from the transaction state of
 * the calling shard (rebuilt from the local log if not yet). arg is unused.
 * @return 0 (*out malloc'd or NULL) or ST_E_NOMEM. @thread the log's shard */
int kh_tier_aborted(
    void *arg, plog_t *log, int64_t from, int64_t to, struct tier_seg_aborted_s **out, size_t *n);
/** Free the server state once the shard's queue is closed (rt_shard_done):
 * no message can reach it any more. The free completes on the loop once the
 * posts still waiting in the retry list went out (answers to other shards'
 * requests) or were refused by a closed shard; it is the shard's last handle. */
void kh_shard_free(kh_shard_t *ks);

/* ---- Transactions, for the admin API (kh_txn.c) ---- */
/* One transactional id of a shard's coordinator, as DescribeTransactions tells it. */
typedef struct {
    char *id; /* owned */
    int64_t producer_id;
    int16_t producer_epoch;
    const char *state; /* static: Kafka's name (Empty, Ongoing, PrepareCommit, ...) */
    int32_t timeout_ms;
    int64_t start_ms; /* wall clock ms of the open transaction's start, -1 when none */
    int n_partitions;
    char **topics;       /* owned: [n_partitions] owned strings */
    int32_t *partitions; /* owned: [n_partitions] */
    int n_groups;        /* consumer groups whose offsets it commits */
} kh_txn_info_t;
/** The transactional ids owned by the calling shard's coordinator.
 * @return a malloc'd array of *n (free with kh_txn_info_free), or NULL with
 *         *n = 0 when there is none or memory ran out. @thread a shard's loop */
kh_txn_info_t *kh_txn_snapshot(int *n);
void kh_txn_info_free(kh_txn_info_t *v, int n);
/** Called just before the shard's partition registry closes: from then on
 * partition operations posted here are refused. */
void kh_shard_parts_closing(kh_shard_t *ks);

/** Plog config of a topic: cluster defaults + the topic's overrides (t may
 * be NULL for the defaults). @thread any */
void kh_topic_log_config(const kh_ctx_t *ctx, const meta_topic_t *t, plog_config_t *out);

/** Publish new cluster defaults of topic configs (see kh_ctx_t.log_defaults).
 * @param cfg  Borrowed: must stay valid until the broker exits.
 * Partitions already open keep theirs until kh_shard_apply_defaults().
 * @thread any */
void kh_ctx_set_log_defaults(kh_ctx_t *ctx, const plog_config_t *cfg);
/** Apply the current config (defaults + topic overrides) to every partition
 * this shard has open. @thread the shard's loop */
void kh_shard_apply_defaults(kh_shard_t *ks);

/** The shard's kafka server state, set by stratad as the shard's data. */
kh_shard_t *kh_shard_of(rt_shard_t *sh);
/** The partition registry the server was started with; NULL once it is
 * closing (kh_shard_parts_closing). */
part_shard_t *kh_shard_parts(kh_shard_t *ks);

#endif
