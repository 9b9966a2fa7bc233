/* seg_test.c - the remote object format (tiering/seg): segments of every shape
 * round-trip through the zstd seekable writer and reader byte for byte, the
 * zstd CLI decodes an object to the original segment (skipping the seek
 * table), every offset is found in the right chunk, and corrupt or truncated
 * seek tables and frames are rejected with errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/plog.h"
#include "core/st_crc32c.h"
#include "tests/support/tbatch.h"
#include "tiering/seg.h"

/* ---- Helpers ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int fail_after; /* >0: fail the call that would take len past it */
} mbuf_t;

static void mbuf_put(mbuf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static int sink(void *arg, const void *p, size_t n)
{
    mbuf_t *b = arg;
    if (b->fail_after > 0 && b->len + n > (size_t)b->fail_after)
        return ST_E_IO;
    mbuf_put(b, p, n);
    return 0;
}

static void be_put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void le_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Append a batch of n records (value_len bytes each) at offset *next. */
static void seg_add_batch(mbuf_t *seg, int64_t *next, int n, size_t value_len, int64_t ts)
{
    size_t len;
    uint8_t *b = tbatch_build(n, value_len, (uint64_t)*next, ts, &len);
    assert_non_null(b);
    be_put(b, (uint64_t)*next, 8); /* baseOffset is outside the CRC */
    mbuf_put(seg, b, len);
    free(b);
    *next += n;
}

/* A segment of n_batches batches starting at offset base. */
static void seg_build(mbuf_t *seg, int64_t base, int n_batches, int recs, size_t value_len)
{
    int64_t next = base;
    for (int i = 0; i < n_batches; i++)
        seg_add_batch(seg, &next, recs, value_len, 1000000 + (int64_t)i * 10);
}

/* Encode seg in pieces of `piece` bytes (0 = all at once). */
static int
encode(const mbuf_t *seg, size_t target, size_t piece, mbuf_t *obj, tier_seg_info_t *info)
{
    tier_seg_opts_t o = {.frame_target_bytes = target};
    tier_seg_writer_t *w;
    assert_int_equal(tier_seg_writer_new(&o, sink, obj, &w), 0);
    int rc = 0;
    size_t pos = 0;
    while (rc == 0 && pos < seg->len) {
        size_t n = piece && piece < seg->len - pos ? piece : seg->len - pos;
        rc = tier_seg_writer_write(w, seg->p + pos, n);
        pos += n;
    }
    if (rc == 0)
        rc = tier_seg_writer_finish(w, info);
    tier_seg_writer_free(w);
    return rc;
}

/* `zstd -dc` of the object must give back the segment exactly. */
static void check_zstd_cli(const mbuf_t *obj, const mbuf_t *seg)
{
    char dir[] = "/tmp/seg_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char in[64], out[64], cmd[256];
    snprintf(in, sizeof in, "%s/obj.seg.zst", dir);
    snprintf(out, sizeof out, "%s/seg.log", dir);
    FILE *f = fopen(in, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(obj->p, 1, obj->len, f), obj->len);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "zstd -q -dc '%s' > '%s'", in, out);
    assert_int_equal(system(cmd), 0);
    f = fopen(out, "rb");
    assert_non_null(f);
    uint8_t *back = malloc(seg->len + 1);
    size_t got = fread(back, 1, seg->len + 1, f);
    fclose(f);
    assert_int_equal(got, seg->len);
    if (seg->len > 0)
        assert_memory_equal(back, seg->p, seg->len);
    free(back);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* From the object's tail alone (recovery), with one retry when the guessed
 * tail was too short, the writer's description comes back exactly. */
static void check_tail_describe(const mbuf_t *obj, const tier_seg_info_t *info)
{
    tier_seg_info_t d;
    uint64_t need = 0;
    size_t small = obj->len < 32 ? obj->len : 32;
    int rc = tier_seg_tail_describe(obj->p + obj->len - small, small, obj->len, &need, &d);
    if (info->n_chunks == 0) {
        assert_true(rc == ST_E_NOTFOUND || rc == ST_E_AGAIN);
        return;
    }
    assert_int_equal(rc, ST_E_AGAIN);
    assert_true(need > small && need <= obj->len);
    rc = tier_seg_tail_describe(obj->p + obj->len - need, need, obj->len, &need, &d);
    if (rc == ST_E_AGAIN) /* the first guess covered the seek table, not the chunk table */
        rc = tier_seg_tail_describe(obj->p + obj->len - need, need, obj->len, &need, &d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.n_chunks, info->n_chunks);
    assert_memory_equal(d.chunks, info->chunks, info->n_chunks * sizeof(*d.chunks));
    assert_int_equal(d.base_offset, info->base_offset);
    assert_int_equal(d.last_offset, info->last_offset);
    assert_int_equal(d.base_ts, info->base_ts);
    assert_int_equal(d.max_ts, info->max_ts);
    assert_int_equal(d.raw_size, info->raw_size);
    assert_int_equal(d.obj_size, info->obj_size);
    assert_int_equal(d.obj_crc32c, info->obj_crc32c);
    tier_seg_info_fini(&d);
}

/* Parse the table from a small tail first (as a reader with one ranged GET
 * of a guessed size would), then decode every chunk and compare. */
static void check_roundtrip(const mbuf_t *seg, const mbuf_t *obj, const tier_seg_info_t *info)
{
    tier_seg_table_t t;
    size_t small = obj->len < 32 ? obj->len : 32;
    int rc = tier_seg_table_parse(obj->p + obj->len - small, small, obj->len, &t);
    if (rc == ST_E_AGAIN) {
        assert_true(t.table_size > small && t.table_size <= obj->len);
        uint64_t sz;
        assert_int_equal(tier_seg_table_size(obj->p + obj->len - small, small, &sz), 0);
        assert_int_equal(sz, t.table_size);
        rc = tier_seg_table_parse(obj->p + obj->len - sz, sz, obj->len, &t);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(t.n_frames, info->n_chunks);
    assert_true(t.has_checksums);
    assert_int_equal(t.raw_size, seg->len);
    assert_int_equal(info->raw_size, seg->len);
    assert_int_equal(info->obj_size, obj->len);
    assert_int_equal(info->obj_crc32c, st_crc32c(0, obj->p, obj->len));
    size_t raw_pos = 0;
    for (size_t i = 0; i < info->n_chunks; i++) {
        const tier_seg_chunk_t *c = &info->chunks[i];
        assert_int_equal(t.frames[i].obj_pos, c->obj_pos);
        assert_int_equal(t.frames[i].obj_len, c->obj_len);
        assert_int_equal(t.frames[i].raw_len, c->raw_len);
        assert_int_equal(t.frames[i].raw_pos, raw_pos);
        uint8_t *raw;
        size_t len;
        assert_int_equal(
            tier_seg_chunk_decode(obj->p + c->obj_pos, c->obj_len, c, c->raw_len, &raw, &len), 0);
        assert_int_equal(len, c->raw_len);
        assert_memory_equal(raw, seg->p + raw_pos, len);
        tier_seg_chunk_t d;
        assert_int_equal(tier_seg_chunk_describe(raw, len, &d), 0);
        assert_int_equal(d.first_offset, c->first_offset);
        assert_int_equal(d.last_offset, c->last_offset);
        assert_int_equal(d.first_ts, c->first_ts);
        assert_int_equal(d.max_ts, c->max_ts);
        assert_int_equal(d.n_batches, c->n_batches);
        free(raw);
        /* The same frame through the seek table alone (recovery path). */
        assert_int_equal(tier_seg_frame_decode(obj->p + c->obj_pos, c->obj_len, &t.frames[i], true,
                                               c->raw_len, &raw, &len),
                         0);
        assert_memory_equal(raw, seg->p + raw_pos, len);
        free(raw);
        raw_pos += c->raw_len;
        if (i > 0)
            assert_int_equal(c->first_offset, info->chunks[i - 1].last_offset + 1);
    }
    assert_int_equal(raw_pos, seg->len);
    tier_seg_table_fini(&t);
    check_tail_describe(obj, info);
    check_zstd_cli(obj, seg);
}

/* Every offset of the segment lands in the chunk that holds it. */
static void check_find_every_offset(const tier_seg_info_t *info)
{
    if (info->n_chunks == 0) {
        assert_int_equal(tier_seg_chunk_find(NULL, 0, 0), ST_E_RANGE);
        return;
    }
    for (int64_t o = info->base_offset; o <= info->last_offset; o++) {
        int i = tier_seg_chunk_find(info->chunks, info->n_chunks, o);
        assert_true(i >= 0);
        assert_true(info->chunks[i].first_offset <= o && o <= info->chunks[i].last_offset);
    }
    assert_int_equal(tier_seg_chunk_find(info->chunks, info->n_chunks, info->base_offset - 1),
                     ST_E_RANGE);
    assert_int_equal(tier_seg_chunk_find(info->chunks, info->n_chunks, info->last_offset + 1),
                     ST_E_RANGE);
}

/* ---- Round trips ---- */

static void test_seg_roundtrip_empty(void **state)
{
    mbuf_t seg = {0}, obj = {0};
    tier_seg_info_t info;
    assert_int_equal(encode(&seg, 0, 0, &obj, &info), 0);
    assert_int_equal(info.n_chunks, 0);
    assert_int_equal(info.base_offset, -1);
    assert_int_equal(info.last_offset, -1);
    assert_int_equal(obj.len, TIER_SEG_SKIP_HDR_SIZE + TIER_SEG_FOOTER_SIZE);
    check_roundtrip(&seg, &obj, &info);
    check_find_every_offset(&info);
    tier_seg_info_fini(&info);
    free(obj.p);
}

static void test_seg_roundtrip_one_batch(void **state)
{
    mbuf_t seg = {0}, obj = {0};
    seg_build(&seg, 42, 1, 5, 100);
    tier_seg_info_t info;
    assert_int_equal(encode(&seg, 0, 0, &obj, &info), 0);
    assert_int_equal(info.n_chunks, 1);
    assert_int_equal(info.base_offset, 42);
    assert_int_equal(info.last_offset, 46);
    assert_int_equal(info.base_ts, 1000000);
    assert_int_equal(info.max_ts, 1000004);
    assert_int_equal(info.chunks[0].obj_pos, 0);
    assert_int_equal(info.chunks[0].n_batches, 1);
    check_roundtrip(&seg, &obj, &info);
    check_find_every_offset(&info);
    tier_seg_info_fini(&info);
    free(seg.p);
    free(obj.p);
}

static void test_seg_roundtrip_many_batches_any_split(void **state)
{
    mbuf_t seg = {0};
    seg_build(&seg, 1000, 400, 10, 150); /* ~700 KiB */
    const size_t target = 64 * 1024;
    mbuf_t whole = {0};
    tier_seg_info_t info;
    assert_int_equal(encode(&seg, target, 0, &whole, &info), 0);
    assert_true(info.n_chunks > 8);
    for (size_t i = 0; i < info.n_chunks; i++) {
        assert_true(info.chunks[i].raw_len <= target);
        if (i + 1 < info.n_chunks) /* closed only when the next batch did not fit */
            assert_true(info.chunks[i].raw_len > target - 3000);
        assert_int_equal(info.chunks[i].first_ts, 1000000 + (info.chunks[i].first_offset - 1000));
    }
    assert_int_equal(info.base_offset, 1000);
    assert_int_equal(info.last_offset, 1000 + 4000 - 1);
    check_roundtrip(&seg, &whole, &info);
    check_find_every_offset(&info);
    /* Any split of the input stream gives the same object. */
    const size_t pieces[] = {1, 7, 61, 4096, 65536 + 3};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        mbuf_t obj = {0};
        tier_seg_info_t i2;
        assert_int_equal(encode(&seg, target, pieces[k], &obj, &i2), 0);
        assert_int_equal(obj.len, whole.len);
        assert_memory_equal(obj.p, whole.p, obj.len);
        assert_int_equal(i2.n_chunks, info.n_chunks);
        assert_memory_equal(i2.chunks, info.chunks, info.n_chunks * sizeof *info.chunks);
        tier_seg_info_fini(&i2);
        free(obj.p);
    }
    tier_seg_info_fini(&info);
    free(seg.p);
    free(whole.p);
}

static void test_seg_roundtrip_batch_larger_than_target(void **state)
{
    mbuf_t seg = {0}, obj = {0};
    int64_t next = 0;
    seg_add_batch(&seg, &next, 3, 100, 10);
    seg_add_batch(&seg, &next, 3, 100, 20);
    seg_add_batch(&seg, &next, 20, 10000, 30); /* ~200 KiB alone */
    seg_add_batch(&seg, &next, 3, 100, 40);
    seg_add_batch(&seg, &next, 50, 10000, 50); /* another, right after */
    seg_add_batch(&seg, &next, 50, 10000, 60);
    tier_seg_info_t info;
    assert_int_equal(encode(&seg, 16 * 1024, 5000, &obj, &info), 0);
    assert_int_equal(info.n_chunks, 5);
    assert_int_equal(info.chunks[0].n_batches, 2);
    assert_int_equal(info.chunks[1].first_offset, 6);
    assert_int_equal(info.chunks[1].n_batches, 1);
    assert_true(info.chunks[1].raw_len > 16 * 1024);
    assert_int_equal(info.chunks[2].n_batches, 1);
    assert_int_equal(info.chunks[3].n_batches, 1);
    assert_int_equal(info.chunks[4].last_offset, next - 1);
    check_roundtrip(&seg, &obj, &info);
    check_find_every_offset(&info);
    tier_seg_info_fini(&info);
    free(seg.p);
    free(obj.p);
}

static void test_seg_roundtrip_default_target_from_fd(void **state)
{
    mbuf_t seg = {0}, obj = {0}, obj2 = {0};
    seg_build(&seg, 0, 300, 10, 1000); /* ~3 MiB: 3 frames of 1 MiB */
    char path[] = "/tmp/seg_test_fd.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4); /* the segment starts at 4 */
    assert_int_equal(write(fd, seg.p, seg.len), (ssize_t)seg.len);
    tier_seg_info_t info, info2;
    assert_int_equal(tier_seg_write_fd(fd, 4, (off_t)seg.len, NULL, sink, &obj, &info), 0);
    assert_int_equal(info.n_chunks, 3);
    for (size_t i = 0; i < info.n_chunks; i++)
        assert_true(info.chunks[i].raw_len <= TIER_SEG_FRAME_TARGET);
    check_roundtrip(&seg, &obj, &info);
    assert_int_equal(encode(&seg, 0, 0, &obj2, &info2), 0);
    assert_int_equal(obj2.len, obj.len);
    assert_memory_equal(obj2.p, obj.p, obj.len);
    /* A file shorter than the caller claims is an I/O error. */
    mbuf_t obj3 = {0};
    tier_seg_info_t info3;
    assert_int_equal(tier_seg_write_fd(fd, 4, (off_t)seg.len + 100, NULL, sink, &obj3, &info3),
                     ST_E_IO);
    close(fd);
    unlink(path);
    tier_seg_info_fini(&info);
    tier_seg_info_fini(&info2);
    free(seg.p);
    free(obj.p);
    free(obj2.p);
    free(obj3.p);
}

/* ---- Writer errors ---- */

static void test_seg_writer_rejects_bad_segments(void **state)
{
    mbuf_t seg = {0};
    seg_build(&seg, 0, 3, 5, 50);
    size_t b0 = 12 + ((size_t)seg.p[8] << 24 | (size_t)seg.p[9] << 16 | (size_t)seg.p[10] << 8 |
                      seg.p[11]); /* start of batch 1 */
    tier_seg_info_t info;

    mbuf_t cut = {.p = seg.p, .len = seg.len - 1}, obj = {0};
    assert_int_equal(encode(&cut, 0, 0, &obj, &info), ST_E_MALFORMED); /* torn tail */
    free(obj.p);

    uint8_t *c = malloc(seg.len);
    memcpy(c, seg.p, seg.len);
    c[b0 + 70] ^= 1; /* payload of batch 1: CRC mismatch */
    mbuf_t bad = {.p = c, .len = seg.len};
    obj = (mbuf_t){0};
    assert_int_equal(encode(&bad, 0, 0, &obj, &info), ST_E_CORRUPT);
    free(obj.p);

    memcpy(c, seg.p, seg.len);
    c[b0 + 16] = 1; /* magic 1 */
    obj = (mbuf_t){0};
    assert_int_equal(encode(&bad, 0, 0, &obj, &info), ST_E_MALFORMED);
    free(obj.p);

    memcpy(c, seg.p, seg.len);
    be_put(c + b0, 2, 8); /* batch 1 starts at offset 2 < 5: overlaps batch 0 */
    obj = (mbuf_t){0};
    assert_int_equal(encode(&bad, 0, 0, &obj, &info), ST_E_MALFORMED);
    free(obj.p);

    memcpy(c, seg.p, seg.len);
    be_put(c + b0 + 8, 0x7fffff00, 4); /* batchLength of ~2 GiB */
    obj = (mbuf_t){0};
    assert_int_equal(encode(&bad, 0, 0, &obj, &info), ST_E_TOO_LARGE);
    free(obj.p);

    memcpy(c, seg.p, seg.len);
    be_put(c + b0 + 8, 10, 4); /* batchLength below the header */
    obj = (mbuf_t){0};
    assert_int_equal(encode(&bad, 0, 0, &obj, &info), ST_E_MALFORMED);
    free(obj.p);

    /* A sink error aborts the write and sticks. */
    obj = (mbuf_t){.fail_after = 1};
    tier_seg_opts_t o = {.frame_target_bytes = 1024};
    tier_seg_writer_t *w;
    assert_int_equal(tier_seg_writer_new(&o, sink, &obj, &w), 0);
    assert_int_equal(tier_seg_writer_write(w, seg.p, seg.len), ST_E_IO);
    assert_int_equal(tier_seg_writer_write(w, seg.p, 1), ST_E_IO);
    assert_int_equal(tier_seg_writer_finish(w, &info), ST_E_IO);
    tier_seg_writer_free(w);
    free(obj.p);

    o.level = 1000;
    assert_int_equal(tier_seg_writer_new(&o, sink, &obj, &w), ST_E_INVAL);
    free(c);
    free(seg.p);
}

/* ---- Reader errors ---- */

/* An object of three frames, for the corruption tests. */
static void small_object(mbuf_t *seg, mbuf_t *obj, tier_seg_info_t *info)
{
    seg_build(seg, 7, 30, 5, 200);
    assert_int_equal(encode(seg, 4096, 0, obj, info), 0);
    assert_true(info->n_chunks >= 3);
}

static void test_seg_table_rejects_corruption(void **state)
{
    mbuf_t seg = {0}, obj = {0};
    tier_seg_info_t info;
    small_object(&seg, &obj, &info);
    tier_seg_table_t t;
    uint64_t tsize = 8 + info.n_chunks * 12 + 9;
    uint8_t *tail = obj.p + obj.len - tsize;
    uint8_t *c = malloc(obj.len);
#define RESET() memcpy(c, obj.p, obj.len)
#define PARSE() tier_seg_table_parse(c, obj.len, obj.len, &t)
    RESET();
    assert_int_equal(PARSE(), 0);
    tier_seg_table_fini(&t);

    RESET();
    c[obj.len - 1] ^= 0xff; /* seekable magic */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    c[obj.len - 5] |= 0x04; /* reserved descriptor bit */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - 9, TIER_SEG_MAX_FRAMES + 1); /* frame count over the cap */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - 9, 0xffffffffu);
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - 9, (uint32_t)info.n_chunks + 1); /* table reaches into frames */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - 9, 10000000); /* table larger than the object */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    c[obj.len - tsize] ^= 1; /* skippable magic */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    c[obj.len - tsize + 4] ^= 1; /* skippable frame size */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - tsize + 8, info.chunks[0].obj_len + 1); /* sizes don't add up */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - tsize + 8, 0); /* empty frame */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    RESET();
    le_put32(c + obj.len - tsize + 12, TIER_SEG_MAX_FRAME_RAW + 1); /* huge raw size */
    assert_int_equal(PARSE(), ST_E_MALFORMED);
    /* The object is not what the caller says: larger, or the tail is short. */
    assert_int_equal(tier_seg_table_parse(obj.p, obj.len, obj.len + 1, &t), ST_E_MALFORMED);
    assert_int_equal(tier_seg_table_parse(tail + 1, tsize - 1, obj.len, &t), ST_E_AGAIN);
    assert_int_equal(t.table_size, tsize);
    assert_int_equal(tier_seg_table_parse(obj.p, 8, obj.len, &t), ST_E_MALFORMED);
    assert_int_equal(tier_seg_table_parse(obj.p, obj.len, obj.len - 1, &t), ST_E_INVAL);
    /* Truncations at every length and every single-byte flip of the table
     * never crash (ASan) and never succeed with a wrong layout. */
    for (size_t cut = 0; cut < obj.len; cut += (cut < obj.len - tsize - 64 ? 97 : 1)) {
        int rc = tier_seg_table_parse(obj.p, cut, cut, &t);
        assert_true(rc < 0);
    }
    for (size_t i = obj.len - tsize; i < obj.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            RESET();
            c[i] ^= (uint8_t)(1u << bit);
            int rc = PARSE();
            if (rc == 0) { /* only raw sizes, checksums, unused bits: same layout */
                assert_int_equal(t.n_frames, info.n_chunks);
                for (size_t k = 0; k < info.n_chunks; k++) {
                    assert_int_equal(t.frames[k].obj_pos, info.chunks[k].obj_pos);
                    assert_int_equal(t.frames[k].obj_len, info.chunks[k].obj_len);
                }
                tier_seg_table_fini(&t);
            }
        }
    }
