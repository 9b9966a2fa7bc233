/* obj_file.c - the `file://DIR` backend: objects are files under DIR.
 * Data path: `strata start` with no bucket archives sealed segments here;
 * reads come back through the same obj_ interface as S3. Every operation runs
 * on the libuv thread pool (uv_queue_work); only result hand-off touches the loop.
 *
 * On-disk format of one object: the body, then a 56-byte trailer that is a zstd
 * skippable frame (so `zstd -dc` of a stored segment still works):
 *   u32le 0x184D2A5E | u32le 48 | "STRATAS1" | u64le body length | SHA-256 of body
 * A file without a valid trailer is an object with no checksum.
 *
 * Invariants: 1. a put is atomic: temp file in the target directory, fsync,
 *                rename, fsync of the directory; readers see old or new bytes;
 *             2. temp files are named ".strata-tmp.XXXXXX" (not after their
 *                key: a key's last segment may use all 255 bytes a file name
 *                has, e.g. the manifest of a 249-character topic) and are
 *                never listed;
 *             3. worker functions touch only their own request. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/st_fs.h"
#include "core/st_log.h"
#include "tiering/obj_int.h"

#define TRAILER_BYTES    56
#define SKIP_MAGIC       0x184D2A5Eu
#define TRAILER_MAGIC    "STRATAS1"
#define TMP_PREFIX       ".strata-tmp."
#define OBJ_FILE_WARN_MS 60000

/* ---- Paths ---- */

static bool key_is_valid(const char *key)
{
    if (!*key || key[0] == '/')
        return false;
    const char *p = key;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (n >= sizeof(TMP_PREFIX) - 1 && strncmp(p, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static char *key_path(const obj_store_t *st, const char *key)
{
    size_t n = strlen(st->dir) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", st->dir, key);
    return p;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return ST_E_IO; /* file shrank under us */
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Object size and stored checksum of an open file. */
static int read_meta(int fd, uint64_t *body_len, char sha_hex[65])
{
    struct stat sb;
    if (fstat(fd, &sb))
        return -errno;
    if (!S_ISREG(sb.st_mode))
        return ST_E_NOTFOUND;
    uint64_t size = (uint64_t)sb.st_size;
    *body_len = size;
    sha_hex[0] = '\0';
    if (size < TRAILER_BYTES)
        return 0;
    uint8_t t[TRAILER_BYTES];
    int rc = pread_all(fd, t, sizeof t, size - TRAILER_BYTES);
    if (rc)
        return rc;
    uint8_t want[8];
    put_le32(want, SKIP_MAGIC);
    put_le32(want + 4, TRAILER_BYTES - 8);
    if (memcmp(t, want, 8) || memcmp(t + 8, TRAILER_MAGIC, 8) ||
        get_le64(t + 16) != size - TRAILER_BYTES)
        return 0;
    *body_len = size - TRAILER_BYTES;
    obj__hex(t + 24, 32, sha_hex);
    return 0;
}

/* ---- Worker functions (thread pool) ---- */

static int do_put(obj_req_t *req, const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return ST_E_NOMEM;
    *strrchr(dir, '/') = '\0';
    size_t tn = strlen(dir) + sizeof(TMP_PREFIX) + 16;
    char *tmp = malloc(tn);
    int fd = -1, rc = 0;
    if (!tmp) {
        rc = ST_E_NOMEM;
        goto out;
    }
    /* a concurrent delete may remove an emptied directory: retry */
    for (int tries = 0; tries < 5; tries++) {
        rc = st_mkdirs(dir);
        if (rc)
            goto out;
        snprintf(tmp, tn, "%s/" TMP_PREFIX "XXXXXX", dir);
        fd = mkstemp(tmp);
        if (fd >= 0 || errno != ENOENT)
            break;
    }
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    uint8_t t[TRAILER_BYTES];
    put_le32(t, SKIP_MAGIC);
    put_le32(t + 4, TRAILER_BYTES - 8);
    memcpy(t + 8, TRAILER_MAGIC, 8);
    put_le64(t + 16, req->put_len);
    SHA256(req->put_data ? req->put_data : (const uint8_t *)"", req->put_len, t + 24);
    obj__hex(t + 24, 32, req->res.sha256_hex);
    if ((rc = write_all(fd, req->put_data, req->put_len)) || (rc = write_all(fd, t, sizeof t)))
        goto out;
    if (fchmod(fd, 0644) || fsync(fd)) {
        rc = -errno;
        goto out;
    }
    if (close(fd)) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path)) {
        rc = -errno;
        goto out;
    }
    tmp[0] = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd))
        rc = -errno;
    if (dfd >= 0)
        close(dfd);
out:
    if (fd >= 0)
        close(fd);
    if (tmp && tmp[0])
        unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

static int do_get(obj_req_t *req, const char *path, bool want_body)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == EISDIR ? ST_E_NOTFOUND : -errno;
    uint64_t size;
    int rc = read_meta(fd, &size, req->res.sha256_hex);
    if (rc)
        goto out;
    req->res.object_size = size;
    if (!want_body)
        goto out;
    uint64_t off = 0, len = size;
    if (req->is_ranged) {
        if (req->range_off >= size) {
            rc = ST_E_RANGE;
            goto out;
        }
        off = req->range_off;
        len = size - off < req->range_len ? size - off : req->range_len;
    }
    if (len > SIZE_MAX - 1) {
        rc = ST_E_TOO_LARGE;
        goto out;
    }
    req->res.data = malloc(len ? len : 1);
    if (!req->res.data) {
        rc = ST_E_NOMEM;
        goto out;
    }
    req->res.data_len = len;
    if ((rc = pread_all(fd, req->res.data, len, off)))
        goto out;
    if (!req->is_ranged && req->res.sha256_hex[0]) {
        char got[65];
        obj__sha256_hex(req->res.data, len, got);
        if (strcmp(got, req->res.sha256_hex) != 0)
            rc = ST_E_CORRUPT;
    }
out:
    close(fd);
    return rc;
}

