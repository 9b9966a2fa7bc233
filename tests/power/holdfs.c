/* holdfs.c - a FUSE filesystem for power-cut tests: it passes every
 * operation through to a backing directory but holds written data in memory
 * until the file is fsynced (fsync/fdatasync), as a disk's volatile cache
 * and the page cache do. Killing holdfs (SIGKILL; or SIGUSR1, which exits
 * at once without writing anything) is the power cut: every write not
 * synced is lost, and the backing directory holds exactly what was durable.
 * Mount it again on the same backing directory to "power on".
 *
 * Data path (test only): stratad's pwrite -> kernel FUSE -> hw_write keeps
 * the bytes in 4 KiB pages of the file's held state (keyed by the backing
 * inode, so renames and unlinks keep it) -> reads merge held pages over the
 * backing file -> fsync writes the held pages and the held size to the
 * backing file, then fsyncs it. Truncation is held too (applied at fsync).
 * Directory entries (create, rename, unlink, mkdir) go to the backing
 * directory at once: this models the data loss of a power cut, not the
 * loss of unsynced directory entries (core/plog's crash simulator covers
 * those).
 *
 * SIGUSR2 toggles failing syncs: while on, fsync and fdatasync fail with EIO
 * and write nothing (the data stays held), as a disk whose flushes fail. The
 * test uses it to be sure stratad's last writes are written and not durable
 * when it kills it, then restarts it on what the "page cache" holds.
 *
 * Usage: holdfs BACKING_DIR MOUNTPOINT [FUSE options, e.g. -f -o auto_unmount]
 * Multi-threaded FUSE; one mutex serializes every operation. */
#define FUSE_USE_VERSION 31
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define PAGE     4096
#define N_BUCKET 1024

/* One held page: the file's bytes [index * PAGE, (index + 1) * PAGE) as the
 * writer sees them. */
typedef struct page {
    struct page *next;
    uint64_t index;
    uint8_t data[PAGE];
} page_t;

/* The held state of one backing inode. */
typedef struct held {
    struct held *next;
    dev_t dev;
    ino_t ino;
    off_t size;     /* the size the writer sees */
    page_t **pages; /* hash of held pages */
    size_t n_pages;
} held_t;

static int g_back = -1;    /* the backing directory */
static held_t *g_held;     /* list of files with held data */
static long long g_synced; /* fsyncs that wrote held data (for the log line) */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t g_failing; /* SIGUSR2 toggles: syncs fail, nothing written */

#define LOCKED(call)                                                                               \
    do {                                                                                           \
        pthread_mutex_lock(&g_mu);                                                                 \
        int rc_ = (call);                                                                          \
        pthread_mutex_unlock(&g_mu);                                                               \
        return rc_;                                                                                \
    } while (0)

static const char *rel(const char *path)
{
    return path[1] ? path + 1 : ".";
}

static held_t *held_find(const struct stat *st, bool create)
{
    for (held_t *h = g_held; h; h = h->next)
        if (h->dev == st->st_dev && h->ino == st->st_ino)
            return h;
    if (!create)
        return NULL;
    held_t *h = calloc(1, sizeof(*h));
    if (!h || !(h->pages = calloc(N_BUCKET, sizeof(*h->pages)))) {
        free(h);
        return NULL;
    }
    h->dev = st->st_dev;
    h->ino = st->st_ino;
    h->size = st->st_size;
    h->next = g_held;
    g_held = h;
    return h;
}

