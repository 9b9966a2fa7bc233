/* tier_cache.c - the hydration chunk cache on local disk (see cache.h for the
 * data path, the file format and the invariants).
 * Data path: tier_rd.c looks a chunk up here before any ranged GET, and every
 * downloaded chunk lands here, so a replay that runs twice (or two consumers
 * of the same range) fetches each chunk from the object store once.
 * Layout: an in-memory hash table (key -> entry) plus a doubly linked LRU list
 * (head = most recently used), both owned by the loop; every file operation
 * is an item on the hydration pool (hyd_cache_set_port(); libuv's thread
 * pool without one, and for the rebuild scan at open) whose after-callback
 * updates the table. The entries' files never change after the rename that creates them.
 */
#include "core/st_crc32c.h"
#include "core/st_fs.h"
#include "core/st_log.h"
#include "tiering/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define HC_MAGIC   0x43485453u
#define HC_VERSION 1u
#define HC_HDR     24u
/* Offset, length and buffer alignment of O_DIRECT writes (the largest logical
 * block size of common devices). */
#define HC_DIRECT_ALIGN 4096u
#define DIRECT_REFUSED  1 /* write_direct(): this filesystem has no O_DIRECT */

/* n rounded up to whole O_DIRECT blocks. */
static size_t direct_padded(size_t n)
{
    return (n + HC_DIRECT_ALIGN - 1) & ~(size_t)(HC_DIRECT_ALIGN - 1);
}

typedef struct ent {
    struct ent *hnext;       /* hash chain */
    struct ent *prev, *next; /* LRU list: head is the most recently used */
    char *key;               /* owned */
    uint64_t hash;
    uint64_t seq;  /* file name */
    uint64_t size; /* file bytes */
} ent_t;

struct hyd_cache {
    uv_loop_t *loop;
    st_pool_port_t *port; /* borrowed: where file I/O runs (NULL = libuv's pool) */
    char *dir;            /* owned */
    uint64_t max_bytes;
    ent_t **tab; /* owned: tab_size buckets */
    size_t tab_size, n;
    ent_t *head, *tail;
    uint64_t bytes;
    _Atomic uint64_t next_seq; /* file names; written from the thread pool */
    _Atomic bool is_ready;     /* rebuilt, not closing: writes are accepted */
    _Atomic bool direct;       /* entry files are written with O_DIRECT (until refused) */
    bool closing;
    int pending; /* thread pool work in flight */
    hyd_cache_stats_t st;
    hyd_cache_ready_cb ready_cb;
    void *ready_arg;
    hyd_cache_closed_cb closed_cb;
    void *closed_arg;
};

/* ---- Table and LRU list (loop only) ---- */

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h;
}

static ent_t *find(const hyd_cache_t *c, const char *key, uint64_t h)
{
    for (ent_t *e = c->tab[h % c->tab_size]; e; e = e->hnext)
        if (e->hash == h && !strcmp(e->key, key))
            return e;
    return NULL;
}

