/* plog_crash_test.c - power cuts and kills simulated under the partition log
 * engine (core/plog*), in the spirit of SQLite's crash-test VFS.
 *
 * The simulator is a plog_sys_t table (the flusher's segment writes, the
 * index saves, checkpoints and the loop's file operations all go through
 * it). Every write, truncation, creation,
 * rename and unlink goes to the real files (the "page cache" view, what reads
 * see) and is also remembered: per file, the content at its last sync plus the
 * operations since; per directory, the namespace at its last fsync plus the
 * entry operations since. Crash point N makes the N-th operation and all
 * later ones fail with EIO (nothing more reaches the disk). Then either:
 *  - kill -9: the page cache survives; the files stay as they are, still
 *    unsynced (a later power cut can lose what was not synced), or
 *  - power cut: per file, the unsynced operations are dropped, or a random
 *    prefix of them is kept, or a prefix plus one write torn at 512-byte
 *    sector granularity (random sectors of it land); of the directory
 *    operations since the last directory fsync, a random prefix stays.
 *
 * A trial (seeded) runs a random workload (appends acknowledged by group
 * commit, reads, rolls, retention, DeleteRecords, upload candidates) until
 * its crash point, recovers (with possibly a second crash during recovery),
 * lets idempotent retries of batches that survived be acknowledged, then cuts
 * the power again with no warning (restart-then-power-loss), recovers and
 * appends, then closes cleanly and cuts the power once more (a clean close
 * must leave nothing unsynced). Invariants checked after every recovery:
 *  1. every acknowledged batch is there, byte for byte (unless DeleteRecords
 *     or retention removed it); every batch acknowledged as written (acks=1)
 *     is there after a kill -9 with no power cut since;
 *  2. an offset once read names the same batch forever (no reuse);
 *  3. reads never return data at or beyond the high watermark, and the high
 *     watermark never passes what is on disk;
 *  4. the uploader is never offered a segment with unsynced bytes.
 * PLOG_CRASH_SEED / PLOG_CRASH_TRIALS override the seed and trial count; a
 * failure prints the seed that reproduces it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/plog.h"
#include "tests/support/tbatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- The simulator ---- */

enum { OP_WRITE, OP_TRUNC };
typedef struct {
    int kind;
    int64_t off, len; /* write: position and length; truncate: new length */
    uint8_t *data;    /* owned (writes) */
} sop_t;

typedef struct {
    uint8_t *img; /* owned: content at the last sync */
    int64_t img_len;
    sop_t *ops; /* owned: since the last sync, in order */
    int n_ops, cap_ops;
} sfile_t;

enum { DOP_CREATE, DOP_RENAME, DOP_UNLINK };
typedef struct {
    int kind;
    char a[64], b[64]; /* names (rename: a -> b) */
    int id;            /* the file created, moved or unlinked */
} sdop_t;

#define SIM_NAMES 256
#define SIM_FDS   4096
typedef struct {
    char name[64];
    int id; /* index in files */
} sent_t;

typedef struct {
    sent_t e[SIM_NAMES];
    int n;
} sns_t;

