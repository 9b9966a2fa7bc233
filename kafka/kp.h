/* kp.h - the Kafka wire codec: bounds-checked reader, growable writer, per-request arena,
 * Kafka error codes, and (via kafka/kp_msg.h) the generated message structs and codecs.
 * Data path: a connection frames a request -> kp_reader_init() over the frame ->
 * kp_request_header_decode() + kp_<msg>_decode() fill structs whose strings and byte fields
 * are views into the frame and whose arrays live in a kp_arena_t -> the handler builds a
 * response struct -> kp_<msg>_encode() appends to a kp_writer_t -> the connection sends it.
 * Invariants: 1. a reader never reads outside [p, end); every read checks what remains;
 *             2. reader and writer errors are sticky: after the first one, reads return zero
 *                values and writes do nothing, so callers check once at the end;
 *             3. nothing is allocated from a wire count before the bytes left could hold
 *                count elements of the minimum size, and the arena has a hard cap. */
#ifndef KP_H
#define KP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/st_err.h"

/* ---- Views ---- */

/** A string view into the input (not NUL-terminated). len -1 = null; null and "" differ. */
typedef struct kp_str {
    /* borrowed: valid while the decoded buffer (or the literal) lives; NULL when null */
    const char *ptr;
    /* byte length, or -1 for null */
    int32_t len;
} kp_str_t;

/** A bytes view (bytes, compact bytes and records fields). len -1 = null. */
typedef struct kp_bytes {
    /* borrowed: valid while the decoded buffer lives; NULL when null */
    const uint8_t *ptr;
    /* byte length, or -1 for null */
    int32_t len;
} kp_bytes_t;

/** A 16-byte uuid, Java high 64 bits first. All-zero means "none". */
typedef struct kp_uuid {
    /* the bytes as on the wire */
    uint8_t b[16];
} kp_uuid_t;

#define KP_STR_NULL    ((kp_str_t){NULL, -1})
#define KP_BYTES_NULL  ((kp_bytes_t){NULL, -1})
#define KP_STR_LIT(s)  ((kp_str_t){(s), (int32_t)(sizeof(s) - 1)})
#define KP_STR_MAX_LEN 0x7fff
/* Upper bound for any decoded array count (the remaining-bytes check usually binds first). */
#define KP_MAX_ARRAY_LEN 10000000

/** A view of a NUL-terminated C string; NULL gives the null string. */
kp_str_t kp_str_from_cstr(const char *s);
/** True when both are null, or both non-null with equal bytes. */
bool kp_str_eq(kp_str_t a, kp_str_t b);
/** True when the uuid is all zero. */
bool kp_uuid_is_zero(const kp_uuid_t *u);

/* ---- Arena ---- */

/** Per-request bump allocator: many allocations, one kp_arena_reset()/kp_arena_fini(). */
typedef struct kp_arena {
    /* owned: singly linked list of malloc'd chunks, newest first */
    struct kp_arena_chunk *chunks;
    /* bytes handed out plus chunk overhead so far */
    size_t used_bytes;
    /* hard limit on used_bytes; allocations beyond it fail */
    size_t cap_bytes;
} kp_arena_t;

/** Initialise an empty arena on caller storage; allocates nothing yet.
 * @param cap_bytes  Hard cap on the total memory the arena may take. Decoded structs can be
 *                   several times larger than their wire form (a 4-byte int32 array element
 *                   becomes a 100-byte struct), so size it from the frame, e.g. 32 * frame
 *                   bytes + 64 KiB, bounded by a per-connection budget; exceeding it makes
 *                   decoding fail with ST_E_NOMEM.   @thread any */
void kp_arena_init(kp_arena_t *a, size_t cap_bytes);
/** Zeroed memory for n bytes aligned for any type, or NULL when over the cap or out of memory.
 * Valid until kp_arena_reset()/kp_arena_fini().   @blocking no */
void *kp_arena_alloc(kp_arena_t *a, size_t n);
/** Like kp_arena_alloc(count * size) with an overflow check. */
void *kp_arena_calloc(kp_arena_t *a, size_t count, size_t size);
/** Free everything allocated so far; the arena stays usable. */
void kp_arena_reset(kp_arena_t *a);
/** Free everything; the arena must be initialised again before reuse. */
void kp_arena_fini(kp_arena_t *a);