static void lru_unlink(hyd_cache_t *c, ent_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(hyd_cache_t *c, ent_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void grow(hyd_cache_t *c)
{
    size_t ns = c->tab_size * 2;
    ent_t **nt = calloc(ns, sizeof(*nt));
    if (!nt)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->tab_size; i++) {
        for (ent_t *e = c->tab[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = nt[e->hash % ns];
            nt[e->hash % ns] = e;
        }
    }
    free(c->tab);
    c->tab = nt;
    c->tab_size = ns;
}

/* Remove e from the table and the list; the caller frees it. */
static void remove_ent(hyd_cache_t *c, ent_t *e)
{
    for (ent_t **p = &c->tab[e->hash % c->tab_size]; *p; p = &(*p)->hnext) {
        if (*p == e) {
            *p = e->hnext;
            break;
        }
    }
    lru_unlink(c, e);
    c->n--;
    c->bytes -= e->size;
}

static void file_path(const hyd_cache_t *c, uint64_t seq, const char *ext, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 ".%s", c->dir, seq, ext);
}

/* ---- Unlinking (thread pool) ---- */

typedef struct {
    st_pool_work_t work;
    hyd_cache_t *c;
    uint64_t *seqs; /* owned */
    size_t n;
} unlink_t;

static void unlink_work(st_pool_work_t *w)
{
    unlink_t *u = w->data;
    char path[4096];
    for (size_t i = 0; i < u->n; i++) {
        file_path(u->c, u->seqs[i], "hc", path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT)
            ST_WARN("tier", "cache: cannot remove %s: %s", path, strerror(errno));
    }
}

static void work_finished(hyd_cache_t *c);

static void unlink_done(st_pool_work_t *w, int status)
{
    unlink_t *u = w->data;
    (void)status;
    hyd_cache_t *c = u->c;
    free(u->seqs);
    free(u);
    work_finished(c);
}

/* Unlink the files of seqs (owned) on the thread pool. */
static void unlink_files(hyd_cache_t *c, uint64_t *seqs, size_t n)
{
    unlink_t *u = n ? calloc(1, sizeof(*u)) : NULL;
    if (!u) {
        free(seqs); /* the files stay until the next rebuild removes them */
        return;
    }
    u->c = c;
    u->seqs = seqs;
    u->n = n;
    u->work.data = u;
    if (st_pool_queue(c->port, c->loop, &u->work, unlink_work, unlink_done) != 0) {
        free(seqs);
        free(u);
        return;
    }
    c->pending++;
}

/* Drop least recently used entries until the bound holds (invariant 2). */
static void evict(hyd_cache_t *c, ent_t *extra)
{
    size_t cap = 16, n = 0;
    uint64_t *seqs = malloc(cap * sizeof(*seqs));
    if (extra && seqs)
        seqs[n++] = extra->seq;
    while (c->bytes > c->max_bytes && c->tail) {
        ent_t *e = c->tail;
        remove_ent(c, e);
        c->st.evictions++;
        if (seqs && n == cap) {
            uint64_t *ns = realloc(seqs, cap * 2 * sizeof(*seqs));
            if (ns) {
                seqs = ns;
                cap *= 2;
            }
        }
        if (seqs && n < cap)
            seqs[n++] = e->seq;
        free(e->key);
        free(e);
    }
    if (seqs)
        unlink_files(c, seqs, n);
}

/* Insert (key owned) as the most recently used entry, replacing an older
 * entry of the same key (its file is unlinked). */
static void insert(hyd_cache_t *c, char *key, uint64_t seq, uint64_t size)
{
    uint64_t h = hash_key(key);
    ent_t *old = find(c, key, h), *e = calloc(1, sizeof(*e));
    if (old)
        remove_ent(c, old);
    if (!e) {
        free(key);
        uint64_t *s = malloc(sizeof(*s));
        if (s)
            *s = seq;
        unlink_files(c, s, s ? 1 : 0);
    } else {
        *e = (ent_t){.key = key, .hash = h, .seq = seq, .size = size};
        e->hnext = c->tab[h % c->tab_size];
        c->tab[h % c->tab_size] = e;
        lru_push_head(c, e);
        c->n++;
        c->bytes += size;
        if (c->n > c->tab_size)
            grow(c);
    }
    evict(c, old);
    if (old) {
        free(old->key);
        free(old);
    }
}

/* ---- Entry files ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static ssize_t read_full(int fd, void *buf, size_t len, off_t pos)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, pos + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Check an entry's header against its file's size. @return 0 (*klen set) or
 * ST_E_CORRUPT. */
static int check_header(const uint8_t hdr[HC_HDR], uint64_t file_size, uint32_t *klen)
{
    if (get_u32(hdr) != HC_MAGIC || get_u32(hdr + 4) != HC_VERSION)
        return ST_E_CORRUPT;
    uint32_t kl = get_u32(hdr + 8), dlen = get_u32(hdr + 12);
    if (kl == 0 || kl > HYD_CACHE_MAX_KEY || file_size != (uint64_t)HC_HDR + kl + dlen)
        return ST_E_CORRUPT;
    *klen = kl;
    return 0;
}

/* Check the header's CRC over itself and the key's klen bytes k, and return
 * the key (owned; NULL key skips it), data length and data CRC.
 * @return 0, ST_E_CORRUPT, ST_E_NOMEM. */
static int finish_header(const uint8_t hdr[HC_HDR],
                         const char *k,
                         uint32_t klen,
                         char **key,
                         uint32_t *data_len,
                         uint32_t *crc)
{
    uint32_t hc = st_crc32c(st_crc32c(0, hdr, 20), k, klen);
    if (hc != get_u32(hdr + 20) || memchr(k, 0, klen))
        return ST_E_CORRUPT;
    if (key) {
        if (!(*key = malloc(klen + 1)))
            return ST_E_NOMEM;
        memcpy(*key, k, klen);
        (*key)[klen] = 0;
    }
    *data_len = get_u32(hdr + 12);
    *crc = get_u32(hdr + 16);
    return 0;
}

/* Read and check the header and key of an open entry file. key (owned, out)
 * may be NULL to skip returning it. @return 0, ST_E_CORRUPT, -errno. */
static int read_header(int fd, uint64_t file_size, char **key, uint32_t *data_len, uint32_t *crc)
{
    uint8_t hdr[HC_HDR];
    ssize_t n = read_full(fd, hdr, HC_HDR, 0);
    if (n < 0)
        return (int)n;
    uint32_t klen;
    if (n != HC_HDR || check_header(hdr, file_size, &klen) != 0)
        return ST_E_CORRUPT;
    char k[HYD_CACHE_MAX_KEY];
    if (read_full(fd, k, klen, HC_HDR) != (ssize_t)klen)
        return ST_E_CORRUPT;
    return finish_header(hdr, k, klen, key, data_len, crc);
}

int hyd_cache_write(
    hyd_cache_t *c, const char *key, const void *data, size_t len, hyd_cache_file_t *out)
{
    return hyd_cache_write_crc(c, key, data, len, st_crc32c(0, data, len), out);
}

/* Write every byte of iov[0..n) at offset 0 of fd (iov is consumed); *done
 * counts what was written. @return 0 or a negative errno / ST_E_IO. */
static int write_all(int fd, struct iovec *iov, int n_iov, size_t *done)
{
    size_t total = 0;
    for (int i = 0; i < n_iov; i++)
        total += iov[i].iov_len;
    *done = 0;
    while (*done < total) {
        ssize_t n = pwritev(fd, iov, n_iov, (off_t)*done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : ST_E_IO;
        *done += (size_t)n;
        /* Advance the iovecs past what was written. */
        size_t skip = (size_t)n;
        for (int i = 0; i < n_iov; i++) {
            size_t s = skip < iov[i].iov_len ? skip : iov[i].iov_len;
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + s;
            iov[i].iov_len -= s;
            skip -= s;
        }
    }
    return 0;
}

/* Write an entry file's bytes (header, key, data) to a new file at tmp with
 * O_DIRECT, from an aligned copy padded to whole blocks, then cut the
 * padding: the bytes go from this buffer (reused by the allocator, resident)
 * to the disk without a page-cache page each. On this project's VM a fresh
 * page costs a host fault, so a replay writing its chunks through the page
 * cache stalled a vCPU for most of the time the replay ran (bench/REPORT.md);
 * and a replay does not push the hot segments' pages out of the cache.
 * @return 0, DIRECT_REFUSED (the filesystem refuses O_DIRECT: nothing
 *         left behind), ST_E_NOMEM, negative errno. */
static int write_direct(
    const char *tmp, const uint8_t *hdr, const char *key, size_t klen, const void *data, size_t len)
{
    size_t total = HC_HDR + klen + len;
    size_t padded = direct_padded(total);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
    if (fd < 0)
        return errno == EINVAL ? DIRECT_REFUSED : -errno;
    void *buf = NULL;
    if (posix_memalign(&buf, HC_DIRECT_ALIGN, padded) != 0) {
        close(fd);
        unlink(tmp);
        return ST_E_NOMEM;
    }
    uint8_t *b = buf;
    memcpy(b, hdr, HC_HDR);
    memcpy(b + HC_HDR, key, klen);
    memcpy(b + HC_HDR + klen, data, len);
    memset(b + total, 0, padded - total);
    struct iovec iov = {b, padded};
    size_t done = 0;
    int err = write_all(fd, &iov, 1, &done);
    free(buf);
    if (err == -EINVAL && done == 0)
        err = DIRECT_REFUSED; /* opened, but the filesystem refuses direct writes */
    if (!err && ftruncate(fd, (off_t)total) != 0)
        err = -errno;
    if (close(fd) != 0 && !err)
        err = -errno;
    if (err)
        unlink(tmp);
    return err;
}

/* write_direct()'s fallback: the same file written through the page cache.
 * @return 0 or a negative errno / ST_E_IO. */
static int write_buffered(
    const char *tmp, const uint8_t *hdr, const char *key, size_t klen, const void *data, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    struct iovec iov[3] = {{(void *)hdr, HC_HDR}, {(void *)key, klen}, {(void *)data, len}};
    size_t done;
    int err = write_all(fd, iov, 3, &done);
    /* Start its writeback now, without waiting: left to the kernel, a replay's
     * cache files stay dirty for dirty_expire (30 s) and then go out in one
     * burst, and every produce fdatasync issued meanwhile queues behind it. */
    if (!err)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (close(fd) != 0 && !err)
        err = -errno;
    return err;
}

/* The file is not fsynced (the cache is disposable): after a crash it may be
 * short or hold zeros, which read_header (size) and the data checksum refuse. */
int hyd_cache_write_crc(hyd_cache_t *c,
                        const char *key,
                        const void *data,
                        size_t len,
                        uint32_t data_crc32c,
                        hyd_cache_file_t *out)
{
    size_t klen = strlen(key);
    memset(out, 0, sizeof(*out));
    if (!atomic_load(&c->is_ready))
        return ST_E_AGAIN;
    if (klen == 0 || klen > HYD_CACHE_MAX_KEY || len > UINT32_MAX)
        return ST_E_INVAL;
    if ((uint64_t)HC_HDR + klen + len > c->max_bytes)
        return ST_E_TOO_LARGE;
    uint8_t hdr[HC_HDR];
    put_u32(hdr, HC_MAGIC);
    put_u32(hdr + 4, HC_VERSION);
    put_u32(hdr + 8, (uint32_t)klen);
    put_u32(hdr + 12, (uint32_t)len);
    put_u32(hdr + 16, data_crc32c);
    put_u32(hdr + 20, st_crc32c(st_crc32c(0, hdr, 20), key, klen));
    uint64_t seq = atomic_fetch_add(&c->next_seq, 1);
    char tmp[4096], path[4096];
    file_path(c, seq, "tmp", tmp, sizeof(tmp));
    file_path(c, seq, "hc", path, sizeof(path));
    size_t total = HC_HDR + klen + len;
    int err = DIRECT_REFUSED;
    if (atomic_load_explicit(&c->direct, memory_order_relaxed)) {
        err = write_direct(tmp, hdr, key, klen, data, len);
        if (err == DIRECT_REFUSED) {
            atomic_store_explicit(&c->direct, false, memory_order_relaxed);
            ST_INFO("tier",
                    "chunk cache %s: no O_DIRECT on this filesystem, files written through "
                    "the page cache",
                    c->dir);
        }
    }
    if (err == DIRECT_REFUSED)
        err = write_buffered(tmp, hdr, key, klen, data, len);
    if (!err && rename(tmp, path) != 0)
        err = -errno;
    if (err) {
        unlink(tmp);
        return err;
    }
    if (!(out->key = strdup(key))) {
        unlink(path);
        return ST_E_NOMEM;
    }
    out->seq = seq;
    out->size = total;
    return 0;
}

void hyd_cache_file_fini(hyd_cache_file_t *f)
{
    if (f) {
        free(f->key);
        memset(f, 0, sizeof(*f));
    }
}

void hyd_cache_discard(hyd_cache_t *c, hyd_cache_file_t *f)
{
    char path[4096];
    if (!f->key)
        return;
    file_path(c, f->seq, "hc", path, sizeof(path));
    unlink(path);
    hyd_cache_file_fini(f);
}

void hyd_cache_add(hyd_cache_t *c, hyd_cache_file_t *f)
{
    if (!f->key)
        return;
    char *key = f->key;
    uint64_t seq = f->seq, size = f->size;
    memset(f, 0, sizeof(*f));
    insert(c, key, seq, size);
}

/* ---- Gets ---- */

typedef struct {
    st_pool_work_t work;
    hyd_cache_t *c;
    char *key; /* owned */
    uint64_t seq;
    uint64_t size; /* the entry's file bytes */
    bool has_entry;
    uint32_t expect_crc;
    uint32_t crc; /* the data's CRC-32C, verified */
    hyd_cache_get_cb cb;
    void *arg;
    int err;
    uint8_t *data; /* owned until the callback */
    size_t len;
} get_t;

/* Read a whole entry file with O_DIRECT (fd opened with it, size bytes): one
 * aligned read of its blocks, header and key checked in memory, the data
 * moved to the buffer's start (*out, malloc'd, *dlen bytes). One disk read
 * per entry and no page-cache page: a warm replay neither waits for a
 * separate header read nor fills the cache the hot path uses.
 * @return 0, ST_E_CORRUPT, ST_E_NOMEM, negative errno (-EINVAL: the read was
 *         refused, read it buffered). */
static int read_direct(int fd,
                       uint64_t size,
                       uint64_t expect_size,
                       char **key,
                       uint32_t *dlen,
                       uint32_t *crc,
                       uint8_t **out)
{
    *out = NULL;
    if (size != expect_size || size < HC_HDR)
        return ST_E_CORRUPT; /* not what the cache wrote: no buffer sized by it */
    size_t padded = direct_padded((size_t)size);
    void *buf = NULL;
    if (posix_memalign(&buf, HC_DIRECT_ALIGN, padded) != 0)
        return ST_E_NOMEM;
    /* A direct read ends at the file's end with a short count: no further
     * read from there (an unaligned offset would be refused). */
    ssize_t n = 0;
    while ((size_t)n < padded && (size_t)n % HC_DIRECT_ALIGN == 0) {
        ssize_t r = pread(fd, (uint8_t *)buf + n, padded - (size_t)n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            n = r < 0 ? -errno : n;
            break;
        }
        n += r;
    }
    uint8_t *b = buf;
    uint32_t klen = 0;
    int err = n < 0 ? (int)n : (uint64_t)n < size ? ST_E_CORRUPT : 0;
    if (!err)
        err = check_header(b, size, &klen);
    if (!err)
        err = finish_header(b, (const char *)b + HC_HDR, klen, key, dlen, crc);
    if (err) {
        free(buf);
        return err;
    }
    memmove(b, b + HC_HDR + klen, *dlen);
    *out = b;
    return 0;
}

/* Read an entry file buffered (fd): header, key, then its data (*out). */
static int
read_buffered(int fd, uint64_t size, char **key, uint32_t *dlen, uint32_t *crc, uint8_t **out)
{
    *out = NULL;
    int err = read_header(fd, size, key, dlen, crc);
    if (err)
        return err;
    if (!(*out = malloc(*dlen ? *dlen : 1)))
        return ST_E_NOMEM;
    if (read_full(fd, *out, *dlen, (off_t)(size - *dlen)) != (ssize_t)*dlen)
        return ST_E_CORRUPT; /* *out freed by the caller */
    return 0;
}

static void get_work(st_pool_work_t *w)
{
    get_t *g = w->data;
    char path[4096];
    if (!g->has_entry) {
        g->err = ST_E_NOTFOUND;
        return;
    }
    file_path(g->c, g->seq, "hc", path, sizeof(path));
    bool direct = atomic_load_explicit(&g->c->direct, memory_order_relaxed);
    int fd = direct ? open(path, O_RDONLY | O_CLOEXEC | O_DIRECT) : -1;
    if (fd < 0 && direct && errno == EINVAL)
        direct = false; /* refused by the filesystem: buffered below */
    if (fd < 0 && !direct)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g->err = errno == ENOENT ? ST_E_NOTFOUND : -errno;
        return;
    }
    struct stat sb;
    char *key = NULL;
    uint32_t dlen = 0, crc = 0;
    int err = fstat(fd, &sb) != 0 ? -errno : 0;
    if (!err && direct) {
        err = read_direct(fd, (uint64_t)sb.st_size, g->size, &key, &dlen, &crc, &g->data);
        if (err == -EINVAL) { /* a refused direct read: buffered */
            err = 0;
            direct = false;
        }
    }
    if (!err && !direct)
        err = read_buffered(fd, (uint64_t)sb.st_size, &key, &dlen, &crc, &g->data);
    if (!err && strcmp(key, g->key) != 0)
        err = ST_E_CORRUPT;
    if (!err) {
        uint32_t got = st_crc32c(0, g->data, dlen);
        if (got != crc || (g->expect_crc && got != g->expect_crc))
            err = ST_E_CORRUPT;
    }
    if (!err) {
        g->len = dlen;
        g->crc = crc;
        futimens(fd, NULL); /* recency for the LRU rebuilt after a restart */
    } else {
        free(g->data);
        g->data = NULL;
    }
    free(key);
    close(fd);
    g->err = err;
}

static void get_done(st_pool_work_t *w, int status)
{
    get_t *g = w->data;
    hyd_cache_t *c = g->c;
    int err = status ? status : g->err;
    ent_t *e = find(c, g->key, hash_key(g->key));
    if (err == 0) {
        c->st.hits++;
        if (e && e->seq == g->seq) {
            lru_unlink(c, e);
            lru_push_head(c, e);
        }
    } else if (err == ST_E_CORRUPT) {
        c->st.corrupt++;
        ST_WARN("tier", "cache: corrupt entry removed key=%s file=%016" PRIx64 ".hc", g->key,
                g->seq);
        if (e && e->seq == g->seq) {
            remove_ent(c, e);
            evict(c, e); /* unlinks e's file */
            free(e->key);
            free(e);
        }
    } else {
        c->st.misses++;
        if (e && e->seq == g->seq && err == ST_E_NOTFOUND && g->has_entry) {
            remove_ent(c, e); /* the file vanished */
            free(e->key);
            free(e);
        }
    }
    g->cb(g->arg, err, g->data, g->len, err ? 0 : g->crc);
    free(g->key);
    free(g);
    work_finished(c);
}

int hyd_cache_get(
    hyd_cache_t *c, const char *key, uint32_t expect_crc32c, hyd_cache_get_cb cb, void *arg)
{
    if (c->closing)
        return ST_E_CLOSED;
    get_t *g = calloc(1, sizeof(*g));
    if (!g || !(g->key = strdup(key))) {
        free(g);
        return ST_E_NOMEM;
    }
    ent_t *e = find(c, key, hash_key(key));
    g->c = c;
    g->has_entry = e != NULL;
    g->seq = e ? e->seq : 0;
    g->size = e ? e->size : 0;
    g->expect_crc = expect_crc32c;
    g->cb = cb;
    g->arg = arg;
    g->work.data = g;
    int rc = st_pool_queue(c->port, c->loop, &g->work, get_work, get_done);
    if (rc != 0) {
        free(g->key);
        free(g);
        return rc;
    }
    c->pending++;
    return 0;
}

bool hyd_cache_contains(const hyd_cache_t *c, const char *key)
{
    return find(c, key, hash_key(key)) != NULL;
}

/* ---- Puts ---- */

typedef struct {
    st_pool_work_t work;
    hyd_cache_t *c;
    char *key; /* owned */
    const void *data;
    size_t len;
    hyd_cache_file_t f;
    int err;
    hyd_cache_done_cb cb;
    void *arg;
} put_t;

static void put_work(st_pool_work_t *w)
{
    put_t *p = w->data;
    p->err = hyd_cache_write(p->c, p->key, p->data, p->len, &p->f);
}

static void put_done(st_pool_work_t *w, int status)
{
    put_t *p = w->data;
    hyd_cache_t *c = p->c;
    int err = status ? status : p->err;
    if (!err)
        hyd_cache_add(c, &p->f);
    hyd_cache_file_fini(&p->f);
    if (p->cb)
        p->cb(p->arg, err);
    free(p->key);
    free(p);
    work_finished(c);
}

int hyd_cache_put(
    hyd_cache_t *c, const char *key, const void *data, size_t len, hyd_cache_done_cb cb, void *arg)
{
    if (c->closing)
        return ST_E_CLOSED;
    put_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->key = strdup(key))) {
        free(p);
        return ST_E_NOMEM;
    }
    *p = (put_t){.c = c, .key = p->key, .data = data, .len = len, .cb = cb, .arg = arg};
    p->work.data = p;
    int rc = st_pool_queue(c->port, c->loop, &p->work, put_work, put_done);
    if (rc != 0) {
        free(p->key);
        free(p);
        return rc;
    }
    c->pending++;
    return 0;
}