static struct {
    pthread_mutex_t mu;
    char dir[256];
    sfile_t *files;
    int n_files, cap_files;
    sns_t cur, dur; /* namespace now / at the last directory fsync */
    sdop_t dops[1024];
    int n_dops;
    int fd_id[SIM_FDS]; /* -1 untracked, -2 the directory, else a file id */
    long seq, crash_at; /* crash_at 0: none */
    bool crashed;
    uint64_t rng;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int64_t rnd_in(uint64_t *s, int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

static int ns_find(const sns_t *ns, const char *name)
{
    for (int i = 0; i < ns->n; i++)
        if (!strcmp(ns->e[i].name, name))
            return i;
    return -1;
}

static void ns_set(sns_t *ns, const char *name, int id)
{
    int i = ns_find(ns, name);
    if (i < 0) {
        assert_true(ns->n < SIM_NAMES);
        i = ns->n++;
        snprintf(ns->e[i].name, sizeof(ns->e[i].name), "%s", name);
    }
    ns->e[i].id = id;
}

static void ns_del(sns_t *ns, const char *name)
{
    int i = ns_find(ns, name);
    if (i >= 0)
        ns->e[i] = ns->e[--ns->n];
}

static int new_file(void)
{
    if (S.n_files == S.cap_files) {
        S.cap_files = S.cap_files ? S.cap_files * 2 : 64;
        S.files = realloc(S.files, (size_t)S.cap_files * sizeof(*S.files));
        assert_non_null(S.files);
    }
    memset(&S.files[S.n_files], 0, sizeof(S.files[0]));
    return S.n_files++;
}

static void file_clear_ops(sfile_t *f)
{
    for (int i = 0; i < f->n_ops; i++)
        free(f->ops[i].data);
    f->n_ops = 0;
}

static void file_push(int id, int kind, int64_t off, int64_t len, const void *data)
{
    sfile_t *f = &S.files[id];
    if (f->n_ops == f->cap_ops) {
        f->cap_ops = f->cap_ops ? f->cap_ops * 2 : 16;
        f->ops = realloc(f->ops, (size_t)f->cap_ops * sizeof(*f->ops));
        assert_non_null(f->ops);
    }
    sop_t *o = &f->ops[f->n_ops++];
    o->kind = kind;
    o->off = off;
    o->len = len;
    o->data = NULL;
    if (kind == OP_WRITE) {
        o->data = malloc((size_t)len + 1);
        memcpy(o->data, data, (size_t)len);
    }
}

static void dop_push(int kind, const char *a, const char *b, int id)
{
    assert_true(S.n_dops < (int)(sizeof(S.dops) / sizeof(S.dops[0])));
    sdop_t *d = &S.dops[S.n_dops++];
    d->kind = kind;
    d->id = id;
    snprintf(d->a, sizeof(d->a), "%s", a);
    snprintf(d->b, sizeof(d->b), "%s", b ? b : "");
}

/* The name of path inside the simulated directory, or NULL. */
static const char *sim_name(const char *path)
{
    size_t l = strlen(S.dir);
    if (strncmp(path, S.dir, l) != 0 || path[l] != '/' || strchr(path + l + 1, '/'))
        return NULL;
    return path + l + 1;
}

/* Count one operation; false (errno EIO) once crashed. Called with mu held. */
static bool sim_step(void)
{
    if (!S.crashed && S.crash_at > 0 && ++S.seq >= S.crash_at)
        S.crashed = true;
    else if (!S.crashed)
        S.seq++;
    if (S.crashed)
        errno = EIO;
    return !S.crashed;
}

static int fd_id(int fd)
{
    return fd >= 0 && fd < SIM_FDS ? S.fd_id[fd] : -1;
}

/* The real content of file fd (what a sync makes durable). */
static void snapshot(int fd, int id)
{
    sfile_t *f = &S.files[id];
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int rfd = open(proc, O_RDONLY | O_CLOEXEC); /* fd may be write-only */
    assert_true(rfd >= 0);
    struct stat st;
    assert_int_equal(fstat(rfd, &st), 0);
    free(f->img);
    f->img = malloc((size_t)st.st_size + 1);
    f->img_len = st.st_size;
    assert_int_equal(pread(rfd, f->img, (size_t)st.st_size, 0), st.st_size);
    close(rfd);
    file_clear_ops(f);
}

static int sim_open(const char *path, int flags, mode_t mode)
{
    pthread_mutex_lock(&S.mu);
    int fd = -1;
    if (sim_step()) {
        const char *name = sim_name(path);
        int at = name ? ns_find(&S.cur, name) : -1;
        fd = open(path, flags, mode);
        if (fd >= 0 && fd < SIM_FDS) {
            S.fd_id[fd] = -1;
            if ((flags & O_DIRECTORY) && !strcmp(path, S.dir)) {
                S.fd_id[fd] = -2;
            } else if (name) {
                int id = at >= 0 ? S.cur.e[at].id : -1;
                if (id < 0) {
                    id = new_file();
                    ns_set(&S.cur, name, id);
                    dop_push(DOP_CREATE, name, NULL, id);
                } else if (flags & O_TRUNC) {
                    file_push(id, OP_TRUNC, 0, 0, NULL);
                }
                S.fd_id[fd] = id;
            }
        }
    }
    pthread_mutex_unlock(&S.mu);
    return fd;
}

static ssize_t sim_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    pthread_mutex_lock(&S.mu);
    ssize_t w = -1;
    if (sim_step()) {
        w = pwrite(fd, buf, n, off);
        if (w > 0 && fd_id(fd) >= 0)
            file_push(fd_id(fd), OP_WRITE, off, w, buf);
    }
    pthread_mutex_unlock(&S.mu);
    return w;
}

static int sim_ftruncate(int fd, off_t len)
{
    pthread_mutex_lock(&S.mu);
    int rc = -1;
    if (sim_step()) {
        rc = ftruncate(fd, len);
        if (rc == 0 && fd_id(fd) >= 0)
            file_push(fd_id(fd), OP_TRUNC, 0, len, NULL);
    }
    pthread_mutex_unlock(&S.mu);
    return rc;
}

static int sim_sync(int fd, bool is_fsync)
{
    (void)is_fsync;
    pthread_mutex_lock(&S.mu);
    int rc = -1;
    if (sim_step()) {
        rc = 0;
        int id = fd_id(fd);
        if (id >= 0) {
            snapshot(fd, id);
        } else if (id == -2) {
            S.dur = S.cur;
            S.n_dops = 0;
        }
    }
    pthread_mutex_unlock(&S.mu);
    return rc;
}

static int sim_fdatasync(int fd)
{
    return sim_sync(fd, false);
}

static int sim_fsync(int fd)
{
    return sim_sync(fd, true);
}

static int sim_rename(const char *from, const char *to)
{
    pthread_mutex_lock(&S.mu);
    int rc = -1;
    if (sim_step()) {
        rc = rename(from, to);
        const char *a = sim_name(from), *b = sim_name(to);
        int i = a ? ns_find(&S.cur, a) : -1;
        if (rc == 0 && i >= 0 && b) {
            int id = S.cur.e[i].id;
            ns_del(&S.cur, a);
            ns_set(&S.cur, b, id);
            dop_push(DOP_RENAME, a, b, id);
        }
    }
    pthread_mutex_unlock(&S.mu);
    return rc;
}

static int sim_unlink(const char *path)
{
    pthread_mutex_lock(&S.mu);
    int rc = -1;
    if (sim_step()) {
        rc = unlink(path);
        const char *a = sim_name(path);
        int i = a ? ns_find(&S.cur, a) : -1;
        if (rc == 0 && i >= 0) {
            dop_push(DOP_UNLINK, a, NULL, S.cur.e[i].id);
            ns_del(&S.cur, a);
        }
    }
    pthread_mutex_unlock(&S.mu);
    return rc;
}

static const plog_sys_t k_sim = {sim_pwrite, sim_fdatasync, sim_ftruncate, sim_open,
                                 sim_fsync,  sim_rename,    sim_unlink};

/* Start tracking dir (which exists and is empty). */
static void sim_reset(const char *dir)
{
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < S.n_files; i++) {
        file_clear_ops(&S.files[i]);
        free(S.files[i].ops);
        free(S.files[i].img);
    }
    S.n_files = 0;
    snprintf(S.dir, sizeof(S.dir), "%s", dir);
    S.cur.n = S.dur.n = 0;
    S.n_dops = 0;
    for (int i = 0; i < SIM_FDS; i++)
        S.fd_id[i] = -1;
    S.seq = S.crash_at = 0;
    S.crashed = false;
    pthread_mutex_unlock(&S.mu);
}

