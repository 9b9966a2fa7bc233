/* st_alloc.c - large freed buffers are kept for reuse (see st_alloc.h):
 * glibc's mallopt with a fixed mmap threshold (which also turns off the
 * dynamic one) and a high trim threshold. */
#include "core/st_alloc.h"

#include <malloc.h>

bool st_alloc_keep_freed(void)
{
    int ok = mallopt(M_MMAP_THRESHOLD, (int)ST_ALLOC_MMAP_MAX);
    ok &= mallopt(M_TRIM_THRESHOLD, (int)ST_ALLOC_TRIM);
    return ok == 1;
}
