#!/usr/bin/python3
"""Idempotent producer: duplicates of recent batches are acknowledged with
their first offset and not appended again, gaps are refused, old epochs are
fenced, and the state is rebuilt from the log after a restart. A record set is
validated before its producer state is looked at: a corrupt batch is refused as
such whatever its sequence (never acknowledged as a duplicate)."""
import os
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from kwire import Conn, crc32c, parse_produce_v3, produce_v3, record_batch  # noqa: E402

CORRUPT_MESSAGE, OUT_OF_ORDER, INVALID_EPOCH = 2, 45, 47


def end_offset(b, topic):
    p = subprocess.run(["kcat", "-b", b.bootstrap, "-Q", "-t", "%s:0:-1" % topic],
                       capture_output=True, text=True, timeout=60)
    return int(p.stdout.split("[0] offset ")[1].split()[0])


class IdempotenceTest(unittest.TestCase):
    def test_duplicates_gaps_epochs_and_restart(self):
        b = Broker()
        try:
            subprocess.run(["kcat", "-b", b.bootstrap, "-P", "-t", "idem"], input="x\n",
                           text=True, check=True, timeout=60)  # auto-creates the topic
            c = Conn(b.port)
            pid = 4242

            def send(seq, epoch=0, values=(b"a", b"b")):
                return parse_produce_v3(c.call(produce_v3(
                    "idem", 0, record_batch(list(values), pid, epoch, seq))))

            self.assertEqual(send(0), (0, 1))
            self.assertEqual(send(2), (0, 3))
            self.assertEqual(send(2), (0, 3))       # a retry: same offset, not appended
            self.assertEqual(send(0), (0, 1))       # still among the last five
            self.assertEqual(end_offset(b, "idem"), 5)
            self.assertEqual(send(9)[0], OUT_OF_ORDER)  # gap
            self.assertEqual(send(0, epoch=1), (0, 5))  # a new epoch starts at 0
            self.assertEqual(send(4)[0], INVALID_EPOCH)  # the old epoch is fenced
            self.assertEqual(end_offset(b, "idem"), 7)
            c.close()
            # Restart: the state comes back from the log.
            b.stop_clean()
            b.start()
            c = Conn(b.port)
            self.assertEqual(send(0, epoch=1), (0, 5))  # duplicate found after restart
            self.assertEqual(send(3, epoch=1)[0], OUT_OF_ORDER)
            self.assertEqual(send(2, epoch=1), (0, 7))
            self.assertEqual(end_offset(b, "idem"), 9)
            c.close()
            b.stop_clean()
        finally:
            b.close()

    def test_corrupt_batch_is_refused_whatever_its_sequence(self):
        b = Broker()
        try:
            subprocess.run(["kcat", "-b", b.bootstrap, "-P", "-t", "idemc"], input="x\n",
                           text=True, check=True, timeout=60)
            c = Conn(b.port)
            pid = 5151
            batch = record_batch([b"v1", b"v2"], pid, 0, 0)
            produce = lambda rec: parse_produce_v3(c.call(produce_v3("idemc", 0, rec)))  # noqa
            self.assertEqual(produce(batch), (0, 1))
            self.assertEqual(produce(batch), (0, 1))  # the retry: a duplicate, acknowledged

            def bad_crc(rec):  # crc at 17: baseOffset 8, batchLength 4, leaderEpoch 4, magic 1
                return rec[:17] + bytes([rec[17] ^ 0xFF]) + rec[18:]

            def resigned(rec):  # the CRC-32C of the bytes after it made right again
                return rec[:17] + struct.pack(">I", crc32c(rec[21:])) + rec[21:]

            # The same pid/epoch/sequence with a corrupted CRC: refused, not a duplicate.
            self.assertEqual(produce(bad_crc(batch))[0], CORRUPT_MESSAGE)
            # A record byte flipped (value "v1" -> "w1") under the old CRC.
            flipped = batch.replace(b"v1", b"w1")
            self.assertEqual(produce(flipped)[0], CORRUPT_MESSAGE)
            # A valid CRC over a record count that lies (3 records announced, 2 there).
            lying = resigned(batch[:57] + struct.pack(">i", 3) + batch[61:])
            self.assertEqual(produce(lying)[0], CORRUPT_MESSAGE)
            # Corrupt with an out-of-order sequence, and with a fenced epoch: still corrupt.
            self.assertEqual(produce(bad_crc(record_batch([b"z"], pid, 0, 7)))[0],
                             CORRUPT_MESSAGE)
            self.assertEqual(produce(record_batch([b"z"], pid, 0, 7))[0], OUT_OF_ORDER)
            self.assertEqual(produce(record_batch([b"e"], pid, 1, 0)), (0, 3))
            self.assertEqual(produce(bad_crc(record_batch([b"f"], pid, 0, 2)))[0],
                             CORRUPT_MESSAGE)
            self.assertEqual(produce(record_batch([b"f"], pid, 0, 2))[0], INVALID_EPOCH)
            self.assertEqual(end_offset(b, "idemc"), 4)  # x, v1, v2, e: nothing else appended
            c.close()
            b.stop_clean()
        finally:
            b.close()

    def test_state_of_a_producer_older_than_two_segments_survives_a_restart(self):
        # Every batch rolls a segment: the producer's only batch is several
        # segments back when the broker restarts (kill -9), and its retry
        # must still be recognised, not appended again.
        b = Broker("-X", "log.segment.bytes=16384")
        try:
            subprocess.run(["kcat", "-b", b.bootstrap, "-P", "-t", "idem2"], input="x\n",
                           text=True, check=True, timeout=60)
            c = Conn(b.port)
            first = record_batch([b"retried"], 777, 0, 0)
            self.assertEqual(parse_produce_v3(c.call(produce_v3("idem2", 0, first))), (0, 1))
            for _ in range(4):  # another client's large batches: one segment each
                self.assertEqual(parse_produce_v3(c.call(produce_v3(
                    "idem2", 0, record_batch([b"y" * 20000]))))[0], 0)
            c.close()
            self.assertGreaterEqual(len([f for f in os.listdir(os.path.join(b.data, "idem2-0"))
                                         if f.endswith(".log")]), 4)
            end = end_offset(b, "idem2")
            b.kill9()
            b.start()
            c = Conn(b.port)
            self.assertEqual(parse_produce_v3(c.call(produce_v3("idem2", 0, first))), (0, 1))
            self.assertEqual(end_offset(b, "idem2"), end)  # not appended again
            c.close()
            b.stop_clean()
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
