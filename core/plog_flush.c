/* plog_flush.c - the flusher: group commit of partition logs off the loops.
 * Data path: plog_append() writes into the page cache and queues its log here
 * -> this thread takes every queued log, snapshots how far each was written,
 * fdatasyncs the dirty segments (and the directory after a segment was
 * created) -> posts {log, durable_end} to the log's shard, whose wake-up
 * (st_wake_t: an eventfd, no spinning) fires the durability waiters
 * (plog__on_synced).
 * Invariants: 1. durable_end is the written_end read *before* fdatasync, so
 *                every byte below it was written before the sync began;
 *             2. a log is in the queue at most once (its `queued` flag);
 *                appends during a sync queue it for the next round;
 *             3. with write caching a log waits in the delayed list (at most
 *                once, `delayed`) until flush.ms passed, then is synced.
 * Slow jobs (unlinking deleted segments) run on the same thread, in order. */
#include "core/plog_int.h"
#include "core/st_assert.h"
#include "core/st_log.h"
#include "core/st_metrics.h"

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

struct plog_env {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    plog_t *queue, *queue_tail; /* logs awaiting a sync, guarded by mu */
    plog_t *delayed;            /* logs whose sync is due at due_ns, guarded by mu */
    job_t *jobs, *jobs_tail;    /* guarded by mu */
    bool stop;
    bool manual; /* no thread: plog_env_flush_step() runs the rounds (tests) */
};

static void post_done(plog_t *log, int64_t end, int64_t bytes, int err)
{
    plog_shard_t *sh = log->sh;
    plog__done_t *d = malloc(sizeof(*d));
    ST_VERIFY(d != NULL); /* cannot report durability otherwise */
    d->log = log;
    d->durable_end = end;
    d->durable_bytes = bytes;
    d->err = err;
    pthread_mutex_lock(&sh->mu);
    d->next = sh->done;
    sh->done = d;
    st_wake_send(&sh->wake); /* under mu: the loop cannot free the shard meanwhile */
    pthread_mutex_unlock(&sh->mu);
}

/* One sync of log, taken from the queue or (delayed) from the delayed list:
 * only that membership ends here (the log may be in both). */
static void sync_log(plog_t *log, bool delayed)
{
    pthread_mutex_lock(&log->sync_mu);
    plog_seg_t **dirty = log->dirty;
    int n = log->n_dirty;
    log->dirty = NULL;
    log->n_dirty = log->cap_dirty = 0;
    int64_t end = log->written_end, bytes = log->written_bytes;
    int64_t rp = log->sync_failed ? -1 : log->rp_pending;
    bool dir_dirty = log->dir_dirty;
    log->dir_dirty = false;
    log->rp_pending = -1;
    if (delayed)
        log->delayed = false;
    else
        log->queued = false;
    pthread_mutex_unlock(&log->sync_mu);

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
         * a rebuild at the next start (no recovery point claims it). */
        int irc;
        if (!err && atomic_exchange(&s->sync_idx, false) && atomic_load(&s->idx_unsynced) &&
            (irc = plog__idx_save(s)) != 0) {
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
    post_done(log, end, bytes, err);
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


/* One round: the syncs taken from the queue and the delayed list, then the
 * jobs. Called without mu. */
static void run_round(plog_t *batch, plog_t *due, job_t *jobs)
{
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
    pthread_mutex_lock(&env->mu);
    for (;;) {
        uint64_t wait_ns;
        plog_t *due = take_due(env, &wait_ns);
        while (!due && !env->queue && !env->jobs && !env->stop) {
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
        run_round(batch, due, jobs);
        pthread_mutex_lock(&env->mu);
    }
    pthread_mutex_unlock(&env->mu);
    return NULL;
}

int plog_env_new(plog_env_t **out)
{
    plog_env_t *env = calloc(1, sizeof(*env));
    if (!env)
        return ST_E_NOMEM;
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cond, NULL);
    int rc = pthread_create(&env->thread, NULL, flusher_main, env);
    if (rc != 0) {
        free(env);
        return -rc;
    }
    *out = env;
    return 0;
}

int plog_env_new_manual(plog_env_t **out)
{
    plog_env_t *env = calloc(1, sizeof(*env));
    if (!env)
        return ST_E_NOMEM;
    env->manual = true;
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cond, NULL);
    *out = env;
    return 0;
}

bool plog_env_flush_step(plog_env_t *env)
{
    pthread_mutex_lock(&env->mu);
    plog_t *batch = env->queue, *due = env->delayed; /* delayed ones are due at once */
    job_t *jobs = env->jobs;
    env->queue = env->queue_tail = env->delayed = NULL;
    env->jobs = env->jobs_tail = NULL;
    pthread_mutex_unlock(&env->mu);
    run_round(batch, due, jobs);
    return batch || due || jobs;
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
        pthread_mutex_unlock(&env->mu);
        pthread_join(env->thread, NULL);
    }
    pthread_mutex_destroy(&env->mu);
    pthread_cond_destroy(&env->cond);
    free(env);
}

