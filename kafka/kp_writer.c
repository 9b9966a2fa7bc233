/* kp_writer.c - appends the wire encoding of responses (and, in tests, requests).
 * Data path: a handler fills a response struct -> generated kp_<msg>_encode() calls the
 * kp_write_* primitives here -> the connection reserves the int32 frame size with
 * kp_writer_reserve(), patches it with kp_writer_patch_i32() and sends buf[0, len).
 * Invariants: 1. len <= cap and len <= max_bytes;
 *             2. the first failure (ST_E_NOMEM, ST_E_TOO_LARGE, ST_E_INVAL) is sticky and
 *                later writes do nothing, so callers check kp_writer_ok() once. */
#include "kafka/kp.h"

#include <stdlib.h>
#include <string.h>

void kp_writer_init(kp_writer_t *w, size_t max_bytes)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = 0;
    w->err_field = NULL;
    w->max_bytes = max_bytes != 0 ? max_bytes : SIZE_MAX / 2;
    w->ext = NULL;
    w->n_ext = w->ext_next = 0;
    w->ext_bytes = 0;
}

void kp_writer_set_ext(kp_writer_t *w, kp_ext_t *ext, int n)
{
    for (int i = 0; i < n; i++)
        ext[i].placed = false;
    w->ext = n > 0 ? ext : NULL;
    w->n_ext = n > 0 ? n : 0;
    w->ext_next = 0;
    w->ext_bytes = 0;
}

/* b stands for an ext value: note where its bytes go instead of copying them. Values are
 * placed in their order in ext (skipping some is fine: an entry left out of the response), so
 * the placed ones have increasing offsets. */
static bool ext_place(kp_writer_t *w, kp_bytes_t b)
{
    int i = w->ext_next;
    while (i < w->n_ext && w->ext[i].token != b.ptr)
        i++;
    if (i >= w->n_ext)
        return false;
    if (w->ext[i].len != b.len) {
        kp_writer_fail(w, ST_E_INVAL); /* a caller error: the value is not the one registered */
        return true;
    }
    w->ext[i].placed = true;
    w->ext[i].at = w->len;
    w->ext_bytes += b.len;
    w->ext_next = i + 1;
    return true;
}

void kp_writer_fini(kp_writer_t *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
}

void kp_writer_reset(kp_writer_t *w)
{
    kp_writer_set_ext(w, NULL, 0);
    w->len = 0;
    w->err = 0;
    w->err_field = NULL;
}

int kp_writer_fail(kp_writer_t *w, int err)
{
    if (w->err == 0)
        w->err = err;
    return w->err;
}

int kp_writer_fail_at(kp_writer_t *w, int err, const char *field)
{
    if (w->err == 0) {
        w->err = err;
        w->err_field = field;
    }
    return w->err;
}

