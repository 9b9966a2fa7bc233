/* live_fuzz.c - protocol-aware fuzzer of a live stratad (tests only).
 * Data path: none in the broker; this is a Kafka client that attacks one. It asks the broker
 * which APIs and versions it serves (ApiVersions), creates a few topics and produces to them,
 * then sends requests of every served (api, version) over many connections at once: each
 * request is filled by the generated filler (tests/unit/kp_fill.c), shaped so that it names
 * real topics, partitions, groups, configs and valid record batches (often with hostile inner
 * fields under a correct CRC), encoded with the generated codec (kafka/kp_msg.c), then
 * mutated on the wire (counts, lengths, varints, strings, truncation, duplicated spans, wrong
 * header versions, lying frame sizes, random api keys). Responses to untouched requests on
 * untouched connections must decode with the generated response decoder. A closed connection
 * is reopened. After the run a fresh connection must still get ApiVersions and Metadata.
 *
 * Determinism: connection c generates its frames from its own generator seeded by (seed, c),
 * independent of timing and responses, so frame i of connection c is the same in every run
 * with the same seed against the same build (only topic ids and producer ids differ).
 * --replay and --dump regenerate exactly those frames for minimising a crash.
 *
 * Usage: live_fuzz --port P [--seed S] [--conns N] [--requests M] [--seconds T]
 *                  [--inflight K] [--max-parts N] [--regress FILE] [--sasl-port P]
 *                  [--replay C:A-B]
 *                  [--dump C:I] [--no-setup] [--check-only] [-v]
 * Exit status: 0 clean; 1 the broker stopped answering (or died); 2 usage or setup failure;
 * 3 a response to a well-formed request did not decode, or none came while later ones did. */
#include "core/st_crc32c.h"
#include "kafka/kp.h"
#include "tests/support/tbatch.h"
#include "tests/unit/kp_fill.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

/* ---- Options and global state ---- */

static struct {
    const char *host;
    int port;
    uint64_t seed;
    int conns;
    uint64_t requests;
    int seconds;
    int inflight;
    int max_parts;
    int stall_ms;
    int sasl_port;  /* a SASL_PLAINTEXT listener where some connections log in, 0 = none */
    int broker_pid; /* the broker's process id, for its CPU time (hold: regressions) */
    const char *regress;
    int replay_conn, replay_from, replay_to; /* replay_conn -1 = off */
    int dump_conn, dump_idx;                 /* dump_conn -1 = off */
    bool setup;
    bool check_only;
    bool verbose;
} opt = {.host = "127.0.0.1",
         .conns = 16,
         .requests = 20000,
         .seconds = 30,
         .inflight = 8,
         .max_parts = 2000,
         .stall_ms = 3000,
         .replay_conn = -1,
         .dump_conn = -1,
         .setup = true};

/* Versions the broker serves (from ApiVersions), intersected with what we generate. */
static struct {
    int16_t key, min, max;
} g_served[64];
static int g_n_served;

/* The topics the setup creates and fills; ids come from Metadata. */
typedef struct ftopic {
    const char *name;
    int parts;
    kp_uuid_t id;
} ftopic_t;
static ftopic_t g_topics[] = {{"fz-one", 1, {{0}}}, {"fz-four", 4, {{0}}}, {"fz-eight", 8, {{0}}}};
#define N_TOPICS ((int)(sizeof(g_topics) / sizeof(g_topics[0])))
static int64_t g_pid = -1; /* an idempotent producer id from InitProducerId */
static int16_t g_epoch = -1;
static const int64_t BASE_TS = 1700000000000LL;

static uint64_t g_bad_responses, g_missing_responses;

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "live_fuzz: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Deterministic generator ---- */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t below(rng_t *r, uint32_t n)
{
    return n ? (uint32_t)(rnd(r) % n) : 0;
}

static bool chance(rng_t *r, int pct)
{
    return (int)below(r, 100) < pct;
}

static int32_t range32(rng_t *r, int32_t lo, int32_t hi)
{
    return lo + (int32_t)below(r, (uint32_t)(hi - lo + 1));
}

/* ---- Value pools ---- */

static int64_t pick_i64(rng_t *r)
{
    static const int64_t v[] = {0,         1,         -1,        -2,        -3,     100,
                                INT64_MAX, INT64_MIN, INT32_MAX, INT32_MIN, 1 << 20};
    if (chance(r, 50))
        return v[below(r, sizeof(v) / sizeof(v[0]))];
    return (int64_t)rnd(r);
}

static int32_t pick_i32(rng_t *r)
{
    static const int32_t v[] = {0, 1, -1, -2, 2, 100, 0x7fff, 0x8000, INT32_MAX, INT32_MIN};
    if (chance(r, 70))
        return v[below(r, sizeof(v) / sizeof(v[0]))];
    return (int32_t)rnd(r);
}

