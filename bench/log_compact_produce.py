#!/usr/bin/python3
"""log_compact_produce.py - produce latency through a real stratad while its log cleaner
compacts another topic, against the same produce without a pass, in the same run on the
same broker (bench/log_compact measures the same at the log engine's level).
A topic of keyed records (cleanup.policy=delete while it fills) is switched to compact; the
cleaner (log.cleaner.io.max.bytes.per.second, so the pass outlasts the window) rewrites it
while `strata bench produce` sends acks=all records at a fixed rate to another topic. The
same produce runs just before the switch and after the pass ends; the figures that matter
are the ratios with/without. Not a test: nothing asserts on it.
Usage: bench/log_compact_produce.py [BUILD_DIR] [OUT.jsonl]
  env: LCP_MB (dirty log to fill, 200), LCP_KEYS (20000), LCP_CLEANER_BPS (cleaner throttle,
       30000000 B/s), LCP_SECONDS (8 per produce window), LCP_RATE (2000 records/s),
       LCP_RECORD (1024 B), BENCH_DIR (temp data parent)"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from txn import free_port  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
OUT = sys.argv[2] if len(sys.argv) > 2 else None
MB = int(os.environ.get("LCP_MB", "200"))
KEYS = int(os.environ.get("LCP_KEYS", "20000"))
CLEANER_BPS = int(os.environ.get("LCP_CLEANER_BPS", "30000000"))
SECS = int(os.environ.get("LCP_SECONDS", "8"))
RATE = int(os.environ.get("LCP_RATE", "2000"))
RECORD = int(os.environ.get("LCP_RECORD", "1024"))


def fill(boot, topic):
    p = Producer({"bootstrap.servers": boot, "acks": "1", "linger.ms": 20,
                  "compression.type": "none"})
    value = os.urandom(RECORD)
    n = 0
    while n * (RECORD + 20) < MB << 20:
        try:
            p.produce(topic, key=b"key-%d" % (n % KEYS), value=value, partition=0)
            n += 1
        except BufferError:
            p.poll(0.05)
    assert p.flush(120) == 0
    return n


def produce(boot, topic):
    """strata bench produce at RATE records/s for SECS: its JSON result."""
    out = subprocess.run([os.path.join(BUILD, "tools", "strata"), "--brokers", boot, "--format",
                          "json", "bench", "produce", "--topic", topic, "--partitions", "1",
                          "--acks", "all", "--record-size", str(RECORD), "--linger-ms", "0",
                          "--rate", str(RATE), "--duration", "%ds" % SECS],
                         capture_output=True, text=True, timeout=SECS + 120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cleaned_at(log_path, topic):
    """Wall time (s) of the log line of the finished pass over topic, or None."""
    rx = re.compile(r"^\S+\s+(\S+)Z .*plog: cleaned dir=\S*/%s-0 " % re.escape(topic))
    with open(log_path) as f:
        for line in f:
            m = rx.search(line)
            if m:
                return time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) \
                    - time.timezone + float("0" + m.group(1)[19:])
    return None


def main():
    tmp = tempfile.mkdtemp(prefix=".bench-lcp.", dir=os.environ.get("BENCH_DIR", os.getcwd()))
    port = free_port()
    boot = "127.0.0.1:%d" % port
    log_path = os.path.join(tmp, "stratad.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([os.path.join(BUILD, "tools", "stratad"), "--log-dir",
                             os.path.join(tmp, "data"), "--smp", "2", "--listeners", boot,
                             "--admin-listener", "127.0.0.1:%d" % free_port(),
                             "-X", "log.cleaner.backoff.ms=500",
                             "-X", "log.cleaner.io.max.bytes.per.second=%d" % CLEANER_BPS],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if "started" in open(log_path).read():
                break
            time.sleep(0.1)
        a = AdminClient({"bootstrap.servers": boot})
        cfg = {"cleanup.policy": "delete", "segment.bytes": str(32 << 20)}
        for f in a.create_topics([NewTopic("dirty", 1, 1, config=cfg),
                                  NewTopic("lat", 1, 1)]).values():
            f.result(60)
        n = fill(boot, "dirty")
        os.sync()  # the fill's page cache written back now, not inside a window
        produce(boot, "lat")  # warm-up, not counted
        before = produce(boot, "lat")
        res = ConfigResource("topic", "dirty", set_config=dict(
            cfg, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0"}))
        a.alter_configs([res])[res].result(60)
        time.sleep(1.0)  # the next look (log.cleaner.backoff.ms) starts the pass
        during = produce(boot, "lat")
        window_end = time.time()
        deadline = time.time() + 600
        while cleaned_at(log_path, "dirty") is None and time.time() < deadline:
            time.sleep(0.5)
        end = cleaned_at(log_path, "dirty")
        after = produce(boot, "lat")

        def p(r, k):
            return r.get(k)
        base99 = (p(before, "p99_ms") + p(after, "p99_ms")) / 2
        base50 = (p(before, "p50_ms") + p(after, "p50_ms")) / 2
        doc = {"bench": "log_compact_produce", "dirty_mb": MB, "records": n, "keys": KEYS,
               "cleaner_bytes_per_s": CLEANER_BPS, "rate": RATE, "seconds": SECS,
               "p50_ms_before": p(before, "p50_ms"), "p99_ms_before": p(before, "p99_ms"),
               "p50_ms_during": p(during, "p50_ms"), "p99_ms_during": p(during, "p99_ms"),
               "p50_ms_after": p(after, "p50_ms"), "p99_ms_after": p(after, "p99_ms"),
               "p50_ratio_with_without": round(p(during, "p50_ms") / base50, 2) if base50 else None,
               "p99_ratio_with_without": round(p(during, "p99_ms") / base99, 2) if base99 else None,
               "pass_outlasted_window": end is not None and end >= window_end}
        if not doc["pass_outlasted_window"]:
            print("log_compact_produce: the pass ended inside the window (raise LCP_MB or lower "
                  "LCP_CLEANER_BPS): 'during' is partly without the cleaner", file=sys.stderr)
        for f in [sys.stdout] + ([open(OUT, "a")] if OUT else []):
            print(json.dumps(doc), file=f)
            f.flush()
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
