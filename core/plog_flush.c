/* plog_flush.c - the writer and the flusher: segment writes and group commit
 * of partition logs, off the loops.
 * Data path: plog_append() validates, assigns offsets and copies the bytes
 * into a write request queued on its log here -> the env's writer thread
 * writes each queued log's requests in order (pwrite, page cache) as soon as
 * they are queued and reports how far the log is written -> the flusher
 * thread takes every log queued for a sync, writes what the writer has not
 * yet, snapshots how far it was written, fdatasyncs the dirty segments (and
 * the directory after a segment was created) -> both post their reports to
 * the log's shard, whose wake-up (st_wake_t: an eventfd, no spinning) fires
 * the written and the durability waiters (plog__on_done). A shard loop never
 * writes a segment: on this ext4 a pwrite waits for the inode lock an
 * fdatasync of the same file holds, up to tens of milliseconds; the writer
 * may wait there, the loop does not. A separate writer (not the flusher
 * writing before each sync) lets acks=1 and write caching be answered
 * without waiting for the sync in flight (bench/REPORT.md).
 * Invariants: 1. a log's writes are made in append order: whoever writes
 *                (writer or flusher) holds the log's wr_mu from taking the
 *                queued requests to publishing the written end; after a
 *                write fails none follows (the log fails);
 *             2. durable_end is the written_end read *before* fdatasync, so
 *                every byte below it was written before the sync began; the
 *                sync snapshot and the taking of the writes still queued
 *                happen in one critical section, so a sync never claims
 *                (recovery point, sealed index) bytes queued but not written;
 *             3. a log is in the sync queue at most once (its `queued` flag),
 *                in the write queue at most once (`wqueued`); appends during
 *                a round queue it again;
 *             4. with write caching a log waits in the delayed list (at most
 *                once, `delayed`) until flush.ms passed, then is synced; its
 *                writes are made at once;
 *             5. the bytes queued in an env never exceed its cap by more than
 *                one append (plog__wr_reserve blocks the appending loop).
 * A manual env (tests) has neither thread: plog_env_flush_step() runs the
 * writes, then the syncs. Slow jobs (unlinking deleted segments) run on the
 * flusher, in order. */
#include "core/plog_int.h"
#include "core/st_assert.h"
#include "core/st_log.h"
#include "core/st_metrics.h"
#include "core/st_sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct job {
    struct job *next;
    void (*fn)(void *);
    void *arg;
} job_t;

/* Default cap of the bytes queued for writing in one env. */
#define PLOG_WRITE_QUEUE_CAP (64 << 20)

struct plog_env {
    pthread_t thread; /* the flusher */
    pthread_t writer; /* the writer (threaded envs) */
    pthread_mutex_t mu;
    pthread_cond_t cond;        /* flusher work */
    pthread_cond_t wcond;       /* writer work (wqueue) */
    pthread_cond_t room;        /* wr_bytes went down */
    plog_t *queue, *queue_tail; /* logs awaiting a write + sync, guarded by mu */
    plog_t *wqueue;             /* logs awaiting a write (the writer's), guarded by mu */
    int64_t wr_bytes;           /* bytes queued for writing, guarded by mu */
    int64_t wr_cap;
    plog_t *delayed;         /* logs whose sync is due at due_ns, guarded by mu */
    job_t *jobs, *jobs_tail; /* guarded by mu */
    bool stop;
    bool manual;       /* no thread: plog_env_flush_step() runs the rounds (tests) */
    bool flusher_idle; /* the flusher waits for work, guarded by mu */
};

static void post(plog_t *log, const plog__done_t *rep)
{
    plog_shard_t *sh = log->sh;
    plog__done_t *d = malloc(sizeof(*d));
    ST_VERIFY(d != NULL); /* cannot report durability otherwise */
    *d = *rep;
    d->log = log;
    pthread_mutex_lock(&sh->mu);
    d->next = sh->done;
    sh->done = d;
    /* Claimed under mu (the loop cannot close the wake before it), written
     * after: the woken loop then finds mu free. */
    bool fire = st_wake_claim(&sh->wake);
    pthread_mutex_unlock(&sh->mu);
    if (fire)
        st_wake_fire(&sh->wake);
}

