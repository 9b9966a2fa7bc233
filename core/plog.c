/* plog.c - partition log: open + recovery, append, roll, read, retention.
 * Data path: see plog.h. This file owns the segment list of each log; the
 * flusher (plog_flush.c) only fdatasyncs segments it holds refs to.
 *
 * Invariants:
 *  1. offsets strictly increase through segs[0..n) and within each segment;
 *     segs[i]->next_offset == segs[i+1]->base_offset (no gaps between
 *     segments); inside a sealed segment the cleaner (plog_compact.c) leaves
 *     gaps between batches, never after the last one (it keeps it, empty if
 *     need be);
 *  2. only the last (active) segment is written; sealed ones are immutable
 *     (the cleaner replaces one whole, by rename, never in place);
 *  3. start_offset <= durable_end <= end_offset, end_offset == active->next_offset;
 *  4. every index entry points at the first byte of a whole batch whose last
 *     offset is base_offset + rel_offset;
 *  5. nothing is written for an append that fails validation.
 *
 * Division map: Segments | Indexes | Recovery | Open/close | Append and roll |
 * Durability | Read | Time lookup | Retention | Accessors. */
#include "core/plog_int.h"
#include "core/st_assert.h"
#include "core/st_fs.h"
#include "core/st_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static const plog_sys_t k_real_sys = {pwrite, fdatasync, ftruncate, real_open,
                                      fsync,  rename,    unlink};
static plog_sys_t g_sys = {pwrite, fdatasync, ftruncate, real_open, fsync, rename, unlink};
const plog_sys_t *plog__sys = &g_sys;

void plog_set_sys(const plog_sys_t *sys)
{
    plog_sys_t t = sys ? *sys : k_real_sys;
    g_sys = (plog_sys_t){
        t.pwrite ? t.pwrite : k_real_sys.pwrite,
        t.fdatasync ? t.fdatasync : k_real_sys.fdatasync,
        t.ftruncate ? t.ftruncate : k_real_sys.ftruncate,
        t.open ? t.open : k_real_sys.open,
        t.fsync ? t.fsync : k_real_sys.fsync,
        t.rename ? t.rename : k_real_sys.rename,
        t.unlink ? t.unlink : k_real_sys.unlink,
    };
}

void plog_config_default(plog_config_t *cfg)
{
    cfg->segment_bytes = 1073741824;
    cfg->segment_ms = 604800000;
    cfg->retention_bytes = -1;
    cfg->retention_ms = 604800000;
    cfg->index_interval_bytes = 4096;
    cfg->remote_enabled = false;
    cfg->local_retention_bytes = -2;
    cfg->local_retention_ms = -2;
    cfg->write_caching = false;
    cfg->flush_ms = 100;
    cfg->flush_bytes = 262144;
    cfg->flush_messages = INT64_MAX;
    cfg->cleanup_delete = true;
    cfg->cleanup_compact = false;
    cfg->min_cleanable_ratio = 0.5;
    cfg->min_compaction_lag_ms = 0;
    cfg->max_compaction_lag_ms = INT64_MAX;
    cfg->delete_retention_ms = 86400000;
}

static void errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

static void log_unref(plog_t *log);
static void update_want_written(plog_t *log);
static int delete_oldest(plog_t *log, const char *reason, bool move_start);

/* ---- Segments ---- */

