/* kh_config.c - topic and broker configuration over the Kafka API:
 * DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, and the table of
 * topic configs that CreateTopics validates against.
 * Data path: DescribeConfigs answers from the metadata snapshot and the broker
 * config on the connection's shard (no I/O). Alter* validate on the
 * connection's shard -> meta_set_configs() (SQLite on the thread pool, then a
 * new snapshot) -> every shard recomputes the topic's plog config from the
 * newest snapshot (kh_topic_log_config) and applies it to the partitions it
 * has open (part_set_topic_config), so segment and retention limits change
 * live, without a restart.
 * Invariants: 1. a resource is all-or-nothing: nothing reaches the metadata
 *                store unless every change of the resource validated;
 *             2. only keys of k_topic_keys are stored as topic overrides, and
 *                only values that pass their rule;
 *             3. a shard applies the newest snapshot's config, never the one a
 *                message carried, so concurrent alters cannot apply out of
 *                order. */
#include "core/cfg.h"
#include "core/st_crc32c.h"
#include "core/st_log.h"
#include "kafka/kh_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Kafka's enums (DescribeConfigsResponse) ---- */

enum { /* ResourceType */
       KH_RES_TOPIC = 2,
       KH_RES_BROKER = 4
};

enum { /* ConfigType */
       KH_CT_BOOLEAN = 1,
       KH_CT_STRING = 2,
       KH_CT_INT = 3,
       KH_CT_LONG = 5,
       KH_CT_DOUBLE = 6,
       KH_CT_LIST = 7
};

enum { /* ConfigSource */
       KH_SRC_TOPIC = 1,
       KH_SRC_DYNAMIC_DEFAULT_BROKER = 3, /* cluster-wide, set through the admin API */
       KH_SRC_STATIC_BROKER = 4,
       KH_SRC_DEFAULT = 5
};

enum { /* IncrementalAlterConfigs ConfigOperation */
       KH_OP_SET = 0,
       KH_OP_DELETE = 1,
       KH_OP_APPEND = 2,
       KH_OP_SUBTRACT = 3
};

/* ---- The topic config table ----
 * X(name, type, default, min, max, choices, broker synonym, doc)
 * Kafka's names, types, defaults and ranges (LogConfig), plus Redpanda's
 * write.caching. choices: the allowed values of a STRING or of each element
 * of a LIST, comma-separated. The broker synonym is Kafka's broker-level key;
 * when it is in core/cfg_keys.h, the broker's value is the topic default.
 * segment.bytes, segment.ms, retention.bytes, retention.ms,
 * index.interval.bytes, the remote/local retention keys, write.caching and
 * flush.* change the partition log (kh_topic_log_config); max.message.bytes,
 * message.timestamp.type=LogAppendTime and the message.timestamp.*.max.ms
 * bounds are applied on the produce path (below), as is the refusal of keyless records on
 * compacted topics. cleanup.policy and the compaction keys (min.cleanable.dirty.ratio,
 * *.compaction.lag.ms, delete.retention.ms) drive the shard's cleaner (core/plog_compact.c).
 * Values Strata could not honour are refused (check_supported). The rest have no effect on one
 * broker, as in Kafka (unclean.leader.election.enable, *.replication.throttled.replicas);
 * message.downconversion.enable=false refuses Fetch v0-3
 * (kh_fetch), true serves them the stored v2 batches (Strata never
 * down-converts). */
#define KH_TOPIC_CONFIGS(X)                                                                        \
    X("cleanup.policy", LIST, "delete", 0, 0, "delete,compact", "log.cleanup.policy",              \
      "Retention policies of old segments, comma-separated: delete removes them by retention.ms "  \
      "and retention.bytes; compact keeps only the latest record of each key (the shard's "        \
      "cleaner rewrites sealed segments; records without a key are refused).")                     \
    X("compression.type", STRING, "producer", 0, 0, "uncompressed,zstd,lz4,snappy,gzip,producer",  \
      "compression.type",                                                                          \
      "Final compression of the topic's batches. Strata stores batches exactly as the producer "   \
      "compressed them: only producer is accepted.")                                               \
    X("retention.ms", LONG, "604800000", -1, INT64_MAX, NULL, "log.retention.ms",                  \
      "Delete a segment once its newest record is older than this (-1: keep forever).")            \
    X("retention.bytes", LONG, "-1", -1, INT64_MAX, NULL, "log.retention.bytes",                   \
      "Delete the oldest segments while a partition is larger than this (-1: no limit).")          \
    X("segment.bytes", INT, "1073741824", 14, INT32_MAX, NULL, "log.segment.bytes",                \
      "Roll the active segment when it would exceed this size.")                                   \
    X("segment.ms", LONG, "604800000", 1, INT64_MAX, NULL, "log.roll.ms",                          \
      "Roll the active segment when it is older than this.")                                       \
    X("segment.index.bytes", INT, "10485760", 4, INT32_MAX, NULL, "log.index.size.max.bytes",      \
      "Maximum size of a segment's offset index.")                                                 \
    X("index.interval.bytes", INT, "4096", 0, INT32_MAX, NULL, "log.index.interval.bytes",         \
      "Bytes between two entries of the sparse offset index.")                                     \
    X("max.message.bytes", INT, "1048588", 0, INT32_MAX, NULL, "message.max.bytes",                \
      "Largest record batch accepted.")                                                            \
    X("message.timestamp.type", STRING, "CreateTime", 0, 0, "CreateTime,LogAppendTime",            \
      "log.message.timestamp.type",                                                                \
      "Whether record timestamps are the producer's or the broker's.")                             \
    X("message.timestamp.difference.max.ms", LONG, "9223372036854775807", 0, INT64_MAX, NULL,      \
      "log.message.timestamp.difference.max.ms",                                                   \
      "Largest accepted difference between a record's timestamp and the broker's clock.")          \
    X("min.insync.replicas", INT, "1", 1, INT32_MAX, NULL, "min.insync.replicas",                  \
      "Replicas that must acknowledge an acks=all write (one broker: only 1 is accepted).")        \
    X("file.delete.delay.ms", LONG, "60000", 0, INT64_MAX, NULL, "log.segment.delete.delay.ms",    \
      "Delay before a deleted segment's file is removed.")                                         \
    X("flush.messages", LONG, "9223372036854775807", 1, INT64_MAX, NULL,                           \
      "log.flush.interval.messages",                                                               \
      "With write.caching, fsync once this many records are unsynced (without it every write is "  \
      "synced before it is acknowledged).")                                                        \
    X("flush.ms", LONG, "100", 0, INT64_MAX, NULL, "log.flush.interval.ms",                        \
      "With write.caching, longest time written data stays unsynced (Redpanda's default).")        \
    X("flush.bytes", LONG, "262144", 1, INT64_MAX, NULL, "strata.log.flush.interval.bytes",        \
      "With write.caching, fsync once this many bytes are unsynced (Redpanda's name and "          \
      "default).")                                                                                 \
    X("unclean.leader.election.enable", BOOLEAN, "false", 0, 0, NULL,                              \
      "unclean.leader.election.enable",                                                            \
      "Allow an out-of-sync replica to become leader (no effect on one broker).")                  \
    X("message.downconversion.enable", BOOLEAN, "true", 0, 0, NULL,                                \
      "log.message.downconversion.enable",                                                         \
      "false: refuse Fetch v0-3 (UNSUPPORTED_VERSION). Strata never down-converts: with true "     \
      "they get the stored v2 batches.")                                                           \
    X("delete.retention.ms", LONG, "86400000", 0, INT64_MAX, NULL,                                 \
      "log.cleaner.delete.retention.ms",                                                           \
      "How long a tombstone (null value) survives compaction, by its batch timestamp.")            \
    X("min.compaction.lag.ms", LONG, "0", 0, INT64_MAX, NULL, "log.cleaner.min.compaction.lag.ms", \
      "Minimum time a record stays uncompacted (by its segment's newest timestamp).")              \
    X("max.compaction.lag.ms", LONG, "9223372036854775807", 1, INT64_MAX, NULL,                    \
      "log.cleaner.max.compaction.lag.ms",                                                         \
      "Clean a log whatever its dirty ratio once a dirty segment's newest record is older.")       \
    X("min.cleanable.dirty.ratio", DOUBLE, "0.5", 0, 1, NULL, "log.cleaner.min.cleanable.ratio",   \
      "Dirty share of a compacted log above which the cleaner runs.")                              \
    X("segment.jitter.ms", LONG, "0", 0, INT64_MAX, NULL, "log.roll.jitter.ms",                    \
      "Random jitter subtracted from segment.ms.")                                                 \
    X("message.timestamp.before.max.ms", LONG, "9223372036854775807", 0, INT64_MAX, NULL,          \
      "log.message.timestamp.before.max.ms",                                                       \
      "Largest accepted age of a record timestamp relative to the broker's clock.")                \
    X("message.timestamp.after.max.ms", LONG, "9223372036854775807", 0, INT64_MAX, NULL,           \
      "log.message.timestamp.after.max.ms",                                                        \
      "Largest accepted lead of a record timestamp over the broker's clock.")                      \
    X("leader.replication.throttled.replicas", LIST, "", 0, 0, NULL, NULL,                         \
      "Replicas throttled on the leader side: * or partition:broker pairs (no effect on one "      \
      "broker).")                                                                                  \
    X("follower.replication.throttled.replicas", LIST, "", 0, 0, NULL, NULL,                       \
      "Replicas throttled on the follower side: * or partition:broker pairs (no effect on one "    \
      "broker).")                                                                                  \
    X("preallocate", BOOLEAN, "false", 0, 0, NULL, "log.preallocate",                              \
      "Preallocate segment files when they are created.")                                          \
    X("remote.storage.enable", BOOLEAN, "false", 0, 0, NULL, NULL,                                 \
      "Offload sealed segments of this topic to the object store (KIP-405).")                      \
    X("local.retention.ms", LONG, "-2", -2, INT64_MAX, NULL, "log.local.retention.ms",             \
      "With remote storage, delete uploaded segments locally after this long (-2: retention.ms).") \
    X("local.retention.bytes", LONG, "-2", -2, INT64_MAX, NULL, "log.local.retention.bytes",       \
      "With remote storage, keep at most this many bytes locally (-2: retention.bytes).")          \
    X("write.caching", BOOLEAN, "false", 0, 0, NULL, "strata.write.caching.default",               \
      "Acknowledge acks=all writes once in the page cache, before fsync; the high watermark is "   \
      "then the written end (Redpanda's write caching).")

