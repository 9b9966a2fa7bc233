#!/usr/bin/python3
"""Tiered storage, upload side: every sealed segment of a remote-enabled
topic is uploaded once, in order, as a zstd seekable object that `zstd -dc`
turns back into the exact segment file, indexed in remote-index.db; uploads
resume after a restart (SIGTERM or kill -9) without re-uploading or gaps;
the s3:// backend works against a real signature-verifying S3 server."""
import glob
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port, reserved_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEG = ["-X", "log.segment.bytes=16384"]


def produce(b, topic, n, start=0):
    lines = "".join("%06d-payload-%s\n" % (i, "x" * 40) for i in range(start, start + n))
    p = subprocess.run(["kcat", "-b", b.bootstrap, "-P", "-t", topic,
                        "-X", "batch.num.messages=50"], input=lines, text=True,
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr


def local_segments(b, topic):
    return sorted(glob.glob(os.path.join(b.data, "%s-0" % topic, "*.log")))


def index_rows(b, topic):
    db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
    try:
        return db.execute("SELECT base_offset, last_offset, object_key FROM segments "
                          "WHERE topic=? AND partition=0 ORDER BY base_offset",
                          (topic,)).fetchall()
    finally:
        db.close()


def wait_indexed(b, topic, timeout=60):
    """Wait (upper bound) until every sealed local segment is indexed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        segs = local_segments(b, topic)
        rows = index_rows(b, topic)
        sealed = [int(os.path.basename(s)[:20]) for s in segs[:-1]]
        if sealed and [r[0] for r in rows][-len(sealed):] == sealed:
            return rows
        time.sleep(0.2)
    raise AssertionError("sealed segments not indexed: %s vs %s"
                         % (local_segments(b, topic), index_rows(b, topic)))


def local_settled(b, topic, local_retention_bytes):
    """Local retention has nothing left to do: every sealed segment is
    archived and deleting the oldest would go below local.retention.bytes."""
    segs = local_segments(b, topic)
    rows = index_rows(b, topic)
    if not segs or not rows:
        return False
    active_base = int(os.path.basename(segs[-1])[:20])
    if max(r[1] for r in rows) + 1 < active_base:
        return False  # a sealed segment is not uploaded yet
    sizes = [os.path.getsize(s) for s in segs]
    return len(segs) == 1 or sum(sizes) - sizes[0] < local_retention_bytes


def assert_contiguous(test, rows):
    for prev, cur in zip(rows, rows[1:]):
        test.assertEqual(cur[0], prev[1] + 1, rows)


class UploadFileTest(unittest.TestCase):
    def test_sealed_segments_uploaded_identical_and_resumed(self):
        b = Broker("-X", "remote.log.storage.system.enable=true", *SEG)
        try:
            produce(b, "up", 3000)
            rows = wait_indexed(b, "up")
            self.assertGreaterEqual(len(rows), 5)
            assert_contiguous(self, rows)
            self.assertEqual(rows[0][0], 0)
            for base, last, key in rows:
                self.assertRegex(key, r"^[0-9a-f]{8}/up/0/%020d-%020d-0\.seg\.zst$" % (base, last))
                obj = os.path.join(b.data, "archive", key)
                out = subprocess.run(["zstd", "-dc", obj], capture_output=True, timeout=60).stdout
                with open(os.path.join(b.data, "up-0", "%020d.log" % base), "rb") as f:
                    self.assertEqual(out, f.read(), key)  # the exact segment file
            # SIGTERM and restart: resumes after the last indexed offset.
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            b.wait_for(r"resuming uploads tp=up-0 after offset=%d" % rows[-1][1], seen=True)
            produce(b, "up", 2000, 3000)
            rows2 = wait_indexed(b, "up")
            self.assertEqual(rows2[:len(rows)], rows)  # nothing uploaded twice
            assert_contiguous(self, rows2)
            # kill -9 while uploading, restart: no duplicate or missing rows.
            produce(b, "up", 2000, 5000)
            b.kill9()
            b.start()
            produce(b, "up", 500, 7000)
            rows3 = wait_indexed(b, "up")
            assert_contiguous(self, rows3)
            self.assertEqual(len(set(r[0] for r in rows3)), len(rows3))
            for base, last, key in rows3:
                self.assertTrue(os.path.exists(os.path.join(b.data, "archive", key)), key)
        finally:
            b.close()

    def test_topic_setting_overrides_the_broker_default(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker(*SEG)  # remote storage off by default
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("on", 1, 1, config={"remote.storage.enable": "true"}),
                             NewTopic("off", 1, 1)])["on"].result(30)
            produce(b, "on", 2000)
            produce(b, "off", 2000)
            rows = wait_indexed(b, "on")
            self.assertGreater(len(rows), 2)
            self.assertEqual(index_rows(b, "off"), [])
            self.assertEqual(glob.glob(os.path.join(b.data, "archive", "*", "off")), [])
        finally:
            b.close()


def consume_from(bootstrap, topic, offset, n, timeout=120, group="tier-replay", extra=None):
    """Read n records of partition 0 from offset: ([(offset, value)], low, high)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, **(extra or {})})
    c.assign([TopicPartition(topic, 0, offset)])
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise AssertionError("consume error: %s" % m.error())
        out.append((m.offset(), m.value()))
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 30)
    c.close()
    return out, lo, hi


