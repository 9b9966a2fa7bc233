#!/usr/bin/python3
"""A partition's transaction state across restarts: the snapshot
(txn.snapshot, strata.transaction.state.snapshot.bytes) lets a restart read
only the log after it, with the same open transactions, LSO and aborted
list as a whole-log scan, also after kill -9 and with a torn snapshot; and
aborted transactions below the log start (DeleteRecords) are dropped."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from kwire import Conn, delete_records_v1, parse_delete_records_v1  # noqa: E402
from test_txn import create, end_offsets, metric, read_all, txn_producer  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

SNAP_EVERY = 200000  # bytes of log between snapshots
N_PLAIN = 400        # one-record batches of 1 KB: about 2 snapshot intervals


def plain_batches(b, topic, n, tag):
    """n non-transactional one-record batches (a flush per record)."""
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for i in range(n):
        p.produce(topic, value=("%s%d-" % (tag, i)).encode().ljust(1000, b"x"), partition=0)
        p.flush(30)
    return ["%s%d-" % (tag, i) + "x" * (1000 - len("%s%d-" % (tag, i))) for i in range(n)]


def touch(b, topic):
    """A read_committed ListOffsets: loads the partition's state (a snapshot
    may follow). Returns the LSO."""
    return end_offsets(b, topic, "read_committed")


class TxnStateTest(unittest.TestCase):
    def setUp(self):
        self.b = Broker("-X", "strata.transaction.state.snapshot.bytes=%d" % SNAP_EVERY)

    def tearDown(self):
        try:
            rc, out = self.b.stop()  # a clean exit: no leak, no sanitizer report
            self.assertEqual(rc, 0, out)
        finally:
            self.b.close()

    def wait_snapshots(self, topic, n):
        for _ in range(200):
            touch(self.b, topic)
            if (metric(self.b, "strata_kafka_transaction_state_snapshots_total") or 0) >= n:
                return
        self.fail("no transaction state snapshot written")

    def build(self, topic):
        """An aborted transaction, an open one, then plain data past a
        snapshot, then a committed transaction after it. Returns (open
        producer, its first offset, the committed values without it)."""
        b = self.b
        create(b, topic, 1)
        pa = txn_producer(b, "tx-a-" + topic)
        pb = txn_producer(b, "tx-b-" + topic)
        pa.begin_transaction()
        for i in range(10):
            pa.produce(topic, value="a%d" % i, partition=0)
        pa.flush(30)
        pa.abort_transaction(30)
        pb.begin_transaction()
        for i in range(5):
            pb.produce(topic, value="b%d" % i, partition=0)
        pb.flush(30)
        lso = touch(b, topic)
        plain = plain_batches(b, topic, N_PLAIN, "p")
        self.wait_snapshots(topic, 1)
        pa.begin_transaction()
        for i in range(5):
            pa.produce(topic, value="c%d" % i, partition=0)
        pa.commit_transaction(30)
        self.assertEqual(touch(b, topic), lso)  # b is still open
        return pb, lso, plain + ["b%d" % i for i in range(5)] + ["c%d" % i for i in range(5)]

    def test_restart_reads_only_the_log_after_the_snapshot(self):
        b = self.b
        pb, lso, committed = self.build("s")
        self.assertTrue(os.path.exists(os.path.join(b.data, "s-0", "txn.snapshot")))
        b.kill9()
        b.start()
        self.assertEqual(touch(b, "s"), lso)  # the open transaction holds the LSO
        scanned = metric(b, "strata_kafka_transaction_state_rebuild_batches_total")
        # The log holds over N_PLAIN batches; the rebuild read the tail only.
        self.assertLess(scanned, N_PLAIN // 2)
        pb.commit_transaction(60)
        # The aborted transaction (its marker before the snapshot) stays out.
        self.assertEqual(sorted(read_all(b, "s", "read_committed")), sorted(committed))
        self.assertEqual(len(read_all(b, "s", "read_uncommitted")), len(committed) + 10)

    def test_a_torn_snapshot_falls_back_to_the_whole_log(self):
        b = self.b
        pb, lso, committed = self.build("t")
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        path = os.path.join(b.data, "t-0", "txn.snapshot")
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(len(data) // 2)
            f.write(bytes([data[len(data) // 2] ^ 0xFF]))
        with open(path + ".tmp", "wb") as f:  # a write cut short
            f.write(data[:7])
        b.start()
        self.assertEqual(touch(b, "t"), lso)
        scanned = metric(b, "strata_kafka_transaction_state_rebuild_batches_total")
        self.assertGreater(scanned, N_PLAIN)  # the whole local log
        pb.commit_transaction(60)
        self.assertEqual(sorted(read_all(b, "t", "read_committed")), sorted(committed))

    def test_aborted_list_pruned_by_log_start(self):
        b = self.b
        create(b, "d", 1)
        p = txn_producer(b, "tx-d")
        for t in range(3):
            p.begin_transaction()
            p.produce("d", value="x%d" % t, partition=0)
            p.flush(30)
            p.abort_transaction(30)
        p.begin_transaction()
        p.produce("d", value="kept", partition=0)
        p.commit_transaction(30)
        touch(b, "d")
        self.assertEqual(metric(b, "strata_kafka_transaction_aborted_kept"), 3)
        # 3 x (batch, abort marker), then the committed batch at offset 6.
        c = Conn(b.port)
        low, err = parse_delete_records_v1(c.call(delete_records_v1("d", 0, 4)))
        self.assertEqual((low, err), (4, 0))
        touch(b, "d")
        self.assertEqual(metric(b, "strata_kafka_transaction_aborted_kept"), 1)
        low, err = parse_delete_records_v1(c.call(delete_records_v1("d", 0, 6)))
        self.assertEqual((low, err), (6, 0))
        touch(b, "d")
        self.assertEqual(metric(b, "strata_kafka_transaction_aborted_kept"), 0)
        self.assertEqual(read_all(b, "d", "read_committed"), ["kept"])
        # An open transaction whose first batch is deleted: the LSO is the log
        # start, not below it (as Kafka).
        p.begin_transaction()
        p.produce("d", value="open", partition=0)
        p.flush(30)
        self.assertEqual(touch(b, "d"), 8)
        low, err = parse_delete_records_v1(c.call(delete_records_v1("d", 0, 9)))
        self.assertEqual((low, err), (9, 0))
        self.assertEqual(touch(b, "d"), 9)
        c.close()
        p.abort_transaction(30)


if __name__ == "__main__":
    unittest.main()
