#!/usr/bin/python3
"""Tiered storage at the sizes of the issue: with segment.bytes 8 MiB and
local.retention.bytes 32 MiB, 1 GiB produced with confluent-kafka (acks=all,
a sequence number and a checksum in every value) is uploaded, local disk keeps
only the tail, and a new consumer group replays every record from offset 0,
byte-identical and in order. Then the data directory is deleted, the broker
recovers the index and the topic from the bucket alone, and the replay is
byte-identical again. Run for file:// and for a real S3 server.

No timing is asserted: MB/s figures are printed for the reader only."""
import hashlib
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from test_tiering import (earliest, free_port, index_rows, local_segments,  # noqa: E402
                          metric, s3_env, start_s3, stop_s3, wait_until)

TOTAL = int(os.environ.get("STRATA_REPLAY_BYTES", str(1 << 30)))
VALUE = 4096
N = (TOTAL + VALUE - 1) // VALUE
SEG_BYTES = 8 << 20
LOCAL_BYTES = 32 << 20
TOPIC = "replay-gib"


def value(seq):
    """Record seq's value: its sequence number, a checksum of the body, the
    body (pseudo-random, so zstd cannot shrink it away)."""
    body = hashlib.shake_128(b"%d" % seq).digest(VALUE - 28)
    return b"%010d:%s:" % (seq, hashlib.sha256(body).hexdigest()[:16].encode()) + body