#undef RESET
#undef PARSE
    free(c);
    tier_seg_info_fini(&info);
    free(seg.p);
    free(obj.p);
}

/* The chunk table: damage is caught, an object without one says so, and a
 * whole-object describe checks it against the frames. */
static void test_seg_chunk_table(void **state)
{
    (void)state;
    mbuf_t seg = {0}, obj = {0};
    tier_seg_info_t info, d;
    small_object(&seg, &obj, &info);
    uint64_t need, tsize = 8 + info.n_chunks * 12 + 9, csize = TIER_SEG_CT_SIZE(info.n_chunks);
    size_t ct_pos = obj.len - tsize - csize;
    /* Any flipped byte of the chunk table is caught (magic, size, tag, CRC). */
    for (size_t i = ct_pos; i < obj.len - tsize; i++) {
        obj.p[i] ^= 0x40;
        int rc = tier_seg_tail_describe(obj.p, obj.len, obj.len, &need, &d);
        assert_true(rc == ST_E_CORRUPT || rc == ST_E_MALFORMED);
        obj.p[i] ^= 0x40;
    }
    /* A consistent but false entry (CRC recomputed) fails the whole-object
     * describe, which decodes the frames. */
    uint8_t *e = obj.p + ct_pos + 8 + 16; /* first entry: first_offset */
    e[8] ^= 1;                            /* its last_offset */
    uint32_t crc = st_crc32c(0, obj.p + ct_pos + 8, csize - 12);
    le_put32(obj.p + ct_pos + csize - 4, crc);
    assert_int_equal(tier_seg_object_describe(obj.p, obj.len, NULL, NULL, &d), ST_E_CORRUPT);
    tier_seg_info_fini(&d);
    e[8] ^= 1;
    le_put32(obj.p + ct_pos + csize - 4, st_crc32c(0, obj.p + ct_pos + 8, csize - 12));
    assert_int_equal(tier_seg_object_describe(obj.p, obj.len, NULL, NULL, &d), 0);
    tier_seg_info_fini(&d);
    /* Without a chunk table (frames then seek table): decode it whole. */
    mbuf_t old = {0};
    mbuf_put(&old, obj.p, ct_pos);
    mbuf_put(&old, obj.p + obj.len - tsize, tsize);
    assert_int_equal(tier_seg_tail_describe(old.p, old.len, old.len, &need, &d), ST_E_NOTFOUND);
    assert_int_equal(tier_seg_object_describe(old.p, old.len, NULL, NULL, &d), 0);
    assert_int_equal(d.n_chunks, info.n_chunks);
    tier_seg_info_fini(&d);
    free(old.p);
    free(seg.p);
    free(obj.p);
    tier_seg_info_fini(&info);
}

