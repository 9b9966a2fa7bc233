/* st_fs.h - small filesystem helpers shared by the modules that lay out
 * directories (the data directory at start-up, the chunk cache, the file://
 * object store). Blocking: call them at start-up or on the thread pool. */
#ifndef ST_FS_H
#define ST_FS_H

#include "core/st_err.h"

/** mkdir -p: create path and its missing parents (mode 0755); existing
 * directories are fine. Each directory created is made durable (fsync of
 * its parent), so a power cut cannot take away what is then put in it.
 * @return 0, -errno of the failing mkdir, or ST_E_INVAL when path is longer
 *         than PATH_MAX.  @thread any  @blocking yes */
ST_MUST_CHECK int st_mkdirs(const char *path);

/** fsync directory dir (after creating, renaming or deleting entries in it).
 * @return 0 or -errno.  @thread any  @blocking yes */
ST_MUST_CHECK int st_fsync_dir(const char *dir);
/** fsync the directory that holds path ("." for a bare name).
 * @return 0, -errno or ST_E_INVAL.  @thread any  @blocking yes */
ST_MUST_CHECK int st_fsync_parent(const char *path);

#endif