def consume_until(bootstrap, topic, offset, last, timeout=120):
    """Records of partition 0 from offset (or the log start, should it pass offset) through
    offset `last`: [(offset, value)] from the last reset on."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tier-until",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, offset)])
    out = []
    deadline = time.monotonic() + timeout
    while (not out or out[-1][0] < last) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise AssertionError("consume error: %s" % m.error())
        if out and m.offset() != out[-1][0] + 1:
            out = []  # reset to the new log start (records below it expired meanwhile)
        out.append((m.offset(), m.value()))
    c.close()
    return out


class ReplayTest(unittest.TestCase):
    def test_replay_from_the_archive_after_local_deletion(self):
        import hashlib
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker("-X", "remote.log.storage.system.enable=true", "-X",
                   "log.retention.check.interval.ms=200", *SEG)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("replay", 1, 1, config={
                "local.retention.bytes": "32768"})])["replay"].result(30)
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2})
            values = []
            for i in range(5000):
                v = b"%06d-" % i
                v += hashlib.sha256(v).hexdigest().encode()
                values.append(v)
                p.produce("replay", v, partition=0)
                if i % 500 == 0:
                    p.flush(30)
            self.assertEqual(p.flush(60), 0)
            # Wait (bounded) until uploads let local retention drop the head.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                segs = local_segments(b, "replay")
                if segs and int(os.path.basename(segs[0])[:20]) > 0 and len(segs) <= 4:
                    break
                time.sleep(0.2)
            first_local = int(os.path.basename(local_segments(b, "replay")[0])[:20])
            self.assertGreater(first_local, 1000)
            # A new reader replays everything from offset 0, byte for byte.
            got, lo, hi = consume_from(b.bootstrap, "replay", 0, 5000)
            self.assertEqual((lo, hi), (0, 5000))
            self.assertEqual([o for o, _ in got], list(range(5000)))
            self.assertEqual([v for _, v in got], values)
            # kcat from an archived offset.
            out = subprocess.run(["kcat", "-b", b.bootstrap, "-C", "-t", "replay", "-o", "10",
                                  "-c", "3", "-f", "%o %s\n"], capture_output=True, text=True,
                                 timeout=60).stdout
            self.assertEqual(out.splitlines()[0], "10 " + values[10].decode())
            # After a restart the archive still serves the head.
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            b.start()
            got, lo, hi = consume_from(b.bootstrap, "replay", 0, 5000)
            self.assertEqual(lo, 0)
            self.assertEqual([v for _, v in got], values)
        finally:
            b.close()


class UploadS3Test(unittest.TestCase):
    def setUp(self):
        self.url = os.environ.get("STRATA_TEST_S3_URL")
        self.own = None
        if not self.url:
            self.own = tempfile.mkdtemp(prefix="strata-s3-")
            p = subprocess.run([os.path.join(ROOT, "scripts/s3server.sh"), "start",
                                str(free_port()), self.own, "strata"],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.url = p.stdout.strip()

    def tearDown(self):
        if self.own:
            subprocess.run([os.path.join(ROOT, "scripts/s3server.sh"), "stop", self.own],
                           timeout=60)

    def test_uploads_to_s3(self):
        env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                   AWS_REGION="us-east-1", AWS_ENDPOINT_URL=self.url)
        prefix = "it-%d" % os.getpid()
        b = Broker("-X", "remote.log.storage.system.enable=true",
                   "-X", "strata.archive.url=s3://strata/%s" % prefix, *SEG, env=env)
        try:
            produce(b, "s3up", 3000)
            rows = wait_indexed(b, "s3up")
            self.assertGreaterEqual(len(rows), 5)
            assert_contiguous(self, rows)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            self.assertIsNone(re.search(r"upload .* failed", out), out)
        finally:
            b.close()


# ---- Recovery, GC, outage (issue 7) ----

def s3_env(url):
    return dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                AWS_REGION="us-east-1", AWS_ENDPOINT_URL=url)


def start_s3(port, d):
    p = subprocess.run([os.path.join(ROOT, "scripts/s3server.sh"), "start", str(port), d,
                        "strata"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def stop_s3(d):
    subprocess.run([os.path.join(ROOT, "scripts/s3server.sh"), "stop", d], timeout=60)


def produce_values(b, topic, n, start=0, flush_every=500):
    import hashlib
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
                  "message.timeout.ms": 600000})
    values, errors = [], []

    def dr(err, msg):
        if err:
            errors.append(err)
    for i in range(start, start + n):
        v = b"%06d-" % i
        v += hashlib.sha256(v).hexdigest().encode()
        values.append(v)
        p.produce(topic, v, partition=0, on_delivery=dr)
        if i % flush_every == 0:
            p.flush(120)
    assert p.flush(300) == 0
    assert not errors, errors
    return values


def wait_high(b, topic, high, timeout=120):
    """Wait (upper bound) until the index holds offsets up to high."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = index_rows(b, topic)
        if rows and rows[-1][1] >= high:
            return rows
        time.sleep(0.2)
    raise AssertionError("not indexed up to %d: %s" % (high, index_rows(b, topic)[-3:]))