static char *adup(kp_arena_t *a, const char *s, size_t n)
{
    char *p = kp_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static kp_str_t astr(kp_arena_t *a, const char *s)
{
    size_t n = strlen(s);
    return (kp_str_t){adup(a, s, n), (int32_t)n};
}

/* A string of n bytes of c (or random bytes when c is 0). */
static kp_str_t fill_str(rng_t *r, kp_arena_t *a, size_t n, char c)
{
    char *p = kp_arena_alloc(a, n + 1);
    if (!p)
        return KP_STR_LIT("");
    for (size_t i = 0; i < n; i++)
        p[i] = c ? c : (char)below(r, 256);
    return (kp_str_t){p, (int32_t)n};
}

/* A topic name: mostly one of ours, sometimes a temporary, unknown, empty, huge or invalid. */
static kp_str_t pick_topic(rng_t *r, kp_arena_t *a, int *parts)
{
    uint32_t k = below(r, 100);
    *parts = 4;
    if (k < 80) {
        ftopic_t *t = &g_topics[below(r, N_TOPICS)];
        *parts = t->parts;
        return kp_str_from_cstr(t->name);
    }
    if (k < 88) {
        char b[16];
        snprintf(b, sizeof(b), "fz-tmp-%u", below(r, 4));
        return astr(a, b);
    }
    if (k < 91)
        return KP_STR_LIT("nope");
    if (k < 93)
        return KP_STR_LIT("");
    if (k < 95)
        return fill_str(r, a, 249 + below(r, 3), 'a');
    if (k < 97)
        return fill_str(r, a, 1 + below(r, 40), 0);
    if (k < 98)
        return KP_STR_LIT("..");
    if (k < 99)
        return fill_str(r, a, 3000 + below(r, 30000), 'x');
    return KP_STR_NULL;
}

static kp_str_t pick_topic_nn(rng_t *r, kp_arena_t *a, int *parts)
{
    kp_str_t s = pick_topic(r, a, parts);
    return s.len < 0 ? KP_STR_LIT("") : s;
}

static int32_t pick_part(rng_t *r, int parts)
{
    if (chance(r, 88))
        return (int32_t)below(r, (uint32_t)parts);
    static const int32_t v[] = {-1, INT32_MAX, INT32_MIN, 8, 9, 1000, 65536};
    return v[below(r, sizeof(v) / sizeof(v[0]))];
}

static int64_t pick_offset(rng_t *r)
{
    if (chance(r, 70))
        return (int64_t)below(r, 400);
    return pick_i64(r);
}

/* An element count: mostly 1-3, sometimes 0, sometimes 100 to --max-parts spread evenly over
 * the decades (huge lists with tiny bodies). */
static int32_t pick_count(rng_t *r)
{
    if (chance(r, 3)) {
        double hi = log10((double)opt.max_parts);
        double e = 2.0 + (hi - 2.0) * (double)below(r, 1000) / 1000.0;
        int32_t n = (int32_t)pow(10.0, e);
        return n < 100 ? 100 : n > opt.max_parts ? opt.max_parts : n;
    }
    if (chance(r, 10))
        return 0;
    return range32(r, 1, 3);
}

/* The index (0-3) of the last group pick_group() chose, -1 for an odd name. */
static int g_last_group = -1;

static kp_str_t pick_group(rng_t *r, kp_arena_t *a)
{
    g_last_group = -1;
    if (chance(r, 90)) {
        char b[16];
        g_last_group = (int)below(r, 4);
        snprintf(b, sizeof(b), "fzg%d", g_last_group);
        return astr(a, b);
    }
    if (chance(r, 50))
        return KP_STR_LIT("");
    return fill_str(r, a, 1 + below(r, 400), 'g');
}

static const char *const k_cfg_names[] = {
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.insync.replicas",
    "flush.messages",
    "flush.ms",
    "write.caching",
    "compression.type",
    "unknown.key",
    "",
    "segment.index.bytes",
    "local.retention.ms",
    "local.retention.bytes",
    "remote.storage.enable",
    "num.partitions",
    "log.retention.ms",
    "message.timestamp.difference.max.ms",
};
static const char *const k_cfg_values[] = {
    "0",
    "1",
    "-1",
    "-2",
    "100",
    "1048576",
    "9223372036854775807",
    "99999999999999999999",
    "abc",
    "",
    "delete",
    "compact",
    "LogAppendTime",
    "CreateTime",
    "true",
    "false",
    "gzip",
    "zstd",
    "delete,compact",
    "3600000",
    "2147483648",
};
#define NELEM(x) (sizeof(x) / sizeof((x)[0]))

static kp_str_t pick_cfg_name(rng_t *r)
{
    return kp_str_from_cstr(k_cfg_names[below(r, NELEM(k_cfg_names))]);
}

static kp_str_t pick_cfg_value(rng_t *r, kp_arena_t *a)
{
    if (chance(r, 5))
        return KP_STR_NULL;
    if (chance(r, 5))
        return fill_str(r, a, below(r, 5000), '9');
    return kp_str_from_cstr(k_cfg_values[below(r, NELEM(k_cfg_values))]);
}

/* ---- Record batches ---- */

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void batch_fix_crc(uint8_t *b, size_t len)
{
    if (len >= 61)
        put_be(b + 17, st_crc32c(0, b + 21, len - 21), 4);
}

static const uint8_t k_huge_varints[][10] = {
    {0xff, 0xff, 0xff, 0xff, 0x0f},
    {0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
    {0xfe, 0xff, 0xff, 0xff, 0x0f},
    {0x01},
    {0x00},
    {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
};

/* Compress the records section of an uncompressed batch (gzip or zstd) in place of it. */
static uint8_t *batch_compress(rng_t *r, uint8_t *b, size_t *len)
{
    size_t rl = *len - 61;
    size_t cap = rl + 1024;
    uint8_t *o = malloc(61 + cap);
    memcpy(o, b, 61);
    size_t cl = 0;
    int codec;
    if (chance(r, 50)) {
        codec = 1;
        z_stream z;
        memset(&z, 0, sizeof(z));
        if (deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(o);
            return b;
        }
        z.next_in = b + 61;
        z.avail_in = (uInt)rl;
        z.next_out = o + 61;
        z.avail_out = (uInt)cap;
        int rc = deflate(&z, Z_FINISH);
        cl = z.total_out;
        deflateEnd(&z);
        if (rc != Z_STREAM_END) {
            free(o);
            return b;
        }
    } else {
        codec = 4;
        size_t n = ZSTD_compress(o + 61, cap, b + 61, rl, 1);
        if (ZSTD_isError(n)) {
            free(o);
            return b;
        }
        cl = n;
    }
    free(b);
    o[22] = (uint8_t)((o[22] & ~7) | codec);
    *len = 61 + cl;
    put_be(o + 8, *len - 12, 4);
    batch_fix_crc(o, *len);
    return o;
}

/* One record batch v2: valid, or with hostile inner fields under a (usually) correct CRC. */
static uint8_t *make_batch(rng_t *r, size_t *len, bool idem, int32_t *seq)
{
    int n = chance(r, 5) ? range32(r, 100, 2000) : range32(r, 1, 20);
    size_t vlen = chance(r, 5) ? below(r, 20000) : below(r, 200);
    uint8_t *b = tbatch_build(n, vlen, rnd(r), BASE_TS + (int64_t)below(r, 100000), len);
    if (idem && g_pid >= 0) {
        put_be(b + 43, (uint64_t)g_pid, 8);
        put_be(b + 51, (uint64_t)(uint16_t)g_epoch, 2);
        put_be(b + 53, (uint64_t)(uint32_t)*seq, 4);
        *seq += n;
    }
    bool hostile = chance(r, 40);
    if (hostile) {
        int ops = 1 + (int)below(r, 3);
        for (int i = 0; i < ops; i++) {
            switch (below(r, 12)) {
            case 0: /* attributes: codec, timestamp type, transactional, control */
                b[22] = (uint8_t)below(r, 256);
                if (chance(r, 50))
                    b[21] = (uint8_t)below(r, 256);
                break;
            case 1: /* lastOffsetDelta */
                put_be(b + 23, (uint64_t)(uint32_t)pick_i32(r), 4);
                break;
            case 2: /* base / max timestamp */
                put_be(b + (chance(r, 50) ? 27 : 35), (uint64_t)pick_i64(r), 8);
                break;
            case 3: /* producer id, epoch, sequence */
                put_be(b + 43, (uint64_t)pick_i64(r), 8);
                put_be(b + 51, (uint64_t)(uint16_t)pick_i32(r), 2);
                put_be(b + 53, (uint64_t)(uint32_t)pick_i32(r), 4);
                break;
            case 4: /* records count */
                put_be(b + 57, (uint64_t)(uint32_t)pick_i32(r), 4);
                break;
            case 5: /* magic */
                b[16] = (uint8_t)below(r, 4);
                break;
            case 6: { /* a huge/odd varint inside the records */
                const uint8_t *v = k_huge_varints[below(r, NELEM(k_huge_varints))];
                size_t at = 61 + below(r, (uint32_t)(*len - 61));
                for (size_t j = 0; j < 10 && at + j < *len; j++)
                    b[at + j] = v[j];
                break;
            }
            case 7: /* random bytes in the records */
                for (int j = 0; j < 4; j++)
                    b[61 + below(r, (uint32_t)(*len - 61))] = (uint8_t)rnd(r);
                break;
            case 8: /* truncated records */
                *len = 61 + below(r, (uint32_t)(*len - 61));
                put_be(b + 8, *len - 12, 4);
                break;
            case 9: /* batchLength lies (outside the CRC) */
                put_be(b + 8, (uint64_t)(uint32_t)pick_i32(r), 4);
                break;
            case 10: /* baseOffset, partitionLeaderEpoch */
                put_be(b + 0, (uint64_t)pick_i64(r), 8);
                put_be(b + 12, (uint64_t)(uint32_t)pick_i32(r), 4);
                break;
            default: /* first record's length varint */
                b[61] = k_huge_varints[below(r, NELEM(k_huge_varints))][0];
                break;
            }
        }
    }
    /* Compressed: valid compressed data whose records may be hostile (ListOffsets reads them). */
    if (chance(r, 20) && *len > 61)
        b = batch_compress(r, b, len);
    else if (!hostile || chance(r, 90))
        batch_fix_crc(b, *len);
    return b;
}

/* Records for one partition: null, empty, junk, or one to three batches. */
static kp_bytes_t make_records(rng_t *r, kp_arena_t *a, bool tiny, int32_t *seq)
{
    uint32_t k = below(r, 100);
    if (tiny || k < 4)
        return chance(r, 50) ? KP_BYTES_NULL : (kp_bytes_t){NULL, 0};
    if (k < 7) {
        kp_str_t s = fill_str(r, a, below(r, 100), 0);
        return (kp_bytes_t){(const uint8_t *)s.ptr, s.len};
    }
    int nb = chance(r, 85) ? 1 : range32(r, 2, 3);
    bool idem = chance(r, 20);
    uint8_t *out = NULL;
    size_t olen = 0;
    for (int i = 0; i < nb; i++) {
        size_t bl;
        uint8_t *b = make_batch(r, &bl, idem, seq);
        out = realloc(out, olen + bl);
        memcpy(out + olen, b, bl);
        olen += bl;
        free(b);
    }
    if (chance(r, 5) && olen > 1) /* a partial trailing batch */
        olen -= 1 + below(r, (uint32_t)(olen > 60 ? 60 : olen - 1));
    uint8_t *p = kp_arena_alloc(a, olen ? olen : 1);
    if (p)
        memcpy(p, out, olen);
    free(out);
    return p ? (kp_bytes_t){p, (int32_t)olen} : (kp_bytes_t){NULL, 0};
}

/* ---- Request shapers: real names, partitions, groups and records ---- */

typedef struct gen {
    rng_t rng;
    int mutate_pct; /* hostile connections mutate most frames, the others few */
    kp_arena_t arena;
    int32_t corr;
    int32_t seq; /* idempotent sequence of this connection */
    uint64_t idx;
    uint8_t *prev; /* the previous frame, for splicing */
    size_t prev_len;
    /* Learnt from responses (they change values, never what the generator draws): the member
     * id and generation of this connection in each group fzg0-3, and a fetch session. */
    char member[4][128];
    int32_t generation[4];
    int32_t fetch_session, fetch_epoch;
    int group; /* the group of the frame being generated, -1 when none */
} gen_t;

/* The member id this connection holds in the group last picked, or "" (learnt, see gen_t). */
static kp_str_t my_member(gen_t *g, kp_arena_t *a)
{
    g->group = g_last_group;
    return g_last_group >= 0 ? astr(a, g->member[g_last_group]) : KP_STR_LIT("");
}

static int32_t my_generation(gen_t *g)
{
    return g_last_group >= 0 && g->member[g_last_group][0] ? g->generation[g_last_group] : -1;
}

#define ALLOC(a, n, T) ((T *)kp_arena_calloc((a), (size_t)((n) > 0 ? (n) : 1), sizeof(T)))

/* An array of n zeroed elements in the arena (the fuzzer stops when out of memory); *count = n. */
static void *alist(kp_arena_t *a, int n, size_t size, int32_t *count)
{
    void *p = kp_arena_calloc(a, (size_t)(n > 0 ? n : 1), size);
    if (!p)
        die(2, "out of memory in the request arena");
    *count = n;
    return p;
}

static void shape_produce(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_produce_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    static const int16_t acks[] = {1, 1, 1, -1, -1, 0, 2, -2};
    m->acks = acks[below(r, NELEM(acks))];
    if (m->acks == 0)
        *expect = false;
    m->timeout_ms = chance(r, 90) ? range32(r, 0, 1000) : pick_i32(r);
    if (v >= 3)
        m->transactional_id = chance(r, 95) ? KP_STR_NULL : KP_STR_LIT("fz-tx");
    int nt = chance(r, 80) ? 1 : range32(r, 0, 3);
    m->topic_data = alist(a, nt, sizeof(*m->topic_data), &m->n_topic_data);
    for (int i = 0; i < m->n_topic_data; i++) {
        kp_produce_request_topic_produce_data_t *t = &m->topic_data[i];
        int parts;
        t->name = pick_topic_nn(r, a, &parts);
        int np = pick_count(r);
        bool big = np >= 100;
        bool dup = chance(r, 5);
        t->partition_data = alist(a, np, sizeof(*t->partition_data), &t->n_partition_data);
        int32_t p0 = pick_part(r, parts);
        for (int j = 0; j < np; j++) {
            t->partition_data[j].index = dup ? p0 : big ? j : pick_part(r, parts);
            t->partition_data[j].records = make_records(r, a, big && j > 0, &g->seq);
        }
    }
}

static void shape_fetch(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_fetch_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->replica_id = chance(r, 95) ? -1 : pick_i32(r);
    m->max_wait_ms = chance(r, 95) ? range32(r, 0, 100) : range32(r, 0, 1000);
    m->min_bytes = chance(r, 80) ? range32(r, 0, 1) : pick_i32(r);
    static const int32_t mb[] = {0, 1, 100, 1 << 20, 50 << 20, INT32_MAX, -1, 4096};
    if (v >= 3)
        m->max_bytes = mb[below(r, NELEM(mb))];
    if (v >= 4)
        m->isolation_level = (int8_t)(chance(r, 90) ? (int)below(r, 2) : (int)(int8_t)rnd(r));
    if (v >= 7) {
        uint32_t k = below(r, 10);
        if (k < 4 && g->fetch_session != 0) { /* continue the session (incremental fetch) */
            m->session_id = g->fetch_session;
            m->session_epoch = ++g->fetch_epoch;
        } else if (k < 7) { /* open a new session, or none */
            m->session_id = 0;
            m->session_epoch = chance(r, 50) ? 0 : -1;
        } else {
            m->session_id = chance(r, 50) ? g->fetch_session : pick_i32(r);
            m->session_epoch = chance(r, 50) ? g->fetch_epoch : pick_i32(r);
        }
    }
    int nt = chance(r, 70) ? 1 : range32(r, 0, 4);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        kp_fetch_request_topic_t *t = &m->topics[i];
        int parts;
        kp_str_t name = pick_topic(r, a, &parts);
        if (v <= 12) {
            t->topic = name.len < 0 ? KP_STR_LIT("") : name;
        } else {
            uint32_t k = below(r, 10);
            for (int j = 0; j < N_TOPICS; j++)
                if (name.len >= 0 && kp_str_eq(name, kp_str_from_cstr(g_topics[j].name)))
                    t->topic_id = g_topics[j].id;
            if (k == 0)
                memset(&t->topic_id, 0, sizeof(t->topic_id));
            else if (k == 1)
                for (int j = 0; j < 16; j++)
                    t->topic_id.b[j] = (uint8_t)rnd(r);
        }
        int np = pick_count(r);
        bool dup = chance(r, 5);
        t->partitions = alist(a, np, sizeof(*t->partitions), &t->n_partitions);
        int32_t p0 = pick_part(r, parts);
        for (int j = 0; j < np; j++) {
            kp_fetch_request_partition_t *p = &t->partitions[j];
            kp_fetch_request_partition_init(p);
            p->partition = dup ? p0 : np >= 100 ? j : pick_part(r, parts);
            p->fetch_offset = pick_offset(r);
            if (v >= 9)
                p->current_leader_epoch = chance(r, 80) ? -1 : pick_i32(r);
            if (v >= 12)
                p->last_fetched_epoch = chance(r, 80) ? -1 : pick_i32(r);
            static const int32_t pmb[] = {0, 1, 1000, 1 << 20, 65536, -1, 200 << 20, INT32_MAX};
            p->partition_max_bytes = pmb[below(r, NELEM(pmb))];
        }
    }
    if (v >= 7 && chance(r, 10)) {
        m->forgotten_topics_data = ALLOC(a, 1, kp_fetch_request_forgotten_topic_t);
        if (m->forgotten_topics_data) {
            m->n_forgotten_topics_data = 1;
            int parts;
            kp_str_t name = pick_topic(r, a, &parts);
            m->forgotten_topics_data[0].topic = v <= 12 && name.len >= 0 ? name : KP_STR_LIT("");
            m->forgotten_topics_data[0].partitions = ALLOC(a, 2, int32_t);
            if (m->forgotten_topics_data[0].partitions) {
                m->forgotten_topics_data[0].n_partitions = 2;
                m->forgotten_topics_data[0].partitions[0] = pick_part(r, parts);
                m->forgotten_topics_data[0].partitions[1] = pick_part(r, parts);
            }
        }
    }
}

static void shape_list_offsets(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_list_offsets_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->replica_id = chance(r, 95) ? -1 : pick_i32(r);
    if (v >= 2)
        m->isolation_level = (int8_t)(chance(r, 90) ? (int)below(r, 2) : (int)(int8_t)rnd(r));
    int nt = chance(r, 80) ? 1 : range32(r, 0, 3);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        kp_list_offsets_request_topic_t *t = &m->topics[i];
        int parts;
        t->name = pick_topic_nn(r, a, &parts);
        int np = pick_count(r);
        t->partitions = alist(a, np, sizeof(*t->partitions), &t->n_partitions);
        for (int j = 0; j < np; j++) {
            kp_list_offsets_request_partition_t *p = &t->partitions[j];
            kp_list_offsets_request_partition_init(p);
            p->partition_index = np >= 100 ? j : pick_part(r, parts);
            static const int64_t ts[] = {-1, -2, -3, -4, -5, 0, INT64_MIN, INT64_MAX};
            p->timestamp = chance(r, 50) ? ts[below(r, NELEM(ts))]
                                         : BASE_TS + (int64_t)below(r, 120000) - 10000;
            if (v >= 4)
                p->current_leader_epoch = chance(r, 80) ? -1 : pick_i32(r);
            if (v == 0)
                p->max_num_offsets = chance(r, 80) ? range32(r, 1, 10) : pick_i32(r);
        }
    }
}

static void shape_metadata(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_metadata_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    if (v >= 4)
        m->allow_auto_topic_creation = chance(r, 10);
    if (v >= 1 && chance(r, 30)) {
        m->topics = NULL;
        m->n_topics = -1;
        return;
    }
    int nt = chance(r, 3) ? range32(r, 100, opt.max_parts) : range32(r, 0, 4);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        int parts;
        m->topics[i].name = pick_topic(r, a, &parts);
        if (m->topics[i].name.len < 0 && v < 10)
            m->topics[i].name = KP_STR_LIT("");
        if (v >= 10 && chance(r, 10))
            for (int j = 0; j < 16; j++)
                m->topics[i].topic_id.b[j] = (uint8_t)rnd(r);
    }
}

