#!/usr/bin/python3
"""ListOffsets by timestamp over archived data: once local retention dropped
the head of a partition, offsets_for_times still finds the exact record in
the archive, and newer records in the local log."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from test_tiering import SEG, local_segments  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BASE = 1600000000000


class ArchivedTimestampsTest(unittest.TestCase):
    def test_offsets_for_times_in_the_archive_and_locally(self):
        b = Broker("-X", "remote.log.storage.system.enable=true", "-X",
                   "log.retention.check.interval.ms=200", "-X", "log.retention.ms=-1", *SEG)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("tt", 1, 1, config={
                "local.retention.bytes": "32768", "retention.ms": "-1"})])["tt"].result(30)
            p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5,
                          "compression.type": "lz4"})
            for i in range(3000):
                p.produce("tt", b"r%05d-%s" % (i, os.urandom(30).hex().encode()), partition=0,
                          timestamp=BASE + 10 * i)
                if i % 300 == 0:
                    p.flush(30)
            self.assertEqual(p.flush(60), 0)
            deadline = time.monotonic() + 120  # upper bound for uploads + local retention
            while time.monotonic() < deadline:
                segs = local_segments(b, "tt")
                if segs and int(os.path.basename(segs[0])[:20]) > 1500:
                    break
                time.sleep(0.2)
            first_local = int(os.path.basename(local_segments(b, "tt")[0])[:20])
            self.assertGreater(first_local, 1500)
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "x"})
            for want in (0, 1, 500, 1499, first_local, 2999):
                got = c.offsets_for_times([TopicPartition("tt", 0, BASE + 10 * want)], 60)
                self.assertEqual(got[0].offset, want, want)
                got = c.offsets_for_times([TopicPartition("tt", 0, BASE + 10 * want - 3)], 60)
                self.assertEqual(got[0].offset, want, ("between", want))
            got = c.offsets_for_times([TopicPartition("tt", 0, BASE + 10 * 5000)], 60)
            self.assertEqual(got[0].offset, -1)
            lo, hi = c.get_watermark_offsets(TopicPartition("tt", 0), 30)
            self.assertEqual((lo, hi), (0, 3000))
            c.close()
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
