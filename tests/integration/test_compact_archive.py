#!/usr/bin/python3
"""Compaction of archived data (issue 19) against the S3 test server.

- A topic with remote storage and many overwritten keys (gzip batches from
  confluent-kafka, keys overwritten up to 12 times, their latest values all
  over the log, a tenth of them tombstones) is archived and its local
  segments deleted by local retention; then it becomes compacted
  (cleanup.policy=compact): the archive cleaner rewrites the archived
  objects, the index switches to them and the old objects go. A replay from
  offset 0, served from the bucket (over 80% of the latest values lie below
  the local log's start), by confluent-kafka, kafka-python and kcat
  returns exactly the model's result (the latest value of every key, once,
  tombstones included: delete.retention.ms keeps them), the bucket's bytes
  shrink, `zstd -dc` of a compacted object is a valid segment with gaps,
  `strata archive verify` accepts the archive, /metrics counts the work, and
  a broker on an empty data directory recovers the compacted archive (its
  index rebuilt from the bucket) and replays the same records.
- A dirty share below min.cleanable.dirty.ratio waits, and is compacted
  once max.compaction.lag.ms passes.
- kill -9 at the moments that matter of throttled archive passes (new objects stored,
  index not switched; index switched, old objects not deleted yet; a random
  moment): right after each kill `strata archive cat` reads the bucket, orphans
  and all, as one partition (every offset once, every key there); afterwards
  every key's latest value is there exactly once, and once GC ran no object
  in the bucket lacks an index row (no orphan).
Seeded (ACOMP_SEED) for reproducibility. ACOMP_KEYS scales the replay test (4000 keys,
about 32 MB of values; 60000 keys write about 470 MB, a bucket of 270 MB)."""
import glob
import json
import os
import random
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import STRATAD, Broker, free_port  # noqa: E402
from test_compact import read_confluent, read_kafka_python, read_kcat  # noqa: E402
from test_tiering import metric, s3_env, start_s3, stop_s3  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

SEED = int(os.environ.get("ACOMP_SEED", random.randrange(1 << 30)))
STRATA = os.path.join(os.path.dirname(STRATAD), "strata")
# segment.ms rolls the last records out of the active segment, which no
# cleaner compacts (Kafka's head of the log).
BASE_CFG = {"segment.bytes": str(256 << 10), "segment.ms": "1000",
            "local.retention.bytes": str(256 << 10), "retention.ms": "-1"}
COMPACT_CFG = dict(BASE_CFG, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01",
                                "min.compaction.lag.ms": "0"})


def broker_args(url):
    return ["-X", "remote.log.storage.system.enable=true", "-X", "strata.archive.url=" + url,
            "-X", "log.retention.check.interval.ms=200", "-X", "log.cleaner.backoff.ms=200",
            "-X", "strata.archive.max.upload.interval.ms=1000"]


def produce_rounds(b, topic, n_keys, rounds, rng):
    """Round r writes the first n_keys * (rounds - r) / rounds keys (shuffled),
    ~1.2 KB values: key i is overwritten up to `rounds` times and its latest
    value lies anywhere in the log; a tenth of the keys end with a tombstone.
    Returns (model, last offset)."""
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": "gzip", "enable.idempotence": True})
    model, last, errors = {}, [-1], []

    def dr(err, msg):
        if err:
            errors.append(err)
        else:
            last[0] = max(last[0], msg.offset())

    for r in range(rounds):
        n = n_keys * (rounds - r) // rounds
        idx = list(range(n))
        rng.shuffle(idx)
        for i in idx:
            k = "key-%05d" % i
            is_final = i >= n_keys * (rounds - r - 1) // rounds
            v = None if is_final and i % 10 == 3 else "r%02d-%s-%x" % (r, k, rng.getrandbits(4800))
            model[k] = v
            p.produce(topic, key=k.encode(), value=None if v is None else v.encode(), partition=0,
                      on_delivery=dr)
            p.poll(0)
        assert p.flush(120) == 0
    assert not errors, errors
    return model, last[0]


def index_rows(b, topic):
    """(object name, base, last, size) of the partition's index rows."""
    db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
    try:
        rows = db.execute("SELECT object_key, base_offset, last_offset, size FROM segments "
                          "WHERE topic=? AND partition=0 ORDER BY base_offset",
                          (topic,)).fetchall()
        return [(os.path.basename(k), base, last, size) for k, base, last, size in rows]
    finally:
        db.close()