typedef struct {
    const char *name;
    int8_t type;            /* KH_CT_* */
    const char *def;        /* Kafka's default, when the broker has no synonym key */
    int64_t min, max;       /* range of INT and LONG values */
    const char *choices;    /* comma-separated allowed values, or NULL */
    const char *broker_key; /* Kafka's broker-level synonym, or NULL */
    const char *doc;
} tkey_t;

static const tkey_t k_topic_keys[] = {
#define KH_TK(name, type, def, min, max, choices, broker, doc)                                     \
    {name, KH_CT_##type, def, min, max, choices, broker, doc},
    KH_TOPIC_CONFIGS(KH_TK)
#undef KH_TK
};
#define N_TOPIC_KEYS ((int)(sizeof(k_topic_keys) / sizeof(k_topic_keys[0])))

/* The broker keys, from the same X-macro table as core/cfg.c. */
typedef struct {
    const char *name;
    cfg_type_t type;
    const char *def;
    int64_t max;
    const char *doc;
} bkey_t;

static const bkey_t k_broker_keys[CFG__COUNT] = {
#define KH_BK(id, name, type, def, min, max, reload, doc) {name, type, def, max, doc},
    CFG_KEYS(KH_BK)
#undef KH_BK
};

static const tkey_t *topic_key(const char *name)
{
    for (int i = 0; i < N_TOPIC_KEYS; i++)
        if (!strcmp(k_topic_keys[i].name, name))
            return &k_topic_keys[i];
    return NULL;
}

/* ---- Small helpers ---- */

static const char *adup(kh_req_t *req, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *p = kp_arena_alloc(&req->arena, n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static kp_str_t astr(kh_req_t *req, const char *s)
{
    return kp_str_from_cstr(adup(req, s));
}

/* A wire string as an arena C string with surrounding blanks removed, as
 * Kafka trims config values; NULL for a null string. */
static char *trimmed(kh_req_t *req, kp_str_t s)
{
    if (s.len < 0)
        return NULL;
    char *p = kh_cstr(req, s);
    if (!p)
        return NULL;
    while (isspace((unsigned char)*p))
        p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1]))
        p[--n] = 0;
    return p;
}

/* True when item (len bytes) is one of the comma-separated choices. */
static bool in_choices(const char *choices, const char *item, size_t len)
{
    for (const char *c = choices; *c;) {
        const char *e = strchr(c, ',');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == len && !memcmp(c, item, n))
            return true;
        c = e ? e + 1 : c + n;
    }
    return false;
}

/* ---- Validation ---- */

/* An element of a replica list: "*" or "partition:broker". */
static bool replica_item_ok(const char *s, size_t len)
{
    if (len == 1 && *s == '*')
        return true;
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return false;
    size_t a = (size_t)(colon - s), b = len - a - 1;
    return a > 0 && b > 0 && strspn(s, "0123456789") == a && strspn(colon + 1, "0123456789") >= b;
}

/* Check value against k's rule; value is trimmed, booleans are lowercased in
 * place. @return 0, or -1 with a Kafka-style reason in err. */
