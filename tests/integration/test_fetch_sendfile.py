#!/usr/bin/python3
"""Zero-copy Fetch against a real stratad: on a listener without TLS, records
found in segment files are sent with sendfile(2) from the segment descriptor
(strata_kafka_fetch_sendfile_bytes_total counts them); over TLS, or with
strata.fetch.sendfile.enable=false, they are read into memory (the counter
stays 0), and without TLS sent from that buffer, not copied into the response
(strata_kafka_fetch_memory_bytes_total). Checked with real clients and raw
Fetch frames:
- every client reads exactly what was produced, over PLAINTEXT and SSL;
- pages not in the page cache (dropped with posix_fadvise) are read in the
  thread pool (strata_kafka_fetch_cold_reads_total), with the same bytes;
- a reader that does not read (the socket is full: partial sendfile writes)
  gets the exact bytes even when the topic is deleted and created again with
  other data while its response is half sent (the request holds the segment);
- a client that closes mid-send leaves no descriptor behind;
- with no descriptor left to watch a full socket, the rest of a response is
  copied, exact, whether it began from a file range or from memory."""
import os
import socket
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402
import kwire  # noqa: E402
from test_admin import http, parse_metrics  # noqa: E402
from test_fetch_budget import create, fetch_v4, parse_fetch_v4  # noqa: E402
from test_tls import Certs  # noqa: E402

MB = 1 << 20
N_VALUES = 400
VALUE_SIZE = 10000


def metric(b, name):
    status, _, text = http(b.admin_port, "GET", "/metrics")
    assert status == 200, status
    return parse_metrics(text).get((name, frozenset()), 0.0)


SENT = "strata_kafka_fetch_sendfile_bytes_total"
MEM = "strata_kafka_fetch_memory_bytes_total"
COLD = "strata_kafka_fetch_cold_reads_total"


def values(tag):
    return [((b"%s-%05d-" % (tag.encode(), i)) * VALUE_SIZE)[:VALUE_SIZE] for i in range(N_VALUES)]


def produce(bootstrap, topic, vals, **conf):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "batch.size": 900000, "compression.type": "none", **conf})
    for v in vals:
        p.produce(topic, value=v)
    assert p.flush(60) == 0


def consume(bootstrap, topic, n, **conf):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-%s-%d" % (topic, free_port()),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.max.bytes": 4 * MB, **conf})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m.value())
    c.close()
    return got


def next_offset(records):
    """The offset after the last whole batch of a records blob."""
    pos, nxt = 0, None
    while pos + 61 <= len(records):
        base, blen = struct.unpack_from(">qi", records, pos)
        (delta,) = struct.unpack_from(">i", records, pos + 23)
        if pos + 12 + blen > len(records):
            break
        nxt, pos = base + delta + 1, pos + 12 + blen
    return nxt


def fetch_all(port, topic, max_bytes=64 * MB):
    """Records bytes of partition 0 from offset 0 to the high watermark, by raw
    Fetch v4 requests (one segment per response at most, as Kafka)."""
    c = kwire.Conn(port)
    out, offset = b"", 0
    try:
        c.s.settimeout(60)
        while True:
            resp = parse_fetch_v4(c.call(fetch_v4([(topic, [(0, offset, max_bytes)])])))
            (_, [(_, err, hw, rec)]), = resp
            assert err == 0, err
            out += rec
            offset = next_offset(rec) if rec else offset
            if not rec or offset >= hw:
                return out
    finally:
        c.close()


