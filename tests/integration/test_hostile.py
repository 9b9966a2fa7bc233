#!/usr/bin/python3
"""Hostile clients: crafted raw requests over TCP must neither crash stratad nor
balloon its memory, and the broker must keep serving a normal client afterwards.

Run against the ASan+UBSan stratad by scripts/test.sh (ASan aborts the process
on a memory error, so "still alive and no sanitizer line in its output" is the
check). Memory is bounded, not time: for each crafted request the peak RSS
growth (VmHWM after the request minus VmRSS before it, the peak being reset
through /proc/PID/clear_refs) must stay under the bound stated next to it.
Set HOSTILE_REPORT=1 to print the measured peaks."""
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import SANITIZER_LINES, Broker  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kwire import (delete_records_v1_many, frame, kstr, produce_v7, read_frame,  # noqa: E402
                   record_batch)
from test_admin import http, parse_metrics  # noqa: E402

MIB = 1 << 20
READ_TIMEOUT_MS = 1500  # strata.request.read.timeout.ms of the shared broker
REPORT = {}


def asan_env():
    """The environment with a small ASan quarantine (ignored by the Release
    build): freed memory then stops counting in VmHWM soon, so the peak
    measures what the broker holds, not what it allocated over time."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
    return env


def proc_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def part_blob(n, entry):
    """n partition entries packed by entry(i) (bytes)."""
    return b"".join(entry(i) for i in range(n))


class HostileRequestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker("-X", "strata.request.read.timeout.ms=%d" % READ_TIMEOUT_MS, env=asan_env())
        a = AdminClient({"bootstrap.servers": cls.b.bootstrap})
        a.create_topics([NewTopic("real", 4, 1)])["real"].result(30)
        cls.normal_client()  # warm up: first-use allocations are not counted against a test

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        if os.environ.get("HOSTILE_REPORT"):
            for name, (kib, bound, secs) in sorted(REPORT.items()):
                print("%-40s peak growth %7.1f MiB (bound %d MiB) %5.1f s"
                      % (name, kib / 1024, bound, secs), file=sys.stderr)
        for s in SANITIZER_LINES:
            assert s not in out, out[-20000:]
        assert rc == 0, out[-5000:]

    @classmethod
    def normal_client(cls):
        p = Producer({"bootstrap.servers": cls.b.bootstrap})
        p.produce("real", b"normal", partition=0)
        assert p.flush(30) == 0, "a normal producer was not served"

    def setUp(self):
        self.pid = self.b.proc.pid
        with open("/proc/%d/clear_refs" % self.pid, "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        self.rss0 = proc_kib(self.pid, "VmRSS")
        self.t0 = time.monotonic()

    def check(self, name, bound_mib):
        """The broker survived, serves a normal client, and grew by less than bound_mib."""
        self.assertIsNone(self.b.proc.poll(), "stratad died:\n" + "".join(self.b.lines[-200:]))
        self.normal_client()
        grown = proc_kib(self.pid, "VmHWM") - self.rss0
        REPORT[name] = (grown, bound_mib, time.monotonic() - self.t0)
        self.b._drain()
        out = "".join(self.b.lines)
        for s in SANITIZER_LINES:
            self.assertNotIn(s, out)
        self.assertLess(grown, bound_mib * 1024, "%s: peak RSS grew by %d KiB" % (name, grown))

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.b.port), timeout=60)

    def send_expect_close(self, payload):
        """Send payload; the broker must close the connection without answering."""
        s = self.connect()
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            data = read_frame(s)
        except ConnectionResetError:
            data = b""
        s.close()
        return data

    # ---- Requests whose ops were in flight when the arena ran out ----

    def test_produce_800k_partitions_after_a_real_one(self):
        # The first topic's partition is appended on its shard while the second
        # topic's 800,000 entries exhaust the request's arena.
        batch = record_batch([b"v"])
        blob = part_blob(800000, lambda i: struct.pack(">ii", i, -1))
        req = produce_v7([("real", [(0, batch)]), ("real", 800000, blob)])
        self.assertGreater(len(req), 6 * MIB)
        for acks in (-1, 1):
            req = produce_v7([("real", [(0, batch)]), ("real", 800000, blob)], acks=acks)
            self.assertEqual(self.send_expect_close(req), b"")
        self.check("produce 800k partitions", 200)

    def test_delete_records_2m_partitions_after_a_real_one(self):
        # Its results are smaller than Produce's: 2,000,000 entries exhaust the arena.
        blob = part_blob(2000000, lambda i: struct.pack(">iq", i, 0))
        req = delete_records_v1_many([("real", 1, struct.pack(">iq", 1, 0)),
                                      ("real", 2000000, blob)])
        self.assertEqual(self.send_expect_close(req), b"")
        self.check("delete records 2M partitions", 250)

    def test_describe_groups_arena_exhausted_after_ops_posted(self):
        # Group APIs post one op per group, then copy the next name: 400,000
        # names fit the decoded request and the response, not their ops too.
        n = 400000
        body = struct.pack(">i", n) + b"".join(kstr("g%07d" % i) for i in range(n))
        self.assertEqual(self.send_expect_close(frame(15, 0, 1, body)), b"")
        self.check("describe groups 400k groups", 250)

    # ---- Counts and sizes ----

    def test_many_names_checked_for_duplicates_in_linear_work(self):
        # DeleteGroups and CreateTopics refuse names given twice: 100,000
        # names must not cost 5e9 comparisons on a shard's loop (that took
        # ~10 s of CPU per 50,000 names). Bounded in CPU seconds of the
        # broker, with a wide margin, not in wall-clock time.
        def cpu_s():
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        n = 100000
        cpu0 = cpu_s()
        names = b"".join(kstr("g%07d" % i) for i in range(n))
        s = self.connect()
        s.sendall(frame(42, 0, 1, struct.pack(">i", n) + names))  # DeleteGroups v0
        self.assertEqual(struct.unpack(">i", read_frame(s)[4:8])[0], 1)
        # every name twice, and invalid (a space): nothing is created
        topics = b"".join(kstr("t %07d" % (i % 50000)) + struct.pack(">ihii", 1, 1, 0, 0)
                          for i in range(n))
        s.sendall(frame(19, 0, 2, struct.pack(">i", n) + topics + struct.pack(">i", 1)))
        data = read_frame(s)  # CreateTopics v0, timeout 1 ms
        s.close()
        if data:
            self.assertEqual(struct.unpack(">i", data[4:8])[0], 2)
        self.assertLess(cpu_s() - cpu0, 20)
        self.check("100k names, duplicates checked", 250)

    def test_many_topics(self):
        # 300,000 distinct unknown topics of one partition each: one error each.
        n = 300000
        topics = [("t%06d" % i, 1, struct.pack(">ii", 0, -1)) for i in range(n)]
        s = self.connect()
        s.sendall(produce_v7(topics, corr=9))
        data = read_frame(s)
        s.close()
        if data:  # answered (UNKNOWN_TOPIC_OR_PARTITION each) or closed: both fine
            self.assertEqual(struct.unpack(">i", data[4:8])[0], 9)
        self.check("produce 300k topics", 250)

    def test_huge_counts_with_tiny_bodies(self):
        cases = [
            produce_v7([], corr=1)[:-4] + struct.pack(">i", 0x7FFFFFFF),  # topics
            produce_v7([("real", 0x7FFFFFFF, b"")]),  # partitions
            frame(3, 1, 1, struct.pack(">i", 0x7FFFFFFF)),  # metadata topics
            frame(15, 0, 1, struct.pack(">i", 0x7FFFFFFF) + kstr("g")),  # describe groups
            frame(21, 1, 1, struct.pack(">i", 0x7FFFFFFF)),  # delete records topics
            frame(1, 4, 1, struct.pack(">iiiib", -1, 500, 1, 0x7FFFFFFF, 0)
                  + struct.pack(">i", 0x7FFFFFFF)),  # fetch topics
        ]
        for payload in cases:
            self.assertEqual(self.send_expect_close(payload), b"")
        self.check("huge counts, tiny bodies", 64)

    # ---- Buffers, timeouts, back-pressure ----

    def queued_bytes(self):
        for _ in range(300):  # 503 while a shard is still busy with an earlier request
            status, _, text = http(self.b.admin_port, "GET", "/metrics")
            if status != 503:
                break
            time.sleep(0.1)
        self.assertEqual(status, 200, text)
        return parse_metrics(text)[("strata_kafka_queued_request_bytes", frozenset())]

    def test_header_then_silence(self):
        # 20 connections each announce a 100 MB frame and send nothing more:
        # the broker buffers only what arrived, and closes each connection
        # once the frame has not arrived whole within the read timeout.
        before = self.queued_bytes()  # earlier tests' requests may still be draining
        socks = []
        for _ in range(20):
            s = self.connect()
            s.sendall(struct.pack(">i", 100 * 1000 * 1000))
            socks.append(s)
        s = self.connect()  # a request on another connection: all 20 headers were read
        self.assertEqual(read_frame(s.sendall(frame(18, 0, 3)) or s)[4:8], struct.pack(">i", 3))
        s.close()
        self.assertLess(self.queued_bytes() - before, 20 * MIB)
        for s in socks:  # the socket timeout (60 s) is only an upper bound
            self.assertEqual(s.recv(100), b"")
            s.close()
        self.check("20 headers of 100 MB, then silence", 48)

    def test_trickle_of_one_byte_per_step(self):
        # A frame of 60 bytes sent one byte at a time: the bytes that keep
        # coming do not restart the read timeout, so the broker closes the
        # connection before the frame is whole.
        payload = frame(18, 0, 4, b"x" * (60 - 14))
        s = self.connect()
        closed_at = None
        for i, byte in enumerate(payload):
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = i
                break
            r, _, _ = select.select([s], [], [], READ_TIMEOUT_MS / 1000 / 4)
            if r:
                try:
                    data = s.recv(100)
                except ConnectionResetError:
                    data = b""
                self.assertEqual(data, b"")
                closed_at = i
                break
        s.close()
        self.assertIsNotNone(closed_at, "the broker waited for a trickled frame to complete")
        self.assertLess(closed_at, len(payload) - 1)
        self.check("trickle", 16)

    def test_pipelined_requests_without_reading_answers(self):
        # 20,000 DescribeConfigs of the broker (~30 bytes each, ~5 KB answers)
        # sent at once by a client that reads nothing: the broker takes at
        # most KH_MAX_INFLIGHT of them per connection and stops reading while
        # 4 MiB of answers wait; once the client reads, every answer comes.
        n = 20000
        req = lambda i: frame(32, 0, i, struct.pack(">ib", 1, 4) + kstr("0") +  # noqa: E731
                              struct.pack(">i", -1))
        before = self.queued_bytes()
        s = self.connect()
        sender = threading.Thread(target=s.sendall, args=(b"".join(req(i) for i in range(n)),))
        sender.start()
        time.sleep(1)  # not a threshold: only lets the broker fill what it may
        self.assertLess(self.queued_bytes() - before, 64 * MIB)
        for i in range(n):
            data = read_frame(s)
            self.assertEqual(struct.unpack(">i", data[4:8])[0], i)
        sender.join()
        s.close()
        self.check("20k pipelined DescribeConfigs, unread", 64)


class QueuedRequestBytesTest(unittest.TestCase):
    def test_small_pool_pauses_reading_and_everything_is_answered(self):
        # queued.max.request.bytes of 1 MiB and 8 connections that each send
        # 3 pipelined Produce requests of a 900 KB batch with acks=all (each
        # stays in the pool until its fsync): reading pauses while the pool
        # is full, a frame begun with room is read to its end, every request
        # is answered, and the pool is empty at the end.
        b = Broker("-X", "queued.max.request.bytes=1048576", env=asan_env())
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("pool", 8, 1)])["pool"].result(30)
            batch = record_batch([b"x" * 900000])
            pid = b.proc.pid
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")
            rss0 = proc_kib(pid, "VmRSS")
            socks, senders = [], []
            for k in range(8):
                s = socket.create_connection(("127.0.0.1", b.port), timeout=60)
                data = b"".join(produce_v7([("pool", [(k, batch)])], acks=-1, corr=10 * k + i)
                                for i in range(3))
                t = threading.Thread(target=s.sendall, args=(data,))
                t.start()
                socks.append(s)
                senders.append(t)
            for k, s in enumerate(socks):
                for i in range(3):
                    data = read_frame(s)
                    self.assertEqual(struct.unpack(">i", data[4:8])[0], 10 * k + i)
                    self.assertEqual(data[-30:-28], b"\x00\x00", data[-40:])  # error_code
            for t in senders:
                t.join()
            for s in socks:
                s.close()
            grown = proc_kib(pid, "VmHWM") - rss0
            REPORT["8 x 3 x 900 KB produce, 1 MiB pool"] = (grown, 96, 0)
            self.assertLess(grown, 96 * 1024)
            for _ in range(300):  # the last frees are seen (an upper bound, not a threshold)
                _, _, text = http(b.admin_port, "GET", "/metrics")
                queued = parse_metrics(text)[("strata_kafka_queued_request_bytes", frozenset())]
                if queued == 0:
                    break
                time.sleep(0.1)
            self.assertEqual(queued, 0)
        finally:
            rc, out = b.stop()
            b.close()
        for s in SANITIZER_LINES:
            self.assertNotIn(s, out)
        self.assertEqual(rc, 0, out[-3000:])


class ConnectionLimitsTest(unittest.TestCase):
    def test_max_connections_and_per_ip(self):
        b = Broker("-X", "max.connections=12", "-X", "max.connections.per.ip=8")
        open_ = []

        def conn(src):
            s = socket.socket()
            s.settimeout(30)
            s.bind((src, 0))
            s.connect(("127.0.0.1", b.port))
            return s

        def served(s):
            try:
                s.sendall(frame(18, 0, 7))
                return read_frame(s) != b""
            except (BrokenPipeError, ConnectionResetError):
                return False

        try:
            for _ in range(8):
                open_.append(conn("127.0.0.1"))
                self.assertTrue(served(open_[-1]))
            refused = 0
            for _ in range(5):  # max.connections.per.ip
                s = conn("127.0.0.1")
                self.assertFalse(served(s))
                s.close()
                refused += 1
            for _ in range(4):
                open_.append(conn("127.0.0.2"))
                self.assertTrue(served(open_[-1]))
            s = conn("127.0.0.3")  # max.connections
            self.assertFalse(served(s))
            s.close()
            refused += 1
            _, _, text = http(b.admin_port, "GET", "/metrics")
            m = parse_metrics(text)
            self.assertEqual(m[("strata_kafka_connections_refused_total", frozenset())], refused)
            # The line is in the broker's stderr before the refused socket closes, but the
            # test's pipe reader may not have queued it yet (fresh run 41, ASan under load).
            b.wait_for("refused a connection", seen=True)
            b._drain()
            lines = [x for x in b.lines if "refused a connection" in x]
            self.assertLessEqual(len(lines), 2)  # one per shard per 10 s at most
            for s in open_:
                s.close()
            open_ = []
            for _ in range(300):  # the broker sees the closes (an upper bound, not a threshold)
                _, _, text = http(b.admin_port, "GET", "/metrics")
                if parse_metrics(text)[("strata_kafka_connections", frozenset())] == 0:
                    break
                time.sleep(0.1)
            p = Producer({"bootstrap.servers": b.bootstrap})
            p.produce("limits", b"x")
            self.assertEqual(p.flush(30), 0)
        finally:
            for s in open_:
                s.close()
            rc, out = b.stop()
            b.close()
        for s in SANITIZER_LINES:
            self.assertNotIn(s, out)
        self.assertEqual(rc, 0, out[-3000:])


class PartitionLimitTest(unittest.TestCase):
    """strata.max.partitions bounds the partitions of all topics together:
    one CreatePartitions once asked for 327,679 partitions (a fuzzed count)
    and the broker ran out of file descriptors."""

    def test_create_topics_partitions_and_auto_create_are_bounded(self):
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewPartitions
        b = Broker("-X", "strata.max.partitions=50", env=asan_env())
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("forty", 40, 1)])["forty"].result(30)

            def refused(fut):
                with self.assertRaises(KafkaException) as e:
                    fut.result(30)
                err = e.exception.args[0]
                self.assertEqual(err.code(), KafkaError.POLICY_VIOLATION, err)
                self.assertIn("strata.max.partitions=50", err.str())
            refused(a.create_topics([NewTopic("twenty", 20, 1)])["twenty"])
            refused(a.create_partitions([NewPartitions("forty", 99999)])["forty"])
            # Within the bound both still work, up to exactly 50.
            a.create_topics([NewTopic("five", 5, 1)])["five"].result(30)
            a.create_partitions([NewPartitions("forty", 45)])["forty"].result(30)
            refused(a.create_topics([NewTopic("one", 1, 1)])["one"])
            # Auto-creation stops there too: the topic stays unknown.
            md = a.list_topics("auto-new", timeout=30)
            self.assertNotEqual(md.topics["auto-new"].error, None)
            listed = subprocess.run(["kcat", "-b", b.bootstrap, "-L", "-J"], capture_output=True,
                                    text=True, timeout=60)
            self.assertEqual(sorted(t["topic"] for t in json.loads(listed.stdout)["topics"]),
                             ["five", "forty"])
            rc, out = b.stop()
            self.assertEqual(rc, 0, out[-3000:])
            for line in SANITIZER_LINES:
                self.assertNotIn(line, out)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
