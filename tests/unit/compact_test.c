/* compact_test.c - unit tests of log compaction: the offset map and batch
 * rewrite (core/compact.c) against a model of "latest value per key", and
 * the shard cleaner over a real log (core/plog_compact.c): segments swapped
 * in, reads across gaps, recovery of interrupted swaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/compact.h"
#include "core/plog.h"
#include "core/st_codec.h"
#include "core/st_crc32c.h"
#include "tests/support/tbatch.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- A batch builder: keys, null values (tombstones), codecs ---- */

typedef struct {
    int key;     /* -1: no key */
    int version; /* value "v<key>-<version>"; -1: null value (tombstone) */
} trec_t;

static size_t put_varint(uint8_t *p, int64_t v)
{
    return tbatch_put_varlong(p, v);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

static int64_t g_pid = -1; /* producer id of the batches build() makes (not control/txn) */

/* One batch of n records at base_offset, timestamp ts (all records), codec,
 * attributes extra bits (transactional 0x10, control 0x20). malloc'd. */
static uint8_t *
build(const trec_t *recs, int n, int64_t base_offset, int64_t ts, int codec, int extra, size_t *len)
{
    size_t cap = 64 + (size_t)n * 96;
    uint8_t *raw = malloc(cap), *out;
    size_t rl = 0;
    for (int i = 0; i < n; i++) {
        uint8_t body[96];
        size_t b = 0;
        char key[16], val[32];
        body[b++] = 0;
        b += put_varint(body + b, 0);
        b += put_varint(body + b, i);
        if (recs[i].key < 0) {
            b += put_varint(body + b, -1);
        } else {
            int kl = snprintf(key, sizeof(key), "key%d", recs[i].key);
            b += put_varint(body + b, kl);
            memcpy(body + b, key, (size_t)kl);
            b += (size_t)kl;
        }
        if (recs[i].version < 0) {
            b += put_varint(body + b, -1);
        } else {
            int vl = snprintf(val, sizeof(val), "v%d-%d", recs[i].key, recs[i].version);
            b += put_varint(body + b, vl);
            memcpy(body + b, val, (size_t)vl);
            b += (size_t)vl;
        }
        b += put_varint(body + b, 0);
        rl += put_varint(raw + rl, (int64_t)b);
        memcpy(raw + rl, body, b);
        rl += b;
    }
    const uint8_t *payload = raw;
    size_t pl = rl;
    uint8_t *z = NULL;
    if (codec) {
        assert_int_equal(st_compress(codec, raw, rl, &z, &pl), 0);
        payload = z;
    }
    *len = PLOG_BATCH_HDR_SIZE + pl;
    out = calloc(1, *len);
    be64(out, (uint64_t)base_offset);
    be32(out + 8, (uint32_t)(*len - 12));
    out[16] = 2;
    uint16_t attr = (uint16_t)(codec | extra);
    out[21] = (uint8_t)(attr >> 8);
    out[22] = (uint8_t)attr;
    be32(out + 23, (uint32_t)(n - 1));
    be64(out + 27, (uint64_t)ts);
    be64(out + 35, (uint64_t)ts);
    be64(out + 43, (uint64_t)(extra ? 77 : g_pid)); /* producer id */
    out[51] = 0xff, out[52] = 0xff;
    be32(out + 53, 0xffffffffu);
    be32(out + 57, (uint32_t)n);
    memcpy(out + PLOG_BATCH_HDR_SIZE, payload, pl);
    be32(out + 17, st_crc32c(0, out + 21, *len - 21));
    free(raw);
    free(z);
    return out;
}

/* ---- The model ---- */

#define N_KEYS 40

typedef struct {
    int64_t offset[N_KEYS]; /* latest offset of each key, -1: never written */
    int version[N_KEYS];    /* its version (-1: a tombstone) */
    int64_t ts[N_KEYS];     /* the timestamp of its batch */
} model_t;

/* What a reader of the compacted data found. */
typedef struct {
    int seen[N_KEYS]; /* records seen per key */
    int version[N_KEYS];
    int64_t offset[N_KEYS];
    int64_t last_offset; /* offsets must increase */
    int n_records;
    int keyless;
} reader_t;

static int read_rec(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    reader_t *r = arg;
    (void)h;
    assert_true(rec->offset > r->last_offset);
    r->last_offset = rec->offset;
    r->n_records++;
    if (!rec->key) {
        r->keyless++;
        return 0;
    }
    int k = atoi((const char *)rec->key + 3);
    assert_true(k >= 0 && k < N_KEYS);
    r->seen[k]++;
    r->offset[k] = rec->offset;
    if (!rec->value) {
        r->version[k] = -1;
    } else {
        int kk, v;
        char val[40];
        memcpy(val, rec->value, (size_t)rec->value_len);
        val[rec->value_len] = 0;
        assert_int_equal(sscanf(val, "v%d-%d", &kk, &v), 2);
        assert_int_equal(kk, k);
        r->version[k] = v;
    }
    return 0;
}

/* Walk a buffer of batches: validate each (stored rules) and read records. */
static int read_all(const uint8_t *p, size_t len, reader_t *r)
{
    int batches = 0;
    for (size_t pos = 0; pos < len; batches++) {
        plog_batch_hdr_t h;
        assert_int_equal(plog_batch_parse_hdr(p + pos, len - pos, &h), 0);
        size_t bl = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        assert_true(bl <= len - pos);
        assert_int_equal(plog_batch_validate_stored(p + pos, bl, &h, NULL), 0);
        assert_int_equal(plog_batch_records(p + pos, bl, 1 << 20, read_rec, r), 0);
        pos += bl;
    }
    return batches;
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* A random log of keyed records and tombstones, batches of every codec. */
typedef struct {
    compact_buf_t log;
    model_t m;
    int64_t end;
} tlog_t;

static void gen_log(tlog_t *t, int n_batches, int64_t ts0, int tombstone_pct)
{
    memset(t, 0, sizeof(*t));
    for (int k = 0; k < N_KEYS; k++)
        t->m.offset[k] = -1;
    for (int b = 0; b < n_batches; b++) {
        trec_t recs[20];
        int n = 1 + (int)(rnd() % 20);
        int64_t ts = ts0 + b;
        for (int i = 0; i < n; i++) {
            int k = (int)(rnd() % N_KEYS);
            bool tomb = (int)(rnd() % 100) < tombstone_pct;
            recs[i] = (trec_t){k, tomb ? -1 : b * 100 + i};
            t->m.offset[k] = t->end + i;
            t->m.version[k] = recs[i].version;
            t->m.ts[k] = ts;
        }
        size_t len;
        uint8_t *bt = build(recs, n, t->end, ts, b % 5, 0, &len);
        t->log.p = realloc(t->log.p, t->log.len + len);
        memcpy(t->log.p + t->log.len, bt, len);
        t->log.len += len;
        free(bt);
        t->end += n;
    }
}

/* Clean t's whole log with a map over [0, map_end) and horizon. */
static void
clean(tlog_t *t, compact_map_t *m, int64_t horizon, compact_buf_t *out, compact_stats_t *st)
{
    compact_map_clear(m);
    for (size_t pos = 0; pos < t->log.len;) {
        plog_batch_hdr_t h;
        assert_int_equal(plog_batch_parse_hdr(t->log.p + pos, t->log.len - pos, &h), 0);
        size_t bl = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        assert_int_equal(compact_map_add_batch(m, t->log.p + pos, bl), 0);
        pos += bl;
    }
    compact_rules_t r = {m, t->end, horizon, false};
    for (size_t pos = 0; pos < t->log.len;) {
        plog_batch_hdr_t h;
        assert_int_equal(plog_batch_parse_hdr(t->log.p + pos, t->log.len - pos, &h), 0);
        size_t bl = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        r.keep_empty = pos + bl == t->log.len;
        assert_int_equal(compact_filter_batch(t->log.p + pos, bl, &r, out, st), 0);
        pos += bl;
    }
}

/* ---- Tests of compact.c ---- */

static void test_compact_latest_value_per_key_every_codec(void **state)
{
    (void)state;
    tlog_t t;
    gen_log(&t, 300, 1000, 0);
    compact_map_t *m;
    assert_int_equal(compact_map_new(1 << 16, &m), 0);
    compact_buf_t out = {0};
    compact_stats_t st = {0};
    clean(&t, m, INT64_MIN, &out, &st);
    reader_t r = {.last_offset = -1};
    read_all(out.p, out.len, &r);
    for (int k = 0; k < N_KEYS; k++) {
        assert_int_equal(r.seen[k], t.m.offset[k] >= 0 ? 1 : 0);
        if (t.m.offset[k] >= 0) {
            assert_int_equal(r.offset[k], t.m.offset[k]);
            assert_int_equal(r.version[k], t.m.version[k]);
        }
    }
    assert_true(out.len < t.log.len / 4); /* 40 keys out of ~3000 records */
    assert_true(st.batches_rewritten > 0);
    /* The last batch stays, so the data still ends where the log did. */
    size_t pos = 0;
    plog_batch_hdr_t h;
    while (plog_batch_parse_hdr(out.p + pos, out.len - pos, &h) == 0 &&
           pos + (size_t)h.batch_length + 12 < out.len)
        pos += (size_t)h.batch_length + 12;
    assert_int_equal(h.base_offset + h.last_offset_delta + 1, t.end);
    compact_buf_free(&out);
    compact_buf_free(&t.log);
    compact_map_free(m);
}

static void test_compact_tombstones_expire_by_horizon(void **state)
{
    (void)state;
    tlog_t t;
    gen_log(&t, 200, 1000, 30);
    compact_map_t *m;
    assert_int_equal(compact_map_new(1 << 16, &m), 0);
    for (int pass = 0; pass < 2; pass++) {
        int64_t horizon = pass == 0 ? INT64_MIN : 1100; /* batches 0..99 are older */
        compact_buf_t out = {0};
        compact_stats_t st = {0};
        clean(&t, m, horizon, &out, &st);
        reader_t r = {.last_offset = -1};
        read_all(out.p, out.len, &r);
        int dropped = 0;
        for (int k = 0; k < N_KEYS; k++) {
            if (t.m.offset[k] < 0)
                continue;
            bool expired = t.m.version[k] < 0 && t.m.ts[k] < horizon;
            dropped += expired;
            assert_int_equal(r.seen[k], expired ? 0 : 1);
            if (!expired)
                assert_int_equal(r.version[k], t.m.version[k]);
        }
        assert_int_equal(st.tombstones_dropped, dropped);
        compact_buf_free(&out);
    }
    compact_buf_free(&t.log);
    compact_map_free(m);
}

static void test_compact_records_after_map_end_untouched(void **state)
{
    (void)state;
    tlog_t t;
    gen_log(&t, 100, 1000, 10);
    compact_map_t *m;
    assert_int_equal(compact_map_new(1 << 16, &m), 0);
    /* The map covers only the first half of the batches (as when the
     * dedupe buffer is full, or the rest is newer than min.compaction.lag.ms). */
    size_t half = 0;
    int64_t map_end = 0;
    for (int b = 0; b < 50; b++) {
        plog_batch_hdr_t h;
        assert_int_equal(plog_batch_parse_hdr(t.log.p + half, t.log.len - half, &h), 0);
        size_t bl = (size_t)h.batch_length + 12;
        assert_int_equal(compact_map_add_batch(m, t.log.p + half, bl), 0);
        half += bl;
        map_end = h.base_offset + h.last_offset_delta + 1;
    }
    compact_rules_t rl = {m, map_end, INT64_MIN, false};
    compact_buf_t out = {0};
    compact_stats_t st = {0};
    for (size_t pos = 0; pos < t.log.len;) {
        plog_batch_hdr_t h;
        assert_int_equal(plog_batch_parse_hdr(t.log.p + pos, t.log.len - pos, &h), 0);
        size_t bl = (size_t)h.batch_length + 12;
        assert_int_equal(compact_filter_batch(t.log.p + pos, bl, &rl, &out, &st), 0);
        pos += bl;
    }
    /* The second half comes out byte for byte. */
    size_t tail = t.log.len - half;
    assert_true(out.len >= tail);
    assert_memory_equal(out.p + out.len - tail, t.log.p + half, tail);
    compact_buf_free(&out);
    compact_buf_free(&t.log);
    compact_map_free(m);
}

static void test_compact_map_bucket_collisions_and_full(void **state)
{
    (void)state;
    compact_map_t *m;
    assert_int_equal(compact_map_new(1, &m), 0); /* the minimum: 16 slots, 14 keys */
    assert_int_equal(compact_map_limit(m), 14);
    for (int k = 0; k < 14; k++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "key%d", k);
        assert_int_equal(compact_map_put(m, (uint8_t *)key, (size_t)n, k), 0);
    }
    /* 14 keys in 16 buckets: many share one, every lookup is still exact. */
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 14; k++) {
            char key[16];
            int n = snprintf(key, sizeof(key), "key%d", k);
            assert_int_equal(compact_map_put(m, (uint8_t *)key, (size_t)n, 100 * (round + 1) + k),
                             0);
        }
    }
    for (int k = 0; k < 14; k++) {
        char key[16];
        int n = snprintf(key, sizeof(key), "key%d", k);
        assert_int_equal(compact_map_get(m, (uint8_t *)key, (size_t)n), 300 + k);
    }
    assert_int_equal(compact_map_get(m, (const uint8_t *)"key99", 5), -1);
    assert_int_equal(compact_map_put(m, (const uint8_t *)"key99", 5, 999), ST_E_AGAIN);
    assert_int_equal(compact_map_size(m), 14);
    /* A batch that might not fit is refused whole. */
    trec_t recs[3] = {{20, 1}, {21, 1}, {22, 1}};
    size_t len;
    uint8_t *b = build(recs, 3, 1000, 1, 0, 0, &len);
    assert_int_equal(compact_map_add_batch(m, b, len), ST_E_AGAIN);
    assert_int_equal(compact_map_get(m, (const uint8_t *)"key20", 5), -1);
    free(b);
    compact_map_free(m);
}

