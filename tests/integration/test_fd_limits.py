#!/usr/bin/python3
"""File descriptor limits: a stratad out of file descriptors keeps serving the
connections it has and accepts again once descriptors are free.

libuv (1.44) answers EMFILE on accept with its "emfile trick": close a spare
descriptor, accept and close the pending connections, reopen the spare. When
the spare cannot be reopened (another thread took the descriptor, or the
limit is below its number), libuv calls back with EMFILE and retries the
accept at once, forever, and the shard serves nobody. The test builds that
state deterministically: it lowers the running broker's soft RLIMIT_NOFILE
(prlimit --pid) to the lowest descriptor number among the spares, so that
every descriptor below the limit is in use, then connects more clients.

strata.max.partitions defaults to what the open file limit allows (a partition
keeps a descriptor per segment, its .log; 2 are counted per partition):
MaxPartitionsDefaultTest starts stratad under prlimit with a small hard limit.
Run against the ASan+UBSan stratad too (scripts/test.sh)."""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import SANITIZER_LINES, Broker  # noqa: E402
from confluent_kafka import KafkaError, KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402
from kwire import frame, kstr, produce_v7, read_frame, record_batch  # noqa: E402
from test_admin import http, parse_metrics  # noqa: E402

TOPIC = "fdtest"


def fds(pid):
    """{fd number: link target} of a process."""
    out = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(name)] = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            pass
    return out


def set_nofile(pid, soft, hard):
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)], check=True)


def nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def api_versions(corr):
    return frame(18, 0, corr)


def metadata_all(corr):
    return frame(3, 1, corr, struct.pack(">i", -1))


def correlation(resp):
    return struct.unpack(">i", resp[4:8])[0]


def produce_err(resp):
    """Error code of the single partition of a Produce v7 response."""
    off = 8 + 4  # size, correlation id, topic count
    nlen = struct.unpack(">h", resp[off:off + 2])[0]
    off += 2 + nlen + 4  # name, partition count
    _, err = struct.unpack(">ih", resp[off:off + 6])
    return err


