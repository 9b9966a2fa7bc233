#!/usr/bin/python3
"""schedlat.py - how long threads wait for a CPU, from a system-wide recording of
sched:sched_wakeup, sched:sched_wakeup_new and sched:sched_switch (perf record -a -e ...).

Reads `perf script -F comm,tid,time,event,trace` on stdin. For every thread: the wake-up delays
(from its sched_wakeup to the sched_switch that puts it on a CPU) and the preemption waits
(from a switch-out in state R to the next switch-in), i.e. the time it was runnable and not
running. Threads are grouped by name with digits removed (shard-0 and shard-1 are one group
unless --tids), so the producer's, the broker's and the replay's threads can be compared
between two recordings. Prints one line per group (wake-ups, mean / p99 / max wake-up
delay, preemptions and their total) and, with a second argument, writes the same as JSON.
Usage: perf script -F comm,tid,time,event,trace -i sched.data | bench/schedlat.py [OUT.json]
"""
import collections
import json
import re
import sys

HDR = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+(\d+\.\d+):\s+(sched:[a-z_]+):\s+(.*)$")
KV = re.compile(r"(\w+)=(\S+)")


def group(comm):
    return re.sub(r"\d+", "N", comm)


def pct(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    woken = {}  # tid -> time of its wake-up
    preempted = {}  # tid -> time it was switched out runnable
    names = {}
    wake = collections.defaultdict(list)  # group -> delays (ms)
    pre = collections.defaultdict(list)
    t_first = t_last = None
    for line in sys.stdin:
        m = HDR.match(line)
        if not m:
            continue
        t, ev, rest = float(m.group(3)), m.group(4), m.group(5)
        t_first = t if t_first is None else t_first
        t_last = t
        f = dict(KV.findall(rest))
        if ev in ("sched:sched_wakeup", "sched:sched_wakeup_new"):
            tid = int(f.get("pid", -1))
            if tid > 0 and tid not in woken and tid not in preempted:
                woken[tid] = t
                names[tid] = f.get("comm", "?")
        elif ev == "sched:sched_switch":
            prev, nxt = int(f.get("prev_pid", -1)), int(f.get("next_pid", -1))
            if prev > 0 and f.get("prev_state", "").startswith("R"):
                preempted[prev] = t
                names[prev] = f.get("prev_comm", "?")
            if nxt in woken:
                wake[group(names.get(nxt, f.get("next_comm", "?")))].append((t - woken.pop(nxt)) * 1e3)
            elif nxt in preempted:
                pre[group(names.get(nxt, f.get("next_comm", "?")))].append((t - preempted.pop(nxt)) * 1e3)
            if nxt > 0:
                names[nxt] = f.get("next_comm", names.get(nxt, "?"))
    out = {"span_s": round((t_last or 0) - (t_first or 0), 3), "threads": {}}
    for g in sorted(set(wake) | set(pre), key=lambda g: -(sum(wake[g]) + sum(pre[g]))):
        w, p = wake[g], pre[g]
        out["threads"][g] = {"wakeups": len(w), "wake_mean_ms": round(sum(w) / len(w), 3) if w else 0,
                             "wake_p99_ms": round(pct(w, 0.99), 3), "wake_max_ms": round(max(w), 3) if w else 0,
                             "wake_total_ms": round(sum(w), 1), "preemptions": len(p),
                             "preempted_total_ms": round(sum(p), 1),
                             "preempted_max_ms": round(max(p), 3) if p else 0}
    print("runnable waits over %.1f s (wake-up: from sched_wakeup to running; preempted: switched"
          " out runnable until back)" % out["span_s"])
    print("%-24s %8s %9s %9s %9s %9s %8s %10s" % ("thread group", "wakeups", "mean ms", "p99 ms",
                                                 "max ms", "total ms", "preempt", "pre. ms"))
    for g, r in list(out["threads"].items())[:40]:
        print("%-24s %8d %9.3f %9.3f %9.2f %9.1f %8d %10.1f" % (
            g[:24], r["wakeups"], r["wake_mean_ms"], r["wake_p99_ms"], r["wake_max_ms"],
            r["wake_total_ms"], r["preemptions"], r["preempted_total_ms"]))
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
