#!/usr/bin/python3
"""Every legal topic name is archivable on file://: a 249-character topic
(Kafka's longest) is produced to, archived (segments and the topic manifest
"_strata/topics/<topic>.json", a 254-byte file name), listed and read back by
`strata archive`, and recovered from the archive by a broker on an empty data
directory, with its configs. The manifest's temp file was named after it and
went past the 255-byte file name limit: "name too long", retried forever."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402
from test_tiering import (SEG, consume_from, earliest, index_rows, produce_values,  # noqa: E402
                          wait_high, wait_until)

STRATA = os.environ.get("STRATA", "build/tools/strata")
TOPIC = ("long-topic." + "x" * 249)[:249]
N = 2000


class LongTopicNameArchiveTest(unittest.TestCase):
    def test_249_character_topic_archived_listed_read_and_recovered(self):
        self.assertEqual(len(TOPIC), 249)
        tmp = tempfile.TemporaryDirectory(prefix="strata-arch-")
        self.addCleanup(tmp.cleanup)
        url = "file://" + tmp.name
        args = ["-X", "remote.log.storage.system.enable=true", "-X", "strata.archive.url=" + url,
                "-X", "log.retention.check.interval.ms=200", *SEG]
        b = Broker(*args)
        self.addCleanup(b.close)
        a = AdminClient({"bootstrap.servers": b.bootstrap})
        a.create_topics([NewTopic(TOPIC, 1, 1, config={
            "segment.ms": "1000", "retention.ms": "987654321"})])[TOPIC].result(30)
        values = produce_values(b, TOPIC, N)
        rows = wait_high(b, TOPIC, N - 1)
        manifest = os.path.join(tmp.name, "_strata", "topics", TOPIC + ".json")
        wait_until(lambda: os.path.exists(manifest), 60, "the topic manifest in the archive")
        rc, out = b.stop()
        self.assertEqual(rc, 0, out[-3000:])
        self.assertNotIn("name too long", out)

        # `strata archive ls` and `cat` find the topic, its offsets and records.
        def cli(*cmd):
            p = subprocess.run([STRATA, "archive", *cmd, "--archive", url], capture_output=True,
                               text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout
        j = json.loads(cli("ls", "--format", "json"))
        self.assertEqual([(p["topic"], p["partition"], p["first_offset"], p["last_offset"],
                           p["objects"]) for p in j["partitions"]],
                         [(TOPIC, 0, 0, N - 1, len(rows))])
        self.assertEqual(j["topics"], [{"topic": TOPIC, "partitions": 1, "configs": {
            "segment.ms": "1000", "retention.ms": "987654321"}}])
        got = cli("cat", TOPIC, "0", "-f", "%v\\n").splitlines()
        self.assertEqual(got, [v.decode() for v in values])

        # A broker on an empty data directory recovers the topic from the archive.
        b2 = Broker(*args)
        self.addCleanup(b2.close)
        b2.wait_for(r"recovered from the archive: objects=%d partitions=1" % len(rows), seen=True)
        self.assertEqual(index_rows(b2, TOPIC), rows)
        res = ConfigResource("topic", TOPIC)
        a2 = AdminClient({"bootstrap.servers": b2.bootstrap})
        self.assertEqual(a2.describe_configs([res])[res].result(30)["retention.ms"].value,
                         "987654321")  # from the manifest
        wait_until(lambda: earliest(b2.bootstrap, TOPIC) == (0, N), 60, "the archive")
        got, lo, hi = consume_from(b2.bootstrap, TOPIC, 0, N)
        self.assertEqual((lo, hi), (0, N))
        self.assertEqual([v for _, v in got], values)
        rc, out = b2.stop()
        self.assertEqual(rc, 0, out[-3000:])
        self.assertNotIn("name too long", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
