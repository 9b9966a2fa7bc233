/* tthread.h - tests: the calling process's threads found by name (their comm,
 * as pthread_setname_np set it) in /proc/self/task, to read what the kernel
 * keeps per thread (scheduling policy, context switches). */
#ifndef TTHREAD_H
#define TTHREAD_H

#include <sys/types.h>

/** Store up to max ids of this process's threads named name in tids.
 * @return how many threads have that name (may exceed max), -1 when
 *         /proc/self/task cannot be read */
int tthread_named(const char *name, pid_t *tids, int max);

#endif
