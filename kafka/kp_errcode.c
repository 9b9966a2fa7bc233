/* kp_errcode.c - names of Kafka error codes and small helpers for string and uuid views.
 * Data path: handlers and debug logs name the kp_errcode_t they send; generated code compares
 * views against defaults. No state. */
#include "kafka/kp.h"

#include <string.h>

const char *kp_errcode_name(int16_t code)
{
    switch (code) {
#define KP_ERRCODE_CASE(name, value)                                                               \
    case value:                                                                                    \
        return #name;
        KP_ERRCODE_MAP(KP_ERRCODE_CASE)
#undef KP_ERRCODE_CASE
    default:
        return "UNKNOWN_CODE";
    }
}

kp_str_t kp_str_from_cstr(const char *s)
{
    if (s == NULL)
        return KP_STR_NULL;
    size_t n = strlen(s);
    return (kp_str_t){s, n > INT32_MAX ? INT32_MAX : (int32_t)n};
}

bool kp_str_eq(kp_str_t a, kp_str_t b)
{
    if (a.len < 0 || b.len < 0)
        return a.len < 0 && b.len < 0;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

bool kp_uuid_is_zero(const kp_uuid_t *u)
{
    for (size_t i = 0; i < sizeof(u->b); i++)
        if (u->b[i] != 0)
            return false;
    return true;
}