static void test_compact_control_transactional_and_keyless(void **state)
{
    (void)state;
    compact_map_t *m;
    assert_int_equal(compact_map_new(1 << 12, &m), 0);
    trec_t a[2] = {{1, 1}, {-1, 2}}; /* key1 v1, then a record without key */
    trec_t tx[2] = {{1, 2}, {2, 1}}; /* transactional: key1 v2 (may abort) */
    trec_t ctl[1] = {{3, 0}};        /* a control record */
    trec_t b[1] = {{2, 2}};
    size_t la, lt, lc, lb;
    uint8_t *ba = build(a, 2, 0, 1, 0, 0, &la);
    uint8_t *bt = build(tx, 2, 2, 1, 0, 0x10, &lt);
    uint8_t *bc = build(ctl, 1, 4, 1, 0, 0x20, &lc);
    uint8_t *bb = build(b, 1, 5, 1, 0, 0, &lb);
    uint8_t *all[4] = {ba, bt, bc, bb};
    size_t lens[4] = {la, lt, lc, lb};
    for (int i = 0; i < 4; i++)
        assert_int_equal(compact_map_add_batch(m, all[i], lens[i]), 0);
    /* Transactional keys never enter the map: key1's latest stays offset 0. */
    assert_int_equal(compact_map_get(m, (const uint8_t *)"key1", 4), 0);
    compact_rules_t r = {m, 6, INT64_MIN, false};
    compact_buf_t out = {0};
    compact_stats_t st = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(compact_filter_batch(all[i], lens[i], &r, &out, &st), 0);
    /* a: the keyless record goes; tx and control stay whole; b stays. */
    reader_t rd = {.last_offset = -1};
    assert_int_equal(read_all(out.p, out.len, &rd), 4);
    assert_int_equal(rd.keyless, 0);
    assert_int_equal(rd.n_records, 1 + 2 + 1 + 1);
    assert_memory_equal(out.p + (out.len - lb - lc - lt), bt, lt);
    compact_buf_free(&out);
    for (int i = 0; i < 4; i++)
        free(all[i]);
    compact_map_free(m);
}

