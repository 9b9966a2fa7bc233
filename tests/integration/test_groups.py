#!/usr/bin/python3
"""Consumer groups against a real stratad: confluent-kafka (librdkafka), kafka-python
and raw frames. Rebalances and failover, committed offsets across SIGTERM and kill -9,
static membership, admin list/describe/delete, OffsetDelete, topic deletion, bad input.
Every time limit here is an upper bound for waiting, never an expectation of speed."""
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from kwire import Conn, frame  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def STRATAD_PATH():
    return os.environ.get("STRATAD", "build/tools/stratad")
WAIT = 60  # upper bound for anything to happen


def wait_until(cond, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def create_topic(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result()


def produce(bootstrap, topic, partitions, per_partition, start=0):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(start, start + per_partition):
        for part in range(partitions):
            p.produce(topic, value=b"%d-%d" % (part, i), partition=part)
    assert p.flush(60) == 0


class Member:
    """group_consumer.py in its own process, its events parsed as they arrive."""

    def __init__(self, bootstrap, group, topic, strategy="range", instance=None):
        args = [sys.executable, os.path.join(HERE, "group_consumer.py"), bootstrap, group, topic,
                strategy] + ([instance] if instance else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.lock = threading.Lock()
        self.assigned = None  # latest full assignment
        self.n_assigns = 0
        self.msgs = []  # (partition, offset) of every read, in order
        self.read_t = []  # when each read was reported (monotonic)
        self.read_acked = []  # whether each read's own commit was acknowledged
        self.commits = {}  # partition -> next offset, acknowledged
        self.events = []  # (monotonic time, line): the timeline a failure message shows
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            with self.lock:
                self.events.append((time.monotonic(), line.strip()))
                if parts[0] == "ASSIGN":
                    self.assigned = set(int(x) for x in parts[1].split(",")) if len(
                        parts) > 1 else set()
                    self.n_assigns += 1
                elif parts[0] == "MSG":
                    self.msgs.append((int(parts[1]), int(parts[2])))
                    self.read_t.append(time.monotonic())
                    self.read_acked.append(False)
                elif parts[0] == "COMMIT":  # the commit of the member's latest read of it
                    p, nxt = int(parts[1]), int(parts[2])
                    self.commits[p] = nxt
                    i = len(self.msgs) - 1 - self.msgs[::-1].index((p, nxt - 1))
                    self.read_acked[i] = True

    def owned(self):
        with self.lock:
            return set(self.assigned or ())

    def kill9(self):
        self.killed_at = time.monotonic()
        self.proc.kill()
        self.proc.wait()
        self.t.join(10)
        self.proc.stdout.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stdout.closed:
            self.t.join(10)
            self.proc.stdout.close()


# ---- Raw frames (JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetDelete v0) ----

def s16(b):
    return struct.pack(">h", len(b)) + b


def nstr(b):
    return struct.pack(">h", -1) if b is None else s16(b)


def join_v5(group, member, protocols, session_ms=10000, ptype=b"consumer", instance=None):
    body = s16(group) + struct.pack(">ii", session_ms, session_ms) + s16(member) + nstr(instance)
    body += s16(ptype) + struct.pack(">i", len(protocols))
    for name, meta in protocols:
        body += s16(name) + struct.pack(">i", len(meta)) + meta
    return frame(11, 5, 7, body)


def read_str(d, off):
    n = struct.unpack(">h", d[off:off + 2])[0]
    return (d[off + 2:off + 2 + n] if n >= 0 else None), off + 2 + max(n, 0)


def parse_join_v5(d):
    off = 8 + 4  # size, correlation id, throttle
    err, gen = struct.unpack(">hi", d[off:off + 6])
    off += 6
    proto, off = read_str(d, off)
    leader, off = read_str(d, off)
    member, off = read_str(d, off)
    return err, gen, proto, leader, member


def sync_v3(group, gen, member, assignments):
    body = s16(group) + struct.pack(">i", gen) + s16(member) + nstr(None)
    body += struct.pack(">i", len(assignments))
    for mid, a in assignments:
        body += s16(mid) + struct.pack(">i", len(a)) + a
    return frame(14, 3, 8, body)


def heartbeat_v3(group, gen, member):
    return frame(12, 3, 9, s16(group) + struct.pack(">i", gen) + s16(member) + nstr(None))


def error_after_throttle(d):
    return struct.unpack(">h", d[12:14])[0]


def subscription(topics):
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += s16(t)
    return out + struct.pack(">i", -1)


def timeline(members, p, o):
    """Every member's events that concern partition p near offset o, in time order."""
    rows = []
    for i, m in enumerate(members):
        for t, line in m.events:
            f = line.split()
            near = len(f) >= 3 and f[1] == str(p) and abs(int(f[2]) - o) <= 3
            if f[0] == "ASSIGN" or f[0] == "ERROR" or near:
                rows.append((t, i, line))
    t0 = rows[0][0] if rows else 0
    return "\n".join("%8.3f m%d %s" % (t - t0, i, line) for t, i, line in sorted(rows))


class GroupsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # No initial rebalance delay: the tests wait for what they need anyway.
        cls.b = Broker("-X", "group.initial.rebalance.delay.ms=0")

    @classmethod
    def tearDownClass(cls):
        rc, out = cls.b.stop()
        cls.b.close()
        assert rc == 0, out

    # ---- Failover: three members, one killed ----

    def failover(self, topic, group, strategy):
        bs = self.b.bootstrap
        create_topic(bs, topic, 6)
        produce(bs, topic, 6, 50)
        members = [Member(bs, group, topic, strategy) for _ in range(3)]
        try:
            # The partitions split: every member owns two, together all six.
            wait_until(lambda: [len(m.owned()) for m in members] == [2, 2, 2] and
                       set().union(*(m.owned() for m in members)) == set(range(6)),
                       what="three members with two partitions each")
            wait_until(lambda: sum(len(m.msgs) for m in members) >= 300, what="first half read")
            victim = members[0]
            lost = victim.owned()
            victim.kill9()  # no LeaveGroup: the session timeout must notice
            survivors = members[1:]
            wait_until(lambda: set().union(*(m.owned() for m in survivors)) == set(range(6)),
                       what="survivors own all partitions")
            produce(bs, topic, 6, 50, start=50)
            want = {(p, o) for p in range(6) for o in range(100)}
            wait_until(lambda: want <= {x for m in members for x in m.msgs},
                       what="every record read")
            # No record lost; a record is read twice only when one of its reads was not
            # committed: the victim read past its last commit, or a commit was refused in a
            # rebalance (REBALANCE_IN_PROGRESS or ILLEGAL_GENERATION while the group completes
            # one, as Kafka) so the next owner — or the same member — reads it again. A record
            # whose every read was committed read again, or a record the victim had committed
            # read by a survivor after the kill, means two owners at once or a lost commit.
            reads = {}  # (partition, offset) -> [(member, acked)]
            for i, m in enumerate(members):
                for x, acked in zip(m.msgs, m.read_acked):
                    reads.setdefault(x, []).append((i, acked))
            for (p, o), rs in reads.items():
                if len(rs) > 1:
                    self.assertFalse(all(acked for _, acked in rs),
                                     "record %d@%d read %d times, each read committed\n%s" %
                                     (p, o, len(rs), timeline(members, p, o)))
            for m in survivors:
                for (p, o), t in zip(m.msgs, m.read_t):
                    if p in lost and t > victim.killed_at:
                        self.assertGreaterEqual(o, victim.commits.get(p, 0),
                                                "a record the victim committed was read again"
                                                "\n%s" % timeline(members, p, o))
            # The survivors' commits reached the end of every partition.
            wait_until(lambda: all(
                max(m.commits.get(p, 0) for m in survivors) == 100 for p in range(6)),
                what="final commits")
        finally:
            for m in members:
                m.stop()
        c = Consumer({"bootstrap.servers": bs, "group.id": group})
        committed = c.committed([TopicPartition(topic, p) for p in range(6)], timeout=30)
        c.close()
        self.assertEqual([tp.offset for tp in committed], [100] * 6)

    def test_three_members_split_and_survive_a_kill(self):
        self.failover("fo-range", "g-range", "range")

    def test_cooperative_sticky_members_survive_a_kill(self):
        self.failover("fo-coop", "g-coop", "cooperative-sticky")

    # ---- Durable commits ----

    def test_commits_survive_sigterm_and_kill9(self):
        b = Broker("-X", "group.initial.rebalance.delay.ms=0")
        try:
            create_topic(b.bootstrap, "dur", 3)
            produce(b.bootstrap, "dur", 3, 20)
            tps = [TopicPartition("dur", p) for p in range(3)]
            for how, offsets in (("sigterm", [3, 7, 11]), ("kill9", [5, 13, 19])):
                c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "dur-g",
                              "enable.auto.commit": False})
                c.commit(offsets=[TopicPartition("dur", p, o) for p, o in enumerate(offsets)],
                         asynchronous=False)  # returns once the broker acknowledged
                c.close()
                if how == "sigterm":
                    rc, out = b.stop()
                    self.assertEqual(rc, 0, out)
                else:
                    b.kill9()
                b.start()
                c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "dur-g",
                              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
                got = c.committed(tps, timeout=30)
                self.assertEqual([tp.offset for tp in got], offsets, how)
                # A subscriber resumes exactly there.
                c.subscribe(["dur"])
                first = {}
                deadline = time.monotonic() + WAIT
                while len(first) < 3 and time.monotonic() < deadline:
                    m = c.poll(0.5)
                    if m is not None and not m.error():
                        first.setdefault(m.partition(), m.offset())
                c.close()
                self.assertEqual([first.get(p) for p in range(3)], offsets, how)
        finally:
            b.close()

    def test_group_forms_after_the_initial_delay_not_the_session_timeout(self):
        # Default group.initial.rebalance.delay.ms (3 s): the first join waits for it, and the
        # shard's timer must fire then, not at the 5-minute session timeout.
        b = Broker()
        try:
            create_topic(b.bootstrap, "delay1", 1)
            produce(b.bootstrap, "delay1", 1, 1)
            c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-delay",
                          "auto.offset.reset": "earliest", "session.timeout.ms": 300000})
            c.subscribe(["delay1"])
            m = None
            # An upper bound, ten times the delay and below both the session timeout and the
            # coordinator's once-a-minute retention tick (which would mask a missed timer).
            deadline = time.monotonic() + 30
            while (m is None or m.error()) and time.monotonic() < deadline:
                m = c.poll(0.5)
            c.close()
            self.assertIsNotNone(m)
            self.assertEqual(m.value(), b"0-0")
        finally:
            b.close()

    # ---- Static membership ----

    def test_static_member_rejoins_without_rebalance(self):
        bs = self.b.bootstrap
        create_topic(bs, "static1", 4)
        a = Member(bs, "g-static", "static1", "range", instance="inst-a")
        b = Member(bs, "g-static", "static1", "range", instance="inst-b")
        try:
            wait_until(lambda: len(a.owned()) == 2 and len(b.owned()) == 2, what="split")
            before_a, assigns_b = a.owned(), b.n_assigns
            a.kill9()  # a static member that disappears keeps its place until its session ends
            a2 = Member(bs, "g-static", "static1", "range", instance="inst-a")
            try:
                wait_until(lambda: a2.assigned is not None, what="rejoined member assigned")
                self.assertEqual(a2.owned(), before_a)
                time.sleep(1)  # let any (wrong) rebalance show up at the other member
                self.assertEqual(b.n_assigns, assigns_b, "the other member saw a rebalance")
            finally:
                a2.stop()
        finally:
            a.stop()
            b.stop()

    # ---- kafka-python group and admin ----

    def test_kafka_python_group_and_admin(self):
        from kafka import KafkaAdminClient, KafkaConsumer
        bs = self.b.bootstrap
        create_topic(bs, "kp-groups", 2)
        produce(bs, "kp-groups", 2, 30)
        c = KafkaConsumer("kp-groups", bootstrap_servers=bs, group_id="kp-g",
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          consumer_timeout_ms=WAIT * 1000)
        got = []
        for m in c:
            got.append((m.partition, m.offset))
            if len(got) == 60:
                break
        self.assertEqual(sorted(got), [(p, o) for p in range(2) for o in range(30)])
        c.commit()
        admin = KafkaAdminClient(bootstrap_servers=bs)
        try:
            groups = dict(admin.list_consumer_groups())
            self.assertEqual(groups.get("kp-g"), "consumer")
            desc = admin.describe_consumer_groups(["kp-g"])[0]
            self.assertEqual(desc.state, "Stable")
            self.assertEqual(len(desc.members), 1)
            offs = admin.list_consumer_group_offsets("kp-g")
            self.assertEqual({tp.partition: om.offset for tp, om in offs.items()}, {0: 30, 1: 30})
            # A group with members cannot be deleted.
            res = dict(admin.delete_consumer_groups(["kp-g"]))
            self.assertEqual(res["kp-g"].__name__, "NonEmptyGroupError")
            c.close()  # LeaveGroup: the group becomes Empty
            desc = admin.describe_consumer_groups(["kp-g"])[0]
            self.assertEqual(desc.state, "Empty")
            res = dict(admin.delete_consumer_groups(["kp-g"]))
            self.assertEqual(res["kp-g"].__name__, "NoError")
            self.assertNotIn("kp-g", dict(admin.list_consumer_groups()))
            self.assertEqual(admin.list_consumer_group_offsets("kp-g"), {})
        finally:
            admin.close()

    # ---- confluent-kafka admin ----

    def test_confluent_admin_lists_and_describes(self):
        bs = self.b.bootstrap
        create_topic(bs, "ck-admin", 2)
        m = Member(bs, "g-ck-admin", "ck-admin", "range", instance="ck-1")
        try:
            wait_until(lambda: len(m.owned()) == 2, what="member assigned")
            a = AdminClient({"bootstrap.servers": bs})
            groups = {g.id: g for g in a.list_groups(timeout=30)}
            g = groups["g-ck-admin"]
            self.assertEqual(g.state, "Stable")
            self.assertEqual(g.protocol_type, "consumer")
            self.assertEqual(g.protocol, "range")
            self.assertEqual(len(g.members), 1)
            self.assertTrue(g.members[0].id.startswith("ck-1-"))
            one = a.list_groups("g-ck-admin", timeout=30)
            self.assertEqual([x.id for x in one], ["g-ck-admin"])
        finally:
            m.stop()

    # ---- OffsetDelete and topic deletion ----

    def test_offset_delete_and_topic_deletion_remove_offsets(self):
        bs = self.b.bootstrap
        create_topic(bs, "odel", 2)
        c = Consumer({"bootstrap.servers": bs, "group.id": "g-odel", "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition("odel", 0, 4), TopicPartition("odel", 1, 6)],
                 asynchronous=False)
        # OffsetDelete v0 of partition 0 (the group has no members).
        body = s16(b"g-odel") + struct.pack(">i", 1) + s16(b"odel") + struct.pack(">ii", 1, 0)
        conn = Conn(self.b.port)
        d = conn.call(frame(47, 0, 3, body))
        conn.close()
        self.assertEqual(struct.unpack(">h", d[8:10])[0], 0)  # top-level error
        got = c.committed([TopicPartition("odel", 0), TopicPartition("odel", 1)], timeout=30)
        self.assertEqual([tp.offset for tp in got], [-1001, 6])
        # Deleting the topic deletes the group's offsets of it.
        a = AdminClient({"bootstrap.servers": bs})
        for f in a.delete_topics(["odel"]).values():
            f.result()
        create_topic(bs, "odel", 2)

        def gone():
            got = c.committed([TopicPartition("odel", 1)], timeout=30)
            return got[0].offset == -1001
        wait_until(gone, what="offsets of the deleted topic gone")
        c.close()

    # ---- Every advertised version (generated codec, incl. the flexible ones of Java 3.x) ----

    def test_every_version_of_every_group_api(self):
        create_topic(self.b.bootstrap, "vtop", 2)
        exe = os.environ.get("GRP_VERSIONS", os.path.join(os.path.dirname(STRATAD_PATH()),
                                                          "../tests/grp_versions"))
        p = subprocess.run([exe, str(self.b.port), "vtop"], capture_output=True, text=True,
                           timeout=WAIT * 2)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count(": ok"), 10, p.stdout)

    # ---- Bad input ----

    def test_bad_join_and_heartbeat_leave_the_group_intact(self):
        conn = Conn(self.b.port)
        try:
            create_topic(self.b.bootstrap, "bad-in", 1)
            meta = subscription([b"bad-in"])
            # MEMBER_ID_REQUIRED, then join with the given id; we lead a one-member group.
            err, _, _, _, mid = parse_join_v5(conn.call(join_v5(b"g-bad", b"", [(b"range", meta)])))
            self.assertEqual(err, 79)
            err, gen, proto, leader, mid2 = parse_join_v5(
                conn.call(join_v5(b"g-bad", mid, [(b"range", meta)])))
            self.assertEqual((err, proto, leader, mid2), (0, b"range", mid, mid))
            d = conn.call(sync_v3(b"g-bad", gen, mid, [(mid, b"\x00\x00\x00\x00\x00\x00")]))
            self.assertEqual(error_after_throttle(d), 0)
            self.assertEqual(error_after_throttle(conn.call(heartbeat_v3(b"g-bad", gen, mid))), 0)
            # Empty protocol list.
            err, *_ = parse_join_v5(conn.call(join_v5(b"g-bad", b"", [])))
            self.assertEqual(err, 23)  # INCONSISTENT_GROUP_PROTOCOL
            err, *_ = parse_join_v5(conn.call(join_v5(b"g-bad", mid, [])))
            self.assertEqual(err, 23)
            # Oversized protocol metadata (over 1 MiB).
            err, *_ = parse_join_v5(conn.call(join_v5(b"g-bad", mid,
                                                      [(b"range", b"x" * (1 << 20 | 1))])))
            self.assertEqual(err, 42)  # INVALID_REQUEST
            # Another protocol type than the group's.
            err, *_ = parse_join_v5(conn.call(join_v5(b"g-bad", b"", [(b"x", b"")],
                                                      ptype=b"connect")))
            self.assertEqual(err, 23)
            # Unknown generation, unknown member.
            d = conn.call(heartbeat_v3(b"g-bad", gen + 7, mid))
            self.assertEqual(error_after_throttle(d), 22)  # ILLEGAL_GENERATION
            d = conn.call(heartbeat_v3(b"g-bad", gen, b"nobody"))
            self.assertEqual(error_after_throttle(d), 25)  # UNKNOWN_MEMBER_ID
            d = conn.call(sync_v3(b"g-bad", gen - 1, mid, []))
            self.assertEqual(error_after_throttle(d), 22)
            # Session timeout outside the broker's bounds.
            err, *_ = parse_join_v5(conn.call(join_v5(b"g-bad", b"", [(b"range", meta)],
                                                      session_ms=10)))
            self.assertEqual(err, 26)  # INVALID_SESSION_TIMEOUT
            # The group is as it was: same generation, still stable, we still lead.
            self.assertEqual(error_after_throttle(conn.call(heartbeat_v3(b"g-bad", gen, mid))), 0)
            a = AdminClient({"bootstrap.servers": self.b.bootstrap})
            g = a.list_groups("g-bad", timeout=30)[0]
            self.assertEqual((g.state, len(g.members), g.members[0].id), ("Stable", 1,
                                                                          mid.decode()))
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