static void shape_offset_commit(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_offset_commit_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->group_id = pick_group(r, a);
    kp_str_t me = my_member(g, a);
    if (v >= 1) {
        uint32_t k = below(r, 10);
        m->generation_id_or_member_epoch = k < 4 ? my_generation(g) : k < 8 ? -1 : pick_i32(r);
        m->member_id = k < 4 ? me : k < 8 ? KP_STR_LIT("") : fill_str(r, a, below(r, 40), 'm');
    }
    if (v >= 7)
        m->group_instance_id = KP_STR_NULL;
    int nt = chance(r, 80) ? 1 : range32(r, 0, 3);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        kp_offset_commit_request_topic_t *t = &m->topics[i];
        int parts;
        t->name = pick_topic_nn(r, a, &parts);
        int np = pick_count(r);
        t->partitions = alist(a, np, sizeof(*t->partitions), &t->n_partitions);
        for (int j = 0; j < np; j++) {
            kp_offset_commit_request_partition_t *p = &t->partitions[j];
            kp_offset_commit_request_partition_init(p);
            p->partition_index = np >= 100 ? j : pick_part(r, parts);
            p->committed_offset = pick_offset(r);
            p->committed_metadata = chance(r, 80)   ? KP_STR_LIT("")
                                    : chance(r, 50) ? KP_STR_NULL
                                                    : fill_str(r, a, below(r, 8000), 'M');
        }
    }
}

static void shape_offset_fetch(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_offset_fetch_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    int nt = chance(r, 20) ? -1 : range32(r, 0, 3);
    if (v < 2 && nt < 0)
        nt = 1;
    if (v <= 7) {
        m->group_id = pick_group(r, a);
        if (nt < 0) {
            m->topics = NULL;
            m->n_topics = -1;
            return;
        }
        m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
        for (int i = 0; i < m->n_topics; i++) {
            int parts;
            m->topics[i].name = pick_topic_nn(r, a, &parts);
            int np = pick_count(r);
            m->topics[i].partition_indexes = alist(a, np, sizeof(*m->topics[i].partition_indexes),
                                                   &m->topics[i].n_partition_indexes);
            for (int j = 0; j < np; j++)
                m->topics[i].partition_indexes[j] = np >= 100 ? j : pick_part(r, parts);
        }
        return;
    }
    int ng = range32(r, 1, 3);
    m->groups = alist(a, ng, sizeof(*m->groups), &m->n_groups);
    for (int k = 0; k < m->n_groups; k++) {
        kp_offset_fetch_request_group_t *gr = &m->groups[k];
        kp_offset_fetch_request_group_init(gr);
        gr->group_id = pick_group(r, a);
        if (nt < 0 || chance(r, 20)) {
            gr->topics = NULL;
            gr->n_topics = -1;
            continue;
        }
        gr->topics = alist(a, nt, sizeof(*gr->topics), &gr->n_topics);
        for (int i = 0; i < gr->n_topics; i++) {
            int parts;
            gr->topics[i].name = pick_topic_nn(r, a, &parts);
            int np = pick_count(r);
            gr->topics[i].partition_indexes = alist(a, np, sizeof(*gr->topics[i].partition_indexes),
                                                    &gr->topics[i].n_partition_indexes);
            for (int j = 0; j < np; j++)
                gr->topics[i].partition_indexes[j] = pick_part(r, parts);
        }
    }
}

static void shape_delete_records(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_delete_records_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->timeout_ms = range32(r, 0, 1000);
    int nt = chance(r, 80) ? 1 : range32(r, 0, 3);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        kp_delete_records_request_topic_t *t = &m->topics[i];
        int parts;
        t->name = pick_topic_nn(r, a, &parts);
        int np = pick_count(r);
        bool dup = chance(r, 5);
        t->partitions = alist(a, np, sizeof(*t->partitions), &t->n_partitions);
        int32_t p0 = pick_part(r, parts);
        for (int j = 0; j < np; j++) {
            t->partitions[j].partition_index = dup ? p0 : np >= 100 ? j : pick_part(r, parts);
            /* Mostly small offsets: deleting everything would make the other requests shallow. */
            t->partitions[j].offset = chance(r, 80) ? (int64_t)below(r, 50) : pick_i64(r);
        }
    }
}

static void shape_offset_delete(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_offset_delete_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->group_id = pick_group(r, a);
    int nt = range32(r, 0, 2);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        int parts;
        m->topics[i].name = pick_topic_nn(r, a, &parts);
        int np = pick_count(r);
        m->topics[i].partitions =
            alist(a, np, sizeof(*m->topics[i].partitions), &m->topics[i].n_partitions);
        for (int j = 0; j < np; j++)
            m->topics[i].partitions[j].partition_index = pick_part(r, parts);
    }
}

static void shape_ofle(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_offset_for_leader_epoch_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    if (v >= 3)
        m->replica_id = chance(r, 90) ? -1 : pick_i32(r);
    int nt = chance(r, 80) ? 1 : range32(r, 0, 3);
    m->topics = alist(a, nt, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        int parts;
        m->topics[i].topic = pick_topic_nn(r, a, &parts);
        int np = pick_count(r);
        m->topics[i].partitions =
            alist(a, np, sizeof(*m->topics[i].partitions), &m->topics[i].n_partitions);
        for (int j = 0; j < np; j++) {
            kp_offset_for_leader_epoch_request_offset_for_leader_partition_t *p =
                &m->topics[i].partitions[j];
            p->partition = pick_part(r, parts);
            p->current_leader_epoch = chance(r, 70) ? -1 : pick_i32(r);
            p->leader_epoch = chance(r, 70) ? range32(r, -1, 2) : pick_i32(r);
        }
    }
}

static int8_t pick_resource_type(rng_t *r)
{
    static const int8_t v[] = {2, 2, 2, 4, 4, 0, 1, 3, 8, -1};
    return v[below(r, NELEM(v))];
}

static kp_str_t pick_resource_name(rng_t *r, kp_arena_t *a, int8_t type)
{
    int parts;
    if (type == 4)
        return chance(r, 60) ? KP_STR_LIT("0") : chance(r, 50) ? KP_STR_LIT("") : KP_STR_LIT("7");
    kp_str_t s = pick_topic(r, a, &parts);
    return s.len < 0 ? KP_STR_LIT("") : s;
}

static void shape_describe_configs(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_describe_configs_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    int n = range32(r, 0, 3);
    m->resources = alist(a, n, sizeof(*m->resources), &m->n_resources);
    for (int i = 0; i < m->n_resources; i++) {
        kp_describe_configs_request_resource_t *res = &m->resources[i];
        res->resource_type = pick_resource_type(r);
        res->resource_name = pick_resource_name(r, a, res->resource_type);
        if (chance(r, 50)) {
            res->configuration_keys = NULL;
            res->n_configuration_keys = -1;
        } else {
            int nk = range32(r, 0, 4);
            res->configuration_keys =
                alist(a, nk, sizeof(*res->configuration_keys), &res->n_configuration_keys);
            for (int j = 0; j < res->n_configuration_keys; j++)
                res->configuration_keys[j] = pick_cfg_name(r);
        }
    }
}

static void shape_alter_configs(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_alter_configs_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->validate_only = chance(r, 40);
    int n = range32(r, 0, 2);
    m->resources = alist(a, n, sizeof(*m->resources), &m->n_resources);
    for (int i = 0; i < m->n_resources; i++) {
        kp_alter_configs_request_resource_t *res = &m->resources[i];
        res->resource_type = pick_resource_type(r);
        res->resource_name = pick_resource_name(r, a, res->resource_type);
        int nc = range32(r, 0, 3);
        res->configs = alist(a, nc, sizeof(*res->configs), &res->n_configs);
        for (int j = 0; j < res->n_configs; j++) {
            res->configs[j].name = pick_cfg_name(r);
            res->configs[j].value = pick_cfg_value(r, a);
        }
    }
}

static void shape_incr_alter_configs(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_incremental_alter_configs_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->validate_only = chance(r, 40);
    int n = range32(r, 0, 2);
    m->resources = alist(a, n, sizeof(*m->resources), &m->n_resources);
    for (int i = 0; i < m->n_resources; i++) {
        kp_incremental_alter_configs_request_alter_configs_resource_t *res = &m->resources[i];
        res->resource_type = pick_resource_type(r);
        res->resource_name = pick_resource_name(r, a, res->resource_type);
        int nc = range32(r, 0, 3);
        res->configs = alist(a, nc, sizeof(*res->configs), &res->n_configs);
        for (int j = 0; j < res->n_configs; j++) {
            res->configs[j].name = pick_cfg_name(r);
            res->configs[j].config_operation = (int8_t)(chance(r, 90) ? below(r, 4) : rnd(r));
            res->configs[j].value = pick_cfg_value(r, a);
        }
    }
}

static kp_str_t pick_tmp_topic(rng_t *r, kp_arena_t *a)
{
    int parts;
    if (chance(r, 80)) {
        char b[16];
        snprintf(b, sizeof(b), "fz-tmp-%u", below(r, 4));
        return astr(a, b);
    }
    kp_str_t s = pick_topic(r, a, &parts);
    return s.len < 0 ? KP_STR_LIT("") : s;
}

static void shape_create_topics(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_create_topics_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->validate_only = chance(r, 20);
    m->timeout_ms = range32(r, 0, 5000);
    int n = chance(r, 90) ? 1 : range32(r, 0, 4);
    m->topics = alist(a, n, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        kp_create_topics_request_creatable_topic_t *t = &m->topics[i];
        t->name = pick_tmp_topic(r, a);
        t->num_partitions = chance(r, 85) ? range32(r, -1, 4) : pick_i32(r);
        if (t->num_partitions > 16 || t->num_partitions < -1)
            m->validate_only = true; /* never really create thousands of partitions */
        t->replication_factor = (int16_t)(chance(r, 85) ? range32(r, -1, 1) : pick_i32(r));
        if (chance(r, 10)) {
            int na = range32(r, 1, 3);
            t->assignments = alist(a, na, sizeof(*t->assignments), &t->n_assignments);
            for (int j = 0; j < t->n_assignments; j++) {
                t->assignments[j].partition_index = range32(r, -1, 3);
                t->assignments[j].broker_ids = ALLOC(a, 2, int32_t);
                if (t->assignments[j].broker_ids) {
                    t->assignments[j].n_broker_ids = (int32_t)below(r, 3);
                    t->assignments[j].broker_ids[0] = range32(r, -1, 2);
                    t->assignments[j].broker_ids[1] = range32(r, -1, 2);
                }
            }
        } else {
            t->assignments = NULL;
            t->n_assignments = 0;
        }
        int nc = chance(r, 60) ? 0 : range32(r, 1, 3);
        t->configs = alist(a, nc, sizeof(*t->configs), &t->n_configs);
        for (int j = 0; j < t->n_configs; j++) {
            t->configs[j].name = pick_cfg_name(r);
            t->configs[j].value = pick_cfg_value(r, a);
        }
    }
}

static void shape_delete_topics(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_delete_topics_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->timeout_ms = range32(r, 0, 5000);
    int n = chance(r, 90) ? 1 : range32(r, 0, 3);
    /* Our three data topics only rarely: their data is what makes the other requests deep. */
    if (v >= 6) {
        m->topics = alist(a, n, sizeof(*m->topics), &m->n_topics);
        for (int i = 0; i < m->n_topics; i++) {
            char b[16];
            snprintf(b, sizeof(b), "fz-tmp-%u", below(r, 4));
            m->topics[i].name = chance(r, 90) ? astr(a, b) : KP_STR_NULL;
            if (m->topics[i].name.len < 0 && chance(r, 50))
                for (int j = 0; j < 16; j++)
                    m->topics[i].topic_id.b[j] = (uint8_t)rnd(r);
        }
    } else {
        m->topic_names = alist(a, n, sizeof(*m->topic_names), &m->n_topic_names);
        for (int i = 0; i < m->n_topic_names; i++) {
            int parts;
            char b[16];
            snprintf(b, sizeof(b), "fz-tmp-%u", below(r, 4));
            m->topic_names[i] = chance(r, 97) ? astr(a, b) : pick_topic(r, a, &parts);
            if (m->topic_names[i].len < 0)
                m->topic_names[i] = KP_STR_LIT("");
        }
    }
}

