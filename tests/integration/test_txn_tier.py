#!/usr/bin/python3
"""Transactions and tiered storage (issue 20, tiered): transactional data with
aborts (two confluent-kafka transactional producers interleaved, so aborted
and committed transactions overlap and span segments and objects) is
archived to the S3 test server and its local segments deleted by local
retention; a read_committed replay from offset 0, served from the bucket,
returns exactly the committed records, before and after a restart (when the
broker knows the archived aborts only from the objects' txn tables, through
the index); `strata archive cat --read-committed` gives the same offline.
A transaction still open when its first batch's segment was archived and
deleted locally keeps its first offset across a kill -9 (LSO, txn table)."""
import glob
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import test_txn  # noqa: E402
from broker import Broker, free_port  # noqa: E402
from test_tiering import s3_env, start_s3, stop_s3  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

STRATA = os.environ.get("STRATA", os.path.join(os.path.dirname(os.environ.get(
    "STRATAD", "build/tools/stratad")), "strata"))
TOPIC = "txtier"


def local_segments(b):
    return sorted(glob.glob(os.path.join(b.data, "%s-0" % TOPIC, "*.log")))


def archived_end(b):
    """One past the last offset the remote index holds for the partition."""
    db = sqlite3.connect(os.path.join(b.data, "remote-index.db"))
    try:
        r = db.execute("SELECT max(last_offset) FROM segments WHERE topic=? AND partition=0",
                       (TOPIC,)).fetchone()
        return -1 if r[0] is None else r[0] + 1
    finally:
        db.close()


def read_all(b, isolation):
    return test_txn.read_all(b, TOPIC, isolation, timeout=120)