/* ---- Reader ---- */

/** Bounds-checked big-endian reader with a sticky error. */
typedef struct kp_reader {
    /* borrowed: next byte to read */
    const uint8_t *p;
    /* borrowed: one past the last readable byte */
    const uint8_t *end;
    /* borrowed: start of the whole message, for error offsets */
    const uint8_t *start;
    /* 0, or the first error (ST_E_MALFORMED, ST_E_NOMEM, ...) */
    int err;
    /* static string: field being decoded (set by generated code), for debug logs */
    const char *field;
    /* static string: the field that failed, NULL while err == 0 */
    const char *err_field;
    /* offset from start where the failing read began */
    size_t err_offset;
} kp_reader_t;

/** Start reading buf[0, len). buf is borrowed and must outlive every view decoded from it. */
void kp_reader_init(kp_reader_t *r, const void *buf, size_t len);
/** Record err (if none yet) with the current field and offset; returns the sticky error. */
int kp_reader_fail(kp_reader_t *r, int err);

static inline bool kp_reader_ok(const kp_reader_t *r)
{
    return r->err == 0;
}

static inline size_t kp_reader_remaining(const kp_reader_t *r)
{
    return (size_t)(r->end - r->p);
}

static inline size_t kp_reader_offset(const kp_reader_t *r)
{
    return (size_t)(r->p - r->start);
}

/* The kp_read_* primitives below share one contract: each checks that its bytes remain, then
 * returns the big-endian value and advances p. On failure (or after any earlier failure) it
 * records ST_E_MALFORMED with r->field and the offset (kp_reader_fail), leaves p where it was
 * and returns zero / an empty non-null view. Views point into the reader's buffer (borrowed).
 * @thread any (the reader is not shared)   @blocking no */
int8_t kp_read_i8(kp_reader_t *r);
int16_t kp_read_i16(kp_reader_t *r);
int32_t kp_read_i32(kp_reader_t *r);
int64_t kp_read_i64(kp_reader_t *r);
uint16_t kp_read_u16(kp_reader_t *r);
uint32_t kp_read_u32(kp_reader_t *r);
double kp_read_f64(kp_reader_t *r);
/** Any non-zero byte is true (as upstream). */
bool kp_read_bool(kp_reader_t *r);
kp_uuid_t kp_read_uuid(kp_reader_t *r);
/** Unsigned varint of at most 5 bytes; the fifth byte may only carry 4 bits. */
uint32_t kp_read_uvarint(kp_reader_t *r);
/** ZigZag varint (int32, at most 5 bytes). */
int32_t kp_read_varint(kp_reader_t *r);
/** ZigZag varlong (int64, at most 10 bytes). */
int64_t kp_read_varlong(kp_reader_t *r);
/** int16 length + bytes; -1 = null; lengths < -1 or beyond the input fail. */
kp_str_t kp_read_str(kp_reader_t *r);
/** uvarint length+1 + bytes; 0 = null. */
kp_str_t kp_read_compact_str(kp_reader_t *r);
/** int32 length + bytes; -1 = null. */
kp_bytes_t kp_read_bytes(kp_reader_t *r);
/** uvarint length+1 + bytes; 0 = null. */
kp_bytes_t kp_read_compact_bytes(kp_reader_t *r);
/** int32 array count (-1 = null). Fails unless count * min_elem_size <= remaining and
 * count <= max, so the caller may allocate count elements.
 * @return count, -1 for null, 0 on error. */
int32_t kp_read_array_len(kp_reader_t *r, size_t min_elem_size, int32_t max);
/** Compact form of kp_read_array_len(): uvarint count+1, 0 = null. */
int32_t kp_read_compact_array_len(kp_reader_t *r, size_t min_elem_size, int32_t max);
/** Skip n bytes (fails if fewer remain). */
void kp_read_skip(kp_reader_t *r, size_t n);
/** Skip a whole tagged-field section (count, then tag + size + value per field). */
void kp_skip_tags(kp_reader_t *r);
/** Split off the next n bytes as sub (sharing start for offsets) and advance r past them.
 * @return true on success; false (r failed) when fewer than n bytes remain. */