static int check_value(const tkey_t *k, char *value, char *err, size_t err_len)
{
    const char *tname = k->type == KH_CT_INT ? "INT" : "LONG";
    switch (k->type) {
    case KH_CT_INT:
    case KH_CT_LONG: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno) {
            snprintf(err, err_len, "Invalid value %s for configuration %s: Not a number of type %s",
                     value, k->name, tname);
            return -1;
        }
        if (v < k->min) {
            snprintf(err, err_len,
                     "Invalid value %s for configuration %s: Value must be at least %" PRId64,
                     value, k->name, k->min);
            return -1;
        }
        if (v > k->max) {
            snprintf(err, err_len,
                     "Invalid value %s for configuration %s: Value must be no more than %" PRId64,
                     value, k->name, k->max);
            return -1;
        }
        return 0;
    }
    case KH_CT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || *end || errno || v != v) {
            snprintf(err, err_len,
                     "Invalid value %s for configuration %s: Not a number of type DOUBLE", value,
                     k->name);
            return -1;
        }
        if (v < (double)k->min || v > (double)k->max) {
            snprintf(err, err_len,
                     "Invalid value %s for configuration %s: Value must be between %" PRId64
                     " and %" PRId64,
                     value, k->name, k->min, k->max);
            return -1;
        }
        return 0;
    }
    case KH_CT_BOOLEAN:
        for (char *p = value; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
            snprintf(err, err_len,
                     "Invalid value %s for configuration %s: Expected value to be either true or "
                     "false",
                     value, k->name);
            return -1;
        }
        return 0;
    case KH_CT_STRING:
        if (!in_choices(k->choices, value, strlen(value))) {
            snprintf(err, err_len,
                     "Invalid value %s for configuration %s: String must be one of: %s", value,
                     k->name, k->choices);
            return -1;
        }
        return 0;
    case KH_CT_LIST: {
        int n = 0;
        for (const char *c = value; *c;) {
            const char *e = strchr(c, ',');
            size_t len = e ? (size_t)(e - c) : strlen(c);
            const char *s = c;
            while (len && isspace((unsigned char)*s))
                s++, len--;
            while (len && isspace((unsigned char)s[len - 1]))
                len--;
            if (!k->choices) {
                if (!replica_item_ok(s, len)) {
                    snprintf(err, err_len,
                             "Invalid value %s for configuration %s: must be * or a list of "
                             "partition:broker pairs",
                             value, k->name);
                    return -1;
                }
            } else if (!in_choices(k->choices, s, len)) {
                snprintf(err, err_len,
                         "Invalid value %s for configuration %s: every element must be one of: %s",
                         value, k->name, k->choices);
                return -1;
            }
            n++;
            c = e ? e + 1 : c + strlen(c);
        }
        if (n == 0 && k->choices) {
            snprintf(err, err_len,
                     "Invalid value for configuration %s: the list is empty; use one of: %s",
                     k->name, k->choices);
            return -1;
        }
        return 0;
    }
    }
    return 0;
}

/* Values Strata validates but could not honour: refused rather than stored
 * and ignored, so that no setting silently does nothing. value is valid for
 * k's type. @return 0, or -1 with the reason in err. */
static int check_supported(const tkey_t *k, const char *value, char *err, size_t err_len)
{
    static const struct {
        const char *name;
        const char *allowed; /* the only value accepted */
        const char *why;
    } k_limits[] = {
        {"compression.type", "producer",
         "Strata stores batches as the producer compressed them and does not recompress; "
         "only producer is supported"},
        {"segment.jitter.ms", "0", "segments roll at segment.ms exactly, with no jitter"},
        {"segment.index.bytes", "10485760",
         "a segment's offset index grows with it (no size limit); segments roll by "
         "segment.bytes and segment.ms"},
        {"file.delete.delay.ms", "60000",
         "a deleted segment's files are removed as soon as no reader holds them"},
        {"preallocate", "false", "segment files are not preallocated"},
    };
    if (!strcmp(k->name, "min.insync.replicas") && strtoll(value, NULL, 10) > 1) {
        snprintf(err, err_len,
                 "Invalid value %s for configuration min.insync.replicas: Strata is one broker, "
                 "so at most 1 replica can be in sync (acks=all would always fail with "
                 "NOT_ENOUGH_REPLICAS)",
                 value);
        return -1;
    }
    for (size_t i = 0; i < sizeof(k_limits) / sizeof(k_limits[0]); i++) {
        if (!strcmp(k->name, k_limits[i].name) && strcmp(value, k_limits[i].allowed) != 0) {
            snprintf(err, err_len, "Invalid value %s for configuration %s: %s", value, k->name,
                     k_limits[i].why);
            return -1;
        }
    }
    return 0;
}

int16_t kh_topic_config_check(const char *name, char *value, char *errbuf, size_t errbuf_len)
{
    char err[512];
    const tkey_t *k = topic_key(name);
    int rc = -1;
    if (!k) {
        snprintf(err, sizeof(err), "Unknown topic config name: %s", name);
    } else if (!value) {
        snprintf(err, sizeof(err), "Null value not supported for topic config: %s", name);
    } else {
        char *p = value;
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strlen(p);
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        memmove(value, p, n);
        value[n] = 0;
        rc = check_value(k, value, err, sizeof(err));
        if (rc == 0)
            rc = check_supported(k, value, err, sizeof(err));
    }
    if (rc == 0)
        return KP_ERR_NONE;
    if (errbuf && errbuf_len)
        snprintf(errbuf, errbuf_len, "%s", err);
    return KP_ERR_INVALID_CONFIG;
}

/* Validate one (name, value) for a topic and fill kv with arena copies.
 * @return KP_ERR_NONE, or INVALID_CONFIG with *msg (arena). */
static int16_t
check_kv(kh_req_t *req, kp_str_t name, kp_str_t value, meta_kv_t *kv, const char **msg)
{
    char err[512];
    char *key = kh_cstr(req, name);
    char *v = value.len >= 0 ? kh_cstr(req, value) : NULL;
    if (!key || (value.len >= 0 && !v)) {
        *msg = "out of memory";
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    }
    int16_t code = kh_topic_config_check(key, v, err, sizeof(err));
    if (code == KP_ERR_NONE) {
        kv->key = key;
        kv->value = v;
    } else {
        *msg = adup(req, err);
    }
    return code;
}

/* ---- Configs applied on the produce path ---- */

static int64_t topic_int(const meta_topic_t *t, const char *key, int64_t dflt)
{
    const char *v = t ? meta_topic_config(t, key) : NULL;
    return v ? strtoll(v, NULL, 10) : dflt;
}

int16_t kh_check_batch_sizes(kh_req_t *req,
                             const meta_topic_t *t,
                             kp_bytes_t records,
                             const char *topic,
                             int32_t partition,
                             kp_str_t *msg_out)
{
    int64_t max_batch = topic_int(t, "max.message.bytes", req->ks->ctx->message_max_bytes);
    const uint8_t *p = records.ptr;
    size_t len = records.len > 0 ? (size_t)records.len : 0;
    for (size_t pos = 0; len - pos >= PLOG_BATCH_LOG_OVERHEAD;) {
        const uint8_t *b = p + pos + 8;
        int64_t size =
            (int64_t)(((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]) &
                      0x7fffffff) +
            PLOG_BATCH_LOG_OVERHEAD;
        if (size > (int64_t)(len - pos))
            break; /* not a whole batch: plog_append's validation answers */
        if (size > max_batch) {
            char m[320];
            snprintf(m, sizeof(m),
                     "The record batch size in the append to %s-%" PRId32 " is %" PRId64
                     " bytes which exceeds the maximum configured value of %" PRId64 ".",
                     topic, partition, size, max_batch);
            *msg_out = astr(req, m);
            return KP_ERR_MESSAGE_TOO_LARGE;
        }
        pos += (size_t)size;
    }
    return KP_ERR_NONE;
}

