#!/usr/bin/python3
"""The log cleaner seen from outside (issue 19): its Prometheus metrics, and a
small compacted changelog with remote storage cleaned within its lag bounds.

- Metrics: after a pass over a compacted topic, GET /metrics has the broker's
  cleaner counters (passes, bytes read and written, records removed, no
  failure) agreeing with /v1/storage, and per compacted partition its dirty
  ratio and the time of its last pass; a topic with cleanup.policy=delete has
  neither. The exposition passes promtool. After more writes kept under
  min.cleanable.dirty.ratio, the ratio gauge equals the dirty share of the
  sealed segment files' bytes on disk.
- A compacted topic with remote.storage.enable and a small, steady write rate
  (default segment.bytes and segment.ms: its active segment would never fill
  nor age out) is cleaned anyway: its active segment rolls once
  max.compaction.lag.ms passes (as Kafka's LogConfig.maxSegmentMs), is
  uploaded, then cleaned; once writes stop every offset gets cleaned and a
  replay from 0 reads exactly one record per key, the latest."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from test_admin import check_format, http, metric, parse_metrics, wait_until  # noqa: E402
from test_compact import alter, read_confluent  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

CLEANER = ["-X", "log.cleaner.backoff.ms=200", "-X", "log.retention.check.interval.ms=200"]


def create(b, topic, cfg):
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=cfg)])[topic].result(30)


def produce(b, topic, items, pause=0.0):
    """items: [(key, value)], acks=all; with pause, one at a time, each acknowledged."""
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    errs = []
    for k, v in items:
        p.produce(topic, key=k.encode(), value=v.encode(),
                  on_delivery=lambda e, m: e and errs.append(e))
        if pause:
            assert p.flush(30) == 0
            time.sleep(pause)
        else:
            p.poll(0)
    assert p.flush(60) == 0
    assert not errs, errs
    return len(items)


def dirty_ratio_on_disk(b, topic, clean_end, end):
    """Dirty bytes / bytes of the sealed segments of partition 0 once every
    offset below end is sealed (None before): a segment is dirty when it ends
    above clean_end."""
    d = os.path.join(b.data, "%s-0" % topic)
    segs = sorted((int(f[:-4]), os.path.getsize(os.path.join(d, f)))
                  for f in os.listdir(d) if f.endswith(".log"))
    if segs[-1][0] < end:
        return None
    total = dirty = 0
    for (base, size), (nxt, _) in zip(segs, segs[1:]):
        total += size
        dirty += size if nxt > (clean_end or 0) else 0
    return dirty / total if total else 0.0


def compaction(b, topic):
    """The cleaner's figures of partition 0 from GET /v1/storage/topics/TOPIC."""
    st, _, doc = http(b.admin_port, "GET", "/v1/storage/topics/%s" % topic)
    assert st == 200, doc
    return doc["partitions"][0]["compaction"]


def scrape(b):
    st, _, text = http(b.admin_port, "GET", "/metrics")
    assert st == 200, text
    return text


