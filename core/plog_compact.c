/* plog_compact.c - the log cleaner: compaction of a partition log's sealed
 * segments (cleanup.policy=compact), one thread per shard.
 * Data path: part.c's cleaner timer -> plog_cleaner_offer() plans a pass on
 * the loop (which segments, how dirty) and hands it to the thread -> the
 * thread reads the dirty segments into the offset map (core/compact.c),
 * rewrites every segment below the map's end into DIR/<base>.*.cleaned,
 * syncs them and swaps each one in by rename (commit: <base>.log.swap), then
 * posts the pass back -> the loop replaces the plog_seg_t of each rewritten
 * segment (readers holding the old one keep reading its unlinked file).
 *
 *   IDLE --offer: dirty enough--> RUNNING (thread) --posted--> SWAP (loop) --> IDLE
 *
 * Invariants: 1. only segments that are sealed, durable and below the
 *                recovery point are rewritten, oldest first, one committed
 *                rename each: a kill at any moment leaves, per segment, the
 *                old file or the new one, and an older value is always gone
 *                before the tombstone that superseded it (a tombstone is in a
 *                later segment or later in the same one);
 *             2. a rewritten segment keeps its base offset, its end offset
 *                (its last batch stays, empty if need be) and the offset of
 *                every kept record;
 *             3. while a pass runs, the log never deletes the segments it
 *                holds (plog.c delete_oldest waits for cleaning_end);
 *             4. the loop never blocks: it only plans and swaps pointers. */
#include "core/compact.h"
#include "core/plog_int.h"
#include "core/st_assert.h"
#include "core/st_log.h"
#include "core/st_metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Config values ---- */

int plog_cleanup_policy_parse(const char *s, bool *is_delete, bool *is_compact)
{
    bool del = false, cmp = false;
    int n = 0;
    for (const char *c = s; c && *c;) {
        const char *e = strchr(c, ',');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        const char *w = c;
        while (len && (*w == ' ' || *w == '\t'))
            w++, len--;
        while (len && (w[len - 1] == ' ' || w[len - 1] == '\t'))
            len--;
        if (len == 6 && !memcmp(w, "delete", 6))
            del = true;
        else if (len == 7 && !memcmp(w, "compact", 7))
            cmp = true;
        else
            return ST_E_INVAL;
        n++;
        c = e ? e + 1 : c + strlen(c);
    }
    if (n == 0)
        return ST_E_INVAL;
    if (is_delete)
        *is_delete = del;
    if (is_compact)
        *is_compact = cmp;
    return 0;
}

int plog_ratio_parse(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !(v >= 0 && v <= 1))
        return ST_E_INVAL;
    if (out)
        *out = v;
    return 0;
}

/* ---- Recovery of a pass cut short ---- */

/* "<20 digits>.<rest>": the rest, or NULL. */
static const char *seg_suffix(const char *name, int64_t *base)
{
    for (int i = 0; i < PLOG_NAME_LEN; i++)
        if (name[i] < '0' || name[i] > '9')
            return NULL;
    if (name[PLOG_NAME_LEN] != '.')
        return NULL;
    *base = strtoll(name, NULL, 10);
    return name + PLOG_NAME_LEN + 1;
}