void kh_topic_append_rules(const kh_ctx_t *ctx, const meta_topic_t *t, kh_append_rules_t *out)
{
    plog_config_t lc;
    kh_topic_log_config(ctx, t, &lc);
    out->is_compacted = lc.cleanup_compact;
    const char *v = t ? meta_topic_config(t, "message.timestamp.type") : NULL;
    out->log_append_time = v && !strcmp(v, "LogAppendTime");
    /* Kafka 3.6+: the deprecated difference.max.ms applies to each bound
     * left at its default. */
    int64_t diff = topic_int(t, "message.timestamp.difference.max.ms", INT64_MAX);
    out->before_ms = topic_int(t, "message.timestamp.before.max.ms", INT64_MAX);
    out->after_ms = topic_int(t, "message.timestamp.after.max.ms", INT64_MAX);
    if (out->before_ms == INT64_MAX)
        out->before_ms = diff;
    if (out->after_ms == INT64_MAX)
        out->after_ms = diff;
}

/* Decompressed bytes of one batch the timestamp check reads at most (a
 * guard against decompression bombs; larger batches are refused). */
#define KH_MAX_BATCH_RAW (64u << 20)

typedef struct {
    int64_t lo, hi; /* accepted record timestamps */
    int64_t bad_ts, bad_offset;
} ts_check_t;

static int ts_in_range(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    ts_check_t *c = arg;
    (void)h;
    if (rec->timestamp == -1 || (rec->timestamp >= c->lo && rec->timestamp <= c->hi))
        return 0; /* -1: no timestamp, as Kafka exempts it */
    c->bad_ts = rec->timestamp;
    c->bad_offset = rec->offset;
    return ST_E_RANGE;
}

static int has_key(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    (void)arg;
    (void)h;
    return rec->key ? 0 : ST_E_RANGE;
}

/* Compacted topics: every record needs a key (Kafka's INVALID_RECORD). */
static int16_t check_keys(const uint8_t *records, size_t len, char *msg, size_t msg_len)
{
    for (size_t pos = 0; pos < len;) {
        plog_batch_hdr_t h;
        if (plog_batch_parse_hdr(records + pos, len - pos, &h) != 0)
            break; /* validated by the caller: cannot happen */
        size_t size = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        int rc = plog_batch_records(records + pos, size, KH_MAX_BATCH_RAW, has_key, NULL);
        if (rc == ST_E_RANGE) {
            snprintf(msg, msg_len, "Compacted topic cannot accept message without key.");
            return KP_ERR_INVALID_RECORD;
        }
        if (rc != 0) {
            snprintf(msg, msg_len, "cannot read the batch's records: %s", st_strerror(rc));
            return kh_errcode_from_st(rc);
        }
        pos += size;
    }
    return KP_ERR_NONE;
}

/* Stamp every (validated) batch with LogAppendTime = now_ms. */
static void stamp_log_append_time(uint8_t *records, size_t len, int64_t now_ms)
{
    for (size_t pos = 0; pos < len;) {
        uint8_t *b = records + pos;
        plog_batch_hdr_t h;
        if (plog_batch_parse_hdr(b, len - pos, &h) != 0)
            return; /* validated by the caller: cannot happen */
        size_t size = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        uint16_t attributes = (uint16_t)h.attributes | 0x08; /* timestamp type: LogAppendTime */
        b[21] = (uint8_t)(attributes >> 8);
        b[22] = (uint8_t)attributes;
        for (int i = 0; i < 8; i++)
            b[35 + i] = (uint8_t)((uint64_t)now_ms >> (56 - 8 * i));
        uint32_t crc = st_crc32c(0, b + PLOG_BATCH_CRC_START, size - PLOG_BATCH_CRC_START);
        for (int i = 0; i < 4; i++)
            b[17 + i] = (uint8_t)(crc >> (24 - 8 * i));
        pos += size;
    }
}

int16_t kh_apply_append_rules(const kh_append_rules_t *rules,
                              uint8_t *records,
                              size_t len,
                              int64_t now_ms,
                              char *msg,
                              size_t msg_len)
{
    bool bounded = rules->before_ms != INT64_MAX || rules->after_ms != INT64_MAX;
    if (!rules->log_append_time && !bounded && !rules->is_compacted)
        return KP_ERR_NONE;
    int n;
    const char *why = NULL;
    int rc = plog_records_validate(records, len, &n, &why);
    if (rc != 0) {
        snprintf(msg, msg_len, "%s", why ? why : st_strerror(rc));
        return kh_errcode_from_st(rc);
    }
    if (rules->is_compacted) {
        int16_t code = check_keys(records, len, msg, msg_len);
        if (code != KP_ERR_NONE || (!rules->log_append_time && !bounded))
            return code;
    }
    if (rules->log_append_time) {
        stamp_log_append_time(records, len, now_ms);
        return KP_ERR_NONE;
    }
    ts_check_t c = {
        .lo = rules->before_ms > now_ms ? INT64_MIN : now_ms - rules->before_ms,
        .hi = rules->after_ms > INT64_MAX - now_ms ? INT64_MAX : now_ms + rules->after_ms,
    };
    for (size_t pos = 0; pos < len;) {
        plog_batch_hdr_t h;
        if (plog_batch_parse_hdr(records + pos, len - pos, &h) != 0)
            break; /* validated above: cannot happen */
        size_t size = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        rc = plog_batch_records(records + pos, size, KH_MAX_BATCH_RAW, ts_in_range, &c);
        if (rc == ST_E_RANGE) {
            snprintf(msg, msg_len,
                     "Timestamp %" PRId64 " of message with offset %" PRId64
                     " is out of range. The timestamp should be within [%" PRId64 ", %" PRId64 "]",
                     c.bad_ts, c.bad_offset, c.lo, c.hi);
            return KP_ERR_INVALID_TIMESTAMP;
        }
        if (rc != 0) {
            snprintf(msg, msg_len, "cannot read the batch's records: %s", st_strerror(rc));
            return kh_errcode_from_st(rc);
        }
        pos += size;
    }
    return KP_ERR_NONE;
}

/* ---- Effective values ---- */

typedef struct {
    const char *name;  /* static or arena */
    const char *value; /* static or arena */
    int8_t source;     /* KH_SRC_* */
} syn_t;

/* One described config: the effective value is syn[0]'s. */
typedef struct {
    const char *name;
    int8_t type;
    bool read_only;
    const char *doc;
    syn_t syn[3]; /* most to least specific */
    int n_syn;
    bool is_sensitive; /* a secret: described with a null value (cfg_sensitive) */
} centry_t;

/* The running value of a key that PUT /v1/cluster/config changes live (the
 * context's _Atomic fields): false for the other keys, read from the cfg. */
static bool live_value(const kh_ctx_t *ctx, cfg_key_t k, int64_t *out)
{
    const plog_config_t *d = atomic_load(&ctx->log_defaults);
    switch (k) {
    case CFG_MESSAGE_MAX_BYTES:
        *out = ctx->message_max_bytes;
        return true;
    case CFG_NUM_PARTITIONS:
        *out = ctx->num_partitions;
        return true;
    case CFG_AUTO_CREATE:
        *out = ctx->auto_create;
        return true;
    case CFG_MAX_PARTITIONS:
        *out = ctx->max_partitions;
        return true;
    case CFG_SEGMENT_BYTES:
        *out = d ? d->segment_bytes : 0;
        break;
    case CFG_ROLL_MS:
        *out = d ? d->segment_ms : 0;
        break;
    case CFG_RETENTION_MS:
        *out = d ? d->retention_ms : 0;
        break;
    case CFG_RETENTION_BYTES:
        *out = d ? d->retention_bytes : 0;
        break;
    case CFG_INDEX_INTERVAL:
        *out = d ? d->index_interval_bytes : 0;
        break;
    default:
        return false;
    }
    return d != NULL;
}

