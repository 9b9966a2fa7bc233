/* st_alloc.h - the process's allocator policy: large freed buffers stay in
 * the process and are reused, not returned to the kernel and faulted in again.
 *
 * Data path: stratad calls st_alloc_keep_freed() first thing. A cold replay
 * allocates and frees a 16 MiB GET buffer per archived object and a decode
 * buffer per chunk (tiering/tier_rd.c); with glibc's defaults each came from
 * a fresh mmap (the dynamic mmap threshold lets an allocation of exactly the
 * size last freed go to mmap again), so every replayed byte was also a fresh
 * anonymous page: about 0.9 minor fault per 4 KiB replayed (bench/replay.sh,
 * stratad_minor_faults). On a VM with free page reporting (virtio_balloon)
 * each such page is faulted in by the host, which stalls the vCPU whatever
 * the thread's nice value: CPU taken from produce's flusher and loops.
 *
 * Invariants: 1. allocations up to ST_ALLOC_MMAP_MAX come from malloc's
 *                arenas and are reused after free;
 *             2. free memory at the top of an arena is returned to the kernel
 *                only beyond ST_ALLOC_TRIM bytes (RSS after a replay stays at
 *                its peak, within the read-ahead and cache bounds). */
#ifndef ST_ALLOC_H
#define ST_ALLOC_H

#include <stdbool.h>

#define ST_ALLOC_MMAP_MAX (32u << 20) /* glibc's largest mmap threshold */
#define ST_ALLOC_TRIM     (256u << 20)

/** Set the policy (glibc mallopt). @return false when the allocator refused
 * it (another libc, a sanitizer's allocator): the process runs on with its
 * defaults. @thread main, before other threads allocate */
bool st_alloc_keep_freed(void);

#endif
