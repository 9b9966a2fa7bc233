/* kp_test.c - unit tests of the Kafka wire codec (kafka/kp.h).
 * Data path: none; covers the reader primitives (bounds, varint limits, null vs empty),
 * the writer (back-patching, tagged sizes), the arena cap, and every generated message at
 * every version: encode -> decode -> encode is byte-identical, every truncation fails without
 * over-reading (buffers are exact-size heap copies, so ASan sees any over-read), hand-written
 * byte vectors from the spec decode and re-encode exactly, and unknown tags are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/kp.h"
#include "tests/unit/kp_fill.h"
#include "tests/unit/kp_vectors.h"

#define ARENA_CAP (64u << 20)

/* Decodes buf[0, len) from an exact-size heap copy so ASan catches any over-read. */
static int decode_copy(const kp_msg_desc_t *d,
                       int16_t version,
                       const uint8_t *buf,
                       size_t len,
                       void *msg,
                       kp_arena_t *a,
                       size_t *remaining)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    kp_reader_t r;
    kp_reader_init(&r, copy, len);
    int rc = d->decode(&r, version, msg, a);
    if (remaining != NULL)
        *remaining = kp_reader_remaining(&r);
    if (rc != 0) {
        assert_non_null(r.err_field);
        assert_true(r.err_offset <= len);
    }
    free(copy);
    return rc;
}

/* ---- Reader primitives ---- */

