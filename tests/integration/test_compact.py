#!/usr/bin/python3
"""Log compaction (issue 19) against a real stratad with real clients.

- A compacted topic written by confluent-kafka (idempotent, gzip) and
  kafka-python (gzip), with overwritten keys and tombstones
  (delete.retention.ms=0), is cleaned by the shard's cleaner; then
  confluent-kafka, kafka-python, kcat and kafkajs each read it from offset 0
  and get exactly the model's result: the latest value of every live key,
  once, in increasing offsets with gaps, and the partition's bytes shrank.
  A record without a key is refused with INVALID_RECORD.
- kill -9 at random moments while a throttled cleaner rewrites segments:
  after each restart no half-done file is left, and at the end every key's
  latest acknowledged value is there exactly once.
Seeded (COMPACT_SEED) for reproducibility."""
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, STRATAD  # noqa: E402

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

SEED = int(os.environ.get("COMPACT_SEED", random.randrange(1 << 30)))
STRATA = os.path.join(os.path.dirname(STRATAD), "strata")
JS_DIR = os.path.join(os.path.dirname(__file__), "js")
CLEANER = ["-X", "log.cleaner.backoff.ms=200", "-X", "log.retention.check.interval.ms=200"]
TOPIC_CFG = {"cleanup.policy": "compact", "segment.bytes": "16384", "segment.ms": "800",
             "min.cleanable.dirty.ratio": "0", "delete.retention.ms": "0"}


def create(b, topic, **extra):
    cfg = dict(TOPIC_CFG, **extra)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=cfg)])[topic].result(30)


def alter(b, topic, **cfg):
    """AlterConfigs (replaces the topic's configs, as Kafka's does)."""
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource("topic", topic, set_config=cfg)
    admin.alter_configs([res])[res].result(30)


def produce_confluent(b, topic, items, **conf):
    """items: [(key, value or None)]; returns how many were acknowledged."""
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, **conf})
    acked = []

    def cb(err, msg):
        if err is None:
            acked.append(msg.offset())
        else:
            raise AssertionError("delivery failed: %s" % err)

    for k, v in items:
        p.produce(topic, key=k.encode(), value=None if v is None else v.encode(), on_delivery=cb)
        p.poll(0)
    assert p.flush(60) == 0
    return len(acked)


def produce_kafka_python(b, topic, items):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", compression_type="gzip",
                      linger_ms=5)
    futs = [p.send(topic, key=k.encode(), value=None if v is None else v.encode())
            for k, v in items]
    for f in futs:
        f.get(30)
    p.close()
    return len(futs)


def read_confluent(b, topic, last):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cf-%d" % time.monotonic_ns(),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline and (not out or out[-1][0] < last):
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append((m.offset(), m.key().decode() if m.key() else None,
                    m.value().decode() if m.value() is not None else None))
    c.close()
    return out