/* A transactional batch of pid (n records), or its control marker (abort or
 * commit), at offset *next: the header fields patched, the CRC recomputed. */
static void seg_add_txn(mbuf_t *seg, int64_t *next, int64_t pid, int n, int marker)
{
    size_t len;
    uint8_t *b = tbatch_build(n, 8, (uint64_t)*next, 1000, &len);
    assert_non_null(b);
    if (marker >= 0) { /* one record, key = int16 version 0, int16 type */
        assert_true(len > 61 + 9);
        uint8_t *r = b + 61;
        r[0] = 2 * 9; /* record length 9 */
        r[1] = 0;     /* attributes */
        r[2] = 0;     /* timestampDelta */
        r[3] = 0;     /* offsetDelta */
        r[4] = 8;     /* key length 4 */
        be_put(r + 5, 0, 2);
        be_put(r + 7, (uint64_t)marker, 2);
    }
    be_put(b, (uint64_t)*next, 8);
    be_put(b + 21, marker >= 0 ? 0x30 : 0x10, 2); /* transactional (+ control) */
    be_put(b + 43, (uint64_t)pid, 8);
    uint32_t crc = st_crc32c(0, b + 21, len - 21);
    be_put(b + 17, crc, 4);
    mbuf_put(seg, b, len);
    free(b);
    *next += n;
}