void plog__seg_ref(plog_seg_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void plog__seg_unref(plog_seg_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    close(s->fd);
    free(s->idx);
    free(s->tidx);
    free(s);
}

static void seg_file(const plog_seg_t *s, const char *ext, char *out, size_t len)
{
    snprintf(out, len, "%s.%s", s->path, ext);
}

int plog__fsync_dir(const plog_t *log)
{
    int fd = plog__sys->open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = plog__sys->fsync(fd) != 0 ? (errno ? -errno : ST_E_IO) : 0;
    close(fd);
    return rc;
}

static int
seg_open_in(const char *dir, int64_t base, bool create, const char *suffix, plog_seg_t **out);

/* Open (or create) the segment starting at base: only its .log stays open.
 * Its index lives in memory; the .index and .timeindex files are read at open
 * and written from memory when the segment is sealed or closed, and by
 * recovery (plog__idx_save), so appends cost one write and a partition one
 * descriptor per segment. Creating a segment creates both index files empty
 * (their directory entries are synced with the new .log's). */
static int seg_open(plog_t *log, int64_t base, bool create, plog_seg_t **out)
{
    return seg_open_in(log->dir, base, create, "", out);
}

int plog__seg_create(const char *dir, int64_t base, const char *suffix, plog_seg_t **out)
{
    return seg_open_in(dir, base, true, suffix, out);
}

/* seg_open, with suffix appended to the file names (the cleaner's
 * ".cleaned" files: only the .log is created, its index is saved with
 * plog__idx_save_as); path and log_path name the final files. */
static int
seg_open_in(const char *dir, int64_t base, bool create, const char *suffix, plog_seg_t **out)
{
    plog_seg_t *s = calloc(1, sizeof(*s));
    if (!s)
        return ST_E_NOMEM;
    atomic_init(&s->refs, 1);
    s->fd = -1;
    s->base_offset = s->next_offset = base;
    s->max_ts = -1;
    s->max_ts_offset = base;
    s->first_append_ms = -1;
    snprintf(s->path, sizeof(s->path), "%s/%020" PRId64, dir, base);
    snprintf(s->log_path, sizeof(s->log_path), "%s.log", s->path);
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
    char f[4300];
    snprintf(f, sizeof(f), "%s.log%s", s->path, suffix);
    s->fd = plog__sys->open(f, flags, 0644);
    int err = s->fd < 0 ? -errno : 0;
    for (int i = 0; create && !*suffix && !err && i < 2; i++) {
        seg_file(s, i ? "timeindex" : "index", f, sizeof(f));
        int fd = plog__sys->open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            err = -errno;
        else
            close(fd);
    }
    if (err) {
        plog__seg_unref(s);
        return err;
    }
    *out = s;
    return 0;
}

/* ---- Indexes ---- */

/* Add an index entry in memory; unsaved: the files do not hold it yet. */
static void idx_push(plog_seg_t *s, int32_t rel, int32_t pos, bool unsaved)
{
    if (s->n_idx == s->cap_idx) {
        int cap = s->cap_idx ? s->cap_idx * 2 : 64;
        plog__idx_t *n = realloc(s->idx, (size_t)cap * sizeof(*n));
        if (!n)
            return; /* sparse index: a missing entry only costs a longer scan */
        s->idx = n;
        s->cap_idx = cap;
    }
    s->idx[s->n_idx] = (plog__idx_t){rel, pos};
    if (unsaved)
        atomic_store(&s->idx_unsynced, true);
    s->n_idx++;
}

static void tidx_push(plog_seg_t *s, int64_t ts, int32_t rel, bool unsaved)
{
    if (s->n_tidx == s->cap_tidx) {
        int cap = s->cap_tidx ? s->cap_tidx * 2 : 64;
        plog__tidx_t *n = realloc(s->tidx, (size_t)cap * sizeof(*n));
        if (!n)
            return;
        s->tidx = n;
        s->cap_tidx = cap;
    }
    s->tidx[s->n_tidx] = (plog__tidx_t){ts, rel};
    if (unsaved)
        atomic_store(&s->idx_unsynced, true);
    s->n_tidx++;
}

/* Account one batch appended at pos: extend offsets/timestamps and add sparse
 * index entries every index_interval_bytes, as Kafka's LogSegment.append. */
void plog__seg_note_batch(plog_seg_t *s,
                          const plog_batch_hdr_t *h,
                          int64_t pos,
                          int64_t blen,
                          int32_t interval,
                          bool write_file)
{
    int64_t last = h->base_offset + h->last_offset_delta;
    if (h->max_timestamp > s->max_ts) {
        s->max_ts = h->max_timestamp;
        s->max_ts_offset = last;
    }
    if (s->bytes_since_index > interval) {
        idx_push(s, (int32_t)(last - s->base_offset), (int32_t)pos, write_file);
        if (s->n_tidx == 0 || s->max_ts > s->tidx[s->n_tidx - 1].ts)
            tidx_push(s, s->max_ts, (int32_t)(s->max_ts_offset - s->base_offset), write_file);
        s->bytes_since_index = 0;
    }
    s->bytes_since_index += blen;
    s->next_offset = last + 1;
    s->size = pos + blen;
}

/* Largest index entry whose last offset is <= offset: a position at or before
 * the batch holding offset. */
static int64_t idx_lookup(const plog_seg_t *s, int64_t offset)
{
    int lo = 0, hi = s->n_idx - 1;
    int64_t pos = 0;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (s->base_offset + s->idx[mid].rel_offset <= offset) {
            pos = s->idx[mid].pos;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return pos;
}

/* The whole content of the segment's file ext, its length a multiple of
 * unit: malloc'd into *buf (NULL when empty). @return false when missing,
 * unreadable or not whole entries. */
static bool read_whole(const plog_seg_t *s, const char *ext, int unit, uint8_t **buf, int *n)
{
    char f[4200];
    seg_file(s, ext, f, sizeof(f));
    *buf = NULL;
    *n = 0;
    int fd = open(f, O_RDONLY | O_CLOEXEC);
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && st.st_size % unit == 0 && st.st_size < INT32_MAX;
    if (ok && st.st_size > 0) {
        *buf = malloc((size_t)st.st_size);
        ok = *buf && pread(fd, *buf, (size_t)st.st_size, 0) == st.st_size;
        *n = (int)(st.st_size / unit);
    }
    if (fd >= 0)
        close(fd);
    if (!ok) {
        free(*buf);
        *buf = NULL;
    }
    return ok;
}

/* Load .index and .timeindex; drop them wholesale if they are not sane. */
static bool idx_load(plog_seg_t *s, int64_t file_size)
{
    uint8_t *buf;
    int n;
    if (!read_whole(s, "index", 8, &buf, &n))
        return false;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        int32_t rel = (int32_t)get_be32(buf + i * 8), pos = (int32_t)get_be32(buf + i * 8 + 4);
        if (rel < 0 || pos < 0 || pos >= file_size ||
            (i > 0 && (rel <= s->idx[i - 1].rel_offset || pos <= s->idx[i - 1].pos)))
            ok = false;
        else
            idx_push(s, rel, pos, false);
        ok = ok && s->n_idx == i + 1;
    }
    free(buf);
    if (!ok || !read_whole(s, "timeindex", 12, &buf, &n))
        return false;
    for (int i = 0; i < n && ok; i++) {
        int64_t ts = (int64_t)get_be64(buf + i * 12);
        int32_t rel = (int32_t)get_be32(buf + i * 12 + 8);
        if (rel < 0 || (i > 0 && (ts <= s->tidx[i - 1].ts || rel < s->tidx[i - 1].rel_offset)))
            ok = false;
        else
            tidx_push(s, ts, rel, false);
        ok = ok && s->n_tidx == i + 1;
    }
    free(buf);
    return ok;
}

/* Make the segment's file ext hold exactly buf, synced. Written in place
 * and then cut, not truncated first: the entries only grow between saves (a
 * recovery that drops some rewrites them), so a crash midway leaves a file of
 * valid entries. @blocking yes */
static int
save_file(const plog_seg_t *s, const char *ext, const char *suffix, const uint8_t *buf, size_t len)
{
    char f[4300];
    snprintf(f, sizeof(f), "%s.%s%s", s->path, ext, suffix);
    int fd = plog__sys->open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int err = 0;
    errno = 0;
    if ((len > 0 && plog__sys->pwrite(fd, buf, len, 0) != (ssize_t)len) ||
        plog__sys->ftruncate(fd, (off_t)len) != 0 || plog__sys->fdatasync(fd) != 0)
        err = errno ? -errno : ST_E_IO;
    close(fd);
    return err;
}

int plog__idx_save(plog_seg_t *s)
{
    return plog__idx_save_as(s, "");
}

int plog__idx_save_as(plog_seg_t *s, const char *suffix)
{
    size_t len = (size_t)s->n_idx * 8, tlen = (size_t)s->n_tidx * 12;
    uint8_t *b = malloc(len + tlen + 1);
    if (!b)
        return ST_E_NOMEM;
    for (int i = 0; i < s->n_idx; i++) {
        put_be32(b + i * 8, (uint32_t)s->idx[i].rel_offset);
        put_be32(b + i * 8 + 4, (uint32_t)s->idx[i].pos);
    }
    uint8_t *t = b + len;
    for (int i = 0; i < s->n_tidx; i++) {
        put_be64(t + i * 12, (uint64_t)s->tidx[i].ts);
        put_be32(t + i * 12 + 8, (uint32_t)s->tidx[i].rel_offset);
    }
    int err = save_file(s, "index", suffix, b, len);
    if (err == 0)
        err = save_file(s, "timeindex", suffix, t, tlen);
    free(b);
    if (err == 0)
        atomic_store(&s->idx_unsynced, false);
    return err;
}

/* ---- Recovery ---- */

/* Read the batch at pos: header always, whole batch when verify is set.
 * @return batch length, 0 at a clean end of file, -1 when torn or corrupt. */
static int64_t scan_one(plog_seg_t *s,
                        int64_t pos,
                        int64_t file_size,
                        bool verify,
                        plog_batch_hdr_t *h,
                        uint8_t **buf,
                        size_t *buf_cap)
{
    if (pos == file_size)
        return 0;
    uint8_t hb[PLOG_BATCH_HDR_SIZE];
    if (file_size - pos < PLOG_BATCH_HDR_SIZE ||
        pread(s->fd, hb, sizeof(hb), pos) != (ssize_t)sizeof(hb) ||
        plog_batch_parse_hdr(hb, sizeof(hb), h) != 0)
        return -1;
    int64_t blen = (int64_t)h->batch_length + PLOG_BATCH_LOG_OVERHEAD;
    if (h->magic != 2 || h->batch_length < PLOG_BATCH_HDR_SIZE - PLOG_BATCH_LOG_OVERHEAD ||
        blen > file_size - pos || h->last_offset_delta < 0 || h->base_offset < s->base_offset ||
        h->base_offset + h->last_offset_delta - s->base_offset > INT32_MAX)
        return -1;
    if (verify) {
        if ((size_t)blen > *buf_cap) {
            uint8_t *n = realloc(*buf, (size_t)blen);
            if (!n)
                return -1;
            *buf = n;
            *buf_cap = (size_t)blen;
        }
        if (pread(s->fd, *buf, (size_t)blen, pos) != blen ||
            plog_batch_validate_stored(*buf, (size_t)blen, h, NULL) != 0)
            return -1;
    }
    return blen;
}

/* Recover one segment. Offsets below verify_from were synced before the
 * recovery point was written (data and index files): the index is trusted up
 * to its last entry below it (when that entry points at the batch it names).
 * From there the file is scanned, CRC-verifying every batch at or above
 * verify_from (INT64_MAX: headers only), and truncated at the first torn or
 * corrupt batch (*truncated set). */
static int seg_recover(plog_t *log, plog_seg_t *s, int64_t verify_from, bool *truncated)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return -errno;
    int64_t file_size = st.st_size;
    uint8_t *buf = NULL;
    size_t cap = 0;
    plog_batch_hdr_t h;
    int64_t pos = 0;
    bool rebuilt = false, verify = verify_from != INT64_MAX;
    *truncated = false;

    bool load_ok = idx_load(s, file_size);
    int file_idx = s->n_idx, file_tidx = s->n_tidx; /* entries the files hold */
    if (load_ok && s->n_idx > 0) {
        int k = s->n_idx - 1;
        while (k >= 0 && s->base_offset + s->idx[k].rel_offset >= verify_from)
            k--;
        plog__idx_t last = k >= 0 ? s->idx[k] : (plog__idx_t){0, 0};
        int64_t blen = k >= 0 ? scan_one(s, last.pos, file_size, false, &h, &buf, &cap) : -1;
        if (blen > 0 && h.base_offset + h.last_offset_delta == s->base_offset + last.rel_offset) {
            s->n_idx = k + 1;
            while (s->n_tidx > 0 && s->tidx[s->n_tidx - 1].rel_offset > last.rel_offset)
                s->n_tidx--;
            s->max_ts = s->n_tidx ? s->tidx[s->n_tidx - 1].ts : -1;
            s->max_ts_offset =
                s->n_tidx ? s->base_offset + s->tidx[s->n_tidx - 1].rel_offset : s->base_offset;
            /* Re-account the indexed batch without adding a second entry. */
            plog__seg_note_batch(s, &h, last.pos, blen, INT32_MAX, false);
            s->bytes_since_index = blen;
            pos = last.pos + blen;
        }
    }
    if (pos == 0) { /* no usable index: rebuild it while scanning from the start */
        s->n_idx = s->n_tidx = 0;
        s->max_ts = -1;
        s->max_ts_offset = s->base_offset;
        rebuilt = file_size > 0;
    }
    int kept_idx = s->n_idx, kept_tidx = s->n_tidx;
    bool kept_all = load_ok && kept_idx == file_idx && kept_tidx == file_tidx;
    for (;;) {
        int64_t blen = scan_one(s, pos, file_size, verify, &h, &buf, &cap);
        if (blen == 0)
            break;
        /* Offsets increase; gaps are the cleaner's (plog_compact.c), which
         * rewrites only synced, sealed segments: a torn tail is cut by the
         * CRC and length checks. */
        if (blen < 0 || h.base_offset < (pos == 0 ? s->base_offset : s->next_offset)) {
            if (!verify)
                ST_ERROR("plog", "synced segment corrupt, truncating path=%s.log pos=%" PRId64,
                         s->path, pos);
            else
                ST_WARN("plog", "truncating torn tail path=%s.log pos=%" PRId64 " size=%" PRId64,
                        s->path, pos, file_size);
            if (plog__sys->ftruncate(s->fd, pos) != 0) {
                free(buf);
                return -errno;
            }
            *truncated = s->recovered = true;
            break;
        }
        plog__seg_note_batch(s, &h, pos, blen, log->cfg.index_interval_bytes, false);
        pos += blen;
    }
    free(buf);
    s->size = pos;
    /* Index files: rewrite them from memory when entries were dropped or
     * added (stale entries past the kept ones must not survive). */
    if (!kept_all || s->n_idx != kept_idx || s->n_tidx != kept_tidx) {
        atomic_store(&s->idx_unsynced, true); /* saved by recover_sync */
        s->recovered = true;
    }
    if (rebuilt)
        ST_DEBUG("plog", "rebuilt index path=%s entries=%d", s->path, s->n_idx);
    return 0;
}