class RecoverTest(unittest.TestCase):
    """The data directory is lost: a broker started on an empty one with the
    same archive rebuilds the index from the bucket, recreates the topic and
    serves every archived offset again; new records continue after them."""

    def run_recovery(self, url, env=None):
        arch_args = ["-X", "remote.log.storage.system.enable=true", "-X",
                     "strata.archive.url=" + url, "-X", "log.retention.check.interval.ms=200",
                     *SEG]
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker(*arch_args, env=env)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("rec", 1, 1, config={
                "local.retention.bytes": "32768", "segment.ms": "1000"})])["rec"].result(30)
            values = produce_values(b, "rec", 4000)
            rows = wait_high(b, "rec", 3999)
            assert_contiguous(self, rows)
            b.kill9()
        finally:
            b.close()
        b2 = Broker(*arch_args, env=env)  # a fresh, empty data directory
        try:
            b2.wait_for(r"recovered from the archive: objects=%d partitions=1" % len(rows),
                        seen=True)
            self.assertEqual(index_rows(b2, "rec"), rows)
            # The log start comes down to the archive's once the uploader
            # resumed from the index (asynchronously, just after start).
            wait_until(lambda: earliest(b2.bootstrap, "rec") == (0, 4000), 30, "the archive")
            got, lo, hi = consume_from(b2.bootstrap, "rec", 0, 4000)
            self.assertEqual((lo, hi), (0, 4000))
            self.assertEqual([o for o, _ in got], list(range(4000)))
            self.assertEqual([v for _, v in got], values)
            # New records continue after the archived offsets, and a restart
            # does not recover again.
            more = produce_values(b2, "rec", 100, 4000)
            got, lo, hi = consume_from(b2.bootstrap, "rec", 3990, 110)
            self.assertEqual(hi, 4100)
            self.assertEqual([v for _, v in got], values[3990:] + more)
            rc, out = b2.stop()
            self.assertEqual(rc, 0, out)
            b2.start()
            self.assertIsNone(re.search(r"recovered from the archive", "\n".join(b2.lines)))
            wait_until(lambda: earliest(b2.bootstrap, "rec")[0] == 0, 30, "the archive")
            got, lo, hi = consume_from(b2.bootstrap, "rec", 0, 4100)
            self.assertEqual([v for _, v in got], values + more)
        finally:
            b2.close()

    def test_unreachable_archive_with_an_empty_index_stops_the_start(self):
        from broker import STRATAD
        with tempfile.TemporaryDirectory(prefix="strata-it-") as d:
            env = s3_env("http://127.0.0.1:%d" % free_port())  # nobody listens there
            p = subprocess.run([STRATAD, "--log-dir", d, "--smp", "1",
                                "--listeners", "127.0.0.1:%d" % free_port(),
                                "--admin-listener", "127.0.0.1:%d" % free_port(),
                                "-X", "strata.archive.url=s3://strata/x"],
                               env=env, capture_output=True, text=True, timeout=180)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("cannot be checked for data to recover", p.stderr)

    def test_recover_from_file_archive(self):
        with tempfile.TemporaryDirectory(prefix="strata-arch-") as d:
            self.run_recovery("file://" + d)

    def test_recover_from_s3(self):
        url, own = os.environ.get("STRATA_TEST_S3_URL"), None
        if not url:
            own = tempfile.mkdtemp(prefix="strata-s3-")
            url = start_s3(free_port(), own)
        try:
            self.run_recovery("s3://strata/rec-%d" % os.getpid(), env=s3_env(url))
        finally:
            if own:
                stop_s3(own)


def archive_keys(root, topic):
    """Segment object keys of topic in a file:// archive directory."""
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".seg.zst"):
                key = os.path.relpath(os.path.join(dirpath, f), root)
                if key.split("/")[1] == topic:
                    out.append(key)
    return sorted(out)