static void release_bytes(plog_env_t *env, int64_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&env->mu);
    env->wr_bytes -= n;
    pthread_cond_broadcast(&env->room);
    pthread_mutex_unlock(&env->mu);
}

/* Add seg (a new ref) to the set *v of *n (capacity *cap), once. */
static void segs_add(plog_seg_t ***v, int *n, int *cap, plog_seg_t *seg)
{
    for (int i = 0; i < *n; i++)
        if ((*v)[i] == seg)
            return;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 4;
        plog_seg_t **d = realloc(*v, (size_t)c * sizeof(*d));
        ST_VERIFY(d != NULL);
        *v = d;
        *cap = c;
    }
    plog__seg_ref(seg);
    (*v)[(*n)++] = seg;
}

static void add_dirty_locked(plog_t *log, plog_seg_t *seg)
{
    segs_add(&log->dirty, &log->n_dirty, &log->cap_dirty, seg);
}

/* Segments a sync covers (taken from the log, plus those its writes hit). */
typedef struct {
    plog_seg_t **v;
    int n, cap;
} segset_t;

/* pwrite all of it (a short write is retried: its error is the next call's). */
static int write_all(int fd, const uint8_t *p, int64_t len, int64_t off)
{
    while (len > 0) {
        errno = 0;
        ssize_t n = plog__sys->pwrite(fd, p, (size_t)len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 && errno ? -errno : -ENOSPC; /* 0: the device is full */
        p += n;
        len -= n;
        off += n;
    }
    return 0;
}

/* Write the requests w (taken from log, in order) unless skip (the log
 * already failed: they are dropped); stop at the first error. Publishes under
 * sync_mu how far the log is written; the segments written go to sync (the
 * caller's sync) or else to the log's dirty set. Frees w.
 * @return 0 or the write error. */
static int write_reqs(plog_t *log, plog__wr_t *w, bool skip, segset_t *sync)
{
    int err = 0;
    int64_t end = -1, bytes = 0, total = 0;
    plog__wr_t *first = w, *stop = NULL;
    for (; w && !skip; w = w->next) {
        err = write_all(w->seg->fd, w->data, w->len, w->pos);
        if (err) {
            ST_ERROR("plog", "segment write failed; the log fails path=%s.log pos=%lld err=%s",
                     w->seg->path, (long long)w->pos, st_strerror(err));
            stop = w;
            break;
        }
        atomic_fetch_sub(&w->seg->unwritten, w->len); /* readable from now on */
        end = w->end_offset;
        bytes = w->bytes;
    }
    pthread_mutex_lock(&log->sync_mu);
    for (plog__wr_t *x = first; x && x != stop && !skip; x = x->next) {
        if (sync)
            segs_add(&sync->v, &sync->n, &sync->cap, x->seg);
        else
            add_dirty_locked(log, x->seg);
    }
    if (end > log->written_end) {
        log->written_end = end;
        log->written_bytes = bytes;
    }
    if (err)
        log->wr_failed = true; /* no recovery point is written again either */
    pthread_mutex_unlock(&log->sync_mu);
    while (first) {
        plog__wr_t *n = first->next;
        total += first->len;
        plog__seg_unref(first->seg);
        free(first);
        first = n;
    }
    release_bytes(log->sh->env, total);
    return err;
}

/* Write what log has queued and report how far it is written (acks=1 and
 * write caching wait for that, not for the sync). With from_wqueue the
 * report ends its write-queue membership. */
static void write_log(plog_t *log, bool from_wqueue)
{
    pthread_mutex_lock(&log->wr_mu);
    pthread_mutex_lock(&log->sync_mu);
    plog__wr_t *w = log->wr_head;
    log->wr_head = log->wr_tail = NULL;
    bool skip = log->wr_failed;
    if (from_wqueue)
        log->wqueued = false;
    pthread_mutex_unlock(&log->sync_mu);
    if (!w && !from_wqueue) {
        pthread_mutex_unlock(&log->wr_mu);
        return;
    }
    /* Before a sync of the same round: report only when someone waits for
     * the write (acks=1, write caching); the sync's report carries it too. */
    bool report = from_wqueue || atomic_load(&log->want_written);
    int err = w ? write_reqs(log, w, skip, NULL) : 0;
    pthread_mutex_lock(&log->sync_mu);
    int64_t end = log->written_end;
    pthread_mutex_unlock(&log->sync_mu);
    pthread_mutex_unlock(&log->wr_mu);
    if (!report && !err)
        return;
    plog__done_t rep = {.written_end = end, .drop_ref = from_wqueue, .err = err};
    post(log, &rep);
}

/* Write every log of a write queue taken from the env (writer or manual round). */
static void write_wbatch(plog_t *wbatch)
{
    while (wbatch) {
        plog_t *next = wbatch->next_wqueued;
        write_log(wbatch, true); /* the write queue held one loop ref */
        wbatch = next;
    }
}

/* One sync of log, taken from the queue or (delayed) from the delayed list:
 * only that membership ends here (the log may be in both). What is still
 * queued is written first, taken in the same critical section as the
 * recovery point and directory flag (invariant 2). */
static void sync_log(plog_t *log, bool delayed)
{
    pthread_mutex_lock(&log->wr_mu); /* the writer is not between a take and its publish */
    pthread_mutex_lock(&log->sync_mu);
    plog__wr_t *w = log->wr_head;
    log->wr_head = log->wr_tail = NULL;
    segset_t set = {log->dirty, log->n_dirty, log->cap_dirty};
    log->dirty = NULL;
    log->n_dirty = log->cap_dirty = 0;
    bool skip = log->wr_failed;
    bool failed_before = log->sync_failed; /* an earlier sync failed */
    int64_t rp = log->sync_failed || log->wr_failed ? -1 : log->rp_pending;
    bool dir_dirty = log->dir_dirty;
    log->dir_dirty = false;
    log->rp_pending = -1;
    if (delayed)
        log->delayed = false;
    else
        log->queued = false;
    pthread_mutex_unlock(&log->sync_mu);
    /* Only what was queued before the snapshot: a roll meanwhile (a sealed
     * segment to index, a recovery point) waits for the next round. */
    int werr = w ? write_reqs(log, w, skip, &set) : 0;
    pthread_mutex_lock(&log->sync_mu);
    int64_t end = log->written_end, bytes = log->written_bytes;
    pthread_mutex_unlock(&log->sync_mu);
    pthread_mutex_unlock(&log->wr_mu);
    if (werr)
        rp = -1;
    plog_seg_t **dirty = set.v;
    int n = set.n;

    int err = 0;
    uint64_t t0_ns = uv_hrtime();
    for (int i = 0; i < n; i++) {
        plog_seg_t *s = dirty[i];
        if (!err && plog__sys->fdatasync(s->fd) != 0) {
            err = -errno;
            ST_ERROR("plog", "fdatasync failed path=%s.log err=%s", s->path, st_strerror(err));
        }
        /* Sealed (or closing): its index is saved from memory and synced,
         * after the data it points into, so a restart loads it. A failure costs
         * a rebuild at the next start (no recovery point claims it). Not after
         * a failed write: the index may point past what the file holds. */
        int irc;
        if (!err && !werr && !skip && atomic_exchange(&s->sync_idx, false) &&
            atomic_load(&s->idx_unsynced) && (irc = plog__idx_save(s)) != 0) {
            ST_WARN("plog", "cannot save index files path=%s: %s", s->path, st_strerror(irc));
            rp = -1;
        }
        plog__seg_unref(s);
    }
    free(dirty);
    if (!err && dir_dirty && (err = plog__fsync_dir(log)) != 0) {
        ST_ERROR("plog", "fsync of directory failed dir=%s err=%s", log->dir, st_strerror(err));
    }
    if (err) {
        pthread_mutex_lock(&log->sync_mu);
        log->sync_failed = true;
        pthread_mutex_unlock(&log->sync_mu);
    }
    /* A roll or a close synced segments with their indexes and directory
     * entries: only now may the recovery point say so (a restart then
     * verifies and syncs only what follows). Its rename syncs the directory. */
    if (!err && rp >= 0 && rp != log->rp_written) {
        int rc = plog__write_rp(log, rp, true);
        if (rc != 0)
            ST_WARN("plog", "cannot write the recovery point dir=%s: %s", log->dir,
                    st_strerror(rc));
        pthread_mutex_lock(&log->sync_mu); /* the cleaner's planning reads it on the loop */
        log->rp_written = rc == 0 ? rp : -1;
        pthread_mutex_unlock(&log->sync_mu);
    }
    if (n > 0 || dir_dirty)
        st_metric_observe_ns(ST_H_FSYNC_LATENCY, 0, uv_hrtime() - t0_ns);
    /* After a failed sync nothing is claimed durable again (what it did not
     * sync may be lost: a later sync cannot vouch for it). A failed write
     * still lets the writes before it become durable. */
    bool synced = !err && !failed_before;
    plog__done_t rep = {.written_end = end,
                        .durable_end = end,
                        .durable_bytes = bytes,
                        .synced = synced,
                        .drop_ref = true,
                        .err = werr                    ? werr
                               : err                   ? err
                               : failed_before || skip ? ST_E_FAILED
                                                       : 0};
    post(log, &rep);
}

/* Take the delayed logs whose flush is due (with mu held); set *wait_ns to
 * the time until the next one, or 0 when none waits. */
static plog_t *take_due(plog_env_t *env, uint64_t *wait_ns)
{
    uint64_t now = uv_hrtime();
    plog_t *due = NULL;
    *wait_ns = 0;
    for (plog_t **p = &env->delayed; *p;) {
        plog_t *l = *p;
        if (l->due_ns <= now) {
            *p = l->next_delayed;
            l->next_delayed = due;
            due = l;
        } else {
            if (!*wait_ns || l->due_ns - now < *wait_ns)
                *wait_ns = l->due_ns - now;
            p = &l->next_delayed;
        }
    }
    return due;
}


/* One round: the writes of every log taken (the write queue's and the sync
 * queue's, so no log's writes wait behind another's fdatasync), then the
 * syncs taken from the queue and the delayed list, then the jobs. Called
 * without mu. */
static void run_round(plog_t *wbatch, plog_t *batch, plog_t *due, job_t *jobs)
{
    write_wbatch(wbatch);
    for (plog_t *l = batch; l; l = l->next_queued)
        write_log(l, false);
    while (batch) {
        plog_t *next = batch->next_queued;
        sync_log(batch, false);
        batch = next;
    }
    while (due) {
        plog_t *next = due->next_delayed;
        sync_log(due, true); /* the delayed list held one loop ref */
        due = next;
    }
    while (jobs) {
        job_t *next = jobs->next;
        jobs->fn(jobs->arg);
        free(jobs);
        jobs = next;
    }
}

static void *flusher_main(void *arg)
{
    plog_env_t *env = arg;
    st_sched_apply(); /* acks wait for it: a short slice (core/st_sched.h) */
    pthread_mutex_lock(&env->mu);
    for (;;) {
        uint64_t wait_ns;
        plog_t *due = take_due(env, &wait_ns);
        while (!due && !env->queue && !env->jobs && !env->stop) {
            env->flusher_idle = true;
            if (wait_ns) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                uint64_t ns = (uint64_t)ts.tv_nsec + wait_ns;
                ts.tv_sec += (time_t)(ns / 1000000000u);
                ts.tv_nsec = (long)(ns % 1000000000u);
                pthread_cond_timedwait(&env->cond, &env->mu, &ts);
            } else {
                pthread_cond_wait(&env->cond, &env->mu);
            }
            env->flusher_idle = false;
            due = take_due(env, &wait_ns);
        }
        if (env->stop && !due && !env->queue && !env->jobs) {
            if (!env->delayed)
                break;
            due = env->delayed; /* stopping: flush what still waits */
            env->delayed = NULL;
        }
        plog_t *batch = env->queue;
        env->queue = env->queue_tail = NULL;
        job_t *jobs = env->jobs;
        env->jobs = env->jobs_tail = NULL;
        pthread_mutex_unlock(&env->mu);
        run_round(NULL, batch, due, jobs);
        pthread_mutex_lock(&env->mu);
    }
    pthread_mutex_unlock(&env->mu);
    return NULL;
}