/* ---- Rebuild at open (thread pool) ---- */

typedef struct {
    char *key; /* owned */
    uint64_t seq, size;
    int64_t mtime_ns;
} found_t;

typedef struct {
    st_pool_work_t work;
    hyd_cache_t *c;
    found_t *found; /* owned */
    size_t n, cap;
    uint64_t max_seq;
    size_t removed;
    int err;
} scan_t;

static int cmp_found(const void *a, const void *b)
{
    const found_t *x = a, *y = b;
    if (x->mtime_ns != y->mtime_ns)
        return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Is name "<16 hex>.<ext>"? */
static bool parse_name(const char *name, const char *ext, uint64_t *seq)
{
    size_t el = strlen(ext);
    if (strlen(name) != 17 + el || name[16] != '.' || strcmp(name + 17, ext) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = name[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return true;
}

static void scan_one(scan_t *s, const char *name)
{
    char path[4096];
    uint64_t seq;
    snprintf(path, sizeof(path), "%s/%s", s->c->dir, name);
    if (parse_name(name, "tmp", &seq)) {
        if (seq > s->max_seq)
            s->max_seq = seq;
        unlink(path); /* a write that never finished */
        s->removed++;
        return;
    }
    if (!parse_name(name, "hc", &seq))
        return; /* not ours: leave it */
    if (seq > s->max_seq)
        s->max_seq = seq;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat sb;
    char *key = NULL;
    uint32_t dlen, crc;
    int err = fstat(fd, &sb) != 0 ? -errno : 0;
    if (!err)
        err = read_header(fd, (uint64_t)sb.st_size, &key, &dlen, &crc);
    close(fd);
    if (err == ST_E_CORRUPT) {
        unlink(path);
        s->removed++;
    }
    if (err)
        return;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        found_t *nf = realloc(s->found, nc * sizeof(*nf));
        if (!nf) {
            free(key);
            return;
        }
        s->found = nf;
        s->cap = nc;
    }
    s->found[s->n++] = (found_t){key, seq, (uint64_t)sb.st_size,
                                 (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec};
}

static void scan_work(st_pool_work_t *w)
{
    scan_t *s = w->data;
    DIR *d = opendir(s->c->dir);
    if (!d) {
        s->err = -errno;
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        scan_one(s, de->d_name);
    closedir(d);
    if (s->n > 1)
        qsort(s->found, s->n, sizeof(*s->found), cmp_found);
}

static void scan_done(st_pool_work_t *w, int status)
{
    scan_t *s = w->data;
    hyd_cache_t *c = s->c;
    int err = status ? status : s->err;
    /* Oldest first, so the most recently used ends at the head. */
    for (size_t i = 0; i < s->n; i++)
        insert(c, s->found[i].key, s->found[i].seq, s->found[i].size);
    atomic_store(&c->next_seq, s->max_seq + 1);
    if (err)
        ST_WARN("tier", "cache: cannot scan %s: %s", c->dir, st_strerror(err));
    else
        ST_INFO("tier", "cache: rebuilt dir=%s entries=%zu bytes=%" PRIu64 " removed=%zu", c->dir,
                c->n, c->bytes, s->removed);
    free(s->found);
    free(s);
    if (!c->closing)
        atomic_store(&c->is_ready, true);
    if (c->ready_cb && !c->closing)
        c->ready_cb(c->ready_arg, err);
    work_finished(c);
}

int hyd_cache_open(uv_loop_t *loop,
                   const char *dir,
                   uint64_t max_bytes,
                   hyd_cache_ready_cb ready_cb,
                   void *ready_arg,
                   hyd_cache_t **out)
{
    int rc = st_mkdirs(dir);
    if (rc != 0)
        return rc;
    hyd_cache_t *c = calloc(1, sizeof(*c));
    scan_t *s = calloc(1, sizeof(*s));
    if (!c || !s || !(c->dir = strdup(dir)) || !(c->tab = calloc(1024, sizeof(*c->tab)))) {
        if (c)
            free(c->dir);
        free(c);
        free(s);
        return ST_E_NOMEM;
    }
    c->loop = loop;
    c->tab_size = 1024;
    c->max_bytes = max_bytes;
    c->ready_cb = ready_cb;
    c->ready_arg = ready_arg;
    atomic_init(&c->next_seq, 1);
    atomic_init(&c->is_ready, false);
    atomic_init(&c->direct, true);
    s->c = c;
    s->work.data = s;
    rc = st_pool_queue(NULL, loop, &s->work, scan_work, scan_done);
    if (rc != 0) {
        free(c->tab);
        free(c->dir);
        free(c);
        free(s);
        return rc;
    }
    c->pending = 1;
    *out = c;
    return 0;
}

/* ---- Stats, paths, close ---- */

void hyd_cache_set_port(hyd_cache_t *c, st_pool_port_t *port)
{
    c->port = port;
}

void hyd_cache_stats(const hyd_cache_t *c, hyd_cache_stats_t *out)
{
    *out = c->st;
    out->entries = (int64_t)c->n;
    out->bytes_used = (int64_t)c->bytes;
}

void hyd_cache_path(const hyd_cache_t *c, const char *key, char *buf, size_t len)
{
    ent_t *e = find(c, key, hash_key(key));
    if (e)
        file_path(c, e->seq, "hc", buf, len);
    else if (len)
        buf[0] = 0;
}

static void free_cache(hyd_cache_t *c)
{
    for (ent_t *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e->key);
        free(e);
    }
    hyd_cache_closed_cb cb = c->closed_cb;
    void *arg = c->closed_arg;
    free(c->tab);
    free(c->dir);
    free(c);
    if (cb)
        cb(arg);
}

static void work_finished(hyd_cache_t *c)
{
    if (--c->pending == 0 && c->closing)
        free_cache(c);
}

static void noop_work(st_pool_work_t *w)
{
    (void)w;
}

static void close_done(st_pool_work_t *w, int status)
{
    hyd_cache_t *c = w->data;
    (void)status;
    free(w);
    work_finished(c);
}

void hyd_cache_close(hyd_cache_t *c, hyd_cache_closed_cb cb, void *arg)
{
    if (!c)
        return;
    c->closing = true;
    atomic_store(&c->is_ready, false);
    c->closed_cb = cb;
    c->closed_arg = arg;
    /* A no-op work item makes cb run later even when nothing is pending. */
    st_pool_work_t *w = malloc(sizeof(*w));
    if (w) {
        w->data = c;
        if (st_pool_queue(c->port, c->loop, w, noop_work, close_done) == 0) {
            c->pending++;
            return;
        }
        free(w);
    }
    if (c->pending == 0)
        free_cache(c);
}
