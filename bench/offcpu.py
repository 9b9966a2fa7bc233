#!/usr/bin/python3
"""offcpu.py - where stratad's threads wait, from a system-wide sched:sched_switch recording.

Reads `perf script -F comm,tid,time,trace,ip,sym` on stdin (perf record -g -a -e
sched:sched_switch). A thread switches out in its own context (with its stack) and back in in
the context of whatever ran before it, so the off-CPU time of each switch-out is exact. Prints,
for the threads of process PID, the total off-CPU time per thread and per blocking stack (the
kernel path below the scheduler plus the first user frames), and the blocks of >= 5 ms.
With sched:sched_wakeup also recorded, each thread's time runnable between its wake-up and
running (part of the off-CPU time of the state it blocked in: a D-state total includes the wait
for a CPU after the I/O completed).
Voluntary sleeps in epoll_wait (an idle event loop) and futex waits of idle workers are
listed but are not what a latency hunt looks for; blocks in write/fdatasync are.
With a second argument, also writes a JSON summary there: each thread's role (fsync: it
blocks in fdatasync, the flusher; writer: in write/pwrite, e.g. a shard appending to its
segment; other), its off-CPU
milliseconds by state, the milliseconds it waited inside write()/pwrite() or fdatasync (D
state), and its longest single block in those paths.
Usage: perf script ... | bench/offcpu.py PID [SUMMARY.json]
"""
import json
import collections
import os
import re
import sys

SKIP = ("__schedule", "schedule", "schedule_timeout", "io_schedule", "schedule_hrtimeout_range",
        "schedule_hrtimeout_range_clock", "schedule_preempt_disabled", "preempt_schedule_common",
        "__cond_resched", "_cond_resched", "[unknown]")


# stratad's thread names: main and libuv's pool, shard loops, the log's writer and flusher, the
# hydration and upload pools.
STRATAD_THREADS = ("stratad", "shard-", "plog-", "hydrate", "upload")


def threads_of(pid):
    try:
        return {int(t) for t in os.listdir("/proc/%s/task" % pid)}
    except OSError:
        return set()


def events(lines):
    """Yield (tid, time, fields dict, stack list) for each sample."""
    head, stack = None, []
    hdr = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+(\d+\.\d+):\s+(.*)$")
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if head:
                yield head + (stack,)
            head, stack = None, []
            continue
        m = hdr.match(line) if not line.startswith(("\t", " " * 8)) else None
        if m:
            if head:
                yield head + (stack,)
            fields = dict(kv.split("=", 1) for kv in re.findall(r"(\w+=\S+)", m.group(4)))
            head, stack = (int(m.group(2)), float(m.group(3)), fields), []
        elif head:
            parts = line.split(None, 1)
            stack.append(parts[1].split("+")[0] if len(parts) > 1 else parts[0])
    if head:
        yield head + (stack,)


def signature(stack):
    frames = [f for f in stack if f not in SKIP]
    return " <- ".join(frames[:7])