/* The writer: writes every log of the write queue as soon as it is queued,
 * whatever the flusher does (its fdatasync of another log, or of the same
 * file: a pwrite then waits for the inode lock here, not on a loop). */
static void *writer_main(void *arg)
{
    plog_env_t *env = arg;
    st_sched_apply();
    pthread_mutex_lock(&env->mu);
    for (;;) {
        while (!env->wqueue && !env->stop)
            pthread_cond_wait(&env->wcond, &env->mu);
        if (!env->wqueue)
            break; /* stopping: every log closed, nothing queued */
        plog_t *wbatch = env->wqueue;
        env->wqueue = NULL;
        pthread_mutex_unlock(&env->mu);
        write_wbatch(wbatch);
        pthread_mutex_lock(&env->mu);
    }
    pthread_mutex_unlock(&env->mu);
    return NULL;
}

static void env_destroy(plog_env_t *env)
{
    pthread_cond_destroy(&env->room);
    pthread_cond_destroy(&env->wcond);
    pthread_cond_destroy(&env->cond);
    pthread_mutex_destroy(&env->mu);
    free(env);
}

/* An env without its threads (NULL when out of memory). */
static plog_env_t *env_alloc(bool manual)
{
    plog_env_t *env = calloc(1, sizeof(*env));
    if (!env)
        return NULL;
    env->manual = manual;
    env->wr_cap = PLOG_WRITE_QUEUE_CAP;
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cond, NULL);
    pthread_cond_init(&env->room, NULL);
    pthread_cond_init(&env->wcond, NULL);
    return env;
}

