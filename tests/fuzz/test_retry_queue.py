"""Cross-shard posts through a full shard queue (kafka/kh_conn.c on_retry), against a real
stratad with strata.shard.queue.capacity=64: one ListOffsets naming 80,000 partitions of an
8-partition topic posts far more ops than the queues hold, so most wait in the retry queue
and come back with the same post node. Found by the live fuzzer (ASan heap-use-after-free in
on_retry, and a request never answered): on_retry read the node's next pointer after
rt_post() had handed the node to another shard. The request must be answered and the broker
must stop cleanly (no sanitizer report under the ASan build)."""
import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import kwire  # noqa: E402
from broker import Broker  # noqa: E402


def call(s, frame):
    s.sendall(frame)
    return kwire.recv_frame(s)


class RetryQueueTest(unittest.TestCase):
    def test_many_ops_through_a_small_queue(self):
        b = Broker("-X", "strata.shard.queue.capacity=64")
        try:
            s = socket.create_connection(("127.0.0.1", b.port))
            s.settimeout(300)  # a bound on a hang, not a performance threshold
            body = (struct.pack(">i", 1) + struct.pack(">h", 2) + b"rq" +
                    struct.pack(">ihii", 8, 1, 0, 0) + struct.pack(">i", 5000))
            call(s, kwire.frame(19, 0, 1, body))
            # The fault is a race between shards: many rounds of 4 pipelined requests.
            n = 80000
            parts = b"".join(struct.pack(">iq", p % 8, -1) for p in range(n))
            body = (struct.pack(">i", -1) + struct.pack(">i", 1) + struct.pack(">h", 2) + b"rq" +
                    struct.pack(">i", n) + parts)
            corr = 1
            for _ in range(3):
                s.sendall(b"".join(kwire.frame(2, 1, corr + k, body) for k in range(1, 5)))
                for k in range(1, 5):
                    resp = kwire.recv_frame(s)  # size, then the response
                    self.assertEqual(struct.unpack(">i", resp[4:8])[0], corr + k)
                    # one topic with an answer for each of the n partitions
                    self.assertEqual(struct.unpack(">i", resp[8:12])[0], 1)
                    off = 14 + struct.unpack(">h", resp[12:14])[0]
                    self.assertEqual(struct.unpack(">i", resp[off:off + 4])[0], n)
                corr += 4
            s.close()
        finally:
            rc, out = b.stop()
            b.close()
        self.assertEqual(rc, 0, out[-3000:])
        self.assertNotIn("Sanitizer", out)
        self.assertNotIn("runtime error", out)


if __name__ == "__main__":
    unittest.main()
