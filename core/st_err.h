/* st_err.h - one error channel for the whole broker.
 * Data path: every fallible function returns 0 on success or a negative code:
 * our own codes below (from -1000 down) or a negative errno / libuv error,
 * which pass through unchanged. st_strerror() names both. */
#ifndef ST_ERR_H
#define ST_ERR_H

#define ST_MUST_CHECK __attribute__((warn_unused_result))

/* X(name, value, message) */
#define ST_ERR_MAP(X)                                                                              \
    X(ST_E_NOMEM, -1000, "out of memory")                                                          \
    X(ST_E_IO, -1001, "I/O error")                                                                 \
    X(ST_E_MALFORMED, -1002, "malformed input")                                                    \
    X(ST_E_AGAIN, -1003, "resource temporarily unavailable (queue full)")                          \
    X(ST_E_CORRUPT, -1004, "corrupt data (checksum mismatch)")                                     \
    X(ST_E_INVAL, -1005, "invalid argument")                                                       \
    X(ST_E_CONFIG, -1006, "invalid configuration")                                                 \
    X(ST_E_NOSPC, -1007, "no space left on device")                                                \
    X(ST_E_RANGE, -1008, "offset out of range")                                                    \
    X(ST_E_LOCKED, -1009, "data directory is locked by another process")                           \
    X(ST_E_CLOSED, -1010, "object is closed or shutting down")                                     \
    X(ST_E_TOO_LARGE, -1011, "too large")                                                          \
    X(ST_E_NOTFOUND, -1012, "not found")                                                           \
    X(ST_E_EXISTS, -1013, "already exists")                                                        \
    X(ST_E_TIMEOUT, -1014, "timed out")                                                            \
    X(ST_E_CANCELED, -1015, "canceled")                                                            \
    X(ST_E_FAILED, -1016, "log failed after an I/O error; restart required")                       \
    X(ST_E_AUTH, -1017, "authentication or authorization failed")                                  \
    X(ST_E_REMOTE, -1018, "remote service error")                                                  \
    X(ST_E_OFFLOADED, -1019, "offset is no longer on local disk (in remote storage)")

enum {
#define ST_ERR_ENUM(name, value, msg) name = value,
    ST_ERR_MAP(ST_ERR_ENUM)
#undef ST_ERR_ENUM
};

/** Human-readable name for an error returned by any st_/plog_/rt_ call.
 * Knows our codes, negative errno values and libuv codes.
 * @return a static string, never NULL.   @thread any */
const char *st_strerror(int err);

#endif
