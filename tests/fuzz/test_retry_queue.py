"""Cross-shard posts through a full shard queue (kafka/kh_conn.c on_retry), against a real
stratad with strata.shard.queue.capacity=64: one ListOffsets naming 80,000 partitions of an
8-partition topic posts far more ops than the queues hold, so most wait in the retry queue
and come back with the same post node. Found by the live fuzzer (ASan heap-use-after-free in
on_retry, and a request never answered): on_retry read the node's next pointer after
rt_post() had handed the node to another shard. The request must be answered and the broker
must stop cleanly (no sanitizer report under the ASan build).
The same load, orphaned (the client closes while the ops are out) and stopped with SIGTERM,
must free every request (no LeakSanitizer report under the ASan build): the shard that closed
first used to refuse the ops still waiting for it ("cannot post to shard N: closed"), or the
retry list was dropped with its timer, and the requests leaked."""
import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import kwire  # noqa: E402
from broker import Broker  # noqa: E402


def call(s, frame):
    s.sendall(frame)
    return kwire.recv_frame(s)


N_PARTS = 80000


def create_topic(s):
    body = (struct.pack(">i", 1) + struct.pack(">h", 2) + b"rq" +
            struct.pack(">ihii", 8, 1, 0, 0) + struct.pack(">i", 5000))
    call(s, kwire.frame(19, 0, 1, body))


def list_offsets_body(n=N_PARTS):
    """ListOffsets v1 naming n partitions of rq (8 of them, spread over both shards)."""
    parts = b"".join(struct.pack(">iq", p % 8, -1) for p in range(n))
    return (struct.pack(">i", -1) + struct.pack(">i", 1) + struct.pack(">h", 2) + b"rq" +
            struct.pack(">i", n) + parts)


class RetryQueueTest(unittest.TestCase):
    def check_clean_stop(self, b):
        rc, out = b.stop()
        b.close()
        self.assertEqual(rc, 0, out[-3000:])
        self.assertNotIn("Sanitizer", out)
        self.assertNotIn("runtime error", out)
        self.assertNotIn("cannot post to shard", out)
        return out

    def test_many_ops_through_a_small_queue(self):
        b = Broker("-X", "strata.shard.queue.capacity=64")
        try:
            s = socket.create_connection(("127.0.0.1", b.port))
            s.settimeout(300)  # a bound on a hang, not a performance threshold
            create_topic(s)
            # The fault is a race between shards: many rounds of 4 pipelined requests.
            n = N_PARTS
            body = list_offsets_body()
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
            self.check_clean_stop(b)

    def test_orphaned_requests_freed_at_stop(self):
        """Requests whose connection closed while their ops wait in the retry list, stopped
        by SIGTERM: the stop waits for them (their ops run, or answer locally as errors once
        their target shard closed) and frees them."""
        b = Broker("-X", "strata.shard.queue.capacity=64")
        try:
            s = socket.create_connection(("127.0.0.1", b.port))
            s.settimeout(300)
            create_topic(s)
            body = list_offsets_body()
            s.sendall(b"".join(kwire.frame(2, 1, 10 + k, body) for k in range(4)))
            # And JoinGroups waiting for the initial rebalance delay on both shards'
            # coordinators (8 groups), their connections closed too.
            joins = []
            for g in range(8):
                j = socket.create_connection(("127.0.0.1", b.port))
                name = b"orphan-%d" % g
                jb = (struct.pack(">h", len(name)) + name + struct.pack(">i", 30000) +
                      struct.pack(">h", 0) + struct.pack(">h", 8) + b"consumer" +
                      struct.pack(">i", 1) + struct.pack(">h", 5) + b"range" +
                      struct.pack(">i", 0))
                j.sendall(kwire.frame(11, 0, 1, jb))
                joins.append(j)
            # Let the broker read them and post ops: 320,000 of them through queues of 64
            # take seconds, so most still wait when the stop comes (were they all answered
            # already, the test would pass without testing the stop; it cannot fail for it).
            time.sleep(0.5)
            s.close()
            for j in joins:
                j.close()
        finally:
            self.check_clean_stop(b)


if __name__ == "__main__":
    unittest.main()