static int rename_in(plog_t *log, int64_t base, const char *from_ext, const char *to_ext)
{
    char from[4200], to[4200];
    snprintf(from, sizeof(from), "%s/%020" PRId64 ".%s", log->dir, base, from_ext);
    snprintf(to, sizeof(to), "%s/%020" PRId64 ".%s", log->dir, base, to_ext);
    if (plog__sys->rename(from, to) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int plog__compact_recover(plog_t *log)
{
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    int64_t *swaps = NULL;
    int n_swaps = 0, cap = 0, rc = 0;
    bool changed = false;
    struct dirent *e;
    /* 1: committed swaps (.log.swap) and uncommitted files (.cleaned). */
    while (rc == 0 && (e = readdir(d))) {
        int64_t base;
        const char *ext = seg_suffix(e->d_name, &base);
        if (!ext)
            continue;
        if (!strcmp(ext, "log.swap")) {
            if (n_swaps == cap) {
                int64_t *n = realloc(swaps, (size_t)(cap = cap ? cap * 2 : 8) * sizeof(*n));
                if (!n) {
                    rc = ST_E_NOMEM;
                    break;
                }
                swaps = n;
            }
            swaps[n_swaps++] = base;
        } else if (strlen(ext) > 8 && !strcmp(ext + strlen(ext) - 8, ".cleaned")) {
            char f[4400];
            snprintf(f, sizeof(f), "%s/%s", log->dir, e->d_name);
            if (plog__sys->unlink(f) != 0 && errno != ENOENT)
                rc = -errno;
            changed = true;
        }
    }
    /* 2: index swaps without their log's commit never happened. */
    rewinddir(d);
    while (rc == 0 && (e = readdir(d))) {
        int64_t base;
        const char *ext = seg_suffix(e->d_name, &base);
        if (!ext || (strcmp(ext, "index.swap") != 0 && strcmp(ext, "timeindex.swap") != 0))
            continue;
        bool committed = false;
        for (int i = 0; i < n_swaps; i++)
            committed = committed || swaps[i] == base;
        if (!committed) {
            char f[4400];
            snprintf(f, sizeof(f), "%s/%s", log->dir, e->d_name);
            if (plog__sys->unlink(f) != 0 && errno != ENOENT)
                rc = -errno;
            changed = true;
        }
    }
    closedir(d);
    /* 3: finish the committed ones, indexes first (as the cleaner does). */
    for (int i = 0; rc == 0 && i < n_swaps; i++) {
        ST_WARN("plog", "finishing an interrupted compaction dir=%s base=%" PRId64, log->dir,
                swaps[i]);
        if ((rc = rename_in(log, swaps[i], "index.swap", "index")) == 0 &&
            (rc = rename_in(log, swaps[i], "timeindex.swap", "timeindex")) == 0)
            rc = rename_in(log, swaps[i], "log.swap", "log");
        changed = true;
    }
    free(swaps);
    if (rc == 0 && changed) {
        log->open_dir_changed = true;
        rc = plog__fsync_dir(log);
    }
    return rc;
}

/* ---- The cleaner ---- */

typedef struct {
    plog_seg_t *old; /* owned ref */
    plog_seg_t *neu; /* owned: the rewritten segment, swapped in; NULL if unchanged */
} job_seg_t;

typedef struct job {
    plog_t *log;     /* loop ref (plog__log_ref) */
    job_seg_t *segs; /* owned: the cleanable segments, oldest first */
    int n_segs;
    int64_t clean_end; /* dirty offsets start here */
    int64_t map_end;   /* thread: the map is complete below it */
    bool complete;     /* thread: every segment below map_end was handled */
    compact_rules_t rules;
    int32_t index_interval;
    int64_t now_ms; /* wall clock when planned */
    int err;
    int64_t bytes_read, bytes_written;
    compact_stats_t st;
} job_t;

struct plog_cleaner {
    uv_loop_t *loop; /* borrowed */
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *todo; /* guarded by mu: handed to the thread */
    job_t *done; /* guarded by mu: handed back to the loop */
    bool stop;   /* guarded by mu */
    _Atomic bool cancel;
    bool busy;          /* loop: a pass is out */
    compact_map_t *map; /* thread: allocated by the first pass */
    size_t map_bytes;
    int64_t io_bps;
    compact_throttle_t io; /* thread: the pass's I/O budget */
    void (*on_done)(void *);
    void *on_done_arg;
};

/* log.cleaner.io.max.bytes.per.second: sleep while ahead of the rate. */
static void throttle(plog_cleaner_t *c, int64_t bytes)
{
    compact_throttle(&c->io, bytes, &c->cancel);
}

/* Read the batch at pos of s into *buf (CRC checked). @return its length,
 * 0 at the end, or a negative error. */
static int64_t read_batch(plog_seg_t *s, int64_t pos, compact_buf_t *buf, plog_batch_hdr_t *h)
{
    if (pos >= s->size)
        return 0;
    uint8_t hb[PLOG_BATCH_HDR_SIZE];
    if (s->size - pos < PLOG_BATCH_HDR_SIZE ||
        pread(s->fd, hb, sizeof(hb), pos) != (ssize_t)sizeof(hb) ||
        plog_batch_parse_hdr(hb, sizeof(hb), h) != 0 || h->batch_length < 0)
        return ST_E_CORRUPT;
    int64_t blen = (int64_t)h->batch_length + PLOG_BATCH_LOG_OVERHEAD;
    if (blen > s->size - pos || blen < PLOG_BATCH_HDR_SIZE)
        return ST_E_CORRUPT;
    if ((size_t)blen > buf->cap) {
        uint8_t *n = realloc(buf->p, (size_t)blen);
        if (!n)
            return ST_E_NOMEM;
        buf->p = n;
        buf->cap = (size_t)blen;
    }
    if (pread(s->fd, buf->p, (size_t)blen, pos) != blen)
        return ST_E_IO;
    buf->len = (size_t)blen;
    if (plog_batch_validate_stored(buf->p, (size_t)blen, h, NULL) != 0)
        return ST_E_CORRUPT;
    return blen;
}

/* Pass 1: the map of the dirty offsets [clean_end, ...), as far as it holds. */
static int build_map(plog_cleaner_t *c, job_t *j, compact_buf_t *buf)
{
    compact_map_clear(c->map);
    j->map_end = j->clean_end;
    for (int i = 0; i < j->n_segs; i++) {
        plog_seg_t *s = j->segs[i].old;
        if (s->next_offset <= j->clean_end)
            continue;
        plog_batch_hdr_t h;
        int64_t blen;
        for (int64_t pos = 0; (blen = read_batch(s, pos, buf, &h)) > 0; pos += blen) {
            throttle(c, blen);
            j->bytes_read += blen;
            if (atomic_load(&c->cancel))
                return ST_E_CLOSED;
            int64_t last = h.base_offset + h.last_offset_delta;
            if (last < j->clean_end)
                continue;
            int rc = compact_map_add_batch(c->map, buf->p, buf->len);
            if (rc == ST_E_AGAIN)
                return 0; /* full: this pass cleans below this batch */
            if (rc != 0)
                return rc;
            j->map_end = last + 1;
        }
        if (blen < 0)
            return (int)blen;
        j->map_end = s->next_offset;
    }
    return 0;
}

/* ---- Producers' last batches ----
 * Kafka's cleaner keeps the last batch of every producer (empty if all its
 * records go), so that producer state rebuilt from the log after a restart
 * (kh_idem) still knows each producer's last sequence: a retry of that batch
 * is then answered as a duplicate, never appended twice. Producers idle for
 * longer than Kafka's producer.id.expiration.ms default are forgotten. */

#define PID_EXPIRY_MS (24 * 3600 * 1000)
#define PID_MAP_MAX   65536 /* entries; beyond, every producer batch is kept */

typedef struct {
    int64_t pid; /* -1: empty slot */
    int64_t last_base;
} pid_slot_t;

typedef struct {
    pid_slot_t *slots; /* owned */
    size_t n_slots, n_used;
    bool overflow;
} pid_map_t;

static pid_slot_t *pid_find(const pid_map_t *pm, int64_t pid)
{
    size_t i = (size_t)((uint64_t)pid * 0x9e3779b97f4a7c15ull % pm->n_slots);
    while (pm->slots[i].pid >= 0 && pm->slots[i].pid != pid)
        i = i + 1 == pm->n_slots ? 0 : i + 1;
    return &pm->slots[i];
}

static void pid_put(pid_map_t *pm, int64_t pid, int64_t base)
{
    if (pm->overflow)
        return;
    if (!pm->slots) {
        pm->n_slots = PID_MAP_MAX * 2;
        pm->slots = malloc(pm->n_slots * sizeof(*pm->slots));
        if (!pm->slots) {
            pm->overflow = true;
            return;
        }
        for (size_t i = 0; i < pm->n_slots; i++)
            pm->slots[i].pid = -1;
    }
    pid_slot_t *sl = pid_find(pm, pid);
    if (sl->pid < 0) {
        if (pm->n_used >= PID_MAP_MAX) {
            pm->overflow = true;
            return;
        }
        sl->pid = pid;
        pm->n_used++;
    }
    sl->last_base = base;
}

/* Is the batch h the last of its producer (so it stays, empty if need be)? */
static bool pid_is_last(const pid_map_t *pm, const plog_batch_hdr_t *h, int64_t now_ms)
{
    if (h->producer_id < 0 || now_ms - h->max_timestamp > PID_EXPIRY_MS)
        return false;
    if (pm->overflow)
        return true;
    if (!pm->slots)
        return false;
    const pid_slot_t *sl = pid_find(pm, h->producer_id);
    return sl->pid == h->producer_id && sl->last_base == h->base_offset;
}

/* The last batch of each recent producer in the segments below map_end
 * (headers only). */
static int scan_pids(job_t *j, pid_map_t *pm)
{
    for (int i = 0; i < j->n_segs && j->segs[i].old->base_offset < j->map_end; i++) {
        plog_seg_t *s = j->segs[i].old;
        uint8_t hb[PLOG_BATCH_HDR_SIZE];
        plog_batch_hdr_t h;
        for (int64_t pos = 0; pos < s->size;
             pos += (int64_t)h.batch_length + PLOG_BATCH_LOG_OVERHEAD) {
            if (s->size - pos < PLOG_BATCH_HDR_SIZE ||
                pread(s->fd, hb, sizeof(hb), pos) != (ssize_t)sizeof(hb) ||
                plog_batch_parse_hdr(hb, sizeof(hb), &h) != 0 || h.batch_length < 49)
                return ST_E_CORRUPT;
            if (h.producer_id >= 0 && j->now_ms - h.max_timestamp <= PID_EXPIRY_MS)
                pid_put(pm, h.producer_id, h.base_offset);
        }
    }
    return 0;
}

static void drop_cleaned(plog_seg_t *n)
{
    static const char *const exts[] = {"log", "index", "timeindex"};
    for (int i = 0; i < 3; i++) {
        char f[4300];
        snprintf(f, sizeof(f), "%s.%s.cleaned", n->path, exts[i]);
        plog__sys->unlink(f);
    }
    plog__seg_unref(n);
}

static int rename_seg(plog_seg_t *n, const char *ext, const char *from_sfx, const char *to_sfx)
{
    char from[4300], to[4300];
    snprintf(from, sizeof(from), "%s.%s%s", n->path, ext, from_sfx);
    snprintf(to, sizeof(to), "%s.%s%s", n->path, ext, to_sfx);
    return plog__sys->rename(from, to) != 0 ? -errno : 0;
}

/* Swap the synced .cleaned files of n in: .swap (the .log rename commits),
 * then the final names, syncing the directory after each step. */
static int swap_in(plog_seg_t *n, int dir_fd)
{
    int rc;
    if ((rc = rename_seg(n, "index", ".cleaned", ".swap")) != 0 ||
        (rc = rename_seg(n, "timeindex", ".cleaned", ".swap")) != 0)
        return rc;
    if (plog__sys->fsync(dir_fd) != 0)
        return -errno;
    if ((rc = rename_seg(n, "log", ".cleaned", ".swap")) != 0)
        return rc;
    if (plog__sys->fsync(dir_fd) != 0)
        return -errno; /* committed or not: plog_open decides from the names */
    if ((rc = rename_seg(n, "index", ".swap", "")) != 0 ||
        (rc = rename_seg(n, "timeindex", ".swap", "")) != 0 ||
        (rc = rename_seg(n, "log", ".swap", "")) != 0)
        return rc;
    return plog__sys->fsync(dir_fd) != 0 ? -errno : 0;
}

/* Pass 2, one segment: rewrite old into .cleaned files; swap them in when
 * something was removed. */
static int rewrite_seg(
    plog_cleaner_t *c, job_t *j, job_seg_t *js, int dir_fd, compact_buf_t *in, const pid_map_t *pm)
{
    plog_seg_t *old = js->old, *n = NULL;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", j->log->dir);
    int rc = plog__seg_create(dir, old->base_offset, ".cleaned", &n);
    if (rc != 0)
        return rc;
    compact_buf_t out = {0};
    int64_t pos = 0, blen, removed0 = j->st.records_read - j->st.records_kept;
    int64_t rewritten0 = j->st.batches_rewritten;
    plog_batch_hdr_t h;
    while ((blen = read_batch(old, pos, in, &h)) > 0) {
        throttle(c, blen);
        j->bytes_read += blen;
        if (atomic_load(&c->cancel)) {
            rc = ST_E_CLOSED;
            break;
        }
        compact_rules_t r = j->rules;
        /* The segment keeps its end offset; a producer keeps its last batch. */
        r.keep_empty = pos + blen == old->size || pid_is_last(pm, &h, j->now_ms);
        out.len = 0;
        if ((rc = compact_filter_batch(in->p, in->len, &r, &out, &j->st)) != 0)
            break;
        if (out.len > 0) {
            plog_batch_hdr_t oh;
            if (plog__sys->pwrite(n->fd, out.p, out.len, (off_t)n->size) != (ssize_t)out.len) {
                rc = errno ? -errno : ST_E_IO;
                break;
            }
            ST_VERIFY(plog_batch_parse_hdr(out.p, out.len, &oh) == 0);
            plog__seg_note_batch(n, &oh, n->size, (int64_t)out.len, j->index_interval, true);
            throttle(c, (int64_t)out.len);
        }
        pos += blen;
    }
    compact_buf_free(&out);
    if (rc == 0 && blen < 0)
        rc = (int)blen;
    bool changed =
        j->st.records_read - j->st.records_kept > removed0 || j->st.batches_rewritten > rewritten0;
    if (rc == 0 && changed && n->next_offset != old->next_offset)
        rc = ST_E_CORRUPT; /* cannot happen: the last batch is kept */
    if (rc != 0 || !changed) {
        drop_cleaned(n);
        return rc;
    }
    if (plog__sys->fdatasync(n->fd) != 0)
        rc = -errno;
    else
        rc = plog__idx_save_as(n, ".cleaned"); /* written from memory and synced */
    if (rc != 0) {
        drop_cleaned(n);
        return rc;
    }
    if ((rc = swap_in(n, dir_fd)) != 0) {
        /* Before the commit the old segment stands; after it, the new one
         * does on disk: keep serving the old bytes (a superset) until restart. */
        plog__seg_unref(n);
        return rc;
    }
    j->bytes_written += n->size;
    js->neu = n;
    return 0;
}

static void run_pass(plog_cleaner_t *c, job_t *j)
{
    compact_buf_t in = {0};
    compact_throttle_start(&c->io, c->io_bps);
    int rc = c->map ? 0 : compact_map_new(c->map_bytes, &c->map); /* no memory until needed */
    int dir_fd = rc ? -1 : plog__sys->open(j->log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (rc == 0)
        rc = dir_fd < 0 ? -errno : build_map(c, j, &in);
    if (rc == 0 && j->map_end <= j->clean_end) {
        ST_WARN("plog", "cleaner: log.cleaner.dedupe.buffer.size holds no whole batch dir=%s",
                j->log->dir);
        rc = ST_E_TOO_LARGE;
    }
    j->rules.map = c->map; /* NULL only with rc set: no segment is rewritten */
    j->rules.map_end = j->map_end;
    pid_map_t pm = {0};
    if (rc == 0)
        rc = scan_pids(j, &pm);
    for (int i = 0; rc == 0 && i < j->n_segs && j->segs[i].old->base_offset < j->map_end; i++)
        rc = rewrite_seg(c, j, &j->segs[i], dir_fd, &in, &pm);
    free(pm.slots);
    j->complete = rc == 0;
    if (rc == 0) {
        /* One pass per log at a time: no lock (sync_mu would stall appends
         * behind this fsync). */
        rc = plog__write_ckpt(j->log, PLOG_CLEAN_CKPT, j->map_end, true);
        j->complete = rc == 0;
    }
    if (dir_fd >= 0)
        close(dir_fd);
    compact_buf_free(&in);
    j->err = rc;
}

static void *cleaner_main(void *arg)
{
    plog_cleaner_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && !c->todo)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->todo)
            break;
        job_t *j = c->todo;
        c->todo = NULL;
        pthread_mutex_unlock(&c->mu);
        run_pass(c, j);
        pthread_mutex_lock(&c->mu);
        c->done = j;
        uv_async_send(&c->async);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* On the loop: swap the rewritten segments in, release the pass. */
static void on_pass_done(uv_async_t *a)
{
    plog_cleaner_t *c = a->data;
    pthread_mutex_lock(&c->mu);
    job_t *j = c->done;
    c->done = NULL;
    pthread_mutex_unlock(&c->mu);
    if (!j)
        return;
    plog_t *log = j->log;
    int64_t written = 0, read_segs = 0;
    for (int i = 0; i < j->n_segs; i++) {
        job_seg_t *js = &j->segs[i];
        if (js->neu) {
            int k = 0;
            while (k < log->n_segs && log->segs[k] != js->old)
                k++;
            ST_VERIFY(k < log->n_segs); /* deletion waits for the pass */
            js->neu->first_append_ms = js->old->first_append_ms;
            log->segs[k] = js->neu;
            if (log->rd_seg == js->old)
                log->rd_seg = NULL;
            plog__seg_unref(js->old); /* the list's ref; readers keep theirs */
            read_segs += js->old->size;
            written += js->neu->size;
        }
        plog__seg_unref(js->old); /* the pass's ref */
    }
    log->cleaning_end = -1;
    plog_compact_stats_t *st = &log->cstats;
    st->bytes_read += j->bytes_read;
    st->bytes_written += j->bytes_written;
    st->records_removed += j->st.records_read - j->st.records_kept;
    st_metric_add(ST_M_CLEANER_READ_BYTES, j->bytes_read);
    st_metric_add(ST_M_CLEANER_WRITTEN_BYTES, j->bytes_written);
    st_metric_add(ST_M_CLEANER_REMOVED_RECORDS, j->st.records_read - j->st.records_kept);
    st->is_failing = !j->complete && j->err != ST_E_CLOSED;
    if (j->complete) {
        st->runs++;
        st_metric_add(ST_M_CLEANER_PASSES, 1);
        st->last_clean_ms = j->now_ms;
        log->clean_end = j->map_end;
        st->clean_end = j->map_end;
        ST_INFO("plog",
                "cleaned dir=%s up_to=%" PRId64 " records_read=%" PRId64 " removed=%" PRId64
                " tombstones_removed=%" PRId64 " bytes=%" PRId64 "->%" PRId64,
                log->dir, j->map_end, j->st.records_read, j->st.records_read - j->st.records_kept,
                j->st.tombstones_dropped, read_segs, written);
    } else if (j->err != ST_E_CLOSED) {
        st_metric_add(ST_M_CLEANER_FAILURES, 1);
        ST_WARN("plog", "cleaner pass failed dir=%s err=%s", log->dir, st_strerror(j->err));
    }
    free(j->segs);
    free(j);
    c->busy = false;
    plog__log_unref(log);
    if (c->on_done)
        c->on_done(c->on_done_arg);
}

static void on_cleaner_closed(uv_handle_t *h)
{
    plog_cleaner_t *c = h->data;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    compact_map_free(c->map);
    free(c);
}

int plog_cleaner_new(uv_loop_t *loop,
                     size_t buffer_bytes,
                     int64_t io_bytes_per_sec,
                     plog_cleaner_t **out)
{
    plog_cleaner_t *c = calloc(1, sizeof(*c));
    if (!c)
        return ST_E_NOMEM;
    int rc;
    c->map_bytes = buffer_bytes;
    c->loop = loop;
    c->io_bps = io_bytes_per_sec > 0 ? io_bytes_per_sec : INT64_MAX;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->cancel, false);
    if ((rc = uv_async_init(loop, &c->async, on_pass_done)) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        compact_map_free(c->map);
        free(c);
        return rc;
    }
    c->async.data = c;
    if ((rc = pthread_create(&c->thread, NULL, cleaner_main, c)) != 0) {
        uv_close((uv_handle_t *)&c->async, on_cleaner_closed); /* frees c */
        return -rc;
    }
    *out = c;
    return 0;
}

void plog_cleaner_on_done(plog_cleaner_t *c, void (*fn)(void *arg), void *arg)
{
    c->on_done = fn;
    c->on_done_arg = arg;
}

bool plog_cleaner_is_busy(const plog_cleaner_t *c)
{
    return c->busy;
}

void plog_cleaner_cancel(plog_cleaner_t *c)
{
    atomic_store(&c->cancel, true);
}

void plog_cleaner_free(plog_cleaner_t *c)
{
    if (!c)
        return;
    ST_ASSERT(!c->busy);
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    uv_close((uv_handle_t *)&c->async, on_cleaner_closed);
}

/* ---- Planning (loop) ---- */

/* Where a pass over a log would go. */
typedef struct {
    int n_segs;                /* the cleanable prefix: segments */
    int64_t clean_end;         /* dirty offsets start here */
    int64_t first_uncleanable; /* end of the cleanable prefix */
    double ratio;              /* dirty bytes / cleanable bytes */
    bool is_overdue;           /* a dirty segment is older than max.compaction.lag.ms */
    bool is_failing;           /* the log's last pass failed */
} plan_t;

/* Plan a pass over log; refresh its dirty ratio figure.
 * @return true when one is due now. */
static bool plan(plog_t *log, int64_t now_ms, plan_t *p)
{
    *p = (plan_t){0};
    if (!log->cfg.cleanup_compact || log->failed || log->closing || log->cleaning_end >= 0)
        return false;
    pthread_mutex_lock(&log->sync_mu);
    int64_t rp = log->rp_written;
    pthread_mutex_unlock(&log->sync_mu);
    /* The cleanable prefix: sealed, durable, below the recovery point (its
     * files and indexes synced), uploaded with remote storage (the archive
     * keeps the bytes it indexed), and older than min.compaction.lag.ms. */
    int k = 0;
    for (; k + 1 < log->n_segs; k++) {
        plog_seg_t *s = log->segs[k];
        if (s->next_offset > log->durable_end || s->next_offset > rp ||
            (log->cfg.remote_enabled && s->next_offset > log->uploaded_end) ||
            now_ms - s->max_ts < log->cfg.min_compaction_lag_ms)
            break;
    }
    if (k == 0) {
        log->cstats.dirty_ratio = 0; /* nothing cleanable, as Kafka counts it */
        return false;
    }
    p->n_segs = k;
    p->first_uncleanable = log->segs[k - 1]->next_offset;
    p->clean_end =
        log->clean_end > log->segs[0]->base_offset ? log->clean_end : log->segs[0]->base_offset;
    int64_t total = 0, dirty = 0, oldest_dirty_ts = INT64_MAX;
    for (int i = 0; i < k; i++) {
        plog_seg_t *s = log->segs[i];
        total += s->size;
        if (s->next_offset > p->clean_end) {
            dirty += s->size;
            if (s->max_ts < oldest_dirty_ts)
                oldest_dirty_ts = s->max_ts;
        }
    }
    p->ratio = total > 0 ? (double)dirty / (double)total : 0;
    p->is_failing = log->cstats.is_failing;
    log->cstats.dirty_ratio = p->ratio;
    if (p->clean_end >= p->first_uncleanable || dirty == 0)
        return false;
    p->is_overdue = log->cfg.max_compaction_lag_ms != INT64_MAX &&
                    now_ms - oldest_dirty_ts > log->cfg.max_compaction_lag_ms;
    return p->ratio >= log->cfg.min_cleanable_ratio || p->is_overdue;
}

/* Hand the pass p over log to the thread. */
static int start(plog_cleaner_t *c, plog_t *log, int64_t now_ms, const plan_t *p)
{
    int k = p->n_segs;
    job_t *j = calloc(1, sizeof(*j));
    job_seg_t *segs = calloc((size_t)k, sizeof(*segs));
    if (!j || !segs) {
        free(j);
        free(segs);
        return ST_E_NOMEM;
    }
    for (int i = 0; i < k; i++) {
        plog__seg_ref(log->segs[i]);
        segs[i].old = log->segs[i];
    }
    j->log = log;
    j->segs = segs;
    j->n_segs = k;
    j->clean_end = p->clean_end;
    j->index_interval = log->cfg.index_interval_bytes;
    j->now_ms = now_ms;
    j->rules.tombstone_horizon_ms =
        log->cfg.delete_retention_ms > now_ms ? INT64_MIN : now_ms - log->cfg.delete_retention_ms;
    plog__log_ref(log);
    log->cleaning_end = p->first_uncleanable;
    c->busy = true;
    ST_DEBUG("plog", "cleaner pass dir=%s dirty_from=%" PRId64 " to=%" PRId64 " ratio=%.3f%s",
             log->dir, p->clean_end, p->first_uncleanable, p->ratio,
             p->is_overdue ? " (max.compaction.lag.ms passed)" : "");
    pthread_mutex_lock(&c->mu);
    c->todo = j;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 1;
}

int plog_cleaner_offer(plog_cleaner_t *c, plog_t *log, int64_t now_ms)
{
    plan_t p;
    if (c->busy || atomic_load(&c->cancel) || !plan(log, now_ms, &p))
        return 0;
    return start(c, log, now_ms, &p);
}

/* Is pass a to be run before pass b? */
static bool dirtier(const plan_t *a, const plan_t *b)
{
    if (a->is_failing != b->is_failing)
        return b->is_failing;
    if (a->is_overdue != b->is_overdue)
        return a->is_overdue;
    return a->ratio > b->ratio;
}

int plog_cleaner_offer_dirtiest(
    plog_cleaner_t *c, plog_t *const *logs, int n_logs, int64_t now_ms, int *picked)
{
    if (c->busy || atomic_load(&c->cancel))
        return 0;
    int best = -1;
    plan_t bp = {0};
    for (int i = 0; i < n_logs; i++) {
        plan_t p;
        if (plan(logs[i], now_ms, &p) && (best < 0 || dirtier(&p, &bp))) {
            best = i;
            bp = p;
        }
    }
    if (best < 0)
        return 0;
    if (picked)
        *picked = best;
    return start(c, logs[best], now_ms, &bp);
}

void plog_compact_stats(const plog_t *log, plog_compact_stats_t *out)
{
    *out = log->cstats;
    out->is_compacted = log->cfg.cleanup_compact;
    out->clean_end = log->clean_end;
}
