#!/usr/bin/python3
"""promdelta.py - what stratad's histograms recorded between two scrapes of GET /metrics.

For each histogram series (name and labels) whose name contains one of the given words: the
samples added between the scrapes, their mean, the bucket bounds holding the median and the
99th percentile (an upper bound: the histogram's buckets are 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
25, 50, 100 ms, ...), and how many samples took over 10 and over 25 ms. Used by replay.sh to
say which stage of a produce grew during a replay (strata_kafka_produce_stage_seconds,
strata_log_fsync_latency_seconds, strata_shard_loop_lag_seconds, ...).
Usage: bench/promdelta.py BEFORE.txt AFTER.txt WORD... (prints one JSON object)
"""
import json
import re
import sys

LINE = re.compile(r'^(\w+?)(_bucket|_sum|_count)(?:\{(.*)\})?\s+(\S+)$')


def parse(path):
    h = {}
    for line in open(path):
        m = LINE.match(line.strip())
        if not m:
            continue
        name, kind, labels, v = m.group(1), m.group(2), m.group(3) or "", float(m.group(4))
        le = None
        parts = [p for p in re.findall(r'(\w+)="([^"]*)"', labels)]
        rest = []
        for k, val in parts:
            if k == "le":
                le = float("inf") if val == "+Inf" else float(val)
            else:
                rest.append("%s=%s" % (k, val))
        key = name + ("{" + ",".join(rest) + "}" if rest else "")
        s = h.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
        if kind == "_bucket":
            s["buckets"][le] = v
        elif kind == "_sum":
            s["sum"] = v
        else:
            s["count"] = v
    return h


def main():
    a, b, words = parse(sys.argv[1]), parse(sys.argv[2]), sys.argv[3:]
    out = {}
    for key, s in sorted(b.items()):
        if words and not any(w in key for w in words):
            continue
        z = a.get(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
        n = s["count"] - z["count"]
        if n <= 0:
            continue
        cum = sorted((le, c - z["buckets"].get(le, 0.0)) for le, c in s["buckets"].items())

        def q(p):
            for le, c in cum:
                if c >= p * n:
                    return None if le == float("inf") else round(le * 1e3, 2)
            return None

        def over(ms):
            below = max((c for le, c in cum if le * 1e3 <= ms), default=0.0)
            return int(n - below)

        out[key] = {"count": int(n), "mean_ms": round((s["sum"] - z["sum"]) / n * 1e3, 3),
                    "p50_le_ms": q(0.5), "p99_le_ms": q(0.99), "over_10ms": over(10),
                    "over_25ms": over(25)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