void plog__flush_enqueue_locked(plog_t *log)
{
    if (log->queued)
        return;
    log->queued = true;
    log->refs++; /* dropped by plog__on_synced on the loop */
    plog_env_t *env = log->sh->env;
    pthread_mutex_lock(&env->mu);
    log->next_queued = NULL;
    if (env->queue_tail)
        env->queue_tail->next_queued = log;
    else
        env->queue = log;
    env->queue_tail = log;
    pthread_cond_signal(&env->cond);
    pthread_mutex_unlock(&env->mu);
}

/* Put the log in the delayed list, due in delay_ms. Called with sync_mu held. */
static void delay_locked(plog_t *log, int64_t delay_ms)
{
    if (log->queued || log->delayed)
        return; /* a sync is already coming */
    log->delayed = true;
    log->refs++; /* dropped by plog__on_synced on the loop */
    plog_env_t *env = log->sh->env;
    pthread_mutex_lock(&env->mu);
    log->due_ns = uv_hrtime() + (uint64_t)delay_ms * 1000000u;
    log->next_delayed = env->delayed;
    env->delayed = log;
    pthread_cond_signal(&env->cond);
    pthread_mutex_unlock(&env->mu);
}

void plog__mark_dirty(plog_t *log,
                      plog_seg_t *seg,
                      int64_t written_end,
                      int64_t written_bytes,
                      bool dir_dirty,
                      int64_t delay_ms)
{
    pthread_mutex_lock(&log->sync_mu);
    bool found = false;
    for (int i = 0; i < log->n_dirty; i++)
        found |= log->dirty[i] == seg;
    if (!found && seg) {
        if (log->n_dirty == log->cap_dirty) {
            int cap = log->cap_dirty ? log->cap_dirty * 2 : 4;
            plog_seg_t **d = realloc(log->dirty, (size_t)cap * sizeof(*d));
            ST_VERIFY(d != NULL);
            log->dirty = d;
            log->cap_dirty = cap;
        }
        plog__seg_ref(seg);
        log->dirty[log->n_dirty++] = seg;
    }
    if (written_end > log->written_end)
        log->written_end = written_end;
    if (written_bytes > log->written_bytes)
        log->written_bytes = written_bytes;
    log->dir_dirty |= dir_dirty;
    if (delay_ms > 0) {
        delay_locked(log, delay_ms);
    } else {
        plog__flush_enqueue_locked(log);
        if (log->delayed) { /* make the delayed round due now as well */
            plog_env_t *env = log->sh->env;
            pthread_mutex_lock(&env->mu);
            log->due_ns = 0;
            pthread_mutex_unlock(&env->mu);
        }
    }
    pthread_mutex_unlock(&log->sync_mu);
}

void plog__set_rp_pending(plog_t *log, int64_t rp)
{
    pthread_mutex_lock(&log->sync_mu);
    if (rp > log->rp_pending)
        log->rp_pending = rp;
    plog__flush_enqueue_locked(log);
    pthread_mutex_unlock(&log->sync_mu);
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
        plog__on_synced(rev->log, rev->durable_end, rev->durable_bytes, rev->err);
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
