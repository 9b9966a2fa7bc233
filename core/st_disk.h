/* st_disk.h - free space of the data directory's filesystem, watched.
 * Data path: off the produce/fetch path. A timer on stratad's main loop asks
 * for statfs(log.dir) on the libuv thread pool every period; the result sets
 * the gauges strata_disk_free_bytes / strata_disk_total_bytes /
 * strata_disk_space_low and, when free space falls under the alert
 * threshold (strata.disk.alert.free.bytes or .percent, whichever is larger),
 * logs a warning: local retention never deletes data that is not archived
 * yet, so an object store that stays down fills the disk.
 * The warning repeats every ST_DISK_REPEAT_MS while the space stays low, and
 * an info line says when it recovered. */
#ifndef ST_DISK_H
#define ST_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/st_err.h"

#define ST_DISK_PERIOD_MS 5000
#define ST_DISK_REPEAT_MS 300000

typedef struct st_disk st_disk_t;

typedef struct {
    const char *dir;     /* borrowed for the call (copied): the data directory */
    int64_t low_bytes;   /* alert below this many free bytes (0 = off) */
    int64_t low_percent; /* or below this percent of the filesystem (0 = off) */
    uint64_t period_ms;  /* 0 = ST_DISK_PERIOD_MS */
} st_disk_opts_t;

/** Start watching on loop; the first check runs at once.
 * @return 0, ST_E_NOMEM or a libuv error. @thread loop's thread */
ST_MUST_CHECK int st_disk_watch(uv_loop_t *loop, const st_disk_opts_t *opts, st_disk_t **out);

/** Is free space under the threshold (as of the last check)? */
bool st_disk_is_low(const st_disk_t *d);

/** Stop and free (a statfs in flight finishes first). NULL is a no-op.
 * @thread loop's thread */
void st_disk_close(st_disk_t *d);

#endif
