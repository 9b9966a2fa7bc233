#!/usr/bin/python3
"""KIP-848 (group.protocol=consumer) with librdkafka 2.x (PyPI confluent-kafka 2.16.1, installed
by scripts/deps.sh test into a cache directory; Debian's 1.7 cannot speak it) against a real
stratad: two members share a topic's partitions, a third joins and partitions move to it, it
leaves and they move back, then a member stops polling and heartbeating (a crash, simulated by
a consumer whose process is killed) and its partitions reach the survivor after
group.consumer.session.timeout.ms; every record is read exactly once across all of it because
each member commits synchronously before it gives a partition up. The AdminClient sees a group
of type CONSUMER. Membership survives a broker restart (kill -9): the members go on with their
epochs and partitions, without being fenced or rebalanced and without reading a record twice.
Every time limit is an upper bound for waiting, never an expectation of speed."""
import os
import select
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
CK_DIR = os.path.join(os.environ.get("STRATA_PYDEPS", os.path.expanduser("~/.cache/strata/pydeps")),
                      "confluent-kafka-2.16.1")
if not os.path.isdir(os.path.join(CK_DIR, "confluent_kafka")):
    sys.exit("test_kip848: confluent-kafka 2.16.1 is not in %s (run scripts/deps.sh test)" % CK_DIR)
sys.path.insert(0, CK_DIR)

from broker import Broker  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition, libversion  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

WAIT = 90
PARTS = 6

CRASHER = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "group.protocol": "consumer", "enable.auto.commit": False,
              "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[4]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
        break