def earliest(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tier-gc"})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 30)
    c.close()
    return lo, hi


def wait_until(fn, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


GC_ARGS = ["-X", "remote.log.storage.system.enable=true",
           "-X", "log.retention.check.interval.ms=200", *SEG]


class GcTest(unittest.TestCase):
    """Total retention over the archive, DeleteTopics and orphans."""

    def test_retention_ms_deletes_archived_objects_and_moves_earliest(self):
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker(*GC_ARGS)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("gcms", 1, 1, config={
                "local.retention.bytes": "32768", "retention.ms": "3600000",
                "segment.ms": "1000"})])["gcms"].result(30)
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2})
            old = int(time.time() * 1000) - 4 * 3600 * 1000
            for i in range(3000):
                ts = old + i if i < 2000 else int(time.time() * 1000)
                p.produce("gcms", b"%06d-%s" % (i, b"v" * 40), partition=0, timestamp=ts)
                if i % 500 == 0:
                    p.flush(30)
            self.assertEqual(p.flush(60), 0)
            arch = os.path.join(b.data, "archive")
            lo = wait_until(lambda: earliest(b.bootstrap, "gcms")[0] or None, 60,
                            "the earliest offset to move")
            self.assertLessEqual(lo, 2000)
            # Archived objects wholly below it leave the bucket and the index.
            wait_until(lambda: all(int(k.split("/")[3][21:41]) >= lo
                                   for k in archive_keys(arch, "gcms")), 30, "objects deleted")
            rows = index_rows(b, "gcms")
            self.assertTrue(rows and rows[0][0] >= lo - 0 and rows[0][1] >= lo, rows)
            self.assertEqual(sorted(r[2] for r in rows), archive_keys(arch, "gcms"))
            # Retention goes on (offsets up to ~2000 are expired and objects are still being
            # uploaded), so the log start may pass lo while the consumer reads: it then
            # resets to the new start, and what it reads must run from there to the end.
            got = consume_until(b.bootstrap, "gcms", lo, 2999)
            first = got[0][0] if got else None
            self.assertTrue(first is not None and lo <= first <= 2000, (lo, first))
            self.assertEqual([o for o, _ in got], list(range(first, 3000)))
            # The new start survives a restart.
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            self.assertGreaterEqual(earliest(b.bootstrap, "gcms")[0], rows[0][0])
        finally:
            b.close()

    def test_retention_bytes_trims_the_archive(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker(*GC_ARGS)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("gcb", 1, 1, config={
                "local.retention.bytes": "32768", "retention.bytes": "100000",
                "segment.ms": "1000"})])["gcb"].result(30)
            produce_values(b, "gcb", 6000)
            arch = os.path.join(b.data, "archive")
            lo = wait_until(lambda: earliest(b.bootstrap, "gcb")[0] or None, 60,
                            "the earliest offset to move")

            def archived_bytes():
                db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
                try:
                    return db.execute("SELECT COALESCE(SUM(size), 0) FROM segments "
                                      "WHERE topic='gcb'").fetchone()[0]
                finally:
                    db.close()
            wait_until(lambda: archived_bytes() <= 100000 + 65536, 60, "the archive to shrink")
            lo = earliest(b.bootstrap, "gcb")[0]
            rows = index_rows(b, "gcb")
            self.assertGreaterEqual(rows[0][0], lo - 16384)
            wait_until(lambda: sorted(r[2] for r in index_rows(b, "gcb")) ==
                       archive_keys(arch, "gcb"), 30, "bucket = index")
            lo = earliest(b.bootstrap, "gcb")[0]
            got, _, hi = consume_from(b.bootstrap, "gcb", lo, 6000 - lo)
            self.assertEqual([o for o, _ in got], list(range(lo, 6000)))
        finally:
            b.close()

    def test_delete_records_and_delete_topics_remove_objects(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker(*GC_ARGS)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic(t, 1, 1, config={"segment.ms": "1000"})
                             for t in ("gcdr", "gcdt")])["gcdr"].result(30)
            produce_values(b, "gcdr", 3000)
            produce_values(b, "gcdt", 3000)
            wait_high(b, "gcdr", 2999)
            wait_high(b, "gcdt", 2999)
            arch = os.path.join(b.data, "archive")
            self.assertTrue(archive_keys(arch, "gcdt"))
            # Each topic has its manifest in the archive (partitions, configs).
            import json
            man = os.path.join(arch, "_strata", "topics", "gcdt.json")
            wait_until(lambda: os.path.exists(man), 30, "the topic manifest")
            with open(man, "rb") as f:  # the body, then file://'s 56-byte checksum trailer
                self.assertEqual(json.loads(f.read()[:-56])["configs"]["segment.ms"], "1000")
            # DeleteRecords: objects wholly below the new start go.
            from kwire import Conn, delete_records_v1, parse_delete_records_v1
            c = Conn(b.port)
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("gcdr", 0, 1500))),
                             (1500, 0))
            c.close()
            wait_until(lambda: all(int(k.split("/")[3][21:41]) >= 1500
                                   for k in archive_keys(arch, "gcdr")), 30, "DeleteRecords GC")
            self.assertEqual(earliest(b.bootstrap, "gcdr")[0], 1500)
            got, _, _ = consume_from(b.bootstrap, "gcdr", 1500, 1500)
            self.assertEqual([o for o, _ in got], list(range(1500, 3000)))
            # DeleteTopics: every object and row of the topic goes.
            a.delete_topics(["gcdt"])["gcdt"].result(30)
            wait_until(lambda: archive_keys(arch, "gcdt") == [], 30, "DeleteTopics GC")
            self.assertEqual(index_rows(b, "gcdt"), [])
            wait_until(lambda: not os.path.exists(man), 30, "the manifest deleted")
            self.assertTrue(os.path.exists(os.path.join(arch, "_strata", "topics", "gcdr.json")))
            self.assertTrue(archive_keys(arch, "gcdr"))
        finally:
            b.close()

    def test_orphans_are_removed_after_a_grace_period(self):
        import shutil
        b = Broker(*GC_ARGS)
        try:
            produce(b, "gco", 3000)
            rows = wait_indexed(b, "gco")
            self.assertGreaterEqual(len(rows), 3)
            arch = os.path.join(b.data, "archive")
            base, last, key = rows[0]
            stale = key.replace("-0.seg.zst", "-7.seg.zst")  # below the indexed high
            shutil.copy(os.path.join(arch, key), os.path.join(arch, stale))
            above = "%s/%020d-%020d-0.seg.zst" % (key.rsplit("/", 1)[0], 10 ** 9, 10 ** 9 + 5)
            shutil.copy(os.path.join(arch, key), os.path.join(arch, above))
            # A foreign object is never touched.
            with open(os.path.join(arch, "README.txt"), "w") as f:
                f.write("not ours\n")
            b.wait_for(r"deleted orphaned objects n=1 first=%s" % re.escape(stale), timeout=30)
            self.assertTrue(os.path.exists(os.path.join(arch, above)))  # may be in flight
            wait_until(lambda: not os.path.exists(os.path.join(arch, above)), 60,
                       "the in-flight-looking orphan")
            self.assertTrue(os.path.exists(os.path.join(arch, "README.txt")))
            self.assertEqual([r for r in index_rows(b, "gco")][:len(rows)], rows)
            for _, _, k in index_rows(b, "gco"):
                self.assertTrue(os.path.exists(os.path.join(arch, k)), k)
        finally:
            b.close()


