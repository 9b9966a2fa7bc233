#!/usr/bin/python3
"""Transactions with real clients (confluent-kafka, librdkafka's transactional
producer): commit, abort, read_committed vs read_uncommitted, consume-
transform-produce with send_offsets_to_transaction, zombie fencing, the
coordinator aborting a transaction past its timeout, and restarts (clean and
kill -9) in the middle of a transaction, and a crash between PrepareCommit/
PrepareAbort and the markers (the row rewritten while the broker is down)."""
import json
import os
import random
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from kwire import (Conn, Reader, crc32c, parse_produce_v3, produce_v3, record_batch,  # noqa: E402
                   uvarint)

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer,  # noqa: E402
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def create(b, topic, partitions=1):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(60)


def txn_producer(b, tid, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "transactional.id": tid,
            "transaction.timeout.ms": 60000, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(60)
    return p


def read_all(b, topic, isolation, partitions=1, expect=None, group=None, timeout=20):
    """Every value of topic from offset 0 (until `expect` values, or until
    the end offsets of the isolation level are reached)."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group or "r-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = [], set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                if expect is None and len(eof) == partitions:
                    break
                continue
            raise KafkaException(m.error())
        eof.discard(m.partition())
        out.append(m.value().decode())
        if expect is not None and len(out) >= expect:
            break
    c.close()
    return out


def end_offsets(b, topic, isolation, partition=0):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "w-" + uuid.uuid4().hex,
                  "isolation.level": isolation})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=20)
    c.close()
    return hi

STRATA = os.environ.get("STRATA", os.path.join(os.path.dirname(os.environ.get(
    "STRATAD", "build/tools/stratad")), "strata"))


def strata(b, *args):
    """Run the strata CLI against b's admin API: (exit code, stdout)."""
    p = subprocess.run([STRATA, "--brokers", b.bootstrap, "--admin-url",
                        "http://127.0.0.1:%d" % b.admin_port, *args],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def metric(b, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % b.admin_port, timeout=20) as r:
        for line in r.read().decode().splitlines():
            if line.split(" ")[0] == name:
                return float(line.split(" ")[1])
    return None


# ---- Raw wire: flexible (compact) encodings for the operator APIs ----

def cstr(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


FLEX_BODY = 4 + 4 + 1  # a flexible response's body: after size, correlation id, header tags


def flex_frame(api, ver, body, corr=7):
    hdr = struct.pack(">hhih", api, ver, corr, 3) + b"raw" + b"\x00"
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def describe_txns(port, ids):
    c = Conn(port)
    body = uvarint(len(ids) + 1) + b"".join(cstr(i) for i in ids) + b"\x00"
    r = Reader(c.call(flex_frame(65, 0, body)), FLEX_BODY)
    c.close()
    r.take(">i")

    def state():
        st = {"error": r.take(">h"), "id": r.cstr(), "state": r.cstr(), "timeout": r.take(">i"),
              "start": r.take(">q"), "pid": r.take(">q"), "epoch": r.take(">h")}

        def topic():
            t = (r.cstr(), r.array(lambda: r.take(">i")))
            r.uvarint()
            return t
        st["topics"] = dict(r.array(topic))
        r.uvarint()
        return st
    return r.array(state)


def list_txns(port, states=()):
    c = Conn(port)
    body = uvarint(len(states) + 1) + b"".join(cstr(s) for s in states) + uvarint(1) + b"\x00"
    r = Reader(c.call(flex_frame(66, 0, body)), FLEX_BODY)
    c.close()
    r.take(">i")
    err = r.take(">h")
    unknown = r.array(r.cstr)

    def state():
        t = (r.cstr(), r.take(">q"), r.cstr())
        r.uvarint()
        return t
    return err, unknown, r.array(state)


def offset_fetch_stable(port, group, topic, partition):
    """OffsetFetch v7 with require_stable: (error_code, committed_offset)."""
    c = Conn(port)
    body = (cstr(group) + uvarint(2) + cstr(topic) + uvarint(2) + struct.pack(">i", partition)
            + b"\x00" + b"\x01" + b"\x00")
    r = Reader(c.call(flex_frame(9, 7, body)), FLEX_BODY)
    c.close()
    r.take(">i")
    out = []

    def part():
        p, off, _, _ = r.take(">i"), r.take(">q"), r.take(">i"), r.cstr()
        out.append((r.take(">h"), off))
        r.uvarint()

    def top():
        r.cstr()
        r.array(part)
        r.uvarint()
    r.array(top)
    return out[0]


def transactional(batch):
    """Set the transactional bit of a record batch from kwire.record_batch."""
    b = bytearray(batch)
    attrs = struct.unpack_from(">h", b, 21)[0] | 0x10
    struct.pack_into(">h", b, 21, attrs)
    struct.pack_into(">I", b, 17, crc32c(bytes(b[21:])))
    return bytes(b)


class TxnTest(unittest.TestCase):
    def setUp(self):
        self.b = Broker("-X", "transaction.abort.timed.out.transaction.cleanup.interval.ms=500")

    def tearDown(self):
        try:
            rc, out = self.b.stop()  # a clean exit: no leak, no sanitizer report
            self.assertEqual(rc, 0, out)
        finally:
            self.b.close()

    def test_commit_abort_and_isolation_levels(self):
        b = self.b
        create(b, "t1", 2)
        p = txn_producer(b, "tx-a")
        p.begin_transaction()
        for i in range(10):
            p.produce("t1", value="c%d" % i, partition=i % 2)
        p.commit_transaction(30)
        p.begin_transaction()
        for i in range(5):
            p.produce("t1", value="a%d" % i, partition=i % 2)
        p.flush(30)
        # Open transaction: read_committed stops before it, read_uncommitted sees it.
        self.assertEqual(sorted(read_all(b, "t1", "read_committed", 2)),
                         sorted("c%d" % i for i in range(10)))
        self.assertEqual(len(read_all(b, "t1", "read_uncommitted", 2)), 15)
        self.assertLess(end_offsets(b, "t1", "read_committed"),
                        end_offsets(b, "t1", "read_uncommitted"))
        p.abort_transaction(30)
        p.begin_transaction()
        p.produce("t1", value="c10", partition=0)
        p.commit_transaction(30)
        got = read_all(b, "t1", "read_committed", 2)
        self.assertEqual(sorted(got), sorted("c%d" % i for i in range(11)))
        self.assertEqual(metric(b, "strata_kafka_transaction_commits_total"), 2)
        self.assertEqual(metric(b, "strata_kafka_transaction_aborts_total"), 1)
        self.assertEqual(metric(b, "strata_kafka_transactions_open"), 0)
        # read_uncommitted sees the aborted records too (markers are not records).
        self.assertEqual(len(read_all(b, "t1", "read_uncommitted", 2)), 16)
        # Both ends past the markers once nothing is open.
        self.assertEqual(end_offsets(b, "t1", "read_committed"),
                         end_offsets(b, "t1", "read_uncommitted"))
        # The aborted records stay hidden after a restart (state rebuilt from the log).
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        b.start()
        self.assertEqual(sorted(read_all(b, "t1", "read_committed", 2)),
                         sorted("c%d" % i for i in range(11)))

    def test_consume_transform_produce_exactly_once(self):
        b = self.b
        create(b, "in", 2)
        create(b, "out", 2)
        src = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(40):
            src.produce("in", value="v%d" % i, partition=i % 2)
        src.flush(30)
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ctp",
                      "enable.auto.commit": False, "isolation.level": "read_committed",
                      "auto.offset.reset": "earliest"})
        c.subscribe(["in"])
        p = txn_producer(b, "ctp-1")
        done, rounds, aborted = set(), 0, False
        deadline = time.monotonic() + 60
        while len(done) < 40 and time.monotonic() < deadline:
            msgs = c.consume(8, 1.0)
            msgs = [m for m in msgs if not m.error()]
            if not msgs:
                continue
            rounds += 1
            p.begin_transaction()
            for m in msgs:
                p.produce("out", value=m.value().decode().upper(), partition=m.partition())
            p.send_offsets_to_transaction(c.position(c.assignment()),
                                          c.consumer_group_metadata(), 30)
            if rounds == 2 and not aborted:
                # A failure after the outputs reached the broker (flush): they and the
                # offsets are aborted, the input is read again.
                p.flush(30)
                p.abort_transaction(30)
                aborted = True
                committed = c.committed(c.assignment(), timeout=20)
                for tp in committed:
                    c.seek(TopicPartition(tp.topic, tp.partition,
                                          tp.offset if tp.offset >= 0 else 0))
                continue
            p.commit_transaction(30)
            done.update(m.value().decode() for m in msgs)
        self.assertTrue(aborted)
        self.assertEqual(len(done), 40)
        committed = c.committed([TopicPartition("in", 0), TopicPartition("in", 1)], timeout=20)
        self.assertEqual(sorted(tp.offset for tp in committed), [20, 20])
        c.close()
        out = read_all(b, "out", "read_committed", 2)
        self.assertEqual(sorted(out), sorted("V%d" % i for i in range(40)))  # each exactly once
        self.assertGreater(len(read_all(b, "out", "read_uncommitted", 2)), 40)

    def test_zombie_producer_is_fenced(self):
        b = self.b
        create(b, "z")
        p1 = txn_producer(b, "zombie")
        p1.begin_transaction()
        p1.produce("z", value="old")
        p1.flush(30)
        p2 = txn_producer(b, "zombie")  # aborts p1's transaction, bumps the epoch
        p1.produce("z", value="old2")
        with self.assertRaises(KafkaException) as e:
            p1.commit_transaction(30)
        self.assertTrue(e.exception.args[0].fatal() or e.exception.args[0].txn_requires_abort(),
                        e.exception.args[0])
        p2.begin_transaction()
        p2.produce("z", value="new")
        p2.commit_transaction(30)
        self.assertEqual(read_all(b, "z", "read_committed"), ["new"])

    def test_coordinator_aborts_a_transaction_past_its_timeout(self):
        b = self.b
        create(b, "to")
        p = txn_producer(b, "slow", **{"transaction.timeout.ms": 2000,
                                       "message.timeout.ms": 2000})
        p.begin_transaction()
        p.produce("to", value="late")
        p.flush(30)
        # The coordinator aborts it: the abort marker makes the partition stable again.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if end_offsets(b, "to", "read_committed") == 2:
                break
            time.sleep(0.2)
        self.assertEqual(end_offsets(b, "to", "read_committed"), 2)  # the record and the marker
        self.assertEqual(metric(b, "strata_kafka_transaction_timeouts_total"), 1)
        with self.assertRaises(KafkaException):
            p.commit_transaction(30)
        self.assertEqual(read_all(b, "to", "read_committed"), [])
        self.assertEqual(read_all(b, "to", "read_uncommitted"), ["late"])
        p2 = txn_producer(b, "slow")
        p2.begin_transaction()
        p2.produce("to", value="ok")
        p2.commit_transaction(30)
        self.assertEqual(read_all(b, "to", "read_committed"), ["ok"])

    def restart_mid_transaction(self, kill):
        b = self.b
        create(b, "rs", 2)
        p = txn_producer(b, "restart", **{"message.timeout.ms": 60000})
        p.begin_transaction()
        for i in range(6):
            p.produce("rs", value="a%d" % i, partition=i % 2)
        p.flush(30)
        if kill:
            b.kill9()
        else:
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
        b.start()
        # Still open after the restart: read_committed sees nothing of it.
        self.assertEqual(read_all(b, "rs", "read_committed", 2), [])
        for i in range(6, 8):
            p.produce("rs", value="a%d" % i, partition=i % 2)
        p.commit_transaction(60)
        self.assertEqual(sorted(read_all(b, "rs", "read_committed", 2)),
                         sorted("a%d" % i for i in range(8)))
        p.begin_transaction()
        p.produce("rs", value="gone", partition=0)
        p.flush(30)
        b.kill9()
        b.start()
        p.abort_transaction(60)
        p.begin_transaction()
        p.produce("rs", value="a8", partition=1)
        p.commit_transaction(60)
        self.assertEqual(sorted(read_all(b, "rs", "read_committed", 2)),
                         sorted("a%d" % i for i in range(9)))

    def test_clean_restart_mid_transaction(self):
        self.restart_mid_transaction(kill=False)

    def test_kill9_mid_transaction(self):
        self.restart_mid_transaction(kill=True)

    def test_describe_and_list_transactions_and_produce_checks(self):
        b = self.b
        create(b, "d", 2)
        p = txn_producer(b, "ops-tx")
        p.begin_transaction()
        p.produce("d", value="x", partition=0)
        p.produce("d", value="y", partition=1)
        p.flush(30)
        (st,) = describe_txns(b.port, ["ops-tx"])
        self.assertEqual((st["error"], st["id"], st["state"], st["timeout"]),
                         (0, "ops-tx", "Ongoing", 60000))
        self.assertEqual(sorted(st["topics"]["d"]), [0, 1])
        self.assertGreater(st["start"], 0)
        (missing,) = describe_txns(b.port, ["nope"])
        self.assertEqual(missing["error"], 105)  # TRANSACTIONAL_ID_NOT_FOUND
        err, unknown, txns = list_txns(b.port, ["Ongoing", "Bogus"])
        self.assertEqual((err, unknown), (0, ["Bogus"]))
        self.assertEqual([(t[0], t[2]) for t in txns], [("ops-tx", "Ongoing")])
        self.assertEqual(st["pid"], txns[0][1])
        # The CLI (admin API) tells the same.
        rc, out = strata(b, "--format", "json", "transaction", "describe", "ops-tx")
        self.assertEqual(rc, 0, out)
        d = json.loads(out)
        self.assertEqual((d["state"], d["producer_id"], d["timeout_ms"]),
                         ("Ongoing", st["pid"], 60000))
        self.assertEqual(sorted((x["topic"], x["partition"]) for x in d["partitions"]),
                         [("d", 0), ("d", 1)])
        rc, out = strata(b, "transaction", "list")
        self.assertEqual(rc, 0, out)
        self.assertIn("ops-tx", out)
        self.assertIn("Ongoing", out)
        rc, out = strata(b, "transaction", "describe", "nope")
        self.assertNotEqual(rc, 0)
        self.assertIn("not known", out)
        # A transactional batch of a producer whose transaction does not hold the
        # partition is refused (INVALID_TXN_STATE), as is a fenced epoch.
        c = Conn(b.port)
        err, _ = parse_produce_v3(c.call(produce_v3(
            "d", 0, transactional(record_batch([b"stray"], 999999, 0, 0)))))
        self.assertEqual(err, 48)
        err, _ = parse_produce_v3(c.call(produce_v3(
            "d", 0, transactional(record_batch([b"zombie"], st["pid"], st["epoch"] - 1
                                               if st["epoch"] > 0 else 0, 5)))))
        self.assertIn(err, (47, 48) if st["epoch"] > 0 else (45, 48))
        c.close()
        p.commit_transaction(30)
        (st,) = describe_txns(b.port, ["ops-tx"])
        self.assertEqual((st["state"], st["topics"]), ("CompleteCommit", {}))
        self.assertEqual(list_txns(b.port, ["Ongoing"])[2], [])
        self.assertEqual(sorted(read_all(b, "d", "read_committed", 2)), ["x", "y"])

    def test_consume_transform_produce_survives_kill9(self):
        """The broker is killed (-9) at random moments under a consume-transform-
        produce loop; afterwards every input has exactly one committed output."""
        b = self.b
        create(b, "cin", 2)
        create(b, "cout", 2)
        n = 300
        src = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(n):
            src.produce("cin", value="v%d" % i, partition=i % 2)
        src.flush(30)
        rng = random.Random(int(os.environ.get("TXN_CRASH_SEED", "20")))
        tps = [TopicPartition("cin", 0), TopicPartition("cin", 1)]
        stop, kills = threading.Event(), []

        def killer():
            while not stop.wait(rng.uniform(0.5, 2.0)) and len(kills) < 4:
                b.kill9()
                kills.append(time.monotonic())
                b.start()

        def new_producer():
            return txn_producer(b, "crash-ctp", **{"message.timeout.ms": 60000,
                                                   "transaction.timeout.ms": 60000})

        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "crash",
                      "enable.auto.commit": False, "isolation.level": "read_committed",
                      "auto.offset.reset": "earliest"})

        def rewind():
            committed = c.committed(tps, timeout=30)
            c.assign([TopicPartition("cin", tp.partition, tp.offset if tp.offset >= 0 else 0)
                      for tp in committed])

        p = new_producer()
        rewind()
        t = threading.Thread(target=killer)
        t.start()
        deadline = time.monotonic() + 240
        try:
            while time.monotonic() < deadline:
                try:
                    pos = c.committed(tps, timeout=30)
                    if sum(max(tp.offset, 0) for tp in pos) >= n and len(kills) >= 4:
                        break
                    msgs = [m for m in c.consume(10, 0.5) if not m.error()]
                    if not msgs:
                        continue
                    p.begin_transaction()
                    for m in msgs:
                        p.produce("cout", value=m.value().decode().upper(),
                                  partition=m.partition())
                    p.send_offsets_to_transaction(c.position(tps), c.consumer_group_metadata(),
                                                  60)
                    while True:
                        try:
                            p.commit_transaction(60)
                            break
                        except KafkaException as e:
                            if not e.args[0].retriable():
                                raise
                except KafkaException as e:
                    err = e.args[0]
                    if err.txn_requires_abort():
                        try:
                            p.abort_transaction(60)
                        except KafkaException:
                            p = new_producer()
                    else:
                        p = new_producer()  # fatal (fenced): a new producer of the same id
                    rewind()
        finally:
            stop.set()
            t.join()
        c.close()
        self.assertEqual(len(kills), 4)
        out = read_all(b, "cout", "read_committed", 2, timeout=60)
        self.assertEqual(sorted(out), sorted("V%d" % i for i in range(n)))

    def test_offsets_of_an_open_transaction_are_unstable(self):
        b = self.b
        create(b, "u")
        p = txn_producer(b, "unstable-tx")
        meta = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-pend"})
        p.begin_transaction()
        p.produce("u", value="x")
        p.send_offsets_to_transaction([TopicPartition("u", 0, 5)], meta.consumer_group_metadata(),
                                      30)
        self.assertEqual(offset_fetch_stable(b.port, "g-pend", "u", 0), (88, -1))
        p.commit_transaction(30)
        self.assertEqual(offset_fetch_stable(b.port, "g-pend", "u", 0), (0, 5))
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition("u", 0, 7)], meta.consumer_group_metadata(),
                                      30)
        self.assertEqual(offset_fetch_stable(b.port, "g-pend", "u", 0), (88, 5))
        # Still pending after a restart (the coordinator's state is durable).
        rc, out = b.stop()
        self.assertEqual(rc, 0, out)
        b.start()
        self.assertEqual(offset_fetch_stable(b.port, "g-pend", "u", 0), (88, 5))
        p.abort_transaction(60)
        self.assertEqual(offset_fetch_stable(b.port, "g-pend", "u", 0), (0, 5))
        meta.close()

    def test_idle_transactional_ids_expire(self):
        self.b.close()
        self.b = b = Broker("-X", "transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
                            "-X", "transactional.id.expiration.ms=1500")
        create(b, "e")
        p = txn_producer(b, "exp-tx")
        p.begin_transaction()
        p.produce("e", value="1")
        p.commit_transaction(30)
        pid = describe_txns(b.port, ["exp-tx"])[0]["pid"]
        o = txn_producer(b, "open-tx")
        o.begin_transaction()
        o.produce("e", value="2")
        o.flush(30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and describe_txns(b.port, ["exp-tx"])[0]["error"] == 0:
            time.sleep(0.2)
        self.assertEqual(describe_txns(b.port, ["exp-tx"])[0]["error"], 105)  # NOT_FOUND
        # An open transaction does not expire, however long it is idle.
        self.assertEqual(describe_txns(b.port, ["open-tx"])[0]["state"], "Ongoing")
        o.commit_transaction(30)
        rc, out = b.stop()  # gone from meta.db too
        self.assertEqual(rc, 0, out)
        b.start()
        self.assertEqual(describe_txns(b.port, ["exp-tx"])[0]["error"], 105)
        p2 = txn_producer(b, "exp-tx")  # a new producer id
        self.assertNotEqual(describe_txns(b.port, ["exp-tx"])[0]["pid"], pid)
        p2.begin_transaction()
        p2.produce("e", value="3")
        p2.commit_transaction(30)
        self.assertEqual(sorted(read_all(b, "e", "read_committed")), ["1", "2", "3"])

    def prepared_at_crash(self, state, expect_committed):
        """kill -9 after the coordinator made Prepare<state> durable and before any
        marker: its row is set to that state while the broker is down (the byte
        after version, producer id, epochs and timeout in kh_txn_state.c's
        encoding); the restart must finish the transaction exactly as prepared."""
        b = self.b
        create(b, "pc", 2)
        p = txn_producer(b, "prep-tx")
        meta = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-prep"})
        p.begin_transaction()
        p.produce("pc", value="p0", partition=0)
        p.produce("pc", value="p1", partition=1)
        p.send_offsets_to_transaction([TopicPartition("pc", 0, 42)],
                                      meta.consumer_group_metadata(), 30)
        p.flush(30)
        meta.close()
        b.kill9()
        db = sqlite3.connect(os.path.join(b.data, "meta.db"))
        (blob,) = db.execute("SELECT state FROM txns WHERE id = 'prep-tx'").fetchone()
        self.assertEqual(blob[17], 1)  # Ongoing
        blob = blob[:17] + bytes([state]) + blob[18:]
        db.execute("UPDATE txns SET state = ? WHERE id = 'prep-tx'", (blob,))
        db.commit()
        db.close()
        b.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = describe_txns(b.port, ["prep-tx"])[0]["state"]
            if st.startswith("Complete"):
                break
            time.sleep(0.2)
        self.assertEqual(st, "CompleteCommit" if expect_committed else "CompleteAbort")
        got = sorted(read_all(b, "pc", "read_committed", 2))
        self.assertEqual(got, ["p0", "p1"] if expect_committed else [])
        self.assertEqual(offset_fetch_stable(b.port, "g-prep", "pc", 0),
                         (0, 42 if expect_committed else -1))
        # Markers once: each partition holds its record and exactly one marker.
        self.assertEqual([end_offsets(b, "pc", "read_committed", i) for i in (0, 1)], [2, 2])

    def test_prepare_commit_is_completed_after_a_crash(self):
        self.prepared_at_crash(2, True)

    def test_prepare_abort_is_completed_after_a_crash(self):
        self.prepared_at_crash(3, False)


class TxnAclTest(unittest.TestCase):
    def test_transaction_apis_are_authorized(self):
        from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                                 KafkaAdminClient, ResourcePattern, ResourceType)
        b = Broker("-X", "authorizer.class.name=strata", "-X",
                   "allow.everyone.if.no.acl.found=true")
        try:
            create(b, "open")
            create(b, "ro")

            def deny(op, rtype, name):
                return ACL("User:ANONYMOUS", "*", getattr(ACLOperation, op),
                           ACLPermissionType.DENY,
                           ResourcePattern(getattr(ResourceType, rtype), name,
                                           ACLResourcePatternType.LITERAL))
            h = txn_producer(b, "hidden")  # DESCRIBE is denied below, after it ran
            h.begin_transaction()
            h.produce("open", value="h")
            h.commit_transaction(30)
            a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
            res = a.create_acls([deny("WRITE", "TOPIC", "ro"), deny("READ", "GROUP", "nogroup"),
                                 deny("DESCRIBE", "TRANSACTIONAL_ID", "hidden")])
            self.assertEqual(res["failed"], [])
            a.close()
            p = txn_producer(b, "acl-tx")
            # A topic the producer may not write: AddPartitionsToTxn refuses it.
            p.begin_transaction()
            errs = []
            p.produce("ro", value="no", on_delivery=lambda err, msg: errs.append(err))
            with self.assertRaises(KafkaException):
                p.commit_transaction(30)
            self.assertEqual([e.code() for e in errs], [KafkaError.TOPIC_AUTHORIZATION_FAILED])
            p = txn_producer(b, "acl-tx2")
            p.begin_transaction()
            p.produce("open", value="ok")
            p.flush(30)
            # A group the producer may not read: AddOffsetsToTxn refuses it.
            with self.assertRaises(KafkaException) as e:
                p.send_offsets_to_transaction([TopicPartition("open", 0, 1)],
                                              Consumer({"bootstrap.servers": b.bootstrap,
                                                        "group.id": "nogroup"})
                                              .consumer_group_metadata(), 30)
            self.assertIn("GROUP_AUTHORIZATION_FAILED", str(e.exception))
            p.abort_transaction(30)
            self.assertEqual(describe_txns(b.port, ["hidden"])[0]["error"], 53)
            self.assertEqual(describe_txns(b.port, ["acl-tx2"])[0]["state"], "CompleteAbort")
            names = [t[0] for t in list_txns(b.port)[2]]
            self.assertNotIn("hidden", names)
            self.assertIn("acl-tx2", names)
            rc, out = b.stop()
            self.assertEqual(rc, 0, out)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main()