static void shape_create_partitions(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_create_partitions_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    m->validate_only = chance(r, 30);
    m->timeout_ms = range32(r, 0, 5000);
    int n = chance(r, 90) ? 1 : range32(r, 0, 3);
    m->topics = alist(a, n, sizeof(*m->topics), &m->n_topics);
    for (int i = 0; i < m->n_topics; i++) {
        kp_create_partitions_request_topic_t *t = &m->topics[i];
        int parts;
        bool tmp = chance(r, 85);
        t->name = tmp ? pick_tmp_topic(r, a) : pick_topic(r, a, &parts);
        if (t->name.len < 0)
            t->name = KP_STR_LIT("");
        t->count = chance(r, 85) ? range32(r, 0, 12) : pick_i32(r);
        if (!tmp || t->count > 12 || t->count < 0)
            m->validate_only = true; /* our data topics keep their size; no huge topics */
        t->assignments = NULL;
        t->n_assignments = chance(r, 90) ? -1 : 0;
    }
}

static void shape_group(gen_t *g, int16_t key, void *m, int16_t v)
{
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    switch (key) {
    case KP_API_JOIN_GROUP: {
        kp_join_group_request_t *j = m;
        j->group_id = pick_group(r, a);
        kp_str_t me = my_member(g, a);
        j->session_timeout_ms = chance(r, 80) ? range32(r, 6000, 10000) : pick_i32(r);
        if (v >= 1)
            j->rebalance_timeout_ms = chance(r, 90) ? range32(r, 0, 1000) : range32(r, 0, 3000);
        uint32_t k = below(r, 10);
        j->member_id = k < 4 ? me : k < 8 ? KP_STR_LIT("") : fill_str(r, a, below(r, 40), 'm');
        if (v >= 5)
            j->group_instance_id = chance(r, 80) ? KP_STR_NULL : KP_STR_LIT("fz-static");
        j->protocol_type = chance(r, 80) ? KP_STR_LIT("consumer") : fill_str(r, a, 5, 'p');
        break;
    }
    case KP_API_SYNC_GROUP: {
        kp_sync_group_request_t *s = m;
        s->group_id = pick_group(r, a);
        kp_str_t me = my_member(g, a);
        bool mine = chance(r, 70);
        if (mine) {
            s->member_id = me;
            s->generation_id = my_generation(g);
        } else {
            s->generation_id = range32(r, -1, 3);
        }
        /* As the leader: an assignment for ourselves (and the filler's odd members). */
        if (s->n_assignments > 0 && chance(r, 80))
            s->assignments[0].member_id = me;
        break;
    }
    case KP_API_HEARTBEAT: {
        kp_heartbeat_request_t *h = m;
        h->group_id = pick_group(r, a);
        kp_str_t me = my_member(g, a);
        bool mine = chance(r, 80);
        h->generation_id = mine ? my_generation(g) : range32(r, -1, 3);
        if (mine)
            h->member_id = me;
        break;
    }
    case KP_API_LEAVE_GROUP: {
        kp_leave_group_request_t *l = m;
        l->group_id = pick_group(r, a);
        kp_str_t me = my_member(g, a);
        if (v <= 2)
            l->member_id = me;
        else if (l->n_members > 0)
            l->members[0].member_id = me;
        break;
    }
    case KP_API_DESCRIBE_GROUPS: {
        kp_describe_groups_request_t *d = m;
        for (int i = 0; i < d->n_groups; i++)
            d->groups[i] = pick_group(r, a);
        break;
    }
    case KP_API_DELETE_GROUPS: {
        kp_delete_groups_request_t *d = m;
        for (int i = 0; i < d->n_groups_names; i++)
            d->groups_names[i] = pick_group(r, a);
        break;
    }
    case KP_API_FIND_COORDINATOR: {
        kp_find_coordinator_request_t *f = m;
        if (v < 4)
            f->key = pick_group(r, a);
        for (int i = 0; i < f->n_coordinator_keys; i++)
            f->coordinator_keys[i] = pick_group(r, a);
        break;
    }
    default:
        break;
    }
}

static void shape_init_pid(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_init_producer_id_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    m->transactional_id = chance(r, 90) ? KP_STR_NULL : KP_STR_LIT("fz-tx");
    m->transaction_timeout_ms = chance(r, 90) ? 60000 : pick_i32(r);
    if (v >= 3) {
        m->producer_id = chance(r, 60) ? -1 : chance(r, 50) ? g_pid : pick_i64(r);
        m->producer_epoch = (int16_t)(chance(r, 60) ? -1 : chance(r, 50) ? g_epoch : pick_i32(r));
    }
}

/* One ACL binding or filter: Kafka's resource types (2 topic, 3 group, 4 cluster, 5
 * transactional id), pattern types (1 any, 2 match, 3 literal, 4 prefixed), operations (0-14)
 * and permissions (1 any, 2 deny, 3 allow), mostly valid, sometimes not; filters may be null.
 * Bindings name only fz-tmp-* topics and group fzg3: with allow.everyone.if.no.acl.found the
 * data topics and the other groups stay open to everyone, so the rest of the run stays deep. */
static void acl_fields(rng_t *r,
                       kp_arena_t *a,
                       bool filter,
                       int8_t *rtype,
                       kp_str_t *rname,
                       int8_t *ptype,
                       kp_str_t *principal,
                       kp_str_t *host,
                       int8_t *op,
                       int8_t *perm)
{
    static const char *const princ[] = {"User:fzu0", "User:fzu1", "User:*",         "User:",
                                        "Group:x",   "fzu0",      "User:ANONYMOUS", "User:fzadmin"};
    static const char *const hosts[] = {"*", "127.0.0.1", "", "::1", "host"};
    static const char *const names[] = {"fz-tmp-0", "fz-tmp-1", "fz-tmp", "fzg3"};
    uint32_t k = below(r, NELEM(names));
    *rname = kp_str_from_cstr(names[k]);
    *rtype = k == 3 ? 3 : 2;
    *ptype = k == 2 ? 4 : 3;
    if (chance(r, 10)) { /* odd types, patterns and names */
        *rtype = (int8_t)(chance(r, 50) ? range32(r, 0, 6) : (int32_t)(int8_t)rnd(r));
        *ptype = (int8_t)(chance(r, 50) ? range32(r, 0, 5) : (int32_t)(int8_t)rnd(r));
        if (filter || *rtype != 2)
            *rname = chance(r, 50) ? KP_STR_LIT("*") : KP_STR_LIT("kafka-cluster");
    }
    *principal = kp_str_from_cstr(princ[below(r, NELEM(princ))]);
    *host = kp_str_from_cstr(hosts[below(r, NELEM(hosts))]);
    *op = (int8_t)(chance(r, 90) ? range32(r, 0, 14) : (int32_t)(int8_t)rnd(r));
    *perm = (int8_t)(chance(r, 90) ? range32(r, 0, 3) : (int32_t)(int8_t)rnd(r));
    if (filter && chance(r, 30))
        *rname = KP_STR_NULL;
    if (filter && chance(r, 30))
        *principal = KP_STR_NULL;
    if (filter && chance(r, 30))
        *host = KP_STR_NULL;
    (void)a;
}

static void shape_describe_acls(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_describe_acls_request_t *m = mv;
    (void)v;
    (void)expect;
    acl_fields(&g->rng, &g->arena, true, &m->resource_type_filter, &m->resource_name_filter,
               &m->pattern_type_filter, &m->principal_filter, &m->host_filter, &m->operation,
               &m->permission_type);
}

static void shape_create_acls(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_create_acls_request_t *m = mv;
    (void)v;
    (void)expect;
    int n = range32(&g->rng, 0, 4);
    m->creations = alist(&g->arena, n, sizeof(*m->creations), &m->n_creations);
    for (int i = 0; i < n; i++) {
        kp_create_acls_request_acl_creation_t *c = &m->creations[i];
        acl_fields(&g->rng, &g->arena, false, &c->resource_type, &c->resource_name,
                   &c->resource_pattern_type, &c->principal, &c->host, &c->operation,
                   &c->permission_type);
    }
}

static void shape_delete_acls(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_delete_acls_request_t *m = mv;
    (void)v;
    (void)expect;
    int n = range32(&g->rng, 0, 3);
    m->filters = alist(&g->arena, n, sizeof(*m->filters), &m->n_filters);
    for (int i = 0; i < n; i++) {
        kp_delete_acls_request_filter_t *f = &m->filters[i];
        acl_fields(&g->rng, &g->arena, true, &f->resource_type_filter, &f->resource_name_filter,
                   &f->pattern_type_filter, &f->principal_filter, &f->host_filter, &f->operation,
                   &f->permission_type);
    }
}

static kp_str_t pick_user(rng_t *r, kp_arena_t *a)
{
    char b[16];
    snprintf(b, sizeof(b), "fzu%u", below(r, 3));
    return chance(r, 90) ? astr(a, b) : chance(r, 50) ? KP_STR_LIT("") : fill_str(r, a, 300, 'u');
}

static kp_bytes_t pick_blob(rng_t *r, kp_arena_t *a, int32_t typical)
{
    int32_t n = chance(r, 80) ? typical : range32(r, 0, 200);
    kp_str_t s = fill_str(r, a, (size_t)n, 0);
    return (kp_bytes_t){(const uint8_t *)s.ptr, s.len};
}

static void shape_alter_scram(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_alter_user_scram_credentials_request_t *m = mv;
    (void)v;
    (void)expect;
    rng_t *r = &g->rng;
    kp_arena_t *a = &g->arena;
    int nd = range32(r, 0, 2), nu = range32(r, 0, 2);
    m->deletions = alist(a, nd, sizeof(*m->deletions), &m->n_deletions);
    for (int i = 0; i < nd; i++) {
        m->deletions[i].name = pick_user(r, a);
        m->deletions[i].mechanism = (int8_t)range32(r, 0, 3);
    }
    m->upsertions = alist(a, nu, sizeof(*m->upsertions), &m->n_upsertions);
    for (int i = 0; i < nu; i++) {
        kp_alter_user_scram_credentials_request_scram_credential_upsertion_t *u = &m->upsertions[i];
        static const int32_t it[] = {4096, 4096, 8192, 1, 0, -1, INT32_MAX, 16384};
        u->name = pick_user(r, a);
        u->mechanism = (int8_t)range32(r, 0, 3);
        u->iterations = it[below(r, NELEM(it))];
        u->salt = pick_blob(r, a, 24);
        u->salted_password = pick_blob(r, a, u->mechanism == 2 ? 64 : 32);
    }
}

static void shape_describe_scram(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_describe_user_scram_credentials_request_t *m = mv;
    (void)v;
    (void)expect;
    if (chance(&g->rng, 30)) {
        m->users = NULL;
        m->n_users = -1;
        return;
    }
    int n = range32(&g->rng, 0, 3);
    m->users = alist(&g->arena, n, sizeof(*m->users), &m->n_users);
    for (int i = 0; i < n; i++)
        m->users[i].name = pick_user(&g->rng, &g->arena);
}

static void shape_sasl_handshake(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_sasl_handshake_request_t *m = mv;
    (void)v;
    (void)expect;
    static const char *const mech[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI",
                                       "",      "plain"};
    m->mechanism = kp_str_from_cstr(mech[below(&g->rng, NELEM(mech))]);
}

static void shape_sasl_authenticate(gen_t *g, void *mv, int16_t v, bool *expect)
{
    kp_sasl_authenticate_request_t *m = mv;
    (void)v;
    (void)expect;
    static const kp_str_t tok[] = {KP_STR_LIT("\0fzu0\0pw"),
                                   KP_STR_LIT("fzu0\0fzu0\0pw"),
                                   KP_STR_LIT("n,,n=fzu0,r=fuzznonce"),
                                   KP_STR_LIT("n,a=fzu1,n=fzu0,r=x"),
                                   KP_STR_LIT("c=biws,r=x,p=AAAA"),
                                   KP_STR_LIT("\0\0")};
    uint32_t k = below(&g->rng, NELEM(tok));
    m->auth_bytes = (kp_bytes_t){(const uint8_t *)tok[k].ptr, tok[k].len};
}

