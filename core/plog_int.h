/* plog_int.h - internals shared by plog*.c (not for other modules). */
#ifndef PLOG_INT_H
#define PLOG_INT_H

#include "core/plog.h"
#include "core/st_wake.h"

#include <pthread.h>
#include <stdatomic.h>

#define PLOG_NAME_LEN 20 /* digits in a segment file's base offset */

typedef struct {
    int32_t rel_offset; /* last offset of the batch - segment base */
    int32_t pos;        /* file position of the batch */
} plog__idx_t;

typedef struct {
    int64_t ts;         /* max timestamp seen so far in the segment */
    int32_t rel_offset; /* offset where it was seen - segment base */
} plog__tidx_t;

struct plog_seg {
    _Atomic int refs;
    int fd; /* owned: the .log file (the index files are opened only to load or save) */
    int64_t base_offset;
    int64_t next_offset; /* last offset + 1 (base_offset when empty) */
    int64_t size;        /* bytes of whole batches */
    int64_t max_ts;      /* largest batch maxTimestamp, -1 when empty */
    int64_t max_ts_offset;
    int64_t first_append_ms; /* for segment.ms; -1 when empty */
    int64_t bytes_since_index;
    /* Bytes at the end of the file queued for writing but not written yet
     * (added on the loop before size grows, subtracted by the writer or the
     * flusher after its pwrite): readers stop at size - unwritten. Bytes of a
     * failed write stay counted, so nothing reads them. */
    _Atomic int64_t unwritten;
    plog__idx_t *idx; /* owned */
    int n_idx, cap_idx;
    plog__tidx_t *tidx; /* owned */
    int n_tidx, cap_tidx;
    bool is_deleted;           /* removed from the log; files unlinked by the flusher */
    _Atomic bool sync_idx;     /* the flusher also saves .index/.timeindex (roll, close) */
    _Atomic bool idx_unsynced; /* index entries in memory that the files do not hold synced */
    bool recovered;      /* plog_open: recovery changed the files (truncated, index rewritten) */
    char path[4096];     /* DIR/<base> without extension */
    char log_path[4100]; /* DIR/<base>.log */
};

/* Per-loop completion channel: the flusher appends finished syncs here. */
struct plog_shard {
    plog_env_t *env; /* borrowed */
    uv_loop_t *loop; /* borrowed */
    st_wake_t wake;
    pthread_mutex_t mu;
    struct plog__done *done;  /* owned list, guarded by mu */
    plog_sealed_fn on_sealed; /* loop only */
    void *on_sealed_arg;
    plog_hw_fn on_hw; /* loop only */
    void *on_hw_arg;
};

/* A flusher report to the loop: how far the log is written, and (synced)
 * how far it is durable. */
typedef struct plog__done {
    struct plog__done *next;
    plog_t *log;
    int64_t written_end; /* every offset below is written (page cache) */
    int64_t durable_end; /* with synced: every offset below is on stable storage */
    int64_t durable_bytes;
    bool synced;   /* durable_end/durable_bytes are valid */
    bool drop_ref; /* the report ends a queue membership: drop its loop ref */
    int err;       /* a write or sync failed: the log fails */
} plog__done_t;

/* One append's bytes, copied on the loop, written by the writer (or the
 * flusher before a sync) in order. */
typedef struct plog__wr {
    struct plog__wr *next;
    plog_seg_t *seg;    /* owned ref */
    int64_t pos, len;   /* where in seg's file */
    int64_t end_offset; /* log end offset after these bytes */
    int64_t bytes;      /* appended_bytes after these bytes */
    uint8_t data[];
} plog__wr_t;

struct plog {
    plog_shard_t *sh; /* borrowed */
    char *dir;        /* owned; fsynced (plog__fsync_dir) after entries change */
    plog_config_t cfg;
    plog_seg_t **segs; /* owned refs, oldest first; the last is active */
    int n_segs, cap_segs;
    int64_t start_offset; /* logical: may be below segs[0] when data is remote */
    int64_t end_offset;
    int64_t uploaded_end;   /* offsets below are safely in remote storage */
    int64_t durable_end;    /* every offset below is on stable storage */
    int64_t sealed_end;     /* sealed segments below were announced (on_sealed) */
    int64_t appended_bytes; /* loop: bytes appended since open */
    int64_t durable_bytes;  /* loop: of which fdatasynced */
    int64_t wr_end;         /* loop: every offset below is written (flusher reports) */
    int failed;             /* sticky error after a failed write or fsync */
    plog_waiter_t *waiters, *waiters_tail;   /* durability, by end offset */
    plog_waiter_t *wwaiters, *wwaiters_tail; /* written (acks=1, write caching) */
    _Atomic bool want_written;               /* loop sets: written waiters or write caching, so the
                                                flusher reports writes before their sync */
    int refs; /* loop-only: 1 for the owner + 1 per pending flusher round */
    bool closing;
    bool open_dir_changed; /* plog_open: recovery created, renamed or deleted entries */
    plog_closed_cb closed_cb;
    void *closed_arg;
    /* Compaction (plog_compact.c), loop only. */
    int64_t clean_end;    /* offsets below were cleaned by a finished pass (checkpoint), or -1 */
    int64_t cleaning_end; /* a pass rewrites the segments below: deletion waits; -1: none */
    plog_compact_stats_t cstats;
    /* Sequential read cache: the position of next_offset in seg. */
    plog_seg_t *rd_seg; /* borrowed: valid while in segs */
    int64_t rd_offset, rd_pos;