/* Crash at the n-th operation from now (0: never). */
static void sim_arm(long n)
{
    pthread_mutex_lock(&S.mu);
    S.crash_at = n > 0 ? S.seq + n : 0;
    pthread_mutex_unlock(&S.mu);
}

static bool sim_crashed(void)
{
    pthread_mutex_lock(&S.mu);
    bool c = S.crashed;
    pthread_mutex_unlock(&S.mu);
    return c;
}

static void sim_crash_now(void)
{
    pthread_mutex_lock(&S.mu);
    S.crashed = true;
    pthread_mutex_unlock(&S.mu);
}

/* After a kill: the process is gone, the page cache (the real files) stays. */
static void sim_restart(void)
{
    pthread_mutex_lock(&S.mu);
    S.crashed = false;
    S.crash_at = 0;
    pthread_mutex_unlock(&S.mu);
}

static void img_fit(uint8_t **img, int64_t *len, int64_t want)
{
    if (want <= *len)
        return;
    *img = realloc(*img, (size_t)want + 1);
    memset(*img + *len, 0, (size_t)(want - *len));
    *len = want;
}

/* Apply op to an image; torn: only random 512-byte sectors of a write land. */
static void img_apply(uint8_t **img, int64_t *len, const sop_t *o, bool torn, uint64_t *rng)
{
    if (o->kind == OP_TRUNC) {
        img_fit(img, len, o->len);
        *len = o->len;
        return;
    }
    if (!torn) {
        img_fit(img, len, o->off + o->len);
        memcpy(*img + o->off, o->data, (size_t)o->len);
        return;
    }
    for (int64_t sec = o->off / 512; sec * 512 < o->off + o->len; sec++) {
        if (rnd(rng) & 1)
            continue;
        int64_t a = sec * 512 > o->off ? sec * 512 : o->off;
        int64_t b = (sec + 1) * 512 < o->off + o->len ? (sec + 1) * 512 : o->off + o->len;
        img_fit(img, len, b);
        memcpy(*img + a, o->data + (a - o->off), (size_t)(b - a));
    }
}