bool kp_reader_sub(kp_reader_t *r, size_t n, kp_reader_t *sub);
/** Finish a sub-reader: copy its error into r, and fail with ST_E_MALFORMED if
 * require_consumed and sub has bytes left. */
void kp_reader_join(kp_reader_t *r, const kp_reader_t *sub, bool require_consumed);

/* ---- Writer ---- */

/** A bytes value the writer does not copy (zero-copy Fetch): kp_write_bytes and
 * kp_write_compact_bytes, given a value whose ptr is token and whose len is len, write its
 * length prefix only and note at, the offset where its bytes belong; the caller sends them
 * from elsewhere. The token is never dereferenced. */
typedef struct kp_ext {
    /* the kp_bytes_t ptr that stands for the value (a handle, not the bytes) */
    const uint8_t *token;
    /* its length */
    int32_t len;
    /* set when written: the bytes go at buf + at (before buf[at]) */
    size_t at;
    /* written (false: the value was not encoded, its bytes are not due) */
    bool placed;
    /* for the sender: token is the bytes themselves (in memory), not a handle */
    bool is_mem;
} kp_ext_t;

/** Appends big-endian encodings to a growable buffer with a sticky error. */
typedef struct kp_writer {
    /* owned: malloc'd buffer, NULL until the first write */
    uint8_t *buf;
    /* bytes written */
    size_t len;
    /* bytes allocated */
    size_t cap;
    /* 0, or the first error (ST_E_NOMEM, ST_E_INVAL, ST_E_TOO_LARGE) */
    int err;
    /* hard limit on len; exceeding it fails with ST_E_TOO_LARGE */
    size_t max_bytes;
    /* static string: "Struct.Field" whose value the version cannot carry, or NULL */
    const char *err_field;
    /* borrowed, or NULL: values not copied (kp_ext_t); in the order they are encoded */
    kp_ext_t *ext;
    /* entries of ext; the next one expected */
    int n_ext, ext_next;
    /* bytes of the placed ext values: the encoding is len + ext_bytes long */
    int64_t ext_bytes;
} kp_writer_t;

/** Initialise an empty writer; max_bytes 0 means SIZE_MAX / 2. */
void kp_writer_init(kp_writer_t *w, size_t max_bytes);
/** Free the buffer. */
void kp_writer_fini(kp_writer_t *w);
/** Values to leave out of the buffer (kp_ext_t, borrowed until the writer is reset or freed);
 * pass them in the order the encoder meets them. */
void kp_writer_set_ext(kp_writer_t *w, kp_ext_t *ext, int n);
/** Forget the contents and the error, keeping the allocation. */
void kp_writer_reset(kp_writer_t *w);
/** Record err if none yet; returns the sticky error. */
int kp_writer_fail(kp_writer_t *w, int err);
/** Like kp_writer_fail(), also naming the field (a static string) for debug logs. */
int kp_writer_fail_at(kp_writer_t *w, int err, const char *field);

static inline bool kp_writer_ok(const kp_writer_t *w)
{
    return w->err == 0;
}

/* The kp_write_* primitives below share one contract: each appends the big-endian encoding,
 * growing the buffer; on failure (ST_E_NOMEM, ST_E_TOO_LARGE past max_bytes or for a string
 * over KP_STR_MAX_LEN) it records the error and writes nothing, and after any failure every
 * write is a no-op. Pointer arguments are borrowed for the call (bytes are copied).
 * @thread any (the writer is not shared)   @blocking no */
