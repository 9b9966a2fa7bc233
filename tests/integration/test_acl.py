#!/usr/bin/python3
"""ACL authorization against a real stratad with real clients: CreateAcls,
DescribeAcls, DeleteAcls (kafka-python's admin client), and the checks every
handler makes (confluent-kafka producers, consumers and admin client,
kafka-python's admin client, raw frames where no client has the call):
produce, consume, topics, groups, configs, DeleteRecords, InitProducerId,
Metadata and ListGroups filtering, auto-create, DENY wins, prefixed patterns,
the wildcard principal, super users, durability across a restart.
AclTest runs every check as User:ANONYMOUS (a PLAINTEXT client): it gives that
principal ALTER on the cluster (to manage ACLs) from a first run where it is a
super user, then restarts without super users. SaslAclTest authenticates as
different SCRAM users (created over the admin API) on a SASL_PLAINTEXT listener:
per-principal grants, the wildcard principal, DENY for one user, Metadata per
user, super users, the PLAINTEXT listener as User:ANONYMOUS."""
import json
import os
import struct
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from broker import Broker, free_port  # noqa: E402
from kwire import (Conn, Reader, delete_records_v1, frame, parse_delete_records_v1,  # noqa: E402
                   parse_produce_v3, produce_v3, record_batch, uvarint)

from confluent_kafka import Consumer, KafkaError, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # noqa: E402
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,  # noqa: E402
                         ACLResourcePatternType, KafkaAdminClient, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from kafka.errors import GroupAuthorizationFailedError  # noqa: E402

ME = "User:ANONYMOUS"
TOPIC_AUTH, GROUP_AUTH, CLUSTER_AUTH, TXN_AUTH = 29, 30, 31, 53
AUTHZ = ["-X", "authorizer.class.name=strata"]


def acl(op, rtype="TOPIC", name="*", pattern="LITERAL", perm="ALLOW", principal=ME, host="*"):
    return ACL(principal, host, getattr(ACLOperation, op), getattr(ACLPermissionType, perm),
               ResourcePattern(getattr(ResourceType, rtype), name,
                               getattr(ACLResourcePatternType, pattern)))


def any_filter(rtype="ANY", op="ANY"):
    return ACLFilter(None, None, getattr(ACLOperation, op), ACLPermissionType.ANY,
                     ResourcePatternFilter(getattr(ResourceType, rtype), None,
                                           ACLResourcePatternType.ANY))


def produce(bootstrap, topic, **conf):
    """The delivery error of one message (None when it was written)."""
    p = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 15000, **conf})
    out = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: out.append(err))
    p.flush(30)
    return out[0].code() if out and out[0] else None


def consume_one(bootstrap, topic, group):
    """A value read with group, or the error code the consumer got."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return m.error().code()
            c.commit(m, asynchronous=False)
            return m.value()
        return None
    finally:
        c.close()


def init_producer_id(port, txn_id=None):
    """InitProducerId v1's error code."""
    body = (struct.pack(">h", -1) if txn_id is None
            else struct.pack(">h", len(txn_id)) + txn_id.encode()) + struct.pack(">i", 10000)
    c = Conn(port)
    try:
        data = c.call(frame(22, 1, 5, body))
    finally:
        c.close()
    return struct.unpack(">h", data[12:14])[0]  # size, correlation id, throttle


