/* st_codec.h - decompression of Kafka record payloads (gzip, snappy, lz4,
 * zstd), with a hard cap on the output, and compression for the cleaner.
 * Data path: the log stores compressed batches exactly as produced; only
 * code that must look at individual records of a compressed batch (the
 * exact offset of a timestamp for ListOffsets) decompresses, on the loop
 * for small batches.  Input is untrusted: every codec is bounded by max_out. */
#ifndef ST_CODEC_H
#define ST_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/st_err.h"

/* Kafka's codec ids: attributes & 7 of a record batch. */
enum {
    ST_CODEC_NONE = 0,
    ST_CODEC_GZIP = 1,
    ST_CODEC_SNAPPY = 2,
    ST_CODEC_LZ4 = 3,
    ST_CODEC_ZSTD = 4
};

/** Decompress `in` (a batch's records section) into a malloc'd buffer.
 * Snappy accepts both the xerial framing Java clients use and raw snappy;
 * lz4 is the LZ4 frame format.
 * @return 0 with *out (caller frees) and *out_len; ST_E_MALFORMED for bad
 *         input, ST_E_TOO_LARGE over max_out, ST_E_INVAL for an unknown codec. */
ST_MUST_CHECK int st_decompress(
    int codec, const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len);

/** Compress `in` with codec (gzip; snappy in the xerial framing Java clients
 * write; an LZ4 frame; zstd level 3) into a malloc'd buffer: the log
 * cleaner re-compresses the batches it rewrites with their own codec.
 * @return 0 with *out (caller frees) and *out_len; ST_E_INVAL for an unknown
 *         codec, ST_E_NOMEM, ST_E_IO when the library fails.
 * @thread any  @blocking CPU */
ST_MUST_CHECK int
st_compress(int codec, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len);

#endif