/* Remove now-empty parent directories of path, up to the store directory. */
static void prune_dirs(const obj_store_t *st, char *path)
{
    size_t root = strlen(st->dir);
    for (;;) {
        char *slash = strrchr(path, '/');
        if (!slash || (size_t)(slash - path) <= root)
            return;
        *slash = '\0';
        if (rmdir(path))
            return;
    }
}

static int do_delete(obj_req_t *req, const char *key)
{
    if (!key_is_valid(key))
        return ST_E_INVAL;
    char *path = key_path(req->st, key);
    if (!path)
        return ST_E_NOMEM;
    int rc = 0;
    if (unlink(path) && errno != ENOENT && errno != ENOTDIR)
        rc = -errno;
    if (!rc)
        prune_dirs(req->st, path);
    free(path);
    return rc;
}

/* ---- Listing ---- */

typedef struct {
    char **keys;
    size_t n, cap;
} keyvec_t;

static int keyvec_push(keyvec_t *v, const char *k)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        char **p = realloc(v->keys, cap * sizeof *p);
        if (!p)
            return ST_E_NOMEM;
        v->keys = p;
        v->cap = cap;
    }
    if (!(v->keys[v->n] = strdup(k)))
        return ST_E_NOMEM;
    v->n++;
    return 0;
}

