#!/usr/bin/python3
"""txn.py - transactional produce vs idempotent produce (acks=all), in the same run on the
same broker: throughput of N records, and the latency of making a batch of K records
durable and visible (commit_transaction for the transactional producer, flush for the
idempotent one). Rounds alternate (plain, txn, plain, txn, ...) so the noise of the shared
machine falls on both; the median round of each is reported, and the figures that matter
are the ratios txn/plain. Not a test: nothing asserts on it.
Usage: bench/txn.py [BUILD_DIR] [OUT.jsonl]
  env: TXN_RECORDS (20000 per round), TXN_BATCH (500 records per transaction),
       TXN_ROUNDS (3), TXN_RECORD (1024 B), BENCH_DIR (temp data parent)"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
OUT = sys.argv[2] if len(sys.argv) > 2 else None
N = int(os.environ.get("TXN_RECORDS", "20000"))
K = int(os.environ.get("TXN_BATCH", "500"))
ROUNDS = int(os.environ.get("TXN_ROUNDS", "3"))
VALUE = b"x" * int(os.environ.get("TXN_RECORD", "1024"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def producer(boot, txn_id):
    conf = {"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5}
    if txn_id:
        conf["transactional.id"] = txn_id
    p = Producer(conf)
    if txn_id:
        p.init_transactions(60)
    return p


def run(p, topic, is_txn):
    """(records/s, per-batch latencies in s) for one round of producer p."""
    lat = []
    t0 = time.monotonic()
    for start in range(0, N, K):
        if is_txn:
            p.begin_transaction()
        for _ in range(min(K, N - start)):
            while True:
                try:
                    p.produce(topic, value=VALUE, partition=0)
                    break
                except BufferError:
                    p.poll(0.01)
        b0 = time.monotonic()
        if is_txn:
            p.commit_transaction(60)
        else:
            p.flush(60)
        lat.append(time.monotonic() - b0)
    rate = N / (time.monotonic() - t0)
    return rate, lat


def main():
    tmp = tempfile.mkdtemp(prefix=".bench-txn.", dir=os.environ.get("BENCH_DIR", os.getcwd()))
    port = free_port()
    boot = "127.0.0.1:%d" % port
    log = open(os.path.join(tmp, "stratad.log"), "w")
    proc = subprocess.Popen([os.path.join(BUILD, "tools", "stratad"), "--log-dir",
                             os.path.join(tmp, "data"), "--smp", "2", "--listeners", boot,
                             "--admin-listener", "127.0.0.1:%d" % free_port()],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        a = AdminClient({"bootstrap.servers": boot})
        for f in a.create_topics([NewTopic("plain", 1, 1), NewTopic("txn", 1, 1)]).values():
            f.result(60)
        # One producer of each kind for every round; the first round of each is a
        # warm-up (metadata, connections, producer ids) and is not counted.
        plain, txn = producer(boot, None), producer(boot, "bench-txn")
        run(plain, "plain", False)
        run(txn, "txn", True)
        res = {"plain": [], "txn": []}
        for r in range(ROUNDS):
            res["plain"].append(run(plain, "plain", False))
            res["txn"].append(run(txn, "txn", True))

        def summary(rounds):
            rate = statistics.median(x[0] for x in rounds)
            lat = sorted(v for x in rounds for v in x[1])
            return rate, lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        pr, p50, p99 = summary(res["plain"])
        tr, t50, t99 = summary(res["txn"])
        doc = {"bench": "txn", "records": N, "batch": K, "rounds": ROUNDS,
               "record_bytes": len(VALUE),
               "plain_records_per_s": round(pr), "txn_records_per_s": round(tr),
               "throughput_ratio": round(tr / pr, 3),
               "plain_batch_p50_ms": round(p50 * 1000, 2), "txn_commit_p50_ms": round(t50 * 1000, 2),
               "plain_batch_p99_ms": round(p99 * 1000, 2), "txn_commit_p99_ms": round(t99 * 1000, 2),
               "commit_latency_ratio_p50": round(t50 / p50, 2) if p50 > 0 else None}
        line = json.dumps(doc)
        print(line)
        if OUT:
            with open(OUT, "a") as f:
                f.write(line + "\n")
    finally:
        proc.terminate()
        proc.wait(60)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