/* The broker's value of key k (arena text) and whether it was set away from
 * its default. */
static const char *broker_value(kh_req_t *req, cfg_key_t k, bool *is_set)
{
    const struct cfg *cfg = req->ks->ctx->cfg;
    const bkey_t *b = &k_broker_keys[k];
    char buf[32];
    const char *v = b->def;
    *is_set = false;
    if (!cfg)
        return b->def;
    switch (b->type) {
    case CFG_INT: {
        int64_t x;
        if (!live_value(req->ks->ctx, k, &x))
            x = cfg_int(cfg, k);
        snprintf(buf, sizeof(buf), "%" PRId64, x);
        *is_set = x != strtoll(b->def, NULL, 10);
        v = buf;
        break;
    }
    case CFG_BOOL: {
        int64_t x;
        v = (live_value(req->ks->ctx, k, &x) ? x != 0 : cfg_bool(cfg, k)) ? "true" : "false";
        *is_set = strcmp(v, b->def) != 0;
        break;
    }
    case CFG_STR:
        v = cfg_str(cfg, k);
        if (k == CFG_LOG_LEVEL) { /* the admin API changes it live */
            static const char *const names[] = {"error", "warn", "info", "debug", "trace"};
            st_log_level_t lv = st_log_get_level();
            if ((unsigned)lv < sizeof(names) / sizeof(names[0]))
                v = names[lv];
        }
        *is_set = strcmp(v, b->def) != 0;
        break;
    }
    return adup(req, v);
}

/* Whether the admin API set the value of k that is in force (kh_ctx_t.cfg_dynamic). */
static bool is_dynamic(const kh_ctx_t *ctx, cfg_key_t k)
{
    return (atomic_load(&ctx->cfg_dynamic[k / 64]) >> (k % 64)) & 1;
}

static void add_syn(centry_t *e, const char *name, const char *value, int8_t source)
{
    e->syn[e->n_syn++] = (syn_t){name, value, source};
}

/* Topic key k with override (NULL when not overridden): the override, then
 * the broker's synonym when set, then the default. */
static void topic_entry(kh_req_t *req, const tkey_t *k, const char *override, centry_t *e)
{
    char why[512];
    /* A value stored before Strata refused it is not in force: not shown. */
    if (override && check_supported(k, override, why, sizeof(why)) != 0)
        override = NULL;
    memset(e, 0, sizeof(*e));
    e->name = k->name;
    e->type = k->type;
    e->doc = k->doc;
    const char *def = k->def;
    const char *bval = NULL;
    cfg_key_t ck;
    if (k->broker_key && cfg_lookup(k->broker_key, &ck) == 0) {
        bool is_set;
        const char *v = broker_value(req, ck, &is_set);
        def = k_broker_keys[ck].def;
        if (is_set)
            bval = v;
    }
    if (override)
        add_syn(e, k->name, adup(req, override), KH_SRC_TOPIC);
    if (bval)
        add_syn(e, k->broker_key, bval,
                is_dynamic(req->ks->ctx, ck) ? KH_SRC_DYNAMIC_DEFAULT_BROKER
                                             : KH_SRC_STATIC_BROKER);
    add_syn(e, k->broker_key ? k->broker_key : k->name, def, KH_SRC_DEFAULT);
}

static void broker_entry(kh_req_t *req, cfg_key_t k, centry_t *e)
{
    const bkey_t *b = &k_broker_keys[k];
    bool is_set;
    memset(e, 0, sizeof(*e));
    e->name = b->name;
    e->type = b->type == CFG_BOOL   ? KH_CT_BOOLEAN
              : b->type == CFG_STR  ? KH_CT_STRING
              : b->max <= INT32_MAX ? KH_CT_INT
                                    : KH_CT_LONG;
    e->read_only = !cfg_reloadable(k); /* the others: PUT /v1/cluster/config */
    e->doc = b->doc;
    e->is_sensitive = cfg_sensitive(k);
    const char *v = broker_value(req, k, &is_set);
    if (is_dynamic(req->ks->ctx, k))
        add_syn(e, b->name, v, KH_SRC_DYNAMIC_DEFAULT_BROKER);
    else if (is_set)
        add_syn(e, b->name, v, KH_SRC_STATIC_BROKER);
    add_syn(e, b->name, b->def, KH_SRC_DEFAULT);
}

/* ---- DescribeConfigs ---- */

static int emit_entry(kh_req_t *req,
                      const centry_t *e,
                      const kp_describe_configs_request_t *q,
                      kp_describe_configs_response_resource_result_t *out)
{
    int16_t v = req->hdr.request_api_version;
    kp_describe_configs_response_resource_result_init(out);
    out->name = kp_str_from_cstr(e->name);
    out->value = e->is_sensitive ? KP_STR_NULL : kp_str_from_cstr(e->syn[0].value);
    out->is_sensitive = e->is_sensitive;
    out->read_only = e->read_only;
    out->config_source = e->syn[0].source;
    if (v == 0)
        out->is_default = e->syn[0].source == KH_SRC_DEFAULT;
    if (v >= 1 && q->include_synonyms) {
        out->synonyms = kp_arena_calloc(&req->arena, (size_t)e->n_syn, sizeof(*out->synonyms));
        if (!out->synonyms)
            return -1;
        for (int i = 0; i < e->n_syn; i++) {
            kp_describe_configs_response_synonym_t *s = &out->synonyms[i];
            kp_describe_configs_response_synonym_init(s);
            s->name = kp_str_from_cstr(e->syn[i].name);
            s->value = e->is_sensitive ? KP_STR_NULL : kp_str_from_cstr(e->syn[i].value);
            s->source = e->syn[i].source;
        }
        out->n_synonyms = e->n_syn;
    }
    if (v >= 3) {
        out->config_type = e->type;
        out->documentation = q->include_documentation ? kp_str_from_cstr(e->doc) : KP_STR_NULL;
    }
    return 0;
}

/* Indexes (into a table of n names) of the keys a resource asks for, in
 * table order; every key when the request's list is null. Unknown names are
 * left out, as Kafka does. @return the count, or -1 when out of memory. */
static int pick_keys(kh_req_t *req,
                     const kp_describe_configs_request_resource_t *rq,
                     const char *(*name_of)(int i),
                     int n,
                     int **out)
{
    int *idx = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(int));
    int m = 0;
    if (!idx)
        return -1;
    for (int i = 0; i < n; i++) {
        bool want = rq->n_configuration_keys < 0;
        for (int j = 0; !want && j < rq->n_configuration_keys; j++)
            want = kp_str_eq(rq->configuration_keys[j], kp_str_from_cstr(name_of(i)));
        if (want)
            idx[m++] = i;
    }
    *out = idx;
    return m;
}