/* Walk dir (path = store dir + "/" + rel) collecting keys that start with prefix. */
static int walk(const char *abs, const char *rel, const char *prefix, keyvec_t *out)
{
    DIR *d = opendir(abs);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    int rc = 0;
    struct dirent *e;
    size_t plen = strlen(prefix);
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strncmp(e->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1))
            continue;
        size_t an = strlen(abs) + strlen(e->d_name) + 2;
        size_t rn = strlen(rel) + strlen(e->d_name) + 2;
        char *a = malloc(an), *r = malloc(rn);
        if (!a || !r) {
            free(a);
            free(r);
            rc = ST_E_NOMEM;
            break;
        }
        snprintf(a, an, "%s/%s", abs, e->d_name);
        snprintf(r, rn, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        struct stat sb;
        if (lstat(a, &sb) == 0) {
            size_t rl = strlen(r);
            size_t cmp = rl < plen ? rl : plen;
            if (S_ISDIR(sb.st_mode)) {
                /* descend only when the directory can hold matching keys */
                if (strncmp(r, prefix, cmp) == 0)
                    rc = walk(a, r, prefix, out);
            } else if (S_ISREG(sb.st_mode) && rl >= plen && strncmp(r, prefix, plen) == 0) {
                rc = keyvec_push(out, r);
            }
        }
        free(a);
        free(r);
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int do_list(obj_req_t *req)
{
    keyvec_t v = {0};
    int rc = walk(req->st->dir, "", req->prefix, &v);
    if (rc)
        goto out;
    if (v.n)
        qsort(v.keys, v.n, sizeof *v.keys, cmp_str);
    size_t i = 0;
    if (req->token)
        while (i < v.n && strcmp(v.keys[i], req->token) <= 0)
            i++;
    size_t n = v.n - i < req->max_keys ? v.n - i : req->max_keys;
    req->res.entries = calloc(n ? n : 1, sizeof *req->res.entries);
    if (!req->res.entries) {
        rc = ST_E_NOMEM;
        goto out;
    }
    for (size_t j = 0; j < n; j++) {
        obj_entry_t *e = &req->res.entries[j];
        e->key = v.keys[i + j];
        v.keys[i + j] = NULL;
        req->res.n_entries++;
        char *path = key_path(req->st, e->key);
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        char sha[65];
        if (fd >= 0) {
            if (read_meta(fd, &e->size_bytes, sha))
                e->size_bytes = 0;
            close(fd);
        }
        free(path);
    }
    if (i + n < v.n) {
        req->res.next_token = strdup(req->res.entries[n - 1].key);
        if (!req->res.next_token)
            rc = ST_E_NOMEM;
    }
out:
    for (size_t j = 0; j < v.n; j++)
        free(v.keys[j]);
    free(v.keys);
    return rc;
}

/* ---- Dispatch ---- */

static void work_cb(uv_work_t *w)
{
    obj_req_t *req = w->data;
    int rc = 0;
    char *path = NULL;
    if (req->key) {
        if (!key_is_valid(req->key)) {
            req->work_status = ST_E_INVAL;
            return;
        }
        if (!(path = key_path(req->st, req->key))) {
            req->work_status = ST_E_NOMEM;
            return;
        }
    }
    switch (req->op) {
    case OBJ__OP_PUT:
        rc = do_put(req, path);
        break;
    case OBJ__OP_GET:
        rc = do_get(req, path, true);
        break;
    case OBJ__OP_HEAD:
        rc = do_get(req, path, false);
        break;
    case OBJ__OP_LIST:
        rc = do_list(req);
        break;
    case OBJ__OP_DELETE:
        rc = do_delete(req, req->key);
        break;
    case OBJ__OP_DELETE_MANY:
        for (size_t i = 0; i < req->n_keys; i++) {
            int r = do_delete(req, req->keys[i]);
            if (r) {
                req->res.n_failed++;
                if (!rc)
                    rc = r;
            }
        }
        break;
    }
    free(path);
    req->work_status = rc;
}

static void after_work_cb(uv_work_t *w, int status)
{
    obj_req_t *req = w->data;
    req->is_work_pending = false;
    int rc = req->work_status;
    if (req->is_canceled)
        rc = ST_E_CANCELED;
    else if (req->is_timed_out)
        rc = ST_E_TIMEOUT;
    else if (status == UV_ECANCELED)
        rc = ST_E_CANCELED;
    obj_store_t *st = req->st;
    if (rc && rc != ST_E_NOTFOUND && rc != ST_E_CANCELED && rc != ST_E_TIMEOUT &&
        rc != ST_E_INVAL && rc != ST_E_RANGE) {
        /* Callers retry (uploads, manifests): one line per store per
         * OBJ_FILE_WARN_MS, with the failures not logged in between
         * (strata_object_store_errors_total counts each). */
        uint64_t now = uv_now(st->loop);
        st->n_warn_quiet++;
        if (st->warn_ms == 0 || now - st->warn_ms >= OBJ_FILE_WARN_MS) {
            ST_WARN(OBJ__MOD,
                    "file op failed store=%s key=%s err=%s (%u failures since the last "
                    "such line)",
                    st->name, req->key ? req->key : "-", st_strerror(rc), st->n_warn_quiet);
            st->warn_ms = now;
            st->n_warn_quiet = 0;
        }
    }
    if (rc == ST_E_CORRUPT)
        obj__set_err(req, "%s: %s: checksum mismatch (stored sha256 %s)", req->st->name, req->key,
                     req->res.sha256_hex);
    obj__finish(req, rc);
}

void obj__file_start(obj_req_t *req)
{
    req->work.data = req;
    req->is_work_pending = true;
    int rc = uv_queue_work(req->st->loop, &req->work, work_cb, after_work_cb);
    if (rc) {
        req->is_work_pending = false;
        obj__finish(req, rc);
    }
}

bool obj__file_abort(obj_req_t *req)
{
    /* A work item still in the pool's queue is dropped; after_work_cb then runs
     * with UV_ECANCELED and finishes the request. A running one finishes first. */
    if (req->is_work_pending)
        uv_cancel((uv_req_t *)&req->work);
    return false;
}