time.sleep(3600)
"""


class Member:
    def __init__(self, bootstrap, group, topic, seen, name):
        self.name, self.seen, self.reads = name, seen, 0
        self.events = []  # (kind, partitions) of every rebalance callback
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "group.protocol": "consumer", "enable.auto.commit": False,
                           "auto.offset.reset": "earliest"})
        self.c.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                         on_lost=self.on_lost)

    def on_assign(self, consumer, parts):
        self.events.append(("assign", sorted(p.partition for p in parts)))

    def on_lost(self, consumer, parts):
        self.events.append(("lost", sorted(p.partition for p in parts)))

    def on_revoke(self, consumer, parts):
        self.events.append(("revoke", sorted(p.partition for p in parts)))
        try:
            consumer.commit(asynchronous=False)
        except Exception as e:  # nothing consumed yet: no offsets to commit
            if "NO_OFFSET" not in str(e):
                raise

    def poll(self):
        msgs = self.c.consume(100, 0.1)
        for m in msgs:
            if m.error():
                raise AssertionError("%s: %s" % (self.name, m.error()))
            v = m.value().decode()
            if v in self.seen:
                raise AssertionError("%s read %s twice (first by %s)" % (self.name, v, self.seen[v]))
            self.seen[v] = self.name
            self.reads += 1
        if msgs:
            self.c.commit(asynchronous=False)

    def assigned(self):
        return len(self.c.assignment())


def poll_until(members, cond, what):
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s: %s" % (
                what, [(m.name, m.assigned(), m.reads) for m in members]))
        for m in members:
            m.poll()


class Kip848Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker("-X", "group.consumer.session.timeout.ms=6000",
                       "-X", "group.consumer.heartbeat.interval.ms=500")
        cls.bootstrap = cls.b.bootstrap

    @classmethod
    def tearDownClass(cls):
        rc, log = cls.b.stop()
        cls.b.close()
        if rc != 0:
            raise AssertionError("stratad exited %d:\n%s" % (rc, log))

    def produce(self, topic, lo, hi):
        p = Producer({"bootstrap.servers": self.bootstrap})
        for i in range(lo, hi):
            p.produce(topic, value=b"v%d" % i, partition=i % PARTS)
        self.assertEqual(p.flush(30), 0)

    def test_share_join_leave_crash(self):
        self.assertGreaterEqual(libversion()[1], 0x020a0000, libversion())
        topic, group = "k848-t", "k848-g"
        a = AdminClient({"bootstrap.servers": self.bootstrap})
        a.create_topics([NewTopic(topic, PARTS, 1)])[topic].result(30)
        self.produce(topic, 0, 300)
        seen = {}
        m1 = Member(self.bootstrap, group, topic, seen, "m1")
        m2 = Member(self.bootstrap, group, topic, seen, "m2")
        poll_until([m1, m2], lambda: len(seen) == 300 and m1.assigned() == 3 and m2.assigned() == 3,
                   "2 members x 3 partitions, 300 records")
        m3 = Member(self.bootstrap, group, topic, seen, "m3")
        poll_until([m1, m2, m3], lambda: [m.assigned() for m in (m1, m2, m3)] == [2, 2, 2],
                   "3 members x 2 partitions")
        d = a.describe_consumer_groups([group])[group].result(30)
        self.assertEqual(str(d.type), "ConsumerGroupType.CONSUMER")
        self.assertEqual(len(d.members), 3)
        self.assertEqual(sum(len(m.assignment.topic_partitions) for m in d.members), PARTS)
        self.produce(topic, 300, 600)
        poll_until([m1, m2, m3], lambda: len(seen) == 600, "600 records")
        self.assertGreater(m3.reads, 0)
        m3.c.close()  # leaves (epoch -1)
        poll_until([m1, m2], lambda: m1.assigned() == 3 and m2.assigned() == 3,
                   "3 + 3 again after a member left")
        self.produce(topic, 600, 900)
        poll_until([m1, m2], lambda: len(seen) == 900, "900 records")
        m2.c.close()
        poll_until([m1], lambda: m1.assigned() == PARTS, "the last member owning everything")

        # A member that crashes: a process killed with SIGKILL while it owns partitions.
        crasher = subprocess.Popen([sys.executable, "-c", CRASHER, self.bootstrap, group, CK_DIR,
                                    topic], stdout=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + WAIT
            line = ""
            while time.monotonic() < deadline and not line:
                m1.poll()  # m1 revokes what the new member is to own
                if crasher.poll() is not None:
                    break
                r, _, _ = select.select([crasher.stdout], [], [], 0)
                if r:
                    line = crasher.stdout.readline().strip()
            self.assertEqual(line, "assigned")
            crasher.send_signal(signal.SIGKILL)
            crasher.wait(30)
            self.assertLess(m1.assigned(), PARTS)
            self.produce(topic, 900, 1200)
            # after the session timeout the crashed member is gone: m1 gets all of it back and
            # reads from the committed offsets (nothing was committed by the crashed member)
            poll_until([m1], lambda: m1.assigned() == PARTS and len(seen) == 1200,
                       "the crashed member's partitions back, 1200 records")
        finally:
            if crasher.poll() is None:
                crasher.kill()
                crasher.wait()
            crasher.stdout.close()
        d = a.describe_consumer_groups([group])[group].result(30)
        self.assertEqual(len(d.members), 1)
        m1.c.close()


class Kip848RestartTest(unittest.TestCase):
    """A consumer group's membership (epochs, members, assignments) is durable: kill -9 and a
    restart leave two members with their partitions; they are neither fenced nor rebalanced
    (no rebalance callback at all), and read on from their committed offsets, each record once."""

    def test_membership_survives_restart(self):
        b = Broker("-X", "group.consumer.heartbeat.interval.ms=500")
        try:
            topic, group = "k848-r", "k848-rg"
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            a.create_topics([NewTopic(topic, 4, 1)])[topic].result(30)
            p = Producer({"bootstrap.servers": b.bootstrap})
            for i in range(200):
                p.produce(topic, value=b"v%d" % i, partition=i % 4)
            self.assertEqual(p.flush(30), 0)
            seen = {}
            m1 = Member(b.bootstrap, group, topic, seen, "m1")
            m2 = Member(b.bootstrap, group, topic, seen, "m2")
            poll_until([m1, m2], lambda: len(seen) == 200 and m1.assigned() == 2 and
                       m2.assigned() == 2, "2 members x 2 partitions, 200 records")
            before = {m.member_id: sorted(t.partition for t in m.assignment.topic_partitions)
                      for m in a.describe_consumer_groups([group])[group].result(30).members}
            self.assertEqual(len(before), 2)
            # A commit goes through the group's writer after the membership it follows, so
            # once it is acknowledged the membership is on disk too.
            tps = m1.c.position(m1.c.assignment())
            m1.c.commit(offsets=tps, asynchronous=False)
            events = (list(m1.events), list(m2.events))
            b.kill9()
            b.start()
            for i in range(200, 400):
                p.produce(topic, value=b"v%d" % i, partition=i % 4)
            self.assertEqual(p.flush(60), 0)
            poll_until([m1, m2], lambda: len(seen) == 400, "400 records after the restart")
            self.assertEqual((m1.events, m2.events), events, "rebalance callbacks after the restart")
            self.assertEqual((m1.assigned(), m2.assigned()), (2, 2))
            a = AdminClient({"bootstrap.servers": b.bootstrap})
            after = {m.member_id: sorted(t.partition for t in m.assignment.topic_partitions)
                     for m in a.describe_consumer_groups([group])[group].result(30).members}
            self.assertEqual(after, before)
            m1.c.close()
            m2.c.close()
            d = a.describe_consumer_groups([group])[group].result(30)
            self.assertEqual(len(d.members), 0)
        finally:
            rc, log = b.stop()
            b.close()
        if rc != 0:
            raise AssertionError("stratad exited %d:\n%s" % (rc, log))


if __name__ == "__main__":
    unittest.main(verbosity=2)