static void test_compact_empty_last_batch_keeps_offsets(void **state)
{
    (void)state;
    compact_map_t *m;
    assert_int_equal(compact_map_new(1 << 12, &m), 0);
    trec_t a[3] = {{1, 1}, {2, 1}, {3, 1}};
    trec_t b[3] = {{1, 2}, {2, 2}, {3, 2}};
    size_t la, lb;
    uint8_t *ba = build(a, 3, 100, 5, ST_CODEC_LZ4, 0, &la);
    uint8_t *bb = build(b, 3, 103, 6, ST_CODEC_ZSTD, 0, &lb);
    assert_int_equal(compact_map_add_batch(m, ba, la), 0);
    assert_int_equal(compact_map_add_batch(m, bb, lb), 0);
    compact_rules_t r = {m, 106, INT64_MIN, true};
    compact_buf_t out = {0};
    compact_stats_t st = {0};
    assert_int_equal(compact_filter_batch(ba, la, &r, &out, &st), 0);
    assert_int_equal(out.len, PLOG_BATCH_HDR_SIZE); /* all superseded: an empty batch */
    plog_batch_hdr_t h;
    assert_int_equal(plog_batch_validate_stored(out.p, out.len, &h, NULL), 0);
    assert_int_equal(h.base_offset, 100);
    assert_int_equal(h.last_offset_delta, 2);
    assert_int_equal(h.records_count, 0);
    assert_int_equal(h.attributes & 7, 0);
    /* Strict (produce) validation refuses it: it only exists in logs. */
    assert_int_not_equal(plog_batch_validate(out.p, out.len, &h, NULL), 0);
    r.keep_empty = false;
    out.len = 0;
    assert_int_equal(compact_filter_batch(ba, la, &r, &out, &st), 0);
    assert_int_equal(out.len, 0);
    compact_buf_free(&out);
    free(ba);
    free(bb);
    compact_map_free(m);
}