def main():
    pid = sys.argv[1] if len(sys.argv) > 1 else None
    tids = threads_of(pid) if pid else set()
    out_at = {}  # tid -> (time, stack, state)
    per_thread = collections.Counter()
    per_sig = collections.Counter()
    per_sig_n = collections.Counter()
    per_sig_max = collections.defaultdict(float)
    long_blocks = []
    woken_at = {}  # tid -> time of its sched_wakeup while off CPU (recordings that have them)
    woken_wait = collections.Counter()  # tid -> ms runnable between its wake-up and running
    woken_max = collections.defaultdict(float)
    names = {}
    t_first = t_last = None
    for tid, t, f, stack in events(sys.stdin):
        t_first = t if t_first is None else t_first
        t_last = t
        if "prev_pid" not in f and "pid" in f:  # sched_wakeup / sched_wakeup_new
            w = int(f["pid"])
            if w in out_at and w not in woken_at:
                woken_at[w] = t
            continue
        prev, nxt = int(f.get("prev_pid", -1)), int(f.get("next_pid", -1))
        if prev in tids or (not tids and f.get("prev_comm", "").startswith(STRATAD_THREADS)):
            out_at[prev] = (t, stack, f.get("prev_state", "?"))
            names[prev] = f.get("prev_comm", "?")
            woken_at.pop(prev, None)
        if nxt in out_at:
            t0, st, state = out_at.pop(nxt)
            if nxt in woken_at:
                wait = (t - woken_at.pop(nxt)) * 1e3
                woken_wait[nxt] += wait
                woken_max[nxt] = max(woken_max[nxt], wait)
            ms = (t - t0) * 1e3
            sig = signature(st)
            per_thread[nxt] += ms
            per_sig[(nxt, state, sig)] += ms
            per_sig_n[(nxt, state, sig)] += 1
            per_sig_max[(nxt, state, sig)] = max(per_sig_max[(nxt, state, sig)], ms)
            if ms >= 5:
                long_blocks.append((ms, nxt, state, sig))
    span = (t_last - t_first) if t_first is not None else 0
    print("off-CPU time of stratad (pid %s) threads over %.1f s of sched_switch events" % (pid, span))
    print("(state S = sleeping, D = uninterruptible, i.e. waiting on I/O or a page/inode lock)")
    print()
    print("per thread (ms off CPU; with sched_wakeup events recorded, also the part spent runnable")
    print("between its wake-up and running, which a blocked state's total includes):")
    for tid, ms in per_thread.most_common():
        extra = ("  of which runnable after wake-up %.1f ms (longest %.1f)" % (
            woken_wait[tid], woken_max[tid]) if woken_wait[tid] else "")
        print("  tid %-8d %-15s %9.1f ms%s" % (tid, names.get(tid, ""), ms, extra))
    print()
    print("top blocking stacks (tid, state, total ms, count, stack below the scheduler):")
    for (tid, state, sig), ms in per_sig.most_common(25):
        print("  %-7d %s %9.1f ms %6d x  %s" % (tid, state, ms, per_sig_n[(tid, state, sig)], sig))
    print()
    long_blocks.sort(reverse=True)
    if len(sys.argv) > 2:
        write_summary(sys.argv[2], span, per_thread, per_sig, per_sig_max, woken_wait, woken_max,
                      names)
    io = [b for b in long_blocks if "epoll_wait" not in b[3] and "futex" not in b[3]]
    print("blocks >= 5 ms outside epoll_wait/futex (%d; longest 25):" % len(io))
    for ms, tid, state, sig in io[:25]:
        print("  %7.1f ms tid %-7d %s  %s" % (ms, tid, state, sig))


def in_path(sig, names):
    return any(n in sig for n in names)


WRITE = ("sys_pwrite64", "sys_write", "sys_pwritev", "sys_writev", "generic_perform_write")
SYNC = ("sys_fdatasync", "sys_fsync", "ext4_sync_file", "file_write_and_wait_range")


def write_summary(path, span, per_thread, per_sig, per_sig_max, woken_wait, woken_max, names):
    threads = {}
    for (tid, state, sig), ms in per_sig.items():
        t = threads.setdefault(tid, {"tid": tid, "name": names.get(tid, ""),
                                     "off_cpu_ms": round(per_thread[tid], 1),
                                     "woken_wait_ms": round(woken_wait[tid], 1),
                                     "max_woken_wait_ms": round(woken_max[tid], 1),
                                     "by_state_ms": collections.Counter(), "write_d_ms": 0.0,
                                     "sync_d_ms": 0.0, "runnable_ms": 0.0, "max_write_block_ms": 0.0,
                                     "max_sync_block_ms": 0.0, "top": []})
        t["by_state_ms"][state] += ms
        if state.startswith("R"):
            t["runnable_ms"] += ms  # preempted: waiting for a CPU
        elif in_path(sig, SYNC):
            t["sync_d_ms"] += ms if state.startswith("D") else 0
        elif in_path(sig, WRITE):
            t["write_d_ms"] += ms if state.startswith("D") else 0
    for (tid, state, sig), ms in per_sig_max.items():
        t = threads[tid]
        if state.startswith("R"):
            continue
        if in_path(sig, SYNC):
            t["max_sync_block_ms"] = max(t["max_sync_block_ms"], ms)
        elif in_path(sig, WRITE):
            t["max_write_block_ms"] = max(t["max_write_block_ms"], ms)
    for (tid, state, sig), ms in per_sig.most_common():
        if len(threads[tid]["top"]) < 5 and "epoll_wait" not in sig:
            threads[tid]["top"].append({"state": state, "ms": round(ms, 1), "stack": sig})
    for t in threads.values():
        sigs = [sig for (tid, _, sig) in per_sig if tid == t["tid"]]
        t["role"] = ("fsync" if any(in_path(x, SYNC) for x in sigs) else
                     "writer" if any(in_path(x, WRITE) for x in sigs) else "other")
        t["by_state_ms"] = {k: round(v, 1) for k, v in t["by_state_ms"].items()}
        for k in ("write_d_ms", "sync_d_ms", "runnable_ms", "max_write_block_ms",
                  "max_sync_block_ms"):
            t[k] = round(t[k], 1)
    with open(path, "w") as f:
        json.dump({"span_s": round(span, 2), "threads": sorted(threads.values(),
                                                              key=lambda x: -x["off_cpu_ms"])}, f,
                  indent=1)


if __name__ == "__main__":
    main()