def clean_end(b, topic):
    db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
    try:
        r = db.execute("SELECT clean_end FROM compacted WHERE topic=? AND partition=0",
                       (topic,)).fetchone()
        return -1 if r is None else r[0]
    finally:
        db.close()


def bucket_objects(s3dir):
    """{object name: bytes} of the segment objects in the S3 test server's
    store whose PUT completed (the server writes their metadata after)."""
    out = {}
    for path in glob.glob(os.path.join(s3dir, "store", "**", "*.seg.zst*"), recursive=True):
        name = os.path.basename(path)
        if (not name.endswith(".seg.zst._S3rver_object") or
                not os.path.exists(path[:-len("object")] + "metadata.json")):
            continue
        try:
            out[name[:-len("._S3rver_object")]] = os.path.getsize(path)
        except OSError:
            pass  # deleted since the listing
    return out


def drop_partial_puts(s3dir):
    """The S3 test server writes a PUT's bytes straight into the object's
    file and its metadata once they are all there: a client killed mid-PUT
    leaves a short object, which S3 never shows (an object appears when its
    PUT completes). Remove those, as S3 would never have had them."""
    for path in glob.glob(os.path.join(s3dir, "store", "**", "*.seg.zst._S3rver_object"),
                          recursive=True):
        if not os.path.exists(path[:-len("object")] + "metadata.json"):
            for p in (path, path + ".md5"):
                try:
                    os.unlink(p)
                except OSError:
                    pass


def local_clean_end(b, topic):
    """How far the local cleaner cleaned the partition (its checkpoint)."""
    try:
        with open(os.path.join(b.data, "%s-0" % topic, "cleaner-offset-checkpoint")) as f:
            return int(f.read().strip() or -1)
    except (OSError, ValueError):
        return -1


def local_start(b, topic):
    segs = sorted(glob.glob(os.path.join(b.data, "%s-0" % topic, "*.log")))
    return int(os.path.basename(segs[0])[:20]) if segs else -1


