/* st_fs.h - small filesystem helpers shared by the modules that lay out
 * directories (the data directory at start-up, the chunk cache, the file://
 * object store). Blocking: call them at start-up or on the thread pool. */
#ifndef ST_FS_H
#define ST_FS_H

#include "core/st_err.h"

/** mkdir -p: create path and its missing parents (mode 0755); existing
 * directories are fine.
 * @return 0, -errno of the failing mkdir, or ST_E_INVAL when path is longer
 *         than PATH_MAX.  @thread any  @blocking yes */
ST_MUST_CHECK int st_mkdirs(const char *path);

#endif