/* Makes room for n more bytes; returns where they go, or NULL after failing. */
static uint8_t *grow(kp_writer_t *w, size_t n)
{
    if (w->err != 0)
        return NULL;
    if (n > w->max_bytes - w->len) {
        kp_writer_fail(w, ST_E_TOO_LARGE);
        return NULL;
    }
    if (w->cap - w->len < n) {
        size_t cap = w->cap != 0 ? w->cap : 256;
        while (cap - w->len < n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (b == NULL) {
            kp_writer_fail(w, ST_E_NOMEM);
            return NULL;
        }
        w->buf = b;
        w->cap = cap;
    }
    uint8_t *q = w->buf + w->len;
    w->len += n;
    return q;
}

void kp_write_raw(kp_writer_t *w, const void *p, size_t n)
{
    if (n == 0)
        return;
    uint8_t *q = grow(w, n);
    if (q != NULL)
        memcpy(q, p, n);
}

static void put_be(kp_writer_t *w, uint64_t v, int n)
{
    uint8_t *q = grow(w, (size_t)n);
    if (q == NULL)
        return;
    for (int i = n - 1; i >= 0; i--) {
        q[i] = (uint8_t)v;
        v >>= 8;
    }
}

void kp_write_i8(kp_writer_t *w, int8_t v)
{
    put_be(w, (uint8_t)v, 1);
}

void kp_write_i16(kp_writer_t *w, int16_t v)
{
    put_be(w, (uint16_t)v, 2);
}

void kp_write_i32(kp_writer_t *w, int32_t v)
{
    put_be(w, (uint32_t)v, 4);
}

void kp_write_i64(kp_writer_t *w, int64_t v)
{
    put_be(w, (uint64_t)v, 8);
}

void kp_write_u16(kp_writer_t *w, uint16_t v)
{
    put_be(w, v, 2);
}

void kp_write_u32(kp_writer_t *w, uint32_t v)
{
    put_be(w, v, 4);
}

void kp_write_f64(kp_writer_t *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    put_be(w, u, 8);
}

void kp_write_bool(kp_writer_t *w, bool v)
{
    put_be(w, v ? 1 : 0, 1);
}

void kp_write_uuid(kp_writer_t *w, const kp_uuid_t *v)
{
    kp_write_raw(w, v->b, sizeof(v->b));
}

static void put_uvar(kp_writer_t *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    kp_write_raw(w, tmp, n);
}

void kp_write_uvarint(kp_writer_t *w, uint32_t v)
{
    put_uvar(w, v);
}

void kp_write_varint(kp_writer_t *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    put_uvar(w, (u << 1) ^ (v < 0 ? UINT32_MAX : 0));
}

void kp_write_varlong(kp_writer_t *w, int64_t v)
{
    uint64_t u = (uint64_t)v;
    put_uvar(w, (u << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

size_t kp_uvarint_size(uint32_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void kp_write_str(kp_writer_t *w, kp_str_t s)
{
    if (s.len > KP_STR_MAX_LEN) {
        kp_writer_fail(w, ST_E_TOO_LARGE);
        return;
    }
    kp_write_i16(w, (int16_t)(s.len < 0 ? -1 : s.len));
    if (s.len > 0)
        kp_write_raw(w, s.ptr, (size_t)s.len);
}

void kp_write_compact_str(kp_writer_t *w, kp_str_t s)
{
    if (s.len > KP_STR_MAX_LEN) {
        kp_writer_fail(w, ST_E_TOO_LARGE);
        return;
    }
    kp_write_uvarint(w, s.len < 0 ? 0 : (uint32_t)s.len + 1);
    if (s.len > 0)
        kp_write_raw(w, s.ptr, (size_t)s.len);
}

void kp_write_bytes(kp_writer_t *w, kp_bytes_t b)
{
    kp_write_i32(w, b.len < 0 ? -1 : b.len);
    if (b.len > 0 && !ext_place(w, b))
        kp_write_raw(w, b.ptr, (size_t)b.len);
}

void kp_write_compact_bytes(kp_writer_t *w, kp_bytes_t b)
{
    kp_write_uvarint(w, b.len < 0 ? 0 : (uint32_t)b.len + 1);
    if (b.len > 0 && !ext_place(w, b))
        kp_write_raw(w, b.ptr, (size_t)b.len);
}

void kp_write_array_len(kp_writer_t *w, int32_t n)
{
    kp_write_i32(w, n < 0 ? -1 : n);
}

void kp_write_compact_array_len(kp_writer_t *w, int32_t n)
{
    kp_write_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
}

size_t kp_writer_reserve(kp_writer_t *w, size_t n)
{
    size_t off = w->len;
    uint8_t *q = grow(w, n);
    if (q != NULL)
        memset(q, 0, n);
    return off;
}

void kp_writer_patch_i32(kp_writer_t *w, size_t off, int32_t v)
{
    if (w->err != 0 || off > w->len || w->len - off < 4) {
        kp_writer_fail(w, ST_E_INVAL);
        return;
    }
    uint32_t u = (uint32_t)v;
    w->buf[off] = (uint8_t)(u >> 24);
    w->buf[off + 1] = (uint8_t)(u >> 16);
    w->buf[off + 2] = (uint8_t)(u >> 8);
    w->buf[off + 3] = (uint8_t)u;
}

void kp_writer_insert_size(kp_writer_t *w, size_t off)
{
    if (w->err != 0)
        return;
    if (off > w->len || w->len - off > UINT32_MAX) {
        kp_writer_fail(w, ST_E_INVAL);
        return;
    }
    for (int i = 0; i < w->n_ext; i++) {
        if (w->ext[i].placed && w->ext[i].at >= off) { /* a tagged field holds no ext value */
            kp_writer_fail(w, ST_E_INVAL);
            return;
        }
    }
    uint32_t size = (uint32_t)(w->len - off);
    size_t n = kp_uvarint_size(size);
    if (grow(w, n) == NULL)
        return;
    memmove(w->buf + off + n, w->buf + off, size);
    uint8_t *q = w->buf + off;
    while (size >= 0x80) {
        *q++ = (uint8_t)(size | 0x80);
        size >>= 7;
    }
    *q = (uint8_t)size;
}