def drop_page_cache(data_dir, topic):
    d = os.path.join(data_dir, "%s-0" % topic)
    n = 0
    for name in os.listdir(d):
        if name.endswith(".log"):
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            n += 1
    assert n > 0, os.listdir(d)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_until(cond, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


class SendfileTest(unittest.TestCase):
    """One broker with a PLAINTEXT and an SSL listener."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="strata-sf-")
        cls.certs = c = Certs(cls.tmp.name)
        cls.p_plain, cls.p_ssl = free_port(), free_port()
        cls.b = Broker(
            "--listeners", "PLAINTEXT://127.0.0.1:%d,SSL://127.0.0.1:%d"
            % (cls.p_plain, cls.p_ssl),
            "-X", "ssl.keystore.location=" + c.path("server", "full"),
            port=cls.p_plain)
        cls.ssl = {"security.protocol": "SSL", "ssl.ca.location": c.path("ca")}
        cls.ssl_bs = "127.0.0.1:%d" % cls.p_ssl

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.close()  # fails on a bad exit or a sanitizer report
        finally:
            cls.tmp.cleanup()

    def test_plaintext_consume_is_sent_from_the_segment_files(self):
        vals = values("plain")
        create(self.b, "plain", 1)
        produce(self.b.bootstrap, "plain", vals)
        before = metric(self.b, SENT)
        self.assertEqual(consume(self.b.bootstrap, "plain", len(vals)), vals)
        sent = metric(self.b, SENT) - before
        self.assertGreaterEqual(sent, N_VALUES * VALUE_SIZE)  # every record, no copy
        # kafka-python (older Fetch versions, non-flexible encoding) too.
        import kafka
        before = metric(self.b, SENT)
        c = kafka.KafkaConsumer("plain", bootstrap_servers=self.b.bootstrap,
                                auto_offset_reset="earliest", consumer_timeout_ms=10000,
                                group_id=None)
        got = [m.value for m in c]
        c.close()
        self.assertEqual(got, vals)
        self.assertGreater(metric(self.b, SENT) - before, 0)

    def test_tls_consume_copies_and_sends_nothing_by_sendfile(self):
        vals = values("tls")
        create(self.b, "tls", 1)
        produce(self.ssl_bs, "tls", vals, **self.ssl)
        before, before_mem = metric(self.b, SENT), metric(self.b, MEM)
        self.assertEqual(consume(self.ssl_bs, "tls", len(vals), **self.ssl), vals)
        self.assertEqual(metric(self.b, SENT) - before, 0)
        self.assertEqual(metric(self.b, MEM) - before_mem, 0)  # encrypted from memory instead

    def test_cold_pages_are_read_in_the_thread_pool(self):
        vals = values("cold")
        create(self.b, "cold", 1)
        produce(self.b.bootstrap, "cold", vals)
        ref = fetch_all(self.p_plain, "cold")
        self.assertGreater(len(ref), N_VALUES * VALUE_SIZE)
        for listener in ("plain", "ssl"):
            drop_page_cache(self.b.data, "cold")
            before = metric(self.b, COLD)
            if listener == "plain":
                self.assertEqual(fetch_all(self.p_plain, "cold"), ref)
            else:
                self.assertEqual(consume(self.ssl_bs, "cold", len(vals), **self.ssl), vals)
            self.assertGreater(metric(self.b, COLD) - before, 0, listener)

    def slow_fetch(self, topic):
        """A connection with a tiny receive buffer that sent a Fetch of the
        whole partition and reads nothing: the broker's sendfile stops on a
        full socket (EAGAIN) with most of the response unsent."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(60)
        s.connect(("127.0.0.1", self.p_plain))
        before = metric(self.b, SENT)
        s.sendall(fetch_v4([(topic, [(0, 0, 64 * MB)])]))
        wait_until(lambda: metric(self.b, SENT) > before, "the response to start")
        return s

    def test_topic_deleted_and_recreated_while_a_response_is_half_sent(self):
        from confluent_kafka.admin import AdminClient
        vals = values("del")
        create(self.b, "del", 1)
        produce(self.b.bootstrap, "del", vals)
        ref = fetch_all(self.p_plain, "del")
        s = self.slow_fetch("del")
        a = AdminClient({"bootstrap.servers": self.b.bootstrap})
        a.delete_topics(["del"])["del"].result(30)
        wait_until(lambda: not os.path.exists(os.path.join(self.b.data, "del-0")),
                   "the partition directory to go")
        # The same name again, other bytes: freed blocks and descriptors are reused.
        create(self.b, "del", 1)
        other = values("new")
        produce(self.b.bootstrap, "del", other)
        data = kwire.read_frame(s)
        s.close()
        (_, [(_, err, _hw, rec)]), = parse_fetch_v4(data)
        self.assertEqual(err, 0)
        self.assertEqual(rec, ref)
        self.assertEqual(consume(self.b.bootstrap, "del", len(other)), other)

    def test_client_closing_mid_send_leaves_no_descriptor(self):
        vals = values("close")
        create(self.b, "close", 1)
        produce(self.b.bootstrap, "close", vals)
        fetch_all(self.p_plain, "close")  # the segment's descriptors are open already
        base = fd_count(self.b.proc.pid)
        for _ in range(3):
            s = self.slow_fetch("close")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # reset mid-send
        wait_until(lambda: fd_count(self.b.proc.pid) <= base, "descriptors to be released")
        self.assertEqual(fetch_all(self.p_plain, "close"), fetch_all(self.p_plain, "close"))



class OutOfDescriptorsTest(unittest.TestCase):
    def test_out_of_descriptors_the_rest_is_copied(self):
        """A full socket is watched through a dup of it: when no descriptor is
        left for that (the open file limit lowered below what is open), the
        rest of the response goes out as a copy, whole and exact."""
        self.check(SENT)

    def test_out_of_descriptors_the_rest_is_copied_from_memory(self):
        """The same with the records read into memory (sendfile off): the
        response began from their buffer, its rest is copied from there."""
        self.check(MEM, "-X", "strata.fetch.sendfile.enable=false")

    def check(self, counter, *args):
        import resource
        b = Broker(*args)
        try:
            vals = values("nofd")
            create(b, "nofd", 1)
            produce(b.bootstrap, "nofd", vals)
            ref = fetch_all(b.port, "nofd")
            pid = b.proc.pid
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(60)
            s.connect(("127.0.0.1", b.port))
            s.sendall(kwire.frame(18, 0, 1))  # ApiVersions: the broker has accepted it
            self.assertTrue(kwire.read_frame(s))
            old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            before = metric(b, counter)
            try:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, old[1]))
                s.sendall(fetch_v4([("nofd", [(0, 0, 64 * MB)])]))
                data = kwire.read_frame(s)
            finally:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
                s.close()
            (_, [(_, err, _hw, rec)]), = parse_fetch_v4(data)
            self.assertEqual(err, 0)
            self.assertGreater(len(rec), 1 * MB)
            self.assertEqual(rec, ref[:len(rec)])
            self.assertGreater(metric(b, counter) - before, 0)  # it began without a copy
        finally:
            b.close()


class SendfileOffTest(unittest.TestCase):
    def test_disabled_by_config(self):
        b = Broker("-X", "strata.fetch.sendfile.enable=false")
        try:
            vals = values("off")
            create(b, "off", 1)
            produce(b.bootstrap, "off", vals)
            self.assertEqual(consume(b.bootstrap, "off", len(vals)), vals)
            self.assertEqual(metric(b, SENT), 0)
            # Sent from the read buffers, not copied into the responses.
            self.assertGreaterEqual(metric(b, MEM), N_VALUES * VALUE_SIZE)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