/* The txn table: ABORT markers of the segment and their first offsets (from
 * the segment, or the caller's known list for a transaction begun earlier)
 * come back from the writer, from the tail alone, and from the whole object;
 * commits and plain batches add nothing; an object without aborts has no
 * table (byte for byte as before); damage to the table is caught. */
static void test_seg_txn_table(void **state)
{
    (void)state;
    mbuf_t seg = {0}, obj = {0};
    int64_t next = 100;
    seg_add_txn(&seg, &next, 7, 3, 0);   /* 100-102: pid 7's marker (abort), begun before */
    seg_add_batch(&seg, &next, 2, 8, 1); /* 103-104: plain */
    seg_add_txn(&seg, &next, 5, 2, -1);  /* 105-106: pid 5 data */
    seg_add_txn(&seg, &next, 6, 2, -1);  /* 107-108: pid 6 data */
    seg_add_txn(&seg, &next, 5, 2, -1);  /* 109-110: pid 5 data */
    seg_add_txn(&seg, &next, 6, 1, 1);   /* 111: pid 6 commit */
    seg_add_txn(&seg, &next, 5, 1, 0);   /* 112: pid 5 abort */
    seg_add_txn(&seg, &next, 8, 1, 0);   /* 113: pid 8 abort, unknown start */
    tier_seg_aborted_t known[] = {{7, 40, 100}, {9, 1, 113}};
    tier_seg_opts_t o = {.frame_target_bytes = 200, .known_aborted = known, .n_known_aborted = 2};
    tier_seg_writer_t *w;
    tier_seg_info_t info, d;
    assert_int_equal(tier_seg_writer_new(&o, sink, &obj, &w), 0);
    assert_int_equal(tier_seg_writer_write(w, seg.p, seg.len), 0);
    assert_int_equal(tier_seg_writer_finish(w, &info), 0);
    tier_seg_writer_free(w);
    const tier_seg_aborted_t want[] = {{7, 40, 100}, {5, 105, 112}, {8, 100, 113}};
    assert_int_equal(info.n_aborted, 3);
    assert_memory_equal(info.aborted, want, sizeof(want));
    check_zstd_cli(&obj, &seg);
    check_roundtrip(&seg, &obj, &info);
    uint64_t need;
    assert_int_equal(tier_seg_tail_describe(obj.p, obj.len, obj.len, &need, &d), 0);
    assert_int_equal(d.n_aborted, 3);
    assert_memory_equal(d.aborted, want, sizeof(want));
    assert_int_equal(d.obj_crc32c, info.obj_crc32c);
    assert_int_equal(d.obj_crc32c, st_crc32c(0, obj.p, obj.len));
    tier_seg_info_fini(&d);
    /* A short tail first: the reader asks for more and gets there. */
    size_t got = 32;
    int rc;
    while ((rc = tier_seg_tail_describe(obj.p + obj.len - got, got, obj.len, &need, &d)) ==
           ST_E_AGAIN) {
        assert_true(need > got && need <= obj.len);
        got = need;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(d.n_aborted, 3);
    tier_seg_info_fini(&d);
    assert_int_equal(tier_seg_object_describe(obj.p, obj.len, NULL, NULL, &d), 0);
    assert_int_equal(d.n_aborted, 3);
    assert_memory_equal(d.aborted, want, sizeof(want));
    assert_int_equal(d.n_chunks, info.n_chunks);
    tier_seg_info_fini(&d);
    /* Every flipped byte of the txn table is caught. */
    uint64_t tsize = 8 + info.n_chunks * 12 + 9, csize = TIER_SEG_CT_SIZE(info.n_chunks);
    uint64_t xsize = TIER_SEG_TX_SIZE(3);
    size_t tx_pos = obj.len - tsize - csize - xsize;
    assert_int_equal(obj.p[tx_pos], 0x5C);
    for (size_t i = tx_pos; i < tx_pos + xsize; i++) {
        obj.p[i] ^= 0x40;
        rc = tier_seg_tail_describe(obj.p, obj.len, obj.len, &need, &d);
        assert_true(rc == ST_E_CORRUPT || rc == ST_E_MALFORMED);
        obj.p[i] ^= 0x40;
    }
    tier_seg_info_fini(&info);
    /* Commits only: no txn table, the layout of objects written before it. */
    mbuf_t seg2 = {0}, obj2 = {0};
    next = 0;
    seg_add_txn(&seg2, &next, 5, 2, -1);
    seg_add_txn(&seg2, &next, 5, 1, 1);
    assert_int_equal(encode(&seg2, 0, 0, &obj2, &info), 0);
    assert_int_equal(info.n_aborted, 0);
    assert_null(info.aborted);
    assert_int_equal(obj2.len, info.chunks[0].obj_len + TIER_SEG_CT_SIZE(1) + 8 + 12 + 9);
    assert_int_equal(tier_seg_tail_describe(obj2.p, obj2.len, obj2.len, &need, &d), 0);
    assert_int_equal(d.n_aborted, 0);
    tier_seg_info_fini(&d);
    tier_seg_info_fini(&info);
    free(seg.p);
    free(obj.p);
    free(seg2.p);
    free(obj2.p);
}

static void test_seg_chunk_decode_rejects_corruption(void **state)
{
    mbuf_t seg = {0}, obj = {0};
    tier_seg_info_t info;
    small_object(&seg, &obj, &info);
    tier_seg_chunk_t ch = info.chunks[1];
    uint8_t *f = malloc(ch.obj_len);
    uint8_t *raw = NULL;
    size_t len;
    memcpy(f, obj.p + ch.obj_pos, ch.obj_len);
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &ch, ch.raw_len, &raw, &len), 0);
    free(raw);

    /* Output cap. */
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &ch, ch.raw_len - 1, &raw, &len),
                     ST_E_TOO_LARGE);
    /* Truncated range, or the neighbour's bytes appended. */
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len - 1, &ch, 1 << 20, &raw, &len),
                     ST_E_MALFORMED);
    tier_seg_chunk_t m = ch;
    m.obj_len = ch.obj_len - 1;
    m.crc32c = st_crc32c(0, f, m.obj_len);
    assert_int_equal(tier_seg_chunk_decode(f, m.obj_len, &m, 1 << 20, &raw, &len), ST_E_MALFORMED);
    /* Every bit flip in the frame: CRC mismatch. */
    for (size_t i = 0; i < ch.obj_len; i += 3) {
        f[i] ^= 0x10;
        assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &ch, 1 << 20, &raw, &len),
                         ST_E_CORRUPT);
        f[i] ^= 0x10;
    }
    /* Bit flips with a matching CRC (metadata of the damaged bytes): zstd's
     * own checks or ours reject them, never a crash or a wrong answer. */
    for (size_t i = 0; i < ch.obj_len; i++) {
        f[i] ^= 0x01;
        m = ch;
        m.crc32c = st_crc32c(0, f, ch.obj_len);
        int rc = tier_seg_chunk_decode(f, ch.obj_len, &m, 1 << 20, &raw, &len);
        if (rc == 0) { /* a bit zstd ignores: the content is still exact */
            assert_int_equal(len, ch.raw_len);
            assert_memory_equal(raw, seg.p + (info.chunks[0].raw_len), len);
            free(raw);
        } else {
            assert_true(rc == ST_E_CORRUPT || rc == ST_E_MALFORMED || rc == ST_E_TOO_LARGE);
        }
        f[i] ^= 0x01;
    }
    /* Metadata that does not match the frame. */
    m = ch;
    m.raw_len++;
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &m, 1 << 20, &raw, &len), ST_E_CORRUPT);
    m = ch;
    m.first_offset++;
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &m, 1 << 20, &raw, &len), ST_E_CORRUPT);
    m = ch;
    m.last_offset--;
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &m, 1 << 20, &raw, &len), ST_E_CORRUPT);
    m = info.chunks[2]; /* the wrong chunk's range for these bytes */
    assert_int_equal(tier_seg_chunk_decode(f, ch.obj_len, &m, 1 << 20, &raw, &len), ST_E_MALFORMED);
    /* The seek table path checks the XXH64 entry against the frame. */
    tier_seg_frame_t fr = {.obj_len = ch.obj_len, .raw_len = ch.raw_len, .xxh32 = 1};
    assert_int_equal(tier_seg_frame_decode(f, ch.obj_len, &fr, true, 1 << 20, &raw, &len),
                     ST_E_CORRUPT);
    /* A skippable frame is not a chunk. */
    uint8_t skip[16] = {0};
    le_put32(skip, TIER_SEG_SKIPPABLE_MAGIC);
    le_put32(skip + 4, 8);
    fr = (tier_seg_frame_t){.obj_len = sizeof skip, .raw_len = 0};
    assert_int_equal(tier_seg_frame_decode(skip, sizeof skip, &fr, false, 1 << 20, &raw, &len),
                     ST_E_MALFORMED);
    free(f);
    tier_seg_info_fini(&info);
    free(seg.p);
    free(obj.p);
}