class KillAndOutageTest(unittest.TestCase):
    def test_kill9_during_uploads_then_restart(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        b = Broker(*GC_ARGS)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("k9", 1, 1, config={
                "local.retention.bytes": "32768", "segment.ms": "1000"})])["k9"].result(30)
            values = produce_values(b, "k9", 3000)
            b.kill9()  # uploads are still running
            b.start()
            values += produce_values(b, "k9", 2000, 3000)
            rows = wait_high(b, "k9", 4999)
            assert_contiguous(self, rows)
            self.assertEqual(rows[0][0], 0)
            self.assertEqual(len(set(r[0] for r in rows)), len(rows))  # no duplicates
            arch = os.path.join(b.data, "archive")
            # Nothing in the bucket without a row (orphans removed).
            wait_until(lambda: archive_keys(arch, "k9") == sorted(r[2] for r in rows), 60,
                       "no orphans")
            got, lo, hi = consume_from(b.bootstrap, "k9", 0, 5000)
            self.assertEqual((lo, hi), (0, 5000))
            self.assertEqual([v for _, v in got], values)
        finally:
            b.close()

    def test_s3_outage_during_produce(self):
        from confluent_kafka.admin import AdminClient, NewTopic
        own = tempfile.mkdtemp(prefix="strata-s3o-")
        port = reserved_port()  # the server is down a while: nobody may take its port
        url = start_s3(port, own)
        b = None
        try:
            b = Broker("-X", "strata.archive.url=s3://strata/outage-%d" % os.getpid(), *GC_ARGS,
                       env=s3_env(url))
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("out", 1, 1, config={
                "local.retention.bytes": "32768", "segment.ms": "1000"})])["out"].result(30)
            values = produce_values(b, "out", 2000)
            wait_high(b, "out", 1999)
            stop_s3(own)
            # Production never fails while the store is down.
            values += produce_values(b, "out", 3000, 2000)
            b.wait_for(r"upload PUT failed tp=out-0 .*not archived yet: offsets=[1-9]",
                       timeout=120, seen=True)
            # The outage outlasts several upload attempts (each one is an
            # object-store call with its own retries, then the uploader backs
            # off): a backing-off partition once leaked its upload slot at
            # every failure, so after max_uploads (2) failures nothing was
            # uploaded again, whenever the store came back.
            for n in range(2, 4):
                b.wait_for(r"upload PUT failed tp=out-0 .*retrying in %d ms" % (1000 << (n - 1)),
                           timeout=120, seen=True)
            # Local retention keeps what is not archived.
            first_local = int(os.path.basename(local_segments(b, "out")[0])[:20])
            self.assertLessEqual(first_local, 2000)
            time.sleep(2)
            start_s3(port, own)
            rows = wait_high(b, "out", 4999, timeout=300)
            assert_contiguous(self, rows)
            self.assertEqual(rows[0][0], 0)
            got, lo, hi = consume_from(b.bootstrap, "out", 0, 5000)
            self.assertEqual((lo, hi), (0, 5000))
            self.assertEqual([v for _, v in got], values)
        finally:
            if b:
                b.close()
            stop_s3(own)