/* The shaper of each API with one; the group APIs share shape_group(). */
static const struct {
    int16_t key;
    void (*fn)(gen_t *g, void *m, int16_t v, bool *expect);
} k_shapers[] = {
    {KP_API_PRODUCE, shape_produce},
    {KP_API_FETCH, shape_fetch},
    {KP_API_LIST_OFFSETS, shape_list_offsets},
    {KP_API_METADATA, shape_metadata},
    {KP_API_OFFSET_COMMIT, shape_offset_commit},
    {KP_API_OFFSET_FETCH, shape_offset_fetch},
    {KP_API_DELETE_RECORDS, shape_delete_records},
    {KP_API_OFFSET_DELETE, shape_offset_delete},
    {KP_API_OFFSET_FOR_LEADER_EPOCH, shape_ofle},
    {KP_API_DESCRIBE_CONFIGS, shape_describe_configs},
    {KP_API_ALTER_CONFIGS, shape_alter_configs},
    {KP_API_INCREMENTAL_ALTER_CONFIGS, shape_incr_alter_configs},
    {KP_API_CREATE_TOPICS, shape_create_topics},
    {KP_API_DELETE_TOPICS, shape_delete_topics},
    {KP_API_CREATE_PARTITIONS, shape_create_partitions},
    {KP_API_INIT_PRODUCER_ID, shape_init_pid},
    {KP_API_DESCRIBE_ACLS, shape_describe_acls},
    {KP_API_CREATE_ACLS, shape_create_acls},
    {KP_API_DELETE_ACLS, shape_delete_acls},
    {KP_API_ALTER_USER_SCRAM_CREDENTIALS, shape_alter_scram},
    {KP_API_DESCRIBE_USER_SCRAM_CREDENTIALS, shape_describe_scram},
    {KP_API_SASL_HANDSHAKE, shape_sasl_handshake},
    {KP_API_SASL_AUTHENTICATE, shape_sasl_authenticate},
};

/* Shape the filled request m of api key at v; *expect is cleared when no response comes. */
static void shape(gen_t *g, int16_t key, void *m, int16_t v, bool *expect)
{
    for (size_t i = 0; i < NELEM(k_shapers); i++)
        if (k_shapers[i].key == key) {
            k_shapers[i].fn(g, m, v, expect);
            return;
        }
    shape_group(g, key, m, v);
}

/* ---- Frames ---- */

typedef struct frame {
    uint8_t *buf;
    size_t len;
    int16_t key, ver;
    int32_t corr;
    bool valid;   /* well-formed request of a served version: its response must decode */
    bool expect;  /* a response is expected (not Produce acks=0) */
    int8_t group; /* the group fzg0-3 it names, -1 when none (see gen_t) */
    uint64_t idx;
} frame_t;

static void wr_insert(kp_writer_t *w, size_t at, const uint8_t *p, size_t n)
{
    kp_write_raw(w, p, n); /* grow */
    if (!kp_writer_ok(w))
        return;
    memmove(w->buf + at + n, w->buf + at, w->len - n - at);
    memcpy(w->buf + at, p, n);
}

/* Structure-blind but protocol-minded mutations of the frame body (after the size). */
/* Where the decoder of d at v starts each read in b[0, n): decoding every truncation of b, the
 * failing read begins at the field that straddles the cut (kp_reader_t err_offset). Fills
 * at[] with increasing offsets; returns how many. */
static int
field_starts(const kp_msg_desc_t *d, int16_t v, const uint8_t *b, size_t n, uint32_t *at, int max)
{
    kp_arena_t a;
    kp_arena_init(&a, (size_t)64 << 20);
    void *m = malloc(d->struct_size);
    int k = 0;
    for (size_t len = 0; len < n && k < max; len++) {
        kp_reader_t r;
        kp_reader_init(&r, b, len);
        if (d->decode(&r, v, m, &a) != 0 && r.err_offset < n &&
            (k == 0 || r.err_offset > at[k - 1]))
            at[k++] = (uint32_t)r.err_offset;
        kp_arena_reset(&a);
    }
    free(m);
    kp_arena_fini(&a);
    return k;
}

/* Overwrite the field at b[0, size) with a value hostile for its width: a count, a length
 * (int16 string, int32 bytes or array, uvarint compact), an int64, or a huge varint. */
static void mutate_field(rng_t *r, uint8_t *b, size_t size)
{
    static const uint64_t v64[] = {0,
                                   1,
                                   0x7fffffffffffffffull,
                                   0x8000000000000000ull,
                                   0xffffffffffffffffull,
                                   0x00000000ffffffffull};
    static const uint32_t v32[] = {0xffffffffu, 0x7fffffffu, 0x80000000u, 0xfffffffeu,
                                   0x00010000u, 0x00100000u, 0u,          1u};
    static const uint16_t v16[] = {0xffff, 0xfffe, 0x7fff, 0x8000, 0x0100, 0, 1};
    size_t w = size >= 8 && chance(r, 30) ? 8 : size >= 4 && chance(r, 60) ? 4 : size >= 2 ? 2 : 1;
    if (w == 1 || chance(r, 15)) { /* a uvarint count/length of a flexible version */
        const uint8_t *hv = k_huge_varints[below(r, NELEM(k_huge_varints))];
        for (size_t j = 0; j < size && j < 10; j++)
            b[j] = hv[j];
        return;
    }
    uint64_t x = w == 8   ? v64[below(r, NELEM(v64))]
                 : w == 4 ? v32[below(r, NELEM(v32))]
                          : v16[below(r, NELEM(v16))];
    for (size_t j = 0; j < w; j++)
        b[j] = (uint8_t)(x >> (8 * (w - 1 - j)));
}

static void mutate(gen_t *g, kp_writer_t *w, size_t hdr_end, const kp_msg_desc_t *d, int16_t dv)
{
    rng_t *r = &g->rng;
    int ops = 1 + (int)below(r, 4);
    /* Structure-aware first: a count, length or value at a real field boundary. */
    if (chance(r, 50) && d && w->len > hdr_end && w->len - hdr_end <= 4096) {
        uint32_t at[4096];
        int n = field_starts(d, dv, w->buf + hdr_end, w->len - hdr_end, at, (int)NELEM(at));
        int times = 1 + (int)below(r, 2);
        for (int t = 0; t < times && n > 0; t++) {
            int i = (int)below(r, (uint32_t)n);
            size_t end = i + 1 < n ? at[i + 1] : w->len - hdr_end;
            mutate_field(r, w->buf + hdr_end + at[i], end - at[i]);
        }
        ops--;
    }
    for (int i = 0; i < ops && w->len > 4; i++) {
        /* Mostly inside the body; sometimes in the header too. */
        size_t lo = chance(r, 90) && hdr_end < w->len ? hdr_end : 4;
        size_t span = w->len - lo;
        size_t at = lo + below(r, (uint32_t)span);
        switch (below(r, 11)) {
        case 0:
            w->buf[at] ^= (uint8_t)(1u << below(r, 8));
            break;
        case 1: {
            static const uint8_t v[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe};
            w->buf[at] = v[below(r, NELEM(v))];
            break;
        }
        case 2:
        case 3: { /* an int16/int32 count or length */
            static const uint32_t v[] = {0xffffffffu, 0x7fffffffu, 0x80000000u, 0xfffffffeu,
                                         0x00010000u, 0x00100000u, 0x01000000u, 0x00000000u,
                                         0x00007fffu, 0x0000ffffu, 0x00000400u};
            uint32_t x = v[below(r, NELEM(v))];
            int bytes = chance(r, 50) ? 4 : 2;
            if (bytes == 2)
                x = (x & 0xffff) | (x >> 16);
            for (int j = 0; j < bytes && at + (size_t)j < w->len; j++)
                w->buf[at + (size_t)j] = (uint8_t)(x >> (8 * (bytes - 1 - j)));
            break;
        }
        case 4: { /* a huge or overlong varint, inserted or overwritten */
            const uint8_t *v = k_huge_varints[below(r, NELEM(k_huge_varints))];
            size_t n = 1;
            while (n < 10 && (v[n - 1] & 0x80))
                n++;
            if (chance(r, 50))
                wr_insert(w, at, v, n);
            else
                for (size_t j = 0; j < n && at + j < w->len; j++)
                    w->buf[at + j] = v[j];
            break;
        }
        case 5: /* truncate */
            w->len = at;
            break;
        case 6: { /* delete a span */
            size_t n = 1 + below(r, (uint32_t)(w->len - at));
            memmove(w->buf + at, w->buf + at + n, w->len - at - n);
            w->len -= n;
            break;
        }
        case 7: { /* duplicate a span (repeated elements, reordering) */
            size_t n = 1 + below(r, (uint32_t)(w->len - at > 256 ? 256 : w->len - at));
            uint8_t tmp[256];
            memcpy(tmp, w->buf + at, n);
            int times = chance(r, 90) ? 1 : range32(r, 2, 200);
            for (int t = 0; t < times; t++)
                wr_insert(w, at, tmp, n);
            break;
        }
        case 8: { /* random bytes */
            uint8_t tmp[32];
            size_t n = 1 + below(r, sizeof(tmp));
            for (size_t j = 0; j < n; j++)
                tmp[j] = (uint8_t)rnd(r);
            wr_insert(w, at, tmp, n);
            break;
        }
        case 9: /* splice the tail of the previous frame */
            if (g->prev && g->prev_len > 4) {
                size_t from = 4 + below(r, (uint32_t)(g->prev_len - 4));
                w->len = at;
                kp_write_raw(w, g->prev + from, g->prev_len - from);
            }
            break;
        default: /* a string length: int16 big or negative */
            if (at + 1 < w->len) {
                static const uint16_t v[] = {0xffff, 0xfffe, 0x7fff, 0x8000, 0x0100};
                uint16_t x = v[below(r, NELEM(v))];
                w->buf[at] = (uint8_t)(x >> 8);
                w->buf[at + 1] = (uint8_t)x;
            }
            break;
        }
    }
}

static int16_t pick_served(rng_t *r, int *si)
{
    /* The data APIs twice as often: they go deepest. */
    for (;;) {
        int i = (int)below(r, (uint32_t)g_n_served);
        int16_t k = g_served[i].key;
        bool data = k == KP_API_PRODUCE || k == KP_API_FETCH || k == KP_API_LIST_OFFSETS ||
                    k == KP_API_DELETE_RECORDS || k == KP_API_OFFSET_COMMIT;
        if (data || chance(r, 50)) {
            *si = i;
            return k;
        }
    }
}

/* Generate the next frame of g (deterministic in g's state). Each frame draws from its own
 * stream seeded by one draw of the connection's: what a frame learnt from responses changes
 * (member ids, sessions) may change how many numbers that frame draws, never the next frame. */