def cstr(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def offset_fetch_v8(port, groups):
    """OffsetFetch v8 (flexible, batched groups): groups is [(group, [(topic, [partitions])]
    or None for all topics)]. Returns {group: (error, {topic: {partition: error}})}."""
    body = uvarint(len(groups) + 1)
    for g, topics in groups:
        body += cstr(g)
        if topics is None:
            body += uvarint(0)
        else:
            body += uvarint(len(topics) + 1)
            for t, parts in topics:
                body += cstr(t) + uvarint(len(parts) + 1)
                body += b"".join(struct.pack(">i", p) for p in parts) + b"\0"
        body += b"\0"
    body += b"\0\0"  # require_stable, tags
    hdr = struct.pack(">hhih", 9, 8, 11, 3) + b"acl" + b"\0"
    c = Conn(port)
    try:
        data = c.call(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    finally:
        c.close()
    r = Reader(data, 4 + 4 + 1 + 4)  # size, correlation id, header tags, throttle
    out = {}
    for _ in range(r.uvarint() - 1):
        g = r.cstr()
        topics = {}
        for _ in range(r.uvarint() - 1):
            t = r.cstr()
            parts = {}
            for _ in range(r.uvarint() - 1):
                p = r.take(">i")
                r.take(">q")
                r.take(">i")
                r.cstr()
                parts[p] = r.take(">h")
                r.uvarint()
            topics[t] = parts
            r.uvarint()
        out[g] = (r.take(">h"), topics)
        r.uvarint()
    return out


def flex_call(port, api, ver, body):
    hdr = struct.pack(">hhih", api, ver, 17, 3) + b"acl" + b"\0"
    c = Conn(port)
    try:
        data = c.call(struct.pack(">i", len(hdr) + len(body)) + hdr + body)
    finally:
        c.close()
    r = Reader(data, 8)  # size, correlation id
    r.tags()
    return r


def describe_log_dirs_v4(port):
    """DescribeLogDirs v4 of every topic: (error, [(log dir, {topic: {partition: size}},
    total bytes, usable bytes)])."""
    r = flex_call(port, 35, 4, b"\0\0")  # topics null, tags
    r.take(">i")
    err = r.take(">h")

    def part():
        p, size = r.take(">i"), r.take(">q")
        r.take(">q"), r.take(">b"), r.tags()  # offset lag, future, tags
        return p, size

    def topic():
        name, parts = r.cstr(), dict(r.array(part))
        r.tags()
        return name, parts

    def logdir():
        r.take(">h")
        d, topics = r.cstr(), dict(r.array(topic))
        out = (d, topics, r.take(">q"), r.take(">q"))
        r.tags()
        return out

    return err, r.array(logdir)


def metadata_v12(port, name=None, topic_id=None):
    """Metadata v12 of one topic, by name or id: (error, name, topic id)."""
    body = b"\2" + (topic_id or b"\0" * 16) + (cstr(name) if name is not None else b"\0") + b"\0"
    r = flex_call(port, 3, 12, body + b"\0\0\0")  # allow_auto, include_topic_ops, tags
    r.take(">i")
    for _ in range(r.uvarint() - 1):  # brokers
        r.take(">i"), r.cstr(), r.take(">i"), r.cstr(), r.tags()
    r.cstr(), r.take(">i")
    assert r.uvarint() - 1 == 1
    err, tname, tid = r.take(">h"), r.cstr(), r.raw(16)
    return err, tname, tid


def describe_topic_partitions(port, names):
    """DescribeTopicPartitions v0 (no names: every topic): [(topic error, name, partitions)]."""
    body = struct.pack(">B", len(names) + 1) + b"".join(cstr(n) + b"\0" for n in names)
    r = flex_call(port, 75, 0, body + struct.pack(">i", 2000) + b"\xff\0")  # no cursor, tags
    r.take(">i")
    out = []
    for _ in range(r.uvarint() - 1):
        err, name = r.take(">h"), r.cstr()
        r.raw(16), r.take(">b")  # topic id, is internal
        parts = []
        for _ in range(r.uvarint() - 1):
            perr, idx = r.take(">h"), r.take(">i")
            r.take(">i"), r.take(">i")  # leader id, epoch
            for _ in range(4):  # replicas, isr, elr, last known elr
                for _ in range(max(r.uvarint() - 1, 0)):
                    r.take(">i")
            for _ in range(r.uvarint() - 1):  # offline replicas
                r.take(">i")
            r.tags()
            parts.append((perr, idx))
        r.take(">i"), r.tags()
        out.append((err, name, parts))
    return out


def fetch_v13(port, topic_id):
    """Fetch v13 of partition 0 of a topic by id: (topic id echoed, partition error)."""
    part = struct.pack(">iiqiqi", 0, -1, 0, -1, -1, 1 << 20) + b"\0"
    body = (struct.pack(">iiiibii", -1, 0, 1, 1 << 20, 0, 0, -1) + b"\2" + topic_id + b"\2"
            + part + b"\0" + b"\1" + b"\1" + b"\0")  # forgotten [], rack "", tags
    r = flex_call(port, 1, 13, body)
    r.take(">i"), r.take(">h"), r.take(">i")
    assert r.uvarint() - 1 == 1
    tid = r.raw(16)
    assert r.uvarint() - 1 == 1
    return tid, (r.take(">i"), r.take(">h"))[1]


def fetch_v4_error(port, topic, replica_id):
    """Fetch v4 of partition 0 of topic as replica_id (-1: a consumer): its error code."""
    t = topic.encode()
    body = (struct.pack(">iiiibi", replica_id, 0, 1, 1 << 20, 0, 1) + struct.pack(">h", len(t))
            + t + struct.pack(">iiqi", 1, 0, 0, 1 << 20))
    c = Conn(port)
    try:
        data = c.call(frame(1, 4, 19, body))
    finally:
        c.close()
    off = 8 + 4 + 4  # size, correlation id, throttle, topic count
    off += 2 + struct.unpack_from(">h", data, off)[0] + 4  # name, partition count
    return struct.unpack_from(">ih", data, off)[1]


def create_topic_v5(port, name):
    """CreateTopics v5 of one topic: (error, topic config error, partitions, n configs)."""
    body = (b"\2" + cstr(name) + struct.pack(">ih", 1, 1) + b"\1\1\0"
            + struct.pack(">i", 10000) + b"\0\0")
    r = flex_call(port, 19, 5, body)
    r.take(">i")
    assert r.uvarint() - 1 == 1
    r.cstr()
    err = r.take(">h")
    r.cstr()
    parts, n_configs = r.take(">i"), (r.take(">h"), r.uvarint() - 1)[1]
    for _ in range(max(n_configs, 0)):
        r.cstr(), r.cstr(), r.take(">b"), r.take(">b"), r.take(">b"), r.tags()
    cfg_err = 0
    for _ in range(r.uvarint()):  # tagged fields: tag 0 is TopicConfigErrorCode
        tag, size = r.uvarint(), r.uvarint()
        if tag == 0:
            cfg_err = r.take(">h")
        else:
            r.raw(size)
    return err, cfg_err, parts, n_configs


def metadata_v8_ops(port, topic):
    """Metadata v8 for one topic with include_cluster/topic_authorized_operations:
    (topic error, topic authorized operations, cluster authorized operations)."""
    t = topic.encode()
    body = struct.pack(">ih", 1, len(t)) + t + b"\0\1\1"
    c = Conn(port)
    try:
        data = c.call(frame(3, 8, 13, body))
    finally:
        c.close()
    r = Reader(data, 8 + 4)  # size, correlation id, throttle
    for _ in range(r.take(">i")):  # brokers
        r.take(">i"), r.str16(), r.take(">i"), r.str16()
    r.str16(), r.take(">i")  # cluster id, controller
    assert r.take(">i") == 1
    err = r.take(">h")
    r.str16(), r.take(">b")
    for _ in range(r.take(">i")):  # partitions
        r.take(">h"), r.take(">i"), r.take(">i"), r.take(">i")
        for _ in range(3):  # replicas, isr, offline replicas
            r.raw(4 * r.take(">i"))
    topic_ops = r.take(">i")
    return err, topic_ops, r.take(">i")


def bits(*ops):
    return sum(1 << getattr(ACLOperation, o).value for o in ops)


class AclTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker(*AUTHZ, "-X", "super.users=%s" % ME)
        a = AdminClient({"bootstrap.servers": cls.b.bootstrap})
        topics = ["t-prod", "t-deny", "pre.a", "pre.b", "t-cfg", "t-dr", "t-del", "t-read"]
        for f in a.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
            f.result(30)
        for t in ("t-read", "t-dr"):
            assert produce(cls.b.bootstrap, t) is None
        k = KafkaAdminClient(bootstrap_servers=cls.b.bootstrap)
        r = k.create_acls([acl("ALTER", "CLUSTER", "kafka-cluster")])
        assert not r["failed"], r
        k.close()
        # The same data directory, without super users: ACLs must survive.
        cls.b.stop()
        cls.b.args = [x for x in cls.b.args if not x.startswith("super.users")][:-1]
        cls.b.start()

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def setUp(self):
        self.k = KafkaAdminClient(bootstrap_servers=self.b.bootstrap)
        self.reset()

    def tearDown(self):
        self.reset()
        self.k.close()

    def reset(self):
        """Delete every ACL but ALTER on the cluster (which manages them)."""
        filters = [any_filter(t) for t in ("TOPIC", "GROUP", "TRANSACTIONAL_ID")]
        filters += [any_filter("CLUSTER", op) for op in
                    ("ALL", "CREATE", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS",
                     "ALTER_CONFIGS", "IDEMPOTENT_WRITE")]
        self.k.delete_acls(filters)

    def grant(self, *acls):
        r = self.k.create_acls(list(acls))
        self.assertEqual(r["failed"], [])

    def admin(self):
        return AdminClient({"bootstrap.servers": self.b.bootstrap})

    # ---- ACL APIs ----

    def test_acls_durable_and_described(self):
        acls, err = self.k.describe_acls(any_filter("CLUSTER"))
        self.assertEqual([(a.principal, a.operation) for a in acls], [(ME, ACLOperation.ALTER)])
        self.grant(acl("READ", "TOPIC", "x.", "PREFIXED"), acl("WRITE", "GROUP", "g", perm="DENY"))
        acls, _ = self.k.describe_acls(any_filter("TOPIC"))
        self.assertEqual([(a.resource_pattern.resource_name, a.resource_pattern.pattern_type)
                          for a in acls], [("x.", ACLResourcePatternType.PREFIXED)])
        # MATCH: the ACLs that apply to topic x.y (the prefix x. does).
        f = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                      ResourcePatternFilter(ResourceType.TOPIC, "x.y",
                                            ACLResourcePatternType.MATCH))
        acls, _ = self.k.describe_acls(f)
        self.assertEqual(len(acls), 1)
        r = self.k.delete_acls([any_filter("GROUP")])
        self.assertEqual(len(r[0][1]), 1)  # the one group ACL matched and was deleted
        acls, _ = self.k.describe_acls(any_filter("GROUP"))
        self.assertEqual(acls, [])

    def test_invalid_acl_refused(self):
        r = self.k.create_acls([acl("ALTER", "CLUSTER", "not-the-cluster")])
        self.assertEqual(len(r["failed"]), 1)

    # ---- Topics: produce, consume, deny wins, prefixes, wildcard ----

    def test_produce_needs_write(self):
        self.assertEqual(produce(self.b.bootstrap, "t-prod"), TOPIC_AUTH)
        self.grant(acl("WRITE", "TOPIC", "t-prod"))
        self.assertIsNone(produce(self.b.bootstrap, "t-prod"))
        self.grant(acl("READ", "TOPIC", "pre.a"))  # READ does not give WRITE
        self.assertEqual(produce(self.b.bootstrap, "pre.a"), TOPIC_AUTH)
        # acks=0 has no response to carry the error: the broker closes the connection.
        c = Conn(self.b.port)
        try:
            r = c.call(produce_v3("t-prod", 0, record_batch([b"a"])))
            self.assertEqual(parse_produce_v3(r)[0], 0)
            with self.assertRaises((ConnectionError, OSError)):
                c.call(produce_v3("pre.a", 0, record_batch([b"b"]), acks=0, corr=2) +
                       produce_v3("t-prod", 0, record_batch([b"c"]), corr=3))
        finally:
            c.close()

    def test_hosts(self):
        # An ALLOW for another host does not apply; a DENY for this one does.
        self.grant(acl("WRITE", "TOPIC", "t-prod", host="10.9.9.9"))
        self.assertEqual(produce(self.b.bootstrap, "t-prod"), TOPIC_AUTH)
        self.grant(acl("WRITE", "TOPIC", "t-prod", host="127.0.0.1"))
        self.assertIsNone(produce(self.b.bootstrap, "t-prod"))
        self.grant(acl("WRITE", "TOPIC", "t-prod", perm="DENY", host="127.0.0.1"))
        self.assertEqual(produce(self.b.bootstrap, "t-prod"), TOPIC_AUTH)

    def test_consume_needs_read_on_topic_and_group(self):
        self.grant(acl("READ", "TOPIC", "t-read"))
        self.assertEqual(consume_one(self.b.bootstrap, "t-read", "g-read"), GROUP_AUTH)
        self.grant(acl("READ", "GROUP", "g-read"))
        self.assertEqual(consume_one(self.b.bootstrap, "t-read", "g-read"), b"v")
        self.reset()
        self.grant(acl("READ", "GROUP", "g-read"), acl("DESCRIBE", "TOPIC", "t-read"))
        self.assertEqual(consume_one(self.b.bootstrap, "t-read", "g-read2"), GROUP_AUTH)
        self.grant(acl("READ", "GROUP", "g-read2"))
        self.assertEqual(consume_one(self.b.bootstrap, "t-read", "g-read2"), TOPIC_AUTH)

    def test_deny_wins_and_wildcard_principal(self):
        self.grant(acl("ALL", "TOPIC", "*", principal="User:*"),
                   acl("WRITE", "TOPIC", "t-deny", perm="DENY"))
        self.assertIsNone(produce(self.b.bootstrap, "t-prod"))
        self.assertEqual(produce(self.b.bootstrap, "t-deny"), TOPIC_AUTH)
        # A deny for another principal does not apply.
        self.reset()
        self.grant(acl("ALL", "TOPIC", "*", principal="User:*"),
                   acl("WRITE", "TOPIC", "t-deny", perm="DENY", principal="User:bob"))
        self.assertIsNone(produce(self.b.bootstrap, "t-deny"))

    def test_prefixed_patterns(self):
        self.grant(acl("WRITE", "TOPIC", "pre.", "PREFIXED"))
        self.assertIsNone(produce(self.b.bootstrap, "pre.a"))
        self.assertIsNone(produce(self.b.bootstrap, "pre.b"))
        self.assertEqual(produce(self.b.bootstrap, "t-prod"), TOPIC_AUTH)
        self.grant(acl("WRITE", "TOPIC", "pre.b", "PREFIXED", perm="DENY"))
        self.assertEqual(produce(self.b.bootstrap, "pre.b"), TOPIC_AUTH)

    # ---- Metadata ----

    def test_metadata_shows_only_describable_topics(self):
        self.grant(acl("DESCRIBE", "TOPIC", "pre.", "PREFIXED"))
        md = self.admin().list_topics(timeout=10)
        self.assertEqual(sorted(md.topics), ["pre.a", "pre.b"])
        md = self.admin().list_topics(topic="t-prod", timeout=10)
        self.assertEqual(md.topics["t-prod"].error.code(), TOPIC_AUTH)

    def test_describe_topic_partitions_like_metadata(self):
        self.grant(acl("DESCRIBE", "TOPIC", "pre.", "PREFIXED"))
        # every topic: only the describable ones
        self.assertEqual([t[1] for t in describe_topic_partitions(self.b.port, [])], ["pre.a", "pre.b"])
        # by name: refused topics say so and show nothing
        got = describe_topic_partitions(self.b.port, ["t-prod", "pre.a"])
        self.assertEqual(sorted(got), [(0, "pre.a", [(0, 0)]), (TOPIC_AUTH, "t-prod", [])])
        # only refused names: not read as "every topic"
        self.assertEqual(describe_topic_partitions(self.b.port, ["t-prod"]), [(TOPIC_AUTH, "t-prod", [])])

    def test_metadata_by_id_with_an_empty_name_is_authorized_by_id(self):
        # the Java client asks by id with name "" (not null): the topic the id names is checked
        self.grant(acl("DESCRIBE", "TOPIC", "t-read"))
        _, _, tid = metadata_v12(self.b.port, name="t-read")
        self.reset()
        self.grant(acl("DESCRIBE", "TOPIC", "*"), acl("DESCRIBE", "TOPIC", "t-read", perm="DENY"))
        # refused, and the name is not disclosed (the request's "" comes back)
        self.assertEqual(metadata_v12(self.b.port, name="", topic_id=tid), (TOPIC_AUTH, "", tid))
        # a describable name with the refused topic's id: answered for the name, never the id
        err, name, got = metadata_v12(self.b.port, name="t-prod", topic_id=tid)
        self.assertEqual((err, name), (0, "t-prod"))
        self.assertNotEqual(got, tid)
        self.reset()
        self.grant(acl("DESCRIBE", "TOPIC", "t-read"))
        self.assertEqual(metadata_v12(self.b.port, name="", topic_id=tid), (0, "t-read", tid))

    def test_topic_ids_metadata_v12_and_fetch_v13(self):
        self.grant(acl("DESCRIBE", "TOPIC", "t-read"))
        err, _, tid = metadata_v12(self.b.port, name="t-read")
        self.assertEqual(err, 0)
        self.reset()
        # By id, without DESCRIBE: refused, and the name is not disclosed.
        self.assertEqual(metadata_v12(self.b.port, topic_id=tid), (TOPIC_AUTH, None, tid))
        self.assertEqual(fetch_v13(self.b.port, tid), (tid, TOPIC_AUTH))
        self.grant(acl("READ", "TOPIC", "t-read"))
        self.assertEqual(metadata_v12(self.b.port, topic_id=tid), (0, "t-read", tid))
        self.assertEqual(fetch_v13(self.b.port, tid), (tid, 0))

    def test_metadata_authorized_operations(self):
        self.grant(acl("READ", "TOPIC", "t-read"), acl("ALTER_CONFIGS", "TOPIC", "t-read"),
                   acl("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster"))
        err, topic_ops, cluster_ops = metadata_v8_ops(self.b.port, "t-read")
        self.assertEqual(err, 0)
        self.assertEqual(topic_ops, bits("READ", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"))
        # ALTER on the cluster (the test's own ACL) implies DESCRIBE there.
        self.assertEqual(cluster_ops, bits("IDEMPOTENT_WRITE", "ALTER", "DESCRIBE"))

    def test_auto_create_needs_create(self):
        self.grant(acl("WRITE", "TOPIC", "auto.", "PREFIXED"))
        self.assertEqual(produce(self.b.bootstrap, "auto.one"), TOPIC_AUTH)
        self.grant(acl("CREATE", "TOPIC", "auto.one"))
        self.assertIsNone(produce(self.b.bootstrap, "auto.one"))
        self.assertEqual(produce(self.b.bootstrap, "auto.two"), TOPIC_AUTH)
        self.grant(acl("CREATE", "CLUSTER", "kafka-cluster"))
        self.assertIsNone(produce(self.b.bootstrap, "auto.two"))
        md = self.admin().list_topics(timeout=10)
        self.assertEqual(sorted(md.topics), ["auto.one", "auto.two"])

    # ---- Topic administration, configs, DeleteRecords ----

    def test_create_and_delete_topics(self):
        a = self.admin()
        f = a.create_topics([NewTopic("new.a", 1, 1)])["new.a"]
        with self.assertRaises(Exception) as e:
            f.result(30)
        self.assertEqual(e.exception.args[0].code(), TOPIC_AUTH)
        self.grant(acl("CREATE", "TOPIC", "new.", "PREFIXED"))
        a.create_topics([NewTopic("new.a", 1, 1)])["new.a"].result(30)
        with self.assertRaises(Exception) as e:
            a.delete_topics(["new.a"])["new.a"].result(30)
        self.assertEqual(e.exception.args[0].code(), TOPIC_AUTH)
        self.grant(acl("DELETE", "TOPIC", "new.a"))
        a.delete_topics(["new.a"])["new.a"].result(30)

    def test_replica_fetch_needs_cluster_action(self):
        self.grant(acl("READ", "TOPIC", "t-read"))
        self.assertEqual(fetch_v4_error(self.b.port, "t-read", -1), 0)
        self.assertEqual(fetch_v4_error(self.b.port, "t-read", 1), TOPIC_AUTH)
        self.reset()  # a follower needs CLUSTER_ACTION, not READ on the topic
        self.grant(acl("CLUSTER_ACTION", "CLUSTER", "kafka-cluster"))
        self.assertEqual(fetch_v4_error(self.b.port, "t-read", 1), 0)
        self.assertEqual(fetch_v4_error(self.b.port, "t-read", -1), TOPIC_AUTH)

    def test_create_topics_v5_configs_need_describe_configs(self):
        self.grant(acl("CREATE", "TOPIC", "v5.", "PREFIXED"))
        self.assertEqual(create_topic_v5(self.b.port, "v5.a"), (0, TOPIC_AUTH, -1, 0))
        self.grant(acl("DESCRIBE_CONFIGS", "TOPIC", "v5.", "PREFIXED"))
        err, cfg_err, parts, n_configs = create_topic_v5(self.b.port, "v5.b")
        self.assertEqual((err, cfg_err, parts), (0, 0, 1))
        self.assertGreater(n_configs, 5)

    def test_configs(self):
        a = self.admin()
        res = ConfigResource("topic", "t-cfg")
        with self.assertRaises(Exception) as e:
            a.describe_configs([res])[res].result(30)
        self.assertEqual(e.exception.args[0].code(), TOPIC_AUTH)
        self.grant(acl("ALTER_CONFIGS", "TOPIC", "t-cfg"))  # implies DESCRIBE_CONFIGS
        self.assertIn("retention.ms", a.describe_configs([res])[res].result(30))
        res.set_config("retention.ms", "3600000")
        a.alter_configs([res])[res].result(30)
        broker = ConfigResource("broker", "0")
        with self.assertRaises(Exception) as e:
            a.describe_configs([broker])[broker].result(30)
        self.assertEqual(e.exception.args[0].code(), CLUSTER_AUTH)
        self.grant(acl("DESCRIBE_CONFIGS", "CLUSTER", "kafka-cluster"))
        self.assertIn("log.retention.ms", a.describe_configs([broker])[broker].result(30))

    def test_delete_records_needs_delete(self):
        c = Conn(self.b.port)
        try:
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("t-dr", 0, 1))),
                             (-1, TOPIC_AUTH))
            self.grant(acl("DELETE", "TOPIC", "t-dr"))
            self.assertEqual(parse_delete_records_v1(c.call(delete_records_v1("t-dr", 0, 1))),
                             (1, 0))
        finally:
            c.close()

    def test_describe_log_dirs_needs_describe_on_cluster(self):
        # ALTER on the cluster (setUpClass's grant) implies DESCRIBE
        err, dirs = describe_log_dirs_v4(self.b.port)
        self.assertEqual((err, len(dirs)), (0, 1))
        d, topics, total, usable = dirs[0]
        self.assertEqual(d, os.path.realpath(self.b.data))
        self.assertGreater(topics["t-read"][0], 0)  # holds a record
        for t in ("t-read", "t-deny"):  # other tests may have written to t-deny: sizes as on disk
            seg_dir = os.path.join(self.b.data, t + "-0")
            self.assertEqual(topics[t], {0: sum(os.path.getsize(os.path.join(seg_dir, f))
                                                for f in os.listdir(seg_dir)
                                                if f.endswith(".log"))}, t)
        self.assertTrue(0 <= usable <= total and total > 0, (usable, total))
        self.grant(acl("DESCRIBE", "CLUSTER", "kafka-cluster", perm="DENY"))
        self.assertEqual(describe_log_dirs_v4(self.b.port), (CLUSTER_AUTH, []))

    # ---- InitProducerId ----

    def test_init_producer_id(self):
        self.assertEqual(init_producer_id(self.b.port), CLUSTER_AUTH)
        self.assertEqual(init_producer_id(self.b.port, "tx1"), TXN_AUTH)
        self.grant(acl("WRITE", "TOPIC", "logs.", "PREFIXED"))  # WRITE on some topic
        self.assertEqual(init_producer_id(self.b.port), 0)
        self.reset()
        self.grant(acl("IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster"))
        self.assertEqual(init_producer_id(self.b.port), 0)
        self.grant(acl("WRITE", "TOPIC", "t-prod"))
        self.assertIsNone(produce(self.b.bootstrap, "t-prod", **{"enable.idempotence": True}))

    # ---- Groups ----

    def test_offset_fetch_v8_per_group_and_topic(self):
        self.grant(acl("READ", "TOPIC", "t-read"), acl("READ", "TOPIC", "pre.b"),
                   acl("WRITE", "TOPIC", "pre.b"), acl("READ", "GROUP", "of8"))
        self.assertIsNone(produce(self.b.bootstrap, "pre.b"))
        for t in ("t-read", "pre.b"):  # commits an offset of both topics in of8
            self.assertEqual(consume_one(self.b.bootstrap, t, "of8"), b"v")
        self.reset()
        self.grant(acl("READ", "GROUP", "of8"), acl("DESCRIBE", "TOPIC", "t-read"))
        r = offset_fetch_v8(self.b.port, [("of8", [("t-read", [0]), ("pre.b", [0])]),
                                          ("of8-other", [("t-read", [0])])])
        self.assertEqual(r["of8"], (0, {"t-read": {0: 0}, "pre.b": {0: TOPIC_AUTH}}))
        self.assertEqual(r["of8-other"][0], GROUP_AUTH)
        # All topics of the group: the undescribable one is not shown.
        r = offset_fetch_v8(self.b.port, [("of8", None)])
        self.assertEqual(r["of8"], (0, {"t-read": {0: 0}}))

    def test_groups_list_describe_delete(self):
        self.grant(acl("READ", "TOPIC", "t-read"), acl("READ", "GROUP", "lg-", "PREFIXED"))
        for g in ("lg-a", "lg-b"):
            self.assertEqual(consume_one(self.b.bootstrap, "t-read", g), b"v")
        # ALTER on the cluster implies DESCRIBE there, which lists every group:
        # deny it, and only groups the principal may describe are listed.
        self.assertLessEqual({"lg-a", "lg-b"}, {g for g, _ in self.k.list_consumer_groups()})
        self.grant(acl("DESCRIBE", "CLUSTER", "kafka-cluster", perm="DENY"),
                   acl("READ", "GROUP", "lg-b", perm="DENY"))
        # A DENY of READ does not deny DESCRIBE, which READ implies: still listed.
        self.assertEqual(sorted(g for g, _ in self.k.list_consumer_groups()), ["lg-a", "lg-b"])
        self.grant(acl("DESCRIBE", "GROUP", "lg-b", perm="DENY"))
        self.assertEqual([g for g, _ in self.k.list_consumer_groups()], ["lg-a"])
        self.assertEqual(consume_one(self.b.bootstrap, "t-read", "lg-b"), GROUP_AUTH)
        with self.assertRaises(GroupAuthorizationFailedError):
            self.k.describe_consumer_groups(["lg-b"])
        self.assertEqual(self.k.describe_consumer_groups(["lg-a"])[0].group, "lg-a")
        self.assertEqual(self.k.delete_consumer_groups(["lg-a"])[0][1].errno, GROUP_AUTH)
        self.grant(acl("DELETE", "GROUP", "lg-a"))
        self.assertEqual(self.k.delete_consumer_groups(["lg-a"])[0][1].errno, 0)


