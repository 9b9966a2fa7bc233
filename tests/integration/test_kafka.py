#!/usr/bin/python3
"""Kafka API integration tests: unmodified clients (kcat, confluent-kafka,
kafka-python) against a real stratad over TCP, plus hostile raw frames."""
import os
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from kwire import (Conn, delete_records_v1, frame, parse_delete_records_v1,  # noqa: E402
                   parse_produce_v3, produce_v3)

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic  # noqa: E402


def kcat(*args, input=None, timeout=60):
    p = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def consume_all(bootstrap, topic, partitions, expect, timeout=60, **conf):
    """Read `expect` records from the start of the given partitions (no group)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-nogroup",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **conf})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise AssertionError("consume error: %s" % m.error())
        out.append(m)
    c.close()
    return out


class KafkaApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker()

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        assert rc == 0, out

    # ---- kcat (librdkafka) ----

    def test_kcat_produce_consume_keys_headers_and_offsets(self):
        bs = self.b.bootstrap
        lines = "".join("k%d:v%d\n" % (i, i) for i in range(100))
        rc, _, err = kcat("-b", bs, "-P", "-t", "kc1", "-K", ":", "-H", "h1=x", "-H", "h2=yy",
                          input=lines)
        self.assertEqual(rc, 0, err)
        rc, out, err = kcat("-b", bs, "-C", "-t", "kc1", "-o", "beginning", "-e",
                            "-f", "%k|%s|%o|%h\n")
        self.assertEqual(rc, 0, err)
        rows = out.splitlines()
        self.assertEqual(len(rows), 100)
        for i, row in enumerate(rows):
            self.assertEqual(row, "k%d|v%d|%d|h1=x,h2=yy" % (i, i, i))
        # From an offset.
        rc, out, err = kcat("-b", bs, "-C", "-t", "kc1", "-o", "90", "-e", "-f", "%s\n")
        self.assertEqual(out.splitlines(), ["v%d" % i for i in range(90, 100)])
        rc, out, err = kcat("-b", bs, "-L", "-t", "kc1")
        self.assertIn('topic "kc1" with 1 partitions', out)

    def test_kcat_every_compression_codec(self):
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            topic = "codec-" + codec
            lines = "".join("%s-%d-%s\n" % (codec, i, "x" * (i % 50)) for i in range(200))
            rc, _, err = kcat("-b", self.b.bootstrap, "-P", "-t", topic, "-z", codec,
                              input=lines)
            self.assertEqual(rc, 0, err)
            rc, out, err = kcat("-b", self.b.bootstrap, "-C", "-t", topic, "-o", "beginning",
                                "-e", "-f", "%s\n")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, lines, codec)

    def test_offsets_for_times_inside_compressed_batches(self):
        # Kafka answers with the exact record, even inside a compressed batch.
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            topic = "tscodec-" + codec
            p = Producer({"bootstrap.servers": self.b.bootstrap, "compression.type": codec,
                          "linger.ms": 200, "batch.num.messages": 1000})
            for i in range(100):
                p.produce(topic, b"v%d" % i * 10, partition=0, timestamp=1600000000000 + 10 * i)
            self.assertEqual(p.flush(60), 0)
            c = Consumer({"bootstrap.servers": self.b.bootstrap, "group.id": "x"})
            for want in (0, 1, 57, 99):
                got = c.offsets_for_times([TopicPartition(topic, 0, 1600000000000 + 10 * want)],
                                          30)
                self.assertEqual(got[0].offset, want, (codec, want))
                got = c.offsets_for_times(
                    [TopicPartition(topic, 0, 1600000000000 + 10 * want - 5)], 30)
                self.assertEqual(got[0].offset, want, (codec, want, "between"))
            c.close()

    # ---- confluent-kafka ----

    def test_admin_create_describe_partitions_delete(self):
        a = AdminClient({"bootstrap.servers": self.b.bootstrap})
        fs = a.create_topics([NewTopic("adm1", 3, 1)])
        fs["adm1"].result(30)
        md = a.list_topics("adm1", timeout=30)
        self.assertEqual(len(md.topics["adm1"].partitions), 3)
        # Already exists.
        fs = a.create_topics([NewTopic("adm1", 3, 1)])
        with self.assertRaises(confluent_kafka.KafkaException) as cm:
            fs["adm1"].result(30)
        self.assertEqual(cm.exception.args[0].code(),
                         confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS)
        # Bad names and replication factors are refused with a reason.
        fs = a.create_topics([NewTopic("bad/name", 1, 1), NewTopic("rf3", 1, 3)])
        for t, code in (("bad/name", confluent_kafka.KafkaError.TOPIC_EXCEPTION),
                        ("rf3", confluent_kafka.KafkaError.INVALID_REPLICATION_FACTOR)):
            with self.assertRaises(confluent_kafka.KafkaException) as cm:
                fs[t].result(30)
            self.assertEqual(cm.exception.args[0].code(), code, t)
        # validate_only creates nothing.
        a.create_topics([NewTopic("adm-validate", 1, 1)], validate_only=True)["adm-validate"] \
            .result(30)
        self.assertNotIn("adm-validate", a.list_topics(timeout=30).topics)
        fs = a.delete_topics(["adm1"])
        fs["adm1"].result(30)
        deadline = time.monotonic() + 30
        while "adm1" in a.list_topics(timeout=30).topics and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertNotIn("adm1", a.list_topics(timeout=30).topics)
        with self.assertRaises(confluent_kafka.KafkaException):
            a.delete_topics(["adm1"])["adm1"].result(30)

    def test_produce_acks_all_consume_every_field(self):
        a = AdminClient({"bootstrap.servers": self.b.bootstrap})
        a.create_topics([NewTopic("ck1", 4, 1)])["ck1"].result(30)
        p = Producer({"bootstrap.servers": self.b.bootstrap, "acks": "all",
                      "linger.ms": 5, "enable.idempotence": False})
        errors = []
        sent = {}
        for i in range(2000):
            key = b"key-%d" % i
            val = os.urandom(10 + i % 300)
            hdrs = [("n", str(i).encode()), ("h", b"\x00\xff")]
            ts = 1700000000000 + i
            part = i % 4
            sent[key] = (val, hdrs, ts, part)
            p.produce("ck1", val, key, partition=part, headers=hdrs, timestamp=ts,
                      on_delivery=lambda e, m: errors.append(e) if e else None)
        self.assertEqual(p.flush(60), 0)
        self.assertEqual(errors, [])
        msgs = consume_all(self.b.bootstrap, "ck1", range(4), 2000)
        self.assertEqual(len(msgs), 2000)
        last = {}
        for m in msgs:
            val, hdrs, ts, part = sent[m.key()]
            self.assertEqual(m.value(), val)
            self.assertEqual(m.headers(), hdrs)
            self.assertEqual(m.timestamp(), (confluent_kafka.TIMESTAMP_CREATE_TIME, ts))
            self.assertEqual(m.partition(), part)
            self.assertGreater(m.offset(), last.get(part, -1))
            last[m.partition()] = m.offset()
        # offsets_for_times: the first record at or after a timestamp.
        c = Consumer({"bootstrap.servers": self.b.bootstrap, "group.id": "x"})
        got = c.offsets_for_times([TopicPartition("ck1", 1, 1700000000000 + 1001)], 30)
        self.assertEqual(got[0].offset, 250)  # record 1001 is partition 1's 251st
        got = c.offsets_for_times([TopicPartition("ck1", 1, 1800000000000)], 30)
        self.assertEqual(got[0].offset, -1)
        lo, hi = c.get_watermark_offsets(TopicPartition("ck1", 2), 30)
        self.assertEqual((lo, hi), (0, 500))
        c.close()

    def test_restart_between_produce_and_consume(self):
        b = Broker()
        try:
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
            for i in range(500):
                p.produce("restart1", b"v%d" % i, b"k%d" % i)
            self.assertEqual(p.flush(60), 0)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            msgs = consume_all(b.bootstrap, "restart1", [0], 500)
            self.assertEqual([m.value() for m in msgs], [b"v%d" % i for i in range(500)])
            # And after kill -9: acked data and the topic survive.
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
            for i in range(500, 600):
                p.produce("restart1", b"v%d" % i, b"k%d" % i)
                self.assertEqual(p.flush(60), 0)  # acknowledged one by one
            b.kill9()
            b.start()
            msgs = consume_all(b.bootstrap, "restart1", [0], 600)
            self.assertEqual([m.value() for m in msgs], [b"v%d" % i for i in range(600)])
        finally:
            b.close()

    def test_sigterm_with_busy_clients_loses_no_acked_record(self):
        b = Broker()
        try:
            follower = subprocess.Popen(["kcat", "-b", b.bootstrap, "-C", "-t", "busy",
                                         "-o", "beginning", "-q"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # long-polls throughout
            acked = []
            p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1,
                          "message.timeout.ms": 5000, "retries": 0})
            signalled = False
            for i in range(200000):
                p.produce("busy", b"v%d" % i, b"k%d" % i,
                          on_delivery=lambda e, m: acked.append(m.value()) if not e else None)
                p.poll(0)
                if not signalled and len(acked) >= 1000:
                    b.proc.send_signal(15)  # SIGTERM while records are in flight
                    signalled = True
                if signalled and b.proc.poll() is not None:
                    break
                if len(p) > 50000:
                    p.poll(0.05)  # let acks arrive before queueing more
            self.assertTrue(signalled)
            p.flush(30)
            rc, out = b.wait_exit()
            self.assertEqual(rc, 0, out)
            self.assertIn("stopped cleanly", out)
            follower.kill()
            follower.wait()
            self.assertGreater(len(acked), 0)
            b.start()
            msgs = consume_all(b.bootstrap, "busy", [0], len(acked))
            got = set(m.value() for m in msgs)
            self.assertEqual([v for v in acked if v not in got], [])
        finally:
            b.close()

    def test_idempotent_producer_is_accepted(self):
        p = Producer({"bootstrap.servers": self.b.bootstrap, "enable.idempotence": True})
        for i in range(100):
            p.produce("idem1", b"v%d" % i)
        self.assertEqual(p.flush(60), 0)
        msgs = consume_all(self.b.bootstrap, "idem1", [0], 100)
        self.assertEqual([m.value() for m in msgs], [b"v%d" % i for i in range(100)])

    def test_delete_records_moves_log_start_and_survives_restart(self):
        b = Broker("-X", "log.segment.bytes=2000")
        try:
            lines = "".join("rec-%03d-%s\n" % (i, "x" * 100) for i in range(100))
            rc, _, err = kcat("-b", b.bootstrap, "-P", "-t", "dr1", "-X", "batch.num.messages=5",
                              input=lines)
            self.assertEqual(rc, 0, err)
            c = Conn(b.port)
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("dr1", 0, 42))),
                             (42, 0))
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("dr1", 0, 500))),
                             (-1, 1))  # beyond the high watermark: OFFSET_OUT_OF_RANGE
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("nope", 0, 1))),
                             (-1, 3))
            c.close()
            rc, out, err = kcat("-b", b.bootstrap, "-C", "-t", "dr1", "-o", "beginning", "-e",
                                "-f", "%o %s\n")
            rows = out.splitlines()
            self.assertEqual(rows[0], "42 rec-042-" + "x" * 100)
            self.assertEqual(len(rows), 58)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
            b.start()
            rc, out, err = kcat("-b", b.bootstrap, "-Q", "-t", "dr1:0:-2")
            self.assertIn("offset 42", out)
            # -1 deletes up to the high watermark.
            c = Conn(b.port)
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("dr1", 0, -1))),
                             (100, 0))
            c.close()
        finally:
            b.close()

    # ---- kafka-python (its own codec, older API versions) ----

    def test_kafka_python_produce_consume(self):
        import kafka
        p = kafka.KafkaProducer(bootstrap_servers=self.b.bootstrap, acks="all")
        for i in range(200):
            p.send("kp1", key=b"k%d" % i, value=b"value-%d" % i)
        p.flush(60)
        p.close()
        c = kafka.KafkaConsumer("kp1", bootstrap_servers=self.b.bootstrap,
                                auto_offset_reset="earliest", consumer_timeout_ms=10000,
                                group_id=None)
        got = [(m.key, m.value) for m in c]
        c.close()
        self.assertEqual(got, [(b"k%d" % i, b"value-%d" % i) for i in range(200)])

    # ---- Hostile input ----

    def raw(self, payload, read=True):
        s = socket.create_connection(("127.0.0.1", self.b.port), timeout=10)
        s.sendall(payload)
        data = b""
        if read:
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) >= 4 and len(data) >= 4 + struct.unpack(">i", data[:4])[0]:
                        break
            except socket.timeout:
                data = None
        s.close()
        return data

    def test_malformed_frames_close_the_connection_others_keep_working(self):
        cases = {
            "oversized length": struct.pack(">i", 200 * 1024 * 1024) + b"x" * 16,
            "negative length": struct.pack(">i", -5) + b"x" * 16,
            "tiny frame": struct.pack(">i", 3) + b"abc",
            "unknown api key": frame(9999, 0, 1),
            "unsupported version": frame(3, 99, 1),
            "garbage body": frame(3, 9, 1, b"\xff" * 7),
            "truncated metadata": frame(3, 1, 1, b"\x00\x00\x00\x05\x00"),
        }
        for name, payload in cases.items():
            self.assertEqual(self.raw(payload), b"", name)  # closed without an answer
        # ApiVersions with an unknown version: v0-format answer with error 35 (the
        # request header is still v2, with its empty tagged-field section).
        data = self.raw(frame(18, 99, 7, b"\x00"))
        size, corr, err = struct.unpack(">iih", data[:10])
        self.assertEqual((corr, err), (7, 35))
        # A truncated frame (fewer bytes than announced) waits, and a good client works.
        s = socket.create_connection(("127.0.0.1", self.b.port), timeout=10)
        s.sendall(struct.pack(">i", 100) + b"\x00\x03")
        rc, out, err = kcat("-b", self.b.bootstrap, "-L")
        self.assertEqual(rc, 0, err)
        s.close()

    def test_corrupt_batch_rejected_nothing_written(self):
        # A valid produce first, to learn the end offset.
        rc, _, err = kcat("-b", self.b.bootstrap, "-P", "-t", "corrupt1", input="a\nb\n")
        self.assertEqual(rc, 0, err)
        # Produce v3 with a batch whose CRC is wrong.
        batch = bytearray(61 + 10)
        struct.pack_into(">qiibIhiqqqhii", batch, 0, 0, len(batch) - 12, 0, 2, 0xdeadbeef, 0, 0,
                         0, 0, -1, -1, -1, 1)
        data = self.raw(produce_v3("corrupt1", 0, bytes(batch), corr=11))
        self.assertEqual(parse_produce_v3(data), (2, -1))  # CORRUPT_MESSAGE
        rc, out, err = kcat("-b", self.b.bootstrap, "-C", "-t", "corrupt1", "-o", "beginning",
                            "-e", "-f", "%s@%o\n")
        self.assertEqual(out, "a@0\nb@1\n")


class GroupJoinTest(unittest.TestCase):
    def test_join_does_not_wait_for_the_session_timeout(self):
        # A group forms once its members rejoined after MEMBER_ID_REQUIRED; it
        # must not wait for the (here: 5 minute) session timeout to expire.
        b = Broker("-X", "group.initial.rebalance.delay.ms=1000")
        try:
            p = Producer({"bootstrap.servers": b.bootstrap})
            p.produce("gj", b"hello")
            self.assertEqual(p.flush(30), 0)
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "gj",
                          "auto.offset.reset": "earliest", "session.timeout.ms": 300000})
            c.subscribe(["gj"])
            m = None
            deadline = time.monotonic() + 30  # an upper bound: joins took 45-60 s before
            while m is None and time.monotonic() < deadline:
                m = c.poll(0.5)
            c.close()
            self.assertIsNotNone(m)
            self.assertEqual(m.value(), b"hello")
        finally:
            b.close()


class ConnectionLimitsTest(unittest.TestCase):
    def test_request_size_limit_and_idle_connections(self):
        b = Broker("-X", "socket.request.max.bytes=1000", "-X", "connections.max.idle.ms=300")
        try:
            # A frame over socket.request.max.bytes closes the connection at once.
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            s.sendall(struct.pack(">i", 1001) + b"\x00" * 1001)
            self.assertEqual(s.recv(100), b"")
            s.close()
            # An idle connection is closed after connections.max.idle.ms; the
            # wait below is only an upper bound.
            s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
            self.assertEqual(s.recv(100), b"")
            s.close()
            # A client within the limits works.
            c = Conn(b.port)
            data = c.call(frame(18, 0, 5))
            self.assertEqual(struct.unpack(">ih", data[4:10]), (5, 0))
            c.close()
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