/* Create dir, or delete every file in it (no fork: trials are many). */
static void empty_dir(const char *dir)
{
    if (mkdir(dir, 0755) == 0)
        return;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            assert_int_equal(unlinkat(dirfd(d), e->d_name, 0), 0);
    closedir(d);
}

/* Power cut: rewrite the directory as the disk would hold it. All the log's
 * files must be closed. */
static void sim_power_cut(uint64_t *rng)
{
    pthread_mutex_lock(&S.mu);
    sns_t ns = S.dur;
    int keep = (int)rnd_in(rng, 0, S.n_dops);
    for (int i = 0; i < keep; i++) {
        const sdop_t *d = &S.dops[i];
        if (d->kind == DOP_CREATE) {
            ns_set(&ns, d->a, d->id);
        } else if (d->kind == DOP_RENAME) {
            ns_del(&ns, d->a);
            ns_set(&ns, d->b, d->id);
        } else {
            ns_del(&ns, d->a);
        }
    }
    /* Wipe the real directory, then write what the disk holds. */
    empty_dir(S.dir);
    for (int i = 0; i < ns.n; i++) {
        sfile_t *f = &S.files[ns.e[i].id];
        int mode = (int)rnd_in(rng, 0, 2); /* drop, prefix, prefix + torn write */
        int k = mode == 0 || f->n_ops == 0 ? 0 : (int)rnd_in(rng, 0, f->n_ops);
        for (int j = 0; j < k; j++)
            img_apply(&f->img, &f->img_len, &f->ops[j], false, rng);
        if (mode == 2 && k < f->n_ops)
            img_apply(&f->img, &f->img_len, &f->ops[k], true, rng);
        file_clear_ops(f);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", S.dir, ns.e[i].name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, f->img ? f->img : (uint8_t *)"", (size_t)f->img_len, 0),
                         f->img_len);
        close(fd);
    }
    /* Files no name holds any more are gone. */
    S.cur = S.dur = ns;
    S.n_dops = 0;
    for (int i = 0; i < SIM_FDS; i++)
        S.fd_id[i] = -1;
    S.crashed = false;
    S.crash_at = 0;
    pthread_mutex_unlock(&S.mu);
}

/* Whether the file at path has bytes not synced, or a name not synced. */
static bool sim_unsynced(const char *path)
{
    pthread_mutex_lock(&S.mu);
    const char *name = sim_name(path);
    int at = name ? ns_find(&S.cur, name) : -1;
    bool r = at < 0 || S.files[S.cur.e[at].id].n_ops > 0 || ns_find(&S.dur, name) < 0 ||
             S.dur.e[ns_find(&S.dur, name)].id != S.cur.e[at].id;
    pthread_mutex_unlock(&S.mu);
    return r;
}

/* ---- The workload and its checks ---- */

#define MAX_RECS 512

