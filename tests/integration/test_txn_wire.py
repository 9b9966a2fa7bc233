#!/usr/bin/python3
"""Transaction APIs in raw Kafka frames, for the forms no client library in
the tests sends on its own: the batched AddPartitionsToTxn v4+ (verify-only
and adding), and TxnOffsetCommit v3+ with a consumer's group membership
(KIP-447: a commit from a stale generation, an unknown member or a fenced
static instance is refused)."""
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker  # noqa: E402
from kwire import Conn, Reader, frame, kstr, uvarint  # noqa: E402

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

NONE, UNKNOWN_TOPIC, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID = 0, 3, 22, 25
INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING = 48, 49
OPERATION_NOT_ATTEMPTED, MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID, PRODUCER_FENCED = 55, 79, 82, 90


def cstr(s):
    """A COMPACT_NULLABLE_STRING (None: null)."""
    if s is None:
        return b"\x00"
    b = s.encode()
    return uvarint(len(b) + 1) + b


def flex_frame(api, ver, body, corr=7):
    """A request with the flexible header (v2: client id, then no tags)."""
    hdr = struct.pack(">hhih", api, ver, corr, 3) + b"raw" + b"\x00"
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def reply(data, flexible):
    """A Reader of a response after its size, correlation id and header tags."""
    return Reader(data, 8 + (1 if flexible else 0))


def init_pid(c, tid):
    """InitProducerId v1: (error, producer id, epoch)."""
    r = reply(c.call(frame(22, 1, 1, kstr(tid) + struct.pack(">i", 60000))), False)
    r.take(">i")
    return r.take(">h"), r.take(">q"), r.take(">h")


def add_offsets(c, tid, pid, epoch, group):
    """AddOffsetsToTxn v1: the error."""
    r = reply(c.call(frame(25, 1, 1, kstr(tid) + struct.pack(">qh", pid, epoch) + kstr(group))),
             False)
    r.take(">i")
    return r.take(">h")


def end_txn(c, tid, pid, epoch, commit):
    """EndTxn v1: the error."""
    r = reply(c.call(frame(26, 1, 1, kstr(tid) + struct.pack(">qh?", pid, epoch, commit))), False)
    r.take(">i")
    return r.take(">h")


def add_parts_v4(c, txns):
    """AddPartitionsToTxn v4 (the batched form). txns: [(id, pid, epoch,
    verify_only, {topic: [partitions]})]. Returns (top-level error,
    {id: {(topic, partition): error}})."""
    body = uvarint(len(txns) + 1)
    for tid, pid, epoch, verify, topics in txns:
        body += cstr(tid) + struct.pack(">qh?", pid, epoch, verify) + uvarint(len(topics) + 1)
        for t, ps in topics.items():
            body += cstr(t) + uvarint(len(ps) + 1) + b"".join(struct.pack(">i", p) for p in ps)
            body += b"\x00"
        body += b"\x00"
    body += b"\x00"
    r = reply(c.call(flex_frame(24, 4, body)), True)
    r.take(">i")
    err = r.take(">h")
    out = {}

    def txn():
        tid = r.cstr()
        res = {}

        def topic():
            name = r.cstr()

            def part():
                p, e = r.take(">i"), r.take(">h")
                r.tags()
                res[(name, p)] = e
            r.array(part)
            r.tags()
        r.array(topic)
        r.tags()
        out[tid] = res
    r.array(txn)
    return err, out


def txn_offset_commit_v3(c, tid, pid, epoch, group, generation, member, instance, topic,
                         partition, offset):
    """TxnOffsetCommit v3 of one partition: its error."""
    body = (cstr(tid) + cstr(group) + struct.pack(">qhi", pid, epoch, generation) + cstr(member)
            + cstr(instance) + uvarint(2) + cstr(topic) + uvarint(2)
            + struct.pack(">iqi", partition, offset, -1) + cstr("") + b"\x00" + b"\x00" + b"\x00")
    r = reply(c.call(flex_frame(28, 3, body)), True)
    r.take(">i")
    errs = []

    def topic_():
        r.cstr()

        def part():
            r.take(">i")
            errs.append(r.take(">h"))
            r.tags()
        r.array(part)
        r.tags()
    r.array(topic_)
    return errs[0]


def join_group_v5(c, group, instance, member=""):
    """JoinGroup v5 (consumer protocol "range"): (error, generation, member id)."""
    body = (kstr(group) + struct.pack(">ii", 30000, 30000) + kstr(member)
            + (kstr(instance) if instance is not None else struct.pack(">h", -1))
            + kstr("consumer") + struct.pack(">i", 1) + kstr("range") + struct.pack(">i", 0))
    r = reply(c.call(frame(11, 5, 1, body)), False)
    r.take(">i")
    err, gen = r.take(">h"), r.take(">i")
    r.str16()
    r.str16()
    return err, gen, r.str16()


def offset_fetch_v1(c, group, topic, partition):
    """OffsetFetch v1 of one partition: (offset, error)."""
    body = kstr(group) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">ii", 1, partition)
    r = reply(c.call(frame(9, 1, 1, body)), False)
    r.take(">i")
    r.str16()
    r.take(">i")
    r.take(">i")
    off = r.take(">q")
    r.str16()
    return off, r.take(">h")


