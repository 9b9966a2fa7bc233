#!/usr/bin/python3
"""Transactions with real clients (confluent-kafka, librdkafka's transactional
producer): commit, abort, read_committed vs read_uncommitted, consume-
transform-produce with send_offsets_to_transaction, zombie fencing, the
coordinator aborting a transaction past its timeout, and restarts (clean and
kill -9) in the middle of a transaction."""
import os
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer,  # noqa: E402
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def create(b, topic, partitions=1):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(60)


def txn_producer(b, tid, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "transactional.id": tid,
            "transaction.timeout.ms": 60000, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(60)
    return p


def read_all(b, topic, isolation, partitions=1, expect=None, group=None, timeout=20):
    """Every value of topic from offset 0 (until `expect` values, or until
    the end offsets of the isolation level are reached)."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group or "r-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = [], set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                if expect is None and len(eof) == partitions:
                    break
                continue
            raise KafkaException(m.error())
        eof.discard(m.partition())
        out.append(m.value().decode())
        if expect is not None and len(out) >= expect:
            break
    c.close()
    return out


def end_offsets(b, topic, isolation, partition=0):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "w-" + uuid.uuid4().hex,
                  "isolation.level": isolation})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=20)
    c.close()
    return hi


class TxnTest(unittest.TestCase):
    def setUp(self):
        self.b = Broker("-X", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")

    def tearDown(self):
        self.b.close()

    def test_commit_abort_and_isolation_levels(self):
        b = self.b
        create(b, "t1", 2)
        p = txn_producer(b, "tx-a")
        p.begin_transaction()
        for i in range(10):
            p.produce("t1", value="c%d" % i, partition=i % 2)
        p.commit_transaction(30)
        p.begin_transaction()
        for i in range(5):
            p.produce("t1", value="a%d" % i, partition=i % 2)
        p.flush(30)
        # Open transaction: read_committed stops before it, read_uncommitted sees it.
        self.assertEqual(sorted(read_all(b, "t1", "read_committed", 2)),
                         sorted("c%d" % i for i in range(10)))
        self.assertEqual(len(read_all(b, "t1", "read_uncommitted", 2)), 15)
        self.assertLess(end_offsets(b, "t1", "read_committed"),
                        end_offsets(b, "t1", "read_uncommitted"))
        p.abort_transaction(30)
        p.begin_transaction()
        p.produce("t1", value="c10", partition=0)
        p.commit_transaction(30)
        got = read_all(b, "t1", "read_committed", 2)
        self.assertEqual(sorted(got), sorted("c%d" % i for i in range(11)))
        # read_uncommitted sees the aborted records too (markers are not records).
        self.assertEqual(len(read_all(b, "t1", "read_uncommitted", 2)), 16)
        # Both ends past the markers once nothing is open.
        self.assertEqual(end_offsets(b, "t1", "read_committed"),
                         end_offsets(b, "t1", "read_uncommitted"))
        # The aborted records stay hidden after a restart (state rebuilt from the log).
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        b.start()
        self.assertEqual(sorted(read_all(b, "t1", "read_committed", 2)),
                         sorted("c%d" % i for i in range(11)))


if __name__ == "__main__":
    unittest.main()
