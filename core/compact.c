/* compact.c - the offset map and the batch rewrite of log compaction (see
 * compact.h). The map is open addressing over a fixed array sized once from
 * log.cleaner.dedupe.buffer.size: a 16-byte hash per key (truncated SHA-256,
 * so that producers cannot craft two keys that collide and make the cleaner
 * drop another key's latest record) and the key's latest offset. Keys whose
 * hashes share a bucket probe linearly. */
#include "core/compact.h"
#include "core/st_codec.h"
#include "core/st_crc32c.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    uint8_t hash[16];
    int64_t offset; /* -1: empty slot */
} slot_t;

struct compact_map {
    slot_t *slots; /* owned */
    size_t n_slots, n_used, limit;
    EVP_MD_CTX *md; /* owned: reused for every key */
    EVP_MD *sha;    /* owned: SHA-256 fetched once (an implicit fetch per key costs more) */
};

int compact_map_new(size_t memory_bytes, compact_map_t **out)
{
    size_t n = memory_bytes / COMPACT_MAP_ENTRY_BYTES;
    if (n < 16)
        n = 16;
    compact_map_t *m = calloc(1, sizeof(*m));
    if (!m)
        return ST_E_NOMEM;
    m->slots = malloc(n * sizeof(*m->slots));
    m->md = EVP_MD_CTX_new();
    m->sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!m->slots || !m->md || !m->sha) {
        compact_map_free(m);
        return ST_E_NOMEM;
    }
    m->n_slots = n;
    m->limit = n * 9 / 10;
    compact_map_clear(m);
    *out = m;
    return 0;
}

void compact_map_free(compact_map_t *m)
{
    if (!m)
        return;
    free(m->slots);
    EVP_MD_CTX_free(m->md);
    EVP_MD_free(m->sha);
    free(m);
}

void compact_map_clear(compact_map_t *m)
{
    for (size_t i = 0; i < m->n_slots; i++)
        m->slots[i].offset = -1;
    m->n_used = 0;
}

size_t compact_map_size(const compact_map_t *m)
{
    return m->n_used;
}

size_t compact_map_limit(const compact_map_t *m)
{
    return m->limit;
}

static void key_hash(const compact_map_t *m, const uint8_t *key, size_t len, uint8_t out[16])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_DigestInit_ex(m->md, m->sha, NULL) != 1 || EVP_DigestUpdate(m->md, key, len) != 1 ||
        EVP_DigestFinal_ex(m->md, md, &n) != 1 || n < 16) {
        /* Cannot happen with the default provider; a plain hash keeps us correct
         * for all but colliding keys. */
        uint64_t h1 = 14695981039346656037ull, h2 = 1099511628211ull;
        for (size_t i = 0; i < len; i++) {
            h1 = (h1 ^ key[i]) * 1099511628211ull;
            h2 = (h2 + key[i]) * 6364136223846793005ull + 1442695040888963407ull;
        }
        memcpy(md, &h1, 8);
        memcpy(md + 8, &h2, 8);
    }
    memcpy(out, md, 16);
}

/* The slot holding hash, or the empty slot where it would go. */
static slot_t *find(const compact_map_t *m, const uint8_t hash[16])
{
    uint64_t h;
    memcpy(&h, hash, 8);
    size_t i = (size_t)(h % m->n_slots);
    for (;;) {
        slot_t *s = &m->slots[i];
        if (s->offset < 0 || !memcmp(s->hash, hash, 16))
            return s;
        i = i + 1 == m->n_slots ? 0 : i + 1;
    }
}

int compact_map_put(compact_map_t *m, const uint8_t *key, size_t key_len, int64_t offset)
{
    uint8_t hash[16];
    key_hash(m, key, key_len, hash);
    slot_t *s = find(m, hash);
    if (s->offset < 0) {
        if (m->n_used >= m->limit)
            return ST_E_AGAIN;
        memcpy(s->hash, hash, 16);
        m->n_used++;
    }
    if (offset > s->offset)
        s->offset = offset;
    return 0;
}

int64_t compact_map_get(const compact_map_t *m, const uint8_t *key, size_t key_len)
{
    uint8_t hash[16];
    key_hash(m, key, key_len, hash);
    return find(m, hash)->offset;
}

/* ---- Building the map ---- */

#define ATTR_TRANSACTIONAL 0x10
#define ATTR_CONTROL       0x20

static int put_record(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    (void)h;
    if (!rec->key)
        return 0; /* no key: dropped by the rewrite, never in the map */
    return compact_map_put(arg, rec->key, (size_t)rec->key_len, rec->offset);
}

int compact_map_add_batch(compact_map_t *m, const uint8_t *p, size_t len)
{
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(p, len, &h) != 0)
        return ST_E_MALFORMED;
    if (h.attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL))
        return 0;
    if (h.records_count < 0)
        return ST_E_MALFORMED;
    if ((size_t)h.records_count > m->limit - m->n_used)
        return ST_E_AGAIN; /* all or nothing: this batch's keys may all be new */
    return plog_batch_records(p, len, COMPACT_MAX_RAW, put_record, m);
}

/* ---- Rewriting a batch ---- */