static void gen_frame(gen_t *g, frame_t *f)
{
    rng_t next = g->rng;
    g->rng.s = rnd(&next);
    rng_t *r = &g->rng;
    kp_arena_reset(&g->arena);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    memset(f, 0, sizeof(*f));
    f->idx = g->idx++;
    f->corr = ++g->corr;
    f->expect = true;
    g->group = -1;
    size_t at = kp_writer_reserve(&w, 4);
    uint32_t roll = below(r, 100);
    if ((int)roll < 1 + g->mutate_pct / 12) { /* an unknown api key, a bad version, or junk */
        kp_request_header_t h;
        kp_request_header_init(&h);
        int si;
        h.request_api_key = chance(r, 50) ? (int16_t)rnd(r) : pick_served(r, &si);
        h.request_api_version = chance(r, 50) ? (int16_t)rnd(r) : (int16_t)range32(r, -1, 20);
        h.correlation_id = f->corr;
        h.client_id = chance(r, 50) ? KP_STR_NULL : KP_STR_LIT("fz");
        f->key = h.request_api_key;
        f->ver = h.request_api_version;
        if (kp_request_header_encode(&w, 1, &h) != 0)
            w.err = ST_E_NOMEM;
        size_t n = below(r, 64);
        for (size_t i = 0; i < n; i++)
            kp_write_i8(&w, (int8_t)rnd(r));
    } else {
        int si;
        int16_t key = pick_served(r, &si);
        const kp_api_t *api = kp_api_get(key);
        int16_t ver = (int16_t)range32(r, g_served[si].min, g_served[si].max);
        bool in_range = true;
        if (chance(r, 3)) {
            ver = chance(r, 50) ? (int16_t)(g_served[si].max + 1 + (int16_t)below(r, 3)) : -1;
            in_range = false;
        }
        int16_t ev = ver < api->min_version   ? api->min_version
                     : ver > api->max_version ? api->max_version
                                              : ver; /* the body is encoded at ev */
        void *m = kp_arena_alloc(&g->arena, api->request->struct_size);
        api->request->init(m);
        uint32_t k = below(r, 10);
        int variant = k < 6 ? 0 : k < 8 ? 1 : 2;
        kp_fill_msg(api->request, m, ev, &g->arena, variant);
        bool expect = true;
        if (chance(r, 85))
            shape(g, key, m, ev, &expect);
        kp_request_header_t h;
        kp_request_header_init(&h);
        h.request_api_key = key;
        h.request_api_version = ver;
        h.correlation_id = f->corr;
        h.client_id = chance(r, 90) ? KP_STR_LIT("live-fuzz") : KP_STR_NULL;
        int16_t hv = kp_request_header_version(key, ver);
        bool hdr_ok = true;
        if (chance(r, 3)) {
            int16_t w2 = (int16_t)below(r, 3);
            hdr_ok = w2 == hv;
            hv = w2;
        }
        if (kp_request_header_encode(&w, hv, &h) != 0)
            hdr_ok = false;
        size_t hdr_end = w.len;
        if (api->request->encode(&w, ev, m) != 0) {
            /* The shaped struct does not fit this version: fall back to the defaults. */
            w.err = 0;
            w.len = hdr_end;
            api->request->init(m);
            if (api->request->encode(&w, ev, m) != 0) {
                w.err = 0;
                w.len = hdr_end;
                hdr_ok = false;
            }
        }
        if (key == KP_API_PRODUCE && ((kp_produce_request_t *)m)->acks == 0)
            expect = false; /* acks=0 (also the defaults sent when the shaped one did not fit) */
        f->key = key;
        f->ver = ver;
        f->group = (int8_t)g->group;
        f->valid = in_range && hdr_ok;
        f->expect = expect;
        /* Not CreateTopics/CreatePartitions: a mutated count creates hundreds of thousands of
         * partitions, which this broker accepts and then runs out of file descriptors (a
         * known, separate problem that would end every long run). */
        bool creates = key == KP_API_CREATE_TOPICS || key == KP_API_CREATE_PARTITIONS;
        if (chance(r, g->mutate_pct) && !creates) {
            mutate(g, &w, hdr_end, api->request, ev);
            f->valid = false;
        }
    }
    if (!kp_writer_ok(&w)) { /* out of memory in the writer: send a minimal frame */
        kp_writer_reset(&w);
        at = kp_writer_reserve(&w, 4);
        kp_write_i16(&w, 18);
        kp_write_i16(&w, 0);
        kp_write_i32(&w, f->corr);
        kp_write_i16(&w, -1);
        f->valid = false;
    }
    int32_t size = (int32_t)(w.len - 4);
    if (chance(r, g->mutate_pct / 10)) { /* the size lies */
        static const int32_t v[] = {0, -1, INT32_MIN, INT32_MAX, 1, 3};
        uint32_t k = below(r, 4);
        size = k == 0   ? size + range32(r, 1, 64)
               : k == 1 ? size - range32(r, 1, size > 1 ? size : 1)
               : k == 2 ? size + range32(r, 1000, 1 << 20)
                        : v[below(r, NELEM(v))];
        f->valid = false;
    }
    kp_writer_patch_i32(&w, at, size);
    g->rng = next;
    f->buf = w.buf;
    f->len = w.len;
    free(g->prev);
    g->prev = malloc(w.len);
    memcpy(g->prev, w.buf, w.len);
    g->prev_len = w.len;
}

static void gen_init(gen_t *g, int conn)
{
    memset(g, 0, sizeof(*g));
    g->rng.s = opt.seed ^ ((uint64_t)(conn + 1) * 0xD1B54A32D192ED03ull);
    (void)rnd(&g->rng);
    g->mutate_pct = conn % 4 == 0 ? 60 : 8;
    kp_arena_init(&g->arena, (size_t)256 << 20);
}

static void gen_fini(gen_t *g)
{
    kp_arena_fini(&g->arena);
    free(g->prev);
}

/* ---- Blocking client (setup, checks, replay) ---- */