class FdExhaustionTest(unittest.TestCase):
    def setUp(self):
        self.b = Broker()
        self.extra = []

    def tearDown(self):
        for s in self.extra:
            s.close()
        if self.b.proc:
            self.b.kill9()
        self.b.close()

    def call(self, s, payload, timeout=60):
        """One request on s; the timeout only bounds a broker that hangs."""
        s.settimeout(timeout)
        s.sendall(payload)
        resp = read_frame(s)
        self.assertTrue(resp, "the broker closed a served connection")
        return resp

    def connect_extra(self, n):
        """n more clients, each with an ApiVersions request sent; returns how
        many were answered (not all are: the broker is out of descriptors)."""
        socks = []
        for i in range(n):
            try:
                s = socket.create_connection(("127.0.0.1", self.b.port), timeout=5)
                s.sendall(api_versions(i))
                socks.append(s)
            except OSError:
                pass  # refused: every shard's listener is paused
        self.extra += socks
        answered = 0
        for s in socks:
            s.settimeout(2)
            try:
                if read_frame(s):
                    answered += 1
            except OSError:
                pass  # reset or no answer: not accepted
        return answered

    def exhaust(self, pid):
        """Lower the soft limit to the first descriptor number not in use or
        the lowest spare descriptor of libuv's loops, whichever is lower: no
        descriptor can be allocated and no spare can be reopened."""
        open_fds = fds(pid)
        spares = [n for n, t in open_fds.items() if n > 2 and t == "/dev/null"]
        self.assertTrue(spares, "no spare descriptor (libuv's emfile_fd) in %r" % open_fds)
        gap = min(n for n in range(len(open_fds) + 1) if n not in open_fds)
        limit = min(min(spares), gap)  # every descriptor below it is in use
        soft, hard = nofile(pid)
        set_nofile(pid, limit, hard)
        return soft, hard

    def test_served_while_out_of_descriptors_and_accepting_after(self):
        pid = self.b.proc.pid
        admin = AdminClient({"bootstrap.servers": self.b.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        del admin
        c0 = socket.create_connection(("127.0.0.1", self.b.port), timeout=30)
        batch = record_batch([b"before"])
        self.assertEqual(produce_err(self.call(c0, produce_v7([(TOPIC, [(0, batch)])], corr=1))), 0)

        soft, hard = self.exhaust(pid)
        # More clients than descriptors: none can be accepted.
        self.assertEqual(self.connect_extra(40), 0)
        # The connection open before is still served (Metadata and Produce):
        # no shard is stuck in libuv's accept loop.
        self.assertEqual(correlation(self.call(c0, metadata_all(2))), 2)
        batch = record_batch([b"during"])
        self.assertEqual(produce_err(self.call(c0, produce_v7([(TOPIC, [(0, batch)])], corr=3))), 0)
        self.b.wait_for(r"Kafka listener PLAINTEXT 127\.0\.0\.1:%d: accept failed: .*not "
                        r"accepting connections for 1000 ms" % self.b.port, seen=True)

        # Descriptors free again: new clients are accepted (the listeners are
        # opened again within about a second; the loop only bounds a failure).
        for s in self.extra:
            s.close()
        self.extra = []
        set_nofile(pid, soft, hard)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.b.port), timeout=10) as s:
                    self.assertEqual(correlation(self.call(s, api_versions(7))), 7)
                    # answered by both shards' listeners eventually: one is enough here
                    break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        status, _, text = http(self.b.admin_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertGreater(parse_metrics(text)[("strata_listener_paused_total", frozenset())], 0)
        self.b.wait_for(r"accepting connections again", seen=True)

        # Out of descriptors again, then a clean stop while listeners are paused.
        self.exhaust(pid)
        self.assertEqual(self.connect_extra(10), 0)
        self.assertEqual(correlation(self.call(c0, metadata_all(8))), 8)
        c0.close()
        rc, out = self.b.stop()
        self.assertEqual(rc, 0, out[-3000:])
        self.assertIn("stopped cleanly", out)
        for bad in SANITIZER_LINES:
            self.assertNotIn(bad, out)


class MaxPartitionsDefaultTest(unittest.TestCase):
    """Under `prlimit --nofile=300:512` stratad raises its soft limit to 512 and
    derives strata.max.partitions = min(100000, max(1, (512 - max(256, 512 / 4)) / 2))
    = 128; an explicit value wins. The partitions it allows are used (a record
    in each, so each has its log and active segment open) and restarted with
    (every segment reopened at once): the descriptors they take stay within
    what the formula counts."""

    def start(self, *args):
        b = Broker(*args, wrap=["prlimit", "--nofile=300:512"])
        self.addCleanup(b.close)
        return b

    def max_partitions(self, b):
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        res = ConfigResource("broker", "0")
        kafka = a.describe_configs([res])[res].result(30)["strata.max.partitions"].value
        status, _, doc = http(b.admin_port, "GET", "/v1/cluster/config")
        self.assertEqual(status, 200)
        admin = {e["name"]: e for e in doc["config"]}["strata.max.partitions"]
        self.assertEqual(str(admin["value"]), kafka)
        return int(kafka), admin["source"]

    def segment_fds(self, pid):
        return sum(1 for t in fds(pid).values() if t.endswith(".log"))

    def test_derived_from_the_open_file_limit(self):
        b = self.start()
        self.assertEqual(nofile(b.proc.pid), (512, 512))  # soft raised to the hard limit
        b.wait_for(r"strata\.max\.partitions=128, derived from the open file limit 512", seen=True)
        self.assertEqual(self.max_partitions(b), (128, "default"))
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic("many", 120, 1)])["many"].result(60)
        with self.assertRaises(KafkaException) as e:
            a.create_topics([NewTopic("ten", 10, 1)])["ten"].result(30)
        err = e.exception.args[0]
        self.assertEqual(err.code(), KafkaError.POLICY_VIOLATION, err)
        self.assertIn("over strata.max.partitions=128 (by default derived from the open file "
                      "limit", err.str())
        a.create_topics([NewTopic("eight", 8, 1)])["eight"].result(30)  # exactly 128
        # A record in each: every partition has its log and active segment open.
        before = len(fds(b.proc.pid))
        p = Producer({"bootstrap.servers": b.bootstrap})
        for topic, n in (("many", 120), ("eight", 8)):
            for part in range(n):
                p.produce(topic, b"v", partition=part)
        self.assertEqual(p.flush(60), 0)
        del p
        opened = len(fds(b.proc.pid)) - before
        self.assertEqual(self.segment_fds(b.proc.pid), 128)  # one .log each, nothing else kept
        self.assertLessEqual(opened, 2 * 128, "more descriptors per partition than counted")
        rc, out = b.stop()
        self.assertEqual(rc, 0, out[-3000:])
        for bad in SANITIZER_LINES:
            self.assertNotIn(bad, out)
        # Restarted with a smaller explicit bound than the partitions it has: it says so,
        # and opens them all again (one descriptor each) within the limit.
        b.args += ["-X", "strata.max.partitions=10"]
        b.start()
        b.wait_for(r"the topics have 128 partitions, more than strata\.max\.partitions=10",
                   seen=True)
        self.assertEqual(self.segment_fds(b.proc.pid), 128)
        rc, out = b.stop()
        self.assertEqual(rc, 0, out[-3000:])

    def test_an_explicit_value_wins(self):
        b = self.start("-X", "strata.max.partitions=100")
        self.assertEqual(self.max_partitions(b), (100, "command line"))
        self.assertNotIn("derived from the open file limit", "".join(b.lines))


if __name__ == "__main__":
    unittest.main(verbosity=2)