static int buf_reserve(compact_buf_t *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *n = realloc(b->p, cap);
    if (!n)
        return ST_E_NOMEM;
    b->p = n;
    b->cap = cap;
    return 0;
}

static int buf_add(compact_buf_t *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc == 0 && n) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
    return rc;
}

/* ---- Throttle ---- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void compact_throttle_start(compact_throttle_t *t, int64_t bytes_per_sec)
{
    t->bytes_per_sec = bytes_per_sec > 0 ? bytes_per_sec : INT64_MAX;
    t->t0_ns = mono_ns();
    t->bytes = 0;
}

void compact_throttle(compact_throttle_t *t, int64_t bytes, const _Atomic bool *cancel)
{
    t->bytes += bytes;
    if (t->bytes_per_sec == INT64_MAX)
        return;
    for (;;) {
        uint64_t elapsed = mono_ns() - t->t0_ns;
        double due_ns = (double)t->bytes * 1e9 / (double)t->bytes_per_sec;
        if (due_ns <= (double)elapsed || atomic_load(cancel))
            return;
        double wait = due_ns - (double)elapsed;
        if (wait > 1e8)
            wait = 1e8;
        struct timespec ts = {0, (long)wait};
        nanosleep(&ts, NULL);
    }
}

int compact_buf_add(compact_buf_t *b, const void *p, size_t n)
{
    return buf_add(b, p, n);
}

void compact_buf_free(compact_buf_t *b)
{
    free(b->p);
    *b = (compact_buf_t){0};
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

typedef struct {
    const compact_rules_t *rules;
    compact_buf_t kept; /* raw records kept, uncompressed */
    int32_t n_kept;
    compact_stats_t *stats;
} filter_t;

static int keep_record(void *arg, const plog_batch_hdr_t *h, const plog_record_t *rec)
{
    filter_t *f = arg;
    const compact_rules_t *r = f->rules;
    f->stats->records_read++;
    bool keep = true;
    if (rec->offset < r->map_end) {
        if (!rec->key) {
            keep = false; /* Kafka's cleaner drops keyless records too */
        } else {
            int64_t latest = compact_map_get(r->map, rec->key, (size_t)rec->key_len);
            if (latest > rec->offset) {
                keep = false;
            } else if (!rec->value && h->max_timestamp < r->tombstone_horizon_ms) {
                keep = false;
                f->stats->tombstones_dropped++;
            }
        }
    }
    if (!keep)
        return 0;
    f->n_kept++;
    f->stats->records_kept++;
    return buf_add(&f->kept, rec->raw, rec->raw_len);
}

int compact_filter_batch(const uint8_t *p,
                         size_t len,
                         const compact_rules_t *rules,
                         compact_buf_t *out,
                         compact_stats_t *stats)
{
    plog_batch_hdr_t h;
    if (plog_batch_parse_hdr(p, len, &h) != 0 ||
        (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD != len)
        return ST_E_MALFORMED;
    bool whole =
        (h.attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL)) || h.base_offset >= rules->map_end;
    if (whole) {
        stats->records_read += h.records_count;
        stats->records_kept += h.records_count;
        return buf_add(out, p, len);
    }
    filter_t f = {rules, {0}, 0, stats};
    int rc = plog_batch_records(p, len, COMPACT_MAX_RAW, keep_record, &f);
    if (rc != 0)
        goto out;
    if (f.n_kept == h.records_count) {
        rc = buf_add(out, p, len); /* nothing removed: the batch as it was */
        goto out;
    }
    if (f.n_kept == 0 && !rules->keep_empty)
        goto out;
    stats->batches_rewritten++;
    int codec = h.attributes & 7;
    uint8_t *z = NULL;
    const uint8_t *body = f.kept.p;
    size_t body_len = f.kept.len;
    if (f.n_kept == 0) {
        codec = 0; /* an empty batch has no records section to compress */
        body_len = 0;
    } else if (codec != ST_CODEC_NONE) {
        if ((rc = st_compress(codec, f.kept.p, f.kept.len, &z, &body_len)) != 0)
            goto out;
        body = z;
    }
    size_t at = out->len;
    if ((rc = buf_reserve(out, PLOG_BATCH_HDR_SIZE + body_len)) == 0) {
        buf_add(out, p, PLOG_BATCH_HDR_SIZE); /* cannot fail: reserved */
        buf_add(out, body, body_len);
        uint8_t *b = out->p + at;
        put_be32(b + 8, (uint32_t)(PLOG_BATCH_HDR_SIZE - PLOG_BATCH_LOG_OVERHEAD + body_len));
        uint16_t attributes = (uint16_t)((h.attributes & ~7) | codec);
        b[21] = (uint8_t)(attributes >> 8);
        b[22] = (uint8_t)attributes;
        put_be32(b + 57, (uint32_t)f.n_kept);
        size_t blen = PLOG_BATCH_HDR_SIZE + body_len;
        put_be32(b + 17, st_crc32c(0, b + PLOG_BATCH_CRC_START, blen - PLOG_BATCH_CRC_START));
    }
    free(z);
out:
    compact_buf_free(&f.kept);
    return rc;
}
