#!/usr/bin/python3
"""Tiered storage, the loss window (issue 15): the active segment's durable
records are uploaded once the oldest is strata.archive.max.upload.interval.ms
old, before the segment rolls, so a broker whose whole data directory is lost
gets back from the bucket every record older than the interval (file:// and
a real S3 server); later ranges of the same segment, its roll, local
retention and `strata archive verify` stay consistent; `storage status`
shows the unarchived window. And the reconcile at start: a local log that
lost records already in the archive continues after the archive's end."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, STRATAD, free_port  # noqa: E402
from test_tiering import (consume_from, index_rows, produce_values, s3_env,  # noqa: E402
                          start_s3, stop_s3, wait_until)

STRATA = os.path.join(os.path.dirname(STRATAD), "strata")
INTERVAL = ["-X", "strata.archive.max.upload.interval.ms=1000"]


def storage(b, topic):
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/storage/topics/%s"
                                % (b.admin_port, topic), timeout=30) as r:
        return json.load(r)


def indexed_through(b, topic, last):
    rows = index_rows(b, topic)
    return rows if rows and rows[-1][1] >= last else None


def stop_clean(test, b):
    """SIGTERM: a clean exit, and no upload failed (an overlap would retry forever)."""
    rc, out = b.stop()
    test.assertEqual(rc, 0, out)
    test.assertIsNone(re.search(r"upload .* failed", out), out)


def assert_contiguous(test, rows, first=0):
    test.assertEqual(rows[0][0], first, rows)
    for prev, cur in zip(rows, rows[1:]):
        test.assertEqual(cur[0], prev[1] + 1, rows)


class WindowTest(unittest.TestCase):
    def run_window(self, url, env=None):
        from confluent_kafka.admin import AdminClient, NewTopic
        args = ["-X", "remote.log.storage.system.enable=true", "-X", "strata.archive.url=" + url,
                "-X", "log.segment.bytes=65536", "-X", "log.retention.check.interval.ms=200",
                *INTERVAL]
        b = Broker(*args, env=env)
        try:
            adm = AdminClient({"bootstrap.servers": b.bootstrap})
            adm.create_topics([NewTopic("win", 1, 1, config={"local.retention.bytes": "0"})])[
                "win"].result(30)
            # A: fits in the active segment; it is archived although it never rolls.
            a = produce_values(b, "win", 300)
            rows = wait_until(lambda: indexed_through(b, "win", 299), 60, "A archived")
            self.assertEqual(len(glob.glob(os.path.join(b.data, "win-0", "*.log"))), 1)
            assert_contiguous(self, rows)
            st = storage(b, "win")
            self.assertEqual(st["partitions"][0]["unarchived_offsets"], 0, st)
            self.assertEqual(st["partitions"][0]["unarchived_bytes"], 0, st)
            self.assertIsNone(st["partitions"][0]["unarchived_age_ms"], st)
            # B: more records into the same segment, then rolls: the next
            # ranges start where the last ended, the sealed rest goes too.
            b2 = produce_values(b, "win", 1200, 300)
            self.assertGreater(len(glob.glob(os.path.join(b.data, "win-0", "*.log"))), 1)
            rows = wait_until(lambda: indexed_through(b, "win", 1499), 60, "B archived")
            assert_contiguous(self, rows)
            self.assertGreater(len(rows), 2)
            # Local retention deletes the archived sealed segments, never the
            # active one; all reads back, the older part from the archive.
            wait_until(lambda: len(glob.glob(os.path.join(b.data, "win-0", "*.log"))) == 1, 60,
                       "local retention")
            got, lo, hi = consume_from(b.bootstrap, "win", 0, 1500)
            self.assertEqual([v for _, v in got], a + b2)
            # The whole disk is lost (kill -9, data directory deleted).
            b.kill9()
            shutil.rmtree(b.data)
            os.makedirs(b.data)
            b.start()
            b.wait_for(r"recovered from the archive: objects=%d partitions=1" % len(rows),
                       seen=True)
            wait_until(lambda: consume_from(b.bootstrap, "win", 0, 1)[1] == 0, 30, "log start")
            got, lo, hi = consume_from(b.bootstrap, "win", 0, 1500)
            self.assertEqual((lo, hi), (0, 1500))
            self.assertEqual([v for _, v in got], a + b2)
            # New records continue after them and are archived in turn.
            c = produce_values(b, "win", 50, 1500)
            got, _, hi = consume_from(b.bootstrap, "win", 1490, 60)
            self.assertEqual(hi, 1550)
            self.assertEqual([v for _, v in got], (a + b2)[1490:] + c)
            rows = wait_until(lambda: indexed_through(b, "win", 1549), 60, "C archived")
            assert_contiguous(self, rows)
            stop_clean(self, b)
        finally:
            b.close()

    def test_window_file(self):
        with tempfile.TemporaryDirectory(prefix="strata-arch-") as d:
            self.run_window("file://" + d)
            p = subprocess.run([STRATA, "archive", "verify", "--archive", "file://" + d],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("OK", p.stdout)

    def test_window_s3(self):
        d = tempfile.mkdtemp(prefix="strata-s3-")
        try:
            url = start_s3(free_port(), d)
            self.run_window("s3://strata/win-%d" % os.getpid(), env=s3_env(url))
        finally:
            stop_s3(d)
            shutil.rmtree(d, ignore_errors=True)

    def test_status_shows_the_window(self):
        # The default interval (10 min): records stay in the window.
        b = Broker("-X", "remote.log.storage.system.enable=true")
        try:
            produce_values(b, "st", 20)
            p = storage(b, "st")["partitions"][0]
            self.assertEqual(p["unarchived_offsets"], 20, p)
            self.assertGreater(p["unarchived_bytes"], 0, p)
            self.assertGreaterEqual(p["unarchived_age_ms"], 0, p)
            out = subprocess.run([STRATA, "--admin-url", "http://127.0.0.1:%d" % b.admin_port,
                                  "storage", "status", "st"], capture_output=True, text=True,
                                 timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("UNARCHIVED-BYTES", out.stdout)
        finally:
            b.close()


class ReconcileTest(unittest.TestCase):
    """A power cut after an upload: the archive holds offsets the local log
    lost. The archive wins: the log continues after it, nothing overlaps."""

    def test_local_log_behind_the_archive(self):
        with tempfile.TemporaryDirectory(prefix="strata-arch-") as d:
            b = Broker("-X", "remote.log.storage.system.enable=true",
                       "-X", "strata.archive.url=file://" + d, *INTERVAL)
            try:
                a = produce_values(b, "rc", 400)
                wait_until(lambda: indexed_through(b, "rc", 399), 60, "archived")
                rc, out = b.stop()
                self.assertEqual(rc, 0, out)
                # Behind the broker's back: the local log loses its tail.
                seg = sorted(glob.glob(os.path.join(b.data, "rc-0", "*.log")))[-1]
                os.truncate(seg, os.path.getsize(seg) // 3)
                for ext in ("index", "timeindex"):
                    os.truncate(seg[:-3] + ext, 0)
                b.start()
                b.wait_for(r"the archive wins; the local log continues at 400", seen=True)
                more = produce_values(b, "rc", 100, 400)
                got, lo, hi = consume_from(b.bootstrap, "rc", 0, 500)
                self.assertEqual((lo, hi), (0, 500))
                self.assertEqual([o for o, _ in got], list(range(500)))
                self.assertEqual([v for _, v in got], a + more)
                rows = wait_until(lambda: indexed_through(b, "rc", 499), 60, "uploads go on")
                assert_contiguous(self, rows)
                stop_clean(self, b)
            finally:
                b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
