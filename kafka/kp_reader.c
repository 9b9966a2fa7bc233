/* kp_reader.c - the one bounds-checked reader every decoder uses.
 * Data path: a connection hands a request frame to kp_reader_init() -> generated
 * kp_<msg>_decode() calls the kp_read_* primitives here -> the handler checks
 * kp_reader_ok() before acting.
 * Invariants: 1. no read touches memory outside [p, end): each checks what remains first;
 *             2. the first failure is recorded with its field and offset and is sticky:
 *                later reads return zero values and do not move p;
 *             3. array counts are accepted only if the remaining bytes could hold them. */
#include "kafka/kp.h"

#include <string.h>

void kp_reader_init(kp_reader_t *r, const void *buf, size_t len)
{
    static const uint8_t empty[1];
    /* NULL + 0 is undefined behaviour in C, so an empty NULL buffer reads from a static one. */
    r->p = buf != NULL ? (const uint8_t *)buf : empty;
    r->end = r->p + (buf != NULL ? len : 0);
    r->start = r->p;
    r->err = 0;
    r->field = NULL;
    r->err_field = NULL;
    r->err_offset = 0;
}

int kp_reader_fail(kp_reader_t *r, int err)
{
    if (r->err == 0) {
        r->err = err;
        r->err_field = r->field != NULL ? r->field : "?";
        r->err_offset = kp_reader_offset(r);
    }
    return r->err;
}