static const char *topic_key_name(int i)
{
    return k_topic_keys[i].name;
}

static const char *broker_key_name(int i)
{
    return k_broker_keys[i].name;
}

/* The broker resource name must be empty (cluster default) or our node id.
 * @return NULL when it is, else the reason (arena). */
static const char *bad_broker_name(kh_req_t *req, kp_str_t name)
{
    char id[16], err[160];
    int32_t node = req->ks->ctx->node_id;
    snprintf(id, sizeof(id), "%" PRId32, node);
    if (name.len == 0 || kp_str_eq(name, kp_str_from_cstr(id)))
        return NULL;
    snprintf(err, sizeof(err),
             "Unexpected broker id, expected %" PRId32 " or empty string, but received %.*s", node,
             name.len > 0 ? (int)name.len : 0, name.len > 0 ? name.ptr : "");
    const char *m = adup(req, err);
    return m ? m : "bad broker id";
}

static int describe_resource(kh_req_t *req,
                             const meta_snap_t *snap,
                             const kp_describe_configs_request_t *q,
                             const kp_describe_configs_request_resource_t *rq,
                             kp_describe_configs_response_result_t *res)
{
    kp_describe_configs_response_result_init(res);
    res->resource_type = rq->resource_type;
    res->resource_name = rq->resource_name;
    res->error_message = KP_STR_NULL;
    const meta_topic_t *t = NULL;
    const char *bad = NULL;
    int *idx = NULL, n;
    if (rq->resource_type == KH_RES_TOPIC) {
        kp_str_t name = rq->resource_name;
        t = name.len >= 0 ? meta_snap_find(snap, name.ptr, (size_t)name.len) : NULL;
        if (!t) {
            char err[320];
            snprintf(err, sizeof(err), "Topic '%.*s' does not exist.",
                     name.len > 0 ? (int)name.len : 0, name.len > 0 ? name.ptr : "");
            res->error_code = KP_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            res->error_message = astr(req, err);
            return 0;
        }
        n = pick_keys(req, rq, topic_key_name, N_TOPIC_KEYS, &idx);
    } else if (rq->resource_type == KH_RES_BROKER) {
        if ((bad = bad_broker_name(req, rq->resource_name))) {
            res->error_code = KP_ERR_INVALID_REQUEST;
            res->error_message = kp_str_from_cstr(bad);
            return 0;
        }
        n = pick_keys(req, rq, broker_key_name, CFG__COUNT, &idx);
    } else {
        res->error_code = KP_ERR_INVALID_REQUEST;
        res->error_message = KP_STR_LIT("Unsupported resource type: Strata describes topics (2) "
                                        "and brokers (4)");
        return 0;
    }
    if (n < 0)
        return -1;
    res->configs = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*res->configs));
    if (!res->configs)
        return -1;
    for (int i = 0; i < n; i++) {
        centry_t e;
        if (t)
            topic_entry(req, &k_topic_keys[idx[i]], meta_topic_config(t, k_topic_keys[idx[i]].name),
                        &e);
        else
            broker_entry(req, (cfg_key_t)idx[i], &e);
        if (emit_entry(req, &e, q, &res->configs[i]) != 0)
            return -1;
        res->n_configs++;
    }
    return 0;
}

void kh_describe_configs(kh_req_t *req)
{
    kp_describe_configs_request_t *q = req->msg;
    kp_describe_configs_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    int n = q->n_resources > 0 ? q->n_resources : 0;
    if (!r)
        goto oom;
    kp_describe_configs_response_init(r);
    r->results = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->results));
    if (!r->results)
        goto oom;
    r->n_results = n;
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = describe_resource(req, snap, q, &q->resources[i], &r->results[i]);
    meta_snap_put(snap);
    if (rc != 0)
        goto oom;
    kh_respond(req, r);
    return;
oom:
    kh_fail_conn(req, "out of memory");
}

/* ---- Live application ---- */

typedef struct {
    kh_post_t post;
    char *topic; /* owned (malloc): outlives the request on slow shards */
} apply_msg_t;

static void apply_on_shard(rt_shard_t *sh, void *arg)
{
    apply_msg_t *m = arg;
    kh_shard_t *ks = kh_shard_of(sh);
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    const meta_topic_t *t = meta_snap_find(snap, m->topic, strlen(m->topic));
    if (t && !ks->closing) { /* a closing shard's registry is off limits */
        plog_config_t cfg;
        kh_topic_log_config(ks->ctx, t, &cfg);
        part_set_topic_config(ks->ps, m->topic, &cfg);
    }
    meta_snap_put(snap);
    free(m->topic);
    free(m);
}

/* That shard closed for good (shutdown): it has no partition to configure. */
static void apply_closed(rt_shard_t *sh, void *arg)
{
    apply_msg_t *m = arg;
    (void)sh;
    free(m->topic);
    free(m);
}

void kh_shard_apply_defaults(kh_shard_t *ks)
{
    if (ks->closing || ks->parts_closed)
        return;
    meta_snap_t *snap = meta_snap_get(ks->ctx->meta);
    for (int i = 0; i < snap->n_topics; i++) {
        plog_config_t cfg;
        kh_topic_log_config(ks->ctx, &snap->topics[i], &cfg);
        part_set_topic_config(ks->ps, snap->topics[i].name, &cfg);
    }
    meta_snap_put(snap);
}

void kh_config_apply_live(kh_shard_t *ks, const char *topic)
{
    int n = rt_shard_count(ks->ctx->rt);
    for (int s = 0; s < n; s++) {
        apply_msg_t *m = malloc(sizeof(*m));
        if (!m || !(m->topic = strdup(topic))) {
            free(m);
            ST_ERROR("kafka", "cannot apply new configs of topic=%s on shard=%d: out of memory",
                     topic, s);
            continue;
        }
        kh_post(ks, &m->post, s, apply_on_shard, apply_closed, m);
    }
}

/* ---- AlterConfigs and IncrementalAlterConfigs ---- */

typedef struct {
    kh_req_t *req;
    void *resp; /* the response struct (arena) */
} alter_state_t;

/* Where one resource's outcome goes: both responses have these fields. */
typedef struct {
    alter_state_t *st;
    int16_t *error_code;
    kp_str_t *error_message;
    const char *topic; /* arena */
} alter_op_t;

/* A metadata store call is back (or the handler drops its hold). */
static void alter_done(alter_state_t *st)
{
    if (kh_req_op_back(st->req))
        kh_respond(st->req, st->resp);
}

static void fail_op(alter_op_t *op, int16_t code, const char *msg)
{
    *op->error_code = code;
    *op->error_message = msg ? kp_str_from_cstr(msg) : KP_STR_NULL;
}

static void on_configs_set(void *arg, int status, const char *msg)
{
    alter_op_t *op = arg;
    kh_req_t *req = op->st->req;
    if (status != 0) {
        fail_op(op,
                status == ST_E_NOTFOUND ? KP_ERR_UNKNOWN_TOPIC_OR_PARTITION
                                        : KP_ERR_UNKNOWN_SERVER_ERROR,
                adup(req, msg ? msg : st_strerror(status)));
    } else {
        ST_INFO("kafka", "altered configs topic=%s", op->topic);
        kh_config_apply_live(req->ks, op->topic);
    }
    alter_done(op->st);
}