/* Remove a segment's files found after a torn or missing part of the log:
 * nothing in them can have been acknowledged (a sync covers every segment
 * written before it), and offsets must stay contiguous. */
static void drop_seg_files(plog_t *log, int64_t base)
{
    static const char *const exts[] = {"log", "index", "timeindex"};
    ST_WARN("plog", "dropping segment after a torn or missing part of the log dir=%s base=%" PRId64,
            log->dir, base);
    log->open_dir_changed = true;
    for (int i = 0; i < 3; i++) {
        char f[4300];
        snprintf(f, sizeof(f), "%s/%020" PRId64 ".%s", log->dir, base, exts[i]);
        if (plog__sys->unlink(f) != 0 && errno != ENOENT)
            ST_WARN("plog", "cannot delete %s: %s", f, strerror(errno));
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int segs_push(plog_t *log, plog_seg_t *s)
{
    if (log->n_segs == log->cap_segs) {
        int cap = log->cap_segs ? log->cap_segs * 2 : 8;
        plog_seg_t **n = realloc(log->segs, (size_t)cap * sizeof(*n));
        if (!n)
            return ST_E_NOMEM;
        log->segs = n;
        log->cap_segs = cap;
    }
    log->segs[log->n_segs++] = s;
    return 0;
}

/* List segment bases in dir and remove files that belong to no segment. */
static int list_bases(plog_t *log, int64_t **bases, int *n, char *errbuf, size_t errbuf_len)
{
    DIR *d = opendir(log->dir);
    if (!d) {
        int err = -errno;
        errf(errbuf, errbuf_len, "cannot open %s: %s", log->dir, strerror(-err));
        return err;
    }
    int cap = 16, cnt = 0;
    int64_t *b = malloc((size_t)cap * sizeof(*b));
    struct dirent *e;
    while (b && (e = readdir(d))) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        bool digits = l > PLOG_NAME_LEN && nm[PLOG_NAME_LEN] == '.';
        for (int i = 0; digits && i < PLOG_NAME_LEN; i++)
            digits = nm[i] >= '0' && nm[i] <= '9';
        if (digits && strcmp(nm + PLOG_NAME_LEN, ".log") == 0) {
            if (cnt == cap) {
                int64_t *nb = realloc(b, (size_t)(cap *= 2) * sizeof(*b));
                if (!nb) {
                    free(b);
                    b = NULL;
                    break;
                }
                b = nb;
            }
            b[cnt++] = strtoll(nm, NULL, 10);
        } else if (digits && (strstr(nm, ".deleted") || strstr(nm, ".tmp"))) {
            char f[4400]; /* leftovers of an interrupted deletion */
            snprintf(f, sizeof(f), "%s/%s", log->dir, nm);
            plog__sys->unlink(f);
            log->open_dir_changed = true;
        }
    }
    closedir(d);
    if (!b)
        return ST_E_NOMEM;
    qsort(b, (size_t)cnt, sizeof(*b), cmp_i64);
    *bases = b;
    *n = cnt;
    return 0;
}

/* ---- Log start checkpoint (DeleteRecords) ---- */

#define START_CKPT "log-start-offset"
/* Every segment below this offset was synced with its index files (written
 * after recovery, a roll's sync and a clean close). */
#define RP_CKPT "recovery-point"

static int64_t read_ckpt(const plog_t *log, const char *name)
{
    char path[4200], buf[32] = "";
    snprintf(path, sizeof(path), "%s/%s", log->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end != buf && *end == '\n' ? v : -1; /* a torn write reads as absent */
}

static int64_t read_start_checkpoint(const plog_t *log)
{
    return read_ckpt(log, START_CKPT);
}

int plog__write_ckpt(plog_t *log, const char *name, int64_t value, bool sync_dir)
{
    char tmp[4200], path[4200], buf[32];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", log->dir, name);
    snprintf(path, sizeof(path), "%s/%s", log->dir, name);
    int n = snprintf(buf, sizeof(buf), "%lld\n", (long long)value);
    int fd = plog__sys->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = 0;
    if (fd < 0 || plog__sys->pwrite(fd, buf, (size_t)n, 0) != n || plog__sys->fdatasync(fd) != 0 ||
        plog__sys->rename(tmp, path) != 0)
        err = errno ? -errno : ST_E_IO;
    if (err == 0 && sync_dir)
        err = plog__fsync_dir(log);
    if (fd >= 0)
        close(fd);
    return err;
}

int plog__write_rp(plog_t *log, int64_t value, bool sync_dir)
{
    return plog__write_ckpt(log, RP_CKPT, value, sync_dir);
}

typedef struct {
    uv_work_t work;
    plog_t *log;
    int64_t offset;
    int err;
    plog_done_cb cb;
    void *arg;
} ckpt_t;

/* Thread pool: write DIR/log-start-offset atomically (temp, fsync, rename,
 * fsync of the directory). Under ckpt_mu, not sync_mu: the loop's appends take
 * sync_mu and must not wait for these fsyncs. The newest requested start is
 * written, so the file never goes back when the pool runs two jobs out of
 * order; a job finding c->offset already durable writes nothing. */
static void ckpt_write(uv_work_t *w)
{
    ckpt_t *c = w->data;
    plog_t *log = c->log;
    pthread_mutex_lock(&log->ckpt_mu);
    int64_t want = atomic_load(&log->ckpt_want); /* >= c->offset */
    if (want > log->ckpt_done) {
        c->err = plog__write_ckpt(log, START_CKPT, want, true);
        if (c->err == 0)
            log->ckpt_done = want;
    }
    pthread_mutex_unlock(&log->ckpt_mu);
}

static void ckpt_done(uv_work_t *w, int status)
{
    ckpt_t *c = w->data;
    if (c->err)
        ST_ERROR("plog", "cannot persist log start offset dir=%s err=%s", c->log->dir,
                 st_strerror(c->err));
    if (c->cb)
        c->cb(c->arg, c->err ? c->err : status);
    log_unref(c->log);
    free(c);
}

int plog_delete_records(plog_t *log, int64_t offset, plog_done_cb cb, void *arg)
{
    if (offset > plog_high_watermark(log) || offset < 0)
        return ST_E_RANGE;
    if (offset <= log->start_offset) {
        cb(arg, 0);
        return 0;
    }
    ckpt_t *c = calloc(1, sizeof(*c));
    if (!c)
        return ST_E_NOMEM;
    log->start_offset = offset;
    atomic_store(&log->ckpt_want, offset); /* grows: offset > start_offset >= it */
    if (log->rd_seg && log->rd_offset < offset)
        log->rd_seg = NULL;
    while (log->n_segs > 1 && log->segs[1]->base_offset <= offset)
        if (delete_oldest(log, "DeleteRecords", true) != 0)
            break;
    c->log = log;
    c->offset = offset;
    c->cb = cb;
    c->arg = arg;
    c->work.data = c;
    log->refs++;
    int rc = uv_queue_work(log->sh->loop, &c->work, ckpt_write, ckpt_done);
    if (rc != 0) {
        log->refs--;
        free(c);
        return rc;
    }
    ST_INFO("plog", "log start moved by DeleteRecords dir=%s start=%lld", log->dir,
            (long long)offset);
    return 0;
}

/* ---- Open / close ---- */

/* Recovery: fdatasync every segment that may hold unsynced bytes (from the
 * recovery point on, and any that recovery changed: data and index files),
 * fsync the directory, then move the recovery point to the end, synchronously,
 * before the log serves. After a clean close (recovery point = end, nothing
 * changed) nothing needs a sync. */
static int recover_sync(plog_t *log, int64_t rp)
{
    bool synced = false;
    for (int i = 0; i < log->n_segs; i++) {
        plog_seg_t *s = log->segs[i];
        if (rp >= 0 && s->next_offset <= rp && !s->recovered)
            continue; /* synced, with its indexes, before the recovery point was written */
        if (plog__sys->fdatasync(s->fd) != 0)
            return -errno;
        /* The index files as in memory, synced (what a crash left of a save
         * may be unsynced, and recovery may have rebuilt or trimmed them). */
        int rc = plog__idx_save(s);
        if (rc != 0)
            return rc;
        synced = true;
    }
    /* The directory before the recovery point: the point may only claim what
     * is durable, segment names included. */
    int64_t end = log->segs[log->n_segs - 1]->next_offset;
    int rc;
    if ((synced || rp != end || log->open_dir_changed) && (rc = plog__fsync_dir(log)) != 0)
        return rc;
    rc = rp == end ? 0 : plog__write_rp(log, end, true);
    log->rp_written = rc == 0 ? end : -1;
    return rc;
}

static void log_free(plog_t *log)
{
    for (int i = 0; i < log->n_segs; i++)
        plog__seg_unref(log->segs[i]);
    for (int i = 0; i < log->n_dirty; i++)
        plog__seg_unref(log->dirty[i]);
    free(log->dirty);
    ST_ASSERT(!log->wr_head); /* the close's round wrote (or dropped) every request */
    free(log->segs);
    pthread_mutex_destroy(&log->sync_mu);
    pthread_mutex_destroy(&log->wr_mu);
    pthread_mutex_destroy(&log->ckpt_mu);
    free(log->dir);
    free(log);
}

int plog_open(plog_shard_t *sh,
              const char *dir,
              const plog_config_t *cfg,
              int64_t now_ms,
              plog_t **out,
              char *errbuf,
              size_t errbuf_len)
{
    bool created = mkdir(dir, 0755) == 0;
    if (!created && errno != EEXIST) {
        int err = -errno;
        errf(errbuf, errbuf_len, "cannot create %s: %s", dir, strerror(errno));
        return err;
    }
    if (created) {
        int rc = st_fsync_parent(dir); /* the new directory's entry */
        if (rc != 0) {
            errf(errbuf, errbuf_len, "cannot sync the parent of %s: %s", dir, st_strerror(rc));
            return rc;
        }
    }
    plog_t *log = calloc(1, sizeof(*log));
    if (!log || !(log->dir = strdup(dir))) {
        free(log);
        return ST_E_NOMEM;
    }
    log->sh = sh;
    log->cfg = *cfg;
    log->refs = 1;
    log->rp_pending = log->rp_written = -1;
    log->cleaning_end = -1;
    log->cstats.last_clean_ms = -1;
    pthread_mutex_init(&log->sync_mu, NULL);
    pthread_mutex_init(&log->wr_mu, NULL);
    pthread_mutex_init(&log->ckpt_mu, NULL);
    log->ckpt_want = log->ckpt_done = -1;
    int64_t *bases = NULL;
    int n = 0;
    /* A cleaner pass cut short: finish its committed swaps, drop the rest. */
    int rc = plog__compact_recover(log);
    if (rc != 0)
        errf(errbuf, errbuf_len, "cannot finish the cleaner's swaps in %s: %s", dir,
             st_strerror(rc));
    else
        rc = list_bases(log, &bases, &n, errbuf, errbuf_len);
    /* Below the recovery point every segment was synced with its indexes;
     * from it on, batches are CRC-verified. Without one, all are. */
    int64_t rp = rc == 0 ? read_ckpt(log, RP_CKPT) : -1;
    bool torn = false;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (torn || (i > 0 && bases[i] != log->segs[i - 1]->next_offset)) {
            torn = true; /* after a torn or missing part: not acknowledged */
            drop_seg_files(log, bases[i]);
            continue;
        }
        plog_seg_t *s;
        rc = seg_open(log, bases[i], false, &s);
        if (rc == 0 && (rc = segs_push(log, s)) != 0)
            plog__seg_unref(s);
        int64_t next_base = i + 1 < n ? bases[i + 1] : INT64_MAX;
        int64_t verify_from = rp < 0 ? 0 : next_base <= rp ? INT64_MAX : rp;
        if (rc == 0)
            rc = seg_recover(log, s, verify_from, &torn);
        if (rc != 0)
            errf(errbuf, errbuf_len, "cannot recover segment %s/%020" PRId64 ".log: %s", dir,
                 bases[i], st_strerror(rc));
    }
    free(bases);
    if (rc == 0 && log->n_segs == 0) {
        /* A new log starts at 0, or at its checkpointed start when tiering
         * recreated it after recovery from the archive (the archived offsets
         * stay below it). */
        int64_t first = read_start_checkpoint(log);
        plog_seg_t *s;
        log->open_dir_changed = true;
        rc = seg_open(log, first > 0 ? first : 0, true, &s);
        if (rc == 0 && (rc = segs_push(log, s)) != 0)
            plog__seg_unref(s);
        if (rc != 0)
            errf(errbuf, errbuf_len, "cannot create first segment in %s: %s", dir, st_strerror(rc));
    }
    if (rc != 0) {
        log_free(log);
        return rc;
    }
    /* What a killed process wrote may still be only in the page cache: make
     * the recovered log durable before anything is acknowledged, uploaded or
     * read (a power cut after this must not lose what we then expose). */
    if (rc == 0 && (rc = recover_sync(log, rp)) != 0)
        errf(errbuf, errbuf_len, "cannot sync the recovered log in %s: %s", dir, st_strerror(rc));
    if (rc != 0) {
        log_free(log);
        return rc;
    }
    plog_seg_t *act = log->segs[log->n_segs - 1];
    if (act->size > 0)
        act->first_append_ms = now_ms;
    log->start_offset = log->segs[0]->base_offset;
    log->end_offset = log->durable_end = log->written_end = log->wr_end = act->next_offset;
    log->sealed_end = act->base_offset; /* sealed ones are known to tiering at start */
    int64_t ckpt = read_start_checkpoint(log);
    if (ckpt > log->start_offset)
        log->start_offset = ckpt < log->end_offset ? ckpt : log->end_offset;
    log->clean_end = read_ckpt(log, PLOG_CLEAN_CKPT);
    update_want_written(log);
    ST_DEBUG("plog", "opened dir=%s segments=%d start=%" PRId64 " end=%" PRId64, dir, log->n_segs,
             log->start_offset, log->end_offset);
    *out = log;
    return 0;
}

void plog_set_config(plog_t *log, const plog_config_t *cfg)
{
    bool uncache = log->cfg.write_caching && !cfg->write_caching;
    log->cfg = *cfg;
    update_want_written(log);
    if (uncache && !log->closing) /* the high watermark falls back to the durable end: sync now */
        plog__mark_dirty(log, NULL, false, 0);
}

void plog_close(plog_t *log, plog_closed_cb cb, void *arg)
{
    ST_ASSERT(!log->closing);
    log->closing = true;
    log->closed_cb = cb;
    log->closed_arg = arg;
    /* A final round, with the active segment's indexes (a restart after a
     * clean shutdown then rebuilds none). */
    plog_seg_t *act = log->segs[log->n_segs - 1];
    bool unsynced = log->durable_end < log->end_offset || atomic_load(&act->idx_unsynced);
    atomic_store(&act->sync_idx, true);
    plog__mark_dirty(log, unsynced ? act : NULL, false, 0);
    if (!log->failed) /* all of it synced: a restart verifies and syncs nothing */
        plog__set_rp_pending(log, log->end_offset);
    log->refs--; /* the owner's */
}

/* ---- Append and roll ---- */

/* How long the active segment takes records before it rolls: segment.ms, or
 * max.compaction.lag.ms when shorter on a compacted log (Kafka's
 * LogConfig.maxSegmentMs): the active segment is never cleaned, so a record
 * must not wait there longer than the lag allows (with remote storage it
 * must also be sealed and uploaded before it may be cleaned). */
static int64_t roll_ms(const plog_t *log)
{
    int64_t lag = log->cfg.max_compaction_lag_ms;
    return log->cfg.cleanup_compact && lag > 0 && lag < log->cfg.segment_ms ? lag
                                                                            : log->cfg.segment_ms;
}

static int roll(plog_t *log, int64_t now_ms)
{
    plog_seg_t *s;
    int rc = seg_open(log, log->end_offset, true, &s);
    if (rc == 0 && (rc = segs_push(log, s)) != 0)
        plog__seg_unref(s);
    if (rc != 0) {
        ST_ERROR("plog", "cannot roll dir=%s base=%" PRId64 " err=%s", log->dir, log->end_offset,
                 st_strerror(rc));
        return rc == -ENOSPC ? ST_E_NOSPC : rc;
    }
    (void)now_ms;
    /* Sync the sealed segment with its indexes, and the new file's directory
     * entry, now (even with write caching: rolls are rare). Tiering hears of
     * the sealed segment once that is done (plog__on_done). */
    plog_seg_t *sealed = log->segs[log->n_segs - 2];
    atomic_store(&sealed->sync_idx, true);
    plog__mark_dirty(log, sealed, true, 0);
    /* Only sealed segments are below it: the active one's index is unsynced. */
    plog__set_rp_pending(log, sealed->next_offset);
    ST_DEBUG("plog", "rolled dir=%s base=%" PRId64, log->dir, s->base_offset);
    return 0;
}

int plog_roll(plog_t *log, int64_t now_ms)
{
    if (log->segs[log->n_segs - 1]->size == 0)
        return 0;
    return roll(log, now_ms);
}

int plog_append(plog_t *log,
                uint8_t *batches,
                size_t len,
                int32_t leader_epoch,
                int64_t now_ms,
                plog_append_info_t *out,
                const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (log->failed) {
        *why = "log failed after an I/O error";
        return ST_E_FAILED;
    }
    if (log->closing) {
        *why = "log is closing";
        return ST_E_CLOSED;
    }
    int n_batches;
    int rc = plog_records_validate(batches, len, &n_batches, why);
    if (rc != 0)
        return rc;
    /* Offsets the record set spans. */
    int64_t span = 0;
    for (size_t pos = 0; pos < len;) {
        span += (int64_t)get_be32(batches + pos + 23) + 1;
        pos += (size_t)get_be32(batches + pos + 8) + PLOG_BATCH_LOG_OVERHEAD;
    }
    if (len > INT32_MAX / 2) {
        *why = "record set too large";
        return ST_E_TOO_LARGE;
    }
    plog_seg_t *act = log->segs[log->n_segs - 1];
    if (act->size > 0 && ((int64_t)len + act->size > log->cfg.segment_bytes ||
                          now_ms - act->first_append_ms >= roll_ms(log) ||
                          log->end_offset + span - act->base_offset > INT32_MAX ||
                          act->size + (int64_t)len > INT32_MAX)) {
        if ((rc = roll(log, now_ms)) != 0) {
            *why = "cannot create a new segment";
            return rc;
        }
        act = log->segs[log->n_segs - 1];
    }
    /* Assign offsets: rewrite baseOffset and partitionLeaderEpoch (both
     * outside the CRC-covered span). */
    int64_t next = log->end_offset, max_ts = -1;
    for (size_t pos = 0; pos < len;) {
        put_be64(batches + pos, (uint64_t)next);
        put_be32(batches + pos + 12, (uint32_t)leader_epoch);
        next += (int64_t)get_be32(batches + pos + 23) + 1;
        int64_t mts = (int64_t)get_be64(batches + pos + 35);
        if (mts > max_ts)
            max_ts = mts;
        pos += (size_t)get_be32(batches + pos + 8) + PLOG_BATCH_LOG_OVERHEAD;
    }
    /* The bytes go to the env's writer, which writes them in order (the loop never
     * writes a segment: the write could wait behind an fdatasync of the same
     * file). Copied: the caller's buffer is not ours. */
    plog_env_t *env = log->sh->env;
    plog__wr_reserve(env, (int64_t)len);
    plog__wr_t *wr = malloc(sizeof(*wr) + len);
    if (!wr) {
        plog__wr_unreserve(env, (int64_t)len);
        *why = "out of memory";
        return ST_E_NOMEM;
    }
    memcpy(wr->data, batches, len);
    plog__seg_ref(act);
    wr->seg = act;
    wr->pos = act->size;
    wr->len = (int64_t)len;
    wr->end_offset = next;
    atomic_fetch_add(&act->unwritten, (int64_t)len); /* before size grows: readers stop */
    for (size_t pos = 0; pos < len;) {
        plog_batch_hdr_t h;
        size_t blen = (size_t)get_be32(batches + pos + 8) + PLOG_BATCH_LOG_OVERHEAD;
        ST_VERIFY(plog_batch_parse_hdr(batches + pos, blen, &h) == 0);
        plog__seg_note_batch(act, &h, act->size, (int64_t)blen, log->cfg.index_interval_bytes,
                             true);
        pos += blen;
    }
    if (act->first_append_ms < 0)
        act->first_append_ms = now_ms;
    ST_VERIFY(act->next_offset == next); /* offsets are monotonic and contiguous */
    out->base_offset = log->end_offset;
    log->end_offset = next;
    out->last_offset = next - 1;
    out->end_offset = next;
    out->max_timestamp = max_ts;
    out->log_start_offset = log->start_offset;
    log->appended_bytes += (int64_t)len;
    wr->bytes = log->appended_bytes;
    int64_t delay = -1; /* write caching: flush by flush.ms / .bytes / .messages */
    if (log->cfg.write_caching && log->appended_bytes - log->durable_bytes < log->cfg.flush_bytes &&
        next - log->durable_end < log->cfg.flush_messages)
        delay = log->cfg.flush_ms > 0 ? log->cfg.flush_ms : 0;
    plog__queue_write(log, wr, delay);
    return 0;
}

/* ---- Durability ---- */

/* Drop a loop-side reference; the last one frees the log (after close). */
static void log_unref(plog_t *log)
{
    if (--log->refs == 0) {
        plog_closed_cb cb = log->closed_cb;
        void *arg = log->closed_arg;
        log_free(log);
        if (cb)
            cb(arg);
    }
}

void plog__log_ref(plog_t *log)
{
    log->refs++;
}

void plog__log_unref(plog_t *log)
{
    log_unref(log);
}

/* Does the loop need "written" reports before the sync's (acks=1 waiters,
 * write caching's high watermark)? Read by the flusher. */
static void update_want_written(plog_t *log)
{
    atomic_store(&log->want_written, log->wwaiters != NULL || log->cfg.write_caching);
}

/* Answer the waiters of one list up to end (all of them, failed, once the
 * log failed). */
static void fire_list(plog_t *log, plog_waiter_t **head, plog_waiter_t **tail, int64_t end)
{
    while (*head && (log->failed || (*head)->end_offset <= end)) {
        plog_waiter_t *w = *head;
        *head = w->next;
        if (!*head)
            *tail = NULL;
        w->cb(w->arg, w->end_offset <= end ? 0 : log->failed);
    }
}

static void fire_waiters(plog_t *log)
{
    fire_list(log, &log->waiters, &log->waiters_tail, log->durable_end);
    fire_list(log, &log->wwaiters, &log->wwaiters_tail, log->wr_end);
    update_want_written(log);
}

void plog__on_done(const plog__done_t *d)
{
    plog_t *log = d->log;
    int err = d->err;
    if (err && !log->failed) {
        log->failed = ST_E_FAILED;
        ST_ERROR("plog", "log failed; appends refused until restart dir=%s err=%s", log->dir,
                 st_strerror(err));
    }
    int64_t hw0 = plog_high_watermark(log);
    if (d->written_end > log->wr_end)
        log->wr_end = d->written_end;
    if (d->synced && d->durable_end > log->durable_end)
        log->durable_end = d->durable_end;
    if (d->synced && d->durable_bytes > log->durable_bytes)
        log->durable_bytes = d->durable_bytes;
    fire_waiters(log);
    plog_shard_t *sh = log->sh;
    /* Sealed segments now durable go to the uploader (also after the roll of
     * an idle log, when the durable end did not move). */
    int i = log->n_segs - 1;
    while (i > 0 && log->segs[i - 1]->next_offset > log->sealed_end)
        i--;
    for (; !err && d->synced && !log->closing && i + 1 < log->n_segs; i++) {
        plog_seg_t *s = log->segs[i];
        if (s->next_offset > log->durable_end)
            break;
        log->sealed_end = s->next_offset;
        if (sh->on_sealed)
            sh->on_sealed(sh->on_sealed_arg, log, s->base_offset, s->next_offset);
    }
    /* Fetch long polls wake when what consumers may see grew: the durable
     * end, or with write caching the written end. */
    if (plog_high_watermark(log) > hw0 && !log->closing && sh->on_hw)
        sh->on_hw(sh->on_hw_arg, log);
    if (d->drop_ref)
        log_unref(log);
}

static void wait_push(plog_waiter_t **head, plog_waiter_t **tail, plog_waiter_t *w)
{
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

void plog_wait_durable(
    plog_t *log, plog_waiter_t *w, int64_t end_offset, plog_durable_cb cb, void *arg)
{
    w->next = NULL;
    w->end_offset = end_offset;
    w->cb = cb;
    w->arg = arg;
    if (log->failed || end_offset <= log->durable_end) {
        cb(arg, end_offset <= log->durable_end ? 0 : log->failed);
        return;
    }
    wait_push(&log->waiters, &log->waiters_tail, w);
    if (log->cfg.write_caching) /* someone needs it on disk: do not wait for flush.ms */
        plog__mark_dirty(log, NULL, false, 0);
}

void plog_wait_written(
    plog_t *log, plog_waiter_t *w, int64_t end_offset, plog_durable_cb cb, void *arg)
{
    w->next = NULL;
    w->end_offset = end_offset;
    w->cb = cb;
    w->arg = arg;
    if (log->failed || end_offset <= log->wr_end) {
        cb(arg, end_offset <= log->wr_end ? 0 : log->failed);
        return;
    }
    wait_push(&log->wwaiters, &log->wwaiters_tail, w);
    update_want_written(log);
}

void plog_wait_acked(
    plog_t *log, plog_waiter_t *w, int64_t end_offset, plog_durable_cb cb, void *arg)
{
    if (log->cfg.write_caching)
        plog_wait_written(log, w, end_offset, cb, arg);
    else
        plog_wait_durable(log, w, end_offset, cb, arg);
}

/* ---- Read ---- */

static int find_seg(const plog_t *log, int64_t offset)
{
    int lo = 0, hi = log->n_segs - 1, ans = 0;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (log->segs[mid]->base_offset <= offset) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

/* Buffered reader of batch headers in one segment file. */
typedef struct {
    int fd;
    int64_t size;
    uint8_t buf[16384];
    int64_t buf_pos; /* file position of buf[0] */
    int64_t buf_len;
} hdr_rd_t;

/* Point r at s, empty, bounded by what readers may see of it: the bytes the
 * writer has written (the queued ones are counted in s->unwritten). Every
 * header walk starts here, so none reads bytes not yet written. */
static void rd_reset(hdr_rd_t *r, const plog_seg_t *s)
{
    r->fd = s->fd;
    r->size = s->size - atomic_load(&((plog_seg_t *)s)->unwritten);
    r->buf_pos = r->buf_len = 0;
}

/* Header of the batch at pos, or an error when the file holds no whole batch. */
static int hdr_at(hdr_rd_t *r, int64_t pos, plog_batch_hdr_t *h)
{
    if (pos + PLOG_BATCH_HDR_SIZE > r->size)
        return ST_E_IO;
    if (pos < r->buf_pos || pos + PLOG_BATCH_HDR_SIZE > r->buf_pos + r->buf_len) {
        ssize_t n = pread(r->fd, r->buf, sizeof(r->buf), pos);
        if (n < PLOG_BATCH_HDR_SIZE)
            return n < 0 ? -errno : ST_E_IO;
        r->buf_pos = pos;
        r->buf_len = n;
    }
    int rc = plog_batch_parse_hdr(r->buf + (pos - r->buf_pos), PLOG_BATCH_HDR_SIZE, h);
    if (rc == 0 && (int64_t)h->batch_length + PLOG_BATCH_LOG_OVERHEAD > r->size - pos)
        rc = ST_E_IO;
    return rc;
}

/* The last index entry of s past end whose batch certainly belongs to a read that may
 * end at limit_pos and must stay below hw: the next entry starts at or before limit_pos
 * (the batch ends there at the latest) and its last offset is below hw. Every batch
 * between end and it fits as well (positions and offsets grow together). Index entries
 * are hints: the caller checks the header it finds there. @return the entry, or -1. */
static int idx_skip(const plog_seg_t *s, int64_t end, int64_t limit_pos, int64_t hw)
{
    int lo = 0, hi = s->n_idx - 2, ans = -1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->idx[mid + 1].pos <= limit_pos && s->base_offset + s->idx[mid].rel_offset < hw) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans >= 0 && s->idx[ans].pos > end ? ans : -1;
}

int plog_read(plog_t *log, int64_t offset, int64_t max_bytes, plog_slice_t *out)
{
    return plog_read_upto(log, offset, max_bytes, INT64_MAX, out);
}

int plog_read_upto(plog_t *log, int64_t offset, int64_t max_bytes, int64_t limit, plog_slice_t *out)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (offset < log->start_offset || offset > log->end_offset)
        return ST_E_RANGE;
    if (offset < log->segs[0]->base_offset)
        return ST_E_OFFLOADED; /* below local data: tiering serves it */
    out->first_offset = out->next_offset = offset;
    int64_t hw = plog_high_watermark(log), asked = offset;
    if (limit < hw)
        hw = limit; /* read_committed: the last stable offset */
    if (offset >= hw)
        return 0; /* nothing visible there yet */
    plog_seg_t *s;
    int64_t pos;
    if (log->rd_seg && log->rd_offset == offset && offset < log->rd_seg->next_offset) {
        s = log->rd_seg;
        pos = log->rd_pos;
    } else {
        int i = find_seg(log, offset);
        s = log->segs[i];
        while (offset >= s->next_offset && i + 1 < log->n_segs)
            s = log->segs[++i];
        pos = idx_lookup(s, offset);
    }
    hdr_rd_t *r = malloc(sizeof(*r));
    if (!r)
        return ST_E_NOMEM;
    rd_reset(r, s);
    plog_batch_hdr_t h;
    int rc;
    /* Skip batches that end before offset. */
    for (;;) {
        while ((rc = hdr_at(r, pos, &h)) == 0 && h.base_offset + h.last_offset_delta < offset)
            pos += (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        /* Empty batches (the cleaner's: a segment's end, a producer's last
         * batch) are skipped while data follows below the high watermark: a
         * response of no record at all crashes some clients (kafka-python 2.0). */
        if (rc != 0 || h.records_count != 0 || h.base_offset + h.last_offset_delta + 1 >= hw)
            break;
        if (pos + (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD < s->size) {
            offset = h.base_offset + h.last_offset_delta + 1; /* the next batch of s */
            continue;
        }
        int i = find_seg(log, s->base_offset);
        if (i + 1 >= log->n_segs || log->segs[i] != s)
            break;
        s = log->segs[i + 1];
        rd_reset(r, s);
        offset = s->base_offset;
        pos = 0;
    }
    if (rc != 0) {
        free(r);
        ST_ERROR("plog", "read found no batch for offset=%" PRId64 " dir=%s", offset, log->dir);
        return ST_E_IO;
    }
    int64_t start = pos, end = pos;
    out->first_offset = h.base_offset;
    for (;;) {
        int64_t blen = (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        if ((end > start && end - start + blen > max_bytes) ||
            h.base_offset + h.last_offset_delta >= hw)
            break;
        end += blen;
        out->next_offset = h.base_offset + h.last_offset_delta + 1;
        /* Jump over the batches the index proves fit: one header read instead of one per
         * batch (with 64 KiB batches a 4 MiB read walked 64 headers, each a pread). */
        plog_batch_hdr_t jh;
        int k = idx_skip(s, end, max_bytes < s->size ? start + max_bytes : s->size, hw);
        /* The last two checks hold for any sane index: they keep a damaged one from
         * stretching the read past its limits. */
        int64_t jend = k >= 0 ? s->idx[k].pos : 0;
        if (k >= 0 && hdr_at(r, jend, &jh) == 0 &&
            jh.base_offset + jh.last_offset_delta == s->base_offset + s->idx[k].rel_offset &&
            jh.base_offset + jh.last_offset_delta < hw &&
            (jend += (int64_t)jh.batch_length + PLOG_BATCH_LOG_OVERHEAD) - start <= max_bytes) {
            end = jend;
            out->next_offset = jh.base_offset + jh.last_offset_delta + 1;
        }
        if (end >= s->size || hdr_at(r, end, &h) != 0)
            break;
    }
    free(r);
    if (end == start) {
        out->first_offset = out->next_offset = asked;
        return 0;
    }
    plog__seg_ref(s);
    out->seg = s;
    out->fd = s->fd;
    out->pos = start;
    out->len = end - start;
    log->rd_seg = s;
    log->rd_offset = out->next_offset;
    log->rd_pos = end;
    return 0;
}

int plog_slice_pread(const plog_slice_t *s, void *buf)
{
    int64_t done = 0;
    while (done < s->len) {
        ssize_t n = pread(s->fd, (uint8_t *)buf + done, (size_t)(s->len - done), s->pos + done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : ST_E_IO;
        done += n;
    }
    return 0;
}

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* the same number on every architecture (Linux 6.5) */
#endif
struct plog__cachestat_range {
    uint64_t off, len;
};
struct plog__cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

bool plog_slice_cached(const plog_slice_t *s)
{
    static _Atomic bool no_cachestat;
    if (s->len <= 0)
        return true;
    long page = sysconf(_SC_PAGESIZE);
    int64_t first = s->pos / page, end = (s->pos + s->len + page - 1) / page;
    if (!atomic_load_explicit(&no_cachestat, memory_order_relaxed)) {
        struct plog__cachestat_range r = {(uint64_t)(first * page),
                                          (uint64_t)((end - first) * page)};
        struct plog__cachestat cs;
        if (syscall(__NR_cachestat, s->fd, &r, &cs, 0) == 0)
            return cs.nr_cache >= (uint64_t)(end - first);
        if (errno != ENOSYS)
            return false;
        atomic_store_explicit(&no_cachestat, true, memory_order_relaxed);
    }
    /* Older kernels: map the range (no page is touched) and ask mincore. */
    size_t n = (size_t)(end - first);
    void *m = mmap(NULL, n * (size_t)page, PROT_READ, MAP_SHARED, s->fd, (off_t)(first * page));
    if (m == MAP_FAILED)
        return false;
    unsigned char vec[256];
    bool all = true;
    for (size_t i = 0; all && i < n; i += sizeof(vec)) {
        size_t k = n - i < sizeof(vec) ? n - i : sizeof(vec);
        if (mincore((uint8_t *)m + i * (size_t)page, k * (size_t)page, vec) != 0)
            all = false;
        for (size_t j = 0; all && j < k; j++)
            all = vec[j] & 1;
    }
    munmap(m, n * (size_t)page);
    return all;
}

int plog_slice_warm(const plog_slice_t *s)
{
    /* Only the chunks with a page missing are read: a hot range that lost a few pages
     * to memory pressure costs one chunk's copy, not the whole range's. */
    enum { CHUNK = 256 << 10 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf)
        return ST_E_NOMEM;
    int rc = 0;
    for (int64_t done = 0, end = 0; rc == 0 && done < s->len;) {
        if (done == end) { /* a new chunk: skip it when all of its pages are there */
            plog_slice_t part = *s;
            part.pos = s->pos + done;
            part.len = s->len - done < CHUNK ? s->len - done : CHUNK;
            end = done + part.len;
            if (plog_slice_cached(&part)) {
                done = end;
                continue;
            }
        }
        ssize_t n = pread(s->fd, buf, (size_t)(end - done), s->pos + done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : ST_E_IO;
        else
            done += n;
    }
    free(buf);
    return rc;
}

void plog_slice_release(plog_slice_t *s)
{
    plog__seg_unref(s->seg);
    s->seg = NULL;
    s->fd = -1;
}

/* Was s's file last written at or after since_ms (wall clock)? */
static bool seg_written_since(const plog_seg_t *s, int64_t since_ms)
{
    struct stat st;
    if (since_ms < 0 || fstat(s->fd, &st) != 0)
        return false;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000 >= since_ms;
}

int plog_scan_tail(plog_t *log,
                   int n_segments,
                   int64_t since_ms,
                   int (*fn)(void *arg, const plog_batch_hdr_t *h),
                   void *arg)
{
    hdr_rd_t *r = malloc(sizeof(*r));
    if (!r)
        return ST_E_NOMEM;
    int first = log->n_segs > n_segments ? log->n_segs - n_segments : 0, rc = 0;
    /* Segments are written in order: walk back while they are recent. */
    while (first > 0 && seg_written_since(log->segs[first - 1], since_ms))
        first--;
    for (int i = first; i < log->n_segs && rc == 0; i++) {
        plog_seg_t *s = log->segs[i];
        rd_reset(r, s);
        plog_batch_hdr_t h;
        for (int64_t pos = 0; pos < r->size;
             pos += (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD) {
            if ((rc = hdr_at(r, pos, &h)) != 0 || fn(arg, &h) != 0)
                break;
        }
    }
    free(r);
    return rc;
}

int plog_scan_from(plog_t *log,
                   int64_t offset,
                   int (*fn)(void *arg, const plog_batch_hdr_t *h),
                   void *arg)
{
    if (log->n_segs == 0)
        return 0;
    hdr_rd_t *r = malloc(sizeof(*r));
    if (!r)
        return ST_E_NOMEM;
    int first = find_seg(log, offset), rc = 0;
    bool stop = false;
    for (int i = first; i < log->n_segs && rc == 0 && !stop; i++) {
        plog_seg_t *s = log->segs[i];
        rd_reset(r, s);
        plog_batch_hdr_t h;
        for (int64_t pos = i == first ? idx_lookup(s, offset) : 0; pos < r->size;
             pos += (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD) {
            if ((rc = hdr_at(r, pos, &h)) != 0 || (stop = fn(arg, &h) != 0))
                break;
        }
    }
    free(r);
    return rc;
}

/* ---- Time lookup ---- */

int plog_offset_for_time(plog_t *log, int64_t ts, int64_t *offset, int64_t *timestamp)
{
    for (int i = 0; i < log->n_segs; i++) {
        plog_seg_t *s = log->segs[i];
        if (s->max_ts < ts)
            continue;
        /* Start after the last timeindex entry whose timestamp is below ts. */
        int64_t from = s->base_offset;
        for (int lo = 0, hi = s->n_tidx - 1; lo <= hi;) {
            int mid = (lo + hi) / 2;
            if (s->tidx[mid].ts < ts) {
                from = s->base_offset + s->tidx[mid].rel_offset;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        hdr_rd_t *r = malloc(sizeof(*r));
        if (!r)
            return ST_E_NOMEM;
        rd_reset(r, s);
        int64_t pos = idx_lookup(s, from);
        plog_batch_hdr_t h;
        int rc;
        while ((rc = hdr_at(r, pos, &h)) == 0 && h.max_timestamp < ts)
            pos += (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        free(r);
        if (rc != 0)
            continue;
        if (h.base_offset >= plog_high_watermark(log))
            break; /* not visible to consumers yet */
        size_t blen = (size_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        uint8_t *b = malloc(blen);
        if (!b)
            return ST_E_NOMEM;
        int64_t off = h.base_offset, rec_ts = h.max_timestamp;
        if (pread(s->fd, b, blen, pos) == (ssize_t)blen)
            off = plog_batch_offset_for_time(b, blen, ts, &rec_ts);
        free(b);
        *offset = off < log->start_offset ? log->start_offset : off;
        *timestamp = rec_ts;
        return 0;
    }
    return ST_E_NOTFOUND;
}

int plog_max_timestamp(plog_t *log, int64_t *timestamp, int64_t *offset)
{
    int64_t ts = -1, off = -1;
    for (int i = 0; i < log->n_segs; i++) {
        if (log->segs[i]->max_ts > ts) {
            ts = log->segs[i]->max_ts;
            off = log->segs[i]->max_ts_offset;
        }
    }
    if (off < 0)
        return ST_E_NOTFOUND;
    /* The segment knows the batch; the first record at or after the largest
     * timestamp is the record that has it. */
    int64_t exact, exact_ts;
    if (plog_offset_for_time(log, ts, &exact, &exact_ts) == 0 && exact_ts == ts)
        off = exact;
    *timestamp = ts;
    *offset = off;
    return 0;
}

/* ---- Retention ---- */

static void unlink_job(void *arg)
{
    plog_seg_t *s = arg;
    static const char *const exts[] = {"log.deleted", "index", "timeindex"};
    for (int i = 0; i < 3; i++) {
        char f[4200];
        seg_file(s, exts[i], f, sizeof(f));
        if (plog__sys->unlink(f) != 0 && errno != ENOENT)
            ST_WARN("plog", "cannot delete %s: %s", f, strerror(errno));
    }
    plog__seg_unref(s); /* readers may still hold refs; the fd closes with the last */
}

static int delete_oldest(plog_t *log, const char *reason, bool move_start)
{
    plog_seg_t *s = log->segs[0];
    if (log->cleaning_end > s->base_offset)
        return ST_E_AGAIN; /* the cleaner is rewriting it: the next tick deletes it */
    /* Rename first so a crash before the unlink cannot resurrect the segment. */
    char from[4200], to[4300];
    seg_file(s, "log", from, sizeof(from));
    snprintf(to, sizeof(to), "%s.deleted", from);
    if (plog__sys->rename(from, to) != 0) {
        int err = -errno;
        ST_WARN("plog", "cannot delete segment %s: %s", from, strerror(errno));
        return err;
    }
    memmove(log->segs, log->segs + 1, (size_t)(log->n_segs - 1) * sizeof(*log->segs));
    log->n_segs--;
    if (move_start && log->segs[0]->base_offset > log->start_offset)
        log->start_offset = log->segs[0]->base_offset;
    if (log->rd_seg == s)
        log->rd_seg = NULL;
    ST_INFO("plog", "deleted segment by %s dir=%s base=%" PRId64 " new_start=%" PRId64, reason,
            log->dir, s->base_offset, log->start_offset);
    s->is_deleted = true;
    if (plog__env_job(log->sh->env, unlink_job, s) != 0)
        plog__seg_unref(s);
    return 0;
}

int plog_tick(plog_t *log, int64_t now_ms)
{
    if (log->failed || log->closing)
        return 0;
    plog_seg_t *act = log->segs[log->n_segs - 1];
    if (act->size > 0 && now_ms - act->first_append_ms >= roll_ms(log)) {
        int rc = roll(log, now_ms);
        if (rc != 0)
            return rc;
    }
    int deleted = 0;
    /* Segments wholly below the log start (DeleteRecords while the cleaner
     * held them). */
    while (!log->cfg.remote_enabled && log->n_segs > 1 &&
           log->segs[1]->base_offset <= log->start_offset) {
        if (delete_oldest(log, "DeleteRecords", true) != 0)
            return deleted;
        deleted++;
    }
    /* Total retention by time: expired data goes everywhere. With remote
     * storage, only once the uploader was offered the segment (after its
     * sync): it then holds its own reference. cleanup.policy=compact alone
     * keeps every segment (the cleaner shrinks them instead). */
    while (log->n_segs > 1 && log->cfg.cleanup_delete && log->cfg.retention_ms >= 0 &&
           now_ms - log->segs[0]->max_ts > log->cfg.retention_ms &&
           (!log->cfg.remote_enabled || log->segs[0]->next_offset <= log->sealed_end)) {
        if (delete_oldest(log, "retention.ms", true) != 0)
            return deleted;
        deleted++;
    }
    if (!log->cfg.remote_enabled) {
        if (log->cfg.cleanup_delete && log->cfg.retention_bytes >= 0) {
            int64_t total = plog_size_bytes(log);
            while (log->n_segs > 1 && total - log->segs[0]->size >= log->cfg.retention_bytes) {
                total -= log->segs[0]->size;
                if (delete_oldest(log, "retention.bytes", true) != 0)
                    return deleted;
                deleted++;
            }
        }
        return deleted;
    }
    /* Local retention: only segments already uploaded; the start stays. */
    int64_t lbytes = log->cfg.local_retention_bytes == -2 ? log->cfg.retention_bytes
                                                          : log->cfg.local_retention_bytes;
    int64_t lms =
        log->cfg.local_retention_ms == -2 ? log->cfg.retention_ms : log->cfg.local_retention_ms;
    int64_t total = plog_size_bytes(log);
    while (log->n_segs > 1 && log->segs[0]->next_offset <= log->uploaded_end) {
        bool by_bytes = lbytes >= 0 && total - log->segs[0]->size >= lbytes;
        bool by_time = lms >= 0 && now_ms - log->segs[0]->max_ts > lms;
        if (!by_bytes && !by_time)
            break;
        total -= log->segs[0]->size;
        if (delete_oldest(log, by_bytes ? "local.retention.bytes" : "local.retention.ms", false) !=
            0)
            break;
        deleted++;
    }
    return deleted;
}

/* ---- Accessors ---- */

void plog_shard_on_sealed(plog_shard_t *sh, plog_sealed_fn fn, void *arg)
{
    sh->on_sealed = fn;
    sh->on_sealed_arg = arg;
}

void plog_shard_on_hw(plog_shard_t *sh, plog_hw_fn fn, void *arg)
{
    sh->on_hw = fn;
    sh->on_hw_arg = arg;
}

void plog_set_uploaded(plog_t *log, int64_t end_offset)
{
    if (end_offset > log->uploaded_end)
        log->uploaded_end = end_offset < log->end_offset ? end_offset : log->end_offset;
}

int64_t plog_uploaded_offset(const plog_t *log)
{
    return log->uploaded_end;
}

void plog_set_remote_start(plog_t *log, int64_t offset)
{
    if (log->cfg.remote_enabled && offset >= 0 && offset < log->start_offset)
        log->start_offset = offset;
}

int64_t plog_local_start_offset(const plog_t *log)
{
    int64_t b = log->segs[0]->base_offset;
    return b > log->start_offset ? b : log->start_offset;
}

int plog_sealed_get(plog_t *log, int64_t from_offset, plog_seg_info_t *out)
{
    for (int i = 0; i + 1 < log->n_segs; i++) {
        plog_seg_t *s = log->segs[i];
        if (s->next_offset <= from_offset || s->size == 0)
            continue;
        if (s->next_offset > log->durable_end)
            return ST_E_NOTFOUND; /* not synced yet: announced when it is */
        plog__seg_ref(s);
        *out = (plog_seg_info_t){
            s,           s->fd, s->base_offset, s->next_offset,    s->size, s->max_ts,
            s->log_path, 0,     true,           s->first_append_ms};
        return 0;
    }
    return ST_E_NOTFOUND;
}

/* File position and base offset of the batch of s holding offset; the end of
 * s for an offset at or past it. */
static int seg_batch_at(const plog_seg_t *s, int64_t offset, int64_t *pos, int64_t *base)
{
    *pos = 0;
    *base = s->base_offset;
    if (offset <= s->base_offset)
        return 0;
    *pos = s->size;
    *base = s->next_offset;
    if (offset >= s->next_offset)
        return 0;
    hdr_rd_t *r = malloc(sizeof(*r));
    if (!r)
        return ST_E_NOMEM;
    rd_reset(r, s);
    int64_t p = idx_lookup(s, offset);
    plog_batch_hdr_t h = {.base_offset = offset};
    int rc = 0;
    /* The written end is a batch boundary too (offset is the durable end
     * there, the batch after it may not be written yet). */
    while (p < r->size && (rc = hdr_at(r, p, &h)) == 0 &&
           h.base_offset + h.last_offset_delta < offset) {
        p += (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        h.base_offset = offset;
    }
    free(r);
    if (rc != 0)
        return rc;
    *pos = p;
    *base = h.base_offset;
    return 0;
}

int plog_archive_get(plog_t *log, int64_t from_offset, bool with_active, plog_seg_info_t *out)
{
    for (int i = 0; i < log->n_segs; i++) {
        plog_seg_t *s = log->segs[i];
        bool sealed = i + 1 < log->n_segs;
        if (s->next_offset <= from_offset || s->size == 0)
            continue;
        if ((sealed && s->next_offset > log->durable_end) || (!sealed && !with_active))
            return ST_E_NOTFOUND; /* in order: nothing after it either */
        int64_t end = s->next_offset < log->durable_end ? s->next_offset : log->durable_end;
        int64_t pos, base, end_pos, end_base;
        int rc = seg_batch_at(s, from_offset, &pos, &base);
        if (rc == 0)
            rc = seg_batch_at(s, end, &end_pos, &end_base);
        if (rc != 0)
            return rc;
        if (end_pos <= pos)
            return ST_E_NOTFOUND; /* the active segment's durable part is archived */
        plog__seg_ref(s);
        *out = (plog_seg_info_t){s,         s->fd,       base, end_base, end_pos - pos,
                                 s->max_ts, s->log_path, pos,  sealed,   s->first_append_ms};
        return 0;
    }
    return ST_E_NOTFOUND;
}

int plog_reset(plog_t *log, int64_t offset)
{
    if (offset <= log->end_offset || log->waiters || log->wwaiters || log->closing || log->failed ||
        log->wr_end != log->end_offset)
        return ST_E_INVAL;
    /* Old segments go first (renamed, the rename synced), then the new one
     * is created: a crash in between leaves no log or the new one, never a
     * gap between old and new that a read could fall into. */
    int rc = 0;
    for (int i = 0; i < log->n_segs && rc == 0; i++) {
        char from[4200], to[4300];
        seg_file(log->segs[i], "log", from, sizeof(from));
        snprintf(to, sizeof(to), "%s.deleted", from);
        if (plog__sys->rename(from, to) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = plog__fsync_dir(log);
    plog_seg_t *s = NULL;
    if (rc == 0)
        rc = seg_open(log, offset, true, &s);
    if (rc == 0)
        rc = plog__fsync_dir(log);
    if (rc != 0) {
        plog__seg_unref(s);
        log->failed = ST_E_IO; /* old segments may be half renamed: refuse appends */
        ST_ERROR("plog", "cannot reset the log dir=%s offset=%" PRId64 " err=%s", log->dir, offset,
                 st_strerror(rc));
        return rc;
    }
    for (int i = 0; i < log->n_segs; i++) {
        plog_seg_t *old = log->segs[i];
        old->is_deleted = true;
        if (plog__env_job(log->sh->env, unlink_job, old) != 0)
            plog__seg_unref(old);
    }
    log->segs[0] = s;
    log->n_segs = 1;
    log->rd_seg = NULL;
    log->start_offset = log->end_offset = log->durable_end = log->uploaded_end = offset;
    log->wr_end = offset;
    log->sealed_end = offset;
    log->durable_bytes = log->appended_bytes; /* unsynced bytes went with the old segments */
    pthread_mutex_lock(&log->sync_mu);
    log->written_end = offset;
    pthread_mutex_unlock(&log->sync_mu);
    ST_WARN("plog", "log reset dir=%s: continues empty at offset=%" PRId64, log->dir, offset);
    return 0;
}

void plog_seg_info_release(plog_seg_info_t *info)
{
    plog__seg_unref(info->seg);
    info->seg = NULL;
    info->fd = -1;
}

int64_t plog_start_offset(const plog_t *log)
{
    return log->start_offset;
}

int64_t plog_end_offset(const plog_t *log)
{
    return log->end_offset;
}

int64_t plog_durable_offset(const plog_t *log)
{
    return log->durable_end;
}

int plog_failed(const plog_t *log)
{
    return log->failed;
}

int64_t plog_high_watermark(const plog_t *log)
{
    int64_t hw = log->cfg.write_caching ? log->wr_end : log->durable_end;
    return hw > log->start_offset ? hw : log->start_offset;
}

int64_t plog_unflushed_bytes(const plog_t *log)
{
    return log->appended_bytes - log->durable_bytes;
}

int64_t plog_size_bytes(const plog_t *log)
{
    int64_t t = 0;
    for (int i = 0; i < log->n_segs; i++)
        t += log->segs[i]->size;
    return t;
}

int plog_segment_count(const plog_t *log)
{
    return log->n_segs;
}

int64_t plog_segment_base(const plog_t *log, int i)
{
    return i >= 0 && i < log->n_segs ? log->segs[i]->base_offset : -1;
}

const char *plog_dir(const plog_t *log)
{
    return log->dir;
}

int plog_parse_dir_name(const char *name, char *topic, size_t topic_len, int32_t *partition)
{
    const char *dash = strrchr(name, '-');
    if (!dash || dash == name || !dash[1] || (size_t)(dash - name) >= topic_len)
        return ST_E_INVAL;
    long long p = 0;
    for (const char *c = dash + 1; *c; c++) {
        if (*c < '0' || *c > '9' || p > INT32_MAX / 10)
            return ST_E_INVAL;
        p = p * 10 + (*c - '0');
    }
    memcpy(topic, name, (size_t)(dash - name));
    topic[dash - name] = 0;
    *partition = (int32_t)p;
    return 0;
}
