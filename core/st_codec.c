/* st_codec.c - bounded decompression of Kafka record payloads (see st_codec.h). */
#include "core/st_codec.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* A growable output bounded by max. */
typedef struct {
    uint8_t *p;
    size_t len, cap, max;
} obuf_t;

static int ob_reserve(obuf_t *b, size_t more)
{
    if (more > b->max - b->len)
        return ST_E_TOO_LARGE;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    uint8_t *n = realloc(b->p, cap);
    if (!n)
        return ST_E_NOMEM;
    b->p = n;
    b->cap = cap;
    return 0;
}

static int gunzip(const uint8_t *in, size_t len, obuf_t *b)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* gzip or zlib header */
        return ST_E_NOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    int rc = 0;
    for (;;) {
        if ((rc = ob_reserve(b, 65536 < b->max - b->len ? 65536 : b->max - b->len)) != 0 ||
            b->cap == b->len) {
            rc = rc ? rc : ST_E_TOO_LARGE;
            break;
        }
        z.next_out = b->p + b->len;
        z.avail_out = (uInt)(b->cap - b->len);
        int zr = inflate(&z, Z_NO_FLUSH);
        b->len = b->cap - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK) {
            rc = ST_E_MALFORMED;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

static int snappy_block(const uint8_t *in, size_t len, obuf_t *b)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK)
        return ST_E_MALFORMED;
    int rc = ob_reserve(b, n);
    if (rc)
        return rc;
    size_t got = n;
    if (snappy_uncompress((const char *)in, len, (char *)b->p + b->len, &got) != SNAPPY_OK ||
        got != n)
        return ST_E_MALFORMED;
    b->len += n;
    return 0;
}

static int unsnappy(const uint8_t *in, size_t len, obuf_t *b)
{
    static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    if (len < 16 || memcmp(in, magic, 8) != 0)
        return snappy_block(in, len, b); /* raw snappy */
    size_t pos = 16;                     /* magic + version + compatible version */
    while (pos < len) {
        if (len - pos < 4)
            return ST_E_MALFORMED;
        uint32_t n = ((uint32_t)in[pos] << 24) | ((uint32_t)in[pos + 1] << 16) |
                     ((uint32_t)in[pos + 2] << 8) | in[pos + 3];
        pos += 4;
        if (n > len - pos)
            return ST_E_MALFORMED;
        int rc = snappy_block(in + pos, n, b);
        if (rc)
            return rc;
        pos += n;
    }
    return 0;
}

static int unlz4(const uint8_t *in, size_t len, obuf_t *b)
{
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return ST_E_NOMEM;
    int rc = 0;
    size_t pos = 0;
    while (pos < len) {
        if ((rc = ob_reserve(b, 65536 < b->max - b->len ? 65536 : b->max - b->len)) != 0 ||
            b->cap == b->len) {
            rc = rc ? rc : ST_E_TOO_LARGE;
            break;
        }
        size_t out_n = b->cap - b->len, in_n = len - pos;
        size_t r = LZ4F_decompress(d, b->p + b->len, &out_n, in + pos, &in_n, NULL);
        if (LZ4F_isError(r)) {
            rc = ST_E_MALFORMED;
            break;
        }
        b->len += out_n;
        pos += in_n;
        if (r == 0)
            break; /* frame complete */
        if (in_n == 0 && out_n == 0) {
            rc = ST_E_MALFORMED;
            break;
        }
    }
    LZ4F_freeDecompressionContext(d);
    return rc;
}

static int unzstd(const uint8_t *in, size_t len, obuf_t *b)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return ST_E_NOMEM;
    ZSTD_inBuffer ib = {in, len, 0};
    int rc = 0;
    while (ib.pos < ib.size) {
        if ((rc = ob_reserve(b, 65536 < b->max - b->len ? 65536 : b->max - b->len)) != 0 ||
            b->cap == b->len) {
            rc = rc ? rc : ST_E_TOO_LARGE;
            break;
        }
        ZSTD_outBuffer ob = {b->p + b->len, b->cap - b->len, 0};
        size_t r = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(r)) {
            rc = ST_E_MALFORMED;
            break;
        }
        b->len += ob.pos;
        if (r == 0 && ib.pos == ib.size)
            break;
        if (ob.pos == 0 && ib.pos == ib.size) {
            rc = ST_E_MALFORMED; /* truncated frame */
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return rc;
}

int st_decompress(
    int codec, const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len)
{
    obuf_t b = {NULL, 0, 0, max_out};
    int rc;
    switch (codec) {
    case ST_CODEC_GZIP:
        rc = gunzip(in, in_len, &b);
        break;
    case ST_CODEC_SNAPPY:
        rc = unsnappy(in, in_len, &b);
        break;
    case ST_CODEC_LZ4:
        rc = unlz4(in, in_len, &b);
        break;
    case ST_CODEC_ZSTD:
        rc = unzstd(in, in_len, &b);
        break;
    default:
        rc = ST_E_INVAL;
    }
    if (rc != 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}

/* ---- Compression (the cleaner re-compresses the batches it rewrites) ---- */

static int gzip_all(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ST_E_NOMEM;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    uint8_t *p = malloc(cap);
    int rc = p ? 0 : ST_E_NOMEM;
    if (p) {
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        z.next_out = p;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END)
            rc = ST_E_IO;
    }
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc)
        free(p);
    else
        *out = p;
    return rc;
}

/* Xerial framing, as Java producers write it: every client reads it. */
static int snappy_all(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    static const uint8_t hdr[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    const size_t block = 32768;
    size_t n_blocks = len / block + 1;
    size_t cap = 16 + n_blocks * (4 + snappy_max_compressed_length(block));
    uint8_t *p = malloc(cap);
    if (!p)
        return ST_E_NOMEM;
    memcpy(p, hdr, 16);
    size_t pos = 16;
    for (size_t off = 0; off < len || off == 0; off += block) {
        size_t chunk = len - off < block ? len - off : block;
        size_t n = cap - pos - 4;
        if (snappy_compress((const char *)in + off, chunk, (char *)p + pos + 4, &n) != SNAPPY_OK) {
            free(p);
            return ST_E_IO;
        }
        p[pos] = (uint8_t)(n >> 24);
        p[pos + 1] = (uint8_t)(n >> 16);
        p[pos + 2] = (uint8_t)(n >> 8);
        p[pos + 3] = (uint8_t)n;
        pos += 4 + n;
        if (chunk == 0)
            break;
    }
    *out = p;
    *out_len = pos;
    return 0;
}

int st_compress(int codec, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len)
{
    size_t cap, n;
    uint8_t *p;
    switch (codec) {
    case ST_CODEC_GZIP:
        return gzip_all(in, in_len, out, out_len);
    case ST_CODEC_SNAPPY:
        return snappy_all(in, in_len, out, out_len);
    case ST_CODEC_LZ4: {
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof(prefs));
        cap = LZ4F_compressFrameBound(in_len, &prefs);
        if (!(p = malloc(cap)))
            return ST_E_NOMEM;
        n = LZ4F_compressFrame(p, cap, in, in_len, &prefs);
        if (LZ4F_isError(n)) {
            free(p);
            return ST_E_IO;
        }
        break;
    }
    case ST_CODEC_ZSTD:
        cap = ZSTD_compressBound(in_len);
        if (!(p = malloc(cap)))
            return ST_E_NOMEM;
        n = ZSTD_compress(p, cap, in, in_len, 3);
        if (ZSTD_isError(n)) {
            free(p);
            return ST_E_IO;
        }
        break;
    default:
        return ST_E_INVAL;
    }
    *out = p;
    *out_len = n;
    return 0;
}