def sasl_conf(user, pw=None):
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": user, "sasl.password": pw or user + "-secret"}


class SaslAclTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker(start=False,
                       env=dict(os.environ, STRATA_BOOTSTRAP_USER="admin:admin-secret"))
        cls.sasl = "127.0.0.1:%d" % free_port()
        cls.b.args += ["--listeners", "PLAINTEXT://%s,SASL_PLAINTEXT://%s" % (cls.b.bootstrap,
                                                                              cls.sasl),
                       "-X", "super.users=User:admin"]
        cls.b.start()
        for u in ("alice", "bob"):
            req = urllib.request.Request(
                "http://127.0.0.1:%d/v1/security/users" % cls.b.admin_port, method="POST",
                data=json.dumps({"username": u, "password": u + "-secret"}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 201, r.status
        cls.k = KafkaAdminClient(bootstrap_servers=cls.sasl, security_protocol="SASL_PLAINTEXT",
                                 sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="admin",
                                 sasl_plain_password="admin-secret")
        a = AdminClient({"bootstrap.servers": cls.sasl, **sasl_conf("admin")})
        for f in a.create_topics([NewTopic(t, 1, 1) for t in
                                  ("orders", "a.one", "a.two", "b.one")]).values():
            f.result(30)

    @classmethod
    def tearDownClass(cls):
        cls.k.close()
        cls.b.close()

    def setUp(self):
        self.k.delete_acls([any_filter()])

    def grant(self, *acls):
        self.assertEqual(self.k.create_acls(list(acls))["failed"], [])

    def test_per_user_grants_and_deny(self):
        self.grant(acl("WRITE", "TOPIC", "orders", principal="User:alice"))
        self.assertIsNone(produce(self.sasl, "orders", **sasl_conf("alice")))
        self.assertEqual(produce(self.sasl, "orders", **sasl_conf("bob")), TOPIC_AUTH)
        self.assertIsNone(produce(self.sasl, "orders", **sasl_conf("admin")))  # super user
        # Everyone may read orders with group g; bob is denied the topic.
        self.grant(acl("READ", "TOPIC", "orders", principal="User:*"),
                   acl("READ", "GROUP", "g", principal="User:*"),
                   acl("READ", "TOPIC", "orders", perm="DENY", principal="User:bob"))
        c = Consumer({"bootstrap.servers": self.sasl, "group.id": "g",
                      "auto.offset.reset": "earliest", **sasl_conf("alice")})
        c.subscribe(["orders"])
        got = None
        deadline = time.monotonic() + 30
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got = m.value()
        c.close()
        self.assertEqual(got, b"v")
        c = Consumer({"bootstrap.servers": self.sasl, "group.id": "g",
                      "auto.offset.reset": "earliest", **sasl_conf("bob")})
        c.subscribe(["orders"])
        err = None
        deadline = time.monotonic() + 30
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error():
                err = m.error().code()
        c.close()
        self.assertEqual(err, TOPIC_AUTH)

    def test_metadata_per_user_and_anonymous_plaintext(self):
        self.grant(acl("DESCRIBE", "TOPIC", "a.", "PREFIXED", principal="User:alice"),
                   acl("DESCRIBE", "TOPIC", "b.", "PREFIXED", principal="User:bob"))

        def topics(bootstrap, **conf):
            a = AdminClient({"bootstrap.servers": bootstrap, **conf})
            return sorted(a.list_topics(timeout=10).topics)
        self.assertEqual(topics(self.sasl, **sasl_conf("alice")), ["a.one", "a.two"])
        self.assertEqual(topics(self.sasl, **sasl_conf("bob")), ["b.one"])
        self.assertEqual(topics(self.sasl, **sasl_conf("admin")),
                         ["a.one", "a.two", "b.one", "orders"])
        # The PLAINTEXT listener is authorized too, as User:ANONYMOUS.
        self.assertEqual(topics(self.b.bootstrap), [])
        self.grant(acl("DESCRIBE", "TOPIC", "orders"))
        self.assertEqual(topics(self.b.bootstrap), ["orders"])

    def test_acl_apis_need_alter_on_cluster(self):
        k = KafkaAdminClient(bootstrap_servers=self.sasl, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                             sasl_plain_password="alice-secret")
        try:
            r = k.create_acls([acl("READ", principal="User:alice")])
            self.assertEqual(r["failed"][0][1].__name__, "ClusterAuthorizationFailedError")
            self.grant(acl("ALTER", "CLUSTER", "kafka-cluster", principal="User:alice"))
            self.assertEqual(k.create_acls([acl("READ", principal="User:alice")])["failed"], [])
        finally:
            k.close()


class SuperUserTest(unittest.TestCase):
    def test_super_users_and_no_acl_found(self):
        b = Broker(*AUTHZ, "-X", "super.users=User:admin; %s" % ME)
        try:
            k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
            k.create_acls([acl("ALL", "TOPIC", "*", perm="DENY")])
            k.close()
            self.assertIsNone(produce(b.bootstrap, "s1"))  # a super user: ACLs do not apply
            b.stop()
            b.args = [x for x in b.args if not x.startswith("super.users")][:-1]
            b.args += ["-X", "allow.everyone.if.no.acl.found=true"]
            b.start()
            self.assertEqual(produce(b.bootstrap, "s1"), TOPIC_AUTH)  # the DENY applies
            # No ACL names group g: allowed; the topic is denied by "*".
            self.assertEqual(consume_one(b.bootstrap, "s1", "g"), TOPIC_AUTH)
        finally:
            b.close()

    def test_acl_apis_without_authorizer(self):
        b = Broker()
        try:
            k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
            r = k.create_acls([acl("READ")])
            self.assertEqual(len(r["failed"]), 1)
            self.assertIn("SecurityDisabled", r["failed"][0][1].__name__)
            k.close()
            self.assertIsNone(produce(b.bootstrap, "open"))  # no authorization
        finally:
            b.close()

    def test_sasl_listener_turns_authorization_on(self):
        b = Broker(start=False)
        sasl_port = free_port()
        b.args += ["--listeners", "PLAINTEXT://127.0.0.1:%d,SASL_PLAINTEXT://127.0.0.1:%d"
                   % (b.port, sasl_port)]
        try:
            b.start()
            b.wait_for(r"ACL authorization on \(a listener authenticates with SASL\)", seen=True)
            # The PLAINTEXT listener is authorized too: User:ANONYMOUS has no ACL.
            self.assertEqual(produce(b.bootstrap, "open"), TOPIC_AUTH)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