static int tcp_connect_to(int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nonblock)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    else {
        struct timeval tv = {30, 0}; /* an upper bound for a blocking call, not a threshold */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

static int tcp_connect(bool nonblock)
{
    return tcp_connect_to(opt.port, nonblock);
}

static bool io_all(int fd, const uint8_t *p, size_t n, bool wr)
{
    while (n > 0) {
        ssize_t k = wr ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, (uint8_t *)p, n, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* One request/response on a blocking fd; the decoded response in a (NULL on any failure). */
static void *call(int fd, int16_t key, int16_t ver, const void *req, kp_arena_t *a)
{
    static int32_t corr = 1000000;
    const kp_api_t *api = kp_api_get(key);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    size_t at = kp_writer_reserve(&w, 4);
    kp_request_header_t h;
    kp_request_header_init(&h);
    h.request_api_key = key;
    h.request_api_version = ver;
    h.correlation_id = ++corr;
    h.client_id = KP_STR_LIT("live-fuzz-setup");
    if (kp_request_header_encode(&w, kp_request_header_version(key, ver), &h) != 0 ||
        api->request->encode(&w, ver, req) != 0) {
        kp_writer_fini(&w);
        return NULL;
    }
    kp_writer_patch_i32(&w, at, (int32_t)(w.len - 4));
    bool ok = io_all(fd, w.buf, w.len, true);
    kp_writer_fini(&w);
    uint8_t sz[4];
    if (!ok || !io_all(fd, sz, 4, false))
        return NULL;
    uint32_t n = ((uint32_t)sz[0] << 24) | ((uint32_t)sz[1] << 16) | ((uint32_t)sz[2] << 8) | sz[3];
    if (n > (64u << 20))
        return NULL;
    uint8_t *buf = kp_arena_alloc(a, n ? n : 1);
    if (!buf || !io_all(fd, buf, n, false))
        return NULL;
    kp_reader_t r;
    kp_reader_init(&r, buf, n);
    kp_response_header_t rh;
    if (kp_response_header_decode(&r, kp_response_header_version(key, ver), &rh, a) != 0 ||
        rh.correlation_id != corr)
        return NULL;
    void *resp = kp_arena_alloc(a, api->response->struct_size);
    if (!resp || api->response->decode(&r, ver, resp, a) != 0)
        return NULL;
    return resp;
}

static int16_t served_max(int16_t key, int16_t cap)
{
    for (int i = 0; i < g_n_served; i++)
        if (g_served[i].key == key)
            return g_served[i].max < cap ? g_served[i].max : cap;
    return -1;
}

/* ApiVersions v0 and v3 and Metadata (all topics) on a fresh connection. */
static bool broker_answers(bool learn)
{
    int fd = tcp_connect(false);
    if (fd < 0)
        return false;
    kp_arena_t a;
    kp_arena_init(&a, 64 << 20);
    bool ok = false;
    kp_api_versions_request_t avq;
    kp_api_versions_request_init(&avq);
    kp_api_versions_response_t *av = call(fd, KP_API_API_VERSIONS, 0, &avq, &a);
    if (!av || av->error_code != 0 || av->n_api_keys <= 0)
        goto out;
    if (learn) {
        g_n_served = 0;
        for (int i = 0; i < av->n_api_keys && g_n_served < 64; i++) {
            const kp_api_t *api = kp_api_get(av->api_keys[i].api_key);
            if (!api)
                continue;
            int16_t lo = av->api_keys[i].min_version, hi = av->api_keys[i].max_version;
            if (lo < api->min_version)
                lo = api->min_version;
            if (hi > api->max_version)
                hi = api->max_version;
            if (lo > hi)
                continue;
            g_served[g_n_served].key = api->api_key;
            g_served[g_n_served].min = lo;
            g_served[g_n_served].max = hi;
            g_n_served++;
        }
    }
    avq.client_software_name = KP_STR_LIT("live-fuzz");
    avq.client_software_version = KP_STR_LIT("1");
    av = call(fd, KP_API_API_VERSIONS, 3, &avq, &a);
    if (!av || av->error_code != 0)
        goto out;
    kp_metadata_request_t mq;
    kp_metadata_request_init(&mq);
    mq.n_topics = -1;
    mq.allow_auto_topic_creation = false;
    int16_t mv = served_max(KP_API_METADATA, 12);
    kp_metadata_response_t *md = call(fd, KP_API_METADATA, mv < 1 ? 1 : mv, &mq, &a);
    if (!md || md->n_brokers < 1)
        goto out;
    for (int i = 0; i < md->n_topics; i++)
        for (int j = 0; j < N_TOPICS; j++)
            if (kp_str_eq(md->topics[i].name, kp_str_from_cstr(g_topics[j].name)))
                g_topics[j].id = md->topics[i].topic_id;
    ok = true;
out:
    kp_arena_fini(&a);
    close(fd);
    return ok;
}

/* Create the data topics, get a producer id, produce valid batches to every partition. */
static void setup(void)
{
    int fd = tcp_connect(false);
    if (fd < 0)
        die(2, "setup: cannot connect to %s:%d", opt.host, opt.port);
    kp_arena_t a;
    kp_arena_init(&a, 64 << 20);
    kp_create_topics_request_t cq;
    kp_create_topics_request_init(&cq);
    kp_create_topics_request_creatable_topic_t ct[N_TOPICS];
    for (int i = 0; i < N_TOPICS; i++) {
        kp_create_topics_request_creatable_topic_init(&ct[i]);
        ct[i].name = kp_str_from_cstr(g_topics[i].name);
        ct[i].num_partitions = g_topics[i].parts;
        ct[i].replication_factor = 1;
    }
    /* fz-four is tiered with tiny segments and little kept locally, so reads of its start go
     * to the archive (when the broker has remote.log.storage.system.enable; live.sh sets it). */
    kp_create_topics_request_creatable_topic_config_t tiered[] = {
        {KP_STR_LIT("remote.storage.enable"), KP_STR_LIT("true")},
        {KP_STR_LIT("segment.bytes"), KP_STR_LIT("16384")},
        {KP_STR_LIT("local.retention.bytes"), KP_STR_LIT("32768")},
    };
    ct[1].configs = tiered;
    ct[1].n_configs = (int32_t)NELEM(tiered);
    cq.topics = ct;
    cq.n_topics = N_TOPICS;
    cq.timeout_ms = 10000;
    kp_create_topics_response_t *cr =
        call(fd, KP_API_CREATE_TOPICS, served_max(KP_API_CREATE_TOPICS, 5), &cq, &a);
    if (!cr)
        die(2, "setup: CreateTopics failed");
    for (int i = 0; i < cr->n_topics; i++)
        if (cr->topics[i].error_code != 0 && cr->topics[i].error_code != 36)
            die(2, "setup: CreateTopics error %d (%.*s)", cr->topics[i].error_code,
                cr->topics[i].error_message.len > 0 ? (int)cr->topics[i].error_message.len : 0,
                cr->topics[i].error_message.ptr ? cr->topics[i].error_message.ptr : "");
    kp_init_producer_id_request_t iq;
    kp_init_producer_id_request_init(&iq);
    iq.transaction_timeout_ms = 60000;
    int16_t iv = served_max(KP_API_INIT_PRODUCER_ID, 4);
    if (iv >= 0) {
        kp_init_producer_id_response_t *ir = call(fd, KP_API_INIT_PRODUCER_ID, iv, &iq, &a);
        if (ir && ir->error_code == 0) {
            g_pid = ir->producer_id;
            g_epoch = ir->producer_epoch;
        }
    }
    /* Valid batches (some compressed) so Fetch, ListOffsets and DeleteRecords go deep. The
     * generator here is separate from the connections' so it never shifts their frames. */
    rng_t r = {opt.seed ^ 0x5E7u};
    for (int round = 0; round < 10; round++) {
        for (int t = 0; t < N_TOPICS; t++) {
            for (int p = 0; p < g_topics[t].parts; p++) {
                kp_arena_reset(&a);
                size_t bl;
                uint8_t *b = tbatch_build(range32(&r, 1, 20), below(&r, 300), rnd(&r),
                                          BASE_TS + round * 10000 + (int64_t)below(&r, 5000), &bl);
                batch_fix_crc(b, bl);
                if (round % 3 == 1)
                    b = batch_compress(&r, b, &bl);
                kp_produce_request_partition_produce_data_t pd = {p, {b, (int32_t)bl}};
                kp_produce_request_topic_produce_data_t td;
                kp_produce_request_topic_produce_data_init(&td);
                td.name = kp_str_from_cstr(g_topics[t].name);
                td.partition_data = &pd;
                td.n_partition_data = 1;
                kp_produce_request_t pq;
                kp_produce_request_init(&pq);
                pq.acks = -1;
                pq.timeout_ms = 10000;
                pq.topic_data = &td;
                pq.n_topic_data = 1;
                kp_produce_response_t *pr =
                    call(fd, KP_API_PRODUCE, served_max(KP_API_PRODUCE, 9), &pq, &a);
                free(b);
                if (!pr)
                    die(2, "setup: Produce to %s/%d failed", g_topics[t].name, p);
            }
        }
    }
    kp_arena_fini(&a);
    close(fd);
}

/* ---- The concurrent fuzz loop ---- */

typedef struct conn {
    int fd;
    int idx;
    gen_t gen;
    frame_t cur; /* being written; buf NULL when none */
    size_t cur_off;
    frame_t fly[64]; /* sent, awaiting a response (buf freed); FIFO */
    int n_fly;
    bool tainted; /* a mutated frame went out since connect */
    uint8_t *rbuf;
    size_t rlen, rcap;
    int64_t last_io;
    uint64_t reconnects;
    int login;       /* login frames still to send on the SASL listener (see login_frame) */
    frame_t last[8]; /* the last frames written (buf freed), kept across reconnects */
    uint64_t n_last;
} conn_t;

static struct {
    uint64_t sent, responses, reconnects, stalls, connect_fail, valid_sent;
} st;

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->n_fly = 0;
    c->rlen = 0;
    c->tainted = false;
    /* The frame being written is lost with the connection. */
    free(c->cur.buf);
    c->cur.buf = NULL;
}

/* Remember what a response taught: group membership and the fetch session. */
static void learn(gen_t *g, const frame_t *f, const void *resp)
{
    if (f->key == KP_API_JOIN_GROUP && f->group >= 0) {
        const kp_join_group_response_t *j = resp;
        if ((j->error_code == 0 || j->error_code == KP_ERR_MEMBER_ID_REQUIRED) &&
            j->member_id.len > 0 && j->member_id.len < (int32_t)sizeof(g->member[0])) {
            memcpy(g->member[f->group], j->member_id.ptr, (size_t)j->member_id.len);
            g->member[f->group][j->member_id.len] = 0;
            g->generation[f->group] = j->generation_id;
        }
    } else if ((f->key == KP_API_HEARTBEAT || f->key == KP_API_SYNC_GROUP) && f->group >= 0) {
        int16_t err = f->key == KP_API_HEARTBEAT
                          ? ((const kp_heartbeat_response_t *)resp)->error_code
                          : ((const kp_sync_group_response_t *)resp)->error_code;
        if (err == KP_ERR_UNKNOWN_MEMBER_ID)
            g->member[f->group][0] = 0;
    } else if (f->key == KP_API_FETCH && f->ver >= 7) {
        const kp_fetch_response_t *fr = resp;
        if (fr->error_code == 0 && fr->session_id != 0 && fr->session_id != g->fetch_session) {
            g->fetch_session = fr->session_id;
            g->fetch_epoch = 0;
        } else if (fr->error_code != 0) {
            g->fetch_session = 0;
        }
    }
}

static void check_response(conn_t *c, const frame_t *f, const uint8_t *p, size_t n)
{
    const kp_api_t *api = kp_api_get(f->key);
    if (!api)
        return;
    kp_arena_t a;
    kp_arena_init(&a, 64 * n + (64 << 10));
    kp_reader_t r;
    kp_reader_init(&r, p, n);
    kp_response_header_t rh;
    int rc = kp_response_header_decode(&r, kp_response_header_version(f->key, f->ver), &rh, &a);
    void *resp = kp_arena_alloc(&a, api->response->struct_size);
    if (rc == 0 && resp)
        rc = api->response->decode(&r, f->ver, resp, &a);
    if (rc == 0)
        learn(&c->gen, f, resp);
    if (rc != 0 || kp_reader_remaining(&r) != 0) {
        g_bad_responses++;
        fprintf(stderr,
                "live_fuzz: BAD RESPONSE to %s v%d (conn %d frame %" PRIu64
                "): decode rc=%d field=%s offset=%zu left=%zu\n",
                api->name, f->ver, c->idx, f->idx, rc, r.err_field ? r.err_field : "-",
                r.err_offset, kp_reader_remaining(&r));
    }
    kp_arena_fini(&a);
}

/* Consume complete responses in c->rbuf. */
static void parse_responses(conn_t *c)
{
    size_t off = 0;
    while (c->rlen - off >= 8) {
        const uint8_t *p = c->rbuf + off;
        uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        if (c->rlen - off - 4 < n)
            break;
        int32_t corr = (int32_t)(((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) |
                                 ((uint32_t)p[6] << 8) | p[7]);
        st.responses++;
        int k = 0;
        while (k < c->n_fly && c->fly[k].corr != corr)
            k++;
        if (k < c->n_fly) {
            for (int j = 0; j < k; j++)
                if (c->fly[j].valid && c->fly[j].expect && !c->tainted) {
                    g_missing_responses++;
                    if (g_missing_responses <= 20)
                        fprintf(stderr,
                                "live_fuzz: no response to api %d v%d (conn %d frame %" PRIu64
                                ")\n",
                                c->fly[j].key, c->fly[j].ver, c->idx, c->fly[j].idx);
                }
            if (c->fly[k].valid && !c->tainted)
                check_response(c, &c->fly[k], p + 4, n);
            memmove(c->fly, c->fly + k + 1, (size_t)(c->n_fly - k - 1) * sizeof(frame_t));
            c->n_fly -= k + 1;
        }
        off += 4 + n;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
}

/* Connection c goes to the SASL_PLAINTEXT listener (when given) and logs in first. */
static bool conn_sasl(const conn_t *c)
{
    return opt.sasl_port > 0 && c->idx % 4 == 1;
}

static bool conn_open(conn_t *c)
{
    c->fd = tcp_connect_to(conn_sasl(c) ? opt.sasl_port : opt.port, true);
    c->last_io = mono_ms();
    if (c->fd < 0) {
        st.connect_fail++;
        return false;
    }
    c->login = conn_sasl(c) ? 2 : 0;
    return true;
}

/* Step 2 (SaslHandshake v1 PLAIN) or 1 (SaslAuthenticate v2 as the bootstrap user) of a
 * login on the SASL listener; not drawn from the generator, so the frames stay the same. */
static void login_frame(frame_t *f, int step)
{
    kp_writer_t w;
    kp_writer_init(&w, 0);
    size_t at = kp_writer_reserve(&w, 4);
    kp_request_header_t h;
    kp_request_header_init(&h);
    h.request_api_key = step == 2 ? KP_API_SASL_HANDSHAKE : KP_API_SASL_AUTHENTICATE;
    h.request_api_version = step == 2 ? 1 : 2;
    h.correlation_id = -1000 - step;
    h.client_id = KP_STR_LIT("live-fuzz");
    int rc = kp_request_header_encode(
        &w, kp_request_header_version(h.request_api_key, h.request_api_version), &h);
    if (step == 2) {
        kp_sasl_handshake_request_t q;
        kp_sasl_handshake_request_init(&q);
        q.mechanism = KP_STR_LIT("PLAIN");
        rc = rc ? rc : kp_sasl_handshake_request_encode(&w, 1, &q);
    } else {
        kp_sasl_authenticate_request_t q;
        kp_sasl_authenticate_request_init(&q);
        static const char tok[] = "\0fzadmin\0fzpass";
        q.auth_bytes = (kp_bytes_t){(const uint8_t *)tok, (int32_t)sizeof(tok) - 1};
        rc = rc ? rc : kp_sasl_authenticate_request_encode(&w, 2, &q);
    }
    if (rc != 0)
        die(2, "cannot encode the SASL login");
    kp_writer_patch_i32(&w, at, (int32_t)(w.len - 4));
    memset(f, 0, sizeof(*f));
    f->buf = w.buf;
    f->len = w.len;
    f->key = h.request_api_key;
    f->ver = h.request_api_version;
    f->corr = h.correlation_id;
    f->valid = f->expect = true;
    f->group = -1;
}

static void print_suspects(conn_t *cs, int n)
{
    fprintf(stderr, "live_fuzz: the last frames each connection wrote (seed %" PRIu64 "):\n",
            opt.seed);
    for (int i = 0; i < n; i++) {
        conn_t *c = &cs[i];
        uint64_t from = c->n_last > NELEM(c->last) ? c->n_last - NELEM(c->last) : 0;
        for (uint64_t k = from; k < c->n_last; k++) {
            const frame_t *f = &c->last[k % NELEM(c->last)];
            fprintf(stderr, "  conn %d frame %" PRIu64 " api %d v%d%s\n", i, f->idx, f->key, f->ver,
                    f->valid ? "" : " (mutated)");
        }
    }
    fprintf(stderr,
            "  replay one connection's frames alone: --seed %" PRIu64
            " --replay CONN:FROM-TO; print one: --dump CONN:FRAME\n",
            opt.seed);
}

static int fuzz_loop(void)
{
    conn_t *cs = calloc((size_t)opt.conns, sizeof(conn_t));
    struct pollfd *pf = calloc((size_t)opt.conns, sizeof(struct pollfd));
    for (int i = 0; i < opt.conns; i++) {
        cs[i].fd = -1;
        cs[i].idx = i;
        gen_init(&cs[i].gen, i);
        cs[i].rcap = 1 << 16;
        cs[i].rbuf = malloc(cs[i].rcap);
    }
    int64_t t0 = mono_ms(), deadline = t0 + (int64_t)opt.seconds * 1000;
    int64_t down_since = 0;
    int rc = 0;
    uint64_t next_report = 5000;
    int64_t next_probe = t0 + 5000;
    while (st.sent < opt.requests && mono_ms() < deadline) {
        /* Every 5 s a plain client must still get ApiVersions and Metadata (which also
         * refreshes the topic ids of recreated topics). */
        if (mono_ms() >= next_probe) {
            if (!broker_answers(false)) {
                fprintf(stderr,
                        "live_fuzz: a plain client got no ApiVersions/Metadata after %" PRIu64
                        " requests\n",
                        st.sent);
                print_suspects(cs, opt.conns);
                rc = 1;
                break;
            }
            next_probe = mono_ms() + 5000;
        }
        int64_t now = mono_ms();
        bool any_open = false;
        for (int i = 0; i < opt.conns; i++) {
            conn_t *c = &cs[i];
            if (c->fd < 0 && !conn_open(c)) {
                pf[i].fd = -1;
                continue;
            }
            any_open = true;
            if (c->n_fly > 0 && now - c->last_io > opt.stall_ms) {
                st.stalls++;
                conn_close(c);
                c->reconnects++;
                st.reconnects++;
                pf[i].fd = -1;
                continue;
            }
            /* A client waits for its login to finish before it sends anything else. */
            bool logging_in = conn_sasl(c) && c->login == 0 && c->n_fly > 0 && c->fly[0].corr < 0;
            if (!c->cur.buf && c->n_fly < opt.inflight && c->n_fly < (int)NELEM(c->fly) &&
                st.sent < opt.requests && !logging_in) {
                if (c->login > 0)
                    login_frame(&c->cur, c->login--);
                else
                    gen_frame(&c->gen, &c->cur);
                c->cur_off = 0;
            }
            pf[i].fd = c->fd;
            pf[i].events = POLLIN | (c->cur.buf ? POLLOUT : 0);
            pf[i].revents = 0;
        }
        if (!any_open) {
            if (!down_since)
                down_since = now;
            if (now - down_since > 5000) {
                fprintf(stderr, "live_fuzz: broker refuses connections\n");
                print_suspects(cs, opt.conns);
                rc = 1;
                break;
            }
            usleep(50000);
            continue;
        }
        down_since = 0;
        if (poll(pf, (nfds_t)opt.conns, 100) < 0 && errno != EINTR)
            die(2, "poll: %s", strerror(errno));
        for (int i = 0; i < opt.conns; i++) {
            conn_t *c = &cs[i];
            if (c->fd < 0 || pf[i].fd < 0)
                continue;
            bool dead = false;
            if (pf[i].revents & POLLOUT && c->cur.buf) {
                ssize_t k =
                    send(c->fd, c->cur.buf + c->cur_off, c->cur.len - c->cur_off, MSG_NOSIGNAL);
                if (k > 0) {
                    c->cur_off += (size_t)k;
                    c->last_io = mono_ms();
                    if (c->cur_off == c->cur.len) {
                        st.sent++;
                        if (c->cur.valid)
                            st.valid_sent++;
                        else
                            c->tainted = true;
                        free(c->cur.buf);
                        c->cur.buf = NULL;
                        c->last[c->n_last++ % NELEM(c->last)] = c->cur;
                        if (c->cur.expect || !c->cur.valid)
                            c->fly[c->n_fly++] = c->cur;
                    }
                } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                    dead = true;
                }
            }
            if (!dead && pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                for (;;) {
                    if (c->rcap - c->rlen < 65536) {
                        c->rcap *= 2;
                        c->rbuf = realloc(c->rbuf, c->rcap);
                    }
                    ssize_t k = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
                    if (k > 0) {
                        c->rlen += (size_t)k;
                        c->last_io = mono_ms();
                        parse_responses(c);
                        continue;
                    }
                    if (k == 0 || (errno != EAGAIN && errno != EINTR))
                        dead = true;
                    break;
                }
                /* A response larger than we keep: forget the buffer, resync by reconnecting. */
                if (c->rcap > ((size_t)256 << 20))
                    dead = true;
            }
            if (dead) {
                conn_close(c);
                c->reconnects++;
                st.reconnects++;
            }
        }
        if (st.sent >= next_report) {
            next_report += 5000;
            if (opt.verbose)
                fprintf(stderr, "live_fuzz: %" PRIu64 " sent, %" PRIu64 " responses\n", st.sent,
                        st.responses);
        }
    }
    /* Let what is in flight come back (bounded), then close everything. */
    int64_t drain_end = mono_ms() + 2000;
    while (rc == 0 && mono_ms() < drain_end) {
        int open = 0;
        for (int i = 0; i < opt.conns; i++) {
            pf[i].fd = cs[i].fd >= 0 && cs[i].n_fly > 0 ? cs[i].fd : -1;
            pf[i].events = POLLIN;
            open += pf[i].fd >= 0;
        }
        if (!open)
            break;
        if (poll(pf, (nfds_t)opt.conns, 100) <= 0)
            continue;
        for (int i = 0; i < opt.conns; i++) {
            conn_t *c = &cs[i];
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (c->rcap - c->rlen < 65536) {
                c->rcap *= 2;
                c->rbuf = realloc(c->rbuf, c->rcap);
            }
            ssize_t k = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
            if (k > 0) {
                c->rlen += (size_t)k;
                parse_responses(c);
            } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                conn_close(c);
            }
        }
    }
    int64_t el = mono_ms() - t0;
    for (int i = 0; i < opt.conns; i++) {
        conn_close(&cs[i]);
        gen_fini(&cs[i].gen);
        free(cs[i].rbuf);
    }
    free(cs);
    free(pf);
    fprintf(stderr,
            "live_fuzz: seed %" PRIu64 ": %" PRIu64 " requests (%" PRIu64
            " well-formed) in %.1f s over %d connections: %" PRIu64 " responses, %" PRIu64
            " reconnects (%" PRIu64 " stalls), %" PRIu64 " bad responses, %" PRIu64
            " missing responses\n",
            opt.seed, st.sent, st.valid_sent, (double)el / 1000.0, opt.conns, st.responses,
            st.reconnects, st.stalls, g_bad_responses, g_missing_responses);
    return rc;
}

/* ---- Replay, dump and the regression list ---- */

static void hex_print(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

/* Send a frame `times` times on a fresh connection (pipelined); wait for as many answers or
 * a close (each read bounded by 2 s). */
static int send_alone(const uint8_t *p, size_t n, int times)
{
    int fd = tcp_connect(false);
    if (fd < 0)
        return 0;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint8_t *all = malloc(n * (size_t)times);
    for (int i = 0; i < times; i++)
        memcpy(all + n * (size_t)i, p, n);
    bool ok = io_all(fd, all, n * (size_t)times, true);
    free(all);
    int got = 0;
    for (; ok && got < times; got++) {
        uint8_t sz[4];
        if (!io_all(fd, sz, 4, false))
            break;
        uint32_t len =
            ((uint32_t)sz[0] << 24) | ((uint32_t)sz[1] << 16) | ((uint32_t)sz[2] << 8) | sz[3];
        uint8_t buf[65536];
        while (ok && len > 0) {
            ssize_t k = recv(fd, buf, len < sizeof(buf) ? len : sizeof(buf), 0);
            ok = k > 0;
            len -= ok ? (uint32_t)k : 0;
        }
    }
    close(fd);
    return got;
}

static int run_replay(void)
{
    gen_t g;
    gen_init(&g, opt.replay_conn);
    int fd = -1;
    for (int i = 0; i <= opt.replay_to; i++) {
        frame_t f;
        gen_frame(&g, &f);
        if (i >= opt.replay_from) {
            if (fd < 0)
                fd = tcp_connect(false);
            if (fd < 0) {
                fprintf(stderr, "live_fuzz: replay: broker gone before frame %d\n", i);
                free(f.buf);
                gen_fini(&g);
                return 1;
            }
            fprintf(stderr, "live_fuzz: replay conn %d frame %d: api %d v%d len %zu%s\n",
                    opt.replay_conn, i, f.key, f.ver, f.len, f.valid ? "" : " (mutated)");
            if (!io_all(fd, f.buf, f.len, true)) {
                close(fd);
                fd = -1;
            }
            usleep(2000);
        }
        free(f.buf);
    }
    if (fd >= 0) {
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        uint8_t buf[65536];
        while (recv(fd, buf, sizeof(buf), 0) > 0) {
        }
        close(fd);
    }
    gen_fini(&g);
    return 0;
}

static int run_dump(void)
{
    gen_t g;
    gen_init(&g, opt.dump_conn);
    for (int i = 0; i <= opt.dump_idx; i++) {
        frame_t f;
        gen_frame(&g, &f);
        if (i == opt.dump_idx) {
            fprintf(stderr, "live_fuzz: conn %d frame %d: api %d v%d%s\n", opt.dump_conn, i, f.key,
                    f.ver, f.valid ? "" : " (mutated)");
            hex_print(f.buf, f.len);
        }
        free(f.buf);
    }
    gen_fini(&g);
    return 0;
}

/* CPU seconds (user + system) the broker process has used, or -1 (no --broker-pid). */
static double broker_cpu(void)
{
    if (opt.broker_pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", opt.broker_pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *q = strrchr(buf, ')');
    unsigned long ut = 0, stt = 0;
    if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return -1;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

/* Send a request the broker should hold (a long poll) and let it hold it for 2 s with nothing
 * else to do: the broker must stay idle meanwhile (under 1 s of CPU: a bound on work done,
 * the held request spinning uses all it gets), and still answer ApiVersions on 8 other
 * connections (both shards) before the held request. @return 0 or 1. */
static int hold_check(const uint8_t *p, size_t n)
{
    double cpu0 = broker_cpu();
    int held = tcp_connect(false);
    if (held < 0 || !io_all(held, p, n, true))
        return 1;
    usleep(2000000);
    double cpu1 = broker_cpu();
    int rc = 0;
    if (opt.verbose && cpu0 >= 0 && cpu1 >= 0)
        fprintf(stderr, "live_fuzz: the broker used %.2f s of CPU holding one request 2 s\n",
                cpu1 - cpu0);
    if (cpu0 >= 0 && cpu1 >= 0 && cpu1 - cpu0 > 1.0) {
        fprintf(stderr, "live_fuzz: the broker used %.2f s of CPU in 2 s holding one request\n",
                cpu1 - cpu0);
        rc = 1;
    }
    for (int i = 0; i < 8 && rc == 0; i++) {
        int fd = tcp_connect(false);
        kp_arena_t a;
        kp_arena_init(&a, 1 << 20);
        kp_api_versions_request_t q;
        kp_api_versions_request_init(&q);
        if (fd < 0 || !call(fd, KP_API_API_VERSIONS, 0, &q, &a))
            rc = 1;
        kp_arena_fini(&a);
        if (fd >= 0)
            close(fd);
    }
    struct pollfd pfd = {held, POLLIN, 0};
    if (rc == 0 && poll(&pfd, 1, 0) > 0) {
        fprintf(stderr, "live_fuzz: the held request was answered before the probes\n");
        rc = 1;
    }
    close(held);
    return rc;
}

/* Each non-comment line of the file is one frame in hex (its 4-byte size included, which
 * may lie); each goes alone on a new connection and the broker must still answer after it. */
static int run_regress(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        die(2, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0, rc = 0;
    while (getline(&line, &cap, fp) > 0) {
        lineno++;
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (l == 0 || line[0] == '#')
            continue;
        int times = 1;
        char *hex = line;
        bool hold = !strncmp(line, "hold:", 5);
        if (hold)
            hex += 5;
        if (strchr(line, '*')) { /* N*HEX: the frame N times on one connection */
            times = atoi(line);
            hex = strchr(line, '*') + 1;
            if (times < 1 || times > 100000)
                die(2, "%s:%d: bad repeat count", path, lineno);
        }
        l = strlen(hex);
        uint8_t *b = malloc(l / 2 + 1);
        size_t bl = 0;
        for (size_t i = 0; i + 1 < l; i += 2) {
            unsigned x;
            if (sscanf(hex + i, "%2x", &x) != 1)
                die(2, "%s:%d: not hex", path, lineno);
            b[bl++] = (uint8_t)x;
        }
        if (hold) {
            rc = hold_check(b, bl);
            free(b);
            n++;
            if (rc != 0) {
                fprintf(stderr,
                        "live_fuzz: %s:%d: a shard stopped serving while it held a request\n", path,
                        lineno);
                break;
            }
            continue;
        }
        int got = send_alone(b, bl, times);
        if (opt.verbose)
            fprintf(stderr, "live_fuzz: %s:%d: %d answers to %d frames\n", path, lineno, got,
                    times);
        free(b);
        n++;
        if (!broker_answers(false)) {
            fprintf(stderr, "live_fuzz: broker stopped answering after %s:%d\n", path, lineno);
            rc = 1;
            break;
        }
    }
    free(line);
    fclose(fp);
    fprintf(stderr, "live_fuzz: %d regression frames from %s\n", n, path);
    return rc;
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: live_fuzz --port P [--host H] [--seed S] [--conns N] [--requests M]\n"
            "       [--seconds T] [--inflight K] [--max-parts N] [--regress FILE] [--sasl-port P]\n"
            "       [--broker-pid PID]\n"
            "       [--replay C:A-B] [--dump C:I] [--no-setup] [--check-only] [-v]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    bool have_seed = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
        if (ARG("--port"))
            opt.port = atoi(v);
        else if (ARG("--host"))
            opt.host = v;
        else if (ARG("--seed")) {
            opt.seed = strtoull(v, NULL, 0);
            have_seed = true;
        } else if (ARG("--conns"))
            opt.conns = atoi(v);
        else if (ARG("--requests"))
            opt.requests = strtoull(v, NULL, 0);
        else if (ARG("--seconds"))
            opt.seconds = atoi(v);
        else if (ARG("--inflight"))
            opt.inflight = atoi(v);
        else if (ARG("--broker-pid"))
            opt.broker_pid = atoi(v);
        else if (ARG("--sasl-port"))
            opt.sasl_port = atoi(v);
        else if (ARG("--max-parts"))
            opt.max_parts = atoi(v);
        else if (ARG("--regress"))
            opt.regress = v;
        else if (ARG("--replay")) {
            if (sscanf(v, "%d:%d-%d", &opt.replay_conn, &opt.replay_from, &opt.replay_to) != 3)
                usage();
        } else if (ARG("--dump")) {
            if (sscanf(v, "%d:%d", &opt.dump_conn, &opt.dump_idx) != 2)
                usage();
        } else if (!strcmp(a, "--no-setup"))
            opt.setup = false;
        else if (!strcmp(a, "--check-only"))
            opt.check_only = true;
        else if (!strcmp(a, "-v"))
            opt.verbose = true;
        else
            usage();
#undef ARG
    }
    if (opt.port <= 0 || opt.conns < 1 || opt.conns > 1000 || opt.inflight < 1 ||
        opt.inflight > 64 || opt.max_parts < 100)
        usage();
    if (!have_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt.seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
    }
    fprintf(stderr, "live_fuzz: seed %" PRIu64 "\n", opt.seed);
    if (!broker_answers(true))
        die(1, "the broker at %s:%d does not answer ApiVersions/Metadata", opt.host, opt.port);
    if (opt.check_only)
        return 0;
    if (g_n_served == 0)
        die(2, "the broker serves no API we generate");
    if (opt.dump_conn >= 0)
        return run_dump();
    if (opt.setup)
        setup();
    if (!broker_answers(false))
        die(1, "the broker stopped answering during setup");
    int rc = 0;
    if (opt.regress)
        rc = run_regress(opt.regress);
    if (rc == 0)
        rc = opt.replay_conn >= 0 ? run_replay() : fuzz_loop();
    if (!broker_answers(false)) {
        fprintf(stderr,
                "live_fuzz: the broker does not answer ApiVersions/Metadata after the run "
                "(seed %" PRIu64 ")\n",
                opt.seed);
        return 1;
    }
    if (rc == 0 && (g_bad_responses > 0 || g_missing_responses > 0))
        rc = 3;
    fprintf(stderr, "live_fuzz: broker still answers; exit %d\n", rc);
    return rc;
}
