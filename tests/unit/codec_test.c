/* codec_test.c - unit tests of bounded decompression (core/st_codec). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/st_codec.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

static uint8_t g_in[200000];

static void fill(void)
{
    for (size_t i = 0; i < sizeof(g_in); i++)
        g_in[i] = (uint8_t)((i * 7) % 13 + (i / 1000));
}

/* Compress g_in with each codec the way Kafka clients do. */
static size_t compress_with(int codec, uint8_t *out, size_t cap)
{
    switch (codec) {
    case ST_CODEC_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof(z));
        assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = g_in;
        z.avail_in = sizeof(g_in);
        z.next_out = out;
        z.avail_out = (uInt)cap;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        size_t n = cap - z.avail_out;
        deflateEnd(&z);
        return n;
    }
    case ST_CODEC_SNAPPY: { /* xerial framing, as the Java client */
        static const uint8_t hdr[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0,
                                        0,    0,   0,   1,   0,   0,   0,   1};
        memcpy(out, hdr, 16);
        size_t pos = 16;
        for (size_t off = 0; off < sizeof(g_in); off += 32768) {
            size_t chunk = sizeof(g_in) - off < 32768 ? sizeof(g_in) - off : 32768;
            size_t n = cap - pos - 4;
            assert_int_equal(
                snappy_compress((const char *)g_in + off, chunk, (char *)out + pos + 4, &n),
                SNAPPY_OK);
            out[pos] = (uint8_t)(n >> 24), out[pos + 1] = (uint8_t)(n >> 16);
            out[pos + 2] = (uint8_t)(n >> 8), out[pos + 3] = (uint8_t)n;
            pos += 4 + n;
        }
        return pos;
    }
    case ST_CODEC_LZ4: {
        size_t n = LZ4F_compressFrame(out, cap, g_in, sizeof(g_in), NULL);
        assert_false(LZ4F_isError(n));
        return n;
    }
    case ST_CODEC_ZSTD: {
        size_t n = ZSTD_compress(out, cap, g_in, sizeof(g_in), 3);
        assert_false(ZSTD_isError(n));
        return n;
    }
    }
    return 0;
}

static void test_st_decompress_round_trip_every_codec(void **state)
{
    (void)state;
    fill();
    static uint8_t comp[400000];
    for (int codec = ST_CODEC_GZIP; codec <= ST_CODEC_ZSTD; codec++) {
        size_t n = compress_with(codec, comp, sizeof(comp));
        uint8_t *out = NULL;
        size_t out_len = 0;
        assert_int_equal(st_decompress(codec, comp, n, 1 << 20, &out, &out_len), 0);
        assert_int_equal(out_len, sizeof(g_in));
        assert_memory_equal(out, g_in, sizeof(g_in));
        free(out);
        /* The output cap holds: a bomb cannot make us allocate more. */
        assert_int_equal(st_decompress(codec, comp, n, 1000, &out, &out_len), ST_E_TOO_LARGE);
        /* Truncated and corrupted input fail cleanly. */
        int rc = st_decompress(codec, comp, n / 2, 1 << 20, &out, &out_len);
        assert_true(rc == ST_E_MALFORMED || (rc == 0 && out_len < sizeof(g_in)));
        if (rc == 0)
            free(out);
        memset(comp + n / 3, 0x5a, 64);
        rc = st_decompress(codec, comp, n, 1 << 20, &out, &out_len);
        if (rc == 0) {
            assert_memory_not_equal(out, g_in, out_len < sizeof(g_in) ? out_len : sizeof(g_in));
            free(out);
        }
    }
    uint8_t *out;
    size_t out_len;
    assert_int_equal(st_decompress(7, comp, 10, 100, &out, &out_len), ST_E_INVAL);
    assert_int_equal(
        st_decompress(ST_CODEC_ZSTD, (const uint8_t *)"garbage!", 8, 100, &out, &out_len),
        ST_E_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_decompress_round_trip_every_codec),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