/* Returns the n bytes at p and advances, or NULL (and fails) if fewer remain. */
static const uint8_t *take(kp_reader_t *r, size_t n)
{
    if (r->err != 0)
        return NULL;
    if (kp_reader_remaining(r) < n) {
        kp_reader_fail(r, ST_E_MALFORMED);
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

int8_t kp_read_i8(kp_reader_t *r)
{
    const uint8_t *q = take(r, 1);
    return q ? (int8_t)q[0] : 0;
}

uint16_t kp_read_u16(kp_reader_t *r)
{
    const uint8_t *q = take(r, 2);
    return q ? (uint16_t)((unsigned)q[0] << 8 | q[1]) : 0;
}

int16_t kp_read_i16(kp_reader_t *r)
{
    return (int16_t)kp_read_u16(r);
}

uint32_t kp_read_u32(kp_reader_t *r)
{
    const uint8_t *q = take(r, 4);
    if (q == NULL)
        return 0;
    return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
}

int32_t kp_read_i32(kp_reader_t *r)
{
    return (int32_t)kp_read_u32(r);
}

static uint64_t read_u64(kp_reader_t *r)
{
    const uint8_t *q = take(r, 8);
    if (q == NULL)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | q[i];
    return v;
}

int64_t kp_read_i64(kp_reader_t *r)
{
    return (int64_t)read_u64(r);
}

double kp_read_f64(kp_reader_t *r)
{
    uint64_t u = read_u64(r);
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

bool kp_read_bool(kp_reader_t *r)
{
    return kp_read_i8(r) != 0;
}

kp_uuid_t kp_read_uuid(kp_reader_t *r)
{
    kp_uuid_t u;
    const uint8_t *q = take(r, sizeof(u.b));
    if (q != NULL)
        memcpy(u.b, q, sizeof(u.b));
    else
        memset(u.b, 0, sizeof(u.b));
    return u;
}

/* Reads an unsigned varint of at most max_bytes bytes into 64 bits. The last allowed byte may
 * not carry bits beyond value_bits (no overflow, no sixth/eleventh byte). */
static uint64_t read_uvar(kp_reader_t *r, int max_bytes, int value_bits)
{
    uint64_t v = 0;
    if (r->err != 0)
        return 0;
    for (int i = 0; i < max_bytes; i++) {
        if (r->p >= r->end) {
            kp_reader_fail(r, ST_E_MALFORMED);
            return 0;
        }
        uint8_t b = *r->p++;
        int shift = 7 * i;
        if (i == max_bytes - 1 && (b >> (value_bits - shift)) != 0) {
            r->p--;
            kp_reader_fail(r, ST_E_MALFORMED);
            return 0;
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return v;
    }
    return 0; /* not reached: the last byte's high bit fails above */
}

uint32_t kp_read_uvarint(kp_reader_t *r)
{
    return (uint32_t)read_uvar(r, 5, 32);
}

int32_t kp_read_varint(kp_reader_t *r)
{
    uint32_t u = kp_read_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t kp_read_varlong(kp_reader_t *r)
{
    uint64_t u = read_uvar(r, 10, 64);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* len is the decoded length: -1 null, < -1 malformed, else that many bytes must remain. */
static const uint8_t *take_len(kp_reader_t *r, int64_t len, int64_t max)
{
    if (r->err != 0)
        return NULL;
    if (len < -1 || len > max) {
        kp_reader_fail(r, ST_E_MALFORMED);
        return NULL;
    }
    if (len == -1)
        return NULL;
    const uint8_t *q = take(r, (size_t)len);
    return q;
}

static kp_str_t str_of(kp_reader_t *r, int64_t len)
{
    const uint8_t *q = take_len(r, len, KP_STR_MAX_LEN);
    if (q == NULL)
        return r->err != 0 || len != -1 ? (kp_str_t){"", 0} : KP_STR_NULL;
    return (kp_str_t){(const char *)q, (int32_t)len};
}

static kp_bytes_t bytes_of(kp_reader_t *r, int64_t len)
{
    const uint8_t *q = take_len(r, len, INT32_MAX);
    if (q == NULL)
        return r->err != 0 || len != -1 ? (kp_bytes_t){(const uint8_t *)"", 0} : KP_BYTES_NULL;
    return (kp_bytes_t){q, (int32_t)len};
}

kp_str_t kp_read_str(kp_reader_t *r)
{
    int16_t len = kp_read_i16(r);
    return str_of(r, len);
}

kp_str_t kp_read_compact_str(kp_reader_t *r)
{
    uint32_t n = kp_read_uvarint(r);
    return str_of(r, (int64_t)n - 1);
}

kp_bytes_t kp_read_bytes(kp_reader_t *r)
{
    int32_t len = kp_read_i32(r);
    return bytes_of(r, len);
}

kp_bytes_t kp_read_compact_bytes(kp_reader_t *r)
{
    uint32_t n = kp_read_uvarint(r);
    return bytes_of(r, (int64_t)n - 1);
}

static int32_t check_count(kp_reader_t *r, int64_t n, size_t min_elem_size, int32_t max)
{
    if (r->err != 0)
        return 0;
    if (n == -1)
        return -1;
    if (n < -1 || n > max ||
        (min_elem_size != 0 && (uint64_t)n > kp_reader_remaining(r) / min_elem_size)) {
        kp_reader_fail(r, ST_E_MALFORMED);
        return 0;
    }
    return (int32_t)n;
}

int32_t kp_read_array_len(kp_reader_t *r, size_t min_elem_size, int32_t max)
{
    int32_t n = kp_read_i32(r);
    return check_count(r, n, min_elem_size, max);
}

int32_t kp_read_compact_array_len(kp_reader_t *r, size_t min_elem_size, int32_t max)
{
    uint32_t n = kp_read_uvarint(r);
    return check_count(r, (int64_t)n - 1, min_elem_size, max);
}

void kp_read_skip(kp_reader_t *r, size_t n)
{
    (void)take(r, n);
}

void kp_skip_tags(kp_reader_t *r)
{
    uint32_t n = kp_read_uvarint(r);
    for (uint32_t i = 0; i < n && r->err == 0; i++) {
        (void)kp_read_uvarint(r);
        uint32_t size = kp_read_uvarint(r);
        kp_read_skip(r, size);
    }
}

bool kp_reader_sub(kp_reader_t *r, size_t n, kp_reader_t *sub)
{
    const uint8_t *q = take(r, n);
    *sub = *r;
    if (q == NULL) {
        sub->p = sub->end = r->p;
        return false;
    }
    sub->p = q;
    sub->end = q + n;
    return true;
}

void kp_reader_join(kp_reader_t *r, const kp_reader_t *sub, bool require_consumed)
{
    if (r->err != 0)
        return;
    if (sub->err != 0) {
        r->err = sub->err;
        r->err_field = sub->err_field;
        r->err_offset = sub->err_offset;
    } else if (require_consumed && sub->p != sub->end) {
        r->err = ST_E_MALFORMED;
        r->err_field = sub->field != NULL ? sub->field : "?";
        r->err_offset = (size_t)(sub->p - sub->start);
    }
}