void kp_write_raw(kp_writer_t *w, const void *p, size_t n);
void kp_write_i8(kp_writer_t *w, int8_t v);
void kp_write_i16(kp_writer_t *w, int16_t v);
void kp_write_i32(kp_writer_t *w, int32_t v);
void kp_write_i64(kp_writer_t *w, int64_t v);
void kp_write_u16(kp_writer_t *w, uint16_t v);
void kp_write_u32(kp_writer_t *w, uint32_t v);
void kp_write_f64(kp_writer_t *w, double v);
void kp_write_bool(kp_writer_t *w, bool v);
void kp_write_uuid(kp_writer_t *w, const kp_uuid_t *v);
void kp_write_uvarint(kp_writer_t *w, uint32_t v);
void kp_write_varint(kp_writer_t *w, int32_t v);
void kp_write_varlong(kp_writer_t *w, int64_t v);
/** Null is written as length -1 (the caller checks nullability). */
void kp_write_str(kp_writer_t *w, kp_str_t s);
void kp_write_compact_str(kp_writer_t *w, kp_str_t s);
void kp_write_bytes(kp_writer_t *w, kp_bytes_t b);
void kp_write_compact_bytes(kp_writer_t *w, kp_bytes_t b);
/** Array count: int32 (-1 = null) / uvarint count+1 (0 = null). */
void kp_write_array_len(kp_writer_t *w, int32_t n);
void kp_write_compact_array_len(kp_writer_t *w, int32_t n);
/** Bytes needed for v as an unsigned varint (1..5). */
size_t kp_uvarint_size(uint32_t v);
/** Reserve n bytes to patch later. @return their offset (valid even after an error). */
size_t kp_writer_reserve(kp_writer_t *w, size_t n);
/** Store v big-endian at off (from kp_writer_reserve(w, 4)). */
void kp_writer_patch_i32(kp_writer_t *w, size_t off, int32_t v);
/** Insert uvarint(len - off) at off, moving the bytes after it: the size prefix of a tagged
 * field whose value was written starting at off. */
void kp_writer_insert_size(kp_writer_t *w, size_t off);

/* ---- Kafka error codes (exact int16 wire values, upstream Errors.java) ---- */