    /* ---- shared with the flusher and writer threads, guarded by sync_mu ---- */
    pthread_mutex_t wr_mu; /* held from taking queued writes to publishing them (writer
                              or flusher: a log's writes stay in order); taken before
                              sync_mu, never on the loop */
    pthread_mutex_t sync_mu;
    plog_seg_t **dirty; /* owned refs of segments written since the last sync */
    int n_dirty, cap_dirty;
    plog__wr_t *wr_head, *wr_tail; /* appends queued for writing, in order */
    int64_t written_end;           /* end offset covered by the written bytes (flusher) */
    int64_t written_bytes;         /* appended_bytes matching written_end */
    bool wr_failed;                /* a write failed: later queued writes are dropped */
    bool dir_dirty;                /* a segment file was created since the last sync */
    int64_t rp_pending;            /* recovery point to persist after this sync, or -1 */
    bool sync_failed;              /* a sync failed once: no recovery point is written again */
    int64_t rp_written;            /* flusher (and plog_open): the recovery point on disk, or -1;
                                      written under sync_mu, read by the flusher without it */
    bool queued;                   /* in the flusher's queue (write, then sync) */
    bool wqueued;                  /* in the writer's queue (every append's bytes) */
    bool delayed;                  /* in the flusher's delayed list (write caching) */
    uint64_t due_ns;               /* when a delayed flush is due (uv_hrtime) */
    struct plog *next_queued;
    struct plog *next_wqueued;
    struct plog *next_delayed;

    /* ---- log-start checkpoint (DeleteRecords), written on the thread pool ---- */
    pthread_mutex_t ckpt_mu;   /* orders the checkpoint writes; never taken on the loop, so
                                  no append waits for their fsyncs */
    _Atomic int64_t ckpt_want; /* loop: the highest start offset DeleteRecords asked for */
    int64_t ckpt_done;         /* under ckpt_mu: the highest one made durable, or -1 */
};

extern const plog_sys_t *plog__sys;

/* The cleaner's checkpoint: every offset below it was cleaned once. */
#define PLOG_CLEAN_CKPT "cleaner-offset-checkpoint"

/* Create the three files DIR/<base>.{log,index,timeindex}<suffix> (truncated)
 * as a segment whose path/log_path name the files without suffix. */
int plog__seg_create(const char *dir, int64_t base, const char *suffix, plog_seg_t **out);
/* Account one batch written at pos of s (offsets, timestamps, sparse index
 * entries every interval bytes, written to the index files with write_file). */
void plog__seg_note_batch(plog_seg_t *s,
                          const plog_batch_hdr_t *h,
                          int64_t pos,
                          int64_t blen,
                          int32_t interval,
                          bool write_file);
/* Loop-side references of a log (a pending cleaner pass holds one). */
void plog__log_ref(plog_t *log);
void plog__log_unref(plog_t *log);
/* plog_open, before listing segments: finish the swaps a cleaner pass
 * committed (DIR/<base>.log.swap), delete its uncommitted files. @blocking yes */
int plog__compact_recover(plog_t *log);

void plog__seg_ref(plog_seg_t *s);
/* Write both index files from memory and fdatasync them: a sealed or closing
 * segment's (its entries no longer change) or at open. @return 0 or a
 * negative errno.  @blocking yes */
int plog__idx_save(plog_seg_t *s);
/* plog__idx_save into DIR/<base>.{index,timeindex}<suffix> (the cleaner's). */
int plog__idx_save_as(plog_seg_t *s, const char *suffix);
/* fsync the log's directory (opened for it). @return 0 or -errno. @blocking yes */
int plog__fsync_dir(const plog_t *log);
void plog__seg_unref(plog_seg_t *s);

/* Flusher (plog_flush.c). Mark seg (may be NULL) dirty and queue a sync of everything written and
 * queued so far: now, or with delay_ms > 0 (write caching) no later than
 * that. @thread owning loop */
void plog__mark_dirty(plog_t *log, plog_seg_t *seg, bool dir_dirty, int64_t delay_ms);
/* Room for len more queued bytes in the env's write queue: blocks while the
 * queue holds more than its cap (the disk is behind; a manual env never
 * blocks). Pair with plog__queue_write or plog__wr_unreserve.
 * @thread owning loop  @blocking only when the queue is full */
void plog__wr_reserve(plog_env_t *env, int64_t len);
void plog__wr_unreserve(plog_env_t *env, int64_t len);
/* Queue w (reserved) for the flusher to write, then a sync as
 * plog__mark_dirty(delay_ms). @thread owning loop */
void plog__queue_write(plog_t *log, plog__wr_t *w, int64_t delay_ms);
/* Run fn(arg) on the flusher thread (file deletion and other slow I/O). */
int plog__env_job(plog_env_t *env, void (*fn)(void *), void *arg);
/* Write DIR/name = value atomically (temp file, fdatasync, rename; fsync of
 * the directory when sync_dir). @return 0 or a negative errno. @blocking yes */
int plog__write_ckpt(plog_t *log, const char *name, int64_t value, bool sync_dir);
/* The recovery point: every segment below value is synced with its indexes. */
int plog__write_rp(plog_t *log, int64_t value, bool sync_dir);
/* Persist rp as the recovery point after a sync that starts after this call
 * (queues one): call it after marking the segments below rp dirty.
 * @thread owning loop */
void plog__set_rp_pending(plog_t *log, int64_t rp);
/* Completion on the loop (plog.c). */
void plog__on_done(const plog__done_t *d);

#endif
