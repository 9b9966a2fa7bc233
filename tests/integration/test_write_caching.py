#!/usr/bin/python3
"""write.caching (Redpanda's meaning) against a real stratad with confluent-kafka:
acks=all is acknowledged from the page cache and the high watermark follows the
written end; without it every acknowledged byte is synced; flush.ms / flush.bytes
bound the unsynced window (strata_log_unflushed_bytes in /metrics); turning it off
or a clean stop syncs; kill -9 loses nothing (the page cache survives)."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from test_admin import http, parse_metrics  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402

HOUR_MS = "3600000"


def gauge(b, name, topic):
    ms = parse_metrics(http(b.admin_port, "GET", "/metrics", timeout=30)[2])
    return ms.get((name, frozenset({("topic", topic), ("partition", "0")})))


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def produce(b, topic, n, size=8):
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    errs = []
    for i in range(n):
        p.produce(topic, value=(b"v%05d" % i).ljust(size, b"."), partition=0,
                  on_delivery=lambda err, msg: errs.append(err) if err else None)
    assert p.flush(60) == 0, "undelivered records"
    assert not errs, errs


def consume_all(b, topic, n):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "wc-" + topic,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


class WriteCachingTest(unittest.TestCase):
    def test_acks_from_page_cache_and_high_watermark(self):
        b = Broker()
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            fs = a.create_topics([
                NewTopic("wc", 1, 1, config={"write.caching": "true", "flush.ms": HOUR_MS,
                                             "flush.bytes": "1073741824"}),
                NewTopic("nc", 1, 1)])
            for f in fs.values():
                f.result(30)
            # flush.ms is an hour and flush.bytes a GiB: only the page cache can
            # have answered these acks=all produces.
            produce(b, "wc", 200)
            produce(b, "nc", 200)
            self.assertGreater(gauge(b, "strata_log_unflushed_bytes", "wc"), 0)
            self.assertEqual(gauge(b, "strata_log_unflushed_bytes", "nc"), 0)
            # The high watermark is the written end: consumers read it all.
            self.assertEqual(gauge(b, "strata_log_high_watermark", "wc"), 200)
            self.assertEqual(gauge(b, "strata_log_high_watermark", "nc"), 200)
            self.assertEqual(len(consume_all(b, "wc", 200)), 200)
            # Turning write caching off syncs what waits.
            r = ConfigResource("topic", "wc", set_config={"write.caching": "false"})
            a.alter_configs([r])[r].result(30)
            wait_until(lambda: gauge(b, "strata_log_unflushed_bytes", "wc") == 0, 30,
                       "the sync after write.caching=false")
            self.assertEqual(gauge(b, "strata_log_high_watermark", "wc"), 200)
        finally:
            b.close()

    def test_flush_bytes_bounds_the_window(self):
        b = Broker()
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("fb", 1, 1, config={
                "write.caching": "true", "flush.ms": HOUR_MS, "flush.bytes": "4096"})]
            )["fb"].result(30)
            produce(b, "fb", 500, 100)  # ~ 55 KiB of batches: flush.bytes syncs as they come
            self.assertGreater(gauge(b, "strata_log_size_bytes", "fb"), 3 * 4096)
            # A sync may still be running; once done, less than flush.bytes waits
            # (flush.ms is an hour: nothing else syncs).
            wait_until(lambda: gauge(b, "strata_log_unflushed_bytes", "fb") < 4096, 30,
                       "flush.bytes to bound the unsynced bytes")
        finally:
            b.close()

    def test_broker_default_and_kill9(self):
        b = Broker("-X", "strata.write.caching.default=true", "-X",
                   "log.flush.interval.ms=" + HOUR_MS)
        try:
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic("bd", 1, 1)])["bd"].result(30)
            produce(b, "bd", 100)
            self.assertGreater(gauge(b, "strata_log_unflushed_bytes", "bd"), 0)
            b.stop(signal.SIGKILL)  # the page cache survives a killed process
            b.start()
            self.assertEqual(len(consume_all(b, "bd", 100)), 100)
            # Recovery synced the log before serving it.
            self.assertEqual(gauge(b, "strata_log_unflushed_bytes", "bd"), 0)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main()