def create(b, topic, partitions):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(60)


class TxnWireTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker()

    @classmethod
    def tearDownClass(cls):
        try:
            rc, out = cls.b.stop()  # a clean exit: no leak, no sanitizer report
            assert rc == 0, out
        finally:
            cls.b.close()

    def test_add_partitions_v4_batched_and_verify_only(self):
        b = self.b
        create(b, "vt", 2)
        c = Conn(b.port)
        err, pid, epoch = init_pid(c, "tx-v")
        self.assertEqual(err, NONE)
        # The adding form of v4 (what a broker sends for a v3-style client).
        err, res = add_parts_v4(c, [("tx-v", pid, epoch, False, {"vt": [0]})])
        self.assertEqual((err, res), (NONE, {"tx-v": {("vt", 0): NONE}}))
        # Verify-only, two transactions in one request: vt-0 is in tx-v,
        # vt-1 is not; an id without a producer is no mapping.
        err, res = add_parts_v4(c, [("tx-v", pid, epoch, True, {"vt": [0, 1]}),
                                    ("tx-none", 4242, 0, True, {"vt": [0]})])
        self.assertEqual(err, NONE)
        self.assertEqual(res["tx-v"], {("vt", 0): NONE, ("vt", 1): INVALID_TXN_STATE})
        self.assertEqual(res["tx-none"], {("vt", 0): INVALID_PRODUCER_ID_MAPPING})
        # Verify-only added nothing: asked again, vt-1 is still not in it.
        err, res = add_parts_v4(c, [("tx-v", pid, epoch, True, {"vt": [1]})])
        self.assertEqual(res["tx-v"], {("vt", 1): INVALID_TXN_STATE})
        # An older epoch is fenced; an unknown partition fails alone, the
        # rest of that transaction is not attempted.
        err, res = add_parts_v4(c, [("tx-v", pid, epoch - 1 if epoch > 0 else 5, True,
                                     {"vt": [0]})])
        self.assertEqual(res["tx-v"], {("vt", 0): PRODUCER_FENCED})
        err, res = add_parts_v4(c, [("tx-v", pid, epoch, True, {"vt": [0, 7]})])
        self.assertEqual(res["tx-v"], {("vt", 0): OPERATION_NOT_ATTEMPTED,
                                       ("vt", 7): UNKNOWN_TOPIC})
        # Once the transaction ended, its partitions are no longer in one.
        self.assertEqual(end_txn(c, "tx-v", pid, epoch, False), NONE)
        err, res = add_parts_v4(c, [("tx-v", pid, epoch, True, {"vt": [0]})])
        self.assertEqual(res["tx-v"], {("vt", 0): INVALID_TXN_STATE})
        c.close()

    def test_txn_offset_commit_checks_the_group_member(self):
        b = self.b
        create(b, "in", 1)
        c = Conn(b.port)
        err, pid, epoch = init_pid(c, "tx-g")
        self.assertEqual(err, NONE)
        self.assertEqual(add_offsets(c, "tx-g", pid, epoch, "g"), NONE)
        # A static member joins (the group stays CompletingRebalance: no
        # SyncGroup; a transactional commit is not refused for it).
        err, gen, member = join_group_v5(c, "g", "inst-1")
        if err == MEMBER_ID_REQUIRED:
            err, gen, member = join_group_v5(c, "g", "inst-1", member)
        self.assertEqual(err, NONE)
        self.assertGreaterEqual(gen, 1)

        def toc(generation, member_id, instance, offset, group="g"):
            return txn_offset_commit_v3(c, "tx-g", pid, epoch, group, generation, member_id,
                                        instance, "in", 0, offset)
        # Without membership fields (as v0-2 clients): accepted.
        self.assertEqual(toc(-1, "", None, 3), NONE)
        # The member of the current generation: accepted.
        self.assertEqual(toc(gen, member, "inst-1", 7), NONE)
        self.assertEqual(toc(gen, member, None, 7), NONE)
        # A zombie of an older/other generation, an unknown member, another
        # member holding the static instance, an unknown instance, a group
        # that does not exist with a generation: refused, nothing stored.
        self.assertEqual(toc(gen + 1, member, "inst-1", 999), ILLEGAL_GENERATION)
        self.assertEqual(toc(gen - 1, member, None, 999), ILLEGAL_GENERATION)
        self.assertEqual(toc(gen, "m-bogus", None, 999), UNKNOWN_MEMBER_ID)
        self.assertEqual(toc(gen, "m-other", "inst-1", 999), FENCED_INSTANCE_ID)
        self.assertEqual(toc(gen, member, "inst-2", 999), UNKNOWN_MEMBER_ID)
        self.assertEqual(toc(1, "m", None, 999, group="no-such-group"), ILLEGAL_GENERATION)
        self.assertEqual(end_txn(c, "tx-g", pid, epoch, True), NONE)
        self.assertEqual(offset_fetch_v1(c, "g", "in", 0), (7, NONE))
        c.close()


if __name__ == "__main__":
    unittest.main()