def metric(b, name):
    """The value of an unlabelled metric of b's GET /metrics (it must be there)."""
    from test_admin import http, parse_metrics
    ms = parse_metrics(http(b.admin_port, "GET", "/metrics", timeout=30)[2])
    assert (name, frozenset()) in ms, "%s not in /metrics" % name
    return ms[(name, frozenset())]


class DiskAlertTest(unittest.TestCase):
    """Local retention keeps what is not archived, so an object store that
    stays down fills the disk: free space is a metric, and under the alert
    threshold a warning says so."""

    def test_low_free_space_warns_and_sets_the_metric(self):
        b = Broker("-X", "strata.disk.alert.free.percent=100")  # always under 100 %
        try:
            b.wait_for(r"free disk space is low on .*: \d+ of \d+ bytes free.*object store",
                       seen=True)
            wait_until(lambda: metric(b, "strata_disk_space_low") == 1, 30, "the low gauge")
            st = os.statvfs(b.data)
            total = metric(b, "strata_disk_total_bytes")
            self.assertAlmostEqual(total, st.f_blocks * st.f_frsize, delta=total * 0.01)
            free = metric(b, "strata_disk_free_bytes")
            self.assertGreater(free, 0)
            self.assertLessEqual(free, total)
        finally:
            b.close()

    def test_enough_free_space_is_quiet(self):
        b = Broker("-X", "strata.disk.alert.free.percent=0", "-X",
                   "strata.disk.alert.free.bytes=1")
        try:
            wait_until(lambda: metric(b, "strata_disk_free_bytes") > 0, 30, "the free gauge")
            self.assertEqual(metric(b, "strata_disk_space_low"), 0)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            self.assertNotIn("free disk space is low", out)
        finally:
            b.close()


class RecoverEndpointTest(unittest.TestCase):
    def test_post_storage_recover_restores_a_topic_from_the_bucket(self):
        import shutil
        import urllib.request
        from confluent_kafka.admin import AdminClient, NewTopic
        with tempfile.TemporaryDirectory(prefix="strata-arch-") as d1, \
                tempfile.TemporaryDirectory(prefix="strata-arch-") as d2:
            b = Broker("-X", "strata.archive.url=file://" + d1, *GC_ARGS)
            try:
                a = AdminClient({"bootstrap.servers": b.bootstrap})
                a.create_topics([NewTopic("rep", 1, 1, config={
                    "segment.ms": "1000"})])["rep"].result(30)
                values = produce_values(b, "rep", 3000)
                rows = wait_high(b, "rep", 2999)
            finally:
                b.close()
            b2 = Broker("-X", "strata.archive.url=file://" + d2, *GC_ARGS)
            try:
                # Objects appear in the archive of a running broker (copied
                # from another one): the operator asks for a rebuild.
                shutil.copytree(d1, d2, dirs_exist_ok=True)
                req = urllib.request.Request("http://127.0.0.1:%d/v1/storage/recover"
                                             % b2.admin_port, data=b"{}", method="POST")
                with urllib.request.urlopen(req, timeout=30) as r:
                    self.assertEqual(r.status, 202)
                b2.wait_for(r"recovery from the archive done status=\S+ objects=%d" % len(rows),
                            timeout=60)
                self.assertEqual(index_rows(b2, "rep"), rows)
                def offsets():
                    try:
                        return earliest(b2.bootstrap, "rep") == (0, 3000)
                    except Exception:  # the topic is being created
                        return False
                wait_until(offsets, 30, "the archived offsets")
                got, lo, hi = consume_from(b2.bootstrap, "rep", 0, 3000)
                self.assertEqual([v for _, v in got], values)
                more = produce_values(b2, "rep", 10, 3000)
                got, lo, hi = consume_from(b2.bootstrap, "rep", 2995, 15)
                self.assertEqual([v for _, v in got], values[2995:] + more)
            finally:
                b2.close()


def hydration_stats(log):
    """Sum the per-shard 'hydration stats' lines a broker logs at shutdown."""
    tot = {}
    for line in log.splitlines():
        if "hydration stats" not in line:
            continue
        for k, v in re.findall(r"(\w+)=(\d+)", line):
            tot[k] = tot.get(k, 0) + int(v)
    return tot