class TxnTierTest(unittest.TestCase):
    def setUp(self):
        self.s3dir = tempfile.mkdtemp(prefix="strata-s3-")
        self.env = s3_env(start_s3(free_port(), self.s3dir))
        self.url = "s3://strata/txt-%d" % os.getpid()

    def tearDown(self):
        stop_s3(self.s3dir)

    def cat(self, *flags):
        p = subprocess.run([STRATA, "archive", "cat", TOPIC, "0", "--from", "0", "-f", "%v\\n",
                            "--archive", self.url, *flags], capture_output=True, text=True,
                           timeout=120, env=self.env)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.splitlines()

    def tiered_broker(self):
        """A broker archiving to the test bucket (16 KiB segments, uploads of
        the active one after 1 s) with TOPIC keeping 32 KiB locally."""
        b = Broker("-X", "remote.log.storage.system.enable=true",
                   "-X", "strata.archive.url=" + self.url,
                   "-X", "log.retention.check.interval.ms=200",
                   "-X", "log.segment.bytes=16384",
                   "-X", "strata.archive.max.upload.interval.ms=1000", env=self.env)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic(TOPIC, 1, 1, config={
                "local.retention.bytes": "32768"})])[TOPIC].result(30)
        except BaseException:
            b.close()
            raise
        return b

    def test_read_committed_replay_from_the_archive(self):
        b = self.tiered_broker()
        try:
            prods = []
            for tid in ("tt-a", "tt-b"):
                p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": tid,
                              "transaction.timeout.ms": 60000, "linger.ms": 5})
                p.init_transactions(60)
                prods.append(p)
            committed, everything = [], []
            for t in range(36):
                for p in prods:
                    p.begin_transaction()
                # Interleaved batches of both producers: their transactions
                # overlap in the log (and span segments: 16 KiB each).
                vals = {0: [], 1: []}
                for k in range(6):
                    for j, p in enumerate(prods):
                        for r in range(5):
                            v = "t%02d-p%d-%d-%d-%s" % (t, j, k, r, "x" * 60)
                            p.produce(TOPIC, v.encode(), partition=0)
                            vals[j].append(v)
                            everything.append(v)
                        p.flush(30)
                # p0 aborts every third transaction, p1 every other one.
                for j, p in enumerate(prods):
                    if (j == 0 and t % 3 == 1) or (j == 1 and t % 2 == 0):
                        p.abort_transaction(60)
                    else:
                        p.commit_transaction(60)
                        committed.extend(vals[j])
            # Records of one producer come in its order; across producers the
            # log decides: compare as the log orders them (read_uncommitted).
            every = read_all(b, "read_uncommitted")
            self.assertEqual(sorted(every), sorted(everything))
            want = [v for v in every if v in set(committed)]
            # Uploads (the active segment's too, after 1 s) and local
            # retention drop the head of the log; the archive reaches the end.
            hw = test_txn.end_offsets(b, TOPIC, "read_uncommitted")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                segs = local_segments(b)
                if (segs and int(os.path.basename(segs[0])[:20]) > len(everything) // 2 and
                        archived_end(b) == hw):
                    break
                time.sleep(0.2)
            self.assertEqual(archived_end(b), hw)
            first_local = int(os.path.basename(local_segments(b)[0])[:20])
            self.assertGreater(first_local, len(everything) // 2)
            self.assertEqual(read_all(b, "read_committed"), want)
            # After a restart the broker knows the archived aborts from the
            # objects' txn tables only (the local log lost their markers).
            for p in prods:
                p.flush(10)
            del prods[:], p
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            b.start()
            self.assertEqual(read_all(b, "read_committed"), want)
            self.assertEqual(len(read_all(b, "read_uncommitted")), len(everything))
            # Offline, from the bucket alone: the same records.
            self.assertEqual(self.cat(), every)
            self.assertEqual(self.cat("--read-committed"), want)
            rc, log = b.stop()  # a clean exit (sanitizer builds: no report)
            self.assertEqual(rc, 0, log)
        finally:
            b.close()

    def test_open_transaction_across_a_restart_after_its_first_segment_left(self):
        """A transaction still open when local retention deleted the segment
        of its first batch, then kill -9: after the restart its first offset
        is still the true one (LSO, and the archived txn table once it
        aborts), not the offset of its next batch."""
        b = self.tiered_broker()
        try:
            plain = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
            plain.produce(TOPIC, b"before", partition=0)
            plain.flush(30)
            t = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "tt-open",
                          "transaction.timeout.ms": 300000, "linger.ms": 0})
            t.init_transactions(60)
            t.begin_transaction()
            t.produce(TOPIC, b"open-0", partition=0)
            t.flush(30)
            first = test_txn.end_offsets(b, TOPIC, "read_committed")
            self.assertEqual(first, 1)  # the LSO: the open transaction's first batch
            committed = ["before"]
            for i in range(120):  # ~7 segments of plain data after it
                v = "plain-%03d-%s" % (i, "y" * 400)
                plain.produce(TOPIC, v.encode(), partition=0)
                committed.append(v)
                if i % 10 == 9:
                    plain.flush(30)
            plain.flush(30)
            hw = test_txn.end_offsets(b, TOPIC, "read_uncommitted")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                segs = local_segments(b)
                if segs and int(os.path.basename(segs[0])[:20]) > first and archived_end(b) == hw:
                    break
                time.sleep(0.2)
            self.assertGreater(int(os.path.basename(local_segments(b)[0])[:20]), first)
            self.assertEqual(test_txn.end_offsets(b, TOPIC, "read_committed"), first)
            b.kill9()
            b.start()
            # Still open, from its true first batch (archived, deleted locally).
            self.assertEqual(test_txn.end_offsets(b, TOPIC, "read_committed"), first)
            t.produce(TOPIC, b"open-1", partition=0)
            t.flush(30)
            self.assertEqual(test_txn.end_offsets(b, TOPIC, "read_committed"), first)
            t.abort_transaction(60)
            # Neither of its records is read committed, from the bucket or
            # the local log, nor offline from the archive once it is there.
            self.assertEqual(read_all(b, "read_committed"), committed)
            hw = test_txn.end_offsets(b, TOPIC, "read_uncommitted")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and archived_end(b) != hw:
                time.sleep(0.2)
            self.assertEqual(archived_end(b), hw)
            self.assertEqual(self.cat("--read-committed"), committed)
            rc, log = b.stop()  # a clean exit (sanitizer builds: no report)
            self.assertEqual(rc, 0, log)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main()