static void held_free(held_t *h)
{
    for (held_t **p = &g_held; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    for (size_t b = 0; b < N_BUCKET; b++)
        for (page_t *pg = h->pages[b], *n; pg; pg = n) {
            n = pg->next;
            free(pg);
        }
    free(h->pages);
    free(h);
}

static page_t *page_find(held_t *h, uint64_t index)
{
    for (page_t *pg = h->pages[index % N_BUCKET]; pg; pg = pg->next)
        if (pg->index == index)
            return pg;
    return NULL;
}

/* The held page index of fd's file, created from the backing bytes. */
static page_t *page_get(held_t *h, int fd, uint64_t index)
{
    page_t *pg = page_find(h, index);
    if (pg)
        return pg;
    if (!(pg = calloc(1, sizeof(*pg))))
        return NULL;
    pg->index = index;
    off_t at = (off_t)(index * PAGE);
    if (at < h->size) { /* what the writer sees there: the backing bytes below its size */
        ssize_t n = pread(fd, pg->data, PAGE, at);
        if (n > 0 && at + n > h->size)
            memset(pg->data + (h->size - at), 0, (size_t)(at + n - h->size));
    }
    pg->next = h->pages[index % N_BUCKET];
    h->pages[index % N_BUCKET] = pg;
    h->n_pages++;
    return pg;
}

/* Drop held pages at or beyond size; zero the tail of the page holding it. */
static void held_truncate(held_t *h, off_t size)
{
    for (size_t b = 0; b < N_BUCKET; b++)
        for (page_t **p = &h->pages[b]; *p;) {
            page_t *pg = *p;
            off_t at = (off_t)(pg->index * PAGE);
            if (at >= size) {
                *p = pg->next;
                free(pg);
                h->n_pages--;
                continue;
            }
            if (at + PAGE > size)
                memset(pg->data + (size - at), 0, (size_t)(at + PAGE - size));
            p = &pg->next;
        }
    h->size = size;
}

/* Make the held state of fd's file durable in the backing file. */
static int held_sync(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    held_t *h = held_find(&st, false);
    if (h) {
        if (ftruncate(fd, h->size) != 0)
            return -errno;
        for (size_t b = 0; b < N_BUCKET; b++)
            for (page_t *pg = h->pages[b]; pg; pg = pg->next) {
                off_t at = (off_t)(pg->index * PAGE);
                size_t len = at + PAGE > h->size ? (size_t)(h->size - at) : PAGE;
                if (at < h->size && pwrite(fd, pg->data, len, at) != (ssize_t)len)
                    return errno ? -errno : -EIO;
            }
        held_free(h);
        g_synced++;
    }
    return fdatasync(fd) != 0 ? -errno : 0;
}

static int hw_getattr_u(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    int rc = fi ? fstat((int)fi->fh, st) : fstatat(g_back, rel(path), st, AT_SYMLINK_NOFOLLOW);
    if (rc != 0)
        return -errno;
    held_t *h = S_ISREG(st->st_mode) ? held_find(st, false) : NULL;
    if (h) {
        st->st_size = h->size;
        st->st_blocks = (h->size + 511) / 512;
    }
    return 0;
}

static int hw_open_u(const char *path, struct fuse_file_info *fi)
{
    /* Always readable: a held page is filled from the backing file. */
    int flags = (fi->flags & ~(O_ACCMODE | O_TRUNC | O_APPEND | O_DIRECT)) | O_RDWR;
    int fd = openat(g_back, rel(path), flags);
    if (fd < 0 && errno == EACCES)
        fd = openat(g_back, rel(path), fi->flags & ~(O_TRUNC | O_APPEND | O_DIRECT));
    if (fd < 0)
        return -errno;
    if (fi->flags & O_TRUNC) {
        struct stat st;
        held_t *h = fstat(fd, &st) == 0 ? held_find(&st, true) : NULL;
        if (h)
            held_truncate(h, 0);
    }
    fi->fh = (uint64_t)fd;
    return 0;
}

static int hw_create_u(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int fd =
        openat(g_back, rel(path), (fi->flags & ~(O_ACCMODE | O_APPEND)) | O_RDWR | O_CREAT, mode);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    if (fi->flags & O_TRUNC) {
        struct stat st;
        held_t *h = fstat(fd, &st) == 0 ? held_find(&st, true) : NULL;
        if (h)
            held_truncate(h, 0);
    }
    return 0;
}

static int hw_read_u(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    int fd = (int)fi->fh;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    held_t *h = held_find(&st, false);
    off_t size = h ? h->size : st.st_size;
    if (off >= size)
        return 0;
    if ((off_t)len > size - off)
        len = (size_t)(size - off);
    if (!h) {
        ssize_t n = pread(fd, buf, len, off);
        return n < 0 ? -errno : (int)n;
    }
    for (size_t done = 0; done < len;) {
        uint64_t index = (uint64_t)(off + (off_t)done) / PAGE;
        size_t in = (size_t)((off + (off_t)done) % PAGE);
        size_t n = PAGE - in < len - done ? PAGE - in : len - done;
        page_t *pg = page_find(h, index);
        if (pg) {
            memcpy(buf + done, pg->data + in, n);
        } else {
            ssize_t r = pread(fd, buf + done, n, off + (off_t)done);
            if (r < 0)
                return -errno;
            if ((size_t)r < n) /* beyond the backing file: zeros up to the held size */
                memset(buf + done + r, 0, n - (size_t)r);
        }
        done += n;
    }
    return (int)len;
}

static int
hw_write_u(const char *path, const char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    int fd = (int)fi->fh;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    held_t *h = held_find(&st, true);
    if (!h)
        return -ENOMEM;
    for (size_t done = 0; done < len;) {
        uint64_t index = (uint64_t)(off + (off_t)done) / PAGE;
        size_t in = (size_t)((off + (off_t)done) % PAGE);
        size_t n = PAGE - in < len - done ? PAGE - in : len - done;
        page_t *pg = page_get(h, fd, index);
        if (!pg)
            return -ENOMEM;
        memcpy(pg->data + in, buf + done, n);
        done += n;
    }
    if (off + (off_t)len > h->size)
        h->size = off + (off_t)len;
    return (int)len;
}

static int hw_truncate_u(const char *path, off_t size, struct fuse_file_info *fi)
{
    int fd = fi ? (int)fi->fh : openat(g_back, rel(path), O_RDWR);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    held_t *h = rc == 0 ? held_find(&st, true) : NULL;
    if (rc == 0 && !h)
        rc = -ENOMEM;
    if (h)
        held_truncate(h, size);
    if (!fi)
        close(fd);
    return rc;
}

static int hw_release_u(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh); /* closing does not sync: held data stays held */
    return 0;
}