int plog_env_new(plog_env_t **out)
{
    plog_env_t *env = env_alloc(false);
    if (!env)
        return ST_E_NOMEM;
    int rc = pthread_create(&env->thread, NULL, flusher_main, env);
    if (rc != 0) {
        env_destroy(env);
        return -rc;
    }
    pthread_setname_np(env->thread, "plog-flusher"); /* seen by perf, top -H */
    rc = pthread_create(&env->writer, NULL, writer_main, env);
    if (rc != 0) {
        pthread_mutex_lock(&env->mu);
        env->stop = true;
        pthread_cond_signal(&env->cond);
        pthread_mutex_unlock(&env->mu);
        pthread_join(env->thread, NULL);
        env_destroy(env);
        return -rc;
    }
    pthread_setname_np(env->writer, "plog-writer");
    *out = env;
    return 0;
}

int plog_env_new_manual(plog_env_t **out)
{
    plog_env_t *env = env_alloc(true);
    if (!env)
        return ST_E_NOMEM;
    *out = env;
    return 0;
}

bool plog_env_flush_step(plog_env_t *env)
{
    pthread_mutex_lock(&env->mu);
    plog_t *batch = env->queue, *due = env->delayed; /* delayed ones are due at once */
    plog_t *wbatch = env->wqueue;
    job_t *jobs = env->jobs;
    env->queue = env->queue_tail = env->delayed = env->wqueue = NULL;
    env->jobs = env->jobs_tail = NULL;
    pthread_mutex_unlock(&env->mu);
    run_round(wbatch, batch, due, jobs);
    return batch || due || wbatch || jobs;
}

