#!/usr/bin/python3
"""Fetch budget (Kafka's KIP-74) against a real stratad, with raw Fetch v4
frames (exact response sizes) and real clients:
- a response never exceeds min(max_bytes, fetch.max.bytes), except that the
  first batch of the first non-empty partition is returned whole;
- partition_max_bytes limits each partition; after the first non-empty
  partition a batch larger than what is left is not returned;
- a partition named several times is answered once (the last entry's offset,
  the first entry's place), as Kafka's request map does;
- the order partitions are served rotates between fetches of a connection,
  so a budget smaller than the data starves no partition;
- archived (tiered) reads obey the same budget;
- the hostile shape (one partition named 64 times, 200 MB each) keeps the
  broker's peak RSS (VmHWM) within a stated bound."""
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
import kwire  # noqa: E402
from test_hostile import asan_env  # noqa: E402

MB = 1 << 20


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def s16(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def fetch_v4(topics, max_bytes=0x7FFFFFFF, min_bytes=1, max_wait=0, corr=3):
    """topics: [(name, [(partition, offset, partition_max_bytes), ...]), ...]"""
    body = struct.pack(">iiiib", -1, max_wait, min_bytes, max_bytes, 0)
    body += struct.pack(">i", len(topics))
    for name, parts in topics:
        body += s16(name) + struct.pack(">i", len(parts))
        for p, off, pmax in parts:
            body += struct.pack(">iqi", p, off, pmax)
    return kwire.frame(1, 4, corr, body)


def batches(records):
    """[(base_offset, size)] of the whole batches in a records blob."""
    out, pos = [], 0
    while pos + 12 <= len(records):
        base, blen = struct.unpack_from(">qi", records, pos)
        if pos + 12 + blen > len(records):
            break
        out.append((base, 12 + blen))
        pos += 12 + blen
    return out


def parse_fetch_v4(data):
    """[(topic, [(partition, error, hw, records), ...]), ...]"""
    o = 8 + 4  # size, correlation id, throttle
    (nt,) = struct.unpack_from(">i", data, o)
    o += 4
    out = []
    for _ in range(nt):
        (n,) = struct.unpack_from(">h", data, o)
        name = data[o + 2:o + 2 + n].decode()
        o += 2 + n
        (np_,) = struct.unpack_from(">i", data, o)
        o += 4
        parts = []
        for _ in range(np_):
            p, err, hw, _lso = struct.unpack_from(">ihqq", data, o)
            o += 22
            (na,) = struct.unpack_from(">i", data, o)
            o += 4 + max(na, 0) * 16
            (rl,) = struct.unpack_from(">i", data, o)
            o += 4
            rec = data[o:o + max(rl, 0)]
            o += max(rl, 0)
            parts.append((p, err, hw, rec))
        out.append((name, parts))
    assert o == len(data), (o, len(data))
    return out


def call(port, frame):
    c = kwire.Conn(port)
    try:
        return c.call(frame)
    finally:
        c.close()


def produce(port, topic, partition, value, n):
    c = kwire.Conn(port)
    try:
        for i in range(n):
            err, _ = kwire.parse_produce_v3(
                c.call(kwire.produce_v3(topic, partition,
                                        kwire.record_batch([value], ts=int(time.time() * 1000)),
                                        acks=1, corr=i)))
            assert err == 0, err
    finally:
        c.close()


def create(b, name, partitions, **config):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result(30)


VALUE = b"v" * 1000
B = len(kwire.record_batch([VALUE]))  # every batch here has this size


class BudgetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker()
        create(cls.b, "kip74", 3)
        for p in range(3):
            produce(cls.b.port, "kip74", p, VALUE, 10)
        create(cls.b, "sparse", 3)  # partition 0 stays empty
        for p in (1, 2):
            produce(cls.b.port, "sparse", p, VALUE, 5)

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def fetch(self, topics, **kw):
        return parse_fetch_v4(call(self.b.port, fetch_v4(topics, **kw)))

    def sizes(self, resp):
        return {(t, p): [s for _, s in batches(rec)] for t, parts in resp for p, _, _, rec in parts}

    def test_max_bytes_spent_in_partition_order(self):
        all3 = [("kip74", [(p, 0, 100 * MB) for p in range(3)])]
        # Two and a half batches: two whole batches of partition 0, nothing else.
        got = self.sizes(self.fetch(all3, max_bytes=2 * B + B // 2))
        self.assertEqual(got, {("kip74", 0): [B, B], ("kip74", 1): [], ("kip74", 2): []})
        # Twelve batches: partition 0's ten, then two of partition 1.
        got = self.sizes(self.fetch(all3, max_bytes=12 * B))
        self.assertEqual(got, {("kip74", 0): [B] * 10, ("kip74", 1): [B] * 2, ("kip74", 2): []})

    def test_first_batch_of_first_non_empty_partition_is_whole(self):
        all3 = [("kip74", [(p, 0, 100 * MB) for p in range(3)])]
        got = self.sizes(self.fetch(all3, max_bytes=10))
        self.assertEqual(got, {("kip74", 0): [B], ("kip74", 1): [], ("kip74", 2): []})
        # partition_max_bytes below one batch: the first partition still gets
        # its first batch, the later ones nothing (their limit holds).
        small = [("kip74", [(p, 0, 100) for p in range(3)])]
        got = self.sizes(self.fetch(small))
        self.assertEqual(got, {("kip74", 0): [B], ("kip74", 1): [], ("kip74", 2): []})
        # The exception goes to the first partition that has data, here 1.
        sparse = [("sparse", [(p, 0, 100) for p in range(3)])]
        got = self.sizes(self.fetch(sparse))
        self.assertEqual(got, {("sparse", 0): [], ("sparse", 1): [B], ("sparse", 2): []})
        got = self.sizes(self.fetch([("sparse", [(p, 0, 100 * MB) for p in range(3)])],
                                    max_bytes=3 * B))
        self.assertEqual(got, {("sparse", 0): [], ("sparse", 1): [B] * 3, ("sparse", 2): []})

    def test_duplicate_partitions_answered_once(self):
        resp = self.fetch([("kip74", [(0, 0, 100 * MB), (1, 0, 100 * MB), (0, 7, 100 * MB)]),
                           ("kip74", [(2, 9, 100 * MB), (1, 4, 100 * MB)])])
        self.assertEqual(len(resp), 1, [(t, [p for p, _, _, _ in ps]) for t, ps in resp])
        name, parts = resp[0]
        self.assertEqual(name, "kip74")
        self.assertEqual([p for p, _, _, _ in parts], [0, 1, 2])
        first = {p: [o for o, _ in batches(rec)] for p, _, _, rec in parts}
        self.assertEqual(first, {0: [7, 8, 9], 1: [4, 5, 6, 7, 8, 9], 2: [9]})

    def test_rotation_between_fetches_of_a_connection(self):
        c = kwire.Conn(self.b.port)
        try:
            served = []
            for i in range(6):
                resp = parse_fetch_v4(c.call(fetch_v4(
                    [("kip74", [(p, 0, 100 * MB) for p in range(3)])], max_bytes=B, corr=i)))
                got = [p for _, parts in resp for p, _, _, rec in parts if rec]
                self.assertEqual(len(got), 1, resp)
                self.assertEqual([p for _, parts in resp for p, _, _, _ in parts], [0, 1, 2])
                served += got
            self.assertEqual(served, [0, 1, 2, 0, 1, 2])
        finally:
            c.close()

    def test_real_clients_read_every_partition_with_a_small_budget(self):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.b.bootstrap, "group.id": "budget",
                      "fetch.max.bytes": 2 * B, "max.partition.fetch.bytes": 2 * B,
                      "message.max.bytes": 2 * B, "receive.message.max.bytes": 2 * B + 10000,
                      "enable.auto.commit": False})
        try:
            c.assign([TopicPartition("kip74", p, 0) for p in range(3)])
            seen = set()
            deadline = time.monotonic() + 60
            while len(seen) < 30 and time.monotonic() < deadline:
                m = c.poll(1)
                if m is not None and not m.error():
                    seen.add((m.partition(), m.offset()))
            self.assertEqual(seen, {(p, o) for p in range(3) for o in range(10)})
        finally:
            c.close()
        from kafka import KafkaConsumer, TopicPartition as KTP
        k = KafkaConsumer(bootstrap_servers=self.b.bootstrap, fetch_max_bytes=2 * B,
                          max_partition_fetch_bytes=2 * B, enable_auto_commit=False,
                          consumer_timeout_ms=5000)
        try:
            k.assign([KTP("kip74", p) for p in range(3)])
            for p in range(3):
                k.seek(KTP("kip74", p), 0)
            seen = {(m.partition, m.offset) for m in k}
            self.assertEqual(seen, {(p, o) for p in range(3) for o in range(10)})
        finally:
            k.close()


class HostileFetchTest(unittest.TestCase):
    def test_one_partition_named_64_times_with_200_mb_each(self):
        cap = 8 * MB
        big = b"x" * 1000000
        bb = len(kwire.record_batch([big]))
        b = Broker("--set", "fetch.max.bytes=%d" % cap)
        try:
            create(b, "big", 1)
            produce(b.port, "big", 0, big, 24)  # a 24 MB log
            pid = b.proc.pid
            before = vm_hwm_kib(pid)
            frame = fetch_v4([("big", [(0, 0, 200 * MB)] * 64)])
            self.assertLess(len(frame), 1500)
            resp = parse_fetch_v4(call(b.port, frame))
            self.assertEqual(len(resp), 1)
            self.assertEqual(len(resp[0][1]), 1)  # answered once
            rec = resp[0][1][0][3]
            self.assertEqual(len(rec), (cap // bb) * bb)  # fetch.max.bytes caps max_bytes
            self.assertEqual([o for o, _ in batches(rec)], list(range(cap // bb)))
            # Four connections at once with the same request.
            import threading
            lens = []
            ts = [threading.Thread(target=lambda: lens.append(len(call(b.port, frame))))
                  for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(len(lens), 4)
            after = vm_hwm_kib(pid)
            # Five budgets' worth (each response is held as records and as
            # its encoding while being written) bounds the growth of the peak;
            # without the budget one request grows it by 64 x 24 MB.
            self.assertLess(after - before, 5 * 4 * cap // 1024,
                            "VmHWM %d KiB -> %d KiB" % (before, after))
            print("VmHWM %d KiB -> %d KiB" % (before, after), file=sys.stderr)
            b.stop_clean()
        finally:
            b.close()


class PipelinedFetchTest(unittest.TestCase):
    def test_pipelined_fetches_of_a_client_that_does_not_read(self):
        """A connection reads for one Fetch at a time and a Fetch's budget
        leaves out what the connection has not sent: 32 hostile Fetches
        pipelined by a client that reads nothing until the end hold about
        two budgets, not 32."""
        cap = 8 * MB
        big = b"x" * 1000000
        # A 16 MiB ASan quarantine (asan_env; the Release build ignores it):
        # freed buffers it holds still count in VmHWM, so the bound allows it.
        b = Broker("--set", "fetch.max.bytes=%d" % cap, env=asan_env())
        try:
            create(b, "big", 1)
            produce(b.port, "big", 0, big, 24)
            pid = b.proc.pid
            before = vm_hwm_kib(pid)
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", b.port))
            s.settimeout(60)
            n = 32
            s.sendall(b"".join(fetch_v4([("big", [(0, 0, 200 * MB)] * 64)], corr=i)
                               for i in range(n)))
            def recv_exact(k):
                buf = bytearray()
                while len(buf) < k:
                    chunk = s.recv(min(k - len(buf), 1 << 20))
                    if not chunk:
                        raise ConnectionError("closed by the broker")
                    buf += chunk
                return bytes(buf)

            total = 0
            for i in range(n):
                head = recv_exact(4)
                resp = parse_fetch_v4(head + recv_exact(struct.unpack(">i", head)[0]))
                self.assertEqual(len(resp[0][1]), 1)
                total += len(resp[0][1][0][3])
            s.close()
            after = vm_hwm_kib(pid)
            self.assertGreater(total, cap)  # data flowed as the client read
            self.assertLess(after - before, (4 * cap + 16 * MB) // 1024,
                            "VmHWM %d KiB -> %d KiB" % (before, after))
            print("pipelined: VmHWM %d KiB -> %d KiB, %d bytes of records"
                  % (before, after, total), file=sys.stderr)
            b.stop_clean()
        finally:
            b.close()


class ManyPartitionsTest(unittest.TestCase):
    def test_a_million_partition_entries_cost_no_more_than_the_request_arena(self):
        b = Broker()
        try:
            create(b, "few", 2)
            produce(b.port, "few", 0, VALUE, 3)
            pid = b.proc.pid
            before = vm_hwm_kib(pid)
            # 16 MB of partition entries: more ops than a request's arena holds.
            n = 1000000
            parts = b"".join(struct.pack(">iqi", i % 4, 0, 200 * MB) for i in range(n))
            body = struct.pack(">iiiib", -1, 0, 1, 0x7FFFFFFF, 0) + struct.pack(">i", 1)
            body += s16("few") + struct.pack(">i", n) + parts
            c = kwire.Conn(b.port)
            try:
                try:
                    data = c.call(kwire.frame(1, 4, 5, body))
                    resp = parse_fetch_v4(data)  # answered: each partition once
                    self.assertEqual([p for p, _, _, _ in resp[0][1]], [0, 1, 2, 3])
                except ConnectionError:
                    pass  # refused for its size: the broker closed the connection
            finally:
                c.close()
            # The broker still serves, within a bounded peak.
            got = parse_fetch_v4(call(b.port, fetch_v4([("few", [(0, 0, MB)])])))
            self.assertEqual(len(batches(got[0][1][0][3])), 3)
            after = vm_hwm_kib(pid)
            self.assertLess(after - before, 400 * 1024, "VmHWM %d -> %d KiB" % (before, after))
            b.stop_clean()
        finally:
            b.close()


class TieredBudgetTest(unittest.TestCase):
    def test_archived_reads_obey_the_budget(self):
        b = Broker("-X", "remote.log.storage.system.enable=true", "-X",
                   "log.retention.check.interval.ms=200", "-X", "log.segment.bytes=16384")
        try:
            create(b, "arch", 1, **{"local.retention.bytes": "32768"})
            produce(b.port, "arch", 0, VALUE, 300)
            deadline = time.monotonic() + 120
            first_local = 0
            while time.monotonic() < deadline and first_local < 100:
                segs = sorted(f for f in os.listdir(os.path.join(b.data, "arch-0"))
                              if f.endswith(".log"))
                first_local = int(segs[0][:20]) if segs else 0
                time.sleep(0.2)
            self.assertGreaterEqual(first_local, 100)

            def fetch(max_bytes, pmax):
                # The archive answers by max.wait; a cold chunk may need a retry.
                for _ in range(20):
                    resp = parse_fetch_v4(call(b.port, fetch_v4(
                        [("arch", [(0, 0, pmax)] * 64)], max_bytes=max_bytes, max_wait=2000)))
                    self.assertEqual(len(resp[0][1]), 1)
                    _, err, _, rec = resp[0][1][0]
                    self.assertEqual(err, 0)
                    if rec:
                        return batches(rec)
                raise AssertionError("no archived data")
            self.assertEqual(fetch(3 * B + 10, 200 * MB), [(o, B) for o in range(3)])
            self.assertEqual(fetch(10, 200 * MB), [(0, B)])
            self.assertEqual(fetch(200 * MB, 2 * B), [(0, B), (1, B)])
            b.stop_clean()
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