/* Store kvs for a topic resource (unless validate_only); the outcome lands
 * in op when the metadata store answers. */
static void
submit_topic(alter_op_t *op, const meta_kv_t *kvs, int n, bool replace_all, bool validate_only)
{
    kh_req_t *req = op->st->req;
    if (validate_only)
        return;
    alter_op_t *heap = kp_arena_alloc(&req->arena, sizeof(*heap));
    if (!heap) {
        fail_op(op, KP_ERR_UNKNOWN_SERVER_ERROR, "out of memory");
        return;
    }
    *heap = *op;
    kh_req_op_out(req);
    meta_set_configs(req->ks->ctx->meta, rt_shard_loop(req->ks->sh), op->topic, kvs, n, replace_all,
                     on_configs_set, heap);
}

/* Checks shared by both alters before any key: the topic exists, or the
 * broker resource names us. @return true when the resource may proceed. */
static bool check_resource(alter_op_t *op, const meta_snap_t *snap, int8_t type, kp_str_t name)
{
    kh_req_t *req = op->st->req;
    if (type == KH_RES_TOPIC) {
        if (name.len < 0 || !meta_snap_find(snap, name.ptr, (size_t)name.len)) {
            char err[320];
            snprintf(err, sizeof(err), "Topic '%.*s' does not exist.",
                     name.len > 0 ? (int)name.len : 0, name.len > 0 ? name.ptr : "");
            fail_op(op, KP_ERR_UNKNOWN_TOPIC_OR_PARTITION, adup(req, err));
            return false;
        }
        op->topic = kh_cstr(req, name);
        return true;
    }
    if (type == KH_RES_BROKER) {
        const char *bad = bad_broker_name(req, name);
        if (bad)
            fail_op(op, KP_ERR_INVALID_REQUEST, bad);
        return !bad;
    }
    fail_op(op, KP_ERR_INVALID_REQUEST,
            "Unsupported resource type: Strata configures topics (2) and brokers (4)");
    return false;
}

/* A broker resource with changes: refused, dynamic broker config is not
 * served (an empty change set succeeds). */
static void refuse_broker_change(alter_op_t *op, kp_str_t key)
{
    kh_req_t *req = op->st->req;
    char err[400];
    char *k = kh_cstr(req, key);
    cfg_key_t ck;
    if (k && cfg_lookup(k, &ck) != 0) {
        snprintf(err, sizeof(err), "Unknown broker config name: %s", k);
        fail_op(op, KP_ERR_INVALID_CONFIG, adup(req, err));
        return;
    }
    snprintf(err, sizeof(err),
             "Cannot update these configs dynamically: %s. Strata has no dynamic broker "
             "configuration: set it in the broker's configuration file (or --set) and restart",
             k ? k : "?");
    fail_op(op, KP_ERR_INVALID_REQUEST, adup(req, err));
}

static bool dup_key(kp_str_t name, const kp_str_t *names, int n)
{
    for (int i = 0; i < n; i++)
        if (kp_str_eq(names[i], name))
            return true;
    return false;
}

void kh_alter_configs(kh_req_t *req)
{
    kp_alter_configs_request_t *q = req->msg;
    kh_req_op_out(req); /* the hold: every failure below is kh_fail_held */
    kp_alter_configs_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    alter_state_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    int n = q->n_resources > 0 ? q->n_resources : 0;
    if (!r || !st)
        goto oom;
    kp_alter_configs_response_init(r);
    r->responses = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->responses));
    if (!r->responses)
        goto oom;
    r->n_responses = n;
    *st = (alter_state_t){req, r};
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < n; i++) {
        kp_alter_configs_request_resource_t *rq = &q->resources[i];
        kp_alter_configs_response_resource_response_t *res = &r->responses[i];
        kp_alter_configs_response_resource_response_init(res);
        res->resource_type = rq->resource_type;
        res->resource_name = rq->resource_name;
        res->error_message = KP_STR_NULL;
        alter_op_t op = {st, &res->error_code, &res->error_message, NULL};
        if (!check_resource(&op, snap, rq->resource_type, rq->resource_name))
            continue;
        int nc = rq->n_configs > 0 ? rq->n_configs : 0;
        if (rq->resource_type == KH_RES_BROKER) {
            if (nc > 0)
                refuse_broker_change(&op, rq->configs[0].name);
            continue;
        }
        meta_kv_t *kvs = kp_arena_calloc(&req->arena, (size_t)(nc ? nc : 1), sizeof(*kvs));
        kp_str_t *names = kp_arena_calloc(&req->arena, (size_t)(nc ? nc : 1), sizeof(*names));
        if (!kvs || !names)
            goto oom_snap;
        int16_t code = KP_ERR_NONE;
        for (int k = 0; code == KP_ERR_NONE && k < nc; k++) {
            const char *msg = NULL;
            if (dup_key(rq->configs[k].name, names, k)) {
                code = KP_ERR_INVALID_REQUEST;
                fail_op(&op, code, "Error due to duplicate config keys");
                break;
            }
            names[k] = rq->configs[k].name;
            code = check_kv(req, rq->configs[k].name, rq->configs[k].value, &kvs[k], &msg);
            if (code != KP_ERR_NONE)
                fail_op(&op, code, msg);
        }
        if (code == KP_ERR_NONE)
            submit_topic(&op, kvs, nc, true, q->validate_only);
    }
    meta_snap_put(snap);
    alter_done(st);
    return;
oom_snap:
    meta_snap_put(snap);
oom:
    kh_fail_held(req, "out of memory");
}

/* The new value of list key k after APPEND or SUBTRACT of the elements of
 * arg to/from cur. @return arena text, or NULL when out of memory. */
static char *list_op(kh_req_t *req, const char *cur, const char *arg, bool append)
{
    size_t cap = strlen(cur) + strlen(arg) + 2;
    char *out = kp_arena_alloc(&req->arena, cap);
    char *tmp = kp_arena_alloc(&req->arena, cap);
    if (!out || !tmp)
        return NULL;
    out[0] = 0;
    /* Walk "cur,arg" (append) or "cur" (subtract) once, element by element. */
    if (append && *arg)
        snprintf(tmp, cap, "%s,%s", cur, arg);
    else
        snprintf(tmp, cap, "%s", cur);
    for (char *save = NULL, *e = strtok_r(tmp, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*e))
            e++;
        size_t len = strlen(e);
        while (len && isspace((unsigned char)e[len - 1]))
            e[--len] = 0;
        if (!len)
            continue;
        bool drop = !append && in_choices(arg, e, len);
        /* No duplicates: an element already in out is skipped. */
        bool seen = in_choices(out, e, len);
        if (drop || seen)
            continue;
        if (*out)
            strcat(out, ",");
        strcat(out, e);
    }
    return out;
}

/* Turn one IncrementalAlterConfigs change of a topic into a meta kv.
 * @return KP_ERR_NONE or an error with *msg (arena). */