void plog_env_free(plog_env_t *env)
{
    if (!env)
        return;
    if (env->manual) {
        while (plog_env_flush_step(env))
            ;
    } else {
        pthread_mutex_lock(&env->mu);
        env->stop = true;
        pthread_cond_signal(&env->cond);
        pthread_cond_signal(&env->wcond);
        pthread_mutex_unlock(&env->mu);
        pthread_join(env->thread, NULL);
        pthread_join(env->writer, NULL);
    }
    ST_ASSERT(env->wr_bytes == 0);
    env_destroy(env);
}

void plog_env_set_write_cap(plog_env_t *env, int64_t bytes)
{
    pthread_mutex_lock(&env->mu);
    env->wr_cap = bytes;
    pthread_cond_broadcast(&env->room);
    pthread_mutex_unlock(&env->mu);
}

bool plog_env_flusher_idle(plog_env_t *env)
{
    pthread_mutex_lock(&env->mu);
    bool idle = env->flusher_idle;
    pthread_mutex_unlock(&env->mu);
    return idle;
}

void plog__wr_reserve(plog_env_t *env, int64_t len)
{
    pthread_mutex_lock(&env->mu);
    /* One append always fits an empty queue, however large. */
    while (!env->manual && env->wr_bytes > 0 && env->wr_bytes + len > env->wr_cap)
        pthread_cond_wait(&env->room, &env->mu);
    env->wr_bytes += len;
    pthread_mutex_unlock(&env->mu);
}