def wait_until(pred, timeout, what, state=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s%s" % (what, ": %r" % (state(),) if state else ""))


def segment_batches(raw):
    """(base offset, last offset, records) of every batch of a segment file."""
    out, pos = [], 0
    while pos < len(raw):
        base, blen = struct.unpack_from(">qi", raw, pos)
        delta = struct.unpack_from(">i", raw, pos + 23)[0]
        count = struct.unpack_from(">i", raw, pos + 57)[0]
        out.append((base, base + delta, count))
        pos += 12 + blen
    assert pos == len(raw)
    return out


class ArchiveCompactionTest(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(SEED)
        self.s3dir = tempfile.mkdtemp(prefix="strata-s3-")
        self.env = s3_env(start_s3(free_port(), self.s3dir))
        self.url = "s3://strata/acomp-%d" % os.getpid()

    def tearDown(self):
        stop_s3(self.s3dir)

    def archive_all(self, b, topic, n_keys, rounds):
        """Produce, then wait until the archive holds everything and local
        retention deleted the head of the log."""
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1, config=BASE_CFG)])[topic].result(30)
        model, last = produce_rounds(b, topic, n_keys, rounds, self.rng)
        wait_until(lambda: index_rows(b, topic) and index_rows(b, topic)[-1][2] == last and
                   local_start(b, topic) > 0, 180, "the archive to hold everything",
                   lambda: (index_rows(b, topic)[-1:], last, local_start(b, topic)))
        return model, last

    def compact(self, b, topic):
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        res = ConfigResource("topic", topic, set_config=COMPACT_CFG)
        admin.alter_configs([res])[res].result(30)

    def converged(self, b, topic, last):
        """The archive and the local log compacted up to their end, and the
        bucket holds exactly the indexed objects."""
        rows = index_rows(b, topic)
        return (rows and rows[-1][2] == last and clean_end(b, topic) == last + 1 and
                local_clean_end(b, topic) == last + 1 and
                set(bucket_objects(self.s3dir)) == {r[0] for r in rows})

    def check_replay(self, b, topic, model, last, readers, local_from=None):
        def order(kv):
            return kv[0], kv[1] is None, kv[1] or ""
        want = sorted(model.items(), key=order)
        for name, read in readers:
            got = read(b, topic, last)
            if local_from is not None:  # most of the latest values come from the bucket
                self.assertGreater(sum(o < local_from for o, _, _ in got) * 10, len(want) * 8)
            self.assertEqual([o for o, _, _ in got], sorted({o for o, _, _ in got}),
                             "%s: offsets not increasing or duplicated" % name)
            self.assertEqual(sorted(((k, v) for _, k, v in got), key=order), want,
                             "%s: not exactly the latest value of every key" % name)

    def test_replay_from_the_compacted_archive(self):
        n_keys, rounds, topic = int(os.environ.get("ACOMP_KEYS", "4000")), 12, "acomp"
        b = Broker(*broker_args(self.url), env=self.env)
        try:
            t0 = time.monotonic()
            model, last = self.archive_all(b, topic, n_keys, rounds)
            before = sum(bucket_objects(self.s3dir).values())
            n_before = len(index_rows(b, topic))
            t1 = time.monotonic()
            self.compact(b, topic)
            wait_until(lambda: self.converged(b, topic, last), 300, "the archive to compact")
            t2 = time.monotonic()
            after = sum(bucket_objects(self.s3dir).values())
            rows = index_rows(b, topic)
            self.assertGreater(sum("_c" in r[0] for r in rows) * 2, len(rows), rows)
            self.assertLess(after * 4, before, (before, after))
            # Served from the bucket: the local log holds the last few records.
            start = local_start(b, topic)
            self.assertGreater(start, last * 9 // 10)

            def kcat(b, topic, last):  # kcat prints a null value as ""
                return [(o, k, None if v == "" and model.get(k) is None else v)
                        for o, k, v in read_kcat(b, topic)]
            self.check_replay(b, topic, model, last, [("confluent-kafka", read_confluent),
                                                      ("kafka-python", read_kafka_python),
                                                      ("kcat", kcat)], start)
            # The object format: `zstd -dc` of a compacted object is a segment
            # with gaps, its first and last offsets kept.
            key = rows[0][0]
            path = glob.glob(os.path.join(self.s3dir, "store", "**", key + "._S3rver_object"),
                             recursive=True)[0]
            raw = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
            batches = segment_batches(raw)
            self.assertEqual((batches[0][0], batches[-1][1]), (rows[0][1], rows[0][2]))
            self.assertLess(sum(c for _, _, c in batches), rows[0][2] - rows[0][1] + 1)
            # /metrics counts the work.
            pre = "strata_tier_archive_compaction_"
            self.assertGreaterEqual(metric(b, pre + "passes_total"), 1)
            self.assertGreater(metric(b, pre + "objects_total"), n_before // 2)
            self.assertGreater(metric(b, pre + "read_bytes_total"),
                               4 * metric(b, pre + "written_bytes_total"))
            self.assertGreater(metric(b, pre + "removed_records_total"), n_keys)
            self.assertEqual(metric(b, pre + "errors_total"), 0)
            # ... and so does `strata storage status` (GET /v1/storage).
            st = subprocess.run([STRATA, "--admin-url", "http://127.0.0.1:%d" % b.admin_port,
                                 "storage", "status", "--format", "json"],
                                capture_output=True, text=True, timeout=60)
            self.assertEqual(st.returncode, 0, st.stderr)
            remote = json.loads(st.stdout)["remote"]
            self.assertGreater(remote["archive_compacted_objects"], n_before // 2)
            self.assertGreater(remote["archive_compaction_bytes_read"],
                               4 * remote["archive_compaction_bytes_written"])
            # `strata archive verify` accepts the gaps and agrees with the index.
            v = subprocess.run([STRATA, "archive", "verify", "--archive", self.url, "--index",
                                os.path.join(b.data, "remote-index.db")],
                               capture_output=True, text=True, timeout=300, env=self.env)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            print("archive compaction: seed=%d keys=%d rounds=%d objects=%d bucket %d -> %d "
                  "bytes; produce+archive %.1f s, compaction %.1f s"
                  % (SEED, n_keys, rounds, n_before, before, after, t1 - t0, t2 - t1),
                  file=sys.stderr)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
        finally:
            b.close()
        # A broker on an empty data directory rebuilds its index from the
        # bucket: the compacted objects (the last generation of each range).
        b2 = Broker(*broker_args(self.url), env=self.env)
        try:
            b2.wait_for(r"recovered from the archive: objects=%d partitions=1" % len(rows),
                        seen=True)
            self.assertEqual(index_rows(b2, topic), rows)
            self.check_replay(b2, topic, model, last, [("confluent-kafka", read_confluent)])
            rc, log = b2.stop()
            self.assertEqual(rc, 0, log)
        finally:
            b2.close()

    def test_max_compaction_lag_forces_a_pass(self):
        """A dirty share below min.cleanable.dirty.ratio is compacted once a
        dirty object began longer than max.compaction.lag.ms ago."""
        n_keys, rounds, topic = 500, 4, "acompl"
        b = Broker(*broker_args(self.url), env=self.env)
        try:
            model, last = self.archive_all(b, topic, n_keys, rounds)
            # The first passes with a low ratio: the archive may hold the active segment's
            # durable batches, which the local cleaner leaves until segment.ms rolls them;
            # with 0.9 that small rolled rest never passed the ratio (fresh run 28).
            self.compact(b, topic)
            wait_until(lambda: self.converged(b, topic, last), 120, "the first pass",
                       lambda: (last, clean_end(b, topic), local_clean_end(b, topic)))
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            cfg = dict(COMPACT_CFG, **{"min.cleanable.dirty.ratio": "0.9"})
            res = ConfigResource("topic", topic, set_config=cfg)
            admin.alter_configs([res])[res].result(30)
            # A new round of every key: about half the archive is dirty.
            more, last = produce_rounds(b, topic, n_keys, 1, self.rng)
            model.update(more)
            wait_until(lambda: index_rows(b, topic)[-1][2] == last, 120, "the upload")
            time.sleep(3)
            self.assertLess(clean_end(b, topic), last + 1)  # below the ratio: no pass
            cfg["max.compaction.lag.ms"] = "1000"
            res = ConfigResource("topic", topic, set_config=cfg)
            admin.alter_configs([res])[res].result(30)
            wait_until(lambda: self.converged(b, topic, last), 120, "the overdue pass")
            self.check_replay(b, topic, model, last, [("confluent-kafka", read_confluent)])
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
        finally:
            b.close()

    def test_kill9_during_archive_passes(self):
        n_keys, rounds, topic = 1500, 8, "acompk"
        # Throttled passes (object bytes read + written) widen the moments.
        b = Broker(*broker_args(self.url), "-X", "log.cleaner.io.max.bytes.per.second=8000000",
                   env=self.env)
        try:
            model, last = self.archive_all(b, topic, n_keys, rounds)
            self.compact(b, topic)

            def stored_not_switched():
                objs = bucket_objects(self.s3dir)
                return (any("_c" in k for k in objs) and
                        not any("_c" in r[0] for r in index_rows(b, topic)))

            def switched_not_deleted():
                rows = index_rows(b, topic)
                indexed = {r[0] for r in rows}
                return (any("_c" in k for k in indexed) and
                        any(k not in indexed for k in bucket_objects(self.s3dir)))

            kills = []
            for moment, pred in (("stored, not switched", stored_not_switched),
                                 ("switched, old objects not deleted", switched_not_deleted),
                                 ("random", None)):
                if pred:
                    wait_until(pred, 120, moment)
                else:
                    time.sleep(self.rng.uniform(0.2, 3))
                b.kill9()
                drop_partial_puts(self.s3dir)
                orphans = set(bucket_objects(self.s3dir)) - {r[0] for r in index_rows(b, topic)}
                kills.append((moment, len(orphans)))
                # Offline, the bucket with its orphans reads as one partition:
                # every offset once (of one range, the last generation).
                cat = subprocess.run([STRATA, "archive", "cat", topic, "0", "--from", "0", "-f",
                                      "%o %k\\n", "--archive", self.url], capture_output=True,
                                     text=True, timeout=120, env=self.env)
                self.assertEqual(cat.returncode, 0, cat.stderr)
                offs = [int(ln.split()[0]) for ln in cat.stdout.splitlines()]
                self.assertEqual(offs, sorted(set(offs)), moment)
                self.assertEqual({ln.split()[1] for ln in cat.stdout.splitlines()}, set(model))
                b.start()
            wait_until(lambda: self.converged(b, topic, last), 300,
                       "the archive to compact and GC to remove the orphans")
            self.assertEqual(set(bucket_objects(self.s3dir)),
                             {r[0] for r in index_rows(b, topic)})
            self.check_replay(b, topic, model, last, [("confluent-kafka", read_confluent)])
            print("archive compaction kill -9: seed=%d orphans left by each kill: %s"
                  % (SEED, kills), file=sys.stderr)
            self.assertGreater(kills[0][1], 0)
            self.assertGreater(kills[1][1], 0)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main()