static int hw_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    (void)fi;
    return 0;
}

static int hw_opendir_u(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(g_back, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    return 0;
}

static int hw_readdir_u(const char *path,
                        void *buf,
                        fuse_fill_dir_t fill,
                        off_t off,
                        struct fuse_file_info *fi,
                        enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    DIR *d = (DIR *)(uintptr_t)fi->fh;
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (fill(buf, e->d_name, NULL, 0, 0))
            break;
    return 0;
}

static int hw_releasedir_u(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    closedir((DIR *)(uintptr_t)fi->fh);
    return 0;
}

static int hw_fsyncdir_u(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    return fsync(dirfd((DIR *)(uintptr_t)fi->fh)) != 0 ? -errno : 0;
}

static int hw_mkdir_u(const char *path, mode_t mode)
{
    return mkdirat(g_back, rel(path), mode) != 0 ? -errno : 0;
}

static int hw_rmdir_u(const char *path)
{
    return unlinkat(g_back, rel(path), AT_REMOVEDIR) != 0 ? -errno : 0;
}

static int hw_unlink_u(const char *path)
{
    return unlinkat(g_back, rel(path), 0) != 0 ? -errno : 0;
}

static int hw_rename_u(const char *from, const char *to, unsigned int flags)
{
    return renameat2(g_back, rel(from), g_back, rel(to), flags) != 0 ? -errno : 0;
}

static int hw_chmod_u(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int rc = fi ? fchmod((int)fi->fh, mode) : fchmodat(g_back, rel(path), mode, 0);
    return rc != 0 ? -errno : 0;
}

static int hw_utimens_u(const char *path, const struct timespec ts[2], struct fuse_file_info *fi)
{
    int rc = fi ? futimens((int)fi->fh, ts) : utimensat(g_back, rel(path), ts, 0);
    return rc != 0 ? -errno : 0;
}

static int hw_access_u(const char *path, int mask)
{
    return faccessat(g_back, rel(path), mask, 0) != 0 ? -errno : 0;
}

static int hw_statfs_u(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(g_back, st) != 0 ? -errno : 0;
}

/* ---- Every operation under g_mu ---- */

static int hw_getattr(const char *p, struct stat *st, struct fuse_file_info *fi)
{
    LOCKED(hw_getattr_u(p, st, fi));
}
static int hw_open(const char *p, struct fuse_file_info *fi)
{
    LOCKED(hw_open_u(p, fi));
}
static int hw_create(const char *p, mode_t m, struct fuse_file_info *fi)
{
    LOCKED(hw_create_u(p, m, fi));
}
static int hw_read(const char *p, char *b, size_t n, off_t o, struct fuse_file_info *fi)
{
    LOCKED(hw_read_u(p, b, n, o, fi));
}
static int hw_write(const char *p, const char *b, size_t n, off_t o, struct fuse_file_info *fi)
{
    LOCKED(hw_write_u(p, b, n, o, fi));
}
static int hw_truncate(const char *p, off_t size, struct fuse_file_info *fi)
{
    LOCKED(hw_truncate_u(p, size, fi));
}
static int hw_release(const char *p, struct fuse_file_info *fi)
{
    LOCKED(hw_release_u(p, fi));
}
static int hw_opendir(const char *p, struct fuse_file_info *fi)
{
    LOCKED(hw_opendir_u(p, fi));
}
static int hw_readdir(const char *p,
                      void *b,
                      fuse_fill_dir_t fill,
                      off_t o,
                      struct fuse_file_info *fi,
                      enum fuse_readdir_flags fl)
{
    LOCKED(hw_readdir_u(p, b, fill, o, fi, fl));
}
static int hw_releasedir(const char *p, struct fuse_file_info *fi)
{
    LOCKED(hw_releasedir_u(p, fi));
}
static int hw_fsyncdir(const char *p, int ds, struct fuse_file_info *fi)
{
    LOCKED(hw_fsyncdir_u(p, ds, fi));
}
static int hw_mkdir(const char *p, mode_t m)
{
    LOCKED(hw_mkdir_u(p, m));
}
static int hw_rmdir(const char *p)
{
    LOCKED(hw_rmdir_u(p));
}
static int hw_unlink(const char *p)
{
    LOCKED(hw_unlink_u(p));
}
static int hw_rename(const char *f, const char *t, unsigned int fl)
{
    LOCKED(hw_rename_u(f, t, fl));
}
static int hw_chmod(const char *p, mode_t m, struct fuse_file_info *fi)
{
    LOCKED(hw_chmod_u(p, m, fi));
}
static int hw_utimens(const char *p, const struct timespec ts[2], struct fuse_file_info *fi)
{
    LOCKED(hw_utimens_u(p, ts, fi));
}
static int hw_access(const char *p, int m)
{
    LOCKED(hw_access_u(p, m));
}
static int hw_statfs(const char *p, struct statvfs *st)
{
    LOCKED(hw_statfs_u(p, st));
}

static int hw_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    if (g_failing)
        return -EIO;
    LOCKED(held_sync((int)fi->fh));
}