static int16_t incr_kv(kh_req_t *req,
                       const meta_topic_t *t,
                       const kp_incremental_alter_configs_request_alterable_config_t *c,
                       meta_kv_t *kv,
                       const char **msg)
{
    char err[400];
    char *key = kh_cstr(req, c->name);
    const tkey_t *k = key ? topic_key(key) : NULL;
    if (!key) {
        *msg = "out of memory";
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    }
    if (!k) {
        snprintf(err, sizeof(err), "Unknown topic config name: %s", key);
        *msg = adup(req, err);
        return KP_ERR_INVALID_CONFIG;
    }
    switch (c->config_operation) {
    case KH_OP_SET:
        return check_kv(req, c->name, c->value, kv, msg);
    case KH_OP_DELETE:
        kv->key = key;
        kv->value = NULL;
        return KP_ERR_NONE;
    case KH_OP_APPEND:
    case KH_OP_SUBTRACT: {
        bool append = c->config_operation == KH_OP_APPEND;
        if (k->type != KH_CT_LIST) {
            snprintf(err, sizeof(err), "Config value %s is not allowed for config key: %s",
                     append ? "append" : "subtract", key);
            *msg = adup(req, err);
            return KP_ERR_INVALID_CONFIG;
        }
        centry_t e;
        topic_entry(req, k, meta_topic_config(t, key), &e);
        const char *arg = trimmed(req, c->value);
        char *v = list_op(req, e.syn[0].value ? e.syn[0].value : "", arg ? arg : "", append);
        if (!v) {
            *msg = "out of memory";
            return KP_ERR_UNKNOWN_SERVER_ERROR;
        }
        return check_kv(req, c->name, kp_str_from_cstr(v), kv, msg);
    }
    default:
        snprintf(err, sizeof(err), "Unknown config operation %d for config key: %s",
                 c->config_operation, key);
        *msg = adup(req, err);
        return KP_ERR_INVALID_REQUEST;
    }
}

void kh_incremental_alter_configs(kh_req_t *req)
{
    kp_incremental_alter_configs_request_t *q = req->msg;
    kh_req_op_out(req); /* the hold: every failure below is kh_fail_held */
    kp_incremental_alter_configs_response_t *r = kp_arena_alloc(&req->arena, sizeof(*r));
    alter_state_t *st = kp_arena_alloc(&req->arena, sizeof(*st));
    int n = q->n_resources > 0 ? q->n_resources : 0;
    if (!r || !st)
        goto oom;
    kp_incremental_alter_configs_response_init(r);
    r->responses = kp_arena_calloc(&req->arena, (size_t)(n ? n : 1), sizeof(*r->responses));
    if (!r->responses)
        goto oom;
    r->n_responses = n;
    *st = (alter_state_t){req, r};
    meta_snap_t *snap = meta_snap_get(req->ks->ctx->meta);
    for (int i = 0; i < n; i++) {
        kp_incremental_alter_configs_request_alter_configs_resource_t *rq = &q->resources[i];
        kp_incremental_alter_configs_response_alter_configs_resource_response_t *res =
            &r->responses[i];
        kp_incremental_alter_configs_response_alter_configs_resource_response_init(res);
        res->resource_type = rq->resource_type;
        res->resource_name = rq->resource_name;
        res->error_message = KP_STR_NULL;
        alter_op_t op = {st, &res->error_code, &res->error_message, NULL};
        if (!check_resource(&op, snap, rq->resource_type, rq->resource_name))
            continue;
        int nc = rq->n_configs > 0 ? rq->n_configs : 0;
        if (rq->resource_type == KH_RES_BROKER) {
            if (nc > 0)
                refuse_broker_change(&op, rq->configs[0].name);
            continue;
        }
        const meta_topic_t *t =
            meta_snap_find(snap, rq->resource_name.ptr, (size_t)rq->resource_name.len);
        meta_kv_t *kvs = kp_arena_calloc(&req->arena, (size_t)(nc ? nc : 1), sizeof(*kvs));
        kp_str_t *names = kp_arena_calloc(&req->arena, (size_t)(nc ? nc : 1), sizeof(*names));
        if (!kvs || !names)
            goto oom_snap;
        int16_t code = KP_ERR_NONE;
        for (int k = 0; code == KP_ERR_NONE && k < nc; k++) {
            const char *msg = NULL;
            if (dup_key(rq->configs[k].name, names, k)) {
                code = KP_ERR_INVALID_REQUEST;
                fail_op(&op, code, "Error due to duplicate config keys");
                break;
            }
            names[k] = rq->configs[k].name;
            code = incr_kv(req, t, &rq->configs[k], &kvs[k], &msg);
            if (code != KP_ERR_NONE)
                fail_op(&op, code, msg);
        }
        if (code == KP_ERR_NONE && nc > 0)
            submit_topic(&op, kvs, nc, false, q->validate_only);
    }
    meta_snap_put(snap);
    alter_done(st);
    return;
oom_snap:
    meta_snap_put(snap);
oom:
    kh_fail_held(req, "out of memory");
}

/* ---- CreateTopics support ---- */

int16_t kh_config_check_create(kh_req_t *req,
                               const kp_create_topics_request_creatable_topic_t *qt,
                               meta_kv_t **kvs_out,
                               int *n_out,
                               const char **msg_out)
{
    int n = qt->n_configs > 0 ? qt->n_configs : 0;
    *kvs_out = NULL;
    *n_out = 0;
    *msg_out = NULL;
    if (n == 0)
        return KP_ERR_NONE;
    meta_kv_t *kvs = kp_arena_calloc(&req->arena, (size_t)n, sizeof(*kvs));
    if (!kvs) {
        *msg_out = "out of memory";
        return KP_ERR_UNKNOWN_SERVER_ERROR;
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            if (kp_str_eq(qt->configs[j].name, qt->configs[i].name)) {
                *msg_out = "Error due to duplicate config keys";
                return KP_ERR_INVALID_CONFIG;
            }
        }
        int16_t code = check_kv(req, qt->configs[i].name, qt->configs[i].value, &kvs[i], msg_out);
        if (code != KP_ERR_NONE)
            return code;
    }
    *kvs_out = kvs;
    *n_out = n;
    return KP_ERR_NONE;
}

void kh_config_fill_created(kh_req_t *req,
                            const meta_kv_t *kvs,
                            int n,
                            kp_create_topics_response_creatable_topic_result_t *res)
{
    if (req->hdr.request_api_version < 5)
        return; /* configs are returned from v5 */
    res->configs = kp_arena_calloc(&req->arena, N_TOPIC_KEYS, sizeof(*res->configs));
    if (!res->configs) {
        res->topic_config_error_code = KP_ERR_UNKNOWN_SERVER_ERROR;
        return;
    }
    for (int i = 0; i < N_TOPIC_KEYS; i++) {
        const tkey_t *k = &k_topic_keys[i];
        const char *override = NULL;
        for (int j = 0; j < n; j++)
            if (!strcmp(kvs[j].key, k->name))
                override = kvs[j].value;
        centry_t e;
        topic_entry(req, k, override, &e);
        kp_create_topics_response_creatable_topic_configs_t *c = &res->configs[i];
        kp_create_topics_response_creatable_topic_configs_init(c);
        c->name = kp_str_from_cstr(e.name);
        c->value = kp_str_from_cstr(e.syn[0].value);
        c->read_only = false;
        c->config_source = e.syn[0].source;
        c->is_sensitive = false;
    }
    res->n_configs = N_TOPIC_KEYS;
}