/* X(name, code) */
#define KP_ERRCODE_MAP(X)                                                                          \
    X(UNKNOWN_SERVER_ERROR, -1)                                                                    \
    X(NONE, 0)                                                                                     \
    X(OFFSET_OUT_OF_RANGE, 1)                                                                      \
    X(CORRUPT_MESSAGE, 2)                                                                          \
    X(UNKNOWN_TOPIC_OR_PARTITION, 3)                                                               \
    X(INVALID_FETCH_SIZE, 4)                                                                       \
    X(LEADER_NOT_AVAILABLE, 5)                                                                     \
    X(NOT_LEADER_OR_FOLLOWER, 6)                                                                   \
    X(REQUEST_TIMED_OUT, 7)                                                                        \
    X(BROKER_NOT_AVAILABLE, 8)                                                                     \
    X(REPLICA_NOT_AVAILABLE, 9)                                                                    \
    X(MESSAGE_TOO_LARGE, 10)                                                                       \
    X(STALE_CONTROLLER_EPOCH, 11)                                                                  \
    X(OFFSET_METADATA_TOO_LARGE, 12)                                                               \
    X(NETWORK_EXCEPTION, 13)                                                                       \
    X(COORDINATOR_LOAD_IN_PROGRESS, 14)                                                            \
    X(COORDINATOR_NOT_AVAILABLE, 15)                                                               \
    X(NOT_COORDINATOR, 16)                                                                         \
    X(INVALID_TOPIC_EXCEPTION, 17)                                                                 \
    X(RECORD_LIST_TOO_LARGE, 18)                                                                   \
    X(NOT_ENOUGH_REPLICAS, 19)                                                                     \
    X(NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20)                                                        \
    X(INVALID_REQUIRED_ACKS, 21)                                                                   \
    X(ILLEGAL_GENERATION, 22)                                                                      \
    X(INCONSISTENT_GROUP_PROTOCOL, 23)                                                             \
    X(INVALID_GROUP_ID, 24)                                                                        \
    X(UNKNOWN_MEMBER_ID, 25)                                                                       \
    X(INVALID_SESSION_TIMEOUT, 26)                                                                 \
    X(REBALANCE_IN_PROGRESS, 27)                                                                   \
    X(INVALID_COMMIT_OFFSET_SIZE, 28)                                                              \
    X(TOPIC_AUTHORIZATION_FAILED, 29)                                                              \
    X(GROUP_AUTHORIZATION_FAILED, 30)                                                              \
    X(CLUSTER_AUTHORIZATION_FAILED, 31)                                                            \
    X(INVALID_TIMESTAMP, 32)                                                                       \
    X(UNSUPPORTED_SASL_MECHANISM, 33)                                                              \
    X(ILLEGAL_SASL_STATE, 34)                                                                      \
    X(UNSUPPORTED_VERSION, 35)                                                                     \
    X(TOPIC_ALREADY_EXISTS, 36)                                                                    \
    X(INVALID_PARTITIONS, 37)                                                                      \
    X(INVALID_REPLICATION_FACTOR, 38)                                                              \
    X(INVALID_REPLICA_ASSIGNMENT, 39)                                                              \
    X(INVALID_CONFIG, 40)                                                                          \
    X(NOT_CONTROLLER, 41)                                                                          \
    X(INVALID_REQUEST, 42)                                                                         \
    X(UNSUPPORTED_FOR_MESSAGE_FORMAT, 43)                                                          \
    X(POLICY_VIOLATION, 44)                                                                        \
    X(OUT_OF_ORDER_SEQUENCE_NUMBER, 45)                                                            \
    X(DUPLICATE_SEQUENCE_NUMBER, 46)                                                               \
    X(INVALID_PRODUCER_EPOCH, 47)                                                                  \
    X(INVALID_TXN_STATE, 48)                                                                       \
    X(INVALID_PRODUCER_ID_MAPPING, 49)                                                             \
    X(INVALID_TRANSACTION_TIMEOUT, 50)                                                             \
    X(CONCURRENT_TRANSACTIONS, 51)                                                                 \
    X(TRANSACTION_COORDINATOR_FENCED, 52)                                                          \
    X(TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 53)                                                   \
    X(SECURITY_DISABLED, 54)                                                                       \
    X(OPERATION_NOT_ATTEMPTED, 55)                                                                 \
    X(KAFKA_STORAGE_ERROR, 56)                                                                     \
    X(LOG_DIR_NOT_FOUND, 57)                                                                       \
    X(SASL_AUTHENTICATION_FAILED, 58)                                                              \
    X(UNKNOWN_PRODUCER_ID, 59)                                                                     \
    X(REASSIGNMENT_IN_PROGRESS, 60)                                                                \
    X(DELEGATION_TOKEN_AUTH_DISABLED, 61)                                                          \
    X(DELEGATION_TOKEN_NOT_FOUND, 62)                                                              \
    X(DELEGATION_TOKEN_OWNER_MISMATCH, 63)                                                         \
    X(DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, 64)                                                    \
    X(DELEGATION_TOKEN_AUTHORIZATION_FAILED, 65)                                                   \
    X(DELEGATION_TOKEN_EXPIRED, 66)                                                                \
    X(INVALID_PRINCIPAL_TYPE, 67)                                                                  \
    X(NON_EMPTY_GROUP, 68)                                                                         \
    X(GROUP_ID_NOT_FOUND, 69)                                                                      \
    X(FETCH_SESSION_ID_NOT_FOUND, 70)                                                              \
    X(INVALID_FETCH_SESSION_EPOCH, 71)                                                             \
    X(LISTENER_NOT_FOUND, 72)                                                                      \
    X(TOPIC_DELETION_DISABLED, 73)                                                                 \
    X(FENCED_LEADER_EPOCH, 74)                                                                     \
    X(UNKNOWN_LEADER_EPOCH, 75)                                                                    \
    X(UNSUPPORTED_COMPRESSION_TYPE, 76)                                                            \
    X(STALE_BROKER_EPOCH, 77)                                                                      \
    X(OFFSET_NOT_AVAILABLE, 78)                                                                    \
    X(MEMBER_ID_REQUIRED, 79)                                                                      \
    X(PREFERRED_LEADER_NOT_AVAILABLE, 80)                                                          \
    X(GROUP_MAX_SIZE_REACHED, 81)                                                                  \
    X(FENCED_INSTANCE_ID, 82)                                                                      \
    X(ELIGIBLE_LEADERS_NOT_AVAILABLE, 83)                                                          \
    X(ELECTION_NOT_NEEDED, 84)                                                                     \
    X(NO_REASSIGNMENT_IN_PROGRESS, 85)                                                             \
    X(GROUP_SUBSCRIBED_TO_TOPIC, 86)                                                               \
    X(INVALID_RECORD, 87)                                                                          \
    X(UNSTABLE_OFFSET_COMMIT, 88)                                                                  \
    X(THROTTLING_QUOTA_EXCEEDED, 89)                                                               \
    X(PRODUCER_FENCED, 90)                                                                         \
    X(RESOURCE_NOT_FOUND, 91)                                                                      \
    X(DUPLICATE_RESOURCE, 92)                                                                      \
    X(UNACCEPTABLE_CREDENTIAL, 93)                                                                 \
    X(INCONSISTENT_VOTER_SET, 94)                                                                  \
    X(INVALID_UPDATE_VERSION, 95)                                                                  \
    X(FEATURE_UPDATE_FAILED, 96)                                                                   \
    X(PRINCIPAL_DESERIALIZATION_FAILURE, 97)                                                       \
    X(SNAPSHOT_NOT_FOUND, 98)                                                                      \
    X(UNKNOWN_TOPIC_ID, 100)                                                                       \
    X(DUPLICATE_BROKER_REGISTRATION, 101)                                                          \
    X(BROKER_ID_NOT_REGISTERED, 102)                                                               \
    X(INCONSISTENT_TOPIC_ID, 103)                                                                  \
    X(INCONSISTENT_CLUSTER_ID, 104)                                                                \
    X(TRANSACTIONAL_ID_NOT_FOUND, 105)                                                             \
    X(FETCH_SESSION_TOPIC_ID_ERROR, 106)                                                           \
    X(INELIGIBLE_REPLICA, 107)                                                                     \
    X(NEW_LEADER_ELECTED, 108)                                                                     \
    X(OFFSET_MOVED_TO_TIERED_STORAGE, 109)                                                         \
    X(FENCED_MEMBER_EPOCH, 110)                                                                    \
    X(UNRELEASED_INSTANCE_ID, 111)                                                                 \
    X(UNSUPPORTED_ASSIGNOR, 112)                                                                   \
    X(STALE_MEMBER_EPOCH, 113)                                                                     \
    X(MISMATCHED_ENDPOINT_TYPE, 114)                                                               \
    X(UNSUPPORTED_ENDPOINT_TYPE, 115)                                                              \
    X(UNKNOWN_CONTROLLER_ID, 116)                                                                  \
    X(UNKNOWN_SUBSCRIPTION_ID, 117)                                                                \
    X(TELEMETRY_TOO_LARGE, 118)                                                                    \
    X(INVALID_REGISTRATION, 119)                                                                   \
    X(TRANSACTION_ABORTABLE, 120)                                                                  \
    X(INVALID_RECORD_STATE, 121)                                                                   \
    X(SHARE_SESSION_NOT_FOUND, 122)                                                                \
    X(INVALID_SHARE_SESSION_EPOCH, 123)                                                            \
    X(FENCED_STATE_EPOCH, 124)                                                                     \
    X(INVALID_VOTER_KEY, 125)                                                                      \
    X(DUPLICATE_VOTER, 126)                                                                        \
    X(VOTER_NOT_FOUND, 127)                                                                        \
    X(INVALID_REGULAR_EXPRESSION, 128)

/** Kafka error code as sent on the wire (int16). Only used inside kafka/. */
typedef enum kp_errcode {
#define KP_ERRCODE_ENUM(name, code) KP_ERR_##name = code,
    KP_ERRCODE_MAP(KP_ERRCODE_ENUM)
#undef KP_ERRCODE_ENUM
} kp_errcode_t;

/** Upstream name of a Kafka error code ("UNKNOWN_TOPIC_OR_PARTITION"), or "UNKNOWN_CODE". */
const char *kp_errcode_name(int16_t code);

#include "kafka/kp_msg.h"

#endif
