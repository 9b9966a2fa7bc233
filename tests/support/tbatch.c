/* tbatch.c - record batch v2 builder for tests and benchmarks. */
#include "tests/support/tbatch.h"
#include "core/st_crc32c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t put_uvarint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t tbatch_put_varlong(uint8_t *p, int64_t v)
{
    return put_uvarint(p, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint8_t tbatch_value_byte(uint64_t seed, int i, size_t j)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull + j;
    x ^= x >> 29;
    return (uint8_t)(x * 0x94D049BB133111EBull >> 56);
}

uint8_t *tbatch_build(int n, size_t value_len, uint64_t seed, int64_t base_ts, size_t *len)
{
    size_t cap = 61 + (size_t)n * (value_len + 64);
    uint8_t *b = calloc(1, cap);
    size_t pos = 61;
    uint8_t *rec = malloc(value_len + 64);
    for (int i = 0; i < n; i++) {
        char key[48];
        int klen = snprintf(key, sizeof(key), "k%llu-%d", (unsigned long long)seed, i);
        size_t r = 0;
        rec[r++] = 0;                           /* attributes */
        r += tbatch_put_varlong(rec + r, i);    /* timestampDelta */
        r += tbatch_put_varlong(rec + r, i);    /* offsetDelta */
        r += tbatch_put_varlong(rec + r, klen); /* key */
        memcpy(rec + r, key, (size_t)klen);
        r += (size_t)klen;
        r += tbatch_put_varlong(rec + r, (int64_t)value_len);
        for (size_t j = 0; j < value_len; j++)
            rec[r++] = tbatch_value_byte(seed, i, j);
        r += tbatch_put_varlong(rec + r, 0); /* headers */
        pos += tbatch_put_varlong(b + pos, (int64_t)r);
        memcpy(b + pos, rec, r);
        pos += r;
    }
    free(rec);
    be(b + 0, 0, 8);                  /* baseOffset (assigned by the broker) */
    be(b + 8, pos - 12, 4);           /* batchLength */
    be(b + 12, 0, 4);                 /* partitionLeaderEpoch */
    b[16] = 2;                        /* magic */
    be(b + 21, 0, 2);                 /* attributes */
    be(b + 23, (uint64_t)(n - 1), 4); /* lastOffsetDelta */
    be(b + 27, (uint64_t)base_ts, 8);
    be(b + 35, (uint64_t)(base_ts + n - 1), 8);
    be(b + 43, (uint64_t)-1, 8); /* producerId */
    be(b + 51, (uint64_t)-1, 2); /* producerEpoch */
    be(b + 53, (uint64_t)-1, 4); /* baseSequence */
    be(b + 57, (uint64_t)n, 4);
    be(b + 17, st_crc32c(0, b + 21, pos - 21), 4);
    *len = pos;
    return b;
}