void plog__wr_unreserve(plog_env_t *env, int64_t len)
{
    release_bytes(env, len);
}

/* Which env threads an enqueue must wake. The *_locked helpers below only
 * queue, under sync_mu and then env->mu; the caller signals once both are
 * released (env_wake): signalled inside, the woken thread preempts the loop
 * on a busy machine, then blocks on the mutex the loop still holds, and two
 * more switches follow before either makes progress (bench/REPORT.md). */
enum { WAKE_WRITER = 1, WAKE_FLUSHER = 2 };

static void env_wake(plog_env_t *env, unsigned wake)
{
    if (wake & WAKE_WRITER)
        pthread_cond_signal(&env->wcond);
    if (wake & WAKE_FLUSHER)
        pthread_cond_signal(&env->cond);
}

/* Queue the log for the next group commit; takes a loop-side ref that the
 * completion drops. Sets *idle (may be NULL) when the flusher waits for
 * work: its next round then starts with this log's writes. Called with
 * sync_mu held. */
static unsigned flush_enqueue_locked(plog_t *log, bool *idle)
{
    plog_env_t *env = log->sh->env;
    unsigned wake = 0;
    pthread_mutex_lock(&env->mu);
    if (idle)
        *idle = env->flusher_idle;
    if (!log->queued) {
        log->queued = true;
        log->refs++; /* dropped by plog__on_done on the loop */
        log->next_queued = NULL;
        if (env->queue_tail)
            env->queue_tail->next_queued = log;
        else
            env->queue = log;
        env->queue_tail = log;
        wake = WAKE_FLUSHER;
    }
    pthread_mutex_unlock(&env->mu);
    return wake;
}

/* Put the log in the delayed list, due in delay_ms. Called with sync_mu held. */
static unsigned delay_locked(plog_t *log, int64_t delay_ms)
{
    if (log->queued || log->delayed)
        return 0; /* a sync is already coming */
    log->delayed = true;
    log->refs++; /* dropped by plog__on_done on the loop */
    plog_env_t *env = log->sh->env;
    pthread_mutex_lock(&env->mu);
    log->due_ns = uv_hrtime() + (uint64_t)delay_ms * 1000000u;
    log->next_delayed = env->delayed;
    env->delayed = log;
    pthread_mutex_unlock(&env->mu);
    return WAKE_FLUSHER; /* it sleeps until the earliest due time */
}

/* Put the log in the writer's queue: its writes are made at once, whenever
 * its sync comes (now, or delayed by write caching). Called with sync_mu held. */
static unsigned wenqueue_locked(plog_t *log)
{
    if (log->wqueued)
        return 0; /* the writer takes what is queued when it gets there */
    log->wqueued = true;
    log->refs++; /* dropped by plog__on_done on the loop */
    plog_env_t *env = log->sh->env;
    pthread_mutex_lock(&env->mu);
    log->next_wqueued = env->wqueue;
    env->wqueue = log;
    pthread_mutex_unlock(&env->mu);
    return WAKE_WRITER;
}

/* Queue the sync (now, or delayed) and the writes, which are made at once.
 * A sync due now with the flusher idle: the flusher writes them first thing
 * in its round, before any fdatasync, and the writer is left asleep (woken
 * too, the two would take turns on wr_mu for the same bytes: one more thread
 * to schedule per append on a loaded machine). With the flusher in a round
 * (its fdatasync may take milliseconds) or a delayed sync, the writer writes
 * them, so acks=1 and write caching do not wait for a sync. Called with
 * sync_mu held. */
