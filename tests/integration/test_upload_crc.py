#!/usr/bin/python3
"""Local bit rot is never archived: the uploader checks every batch's CRC-32C
before an object is written. A byte flipped in a sealed local segment (while
the broker is down, where start-up recovery, which scans only the active
segment, does not see it) makes the upload fail with an ERROR log line and
strata_tier_upload_corrupt_segments_total, the segment stays local and
nothing of the partition is archived or indexed; once the segment is
repaired, it and the ones behind it are uploaded."""
import glob
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from test_tiering import index_rows, local_segments, metric, produce, wait_indexed  # noqa: E402

SEG = ["-X", "log.segment.bytes=16384"]
REMOTE = ["-X", "remote.log.storage.system.enable=true"]


def archived(b, topic):
    return glob.glob(os.path.join(b.data, "archive", "*", topic, "0", "*.seg.zst"))


class UploadCrcTest(unittest.TestCase):
    def test_flipped_byte_in_a_sealed_segment_is_not_archived(self):
        b = Broker(*SEG)  # no remote storage yet: nothing is uploaded
        try:
            produce(b, "rot", 1500)
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            segs = local_segments(b, "rot")
            self.assertGreaterEqual(len(segs), 3)
            # Flip a byte inside the records of the second batch of segment 0.
            with open(segs[0], "r+b") as f:
                data = f.read()
                (blen,) = struct.unpack_from(">i", data, 8)
                at = 12 + blen + 70
                f.seek(at)
                f.write(bytes([data[at] ^ 0x20]))
            b.args += REMOTE
            b.start()
            deadline = time.monotonic() + 60
            while (metric(b, "strata_tier_upload_corrupt_segments_total") < 1
                   and time.monotonic() < deadline):
                time.sleep(0.2)
            self.assertGreaterEqual(metric(b, "strata_tier_upload_corrupt_segments_total"), 1)
            b.wait_for(r"ERROR .*local segment is corrupt .*tp=rot-0 base_offset=0", seen=True)
            self.assertEqual(index_rows(b, "rot"), [])
            self.assertEqual(archived(b, "rot"), [])
            self.assertEqual(local_segments(b, "rot")[0], segs[0])  # still local
            rc, log = b.stop()
            self.assertEqual(rc, 0, log)
            # Repaired (the byte restored): the partition uploads again.
            with open(segs[0], "r+b") as f:
                f.seek(at)
                f.write(bytes([data[at]]))
            b.start()
            rows = wait_indexed(b, "rot")
            self.assertEqual(rows[0][0], 0)
            self.assertEqual(metric(b, "strata_tier_upload_corrupt_segments_total"), 0)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
