/* st_fs.c - filesystem helpers (see st_fs.h). */
#include "core/st_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int st_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

int st_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return ST_E_INVAL;
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash)
        return st_fsync_dir(".");
    slash[slash == dir ? 1 : 0] = 0;
    return st_fsync_dir(dir);
}

/* mkdir, and make the new entry durable in its parent. */
static int mkdir_durable(const char *path)
{
    if (mkdir(path, 0755) != 0)
        return errno == EEXIST ? 0 : -errno;
    return st_fsync_parent(path);
}

int st_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return ST_E_INVAL;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir_durable(tmp);
        *p = '/';
        if (rc != 0)
            return rc;
    }
    return mkdir_durable(tmp);
}