static unsigned want_sync_locked(plog_t *log, int64_t delay_ms)
{
    unsigned wake = 0;
    bool idle = false;
    if (delay_ms > 0) {
        wake |= delay_locked(log, delay_ms);
    } else {
        wake |= flush_enqueue_locked(log, &idle);
        if (log->delayed) { /* make the delayed round due now as well */
            plog_env_t *env = log->sh->env;
            pthread_mutex_lock(&env->mu);
            log->due_ns = 0;
            pthread_mutex_unlock(&env->mu);
        }
    }
    if (log->wr_head && !idle)
        wake |= wenqueue_locked(log);
    return wake;
}

void plog__mark_dirty(plog_t *log, plog_seg_t *seg, bool dir_dirty, int64_t delay_ms)
{
    pthread_mutex_lock(&log->sync_mu);
    if (seg)
        add_dirty_locked(log, seg);
    log->dir_dirty |= dir_dirty;
    unsigned wake = want_sync_locked(log, delay_ms);
    pthread_mutex_unlock(&log->sync_mu);
    env_wake(log->sh->env, wake);
}

void plog__queue_write(plog_t *log, plog__wr_t *w, int64_t delay_ms)
{
    w->next = NULL;
    pthread_mutex_lock(&log->sync_mu);
    if (log->wr_tail)
        log->wr_tail->next = w;
    else
        log->wr_head = w;
    log->wr_tail = w;
    unsigned wake = want_sync_locked(log, delay_ms);
    pthread_mutex_unlock(&log->sync_mu);
    env_wake(log->sh->env, wake);
}

void plog__set_rp_pending(plog_t *log, int64_t rp)
{
    pthread_mutex_lock(&log->sync_mu);
    if (rp > log->rp_pending)
        log->rp_pending = rp;
    unsigned wake = flush_enqueue_locked(log, NULL);
    pthread_mutex_unlock(&log->sync_mu);
    env_wake(log->sh->env, wake);
}

int plog__env_job(plog_env_t *env, void (*fn)(void *), void *arg)
{
    job_t *j = malloc(sizeof(*j));
    if (!j)
        return ST_E_NOMEM;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&env->mu);
    if (env->jobs_tail)
        env->jobs_tail->next = j;
    else
        env->jobs = j;
    env->jobs_tail = j;
    pthread_cond_signal(&env->cond);
    pthread_mutex_unlock(&env->mu);
    return 0;
}

/* ---- Per-loop completion channel ---- */

static void on_wake(st_wake_t *h)
{
    plog_shard_t *sh = h->data;
    pthread_mutex_lock(&sh->mu);
    plog__done_t *d = sh->done;
    sh->done = NULL;
    pthread_mutex_unlock(&sh->mu);
    /* The list is LIFO; reverse so each log sees its rounds in order. */
    plog__done_t *rev = NULL;
    while (d) {
        plog__done_t *n = d->next;
        d->next = rev;
        rev = d;
        d = n;
    }
    while (rev) {
        plog__done_t *n = rev->next;
        plog__on_done(rev);
        free(rev);
        rev = n;
    }
}

int plog_shard_new(plog_env_t *env, uv_loop_t *loop, plog_shard_t **out)
{
    plog_shard_t *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return ST_E_NOMEM;
    sh->env = env;
    sh->loop = loop;
    pthread_mutex_init(&sh->mu, NULL);
    int rc = st_wake_init(loop, &sh->wake, on_wake);
    if (rc != 0) {
        pthread_mutex_destroy(&sh->mu);
        free(sh);
        return rc;
    }
    sh->wake.data = sh;
    *out = sh;
    return 0;
}

static void on_shard_closed(uv_handle_t *h)
{
    plog_shard_t *sh = ((st_wake_t *)h)->data;
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

void plog_shard_free(plog_shard_t *sh)
{
    if (!sh)
        return;
    st_wake_close(&sh->wake, on_shard_closed);
}