class CleanerMetricsTest(unittest.TestCase):
    def test_metrics_after_a_pass(self):
        b = Broker(*CLEANER)
        try:
            t0 = time.time()
            create(b, "lcm", {"cleanup.policy": "compact", "segment.bytes": "16384",
                              "segment.ms": "800", "min.cleanable.dirty.ratio": "0"})
            create(b, "plain", {"cleanup.policy": "delete", "segment.bytes": "16384"})
            n = 0
            for rnd in range(6):
                n += produce(b, "lcm", [("k%d" % k, "r%d-%d-%s" % (rnd, k, "x" * 60))
                                        for k in range(100)])
            produce(b, "plain", [("k", "v")] * 50)
            wait_until("a pass over every record written",
                       lambda: (compaction(b, "lcm")["clean_end_offset"] or 0) >= n, timeout=90)
            before = compaction(b, "lcm")
            text = scrape(b)
            after = compaction(b, "lcm")
            ms = parse_metrics(text)
            check_format(self, text)
            passes = metric(ms, "strata_log_cleaner_passes_total")
            # Only lcm is compacted: the broker's counters are its figures.
            self.assertGreaterEqual(passes, 1)
            self.assertTrue(before["runs"] <= passes <= after["runs"], (before, passes, after))
            rd = metric(ms, "strata_log_cleaner_read_bytes_total")
            wr = metric(ms, "strata_log_cleaner_written_bytes_total")
            self.assertTrue(before["bytes_read"] <= rd <= after["bytes_read"], (before, rd))
            self.assertTrue(before["bytes_written"] <= wr <= after["bytes_written"], (before, wr))
            self.assertGreater(wr, 0)
            self.assertGreater(rd, wr)
            self.assertGreater(metric(ms, "strata_log_cleaner_removed_records_total"), 0)
            self.assertIn(("strata_log_cleaner_pass_failures_total", frozenset()), ms)
            self.assertEqual(metric(ms, "strata_log_cleaner_pass_failures_total"), 0)
            lab = frozenset({"topic": "lcm", "partition": "0"}.items())
            ratio = ms.get(("strata_log_cleaner_dirty_ratio", lab))
            self.assertIsNotNone(ratio, "no dirty ratio for the compacted partition")
            self.assertTrue(0 <= ratio <= 1, ratio)
            last = ms.get(("strata_log_cleaner_last_clean_timestamp_seconds", lab))
            self.assertIsNotNone(last, "no last clean time for the compacted partition")
            self.assertTrue(t0 - 1 <= last <= time.time() + 1, (t0, last))
            self.assertTrue(before["last_clean_ms"] - 1 <= last * 1000 <= after["last_clean_ms"] + 1,
                            (before, last, after))
            plain = frozenset({"topic": "plain", "partition": "0"}.items())
            self.assertNotIn(("strata_log_cleaner_dirty_ratio", plain), ms)
            self.assertNotIn(("strata_log_cleaner_last_clean_timestamp_seconds", plain), ms)
            # More writes, kept under a dirty ratio of 0.9: the gauge is the dirty
            # share of the sealed segments' bytes, as the files on disk say.
            alter(b, "lcm", **{"cleanup.policy": "compact", "segment.bytes": "16384",
                               "segment.ms": "800", "min.cleanable.dirty.ratio": "0.9"})
            n += produce(b, "lcm", [("k%d" % (k % 20), "again-%d" % k) for k in range(60)])

            def settled():
                want = dirty_ratio_on_disk(b, "lcm", compaction(b, "lcm")["clean_end_offset"], n)
                got = metric(parse_metrics(scrape(b)), "strata_log_cleaner_dirty_ratio",
                             topic="lcm", partition="0")
                return (want, got) if want is not None and abs(want - got) < 1e-9 else None
            want, got = wait_until("the dirty ratio of the files on disk", settled, timeout=90)
            self.assertTrue(0 < got < 0.9, got)
            print("log_cleaner metrics: passes=%d read=%d written=%d ratio=%.3f, then %.3f"
                  % (passes, rd, wr, ratio, got))
        finally:
            b.close()


class SmallChangelogTest(unittest.TestCase):
    LAG_MS = 1500
    KEYS = 10
    RECORDS = 150

    def test_small_changelog_with_remote_storage_is_cleaned(self):
        b = Broker(*CLEANER, "-X", "remote.log.storage.system.enable=true")
        try:
            topic = "lcs"
            # Default segment.bytes (1 GiB) and segment.ms (7 days): only the lag rolls.
            create(b, topic, {"cleanup.policy": "compact", "remote.storage.enable": "true",
                              "max.compaction.lag.ms": str(self.LAG_MS)})
            model = {}
            items = []
            for i in range(self.RECORDS):
                k = "k%d" % (i % self.KEYS)
                items.append((k, "v%d" % i))
                model[k] = "v%d" % i
            # A steady trickle: about RECORDS * 0.05 s, several lag periods.
            n = produce(b, topic, items, pause=0.05)
            mid = compaction(b, topic)
            # After the last write the idle active segment rolls too (the tick),
            # is uploaded, and cleaned: every offset written gets cleaned.
            c = wait_until("every offset cleaned",
                           lambda: (lambda c: c if (c["clean_end_offset"] or 0) >= n else None)(
                               compaction(b, topic)), timeout=90)
            self.assertGreaterEqual(c["runs"], 1, (mid, c))
            # Cleaned only once uploaded: the archive holds every offset written.
            st, _, doc = http(b.admin_port, "GET", "/v1/storage/topics/%s" % topic)
            self.assertGreaterEqual(doc["partitions"][0]["uploaded_offset"], n, doc)
            got = read_confluent(b, topic, n - 1)
            self.assertEqual(len(got), self.KEYS, got)
            self.assertEqual({k: v for _, k, v in got}, model)
            print("log_cleaner small changelog: %d records, %d keys, passes while writing %d, "
                  "in all %d" % (n, self.KEYS, mid["runs"], c["runs"]))
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