static void test_seg_chunk_describe_rejects_torn_batches(void **state)
{
    mbuf_t seg = {0};
    seg_build(&seg, 0, 2, 5, 50);
    tier_seg_chunk_t d;
    assert_int_equal(tier_seg_chunk_describe(seg.p, seg.len, &d), 0);
    assert_int_equal(d.n_batches, 2);
    assert_int_equal(tier_seg_chunk_describe(seg.p, 0, &d), ST_E_MALFORMED);
    for (size_t cut = 1; cut < seg.len; cut++)
        if (cut != seg.len / 2)
            assert_int_equal(tier_seg_chunk_describe(seg.p, cut, &d), ST_E_MALFORMED);
    free(seg.p);
}

static void test_seg_chunk_find_gaps(void **state)
{
    /* Chunks with gaps between them (offsets removed by compaction). */
    tier_seg_chunk_t c[4] = {
        {.first_offset = 10, .last_offset = 19},
        {.first_offset = 25, .last_offset = 25},
        {.first_offset = 26, .last_offset = 40},
        {.first_offset = 50, .last_offset = 60},
    };
    assert_int_equal(tier_seg_chunk_find(c, 4, 9), ST_E_RANGE);
    assert_int_equal(tier_seg_chunk_find(c, 4, 10), 0);
    assert_int_equal(tier_seg_chunk_find(c, 4, 19), 0);
    assert_int_equal(tier_seg_chunk_find(c, 4, 20), 1);
    assert_int_equal(tier_seg_chunk_find(c, 4, 25), 1);
    assert_int_equal(tier_seg_chunk_find(c, 4, 26), 2);
    assert_int_equal(tier_seg_chunk_find(c, 4, 41), 3);
    assert_int_equal(tier_seg_chunk_find(c, 4, 60), 3);
    assert_int_equal(tier_seg_chunk_find(c, 4, 61), ST_E_RANGE);
    assert_int_equal(tier_seg_chunk_find(c, 1, 15), 0);
}

