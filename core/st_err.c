/* st_err.c - names for error codes (see st_err.h). */
#include "core/st_err.h"

#include <string.h>
#include <uv.h>

const char *st_strerror(int err)
{
    switch (err) {
#define ST_ERR_CASE(name, value, msg)                                                              \
    case name:                                                                                     \
        return msg;
        ST_ERR_MAP(ST_ERR_CASE)
#undef ST_ERR_CASE
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return uv_strerror(err); /* libuv codes are negative errno on Unix */
    return "unknown error";
}
