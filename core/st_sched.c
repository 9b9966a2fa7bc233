/* st_sched.c - a short EEVDF time slice for request-serving threads (see
 * st_sched.h): sched_getattr() of the calling thread, the same attributes
 * back with sched_runtime set (glibc 2.36 has no wrappers: raw syscalls). */
#include "core/st_sched.h"
#include "core/st_log.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of linux/sched/types.h, SCHED_ATTR_SIZE_VER0 (48 bytes). */
typedef struct {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime; /* SCHED_OTHER / SCHED_BATCH: the slice (Linux 6.12+) */
    uint64_t sched_deadline;
    uint64_t sched_period;
} sched_attr_t;

#define ST_SCHED_FLAG_RESET_ON_FORK 0x01

static _Atomic int64_t g_slice_us;
static atomic_bool g_warned;

void st_sched_set_slice_us(int64_t us)
{
    atomic_store(&g_slice_us, us > 0 ? us : 0);
}

static int get_attr(pid_t tid, sched_attr_t *a)
{
    memset(a, 0, sizeof(*a));
    if (syscall(SYS_sched_getattr, tid, a, (unsigned)sizeof(*a), 0u) != 0)
        return -errno;
    return 0;
}

int st_sched_apply(void)
{
    int64_t us = atomic_load(&g_slice_us);
    if (us <= 0)
        return 0;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    sched_attr_t a;
    int rc = get_attr(tid, &a);
    if (rc == 0 && a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH)
        return 0; /* real-time or idle: not ours to change */
    if (rc == 0) {
        a.size = sizeof(a);
        a.sched_flags &= ST_SCHED_FLAG_RESET_ON_FORK; /* sched_nice is the current one */
        a.sched_priority = 0;
        a.sched_runtime = (uint64_t)us * 1000u;
        a.sched_deadline = a.sched_period = 0;
        if (syscall(SYS_sched_setattr, tid, &a, 0u) != 0)
            rc = -errno;
    }
    if (rc != 0 && !atomic_exchange(&g_warned, true))
        ST_WARN("sched", "cannot set a %lld us time slice (strata.sched.slice.us): %s",
                (long long)us, strerror(-rc));
    return rc;
}

int64_t st_sched_slice_ns(pid_t tid)
{
    sched_attr_t a;
    int rc = get_attr(tid ? tid : (pid_t)syscall(SYS_gettid), &a);
    return rc != 0 ? rc : (int64_t)a.sched_runtime;
}
