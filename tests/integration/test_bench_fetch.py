#!/usr/bin/python3
"""`strata bench fetch`, the raw Fetch load driver of bench/, counts exactly what was produced.
Against a real stratad: records produced with confluent-kafka (3 partitions, many batches of
mixed sizes, gzip batches, a committed transaction whose marker is a control batch) are
reported record for record, and the record-batch bytes equal the partitions' .log files byte
for byte; the same with a small per-partition limit (many Fetches per partition), and twice
the counts with two passes. An unknown topic exits 1 with "no such topic" and is not created.
Against fake brokers on sockets (every byte from the network is untrusted): a batch cut at
the end of a response is fetched again and counted once; partitions led by two brokers are
read over one connection per leader and summed; a CRC-32C mismatch, a partition
error code, an oversized frame, a garbage body and a closed connection each end the run with
exit 1 and a message that names the cause ({"error": ...} with --format json). No timing
assertions."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
import kwire  # noqa: E402

STRATA = os.environ.get("STRATA", "build/tools/strata")
TOPIC = "fetchdrv"
N_PLAIN, N_GZIP, N_TXN = 3000, 200, 10


def bench_fetch(bootstrap, *args):
    """(exit code, parsed JSON or None, stderr) of `strata bench fetch --format json`."""
    r = subprocess.run([STRATA, "--brokers", bootstrap, "--timeout", "10s", "--format", "json",
                        "bench", "fetch", *args], capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout) if r.returncode == 0 else None
    return r.returncode, out, r.stderr


def log_bytes(data_dir, topic, partitions):
    """Bytes of every .log segment file of the topic's partition directories."""
    names = {"%s-%d" % (topic, p) for p in range(partitions)}
    total, seen = 0, set()
    for root, dirs, files in os.walk(data_dir):
        if os.path.basename(root) in names:
            seen.add(os.path.basename(root))
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                         if f.endswith(".log"))
    assert seen == names, (seen, names)
    return total


class RealBrokerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
        cls.b = b = Broker()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})  # alive until the result
        admin.create_topics([NewTopic(TOPIC, 3, 1)])[TOPIC].result(30)
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
                      "batch.size": 16384})
        for i in range(N_PLAIN):  # values of 0 to 1499 bytes, many batches per partition
            p.produce(TOPIC, value=bytes([65 + i % 26]) * (i * 37 % 1500), partition=i % 3)
        assert p.flush(60) == 0
        z = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 2,
                      "compression.type": "gzip", "batch.size": 4096})
        for i in range(N_GZIP):
            z.produce(TOPIC, value=b"gz-%05d" % i * 20, partition=1)
        assert z.flush(60) == 0
        t = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "fetchdrv-tx",
                      "linger.ms": 2})
        t.init_transactions(60)
        t.begin_transaction()
        for i in range(N_TXN):
            t.produce(TOPIC, value=b"tx-%d" % i, partition=2)
        t.commit_transaction(60)
        # The high watermarks cover every record and the commit marker (an offset of its own).
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "fetchdrv-wm"})
        want = {0: N_PLAIN // 3, 1: N_PLAIN // 3 + N_GZIP, 2: N_PLAIN // 3 + N_TXN + 1}
        deadline = time.monotonic() + 60
        for part, hw in want.items():
            while c.get_watermark_offsets(TopicPartition(TOPIC, part), 10)[1] < hw:
                assert time.monotonic() < deadline, "high watermark of %d below %d" % (part, hw)
                time.sleep(0.1)
        c.close()
        cls.records = N_PLAIN + N_GZIP + N_TXN
        cls.bytes = log_bytes(b.data, TOPIC, 3)

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def check(self, j, passes=1):
        self.assertEqual(j["mode"], "fetch")
        self.assertEqual((j["partitions"], j["brokers"], j["complete"], j["errors"]),
                         (3, 1, True, 0))
        self.assertEqual(j["records"], passes * self.records)
        self.assertEqual(j["bytes"], passes * self.bytes)
        values = sum(i * 37 % 1500 for i in range(N_PLAIN))
        self.assertGreater(j["bytes"], passes * values)  # plus record and batch headers
        self.assertGreater(j["batches"], passes * 3)
        for k in ("wait_ms_avg", "receive_ms_avg", "walk_ms_avg"):  # the Fetch cycle's parts
            self.assertGreaterEqual(j[k], 0)

    def test_counts_every_record_and_batch_byte(self):
        rc, j, err = bench_fetch(self.b.bootstrap, "-t", TOPIC)
        self.assertEqual(rc, 0, err)
        self.check(j)
        self.assertEqual((j["fetch_version"], j["max_bytes"], j["partition_max_bytes"]),
                         (12, 50 << 20, 4 << 20))

    def test_small_partition_limit_and_two_passes(self):
        rc, j, err = bench_fetch(self.b.bootstrap, "-t", TOPIC, "--partition-max-bytes",
                                 "20000", "--fetch-max-bytes", "30000", "-n", "2")
        self.assertEqual(rc, 0, err)
        self.check(j, passes=2)
        self.assertGreater(j["fetches"], 2 * self.bytes // 60000)  # <= 30000 B per answer

    def test_unknown_topic(self):
        rc, j, err = bench_fetch(self.b.bootstrap, "-t", "fetchdrv-none")
        self.assertEqual(rc, 1)
        self.assertIn("no such topic: fetchdrv-none", err)
        from confluent_kafka.admin import AdminClient
        topics = AdminClient({"bootstrap.servers": self.b.bootstrap}).list_topics(timeout=10)
        self.assertNotIn("fetchdrv-none", topics.topics)  # Metadata did not create it

    def test_usage(self):
        r = subprocess.run([STRATA, "bench", "fetch", "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--partition-max-bytes", r.stdout)
        r = subprocess.run([STRATA, "bench", "fetch", "--fetch-max-bytes", "0"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--fetch-max-bytes", r.stderr)


# ---- A fake broker: Metadata v12 and Fetch v12 answers built byte by byte ----

def cstr(s):
    return kwire.uvarint(len(s) + 1) + s


def carr(items):
    return kwire.uvarint(len(items) + 1) + b"".join(items)


def batch_at(base, values, control=False):
    """A v2 batch of values at base offset; control sets attributes bit 5 (CRC redone)."""
    b = bytearray(kwire.record_batch(values))
    b[0:8] = struct.pack(">q", base)  # the base offset is outside the CRC
    if control:
        b[21:23] = struct.pack(">h", 0x20)
        b[17:21] = struct.pack(">I", kwire.crc32c(bytes(b[21:])))
    return bytes(b)


def metadata_v12(ports):
    """Topic "t": partition i led by broker i + 1 on 127.0.0.1:ports[i]."""
    brokers = [struct.pack(">i", i + 1) + cstr(b"127.0.0.1") + struct.pack(">i", port) + b"\0\0"
               for i, port in enumerate(ports)]
    parts = [struct.pack(">hiii", 0, i, i + 1, 0) + carr([struct.pack(">i", i + 1)]) * 2
             + carr([]) + b"\0" for i in range(len(ports))]
    topic = (struct.pack(">h", 0) + cstr(b"t") + b"\x11" * 16 + b"\0" + carr(parts)
             + struct.pack(">i", 0) + b"\0")
    return (struct.pack(">i", 0) + carr(brokers) + b"\0" + struct.pack(">i", 1) + carr([topic])
            + b"\0")


def fetch_v12(records, hw, error=0, partition=0):
    part = (struct.pack(">ihqqq", partition, error, hw, hw, 0) + b"\0" + struct.pack(">i", -1)
            + kwire.uvarint(len(records) + 1) + records + b"\0")
    topic = cstr(b"t") + carr([part]) + b"\0"
    return struct.pack(">ihi", 0, 0, 0) + carr([topic]) + b"\0"


def fetch_offset(body):
    """FetchOffset of the first partition of a Fetch v12 request body (after its header)."""
    p = 4 * 4 + 1 + 4 * 2  # replica, max wait, min bytes, max bytes, isolation, session, epoch
    p += 1  # topics: one (uvarint 2)
    n = body[p] - 1  # topic name length (a short name: one uvarint byte)
    p += 1 + n + 1 + 4 + 4  # name, partitions count, partition, current leader epoch
    return struct.unpack(">q", body[p:p + 8])[0]


class FakeBroker:
    """Serves partition `partition` of topic "t" from `log` (batches); `mode` changes one
    answer. Metadata names the leaders of partitions 0.. on `ports` (default: this one)."""

    def __init__(self, log, mode="ok", partition=0):
        self.log, self.mode, self.partition = log, mode, partition
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.ports = [self.port]
        self.fetches = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(conn,), daemon=True).start()

    def conn(self, s):
        with s:
            while True:
                raw = kwire.read_frame(s)  # with its size prefix; b"" when closed
                if not raw:
                    return
                frame = raw[4:]
                api, _, corr = struct.unpack(">hhi", frame[:8])
                n = struct.unpack(">h", frame[8:10])[0]
                body = frame[10 + max(n, 0) + 1:]  # client id, then no tagged fields
                if api == 3:
                    self.send(s, corr, metadata_v12(self.ports))
                    continue
                self.fetches += 1
                if not self.fetch(s, corr, fetch_offset(body)):
                    return

    def send(self, s, corr, body, size=None):
        data = struct.pack(">i", corr) + b"\0" + body
        s.sendall(struct.pack(">i", len(data) if size is None else size) + data)

    def fetch(self, s, corr, offset):
        hw = sum(struct.unpack(">i", b[23:27])[0] + 1 for b in self.log)
        rest = b"".join(b for b in self.log if struct.unpack(">q", b[:8])[0] >= offset)
        if self.mode == "close":
            return False
        if self.mode == "huge":
            self.send(s, corr, b"", size=0x7FFFFFF0)
            return False
        if self.mode == "garbage":
            self.send(s, corr, b"\xff" * 40)
            return True
        if self.mode == "error":
            self.send(s, corr, fetch_v12(b"", hw, error=6, partition=self.partition))
            return True
        if self.mode == "cut":  # whole batches up to 250 bytes, then part of the next
            whole, end = 0, 0
            for b in self.log:
                if struct.unpack(">q", b[:8])[0] >= offset:
                    if end + len(b) > 250 and end:
                        break
                    end += len(b)
                    whole += 1
            rest = rest[:end + 30] if end < len(rest) else rest
        self.send(s, corr, fetch_v12(rest, hw, partition=self.partition))
        return True

    def close(self):
        self.sock.close()


def fake_log():
    """5 batches of 3 records, then a control batch (one offset, no record): offsets 0-15."""
    log = [batch_at(3 * i, [b"v%03d-" % (3 * i + k) * 10 for k in range(3)]) for i in range(5)]
    return log + [batch_at(15, [b""], control=True)]


class FakeBrokerTest(unittest.TestCase):
    def run_fake(self, mode, log=None):
        f = FakeBroker(log or fake_log(), mode)
        try:
            return bench_fetch("127.0.0.1:%d" % f.port, "-t", "t") + (f,)
        finally:
            f.close()

    def test_cut_batches_are_fetched_again(self):
        rc, j, err, f = self.run_fake("cut")
        self.assertEqual(rc, 0, err)
        log = fake_log()
        self.assertEqual((j["records"], j["batches"], j["bytes"]), (15, 6, sum(map(len, log))))
        self.assertGreater(j["partial_batches"], 0)
        self.assertEqual(j["fetches"], f.fetches)
        self.assertGreater(f.fetches, 2)

    def test_whole_log_in_one_answer(self):
        rc, j, err, f = self.run_fake("ok")
        self.assertEqual(rc, 0, err)
        self.assertEqual((j["records"], j["batches"], j["partial_batches"], j["fetches"]),
                         (15, 6, 0, 1))

    def test_two_leaders(self):
        """Partitions 0 and 1 on two brokers: one connection (and thread) per leader."""
        a, b = FakeBroker(fake_log(), "cut", 0), FakeBroker(fake_log()[:3], "ok", 1)
        a.ports = b.ports = [a.port, b.port]
        try:
            rc, j, err = bench_fetch("127.0.0.1:%d" % b.port, "-t", "t")
        finally:
            a.close()
            b.close()
        self.assertEqual(rc, 0, err)
        self.assertEqual((j["partitions"], j["brokers"], j["records"], j["batches"]),
                         (2, 2, 15 + 9, 6 + 3))
        self.assertEqual(j["bytes"], sum(map(len, fake_log() + fake_log()[:3])))
        self.assertEqual((a.fetches, b.fetches, j["fetches"]), (6, 1, 7))

    def test_crc_mismatch(self):
        log = fake_log()
        bad = bytearray(log[2])
        bad[-3] ^= 1
        log[2] = bytes(bad)
        rc, j, err, _ = self.run_fake("ok", log)
        self.assertEqual(rc, 1)
        self.assertIn("CRC-32C mismatch in the batch at offset 6", err)

    def test_errors_end_the_run(self):
        for mode, said in (("error", "NOT_LEADER_OR_FOLLOWER"),
                           ("huge", "announced a 2147483632-byte response"),
                           ("garbage", "malformed Fetch response"),
                           ("close", "closed the connection")):
            rc, j, err, _ = self.run_fake(mode)
            self.assertEqual(rc, 1, mode)
            e = json.loads(err.strip().splitlines()[-1])  # --format json: errors are JSON too
            self.assertIn(said, e["error"], mode)
            self.assertEqual(e["exit_code"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