def read_kafka_python(b, topic, last):
    from kafka import KafkaConsumer, TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, enable_auto_commit=False)
    tp = KTP(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    out, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline and (not out or out[-1][0] < last):
        for recs in c.poll(500).values():
            for m in recs:
                out.append((m.offset, m.key.decode() if m.key else None,
                            m.value.decode() if m.value is not None else None))
    c.close()
    return out


def read_kcat(b, topic):
    res = subprocess.run(["kcat", "-C", "-b", b.bootstrap, "-t", topic, "-p", "0", "-o",
                          "beginning", "-e", "-q", "-f", "%o\t%k\t%s\n"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = []
    for line in res.stdout.splitlines():
        o, k, v = line.split("\t")
        out.append((int(o), k, v))
    return out


def read_kafkajs(b, topic, last):
    env = dict(os.environ, BOOTSTRAP=b.bootstrap, TOPIC=topic, LAST=str(last))
    res = subprocess.run(["node", "compact_kafkajs.js"], cwd=JS_DIR, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return [tuple(r) for r in json.loads(res.stdout.strip().splitlines()[-1])]


def part_dir(b, topic):
    return os.path.join(b.data, "%s-0" % topic)


def part_bytes(b, topic):
    d = part_dir(b, topic)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))


def wait_cleaned(b, topic, end, timeout=90):
    """Wait until a cleaner pass covered every offset below end."""
    deadline = time.monotonic() + timeout
    rx = re.compile(r"cleaned dir=\S*/%s-0 up_to=(\d+)" % re.escape(topic))
    while True:
        ups = [int(m.group(1)) for m in map(rx.search, b.lines) if m]
        if ups and max(ups) >= end:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("not cleaned up to %d: %s\n%s" % (end, ups, "".join(b.lines[-30:])))
        try:
            b.wait_for(rx.pattern, timeout=min(left, 5))
        except AssertionError:
            pass


class CompactTest(unittest.TestCase):
    def setUp(self):
        self.b = Broker(*CLEANER)

    def tearDown(self):
        self.b.close()

    def check(self, name, got, model):
        offs = [o for o, _, _ in got]
        self.assertEqual(offs, sorted(set(offs)), "%s: offsets not increasing" % name)
        self.assertEqual({k: v for _, k, v in got}, model, name)
        self.assertEqual(len(got), len(model), "%s: a key read twice" % name)

    def test_clients_read_the_latest_value_per_key(self):
        b, topic = self.b, "cmp"
        # Written with cleanup.policy=delete, then switched to compact live:
        # the bytes before cleaning are all there.
        create(b, topic, **{"cleanup.policy": "delete"})
        rng = random.Random(SEED)
        model, n = {}, 0
        for rnd in range(8):
            items = [("k%d" % k, "cf-%d-%d-%s" % (rnd, k, "x" * rng.randrange(10, 80)))
                     for k in range(200)]
            n += produce_confluent(b, topic, items, **{"enable.idempotence": True,
                                                       "compression.type": "gzip"})
            model.update(items)
        for rnd in range(8, 12):
            items = [("k%d" % k, "kp-%d-%d" % (rnd, k)) for k in rng.sample(range(200), 120)]
            n += produce_kafka_python(b, topic, items)
            model.update(items)
        dead = ["k%d" % k for k in range(30)]
        n += produce_confluent(b, topic, [(k, None) for k in dead])
        for k in dead:
            del model[k]
        last = [("k%d" % k, "final-%d" % k) for k in range(30, 60)]
        n += produce_confluent(b, topic, last)
        model.update(last)
        before = part_bytes(b, topic)
        alter(b, topic, **TOPIC_CFG)
        # A record without a key: refused, as Kafka refuses it on a compacted topic.
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0})
        errs = []
        p.produce(topic, value=b"no key", on_delivery=lambda e, m: errs.append(e))
        p.flush(30)
        self.assertEqual(errs[0].code(), KafkaError.INVALID_RECORD, errs)
        wait_cleaned(b, topic, n)
        after = part_bytes(b, topic)
        self.assertLess(after, before / 4, (before, after))
        self.check("confluent-kafka", read_confluent(b, topic, n - 1), model)
        self.check("kafka-python", read_kafka_python(b, topic, n - 1), model)
        self.check("kcat", read_kcat(b, topic), model)
        self.check("kafkajs", read_kafkajs(b, topic, n - 1), model)
        # The cleaner's figures: admin API and `strata storage status TOPIC`.
        doc = json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/v1/storage/topics/%s" % (b.admin_port, topic), timeout=30).read())
        c = doc["partitions"][0]["compaction"]
        self.assertGreaterEqual(c["runs"], 1, c)
        self.assertEqual(c["clean_end_offset"], n, c)
        self.assertGreater(c["records_removed"], 0, c)
        self.assertGreater(c["bytes_read"], c["bytes_written"], c)
        out = subprocess.run([STRATA, "--admin-url", "http://127.0.0.1:%d" % b.admin_port,
                              "storage", "status", topic], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("CLEANER-RUNS", out.stdout)
        print("compact: seed=%d records=%d log bytes %d -> %d" % (SEED, n, before, after))

    def test_kill9_while_cleaning(self):
        b = self.b
        b.close()
        self.b = b = Broker(*CLEANER, "-X", "log.cleaner.io.max.bytes.per.second=400000")
        topic = "cmpk"
        create(b, topic, **{"segment.bytes": "8192", "segment.ms": "300"})
        rng = random.Random(SEED)
        model, n, hits = {}, 0, 0
        for rnd in range(6):
            keys = rng.sample(range(300), 250)
            items = [("k%d" % k, "r%d-%d-%s" % (rnd, k, rng.randbytes(rng.randrange(50, 150)).hex()))
                     for k in keys]
            if rnd == 4:  # some tombstones, superseded or not
                items += [("k%d" % k, None) for k in range(0, 300, 7)]
            n += produce_confluent(b, topic, items, **{"enable.idempotence": True,
                                                       "compression.type": "zstd"})
            for k, v in items:
                if v is None:
                    model.pop(k, None)
                else:
                    model[k] = v
            # Let a throttled pass start, then kill it somewhere.
            time.sleep(rng.uniform(0.3, 2.0))
            b.kill9()
            left = [f for f in os.listdir(part_dir(b, topic))
                    if f.endswith(".cleaned") or f.endswith(".swap")]
            hits += bool(left)
            b.start()
            after = [f for f in os.listdir(part_dir(b, topic))
                     if f.endswith(".cleaned") or f.endswith(".swap")]
            self.assertEqual(after, [], "left by the kill: %s" % left)
        # The final value of every key written last, so the log ends with a record.
        tail = [("k%d" % k, "last-%d" % k) for k in range(5)]
        n += produce_confluent(b, topic, tail)
        model.update(tail)
        wait_cleaned(b, topic, n)
        self.check("after kill -9", read_confluent(b, topic, n - 1), model)
        print("compact kill9: seed=%d records=%d kills inside a pass's files: %d of 6"
              % (SEED, n, hits))


class CompactRemoteTest(unittest.TestCase):
    """remote.storage.enable on a compacted topic: the cleaner rewrites only
    local segments already archived and indexed (the archive keeps the bytes
    it indexed: archived objects are not compacted yet), uploads go on, and a
    replay from 0 (archive, then local) ends with every key's latest value."""

    def test_only_archived_segments_are_cleaned(self):
        b = Broker(*CLEANER, "-X", "remote.log.storage.system.enable=true")
        try:
            topic = "cmpr"
            create(b, topic, **{"remote.storage.enable": "true"})
            rng = random.Random(SEED)
            model, n = {}, 0
            for rnd in range(6):
                items = [("k%d" % k, "r%d-%d-%s" % (rnd, k, rng.randbytes(40).hex()))
                         for k in range(100)]
                n += produce_confluent(b, topic, items)
                model.update(items)
            wait_cleaned(b, topic, 1)  # a pass ran
            rows = []
            db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
            try:
                rows = db.execute("SELECT base_offset, last_offset FROM segments WHERE topic=? "
                                  "AND partition=0 ORDER BY base_offset", (topic,)).fetchall()
            finally:
                db.close()
            self.assertTrue(rows)
            archived_end = rows[-1][1] + 1
            ups = [int(m.group(1)) for m in
                   map(re.compile(r"cleaned dir=\S*/%s-0 up_to=(\d+)" % topic).search, b.lines)
                   if m]
            self.assertTrue(ups and max(ups) <= archived_end, (ups, rows))
            # The archive holds every offset it indexed, contiguously.
            self.assertEqual([r[0] for r in rows[1:]], [r[1] + 1 for r in rows[:-1]], rows)
            got = read_confluent(b, topic, n - 1)
            offs = [o for o, _, _ in got]
            self.assertEqual(offs, sorted(set(offs)))
            final = {}
            for _, k, v in got:
                final[k] = v
            self.assertEqual(final, model)
        finally:
            b.close()


if __name__ == "__main__":
    print("COMPACT_SEED=%d" % SEED)
    unittest.main(verbosity=2)