/* ---- The cleaner over a real log ---- */

typedef struct {
    uv_loop_t loop;
    plog_env_t *env;
    plog_shard_t *sh;
    char root[256];
    char dir[300];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(plog_env_new(&f->env), 0);
    assert_int_equal(plog_shard_new(f->env, &f->loop, &f->sh), 0);
    snprintf(f->root, sizeof(f->root), "/tmp/compact_test.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof(f->dir), "%s/cl-0", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    plog_shard_free(f->sh);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    plog_env_free(f->env);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void on_flag(void *arg, int status)
{
    (void)status;
    *(int *)arg = 1;
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static void test_cfg(plog_config_t *cfg)
{
    plog_config_default(cfg);
    cfg->segment_bytes = 4096;
    cfg->index_interval_bytes = 256;
    cfg->cleanup_compact = true;
    cfg->cleanup_delete = false;
    cfg->min_cleanable_ratio = 0.01;
    cfg->delete_retention_ms = INT64_MAX / 4;
}

static plog_t *open_with(fx_t *f, const plog_config_t *cfg)
{
    plog_t *log;
    char err[256];
    assert_int_equal(plog_open(f->sh, f->dir, cfg, 1000, &log, err, sizeof(err)), 0);
    return log;
}

static plog_t *open_cfg(fx_t *f, plog_config_t *cfg)
{
    test_cfg(cfg);
    plog_t *log;
    char err[256];
    assert_int_equal(plog_open(f->sh, f->dir, cfg, 1000, &log, err, sizeof(err)), 0);
    return log;
}

static void close_log(fx_t *f, plog_t *log)
{
    int closed = 0;
    plog_close(log, on_closed, &closed);
    while (!closed)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void append_wait(fx_t *f, plog_t *log, const uint8_t *b, size_t len)
{
    uint8_t *copy = malloc(len);
    memcpy(copy, b, len);
    plog_append_info_t info;
    assert_int_equal(plog_append(log, copy, len, 0, 1000, &info, NULL), 0);
    free(copy);
    int done = 0;
    plog_waiter_t w;
    plog_wait_durable(log, &w, info.end_offset, on_flag, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Fill a log with t's batches (offsets are assigned the same: from 0). */
static void fill(fx_t *f, plog_t *log, const tlog_t *t)
{
    for (size_t pos = 0; pos < t->log.len;) {
        plog_batch_hdr_t h;
        assert_int_equal(plog_batch_parse_hdr(t->log.p + pos, t->log.len - pos, &h), 0);
        size_t bl = (size_t)h.batch_length + 12;
        append_wait(f, log, t->log.p + pos, bl);
        pos += bl;
    }
}

/* Read the whole log through plog_read, as Fetch does, from offset 0. */
static void read_log(plog_t *log, reader_t *r)
{
    memset(r, 0, sizeof(*r));
    r->last_offset = -1;
    int64_t off = 0, hw = plog_high_watermark(log);
    while (off < hw) {
        plog_slice_t s;
        assert_int_equal(plog_read(log, off, 1 << 20, &s), 0);
        assert_true(s.len > 0);
        uint8_t *buf = malloc((size_t)s.len);
        assert_int_equal(plog_slice_pread(&s, buf), 0);
        read_all(buf, (size_t)s.len, r);
        free(buf);
        assert_true(s.next_offset > off);
        off = s.next_offset;
        plog_slice_release(&s);
    }
}

static void on_pass(void *arg)
{
    (*(int *)arg)++;
}

static void run_cleaner(fx_t *f, plog_cleaner_t *c, plog_t *log, int64_t now)
{
    int passes = 0;
    plog_cleaner_on_done(c, on_pass, &passes);
    assert_int_equal(plog_cleaner_offer(c, log, now), 1);
    while (passes == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void check_model(const tlog_t *t, const reader_t *r, int64_t active_base)
{
    /* Below the active segment: one record per key, its latest. Records in
     * the active segment are not compacted: a key may appear twice. */
    for (int k = 0; k < N_KEYS; k++) {
        if (t->m.offset[k] < 0)
            continue;
        assert_true(r->seen[k] >= 1);
        assert_int_equal(r->offset[k], t->m.offset[k]);
        assert_int_equal(r->version[k], t->m.version[k]);
        if (t->m.offset[k] < active_base)
            assert_int_equal(r->seen[k], 1);
    }
}

static void test_cleaner_swaps_segments_reads_and_recovers(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_t *log = open_cfg(f, &cfg);
    tlog_t t;
    gen_log(&t, 400, 1000, 0);
    fill(f, log, &t);
    /* A final record rolls nothing but makes the last roll's recovery point
     * durable: sealed segments are all below it. */
    int64_t before = plog_size_bytes(log);
    int n_segs = plog_segment_count(log);
    assert_true(n_segs > 5);
    int64_t active_base = plog_segment_base(log, n_segs - 1);
    plog_cleaner_t *c;
    assert_int_equal(plog_cleaner_new(&f->loop, 1 << 16, 0, &c), 0);
    run_cleaner(f, c, log, 5000);
    assert_int_equal(plog_segment_count(log), n_segs);
    assert_true(plog_size_bytes(log) < before / 2);
    plog_compact_stats_t st;
    plog_compact_stats(log, &st);
    assert_int_equal(st.runs, 1);
    assert_int_equal(st.clean_end, active_base);
    assert_true(st.records_removed > 0);
    /* Nothing dirty now: no second pass. */
    assert_int_equal(plog_cleaner_offer(c, log, 5000), 0);
    reader_t r;
    read_log(log, &r);
    check_model(&t, &r, active_base);
    /* Fetch from an offset inside a gap answers the next batch. */
    plog_slice_t s;
    assert_int_equal(plog_read(log, 1, 100, &s), 0);
    assert_true(s.len > 0 && s.next_offset > 1);
    plog_slice_release(&s);
    close_log(f, log);
    /* A restart recovers the segments with their gaps. */
    log = open_cfg(f, &cfg);
    assert_int_equal(plog_segment_count(log), n_segs);
    assert_int_equal(plog_end_offset(log), t.end);
    read_log(log, &r);
    check_model(&t, &r, active_base);
    plog_compact_stats(log, &st);
    assert_int_equal(st.clean_end, active_base); /* the checkpoint */
    close_log(f, log);
    plog_cleaner_free(c); /* freed by the teardown's loop run */
    compact_buf_free(&t.log);
}

static int find_pid(void *arg, const plog_batch_hdr_t *h)
{
    int64_t *found = arg; /* [0]: pid wanted, [1]: out records_count, [2]: out base */
    if (h->producer_id == found[0]) {
        found[1] = h->records_count;
        found[2] = h->base_offset;
    }
    return 0;
}

/* A producer's last batch stays (empty) when later records of another
 * producer supersede all of it: producer state rebuilt after a restart still
 * knows its last sequence. */
static void test_cleaner_keeps_each_producers_last_batch(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_t *log = open_cfg(f, &cfg);
    trec_t a[3] = {{1, 1}, {2, 1}, {3, 1}};
    size_t len;
    g_pid = 4242;
    uint8_t *b = build(a, 3, 0, 10 * 1000 * 1000, 0, 0, &len); /* ts: recent for now=now_ms */
    g_pid = -1;
    append_wait(f, log, b, len);
    free(b);
    /* Other producers overwrite keys 1..3 many times, over several segments. */
    for (int i = 0; i < 200; i++) {
        trec_t o[3] = {{1, 10 + i}, {2, 10 + i}, {3, 10 + i}};
        b = build(o, 3, 0, 10 * 1000 * 1000, 0, 0, &len);
        append_wait(f, log, b, len);
        free(b);
    }
    assert_true(plog_segment_count(log) > 2);
    plog_cleaner_t *c;
    assert_int_equal(plog_cleaner_new(&f->loop, 1 << 16, 0, &c), 0);
    run_cleaner(f, c, log, 10 * 1000 * 1000 + 5000);
    int64_t found[3] = {4242, -1, -1};
    int rc = plog_scan_tail(log, 1000, -1, find_pid, found);
    close_log(f, log); /* before asserting: a failure must not hang the teardown */
    plog_cleaner_free(c);
    assert_int_equal(rc, 0);
    assert_int_equal(found[1], 0); /* its batch, with no record left */
    assert_int_equal(found[2], 0);
}

static void touch(const char *dir, int64_t base, const char *ext, const void *data, size_t len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%020" PRId64 ".%s", dir, base, ext);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static bool exists(const char *dir, int64_t base, const char *ext)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%020" PRId64 ".%s", dir, base, ext);
    return stat(p, &st) == 0;
}

/* A kill between the steps of a swap: before the .log commit the old
 * segment stays; after it the new one is finished at open. */
static void test_cleaner_recovery_of_interrupted_swaps(void **state)
{
    fx_t *f = *state;
    plog_config_t cfg;
    plog_t *log = open_cfg(f, &cfg);
    tlog_t t;
    gen_log(&t, 200, 1000, 0);
    fill(f, log, &t);
    int n_segs = plog_segment_count(log);
    int64_t b0 = plog_segment_base(log, 0), b1 = plog_segment_base(log, 1);
    int64_t b2 = plog_segment_base(log, 2);
    close_log(f, log);
    /* Segment 0: a committed swap, its new files are a cleaned copy made by
     * hand (an empty batch spanning its offsets). */
    trec_t one = {0, 0};
    size_t len;
    uint8_t *bt = build(&one, 1, b0, 1000, 0, 0, &len);
    /* Make it span [b0, b1): lastOffsetDelta = b1 - b0 - 1, no record. */
    uint8_t empty[PLOG_BATCH_HDR_SIZE];
    memcpy(empty, bt, sizeof(empty));
    be32(empty + 8, PLOG_BATCH_HDR_SIZE - 12);
    be32(empty + 23, (uint32_t)(b1 - b0 - 1));
    be32(empty + 57, 0);
    be32(empty + 17, st_crc32c(0, empty + 21, sizeof(empty) - 21));
    free(bt);
    touch(f->dir, b0, "log.swap", empty, sizeof(empty));
    touch(f->dir, b0, "index.swap", "", 0);
    /* Segment 1: uncommitted (.cleaned files and an index .swap). */
    touch(f->dir, b1, "log.cleaned", "junk", 4);
    touch(f->dir, b1, "index.swap", "junk", 4);
    touch(f->dir, b2, "timeindex.cleaned", "junk", 4);
    log = open_cfg(f, &cfg);
    assert_int_equal(plog_segment_count(log), n_segs);
    assert_false(exists(f->dir, b0, "log.swap"));
    assert_false(exists(f->dir, b0, "index.swap"));
    assert_false(exists(f->dir, b1, "log.cleaned"));
    assert_false(exists(f->dir, b1, "index.swap"));
    assert_false(exists(f->dir, b2, "timeindex.cleaned"));
    reader_t r;
    read_log(log, &r); /* segment 0 is now empty, the rest reads whole */
    assert_int_equal(r.last_offset, t.end - 1);
    plog_slice_t s;
    assert_int_equal(plog_read(log, b0, 1 << 20, &s), 0);
    assert_int_equal(s.first_offset, b1); /* the empty batch is skipped: data follows */
    plog_slice_release(&s);
    close_log(f, log);
    compact_buf_free(&t.log);
}

/* ---- Which log the cleaner takes ---- */

/* A compacted log in DIR/<name>-0 (open_cfg's settings), filled with
 * n_batches random batches whose records are stamped from ts0. */
static plog_t *dirty_log(fx_t *f, const char *name, int64_t max_lag_ms, int n_batches, int64_t ts0)
{
    snprintf(f->dir, sizeof(f->dir), "%s/%s-0", f->root, name);
    plog_config_t cfg;
    test_cfg(&cfg);
    cfg.max_compaction_lag_ms = max_lag_ms;
    plog_t *log = open_with(f, &cfg);
    tlog_t t;
    gen_log(&t, n_batches, ts0, 0);
    fill(f, log, &t);
    compact_buf_free(&t.log);
    return log;
}

static void run_dirtiest(fx_t *f, plog_cleaner_t *c, plog_t *const *logs, int n, int64_t now)
{
    int passes = 0, picked = -1;
    plog_cleaner_on_done(c, on_pass, &passes);
    assert_int_equal(plog_cleaner_offer_dirtiest(c, logs, n, now, &picked), 1);
    while (passes == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int64_t runs_of(plog_t *log)
{
    plog_compact_stats_t st;
    plog_compact_stats(log, &st);
    return st.runs;
}

/* The cleaner takes the dirtiest log first (Kafka's LogCleanerManager), not
 * the next one in the registry's order: a log cleaned once and a little dirty
 * again waits behind one never cleaned; one with a record past
 * max.compaction.lag.ms goes before both. */
static void test_cleaner_takes_the_dirtiest_log_first(void **state)
{
    fx_t *f = *state;
    plog_cleaner_t *c;
    assert_int_equal(plog_cleaner_new(&f->loop, 1 << 16, 0, &c), 0);
    /* a: cleaned, then a little dirty again. */
    plog_t *a = dirty_log(f, "a", INT64_MAX, 300, 1000);
    run_cleaner(f, c, a, 5000);
    tlog_t more;
    gen_log(&more, 60, 2000, 0);
    fill(f, a, &more);
    compact_buf_free(&more.log);
    /* b: never cleaned (every cleanable byte dirty). */
    plog_t *b = dirty_log(f, "b", INT64_MAX, 300, 1000);
    plog_t *logs[3] = {a, b, NULL};
    int picked = -1;
    assert_int_equal(plog_cleaner_offer_dirtiest(c, logs, 0, 5000, &picked), 0);
    run_dirtiest(f, c, logs, 2, 5000);
    assert_int_equal(runs_of(b), 1); /* round robin would have taken a again */
    assert_int_equal(runs_of(a), 1);
    plog_compact_stats_t sa;
    plog_compact_stats(a, &sa);
    assert_true(sa.dirty_ratio > 0 && sa.dirty_ratio < 1); /* refreshed for every log */
    /* c: a little dirty, but a record older than max.compaction.lag.ms:
     * before b, dirtier now that more was appended to it. */
    plog_t *cl = dirty_log(f, "c", 60000, 300, 1000);
    run_cleaner(f, c, cl, 5000);
    gen_log(&more, 60, 3000, 0);
    fill(f, cl, &more);
    compact_buf_free(&more.log);
    gen_log(&more, 300, 4000, 0);
    fill(f, b, &more);
    compact_buf_free(&more.log);
    logs[0] = b;
    logs[1] = a;
    logs[2] = cl;
    run_dirtiest(f, c, logs, 3, 3100 + 60000);
    assert_int_equal(runs_of(cl), 2);
    assert_int_equal(runs_of(b), 1);
    /* Then the dirtiest of the rest: b (more dirty bytes than a). */
    run_dirtiest(f, c, logs, 3, 3100 + 60000);
    assert_int_equal(runs_of(b), 2);
    assert_int_equal(runs_of(a), 1);
    run_dirtiest(f, c, logs, 3, 3100 + 60000);
    assert_int_equal(runs_of(a), 2);
    assert_int_equal(plog_cleaner_offer_dirtiest(c, logs, 3, 3100 + 60000, &picked), 0);
    close_log(f, a);
    close_log(f, b);
    close_log(f, cl);
    plog_cleaner_free(c);
}

/* A compacted log in DIR/<name>-0 of n_batches uncompressed batches of
 * per_batch records each, over keys 0 .. n_keys - 1. */
static plog_t *even_log(fx_t *f, const char *name, int n_batches, int per_batch, int n_keys)
{
    snprintf(f->dir, sizeof(f->dir), "%s/%s-0", f->root, name);
    plog_config_t cfg;
    test_cfg(&cfg);
    plog_t *log = open_with(f, &cfg);
    for (int b = 0; b < n_batches; b++) {
        trec_t recs[32];
        for (int i = 0; i < per_batch; i++)
            recs[i] = (trec_t){(b * per_batch + i) % n_keys, b};
        size_t len;
        uint8_t *bt = build(recs, per_batch, 0, 1000 + b, 0, 0, &len);
        append_wait(f, log, bt, len);
        free(bt);
    }
    return log;
}

/* A log whose passes fail (here: a batch with more keys than the offset map
 * holds) goes after every other log due, so it cannot starve them; it is
 * still retried when no other log is due. */
static void test_cleaner_failing_log_does_not_starve_others(void **state)
{
    fx_t *f = *state;
    plog_cleaner_t *c;
    /* 20 slots: 18 keys, room for good's 10 keys, not for a batch of bad's 30 */
    assert_int_equal(plog_cleaner_new(&f->loop, 20 * COMPACT_MAP_ENTRY_BYTES, 0, &c), 0);
    plog_t *good = even_log(f, "good", 40, 5, 10);
    run_cleaner(f, c, good, 5000);
    plog_compact_stats_t st;
    plog_compact_stats(good, &st);
    assert_int_equal(st.clean_end, plog_segment_base(good, plog_segment_count(good) - 1));
    plog_t *bad = even_log(f, "bad", 40, 30, 30); /* never cleaned: ratio 1 */
    for (int b = 0; b < 40; b++) {                /* good: a little dirty again */
        trec_t recs[5];
        for (int i = 0; i < 5; i++)
            recs[i] = (trec_t){i, 100 + b};
        size_t len;
        uint8_t *bt = build(recs, 5, 0, 2000 + b, 0, 0, &len);
        append_wait(f, good, bt, len);
        free(bt);
    }
    plog_t *logs[2] = {bad, good};
    run_dirtiest(f, c, logs, 2, 5000); /* the dirtiest: bad, and its pass fails */
    plog_compact_stats(bad, &st);
    assert_true(st.is_failing);
    assert_int_equal(st.runs, 0);
    run_dirtiest(f, c, logs, 2, 5000);
    assert_int_equal(runs_of(good), 2); /* not bad again */
    plog_compact_stats(good, &st);
    assert_false(st.is_failing);
    run_dirtiest(f, c, logs, 2, 5000); /* alone due: retried */
    plog_compact_stats(bad, &st);
    assert_true(st.is_failing);
    assert_int_equal(runs_of(good), 2);
    close_log(f, bad);
    close_log(f, good);
    plog_cleaner_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact_latest_value_per_key_every_codec),
        cmocka_unit_test(test_compact_tombstones_expire_by_horizon),
        cmocka_unit_test(test_compact_records_after_map_end_untouched),
        cmocka_unit_test(test_compact_map_bucket_collisions_and_full),
        cmocka_unit_test(test_compact_control_transactional_and_keyless),
        cmocka_unit_test(test_compact_empty_last_batch_keeps_offsets),
        cmocka_unit_test_setup_teardown(test_cleaner_swaps_segments_reads_and_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cleaner_recovery_of_interrupted_swaps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cleaner_keeps_each_producers_last_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cleaner_takes_the_dirtiest_log_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleaner_failing_log_does_not_starve_others, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