/* A batch the test appended: where the log put it and how to rebuild it. */
typedef struct {
    int64_t base, end; /* [base, end) */
    uint64_t seed;
    int n;
    size_t vlen;
    bool acked;   /* acks=all answered: must survive */
    bool wacked;  /* acks=1 answered (written): must survive a kill, not a power cut */
    bool exposed; /* returned by a read: its offsets must never change */
    plog_waiter_t w, ww;
} rec_t;

typedef struct {
    uv_loop_t loop;
    plog_env_t *env;
    plog_shard_t *sh;
    char root[128], dir[256];
    plog_config_t cfg;
    plog_t *log;
    rec_t recs[MAX_RECS];
    int n_recs;
    uint64_t rng, next_seed;
    int64_t removed_upto; /* DeleteRecords / retention may have removed offsets below */
    uint64_t trial_seed;
    long n_crashes, n_power, n_kills, n_recovery_crashes, n_acked;
} tc_t;

#define CHECK(tc, cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "plog_crash_test: seed=%" PRIu64 ": ", (tc)->trial_seed);              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n  reproduce: PLOG_CRASH_SEED=%" PRIu64 " PLOG_CRASH_TRIALS=1\n",    \
                    (tc)->trial_seed);                                                             \
            fail_msg("crash invariant broken (seed %" PRIu64 ")", (tc)->trial_seed);               \
        }                                                                                          \
    } while (0)

static void pump(tc_t *tc)
{
    for (int i = 0; i < 3; i++)
        uv_run(&tc->loop, UV_RUN_NOWAIT);
}

/* One group commit: the flusher's queued work, then the completions. */
static void flush_step(tc_t *tc)
{
    plog_env_flush_step(tc->env);
    pump(tc);
}

static void on_ack(void *arg, int status)
{
    rec_t *r = arg;
    if (status == 0)
        r->acked = true;
}

static void on_wack(void *arg, int status)
{
    rec_t *r = arg;
    if (status == 0)
        r->wacked = true;
}

/* A power cut: what acks=1 acknowledged may be gone with the page cache. */
static void power_cut(tc_t *tc)
{
    sim_power_cut(&tc->rng);
    tc->n_power++;
    for (int i = 0; i < tc->n_recs; i++)
        tc->recs[i].wacked = false;
}

/* Whether the log holds rec's batch, byte for byte, at rec's offsets. */
static bool holds(tc_t *tc, const rec_t *r)
{
    int64_t at = r->base > plog_start_offset(tc->log) ? r->base : plog_start_offset(tc->log);
    if (at >= r->end)
        return true; /* removed by DeleteRecords/retention: checked elsewhere */
    plog_slice_t s;
    if (plog_read(tc->log, at, 1, &s) != 0 || s.len == 0)
        return false;
    bool ok = s.first_offset == r->base && s.next_offset == r->end;
    size_t len;
    uint8_t *exp = tbatch_build(r->n, r->vlen, r->seed, 1000, &len);
    uint8_t *got = ok ? malloc((size_t)s.len) : NULL;
    ok = ok && (int64_t)len == s.len && plog_slice_pread(&s, got) == 0 &&
         !memcmp(got + 8, exp + 8, 4) && !memcmp(got + 16, exp + 16, len - 16);
    free(got);
    free(exp);
    plog_slice_release(&s);
    return ok;
}

static rec_t *rec_at(tc_t *tc, int64_t base)
{
    for (int i = 0; i < tc->n_recs; i++)
        if (tc->recs[i].base == base)
            return &tc->recs[i];
    return NULL;
}

/* Read everything visible: each batch must be a known one, whole, below the
 * high watermark; it is exposed from now on. */
