/* st_sched.h - a short CPU time slice for the threads that serve requests.
 *
 * Data path: stratad passes strata.sched.slice.us to st_sched_set_slice_us()
 * before it starts its threads; each shard loop (core/rt.c) and the log's
 * writer and flusher (core/plog_flush.c) call st_sched_apply() once as they
 * start. On Linux 6.12+ (EEVDF with per-task slices) a SCHED_OTHER thread
 * whose slice is shorter than the running task's preempts it as soon as it
 * wakes (sched_setattr's sched_runtime: no privilege needed; the nice value,
 * hence the CPU share, is unchanged). On cores kept busy by a replay (the S3
 * server, the consumer, the hydration pool) each hop of a produce - the loop
 * reading it, the writer, the flusher after its fdatasync, the loop acking it
 * - then runs at once, not after the running task's slice or the next
 * scheduler tick (4 ms at HZ=250). Older kernels ignore the field.
 *
 * Invariants: 1. only the calling thread changes, and only its slice: its
 *                policy (SCHED_OTHER / SCHED_BATCH, others are left alone)
 *                and nice value are kept;
 *             2. a refusal is logged (once per process) and never an error
 *                for the caller. */
#ifndef ST_SCHED_H
#define ST_SCHED_H

#include <stdint.h>
#include <sys/types.h>

/** The slice st_sched_apply() asks for, in microseconds (the kernel clamps
 * it to 100 .. 100000); 0 = leave the kernel's default.
 * @thread any (before the threads that apply it start) */
void st_sched_set_slice_us(int64_t us);

/** Ask for the configured slice for the calling thread.
 * @return 0 (done, or nothing to do), or a negative errno (logged).
 * @thread any  @blocking no */
int st_sched_apply(void);

/** The slice the kernel keeps for thread tid (0 = the calling thread), in
 * nanoseconds, as sched_getattr() reports it (0 on kernels without per-task
 * slices), or a negative errno. For tests and diagnostics. */
int64_t st_sched_slice_ns(pid_t tid);

#endif