def produce_all(bootstrap):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": True, "message.timeout.ms": 600000})
    errors = []

    def dr(err, msg):
        if err:
            errors.append(err)
    t0 = time.monotonic()
    for seq in range(N):
        v = value(seq)
        while True:
            try:
                p.produce(TOPIC, v, partition=0, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        if seq % 1000 == 0:
            p.poll(0)
    assert p.flush(600) == 0
    assert not errors, errors[:5]
    return time.monotonic() - t0


def replay(bootstrap, group):
    """A new consumer group reads from offset 0 to the end; every record must
    be value(offset), in order. Returns the seconds it took."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20})
    c.subscribe([TOPIC])
    t0 = time.monotonic()
    deadline = t0 + 900
    nxt = 0
    while nxt < N and time.monotonic() < deadline:
        for m in c.consume(num_messages=4096, timeout=1.0):
            if m.error():
                raise AssertionError("consume error: %s" % m.error())
            if m.offset() != nxt:
                raise AssertionError("offset %d where %d was expected" % (m.offset(), nxt))
            if m.value() != value(nxt):
                raise AssertionError("record %d differs from what was produced" % nxt)
            nxt += 1
    secs = time.monotonic() - t0
    c.close()
    assert nxt == N, "replay stopped at offset %d of %d" % (nxt, N)
    return secs


def archived_bytes(b):
    import sqlite3
    db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
    try:
        return db.execute("SELECT sum(size) FROM segments WHERE topic=?", (TOPIC,)).fetchone()[0]
    finally:
        db.close()


def local_bytes(b):
    return sum(os.path.getsize(s) for s in local_segments(b, TOPIC))


def mb_s(secs):
    return N * VALUE / secs / 1e6


class ReplayGiBTest(unittest.TestCase):
    def run_scenario(self, url, env=None):
        from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
        args = ["-X", "remote.log.storage.system.enable=true", "-X", "strata.archive.url=" + url,
                "-X", "log.retention.check.interval.ms=500", "-X", "strata.cache.bytes=64MiB"]
        b = Broker(*args, env=env)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic(TOPIC, 1, 1, config={
                "segment.bytes": str(SEG_BYTES), "local.retention.bytes": str(LOCAL_BYTES),
                "segment.ms": "3000"})])[TOPIC].result(30)
            secs = produce_all(b.bootstrap)
            print("\n%s: produced %d records (%.0f MiB) in %.1f s = %.0f MB/s"
                  % (url.split(":")[0], N, N * VALUE / 2**20, secs, mb_s(secs)), file=sys.stderr)
            # Uploads drain: the idle tail rolls by segment.ms and the index
            # reaches the last offset; local retention then frees the head.
            wait_until(lambda: (index_rows(b, TOPIC) or [(0, -1)])[-1][1] == N - 1, 900,
                       "every offset archived")
            rows = index_rows(b, TOPIC)
            self.assertEqual(rows[0][0], 0)
            for prev, cur in zip(rows, rows[1:]):
                self.assertEqual(cur[0], prev[1] + 1)
            self.assertGreaterEqual(len(rows), TOTAL // SEG_BYTES)
            wait_until(lambda: local_bytes(b) <= LOCAL_BYTES + SEG_BYTES, 120,
                       "local retention to free the archived head")
            first_local = int(os.path.basename(local_segments(b, TOPIC)[0])[:20])
            self.assertGreater(first_local, N // 2)
            secs = replay(b.bootstrap, "replay-1")
            print("%s: replayed %d records from offset 0 in %.1f s = %.0f MB/s (local from %d)"
                  % (url.split(":")[0], N, secs, mb_s(secs), first_local), file=sys.stderr)
            # Read-ahead kept pace without running away: every archived chunk
            # was downloaded once (the archive is larger than the chunk cache
            # of the partition's shard, so chunks fetched too early would be
            # evicted unread and downloaded again).
            obj_bytes = archived_bytes(b)
            got = metric(b, "strata_tier_hydration_downloaded_bytes_total")
            self.assertGreater(got, 0.5 * obj_bytes)
            if got > obj_bytes:  # what the hydration layer counted, to find the chunk read twice
                from test_admin import http
                text = http(b.admin_port, "GET", "/metrics", timeout=30)[2]
                self.fail("%d bytes downloaded for %d bytes of objects\n%s\n%s" % (
                    got, obj_bytes, "\n".join(ln for ln in text.splitlines()
                                               if ln.startswith("strata_tier")),
                    "".join(ln for ln in b.lines if "tier" in ln or "retention" in ln)[-20000:]))
            # The data directory is lost: recover from the bucket alone.
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            shutil.rmtree(b.data)
            os.mkdir(b.data)
            b.start(timeout=600)
            b.wait_for(r"recovered from the archive: objects=%d partitions=1 topics=1 failed=0"
                       % len(rows), seen=True)
            # Rebuilt from the objects' seek and chunk tables: no object read whole.
            b.wait_for(r"objects=%d \(from their tables alone: %d\)" % (len(rows), len(rows)),
                       seen=True)
            self.assertEqual(index_rows(b, TOPIC), rows)
            wait_until(lambda: earliest(b.bootstrap, TOPIC) == (0, N), 60, "the archive")
            # The topic comes back with its own configs.
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            res = ConfigResource(ConfigResource.Type.TOPIC, TOPIC)
            cfg = a.describe_configs([res])[res].result(30)
            self.assertEqual(cfg["segment.bytes"].value, str(SEG_BYTES))
            self.assertEqual(cfg["local.retention.bytes"].value, str(LOCAL_BYTES))
            secs = replay(b.bootstrap, "replay-2")
            print("%s: replayed after recovery in %.1f s = %.0f MB/s"
                  % (url.split(":")[0], secs, mb_s(secs)), file=sys.stderr)
        finally:
            b.close()

    def test_file_archive(self):
        with tempfile.TemporaryDirectory(prefix="strata-arch-") as d:
            self.run_scenario("file://" + d)

    def test_s3(self):
        url, own = os.environ.get("STRATA_TEST_S3_URL"), None
        if not url:
            own = tempfile.mkdtemp(prefix="strata-s3-")
            url = start_s3(free_port(), own)
        try:
            self.run_scenario("s3://strata/gib-%d" % os.getpid(), env=s3_env(url))
        finally:
            if own:
                stop_s3(own)
                shutil.rmtree(own, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