def cache_files(b):
    return glob.glob(os.path.join(b.data, "cache", "*", "*.hc"))


def restart_with_empty_cache(test, b):
    """Stop b, delete its chunk cache while it is stopped, start it again: the
    next replay is cold."""
    import shutil
    rc, log = b.stop()
    test.assertEqual(rc, 0, log)
    shutil.rmtree(os.path.join(b.data, "cache"), ignore_errors=True)
    b.start()


def replay(bootstrap, topic, n, timeout=120):
    """Read n records of partition 0 from offset 0. fetch.wait.max.ms=0: no
    fetch is parked when the consumer closes (closing a connection while its
    fetch waits on another shard is a known kh_fetch race under ASan)."""
    return consume_from(bootstrap, topic, 0, n, timeout, "tier-hyd", {"fetch.wait.max.ms": 0})


def fill_archived(b, topic, n):
    """Create topic (1 partition, 512 KiB kept locally), produce n values of
    ~262 bytes and wait until local retention settled; return the values.
    Replays compare what was downloaded: local retention must be done first
    (every sealed segment uploaded, nothing more to delete), or a segment read
    locally by a cold replay could be deleted at a restart and downloaded by
    the warm one."""
    import hashlib
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(topic, 1, 1, config={
        "local.retention.bytes": "524288"})])[topic].result(30)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    values = []
    for i in range(n):
        v = b"%06d-" % i
        v += hashlib.sha256(v).hexdigest().encode() * 4
        values.append(v)
        p.produce(topic, v, partition=0)
        if i % 2000 == 0:
            p.flush(30)
    assert p.flush(60) == 0
    wait_until(lambda: local_settled(b, topic, 524288), 120, "local retention to settle")
    return values