static void test_kp_read_fixed_width_bounds(void **state)
{
    (void)state;
    static const uint8_t buf[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09};
    kp_reader_t r;
    kp_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(kp_read_i8(&r), 1);
    assert_int_equal(kp_read_i16(&r), 0x0203);
    assert_int_equal(kp_read_i32(&r), 0x04050607);
    assert_true(kp_reader_ok(&r));
    r.field = "x";
    assert_int_equal(kp_read_i32(&r), 0); /* only 2 bytes left */
    assert_int_equal(r.err, ST_E_MALFORMED);
    assert_string_equal(r.err_field, "x");
    assert_int_equal(r.err_offset, 7);
    assert_int_equal(kp_reader_remaining(&r), 2); /* failed read does not move */
    assert_int_equal(kp_read_i8(&r), 0);          /* sticky */
    assert_int_equal(kp_reader_remaining(&r), 2);

    static const uint8_t i64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    kp_reader_init(&r, i64, sizeof(i64));
    assert_int_equal(kp_read_i64(&r), -2);
    static const uint8_t f64[] = {0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
    kp_reader_init(&r, f64, sizeof(f64));
    assert_true(kp_read_f64(&r) == 1.5);
    static const uint8_t u[] = {0xff, 0xfe, 0xff, 0xff, 0xff, 0xfd};
    kp_reader_init(&r, u, sizeof(u));
    assert_int_equal(kp_read_u16(&r), 0xfffe);
    assert_int_equal(kp_read_u32(&r), 0xfffffffdu);
    assert_true(kp_reader_ok(&r));
    kp_reader_init(&r, u, 15 - 15);
    kp_uuid_t id = kp_read_uuid(&r);
    assert_true(kp_uuid_is_zero(&id));
    assert_int_equal(r.err, ST_E_MALFORMED);
}

static uint64_t uvar(const uint8_t *b, size_t n, int *err)
{
    kp_reader_t r;
    kp_reader_init(&r, b, n);
    uint64_t v = kp_read_uvarint(&r);
    *err = r.err;
    return v;
}

static void test_kp_read_uvarint_limits(void **state)
{
    (void)state;
    int err;
    static const uint8_t one[] = {0x01};
    assert_int_equal(uvar(one, 1, &err), 1);
    assert_int_equal(err, 0);
    static const uint8_t v300[] = {0xac, 0x02};
    assert_int_equal(uvar(v300, 2, &err), 300);
    assert_int_equal(err, 0);
    static const uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(uvar(max, 5, &err), UINT32_MAX);
    assert_int_equal(err, 0);
    /* Fifth byte carrying more than 4 bits overflows 32 bits. */
    static const uint8_t ovf[] = {0xff, 0xff, 0xff, 0xff, 0x10};
    uvar(ovf, 5, &err);
    assert_int_equal(err, ST_E_MALFORMED);
    /* A sixth byte is never allowed, even for small values. */
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    uvar(six, 6, &err);
    assert_int_equal(err, ST_E_MALFORMED);
    /* Non-minimal but within 5 bytes is accepted, as upstream does. */
    static const uint8_t overlong[] = {0x80, 0x80, 0x00};
    assert_int_equal(uvar(overlong, 3, &err), 0);
    assert_int_equal(err, 0);
    /* Truncated: continuation bit set on the last byte. */
    static const uint8_t trunc[] = {0x80, 0x80};
    uvar(trunc, 2, &err);
    assert_int_equal(err, ST_E_MALFORMED);
    uvar(trunc, 0, &err);
    assert_int_equal(err, ST_E_MALFORMED);
}

static void test_kp_read_varint_zigzag(void **state)
{
    (void)state;
    static const struct {
        int32_t v;
        uint8_t b[5];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {-1, {0x01}, 1},
        {1, {0x02}, 1},
        {-64, {0x7f}, 1},
        {64, {0x80, 0x01}, 2},
        {INT32_MAX, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
        {INT32_MIN, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kp_reader_t r;
        kp_reader_init(&r, cases[i].b, cases[i].n);
        assert_int_equal(kp_read_varint(&r), cases[i].v);
        assert_true(kp_reader_ok(&r));
        assert_int_equal(kp_reader_remaining(&r), 0);
        kp_writer_t w;
        kp_writer_init(&w, 0);
        kp_write_varint(&w, cases[i].v);
        assert_int_equal(w.len, cases[i].n);
        assert_memory_equal(w.buf, cases[i].b, cases[i].n);
        kp_writer_fini(&w);
    }
    /* varlong: 10 bytes max, the tenth carrying one bit. */
    static const uint8_t lmin[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    kp_reader_t r;
    kp_reader_init(&r, lmin, sizeof(lmin));
    assert_true(kp_read_varlong(&r) == INT64_MIN);
    assert_true(kp_reader_ok(&r));
    static const uint8_t lovf[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    kp_reader_init(&r, lovf, sizeof(lovf));
    (void)kp_read_varlong(&r);
    assert_int_equal(r.err, ST_E_MALFORMED);
    static const uint8_t l11[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    kp_reader_init(&r, l11, sizeof(l11));
    (void)kp_read_varlong(&r);
    assert_int_equal(r.err, ST_E_MALFORMED);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    kp_write_varlong(&w, INT64_MIN);
    assert_int_equal(w.len, sizeof(lmin));
    assert_memory_equal(w.buf, lmin, sizeof(lmin));
    kp_writer_fini(&w);
}

static void test_kp_read_str_null_vs_empty(void **state)
{
    (void)state;
    static const uint8_t buf[] = {0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 'h',
                                  'i',  0x00, 0x01, 0x03, 'y',  'o'};
    kp_reader_t r;
    kp_reader_init(&r, buf, sizeof(buf));
    kp_str_t s = kp_read_str(&r);
    assert_int_equal(s.len, -1);
    assert_null(s.ptr);
    s = kp_read_str(&r);
    assert_int_equal(s.len, 0);
    assert_non_null(s.ptr);
    s = kp_read_str(&r);
    assert_int_equal(s.len, 2);
    assert_memory_equal(s.ptr, "hi", 2);
    s = kp_read_compact_str(&r);
    assert_int_equal(s.len, -1);
    s = kp_read_compact_str(&r);
    assert_int_equal(s.len, 0);
    s = kp_read_compact_str(&r);
    assert_int_equal(s.len, 2);
    assert_true(kp_reader_ok(&r));
    assert_int_equal(kp_reader_remaining(&r), 0);

    static const uint8_t bad[] = {0xff, 0xfe};
    kp_reader_init(&r, bad, sizeof(bad));
    (void)kp_read_str(&r);
    assert_int_equal(r.err, ST_E_MALFORMED);
    static const uint8_t longer[] = {0x00, 0x05, 'a', 'b'};
    kp_reader_init(&r, longer, sizeof(longer));
    (void)kp_read_str(&r);
    assert_int_equal(r.err, ST_E_MALFORMED);
    static const uint8_t b[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
    kp_reader_init(&r, b, sizeof(b));
    assert_int_equal(kp_read_bytes(&r).len, -1);
    assert_int_equal(kp_read_bytes(&r).len, 0);
    assert_int_equal(kp_read_compact_bytes(&r).len, -1);
    assert_int_equal(kp_read_compact_bytes(&r).len, 0);
    assert_true(kp_reader_ok(&r));
    assert_true(kp_str_eq(KP_STR_NULL, KP_STR_NULL));
    assert_false(kp_str_eq(KP_STR_NULL, KP_STR_LIT("")));
    assert_true(kp_str_eq(kp_str_from_cstr("ab"), KP_STR_LIT("ab")));
}

static void test_kp_read_array_len_caps(void **state)
{
    (void)state;
    /* Count 3 with 8 bytes left: fine for 2-byte elements, not for 4-byte ones. */
    static const uint8_t buf[] = {0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8};
    kp_reader_t r;
    kp_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(kp_read_array_len(&r, 2, 100), 3);
    kp_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(kp_read_array_len(&r, 4, 100), 0);
    assert_int_equal(r.err, ST_E_MALFORMED);
    kp_reader_init(&r, buf, sizeof(buf));
    assert_int_equal(kp_read_array_len(&r, 1, 2), 0); /* over the per-field cap */
    assert_int_equal(r.err, ST_E_MALFORMED);
    /* A huge count cannot pass with few bytes left (the 4-byte lie). */
    static const uint8_t lie[] = {0x7f, 0xff, 0xff, 0xff, 0};
    kp_reader_init(&r, lie, sizeof(lie));
    assert_int_equal(kp_read_array_len(&r, 1, INT32_MAX), 0);
    assert_int_equal(r.err, ST_E_MALFORMED);
    static const uint8_t null[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x01};
    kp_reader_init(&r, null, sizeof(null));
    assert_int_equal(kp_read_array_len(&r, 4, 10), -1);
    assert_int_equal(kp_read_compact_array_len(&r, 4, 10), -1);
    assert_int_equal(kp_read_compact_array_len(&r, 4, 10), 0);
    assert_true(kp_reader_ok(&r));
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xfe};
    kp_reader_init(&r, neg, sizeof(neg));
    (void)kp_read_array_len(&r, 4, 10);
    assert_int_equal(r.err, ST_E_MALFORMED);
}

static void test_kp_skip_tags_and_sub_reader(void **state)
{
    (void)state;
    /* Two tags (5: 2 bytes, 9: 0 bytes) then one trailing byte. */
    static const uint8_t buf[] = {0x02, 0x05, 0x02, 0xaa, 0xbb, 0x09, 0x00, 0x7e};
    kp_reader_t r;
    kp_reader_init(&r, buf, sizeof(buf));
    kp_skip_tags(&r);
    assert_true(kp_reader_ok(&r));
    assert_int_equal(kp_read_i8(&r), 0x7e);
    /* A tag size beyond the input fails. */
    static const uint8_t bad[] = {0x01, 0x05, 0x04, 0xaa};
    kp_reader_init(&r, bad, sizeof(bad));
    kp_skip_tags(&r);
    assert_int_equal(r.err, ST_E_MALFORMED);
    /* Sub-reader bounds. */
    kp_reader_t sub;
    kp_reader_init(&r, buf, sizeof(buf));
    assert_true(kp_reader_sub(&r, 3, &sub));
    assert_int_equal(kp_reader_remaining(&r), 5);
    (void)kp_read_i32(&sub);
    kp_reader_join(&r, &sub, true);
    assert_int_equal(r.err, ST_E_MALFORMED);
    kp_reader_init(&r, buf, sizeof(buf));
    assert_true(kp_reader_sub(&r, 3, &sub));
    (void)kp_read_i16(&sub);
    kp_reader_join(&r, &sub, true); /* one byte unread */
    assert_int_equal(r.err, ST_E_MALFORMED);
    kp_reader_init(&r, buf, sizeof(buf));
    assert_false(kp_reader_sub(&r, 9, &sub));
    assert_int_equal(r.err, ST_E_MALFORMED);
}

/* ---- Writer and arena ---- */

static void test_kp_writer_patch_and_tag_size(void **state)
{
    (void)state;
    kp_writer_t w;
    kp_writer_init(&w, 0);
    size_t off = kp_writer_reserve(&w, 4);
    kp_write_i16(&w, 7);
    kp_writer_patch_i32(&w, off, (int32_t)(w.len - 4));
    static const uint8_t want[] = {0, 0, 0, 2, 0, 7};
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.buf, want, sizeof(want));
    /* A 200-byte tagged value gets a 2-byte size prefix inserted before it. */
    kp_writer_reset(&w);
    kp_write_i8(&w, 0x11);
    size_t mark = w.len;
    for (int i = 0; i < 200; i++)
        kp_write_i8(&w, (int8_t)i);
    kp_writer_insert_size(&w, mark);
    assert_int_equal(w.len, 203);
    assert_int_equal(w.buf[0], 0x11);
    assert_int_equal(w.buf[1], 0xc8);
    assert_int_equal(w.buf[2], 0x01);
    assert_int_equal(w.buf[3], 0);
    assert_int_equal(w.buf[202], 199);
    /* Sticky errors: a too-long string, then nothing more is written. */
    kp_writer_reset(&w);
    char big[KP_STR_MAX_LEN + 1];
    memset(big, 'x', sizeof(big));
    kp_write_str(&w, (kp_str_t){big, (int32_t)sizeof(big)});
    assert_int_equal(w.err, ST_E_TOO_LARGE);
    kp_write_i32(&w, 1);
    assert_int_equal(w.len, 0);
    kp_writer_fini(&w);
    /* max_bytes cap. */
    kp_writer_init(&w, 3);
    kp_write_i32(&w, 1);
    assert_int_equal(w.err, ST_E_TOO_LARGE);
    kp_writer_fini(&w);
}

/* Ext values (zero-copy Fetch records): the length prefix is written, the
 * bytes are not (the token is never read), and their place is noted. */
static void test_kp_writer_ext_values(void **state)
{
    (void)state;
    static const uint8_t inline_bytes[] = {9, 9};
    uint8_t tok_a, tok_b; /* handles: one byte each, the values claim more */
    kp_ext_t ext[3] = {{.token = &tok_a, .len = 1000},
                       {.token = (const uint8_t *)"unused", .len = 6},
                       {.token = &tok_b, .len = 300}};
    kp_writer_t w;
    kp_writer_init(&w, 0);
    kp_writer_set_ext(&w, ext, 3);
    kp_write_i8(&w, 1);
    kp_write_bytes(&w, (kp_bytes_t){&tok_a, 1000});
    kp_write_compact_bytes(&w, (kp_bytes_t){inline_bytes, 2}); /* not registered: copied */
    kp_write_compact_bytes(&w, (kp_bytes_t){&tok_b, 300});     /* entry 1 skipped */
    kp_write_i8(&w, 2);
    assert_true(kp_writer_ok(&w));
    assert_int_equal(w.len, 1 + 4 + 3 + 2 + 1);
    assert_int_equal(w.ext_bytes, 1300);
    assert_true(ext[0].placed && !ext[1].placed && ext[2].placed);
    assert_int_equal(ext[0].at, 5);
    assert_int_equal(ext[2].at, 10);
    static const uint8_t want[] = {1, 0, 0, 3, 0xe8, 3, 9, 9, 0xad, 0x02, 2};
    assert_memory_equal(w.buf, want, sizeof(want));
    /* A tagged field's size cannot cover an ext value. */
    kp_writer_insert_size(&w, 4);
    assert_int_equal(w.err, ST_E_INVAL);
    /* Reset forgets them; a wrong length for a registered token is an error. */
    kp_writer_reset(&w);
    assert_int_equal(w.n_ext, 0);
    kp_writer_set_ext(&w, ext, 1);
    kp_write_bytes(&w, (kp_bytes_t){&tok_a, 999});
    assert_int_equal(w.err, ST_E_INVAL);
    kp_writer_fini(&w);
}

static void test_kp_arena_cap(void **state)
{
    (void)state;
    kp_arena_t a;
    kp_arena_init(&a, 64 * 1024);
    uint8_t *p = kp_arena_alloc(&a, 100);
    assert_non_null(p);
    assert_int_equal(((uintptr_t)p) % _Alignof(max_align_t), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(p[i], 0);
    assert_non_null(kp_arena_alloc(&a, 20000));
    assert_null(kp_arena_alloc(&a, 100000));
    assert_null(kp_arena_calloc(&a, SIZE_MAX / 2, 4));
    assert_non_null(kp_arena_alloc(&a, 8));
    assert_true(a.used_bytes <= a.cap_bytes);
    kp_arena_reset(&a);
    assert_int_equal(a.used_bytes, 0);
    assert_non_null(kp_arena_alloc(&a, 60000));
    kp_arena_fini(&a);
}

static void test_kp_errcode_values(void **state)
{
    (void)state;
    assert_int_equal(KP_ERR_UNKNOWN_SERVER_ERROR, -1);
    assert_int_equal(KP_ERR_UNKNOWN_TOPIC_OR_PARTITION, 3);
    assert_int_equal(KP_ERR_UNSUPPORTED_VERSION, 35);
    assert_int_equal(KP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 45);
    assert_int_equal(KP_ERR_OFFSET_MOVED_TO_TIERED_STORAGE, 109);
    assert_string_equal(kp_errcode_name(36), "TOPIC_ALREADY_EXISTS");
    assert_string_equal(kp_errcode_name(99), "UNKNOWN_CODE");
}

/* ---- Tables ---- */

static void test_kp_api_table_and_header_versions(void **state)
{
    (void)state;
    assert_int_equal(kp_n_apis, 43);
    const kp_api_t *api = kp_api_get(KP_API_API_VERSIONS);
    assert_non_null(api);
    assert_string_equal(api->name, "ApiVersions");
    assert_int_equal(api->min_version, 0);
    assert_int_equal(api->max_version, 4);
    assert_int_equal(api->flexible_min_version, 3);
    assert_int_equal(kp_request_header_version(18, 2), 1);
    assert_int_equal(kp_request_header_version(18, 3), 2);
    assert_int_equal(kp_request_header_version(18, 99), 2);
    assert_int_equal(kp_response_header_version(18, 3), 0);
    assert_int_equal(kp_response_header_version(3, 8), 0);
    assert_int_equal(kp_response_header_version(3, 9), 1);
    assert_int_equal(kp_request_header_version(17, 1), 1); /* SaslHandshake: never flexible */
    assert_int_equal(kp_response_header_version(17, 1), 0);
    assert_int_equal(kp_request_header_version(999, 0), 1);
    assert_null(kp_api_get(999));
    api = kp_api_get(KP_API_LIST_OFFSETS);
    assert_int_equal(api->max_version, 10);
    assert_int_equal(api->max_stable_version, 10); /* latestVersionUnstable: false */
    api = kp_api_get(KP_API_FETCH);
    assert_int_equal(api->max_version, 17);
    assert_int_equal(api->flexible_min_version, 12);
    assert_string_equal(api->request->name, "FetchRequest");
    assert_string_equal(api->response->name, "FetchResponse");
    for (size_t i = 1; i < kp_n_apis; i++)
        assert_true(kp_apis[i - 1].api_key < kp_apis[i].api_key);
}

/* ---- Every message, every version ---- */

static size_t n_checked;

/* Fills, encodes (A), decodes A, re-encodes (B), and requires A == B and A fully consumed;
 * with truncate, also checks that every proper prefix of A fails to decode. */
static void roundtrip_one(const kp_msg_desc_t *d, int16_t v, int variant, bool truncate)
{
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    void *m1 = calloc(1, d->struct_size);
    void *m2 = calloc(1, d->struct_size);
    void *m3 = calloc(1, d->struct_size);
    assert_non_null(m1);
    assert_non_null(m2);
    assert_non_null(m3);
    d->init(m1);
    kp_fill_msg(d, m1, v, &a, variant);
    kp_writer_t w1, w2;
    kp_writer_init(&w1, 0);
    kp_writer_init(&w2, 0);
    int rc = d->encode(&w1, v, m1);
    if (rc != 0)
        fail_msg("%s v%d variant %d: encode: %s", d->name, v, variant, st_strerror(rc));
    size_t left = 99;
    rc = decode_copy(d, v, w1.buf, w1.len, m2, &a, &left);
    if (rc != 0 || left != 0)
        fail_msg("%s v%d variant %d: decode rc=%d left=%zu", d->name, v, variant, rc, left);
    /* Re-decode from a buffer that stays alive so the views in m2 are valid to encode. */
    kp_reader_t r;
    kp_reader_init(&r, w1.buf, w1.len);
    assert_int_equal(d->decode(&r, v, m2, &a), 0);
    rc = d->encode(&w2, v, m2);
    assert_int_equal(rc, 0);
    if (w1.len != w2.len || (w1.len != 0 && memcmp(w1.buf, w2.buf, w1.len) != 0))
        fail_msg("%s v%d variant %d: re-encode differs (%zu vs %zu bytes)", d->name, v, variant,
                 w1.len, w2.len);
    if (truncate) {
        for (size_t n = 0; n < w1.len; n++) {
            rc = decode_copy(d, v, w1.buf, n, m3, &a, NULL);
            if (rc != ST_E_MALFORMED)
                fail_msg("%s v%d: prefix %zu/%zu decoded rc=%d", d->name, v, n, w1.len, rc);
        }
    }
    n_checked++;
    kp_writer_fini(&w1);
    kp_writer_fini(&w2);
    free(m1);
    free(m2);
    free(m3);
    kp_arena_fini(&a);
}

static void test_kp_roundtrip_every_message_version(void **state)
{
    (void)state;
    n_checked = 0;
    for (size_t i = 0; i < kp_n_msg_descs; i++) {
        const kp_msg_desc_t *d = &kp_msg_descs[i];
        for (int16_t v = d->min_version; v <= d->max_version; v++)
            for (int variant = 0; variant < 3; variant++)
                roundtrip_one(d, v, variant, true);
    }
    assert_true(n_checked > 500);
}

static void test_kp_fill_sets_non_default_values(void **state)
{
    (void)state;
    /* Variant 0 must move every field present at the version off its default, so encoding
     * a filled message differs from encoding an initialised one whenever the version has
     * fields (tagged fields included). */
    for (size_t i = 0; i < kp_n_msg_descs; i++) {
        const kp_msg_desc_t *d = &kp_msg_descs[i];
        for (int16_t v = d->min_version; v <= d->max_version; v++) {
            kp_arena_t a;
            kp_arena_init(&a, ARENA_CAP);
            void *m = calloc(1, d->struct_size);
            d->init(m);
            kp_writer_t w0, w1;
            kp_writer_init(&w0, 0);
            kp_writer_init(&w1, 0);
            assert_int_equal(d->encode(&w0, v, m), 0);
            kp_fill_msg(d, m, v, &a, 0);
            assert_int_equal(d->encode(&w1, v, m), 0);
            bool flex = d->flexible_min_version >= 0 && v >= d->flexible_min_version;
            if (w0.len > (flex ? 1u : 0u))
                assert_true(w1.len > w0.len || memcmp(w0.buf, w1.buf, w0.len) != 0);
            kp_writer_fini(&w0);
            kp_writer_fini(&w1);
            free(m);
            kp_arena_fini(&a);
        }
    }
}

/* ---- Known byte vectors, written by hand from the spec ---- */

static void
expect_reencode(const kp_msg_desc_t *d, int16_t v, const void *m, const uint8_t *want, size_t n)
{
    kp_writer_t w;
    kp_writer_init(&w, 0);
    assert_int_equal(d->encode(&w, v, m), 0);
    assert_int_equal(w.len, n);
    assert_memory_equal(w.buf, want, n);
    kp_writer_fini(&w);
}

static void test_kp_known_api_versions_v3_request(void **state)
{
    (void)state;
    /* Request header v2 + ApiVersions v3 body, as librdkafka sends it (without the size). */
    static const uint8_t frame[] = {
        0x00, 0x12,                                      /* api_key 18 */
        0x00, 0x03,                                      /* api_version 3 */
        0x00, 0x00, 0x00, 0x2a,                          /* correlation_id 42 */
        0x00, 0x07, 'r',  'd',  'k', 'a', 'f', 'k', 'a', /* client_id (int16 length, never compact)
                                                          */
        0x00,                                            /* header tagged fields */
        0x0b, 'l',  'i',  'b',  'r', 'd', 'k', 'a', 'f', 'k', 'a', /* client_software_name */
        0x06, '2',  '.',  '3',  '.', '0',                          /* client_software_version */
        0x00,                                                      /* body tagged fields */
    };
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_reader_t r;
    kp_reader_init(&r, frame, sizeof(frame));
    kp_request_header_t h;
    assert_int_equal(kp_request_header_decode(&r, kp_request_header_version(18, 3), &h, &a), 0);
    assert_int_equal(h.request_api_key, 18);
    assert_int_equal(h.request_api_version, 3);
    assert_int_equal(h.correlation_id, 42);
    assert_true(kp_str_eq(h.client_id, KP_STR_LIT("rdkafka")));
    size_t body = kp_reader_offset(&r);
    assert_int_equal(body, 18);
    kp_api_versions_request_t m;
    assert_int_equal(kp_api_versions_request_decode(&r, 3, &m, &a), 0);
    assert_int_equal(kp_reader_remaining(&r), 0);
    assert_true(kp_str_eq(m.client_software_name, KP_STR_LIT("librdkafka")));
    assert_true(kp_str_eq(m.client_software_version, KP_STR_LIT("2.3.0")));
    expect_reencode(kp_api_get(18)->request, 3, &m, frame + body, sizeof(frame) - body);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    assert_int_equal(kp_request_header_encode(&w, 2, &h), 0);
    assert_int_equal(w.len, body);
    assert_memory_equal(w.buf, frame, body);
    kp_writer_fini(&w);
    /* v0-2 bodies are empty. */
    kp_reader_init(&r, frame, 0);
    assert_int_equal(kp_api_versions_request_decode(&r, 2, &m, &a), 0);
    assert_int_equal(m.client_software_name.len, 0);
    kp_arena_fini(&a);
}

static void test_kp_known_metadata_v12_request(void **state)
{
    (void)state;
    static const uint8_t body[] = {
        0x02, /* topics: compact array, 1 element */
        0,    0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0, 0, /* topic_id: none */
        0x07, 'o', 'r', 'd', 'e', 'r', 's',                            /* name "orders" */
        0x00,                                                          /* topic tagged fields */
        0x01, /* allow_auto_topic_creation */
        0x00, /* include_topic_authorized_operations */
        0x00, /* tagged fields */
    };
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_reader_t r;
    kp_reader_init(&r, body, sizeof(body));
    kp_metadata_request_t m;
    assert_int_equal(kp_metadata_request_decode(&r, 12, &m, &a), 0);
    assert_int_equal(kp_reader_remaining(&r), 0);
    assert_int_equal(m.n_topics, 1);
    assert_true(kp_uuid_is_zero(&m.topics[0].topic_id));
    assert_true(kp_str_eq(m.topics[0].name, KP_STR_LIT("orders")));
    assert_true(m.allow_auto_topic_creation);
    assert_false(m.include_topic_authorized_operations);
    expect_reencode(kp_api_get(3)->request, 12, &m, body, sizeof(body));

    /* Null topics (all topics) is allowed from v1 but not in v0. */
    static const uint8_t null_v1[] = {0xff, 0xff, 0xff, 0xff};
    kp_reader_init(&r, null_v1, sizeof(null_v1));
    assert_int_equal(kp_metadata_request_decode(&r, 1, &m, &a), 0);
    assert_int_equal(m.n_topics, -1);
    assert_true(m.allow_auto_topic_creation); /* default true, absent before v4 */
    kp_reader_init(&r, null_v1, sizeof(null_v1));
    assert_int_equal(kp_metadata_request_decode(&r, 0, &m, &a), ST_E_MALFORMED);
    assert_string_equal(r.err_field, "MetadataRequest.Topics");
    /* Encoding null where the version forbids it is refused. */
    kp_metadata_request_init(&m);
    m.n_topics = -1;
    kp_writer_t w;
    kp_writer_init(&w, 0);
    assert_int_equal(kp_metadata_request_encode(&w, 0, &m), ST_E_INVAL);
    kp_writer_fini(&w);
    /* Versions outside the schema are refused. */
    kp_reader_init(&r, body, sizeof(body));
    assert_int_equal(kp_metadata_request_decode(&r, 13, &m, &a), ST_E_INVAL);
    assert_string_equal(r.err_field, "MetadataRequest");
    kp_arena_fini(&a);
}

static void test_kp_known_produce_v9_request(void **state)
{
    (void)state;
    static const uint8_t body[] = {
        0x00,                   /* transactional_id: null (compact) */
        0xff, 0xff,             /* acks -1 */
        0x00, 0x00, 0x75, 0x30, /* timeout_ms 30000 */
        0x02,                   /* topic_data: 1 */
        0x02, 't',              /* name "t" */
        0x02,                   /* partition_data: 1 */
        0x00, 0x00, 0x00, 0x05, /* index 5 */
        0x04, 0xaa, 0xbb, 0xcc, /* records: 3 bytes (compact) */
        0x00,                   /* partition tagged fields */
        0x00,                   /* topic tagged fields */
        0x00,                   /* tagged fields */
    };
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_reader_t r;
    kp_reader_init(&r, body, sizeof(body));
    kp_produce_request_t m;
    assert_int_equal(kp_produce_request_decode(&r, 9, &m, &a), 0);
    assert_int_equal(kp_reader_remaining(&r), 0);
    assert_int_equal(m.transactional_id.len, -1);
    assert_int_equal(m.acks, -1);
    assert_int_equal(m.timeout_ms, 30000);
    assert_int_equal(m.n_topic_data, 1);
    assert_true(kp_str_eq(m.topic_data[0].name, KP_STR_LIT("t")));
    assert_int_equal(m.topic_data[0].n_partition_data, 1);
    assert_int_equal(m.topic_data[0].partition_data[0].index, 5);
    assert_int_equal(m.topic_data[0].partition_data[0].records.len, 3);
    assert_ptr_equal(m.topic_data[0].partition_data[0].records.ptr, body + 16);
    expect_reencode(kp_api_get(0)->request, 9, &m, body, sizeof(body));

    /* The same request at v8 (not flexible): int16/int32 lengths, no tagged fields. */
    static const uint8_t v8[] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x75, 0x30, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 't',
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x03, 0xaa, 0xbb, 0xcc,
    };
    expect_reencode(kp_api_get(0)->request, 8, &m, v8, sizeof(v8));
    kp_arena_fini(&a);
}

static void test_kp_kafka_python_vectors_decode_and_reencode(void **state)
{
    (void)state;
    /* Bodies encoded by kafka-python's hand-written schemas (tests/unit/kp_xcheck.py). */
    size_t n = sizeof(kp_vectors) / sizeof(kp_vectors[0]);
    assert_true(n > 100);
    for (size_t i = 0; i < n; i++) {
        const kp_vector_t *v = &kp_vectors[i];
        const kp_api_t *api = kp_api_get(v->api_key);
        assert_non_null(api);
        const kp_msg_desc_t *d = v->is_response ? api->response : api->request;
        kp_arena_t a;
        kp_arena_init(&a, ARENA_CAP);
        void *m = calloc(1, d->struct_size);
        assert_non_null(m);
        size_t left = 0;
        int rc = decode_copy(d, v->version, v->bytes, v->len, m, &a, &left);
        if (rc != 0 || left != 0)
            fail_msg("%s: decode as %s v%d: rc=%d left=%zu", v->name, d->name, v->version, rc,
                     left);
        kp_reader_t r;
        kp_reader_init(&r, v->bytes, v->len);
        assert_int_equal(d->decode(&r, v->version, m, &a), 0);
        kp_writer_t w;
        kp_writer_init(&w, 0);
        rc = d->encode(&w, v->version, m);
        if (rc != 0 || w.len != v->len || (v->len != 0 && memcmp(w.buf, v->bytes, v->len) != 0))
            fail_msg("%s: re-encode differs (rc=%d, %zu vs %zu bytes)", v->name, rc, w.len, v->len);
        kp_writer_fini(&w);
        free(m);
        kp_arena_fini(&a);
    }
}

/* Decodes a whole request frame (header + body, without the size) and re-encodes it. */
static void expect_frame_roundtrip(const uint8_t *frame, size_t len)
{
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_reader_t r;
    kp_reader_init(&r, frame, len);
    int16_t key = (int16_t)(frame[0] << 8 | frame[1]);
    int16_t ver = (int16_t)(frame[2] << 8 | frame[3]);
    int16_t hv = kp_request_header_version(key, ver);
    kp_request_header_t h;
    assert_int_equal(kp_request_header_decode(&r, hv, &h, &a), 0);
    assert_int_equal(h.request_api_key, key);
    assert_int_equal(h.request_api_version, ver);
    const kp_msg_desc_t *d = kp_api_get(key)->request;
    void *m = calloc(1, d->struct_size);
    assert_non_null(m);
    assert_int_equal(d->decode(&r, ver, m, &a), 0);
    assert_int_equal(kp_reader_remaining(&r), 0);
    kp_writer_t w;
    kp_writer_init(&w, 0);
    assert_int_equal(kp_request_header_encode(&w, hv, &h), 0);
    assert_int_equal(d->encode(&w, ver, m), 0);
    assert_int_equal(w.len, len);
    assert_memory_equal(w.buf, frame, len);
    kp_writer_fini(&w);
    free(m);
    kp_arena_fini(&a);
}

static void test_kp_recorded_client_frames(void **state)
{
    (void)state;
    /* First request of kcat / librdkafka 2.0.2, recorded on a socket (size prefix removed). */
    static const uint8_t rdkafka_api_versions_v3[] = {
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x72, 0x64,
        0x6b, 0x61, 0x66, 0x6b, 0x61, 0x00, 0x0b, 0x6c, 0x69, 0x62, 0x72, 0x64,
        0x6b, 0x61, 0x66, 0x6b, 0x61, 0x06, 0x32, 0x2e, 0x30, 0x2e, 0x32, 0x00};
    expect_frame_roundtrip(rdkafka_api_versions_v3, sizeof(rdkafka_api_versions_v3));
    /* kafka-python 2.0.2 consumer: OffsetFetch v0 for its default group. */
    static const uint8_t kpy_offset_fetch_v0[] = {
        0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x12, 0x6b, 0x61, 0x66, 0x6b, 0x61,
        0x2d, 0x70, 0x79, 0x74, 0x68, 0x6f, 0x6e, 0x2d, 0x32, 0x2e, 0x30, 0x2e, 0x32, 0x00, 0x1a,
        0x6b, 0x61, 0x66, 0x6b, 0x61, 0x2d, 0x70, 0x79, 0x74, 0x68, 0x6f, 0x6e, 0x2d, 0x64, 0x65,
        0x66, 0x61, 0x75, 0x6c, 0x74, 0x2d, 0x67, 0x72, 0x6f, 0x75, 0x70, 0x00, 0x00, 0x00, 0x00};
    expect_frame_roundtrip(kpy_offset_fetch_v0, sizeof(kpy_offset_fetch_v0));
    /* kafka-python 2.0.2: Metadata v0 for no topics, ApiVersions v0 (empty body). */
    static const uint8_t kpy_metadata_v0[] = {0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
                                              0x00, 0x12, 0x6b, 0x61, 0x66, 0x6b, 0x61, 0x2d,
                                              0x70, 0x79, 0x74, 0x68, 0x6f, 0x6e, 0x2d, 0x32,
                                              0x2e, 0x30, 0x2e, 0x32, 0x00, 0x00, 0x00, 0x00};
    expect_frame_roundtrip(kpy_metadata_v0, sizeof(kpy_metadata_v0));
    static const uint8_t kpy_api_versions_v0[] = {
        0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x12, 0x6b, 0x61, 0x66, 0x6b,
        0x61, 0x2d, 0x70, 0x79, 0x74, 0x68, 0x6f, 0x6e, 0x2d, 0x32, 0x2e, 0x30, 0x2e, 0x32};
    expect_frame_roundtrip(kpy_api_versions_v0, sizeof(kpy_api_versions_v0));
}

static void test_kp_tagged_unknown_skipped_known_decoded(void **state)
{
    (void)state;
    /* ApiVersions v3 request with an unknown tag 7 (3 bytes) in the body section. */
    static const uint8_t body[] = {0x02, 'a', 0x02, 'b', 0x01, 0x07, 0x03, 1, 2, 3};
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_reader_t r;
    kp_reader_init(&r, body, sizeof(body));
    kp_api_versions_request_t m;
    assert_int_equal(kp_api_versions_request_decode(&r, 3, &m, &a), 0);
    assert_int_equal(kp_reader_remaining(&r), 0);
    assert_true(kp_str_eq(m.client_software_version, KP_STR_LIT("b")));

    /* ApiVersions v3 response: tag 1 FinalizedFeaturesEpoch (known), tag 9 (unknown), tag 3
     * ZkMigrationReady (known). */
    static const uint8_t resp[] = {
        0x00, 0x00,                                  /* error_code */
        0x01,                                        /* api_keys: empty */
        0x00, 0x00, 0x00, 0x00,                      /* throttle_time_ms */
        0x03,                                        /* three tagged fields */
        0x01, 0x08, 0,    0,    0, 0, 0, 0, 0, 0x05, /* tag 1: int64 5 */
        0x09, 0x02, 0xde, 0xad,                      /* tag 9: unknown */
        0x03, 0x01, 0x01,                            /* tag 3: true */
    };
    kp_api_versions_response_t rm;
    kp_reader_init(&r, resp, sizeof(resp));
    assert_int_equal(kp_api_versions_response_decode(&r, 3, &rm, &a), 0);
    assert_int_equal(kp_reader_remaining(&r), 0);
    assert_int_equal(rm.finalized_features_epoch, 5);
    assert_true(rm.zk_migration_ready);
    assert_int_equal(rm.n_supported_features, 0);
    /* Re-encoding drops the unknown tag and keeps the known ones in tag order. */
    static const uint8_t want[] = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x08, 0,
                                   0,    0,    0,    0,    0,    0,    0x05, 0x03, 0x01, 0x01};
    expect_reencode(kp_api_get(18)->response, 3, &rm, want, sizeof(want));
    /* A known tag whose size disagrees with its value is malformed. */
    static const uint8_t badsize[] = {0x00, 0x00, 0x01, 0, 0, 0, 0, 0x01, 0x03, 0x02, 0x01, 0x01};
    kp_reader_init(&r, badsize, sizeof(badsize));
    assert_int_equal(kp_api_versions_response_decode(&r, 3, &rm, &a), ST_E_MALFORMED);
    /* ApiVersions v0 response (what an old client gets): no tags, int32 counts. */
    kp_api_versions_response_init(&rm);
    rm.error_code = KP_ERR_UNSUPPORTED_VERSION;
    kp_api_versions_response_api_version_t key = {
        .api_key = 18, .min_version = 0, .max_version = 4};
    rm.api_keys = &key;
    rm.n_api_keys = 1;
    rm.zk_migration_ready = true; /* tagged, v3+ only: not written at v0 */
    static const uint8_t v0[] = {0x00, 0x23, 0, 0, 0, 1, 0x00, 0x12, 0, 0, 0, 4};
    expect_reencode(kp_api_get(18)->response, 0, &rm, v0, sizeof(v0));
    kp_arena_fini(&a);
}

static void test_kp_fetch_request_tagged_cluster_id(void **state)
{
    (void)state;
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_fetch_request_t m;
    kp_fetch_request_init(&m);
    assert_int_equal(m.cluster_id.len, -1); /* default null */
    assert_int_equal(m.replica_id, -1);
    assert_int_equal(m.max_bytes, 0x7fffffff);
    m.cluster_id = KP_STR_LIT("c1");
    kp_writer_t w;
    kp_writer_init(&w, 0);
    assert_int_equal(kp_fetch_request_encode(&w, 12, &m), 0);
    /* Ends with the top-level tagged section: 1 field, tag 0, size 3, compact "c1". */
    static const uint8_t tail[] = {0x01, 0x00, 0x03, 0x03, 'c', '1'};
    assert_true(w.len >= sizeof(tail));
    assert_memory_equal(w.buf + w.len - sizeof(tail), tail, sizeof(tail));
    kp_fetch_request_t m2;
    kp_reader_t r;
    kp_reader_init(&r, w.buf, w.len);
    assert_int_equal(kp_fetch_request_decode(&r, 12, &m2, &a), 0);
    assert_true(kp_str_eq(m2.cluster_id, KP_STR_LIT("c1")));
    /* At v11 the tag does not exist and nothing is written for it. */
    kp_writer_reset(&w);
    assert_int_equal(kp_fetch_request_encode(&w, 11, &m), 0);
    kp_reader_init(&r, w.buf, w.len);
    assert_int_equal(kp_fetch_request_decode(&r, 11, &m2, &a), 0);
    assert_int_equal(m2.cluster_id.len, -1);
    kp_writer_fini(&w);
    kp_arena_fini(&a);
}

static void test_kp_encode_non_ignorable_field_outside_version(void **state)
{
    (void)state;
    kp_writer_t w;
    kp_writer_init(&w, 0);
    /* FindCoordinator v4 moved NodeId into Coordinators[]; the old field is not ignorable. */
    kp_find_coordinator_response_t fc;
    kp_find_coordinator_response_init(&fc);
    fc.node_id = 5;
    assert_int_equal(kp_find_coordinator_response_encode(&w, 4, &fc), ST_E_INVAL);
    assert_string_equal(w.err_field, "FindCoordinatorResponse.NodeId");
    kp_writer_reset(&w);
    assert_null(w.err_field);
    assert_int_equal(kp_find_coordinator_response_encode(&w, 3, &fc), 0);
    /* ThrottleTimeMs (v1+) is ignorable: silently dropped at v0. */
    kp_writer_reset(&w);
    kp_metadata_response_t md;
    kp_metadata_response_init(&md);
    md.throttle_time_ms = 100;
    assert_int_equal(kp_metadata_response_encode(&w, 0, &md), 0);
    /* A null where the version forbids it names the field too. */
    kp_writer_reset(&w);
    md.cluster_id = KP_STR_NULL; /* nullable, v2+ */
    assert_int_equal(kp_metadata_response_encode(&w, 2, &md), 0);
    kp_find_coordinator_response_init(&fc);
    fc.host = KP_STR_NULL;
    kp_writer_reset(&w);
    assert_int_equal(kp_find_coordinator_response_encode(&w, 0, &fc), ST_E_INVAL);
    assert_string_equal(w.err_field, "FindCoordinatorResponse.Host");
    kp_writer_fini(&w);
}

static void test_kp_nullable_array_elements_are_not_nullable(void **state)
{
    (void)state;
    /* DescribeConfigs v0: ConfigurationKeys may be null, but not its elements. */
    static const uint8_t null_keys[] = {0, 0, 0, 1, 2, 0, 1, 't', 0xff, 0xff, 0xff, 0xff};
    static const uint8_t null_elem[] = {0, 0, 0, 1, 2, 0, 1, 't', 0, 0, 0, 1, 0xff, 0xff};
    kp_arena_t a;
    kp_arena_init(&a, ARENA_CAP);
    kp_reader_t r;
    kp_describe_configs_request_t m;
    kp_reader_init(&r, null_keys, sizeof(null_keys));
    assert_int_equal(kp_describe_configs_request_decode(&r, 0, &m, &a), 0);
    assert_int_equal(m.resources[0].n_configuration_keys, -1);
    kp_reader_init(&r, null_elem, sizeof(null_elem));
    assert_int_equal(kp_describe_configs_request_decode(&r, 0, &m, &a), ST_E_MALFORMED);
    assert_string_equal(r.err_field, "DescribeConfigsResource.ConfigurationKeys");
    kp_arena_fini(&a);
}

static void test_kp_decode_arena_cap_is_nomem(void **state)
{
    (void)state;
    /* 1000 topics of 2 bytes each (v0 MetadataRequest) with an arena too small to hold them. */
    size_t n = 4 + 1000 * 2;
    uint8_t *buf = calloc(1, n);
    buf[2] = 0x03;
    buf[3] = 0xe8;
    kp_arena_t a;
    kp_arena_init(&a, 1024);
    kp_reader_t r;
    kp_reader_init(&r, buf, n);
    kp_metadata_request_t m;
    assert_int_equal(kp_metadata_request_decode(&r, 0, &m, &a), ST_E_NOMEM);
    kp_arena_fini(&a);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kp_read_fixed_width_bounds),
        cmocka_unit_test(test_kp_read_uvarint_limits),
        cmocka_unit_test(test_kp_read_varint_zigzag),
        cmocka_unit_test(test_kp_read_str_null_vs_empty),
        cmocka_unit_test(test_kp_read_array_len_caps),
        cmocka_unit_test(test_kp_skip_tags_and_sub_reader),
        cmocka_unit_test(test_kp_writer_patch_and_tag_size),
        cmocka_unit_test(test_kp_writer_ext_values),
        cmocka_unit_test(test_kp_arena_cap),
        cmocka_unit_test(test_kp_errcode_values),
        cmocka_unit_test(test_kp_api_table_and_header_versions),
        cmocka_unit_test(test_kp_roundtrip_every_message_version),
        cmocka_unit_test(test_kp_fill_sets_non_default_values),
        cmocka_unit_test(test_kp_known_api_versions_v3_request),
        cmocka_unit_test(test_kp_known_metadata_v12_request),
        cmocka_unit_test(test_kp_known_produce_v9_request),
        cmocka_unit_test(test_kp_kafka_python_vectors_decode_and_reencode),
        cmocka_unit_test(test_kp_recorded_client_frames),
        cmocka_unit_test(test_kp_tagged_unknown_skipped_known_decoded),
        cmocka_unit_test(test_kp_fetch_request_tagged_cluster_id),
        cmocka_unit_test(test_kp_encode_non_ignorable_field_outside_version),
        cmocka_unit_test(test_kp_nullable_array_elements_are_not_nullable),
        cmocka_unit_test(test_kp_decode_arena_cap_is_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