static void *hw_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 0;
    cfg->nullpath_ok = 0;
    cfg->kernel_cache = 0; /* every open drops the kernel's cached pages */
    cfg->attr_timeout = 0; /* sizes come from the held state */
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    return NULL;
}

static const struct fuse_operations k_ops = {
    .init = hw_init,
    .getattr = hw_getattr,
    .open = hw_open,
    .create = hw_create,
    .read = hw_read,
    .write = hw_write,
    .truncate = hw_truncate,
    .fsync = hw_fsync,
    .flush = hw_flush,
    .release = hw_release,
    .opendir = hw_opendir,
    .readdir = hw_readdir,
    .releasedir = hw_releasedir,
    .fsyncdir = hw_fsyncdir,
    .mkdir = hw_mkdir,
    .rmdir = hw_rmdir,
    .unlink = hw_unlink,
    .rename = hw_rename,
    .chmod = hw_chmod,
    .utimens = hw_utimens,
    .access = hw_access,
    .statfs = hw_statfs,
};

/* SIGUSR1: the power cut, now. Nothing held is written. */
static void on_cut(int sig)
{
    (void)sig;
    _exit(3);
}

/* SIGUSR2: syncs start or stop failing. (libfuse keeps SIGHUP, SIGINT and
 * SIGTERM: they unmount.) */
static void on_fail(int sig)
{
    (void)sig;
    g_failing = !g_failing;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s BACKING_DIR MOUNTPOINT [FUSE options]\n", argv[0]);
        return 2;
    }
    g_back = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (g_back < 0) {
        perror(argv[1]);
        return 2;
    }
    signal(SIGUSR1, on_cut);
    signal(SIGUSR2, on_fail);
    char *args[64];
    int n = 0;
    args[n++] = argv[0];
    args[n++] = argv[2];
    for (int i = 3; i < argc && n < 63; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    int rc = fuse_main(n, args, &k_ops, NULL);
    fprintf(stderr, "holdfs: unmounted after %lld syncs of held data\n", g_synced);
    return rc;
}