class HydrationCacheTest(unittest.TestCase):
    """Replays of archived data go through the on-disk chunk cache: a cold
    replay (cache deleted while stopped) downloads with read-ahead and fills
    it, a warm replay after a restart downloads nothing, and concurrent
    readers of one archived range get identical data."""

    def test_cold_then_warm_replay_and_concurrent_readers(self):
        import shutil
        import threading
        b = Broker("-X", "remote.log.storage.system.enable=true", "-X",
                   "log.retention.check.interval.ms=200", "-X", "log.segment.bytes=262144")
        try:
            n = 20000
            values = fill_archived(b, "hyd", n)
            self.assertGreater(int(os.path.basename(local_segments(b, "hyd")[0])[:20]), n // 2)
            # Cold: the cache directory is deleted while the broker is stopped.
            restart_with_empty_cache(self, b)
            got, lo, hi = replay(b.bootstrap, "hyd", n)
            self.assertEqual((lo, hi), (0, n))
            self.assertEqual([o for o, _ in got], list(range(n)))
            self.assertEqual([v for _, v in got], values)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            cold = hydration_stats(log)
            self.assertGreater(cold.get("downloads", 0), 0, log)
            self.assertGreater(cold.get("readahead_downloads", 0), 0, log)
            self.assertEqual(cold.get("cache_corrupt", 1), 0, log)
            self.assertGreater(len(cache_files(b)), 0)
            # Warm: after a restart the cache answers, nothing is downloaded,
            # even for fetches that arrive while the cache is still being
            # rebuilt from its files (stray files it must read and remove make
            # the rebuild take a while: reads wait for it instead of missing).
            for d in glob.glob(os.path.join(b.data, "cache", "*")):
                for k in range(20000):
                    with open(os.path.join(d, "%016x.hc" % (0xf000000000 + k)), "wb") as f:
                        f.write(b"not a cache file")
            b.start()
            got, _, _ = replay(b.bootstrap, "hyd", n)
            self.assertEqual([v for _, v in got], values)
            rc, log = b.stop()
            warm = hydration_stats(log)
            self.assertEqual(warm.get("downloads", -1), 0, log)
            self.assertGreater(warm.get("cache_hits", 0), 0, log)
            # A corrupt cached chunk is detected and fetched again.
            victim = sorted(cache_files(b))[0]
            with open(victim, "r+b") as f:
                f.seek(-10, os.SEEK_END)
                f.write(b"\xff" * 10)
            b.start()
            got, _, _ = replay(b.bootstrap, "hyd", n)
            self.assertEqual([v for _, v in got], values)
            rc, log = b.stop()
            fixed = hydration_stats(log)
            self.assertEqual(fixed.get("cache_corrupt"), 1, log)
            self.assertEqual(fixed.get("downloads"), 1, log)
            # Concurrent readers of the same archived range, empty cache: one
            # download per chunk, shared (or cached by the first reader).
            shutil.rmtree(os.path.join(b.data, "cache"))
            b.start()
            results = [None] * 3

            def reader(k):
                results[k] = replay(b.bootstrap, "hyd", n)[0]
            ts = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(300)
            for r in results:
                self.assertEqual([v for _, v in r], values)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            conc = hydration_stats(log)
            self.assertLess(conc.get("downloaded_bytes", 0), 2 * cold["downloaded_bytes"], log)
        finally:
            b.close()

    def test_warm_replay_reads_the_cache_ahead_of_the_reader(self):
        """Objects of several chunks (4 MiB segments, ~1 MiB chunks): a warm
        replay reads the next cached chunks of an object while a fetch is
        served (cache_ahead_hits), downloads nothing and returns every record
        as produced. Before, each fetch waited for its own cache read."""
        b = Broker("-X", "remote.log.storage.system.enable=true", "-X",
                   "log.retention.check.interval.ms=200", "-X", "log.segment.bytes=4194304")
        try:
            n = 60000
            values = fill_archived(b, "ahead", n)
            restart_with_empty_cache(self, b)
            got, _, _ = replay(b.bootstrap, "ahead", n)
            self.assertEqual([v for _, v in got], values)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            self.assertGreater(hydration_stats(log).get("downloads", 0), 0, log)
            b.start()
            got, _, _ = replay(b.bootstrap, "ahead", n)
            self.assertEqual([o for o, _ in got], list(range(n)))
            self.assertEqual([v for _, v in got], values)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            warm = hydration_stats(log)
            self.assertEqual(warm.get("downloads", -1), 0, log)
            self.assertGreater(warm.get("cache_ahead_hits", 0), 0, log)
            self.assertLessEqual(warm["cache_ahead_hits"], warm["cache_hits"], log)
        finally:
            b.close()



class PrefetchTest(unittest.TestCase):
    """A cold replay from the S3 server keeps two object GETs in flight:
    while the reader is in object N the read-ahead has queued the GETs of
    N+1 and N+2 (strata_tier_hydration_prefetch_windows_total counts the
    objects queued two or more ahead), and still downloads every object once:
    one GET per download (object store counter), and the downloads are exactly
    the archive's first objects, each chunk's bytes once."""

    def test_cold_replay_prefetches_across_objects_once_each(self):
        import shutil
        from test_admin import http, parse_metrics
        s3dir = tempfile.mkdtemp(prefix="strata-s3pf-")
        url = start_s3(free_port(), s3dir)
        b = None
        try:
            # 256 KiB segments: one chunk (1 MiB frame target) and one read-ahead
            # window per object.
            b = Broker("-X", "remote.log.storage.system.enable=true",
                       "-X", "strata.archive.url=s3://strata/pf-%d" % os.getpid(),
                       "-X", "log.retention.check.interval.ms=200",
                       "-X", "log.segment.bytes=262144", env=s3_env(url))
            n = 20000
            values = fill_archived(b, "pf", n)
            restart_with_empty_cache(self, b)

            def counters():
                m = parse_metrics(http(b.admin_port, "GET", "/metrics", timeout=30)[2])
                return (m[("strata_tier_hydration_downloads_total", frozenset())],
                        m[("strata_tier_hydration_downloaded_bytes_total", frozenset())],
                        m[("strata_object_store_requests_total", frozenset({("op", "get")}))],
                        m[("strata_tier_hydration_prefetch_windows_total", frozenset())])
            before = counters()
            got, lo, hi = replay(b.bootstrap, "pf", n)
            self.assertEqual((lo, hi), (0, n))
            self.assertEqual([v for _, v in got], values)
            # The read-ahead queued past the reader finishes after the replay.
            after = counters()
            for _ in range(120):
                time.sleep(0.5)
                now = counters()
                if now == after:
                    break
                after = now
            downloads, dl_bytes, gets, prefetched = (x - y for x, y in zip(after, before))
            print("replay: downloads %d (%d bytes), GETs %d, prefetch windows %d"
                  % (downloads, dl_bytes, gets, prefetched), file=sys.stderr)
            self.assertEqual(gets, downloads)
            db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
            try:
                objs = db.execute(
                    "SELECT s.object_key, count(*), sum(c.obj_len) FROM segments s "
                    "JOIN chunks c ON c.segment = s.id WHERE s.topic='pf' AND s.partition=0 "
                    "GROUP BY s.id ORDER BY s.base_offset").fetchall()
            finally:
                db.close()
            self.assertGreaterEqual(len(objs), 8)
            self.assertEqual({c for _, c, _ in objs}, {1})  # one chunk: one GET per object
            self.assertLessEqual(downloads, len(objs))
            self.assertGreaterEqual(downloads, len(objs) - 3)  # all but the local tail
            self.assertEqual(dl_bytes, sum(sz for _, _, sz in objs[:int(downloads)]))
            # Every object after the first three was queued while two others
            # were ahead of the reader (with one GET ahead: none).
            self.assertGreaterEqual(prefetched, downloads // 2)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
        finally:
            if b:
                b.close()
            stop_s3(s3dir)
            shutil.rmtree(s3dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