typedef struct {
    uint32_t n_frames;
    size_t raw_bytes;
    uint32_t fail_at; /* frame index whose callback fails, UINT32_MAX = none */
} frames_seen_t;

static int on_frame(
    void *arg, uint32_t index, const tier_seg_chunk_t *chunk, const uint8_t *raw, size_t raw_len)
{
    frames_seen_t *s = arg;
    assert_int_equal(index, s->n_frames);
    assert_int_equal(chunk->raw_len, raw_len);
    assert_non_null(raw);
    if (index == s->fail_at)
        return ST_E_CANCELED;
    s->n_frames++;
    s->raw_bytes += raw_len;
    return 0;
}

/* Describing a whole object (recovery, strata archive verify) gives the writer's info back,
 * shows every frame's batches to the callback, and stops at the callback's error. */
static void test_seg_object_describe_matches_writer(void **state)
{
    (void)state;
    mbuf_t seg = {0}, obj = {0};
    seg_build(&seg, 500, 40, 10, 200);
    tier_seg_info_t w, d;
    assert_int_equal(encode(&seg, 8192, 0, &obj, &w), 0);
    assert_true(w.n_chunks > 3);
    frames_seen_t seen = {0, 0, UINT32_MAX};
    assert_int_equal(tier_seg_object_describe(obj.p, obj.len, on_frame, &seen, &d), 0);
    assert_int_equal(seen.n_frames, w.n_chunks);
    assert_int_equal(seen.raw_bytes, seg.len);
    assert_int_equal(d.n_chunks, w.n_chunks);
    assert_int_equal(d.base_offset, 500);
    assert_int_equal(d.last_offset, w.last_offset);
    assert_int_equal(d.obj_crc32c, w.obj_crc32c);
    for (size_t i = 0; i < w.n_chunks; i++) {
        assert_int_equal(d.chunks[i].obj_pos, w.chunks[i].obj_pos);
        assert_int_equal(d.chunks[i].first_offset, w.chunks[i].first_offset);
        assert_int_equal(d.chunks[i].crc32c, w.chunks[i].crc32c);
    }
    tier_seg_info_fini(&d);
    seen = (frames_seen_t){0, 0, 2};
    assert_int_equal(tier_seg_object_describe(obj.p, obj.len, on_frame, &seen, &d), ST_E_CANCELED);
    assert_int_equal(d.n_chunks, 2); /* the index of the frame that failed */
    tier_seg_info_fini(&d);
    obj.p[obj.len - 1] ^= 1; /* seekable magic */
    assert_int_equal(tier_seg_object_describe(obj.p, obj.len, NULL, NULL, &d), ST_E_MALFORMED);
    tier_seg_info_fini(&d);
    tier_seg_info_fini(&w);
    free(seg.p);
    free(obj.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seg_roundtrip_empty),
        cmocka_unit_test(test_seg_roundtrip_one_batch),
        cmocka_unit_test(test_seg_roundtrip_many_batches_any_split),
        cmocka_unit_test(test_seg_roundtrip_batch_larger_than_target),
        cmocka_unit_test(test_seg_roundtrip_default_target_from_fd),
        cmocka_unit_test(test_seg_writer_rejects_bad_segments),
        cmocka_unit_test(test_seg_table_rejects_corruption),
        cmocka_unit_test(test_seg_chunk_table),
        cmocka_unit_test(test_seg_txn_table),
        cmocka_unit_test(test_seg_chunk_decode_rejects_corruption),
        cmocka_unit_test(test_seg_chunk_describe_rejects_torn_batches),
        cmocka_unit_test(test_seg_chunk_find_gaps),
        cmocka_unit_test(test_seg_object_describe_matches_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