static void read_all(tc_t *tc)
{
    int64_t hw = plog_high_watermark(tc->log);
    CHECK(tc, hw <= plog_end_offset(tc->log), "high watermark %" PRId64 " past end %" PRId64, hw,
          plog_end_offset(tc->log));
    int64_t off = plog_start_offset(tc->log);
    while (off < hw) {
        plog_slice_t s;
        int rc = plog_read(tc->log, off, 1 << 16, &s);
        CHECK(tc, rc == 0, "read at %" PRId64 " failed: %s", off, st_strerror(rc));
        CHECK(tc, s.len > 0, "read at %" PRId64 " below hw %" PRId64 " returned nothing", off, hw);
        CHECK(tc, s.next_offset <= hw, "read returned offsets up to %" PRId64 " past hw %" PRId64,
              s.next_offset, hw);
        uint8_t *buf = malloc((size_t)s.len);
        assert_int_equal(plog_slice_pread(&s, buf), 0);
        for (int64_t pos = 0; pos < s.len;) {
            plog_batch_hdr_t h;
            assert_int_equal(plog_batch_parse_hdr(buf + pos, (size_t)(s.len - pos), &h), 0);
            rec_t *r = rec_at(tc, h.base_offset);
            CHECK(tc, r != NULL, "read a batch at %" PRId64 " that was never appended there",
                  h.base_offset);
            CHECK(tc, holds(tc, r), "batch at %" PRId64 " read back different", r->base);
            r->exposed = true;
            pos += h.batch_length + PLOG_BATCH_LOG_OVERHEAD;
        }
        free(buf);
        off = s.next_offset;
        plog_slice_release(&s);
    }
    plog_slice_t s;
    assert_int_equal(plog_read(tc->log, hw, 1 << 16, &s), 0);
    CHECK(tc, s.len == 0, "read at the high watermark returned data");
}

/* The uploader's view: every sealed segment it may take is fully synced. */
static void check_uploadable(tc_t *tc)
{
    plog_seg_info_t si;
    for (int64_t from = 0; plog_sealed_get(tc->log, from, &si) == 0;) {
        CHECK(tc, !sim_unsynced(si.path), "uploader offered %s with unsynced data", si.path);
        CHECK(tc, si.next_offset <= plog_durable_offset(tc->log),
              "uploader offered offsets up to %" PRId64 " past the durable end", si.next_offset);
        from = si.next_offset;
        plog_seg_info_release(&si);
    }
}

static int append_one(tc_t *tc)
{
    if (tc->n_recs == MAX_RECS)
        return -1;
    rec_t *r = &tc->recs[tc->n_recs];
    memset(r, 0, sizeof(*r));
    r->seed = ++tc->next_seed;
    r->n = (int)rnd_in(&tc->rng, 1, 4);
    r->vlen = (size_t)rnd_in(&tc->rng, 1, 300);
    size_t len;
    uint8_t *b = tbatch_build(r->n, r->vlen, r->seed, 1000, &len);
    plog_append_info_t info;
    int rc = plog_append(tc->log, b, len, 0, 1000, &info, NULL);
    free(b);
    if (rc != 0)
        return rc;
    r->base = info.base_offset;
    r->end = info.end_offset;
    tc->n_recs++;
    plog_wait_acked(tc->log, &r->w, r->end, on_ack, r);
    plog_wait_written(tc->log, &r->ww, r->end, on_wack, r);
    return 0;
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static void on_deleted(void *arg, int status)
{
    *(int *)arg = status == 0 ? 1 : 2;
}

static int open_log(tc_t *tc)
{
    char err[256] = "";
    int rc = plog_open(tc->sh, tc->dir, &tc->cfg, 1000, &tc->log, err, sizeof(err));
    if (rc != 0)
        tc->log = NULL;
    return rc;
}

static void close_log(tc_t *tc)
{
    int closed = 0;
    plog_close(tc->log, on_closed, &closed);
    while (!closed)
        flush_step(tc);
    tc->log = NULL;
}

/* After a recovery: the invariants, then forget the batches that are gone
 * (never acknowledged nor read, so they may vanish). */
static void verify(tc_t *tc)
{
    int64_t start = plog_start_offset(tc->log), end = plog_end_offset(tc->log);
    int64_t hw = plog_high_watermark(tc->log);
    CHECK(tc, start <= tc->removed_upto || start == 0,
          "log start %" PRId64 " beyond what was removed (%" PRId64 ")", start, tc->removed_upto);
    int kept = 0;
    for (int i = 0; i < tc->n_recs; i++) {
        rec_t *r = &tc->recs[i];
        bool here = r->end <= end && holds(tc, r);
        const char *what = r->acked    ? "acknowledged"
                           : r->wacked ? "written-acknowledged (acks=1, then a kill)"
                                       : "read";
        if (r->acked || r->wacked || r->exposed) {
            CHECK(tc, here,
                  "%s batch [%" PRId64 ",%" PRId64 ") lost (log [%" PRId64 ",%" PRId64
                  "), hw %" PRId64 ")",
                  what, r->base, r->end, start, end, hw);
            CHECK(tc, r->end <= hw || r->end <= start,
                  "%s batch [%" PRId64 ",%" PRId64 ") above the high watermark %" PRId64, what,
                  r->base, r->end, hw);
        }
        if (here && r->end > start) {
            tc->recs[kept] = *r;
            tc->recs[kept].w.next = tc->recs[kept].ww.next = NULL;
            kept++;
        }
    }
    tc->n_recs = kept;
    check_uploadable(tc);
}

/* Recover; a crash may strike again during recovery. */
static void recover(tc_t *tc, bool may_crash)
{
    for (int attempt = 0;; attempt++) {
        if (may_crash && attempt == 0 && rnd_in(&tc->rng, 0, 2) == 0)
            sim_arm(rnd_in(&tc->rng, 1, 24));
        int rc = open_log(tc);
        sim_arm(0);
        if (rc == 0 && !sim_crashed())
            break;
        CHECK(tc, attempt < 3, "recovery keeps failing: %s", st_strerror(rc));
        if (rc == 0)
            close_log(tc);
        tc->n_recovery_crashes++;
        if (rnd_in(&tc->rng, 0, 1)) {
            power_cut(tc);
        } else {
            sim_restart();
            tc->n_kills++;
        }
    }
    verify(tc);
}

/* Idempotent producers retry what was not acknowledged: Produce answers a
 * duplicate once the original is acknowledgeable (kh_produce: plog_wait_acked
 * on the batch's end). */
static void retry_unacked(tc_t *tc)
{
    for (int i = 0; i < tc->n_recs; i++) {
        rec_t *r = &tc->recs[i];
        if (!r->acked)
            plog_wait_acked(tc->log, &r->w, r->end, on_ack, r);
    }
}

static void trial(tc_t *tc, uint64_t seed)
{
    tc->trial_seed = seed;
    tc->rng = seed;
    tc->n_recs = 0;
    tc->removed_upto = 0;
    empty_dir(tc->dir);
    sim_reset(tc->dir);
    plog_config_default(&tc->cfg);
    tc->cfg.segment_bytes = rnd_in(&tc->rng, 400, 3000);
    /* Sometimes no index entries at all: recovery then rewrites nothing. */
    tc->cfg.index_interval_bytes =
        rnd_in(&tc->rng, 0, 2) ? (int32_t)rnd_in(&tc->rng, 0, 600) : INT32_MAX / 2;
    tc->cfg.retention_bytes = rnd_in(&tc->rng, 0, 1) ? -1 : rnd_in(&tc->rng, 1000, 6000);
    tc->cfg.retention_ms = -1;
    assert_int_equal(open_log(tc), 0);

    /* Phase 1: a workload until the crash point. */
    sim_arm(rnd_in(&tc->rng, 1, 220));
    for (int step = 0; step < 80 && !sim_crashed(); step++) {
        int64_t what = rnd_in(&tc->rng, 0, 99);
        if (what < 45) {
            int k = (int)rnd_in(&tc->rng, 1, 3);
            for (int i = 0; i < k && append_one(tc) == 0; i++)
                ;
        } else if (what < 70) {
            flush_step(tc);
        } else if (what < 78) {
            read_all(tc);
        } else if (what < 83) {
            int rc = plog_roll(tc->log, 1000);
            (void)rc; /* fails once crashed */
        } else if (what < 88) {
            (void)plog_tick(tc->log, 2000);
            if (plog_start_offset(tc->log) > tc->removed_upto)
                tc->removed_upto = plog_start_offset(tc->log);
        } else if (what < 93) {
            int64_t hw = plog_high_watermark(tc->log), start = plog_start_offset(tc->log);
            int64_t to = rnd_in(&tc->rng, start, hw);
            int done = 0;
            if (to > tc->removed_upto)
                tc->removed_upto = to;
            if (plog_delete_records(tc->log, to, on_deleted, &done) == 0)
                while (!done)
                    uv_run(&tc->loop, UV_RUN_ONCE);
        } else {
            check_uploadable(tc);
        }
        if (!sim_crashed())
            read_all(tc); /* cheap at this size: every step checks the exposure rule */
    }
    for (int i = 0; i < tc->n_recs; i++)
        tc->n_acked += tc->recs[i].acked;
    sim_crash_now();
    close_log(tc);
    tc->n_crashes++;
    bool power = rnd_in(&tc->rng, 0, 1);
    if (power) {
        power_cut(tc);
    } else {
        sim_restart(); /* kill -9: the page cache stays, unsynced */
        tc->n_kills++;
    }

    /* Phase 2: recovery (maybe crashing again), retries, reads. */
    recover(tc, true);
    retry_unacked(tc);
    if (rnd_in(&tc->rng, 0, 1))
        flush_step(tc);
    read_all(tc);
    check_uploadable(tc);

    /* Phase 3: the power fails with no warning; nothing acknowledged or read
     * may be lost, no offset may be given to other data. */
    sim_crash_now();
    close_log(tc);
    power_cut(tc);
    recover(tc, false);
    for (int i = 0; i < 4; i++)
        assert_int_equal(append_one(tc), 0);
    flush_step(tc);
    read_all(tc);
    for (int i = 0; i < tc->n_recs; i++)
        CHECK(tc, !tc->recs[i].acked || holds(tc, &tc->recs[i]),
              "acknowledged batch at %" PRId64 " changed after new appends", tc->recs[i].base);
    /* Phase 4: a clean close makes everything durable (a restart then syncs
     * nothing): a power cut right after must lose nothing. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(append_one(tc), 0);
    int64_t end = plog_end_offset(tc->log);
    close_log(tc);
    power_cut(tc);
    recover(tc, false);
    CHECK(tc, plog_end_offset(tc->log) == end,
          "a clean close did not make the log durable: end %" PRId64 " after the cut, %" PRId64
          " before",
          plog_end_offset(tc->log), end);
    close_log(tc);
}

static void test_plog_crash_points(void **state)
{
    (void)state;
    tc_t *tc = calloc(1, sizeof(*tc));
    assert_int_equal(uv_loop_init(&tc->loop), 0);
    assert_int_equal(plog_env_new_manual(&tc->env), 0);
    assert_int_equal(plog_shard_new(tc->env, &tc->loop, &tc->sh), 0);
    /* tmpfs when there is one: the simulator needs no disk, and ext4's
     * rename/truncate heuristics would make every trial wait for writeback. */
    struct stat st;
    snprintf(tc->root, sizeof(tc->root), "%s/plog_crash.XXXXXX",
             stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                 ? "/dev/shm"
                 : "/tmp");
    assert_non_null(mkdtemp(tc->root));
    snprintf(tc->dir, sizeof(tc->dir), "%s/t-0", tc->root);
    plog_set_sys(&k_sim);

    const char *e = getenv("PLOG_CRASH_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 10) : 20261204;
    e = getenv("PLOG_CRASH_TRIALS");
    long trials = e ? strtol(e, NULL, 10) : 2000;
    printf("plog_crash_test: seed=%" PRIu64 " trials=%ld (PLOG_CRASH_SEED, PLOG_CRASH_TRIALS)\n",
           seed, trials);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < trials; i++)
        trial(tc, seed + (uint64_t)i);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("plog_crash_test: %ld crash points (%ld power cuts, %ld kills, %ld during recovery), "
           "%ld batches acknowledged before a crash, %.1f s\n",
           tc->n_crashes, tc->n_power, tc->n_kills, tc->n_recovery_crashes, tc->n_acked,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

    plog_set_sys(NULL);
    plog_shard_free(tc->sh);
    uv_run(&tc->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&tc->loop), 0);
    plog_env_free(tc->env);
    empty_dir(tc->dir);
    assert_int_equal(rmdir(tc->dir), 0);
    assert_int_equal(rmdir(tc->root), 0);
    sim_reset("/nonexistent");
    free(tc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plog_crash_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
